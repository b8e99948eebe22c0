//! Every metric against the values the committed Python script computed with scipy / numpy /
//! scikit-learn (tests/reference/metrics_reference.py → metrics_expected.json).

use netshare_eval::fidelity::{self, Convention};
use netshare_eval::ml::{self, Classifier, GaussianNb, Knn, Matrix};
use netshare_eval::{Table, joint, stats};
use serde_json::Value;

use crate::helpers::{read, reference_dir};

fn expected() -> Value {
    let path = reference_dir().join("metrics_expected.json");
    serde_json::from_slice(&std::fs::read(&path).expect("metrics_expected.json")).expect("json")
}

fn close(what: &str, got: Option<f64>, want: &Value) {
    match (got, want.as_f64()) {
        (None, None) => {}
        (Some(g), Some(w)) => {
            let tol = 1e-9 * w.abs().max(1e-12);
            assert!((g - w).abs() <= tol, "{what}: got {g}, scipy says {w}");
        }
        (g, _) => panic!("{what}: got {g:?}, scipy says {want}"),
    }
}

fn tables(name: &str) -> (Table, Table) {
    match name {
        "1k_vs_reference" => (
            read("netflow/ugr16-netshare-1k.csv"),
            read("reference/netshare-ref-ugr16-1k-syn.csv"),
        ),
        "1k_vs_perturbed" => (
            read("netflow/ugr16-netshare-1k.csv"),
            Table::read(&reference_dir().join("ugr16-1k-perturbed.csv")).expect("perturbed"),
        ),
        "host_a_first_vs_second_half" => {
            let t = read("netflow/ugr16-day1-host-a.csv");
            let half = t.len() / 2;
            let a: Vec<usize> = (0..half).collect();
            let b: Vec<usize> = (half..t.len()).collect();
            (t.take(&a), t.take(&b))
        }
        other => panic!("unknown comparison {other}"),
    }
}

#[test]
fn distributional_metrics_match_scipy_in_both_conventions() {
    let exp = expected();
    let comps = exp["comparisons"].as_object().expect("comparisons");
    assert_eq!(comps.len(), 3);
    for (name, want) in comps {
        let (r, s) = tables(name);
        for (conv, key) in [
            (Convention::Netshare, "netshare"),
            (Convention::Netdpsyn, "netdpsyn"),
        ] {
            let got = fidelity::distributional(&r, &s, conv);
            let want = want[key].as_object().expect("metrics");
            assert_eq!(got.len(), want.len(), "{name} {key}");
            for (m, w) in want {
                let g = &got[m];
                assert_eq!(g.convention, key);
                close(&format!("{name} {key} {m}"), g.value, w);
            }
        }
    }
}

#[test]
fn joint_mutual_information_and_flow_metrics_match_numpy_and_sklearn() {
    let exp = expected();
    for (name, want) in exp["comparisons"].as_object().expect("comparisons") {
        let (r, s) = tables(name);
        let mi = joint::mutual_information_pairs(&r, &s);
        let want_mi = want["mutual_information"].as_array().expect("mi");
        assert_eq!(mi.len(), want_mi.len());
        for (g, w) in mi.iter().zip(want_mi) {
            assert_eq!(
                (g.a.as_str(), g.b.as_str()),
                (w["a"].as_str().expect("a"), w["b"].as_str().expect("b"))
            );
            close(
                &format!("{name} MI {} {} real", g.a, g.b),
                Some(g.reference),
                &w["reference"],
            );
            close(
                &format!("{name} MI {} {} candidate", g.a, g.b),
                Some(g.candidate),
                &w["candidate"],
            );
        }
        let got = joint::joint(&r, &s, &mi);
        for (m, w) in want["joint"].as_object().expect("joint") {
            close(&format!("{name} {m}"), got[m].value, w);
        }
        let got = joint::flow_level(&r, &s);
        for (m, w) in want["flow"].as_object().expect("flow") {
            close(&format!("{name} {m}"), got[m].value, w);
        }
    }
}

#[test]
fn the_reference_implementations_published_metrics_are_reproduced() {
    // ../shared/data/PROVENANCE.md: srcip 0.0799, dstip 0.0584, srcport 0.362, dstport 0.414,
    // proto 0.0166 (JSD); ts 3.91e7, td 74.1, pkt 1257, byt 6.10e5 (EMD).
    let (r, s) = tables("1k_vs_reference");
    let got = fidelity::distributional(&r, &s, Convention::Netshare);
    for (m, want, digits) in [
        ("jsd_srcip", 0.0799f64, 3),
        ("jsd_dstip", 0.0584, 3),
        ("jsd_srcport", 0.362, 3),
        ("jsd_dstport", 0.414, 3),
        ("jsd_proto", 0.0166, 3),
        ("emd_ts", 3.91e7, 3),
        ("emd_td", 74.1, 3),
        ("emd_pkt", 1257.0, 4),
        ("emd_byt", 6.10e5, 3),
    ] {
        let v = got[m].value.expect("defined");
        let scale = 10f64.powi(digits - 1 - want.abs().log10().floor() as i32);
        assert_eq!((v * scale).round() / scale, want, "{m} = {v}");
    }
}

#[test]
fn auc_and_spearman_match_sklearn_and_scipy_on_real_values() {
    let exp = expected();
    let r = read("netflow/ugr16-netshare-1k.csv");
    let p = Table::read(&reference_dir().join("ugr16-1k-perturbed.csv")).expect("perturbed");
    let mut scores: Vec<f64> = r
        .value("byt")
        .expect("byt")
        .iter()
        .map(|v| v.ln_1p())
        .collect();
    scores.extend(p.value("byt").expect("byt").iter().map(|v| v.ln_1p()));
    let truth: Vec<bool> = (0..scores.len()).map(|i| i >= r.len()).collect();
    close(
        "auc",
        stats::roc_auc(&scores, &truth),
        &exp["roc_auc_log1p_byt_real_vs_perturbed"],
    );
    let h = read("netflow/ugr16-day1-host-a.csv");
    close(
        "spearman",
        stats::spearman(h.value("pkt").expect("pkt"), h.value("byt").expect("byt")),
        &exp["spearman_pkt_byt_host_a"],
    );
}

fn without_proto(m: &Matrix) -> Matrix {
    let mut data = Vec::new();
    for i in 0..m.rows {
        let r = m.row(i);
        data.extend_from_slice(&r[..4]);
        data.extend_from_slice(&r[5..]);
    }
    Matrix::new(m.rows, m.cols - 1, data)
}

fn proto_accuracy(train: &Table, test: &Table, model: &mut dyn Classifier) -> f64 {
    let mut classes: Vec<u8> = train.proto.iter().chain(&test.proto).copied().collect();
    classes.sort_unstable();
    classes.dedup();
    let y = |t: &Table| -> Vec<usize> {
        t.proto
            .iter()
            .map(|p| classes.binary_search(p).expect("class"))
            .collect()
    };
    model.fit(
        &without_proto(&joint::features(train).0),
        &y(train),
        classes.len(),
    );
    ml::accuracy(
        &model.predict(&without_proto(&joint::features(test).0)),
        &y(test),
    )
}

fn nb_accuracy(train: &Table, test: &Table) -> f64 {
    proto_accuracy(train, test, &mut GaussianNb::default())
}

#[test]
fn gaussian_naive_bayes_predicts_like_sklearn_on_real_features() {
    let exp = &expected()["gaussian_nb_proto_accuracy"];
    let (r, s) = tables("1k_vs_reference");
    close(
        "nb reference→1k",
        Some(nb_accuracy(&s, &r)),
        &exp["train_reference_test_1k"],
    );
    let (a, b) = tables("host_a_first_vs_second_half");
    close(
        "nb host-a halves",
        Some(nb_accuracy(&a, &b)),
        &exp["train_host_a_first_test_second"],
    );
}

#[test]
fn five_nearest_neighbours_predict_like_sklearn_on_real_features() {
    let exp = &expected()["knn5_proto_accuracy"];
    let (r, s) = tables("1k_vs_reference");
    close(
        "knn reference→1k",
        Some(proto_accuracy(&s, &r, &mut Knn::new(5, true))),
        &exp["train_reference_test_1k"],
    );
    let (a, b) = tables("host_a_first_vs_second_half");
    close(
        "knn host-a halves",
        Some(proto_accuracy(&a, &b, &mut Knn::new(5, true))),
        &exp["train_host_a_first_test_second"],
    );
}
