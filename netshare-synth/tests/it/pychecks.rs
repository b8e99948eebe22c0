//! pandas / pyarrow read the Parquet and CSV outputs (tests/py/check_outputs.py). The summary
//! Python printed for the real-trace outputs is committed (tests/py/expected.json) and compared
//! here without Python; with NETSHARE_PY_CHECKS=1 the script also runs on fresh outputs,
//! synthetic ones included (NETSHARE_PY_CHECKS=update rewrites expected.json).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use netshare_core::records::{Records, TraceKind, read_metadata, read_records};
use netshare_synth::write::{Dialect, OutputFormat, WriteOptions, write_all};
use serde_json::{Value, json};

use crate::{skype_packets, ugr16_flows};

const TIME_COLUMNS: [&str; 6] = ["ts", "ts_us", "time", "time_us", "te", "Date first seen"];
const LABEL_COLUMNS: [&str; 3] = ["type", "label", "class"];

enum Col {
    Int(Vec<i128>),
    Float(Vec<f64>),
    Str(Vec<String>),
}

fn columns_of(r: &Records) -> Vec<(String, Col)> {
    let ints = |v: Vec<i128>| Col::Int(v);
    macro_rules! int {
        ($t:expr, $f:ident) => {
            (
                stringify!($f).to_string(),
                ints($t.$f.iter().map(|&x| x as i128).collect()),
            )
        };
    }
    // IPv4 addresses as pandas reads the integer CSV columns (these tables are all IPv4).
    macro_rules! ip {
        ($t:expr, $f:ident) => {
            (
                stringify!($f).to_string(),
                ints(
                    $t.$f
                        .iter()
                        .map(|&a| netshare_core::addr::v4_bits(a).map_or(-1, i128::from))
                        .collect(),
                ),
            )
        };
    }
    match r {
        Records::Flows(t) => vec![
            ip!(t, srcip),
            ip!(t, dstip),
            int!(t, srcport),
            int!(t, dstport),
            int!(t, proto),
            int!(t, ts_us),
            ("td".into(), Col::Float(t.td.clone())),
            int!(t, pkt),
            int!(t, byt),
            ("label".into(), Col::Str(t.label.clone())),
        ],
        Records::Packets(t) => vec![
            ip!(t, srcip),
            ip!(t, dstip),
            int!(t, srcport),
            int!(t, dstport),
            int!(t, proto),
            int!(t, time_us),
            int!(t, pkt_len),
            int!(t, tos),
            int!(t, id),
            int!(t, flag),
            int!(t, off),
            int!(t, ttl),
        ],
    }
}

/// Reads a CSV with our own reader and types columns as pandas does (all integers, else all
/// numbers, else text).
fn csv_columns(path: &Path) -> Vec<(String, Col)> {
    let mut rdr = csv::Reader::from_path(path).expect("open csv");
    let header: Vec<String> = rdr
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    let mut raw: Vec<Vec<String>> = vec![Vec::new(); header.len()];
    for rec in rdr.records() {
        let rec = rec.expect("row");
        for (i, f) in rec.iter().enumerate() {
            raw[i].push(f.to_string());
        }
    }
    header
        .into_iter()
        .zip(raw)
        .map(|(h, v)| {
            let col = if let Some(i) = v.iter().map(|s| s.parse::<i128>().ok()).collect() {
                Col::Int(i)
            } else if let Some(f) = v.iter().map(|s| s.parse::<f64>().ok()).collect() {
                Col::Float(f)
            } else {
                Col::Str(v)
            };
            (h, col)
        })
        .collect()
}

fn summary(cols: &[(String, Col)], metadata: BTreeMap<String, String>) -> Value {
    let rows = cols.first().map_or(0, |(_, c)| match c {
        Col::Int(v) => v.len(),
        Col::Float(v) => v.len(),
        Col::Str(v) => v.len(),
    });
    let mut int_sums = serde_json::Map::new();
    let mut float_sums = serde_json::Map::new();
    let mut out = json!({
        "rows": rows,
        "columns": cols.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        "metadata": metadata,
    });
    for (name, c) in cols {
        match c {
            Col::Int(v) if !TIME_COLUMNS.contains(&name.as_str()) => {
                int_sums.insert(name.clone(), json!(v.iter().sum::<i128>() as i64));
            }
            Col::Float(v) => {
                float_sums.insert(name.clone(), json!(v.iter().sum::<f64>()));
            }
            _ => {}
        }
    }
    out["int_sums"] = Value::Object(int_sums);
    out["float_sums"] = Value::Object(float_sums);
    if let Some((_, Col::Int(v))) = TIME_COLUMNS.iter().find_map(|t| {
        cols.iter()
            .find(|(n, c)| n == t && matches!(c, Col::Int(_)))
    }) && !v.is_empty()
    {
        out["time_min"] = json!(*v.iter().min().expect("nonempty") as i64);
        out["time_max"] = json!(*v.iter().max().expect("nonempty") as i64);
    }
    if let Some((_, Col::Str(v))) = LABEL_COLUMNS.iter().find_map(|t| {
        cols.iter()
            .find(|(n, c)| n == t && matches!(c, Col::Str(_)))
    }) {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for s in v {
            *counts.entry(s.clone()).or_default() += 1;
        }
        out["labels"] = json!(counts);
    }
    out
}

/// Our summary of one output file, in the shape check_outputs.py prints.
fn rust_summary(path: &Path) -> Value {
    if path.extension().is_some_and(|e| e == "parquet") {
        let (_, meta) = read_metadata(path).expect("metadata");
        let meta = meta
            .into_iter()
            .filter(|(k, _)| k.starts_with("netshare."))
            .collect();
        summary(&columns_of(&read_records(path).expect("read")), meta)
    } else {
        summary(&csv_columns(path), BTreeMap::new())
    }
}

/// Equal, with float sums within 1e-3 relative (summation order differs).
fn assert_same(py: &Value, rs: &Value, what: &str) {
    for key in [
        "rows", "columns", "metadata", "int_sums", "time_min", "time_max", "labels",
    ] {
        assert_eq!(py.get(key), rs.get(key), "{what}: {key}");
    }
    let (pf, rf) = (&py["float_sums"], &rs["float_sums"]);
    let pf = pf.as_object().expect("float_sums object");
    let rf = rf.as_object().expect("float_sums object");
    assert_eq!(
        pf.keys().collect::<Vec<_>>(),
        rf.keys().collect::<Vec<_>>(),
        "{what}"
    );
    for (k, p) in pf {
        let (p, r) = (p.as_f64().expect("num"), rf[k].as_f64().expect("num"));
        assert!(
            (p - r).abs() <= 1e-3 * r.abs().max(1.0),
            "{what}: {k} {p} vs {r}"
        );
    }
}

/// The real-trace outputs the committed summary describes.
fn write_reference_outputs(dir: &Path) -> Vec<PathBuf> {
    let flows = Records::Flows(ugr16_flows());
    // The IPv4 packets: the committed summary describes the first schema's files (the four
    // IPv6 packets of the capture would make the file a v2 one, with binary address columns).
    let all = skype_packets();
    let v4: Vec<usize> = (0..all.len()).filter(|&i| all.srcip[i].is_ipv4()).collect();
    let packets = Records::Packets(all.take(&v4));
    let mut out = Vec::new();
    for (name, format, kind, rec) in [
        (
            "flows.parquet",
            OutputFormat::Parquet,
            TraceKind::Flows,
            &flows,
        ),
        ("flows.csv", OutputFormat::Csv, TraceKind::Flows, &flows),
        (
            "packets.parquet",
            OutputFormat::Parquet,
            TraceKind::Packets,
            &packets,
        ),
        (
            "packets.csv",
            OutputFormat::Csv,
            TraceKind::Packets,
            &packets,
        ),
    ] {
        let path = dir.join(name);
        let opts = WriteOptions {
            dialect: Dialect::Netshare,
            dialect_meta: Some("netshare".into()),
            ..WriteOptions::default()
        };
        write_all(&path, format, kind, &opts, [rec]).expect("write");
        out.push(path);
    }
    out
}

fn committed() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/expected.json");
    serde_json::from_slice(&std::fs::read(&p).expect("expected.json")).expect("json")
}

#[test]
fn our_outputs_match_what_pandas_read_from_them() {
    let dir = crate::tmp();
    let want = committed();
    for path in write_reference_outputs(dir.path()) {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert_same(&want[&name], &rust_summary(&path), &name);
    }
}

#[test]
fn pandas_reads_fresh_and_synthetic_outputs() {
    let mode = std::env::var("NETSHARE_PY_CHECKS").unwrap_or_default();
    if mode != "1" && mode != "update" {
        netshare_core::skip::note_skip(
            "pandas_reads_fresh_and_synthetic_outputs",
            "set NETSHARE_PY_CHECKS=1 to run the pandas/pyarrow check",
        );
        return;
    }
    let dir = crate::tmp();
    let mut files = write_reference_outputs(dir.path());
    for name in ["synthetic.parquet", "synthetic.csv"] {
        files.push(crate::stage::synthetic_flow_outputs().join(name));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/check_outputs.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(&files)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let py: Value = serde_json::from_slice(&out.stdout).expect("script prints JSON");
    for path in &files {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert_same(&py[&name], &rust_summary(path), &name);
    }
    let names = [
        "flows.parquet",
        "flows.csv",
        "packets.parquet",
        "packets.csv",
    ];
    if mode == "update" {
        let kept: serde_json::Map<String, Value> = names
            .iter()
            .map(|n| (n.to_string(), py[*n].clone()))
            .collect();
        let text = serde_json::to_string_pretty(&Value::Object(kept)).expect("json") + "\n";
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/expected.json");
        std::fs::write(&p, text).expect("write expected.json");
    }
    // The committed summary is what the script says today.
    for name in [
        "flows.parquet",
        "flows.csv",
        "packets.parquet",
        "packets.csv",
    ] {
        assert_same(&committed()[name], &py[name], name);
    }
}
