//! `cargo xtask bench fidelity`: the held-out fidelity benchmark.
//!
//! For each trace and seed it runs the held-out pipeline (split by five-tuple into a training
//! and an evaluation part of about equal record counts; model and marginals baseline learn from
//! the training part; everything is judged against the evaluation part, with the training part
//! itself as the real-vs-real floor) through the ordinary driver and store, then writes one
//! table per trace with the median and the min-max over seeds of every metric, side by side for
//! netshare-rs, the marginals sampler, the real-vs-real floor and, where given, the reference
//! NetShare output. No seed is singled out: every figure is a median with its range.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use netshare_store::Store;

use crate::driver::{self, Toolchain};
use crate::pipeline::Pipeline;

/// One benchmark trace.
struct Trace {
    name: &'static str,
    /// Path relative to the workspace root.
    file: &'static str,
    /// The reference NetShare's output on the whole trace, if one exists.
    reference: Option<&'static str>,
    /// Run when `--traces` names none (the others run only when named).
    by_default: bool,
}

const TRACES: [Trace; 6] = [
    Trace {
        name: "ugr16-1k",
        file: "fixtures/data/netflow/ugr16-netshare-1k.csv",
        reference: Some("fixtures/data/reference/netshare-ref-ugr16-1k-syn.csv"),
        by_default: true,
    },
    Trace {
        name: "ugr16-host-a",
        file: "fixtures/data/netflow/ugr16-day1-host-a.csv",
        reference: None,
        by_default: true,
    },
    Trace {
        name: "ugr16-host-b",
        file: "fixtures/data/netflow/ugr16-day1-host-b.csv",
        reference: None,
        by_default: true,
    },
    Trace {
        name: "skype-pcap",
        file: "fixtures/data/pcap/skype.pcap",
        reference: None,
        by_default: true,
    },
    Trace {
        name: "cicids-pcap",
        file: "fixtures/data/pcap/cicids2017-demo.pcapng",
        reference: None,
        by_default: false,
    },
    Trace {
        name: "quic-pcap",
        file: "fixtures/data/pcap/quic_interop_V.pcapng",
        reference: None,
        by_default: false,
    },
];

/// Comparisons shown, in column order, with their column titles.
const COLUMNS: [(&str, &str); 4] = [
    ("synthetic", "netshare-rs"),
    ("marginals", "marginals"),
    ("real-vs-real", "real-vs-real"),
    ("reference-impl", "reference NetShare"),
];

/// Options of the benchmark.
#[derive(clap::Args, Debug, Clone)]
pub struct FidelityArgs {
    /// Traces to run. Default: ugr16-1k, ugr16-host-a, ugr16-host-b, skype-pcap. Run only when
    /// named: cicids-pcap (CIC-IDS2017, 6,000 packets) and quic-pcap (246 packets, a third
    /// IPv6), two more captures whose real halves are 0.96-1.0 detectable from each other.
    #[arg(long, value_delimiter = ',')]
    pub traces: Vec<String>,
    /// Seeds of encode, model, synth and the marginals sampler (the split stays at seed 0, so
    /// every seed is judged on the same evaluation part).
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    pub seeds: Vec<u64>,
    /// Model profile.
    #[arg(long, default_value = "default")]
    pub profile: String,
    /// Extra config overrides for every run: STAGE.KEY=VALUE (as `reproduce --set`).
    #[arg(long = "set", value_name = "STAGE.KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Folder the tables are written to (FIDELITY.md and fidelity.json).
    #[arg(long, default_value = "bench")]
    pub out: PathBuf,
    /// How the stage binaries are built.
    #[command(flatten)]
    pub build: BuildArgs,
}

/// How a benchmark builds the stage binaries (shared by the fidelity and privacy benches).
#[derive(clap::Args, Debug, Clone)]
pub struct BuildArgs {
    /// Cargo profile of the stage binaries.
    #[arg(long, default_value = "release")]
    pub build_profile: String,
    /// Do not build the stage binaries first.
    #[arg(long)]
    pub no_build: bool,
}

impl BuildArgs {
    /// The driver's toolchain for these options.
    pub fn toolchain(&self, root: &Path) -> Toolchain {
        Toolchain {
            root: root.to_path_buf(),
            profile: self.build_profile.clone(),
            no_build: self.no_build,
        }
    }
}

/// The held-out pipeline of one trace: the shipped `pipelines/ugr16.toml` (split, train on one
/// part, judge on the other) with the trace, the reference output and the profile swapped in, so
/// the benchmark measures exactly what a user runs.
fn pipeline_for(root: &Path, trace: &Trace, profile: &str) -> Result<Pipeline> {
    let mut p = Pipeline::load(root, "ugr16")?;
    p.name = format!("bench-fidelity-{}", trace.name);
    p.description = format!("held-out fidelity benchmark: {}", trace.name);
    for stage in &mut p.stages {
        match stage.id.as_str() {
            "ingest" => {
                stage
                    .inputs
                    .insert("trace".into(), format!("file:{}", trace.file));
            }
            "eval" => {
                stage.inputs.remove("reference-impl");
                if let Some(r) = trace.reference {
                    stage
                        .inputs
                        .insert("reference-impl".into(), format!("file:{r}"));
                }
            }
            _ => {}
        }
    }
    for id in [
        "ingest", "split", "encode", "model", "synth", "baseline", "eval",
    ] {
        p.stage(id)
            .with_context(|| format!("pipelines/ugr16.toml lost its {id} stage"))?;
    }
    p.apply_override(&format!("model.profile={profile}"))?;
    Ok(p)
}

/// The metrics of one run: comparison → metric path (without the comparison) → value.
pub(crate) type RunMetrics = BTreeMap<String, BTreeMap<String, Option<f64>>>;

pub(crate) fn run_metrics(report: &serde_json::Value) -> RunMetrics {
    let mut out: RunMetrics = BTreeMap::new();
    if let Some(m) = report["metrics"].as_object() {
        for (k, v) in m {
            if let Some((comp, rest)) = k.split_once('.') {
                out.entry(comp.to_string())
                    .or_default()
                    .insert(rest.to_string(), v["value"].as_f64());
            }
        }
    }
    out
}

/// The rows of the table: NetShare's metrics, then the joint ones, then the downstream ones.
fn shown(metric: &str) -> bool {
    metric.starts_with("distributional.")
        || metric.starts_with("joint.")
        || metric == "detectability.auc"
        || metric == "classification.rank_correlation"
        || metric.starts_with("detectability_by_field.")
}

/// Median, min and max of the defined values.
pub(crate) fn summary(values: &[Option<f64>]) -> Option<(f64, f64, f64)> {
    let mut v: Vec<f64> = values.iter().flatten().copied().collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    };
    Some((median, v[0], v[n - 1]))
}

pub(crate) fn fmt(x: f64) -> String {
    let a = x.abs();
    if a == 0.0 {
        "0".into()
    } else if !(1e-3..1e4).contains(&a) {
        format!("{x:.3e}")
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
    }
}

pub(crate) fn cell(s: Option<(f64, f64, f64)>, seeds: usize) -> String {
    match s {
        None => "–".into(),
        Some((m, lo, hi)) if seeds > 1 && lo != hi => {
            format!("{} [{}–{}]", fmt(m), fmt(lo), fmt(hi))
        }
        Some((m, _, _)) => fmt(m),
    }
}

/// How far below a bound a rank correlation may be computed and still meet it. Without ties,
/// Spearman's correlation of five classifiers' ranks is a multiple of 0.05 (`1 - sum d^2 /
/// 20`); computed as the Pearson correlation of the ranks (as scipy computes it too), it
/// lands a rounding error off: 0.6 comes out as 0.5999999999999999, and scipy gives
/// 0.8999999999999998 for 0.9.
const RANK_ROUNDING: f64 = 1e-9;

/// Per trace: the runs' metrics and wall seconds.
struct TraceResult {
    name: String,
    runs: Vec<(u64, RunMetrics, f64)>,
}

impl TraceResult {
    fn values(&self, comp: &str, metric: &str) -> Vec<Option<f64>> {
        self.runs
            .iter()
            .map(|(_, m, _)| m.get(comp).and_then(|c| c.get(metric)).copied().flatten())
            .collect()
    }

    fn metrics(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .runs
            .iter()
            .flat_map(|(_, m, _)| {
                m.get("synthetic")
                    .into_iter()
                    .flat_map(|c| c.keys().cloned())
            })
            .filter(|k| shown(k))
            .collect();
        names.sort_by_key(|k| {
            let group = if k.starts_with("distributional.") {
                0
            } else if k.starts_with("joint.") {
                1
            } else if k.starts_with("detectability_by_field.") {
                3
            } else {
                2
            };
            (group, k.clone())
        });
        names.dedup();
        names
    }

    /// The acceptance targets, each with whether the medians meet it.
    fn targets(&self) -> Vec<(String, bool)> {
        let med = |c: &str, m: &str| summary(&self.values(c, m)).map(|s| s.0);
        let mut out = Vec::new();
        let beat = |m: &str| match (med("synthetic", m), med("marginals", m)) {
            (Some(s), Some(b)) => Some(s < b),
            _ => None,
        };
        let joint: Vec<String> = self
            .metrics()
            .into_iter()
            .filter(|m| m.starts_with("joint."))
            .collect();
        for m in &joint {
            if let Some(ok) = beat(m) {
                out.push((format!("beats marginals on {m}"), ok));
            }
        }
        if let Some(ok) = beat("detectability.auc") {
            out.push(("beats marginals on detectability.auc".into(), ok));
        }
        if let Some(a) = med("synthetic", "detectability.auc") {
            out.push((format!("detectability AUC {} <= 0.85", fmt(a)), a <= 0.85));
        }
        if let Some(r) = med("synthetic", "classification.rank_correlation") {
            out.push((
                format!("classifier rank correlation {} >= 0.6", fmt(r)),
                r >= 0.6 - RANK_ROUNDING,
            ));
        }
        let netshare: Vec<String> = self
            .metrics()
            .into_iter()
            .filter(|m| m.starts_with("distributional."))
            .collect();
        let vs_ref: Vec<bool> = netshare
            .iter()
            .filter_map(|m| Some(med("synthetic", m)? < med("reference-impl", m)?))
            .collect();
        if !vs_ref.is_empty() {
            let won = vs_ref.iter().filter(|w| **w).count();
            out.push((
                format!(
                    "beats the reference NetShare output on {won} of {} of NetShare's metrics (>= 8)",
                    vs_ref.len()
                ),
                won >= 8,
            ));
        }
        for m in netshare {
            if let (Some(s), Some(b)) = (med("synthetic", &m), med("marginals", &m)) {
                out.push((
                    format!("{m} within 2x of marginals ({} vs {})", fmt(s), fmt(b)),
                    s <= 2.0 * b,
                ));
            }
            if let Some((_, lo, hi)) = summary(&self.values("synthetic", &m)) {
                let spread = if lo > 0.0 { hi / lo } else { f64::INFINITY };
                out.push((
                    format!("{m} seed spread max/min {} <= 2", fmt(spread)),
                    spread <= 2.0,
                ));
            }
        }
        out
    }
}

pub(crate) fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

pub(crate) fn git_rev(root: &Path) -> String {
    driver::git_rev(root)
        .map(|r| r.chars().take(7).collect())
        .unwrap_or_else(|| "unknown".into())
}

/// Runs a pipeline and returns its eval report and the model stage's own wall time, from its
/// runs' manifests (also right when this invocation found the runs cached).
pub(crate) fn run_for_report(
    tc: &Toolchain,
    p: &Pipeline,
    store: &Store,
) -> Result<(serde_json::Value, f64)> {
    let res = driver::run(tc, p, store, None)?;
    let secs = res
        .iter()
        .find(|r| r.id == "model")
        .map(|r| r.wall_seconds)
        .context("the pipeline ran no model stage")?;
    let eval = res
        .iter()
        .find(|r| r.id == "eval")
        .context("the pipeline ran no eval stage")?;
    let entry = eval
        .manifest
        .outputs
        .get("report.json")
        .context("eval wrote no report.json")?;
    let text = std::fs::read(store.blob_path(&entry.digest)).context("reading the eval report")?;
    let report = serde_json::from_slice(&text).context("parsing the eval report")?;
    Ok((report, secs))
}

/// Runs the benchmark and writes `FIDELITY.md` and `fidelity.json` into `args.out`.
pub fn run(root: &Path, store: &Store, args: &FidelityArgs) -> Result<()> {
    let traces: Vec<&Trace> = if args.traces.is_empty() {
        TRACES.iter().filter(|t| t.by_default).collect()
    } else {
        args.traces
            .iter()
            .map(|n| {
                TRACES.iter().find(|t| t.name == n).with_context(|| {
                    let known: Vec<&str> = TRACES.iter().map(|t| t.name).collect();
                    format!("unknown trace {n:?} (known: {})", known.join(", "))
                })
            })
            .collect::<Result<_>>()?
    };
    if args.seeds.is_empty() {
        bail!("give at least one seed");
    }
    let tc = args.build.toolchain(root);
    let mut results = Vec::new();
    for trace in &traces {
        let mut tr = TraceResult {
            name: trace.name.to_string(),
            runs: Vec::new(),
        };
        for &seed in &args.seeds {
            let mut p = pipeline_for(root, trace, &args.profile)?;
            for stage in ["encode", "model", "synth", "baseline"] {
                p.apply_override(&format!("{stage}.seed={seed}"))?;
            }
            for o in &args.overrides {
                p.apply_override(o)?;
            }
            eprintln!("== {} seed {seed}", trace.name);
            let (report, secs) = run_for_report(&tc, &p, store)
                .with_context(|| format!("trace {} seed {seed}", trace.name))?;
            tr.runs.push((seed, run_metrics(&report), secs));
        }
        results.push(tr);
    }
    let md = markdown(&results, args, root);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let md_path = args.out.join("FIDELITY.md");
    std::fs::write(&md_path, &md).with_context(|| format!("writing {}", md_path.display()))?;
    let json_path = args.out.join("fidelity.json");
    let json = serde_json::json!({
        "commit": git_rev(root),
        "cpu": cpu_model(),
        "profile": args.profile,
        "seeds": args.seeds,
        "overrides": args.overrides,
        "traces": results.iter().map(|t| serde_json::json!({
            "name": t.name,
            "runs": t.runs.iter().map(|(seed, m, secs)| serde_json::json!({
                "seed": seed, "train_seconds": secs, "metrics": m,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    });
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)? + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    print!("{md}");
    eprintln!("wrote {} and {}", md_path.display(), json_path.display());
    Ok(())
}

fn markdown(results: &[TraceResult], args: &FidelityArgs, root: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Held-out fidelity benchmark\n");
    let _ = writeln!(
        s,
        "Commit `{}`, CPU {}, model profile `{}`, seeds {:?}{}. Made by `cargo xtask bench fidelity`.\n",
        git_rev(root),
        cpu_model(),
        args.profile,
        args.seeds,
        if args.overrides.is_empty() {
            String::new()
        } else {
            format!(", overrides {:?}", args.overrides)
        }
    );
    let _ = writeln!(
        s,
        "Each trace is split by five-tuple into a training part and an evaluation part of about \
         equal record counts. The model and the marginals sampler learn from the training part; \
         every column is judged against the evaluation part, which neither saw. real-vs-real is \
         the training part itself against the evaluation part (the floor). Cells: median over \
         seeds [min–max]. Lower is better except for rank correlations. JSD and EMD follow \
         NetShare's convention (squared JS distance, natural log; EMD on raw values).\n"
    );
    let skipped: Vec<&str> = TRACES
        .iter()
        .filter(|t| t.by_default)
        .map(|t| t.name)
        .filter(|n| results.iter().all(|r| r.name != *n))
        .collect();
    if !skipped.is_empty() {
        let _ = writeln!(
            s,
            "Not run in this invocation (no figures for them here): {}.\n",
            skipped.join(", ")
        );
    }
    for t in results {
        let _ = writeln!(s, "## {}\n", t.name);
        let secs: Vec<Option<f64>> = t.runs.iter().map(|r| Some(r.2)).collect();
        if let Some((m, lo, hi)) = summary(&secs) {
            let _ = writeln!(
                s,
                "Training time per seed (the model stage's wall time on its critical path, from its runs' manifests): \
                 median {m:.0} s [{lo:.0}–{hi:.0}].\n"
            );
        }
        let cols: Vec<(&str, &str)> = COLUMNS
            .iter()
            .copied()
            .filter(|(c, _)| t.runs.iter().any(|r| r.1.contains_key(*c)))
            .collect();
        let _ = write!(s, "| metric |");
        for (_, title) in &cols {
            let _ = write!(s, " {title} |");
        }
        let _ = write!(s, "\n|---|");
        for _ in &cols {
            let _ = write!(s, "---|");
        }
        s.push('\n');
        for m in t.metrics() {
            let _ = write!(s, "| {m} |");
            for (c, _) in &cols {
                let _ = write!(s, " {} |", cell(summary(&t.values(c, &m)), t.runs.len()));
            }
            s.push('\n');
        }
        let targets = t.targets();
        let met = targets.iter().filter(|(_, ok)| *ok).count();
        let _ = writeln!(s, "\nTargets met: {met} of {}.\n", targets.len());
        for (what, ok) in targets {
            let _ = writeln!(s, "- [{}] {what}", if ok { "x" } else { " " });
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_is_median_min_max_of_defined_values() {
        assert_eq!(
            summary(&[Some(3.0), None, Some(1.0), Some(2.0)]),
            Some((2.0, 1.0, 3.0))
        );
        assert_eq!(summary(&[Some(4.0), Some(1.0)]), Some((2.5, 1.0, 4.0)));
        assert_eq!(summary(&[None]), None);
    }

    #[test]
    fn a_rank_correlation_a_rounding_error_below_the_bound_meets_it() {
        let trace = |r: f64| {
            let mut m = RunMetrics::new();
            m.entry("synthetic".into())
                .or_default()
                .insert("classification.rank_correlation".into(), Some(r));
            TraceResult {
                name: "t".into(),
                runs: vec![(0, m, 0.0)],
            }
        };
        let met = |r: f64| {
            trace(r)
                .targets()
                .into_iter()
                .find(|(t, _)| t.starts_with("classifier rank correlation"))
                .map(|(_, ok)| ok)
        };
        // 1 - 8/20 as computed through the ranks' Pearson correlation.
        assert_eq!(met(0.5999999999999999), Some(true));
        assert_eq!(met(0.6), Some(true));
        assert_eq!(met(0.55), Some(false));
        assert_eq!(met(0.6 - 1e-6), Some(false));
    }

    #[test]
    fn every_benchmark_pipeline_is_the_shipped_one_on_its_trace() {
        let root = crate::workspace_root();
        for t in &TRACES {
            let p = pipeline_for(&root, t, "tiny").expect("builds");
            assert_eq!(p.stages.len(), 7);
            assert_eq!(
                p.stage("ingest").expect("ingest").inputs["trace"],
                format!("file:{}", t.file)
            );
            assert!(root.join(t.file).exists(), "{}", t.file);
            let eval = p.stage("eval").expect("eval");
            assert_eq!(eval.inputs["real"], "split:half-b.parquet");
            assert_eq!(eval.inputs["train"], "split:half-a.parquet");
            match t.reference {
                Some(r) => assert!(root.join(r).exists(), "{r}"),
                None => assert!(!eval.inputs.contains_key("reference-impl")),
            }
            assert_eq!(p.stage("model").expect("model").config["profile"], "tiny");
        }
    }
}
