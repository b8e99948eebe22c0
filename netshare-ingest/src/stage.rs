//! Store mode: the ingest stage under the core stage contract. Inputs `trace`, or `trace.0`,
//! `trace.1`, ... (several files of one capture); outputs `records.parquet` and
//! `ingest-report.json`.

use std::path::PathBuf;

use netshare_core::stage::{BodyError, RunOutcome, StageCtx, StoreArgs, run_from_args};

use crate::{
    IngestConfig, IngestOptions, RECORDS_OUTPUT, REPORT_OUTPUT, STAGE, ingest_named, write_report,
};

/// The trace inputs of a store run: `trace`, or `trace.0`, `trace.1`, ... in numeric order.
pub fn trace_inputs(ctx: &StageCtx) -> std::result::Result<Vec<(String, PathBuf)>, String> {
    let mut numbered = Vec::new();
    let mut single = None;
    for (name, path) in ctx.inputs() {
        if name == "trace" {
            single = Some((name.clone(), path.clone()));
        } else if let Some(n) = name.strip_prefix("trace.") {
            let i: u64 = n
                .parse()
                .map_err(|_| format!("input {name:?}: expected trace.<number>"))?;
            numbered.push((i, name.clone(), path.clone()));
        } else {
            return Err(format!(
                "unexpected input {name:?}; ingest takes `trace` or `trace.0`, `trace.1`, ..."
            ));
        }
    }
    numbered.sort();
    match (single, numbered.is_empty()) {
        (Some(s), true) => Ok(vec![s]),
        (None, false) => Ok(numbered.into_iter().map(|(_, n, p)| (n, p)).collect()),
        (Some(_), false) => Err("give either `trace` or `trace.N` inputs, not both".into()),
        (None, true) => Err("no input: ingest takes `trace` or `trace.0`, `trace.1`, ...".into()),
    }
}

/// The stage body in store mode: writes `records.parquet` and `ingest-report.json`.
pub fn body(cfg: &IngestConfig, ctx: &mut StageCtx) -> std::result::Result<(), BodyError> {
    let inputs = trace_inputs(ctx)?;
    let opts = IngestOptions {
        spill_dir: Some(ctx.scratch_dir()?.to_path_buf()),
        progress: None,
    };
    let out = ctx.output(RECORDS_OUTPUT);
    let report = ingest_named(&inputs, cfg, &out, &opts)?;
    write_report(&report, &ctx.output(REPORT_OUTPUT))?;
    ctx.set_schema(RECORDS_OUTPUT, &report.schema);
    ctx.set_summary(report.manifest_summary());
    Ok(())
}

/// Runs the stage in store mode from command-line arguments (prints the manifest).
pub fn run_store(args: &StoreArgs) -> netshare_core::StoreResult<RunOutcome> {
    run_from_args::<IngestConfig, _>(args, &STAGE, body)
}
