//! The networks as tensor functions of a flat, named parameter set: shapes ([`Dims`]),
//! parameter specs and initialisation, and the pieces each network is built from. The attribute
//! generator is in `generator`, the critics with their hand-derived gradients in `critic`, the
//! explicit-ops reference forms the tests hold those against in `reference` (the LSTM feature
//! generator is in `crate::features` and `crate::lstm`).

mod critic;
mod generator;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod tests;

#[cfg(test)]
pub(crate) use critic::CriticGrads;
pub(crate) use critic::{Clip, critic_loss_grads, critic_with_input_grad};
pub(crate) use generator::{gen_attributes, gen_attributes_grouped};
#[cfg(test)]
pub(crate) use reference::{critic, critic_input_grad, critic_loss_terms, gradient_penalty};

use std::collections::BTreeMap;

use burn::tensor::{DType, Device, Element, Tensor, TensorCreationOptions, TensorData};
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
