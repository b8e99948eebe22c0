//! Determinism and resume: same inputs, config and seed give the same bytes; a run stopped
//! after a checkpoint resumes to the same final weights as an uninterrupted run.

use netshare_model::testing::two_flow_types;
use netshare_model::{LstmForm, TrainOptions};

use crate::{dir_bytes, tiny};

fn run(
    cfg: &netshare_model::ModelConfig,
    opts: &TrainOptions,
) -> std::collections::BTreeMap<String, Vec<u8>> {
    let enc = two_flow_types(120, 3, 9);
    let t = netshare_model::train(cfg, &enc, opts)
        .expect("train")
        .expect("not stopped");
    let dir = tempfile::tempdir().expect("tempdir");
    t.write(dir.path()).expect("write");
    dir_bytes(dir.path())
}

#[test]
fn two_trainings_with_one_seed_write_identical_bytes_and_another_seed_differs() {
    let a = run(&tiny(30, 5), &TrainOptions::default());
    let b = run(&tiny(30, 5), &TrainOptions::default());
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        [
            "model.json",
            "train-log.csv",
            "weights-000.safetensors",
            "weights-001.safetensors",
            "weights-002.safetensors"
        ]
    );
    assert!(a == b, "same seed, different bytes");
    let c = run(&tiny(30, 6), &TrainOptions::default());
    assert_ne!(a["weights-000.safetensors"], c["weights-000.safetensors"]);
}

#[test]
fn stopping_the_lstm_once_every_flow_has_ended_trains_the_same_bytes() {
    let full = TrainOptions {
        lstm: LstmForm::FusedFull,
        ..TrainOptions::default()
    };
    let a = run(&tiny(300, 5), &TrainOptions::default());
    let b = run(&tiny(300, 5), &full);
    assert_eq!(a.len(), 5);
    assert!(a == b, "stopping early changed the bytes");
}

#[test]
fn one_and_two_threads_write_identical_bytes() {
    let with_threads = |n: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .expect("thread pool")
            .install(|| run(&tiny(20, 5), &TrainOptions::default()))
    };
    let (one, two) = (with_threads(1), with_threads(2));
    assert_eq!(one.len(), 5);
    assert!(one == two, "the thread count changed the bytes");
}

#[test]
fn chunks_after_the_first_fine_tune_a_quarter_of_the_budget() {
    let enc = two_flow_types(60, 2, 9);
    let t = netshare_model::train(&tiny(40, 1), &enc, &TrainOptions::default())
        .expect("train")
        .expect("not stopped");
    let its: Vec<u64> = t.model.chunks.iter().map(|c| c.iterations).collect();
    assert_eq!(its, vec![40, 10]);
    assert_eq!(t.model.chunks[1].initialised_from, "chunk-000");
    assert_ne!(
        t.weights[0], t.weights[1],
        "chunk 1 trained on after copying chunk 0"
    );
}

#[test]
fn a_run_stopped_after_a_checkpoint_resumes_to_the_same_bytes() {
    let mut cfg = tiny(30, 5);
    cfg.checkpoint_every = 10;
    let whole = run(&cfg, &TrainOptions::default());
    let ckpt = tempfile::tempdir().expect("tempdir");
    let stopped = TrainOptions {
        checkpoint_dir: Some(ckpt.path().to_path_buf()),
        stop_after: Some(25),
        ..TrainOptions::default()
    };
    let enc = two_flow_types(120, 3, 9);
    assert!(
        netshare_model::train(&cfg, &enc, &stopped)
            .expect("train")
            .is_none()
    );
    assert!(ckpt.path().join("ckpt-000.safetensors").exists());
    let resumed = TrainOptions {
        checkpoint_dir: Some(ckpt.path().to_path_buf()),
        ..TrainOptions::default()
    };
    let again = run(&cfg, &resumed);
    let differ: Vec<&String> = whole
        .keys()
        .filter(|k| again.get(*k) != whole.get(*k))
        .collect();
    assert!(
        differ.is_empty(),
        "resumed run differs from the uninterrupted one in {differ:?}"
    );
    // Every chunk finished, so a third run reads the final weights instead of training.
    assert!(ckpt.path().join("final-002.safetensors").exists());
    assert!(run(&cfg, &resumed) == whole);
}

/// Runs the binary in store mode; returns its child process.
fn store_run(
    store: &std::path::Path,
    enc: &std::path::Path,
    config: &str,
) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_netshare-model"));
    c.arg("store")
        .arg("--store")
        .arg(store)
        .args(["--config-json", config]);
    for name in [
        "layout.json",
        "train-000.safetensors",
        "train-001.safetensors",
    ] {
        c.arg("--input")
            .arg(format!("{name}=@{}", enc.join(name).display()));
    }
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    c
}

fn find(dir: &std::path::Path, name: &str) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let p = e.path();
            p.file_name().is_some_and(|n| n == name) || (p.is_dir() && find(&p, name))
        })
}

fn outputs(stdout: &[u8]) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(stdout).expect("manifest JSON on stdout");
    v["outputs"].clone()
}

#[test]
fn store_mode_killed_with_sigkill_resumes_to_the_same_outputs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let enc = tmp.path().join("enc");
    netshare_model::testing::write_encoded(&two_flow_types(100, 2, 3), &enc).expect("encoded");
    let config = r#"{"profile":"tiny","iterations":300,"checkpoint_every":10,"seed":2}"#;
    let whole = store_run(&tmp.path().join("a"), &enc, config)
        .output()
        .expect("run a");
    assert!(whole.status.success());

    let store_b = tmp.path().join("b");
    let mut child = store_run(&store_b, &enc, config).spawn().expect("spawn b");
    let t0 = std::time::Instant::now();
    while !find(&store_b, "ckpt-000.safetensors") {
        assert!(t0.elapsed().as_secs() < 120, "no checkpoint appeared");
        assert!(
            child.try_wait().expect("poll").is_none(),
            "finished before a checkpoint"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    assert!(
        find(&store_b, "ckpt-000.safetensors"),
        "the checkpoint survives the kill"
    );
    let mut again = store_run(&store_b, &enc, config);
    let resumed = again
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run b again");
    assert!(resumed.status.success());
    // The same bytes would also come from a run that silently started over: the run must say
    // it resumed, from a checkpoint past iteration 0.
    let said = String::from_utf8_lossy(&resumed.stderr);
    let at: u64 = said
        .lines()
        .find_map(|l| l.strip_prefix("chunk 0: resuming from "))
        .and_then(|l| l.split(" at iteration ").nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the second run did not resume: {said}"));
    assert!(at > 0 && at < 300, "resumed at iteration {at}");
    assert_eq!(
        outputs(&resumed.stdout),
        outputs(&whole.stdout),
        "same output digests"
    );
    assert!(
        !find(&store_b, "ckpt-000.safetensors"),
        "scratch removed after commit"
    );
}

#[test]
fn a_time_budget_stops_at_a_logged_iteration_and_its_recorded_config_gives_the_same_bytes() {
    let budgeted = netshare_model::ModelConfig {
        time_budget_seconds: Some(1e-9),
        ..tiny(200, 5)
    };
    let enc = two_flow_types(120, 3, 9);
    let t = netshare_model::train(&budgeted, &enc, &TrainOptions::default())
        .expect("train")
        .expect("not stopped");
    assert!(t.stopped_by_budget);
    // A 1 ns budget is spent by the first iteration; training stops at the first logged one.
    let n = budgeted.log_every;
    assert_eq!(t.model.config.iterations, n);
    assert_eq!(t.model.config.time_budget_seconds, None);
    let its: Vec<u64> = t.model.chunks.iter().map(|c| c.iterations).collect();
    assert_eq!(its, vec![n, n.div_ceil(4), n.div_ceil(4)]);
    // The last row of chunk 0 carries the score, as a run told n iterations writes it.
    let last = t.log.iter().rfind(|r| r.chunk == 0).expect("a chunk 0 row");
    assert_eq!(last.iteration, n);
    assert!(last.quality.is_some());
    let dir = tempfile::tempdir().expect("tempdir");
    t.write(dir.path()).expect("write");
    let reproduced = run(&tiny(n, 5), &TrainOptions::default());
    assert!(
        dir_bytes(dir.path()) == reproduced,
        "training with the recorded config gave other bytes"
    );
    // A budget that is never reached changes nothing either.
    let generous = netshare_model::ModelConfig {
        time_budget_seconds: Some(1e6),
        ..tiny(30, 5)
    };
    assert!(
        run(&generous, &TrainOptions::default()) == run(&tiny(30, 5), &TrainOptions::default())
    );
}

/// gemm's AVX2 and AVX-512 kernels accumulate each output in the same order, so the per-CPU
/// kernel choice does not change a model's bytes. Runs where the CPU has AVX-512F.
#[test]
fn the_avx2_and_avx512_matmul_kernels_train_to_the_same_bytes() {
    #[cfg(target_arch = "x86_64")]
    let has = std::arch::is_x86_feature_detected!("avx512f");
    #[cfg(not(target_arch = "x86_64"))]
    let has = false;
    if !has {
        netshare_core::skip::note_skip(
            "the_avx2_and_avx512_matmul_kernels_train_to_the_same_bytes",
            "this CPU has no AVX-512F, so there is only one kernel set to run",
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let enc = dir.path().join("enc");
    netshare_model::testing::write_encoded(
        &netshare_model::testing::ugr16_shaped(300, 4, 1, 3),
        &enc,
    )
    .expect("encoded");
    let train = |kernels: &str| {
        let out = dir.path().join(kernels);
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_netshare-model"))
            .args([
                "train",
                "--profile",
                "default",
                "--iterations",
                "20",
                "--seed",
                "4",
            ])
            .arg(&enc)
            .arg("-o")
            .arg(&out)
            .env("NETSHARE_MATMUL", kernels)
            .status()
            .expect("spawn netshare-model");
        assert!(status.success(), "{kernels}: {status}");
        dir_bytes(&out)
    };
    let (a, b) = (train("avx2"), train("avx512"));
    assert_eq!(a.len(), 3);
    assert!(a == b, "the kernel sets gave different bytes");
}

/// `keep = "best"` ends a chunk with the weights of its best-scoring checkpoint: the same bytes
/// as a run told to stop at that iteration.
#[test]
fn keeping_the_best_checkpoint_gives_the_weights_of_a_run_stopped_there() {
    let enc = two_flow_types(120, 1, 9);
    let best_cfg = netshare_model::ModelConfig {
        keep: netshare_model::Keep::Best,
        checkpoint_every: 20,
        ..tiny(120, 5)
    };
    let t = netshare_model::train(&best_cfg, &enc, &TrainOptions::default())
        .expect("train")
        .expect("not stopped");
    let scores = crate::scores(&t);
    assert_eq!(scores.len(), 6, "{scores:?}");
    let min = scores.iter().map(|s| s.1).fold(f64::INFINITY, f64::min);
    let kept = scores.iter().find(|s| s.1 == min).expect("a minimum").0;
    assert_eq!(t.model.chunks[0].kept_iteration, Some(kept));
    let stopped = netshare_model::ModelConfig {
        checkpoint_every: 20,
        ..tiny(kept, 5)
    };
    let s = netshare_model::train(&stopped, &enc, &TrainOptions::default())
        .expect("train")
        .expect("not stopped");
    assert!(
        t.weights[0] == s.weights[0],
        "kept weights differ from iteration {kept}'s"
    );
    if kept != 120 {
        let last = netshare_model::train(&tiny(120, 5), &enc, &TrainOptions::default())
            .expect("train")
            .expect("not stopped");
        assert!(t.weights[0] != last.weights[0]);
    }
}
