//! Moving parameters between the device and host memory, and reading scalars back.

use std::collections::BTreeMap;

use burn::tensor::Tensor;

use crate::error::{Error, Result};
use crate::nets::{Ctx, Params};
use crate::weights::HostTensors;

/// Host tensors as device parameters (2-D; a 1-D shape gets a second dimension of 1).
pub(crate) fn to_device(ctx: &Ctx, host: &HostTensors) -> Params {
    host.iter()
        .map(|(k, (shape, v))| {
            let t: Tensor<2> =
                ctx.tensor(v.clone(), [shape[0], shape.get(1).copied().unwrap_or(1)]);
            (k.clone(), t)
        })
        .collect()
}

/// A tensor's values read back into host memory as f32 (outside any autodiff graph); `what`
/// names it in the error.
pub(crate) fn floats<const D: usize>(t: Tensor<D>, what: &str) -> Result<Vec<f32>> {
    t.without_autodiff()
        .try_into_vec_as::<f32>()
        .map_err(|e| Error::Backend(format!("reading {what}: {e:?}")))
}

/// Device parameters read back into host memory.
pub(crate) fn to_host(params: &Params) -> Result<HostTensors> {
    let mut out = BTreeMap::new();
    for (k, t) in params {
        out.insert(k.clone(), (t.dims().to_vec(), floats(t.clone(), k)?));
    }
    Ok(out)
}

/// The first value of a tensor (a loss), read back.
pub(crate) fn scalar(t: Tensor<1>, what: &str) -> Result<f32> {
    let v = floats(t, what)?;
    v.first()
        .copied()
        .ok_or_else(|| Error::Backend(format!("{what} is empty")))
}
