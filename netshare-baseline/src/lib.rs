//! The baselines every evaluation report is measured against, as a stage of their own: plain
//! table sampling, no model, so this crate links no tensor library.
//!
//! - [`sample`]: the independent-marginals sampler and the real-vs-real split;
//! - [`stage`]: the store-mode body (input `records`; outputs `marginals.parquet`,
//!   `half-a.parquet`, `half-b.parquet`).
#![deny(missing_docs)]

pub mod error;
pub mod sample;
pub mod stage;

pub use error::{Error, Result};
pub use sample::{BaselineConfig, BaselineKind};

use netshare_core::stage::StageDef;

/// Identity of the baseline stage in the artifact store.
pub const STAGE: StageDef = StageDef {
    name: "baseline",
    version: 2,
};
