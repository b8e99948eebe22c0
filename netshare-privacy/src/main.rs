//! The `netshare-privacy` binary: privacy accounting from the command line.

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};
use netshare_privacy::{Event, epsilon_of, noise_for_epsilon};

/// Privacy accounting for differentially private netshare runs (Rényi DP of DP-SGD on the
/// critics, plus noisy per-chunk flow counts, converted to (ε, δ)).
#[derive(Parser, Debug)]
#[command(name = "netshare-privacy", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// The ε spent by DP-SGD over chunks: one `--chunk FLOWS:STEPS` per chunk.
    Epsilon {
        /// Batch size of the critic updates.
        #[arg(long, default_value_t = 100)]
        batch: u64,
        /// Noise multiplier σ (noise std / clipping norm).
        #[arg(long)]
        sigma: f64,
        /// One chunk as FLOWS:STEPS (flows in the chunk, critic updates on it); repeatable.
        #[arg(long = "chunk", value_name = "FLOWS:STEPS", required = true)]
        chunks: Vec<String>,
        /// Noise std of each chunk's released flow count (omit if counts are public).
        #[arg(long)]
        count_sigma: Option<f64>,
        /// δ of (ε, δ)-DP.
        #[arg(long, default_value_t = 1e-5)]
        delta: f64,
    },
    /// The smallest noise multiplier meeting a target ε for one chunk.
    Sigma {
        /// Target ε.
        #[arg(long)]
        epsilon: f64,
        /// Flows in the chunk.
        #[arg(long)]
        flows: u64,
        /// Critic updates.
        #[arg(long)]
        steps: u64,
        /// Batch size.
        #[arg(long, default_value_t = 100)]
        batch: u64,
        /// δ of (ε, δ)-DP.
        #[arg(long, default_value_t = 1e-5)]
        delta: f64,
    },
}

fn parse_chunk(s: &str) -> Result<(u64, u64)> {
    let Some((f, st)) = s.split_once(':') else {
        bail!("--chunk {s:?} is not FLOWS:STEPS");
    };
    Ok((f.trim().parse()?, st.trim().parse()?))
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Epsilon {
            batch,
            sigma,
            chunks,
            count_sigma,
            delta,
        } => {
            let mut events = Vec::new();
            for c in &chunks {
                let (flows, steps) = parse_chunk(c)?;
                if flows == 0 {
                    bail!("--chunk {c:?}: a chunk has at least one flow");
                }
                events.push(Event::SubsampledGaussian {
                    q: (batch as f64 / flows as f64).min(1.0),
                    sigma,
                    steps,
                });
            }
            if let Some(s) = count_sigma {
                events.push(Event::Gaussian {
                    sigma: s,
                    count: chunks.len() as u64,
                });
            }
            let g = epsilon_of(&events, delta);
            println!(
                "epsilon = {:.4} at delta = {:e} (best Renyi order {})",
                g.epsilon, g.delta, g.order
            );
        }
        Cmd::Sigma {
            epsilon,
            flows,
            steps,
            batch,
            delta,
        } => {
            let q = (batch as f64 / flows.max(1) as f64).min(1.0);
            match noise_for_epsilon(q, steps, delta, epsilon) {
                Some(s) => {
                    println!("sigma = {s:.4} (q = {q:.5}, {steps} steps, delta = {delta:e})")
                }
                None => bail!(
                    "no noise multiplier up to 1000 reaches epsilon {epsilon} in {steps} steps"
                ),
            }
        }
    }
    Ok(())
}
