//! Store mode: the model stage under the core stage contract. Inputs: the encoder's
//! `layout.json` and `train-NNN.safetensors`, and optionally `init`, the weights chunk 0 starts
//! from (private mode's public pretraining); outputs `model.json`, `weights-NNN.safetensors` and
//! `train-log.csv`.

use netshare_core::stage::{BodyError, RunOutcome, StageCtx, StoreArgs, run_from_args};

use crate::{Encoded, ModelConfig, STAGE, TrainOptions, matmul_kernels, train_from};

/// The stage body: [`body_with`] with progress bars (drawn only when stderr is a terminal).
pub fn body(config: &ModelConfig, ctx: &mut StageCtx) -> std::result::Result<(), BodyError> {
    body_with(
        config,
        ctx,
        TrainOptions {
            progress: true,
            ..TrainOptions::default()
        },
    )
}

/// The stage body with the given options: reads the encoder's outputs from the run's inputs, trains with
/// checkpoints in the run's scratch directory, writes `model.json`, `weights-NNN.safetensors`
/// and `train-log.csv`.
pub fn body_with(
    config: &ModelConfig,
    ctx: &mut StageCtx,
    options: TrainOptions,
) -> std::result::Result<(), BodyError> {
    let encoded = Encoded::from_inputs(ctx.inputs())?;
    let opts = TrainOptions {
        checkpoint_dir: Some(ctx.scratch_dir()?.to_path_buf()),
        ..options
    };
    let start = match ctx.inputs().get("init") {
        Some(p) => Some(crate::weights::read(p)?.0),
        None => None,
    };
    let trained = train_from(
        config,
        &encoded,
        start
            .as_ref()
            .map(|w| (w, "the weights given as the `init` input")),
        &opts,
    )?
    .ok_or("training was stopped before the end")?;
    let out = ctx.output("model.json");
    let dir = out.parent().ok_or("the output directory has no parent")?;
    trained.write(dir)?;
    ctx.set_summary(summary(config, &trained));
    Ok(())
}

/// The manifest summary of a trained model (the single run's and the gather's).
pub(crate) fn summary(config: &ModelConfig, trained: &crate::Trained) -> serde_json::Value {
    serde_json::json!({
        "chunks": trained.model.chunks.len(),
        "iterations": trained.model.chunks.iter().map(|c| c.iterations).collect::<Vec<_>>(),
        "time_budget_seconds": config.time_budget_seconds,
        "stopped_by_time_budget": trained.stopped_by_budget,
        "final_quality": trained.log.iter().rev().find_map(|r| r.quality),
        "matmul_kernels": matmul_kernels().describe(),
        "final_g_loss": trained.model.chunks.iter().map(|c| c.final_losses.g_loss).collect::<Vec<_>>(),
        "epsilon": trained.model.privacy.as_ref().map(|l| l.epsilon),
    })
}

/// Which store run of the model stage to do: all of it in one process, or one of its split
/// runs (see [`crate::parts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// Every chunk in one run (inputs: the encoder's outputs).
    #[default]
    Whole,
    /// The plan (inputs: layout.json and every train-NNN.safetensors): plan.json.
    Plan,
    /// One chunk (config `{"chunk": K, "model": {..}}`; inputs: layout.json, plan.json, its
    /// train-NNN.safetensors, and chunk-000.safetensors for K > 0 or `init` for K = 0).
    Chunk,
    /// The gather (inputs: layout.json, plan.json, every chunk-NNN.safetensors): the files of
    /// the whole run, with the same bytes.
    Gather,
}

/// Runs one part of the stage in store mode from command-line arguments (prints the manifest).
pub fn run_store_part(args: &StoreArgs, part: Part) -> netshare_core::StoreResult<RunOutcome> {
    use crate::parts::{
        CHUNK_STAGE, ChunkRunConfig, GATHER_STAGE, PLAN_STAGE, chunk_body, gather_body, plan_body,
    };
    match part {
        Part::Whole => run_store(args),
        Part::Plan => run_from_args::<ModelConfig, _>(args, &PLAN_STAGE, plan_body),
        Part::Chunk => run_from_args::<ChunkRunConfig, _>(args, &CHUNK_STAGE, chunk_body),
        Part::Gather => run_from_args::<ModelConfig, _>(args, &GATHER_STAGE, gather_body),
    }
}

/// Runs the stage in store mode from command-line arguments (prints the manifest).
pub fn run_store(args: &StoreArgs) -> netshare_core::StoreResult<RunOutcome> {
    run_from_args::<ModelConfig, _>(args, &STAGE, body)
}
