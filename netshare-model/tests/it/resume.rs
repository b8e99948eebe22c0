//! Determinism and resume: same inputs, config and seed give the same bytes; a run stopped
//! after a checkpoint resumes to the same final weights as an uninterrupted run.

use netshare_model::TrainOptions;
use netshare_model::testing::two_flow_types;

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
