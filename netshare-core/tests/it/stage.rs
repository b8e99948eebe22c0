//! The stage contract: keys, caching, early cutoff, crash safety, locking.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use netshare_core::stage::{Failpoint, StageDef, run_stage, run_stage_with};
use netshare_core::{Digest, Store};
use serde::{Deserialize, Serialize};

/// A toy stage config: the body writes `factor` copies of its input, upper-cased when asked.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct Cfg {
    factor: usize,
    upper: bool,
}

const DEF: StageDef = StageDef {
    name: "toy",
    version: 1,
};

fn body(
    cfg: &Cfg,
    ctx: &mut netshare_core::stage::StageCtx,
) -> Result<(), netshare_core::stage::BodyError> {
    let text = std::fs::read_to_string(ctx.input("text")?)?;
    let text = if cfg.upper { text.to_uppercase() } else { text };
    std::fs::write(ctx.output("out.txt"), text.repeat(cfg.factor.max(1)))?;
    ctx.set_summary(serde_json::json!({"len": text.len()}));
    Ok(())
}

fn setup() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path().join("store")).expect("open");
    (dir, store)
}

fn inputs(store: &Store, text: &str) -> BTreeMap<String, Digest> {
    BTreeMap::from([(
        "text".to_string(),
        store.put_bytes(text.as_bytes()).expect("put"),
    )])
}

#[test]
fn a_second_run_with_the_same_config_and_input_content_is_a_cache_hit() {
    let (_d, s) = setup();
    let cfg = serde_json::json!({"factor": 2});
    let calls = AtomicUsize::new(0);
    let counted = |c: &Cfg, ctx: &mut netshare_core::stage::StageCtx| {
        calls.fetch_add(1, Ordering::SeqCst);
        body(c, ctx)
    };
    let first = run_stage(&s, &DEF, &cfg, &inputs(&s, "ab"), counted).expect("run");
    assert!(!first.cached);
    let second = run_stage(&s, &DEF, &cfg, &inputs(&s, "ab"), counted).expect("run");
    assert!(second.cached);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(first.manifest.key, second.manifest.key);
    let out = &second.manifest.outputs["out.txt"];
    assert_eq!(
        std::fs::read_to_string(s.blob_path(&out.digest)).expect("out"),
        "abab"
    );
    assert_eq!(out.format, "txt");
}

#[test]
fn the_key_changes_with_config_and_input_content_but_not_with_default_spelling() {
    let (_d, s) = setup();
    let base = run_stage(
        &s,
        &DEF,
        &serde_json::json!({"factor": 2}),
        &inputs(&s, "ab"),
        body,
    )
    .expect("run");
    let other_cfg = run_stage(
        &s,
        &DEF,
        &serde_json::json!({"factor": 3}),
        &inputs(&s, "ab"),
        body,
    )
    .expect("run");
    let other_input = run_stage(
        &s,
        &DEF,
        &serde_json::json!({"factor": 2}),
        &inputs(&s, "ac"),
        body,
    )
    .expect("run");
    assert!(!other_cfg.cached && !other_input.cached);
    assert_ne!(base.manifest.key, other_cfg.manifest.key);
    assert_ne!(base.manifest.key, other_input.manifest.key);
    // Spelling out a default is the same validated config, hence the same key.
    let explicit = run_stage(
        &s,
        &DEF,
        &serde_json::json!({"factor": 2, "upper": false}),
        &inputs(&s, "ab"),
        body,
    )
    .expect("run");
    assert!(explicit.cached);
    // A newer stage version is a different key.
    let v2 = StageDef {
        name: "toy",
        version: 2,
    };
    let bumped = run_stage(
        &s,
        &v2,
        &serde_json::json!({"factor": 2}),
        &inputs(&s, "ab"),
        body,
    )
    .expect("run");
    assert!(!bumped.cached);
}

#[test]
fn an_unknown_config_field_is_refused_with_its_name() {
    let (_d, s) = setup();
    let err = run_stage(
        &s,
        &DEF,
        &serde_json::json!({"factr": 2}),
        &inputs(&s, "ab"),
        body,
    )
    .expect_err("typo refused")
    .to_string();
    assert!(err.contains("factr"), "{err}");
}

#[test]
fn early_cutoff_an_upstream_rerun_with_identical_bytes_keeps_the_downstream_key() {
    let (_d, s) = setup();
    // Upstream: two different configs (factor 1, upper on an already upper-case input) that write
    // the same bytes. Downstream consumes the upstream output by content.
    let up_a = run_stage(
        &s,
        &DEF,
        &serde_json::json!({"factor": 1}),
        &inputs(&s, "XY"),
        body,
    )
    .expect("a");
    let up_b = run_stage(
        &s,
        &DEF,
        &serde_json::json!({"factor": 1, "upper": true}),
        &inputs(&s, "XY"),
        body,
    )
    .expect("b");
    assert_ne!(
        up_a.manifest.key, up_b.manifest.key,
        "upstream re-ran under a new key"
    );
    let out_a = up_a.manifest.outputs["out.txt"].digest;
    let out_b = up_b.manifest.outputs["out.txt"].digest;
    assert_eq!(out_a, out_b, "and wrote identical bytes");
    let down = StageDef {
        name: "down",
        version: 1,
    };
    let d1 = run_stage(
        &s,
        &down,
        &serde_json::json!({"factor": 2}),
        &BTreeMap::from([("text".into(), out_a)]),
        body,
    )
    .expect("down 1");
    let d2 = run_stage(
        &s,
        &down,
        &serde_json::json!({"factor": 2}),
        &BTreeMap::from([("text".into(), out_b)]),
        body,
    )
    .expect("down 2");
    assert!(!d1.cached);
    assert!(d2.cached, "downstream is not invalidated");
}

#[test]
fn a_crash_before_the_manifest_leaves_no_visible_run_and_a_rerun_recovers() {
    let (_d, s) = setup();
    let cfg = serde_json::json!({"factor": 2});
    let err = run_stage_with(
        &s,
        &DEF,
        &cfg,
        &inputs(&s, "ab"),
        Some(Failpoint::BeforeManifest),
        body,
    )
    .expect_err("simulated crash");
    assert!(err.to_string().contains("simulated crash"));
    assert!(
        s.manifests().expect("list").is_empty(),
        "no manifest, so no visible artifact"
    );
    let rerun = run_stage(&s, &DEF, &cfg, &inputs(&s, "ab"), body).expect("rerun");
    assert!(!rerun.cached, "the crashed run did not count as done");
    assert_eq!(s.manifests().expect("list").len(), 1);
    s.verify_manifest(&rerun.manifest).expect("outputs intact");
}

#[test]
fn a_failing_body_commits_nothing_and_reports_the_stage() {
    let (_d, s) = setup();
    let err = run_stage(&s, &DEF, &serde_json::json!({}), &BTreeMap::new(), body)
        .expect_err("missing input")
        .to_string();
    assert!(
        err.contains("stage toy failed") && err.contains("missing input \"text\""),
        "{err}"
    );
    assert!(s.manifests().expect("list").is_empty());
}

#[test]
fn two_concurrent_runs_of_one_key_compute_it_once() {
    let (_d, s) = setup();
    let ins = inputs(&s, "ab");
    let calls = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (s, ins, calls, barrier) = (s.clone(), ins.clone(), calls.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                run_stage(
                    &s,
                    &DEF,
                    &serde_json::json!({"factor": 3}),
                    &ins,
                    |c: &Cfg, ctx| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        // Hold the lock long enough that the others must wait on it.
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        body(c, ctx)
                    },
                )
                .expect("run")
            })
        })
        .collect();
    let outcomes: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "computed once");
    assert_eq!(outcomes.iter().filter(|o| !o.cached).count(), 1);
    let keys: std::collections::BTreeSet<_> = outcomes.iter().map(|o| o.manifest.key).collect();
    assert_eq!(keys.len(), 1);
}

#[test]
fn the_scratch_directory_survives_a_failed_run_and_is_removed_after_commit() {
    let (_d, s) = setup();
    let cfg = serde_json::json!({"factor": 1});
    let ins = inputs(&s, "ab");
    let _ = run_stage(&s, &DEF, &cfg, &ins, |_: &Cfg, ctx| {
        std::fs::write(ctx.scratch_dir()?.join("ckpt"), b"step 7")?;
        Err("killed".into())
    });
    let resumed = run_stage(&s, &DEF, &cfg, &ins, |c: &Cfg, ctx| {
        let ckpt = std::fs::read_to_string(ctx.scratch_dir()?.join("ckpt"))?;
        assert_eq!(ckpt, "step 7", "the checkpoint is there on re-run");
        body(c, ctx)
    })
    .expect("resume");
    assert!(!s.scratch_path(&resumed.manifest.key).exists());
}
