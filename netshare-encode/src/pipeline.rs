//! The encode stage end to end: records → time chunks → flows → tags → fitted encoder →
//! per-chunk training tensors, the report, and the files of the stage's output directory.

use std::collections::BTreeMap;
use std::path::Path;

use netshare_core::records::{Records, TraceKind, read_records};
use netshare_core::tensors::ChunkTensors;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::chunks::{
    ChunkInfo, ChunksFile, Flow, FlowTags, flow_tags, group_flows, split_chunks, start_knots,
    time_order, train_file_name, write_chunks, write_json,
};
use crate::config::{
    AUTO_MAX_CHUNKS, AUTO_RECORDS_PER_CHUNK, Chunking, EmbeddingSource, EncodeConfig, LongFlows,
};
use crate::encoder::{EncodeCounts, FittedEncoder};
use crate::error::{Error, Result};
use crate::fit::{EmbeddingReport, Shape, fit_encoder};
use crate::table::{Column, Table};

/// Output file names of the stage.
pub mod names {
    /// The fitted encoder.
    pub const ENCODER: &str = "encoder.json";
    /// The tensor layout.
    pub const LAYOUT: &str = "layout.json";
    /// The chunk table.
    pub const CHUNKS: &str = "chunks.json";
    /// The report.
    pub const REPORT: &str = "encode-report.json";
}

/// How `max_flow_len` was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxLenSource {
    /// Given by the config.
    Config,
    /// The data's longest flow.
    Data,
    /// The data's longest flow was above the cap; the cap was used.
    Cap,
}

/// `encode-report.json`: what the stage did, with every count a reader needs to trust it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EncodeReport {
    /// Trace kind.
    pub kind: TraceKind,
    /// Records in the input.
    pub input_records: usize,
    /// Records dropped for lying outside `time_range_us`.
    pub outside_time_range: usize,
    /// Records in the training tensors (sum over chunks).
    pub encoded_records: usize,
    /// Flows (samples) in the training tensors.
    pub encoded_flows: usize,
    /// Chunks asked for (after the automatic choice).
    pub n_chunks_requested: usize,
    /// Non-empty chunks written.
    pub n_chunks: usize,
    /// How chunks were drawn.
    pub chunking: Chunking,
    /// The maximum flow length used.
    pub max_flow_len: usize,
    /// Where it came from.
    pub max_flow_len_source: MaxLenSource,
    /// The longest flow (records per five-tuple in one chunk) in the data.
    pub data_max_flow_len: usize,
    /// The cap on a data-derived maximum.
    pub max_flow_len_cap: usize,
    /// Policy for longer flows.
    pub long_flows: LongFlows,
    /// Flows cut to `max_flow_len`.
    pub truncated_flows: usize,
    /// Records removed by cutting.
    pub truncated_records: usize,
    /// Flows dropped for being too long.
    pub dropped_flows: usize,
    /// Records in dropped flows.
    pub dropped_records: usize,
    /// Records per generator step.
    pub sample_len: usize,
    /// Time steps per sample.
    pub max_len: usize,
    /// Attribute dims.
    pub attribute_dim: usize,
    /// Feature dims per step.
    pub feature_dim: usize,
    /// Values clamped or not in the vocabulary, by field.
    pub counts: EncodeCounts,
    /// The embedding training, when ports or protocol are embedded.
    pub embedding: Option<EmbeddingReport>,
    /// Private mode.
    pub private: bool,
    /// Per chunk: range, flow and record counts, tensor file.
    pub chunks: Vec<ChunkInfo>,
}

/// Everything the stage produces, in memory.
#[derive(Clone, Debug)]
pub struct Encoded {
    /// The fitted encoder.
    pub encoder: FittedEncoder,
    /// The chunk table.
    pub chunks: ChunksFile,
    /// One tensor set per chunk, in chunk order.
    pub tensors: Vec<ChunkTensors>,
    /// The report.
    pub report: EncodeReport,
}

impl Encoded {
    /// Writes `encoder.json`, `layout.json`, `chunks.json`, `train-NNN.safetensors` and
    /// `encode-report.json` into `dir` (which must exist).
    pub fn write(&self, dir: &Path) -> Result<()> {
        self.encoder.write(&dir.join(names::ENCODER))?;
        write_json(&dir.join(names::LAYOUT), &self.encoder.layout())?;
        write_chunks(&dir.join(names::CHUNKS), &self.chunks)?;
        for (info, t) in self.chunks.chunks.iter().zip(&self.tensors) {
            t.write(&dir.join(&info.train_file))?;
        }
        write_json(&dir.join(names::REPORT), &self.report)
    }
}

/// Reads the records (and optional public records), encodes them and writes every output file
/// into `out_dir` (created if missing).
pub fn encode_files(
    records: &Path,
    public: Option<&Path>,
    cfg: &EncodeConfig,
    out_dir: &Path,
) -> Result<EncodeReport> {
    let input = read_records(records)?;
    if input.is_empty() {
        return Err(Error::Empty(records.display().to_string()));
    }
    let public = public.map(read_records).transpose()?;
    let encoded = encode(&input, public.as_ref(), cfg)?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io("creating", out_dir, e))?;
    encoded.write(out_dir)?;
    Ok(encoded.report)
}

/// The automatic chunk count for `n` records (see [`EncodeConfig::n_chunks`]).
pub fn auto_chunks(n: usize) -> usize {
    n.div_ceil(AUTO_RECORDS_PER_CHUNK).clamp(1, AUTO_MAX_CHUNKS)
}

fn check_config(cfg: &EncodeConfig, public: Option<&Table>, kind: TraceKind) -> Result<()> {
    if cfg.sample_len == 0 {
        return Err(Error::Config("sample_len must be at least 1".into()));
    }
    if cfg.n_chunks == Some(0) {
        return Err(Error::Config("n_chunks must be at least 1".into()));
    }
    if cfg.max_flow_len == Some(0) || cfg.max_flow_len_cap == 0 {
        return Err(Error::Config(
            "max_flow_len and max_flow_len_cap must be at least 1".into(),
        ));
    }
    if cfg.embedding.dim == 0 {
        return Err(Error::Config("embedding.dim must be at least 1".into()));
    }
    if let Some([a, b]) = cfg.time_range_us
        && a >= b
    {
        return Err(Error::Config(format!(
            "time_range_us [{a}, {b}] must have start < end"
        )));
    }
    if let Some(p) = public
        && p.kind != kind
    {
        return Err(Error::Config(format!(
            "public records are {:?}, the input is {kind:?}",
            p.kind
        )));
    }
    for name in cfg.fields.keys() {
        if !crate::config::trace_fields(kind).contains(&name.as_str()) {
            return Err(Error::Config(format!(
                "fields.{name}: not a field of {kind:?} traces (they have {:?})",
                crate::config::trace_fields(kind)
            )));
        }
    }
    if cfg.private && cfg.code_quantiles.is_some_and(|k| k > 0) {
        return Err(Error::Config(
            "code_quantiles fits the training codes of the records being encoded; \
             private mode must not (set it to 0 or leave it out)"
                .into(),
        ));
    }
    if cfg.private && cfg.flow_start_quantiles > 0 {
        return Err(Error::Config(
            "flow_start_quantiles fits the flow start times of the records being encoded; \
             private mode must not (set it to 0)"
                .into(),
        ));
    }
    if cfg.private {
        let mut missing = Vec::new();
        if cfg.n_chunks.is_none() {
            missing.push("n_chunks");
        }
        if cfg.max_flow_len.is_none() {
            missing.push("max_flow_len");
        }
        if cfg.time_range_us.is_none() {
            missing.push("time_range_us");
        }
        if !missing.is_empty() {
            return Err(Error::Config(format!(
                "private mode needs {} set explicitly (they must not come from the data)",
                missing.join(", ")
            )));
        }
        if cfg.chunking != Chunking::FixedTime {
            return Err(Error::Config(
                "private mode needs fixed_time chunking (fixed_size edges are data quantiles)"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// Encodes records in memory. `public` records train the embedding (when configured, and always
/// in private mode) and, in private mode, give every fitted bound and vocabulary.
pub fn encode(records: &Records, public: Option<&Records>, cfg: &EncodeConfig) -> Result<Encoded> {
    let mut table = Table::from_records(records);
    let public = public.map(Table::from_records);
    check_config(cfg, public.as_ref(), table.kind)?;
    let input_records = table.len();

    let mut outside_time_range = 0;
    if let Some([lo, hi]) = cfg.time_range_us {
        let keep: Vec<usize> = (0..table.len())
            .filter(|&i| (lo..=hi).contains(&table.time[i]))
            .collect();
        outside_time_range = table.len() - keep.len();
        table = take(&table, &keep);
    }
    if table.is_empty() {
        return Err(Error::Empty(format!(
            "the input ({input_records} records, {outside_time_range} outside time_range_us)"
        )));
    }

    let order = time_order(&table.time);
    let n_requested = cfg.n_chunks.unwrap_or_else(|| auto_chunks(table.len()));
    let split = split_chunks(
        &table.time,
        &order,
        n_requested,
        cfg.chunking,
        cfg.time_range_us,
    );
    let mut chunk_flows: Vec<(crate::chunks::ChunkRows, Vec<Flow>)> = split
        .into_iter()
        .map(|c| {
            let flows = group_flows(&c.rows, &table.keys);
            (c, flows)
        })
        .collect();

    let data_max = chunk_flows
        .iter()
        .flat_map(|(_, fl)| fl.iter().map(|f| f.rows.len()))
        .max()
        .unwrap_or(1);
    let (max_flow_len, source) = match cfg.max_flow_len {
        Some(m) => (m, MaxLenSource::Config),
        None if data_max > cfg.max_flow_len_cap => (cfg.max_flow_len_cap, MaxLenSource::Cap),
        None => (data_max, MaxLenSource::Data),
    };
    let policy = cfg.long_flow_policy();
    let (mut truncated_flows, mut truncated_records) = (0, 0);
    let (mut dropped_flows, mut dropped_records) = (0, 0);
    for (_, flows) in &mut chunk_flows {
        match policy {
            LongFlows::Truncate => {
                for f in flows.iter_mut().filter(|f| f.rows.len() > max_flow_len) {
                    truncated_flows += 1;
                    truncated_records += f.rows.len() - max_flow_len;
                    f.rows.truncate(max_flow_len);
                }
            }
            LongFlows::Drop => flows.retain(|f| {
                let keep = f.rows.len() <= max_flow_len;
                if !keep {
                    dropped_flows += 1;
                    dropped_records += f.rows.len();
                }
                keep
            }),
        }
    }
    let n_input_by_chunk: Vec<usize> = chunk_flows.iter().map(|(c, _)| c.rows.len()).collect();
    let mut kept: Vec<(crate::chunks::ChunkRows, Vec<Flow>, usize)> = chunk_flows
        .into_iter()
        .zip(n_input_by_chunk)
        .filter(|((_, flows), _)| !flows.is_empty())
        .map(|((c, f), n)| (c, f, n))
        .collect();
    if kept.is_empty() {
        return Err(Error::Empty(format!(
            "the input after dropping {dropped_flows} flows longer than max_flow_len {max_flow_len}"
        )));
    }
    let flows_only: Vec<Vec<Flow>> = kept.iter_mut().map(|(_, f, _)| std::mem::take(f)).collect();
    let tags = flow_tags(&flows_only);
    let n_chunks = flows_only.len();

    let private = cfg.private;
    let fit_on = if private {
        public.as_ref()
    } else {
        Some(&table)
    };
    let embed_source = if private {
        EmbeddingSource::Public
    } else {
        cfg.embedding.train_on
    };
    let embed_on = match embed_source {
        EmbeddingSource::Input => Some(&table),
        EmbeddingSource::Public => public.as_ref(),
    };
    let (encoder, mut embedding) = fit_encoder(
        cfg,
        &table,
        fit_on,
        embed_on,
        Shape {
            n_chunks,
            max_flow_len,
        },
    )?;
    if let Some(e) = &mut embedding {
        e.source = embed_source;
    }

    // What marginal calibration records per chunk (nothing in private mode).
    let probs = crate::calibrate::code_probabilities(cfg.code_quantiles());
    let layout = encoder.layout();
    // A flow record's (proto, pkt, td, byt), for the packet-count strata.
    let record_sizes = match (
        table.kind,
        table.column("pkt"),
        table.column("td"),
        table.column("byt"),
    ) {
        (
            TraceKind::Flows,
            Some(Column::Num(pkt)),
            Some(Column::Num(td)),
            Some(Column::Num(byt)),
        ) if !probs.is_empty() => {
            let keys = &table.keys;
            Some(move |r: usize| {
                (
                    keys[r].proto,
                    pkt[r].max(0.0) as u64,
                    td[r],
                    byt[r].max(0.0) as u64,
                )
            })
        }
        _ => None,
    };
    // A packet trace's lengths, for their class strata.
    let packet_lengths = match (table.kind, table.column("pkt_len")) {
        (TraceKind::Packets, Some(Column::Num(v))) if !probs.is_empty() => Some(v.as_slice()),
        _ => None,
    };
    let built: Vec<(ChunkInfo, ChunkTensors, EncodeCounts)> = kept
        .par_iter()
        .zip(flows_only.par_iter())
        .zip(tags.par_iter())
        .enumerate()
        .map(|(index, (((rows, _, n_input), flows), tags))| {
            let mut info = ChunkInfo {
                index,
                t_min_us: rows.t_min_us,
                t_max_us: rows.t_max_us,
                n_flows: flows.len(),
                n_records: flows.iter().map(|f| f.rows.len()).sum(),
                n_input_records: *n_input,
                train_file: train_file_name(index),
                start_knots_us: start_knots(
                    &flows
                        .iter()
                        .map(|f| table.time[f.rows[0]])
                        .collect::<Vec<_>>(),
                    cfg.flow_start_quantiles,
                ),
                code_probabilities: Vec::new(),
                code_quantiles: BTreeMap::new(),
                time_quantiles_us: Vec::new(),
                flow_sizes: None,
                class_counts: BTreeMap::new(),
                class_pairs: Vec::new(),
                flow_lengths: None,
                pkt_len_by_class: Vec::new(),
            };
            let (tensors, counts) = chunk_tensors(&encoder, &table, &info, flows, tags);
            info.code_quantiles = crate::calibrate::code_quantiles(&layout, &tensors, &probs);
            if !probs.is_empty() {
                info.class_counts = crate::classes::class_counts(&layout, &tensors);
                info.class_pairs = crate::classes::class_pairs(&layout, &tensors);
                info.flow_lengths = crate::lengths::flow_lengths(&layout, &tensors);
            }
            info.time_quantiles_us = crate::calibrate::time_quantiles(
                flows
                    .iter()
                    .flat_map(|f| f.rows.iter().map(|&r| table.time[r]))
                    .collect(),
                &probs,
            );
            // Each training flow's deepest kept class stratum: tensor row i is flows[i].
            let nodes = info.flow_lengths.as_ref().and_then(|fl| {
                crate::lengths::strata_of(fl, &layout, &tensors.attributes, tensors.attr_dim)
            });
            // A size field's training values within those strata (each record takes its flow's).
            let by_class = |nodes: &[Vec<usize>], value: &dyn Fn(usize) -> f64| {
                let recs: Vec<(&[usize], f64)> = flows
                    .iter()
                    .zip(nodes)
                    .flat_map(|(f, node)| f.rows.iter().map(|&r| (node.as_slice(), value(r))))
                    .collect();
                crate::calibrate::class_strata(&recs, &probs)
            };
            if let (Some(pkt_len), Some(nodes)) = (packet_lengths, &nodes) {
                info.pkt_len_by_class = by_class(nodes, &|r| pkt_len[r]);
            }
            if let Some(record_sizes) = &record_sizes {
                info.flow_sizes = crate::calibrate::flow_sizes(
                    &flows
                        .iter()
                        .flat_map(|f| f.rows.iter().map(|&r| record_sizes(r)))
                        .collect::<Vec<_>>(),
                    &probs,
                );
                // The packet counts within the class strata the flow lengths nest by.
                if let (Some(sizes), Some(nodes)) = (&mut info.flow_sizes, &nodes) {
                    sizes.pkt_by_class = by_class(nodes, &|r| record_sizes(r).1 as f64);
                }
            }
            if !info.code_quantiles.is_empty()
                || !info.class_counts.is_empty()
                || info.flow_lengths.is_some()
                || !info.time_quantiles_us.is_empty()
                || info.flow_sizes.is_some()
                || !info.pkt_len_by_class.is_empty()
            {
                info.code_probabilities = probs.clone();
            }
            (info, tensors, counts)
        })
        .collect();

    let mut counts = EncodeCounts::default();
    let mut infos = Vec::with_capacity(built.len());
    let mut tensors = Vec::with_capacity(built.len());
    for (info, t, c) in built {
        counts.merge(&c);
        infos.push(info);
        tensors.push(t);
    }
    let report = EncodeReport {
        kind: table.kind,
        input_records,
        outside_time_range,
        encoded_records: infos.iter().map(|c| c.n_records).sum(),
        encoded_flows: infos.iter().map(|c| c.n_flows).sum(),
        n_chunks_requested: n_requested,
        n_chunks,
        chunking: cfg.chunking,
        max_flow_len,
        max_flow_len_source: source,
        data_max_flow_len: data_max,
        max_flow_len_cap: cfg.max_flow_len_cap,
        long_flows: policy,
        truncated_flows,
        truncated_records,
        dropped_flows,
        dropped_records,
        sample_len: encoder.sample_len,
        max_len: encoder.max_len,
        attribute_dim: encoder.attribute_dim(),
        feature_dim: encoder.feature_dim(),
        counts,
        embedding,
        private,
        chunks: infos.clone(),
    };
    Ok(Encoded {
        encoder,
        chunks: ChunksFile {
            chunking: cfg.chunking,
            chunks: infos,
        },
        tensors,
        report,
    })
}

/// Builds one chunk's tensors.
fn chunk_tensors(
    enc: &FittedEncoder,
    table: &Table,
    info: &ChunkInfo,
    flows: &[Flow],
    tags: &[FlowTags],
) -> (ChunkTensors, EncodeCounts) {
    let (a, t, f) = (enc.attribute_dim(), enc.max_len, enc.feature_dim());
    let mut out = ChunkTensors::zeros(flows.len(), a, t, f);
    let mut counts = EncodeCounts::default();
    let span = info.span_us();
    for (i, (flow, tag)) in flows.iter().zip(tags).enumerate() {
        let first = table.time[flow.rows[0]];
        let fs = info.encode_start(first);
        enc.encode_attributes(
            &flow.key,
            fs,
            Some(tag),
            &mut out.attributes[i * a..(i + 1) * a],
            &mut counts,
        );
        let mut prev = first;
        for (s, &r) in flow.rows.iter().enumerate() {
            let step = &mut out.features[(i * t + s) * f..(i * t + s + 1) * f];
            step[0] = enc.encode_interarrival(table.time[r] - prev, span);
            prev = table.time[r];
            enc.encode_fields(
                |k| match &table.fields[k].1 {
                    Column::Num(v) => v[r],
                    Column::Cat(v) => v[r].parse().unwrap_or(f64::NAN),
                },
                |k| match &table.fields[k].1 {
                    Column::Cat(v) => v[r].clone(),
                    Column::Num(v) => v[r].to_string(),
                },
                step,
                &mut counts,
            );
            out.gen_flag[i * t + s] = 1.0;
        }
    }
    (out, counts)
}

fn take(t: &Table, rows: &[usize]) -> Table {
    Table {
        kind: t.kind,
        keys: rows.iter().map(|&i| t.keys[i]).collect(),
        time: rows.iter().map(|&i| t.time[i]).collect(),
        fields: t
            .fields
            .iter()
            .map(|(n, c)| {
                let c = match c {
                    Column::Num(v) => Column::Num(rows.iter().map(|&i| v[i]).collect()),
                    Column::Cat(v) => Column::Cat(rows.iter().map(|&i| v[i].clone()).collect()),
                };
                (n.clone(), c)
            })
            .collect(),
    }
}
