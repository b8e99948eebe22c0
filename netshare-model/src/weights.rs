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
    let meta: Option<HashMap<String, String>> = metadata
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    let mut out = safetensors::serialize(views, meta).map_err(|e| err(e.to_string()))?;
    if let Some(m) = &metadata {
        sort_metadata(&mut out, m).map_err(err)?;
    }
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

/// Puts the header's metadata keys in order. safetensors takes the metadata as a `HashMap`,
/// whose iteration order changes from process to process, so a file with two or more metadata
/// keys (a chunk run's result, a checkpoint) would get different bytes for the same content.
/// The metadata object comes first in the header; its sorted form has the same length, so it
/// is written over it in place, after checking that the bytes there hold the same pairs.
fn sort_metadata(
    out: &mut [u8],
    metadata: &BTreeMap<String, String>,
) -> std::result::Result<(), String> {
    if metadata.len() < 2 {
        return Ok(());
    }
    const PREFIX: &[u8] = b"{\"__metadata__\":";
    let sorted = serde_json::to_vec(metadata).map_err(|e| e.to_string())?;
    let (start, end) = (8 + PREFIX.len(), 8 + PREFIX.len() + sorted.len());
    let slot = out
        .get(start..end)
        .filter(|_| out[8..].starts_with(PREFIX))
        .ok_or("the safetensors header does not begin with its metadata")?;
    let written: BTreeMap<String, String> = serde_json::from_slice(slot)
        .map_err(|e| format!("the safetensors header's metadata did not parse: {e}"))?;
    if written != *metadata {
        return Err("the safetensors header's metadata differs from what was given".into());
    }
    out[start..end].copy_from_slice(&sorted);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The same tensors and metadata give the same bytes every time, though each write hands
    /// safetensors a new `HashMap` (and so a new iteration order), and read gives them back.
    #[test]
    fn metadata_with_several_keys_is_written_in_order_and_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tensors: HostTensors = BTreeMap::from([
            ("b".to_string(), (vec![2], vec![1.0, -2.5])),
            ("a".to_string(), (vec![1, 1], vec![0.25])),
        ]);
        let meta: BTreeMap<String, String> = (0..12)
            .map(|i| (format!("key{i:02}"), format!("value {i}")))
            .collect();
        let files: Vec<Vec<u8>> = (0..6)
            .map(|i| {
                let p = dir.path().join(format!("w{i}.safetensors"));
                write(&p, &tensors, Some(meta.clone())).expect("write");
                std::fs::read(&p).expect("read bytes")
            })
            .collect();
        assert!(
            files.iter().all(|f| *f == files[0]),
            "bytes differ between writes"
        );
        let text = String::from_utf8_lossy(&files[0]);
        let expected = serde_json::to_string(&meta).expect("json");
        assert!(
            text.contains(&format!("{{\"__metadata__\":{expected}")),
            "{text}"
        );
        let (back, back_meta) = read(&dir.path().join("w0.safetensors")).expect("read");
        assert_eq!((back, back_meta), (tensors.clone(), meta));
        // No metadata, or a single key: safetensors' own bytes, untouched.
        let one = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let p = dir.path().join("one.safetensors");
        write(&p, &tensors, Some(one.clone())).expect("write");
        let direct = {
            let data: Vec<(String, Vec<u8>)> = tensors
                .iter()
                .map(|(k, (_, v))| (k.clone(), v.iter().flat_map(|x| x.to_le_bytes()).collect()))
                .collect();
            let views: Vec<(&str, TensorView)> = data
                .iter()
                .zip(tensors.values())
                .map(|((k, d), (shape, _))| {
                    (
                        k.as_str(),
                        TensorView::new(Dtype::F32, shape.clone(), d).expect("view"),
                    )
                })
                .collect();
            safetensors::serialize(views, Some(one.into_iter().collect())).expect("serialize")
        };
        assert_eq!(std::fs::read(&p).expect("bytes"), direct);
    }
}
