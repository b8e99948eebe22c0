//! The binary: standalone mode writes records and a report; errors exit non-zero with context.

use std::process::Command;

use fixtures::captures::{PcapOpts, Wrap, lt, pcap, sample_frames};

use crate::temp_file;

#[test]
fn standalone_mode_writes_records_and_report() {
    let bytes = pcap(
        &PcapOpts::new(lt::LINUX_SLL),
        &sample_frames(Wrap::Sll, 6, 1_600_000_000_000_000),
    );
    let (dir, p) = temp_file("in.pcap", &bytes);
    let out = dir.path().join("r.parquet");
    let rep = dir.path().join("r.json");
    let o = Command::new(env!("CARGO_BIN_EXE_netshare-ingest"))
        .arg(&p)
        .arg("-o")
        .arg(&out)
        .arg("--report")
        .arg(&rep)
        .output()
        .expect("runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("7 frames read from 1 file(s), 7 records kept"),
        "{stdout}"
    );
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&rep).expect("report")).expect("json");
    assert_eq!(r["records_kept"], 7);
    assert_eq!(
        netshare_core::records::read_packets(&out)
            .expect("records")
            .len(),
        7
    );
}

#[test]
fn errors_exit_non_zero_and_say_why() {
    let (dir, p) = temp_file(
        "x.csv",
        b"srcip,dstip,srcport,dstport,proto,ts,td,pkt,byt,type\n1,2,3,4,TCP,x,1,1,1,a\n",
    );
    let o = Command::new(env!("CARGO_BIN_EXE_netshare-ingest"))
        .arg(&p)
        .arg("-o")
        .arg(dir.path().join("r.parquet"))
        .output()
        .expect("runs");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("x.csv, line 2"), "{err}");
    let o = Command::new(env!("CARGO_BIN_EXE_netshare-ingest"))
        .args(["store", "--help"])
        .output()
        .expect("runs");
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("--config-json"));
}
