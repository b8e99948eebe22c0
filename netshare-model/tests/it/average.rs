//! The moving average of the generator's weights (`ema_decay`): it equals the average computed
//! by hand over the raw weights of shorter runs, it leaves training (the critics) untouched,
//! a killed run resumes to the same bytes, and a private run takes it as post-processing.

use netshare_model::testing::two_flow_types;
use netshare_model::weights::HostTensors;
use netshare_model::{ModelConfig, TrainOptions};

use crate::{dir_bytes, tiny};

fn weights(cfg: &ModelConfig, chunks: usize) -> HostTensors {
    let enc = two_flow_types(120, chunks, 9);
    let t = netshare_model::train(cfg, &enc, &TrainOptions::default())
        .expect("train")
        .expect("not stopped");
    t.weights[0].clone()
}

fn averaged(iterations: u64, decay: f64) -> ModelConfig {
    ModelConfig {
        ema_decay: decay,
        ..tiny(iterations, 5)
    }
}

fn is_generator(name: &str) -> bool {
    name.starts_with("gen_")
}

/// `avg ← d·avg + (1 − d)·w` in f32 from the starting weights, with the warm-up
/// `d = min(decay, (1 + t) / (10 + t))` for the update after `t` earlier ones.
#[test]
fn the_written_generator_is_the_warmed_up_average_of_the_raw_weights_step_by_step() {
    let decay = 0.2;
    let n = 4;
    // A run told k iterations ends with the raw weights after k updates (0: the initial ones).
    let raw: Vec<HostTensors> = (0..=n).map(|k| weights(&tiny(k, 5), 1)).collect();
    let got = weights(&averaged(n, decay), 1);
    let mut by_hand = raw[0].clone();
    let mut warmed_up = 0;
    for t in 0..n {
        let warm = (1.0 + t as f64) / (10.0 + t as f64);
        if warm >= decay {
            warmed_up += 1;
        }
        let d = decay.min(warm);
        let (keep, take) = (d as f32, (1.0 - d) as f32);
        for (name, (_, avg)) in by_hand.iter_mut() {
            if is_generator(name) {
                for (a, w) in avg.iter_mut().zip(&raw[t as usize + 1][name].1) {
                    *a = keep * *a + take * *w;
                }
            }
        }
    }
    assert!(
        warmed_up > 0 && warmed_up < n,
        "both decay branches are used"
    );
    for (name, (shape, values)) in &got {
        if is_generator(name) {
            assert_eq!(
                (shape, values),
                (&by_hand[name].0, &by_hand[name].1),
                "{name} is not the average"
            );
            assert_ne!(values, &raw[n as usize][name].1, "{name} is the raw weight");
        } else {
            // Training goes on with the raw weights, so the critics are the plain run's.
            assert_eq!(values, &raw[n as usize][name].1, "{name} changed");
        }
    }
}

#[test]
fn a_run_with_the_average_stopped_after_a_checkpoint_resumes_to_the_same_bytes() {
    let cfg = ModelConfig {
        checkpoint_every: 10,
        ..averaged(30, 0.9)
    };
    let enc = two_flow_types(120, 3, 9);
    let write = |opts: &TrainOptions| {
        let t = netshare_model::train(&cfg, &enc, opts)
            .expect("train")
            .expect("not stopped");
        let dir = tempfile::tempdir().expect("tempdir");
        t.write(dir.path()).expect("write");
        dir_bytes(dir.path())
    };
    let whole = write(&TrainOptions::default());
    let ckpt = tempfile::tempdir().expect("tempdir");
    let stopped = TrainOptions {
        checkpoint_dir: Some(ckpt.path().to_path_buf()),
        stop_after: Some(25),
        ..TrainOptions::default()
    };
    assert!(
        netshare_model::train(&cfg, &enc, &stopped)
            .expect("train")
            .is_none()
    );
    // The checkpoint carries the averages beside the raw weights and Adam's moments.
    let (t, _) =
        netshare_model::weights::read(&ckpt.path().join("ckpt-000.safetensors")).expect("read");
    assert!(t.keys().any(|k| k.starts_with("ema/gen_feat.")));
    let resumed = TrainOptions {
        checkpoint_dir: Some(ckpt.path().to_path_buf()),
        ..TrainOptions::default()
    };
    let again = write(&resumed);
    assert!(again == whole, "the resumed run differs");
    let plain = {
        let t = netshare_model::train(&tiny(30, 5), &enc, &TrainOptions::default())
            .expect("train")
            .expect("not stopped");
        let dir = tempfile::tempdir().expect("tempdir");
        t.write(dir.path()).expect("write");
        dir_bytes(dir.path())
    };
    assert_ne!(
        plain["weights-000.safetensors"],
        whole["weights-000.safetensors"]
    );
    // model.json names the setting; a config without it serialises as before.
    let json = String::from_utf8(whole["model.json"].clone()).expect("utf-8");
    assert!(json.contains("\"ema_decay\": 0.9"), "{json}");
    let plain_json = String::from_utf8(plain["model.json"].clone()).expect("utf-8");
    assert!(!plain_json.contains("ema_decay"));
}

#[test]
fn decays_outside_zero_to_one_are_refused() {
    for bad in ["1.0", "1.5", "-0.1"] {
        let json = format!("{{\"profile\": \"tiny\", \"ema_decay\": {bad}}}");
        let err = serde_json::from_str::<ModelConfig>(&json).expect_err(bad);
        assert!(err.to_string().contains("ema_decay"), "{err}");
    }
    let ok: ModelConfig =
        serde_json::from_str("{\"profile\": \"tiny\", \"ema_decay\": 0.99}").expect("valid");
    assert_eq!(ok.ema_decay, 0.99);
}
