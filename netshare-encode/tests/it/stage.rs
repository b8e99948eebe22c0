//! Store mode and the command line.

use std::collections::BTreeMap;
use std::process::Command;

use netshare_core::Store;
use netshare_core::records::{Records, write_records};
use netshare_core::stage::run_stage;
use netshare_encode::{ChunkInfo, EncodeConfig, FittedEncoder, STAGE, read_chunks, read_layout};

use crate::common::ugr16_1k;

fn records_file(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("records.parquet");
    write_records(
        &p,
        &Records::Flows(ugr16_1k()),
        &[("netshare.dialect", "netshare")],
    )
    .expect("write records");
    p
}

#[test]
fn store_mode_writes_the_named_outputs_and_a_second_run_is_cached() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("store")).expect("store");
    let digest = store.put_file(&records_file(dir.path())).expect("put");
    let inputs = BTreeMap::from([("records".to_string(), digest)]);
    let cfg = serde_json::json!({"n_chunks": 2, "seed": 3});
    let run = || {
        run_stage::<EncodeConfig, _>(&store, &STAGE, &cfg, &inputs, netshare_encode::stage::body)
            .expect("run")
    };
    let first = run();
    assert!(!first.cached);
    let names: Vec<&str> = first.manifest.outputs.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "chunks.json",
            "encode-report.json",
            "encoder.json",
            "layout.json",
            "train-000.safetensors",
            "train-001.safetensors"
        ]
    );
    assert_eq!(first.manifest.summary["encoded_records"], 1000);
    let second = run();
    assert!(second.cached);
    assert_eq!(first.manifest.key, second.manifest.key);
    // The stored files read back through the public API.
    let path = |n: &str| store.blob_path(&first.manifest.outputs[n].digest);
    let enc = FittedEncoder::read(&path("encoder.json")).expect("encoder");
    assert_eq!(
        read_layout(&path("layout.json")).expect("layout"),
        enc.layout()
    );
    let chunks: Vec<ChunkInfo> = read_chunks(&path("chunks.json")).expect("chunks").chunks;
    assert_eq!(chunks.len(), 2);
    let t =
        netshare_core::tensors::ChunkTensors::read(&path(&chunks[1].train_file)).expect("tensors");
    assert_eq!(
        (t.n, t.attr_dim, t.max_len),
        (chunks[1].n_flows, enc.attribute_dim(), enc.max_len)
    );
}

#[test]
fn unknown_config_keys_and_inputs_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("store")).expect("store");
    let digest = store.put_file(&records_file(dir.path())).expect("put");
    let bad = serde_json::json!({"n_chunkz": 2});
    let inputs = BTreeMap::from([("records".to_string(), digest)]);
    let err =
        run_stage::<EncodeConfig, _>(&store, &STAGE, &bad, &inputs, netshare_encode::stage::body)
            .expect_err("typo");
    assert!(err.to_string().contains("n_chunkz"), "{err}");
    let inputs = BTreeMap::from([("trace".to_string(), digest)]);
    let err = run_stage::<EncodeConfig, _>(
        &store,
        &STAGE,
        &serde_json::json!({}),
        &inputs,
        netshare_encode::stage::body,
    )
    .expect_err("wrong input name");
    assert!(err.to_string().contains("records"), "{err}");
}

#[test]
fn command_line_encodes_describes_and_runs_in_store_mode() {
    let exe = env!("CARGO_BIN_EXE_netshare-encode");
    let dir = tempfile::tempdir().expect("tempdir");
    let records = records_file(dir.path());
    let out = dir.path().join("out");
    let st = Command::new(exe)
        .arg(&records)
        .arg("-o")
        .arg(&out)
        .args(["--config-json", r#"{"n_chunks": 3}"#])
        .output()
        .expect("run");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    assert!(out.join("train-002.safetensors").is_file());

    for file in ["layout.json", "encoder.json"] {
        let d = Command::new(exe)
            .arg("describe")
            .arg(out.join(file))
            .output()
            .expect("describe");
        assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
        let text = String::from_utf8_lossy(&d.stdout);
        assert!(text.contains("softmax  srcip/top"), "{text}");
        assert!(text.contains("softmax  srcip/bit00"), "{text}");
        assert!(text.contains("softmax  srcport/top"), "{text}");
        assert!(text.contains("tag/in_chunk/002"), "{text}");
        assert!(text.contains("sigmoid  interarrival"), "{text}");
    }

    let st = Command::new(exe)
        .arg("store")
        .arg("--store")
        .arg(dir.path().join("store"))
        .arg("--input")
        .arg(format!("records=@{}", records.display()))
        .args(["--config-json", r#"{"n_chunks": 1}"#])
        .output()
        .expect("store run");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(&st.stdout).expect("manifest JSON");
    assert_eq!(manifest["cached"], false);
    assert!(
        manifest["outputs"]["train-000.safetensors"].is_object(),
        "{manifest}"
    );

    let bad = Command::new(exe).arg(&records).output().expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("-o OUTDIR"));
}
