//! The regression check: compares a report's metrics with committed bounds and lists every
//! metric that is worse than its bound.
//!
//! The bounds file is JSON: `{"max": {"synthetic.distributional.jsd_srcip": 0.2, ...},
//! "min": {"synthetic.classification.rank_correlation": 0.0, ...}}`. A metric that is null in
//! the report fails its bound (an undefined value cannot be shown to be good enough).
//!
//! Bounds relative to a baseline measured in the same run are the robust kind (absolute numbers
//! move with the trace and the seed; the gap to the independent-marginals sampler does not):
//! `"relative": [{"metric": "synthetic.joint.mi_mean_abs_diff", "baseline":
//! "marginals.joint.mi_mean_abs_diff", "max_ratio": 1.0}]` holds when the metric is at most
//! `max_ratio` times the baseline's value.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::report::Report;

/// Committed bounds on report metrics.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Bounds {
    /// Metric path → largest acceptable value.
    pub max: BTreeMap<String, f64>,
    /// Metric path → smallest acceptable value.
    pub min: BTreeMap<String, f64>,
    /// Bounds relative to another metric of the same report.
    pub relative: Vec<RelativeBound>,
}

/// `metric <= max_ratio × baseline`, both metric paths of the same report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelativeBound {
    /// The bounded metric (lower is better).
    pub metric: String,
    /// The metric it is measured against.
    pub baseline: String,
    /// Largest acceptable ratio.
    pub max_ratio: f64,
}

impl Bounds {
    /// Number of bounds of every kind.
    pub fn len(&self) -> usize {
        self.max.len() + self.min.len() + self.relative.len()
    }

    /// True when there is no bound.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads a bounds file.
pub fn read_bounds(path: &Path) -> Result<Bounds> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// One metric worse than its bound.
#[derive(Clone, Debug, PartialEq)]
pub struct Violation {
    /// Metric path.
    pub metric: String,
    /// The report's value (None when null).
    pub value: Option<f64>,
    /// `max` or `min`.
    pub bound_kind: &'static str,
    /// The bound.
    pub bound: f64,
    /// The metric's convention.
    pub convention: String,
    /// For a relative bound: `ratio × baseline` spelled out.
    pub relative_to: Option<String>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = if self.bound_kind == "max" { "<=" } else { ">=" };
        let rel = match &self.relative_to {
            Some(r) => format!(" (= {r})"),
            None => String::new(),
        };
        match self.value {
            Some(v) => write!(
                f,
                "{} = {v} ({}) is not {op} {}{rel}",
                self.metric, self.convention, self.bound
            ),
            None => write!(
                f,
                "{} is undefined ({}); bound {op} {}{rel}",
                self.metric, self.convention, self.bound
            ),
        }
    }
}

/// Every metric worse than its bound. A bound naming a metric the report lacks is an error.
pub fn check(report: &Report, bounds: &Bounds, bounds_path: &Path) -> Result<Vec<Violation>> {
    let mut out = Vec::new();
    let get = |name: &str| {
        report.metrics.get(name).ok_or_else(|| Error::Bounds {
            path: bounds_path.to_path_buf(),
            message: format!(
                "bound on {name:?}, which the report does not hold (it has {} metrics, e.g. {})",
                report.metrics.len(),
                report.metrics.keys().next().map_or("none", String::as_str)
            ),
        })
    };
    for (kind, map) in [("max", &bounds.max), ("min", &bounds.min)] {
        for (name, &bound) in map {
            let m = get(name)?;
            let ok = match m.value {
                Some(v) if kind == "max" => v <= bound,
                Some(v) => v >= bound,
                None => false,
            };
            if !ok {
                out.push(Violation {
                    metric: name.clone(),
                    value: m.value,
                    bound_kind: kind,
                    bound,
                    convention: m.convention.clone(),
                    relative_to: None,
                });
            }
        }
    }
    for r in &bounds.relative {
        let m = get(&r.metric)?;
        let b = get(&r.baseline)?;
        let bound = b.value.map(|v| r.max_ratio * v);
        let ok = matches!((m.value, bound), (Some(v), Some(bound)) if v <= bound);
        if !ok {
            out.push(Violation {
                metric: r.metric.clone(),
                value: m.value,
                bound_kind: "max",
                bound: bound.unwrap_or(f64::NAN),
                convention: m.convention.clone(),
                relative_to: Some(format!(
                    "{} x {} = {}",
                    r.max_ratio,
                    r.baseline,
                    b.value.map_or("undefined".to_string(), |v| v.to_string())
                )),
            });
        }
    }
    Ok(out)
}
