//! DoppelGANger generator and critics in burn: training, checkpoints, sampling.
#![deny(missing_docs)]

use netshare_core::stage::StageDef;

/// This stage's identity in the artifact store.
pub const STAGE: StageDef = StageDef {
    name: "model",
    version: 1,
};
