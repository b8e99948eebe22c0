//! Training-step benchmark: seconds per generator step (with its critic steps) at the
//! `netshare` profile sizes, burn (Flex CPU, or CUDA with the `cuda` feature) next to the
//! PyTorch implementation in `bench/torch_step.py` on the same tensors, in one table.
//!
//! `RAYON_NUM_THREADS=2 cargo run --release -p netshare-model --example bench_train -- ENCODED_DIR`
//! (ENCODED_DIR: the encoder's output for a trace, e.g. UGR16; without it, random tensors of
//! UGR16's shape). Options: `--steps N` (default 20), `--warmup N` (default 3), `--profile P`,
//! `--device cpu|cuda`, `--no-torch`, `--no-tensor-lstm` (on the CPU the tensor-op LSTM is timed
//! too unless this is given), `--python PYTHON`.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use netshare_model::testing::{ugr16_shaped, write_encoded};
use netshare_model::{Encoded, LstmForm, ModelConfig, Profile};

struct Args {
    encoded: Option<PathBuf>,
    steps: u64,
    warmup: u64,
    profile: Profile,
    device: String,
    torch: bool,
    tensor_lstm: bool,
    python: String,
}

fn args() -> Result<Args> {
    let mut a = Args {
        encoded: None,
        steps: 20,
        warmup: 3,
        profile: Profile::Netshare,
        device: "cpu".into(),
        torch: true,
        tensor_lstm: true,
        python: "python3".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut val = || it.next().with_context(|| format!("{x} needs a value"));
        match x.as_str() {
            "--steps" => a.steps = val()?.parse()?,
            "--warmup" => a.warmup = val()?.parse()?,
            "--profile" => {
                a.profile = match val()?.as_str() {
                    "netshare" => Profile::Netshare,
                    "default" => Profile::Default,
                    "tiny" => Profile::Tiny,
                    p => bail!("unknown profile {p}"),
                }
            }
            "--device" => a.device = val()?,
            "--no-torch" => a.torch = false,
            "--no-tensor-lstm" => a.tensor_lstm = false,
            "--python" => a.python = val()?,
            p if !p.starts_with("--") => a.encoded = Some(PathBuf::from(p)),
            p => bail!("unknown option {p}"),
        }
    }
    Ok(a)
}

fn main() -> Result<()> {
    netshare_model::tune_allocator();
    let a = args()?;
    let tmp = tempfile::tempdir()?;
    let (dir, what) = match &a.encoded {
        Some(d) => (d.clone(), format!("{}", d.display())),
        None => {
            let d = tmp.path().join("enc");
            write_encoded(&ugr16_shaped(989, 2, 1, 7), &d)?;
            (d, "random tensors of UGR16 shape".to_string())
        }
    };
    let enc = Encoded::from_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
    let c = &enc.chunks[0];
    let cfg = ModelConfig::profile(a.profile);
    let device = match a.device.as_str() {
        "cpu" => burn::tensor::Device::flex(),
        #[cfg(feature = "cuda")]
        "cuda" => burn::tensor::Device::cuda(0),
        d => bail!("device {d} is not available in this build"),
    };
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());
    println!(
        "tensors: {what}: N={} A={} T={} F={}; profile {:?}: MLPs {}x{}, LSTM {}, batch {}, {} critic steps; threads {threads}",
        c.n,
        c.attr_dim,
        c.max_len,
        c.feat_dim,
        a.profile,
        cfg.critic_layers,
        cfg.critic_hidden,
        cfg.lstm_hidden,
        cfg.batch_size,
        cfg.critic_steps
    );
    // On the CPU the tensor-op LSTM (the form before the fused one) is timed too, in the same run.
    let forms: &[(LstmForm, &str)] = if a.device == "cpu" && a.tensor_lstm {
        &[
            (LstmForm::TensorOps, ", tensor LSTM"),
            (LstmForm::Fused, ""),
        ]
    } else {
        &[(LstmForm::Fused, "")]
    };
    let mut rows = Vec::new();
    for &(form, label) in forms {
        let t = netshare_model::measure_steps(&cfg, &enc, device.clone(), form, a.warmup, a.steps)?;
        rows.push((
            format!("burn ({}{label})", a.device),
            t.mean_seconds,
            t.min_seconds,
        ));
    }
    if a.torch {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/torch_step.py");
        let cfg_json = serde_json::to_string(&cfg)?;
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
            .arg(&dir)
            .args([
                "--steps",
                &a.steps.to_string(),
                "--warmup",
                &a.warmup.to_string(),
            ])
            .args(["--config-json", &cfg_json])
            .args(["--threads", if threads == "all" { "0" } else { &threads }])
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
        rows.push((
            format!("pytorch {}", v["torch_version"].as_str().unwrap_or("?")),
            f("mean_seconds")?,
            f("min_seconds")?,
        ));
    }
    println!(
        "{:<28} {:>14} {:>14} {:>12}",
        "implementation", "s/step (mean)", "s/step (min)", "steps/s"
    );
    for (name, mean, min) in &rows {
        println!("{name:<28} {mean:>14.4} {min:>14.4} {:>12.2}", 1.0 / mean);
    }
    if a.torch
        && let Some((_, torch, _)) = rows.last()
    {
        for (name, mean, _) in &rows[..rows.len() - 1] {
            println!("{name} step rate / pytorch step rate: {:.2}x", torch / mean);
        }
    }
    Ok(())
}
