//! Store mode: the stage reads the encoder's outputs by name, writes the documented outputs,
//! is cached on a second run, and its outputs load through `TrainedModel::from_inputs`.

use std::collections::BTreeMap;

use netshare_core::Store;
use netshare_core::stage::run_stage;
use netshare_model::testing::{two_flow_types, write_encoded};
use netshare_model::{ModelConfig, TrainOptions, TrainedModel};

#[test]
fn the_stage_writes_model_weights_and_log_and_is_cached_the_second_time() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let enc_dir = tmp.path().join("enc");
    write_encoded(&two_flow_types(80, 2, 4), &enc_dir).expect("write encoded");
    std::fs::write(enc_dir.join("chunks.json"), "{}").expect("chunks.json");
    let store = Store::open(tmp.path().join("store")).expect("store");
    let mut inputs = BTreeMap::new();
    for name in [
        "layout.json",
        "chunks.json",
        "train-000.safetensors",
        "train-001.safetensors",
    ] {
        inputs.insert(
            name.to_string(),
            store.put_file(&enc_dir.join(name)).expect("put"),
        );
    }
    let config = serde_json::json!({"profile": "tiny", "iterations": 12, "seed": 4});
    let body = |c: &ModelConfig, ctx: &mut netshare_core::stage::StageCtx| {
        netshare_model::stage::body_with(c, ctx, TrainOptions::default())
    };
    let first = run_stage(&store, &netshare_model::STAGE, &config, &inputs, body).expect("run");
    assert!(!first.cached);
    let names: Vec<&String> = first.manifest.outputs.keys().collect();
    assert_eq!(
        names,
        [
            "model.json",
            "train-log.csv",
            "weights-000.safetensors",
            "weights-001.safetensors"
        ]
    );
    assert_eq!(
        first.manifest.config["critic_hidden"], 48,
        "the key holds the resolved config"
    );
    let second = run_stage(&store, &netshare_model::STAGE, &config, &inputs, body).expect("run");
    assert!(second.cached);
    let files: BTreeMap<String, std::path::PathBuf> = first
        .manifest
        .outputs
        .iter()
        .map(|(k, o)| (k.clone(), store.blob_path(&o.digest)))
        .collect();
    let m = TrainedModel::from_inputs(&files).expect("load from store blobs");
    assert_eq!(m.n_chunks(), 2);
    let log = std::fs::read_to_string(&files["train-log.csv"]).expect("log");
    assert!(
        log.starts_with("chunk,iteration,d_loss,d_gp,aux_loss,aux_gp,g_loss,quality\n"),
        "{log}"
    );
    assert!(
        log.contains("\n1,3,"),
        "chunk 1 logs its last iteration: {log}"
    );
}

#[test]
fn configs_are_a_profile_plus_overrides_and_unknown_fields_are_refused() {
    let c: ModelConfig =
        serde_json::from_str(r#"{"profile":"netshare","iterations":7}"#).expect("parse");
    assert_eq!(
        (
            c.critic_hidden,
            c.critic_layers,
            c.lstm_hidden,
            c.batch_size
        ),
        (512, 5, 100, 100)
    );
    assert_eq!(
        (c.iterations, c.lr, c.beta1, c.beta2, c.gp_lambda),
        (7, 1e-4, 0.5, 0.999, 10.0)
    );
    let round: ModelConfig =
        serde_json::from_value(serde_json::to_value(&c).expect("ser")).expect("de");
    assert_eq!(round, c);
    let e =
        serde_json::from_str::<ModelConfig>(r#"{"learning_rate":1}"#).expect_err("unknown field");
    assert!(e.to_string().contains("unknown field"), "{e}");
    let e = serde_json::from_str::<ModelConfig>(r#"{"batch_size":1}"#).expect_err("batch of one");
    assert!(e.to_string().contains("batch_size"), "{e}");
}

/// The default profile averages the generator's weights (0.99); the others do not. A config
/// is keyed by its resolved form, so naming the profile's value changes nothing, and a run
/// stored under the old default (no average) keeps a key of its own.
#[test]
fn the_default_profile_averages_the_generator_and_is_keyed_by_its_resolved_form() {
    let parse = |s: &str| serde_json::from_str::<ModelConfig>(s).expect("parse");
    let canon = |c: &ModelConfig| serde_json::to_string(c).expect("ser");
    let plain = parse(r#"{"profile":"default","seed":3}"#);
    assert_eq!(plain.ema_decay, 0.99);
    assert_eq!(parse(r#"{"profile":"tiny"}"#).ema_decay, 0.0);
    assert_eq!(parse(r#"{"profile":"netshare"}"#).ema_decay, 0.0);
    let named = parse(r#"{"profile":"default","seed":3,"ema_decay":0.99}"#);
    assert_eq!(canon(&named), canon(&plain));
    let off = parse(r#"{"profile":"default","seed":3,"ema_decay":0}"#);
    assert_ne!(canon(&off), canon(&plain));
    assert!(!canon(&off).contains("ema_decay"), "{}", canon(&off));
}

/// `sample_len` has one home, the encoder's config, and reaches the model in `layout.json`:
/// the model refuses it in its own config (also in the `--plan` check the driver runs before
/// any stage), and trains with the layout's value.
#[test]
fn sample_len_comes_from_the_layout_and_the_model_config_refuses_it() {
    let e = serde_json::from_str::<ModelConfig>(r#"{"sample_len":5}"#).expect_err("refused");
    assert!(e.to_string().contains("encode.sample_len"), "{e}");
    let store = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_netshare-model"))
        .args(["store", "--plan", "--config-json", r#"{"sample_len":5}"#])
        .arg("--store")
        .arg(store.path())
        .output()
        .expect("spawn");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("encode.sample_len"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // T = 6 with two records per step: 3 LSTM steps, and the sampled flows keep T = 6.
    let mut enc = netshare_model::testing::two_flow_types(40, 1, 2);
    enc.layout.sample_len = 2;
    let t = netshare_model::train(
        &crate::tiny(5, 1),
        &enc,
        &netshare_model::TrainOptions::default(),
    )
    .expect("train")
    .expect("not stopped");
    assert_eq!(t.model.layout.sample_len, 2);
    enc.layout.sample_len = 4;
    let e = netshare_model::train(
        &crate::tiny(5, 1),
        &enc,
        &netshare_model::TrainOptions::default(),
    )
    .expect_err("6 is not a multiple of 4");
    assert!(e.to_string().contains("sample_len 4"), "{e}");
}

/// The split store runs (plan, one run per chunk, gather), as the driver runs them, write the
/// bytes of one whole run, here for a private run with a target ε (the plan's released counts
/// and the noise multiplier chosen from them must reach every chunk run the same).
#[test]
fn the_split_runs_write_the_bytes_of_one_whole_run() {
    use netshare_model::parts::{
        CHUNK_STAGE, ChunkRunConfig, GATHER_STAGE, PLAN_STAGE, chunk_body_with, gather_body,
        plan_body,
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let enc_dir = tmp.path().join("enc");
    let mut enc = two_flow_types(90, 3, 6);
    enc.layout.private = true;
    write_encoded(&enc, &enc_dir).expect("write encoded");
    let store = Store::open(tmp.path().join("store")).expect("store");
    let put = |name: &str| store.put_file(&enc_dir.join(name)).expect("put");
    let config = serde_json::json!({"profile": "tiny", "iterations": 10, "seed": 2,
        "dp": {"target_epsilon": 5.0, "delta": 1e-5, "clip_norm": 1.0}});
    let mut encoded = BTreeMap::new();
    for name in [
        "layout.json",
        "train-000.safetensors",
        "train-001.safetensors",
        "train-002.safetensors",
    ] {
        encoded.insert(name.to_string(), put(name));
    }
    let whole = run_stage(
        &store,
        &netshare_model::STAGE,
        &config,
        &encoded,
        |c: &ModelConfig, ctx: &mut netshare_core::stage::StageCtx| {
            netshare_model::stage::body_with(c, ctx, TrainOptions::default())
        },
    )
    .expect("whole run");

    let plan = run_stage(&store, &PLAN_STAGE, &config, &encoded, plan_body).expect("plan");
    let plan_json = plan.manifest.outputs["plan.json"].digest;
    let chunk = |k: usize, chunk0: Option<netshare_core::Digest>| {
        let mut inputs = BTreeMap::from([
            ("plan.json".to_string(), plan_json),
            ("layout.json".to_string(), encoded["layout.json"]),
        ]);
        let name = format!("train-{k:03}.safetensors");
        inputs.insert(name.clone(), encoded[&name]);
        if let Some(c0) = chunk0 {
            inputs.insert("chunk-000.safetensors".to_string(), c0);
        }
        let cfg = serde_json::json!({"chunk": k, "model": config});
        let run = run_stage(
            &store,
            &CHUNK_STAGE,
            &cfg,
            &inputs,
            |c: &ChunkRunConfig, ctx: &mut netshare_core::stage::StageCtx| {
                chunk_body_with(c, ctx, TrainOptions::default())
            },
        )
        .expect("chunk run");
        run.manifest.outputs[&format!("chunk-{k:03}.safetensors")].digest
    };
    let c0 = chunk(0, None);
    let mut gather_inputs = BTreeMap::from([
        ("plan.json".to_string(), plan_json),
        ("layout.json".to_string(), encoded["layout.json"]),
        ("chunk-000.safetensors".to_string(), c0),
    ]);
    for k in 1..3 {
        gather_inputs.insert(format!("chunk-{k:03}.safetensors"), chunk(k, Some(c0)));
    }
    let gather =
        run_stage(&store, &GATHER_STAGE, &config, &gather_inputs, gather_body).expect("gather");
    let digests = |m: &netshare_core::Manifest| -> Vec<(String, String)> {
        m.outputs
            .iter()
            .map(|(k, o)| (k.clone(), o.digest.hex()))
            .collect()
    };
    assert_eq!(digests(&gather.manifest), digests(&whole.manifest));
    assert_eq!(gather.manifest.outputs.len(), 5);
    let model: serde_json::Value = serde_json::from_slice(
        &std::fs::read(store.blob_path(&gather.manifest.outputs["model.json"].digest))
            .expect("model.json"),
    )
    .expect("JSON");
    assert!(model["privacy"]["epsilon"].as_f64().expect("a ledger") <= 5.0);

    // A gap in the chunk results is refused, naming what was found.
    gather_inputs.remove("chunk-001.safetensors");
    let err = run_stage(&store, &GATHER_STAGE, &config, &gather_inputs, gather_body)
        .expect_err("chunk 1 missing")
        .to_string();
    assert!(err.contains("without gaps"), "{err}");
}
