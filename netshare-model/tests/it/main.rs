//! Integration tests of the model crate: learning, determinism, resume, store mode, sampling.

mod average;
mod learning;
mod private;
mod resume;
mod sampling;
mod stage;

use netshare_model::{ModelConfig, Profile};

/// A tiny config for fast tests.
pub fn tiny(iterations: u64, seed: u64) -> ModelConfig {
    ModelConfig {
        iterations,
        seed,
        ..ModelConfig::profile(Profile::Tiny)
    }
}

/// (iteration, quick quality score) of every scored row of a training's log.
pub fn scores(t: &netshare_model::Trained) -> Vec<(u64, f64)> {
    t.log
        .iter()
        .filter_map(|r| r.quality.map(|q| (r.iteration, q)))
        .collect()
}

/// Bytes of every file in a directory, by name.
pub fn dir_bytes(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("list dir")
        .map(|e| {
            let e = e.expect("entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read"),
            )
        })
        .collect()
}
