//! The `netshare-ingest` binary: a thin command line over the library.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use netshare_core::stage::StoreArgs;
use netshare_ingest::{DialectChoice, IngestConfig, IngestOptions, OnError};

/// pcap, pcapng and NetFlow CSV to canonical Parquet records.
///
/// Reads packet captures (pcap in µs or ns, either byte order; pcapng with any number of
/// interfaces) or NetFlow CSV (dialects netshare, ugr16, cidds, ton) and writes one
/// time-ordered Parquet records file plus an optional JSON report. Several files of one kind
/// merge into one artifact.
#[derive(Parser, Debug)]
#[command(
    name = "netshare-ingest",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    standalone: Standalone,
}

#[derive(clap::Args, Debug)]
struct Standalone {
    /// Trace files: all captures, or all CSV flow files.
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
    /// The records file to write.
    #[arg(short, long, value_name = "PARQUET", default_value = "records.parquet")]
    output: PathBuf,
    /// Also write the ingest report (JSON) here.
    #[arg(long, value_name = "JSON")]
    report: Option<PathBuf>,
    /// CSV dialect (auto = detect from the header).
    #[arg(long, value_enum, default_value_t = DialectChoice::Auto)]
    dialect: DialectChoice,
    /// What to do with a CSV row that cannot be read.
    #[arg(long, value_enum, default_value_t = OnError::Fail)]
    on_error: OnError,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run as a pipeline stage on the artifact store (inputs `trace` or `trace.0`, `trace.1`, ...).
    Store(StoreArgs),
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netshare-ingest: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Store(args)) = cli.command {
        netshare_ingest::stage::run_store(&args).context("ingest in store mode")?;
        return Ok(());
    }
    let a = cli.standalone;
    if a.files.is_empty() {
        anyhow::bail!("no input files; see --help");
    }
    let cfg = IngestConfig {
        dialect: a.dialect,
        on_error: a.on_error,
        seed: 0,
    };
    let total: u64 = a
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    // Hidden when stderr is not a terminal, and for inputs read in a blink.
    let bar = if total > (64 << 20) {
        indicatif::ProgressBar::new(total)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .context("progress bar template")?,
    );
    let inc = |n: u64| bar.inc(n);
    let named: Vec<(String, PathBuf)> = a
        .files
        .iter()
        .map(|p| (p.display().to_string(), p.clone()))
        .collect();
    let opts = IngestOptions {
        spill_dir: None,
        progress: Some(&inc),
    };
    let report = netshare_ingest::ingest_named(&named, &cfg, &a.output, &opts)
        .with_context(|| format!("ingesting into {}", a.output.display()))?;
    bar.finish_and_clear();
    if let Some(r) = &a.report {
        netshare_ingest::write_report(&report, r)
            .with_context(|| format!("writing the report {}", r.display()))?;
    }
    println!("{}", report.summary());
    println!("wrote {}", a.output.display());
    Ok(())
}
