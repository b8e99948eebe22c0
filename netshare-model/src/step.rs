//! One training iteration of one chunk: the critic steps (both critics' gradients derived by
//! hand and computed side by side), the generator step, and the per-chunk state they update.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Int, Tensor, TensorData};
use netshare_core::tensors::ChunkTensors;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::adam::Adam;
use crate::config::ModelConfig;
use crate::data::critic_records;
use crate::ema::Ema;
use crate::error::{Error, Result};
use crate::features;
use crate::host::{floats, scalar, to_device, to_host};
use crate::log::Losses;
use crate::nets::{self, Ctx, Dims, Group, Params, Spec};
use crate::seed::derive_seed;
use crate::weights::HostTensors;
use crate::{heads, lstm};

/// One chunk's real data on the device.
pub(crate) struct Real {
    records: Tensor<2>,
    attributes: Tensor<2>,
    n: usize,
}

impl Real {
    /// The chunk's flows as the critic sees them.
    pub fn new(ctx: &Ctx, d: &Dims, data: &ChunkTensors) -> Real {
        Real {
            records: ctx.tensor(critic_records(data), [data.n, d.max_len * d.rec()]),
            attributes: ctx.tensor(data.attributes.clone(), [data.n, d.attr]),
            n: data.n,
        }
    }
}

/// Noise for one generator forward pass.
pub(crate) struct Noise {
    pub za: Tensor<2>,
    pub zf: Tensor<3>,
    pub h0: Tensor<2>,
    pub c0: Tensor<2>,
}

impl Noise {
    /// The noises of several batches stacked row-wise, in order.
    fn stack(all: Vec<Noise>) -> Noise {
        let mut za = Vec::with_capacity(all.len());
        let mut zf = Vec::with_capacity(all.len());
        let mut h0 = Vec::with_capacity(all.len());
        let mut c0 = Vec::with_capacity(all.len());
        for n in all {
            za.push(n.za);
            zf.push(n.zf);
            h0.push(n.h0);
            c0.push(n.c0);
        }
        Noise {
            za: Tensor::cat(za, 0),
            zf: Tensor::cat(zf, 0),
            h0: Tensor::cat(h0, 0),
            c0: Tensor::cat(c0, 0),
        }
    }
}

fn attr_noise(ctx: &Ctx, d: &Dims, rng: &mut ChaCha8Rng, b: usize) -> Tensor<2> {
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

/// Critic-ready flattened records `[rows, T * (F + 2)]` for the given rows of a batch whose
/// attributes are already generated (past the attributes' batch norm every row is independent).
fn records_for(
    params: &Params,
    d: &Dims,
    attrs: &Tensor<2>,
    n: &Noise,
    rows: std::ops::Range<usize>,
    lstm: LstmForm,
) -> Result<Tensor<2>> {
    let m = rows.len();
    let [_, a] = attrs.dims();
    let g = features::gen_features(
        params,
        d,
        attrs.clone().slice([rows.clone(), 0..a]),
        (
            n.zf.clone()
                .slice([rows.clone(), 0..d.steps, 0..d.feat_noise]),
            n.h0.clone().slice([rows.clone(), 0..d.lstm]),
            n.c0.clone().slice([rows, 0..d.lstm]),
        ),
        lstm,
    )?;
    Ok(g.records.reshape([m, d.max_len * d.rec()]))
}

/// Generated attributes `[B, A]` and critic-ready flattened records `[B, T * (F + 2)]`, for
/// `groups` equal batches stacked row-wise (batch norm per batch).
fn generate(
    params: &Params,
    d: &Dims,
    n: Noise,
    groups: usize,
    lstm: LstmForm,
) -> Result<(Tensor<2>, Tensor<2>)> {
    let attrs = nets::gen_attributes_grouped(params, d, n.za.clone(), groups);
    let [b, _] = attrs.dims();
    let records = records_for(params, d, &attrs, &n, 0..b, lstm)?;
    Ok((attrs, records))
}

/// [`generate`] without gradients. The LSTM's many small steps use one core each, so its rows
/// are split over two threads: by the fused LSTM itself, or here around the tensor form.
fn generate_plain(
    params: &Params,
    d: &Dims,
    n: Noise,
    groups: usize,
    lstm: LstmForm,
) -> Result<(Tensor<2>, Tensor<2>)> {
    if lstm != LstmForm::TensorOps {
        return generate(params, d, n, groups, lstm);
    }
    let attrs = nets::gen_attributes_grouped(params, d, n.za.clone(), groups);
    let [b, _] = attrs.dims();
    let (top, bottom) = rayon::join(
        || records_for(params, d, &attrs, &n, 0..b / 2, lstm),
        || records_for(params, d, &attrs, &n, b / 2..b, lstm),
    );
    Ok((attrs, Tensor::cat(vec![top?, bottom?], 0)))
}

/// The generator loss −mean D(x) − aux_weight · mean D_aux(a) on one fake batch, and the
/// gradients of a surrogate with the same gradient for everything upstream of `fake_attr` and
/// `fake_rec`. The critics are constants here: their input gradients (written out as forward
/// ops, the two critics side by side) seed the surrogate Σ x ⊙ ∂loss/∂x.
fn critic_surrogate(
    params: &Params,
    d: &Dims,
    cfg: &ModelConfig,
    fake_attr: Tensor<2>,
    fake_rec: Tensor<2>,
) -> (Tensor<1>, burn::tensor::Gradients) {
    let [b, _] = fake_attr.dims();
    let x_fake = Tensor::cat(vec![fake_rec, fake_attr.clone()], 1);
    let l = d.critic_layers;
    let (plain_x, plain_a) = (
        x_fake.clone().without_autodiff(),
        fake_attr.clone().without_autodiff(),
    );
    let ((d_out, d_grad), (a_out, a_grad)) = rayon::join(
        || nets::critic_with_input_grad(params, "critic", l, plain_x),
        || nets::critic_with_input_grad(params, "aux_critic", l, plain_a),
    );
    let scale = -1.0 / b as f64;
    let loss = d_out.mean().neg() - a_out.mean().mul_scalar(cfg.aux_weight);
    let surrogate = (x_fake * d_grad.mul_scalar(scale)).sum()
        + (fake_attr * a_grad.mul_scalar(scale * cfg.aux_weight)).sum();
    (loss, surrogate.backward())
}

/// The generator loss on one fake batch and its gradient for every generator parameter, in the
/// order of `generator`. With `fused`, autodiff starts at the LSTM's hidden states and
/// [`lstm::with_grads`] backpropagates the rest of the way by hand.
fn generator_grads(
    params: &Params,
    generator: &[String],
    d: &Dims,
    cfg: &ModelConfig,
    n: Noise,
    lstm: LstmForm,
) -> Result<(Tensor<1>, Vec<(String, Tensor<2>)>)> {
    if lstm == LstmForm::TensorOps {
        let tp = track(params, generator);
        let (fake_attr, fake_rec) = generate(&tp, d, n, 1, lstm)?;
        let (loss, grads) = critic_surrogate(params, d, cfg, fake_attr, fake_rec);
        return Ok((loss, grads_of(&tp, generator, &grads)?));
    }
    let graph: Vec<String> = generator
        .iter()
        .filter(|name| !lstm::PARAMS.contains(&name.as_str()))
        .cloned()
        .collect();
    let tp = track(params, &graph);
    let fake_attr = nets::gen_attributes(&tp, d, n.za);
    let [b, _] = fake_attr.dims();
    let cond = heads::harden(fake_attr.clone(), &d.attr_runs);
    let ((loss, mut grads), lstm_grads) = lstm::with_grads(
        params,
        d,
        (cond, n.zf, n.h0, n.c0),
        lstm == LstmForm::Fused,
        |hs| {
            let hs = hs.autodiff().require_grad();
            let fake_rec = features::features_from_states(&tp, d, hs.clone())
                .records
                .reshape([b, d.max_len * d.rec()]);
            let (loss, grads) = critic_surrogate(params, d, cfg, fake_attr, fake_rec);
            let dhs = hs
                .grad(&grads)
                .ok_or_else(|| Error::Backend("no gradient for the LSTM states".into()))?;
            Ok(((loss, grads_of(&tp, &graph, &grads)?), dhs))
        },
    )?;
    grads.extend(lstm_grads.params);
    let mut by_name: BTreeMap<String, Tensor<2>> = grads.into_iter().collect();
    let ordered = generator
        .iter()
        .map(|name| {
            by_name
                .remove(name)
                .map(|g| (name.clone(), g))
                .ok_or_else(|| Error::Backend(format!("no gradient for {name}")))
        })
        .collect::<Result<_>>()?;
    Ok((loss, ordered))
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

/// DP-SGD's gradient transform, the one place it touches a critic gradient: `grads` are the
/// mean of `rows` clipped per-example gradients (ignored when `rows` is 0); returns their sum
/// plus Gaussian noise of standard deviation `noise_std` (σ·C) per coordinate, divided by the
/// expected batch size.
pub(crate) fn privatise(
    ctx: &Ctx,
    grads: Vec<(String, Tensor<2>)>,
    rows: usize,
    expected_batch: usize,
    noise_std: f64,
    rng: &mut ChaCha8Rng,
) -> Vec<(String, Tensor<2>)> {
    use rayon::prelude::*;
    let expected = expected_batch as f64;
    // One seed per tensor, drawn in order, so the tensors' noise is drawn in parallel and the
    // result does not depend on the thread count.
    let seeds: Vec<u64> = grads.iter().map(|_| rng.random()).collect();
    grads
        .into_par_iter()
        .zip(seeds)
        .map(|((name, g), seed)| {
            let shape = g.dims();
            let g = if rows == 0 {
                g.zeros_like()
            } else {
                g.mul_scalar(rows as f64 / expected)
            };
            let g = if noise_std > 0.0 {
                let mut r = ChaCha8Rng::seed_from_u64(seed);
                g + ctx.normal(&mut r, shape).mul_scalar(noise_std / expected)
            } else {
                g
            };
            (name, g)
        })
        .collect()
}

/// How the feature generator's LSTM runs on a device whose tensors live in host memory (other
/// devices always use tensor ops).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LstmForm {
    /// Host loops and large matmuls, gradients derived by hand, each row's steps only until its
    /// generated flow has ended (the default). The later records are masked out of training,
    /// so this trains exactly the bytes [`LstmForm::FusedFull`] trains.
    #[default]
    Fused,
    /// [`LstmForm::Fused`] over every step (for benchmarks and the test that both train the
    /// same bytes).
    FusedFull,
    /// Tensor ops differentiated by autodiff (the reference form; for benchmarks).
    TensorOps,
}

/// The state of training one chunk.
pub(crate) struct ChunkRun<'a> {
    cfg: &'a ModelConfig,
    d: &'a Dims,
    ctx: Ctx,
    chunk: usize,
    pub params: Params,
    generator: Vec<String>,
    critics: Vec<String>,
    adam_gen: Adam,
    adam_critic: Adam,
    /// How the LSTM runs: in host loops only where tensors live in host memory.
    lstm: LstmForm,
    /// DP-SGD's Poisson sampling rate for this chunk, set from its released count (`None`:
    /// batch size / flows, for benchmarks).
    pub dp_rate: Option<f64>,
    /// The moving average of the generator's parameters (`ema_decay` > 0).
    ema: Option<Ema>,
}

impl<'a> ChunkRun<'a> {
    /// Fresh optimiser state around the weights `start`.
    pub fn new(
        cfg: &'a ModelConfig,
        d: &'a Dims,
        specs: &[Spec],
        ctx: Ctx,
        chunk: usize,
        start: &HostTensors,
        lstm: LstmForm,
    ) -> ChunkRun<'a> {
        let names = |critic: bool| -> Vec<String> {
            specs
                .iter()
                .filter(|s| (s.group != Group::Generator) == critic)
                .map(|s| s.name.clone())
                .collect()
        };
        let (generator, critics) = (names(false), names(true));
        let params = to_device(&ctx, start);
        let fused = nets::on_host(&ctx.device);
        let ema = (cfg.ema_decay > 0.0).then(|| Ema::new(cfg.ema_decay, start, &generator));
        ChunkRun {
            cfg,
            d,
            adam_gen: Adam::new(&params, &generator, fused),
            adam_critic: Adam::new(&params, &critics, fused),
            ctx,
            chunk,
            params,
            generator,
            critics,
            lstm: if fused { lstm } else { LstmForm::TensorOps },
            dp_rate: None,
            ema,
        }
    }

    /// The weights a chunk ends with at this point, in host memory: the parameters, with the
    /// generator's moving averages in place of its raw weights when `ema_decay` is set.
    pub fn output_weights(&self) -> Result<HostTensors> {
        let all = to_host(&self.params)?;
        Ok(match &self.ema {
            Some(e) => e.weights(all),
            None => all,
        })
    }

    fn batch(&self, real: &Real, rng: &mut ChaCha8Rng) -> (Tensor<2>, Tensor<2>) {
        let b = self.cfg.batch_size;
        let idx: Vec<i64> = (0..b).map(|_| rng.random_range(0..real.n) as i64).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [b]), &self.ctx.device);
        (
            real.records.clone().select(0, idx.clone()),
            real.attributes.clone().select(0, idx),
        )
    }

    /// `groups` batches of generated flows, without gradients, as the critics see them:
    /// attributes `[n, A]` and flattened records `[n, T · (F + 2)]` on the host, from the
    /// weights the chunk would end with now ([`Self::output_weights`]). Drawn from `seed`
    /// alone, and nothing in the run changes, so training goes on exactly as without it.
    pub fn sample_for_score(&self, groups: usize, seed: u64) -> Result<(Vec<f32>, Vec<f32>)> {
        let b = self.cfg.batch_size;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = noise(&self.ctx, self.d, &mut rng, b * groups);
        let averaged;
        let params = match &self.ema {
            Some(e) => {
                let mut p = self.params.clone();
                p.extend(to_device(&self.ctx, e.values()));
                averaged = p;
                &averaged
            }
            None => &self.params,
        };
        let (a, r) = generate_plain(params, self.d, n, groups, self.lstm)?;
        Ok((
            floats(a, "generated attributes")?,
            floats(r, "generated records")?,
        ))
    }

    /// Rows of a Poisson sample of the chunk: each flow is in it with probability `q`,
    /// independently (what the DP-SGD accountant assumes).
    fn poisson_rows(n: usize, q: f64, rng: &mut ChaCha8Rng) -> Vec<i64> {
        (0..n)
            .filter(|_| rng.random::<f64>() < q)
            .map(|i| i as i64)
            .collect()
    }

    /// The critic updates of one DP-SGD iteration: each samples the real flows by Poisson
    /// sampling at rate `batch_size / flows`, pairs them with as many generated flows, clips
    /// each example's gradient over both critics and adds noise ([`privatise`]). Every step's
    /// fakes come from one generator pass, in groups of the largest sample (at least a batch,
    /// for batch norm); a step uses the first rows of its group. The critic losses are not
    /// reported: they are computed on the private batch outside the mechanism.
    fn private_critic_steps(
        &mut self,
        real: &Real,
        rng: &mut ChaCha8Rng,
        want_losses: bool,
        losses: &mut Losses,
    ) -> Result<()> {
        let (cfg, d) = (self.cfg, self.d);
        let dp = cfg.dp.as_ref().expect("private steps run only with dp set");
        let q = self
            .dp_rate
            .unwrap_or_else(|| (cfg.batch_size as f64 / real.n as f64).min(1.0));
        // Each critic gets half the squared bound, so the joint norm stays within C.
        let clip = nets::Clip {
            norm: dp.clip_norm / std::f64::consts::SQRT_2,
        };
        let steps = cfg.critic_steps;
        let samples: Vec<Vec<i64>> = (0..steps)
            .map(|_| Self::poisson_rows(real.n, q, rng))
            .collect();
        let group = samples
            .iter()
            .map(Vec::len)
            .max()
            .unwrap_or(0)
            .max(cfg.batch_size);
        let mut noises = Vec::with_capacity(steps);
        let mut alphas = Vec::with_capacity(steps);
        for s in &samples {
            noises.push(noise(&self.ctx, d, rng, group));
            alphas.push(self.ctx.uniform(rng, [s.len().max(1), 1]));
        }
        let (fake_attr_all, fake_rec_all) =
            generate_plain(&self.params, d, Noise::stack(noises), steps, self.lstm)?;
        for (k, (rows, alpha)) in samples.into_iter().zip(alphas).enumerate() {
            let m = rows.len();
            let mut g = Vec::new();
            if m > 0 {
                let fakes = k * group..k * group + m;
                let fake_attr = fake_attr_all.clone().slice([fakes.clone(), 0..d.attr]);
                let fake_rec = fake_rec_all.clone().slice([fakes, 0..d.max_len * d.rec()]);
                let idx = Tensor::<1, Int>::from_data(TensorData::new(rows, [m]), &self.ctx.device);
                let real_rec = real.records.clone().select(0, idx.clone());
                let real_attr = real.attributes.clone().select(0, idx);
                let x_real = Tensor::cat(vec![real_rec, real_attr.clone()], 1);
                let x_fake = Tensor::cat(vec![fake_rec, fake_attr.clone()], 1);
                let mix = |r: Tensor<2>, f: Tensor<2>, width: usize| {
                    let a = alpha.clone().expand([m, width]);
                    r * a.clone() + f * (a.ones_like() - a)
                };
                let x_mix = mix(x_real.clone(), x_fake.clone(), d.critic_in());
                let a_mix = mix(real_attr.clone(), fake_attr.clone(), d.attr);
                let (l, params) = (d.critic_layers, &self.params);
                let pass = |prefix: &str, real: Tensor<2>, fake: Tensor<2>, mix: Tensor<2>| {
                    nets::critic_loss_grads(
                        params,
                        prefix,
                        l,
                        real,
                        fake,
                        mix,
                        cfg.gp_lambda,
                        Some(clip),
                    )
                };
                let (main, aux) = rayon::join(
                    || pass("critic", x_real, x_fake, x_mix),
                    || pass("aux_critic", real_attr, fake_attr, a_mix),
                );
                g = main.grads;
                g.extend(aux.grads);
            } else {
                // No example drawn: the update is noise alone.
                for name in &self.critics {
                    g.push((name.clone(), self.params[name].clone()));
                }
            }
            let sigma = dp
                .noise_multiplier
                .expect("the noise multiplier is resolved before training");
            let g = privatise(&self.ctx, g, m, cfg.batch_size, sigma * dp.clip_norm, rng);
            self.adam_critic.step(cfg, &self.ctx, &mut self.params, g)?;
        }
        if want_losses {
            losses.d_loss = f32::NAN;
            losses.d_gp = f32::NAN;
            losses.aux_loss = f32::NAN;
            losses.aux_gp = f32::NAN;
        }
        Ok(())
    }

    /// One generator iteration: `critic_steps` critic updates, then one generator update.
    pub fn iteration(&mut self, real: &Real, it: u64, want_losses: bool) -> Result<Option<Losses>> {
        let (cfg, d) = (self.cfg, self.d);
        let b = cfg.batch_size;
        let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.seed, &[1, self.chunk as u64, it]));
        let mut losses = Losses::default();
        if cfg.dp.is_some() {
            self.private_critic_steps(real, &mut rng, want_losses, &mut losses)?;
            return self.generator_step(&mut rng, it, want_losses, losses);
        }
        // Every critic step's draws first, in the order a step-by-step loop takes them; then one
        // generator pass makes all the steps' fake batches (the generator does not change during
        // the critic steps, and batch norm keeps one batch's statistics per step).
        let steps = cfg.critic_steps;
        let mut draws = Vec::with_capacity(steps);
        let mut noises = Vec::with_capacity(steps);
        for _ in 0..steps {
            let batch = self.batch(real, &mut rng);
            noises.push(noise(&self.ctx, d, &mut rng, b));
            draws.push((batch, self.ctx.uniform(&mut rng, [b, 1])));
        }
        let (fake_attr_all, fake_rec_all) =
            generate_plain(&self.params, d, Noise::stack(noises), steps, self.lstm)?;
        for (k, ((real_rec, real_attr), alpha)) in draws.into_iter().enumerate() {
            let rows = k * b..(k + 1) * b;
            let fake_attr = fake_attr_all.clone().slice([rows.clone(), 0..d.attr]);
            let fake_rec = fake_rec_all.clone().slice([rows, 0..d.max_len * d.rec()]);
            let x_real = Tensor::cat(vec![real_rec, real_attr.clone()], 1);
            let x_fake = Tensor::cat(vec![fake_rec, fake_attr.clone()], 1);
            let w = d.critic_in();
            let mix = |r: Tensor<2>, f: Tensor<2>, width: usize| {
                let a = alpha.clone().expand([b, width]);
                r * a.clone() + f * (a.ones_like() - a)
            };
            let x_mix = mix(x_real.clone(), x_fake.clone(), w);
            let a_mix = mix(real_attr.clone(), fake_attr.clone(), d.attr);
            let l = d.critic_layers;
            // The two critics share no parameter, so their passes run side by side.
            let params = &self.params;
            let pass = |prefix: &str, real: Tensor<2>, fake: Tensor<2>, mix: Tensor<2>| {
                nets::critic_loss_grads(params, prefix, l, real, fake, mix, cfg.gp_lambda, None)
            };
            let (main, aux) = rayon::join(
                || pass("critic", x_real, x_fake, x_mix),
                || pass("aux_critic", real_attr, fake_attr, a_mix),
            );
            let (d_loss, d_gp, mut g) = (main.w_term, main.gp, main.grads);
            let (aux_loss, aux_gp, g_aux) = (aux.w_term, aux.gp, aux.grads);
            g.extend(g_aux);
            self.adam_critic.step(cfg, &self.ctx, &mut self.params, g)?;
            if want_losses && k + 1 == cfg.critic_steps {
                losses.d_loss = scalar(d_loss.without_autodiff(), "d_loss")?;
                losses.d_gp = scalar(d_gp.without_autodiff(), "d_gp")?;
                losses.aux_loss = scalar(aux_loss.without_autodiff(), "aux_loss")?;
                losses.aux_gp = scalar(aux_gp.without_autodiff(), "aux_gp")?;
            }
        }
        self.generator_step(&mut rng, it, want_losses, losses)
    }

    /// The generator update that ends an iteration, and the iteration's losses.
    fn generator_step(
        &mut self,
        rng: &mut ChaCha8Rng,
        it: u64,
        want_losses: bool,
        mut losses: Losses,
    ) -> Result<Option<Losses>> {
        let (cfg, d) = (self.cfg, self.d);
        let n = noise(&self.ctx, d, rng, cfg.batch_size);
        let (g_loss, g) = generator_grads(&self.params, &self.generator, d, cfg, n, self.lstm)?;
        self.adam_gen.step(cfg, &self.ctx, &mut self.params, g)?;
        if let Some(e) = &mut self.ema {
            e.update(&self.params, self.adam_gen.t - 1)?;
        }
        if want_losses {
            losses.g_loss = scalar(g_loss.without_autodiff(), "g_loss")?;
            // A private run has no critic losses to check (they are not computed outside the
            // mechanism); the generator loss is.
            let critic = [losses.d_loss, losses.d_gp, losses.aux_loss, losses.aux_gp];
            let critic_bad = cfg.dp.is_none() && critic.iter().any(|x| !x.is_finite());
            if critic_bad || !losses.g_loss.is_finite() {
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

    pub fn checkpoint_tensors(&self) -> Result<HostTensors> {
        let mut out = BTreeMap::new();
        for (k, v) in to_host(&self.params)? {
            out.insert(format!("param/{k}"), v);
        }
        for (tag, adam) in [("gen", &self.adam_gen), ("critic", &self.adam_critic)] {
            let (m, v) = adam.moments()?;
            for (k, x) in m {
                out.insert(format!("adam_m/{tag}/{k}"), x);
            }
            for (k, x) in v {
                out.insert(format!("adam_v/{tag}/{k}"), x);
            }
        }
        if let Some(e) = &self.ema {
            for (k, x) in e.values() {
                out.insert(format!("ema/{k}"), x.clone());
            }
        }
        Ok(out)
    }

    pub fn restore(&mut self, path: &Path, t: &HostTensors, it: u64) -> Result<()> {
        let pick = |prefix: &str, like: &BTreeMap<String, Vec<usize>>| -> Result<HostTensors> {
            let part: HostTensors = t
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(prefix).map(|s| (s.to_string(), v.clone())))
                .collect();
            let fits = part.len() == like.len()
                && like
                    .iter()
                    .all(|(k, want)| part.get(k).is_some_and(|(shape, _)| shape == want));
            if !fits {
                return Err(Error::Weights {
                    path: path.to_path_buf(),
                    message: format!("checkpoint tensors under {prefix:?} do not match the model"),
                });
            }
            Ok(part)
        };
        let shapes: BTreeMap<String, Vec<usize>> = self
            .params
            .iter()
            .map(|(k, t)| (k.clone(), t.dims().to_vec()))
            .collect();
        self.params = to_device(&self.ctx, &pick("param/", &shapes)?);
        let (gen_shapes, critic_shapes) = (self.adam_gen.shapes(), self.adam_critic.shapes());
        self.adam_gen.set_moments(
            &self.ctx,
            pick("adam_m/gen/", &gen_shapes)?,
            pick("adam_v/gen/", &gen_shapes)?,
        );
        self.adam_critic.set_moments(
            &self.ctx,
            pick("adam_m/critic/", &critic_shapes)?,
            pick("adam_v/critic/", &critic_shapes)?,
        );
        self.adam_gen.t = it;
        self.adam_critic.t = it * self.cfg.critic_steps as u64;
        if let Some(e) = &mut self.ema {
            e.set_values(pick("ema/", &gen_shapes)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Profile;
    use burn::tensor::{DType, Device};

    fn f64_setup() -> (ModelConfig, Dims, Ctx, Params, Vec<String>) {
        setup(DType::F64)
    }

    fn setup(dtype: DType) -> (ModelConfig, Dims, Ctx, Params, Vec<String>) {
        let cfg = ModelConfig::profile(Profile::Tiny);
        let enc = crate::testing::two_flow_types(8, 1, 3);
        let d = Dims::new(&cfg, &enc.layout, enc.max_len()).expect("dims");
        let specs = nets::specs(&d);
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let host = nets::init_host(&specs, &mut rng);
        let ctx = Ctx {
            device: Device::flex(),
            dtype,
        };
        let params: Params = specs
            .iter()
            .map(|s| {
                let v: Vec<f64> = host[&s.name].1.iter().map(|&x| f64::from(x)).collect();
                (s.name.clone(), ctx.tensor(v, s.shape))
            })
            .collect();
        let generator: Vec<String> = specs
            .iter()
            .filter(|s| s.group == Group::Generator)
            .map(|s| s.name.clone())
            .collect();
        (cfg, d, ctx, params, generator)
    }

    fn f64s<const D: usize>(t: Tensor<D>) -> Vec<f64> {
        t.try_into_vec_as::<f64>().expect("f64")
    }

    /// The critic steps' fake batches (one grouped pass, rows split over threads, the LSTM fused
    /// or not) against one tensor-form pass per batch.
    #[test]
    fn one_grouped_row_split_generator_pass_equals_separate_passes_in_f64() {
        let (_, d, ctx, params, _) = f64_setup();
        let draws = || {
            let mut rng = ChaCha8Rng::seed_from_u64(4);
            (0..3)
                .map(|_| noise(&ctx, &d, &mut rng, 5))
                .collect::<Vec<Noise>>()
        };
        let (mut a_sep, mut r_sep) = (Vec::new(), Vec::new());
        for n in draws() {
            let (a, r) = generate(&params, &d, n, 1, LstmForm::TensorOps).expect("generate");
            a_sep.extend(f64s(a));
            r_sep.extend(f64s(r));
        }
        let close = |x: &[f64], y: &[f64]| {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| (a - b).abs() <= 1e-12)
        };
        for lstm in [LstmForm::TensorOps, LstmForm::FusedFull, LstmForm::Fused] {
            let (attrs, recs) =
                generate_plain(&params, &d, Noise::stack(draws()), 3, lstm).expect("generate");
            assert!(close(&f64s(attrs), &a_sep), "attributes differ ({lstm:?})");
            assert!(close(&f64s(recs), &r_sep), "records differ ({lstm:?})");
        }
        // Statistics over all rows at once would differ: the grouping is doing something.
        let (pooled, _) =
            generate(&params, &d, Noise::stack(draws()), 1, LstmForm::TensorOps).expect("generate");
        assert!(!close(&f64s(pooled), &a_sep));
    }

    /// The critics' fake batches with each flow's LSTM, output layer and heads run only until
    /// the flow has ended are the bits of the pass over every step, in f32 (training) and f64.
    #[test]
    fn fake_batches_from_the_steps_each_flow_ran_have_the_full_passes_bits() {
        for dtype in [DType::F32, DType::F64] {
            let (_, d, ctx, params, _) = setup(dtype);
            let draws = || {
                let mut rng = ChaCha8Rng::seed_from_u64(5);
                Noise::stack((0..3).map(|_| noise(&ctx, &d, &mut rng, 40)).collect())
            };
            let (a_full, r_full) =
                generate_plain(&params, &d, draws(), 3, LstmForm::FusedFull).expect("full");
            let (a_run, r_run) =
                generate_plain(&params, &d, draws(), 3, LstmForm::Fused).expect("stopping");
            assert_eq!(f64s(a_run), f64s(a_full), "{dtype:?}: attributes");
            let (full, run) = (f64s(r_full), f64s(r_run));
            assert_eq!(
                run.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                full.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                "{dtype:?}: records"
            );
            // Some flows ended before the last step, so some records were not computed.
            let rec = d.rec();
            let ended = full
                .chunks(rec)
                .filter(|r| r.iter().all(|x| *x == 0.0))
                .count();
            assert!(ended > 0, "{dtype:?}: no flow ended early");
        }
    }

    /// The surrogate's gradient for every generator parameter against plain autodiff through
    /// both critics, in f64, on the two-flow-type layout with the tiny profile's sizes; with the
    /// LSTM as tensor ops and fused (its gradients by hand).
    #[test]
    fn generator_gradients_through_the_surrogate_equal_direct_autodiff_in_f64() {
        for lstm in [LstmForm::TensorOps, LstmForm::FusedFull, LstmForm::Fused] {
            surrogate_gradients_equal_direct_autodiff(lstm);
        }
    }

    fn surrogate_gradients_equal_direct_autodiff(lstm: LstmForm) {
        let (cfg, d, ctx, params, generator) = f64_setup();
        let b = 6;
        let draw = || noise(&ctx, &d, &mut ChaCha8Rng::seed_from_u64(21), b);
        let (loss, fast) =
            generator_grads(&params, &generator, &d, &cfg, draw(), lstm).expect("grads");
        let tp = track(&params, &generator);
        let (fake_attr, fake_rec) =
            generate(&tp, &d, draw(), 1, LstmForm::TensorOps).expect("generate");
        let x_fake = Tensor::cat(vec![fake_rec, fake_attr.clone()], 1);
        let l = d.critic_layers;
        let direct = nets::critic(&tp, "critic", l, x_fake).mean().neg()
            - nets::critic(&tp, "aux_critic", l, fake_attr)
                .mean()
                .mul_scalar(cfg.aux_weight);
        let grads = direct.clone().backward();
        let slow = grads_of(&tp, &generator, &grads).expect("direct grads");
        let v = |t: Tensor<1>| t.without_autodiff().try_into_vec_as::<f64>().expect("f64")[0];
        let (a, b) = (v(loss), v(direct));
        assert!((a - b).abs() <= 1e-12 * a.abs().max(1.0), "loss {a} vs {b}");
        assert_eq!(fast.len(), slow.len());
        let mut worst: f64 = 0.0;
        let mut nonzero = 0;
        for ((n1, g1), (n2, g2)) in fast.into_iter().zip(slow) {
            assert_eq!(n1, n2);
            let (g1, g2) = (f64s(g1), f64s(g2));
            for (x, y) in g1.iter().zip(&g2) {
                worst = worst.max((x - y).abs() / x.abs().max(y.abs()).max(1e-6));
                nonzero += usize::from(y.abs() > 1e-6);
            }
        }
        assert!(
            worst <= 1e-9,
            "worst relative difference {worst:e} ({lstm:?})"
        );
        assert!(nonzero > 100, "only {nonzero} non-zero entries");
    }
}

#[cfg(test)]
mod dp_tests {
    use super::*;
    use burn::tensor::{DType, Device};

    fn ctx() -> Ctx {
        Ctx {
            device: Device::flex(),
            dtype: DType::F64,
        }
    }

    fn values(t: &Tensor<2>) -> Vec<f64> {
        t.clone().try_into_vec_as::<f64>().expect("read back")
    }

    /// The noise added to a gradient has mean 0 and standard deviation σ·C / B: checked on
    /// 120,000 draws of a fixed seed (the sample standard deviation's own error is about 0.2%).
    #[test]
    fn the_noise_has_the_stated_scale() {
        let c = ctx();
        let g = vec![
            ("a".to_string(), c.tensor(vec![0.0; 300 * 200], [300, 200])),
            ("b".to_string(), c.tensor(vec![0.0; 600 * 100], [600, 100])),
        ];
        let (sigma, clip, batch) = (1.3, 0.7, 50);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let out = privatise(&c, g, 0, batch, sigma * clip, &mut rng);
        let v: Vec<f64> = out.iter().flat_map(|(_, t)| values(t)).collect();
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
        let want = sigma * clip / batch as f64;
        assert!(mean.abs() < 4.0 * want / n.sqrt(), "mean {mean}");
        assert!((sd / want - 1.0).abs() < 0.01, "sd {sd} vs {want}");
    }

    /// Without noise the transform turns the mean of `rows` clipped gradients into their sum
    /// over the expected batch size, and an empty sample into a zero update.
    #[test]
    fn without_noise_the_mean_becomes_the_sum_over_the_expected_batch() {
        let c = ctx();
        let g = || vec![("w".to_string(), c.tensor(vec![2.0, -4.0], [1, 2]))];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let out = privatise(&c, g(), 3, 12, 0.0, &mut rng);
        assert_eq!(values(&out[0].1), vec![0.5, -1.0]);
        let out = privatise(&c, g(), 0, 12, 0.0, &mut rng);
        assert_eq!(values(&out[0].1), vec![0.0, 0.0]);
    }

    /// Poisson sampling draws each row independently at rate q: the mean size is q·n.
    #[test]
    fn poisson_samples_have_the_expected_size() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let sizes: Vec<usize> = (0..400)
            .map(|_| ChunkRun::poisson_rows(1000, 0.05, &mut rng).len())
            .collect();
        let mean = sizes.iter().sum::<usize>() as f64 / sizes.len() as f64;
        // Binomial(1000, 0.05): sd 6.9, so the mean of 400 has sd 0.34.
        assert!((mean - 50.0).abs() < 1.5, "mean sample size {mean}");
        assert!(sizes.iter().any(|&s| s != sizes[0]), "sizes vary");
    }
}
