//! Synthesis (SPEC §5): per chunk, sample attributes, plan the chunk's flows across chunks,
//! sample features in batches, decode with the fitted encoder, clean, and stream the records
//! into every output. Only one chunk's records are in memory at a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use netshare_core::records::{AddrSchema, META_DIALECT, Records, TraceKind, read_metadata};
use netshare_encode::addr::AddrCodec;
use netshare_encode::calibrate::{
    Calibration, calibrate_flow_sizes, calibrate_packet_lengths, class_groups, warp_times,
};
use netshare_encode::lengths::{length_targets_in, strata_of};
use netshare_encode::{ChunkInfo, ChunksFile, FittedEncoder};
use netshare_model::TrainedModel;
use serde::{Deserialize, Serialize};

pub use crate::config::SynthConfig;
use crate::error::{Error, Result};
use crate::merge::{CleanCounts, MergeCounts, Merger, TagHeads, clean_chunk};
use crate::write::{Dialect, Sink, SinkSummary, WriteOptions};

/// Name of the synthesis report output.
pub const REPORT_OUTPUT: &str = "synth-report.json";
/// How the report's `calibrated` list names the record-level map of flow packet counts, and of
/// durations and bytes per packet within packet-count strata.
pub const SIZES_BY_PKT: &str = "pkt,td|pkt,byt|pkt";
/// How the report's `calibrated` list names the map of flow lengths (records per flow) within
/// strata of the flows' classes.
pub const FLOW_LENGTHS: &str = "flow_length|classes";
/// How the report's `calibrated` list names the map of flow packet counts within strata of
/// the flows' classes (the flow-length strata).
pub const PKT_BY_CLASS: &str = "pkt|classes";
/// How the report's `calibrated` list names the map of packet lengths within strata of their
/// flows' classes (the flow-length strata).
pub const PKT_LEN_BY_CLASS: &str = "pkt_len|classes";
/// Base name of the record outputs (`synthetic.parquet`, `synthetic.csv`, ...).
pub const OUTPUT_STEM: &str = "synthetic";

/// Everything synthesis reads: the encoder's outputs and the trained model.
pub struct SynthInputs {
    /// The fitted encoder (`encoder.json`).
    pub encoder: FittedEncoder,
    /// The chunk table (`chunks.json`).
    pub chunks: ChunksFile,
    /// The trained model (`model.json`, `weights-NNN.safetensors`).
    pub model: TrainedModel,
    /// The input's CSV dialect name, when a records file was given.
    pub dialect: Option<String>,
}

fn need<'a>(inputs: &'a BTreeMap<String, PathBuf>, name: &str) -> Result<&'a Path> {
    inputs.get(name).map(PathBuf::as_path).ok_or_else(|| {
        Error::Inconsistent(format!(
            "no {name} among the inputs {:?}",
            inputs.keys().collect::<Vec<_>>()
        ))
    })
}

impl SynthInputs {
    /// Reads from named files (store inputs are named after the upstream file names):
    /// `encoder.json`, `chunks.json`, `model.json`, `weights-NNN.safetensors`, and optionally
    /// `records` / `records.parquet` (only its dialect metadata is read). Others are ignored.
    pub fn from_named(inputs: &BTreeMap<String, PathBuf>) -> Result<Self> {
        let encoder = FittedEncoder::read(need(inputs, "encoder.json")?)?;
        let chunks = netshare_encode::read_chunks(need(inputs, "chunks.json")?)?;
        let model = TrainedModel::from_inputs(inputs)?;
        let dialect = match inputs
            .get("records")
            .or_else(|| inputs.get("records.parquet"))
        {
            Some(p) => read_metadata(p)?.1.get(META_DIALECT).cloned(),
            None => None,
        };
        let s = SynthInputs {
            encoder,
            chunks,
            model,
            dialect,
        };
        s.check()?;
        Ok(s)
    }

    /// Reads from the encode stage's output directory and the model stage's.
    pub fn from_dirs(encoded: &Path, model: &Path) -> Result<Self> {
        let mut inputs = BTreeMap::new();
        for dir in [encoded, model] {
            let entries = std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
            for e in entries {
                let e = e.map_err(|e| Error::io("listing", dir, e))?;
                if let Some(name) = e.file_name().to_str() {
                    inputs.insert(name.to_string(), e.path());
                }
            }
        }
        SynthInputs::from_named(&inputs)
    }

    /// Checks that the encoder, the chunk table and the model agree.
    pub fn check(&self) -> Result<()> {
        let n = self.encoder.n_chunks;
        if self.chunks.chunks.len() != n || self.model.n_chunks() != n {
            return Err(Error::Inconsistent(format!(
                "encoder.json has {n} chunks, chunks.json {}, the model {}",
                self.chunks.chunks.len(),
                self.model.n_chunks()
            )));
        }
        if self.model.layout() != &self.encoder.layout() {
            return Err(Error::Inconsistent(
                "the model's layout differs from encoder.json's (trained on another encoding?)"
                    .into(),
            ));
        }
        if self.model.max_len() != self.encoder.max_len {
            return Err(Error::Inconsistent(format!(
                "the model generates {} steps per flow, the encoder decodes {}",
                self.model.max_len(),
                self.encoder.max_len
            )));
        }
        for (i, c) in self.chunks.chunks.iter().enumerate() {
            if c.index != i {
                return Err(Error::Inconsistent(format!(
                    "chunks.json lists chunk {} at position {i}",
                    c.index
                )));
            }
        }
        Ok(())
    }
}

/// What happened in one chunk.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkReport {
    /// Chunk index.
    pub index: usize,
    /// Its time range, µs.
    pub t_min_us: i64,
    /// Its time range end, µs (inclusive).
    pub t_max_us: i64,
    /// Flows the real chunk had; for a private model, the count it released with noise.
    pub real_flows: usize,
    /// Attribute rows sampled (real flows × scale).
    pub sampled: u64,
    /// Flows generated in this chunk: carried in plus started here.
    pub flows: u64,
    /// Of those, carried from earlier chunks.
    pub carried: u64,
    /// The record-level clean-up of this chunk.
    pub clean: CleanCounts,
    /// Heads whose generated codes were mapped onto the chunk's training marginal, and `time`
    /// when the record times were.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calibrated: Vec<String>,
}

/// The `synth-report.json` artifact: counts of everything generated, kept and dropped.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SynthReport {
    /// The trace kind generated.
    pub kind: TraceKind,
    /// The seed used.
    pub seed: u64,
    /// The scale used.
    pub scale: f64,
    /// Per chunk.
    pub chunks: Vec<ChunkReport>,
    /// The attribute-level merge, summed over chunks.
    pub merge: MergeCounts,
    /// The record-level clean-up, summed over chunks.
    pub clean: CleanCounts,
    /// Records written before an earlier one in time (nonzero only if chunk ranges overlap).
    pub out_of_order_records: u64,
    /// What each output received.
    pub outputs: Vec<SinkSummary>,
}

/// Wall-clock seconds spent in each phase (not part of any artifact: they vary run to run).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Timings {
    /// Sampling attributes (the model).
    pub sample_attributes_s: f64,
    /// Sampling features (the model).
    pub sample_features_s: f64,
    /// Decoding and cleaning records.
    pub decode_s: f64,
    /// Writing outputs.
    pub write_s: f64,
}

/// A seed for one draw, derived from the config seed and a path (splitmix64 steps, with the
/// synth stage's salt).
pub fn derive_seed(seed: u64, path: &[u64]) -> u64 {
    netshare_core::seed::derive_seed(seed, 0x5eed_5eed_5eed_5eed, path)
}

/// Decodes one batch of generated flows and appends its records to `out`, with the flow index
/// (`first_flow + i`) of each record in `flow_of`.
#[allow(clippy::too_many_arguments)]
pub fn decode_batch(
    encoder: &FittedEncoder,
    chunk: &ChunkInfo,
    attributes: &[f32],
    features: &[f32],
    lengths: &[usize],
    first_flow: usize,
    out: &mut Records,
    flow_of: &mut Vec<usize>,
) -> Result<()> {
    let recs = encoder.decode_chunk(chunk, attributes, features, lengths)?;
    let expected: usize = lengths.iter().sum();
    if recs.len() != expected {
        return Err(Error::Inconsistent(format!(
            "chunk {}: the encoder decoded {} records for flows of total length {expected}",
            chunk.index,
            recs.len()
        )));
    }
    for (i, &l) in lengths.iter().enumerate() {
        flow_of.extend(std::iter::repeat_n(first_flow + i, l));
    }
    match (out, recs) {
        (Records::Packets(o), Records::Packets(r)) => o.extend(&r),
        (Records::Flows(o), Records::Flows(r)) => o.extend(&r),
        _ => {
            return Err(Error::Inconsistent(
                "the encoder decoded records of another kind".into(),
            ));
        }
    }
    Ok(())
}

fn empty(kind: TraceKind) -> Records {
    match kind {
        TraceKind::Packets => Records::Packets(Default::default()),
        TraceKind::Flows => Records::Flows(Default::default()),
    }
}

fn first_last_time(r: &Records) -> Option<(i64, i64)> {
    let t = match r {
        Records::Packets(t) => &t.time_us,
        Records::Flows(t) => &t.ts_us,
    };
    Some((*t.first()?, *t.last()?))
}

/// Generates the synthetic trace into `out_dir`: `synthetic.parquet`, the other formats of
/// the config, and `synth-report.json`. Returns the report and the phase timings.
pub fn synthesize(
    inputs: &SynthInputs,
    cfg: &SynthConfig,
    out_dir: &Path,
) -> Result<(SynthReport, Timings)> {
    cfg.validate()?;
    let enc = &inputs.encoder;
    let kind = enc.kind;
    let formats = cfg.formats_for(kind)?;
    let dialect = cfg
        .csv_dialect
        .or_else(|| inputs.dialect.as_deref().and_then(Dialect::from_name))
        .unwrap_or_default();
    let wopts = WriteOptions {
        dialect,
        dialect_meta: inputs.dialect.clone(),
        packets: cfg.packet_options(),
        // A narrow (IPv4) address codec decodes IPv4 only; a wide one may give either family.
        addrs: match enc.ips {
            AddrCodec::Narrow(_) => AddrSchema::V4Only,
            AddrCodec::Wide(_) => AddrSchema::Mixed,
        },
    };
    let mut sinks = Vec::with_capacity(formats.len());
    for f in &formats {
        let path = out_dir.join(format!("{OUTPUT_STEM}.{}", f.extension()));
        sinks.push(Sink::create(&path, *f, kind, &wopts)?);
    }

    let n_chunks = enc.n_chunks;
    let heads = TagHeads::from_layout(inputs.model.layout(), n_chunks)?;
    let a = heads.attr_dim;
    let mut merger = Merger::new(heads, n_chunks);
    let mut timings = Timings::default();
    let mut chunk_reports = Vec::with_capacity(n_chunks);
    let mut clean_total = CleanCounts::default();
    let mut last_time = i64::MIN;
    let mut out_of_order = 0u64;

    // A private model released each chunk's flow count with noise; the exact counts in
    // chunks.json are private and are not used.
    let released: Option<BTreeMap<usize, u64>> =
        inputs.model.model_file().privacy.as_ref().map(|l| {
            l.chunks
                .iter()
                .map(|c| (c.chunk, c.released_examples))
                .collect()
        });
    for info in &inputs.chunks.chunks {
        let c = info.index;
        let real_flows = match &released {
            Some(r) => r.get(&c).copied().unwrap_or(0) as usize,
            None => info.n_flows,
        };
        let n = (real_flows as f64 * cfg.scale).round() as usize;
        let calibration = if cfg.calibrate {
            let c = Calibration::for_chunk(inputs.model.layout(), info);
            match &enc.semantics {
                Some(sem) if sem.distinct_addresses => c.keep_addresses_apart(),
                _ => c,
            }
        } else {
            Calibration::default()
        };
        let t0 = Instant::now();
        let mut sampled =
            inputs
                .model
                .try_sample_attributes(c, n, derive_seed(cfg.seed, &[c as u64, 0]))?;
        calibration.attributes(&mut sampled, a);
        timings.sample_attributes_s += t0.elapsed().as_secs_f64();
        let before = merger.counts().clone();
        let plan = merger.plan_chunk(c, &sampled)?;
        drop(sampled);

        let mut records = empty(kind);
        let mut flow_of = Vec::new();
        // Fitted on the chunk's first batch, applied to every batch of the chunk.
        let mut feature_map = None;
        let lengths_map = info.flow_lengths.as_ref().filter(|_| cfg.calibrate);
        // Each planned flow's deepest kept class stratum: its length and its sizes are mapped
        // within it. `None` when the recorded heads are not the layout's.
        let nodes =
            lengths_map.and_then(|fl| strata_of(fl, inputs.model.layout(), &plan.attributes, a));
        for (b, start) in (0..plan.len()).step_by(cfg.batch_size).enumerate() {
            let rows = cfg.batch_size.min(plan.len() - start);
            let attrs = &plan.attributes[start * a..(start + rows) * a];
            let t0 = Instant::now();
            let seed = derive_seed(cfg.seed, &[c as u64, 1, b as u64]);
            let (t, f) = (enc.max_len, enc.feature_dim());
            let (mut features, lengths) = match lengths_map {
                Some(fl) => {
                    let s = inputs.model.try_sample_continued(c, attrs, seed)?;
                    let lengths = match &nodes {
                        Some(nodes) => length_targets_in(
                            fl,
                            &nodes[start..start + rows],
                            &s.lengths,
                            &s.margins,
                            t,
                        ),
                        None => s.lengths.clone(),
                    };
                    let mut features = s.features;
                    for (i, &l) in lengths.iter().enumerate() {
                        features[(i * t + l) * f..(i + 1) * t * f].fill(0.0);
                    }
                    (features, lengths)
                }
                None => inputs.model.try_sample_features(c, attrs, seed)?,
            };
            feature_map
                .get_or_insert_with(|| calibration.fit_features(&features, &lengths, t, f))
                .apply(&mut features, &lengths, t, f);
            timings.sample_features_s += t0.elapsed().as_secs_f64();
            let t0 = Instant::now();
            decode_batch(
                enc,
                info,
                attrs,
                &features,
                &lengths,
                start,
                &mut records,
                &mut flow_of,
            )?;
            timings.decode_s += t0.elapsed().as_secs_f64();
        }
        let t0 = Instant::now();
        let sizes = info.flow_sizes.as_ref().filter(|_| cfg.calibrate);
        // The class strata of a record's size field: a flow's packet counts, a packet's lengths.
        let by_class = match (&records, sizes) {
            (Records::Flows(_), Some(sizes)) => sizes.pkt_by_class.as_slice(),
            (Records::Packets(_), _) if cfg.calibrate => info.pkt_len_by_class.as_slice(),
            _ => &[],
        };
        // Each record's class stratum for its size, from its flow's classes.
        let groups: Option<Vec<Option<usize>>> = match &nodes {
            Some(nodes) if !by_class.is_empty() => {
                let per_flow = class_groups(by_class, nodes);
                Some(
                    flow_of
                        .iter()
                        .map(|&i| per_flow.get(i).copied().flatten())
                        .collect(),
                )
            }
            _ => None,
        };
        let lengths_by_class = match (&mut records, &groups) {
            (Records::Packets(t), Some(g)) => {
                calibrate_packet_lengths(
                    by_class,
                    &info.code_probabilities,
                    enc.semantics.as_ref(),
                    &t.proto,
                    g,
                    &mut t.pkt_len,
                );
                true
            }
            _ => false,
        };
        let sized = if let (Some(sizes), Records::Flows(t)) = (sizes, &mut records) {
            calibrate_flow_sizes(
                sizes,
                &info.code_probabilities,
                enc.semantics.as_ref(),
                &t.proto,
                groups.as_deref(),
                &mut t.pkt,
                &mut t.td,
                &mut t.byt,
            );
            true
        } else {
            false
        };
        let warp = cfg.calibrate && info.time_quantiles_us.len() >= 2;
        if warp {
            let times = match &mut records {
                Records::Packets(t) => &mut t.time_us,
                Records::Flows(t) => &mut t.ts_us,
            };
            warp_times(
                times,
                &info.code_probabilities,
                &info.time_quantiles_us,
                |t| enc.semantics.as_ref().map_or(t, |s| s.round_time(t)),
            );
        }
        let mut clean = CleanCounts::default();
        let kept = clean_chunk(
            &records,
            &flow_of,
            &plan.local,
            cfg.duplicates,
            info.t_min_us,
            info.t_max_us,
            &mut clean,
        )?;
        drop(records);
        timings.decode_s += t0.elapsed().as_secs_f64();

        let t0 = Instant::now();
        if let Some((first, last)) = first_last_time(&kept) {
            if first < last_time {
                // Count the records of this chunk that precede the last one written.
                out_of_order += match &kept {
                    Records::Packets(t) => t.time_us.iter().filter(|&&x| x < last_time).count(),
                    Records::Flows(t) => t.ts_us.iter().filter(|&&x| x < last_time).count(),
                } as u64;
            }
            last_time = last_time.max(last);
        }
        for s in &mut sinks {
            s.write(&kept)?;
        }
        timings.write_s += t0.elapsed().as_secs_f64();

        let after = merger.counts();
        chunk_reports.push(ChunkReport {
            index: c,
            t_min_us: info.t_min_us,
            t_max_us: info.t_max_us,
            real_flows,
            sampled: after.sampled - before.sampled,
            flows: plan.len() as u64,
            carried: plan.carried as u64,
            clean: clean.clone(),
            calibrated: {
                let mut h = calibration.heads();
                if lengths_map.is_some() {
                    h.push(FLOW_LENGTHS.to_string());
                }
                if sized {
                    h.push(SIZES_BY_PKT.to_string());
                }
                if sized && groups.is_some() {
                    h.push(PKT_BY_CLASS.to_string());
                }
                if lengths_by_class {
                    h.push(PKT_LEN_BY_CLASS.to_string());
                }
                if warp {
                    h.push("time".to_string());
                }
                h
            },
        });
        add_clean(&mut clean_total, &clean);
    }

    let t0 = Instant::now();
    let mut outputs = Vec::with_capacity(sinks.len());
    for s in sinks {
        outputs.push(s.finish()?);
    }
    timings.write_s += t0.elapsed().as_secs_f64();
    let report = SynthReport {
        kind,
        seed: cfg.seed,
        scale: cfg.scale,
        chunks: chunk_reports,
        merge: merger.counts().clone(),
        clean: clean_total,
        out_of_order_records: out_of_order,
        outputs,
    };
    let path = out_dir.join(REPORT_OUTPUT);
    let text = serde_json::to_string_pretty(&report).expect("the report always serialises");
    std::fs::write(&path, text + "\n").map_err(|e| Error::io("writing", &path, e))?;
    Ok((report, timings))
}

fn add_clean(total: &mut CleanCounts, c: &CleanCounts) {
    total.decoded_records += c.decoded_records;
    total.duplicate_flows += c.duplicate_flows;
    total.duplicate_flow_records += c.duplicate_flow_records;
    total.new_port_flows += c.new_port_flows;
    total.outside_time_range += c.outside_time_range;
    total.kept_records += c.kept_records;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_seeds_differ_by_path_and_are_stable() {
        assert_ne!(derive_seed(0, &[0, 0]), derive_seed(0, &[0, 1]));
        assert_ne!(derive_seed(0, &[1, 0]), derive_seed(0, &[0, 1]));
        assert_eq!(derive_seed(7, &[3, 1, 2]), derive_seed(7, &[3, 1, 2]));
    }
}
