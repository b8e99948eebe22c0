//! Checkpoints and encoders to synthetic records: CSV, Parquet, pcap, pcapng.
#![deny(missing_docs)]

use netshare_core::stage::StageDef;

/// This stage's identity in the artifact store.
pub const STAGE: StageDef = StageDef {
    name: "synth",
    version: 1,
};
