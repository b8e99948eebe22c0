//! Checkpoints and encoders to synthetic records, and records to the formats tools read: Parquet
//! (the ingest schema), CSV (NetShare's layout or the input's dialect), pcap and pcapng.
//!
//! - [`mod@write`]: [`write::Sink`], which streams records into any output format (the formats
//!   themselves are `netshare-formats`');
//! - [`merge`]: the cross-chunk merge and record clean-up of SPEC §5, as pure functions;
//! - [`config`]: [`config::SynthConfig`], the stage's typed configuration;
//! - [`generate`]: the synthesis itself (sample, merge, decode, clean, write) and its report;
//! - [`stage`]: the store-mode body;
//! - [`convert`]: any records table to any output format.
#![deny(missing_docs)]

pub mod config;
pub mod convert;
pub mod error;
pub mod generate;
pub mod merge;
pub mod stage;
pub mod write;

pub use error::{Error, Result};

use netshare_core::stage::StageDef;

/// This stage's identity in the artifact store. Version 2: generated codes of continuous
/// heads are mapped onto the chunk's training marginal when chunks.json carries it
/// (`calibrate`, on by default), and the report lists the heads per chunk; a TCP or UDP flow
/// that repeats an earlier flow's five-tuple in its chunk gets a fresh port instead of being
/// dropped (`duplicates`, counted as `new_port_flows`); decoding a flow whose bytes per packet
/// break the protocol's range moves its packet count when one fits, not its bytes. Version 3:
/// a flow record's packet count is mapped onto the training counts, and its duration and
/// bytes per packet onto the training quantiles of its protocol and packet-count stratum, when
/// chunks.json carries them (part of `calibrate`; the report lists `pkt,td|pkt,byt|pkt`).
/// Version 4: each class of a categorical attribute head gets its training share of a chunk's
/// sampled flows, filled by the flows that favour it most, when chunks.json carries the class
/// counts (part of `calibrate`; the report lists the class heads). Version 5: each flow's
/// length (records per flow) is mapped onto the training lengths of its class stratum, when
/// chunks.json carries them (part of `calibrate`; the report lists `flow_length|classes`).
/// Version 6: a flow record's packet count is mapped onto the training counts of its flow's
/// class stratum, when chunks.json carries them (part of `calibrate`; the report lists
/// `pkt|classes`). Version 7: a packet's length is mapped onto the training lengths of its
/// flow's class stratum, when chunks.json carries them (part of `calibrate`; the report lists
/// `pkt_len|classes`). Version 8: a flow whose two addresses decode to the same one gets the
/// runner-up of the less certain of them, when the encoder's semantics say the trace's
/// addresses differ (`distinct_addresses`). Version 9: there, class calibration also gives a
/// flow's destination the source's frequent address only when no other class has room, so the
/// destination takes its next most probable class before the one-hots hide the generator's
/// probabilities. Version 10: class calibration gives a flow's frequent port (a port's top
/// class) only a protocol class that training flows took it with, when chunks.json carries
/// the pairs (`class_pairs`; part of `calibrate`; the report lists `srcport/top|proto/top`
/// and `dstport/top|proto/top`).
pub const STAGE: StageDef = StageDef {
    name: "synth",
    version: 10,
};
