//! The `netshare-ingest` binary: a thin command line over the library.

use clap::Parser;

/// pcap, pcapng and NetFlow CSV to canonical Parquet records.
#[derive(Parser, Debug)]
#[command(name = "netshare-ingest", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!(
        "netshare-ingest: stage {} v{} is not built yet; see the project's issues",
        netshare_ingest::STAGE.name,
        netshare_ingest::STAGE.version
    );
    std::process::exit(2);
}
