//! Reference forms, for tests only: the critic, its input gradient and the loss terms written as
//! explicit tensor ops that burn's autodiff differentiates. `critic` holds its hand-derived
//! gradients equal to these, and these are checked against finite differences.

use burn::tensor::{Tensor, activation};

use super::critic::input_grad_chain;
use super::{Params, critic_with_input_grad, linear};

/// An MLP critic's output `[B, 1]`.
pub(crate) fn critic(params: &Params, prefix: &str, layers: usize, x: Tensor<2>) -> Tensor<2> {
    let mut h = x;
    for l in 0..layers {
        h = activation::relu(linear(params, &format!("{prefix}.l{l}"), h));
    }
    linear(params, &format!("{prefix}.out"), h)
}

/// The critic's gradient with respect to its input, `[B, in]`, as forward ops (the reference
/// form of what [`critic_loss_grads`] computes fused; tests tie the two together): backprop
/// through the MLP by hand (`g ← (g ⊙ 1[a > 0]) Wᵀ`). The ReLU masks are constants (their
/// derivative is zero almost everywhere), the weights stay in the graph, so differentiating a
/// penalty on this gradient gives the penalty's gradient for the weights.
pub(crate) fn critic_input_grad(
    params: &Params,
    prefix: &str,
    layers: usize,
    x: Tensor<2>,
) -> Tensor<2> {
    critic_with_input_grad(params, prefix, layers, x).1
}

/// The critic loss terms in one pass: the rows of `real`, `fake` and `mix` go through the MLP
/// together (one matmul per layer instead of three), the outputs of the first two give the
/// Wasserstein term mean D(fake) − mean D(real), the ReLU masks of the last give the penalty
/// λ · mean (‖∇ₓ D(mix)‖₂ − 1)².
pub(crate) fn critic_loss_terms(
    params: &Params,
    prefix: &str,
    layers: usize,
    real: Tensor<2>,
    fake: Tensor<2>,
    mix: Tensor<2>,
    lambda: f64,
) -> (Tensor<1>, Tensor<1>) {
    let [b, _] = real.dims();
    let mut h = Tensor::cat(vec![real, fake, mix], 0);
    let mut masks = Vec::with_capacity(layers);
    for l in 0..layers {
        let a = linear(params, &format!("{prefix}.l{l}"), h);
        let [_, width] = a.dims();
        let plain = a.clone().without_autodiff().slice([2 * b..3 * b, 0..width]);
        let dtype = plain.dtype();
        masks.push(plain.greater_elem(0.0).float().cast(dtype));
        h = activation::relu(a);
    }
    let [_, width] = h.dims();
    let out = linear(
        params,
        &format!("{prefix}.out"),
        h.slice([0..2 * b, 0..width]),
    );
    let w_term = out.clone().slice([b..2 * b, 0..1]).mean() - out.slice([0..b, 0..1]).mean();
    let (g, _) = input_grad_chain(params, prefix, b, &masks);
    let norm = (g.square().sum_dim(1) + 1e-12).sqrt();
    (w_term, (norm - 1.0).square().mean().mul_scalar(lambda))
}

/// λ · mean over the batch of (‖∇ₓ D(x)‖₂ − 1)².
pub(crate) fn gradient_penalty(
    params: &Params,
    prefix: &str,
    layers: usize,
    x: Tensor<2>,
    lambda: f64,
) -> Tensor<1> {
    let g = critic_input_grad(params, prefix, layers, x);
    let norm = (g.square().sum_dim(1) + 1e-12).sqrt();
    (norm - 1.0).square().mean().mul_scalar(lambda)
}
