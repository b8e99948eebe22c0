//! The codec of a flow's two addresses. For records that are all IPv4 it is a 32-bit
//! [`DiscreteCodec`] per address (NetShare's bits, or top_bits), exactly as before IPv6 was
//! carried. When the fitted records hold IPv6, it is *wide*: one `ip_version` attribute (a
//! two-way softmax, index 1 = IPv6) shared by both addresses, and per address 128 bits (IPv4
//! IPv4-mapped), optionally behind a one-hot over the most frequent addresses of either family.
//! Decoding reads the family first and takes each address in that family, so a generated flow
//! never mixes families.

use netshare_core::addr::{self, IpAddr};
use netshare_core::layout::{Activation, Segment};
use serde::{Deserialize, Serialize};

use crate::fields::{
    DiscreteCodec, DiscreteDecoder, RunnerUp, argmax, bit_segments, cheapest_flip,
    top_bits_runner_up,
};

/// Head name of the address family attribute.
pub const IP_VERSION: &str = "ip_version";

/// Bits per address in the wide codec.
pub const WIDE_BITS: u32 = 128;

/// The address codec of `encoder.json` (`ips`). The narrow form serialises as the
/// [`DiscreteCodec`] it wraps, so an all-IPv4 encoder file is what it always was.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AddrCodec {
    /// 32 bits per address (IPv4 only).
    Narrow(DiscreteCodec),
    /// Family attribute plus 128 bits per address.
    Wide(WideCodec),
}

/// The wide address codec.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum WideCodec {
    /// The family head, then 128 two-way bit heads per address.
    FamilyBits,
    /// The family head, then per address a one-hot over `top` plus "other" and 128 bit heads
    /// (used when the one-hot says "other", or names an address of the other family).
    FamilyTopBits {
        /// The frequent addresses (either family), ascending; index `top.len()` = another.
        top: Vec<IpAddr>,
    },
}

/// Writes the low `nbits` bits of a 128-bit value, most significant first, as two-way
/// one-hots (`[1, 0]` clear, `[0, 1]` set).
fn encode_bits128(value: u128, nbits: u32, out: &mut [f32]) {
    for b in 0..nbits {
        let set = (value >> (nbits - 1 - b)) & 1 == 1;
        let i = 2 * b as usize;
        out[i] = if set { 0.0 } else { 1.0 };
        out[i + 1] = if set { 1.0 } else { 0.0 };
    }
}

/// Reads bits written by [`encode_bits128`] or generated softmax pairs.
fn decode_bits128(inp: &[f32], nbits: u32) -> u128 {
    let mut v = 0u128;
    for b in 0..nbits as usize {
        v = (v << 1) | u128::from(inp[2 * b + 1] > inp[2 * b]);
    }
    v
}

impl WideCodec {
    fn top(&self) -> Option<&[IpAddr]> {
        match self {
            WideCodec::FamilyBits => None,
            WideCodec::FamilyTopBits { top } => Some(top),
        }
    }

    /// Dims of one address (without the family head).
    fn one_dim(&self) -> usize {
        self.top().map_or(0, |t| t.len() + 1) + 2 * WIDE_BITS as usize
    }

    fn one_segments(&self, name: &str) -> Vec<Segment> {
        let mut v = Vec::new();
        if let Some(top) = self.top() {
            v.push(Segment {
                field: format!("{name}/top"),
                dim: top.len() + 1,
                activation: Activation::Softmax,
            });
        }
        v.extend(bit_segments(name, WIDE_BITS));
        v
    }

    fn encode_one(&self, a: IpAddr, out: &mut [f32]) -> bool {
        let mut o = 0;
        let mut seen = true;
        if let Some(top) = self.top() {
            let k = top.len();
            out[..=k].fill(0.0);
            let i = top.binary_search(&a).unwrap_or(k);
            seen = i < k;
            out[i] = 1.0;
            o = k + 1;
        }
        encode_bits128(addr::to_u128(a), WIDE_BITS, &mut out[o..]);
        seen
    }

    fn decode_one(&self, version: u8, inp: &[f32]) -> IpAddr {
        let mut o = 0;
        if let Some(top) = self.top() {
            let k = top.len();
            if let Some(&a) = top.get(argmax(&inp[..=k]))
                && addr::version(a) == version
            {
                return a;
            }
            o = k + 1;
        }
        addr::from_u128(version, decode_bits128(&inp[o..], WIDE_BITS))
    }

    /// What [`WideCodec::decode_one`] gives, and the likeliest other address of the family
    /// ([`top_bits_runner_up`]; an IPv4 address flips only its own 32 bits).
    fn decode_one_runner_up(&self, version: u8, inp: &[f32]) -> RunnerUp<IpAddr> {
        let (top, o) = match self.top() {
            Some(top) => (top, top.len() + 1),
            None => (&[][..], 0),
        };
        let raw = decode_bits128(&inp[o..], WIDE_BITS);
        let n = WIDE_BITS as usize;
        let from = if version == 4 { n - 32 } else { 0 };
        let bits = addr::from_u128(version, raw);
        let flipped = cheapest_flip(&inp[o..], from, n)
            .map(|(b, c)| (addr::from_u128(version, raw ^ (1u128 << (n - 1 - b))), c));
        if o == 0 {
            return (bits, flipped);
        }
        top_bits_runner_up(
            &inp[..o],
            |j| top.get(j).copied().filter(|&a| addr::version(a) == version),
            bits,
            flipped,
        )
    }
}

impl AddrCodec {
    /// Dims of both addresses together (and the family head when wide).
    pub fn dim(&self) -> usize {
        match self {
            AddrCodec::Narrow(c) => 2 * c.dim(),
            AddrCodec::Wide(w) => 2 + 2 * w.one_dim(),
        }
    }

    /// The output heads: `srcip` then `dstip` (narrow), or `ip_version`, `srcip`, `dstip`.
    pub fn segments(&self) -> Vec<Segment> {
        match self {
            AddrCodec::Narrow(c) => {
                let mut v = c.segments("srcip");
                v.extend(c.segments("dstip"));
                v
            }
            AddrCodec::Wide(w) => {
                let mut v = vec![Segment {
                    field: IP_VERSION.into(),
                    dim: 2,
                    activation: Activation::Softmax,
                }];
                v.extend(w.one_segments("srcip"));
                v.extend(w.one_segments("dstip"));
                v
            }
        }
    }

    /// Writes both addresses into `out[..self.dim()]`; the flags say, per address, whether it
    /// was represented as seen (an IPv6 address under the narrow codec is not: it is written
    /// as 0.0.0.0; a top_bits address outside the top is not either, as for ports).
    pub fn encode(&self, src: IpAddr, dst: IpAddr, out: &mut [f32]) -> [bool; 2] {
        match self {
            AddrCodec::Narrow(c) => {
                let d = c.dim();
                let mut seen = [true; 2];
                for (k, a) in [src, dst].into_iter().enumerate() {
                    let (v, fits) = match addr::v4_bits(a) {
                        Some(v) => (v, true),
                        None => (0, false),
                    };
                    seen[k] = c.encode(v, &mut out[k * d..(k + 1) * d]) && fits;
                }
                seen
            }
            AddrCodec::Wide(w) => {
                let six = src.is_ipv6();
                out[0] = if six { 0.0 } else { 1.0 };
                out[1] = if six { 1.0 } else { 0.0 };
                let d = w.one_dim();
                [
                    w.encode_one(src, &mut out[2..2 + d]),
                    w.encode_one(dst, &mut out[2 + d..2 + 2 * d]),
                ]
            }
        }
    }

    /// A decoder ready for many rows.
    pub fn decoder(&self) -> AddrDecoder<'_> {
        match self {
            AddrCodec::Narrow(c) => AddrDecoder::Narrow(c.decoder()),
            AddrCodec::Wide(w) => AddrDecoder::Wide(w),
        }
    }

    /// The top values must be strictly ascending.
    pub fn validate(&self) -> Result<(), String> {
        let sorted = match self {
            AddrCodec::Narrow(DiscreteCodec::TopBits { top, .. }) => {
                top.windows(2).all(|w| w[0] < w[1])
            }
            AddrCodec::Wide(WideCodec::FamilyTopBits { top }) => {
                top.windows(2).all(|w| w[0] < w[1])
            }
            _ => true,
        };
        if sorted {
            Ok(())
        } else {
            Err("ips: top values must be strictly ascending".into())
        }
    }
}

/// Decodes generated activations of an [`AddrCodec`].
pub enum AddrDecoder<'a> {
    /// 32 bits per address.
    Narrow(DiscreteDecoder<'a>),
    /// Family plus 128 bits per address.
    Wide(&'a WideCodec),
}

impl AddrDecoder<'_> {
    /// The two addresses of a row's address heads, kept apart: when both decode to the same
    /// address, the one whose runner-up costs less (the destination on ties) takes its
    /// runner-up ([`DiscreteDecoder::decode_runner_up`]). A host does not send itself packets
    /// over the wire, so a trace whose flows never do gets no synthetic flow that does
    /// ([`Semantics::distinct_addresses`](crate::semantics::Semantics::distinct_addresses)).
    /// Calibrated top one-hots are hard, so their runner-ups all tie (the first slot wins);
    /// class calibration therefore keeps those apart itself, by the generator's probabilities,
    /// and this serves the rest: uncalibrated runs and addresses from the bits.
    pub fn decode_distinct(&self, inp: &[f32]) -> (IpAddr, IpAddr) {
        let (src, dst) = self.decode(inp);
        if src != dst {
            return (src, dst);
        }
        let (src_alt, dst_alt) = match self {
            AddrDecoder::Narrow(d) => {
                let h = inp.len() / 2;
                let v4 = |(_, alt): RunnerUp<u32>| alt.map(|(a, c)| (addr::v4(a), c));
                (
                    v4(d.decode_runner_up(&inp[..h])),
                    v4(d.decode_runner_up(&inp[h..])),
                )
            }
            AddrDecoder::Wide(w) => {
                let version = if inp[1] > inp[0] { 6 } else { 4 };
                let d = w.one_dim();
                (
                    w.decode_one_runner_up(version, &inp[2..2 + d]).1,
                    w.decode_one_runner_up(version, &inp[2 + d..2 + 2 * d]).1,
                )
            }
        };
        match (src_alt, dst_alt) {
            (Some((s, cs)), Some((_, cd))) if cs < cd => (s, dst),
            (_, Some((d, _))) => (src, d),
            (Some((s, _)), None) => (s, dst),
            (None, None) => (src, dst),
        }
    }

    /// The two addresses of a row's address heads (`inp` is `[..AddrCodec::dim()]`).
    pub fn decode(&self, inp: &[f32]) -> (IpAddr, IpAddr) {
        match self {
            AddrDecoder::Narrow(d) => {
                let h = inp.len() / 2;
                (addr::v4(d.decode(&inp[..h])), addr::v4(d.decode(&inp[h..])))
            }
            AddrDecoder::Wide(w) => {
                let version = if inp[1] > inp[0] { 6 } else { 4 };
                let d = w.one_dim();
                (
                    w.decode_one(version, &inp[2..2 + d]),
                    w.decode_one(version, &inp[2 + d..2 + 2 * d]),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> Vec<(IpAddr, IpAddr)> {
        let p = |s: &str| s.parse::<IpAddr>().expect("address text");
        vec![
            (p("10.0.0.1"), p("192.168.1.2")),
            (p("2001:db8::1"), p("fe80::211:22ff:fe33:4455")),
            (p("::"), p("ff02::1")),
            (p("255.255.255.255"), p("0.0.0.0")),
            (p("::ffff:1.2.3.4"), p("::1")),
        ]
    }

    #[test]
    fn wide_codecs_round_trip_both_families_and_keep_them_apart() {
        let top: Vec<IpAddr> = {
            let mut t = vec![addrs()[0].0, addrs()[1].1, addrs()[2].1];
            t.sort();
            t
        };
        for codec in [
            AddrCodec::Wide(WideCodec::FamilyBits),
            AddrCodec::Wide(WideCodec::FamilyTopBits { top }),
        ] {
            let d = codec.dim();
            assert_eq!(
                codec.segments().iter().map(|s| s.dim).sum::<usize>(),
                d,
                "{codec:?}"
            );
            let dec = codec.decoder();
            for (s, t) in addrs() {
                let mut out = vec![0.5; d];
                codec.encode(s, t, &mut out);
                assert_eq!(dec.decode(&out), (s, t), "{codec:?}");
            }
        }
    }

    #[test]
    fn a_top_address_of_the_other_family_falls_back_to_the_bits() {
        let v4: IpAddr = "10.0.0.1".parse().expect("v4");
        let codec = AddrCodec::Wide(WideCodec::FamilyTopBits { top: vec![v4] });
        let d = codec.dim();
        let six: IpAddr = "2001:db8::7".parse().expect("v6");
        let mut out = vec![0.0; d];
        codec.encode(six, six, &mut out);
        // The generator's one-hot says "10.0.0.1" while the family head says IPv6.
        let one = WideCodec::FamilyTopBits { top: vec![v4] }.one_dim();
        out[2] = 1.0;
        out[3] = 0.0;
        out[2 + one] = 1.0;
        out[3 + one] = 0.0;
        assert_eq!(codec.decoder().decode(&out), (six, six));
    }

    #[test]
    fn the_narrow_codec_writes_what_the_32_bit_codec_writes_and_flags_ipv6() {
        let c = DiscreteCodec::Bits { bits: 32 };
        let codec = AddrCodec::Narrow(c.clone());
        let (s, t) = addrs()[0];
        let mut out = vec![0.0; codec.dim()];
        assert_eq!(codec.encode(s, t, &mut out), [true, true]);
        let mut want = vec![0.0; 64];
        c.encode(0x0a00_0001, &mut want);
        assert_eq!(&out[..64], &want[..]);
        assert_eq!(codec.decoder().decode(&out), (s, t));
        let six = addrs()[1].0;
        assert_eq!(codec.encode(six, t, &mut out), [false, true]);
        assert_eq!(
            serde_json::to_string(&codec).expect("json"),
            serde_json::to_string(&c).expect("json"),
            "the narrow form serialises as the 32-bit codec it wraps"
        );
    }

    #[test]
    fn both_forms_read_back_from_json() {
        for codec in [
            AddrCodec::Narrow(DiscreteCodec::TopBits {
                top: vec![1, 5],
                bits: 32,
            }),
            AddrCodec::Wide(WideCodec::FamilyTopBits {
                top: vec!["10.0.0.1".parse().expect("v4"), "::1".parse().expect("v6")],
            }),
            AddrCodec::Wide(WideCodec::FamilyBits),
        ] {
            let text = serde_json::to_string(&codec).expect("json");
            let back: AddrCodec = serde_json::from_str(&text).expect("reads back");
            assert_eq!(back, codec, "{text}");
        }
    }

    /// Log-probability of every value a narrow codec's activations can decode to, relative to
    /// the likeliest, under decoding's own order: the one-hot slot first, then (for the
    /// "other" slot) each bit. Counted by brute force over all `2^bits` values.
    fn value_costs(codec: &DiscreteCodec, inp: &[f32]) -> Vec<(u32, f64)> {
        let ln = |p: f32| f64::from(p.max(f32::MIN_POSITIVE)).ln();
        let bits_lp = |inp: &[f32], bits: u32, v: u32| -> f64 {
            (0..bits as usize)
                .map(|b| {
                    let (p0, p1) = (inp[2 * b], inp[2 * b + 1]);
                    let set = (v >> (bits as usize - 1 - b)) & 1 == 1;
                    ln(if set { p1 } else { p0 }) - ln(p0.max(p1))
                })
                .sum()
        };
        let lp: Vec<(u32, f64)> = match codec {
            DiscreteCodec::OneHot { values } => {
                values.iter().zip(inp).map(|(&v, &p)| (v, ln(p))).collect()
            }
            DiscreteCodec::Bits { bits } => (0..1u32 << bits)
                .map(|v| (v, bits_lp(inp, *bits, v)))
                .collect(),
            DiscreteCodec::TopBits { top, bits } => {
                let k = top.len();
                (0..1u32 << bits)
                    .map(|v| {
                        let other = ln(inp[k]) + bits_lp(&inp[k + 1..], *bits, v);
                        let slot = top.iter().position(|&t| t == v).map(|j| ln(inp[j]));
                        (v, slot.map_or(other, |s| s.max(other)))
                    })
                    .collect()
            }
            DiscreteCodec::Embedding { .. } => unreachable!("not a softmax codec"),
        };
        let best = lp.iter().map(|x| x.1).fold(f64::NEG_INFINITY, f64::max);
        lp.into_iter().map(|(v, l)| (v, best - l)).collect()
    }

    /// Softmax-like groups from raw weights: each group of `dims` sums to 1.
    fn activations(raw: &[f32], dims: &[usize]) -> Vec<f32> {
        let mut out = Vec::new();
        let mut o = 0;
        for &d in dims {
            let g = &raw[o..o + d];
            let sum: f32 = g.iter().sum();
            out.extend(g.iter().map(|x| x / sum));
            o += d;
        }
        out
    }

    proptest::proptest! {
        /// Against brute force: the runner-up of each codec is the likeliest other value,
        /// at its cost, and kept-apart addresses are the likeliest pair that differs.
        #[test]
        fn kept_apart_addresses_are_the_likeliest_pair_that_differs(
            raw in proptest::collection::vec(0.001f32..1.0, 2 * (3 + 8)),
            which in 0usize..3,
            same in proptest::bool::ANY,
        ) {
            let codec = match which {
                0 => DiscreteCodec::TopBits { top: vec![3, 9], bits: 4 },
                1 => DiscreteCodec::Bits { bits: 4 },
                _ => DiscreteCodec::OneHot { values: vec![1, 5, 7, 9, 12, 14, 15, 20, 21, 30, 31] },
            };
            let dims: Vec<usize> = codec.segments("x").iter().map(|s| s.dim).collect();
            let n: usize = dims.iter().sum();
            let src = activations(&raw[..n], &dims);
            // Half the cases give the destination the source's winner, so the two collide.
            let mut dst = activations(&raw[raw.len() - n..], &dims);
            if same {
                dst.clone_from(&src);
                dst.iter_mut().zip(&raw[raw.len() - n..]).for_each(|(x, r)| *x = (*x + 0.01 * r).min(1.0));
            }
            let dec = codec.decoder();
            for inp in [&src, &dst] {
                let costs = value_costs(&codec, inp);
                let (best, alt) = dec.decode_runner_up(inp);
                proptest::prop_assert_eq!(best, dec.decode(inp));
                let (_, c0) = costs.iter().find(|x| x.0 == best).expect("best listed");
                proptest::prop_assert!(c0.abs() < 1e-5, "best costs {c0}");
                let (alt, cost) = alt.expect("every codec here has another value");
                let want = costs.iter().filter(|x| x.0 != best).map(|x| x.1).fold(f64::INFINITY, f64::min);
                let (_, got) = costs.iter().find(|x| x.0 == alt).expect("alt listed");
                proptest::prop_assert!((got - want).abs() < 1e-4, "alt {alt} costs {got}, the best other {want}");
                proptest::prop_assert!((f64::from(cost) - want).abs() < 1e-4, "reported {cost}, brute force {want}");
            }
            let mut inp = src.clone();
            inp.extend(&dst);
            let narrow = AddrCodec::Narrow(codec.clone());
            let addr = narrow.decoder();
            let (s, t) = addr.decode_distinct(&inp);
            proptest::prop_assert_ne!(s, t);
            let plain = addr.decode(&inp);
            if plain.0 != plain.1 {
                proptest::prop_assert_eq!((s, t), plain);
            } else {
                let (cs, ct) = (value_costs(&codec, &src), value_costs(&codec, &dst));
                let cost = |c: &[(u32, f64)], a: IpAddr| c.iter().find(|x| addr::v4(x.0) == a).expect("listed").1;
                let mut best = f64::INFINITY;
                for &(a, ca) in &cs {
                    for &(b, cb) in &ct {
                        if a != b {
                            best = best.min(ca + cb);
                        }
                    }
                }
                let got = cost(&cs, s) + cost(&ct, t);
                proptest::prop_assert!((got - best).abs() < 1e-4, "pair costs {got}, the best differing pair {best}");
            }
        }
    }

    proptest::proptest! {
        /// The wide codec's runner-up starts from what decoding gives, is another address of
        /// the flow's family, and kept-apart addresses differ, with one side as decoded.
        #[test]
        fn wide_kept_apart_addresses_differ_and_keep_the_family(
            raw in proptest::collection::vec(0.001f32..1.0, 2 + 2 * (4 + 256)),
            same in proptest::bool::ANY,
        ) {
            let top: Vec<IpAddr> = ["10.0.0.1", "192.168.1.34", "2001:db8::1"]
                .iter()
                .map(|a| a.parse().expect("address"))
                .collect();
            let w = WideCodec::FamilyTopBits { top };
            let codec = AddrCodec::Wide(w.clone());
            let mut dims = vec![2];
            dims.extend(w.one_segments("srcip").iter().map(|s| s.dim));
            dims.extend(w.one_segments("dstip").iter().map(|s| s.dim));
            let mut inp = activations(&raw, &dims);
            let d = w.one_dim();
            if same {
                let src = inp[2..2 + d].to_vec();
                inp[2 + d..].copy_from_slice(&src);
            }
            let version = if inp[1] > inp[0] { 6 } else { 4 };
            for half in [&inp[2..2 + d], &inp[2 + d..]] {
                let (best, alt) = w.decode_one_runner_up(version, half);
                proptest::prop_assert_eq!(best, w.decode_one(version, half));
                let (alt, _) = alt.expect("the bits always offer another address");
                proptest::prop_assert_ne!(alt, best);
                proptest::prop_assert_eq!(addr::version(alt), version);
            }
            let plain = codec.decoder().decode(&inp);
            let (s, t) = codec.decoder().decode_distinct(&inp);
            proptest::prop_assert_ne!(s, t);
            proptest::prop_assert!(s == plain.0 || t == plain.1);
            proptest::prop_assert_eq!(addr::version(s), addr::version(t));
        }
    }

    #[test]
    fn kept_apart_addresses_move_the_less_certain_side() {
        // top [10, 20] plus "other"; the bits (32) spell 99 with certainty.
        let codec = AddrCodec::Narrow(DiscreteCodec::TopBits {
            top: vec![10, 20],
            bits: 32,
        });
        let half = |q: [f32; 3]| {
            let mut v = q.to_vec();
            let mut bits = vec![0.0; 64];
            DiscreteCodec::Bits { bits: 32 }.encode(99, &mut bits);
            v.extend(bits);
            v
        };
        let row = |s: [f32; 3], d: [f32; 3]| {
            let mut v = half(s);
            v.extend(half(d));
            v
        };
        let dec = codec.decoder();
        let (a10, a20, a99) = (addr::v4(10), addr::v4(20), addr::v4(99));
        // Both 10. Source: 20 costs ln(0.7/0.2) = 1.25, the bits ln(0.7/0.1) = 1.95.
        // Destination: 20 costs ln(0.6/0.1) = 1.79, the bits (99) ln(0.6/0.3) = 0.69: it moves.
        let r = row([0.7, 0.2, 0.1], [0.6, 0.1, 0.3]);
        assert_eq!(dec.decode(&r), (a10, a10));
        assert_eq!(dec.decode_distinct(&r), (a10, a99));
        // Destination 20 at ln(0.6/0.35) = 0.54 is cheaper than its bits at ln(0.6/0.05).
        let r = row([0.7, 0.2, 0.1], [0.6, 0.35, 0.05]);
        assert_eq!(dec.decode_distinct(&r), (a10, a20));
        // Source 20 at ln(0.5/0.45) = 0.11 is cheaper than the destination's 0.54.
        let r = row([0.5, 0.45, 0.05], [0.6, 0.35, 0.05]);
        assert_eq!(dec.decode_distinct(&r), (a20, a10));
        // Equal costs: the destination moves.
        let r = row([0.6, 0.35, 0.05], [0.6, 0.35, 0.05]);
        assert_eq!(dec.decode_distinct(&r), (a10, a20));
        // Addresses that differ already are left as decoded.
        let r = row([0.6, 0.35, 0.05], [0.3, 0.6, 0.1]);
        assert_eq!(dec.decode_distinct(&r), (a10, a20));
    }

    #[test]
    fn a_kept_apart_ipv4_address_flips_one_of_its_own_32_bits() {
        // Wide codec without a top: 128 bits per address; both spell 10.0.0.1 (IPv4-mapped).
        let codec = AddrCodec::Wide(WideCodec::FamilyBits);
        let a: IpAddr = "10.0.0.1".parse().expect("v4");
        let mut row = vec![0.0; codec.dim()];
        codec.encode(a, a, &mut row);
        let sharpen = |row: &mut [f32]| {
            for x in row.iter_mut() {
                *x = if *x > 0.5 { 0.99 } else { 0.01 };
            }
        };
        sharpen(&mut row[2..]);
        // The least certain bits of the source are its top bit (not an IPv4 bit) and its
        // bit 120 (value 128 of the last octet); the destination is certain of everything.
        let bit = |row: &mut [f32], base: usize, b: usize, p1: f32| {
            row[base + 2 * b] = 1.0 - p1;
            row[base + 2 * b + 1] = p1;
        };
        bit(&mut row, 2, 0, 0.45);
        bit(&mut row, 2, 120, 0.4);
        let dec = codec.decoder();
        assert_eq!(dec.decode(&row), (a, a));
        let b: IpAddr = "10.0.0.129".parse().expect("v4");
        assert_eq!(dec.decode_distinct(&row), (b, a));
        // An IPv6 flow flips any of its 128 bits: the top bit, here.
        row[0] = 0.0;
        row[1] = 1.0;
        let (s, t) = dec.decode(&row);
        assert_eq!(s, t);
        let (s2, t2) = dec.decode_distinct(&row);
        assert_eq!(t2, t);
        assert_eq!(
            addr::to_u128(s2) ^ addr::to_u128(s),
            1u128 << 127,
            "{s} -> {s2}"
        );
    }
}
