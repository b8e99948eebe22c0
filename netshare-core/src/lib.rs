//! The leaf every netshare stage builds on: content digests, the content-addressed artifact
//! store with its run manifests, the stage contract, the record schemas (Arrow / Parquet) and
//! the tensor layout that connects the encoder, the model and the synthesiser.
#![deny(missing_docs)]

pub mod digest;
pub mod error;
pub mod layout;
pub mod linktype;
pub mod manifest;
pub mod records;
pub mod skip;
pub mod stage;
pub mod store;
pub mod tensors;

pub use digest::Digest;
pub use error::{Error, Result};
pub use manifest::{Manifest, OutputEntry};
pub use store::Store;
