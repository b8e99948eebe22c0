//! `cargo xtask bench privacy`: what differential privacy costs in fidelity, and what it buys
//! against membership inference, on the shipped private pipeline (`pipelines/ugr16-dp.toml`).
//!
//! For each seed it runs the pipeline in three forms, with the same private-mode encoder, split
//! and evaluation part:
//! - **non-DP**: the model trains on the private part without DP-SGD, from scratch;
//! - **DP scratch ε**: DP-SGD at each target ε, from random weights;
//! - **DP pretrained ε**: DP-SGD at each target ε, from the weights of the model pretrained on
//!   the public trace (the shipped pipeline).
//!
//! and tabulates, per form, the median [min–max] over seeds of NetShare's metrics, the
//! mutual-information difference, detectability, the membership-inference attack's AUC and the
//! share of exact copies, beside the marginals sampler and the real-vs-real floor.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use netshare_store::Store;

use crate::driver::Toolchain;
use crate::fidelity::{
    BuildArgs, RunMetrics, cell, cpu_model, git_rev, run_for_report, run_metrics, summary,
};
use crate::pipeline::Pipeline;

/// Options of the benchmark.
#[derive(clap::Args, Debug, Clone)]
pub struct PrivacyArgs {
    /// Target ε values (δ stays at the pipeline's 1e-5).
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    pub epsilons: Vec<f64>,
    /// Seeds of encode, both models, synth and the marginals sampler (the split stays at 0).
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    pub seeds: Vec<u64>,
    /// Extra config overrides for every run: STAGE.KEY=VALUE (as `reproduce --set`).
    #[arg(long = "set", value_name = "STAGE.KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Folder the tables are written to (PRIVACY.md and privacy.json).
    #[arg(long, default_value = "bench")]
    pub out: PathBuf,
    /// How the stage binaries are built.
    #[command(flatten)]
    pub build: BuildArgs,
}

/// The rows: metric path within a comparison, and its label.
const ROWS: [(&str, &str); 13] = [
    ("distributional.jsd_srcip", "jsd srcip"),
    ("distributional.jsd_dstip", "jsd dstip"),
    ("distributional.jsd_srcport", "jsd srcport"),
    ("distributional.jsd_dstport", "jsd dstport"),
    ("distributional.jsd_proto", "jsd proto"),
    ("distributional.emd_ts", "emd ts"),
    ("distributional.emd_td", "emd td"),
    ("distributional.emd_pkt", "emd pkt"),
    ("distributional.emd_byt", "emd byt"),
    ("joint.mi_mean_abs_diff", "MI mean abs diff"),
    ("detectability.auc", "detectability AUC"),
    ("privacy.dcr_auc", "membership attack AUC"),
    (
        "privacy.exact_copy_share",
        "exact copies of training records",
    ),
];

/// One form of the pipeline: its column name and how it differs from the shipped one.
struct Form {
    name: String,
    /// `None`: no DP-SGD.
    epsilon: Option<f64>,
    pretrained: bool,
}

/// One run's metrics, by comparison (`synthetic`, `marginals`, `real-vs-real`), plus the
/// ledger's ε and the model stage's seconds.
struct Run {
    metrics: RunMetrics,
    epsilon: Option<f64>,
    seconds: f64,
}

fn pipeline_for(root: &Path, form: &Form, seed: u64, overrides: &[String]) -> Result<Pipeline> {
    let mut p = Pipeline::load(root, "ugr16-dp")?;
    p.name = format!("bench-privacy-{}", form.name.replace(' ', "-"));
    for id in [
        "model",
        "model-public",
        "encode",
        "encode-public",
        "synth",
        "baseline",
        "eval",
    ] {
        p.stage(id)
            .with_context(|| format!("pipelines/ugr16-dp.toml lost its {id} stage"))?;
    }
    for stage in [
        "encode",
        "encode-public",
        "model-public",
        "model",
        "synth",
        "baseline",
    ] {
        p.apply_override(&format!("{stage}.seed={seed}"))?;
    }
    match form.epsilon {
        Some(e) => p.apply_override(&format!("model.dp.target_epsilon={e}"))?,
        None => p.apply_override("model.dp=null")?,
    }
    if !form.pretrained {
        for s in &mut p.stages {
            if s.id == "model" {
                s.inputs.remove("init");
            }
        }
    }
    for o in overrides {
        p.apply_override(o)?;
    }
    Ok(p)
}

/// The audit's numbers as metrics of their candidates: `privacy.synthetic.dcr_auc` becomes
/// `synthetic` → `privacy.dcr_auc`.
fn with_audit(report: &serde_json::Value, mut m: RunMetrics) -> RunMetrics {
    if let Some(all) = report["metrics"].as_object() {
        for (k, v) in all {
            if let Some(rest) = k.strip_prefix("privacy.")
                && let Some((cand, metric)) = rest.split_once('.')
            {
                m.entry(cand.to_string())
                    .or_default()
                    .insert(format!("privacy.{metric}"), v["value"].as_f64());
            }
        }
    }
    m
}

/// Runs the benchmark and writes `PRIVACY.md` and `privacy.json` into `args.out`.
pub fn run(root: &Path, store: &Store, args: &PrivacyArgs) -> Result<()> {
    if args.seeds.is_empty() {
        bail!("give at least one seed");
    }
    let mut forms = vec![Form {
        name: "non-DP".into(),
        epsilon: None,
        pretrained: false,
    }];
    for &e in &args.epsilons {
        for pretrained in [false, true] {
            forms.push(Form {
                name: format!(
                    "DP {} ε={e}",
                    if pretrained { "pretrained" } else { "scratch" }
                ),
                epsilon: Some(e),
                pretrained,
            });
        }
    }
    let tc = args.build.toolchain(root);
    let mut runs: BTreeMap<String, Vec<Run>> = BTreeMap::new();
    for &seed in &args.seeds {
        for (k, form) in forms.iter().enumerate() {
            let p = pipeline_for(root, form, seed, &args.overrides)?;
            eprintln!("== {} seed {seed}", form.name);
            // Build once per invocation; later runs reuse the binaries.
            let tc = Toolchain {
                no_build: tc.no_build || k > 0 || seed != args.seeds[0],
                ..tc.clone()
            };
            let (report, seconds) = run_for_report(&tc, &p, store)
                .with_context(|| format!("{} seed {seed}", form.name))?;
            runs.entry(form.name.clone()).or_default().push(Run {
                metrics: with_audit(&report, run_metrics(&report)),
                epsilon: report["ledger"]["epsilon"].as_f64(),
                seconds,
            });
        }
    }
    let md = markdown(&forms, &runs, args, root);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let md_path = args.out.join("PRIVACY.md");
    std::fs::write(&md_path, &md).with_context(|| format!("writing {}", md_path.display()))?;
    let json = serde_json::json!({
        "commit": git_rev(root),
        "cpu": cpu_model(),
        "seeds": args.seeds,
        "epsilons": args.epsilons,
        "overrides": args.overrides,
        "forms": forms.iter().map(|f| serde_json::json!({
            "name": f.name,
            "runs": runs.get(&f.name).map(|rs| rs.iter().zip(&args.seeds).map(|(r, seed)| serde_json::json!({
                "seed": seed,
                "epsilon": r.epsilon,
                "model_seconds": r.seconds,
                "metrics": r.metrics,
            })).collect::<Vec<_>>()),
        })).collect::<Vec<_>>(),
    });
    let json_path = args.out.join("privacy.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    print!("{md}");
    Ok(())
}

fn markdown(
    forms: &[Form],
    runs: &BTreeMap<String, Vec<Run>>,
    args: &PrivacyArgs,
    root: &Path,
) -> String {
    let n = args.seeds.len();
    let mut s = String::new();
    let _ = writeln!(s, "# Privacy benchmark\n");
    let _ = writeln!(
        s,
        "Commit `{}`, CPU {}, seeds {:?}{}. Made by `cargo xtask bench privacy` on \
         `pipelines/ugr16-dp.toml`.\n",
        git_rev(root),
        cpu_model(),
        args.seeds,
        if args.overrides.is_empty() {
            String::new()
        } else {
            format!(", overrides {:?}", args.overrides)
        }
    );
    let _ = writeln!(
        s,
        "UGR16 host-a is public, host-b private. The private records are split by five-tuple; \
         the model trains on one part and every column is judged on the other. All forms share \
         the private-mode encoder (fitted on the public records). non-DP: no DP-SGD, from \
         scratch. DP scratch: DP-SGD from random weights. DP pretrained: DP-SGD from the model \
         trained on the public trace. ε is the ledger's, for the steps run (δ = 1e-5). The \
         membership attack's AUC is 0.5 when the trace says nothing about which records were \
         trained on. Cells: median over seeds [min–max]; lower is better.\n"
    );
    let values = |form: &str, comp: &str, metric: &str| -> Vec<Option<f64>> {
        runs.get(form)
            .map(|rs| {
                rs.iter()
                    .map(|r| {
                        r.metrics
                            .get(comp)
                            .and_then(|c| c.get(metric))
                            .copied()
                            .flatten()
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let _ = write!(s, "| metric |");
    for f in forms {
        let _ = write!(s, " {} |", f.name);
    }
    let _ = writeln!(s, " marginals | real-vs-real |");
    let _ = write!(s, "|---|");
    for _ in 0..forms.len() + 2 {
        let _ = write!(s, "---|");
    }
    let _ = writeln!(s);
    let _ = write!(s, "| ε (ledger) |");
    for f in forms {
        let eps: Vec<Option<f64>> = runs
            .get(&f.name)
            .map(|rs| rs.iter().map(|r| r.epsilon).collect())
            .unwrap_or_default();
        let _ = write!(s, " {} |", cell(summary(&eps), n));
    }
    let _ = writeln!(s, " – | – |");
    let _ = write!(s, "| model seconds |");
    for f in forms {
        let secs: Vec<Option<f64>> = runs
            .get(&f.name)
            .map(|rs| rs.iter().map(|r| Some(r.seconds)).collect())
            .unwrap_or_default();
        let _ = write!(s, " {} |", cell(summary(&secs), n));
    }
    let _ = writeln!(s, " – | – |");
    let first = forms.first().map(|f| f.name.clone()).unwrap_or_default();
    for (metric, label) in ROWS {
        let _ = write!(s, "| {label} |");
        for f in forms {
            let _ = write!(
                s,
                " {} |",
                cell(summary(&values(&f.name, "synthetic", metric)), n)
            );
        }
        for comp in ["marginals", "real-vs-real"] {
            let _ = write!(s, " {} |", cell(summary(&values(&first, comp, metric)), n));
        }
        let _ = writeln!(s);
    }
    s
}
