//! Class calibration: how many of a chunk's generated flows take each class of a categorical
//! attribute head.
//!
//! Decoding takes a categorical head's most probable class. The generator's probabilities are
//! trained against one-hot targets, but the most probable class is not a draw from them: a
//! class that the generator slightly favours on many flows wins all of them, and the protocol
//! or top-address mix of the output swings with the seed (the held-out JSD of the protocol
//! spread 11-13x over three seeds on the UGR16 host-days; bench/FIDELITY.md at 2c57c85).
//!
//! So encode records, for each chunk and each class head, how many training flows took each
//! class ([`class_counts`]), and synth gives each class its share of the generated flows
//! ([`quotas`]) and fills the shares with the flows whose probabilities favour it most
//! ([`assign`]). A flow keeps its most probable class unless that class is already full. The
//! generator still decides which flows take a class, and the features are then sampled
//! conditioned on the class the flow decodes to, so fields stay consistent within a flow.
//!
//! Class heads are the heads whose classes are values of a field (one-hot fields and the top
//! values of an address or port). The two-way heads of a bit encoding are left alone: the bits
//! of an address spell it together, and fixing each bit's share on its own would break the
//! subnets they spell. The address family head (`ip_version`) is left alone too: a wide
//! address decodes its top value only when the family agrees, else its bits, so a family moved
//! on its own would give an IPv4 flow's bits to an IPv6 header (IPv4-mapped addresses on packets
//! that lose their IPv4-only fields). The flow tags of multi-chunk encodes are left to the merge.
//!
//! The shares are of flows, and fidelity is judged over records: 93-100% of the UGR16 training
//! parts' flows hold one or two records, while 2 of the capture's 197 flows hold 28% of its
//! packets. Class shares alone made the capture's packet-level address JSDs swing more over
//! seeds, not less (a few long flows moved between addresses; bench/EXPERIMENTS.md), so they
//! come with flow lengths mapped within strata of the classes ([`crate::lengths`]): a class
//! gets its training share of the flows, and its flows get the training lengths of its
//! stratum.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use netshare_core::layout::{Activation, Layout, Segment};
use netshare_core::tensors::ChunkTensors;

use crate::addr::IP_VERSION;
use crate::encoder::is_tag_head;
use crate::fields::{argmax, is_bit_segment};

/// `(column, dim, name)` of each class head among `segs`: softmax heads of at least two
/// classes, except the bit heads (`…/bitNN`), the address family and the flow tags (`tag/…`).
pub fn class_heads(segs: &[Segment]) -> Vec<(usize, usize, &str)> {
    let mut off = 0;
    let mut out = Vec::new();
    for s in segs {
        let other = is_bit_segment(&s.field) || is_tag_head(&s.field) || s.field == IP_VERSION;
        if s.activation == Activation::Softmax && s.dim >= 2 && !other {
            out.push((off, s.dim, s.field.as_str()));
        }
        off += s.dim;
    }
    out
}

/// For each class head of the attributes, how many of the chunk's training flows take each
/// class (their one-hot's position).
pub fn class_counts(layout: &Layout, t: &ChunkTensors) -> BTreeMap<String, Vec<u64>> {
    let mut out = BTreeMap::new();
    for (col, dim, name) in class_heads(&layout.attributes) {
        let mut counts = vec![0u64; dim];
        for i in 0..t.n {
            let row = &t.attributes[i * t.attr_dim + col..i * t.attr_dim + col + dim];
            counts[argmax(row)] += 1;
        }
        out.insert(name.to_string(), counts);
    }
    out
}

/// Splits `n` flows among classes in proportion to `counts` by largest remainder: each class
/// gets the floor of its exact share, and the flows left over go one each to the classes with
/// the largest fractional parts (the lower class first on ties). All zero when `counts` sum
/// to zero.
pub fn quotas(counts: &[u64], n: usize) -> Vec<usize> {
    let total: u128 = counts.iter().map(|&c| u128::from(c)).sum();
    if total == 0 {
        return vec![0; counts.len()];
    }
    // Exact arithmetic: share_k = n c_k / total = q_k + r_k / total.
    let parts: Vec<(usize, u128)> = counts
        .iter()
        .map(|&c| {
            let x = n as u128 * u128::from(c);
            ((x / total) as usize, x % total)
        })
        .collect();
    let mut out: Vec<usize> = parts.iter().map(|p| p.0).collect();
    let left = n - out.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..counts.len()).collect();
    order.sort_by(|&a, &b| parts[b].1.cmp(&parts[a].1).then(a.cmp(&b)));
    for &k in order.iter().take(left) {
        out[k] += 1;
    }
    out
}

/// Gives each of `n` rows one of `dim` classes so that class `k` gets exactly `quotas[k]` rows
/// (`quotas` must sum to `n`). `prob(i, k)` is row `i`'s probability of class `k`. The (row,
/// class) pairs are taken from the most probable down (ties by row, then class), and a pair is
/// kept when its row has no class yet and its class has room. A row's most probable class comes
/// before its others, so when the most probable classes already fill the quotas exactly, every
/// row keeps its own. NaN probabilities count as the least probable.
pub fn assign(
    n: usize,
    dim: usize,
    quotas: &[usize],
    prob: impl Fn(usize, usize) -> f32,
) -> Vec<usize> {
    debug_assert_eq!(quotas.len(), dim);
    debug_assert_eq!(quotas.iter().sum::<usize>(), n);
    let key = |i: usize, k: usize| {
        let p = prob(i, k);
        if p.is_nan() { f32::NEG_INFINITY } else { p }
    };
    let mut pairs: Vec<(f32, u32, u32)> = Vec::with_capacity(n * dim);
    let open: Vec<usize> = (0..dim).filter(|&k| quotas[k] > 0).collect();
    for i in 0..n {
        for &k in &open {
            pairs.push((key(i, k), i as u32, k as u32));
        }
    }
    pairs.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut room = quotas.to_vec();
    let mut class = vec![usize::MAX; n];
    let mut left = n;
    for (_, i, k) in pairs {
        let (i, k) = (i as usize, k as usize);
        if class[i] == usize::MAX && room[k] > 0 {
            class[i] = k;
            room[k] -= 1;
            left -= 1;
            if left == 0 {
                break;
            }
        }
    }
    class
}

/// A class head of the attribute rows and the training flows that took each of its classes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassHead {
    /// The head's name, e.g. `proto/top`.
    pub name: String,
    /// Its first column in an attribute row.
    pub col: usize,
    /// Training flows per class, one entry per class of the head.
    pub counts: Vec<u64>,
}

/// The training flows of a chunk by the classes of two of its class heads: `given` (the
/// protocol) and `head` (a port), as counts of each pair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassPairs {
    /// The head whose class is decided first, e.g. `proto/top`.
    pub given: String,
    /// The head whose classes are kept to the pairs seen, e.g. `dstport/top`.
    pub head: String,
    /// Training flows per pair, row-major: `counts[g * head_dim + k]` for class `g` of
    /// `given` and class `k` of `head`.
    pub counts: Vec<u64>,
}

/// The field a head belongs to: its name up to the first `/` (`proto/top` is `proto`'s).
pub(crate) fn field_of(head: &str) -> &str {
    head.split('/').next().unwrap_or(head)
}

/// For the protocol's class head and each port's, how many of the chunk's training flows took
/// each pair of their classes (one entry per port head; none without a protocol head).
pub fn class_pairs(layout: &Layout, t: &ChunkTensors) -> Vec<ClassPairs> {
    let heads = class_heads(&layout.attributes);
    let Some(&(pcol, pdim, pname)) = heads.iter().find(|h| field_of(h.2) == "proto") else {
        return Vec::new();
    };
    let row = |i: usize, col: usize, dim: usize| {
        argmax(&t.attributes[i * t.attr_dim + col..i * t.attr_dim + col + dim])
    };
    heads
        .iter()
        .filter(|h| matches!(field_of(h.2), "srcport" | "dstport"))
        .map(|&(col, dim, name)| {
            let mut counts = vec![0u64; pdim * dim];
            for i in 0..t.n {
                counts[row(i, pcol, pdim) * dim + row(i, col, dim)] += 1;
            }
            ClassPairs {
                given: pname.to_string(),
                head: name.to_string(),
                counts,
            }
        })
        .collect()
}

/// A class head whose class a row takes only in a pair with its class of another head that
/// training flows took ([`ClassRules::pairs`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairRule {
    /// The other head (an index into the heads), calibrated first.
    pub given: usize,
    /// The head kept to the pairs seen (an index into the heads).
    pub head: usize,
    /// Whether training flows took each pair, row-major as [`ClassPairs::counts`].
    pub seen: Vec<bool>,
}

impl PairRule {
    /// The rule for `pairs` among `heads`, when both heads are there and the counts fit them.
    pub fn of(heads: &[ClassHead], pairs: &ClassPairs) -> Option<PairRule> {
        let at = |name: &str| heads.iter().position(|h| h.name == name);
        let (given, head) = (at(&pairs.given)?, at(&pairs.head)?);
        let size = heads[given].counts.len() * heads[head].counts.len();
        (given != head && pairs.counts.len() == size).then(|| PairRule {
            given,
            head,
            seen: pairs.counts.iter().map(|&c| c > 0).collect(),
        })
    }
}

/// What a row's classes of different heads must respect when they are calibrated
/// ([`calibrate_classes`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassRules {
    /// Two heads `(first, second)` (indices into the heads) over the same values whose last
    /// class is "another value": a row's second head never takes the first head's class
    /// (other than the last).
    pub apart: Option<(usize, usize)>,
    /// Heads whose classes a row takes only in pairs with its class of another head that
    /// training flows took. The last class of either head ("another value") pairs with any.
    pub pairs: Vec<PairRule>,
}

/// Calibrates the class `heads` of attribute rows `[n, a]`: each head's classes get their
/// training share of the rows ([`quotas`], [`assign`]) and the head is overwritten with the
/// one-hot of the class given. A head whose training counts sum to zero, or that does not fit
/// in a row, is left as generated.
///
/// `rules` keeps some classes of a row apart ([`ClassRules`]). A class a rule rules out for a
/// row comes last among the row's pairs, and a row left only such a class takes its most
/// probable allowed one, over that class's share by one. A flow's two addresses, where the
/// trace's always differ, thus part on the destination's next most probable class by the
/// generator's own probabilities, before the one-hots hide them; and a flow's frequent port
/// goes with a protocol the training flows used it with. The heads a pair rule is given are
/// calibrated first; without rules the order does not matter (each head is calibrated on its
/// own).
pub fn calibrate_classes(heads: &[ClassHead], attrs: &mut [f32], a: usize, rules: &ClassRules) {
    if a == 0 {
        return;
    }
    let n = attrs.len() / a;
    let fits = |h: &ClassHead| {
        let dim = h.counts.len();
        dim > 0 && h.col + dim <= a && h.counts.iter().any(|&c| c > 0)
    };
    let class_of = |attrs: &[f32], h: &ClassHead| -> Vec<usize> {
        let dim = h.counts.len();
        (0..n)
            .map(|i| argmax(&attrs[i * a + h.col..i * a + h.col + dim]))
            .collect()
    };
    let is_given = |i: usize| rules.pairs.iter().any(|r| r.given == i);
    let order: Vec<usize> = (0..heads.len())
        .filter(|&i| is_given(i))
        .chain((0..heads.len()).filter(|&i| !is_given(i)))
        .collect();
    let mut done = vec![false; heads.len()];
    for index in order {
        let h = &heads[index];
        if !fits(h) {
            continue;
        }
        let (col, dim) = (h.col, h.counts.len());
        let q = quotas(&h.counts, n);
        // The first head's class per row, when this head is to keep apart from it.
        let avoid: Option<Vec<usize>> = rules
            .apart
            .filter(|&(first, second)| second == index && done.get(first) == Some(&true))
            .map(|(first, _)| &heads[first])
            .filter(|f| f.counts.len() == dim && f.col + dim <= a)
            .map(|f| {
                class_of(attrs, f)
                    .into_iter()
                    .map(|k| if k + 1 < dim { k } else { usize::MAX })
                    .collect()
            });
        // Per pair rule on this head (one whose table fits both heads): each row's class of the
        // given head, and the pairs seen.
        let given: Vec<(Vec<usize>, usize, &[bool])> = rules
            .pairs
            .iter()
            .filter(|r| r.head == index && done.get(r.given) == Some(&true))
            .filter(|r| r.seen.len() == heads[r.given].counts.len() * dim)
            .map(|r| {
                let g = &heads[r.given];
                (class_of(attrs, g), g.counts.len(), r.seen.as_slice())
            })
            .collect();
        let ruled_out = |i: usize, k: usize| {
            avoid.as_ref().is_some_and(|v| v[i] == k)
                || (k + 1 < dim
                    && given
                        .iter()
                        .any(|(g, gdim, seen)| g[i] + 1 < *gdim && !seen[g[i] * dim + k]))
        };
        let prob = |i: usize, k: usize| attrs[i * a + col + k];
        let mut class = assign(n, dim, &q, |i, k| {
            if ruled_out(i, k) {
                f32::NEG_INFINITY
            } else {
                prob(i, k)
            }
        });
        // A row left only a ruled-out class takes its most probable allowed one (the last
        // class always is), one over that class's share.
        for (i, c) in class.iter_mut().enumerate() {
            if ruled_out(i, *c) {
                let allowed: Vec<f32> = (0..dim)
                    .map(|k| {
                        if ruled_out(i, k) {
                            f32::NEG_INFINITY
                        } else {
                            // NaN as the least probable allowed class, above the ruled-out.
                            Some(prob(i, k)).filter(|p| !p.is_nan()).unwrap_or(f32::MIN)
                        }
                    })
                    .collect();
                *c = argmax(&allowed);
            }
        }
        for (i, &c) in class.iter().enumerate() {
            let row = &mut attrs[i * a + col..i * a + col + dim];
            row.fill(0.0);
            row[c] = 1.0;
        }
        done[index] = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_heads_are_value_classes_not_bits_family_or_tags() {
        let segs = vec![
            Segment::new("srcip/top", 4, Activation::Softmax),
            Segment::new("srcip/bit00", 2, Activation::Softmax),
            Segment::new("proto", 3, Activation::Softmax),
            Segment::new("flow_start", 1, Activation::Sigmoid),
            Segment::new("tag/starts_here", 2, Activation::Softmax),
            Segment::new("ip_version", 2, Activation::Softmax),
            Segment::new("srcport", 5, Activation::Tanh),
        ];
        assert_eq!(
            class_heads(&segs),
            vec![(0, 4, "srcip/top"), (6, 3, "proto")]
        );
    }

    #[test]
    fn quotas_split_by_largest_remainder() {
        // 7 * (5, 3, 2) / 10 = 3.5, 2.1, 1.4: floors 3, 2, 1, the one left goes to the 0.5.
        assert_eq!(quotas(&[5, 3, 2], 7), vec![4, 2, 1]);
        // 3 * (1, 1, 1, 1) / 4 = 0.75 each: the lower classes first.
        assert_eq!(quotas(&[1, 1, 1, 1], 3), vec![1, 1, 1, 0]);
        // A class no training flow took gets none.
        assert_eq!(quotas(&[0, 2, 6], 5), vec![0, 1, 4]);
        assert_eq!(quotas(&[0, 0], 5), vec![0, 0]);
        assert_eq!(quotas(&[4, 1], 0), vec![0, 0]);
        for n in 0..50 {
            assert_eq!(quotas(&[7, 0, 13, 1, 2], n).iter().sum::<usize>(), n);
        }
    }

    #[test]
    fn assignment_matches_a_hand_worked_case() {
        let p = [[0.9f32, 0.1], [0.8, 0.2], [0.6, 0.4]];
        // Pairs from the top: (0,0) .9 kept, (1,0) .8 kept, (2,0) .6 full, (2,1) .4 kept.
        assert_eq!(assign(3, 2, &[2, 1], |i, k| p[i][k]), vec![0, 0, 1]);
        // One seat for class 0: row 0 takes it, (1,1) .2 then (0,1) skipped, row 2 via .4.
        assert_eq!(assign(3, 2, &[1, 2], |i, k| p[i][k]), vec![0, 1, 1]);
        // Ties go to the lower row; NaN is least probable.
        let t = [[0.5f32, 0.5], [0.5, f32::NAN]];
        assert_eq!(assign(2, 2, &[1, 1], |i, k| t[i][k]), vec![0, 1]);
    }

    #[test]
    fn rows_keep_their_most_probable_class_when_the_quotas_already_hold() {
        // Deterministic pseudo-random probabilities of 40 rows over 5 classes.
        let (n, dim) = (40, 5);
        let mut x = 12345u64;
        let mut probs = vec![0f32; n * dim];
        for p in probs.iter_mut() {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *p = (x >> 40) as f32 / (1u64 << 24) as f32;
        }
        let top: Vec<usize> = (0..n)
            .map(|i| argmax(&probs[i * dim..(i + 1) * dim]))
            .collect();
        let mut q = vec![0; dim];
        for &c in &top {
            q[c] += 1;
        }
        assert_eq!(assign(n, dim, &q, |i, k| probs[i * dim + k]), top);
        // Any other quotas are met exactly.
        let q2 = [10, 0, 5, 20, 5];
        let c = assign(n, dim, &q2, |i, k| probs[i * dim + k]);
        let mut got = [0; 5];
        for k in c {
            got[k] += 1;
        }
        assert_eq!(got, q2);
    }

    #[test]
    fn calibrated_rows_are_one_hots_in_the_training_shares() {
        // Rows [proto(3) | flow_start(1)]; the generator favours class 0 on all four rows.
        let a = 4;
        let mut attrs = vec![
            0.7, 0.2, 0.1, 0.11, //
            0.6, 0.3, 0.1, 0.22, //
            0.5, 0.1, 0.4, 0.33, //
            0.9, 0.05, 0.05, 0.44,
        ];
        // Training: half class 0, a quarter each of 1 and 2.
        let head = |counts: Vec<u64>| ClassHead {
            name: "proto".into(),
            col: 0,
            counts,
        };
        calibrate_classes(
            &[head(vec![2, 1, 1])],
            &mut attrs,
            a,
            &ClassRules::default(),
        );
        // Class 0 keeps rows 3 (.9) and 0 (.7); class 2 takes row 2 (.4), class 1 row 1 (.3).
        assert_eq!(
            attrs,
            vec![
                1.0, 0.0, 0.0, 0.11, //
                0.0, 1.0, 0.0, 0.22, //
                0.0, 0.0, 1.0, 0.33, //
                1.0, 0.0, 0.0, 0.44,
            ]
        );
        // A head wider than the row, or without training counts, changes nothing.
        let before = attrs.clone();
        let wide = ClassHead {
            col: 2,
            ..head(vec![1, 1, 1])
        };
        calibrate_classes(
            &[wide, head(vec![0, 0, 0]), head(vec![])],
            &mut attrs,
            a,
            &ClassRules::default(),
        );
        assert_eq!(attrs, before);
    }

    #[test]
    fn a_row_s_second_head_keeps_apart_from_its_first_but_for_the_last_class() {
        // Rows [srcip/top (2 values + other) | dstip/top (same)]. The generator gives every
        // row's destination the source's class.
        let a = 6;
        let generated = vec![
            0.8, 0.1, 0.1, 0.7, 0.2, 0.1, //
            0.1, 0.8, 0.1, 0.3, 0.6, 0.1, //
            0.2, 0.1, 0.7, 0.1, 0.1, 0.8, //
            0.9, 0.05, 0.05, 0.5, 0.1, 0.4,
        ];
        let heads = [
            head("srcip/top", 0, vec![2, 1, 1]),
            head("dstip/top", 3, vec![2, 1, 1]),
        ];
        let classes = |attrs: &[f32], col: usize| -> Vec<usize> {
            attrs.chunks(a).map(|r| argmax(&r[col..col + 3])).collect()
        };
        // Without the pair: sources 0, 1, 2, 0; destinations 0 (.7), 1 (.6), 2 (.8), then
        // row 3's .5 for class 0 is the highest left: every frequent value meets itself.
        let mut together = generated.clone();
        calibrate_classes(&heads, &mut together, a, &ClassRules::default());
        assert_eq!(classes(&together, 0), vec![0, 1, 2, 0]);
        assert_eq!(classes(&together, 3), vec![0, 1, 2, 0]);
        // Kept apart: rows 0 and 3 avoid class 0, row 1 class 1. Pairs from the top: (2,2) .8
        // kept; (3,2) .4 full; (1,0) .3 kept; (0,1) .2 kept; (3,1) .1 full; then the avoided
        // pairs, least probable: (3,0) would take class 0's last seat, so row 3 takes its most
        // probable other class, 2 (.4), one over its share.
        let mut apart = generated.clone();
        let rules = ClassRules {
            apart: Some((0, 1)),
            pairs: Vec::new(),
        };
        calibrate_classes(&heads, &mut apart, a, &rules);
        assert_eq!(classes(&apart, 0), vec![0, 1, 2, 0]);
        assert_eq!(classes(&apart, 3), vec![1, 0, 2, 2]);
        // The last class ("another value") may repeat: row 2 keeps it on both sides.
        let rows = apart.chunks(a);
        assert!(
            rows.filter(|r| argmax(&r[..3]) + 1 < 3)
                .all(|r| argmax(&r[..3]) != argmax(&r[3..]))
        );
    }

    #[test]
    fn a_row_s_port_keeps_to_the_protocols_its_class_was_seen_with() {
        // Rows [dstport/top (53, 443, other) | proto/top (6, 17, other)], the port first in
        // the layout as in the encoders'. Training pairs: 53 with 17 only, 443 with 6 only;
        // "other" on either side with anything.
        let a = 6;
        let generated = vec![
            0.7, 0.2, 0.1, 0.8, 0.1, 0.1, // 53 over TCP
            0.05, 0.8, 0.15, 0.2, 0.7, 0.1, // 443 over UDP
            0.6, 0.3, 0.1, 0.1, 0.8, 0.1, // 53 over UDP
            0.5, 0.4, 0.1, 0.1, 0.1, 0.8, // 53 over another protocol
            0.2, 0.1, 0.7, 0.9, 0.05, 0.05, // another port over TCP
        ];
        let heads = [
            head("dstport/top", 0, vec![2, 2, 1]),
            head("proto/top", 3, vec![2, 2, 1]),
        ];
        let pairs = ClassPairs {
            given: "proto/top".into(),
            head: "dstport/top".into(),
            // Rows: proto 6, 17, other; columns: port 53, 443, other.
            counts: vec![0, 2, 1, 2, 0, 0, 0, 0, 1],
        };
        let rule = PairRule::of(&heads, &pairs).expect("both heads are there");
        assert_eq!((rule.given, rule.head), (1, 0));
        let classes = |attrs: &[f32], col: usize| -> Vec<usize> {
            attrs.chunks(a).map(|r| argmax(&r[col..col + 3])).collect()
        };
        // Without the rule, rows 0 and 2 take 53 (row 3's .5 finds it full), rows 1 and 3
        // 443, row 4 "other": row 0 sends 53 over TCP, row 1 443 over UDP.
        let mut free = generated.clone();
        calibrate_classes(&heads, &mut free, a, &ClassRules::default());
        assert_eq!(classes(&free, 3), vec![0, 1, 1, 2, 0]);
        assert_eq!(classes(&free, 0), vec![0, 1, 0, 1, 2]);
        // With the rule the protocols come first (as generated: the shares already hold),
        // then the ports: rows 0 and 4 (TCP) may not take 53, rows 1 and 2 (UDP) not 443.
        // Pairs from the top: (4,2) .7 kept; (2,0) .6 kept; (3,0) .5 kept (53 full); (0,1) .2
        // kept; (1,2) .15 finds "other" full; the ruled-out pairs come last, and (1,1) takes
        // 443's second seat, so row 1 takes its most probable allowed class, "other" (.15
        // over 53's .05), one over that class's share.
        let mut kept = generated.clone();
        let rules = ClassRules {
            apart: None,
            pairs: vec![rule],
        };
        calibrate_classes(&heads, &mut kept, a, &rules);
        assert_eq!(classes(&kept, 3), vec![0, 1, 1, 2, 0]);
        assert_eq!(classes(&kept, 0), vec![1, 2, 0, 0, 2]);
        // Every pair of frequent classes in the output is one the training flows took.
        for r in kept.chunks(a) {
            let (port, proto) = (argmax(&r[..3]), argmax(&r[3..]));
            assert!(port == 2 || proto == 2 || pairs.counts[proto * 3 + port] > 0);
        }
        // A rule on heads that are not there, or counts that do not fit them, is no rule; one
        // built by hand with a table of the wrong size is skipped.
        let mut misfit = generated.clone();
        let bad = ClassRules {
            apart: None,
            pairs: vec![PairRule {
                given: 1,
                head: 0,
                seen: vec![false; 4],
            }],
        };
        calibrate_classes(&heads, &mut misfit, a, &bad);
        assert_eq!(misfit, free);
        let mut wrong = pairs.clone();
        wrong.counts.pop();
        assert_eq!(PairRule::of(&heads, &wrong), None);
        wrong = ClassPairs {
            head: "srcport/top".into(),
            ..pairs.clone()
        };
        assert_eq!(PairRule::of(&heads, &wrong), None);
    }

    #[test]
    fn a_row_left_only_ruled_out_classes_takes_the_last_one_over_its_share() {
        // Rows [srcport/top (22, other) | proto/top (6, 17, other)]; 22 was seen with TCP
        // only, and its share is both rows, but both are UDP.
        let a = 5;
        let mut attrs = vec![
            0.9, 0.1, 0.1, 0.8, 0.1, //
            0.8, 0.2, 0.2, 0.7, 0.1,
        ];
        let heads = [
            ClassHead {
                name: "srcport/top".into(),
                col: 0,
                counts: vec![2, 0],
            },
            ClassHead {
                name: "proto/top".into(),
                col: 2,
                counts: vec![0, 2, 0],
            },
        ];
        let pairs = ClassPairs {
            given: "proto/top".into(),
            head: "srcport/top".into(),
            counts: vec![2, 0, 0, 0, 0, 0],
        };
        let rules = ClassRules {
            apart: None,
            pairs: vec![PairRule::of(&heads, &pairs).expect("both heads are there")],
        };
        calibrate_classes(&heads, &mut attrs, a, &rules);
        assert_eq!(
            attrs,
            vec![
                0.0, 1.0, 0.0, 1.0, 0.0, //
                0.0, 1.0, 0.0, 1.0, 0.0,
            ]
        );
    }

    /// A class head named `name` at column `col` with training counts `counts`.
    fn head(name: &str, col: usize, counts: Vec<u64>) -> ClassHead {
        ClassHead {
            name: name.into(),
            col,
            counts,
        }
    }

    /// A layout of attribute heads only.
    fn attributes_only(attributes: Vec<Segment>) -> Layout {
        Layout {
            attributes,
            features: vec![],
            sample_len: 1,
            private: false,
        }
    }

    #[test]
    fn pair_counts_are_the_protocol_and_port_one_hot_positions() {
        let layout = attributes_only(vec![
            Segment::new("srcport/top", 3, Activation::Softmax),
            Segment::new("srcport/bit00", 2, Activation::Softmax),
            Segment::new("dstport/top", 2, Activation::Softmax),
            Segment::new("proto/top", 2, Activation::Softmax),
        ]);
        let mut t = ChunkTensors::zeros(3, 9, 1, 0);
        // (srcport class, dstport class, proto class) per flow.
        for (i, (s, d, p)) in [(0, 1, 1), (2, 1, 0), (0, 0, 1)].into_iter().enumerate() {
            t.attributes[i * 9 + s] = 1.0;
            t.attributes[i * 9 + 3] = 1.0;
            t.attributes[i * 9 + 5 + d] = 1.0;
            t.attributes[i * 9 + 7 + p] = 1.0;
        }
        let pairs = class_pairs(&layout, &t);
        assert_eq!(
            pairs,
            vec![
                ClassPairs {
                    given: "proto/top".into(),
                    head: "srcport/top".into(),
                    counts: vec![0, 0, 1, 2, 0, 0],
                },
                ClassPairs {
                    given: "proto/top".into(),
                    head: "dstport/top".into(),
                    counts: vec![0, 1, 1, 1],
                },
            ]
        );
        // Without a protocol head there are no pairs.
        let no_proto = attributes_only(layout.attributes[..3].to_vec());
        let mut t2 = ChunkTensors::zeros(1, 7, 1, 0);
        t2.attributes[0] = 1.0;
        assert!(class_pairs(&no_proto, &t2).is_empty());
    }

    #[test]
    fn training_counts_are_the_one_hot_positions() {
        let layout = attributes_only(vec![
            Segment::new("proto", 3, Activation::Softmax),
            Segment::new("proto/bit00", 2, Activation::Softmax),
        ]);
        let mut t = ChunkTensors::zeros(3, 5, 1, 0);
        for (i, c) in [2usize, 0, 2].iter().enumerate() {
            t.attributes[i * 5 + c] = 1.0;
            t.attributes[i * 5 + 3] = 1.0;
        }
        let counts = class_counts(&layout, &t);
        assert_eq!(counts.len(), 1);
        assert_eq!(counts["proto"], vec![1, 0, 2]);
    }
}
