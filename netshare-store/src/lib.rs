//! The content-addressed artifact store every netshare stage runs against: content digests,
//! run manifests, the store with its locks and atomic commits, and the stage contract
//! (`run_stage`, `StoreArgs`). It knows nothing of records or tensors (those are
//! `netshare-core`'s), so the driver, which only spawns stage binaries, builds in seconds.
#![deny(missing_docs)]

pub mod digest;
pub mod error;
pub mod manifest;
pub mod skip;
pub mod stage;
pub mod store;

pub use digest::Digest;
pub use error::{Error, Result};
pub use manifest::{Manifest, OutputEntry};
pub use store::Store;
