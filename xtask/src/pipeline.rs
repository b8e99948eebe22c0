//! Pipeline files (`pipelines/<name>.toml`): which stages run, in what order, on what inputs,
//! with what config.
//!
//! ```toml
//! description = "..."
//! [[stage]]
//! id = "ingest"                      # unique within the pipeline
//! bin = "netshare-ingest"            # the stage binary
//! inputs = { trace = "file:fixtures/data/netflow/ugr16-netshare-1k.csv" }
//! config = { dialect = "auto" }
//! [[stage]]
//! id = "model"
//! bin = "netshare-model"
//! spread = ["encode"]                # every output of `encode`, each named after its file
//! inputs = { }                       # or NAME = "STAGE:OUTPUT"
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// A parsed and checked pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// One line on what the pipeline does.
    #[serde(default)]
    pub description: String,
    /// Stages in execution order.
    #[serde(rename = "stage")]
    pub stages: Vec<StageSpec>,
    /// Outputs copied to the output folder after a run, as `STAGE:OUTPUT`.
    #[serde(default)]
    pub export: Vec<String>,
    /// A fidelity regression check run by `reproduce --check`.
    #[serde(default)]
    pub check: Option<CheckSpec>,
    /// Where the stage runs execute by default: `local` (here) or `slurm` (as batch jobs).
    #[serde(default)]
    pub executor: Executor,
    /// Options of the Slurm executor (partition, time limit, CPUs and memory per job, extra
    /// `sbatch` arguments).
    #[serde(default)]
    pub slurm: crate::slurm::SlurmOptions,
    /// The pipeline's name (its file stem).
    #[serde(skip)]
    pub name: String,
    /// The folder holding the pipeline file; `file:` inputs are relative to the workspace root.
    #[serde(skip)]
    pub root: PathBuf,
}

/// Where a pipeline's store runs execute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Executor {
    /// Here: stages one after another, the model's chunks in parallel processes.
    #[default]
    Local,
    /// As Slurm batch jobs against the same store (on a shared filesystem).
    Slurm,
}

/// One stage of a pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpec {
    /// Unique id within the pipeline.
    pub id: String,
    /// The stage binary to spawn.
    pub bin: String,
    /// Named inputs: `file:PATH` or `STAGE:OUTPUT`.
    #[serde(default)]
    pub inputs: BTreeMap<String, String>,
    /// Upstream stages whose every output becomes an input named after its file.
    #[serde(default)]
    pub spread: Vec<String>,
    /// The stage config (raw; the stage validates it).
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
}

/// A regression check on a stage output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// The report to check, as `STAGE:OUTPUT`.
    pub report: String,
    /// The bounds file, relative to the workspace root.
    pub expected: String,
}

/// Where a stage input comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file outside the store (imported by content).
    File(PathBuf),
    /// An output of an earlier stage.
    Output {
        /// The upstream stage id.
        stage: String,
        /// The output file name.
        output: String,
    },
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

impl Pipeline {
    /// Loads `pipelines/<name>.toml` under `root` (or a path to a `.toml` file).
    pub fn load(root: &Path, name_or_path: &str) -> Result<Pipeline> {
        let path = if name_or_path.ends_with(".toml") {
            PathBuf::from(name_or_path)
        } else {
            root.join("pipelines").join(format!("{name_or_path}.toml"))
        };
        let text = std::fs::read_to_string(&path).with_context(|| {
            let known = list(root).unwrap_or_default().join(", ");
            format!(
                "reading pipeline {} (known pipelines: {known})",
                path.display()
            )
        })?;
        let mut p: Pipeline = toml::from_str(&text)
            .with_context(|| format!("parsing pipeline {}", path.display()))?;
        p.name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("pipeline")
            .to_string();
        p.root = root.to_path_buf();
        p.validate()
            .with_context(|| format!("checking pipeline {}", path.display()))?;
        Ok(p)
    }

    fn validate(&self) -> Result<()> {
        let mut seen = BTreeSet::new();
        for s in &self.stages {
            for (name, src) in &s.inputs {
                if let Source::Output { stage, .. } = parse_source(src)?
                    && !seen.contains(stage.as_str())
                {
                    bail!(
                        "stage {:?}: input {name:?} reads stage {stage:?}, which does not run before it",
                        s.id
                    );
                }
            }
            for up in &s.spread {
                if !seen.contains(up.as_str()) {
                    bail!(
                        "stage {:?}: spread names stage {up:?}, which does not run before it",
                        s.id
                    );
                }
            }
            if !seen.insert(s.id.as_str()) {
                bail!("two stages are named {:?}", s.id);
            }
        }
        for e in self
            .export
            .iter()
            .chain(self.check.as_ref().map(|c| &c.report))
        {
            match parse_source(e)? {
                Source::Output { stage, .. } if seen.contains(stage.as_str()) => {}
                _ => {
                    bail!("{e:?} must name an output of a stage of this pipeline, as STAGE:OUTPUT")
                }
            }
        }
        Ok(())
    }

    /// Where a `file:` input lives: as given when absolute, else under the workspace root.
    pub fn file_path(&self, rel: PathBuf) -> PathBuf {
        if rel.is_absolute() {
            rel
        } else {
            self.root.join(rel)
        }
    }

    /// The stage with an id.
    pub fn stage(&self, id: &str) -> Result<&StageSpec> {
        self.stages.iter().find(|s| s.id == id).with_context(|| {
            let ids: Vec<_> = self.stages.iter().map(|s| s.id.as_str()).collect();
            format!(
                "pipeline {} has no stage {id:?} (stages: {})",
                self.name,
                ids.join(", ")
            )
        })
    }

    /// Sets `STAGE.key.sub=VALUE` in a stage config; VALUE is JSON, or a plain string.
    pub fn apply_override(&mut self, spec: &str) -> Result<()> {
        let (path, value) = spec
            .split_once('=')
            .with_context(|| format!("--set {spec:?} is not STAGE.KEY=VALUE"))?;
        let mut parts = path.split('.');
        let stage_id = parts.next().unwrap_or_default().to_string();
        let keys: Vec<&str> = parts.collect();
        if keys.is_empty() {
            bail!("--set {spec:?} names no config key (use STAGE.KEY=VALUE)");
        }
        let value: serde_json::Value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        let name = self.name.clone();
        let stage = self
            .stages
            .iter_mut()
            .find(|s| s.id == stage_id)
            .with_context(|| {
                format!("--set {spec:?}: pipeline {name} has no stage {stage_id:?}")
            })?;
        let mut cur = &mut stage.config;
        for (i, k) in keys.iter().enumerate() {
            let obj = cur.as_object_mut().with_context(|| {
                format!("--set {spec:?}: {} is not a table", keys[..i].join("."))
            })?;
            if i + 1 == keys.len() {
                obj.insert(k.to_string(), value.clone());
                break;
            }
            cur = obj.entry(k.to_string()).or_insert_with(empty_object);
        }
        Ok(())
    }
}

/// Parses `file:PATH` or `STAGE:OUTPUT`.
pub fn parse_source(s: &str) -> Result<Source> {
    match s.split_once(':') {
        Some(("file", path)) => Ok(Source::File(PathBuf::from(path))),
        Some((stage, output)) if !stage.is_empty() && !output.is_empty() => Ok(Source::Output {
            stage: stage.to_string(),
            output: output.to_string(),
        }),
        _ => bail!("input source {s:?} is neither file:PATH nor STAGE:OUTPUT"),
    }
}

/// Names of the pipelines under `root/pipelines`.
pub fn list(root: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("pipelines"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let p = e.path();
            (p.extension()? == "toml").then(|| p.file_stem()?.to_str().map(str::to_string))?
        })
        .collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Pipeline> {
        let mut p: Pipeline = toml::from_str(text)?;
        p.name = "t".into();
        p.validate()?;
        Ok(p)
    }

    #[test]
    fn a_stage_may_only_read_stages_that_run_before_it() {
        let err = parse(
            r#"
            [[stage]]
            id = "a"
            bin = "x"
            inputs = { r = "b:out.txt" }
            [[stage]]
            id = "b"
            bin = "x"
            "#,
        )
        .expect_err("forward reference")
        .to_string();
        assert!(err.contains("does not run before it"), "{err}");
    }

    #[test]
    fn overrides_set_nested_keys_and_parse_json_values() {
        let mut p = parse(
            r#"
            [[stage]]
            id = "model"
            bin = "x"
            config = { profile = "tiny" }
            "#,
        )
        .expect("parse");
        p.apply_override("model.iterations=200").expect("set");
        p.apply_override("model.adam.lr=1e-4").expect("set");
        p.apply_override("model.profile=default").expect("set");
        assert_eq!(
            p.stages[0].config,
            serde_json::json!({"profile": "default", "iterations": 200, "adam": {"lr": 1e-4}})
        );
        assert!(p.apply_override("nosuch.x=1").is_err());
    }

    #[test]
    fn sources_parse_files_and_stage_outputs() {
        assert_eq!(
            parse_source("file:a/b.csv").expect("file"),
            Source::File("a/b.csv".into())
        );
        assert_eq!(
            parse_source("ingest:records.parquet").expect("output"),
            Source::Output {
                stage: "ingest".into(),
                output: "records.parquet".into()
            }
        );
        assert!(parse_source("nothing").is_err());
    }
}
