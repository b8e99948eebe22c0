//! `model.json`: everything needed to rebuild the networks around the weights.

use netshare_core::layout::Layout;
use serde::{Deserialize, Serialize};

use crate::config::ModelConfig;
use crate::log::Losses;

/// Name and format tag of `model.json`.
pub const MODEL_FORMAT: &str = "netshare.model.v1";

/// Per-chunk facts in `model.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkSummary {
    /// Chunk index.
    pub chunk: usize,
    /// Flows in the chunk's training tensors.
    pub flows: usize,
    /// Generator iterations done.
    pub iterations: u64,
    /// Where training started: `scratch` or `chunk-000`.
    pub initialised_from: String,
    /// With `keep = "best"`: the iteration whose weights were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_iteration: Option<u64>,
    /// Losses at the last logged iteration.
    pub final_losses: Losses,
}

/// The content of `model.json`: everything needed to rebuild the networks around the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// Always [`MODEL_FORMAT`].
    pub format: String,
    /// The resolved config.
    pub config: ModelConfig,
    /// The encoder's layout the heads were built from.
    pub layout: Layout,
    /// Records per flow T.
    pub max_len: usize,
    /// One entry per chunk, in order.
    pub chunks: Vec<ChunkSummary>,
    /// With DP-SGD: what the run spent (σ, C, sampling rates, steps, δ, ε) and how it was
    /// accounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<netshare_privacy::Ledger>,
}
