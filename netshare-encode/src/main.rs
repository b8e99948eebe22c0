//! The `netshare-encode` binary: a thin command line over the library.

use clap::Parser;

/// Records to flows, time chunks, flow tags, fitted field encoders and training tensors.
#[derive(Parser, Debug)]
#[command(name = "netshare-encode", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!(
        "netshare-encode: stage {} v{} is not built yet; see the project's issues",
        netshare_encode::STAGE.name,
        netshare_encode::STAGE.version
    );
    std::process::exit(2);
}
