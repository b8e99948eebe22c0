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

use crate::fields::{DiscreteCodec, DiscreteDecoder, argmax, bit_segments};

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
}
