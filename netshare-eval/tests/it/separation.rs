//! On a whole day of real UGR16 flows, the joint and flow-level metrics and detectability
//! separate the independent-marginals baseline from the real-vs-real floor, while the
//! per-field marginal metrics cannot (the marginals baseline matches every marginal).

use netshare_eval::report::{self, EvalConfig};

use crate::helpers::{halves, marginals, read};

#[test]
fn joint_metrics_separate_the_marginals_baseline_from_the_real_vs_real_floor() {
    let real = read("netflow/ugr16-day1-host-a.csv");
    let cfg = EvalConfig {
        max_rows: 600,
        ..EvalConfig::default()
    };
    let (a, b) = halves(&real);
    let floor = report::compare("half-a", &a, "half-b", &b, &cfg).expect("floor");
    let marg =
        report::compare("real", &real, "marginals", &marginals(&real, 7), &cfg).expect("marginals");
    let v = |c: &report::Comparison, group: &str, m: &str| {
        let map = match group {
            "joint" => &c.joint,
            "flow" => &c.flow,
            "detectability" => &c.detectability,
            _ => &c.distributional,
        };
        map[m].value.expect("defined")
    };
    for (group, m) in [
        ("joint", "jsd_dstport_proto"),
        ("joint", "jsd_srcport_dstport"),
        ("joint", "jsd_srcip_rank_size"),
        ("joint", "mi_mean_abs_diff"),
        ("flow", "emd_records_per_flow"),
        ("detectability", "auc_excess"),
    ] {
        let (f, g) = (v(&floor, group, m), v(&marg, group, m));
        eprintln!("{group}.{m}: real-vs-real {f:.4}, marginals {g:.4}");
        assert!(
            g > 2.0 * f,
            "{group}.{m}: marginals {g} is not clearly worse than the floor {f}"
        );
    }
    // The per-field metrics cannot tell: the marginals baseline is a permutation of each column.
    assert_eq!(v(&marg, "distributional", "jsd_dstport"), 0.0);
    assert_eq!(v(&marg, "distributional", "emd_pkt"), 0.0);
}
