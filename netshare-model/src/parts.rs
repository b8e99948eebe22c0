//! The model stage split into store runs, so that a cluster can train the chunks as separate
//! jobs: a plan run (`plan.json`: what every chunk shares), one run per chunk
//! (`chunk-NNN.safetensors`: its weights and log) and a gather run that writes the files the
//! single model run writes (`model.json`, `weights-NNN.safetensors`, `train-log.csv`), with the
//! same bytes.
//!
//! Keys: a chunk run depends on its own tensors, the plan (which without DP is the same file
//! for every trace), the layout, the config and, for the later chunks, chunk 0's result; so a
//! change to one chunk's records re-trains that chunk and, through chunk 0, only what follows
//! from it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use netshare_core::layout::Layout;
use netshare_core::stage::{BodyError, StageCtx, StageDef};
use netshare_core::tensors::ChunkTensors;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{log_from_meta, log_to_meta};
use crate::data::{Encoded, read_json};
use crate::error::{Error, Result};
use crate::plan::{Plan, PlanFile};
use crate::train::{Bars, ChunkOutcome, Start, TrainOptions, gather, train_one_chunk};
use crate::{ModelConfig, weights};

/// The plan run: layout and every chunk's tensors in, `plan.json` out.
pub const PLAN_STAGE: StageDef = StageDef {
    name: "model-plan",
    version: 1,
};

/// One chunk's training: `chunk-NNN.safetensors` out.
pub const CHUNK_STAGE: StageDef = StageDef {
    name: "model-chunk",
    version: 1,
};

/// The gather: every chunk's result in, the model stage's files out.
pub const GATHER_STAGE: StageDef = StageDef {
    name: "model-gather",
    version: 1,
};

/// Format tag in a chunk result's metadata.
pub const CHUNK_FORMAT: &str = "netshare.model-chunk.v1";

/// The chunk run's config: the model config and which chunk.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkRunConfig {
    /// The chunk to train.
    pub chunk: usize,
    /// The model config (as the single model run takes it).
    #[serde(default)]
    pub model: ModelConfig,
}

/// The file name of a chunk's result.
pub fn chunk_file_name(chunk: usize) -> String {
    format!("chunk-{chunk:03}.safetensors")
}

fn input<'a>(inputs: &'a BTreeMap<String, PathBuf>, name: &str) -> Result<&'a Path> {
    inputs.get(name).map(PathBuf::as_path).ok_or_else(|| {
        Error::Input(format!(
            "no {name} among the inputs {:?}",
            inputs.keys().collect::<Vec<_>>()
        ))
    })
}

/// Writes a chunk's outcome: its weights, with the rest (flows, T, iterations, the log with
/// exact float bits, what chunk 0 started from) in the file's metadata.
pub fn write_chunk(path: &Path, o: &ChunkOutcome) -> Result<()> {
    let mut meta = BTreeMap::new();
    meta.insert("format".to_string(), CHUNK_FORMAT.to_string());
    meta.insert("chunk".to_string(), o.chunk.to_string());
    meta.insert("flows".to_string(), o.flows.to_string());
    meta.insert("max_len".to_string(), o.max_len.to_string());
    meta.insert("iterations".to_string(), o.iterations.to_string());
    meta.insert("log".to_string(), log_to_meta(&o.log));
    if let Some(s) = &o.started_from {
        meta.insert("started_from".to_string(), s.clone());
    }
    weights::write(path, &o.weights, Some(meta))
}

/// Reads a chunk's outcome written by [`write_chunk`].
pub fn read_chunk(path: &Path) -> Result<ChunkOutcome> {
    let (weights, meta) = weights::read(path)?;
    let bad = |m: String| Error::Weights {
        path: path.to_path_buf(),
        message: m,
    };
    if meta.get("format").map(String::as_str) != Some(CHUNK_FORMAT) {
        return Err(bad(format!(
            "not a chunk result (metadata format {:?}, expected {CHUNK_FORMAT:?})",
            meta.get("format")
        )));
    }
    let num = |k: &str| -> Result<u64> {
        meta.get(k)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("metadata lacks a numeric {k:?}")))
    };
    let log = log_from_meta(meta.get("log").map(String::as_str).unwrap_or(""))
        .ok_or_else(|| bad("metadata 'log' is malformed".into()))?;
    Ok(ChunkOutcome {
        chunk: num("chunk")? as usize,
        flows: num("flows")? as usize,
        max_len: num("max_len")? as usize,
        iterations: num("iterations")?,
        weights,
        log,
        started_from: meta.get("started_from").cloned(),
    })
}

/// The plan run's body: releases the chunks' flow counts (private runs) into `plan.json`.
pub fn plan_body(config: &ModelConfig, ctx: &mut StageCtx) -> std::result::Result<(), BodyError> {
    let encoded = Encoded::from_inputs(ctx.inputs())?;
    config.validate()?;
    crate::train::check_private(config, &encoded.layout)?;
    let flows: Vec<usize> = encoded.chunks.iter().map(|c| c.n).collect();
    let file = PlanFile::release(config, &flows);
    // Fails here, not in a chunk job, when a target ε cannot be met.
    Plan::new(config, &file, flows.len())?;
    let out = ctx.output("plan.json");
    let json = serde_json::to_string_pretty(&file)? + "\n";
    std::fs::write(&out, json).map_err(|e| Error::io("writing", &out, e))?;
    ctx.set_summary(serde_json::json!({ "chunks": flows.len(), "private": config.dp.is_some() }));
    Ok(())
}

/// The chunk run's body: trains one chunk (chunk 0 from the seed or the `init` input, a later
/// chunk from `chunk-000.safetensors`) with checkpoints in the run's scratch directory.
pub fn chunk_body_with(
    config: &ChunkRunConfig,
    ctx: &mut StageCtx,
    options: TrainOptions,
) -> std::result::Result<(), BodyError> {
    let k = config.chunk;
    // A test hook: the executors' tests make one chunk's run fail, as a crashed job would.
    if std::env::var("NETSHARE_FAIL_CHUNK")
        .ok()
        .and_then(|v| v.parse().ok())
        == Some(k)
    {
        return Err(format!("chunk {k} failed on purpose (NETSHARE_FAIL_CHUNK={k})").into());
    }
    let inputs = ctx.inputs().clone();
    let layout: Layout = read_json(input(&inputs, "layout.json")?)?;
    let name = format!("train-{k:03}.safetensors");
    let data = ChunkTensors::read(input(&inputs, &name)?)?;
    let plan_file: PlanFile = read_json(input(&inputs, "plan.json")?)?;
    let chunks = match &config.model.dp {
        Some(_) => plan_file.released_counts.len(),
        None => k + 1,
    };
    if k >= chunks {
        return Err(format!("chunk {k} is not in the plan, which has {chunks} chunks").into());
    }
    let plan = Plan::new(&config.model, &plan_file, chunks)?;
    let checked = Encoded {
        layout,
        chunks: vec![data],
    };
    checked.check()?;
    let (layout, data) = (&checked.layout, &checked.chunks[0]);
    let opts = TrainOptions {
        checkpoint_dir: Some(ctx.scratch_dir()?.to_path_buf()),
        ..options
    };
    let bars = Bars::new(&opts);
    let init;
    let first;
    let start = if k == 0 {
        match inputs.get("init") {
            Some(p) => {
                init = weights::read(p)?.0;
                Start::Given(&init, "the weights given as the `init` input")
            }
            None => Start::Seeded,
        }
    } else {
        first = read_chunk(input(&inputs, &chunk_file_name(0))?)?;
        Start::FromChunk0(&first)
    };
    let outcome = train_one_chunk(&plan, layout, (k, data), start, &opts, &bars)?
        .ok_or("training was stopped before the end")?;
    write_chunk(&ctx.output(&chunk_file_name(k)), &outcome)?;
    ctx.set_summary(serde_json::json!({
        "chunk": k,
        "flows": outcome.flows,
        "iterations": outcome.iterations,
        "final_g_loss": outcome.log.last().map(|r| r.losses.g_loss),
    }));
    Ok(())
}

/// [`chunk_body_with`] with progress bars (drawn only when stderr is a terminal).
pub fn chunk_body(
    config: &ChunkRunConfig,
    ctx: &mut StageCtx,
) -> std::result::Result<(), BodyError> {
    chunk_body_with(
        config,
        ctx,
        TrainOptions {
            progress: true,
            ..TrainOptions::default()
        },
    )
}

/// The gather's body: reads every `chunk-NNN.safetensors` (numbered from 000 without gaps) and
/// writes `model.json`, `weights-NNN.safetensors` and `train-log.csv`.
pub fn gather_body(config: &ModelConfig, ctx: &mut StageCtx) -> std::result::Result<(), BodyError> {
    let inputs = ctx.inputs().clone();
    let layout: Layout = read_json(input(&inputs, "layout.json")?)?;
    let plan_file: PlanFile = read_json(input(&inputs, "plan.json")?)?;
    let mut results = Vec::new();
    while let Some(p) = inputs.get(&chunk_file_name(results.len())) {
        results.push(read_chunk(p)?);
    }
    let named = inputs.keys().filter(|n| n.starts_with("chunk-")).count();
    if results.is_empty() || named != results.len() {
        return Err(format!(
            "chunk results must be chunk-000.safetensors upward without gaps; found {:?}",
            inputs
                .keys()
                .filter(|n| n.starts_with("chunk-"))
                .collect::<Vec<_>>()
        )
        .into());
    }
    let plan = Plan::new(config, &plan_file, results.len())?;
    let trained = gather(&plan, &layout, results)?;
    let out = ctx.output("model.json");
    let dir = out.parent().ok_or("the output directory has no parent")?;
    trained.write(dir)?;
    ctx.set_summary(crate::stage::summary(config, &trained));
    Ok(())
}
