//! Record files across the two schemas: files the first schema's writer made still read (and
//! rewrite to the same bytes); tables with IPv6 round-trip through the second schema, which
//! refuses what it cannot represent and names the file.

use std::path::Path;

use netshare_core::addr::{v4, v6};
use netshare_core::records::{
    AddrSchema, FlowColumns, FlowRecord, IpAddr, META_SCHEMA, PacketColumns, PacketRecord, Records,
    RecordsWriter, TraceKind, read_addr_schema, read_metadata, read_records, write_records,
};
use proptest::prelude::*;

fn data(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// `flows-v1.parquet` and `packets-v1.parquet` were written by the ingest binary of the commit
/// before IPv6 was carried (tests/data/README.md): the first 12 flows of the UGR16 1k excerpt and
/// the first 40 frames of skype.pcap (35 IPv4 packets).
#[test]
fn files_of_the_first_schema_read_and_rewrite_to_the_same_bytes() {
    // The columns ingest writes without a dictionary, per kind.
    for (name, rows, kind, plain) in [
        ("flows-v1.parquet", 12, TraceKind::Flows, ["ts_us", "td"]),
        (
            "packets-v1.parquet",
            35,
            TraceKind::Packets,
            ["time_us", "id"],
        ),
    ] {
        let path = data(name);
        let (k, kv) = read_metadata(&path).expect("metadata");
        assert_eq!(k, kind);
        assert_eq!(kv[META_SCHEMA], kind.schema_name_for(AddrSchema::V4Only));
        assert_eq!(read_addr_schema(&path).expect("schema"), AddrSchema::V4Only);
        let r = read_records(&path).expect("reads");
        assert_eq!(r.len(), rows, "{name}");
        assert_eq!(r.addr_schema(), AddrSchema::V4Only);
        let dir = tempfile::tempdir().expect("tempdir");
        let again = dir.path().join(name);
        let extra: Vec<(&str, &str)> = kv
            .iter()
            .filter(|(k, _)| k.as_str() != META_SCHEMA && k.as_str() != "netshare.kind")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut w =
            RecordsWriter::create_with_plain_columns(&again, kind, r.addr_schema(), &extra, &plain)
                .expect("writer");
        w.write(&r).expect("write");
        w.finish().expect("finish");
        assert_eq!(
            std::fs::read(&again).expect("new"),
            std::fs::read(&path).expect("old"),
            "{name}: an all-IPv4 table is written byte for byte as before"
        );
    }
    // First row of the UGR16 excerpt: 1730436467,719036359,0,0,ICMP,...
    let Records::Flows(f) = read_records(&data("flows-v1.parquet")).expect("reads") else {
        panic!("flows")
    };
    assert_eq!(
        (f.srcip[0], f.dstip[0]),
        (v4(1_730_436_467), v4(719_036_359))
    );
}

fn mixed_packets() -> PacketColumns {
    let mut t = PacketColumns::default();
    for (i, (s, d)) in [
        (v4(0x0a00_0001), v4(0xc0a8_0102)),
        (
            v6(0x2001_0db8_0000_0000_0000_0000_0000_0001),
            v6(0xfe80_0000_0000_0000_0211_22ff_fe33_4455),
        ),
        (v6(0), v6(1)),
        ("::ffff:1.2.3.4".parse().expect("v6"), v6(u128::MAX)),
    ]
    .into_iter()
    .enumerate()
    {
        t.push(PacketRecord {
            srcip: s,
            dstip: d,
            srcport: 1000 + i as u16,
            dstport: 443,
            proto: 6,
            time_us: i as i64,
            pkt_len: 60,
            ttl: 64,
            ..PacketRecord::default()
        });
    }
    t
}

#[test]
fn a_table_with_ipv6_round_trips_through_the_second_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("mixed.parquet");
    let t = mixed_packets();
    write_records(&p, &Records::Packets(t.clone()), &[]).expect("write");
    let (_, kv) = read_metadata(&p).expect("metadata");
    assert_eq!(kv[META_SCHEMA], "netshare.packets.v2");
    assert_eq!(read_addr_schema(&p).expect("schema"), AddrSchema::Mixed);
    let Records::Packets(back) = read_records(&p).expect("reads") else {
        panic!("packets")
    };
    assert_eq!(back, t, "an IPv4-mapped IPv6 address stays IPv6");
    // The columns a pandas user sees: 16-byte addresses (IPv4 IPv4-mapped) and ip_version.
    let batch = t.to_batch().expect("batch");
    let names: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(names.first().map(String::as_str), Some("srcip"));
    assert_eq!(names.last().map(String::as_str), Some("ip_version"));
}

#[test]
fn the_second_schema_refuses_two_families_in_one_row_and_the_first_refuses_ipv6() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut t = mixed_packets();
    t.dstip[1] = v4(7);
    let p = dir.path().join("two.parquet");
    let err = write_records(&p, &Records::Packets(t), &[]).expect_err("two families");
    assert!(err.to_string().contains("two IP versions"), "{err}");

    let p = dir.path().join("v1.parquet");
    let mut w =
        RecordsWriter::create(&p, TraceKind::Packets, AddrSchema::V4Only, &[]).expect("writer");
    let err = w.write_packets(&mixed_packets()).expect_err("IPv6 in v1");
    let msg = err.to_string();
    assert!(
        msg.contains("v1.parquet") && msg.contains("IPv4 only"),
        "{msg}"
    );
}

proptest! {
    #[test]
    fn any_flow_table_of_either_family_round_trips(
        rows in prop::collection::vec((any::<bool>(), any::<u128>(), any::<u128>(), any::<u16>()), 1..40),
    ) {
        let mut t = FlowColumns::default();
        for (six, s, d, port) in rows {
            let ip = |b: u128| -> IpAddr { if six { v6(b) } else { v4(b as u32) } };
            t.push(FlowRecord {
                srcip: ip(s),
                dstip: ip(d),
                srcport: port,
                label: "x".into(),
                ..FlowRecord::default()
            });
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f.parquet");
        write_records(&p, &Records::Flows(t.clone()), &[]).expect("write");
        let back = read_records(&p).expect("read");
        prop_assert_eq!(back.addr_schema(), AddrSchema::for_addresses(&t.srcip, &t.dstip));
        prop_assert_eq!(back, Records::Flows(t));
    }
}
