//! Synthetic encoded datasets with known structure, for tests, examples and benchmarks.

use netshare_core::layout::{Activation, Layout, Segment};
use netshare_core::tensors::ChunkTensors;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::data::Encoded;

/// Truth of the two-flow-type dataset.
pub mod two_types {
    /// Share of type B flows.
    pub const B_SHARE: f64 = 0.3;
    /// Records per flow of type A and B.
    pub const LEN: [usize; 2] = [2, 5];
    /// The `dstport` (tanh) attribute of type A and B.
    pub const PORT: [f32; 2] = [-0.5, 0.6];
    /// The `pkt_len` (sigmoid) feature of type A and B.
    pub const PKT: [f32; 2] = [0.2, 0.8];
    /// Time length T.
    pub const T: usize = 6;
}

/// Two flow types with different protocol one-hots, ports, lengths and record sizes, in
/// `chunks` chunks of `n` flows each. Attributes: `proto` (softmax 2: index 1 is type B),
/// `dstport` (tanh 1), `flow_start` (sigmoid 1, uniform). Features: `interarrival` (sigmoid 1),
/// `pkt_len` (sigmoid 1).
pub fn two_flow_types(n: usize, chunks: usize, seed: u64) -> Encoded {
    use two_types::*;
    let layout = Layout {
        sample_len: 1,
        private: false,
        attributes: vec![
            Segment::new("proto", 2, Activation::Softmax),
            Segment::new("dstport", 1, Activation::Tanh),
            Segment::new("flow_start", 1, Activation::Sigmoid),
        ],
        features: vec![
            Segment::new("interarrival", 1, Activation::Sigmoid),
            Segment::new("pkt_len", 1, Activation::Sigmoid),
        ],
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let noise = Normal::new(0.0f32, 0.03).expect("valid normal");
    let mut out = Vec::with_capacity(chunks);
    for _ in 0..chunks {
        let mut c = ChunkTensors::zeros(n, 4, T, 2);
        for i in 0..n {
            let ty = usize::from(rng.random_bool(B_SHARE));
            c.attributes[i * 4 + ty] = 1.0;
            c.attributes[i * 4 + 2] = (PORT[ty] + noise.sample(&mut rng)).clamp(-0.99, 0.99);
            c.attributes[i * 4 + 3] = rng.random::<f32>();
            for t in 0..LEN[ty] {
                let base = (i * T + t) * 2;
                c.features[base] = (0.3 + noise.sample(&mut rng)).clamp(0.0, 1.0);
                c.features[base + 1] = (PKT[ty] + noise.sample(&mut rng)).clamp(0.0, 1.0);
                c.gen_flag[i * T + t] = 1.0;
            }
        }
        out.push(c);
    }
    Encoded {
        layout,
        chunks: out,
    }
}

/// Random tensors shaped like the encoder's UGR16 NetFlow output: bit-wise IPs (softmax 2
/// each), port embeddings (tanh 10), proto (softmax 3), flow_start, flow tags for `n_chunks`
/// chunks; features interarrival, td, pkt, byt (sigmoid) and label (softmax 2).
pub fn ugr16_shaped(n: usize, max_len: usize, n_chunks: usize, seed: u64) -> Encoded {
    let mut attributes = Vec::new();
    for ip in ["srcip", "dstip"] {
        for b in 0..32 {
            attributes.push(Segment::new(
                &format!("{ip}/bit{b:02}"),
                2,
                Activation::Softmax,
            ));
        }
    }
    attributes.push(Segment::new("srcport", 10, Activation::Tanh));
    attributes.push(Segment::new("dstport", 10, Activation::Tanh));
    attributes.push(Segment::new("proto", 3, Activation::Softmax));
    attributes.push(Segment::new("flow_start", 1, Activation::Sigmoid));
    attributes.push(Segment::new("tag/starts_here", 2, Activation::Softmax));
    for c in 0..n_chunks {
        attributes.push(Segment::new(
            &format!("tag/in_chunk/{c:03}"),
            2,
            Activation::Softmax,
        ));
    }
    let features = vec![
        Segment::new("interarrival", 1, Activation::Sigmoid),
        Segment::new("td", 1, Activation::Sigmoid),
        Segment::new("pkt", 1, Activation::Sigmoid),
        Segment::new("byt", 1, Activation::Sigmoid),
        Segment::new("label", 2, Activation::Softmax),
    ];
    let layout = Layout {
        attributes,
        features,
        sample_len: 1,
        private: false,
    };
    let (a, f) = (layout.attribute_dim(), layout.feature_dim());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut c = ChunkTensors::zeros(n, a, max_len, f);
    for i in 0..n {
        for (off, s) in layout.attribute_offsets() {
            fill(
                &mut rng,
                &mut c.attributes[i * a + off..i * a + off + s.dim],
                s.activation,
            );
        }
        let len = rng.random_range(1..=max_len);
        for t in 0..len {
            for (off, s) in layout.feature_offsets() {
                let base = (i * max_len + t) * f + off;
                fill(&mut rng, &mut c.features[base..base + s.dim], s.activation);
            }
            c.gen_flag[i * max_len + t] = 1.0;
        }
    }
    Encoded {
        layout,
        chunks: vec![c],
    }
}

fn fill(rng: &mut ChaCha8Rng, out: &mut [f32], act: Activation) {
    match act {
        Activation::Softmax => {
            let k = rng.random_range(0..out.len());
            out[k] = 1.0;
        }
        Activation::Sigmoid => out.iter_mut().for_each(|x| *x = rng.random()),
        Activation::Tanh => out
            .iter_mut()
            .for_each(|x| *x = rng.random_range(-1.0..1.0)),
    }
}

/// Per-head means of real and sampled values, and length statistics, as a text table.
pub fn describe(
    layout: &Layout,
    real: &ChunkTensors,
    attrs: &[f32],
    feats: &[f32],
    lengths: &[usize],
) -> String {
    let a = layout.attribute_dim();
    let f = layout.feature_dim();
    let n = lengths.len();
    let t = real.max_len;
    let mut s = format!("{:<24} {:>10} {:>10}\n", "head", "real mean", "sampled");
    let col_mean = |v: &[f32], width: usize, col: usize, mask: Option<&dyn Fn(usize) -> bool>| {
        let (mut sum, mut cnt) = (0.0f64, 0usize);
        for (r, row) in v.chunks_exact(width).enumerate() {
            if mask.is_none_or(|m| m(r)) {
                sum += row[col] as f64;
                cnt += 1;
            }
        }
        if cnt == 0 { f64::NAN } else { sum / cnt as f64 }
    };
    for (off, seg) in layout.attribute_offsets() {
        for k in 0..seg.dim {
            s.push_str(&format!(
                "{:<24} {:>10.4} {:>10.4}\n",
                format!("{}[{k}]", seg.field),
                col_mean(&real.attributes, a, off + k, None),
                col_mean(attrs, a, off + k, None)
            ));
        }
    }
    let real_valid = |r: usize| real.gen_flag[r] > 0.5;
    let fake_valid = |r: usize| (r % t) < lengths[r / t];
    for (off, seg) in layout.feature_offsets() {
        for k in 0..seg.dim {
            s.push_str(&format!(
                "{:<24} {:>10.4} {:>10.4}\n",
                format!("{}[{k}]", seg.field),
                col_mean(&real.features, f, off + k, Some(&real_valid)),
                col_mean(feats, f, off + k, Some(&fake_valid))
            ));
        }
    }
    let real_len: f64 = real.gen_flag.iter().map(|x| *x as f64).sum::<f64>() / real.n.max(1) as f64;
    let fake_len: f64 = lengths.iter().sum::<usize>() as f64 / n.max(1) as f64;
    s.push_str(&format!(
        "{:<24} {:>10.4} {:>10.4}\n",
        "mean length", real_len, fake_len
    ));
    s
}

/// Writes `layout.json` and `train-NNN.safetensors` into `dir`, as the encoder would.
pub fn write_encoded(enc: &Encoded, dir: &std::path::Path) -> crate::Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| crate::Error::io("creating", dir, e))?;
    let p = dir.join("layout.json");
    let json = serde_json::to_string_pretty(&enc.layout).map_err(|source| crate::Error::Json {
        path: p.clone(),
        source,
    })?;
    std::fs::write(&p, json).map_err(|e| crate::Error::io("writing", &p, e))?;
    for (i, c) in enc.chunks.iter().enumerate() {
        c.write(&dir.join(format!("train-{i:03}.safetensors")))?;
    }
    Ok(())
}
