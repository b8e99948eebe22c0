//! The core crate's error type: records, layouts and tensor files (store errors pass through).

use std::path::PathBuf;

/// Errors from record schemas, Parquet, tensor files, and (passed through) the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The artifact store or a stage run failed, or an I/O operation on a path (the store's
    /// `Io` variant: one home for the "what, where, why" of a failed file operation).
    #[error(transparent)]
    Store(#[from] netshare_store::Error),
    /// A Parquet / Arrow file did not have the expected shape.
    #[error("schema mismatch in {path}: {message}")]
    Schema {
        /// The file involved.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// Parquet failed.
    #[error("parquet {path}: {source}")]
    Parquet {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: parquet::errors::ParquetError,
    },
    /// Arrow failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// A tensor file is malformed or lacks a tensor.
    #[error("tensors in {path}: {message}")]
    Tensors {
        /// The file involved.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// A table cannot be written in the schema asked for (an IPv6 address in an IPv4-only
    /// file).
    #[error("records: {0}")]
    Invalid(String),
}

/// Result with the core error.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the operation and the path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Store(netshare_store::Error::io(op, path, source))
    }
}
