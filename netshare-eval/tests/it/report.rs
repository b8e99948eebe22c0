//! The report end to end: every input role, JSON and HTML written, reproducible bytes, and the
//! regression check.

use netshare_eval::check::{self, Bounds};
use netshare_eval::report::{self, EvalConfig, Inputs};
use netshare_eval::{Convention, Table, training};

use crate::helpers::{halves, marginals, read, reference_dir};

fn small_config() -> EvalConfig {
    EvalConfig {
        max_rows: 300,
        ..EvalConfig::default()
    }
}

fn inputs(dir: &std::path::Path) -> Inputs {
    let real = read("netflow/ugr16-netshare-1k.csv");
    let log = dir.join("train-log.csv");
    std::fs::write(
        &log,
        "chunk,iteration,d_loss,g_loss,note\n0,0,1.5,0.7,start\n0,10,1.1,0.9,\n1,0,1.6,0.6,x\n1,10,1.0,1.0,\n",
    )
    .expect("log");
    let (a, b) = halves(&real);
    Inputs {
        synthetic: Some(
            Table::read(&reference_dir().join("ugr16-1k-perturbed.csv")).expect("perturbed"),
        ),
        marginals: Some(marginals(&real, 1)),
        reference_impl: None,
        half_a: Some(a),
        half_b: Some(b),
        train: None,
        training: Some(training::read_training_log(&log).expect("training log")),
        ledger: None,
        real: Some(real),
    }
}

#[test]
fn a_full_report_is_written_reproducibly_with_every_number_labelled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inp = inputs(dir.path());
    let log = inp.training.as_ref().expect("log");
    assert_eq!(log.rows, 4);
    assert_eq!(
        log.curves.keys().collect::<Vec<_>>(),
        ["d_loss", "g_loss"],
        "the text column is left out"
    );
    assert_eq!(log.curves["g_loss"][&1], vec![(0.0, 0.6), (10.0, 1.0)]);

    let r1 =
        netshare_eval::evaluate(&inp, &small_config(), &dir.path().join("a")).expect("report a");
    netshare_eval::evaluate(&inp, &small_config(), &dir.path().join("b")).expect("report b");
    for f in ["report.json", "report.html"] {
        let a = std::fs::read(dir.path().join("a").join(f)).expect("a");
        assert_eq!(
            a,
            std::fs::read(dir.path().join("b").join(f)).expect("b"),
            "{f} differs between runs"
        );
    }
    assert_eq!(
        r1.comparisons.keys().collect::<Vec<_>>(),
        ["marginals", "real-vs-real", "synthetic"]
    );
    let back = report::read_json(&dir.path().join("a/report.json")).expect("read back");
    assert_eq!(back.metrics, r1.metrics);
    for (name, m) in &r1.metrics {
        assert!(
            ["netshare", "netshare-rs"].contains(&m.convention.as_str()),
            "{name}: {}",
            m.convention
        );
    }
    assert!(r1.metrics.len() > 60, "{}", r1.metrics.len());
    // Marginals match every per-field marginal exactly (a permutation), so their port JSD is 0...
    assert_eq!(
        r1.metrics["marginals.distributional.jsd_dstport"].value,
        Some(0.0)
    );
    // ...while the joint (dstport, proto) distribution is broken.
    assert!(
        r1.metrics["marginals.joint.jsd_dstport_proto"]
            .value
            .expect("defined")
            > 0.05
    );

    let html = std::fs::read_to_string(dir.path().join("a/report.html")).expect("html");
    for needle in [
        "<svg",
        "CDF of td",
        "srcip rank-frequency",
        "Top 10 destination ports",
        "Training curves",
        "count-sketch",
        "random-forest",
        "netshare-rs",
    ] {
        assert!(html.contains(needle), "HTML lacks {needle:?}");
    }
    for external in ["<script", "src=", "href=", "url("] {
        assert!(
            !html.contains(external),
            "HTML must be self-contained, found {external:?}"
        );
    }
}

#[test]
fn the_netdpsyn_convention_is_stated_on_its_numbers() {
    let real = read("netflow/ugr16-netshare-1k.csv");
    let syn = read("reference/netshare-ref-ugr16-1k-syn.csv");
    let cfg = EvalConfig {
        convention: Convention::Netdpsyn,
        ..small_config()
    };
    let inp = Inputs {
        real: Some(real),
        synthetic: Some(syn),
        ..Inputs::default()
    };
    let r = report::build(&inp, &cfg).expect("report");
    let m = &r.metrics["synthetic.distributional.jsd_srcip"];
    assert_eq!(m.convention, "netdpsyn");
    let emd = r.metrics["synthetic.distributional.emd_td"]
        .value
        .expect("td");
    assert!(
        (0.0..=0.8).contains(&emd),
        "rescaled EMD lies within the [0.1, 0.9] span: {emd}"
    );
}

#[test]
fn check_names_each_metric_worse_than_its_bound() {
    let real = read("netflow/ugr16-netshare-1k.csv");
    let syn = read("reference/netshare-ref-ugr16-1k-syn.csv");
    let inp = Inputs {
        real: Some(real),
        synthetic: Some(syn),
        ..Inputs::default()
    };
    let r = report::build(&inp, &small_config()).expect("report");
    let path = std::path::Path::new("bounds.json");
    let mut b = Bounds::default();
    b.max
        .insert("synthetic.distributional.jsd_srcip".into(), 0.5);
    b.max
        .insert("synthetic.distributional.jsd_dstport".into(), 0.1);
    b.min
        .insert("synthetic.telemetry.rank_correlation".into(), 2.0);
    let bad = check::check(&r, &b, path).expect("check");
    let names: Vec<&str> = bad.iter().map(|v| v.metric.as_str()).collect();
    assert_eq!(
        names,
        [
            "synthetic.distributional.jsd_dstport",
            "synthetic.telemetry.rank_correlation"
        ]
    );
    assert!(
        bad[0].to_string().contains("(netshare) is not <= 0.1"),
        "{}",
        bad[0]
    );
    b.max.insert("synthetic.nonsense".into(), 1.0);
    let err = check::check(&r, &b, path)
        .expect_err("unknown metric")
        .to_string();
    assert!(
        err.contains("synthetic.nonsense") && err.contains("bounds.json"),
        "{err}"
    );
}

#[test]
fn comparing_flows_with_packets_or_an_empty_table_is_an_error_naming_both() {
    let real = read("netflow/ugr16-netshare-1k.csv");
    let mut packets = real.clone();
    packets.kind = netshare_core::records::TraceKind::Packets;
    let err = report::compare("real", &real, "synthetic", &packets, &small_config())
        .expect_err("kinds differ");
    assert!(
        err.to_string()
            .contains("real holds Flows, synthetic holds Packets"),
        "{err}"
    );
    let empty = real.take(&[]);
    let err =
        report::compare("real", &real, "synthetic", &empty, &small_config()).expect_err("empty");
    assert!(
        err.to_string()
            .contains("real has 1000 rows, synthetic has 0"),
        "{err}"
    );
}

#[test]
fn a_held_out_report_judges_every_candidate_on_records_none_of_them_trained_on() {
    let real = read("netflow/ugr16-netshare-1k.csv");
    let (train, held_out) = halves(&real);
    // A "generator" that copies its training records: perfect in-sample, and held-out it is
    // exactly as far from the held-out records as the training records themselves.
    let inp = Inputs {
        real: Some(held_out),
        synthetic: Some(train.clone()),
        marginals: Some(marginals(&train, 1)),
        train: Some(train),
        ..Inputs::default()
    };
    let r = report::build(&inp, &small_config()).expect("report");
    assert_eq!(r.evaluation, "held-out");
    assert_eq!(
        r.comparisons.keys().collect::<Vec<_>>(),
        [
            "marginals",
            "real-vs-real",
            "synthetic",
            "synthetic-in-sample"
        ]
    );
    assert_eq!(r.comparisons["real-vs-real"].reference, "real");
    assert_eq!(r.comparisons["real-vs-real"].candidate, "train");
    assert_eq!(r.comparisons["synthetic-in-sample"].reference, "train");
    // The copy is indistinguishable from its own training records in-sample...
    let in_sample = r.metrics["synthetic-in-sample.distributional.jsd_dstport"]
        .value
        .expect("defined");
    assert_eq!(in_sample, 0.0);
    // ...and gets no credit for it on the held-out records: there it equals the floor.
    for k in ["distributional.jsd_dstport", "joint.mi_mean_abs_diff"] {
        assert_eq!(
            r.metrics[&format!("synthetic.{k}")].value,
            r.metrics[&format!("real-vs-real.{k}")].value,
            "{k}"
        );
    }
    assert!(
        r.verdict[0].starts_with("Judged on held-out records"),
        "{:?}",
        r.verdict
    );
    assert!(r.verdict[1].contains("AUC"), "{:?}", r.verdict);
    // Per-field detectability is reported, bytes per packet included.
    assert!(
        r.metrics
            .contains_key("synthetic.detectability_by_field.bytes_per_packet")
    );
    assert!(
        r.metrics
            .contains_key("synthetic.detectability_by_field.log1p_td")
    );
    // Both the halves and the training records cannot be given at once.
    let (a, b) = halves(&read("netflow/ugr16-netshare-1k.csv"));
    let both = Inputs {
        half_a: Some(a.clone()),
        half_b: Some(b),
        ..inp
    };
    assert!(report::build(&both, &small_config()).is_err());
}

#[test]
fn relative_bounds_fail_for_a_candidate_worse_than_its_baseline() {
    let real = read("netflow/ugr16-netshare-1k.csv");
    let inp = Inputs {
        real: Some(real.clone()),
        synthetic: Some(marginals(&real, 7)),
        marginals: Some(marginals(&real, 1)),
        ..Inputs::default()
    };
    let r = report::build(&inp, &small_config()).expect("report");
    let syn = r.metrics["synthetic.joint.jsd_dstport_proto"]
        .value
        .expect("defined");
    let base = r.metrics["marginals.joint.jsd_dstport_proto"]
        .value
        .expect("defined");
    let bound = |ratio: f64| Bounds {
        relative: vec![check::RelativeBound {
            metric: "synthetic.joint.jsd_dstport_proto".into(),
            baseline: "marginals.joint.jsd_dstport_proto".into(),
            max_ratio: ratio,
        }],
        ..Bounds::default()
    };
    let path = std::path::Path::new("bounds.json");
    // Holds with room to spare, fails when the ratio is below what was measured.
    assert!(
        check::check(&r, &bound(2.0 * syn / base), path)
            .expect("check")
            .is_empty()
    );
    let bad = check::check(&r, &bound(0.5 * syn / base), path).expect("check");
    assert_eq!(bad.len(), 1);
    let text = bad[0].to_string();
    assert!(text.contains("marginals.joint.jsd_dstport_proto"), "{text}");
    assert!(!text.contains("Some("), "{text}");
}

/// The CI bounds of the tiny pipeline, judged on held-out reports built the way the pipeline
/// builds them: the real-vs-real floor (a copy of the training records) passes, while a
/// collapsed generator and one that draws every field independently both fail.
#[test]
fn the_ci_bounds_pass_the_floor_and_fail_collapsed_and_independent_outputs() {
    let bounds_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../pipelines/ugr16-tiny.expected.json");
    let bounds = check::read_bounds(&bounds_path).expect("bounds");
    assert!(
        !bounds.relative.is_empty(),
        "the CI bounds are relative to the baselines"
    );
    let real = read("netflow/ugr16-netshare-1k.csv");
    let (train, held_out) = halves(&real);
    let judge = |synthetic: Table| {
        let inp = Inputs {
            real: Some(held_out.clone()),
            synthetic: Some(synthetic),
            marginals: Some(marginals(&train, 1)),
            train: Some(train.clone()),
            ..Inputs::default()
        };
        let r = report::build(&inp, &EvalConfig::default()).expect("report");
        check::check(&r, &bounds, &bounds_path).expect("check")
    };
    let floor = judge(train.clone());
    assert!(floor.is_empty(), "the floor must pass: {floor:?}");
    // One constant port pair and protocol, IPs and sizes from the marginals.
    let mut collapsed = marginals(&train, 2);
    collapsed.srcport.fill(443);
    collapsed.dstport.fill(51_000);
    collapsed.proto.fill(6);
    let names = |v: Vec<check::Violation>| v.into_iter().map(|v| v.metric).collect::<Vec<_>>();
    let bad = names(judge(collapsed));
    assert!(
        bad.contains(&"synthetic.distributional.jsd_srcport".to_string())
            && bad.contains(&"synthetic.distributional.jsd_dstport".to_string()),
        "a collapsed output must fail on its ports: {bad:?}"
    );
    let bad = names(judge(marginals(&train, 3)));
    assert!(
        bad.contains(&"synthetic.joint.mi_mean_abs_diff".to_string()),
        "an independent-fields output must fail on the joint metrics: {bad:?}"
    );
}

/// A DP model's ledger, read from its model.json, appears in the report, its verdict and its
/// HTML; a model.json without one adds nothing.
#[test]
fn a_private_models_ledger_is_shown_in_the_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ledger = netshare_privacy::Ledger::new(
        "DP-SGD on both critics",
        1.25,
        1.0,
        1e-5,
        Some(4.0),
        vec![netshare_privacy::LedgerChunk {
            chunk: 0,
            released_examples: 480,
            sampling_rate: 100.0 / 480.0,
            steps: 600,
        }],
        Vec::new(),
        "nothing",
    );
    let with = dir.path().join("model.json");
    std::fs::write(
        &with,
        serde_json::to_vec(&serde_json::json!({"format": "x", "privacy": ledger})).expect("json"),
    )
    .expect("write");
    let without = dir.path().join("plain.json");
    std::fs::write(&without, br#"{"format": "x"}"#).expect("write");
    assert_eq!(netshare_eval::read_ledger(&without).expect("read"), None);
    let read = netshare_eval::read_ledger(&with)
        .expect("read")
        .expect("a ledger");
    assert_eq!(read, ledger);
    let mut inp = inputs(dir.path());
    inp.ledger = Some(read);
    let r = report::build(&inp, &small_config()).expect("report");
    let line = r
        .verdict
        .iter()
        .find(|l| l.contains("differential privacy"))
        .expect("a ledger line");
    assert!(line.contains(&format!("{:.3}", ledger.epsilon)), "{line}");
    let html = netshare_eval::html::render(&r, &inp);
    assert!(html.contains("Privacy ledger") && html.contains("480"));
}
