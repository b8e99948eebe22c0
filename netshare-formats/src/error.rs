//! The formats' one error type: every variant names the file, and the record or line where
//! there is one.

use std::path::PathBuf;

/// Errors from reading or writing a trace file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation failed on a path (the store's one `Io` error, through core).
    #[error(transparent)]
    Core(#[from] netshare_core::Error),
    /// The CSV writer failed.
    #[error("CSV {path}: {source}")]
    Csv {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: csv::Error,
    },
    /// One record cannot be represented in the output format.
    #[error("{path}: record {record}: {message}")]
    Record {
        /// The output file.
        path: PathBuf,
        /// Zero-based record number in write order.
        record: u64,
        /// What is wrong with it.
        message: String,
    },
    /// A CSV header names no known dialect, or lacks a column its dialect needs.
    #[error("{path}: {message}")]
    CsvHeader {
        /// The file.
        path: PathBuf,
        /// What is missing.
        message: String,
    },
    /// A CSV row cannot be read.
    #[error("{path}, line {line}: {message}")]
    CsvRow {
        /// The file.
        path: PathBuf,
        /// One-based line number.
        line: u64,
        /// What is wrong with it.
        message: String,
    },
}

/// Result with the formats' error.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the operation and the path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Core(netshare_core::Error::io(op, path, source))
    }
}
