//! Flow-length calibration: how many records the generated flows of each class hold.
//!
//! The generator decides a flow's length by its gen_flag, and fidelity is judged over records.
//! A class given its training share of the flows ([`crate::classes`]) still takes the wrong
//! share of the records when its flows come out longer or shorter than in training, and on
//! the UGR16 host-days that was all that was left of the protocol JSD's swing over seeds.
//!
//! So encode records, per chunk, the training flows' lengths within strata of their classes
//! ([`flow_lengths`]), and synth maps each generated flow's length onto those of its stratum
//! by rank ([`length_targets_in`]): a flow the generator made longer than the others of its
//! stratum stays longer. A flow made longer takes the records the generator went on to output
//! after its end; one made shorter loses its last records.
//!
//! The strata nest: the class heads in a fixed order (protocol, source address, destination
//! address, destination port, source port), the chunk first, then each class of the first
//! head, each pair of classes of the first two, and so on. A stratum is kept where at least
//! [`MIN_LENGTH_FLOWS`] training flows fall in it. Each flow counts in the deepest kept
//! stratum on its path, so a stratum holds the lengths of its flows that no kept deeper
//! stratum holds.
//!
//! Where the addresses are wide (the trace holds IPv6), the address family comes first and
//! each family that has training flows keeps its stratum however few they are. The family head
//! is not calibrated ([`crate::classes`]), so the generator decides how many flows are IPv6;
//! without a stratum of their own those flows took lengths from the IPv4 flows around them
//! (on the skype capture, whose training part holds one IPv6 flow of 4 packets, one seed's
//! only IPv6 flow took 200 packets and the family JSD spread 104x over three seeds).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use netshare_core::layout::Layout;
use netshare_core::tensors::ChunkTensors;

use crate::addr::IP_VERSION;
use crate::classes::{class_heads, field_of};
use crate::fields::argmax;

/// Fewest training flows a stratum holds.
pub const MIN_LENGTH_FLOWS: usize = 20;

/// The order in which the strata nest, by the field a class head belongs to; heads of other
/// fields follow in layout order.
const HEAD_ORDER: [&str; 5] = ["proto", "srcip", "dstip", "dstport", "srcport"];

/// One stratum of a chunk's training flows and their lengths.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LengthStratum {
    /// Its path: a class of each of the first `classes.len()` heads (empty: the chunk).
    pub classes: Vec<usize>,
    /// `(length, flows)` of the training flows whose deepest kept stratum this is, by
    /// ascending length (empty when every one of its flows is in a deeper stratum).
    pub lengths: Vec<(usize, u64)>,
}

/// A chunk's training flow lengths within strata of their classes (`chunks.json`,
/// `flow_lengths`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowLengths {
    /// The class heads the strata nest by, outermost first.
    pub heads: Vec<String>,
    /// The kept strata, ordered by path.
    pub strata: Vec<LengthStratum>,
}

/// `(column, dim, name)` of the class heads of `layout`'s attributes in nesting order, behind
/// the address family head where the layout has one.
pub fn length_heads(layout: &Layout) -> Vec<(usize, usize, String)> {
    let mut heads: Vec<(usize, usize, String)> = class_heads(&layout.attributes)
        .into_iter()
        .map(|(c, d, n)| (c, d, n.to_string()))
        .collect();
    let rank = |name: &str| {
        let field = field_of(name);
        HEAD_ORDER
            .iter()
            .position(|f| *f == field)
            .unwrap_or(HEAD_ORDER.len())
    };
    heads.sort_by_key(|h| rank(&h.2));
    if let Some(family) = family_head(layout) {
        heads.insert(0, family);
    }
    heads
}

/// `(column, dim, name)` of the address family head, if the layout has one.
fn family_head(layout: &Layout) -> Option<(usize, usize, String)> {
    layout
        .attribute_offsets()
        .into_iter()
        .find(|(_, s)| s.field == IP_VERSION && s.dim >= 2)
        .map(|(col, s)| (col, s.dim, s.field.clone()))
}

/// The class of each of `heads` in one attribute row (its most probable one).
fn path_of(heads: &[(usize, usize)], row: &[f32]) -> Vec<usize> {
    heads
        .iter()
        .map(|&(col, dim)| argmax(&row[col..col + dim]))
        .collect()
}

/// The kept strata of flows with class paths `paths` (all as long as `depth`): every prefix
/// that at least `min` of them share, the empty one always, and with `first_always` every
/// class of the first head that any of them takes. A prefix is only kept when its parent is
/// (a parent holds at least its child's flows).
fn kept_prefixes(
    paths: &[Vec<usize>],
    depth: usize,
    min: usize,
    first_always: bool,
) -> BTreeSet<Vec<usize>> {
    let mut counts: BTreeMap<Vec<usize>, usize> = BTreeMap::new();
    for p in paths {
        for m in 1..=depth {
            *counts.entry(p[..m].to_vec()).or_default() += 1;
        }
    }
    let mut kept: BTreeSet<Vec<usize>> = counts
        .into_iter()
        .filter(|(k, c)| *c >= min || (first_always && k.len() == 1))
        .map(|(k, _)| k)
        .collect();
    kept.insert(Vec::new());
    kept
}

/// The deepest of `kept` on `path` (a prefix of it; the empty one when no other is kept).
fn deepest<'a>(kept: &'a BTreeSet<Vec<usize>>, path: &[usize]) -> &'a [usize] {
    (0..=path.len())
        .rev()
        .find_map(|m| kept.get(&path[..m]).map(Vec::as_slice))
        .unwrap_or(&[])
}

/// Summarises a chunk's training flows: their lengths (real steps of `gen_flag`) in the
/// deepest kept stratum of their class path. `None` when the chunk has no flows; without
/// class heads the chunk is the one stratum.
pub fn flow_lengths(layout: &Layout, t: &ChunkTensors) -> Option<FlowLengths> {
    if t.n == 0 {
        return None;
    }
    let heads = length_heads(layout);
    let cols: Vec<(usize, usize)> = heads.iter().map(|h| (h.0, h.1)).collect();
    let paths: Vec<Vec<usize>> = (0..t.n)
        .map(|i| path_of(&cols, &t.attributes[i * t.attr_dim..(i + 1) * t.attr_dim]))
        .collect();
    let by_family = heads.first().is_some_and(|h| h.2 == IP_VERSION);
    let kept = kept_prefixes(&paths, cols.len(), MIN_LENGTH_FLOWS, by_family);
    let mut hist: BTreeMap<Vec<usize>, BTreeMap<usize, u64>> =
        kept.iter().map(|k| (k.clone(), BTreeMap::new())).collect();
    for (i, p) in paths.iter().enumerate() {
        let len = t.gen_flag[i * t.max_len..(i + 1) * t.max_len]
            .iter()
            .filter(|g| **g > 0.5)
            .count();
        let node = deepest(&kept, p).to_vec();
        *hist
            .get_mut(&node)
            .expect("every deepest stratum is kept")
            .entry(len)
            .or_default() += 1;
    }
    Some(FlowLengths {
        heads: heads.into_iter().map(|h| h.2).collect(),
        strata: hist
            .into_iter()
            .map(|(classes, h)| LengthStratum {
                classes,
                lengths: h.into_iter().collect(),
            })
            .collect(),
    })
}

/// The deepest kept stratum of `fl` on the class path of each row of `attrs` (`[n, a]`, class
/// heads as the decoder reads them). `None` when the recorded heads are not `layout`'s or the
/// shapes disagree.
pub fn strata_of(
    fl: &FlowLengths,
    layout: &Layout,
    attrs: &[f32],
    a: usize,
) -> Option<Vec<Vec<usize>>> {
    let heads = length_heads(layout);
    let fits = heads.len() == fl.heads.len()
        && heads.iter().zip(&fl.heads).all(|(h, f)| h.2 == *f)
        && a > 0
        && attrs.len().is_multiple_of(a)
        && fl.strata.iter().any(|s| s.classes.is_empty());
    if !fits {
        return None;
    }
    let cols: Vec<(usize, usize)> = heads.iter().map(|h| (h.0, h.1)).collect();
    let kept: BTreeSet<Vec<usize>> = fl.strata.iter().map(|s| s.classes.clone()).collect();
    Some(
        attrs
            .chunks_exact(a)
            .map(|row| deepest(&kept, &path_of(&cols, row)).to_vec())
            .collect(),
    )
}

/// The length at probability `p` of a histogram `(length, count)` of `total` flows: the
/// smallest length whose cumulative count reaches `p · total`.
fn length_at(hist: &[(usize, u64)], total: u64, p: f64) -> usize {
    let target = p * total as f64;
    let mut cum = 0u64;
    for &(len, c) in hist {
        cum += c;
        if cum as f64 >= target {
            return len;
        }
    }
    hist.last().map_or(0, |h| h.0)
}

/// New lengths for generated flows whose deepest kept strata on their class paths are `nodes`
/// (from [`strata_of`]; synth derives them once per chunk and also maps sizes by them),
/// `lengths` as generated and `margins` (how far each flow's gen_flag was from going on at its
/// last record: the generator's 'continue' output minus its 'end' output). A stratum's flows
/// are ranked by generated length, then margin, then row, and the flow at rank `r` of `m`
/// takes the stratum's training length at probability `(r + 0.5) / m`. A stratum that keeps no
/// lengths of its own (all its training flows went deeper) lends those of its whole subtree.
/// Lengths stay within `1..=max_len`. Returns `lengths` unchanged when the shapes disagree.
pub fn length_targets_in(
    fl: &FlowLengths,
    nodes: &[Vec<usize>],
    lengths: &[usize],
    margins: &[f32],
    max_len: usize,
) -> Vec<usize> {
    let n = lengths.len();
    if nodes.len() != n || margins.len() != n {
        return lengths.to_vec();
    }
    let mut members: BTreeMap<&[usize], Vec<usize>> = BTreeMap::new();
    for (i, node) in nodes.iter().enumerate() {
        members.entry(node).or_default().push(i);
    }
    let mut out = lengths.to_vec();
    for (node, mut idx) in members {
        let own = fl
            .strata
            .iter()
            .find(|s| s.classes == node)
            .map(|s| s.lengths.clone())
            .unwrap_or_default();
        let hist = if own.is_empty() {
            let mut sub: BTreeMap<usize, u64> = BTreeMap::new();
            for s in fl.strata.iter().filter(|s| s.classes.starts_with(node)) {
                for &(len, c) in &s.lengths {
                    *sub.entry(len).or_default() += c;
                }
            }
            sub.into_iter().collect()
        } else {
            own
        };
        let total: u64 = hist.iter().map(|h| h.1).sum();
        if total == 0 {
            continue;
        }
        idx.sort_by(|&x, &y| {
            lengths[x]
                .cmp(&lengths[y])
                .then(margins[x].total_cmp(&margins[y]))
                .then(x.cmp(&y))
        });
        let m = idx.len() as f64;
        for (r, &i) in idx.iter().enumerate() {
            let len = length_at(&hist, total, (r as f64 + 0.5) / m);
            out[i] = len.clamp(1, max_len.max(1));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use netshare_core::layout::{Activation, Segment};

    /// [`length_targets_in`] for class heads `attrs` `[n, a]` as the decoder reads them;
    /// `lengths` unchanged when the recorded heads are not the layout's.
    fn length_targets(
        fl: &FlowLengths,
        layout: &Layout,
        attrs: &[f32],
        a: usize,
        lengths: &[usize],
        margins: &[f32],
        max_len: usize,
    ) -> Vec<usize> {
        match strata_of(fl, layout, attrs, a) {
            Some(nodes) => length_targets_in(fl, &nodes, lengths, margins, max_len),
            None => lengths.to_vec(),
        }
    }

    /// Attributes `srcip/top` (3 classes) then `proto/top` (2): proto nests first.
    fn layout() -> Layout {
        Layout {
            attributes: vec![
                Segment::new("srcip/top", 3, Activation::Softmax),
                Segment::new("srcip/bit00", 2, Activation::Softmax),
                Segment::new("proto/top", 2, Activation::Softmax),
            ],
            features: vec![Segment::new("td", 1, Activation::Sigmoid)],
            sample_len: 1,
            private: false,
        }
    }

    fn stratum(classes: &[usize], lengths: &[(usize, u64)]) -> LengthStratum {
        LengthStratum {
            classes: classes.to_vec(),
            lengths: lengths.to_vec(),
        }
    }

    fn row(ip: usize, proto: usize) -> Vec<f32> {
        let mut r = vec![0.0; 7];
        r[ip] = 1.0;
        r[3] = 1.0;
        r[5 + proto] = 1.0;
        r
    }

    fn tensors(flows: &[(usize, usize, usize)], max_len: usize) -> ChunkTensors {
        let mut t = ChunkTensors::zeros(flows.len(), 7, max_len, 1);
        for (i, &(ip, proto, len)) in flows.iter().enumerate() {
            t.attributes[i * 7..(i + 1) * 7].copy_from_slice(&row(ip, proto));
            for s in 0..len {
                t.gen_flag[i * max_len + s] = 1.0;
            }
        }
        t
    }

    #[test]
    fn heads_nest_protocol_first_and_bits_are_left_out() {
        let h = length_heads(&layout());
        let names: Vec<&str> = h.iter().map(|h| h.2.as_str()).collect();
        assert_eq!(names, ["proto/top", "srcip/top"]);
        assert_eq!((h[0].0, h[0].1), (5, 2));
    }

    #[test]
    fn lengths_go_to_the_deepest_stratum_with_enough_flows() {
        // proto 0: 25 flows of ip 0 (length 1) and 15 of ip 1 (length 3); proto 1: 5 flows
        // of ip 2 (length 2). Kept: the chunk (45), proto 0 (40), proto 0 / ip 0 (25).
        let mut flows = vec![(0, 0, 1); 25];
        flows.extend(vec![(1, 0, 3); 15]);
        flows.extend(vec![(2, 1, 2); 5]);
        let fl = flow_lengths(&layout(), &tensors(&flows, 4)).expect("flows");
        assert_eq!(fl.heads, ["proto/top", "srcip/top"]);
        assert_eq!(
            fl.strata,
            vec![
                stratum(&[], &[(2, 5)]),
                stratum(&[0], &[(3, 15)]),
                stratum(&[0, 0], &[(1, 25)]),
            ]
        );
    }

    #[test]
    fn generated_lengths_take_their_strata_quantiles_in_rank_order() {
        let fl = FlowLengths {
            heads: vec!["proto/top".into(), "srcip/top".into()],
            strata: vec![
                stratum(&[], &[(2, 5)]),
                stratum(&[0], &[(1, 1), (3, 3)]),
                stratum(&[0, 0], &[(1, 25)]),
            ],
        };
        // Rows: 0-1 proto 0 / ip 0 -> stratum [0,0]: length 1 whatever was generated.
        // Rows 2-5 proto 0 / ip 1 -> stratum [0]: quarter 1, three quarters 3, by rank of
        // (length, margin): row 4 (len 1, margin -2) is ranked lowest, then row 3 (len 1,
        // margin -1), row 5 (len 2), row 2 (len 4).
        // Row 6 proto 1 -> the chunk: 2.
        let rows = [(0, 0), (0, 0), (1, 0), (1, 0), (1, 0), (1, 0), (2, 1)];
        let attrs: Vec<f32> = rows.iter().flat_map(|&(ip, p)| row(ip, p)).collect();
        let lengths = [3, 1, 4, 1, 1, 2, 4];
        let margins = [0.0, 0.0, 0.0, -1.0, -2.0, 0.0, 0.0];
        let out = length_targets(&fl, &layout(), &attrs, 7, &lengths, &margins, 4);
        assert_eq!(out, [1, 1, 3, 3, 1, 3, 2]);
    }

    #[test]
    fn a_stratum_without_lengths_of_its_own_lends_its_subtree() {
        // Every training flow went to a protocol stratum, so the chunk keeps no lengths of
        // its own. Protocol 1 has no stratum: its flows fall to the chunk, which lends the
        // lengths of its whole subtree (here protocol 0's: 2).
        let fl = FlowLengths {
            heads: vec!["proto/top".into(), "srcip/top".into()],
            strata: vec![stratum(&[], &[]), stratum(&[0], &[(2, 1)])],
        };
        let attrs: Vec<f32> = [row(0, 0), row(0, 1), row(1, 1)].concat();
        let out = length_targets(&fl, &layout(), &attrs, 7, &[1, 1, 4], &[0.0; 3], 4);
        assert_eq!(out, [2, 2, 2]);
    }

    #[test]
    fn mismatched_heads_or_shapes_leave_lengths_as_generated() {
        let fl = FlowLengths {
            heads: vec!["dstip/top".into()],
            strata: vec![stratum(&[], &[(4, 1)])],
        };
        let attrs = row(0, 0);
        assert_eq!(
            length_targets(&fl, &layout(), &attrs, 7, &[2], &[0.0], 4),
            [2]
        );
    }

    /// Attributes `ip_version` (2) then `proto/top` (2); rows by (family, proto).
    fn wide_layout() -> Layout {
        Layout {
            attributes: vec![
                Segment::new("proto/top", 2, Activation::Softmax),
                Segment::new(IP_VERSION, 2, Activation::Softmax),
            ],
            features: vec![Segment::new("td", 1, Activation::Sigmoid)],
            sample_len: 1,
            private: false,
        }
    }

    fn wide_row(family: usize, proto: usize) -> Vec<f32> {
        let mut r = vec![0.0; 4];
        r[proto] = 1.0;
        r[2 + family] = 1.0;
        r
    }

    #[test]
    fn each_address_family_keeps_its_stratum_however_few_its_flows() {
        // 30 IPv4 flows of protocol 0 (length 1), 25 of protocol 1 (length 2) and one IPv6
        // flow of protocol 1 (length 4). The family nests first; the IPv6 stratum is kept with
        // its one flow, below it nothing (1 < 20).
        let mut rows = vec![(0, 0, 1); 30];
        rows.extend(vec![(0, 1, 2); 25]);
        rows.push((1, 1, 4));
        let mut t = ChunkTensors::zeros(rows.len(), 4, 6, 1);
        for (i, &(family, proto, len)) in rows.iter().enumerate() {
            t.attributes[i * 4..(i + 1) * 4].copy_from_slice(&wide_row(family, proto));
            for s in 0..len {
                t.gen_flag[i * 6 + s] = 1.0;
            }
        }
        let fl = flow_lengths(&wide_layout(), &t).expect("flows");
        assert_eq!(fl.heads, [IP_VERSION, "proto/top"]);
        assert_eq!(
            fl.strata,
            vec![
                stratum(&[], &[]),
                stratum(&[0], &[]),
                stratum(&[0, 0], &[(1, 30)]),
                stratum(&[0, 1], &[(2, 25)]),
                stratum(&[1], &[(4, 1)]),
            ]
        );
        // A generated IPv6 flow that ran to the end takes the IPv6 length, not the longest
        // IPv4 one; the IPv4 flows of protocol 1 take theirs.
        let attrs: Vec<f32> = [wide_row(1, 1), wide_row(0, 1), wide_row(0, 1)].concat();
        let out = length_targets(&fl, &wide_layout(), &attrs, 4, &[6, 6, 1], &[0.0; 3], 6);
        assert_eq!(out, [4, 2, 2]);
    }

    #[test]
    fn quantile_lengths_match_a_hand_worked_case() {
        let h = [(1, 2), (2, 1), (5, 1)];
        assert_eq!(length_at(&h, 4, 0.125), 1);
        assert_eq!(length_at(&h, 4, 0.5), 1);
        assert_eq!(length_at(&h, 4, 0.625), 2);
        assert_eq!(length_at(&h, 4, 0.875), 5);
    }
}
