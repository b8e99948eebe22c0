//! Time chunks, flows within a chunk and cross-chunk flow tags (SPEC §2.1-§2.4), plus the
//! `chunks.json` artifact that tells the model and the synthesiser each chunk's time range.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::{Chunking, Range};
use crate::error::{Error, Result};
use crate::fields::ContinuousCodec;
use crate::table::FiveTuple;

/// One chunk as recorded in `chunks.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkInfo {
    /// Index among the non-empty chunks (0-based; the `tag/in_chunk/NNN` number).
    pub index: usize,
    /// Start of the chunk's time range in µs: `flow_start` 0 decodes to this.
    pub t_min_us: i64,
    /// End of the chunk's time range in µs: `flow_start` 1 decodes to this.
    pub t_max_us: i64,
    /// Flows (samples) in the chunk's tensors.
    pub n_flows: usize,
    /// Records in the chunk's tensors (after truncation or dropping of long flows).
    pub n_records: usize,
    /// Records of the input that fell in this chunk (before truncation or dropping).
    pub n_input_records: usize,
    /// The chunk's tensor file, e.g. `train-000.safetensors`.
    pub train_file: String,
    /// Quantiles of the chunk's flow start times in µs at probabilities 0, 1/K, …, 1
    /// (`flow_start_quantiles` in the encode config). When present, `flow_start` is the flow's
    /// start through their piecewise-linear empirical CDF rather than its position in
    /// `[t_min_us, t_max_us]`, so the generator learns a uniform marginal instead of the
    /// trace's daily bursts. Absent: the linear position.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub start_knots_us: Vec<i64>,
    /// The probabilities of `code_quantiles`, ascending from 0 to 1
    /// ([`crate::calibrate::code_probabilities`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub code_probabilities: Vec<f64>,
    /// Quantiles at `code_probabilities` of the codes this chunk's model trains on, for each
    /// one-dimensional continuous head, by head name (`flow_start`, `interarrival`, `td`, …).
    /// Synth maps generated codes onto them ([`crate::calibrate`]). Absent in private mode.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub code_quantiles: BTreeMap<String, Vec<f32>>,
    /// For each class head of the attributes (one-hot fields, top values), how many of the
    /// chunk's training flows took each class, by head name. Synth gives each class that share
    /// of the generated flows ([`crate::classes`]). Recorded with `code_quantiles`; absent in
    /// private mode.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub class_counts: BTreeMap<String, Vec<u64>>,
    /// For the protocol's class head and each port's, how many of the chunk's training flows
    /// took each pair of their classes. Synth gives a flow's frequent port only a protocol the
    /// training flows used it with ([`crate::classes::ClassPairs`]). Recorded with
    /// `class_counts`; absent in private mode.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub class_pairs: Vec<crate::classes::ClassPairs>,
    /// The training flows' lengths (records per flow) within nested strata of their classes
    /// ([`crate::lengths`]), onto which synth maps the generated flows' lengths. Recorded with
    /// `code_quantiles`, for flow and packet traces; absent in private mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_lengths: Option<crate::lengths::FlowLengths>,
    /// Quantiles at `code_probabilities` of the chunk's training record times (µs), onto which
    /// synth maps the generated record times ([`crate::calibrate::warp_times`]). Absent in
    /// private mode.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub time_quantiles_us: Vec<i64>,
    /// For flow traces: the training packet counts, and durations and bytes per packet within
    /// strata of packet counts, at `code_probabilities` ([`crate::calibrate::flow_sizes`]),
    /// onto which synth maps the decoded records'
    /// ([`crate::calibrate::calibrate_flow_sizes`]). Absent in private mode and for packet
    /// traces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_sizes: Option<crate::calibrate::FlowSizes>,
    /// For packet traces: the training packet lengths within the class strata of their flows
    /// ([`crate::calibrate::class_strata`]), onto which synth maps the decoded packets'
    /// ([`crate::calibrate::calibrate_packet_lengths`]). Absent in private mode, for flow
    /// traces, and when no class stratum below the chunk holds enough packets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pkt_len_by_class: Vec<crate::calibrate::ClassQuantiles>,
}

impl ChunkInfo {
    /// The chunk's span in µs (at least 1, so normalisation never divides by zero).
    pub fn span_us(&self) -> i64 {
        (self.t_max_us - self.t_min_us).max(1)
    }

    /// The empirical-CDF codec of `start_knots_us`, when there are at least two knots.
    fn start_codec(&self) -> Option<ContinuousCodec> {
        (self.start_knots_us.len() >= 2).then(|| {
            let knots: Vec<f64> = self.start_knots_us.iter().map(|&t| t as f64).collect();
            ContinuousCodec {
                log1p: false,
                range: Range::Unit,
                lo: knots[0],
                hi: knots[knots.len() - 1],
                integer: false,
                knots,
            }
        })
    }

    /// The `flow_start` code of a flow starting at `start_us`, in [0, 1].
    pub fn encode_start(&self, start_us: i64) -> f64 {
        match self.start_codec() {
            Some(c) => f64::from(c.encode(start_us as f64).0),
            None => ((start_us - self.t_min_us) as f64 / self.span_us() as f64).clamp(0.0, 1.0),
        }
    }

    /// The start time in µs (not rounded) that a `flow_start` code in [0, 1] decodes to.
    pub fn decode_start(&self, code: f64) -> f64 {
        let code = code.clamp(0.0, 1.0);
        match self.start_codec() {
            // The codec works in f32 activations; a code is one (the model's output).
            Some(c) => c.decode(code as f32),
            None => self.t_min_us as f64 + code * self.span_us() as f64,
        }
    }
}

/// `k` quantiles (probabilities 0, 1/k, …, 1) of flow start times in µs, as
/// [`ChunkInfo::start_knots_us`] holds them; empty for fewer than two starts or `k` = 0.
pub fn start_knots(starts_us: &[i64], k: usize) -> Vec<i64> {
    if starts_us.len() < 2 || k == 0 {
        return Vec::new();
    }
    let mut t = starts_us.to_vec();
    t.sort_unstable();
    let n = t.len();
    (0..=k).map(|i| t[i * (n - 1) / k]).collect()
}

/// The content of `chunks.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunksFile {
    /// How the chunks were drawn.
    pub chunking: Chunking,
    /// The chunks in time order.
    pub chunks: Vec<ChunkInfo>,
}

/// The tensor file name of chunk `i`.
pub fn train_file_name(i: usize) -> String {
    format!("train-{i:03}.safetensors")
}

/// Reads `chunks.json`.
pub fn read_chunks(path: &Path) -> Result<ChunksFile> {
    read_json(path)
}

/// Writes `chunks.json`.
pub fn write_chunks(path: &Path, chunks: &ChunksFile) -> Result<()> {
    write_json(path, chunks)
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    text.push('\n');
    std::fs::write(path, text).map_err(|e| Error::io("writing", path, e))
}

/// The rows (indices into the table) of one non-empty chunk, in time order, and its range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkRows {
    /// Row indices, in time order.
    pub rows: Vec<usize>,
    /// Normalisation range start (µs).
    pub t_min_us: i64,
    /// Normalisation range end (µs).
    pub t_max_us: i64,
}

/// Row indices sorted by time; equal times keep input order, so the result is deterministic.
pub fn time_order(time: &[i64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..time.len()).collect();
    order.sort_by_key(|&i| time[i]);
    order
}

/// Splits time-ordered rows into at most `n` non-empty chunks.
///
/// `fixed_time`: record `t` goes to slice `floor((t - lo) * n / (hi - lo))`, the last slice
/// closed at `hi`. This is the SPEC's `linspace(lo, hi, n + 1)` edges with the last edge nudged
/// so the last record is inside, computed in exact integer arithmetic instead of by a relative
/// nudge (1e-5 of an epoch timestamp in µs would widen the last slice by hours). `range` fixes
/// `[lo, hi]` (private mode) and then each chunk's normalisation range is its slice; otherwise
/// `[lo, hi]` is the data's and each chunk normalises by its own first and last record.
/// Rows outside a fixed range must have been removed by the caller.
///
/// `fixed_size`: `n` runs of equal record counts (the first `len % n` one longer).
pub fn split_chunks(
    time: &[i64],
    order: &[usize],
    n: usize,
    chunking: Chunking,
    range: Option<[i64; 2]>,
) -> Vec<ChunkRows> {
    let n = n.max(1);
    let Some((&first, &last)) = order.first().zip(order.last()) else {
        return Vec::new();
    };
    let mut buckets: Vec<Vec<usize>> = vec![Vec::new(); n];
    match chunking {
        Chunking::FixedTime => {
            let [lo, hi] = range.unwrap_or([time[first], time[last]]);
            let span = i128::from(hi) - i128::from(lo);
            for &r in order {
                let k = if span <= 0 {
                    0
                } else {
                    let k = (i128::from(time[r]) - i128::from(lo)) * n as i128 / span;
                    k.clamp(0, n as i128 - 1) as usize
                };
                buckets[k].push(r);
            }
            let mut out = Vec::new();
            for (k, rows) in buckets.into_iter().enumerate() {
                if rows.is_empty() {
                    continue;
                }
                let (t_min_us, t_max_us) = match range {
                    Some(_) => (edge(lo, span, n, k), edge(lo, span, n, k + 1)),
                    None => (time[rows[0]], time[rows[rows.len() - 1]]),
                };
                out.push(ChunkRows {
                    rows,
                    t_min_us,
                    t_max_us,
                });
            }
            out
        }
        Chunking::FixedSize => {
            let len = order.len();
            let (base, extra) = (len / n, len % n);
            let mut start = 0;
            let mut out = Vec::new();
            for k in 0..n {
                let size = base + usize::from(k < extra);
                let rows = order[start..start + size].to_vec();
                start += size;
                if let (Some(&a), Some(&b)) = (rows.first(), rows.last()) {
                    out.push(ChunkRows {
                        t_min_us: time[a],
                        t_max_us: time[b],
                        rows,
                    });
                }
            }
            out
        }
    }
}

fn edge(lo: i64, span: i128, n: usize, k: usize) -> i64 {
    (i128::from(lo) + span * k as i128 / n as i128) as i64
}

/// One flow of a chunk: its five-tuple and its rows in time order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    /// The five-tuple.
    pub key: FiveTuple,
    /// Row indices, in time order.
    pub rows: Vec<usize>,
}

/// Groups a chunk's rows by five-tuple; flows come in the order of their first record.
pub fn group_flows(rows: &[usize], keys: &[FiveTuple]) -> Vec<Flow> {
    let mut index: HashMap<FiveTuple, usize> = HashMap::new();
    let mut flows: Vec<Flow> = Vec::new();
    for &r in rows {
        let key = keys[r];
        let i = *index.entry(key).or_insert_with(|| {
            flows.push(Flow {
                key,
                rows: Vec::new(),
            });
            flows.len() - 1
        });
        flows[i].rows.push(r);
    }
    flows
}

/// Cross-chunk tags of one flow sample (SPEC §2.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowTags {
    /// This chunk is the first one the five-tuple appears in.
    pub starts_here: bool,
    /// Whether the five-tuple appears in chunk i, for every chunk.
    pub in_chunk: Vec<bool>,
}

/// Tags for every flow of every chunk: `flows[c][j]` gets `tags[c][j]`.
pub fn flow_tags(flows: &[Vec<Flow>]) -> Vec<Vec<FlowTags>> {
    let n = flows.len();
    let mut seen: HashMap<FiveTuple, Vec<bool>> = HashMap::new();
    for (c, chunk) in flows.iter().enumerate() {
        for f in chunk {
            seen.entry(f.key).or_insert_with(|| vec![false; n])[c] = true;
        }
    }
    flows
        .iter()
        .enumerate()
        .map(|(c, chunk)| {
            chunk
                .iter()
                .map(|f| {
                    let in_chunk = seen[&f.key].clone();
                    let first = in_chunk.iter().position(|&b| b);
                    FlowTags {
                        starts_here: first == Some(c),
                        in_chunk,
                    }
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(srcip: u32) -> FiveTuple {
        FiveTuple {
            srcip: netshare_core::addr::v4(srcip),
            dstip: netshare_core::addr::v4(1),
            srcport: 2,
            dstport: 3,
            proto: 6,
        }
    }

    #[test]
    fn fixed_time_puts_the_last_record_in_the_last_chunk_and_drops_empty_slices() {
        // Span 0..100 in 4 slices [0,25) [25,50) [50,75) [75,100]; nothing in [50,75).
        let time = vec![0, 10, 25, 49, 75, 100];
        let order = time_order(&time);
        let chunks = split_chunks(&time, &order, 4, Chunking::FixedTime, None);
        let rows: Vec<Vec<usize>> = chunks.iter().map(|c| c.rows.clone()).collect();
        assert_eq!(rows, vec![vec![0, 1], vec![2, 3], vec![4, 5]]);
        assert_eq!((chunks[1].t_min_us, chunks[1].t_max_us), (25, 49));
    }

    #[test]
    fn fixed_range_chunks_normalise_by_their_slice() {
        let time = vec![5, 60];
        let order = time_order(&time);
        let chunks = split_chunks(&time, &order, 2, Chunking::FixedTime, Some([0, 100]));
        assert_eq!(
            chunks
                .iter()
                .map(|c| (c.t_min_us, c.t_max_us))
                .collect::<Vec<_>>(),
            vec![(0, 50), (50, 100)]
        );
    }

    #[test]
    fn fixed_size_splits_by_count_in_time_order() {
        let time = vec![9, 1, 5, 3, 7];
        let order = time_order(&time);
        let chunks = split_chunks(&time, &order, 2, Chunking::FixedSize, None);
        assert_eq!(chunks[0].rows, vec![1, 3, 2]);
        assert_eq!(chunks[1].rows, vec![4, 0]);
        let total: usize = chunks.iter().map(|c| c.rows.len()).sum();
        assert_eq!(total, time.len());
    }

    #[test]
    fn a_flow_in_chunks_0_2_and_3_gets_exactly_those_bits() {
        let keys = vec![key(7), key(8), key(7), key(7), key(9)];
        // Chunk 0: rows 0,1; chunk 1: row 4; chunk 2: row 2; chunk 3: row 3.
        let flows = vec![
            group_flows(&[0, 1], &keys),
            group_flows(&[4], &keys),
            group_flows(&[2], &keys),
            group_flows(&[3], &keys),
        ];
        let tags = flow_tags(&flows);
        let want = vec![true, false, true, true];
        assert_eq!(flows[0][0].key, key(7));
        assert_eq!(
            tags[0][0],
            FlowTags {
                starts_here: true,
                in_chunk: want.clone()
            }
        );
        assert_eq!(
            tags[2][0],
            FlowTags {
                starts_here: false,
                in_chunk: want.clone()
            }
        );
        assert_eq!(
            tags[3][0],
            FlowTags {
                starts_here: false,
                in_chunk: want
            }
        );
        assert_eq!(
            tags[1][0],
            FlowTags {
                starts_here: true,
                in_chunk: vec![false, true, false, false]
            }
        );
    }

    #[test]
    fn flows_group_by_five_tuple_in_first_seen_order() {
        let keys = vec![key(2), key(1), key(2), key(3), key(1)];
        let flows = group_flows(&[0, 1, 2, 3, 4], &keys);
        let got: Vec<(u32, Vec<usize>)> = flows
            .iter()
            .map(|f| {
                let ip = netshare_core::addr::v4_bits(f.key.srcip).expect("IPv4");
                (ip, f.rows.clone())
            })
            .collect();
        assert_eq!(got, vec![(2, vec![0, 2]), (1, vec![1, 4]), (3, vec![3])]);
    }

    fn info(knots: Vec<i64>) -> ChunkInfo {
        ChunkInfo {
            index: 0,
            t_min_us: 1_000,
            t_max_us: 11_000,
            n_flows: 0,
            n_records: 0,
            n_input_records: 0,
            train_file: train_file_name(0),
            start_knots_us: knots,
            code_probabilities: Vec::new(),
            code_quantiles: BTreeMap::new(),
            time_quantiles_us: Vec::new(),
            flow_sizes: None,
            class_counts: BTreeMap::new(),
            class_pairs: Vec::new(),
            flow_lengths: None,
            pkt_len_by_class: Vec::new(),
        }
    }

    #[test]
    fn start_quantiles_give_uniform_codes_and_decode_back_to_the_starts() {
        // Nine flows in a burst at the start of the range, one at its end.
        let starts = [
            1_000, 1_010, 1_020, 1_030, 1_040, 1_050, 1_060, 1_070, 1_080, 11_000,
        ];
        let knots = start_knots(&starts, 9);
        assert_eq!(knots, starts.to_vec());
        assert!(start_knots(&starts[..1], 9).is_empty());
        assert!(start_knots(&starts, 0).is_empty());
        let c = info(knots);
        // The i-th of ten distinct starts sits at probability i/9; min-max would put the first
        // nine in [0, 0.008].
        for (i, &t) in starts.iter().enumerate() {
            let code = c.encode_start(t);
            assert!((code - i as f64 / 9.0).abs() < 1e-6, "{t}: {code}");
            assert!((c.decode_start(code) - t as f64).abs() < 0.05, "{t}");
        }
        // Between knots the CDF is linear: halfway from 1,080 to 11,000 is halfway to 1.
        assert!((c.encode_start(6_040) - (8.5 / 9.0)).abs() < 1e-6);
        // Outside the knots: clamped to the ends.
        assert_eq!(c.encode_start(0), 0.0);
        assert_eq!(c.decode_start(2.0), 11_000.0);
    }

    #[test]
    fn without_start_quantiles_flow_start_is_the_position_in_the_range() {
        let c = info(Vec::new());
        assert_eq!(c.encode_start(3_500), 0.25);
        assert_eq!(c.encode_start(20_000), 1.0);
        assert_eq!(c.decode_start(0.25), 3_500.0);
        let json = serde_json::to_string(&c).expect("json");
        assert!(!json.contains("start_knots_us"), "{json}");
    }
}
