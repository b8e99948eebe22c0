//! The `netshare-model` binary: a thin command line over the library.

use clap::Parser;

/// DoppelGANger generator and critics in burn: training, checkpoints, sampling.
#[derive(Parser, Debug)]
#[command(name = "netshare-model", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!(
        "netshare-model: stage {} v{} is not built yet; see the project's issues",
        netshare_model::STAGE.name,
        netshare_model::STAGE.version
    );
    std::process::exit(2);
}
