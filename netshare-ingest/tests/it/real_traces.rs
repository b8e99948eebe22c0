//! The real captures: our counts equal tshark's (committed table, see tests/data).

use std::collections::HashSet;

use netshare_core::records::read_packets;
use netshare_ingest::{IngestConfig, ingest_files, read_packets_from_bytes};

use crate::{is_sorted, read, real};

#[derive(serde::Deserialize)]
struct Reference {
    captures: std::collections::BTreeMap<String, Counts>,
}

#[derive(serde::Deserialize)]
struct Counts {
    frames: u64,
    ipv4: u64,
    ipv6: u64,
    five_tuples: u64,
    sum_ip_len: u64,
    sum_ttl: u64,
    ipv6_five_tuples: u64,
    sum_ipv6_len: u64,
    sum_hop_limit: u64,
}

fn reference() -> Reference {
    let text = include_str!("../data/count_reference.json");
    serde_json::from_str(text).expect("count_reference.json parses")
}

#[test]
fn real_captures_match_the_tshark_count_table() {
    let r = reference();
    assert_eq!(r.captures.len(), 6);
    for (rel, want) in &r.captures {
        let Some(path) = real(rel) else { continue };
        let (t, rep) = read_packets_from_bytes(&read(&path)).expect("reads");
        assert_eq!(rep.records_read, want.frames, "{rel} frames");
        assert_eq!(
            rep.records_kept,
            want.ipv4 + want.ipv6,
            "{rel} IPv4 and IPv6 records"
        );
        assert_eq!(t.len() as u64, want.ipv4 + want.ipv6, "{rel} rows");
        assert_eq!(rep.records_ipv6, want.ipv6, "{rel} IPv6 records");
        assert_eq!(
            rep.distinct_five_tuples,
            want.five_tuples + want.ipv6_five_tuples,
            "{rel} five-tuples"
        );
        for six in [false, true] {
            let rows: Vec<usize> = (0..t.len())
                .filter(|&i| t.srcip[i].is_ipv6() == six)
                .collect();
            let tuples: HashSet<_> = rows
                .iter()
                .map(|&i| {
                    (
                        t.srcip[i],
                        t.dstip[i],
                        t.srcport[i],
                        t.dstport[i],
                        t.proto[i],
                    )
                })
                .collect();
            let sum_len: u64 = rows.iter().map(|&i| u64::from(t.pkt_len[i])).sum();
            let sum_ttl: u64 = rows.iter().map(|&i| u64::from(t.ttl[i])).sum();
            let want = if six {
                (want.ipv6_five_tuples, want.sum_ipv6_len, want.sum_hop_limit)
            } else {
                (want.five_tuples, want.sum_ip_len, want.sum_ttl)
            };
            assert_eq!(
                (tuples.len() as u64, sum_len, sum_ttl),
                want,
                "{rel} ipv6={six}: five-tuples, sum of IP length, sum of TTL / hop limit"
            );
        }
        assert!(rep.files[0].damage.is_none(), "{rel} is whole");
    }
}

#[test]
fn a_real_capture_ingests_to_time_ordered_parquet_with_its_report() {
    let Some(path) = real("pcap/skype.pcap") else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("records.parquet");
    let rep =
        ingest_files(std::slice::from_ref(&path), &IngestConfig::default(), &out).expect("ingest");
    let t = read_packets(&out).expect("read back");
    assert_eq!(t.len() as u64, rep.records_kept);
    assert_eq!(rep.records_kept, 3065 + 4, "IPv4 and IPv6 packets");
    assert!(is_sorted(&t.time_us));
    let span = rep.time_span.expect("span");
    assert_eq!(span.first_us, t.time_us[0]);
    assert_eq!(span.last_us, *t.time_us.last().expect("rows"));
    assert_eq!(rep.files[0].link_types.get("ethernet (1)"), Some(&3284));
    // The rows equal the in-memory reader's, stably sorted by time.
    let (mem, _) = read_packets_from_bytes(&read(&path)).expect("reads");
    let mut order: Vec<usize> = (0..mem.len()).collect();
    order.sort_by_key(|&i| mem.time_us[i]);
    assert_eq!(mem.take(&order), t);
    // Only the records file was written: no spill folders left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
    assert_eq!(left.len(), 1);
}

#[test]
fn the_pcapng_capture_has_ports_exactly_on_tcp_and_udp() {
    // The CIC-IDS2017 pcapng: every frame is Ethernet IPv4; ports only on TCP/UDP.
    let Some(path) = real("pcap/cicids2017-demo.pcapng") else {
        return;
    };
    let (t, rep) = read_packets_from_bytes(&read(&path)).expect("reads");
    assert_eq!(rep.files[0].format, "pcapng");
    assert!(t.flag.iter().all(|&f| f <= 2));
    for i in 0..t.len() {
        if t.proto[i] == 6 || t.proto[i] == 17 {
            assert!(t.srcport[i] != 0 && t.dstport[i] != 0, "row {i}");
        } else {
            assert_eq!((t.srcport[i], t.dstport[i]), (0, 0), "row {i}");
        }
    }
}
