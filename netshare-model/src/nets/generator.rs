//! The attribute generator: an MLP with batch norm from noise to activated attributes.

use burn::tensor::{Tensor, activation};

use super::{Dims, Params, linear, p};

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
