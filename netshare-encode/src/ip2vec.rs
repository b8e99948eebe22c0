//! IP2Vec: skip-gram word2vec with negative sampling over `[srcport, dstport, proto]`
//! sentences (SPEC §3), hand-written, single-threaded and seeded, so the same sentences and seed
//! give the same vectors bit for bit.
//!
//! The update is word2vec's (and gensim's) SGNS step: for a (centre, context) pair, the centre's
//! input vector is pushed towards the context's output vector and away from `negative` output
//! vectors drawn from the unigram distribution raised to 0.75; the learning rate decays
//! linearly over all pairs of all epochs. Input vectors start uniform in ±0.5/dim, output
//! vectors at zero. The embedding of a token is its input vector, L2-normalised.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::config::EmbeddingConfig;

/// A trained embedding: `vocab` rows of `dim` values, row-major, each row L2-normalised.
#[derive(Clone, Debug, PartialEq)]
pub struct Vectors {
    /// Dimension of each vector.
    pub dim: usize,
    /// `[vocab, dim]`.
    pub data: Vec<f32>,
    /// Mean negative-sampling loss per pair over the last epoch (for the report).
    pub last_epoch_loss: f64,
    /// Positive pairs seen per epoch.
    pub pairs_per_epoch: u64,
}

impl Vectors {
    /// The vector of token `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// Trains skip-gram vectors for `vocab` tokens on `sentences` (token ids below `vocab`).
///
/// Tokens that never occur keep their random initial vector (normalised).
pub fn train(
    sentences: &[Vec<u32>],
    vocab: usize,
    cfg: &EmbeddingConfig,
    rng: &mut ChaCha8Rng,
) -> Vectors {
    let dim = cfg.dim.max(1);
    let mut w_in: Vec<f32> = (0..vocab * dim)
        .map(|_| (rng.random::<f32>() - 0.5) / dim as f32)
        .collect();
    let mut w_out = vec![0.0f32; vocab * dim];

    let mut counts = vec![0u64; vocab];
    for s in sentences {
        for &t in s {
            if let Some(c) = counts.get_mut(t as usize) {
                *c += 1;
            }
        }
    }
    let sampler = UnigramSampler::new(&counts);

    let window = cfg.window.max(1);
    let total_tokens: u64 = counts.iter().sum();
    let keep = keep_probabilities(&counts, total_tokens, cfg.sample);
    let total = (sentences.len() as u64 * cfg.epochs as u64).max(1);
    let mut done = 0u64;
    let mut grad = vec![0.0f32; dim];
    let mut last_epoch_loss = 0.0;
    let mut pairs_per_epoch = 0u64;
    let mut kept: Vec<u32> = Vec::new();

    for _epoch in 0..cfg.epochs {
        let mut loss = 0.0f64;
        let mut pairs = 0u64;
        for s in sentences {
            // word2vec's learning rate decays linearly with progress through the corpus.
            let progress = done as f32 / total as f32;
            let lr = (cfg.lr - (cfg.lr - cfg.min_lr) * progress).max(cfg.min_lr);
            done += 1;
            kept.clear();
            for &t in s {
                let p = keep.get(t as usize).copied().unwrap_or(0.0);
                if p >= 1.0 || rng.random::<f64>() < p {
                    kept.push(t);
                }
            }
            let n = kept.len();
            for i in 0..n {
                let centre = kept[i] as usize;
                let lo = i.saturating_sub(window);
                let hi = (i + window + 1).min(n);
                for (j, &ctx_token) in kept.iter().enumerate().take(hi).skip(lo) {
                    if j == i {
                        continue;
                    }
                    let context = ctx_token as usize;
                    pairs += 1;
                    grad.fill(0.0);
                    let c = &mut w_in[centre * dim..(centre + 1) * dim];
                    for d in 0..=cfg.negative {
                        let (target, label) = if d == 0 {
                            (context, 1.0f32)
                        } else {
                            match sampler.sample(rng) {
                                Some(t) if t != context => (t, 0.0),
                                _ => continue,
                            }
                        };
                        let o = &mut w_out[target * dim..(target + 1) * dim];
                        let f: f32 = c.iter().zip(o.iter()).map(|(a, b)| a * b).sum();
                        let p = sigmoid(f);
                        loss -= if label > 0.5 {
                            f64::from(p.max(1e-7)).ln()
                        } else {
                            f64::from((1.0 - p).max(1e-7)).ln()
                        };
                        let g = (label - p) * lr;
                        for k in 0..dim {
                            grad[k] += g * o[k];
                            o[k] += g * c[k];
                        }
                    }
                    for k in 0..dim {
                        c[k] += grad[k];
                    }
                }
            }
        }
        pairs_per_epoch = pairs;
        last_epoch_loss = if pairs > 0 { loss / pairs as f64 } else { 0.0 };
    }

    for row in w_in.chunks_exact_mut(dim) {
        normalise(row);
    }
    Vectors {
        dim,
        data: w_in,
        last_epoch_loss,
        pairs_per_epoch,
    }
}

/// word2vec's frequent-token subsampling: a token with frequency f = count / total is kept
/// with probability (sqrt(f / s) + 1) · s / f (s = `sample`; 0 keeps every token). Tokens
/// outside the vocabulary get probability 0.
fn keep_probabilities(counts: &[u64], total: u64, sample: f64) -> Vec<f64> {
    counts
        .iter()
        .map(|&c| {
            if sample <= 0.0 || c == 0 {
                return 1.0;
            }
            let f = c as f64 / total as f64;
            ((f / sample).sqrt() + 1.0) * sample / f
        })
        .collect()
}

fn sigmoid(x: f32) -> f32 {
    // Clamped like word2vec's table (|x| ≤ 6) so the gradient never vanishes to NaN.
    1.0 / (1.0 + (-x.clamp(-6.0, 6.0)).exp())
}

/// Scales a vector to unit L2 norm (a zero vector stays zero).
pub fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
}

/// Draws tokens with probability proportional to count^0.75.
struct UnigramSampler {
    cumulative: Vec<f64>,
}

impl UnigramSampler {
    fn new(counts: &[u64]) -> Self {
        let mut acc = 0.0;
        let cumulative = counts
            .iter()
            .map(|&c| {
                acc += (c as f64).powf(0.75);
                acc
            })
            .collect();
        UnigramSampler { cumulative }
    }

    fn sample(&self, rng: &mut ChaCha8Rng) -> Option<usize> {
        let total = *self.cumulative.last()?;
        if total <= 0.0 {
            return None;
        }
        let u = rng.random::<f64>() * total;
        let i = self.cumulative.partition_point(|&c| c <= u);
        Some(i.min(self.cumulative.len() - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn cos(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn tokens_that_share_sentences_end_up_closer_than_tokens_that_never_meet() {
        // Four disjoint "services" of three tokens each, every sentence inside one service.
        let mut sentences = Vec::new();
        for i in 0..2000u32 {
            let g = 3 * (i % 4);
            sentences.push(vec![g + i % 3, g + (i / 3) % 3, g + (i / 9) % 3]);
        }
        let cfg = EmbeddingConfig::default();
        let v = train(&sentences, 12, &cfg, &mut ChaCha8Rng::seed_from_u64(7));
        let (mut within, mut nw, mut across, mut na) = (0.0, 0, 0.0, 0);
        for a in 0..12 {
            for b in (a + 1)..12 {
                if a / 3 == b / 3 {
                    within += cos(v.row(a), v.row(b));
                    nw += 1;
                } else {
                    across += cos(v.row(a), v.row(b));
                    na += 1;
                }
            }
        }
        let (within, across) = (within / nw as f32, across / na as f32);
        eprintln!("within {within}, across {across}");
        assert!(within > across + 0.5, "within {within}, across {across}");
        for i in 0..12 {
            let n: f32 = v.row(i).iter().map(|x| x * x).sum();
            assert!((n - 1.0).abs() < 1e-5, "row {i} has squared norm {n}");
        }
    }

    #[test]
    fn same_seed_same_vectors_other_seed_other_vectors() {
        let sentences: Vec<Vec<u32>> = (0..200)
            .map(|i| vec![i % 7, (i * 3) % 7, 7 + i % 2])
            .collect();
        let cfg = EmbeddingConfig {
            sample: 0.0,
            ..EmbeddingConfig::default()
        };
        let a = train(&sentences, 9, &cfg, &mut ChaCha8Rng::seed_from_u64(1));
        let b = train(&sentences, 9, &cfg, &mut ChaCha8Rng::seed_from_u64(1));
        let c = train(&sentences, 9, &cfg, &mut ChaCha8Rng::seed_from_u64(2));
        assert_eq!(a, b);
        assert_ne!(a.data, c.data);
        assert_eq!(a.pairs_per_epoch, 200 * 6);
    }
}
