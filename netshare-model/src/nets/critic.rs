//! The MLP critics: output and input gradient in one pass (for the generator step), and one
//! critic update's loss terms with every parameter's gradient derived by hand (no autodiff
//! graph). The explicit-ops forms they are tested against are in `reference`.

use burn::tensor::{Tensor, activation};

use super::{Params, linear, p};

/// A unit output gradient backpropagated through a critic's ReLU masks to its input:
/// `u_L = wₒᵀ`, `vₗ = uₗ₊₁ ⊙ Mₗ`, `uₗ = vₗWₗᵀ`. `masks[l]` holds layer l's masks for the rows
/// in question (`rows` of them); returns `u₀` (`[rows, in]`) and every `vₗ`, indexed by layer.
pub(super) fn input_grad_chain(
    params: &Params,
    prefix: &str,
    rows: usize,
    masks: &[Tensor<2>],
) -> (Tensor<2>, Vec<Tensor<2>>) {
    let wo = p(params, &format!("{prefix}.out.w")).clone();
    let [fan, _] = wo.dims();
    let mut u = wo.transpose().expand([rows, fan]);
    let mut vs = Vec::with_capacity(masks.len());
    for l in (0..masks.len()).rev() {
        let v = u * masks[l].clone();
        u = v
            .clone()
            .matmul(p(params, &format!("{prefix}.l{l}.w")).clone().transpose());
        vs.push(v);
    }
    vs.reverse();
    (u, vs)
}

/// The critic's output `[B, 1]` and its gradient with respect to the input `[B, in]`.
pub(crate) fn critic_with_input_grad(
    params: &Params,
    prefix: &str,
    layers: usize,
    x: Tensor<2>,
) -> (Tensor<2>, Tensor<2>) {
    let [rows, _] = x.dims();
    let mut h = x;
    let mut masks = Vec::with_capacity(layers);
    for l in 0..layers {
        let a = linear(params, &format!("{prefix}.l{l}"), h);
        let plain = a.clone().without_autodiff();
        let dtype = plain.dtype();
        masks.push(plain.greater_elem(0.0).float().cast(dtype));
        h = activation::relu(a);
    }
    let out = linear(params, &format!("{prefix}.out"), h);
    (out, input_grad_chain(params, prefix, rows, &masks).0)
}

/// One critic update's worth of work: both loss terms and the gradient of their sum for every
/// parameter of the critic.
pub(crate) struct CriticGrads {
    /// mean D(fake) − mean D(real).
    pub w_term: Tensor<1>,
    /// λ · mean (‖∇ₓ D(mix)‖₂ − 1)².
    pub gp: Tensor<1>,
    /// (parameter name, gradient) for every weight and bias of the critic.
    pub grads: Vec<(String, Tensor<2>)>,
    /// With per-example clipping: each example's gradient norm before clipping, `[b, 1]`.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the DP-SGD step will log it; tests read it today")
    )]
    pub example_norms: Option<Tensor<2>>,
}

/// Per-example clipping of the critic's gradient, for DP-SGD.
///
/// Example `i` is the triple (real row i, fake row i, interpolate i) and its loss is
/// `ℓᵢ = D(fakeᵢ) − D(realᵢ) + λ(‖∇ₓD(mixᵢ)‖ − 1)²`, so the batch loss is the mean of the `ℓᵢ`
/// and the interpolate's penalty counts towards the real example it was made from. With
/// clipping, the gradients become `(1/b) Σᵢ min(1, C/‖∇ℓᵢ‖) ∇ℓᵢ`: each example's whole gradient
/// (every weight and bias of the critic) scaled to L2 norm at most `C`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Clip {
    /// The bound `C` on each example's gradient norm.
    pub norm: f64,
}

/// Row-wise dot products of two `[b, n]` tensors, `[b, 1]`.
fn dots(x: &Tensor<2>, y: &Tensor<2>) -> Tensor<2> {
    (x.clone() * y.clone()).sum_dim(1)
}

/// Per-example squared Frobenius norms of `Σ_r x_rᵀ y_r`, where example i's rows are row i of
/// each of the `parts` (slices of the stacked lhs and rhs): `Σ_{p,q} (x_p·x_q)(y_p·y_q)`. This is
/// how each example's weight-gradient norm comes from the same rows the batch gradient's matmul
/// uses, without forming any per-example gradient.
fn outer_sum_norms(xs: &[Tensor<2>], ys: &[Tensor<2>]) -> Tensor<2> {
    let mut acc: Option<Tensor<2>> = None;
    for p in 0..xs.len() {
        for q in p..xs.len() {
            let mut t = dots(&xs[p], &xs[q]) * dots(&ys[p], &ys[q]);
            if p != q {
                t = t.mul_scalar(2.0);
            }
            acc = Some(match acc {
                Some(a) => a + t,
                None => t,
            });
        }
    }
    acc.expect("at least one part")
}

/// Rows `k·b..(k+1)·b` of `t`.
fn part(t: &Tensor<2>, k: usize, b: usize) -> Tensor<2> {
    let [_, w] = t.dims();
    t.clone().slice([k * b..(k + 1) * b, 0..w])
}

/// What [`critic_loss_terms`] computes, with the gradient of `w_term + gp` for the critic's
/// parameters derived by hand instead of by the autodiff graph (tests hold the two equal).
///
/// With layers `aₗ = hₗWₗ + bₗ`, `hₗ₊₁ = relu(aₗ)`, masks `Mₗ = 1[aₗ > 0]` and output weights `wₒ`:
/// the penalty's input gradient is `u₀` from `u_L = wₒᵀ`, `vₗ = uₗ₊₁ ⊙ Mₗ`, `uₗ = vₗWₗᵀ` on the
/// mix rows. With `eₗ = ∂gp/∂uₗ` (`e₀ = 2λ/b · (‖u₀‖ − 1)/‖u₀‖ · u₀`, `eₗ₊₁ = (eₗWₗ) ⊙ Mₗ`) the
/// penalty adds `eₗᵀvₗ` to `∂/∂Wₗ` and `Σᵢ e_L` to `∂/∂wₒ`; it does not touch the biases. The
/// Wasserstein term is ordinary backprop of ±1/b through the real and fake rows. Each weight's two
/// contributions come from one matmul over stacked rows: `[hₗ; eₗ]ᵀ [∂aₗ; vₗ]`.
///
/// Against the autodiff form this skips the backward pass through the mix rows' forward (whose
/// outputs only feed the masks), the transposes' gradient accumulation and the graph itself.
#[allow(clippy::too_many_arguments)]
pub(crate) fn critic_loss_grads(
    params: &Params,
    prefix: &str,
    layers: usize,
    real: Tensor<2>,
    fake: Tensor<2>,
    mix: Tensor<2>,
    lambda: f64,
    clip: Option<Clip>,
) -> CriticGrads {
    let [b, input] = real.dims();
    let dtype = real.dtype();
    let weight = |l: usize| p(params, &format!("{prefix}.l{l}.w")).clone();
    // Forward over all 3b rows; keep each layer's input and ReLU mask.
    let mut h = Tensor::cat(vec![real, fake, mix], 0);
    let mut inputs = Vec::with_capacity(layers);
    let mut masks = Vec::with_capacity(layers);
    for l in 0..layers {
        let a = linear(params, &format!("{prefix}.l{l}"), h.clone());
        let m = a.clone().greater_elem(0.0).float().cast(dtype);
        inputs.push(h);
        h = a * m.clone();
        masks.push(m);
    }
    let [_, hidden] = h.dims();
    let wo = p(params, &format!("{prefix}.out.w")).clone();
    let top = h.slice([0..2 * b, 0..hidden]);
    let out = linear(params, &format!("{prefix}.out"), top.clone());
    let w_term =
        out.clone().slice([b..2 * b, 0..1]).mean() - out.clone().slice([0..b, 0..1]).mean();
    // The penalty's input gradient on the mix rows, keeping every vₗ.
    let rows = |l: usize, r: std::ops::Range<usize>| {
        let [_, width] = masks[l].dims();
        masks[l].clone().slice([r, 0..width])
    };
    let mix_masks: Vec<Tensor<2>> = (0..layers).map(|l| rows(l, 2 * b..3 * b)).collect();
    let (u, vs) = input_grad_chain(params, prefix, b, &mix_masks);
    let norm = (u.clone().square().sum_dim(1) + 1e-12).sqrt();
    let gp = (norm.clone() - 1.0).square().mean().mul_scalar(lambda);
    let coef = ((norm.clone() - 1.0) / norm).mul_scalar(2.0 * lambda / b as f64);
    // eₗ for l = 0..=L.
    let mut es = Vec::with_capacity(layers + 1);
    es.push(u * coef.expand([b, input]));
    for l in 0..layers {
        let e = es[l].clone().matmul(weight(l)) * mix_masks[l].clone();
        es.push(e);
    }
    // Wasserstein seed: −1/b on real rows, +1/b on fake rows.
    let ones = out.ones_like();
    let seed = Tensor::cat(
        vec![
            ones.clone().slice([0..b, 0..1]).mul_scalar(-1.0 / b as f64),
            ones.slice([b..2 * b, 0..1]).mul_scalar(1.0 / b as f64),
        ],
        0,
    );
    // Each gradient is lhsᵀ·rhs over stacked rows (weights) or a column sum of rows (biases);
    // collect the factors first, so per-example norms can scale the rows before the products.
    let e_top = es[layers].clone();
    let ones_b = e_top.clone().slice([0..b, 0..1]).ones_like();
    let mut weights: Vec<(String, Tensor<2>, Tensor<2>)> = Vec::with_capacity(layers + 1);
    let mut biases: Vec<(String, Tensor<2>)> = Vec::with_capacity(layers + 1);
    weights.push((
        format!("{prefix}.out.w"),
        Tensor::cat(vec![top, e_top], 0),
        Tensor::cat(vec![seed.clone(), ones_b], 0),
    ));
    biases.push((format!("{prefix}.out.b"), seed.clone()));
    let mut delta = seed.matmul(wo.transpose());
    for l in (0..layers).rev() {
        let da = delta * rows(l, 0..2 * b);
        let [_, fan] = inputs[l].dims();
        let lhs = Tensor::cat(
            vec![inputs[l].clone().slice([0..2 * b, 0..fan]), es[l].clone()],
            0,
        );
        let rhs = Tensor::cat(vec![da.clone(), vs[l].clone()], 0);
        weights.push((format!("{prefix}.l{l}.w"), lhs, rhs));
        biases.push((format!("{prefix}.l{l}.b"), da.clone()));
        delta = if l > 0 {
            da.matmul(weight(l).transpose())
        } else {
            da
        };
    }
    // With clipping: example i's rows are i, b + i and 2b + i of each stacked factor; its
    // gradient's squared norm sums those of every weight and bias. The rows carry the loss's
    // 1/b, so ‖∇ℓᵢ‖ is b times the norm of what they give.
    let mut example_norms = None;
    if let Some(c) = clip {
        let mut sq: Option<Tensor<2>> = None;
        let mut add = |t: Tensor<2>| {
            sq = Some(match sq.take() {
                Some(a) => a + t,
                None => t,
            });
        };
        for (_, lhs, rhs) in &weights {
            let xs: Vec<Tensor<2>> = (0..3).map(|k| part(lhs, k, b)).collect();
            let ys: Vec<Tensor<2>> = (0..3).map(|k| part(rhs, k, b)).collect();
            add(outer_sum_norms(&xs, &ys));
        }
        for (_, rows) in &biases {
            let s = part(rows, 0, b) + part(rows, 1, b);
            add(dots(&s, &s));
        }
        let norms = sq
            .expect("a critic has parameters")
            .sqrt()
            .mul_scalar(b as f64);
        // min(1, C / ‖∇ℓᵢ‖), with a zero gradient left as it is.
        let scale = (norms.clone() + 1e-30)
            .recip()
            .mul_scalar(c.norm)
            .clamp_max(1.0);
        let three = Tensor::cat(vec![scale.clone(), scale.clone(), scale.clone()], 0);
        let two = Tensor::cat(vec![scale.clone(), scale], 0);
        for (_, _, rhs) in &mut weights {
            let [_, w] = rhs.dims();
            *rhs = rhs.clone() * three.clone().expand([3 * b, w]);
        }
        for (_, rows) in &mut biases {
            let [_, w] = rows.dims();
            *rows = rows.clone() * two.clone().expand([2 * b, w]);
        }
        example_norms = Some(norms);
    }
    let mut grads = Vec::with_capacity(2 * layers + 2);
    for ((wn, lhs, rhs), (bn, rows)) in weights.into_iter().zip(biases) {
        grads.push((wn, lhs.transpose().matmul(rhs)));
        grads.push((bn, rows.sum_dim(0)));
    }
    CriticGrads {
        w_term,
        gp,
        grads,
        example_norms,
    }
}
