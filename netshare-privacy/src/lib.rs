//! DP-SGD for the critics and the Renyi-DP accountant.
#![deny(missing_docs)]

use netshare_core::stage::StageDef;

/// This stage's identity in the artifact store.
pub const STAGE: StageDef = StageDef {
    name: "privacy",
    version: 1,
};
