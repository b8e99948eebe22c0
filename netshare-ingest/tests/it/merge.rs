//! Several files and out-of-order input become one time-ordered artifact with flat memory.

use fixtures::captures::{Frame, Ipv4Spec, PcapOpts, Wrap, ipv4, lt, pcap, sample_frames, wrap};
use netshare_core::records::read_packets;
use netshare_ingest::{IngestConfig, ingest_files, read_packets_from_bytes};

use crate::{is_sorted, read};

#[test]
fn hourly_files_given_in_any_order_merge_without_spilling() {
    let dir = tempfile::tempdir().expect("temp");
    let hour = 3_600_000_000i64;
    let mut paths = Vec::new();
    for h in [2i64, 0, 1] {
        let p = dir.path().join(format!("hour-{h}.pcap"));
        let frames = sample_frames(Wrap::Ethernet, 5, 1_600_000_000_000_000 + h * hour);
        std::fs::write(&p, pcap(&PcapOpts::new(lt::ETHERNET), &frames)).expect("write");
        paths.push(p);
    }
    let out = dir.path().join("records.parquet");
    let rep = ingest_files(&paths, &IngestConfig::default(), &out).expect("ingest");
    assert_eq!(
        rep.records_kept, 18,
        "five IPv4 and one IPv6 packet per file"
    );
    assert_eq!(rep.sorted_runs, 1);
    let names: Vec<&str> = rep
        .files
        .iter()
        .map(|f| f.name.rsplit('/').next().unwrap_or(""))
        .collect();
    assert_eq!(names, ["hour-0.pcap", "hour-1.pcap", "hour-2.pcap"]);
    let t = read_packets(&out).expect("read back");
    assert!(is_sorted(&t.time_us));
}

#[test]
fn input_out_of_order_across_row_groups_is_spilled_merged_and_stable() {
    // 600k frames whose times run backwards in blocks, with ties: more than two row groups,
    // so the sorter must form several runs and merge them.
    let n = 600_000usize;
    let t0 = 1_600_000_000_000_000i64;
    let mut bytes = fixtures::captures::pcap_header(&PcapOpts::new(lt::RAW));
    for i in 0..n {
        let spec = Ipv4Spec {
            id: i as u16,
            src: [10, 0, (i >> 16) as u8, 1],
            ..Ipv4Spec::default()
        };
        let time = t0 + ((n - i) / 3) as i64; // three frames per microsecond, descending
        fixtures::captures::pcap_record(
            &PcapOpts::new(lt::RAW),
            time,
            &wrap(Wrap::Raw, &ipv4(&spec)),
            &mut bytes,
        );
    }
    let dir = tempfile::tempdir().expect("temp");
    let input = dir.path().join("backwards.pcap");
    std::fs::write(&input, &bytes).expect("write");
    let out = dir.path().join("records.parquet");
    let rep =
        ingest_files(std::slice::from_ref(&input), &IngestConfig::default(), &out).expect("ingest");
    assert!(rep.sorted_runs >= 3, "runs {}", rep.sorted_runs);
    let t = read_packets(&out).expect("read back");
    assert_eq!(t.len(), n);
    assert!(is_sorted(&t.time_us));
    // Equal to the stable sort of the input by time.
    let (mem, _) = read_packets_from_bytes(&bytes).expect("reads");
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| mem.time_us[i]);
    assert!(
        mem.take(&order) == t,
        "merged rows differ from the stable sort"
    );
    // Deterministic bytes, and no spill folder left behind.
    let first = read(&out);
    ingest_files(&[input], &IngestConfig::default(), &out).expect("again");
    assert!(first == read(&out), "same input gave different bytes");
    let left = std::fs::read_dir(dir.path()).expect("ls").count();
    assert_eq!(left, 2);
}

#[test]
fn mixing_packets_and_flows_is_an_error() {
    let dir = tempfile::tempdir().expect("temp");
    let a = dir.path().join("a.pcap");
    std::fs::write(
        &a,
        pcap(
            &PcapOpts::new(lt::RAW),
            &[Frame {
                time_us: 0,
                data: ipv4(&Ipv4Spec::default()),
            }],
        ),
    )
    .expect("w");
    let b = dir.path().join("b.csv");
    std::fs::write(&b, "srcip,dstip,srcport,dstport,proto,ts,td,pkt,byt,type\n").expect("w");
    let err = ingest_files(
        &[a, b],
        &IngestConfig::default(),
        &dir.path().join("o.parquet"),
    )
    .expect_err("mixed");
    assert!(
        err.to_string()
            .contains("cannot merge packet and flow traces"),
        "{err}"
    );
}
