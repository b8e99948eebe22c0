//! `cargo xtask bench`: each benchmark is a release-mode example or subcommand of the crate that
//! owns the measured code; this module only knows how to start it.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The benchmarks.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Which {
    /// Packets/s and peak memory of pcap → Parquet, side by side with tshark.
    Ingest,
    /// Records/s of encoding and embedding training time.
    Encode,
    /// Seconds per generator step at the paper's sizes, side by side with PyTorch.
    Train,
    /// Flows/s and packets/s of decode-and-write.
    Synth,
    /// Seconds for all distributional metrics on 1M vs 1M records.
    Eval,
    /// Held-out fidelity over several traces and seeds against the baselines
    /// (`cargo xtask bench fidelity -- --help`).
    Fidelity,
    /// Fidelity and membership inference of private training at several ε, from scratch and
    /// pretrained, against non-DP (`cargo xtask bench privacy -- --help`).
    Privacy,
}

/// Runs a benchmark in release mode.
pub fn run(root: &Path, which: Which, extra: &[String]) -> Result<()> {
    let (package, example) = match which {
        Which::Ingest => ("netshare-ingest", "bench_ingest"),
        Which::Encode => ("netshare-encode", "bench_encode"),
        Which::Train => ("netshare-model", "bench_train"),
        Which::Synth => ("netshare-synth", "bench_synth"),
        Which::Eval => ("netshare-eval", "bench_eval"),
        Which::Fidelity | Which::Privacy => {
            bail!("the fidelity and privacy benchmarks are run by the driver itself")
        }
    };
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args([
            "run",
            "--quiet",
            "--release",
            "-p",
            package,
            "--example",
            example,
            "--",
        ])
        .args(extra)
        .status()
        .with_context(|| format!("running the {package} benchmark"))?;
    if !status.success() {
        bail!("benchmark {example} failed ({status})");
    }
    Ok(())
}
