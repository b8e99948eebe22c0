//! The typed configuration of the encode stage (serde, every field defaulted, seed inside).

use std::collections::BTreeMap;

use netshare_core::records::TraceKind;
use serde::{Deserialize, Serialize};

/// How records are split into time chunks (SPEC §2.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Chunking {
    /// Equal time slices between the first and last record; empty slices are dropped.
    #[default]
    FixedTime,
    /// Equal record counts (in time order).
    FixedSize,
}

/// What happens to flows longer than `max_flow_len` (SPEC §2.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LongFlows {
    /// Keep the first `max_flow_len` records (the non-private default).
    Truncate,
    /// Drop the whole flow (private mode: the bound must not shape what the data says).
    Drop,
}

/// How a port or the protocol is encoded (SPEC §3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscreteEncoding {
    /// A learned IP2Vec embedding (tanh head, `embedding.dim` dims); decode by cosine nearest
    /// neighbour among the values seen in training.
    Embedding,
    /// One-hot over the sorted values seen (softmax head); unseen values map to the numerically
    /// nearest seen one.
    OneHot,
    /// The value's bits, most significant first, each a two-way one-hot (16 for ports, 8 for the
    /// protocol). Needs no fitting, so it suits private mode without public data.
    Bits,
    /// A one-hot over the most frequent values (at most `top_values`, each seen at least
    /// `top_min_count` times) plus "other", followed by the value's bits for the others.
    #[default]
    TopBits,
}

/// Output range of a continuous field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Range {
    /// [0, 1], sigmoid head.
    #[default]
    Unit,
    /// [-1, 1], tanh head.
    Symmetric,
}

/// The encoding of one non-key field (`td`, `pkt`, `pkt_len`, `label`, ...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FieldEncoding {
    /// Optional log1p, then min-max to `range`.
    Continuous {
        /// Apply log1p before the min-max scaling (and expm1 after decoding).
        #[serde(default)]
        log1p: bool,
        /// Output range (and so the activation).
        #[serde(default)]
        range: Range,
        /// Fixed bounds in the field's own units (before log1p); `None` fits them on the data
        /// (or on the public records in private mode).
        #[serde(default)]
        bounds: Option<[f64; 2]>,
        /// Encode through this many quantile knots of the data (the empirical CDF) instead of
        /// min-max; 0 = min-max. Ignored when `bounds` are fixed.
        #[serde(default)]
        quantiles: usize,
    },
    /// One-hot over a sorted category list.
    Categorical {
        /// A fixed category list; `None` takes the sorted values seen (plus the kind's defaults).
        #[serde(default)]
        categories: Option<Vec<String>>,
    },
}

/// Skip-gram parameters of the IP2Vec embedding (SPEC §3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbeddingConfig {
    /// Embedding dimension (paper: 10).
    pub dim: usize,
    /// Context window (paper: 5; with three-token sentences every pair is in range).
    pub window: usize,
    /// Negative samples per positive pair.
    pub negative: usize,
    /// Passes over the sentences.
    pub epochs: usize,
    /// Frequent-token subsampling threshold (word2vec's `sample`, gensim default 1e-3). The
    /// default 0 keeps every token as the SPEC says: on small traces (1k sentences) 1e-3
    /// discards most of them and five epochs learn next to nothing (measured in the tests).
    pub sample: f64,
    /// Initial learning rate, decayed linearly to `min_lr`.
    pub lr: f32,
    /// Final learning rate.
    pub min_lr: f32,
    /// Train on the input records or on the `public` input. Private mode always uses `public`.
    pub train_on: EmbeddingSource,
}

impl Default for EmbeddingConfig {
    fn default() -> Self {
        EmbeddingConfig {
            dim: 10,
            window: 5,
            negative: 5,
            epochs: 5,
            sample: 0.0,
            lr: 0.025,
            min_lr: 0.0001,
            train_on: EmbeddingSource::Input,
        }
    }
}

/// Which records train the embedding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingSource {
    /// The trace being encoded (the reference code's choice).
    #[default]
    Input,
    /// The `public` input (the paper's choice; required in private mode).
    Public,
}

/// The encode stage's config. Every field has a default; the seed is part of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncodeConfig {
    /// Number of chunks. `None` = automatic: one chunk per 100,000 records, between 1 and 10.
    /// The paper uses 10 on its 1M-record traces, which this reproduces there; on the small
    /// real traces (1k-10k records) ten chunks would leave each chunk's GAN a few hundred
    /// flows to learn from, so they get one. Private mode needs an explicit count (the record
    /// count is data).
    pub n_chunks: Option<usize>,
    /// How chunk edges are drawn.
    pub chunking: Chunking,
    /// Maximum records per flow. `None` = the data's longest flow, capped at
    /// `max_flow_len_cap` (the report says which and how many flows were cut). Required in
    /// private mode.
    pub max_flow_len: Option<usize>,
    /// Upper bound for the data-derived `max_flow_len` (tensor size is flows x this x features).
    pub max_flow_len_cap: usize,
    /// Truncate or drop long flows. `None` = truncate, or drop in private mode.
    pub long_flows: Option<LongFlows>,
    /// Records per generator step: the feature length is padded to a multiple of it.
    pub sample_len: usize,
    /// Encode inter-arrival gaps as log1p(gap µs) / log1p(chunk span µs) instead of
    /// gap / span. Packet gaps are microseconds inside chunks of minutes; on a linear scale they
    /// all sit at 0 and the generator cannot tell them apart.
    pub interarrival_log1p: bool,
    /// Encoding of `srcip` and `dstip` (one shared vocabulary): `bits` (NetShare's 32 two-way
    /// heads) or `top_bits` (the default: the most frequent addresses as a one-hot, the bits for
    /// the rest, so the generator reproduces the trace's heavy hitters exactly).
    pub ips: DiscreteEncoding,
    /// Encoding of `srcport` and `dstport` (one shared vocabulary). The default, `top_bits`,
    /// departs from NetShare's IP2Vec embedding on measurement: judged on held-out UGR16 flows
    /// (three seeds), it cut the dstport JSD from 0.52 to 0.14 and the srcport×dstport joint
    /// JSD from 0.53 to 0.15, where nearest-neighbour decoding of the embedding scattered the
    /// generator's outputs over rare ports. `embedding` remains available.
    pub ports: DiscreteEncoding,
    /// Encoding of `proto`.
    pub proto: DiscreteEncoding,
    /// `top_bits`: most values in the one-hot.
    pub top_values: usize,
    /// `top_bits`: fewest records a value needs to get its own one-hot entry.
    pub top_min_count: usize,
    /// Per-field overrides of the kind's default encodings (SPEC §3), by field name.
    pub fields: BTreeMap<String, FieldEncoding>,
    /// IP2Vec parameters.
    pub embedding: EmbeddingConfig,
    /// Learn the trace's field semantics (time and value resolution, implications such as
    /// "one packet lasts 0 s", per-protocol bytes-per-packet ranges) and enforce them when
    /// decoding. Fitted on the same records as the bounds (the public ones in private mode).
    pub semantics: bool,
    /// Private mode: no data-dependent bounds, vocabularies or lengths (SPEC §3, §7).
    pub private: bool,
    /// Fixed time range `[start, end]` in µs (private mode: the chunk edges and the time
    /// normalisation come from it; records outside are dropped and counted).
    pub time_range_us: Option<[i64; 2]>,
    /// Quantile knots of each chunk's flow start times: when above 0, `flow_start` is encoded
    /// through the chunk's empirical CDF of flow starts (`ChunkInfo::start_knots_us`) instead of
    /// min-max over the chunk's time range. 0: min-max (SPEC §2.5). Refused in private mode
    /// (the knots are fitted on the records being encoded).
    #[serde(skip_serializing_if = "is_zero")]
    pub flow_start_quantiles: usize,
    /// Uniform quantile bins of each chunk's training codes per continuous head and of its
    /// record times, which synth maps generated values onto (marginal calibration; the outer
    /// bins are refined, [`crate::calibrate::code_probabilities`]). `None`: 100, and 0 in
    /// private mode; 0 turns calibration off. Refused above 0 in private mode (the quantiles
    /// would be statistics of the records being encoded).
    pub code_quantiles: Option<usize>,
    /// Flow traces: encode `byt` as bytes per packet (`byt / pkt`) and decode it as the
    /// decoded ratio times the decoded `pkt`, so the generator learns the ratio, whose values
    /// cluster at header sizes and the MTU, instead of an unconstrained byte count.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub byt_per_pkt: bool,
    /// Seed of every random choice (embedding initialisation, negative sampling).
    pub seed: u64,
}

fn is_zero(x: &usize) -> bool {
    *x == 0
}

impl Default for EncodeConfig {
    fn default() -> Self {
        EncodeConfig {
            n_chunks: None,
            chunking: Chunking::FixedTime,
            max_flow_len: None,
            max_flow_len_cap: 200,
            long_flows: None,
            sample_len: 1,
            interarrival_log1p: true,
            ips: DiscreteEncoding::TopBits,
            ports: DiscreteEncoding::TopBits,
            proto: DiscreteEncoding::TopBits,
            top_values: 64,
            top_min_count: 3,
            fields: BTreeMap::new(),
            embedding: EmbeddingConfig::default(),
            semantics: true,
            private: false,
            time_range_us: None,
            flow_start_quantiles: 0,
            code_quantiles: None,
            byt_per_pkt: false,
            seed: 0,
        }
    }
}

/// Quantile knots of the flow size and duration fields by default.
pub const DEFAULT_QUANTILES: usize = 100;

/// Records per chunk targeted by the automatic chunk count.
pub const AUTO_RECORDS_PER_CHUNK: usize = 100_000;
/// Most chunks the automatic chunk count picks (the paper's count).
pub const AUTO_MAX_CHUNKS: usize = 10;

impl EncodeConfig {
    /// The long-flow policy in effect.
    pub fn long_flow_policy(&self) -> LongFlows {
        self.long_flows.unwrap_or(if self.private {
            LongFlows::Drop
        } else {
            LongFlows::Truncate
        })
    }

    /// The code quantiles per head in effect (see `code_quantiles`).
    pub fn code_quantiles(&self) -> usize {
        self.code_quantiles.unwrap_or(if self.private {
            0
        } else {
            crate::calibrate::DEFAULT_CODE_QUANTILES
        })
    }

    /// The encoding of a non-key field: the override if any, else the kind's default.
    pub fn field_encoding(&self, kind: TraceKind, field: &str) -> Option<FieldEncoding> {
        if let Some(e) = self.fields.get(field) {
            return Some(e.clone());
        }
        default_field_encoding(kind, field, self.private)
    }
}

/// The names of the non-key fields of a trace kind, in feature order (ARCHITECTURE.md).
pub fn trace_fields(kind: TraceKind) -> &'static [&'static str] {
    match kind {
        TraceKind::Flows => &["td", "pkt", "byt", "label"],
        TraceKind::Packets => &["pkt_len", "tos", "id", "flag", "off", "ttl"],
    }
}

/// The default encoding of a field. Flows take log1p on td, pkt, byt (SPEC §3). Packet header
/// fields: `id` keeps its fixed range; `pkt_len`, `tos`, `ttl` and `off` go through their
/// empirical CDF, because real hosts send a handful of TTLs and TOS values, offsets are almost
/// always 0 and lengths cluster, and a min-max code over [0, 255] decodes a generator's
/// continuous output to values no host sent. In private mode the knots would come from the
/// private records, so those fields keep NetShare's fixed ranges (`pkt_len` [20, 1500]).
pub fn default_field_encoding(
    kind: TraceKind,
    field: &str,
    private: bool,
) -> Option<FieldEncoding> {
    let cont = |log1p: bool, bounds: Option<[f64; 2]>| FieldEncoding::Continuous {
        log1p,
        range: Range::Unit,
        bounds,
        quantiles: 0,
    };
    Some(match (kind, field) {
        // Flow sizes and durations are heavy-tailed with a mass at their minimum (one packet,
        // 0 s): their empirical CDF is what the generator learns best (see `quantiles`).
        (TraceKind::Flows, "td" | "pkt" | "byt") if !private => FieldEncoding::Continuous {
            log1p: true,
            range: Range::Unit,
            bounds: None,
            quantiles: DEFAULT_QUANTILES,
        },
        (TraceKind::Flows, "td" | "pkt" | "byt") => cont(true, None),
        (TraceKind::Flows, "label") => FieldEncoding::Categorical { categories: None },
        (TraceKind::Packets, "pkt_len" | "tos" | "ttl" | "off") if !private => {
            FieldEncoding::Continuous {
                log1p: false,
                range: Range::Unit,
                bounds: None,
                quantiles: DEFAULT_QUANTILES,
            }
        }
        (TraceKind::Packets, "pkt_len") => cont(false, Some([20.0, 1500.0])),
        (TraceKind::Packets, "tos" | "ttl") => cont(false, Some([0.0, 255.0])),
        (TraceKind::Packets, "id") => cont(false, Some([0.0, 65535.0])),
        (TraceKind::Packets, "off") => cont(false, Some([0.0, 8191.0])),
        (TraceKind::Packets, "flag") => FieldEncoding::Categorical { categories: None },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_json_gives_the_defaults_and_unknown_keys_are_refused() {
        let c: EncodeConfig = serde_json::from_str("{}").expect("defaults");
        assert_eq!(c, EncodeConfig::default());
        let err = serde_json::from_str::<EncodeConfig>(r#"{"n_chunk": 3}"#).expect_err("typo");
        assert!(err.to_string().contains("n_chunk"), "{err}");
    }

    #[test]
    fn field_overrides_parse_and_take_precedence() {
        let c: EncodeConfig = serde_json::from_str(
            r#"{"fields": {"td": {"type": "continuous", "range": "symmetric", "bounds": [0, 10]}}}"#,
        )
        .expect("parse");
        assert_eq!(
            c.field_encoding(TraceKind::Flows, "td"),
            Some(FieldEncoding::Continuous {
                log1p: false,
                range: Range::Symmetric,
                bounds: Some([0.0, 10.0]),
                quantiles: 0,
            })
        );
        assert_eq!(
            c.field_encoding(TraceKind::Flows, "pkt"),
            Some(FieldEncoding::Continuous {
                log1p: true,
                range: Range::Unit,
                bounds: None,
                quantiles: DEFAULT_QUANTILES,
            })
        );
    }

    #[test]
    fn private_mode_drops_long_flows_by_default() {
        let c = EncodeConfig {
            private: true,
            ..EncodeConfig::default()
        };
        assert_eq!(c.long_flow_policy(), LongFlows::Drop);
        assert_eq!(
            EncodeConfig::default().long_flow_policy(),
            LongFlows::Truncate
        );
    }
}
