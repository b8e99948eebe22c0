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
        training: Some(training::read_training_log(&log).expect("training log")),
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
