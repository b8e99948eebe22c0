//! The `netshare-baseline` binary: the independent-marginals sampler and the real-vs-real split
//! that every evaluation report is measured against.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use netshare_baseline::sample::{self, BaselineConfig, BaselineKind};
use netshare_core::stage::StoreArgs;

/// Baselines for evaluation: an independent-marginals sample of a real records file, or the
/// real trace split in two halves by five-tuple hash (the real-vs-real floor).
#[derive(Parser, Debug)]
#[command(
    name = "netshare-baseline",
    version,
    about = "Baselines for evaluation: an independent-marginals sample of a real records file, \
             or the real trace split in two halves by five-tuple hash (the real-vs-real floor).",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// The real records file (Parquet, from netshare-ingest).
    input: Option<PathBuf>,
    /// Which baseline to write.
    #[arg(long, value_enum, default_value_t = Kind::All)]
    kind: Kind,
    /// Output directory: receives marginals.parquet and/or half-a.parquet, half-b.parquet.
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// Seed of the draws and the split hash.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Rows of the marginals sample (default: as many as the input).
    #[arg(long)]
    rows: Option<usize>,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kind {
    /// Each field drawn independently from its real marginal.
    Marginals,
    /// Two halves of the real trace, by five-tuple hash.
    Split,
    /// Both.
    All,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Store mode: input `records`; outputs marginals.parquet, half-a.parquet, half-b.parquet.
    Store(StoreArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Cmd::Store(args)) = &cli.cmd {
        netshare_baseline::stage::run_store(args)?;
        return Ok(());
    }
    let input = cli
        .input
        .context("give the real records file (or use the store subcommand)")?;
    let out = cli.out.context("give the output directory with -o")?;
    let kinds: &[BaselineKind] = match cli.kind {
        Kind::Marginals => &[BaselineKind::Marginals],
        Kind::Split => &[BaselineKind::Split],
        Kind::All => &[BaselineKind::Marginals, BaselineKind::Split],
    };
    let cfg = BaselineConfig {
        seed: cli.seed,
        rows: cli.rows,
    };
    let summary = sample::run(&input, &out, kinds, &cfg).with_context(|| {
        format!(
            "writing baselines of {} into {}",
            input.display(),
            out.display()
        )
    })?;
    println!("{summary}");
    Ok(())
}
