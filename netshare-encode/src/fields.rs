//! Invertible field codecs (SPEC §3, and where we depart from it): bits or top_bits (a one-hot
//! over frequent values, bits for the rest) for addresses, ports and protocol, IP2Vec
//! embeddings or one-hots for ports and protocol, min-max (with optional log1p) or an empirical
//! CDF for continuous fields, sorted one-hots for categories. Each codec knows its output heads,
//! writes its dims into a tensor row, and reads generated activations back into a value.

use netshare_core::layout::{Activation, Segment};
use serde::{Deserialize, Serialize};

use crate::config::Range;

/// Writes `value`'s low `nbits` bits, most significant first, as two-way one-hots
/// (`[1, 0]` = bit clear, `[0, 1]` = bit set) into `out[..2 * nbits]`.
pub fn encode_bits(value: u32, nbits: u32, out: &mut [f32]) {
    for b in 0..nbits {
        let set = (value >> (nbits - 1 - b)) & 1 == 1;
        let i = 2 * b as usize;
        out[i] = if set { 0.0 } else { 1.0 };
        out[i + 1] = if set { 1.0 } else { 0.0 };
    }
}

/// Reads bits written by [`encode_bits`] (or generated softmax pairs): a bit is set when its
/// second value is the larger.
pub fn decode_bits(inp: &[f32], nbits: u32) -> u32 {
    let mut v = 0u32;
    for b in 0..nbits as usize {
        v = (v << 1) | u32::from(inp[2 * b + 1] > inp[2 * b]);
    }
    v
}

/// The two-way heads of a bit encoding: `name/bit00` … .
pub fn bit_segments(name: &str, nbits: u32) -> Vec<Segment> {
    (0..nbits)
        .map(|b| Segment {
            field: format!("{name}/bit{b:02}"),
            dim: 2,
            activation: Activation::Softmax,
        })
        .collect()
}

/// Whether `field` names one of the two-way heads [`bit_segments`] makes (`name/bitNN`).
pub fn is_bit_segment(field: &str) -> bool {
    field
        .rsplit_once("/bit")
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Index of the largest value (the first one on ties; NaN never wins).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] || v[best].is_nan() {
            best = i;
        }
    }
    best
}

/// How much less likely a losing choice of a softmax head is than its winner: the difference
/// of their log-probabilities. Activations are floored at the smallest normal `f32`, so a
/// choice the head gave 0 costs a large finite amount.
pub(crate) fn choice_cost(win: f32, lose: f32) -> f32 {
    let ln = |p: f32| p.max(f32::MIN_POSITIVE).ln();
    (ln(win) - ln(lose)).max(0.0)
}

/// Among bits `from..nbits` of a bit encoding (most significant first), the one the
/// activations are least sure of, and what flipping it costs ([`choice_cost`]); the first on
/// ties, `None` when the range is empty.
pub(crate) fn cheapest_flip(inp: &[f32], from: usize, nbits: usize) -> Option<(usize, f32)> {
    let mut best: Option<(usize, f32)> = None;
    for b in from..nbits {
        let (p0, p1) = (inp[2 * b], inp[2 * b + 1]);
        let cost = if p1 > p0 {
            choice_cost(p1, p0)
        } else {
            choice_cost(p0, p1)
        };
        if best.is_none_or(|(_, c)| cost < c) {
            best = Some((b, cost));
        }
    }
    best
}

/// A decoded value and the likeliest other value the same activations decode to, with its
/// cost (log-probability below the winner's for softmax heads, cosine below it for
/// embeddings); `None` when the codec offers no other value.
pub type RunnerUp<T> = (T, Option<(T, f32)>);

/// The runner-up of a one-hot over frequent values plus a fallback to bits (the `top_bits`
/// codecs). `q` is the one-hot's activations; slot `j` decodes to `slot(j)`, or to the bits
/// when `None` (the "other" slot, or a frequent value decoding cannot take); `bits` is the
/// bits' value and `flipped` that value with its [`cheapest_flip`] and the flip's cost.
/// Candidates: every other slot with a value of its own, the bits (when a slot won), and the
/// flipped bits (when the bits won, or when they give the winner again).
pub(crate) fn top_bits_runner_up<T: Copy + PartialEq>(
    q: &[f32],
    slot: impl Fn(usize) -> Option<T>,
    bits: T,
    flipped: Option<(T, f32)>,
) -> RunnerUp<T> {
    let win = argmax(q);
    let best = slot(win).unwrap_or(bits);
    let mut alt: Option<(T, f32)> = None;
    let mut offer = |v: T, cost: f32| {
        if v != best && alt.is_none_or(|(_, c)| cost < c) {
            alt = Some((v, cost));
        }
    };
    let mut to_bits = None::<f32>;
    for (j, &p) in q.iter().enumerate() {
        match slot(j) {
            Some(v) if j != win => offer(v, choice_cost(q[win], p)),
            Some(_) => {}
            None => to_bits = Some(to_bits.map_or(p, |m| m.max(p))),
        }
    }
    match (slot(win), to_bits) {
        (Some(_), Some(p)) => {
            let cost = choice_cost(q[win], p);
            if bits != best {
                offer(bits, cost);
            } else if let Some((v, c)) = flipped {
                offer(v, cost + c);
            }
        }
        (Some(_), None) => {}
        (None, _) => {
            if let Some((v, c)) = flipped {
                offer(v, c);
            }
        }
    }
    (best, alt)
}

/// A fitted codec for a port or the protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DiscreteCodec {
    /// IP2Vec embedding: one L2-normalised vector per value seen in training, values sorted.
    Embedding {
        /// The values seen, ascending.
        values: Vec<u32>,
        /// Vector width.
        dim: usize,
        /// One vector per value, in `values` order.
        vectors: Vec<Vec<f32>>,
    },
    /// One-hot over the values seen, ascending.
    OneHot {
        /// The values seen, ascending.
        values: Vec<u32>,
    },
    /// The value's bits, two-way one-hot each.
    Bits {
        /// Number of bits (16 for ports, 8 for the protocol).
        bits: u32,
    },
    /// A one-hot over the most frequent values plus "other", followed by the value's bits:
    /// frequent values (service ports) come back exactly from the one-hot, the rest
    /// (ephemeral ports, never the same twice in a held-out trace) from the bits, so the
    /// generator is not limited to values it saw.
    TopBits {
        /// The frequent values, ascending; one-hot index `top.len()` means "another value".
        top: Vec<u32>,
        /// Number of bits of the other values.
        bits: u32,
    },
}

impl DiscreteCodec {
    /// Total dims.
    pub fn dim(&self) -> usize {
        match self {
            DiscreteCodec::Embedding { dim, .. } => *dim,
            DiscreteCodec::OneHot { values } => values.len(),
            DiscreteCodec::Bits { bits } => 2 * *bits as usize,
            DiscreteCodec::TopBits { top, bits } => top.len() + 1 + 2 * *bits as usize,
        }
    }

    /// The output heads for a field of this codec.
    pub fn segments(&self, name: &str) -> Vec<Segment> {
        match self {
            DiscreteCodec::Embedding { dim, .. } => vec![Segment {
                field: name.to_string(),
                dim: *dim,
                activation: Activation::Tanh,
            }],
            DiscreteCodec::OneHot { values } => vec![Segment {
                field: name.to_string(),
                dim: values.len(),
                activation: Activation::Softmax,
            }],
            DiscreteCodec::Bits { bits } => bit_segments(name, *bits),
            DiscreteCodec::TopBits { top, bits } => {
                let mut v = vec![Segment {
                    field: format!("{name}/top"),
                    dim: top.len() + 1,
                    activation: Activation::Softmax,
                }];
                v.extend(bit_segments(name, *bits));
                v
            }
        }
    }

    /// Index into `values` of `v`, or of the numerically nearest value (lower on a tie) when
    /// `v` was not seen. The flag says whether `v` itself was seen.
    fn lookup(values: &[u32], v: u32) -> (usize, bool) {
        match values.binary_search(&v) {
            Ok(i) => (i, true),
            Err(i) => {
                if i == 0 {
                    (0, false)
                } else if i == values.len() || v - values[i - 1] <= values[i] - v {
                    (i - 1, false)
                } else {
                    (i, false)
                }
            }
        }
    }

    /// Writes the encoding of `v` into `out[..self.dim()]`; returns false when `v` was not
    /// seen in training and its nearest seen neighbour was encoded instead.
    pub fn encode(&self, v: u32, out: &mut [f32]) -> bool {
        match self {
            DiscreteCodec::Embedding {
                values, vectors, ..
            } => {
                if values.is_empty() {
                    return false;
                }
                let (i, seen) = Self::lookup(values, v);
                out[..vectors[i].len()].copy_from_slice(&vectors[i]);
                seen
            }
            DiscreteCodec::OneHot { values } => {
                if values.is_empty() {
                    return false;
                }
                let (i, seen) = Self::lookup(values, v);
                out[..values.len()].fill(0.0);
                out[i] = 1.0;
                seen
            }
            DiscreteCodec::Bits { bits } => {
                encode_bits(v, *bits, out);
                u64::from(v) < (1u64 << *bits)
            }
            DiscreteCodec::TopBits { top, bits } => {
                let k = top.len();
                out[..=k].fill(0.0);
                out[top.binary_search(&v).unwrap_or(k)] = 1.0;
                encode_bits(v, *bits, &mut out[k + 1..]);
                u64::from(v) < (1u64 << *bits)
            }
        }
    }

    /// A decoder ready for many rows (the embedding matrix flattened once).
    pub fn decoder(&self) -> DiscreteDecoder<'_> {
        // Column-major [dim, vocab]: the dot products with every vector are then `dim` passes
        // of a multiply-add over contiguous memory, which the compiler vectorises.
        let cols = match self {
            DiscreteCodec::Embedding { vectors, dim, .. } => {
                let mut cols = vec![0.0f32; dim * vectors.len()];
                for (v, vec) in vectors.iter().enumerate() {
                    for (d, &x) in vec.iter().enumerate().take(*dim) {
                        cols[d * vectors.len() + v] = x;
                    }
                }
                cols
            }
            _ => Vec::new(),
        };
        DiscreteDecoder { codec: self, cols }
    }
}

/// Decodes generated activations of one [`DiscreteCodec`].
pub struct DiscreteDecoder<'a> {
    codec: &'a DiscreteCodec,
    cols: Vec<f32>,
}

impl DiscreteDecoder<'_> {
    /// Dot products of the first `dim` values of `inp` with each of the `n` embedding vectors.
    fn dots(&self, n: usize, dim: usize, inp: &[f32]) -> Vec<f32> {
        let mut dots = vec![0.0f32; n];
        for (d, &x) in inp.iter().enumerate().take(dim) {
            for (acc, &c) in dots.iter_mut().zip(&self.cols[d * n..(d + 1) * n]) {
                *acc += x * c;
            }
        }
        dots
    }

    /// The value whose encoding is nearest `inp` (cosine for embeddings, argmax for one-hots,
    /// per-bit argmax for bits).
    pub fn decode(&self, inp: &[f32]) -> u32 {
        match self.codec {
            DiscreteCodec::Embedding { values, dim, .. } => {
                // Cosine to unit-norm vectors = dot / |inp|, and |inp| is common to all of
                // them, so the largest dot product is the nearest by cosine (first on ties).
                let dots = self.dots(values.len(), *dim, inp);
                values.get(argmax(&dots)).copied().unwrap_or(0)
            }
            DiscreteCodec::OneHot { values } => values
                .get(argmax(&inp[..values.len()]))
                .copied()
                .unwrap_or(0),
            DiscreteCodec::Bits { bits } => decode_bits(inp, *bits),
            DiscreteCodec::TopBits { top, bits } => {
                let k = top.len();
                match top.get(argmax(&inp[..=k])) {
                    Some(&v) => v,
                    None => decode_bits(&inp[k + 1..], *bits),
                }
            }
        }
    }

    /// What [`DiscreteDecoder::decode`] gives, and the likeliest other value: the second
    /// nearest embedding or one-hot value, the bits with their least certain bit flipped, or
    /// for `top_bits` the best of the other frequent values, the bits and the flipped bits.
    pub fn decode_runner_up(&self, inp: &[f32]) -> RunnerUp<u32> {
        let second = |scores: &[f32], values: &[u32], cost: &dyn Fn(f32, f32) -> f32| {
            let win = argmax(scores);
            let mut alt: Option<(u32, f32)> = None;
            for (j, &s) in scores.iter().enumerate() {
                let c = cost(scores[win], s);
                if j != win && alt.is_none_or(|(_, a)| c < a) {
                    alt = Some((values[j], c));
                }
            }
            (values.get(win).copied().unwrap_or(0), alt)
        };
        let flip = |inp: &[f32], bits: u32| {
            let v = decode_bits(inp, bits);
            let f = cheapest_flip(inp, 0, bits as usize)
                .map(|(b, c)| (v ^ (1 << (bits as usize - 1 - b)), c));
            (v, f)
        };
        match self.codec {
            DiscreteCodec::Embedding { values, dim, .. } => {
                let dots = self.dots(values.len(), *dim, inp);
                let norm = inp.iter().take(*dim).map(|x| x * x).sum::<f32>().sqrt();
                second(&dots, values, &|w, l| (w - l) / norm.max(f32::MIN_POSITIVE))
            }
            DiscreteCodec::OneHot { values } => second(&inp[..values.len()], values, &choice_cost),
            DiscreteCodec::Bits { bits } => flip(inp, *bits),
            DiscreteCodec::TopBits { top, bits } => {
                let k = top.len();
                let (v, f) = flip(&inp[k + 1..], *bits);
                top_bits_runner_up(&inp[..=k], |j| top.get(j).copied(), v, f)
            }
        }
    }
}

/// A fitted continuous field: optional log1p, then min-max from `[lo, hi]` (in the transformed
/// space) to the range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContinuousCodec {
    /// log1p before scaling, expm1 after.
    pub log1p: bool,
    /// Output range.
    pub range: Range,
    /// Lower bound, after log1p.
    pub lo: f64,
    /// Upper bound, after log1p.
    pub hi: f64,
    /// Round decoded values to integers.
    pub integer: bool,
    /// Quantile knots (after log1p) at probabilities 0, 1/K, …, 1; when given, a value is
    /// encoded as its piecewise-linear empirical CDF instead of min-max, so the generator sees
    /// a uniform marginal instead of a skewed one. A run of equal knots (a value many records
    /// share, such as one packet) encodes to the middle of its probability span and every
    /// output inside the span decodes to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub knots: Vec<f64>,
}

impl ContinuousCodec {
    /// Adds `k` quantile knots fitted on `values` (see [`ContinuousCodec::knots`]); fewer than
    /// two finite values leave the min-max encoding in place.
    pub fn with_quantiles(mut self, values: &[f64], k: usize) -> Self {
        let f = |x: f64| if self.log1p { x.max(0.0).ln_1p() } else { x };
        let mut y: Vec<f64> = values
            .iter()
            .filter(|x| x.is_finite())
            .map(|&x| f(x))
            .collect();
        if y.len() < 2 || k < 1 {
            return self;
        }
        y.sort_by(f64::total_cmp);
        let n = y.len();
        self.knots = (0..=k).map(|i| y[i * (n - 1) / k]).collect();
        self.lo = y[0];
        self.hi = y[n - 1];
        self
    }

    /// The empirical CDF of `y` (transformed space) through the knots, in [0, 1].
    fn cdf(&self, y: f64) -> f64 {
        let q = &self.knots;
        let k = (q.len() - 1) as f64;
        if y <= q[0] {
            // Inside the run of knots equal to the minimum: the middle of its span.
            let last = q.iter().rposition(|&x| x <= q[0]).unwrap_or(0);
            return if y < q[0] { 0.0 } else { 0.5 * last as f64 / k };
        }
        if y >= q[q.len() - 1] {
            let first = q
                .iter()
                .position(|&x| x >= q[q.len() - 1])
                .unwrap_or(q.len() - 1);
            return if y > q[q.len() - 1] {
                1.0
            } else {
                0.5 * (first as f64 + k) / k
            };
        }
        // First knot above y, and the run of knots equal to y (if any).
        let hi = q.partition_point(|&x| x <= y);
        let lo = q.partition_point(|&x| x < y);
        if lo < hi {
            return 0.5 * ((lo as f64) + (hi - 1) as f64) / k;
        }
        let j = hi - 1;
        let t = (y - q[j]) / (q[hi] - q[j]);
        (j as f64 + t) / k
    }

    /// The inverse of [`ContinuousCodec::cdf`].
    fn inverse_cdf(&self, u: f64) -> f64 {
        let q = &self.knots;
        let k = q.len() - 1;
        let p = u.clamp(0.0, 1.0) * k as f64;
        let j = (p.floor() as usize).min(k - 1);
        let t = p - j as f64;
        q[j] + t * (q[j + 1] - q[j])
    }

    /// Fits bounds: the fixed ones when given, else the finite min and max of `values`.
    /// Fits bounds: the fixed ones when given, else the finite min and max of `values`.
    pub fn fit(
        values: &[f64],
        log1p: bool,
        range: Range,
        bounds: Option<[f64; 2]>,
        integer: bool,
    ) -> Self {
        let f = |x: f64| if log1p { x.max(0.0).ln_1p() } else { x };
        let (lo, hi) = match bounds {
            Some([a, b]) => (f(a.min(b)), f(a.max(b))),
            None => {
                let mut lo = f64::INFINITY;
                let mut hi = f64::NEG_INFINITY;
                for &x in values.iter().filter(|x| x.is_finite()) {
                    let y = f(x);
                    lo = lo.min(y);
                    hi = hi.max(y);
                }
                if lo > hi { (0.0, 0.0) } else { (lo, hi) }
            }
        };
        ContinuousCodec {
            log1p,
            range,
            lo,
            hi,
            integer,
            knots: Vec::new(),
        }
    }

    /// The activation of this field's head.
    pub fn activation(&self) -> Activation {
        match self.range {
            Range::Unit => Activation::Sigmoid,
            Range::Symmetric => Activation::Tanh,
        }
    }

    /// Encodes a value; the flag is true when it lay outside the bounds (or was not finite)
    /// and was clamped.
    pub fn encode(&self, x: f64) -> (f32, bool) {
        if !x.is_finite() {
            return (self.to_range(0.0), true);
        }
        let y = if self.log1p { x.max(0.0).ln_1p() } else { x };
        if self.knots.len() >= 2 {
            let clamped = y < self.lo || y > self.hi || (self.log1p && x < 0.0);
            return (self.to_range(self.cdf(y)), clamped);
        }
        let span = self.hi - self.lo;
        let u = if span > 0.0 {
            (y - self.lo) / span
        } else {
            0.0
        };
        let clamped = !(0.0..=1.0).contains(&u) || (self.log1p && x < 0.0);
        (self.to_range(u.clamp(0.0, 1.0)), clamped)
    }

    fn to_range(&self, u: f64) -> f32 {
        (match self.range {
            Range::Unit => u,
            Range::Symmetric => 2.0 * u - 1.0,
        }) as f32
    }

    /// Decodes a generated value (clamped into the range first) in f64.
    pub fn decode(&self, v: f32) -> f64 {
        let v = if v.is_nan() { 0.0 } else { f64::from(v) };
        let u = match self.range {
            Range::Unit => v.clamp(0.0, 1.0),
            Range::Symmetric => (v.clamp(-1.0, 1.0) + 1.0) / 2.0,
        };
        let y = if self.knots.len() >= 2 {
            self.inverse_cdf(u)
        } else {
            self.lo + u * (self.hi - self.lo)
        };
        let x = if self.log1p { y.exp_m1() } else { y };
        if self.integer { x.round() } else { x }
    }
}

/// A fitted categorical field: one-hot over `categories` (sorted unless given by config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoricalCodec {
    /// The categories in one-hot order.
    pub categories: Vec<String>,
}

impl CategoricalCodec {
    /// Writes the one-hot of `s` into `out[..n]`; an unknown category is written as the first
    /// one and reported with `false`.
    pub fn encode(&self, s: &str, out: &mut [f32]) -> bool {
        let n = self.categories.len();
        out[..n].fill(0.0);
        match self.categories.iter().position(|c| c == s) {
            Some(i) => {
                out[i] = 1.0;
                true
            }
            None => {
                if n > 0 {
                    out[0] = 1.0;
                }
                false
            }
        }
    }

    /// The category with the largest activation.
    pub fn decode(&self, inp: &[f32]) -> String {
        let n = self.categories.len();
        if n == 0 {
            return String::new();
        }
        self.categories[argmax(&inp[..n])].clone()
    }
}

/// The codec of one non-key field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum FieldCodec {
    /// A continuous field.
    Continuous(ContinuousCodec),
    /// A categorical field.
    Categorical(CategoricalCodec),
}

impl FieldCodec {
    /// Total dims.
    pub fn dim(&self) -> usize {
        match self {
            FieldCodec::Continuous(_) => 1,
            FieldCodec::Categorical(c) => c.categories.len(),
        }
    }

    /// The output head.
    pub fn segment(&self, name: &str) -> Segment {
        match self {
            FieldCodec::Continuous(c) => Segment {
                field: name.to_string(),
                dim: 1,
                activation: c.activation(),
            },
            FieldCodec::Categorical(c) => Segment {
                field: name.to_string(),
                dim: c.categories.len(),
                activation: Activation::Softmax,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_heads_are_told_by_the_names_bit_segments_makes() {
        assert!(
            bit_segments("srcip", 32)
                .iter()
                .all(|s| is_bit_segment(&s.field))
        );
        for other in [
            "srcip/top",
            "proto",
            "bitrate",
            "x/bits",
            "x/bit",
            "tag/starts_here",
        ] {
            assert!(!is_bit_segment(other), "{other}");
        }
        assert!(crate::encoder::is_tag_head(&crate::encoder::tag_in_chunk(
            3
        )));
        assert!(crate::encoder::is_tag_head(crate::encoder::TAG_STARTS_HERE));
        assert!(!crate::encoder::is_tag_head("proto/top"));
    }

    #[test]
    fn bits_are_most_significant_first_and_index_one_means_set() {
        let mut out = [9.0f32; 8];
        encode_bits(0b1010, 4, &mut out);
        assert_eq!(out, [0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0]);
        assert_eq!(decode_bits(&out, 4), 0b1010);
        // Soft values decode by the larger of each pair.
        assert_eq!(decode_bits(&[0.4, 0.6, 0.9, 0.1], 2), 0b10);
    }

    #[test]
    fn unseen_values_map_to_the_numerically_nearest_seen_one() {
        let values = vec![22, 80, 443];
        assert_eq!(DiscreteCodec::lookup(&values, 80), (1, true));
        assert_eq!(DiscreteCodec::lookup(&values, 0), (0, false));
        assert_eq!(DiscreteCodec::lookup(&values, 51), (0, false)); // tie 22/80 → lower
        assert_eq!(DiscreteCodec::lookup(&values, 52), (1, false));
        assert_eq!(DiscreteCodec::lookup(&values, 9999), (2, false));
    }

    #[test]
    fn embedding_decodes_by_cosine_not_by_length() {
        let c = DiscreteCodec::Embedding {
            values: vec![1, 2],
            dim: 2,
            vectors: vec![vec![1.0, 0.0], vec![0.6, 0.8]],
        };
        // Long vector pointing near value 2's direction.
        assert_eq!(c.decoder().decode(&[3.0, 5.0]), 2);
        assert_eq!(c.decoder().decode(&[0.2, -0.1]), 1);
    }

    #[test]
    fn an_embedding_s_runner_up_is_the_second_nearest_by_cosine() {
        let c = DiscreteCodec::Embedding {
            values: vec![1, 2, 3],
            dim: 2,
            vectors: vec![vec![1.0, 0.0], vec![0.6, 0.8], vec![0.0, -1.0]],
        };
        // [3, 4] has cosine 0.6 to value 1, 1.0 to value 2 and -0.8 to value 3.
        let (best, alt) = c.decoder().decode_runner_up(&[3.0, 4.0]);
        assert_eq!(best, 2);
        let (v, cost) = alt.expect("a runner-up");
        assert_eq!(v, 1);
        assert!((cost - 0.4).abs() < 1e-6, "{cost}");
    }

    #[test]
    fn top_bits_decode_frequent_values_from_the_one_hot_and_others_from_the_bits() {
        let c = DiscreteCodec::TopBits {
            top: vec![53, 80, 443],
            bits: 16,
        };
        assert_eq!(c.dim(), 4 + 32);
        let seg = c.segments("dstport");
        assert_eq!(seg[0].field, "dstport/top");
        assert_eq!(seg[0].dim, 4);
        assert_eq!(seg.len(), 17);
        let d = c.decoder();
        for v in [53u32, 80, 443, 0, 1024, 51_234, 65_535] {
            let mut row = vec![0.0f32; c.dim()];
            assert!(c.encode(v, &mut row), "{v} fits in 16 bits");
            assert_eq!(d.decode(&row), v, "round trip of {v}");
        }
        // The one-hot decides: "other" with the bits of 80 decodes 80 through the bits, and a
        // frequent value wins over whatever the bits say.
        let mut row = vec![0.0f32; c.dim()];
        c.encode(80, &mut row);
        row[1] = 0.0;
        row[3] = 0.9;
        assert_eq!(d.decode(&row), 80);
        c.encode(51_234, &mut row);
        row[0] = 0.0;
        row[3] = 0.0;
        row[2] = 0.7;
        assert_eq!(d.decode(&row), 443);
    }

    #[test]
    fn quantile_codec_gives_uniform_codes_and_decodes_shared_values_exactly() {
        // 60 one-packet records, then 2..=41 packets once each: a skewed field.
        let mut values = vec![1.0; 60];
        values.extend((2..=41).map(f64::from));
        let c = ContinuousCodec::fit(&values, true, Range::Unit, None, true)
            .with_quantiles(&values, 20);
        assert_eq!(c.knots.len(), 21);
        // The shared value sits in the middle of its 60% probability span and comes back.
        let (u1, clamped) = c.encode(1.0);
        assert!(!clamped);
        assert!((f64::from(u1) - 0.3).abs() < 1e-6, "{u1}");
        assert_eq!(c.decode(u1), 1.0);
        // Any output inside the span decodes to it.
        for u in [0.0f32, 0.1, 0.5, 0.59] {
            assert_eq!(c.decode(u), 1.0, "u = {u}");
        }
        // Every value round-trips, and codes are increasing in the value.
        let mut last = -1.0f32;
        for v in 1..=41 {
            let (u, _) = c.encode(f64::from(v));
            assert_eq!(c.decode(u), f64::from(v), "value {v}");
            assert!(u >= last);
            last = u;
        }
        // Codes are about uniform: the upper 40% of records use the upper 40% of the range.
        assert!((f64::from(c.encode(2.0).0) - 0.6).abs() < 0.05);
        assert!(
            c.encode(1e9).1,
            "above the fitted range is reported as clamped"
        );
        assert_eq!(c.decode(1.0), 41.0);
    }

    #[test]
    fn continuous_round_trip_with_log1p_and_symmetric_range() {
        let c = ContinuousCodec::fit(&[0.0, 5.0, 1000.0], true, Range::Symmetric, None, true);
        for x in [0.0, 5.0, 17.0, 1000.0] {
            let (y, clamped) = c.encode(x);
            assert!(!clamped && (-1.0..=1.0).contains(&y));
            assert_eq!(c.decode(y), x);
        }
        assert!(c.encode(2000.0).1, "above the fitted range is clamped");
        assert_eq!(
            c.decode(5.0),
            1000.0,
            "generated values are clamped into the range"
        );
    }

    #[test]
    fn categorical_unknown_is_reported_and_encoded_as_first() {
        let c = CategoricalCodec {
            categories: vec!["a".into(), "b".into()],
        };
        let mut out = [0.0; 2];
        assert!(c.encode("b", &mut out));
        assert_eq!(out, [0.0, 1.0]);
        assert!(!c.encode("zzz", &mut out));
        assert_eq!(out, [1.0, 0.0]);
        assert_eq!(c.decode(&[0.2, 0.7]), "b");
    }
}
