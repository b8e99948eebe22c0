//! Architecture invariants, enforced on the real dependency graph (`cargo metadata`).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

struct Graph {
    /// package name -> names of its normal (non-dev, non-build) dependencies
    normal: BTreeMap<String, BTreeSet<String>>,
    ids: BTreeMap<String, String>,
}

/// The host's target triple, from `rustc -vV` (the platform a build resolves for).
fn host_triple() -> String {
    let out = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .trim()
        .to_string()
}

/// The dependency graph as the host platform resolves it. `--filter-platform` matters: a full
/// resolve reads every platform's packages (android_system_properties, windows-sys, ...), and a
/// cargo cache seeded only by a build on this host holds none of them, so `--offline` would fail
/// on a fresh machine.
fn graph() -> Graph {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let host = host_triple();
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &host])
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata JSON");
    let mut ids = BTreeMap::new();
    for p in meta["packages"].as_array().expect("packages") {
        ids.insert(
            p["id"].as_str().expect("id").to_string(),
            p["name"].as_str().expect("name").to_string(),
        );
    }
    let mut normal = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().expect("resolve nodes") {
        let name = ids[node["id"].as_str().expect("node id")].clone();
        let mut deps = BTreeSet::new();
        for d in node["deps"].as_array().expect("deps") {
            let is_normal = d["dep_kinds"]
                .as_array()
                .expect("dep_kinds")
                .iter()
                .any(|k| k["kind"].is_null());
            if is_normal {
                deps.insert(ids[d["pkg"].as_str().expect("pkg")].clone());
            }
        }
        normal
            .entry(name)
            .or_insert_with(BTreeSet::new)
            .extend(deps);
    }
    Graph { normal, ids }
}

impl Graph {
    fn closure(&self, from: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(p) = stack.pop() {
            for d in self.normal.get(&p).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    stack.push(d.clone());
                }
            }
        }
        seen
    }
}

const OURS: [&str; 13] = [
    "netshare-store",
    "netshare-core",
    "netshare-formats",
    "netshare-stats",
    "netshare-baseline",
    "netshare-ingest",
    "netshare-encode",
    "netshare-model",
    "netshare-privacy",
    "netshare-synth",
    "netshare-eval",
    "fixtures",
    "xtask",
];

#[test]
fn our_crates_depend_only_in_the_allowed_direction() {
    let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("netshare-store", &[][..]),
        ("netshare-core", &["netshare-store"][..]),
        ("netshare-formats", &["netshare-core"][..]),
        ("netshare-stats", &[][..]),
        ("netshare-baseline", &["netshare-core"][..]),
        (
            "netshare-ingest",
            &["netshare-core", "netshare-formats"][..],
        ),
        ("netshare-encode", &["netshare-core"][..]),
        (
            "netshare-model",
            &[
                "netshare-core",
                "netshare-encode",
                "netshare-stats",
                "netshare-privacy",
            ][..],
        ),
        ("netshare-privacy", &["netshare-core"][..]),
        (
            "netshare-synth",
            &[
                "netshare-core",
                "netshare-formats",
                "netshare-encode",
                "netshare-model",
                "netshare-privacy",
            ][..],
        ),
        (
            "netshare-eval",
            &[
                "netshare-core",
                "netshare-formats",
                "netshare-stats",
                "netshare-privacy",
            ][..],
        ),
        (
            "fixtures",
            &["netshare-core", "netshare-formats", "netshare-store"][..],
        ),
        ("xtask", &["netshare-store"][..]),
    ]);
    let g = graph();
    assert!(
        g.ids.len() > OURS.len(),
        "metadata lists our crates and their dependencies"
    );
    let mut violations = Vec::new();
    for (krate, ok) in &allowed {
        for dep in g.normal.get(*krate).expect("our crate is in the graph") {
            if OURS.contains(&dep.as_str()) && !ok.contains(&dep.as_str()) {
                violations.push(format!("{krate} depends on {dep}"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "dependencies against the allowed direction: {violations:?}"
    );
}

#[test]
fn only_model_and_synth_link_the_deep_learning_crate() {
    let g = graph();
    for krate in [
        "netshare-core",
        "netshare-formats",
        "netshare-ingest",
        "netshare-encode",
        "netshare-eval",
        "netshare-stats",
        "netshare-baseline",
        "netshare-privacy",
        "fixtures",
        "xtask",
    ] {
        let ml: Vec<String> = g
            .closure(krate)
            .into_iter()
            .filter(|d| {
                d == "burn" || d.starts_with("burn-") || d.starts_with("cubecl") || d == "tch"
            })
            .collect();
        assert!(ml.is_empty(), "{krate} links ML crates: {ml:?}");
    }
    assert!(
        !g.closure("netshare-eval").contains("netshare-model"),
        "eval judges tables and must not depend on the model"
    );
}

#[test]
fn the_driver_links_no_data_or_ml_crate_so_it_builds_in_seconds() {
    let heavy: Vec<String> = graph()
        .closure("xtask")
        .into_iter()
        .filter(|d| {
            d.starts_with("arrow")
                || d == "parquet"
                || d == "burn"
                || d.starts_with("burn-")
                || d == "netshare-core"
        })
        .collect();
    assert!(heavy.is_empty(), "xtask links {heavy:?}");
}

/// The crates that parse or build packets and CSV text: packet bytes only in formats, CSV only
/// in formats and in eval (which reads the model's own training log, an artifact, not a trace
/// format). A second capture or NetFlow reader elsewhere would need one of these crates.
#[test]
fn only_formats_reads_or_writes_wire_formats() {
    let g = graph();
    let mut violations = Vec::new();
    for krate in OURS {
        let deps = g.normal.get(krate).expect("our crate is in the graph");
        if krate != "netshare-formats" && deps.contains("pnet_packet") {
            violations.push(format!("{krate} uses pnet_packet"));
        }
        if !["netshare-formats", "netshare-eval"].contains(&krate) && deps.contains("csv") {
            violations.push(format!("{krate} uses csv"));
        }
    }
    assert!(
        violations.is_empty(),
        "wire formats outside netshare-formats: {violations:?}"
    );
}

/// No pcap or pcapng magic number outside formats, except in the fixtures' hand-written capture
/// builders (the independent writer the reader is tested against).
#[test]
fn capture_magic_numbers_live_in_formats() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let magics = [
        "a1b2_c3d4",
        "a1b2c3d4",
        "a1b2_3c4d",
        "a1b23c4d",
        "0a0d_0d0a",
        "0a0d0d0a",
    ];
    let mut found = Vec::new();
    for krate in OURS {
        if krate == "netshare-formats" || krate == "fixtures" {
            continue;
        }
        let mut stack = vec![root.join(krate).join("src")];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).expect("source dir").flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    let text = std::fs::read_to_string(&p).expect("source");
                    let lower = text.to_ascii_lowercase();
                    for m in magics {
                        if lower.contains(m) {
                            found.push(format!("{} holds {m}", p.display()));
                        }
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "capture magic numbers outside formats: {found:?}"
    );
}
