//! The LSTM's forward and backward passes on host slices: one matmul for the input projections
//! of every step, one `[rows, H] × [H, 4H]` matmul per step each way, vectorisable gate loops over
//! contiguous slices, and the weight gradients as a few large matmuls over all steps at the end.
//!
//! Layouts are row-major with a row's steps adjacent: `z` is `[R, S, Z]`, the gates `[R, S, 4H]`
//! (quarters i, f, g, o), the states `[R, S, H]`.

use std::ops::{Add, AddAssign, Mul, Range, Sub};
use std::sync::OnceLock;

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

/// The output layer's gen_flag columns, with which the forward pass stops each row once its
/// flow has ended. In training, the records after a flow's first 'end' are masked to zero
/// (the mask carries no gradient), so the states of a row's steps after its flow's end reach
/// neither the critics nor any gradient; those steps are skipped and their states left zero,
/// and each step runs over the rows still running. On the capture (flows of up to 200
/// packets), with trained weights, the rows still running were 5.5% of the row-steps that
/// stopping whole half-batches ran.
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

/// The fewest rows a matmul over some of a block's `full` rows may have, so that gemm computes
/// each of their outputs exactly as it does in the matmul over all of them. gemm picks its path
/// from the shape: a matrix-vector loop for one row, dot-product kernels when rows × columns
/// ≤ 256 (and the operands' strides allow), and, when both sides are ≤ 64, depth blocks of 512
/// instead of an even split of the depth. Within one path, every output is the same chain of
/// fused multiply-adds over the same depth blocks, whatever the other rows are. Zero rows pad
/// a subset up to this count; their outputs are discarded.
pub(crate) fn min_rows(full: usize, cols: usize, depth: usize) -> usize {
    let mut least = if full >= 2 { 2 } else { 1 };
    if full * cols > 256 {
        least = least.max(256 / cols + 1);
    }
    if cols <= 64 && depth > 512 && full > 64 {
        least = least.max(65);
    }
    least.min(full)
}

/// `out[i] = lhs[i] · rhs`, or `out[i] += lhs[i] · rhs` when `accumulate` (rows `0..picked`
/// of `out` then hold what is added to), for `picked` of a block's `full` rows, computed over
/// those rows alone (padded to [`min_rows`] of `full`) with the bits of the matmul over all
/// rows. `lhs_row(i)` gives the picked row `i`'s lhs `[k]`; `out` ends `[padded, n]`, and the
/// padding rows' outputs mean nothing.
fn picked_matmul<'a, T: Float>(
    (picked, full): (usize, usize),
    (n, k): (usize, usize),
    lhs_row: impl Fn(usize) -> &'a [T],
    rhs: Mat<'_, T>,
    accumulate: bool,
    (lhs_buf, out): (&mut Vec<T>, &mut Vec<T>),
) {
    let m = picked.max(min_rows(full, n, k));
    lhs_buf.clear();
    lhs_buf.resize(m * k, T::default());
    for i in 0..picked {
        lhs_buf[i * k..(i + 1) * k].copy_from_slice(&lhs_row(i)[..k]);
    }
    if !accumulate {
        out.clear();
    }
    out.resize(m * n, T::default());
    matmul((m, n, k), out, n, accumulate, rows(lhs_buf, k), rhs);
}

/// `lhsᵀ · rhs` for row-major `lhs` `[k, m]` and `rhs` `[k, n]`: a weight's gradient summed
/// over `k` rows.
fn summed_over_rows<T: Float>(
    k: usize,
    (lhs, m): (&[T], usize),
    (rhs, n): (&[T], usize),
) -> Vec<T> {
    let mut out = vec![T::default(); m * n];
    matmul(
        (m, n, k),
        &mut out,
        n,
        false,
        transposed(lhs, m),
        rows(rhs, n),
    );
    out
}

/// The depth (inner-dimension) block gemm uses for `dst[m, n] = lhs[m, k] · rhs[k, n]` with a
/// row-major `dst`, when it takes its general path: it works on the transpose (`n` × `m`), and
/// cuts the depth into blocks of this size (the last one shorter). Each output is a chain of
/// fused multiply-adds over one block, added to the output block by block. `None` off that
/// path, or for a kernel whose tile is not known here.
fn depth_block<T: Float>(m: usize, n: usize, k: usize) -> Option<usize> {
    if k <= 2 || m <= 1 || n <= 1 || m * n <= 256 {
        return None;
    }
    if m <= 64 && n <= 64 {
        return Some(k.min(512));
    }
    let (mr, nr) = kernel_tile::<T>()?;
    Some(gemm_common::cache::kernel_params(n, m, k, mr, nr, std::mem::size_of::<T>()).kc)
}

/// The tile (rows, columns) of the kernel gemm runs for `T` on this CPU (vendored gemm 0.19:
/// two or four vectors by six with FMA or AVX-512F, two scalars by four without).
fn kernel_tile<T: Float>() -> Option<(usize, usize)> {
    #[cfg(target_arch = "x86_64")]
    {
        let size = std::mem::size_of::<T>();
        if super::matmul_kernels() == super::MatmulKernels::Avx512 {
            return Some((4 * 64 / size, 6));
        }
        if std::arch::is_x86_feature_detected!("fma") {
            return Some((2 * 32 / size, 6));
        }
        Some((2, 4))
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// `dst[m, n] = Σᵢ lhsᵢᵀ rhsᵢ` over the depth rows `i` in `live` (sorted, disjoint ranges of
/// `0..k`), where `lhs_row(i)` is `[m]` and `rhs_row(i)` `[n]`, with the bits of the matmul over
/// all `k` rows when `rhs` is zero outside `live`. It runs gemm once per depth block of that
/// full matmul ([`depth_block`]), over the block's live rows alone (padded with zero rows to
/// three, above gemm's two-row path): a zero row changes no partial sum, so each output's
/// chain of fused multiply-adds, and its block-by-block sum, is the full one's. Returns false,
/// having written nothing, when the blocking is not known. Callers use it only where the check
/// that this gives the full matmul's bits on this CPU ([`live_depth_verified`]) passed.
fn live_depth_matmul<'a, T: Float>(
    (m, n, k): (usize, usize, usize),
    dst: &mut [T],
    live: &[Range<usize>],
    lhs_row: impl Fn(usize) -> &'a [T],
    rhs_row: impl Fn(usize) -> &'a [T],
) -> bool {
    let Some(kc) = depth_block::<T>(m, n, k) else {
        return false;
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut next = 0;
    let mut start = 0;
    while start < k {
        let end = (start + kc).min(k);
        a.clear();
        b.clear();
        while next < live.len() && live[next].end <= start {
            next += 1;
        }
        for range in live[next..].iter().take_while(|l| l.start < end) {
            for i in range.start.max(start)..range.end.min(end) {
                a.extend_from_slice(&lhs_row(i)[..m]);
                b.extend_from_slice(&rhs_row(i)[..n]);
            }
        }
        let rows_here = a.len() / m.max(1);
        if start == 0 || rows_here > 0 {
            let depth = if rows_here == 0 { 0 } else { rows_here.max(3) };
            a.resize(depth * m, T::default());
            b.resize(depth * n, T::default());
            matmul(
                (m, n, depth),
                dst,
                n,
                start > 0,
                transposed(&a, m),
                rows(&b, n),
            );
        }
        start = end;
    }
    true
}

/// Whether [`live_depth_matmul`] gives the full matmul's bits for `T` on this CPU, checked once
/// per process on products spanning several depth blocks, through both of gemm's blockings.
pub(crate) fn live_depth_verified<T: Float>() -> bool {
    static F32: OnceLock<bool> = OnceLock::new();
    static F64: OnceLock<bool> = OnceLock::new();
    let cell = if std::mem::size_of::<T>() == 4 {
        &F32
    } else {
        &F64
    };
    *cell.get_or_init(|| live_depth_agrees::<T>())
}

fn live_depth_agrees<T: Float>() -> bool {
    let live = [0..37, 50..400, 401..402, 700..1310, 1400..1500];
    [(64, 96), (100, 400), (5, 256), (16, 48)]
        .into_iter()
        .all(|(m, n)| {
            let c = LiveCase::<T>::new((m, n, 1500), &live, 0x9e37_79b9_7f4a_7c15);
            c.part.is_some_and(|p| bits(&p) == bits(&c.full))
        })
}

/// Deterministic values in [-1, 1) with full mantissas, from `seed`.
fn check_values<T: Float>(n: usize, seed: u64) -> Vec<T> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            T::from_elem((state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        })
        .collect()
}

fn bits<T: Float>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.to_f64().to_bits()).collect()
}

/// A product `lhsᵀ · rhs` over `k` depth rows whose `rhs` is zero outside `live`: the full
/// matmul, and the sum over the live rows alone (`None` where the blocking is not known).
struct LiveCase<T> {
    #[cfg_attr(not(test), allow(dead_code))]
    lhs: Vec<T>,
    #[cfg_attr(not(test), allow(dead_code))]
    rhs: Vec<T>,
    full: Vec<T>,
    part: Option<Vec<T>>,
}

impl<T: Float> LiveCase<T> {
    fn new((m, n, k): (usize, usize, usize), live: &[Range<usize>], seed: u64) -> Self {
        let lhs = check_values(k * m, seed);
        let mut rhs = check_values(k * n, seed.wrapping_add(1));
        for i in 0..k {
            if !live.iter().any(|l| l.contains(&i)) {
                rhs[i * n..(i + 1) * n].fill(T::default());
            }
        }
        let full = summed_over_rows(k, (&lhs, m), (&rhs, n));
        let mut part = vec![T::default(); m * n];
        let known = live_depth_matmul(
            (m, n, k),
            &mut part,
            live,
            |i| &lhs[i * m..(i + 1) * m],
            |i| &rhs[i * n..(i + 1) * n],
        );
        LiveCase {
            full,
            part: known.then_some(part),
            lhs,
            rhs,
        }
    }
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
    /// Steps run per row: row `r`'s first `ran[r]` steps (the rest stopped early, left zero).
    ran: Vec<usize>,
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

/// Steps the rows of a block that are still running, each step over those rows alone.
struct Stepper<'w, 'x, T> {
    w: &'w Weights<T>,
    x: &'x Inputs<'x, T>,
    flags: Option<&'w EndFlags>,
    fixed: Vec<T>,
    /// The rows still running, in order.
    running: Vec<usize>,
    /// Steps run per row so far.
    ran: Vec<usize>,
    /// Scratch: the picked rows' noise or previous states, and their gates `[m, 4H]`.
    lhs: Vec<T>,
    gates: Vec<T>,
}

impl<'w, 'x, T: Float> Stepper<'w, 'x, T> {
    fn new(w: &'w Weights<T>, x: &'x Inputs<'x, T>, flags: Option<&'w EndFlags>) -> Self {
        Stepper {
            w,
            x,
            flags,
            fixed: fixed_gates(w, x),
            running: (0..x.rows).collect(),
            ran: vec![0; x.rows],
            lhs: Vec::new(),
            gates: Vec::new(),
        }
    }

    /// Step `t`'s pre-activation gates of the running rows, `gates` row `i` for
    /// `running[i]`: `z_t · wz + (b + cond · wa) + h_{t-1} · wh`, in that order, with the
    /// bits of the same matmuls over the whole block (`[R·S, Z] × wz` and `[R, H] × wh`).
    /// `prev(row)` is the row's `h_{t-1}`. Counts step `t` as run for those rows.
    fn gates<'h>(&mut self, t: usize, prev: impl Fn(usize) -> &'h [T]) {
        let (w, x) = (self.w, self.x);
        let (h, zd, s) = (w.hidden, w.noise, x.steps);
        let g4 = 4 * h;
        let running = &self.running;
        picked_matmul(
            (running.len(), x.rows * s),
            (g4, zd),
            |i| &x.z[(running[i] * s + t) * zd..],
            rows(&w.wz, g4),
            false,
            (&mut self.lhs, &mut self.gates),
        );
        for (i, &row) in running.iter().enumerate() {
            let f = &self.fixed[row * g4..(row + 1) * g4];
            for (a, &b) in self.gates[i * g4..(i + 1) * g4].iter_mut().zip(f) {
                *a += b;
            }
            self.ran[row] = t + 1;
        }
        picked_matmul(
            (running.len(), x.rows),
            (g4, h),
            |i| prev(running[i]),
            rows(&w.wh, g4),
            true,
            (&mut self.lhs, &mut self.gates),
        );
    }

    /// Drops the rows whose step `t` (states in `hs` `[R, S, H]`) ended their flow; true
    /// when none is left running.
    fn drop_ended(&mut self, hs: &[T], t: usize) -> bool {
        let (s, h) = (self.x.steps, self.w.hidden);
        if let Some(f) = self.flags {
            self.running.retain(|&row| {
                let at = row * s + t;
                !f.ends(&hs[at * h..(at + 1) * h])
            });
        }
        self.running.is_empty()
    }
}

/// `h_{t-1}` of `row`: `h0` at the first step, else step t − 1 of the states `[R, S, H]`.
fn previous<'a, T>(h0: &'a [T], hs: &'a [T], row: usize, t: usize, s: usize, h: usize) -> &'a [T] {
    if t == 0 {
        &h0[row * h..(row + 1) * h]
    } else {
        let at = row * s + t - 1;
        &hs[at * h..(at + 1) * h]
    }
}

/// Runs the LSTM over all steps: `gates = cond·wa + b + z_t·wz + h·wh`, `c = f ⊙ c + i ⊙ g`,
/// `h = o ⊙ tanh c`; with `flags`, each row only until its flow has ended (its later states
/// stay zero), each step computed over the rows still running.
pub(crate) fn forward<T: Float>(
    w: &Weights<T>,
    x: &Inputs<'_, T>,
    flags: Option<&EndFlags>,
) -> Tape<T> {
    let (r, s, h) = (x.rows, x.steps, w.hidden);
    let g4 = 4 * h;
    let mut acts = vec![T::default(); r * s * g4];
    let mut cs = vec![T::default(); r * s * h];
    let mut tcs = vec![T::default(); r * s * h];
    let mut hs = vec![T::default(); r * s * h];
    let mut step = Stepper::new(w, x, flags);
    for t in 0..s {
        step.gates(t, |row| previous(x.h0, &hs, row, t, s, h));
        for (i, &row) in step.running.iter().enumerate() {
            let at = row * s + t;
            let (before, after) = cs.split_at_mut(at * h);
            let c = &mut after[..h];
            c.copy_from_slice(if t == 0 {
                &x.c0[row * h..(row + 1) * h]
            } else {
                &before[(at - 1) * h..at * h]
            });
            let gate = &mut acts[at * g4..(at + 1) * g4];
            gate.copy_from_slice(&step.gates[i * g4..(i + 1) * g4]);
            cell(
                gate,
                c,
                &mut tcs[at * h..(at + 1) * h],
                &mut hs[at * h..(at + 1) * h],
            );
        }
        if step.drop_ended(&hs, t) {
            break;
        }
    }
    Tape {
        acts,
        cs,
        tcs,
        hs,
        ran: step.ran,
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
/// need no backward pass: the same operations in the same order as [`forward`], so the same
/// bits, without the tape. With `flags`, each row only until its flow has ended (its later
/// states stay zero). Also returns the steps each row ran.
pub(crate) fn hidden_only<T: Float>(
    w: &Weights<T>,
    x: &Inputs<'_, T>,
    flags: Option<&EndFlags>,
) -> (Vec<T>, Vec<usize>) {
    let (r, s, h) = (x.rows, x.steps, w.hidden);
    let g4 = 4 * h;
    let mut c = x.c0.to_vec();
    let mut tc = vec![T::default(); h];
    let mut hs = vec![T::default(); r * s * h];
    let mut step = Stepper::new(w, x, flags);
    for t in 0..s {
        step.gates(t, |row| previous(x.h0, &hs, row, t, s, h));
        for (i, &row) in step.running.iter().enumerate() {
            let at = row * s + t;
            cell(
                &mut step.gates[i * g4..(i + 1) * g4],
                &mut c[row * h..(row + 1) * h],
                &mut tc,
                &mut hs[at * h..(at + 1) * h],
            );
        }
        if step.drop_ended(&hs, t) {
            break;
        }
    }
    (hs, step.ran)
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
/// `R·S` rows at the end; only `dh_{t-1} = dgates_t · whᵀ` runs per step, over the rows that
/// ran that step. Steps the forward pass skipped keep zero gradients: their states were
/// masked out of the loss, so the gradient reaching them is zero and the full pass would add
/// only zeros.
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
    let run = tape.ran.iter().copied().max().unwrap_or(0);
    let (mut lhs, mut out) = (Vec::new(), Vec::new());
    let mut running = Vec::with_capacity(r);
    for t in (0..run).rev() {
        running.clear();
        running.extend((0..r).filter(|&row| tape.ran[row] > t));
        for &row in &running {
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
        // dh_{t-1} = dgates_t · whᵀ for the rows running at t; the others' stays zero, as
        // their gates' gradients are.
        picked_matmul(
            (running.len(), r),
            (h, g4),
            |i| &dg[(running[i] * s + t) * g4..],
            transposed(&w.wh, g4),
            false,
            (&mut lhs, &mut out),
        );
        for (i, &row) in running.iter().enumerate() {
            dh_next[row * h..(row + 1) * h].copy_from_slice(&out[i * h..(i + 1) * h]);
        }
    }
    // Only the steps each row ran have nonzero gates' gradients: the weights' gradients are
    // sums over those depth rows alone (see `live_depth_matmul`).
    let n = r * s;
    let live: Vec<Range<usize>> = (0..r).map(|row| row * s..row * s + tape.ran[row]).collect();
    let prev_of = |i: usize| previous(x.h0, &tape.hs, i / s, i % s, s, h);
    let dg_of = |i: usize| &dg[i * g4..(i + 1) * g4];
    let z_of = |i: usize| &x.z[i * w.noise..(i + 1) * w.noise];
    let mut wh = vec![T::default(); h * g4];
    let live_sums = live_depth_verified::<T>();
    if !(live_sums && live_depth_matmul((h, g4, n), &mut wh, &live, prev_of, dg_of)) {
        // h_{t-1} for every (row, t): h0 first, then the states shifted by one step.
        let mut prev = vec![T::default(); r * s * h];
        for row in 0..r {
            let base = row * s * h;
            prev[base..base + h].copy_from_slice(&x.h0[row * h..(row + 1) * h]);
            prev[base + h..base + s * h].copy_from_slice(&tape.hs[base..base + (s - 1) * h]);
        }
        wh = summed_over_rows(n, (&prev, h), (&dg, g4));
    }
    let mut wz = vec![T::default(); w.noise * g4];
    if !(live_sums && live_depth_matmul((w.noise, g4, n), &mut wz, &live, z_of, dg_of)) {
        wz = summed_over_rows(n, (x.z, w.noise), (&dg, g4));
    }
    // The noise's gradient, row by row: zero where the gates' gradients are.
    let mut z = vec![T::default(); n * w.noise];
    let live_rows: Vec<usize> = live.iter().flat_map(|l| l.clone()).collect();
    let (mut lhs, mut out) = (Vec::new(), Vec::new());
    picked_matmul(
        (live_rows.len(), n),
        (w.noise, g4),
        |i| dg_of(live_rows[i]),
        transposed(&w.wz, g4),
        false,
        (&mut lhs, &mut out),
    );
    for (i, &at) in live_rows.iter().enumerate() {
        z[at * w.noise..(at + 1) * w.noise].copy_from_slice(&out[i * w.noise..(i + 1) * w.noise]);
    }
    // The conditioning and the bias enter every step alike.
    let mut dfixed = vec![T::default(); r * g4];
    for &i in &live_rows {
        let acc = &mut dfixed[(i / s) * g4..(i / s + 1) * g4];
        for (a, &v) in acc.iter_mut().zip(dg_of(i)) {
            *a += v;
        }
    }
    let mut b = vec![T::default(); g4];
    for row in dfixed.chunks_exact(g4) {
        for (a, &v) in b.iter_mut().zip(row) {
            *a += v;
        }
    }
    let wa = summed_over_rows(r, (x.cond, w.attr), (&dfixed, g4));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The LSTM's per-step shapes (`[rows, 4H] += [rows, Z or H] · w`, `[rows, H] = [rows, 4H] ·
    /// whᵀ`, the noise's gradient `[rows, Z] = [rows, 4H] · wzᵀ`) at the tiny, default and paper
    /// widths: every subset of rows, padded by `min_rows`, gives each row the bits the matmul
    /// over all rows gives it.
    fn picked_rows_match<T: Float>() {
        for h in [24, 64, 100] {
            let g4 = 4 * h;
            let shapes = [
                (g4, 5, false, false),
                (g4, h, true, false),
                (h, g4, false, true),
                (5, g4, false, true),
            ];
            for (n, k, accumulate, transpose_rhs) in shapes {
                for full in [1, 2, 3, 5, 16, 32, 96, 700] {
                    let lhs: Vec<T> = check_values(full * k, 1 + full as u64);
                    let w: Vec<T> = check_values(k * n, 2);
                    let init: Vec<T> = check_values(full * n, 3);
                    let rhs = if transpose_rhs {
                        transposed(&w, k)
                    } else {
                        rows(&w, n)
                    };
                    let mut all = init.clone();
                    if !accumulate {
                        all.fill(T::default());
                    }
                    matmul((full, n, k), &mut all, n, accumulate, rows(&lhs, k), rhs);
                    for picked in [1, 2, 3, 4, 7, 17, 64, 65, full] {
                        if picked > full {
                            continue;
                        }
                        // Every third row from an offset, wrapping: not a prefix.
                        let mut which: Vec<usize> =
                            (0..picked).map(|i| (i * 3 + 1) % full).collect();
                        which.sort_unstable();
                        which.dedup();
                        // When accumulating, the picked rows' addends come first.
                        let mut out: Vec<T> = which
                            .iter()
                            .flat_map(|&r| init[r * n..(r + 1) * n].to_vec())
                            .collect();
                        picked_matmul(
                            (which.len(), full),
                            (n, k),
                            |i| &lhs[which[i] * k..],
                            rhs,
                            accumulate,
                            (&mut Vec::new(), &mut out),
                        );
                        for (i, &row) in which.iter().enumerate() {
                            assert_eq!(
                                bits(&out[i * n..(i + 1) * n]),
                                bits(&all[row * n..(row + 1) * n]),
                                "h {h}, n {n}, k {k}, row {row} of {full}, {} picked",
                                which.len()
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_matmul_over_some_rows_gives_each_the_bits_of_the_matmul_over_all() {
        picked_rows_match::<f32>();
        picked_rows_match::<f64>();
    }

    /// The weight-gradient shapes, with the zero rows of flows that stopped early: summing over
    /// the live depth rows alone gives the full matmul's bits, on this CPU's kernel (the one
    /// training uses for the type, checked at start too). Dropping the block structure (one
    /// gemm call over the live rows) does not, which shows the blocking is what matters.
    fn live_rows_match<T: Float>() {
        assert!(live_depth_verified::<T>(), "the start-up check failed");
        let (r, s) = (32, 200);
        let k = r * s;
        let ran: Vec<usize> = (0..r).map(|row| [1, 2, 200, 3, 57][row % 5]).collect();
        let live: Vec<Range<usize>> = (0..r).map(|row| row * s..row * s + ran[row]).collect();
        for (m, n) in [(64, 256), (5, 256), (24, 96), (100, 400)] {
            let c = LiveCase::<T>::new((m, n, k), &live, 5);
            let (lhs, rhs, full) = (&c.lhs, &c.rhs, &c.full);
            let part = c.part.as_ref().expect("the blocking is known");
            assert_eq!(bits(part), bits(full), "{m} x {n}");
            // One gemm over the live rows, ignoring the blocks: other bits.
            let ids: Vec<usize> = live.iter().flat_map(|l| l.clone()).collect();
            let a: Vec<T> = ids
                .iter()
                .flat_map(|&i| lhs[i * m..(i + 1) * m].to_vec())
                .collect();
            let b: Vec<T> = ids
                .iter()
                .flat_map(|&i| rhs[i * n..(i + 1) * n].to_vec())
                .collect();
            let flat = summed_over_rows(ids.len(), (&a, m), (&b, n));
            assert_ne!(
                bits(&flat),
                bits(full),
                "{m} x {n}: blocking made no difference"
            );
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn summing_over_the_live_depth_rows_gives_the_full_matmuls_bits() {
        live_rows_match::<f32>();
        live_rows_match::<f64>();
    }
}
