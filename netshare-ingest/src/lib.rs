//! pcap, pcapng and NetFlow CSV to canonical Parquet records.
#![deny(missing_docs)]

use netshare_core::stage::StageDef;

/// This stage's identity in the artifact store.
pub const STAGE: StageDef = StageDef {
    name: "ingest",
    version: 1,
};
