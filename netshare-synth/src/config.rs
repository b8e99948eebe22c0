//! The synth stage's typed configuration: draws, scale, output formats and framing, marginal
//! calibration and what happens to repeated five-tuples.

use netshare_core::records::TraceKind;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::merge::Duplicates;
use crate::write::{CaptureKind, Dialect, LinkType, OutputFormat, PacketOptions};

/// The synth stage's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SynthConfig {
    /// Seed of every draw (attribute and feature noise).
    pub seed: u64,
    /// Attribute rows sampled per real flow of each chunk (the reference uses 1.25 for NetFlow).
    pub scale: f64,
    /// Flows per feature-sampling and decoding batch (bounds memory; changes the draws).
    pub batch_size: usize,
    /// Outputs besides Parquet; `None`: CSV for flows, the capture format for packets.
    pub formats: Option<Vec<OutputFormat>>,
    /// Capture format of packet outputs when `formats` is not given.
    pub capture: CaptureKind,
    /// CSV dialect of flow CSV; `None`: the input's (from a `records` input), else NetShare's.
    pub csv_dialect: Option<Dialect>,
    /// Link layer of packets.
    pub link: LinkType,
    /// Bytes captured per packet at most.
    pub snaplen: u32,
    /// Capture only headers, keeping wire lengths.
    pub headers_only: bool,
    /// Map generated codes of continuous heads, the decoded record times, and flow records'
    /// packet counts, durations and bytes per packet (by protocol and packet-count stratum)
    /// onto the training marginals, give each class of a categorical attribute head its
    /// training share of the flows, and each flow a training length of its class stratum,
    /// when the encoder recorded them (`code_quantiles`, `time_quantiles_us`, `flow_sizes`,
    /// `class_counts` and `flow_lengths` in chunks.json; see netshare-encode's `calibrate`,
    /// `classes` and `lengths`).
    pub calibrate: bool,
    /// What happens to a flow that repeats an earlier flow's five-tuple in its chunk.
    pub duplicates: Duplicates,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 0,
            scale: 1.0,
            batch_size: 4096,
            formats: None,
            capture: CaptureKind::Pcap,
            csv_dialect: None,
            link: LinkType::Ethernet,
            snaplen: 65_535,
            headers_only: false,
            calibrate: true,
            duplicates: Duplicates::NewPort,
        }
    }
}

impl SynthConfig {
    /// Checks the values.
    pub fn validate(&self) -> Result<()> {
        if !(self.scale.is_finite() && self.scale > 0.0 && self.scale <= 1000.0) {
            return Err(Error::Config(format!(
                "scale must be in (0, 1000], is {}",
                self.scale
            )));
        }
        if self.batch_size == 0 {
            return Err(Error::Config("batch_size must be at least 1".into()));
        }
        if self.snaplen < 64 {
            return Err(Error::Config(format!(
                "snaplen must be at least 64 bytes, is {}",
                self.snaplen
            )));
        }
        Ok(())
    }

    /// The packet framing options.
    pub fn packet_options(&self) -> PacketOptions {
        PacketOptions {
            link: self.link,
            snaplen: self.snaplen,
            headers_only: self.headers_only,
        }
    }

    /// The output formats for a trace kind: Parquet first, then the others, no repeats.
    pub fn formats_for(&self, kind: TraceKind) -> Result<Vec<OutputFormat>> {
        let extra = match &self.formats {
            Some(f) => f.clone(),
            None => vec![match (kind, self.capture) {
                (TraceKind::Flows, _) => OutputFormat::Csv,
                (TraceKind::Packets, CaptureKind::Pcap) => OutputFormat::Pcap,
                (TraceKind::Packets, CaptureKind::PcapNs) => OutputFormat::PcapNs,
                (TraceKind::Packets, CaptureKind::Pcapng) => OutputFormat::Pcapng,
            }],
        };
        let mut out = vec![OutputFormat::Parquet];
        for f in extra {
            if out.iter().any(|o| o.extension() == f.extension()) {
                if out.contains(&f) {
                    continue;
                }
                return Err(Error::Config(format!(
                    "formats {f:?} and another both write synthetic.{}",
                    f.extension()
                )));
            }
            if kind == TraceKind::Flows && !matches!(f, OutputFormat::Csv | OutputFormat::Parquet) {
                return Err(Error::Config(format!(
                    "{f:?} holds packets; this model generates flows (use csv or parquet)"
                )));
            }
            out.push(f);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_json_uses_the_command_line_spellings_and_refuses_unknown_fields() {
        let c: SynthConfig = serde_json::from_value(serde_json::json!({
            "formats": ["pcap-ns"], "capture": "pcapng", "link": "raw", "csv_dialect": "ugr16"
        }))
        .expect("valid config");
        assert_eq!(c.formats, Some(vec![OutputFormat::PcapNs]));
        assert_eq!(c.link, LinkType::Raw);
        assert_eq!(c.scale, 1.0, "defaults fill the rest");
        assert!(serde_json::from_value::<SynthConfig>(serde_json::json!({"scael": 1})).is_err());
    }

    #[test]
    fn formats_default_by_kind_and_conflicts_are_refused() {
        let d = SynthConfig::default();
        assert_eq!(
            d.formats_for(TraceKind::Flows).expect("flows"),
            [OutputFormat::Parquet, OutputFormat::Csv]
        );
        let ng = SynthConfig {
            capture: CaptureKind::Pcapng,
            ..SynthConfig::default()
        };
        assert_eq!(
            ng.formats_for(TraceKind::Packets).expect("packets"),
            [OutputFormat::Parquet, OutputFormat::Pcapng]
        );
        let both = SynthConfig {
            formats: Some(vec![OutputFormat::Pcap, OutputFormat::PcapNs]),
            ..SynthConfig::default()
        };
        assert!(both.formats_for(TraceKind::Packets).is_err());
        let pcap_of_flows = SynthConfig {
            formats: Some(vec![OutputFormat::Pcap]),
            ..SynthConfig::default()
        };
        assert!(pcap_of_flows.formats_for(TraceKind::Flows).is_err());
        for bad in [0.0, -1.0, f64::NAN] {
            let c = SynthConfig {
                scale: bad,
                ..SynthConfig::default()
            };
            assert!(c.validate().is_err(), "scale {bad}");
        }
    }
}
