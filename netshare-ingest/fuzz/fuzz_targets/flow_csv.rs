//! Fuzz target: the flow CSV reader must never panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netshare_ingest::{IngestConfig, OnError};

fuzz_target!(|data: &[u8]| {
    let cfg = IngestConfig { on_error: OnError::Skip, ..IngestConfig::default() };
    let _ = netshare_ingest::parse_flows_csv(data, &cfg);
});
