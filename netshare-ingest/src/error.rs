//! The one error type of the ingest crate.

use std::path::PathBuf;

/// Errors that stop an ingest. Damaged packets and skipped rows are not errors: they are
/// counted in the [`crate::IngestReport`].
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The input is neither pcap, pcapng nor a CSV of a known dialect.
    #[error(
        "{path}: not a trace this tool reads: it looks like {looks_like}. Accepted: pcap \
         (microsecond or nanosecond, either byte order), pcapng, or NetFlow CSV with a header \
         of dialect netshare, ugr16, cidds or ton (or headerless nfdump/UGR16 CSV)"
    )]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// A short description of what its first bytes look like.
        looks_like: String,
    },
    /// A trace file could not be read: a bad CSV header, or a bad row under
    /// `on_error = fail` (the error names the file and line).
    #[error(transparent)]
    Formats(#[from] netshare_formats::Error),
    /// Packet traces and flow traces were mixed in one ingest.
    #[error(
        "cannot merge packet and flow traces into one records file: {packets} is packets, {flows} is flows"
    )]
    MixedKinds {
        /// A packet trace among the inputs.
        packets: PathBuf,
        /// A flow trace among the inputs.
        flows: PathBuf,
    },
    /// No input files were given.
    #[error("no input files given")]
    NoInputs,
    /// Writing or re-reading the Parquet records failed.
    #[error(transparent)]
    Core(#[from] netshare_core::Error),
    /// Re-reading a sorted run failed.
    #[error("parquet {path}: {source}")]
    Parquet {
        /// The run file.
        path: PathBuf,
        /// The underlying error.
        source: parquet::errors::ParquetError,
    },
}

/// Result with the ingest error.
pub type Result<T> = std::result::Result<T, IngestError>;

impl IngestError {
    /// Wraps an I/O error with the operation and the path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IngestError::Core(netshare_core::Error::io(op, path, source))
    }
}
