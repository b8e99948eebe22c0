//! Differential privacy for netshare: the Rényi-DP accountant of DP-SGD on the critics (Poisson
//! subsampled Gaussian steps, summed over chunks) and of the noisy per-chunk flow counts, with
//! conversion to (ε, δ), the search for the noise multiplier that meets a target ε, and the
//! privacy ledger a private run records.
//!
//! DP-SGD training itself (per-example clipping and noise in the critic updates) is in
//! `netshare-model`, which calls this crate to pick σ and to write its ledger.
#![deny(missing_docs)]

pub mod rdp;

use netshare_core::stage::StageDef;
use serde::{Deserialize, Serialize};

/// This stage's identity in the artifact store.
pub const STAGE: StageDef = StageDef {
    name: "privacy",
    version: 1,
};

/// One mechanism applied to the private data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    /// `steps` DP-SGD updates, each on a Poisson sample of rate `q`, noise multiplier `sigma`.
    SubsampledGaussian {
        /// Sampling rate: batch size / records in the chunk.
        q: f64,
        /// Noise standard deviation / clipping norm.
        sigma: f64,
        /// Number of noisy updates (critic steps).
        steps: u64,
    },
    /// `count` releases of a sensitivity-1 query with Gaussian noise of std `sigma`.
    Gaussian {
        /// Noise standard deviation (sensitivity 1).
        sigma: f64,
        /// Number of releases.
        count: u64,
    },
}

/// Composes events in RDP and converts to (ε, δ).
#[derive(Clone, Debug)]
pub struct Accountant {
    orders: Vec<f64>,
    rdp: Vec<f64>,
}

/// The privacy guarantee of a composed run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Guarantee {
    /// ε of (ε, δ)-DP.
    pub epsilon: f64,
    /// δ of (ε, δ)-DP.
    pub delta: f64,
    /// The Rényi order that gave the smallest ε.
    pub order: f64,
}

impl Default for Accountant {
    fn default() -> Self {
        Self::new(rdp::default_orders())
    }
}

impl Accountant {
    /// An accountant tracking RDP at the given orders.
    pub fn new(orders: Vec<f64>) -> Self {
        let rdp = vec![0.0; orders.len()];
        Accountant { orders, rdp }
    }

    /// Adds an event (RDP composes by summation at each order).
    pub fn compose(&mut self, event: &Event) {
        for (a, total) in self.orders.iter().zip(self.rdp.iter_mut()) {
            *total += match *event {
                Event::SubsampledGaussian { q, sigma, steps } => {
                    steps as f64 * rdp::rdp_subsampled_gaussian(q, sigma, *a)
                }
                Event::Gaussian { sigma, count } => count as f64 * rdp::rdp_gaussian(sigma, *a),
            };
        }
    }

    /// The (ε, δ) guarantee of everything composed so far.
    pub fn guarantee(&self, delta: f64) -> Guarantee {
        let (epsilon, order) = rdp::epsilon(&self.orders, &self.rdp, delta);
        Guarantee {
            epsilon,
            delta,
            order,
        }
    }
}

/// The ε of a list of events.
pub fn epsilon_of(events: &[Event], delta: f64) -> Guarantee {
    let mut acc = Accountant::default();
    for e in events {
        acc.compose(e);
    }
    acc.guarantee(delta)
}

/// The smallest noise multiplier (to 1e-3 relative) for which `steps` subsampled steps at rate
/// `q` stay within `target_epsilon` at `delta`. `None` when even σ = 1000 does not.
pub fn noise_for_epsilon(q: f64, steps: u64, delta: f64, target_epsilon: f64) -> Option<f64> {
    noise_for_parts(&[(q, steps)], &[], delta, target_epsilon)
}

/// The smallest noise multiplier (to 1e-3 relative) for which subsampled Gaussian steps of
/// every part (`(q, steps)`, e.g. one per chunk, composed in sequence) plus the `fixed` events
/// (released counts, whose noise does not change) stay within `target_epsilon` at `delta`.
/// `None` when even σ = 1000 does not.
pub fn noise_for_parts(
    parts: &[(f64, u64)],
    fixed: &[Event],
    delta: f64,
    target_epsilon: f64,
) -> Option<f64> {
    let eps = |sigma: f64| {
        let mut events: Vec<Event> = parts
            .iter()
            .map(|&(q, steps)| Event::SubsampledGaussian { q, sigma, steps })
            .collect();
        events.extend(fixed.iter().cloned());
        epsilon_of(&events, delta).epsilon
    };
    let (mut lo, mut hi) = (0.01, 1000.0);
    if eps(hi) > target_epsilon {
        return None;
    }
    if eps(lo) <= target_epsilon {
        return Some(lo);
    }
    // ε decreases in σ, so bisect on the log scale.
    while hi / lo > 1.001 {
        let mid = (lo * hi).sqrt();
        if eps(mid) <= target_epsilon {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

/// One chunk's DP-SGD in a [`Ledger`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerChunk {
    /// Chunk index.
    pub chunk: usize,
    /// The chunk's example (flow) count as released: Gaussian noise added, rounded, at least
    /// 0. Synthesis generates this many flows; the sampling rate is set from it.
    pub released_examples: u64,
    /// Poisson sampling rate: batch size / max(released count, batch size).
    pub sampling_rate: f64,
    /// Noisy critic updates run (generator iterations × critic steps).
    pub steps: u64,
}

/// What a private run spent and how: the record shown beside its outputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ledger {
    /// What was made private and how.
    pub mechanism: String,
    /// Noise standard deviation / clipping norm (σ).
    pub noise_multiplier: f64,
    /// Bound on each example's gradient norm over both critics (C).
    pub clip_norm: f64,
    /// δ of the guarantee.
    pub delta: f64,
    /// ε of the guarantee, for the steps actually run.
    pub epsilon: f64,
    /// The target ε σ was chosen for, when one was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_epsilon: Option<f64>,
    /// The accountant.
    pub accountant: String,
    /// The Rényi order that gave ε.
    pub order: f64,
    /// Every Rényi order tracked.
    pub orders: Vec<f64>,
    /// The steps of each chunk (composed in sequence).
    pub chunks: Vec<LedgerChunk>,
    /// Other releases composed in (e.g. noisy per-chunk counts), as accountant events.
    #[serde(default)]
    pub other_events: Vec<Event>,
    /// What the model saw that was not private (e.g. the public trace it was pretrained on).
    pub public: String,
}

impl Ledger {
    /// The accountant events of this ledger, chunk steps first.
    pub fn events(&self) -> Vec<Event> {
        let mut events: Vec<Event> = self
            .chunks
            .iter()
            .map(|c| Event::SubsampledGaussian {
                q: c.sampling_rate,
                sigma: self.noise_multiplier,
                steps: c.steps,
            })
            .collect();
        events.extend(self.other_events.iter().cloned());
        events
    }

    /// A ledger for `chunks` with ε computed by the accountant (RDP at the default orders).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        mechanism: &str,
        noise_multiplier: f64,
        clip_norm: f64,
        delta: f64,
        target_epsilon: Option<f64>,
        chunks: Vec<LedgerChunk>,
        other_events: Vec<Event>,
        public: &str,
    ) -> Ledger {
        let mut l = Ledger {
            mechanism: mechanism.to_string(),
            noise_multiplier,
            clip_norm,
            delta,
            epsilon: 0.0,
            target_epsilon,
            accountant: "Rényi DP of the Poisson-subsampled Gaussian (Mironov et al. 2019), \
                         composed over chunks, converted to (ε, δ) with Balle et al. (2020) as \
                         dp-accounting's RDP accountant does"
                .to_string(),
            order: 0.0,
            orders: rdp::default_orders(),
            chunks,
            other_events,
            public: public.to_string(),
        };
        let g = epsilon_of(&l.events(), delta);
        l.epsilon = g.epsilon;
        l.order = g.order;
        l
    }
}
