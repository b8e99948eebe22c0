//! The sampling API the synthesiser uses: a trained model loaded from `model.json` and
//! `weights-NNN.safetensors`, attributes from noise, features given attributes, batched.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::{DType, Device, Tensor};
use netshare_core::layout::Layout;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::features;
use crate::host::to_device;
use crate::model_file::{MODEL_FORMAT, ModelFile};
use crate::nets::{self, Ctx, Dims};
use crate::seed::derive_seed;
use crate::step::LstmForm;
use crate::step::feat_noise;
use crate::weights::{self, HostTensors};

/// Features sampled with their continuations ([`TrainedModel::try_sample_continued`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Continued {
    /// `[n, T, F]`: each flow's records up to its end, then what the generator output after.
    pub features: Vec<f32>,
    /// Each flow's length, as [`TrainedModel::try_sample_features`] gives it.
    pub lengths: Vec<usize>,
    /// Each flow's gen_flag 'continue' output minus its 'end' output at its last record.
    pub margins: Vec<f32>,
}

/// A trained model, ready to sample. See the crate docs for the API contract.
#[derive(Clone, Debug)]
pub struct TrainedModel {
    model: ModelFile,
    weights: Vec<HostTensors>,
    dims: Dims,
    device: Device,
}

fn weights_index(name: &str) -> Option<usize> {
    name.strip_prefix("weights-")?
        .strip_suffix(".safetensors")?
        .parse()
        .ok()
}

fn read_vec(ctx: &Ctx, t: Tensor<2>) -> Vec<f32> {
    let _ = ctx;
    t.try_into_vec_as::<f32>()
        .expect("reading a CPU tensor back cannot fail; a GPU failure here is unrecoverable")
}

impl TrainedModel {
    /// Loads from a directory holding `model.json` and `weights-000.safetensors` ….
    pub fn load(dir: impl AsRef<Path>) -> Result<TrainedModel> {
        let dir = dir.as_ref();
        let mut named = BTreeMap::new();
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
        for e in entries {
            let e = e.map_err(|e| Error::io("listing", dir, e))?;
            if let Some(name) = e.file_name().to_str() {
                named.insert(name.to_string(), e.path());
            }
        }
        TrainedModel::from_inputs(&named)
    }

    /// Loads from named files, e.g. a store run's inputs: `model.json` and
    /// `weights-NNN.safetensors` (other names are ignored).
    pub fn from_inputs(inputs: &BTreeMap<String, PathBuf>) -> Result<TrainedModel> {
        let model = inputs.get("model.json").ok_or_else(|| {
            Error::Input(format!(
                "no model.json among {:?}",
                inputs.keys().collect::<Vec<_>>()
            ))
        })?;
        let mut w: BTreeMap<usize, PathBuf> = BTreeMap::new();
        for (name, path) in inputs {
            if let Some(i) = weights_index(name) {
                w.insert(i, path.clone());
            }
        }
        for (want, have) in w.keys().enumerate() {
            if want != *have {
                return Err(Error::Input(format!(
                    "weights-{want:03}.safetensors is missing"
                )));
            }
        }
        TrainedModel::from_files(model, &w.into_values().collect::<Vec<_>>())
    }

    /// Loads from the path of `model.json` and the weights files in chunk order.
    pub fn from_files(model_json: &Path, weights_files: &[PathBuf]) -> Result<TrainedModel> {
        let model: ModelFile = crate::data::read_json(model_json)?;
        if model.format != MODEL_FORMAT {
            return Err(Error::Input(format!(
                "{}: format {:?}, expected {MODEL_FORMAT:?}",
                model_json.display(),
                model.format
            )));
        }
        if weights_files.len() != model.chunks.len() {
            return Err(Error::Input(format!(
                "{} describes {} chunks but {} weights files were given",
                model_json.display(),
                model.chunks.len(),
                weights_files.len()
            )));
        }
        let dims = Dims::new(&model.config, &model.layout, model.max_len).map_err(Error::Input)?;
        let specs = nets::specs(&dims);
        let mut all = Vec::with_capacity(weights_files.len());
        for path in weights_files {
            let (t, _) = weights::read(path)?;
            for s in &specs {
                match t.get(&s.name) {
                    Some((shape, _)) if shape.as_slice() == s.shape.as_slice() => {}
                    Some((shape, _)) => {
                        return Err(Error::Weights {
                            path: path.clone(),
                            message: format!(
                                "{} has shape {shape:?}, the config needs {:?}",
                                s.name, s.shape
                            ),
                        });
                    }
                    None => {
                        return Err(Error::Weights {
                            path: path.clone(),
                            message: format!("tensor {} is missing", s.name),
                        });
                    }
                }
            }
            all.push(t);
        }
        Ok(TrainedModel {
            model,
            weights: all,
            dims,
            device: Device::flex(),
        })
    }

    /// Samples on another device (e.g. a GPU with the `cuda` feature); CPU by default.
    pub fn with_device(mut self, device: Device) -> TrainedModel {
        self.device = device;
        self
    }

    /// Number of chunks (one set of weights each).
    pub fn n_chunks(&self) -> usize {
        self.weights.len()
    }

    /// The layout the heads follow.
    pub fn layout(&self) -> &Layout {
        &self.model.layout
    }

    /// Records per flow T of the feature tensors.
    pub fn max_len(&self) -> usize {
        self.dims.max_len
    }

    /// Attribute width A.
    pub fn attr_dim(&self) -> usize {
        self.dims.attr
    }

    /// Feature width F.
    pub fn feat_dim(&self) -> usize {
        self.dims.feat
    }

    /// The parsed `model.json`.
    pub fn model_file(&self) -> &ModelFile {
        &self.model
    }

    fn ctx(&self) -> Ctx {
        Ctx {
            device: self.device.clone(),
            dtype: DType::F32,
        }
    }

    /// `n` attribute rows `[n, A]` (row-major), activations applied in layout order.
    ///
    /// # Panics
    /// When `chunk >= n_chunks()`; see [`TrainedModel::try_sample_attributes`].
    pub fn sample_attributes(&self, chunk: usize, n: usize, seed: u64) -> Vec<f32> {
        self.try_sample_attributes(chunk, n, seed)
            .unwrap_or_else(|e| panic!("sample_attributes: {e}"))
    }

    /// [`TrainedModel::sample_attributes`] that returns bad arguments as errors.
    pub fn try_sample_attributes(&self, chunk: usize, n: usize, seed: u64) -> Result<Vec<f32>> {
        let host = self.weights_of(chunk)?;
        let ctx = self.ctx();
        let params = to_device(&ctx, host);
        let b = self.model.config.batch_size;
        let mut out = Vec::with_capacity(n * self.dims.attr);
        for (k, start) in (0..n).step_by(b).enumerate() {
            let mut rng =
                ChaCha8Rng::seed_from_u64(derive_seed(seed, &[2, chunk as u64, k as u64]));
            let z = ctx.normal(&mut rng, [b, self.dims.attr_noise]);
            let a = read_vec(&ctx, nets::gen_attributes(&params, &self.dims, z));
            let rows = b.min(n - start);
            out.extend_from_slice(&a[..rows * self.dims.attr]);
        }
        Ok(out)
    }

    /// Features `[n, T, F]` for attribute rows `[n, A]`, and each flow's length: the records
    /// up to and including the first whose gen_flag says 'end' (T when none does). Records
    /// after the end are zero. Softmax attribute heads are conditioned on as hard one-hots, so
    /// probabilities from [`TrainedModel::sample_attributes`] and exact one-hots both work.
    ///
    /// # Panics
    /// When `chunk >= n_chunks()` or `attributes.len()` is not a multiple of A; see
    /// [`TrainedModel::try_sample_features`].
    pub fn sample_features(
        &self,
        chunk: usize,
        attributes: &[f32],
        seed: u64,
    ) -> (Vec<f32>, Vec<usize>) {
        self.try_sample_features(chunk, attributes, seed)
            .unwrap_or_else(|e| panic!("sample_features: {e}"))
    }

    /// [`TrainedModel::sample_features`] that returns bad arguments as errors.
    pub fn try_sample_features(
        &self,
        chunk: usize,
        attributes: &[f32],
        seed: u64,
    ) -> Result<(Vec<f32>, Vec<usize>)> {
        let s = self.sample_steps(chunk, attributes, seed, false)?;
        Ok((s.features, s.lengths))
    }

    /// [`TrainedModel::try_sample_features`] with the records the generator goes on to output
    /// after each flow's end left in place (not zeroed), and for each flow how far its
    /// gen_flag was from going on at its last record: the 'continue' output minus the 'end'
    /// output there (below zero where the flow ended; the flag's value at the last step where
    /// the flow runs to T). Same seed, same lengths and the same records up to each end as
    /// [`TrainedModel::try_sample_features`]. Synth uses it to lengthen or shorten flows to
    /// the training flow lengths.
    pub fn try_sample_continued(
        &self,
        chunk: usize,
        attributes: &[f32],
        seed: u64,
    ) -> Result<Continued> {
        self.sample_steps(chunk, attributes, seed, true)
    }

    fn sample_steps(
        &self,
        chunk: usize,
        attributes: &[f32],
        seed: u64,
        continued: bool,
    ) -> Result<Continued> {
        let d = &self.dims;
        if !attributes.len().is_multiple_of(d.attr) {
            return Err(Error::Argument(format!(
                "attributes hold {} values, not a multiple of the attribute width {}",
                attributes.len(),
                d.attr
            )));
        }
        let n = attributes.len() / d.attr;
        let host = self.weights_of(chunk)?;
        let ctx = self.ctx();
        let params = to_device(&ctx, host);
        let b = self.model.config.batch_size;
        let mut out = Continued {
            features: Vec::with_capacity(n * d.max_len * d.feat),
            lengths: Vec::with_capacity(n),
            margins: Vec::with_capacity(if continued { n } else { 0 }),
        };
        for (k, start) in (0..n).step_by(b).enumerate() {
            let rows = b.min(n - start);
            let mut a = attributes[start * d.attr..(start + rows) * d.attr].to_vec();
            a.resize(b * d.attr, 0.0);
            let mut rng =
                ChaCha8Rng::seed_from_u64(derive_seed(seed, &[3, chunk as u64, k as u64]));
            let (zf, h0, c0) = feat_noise(&ctx, d, &mut rng, b);
            let fused = nets::on_host(&self.device);
            let g = features::gen_features(
                &params,
                d,
                ctx.tensor(a, [b, d.attr]),
                (zf, h0, c0),
                if fused {
                    LstmForm::FusedFull
                } else {
                    LstmForm::TensorOps
                },
            )?;
            let recs = if continued { g.continued } else { g.records };
            let rec = read_vec(&ctx, recs.reshape([b, d.max_len * d.rec()]));
            let mask = read_vec(&ctx, g.mask);
            for i in 0..rows {
                for t in 0..d.max_len {
                    let base = (i * d.max_len + t) * d.rec();
                    out.features.extend_from_slice(&rec[base..base + d.feat]);
                }
                let len = mask[i * d.max_len..(i + 1) * d.max_len]
                    .iter()
                    .filter(|m| **m > 0.5)
                    .count();
                out.lengths.push(len);
                if continued {
                    let last = (i * d.max_len + len.max(1) - 1) * d.rec() + d.feat;
                    out.margins.push(rec[last] - rec[last + 1]);
                }
            }
        }
        Ok(out)
    }

    fn weights_of(&self, chunk: usize) -> Result<&HostTensors> {
        self.weights.get(chunk).ok_or_else(|| {
            Error::Argument(format!(
                "chunk {chunk} does not exist; the model has {}",
                self.weights.len()
            ))
        })
    }
}
