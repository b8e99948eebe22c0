//! The encoder's outputs as the model reads them: the layout and each chunk's tensors, found
//! by file name (`layout.json`, `train-NNN.safetensors`) in a directory or a store input map.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use netshare_core::layout::Layout;
use netshare_core::tensors::ChunkTensors;

use crate::error::{Error, Result};

/// Reads and parses a JSON file, naming the file in either error.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Everything training needs from the encoder.
#[derive(Clone, Debug)]
pub struct Encoded {
    /// The field layout.
    pub layout: Layout,
    /// Chunk tensors in chunk order.
    pub chunks: Vec<ChunkTensors>,
}

/// `train-NNN.safetensors` → NNN.
fn chunk_index(name: &str) -> Option<usize> {
    name.strip_prefix("train-")?
        .strip_suffix(".safetensors")?
        .parse()
        .ok()
}

impl Encoded {
    /// Reads from a directory holding the encoder's outputs.
    pub fn from_dir(dir: &Path) -> Result<Encoded> {
        let mut inputs = BTreeMap::new();
        let entries = std::fs::read_dir(dir).map_err(|e| Error::io("listing", dir, e))?;
        for e in entries {
            let e = e.map_err(|e| Error::io("listing", dir, e))?;
            if let Some(name) = e.file_name().to_str() {
                inputs.insert(name.to_string(), e.path());
            }
        }
        Encoded::from_inputs(&inputs)
    }

    /// Reads from named files (store inputs are named after the encoder's file names).
    pub fn from_inputs(inputs: &BTreeMap<String, PathBuf>) -> Result<Encoded> {
        let layout_path = inputs.get("layout.json").ok_or_else(|| {
            Error::Input(format!(
                "no layout.json among {:?}",
                inputs.keys().collect::<Vec<_>>()
            ))
        })?;
        let layout: Layout = read_json(layout_path)?;
        let mut files: BTreeMap<usize, &PathBuf> = BTreeMap::new();
        for (name, path) in inputs {
            if let Some(i) = chunk_index(name) {
                files.insert(i, path);
            }
        }
        if files.is_empty() {
            return Err(Error::Input("no train-NNN.safetensors inputs".into()));
        }
        let mut chunks = Vec::with_capacity(files.len());
        for (want, (i, path)) in files.into_iter().enumerate() {
            if i != want {
                return Err(Error::Input(format!(
                    "chunk files are not numbered 000 upward: train-{want:03}.safetensors is missing"
                )));
            }
            chunks.push(ChunkTensors::read(path)?);
        }
        let e = Encoded { layout, chunks };
        e.check()?;
        Ok(e)
    }

    /// Checks that every chunk matches the layout and that all share one time length.
    pub fn check(&self) -> Result<()> {
        let a = self.layout.attribute_dim();
        let f = self.layout.feature_dim();
        let t0 = self.chunks.first().map(|c| c.max_len).unwrap_or(0);
        for (i, c) in self.chunks.iter().enumerate() {
            c.check()
                .map_err(|m| Error::Input(format!("chunk {i}: {m}")))?;
            if c.attr_dim != a || c.feat_dim != f {
                return Err(Error::Input(format!(
                    "chunk {i} has {} attribute and {} feature dims, layout.json says {a} and {f}",
                    c.attr_dim, c.feat_dim
                )));
            }
            if c.max_len != t0 {
                return Err(Error::Input(format!(
                    "chunk {i} has time length {}, chunk 0 has {t0}: chunks must share one length",
                    c.max_len
                )));
            }
        }
        Ok(())
    }

    /// The common time length T.
    pub fn max_len(&self) -> usize {
        self.chunks.first().map(|c| c.max_len).unwrap_or(0)
    }
}

/// Real records as the critic sees them `[N, T * (F + 2)]`: each record's features followed by
/// its gen_flag one-hot (continue, end) — `[1, 0]` before the last record, `[0, 1]` on it,
/// `[0, 0]` on padding.
pub(crate) fn critic_records(c: &ChunkTensors) -> Vec<f32> {
    let (t, f) = (c.max_len, c.feat_dim);
    let mut out = Vec::with_capacity(c.n * t * (f + 2));
    for i in 0..c.n {
        for s in 0..t {
            let base = (i * t + s) * f;
            out.extend_from_slice(&c.features[base..base + f]);
            let here = c.gen_flag[i * t + s] > 0.5;
            let next = s + 1 < t && c.gen_flag[i * t + s + 1] > 0.5;
            let (cont, end) = match (here, next) {
                (true, true) => (1.0, 0.0),
                (true, false) => (0.0, 1.0),
                (false, _) => (0.0, 0.0),
            };
            out.push(cont);
            out.push(end);
        }
    }
    out
}
