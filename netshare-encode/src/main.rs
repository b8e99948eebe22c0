//! The `netshare-encode` binary: a thin command line over the library.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use netshare_core::stage::StoreArgs;
use netshare_encode::{EncodeConfig, FittedEncoder, read_layout};

/// Records to flows, time chunks, flow tags, fitted field encoders and training tensors.
///
/// Standalone: `netshare-encode records.parquet -o OUTDIR` writes encoder.json, layout.json,
/// chunks.json, train-NNN.safetensors and encode-report.json into OUTDIR.
#[derive(Parser, Debug)]
#[command(
    name = "netshare-encode",
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
    /// The records file (records.parquet from netshare-ingest, packets or flows).
    records: Option<PathBuf>,
    /// Output directory (created if missing).
    #[arg(short, long, value_name = "OUTDIR")]
    output: Option<PathBuf>,
    /// Public records: train the embedding on them (embedding.train_on = public) and, in
    /// private mode, take every bound and vocabulary from them.
    #[arg(long)]
    public: Option<PathBuf>,
    /// The config as a JSON file (see EncodeConfig; omitted fields take their defaults).
    #[arg(long, conflicts_with = "config_json")]
    config: Option<PathBuf>,
    /// The config as inline JSON, e.g. '{"n_chunks": 10, "sample_len": 5}'.
    #[arg(long)]
    config_json: Option<String>,
    /// Override the config's seed.
    #[arg(long)]
    seed: Option<u64>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run as a stage of the artifact store (inputs `records`, optional `public`).
    Store(StoreArgs),
    /// Print the field layout of a layout.json or encoder.json: which dims belong to which
    /// field and activation.
    Describe {
        /// A layout.json or encoder.json.
        file: PathBuf,
    },
    /// Print the default config as JSON (a starting point for --config).
    DefaultConfig,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Store(args)) => {
            netshare_encode::stage::run_store(&args).context("encode stage (store mode)")?;
        }
        Some(Command::Describe { file }) => print!("{}", describe(&file)?),
        Some(Command::DefaultConfig) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&EncodeConfig::default())?
            );
        }
        None => standalone(cli.standalone)?,
    }
    Ok(())
}

fn describe(file: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
    if value.get("attributes").is_some() {
        return Ok(read_layout(file)?.describe());
    }
    let enc = FittedEncoder::read(file)?;
    Ok(format!(
        "{:?} encoder: {} chunk(s), max_flow_len {}, sample_len {}, T = {}\n{}",
        enc.kind,
        enc.n_chunks,
        enc.max_flow_len,
        enc.sample_len,
        enc.max_len,
        enc.layout().describe()
    ))
}

fn standalone(a: Standalone) -> Result<()> {
    let records = a
        .records
        .context("give a records file (netshare-encode records.parquet -o OUTDIR), or a subcommand; see --help")?;
    let out = a
        .output
        .context("give an output directory with -o OUTDIR")?;
    let raw: serde_json::Value = match (&a.config, &a.config_json) {
        (Some(p), _) => {
            let t =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str(&t).with_context(|| format!("parsing {}", p.display()))?
        }
        (None, Some(j)) => serde_json::from_str(j).context("parsing --config-json")?,
        (None, None) => serde_json::json!({}),
    };
    let mut cfg: EncodeConfig = serde_json::from_value(raw).context("invalid encode config")?;
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    let report = netshare_encode::encode_files(&records, a.public.as_deref(), &cfg, &out)
        .with_context(|| format!("encoding {}", records.display()))?;
    eprintln!(
        "encoded {} of {} records into {} flows in {} chunk(s); max_flow_len {} ({:?}), {} flows truncated, {} dropped; wrote {}",
        report.encoded_records,
        report.input_records,
        report.encoded_flows,
        report.n_chunks,
        report.max_flow_len,
        report.max_flow_len_source,
        report.truncated_flows,
        report.dropped_flows,
        out.display()
    );
    Ok(())
}
