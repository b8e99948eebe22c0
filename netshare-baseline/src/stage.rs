//! The baseline stage's store-mode body: input `records`, outputs the marginals sample and the
//! real-vs-real halves (`marginals.parquet`, `half-a.parquet`, `half-b.parquet`).

use std::path::PathBuf;

use netshare_core::stage::{BodyError, RunOutcome, StageCtx, StoreArgs, run_from_args};

use crate::STAGE;
use crate::sample::{self, BaselineConfig, BaselineKind};

/// Writes both baselines in a stage run's work directory and records their schemas.
pub fn body(cfg: &BaselineConfig, ctx: &mut StageCtx) -> Result<(), BodyError> {
    let input = ctx.input("records")?.to_path_buf();
    let dir = ctx
        .output("marginals.parquet")
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default();
    let summary = sample::run(
        &input,
        &dir,
        &[BaselineKind::Marginals, BaselineKind::Split],
        cfg,
    )?;
    for f in ["marginals.parquet", "half-a.parquet", "half-b.parquet"] {
        let schema = if summary["kind"] == "packets" {
            "netshare.packets.v1"
        } else {
            "netshare.flows.v1"
        };
        ctx.set_schema(f, schema);
    }
    ctx.set_summary(summary);
    Ok(())
}

/// Runs the stage in store mode from command-line arguments (prints the manifest).
pub fn run_store(args: &StoreArgs) -> netshare_core::StoreResult<RunOutcome> {
    run_from_args::<BaselineConfig, _>(args, &STAGE, body)
}
