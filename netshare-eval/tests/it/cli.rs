//! The binary: standalone report and check, store mode, and error messages.

use std::process::Command;

use crate::helpers::{data, reference_dir};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_netshare-eval"))
}

#[test]
fn report_then_check_exits_non_zero_naming_the_metric() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let st = bin()
        .args(["report", "--real"])
        .arg(data("netflow/ugr16-netshare-1k.csv"))
        .arg("--synthetic")
        .arg(data("reference/netshare-ref-ugr16-1k-syn.csv"))
        .arg("-o")
        .arg(&out)
        .output()
        .expect("run");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let bounds = dir.path().join("bounds.json");
    std::fs::write(&bounds, r#"{"max": {"synthetic.distributional.jsd_srcip": 0.01, "synthetic.distributional.jsd_proto": 0.5}}"#).expect("bounds");
    let st = bin()
        .args(["check", "--report"])
        .arg(out.join("report.json"))
        .arg("--expected")
        .arg(&bounds)
        .output()
        .expect("run");
    assert_eq!(st.status.code(), Some(1));
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(
        err.contains("synthetic.distributional.jsd_srcip") && !err.contains("jsd_proto"),
        "{err}"
    );
    std::fs::write(
        &bounds,
        r#"{"max": {"synthetic.distributional.jsd_srcip": 0.1}}"#,
    )
    .expect("bounds");
    let st = bin()
        .args(["check", "--report"])
        .arg(out.join("report.json"))
        .arg("--expected")
        .arg(&bounds)
        .output()
        .expect("run");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
}

#[test]
fn store_mode_writes_report_json_and_html_and_caches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = || {
        bin()
            .args(["store", "--store"])
            .arg(dir.path().join("store"))
            .arg(format!(
                "--input=real=@{}",
                data("netflow/ugr16-netshare-1k.csv").display()
            ))
            .arg(format!(
                "--input=synthetic=@{}",
                reference_dir().join("ugr16-1k-perturbed.csv").display()
            ))
            .args(["--config-json", r#"{"seed": 3, "max_rows": 500}"#])
            .output()
            .expect("run")
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&first.stdout).expect("manifest JSON");
    assert_eq!(m["cached"], false);
    let outputs = m["outputs"].as_object().expect("outputs");
    assert!(
        outputs.contains_key("report.json") && outputs.contains_key("report.html"),
        "{outputs:?}"
    );
    assert_eq!(m["config"]["convention"], "netshare");
    let second = run();
    let m2: serde_json::Value = serde_json::from_slice(&second.stdout).expect("manifest JSON");
    assert_eq!(m2["cached"], true);

    let bad = bin()
        .args(["store", "--store"])
        .arg(dir.path().join("store"))
        .arg(format!(
            "--input=real=@{}",
            data("netflow/ugr16-netshare-1k.csv").display()
        ))
        .args(["--config-json", r#"{"sede": 3}"#])
        .output()
        .expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("sede"));
}

#[test]
fn a_damaged_csv_is_reported_with_its_file_and_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("bad.csv");
    std::fs::write(&f, "srcip,dstip,srcport,dstport,proto,ts,td,pkt,byt,type\n1,2,3,4,TCP,5,6,7,8,x\n1,2,3,99999,TCP,5,6,7,8,x\n").expect("write");
    let st = bin()
        .args(["report", "--real"])
        .arg(&f)
        .arg("--synthetic")
        .arg(&f)
        .arg("-o")
        .arg(dir.path())
        .output()
        .expect("run");
    assert_eq!(st.status.code(), Some(2));
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(
        err.contains("bad.csv, line 3") && err.contains("dstport \"99999\""),
        "{err}"
    );
}
