//! Real vs synthetic tables: fidelity metrics (NetShare's and NetDPSyn's conventions), joint and
//! flow-level metrics, detectability, downstream tasks (classification, sketch telemetry, anomaly
//! detection), a JSON
//! and a self-contained HTML report, and the regression check CI runs.
//!
//! Eval judges tables only: a synthetic trace, the independent-marginals baseline and the
//! real-vs-real split are all read the same way, so they are judged by the same code.
#![deny(missing_docs)]

pub mod anomaly;
pub mod check;
pub mod downstream;
pub mod error;
pub mod fidelity;
pub mod html;
pub mod joint;
pub mod ml;
pub mod privacy;
pub mod report;
pub mod sketch;
pub mod stage;
pub use netshare_stats as stats;
pub mod svg;
pub mod table;
pub mod training;

use std::path::{Path, PathBuf};

use netshare_core::stage::StageDef;

pub use error::{Error, Result};
pub use fidelity::{Convention, Metric};
pub use report::{EvalConfig, Inputs, Report};
pub use table::Table;

/// This stage's identity in the artifact store. Version 5: a trace with IPv6 gets each
/// table's family split (`ipv6_rows`, `ipv6_five_tuples`) and a verdict line on it; an IPv4
/// report is unchanged. Version 4: held-out reports carry a
/// membership-inference audit (`privacy`); flow CSVs are read by the formats crate (any
/// dialect). Version 3: metrics carry a `note` when values were left out, and the report plots
/// the model's quick quality score against training time.
pub const STAGE: StageDef = StageDef {
    name: "eval",
    version: 5,
};

/// Paths of the inputs of one evaluation by role.
#[derive(Clone, Debug, Default)]
pub struct InputPaths {
    /// Real trace (records Parquet or flow CSV).
    pub real: PathBuf,
    /// Synthetic trace.
    pub synthetic: Option<PathBuf>,
    /// Independent-marginals baseline.
    pub marginals: Option<PathBuf>,
    /// Output of the reference NetShare implementation on the same real trace, if one exists.
    pub reference_impl: Option<PathBuf>,
    /// First half of the real trace.
    pub half_a: Option<PathBuf>,
    /// Second half of the real trace.
    pub half_b: Option<PathBuf>,
    /// The records the model trained on, when `real` is held out (see [`Inputs::train`]).
    pub train: Option<PathBuf>,
    /// Training log CSV.
    pub train_log: Option<PathBuf>,
    /// The model's `model.json`: its privacy ledger, when it was trained with DP-SGD, is shown
    /// in the report.
    pub model: Option<PathBuf>,
}

/// The privacy ledger in a `model.json`, if any (read as JSON: eval does not depend on the
/// model crate).
pub fn read_ledger(path: &Path) -> Result<Option<netshare_privacy::Ledger>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    match v.get("privacy") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(l) => serde_json::from_value(l.clone())
            .map(Some)
            .map_err(|source| Error::Json {
                path: path.to_path_buf(),
                source,
            }),
    }
}

/// Reads every input named.
pub fn load_inputs(p: &InputPaths) -> Result<Inputs> {
    let opt = |p: &Option<PathBuf>| p.as_deref().map(Table::read).transpose();
    Ok(Inputs {
        real: Some(Table::read(&p.real)?),
        synthetic: opt(&p.synthetic)?,
        marginals: opt(&p.marginals)?,
        reference_impl: opt(&p.reference_impl)?,
        half_a: opt(&p.half_a)?,
        half_b: opt(&p.half_b)?,
        train: opt(&p.train)?,
        training: p
            .train_log
            .as_deref()
            .map(training::read_training_log)
            .transpose()?,
        ledger: match &p.model {
            Some(m) => read_ledger(m)?,
            None => None,
        },
    })
}

/// Builds the report and writes `report.json` and `report.html` into `dir`.
pub fn evaluate(inputs: &Inputs, cfg: &EvalConfig, dir: &Path) -> Result<Report> {
    let r = report::build(inputs, cfg)?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    report::write_json(&r, &dir.join("report.json"))?;
    let html_path = dir.join("report.html");
    std::fs::write(&html_path, html::render(&r, inputs))
        .map_err(|e| Error::io("writing", &html_path, e))?;
    Ok(r)
}
