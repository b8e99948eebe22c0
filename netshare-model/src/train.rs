//! Training: chunk 0 from scratch and the others fine-tuned from its weights in parallel, with
//! checkpoints that make a killed run resume to the same bytes, the training log and the
//! `model.json` summary. The iteration itself is in the crate's `step` module.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{DType, Device};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use netshare_core::layout::Layout;
use netshare_core::tensors::ChunkTensors;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use crate::checkpoint::{fingerprint, read_checkpoint, write_checkpoint};
use crate::config::{Keep, ModelConfig};
use crate::data::Encoded;
use crate::error::{Error, Result};
pub use crate::log::{LogRow, Losses, log_csv};
pub use crate::model_file::{ChunkSummary, MODEL_FORMAT, ModelFile};
use crate::nets::{self, Ctx, Dims, Spec};
use crate::plan::{Plan, PlanFile, count_event};
pub(crate) use crate::seed::derive_seed;
use crate::step::{ChunkRun, LstmForm, Real};
use crate::weights::{self, HostTensors};

/// Everything a training run produces.
#[derive(Clone, Debug)]
pub struct Trained {
    /// The `model.json` content.
    pub model: ModelFile,
    /// Weights per chunk (name → shape, values).
    pub weights: Vec<HostTensors>,
    /// The training log, chunk by chunk.
    pub log: Vec<LogRow>,
    /// Whether chunk 0 stopped at its time budget before its planned iterations.
    pub stopped_by_budget: bool,
}

/// How to run training (things that do not change the result).
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Where tensors live (`Device::flex()` on CPU).
    pub device: Device,
    /// Show progress bars (only drawn when stderr is a terminal).
    pub progress: bool,
    /// Directory for checkpoints; `None`: no checkpoints.
    pub checkpoint_dir: Option<PathBuf>,
    /// Stop after this many generator iterations of chunk 0 as if killed (crash tests).
    pub stop_after: Option<u64>,
    /// How the LSTM runs where tensors live in host memory (benchmarks and tests; the default
    /// stops each row once its flow has ended, which trains the same bytes as running on).
    pub lstm: LstmForm,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            device: Device::flex(),
            progress: false,
            checkpoint_dir: None,
            stop_after: None,
            lstm: LstmForm::Fused,
        }
    }
}

/// Chunk 0's starting weights: drawn from the config's seed.
fn initial_weights(cfg: &ModelConfig, specs: &[Spec]) -> HostTensors {
    nets::init_host(
        specs,
        &mut ChaCha8Rng::seed_from_u64(derive_seed(cfg.seed, &[0])),
    )
}

/// What one chunk's training returns.
struct ChunkResult {
    weights: HostTensors,
    log: Vec<LogRow>,
    iterations: u64,
}

/// The scored iteration with the lowest quality score in a chunk's log, the earliest on a tie:
/// the one whose weights `keep = "best"` keeps.
fn best_scored(log: &[LogRow]) -> Option<(u64, f64)> {
    log.iter()
        .filter_map(|r| r.quality.map(|q| (r.iteration, q)))
        .fold(None, |best, (it, q)| match best {
            Some((_, b)) if b <= q => best,
            _ => Some((it, q)),
        })
}

#[allow(clippy::too_many_arguments)]
fn train_chunk(
    cfg: &ModelConfig,
    d: &Dims,
    specs: &[Spec],
    opts: &TrainOptions,
    (chunk, dp_rate): (usize, Option<f64>),
    data: &ChunkTensors,
    start: &HostTensors,
    bar: &ProgressBar,
) -> Result<Option<ChunkResult>> {
    let iterations = cfg.iterations_for(chunk);
    let fp = fingerprint(cfg, d, chunk, data);
    let final_path = opts
        .checkpoint_dir
        .as_ref()
        .map(|p| p.join(format!("final-{chunk:03}.safetensors")));
    let ckpt_path = opts
        .checkpoint_dir
        .as_ref()
        .map(|p| p.join(format!("ckpt-{chunk:03}.safetensors")));
    let best_path = opts
        .checkpoint_dir
        .as_ref()
        .map(|p| p.join(format!("best-{chunk:03}.safetensors")));
    if let Some(p) = &final_path
        && let Some((t, it, log)) = read_checkpoint(p, &fp)?
    {
        bar.set_position(it);
        bar.finish_with_message("done (from an earlier run)");
        return Ok(Some(ChunkResult {
            weights: t,
            log,
            iterations: it,
        }));
    }
    let ctx = Ctx {
        device: opts.device.clone(),
        dtype: DType::F32,
    };
    let mut run = ChunkRun::new(cfg, d, specs, ctx.clone(), chunk, start, opts.lstm);
    run.dp_rate = dp_rate;
    let mut log = Vec::new();
    let mut best_weights: Option<HostTensors> = None;
    let mut first = 0;
    if let Some(p) = &ckpt_path
        && let Some((t, it, rows)) = read_checkpoint(p, &fp)?
    {
        run.restore(p, &t, it)?;
        first = it;
        log = rows;
        // The best weights so far, kept beside the checkpoint.
        if cfg.keep == Keep::Best
            && let Some(bp) = &best_path
            && let Some((w, bit, _)) = read_checkpoint(bp, &fp)?
            && best_scored(&log).map(|b| b.0) == Some(bit)
        {
            best_weights = Some(w);
        }
        // Said on stderr whatever the progress setting: a user (and the crash test) must be
        // able to tell a resumed run from one that silently started again.
        eprintln!(
            "chunk {chunk}: resuming from {} at iteration {it} of {iterations}",
            p.display()
        );
    }
    let real = Real::new(&ctx, d, data);
    let real_host = (
        data.attributes.as_slice(),
        crate::data::critic_records(data),
    );
    let groups = crate::quality::SCORE_FLOWS.div_ceil(cfg.batch_size);
    let quality = |run: &ChunkRun, done: u64| -> Result<Option<f64>> {
        let seed = derive_seed(cfg.seed, &[7, chunk as u64, done]);
        let (attrs, recs) = run.sample_for_score(groups, seed)?;
        Ok(crate::quality::score(
            (real_host.0, &real_host.1),
            (&attrs, &recs),
            d.attr,
            d.max_len * d.rec(),
        ))
    };
    // Only chunk 0 has a time budget; the others get a fixed share of the steps it reached.
    let budget = if chunk == 0 {
        cfg.time_budget_seconds
    } else {
        None
    };
    let t0 = Instant::now();
    let base_seconds = log.last().and_then(|r: &LogRow| r.seconds).unwrap_or(0.0);
    bar.set_position(first);
    let mut stopped_at = None;
    for it in first..iterations {
        if opts.stop_after == Some(it) {
            return Ok(None);
        }
        let done = it + 1;
        let scored =
            done == iterations || (cfg.checkpoint_every > 0 && done % cfg.checkpoint_every == 0);
        let want = scored || done % cfg.log_every == 0;
        if let Some(losses) = run.iteration(&real, it, want)? {
            bar.set_message(format!(
                "d {:+.3} gp {:.3} aux {:+.3} g {:+.3}",
                losses.d_loss, losses.d_gp, losses.aux_loss, losses.g_loss
            ));
            // The budget is checked at logged iterations only, so a budgeted run's log ends
            // with the same row (losses and score) as a run told that many iterations.
            let over_budget = budget.is_some_and(|b| t0.elapsed().as_secs_f64() >= b);
            log.push(LogRow {
                chunk,
                iteration: done,
                losses,
                seconds: cfg
                    .log_wall_time
                    .then(|| base_seconds + t0.elapsed().as_secs_f64()),
                // The score compares with the private records outside DP-SGD: a private run
                // has none.
                quality: if (scored || over_budget) && cfg.dp.is_none() {
                    quality(&run, done)?
                } else {
                    None
                },
            });
            let last = log.last().expect("a row was just pushed");
            if cfg.keep == Keep::Best
                && last.quality.is_some()
                && best_scored(&log).map(|b| b.0) == Some(done)
            {
                let w = run.output_weights()?;
                if let Some(bp) = &best_path {
                    write_checkpoint(bp, &fp, &w, done, &[])?;
                }
                best_weights = Some(w);
            }
            if over_budget && done < iterations {
                stopped_at = Some(done);
                bar.inc(1);
                break;
            }
        }
        bar.inc(1);
        if let Some(p) = &ckpt_path
            && cfg.checkpoint_every > 0
            && done % cfg.checkpoint_every == 0
            && done < iterations
        {
            write_checkpoint(p, &fp, &run.checkpoint_tensors()?, done, &log)?;
        }
    }
    let reached = stopped_at.unwrap_or(iterations);
    let weights = match best_weights {
        Some(w) if cfg.keep == Keep::Best => w,
        _ => run.output_weights()?,
    };
    if let Some(p) = &final_path {
        write_checkpoint(p, &fp, &weights, reached, &log)?;
    }
    match stopped_at {
        Some(n) => bar.finish_with_message(format!("time budget reached at iteration {n}")),
        None => bar.finish(),
    }
    Ok(Some(ChunkResult {
        weights,
        log,
        iterations: reached,
    }))
}

/// One chunk's training as the gather needs it.
#[derive(Clone, Debug)]
pub struct ChunkOutcome {
    /// Chunk index.
    pub chunk: usize,
    /// Flows in the chunk's training tensors.
    pub flows: usize,
    /// Records per flow T as the networks see it.
    pub max_len: usize,
    /// The weights the chunk ends with.
    pub weights: HostTensors,
    /// Its training log.
    pub log: Vec<LogRow>,
    /// Generator iterations done.
    pub iterations: u64,
    /// Chunk 0 only: the description of the weights it started from, when they were given
    /// (public pretraining) rather than drawn from the seed.
    pub started_from: Option<String>,
}

/// Where a chunk's training starts.
#[derive(Clone, Copy, Debug)]
pub enum Start<'a> {
    /// Chunk 0 from weights drawn from the config's seed.
    Seeded,
    /// Chunk 0 from given weights, described for the privacy ledger and errors.
    Given(&'a HostTensors, &'a str),
    /// A later chunk, fine-tuned from chunk 0's outcome.
    FromChunk0(&'a ChunkOutcome),
}

/// A private run needs records encoded in private mode.
pub(crate) fn check_private(cfg: &ModelConfig, layout: &Layout) -> Result<()> {
    if cfg.dp.is_some() && !layout.private {
        return Err(Error::Config(
            "dp is set but the records were not encoded in private mode (layout.json has no \
             `private: true`): the encoder's vocabularies and bounds would carry the private \
             records outside DP-SGD. Encode with encode.private = true (and the public input)"
                .into(),
        ));
    }
    Ok(())
}

/// Given starting weights must have exactly this model's tensors and shapes.
fn check_start(specs: &[Spec], w: &HostTensors, what: &str) -> Result<()> {
    for s in specs {
        let fits = w
            .get(&s.name)
            .is_some_and(|(shape, _)| shape[..] == s.shape[..]);
        if !fits {
            return Err(Error::Input(format!(
                "the starting weights ({what}) do not fit this model: {} should be {:?}, found \
                 {:?} (train them with the same model sizes on records encoded with the same \
                 encoder)",
                s.name,
                s.shape,
                w.get(&s.name).map(|t| &t.0)
            )));
        }
    }
    if w.len() != specs.len() {
        return Err(Error::Input(format!(
            "the starting weights ({what}) hold {} tensors, this model {}",
            w.len(),
            specs.len()
        )));
    }
    Ok(())
}

/// The config the later chunks train with and `model.json` records: a time budget ends in a
/// plain config (the steps chunk 0 reached and no budget), which is what the later chunks'
/// share is taken of, so training again with the recorded config gives the same bytes.
fn effective_config(cfg: &ModelConfig, first: &ChunkOutcome) -> ModelConfig {
    ModelConfig {
        iterations: if cfg.time_budget_seconds.is_some() && first.flows > 0 {
            first.iterations
        } else {
            cfg.iterations
        },
        time_budget_seconds: None,
        ..cfg.clone()
    }
}

/// Progress bars for chunk runs, drawn only when asked and stderr is a terminal.
pub(crate) struct Bars {
    multi: MultiProgress,
    style: ProgressStyle,
}

impl Bars {
    pub(crate) fn new(opts: &TrainOptions) -> Bars {
        let target = if opts.progress && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Bars {
            multi: MultiProgress::with_draw_target(target),
            style: ProgressStyle::with_template(
                "chunk {prefix} {bar:30} {pos}/{len} {per_sec} {msg}",
            )
            .expect("the progress template is valid"),
        }
    }

    fn bar(&self, chunk: usize, len: u64) -> ProgressBar {
        let bar = self
            .multi
            .add(ProgressBar::new(len))
            .with_style(self.style.clone())
            .with_prefix(format!("{chunk:03}"));
        bar.set_length(len);
        bar
    }
}

/// Trains one chunk under the plan: chunk 0 from `Seeded` or `Given` weights, a later chunk
/// from chunk 0's outcome. Returns `Ok(None)` only when [`TrainOptions::stop_after`]
/// interrupted it.
pub(crate) fn train_one_chunk(
    plan: &Plan,
    layout: &Layout,
    (chunk, data): (usize, &ChunkTensors),
    start: Start<'_>,
    opts: &TrainOptions,
    bars: &Bars,
) -> Result<Option<ChunkOutcome>> {
    check_private(&plan.cfg, layout)?;
    let cfg = match start {
        Start::FromChunk0(first) => effective_config(&plan.cfg, first),
        _ => plan.cfg.clone(),
    };
    let d = Dims::new(&cfg, layout, data.max_len).map_err(Error::Input)?;
    let specs = nets::specs(&d);
    let (init, started_from) = match start {
        Start::Seeded => (initial_weights(&cfg, &specs), None),
        Start::Given(w, what) => {
            check_start(&specs, w, what)?;
            (w.clone(), Some(what.to_string()))
        }
        Start::FromChunk0(first) => (first.weights.clone(), None),
    };
    if let Some(dir) = &opts.checkpoint_dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    }
    let outcome = |weights, log, iterations| ChunkOutcome {
        chunk,
        flows: data.n,
        max_len: d.max_len,
        weights,
        log,
        iterations,
        started_from: started_from.clone(),
    };
    if data.n == 0 {
        return Ok(Some(outcome(init, Vec::new(), 0)));
    }
    let bar = bars.bar(chunk, cfg.iterations_for(chunk));
    let r = train_chunk(
        &cfg,
        &d,
        &specs,
        opts,
        (chunk, plan.rate(chunk)),
        data,
        &init,
        &bar,
    )?;
    Ok(r.map(|r| outcome(r.weights, r.log, r.iterations)))
}

/// Assembles the chunks' outcomes (in chunk order) into the trained model: `model.json` with
/// the recorded config, the chunk summaries and, for a private run, the privacy ledger.
pub(crate) fn gather(plan: &Plan, layout: &Layout, results: Vec<ChunkOutcome>) -> Result<Trained> {
    let first = results
        .first()
        .ok_or_else(|| Error::Input("no chunk was trained".into()))?;
    for (i, r) in results.iter().enumerate() {
        if r.chunk != i {
            return Err(Error::Input(format!(
                "chunk results are not numbered 0 upward: chunk {i} is missing"
            )));
        }
    }
    let cfg = &plan.cfg;
    let stopped_by_budget = cfg.time_budget_seconds.is_some() && first.iterations < cfg.iterations;
    let effective = effective_config(cfg, first);
    let public = match &first.started_from {
        Some(what) => {
            format!("chunk 0 started from {what}, trained without privacy on public records")
        }
        None => "nothing: trained from scratch on the private records".to_string(),
    };
    let chunks = results
        .iter()
        .map(|r| ChunkSummary {
            chunk: r.chunk,
            flows: r.flows,
            iterations: r.iterations,
            initialised_from: if r.chunk == 0 {
                "scratch".into()
            } else {
                "chunk-000".into()
            },
            kept_iteration: (cfg.keep == Keep::Best)
                .then(|| best_scored(&r.log).map(|b| b.0))
                .flatten(),
            final_losses: r.log.last().map(|l| l.losses).unwrap_or_default(),
        })
        .collect();
    let privacy = effective.dp.as_ref().map(|dp| {
        let chunks: Vec<netshare_privacy::LedgerChunk> = results
            .iter()
            .zip(&plan.releases)
            .filter_map(|(r, c)| {
                c.map(|c| netshare_privacy::LedgerChunk {
                    chunk: r.chunk,
                    released_examples: c.count,
                    sampling_rate: c.rate,
                    steps: r.iterations * effective.critic_steps as u64,
                })
            })
            .collect();
        let counts = count_event(dp, chunks.len());
        netshare_privacy::Ledger::new(
            "DP-SGD on both critics: Poisson-sampled real flows, each example's gradient over \
             both critics clipped to clip_norm (each critic to clip_norm/sqrt 2), Gaussian noise \
             of std noise_multiplier * clip_norm; the generator sees real data only through the \
             critics. Each chunk's flow count is released with Gaussian noise (count_noise).",
            dp.noise_multiplier.expect("resolved before training"),
            dp.clip_norm,
            dp.delta,
            dp.target_epsilon,
            chunks,
            counts,
            &public,
        )
    });
    let model = ModelFile {
        format: MODEL_FORMAT.to_string(),
        config: effective,
        layout: layout.clone(),
        max_len: first.max_len,
        chunks,
        privacy,
    };
    let log = results.iter().flat_map(|r| r.log.iter().cloned()).collect();
    let weights = results.into_iter().map(|r| r.weights).collect();
    Ok(Trained {
        model,
        weights,
        log,
        stopped_by_budget,
    })
}

/// Trains every chunk: chunk 0 from scratch, then the others in parallel from chunk 0's weights.
/// Returns `Ok(None)` only when [`TrainOptions::stop_after`] interrupted it.
pub fn train(cfg: &ModelConfig, encoded: &Encoded, opts: &TrainOptions) -> Result<Option<Trained>> {
    train_from(cfg, encoded, None, opts)
}

/// [`train`], with chunk 0 starting from `start` instead of seeded random weights: the
/// weights of a model trained on other (public) records with the same layout and sizes. This
/// is private mode's pretraining: train on a public trace, then fine-tune with DP-SGD.
///
/// The same steps as the model's split store runs (plan, one run per chunk, gather), in one
/// process: both give the same bytes.
pub fn train_from(
    cfg: &ModelConfig,
    encoded: &Encoded,
    start: Option<(&HostTensors, &str)>,
    opts: &TrainOptions,
) -> Result<Option<Trained>> {
    cfg.validate()?;
    encoded.check()?;
    check_private(cfg, &encoded.layout)?;
    let flows: Vec<usize> = encoded.chunks.iter().map(|c| c.n).collect();
    let plan = Plan::new(cfg, &PlanFile::release(cfg, &flows), flows.len())?;
    let bars = Bars::new(opts);
    let layout = &encoded.layout;
    let first_start = match start {
        Some((w, what)) => Start::Given(w, what),
        None => Start::Seeded,
    };
    let Some(first) = train_one_chunk(
        &plan,
        layout,
        (0, &encoded.chunks[0]),
        first_start,
        opts,
        &bars,
    )?
    else {
        return Ok(None);
    };
    let rest: Vec<Result<Option<ChunkOutcome>>> = (1..encoded.chunks.len())
        .into_par_iter()
        .map(|c| {
            let data = &encoded.chunks[c];
            train_one_chunk(
                &plan,
                layout,
                (c, data),
                Start::FromChunk0(&first),
                opts,
                &bars,
            )
        })
        .collect();
    let mut results = vec![first];
    for r in rest {
        match r? {
            Some(r) => results.push(r),
            None => return Ok(None),
        }
    }
    gather(&plan, layout, results).map(Some)
}

impl Trained {
    /// Writes `model.json`, `weights-NNN.safetensors` and `train-log.csv` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        let p = dir.join("model.json");
        let json = serde_json::to_string_pretty(&self.model).map_err(|source| Error::Json {
            path: p.clone(),
            source,
        })?;
        std::fs::write(&p, json + "\n").map_err(|e| Error::io("writing", &p, e))?;
        for (i, w) in self.weights.iter().enumerate() {
            weights::write(&dir.join(format!("weights-{i:03}.safetensors")), w, None)?;
        }
        let p = dir.join("train-log.csv");
        std::fs::write(&p, log_csv(&self.log, self.model.config.log_wall_time))
            .map_err(|e| Error::io("writing", &p, e))
    }
}

/// Seconds per generator iteration (with its critic steps), measured on chunk 0 of `encoded`.
#[derive(Clone, Debug, Serialize)]
pub struct StepTiming {
    /// Iterations timed.
    pub iterations: u64,
    /// Mean seconds per iteration.
    pub mean_seconds: f64,
    /// Fastest single iteration.
    pub min_seconds: f64,
}

/// Runs `warmup` untimed then `iterations` timed generator iterations on chunk 0 (a benchmark
/// of the training step; no checkpoints, no log), with the LSTM in the form `lstm`, from
/// `start` (a trained model's weights, every parameter) or else fresh weights.
pub fn measure_steps(
    cfg: &ModelConfig,
    encoded: &Encoded,
    device: Device,
    lstm: LstmForm,
    start: Option<&HostTensors>,
    warmup: u64,
    iterations: u64,
) -> Result<StepTiming> {
    cfg.validate()?;
    encoded.check()?;
    let flows: Vec<usize> = encoded.chunks.iter().map(|c| c.n).collect();
    let plan = Plan::new(cfg, &PlanFile::release(cfg, &flows), flows.len())?;
    let cfg = &plan.cfg;
    let d = Dims::new(cfg, &encoded.layout, encoded.max_len()).map_err(Error::Input)?;
    let specs = nets::specs(&d);
    let host = match start {
        Some(w) => {
            if let Some(s) = specs.iter().find(|s| w.get(&s.name).is_none()) {
                return Err(Error::Input(format!("the start weights lack {}", s.name)));
            }
            w.clone()
        }
        None => initial_weights(cfg, &specs),
    };
    let ctx = Ctx {
        device: device.clone(),
        dtype: DType::F32,
    };
    let data = encoded
        .chunks
        .first()
        .ok_or_else(|| Error::Input("no chunks".into()))?;
    let mut run = ChunkRun::new(cfg, &d, &specs, ctx.clone(), 0, &host, lstm);
    run.dp_rate = plan.rate(0);
    let real = Real::new(&ctx, &d, data);
    // Reading a loss back forces the device to finish the iteration's work.
    for it in 0..warmup {
        run.iteration(&real, it, true)?;
    }
    let mut times = Vec::with_capacity(iterations as usize);
    for it in 0..iterations {
        let t0 = Instant::now();
        run.iteration(&real, warmup + it, true)?;
        times.push(t0.elapsed().as_secs_f64());
    }
    let n = times.len().max(1) as f64;
    Ok(StepTiming {
        iterations,
        mean_seconds: times.iter().sum::<f64>() / n,
        min_seconds: times.iter().copied().fold(f64::INFINITY, f64::min),
    })
}
