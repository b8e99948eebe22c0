//! An exponential moving average of the generator's parameters (`ema_decay` in the config): a
//! GAN stabiliser whose averaged weights are the ones sampled from and written, while training
//! itself goes on with the raw weights. It only post-processes the generator's updates, so a
//! private run's guarantee covers it as it covers the raw weights.

use crate::error::Result;
use crate::host::floats;
use crate::nets::Params;
use crate::weights::HostTensors;

/// The decay used for the update after `updates` earlier ones: `decay`, or less while
/// `(1 + updates) / (10 + updates)` is smaller (the warm-up of TensorFlow's moving average),
/// so a short run's average is not dominated by the first steps' random weights. The warm-up
/// ends after about `9 / (1 - decay)` updates.
pub(crate) fn decay_at(decay: f64, updates: u64) -> f64 {
    let t = updates as f64;
    decay.min((1.0 + t) / (10.0 + t))
}

/// The averaged generator parameters, in host memory.
pub(crate) struct Ema {
    decay: f64,
    values: HostTensors,
}

impl Ema {
    /// An average that starts at the values of the parameters `names` in `start`.
    pub fn new(decay: f64, start: &HostTensors, names: &[String]) -> Ema {
        let values = names
            .iter()
            .filter_map(|n| start.get(n).map(|v| (n.clone(), v.clone())))
            .collect();
        Ema { decay, values }
    }

    /// Folds in the parameters after a generator update that had `earlier` updates before it:
    /// `avg ← d·avg + (1 − d)·p` in f32, with `d = decay_at(decay, earlier)`.
    pub fn update(&mut self, params: &Params, earlier: u64) -> Result<()> {
        let d = decay_at(self.decay, earlier);
        let (keep, take) = (d as f32, (1.0 - d) as f32);
        for (name, (_, avg)) in self.values.iter_mut() {
            let p = floats(params[name].clone(), name)?;
            for (a, x) in avg.iter_mut().zip(&p) {
                *a = keep * *a + take * *x;
            }
        }
        Ok(())
    }

    /// Every parameter in host memory, the generator's replaced by their averages.
    pub fn weights(&self, mut all: HostTensors) -> HostTensors {
        for (k, v) in &self.values {
            all.insert(k.clone(), v.clone());
        }
        all
    }

    /// The averages, to be stored in a checkpoint.
    pub fn values(&self) -> &HostTensors {
        &self.values
    }

    /// Replaces the averages with a checkpoint's (whose names and shapes the caller checked).
    pub fn set_values(&mut self, values: HostTensors) {
        self.values = values;
    }
}

#[cfg(test)]
mod tests {
    use super::decay_at;

    #[test]
    fn the_decay_warms_up_then_holds_at_the_configured_value() {
        // (1 + t) / (10 + t): 0.1 before any update, 2/11 after the first.
        assert_eq!(decay_at(0.999, 0), 0.1);
        assert_eq!(decay_at(0.999, 1), 2.0 / 11.0);
        assert_eq!(decay_at(0.999, 90), 91.0 / 100.0);
        // (1 + t) / (10 + t) reaches 0.999 at t = 8,990.
        assert_eq!(decay_at(0.999, 8_989), 8_990.0 / 8_999.0);
        assert_eq!(decay_at(0.999, 8_991), 0.999);
        assert_eq!(decay_at(0.999, 100_000), 0.999);
        assert_eq!(decay_at(0.0, 5), 0.0);
    }
}
