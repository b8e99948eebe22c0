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
pub(crate) fn critic_loss_grads(
    params: &Params,
    prefix: &str,
    layers: usize,
    real: Tensor<2>,
    fake: Tensor<2>,
    mix: Tensor<2>,
    lambda: f64,
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
    let mut grads = Vec::with_capacity(2 * layers + 2);
    let e_top = es[layers].clone();
    let ones_b = e_top.clone().slice([0..b, 0..1]).ones_like();
    grads.push((
        format!("{prefix}.out.w"),
        Tensor::cat(vec![top, e_top], 0)
            .transpose()
            .matmul(Tensor::cat(vec![seed.clone(), ones_b], 0)),
    ));
    grads.push((format!("{prefix}.out.b"), seed.clone().sum_dim(0)));
    let mut delta = seed.matmul(wo.transpose());
    for l in (0..layers).rev() {
        let da = delta * rows(l, 0..2 * b);
        let [_, fan] = inputs[l].dims();
        let lhs = Tensor::cat(
            vec![inputs[l].clone().slice([0..2 * b, 0..fan]), es[l].clone()],
            0,
        );
        let rhs = Tensor::cat(vec![da.clone(), vs[l].clone()], 0);
        grads.push((format!("{prefix}.l{l}.w"), lhs.transpose().matmul(rhs)));
        grads.push((format!("{prefix}.l{l}.b"), da.clone().sum_dim(0)));
        delta = if l > 0 {
            da.matmul(weight(l).transpose())
        } else {
            da
        };
    }
    CriticGrads { w_term, gp, grads }
}
