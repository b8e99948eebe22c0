//! What every chunk's training shares, fixed before any chunk trains: in a private run, each
//! chunk's released (noisy) flow count, the sampling rate set from it and the noise multiplier
//! chosen for the target ε. Training in one process and training each chunk as its own store run
//! build the plan with the same functions, so both give the same bytes.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::{DpConfig, ModelConfig};
use crate::error::{Error, Result};
use crate::seed::derive_seed;

/// Name and format tag of `plan.json`, the plan run's output.
pub const PLAN_FORMAT: &str = "netshare.model-plan.v1";

/// What a private run releases about each chunk before training: its flow count with Gaussian
/// noise, and the Poisson sampling rate set from that count (so the rate reveals nothing
/// more).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ChunkRelease {
    pub count: u64,
    pub rate: f64,
}

/// `plan.json`: the released flow counts, the plan's only data-dependent part. Without DP it
/// holds none, so it is the same file for every trace and the chunk runs' keys depend on their
/// own tensors alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    /// Always [`PLAN_FORMAT`].
    pub format: String,
    /// With DP: per chunk, its flow count with Gaussian noise (`None` for a chunk with no
    /// flows, which is not trained). Empty without DP.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub released_counts: Vec<Option<u64>>,
}

impl PlanFile {
    /// Releases each chunk's flow count (`flows[i]`) with the config's count noise; without DP,
    /// releases nothing.
    pub fn release(cfg: &ModelConfig, flows: &[usize]) -> PlanFile {
        use rand_distr::{Distribution, StandardNormal};
        let released_counts = match &cfg.dp {
            None => Vec::new(),
            Some(dp) => flows
                .iter()
                .enumerate()
                .map(|(i, &n)| {
                    if n == 0 {
                        return None;
                    }
                    let mut rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.seed, &[11, i as u64]));
                    let z: f64 = StandardNormal.sample(&mut rng);
                    Some((n as f64 + dp.count_noise * z).round().max(0.0) as u64)
                })
                .collect(),
        };
        PlanFile {
            format: PLAN_FORMAT.to_string(),
            released_counts,
        }
    }
}

/// The plan in memory: the config with σ resolved and each chunk's release.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// The validated config, with the noise multiplier chosen when only a target ε was given.
    pub cfg: ModelConfig,
    /// Per chunk: its release (all `None` without DP).
    pub releases: Vec<Option<ChunkRelease>>,
}

impl Plan {
    /// The plan for `chunks` chunks from the config and the released counts.
    pub fn new(cfg: &ModelConfig, file: &PlanFile, chunks: usize) -> Result<Plan> {
        cfg.validate()?;
        if file.format != PLAN_FORMAT {
            return Err(Error::Input(format!(
                "plan.json has format {:?}, expected {PLAN_FORMAT:?}",
                file.format
            )));
        }
        let releases: Vec<Option<ChunkRelease>> = match &cfg.dp {
            None => vec![None; chunks],
            Some(_) if file.released_counts.len() != chunks => {
                return Err(Error::Input(format!(
                    "plan.json releases {} chunk counts for a private run of {chunks} chunks \
                     (was it made for other tensors or without dp?)",
                    file.released_counts.len()
                )));
            }
            Some(_) => {
                let b = cfg.batch_size as f64;
                file.released_counts
                    .iter()
                    .map(|c| {
                        c.map(|count| ChunkRelease {
                            count,
                            rate: b / (count as f64).max(b),
                        })
                    })
                    .collect()
            }
        };
        let cfg = resolve_noise(cfg, &releases)?;
        Ok(Plan { cfg, releases })
    }

    /// The Poisson sampling rate of a chunk's critic batches (private runs only).
    pub fn rate(&self, chunk: usize) -> Option<f64> {
        self.releases.get(chunk).copied().flatten().map(|r| r.rate)
    }
}

/// The accountant event of releasing `chunks` noisy flow counts: one Gaussian mechanism on a
/// vector whose L2 sensitivity is √chunks (a flow may appear in every chunk).
pub(crate) fn count_event(dp: &DpConfig, chunks: usize) -> Vec<netshare_privacy::Event> {
    if chunks == 0 {
        return Vec::new();
    }
    vec![netshare_privacy::Event::Gaussian {
        sigma: dp.count_noise / (chunks as f64).sqrt(),
        count: 1,
    }]
}

/// With DP-SGD and a target ε but no noise multiplier: the config with σ chosen so that every
/// chunk's planned critic steps and the count release, composed, stay within the target.
/// Otherwise the config as is.
fn resolve_noise(cfg: &ModelConfig, rel: &[Option<ChunkRelease>]) -> Result<ModelConfig> {
    let Some(dp) = &cfg.dp else {
        return Ok(cfg.clone());
    };
    if dp.noise_multiplier.is_some() {
        return Ok(cfg.clone());
    }
    let target = dp
        .target_epsilon
        .expect("validate requires a noise multiplier or a target");
    let parts: Vec<(f64, u64)> = rel
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.map(|r| (r.rate, cfg.iterations_for(i) * cfg.critic_steps as u64)))
        .collect();
    let steps: u64 = parts.iter().map(|p| p.1).sum();
    let counts = count_event(dp, parts.len());
    let sigma = netshare_privacy::noise_for_parts(&parts, &counts, dp.delta, target).ok_or_else(|| {
        Error::Config(format!(
            "dp.target_epsilon {target} cannot be met at delta {} for {steps} critic steps even \
             with noise multiplier 1000; train fewer iterations or with a smaller batch",
            dp.delta
        ))
    })?;
    let mut out = cfg.clone();
    if let Some(d) = &mut out.dp {
        d.noise_multiplier = Some(sigma);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_without_dp_releases_nothing_and_ignores_the_chunk_counts() {
        let cfg = ModelConfig::profile(crate::Profile::Tiny);
        let a = PlanFile::release(&cfg, &[10, 0, 7]);
        let b = PlanFile::release(&cfg, &[99]);
        assert_eq!(a, b);
        assert!(a.released_counts.is_empty());
        let p = Plan::new(&cfg, &a, 3).expect("a valid plan");
        assert_eq!(p.releases, vec![None; 3]);
        assert_eq!(p.rate(1), None);
    }

    #[test]
    fn a_private_plan_must_cover_every_chunk() {
        let mut cfg = ModelConfig::profile(crate::Profile::Tiny);
        cfg.dp = Some(DpConfig {
            clip_norm: 1.0,
            noise_multiplier: Some(1.0),
            target_epsilon: None,
            delta: 1e-5,
            count_noise: 10.0,
        });
        let file = PlanFile::release(&cfg, &[500, 0, 300]);
        assert_eq!(file.released_counts.len(), 3);
        assert_eq!(file.released_counts[1], None);
        let p = Plan::new(&cfg, &file, 3).expect("a valid plan");
        let c0 = file.released_counts[0].expect("chunk 0 has flows");
        assert_eq!(
            p.rate(0),
            Some(cfg.batch_size as f64 / (c0 as f64).max(cfg.batch_size as f64))
        );
        let err = Plan::new(&cfg, &file, 4)
            .expect_err("4 chunks, 3 counts")
            .to_string();
        assert!(err.contains("3 chunk counts"), "{err}");
    }
}
