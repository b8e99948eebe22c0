//! `cargo xtask`: the make-like driver of netshare pipelines.
//!
//! It reads `pipelines/<name>.toml`, builds the stage binaries once, and runs each stage in store
//! mode; a stage whose key (stage, version, validated config, input content) is already committed
//! returns at once. It links no ML crate: stages are separate processes.

mod bench;
mod driver;
mod fidelity;
mod pipeline;
mod privacy_bench;
mod runs;
mod slurm;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use netshare_store::Store;

use driver::{StageState, Toolchain};
use pipeline::Pipeline;

/// Drive netshare pipelines: reproduce them, re-run single stages, explain the cache, collect garbage.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask", version, about, long_about = None)]
struct Cli {
    /// Store directory [env: NETSHARE_STORE; default: ./.netshare in the workspace root].
    #[arg(long, global = true)]
    store: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args, Debug)]
struct BuildArgs {
    /// Cargo profile the stage binaries are built with (`release`, or `dev` to reuse a test build).
    #[arg(long, default_value = "release")]
    profile: String,
    /// Do not run `cargo build` first (the binaries are already built).
    #[arg(long)]
    no_build: bool,
    /// Override a stage config value: STAGE.KEY=VALUE (VALUE is JSON or a plain string); repeatable.
    #[arg(long = "set", value_name = "STAGE.KEY=VALUE")]
    overrides: Vec<String>,
}

/// Where the runs execute, and the Slurm executor's options (they add to the pipeline file's
/// `[slurm]` table).
#[derive(clap::Args, Debug)]
struct ExecArgs {
    /// Where the stage runs execute [default: the pipeline file's `executor`, else local].
    /// `slurm` submits every run that is not cached as a batch job against the same store (the
    /// store and the binaries must be on a filesystem the nodes share): chunk 0, then the other
    /// chunks as one job array, then the gather and the stages after it, each after what it
    /// reads.
    #[arg(long, value_enum)]
    executor: Option<pipeline::Executor>,
    /// Slurm: print the job scripts instead of submitting them.
    #[arg(long)]
    dry_run: bool,
    /// Slurm: the partition of every job.
    #[arg(long)]
    partition: Option<String>,
    /// Slurm: each job's time limit (e.g. 01:00:00).
    #[arg(long)]
    time: Option<String>,
    /// Slurm: CPUs per job (also its thread count).
    #[arg(long)]
    cpus_per_task: Option<u32>,
    /// Slurm: memory per job (e.g. 4G).
    #[arg(long)]
    mem: Option<String>,
    /// Slurm: a further sbatch argument for every job (e.g. --sbatch-arg=--account=net);
    /// repeatable.
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    sbatch_args: Vec<String>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run every stage of a pipeline (cached stages are not re-run) and export its results.
    Reproduce {
        /// Pipeline name (a file in pipelines/) or a path to a pipeline .toml.
        pipeline: String,
        #[command(flatten)]
        build: BuildArgs,
        /// Folder the exported results are copied to (default: out/PIPELINE, the pipeline's name).
        #[arg(long)]
        out: Option<PathBuf>,
        /// After the run, check the pipeline's report against its committed bounds.
        #[arg(long)]
        check: bool,
        #[command(flatten)]
        exec: ExecArgs,
    },
    /// Run one stage of a pipeline, and the stages before it that are not cached.
    Run {
        /// Pipeline name or path.
        pipeline: String,
        /// The stage id.
        stage: String,
        #[command(flatten)]
        build: BuildArgs,
    },
    /// Say, for each stage, whether it is cached, stale (and what changed) or missing.
    Status {
        /// Pipeline name or path [default: every pipeline].
        pipeline: Option<String>,
        #[command(flatten)]
        build: BuildArgs,
    },
    /// Delete blobs no manifest or ref reaches, and leftovers of crashed runs.
    Gc {
        /// Only delete entries older than this many seconds (runs on other machines may be writing).
        #[arg(long, default_value_t = 3600)]
        grace_secs: u64,
    },
    /// Re-hash every blob that a committed run names and report corruption.
    Verify,
    /// List the pipelines.
    List,
    /// Run a benchmark and print its comparison table (`cargo xtask bench --help` lists them).
    Bench {
        /// Which benchmark.
        #[arg(value_enum)]
        which: bench::Which,
        /// Extra arguments passed to the benchmark.
        #[arg(last = true)]
        args: Vec<String>,
    },
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits one level below the workspace root")
        .to_path_buf()
}

fn open_store(root: &Path, flag: &Option<PathBuf>) -> Result<Store> {
    let dir = match flag {
        Some(d) => d.clone(),
        None => match std::env::var_os(netshare_store::store::STORE_ENV) {
            Some(d) => PathBuf::from(d),
            None => root.join(netshare_store::store::DEFAULT_STORE),
        },
    };
    Store::open(&dir).with_context(|| format!("opening the store at {}", dir.display()))
}

fn load(root: &Path, name: &str, build: &BuildArgs) -> Result<Pipeline> {
    let mut p = Pipeline::load(root, name)?;
    for o in &build.overrides {
        p.apply_override(o)?;
    }
    Ok(p)
}

fn toolchain(root: &Path, build: &BuildArgs) -> Toolchain {
    Toolchain {
        root: root.to_path_buf(),
        profile: build.profile.clone(),
        no_build: build.no_build,
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    match cli.command {
        Cmd::Reproduce {
            pipeline,
            build,
            out,
            check,
            exec,
        } => {
            let t0 = Instant::now();
            let p = load(&root, &pipeline, &build)?;
            let store = open_store(&root, &cli.store)?;
            eprintln!("pipeline {}: {}", p.name, p.description);
            let tc = toolchain(&root, &build);
            let results = match exec.executor.unwrap_or(p.executor) {
                pipeline::Executor::Local => {
                    if exec.dry_run {
                        bail!("--dry-run prints Slurm job scripts: use it with --executor slurm");
                    }
                    driver::run(&tc, &p, &store, None)?
                }
                pipeline::Executor::Slurm => {
                    let over = slurm::SlurmOptions {
                        partition: exec.partition,
                        time: exec.time,
                        cpus_per_task: exec.cpus_per_task,
                        mem: exec.mem,
                        sbatch_args: exec.sbatch_args,
                    };
                    let results = slurm::run(&tc, &p, &store, p.slurm.merged(&over), exec.dry_run)?;
                    if exec.dry_run {
                        return Ok(());
                    }
                    results
                }
            };
            let out_dir = out.unwrap_or_else(|| root.join("out").join(&p.name));
            let files = driver::export(&p, &store, &results, &out_dir)?;
            let ran = results.iter().filter(|r| !r.cached).count();
            eprintln!(
                "done in {:.2}s: {ran} stage(s) ran, {} cached; results in {}",
                t0.elapsed().as_secs_f64(),
                results.len() - ran,
                out_dir.display()
            );
            for f in files {
                eprintln!("  {}", f.display());
            }
            if check {
                run_check(&root, &build, &p, &store, &results)?;
            }
        }
        Cmd::Run {
            pipeline,
            stage,
            build,
        } => {
            let p = load(&root, &pipeline, &build)?;
            let store = open_store(&root, &cli.store)?;
            driver::run(&toolchain(&root, &build), &p, &store, Some(&stage))?;
        }
        Cmd::Status { pipeline, build } => {
            let store = open_store(&root, &cli.store)?;
            let names = match pipeline {
                Some(n) => vec![n],
                None => pipeline::list(&root)?,
            };
            let tc = toolchain(&root, &build);
            for name in names {
                let p = load(&root, &name, &build)?;
                println!("pipeline {} ({})", p.name, store.root().display());
                slurm::print_status(&store, &p.name)?;
                for (id, state) in driver::status(&tc, &p, &store)? {
                    match state {
                        StageState::Cached { key } => {
                            println!("  {id:<9} cached   key {}", key.short())
                        }
                        StageState::Missing => {
                            println!("  {id:<9} missing  never run in this store: would run")
                        }
                        StageState::Waiting { upstream } => {
                            println!(
                                "  {id:<9} pending  would run after {upstream} (its inputs come from it)"
                            )
                        }
                        StageState::Stale { reasons } => {
                            println!("  {id:<9} stale    would re-run because:");
                            for r in reasons {
                                println!("                       - {r}");
                            }
                        }
                    }
                }
            }
        }
        Cmd::Gc { grace_secs } => {
            let store = open_store(&root, &cli.store)?;
            let r = store.gc(Duration::from_secs(grace_secs))?;
            println!(
                "gc: removed {} blob(s) and {} temporary entr(ies), freed {:.1} MiB; kept {} reachable blob(s)",
                r.removed_blobs,
                r.removed_tmp,
                r.freed_bytes as f64 / (1 << 20) as f64,
                r.kept_blobs
            );
        }
        Cmd::Verify => {
            let store = open_store(&root, &cli.store)?;
            let manifests = store.manifests()?;
            let mut bad = 0;
            for m in &manifests {
                if let Err(e) = store.verify_manifest(m) {
                    bad += 1;
                    eprintln!("run {} ({}): {e}", m.key.short(), m.stage);
                }
            }
            println!("verified {} run(s): {bad} with problems", manifests.len());
            if bad > 0 {
                bail!("{bad} run(s) have missing or corrupted blobs");
            }
        }
        Cmd::List => {
            for name in pipeline::list(&root)? {
                let p = Pipeline::load(&root, &name)?;
                println!("{name:<14} {}", p.description);
            }
        }
        Cmd::Bench {
            which: bench::Which::Fidelity,
            args,
        } => {
            #[derive(Parser)]
            #[command(name = "cargo xtask bench fidelity -- ")]
            struct FidelityCli {
                #[command(flatten)]
                args: fidelity::FidelityArgs,
            }
            let cli_args = FidelityCli::try_parse_from(
                std::iter::once("fidelity".to_string()).chain(args.iter().cloned()),
            )
            .unwrap_or_else(|e| e.exit());
            let store = open_store(&root, &cli.store)?;
            fidelity::run(&root, &store, &cli_args.args)?;
        }
        Cmd::Bench {
            which: bench::Which::Privacy,
            args,
        } => {
            #[derive(Parser)]
            #[command(name = "cargo xtask bench privacy -- ")]
            struct PrivacyCli {
                #[command(flatten)]
                args: privacy_bench::PrivacyArgs,
            }
            let cli_args = PrivacyCli::try_parse_from(
                std::iter::once("privacy".to_string()).chain(args.iter().cloned()),
            )
            .unwrap_or_else(|e| e.exit());
            let store = open_store(&root, &cli.store)?;
            privacy_bench::run(&root, &store, &cli_args.args)?;
        }
        Cmd::Bench { which, args } => bench::run(&root, which, &args)?,
    }
    Ok(())
}

fn run_check(
    root: &Path,
    build: &BuildArgs,
    p: &Pipeline,
    store: &Store,
    results: &[driver::StageResult],
) -> Result<()> {
    let Some(check) = &p.check else {
        bail!("pipeline {} declares no [check]", p.name);
    };
    let pipeline::Source::Output { stage, output } = pipeline::parse_source(&check.report)? else {
        bail!("check.report must be STAGE:OUTPUT");
    };
    let entry = results
        .iter()
        .find(|r| r.id == stage)
        .and_then(|r| r.manifest.outputs.get(&output))
        .with_context(|| format!("no output {} to check", check.report))?;
    let tc = toolchain(root, build);
    tc.build(&["netshare-eval"])?;
    let status = std::process::Command::new(tc.bin_path("netshare-eval"))
        .current_dir(root)
        .arg("check")
        .arg("--report")
        .arg(store.blob_path(&entry.digest))
        .arg("--expected")
        .arg(root.join(&check.expected))
        .status()
        .context("spawning netshare-eval check")?;
    if !status.success() {
        bail!(
            "fidelity regression check failed against {}",
            check.expected
        );
    }
    Ok(())
}
