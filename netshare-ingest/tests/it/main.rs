//! Integration tests of netshare-ingest: real captures against an independent count, every
//! link type and container variant, damaged input, every CSV dialect, merging, store mode.

mod cli;
mod csv_dialects;
mod damaged;
mod link_types;
mod merge;
mod ndpi;
mod real_traces;
mod store;

use std::path::{Path, PathBuf};

/// Writes bytes into a fresh temporary folder and returns (folder, file path).
pub fn temp_file(name: &str, bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let p = dir.path().join(name);
    std::fs::write(&p, bytes).expect("write temp file");
    (dir, p)
}

/// A real trace, or `None` with a message saying the test is skipped.
pub fn real(rel: &str) -> Option<PathBuf> {
    let p = fixtures::real_trace(rel);
    if p.is_none() {
        netshare_core::skip::note_skip(
            "netshare-ingest real-trace test",
            &format!("real trace {rel} is neither embedded nor in ../shared/data"),
        );
    }
    p
}

/// True when the records are in non-decreasing time order.
pub fn is_sorted(t: &[i64]) -> bool {
    t.windows(2).all(|w| w[0] <= w[1])
}

/// The file's bytes.
pub fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).expect("read file")
}
