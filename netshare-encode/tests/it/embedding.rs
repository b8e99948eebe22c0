//! IP2Vec sanity on real data: ports that co-occur in the UGR16 records are nearer in embedding
//! space than random pairs of ports.

use std::collections::BTreeSet;

use netshare_core::records::Records;
use netshare_encode::EncodeConfig;
use netshare_encode::fields::DiscreteCodec;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::common::{encode_with, ugr16_1k};

fn cos(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum()
}

/// (mean cosine of co-occurring port pairs, mean cosine of random port pairs, AUC: the
/// probability that a co-occurring pair is nearer than a random pair).
fn measure(seed: u64, epochs: usize, sample: f64) -> (f64, f64, f64) {
    let flows = ugr16_1k();
    let e = encode_with(
        &Records::Flows(flows.clone()),
        &EncodeConfig {
            seed,
            ports: netshare_encode::config::DiscreteEncoding::Embedding,
            proto: netshare_encode::config::DiscreteEncoding::Embedding,
            embedding: netshare_encode::config::EmbeddingConfig {
                epochs,
                sample,
                ..Default::default()
            },
            ..EncodeConfig::default()
        },
    );
    let DiscreteCodec::Embedding {
        values, vectors, ..
    } = &e.encoder.ports
    else {
        panic!("ports are embedded by default");
    };
    let vec_of = |p: u16| {
        let i = values
            .binary_search(&u32::from(p))
            .expect("every port of the input is in the vocabulary");
        &vectors[i]
    };
    let pairs: BTreeSet<(u16, u16)> = flows
        .srcport
        .iter()
        .zip(&flows.dstport)
        .filter(|(a, b)| a != b)
        .map(|(&a, &b)| (a.min(b), a.max(b)))
        .collect();
    let co: Vec<f64> = pairs
        .iter()
        .map(|&(a, b)| cos(vec_of(a), vec_of(b)))
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let random: Vec<f64> = (0..2000)
        .map(|_| {
            let i = rng.random_range(0..values.len());
            let mut j = rng.random_range(0..values.len());
            while j == i {
                j = rng.random_range(0..values.len());
            }
            cos(&vectors[i], &vectors[j])
        })
        .collect();
    let mut wins = 0.0;
    for c in &co {
        for r in &random {
            wins += if c > r {
                1.0
            } else if c == r {
                0.5
            } else {
                0.0
            };
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    (
        mean(&co),
        mean(&random),
        wins / (co.len() * random.len()) as f64,
    )
}

/// The threshold: an untrained embedding (epochs = 0, random vectors) gives an AUC of
/// 0.498-0.503 on seeds 0-2, and the default training 0.690-0.709 (measured). 0.6 is far above
/// chance and leaves room for seed-to-seed spread; the control below proves the statistic can
/// fail. (Longer training on this 1k-record file drifts back towards 0.5 as every rarely seen
/// port is pulled onto the protocol's direction: 0.50-0.52 at 20 epochs.)
#[test]
fn ports_that_co_occur_are_nearer_than_random_pairs_on_real_ugr16() {
    for seed in [0, 1, 2] {
        let (co, random, auc) = measure(seed, 5, 0.0);
        eprintln!(
            "seed {seed}: mean cosine co-occurring {co:.3}, random {random:.3}, AUC {auc:.3}"
        );
        assert!(auc > 0.6, "seed {seed}: AUC {auc:.3}");
        assert!(
            co > random,
            "seed {seed}: co-occurring {co:.3} vs random {random:.3}"
        );
    }
    let (_, _, chance) = measure(0, 0, 0.0);
    assert!(
        (chance - 0.5).abs() < 0.05,
        "untrained vectors give AUC {chance:.3}"
    );
}
