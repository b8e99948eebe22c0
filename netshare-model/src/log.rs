//! The training log: losses and the quick quality score of logged iterations, and its CSV form
//! (`train-log.csv`).

use serde::{Deserialize, Serialize};

/// Losses of one logged generator iteration. A private run (DP-SGD) does not report the
/// critics' losses, which are computed on the private batch outside the mechanism: they are
/// NaN in memory, `null` in JSON and empty cells in the CSV.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Losses {
    /// Critic Wasserstein term: mean D(fake) − mean D(real).
    #[serde(with = "nan_as_null")]
    pub d_loss: f32,
    /// Critic gradient penalty (λ included).
    #[serde(with = "nan_as_null")]
    pub d_gp: f32,
    /// Auxiliary critic Wasserstein term.
    #[serde(with = "nan_as_null")]
    pub aux_loss: f32,
    /// Auxiliary critic gradient penalty (λ included).
    #[serde(with = "nan_as_null")]
    pub aux_gp: f32,
    /// Generator loss −D(fake) − aux_weight · D_aux(fake).
    pub g_loss: f32,
}

/// A loss that may be absent (NaN) as JSON `null`, and back.
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
        if v.is_nan() {
            s.serialize_none()
        } else {
            s.serialize_f32(*v)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
        Ok(Option::<f32>::deserialize(d)?.unwrap_or(f32::NAN))
    }
}

/// A loss as a CSV cell: empty when not reported.
fn cell(v: f32) -> String {
    if v.is_nan() {
        String::new()
    } else {
        v.to_string()
    }
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
    /// The quick quality score (the crate's `quality` module) at checkpoint iterations and at the last.
    #[serde(default)]
    pub quality: Option<f64>,
}

/// The training log as CSV text.
pub fn log_csv(log: &[LogRow], wall_time: bool) -> String {
    let mut s = String::from("chunk,iteration,d_loss,d_gp,aux_loss,aux_gp,g_loss,quality");
    if wall_time {
        s.push_str(",seconds");
    }
    s.push('\n');
    for r in log {
        let l = &r.losses;
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{}",
            r.chunk,
            r.iteration,
            cell(l.d_loss),
            cell(l.d_gp),
            cell(l.aux_loss),
            cell(l.aux_gp),
            l.g_loss,
            r.quality.map_or(String::new(), |q| format!("{q:.6}"))
        ));
        if wall_time {
            s.push_str(&format!(",{:.3}", r.seconds.unwrap_or(0.0)));
        }
        s.push('\n');
    }
    s
}
