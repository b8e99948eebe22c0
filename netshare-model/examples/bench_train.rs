//! Training-step benchmark: seconds per generator step (with its critic steps), burn (Flex CPU,
//! or CUDA with the `cuda` feature) next to the PyTorch implementation in `bench/torch_step.py`
//! on the same tensors, one table row per shape and profile.
//!
//! `RAYON_NUM_THREADS=2 cargo xtask bench train -- [ENCODED_DIR ...] [options]`
//!
//! Without ENCODED_DIR it sweeps random tensors shaped like the encoder's UGR16 output over the
//! flow lengths `--t` (default 2,16,200; N = `--n`, default 989), since a step's cost depends on
//! the shapes and not on the values. With one or more ENCODED_DIR (the encoder's output for a
//! trace) it times chunk 0 of each instead. Every shape runs at each of `--profiles` (default
//! `default,netshare`) and each of `--sample-lens` that divides T (default 1).
//!
//! Options: `--steps N` (default 20), `--warmup N` (default 3), `--device cpu|cuda`,
//! `--no-torch`, `--tensor-lstm` (also time the tensor-op LSTM, the form before the fused one),
//! `--full-lstm` (also time the fused LSTM over every step, the form before it stopped once a
//! block's generated flows have all ended), `--weights PATH` (start from a trained model's
//! `weights-000.safetensors` instead of fresh weights: how long the generated flows are, and
//! so how many steps the LSTM skips, depends on the weights),
//! `--python PYTHON`, `--json PATH` (the table as JSON, with the CPU it ran on),
//! `--compare-kernels` (burn alone with gemm's AVX2 and then its AVX-512 kernels, each in a
//! process of its own, to check the per-CPU choice of `choose_matmul_kernels` on a machine),
//! `--dp` (also a DP-SGD step at the same sizes: Poisson sampling, per-example clipping over
//! both critics, noise; σ = 1, C = 1; its row gives DP / non-DP seconds per step).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use netshare_model::testing::{ugr16_shaped, write_encoded};
use netshare_model::{Encoded, LstmForm, ModelConfig, Profile};
use serde::Serialize;

struct Args {
    encoded: Vec<PathBuf>,
    ts: Vec<usize>,
    n: usize,
    profiles: Vec<Profile>,
    sample_lens: Vec<usize>,
    steps: u64,
    warmup: u64,
    device: String,
    torch: bool,
    tensor_lstm: bool,
    full_lstm: bool,
    weights: Option<PathBuf>,
    python: String,
    json: Option<PathBuf>,
    compare_kernels: bool,
    dp: bool,
}

fn list<T: std::str::FromStr>(s: &str) -> Result<Vec<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    s.split(',')
        .map(|x| {
            x.trim()
                .parse::<T>()
                .with_context(|| format!("bad list item {x:?}"))
        })
        .collect()
}

fn profile(s: &str) -> Result<Profile> {
    Ok(match s.trim() {
        "netshare" => Profile::Netshare,
        "default" => Profile::Default,
        "tiny" => Profile::Tiny,
        p => bail!("unknown profile {p} (netshare, default or tiny)"),
    })
}

fn args() -> Result<Args> {
    let mut a = Args {
        encoded: Vec::new(),
        ts: vec![2, 16, 200],
        n: 989,
        profiles: vec![Profile::Default, Profile::Netshare],
        sample_lens: vec![1],
        steps: 20,
        warmup: 3,
        device: "cpu".into(),
        torch: true,
        tensor_lstm: false,
        full_lstm: false,
        weights: None,
        python: "python3".into(),
        json: None,
        compare_kernels: false,
        dp: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut val = || it.next().with_context(|| format!("{x} needs a value"));
        match x.as_str() {
            "--steps" => a.steps = val()?.parse()?,
            "--warmup" => a.warmup = val()?.parse()?,
            "--t" => a.ts = list(&val()?)?,
            "--n" => a.n = val()?.parse()?,
            "--profile" | "--profiles" => {
                a.profiles = val()?.split(',').map(profile).collect::<Result<_>>()?
            }
            "--sample-lens" => a.sample_lens = list(&val()?)?,
            "--device" => a.device = val()?,
            "--no-torch" => a.torch = false,
            "--tensor-lstm" => a.tensor_lstm = true,
            "--full-lstm" => a.full_lstm = true,
            "--weights" => a.weights = Some(PathBuf::from(val()?)),
            "--python" => a.python = val()?,
            "--json" => a.json = Some(PathBuf::from(val()?)),
            "--compare-kernels" => a.compare_kernels = true,
            "--dp" => a.dp = true,
            "-h" | "--help" => {
                println!("{}", HELP);
                std::process::exit(0);
            }
            p if !p.starts_with("--") => a.encoded.push(PathBuf::from(p)),
            p => bail!("unknown option {p} (see --help)"),
        }
    }
    if a.steps == 0 {
        bail!("--steps must be at least 1");
    }
    Ok(a)
}

const HELP: &str = "bench_train [ENCODED_DIR ...] [--t 2,16,200] [--n 989] \
[--profiles default,netshare] [--sample-lens 1] [--steps 20] [--warmup 3] [--device cpu|cuda] \
[--no-torch] [--tensor-lstm] [--full-lstm] [--weights PATH] [--python PYTHON] [--json PATH] [--compare-kernels] [--dp]

Seconds per generator step (with its critic steps), burn next to PyTorch on the same tensors.
Without ENCODED_DIR: random tensors of UGR16's encoded shape for each T in --t.";

/// The CPU this runs on: `/proc/cpuinfo`'s model name and the SIMD flags that decide which
/// kernels the matmuls and activations use.
#[derive(Serialize)]
struct Cpu {
    model: String,
    simd_flags: Vec<String>,
    cores: usize,
}

fn cpu() -> Cpu {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let wanted = |f: &&str| {
        ["sse4_2", "avx", "avx2", "fma", "f16c"].contains(f)
            || f.starts_with("avx512")
            || f.starts_with("amx")
            || f.starts_with("avx_vnni")
    };
    Cpu {
        model: field("model name").unwrap_or_else(|| "unknown".into()),
        simd_flags: field("flags")
            .unwrap_or_default()
            .split_whitespace()
            .filter(wanted)
            .map(str::to_string)
            .collect(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// One timed implementation.
#[derive(Serialize)]
struct Timing {
    implementation: String,
    mean_seconds: f64,
    min_seconds: f64,
}

/// One row of the table: a shape at a profile and sample_len.
#[derive(Serialize)]
struct Row {
    set: String,
    n: usize,
    attr_dim: usize,
    t: usize,
    feat_dim: usize,
    profile: String,
    sample_len: usize,
    timings: Vec<Timing>,
    /// PyTorch's mean seconds per step over burn's (fused LSTM); above 1 burn is faster.
    rate_vs_torch: Option<f64>,
    /// With `--dp`: DP-SGD's mean seconds per step over the ordinary step's.
    #[serde(skip_serializing_if = "Option::is_none")]
    dp_over_plain: Option<f64>,
}

#[derive(Serialize)]
struct Report {
    cpu: Cpu,
    threads: String,
    matmul_kernels: &'static str,
    steps: u64,
    warmup: u64,
    rows: Vec<Row>,
}

fn torch_step(
    a: &Args,
    dir: &Path,
    cfg: &ModelConfig,
    sample_len: usize,
    threads: &str,
) -> Result<(String, f64, f64)> {
    let mut cfg_json = serde_json::to_value(cfg)?;
    cfg_json["sample_len"] = sample_len.into();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/torch_step.py");
    let mut cmd = Command::new(&a.python);
    // On a shared machine OpenMP's default spin-waiting makes 2-thread torch several times
    // slower than 1 thread; passive waiting gives torch its best case.
    if std::env::var_os("OMP_WAIT_POLICY").is_none() {
        cmd.env("OMP_WAIT_POLICY", "PASSIVE");
    }
    // The same allocator thresholds this process set with `tune_allocator`, so both sides
    // run with the same malloc behaviour (torch measured no different either way).
    for (k, v) in [
        ("MALLOC_MMAP_THRESHOLD_", "67108864"),
        ("MALLOC_TRIM_THRESHOLD_", "268435456"),
        ("MALLOC_TOP_PAD_", "67108864"),
    ] {
        if std::env::var_os(k).is_none() {
            cmd.env(k, v);
        }
    }
    let out = cmd
        .arg(&script)
        .arg(dir)
        .args(["--steps", &a.steps.to_string()])
        .args(["--warmup", &a.warmup.to_string()])
        .args(["--config-json", &cfg_json.to_string()])
        .args(["--threads", if threads == "all" { "0" } else { threads }])
        .output()
        .with_context(|| format!("running {} {}", a.python, script.display()))?;
    if !out.status.success() {
        bail!(
            "torch benchmark failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("torch benchmark output")?;
    let f = |k: &str| {
        v[k].as_f64()
            .with_context(|| format!("torch output lacks {k}"))
    };
    Ok((
        format!("pytorch {}", v["torch_version"].as_str().unwrap_or("?")),
        f("mean_seconds")?,
        f("min_seconds")?,
    ))
}

/// Runs this benchmark again, burn only, once with each of gemm's x86 kernel sets (the choice
/// is fixed at a process's first matmul, hence one process each), and prints them side by side.
fn compare_kernels() -> Result<()> {
    if !cfg!(target_arch = "x86_64") {
        bail!("--compare-kernels compares x86-64 kernels");
    }
    #[cfg(target_arch = "x86_64")]
    if !std::arch::is_x86_feature_detected!("avx512f") {
        bail!("this CPU has no AVX-512F, so there is nothing to compare");
    }
    let tmp = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let rest: Vec<String> = std::env::args()
        .skip(1)
        .filter(|x| x != "--compare-kernels")
        .collect();
    let mut runs = Vec::new();
    for k in ["avx2", "avx512"] {
        let out = tmp.path().join(format!("{k}.json"));
        println!("== NETSHARE_MATMUL={k} ==");
        let status = Command::new(&exe)
            .args(&rest)
            .args(["--no-torch", "--json"])
            .arg(&out)
            .env("NETSHARE_MATMUL", k)
            .status()?;
        if !status.success() {
            bail!("the {k} run failed ({status})");
        }
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out)?)?;
        runs.push(v);
    }
    println!(
        "\n| set | T | profile | sample_len | AVX2 s/step (mean) | AVX-512 s/step (mean) | AVX-512 / AVX2 time |"
    );
    println!("|---|---|---|---|---|---|---|");
    let rows = |v: &serde_json::Value| v["rows"].as_array().cloned().unwrap_or_default();
    for (x, y) in rows(&runs[0]).iter().zip(rows(&runs[1])) {
        let mean =
            |r: &serde_json::Value| r["timings"][0]["mean_seconds"].as_f64().unwrap_or(f64::NAN);
        println!(
            "| {} | {} | {} | {} | {:.4} | {:.4} | {:.2} |",
            x["set"].as_str().unwrap_or("?"),
            x["t"],
            x["profile"].as_str().unwrap_or("?"),
            x["sample_len"],
            mean(x),
            mean(&y),
            mean(&y) / mean(x)
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    netshare_model::tune_allocator();
    let kernels = netshare_model::choose_matmul_kernels();
    let a = args()?;
    if a.compare_kernels {
        return compare_kernels();
    }
    let tmp = tempfile::tempdir()?;
    let mut sets: Vec<(String, PathBuf)> = Vec::new();
    if a.encoded.is_empty() {
        for &t in &a.ts {
            let d = tmp.path().join(format!("enc-t{t}"));
            write_encoded(&ugr16_shaped(a.n, t, 1, 7), &d)?;
            sets.push((format!("random UGR16-shaped, T={t}"), d));
        }
    } else {
        for d in &a.encoded {
            sets.push((d.display().to_string(), d.clone()));
        }
    }
    let device = match a.device.as_str() {
        "cpu" => burn::tensor::Device::flex(),
        #[cfg(feature = "cuda")]
        "cuda" => burn::tensor::Device::cuda(0),
        d => bail!("device {d} is not available in this build"),
    };
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());
    let mut report = Report {
        cpu: cpu(),
        threads: threads.clone(),
        matmul_kernels: kernels.describe(),
        steps: a.steps,
        warmup: a.warmup,
        rows: Vec::new(),
    };
    println!(
        "CPU: {} ({} cores); SIMD flags: {}",
        report.cpu.model,
        report.cpu.cores,
        report.cpu.simd_flags.join(" ")
    );
    println!(
        "matmul kernels: {} (chosen per CPU model; NETSHARE_MATMUL=avx2|avx512 overrides); \
         threads {threads}; {} timed steps after {} warm-up",
        report.matmul_kernels, a.steps, a.warmup
    );
    println!(
        "LSTM weight gradients: {}",
        if netshare_model::live_row_gradients() {
            "over the steps each flow ran (checked bit-equal to the full matmul)"
        } else {
            "over every step (the blocking check did not pass on this CPU)"
        }
    );
    println!(
        "| set | N | A | T | F | profile | sample_len | burn s/step (mean / min) | PyTorch s/step (mean / min) | burn / PyTorch rate |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let start = match &a.weights {
        Some(p) => Some(
            netshare_model::weights::read(p)
                .with_context(|| format!("reading {}", p.display()))?
                .0,
        ),
        None => None,
    };
    for (label, dir) in &sets {
        let mut enc =
            Encoded::from_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        let c = enc.chunks[0].clone();
        for &p in &a.profiles {
            for &s in &a.sample_lens {
                if s == 0 || !c.max_len.is_multiple_of(s) {
                    continue;
                }
                // sample_len is the encoder's setting, carried by the layout.
                enc.layout.sample_len = s;
                let cfg = ModelConfig::profile(p);
                let mut forms = vec![(LstmForm::Fused, "")];
                if a.device == "cpu" && a.full_lstm {
                    forms.push((LstmForm::FusedFull, ", LSTM over every step"));
                }
                if a.device == "cpu" && a.tensor_lstm {
                    forms.push((LstmForm::TensorOps, ", tensor LSTM"));
                }
                let mut timings = Vec::new();
                for (form, suffix) in forms {
                    let t = netshare_model::measure_steps(
                        &cfg,
                        &enc,
                        device.clone(),
                        form,
                        start.as_ref(),
                        a.warmup,
                        a.steps,
                    )?;
                    timings.push(Timing {
                        implementation: format!("burn ({}{suffix})", a.device),
                        mean_seconds: t.mean_seconds,
                        min_seconds: t.min_seconds,
                    });
                }
                let mut dp_ratio = None;
                if a.dp {
                    let private = ModelConfig {
                        dp: Some(netshare_model::DpConfig {
                            clip_norm: 1.0,
                            noise_multiplier: Some(1.0),
                            target_epsilon: None,
                            delta: 1e-5,
                            count_noise: 10.0,
                        }),
                        ..cfg.clone()
                    };
                    let t = netshare_model::measure_steps(
                        &private,
                        &enc,
                        device.clone(),
                        LstmForm::Fused,
                        start.as_ref(),
                        a.warmup,
                        a.steps,
                    )?;
                    dp_ratio = Some(t.mean_seconds / timings[0].mean_seconds);
                    timings.push(Timing {
                        implementation: format!("burn ({}, DP-SGD)", a.device),
                        mean_seconds: t.mean_seconds,
                        min_seconds: t.min_seconds,
                    });
                }
                let mut rate = None;
                if a.torch {
                    let (name, mean, min) = torch_step(&a, dir, &cfg, s, &threads)?;
                    rate = Some(mean / timings[0].mean_seconds);
                    timings.push(Timing {
                        implementation: name,
                        mean_seconds: mean,
                        min_seconds: min,
                    });
                }
                let cellf = |t: Option<&Timing>| {
                    t.map_or("-".to_string(), |t| {
                        format!("{:.4} / {:.4}", t.mean_seconds, t.min_seconds)
                    })
                };
                let torch_timing = a.torch.then(|| timings.last()).flatten();
                println!(
                    "| {label} | {} | {} | {} | {} | {} | {s} | {} | {} | {} |",
                    c.n,
                    c.attr_dim,
                    c.max_len,
                    c.feat_dim,
                    cfg.profile.name(),
                    cellf(timings.first()),
                    cellf(torch_timing),
                    rate.map_or("-".to_string(), |r| format!("{r:.2}x")),
                );
                for t in timings.iter().skip(1) {
                    if t.implementation.ends_with("DP-SGD)") {
                        println!(
                            "|   {} | | | | | | | {} | | DP / non-DP {:.2}x |",
                            t.implementation,
                            cellf(Some(t)),
                            dp_ratio.unwrap_or(f64::NAN)
                        );
                    } else if !t.implementation.starts_with("pytorch") {
                        println!(
                            "|   {} | | | | | | | {} | | {} |",
                            t.implementation,
                            cellf(Some(t)),
                            torch_timing.map_or("-".to_string(), |p| format!(
                                "{:.2}x",
                                p.mean_seconds / t.mean_seconds
                            ))
                        );
                    }
                }
                report.rows.push(Row {
                    set: label.clone(),
                    n: c.n,
                    attr_dim: c.attr_dim,
                    t: c.max_len,
                    feat_dim: c.feat_dim,
                    profile: cfg.profile.name().to_string(),
                    sample_len: s,
                    timings,
                    rate_vs_torch: rate,
                    dp_over_plain: dp_ratio,
                });
            }
        }
    }
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", p.display()))?;
        println!("wrote {}", p.display());
    }
    Ok(())
}
