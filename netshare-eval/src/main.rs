//! The `netshare-eval` binary: a thin command line over the library.

use clap::Parser;

/// Real vs synthetic tables: fidelity metrics, downstream tasks, report.
#[derive(Parser, Debug)]
#[command(name = "netshare-eval", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    eprintln!(
        "netshare-eval: stage {} v{} is not built yet; see the project's issues",
        netshare_eval::STAGE.name,
        netshare_eval::STAGE.version
    );
    std::process::exit(2);
}
