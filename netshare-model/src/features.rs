//! The feature generator as tensor ops: the LSTM conditioned on hard one-hot attributes, its
//! output layer and heads, and the end-of-flow mask. On the CPU the LSTM itself runs fused
//! ([`crate::lstm`]); this form is its reference and the path on other devices.

use burn::tensor::{Int, Tensor, TensorData, activation};

use crate::nets::{Dims, Params, linear, p};
use crate::step::LstmForm;

/// What the feature generator returns.
pub(crate) struct Generated {
    /// Records with gen_flag columns `[B, T, F + 2]`, zero after each flow's end.
    pub records: Tensor<3>,
    /// 1 for records up to and including the first 'end', 0 after `[B, T]` (no gradient).
    pub mask: Tensor<2>,
    /// The records before masking `[B, T, F + 2]`: what the generator goes on to output after
    /// each flow's end (sampling with continuations reads it; training never does).
    pub continued: Tensor<3>,
}

/// Feature generator: LSTM over `steps` steps conditioned on hard one-hot attributes.
/// `z` is `[B, steps, feat_noise]`, `h0` and `c0` are the random initial state `[B, lstm]`.
/// `lstm` says how the LSTM runs: in host loops ([`crate::lstm`]) or as tensor ops.
/// [`LstmForm::Fused`] stops each flow at its end (the LSTM, the output layer and the heads),
/// which leaves `records` and `mask` as they are but not `continued`, and carries no gradient,
/// so training's fake batches use it and sampling runs every step ([`LstmForm::FusedFull`]).
pub(crate) fn gen_features(
    params: &Params,
    d: &Dims,
    attributes: Tensor<2>,
    noise: (Tensor<3>, Tensor<2>, Tensor<2>),
    lstm: LstmForm,
) -> crate::error::Result<Generated> {
    let cond = crate::heads::harden(attributes, &d.attr_runs);
    let (z, h0, c0) = noise;
    match lstm {
        LstmForm::Fused | LstmForm::FusedFull => {
            let stop = lstm == LstmForm::Fused;
            match crate::lstm::hidden(params, d, (cond, z, h0, c0), stop)? {
                (hs, Some(ran)) => features_of_steps_run(params, d, hs, &ran),
                (hs, None) => Ok(features_from_states(params, d, hs)),
            }
        }
        LstmForm::TensorOps => Ok(features_from_states(
            params,
            d,
            lstm_states(params, d, cond, z, h0, c0),
        )),
    }
}

/// The LSTM as tensor ops: hidden states `[B · steps, lstm]` (row b's steps adjacent) for
/// conditioning `cond` `[B, A]`.
pub(crate) fn lstm_states(
    params: &Params,
    d: &Dims,
    cond: Tensor<2>,
    z: Tensor<3>,
    h0: Tensor<2>,
    c0: Tensor<2>,
) -> Tensor<2> {
    let [b, _] = cond.dims();
    let hn = d.lstm;
    let fixed = cond.matmul(p(params, "gen_feat.lstm.wa").clone())
        + p(params, "gen_feat.lstm.b").clone().expand([b, 4 * hn]);
    let zg = z
        .reshape([b * d.steps, d.feat_noise])
        .matmul(p(params, "gen_feat.lstm.wz").clone())
        .reshape([b, d.steps, 4 * hn]);
    let wh = p(params, "gen_feat.lstm.wh").clone();
    let (mut h, mut c) = (h0, c0);
    let mut hs = Vec::with_capacity(d.steps);
    for t in 0..d.steps {
        let zt = zg
            .clone()
            .slice([0..b, t..t + 1, 0..4 * hn])
            .reshape([b, 4 * hn]);
        let gates = fixed.clone() + zt + h.matmul(wh.clone());
        // One sigmoid over all four gates (the g quarter is recomputed with tanh) costs less
        // than three on strided slices.
        let sig = activation::sigmoid(gates.clone());
        let i = sig.clone().slice([0..b, 0..hn]);
        let f = sig.clone().slice([0..b, hn..2 * hn]);
        let g = gates.slice([0..b, 2 * hn..3 * hn]).tanh();
        let o = sig.slice([0..b, 3 * hn..4 * hn]);
        c = f * c + i * g;
        h = o * c.clone().tanh();
        hs.push(h.clone());
    }
    Tensor::stack::<3>(hs, 1).reshape([b * d.steps, hn])
}

/// The output layer, heads and end-of-flow mask on the LSTM's hidden states `[B · steps, lstm]`.
pub(crate) fn features_from_states(params: &Params, d: &Dims, hs: Tensor<2>) -> Generated {
    let [rows, _] = hs.dims();
    let b = rows / d.steps;
    let raw = linear(params, "gen_feat.out", hs).reshape([b * d.max_len, d.rec()]);
    masked(d, b, crate::heads::activate(raw, &d.feat_runs))
}

/// [`features_from_states`] for states of which row b ran only its first `ran[b]` steps (the
/// rest zero, after its flow's end): the output layer and heads run on the steps that ran
/// alone, the others' records are zero, and the records and mask are the bits
/// [`features_from_states`] gives, since everything after a flow's end is masked. Carries no
/// gradient, and its `continued` records are zero after each flow's end: for the critics' fake
/// batches.
fn features_of_steps_run(
    params: &Params,
    d: &Dims,
    hs: Tensor<2>,
    ran: &[usize],
) -> crate::error::Result<Generated> {
    let [rows, _] = hs.dims();
    let b = rows / d.steps;
    let out = d.sample_len * d.rec();
    let mut picked: Vec<i64> = ran
        .iter()
        .enumerate()
        .flat_map(|(row, &n)| (row * d.steps..row * d.steps + n).map(|i| i as i64))
        .collect();
    let live = picked.len();
    // Padding rows (repeats of a live one, dropped below) keep gemm on the full matmul's path.
    let padded = live.max(crate::lstm::min_rows(rows, out, d.lstm));
    picked.resize(padded, picked.first().copied().unwrap_or(0));
    let device = hs.device();
    let idx = Tensor::<1, Int>::from_data(TensorData::new(picked.clone(), [padded]), &device);
    let some = hs.without_autodiff().select(0, idx);
    let raw = linear(params, "gen_feat.out", some).reshape([padded * d.sample_len, d.rec()]);
    let act = crate::heads::activate(raw, &d.feat_runs).without_autodiff();
    let dtype = act.dtype();
    let values = act.try_into_vec_as::<f64>().map_err(|e| {
        crate::error::Error::Backend(format!("reading the generated records: {e:?}"))
    })?;
    let mut all = vec![0.0; rows * out];
    for (k, &i) in picked[..live].iter().enumerate() {
        let i = i as usize;
        all[i * out..(i + 1) * out].copy_from_slice(&values[k * out..(k + 1) * out]);
    }
    let ctx = crate::nets::Ctx { device, dtype };
    Ok(masked(d, b, ctx.tensor(all, [b * d.max_len, d.rec()])))
}

/// The flags, mask and masked records from activated records `[B · T, F + 2]`.
fn masked(d: &Dims, b: usize, act: Tensor<2>) -> Generated {
    // Continue while the flag's arg-max is 'continue'; a record is real when no earlier
    // record said 'end' (the 'end' record itself is the flow's last record).
    let flags = act
        .clone()
        .without_autodiff()
        .slice([0..b * d.max_len, d.feat..d.feat + 2]);
    let dtype = flags.dtype();
    let cont = flags
        .clone()
        .slice([0..b * d.max_len, 0..1])
        .greater_equal(flags.slice([0..b * d.max_len, 1..2]))
        .float()
        .cast(dtype)
        .reshape([b, d.max_len]);
    let mask = if d.max_len == 1 {
        cont.ones_like()
    } else {
        let first = cont.clone().slice([0..b, 0..1]).ones_like();
        let shifted = Tensor::cat(vec![first, cont.slice([0..b, 0..d.max_len - 1])], 1);
        shifted.cumprod(1)
    };
    let continued = act.reshape([b, d.max_len, d.rec()]);
    let records = continued.clone()
        * mask
            .clone()
            .reshape([b, d.max_len, 1])
            .expand([b, d.max_len, d.rec()]);
    Generated {
        records,
        mask,
        continued,
    }
}
