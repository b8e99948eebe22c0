//! The networks as tensor functions of a flat, named parameter set: the attribute generator
//! (MLP with batch norm), the two MLP critics (the LSTM feature generator is in `features`),
//! and the critics' input gradient written out as forward ops (burn differentiates only once,
//! so the gradient penalty's dependence on the critic weights has to be an ordinary graph).

use std::collections::BTreeMap;

use burn::tensor::{DType, Device, Element, Tensor, TensorCreationOptions, TensorData, activation};
use netshare_core::layout::{Activation, Layout, Segment};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::config::ModelConfig;
use crate::heads::{Run, runs};
use crate::weights::HostTensors;

/// Named parameters; every tensor is rank 2 (biases are `[1, n]`).
pub(crate) type Params = BTreeMap<String, Tensor<2>>;

/// Where tensors live and which float type they use.
#[derive(Clone, Debug)]
pub(crate) struct Ctx {
    pub device: Device,
    pub dtype: DType,
}

impl Ctx {
    /// A tensor from host values.
    pub fn tensor<const D: usize, E: Element>(
        &self,
        values: Vec<E>,
        shape: [usize; D],
    ) -> Tensor<D> {
        Tensor::from_data(
            TensorData::new(values, shape),
            TensorCreationOptions::new(self.device.clone()).with_dtype(self.dtype),
        )
    }

    /// Standard normal noise of a shape, from an explicit RNG.
    pub fn normal<const D: usize>(&self, rng: &mut ChaCha8Rng, shape: [usize; D]) -> Tensor<D> {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| StandardNormal.sample(rng)).collect();
        self.tensor(v, shape)
    }

    /// Uniform [0, 1) values of a shape.
    pub fn uniform<const D: usize>(&self, rng: &mut ChaCha8Rng, shape: [usize; D]) -> Tensor<D> {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.random::<f32>()).collect();
        self.tensor(v, shape)
    }
}

/// Whether host loops apply to tensors on `device` (they already live in host memory): the
/// fused Adam and the fused LSTM run there, tensor ops everywhere else.
pub(crate) fn on_host(device: &Device) -> bool {
    *device == Device::flex()
}

/// Shapes of everything, derived from the config and the layout.
#[derive(Clone, Debug)]
pub(crate) struct Dims {
    /// Attribute width A.
    pub attr: usize,
    /// Feature width F (without the two gen_flag columns).
    pub feat: usize,
    /// Records per flow T.
    pub max_len: usize,
    /// Records per LSTM step.
    pub sample_len: usize,
    /// LSTM steps T / sample_len.
    pub steps: usize,
    pub attr_noise: usize,
    pub feat_noise: usize,
    pub gen_hidden: usize,
    pub gen_layers: usize,
    pub lstm: usize,
    pub critic_hidden: usize,
    pub critic_layers: usize,
    /// Attribute output runs.
    pub attr_runs: Vec<Run>,
    /// Feature output runs, the gen_flag softmax last.
    pub feat_runs: Vec<Run>,
}

impl Dims {
    /// Derives the shapes; `Err` text says what does not fit.
    pub fn new(config: &ModelConfig, layout: &Layout, max_len: usize) -> Result<Dims, String> {
        for s in layout.attributes.iter().chain(&layout.features) {
            if s.dim == 0 {
                return Err(format!("layout head {:?} has dim 0", s.field));
            }
        }
        if layout.attributes.is_empty() {
            return Err("layout has no attribute heads".into());
        }
        let sample_len = layout.sample_len;
        if sample_len == 0 || max_len == 0 || !max_len.is_multiple_of(sample_len) {
            return Err(format!(
                "time length {max_len} is not a positive multiple of the layout's sample_len \
                 {sample_len}"
            ));
        }
        let mut feat_segs = layout.features.clone();
        feat_segs.push(Segment {
            field: "gen_flag".into(),
            dim: 2,
            activation: Activation::Softmax,
        });
        Ok(Dims {
            attr: layout.attribute_dim(),
            feat: layout.feature_dim(),
            max_len,
            sample_len,
            steps: max_len / sample_len,
            attr_noise: config.attr_noise_dim,
            feat_noise: config.feat_noise_dim,
            gen_hidden: config.gen_hidden,
            gen_layers: config.gen_layers,
            lstm: config.lstm_hidden,
            critic_hidden: config.critic_hidden,
            critic_layers: config.critic_layers,
            attr_runs: runs(&layout.attributes),
            feat_runs: runs(&feat_segs),
        })
    }

    /// Width of one record as the critic sees it: features plus the two gen_flag columns.
    pub fn rec(&self) -> usize {
        self.feat + 2
    }

    /// Input width of the main critic: flattened records plus attributes.
    pub fn critic_in(&self) -> usize {
        self.max_len * self.rec() + self.attr
    }
}

/// How one parameter starts.
#[derive(Clone, Copy, Debug)]
enum Init {
    Xavier,
    Zeros,
    Ones,
    /// LSTM bias: zeros except the forget gate, which starts at one.
    ForgetBias,
}

/// Which optimiser group a parameter belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Group {
    Generator,
    Critic,
    AuxCritic,
}

/// One parameter's name, shape, group and initialiser.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    pub name: String,
    pub shape: [usize; 2],
    pub group: Group,
    init: Init,
}

impl Spec {
    fn new(name: String, shape: [usize; 2], group: Group, init: Init) -> Spec {
        Spec {
            name,
            shape,
            group,
            init,
        }
    }
}

fn mlp_specs(
    out: &mut Vec<Spec>,
    prefix: &str,
    group: Group,
    dims: (usize, usize, usize, usize),
    batch_norm: bool,
) {
    let (input, hidden, layers, output) = dims;
    let mut fan = input;
    for l in 0..layers {
        let p = format!("{prefix}.l{l}");
        out.push(Spec::new(
            format!("{p}.w"),
            [fan, hidden],
            group,
            Init::Xavier,
        ));
        out.push(Spec::new(format!("{p}.b"), [1, hidden], group, Init::Zeros));
        if batch_norm {
            out.push(Spec::new(
                format!("{p}.gamma"),
                [1, hidden],
                group,
                Init::Ones,
            ));
            out.push(Spec::new(
                format!("{p}.beta"),
                [1, hidden],
                group,
                Init::Zeros,
            ));
        }
        fan = hidden;
    }
    out.push(Spec::new(
        format!("{prefix}.out.w"),
        [fan, output],
        group,
        Init::Xavier,
    ));
    out.push(Spec::new(
        format!("{prefix}.out.b"),
        [1, output],
        group,
        Init::Zeros,
    ));
}

/// Every parameter of the model, in a fixed order.
pub(crate) fn specs(d: &Dims) -> Vec<Spec> {
    let mut s = Vec::new();
    let g = Group::Generator;
    mlp_specs(
        &mut s,
        "gen_attr",
        g,
        (d.attr_noise, d.gen_hidden, d.gen_layers, d.attr),
        true,
    );
    let (h4, rec_out) = (4 * d.lstm, d.sample_len * d.rec());
    for (name, shape, init) in [
        ("gen_feat.lstm.wa", [d.attr, h4], Init::Xavier),
        ("gen_feat.lstm.wz", [d.feat_noise, h4], Init::Xavier),
        ("gen_feat.lstm.wh", [d.lstm, h4], Init::Xavier),
        ("gen_feat.lstm.b", [1, h4], Init::ForgetBias),
        ("gen_feat.out.w", [d.lstm, rec_out], Init::Xavier),
        ("gen_feat.out.b", [1, rec_out], Init::Zeros),
    ] {
        s.push(Spec::new(name.into(), shape, g, init));
    }
    mlp_specs(
        &mut s,
        "critic",
        Group::Critic,
        (d.critic_in(), d.critic_hidden, d.critic_layers, 1),
        false,
    );
    mlp_specs(
        &mut s,
        "aux_critic",
        Group::AuxCritic,
        (d.attr, d.critic_hidden, d.critic_layers, 1),
        false,
    );
    s
}

/// Fresh parameters drawn from `rng` in spec order: name → (shape, host values).
pub(crate) fn init_host(specs: &[Spec], rng: &mut ChaCha8Rng) -> HostTensors {
    let mut out = BTreeMap::new();
    for s in specs {
        let [r, c] = s.shape;
        let n = r * c;
        let v: Vec<f32> = match s.init {
            Init::Xavier => {
                let k = (6.0 / (r + c) as f64).sqrt() as f32;
                (0..n).map(|_| rng.random_range(-k..k)).collect()
            }
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::ForgetBias => {
                let h = c / 4;
                (0..n)
                    .map(|i| {
                        if (h..2 * h).contains(&(i % c)) {
                            1.0
                        } else {
                            0.0
                        }
                    })
                    .collect()
            }
        };
        out.insert(s.name.clone(), (s.shape.to_vec(), v));
    }
    out
}

pub(crate) fn p<'a>(params: &'a Params, name: &str) -> &'a Tensor<2> {
    params.get(name).unwrap_or_else(|| {
        panic!("parameter {name} exists: the parameter set is built from specs()")
    })
}

pub(crate) fn linear(params: &Params, prefix: &str, x: Tensor<2>) -> Tensor<2> {
    let w = p(params, &format!("{prefix}.w")).clone();
    let b = p(params, &format!("{prefix}.b")).clone();
    let [rows, _] = x.dims();
    let [_, out] = w.dims();
    x.matmul(w) + b.expand([rows, out])
}

/// Attribute generator: noise `[B, attr_noise]` → activated attributes `[B, A]`.
/// Batch norm always uses the batch's own statistics (training and sampling alike).
pub(crate) fn gen_attributes(params: &Params, d: &Dims, z: Tensor<2>) -> Tensor<2> {
    gen_attributes_grouped(params, d, z, 1)
}

/// [`gen_attributes`] for `groups` batches stacked row-wise in `z` (equal sizes): one matmul per
/// layer for all of them, batch-norm statistics per batch, so each batch's rows come out as a
/// pass of that batch alone would give them.
pub(crate) fn gen_attributes_grouped(
    params: &Params,
    d: &Dims,
    z: Tensor<2>,
    groups: usize,
) -> Tensor<2> {
    let mut h = z;
    for l in 0..d.gen_layers {
        let pre = format!("gen_attr.l{l}");
        let a = linear(params, &pre, h);
        let [rows, width] = a.dims();
        let per = rows / groups;
        let a = a.reshape([groups, per, width]);
        let mean = a.clone().mean_dim(1);
        let centred = a - mean.expand([groups, per, width]);
        let var = centred.clone().square().mean_dim(1);
        let normed =
            (centred / (var + 1e-5).sqrt().expand([groups, per, width])).reshape([rows, width]);
        let gamma = p(params, &format!("{pre}.gamma"))
            .clone()
            .expand([rows, width]);
        let beta = p(params, &format!("{pre}.beta"))
            .clone()
            .expand([rows, width]);
        h = activation::relu(normed * gamma + beta);
    }
    crate::heads::activate(linear(params, "gen_attr.out", h), &d.attr_runs)
}

/// An MLP critic's output `[B, 1]`.
#[cfg(test)]
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
#[cfg(test)]
pub(crate) fn critic_input_grad(
    params: &Params,
    prefix: &str,
    layers: usize,
    x: Tensor<2>,
) -> Tensor<2> {
    critic_with_input_grad(params, prefix, layers, x).1
}

/// A unit output gradient backpropagated through a critic's ReLU masks to its input:
/// `u_L = wₒᵀ`, `vₗ = uₗ₊₁ ⊙ Mₗ`, `uₗ = vₗWₗᵀ`. `masks[l]` holds layer l's masks for the rows
/// in question (`rows` of them); returns `u₀` (`[rows, in]`) and every `vₗ`, indexed by layer.
fn input_grad_chain(
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

/// The critic loss terms in one pass: the rows of `real`, `fake` and `mix` go through the MLP
/// together (one matmul per layer instead of three), the outputs of the first two give the
/// Wasserstein term mean D(fake) − mean D(real), the ReLU masks of the last give the penalty
/// λ · mean (‖∇ₓ D(mix)‖₂ − 1)².
#[cfg(test)]
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

/// λ · mean over the batch of (‖∇ₓ D(x)‖₂ − 1)².
#[cfg(test)]
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

#[cfg(test)]
mod tests {
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
        let hand = critic_loss_grads(&device_params(&hp), "c", LAYERS, real, fake, mix, 10.0);
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
}
