//! The `netshare-synth` binary: a thin command line over the library.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use netshare_synth::convert::{ConvertOptions, convert};
use netshare_synth::write::{CsvDialect, LinkType, OutputFormat, PacketOptions};

/// Samples a trained NetShare model and writes synthetic traces, or converts records tables to
/// CSV / pcap / pcapng.
#[derive(Parser, Debug)]
#[command(
    name = "netshare-synth",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
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
    dialect: Option<CsvDialect>,
    #[command(flatten)]
    packets: PacketArgs,
}

fn main() -> Result<()> {
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
        None => {
            anyhow::bail!("give a command; see --help");
        }
    }
    Ok(())
}
