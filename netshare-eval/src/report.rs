//! The report: every number of one evaluation, as JSON, plus the flat list of metric paths the
//! regression check reads.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::downstream::{self, Classification, TaskSettings, Telemetry};
use crate::error::{Error, Result};
use crate::fidelity::{self, Convention, Metric};
use crate::joint::{self, MiPair};
use crate::table::Table;
use crate::training::TrainingLog;

/// The schema name written into every report.
pub const REPORT_SCHEMA: &str = "netshare.eval-report.v1";

/// The typed configuration of an evaluation (also the store-mode stage config).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// Convention of the distributional metrics.
    pub convention: Convention,
    /// Seed of every split, subsample, forest and sketch hash.
    pub seed: u64,
    /// Rows per side used to train classifiers (detectability and classification).
    pub max_rows: usize,
    /// Heavy hitters whose counts the sketches estimate.
    pub top_k: usize,
    /// Hash seeds averaged per sketch.
    pub sketch_repeats: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            convention: Convention::Netshare,
            seed: 0,
            max_rows: 4000,
            top_k: 10,
            sketch_repeats: 5,
        }
    }
}

/// Size of one input table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableInfo {
    /// Rows.
    pub rows: usize,
    /// Distinct five-tuples.
    pub five_tuples: usize,
    /// Rows whose addresses are IPv6 (absent from the JSON when 0, so an IPv4 report keeps
    /// its bytes).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ipv6_rows: usize,
    /// Distinct five-tuples whose addresses are IPv6 (absent when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ipv6_five_tuples: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl TableInfo {
    /// The IPv6 share of the rows and of the five-tuples, in percent.
    pub fn ipv6_percent(&self) -> (f64, f64) {
        let pct = |part: usize, all: usize| 100.0 * part as f64 / all.max(1) as f64;
        (
            pct(self.ipv6_rows, self.rows),
            pct(self.ipv6_five_tuples, self.five_tuples),
        )
    }
}

/// Whether any input table holds IPv6 (the report then shows each table's family split).
pub fn has_ipv6(tables: &BTreeMap<String, TableInfo>) -> bool {
    tables.values().any(|t| t.ipv6_rows > 0)
}

/// One table judged against a reference table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The reference table (`real`, or `half-a` for the real-vs-real floor).
    pub reference: String,
    /// The judged table.
    pub candidate: String,
    /// Per-field JSD / EMD (NetShare §6), in the report's convention.
    pub distributional: BTreeMap<String, Metric>,
    /// Joint-distribution metrics.
    pub joint: BTreeMap<String, Metric>,
    /// Mutual information per field pair.
    pub mutual_information: Vec<MiPair>,
    /// Flow-level metrics.
    pub flow: BTreeMap<String, Metric>,
    /// Real-vs-candidate detectability.
    pub detectability: BTreeMap<String, Metric>,
    /// Detectability from one feature at a time (what gives the candidate away).
    #[serde(default)]
    pub detectability_by_field: BTreeMap<String, Metric>,
    /// Classification trained on the candidate, tested on the reference.
    pub classification: Classification,
    /// Heavy-hitter telemetry.
    pub telemetry: Telemetry,
    /// Anomaly detection fitted on the candidate, tested on the reference.
    pub anomaly: crate::anomaly::AnomalyTask,
}

/// A whole evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`REPORT_SCHEMA`].
    pub schema: String,
    /// How good the synthetic trace is, in a few sentences with their numbers (see [`verdict`]).
    #[serde(default)]
    pub verdict: Vec<String>,
    /// `flows` or `packets`.
    pub kind: netshare_core::records::TraceKind,
    /// The configuration used.
    pub config: EvalConfig,
    /// `held-out` when every candidate is judged against records that neither the model nor
    /// the baselines trained on; `in-sample` when `real` is the training trace itself.
    #[serde(default = "in_sample")]
    pub evaluation: String,
    /// The input tables by role.
    pub tables: BTreeMap<String, TableInfo>,
    /// Comparisons by candidate role: `synthetic`, `marginals`, `reference-impl`,
    /// `real-vs-real`, and in a held-out report `synthetic-in-sample`.
    pub comparisons: BTreeMap<String, Comparison>,
    /// Parsed training log, when given.
    pub training: Option<TrainingLog>,
    /// The membership-inference audit (held-out reports only: it needs the training records
    /// and records the model never saw).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<crate::privacy::MembershipAudit>,
    /// What the model's training spent in privacy, when it was trained with DP-SGD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ledger: Option<netshare_privacy::Ledger>,
    /// Every metric as `comparison.group.name` → value, with its direction (what `check` reads).
    pub metrics: BTreeMap<String, FlatMetric>,
}

/// One entry of [`Report::metrics`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlatMetric {
    /// The value (null when undefined).
    pub value: Option<f64>,
    /// Its convention.
    pub convention: String,
    /// Whether lower is better.
    pub lower_is_better: bool,
}

/// The tables of one evaluation by role.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// The real trace.
    pub real: Option<Table>,
    /// The synthetic trace.
    pub synthetic: Option<Table>,
    /// The independent-marginals baseline.
    pub marginals: Option<Table>,
    /// The reference NetShare implementation's output on the same real trace.
    pub reference_impl: Option<Table>,
    /// First half of the real trace.
    pub half_a: Option<Table>,
    /// Second half of the real trace.
    pub half_b: Option<Table>,
    /// The records the model (and the marginals baseline) trained on, when `real` is a part of
    /// the trace with disjoint five-tuples that they never saw. Then the report is held-out:
    /// `real-vs-real` compares these training records with `real` (the floor), and
    /// `synthetic-in-sample` judges the synthetic trace against them (NetShare's convention).
    pub train: Option<Table>,
    /// Training log.
    pub training: Option<TrainingLog>,
    /// The model's privacy ledger (DP-SGD runs).
    pub ledger: Option<netshare_privacy::Ledger>,
}

fn in_sample() -> String {
    EVAL_IN_SAMPLE.to_string()
}

/// [`Report::evaluation`] of a report judged on held-out records.
pub const EVAL_HELD_OUT: &str = "held-out";
/// [`Report::evaluation`] of a report judged on the training records.
pub const EVAL_IN_SAMPLE: &str = "in-sample";
/// The comparison of the synthetic trace with its own training records in a held-out report.
pub const IN_SAMPLE_COMPARISON: &str = "synthetic-in-sample";

/// Compares `cand` with `reference`.
pub fn compare(
    reference_name: &str,
    reference: &Table,
    cand_name: &str,
    cand: &Table,
    cfg: &EvalConfig,
) -> Result<Comparison> {
    if reference.kind != cand.kind {
        return Err(Error::Incomparable {
            what: format!("{reference_name} with {cand_name}"),
            message: format!(
                "{reference_name} holds {:?}, {cand_name} holds {:?}",
                reference.kind, cand.kind
            ),
        });
    }
    if reference.is_empty() || cand.is_empty() {
        return Err(Error::Incomparable {
            what: format!("{reference_name} with {cand_name}"),
            message: format!(
                "{reference_name} has {} rows, {cand_name} has {}",
                reference.len(),
                cand.len()
            ),
        });
    }
    let s = TaskSettings {
        seed: cfg.seed,
        max_rows: cfg.max_rows,
        top_k: cfg.top_k,
        sketch_repeats: cfg.sketch_repeats,
    };
    let mi = joint::mutual_information_pairs(reference, cand);
    let det = downstream::detectability(reference, cand, &s);
    Ok(Comparison {
        reference: reference_name.to_string(),
        candidate: cand_name.to_string(),
        distributional: fidelity::distributional(reference, cand, cfg.convention),
        joint: joint::joint(reference, cand, &mi),
        mutual_information: mi,
        flow: joint::flow_level(reference, cand),
        detectability: det.overall,
        detectability_by_field: det.by_field,
        classification: downstream::classification(reference, cand, &s),
        telemetry: downstream::telemetry(reference, cand, &s),
        anomaly: crate::anomaly::anomaly(reference, cand, &s),
    })
}

fn info(t: &Table) -> TableInfo {
    let flows = t.flows();
    TableInfo {
        rows: t.len(),
        five_tuples: flows.len(),
        ipv6_rows: t.srcip.iter().filter(|a| a.is_ipv6()).count(),
        ipv6_five_tuples: flows.iter().filter(|g| t.srcip[g[0]].is_ipv6()).count(),
    }
}

/// Builds the report from whatever inputs are present (`real` is required, and at least one
/// candidate).
pub fn build(inputs: &Inputs, cfg: &EvalConfig) -> Result<Report> {
    let real = inputs.real.as_ref().ok_or_else(|| Error::Incomparable {
        what: "the inputs".into(),
        message: "the real trace is required".into(),
    })?;
    let mut tables = BTreeMap::new();
    tables.insert("real".to_string(), info(real));
    let mut comparisons = BTreeMap::new();
    for (role, t) in [
        ("synthetic", &inputs.synthetic),
        ("marginals", &inputs.marginals),
        ("reference-impl", &inputs.reference_impl),
    ] {
        if let Some(t) = t {
            tables.insert(role.to_string(), info(t));
            comparisons.insert(role.to_string(), compare("real", real, role, t, cfg)?);
        }
    }
    if let Some(train) = &inputs.train {
        if inputs.half_a.is_some() || inputs.half_b.is_some() {
            return Err(Error::Incomparable {
                what: "the real-vs-real floor".into(),
                message: "give either the training records (held-out report) or half-a and \
                          half-b, not both"
                    .into(),
            });
        }
        tables.insert("train".to_string(), info(train));
        comparisons.insert(
            "real-vs-real".to_string(),
            compare("real", real, "train", train, cfg)?,
        );
        if let Some(syn) = &inputs.synthetic {
            comparisons.insert(
                IN_SAMPLE_COMPARISON.to_string(),
                compare("train", train, "synthetic", syn, cfg)?,
            );
        }
    }
    match (&inputs.half_a, &inputs.half_b) {
        (Some(a), Some(b)) => {
            tables.insert("half-a".to_string(), info(a));
            tables.insert("half-b".to_string(), info(b));
            comparisons.insert(
                "real-vs-real".to_string(),
                compare("half-a", a, "half-b", b, cfg)?,
            );
        }
        (None, None) => {}
        _ => {
            return Err(Error::Incomparable {
                what: "the real-vs-real floor".into(),
                message: "half-a and half-b must be given together".into(),
            });
        }
    }
    if comparisons.is_empty() {
        return Err(Error::Incomparable {
            what: "the inputs".into(),
            message:
                "nothing to judge: give a synthetic trace, the marginals baseline or both halves"
                    .into(),
        });
    }
    let privacy = inputs.train.as_ref().map(|train| {
        let cands: Vec<(&str, &Table)> = [
            ("synthetic", &inputs.synthetic),
            ("marginals", &inputs.marginals),
        ]
        .into_iter()
        .filter_map(|(n, t)| t.as_ref().map(|t| (n, t)))
        .collect();
        crate::privacy::audit(train, real, &cands, cfg.seed)
    });
    let mut report = Report {
        schema: REPORT_SCHEMA.to_string(),
        verdict: Vec::new(),
        kind: real.kind,
        config: cfg.clone(),
        evaluation: if inputs.train.is_some() {
            EVAL_HELD_OUT
        } else {
            EVAL_IN_SAMPLE
        }
        .to_string(),
        tables,
        comparisons,
        training: inputs.training.clone(),
        privacy,
        ledger: inputs.ledger.clone(),
        metrics: BTreeMap::new(),
    };
    report.metrics = flatten(&report);
    report.verdict = verdict(&report);
    Ok(report)
}

fn num(x: Option<f64>) -> String {
    match x {
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.3}"),
        None => "undefined".into(),
    }
}

/// The report's first lines: where the trace was judged, how detectable it is, how much joint
/// structure it keeps, and how it fares against the baselines on NetShare's metrics. Every
/// number is one of [`Report::metrics`].
pub fn verdict(r: &Report) -> Vec<String> {
    let m = |c: &str, k: &str| r.metrics.get(&format!("{c}.{k}")).and_then(|f| f.value);
    let mut out = Vec::new();
    if !r.comparisons.contains_key("synthetic") {
        return out;
    }
    let real_rows = r.tables.get("real").map_or(0, |t| t.rows);
    out.push(if r.evaluation == EVAL_HELD_OUT {
        format!(
            "Judged on held-out records: {real_rows} real rows with five-tuples that neither the \
             model nor the baselines trained on."
        )
    } else {
        format!(
            "Judged in-sample: against the {real_rows} real rows the model trained on, so a model \
             that memorises them scores well (NetShare's convention)."
        )
    });
    if has_ipv6(&r.tables) {
        let split = |(role, words): &(&str, &str)| {
            r.tables.get(*role).map(|t| {
                let (rows, tuples) = t.ipv6_percent();
                format!("{rows:.1}% of the {words} rows ({tuples:.1}% of their five-tuples)")
            })
        };
        // The training part too, in a held-out report: it is the split the model learned, and
        // two parts of a small capture can differ in it.
        let parts: Vec<String> = [
            ("real", "real"),
            ("train", "training"),
            ("synthetic", "synthetic"),
        ]
        .iter()
        .filter_map(split)
        .collect();
        out.push(format!("Address families: IPv6 is {}.", parts.join(", ")));
    }
    out.push(format!(
        "Detectability: a random forest tells synthetic rows from real ones with AUC {} \
         (marginals sampler {}, real-vs-real {}; 0.5 = indistinguishable).",
        num(m("synthetic", "detectability.auc")),
        num(m("marginals", "detectability.auc")),
        num(m("real-vs-real", "detectability.auc")),
    ));
    let beats = |group: &str, base: &str| {
        let keys: Vec<&String> = r
            .metrics
            .keys()
            .filter(|k| k.starts_with(&format!("synthetic.{group}.")))
            .collect();
        let mut won = 0;
        let mut within2 = 0;
        let mut n = 0;
        for k in keys {
            let rest = &k["synthetic.".len()..];
            if let (Some(s), Some(b)) = (m("synthetic", rest), m(base, rest)) {
                n += 1;
                won += usize::from(s < b);
                within2 += usize::from(s <= 2.0 * b);
            }
        }
        (won, within2, n)
    };
    let (jw, _, jn) = beats("joint", "marginals");
    out.push(format!(
        "Joint structure: mutual-information difference {} (marginals sampler {}, real-vs-real \
         {}); better than the marginals sampler on {jw} of {jn} joint metrics.",
        num(m("synthetic", "joint.mi_mean_abs_diff")),
        num(m("marginals", "joint.mi_mean_abs_diff")),
        num(m("real-vs-real", "joint.mi_mean_abs_diff")),
    ));
    let (dw, d2, dn) = beats("distributional", "marginals");
    out.push(format!(
        "NetShare's per-field metrics: better than the marginals sampler on {dw} of {dn}, within \
         2x of it on {d2} of {dn}."
    ));
    if r.comparisons.contains_key("reference-impl") {
        let (rw, _, rn) = beats("distributional", "reference-impl");
        out.push(format!(
            "Against the reference NetShare output on the same trace: better on {rw} of {rn} of \
             NetShare's metrics."
        ));
    }
    if let Some(l) = &r.ledger {
        out.push(format!(
            "Trained with differential privacy: ({:.3}, {:e})-DP by the accountant, for the \
             steps run (noise multiplier {:.3}, clip norm {}; pretrained on: {}).",
            l.epsilon, l.delta, l.noise_multiplier, l.clip_norm, l.public
        ));
    }
    if let Some(a) = &r.privacy {
        let c = |n: &str| a.candidates.get(n);
        let auc = |n: &str| num(c(n).and_then(|x| x.dcr_auc));
        let copies = |n: &str| {
            c(n).map_or("undefined".into(), |x| {
                format!("{:.1}%", 100.0 * x.exact_copy_share_members)
            })
        };
        out.push(format!(
            "Membership inference: a closest-record attack tells training records from held-out \
             ones with AUC {} (marginals sampler {}, real traffic that never saw them {}; 0.5 = \
             no leak); {} of synthetic records copy a training record's five-tuple and sizes \
             (held-out: {}).",
            auc("synthetic"),
            auc("marginals"),
            auc(crate::privacy::REFERENCE),
            copies("synthetic"),
            c("synthetic").map_or("undefined".into(), |x| format!(
                "{:.1}%",
                100.0 * x.exact_copy_share_non_members
            )),
        ));
    }
    out
}

/// The flat `comparison.group.name` list of every metric in a report.
pub fn flatten(r: &Report) -> BTreeMap<String, FlatMetric> {
    let mut out = BTreeMap::new();
    let mut put = |key: String, m: &Metric| {
        out.insert(
            key,
            FlatMetric {
                value: m.value,
                convention: m.convention.clone(),
                lower_is_better: m.lower_is_better,
            },
        );
    };
    for (name, c) in &r.comparisons {
        for (group, map) in [
            ("distributional", &c.distributional),
            ("joint", &c.joint),
            ("flow", &c.flow),
            ("detectability", &c.detectability),
            ("detectability_by_field", &c.detectability_by_field),
        ] {
            for (k, m) in map {
                put(format!("{name}.{group}.{k}"), m);
            }
        }
        put(
            format!("{name}.classification.rank_correlation"),
            &c.classification.rank_correlation,
        );
        put(
            format!("{name}.classification.mean_accuracy_gap"),
            &c.classification.mean_accuracy_gap,
        );
        put(
            format!("{name}.anomaly.rank_correlation"),
            &c.anomaly.rank_correlation,
        );
        put(
            format!("{name}.anomaly.mean_auc_gap"),
            &c.anomaly.mean_auc_gap,
        );
        put(
            format!("{name}.telemetry.rank_correlation"),
            &c.telemetry.rank_correlation,
        );
        put(
            format!("{name}.telemetry.mean_relative_difference"),
            &c.telemetry.mean_relative_difference,
        );
    }
    if let Some(a) = &r.privacy {
        for (name, x) in &a.candidates {
            put(
                format!("privacy.{name}.dcr_auc"),
                &Metric::lower(
                    x.dcr_auc,
                    "netshare-rs",
                    "ROC AUC of the closest-record membership attack (0.5: no leak)",
                ),
            );
            put(
                format!("privacy.{name}.exact_copy_share"),
                &Metric::lower(
                    Some(x.exact_copy_share_members),
                    "netshare-rs",
                    "share of rows equal to a training record in five-tuple and sizes",
                ),
            );
        }
    }
    out
}

/// Writes a report as pretty JSON (non-finite numbers become null).
pub fn write_json(report: &Report, path: &Path) -> Result<()> {
    let text = serde_json::to_string_pretty(report).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    std::fs::write(path, text + "\n").map_err(|e| Error::io("writing", path, e))
}

/// Reads a report written by [`write_json`].
pub fn read_json(path: &Path) -> Result<Report> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv4_table_info_serialises_as_before_and_a_mixed_one_carries_its_split() {
        let four = TableInfo {
            rows: 10,
            five_tuples: 4,
            ipv6_rows: 0,
            ipv6_five_tuples: 0,
        };
        let text = serde_json::to_string(&four).expect("json");
        assert_eq!(text, r#"{"rows":10,"five_tuples":4}"#);
        let back: TableInfo = serde_json::from_str(&text).expect("reads back");
        assert_eq!(back, four);
        let mixed = TableInfo {
            ipv6_rows: 3,
            ipv6_five_tuples: 1,
            ..four
        };
        assert_eq!(mixed.ipv6_percent(), (30.0, 25.0));
        let tables = BTreeMap::from([("real".to_string(), four), ("synthetic".into(), mixed)]);
        assert!(has_ipv6(&tables));
    }
}
