//! Store runs as the executors see them: one stage binary (or one part of the model stage),
//! its config and its inputs, turned into a command line; running them here, one at a time or
//! several at once; and the model stage's split into a plan, one run per chunk and a gather.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use netshare_store::{Digest, Manifest, Store};

use crate::driver::Toolchain;
use crate::pipeline::StageSpec;

/// One store run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// How the run is named in messages, refs and job names: the stage id, or `STAGE.plan`,
    /// `STAGE.chunk-NNN`, `STAGE.gather` for the model stage's parts.
    pub label: String,
    /// The stage binary.
    pub bin: String,
    /// The model stage's part (`plan`, `chunk`, `gather`), if this is one.
    pub part: Option<&'static str>,
    /// The raw stage config.
    pub config: serde_json::Value,
    /// Inputs as `NAME` → a digest (hex) or `ref:NAMESPACE/RUN:OUTPUT`.
    pub inputs: BTreeMap<String, String>,
    /// Recorded runs whose every output is an input (`NAMESPACE/RUN`).
    pub inputs_from: Vec<String>,
}

impl RunSpec {
    /// A whole stage on resolved inputs.
    pub fn whole(stage: &StageSpec, inputs: &BTreeMap<String, Digest>) -> RunSpec {
        RunSpec {
            label: stage.id.clone(),
            bin: stage.bin.clone(),
            part: None,
            config: stage.config.clone(),
            inputs: hex_inputs(inputs),
            inputs_from: Vec::new(),
        }
    }

    /// The arguments after the binary: store mode, the store, the config and the inputs.
    pub fn args(&self, store: &Store) -> Vec<String> {
        let mut a = vec![
            "store".to_string(),
            "--store".to_string(),
            store.root().display().to_string(),
            "--config-json".to_string(),
            self.config.to_string(),
        ];
        if let Some(part) = self.part {
            a.extend(["--part".to_string(), part.to_string()]);
        }
        for from in &self.inputs_from {
            a.extend(["--inputs-from".to_string(), from.clone()]);
        }
        for (name, value) in &self.inputs {
            a.extend(["--input".to_string(), format!("{name}={value}")]);
        }
        a
    }

    /// The command that runs it here.
    pub fn command(&self, tc: &Toolchain, store: &Store) -> Command {
        let mut cmd = Command::new(tc.bin_path(&self.bin));
        cmd.current_dir(&tc.root).args(self.args(store));
        cmd
    }
}

/// Digests as input values.
pub fn hex_inputs(inputs: &BTreeMap<String, Digest>) -> BTreeMap<String, String> {
    inputs.iter().map(|(k, v)| (k.clone(), v.hex())).collect()
}

/// What a finished run printed: its manifest and whether it was a cache hit.
#[derive(Debug, Clone)]
pub struct Done {
    /// The committed manifest.
    pub manifest: Manifest,
    /// True when the key was already committed.
    pub cached: bool,
}

impl Done {
    /// The digest of a named output.
    pub fn output(&self, name: &str) -> Result<Digest> {
        output_of(&self.manifest, name)
    }
}

/// The digest of a named output of a committed run.
pub fn output_of(m: &Manifest, name: &str) -> Result<Digest> {
    m.outputs.get(name).map(|o| o.digest).with_context(|| {
        format!(
            "run {} ({}) wrote no {name} (it wrote {})",
            m.key.short(),
            m.stage,
            m.outputs.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })
}

/// Parses a run's stdout (its manifest plus `cached`).
pub fn parse_done(label: &str, stdout: &[u8]) -> Result<Done> {
    let mut doc: serde_json::Value = serde_json::from_slice(stdout)
        .with_context(|| format!("run {label} printed no manifest JSON on stdout"))?;
    let cached = doc.get("cached").and_then(|v| v.as_bool()).unwrap_or(false);
    if let Some(obj) = doc.as_object_mut() {
        obj.remove("cached");
    }
    let manifest: Manifest = serde_json::from_value(doc)
        .with_context(|| format!("run {label} printed a malformed manifest"))?;
    Ok(Done { manifest, cached })
}

fn spawn(tc: &Toolchain, store: &Store, run: &RunSpec, env: &[(&str, String)]) -> Result<Child> {
    let mut cmd = run.command(tc, store);
    if let Some(rev) = crate::driver::git_rev(&tc.root) {
        cmd.env("NETSHARE_GIT_REV", rev);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("spawning {}", tc.bin_path(&run.bin).display()))
}

fn finish(run: &RunSpec, child: Child, t0: Instant) -> Result<Done> {
    let out = child
        .wait_with_output()
        .with_context(|| format!("waiting for run {}", run.label))?;
    if !out.status.success() {
        bail!(
            "{} ({}) failed with {}; its messages are above",
            run.label,
            run.bin,
            out.status
        );
    }
    let done = parse_done(&run.label, &out.stdout)?;
    print_line(&run.label, &done, t0.elapsed().as_secs_f64());
    Ok(done)
}

/// One line per run on stderr: label, ran or cached, seconds, key, summary.
pub fn print_line(label: &str, done: &Done, seconds: f64) {
    eprintln!(
        "{:<22} {:<8} {:>8.2}s  key {}  {}",
        label,
        if done.cached { "cached" } else { "ran" },
        seconds,
        done.manifest.key.short(),
        summary_line(&done.manifest.summary)
    );
}

fn summary_line(summary: &serde_json::Value) -> String {
    match summary {
        serde_json::Value::Object(map) => map
            .iter()
            .filter(|(_, v)| v.is_number() || v.is_string() || v.is_boolean())
            .take(6)
            .map(|(k, v)| format!("{k}={}", v.to_string().trim_matches('"')))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// Runs one store run here and waits for it.
pub fn exec(tc: &Toolchain, store: &Store, run: &RunSpec) -> Result<Done> {
    let t0 = Instant::now();
    let child = spawn(tc, store, run, &[])?;
    finish(run, child, t0)
}

/// Runs store runs here, at most `parallel` at once, each process with its share of the cores
/// (the bytes do not depend on the thread count). Results in the order of `runs`.
pub fn exec_many(
    tc: &Toolchain,
    store: &Store,
    runs: &[RunSpec],
    parallel: usize,
) -> Result<Vec<Done>> {
    let parallel = parallel.clamp(1, runs.len().max(1));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let env: Vec<(&str, String)> = match std::env::var("RAYON_NUM_THREADS") {
        Ok(_) => Vec::new(),
        Err(_) => vec![("RAYON_NUM_THREADS", (cores / parallel).max(1).to_string())],
    };
    let mut results: Vec<Option<Done>> = vec![None; runs.len()];
    let mut running: Vec<(usize, Child, Instant)> = Vec::new();
    let mut next = 0;
    let mut first_error = None;
    while next < runs.len() || !running.is_empty() {
        while first_error.is_none() && next < runs.len() && running.len() < parallel {
            let child = spawn(tc, store, &runs[next], &env)?;
            running.push((next, child, Instant::now()));
            next += 1;
        }
        if first_error.is_some() && running.is_empty() {
            break;
        }
        // Wait for whichever child ends first.
        let pos = loop {
            let mut found = None;
            for (p, (_, child, _)) in running.iter_mut().enumerate() {
                if child.try_wait()?.is_some() {
                    found = Some(p);
                    break;
                }
            }
            match found {
                Some(p) => break p,
                None => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        };
        let (i, child, t0) = running.swap_remove(pos);
        match finish(&runs[i], child, t0) {
            Ok(d) => results[i] = Some(d),
            Err(e) => {
                if first_error.is_none() {
                    first_error = Some(e);
                }
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(results
        .into_iter()
        .map(|d| d.expect("every run finished without error"))
        .collect())
}

/// True for the stage whose store run is split into a plan, one run per chunk and a gather.
pub fn is_split(stage: &StageSpec) -> bool {
    stage.bin == "netshare-model"
}

/// The chunk count of an encoder's outputs: `train-000.safetensors` upward, without gaps.
pub fn chunk_count<V>(inputs: &BTreeMap<String, V>) -> Result<usize> {
    let n = inputs
        .keys()
        .filter(|k| k.starts_with("train-") && k.ends_with(".safetensors"))
        .count();
    for i in 0..n {
        if !inputs.contains_key(&train_name(i)) {
            bail!(
                "the encoder's outputs lack {} (chunks must be numbered from 000)",
                train_name(i)
            );
        }
    }
    if n == 0 {
        bail!("the model stage has no train-NNN.safetensors input");
    }
    Ok(n)
}

/// `train-NNN.safetensors`.
pub fn train_name(chunk: usize) -> String {
    format!("train-{chunk:03}.safetensors")
}

/// `chunk-NNN.safetensors`, a chunk run's output.
pub fn chunk_name(chunk: usize) -> String {
    format!("chunk-{chunk:03}.safetensors")
}

/// The label of a part of a split stage.
pub fn part_label(stage: &StageSpec, part: &str) -> String {
    format!("{}.{part}", stage.id)
}

/// The label of a chunk run.
pub fn chunk_label(stage: &StageSpec, chunk: usize) -> String {
    format!("{}.chunk-{chunk:03}", stage.id)
}

/// The plan run: the layout and every chunk's tensors.
pub fn plan_run(stage: &StageSpec, inputs: &BTreeMap<String, String>, chunks: usize) -> RunSpec {
    let mut ins = BTreeMap::new();
    for name in std::iter::once("layout.json".to_string()).chain((0..chunks).map(train_name)) {
        if let Some(v) = inputs.get(&name) {
            ins.insert(name, v.clone());
        }
    }
    RunSpec {
        label: part_label(stage, "plan"),
        bin: stage.bin.clone(),
        part: Some("plan"),
        config: stage.config.clone(),
        inputs: ins,
        inputs_from: Vec::new(),
    }
}

/// The run of one chunk: the layout, the plan, its tensors, and chunk 0's result (later
/// chunks) or the `init` weights (chunk 0, when the stage has them).
pub fn chunk_run(
    stage: &StageSpec,
    inputs: &BTreeMap<String, String>,
    plan: &str,
    chunk0: Option<&str>,
    chunk: usize,
) -> RunSpec {
    let mut ins = BTreeMap::new();
    ins.insert("plan.json".to_string(), plan.to_string());
    for name in ["layout.json".to_string(), train_name(chunk)] {
        if let Some(v) = inputs.get(&name) {
            ins.insert(name, v.clone());
        }
    }
    match chunk0 {
        Some(c0) => {
            ins.insert(chunk_name(0), c0.to_string());
        }
        None => {
            if let Some(v) = inputs.get("init") {
                ins.insert("init".to_string(), v.clone());
            }
        }
    }
    RunSpec {
        label: chunk_label(stage, chunk),
        bin: stage.bin.clone(),
        part: Some("chunk"),
        config: serde_json::json!({ "chunk": chunk, "model": stage.config }),
        inputs: ins,
        inputs_from: Vec::new(),
    }
}

/// The gather: the layout, the plan and every chunk's result.
pub fn gather_run(
    stage: &StageSpec,
    inputs: &BTreeMap<String, String>,
    plan: &str,
    chunks: &[String],
) -> RunSpec {
    let mut ins = BTreeMap::new();
    ins.insert("plan.json".to_string(), plan.to_string());
    if let Some(v) = inputs.get("layout.json") {
        ins.insert("layout.json".to_string(), v.clone());
    }
    for (i, c) in chunks.iter().enumerate() {
        ins.insert(chunk_name(i), c.clone());
    }
    RunSpec {
        label: part_label(stage, "gather"),
        bin: stage.bin.clone(),
        part: Some("gather"),
        config: stage.config.clone(),
        inputs: ins,
        inputs_from: Vec::new(),
    }
}

/// The split model stage run here: the plan, chunk 0, the other chunks in parallel, the
/// gather. Returns the gather's run (whose outputs are the stage's), whether every part was
/// cached, and the stage's wall time along its critical path (from the manifests, so a cached
/// run reports the time it took when it ran).
pub fn exec_split(
    tc: &Toolchain,
    store: &Store,
    stage: &StageSpec,
    inputs: &BTreeMap<String, Digest>,
) -> Result<(Done, bool, f64)> {
    let ins = hex_inputs(inputs);
    let chunks = chunk_count(&ins)?;
    let plan = exec(tc, store, &plan_run(stage, &ins, chunks))?;
    let plan_json = plan.output("plan.json")?.hex();
    let c0 = exec(tc, store, &chunk_run(stage, &ins, &plan_json, None, 0))?;
    let c0_out = c0.output(&chunk_name(0))?.hex();
    let rest_runs: Vec<RunSpec> = (1..chunks)
        .map(|k| chunk_run(stage, &ins, &plan_json, Some(&c0_out), k))
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rest = exec_many(tc, store, &rest_runs, cores)?;
    let mut outs = vec![c0_out];
    for (k, d) in rest.iter().enumerate() {
        outs.push(d.output(&chunk_name(k + 1))?.hex());
    }
    let gather = exec(tc, store, &gather_run(stage, &ins, &plan_json, &outs))?;
    let wall = |d: &Done| d.manifest.provenance.wall_seconds;
    let critical =
        wall(&plan) + wall(&c0) + rest.iter().map(wall).fold(0.0, f64::max) + wall(&gather);
    let cached = plan.cached && c0.cached && rest.iter().all(|d| d.cached) && gather.cached;
    Ok((gather, cached, critical))
}

/// What `--plan` says of a run: its key, its plan document, and its manifest when committed.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The binary's plan document (stage, version, config, inputs).
    pub doc: serde_json::Value,
    /// The committed manifest, when the key is in the store.
    pub committed: Option<Manifest>,
}

/// Asks the binary for a run's key and whether it is committed, running nothing.
pub fn check(tc: &Toolchain, store: &Store, run: &RunSpec) -> Result<Planned> {
    let out = run
        .command(tc, store)
        .arg("--plan")
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("spawning {} --plan", run.bin))?;
    if !out.status.success() {
        bail!(
            "{} refused its config or inputs ({}); see above",
            run.label,
            out.status
        );
    }
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("{} printed no plan JSON", run.label))?;
    let key: Digest = doc["key"].as_str().unwrap_or_default().parse()?;
    let committed = if doc["cached"].as_bool() == Some(true) {
        store.read_manifest(&key)?
    } else {
        None
    };
    Ok(Planned { doc, committed })
}

/// Which parts of the split model stage are committed: the gather's plan when every part
/// before it is (its manifest when it is too), else what is missing, in words.
pub fn split_status(
    tc: &Toolchain,
    store: &Store,
    stage: &StageSpec,
    inputs: &BTreeMap<String, Digest>,
) -> Result<std::result::Result<Planned, Vec<String>>> {
    let ins = hex_inputs(inputs);
    let chunks = chunk_count(&ins)?;
    let plan = check(tc, store, &plan_run(stage, &ins, chunks))?;
    let Some(plan) = plan.committed else {
        return Ok(Err(vec![format!(
            "the plan and all {chunks} chunks would run"
        )]));
    };
    let plan_json = output_of(&plan, "plan.json")?.hex();
    let c0 = check(tc, store, &chunk_run(stage, &ins, &plan_json, None, 0))?;
    let Some(c0) = c0.committed else {
        return Ok(Err(vec![format!(
            "chunk 0 and the {} chunks fine-tuned from it would run",
            chunks - 1
        )]));
    };
    let c0_out = output_of(&c0, &chunk_name(0))?.hex();
    let mut outs = vec![c0_out.clone()];
    let mut missing = Vec::new();
    for k in 1..chunks {
        let c = check(
            tc,
            store,
            &chunk_run(stage, &ins, &plan_json, Some(&c0_out), k),
        )?;
        match c.committed {
            Some(m) => outs.push(output_of(&m, &chunk_name(k))?.hex()),
            None => missing.push(k.to_string()),
        }
    }
    if !missing.is_empty() {
        return Ok(Err(vec![format!(
            "chunks {} of {chunks} would run (the others are cached)",
            missing.join(", ")
        )]));
    }
    Ok(Ok(check(
        tc,
        store,
        &gather_run(stage, &ins, &plan_json, &outs),
    )?))
}
