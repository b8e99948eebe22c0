//! The `netshare-synth` binary: a thin command line over the library.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use netshare_core::stage::StoreArgs;
use netshare_synth::convert::{ConvertOptions, convert};
use netshare_synth::generate::{SynthConfig, SynthInputs, synthesize};
use netshare_synth::merge::Duplicates;
use netshare_synth::write::{CaptureKind, Dialect, LinkType, OutputFormat, PacketOptions};

/// Samples a trained NetShare model and writes a synthetic trace (Parquet plus CSV for flows
/// or pcap/pcapng for packets, and synth-report.json), or converts records tables to CSV /
/// pcap / pcapng.
///
/// Examples:
///   netshare-synth encoded/ model/ -o out/ --seed 7
///   netshare-synth convert records.parquet -o trace.pcapng --link raw --headers-only
///   netshare-synth store --input encoder.json=@encoded/encoder.json ... --config-json '{"scale":1.25}'
#[derive(Parser, Debug)]
#[command(
    name = "netshare-synth",
    version,
    about,
    verbatim_doc_comment,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(flatten)]
    generate: GenerateArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Standalone synthesis from the encode and model stages' output directories.
#[derive(clap::Args, Debug)]
struct GenerateArgs {
    /// The encode stage's outputs (encoder.json, chunks.json, layout.json, ...).
    encoded_dir: Option<PathBuf>,
    /// The model stage's outputs (model.json, weights-NNN.safetensors).
    model_dir: Option<PathBuf>,
    /// Output directory (created if missing).
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// Seed of every draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Flows sampled per real flow of each chunk.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Output formats besides Parquet (repeatable; default: csv for flows, --capture for packets).
    #[arg(long = "format", value_enum)]
    formats: Vec<OutputFormat>,
    /// Capture format of packet traces when no --format is given.
    #[arg(long, value_enum, default_value_t = CaptureKind::Pcap)]
    capture: CaptureKind,
    /// CSV dialect of flow CSV (default: NetShare's layout).
    #[arg(long, value_enum)]
    dialect: Option<Dialect>,
    /// Flows per feature-sampling batch.
    #[arg(long, default_value_t = 4096)]
    batch_size: usize,
    /// Keep the generator's own marginals: do not map continuous codes (flow start,
    /// inter-arrival, sizes, durations, header fields), record times, flow records' sizes
    /// within protocol and packet-count strata, the classes of categorical heads, and flow
    /// lengths (records per flow) within strata of those classes onto the training marginals
    /// that the encoder recorded.
    #[arg(long)]
    no_calibrate: bool,
    /// What to do with a flow that repeats an earlier flow's five-tuple in its chunk:
    /// `new-port` gives a TCP or UDP flow a fresh port (its higher one, as a host opening
    /// another connection would) and drops the others; `drop` drops every such flow, as
    /// NetShare does.
    #[arg(long, value_enum, default_value_t = Duplicates::NewPort)]
    duplicates: Duplicates,
    #[command(flatten)]
    packets: PacketArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Store mode: inputs are the encode and model outputs named after their files
    /// (encoder.json, layout.json, chunks.json, train-NNN.safetensors, model.json,
    /// weights-NNN.safetensors, train-log.csv; optionally records for the CSV dialect).
    Store(StoreArgs),
    /// Converts a records table (real or synthetic, `.parquet`) to `.pcap`, `.pcapng`, `.csv`
    /// or `.parquet`, streaming.
    Convert(ConvertArgs),
}

/// Packet framing options shared by the commands that write captures.
#[derive(clap::Args, Debug, Clone)]
struct PacketArgs {
    /// Link layer of written packets.
    #[arg(long, value_enum, default_value_t = LinkType::Ethernet)]
    link: LinkType,
    /// Bytes captured per packet at most; longer packets keep their wire length.
    #[arg(long, default_value_t = 65_535)]
    snaplen: u32,
    /// Capture only the headers (link, IPv4, TCP/UDP/ICMP); the wire length is kept.
    #[arg(long)]
    headers_only: bool,
}

impl PacketArgs {
    fn options(&self) -> PacketOptions {
        PacketOptions {
            link: self.link,
            snaplen: self.snaplen,
            headers_only: self.headers_only,
        }
    }
}

#[derive(clap::Args, Debug)]
struct ConvertArgs {
    /// The records table (`records.parquet` from ingest, or `synthetic.parquet`).
    input: PathBuf,
    /// The output file; its extension names the format unless --format is given.
    #[arg(short, long)]
    output: PathBuf,
    /// Output format (default: from the output's extension). `pcap-ns` writes nanosecond pcap.
    #[arg(long, value_enum)]
    format: Option<OutputFormat>,
    /// CSV dialect for flows (default: the dialect the input came in, else NetShare's).
    #[arg(long, value_enum)]
    dialect: Option<Dialect>,
    #[command(flatten)]
    packets: PacketArgs,
}

fn generate(g: GenerateArgs) -> Result<()> {
    let (Some(enc), Some(model), Some(out)) = (g.encoded_dir, g.model_dir, g.out) else {
        anyhow::bail!(
            "give ENCODED_DIR MODEL_DIR -o OUT_DIR, or a command (convert, store); see --help"
        );
    };
    let cfg = SynthConfig {
        seed: g.seed,
        scale: g.scale,
        batch_size: g.batch_size,
        formats: (!g.formats.is_empty()).then_some(g.formats),
        capture: g.capture,
        csv_dialect: g.dialect,
        link: g.packets.link,
        snaplen: g.packets.snaplen,
        headers_only: g.packets.headers_only,
        calibrate: !g.no_calibrate,
        duplicates: g.duplicates,
    };
    let inputs = SynthInputs::from_dirs(&enc, &model)
        .with_context(|| format!("reading {} and {}", enc.display(), model.display()))?;
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let (report, timings) = synthesize(&inputs, &cfg, &out)
        .with_context(|| format!("writing into {}", out.display()))?;
    eprintln!(
        "{} records in {} chunks; sampling {:.1}s + {:.1}s, decode {:.1}s, write {:.1}s",
        report.clean.kept_records,
        report.chunks.len(),
        timings.sample_attributes_s,
        timings.sample_features_s,
        timings.decode_s,
        timings.write_s
    );
    println!("{}", serde_json::to_string_pretty(&report.outputs)?);
    Ok(())
}

fn main() -> Result<()> {
    netshare_model::tune_allocator();
    netshare_model::choose_matmul_kernels();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Convert(a)) => {
            let opts = ConvertOptions {
                format: a.format,
                dialect: a.dialect,
                packets: a.packets.options(),
            };
            let summary = convert(&a.input, &a.output, &opts).with_context(|| {
                format!("converting {} to {}", a.input.display(), a.output.display())
            })?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        Some(Command::Store(args)) => {
            netshare_synth::stage::run_store(&args).context("synth stage")?;
        }
        None => generate(cli.generate)?,
    }
    Ok(())
}
