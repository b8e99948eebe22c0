//! DP-SGD runs: the ledger's ε is the accountant's for the steps actually run, a target ε picks
//! a noise multiplier that meets it, the run is reproducible, and noise changes the weights.

use netshare_model::testing::two_flow_types;
use netshare_model::{DpConfig, ModelConfig, TrainOptions};
use netshare_privacy::{Event, epsilon_of};

use crate::{dir_bytes, tiny};

fn private(iterations: u64, dp: DpConfig) -> ModelConfig {
    ModelConfig {
        dp: Some(dp),
        ..tiny(iterations, 4)
    }
}

fn dp(sigma: Option<f64>, target: Option<f64>) -> DpConfig {
    DpConfig {
        clip_norm: 1.0,
        noise_multiplier: sigma,
        target_epsilon: target,
        delta: 1e-5,
        count_noise: 10.0,
    }
}

/// Test data as a private-mode encoder would mark it.
fn private_enc(n: usize, chunks: usize, seed: u64) -> netshare_model::Encoded {
    let mut enc = two_flow_types(n, chunks, seed);
    enc.layout.private = true;
    enc
}

fn train(cfg: &ModelConfig) -> netshare_model::Trained {
    let enc = private_enc(120, 2, 9);
    netshare_model::train(cfg, &enc, &TrainOptions::default())
        .expect("train")
        .expect("not stopped")
}

#[test]
fn the_ledger_epsilon_is_the_accountants_for_the_steps_run() {
    let cfg = private(12, dp(Some(1.1), None));
    let t = train(&cfg);
    let ledger = t.model.privacy.clone().expect("a DP run has a ledger");
    assert_eq!(ledger.noise_multiplier, 1.1);
    assert_eq!(ledger.chunks.len(), 2);
    // Chunk 0 trains 12 iterations, chunk 1 a quarter of them; each has critic_steps updates.
    let steps: Vec<u64> = t
        .model
        .chunks
        .iter()
        .map(|c| c.iterations * cfg.critic_steps as u64)
        .collect();
    // Each chunk's rate comes from its released (noisy) count, never from the private one.
    for c in &ledger.chunks {
        let b = cfg.batch_size as f64;
        assert_eq!(c.sampling_rate, b / (c.released_examples as f64).max(b));
    }
    let mut events: Vec<Event> = ledger
        .chunks
        .iter()
        .zip(&steps)
        .map(|(c, &steps)| Event::SubsampledGaussian {
            q: c.sampling_rate,
            sigma: 1.1,
            steps,
        })
        .collect();
    // The counts: one Gaussian release of L2 sensitivity √2 (two chunks), std 10.
    events.push(Event::Gaussian {
        sigma: 10.0 / 2f64.sqrt(),
        count: 1,
    });
    assert_eq!(
        ledger.chunks.iter().map(|c| c.steps).collect::<Vec<_>>(),
        steps
    );
    let want = epsilon_of(&events, 1e-5);
    assert_eq!(ledger.epsilon, want.epsilon);
    assert!(ledger.epsilon > 0.0 && ledger.epsilon.is_finite());
    // The ledger travels in model.json.
    let dir = tempfile::tempdir().expect("tempdir");
    t.write(dir.path()).expect("write");
    let text = std::fs::read_to_string(dir.path().join("model.json")).expect("model.json");
    let back: netshare_model::ModelFile = serde_json::from_str(&text).expect("parse");
    assert_eq!(back.privacy, Some(ledger));
}

#[test]
fn a_target_epsilon_picks_a_noise_multiplier_that_meets_it() {
    let t = train(&private(12, dp(None, Some(4.0))));
    let ledger = t.model.privacy.clone().expect("ledger");
    let sigma = ledger.noise_multiplier;
    assert!(sigma > 0.0);
    assert_eq!(ledger.target_epsilon, Some(4.0));
    assert!(
        ledger.epsilon <= 4.0,
        "ε {} over the target",
        ledger.epsilon
    );
    // The search stops within 0.1% of σ, so ε is close to the target from below.
    assert!(
        ledger.epsilon > 3.9,
        "ε {} far below the target",
        ledger.epsilon
    );
    // model.json records the chosen σ: training again from it gives the same model.json.
    let again = train(&t.model.config);
    let json = |m: &netshare_model::ModelFile| serde_json::to_string(m).expect("json");
    assert_eq!(json(&again.model), json(&t.model));
}

#[test]
fn private_runs_are_reproducible_and_the_noise_changes_the_weights() {
    let bytes = |cfg: &ModelConfig| {
        let dir = tempfile::tempdir().expect("tempdir");
        train(cfg).write(dir.path()).expect("write");
        dir_bytes(dir.path())
    };
    let a = bytes(&private(8, dp(Some(0.8), None)));
    let b = bytes(&private(8, dp(Some(0.8), None)));
    assert!(a == b, "same seed and config, different bytes");
    let c = bytes(&private(8, dp(Some(3.0), None)));
    assert_ne!(a["weights-000.safetensors"], c["weights-000.safetensors"]);
}

#[test]
fn private_configs_that_cannot_work_are_refused_with_the_setting_named() {
    let refused = |cfg: ModelConfig| {
        netshare_model::train(&cfg, &private_enc(40, 1, 1), &TrainOptions::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(refused(private(5, dp(None, None))).contains("target_epsilon"));
    let e = refused(ModelConfig {
        keep: netshare_model::Keep::Best,
        ..private(5, dp(Some(1.0), None))
    });
    assert!(e.contains("keep"), "{e}");
    let e = refused(private(400, dp(None, Some(1e-4))));
    assert!(e.contains("cannot be met"), "{e}");
    // Records encoded outside private mode: DP-SGD would not cover the encoder.
    let e = netshare_model::train(
        &private(5, dp(Some(1.0), None)),
        &two_flow_types(40, 1, 1),
        &TrainOptions::default(),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(e.contains("private mode"), "{e}");
}

#[test]
fn a_private_run_logs_no_critic_loss_or_score_computed_on_private_records() {
    let t = train(&private(10, dp(Some(1.0), None)));
    assert!(!t.log.is_empty());
    for r in &t.log {
        assert!(
            r.losses.d_loss.is_nan() && r.losses.aux_gp.is_nan(),
            "{r:?}"
        );
        assert!(r.losses.g_loss.is_finite());
        assert_eq!(r.quality, None);
    }
    let csv = netshare_model::train::log_csv(&t.log, false);
    let row = csv.lines().nth(1).expect("a row");
    assert!(row.starts_with("0,"), "{row}");
    assert_eq!(row.split(',').filter(|c| c.is_empty()).count(), 5, "{row}");
    // And the synthesiser is told the released counts, not the private ones.
    let ledger = t.model.privacy.expect("ledger");
    assert!(ledger.chunks.iter().all(|c| c.released_examples > 0));
}

#[test]
fn pretrained_weights_start_a_private_run_and_are_named_in_the_ledger() {
    let public = netshare_model::train(
        &tiny(10, 2),
        &two_flow_types(120, 2, 3),
        &TrainOptions::default(),
    )
    .expect("train")
    .expect("not stopped");
    let enc = private_enc(120, 2, 9);
    let cfg = private(6, dp(Some(1.0), None));
    let from = |w| {
        netshare_model::train_from(
            &cfg,
            &enc,
            Some((w, "the public model")),
            &TrainOptions::default(),
        )
    };
    let t = from(&public.weights[0])
        .expect("train")
        .expect("not stopped");
    let ledger = t.model.privacy.expect("ledger");
    assert!(
        ledger.public.contains("the public model"),
        "{}",
        ledger.public
    );
    let scratch = train(&cfg);
    assert_ne!(t.weights[0], scratch.weights[0]);
    // Weights of another size are refused, naming a tensor.
    let mut wrong = public.weights[0].clone();
    let (name, (shape, v)) = wrong.pop_first().expect("a tensor");
    wrong.insert(name.clone(), (vec![shape[0] + 1, shape[1]], v));
    let e = from(&wrong)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains(&name) && e.contains("do not fit"), "{e}");
}

#[test]
fn private_runs_give_the_same_bytes_on_one_and_two_threads() {
    let with_threads = |n: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .expect("thread pool")
            .install(|| {
                let dir = tempfile::tempdir().expect("tempdir");
                train(&private(6, dp(Some(1.0), None)))
                    .write(dir.path())
                    .expect("write");
                dir_bytes(dir.path())
            })
    };
    assert!(
        with_threads(1) == with_threads(2),
        "the thread count changed the bytes"
    );
}

/// Averaging the generator's weights is post-processing of what DP-SGD released: the critics
/// and the ledger are those of the run without it, only the written generator differs.
#[test]
fn a_private_run_averages_its_generator_without_touching_the_ledger_or_the_critics() {
    let plain = train(&private(12, dp(Some(1.1), None)));
    let avg = train(&ModelConfig {
        ema_decay: 0.9,
        ..private(12, dp(Some(1.1), None))
    });
    let ledger =
        |t: &netshare_model::Trained| serde_json::to_string(&t.model.privacy).expect("ledger json");
    assert_eq!(ledger(&avg), ledger(&plain));
    let (a, p) = (&avg.weights[0], &plain.weights[0]);
    for (name, (_, values)) in a {
        if name.starts_with("gen_") {
            assert_ne!(values, &p[name].1, "{name} was not averaged");
        } else {
            assert_eq!(values, &p[name].1, "{name} changed");
        }
    }
}
