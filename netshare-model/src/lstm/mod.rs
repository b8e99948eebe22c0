//! The feature generator's LSTM fused for the CPU: the whole sequence forward and backward in
//! host loops and large matmuls ([`host`]), without an autodiff graph. The tensor-op form in
//! `features` stays the reference (tests hold the two equal in f64) and the path for other
//! devices.
//!
//! The generator step plugs in by cutting the graph at the hidden states: the fused forward
//! gives them as a leaf tensor, autodiff runs from there (output layer, heads, critics' input
//! gradients) and returns the loss's gradient for them, and [`host::backward`] turns that into
//! the LSTM's parameter gradients. The LSTM's conditioning is the attributes hardened into
//! one-hots, which carries no gradient, so nothing flows from here back into the attribute
//! generator, exactly as in the tensor form.

mod act;
mod host;

use burn::tensor::{DType, Tensor};

use crate::error::{Error, Result};
use crate::nets::{Ctx, Dims, Params};
pub(crate) use host::min_rows;
use host::{EndFlags, Float, Inputs, Tape, Weights};

/// Which of gemm's kernels the CPU matmuls (burn's Flex backend and the fused LSTM) use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulKernels {
    /// 256-bit AVX2 with FMA (or the architecture's own kernels off x86-64).
    Avx2,
    /// 512-bit AVX-512F.
    Avx512,
}

impl MatmulKernels {
    /// A short description for logs and manifests.
    pub fn describe(self) -> &'static str {
        match self {
            MatmulKernels::Avx2 => "gemm AVX2+FMA",
            MatmulKernels::Avx512 => "gemm AVX-512F",
        }
    }
}

/// The kernels [`choose_matmul_kernels`] picks for a CPU: AVX-512F on Intel CPUs that have
/// it, AVX2+FMA otherwise. On an AMD Zen 4, which splits 512-bit operations in two, the
/// AVX-512 kernels made the training step 1-14 % slower (`bench/RESULTS.md`); Intel server
/// CPUs have two 512-bit FMA units. `overridden` is `NETSHARE_MATMUL` (`avx2` or `avx512`).
pub fn kernels_for(vendor: &str, has_avx512f: bool, overridden: Option<&str>) -> MatmulKernels {
    let wanted = match overridden.map(str::trim) {
        Some("avx512") => true,
        Some("avx2") => false,
        _ => vendor == "GenuineIntel",
    };
    if wanted && has_avx512f {
        MatmulKernels::Avx512
    } else {
        MatmulKernels::Avx2
    }
}

/// Chooses gemm's matmul kernels for this process by CPU model ([`kernels_for`]), from
/// `/proc/cpuinfo`'s vendor and the CPU's features, unless `NETSHARE_MATMUL=avx2|avx512` says
/// otherwise. Call it at the start of `main`, before the first matmul: each element type's
/// kernel is fixed at its first use. Without the call a process uses AVX2+FMA. The choice is
/// the same for every run on one machine, so a seed still gives the same bytes there; another
/// choice rounds differently.
pub fn choose_matmul_kernels() -> MatmulKernels {
    #[cfg(target_arch = "x86_64")]
    {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let vendor = cpuinfo
            .lines()
            .find(|l| l.starts_with("vendor_id"))
            .and_then(|l| l.split_once(':'))
            .map_or("", |(_, v)| v.trim());
        let overridden = std::env::var("NETSHARE_MATMUL").ok();
        let k = kernels_for(
            vendor,
            std::arch::is_x86_feature_detected!("avx512f"),
            overridden.as_deref(),
        );
        gemm_common::set_x86_v4(k == MatmulKernels::Avx512);
        k
    }
    #[cfg(not(target_arch = "x86_64"))]
    MatmulKernels::Avx2
}

/// Whether the LSTM's weight gradients are summed over the steps each flow ran alone, with the
/// full matmul's bits (the start-up check passed for f32 on this CPU and kernel), rather than
/// over every step. Either way the bytes are the same; this is speed only.
pub fn live_row_gradients() -> bool {
    host::live_depth_verified::<f32>()
}

/// The kernels this process's matmuls use (what [`choose_matmul_kernels`] set, or AVX2+FMA).
pub fn matmul_kernels() -> MatmulKernels {
    #[cfg(target_arch = "x86_64")]
    if gemm_common::get_x86_v4() && std::arch::is_x86_feature_detected!("avx512f") {
        return MatmulKernels::Avx512;
    }
    MatmulKernels::Avx2
}

#[cfg(test)]
mod kernel_choice {
    use super::*;

    #[test]
    fn avx512_is_chosen_on_intel_only_unless_overridden_and_never_without_the_feature() {
        assert_eq!(
            kernels_for("GenuineIntel", true, None),
            MatmulKernels::Avx512
        );
        assert_eq!(kernels_for("AuthenticAMD", true, None), MatmulKernels::Avx2);
        assert_eq!(
            kernels_for("GenuineIntel", false, None),
            MatmulKernels::Avx2
        );
        assert_eq!(
            kernels_for("AuthenticAMD", true, Some("avx512")),
            MatmulKernels::Avx512
        );
        assert_eq!(
            kernels_for("GenuineIntel", true, Some("avx2")),
            MatmulKernels::Avx2
        );
        assert_eq!(
            kernels_for("AuthenticAMD", false, Some("avx512")),
            MatmulKernels::Avx2
        );
    }
}

/// The LSTM's parameters, whose gradients come from here rather than from the autodiff graph.
pub(crate) const PARAMS: [&str; 4] = [
    "gen_feat.lstm.wa",
    "gen_feat.lstm.wz",
    "gen_feat.lstm.wh",
    "gen_feat.lstm.b",
];

fn read<T: Float, const D: usize>(t: Tensor<D>, what: &str) -> Result<Vec<T>> {
    t.without_autodiff()
        .try_into_vec_as::<T>()
        .map_err(|e| Error::Backend(format!("reading {what} for the fused LSTM: {e:?}")))
}

fn weights<T: Float>(params: &Params, d: &Dims) -> Result<Weights<T>> {
    let get = |name: &str| -> Result<Vec<T>> {
        let t = params
            .get(name)
            .ok_or_else(|| Error::Backend(format!("parameter {name} is missing")))?;
        read(t.clone(), name)
    };
    Ok(Weights {
        wa: get(PARAMS[0])?,
        wz: get(PARAMS[1])?,
        wh: get(PARAMS[2])?,
        b: get(PARAMS[3])?,
        attr: d.attr,
        noise: d.feat_noise,
        hidden: d.lstm,
    })
}

/// The LSTM's inputs on the host: conditioning `[B, A]`, noise `[B, S, Z]`, `h0`, `c0` `[B, H]`.
pub(crate) struct HostInputs<T> {
    rows: usize,
    cond: Vec<T>,
    z: Vec<T>,
    h0: Vec<T>,
    c0: Vec<T>,
}

impl<T: Float> HostInputs<T> {
    fn new(cond: Tensor<2>, z: Tensor<3>, h0: Tensor<2>, c0: Tensor<2>) -> Result<Self> {
        let [rows, _] = cond.dims();
        Ok(HostInputs {
            rows,
            cond: read(cond, "the conditioning")?,
            z: read(z, "the noise")?,
            h0: read(h0, "h0")?,
            c0: read(c0, "c0")?,
        })
    }

    /// Rows `r` of every input, as one block.
    fn block(&self, d: &Dims, r: std::ops::Range<usize>) -> Inputs<'_, T> {
        let (a, z, h) = (d.attr, d.steps * d.feat_noise, d.lstm);
        Inputs {
            rows: r.len(),
            steps: d.steps,
            cond: &self.cond[r.start * a..r.end * a],
            z: &self.z[r.start * z..r.end * z],
            h0: &self.h0[r.start * h..r.end * h],
            c0: &self.c0[r.start * h..r.end * h],
        }
    }
}

/// The rows split into two fixed halves, one per core (rows are independent). The split does
/// not depend on the thread count, so neither do the bytes.
fn halves(rows: usize) -> [std::ops::Range<usize>; 2] {
    let mid = rows / 2;
    [0..mid, mid..rows]
}

fn forward_halves<T: Float>(
    w: &Weights<T>,
    x: &HostInputs<T>,
    d: &Dims,
    flags: Option<&EndFlags>,
) -> [Tape<T>; 2] {
    let [top, bottom] = halves(x.rows);
    let (a, b) = rayon::join(
        || host::forward(w, &x.block(d, top), flags),
        || host::forward(w, &x.block(d, bottom), flags),
    );
    [a, b]
}

/// The output layer's gen_flag columns ([`EndFlags`]), when `stop` asks for them.
fn end_flags(params: &Params, d: &Dims, stop: bool) -> Result<Option<EndFlags>> {
    if !stop {
        return Ok(None);
    }
    let get = |name: &str| -> Result<Vec<f64>> {
        let t = params
            .get(name)
            .ok_or_else(|| Error::Backend(format!("parameter {name} is missing")))?;
        read(t.clone(), name)
    };
    let (w, b) = (get("gen_feat.out.w")?, get("gen_feat.out.b")?);
    Ok(Some(EndFlags::new(&w, &b, d.lstm, d.sample_len, d.rec())))
}

fn hidden_tensor<T: Float>(ctx: &Ctx, d: &Dims, rows: usize, tapes: &[Tape<T>; 2]) -> Tensor<2> {
    let hs: Vec<T> = tapes.iter().flat_map(|t| t.hs.iter().copied()).collect();
    ctx.tensor(hs, [rows * d.steps, d.lstm])
}

fn unsupported(dtype: DType) -> Error {
    Error::Backend(format!("the fused LSTM runs in f32 or f64, not {dtype:?}"))
}

/// The hidden states `[B · S, H]` (row b's steps adjacent), as the tensor form computes them;
/// with `stop`, each row only until its flow has ended, the later states zero (see
/// [`EndFlags`]: for training, where records after a flow's end are masked), and then also the
/// steps each row ran.
pub(crate) fn hidden(
    params: &Params,
    d: &Dims,
    (cond, z, h0, c0): (Tensor<2>, Tensor<3>, Tensor<2>, Tensor<2>),
    stop: bool,
) -> Result<(Tensor<2>, Option<Vec<usize>>)> {
    fn run<T: Float>(
        params: &Params,
        d: &Dims,
        ctx: &Ctx,
        x: (Tensor<2>, Tensor<3>, Tensor<2>, Tensor<2>),
        stop: bool,
    ) -> Result<(Tensor<2>, Option<Vec<usize>>)> {
        let w = weights::<T>(params, d)?;
        let flags = end_flags(params, d, stop)?;
        let x = HostInputs::new(x.0, x.1, x.2, x.3)?;
        let [top, bottom] = halves(x.rows);
        let ((mut hs, mut ran), (hs_b, ran_b)) = rayon::join(
            || host::hidden_only(&w, &x.block(d, top), flags.as_ref()),
            || host::hidden_only(&w, &x.block(d, bottom), flags.as_ref()),
        );
        hs.extend(hs_b);
        ran.extend(ran_b);
        let states = ctx.tensor(hs, [x.rows * d.steps, d.lstm]);
        Ok((states, stop.then_some(ran)))
    }
    let ctx = Ctx {
        device: cond.device(),
        dtype: cond.dtype(),
    };
    let x = (cond, z, h0, c0);
    match ctx.dtype {
        DType::F32 => run::<f32>(params, d, &ctx, x, stop),
        DType::F64 => run::<f64>(params, d, &ctx, x, stop),
        other => Err(unsupported(other)),
    }
}

/// The LSTM's gradients as tensors: its parameters' (named) and its inputs'. Training reads
/// only the parameters' (the conditioning is hardened and the noise is constant); the tests
/// check the inputs' too.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct LstmGrads {
    /// (name, gradient) for each of [`PARAMS`].
    pub params: Vec<(String, Tensor<2>)>,
    /// Conditioning `[B, A]`.
    pub cond: Tensor<2>,
    /// Noise `[B, S, Z]`.
    pub z: Tensor<3>,
    /// Initial hidden state `[B, H]`.
    pub h0: Tensor<2>,
    /// Initial cell state `[B, H]`.
    pub c0: Tensor<2>,
}

/// Runs the LSTM forward (with `stop`, each row only until its flow has ended, see
/// [`EndFlags`]), hands the hidden states `[B · S, H]` to `rest`, which returns its own result
/// and the loss's gradient for those states, and backpropagates that through the LSTM.
pub(crate) fn with_grads<R>(
    params: &Params,
    d: &Dims,
    inputs: (Tensor<2>, Tensor<3>, Tensor<2>, Tensor<2>),
    stop: bool,
    rest: impl FnOnce(Tensor<2>) -> Result<(R, Tensor<2>)>,
) -> Result<(R, LstmGrads)> {
    fn run<T: Float, R>(
        params: &Params,
        d: &Dims,
        ctx: &Ctx,
        x: (Tensor<2>, Tensor<3>, Tensor<2>, Tensor<2>),
        stop: bool,
        rest: impl FnOnce(Tensor<2>) -> Result<(R, Tensor<2>)>,
    ) -> Result<(R, LstmGrads)> {
        let w = weights::<T>(params, d)?;
        let flags = end_flags(params, d, stop)?;
        let x = HostInputs::new(x.0, x.1, x.2, x.3)?;
        let tapes = forward_halves(&w, &x, d, flags.as_ref());
        let (out, dhs) = rest(hidden_tensor(ctx, d, x.rows, &tapes))?;
        let dhs = read::<T, 2>(dhs, "the hidden states' gradient")?;
        let [top, bottom] = halves(x.rows);
        let per_row = d.steps * d.lstm;
        let back = |r: std::ops::Range<usize>, tape: &Tape<T>| {
            let g = &dhs[r.start * per_row..r.end * per_row];
            host::backward(&w, &x.block(d, r), tape, g)
        };
        let (g1, g2) = rayon::join(|| back(top, &tapes[0]), || back(bottom, &tapes[1]));
        let sum =
            |a: Vec<T>, b: Vec<T>| -> Vec<T> { a.into_iter().zip(b).map(|(x, y)| x + y).collect() };
        let cat = |a: Vec<T>, b: Vec<T>| -> Vec<T> { a.into_iter().chain(b).collect() };
        let (h4, b) = (4 * d.lstm, x.rows);
        let named = vec![
            (PARAMS[0], sum(g1.wa, g2.wa), [d.attr, h4]),
            (PARAMS[1], sum(g1.wz, g2.wz), [d.feat_noise, h4]),
            (PARAMS[2], sum(g1.wh, g2.wh), [d.lstm, h4]),
            (PARAMS[3], sum(g1.b, g2.b), [1, h4]),
        ];
        let grads = LstmGrads {
            params: named
                .into_iter()
                .map(|(n, v, shape)| (n.to_string(), ctx.tensor(v, shape)))
                .collect(),
            cond: ctx.tensor(cat(g1.cond, g2.cond), [b, d.attr]),
            z: ctx.tensor(cat(g1.z, g2.z), [b, d.steps, d.feat_noise]),
            h0: ctx.tensor(cat(g1.h0, g2.h0), [b, d.lstm]),
            c0: ctx.tensor(cat(g1.c0, g2.c0), [b, d.lstm]),
        };
        Ok((out, grads))
    }
    let ctx = Ctx {
        device: inputs.0.device(),
        dtype: inputs.0.dtype(),
    };
    match ctx.dtype {
        DType::F32 => run::<f32, R>(params, d, &ctx, inputs, stop, rest),
        DType::F64 => run::<f64, R>(params, d, &ctx, inputs, stop, rest),
        other => Err(unsupported(other)),
    }
}

#[cfg(test)]
mod tests;
