//! Weights and checkpoint files: named f32 tensors in safetensors, plus string metadata.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::error::{Error, Result};

/// Named host tensors with their shapes.
pub type HostTensors = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Writes tensors (and optional metadata) atomically: to a temporary file, then renamed.
pub fn write(
    path: &Path,
    tensors: &HostTensors,
    metadata: Option<BTreeMap<String, String>>,
) -> Result<()> {
    let err = |message: String| Error::Weights {
        path: path.to_path_buf(),
        message,
    };
    let bytes: Vec<(&String, &Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, (shape, v))| (k, shape, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let mut views = Vec::with_capacity(bytes.len());
    for (name, shape, data) in &bytes {
        let view = TensorView::new(Dtype::F32, shape.to_vec(), data)
            .map_err(|e| err(format!("{name}: {e}")))?;
        views.push((name.as_str(), view));
    }
    let meta: Option<HashMap<String, String>> = metadata.map(|m| m.into_iter().collect());
    let out = safetensors::serialize(views, meta).map_err(|e| err(e.to_string()))?;
    let tmp = path.with_extension("safetensors.partial");
    // Data on disk before the rename makes it visible: a crash must leave either the old file
    // or the whole new one, never a renamed file whose blocks were not written yet.
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io("creating", &tmp, e))?;
        f.write_all(&out)
            .map_err(|e| Error::io("writing", &tmp, e))?;
        f.sync_all().map_err(|e| Error::io("syncing", &tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io("renaming into", path, e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename itself is durable once the directory is synced (Linux; elsewhere a
        // directory may not open as a file, which is not an error worth failing a run for).
        if let Ok(d) = std::fs::File::open(dir) {
            d.sync_all().map_err(|e| Error::io("syncing", dir, e))?;
        }
    }
    Ok(())
}

/// Reads every tensor (must be f32) and the metadata of a safetensors file.
pub fn read(path: &Path) -> Result<(HostTensors, BTreeMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
    let err = |message: String| Error::Weights {
        path: path.to_path_buf(),
        message,
    };
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| err(e.to_string()))?;
    let meta: BTreeMap<String, String> = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let st = SafeTensors::deserialize(&bytes).map_err(|e| err(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (name, t) in st.tensors() {
        if t.dtype() != Dtype::F32 {
            return Err(err(format!(
                "tensor {name:?} is {:?}, expected f32",
                t.dtype()
            )));
        }
        let v = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.insert(name, (t.shape().to_vec(), v));
    }
    Ok((out, meta))
}
