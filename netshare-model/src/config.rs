//! The typed model configuration and its named profiles (`netshare`, `default`, `tiny`).
//!
//! A config is written as a profile name plus overrides, e.g. `{"profile": "tiny",
//! "iterations": 300}`. Deserialising resolves it into a [`ModelConfig`] with every field
//! filled in, so the canonical JSON that keys a store run names every hyperparameter.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A named set of hyperparameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Small networks that reach useful fidelity in minutes on two CPU cores for 1k-10k flows.
    #[default]
    Default,
    /// The paper's sizes: 5x512 MLPs, LSTM 100, batch 100, lr 1e-4, 400k generator steps.
    Netshare,
    /// Very small and short: for continuous integration and smoke tests.
    Tiny,
}

impl Profile {
    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Default => "default",
            Profile::Netshare => "netshare",
            Profile::Tiny => "tiny",
        }
    }
}

/// Which weights a chunk's training ends with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    /// The weights of the last iteration.
    #[default]
    Last,
    /// The weights at the scored iteration (each checkpoint and the last) with the lowest quick
    /// quality score (`crate::quality`); the earliest on a tie.
    Best,
}

/// DP-SGD on both critics (`dp` in the model config).
///
/// Each critic update samples the chunk's real flows by Poisson sampling at rate
/// `batch_size / flows`, clips each example's gradient over both critics to L2 norm
/// `clip_norm` (each critic to `clip_norm / √2`), sums, adds Gaussian noise of standard deviation
/// `noise_multiplier · clip_norm` to every coordinate, and divides by the expected batch size.
/// The generator sees the real data only through the critics. Give the noise multiplier, or
/// a target ε for which it is chosen (at `delta`, for the planned steps of every chunk).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpConfig {
    /// Bound on each example's gradient norm over both critics.
    #[serde(default = "default_clip")]
    pub clip_norm: f64,
    /// Noise standard deviation / `clip_norm` (σ). Filled in from `target_epsilon` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_multiplier: Option<f64>,
    /// The ε the run must stay within; σ is chosen for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_epsilon: Option<f64>,
    /// δ of the guarantee.
    #[serde(default = "default_delta")]
    pub delta: f64,
    /// Standard deviation of the Gaussian noise on each chunk's released flow count (the count
    /// synthesis generates from). A flow may appear in every chunk, so the counts' L2
    /// sensitivity is √chunks; the accountant composes this release with the training steps.
    #[serde(default = "default_count_noise")]
    pub count_noise: f64,
}

fn default_clip() -> f64 {
    1.0
}

fn default_count_noise() -> f64 {
    10.0
}

fn default_delta() -> f64 {
    1e-5
}

impl DpConfig {
    /// Checks the values (σ or a target ε, positive bounds, δ in (0, 1)).
    pub fn validate(&self) -> Result<()> {
        if !(self.clip_norm.is_finite() && self.clip_norm > 0.0) {
            return Err(Error::Config(format!(
                "dp.clip_norm must be a positive number, got {}",
                self.clip_norm
            )));
        }
        if !(self.count_noise.is_finite() && self.count_noise > 0.0) {
            return Err(Error::Config(format!(
                "dp.count_noise must be a positive number of flows, got {}",
                self.count_noise
            )));
        }
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return Err(Error::Config(format!(
                "dp.delta must be in (0, 1), got {}",
                self.delta
            )));
        }
        match (self.noise_multiplier, self.target_epsilon) {
            (None, None) => Err(Error::Config(
                "dp needs noise_multiplier or target_epsilon (the ε to stay within)".into(),
            )),
            (Some(s), _) if !(s.is_finite() && s >= 0.0) => Err(Error::Config(format!(
                "dp.noise_multiplier must be a non-negative number, got {s}"
            ))),
            (_, Some(e)) if !(e.is_finite() && e > 0.0) => Err(Error::Config(format!(
                "dp.target_epsilon must be a positive number, got {e}"
            ))),
            _ => Ok(()),
        }
    }
}

/// Every hyperparameter of DoppelGANger as this crate trains it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, try_from = "ConfigOverrides")]
pub struct ModelConfig {
    /// The profile the other values started from.
    pub profile: Profile,
    /// Seed of every random draw (initial weights, noise, batches, interpolation weights).
    pub seed: u64,
    /// Noise dimensions of the attribute generator.
    pub attr_noise_dim: usize,
    /// Noise dimensions per LSTM step of the feature generator.
    pub feat_noise_dim: usize,
    /// Hidden units per layer of the attribute generator.
    pub gen_hidden: usize,
    /// Hidden layers (linear, batch norm, ReLU) of the attribute generator.
    pub gen_layers: usize,
    /// LSTM units of the feature generator.
    pub lstm_hidden: usize,
    /// Hidden units per layer of both critics.
    pub critic_hidden: usize,
    /// Hidden layers of both critics.
    pub critic_layers: usize,
    /// Samples per batch.
    pub batch_size: usize,
    /// Critic updates per generator update.
    pub critic_steps: usize,
    /// Gradient penalty weight λ (both critics).
    pub gp_lambda: f64,
    /// Weight of the auxiliary (attribute) critic in the generator loss.
    pub aux_weight: f64,
    /// Adam learning rate (all three networks).
    pub lr: f64,
    /// Adam β1.
    pub beta1: f64,
    /// Adam β2.
    pub beta2: f64,
    /// Generator steps for chunk 0.
    pub iterations: u64,
    /// Fraction of `iterations` that every later chunk fine-tunes from chunk 0's weights.
    pub fine_tune_fraction: f64,
    /// Generator steps between checkpoints (0: no checkpoints).
    pub checkpoint_every: u64,
    /// Generator steps between rows of the training log.
    pub log_every: u64,
    /// Add a wall-clock `seconds` column to `train-log.csv` (makes that file differ run to run).
    pub log_wall_time: bool,
    /// Wall-clock seconds chunk 0 may train for: it stops at the first logged iteration past
    /// the budget (or at `iterations`, whichever comes first), and every later chunk fine-tunes
    /// for `fine_tune_fraction` of the steps chunk 0 reached. The step count then depends on
    /// the machine, so `model.json` records it as `iterations` with no budget: training again
    /// with that config gives the same bytes. `None`: no budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_budget_seconds: Option<f64>,
    /// Which weights each chunk ends with: the last iteration's, or the best-scoring
    /// checkpoint's ([`Keep`]).
    #[serde(skip_serializing_if = "is_last")]
    pub keep: Keep,
    /// Decay of the exponential moving average of the generator's parameters (`crate::ema`),
    /// whose averaged weights are sampled from, scored and written; 0: no average (the raw
    /// weights). In [0, 1).
    #[serde(skip_serializing_if = "is_zero")]
    pub ema_decay: f64,
    /// DP-SGD on the critics ([`DpConfig`]); `None`: ordinary training.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dp: Option<DpConfig>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig::profile(Profile::Default)
    }
}

impl ModelConfig {
    /// The full config of a profile.
    pub fn profile(profile: Profile) -> Self {
        let base = ModelConfig {
            profile,
            seed: 0,
            attr_noise_dim: 5,
            feat_noise_dim: 5,
            gen_hidden: 512,
            gen_layers: 5,
            lstm_hidden: 100,
            critic_hidden: 512,
            critic_layers: 5,
            batch_size: 100,
            critic_steps: 5,
            gp_lambda: 10.0,
            aux_weight: 1.0,
            lr: 1e-4,
            beta1: 0.5,
            beta2: 0.999,
            iterations: 400_000,
            fine_tune_fraction: 0.25,
            checkpoint_every: 1000,
            log_every: 100,
            log_wall_time: false,
            time_budget_seconds: None,
            keep: Keep::Last,
            ema_decay: 0.0,
            dp: None,
        };
        match profile {
            Profile::Netshare => base,
            Profile::Default => ModelConfig {
                gen_hidden: 128,
                gen_layers: 2,
                lstm_hidden: 64,
                critic_hidden: 128,
                critic_layers: 3,
                batch_size: 64,
                critic_steps: 3,
                lr: 5e-4,
                // Held-out on UGR16 1k with top_bits ports and protocol: 3,000 steps gave
                // detectability AUC 0.976 and MI difference 0.186 (median of 3 seeds), 10,000
                // steps 0.941 and 0.129 (seed 0), in about 3 min on 2 cores.
                iterations: 10_000,
                checkpoint_every: 1000,
                log_every: 100,
                // The generator's weights averaged over about the last 100 updates: on held-out
                // data (3 seeds, bench/EXPERIMENTS.md) detectability AUC fell on every trace
                // measured (UGR16 1k 0.885 -> 0.859, host-a 0.924 -> 0.899, host-b 0.936 ->
                // 0.923) and the MI difference and the srcport x dstport joint with it; on the
                // skype capture it stayed at 0.999 and two joints got worse. Median training
                // time under the same shared load: host-b 208 s vs 197 s, the capture 1,149 s
                // vs 1,106 s. 0.999 averaged too long: it broke host-b's joints and squeezed
                // flow starts toward midday.
                ema_decay: 0.99,
                ..base
            },
            Profile::Tiny => ModelConfig {
                gen_hidden: 48,
                gen_layers: 2,
                lstm_hidden: 24,
                critic_hidden: 48,
                critic_layers: 2,
                batch_size: 32,
                critic_steps: 2,
                lr: 1e-3,
                iterations: 150,
                checkpoint_every: 50,
                log_every: 10,
                ..base
            },
        }
    }

    /// Generator steps for a chunk: the full budget for chunk 0, the fine-tune fraction of it
    /// (at least one step) for every other chunk.
    pub fn iterations_for(&self, chunk: usize) -> u64 {
        if chunk == 0 {
            self.iterations
        } else {
            ((self.iterations as f64 * self.fine_tune_fraction).ceil() as u64).max(1)
        }
    }

    /// Checks values that would make training meaningless or impossible.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("attr_noise_dim", self.attr_noise_dim),
            ("feat_noise_dim", self.feat_noise_dim),
            ("gen_hidden", self.gen_hidden),
            ("lstm_hidden", self.lstm_hidden),
            ("critic_hidden", self.critic_hidden),
            ("batch_size", self.batch_size),
            ("critic_steps", self.critic_steps),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(Error::Config(format!("{name} must be at least 1")));
            }
        }
        if self.batch_size < 2 {
            return Err(Error::Config(
                "batch_size must be at least 2 (batch norm needs a batch)".into(),
            ));
        }
        let finite = [
            ("gp_lambda", self.gp_lambda),
            ("aux_weight", self.aux_weight),
            ("lr", self.lr),
        ];
        for (name, v) in finite {
            if !v.is_finite() || v < 0.0 {
                return Err(Error::Config(format!(
                    "{name} must be finite and non-negative, got {v}"
                )));
            }
        }
        for (name, b) in [
            ("beta1", self.beta1),
            ("beta2", self.beta2),
            ("ema_decay", self.ema_decay),
        ] {
            if !(0.0..1.0).contains(&b) {
                return Err(Error::Config(format!("{name} must be in [0, 1), got {b}")));
            }
        }
        if !(self.fine_tune_fraction > 0.0 && self.fine_tune_fraction <= 1.0) {
            return Err(Error::Config(format!(
                "fine_tune_fraction must be in (0, 1], got {}",
                self.fine_tune_fraction
            )));
        }
        if self.log_every == 0 {
            return Err(Error::Config("log_every must be at least 1".into()));
        }
        if let Some(b) = self.time_budget_seconds
            && !(b.is_finite() && b > 0.0)
        {
            return Err(Error::Config(format!(
                "time_budget_seconds must be a positive number of seconds, got {b}"
            )));
        }
        if let Some(dp) = &self.dp {
            dp.validate()?;
            if self.keep == Keep::Best {
                return Err(Error::Config(
                    "keep = \"best\" picks weights by a score computed on the private data \
                     outside DP-SGD; a private run keeps the last weights"
                        .into(),
                ));
            }
        }
        Ok(())
    }
}

fn is_last(k: &Keep) -> bool {
    *k == Keep::Last
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// The written form of a config: a profile and any fields that override it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ConfigOverrides {
    profile: Profile,
    seed: Option<u64>,
    /// Refused with a pointer to the encoder (the model reads it from the layout).
    sample_len: Option<usize>,
    attr_noise_dim: Option<usize>,
    feat_noise_dim: Option<usize>,
    gen_hidden: Option<usize>,
    gen_layers: Option<usize>,
    lstm_hidden: Option<usize>,
    critic_hidden: Option<usize>,
    critic_layers: Option<usize>,
    batch_size: Option<usize>,
    critic_steps: Option<usize>,
    gp_lambda: Option<f64>,
    aux_weight: Option<f64>,
    lr: Option<f64>,
    beta1: Option<f64>,
    beta2: Option<f64>,
    iterations: Option<u64>,
    fine_tune_fraction: Option<f64>,
    checkpoint_every: Option<u64>,
    log_every: Option<u64>,
    log_wall_time: Option<bool>,
    time_budget_seconds: Option<f64>,
    keep: Option<Keep>,
    ema_decay: Option<f64>,
    dp: Option<DpConfig>,
}

impl TryFrom<ConfigOverrides> for ModelConfig {
    type Error = Error;

    fn try_from(o: ConfigOverrides) -> Result<Self> {
        if o.sample_len.is_some() {
            return Err(Error::Config(
                "sample_len is the encoder's setting (encode.sample_len; layout.json carries it \
                 to the model), not the model's"
                    .into(),
            ));
        }
        let b = ModelConfig::profile(o.profile);
        let c = ModelConfig {
            profile: o.profile,
            seed: o.seed.unwrap_or(b.seed),
            attr_noise_dim: o.attr_noise_dim.unwrap_or(b.attr_noise_dim),
            feat_noise_dim: o.feat_noise_dim.unwrap_or(b.feat_noise_dim),
            gen_hidden: o.gen_hidden.unwrap_or(b.gen_hidden),
            gen_layers: o.gen_layers.unwrap_or(b.gen_layers),
            lstm_hidden: o.lstm_hidden.unwrap_or(b.lstm_hidden),
            critic_hidden: o.critic_hidden.unwrap_or(b.critic_hidden),
            critic_layers: o.critic_layers.unwrap_or(b.critic_layers),
            batch_size: o.batch_size.unwrap_or(b.batch_size),
            critic_steps: o.critic_steps.unwrap_or(b.critic_steps),
            gp_lambda: o.gp_lambda.unwrap_or(b.gp_lambda),
            aux_weight: o.aux_weight.unwrap_or(b.aux_weight),
            lr: o.lr.unwrap_or(b.lr),
            beta1: o.beta1.unwrap_or(b.beta1),
            beta2: o.beta2.unwrap_or(b.beta2),
            iterations: o.iterations.unwrap_or(b.iterations),
            fine_tune_fraction: o.fine_tune_fraction.unwrap_or(b.fine_tune_fraction),
            checkpoint_every: o.checkpoint_every.unwrap_or(b.checkpoint_every),
            log_every: o.log_every.unwrap_or(b.log_every),
            log_wall_time: o.log_wall_time.unwrap_or(b.log_wall_time),
            time_budget_seconds: o.time_budget_seconds.or(b.time_budget_seconds),
            keep: o.keep.unwrap_or(b.keep),
            ema_decay: o.ema_decay.unwrap_or(b.ema_decay),
            dp: o.dp.or(b.dp),
        };
        c.validate()?;
        Ok(c)
    }
}
