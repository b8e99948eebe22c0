//! The one error type of the synthesiser: every variant names the file, record or field involved.

use std::path::PathBuf;

/// Errors from sampling, decoding, merging and writing synthetic traces.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store, a records file or a tensor file failed (the core error names the path).
    #[error(transparent)]
    Core(#[from] netshare_core::Error),
    /// The fitted encoder or the chunk table failed (the encode error names the file).
    #[error(transparent)]
    Encode(#[from] netshare_encode::Error),
    /// The trained model failed to load or sample.
    #[error(transparent)]
    Model(#[from] netshare_model::Error),
    /// A trace file could not be written (the formats error names the file and record).
    #[error(transparent)]
    Formats(#[from] netshare_formats::Error),
    /// The requested output does not fit the records (e.g. flows into a pcap).
    #[error("{path}: {message}")]
    Format {
        /// The output file.
        path: PathBuf,
        /// What does not fit.
        message: String,
    },
    /// The layout, encoder or model outputs disagree with each other.
    #[error("inconsistent inputs: {0}")]
    Inconsistent(String),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Result with the synthesiser's error.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the operation and the path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Core(netshare_core::Error::io(op, path, source))
    }
}
