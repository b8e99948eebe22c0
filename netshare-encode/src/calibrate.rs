//! Marginal calibration of the continuous heads.
//!
//! A generator learns how fields move together better than it learns each field's exact
//! distribution: trained at our budget it puts too much mass in the tails of flow sizes and
//! durations, and the marginals sampler, which only copies the marginals, beat it on most size
//! and duration EMDs (host-b emd pkt 11.1 against 1.83 on an AMD EPYC; bench/EXPERIMENTS.md).
//! Calibration keeps what the generator learned about the order of its outputs and takes the
//! marginal from the training data:
//! - encode records, for each chunk and each one-dimensional continuous head (`flow_start`,
//!   `interarrival`, the continuous fields), the quantiles of the codes the chunk's model was
//!   trained on ([`ChunkInfo::code_quantiles`]);
//! - synth replaces each generated code by the training quantile at its rank among generated
//!   codes: `x -> Q_train(F_gen(x))`. The map is monotone, so within a head the generated order
//!   (and hence the rank correlations between heads) is kept.
//!
//! Attributes are ranked among all of a chunk's sampled flows; features among the real steps of
//! the chunk's first batch, whose map then serves the chunk's other batches too, so memory stays
//! one batch. The quantiles are statistics of the encoded records, so private mode writes none
//! and nothing is calibrated.
//!
//! The categorical attribute heads get their training class shares the same way, per chunk
//! ([`crate::classes`]), and the flows their training lengths within strata of those classes
//! ([`crate::lengths`]).

use std::collections::BTreeMap;

use netshare_core::layout::{Activation, Layout, Segment};
use netshare_core::tensors::ChunkTensors;
use serde::{Deserialize, Serialize};

use crate::chunks::ChunkInfo;
use crate::classes::{ClassHead, ClassRules, PairRule, calibrate_classes, class_heads};
use crate::semantics::Semantics;

/// Uniform quantile bins per head by default (probabilities 0, 1/100, …, 1, with the outer
/// bins refined, see [`code_probabilities`]).
pub const DEFAULT_CODE_QUANTILES: usize = 100;

/// The probabilities at which a head's training codes are recorded: 0, 1/k, …, 1, with the two
/// outer bins cut tenfold and their outer tenths tenfold again (for k = 100: steps of 0.001
/// below 0.01 and above 0.99, of 0.0001 below 0.001 and above 0.999; 137 knots). Flow sizes
/// are heavy-tailed: with uniform bins the top 1% of codes would be spread evenly between the
/// 99th percentile and the maximum, and a trace's few huge flows would become hundreds.
/// Empty when k is 0.
pub fn code_probabilities(k: usize) -> Vec<f64> {
    if k == 0 {
        return Vec::new();
    }
    // In units of 1 / (100 k).
    let top = 100 * k;
    let mut u: Vec<usize> = (0..=k).map(|i| 100 * i).collect();
    for j in 0..=10 {
        u.extend([10 * j, top - 10 * j, j, top - j]);
    }
    u.sort_unstable();
    u.dedup();
    u.into_iter().map(|x| x as f64 / top as f64).collect()
}

/// `(column, name)` of each calibrated head among `segs`: one-dimensional sigmoid or tanh heads.
pub fn calibrated_heads(segs: &[Segment]) -> Vec<(usize, &str)> {
    let mut off = 0;
    let mut out = Vec::new();
    for s in segs {
        if s.dim == 1 && matches!(s.activation, Activation::Sigmoid | Activation::Tanh) {
            out.push((off, s.field.as_str()));
        }
        off += s.dim;
    }
    out
}

/// The values of ascending `sorted` at probabilities `probs`: the lower order statistic
/// `floor(p (n - 1))`, as the codecs' knots. Empty when `sorted` has fewer than two values or
/// `probs` is empty.
fn order_statistics<T: Copy>(sorted: &[T], probs: &[f64]) -> Vec<T> {
    let n = sorted.len();
    if n < 2 {
        return Vec::new();
    }
    probs
        .iter()
        .map(|&p| sorted[((p * (n - 1) as f64).floor() as usize).min(n - 1)])
        .collect()
}

/// [`order_statistics`] of the finite values of `v`.
fn quantiles(mut v: Vec<f32>, probs: &[f64]) -> Vec<f32> {
    v.retain(|x| x.is_finite());
    v.sort_by(f32::total_cmp);
    order_statistics(&v, probs)
}

/// The quantiles of a chunk's training codes at `probs` for each calibrated head: attributes
/// over all flows, features over the real steps (`gen_flag` 1). Empty when `probs` is.
pub fn code_quantiles(
    layout: &Layout,
    t: &ChunkTensors,
    probs: &[f64],
) -> BTreeMap<String, Vec<f32>> {
    let mut out = BTreeMap::new();
    if probs.is_empty() {
        return out;
    }
    for (col, name) in calibrated_heads(&layout.attributes) {
        let v = (0..t.n)
            .map(|i| t.attributes[i * t.attr_dim + col])
            .collect();
        let q = quantiles(v, probs);
        if !q.is_empty() {
            out.insert(name.to_string(), q);
        }
    }
    for (col, name) in calibrated_heads(&layout.features) {
        let v = (0..t.n * t.max_len)
            .filter(|&s| t.gen_flag[s] > 0.5)
            .map(|s| t.features[s * t.feat_dim + col])
            .collect();
        let q = quantiles(v, probs);
        if !q.is_empty() {
            out.insert(name.to_string(), q);
        }
    }
    out
}

/// The training quantile at probability `p`: piecewise linear between the knots `(probs[i],
/// knots[i])` (`probs` ascending from 0 to 1, as long as `knots`, at least two).
fn quantile_at(probs: &[f64], knots: &[f32], p: f64) -> f32 {
    interpolate(probs, p, |j| f64::from(knots[j])) as f32
}

/// The piecewise-linear interpolation at probability `p` of the knots `knot(i)` at `probs[i]`.
fn interpolate(probs: &[f64], p: f64, knot: impl Fn(usize) -> f64) -> f64 {
    let p = p.clamp(0.0, 1.0);
    let j = probs.partition_point(|&x| x <= p).clamp(1, probs.len() - 1) - 1;
    let w = probs[j + 1] - probs[j];
    let t = if w > 0.0 {
        ((p - probs[j]) / w).clamp(0.0, 1.0)
    } else {
        0.0
    };
    knot(j) + t * (knot(j + 1) - knot(j))
}

/// The mid-rank probability `(lo + hi) / 2n` of `x` among ascending `sorted`, where `lo..hi`
/// are the positions of the values equal to `x` (averaging over ties); `None` when no value
/// equals `x`.
fn mid_rank<T: PartialOrd>(sorted: &[T], x: &T) -> (f64, Option<usize>) {
    let lo = sorted.partition_point(|s| s < x);
    let hi = sorted.partition_point(|s| s <= x);
    let p = (lo + hi) as f64 / (2.0 * sorted.len() as f64);
    (p, (hi == lo).then_some(lo))
}

/// The probability of `x` among `sorted` generated codes: the mid-rank `(i + 0.5) / n` of a
/// value in the sample (averaged over ties), linear between neighbours, 0 below and 1 above.
fn rank_of(sorted: &[f32], x: f32) -> f64 {
    let n = sorted.len() as f64;
    let (p, missing) = mid_rank(sorted, &x);
    let Some(lo) = missing else {
        return p;
    };
    if lo == 0 {
        return 0.0;
    }
    if lo == sorted.len() {
        return 1.0;
    }
    let (a, b) = (f64::from(sorted[lo - 1]), f64::from(sorted[lo]));
    (lo as f64 - 0.5 + (f64::from(x) - a) / (b - a)) / n
}

/// The record times of a chunk's training flows at `probs` (lower order statistics, µs).
pub fn time_quantiles(mut times: Vec<i64>, probs: &[f64]) -> Vec<i64> {
    times.sort_unstable();
    order_statistics(&times, probs)
}

/// Maps each of a chunk's generated record times to the training time quantile at its
/// mid-rank among them (`knots_us` at `probs`), rounded to the µs, then through `round` (the
/// trace's time resolution). A record's time is its flow's start plus the sum of its gaps, so
/// calibrating those two heads does not calibrate it: where the long flows start decides where
/// most records fall. The map is monotone, so records keep their order within and across flows.
pub fn warp_times(times: &mut [i64], probs: &[f64], knots_us: &[i64], round: impl Fn(i64) -> i64) {
    if times.is_empty() || knots_us.len() < 2 || knots_us.len() != probs.len() {
        return;
    }
    let mut order: Vec<i64> = times.to_vec();
    order.sort_unstable();
    for t in times.iter_mut() {
        let (p, _) = mid_rank(&order, t);
        *t = round(interpolate(probs, p, |j| knots_us[j] as f64).round() as i64);
    }
}

/// Fewest training records a packet-count stratum holds (see [`flow_sizes`]).
pub const MIN_STRATUM_RECORDS: usize = 50;
/// Most packet-count strata per chunk.
pub const MAX_STRATA: usize = 16;

/// The training durations and bytes per packet of a flow chunk's records of one protocol (or
/// of the protocols too rare for their own strata) whose packet count is at most `pkt_max`
/// (and above the previous stratum's of that protocol).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PktStratum {
    /// The protocol; `None` for every protocol without strata of its own.
    pub proto: Option<u8>,
    /// Largest packet count of the stratum; the protocol's last stratum also takes every
    /// larger count.
    pub pkt_max: u64,
    /// Training records in it.
    pub records: usize,
    /// Quantiles of their `td` at the chunk's `code_probabilities`.
    pub td: Vec<f64>,
    /// Quantiles of their `byt / pkt`.
    pub bytes_per_packet: Vec<f64>,
}

/// What synth maps a flow chunk's decoded records onto: the training packet counts, and the
/// durations and bytes per packet within strata of protocol and packet count.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowSizes {
    /// Quantiles of the training records' packet counts at the chunk's `code_probabilities`.
    pub pkt: Vec<f64>,
    /// The strata, by protocol (`None` first) and ascending packet count.
    pub strata: Vec<PktStratum>,
    /// The packet counts within strata of the flows' classes ([`class_strata`]); empty
    /// when no class stratum holds enough records (then `pkt` maps every record).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pkt_by_class: Vec<ClassQuantiles>,
}

/// The training values of one size field (a flow's packet count, a packet's length) of the
/// records whose flows fall in one class stratum (a kept flow-length stratum of
/// [`crate::lengths`], with the records of its kept descendants that were too few for their
/// own).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassQuantiles {
    /// Its path: a class of each of the first `classes.len()` length heads (empty: the chunk).
    pub classes: Vec<usize>,
    /// Training records in it.
    pub records: usize,
    /// Quantiles of their values at the chunk's `code_probabilities`.
    pub quantiles: Vec<f64>,
}

/// The class strata of a chunk's training records, each given as `(path, value)` with `path`
/// the deepest kept flow-length stratum of its flow. Working up from the deepest, a stratum
/// with fewer than [`MIN_STRATUM_RECORDS`] records hands them to its parent; every stratum
/// left with records gets the quantiles of their values at `probs`. Empty when only the chunk
/// is left (a chunk-wide map covers that) or `probs` is empty.
pub fn class_strata(records: &[(&[usize], f64)], probs: &[f64]) -> Vec<ClassQuantiles> {
    let mut own: BTreeMap<Vec<usize>, Vec<f64>> = BTreeMap::new();
    for (path, x) in records {
        own.entry(path.to_vec()).or_default().push(*x);
    }
    let depth = own.keys().map(Vec::len).max().unwrap_or(0);
    for d in (1..=depth).rev() {
        let small: Vec<Vec<usize>> = own
            .iter()
            .filter(|(k, v)| k.len() == d && v.len() < MIN_STRATUM_RECORDS)
            .map(|(k, _)| k.clone())
            .collect();
        for k in small {
            let moved = own.remove(&k).unwrap_or_default();
            own.entry(k[..d - 1].to_vec()).or_default().extend(moved);
        }
    }
    if probs.is_empty() || own.keys().all(Vec::is_empty) {
        return Vec::new();
    }
    own.into_iter()
        .filter_map(|(classes, mut v)| {
            v.sort_by(f64::total_cmp);
            let quantiles = order_statistics(&v, probs);
            (!quantiles.is_empty()).then_some(ClassQuantiles {
                classes,
                records: v.len(),
                quantiles,
            })
        })
        .collect()
}

/// Summarises a flow chunk's training records `(proto, pkt, td, byt)` at `probs`: the
/// quantiles of the packet counts, and per protocol (each with at least
/// [`MIN_STRATUM_RECORDS`] records; the rest pooled under `None` when they are as many)
/// strata of consecutive packet counts with the quantiles of `td` and of `byt / pkt` in each.
/// Counts are taken in ascending order and a stratum closes at the first count boundary where
/// it holds at least `max(MIN_STRATUM_RECORDS, n / MAX_STRATA)` of the protocol's `n`
/// records; a short remainder joins the last stratum. `None` when `probs` is empty or there
/// are too few records for one stratum.
pub fn flow_sizes(records: &[(u8, u64, f64, u64)], probs: &[f64]) -> Option<FlowSizes> {
    if probs.is_empty() || records.len() < MIN_STRATUM_RECORDS {
        return None;
    }
    let mut per_proto: BTreeMap<u8, usize> = BTreeMap::new();
    for r in records {
        *per_proto.entry(r.0).or_default() += 1;
    }
    let mut groups: BTreeMap<Option<u8>, Vec<(u64, f64, u64)>> = BTreeMap::new();
    for r in records {
        let key = (per_proto[&r.0] >= MIN_STRATUM_RECORDS).then_some(r.0);
        groups.entry(key).or_default().push((r.1, r.2, r.3));
    }
    let mut strata = Vec::new();
    for (proto, mut rows) in groups {
        if rows.len() >= MIN_STRATUM_RECORDS {
            strata.extend(count_strata(proto, &mut rows, probs));
        }
    }
    let mut pkt: Vec<f64> = records.iter().map(|r| r.1 as f64).collect();
    pkt.sort_by(f64::total_cmp);
    Some(FlowSizes {
        pkt: order_statistics(&pkt, probs),
        strata,
        pkt_by_class: Vec::new(),
    })
}

/// For each flow, given the deepest kept flow-length stratum on its class path (`nodes`), the
/// index in `by_class` of the deepest class stratum on that path; `None` where there is none.
pub fn class_groups(by_class: &[ClassQuantiles], nodes: &[Vec<usize>]) -> Vec<Option<usize>> {
    let index: BTreeMap<&[usize], usize> = by_class
        .iter()
        .enumerate()
        .map(|(k, c)| (c.classes.as_slice(), k))
        .collect();
    nodes
        .iter()
        .map(|node| {
            (0..=node.len())
                .rev()
                .find_map(|m| index.get(&node[..m]).copied())
        })
        .collect()
}

/// The packet-count strata of one protocol's records `(pkt, td, byt)` (see [`flow_sizes`]).
fn count_strata(proto: Option<u8>, rows: &mut [(u64, f64, u64)], probs: &[f64]) -> Vec<PktStratum> {
    let n = rows.len();
    let min = MIN_STRATUM_RECORDS.max(n.div_ceil(MAX_STRATA));
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut bounds: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    for i in 1..=n {
        let boundary = i == n || rows[i].0 != rows[i - 1].0;
        if boundary && i - start >= min {
            bounds.push((start, i));
            start = i;
        }
    }
    if start < n {
        match bounds.last_mut() {
            Some(last) => last.1 = n,
            None => bounds.push((0, n)),
        }
    }
    bounds
        .into_iter()
        .map(|(a, b)| {
            let part = &rows[a..b];
            let mut td: Vec<f64> = part.iter().map(|r| r.1).collect();
            let mut bpp: Vec<f64> = part
                .iter()
                .map(|r| r.2 as f64 / r.0.max(1) as f64)
                .collect();
            td.sort_by(f64::total_cmp);
            bpp.sort_by(f64::total_cmp);
            PktStratum {
                proto,
                pkt_max: part[part.len() - 1].0,
                records: part.len(),
                td: order_statistics(&td, probs),
                bytes_per_packet: order_statistics(&bpp, probs),
            }
        })
        .collect()
}

/// Each index of `idx` with the quantile of `knots` (at `probs`) at its ordinal rank among
/// `idx` by `key`, `(r + 0.5) / n`, ties broken by index.
fn quantiles_by_rank(
    idx: &[usize],
    key: impl Fn(usize) -> f64,
    probs: &[f64],
    knots: &[f64],
) -> Vec<(usize, f64)> {
    let mut order = idx.to_vec();
    order.sort_by(|&a, &b| key(a).total_cmp(&key(b)).then(a.cmp(&b)));
    let n = order.len() as f64;
    order
        .into_iter()
        .enumerate()
        .map(|(r, i)| (i, interpolate(probs, (r as f64 + 0.5) / n, |j| knots[j])))
        .collect()
}

/// Maps a flow chunk's decoded records onto the training records' sizes. First each packet
/// count goes to the training count quantile at its rank: among the records of its flow's
/// class stratum where `class_groups` names one (an index into [`FlowSizes::pkt_by_class`],
/// so the records of a frequent address take that address's counts), else among the chunk's
/// other records, onto the chunk's quantiles (decoding may have moved counts to fit a
/// protocol's bytes per packet, which the bytes are about to be recomputed from anyway). Then
/// each duration goes to the training quantile of its stratum (its protocol's, or the pooled
/// rare protocols'; records of a protocol with neither keep theirs) at its rank among the
/// records of that stratum, and so does each bytes per packet, ranked by the bytes as
/// generated; the bytes become the nearest integer to that ratio times the count. Ranks are
/// ordinal, ties broken by record order, so a value the decoder produced many times spreads
/// over the training values it stands for. Every map is monotone: the generator's order of
/// counts within a class stratum, and of durations and bytes within a stratum, is kept; what
/// changes is that a one-packet flow's
/// bytes and duration follow those of real one-packet flows, not of all flows. Last, the
/// trace's `semantics` put the records back under its rules ([`Semantics::finish_flows`]).
/// Does nothing when the quantiles do not match `probs`.
#[allow(clippy::too_many_arguments)]
pub fn calibrate_flow_sizes(
    sizes: &FlowSizes,
    probs: &[f64],
    semantics: Option<&Semantics>,
    proto: &[u8],
    class_groups: Option<&[Option<usize>]>,
    pkt: &mut [u64],
    td: &mut [f64],
    byt: &mut [u64],
) {
    let strata = &sizes.strata;
    let usable = probs.len() >= 2
        && sizes.pkt.len() == probs.len()
        && !strata.is_empty()
        && strata
            .iter()
            .all(|s| s.td.len() == probs.len() && s.bytes_per_packet.len() == probs.len());
    if !usable || pkt.is_empty() {
        return;
    }
    // Each record's packet-count map: its class stratum's (index into `pkt_by_class`), or the
    // chunk's (`None`).
    let class_groups = class_groups.filter(|g| g.len() == pkt.len());
    let by_class = |i: usize| -> Option<usize> {
        class_groups.and_then(|g| g[i]).filter(|&k| {
            sizes
                .pkt_by_class
                .get(k)
                .is_some_and(|c| c.quantiles.len() == probs.len())
        })
    };
    let mut count_groups: BTreeMap<Option<usize>, Vec<usize>> = BTreeMap::new();
    for i in 0..pkt.len() {
        count_groups.entry(by_class(i)).or_default().push(i);
    }
    for (g, idx) in &count_groups {
        let knots = g.map_or(&sizes.pkt, |k| &sizes.pkt_by_class[k].quantiles);
        for (i, p) in quantiles_by_rank(idx, |i| pkt[i] as f64, probs, knots) {
            pkt[i] = p.round().max(1.0) as u64;
        }
    }
    // Each protocol's strata are consecutive: their range in `strata`.
    let mut groups: BTreeMap<Option<u8>, (usize, usize)> = BTreeMap::new();
    for (k, s) in strata.iter().enumerate() {
        let g = groups.entry(s.proto).or_insert((k, k));
        g.1 = k + 1;
    }
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); strata.len()];
    for (i, &p) in pkt.iter().enumerate() {
        let Some(&(a, b)) = groups.get(&Some(proto[i])).or_else(|| groups.get(&None)) else {
            continue;
        };
        let s = a + strata[a..b]
            .partition_point(|s| s.pkt_max < p)
            .min(b - a - 1);
        members[s].push(i);
    }
    for (s, idx) in strata.iter().zip(&members) {
        for (i, d) in quantiles_by_rank(idx, |i| td[i], probs, &s.td) {
            td[i] = d;
        }
        // Ranked by the bytes as generated (a record's bytes are only rewritten here, after
        // its stratum is ranked), not by them over the mapped count. The count map may move a
        // record's count far within its class stratum (a flow the generator made small takes
        // one of a frequent address's large counts); its generated bytes over the new count
        // would put it at the bottom of its packet-count stratum, where in the trace the
        // largest flows carry full packets. On UGR16 host-b that halved the byte EMD (2,650
        // to 1,330 against the marginals sampler's 1,140; bench/EXPERIMENTS.md).
        let bytes = |i: usize| byt[i] as f64;
        for (i, r) in quantiles_by_rank(idx, bytes, probs, &s.bytes_per_packet) {
            byt[i] = (r * pkt[i] as f64).round().max(0.0) as u64;
        }
    }
    if let Some(sem) = semantics {
        sem.finish_flows(proto, pkt, td, byt);
    }
}

/// Maps a packet chunk's decoded packet lengths onto the training lengths of their flows'
/// class strata: each packet whose flow's class stratum `groups` names (an index into
/// `by_class`, one entry per packet) takes that stratum's training quantile at its ordinal
/// rank among the stratum's generated packets, by length as generated, ties broken by packet
/// order; packets in no stratum keep their lengths. So the packets of a frequent source take
/// that source's size mix, not the chunk's. The map is monotone within a stratum, so the
/// generator's order of sizes there (a flow's small handshake before its full segments) is
/// kept. Last, the trace's `semantics` put each length back in its protocol's range. Does
/// nothing when the shapes or the quantiles do not match.
pub fn calibrate_packet_lengths(
    by_class: &[ClassQuantiles],
    probs: &[f64],
    semantics: Option<&Semantics>,
    proto: &[u8],
    groups: &[Option<usize>],
    pkt_len: &mut [u16],
) {
    let usable = probs.len() >= 2
        && groups.len() == pkt_len.len()
        && proto.len() == pkt_len.len()
        && by_class.iter().all(|c| c.quantiles.len() == probs.len());
    if !usable {
        return;
    }
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); by_class.len()];
    for (i, g) in groups.iter().enumerate() {
        if let Some(m) = g.and_then(|k| members.get_mut(k)) {
            m.push(i);
        }
    }
    for (c, idx) in by_class.iter().zip(&members) {
        let key = |i: usize| f64::from(pkt_len[i]);
        for (i, x) in quantiles_by_rank(idx, key, probs, &c.quantiles) {
            pkt_len[i] = x.round().clamp(0.0, f64::from(u16::MAX)) as u16;
        }
    }
    if let Some(sem) = semantics {
        sem.finish_packets(proto, pkt_len);
    }
}

/// One head's map: the sorted generated codes and the training quantiles.
#[derive(Clone, Debug)]
struct HeadMap<'a> {
    col: usize,
    sorted: Vec<f32>,
    probs: &'a [f64],
    knots: &'a [f32],
}

impl<'a> HeadMap<'a> {
    /// The map of head `col` fitted on the generated `values`; `None` when none is finite.
    fn fit(
        col: usize,
        values: impl Iterator<Item = f32>,
        probs: &'a [f64],
        knots: &'a [f32],
    ) -> Option<Self> {
        let mut sorted: Vec<f32> = values.filter(|x| x.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f32::total_cmp);
        Some(HeadMap {
            col,
            sorted,
            probs,
            knots,
        })
    }

    fn map(&self, x: f32) -> f32 {
        if !x.is_finite() {
            return x;
        }
        quantile_at(self.probs, self.knots, rank_of(&self.sorted, x))
    }
}

/// The calibration of one chunk: which heads have training quantiles, and where they sit.
#[derive(Clone, Debug, Default)]
pub struct Calibration {
    probs: Vec<f64>,
    attrs: Vec<(usize, String, Vec<f32>)>,
    feats: Vec<(usize, String, Vec<f32>)>,
    classes: Vec<ClassHead>,
    /// What a row's classes keep to: the protocol and port pairs of the training flows, and
    /// with [`Calibration::keep_addresses_apart`] its two addresses apart.
    rules: ClassRules,
}

/// A fitted map of feature codes, built from one batch (see [`Calibration::fit_features`]).
#[derive(Clone, Debug, Default)]
pub struct FeatureMap<'a> {
    heads: Vec<HeadMap<'a>>,
}

impl Calibration {
    /// The heads of `layout` for which `info` carries training quantiles (as many as its
    /// probabilities, at least two), its class heads with training counts, and the protocol
    /// and port pairs its training flows took ([`crate::classes::ClassPairs`]).
    pub fn for_chunk(layout: &Layout, info: &ChunkInfo) -> Calibration {
        let probs = &info.code_probabilities;
        let pick = |segs: &[Segment]| {
            calibrated_heads(segs)
                .into_iter()
                .filter_map(|(col, name)| {
                    let q = info
                        .code_quantiles
                        .get(name)
                        .filter(|q| q.len() >= 2 && q.len() == probs.len())?;
                    Some((col, name.to_string(), q.clone()))
                })
                .collect::<Vec<_>>()
        };
        let classes = class_heads(&layout.attributes)
            .into_iter()
            .filter_map(|(col, dim, name)| {
                let counts = info.class_counts.get(name).filter(|c| c.len() == dim)?;
                Some(ClassHead {
                    name: name.to_string(),
                    col,
                    counts: counts.clone(),
                })
            })
            .collect::<Vec<_>>();
        let pairs = info
            .class_pairs
            .iter()
            .filter_map(|p| PairRule::of(&classes, p))
            .collect();
        Calibration {
            probs: probs.clone(),
            attrs: pick(&layout.attributes),
            feats: pick(&layout.features),
            classes,
            rules: ClassRules { apart: None, pairs },
        }
    }

    /// Keeps a flow's two addresses apart when their top classes are calibrated: the
    /// destination takes the source's frequent address only when no other class has room
    /// ([`calibrate_classes`]). For traces whose addresses always differ
    /// ([`Semantics::distinct_addresses`](crate::semantics::Semantics::distinct_addresses)).
    pub fn keep_addresses_apart(mut self) -> Self {
        let at = |name: &str| self.classes.iter().position(|h| h.name == name);
        self.rules.apart = at("srcip/top").zip(at("dstip/top"));
        self
    }

    /// Names of the calibrated heads: the continuous attributes, the class heads, the class
    /// heads kept to the pairs the training flows took (`dstport/top|proto/top`: a port's
    /// class given the protocol's), the features.
    pub fn heads(&self) -> Vec<String> {
        let pairs = self.rules.pairs.iter().map(|r| {
            format!(
                "{}|{}",
                self.classes[r.head].name, self.classes[r.given].name
            )
        });
        self.attrs
            .iter()
            .map(|(_, n, _)| n.clone())
            .chain(self.classes.iter().map(|h| h.name.clone()))
            .chain(pairs)
            .chain(self.feats.iter().map(|(_, n, _)| n.clone()))
            .collect()
    }

    /// Calibrates the attribute rows `[n, a]` of a chunk's sampled flows: each continuous head
    /// ranked among all of them, each class head shared out as in training
    /// ([`calibrate_classes`]).
    pub fn attributes(&self, attrs: &mut [f32], a: usize) {
        if a == 0 {
            return;
        }
        calibrate_classes(&self.classes, attrs, a, &self.rules);
        let n = attrs.len() / a;
        for (col, _, knots) in &self.attrs {
            let values = (0..n).map(|i| attrs[i * a + col]);
            let Some(m) = HeadMap::fit(*col, values, &self.probs, knots) else {
                continue;
            };
            for i in 0..n {
                let x = &mut attrs[i * a + m.col];
                *x = m.map(*x);
            }
        }
    }

    /// Fits the map of feature codes on one batch `[n, t, f]` with `lengths` real steps per flow.
    pub fn fit_features(
        &self,
        features: &[f32],
        lengths: &[usize],
        t: usize,
        f: usize,
    ) -> FeatureMap<'_> {
        let heads = self
            .feats
            .iter()
            .filter_map(|(col, _, knots)| {
                let values = lengths
                    .iter()
                    .enumerate()
                    .flat_map(|(i, &l)| (0..l).map(move |s| features[(i * t + s) * f + col]));
                HeadMap::fit(*col, values, &self.probs, knots)
            })
            .collect();
        FeatureMap { heads }
    }
}

impl FeatureMap<'_> {
    /// Maps the real steps of a batch `[n, t, f]` (padding is left as generated).
    pub fn apply(&self, features: &mut [f32], lengths: &[usize], t: usize, f: usize) {
        for (i, &l) in lengths.iter().enumerate() {
            for s in 0..l {
                let row = &mut features[(i * t + s) * f..(i * t + s + 1) * f];
                for h in &self.heads {
                    row[h.col] = h.map(row[h.col]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_dimensional_sigmoid_and_tanh_heads_are_calibrated() {
        let segs = vec![
            Segment::new("srcip/bit00", 2, Activation::Softmax),
            Segment::new("flow_start", 1, Activation::Sigmoid),
            Segment::new("srcport", 10, Activation::Tanh),
            Segment::new("td", 1, Activation::Tanh),
        ];
        assert_eq!(calibrated_heads(&segs), vec![(2, "flow_start"), (13, "td")]);
    }

    #[test]
    fn quantiles_and_ranks_match_a_hand_worked_case() {
        let quarters = [0.0, 0.25, 0.5, 0.75, 1.0];
        assert_eq!(
            quantiles(vec![3.0, 1.0, 2.0, 4.0, 5.0], &quarters),
            vec![1.0, 2.0, 3.0, 4.0, 5.0]
        );
        assert_eq!(quantiles(vec![1.0], &quarters), Vec::<f32>::new());
        // Lower order statistics: 0.3 of the way through 5 values is index floor(1.2) = 1.
        assert_eq!(
            quantiles(vec![5.0, 1.0, 4.0, 2.0, 3.0], &[0.0, 0.3, 1.0]),
            vec![1.0, 2.0, 5.0]
        );
        let s = [0.1f32, 0.2, 0.2, 0.4];
        // Mid-ranks: 0.1 -> 0.5/4, the tie 0.2 -> (1.5 + 2.5) / 2 / 4, 0.4 -> 3.5/4.
        assert_eq!(rank_of(&s, 0.1), 0.125);
        assert_eq!(rank_of(&s, 0.2), 0.5);
        assert_eq!(rank_of(&s, 0.4), 0.875);
        // Between 0.2 (last at rank 2.5/4) and 0.4 (3.5/4): halfway is 3.0/4.
        assert!((rank_of(&s, 0.3) - 0.75).abs() < 1e-6);
        assert_eq!(rank_of(&s, 0.0), 0.0);
        assert_eq!(rank_of(&s, 0.9), 1.0);
        let (probs, knots) = ([0.0, 0.5, 1.0], [0.0f32, 0.5, 0.6]);
        assert_eq!(quantile_at(&probs, &knots, 0.25), 0.25);
        assert!((quantile_at(&probs, &knots, 0.75) - 0.55).abs() < 1e-6);
        assert_eq!(quantile_at(&probs, &knots, 1.0), 0.6);
        assert_eq!(quantile_at(&probs, &knots, 0.0), 0.0);
        // Uneven probabilities: 0.95 is half way from 0.9 to 1.
        assert!((quantile_at(&[0.0, 0.9, 1.0], &[0.0, 0.9, 10.0], 0.95) - 5.45).abs() < 1e-5);
    }

    #[test]
    fn record_times_take_the_training_quantiles_at_their_ranks_and_keep_their_order() {
        assert_eq!(
            time_quantiles(vec![40, 10, 30, 20, 50], &[0.0, 0.5, 1.0]),
            [10, 30, 50]
        );
        assert!(time_quantiles(vec![7], &[0.0, 1.0]).is_empty());
        // Training times spread over [0, 1000] µs; four generated times bunched at the end,
        // two of them equal.
        let (probs, knots) = ([0.0, 0.5, 1.0], [0i64, 500, 1000]);
        let mut t = vec![990, 960, 990, 900];
        warp_times(&mut t, &probs, &knots, |x| x);
        // Mid-ranks 3/4 (the tie: (2 + 4) / 2 / 4), 1.5/4, 3/4, 0.5/4 through the knots.
        assert_eq!(t, vec![750, 375, 750, 125]);
        // The trace's resolution applies after the map.
        let mut t = vec![990, 960, 990, 900];
        warp_times(&mut t, &probs, &knots, |x| (x + 50) / 100 * 100);
        assert_eq!(t, vec![800, 400, 800, 100]);
        // No knots: nothing changes.
        let mut t = vec![3, 1, 2];
        warp_times(&mut t, &[], &[], |x| x);
        assert_eq!(t, vec![3, 1, 2]);
    }

    #[test]
    fn the_probability_grid_refines_the_outer_bins() {
        let p = code_probabilities(100);
        assert_eq!(p.len(), 137);
        assert_eq!((p[0], p[136]), (0.0, 1.0));
        assert!(p.windows(2).all(|w| w[0] < w[1]), "ascending, no repeats");
        let near = |x: f64| p.iter().any(|&q| (q - x).abs() < 1e-12);
        for x in [
            0.0001, 0.0009, 0.001, 0.005, 0.01, 0.02, 0.5, 0.98, 0.99, 0.995, 0.999, 0.9995,
        ] {
            assert!(near(x), "{x} missing");
        }
        assert!(
            !near(0.015) && !near(0.0015),
            "only the outer bins are refined"
        );
        assert!(code_probabilities(0).is_empty());
        // k = 1: the one bin is both outer bins; tenths 0.1..0.9, and hundredths at each end.
        assert_eq!(code_probabilities(1).len(), 2 + 9 + 9 + 9);
    }

    /// A layout whose attributes are a two-way tag and `flow_start`, with `features`.
    fn tagged_layout(features: Vec<Segment>) -> Layout {
        Layout {
            attributes: vec![
                Segment::new("tag", 2, Activation::Softmax),
                Segment::new("flow_start", 1, Activation::Sigmoid),
            ],
            features,
            sample_len: 1,
            private: false,
        }
    }

    #[test]
    fn training_codes_are_summarised_over_flows_and_real_steps_only() {
        let layout = tagged_layout(vec![
            Segment::new("interarrival", 1, Activation::Sigmoid),
            Segment::new("pkt", 1, Activation::Tanh),
        ]);
        // Three flows, T = 2: flow 0 has two steps, flows 1 and 2 one each.
        let mut t = ChunkTensors::zeros(3, 3, 2, 2);
        for (i, fs) in [0.5f32, 0.1, 0.9].into_iter().enumerate() {
            t.attributes[i * 3 + 2] = fs;
        }
        for (s, pkt) in [(0, 0.3f32), (1, -0.2), (2, 0.8), (4, 0.0)] {
            t.features[s * 2 + 1] = pkt;
            t.gen_flag[s] = 1.0;
        }
        t.features[3 * 2 + 1] = 99.0; // padding (flow 1, step 1) must not count
        let q = code_quantiles(&layout, &t, &[0.0, 0.5, 1.0]);
        assert_eq!(q["flow_start"], vec![0.1, 0.5, 0.9]);
        // pkt over the four real steps: -0.2, 0.0, 0.3, 0.8; index floor(0.5 * 3) = 1.
        assert_eq!(q["pkt"], vec![-0.2, 0.0, 0.8]);
        assert_eq!(q["interarrival"], vec![0.0, 0.0, 0.0]);
        assert!(code_quantiles(&layout, &t, &[]).is_empty());
    }

    fn info(probs: Vec<f64>, q: BTreeMap<String, Vec<f32>>) -> ChunkInfo {
        ChunkInfo {
            index: 0,
            t_min_us: 0,
            t_max_us: 1,
            n_flows: 0,
            n_records: 0,
            n_input_records: 0,
            train_file: String::new(),
            start_knots_us: Vec::new(),
            code_probabilities: probs,
            code_quantiles: q,
            time_quantiles_us: Vec::new(),
            flow_sizes: None,
            class_counts: BTreeMap::new(),
            class_pairs: Vec::new(),
            flow_lengths: None,
            pkt_len_by_class: Vec::new(),
        }
    }

    #[test]
    fn generated_codes_take_the_training_marginal_and_keep_their_order() {
        let layout = tagged_layout(vec![
            Segment::new("interarrival", 1, Activation::Sigmoid),
            Segment::new("label", 2, Activation::Softmax),
            Segment::new("pkt", 1, Activation::Sigmoid),
        ]);
        // Training codes: flow starts uniform on [0, 1]; pkt codes 0.1 (half) and 0.9 (half).
        let q = BTreeMap::from([
            ("flow_start".to_string(), vec![0.0, 0.25, 0.5, 0.75, 1.0]),
            ("pkt".to_string(), vec![0.1, 0.1, 0.1, 0.9, 0.9]),
        ]);
        let cal = Calibration::for_chunk(&layout, &info(vec![0.0, 0.25, 0.5, 0.75, 1.0], q));
        assert_eq!(
            cal.heads(),
            vec!["flow_start", "pkt"],
            "interarrival has no knots"
        );
        // Four flows whose generated starts bunch near 0.9.
        let mut attrs = vec![
            0.0, 1.0, 0.95, //
            0.0, 1.0, 0.85, //
            0.0, 1.0, 0.9, //
            0.0, 1.0, 0.8,
        ];
        cal.attributes(&mut attrs, 3);
        let starts: Vec<f32> = (0..4).map(|i| attrs[i * 3 + 2]).collect();
        // Ranks 3.5/4, 1.5/4, 2.5/4, 0.5/4 through the uniform knots.
        assert_eq!(starts, vec![0.875, 0.375, 0.625, 0.125]);
        assert_eq!(attrs[0..2], [0.0, 1.0], "other heads untouched");

        // Two flows, T = 3, F = 4: generated pkt codes all near 0.5; the third step of flow 1
        // is padding.
        let (t, f) = (3, 4);
        let mut feats = vec![0.0f32; 2 * t * f];
        let pkt = [0.40f32, 0.45, 0.60, 0.55, 0.50, 7.0];
        for (s, &v) in pkt.iter().enumerate() {
            feats[s * f] = 0.3;
            feats[s * f + 3] = v;
        }
        let lengths = [3, 2];
        let m = cal.fit_features(&feats, &lengths, t, f);
        m.apply(&mut feats, &lengths, t, f);
        let got: Vec<f32> = (0..6).map(|s| feats[s * f + 3]).collect();
        // The five real codes have ranks 0.1, 0.3, 0.9, 0.7, 0.5 (in step order). Through the
        // knots (positions 0.4, 1.2, 3.6, 2.8, 2.0 of 4) they become 0.1, 0.1, 0.9,
        // 0.1 + 0.8 * 0.8 and 0.1.
        assert_eq!([got[0], got[1], got[2], got[4]], [0.1, 0.1, 0.9, 0.1]);
        assert!((got[3] - 0.74).abs() < 1e-6, "{}", got[3]);
        assert_eq!(got[5], 7.0, "padding is left alone");
        assert!(
            (0..6).all(|s| feats[s * f] == 0.3),
            "interarrival untouched"
        );
    }

    #[test]
    fn packet_count_strata_close_at_count_boundaries_and_keep_at_least_the_minimum() {
        let probs = [0.0, 0.5, 1.0];
        // 60 one-packet flows of 40 bytes lasting 0 s, 30 two-packet flows and 30 of three
        // packets (which together make the second stratum), 10 of 100 packets (a short
        // remainder that joins the last stratum).
        let mut recs = Vec::new();
        recs.extend((0..60).map(|_| (6u8, 1u64, 0.0, 40u64)));
        recs.extend((0..30).map(|i| (6, 2u64, 0.004 * i as f64, 100 + 2 * i as u64)));
        recs.extend((0..30).map(|i| (6, 3u64, 1.0 + 0.004 * i as f64, 3 * 500)));
        recs.extend((0..10).map(|i| (6, 100u64, 10.0 + i as f64, 100 * 1400)));
        let sizes = flow_sizes(&recs, &probs).expect("enough records");
        // 130 counts: the lower median is index floor(0.5 * 129) = 64, a two-packet flow.
        assert_eq!(sizes.pkt, vec![1.0, 2.0, 100.0]);
        let st = &sizes.strata;
        assert_eq!(st.len(), 2, "{st:?}");
        assert!(st.iter().all(|s| s.proto == Some(6)));
        assert_eq!((st[0].pkt_max, st[0].records), (1, 60));
        assert_eq!(st[0].td, vec![0.0, 0.0, 0.0]);
        assert_eq!(st[0].bytes_per_packet, vec![40.0, 40.0, 40.0]);
        assert_eq!((st[1].pkt_max, st[1].records), (100, 70));
        // 70 records sorted by count then duration: the lower median is index floor(0.5 * 69)
        // = 34, the fifth three-packet flow (td 1.016, 500 bytes per packet).
        assert_eq!(st[1].td[0], 0.0);
        assert!((st[1].td[1] - 1.016).abs() < 1e-12, "{}", st[1].td[1]);
        assert_eq!(st[1].td[2], 19.0);
        // Bytes per packet: 30 values 50..=79 (two packets), 30 of 500, 10 of 1400.
        assert_eq!(st[1].bytes_per_packet, vec![50.0, 500.0, 1400.0]);
        // Too few records for one stratum, or no probabilities: none.
        assert!(flow_sizes(&recs[..MIN_STRATUM_RECORDS - 1], &probs).is_none());
        assert!(flow_sizes(&recs, &[]).is_none());
        // One count only: a single stratum however many records.
        let one = flow_sizes(&recs[..60], &probs).expect("enough records");
        assert_eq!(one.strata.len(), 1);
        assert_eq!((one.strata[0].pkt_max, one.strata[0].records), (1, 60));
        // Protocols: 60 ICMP flows get their own stratum; 30 UDP and 25 GRE flows, each too
        // few, are pooled (55 records, one stratum); the counts' quantiles cover every record.
        let mut mixed = recs.clone();
        mixed.extend((0..60).map(|_| (1u8, 1u64, 0.0, 84u64)));
        mixed.extend((0..30).map(|_| (17u8, 1u64, 0.0, 60u64)));
        mixed.extend((0..25).map(|_| (47u8, 4u64, 0.5, 400u64)));
        let sizes = flow_sizes(&mixed, &probs).expect("enough records");
        let keys: Vec<(Option<u8>, u64, usize)> = sizes
            .strata
            .iter()
            .map(|s| (s.proto, s.pkt_max, s.records))
            .collect();
        assert_eq!(
            keys,
            [
                (None, 4, 55),
                (Some(1), 1, 60),
                (Some(6), 1, 60),
                (Some(6), 100, 70)
            ]
        );
        assert_eq!(sizes.strata[0].bytes_per_packet, vec![60.0, 60.0, 100.0]);
        assert_eq!(sizes.pkt, vec![1.0, 1.0, 100.0]);
        // Rare protocols too few to pool: they get no strata.
        mixed.truncate(recs.len() + 60 + 30);
        let sizes = flow_sizes(&mixed, &probs).expect("enough records");
        assert!(sizes.strata.iter().all(|s| s.proto.is_some()));
    }

    #[test]
    fn class_strata_too_small_hand_their_records_up() {
        // [0, 0]: 60 records of 5 packets, kept. [0]: 10 of 1 and [1]: 30 of 2, each under 50,
        // go to the chunk, which had 5 of 9: 45 records, quantiles at 0, 0.5, 1 the order
        // statistics 0, 22 and 44 (1, 2, 9).
        let (p00, p0, p1, root): (&[usize], &[usize], &[usize], &[usize]) =
            (&[0, 0], &[0], &[1], &[]);
        let mut recs = vec![(p00, 5.0); 60];
        recs.extend(vec![(p0, 1.0); 10]);
        recs.extend(vec![(p1, 2.0); 30]);
        recs.extend(vec![(root, 9.0); 5]);
        let probs = [0.0, 0.5, 1.0];
        let strata = class_strata(&recs, &probs);
        assert_eq!(
            strata,
            vec![
                ClassQuantiles {
                    classes: vec![],
                    records: 45,
                    quantiles: vec![1.0, 2.0, 9.0]
                },
                ClassQuantiles {
                    classes: vec![0, 0],
                    records: 60,
                    quantiles: vec![5.0, 5.0, 5.0]
                },
            ]
        );
        // Only the chunk left: no class strata.
        assert!(class_strata(&recs[60..], &probs).is_empty());
        assert!(class_strata(&recs, &[]).is_empty());
    }

    #[test]
    fn packet_counts_map_within_their_class_stratum() {
        let probs = [0.0, 0.5, 1.0];
        let sizes = FlowSizes {
            pkt: vec![1.0, 1.0, 13.0],
            strata: vec![PktStratum {
                proto: Some(6),
                pkt_max: 1,
                records: 100,
                td: vec![0.0; 3],
                bytes_per_packet: vec![40.0; 3],
            }],
            pkt_by_class: vec![ClassQuantiles {
                classes: vec![0],
                records: 60,
                quantiles: vec![20.0, 30.0, 40.0],
            }],
        };
        let mut pkt = vec![1u64, 4, 1, 2, 50, 3, 1];
        let mut td = vec![0.0; 7];
        let mut byt = vec![40u64; 7];
        let proto = [6u8; 7];
        // Records 0 and 2 are in class stratum 0; record 6 names a stratum that does not
        // exist and maps with the chunk's other records.
        let groups = [Some(0), None, Some(0), None, None, None, Some(7)];
        calibrate_flow_sizes(
            &sizes,
            &probs,
            None,
            &proto,
            Some(&groups),
            &mut pkt,
            &mut td,
            &mut byt,
        );
        // Stratum 0 (records 0, 2, both 1 packet, by record order): ranks 1/4, 3/4 through
        // (0, 20), (0.5, 30), (1, 40): 25, 35. The rest by count 1 (6), 2 (3), 3 (5), 4 (1),
        // 50 (4) at ranks 1/10, 3/10, ..., 9/10 through (0, 1), (0.5, 1), (1, 13): 1, 1, 1,
        // 1 + 12 * 0.4 and 1 + 12 * 0.8 (5.8, 10.6). The two records of the stratum of
        // large counts take its counts, though the generator gave them 1.
        assert_eq!(pkt, vec![25, 6, 35, 1, 11, 1, 1]);
    }

    #[test]
    fn packet_lengths_map_within_their_class_stratum_then_into_their_protocol_range() {
        let probs = [0.0, 0.5, 1.0];
        let by_class = [ClassQuantiles {
            classes: vec![0],
            records: 60,
            quantiles: vec![100.0, 500.0, 1500.0],
        }];
        let proto = [6u8; 5];
        // Packets 0, 1 and 3 are in stratum 0; packet 2 in none; packet 4 names a stratum
        // that does not exist. Both of those keep their lengths.
        let groups = [Some(0), Some(0), None, Some(0), Some(5)];
        let mut len = vec![60u16, 1500, 60, 40, 1400];
        calibrate_packet_lengths(&by_class, &probs, None, &proto, &groups, &mut len);
        // Stratum 0 by length: 3 (40), 0 (60), 1 (1500) at ranks 1/6, 1/2, 5/6 through
        // (0, 100), (0.5, 500), (1, 1500): 100 + 400/3 (233.3), 500, 500 + 1000 * 2/3 (1166.7).
        assert_eq!(len, vec![500, 1167, 60, 233, 1400]);
        // TCP packets lie in [40, 1000]: the semantics clamp the mapped 1,167 (and the 1,400
        // left as decoded).
        let sem = Semantics {
            time_quantum_us: 1,
            ranges: vec![crate::semantics::ProtoRange {
                field: "pkt_len".into(),
                per: None,
                by_proto: BTreeMap::from([(6, [40.0, 1000.0])]),
                all: [20.0, 1500.0],
            }],
            ..Semantics::default()
        };
        let mut len = vec![60u16, 1500, 60, 40, 1400];
        calibrate_packet_lengths(&by_class, &probs, Some(&sem), &proto, &groups, &mut len);
        assert_eq!(len, vec![500, 1000, 60, 233, 1000]);
        // Quantiles that do not match the probabilities: nothing moves.
        let mut len = vec![60u16, 1500, 60, 40, 1400];
        calibrate_packet_lengths(&by_class, &probs[..2], None, &proto, &groups, &mut len);
        assert_eq!(len, vec![60, 1500, 60, 40, 1400]);
    }

    #[test]
    fn flow_sizes_take_the_training_counts_then_their_strata_quantiles() {
        let probs = [0.0, 0.5, 1.0];
        let tcp = |pkt_max, td: [f64; 3], bpp: [f64; 3]| PktStratum {
            proto: Some(6),
            pkt_max,
            records: 100,
            td: td.to_vec(),
            bytes_per_packet: bpp.to_vec(),
        };
        let sizes = FlowSizes {
            pkt: vec![1.0, 1.0, 13.0],
            strata: vec![
                tcp(1, [0.0, 0.0, 0.0], [40.0, 40.0, 60.0]),
                tcp(10, [0.0, 1.0, 3.0], [100.0, 200.0, 1000.0]),
            ],
            pkt_by_class: Vec::new(),
        };
        let mut pkt = vec![1u64, 4, 1, 2, 50, 3, 1];
        let mut td = vec![0.5, 2.0, 0.1, 0.0, 0.7, 9.0, 0.25];
        let mut byt = vec![50u64, 4000, 45, 2000, 5000, 77, 33];
        // Six TCP records and a UDP one, a protocol with no strata.
        let proto = [6u8, 6, 6, 6, 6, 6, 17];
        calibrate_flow_sizes(
            &sizes, &probs, None, &proto, None, &mut pkt, &mut td, &mut byt,
        );
        // The UDP record's count is mapped with the others (to 1); having no strata, it keeps
        // its duration and bytes.
        assert_eq!((pkt[6], td[6], byt[6]), (1, 0.25, 33));
        // Counts by ordinal rank (the 1s in record order): records 0, 2, 6, 3, 5, 1, 4 at
        // ranks 1/14, 3/14, ..., 13/14 through (0, 1), (0.5, 1), (1, 13): 1, 1, 1, 1,
        // 1 + 12 * 2/7, 1 + 12 * 4/7, 1 + 12 * 6/7 (4.43, 7.86, 11.29).
        assert_eq!(pkt, vec![1, 8, 1, 1, 11, 4, 1]);
        // First stratum (records 0, 2, 3): durations 0; bytes 50, 45, 2000 rank
        // 3/6, 1/6, 5/6 through (0, 40), (0.5, 40), (1, 60): 40, 40, 53.3.
        assert_eq!((td[0], td[2], td[3]), (0.0, 0.0, 0.0));
        assert_eq!((byt[0], byt[2], byt[3]), (40, 40, 53));
        // Second stratum (records 5, 1 and 4, whose 11 packets the last stratum takes): by
        // duration 0.7 (4), 2.0 (1), 9.0 (5) at ranks 1/6, 3/6, 5/6 through (0, 0), (0.5, 1),
        // (1, 3): 1/3, 1, 7/3.
        assert!((td[4] - 1.0 / 3.0).abs() < 1e-12);
        assert!((td[1] - 1.0).abs() < 1e-12);
        assert!((td[5] - 7.0 / 3.0).abs() < 1e-12);
        // By bytes as generated 77 (5), 4000 (1), 5000 (4): ratios 100 + 100/3, 200 and
        // 200 + 800 * 2/3, times 4, 8 and 11 packets.
        assert_eq!((byt[5], byt[1], byt[4]), (533, 1600, 8067));
        // Quantiles that do not match the probabilities: nothing changes.
        let (mut p2, mut td2, mut b2) = (vec![4u64], vec![0.5], vec![50u64]);
        calibrate_flow_sizes(
            &sizes,
            &[0.0, 1.0],
            None,
            &[6],
            None,
            &mut p2,
            &mut td2,
            &mut b2,
        );
        assert_eq!((p2[0], td2[0], b2[0]), (4, 0.5, 50));
    }
}
