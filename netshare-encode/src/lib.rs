//! Records to flows, time chunks, flow tags, fitted field encoders and training tensors.
#![deny(missing_docs)]

use netshare_core::stage::StageDef;

/// This stage's identity in the artifact store.
pub const STAGE: StageDef = StageDef {
    name: "encode",
    version: 1,
};
