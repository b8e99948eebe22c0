//! The store's error type.

use std::path::PathBuf;

/// Errors from the store, manifests, digests and stage runs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation failed on a path.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("reading", "renaming", ...).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A blob's bytes no longer hash to its name.
    #[error("store corruption: blob {path} should hash to {expected} but hashes to {actual}")]
    Corrupt {
        /// The blob file.
        path: PathBuf,
        /// The digest it is filed under.
        expected: String,
        /// The digest of its current bytes.
        actual: String,
    },
    /// A digest, manifest or reference could not be found in the store.
    #[error("not in the store: {0}")]
    Missing(String),
    /// A string is not a well-formed digest.
    #[error("not a sha256 digest: {0:?} (expected 64 lower-case hex digits)")]
    BadDigest(String),
    /// JSON (manifest, config) could not be parsed or written.
    #[error("JSON in {path}: {source}")]
    Json {
        /// The file involved (or a description).
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// A stage body failed; the message comes from the stage.
    #[error("stage {stage} failed: {message}")]
    Stage {
        /// The stage name.
        stage: String,
        /// The stage's own error text, with its causes.
        message: String,
    },
}

/// Result with the store error.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the operation and the path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
