//! The `netshare-privacy` binary: a thin command line over the library.

use clap::Parser;

/// DP-SGD for the critics and the Renyi-DP accountant.
#[derive(Parser, Debug)]
#[command(name = "netshare-privacy", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!(
        "netshare-privacy: stage {} v{} is not built yet; see the project's issues",
        netshare_privacy::STAGE.name,
        netshare_privacy::STAGE.version
    );
    std::process::exit(2);
}
