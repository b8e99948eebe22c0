//! Store mode: the eval stage under the core stage contract. Inputs by role: `real` and any of
//! `synthetic`, `marginals`, `reference-impl`, `half-a`, `half-b`, `train`, `train-log`,
//! `model` (its `model.json`, for the privacy ledger);
//! outputs `report.json` and `report.html`.

use std::path::PathBuf;

use netshare_core::stage::{BodyError, RunOutcome, StageCtx, StoreArgs, run_from_args};

use crate::{EvalConfig, InputPaths, STAGE};

/// The stage body: loads the inputs by role, evaluates, writes the report.
pub fn body(cfg: &EvalConfig, ctx: &mut StageCtx) -> Result<(), BodyError> {
    let get = |name: &str| ctx.inputs().get(name).cloned();
    let paths = InputPaths {
        real: ctx.input("real")?.to_path_buf(),
        synthetic: get("synthetic"),
        marginals: get("marginals"),
        reference_impl: get("reference-impl"),
        half_a: get("half-a"),
        half_b: get("half-b"),
        train: get("train"),
        train_log: get("train-log"),
        model: get("model"),
    };
    let inputs = crate::load_inputs(&paths)?;
    let dir = ctx
        .output("report.json")
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let r = crate::evaluate(&inputs, cfg, &dir)?;
    ctx.set_summary(serde_json::json!({
        "comparisons": r.comparisons.keys().collect::<Vec<_>>(),
        "convention": cfg.convention.name(),
    }));
    Ok(())
}

/// Runs the stage in store mode from command-line arguments (prints the manifest).
pub fn run_store(args: &StoreArgs) -> netshare_core::StoreResult<RunOutcome> {
    run_from_args::<EvalConfig, _>(args, &STAGE, body)
}
