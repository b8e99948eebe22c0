//! The regression check: compares a report's metrics with committed bounds and lists every
//! metric that is worse than its bound.
//!
//! The bounds file is JSON: `{"max": {"synthetic.distributional.jsd_srcip": 0.2, ...},
//! "min": {"synthetic.classification.rank_correlation": 0.0, ...}}`. A metric that is null in
//! the report fails its bound (an undefined value cannot be shown to be good enough).

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
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = if self.bound_kind == "max" { "<=" } else { ">=" };
        match self.value {
            Some(v) => write!(
                f,
                "{} = {v} ({}) is not {op} {}",
                self.metric, self.convention, self.bound
            ),
            None => write!(
                f,
                "{} is undefined ({}); bound {op} {}",
                self.metric, self.convention, self.bound
            ),
        }
    }
}

/// Every metric worse than its bound. A bound naming a metric the report lacks is an error.
pub fn check(report: &Report, bounds: &Bounds, bounds_path: &Path) -> Result<Vec<Violation>> {
    let mut out = Vec::new();
    for (kind, map) in [("max", &bounds.max), ("min", &bounds.min)] {
        for (name, &bound) in map {
            let m = report.metrics.get(name).ok_or_else(|| Error::Bounds {
                path: bounds_path.to_path_buf(),
                message: format!("bound on {name:?}, which the report does not hold (it has {} metrics, e.g. {:?})", report.metrics.len(), report.metrics.keys().next()),
            })?;
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
                });
            }
        }
    }
    Ok(out)
}
