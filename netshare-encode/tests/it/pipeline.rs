//! Chunks, flow tags, long flows and padding through the whole encode pipeline, on hand-worked
//! cases.

use netshare_core::records::{PacketColumns, PacketRecord, Records};
use netshare_encode::config::{Chunking, LongFlows};
use netshare_encode::encoder::{FLOW_START, INTERARRIVAL};
use netshare_encode::pipeline::MaxLenSource;
use netshare_encode::{EncodeConfig, Error, FlowTags, TagHeads, encode};

use crate::common::{encode_with, ugr16_1k};

fn packet(srcip: u32, time_us: i64) -> PacketRecord {
    PacketRecord {
        srcip: netshare_core::addr::v4(srcip),
        dstip: netshare_core::addr::v4(99),
        srcport: 1234,
        dstport: 80,
        proto: 6,
        time_us,
        pkt_len: 100,
        ttl: 64,
        ..PacketRecord::default()
    }
}

fn packets(rows: &[(u32, i64)]) -> Records {
    let mut t = PacketColumns::default();
    rows.iter().for_each(|&(ip, time)| t.push(packet(ip, time)));
    Records::Packets(t)
}

/// The `i`-th attribute row of chunk `c`.
fn attr_row(e: &netshare_encode::Encoded, c: usize, i: usize) -> &[f32] {
    let a = e.tensors[c].attr_dim;
    &e.tensors[c].attributes[i * a..(i + 1) * a]
}

#[test]
fn a_flow_in_chunks_0_2_and_3_gets_exactly_those_tag_bits() {
    // Span [0, 100] in 4 slices: [0,25) [25,50) [50,75) [75,100]. Flow A (srcip 1) has records
    // in slices 0, 2 and 3; flow B (srcip 2) only in slice 1.
    let input = packets(&[(1, 0), (2, 30), (1, 55), (1, 80), (1, 100)]);
    let e = encode_with(
        &input,
        &EncodeConfig {
            n_chunks: Some(4),
            ..EncodeConfig::default()
        },
    );
    assert_eq!(e.report.n_chunks, 4);
    let layout = e.encoder.layout();
    let heads = TagHeads::find(&layout).expect("4 chunks have tags");
    assert_eq!(heads, e.encoder.tag_heads().expect("tags"));
    assert_eq!(
        layout.attributes.last().map(|s| s.field.as_str()),
        Some("tag/in_chunk/003")
    );
    let yes = |b: bool| if b { [0.0, 1.0] } else { [1.0, 0.0] };
    let a_bits = [true, false, true, true];
    for (chunk, starts) in [(0, true), (2, false), (3, false)] {
        let row = attr_row(&e, chunk, 0);
        assert_eq!(
            heads.read(row),
            FlowTags {
                starts_here: starts,
                in_chunk: a_bits.to_vec()
            },
            "flow A in chunk {chunk}"
        );
        // The raw dims, exactly: two-way one-hots, index 1 = yes.
        assert_eq!(row[heads.starts_here..heads.starts_here + 2], yes(starts));
        for (i, &b) in a_bits.iter().enumerate() {
            let o = heads.in_chunk[i];
            assert_eq!(row[o..o + 2], yes(b), "chunk {chunk} in_chunk_{i}");
        }
    }
    assert_eq!(
        heads.read(attr_row(&e, 1, 0)),
        FlowTags {
            starts_here: true,
            in_chunk: vec![false, true, false, false]
        }
    );
    // Chunk 3 holds A's two records as one flow of length 2, the second gap 20 µs.
    assert_eq!(e.chunks.chunks[3].n_flows, 1);
    assert_eq!(e.chunks.chunks[3].n_records, 2);
    assert_eq!(
        (e.chunks.chunks[3].t_min_us, e.chunks.chunks[3].t_max_us),
        (80, 100)
    );
    let t3 = &e.tensors[3];
    assert_eq!(t3.gen_flag, vec![1.0, 1.0]);
    let f = t3.feat_dim;
    assert_eq!(t3.features[0], 0.0, "the first record's gap is 0");
    let want = (20f64.ln_1p() / 20f64.ln_1p()) as f32;
    assert_eq!(t3.features[f], want, "gap 20 µs in a 20 µs chunk is 1");
    assert_eq!(layout.features[0].field, INTERARRIVAL);
}

#[test]
fn one_chunk_has_no_tag_heads_and_flow_start_is_normalised_by_the_chunk() {
    let input = packets(&[(1, 1000), (2, 1500), (1, 3000)]);
    let e = encode_with(&input, &EncodeConfig::default());
    let layout = e.encoder.layout();
    assert!(TagHeads::find(&layout).is_none());
    assert!(
        layout
            .attributes
            .iter()
            .all(|s| !s.field.starts_with("tag/"))
    );
    let offs = layout.attribute_offsets();
    let fs = offs
        .iter()
        .find(|(_, s)| s.field == FLOW_START)
        .expect("flow_start")
        .0;
    assert_eq!(attr_row(&e, 0, 0)[fs], 0.0);
    assert_eq!(attr_row(&e, 0, 1)[fs], 0.25);
}

#[test]
fn head_names_follow_the_architecture_document() {
    use netshare_encode::config::DiscreteEncoding;
    // The default top_bits heads: a one-hot over the frequent values, then the bits.
    let d = encode_with(
        &Records::Flows(ugr16_1k()),
        &EncodeConfig {
            n_chunks: Some(2),
            ..EncodeConfig::default()
        },
    )
    .encoder
    .layout();
    let names: Vec<&str> = d.attributes.iter().map(|s| s.field.as_str()).collect();
    assert_eq!(&names[..3], ["srcip/top", "srcip/bit00", "srcip/bit01"]);
    assert_eq!(names[33], "dstip/top");
    assert_eq!(&names[66..68], ["srcport/top", "srcport/bit00"]);
    // NetShare's encodings: address bits, embeddings for ports and protocol.
    let e = encode_with(
        &Records::Flows(ugr16_1k()),
        &EncodeConfig {
            n_chunks: Some(2),
            ips: DiscreteEncoding::Bits,
            ports: DiscreteEncoding::Embedding,
            proto: DiscreteEncoding::Embedding,
            ..EncodeConfig::default()
        },
    );
    let l = e.encoder.layout();
    let names: Vec<&str> = l.attributes.iter().map(|s| s.field.as_str()).collect();
    assert_eq!(names[0], "srcip/bit00");
    assert_eq!(names[31], "srcip/bit31");
    assert_eq!(names[32], "dstip/bit00");
    assert_eq!(
        &names[64..],
        &[
            "srcport",
            "dstport",
            "proto",
            "flow_start",
            "tag/starts_here",
            "tag/in_chunk/000",
            "tag/in_chunk/001"
        ]
    );
    let feats: Vec<&str> = l.features.iter().map(|s| s.field.as_str()).collect();
    assert_eq!(feats, ["interarrival", "td", "pkt", "byt", "label"]);
    assert_eq!(l.attribute_dim(), e.encoder.attribute_dim());
    assert_eq!(l.feature_dim(), e.encoder.feature_dim());
    assert_eq!(e.tensors[0].attr_dim, l.attribute_dim());
    assert_eq!(e.tensors[0].feat_dim, l.feature_dim());
    // 32 + 32 bits of two, two 10-dim ports, a 10-dim protocol, flow_start, 3 tags of two.
    assert_eq!(l.attribute_dim(), 128 + 30 + 1 + 6);
}

#[test]
fn long_flows_are_truncated_or_dropped_and_counted() {
    // Flow 1 has 5 records, flow 2 has 2.
    let rows = [(1, 0), (1, 1), (2, 2), (1, 3), (1, 4), (2, 5), (1, 6)];
    let input = packets(&rows);
    let e = encode_with(
        &input,
        &EncodeConfig {
            max_flow_len: Some(3),
            sample_len: 2,
            ..EncodeConfig::default()
        },
    );
    let r = &e.report;
    assert_eq!(
        (r.max_flow_len, r.max_flow_len_source),
        (3, MaxLenSource::Config)
    );
    assert_eq!((r.truncated_flows, r.truncated_records), (1, 2));
    assert_eq!(r.encoded_records, 5);
    assert_eq!(
        e.encoder.max_len, 4,
        "3 padded to a multiple of sample_len 2"
    );
    assert_eq!(
        e.tensors[0].gen_flag,
        vec![1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    );

    let e = encode_with(
        &input,
        &EncodeConfig {
            max_flow_len: Some(3),
            long_flows: Some(LongFlows::Drop),
            ..EncodeConfig::default()
        },
    );
    assert_eq!((e.report.dropped_flows, e.report.dropped_records), (1, 5));
    assert_eq!(e.report.encoded_records, 2);

    // Unset: the data's longest flow, unless above the cap.
    let e = encode_with(&input, &EncodeConfig::default());
    assert_eq!(
        (e.report.max_flow_len, e.report.max_flow_len_source),
        (5, MaxLenSource::Data)
    );
    let e = encode_with(
        &input,
        &EncodeConfig {
            max_flow_len_cap: 4,
            ..EncodeConfig::default()
        },
    );
    assert_eq!(
        (e.report.max_flow_len, e.report.max_flow_len_source),
        (4, MaxLenSource::Cap)
    );
    assert_eq!(
        (e.report.data_max_flow_len, e.report.truncated_flows),
        (5, 1)
    );
}

#[test]
fn chunk_record_counts_add_up_to_the_input_for_both_chunkings() {
    let input = Records::Flows(ugr16_1k());
    for chunking in [Chunking::FixedTime, Chunking::FixedSize] {
        for n in [1, 3, 10, 25] {
            let e = encode_with(
                &input,
                &EncodeConfig {
                    n_chunks: Some(n),
                    chunking,
                    ..EncodeConfig::default()
                },
            );
            let sum: usize = e.chunks.chunks.iter().map(|c| c.n_records).sum();
            assert_eq!(sum, 1000, "{chunking:?} n={n}");
            assert!(e.report.n_chunks <= n);
            let mut last = i64::MIN;
            for (i, c) in e.chunks.chunks.iter().enumerate() {
                assert_eq!(c.index, i);
                assert!(c.t_min_us >= last && c.t_min_us <= c.t_max_us, "{c:?}");
                last = c.t_max_us;
                assert_eq!(c.n_flows, e.tensors[i].n);
            }
            if chunking == Chunking::FixedSize {
                assert_eq!(e.report.n_chunks, n);
            }
        }
    }
}

#[test]
fn same_input_config_and_seed_give_identical_artifacts() {
    let input = Records::Flows(ugr16_1k());
    let cfg = EncodeConfig {
        n_chunks: Some(3),
        seed: 11,
        ports: netshare_encode::config::DiscreteEncoding::Embedding,
        ..EncodeConfig::default()
    };
    let write = |cfg: &EncodeConfig| {
        let dir = tempfile::tempdir().expect("tempdir");
        encode(&input, None, cfg)
            .expect("encode")
            .write(dir.path())
            .expect("write");
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| {
                let p = e.expect("entry").path();
                (
                    p.file_name().expect("name").to_string_lossy().into_owned(),
                    std::fs::read(&p).expect("read"),
                )
            })
            .collect();
        files.sort();
        files
    };
    let a = write(&cfg);
    let names: Vec<&str> = a.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "chunks.json",
            "encode-report.json",
            "encoder.json",
            "layout.json",
            "train-000.safetensors",
            "train-001.safetensors",
            "train-002.safetensors"
        ]
    );
    assert_eq!(a, write(&cfg));
    let b = write(&EncodeConfig { seed: 12, ..cfg });
    let enc = |f: &[(String, Vec<u8>)]| f.iter().find(|(n, _)| n == "encoder.json").cloned();
    assert_ne!(enc(&a), enc(&b), "another seed trains another embedding");
}

#[test]
fn bad_configs_are_refused_with_the_setting_named() {
    let input = packets(&[(1, 0)]);
    let err = |cfg: EncodeConfig| encode(&input, None, &cfg).expect_err("refused").to_string();
    assert!(
        err(EncodeConfig {
            sample_len: 0,
            ..EncodeConfig::default()
        })
        .contains("sample_len")
    );
    assert!(
        err(EncodeConfig {
            n_chunks: Some(0),
            ..EncodeConfig::default()
        })
        .contains("n_chunks")
    );
    let mut cfg = EncodeConfig::default();
    cfg.fields.insert(
        "td".into(),
        netshare_encode::config::FieldEncoding::Categorical { categories: None },
    );
    assert!(err(cfg).contains("fields.td"));
    let empty = Records::Packets(PacketColumns::default());
    assert!(matches!(
        encode(&empty, None, &EncodeConfig::default()),
        Err(Error::Empty(_))
    ));
}
