//! Records to flows, time chunks, flow tags, fitted field encoders and training tensors.
//!
//! The encode stage (SPEC §2-§3) turns a records table into what the model trains on and what
//! the synthesiser decodes with:
//! - [`encode`] / [`encode_files`]: records → [`Encoded`] (encoder, chunk table, tensors, report);
//! - [`FittedEncoder`] (`encoder.json`): [`FittedEncoder::layout`] and
//!   [`FittedEncoder::decode_chunk`], the way back from generated activations to records;
//! - [`ChunkInfo`] / [`read_chunks`] (`chunks.json`): each chunk's time range and counts;
//! - [`TagHeads`]: where the flow tags sit in an attribute row.
//!
//! Tensors themselves are [`netshare_core::tensors::ChunkTensors`].
#![deny(missing_docs)]

pub mod addr;
pub mod calibrate;
pub mod chunks;
pub mod classes;
pub mod config;
pub mod encoder;
pub mod error;
pub mod fields;
mod fit;
pub mod ip2vec;
pub mod lengths;
pub mod pipeline;
pub mod semantics;
pub mod stage;
pub mod table;

pub use chunks::{ChunkInfo, ChunksFile, FlowTags, read_chunks, write_chunks};
pub use config::EncodeConfig;
pub use encoder::{EncodeCounts, FittedEncoder, FlowAttributes, TagHeads};
pub use error::{Error, Result};
pub use fit::EmbeddingReport;
pub use pipeline::{EncodeReport, Encoded, encode, encode_files, names};
pub use table::{FiveTuple, Table, Value};

use netshare_core::stage::StageDef;

/// This stage's identity in the artifact store. Version 4: `layout.json` carries
/// `sample_len`, which the model now reads from there instead of its own config. Version 5:
/// in private mode `encoder.json` and `layout.json` say so (`private: true`; other files
/// unchanged). Version 6: packet traces' `pkt_len`, `tos`, `ttl` and `off` are encoded through
/// their empirical CDF outside private mode; the semantics carry value sets (integer fields
/// with few values snap to the nearest one seen); `chunks.json` carries each chunk's training
/// code quantiles for synth's marginal calibration (not in private mode). A flow trace's
/// tensors and layout are unchanged (so are its models), and its `encoder.json` too unless a
/// field has a value set. Version 7: `chunks.json` also carries each chunk's training record
/// time quantiles (`time_quantiles_us`, not in private mode), onto which synth maps the
/// generated record times. Version 8: a flow trace's `chunks.json` also carries, per chunk,
/// the training packet counts and the durations and bytes per packet within strata of
/// protocol and packet count (`flow_sizes`, not in private mode); the semantics learn a
/// clock tick (a resolution of k = 2..9 decimal units, such as 4 ms). Tensors, layout and
/// models are unchanged. Version 9: `chunks.json` also carries, per chunk, how many training
/// flows took each class of each categorical attribute head (`class_counts`, not in private
/// mode). Tensors, layout and models are unchanged. Version 10: packet traces record no class
/// counts (flow shares are not packet shares); flow traces' outputs are as in version 9.
/// Version 11: `chunks.json` also carries, per chunk, the training flows' lengths within
/// nested strata of their classes (`flow_lengths`, not in private mode), and packet traces
/// record class counts again (synth now gives each class's flows the lengths of its
/// stratum). Tensors, layout and models are unchanged. Version 12: where the addresses are
/// wide, the flow-length strata nest by address family first, and each family keeps its
/// stratum however few its flows; and flow traces record the training packet counts within
/// the class strata (`flow_sizes.pkt_by_class`, where a stratum holds enough records).
/// Version 13: packet traces record the training packet lengths within the class strata
/// (`pkt_len_by_class`), and flow traces' `pkt_by_class` strata name their quantiles
/// `quantiles`; the semantics record the values the port fields of port-less protocols take
/// (`port_values`), which decoding keeps them to. Tensors, layout and models are unchanged.
/// Version 14: the semantics record whether a record's two addresses differ
/// (`distinct_addresses`), which decoding then keeps them to. Tensors, layout and models are
/// unchanged. Version 15: `chunks.json` also carries, per chunk, how many training flows took
/// each pair of the protocol's and a port's classes (`class_pairs`, not in private mode), to
/// which synth keeps a flow's frequent ports. Tensors, layout and models are unchanged.
pub const STAGE: StageDef = StageDef {
    name: "encode",
    version: 15,
};

/// Reads a `layout.json` (as written by this stage).
pub fn read_layout(path: &std::path::Path) -> Result<netshare_core::layout::Layout> {
    chunks::read_json(path)
}
