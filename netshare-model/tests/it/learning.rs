//! It learns: on two flow types with known lengths, ports and sizes, a short seeded training
//! run matches the known conditional distributions within stated bounds; untrained weights
//! do not.

use netshare_model::testing::{two_flow_types, two_types};
use netshare_model::{TrainOptions, TrainedModel};

/// Statistics of sampled flows, split by generated type (the `proto` arg-max).
fn check(model: &TrainedModel) -> Vec<String> {
    let n = 2000;
    let a = model.sample_attributes(0, n, 101);
    let (f, lengths) = model.sample_features(0, &a, 102);
    let t = model.max_len();
    let (mut count, mut port, mut len, mut pkt, mut recs) = (
        [0.0f64; 2],
        [0.0f64; 2],
        [0.0f64; 2],
        [0.0f64; 2],
        [0.0f64; 2],
    );
    for i in 0..n {
        let row = &a[i * 4..i * 4 + 4];
        let ty = usize::from(row[1] > row[0]);
        count[ty] += 1.0;
        port[ty] += row[2] as f64;
        len[ty] += lengths[i] as f64;
        for s in 0..lengths[i] {
            pkt[ty] += f[(i * t + s) * 2 + 1] as f64;
            recs[ty] += 1.0;
        }
    }
    let mut failures = Vec::new();
    let mut bound = |what: String, value: f64, lo: f64, hi: f64| {
        if !(lo..=hi).contains(&value) {
            failures.push(format!("{what} = {value:.3}, outside [{lo}, {hi}]"));
        }
    };
    bound("share of type B".into(), count[1] / n as f64, 0.2, 0.4);
    for ty in 0..2 {
        let c = count[ty].max(1.0);
        let p = two_types::PORT[ty] as f64;
        bound(
            format!("mean dstport of type {ty}"),
            port[ty] / c,
            p - 0.15,
            p + 0.15,
        );
        let l = two_types::LEN[ty] as f64;
        bound(
            format!("mean length of type {ty}"),
            len[ty] / c,
            l - 0.5,
            l + 0.5,
        );
        let k = two_types::PKT[ty] as f64;
        bound(
            format!("mean pkt_len of type {ty}"),
            pkt[ty] / recs[ty].max(1.0),
            k - 0.08,
            k + 0.08,
        );
    }
    failures
}

fn trained(iterations: u64) -> TrainedModel {
    let enc = two_flow_types(500, 1, 1);
    let t = netshare_model::train(&crate::tiny(iterations, 3), &enc, &TrainOptions::default())
        .expect("train")
        .expect("not stopped");
    let dir = tempfile::tempdir().expect("tempdir");
    t.write(dir.path()).expect("write");
    TrainedModel::load(dir.path()).expect("load")
}

#[test]
fn a_short_seeded_run_learns_two_flow_types_and_untrained_weights_do_not() {
    let untrained = check(&trained(0));
    assert!(
        untrained.len() >= 3,
        "untrained generator passes too many bounds: {untrained:?}"
    );
    let learned = check(&trained(1000));
    assert!(learned.is_empty(), "after training: {learned:?}");
}

#[test]
fn the_quality_score_in_the_log_falls_as_the_model_learns() {
    let enc = two_flow_types(500, 1, 1);
    let cfg = netshare_model::ModelConfig {
        checkpoint_every: 100,
        ..crate::tiny(1000, 3)
    };
    let t = netshare_model::train(&cfg, &enc, &TrainOptions::default())
        .expect("train")
        .expect("not stopped");
    let scores = crate::scores(&t);
    assert_eq!(
        scores.iter().map(|s| s.0).collect::<Vec<_>>(),
        (1..=10).map(|k| k * 100).collect::<Vec<_>>()
    );
    let (first, last) = (scores[0].1, scores[scores.len() - 1].1);
    eprintln!("quality scores: {scores:?}");
    assert!(
        last < 0.6 * first,
        "the score did not fall: {first} at 100 iterations, {last} at 1000"
    );
}
