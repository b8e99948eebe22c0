//! The per-field distributional metrics of NetShare (SPEC §6) in either published convention.
//!
//! - `netshare`: squared Jensen-Shannon distance, natural log (values in `[0, ln 2]`); IPs by
//!   popularity rank; 65,536 port bins and 256 protocol bins; EMD on raw values, times relative
//!   to each trace's first record.
//! - `netdpsyn`: the unsquared Jensen-Shannon distance (values in `[0, sqrt(ln 2)]`); IPs by
//!   exact identity; EMD after mapping both samples affinely from the pooled `[min, max]` onto
//!   `[0.1, 0.9]`.

use std::collections::BTreeMap;

use netshare_core::records::TraceKind;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::stats;
use crate::table::Table;

/// Which published definition of the distributional metrics a number follows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Convention {
    /// NetShare's own (squared JSD, popularity-rank IPs, EMD on raw values).
    #[default]
    Netshare,
    /// NetDPSyn's (unsquared JS distance, exact IP identities, EMD rescaled to [0.1, 0.9]).
    Netdpsyn,
}

impl Convention {
    /// The name written beside every number.
    pub fn name(self) -> &'static str {
        match self {
            Convention::Netshare => "netshare",
            Convention::Netdpsyn => "netdpsyn",
        }
    }
}

/// The convention name of metrics this project defines beyond the paper.
pub const OWN_CONVENTION: &str = "netshare-rs";

/// One number of a report, with the convention and definition it follows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// The value; `null` when undefined (e.g. an empty sample), see `note`.
    pub value: Option<f64>,
    /// `netshare`, `netdpsyn` or `netshare-rs` (this project's own metrics).
    pub convention: String,
    /// What the number is, in a few words.
    pub definition: String,
    /// Whether lower values are better (false: higher is better).
    pub lower_is_better: bool,
    /// What the value leaves out or why it is undefined, when anything (absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Metric {
    /// A metric that is better when lower.
    pub fn lower(value: Option<f64>, convention: &str, definition: impl Into<String>) -> Metric {
        Metric {
            value,
            convention: convention.to_string(),
            definition: definition.into(),
            lower_is_better: true,
            note: None,
        }
    }

    /// The same metric with a note (see [`Metric::note`]).
    pub fn with_note(mut self, note: Option<String>) -> Metric {
        self.note = note;
        self
    }

    /// A metric that is better when higher.
    pub fn higher(value: Option<f64>, convention: &str, definition: impl Into<String>) -> Metric {
        Metric {
            lower_is_better: false,
            ..Metric::lower(value, convention, definition)
        }
    }
}

/// The fields whose JSD is reported, in report order.
pub const JSD_FIELDS: [&str; 5] = ["srcip", "dstip", "srcport", "dstport", "proto"];

/// The fields whose EMD is reported for a trace kind, in report order.
pub fn emd_fields(kind: TraceKind) -> &'static [&'static str] {
    match kind {
        TraceKind::Flows => &["ts", "td", "pkt", "byt"],
        TraceKind::Packets => &["pkt_len", "time", "flow_size"],
    }
}

/// Finite values of a field, prepared for EMD: `ts`/`time` relative to the trace's first
/// (earliest) record, `flow_size` as packets per five-tuple, other fields raw.
pub fn emd_sample(t: &Table, field: &str) -> Vec<f64> {
    emd_sample_counted(t, field).0
}

/// [`emd_sample`] and how many non-finite values (NaN, ±∞) it left out.
pub fn emd_sample_counted(t: &Table, field: &str) -> (Vec<f64>, usize) {
    let raw: &[f64] = match field {
        "ts" | "time" => &t.time_us,
        "flow_size" => &[],
        other => t.value(other).unwrap_or_default(),
    };
    let dropped = raw.iter().filter(|v| !v.is_finite()).count();
    let sample = match field {
        "ts" | "time" => {
            let first = t
                .time_us
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .fold(f64::INFINITY, f64::min);
            t.time_us
                .iter()
                .filter(|v| v.is_finite())
                .map(|v| v - first)
                .collect()
        }
        "flow_size" => flow_sizes(t),
        other => t
            .value(other)
            .map(|v| v.iter().copied().filter(|x| x.is_finite()).collect())
            .unwrap_or_default(),
    };
    (sample, dropped)
}

/// Records per five-tuple, one value per five-tuple.
pub fn flow_sizes(t: &Table) -> Vec<f64> {
    let mut m: crate::stats::FxHashMap<netshare_core::records::FiveTuple, f64> =
        crate::stats::FxHashMap::with_capacity_and_hasher(t.len() / 2, Default::default());
    for i in 0..t.len() {
        *m.entry(t.five_tuple(i)).or_insert(0.0) += 1.0;
    }
    m.into_values().collect()
}

fn rescale(u: &mut [f64], v: &mut [f64]) {
    let lo = u
        .iter()
        .chain(v.iter())
        .copied()
        .fold(f64::INFINITY, f64::min);
    let hi = u
        .iter()
        .chain(v.iter())
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let span = hi - lo;
    for x in u.iter_mut().chain(v.iter_mut()) {
        *x = if span > 0.0 {
            0.1 + 0.8 * (*x - lo) / span
        } else {
            0.5
        };
    }
}

/// The JSD of one field under a convention.
pub fn jsd(real: &Table, syn: &Table, field: &str, convention: Convention) -> Option<f64> {
    let squared = match (field, convention) {
        ("srcip", Convention::Netshare) => stats::rank_jsd(&real.srcip, &syn.srcip),
        ("dstip", Convention::Netshare) => stats::rank_jsd(&real.dstip, &syn.dstip),
        ("srcip", Convention::Netdpsyn) => stats::exact_jsd(&real.srcip, &syn.srcip),
        ("dstip", Convention::Netdpsyn) => stats::exact_jsd(&real.dstip, &syn.dstip),
        ("srcport", _) => stats::binned_jsd(
            real.srcport.iter().map(|&p| usize::from(p)),
            syn.srcport.iter().map(|&p| usize::from(p)),
            65_536,
        ),
        ("dstport", _) => stats::binned_jsd(
            real.dstport.iter().map(|&p| usize::from(p)),
            syn.dstport.iter().map(|&p| usize::from(p)),
            65_536,
        ),
        ("proto", _) => stats::binned_jsd(
            real.proto.iter().map(|&p| usize::from(p)),
            syn.proto.iter().map(|&p| usize::from(p)),
            256,
        ),
        ("ip_version", _) => stats::binned_jsd(
            real.srcip.iter().map(|a| usize::from(a.is_ipv6())),
            syn.srcip.iter().map(|a| usize::from(a.is_ipv6())),
            2,
        ),
        _ => None,
    }?;
    Some(match convention {
        Convention::Netshare => squared,
        Convention::Netdpsyn => squared.sqrt(),
    })
}

/// The EMD of one field under a convention.
pub fn emd(real: &Table, syn: &Table, field: &str, convention: Convention) -> Option<f64> {
    emd_noted(real, syn, field, convention).0
}

/// [`emd`], and a note when non-finite values were left out or the value is undefined.
pub fn emd_noted(
    real: &Table,
    syn: &Table,
    field: &str,
    convention: Convention,
) -> (Option<f64>, Option<String>) {
    let (mut u, du) = emd_sample_counted(real, field);
    let (mut v, dv) = emd_sample_counted(syn, field);
    if convention == Convention::Netdpsyn {
        rescale(&mut u, &mut v);
    }
    let value = stats::wasserstein(&u, &v);
    let mut notes = Vec::new();
    if du + dv > 0 {
        notes.push(format!(
            "left out {du} non-finite reference value(s) and {dv} non-finite candidate value(s)"
        ));
    }
    if value.is_none() {
        notes.push(format!(
            "undefined: {} finite reference and {} finite candidate value(s)",
            u.len(),
            v.len()
        ));
    }
    (value, (!notes.is_empty()).then(|| notes.join("; ")))
}

fn jsd_definition(field: &str, c: Convention) -> String {
    let dist = match c {
        Convention::Netshare => "squared Jensen-Shannon distance (ln)",
        Convention::Netdpsyn => "Jensen-Shannon distance (ln, unsquared)",
    };
    let over = match (field, c) {
        ("srcip" | "dstip", Convention::Netshare) => "popularity-rank frequencies",
        ("srcip" | "dstip", Convention::Netdpsyn) => "exact address frequencies",
        ("proto", _) => "256 protocol bins",
        ("ip_version", _) => "the records' IPv4 / IPv6 split",
        _ => "65,536 port bins",
    };
    format!("{dist} of {field} over {over}")
}

fn emd_definition(field: &str, c: Convention) -> String {
    let what = match field {
        "ts" | "time" => format!("{field} in µs minus the trace's first record"),
        "flow_size" => "records per five-tuple".to_string(),
        "td" => "td in seconds".to_string(),
        other => format!("raw {other}"),
    };
    match c {
        Convention::Netshare => format!("Wasserstein-1 of {what}"),
        Convention::Netdpsyn => {
            format!("Wasserstein-1 of {what}, pooled range mapped to [0.1, 0.9]")
        }
    }
}

/// Every distributional metric for a trace kind, keyed `jsd_<field>` and `emd_<field>`,
/// computed in parallel.
pub fn distributional(
    real: &Table,
    syn: &Table,
    convention: Convention,
) -> BTreeMap<String, Metric> {
    let mut jobs: Vec<(bool, &str)> = JSD_FIELDS.iter().map(|f| (true, *f)).collect();
    // The address family's split, only where there is one to judge: an all-IPv4 comparison
    // keeps the report it always had.
    if [real, syn]
        .iter()
        .any(|t| t.srcip.iter().any(|a| a.is_ipv6()))
    {
        jobs.push((true, "ip_version"));
    }
    jobs.extend(emd_fields(real.kind).iter().map(|f| (false, *f)));
    jobs.par_iter()
        .map(|&(is_jsd, field)| {
            if is_jsd {
                (
                    format!("jsd_{field}"),
                    Metric::lower(
                        jsd(real, syn, field, convention),
                        convention.name(),
                        jsd_definition(field, convention),
                    ),
                )
            } else {
                let (value, note) = emd_noted(real, syn, field, convention);
                (
                    format!("emd_{field}"),
                    Metric::lower(value, convention.name(), emd_definition(field, convention))
                        .with_note(note),
                )
            }
        })
        .collect()
}

#[cfg(test)]
mod note_tests {
    use super::*;
    use crate::table::Column;

    fn flows(td: &[f64], pkt: &[f64]) -> Table {
        let n = td.len();
        Table {
            kind: TraceKind::Flows,
            srcip: vec![netshare_core::addr::v4(1); n],
            dstip: vec![netshare_core::addr::v4(2); n],
            srcport: vec![3; n],
            dstport: vec![4; n],
            proto: vec![6; n],
            time_us: (0..n).map(|i| i as f64).collect(),
            values: vec![
                Column {
                    name: "td",
                    data: td.to_vec(),
                },
                Column {
                    name: "pkt",
                    data: pkt.to_vec(),
                },
            ],
            label: vec![String::new(); n],
        }
    }

    #[test]
    fn non_finite_values_left_out_of_an_emd_are_counted_in_its_note() {
        let real = flows(&[1.0, 2.0, f64::NAN], &[3.0, 4.0, 5.0]);
        let syn = flows(&[1.0, f64::INFINITY, 2.0], &[3.0, 4.0, 5.0]);
        let (v, note) = emd_noted(&real, &syn, "td", Convention::Netshare);
        // {1, 2} against {1, 2}: 0, with one value left out on each side.
        assert_eq!(v, Some(0.0));
        assert_eq!(
            note.as_deref(),
            Some("left out 1 non-finite reference value(s) and 1 non-finite candidate value(s)")
        );
        let (v, note) = emd_noted(&real, &real, "pkt", Convention::Netshare);
        assert_eq!((v, note), (Some(0.0), None));
    }
}
