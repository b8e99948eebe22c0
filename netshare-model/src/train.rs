//! Training: WGAN-GP steps for one chunk, chunk 0 from scratch and the others fine-tuned from
//! its weights in parallel, checkpoints that make a killed run resume to the same bytes, the
//! training log and the `model.json` summary.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use netshare_core::layout::Layout;
use netshare_core::tensors::ChunkTensors;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::data::{Encoded, critic_records};
use crate::error::{Error, Result};
use crate::nets::{self, Ctx, Dims, Group, Params, Spec};
use crate::weights::{self, HostTensors};

/// Name and format tag of `model.json`.
pub const MODEL_FORMAT: &str = "netshare.model.v1";

/// Losses of one logged generator iteration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Losses {
    /// Critic Wasserstein term: mean D(fake) − mean D(real).
    pub d_loss: f32,
    /// Critic gradient penalty (λ included).
    pub d_gp: f32,
    /// Auxiliary critic Wasserstein term.
    pub aux_loss: f32,
    /// Auxiliary critic gradient penalty (λ included).
    pub aux_gp: f32,
    /// Generator loss −D(fake) − aux_weight · D_aux(fake).
    pub g_loss: f32,
}

/// One row of `train-log.csv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogRow {
    /// Chunk index.
    pub chunk: usize,
    /// Generator iterations done.
    pub iteration: u64,
    /// The losses at that iteration.
    pub losses: Losses,
    /// Wall-clock seconds since the chunk started (only with `log_wall_time`).
    pub seconds: Option<f64>,
}

/// Per-chunk facts in `model.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkSummary {
    /// Chunk index.
    pub chunk: usize,
    /// Flows in the chunk's training tensors.
    pub flows: usize,
    /// Generator iterations done.
    pub iterations: u64,
    /// Where training started: `scratch` or `chunk-000`.
    pub initialised_from: String,
    /// Losses at the last logged iteration.
    pub final_losses: Losses,
}

/// The content of `model.json`: everything needed to rebuild the networks around the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// Always [`MODEL_FORMAT`].
    pub format: String,
    /// The resolved config.
    pub config: ModelConfig,
    /// The encoder's layout the heads were built from.
    pub layout: Layout,
    /// Records per flow T.
    pub max_len: usize,
    /// One entry per chunk, in order.
    pub chunks: Vec<ChunkSummary>,
}

/// Everything a training run produces.
#[derive(Clone, Debug)]
pub struct Trained {
    /// The `model.json` content.
    pub model: ModelFile,
    /// Weights per chunk (name → shape, values).
    pub weights: Vec<HostTensors>,
    /// The training log, chunk by chunk.
    pub log: Vec<LogRow>,
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
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            device: Device::flex(),
            progress: false,
            checkpoint_dir: None,
            stop_after: None,
        }
    }
}

/// A seed for one purpose at one place of training (so no RNG state needs checkpointing).
pub(crate) fn derive_seed(seed: u64, parts: &[u64]) -> u64 {
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15;
    for &p in parts {
        x = x.wrapping_add(p).wrapping_add(0x9E37_79B9_7F4A_7C15);
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
    }
    x
}

pub(crate) fn to_device(ctx: &Ctx, host: &HostTensors) -> Params {
    host.iter()
        .map(|(k, (shape, v))| {
            let t: Tensor<2> =
                ctx.tensor(v.clone(), [shape[0], shape.get(1).copied().unwrap_or(1)]);
            (k.clone(), t)
        })
        .collect()
}

fn to_host(params: &Params) -> Result<HostTensors> {
    let mut out = BTreeMap::new();
    for (k, t) in params {
        let shape = t.dims().to_vec();
        let v = t
            .clone()
            .try_into_vec_as::<f32>()
            .map_err(|e| Error::Backend(format!("reading {k}: {e:?}")))?;
        out.insert(k.clone(), (shape, v));
    }
    Ok(out)
}

fn scalar(t: Tensor<1>, what: &str) -> Result<f32> {
    let v = t
        .try_into_vec_as::<f32>()
        .map_err(|e| Error::Backend(format!("reading {what}: {e:?}")))?;
    v.first()
        .copied()
        .ok_or_else(|| Error::Backend(format!("{what} is empty")))
}

/// Adam state of one parameter group.
struct Adam {
    m: Params,
    v: Params,
    t: u64,
}

impl Adam {
    fn new(params: &Params, names: &[String]) -> Adam {
        let z: Params = names
            .iter()
            .map(|n| (n.clone(), params[n].zeros_like()))
            .collect();
        Adam {
            m: z.clone(),
            v: z,
            t: 0,
        }
    }

    fn step(&mut self, cfg: &ModelConfig, params: &mut Params, grads: Vec<(String, Tensor<2>)>) {
        self.t += 1;
        let (b1, b2) = (cfg.beta1, cfg.beta2);
        let c1 = 1.0 - b1.powi(self.t as i32);
        let c2 = 1.0 - b2.powi(self.t as i32);
        let step = cfg.lr / c1;
        for (name, g) in grads {
            let m = self.m[&name].clone().mul_scalar(b1) + g.clone().mul_scalar(1.0 - b1);
            let v = self.v[&name].clone().mul_scalar(b2) + g.square().mul_scalar(1.0 - b2);
            let denom = v.clone().div_scalar(c2).sqrt().add_scalar(1e-8);
            let p = params[&name].clone() - (m.clone() / denom).mul_scalar(step);
            self.m.insert(name.clone(), m);
            self.v.insert(name.clone(), v);
            params.insert(name, p);
        }
    }
}

/// One chunk's real data on the device.
struct Real {
    records: Tensor<2>,
    attributes: Tensor<2>,
    n: usize,
}

/// Noise for one generator forward pass.
pub(crate) struct Noise {
    pub za: Tensor<2>,
    pub zf: Tensor<3>,
    pub h0: Tensor<2>,
    pub c0: Tensor<2>,
}

pub(crate) fn attr_noise(ctx: &Ctx, d: &Dims, rng: &mut ChaCha8Rng, b: usize) -> Tensor<2> {
    ctx.normal(rng, [b, d.attr_noise])
}

pub(crate) fn feat_noise(
    ctx: &Ctx,
    d: &Dims,
    rng: &mut ChaCha8Rng,
    b: usize,
) -> (Tensor<3>, Tensor<2>, Tensor<2>) {
    (
        ctx.normal(rng, [b, d.steps, d.feat_noise]),
        ctx.normal(rng, [b, d.lstm]),
        ctx.normal(rng, [b, d.lstm]),
    )
}

fn noise(ctx: &Ctx, d: &Dims, rng: &mut ChaCha8Rng, b: usize) -> Noise {
    let za = attr_noise(ctx, d, rng, b);
    let (zf, h0, c0) = feat_noise(ctx, d, rng, b);
    Noise { za, zf, h0, c0 }
}

/// Generated attributes `[B, A]` and critic-ready flattened records `[B, T * (F + 2)]`.
fn generate(params: &Params, d: &Dims, n: Noise) -> (Tensor<2>, Tensor<2>) {
    let attrs = nets::gen_attributes(params, d, n.za);
    let [b, _] = attrs.dims();
    let g = nets::gen_features(params, d, attrs.clone(), n.zf, n.h0, n.c0);
    (attrs, g.records.reshape([b, d.max_len * d.rec()]))
}

fn track(params: &Params, names: &[String]) -> Params {
    let mut out = params.clone();
    for n in names {
        out.insert(n.clone(), params[n].clone().autodiff().require_grad());
    }
    out
}

fn grads_of(
    tracked: &Params,
    names: &[String],
    grads: &burn::tensor::Gradients,
) -> Result<Vec<(String, Tensor<2>)>> {
    names
        .iter()
        .map(|n| {
            tracked[n]
                .grad(grads)
                .map(|g| (n.clone(), g))
                .ok_or_else(|| Error::Backend(format!("no gradient for {n}")))
        })
        .collect()
}

/// The state of training one chunk.
struct ChunkRun<'a> {
    cfg: &'a ModelConfig,
    d: &'a Dims,
    ctx: Ctx,
    chunk: usize,
    params: Params,
    generator: Vec<String>,
    critics: Vec<String>,
    adam_gen: Adam,
    adam_critic: Adam,
}

impl ChunkRun<'_> {
    fn batch(&self, real: &Real, rng: &mut ChaCha8Rng) -> (Tensor<2>, Tensor<2>) {
        let b = self.cfg.batch_size;
        let idx: Vec<i64> = (0..b).map(|_| rng.random_range(0..real.n) as i64).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [b]), &self.ctx.device);
        (
            real.records.clone().select(0, idx.clone()),
            real.attributes.clone().select(0, idx),
        )
    }

    /// One generator iteration: `critic_steps` critic updates, then one generator update.
    fn iteration(&mut self, real: &Real, it: u64, want_losses: bool) -> Result<Option<Losses>> {
        let (cfg, d) = (self.cfg, self.d);
        let b = cfg.batch_size;
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.seed, &[1, self.chunk as u64, it]));
        let mut losses = Losses::default();
        for k in 0..cfg.critic_steps {
            let (real_rec, real_attr) = self.batch(real, &mut rng);
            let (fake_attr, fake_rec) = generate(&self.params, d, noise(&self.ctx, d, &mut rng, b));
            let alpha = self.ctx.uniform(&mut rng, [b, 1]);
            let x_real = Tensor::cat(vec![real_rec, real_attr.clone()], 1);
            let x_fake = Tensor::cat(vec![fake_rec, fake_attr.clone()], 1);
            let w = d.critic_in();
            let mix = |r: Tensor<2>, f: Tensor<2>, width: usize| {
                let a = alpha.clone().expand([b, width]);
                r * a.clone() + f * (a.ones_like() - a)
            };
            let x_mix = mix(x_real.clone(), x_fake.clone(), w);
            let a_mix = mix(real_attr.clone(), fake_attr.clone(), d.attr);
            let tp = track(&self.params, &self.critics);
            let l = d.critic_layers;
            let (d_loss, d_gp) =
                nets::critic_loss_terms(&tp, "critic", l, x_real, x_fake, x_mix, cfg.gp_lambda);
            let (aux_loss, aux_gp) = nets::critic_loss_terms(
                &tp,
                "aux_critic",
                l,
                real_attr,
                fake_attr,
                a_mix,
                cfg.gp_lambda,
            );
            let total = d_loss.clone() + d_gp.clone() + aux_loss.clone() + aux_gp.clone();
            let grads = total.backward();
            let g = grads_of(&tp, &self.critics, &grads)?;
            self.adam_critic.step(cfg, &mut self.params, g);
            if want_losses && k + 1 == cfg.critic_steps {
                losses.d_loss = scalar(d_loss.without_autodiff(), "d_loss")?;
                losses.d_gp = scalar(d_gp.without_autodiff(), "d_gp")?;
                losses.aux_loss = scalar(aux_loss.without_autodiff(), "aux_loss")?;
                losses.aux_gp = scalar(aux_gp.without_autodiff(), "aux_gp")?;
            }
        }
        let tp = track(&self.params, &self.generator);
        let (fake_attr, fake_rec) = generate(&tp, d, noise(&self.ctx, d, &mut rng, b));
        let x_fake = Tensor::cat(vec![fake_rec, fake_attr.clone()], 1);
        let l = d.critic_layers;
        let g_loss = nets::critic(&tp, "critic", l, x_fake).mean().neg()
            - nets::critic(&tp, "aux_critic", l, fake_attr)
                .mean()
                .mul_scalar(cfg.aux_weight);
        let grads = g_loss.backward();
        let g = grads_of(&tp, &self.generator, &grads)?;
        self.adam_gen.step(cfg, &mut self.params, g);
        if want_losses {
            losses.g_loss = scalar(g_loss.without_autodiff(), "g_loss")?;
            let all = [
                losses.d_loss,
                losses.d_gp,
                losses.aux_loss,
                losses.aux_gp,
                losses.g_loss,
            ];
            if all.iter().any(|x| !x.is_finite()) {
                return Err(Error::Diverged {
                    chunk: self.chunk,
                    iteration: it + 1,
                    what: "critic or generator loss",
                });
            }
            return Ok(Some(losses));
        }
        Ok(None)
    }

    fn checkpoint_tensors(&self) -> Result<HostTensors> {
        let mut out = BTreeMap::new();
        for (k, v) in to_host(&self.params)? {
            out.insert(format!("param/{k}"), v);
        }
        for (tag, adam) in [("gen", &self.adam_gen), ("critic", &self.adam_critic)] {
            for (k, v) in to_host(&adam.m)? {
                out.insert(format!("adam_m/{tag}/{k}"), v);
            }
            for (k, v) in to_host(&adam.v)? {
                out.insert(format!("adam_v/{tag}/{k}"), v);
            }
        }
        Ok(out)
    }

    fn restore(&mut self, path: &Path, t: &HostTensors, it: u64) -> Result<()> {
        let pick = |prefix: &str, like: &Params| -> Result<Params> {
            let part: HostTensors = t
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(prefix).map(|s| (s.to_string(), v.clone())))
                .collect();
            let fits = part.len() == like.len()
                && like.iter().all(|(k, v)| {
                    part.get(k)
                        .is_some_and(|(shape, _)| shape.as_slice() == v.dims().as_slice())
                });
            if !fits {
                return Err(Error::Weights {
                    path: path.to_path_buf(),
                    message: format!("checkpoint tensors under {prefix:?} do not match the model"),
                });
            }
            Ok(to_device(&self.ctx, &part))
        };
        self.params = pick("param/", &self.params)?;
        self.adam_gen.m = pick("adam_m/gen/", &self.adam_gen.m)?;
        self.adam_gen.v = pick("adam_v/gen/", &self.adam_gen.v)?;
        self.adam_critic.m = pick("adam_m/critic/", &self.adam_critic.m)?;
        self.adam_critic.v = pick("adam_v/critic/", &self.adam_critic.v)?;
        self.adam_gen.t = it;
        self.adam_critic.t = it * self.cfg.critic_steps as u64;
        Ok(())
    }
}

/// A fingerprint of what a checkpoint belongs to, so a stale file is never resumed.
fn fingerprint(cfg: &ModelConfig, d: &Dims, chunk: usize, data: &ChunkTensors) -> String {
    let cfg_json = serde_json::to_string(cfg).expect("a config always serialises");
    let mut h: u64 = derive_seed(
        data.n as u64,
        &[chunk as u64, d.critic_in() as u64, d.steps as u64],
    );
    for b in cfg_json.bytes() {
        h = derive_seed(h, &[b as u64]);
    }
    let sample = data
        .attributes
        .iter()
        .chain(&data.features)
        .step_by(97)
        .take(4096);
    for x in sample {
        h = derive_seed(h, &[x.to_bits() as u64]);
    }
    format!("{h:016x}")
}

fn read_checkpoint(path: &Path, fp: &str) -> Result<Option<(HostTensors, u64, Vec<LogRow>)>> {
    if !path.exists() {
        return Ok(None);
    }
    let (t, meta) = weights::read(path)?;
    if meta.get("fingerprint").map(String::as_str) != Some(fp) {
        return Ok(None);
    }
    let bad = |m: &str| Error::Weights {
        path: path.to_path_buf(),
        message: m.to_string(),
    };
    let it: u64 = meta
        .get("iteration")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("metadata lacks a numeric 'iteration'"))?;
    let log = log_from_meta(meta.get("log").map(String::as_str).unwrap_or(""))
        .ok_or_else(|| bad("metadata 'log' is malformed"))?;
    Ok(Some((t, it, log)))
}

/// Log rows as text with every float as its bit pattern, so a resumed run's log is exact.
fn log_to_meta(log: &[LogRow]) -> String {
    let mut s = String::new();
    for r in log {
        let l = &r.losses;
        let secs = r
            .seconds
            .map_or("-".to_string(), |x| x.to_bits().to_string());
        s.push_str(&format!(
            "{} {} {} {} {} {} {} {secs}\n",
            r.chunk,
            r.iteration,
            l.d_loss.to_bits(),
            l.d_gp.to_bits(),
            l.aux_loss.to_bits(),
            l.aux_gp.to_bits(),
            l.g_loss.to_bits()
        ));
    }
    s
}

fn log_from_meta(text: &str) -> Option<Vec<LogRow>> {
    text.lines()
        .map(|line| {
            let w: Vec<&str> = line.split(' ').collect();
            if w.len() != 8 {
                return None;
            }
            let f = |i: usize| w[i].parse::<u32>().ok().map(f32::from_bits);
            Some(LogRow {
                chunk: w[0].parse().ok()?,
                iteration: w[1].parse().ok()?,
                losses: Losses {
                    d_loss: f(2)?,
                    d_gp: f(3)?,
                    aux_loss: f(4)?,
                    aux_gp: f(5)?,
                    g_loss: f(6)?,
                },
                seconds: match w[7] {
                    "-" => None,
                    x => Some(f64::from_bits(x.parse().ok()?)),
                },
            })
        })
        .collect()
}

fn write_checkpoint(path: &Path, fp: &str, t: &HostTensors, it: u64, log: &[LogRow]) -> Result<()> {
    let mut meta = BTreeMap::new();
    meta.insert("fingerprint".to_string(), fp.to_string());
    meta.insert("iteration".to_string(), it.to_string());
    meta.insert("log".to_string(), log_to_meta(log));
    weights::write(path, t, Some(meta))
}

/// What one chunk's training returns.
struct ChunkResult {
    weights: HostTensors,
    log: Vec<LogRow>,
    iterations: u64,
}

#[allow(clippy::too_many_arguments)]
fn train_chunk(
    cfg: &ModelConfig,
    d: &Dims,
    specs: &[Spec],
    opts: &TrainOptions,
    chunk: usize,
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
    let names = |g: &dyn Fn(Group) -> bool| -> Vec<String> {
        specs
            .iter()
            .filter(|s| g(s.group))
            .map(|s| s.name.clone())
            .collect()
    };
    let generator = names(&|g| g == Group::Generator);
    let critics = names(&|g| g != Group::Generator);
    let params = to_device(&ctx, start);
    let mut run = ChunkRun {
        cfg,
        d,
        adam_gen: Adam::new(&params, &generator),
        adam_critic: Adam::new(&params, &critics),
        ctx: ctx.clone(),
        chunk,
        params,
        generator,
        critics,
    };
    let mut log = Vec::new();
    let mut first = 0;
    if let Some(p) = &ckpt_path
        && let Some((t, it, rows)) = read_checkpoint(p, &fp)?
    {
        run.restore(p, &t, it)?;
        first = it;
        log = rows;
    }
    let real = Real {
        records: ctx.tensor(critic_records(data), [data.n, d.max_len * d.rec()]),
        attributes: ctx.tensor(data.attributes.clone(), [data.n, d.attr]),
        n: data.n,
    };
    let t0 = Instant::now();
    let base_seconds = log.last().and_then(|r: &LogRow| r.seconds).unwrap_or(0.0);
    bar.set_position(first);
    for it in first..iterations {
        if opts.stop_after == Some(it) {
            return Ok(None);
        }
        let done = it + 1;
        let want = done % cfg.log_every == 0 || done == iterations;
        if let Some(losses) = run.iteration(&real, it, want)? {
            bar.set_message(format!(
                "d {:+.3} gp {:.3} aux {:+.3} g {:+.3}",
                losses.d_loss, losses.d_gp, losses.aux_loss, losses.g_loss
            ));
            log.push(LogRow {
                chunk,
                iteration: done,
                losses,
                seconds: cfg
                    .log_wall_time
                    .then(|| base_seconds + t0.elapsed().as_secs_f64()),
            });
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
    let weights = to_host(&run.params)?;
    if let Some(p) = &final_path {
        write_checkpoint(p, &fp, &weights, iterations, &log)?;
    }
    bar.finish();
    Ok(Some(ChunkResult {
        weights,
        log,
        iterations,
    }))
}

/// Trains every chunk: chunk 0 from scratch, then the others in parallel from chunk 0's weights.
/// Returns `Ok(None)` only when [`TrainOptions::stop_after`] interrupted it.
pub fn train(cfg: &ModelConfig, encoded: &Encoded, opts: &TrainOptions) -> Result<Option<Trained>> {
    cfg.validate()?;
    encoded.check()?;
    let d = Dims::new(cfg, &encoded.layout, encoded.max_len()).map_err(Error::Input)?;
    let specs = nets::specs(&d);
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.seed, &[0]));
    let init = nets::init_host(&specs, &mut rng);
    let init: HostTensors = specs
        .iter()
        .map(|s| (s.name.clone(), (s.shape.to_vec(), init[&s.name].clone())))
        .collect();
    if let Some(dir) = &opts.checkpoint_dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    }
    let multi =
        MultiProgress::with_draw_target(if opts.progress && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
    let style = ProgressStyle::with_template("chunk {prefix} {bar:30} {pos}/{len} {per_sec} {msg}")
        .expect("the progress template is valid");
    let bar_for = |chunk: usize| {
        multi
            .add(ProgressBar::new(cfg.iterations_for(chunk)))
            .with_style(style.clone())
            .with_prefix(format!("{chunk:03}"))
    };
    let train_one = |chunk: usize, start: &HostTensors| -> Result<Option<ChunkResult>> {
        let data = &encoded.chunks[chunk];
        if data.n == 0 {
            return Ok(Some(ChunkResult {
                weights: start.clone(),
                log: Vec::new(),
                iterations: 0,
            }));
        }
        train_chunk(cfg, &d, &specs, opts, chunk, data, start, &bar_for(chunk))
    };
    let Some(first) = train_one(0, &init)? else {
        return Ok(None);
    };
    let rest: Vec<Result<Option<ChunkResult>>> = (1..encoded.chunks.len())
        .into_par_iter()
        .map(|c| train_one(c, &first.weights))
        .collect();
    let mut results = vec![first];
    for r in rest {
        match r? {
            Some(r) => results.push(r),
            None => return Ok(None),
        }
    }
    let chunks = results
        .iter()
        .enumerate()
        .map(|(i, r)| ChunkSummary {
            chunk: i,
            flows: encoded.chunks[i].n,
            iterations: r.iterations,
            initialised_from: if i == 0 {
                "scratch".into()
            } else {
                "chunk-000".into()
            },
            final_losses: r.log.last().map(|l| l.losses).unwrap_or_default(),
        })
        .collect();
    let model = ModelFile {
        format: MODEL_FORMAT.to_string(),
        config: cfg.clone(),
        layout: encoded.layout.clone(),
        max_len: d.max_len,
        chunks,
    };
    let log = results.iter().flat_map(|r| r.log.iter().cloned()).collect();
    let weights = results.into_iter().map(|r| r.weights).collect();
    Ok(Some(Trained {
        model,
        weights,
        log,
    }))
}

/// The training log as CSV text.
pub fn log_csv(log: &[LogRow], wall_time: bool) -> String {
    let mut s = String::from("chunk,iteration,d_loss,d_gp,aux_loss,aux_gp,g_loss");
    if wall_time {
        s.push_str(",seconds");
    }
    s.push('\n');
    for r in log {
        let l = &r.losses;
        s.push_str(&format!(
            "{},{},{},{},{},{},{}",
            r.chunk, r.iteration, l.d_loss, l.d_gp, l.aux_loss, l.aux_gp, l.g_loss
        ));
        if wall_time {
            s.push_str(&format!(",{:.3}", r.seconds.unwrap_or(0.0)));
        }
        s.push('\n');
    }
    s
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
/// of the training step; no checkpoints, no log).
pub fn measure_steps(
    cfg: &ModelConfig,
    encoded: &Encoded,
    device: Device,
    warmup: u64,
    iterations: u64,
) -> Result<StepTiming> {
    cfg.validate()?;
    encoded.check()?;
    let d = Dims::new(cfg, &encoded.layout, encoded.max_len()).map_err(Error::Input)?;
    let specs = nets::specs(&d);
    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.seed, &[0]));
    let init = nets::init_host(&specs, &mut rng);
    let host: HostTensors = specs
        .iter()
        .map(|s| (s.name.clone(), (s.shape.to_vec(), init[&s.name].clone())))
        .collect();
    let ctx = Ctx {
        device: device.clone(),
        dtype: DType::F32,
    };
    let data = encoded
        .chunks
        .first()
        .ok_or_else(|| Error::Input("no chunks".into()))?;
    let names = |g: &dyn Fn(Group) -> bool| -> Vec<String> {
        specs
            .iter()
            .filter(|s| g(s.group))
            .map(|s| s.name.clone())
            .collect()
    };
    let generator = names(&|g| g == Group::Generator);
    let critics = names(&|g| g != Group::Generator);
    let params = to_device(&ctx, &host);
    let mut run = ChunkRun {
        cfg,
        d: &d,
        adam_gen: Adam::new(&params, &generator),
        adam_critic: Adam::new(&params, &critics),
        ctx: ctx.clone(),
        chunk: 0,
        params,
        generator,
        critics,
    };
    let real = Real {
        records: ctx.tensor(critic_records(data), [data.n, d.max_len * d.rec()]),
        attributes: ctx.tensor(data.attributes.clone(), [data.n, d.attr]),
        n: data.n,
    };
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
