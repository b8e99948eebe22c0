//! The one error type of the eval crate.

use std::path::PathBuf;

/// Errors from reading tables, training logs, expected-bound files and writing reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A records file could not be read (core names the file and the problem).
    #[error(transparent)]
    Core(#[from] netshare_core::Error),
    /// A trace file could not be read (the formats error names the file and line).
    #[error(transparent)]
    Formats(#[from] netshare_formats::Error),
    /// A CSV table (NetShare layout, nfdump layout or a training log) is malformed.
    #[error("{path}, record {record}: {message}")]
    Csv {
        /// The file.
        path: PathBuf,
        /// The 1-based data record (0 for the header).
        record: u64,
        /// What was wrong.
        message: String,
    },
    /// JSON (a report or an expected-bounds file) could not be parsed or written.
    #[error("JSON in {path}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// Two tables cannot be compared (different trace kinds, or one is empty).
    #[error("cannot compare {what}: {message}")]
    Incomparable {
        /// Which comparison.
        what: String,
        /// Why.
        message: String,
    },
    /// An expected-bounds file names something the report does not hold.
    #[error("{path}: {message}")]
    Bounds {
        /// The expected-bounds file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
}

/// Result with the eval error.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the operation and the path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Core(netshare_core::Error::io(op, path, source))
    }
}
