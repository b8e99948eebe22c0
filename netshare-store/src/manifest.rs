//! Run manifests: the record of one stage run, written last as the commit point of the run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// Everything known about one stage run. A run exists in the store exactly when its manifest does.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Stage name, e.g. `ingest`.
    pub stage: String,
    /// Version of the stage's logic; bumping it invalidates cached runs.
    pub stage_version: u32,
    /// The run key: digest of stage, version, validated config and input content digests.
    pub key: Digest,
    /// The validated config, defaults filled in.
    pub config: serde_json::Value,
    /// Input name to content digest.
    pub inputs: BTreeMap<String, Digest>,
    /// Output name (file name) to its blob.
    pub outputs: BTreeMap<String, OutputEntry>,
    /// Where and how the run happened; not part of the key.
    pub provenance: Provenance,
    /// A small stage-defined summary (counts, figures) for `status` and notes.
    #[serde(default)]
    pub summary: serde_json::Value,
}

/// One output file of a run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OutputEntry {
    /// Content digest of the bytes.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Format, from the file name's extension (`parquet`, `json`, `safetensors`, ...).
    pub format: String,
    /// Schema name where the format has one (e.g. `netshare.packets.v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
}

/// Provenance of a run. Informational only: never part of a cache key.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// The netshare version that ran the stage.
    pub tool_version: String,
    /// The source revision, when the driver knew it.
    #[serde(default)]
    pub git_rev: Option<String>,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix: u64,
    /// Wall-clock seconds the stage body took.
    pub wall_seconds: f64,
}

impl OutputEntry {
    /// The format implied by a file name.
    pub fn format_of(name: &str) -> String {
        match name.rsplit_once('.') {
            Some((_, ext)) => ext.to_ascii_lowercase(),
            None => "bin".to_string(),
        }
    }
}
