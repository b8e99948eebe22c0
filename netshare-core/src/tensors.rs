//! Training tensors of one chunk, stored as safetensors (numpy and PyTorch read them too):
//! `attributes` [N, A], `features` [N, T, F] and `gen_flag` [N, T], all f32, row-major.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{Error, Result};

/// The tensors of one chunk.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChunkTensors {
    /// Number of flows (samples).
    pub n: usize,
    /// Attribute dimensions.
    pub attr_dim: usize,
    /// Time steps per flow (max_flow_len padded to a multiple of sample_len).
    pub max_len: usize,
    /// Feature dimensions per step.
    pub feat_dim: usize,
    /// [n, attr_dim].
    pub attributes: Vec<f32>,
    /// [n, max_len, feat_dim], zero past each flow's length.
    pub features: Vec<f32>,
    /// [n, max_len]: 1 for real steps, 0 for padding.
    pub gen_flag: Vec<f32>,
}

impl ChunkTensors {
    /// Zero tensors of the given shape.
    pub fn zeros(n: usize, attr_dim: usize, max_len: usize, feat_dim: usize) -> Self {
        ChunkTensors {
            n,
            attr_dim,
            max_len,
            feat_dim,
            attributes: vec![0.0; n * attr_dim],
            features: vec![0.0; n * max_len * feat_dim],
            gen_flag: vec![0.0; n * max_len],
        }
    }

    /// Checks that the buffers match the shape.
    pub fn check(&self) -> std::result::Result<(), String> {
        let want = [
            ("attributes", self.attributes.len(), self.n * self.attr_dim),
            (
                "features",
                self.features.len(),
                self.n * self.max_len * self.feat_dim,
            ),
            ("gen_flag", self.gen_flag.len(), self.n * self.max_len),
        ];
        for (name, have, need) in want {
            if have != need {
                return Err(format!("{name} has {have} values, shape needs {need}"));
            }
        }
        Ok(())
    }

    /// Writes a safetensors file (deterministic: fixed tensor names, sorted by the format).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.check().map_err(|message| Error::Tensors {
            path: path.to_path_buf(),
            message,
        })?;
        let bytes = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let a = bytes(&self.attributes);
        let f = bytes(&self.features);
        let g = bytes(&self.gen_flag);
        fn view<'d>(path: &Path, shape: Vec<usize>, data: &'d [u8]) -> Result<TensorView<'d>> {
            TensorView::new(Dtype::F32, shape, data).map_err(|e| Error::Tensors {
                path: path.to_path_buf(),
                message: e.to_string(),
            })
        }
        let tensors = vec![
            ("attributes", view(path, vec![self.n, self.attr_dim], &a)?),
            (
                "features",
                view(path, vec![self.n, self.max_len, self.feat_dim], &f)?,
            ),
            ("gen_flag", view(path, vec![self.n, self.max_len], &g)?),
        ];
        let out =
            safetensors::serialize(tensors, None::<HashMap<String, String>>).map_err(|e| {
                Error::Tensors {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                }
            })?;
        std::fs::write(path, out).map_err(|e| Error::io("writing", path, e))
    }

    /// Reads a file written by [`ChunkTensors::write`] (or by numpy / PyTorch with the same names).
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
        let err = |message: String| Error::Tensors {
            path: path.to_path_buf(),
            message,
        };
        let st = SafeTensors::deserialize(&bytes).map_err(|e| err(e.to_string()))?;
        let get = |name: &str, rank: usize| -> Result<(Vec<usize>, Vec<f32>)> {
            let t = st
                .tensor(name)
                .map_err(|e| err(format!("tensor {name:?}: {e}")))?;
            if t.dtype() != Dtype::F32 || t.shape().len() != rank {
                return Err(err(format!(
                    "tensor {name:?} is {:?} {:?}, expected f32 of rank {rank}",
                    t.dtype(),
                    t.shape()
                )));
            }
            let data = t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            Ok((t.shape().to_vec(), data))
        };
        let (ash, attributes) = get("attributes", 2)?;
        let (fsh, features) = get("features", 3)?;
        let (gsh, gen_flag) = get("gen_flag", 2)?;
        if fsh[0] != ash[0] || gsh[0] != ash[0] || gsh[1] != fsh[1] {
            return Err(err(format!(
                "inconsistent shapes: attributes {ash:?}, features {fsh:?}, gen_flag {gsh:?}"
            )));
        }
        Ok(ChunkTensors {
            n: ash[0],
            attr_dim: ash[1],
            max_len: fsh[1],
            feat_dim: fsh[2],
            attributes,
            features,
            gen_flag,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_tensors_round_trip_through_safetensors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.safetensors");
        let mut t = ChunkTensors::zeros(3, 2, 4, 5);
        for (i, x) in t.features.iter_mut().enumerate() {
            *x = i as f32 * 0.25;
        }
        t.attributes[5] = 1.0;
        t.gen_flag[..2].fill(1.0);
        t.write(&p).expect("write");
        assert_eq!(ChunkTensors::read(&p).expect("read"), t);
    }

    #[test]
    fn mismatched_buffers_are_refused_on_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut t = ChunkTensors::zeros(3, 2, 4, 5);
        t.gen_flag.pop();
        let err = t
            .write(&dir.path().join("x.safetensors"))
            .expect_err("bad shape");
        assert!(err.to_string().contains("gen_flag has 11 values"), "{err}");
    }
}
