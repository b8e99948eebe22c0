//! The `netshare-eval` binary: a thin command line over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use netshare_core::stage::StoreArgs;
use netshare_eval::{Convention, EvalConfig, InputPaths};

/// Judge synthetic network traces against the real one: NetShare's fidelity metrics, joint and
/// flow-level metrics, detectability, downstream tasks, and a JSON + HTML report.
#[derive(Parser, Debug)]
#[command(
    name = "netshare-eval",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Write report.json and report.html comparing traces (records Parquet or flow CSV).
    Report {
        /// The real trace.
        #[arg(long)]
        real: PathBuf,
        /// The synthetic trace.
        #[arg(long)]
        synthetic: Option<PathBuf>,
        /// The independent-marginals baseline (from netshare-baseline --kind marginals).
        #[arg(long)]
        marginals: Option<PathBuf>,
        /// The reference NetShare implementation's output on the same real trace (records
        /// Parquet or NetShare-layout CSV), judged like the synthetic trace.
        #[arg(long)]
        reference_impl: Option<PathBuf>,
        /// First half of the real trace (real-vs-real floor; needs --half-b).
        #[arg(long, requires = "half_b")]
        half_a: Option<PathBuf>,
        /// Second half of the real trace.
        #[arg(long, requires = "half_a")]
        half_b: Option<PathBuf>,
        /// The records the model trained on, when `--real` is a held-out part of the trace the
        /// model never saw (netshare-baseline's split). The report is then held-out: every
        /// candidate is judged against `--real`, the training records themselves are the
        /// real-vs-real floor, and the synthetic trace is also judged in-sample against them
        /// (NetShare's convention), labelled as such.
        #[arg(long, conflicts_with_all = ["half_a", "half_b"])]
        train: Option<PathBuf>,
        /// The model's train-log.csv (chunk,iteration,losses...) to plot.
        #[arg(long)]
        train_log: Option<PathBuf>,
        /// The model's model.json: a DP-SGD model's privacy ledger (ε, δ, σ, C, steps) goes into
        /// the report.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Convention of the distributional metrics.
        #[arg(long, value_enum, default_value_t = Convention::Netshare)]
        convention: Convention,
        /// Seed of splits, subsamples, forests and sketch hashes.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Output directory.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Exit non-zero, naming each metric, when a report is worse than committed bounds.
    Check {
        /// The report.json to check.
        #[arg(long)]
        report: PathBuf,
        /// Bounds: {"max": {"metric.path": v}, "min": {...}}.
        #[arg(long)]
        expected: PathBuf,
    },
    /// Store mode: inputs real, synthetic and optionally marginals, reference-impl, half-a,
    /// half-b (or train, for a held-out report), train-log, model.
    Store(StoreArgs),
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("netshare-eval: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    match Cli::parse().cmd {
        Cmd::Report {
            real,
            synthetic,
            marginals,
            reference_impl,
            half_a,
            half_b,
            train,
            train_log,
            model,
            convention,
            seed,
            out,
        } => {
            let paths = InputPaths {
                real,
                synthetic,
                marginals,
                reference_impl,
                half_a,
                half_b,
                train,
                train_log,
                model,
            };
            let inputs = netshare_eval::load_inputs(&paths).context("reading the inputs")?;
            let cfg = EvalConfig {
                convention,
                seed,
                ..EvalConfig::default()
            };
            netshare_eval::evaluate(&inputs, &cfg, &out)
                .with_context(|| format!("evaluating into {}", out.display()))?;
            println!(
                "wrote {} and {}",
                out.join("report.json").display(),
                out.join("report.html").display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Check { report, expected } => {
            let r = netshare_eval::report::read_json(&report).context("reading the report")?;
            let b = netshare_eval::check::read_bounds(&expected).context("reading the bounds")?;
            let bad = netshare_eval::check::check(&r, &b, &expected)?;
            if bad.is_empty() {
                println!("all {} bounds hold", b.len());
                return Ok(ExitCode::SUCCESS);
            }
            for v in &bad {
                eprintln!("worse than bound: {v}");
            }
            Ok(ExitCode::from(1))
        }
        Cmd::Store(args) => {
            netshare_eval::stage::run_store(&args)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
