//! The `netshare-synth` binary: a thin command line over the library.

use clap::Parser;

/// Checkpoints and encoders to synthetic records: CSV, Parquet, pcap, pcapng.
#[derive(Parser, Debug)]
#[command(name = "netshare-synth", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!(
        "netshare-synth: stage {} v{} is not built yet; see the project's issues",
        netshare_synth::STAGE.name,
        netshare_synth::STAGE.version
    );
    std::process::exit(2);
}
