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

/// Device parameters read back into host memory.
pub(crate) fn to_host(params: &Params) -> Result<HostTensors> {
    let mut out = BTreeMap::new();
    for (k, t) in params {
        let shape = t.dims().to_vec();
        let v = t
            .clone()
            .try_into_vec_as::<f32>()
            .map_err(|e| Error::Backend(format!("reading {k}: {e:?}")))?;
        out.insert(k.clone(), (shape, v));
    }
    Ok(out)
}

/// The first value of a tensor (a loss), read back.
pub(crate) fn scalar(t: Tensor<1>, what: &str) -> Result<f32> {
    let v = t
        .try_into_vec_as::<f32>()
        .map_err(|e| Error::Backend(format!("reading {what}: {e:?}")))?;
    v.first()
        .copied()
        .ok_or_else(|| Error::Backend(format!("{what} is empty")))
}
