//! Records → encode → decode gives the records back: exactly for IPs, seen ports, protocols and
//! categories; within the f32 tolerance stated in [`assert_round_trip`] for times and
//! continuous fields (and then exactly for integer fields whose tolerance is below 0.5).

use netshare_core::addr::v4;
use netshare_core::records::{FlowColumns, FlowRecord, PacketColumns, PacketRecord, Records};
use netshare_encode::config::{Chunking, DiscreteEncoding};
use netshare_encode::fields::{DiscreteCodec, FieldCodec};
use netshare_encode::{EncodeConfig, Encoded, Value};
use proptest::prelude::*;

use crate::common::{decode_all, encode_with, groups, ugr16_1k};

/// One f32 unit in the last place at 1.0, doubled for slack: every encoded value lies in
/// [-1, 1], so storing it as f32 moves it by at most 2^-25.
const EPS: f64 = 1.0 / (1u64 << 24) as f64;

/// Checks the round trip of `input` through `e`.
///
/// Tolerances, from the f32 error EPS of each stored value:
/// - time of the k-th record of a five-tuple (k from 0): 1 µs of rounding + S·EPS for
///   flow_start + (k+1)·(1+S)·ln(1+S)·EPS for the gaps, S = the largest chunk span (a gap g
///   decoded from log1p(g)/log1p(S) moves by (1+g)·ln(1+S)·EPS, and g ≤ S);
/// - a continuous field with bounds [lo, hi] (after log1p): (hi-lo)·EPS, times (1+x) under
///   log1p, plus f64 rounding; integer fields whose tolerance is below 0.5 must come back
///   exactly.
pub fn assert_round_trip(input: &Records, e: &Encoded) {
    let decoded = decode_all(e);
    let total: usize = decoded.iter().map(Records::len).sum();
    assert_eq!(total, e.report.encoded_records);
    let want = groups(std::slice::from_ref(input));
    let got = groups(&decoded);
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "five-tuples (IPs, ports, protocols) must come back exactly"
    );
    let s = e
        .chunks
        .chunks
        .iter()
        .map(|c| c.span_us() as f64)
        .fold(1.0, f64::max);
    for (key, w) in &want {
        let g = &got[key];
        assert_eq!(w.len(), g.len(), "record count of {key:?}");
        for (k, ((wt, wv), (gt, gv))) in w.iter().zip(g).enumerate() {
            let tol_t = 1.0 + s * EPS + (k as f64 + 1.0) * (1.0 + s) * s.ln_1p() * EPS;
            assert!(
                ((wt - gt) as f64).abs() <= tol_t,
                "{key:?} record {k}: time {gt} vs {wt} (tolerance {tol_t})"
            );
            for ((f, a), b) in e.encoder.fields.iter().zip(wv).zip(gv) {
                // A field encoded per another: the codec holds x / d, and the decoded ratio's
                // error is multiplied by d (then rounded to an integer).
                let per = f.per.as_ref().map(|p| {
                    let j = e
                        .encoder
                        .fields
                        .iter()
                        .position(|g| &g.name == p)
                        .expect("divisor");
                    match &wv[j] {
                        Value::Num(d) if *d > 0.0 => *d,
                        _ => 1.0,
                    }
                });
                match (&f.codec, a, b) {
                    (FieldCodec::Categorical(_), a, b) => {
                        assert_eq!(cat(a), cat(b), "{key:?} record {k} field {}", f.name)
                    }
                    (FieldCodec::Continuous(c), Value::Num(x), Value::Num(y)) if per.is_some() => {
                        let d = per.unwrap_or(1.0);
                        let r = x / d;
                        let scale = if c.log1p { 1.0 + r.abs() } else { 1.0 };
                        let widest = c.knots.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
                        let span = if c.knots.len() >= 2 {
                            (c.knots.len() - 1) as f64 * widest
                        } else {
                            c.hi - c.lo
                        };
                        let tol = d * (scale * span * EPS + 1e-12 * (1.0 + r.abs())) + 0.5;
                        assert!(
                            (x - y).abs() <= tol && y.fract() == 0.0,
                            "{key:?} record {k} field {} per {d}: {y} vs {x} (tolerance {tol})",
                            f.name
                        );
                    }
                    (FieldCodec::Continuous(c), Value::Num(x), Value::Num(y)) => {
                        let scale = if c.log1p { 1.0 + x.abs() } else { 1.0 };
                        // Plus f64 rounding of log1p/expm1 (relative 1e-12 is far above it).
                        // A quantile codec stretches each knot interval to 1/K of the code
                        // range, so an f32 code error is worth K times the widest interval.
                        let span = if c.knots.len() >= 2 {
                            let widest =
                                c.knots.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
                            (c.knots.len() - 1) as f64 * widest
                        } else {
                            c.hi - c.lo
                        };
                        let tol = scale * span * EPS + 1e-12 * (1.0 + x.abs());
                        if c.integer && tol < 0.5 {
                            assert_eq!(
                                x, y,
                                "{key:?} record {k} field {} (tolerance {tol})",
                                f.name
                            );
                        } else {
                            let tol = tol + if c.integer { 0.5 } else { 0.0 };
                            assert!(
                                (x - y).abs() <= tol,
                                "{key:?} record {k} field {}: {y} vs {x} (tolerance {tol})",
                                f.name
                            );
                        }
                    }
                    other => panic!("field {}: unexpected values {other:?}", f.name),
                }
            }
        }
    }
}

fn cat(v: &Value) -> String {
    match v {
        Value::Cat(s) => s.clone(),
        Value::Num(x) => x.to_string(),
    }
}

#[test]
fn real_ugr16_flows_round_trip_with_default_config() {
    let input = Records::Flows(ugr16_1k());
    let e = encode_with(&input, &EncodeConfig::default());
    assert_eq!(e.report.encoded_records, 1000);
    assert_eq!(e.report.n_chunks, 1, "1k records get one automatic chunk");
    assert_round_trip(&input, &e);
    // Class shares for synth: every class head of the layout, each counting every flow once.
    let c = &e.chunks.chunks[0];
    let heads: Vec<String> = [
        "srcip/top",
        "dstip/top",
        "srcport/top",
        "dstport/top",
        "proto/top",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(c.class_counts.len(), heads.len());
    assert_class_and_length_summaries(&e);
    // Flow lengths for synth: nested protocol first, then the addresses, then the ports.
    let fl = c.flow_lengths.as_ref().expect("flow lengths");
    assert_eq!(
        fl.heads,
        [
            "proto/top",
            "srcip/top",
            "dstip/top",
            "dstport/top",
            "srcport/top"
        ]
    );
}

/// The protocol and port pairs synth keeps a flow's frequent ports to are the 1k trace's own:
/// counted here from its five-tuples and the encoder's frequent-value lists, they are the
/// pair counts `chunks.json` carries.
#[test]
fn protocol_and_port_pairs_count_the_trace_s_flows() {
    let input = Records::Flows(ugr16_1k());
    let e = encode_with(&input, &EncodeConfig::default());
    let flows = groups(std::slice::from_ref(&input));
    let c = &e.chunks.chunks[0];
    assert_eq!(c.n_flows, flows.len(), "one chunk, one flow per five-tuple");
    let top = |codec: &DiscreteCodec| match codec {
        DiscreteCodec::TopBits { top, .. } => top.clone(),
        other => {
            panic!("the default encodes ports and protocols by top values and bits, not {other:?}")
        }
    };
    let (ports, protos) = (top(&e.encoder.ports), top(&e.encoder.proto));
    let class = |list: &[u32], v: u32| list.binary_search(&v).unwrap_or(list.len());
    let mut want = vec![vec![0u64; (protos.len() + 1) * (ports.len() + 1)]; 2];
    for k in flows.keys() {
        let p = class(&protos, u32::from(k.proto));
        for (side, port) in [k.srcport, k.dstport].into_iter().enumerate() {
            want[side][p * (ports.len() + 1) + class(&ports, u32::from(port))] += 1;
        }
    }
    let got: Vec<(&str, &str, &Vec<u64>)> = c
        .class_pairs
        .iter()
        .map(|p| (p.given.as_str(), p.head.as_str(), &p.counts))
        .collect();
    assert_eq!(
        got,
        vec![
            ("proto/top", "srcport/top", &want[0]),
            ("proto/top", "dstport/top", &want[1]),
        ]
    );
    // Some frequent port goes with one protocol only: the rule has something to keep.
    let w = ports.len() + 1;
    let one_protocol = (0..ports.len()).any(|k| {
        (0..protos.len())
            .filter(|&p| want[1][p * w + k] > 0)
            .count()
            == 1
    });
    assert!(one_protocol);
}

/// The 1k trace's flows never go from a host to itself, so its semantics keep a decoded
/// flow's addresses apart. With each row's destination head overwritten by its source head,
/// every record still gets two addresses: its own source, and (the two heads being equally
/// sure) a destination moved to the runner-up. Without the rule each gets its source twice.
#[test]
fn a_flow_whose_address_heads_agree_still_decodes_to_two_addresses() {
    let input = Records::Flows(ugr16_1k());
    let mut e = encode_with(&input, &EncodeConfig::default());
    let sem = e.encoder.semantics.clone().expect("semantics");
    assert!(sem.distinct_addresses);
    let keys = |e: &Encoded| -> Vec<netshare_encode::FiveTuple> {
        decode_all(e)
            .iter()
            .flat_map(|r| netshare_encode::Table::from_records(r).keys)
            .collect()
    };
    let before = keys(&e);
    assert_eq!(before.len(), 1000);
    let h = e.encoder.ips.dim() / 2;
    let a = e.encoder.attribute_dim();
    for t in &mut e.tensors {
        for row in t.attributes.chunks_mut(a) {
            // Blur the one-hots so that every runner-up has a finite cost.
            let src: Vec<f32> = row[..h].iter().map(|&x| 0.9 * x + 0.05).collect();
            row[..h].copy_from_slice(&src);
            row[h..2 * h].copy_from_slice(&src);
        }
    }
    let apart = keys(&e);
    assert_eq!(apart.len(), before.len());
    for (k, b) in apart.iter().zip(&before) {
        assert_eq!(k.srcip, b.srcip);
        assert_ne!(k.dstip, k.srcip);
    }
    e.encoder.semantics = Some(netshare_encode::semantics::Semantics {
        distinct_addresses: false,
        ..sem
    });
    for (k, b) in keys(&e).iter().zip(&before) {
        assert_eq!((k.srcip, k.dstip), (b.srcip, b.srcip));
    }
}

/// Where a chunk carries calibration summaries, each class head counts every training flow
/// once, and the flow lengths count every flow once and sum to the chunk's records, with
/// every kept stratum nested in a kept one and holding enough flows with its subtree (an
/// address family's stratum, first where the addresses are wide, at least one).
fn assert_class_and_length_summaries(e: &Encoded) {
    for c in &e.chunks.chunks {
        if c.code_probabilities.is_empty() {
            assert!(
                c.class_counts.is_empty() && c.class_pairs.is_empty() && c.flow_lengths.is_none()
            );
            continue;
        }
        for (h, counts) in &c.class_counts {
            assert_eq!(counts.iter().sum::<u64>(), c.n_flows as u64, "{h}");
        }
        // Each pair table's margins are its two heads' class counts.
        for p in &c.class_pairs {
            let (given, head) = (&c.class_counts[&p.given], &c.class_counts[&p.head]);
            assert_eq!(p.counts.len(), given.len() * head.len());
            for (g, &n) in given.iter().enumerate() {
                let row = &p.counts[g * head.len()..(g + 1) * head.len()];
                assert_eq!(row.iter().sum::<u64>(), n, "{} class {g}", p.given);
            }
            for (k, &n) in head.iter().enumerate() {
                let col: u64 = (0..given.len()).map(|g| p.counts[g * head.len() + k]).sum();
                assert_eq!(col, n, "{} class {k}", p.head);
            }
        }
        let fl = c
            .flow_lengths
            .as_ref()
            .expect("flow lengths with the quantiles");
        let flows: u64 = fl.strata.iter().flat_map(|s| &s.lengths).map(|l| l.1).sum();
        let records: u64 = fl
            .strata
            .iter()
            .flat_map(|s| &s.lengths)
            .map(|&(len, n)| len as u64 * n)
            .sum();
        assert_eq!((flows, records), (c.n_flows as u64, c.n_records as u64));
        for s in &fl.strata {
            assert!(s.classes.len() <= fl.heads.len());
            if let Some((_, parent)) = s.classes.split_last() {
                assert!(fl.strata.iter().any(|p| p.classes == parent), "{s:?}");
                let subtree: u64 = fl
                    .strata
                    .iter()
                    .filter(|t| t.classes.starts_with(&s.classes))
                    .flat_map(|t| &t.lengths)
                    .map(|l| l.1)
                    .sum();
                let family = fl.heads[0] == "ip_version" && s.classes.len() == 1;
                let min = if family {
                    1
                } else {
                    netshare_encode::lengths::MIN_LENGTH_FLOWS as u64
                };
                assert!(subtree >= min, "{s:?}");
            }
        }
    }
}

#[test]
fn real_ugr16_flows_round_trip_with_bytes_encoded_per_packet() {
    let input = Records::Flows(ugr16_1k());
    let cfg = EncodeConfig {
        byt_per_pkt: true,
        ..EncodeConfig::default()
    };
    let e = encode_with(&input, &cfg);
    let byt = e
        .encoder
        .fields
        .iter()
        .find(|f| f.name == "byt")
        .expect("byt");
    assert_eq!(byt.per.as_deref(), Some("pkt"));
    let FieldCodec::Continuous(c) = &byt.codec else {
        panic!("byt is continuous")
    };
    // The codec's range is that of bytes per packet in the 1k trace, not of bytes.
    let ratios: Vec<f64> = match &input {
        Records::Flows(t) => t
            .byt
            .iter()
            .zip(&t.pkt)
            .map(|(&b, &p)| b as f64 / p as f64)
            .collect(),
        Records::Packets(_) => unreachable!(),
    };
    let max = ratios.iter().copied().fold(0.0, f64::max);
    assert!(
        (c.hi - max.ln_1p()).abs() < 1e-9,
        "hi {} vs ln(1 + {max})",
        c.hi
    );
    assert!(!c.integer, "the ratio is not rounded; the product is");
    assert_round_trip(&input, &e);
}

#[test]
fn real_ugr16_flows_round_trip_in_ten_chunks_with_one_hot_bits_and_top_bits() {
    let input = Records::Flows(ugr16_1k());
    for (ports, proto) in [
        (DiscreteEncoding::OneHot, DiscreteEncoding::OneHot),
        (DiscreteEncoding::Bits, DiscreteEncoding::Bits),
        (DiscreteEncoding::Embedding, DiscreteEncoding::OneHot),
        (DiscreteEncoding::TopBits, DiscreteEncoding::TopBits),
    ] {
        let cfg = EncodeConfig {
            n_chunks: Some(10),
            ports,
            proto,
            ..EncodeConfig::default()
        };
        let e = encode_with(&input, &cfg);
        assert_eq!(e.report.n_chunks, 10);
        let sum: usize = e.chunks.chunks.iter().map(|c| c.n_records).sum();
        assert_eq!(sum, 1000, "chunk record counts add up to the input");
        assert_round_trip(&input, &e);
    }
}

fn flow_strategy() -> impl Strategy<Value = Vec<FlowRecord>> {
    // Few distinct keys so flows have several records and span several chunks.
    let rec = (
        0u32..4,
        prop::sample::select(vec![0u32, 1, 0xC0A8_0001, u32::MAX]),
        prop::sample::select(vec![0u16, 53, 80, 443, 65535]),
        prop::sample::select(vec![6u8, 17, 1]),
        0i64..5_000_000,
        0.0f64..1000.0,
        1u64..100_000,
        prop::sample::select(vec!["background", "dos", "scan"]),
    );
    prop::collection::vec(rec, 1..60).prop_map(|v| {
        v.into_iter()
            .map(|(a, dst, port, proto, t, td, pkt, label)| FlowRecord {
                srcip: v4(0x0A00_0000 + a),
                dstip: v4(dst),
                srcport: port,
                dstport: port.wrapping_add(a as u16),
                proto,
                ts_us: 1_458_298_072_364_000 + t,
                td: (td * 1000.0).round() / 1000.0,
                pkt,
                byt: pkt * 40 + pkt % 7,
                label: label.to_string(),
            })
            .collect()
    })
}

fn packet_strategy() -> impl Strategy<Value = Vec<PacketRecord>> {
    let rec = (
        0u32..3,
        0u16..3,
        prop::sample::select(vec![6u8, 17]),
        0i64..2_000_000,
        20u16..1500,
        any::<u8>(),
        any::<u16>(),
        0u8..3,
        0u16..8192,
        any::<u8>(),
    );
    prop::collection::vec(rec, 1..80).prop_map(|v| {
        v.into_iter()
            .map(
                |(a, p, proto, t, len, tos, id, flag, off, ttl)| PacketRecord {
                    srcip: v4(a),
                    dstip: v4(7),
                    srcport: 1000 + p,
                    dstport: 80,
                    proto,
                    time_us: t,
                    pkt_len: len,
                    tos,
                    id,
                    flag,
                    off,
                    ttl,
                },
            )
            .collect()
    })
}

fn config_strategy() -> impl Strategy<Value = EncodeConfig> {
    (
        1usize..5,
        prop::bool::ANY,
        1usize..4,
        prop::sample::select(vec![
            DiscreteEncoding::Embedding,
            DiscreteEncoding::OneHot,
            DiscreteEncoding::Bits,
            DiscreteEncoding::TopBits,
        ]),
        prop::bool::ANY,
        any::<u64>(),
        prop::bool::ANY,
    )
        .prop_map(
            |(n, fixed_size, sample_len, ports, log_gaps, seed, byt_per_pkt)| EncodeConfig {
                n_chunks: Some(n),
                chunking: if fixed_size {
                    Chunking::FixedSize
                } else {
                    Chunking::FixedTime
                },
                sample_len,
                ports,
                proto: ports,
                interarrival_log1p: log_gaps,
                seed,
                byt_per_pkt,
                ..EncodeConfig::default()
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn random_flow_records_round_trip(rows in flow_strategy(), cfg in config_strategy()) {
        let mut t = FlowColumns::default();
        rows.into_iter().for_each(|r| t.push(r));
        let input = Records::Flows(t);
        let e = encode_with(&input, &cfg);
        prop_assert_eq!(e.report.encoded_records, input.len());
        prop_assert_eq!(e.encoder.max_len % cfg.sample_len, 0);
        assert_round_trip(&input, &e);
    }

    /// Some flows moved to IPv6 (a global prefix plus the IPv4 bits, so the families share low
    /// bits): the encoder goes wide and every address comes back in its family.
    #[test]
    fn random_mixed_family_flow_records_round_trip(
        rows in flow_strategy(),
        six in prop::collection::vec(any::<bool>(), 60),
        cfg in config_strategy(),
    ) {
        let mut t = FlowColumns::default();
        for (i, mut r) in rows.into_iter().enumerate() {
            if six[i % six.len()] {
                let to6 = |a: std::net::IpAddr| {
                    let bits = netshare_core::addr::v4_bits(a).expect("IPv4 from the strategy");
                    netshare_core::addr::v6(0x2001_0db8 << 96 | u128::from(bits))
                };
                r.srcip = to6(r.srcip);
                r.dstip = to6(r.dstip);
            }
            t.push(r);
        }
        let input = Records::Flows(t);
        let e = encode_with(&input, &cfg);
        let any6 = matches!(&input, Records::Flows(f) if f.srcip.iter().any(|a| a.is_ipv6()));
        prop_assert_eq!(
            matches!(e.encoder.ips, netshare_encode::addr::AddrCodec::Wide(_)),
            any6
        );
        assert_round_trip(&input, &e);
    }

    #[test]
    fn random_packet_records_round_trip(rows in packet_strategy(), cfg in config_strategy()) {
        let mut t = PacketColumns::default();
        rows.into_iter().for_each(|r| t.push(r));
        let input = Records::Packets(t);
        let e = encode_with(&input, &cfg);
        let sum: usize = e.chunks.chunks.iter().map(|c| c.n_input_records).sum();
        prop_assert_eq!(sum, input.len());
        assert_round_trip(&input, &e);
        assert_class_and_length_summaries(&e);
    }
}
