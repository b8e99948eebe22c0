//! The data schema every netshare stage shares: the record schemas (Arrow / Parquet), the tensor
//! layout and chunk tensors that connect the encoder, the model and the synthesiser, and link
//! types. The artifact store and the stage contract live in `netshare-store`; they are
//! re-exported here so a stage crate needs one dependency for both.
#![deny(missing_docs)]

pub mod addr;
pub mod error;
pub mod layout;
pub mod records;
pub mod seed;
pub mod tensors;

pub use error::{Error, Result};
pub use netshare_store::{
    Digest, Manifest, OutputEntry, Store, digest, manifest, skip, stage, store,
};
/// The store's error and result types (what `stage::run_from_args` returns).
pub use netshare_store::{Error as StoreError, Result as StoreResult};
