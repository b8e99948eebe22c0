//! Output heads: the layout's segments grouped into runs that one tensor op can activate
//! (softmax over each segment, sigmoid / tanh elementwise), and their hard one-hot versions.

use burn::tensor::{Tensor, activation};
use netshare_core::layout::{Activation, Segment};

/// Consecutive segments that one operation activates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    /// First column.
    pub offset: usize,
    /// Columns covered.
    pub len: usize,
    /// What to apply.
    pub kind: RunKind,
}

/// The operation of a [`Run`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RunKind {
    /// Softmax over each group of `dim` columns.
    Softmax(usize),
    /// Sigmoid on every column.
    Sigmoid,
    /// Tanh on every column.
    Tanh,
}

/// Groups segments into runs: neighbouring softmax heads of the same size share one run
/// (e.g. 64 IP bits become one `[B, 64, 2]` softmax), neighbouring sigmoid or tanh heads too.
pub(crate) fn runs(segments: &[Segment]) -> Vec<Run> {
    let mut out: Vec<Run> = Vec::new();
    let mut offset = 0;
    for s in segments {
        let kind = match s.activation {
            Activation::Softmax => RunKind::Softmax(s.dim),
            Activation::Sigmoid => RunKind::Sigmoid,
            Activation::Tanh => RunKind::Tanh,
        };
        match out.last_mut() {
            Some(last) if last.kind == kind && last.offset + last.len == offset => {
                last.len += s.dim;
            }
            _ => out.push(Run {
                offset,
                len: s.dim,
                kind,
            }),
        }
        offset += s.dim;
    }
    out
}

fn apply(x: Tensor<2>, runs: &[Run], hard: bool) -> Tensor<2> {
    let [rows, _] = x.dims();
    let mut parts = Vec::with_capacity(runs.len());
    for r in runs {
        let seg = if runs.len() == 1 {
            x.clone()
        } else {
            x.clone().slice([0..rows, r.offset..r.offset + r.len])
        };
        let y = match r.kind {
            RunKind::Softmax(d) => {
                let k = r.len / d;
                let z = seg.reshape([rows, k, d]);
                let z = if hard {
                    let max = z.clone().max_dim(2).expand([rows, k, d]);
                    let dtype = z.dtype();
                    z.greater_equal(max).float().cast(dtype)
                } else {
                    activation::softmax(z, 2)
                };
                z.reshape([rows, r.len])
            }
            RunKind::Sigmoid if !hard => activation::sigmoid(seg),
            RunKind::Tanh if !hard => seg.tanh(),
            RunKind::Sigmoid | RunKind::Tanh => seg,
        };
        parts.push(y);
    }
    if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Tensor::cat(parts, 1)
    }
}

/// Applies each run's activation to raw outputs `[rows, width]`.
pub(crate) fn activate(x: Tensor<2>, runs: &[Run]) -> Tensor<2> {
    apply(x, runs, false)
}

/// Turns activated softmax runs into hard one-hots (arg-max); other columns pass through.
/// The result carries no gradient.
pub(crate) fn harden(x: Tensor<2>, runs: &[Run]) -> Tensor<2> {
    apply(x.without_autodiff(), runs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbouring_heads_of_one_kind_share_a_run() {
        let segs = vec![
            Segment::new("srcip/bit00", 2, Activation::Softmax),
            Segment::new("srcip/bit01", 2, Activation::Softmax),
            Segment::new("proto", 3, Activation::Softmax),
            Segment::new("srcport", 10, Activation::Tanh),
            Segment::new("dstport", 10, Activation::Tanh),
            Segment::new("flow_start", 1, Activation::Sigmoid),
        ];
        let r = runs(&segs);
        assert_eq!(
            r,
            vec![
                Run {
                    offset: 0,
                    len: 4,
                    kind: RunKind::Softmax(2)
                },
                Run {
                    offset: 4,
                    len: 3,
                    kind: RunKind::Softmax(3)
                },
                Run {
                    offset: 7,
                    len: 20,
                    kind: RunKind::Tanh
                },
                Run {
                    offset: 27,
                    len: 1,
                    kind: RunKind::Sigmoid
                },
            ]
        );
    }

    #[test]
    fn activations_follow_the_runs_and_hardening_picks_the_argmax() {
        let device = burn::tensor::Device::flex();
        let segs = vec![
            Segment::new("a", 2, Activation::Softmax),
            Segment::new("b", 3, Activation::Softmax),
            Segment::new("c", 1, Activation::Sigmoid),
            Segment::new("d", 1, Activation::Tanh),
        ];
        let r = runs(&segs);
        let x = Tensor::<2>::from_floats([[0.0, 1.0, 2.0, 0.0, -1.0, 0.0, 0.5]], &device);
        let y: Vec<f32> = activate(x, &r).try_into_vec_as().expect("f32");
        let e = 1.0f32.exp();
        let close = |a: f32, b: f32| (a - b).abs() < 1e-6;
        assert!(
            close(y[0], 1.0 / (1.0 + e)) && close(y[1], e / (1.0 + e)),
            "{y:?}"
        );
        let s3 = 2f32.exp() + 1.0 + (-1f32).exp();
        assert!(close(y[2], 2f32.exp() / s3), "{y:?}");
        assert!(close(y[5], 0.5) && close(y[6], 0.5f32.tanh()), "{y:?}");
        let yt = Tensor::<2>::from_data(burn::tensor::TensorData::new(y.clone(), [1, 7]), &device);
        let h: Vec<f32> = harden(yt, &r).try_into_vec_as().expect("f32");
        assert_eq!(&h[..5], &[0.0, 1.0, 1.0, 0.0, 0.0]);
        assert!(close(h[5], 0.5) && close(h[6], 0.5f32.tanh()));
    }
}
