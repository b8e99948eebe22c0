//! Running pipelines: building the stage binaries, resolving inputs to content digests,
//! spawning each stage in store mode, recording what ran, and explaining what would run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use netshare_store::stage::ref_doc;
use netshare_store::{Digest, Manifest, Store};

use crate::pipeline::{Pipeline, Source, StageSpec, parse_source};
use crate::runs::{self, RunSpec};

/// How the driver builds and finds stage binaries.
#[derive(Debug, Clone)]
pub struct Toolchain {
    /// Workspace root.
    pub root: PathBuf,
    /// Cargo profile for the stage binaries (`release` or `dev`).
    pub profile: String,
    /// Skip `cargo build` (binaries already built).
    pub no_build: bool,
}

impl Toolchain {
    fn target_dir(&self) -> PathBuf {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.root.join("target"))
    }

    /// The path of a built stage binary.
    pub fn bin_path(&self, bin: &str) -> PathBuf {
        let dir = if self.profile == "dev" {
            "debug"
        } else {
            self.profile.as_str()
        };
        self.target_dir().join(dir).join(bin)
    }

    /// Builds the named binaries once (cargo decides what is stale).
    pub fn build(&self, bins: &[&str]) -> Result<()> {
        if self.no_build {
            for b in bins {
                let path = self.bin_path(b);
                if !path.is_file() {
                    bail!(
                        "--no-build, but {} is not built (build it with `cargo build --profile {} --bin {b}`, \
                         or run `cargo test --workspace` for the dev profile)",
                        path.display(),
                        self.profile
                    );
                }
            }
            return Ok(());
        }
        // Cargo's own progress is shown: a first build takes many minutes, and a silent one
        // looks hung.
        eprintln!(
            "building the stage binaries ({} profile; nothing to do when they are up to date, \
             a first build takes tens of minutes on 2 cores)",
            self.profile
        );
        let t0 = std::time::Instant::now();
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(&self.root)
            .args(["build", "--profile", &self.profile]);
        let mut uniq: Vec<&str> = bins.to_vec();
        uniq.sort_unstable();
        uniq.dedup();
        for b in uniq {
            cmd.args(["--bin", b]);
        }
        let status = cmd
            .status()
            .context("running cargo build for the stage binaries")?;
        if !status.success() {
            bail!("cargo build of the stage binaries failed ({status})");
        }
        eprintln!("stage binaries ready in {:.1}s", t0.elapsed().as_secs_f64());
        Ok(())
    }
}

/// What happened to one stage in a run.
#[derive(Debug, Clone)]
pub struct StageResult {
    /// The stage id.
    pub id: String,
    /// Its committed manifest.
    pub manifest: Manifest,
    /// Whether it was a cache hit.
    pub cached: bool,
    /// Its wall time when it ran (from the manifests; for the split model stage, along the
    /// critical path: plan, chunk 0, the slowest later chunk, gather).
    pub wall_seconds: f64,
}

/// The checked-out commit, when `root` is a git checkout.
pub fn git_rev(root: &Path) -> Option<String> {
    let out = Command::new("git")
        .current_dir(root)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub(crate) fn ref_namespace(p: &Pipeline) -> String {
    format!("pipeline-{}", p.name)
}

/// Resolves a stage's inputs to digests. `import` stores `file:` inputs; otherwise they are only hashed.
pub(crate) fn resolve_inputs(
    p: &Pipeline,
    stage: &StageSpec,
    store: &Store,
    done: &BTreeMap<String, Manifest>,
    import: bool,
) -> Result<std::result::Result<BTreeMap<String, Digest>, String>> {
    let mut inputs = BTreeMap::new();
    for up in &stage.spread {
        let Some(m) = done.get(up) else {
            return Ok(Err(up.clone()));
        };
        for (name, out) in &m.outputs {
            inputs.insert(name.clone(), out.digest);
        }
    }
    for (name, src) in &stage.inputs {
        let digest = match parse_source(src)? {
            Source::File(rel) => {
                let path = p.file_path(rel);
                if import {
                    store
                        .put_file(&path)
                        .with_context(|| format!("importing input {name} of stage {}", stage.id))?
                } else {
                    Digest::of_file(&path)
                        .with_context(|| format!("hashing input {name} of stage {}", stage.id))?
                }
            }
            Source::Output { stage: up, output } => {
                let Some(m) = done.get(&up) else {
                    return Ok(Err(up));
                };
                m.outputs
                    .get(&output)
                    .with_context(|| {
                        let have: Vec<_> = m.outputs.keys().cloned().collect();
                        format!(
                            "stage {up} has no output {output:?} (it wrote {})",
                            have.join(", ")
                        )
                    })?
                    .digest
            }
        };
        inputs.insert(name.clone(), digest);
    }
    Ok(Ok(inputs))
}

fn stage_command(
    tc: &Toolchain,
    store: &Store,
    stage: &StageSpec,
    inputs: &BTreeMap<String, Digest>,
) -> Command {
    RunSpec::whole(stage, inputs).command(tc, store)
}

/// Validates every stage's config (each binary's `--plan`, which needs no inputs for that)
/// before anything runs, so a bad value fails at once rather than after the stages before it.
fn check_configs(tc: &Toolchain, store: &Store, stages: &[&StageSpec]) -> Result<()> {
    for stage in stages {
        let out = stage_command(tc, store, stage, &BTreeMap::new())
            .arg("--plan")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("spawning {} --plan", tc.bin_path(&stage.bin).display()))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let message: Vec<&str> = err
                .lines()
                .take_while(|l| !l.starts_with("Stack backtrace"))
                .filter(|l| !l.trim().is_empty())
                .collect();
            bail!(
                "stage {} ({}) refuses its config, so nothing was run:\n{}",
                stage.id,
                stage.bin,
                message.join("\n")
            );
        }
    }
    Ok(())
}

/// Runs the pipeline's stages in order (all of them, or up to and including `until`).
pub fn run(
    tc: &Toolchain,
    p: &Pipeline,
    store: &Store,
    until: Option<&str>,
) -> Result<Vec<StageResult>> {
    let stages: Vec<&StageSpec> = match until {
        Some(id) => {
            p.stage(id)?;
            let idx = p
                .stages
                .iter()
                .position(|s| s.id == id)
                .expect("p.stage found it");
            p.stages[..=idx].iter().collect()
        }
        None => p.stages.iter().collect(),
    };
    tc.build(&stages.iter().map(|s| s.bin.as_str()).collect::<Vec<_>>())?;
    check_configs(tc, store, &stages)?;
    let mut done: BTreeMap<String, Manifest> = BTreeMap::new();
    let mut results = Vec::new();
    for stage in stages {
        let inputs = resolve_inputs(p, stage, store, &done, true)?
            .map_err(|up| anyhow::anyhow!("stage {} needs {up}, which has not run", stage.id))?;
        let t0 = Instant::now();
        let (run, cached, wall_seconds) = if runs::is_split(stage) {
            runs::exec_split(tc, store, stage, &inputs)
                .with_context(|| format!("stage {} ({})", stage.id, stage.bin))?
        } else {
            let d = runs::exec(tc, store, &RunSpec::whole(stage, &inputs))?;
            let wall = d.manifest.provenance.wall_seconds;
            let cached = d.cached;
            (d, cached, wall)
        };
        let manifest = run.manifest;
        store.write_ref(&ref_namespace(p), &stage.id, &ref_doc(&manifest))?;
        if runs::is_split(stage) {
            runs::print_line(
                &stage.id,
                &runs::Done {
                    manifest: manifest.clone(),
                    cached,
                },
                t0.elapsed().as_secs_f64(),
            );
        }
        done.insert(stage.id.clone(), manifest.clone());
        results.push(StageResult {
            id: stage.id.clone(),
            manifest,
            cached,
            wall_seconds,
        });
    }
    Ok(results)
}

/// Copies the pipeline's exported outputs into `out_dir`.
pub fn export(
    p: &Pipeline,
    store: &Store,
    results: &[StageResult],
    out_dir: &Path,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut written = Vec::new();
    for e in &p.export {
        let Source::Output { stage, output } = parse_source(e)? else {
            continue;
        };
        let Some(r) = results.iter().find(|r| r.id == stage) else {
            continue;
        };
        let Some(entry) = r.manifest.outputs.get(&output) else {
            eprintln!("note: stage {stage} wrote no {output}; nothing exported for it");
            continue;
        };
        let dst = out_dir.join(&output);
        std::fs::copy(store.blob_path(&entry.digest), &dst)
            .with_context(|| format!("copying {e} to {}", dst.display()))?;
        written.push(dst);
    }
    Ok(written)
}

/// The state of one stage, as `status` explains it.
#[derive(Debug, Clone, PartialEq)]
pub enum StageState {
    /// Its key is committed.
    Cached {
        /// The run key.
        key: Digest,
    },
    /// It ran before with other inputs, config or version.
    Stale {
        /// What changed since the last run.
        reasons: Vec<String>,
    },
    /// It never ran in this pipeline.
    Missing,
    /// Its inputs depend on an upstream stage that must run first.
    Waiting {
        /// The upstream stage.
        upstream: String,
    },
}

/// Works out, without running anything, which stages are cached, stale or missing, and why.
pub fn status(tc: &Toolchain, p: &Pipeline, store: &Store) -> Result<Vec<(String, StageState)>> {
    tc.build(&p.stages.iter().map(|s| s.bin.as_str()).collect::<Vec<_>>())?;
    let mut done: BTreeMap<String, Manifest> = BTreeMap::new();
    let mut out = Vec::new();
    for stage in &p.stages {
        let inputs = match resolve_inputs(p, stage, store, &done, false)? {
            Ok(i) => i,
            Err(upstream) => {
                out.push((stage.id.clone(), StageState::Waiting { upstream }));
                continue;
            }
        };
        let planned = if runs::is_split(stage) {
            match runs::split_status(tc, store, stage, &inputs)? {
                Ok(p) => p,
                Err(reasons) => {
                    let state = match store.read_ref(&ref_namespace(p), &stage.id)? {
                        None => StageState::Missing,
                        Some(_) => StageState::Stale { reasons },
                    };
                    out.push((stage.id.clone(), state));
                    continue;
                }
            }
        } else {
            runs::check(tc, store, &RunSpec::whole(stage, &inputs))?
        };
        if let Some(m) = planned.committed {
            out.push((stage.id.clone(), StageState::Cached { key: m.key }));
            done.insert(stage.id.clone(), m);
            continue;
        }
        let state = match store.read_ref(&ref_namespace(p), &stage.id)? {
            None => StageState::Missing,
            Some(last) => StageState::Stale {
                reasons: explain_change(&last, &planned.doc),
            },
        };
        out.push((stage.id.clone(), state));
    }
    Ok(out)
}

/// Says what differs between the last recorded run and the planned one.
pub fn explain_change(last: &serde_json::Value, plan: &serde_json::Value) -> Vec<String> {
    let mut reasons = Vec::new();
    if last["stage_version"] != plan["stage_version"] {
        reasons.push(format!(
            "stage version {} -> {}",
            last["stage_version"], plan["stage_version"]
        ));
    }
    let empty = serde_json::Map::new();
    let (li, pi) = (
        last["inputs"].as_object().unwrap_or(&empty),
        plan["inputs"].as_object().unwrap_or(&empty),
    );
    let names: std::collections::BTreeSet<&String> = li.keys().chain(pi.keys()).collect();
    for n in names {
        match (li.get(n), pi.get(n)) {
            (Some(a), Some(b)) if a != b => reasons.push(format!(
                "input {n} changed content ({} -> {})",
                short(a),
                short(b)
            )),
            (Some(_), None) => reasons.push(format!("input {n} removed")),
            (None, Some(_)) => reasons.push(format!("input {n} added")),
            _ => {}
        }
    }
    diff_json("config", &last["config"], &plan["config"], &mut reasons);
    if reasons.is_empty() {
        reasons.push("its last run's outputs are no longer in the store".into());
    }
    reasons
}

fn short(v: &serde_json::Value) -> String {
    v.as_str()
        .map(|s| s.chars().take(12).collect())
        .unwrap_or_else(|| v.to_string())
}

fn diff_json(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
    match (a, b) {
        (serde_json::Value::Object(x), serde_json::Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let null = serde_json::Value::Null;
                diff_json(
                    &format!("{path}.{k}"),
                    x.get(k).unwrap_or(&null),
                    y.get(k).unwrap_or(&null),
                    out,
                );
            }
        }
        _ if a != b => out.push(format!("{path} changed: {a} -> {b}")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explain_change_names_changed_inputs_and_config_keys() {
        let last = serde_json::json!({
            "stage_version": 1,
            "inputs": {"records": "aaaaaaaaaaaaaaaa", "old": "x"},
            "config": {"seed": 0, "model": {"iterations": 100}}
        });
        let plan = serde_json::json!({
            "stage_version": 1,
            "inputs": {"records": "bbbbbbbbbbbbbbbb"},
            "config": {"seed": 0, "model": {"iterations": 200}}
        });
        let r = explain_change(&last, &plan);
        assert_eq!(
            r,
            vec![
                "input old removed".to_string(),
                "input records changed content (aaaaaaaaaaaa -> bbbbbbbbbbbb)".to_string(),
                "config.model.iterations changed: 100 -> 200".to_string(),
            ]
        );
    }
}
