//! The content-addressed artifact store.
//!
//! Layout under the root (default `./.netshare`):
//! - `blobs/sha256/<2 hex>/<64 hex>`: immutable files named by the SHA-256 of their bytes;
//! - `runs/<key>.json`: one manifest per stage run, written last (the commit point);
//! - `refs/<namespace>/<name>.json`: small mutable pointers (the driver's "last run of stage X");
//! - `locks/<key>.lock`: advisory locks so two processes never compute one key at once;
//! - `tmp/`: work directories and partial files, on the same filesystem so renames are atomic;
//! - `scratch/<key>/`: a run's checkpoints, kept across crashes so a re-run resumes.
//!
//! Every write goes to a temporary file, is fsynced and renamed into place, so readers on any
//! machine sharing the directory see either nothing or the whole file. No state lives between
//! processes except these files, which is what lets several machines share one store.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::Manifest;

/// Environment variable that overrides the store location.
pub const STORE_ENV: &str = "NETSHARE_STORE";
/// Default store directory, relative to the working directory.
pub const DEFAULT_STORE: &str = ".netshare";

/// A handle on a store directory. Cheap to clone; holds no open files.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// An exclusive advisory lock on one run key, released on drop.
#[derive(Debug)]
pub struct KeyLock {
    _file: File,
}

/// What `gc` removed and kept.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    /// Blobs still reachable from a manifest or a ref.
    pub kept_blobs: usize,
    /// Blobs removed.
    pub removed_blobs: usize,
    /// Bytes freed by removed blobs and temp entries.
    pub freed_bytes: u64,
    /// Temporary files and work directories removed.
    pub removed_tmp: usize,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// Opens (creating if needed) a store at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for sub in ["blobs/sha256", "runs", "refs", "locks", "tmp"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(|e| Error::io("creating", &p, e))?;
        }
        Ok(Store { root })
    }

    /// The store root chosen by `NETSHARE_STORE`, else `./.netshare`.
    pub fn default_root() -> PathBuf {
        std::env::var_os(STORE_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STORE))
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join("blobs/sha256").join(&hex[..2]).join(hex)
    }

    /// Whether the store holds a blob.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// A fresh path under `tmp/`, unique across threads, processes and machines sharing the store.
    pub fn temp_path(&self, label: &str) -> PathBuf {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let host = hostname();
        self.root
            .join("tmp")
            .join(format!("{label}-{host}-{}-{nanos}-{n}", std::process::id()))
    }

    /// The crash-surviving scratch directory of a run key (created on demand by the stage).
    pub fn scratch_path(&self, key: &Digest) -> PathBuf {
        self.root.join("scratch").join(key.hex())
    }

    /// Stores bytes as a blob and returns their digest.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of_bytes(bytes);
        if self.has_blob(&digest) {
            return Ok(digest);
        }
        let tmp = self.temp_path("blob");
        write_synced(&tmp, bytes)?;
        self.install_blob(&tmp, &digest)?;
        Ok(digest)
    }

    /// Copies a file into the store (streaming, hashing as it goes) and returns its digest.
    pub fn put_file(&self, path: &Path) -> Result<Digest> {
        let mut src = File::open(path).map_err(|e| Error::io("opening", path, e))?;
        let tmp = self.temp_path("import");
        let mut dst = File::create(&tmp).map_err(|e| Error::io("creating", &tmp, e))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = src
                .read(&mut buf)
                .map_err(|e| Error::io("reading", path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            dst.write_all(&buf[..n])
                .map_err(|e| Error::io("writing", &tmp, e))?;
        }
        dst.sync_all().map_err(|e| Error::io("syncing", &tmp, e))?;
        drop(dst);
        let digest = Digest::from_raw(hasher.finalize().into());
        if self.has_blob(&digest) {
            let _ = fs::remove_file(&tmp);
        } else {
            self.install_blob(&tmp, &digest)?;
        }
        Ok(digest)
    }

    /// Moves a finished file (already on the store's filesystem, e.g. in a work directory) into
    /// the store. The file is hashed, fsynced and renamed; it is gone from `path` afterwards.
    pub fn put_file_move(&self, path: &Path) -> Result<Digest> {
        let digest = Digest::of_file(path)?;
        if self.has_blob(&digest) {
            fs::remove_file(path).map_err(|e| Error::io("removing", path, e))?;
            return Ok(digest);
        }
        File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io("syncing", path, e))?;
        self.install_blob(path, &digest)?;
        Ok(digest)
    }

    fn install_blob(&self, tmp: &Path, digest: &Digest) -> Result<()> {
        let dst = self.blob_path(digest);
        let dir = dst.parent().expect("blob paths have a fan-out parent");
        fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        // A concurrent writer of the same content renames identical bytes over ours: harmless.
        fs::rename(tmp, &dst).map_err(|e| Error::io("renaming into", &dst, e))?;
        sync_dir(dir);
        Ok(())
    }

    /// Re-hashes a blob and fails with [`Error::Corrupt`] if its bytes changed.
    pub fn verify_blob(&self, digest: &Digest) -> Result<()> {
        let path = self.blob_path(digest);
        if !path.is_file() {
            return Err(Error::Missing(format!(
                "blob {digest} ({})",
                path.display()
            )));
        }
        let actual = Digest::of_file(&path)?;
        if actual != *digest {
            return Err(Error::Corrupt {
                path,
                expected: digest.hex(),
                actual: actual.hex(),
            });
        }
        Ok(())
    }

    /// Verifies every blob a manifest names (inputs and outputs).
    pub fn verify_manifest(&self, manifest: &Manifest) -> Result<()> {
        for d in manifest.inputs.values() {
            self.verify_blob(d)?;
        }
        for out in manifest.outputs.values() {
            self.verify_blob(&out.digest)?;
        }
        Ok(())
    }

    fn manifest_path(&self, key: &Digest) -> PathBuf {
        self.root.join("runs").join(format!("{}.json", key.hex()))
    }

    /// The manifest of a run, if the run is committed.
    pub fn read_manifest(&self, key: &Digest) -> Result<Option<Manifest>> {
        let path = self.manifest_path(key);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| Error::Json { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading", path, e)),
        }
    }

    /// Commits a run: writes its manifest atomically. Its output blobs must already be stored.
    pub fn write_manifest(&self, manifest: &Manifest) -> Result<()> {
        for out in manifest.outputs.values() {
            if !self.has_blob(&out.digest) {
                return Err(Error::Missing(format!(
                    "output blob {} of run {}",
                    out.digest, manifest.key
                )));
            }
        }
        let bytes = serde_json::to_vec_pretty(manifest).map_err(|source| Error::Json {
            path: self.manifest_path(&manifest.key),
            source,
        })?;
        self.write_atomic(&self.manifest_path(&manifest.key), &bytes)
    }

    /// Every committed manifest, in key order.
    pub fn manifests(&self) -> Result<Vec<Manifest>> {
        let dir = self.root.join("runs");
        let mut names: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(|e| Error::io("listing", &dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|path| {
                let bytes = fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
                serde_json::from_slice(&bytes).map_err(|source| Error::Json { path, source })
            })
            .collect()
    }

    fn ref_path(&self, namespace: &str, name: &str) -> PathBuf {
        self.root
            .join("refs")
            .join(sanitize(namespace))
            .join(format!("{}.json", sanitize(name)))
    }

    /// Writes a small mutable JSON pointer (atomically).
    pub fn write_ref(&self, namespace: &str, name: &str, value: &serde_json::Value) -> Result<()> {
        let path = self.ref_path(namespace, name);
        let dir = path.parent().expect("ref paths have a namespace parent");
        fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
        let bytes = serde_json::to_vec_pretty(value).map_err(|source| Error::Json {
            path: path.clone(),
            source,
        })?;
        self.write_atomic(&path, &bytes)
    }

    /// Reads a pointer written by [`Store::write_ref`].
    pub fn read_ref(&self, namespace: &str, name: &str) -> Result<Option<serde_json::Value>> {
        let path = self.ref_path(namespace, name);
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| Error::Json { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading", path, e)),
        }
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = self.temp_path("write");
        write_synced(&tmp, bytes)?;
        fs::rename(&tmp, path).map_err(|e| Error::io("renaming into", path, e))?;
        if let Some(dir) = path.parent() {
            sync_dir(dir);
        }
        Ok(())
    }

    /// Takes the exclusive lock of a run key, waiting for another holder to finish.
    pub fn lock_key(&self, key: &Digest) -> Result<KeyLock> {
        let path = self.root.join("locks").join(format!("{}.lock", key.hex()));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("opening lock", &path, e))?;
        file.lock().map_err(|e| Error::io("locking", &path, e))?;
        Ok(KeyLock { _file: file })
    }

    /// Removes blobs that no manifest or ref reaches, and temporary entries, when they are older
    /// than `grace` (so a run still writing its outputs on another machine is left alone).
    pub fn gc(&self, grace: Duration) -> Result<GcReport> {
        let mut reachable = std::collections::BTreeSet::new();
        for m in self.manifests()? {
            reachable.extend(m.inputs.values().copied());
            reachable.extend(m.outputs.values().map(|o| o.digest));
        }
        collect_ref_digests(&self.root.join("refs"), &mut reachable)?;
        let now = SystemTime::now();
        let old_enough = |meta: &fs::Metadata| {
            meta.modified()
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age >= grace)
        };
        let mut report = GcReport::default();
        let blobs = self.root.join("blobs/sha256");
        for fan in read_dir_sorted(&blobs)? {
            for blob in read_dir_sorted(&fan)? {
                let name = blob
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_string();
                let keep = name.parse::<Digest>().is_ok_and(|d| reachable.contains(&d));
                let meta = fs::metadata(&blob).map_err(|e| Error::io("inspecting", &blob, e))?;
                if keep || !old_enough(&meta) {
                    report.kept_blobs += 1;
                } else {
                    fs::remove_file(&blob).map_err(|e| Error::io("removing", &blob, e))?;
                    report.removed_blobs += 1;
                    report.freed_bytes += meta.len();
                }
            }
        }
        let mut leftovers = read_dir_sorted(&self.root.join("tmp"))?;
        leftovers.extend(read_dir_sorted(&self.root.join("scratch"))?);
        for entry in leftovers {
            let meta =
                fs::symlink_metadata(&entry).map_err(|e| Error::io("inspecting", &entry, e))?;
            if !old_enough(&meta) {
                continue;
            }
            report.freed_bytes += dir_size(&entry);
            let res = if meta.is_dir() {
                fs::remove_dir_all(&entry)
            } else {
                fs::remove_file(&entry)
            };
            res.map_err(|e| Error::io("removing", &entry, e))?;
            report.removed_tmp += 1;
        }
        Ok(report)
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| Error::io("creating", path, e))?;
    f.write_all(bytes)
        .map_err(|e| Error::io("writing", path, e))?;
    f.sync_all().map_err(|e| Error::io("syncing", path, e))
}

fn sync_dir(dir: &Path) {
    // Directory fsync makes the rename durable; not every filesystem supports it, which is fine.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io("listing", dir, e)),
    };
    out.sort();
    Ok(out)
}

fn dir_size(path: &Path) -> u64 {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => read_dir_sorted(path)
            .map(|entries| entries.iter().map(|p| dir_size(p)).sum())
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

fn collect_ref_digests(dir: &Path, into: &mut std::collections::BTreeSet<Digest>) -> Result<()> {
    fn walk(v: &serde_json::Value, into: &mut std::collections::BTreeSet<Digest>) {
        match v {
            serde_json::Value::String(s) => {
                if let Ok(d) = s.parse::<Digest>() {
                    into.insert(d);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, into)),
            serde_json::Value::Object(o) => o.values().for_each(|x| walk(x, into)),
            _ => {}
        }
    }
    for entry in read_dir_sorted(dir)? {
        if entry.is_dir() {
            collect_ref_digests(&entry, into)?;
        } else if let Ok(v) = fs::read(&entry)
            .map_err(|_| ())
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|_| ()))
        {
            walk(&v, into);
        }
    }
    Ok(())
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| sanitize(s.trim()))
        .unwrap_or_else(|_| "host".to_string())
}
