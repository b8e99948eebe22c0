//! The one error type of the model crate.

use std::path::PathBuf;

/// Errors from loading inputs, training, checkpoints and sampling.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error from the core crate (tensor files, store).
    #[error(transparent)]
    Core(#[from] netshare_core::Error),
    /// JSON could not be parsed or written.
    #[error("JSON in {path}: {source}")]
    Json {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// A weights or checkpoint file is malformed or lacks a tensor.
    #[error("weights in {path}: {message}")]
    Weights {
        /// The file involved.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The inputs do not fit together (layout vs tensors, missing chunks, bad shapes).
    #[error("inconsistent input: {0}")]
    Input(String),
    /// The configuration cannot be used.
    #[error("invalid model config: {0}")]
    Config(String),
    /// A caller passed arguments that do not fit the model (wrong attribute width, chunk index).
    #[error("bad argument: {0}")]
    Argument(String),
    /// The tensor backend failed to read a tensor back.
    #[error("tensor backend: {0}")]
    Backend(String),
    /// Training produced a non-finite loss.
    #[error("chunk {chunk}: non-finite loss at iteration {iteration} ({what})")]
    Diverged {
        /// The chunk being trained.
        chunk: usize,
        /// The generator iteration.
        iteration: u64,
        /// Which loss.
        what: &'static str,
    },
}

/// Result with the model error.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the operation and the path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Core(netshare_core::Error::io(op, path, source))
    }
}
