//! The store-mode body of the synth stage: inputs are all encode and model outputs (named after
//! their files), outputs `synthetic.parquet`, `synthetic.csv` or `synthetic.pcap[ng]`, and
//! `synth-report.json`.

use netshare_core::stage::{BodyError, RunOutcome, StageCtx, StoreArgs, run_from_args};

use crate::STAGE;
use crate::generate::{REPORT_OUTPUT, SynthConfig, SynthInputs, synthesize};

/// Runs synthesis in a stage run's work directory and records the schema and a summary.
pub fn body(cfg: &SynthConfig, ctx: &mut StageCtx) -> Result<(), BodyError> {
    let inputs = SynthInputs::from_named(ctx.inputs())?;
    let report_path = ctx.output(REPORT_OUTPUT);
    let dir = report_path
        .parent()
        .ok_or("the stage's output directory has no parent")?
        .to_path_buf();
    let (report, timings) = synthesize(&inputs, cfg, &dir)?;
    let addrs = netshare_core::records::read_addr_schema(&dir.join("synthetic.parquet"))?;
    ctx.set_schema("synthetic.parquet", report.kind.schema_name_for(addrs));
    ctx.set_summary(serde_json::json!({
        "kind": report.kind,
        "records": report.clean.kept_records,
        "flows": report.chunks.iter().map(|c| c.flows).sum::<u64>(),
        "dropped": {
            "contradictory_tags": report.merge.dropped_contradictory_tags,
            "duplicate_flows": report.clean.duplicate_flows,
            "outside_time_range": report.clean.outside_time_range,
        },
        "seconds": timings,
    }));
    Ok(())
}

/// Runs the stage in store mode from command-line arguments (prints the manifest).
pub fn run_store(args: &StoreArgs) -> netshare_core::StoreResult<RunOutcome> {
    run_from_args(args, &STAGE, body)
}
