//! Store mode: the stage contract's inputs, outputs, report and manifest summary.

use std::collections::BTreeMap;

use fixtures::captures::{PcapOpts, Wrap, lt, pcap, sample_frames};
use netshare_core::Store;
use netshare_core::stage::run_stage;
use netshare_ingest::stage::body as store_body;
use netshare_ingest::{IngestConfig, IngestReport, STAGE};

#[test]
fn store_mode_merges_numbered_traces_and_writes_both_outputs() {
    let dir = tempfile::tempdir().expect("temp");
    let store = Store::open(dir.path().join("store")).expect("store");
    let mut inputs = BTreeMap::new();
    for (i, h) in [(0, 1i64), (1, 0)] {
        let bytes = pcap(
            &PcapOpts::new(lt::ETHERNET),
            &sample_frames(Wrap::Vlan, 4, 1_600_000_000_000_000 + h * 1_000_000),
        );
        inputs.insert(format!("trace.{i}"), store.put_bytes(&bytes).expect("put"));
    }
    let cfg = serde_json::json!({"on_error": "skip"});
    let out =
        run_stage::<IngestConfig, _>(&store, &STAGE, &cfg, &inputs, store_body).expect("runs");
    assert!(!out.cached);
    let m = &out.manifest;
    let names: Vec<&str> = m.outputs.keys().map(String::as_str).collect();
    assert_eq!(names, ["ingest-report.json", "records.parquet"]);
    assert_eq!(
        m.outputs["records.parquet"].schema.as_deref(),
        Some("netshare.packets.v2"),
        "the IPv6 packets are carried, so the file is in the second schema"
    );
    assert_eq!(m.summary["records_kept"], 10);
    assert_eq!(m.config["dialect"], "auto");
    let report: IngestReport = serde_json::from_slice(
        &std::fs::read(store.blob_path(&m.outputs["ingest-report.json"].digest)).expect("read"),
    )
    .expect("report parses");
    assert_eq!(report.records_read, 12);
    assert_eq!(report.records_ipv6, 2);
    assert_eq!(report.schema, "netshare.packets.v2");
    assert_eq!(
        report
            .files
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>(),
        ["trace.1", "trace.0"]
    );
    let t = netshare_core::records::read_packets(
        &store.blob_path(&m.outputs["records.parquet"].digest),
    )
    .expect("read");
    assert!(crate::is_sorted(&t.time_us));
    assert_eq!(t.len(), 10);
    assert_eq!(t.srcip.iter().filter(|a| a.is_ipv6()).count(), 2);
    // Same inputs and config: a cache hit.
    let again =
        run_stage::<IngestConfig, _>(&store, &STAGE, &cfg, &inputs, store_body).expect("runs");
    assert!(again.cached);
    // Unknown config keys are refused.
    let bad = serde_json::json!({"dialekt": "ton"});
    assert!(run_stage::<IngestConfig, _>(&store, &STAGE, &bad, &inputs, store_body).is_err());
}

#[test]
fn store_mode_refuses_unexpected_input_names() {
    let dir = tempfile::tempdir().expect("temp");
    let store = Store::open(dir.path().join("store")).expect("store");
    let mut inputs = BTreeMap::new();
    inputs.insert("pcap".to_string(), store.put_bytes(b"x").expect("put"));
    let err =
        run_stage::<IngestConfig, _>(&store, &STAGE, &serde_json::json!({}), &inputs, store_body)
            .expect_err("bad input name");
    assert!(
        err.to_string().contains("unexpected input \"pcap\""),
        "{err}"
    );
}
