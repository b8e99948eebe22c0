//! The one error type of the encode crate.

use std::path::PathBuf;

/// Errors from fitting encoders, building tensors, decoding and reading or writing artifacts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A core operation (records file, tensors, store) failed.
    #[error(transparent)]
    Core(#[from] netshare_core::Error),
    /// A JSON artifact (encoder, layout, chunks, report) could not be read or written.
    #[error("JSON in {path}: {source}")]
    Json {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// The configuration cannot be used with these records (says which setting and why).
    #[error("config: {0}")]
    Config(String),
    /// The input has nothing to encode.
    #[error("no records to encode in {0}")]
    Empty(String),
    /// Generated tensors handed to the decoder do not match the encoder's layout.
    #[error("decode chunk {chunk}: {message}")]
    Shape {
        /// The chunk index.
        chunk: usize,
        /// What did not match.
        message: String,
    },
    /// An encoder file is internally inconsistent (e.g. an embedding of the wrong width).
    #[error("encoder {what}: {message}")]
    BadEncoder {
        /// Which part of the encoder.
        what: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Result with the encode error.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the operation and the path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Core(netshare_core::Error::io(op, path, source))
    }
}
