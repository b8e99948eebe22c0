//! The executors end to end on the tiny pipeline cut into 3 chunks: the split model stage gives
//! the bytes of one model run; two `reproduce` commands at once train each chunk once; on a
//! single-node Slurm (`.ci/slurm-up` starts one) the same pipeline gives the local bytes, a
//! failed chunk fails the command naming it and its job with nothing downstream run, and the
//! re-run submits only that chunk and what follows.
//!
//! They drive the dev stage binaries that `cargo test --workspace` builds.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits below the workspace root")
        .to_path_buf()
}

fn dev_bin(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    target.join("debug").join(name)
}

fn require_stage_binaries() {
    for b in [
        "netshare-ingest",
        "netshare-baseline",
        "netshare-encode",
        "netshare-model",
        "netshare-synth",
        "netshare-eval",
    ] {
        assert!(
            dev_bin(b).is_file(),
            "{} is not built: run `cargo test --workspace` (it builds every stage binary), \
             not this test alone",
            dev_bin(b).display()
        );
    }
}

/// `cargo xtask reproduce ugr16-tiny` with 3 chunks into `store` and `out`.
fn reproduce(store: &Path, out: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.current_dir(root())
        .args(["reproduce", "ugr16-tiny", "--profile", "dev", "--no-build"])
        .args(["--set", "encode.n_chunks=3", "--store"])
        .arg(store)
        .arg("--out")
        .arg(out)
        .args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("spawning xtask")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Lines of a run's stderr that say a run label ran (not cached).
fn ran(stderr: &str, label: &str) -> usize {
    stderr
        .lines()
        .filter(|l| {
            let mut w = l.split_whitespace();
            w.next() == Some(label) && w.next() == Some("ran")
        })
        .count()
}

fn same_file(a: &Path, b: &Path) {
    let read = |p: &Path| std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let (x, y) = (read(a), read(b));
    assert!(x == y, "{} and {} differ", a.display(), b.display());
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("netshare-exec-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("creating a temporary folder");
    d
}

/// Two local runs at once against one fresh store (the reference for the Slurm test too).
fn local_reference() -> (PathBuf, PathBuf) {
    let store = tmp("local-store");
    let (out_a, out_b) = (tmp("local-out-a"), tmp("local-out-b"));
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| reproduce(&store, &out_a, &[], &[]));
        let b = s.spawn(|| reproduce(&store, &out_b, &[], &[]));
        (a.join().expect("first run"), b.join().expect("second run"))
    });
    assert!(a.status.success(), "first run failed:\n{}", text(&a));
    assert!(b.status.success(), "second run failed:\n{}", text(&b));
    let both = format!("{}\n{}", text(&a), text(&b));
    for label in [
        "model.plan",
        "model.chunk-000",
        "model.chunk-001",
        "model.chunk-002",
        "model.gather",
    ] {
        assert_eq!(
            ran(&both, label),
            1,
            "{label} must run exactly once over the two commands:\n{both}"
        );
    }
    same_file(
        &out_a.join("synthetic.parquet"),
        &out_b.join("synthetic.parquet"),
    );
    (store, out_a)
}

#[test]
fn local_and_slurm_executors() {
    require_stage_binaries();
    let (store, out) = local_reference();
    the_split_stage_writes_the_bytes_of_one_model_run(&store);
    slurm_gives_the_local_bytes_and_reruns_only_what_failed(&out);
}

/// The gather's files equal those of the model stage run whole on the same inputs.
fn the_split_stage_writes_the_bytes_of_one_model_run(store: &Path) {
    let refs = store.join("refs").join("pipeline-ugr16-tiny");
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(refs.join(name)).expect("a pipeline ref"))
            .expect("a ref is JSON")
    };
    let (encode, model) = (read("encode.json"), read("model.json"));
    let mut cmd = Command::new(dev_bin("netshare-model"));
    cmd.args(["store", "--store"])
        .arg(store)
        .arg("--config-json")
        .arg(r#"{"profile":"tiny","seed":0}"#);
    for (name, digest) in encode["outputs"]
        .as_object()
        .expect("as written by the driver")
    {
        cmd.arg("--input").arg(format!(
            "{name}={}",
            digest.as_str().expect("as written by the driver")
        ));
    }
    let out = cmd.output().expect("spawning netshare-model");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let whole: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("as written by the driver");
    let outputs = model["outputs"]
        .as_object()
        .expect("as written by the driver");
    assert_eq!(
        outputs.len(),
        3 + 2,
        "model.json, train-log.csv, 3 weight files"
    );
    for (name, digest) in outputs {
        assert_eq!(
            whole["outputs"][name]["digest"].as_str(),
            digest.as_str(),
            "{name}: the split runs and one whole run differ"
        );
    }
}

fn slurm_up() -> bool {
    Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| matches!(l.trim(), "idle" | "mixed" | "allocated"))
        })
}

fn wait_until_queue_empty() {
    for _ in 0..240 {
        let o = Command::new("squeue")
            .args(["-h", "-o", "%i"])
            .output()
            .expect("running squeue");
        if String::from_utf8_lossy(&o.stdout).trim().is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    panic!("Slurm jobs still queued after 2 minutes");
}

fn slurm_gives_the_local_bytes_and_reruns_only_what_failed(local_out: &Path) {
    if !slurm_up() {
        netshare_store::skip::note_skip(
            "xtask executors: slurm",
            "no Slurm node answers `sinfo` (start one with .ci/slurm-up); the Slurm executor \
             was not tested",
        );
        return;
    }
    let store = tmp("slurm-store");
    let out = tmp("slurm-out");
    // Chunk 1 fails: the command fails, naming the chunk and its job; nothing downstream runs.
    let failed = reproduce(
        &store,
        &out,
        &["--executor", "slurm"],
        &[("NETSHARE_FAIL_CHUNK", "1")],
    );
    let err = text(&failed);
    assert!(
        !failed.status.success(),
        "a failed chunk must fail the run:\n{err}"
    );
    assert!(err.contains("model chunk 1 did not complete"), "{err}");
    assert!(err.contains("job "), "{err}");
    assert!(
        err.contains("failed on purpose"),
        "the log's tail is shown:\n{err}"
    );
    wait_until_queue_empty();
    let status = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(root())
        .args(["status", "ugr16-tiny", "--profile", "dev", "--no-build"])
        .args(["--set", "encode.n_chunks=3", "--store"])
        .arg(&store)
        .output()
        .expect("running xtask status");
    let st = String::from_utf8_lossy(&status.stdout);
    for id in ["model", "synth", "eval"] {
        let line = st
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .unwrap_or_else(|| panic!("status lists no {id}:\n{st}"));
        assert!(!line.contains("cached"), "{id} must not have run:\n{st}");
    }

    // The re-run submits chunk 1, the gather and what reads the model; nothing before.
    let again = reproduce(&store, &out, &["--executor", "slurm", "--check"], &[]);
    let log = text(&again);
    assert!(again.status.success(), "re-run failed:\n{log}");
    let rec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(store.join("slurm/ugr16-tiny/latest.json"))
            .expect("as written by the driver"),
    )
    .expect("as written by the driver");
    let jobs: Vec<(String, Vec<u64>)> = rec["jobs"]
        .as_array()
        .expect("as written by the driver")
        .iter()
        .map(|j| {
            (
                j["label"]
                    .as_str()
                    .expect("as written by the driver")
                    .to_string(),
                j["tasks"]
                    .as_array()
                    .map(|t| {
                        t.iter()
                            .map(|x| x.as_u64().expect("as written by the driver"))
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        jobs,
        vec![
            ("model.chunks".to_string(), vec![1]),
            ("model".to_string(), vec![]),
            ("synth".to_string(), vec![]),
            ("eval".to_string(), vec![]),
        ],
        "{log}"
    );
    for f in ["synthetic.parquet", "report.json"] {
        same_file(&local_out.join(f), &out.join(f));
    }
}
