//! The stage contract: how a stage run is keyed, cached, locked, executed and committed.
//!
//! A stage is a pure function from named input files and a typed config to named output files.
//! [`run_stage`] gives the body read-only paths to its inputs (store blobs) and an empty work
//! directory for its outputs; afterwards every file in that directory becomes a blob and the
//! manifest is written last. The run key is the digest of the canonical JSON of the stage name,
//! its version, the *validated* config and the *content* digests of the inputs, so a stage
//! whose upstream re-ran but wrote identical bytes is still a cache hit ("early cutoff").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::digest::{Digest, canonical_json};
use crate::error::{Error, Result};
use crate::manifest::{Manifest, OutputEntry, Provenance};
use crate::store::Store;

/// A stage's identity: its name and the version of its logic.
#[derive(Clone, Copy, Debug)]
pub struct StageDef {
    /// Stage name (`ingest`, `encode`, ...).
    pub name: &'static str,
    /// Bump when the stage's output for the same inputs and config changes.
    pub version: u32,
}

/// What a stage body sees.
#[derive(Debug)]
pub struct StageCtx {
    key: Digest,
    scratch: PathBuf,
    inputs: BTreeMap<String, PathBuf>,
    out_dir: PathBuf,
    summary: serde_json::Value,
    schemas: BTreeMap<String, String>,
}

/// The error type a stage body may return (anyhow errors convert into it).
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// Where a simulated crash happens (tests of crash safety).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failpoint {
    /// Stop after the output blobs are stored but before the manifest is written.
    BeforeManifest,
}

/// The result of asking for a stage run.
#[derive(Debug)]
pub struct RunOutcome {
    /// The committed manifest.
    pub manifest: Manifest,
    /// True when the run was already in the store and the body did not run.
    pub cached: bool,
}

impl StageCtx {
    /// The run key of this run.
    pub fn key(&self) -> Digest {
        self.key
    }

    /// A directory private to this run key that survives a crash of the run (checkpoints go
    /// here, so a re-run of the same key resumes). It is removed once the run is committed.
    pub fn scratch_dir(&self) -> std::result::Result<&Path, BodyError> {
        std::fs::create_dir_all(&self.scratch)
            .map_err(|e| format!("creating scratch directory {}: {e}", self.scratch.display()))?;
        Ok(&self.scratch)
    }

    /// The read-only path of a named input.
    pub fn input(&self, name: &str) -> std::result::Result<&Path, BodyError> {
        self.inputs.get(name).map(PathBuf::as_path).ok_or_else(|| {
            format!(
                "missing input {name:?}; this run has {:?}",
                self.inputs.keys().collect::<Vec<_>>()
            )
            .into()
        })
    }

    /// All inputs by name.
    pub fn inputs(&self) -> &BTreeMap<String, PathBuf> {
        &self.inputs
    }

    /// The path to write a named output to (a plain file name such as `records.parquet`).
    pub fn output(&self, name: &str) -> PathBuf {
        self.out_dir.join(name)
    }

    /// Sets the small JSON summary stored in the manifest.
    pub fn set_summary(&mut self, summary: serde_json::Value) {
        self.summary = summary;
    }

    /// Records the schema name of an output (stored in the manifest).
    pub fn set_schema(&mut self, output: &str, schema: &str) {
        self.schemas.insert(output.to_string(), schema.to_string());
    }
}

/// The key of a run: digest of canonical JSON of {stage, version, config, input digests}.
pub fn run_key(
    def: &StageDef,
    config: &serde_json::Value,
    inputs: &BTreeMap<String, Digest>,
) -> Digest {
    let doc = serde_json::json!({
        "stage": def.name,
        "version": def.version,
        "config": config,
        "inputs": inputs.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.hex()))).collect::<serde_json::Map<_, _>>(),
    });
    Digest::of_bytes(canonical_json(&doc).as_bytes())
}

/// Validates a raw config into the stage's typed config and returns both (the canonical JSON
/// form has every default filled in, and is what goes into the key).
pub fn validate_config<C: Serialize + DeserializeOwned>(
    stage: &str,
    raw: &serde_json::Value,
) -> Result<(C, serde_json::Value)> {
    let typed: C = serde_json::from_value(raw.clone()).map_err(|e| Error::Stage {
        stage: stage.to_string(),
        message: format!("invalid config: {e}"),
    })?;
    let canonical = serde_json::to_value(&typed).map_err(|source| Error::Json {
        path: PathBuf::from(format!("<{stage} config>")),
        source,
    })?;
    Ok((typed, canonical))
}

/// Runs a stage in the store unless its key is already committed. See the module docs.
pub fn run_stage<C, F>(
    store: &Store,
    def: &StageDef,
    raw_config: &serde_json::Value,
    inputs: &BTreeMap<String, Digest>,
    body: F,
) -> Result<RunOutcome>
where
    C: Serialize + DeserializeOwned,
    F: FnOnce(&C, &mut StageCtx) -> std::result::Result<(), BodyError>,
{
    run_stage_with(store, def, raw_config, inputs, None, body)
}

/// [`run_stage`] with an optional simulated crash.
pub fn run_stage_with<C, F>(
    store: &Store,
    def: &StageDef,
    raw_config: &serde_json::Value,
    inputs: &BTreeMap<String, Digest>,
    failpoint: Option<Failpoint>,
    body: F,
) -> Result<RunOutcome>
where
    C: Serialize + DeserializeOwned,
    F: FnOnce(&C, &mut StageCtx) -> std::result::Result<(), BodyError>,
{
    let (config, canonical) = validate_config::<C>(def.name, raw_config)?;
    let key = run_key(def, &canonical, inputs);
    if let Some(m) = committed(store, &key)? {
        return Ok(RunOutcome {
            manifest: m,
            cached: true,
        });
    }
    let _lock = store.lock_key(&key)?;
    // Another process may have committed the key while we waited for the lock.
    if let Some(m) = committed(store, &key)? {
        return Ok(RunOutcome {
            manifest: m,
            cached: true,
        });
    }
    let mut input_paths = BTreeMap::new();
    for (name, digest) in inputs {
        if !store.has_blob(digest) {
            return Err(Error::Missing(format!(
                "input {name} = blob {digest} of stage {}",
                def.name
            )));
        }
        input_paths.insert(name.clone(), store.blob_path(digest));
    }
    let work = store.temp_path(&format!("run-{}", def.name));
    std::fs::create_dir_all(&work).map_err(|e| Error::io("creating", &work, e))?;
    let scratch = store.scratch_path(&key);
    let mut ctx = StageCtx {
        key,
        scratch: scratch.clone(),
        inputs: input_paths,
        out_dir: work.clone(),
        summary: serde_json::Value::Null,
        schemas: BTreeMap::new(),
    };
    let started_unix = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let t0 = Instant::now();
    if let Err(e) = body(&config, &mut ctx) {
        let _ = std::fs::remove_dir_all(&work);
        return Err(Error::Stage {
            stage: def.name.to_string(),
            message: error_chain(e.as_ref()),
        });
    }
    let wall_seconds = t0.elapsed().as_secs_f64();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&work)
        .map_err(|e| Error::io("listing", &work, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let mut outputs = BTreeMap::new();
    for path in files {
        if !path.is_file() {
            return Err(Error::Stage {
                stage: def.name.to_string(),
                message: format!("outputs must be plain files; found {}", path.display()),
            });
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("work directory entries have UTF-8 names we chose")
            .to_string();
        let size = std::fs::metadata(&path)
            .map_err(|e| Error::io("inspecting", &path, e))?
            .len();
        let digest = store.put_file_move(&path)?;
        outputs.insert(
            name.clone(),
            OutputEntry {
                digest,
                size,
                format: OutputEntry::format_of(&name),
                schema: ctx.schemas.get(&name).cloned(),
            },
        );
    }
    if failpoint == Some(Failpoint::BeforeManifest) {
        return Err(Error::Stage {
            stage: def.name.to_string(),
            message: "simulated crash before the manifest was written".to_string(),
        });
    }
    let manifest = Manifest {
        stage: def.name.to_string(),
        stage_version: def.version,
        key,
        config: canonical,
        inputs: inputs.clone(),
        outputs,
        provenance: Provenance {
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            git_rev: std::env::var("NETSHARE_GIT_REV")
                .ok()
                .filter(|s| !s.is_empty()),
            started_unix,
            wall_seconds,
        },
        summary: ctx.summary,
    };
    store.write_manifest(&manifest)?;
    let _ = std::fs::remove_dir_all(&work);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(RunOutcome {
        manifest,
        cached: false,
    })
}

/// A committed manifest whose output blobs are all present (a run whose blobs were lost to a
/// manual deletion is treated as not committed and recomputed).
fn committed(store: &Store, key: &Digest) -> Result<Option<Manifest>> {
    Ok(store
        .read_manifest(key)?
        .filter(|m| m.outputs.values().all(|o| store.has_blob(&o.digest))))
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Command-line arguments every stage binary accepts in store mode, so the driver (or a cluster
/// job) can run any stage the same way: `netshare-<stage> store --input NAME=DIGEST --config F`.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// Store directory [env: NETSHARE_STORE; default: ./.netshare].
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// An input as NAME=DIGEST (a blob already in the store), NAME=@PATH (a file to import) or
    /// NAME=ref:NAMESPACE/RUN:OUTPUT (an output of a run recorded with `--record-ref`, read
    /// when this run starts: how a cluster job finds what the job before it wrote).
    #[arg(
        long = "input",
        value_name = "NAME=DIGEST|NAME=@PATH|NAME=ref:NAMESPACE/RUN:OUTPUT"
    )]
    pub inputs: Vec<String>,
    /// Every output of a recorded run as an input named after its file (NAMESPACE/RUN).
    #[arg(long = "inputs-from", value_name = "NAMESPACE/RUN")]
    pub inputs_from: Vec<String>,
    /// After the run (or its cache hit), record its outputs under NAMESPACE/RUN for the runs
    /// that read them with `ref:` inputs.
    #[arg(long, value_name = "NAMESPACE/RUN")]
    pub record_ref: Option<String>,
    /// The stage config as a JSON file; omitted fields take their defaults.
    #[arg(long, conflicts_with = "config_json")]
    pub config: Option<PathBuf>,
    /// The stage config as inline JSON.
    #[arg(long)]
    pub config_json: Option<String>,
    /// Print the run key, whether it is cached and the validated config, then exit without running.
    #[arg(long)]
    pub plan: bool,
}

impl StoreArgs {
    /// Opens the store these arguments name.
    pub fn open_store(&self) -> Result<Store> {
        Store::open(self.store.clone().unwrap_or_else(Store::default_root))
    }

    /// The raw config (an empty object when none was given).
    pub fn raw_config(&self) -> Result<serde_json::Value> {
        if let Some(path) = &self.config {
            let bytes = std::fs::read(path).map_err(|e| Error::io("reading", path, e))?;
            return serde_json::from_slice(&bytes).map_err(|source| Error::Json {
                path: path.clone(),
                source,
            });
        }
        if let Some(text) = &self.config_json {
            return serde_json::from_str(text).map_err(|source| Error::Json {
                path: PathBuf::from("--config-json"),
                source,
            });
        }
        Ok(serde_json::json!({}))
    }

    /// Resolves `--input` and `--inputs-from` arguments into digests, importing `@PATH` files
    /// into the store and reading `ref:` inputs from the recorded runs.
    pub fn resolve_inputs(&self, store: &Store) -> Result<BTreeMap<String, Digest>> {
        let mut out = BTreeMap::new();
        for spec in &self.inputs_from {
            let (ns, run) = split_ref(spec)?;
            for (name, digest) in recorded_outputs(store, ns, run)? {
                out.insert(name, digest);
            }
        }
        for spec in &self.inputs {
            let (name, value) = spec.split_once('=').ok_or_else(|| {
                Error::Missing(format!("--input {spec:?} is not NAME=DIGEST or NAME=@PATH"))
            })?;
            let digest = if let Some(path) = value.strip_prefix('@') {
                store.put_file(Path::new(path))?
            } else if let Some(r) = value.strip_prefix("ref:") {
                let (run, output) = r.rsplit_once(':').ok_or_else(|| {
                    Error::Missing(format!(
                        "--input {spec:?}: a ref input is ref:NAMESPACE/RUN:OUTPUT"
                    ))
                })?;
                let (ns, run) = split_ref(run)?;
                let outputs = recorded_outputs(store, ns, run)?;
                *outputs.get(output).ok_or_else(|| {
                    Error::Missing(format!(
                        "--input {spec:?}: run {ns}/{run} wrote no {output} (it wrote {})",
                        outputs.keys().cloned().collect::<Vec<_>>().join(", ")
                    ))
                })?
            } else {
                value.parse()?
            };
            out.insert(name.to_string(), digest);
        }
        Ok(out)
    }
}

fn split_ref(spec: &str) -> Result<(&str, &str)> {
    spec.split_once('/')
        .filter(|(ns, run)| !ns.is_empty() && !run.is_empty())
        .ok_or_else(|| Error::Missing(format!("{spec:?} is not NAMESPACE/RUN")))
}

/// The ref a run is recorded under: its key, identity, config, inputs and output digests.
pub fn ref_doc(manifest: &Manifest) -> serde_json::Value {
    serde_json::json!({
        "key": manifest.key.hex(),
        "stage_version": manifest.stage_version,
        "config": manifest.config,
        "inputs": manifest.inputs,
        "outputs": manifest.outputs.iter().map(|(k, v)| (k.clone(), v.digest.hex())).collect::<BTreeMap<_, _>>(),
    })
}

/// The outputs of a run recorded under `ns/run`, each of which must be in the store.
pub fn recorded_outputs(store: &Store, ns: &str, run: &str) -> Result<BTreeMap<String, Digest>> {
    let doc = store.read_ref(ns, run)?.ok_or_else(|| {
        Error::Missing(format!(
            "no run is recorded as {ns}/{run} in the store (did the run before this one finish?)"
        ))
    })?;
    let mut out = BTreeMap::new();
    if let Some(map) = doc["outputs"].as_object() {
        for (name, v) in map {
            let digest: Digest = v.as_str().unwrap_or_default().parse()?;
            if !store.has_blob(&digest) {
                return Err(Error::Missing(format!(
                    "output {name} of {ns}/{run} = blob {digest}"
                )));
            }
            out.insert(name.clone(), digest);
        }
    }
    Ok(out)
}

/// Runs a stage in store mode from its [`StoreArgs`] and prints the manifest as JSON on stdout.
/// Stage binaries call this from their `store` subcommand.
pub fn run_from_args<C, F>(args: &StoreArgs, def: &StageDef, body: F) -> Result<RunOutcome>
where
    C: Serialize + DeserializeOwned,
    F: FnOnce(&C, &mut StageCtx) -> std::result::Result<(), BodyError>,
{
    let store = args.open_store()?;
    let raw = args.raw_config()?;
    let inputs = args.resolve_inputs(&store)?;
    if args.plan {
        let (_, canonical) = validate_config::<C>(def.name, &raw)?;
        let key = run_key(def, &canonical, &inputs);
        let plan = serde_json::json!({
            "plan": true,
            "stage": def.name,
            "stage_version": def.version,
            "key": key.hex(),
            "cached": committed(&store, &key)?.is_some(),
            "config": canonical,
            "inputs": inputs.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.hex()))).collect::<serde_json::Map<_, _>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&plan).expect("a JSON value always serialises")
        );
        // Plan mode is a dry run: the caller only wants the line above.
        std::process::exit(0);
    }
    let failpoint = match std::env::var("NETSHARE_FAILPOINT").as_deref() {
        Ok("before-manifest") => Some(Failpoint::BeforeManifest),
        _ => None,
    };
    let outcome = run_stage_with(&store, def, &raw, &inputs, failpoint, body)?;
    if let Some(spec) = &args.record_ref {
        let (ns, run) = split_ref(spec)?;
        store.write_ref(ns, run, &ref_doc(&outcome.manifest))?;
    }
    let mut doc = serde_json::to_value(&outcome.manifest).map_err(|source| Error::Json {
        path: PathBuf::from("<manifest>"),
        source,
    })?;
    if let serde_json::Value::Object(map) = &mut doc {
        map.insert(
            "cached".to_string(),
            serde_json::Value::Bool(outcome.cached),
        );
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&doc).expect("a JSON value always serialises")
    );
    Ok(outcome)
}
