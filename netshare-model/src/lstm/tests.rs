//! The fused LSTM against burn's autodiff of the tensor-op form (`features::lstm_states`): the
//! hidden states and the gradients of every parameter and every input, in f64.

use burn::tensor::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::config::{ModelConfig, Profile};
use crate::features;
use crate::nets::Dims;

/// Small, uneven sizes: 5 rows (split 2 + 3), 7 steps, A = 5, Z = 3, H = 6.
fn dims() -> Dims {
    let cfg = ModelConfig::profile(Profile::Tiny);
    let enc = crate::testing::two_flow_types(8, 1, 3);
    let mut d = Dims::new(&cfg, &enc.layout, enc.max_len()).expect("dims");
    (d.attr, d.feat_noise, d.lstm, d.steps) = (5, 3, 6, 7);
    d
}

fn ctx(dtype: DType) -> Ctx {
    Ctx {
        device: Device::flex(),
        dtype,
    }
}

struct Case {
    params: Vec<(String, [usize; 2], Vec<f64>)>,
    inputs: Vec<(&'static str, Vec<usize>, Vec<f64>)>,
    seed: Vec<f64>,
}

fn case(d: &Dims, rows: usize) -> Case {
    let mut rng = ChaCha8Rng::seed_from_u64(31);
    let mut draw =
        |n: usize, k: f64| -> Vec<f64> { (0..n).map(|_| rng.random_range(-k..k)).collect() };
    let h4 = 4 * d.lstm;
    let params = vec![
        (PARAMS[0].to_string(), [d.attr, h4], draw(d.attr * h4, 0.8)),
        (
            PARAMS[1].to_string(),
            [d.feat_noise, h4],
            draw(d.feat_noise * h4, 0.8),
        ),
        (PARAMS[2].to_string(), [d.lstm, h4], draw(d.lstm * h4, 0.8)),
        (PARAMS[3].to_string(), [1, h4], draw(h4, 0.5)),
    ];
    let inputs = vec![
        ("cond", vec![rows, d.attr], draw(rows * d.attr, 1.0)),
        (
            "z",
            vec![rows, d.steps, d.feat_noise],
            draw(rows * d.steps * d.feat_noise, 1.5),
        ),
        ("h0", vec![rows, d.lstm], draw(rows * d.lstm, 1.0)),
        ("c0", vec![rows, d.lstm], draw(rows * d.lstm, 1.0)),
    ];
    let seed = draw(rows * d.steps * d.lstm, 1.0);
    Case {
        params,
        inputs,
        seed,
    }
}

fn params_of(c: &Case, ctx: &Ctx, tracked: bool) -> Params {
    c.params
        .iter()
        .map(|(n, shape, v)| {
            let t: Tensor<2> = ctx.tensor(v.clone(), *shape);
            (
                n.clone(),
                if tracked {
                    t.autodiff().require_grad()
                } else {
                    t
                },
            )
        })
        .collect()
}

/// The four inputs as tensors, optionally tracked.
fn inputs_of(c: &Case, ctx: &Ctx, tracked: bool) -> (Tensor<2>, Tensor<3>, Tensor<2>, Tensor<2>) {
    let two = |i: usize| {
        let (_, s, v) = &c.inputs[i];
        let t: Tensor<2> = ctx.tensor(v.clone(), [s[0], s[1]]);
        if tracked {
            t.autodiff().require_grad()
        } else {
            t
        }
    };
    let (_, s, v) = &c.inputs[1];
    let z: Tensor<3> = ctx.tensor(v.clone(), [s[0], s[1], s[2]]);
    let z = if tracked {
        z.autodiff().require_grad()
    } else {
        z
    };
    (two(0), z, two(2), two(3))
}

fn f64s<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.without_autodiff().try_into_vec_as::<f64>().expect("f64")
}

/// Worst |x − y| / max(|x|, |y|, floor) over two equal-length vectors.
fn worst(a: &[f64], b: &[f64], floor: f64) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / x.abs().max(y.abs()).max(floor))
        .fold(0.0, f64::max)
}

#[test]
fn fused_states_and_all_gradients_equal_autodiff_of_the_tensor_form_in_f64() {
    let d = dims();
    let rows = 5;
    let c = case(&d, rows);
    let ctx = ctx(DType::F64);
    let seed: Tensor<2> = ctx.tensor(c.seed.clone(), [rows * d.steps, d.lstm]);

    let tp = params_of(&c, &ctx, true);
    let (cond, z, h0, c0) = inputs_of(&c, &ctx, true);
    let hs_ref = features::lstm_states(&tp, &d, cond.clone(), z.clone(), h0.clone(), c0.clone());
    let auto = (hs_ref.clone() * seed.clone()).sum().backward();

    let plain = params_of(&c, &ctx, false);
    let (hs, g) = with_grads(&plain, &d, inputs_of(&c, &ctx, false), false, |hs| {
        Ok((hs, seed.clone()))
    })
    .expect("fused");
    let w = worst(&f64s(hs.clone()), &f64s(hs_ref), 1e-12);
    assert!(w <= 1e-12, "hidden states differ by {w:e}");
    let (cond2, z2, h02, c02) = inputs_of(&c, &ctx, false);
    let also = hidden(&plain, &d, (cond2, z2, h02, c02), false)
        .expect("fused forward")
        .0;
    assert_eq!(f64s(also), f64s(hs), "forward alone gives the same states");

    let mut checked = Vec::new();
    let mut compare = |what: &str, fused: Vec<f64>, reference: Option<Vec<f64>>| {
        let reference = reference.unwrap_or_else(|| panic!("autodiff has a gradient for {what}"));
        let w = worst(&fused, &reference, 1e-6);
        let big = reference.iter().filter(|x| x.abs() > 1e-3).count();
        eprintln!("{what}: worst relative difference {w:e}, {big} entries above 1e-3");
        assert!(w <= 1e-9, "{what}: worst relative difference {w:e}");
        assert!(big * 2 > reference.len(), "{what}: gradient mostly zero");
        checked.push(what.to_string());
    };
    for (name, grad) in g.params {
        compare(&name, f64s(grad), tp[&name].grad(&auto).map(f64s));
    }
    compare("cond", f64s(g.cond), cond.grad(&auto).map(f64s));
    compare("z", f64s(g.z), z.grad(&auto).map(f64s));
    compare("h0", f64s(g.h0), h0.grad(&auto).map(f64s));
    compare("c0", f64s(g.c0), c0.grad(&auto).map(f64s));
    assert_eq!(checked.len(), 8, "{checked:?}");
}

#[test]
fn the_f32_fused_states_stay_close_to_the_tensor_form() {
    let d = dims();
    let rows = 9;
    let c = case(&d, rows);
    let ctx = ctx(DType::F32);
    let params = params_of(&c, &ctx, false);
    let (cond, z, h0, c0) = inputs_of(&c, &ctx, false);
    let reference =
        features::lstm_states(&params, &d, cond.clone(), z.clone(), h0.clone(), c0.clone());
    let fused = hidden(&params, &d, (cond, z, h0, c0), false)
        .expect("fused")
        .0;
    assert_eq!(fused.dtype(), DType::F32);
    let (a, b): (Vec<f32>, Vec<f32>) = (
        fused.try_into_vec_as().expect("f32"),
        reference.try_into_vec_as().expect("f32"),
    );
    let w = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(w <= 2e-6, "f32 states differ by {w:e}");
}

/// The tape-free forward used for sampling and the critics' fake batches must give exactly the
/// states the training forward gives (the same operations in the same order), at the
/// production width (H = 100) so gemm's blocking is the one training uses.
#[test]
fn the_tape_free_forward_gives_the_training_forwards_bits() {
    let mut d = dims();
    (d.attr, d.feat_noise, d.lstm, d.steps) = (20, 5, 100, 13);
    let rows = 37;
    let c = case(&d, rows);
    for dtype in [DType::F32, DType::F64] {
        let ctx = ctx(dtype);
        let params = params_of(&c, &ctx, false);
        let (cond, z, h0, c0) = inputs_of(&c, &ctx, false);
        let x = (cond.clone(), z.clone(), h0.clone(), c0.clone());
        let tape_free = hidden(&params, &d, x, false).expect("tape-free forward").0;
        let ((), _) = with_grads(&params, &d, (cond, z, h0, c0), false, |states| {
            assert_eq!(
                f64s(states.clone()),
                f64s(tape_free.clone()),
                "{dtype:?}: the two forwards differ"
            );
            Ok(((), states.zeros_like()))
        })
        .expect("training forward");
    }
}

/// Stopping each row once its flow has ended: the records the rest of the step sees and
/// every LSTM gradient are those of the pass over all steps, while the skipped states are
/// left zero. The output layer is drawn so that flows end at different steps, and at least
/// one half stops early (the test checks it did).
#[test]
fn stopping_each_row_at_its_flows_end_changes_no_record_and_no_gradient() {
    let mut d = dims();
    d.max_len = d.steps * d.sample_len;
    let rows = 5;
    let c = case(&d, rows);
    let ctx = ctx(DType::F64);
    let mut params = params_of(&c, &ctx, false);
    let out = d.sample_len * d.rec();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let w: Vec<f64> = (0..d.lstm * out)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    // With the 'end' column 0.3 behind, the flows last 2, 2 (the first half), 7, 1 and 3 steps:
    // the first half stops after two steps, the second runs to the end.
    let b: Vec<f64> = (0..out)
        .map(|k| {
            if k % d.rec() == d.rec() - 1 {
                -0.3
            } else {
                0.0
            }
        })
        .collect();
    params.insert("gen_feat.out.w".into(), ctx.tensor(w, [d.lstm, out]));
    params.insert("gen_feat.out.b".into(), ctx.tensor(b, [1, out]));
    let seed: Vec<f64> = (0..rows * d.max_len * d.rec())
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let seed: Tensor<2> = ctx.tensor(seed, [rows, d.max_len * d.rec()]);
    let pass = |stop: bool| {
        with_grads(&params, &d, inputs_of(&c, &ctx, false), stop, |hs| {
            let hs = hs.autodiff().require_grad();
            let g = features::features_from_states(&params, &d, hs.clone());
            let records = g.records.reshape([rows, d.max_len * d.rec()]);
            let grads = (records.clone() * seed.clone()).sum().backward();
            let dhs = hs.grad(&grads).expect("states' gradient");
            Ok(((f64s(hs), f64s(records), f64s(g.mask)), dhs))
        })
        .expect("fused")
    };
    let ((hs_full, rec_full, mask_full), g_full) = pass(false);
    let ((hs_stop, rec_stop, mask_stop), g_stop) = pass(true);
    assert_eq!(rec_stop, rec_full, "records");
    assert_eq!(mask_stop, mask_full, "mask");
    let ended = mask_full.iter().filter(|m| **m == 0.0).count();
    assert!(ended > 0 && ended < mask_full.len(), "{mask_full:?}");
    for ((name, a), (_, b)) in g_stop.params.into_iter().zip(g_full.params) {
        assert_eq!(f64s(a), f64s(b), "{name}");
    }
    assert_eq!(f64s(g_stop.cond), f64s(g_full.cond), "cond");
    assert_eq!(f64s(g_stop.h0), f64s(g_full.h0), "h0");
    assert_eq!(f64s(g_stop.c0), f64s(g_full.c0), "c0");
    assert_eq!(f64s(g_stop.z), f64s(g_full.z), "z");
    // Steps were skipped: some states are zero that the full pass computed.
    let skipped = hs_stop
        .iter()
        .zip(&hs_full)
        .filter(|(s, f)| **s == 0.0 && **f != 0.0)
        .count();
    assert!(skipped > 0, "no step was skipped");
    // And the tape-free forward stops the same way.
    let alone = hidden(&params, &d, inputs_of(&c, &ctx, false), true)
        .expect("fused forward")
        .0;
    assert_eq!(f64s(alone), hs_stop, "tape-free forward");
}
