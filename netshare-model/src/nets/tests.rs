//! The hand-written input gradient and the penalty's weight gradient against central finite
//! differences, in f64 on the Flex CPU backend (Flex stores and computes f64 tensors).
use super::*;
use rand::SeedableRng;

const LAYERS: usize = 3;

fn ctx() -> Ctx {
    Ctx {
        device: Device::flex(),
        dtype: DType::F64,
    }
}

fn host_params(rng: &mut ChaCha8Rng) -> BTreeMap<String, (Vec<usize>, Vec<f64>)> {
    let widths = [7, 6, 5, 4];
    let mut out = BTreeMap::new();
    for l in 0..LAYERS {
        let (i, o) = (widths[l], widths[l + 1]);
        let w: Vec<f64> = (0..i * o).map(|_| rng.random_range(-0.8..0.8)).collect();
        let b: Vec<f64> = (0..o).map(|_| rng.random_range(-0.1..0.3)).collect();
        out.insert(format!("c.l{l}.w"), (vec![i, o], w));
        out.insert(format!("c.l{l}.b"), (vec![1, o], b));
    }
    let wo: Vec<f64> = (0..4).map(|_| rng.random_range(-1.0..1.0)).collect();
    out.insert("c.out.w".into(), (vec![4, 1], wo));
    out.insert("c.out.b".into(), (vec![1, 1], vec![0.1]));
    out
}

fn device_params(h: &BTreeMap<String, (Vec<usize>, Vec<f64>)>) -> Params {
    h.iter()
        .map(|(k, (s, v))| (k.clone(), ctx().tensor(v.clone(), [s[0], s[1]])))
        .collect()
}

fn vec64<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.try_into_vec_as::<f64>().expect("f64 read back")
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-8)
}

#[test]
fn critic_input_gradient_matches_finite_differences_in_f64() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let hp = host_params(&mut rng);
    let params = device_params(&hp);
    let (rows, cols) = (5, 7);
    let x: Vec<f64> = (0..rows * cols)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let xt: Tensor<2> = ctx().tensor(x.clone(), [rows, cols]);
    assert_eq!(xt.dtype(), DType::F64);
    let g = vec64(critic_input_grad(&params, "c", LAYERS, xt));
    let eval = |x: Vec<f64>| vec64(critic(&params, "c", LAYERS, ctx().tensor(x, [rows, cols])));
    let h = 1e-6;
    let mut worst: f64 = 0.0;
    for r in 0..rows {
        for c in 0..cols {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[r * cols + c] += h;
            xm[r * cols + c] -= h;
            let fd = (eval(xp)[r] - eval(xm)[r]) / (2.0 * h);
            worst = worst.max(rel(g[r * cols + c], fd));
        }
    }
    eprintln!("worst relative error {worst:e}");
    assert!(worst <= 1e-6, "worst relative error {worst:e}");
    assert!(
        g.iter().any(|v| v.abs() > 1e-3),
        "gradient is not trivially zero"
    );
}

#[test]
fn the_fused_critic_pass_equals_the_separate_functions() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let params = device_params(&host_params(&mut rng));
    let mut x = || -> Tensor<2> {
        let v: Vec<f64> = (0..4 * 7).map(|_| rng.random_range(-1.0..1.0)).collect();
        ctx().tensor(v, [4, 7])
    };
    let (real, fake, mix) = (x(), x(), x());
    let (w, gp) = critic_loss_terms(
        &params,
        "c",
        LAYERS,
        real.clone(),
        fake.clone(),
        mix.clone(),
        10.0,
    );
    let w_sep =
        critic(&params, "c", LAYERS, fake).mean() - critic(&params, "c", LAYERS, real).mean();
    let gp_sep = gradient_penalty(&params, "c", LAYERS, mix, 10.0);
    assert!(rel(vec64(w)[0], vec64(w_sep)[0]) < 1e-12);
    assert!(rel(vec64(gp)[0], vec64(gp_sep)[0]) < 1e-12);
}

#[test]
fn hand_derived_critic_gradients_equal_the_autodiff_ones_in_f64() {
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    let hp = host_params(&mut rng);
    let (rows, cols) = (5, 7);
    let mut x = || -> Tensor<2> {
        let v: Vec<f64> = (0..rows * cols)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        ctx().tensor(v, [rows, cols])
    };
    let (real, fake, mix) = (x(), x(), x());
    let mut tracked = device_params(&hp);
    for t in tracked.values_mut() {
        *t = t.clone().autodiff().require_grad();
    }
    let (w, gp) = critic_loss_terms(
        &tracked,
        "c",
        LAYERS,
        real.clone(),
        fake.clone(),
        mix.clone(),
        10.0,
    );
    let auto = (w.clone() + gp.clone()).backward();
    let hand = critic_loss_grads(
        &device_params(&hp),
        "c",
        LAYERS,
        real,
        fake,
        mix,
        10.0,
        None,
    );
    assert!(rel(vec64(w.without_autodiff())[0], vec64(hand.w_term)[0]) < 1e-12);
    assert!(rel(vec64(gp.without_autodiff())[0], vec64(hand.gp)[0]) < 1e-12);
    let names: Vec<&String> = hand.grads.iter().map(|(n, _)| n).collect();
    let mut expected: Vec<&String> = hp.keys().collect();
    let mut sorted = names.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected, "one gradient per parameter");
    let mut worst: f64 = 0.0;
    let mut nonzero = 0;
    for (name, g) in hand.grads {
        let g = vec64(g);
        let a = tracked[&name]
            .grad(&auto)
            .map(vec64)
            .unwrap_or_else(|| vec![0.0; g.len()]);
        assert_eq!(a.len(), g.len(), "{name}");
        for (x, y) in a.iter().zip(&g) {
            let err = (x - y).abs() / x.abs().max(y.abs()).max(1e-6);
            worst = worst.max(err);
            nonzero += usize::from(x.abs() > 1e-6);
        }
    }
    eprintln!("worst relative difference {worst:e} over {nonzero} non-zero entries");
    assert!(worst <= 1e-10, "worst relative difference {worst:e}");
    assert!(nonzero > 50, "only {nonzero} non-zero gradient entries");
}

/// The penalty as training computes it (real and fake rows only feed the other term).
fn fused_gp(params: &Params, x: &[f64], rows: usize, cols: usize, lambda: f64) -> Tensor<1> {
    let t = || ctx().tensor(x.to_vec(), [rows, cols]);
    critic_loss_terms(params, "c", LAYERS, t(), t(), t(), lambda).1
}

#[test]
fn gradient_penalty_weight_gradients_match_finite_differences_in_f64() {
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let hp = host_params(&mut rng);
    let (rows, cols) = (6, 7);
    let x: Vec<f64> = (0..rows * cols)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let lambda = 10.0;
    let gp_of = |hp: &BTreeMap<String, (Vec<usize>, Vec<f64>)>| {
        let p = device_params(hp);
        vec64(fused_gp(&p, &x, rows, cols, lambda))[0]
    };
    let mut tracked = device_params(&hp);
    for t in tracked.values_mut() {
        *t = t.clone().autodiff().require_grad();
    }
    let gp = fused_gp(&tracked, &x, rows, cols, lambda);
    let grads = gp.backward();
    // Central differences: truncation O(h²) against rounding O(ε/h); 1e-5 balances them.
    let h = 1e-5;
    let mut checked = 0;
    let mut worst: f64 = 0.0;
    for (name, (_, values)) in &hp {
        // Biases only move the ReLU masks, which are constant almost everywhere, so the
        // penalty does not depend on them: no gradient, and finite differences agree.
        let g = tracked[name]
            .grad(&grads)
            .map(vec64)
            .unwrap_or_else(|| vec![0.0; values.len()]);
        let step = (values.len() / 12).max(1);
        for i in (0..values.len()).step_by(step) {
            let (mut p, mut m) = (hp.clone(), hp.clone());
            p.get_mut(name).expect("name").1[i] += h;
            m.get_mut(name).expect("name").1[i] -= h;
            let fd = (gp_of(&p) - gp_of(&m)) / (2.0 * h);
            if name.ends_with(".w") {
                worst = worst.max(rel(g[i], fd));
                checked += 1;
            } else {
                assert!(
                    g[i] == 0.0 && fd.abs() < 1e-6,
                    "{name}[{i}]: {} vs {fd}",
                    g[i]
                );
            }
        }
    }
    assert!(checked > 30, "checked {checked} entries");
    eprintln!("worst relative error {worst:e}");
    assert!(worst <= 1e-6, "worst relative error {worst:e}");
}

/// The parameter gradients of one critic pass as host vectors, by name.
fn grads_by_name(g: &CriticGrads) -> BTreeMap<String, Vec<f64>> {
    g.grads
        .iter()
        .map(|(n, t)| (n.clone(), vec64(t.clone())))
        .collect()
}

/// Per-example gradient norms and the clipped sum, against a naive computation: one critic pass
/// per example (a batch of one is exactly that example's loss), its norm over every parameter,
/// each clipped to C by hand and averaged. Half the examples are clipped. With the gradient
/// penalty (λ = 10) and without it (λ = 0).
#[test]
fn per_example_clipping_equals_batch_of_one_passes_in_f64() {
    for lambda in [10.0, 0.0] {
        clipping_equals_batch_of_one(lambda);
    }
}

fn clipping_equals_batch_of_one(lambda: f64) {
    let mut rng = ChaCha8Rng::seed_from_u64(15);
    let params = device_params(&host_params(&mut rng));
    let (rows, cols) = (6, 7);
    let mut draw = || -> Vec<f64> {
        (0..rows * cols)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect()
    };
    let (real, fake, mix) = (draw(), draw(), draw());
    let t = |v: &[f64], n: usize| -> Tensor<2> { ctx().tensor(v.to_vec(), [n, cols]) };
    // Naive: each example alone.
    let mut per: Vec<BTreeMap<String, Vec<f64>>> = Vec::new();
    let mut norms = Vec::new();
    for i in 0..rows {
        let r = |v: &[f64]| t(&v[i * cols..(i + 1) * cols], 1);
        let g = critic_loss_grads(
            &params,
            "c",
            LAYERS,
            r(&real),
            r(&fake),
            r(&mix),
            lambda,
            None,
        );
        let g = grads_by_name(&g);
        norms.push(g.values().flatten().map(|x| x * x).sum::<f64>().sqrt());
        per.push(g);
    }
    let mut sorted = norms.clone();
    sorted.sort_by(f64::total_cmp);
    let c = (sorted[2] + sorted[3]) / 2.0;
    let clip = Clip { norm: c };
    let fused = critic_loss_grads(
        &params,
        "c",
        LAYERS,
        t(&real, rows),
        t(&fake, rows),
        t(&mix, rows),
        lambda,
        Some(clip),
    );
    let got_norms = vec64(fused.example_norms.clone().expect("norms with clipping"));
    for (g, w) in got_norms.iter().zip(&norms) {
        assert!(rel(*g, *w) < 1e-10, "example norm {g} vs batch-of-one {w}");
    }
    let fused = grads_by_name(&fused);
    let mut worst: f64 = 0.0;
    for (name, got) in &fused {
        for (k, g) in got.iter().enumerate() {
            let want: f64 = (0..rows)
                .map(|i| per[i][name][k] * (c / norms[i]).min(1.0))
                .sum::<f64>()
                / rows as f64;
            // The output bias's per-example gradient is 0 (−1/b + 1/b); its clipped sum is 0 up
            // to rounding, so the floor of the denominator is an absolute tolerance.
            worst = worst.max((g - want).abs() / want.abs().max(g.abs()).max(1e-6));
        }
    }
    eprintln!("worst relative difference {worst:e}");
    assert!(worst <= 1e-9, "worst relative difference {worst:e}");
    assert!(
        norms.iter().filter(|&&n| n > c).count() == 3,
        "half the examples are clipped"
    );
}

/// With a bound no example reaches, clipping changes no bit of any gradient.
#[test]
fn a_clip_bound_no_example_reaches_leaves_the_gradients_unchanged() {
    let mut rng = ChaCha8Rng::seed_from_u64(16);
    let params = device_params(&host_params(&mut rng));
    let mut x = || -> Tensor<2> {
        let v: Vec<f64> = (0..5 * 7).map(|_| rng.random_range(-1.0..1.0)).collect();
        ctx().tensor(v, [5, 7])
    };
    let (real, fake, mix) = (x(), x(), x());
    let pass = |clip| {
        critic_loss_grads(
            &params,
            "c",
            LAYERS,
            real.clone(),
            fake.clone(),
            mix.clone(),
            10.0,
            clip,
        )
    };
    let plain = grads_by_name(&pass(None));
    let clipped = grads_by_name(&pass(Some(Clip { norm: 1e12 })));
    assert_eq!(plain, clipped);
}
