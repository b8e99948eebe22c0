//! The LSTM's forward and backward passes on host slices: one matmul for the input projections
//! of every step, one `[rows, H] × [H, 4H]` matmul per step each way, vectorisable gate loops over
//! contiguous slices, and the weight gradients as a few large matmuls over all steps at the end.
//!
//! Layouts are row-major with a row's steps adjacent: `z` is `[R, S, Z]`, the gates `[R, S, 4H]`
//! (quarters i, f, g, o), the states `[R, S, H]`.

use std::ops::{Add, AddAssign, Mul, Sub};

use super::act;

/// A float type the host loops run in: f32 in training, f64 in the tests.
pub(crate) trait Float:
    Copy
    + Default
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + AddAssign
    + burn::tensor::Element
{
    /// One.
    const ONE: Self;
    /// Logistic sigmoid of every element, in place.
    fn sigmoid(x: &mut [Self]);
    /// tanh of every element, in place.
    fn tanh(x: &mut [Self]);
}

impl Float for f32 {
    const ONE: f32 = 1.0;
    fn sigmoid(x: &mut [f32]) {
        act::sigmoid_f32(x);
    }
    fn tanh(x: &mut [f32]) {
        act::tanh_f32(x);
    }
}

impl Float for f64 {
    const ONE: f64 = 1.0;
    fn sigmoid(x: &mut [f64]) {
        for v in x {
            *v = 1.0 / (1.0 + (-*v).exp());
        }
    }
    fn tanh(x: &mut [f64]) {
        for v in x {
            *v = v.tanh();
        }
    }
}

/// A strided matrix operand: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a, T> {
    pub data: &'a [T],
    pub rs: usize,
    pub cs: usize,
}

/// A row-major matrix with `cols` columns.
pub(crate) fn rows<T>(data: &[T], cols: usize) -> Mat<'_, T> {
    Mat {
        data,
        rs: cols,
        cs: 1,
    }
}

/// The transpose of a row-major matrix with `cols` columns.
pub(crate) fn transposed<T>(data: &[T], cols: usize) -> Mat<'_, T> {
    Mat {
        data,
        rs: 1,
        cs: cols,
    }
}

fn fits(len: usize, r: usize, c: usize, rs: usize, cs: usize) -> bool {
    r == 0 || c == 0 || (r - 1) * rs + (c - 1) * cs < len
}

/// `dst[m, n] (+)= lhs[m, k] · rhs[k, n]`; `dst` has unit column stride and row stride `dst_rs`.
/// Single-threaded (callers split rows over threads at fixed places, so the bytes do not depend
/// on the thread count).
#[allow(clippy::too_many_arguments)]
#[allow(unsafe_code)]
pub(crate) fn matmul<T: Float>(
    (m, n, k): (usize, usize, usize),
    dst: &mut [T],
    dst_rs: usize,
    accumulate: bool,
    lhs: Mat<'_, T>,
    rhs: Mat<'_, T>,
) {
    assert!(
        fits(dst.len(), m, n, dst_rs, 1)
            && fits(lhs.data.len(), m, k, lhs.rs, lhs.cs)
            && fits(rhs.data.len(), k, n, rhs.rs, rhs.cs),
        "matmul operands hold their {m}x{k}x{n} shapes"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_rs..r * dst_rs + n].fill(T::default());
            }
        }
        return;
    }
    // SAFETY: the assertion above keeps every index gemm touches inside its slice, `dst` is
    // borrowed mutably (no alias with the operands), and `T` is f32 or f64, which gemm supports.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// The LSTM's weights: `wa [A, 4H]`, `wz [Z, 4H]`, `wh [H, 4H]`, `b [4H]`.
pub(crate) struct Weights<T> {
    pub wa: Vec<T>,
    pub wz: Vec<T>,
    pub wh: Vec<T>,
    pub b: Vec<T>,
    pub attr: usize,
    pub noise: usize,
    pub hidden: usize,
}

/// One block of rows: conditioning `[R, A]`, noise `[R, S, Z]`, initial state `[R, H]` each.
pub(crate) struct Inputs<'a, T> {
    pub rows: usize,
    pub steps: usize,
    pub cond: &'a [T],
    pub z: &'a [T],
    pub h0: &'a [T],
    pub c0: &'a [T],
}

/// Relative margin by which a record's 'end' logit must beat its 'continue' logit, computed
/// here in f64, before the LSTM counts the flow as ended: the output layer computes the same
/// logits in f32 with a different summation order, whose error is below `H · 2^-24` (about
/// 4e-6 for H = 64) of the sum of the products' magnitudes.
const END_MARGIN: f64 = 1e-4;
/// Absolute floor of that margin: logits this far apart also stay apart through the softmax.
const END_FLOOR: f64 = 1e-5;

/// The output layer's gen_flag columns, with which the forward pass stops once every row's
/// flow has ended. In training, the records after a flow's first 'end' are masked to zero
/// (the mask carries no gradient), so the states of the steps after every flow of a block has
/// ended reach neither the critics nor any gradient; their steps are skipped and their states
/// left zero. A capture whose longest flow has 200 packets trains on batches whose longest
/// generated flow is usually far shorter.
pub(crate) struct EndFlags {
    /// Per record of a step: the weights of 'continue' and 'end' `[H]` and their biases.
    records: Vec<(Vec<f64>, Vec<f64>, f64, f64)>,
}

impl EndFlags {
    /// From the output layer `w` `[H, sample_len · rec]` and `b` `[sample_len · rec]`, whose
    /// record columns end with the two gen_flag columns ('continue', 'end').
    pub(crate) fn new(w: &[f64], b: &[f64], hidden: usize, sample_len: usize, rec: usize) -> Self {
        let out = sample_len * rec;
        let column = |c: usize| (0..hidden).map(|k| w[k * out + c]).collect::<Vec<f64>>();
        EndFlags {
            records: (0..sample_len)
                .map(|j| {
                    let (c, e) = (j * rec + rec - 2, j * rec + rec - 1);
                    (column(c), column(e), b[c], b[e])
                })
                .collect(),
        }
    }

    /// Whether some record of the step with hidden state `h` says 'end' by more than the
    /// output layer's rounding could undo.
    fn ends<T: Float>(&self, h: &[T]) -> bool {
        self.records.iter().any(|(wc, we, bc, be)| {
            let (mut c, mut e, mut size) = (*bc, *be, bc.abs() + be.abs());
            for ((x, a), b) in h.iter().zip(wc).zip(we) {
                let x = x.to_f64();
                c += x * a;
                e += x * b;
                size += x.abs() * (a.abs() + b.abs());
            }
            e - c > (END_MARGIN * size).max(END_FLOOR)
        })
    }
}

/// Marks the rows of a block whose step `t` ends their flow; true when every row has ended.
fn all_ended<T: Float>(
    flags: &EndFlags,
    hs: &[T],
    ended: &mut [bool],
    t: usize,
    s: usize,
    h: usize,
) -> bool {
    for (row, done) in ended.iter_mut().enumerate() {
        if !*done {
            let at = row * s + t;
            *done = flags.ends(&hs[at * h..(at + 1) * h]);
        }
    }
    ended.iter().all(|d| *d)
}

/// What the forward pass keeps for the backward one.
pub(crate) struct Tape<T> {
    /// Activated gates `[R, S, 4H]`.
    acts: Vec<T>,
    /// Cell states `[R, S, H]`.
    cs: Vec<T>,
    /// tanh of the cell states `[R, S, H]`.
    tcs: Vec<T>,
    /// Hidden states `[R, S, H]` (the output).
    pub hs: Vec<T>,
    /// Steps run: the first `run` steps of every row (the rest stopped early, left zero).
    run: usize,
}

/// `h_{t-1}` of every row as a matrix: `h0` at the first step, else step t − 1 of the states
/// `[R, S, H]` (rows S·H apart).
fn previous_states<'a, T>(h0: &'a [T], hs: &'a [T], t: usize, s: usize, h: usize) -> Mat<'a, T> {
    if t == 0 {
        rows(h0, h)
    } else {
        Mat {
            data: &hs[(t - 1) * h..],
            rs: s * h,
            cs: 1,
        }
    }
}

/// The gates' part that is the same at every step: `b + cond · wa`, `[R, 4H]`.
fn fixed_gates<T: Float>(w: &Weights<T>, x: &Inputs<'_, T>) -> Vec<T> {
    let g4 = 4 * w.hidden;
    let mut fixed = vec![T::default(); x.rows * g4];
    for row in fixed.chunks_exact_mut(g4) {
        row.copy_from_slice(&w.b);
    }
    matmul(
        (x.rows, g4, w.attr),
        &mut fixed,
        g4,
        true,
        rows(x.cond, w.attr),
        rows(&w.wa, g4),
    );
    fixed
}

/// Runs the LSTM over all steps: `gates = cond·wa + b + z_t·wz + h·wh`, `c = f ⊙ c + i ⊙ g`,
/// `h = o ⊙ tanh c`; with `flags`, only until every row's flow has ended.
pub(crate) fn forward<T: Float>(
    w: &Weights<T>,
    x: &Inputs<'_, T>,
    flags: Option<&EndFlags>,
) -> Tape<T> {
    let (r, s, h) = (x.rows, x.steps, w.hidden);
    let g4 = 4 * h;
    let fixed = fixed_gates(w, x);
    let mut acts = vec![T::default(); r * s * g4];
    matmul(
        (r * s, g4, w.noise),
        &mut acts,
        g4,
        false,
        rows(x.z, w.noise),
        rows(&w.wz, g4),
    );
    for (i, row) in acts.chunks_exact_mut(g4).enumerate() {
        let f = &fixed[(i / s) * g4..(i / s + 1) * g4];
        for (a, &b) in row.iter_mut().zip(f) {
            *a += b;
        }
    }
    let mut cs = vec![T::default(); r * s * h];
    let mut tcs = vec![T::default(); r * s * h];
    let mut hs = vec![T::default(); r * s * h];
    let mut ended = vec![false; r];
    let mut run = s;
    for t in 0..s {
        // This step's gates (rows S·4H apart) += h_{t-1} · wh.
        let prev = previous_states(x.h0, &hs, t, s, h);
        matmul(
            (r, g4, h),
            &mut acts[t * g4..],
            s * g4,
            true,
            prev,
            rows(&w.wh, g4),
        );
        for row in 0..r {
            let at = row * s + t;
            let (before, after) = cs.split_at_mut(at * h);
            let c = &mut after[..h];
            c.copy_from_slice(if t == 0 {
                &x.c0[row * h..(row + 1) * h]
            } else {
                &before[(at - 1) * h..at * h]
            });
            cell(
                &mut acts[at * g4..(at + 1) * g4],
                c,
                &mut tcs[at * h..(at + 1) * h],
                &mut hs[at * h..(at + 1) * h],
            );
        }
        if let Some(f) = flags
            && all_ended(f, &hs, &mut ended, t, s, h)
        {
            run = t + 1;
            break;
        }
    }
    Tape {
        acts,
        cs,
        tcs,
        hs,
        run,
    }
}

/// One cell update for one row: activates the gates `[4H]` in place, turns `c` (the previous
/// cell state on entry) into the new one, and writes `tanh c` and the hidden state.
#[inline]
fn cell<T: Float>(gate: &mut [T], c: &mut [T], tc: &mut [T], hn: &mut [T]) {
    let h = c.len();
    T::sigmoid(&mut gate[..2 * h]);
    T::tanh(&mut gate[2 * h..3 * h]);
    T::sigmoid(&mut gate[3 * h..]);
    let (i, rest) = gate.split_at(h);
    let (f, rest) = rest.split_at(h);
    let (g, o) = rest.split_at(h);
    for j in 0..h {
        c[j] = f[j] * c[j] + i[j] * g[j];
    }
    tc.copy_from_slice(c);
    T::tanh(tc);
    for j in 0..h {
        hn[j] = o[j] * tc[j];
    }
}

/// The hidden states `[R, S, H]` alone, for sampling and for the critics' fake batches, which
/// need no backward pass. The same operations in the same order as [`forward`], so the same
/// bits, but one step's gates at a time: `[R, 4H]` stays in cache instead of `[R, S, 4H]`
/// going through memory, and no tape is kept. With `flags`, only until every row's flow has
/// ended (the later states stay zero).
pub(crate) fn hidden_only<T: Float>(
    w: &Weights<T>,
    x: &Inputs<'_, T>,
    flags: Option<&EndFlags>,
) -> Vec<T> {
    let (r, s, h) = (x.rows, x.steps, w.hidden);
    let (g4, zd) = (4 * h, w.noise);
    let fixed = fixed_gates(w, x);
    let mut gates = vec![T::default(); r * g4];
    let mut c = x.c0.to_vec();
    let mut tc = vec![T::default(); h];
    let mut hs = vec![T::default(); r * s * h];
    let mut ended = vec![false; r];
    for t in 0..s {
        let z_t = Mat {
            data: &x.z[t * zd..],
            rs: s * zd,
            cs: 1,
        };
        matmul((r, g4, zd), &mut gates, g4, false, z_t, rows(&w.wz, g4));
        for (a, &b) in gates.iter_mut().zip(&fixed) {
            *a += b;
        }
        let prev = previous_states(x.h0, &hs, t, s, h);
        matmul((r, g4, h), &mut gates, g4, true, prev, rows(&w.wh, g4));
        for row in 0..r {
            let at = row * s + t;
            cell(
                &mut gates[row * g4..(row + 1) * g4],
                &mut c[row * h..(row + 1) * h],
                &mut tc,
                &mut hs[at * h..(at + 1) * h],
            );
        }
        if let Some(f) = flags
            && all_ended(f, &hs, &mut ended, t, s, h)
        {
            break;
        }
    }
    hs
}

/// Gradients of a block: the weights' and the inputs' (same layouts as they).
pub(crate) struct Grads<T> {
    pub wa: Vec<T>,
    pub wz: Vec<T>,
    pub wh: Vec<T>,
    pub b: Vec<T>,
    pub cond: Vec<T>,
    pub z: Vec<T>,
    pub h0: Vec<T>,
    pub c0: Vec<T>,
}

/// Backpropagates `dhs` (`[R, S, H]`, the loss's gradient for every hidden state) through time.
/// The gates' gradients of all steps are kept, so each weight's gradient is one matmul over all
/// `R·S` rows at the end; only `dh_{t-1} = dgates_t · whᵀ` runs per step. Steps the forward
/// pass skipped keep zero gradients: their states were masked out of the loss, so the
/// gradient reaching them is zero and the full pass would add only zeros.
pub(crate) fn backward<T: Float>(
    w: &Weights<T>,
    x: &Inputs<'_, T>,
    tape: &Tape<T>,
    dhs: &[T],
) -> Grads<T> {
    let (r, s, h) = (x.rows, x.steps, w.hidden);
    let g4 = 4 * h;
    let one = T::ONE;
    let mut dg = vec![T::default(); r * s * g4];
    // The gradients reaching h_t and c_t from step t + 1.
    let mut dh_next = vec![T::default(); r * h];
    let mut dc = vec![T::default(); r * h];
    for t in (0..tape.run).rev() {
        for row in 0..r {
            let at = row * s + t;
            let gate = &tape.acts[at * g4..(at + 1) * g4];
            let (i, rest) = gate.split_at(h);
            let (f, rest) = rest.split_at(h);
            let (g, o) = rest.split_at(h);
            let tc = &tape.tcs[at * h..(at + 1) * h];
            let c_prev = if t == 0 {
                &x.c0[row * h..(row + 1) * h]
            } else {
                &tape.cs[(at - 1) * h..at * h]
            };
            let dh_out = &dhs[at * h..(at + 1) * h];
            let dh_in = &dh_next[row * h..(row + 1) * h];
            let dcr = &mut dc[row * h..(row + 1) * h];
            let d = &mut dg[at * g4..(at + 1) * g4];
            for j in 0..h {
                let dh = dh_out[j] + dh_in[j];
                let dct = dcr[j] + dh * o[j] * (one - tc[j] * tc[j]);
                d[j] = dct * g[j] * i[j] * (one - i[j]);
                d[h + j] = dct * c_prev[j] * f[j] * (one - f[j]);
                d[2 * h + j] = dct * i[j] * (one - g[j] * g[j]);
                d[3 * h + j] = dh * tc[j] * o[j] * (one - o[j]);
                dcr[j] = dct * f[j];
            }
        }
        let step = Mat {
            data: &dg[t * g4..],
            rs: s * g4,
            cs: 1,
        };
        matmul(
            (r, h, g4),
            &mut dh_next,
            h,
            false,
            step,
            transposed(&w.wh, g4),
        );
    }
    // h_{t-1} for every (row, t): h0 first, then the states shifted by one step.
    let mut prev = vec![T::default(); r * s * h];
    for row in 0..r {
        let base = row * s * h;
        prev[base..base + h].copy_from_slice(&x.h0[row * h..(row + 1) * h]);
        prev[base + h..base + s * h].copy_from_slice(&tape.hs[base..base + (s - 1) * h]);
    }
    let n = r * s;
    let mut wh = vec![T::default(); h * g4];
    matmul(
        (h, g4, n),
        &mut wh,
        g4,
        false,
        transposed(&prev, h),
        rows(&dg, g4),
    );
    let mut wz = vec![T::default(); w.noise * g4];
    matmul(
        (w.noise, g4, n),
        &mut wz,
        g4,
        false,
        transposed(x.z, w.noise),
        rows(&dg, g4),
    );
    let mut z = vec![T::default(); n * w.noise];
    matmul(
        (n, w.noise, g4),
        &mut z,
        w.noise,
        false,
        rows(&dg, g4),
        transposed(&w.wz, g4),
    );
    // The conditioning and the bias enter every step alike.
    let mut dfixed = vec![T::default(); r * g4];
    for (i, row) in dg.chunks_exact(g4).enumerate() {
        let acc = &mut dfixed[(i / s) * g4..(i / s + 1) * g4];
        for (a, &v) in acc.iter_mut().zip(row) {
            *a += v;
        }
    }
    let mut b = vec![T::default(); g4];
    for row in dfixed.chunks_exact(g4) {
        for (a, &v) in b.iter_mut().zip(row) {
            *a += v;
        }
    }
    let mut wa = vec![T::default(); w.attr * g4];
    matmul(
        (w.attr, g4, r),
        &mut wa,
        g4,
        false,
        transposed(x.cond, w.attr),
        rows(&dfixed, g4),
    );
    let mut cond = vec![T::default(); r * w.attr];
    matmul(
        (r, w.attr, g4),
        &mut cond,
        w.attr,
        false,
        rows(&dfixed, g4),
        transposed(&w.wa, g4),
    );
    Grads {
        wa,
        wz,
        wh,
        b,
        cond,
        z,
        h0: dh_next,
        c0: dc,
    }
}
