//! The baselines' error type: every variant names the file or setting involved.

use std::path::PathBuf;

/// Errors from reading the real records and writing the baselines.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A records file or a file operation failed (the core error names the path; file
    /// operations go through the store's one `Io` error).
    #[error(transparent)]
    Core(#[from] netshare_core::Error),
    /// A configuration value does not fit the input.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Result with the baselines' error.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the operation and the path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Core(netshare_core::Error::io(op, path, source))
    }
}
