//! Adam (Kingma & Ba) with bias correction, as PyTorch computes it. On the CPU the moments are
//! plain vectors and one fused loop updates each parameter (one read of the gradient, moments
//! and weights, one write of each); on other devices the same arithmetic runs as tensor ops.
//! Both forms do the same f32 operations in the same order, so they give the same bits (tested).

use std::collections::BTreeMap;

use burn::tensor::Tensor;
use rayon::prelude::*;

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::nets::{Ctx, Params};
use crate::weights::HostTensors;

const EPS: f32 = 1e-8;

/// First and second moments of one parameter, in host memory.
struct HostMoments {
    shape: [usize; 2],
    m: Vec<f32>,
    v: Vec<f32>,
}

enum State {
    Host(BTreeMap<String, HostMoments>),
    Device { m: Params, v: Params },
}

/// Adam state of one parameter group.
pub(crate) struct Adam {
    state: State,
    /// Updates done (the bias correction's step count).
    pub t: u64,
}

/// The f32 constants of one update, rounded once as the tensor ops round their scalars.
#[derive(Clone, Copy)]
struct Consts {
    b1: f32,
    one_minus_b1: f32,
    b2: f32,
    one_minus_b2: f32,
    c2: f32,
    step: f32,
}

impl Consts {
    fn new(cfg: &ModelConfig, t: u64) -> Consts {
        let (b1, b2) = (cfg.beta1, cfg.beta2);
        let c1 = 1.0 - b1.powi(t as i32);
        Consts {
            b1: b1 as f32,
            one_minus_b1: (1.0 - b1) as f32,
            b2: b2 as f32,
            one_minus_b2: (1.0 - b2) as f32,
            c2: (1.0 - b2.powi(t as i32)) as f32,
            step: (cfg.lr / c1) as f32,
        }
    }
}

fn shape2(t: &Tensor<2>) -> [usize; 2] {
    let [r, c] = t.dims();
    [r, c]
}

fn read(t: Tensor<2>, what: &str) -> Result<Vec<f32>> {
    t.try_into_vec_as::<f32>()
        .map_err(|e| Error::Backend(format!("reading {what}: {e:?}")))
}

impl Adam {
    /// Zero moments for the parameters `names`; `fused` picks the host form.
    pub fn new(params: &Params, names: &[String], fused: bool) -> Adam {
        let state = if fused {
            State::Host(
                names
                    .iter()
                    .map(|n| {
                        let shape = shape2(&params[n]);
                        let len = shape[0] * shape[1];
                        let zeros = HostMoments {
                            shape,
                            m: vec![0.0; len],
                            v: vec![0.0; len],
                        };
                        (n.clone(), zeros)
                    })
                    .collect(),
            )
        } else {
            let z: Params = names
                .iter()
                .map(|n| (n.clone(), params[n].zeros_like()))
                .collect();
            State::Device { m: z.clone(), v: z }
        };
        Adam { state, t: 0 }
    }

    /// One update of every parameter in `grads` (all of this group's parameters).
    pub fn step(
        &mut self,
        cfg: &ModelConfig,
        ctx: &Ctx,
        params: &mut Params,
        grads: Vec<(String, Tensor<2>)>,
    ) -> Result<()> {
        self.t += 1;
        let k = Consts::new(cfg, self.t);
        match &mut self.state {
            State::Host(moments) => {
                let mut grads: BTreeMap<String, Tensor<2>> = grads.into_iter().collect();
                let work: Vec<(&String, &mut HostMoments, Tensor<2>, Tensor<2>)> = moments
                    .iter_mut()
                    .map(|(name, hm)| {
                        let g = grads
                            .remove(name)
                            .ok_or_else(|| Error::Backend(format!("no gradient for {name}")))?;
                        Ok((name, hm, g, params[name].clone()))
                    })
                    .collect::<Result<_>>()?;
                let updated: Vec<(String, Vec<f32>)> = work
                    .into_par_iter()
                    .map(|(name, hm, g, p)| {
                        let g = read(g, name)?;
                        let mut p = read(p, name)?;
                        fused_update(&k, &mut p, &mut hm.m, &mut hm.v, &g);
                        Ok((name.clone(), p))
                    })
                    .collect::<Result<_>>()?;
                for (name, p) in updated {
                    let shape = moments[&name].shape;
                    params.insert(name, ctx.tensor(p, shape));
                }
            }
            State::Device { m: m_all, v: v_all } => {
                let p_all = &*params;
                let updated: Vec<(String, Tensor<2>, Tensor<2>, Tensor<2>)> = grads
                    .into_par_iter()
                    .map(|(name, g)| {
                        let m = m_all[&name].clone().mul_scalar(k.b1)
                            + g.clone().mul_scalar(k.one_minus_b1);
                        let v = v_all[&name].clone().mul_scalar(k.b2)
                            + g.square().mul_scalar(k.one_minus_b2);
                        let denom = v.clone().div_scalar(k.c2).sqrt().add_scalar(EPS);
                        let p = p_all[&name].clone() - (m.clone() / denom).mul_scalar(k.step);
                        (name, m, v, p)
                    })
                    .collect();
                for (name, m, v, p) in updated {
                    m_all.insert(name.clone(), m);
                    v_all.insert(name.clone(), v);
                    params.insert(name, p);
                }
            }
        }
        Ok(())
    }

    /// Name → shape of every moment (for checking a checkpoint against the model).
    pub fn shapes(&self) -> BTreeMap<String, Vec<usize>> {
        match &self.state {
            State::Host(moments) => moments
                .iter()
                .map(|(k, hm)| (k.clone(), hm.shape.to_vec()))
                .collect(),
            State::Device { m, .. } => m
                .iter()
                .map(|(k, t)| (k.clone(), t.dims().to_vec()))
                .collect(),
        }
    }

    /// The first and second moments as host tensors.
    pub fn moments(&self) -> Result<(HostTensors, HostTensors)> {
        match &self.state {
            State::Host(moments) => {
                let pick = |f: &dyn Fn(&HostMoments) -> &Vec<f32>| -> HostTensors {
                    moments
                        .iter()
                        .map(|(k, hm)| (k.clone(), (hm.shape.to_vec(), f(hm).clone())))
                        .collect()
                };
                Ok((pick(&|hm| &hm.m), pick(&|hm| &hm.v)))
            }
            State::Device { m, v } => Ok((crate::host::to_host(m)?, crate::host::to_host(v)?)),
        }
    }

    /// Replaces the moments (shapes already checked against [`Adam::shapes`]).
    pub fn set_moments(&mut self, ctx: &Ctx, m: HostTensors, v: HostTensors) {
        match &mut self.state {
            State::Host(moments) => {
                for (k, hm) in moments.iter_mut() {
                    if let (Some((_, mv)), Some((_, vv))) = (m.get(k), v.get(k)) {
                        hm.m = mv.clone();
                        hm.v = vv.clone();
                    }
                }
            }
            State::Device { m: dm, v: dv } => {
                *dm = crate::host::to_device(ctx, &m);
                *dv = crate::host::to_device(ctx, &v);
            }
        }
    }
}

/// The update of one parameter, element by element, in the tensor form's order of operations.
fn fused_update(k: &Consts, p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
    for (((p, m), v), &g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
        let mi = *m * k.b1 + g * k.one_minus_b1;
        let vi = *v * k.b2 + g * g * k.one_minus_b2;
        let denom = (vi / k.c2).sqrt() + EPS;
        *p -= mi / denom * k.step;
        *m = mi;
        *v = vi;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{DType, Device};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn the_fused_host_update_gives_the_tensor_form_bit_for_bit() {
        let ctx = Ctx {
            device: Device::flex(),
            dtype: DType::F32,
        };
        let cfg = ModelConfig::profile(crate::config::Profile::Tiny);
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut rand = |shape: [usize; 2]| -> Tensor<2> {
            let v: Vec<f32> = (0..shape[0] * shape[1])
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            ctx.tensor(v, shape)
        };
        let names = vec!["a".to_string(), "b".to_string()];
        let start: Params = [
            ("a".to_string(), rand([3, 7])),
            ("b".to_string(), rand([1, 5])),
        ]
        .into_iter()
        .collect();
        let grads: Vec<Vec<(String, Tensor<2>)>> = (0..4)
            .map(|_| {
                vec![
                    ("a".to_string(), rand([3, 7]).mul_scalar(3.0)),
                    ("b".to_string(), rand([1, 5]).mul_scalar(0.01)),
                ]
            })
            .collect();
        let run = |fused: bool| -> (HostTensors, HostTensors, HostTensors) {
            let mut params = start.clone();
            let mut adam = Adam::new(&params, &names, fused);
            for g in &grads {
                adam.step(&cfg, &ctx, &mut params, g.clone()).expect("step");
            }
            let (m, v) = adam.moments().expect("moments");
            (crate::host::to_host(&params).expect("params"), m, v)
        };
        let (fused, tensor) = (run(true), run(false));
        assert_eq!(fused, tensor);
        assert_ne!(
            fused.0,
            crate::host::to_host(&start).expect("start"),
            "the steps moved the weights"
        );
    }
}
