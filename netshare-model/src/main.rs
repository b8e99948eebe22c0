//! The `netshare-model` binary: a thin command line over the library.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use netshare_core::stage::StoreArgs;
use netshare_model::{Encoded, ModelConfig, Profile, TrainOptions, TrainedModel};

/// DoppelGANger in burn: trains the generator on the encoder's tensors, samples from it.
#[derive(Parser, Debug)]
#[command(
    name = "netshare-model",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train on a directory of encoder outputs (layout.json, train-NNN.safetensors).
    Train {
        /// Directory with the encoder's outputs.
        encoded: PathBuf,
        /// Directory to write model.json, weights-NNN.safetensors and train-log.csv to.
        #[arg(short, long)]
        output: PathBuf,
        /// Named hyperparameter set.
        #[arg(long, value_enum, default_value = "default")]
        profile: Profile,
        /// Generator steps for chunk 0 (overrides the profile).
        #[arg(long)]
        iterations: Option<u64>,
        /// Seed (overrides the config).
        #[arg(long)]
        seed: Option<u64>,
        /// Wall-clock seconds chunk 0 may train for (overrides the config's
        /// `time_budget_seconds`). Training stops at the first logged iteration past it; the
        /// later chunks fine-tune for their share of the steps reached. model.json records the
        /// steps as `iterations`, so `--iterations N` without a budget gives the same bytes.
        #[arg(long, value_name = "SECONDS")]
        time_budget: Option<f64>,
        /// A JSON config file (a profile name plus overrides); --profile is then ignored.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Keep checkpoints here, so re-running the same command resumes.
        #[arg(long)]
        checkpoints: Option<PathBuf>,
        /// Train with DP-SGD on the critics, choosing the noise for this ε (δ 1e-5, clip norm
        /// 1; a config file's `dp` section sets the others). model.json gets the privacy ledger.
        #[arg(long, value_name = "EPSILON")]
        target_epsilon: Option<f64>,
        /// Start chunk 0 from these weights (weights-000.safetensors of a model trained on
        /// public records encoded with the same encoder) instead of random ones: public
        /// pretraining before private fine-tuning.
        #[arg(long, value_name = "WEIGHTS")]
        init: Option<PathBuf>,
        /// Compute device.
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceArg,
    },
    /// Print sampled attributes and features next to the real ones (for debugging).
    Sample {
        /// Directory with model.json and weights-NNN.safetensors.
        model: PathBuf,
        /// Directory with the encoder's outputs (for the real values).
        encoded: PathBuf,
        /// Chunk to sample.
        #[arg(long, default_value_t = 0)]
        chunk: usize,
        /// Flows to sample.
        #[arg(short, default_value_t = 10)]
        n: usize,
        /// Sampling seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Store mode: run the stage in the artifact store (inputs: all encode outputs).
    Store {
        #[command(flatten)]
        args: StoreArgs,
        /// Run one part of the stage as its own store run: the plan, one chunk or the gather
        /// (the driver does this so that chunks can train as separate jobs); the default runs
        /// every chunk in one process. All give the same model files.
        #[arg(long, value_enum, default_value = "whole")]
        part: netshare_model::stage::Part,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum DeviceArg {
    /// burn's Flex CPU backend.
    Cpu,
    /// burn's CUDA backend (needs the `cuda` feature).
    Cuda,
}

fn device(d: DeviceArg) -> Result<burn::tensor::Device> {
    match d {
        DeviceArg::Cpu => Ok(burn::tensor::Device::flex()),
        #[cfg(feature = "cuda")]
        DeviceArg::Cuda => Ok(burn::tensor::Device::cuda(0)),
        #[cfg(not(feature = "cuda"))]
        DeviceArg::Cuda => bail!("this binary was built without the `cuda` feature"),
    }
}

fn main() -> Result<()> {
    netshare_model::tune_allocator();
    netshare_model::choose_matmul_kernels();
    match Cli::parse().command {
        Command::Train {
            encoded,
            output,
            profile,
            iterations,
            seed,
            time_budget,
            config,
            checkpoints,
            target_epsilon,
            init,
            device: dev,
        } => {
            let mut cfg = match config {
                Some(p) => {
                    let text =
                        std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
                    serde_json::from_slice::<ModelConfig>(&text)
                        .with_context(|| format!("config {}", p.display()))?
                }
                None => ModelConfig::profile(profile),
            };
            if let Some(i) = iterations {
                cfg.iterations = i;
            }
            if let Some(s) = seed {
                cfg.seed = s;
            }
            if time_budget.is_some() {
                cfg.time_budget_seconds = time_budget;
            }
            if let Some(e) = target_epsilon {
                let mut dp = cfg.dp.clone().unwrap_or(netshare_model::DpConfig {
                    clip_norm: 1.0,
                    noise_multiplier: None,
                    target_epsilon: None,
                    delta: 1e-5,
                    count_noise: 10.0,
                });
                dp.target_epsilon = Some(e);
                dp.noise_multiplier = None;
                cfg.dp = Some(dp);
            }
            cfg.validate()?;
            let start = match &init {
                Some(p) => Some(
                    netshare_model::weights::read(p)
                        .with_context(|| format!("reading {}", p.display()))?
                        .0,
                ),
                None => None,
            };
            let what = init
                .as_ref()
                .map(|p| format!("the weights in {}", p.display()))
                .unwrap_or_default();
            let enc = Encoded::from_dir(&encoded)
                .with_context(|| format!("reading {}", encoded.display()))?;
            let opts = TrainOptions {
                device: device(dev)?,
                progress: true,
                checkpoint_dir: checkpoints,
                ..TrainOptions::default()
            };
            let trained = netshare_model::train_from(
                &cfg,
                &enc,
                start.as_ref().map(|w| (w, what.as_str())),
                &opts,
            )?
            .context("training stopped early")?;
            if let Some(l) = &trained.model.privacy {
                eprintln!(
                    "private: ({:.3}, {:e})-DP for the steps run (noise multiplier {:.3})",
                    l.epsilon, l.delta, l.noise_multiplier
                );
            }
            trained
                .write(&output)
                .with_context(|| format!("writing {}", output.display()))?;
            if trained.stopped_by_budget {
                eprintln!(
                    "time budget reached: chunk 0 trained {} of {} iterations (recorded in model.json)",
                    trained.model.config.iterations, cfg.iterations
                );
            }
            eprintln!("wrote {}", output.display());
        }
        Command::Sample {
            model,
            encoded,
            chunk,
            n,
            seed,
        } => {
            let m = TrainedModel::load(&model)
                .with_context(|| format!("loading {}", model.display()))?;
            let enc = Encoded::from_dir(&encoded)
                .with_context(|| format!("reading {}", encoded.display()))?;
            let Some(real) = enc.chunks.get(chunk) else {
                bail!("chunk {chunk} not in {}", encoded.display());
            };
            let attrs = m.try_sample_attributes(chunk, n, seed)?;
            let (feats, lengths) = m.try_sample_features(chunk, &attrs, seed.wrapping_add(1))?;
            print!(
                "{}",
                netshare_model::testing::describe(m.layout(), real, &attrs, &feats, &lengths)
            );
        }
        Command::Store { args, part } => {
            netshare_model::stage::run_store_part(&args, part)?;
        }
    }
    Ok(())
}
