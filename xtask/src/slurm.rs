//! The Slurm executor: every store run that is not cached becomes a batch job calling the same
//! stage binary in store mode against the same store (which must be on a filesystem the nodes
//! share, as must the binaries). The model's chunks 1.. run as one job array after chunk 0.
//!
//! Jobs find their inputs through refs: each job records its run under a namespace private to
//! this submission (`--record-ref`), and the jobs after it name those outputs as
//! `ref:NAMESPACE/RUN:OUTPUT` inputs, read when they start. Runs whose inputs are all known
//! when the driver submits are asked for their key first (`--plan`), and cached ones are not
//! submitted, so a re-run after a failure submits only what is missing and what follows it.
//!
//! State comes from `scontrol show job` (no accounting database needed) and the store's refs:
//! `sbatch --wait` would exit 0 for a job cancelled on a failed dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use netshare_store::stage::{recorded_outputs, ref_doc};
use netshare_store::{Digest, Manifest, Store};
use serde::{Deserialize, Serialize};

use crate::driver::{StageResult, Toolchain, git_rev, ref_namespace};
use crate::pipeline::{Pipeline, Source, StageSpec, parse_source};
use crate::runs::{self, RunSpec};

/// Slurm options, from the pipeline file's `[slurm]` table and the command line.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlurmOptions {
    /// `--partition`.
    #[serde(default)]
    pub partition: Option<String>,
    /// `--time` (a job's time limit, e.g. `01:00:00`).
    #[serde(default)]
    pub time: Option<String>,
    /// `--cpus-per-task` (also each job's thread count).
    #[serde(default)]
    pub cpus_per_task: Option<u32>,
    /// `--mem` (e.g. `4G`).
    #[serde(default)]
    pub mem: Option<String>,
    /// Further `sbatch` arguments, one per entry (e.g. `--account=net`).
    #[serde(default)]
    pub sbatch_args: Vec<String>,
}

impl SlurmOptions {
    /// These options with the command line's on top.
    pub fn merged(&self, over: &SlurmOptions) -> SlurmOptions {
        SlurmOptions {
            partition: over.partition.clone().or_else(|| self.partition.clone()),
            time: over.time.clone().or_else(|| self.time.clone()),
            cpus_per_task: over.cpus_per_task.or(self.cpus_per_task),
            mem: over.mem.clone().or_else(|| self.mem.clone()),
            sbatch_args: self
                .sbatch_args
                .iter()
                .chain(&over.sbatch_args)
                .cloned()
                .collect(),
        }
    }
}

/// One submitted job (or job array), as `status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    /// The run label (`encode`, `model.chunk-000`, `model.chunks`, ...).
    pub label: String,
    /// Slurm's job id.
    pub job_id: String,
    /// For a job array: the chunk of each task id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<usize>,
    /// The ref each task records (one per task for an array).
    pub records: Vec<String>,
    /// The log file (for an array, with `%a` for the task id).
    pub log: String,
    /// The jobs it waits for (`afterok`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
}

/// A submission's record in the store (`slurm/<pipeline>/latest.json`), read by `status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Submission {
    /// The pipeline.
    pub pipeline: String,
    /// The ref namespace the jobs record their runs under.
    pub namespace: String,
    /// The jobs, in submission order.
    pub jobs: Vec<JobRecord>,
}

fn record_path(store: &Store, pipeline: &str) -> PathBuf {
    store
        .root()
        .join("slurm")
        .join(pipeline)
        .join("latest.json")
}

/// Where a value of a run's input comes from at submission time.
enum Have {
    /// Committed: its digest.
    Known(Digest),
    /// Written by a job of this submission: `ref:` value and the job it waits for.
    Later(String, String),
}

/// The submission in progress.
struct Executor<'a> {
    tc: &'a Toolchain,
    store: &'a Store,
    p: &'a Pipeline,
    opts: SlurmOptions,
    dry_run: bool,
    namespace: String,
    dir: PathBuf,
    /// Committed runs by label (a stage id or a part label).
    known: BTreeMap<String, Manifest>,
    /// Labels submitted in this submission → the job that records them.
    pending: BTreeMap<String, String>,
    jobs: Vec<JobRecord>,
    /// Stage ids found cached before anything was submitted.
    cached: BTreeSet<String>,
    fake_ids: usize,
}

/// Runs the pipeline on Slurm (or, with `dry_run`, prints the job scripts it would submit).
pub fn run(
    tc: &Toolchain,
    p: &Pipeline,
    store: &Store,
    opts: SlurmOptions,
    dry_run: bool,
) -> Result<Vec<StageResult>> {
    tc.build(&p.stages.iter().map(|s| s.bin.as_str()).collect::<Vec<_>>())?;
    if !dry_run {
        which("sbatch")?;
        which("scontrol")?;
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let sub = format!("{stamp}-{}", std::process::id());
    let namespace = format!("slurm-{}-{sub}", p.name);
    let dir = store.root().join("slurm").join(&p.name).join(&sub);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut ex = Executor {
        tc,
        store,
        p,
        opts,
        dry_run,
        namespace,
        dir,
        known: BTreeMap::new(),
        pending: BTreeMap::new(),
        jobs: Vec::new(),
        cached: BTreeSet::new(),
        fake_ids: 0,
    };
    let t0 = Instant::now();
    let outcome = ex.submit_all();
    if let Err(e) = outcome {
        if !ex.dry_run && !ex.pending.is_empty() {
            ex.cancel_all();
        }
        return Err(e);
    }
    if ex.dry_run {
        eprintln!(
            "dry run: {} job script(s) in {}; nothing was submitted",
            ex.jobs.len(),
            ex.dir.display()
        );
        return Ok(Vec::new());
    }
    ex.wait_for(None)?;
    eprintln!(
        "all {} job(s) finished in {:.1}s",
        ex.jobs.len(),
        t0.elapsed().as_secs_f64()
    );
    ex.results()
}

fn which(tool: &str) -> Result<()> {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    if !found {
        bail!(
            "--executor slurm needs `{tool}` on PATH (run on a Slurm login node, or use the local \
             executor)"
        );
    }
    Ok(())
}

fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

impl Executor<'_> {
    fn ref_of(&self, label: &str) -> String {
        format!("{}/{label}", self.namespace)
    }

    /// A committed run's outputs, or the refs its job will record.
    fn output(&self, label: &str, output: &str) -> Result<Have> {
        if let Some(m) = self.known.get(label) {
            return Ok(Have::Known(runs::output_of(m, output)?));
        }
        match self.pending.get(label) {
            Some(job) => Ok(Have::Later(
                format!("ref:{}:{output}", self.ref_of(label)),
                job.clone(),
            )),
            None => bail!("{label} has neither run nor been submitted"),
        }
    }

    /// A stage's inputs: values, `--inputs-from` refs and the jobs they wait for.
    fn stage_inputs(&self, stage: &StageSpec) -> Result<(RunSpec, BTreeSet<String>)> {
        let mut run = RunSpec {
            label: stage.id.clone(),
            bin: stage.bin.clone(),
            part: None,
            config: stage.config.clone(),
            inputs: BTreeMap::new(),
            inputs_from: Vec::new(),
        };
        let mut deps = BTreeSet::new();
        for up in &stage.spread {
            if let Some(m) = self.known.get(up) {
                for (name, o) in &m.outputs {
                    run.inputs.insert(name.clone(), o.digest.hex());
                }
            } else {
                let job = self
                    .pending
                    .get(up)
                    .with_context(|| format!("{up} has neither run nor been submitted"))?;
                run.inputs_from.push(self.ref_of(up));
                deps.insert(job.clone());
            }
        }
        for (name, src) in &stage.inputs {
            match parse_source(src)? {
                Source::File(rel) => {
                    let path = self.p.file_path(rel);
                    let d = self
                        .store
                        .put_file(&path)
                        .with_context(|| format!("importing input {name} of stage {}", stage.id))?;
                    run.inputs.insert(name.clone(), d.hex());
                }
                Source::Output { stage: up, output } => match self.output(&up, &output)? {
                    Have::Known(d) => {
                        run.inputs.insert(name.clone(), d.hex());
                    }
                    Have::Later(v, job) => {
                        run.inputs.insert(name.clone(), v);
                        deps.insert(job);
                    }
                },
            }
        }
        Ok((run, deps))
    }

    /// True when every input is a digest (so `--plan` can say whether it is cached).
    fn resolvable(run: &RunSpec) -> bool {
        run.inputs_from.is_empty() && run.inputs.values().all(|v| !v.starts_with("ref:"))
    }

    /// Marks a run committed when its key is; returns whether it was.
    fn try_cached(&mut self, run: &RunSpec) -> Result<bool> {
        if !Self::resolvable(run) {
            return Ok(false);
        }
        let planned = runs::check(self.tc, self.store, run)?;
        match planned.committed {
            Some(m) => {
                eprintln!("{:<22} cached   key {}", run.label, m.key.short());
                self.known.insert(run.label.clone(), m);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn submit_all(&mut self) -> Result<()> {
        let p = self.p;
        for stage in &p.stages {
            if runs::is_split(stage) {
                self.submit_split(stage)?;
                continue;
            }
            let (run, deps) = self.stage_inputs(stage)?;
            if self.try_cached(&run)? {
                self.cached.insert(stage.id.clone());
                continue;
            }
            let job = self.submit(&run, &deps)?;
            self.pending.insert(stage.id.clone(), job);
        }
        Ok(())
    }

    /// The model stage: the plan, chunk 0, the other chunks as one array, the gather.
    fn submit_split(&mut self, stage: &StageSpec) -> Result<()> {
        // The chunk count comes from the encoder's outputs: wait for the jobs that write them.
        let waits: Vec<String> = stage
            .spread
            .iter()
            .filter_map(|up| self.pending.get(up).cloned())
            .collect();
        if !waits.is_empty() {
            if self.dry_run {
                eprintln!(
                    "dry run: stage {} is split by chunk, and the chunk count is known only \
                     once {} has run; the scripts stop here",
                    stage.id,
                    stage.spread.join(", ")
                );
                return Ok(());
            }
            eprintln!(
                "waiting for {} before sizing the chunk array of {}",
                stage.spread.join(", "),
                stage.id
            );
            self.wait_for(Some(waits.as_slice()))?;
            for up in stage.spread.clone() {
                if self.pending.remove(&up).is_some() {
                    let m = self.manifest_from_ref(&up)?;
                    self.known.insert(up, m);
                }
            }
        }
        let (base, deps) = self.stage_inputs(stage)?;
        let chunks = runs::chunk_count(&base.inputs)?;
        let submitted_before = self.jobs.len();

        let plan = runs::plan_run(stage, &base.inputs, chunks);
        let plan_json = if self.try_cached(&plan)? {
            self.output(&plan.label, "plan.json")?
        } else {
            let job = self.submit(&plan, &deps)?;
            self.pending.insert(plan.label.clone(), job);
            self.output(&plan.label, "plan.json")?
        };
        let (plan_value, plan_dep) = have(plan_json);

        let mut deps0 = deps.clone();
        deps0.extend(plan_dep.clone());
        let c0 = runs::chunk_run(stage, &base.inputs, &plan_value, None, 0);
        if !self.try_cached(&c0)? {
            let job = self.submit(&c0, &deps0)?;
            self.pending.insert(c0.label.clone(), job);
        }
        let (c0_value, c0_dep) = have(self.output(&c0.label, &runs::chunk_name(0))?);

        let mut todo = Vec::new();
        for k in 1..chunks {
            let r = runs::chunk_run(stage, &base.inputs, &plan_value, Some(&c0_value), k);
            if !self.try_cached(&r)? {
                todo.push(r);
            }
        }
        if !todo.is_empty() {
            let mut d = deps.clone();
            d.extend(plan_dep.clone());
            d.extend(c0_dep);
            let job = self.submit_array(stage, &todo, &d)?;
            for r in &todo {
                self.pending.insert(r.label.clone(), job.clone());
            }
        }

        let mut chunk_values = Vec::new();
        let mut gdeps = BTreeSet::new();
        for k in 0..chunks {
            let (v, dep) = have(self.output(&runs::chunk_label(stage, k), &runs::chunk_name(k))?);
            chunk_values.push(v);
            gdeps.extend(dep);
        }
        gdeps.extend(plan_dep);
        let mut gather = runs::gather_run(stage, &base.inputs, &plan_value, &chunk_values);
        // The gather is recorded under the stage id: the stages after it read the model's
        // files from there.
        gather.label = stage.id.clone();
        if self.try_cached(&gather)? {
            if self.jobs.len() == submitted_before {
                self.cached.insert(stage.id.clone());
            }
            return Ok(());
        }
        let job = self.submit(&gather, &gdeps)?;
        self.pending.insert(stage.id.clone(), job);
        Ok(())
    }

    fn header(&self, label: &str, deps: &BTreeSet<String>, array: Option<&[usize]>) -> String {
        let mut s = String::from("#!/bin/bash\n");
        let _ = writeln!(
            s,
            "#SBATCH --job-name={}",
            quote(&format!("ns-{}-{label}", self.p.name))
        );
        let log = self.log_pattern(label, array.is_some());
        let _ = writeln!(s, "#SBATCH --output={}", quote(&log));
        let _ = writeln!(s, "#SBATCH --kill-on-invalid-dep=yes");
        if let Some(tasks) = array {
            let list: Vec<String> = tasks.iter().map(|t| t.to_string()).collect();
            let _ = writeln!(s, "#SBATCH --array={}", list.join(","));
        }
        if !deps.is_empty() {
            let ids: Vec<&str> = deps.iter().map(String::as_str).collect();
            let _ = writeln!(s, "#SBATCH --dependency=afterok:{}", ids.join(":"));
        }
        let o = &self.opts;
        if let Some(v) = &o.partition {
            let _ = writeln!(s, "#SBATCH --partition={}", quote(v));
        }
        if let Some(v) = &o.time {
            let _ = writeln!(s, "#SBATCH --time={}", quote(v));
        }
        if let Some(v) = o.cpus_per_task {
            let _ = writeln!(s, "#SBATCH --cpus-per-task={v}");
        }
        if let Some(v) = &o.mem {
            let _ = writeln!(s, "#SBATCH --mem={}", quote(v));
        }
        for a in &o.sbatch_args {
            let _ = writeln!(s, "#SBATCH {}", quote(a));
        }
        s.push_str("set -euo pipefail\n");
        let _ = writeln!(s, "cd {}", quote(&self.tc.root.display().to_string()));
        if let Some(rev) = git_rev(&self.tc.root) {
            let _ = writeln!(s, "export NETSHARE_GIT_REV={}", quote(&rev));
        }
        s.push_str(
            "if [ -n \"${SLURM_CPUS_PER_TASK:-}\" ]; then export RAYON_NUM_THREADS=$SLURM_CPUS_PER_TASK; fi\n",
        );
        s
    }

    fn command_line(&self, run: &RunSpec) -> String {
        let mut parts = vec![quote(&self.tc.bin_path(&run.bin).display().to_string())];
        parts.extend(run.args(self.store).iter().map(|a| quote(a)));
        parts.push("--record-ref".into());
        parts.push(quote(&self.ref_of(&run.label)));
        parts.join(" ")
    }

    fn submit(&mut self, run: &RunSpec, deps: &BTreeSet<String>) -> Result<String> {
        let mut script = self.header(&run.label, deps, None);
        let _ = writeln!(script, "exec {}", self.command_line(run));
        let job = self.sbatch(&run.label, &script, deps)?;
        self.record(JobRecord {
            label: run.label.clone(),
            job_id: job.clone(),
            tasks: Vec::new(),
            records: vec![self.ref_of(&run.label)],
            after: deps.iter().cloned().collect(),
            log: self.log_pattern(&run.label, false),
        })?;
        Ok(job)
    }

    /// Slurm's `--output` pattern of a job's log (`%j`, or `%A_%a` for an array's tasks).
    fn log_pattern(&self, label: &str, array: bool) -> String {
        let name = if array {
            format!("{label}-%A_%a.log")
        } else {
            format!("{label}-%j.log")
        };
        self.dir.join(name).display().to_string()
    }

    /// Adds a submitted job to the submission's record (saved for `status`).
    fn record(&mut self, job: JobRecord) -> Result<()> {
        self.jobs.push(job);
        if self.dry_run {
            return Ok(());
        }
        self.save()
    }

    /// One job array for several chunk runs: task K runs chunk K.
    fn submit_array(
        &mut self,
        stage: &StageSpec,
        runs_: &[RunSpec],
        deps: &BTreeSet<String>,
    ) -> Result<String> {
        let tasks: Vec<usize> = runs_
            .iter()
            .map(|r| {
                r.config["chunk"]
                    .as_u64()
                    .expect("chunk runs carry their chunk") as usize
            })
            .collect();
        let label = format!("{}.chunks", stage.id);
        let mut script = self.header(&label, deps, Some(&tasks));
        script.push_str("case \"$SLURM_ARRAY_TASK_ID\" in\n");
        for (t, r) in tasks.iter().zip(runs_) {
            let _ = writeln!(script, "  {t}) exec {} ;;", self.command_line(r));
        }
        script.push_str(
            "  *) echo \"task $SLURM_ARRAY_TASK_ID is no chunk of this array\" >&2; exit 2 ;;\nesac\n",
        );
        let job = self.sbatch(&label, &script, deps)?;
        self.record(JobRecord {
            log: self.log_pattern(&label, true),
            label,
            job_id: job.clone(),
            tasks,
            records: runs_.iter().map(|r| self.ref_of(&r.label)).collect(),
            after: deps.iter().cloned().collect(),
        })?;
        Ok(job)
    }

    fn sbatch(&mut self, label: &str, script: &str, deps: &BTreeSet<String>) -> Result<String> {
        let path = self.dir.join(format!("{label}.sh"));
        std::fs::write(&path, script).with_context(|| format!("writing {}", path.display()))?;
        if self.dry_run {
            self.fake_ids += 1;
            let id = format!("JOB{}", self.fake_ids);
            println!("# {label}: would be submitted as {id} ({})", path.display());
            println!("{script}");
            return Ok(id);
        }
        let out = Command::new("sbatch")
            .arg("--parsable")
            .arg(&path)
            .output()
            .context("running sbatch")?;
        if !out.status.success() {
            bail!(
                "sbatch refused {label} ({}): {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let id = text
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
            bail!("sbatch printed no job id for {label}: {text:?}");
        }
        let after = if deps.is_empty() {
            String::new()
        } else {
            format!(
                " after {}",
                deps.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        eprintln!("{label:<22} submitted job {id}{after}");
        Ok(id)
    }

    fn save(&self) -> Result<()> {
        let rec = Submission {
            pipeline: self.p.name.clone(),
            namespace: self.namespace.clone(),
            jobs: self.jobs.clone(),
        };
        let path = record_path(self.store, &self.p.name);
        let text = serde_json::to_string_pretty(&rec)?;
        // Two drivers of one pipeline may share a store: each writes its own temporary file,
        // and the last rename wins.
        let tmp = path.with_extension(format!("json.{}.partial", std::process::id()));
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    fn manifest_from_ref(&self, label: &str) -> Result<Manifest> {
        let doc = self
            .store
            .read_ref(&self.namespace, label)?
            .with_context(|| format!("the job of {label} finished but recorded no run"))?;
        let key: Digest = doc["key"].as_str().unwrap_or_default().parse()?;
        self.store
            .read_manifest(&key)?
            .with_context(|| format!("{label}'s run {} has no manifest in the store", key.short()))
    }

    /// Waits until the given jobs (all of this submission's when `None`) have ended; fails,
    /// cancelling the rest, when one did not complete.
    fn wait_for(&mut self, only: Option<&[String]>) -> Result<()> {
        let watched: Vec<JobRecord> = self
            .jobs
            .iter()
            .filter(|j| only.is_none_or(|o| o.contains(&j.job_id)))
            .cloned()
            .collect();
        let mut last_report = Instant::now();
        loop {
            let mut open = 0;
            let mut failure = None;
            for j in &watched {
                for (task, state) in job_states(&j.job_id)? {
                    match classify(&state) {
                        Ended::Running => open += 1,
                        Ended::Completed => {}
                        Ended::Failed => {
                            failure.get_or_insert((j.clone(), task, state));
                        }
                    }
                }
            }
            if let Some((j, task, state)) = failure {
                self.cancel_dependents(&j.job_id);
                return Err(self.failure_message(&j, task, &state));
            }
            if open == 0 {
                return Ok(());
            }
            if last_report.elapsed() > Duration::from_secs(30) {
                eprintln!("waiting for {open} Slurm job(s) or task(s)");
                last_report = Instant::now();
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    fn failure_message(&self, j: &JobRecord, task: Option<usize>, state: &str) -> anyhow::Error {
        let (what, id, log) = match task {
            Some(t) => (
                format!("{} chunk {t}", j.label.trim_end_matches(".chunks")),
                format!("{}_{t}", j.job_id),
                j.log.replace("%A", &j.job_id).replace("%a", &t.to_string()),
            ),
            None => (
                j.label.clone(),
                j.job_id.clone(),
                j.log.replace("%j", &j.job_id),
            ),
        };
        let tail = std::fs::read_to_string(&log)
            .map(|t| {
                // A Rust backtrace says nothing a user can act on; the error is above it.
                let lines: Vec<&str> = t
                    .lines()
                    .take_while(|l| !l.starts_with("Stack backtrace"))
                    .filter(|l| !l.trim().is_empty())
                    .collect();
                lines[lines.len().saturating_sub(20)..].join("\n")
            })
            .unwrap_or_else(|e| format!("(its log could not be read: {e})"));
        anyhow::anyhow!(
            "{what} did not complete on Slurm: job {id} ended {state}; the jobs that depend on it \
             were cancelled, so nothing downstream ran (the others finish and stay in the \
             store; a re-run submits only what is missing). The last lines of its log \
             ({log}):\n{tail}"
        )
    }

    /// Cancels the jobs that wait, directly or not, for `failed` (Slurm cancels them too when
    /// `kill_invalid_depend` is set; without it they would pend forever). Jobs that do not
    /// depend on it are left to finish: their runs land in the store for the re-run.
    fn cancel_dependents(&self, failed: &str) {
        let mut doomed: BTreeSet<&str> = BTreeSet::from([failed]);
        loop {
            let before = doomed.len();
            for j in &self.jobs {
                if j.after.iter().any(|a| doomed.contains(a.as_str())) {
                    doomed.insert(j.job_id.as_str());
                }
            }
            if doomed.len() == before {
                break;
            }
        }
        doomed.remove(failed);
        if !doomed.is_empty() {
            let _ = Command::new("scancel").args(&doomed).status();
        }
    }

    fn cancel_all(&self) {
        let ids: Vec<&str> = self.jobs.iter().map(|j| j.job_id.as_str()).collect();
        if ids.is_empty() {
            return;
        }
        let _ = Command::new("scancel").args(&ids).status();
    }

    /// Every stage's committed run, in pipeline order; the pipeline's refs are updated as a
    /// local run updates them.
    fn results(&self) -> Result<Vec<StageResult>> {
        let mut out = Vec::new();
        for stage in &self.p.stages {
            let manifest = match self.known.get(&stage.id) {
                Some(m) => m.clone(),
                None => self.manifest_from_ref(&stage.id)?,
            };
            let wall_seconds = if runs::is_split(stage) {
                self.split_wall(stage)
            } else {
                manifest.provenance.wall_seconds
            };
            self.store
                .write_ref(&ref_namespace(self.p), &stage.id, &ref_doc(&manifest))?;
            out.push(StageResult {
                id: stage.id.clone(),
                cached: self.cached.contains(&stage.id),
                manifest,
                wall_seconds,
            });
        }
        Ok(out)
    }

    /// The split stage's critical path from its parts' manifests (0 for parts not found).
    fn split_wall(&self, stage: &StageSpec) -> f64 {
        let wall = |label: &str| -> f64 {
            self.known
                .get(label)
                .cloned()
                .or_else(|| self.manifest_from_ref(label).ok())
                .map_or(0.0, |m| m.provenance.wall_seconds)
        };
        let mut later = 0.0f64;
        let mut k = 1;
        loop {
            let label = runs::chunk_label(stage, k);
            if !self.known.contains_key(&label) && !self.pending.contains_key(&label) {
                break;
            }
            later = later.max(wall(&label));
            k += 1;
        }
        wall(&runs::part_label(stage, "plan"))
            + wall(&runs::chunk_label(stage, 0))
            + later
            + wall(&stage.id)
    }
}

fn have(h: Have) -> (String, Option<String>) {
    match h {
        Have::Known(d) => (d.hex(), None),
        Have::Later(v, job) => (v, Some(job)),
    }
}

enum Ended {
    Running,
    Completed,
    Failed,
}

fn classify(state: &str) -> Ended {
    match state {
        "COMPLETED" => Ended::Completed,
        "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "SUSPENDED" | "REQUEUED"
        | "RESIZING" | "SIGNALING" | "STAGE_OUT" => Ended::Running,
        _ => Ended::Failed,
    }
}

/// The state of a job, or of each task of a job array (`scontrol show job -o`). A pending job
/// whose dependency can never be met is reported as `DEPENDENCY_NEVER_SATISFIED`.
pub fn job_states(job: &str) -> Result<Vec<(Option<usize>, String)>> {
    let out = Command::new("scontrol")
        .args(["show", "job", "-o", job])
        .output()
        .context("running scontrol")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!(
            "scontrol knows no job {job} ({}); set MinJobAge in slurm.conf high enough that \
             finished jobs stay listed while a pipeline runs",
            err.trim()
        );
    }
    let mut states = parse_states(&String::from_utf8_lossy(&out.stdout));
    states.sort();
    Ok(states)
}

/// Job states from `scontrol show job -o` output: one line per job, or per task of an array
/// (with `ArrayTaskId`; a line for tasks not started yet holds a range and gives no task).
fn parse_states(text: &str) -> Vec<(Option<usize>, String)> {
    let mut states = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let fields: BTreeMap<&str, &str> = line
            .split_whitespace()
            .filter_map(|f| f.split_once('='))
            .collect();
        let task = fields
            .get("ArrayTaskId")
            .and_then(|t| t.parse::<usize>().ok());
        let mut state = fields
            .get("JobState")
            .copied()
            .unwrap_or("UNKNOWN")
            .to_string();
        if state == "PENDING" && fields.get("Reason") == Some(&"DependencyNeverSatisfied") {
            state = "DEPENDENCY_NEVER_SATISFIED".into();
        }
        states.push((task, state));
    }
    states
}

/// `status`: the jobs of the pipeline's latest Slurm submission and their states.
pub fn print_status(store: &Store, pipeline: &str) -> Result<()> {
    let path = record_path(store, pipeline);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let sub: Submission =
        serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    println!("  latest Slurm submission ({}):", sub.namespace);
    for j in &sub.jobs {
        let states = match job_states(&j.job_id) {
            Ok(s) => s
                .iter()
                .map(|(t, s)| match t {
                    Some(t) => format!("{}_{t} {s}", j.job_id),
                    None => s.clone(),
                })
                .collect::<Vec<_>>()
                .join(", "),
            Err(_) => {
                let recorded = j
                    .records
                    .iter()
                    .filter(|r| {
                        r.split_once('/')
                            .is_some_and(|(ns, run)| recorded_outputs(store, ns, run).is_ok())
                    })
                    .count();
                format!(
                    "no longer listed by scontrol; {recorded} of {} run(s) recorded in the store",
                    j.records.len()
                )
            }
        };
        println!("    {:<16} job {:<8} {states}", j.label, j.job_id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scontrol_lines_give_each_task_its_state() {
        // Shaped like `scontrol show job -o` of Slurm 22.05 (fields trimmed).
        let text = "JobId=19 ArrayJobId=18 ArrayTaskId=2 JobName=ns-t-model.chunks JobState=COMPLETED Reason=None\n\
                    JobId=18 ArrayJobId=18 ArrayTaskId=1 JobName=ns-t-model.chunks JobState=FAILED Reason=NonZeroExitCode\n\
                    JobId=20 ArrayJobId=20 ArrayTaskId=3-5 JobState=PENDING Reason=Dependency\n\
                    JobId=21 JobName=ns-t-model JobState=PENDING Reason=DependencyNeverSatisfied\n";
        assert_eq!(
            parse_states(text),
            vec![
                (Some(2), "COMPLETED".to_string()),
                (Some(1), "FAILED".to_string()),
                (None, "PENDING".to_string()),
                (None, "DEPENDENCY_NEVER_SATISFIED".to_string()),
            ]
        );
        assert!(matches!(classify("COMPLETED"), Ended::Completed));
        assert!(matches!(classify("PENDING"), Ended::Running));
        for bad in [
            "FAILED",
            "CANCELLED",
            "TIMEOUT",
            "OUT_OF_MEMORY",
            "DEPENDENCY_NEVER_SATISFIED",
        ] {
            assert!(matches!(classify(bad), Ended::Failed), "{bad}");
        }
    }

    #[test]
    fn shell_words_are_quoted_only_when_needed() {
        assert_eq!(quote("/a/b-c_d.e"), "/a/b-c_d.e");
        assert_eq!(quote(r#"{"chunk":1}"#), r#"'{"chunk":1}'"#);
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn command_line_options_add_to_the_pipeline_files() {
        let file = SlurmOptions {
            partition: Some("cpu".into()),
            mem: Some("4G".into()),
            sbatch_args: vec!["--account=a".into()],
            ..SlurmOptions::default()
        };
        let cli = SlurmOptions {
            mem: Some("8G".into()),
            sbatch_args: vec!["--qos=b".into()],
            ..SlurmOptions::default()
        };
        let m = file.merged(&cli);
        assert_eq!(m.partition.as_deref(), Some("cpu"));
        assert_eq!(m.mem.as_deref(), Some("8G"));
        assert_eq!(m.sbatch_args, vec!["--account=a", "--qos=b"]);
    }
}
