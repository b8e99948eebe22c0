//! Differential privacy for netshare: the Rényi-DP accountant of DP-SGD on the critics (Poisson
//! subsampled Gaussian steps, summed over chunks) and of the noisy per-chunk flow counts, with
//! conversion to (ε, δ), and the search for the noise multiplier that meets a target ε.
//!
//! DP-SGD training itself (per-example clipping inside the model's critic updates) is not part of
//! this crate yet; the accountant is what a private run reports.
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
    let eps =
        |sigma: f64| epsilon_of(&[Event::SubsampledGaussian { q, sigma, steps }], delta).epsilon;
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
