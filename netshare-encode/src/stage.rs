//! Store mode: the encode stage under the core stage contract (inputs `records` and optional
//! `public`, outputs as in ARCHITECTURE.md).

use netshare_core::stage::{BodyError, RunOutcome, StageCtx, StoreArgs, run_from_args};

use crate::STAGE;
use crate::config::EncodeConfig;
use crate::pipeline::{encode_files, names};

/// Name of the records input.
pub const INPUT_RECORDS: &str = "records";
/// Name of the optional public records input.
pub const INPUT_PUBLIC: &str = "public";

/// The stage body: reads the inputs, encodes, writes every output into the run's directory.
pub fn body(cfg: &EncodeConfig, ctx: &mut StageCtx) -> std::result::Result<(), BodyError> {
    let records = ctx.input(INPUT_RECORDS)?.to_path_buf();
    let public = ctx.inputs().get(INPUT_PUBLIC).cloned();
    let unknown: Vec<&String> = ctx
        .inputs()
        .keys()
        .filter(|k| *k != INPUT_RECORDS && *k != INPUT_PUBLIC)
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "unexpected inputs {unknown:?}; encode takes `{INPUT_RECORDS}` and optionally `{INPUT_PUBLIC}`"
        )
        .into());
    }
    let out = ctx.output(names::ENCODER);
    let dir = out
        .parent()
        .expect("an output path is a file name inside the run directory");
    let report = encode_files(&records, public.as_deref(), cfg, dir)?;
    ctx.set_summary(serde_json::json!({
        "kind": report.kind,
        "input_records": report.input_records,
        "encoded_records": report.encoded_records,
        "encoded_flows": report.encoded_flows,
        "n_chunks": report.n_chunks,
        "max_flow_len": report.max_flow_len,
        "truncated_flows": report.truncated_flows,
        "dropped_flows": report.dropped_flows,
        "attribute_dim": report.attribute_dim,
        "feature_dim": report.feature_dim,
    }));
    Ok(())
}

/// Runs the stage in store mode (prints the manifest on stdout).
pub fn run_store(args: &StoreArgs) -> netshare_core::StoreResult<RunOutcome> {
    run_from_args::<EncodeConfig, _>(args, &STAGE, body)
}
