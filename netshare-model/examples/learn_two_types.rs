//! Trains on the synthetic two-flow-type dataset and prints real vs sampled statistics:
//! `cargo run --release -p netshare-model --example learn_two_types -- [ITERATIONS] [PROFILE]`.

use std::time::Instant;

use netshare_model::testing::{describe, two_flow_types};
use netshare_model::{ModelConfig, Profile, TrainOptions, TrainedModel};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let iterations: u64 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(300);
    let profile = match args.get(2).map(String::as_str) {
        Some("default") => Profile::Default,
        Some("netshare") => Profile::Netshare,
        _ => Profile::Tiny,
    };
    let enc = two_flow_types(500, 1, 1);
    let cfg = ModelConfig {
        iterations,
        ..ModelConfig::profile(profile)
    };
    let t0 = Instant::now();
    let trained =
        netshare_model::train(&cfg, &enc, &TrainOptions::default())?.expect("not stopped");
    let secs = t0.elapsed().as_secs_f64();
    let dir = tempfile::tempdir()?;
    trained.write(dir.path())?;
    let m = TrainedModel::load(dir.path())?;
    let a = m.try_sample_attributes(0, 1000, 5)?;
    let (f, l) = m.try_sample_features(0, &a, 6)?;
    print!("{}", describe(m.layout(), &enc.chunks[0], &a, &f, &l));
    println!(
        "{iterations} iterations in {secs:.2} s ({:.1} it/s)",
        iterations as f64 / secs
    );
    Ok(())
}
