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
    /// `flows` or `packets`.
    pub kind: netshare_core::records::TraceKind,
    /// The configuration used.
    pub config: EvalConfig,
    /// The input tables by role.
    pub tables: BTreeMap<String, TableInfo>,
    /// Comparisons by candidate role: `synthetic`, `marginals`, `real-vs-real`.
    pub comparisons: BTreeMap<String, Comparison>,
    /// Parsed training log, when given.
    pub training: Option<TrainingLog>,
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
    /// Training log.
    pub training: Option<TrainingLog>,
}

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
    Ok(Comparison {
        reference: reference_name.to_string(),
        candidate: cand_name.to_string(),
        distributional: fidelity::distributional(reference, cand, cfg.convention),
        joint: joint::joint(reference, cand, &mi),
        mutual_information: mi,
        flow: joint::flow_level(reference, cand),
        detectability: downstream::detectability(reference, cand, &s),
        classification: downstream::classification(reference, cand, &s),
        telemetry: downstream::telemetry(reference, cand, &s),
        anomaly: crate::anomaly::anomaly(reference, cand, &s),
    })
}

fn info(t: &Table) -> TableInfo {
    TableInfo {
        rows: t.len(),
        five_tuples: t.flows().len(),
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
    let mut report = Report {
        schema: REPORT_SCHEMA.to_string(),
        kind: real.kind,
        config: cfg.clone(),
        tables,
        comparisons,
        training: inputs.training.clone(),
        metrics: BTreeMap::new(),
    };
    report.metrics = flatten(&report);
    Ok(report)
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
