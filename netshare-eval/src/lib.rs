//! Real vs synthetic tables: fidelity metrics, downstream tasks, report.
#![deny(missing_docs)]

use netshare_core::stage::StageDef;

/// This stage's identity in the artifact store.
pub const STAGE: StageDef = StageDef {
    name: "eval",
    version: 1,
};
