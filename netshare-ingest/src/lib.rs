//! pcap, pcapng and NetFlow CSV to canonical Parquet records (SPEC §1).
//!
//! The entry points:
//! - [`ingest_files`] / [`ingest_named`]: trace files to one time-ordered `records.parquet`
//!   plus an [`IngestReport`], streaming with flat memory;
//! - [`read_packets_from_bytes`] and [`parse_flows_csv`]: in-memory readers for tests and tools;
//! - [`stage`]: the stage in store mode (inputs `trace` or `trace.0`, `trace.1`, ...).
//!
//! Damaged input is data: frames and rows that give no record are counted by reason, a file
//! that stops early keeps what was complete and says where it stopped. `Err` is for I/O, an
//! unknown format, a bad CSV header, and a bad CSV row under `on_error = fail`.
#![deny(missing_docs)]

pub mod error;
pub mod flows;
pub mod packets;
pub mod report;
pub mod sort;
pub mod stage;

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use netshare_core::records::{
    AddrSchema, FlowColumns, META_DIALECT, PacketColumns, ROW_GROUP_ROWS, TraceKind,
};
use netshare_core::stage::StageDef;
use serde::{Deserialize, Serialize};

pub use error::{IngestError, Result};
pub use netshare_formats::capture::{CaptureFormat, CaptureReader, Damage, Frame};
pub use netshare_formats::netflow::{Dialect, DialectChoice};
pub use report::{BadRow, FileReport, IngestReport, TimeSpan};

use report::Tally;
use sort::{Sorter, TimeTable};

/// This stage's identity in the artifact store. Version 2 keeps IPv6 packets and flows, which
/// version 1 skipped: a capture or CSV holding IPv6 gives other records, so its runs must not be
/// reused (an all-IPv4 input gives the same bytes under both).
pub const STAGE: StageDef = StageDef {
    name: "ingest",
    version: 2,
};

/// Name of the records output.
pub const RECORDS_OUTPUT: &str = "records.parquet";
/// Name of the report output.
pub const REPORT_OUTPUT: &str = "ingest-report.json";

/// What to do with a CSV row that cannot be read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Stop with an error naming the file and line.
    #[default]
    Fail,
    /// Skip the row, count it, and quote the first few in the report.
    Skip,
}

/// The ingest stage's configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// CSV dialect: detected from the header (`auto`) or fixed.
    pub dialect: DialectChoice,
    /// Bad CSV rows: `fail` (default) or `skip`.
    pub on_error: OnError,
    /// Seed (part of every stage config; ingest itself draws no random numbers).
    pub seed: u64,
}

/// Run-time options that do not change the output (so they are not part of the config).
#[derive(Default)]
pub struct IngestOptions<'a> {
    /// Folder under which sorted runs spill when the input is out of time order (default:
    /// the output's folder).
    pub spill_dir: Option<PathBuf>,
    /// Called with the number of input bytes consumed since the last call.
    pub progress: Option<&'a (dyn Fn(u64) + Sync)>,
}

/// What kind of trace a file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    /// A pcap or pcapng capture.
    Capture(CaptureFormat),
    /// A CSV of a flow dialect.
    Csv(Dialect),
}

/// Decides what a file is from its first bytes, or says what it looks like.
pub fn sniff(head: &[u8], path: &Path, choice: DialectChoice) -> Result<InputKind> {
    if let Some(f) = CaptureFormat::sniff(head) {
        return Ok(InputKind::Capture(f));
    }
    let text_len = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let first = &head[..text_len];
    if let Ok(line) = std::str::from_utf8(first)
        && !line.is_empty()
        && !line.bytes().any(|b| b < 0x09 || (b > 0x0d && b < 0x20))
    {
        match netshare_formats::netflow::detect(line.trim_end_matches('\r'), choice) {
            Ok(Some(d)) => return Ok(InputKind::Csv(d)),
            Ok(None) => {}
            Err(message) => {
                return Err(netshare_formats::Error::CsvHeader {
                    path: path.to_path_buf(),
                    message,
                }
                .into());
            }
        }
    }
    Err(IngestError::UnknownFormat {
        path: path.to_path_buf(),
        looks_like: describe(head),
    })
}

/// A short description of what some bytes look like.
pub fn describe(head: &[u8]) -> String {
    if head.is_empty() {
        return "an empty file".into();
    }
    let starts = |m: &[u8]| head.starts_with(m);
    if starts(&[0x1f, 0x8b]) {
        return "gzip-compressed data (decompress it first)".into();
    }
    if starts(b"PK\x03\x04") {
        return "a zip archive (unpack it first)".into();
    }
    if starts(b"PAR1") {
        return "a Parquet file (records are already ingested)".into();
    }
    if starts(b"BZh") {
        return "bzip2-compressed data (decompress it first)".into();
    }
    if starts(&[0xfd, b'7', b'z', b'X', b'Z']) {
        return "xz-compressed data (decompress it first)".into();
    }
    if starts(&[0xa1, 0xb2, 0xcd, 0x34]) || starts(&[0x34, 0xcd, 0xb2, 0xa1]) {
        return "a modified (Kuznetzov) pcap; rewrite it as standard pcap with editcap".into();
    }
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    match std::str::from_utf8(&head[..line_end]) {
        Ok(l) if !l.bytes().any(|b| b < 0x09) => {
            let l: String = l.trim().chars().take(120).collect();
            if l.starts_with('{') || l.starts_with('[') {
                format!("JSON ({l:?})")
            } else if l.contains(',') {
                format!("a CSV whose first line {l:?} is not a header of a known dialect")
            } else {
                format!("text whose first line is {l:?}")
            }
        }
        _ => {
            let hex: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!("binary data starting with bytes {}", hex.join(" "))
        }
    }
}

/// Reads the first up-to-4 KiB of a file.
fn head_of(path: &Path) -> Result<Vec<u8>> {
    let f = File::open(path).map_err(|e| IngestError::io("opening", path, e))?;
    let mut head = Vec::with_capacity(4096);
    f.take(4096)
        .read_to_end(&mut head)
        .map_err(|e| IngestError::io("reading", path, e))?;
    Ok(head)
}

/// Ingests trace files (named by their paths) into one records file; see [`ingest_named`].
pub fn ingest_files(paths: &[PathBuf], cfg: &IngestConfig, out: &Path) -> Result<IngestReport> {
    let named: Vec<(String, PathBuf)> = paths
        .iter()
        .map(|p| (p.display().to_string(), p.clone()))
        .collect();
    ingest_named(&named, cfg, out, &IngestOptions::default())
}

/// Ingests named trace files (all packet traces, or all flow traces) into one time-ordered
/// records file at `out`. Capture files are read in the order of their first timestamp, CSV
/// files in the order given; records are then stably sorted by time with flat memory.
pub fn ingest_named(
    inputs: &[(String, PathBuf)],
    cfg: &IngestConfig,
    out: &Path,
    opts: &IngestOptions<'_>,
) -> Result<IngestReport> {
    if inputs.is_empty() {
        return Err(IngestError::NoInputs);
    }
    let mut kinds = Vec::with_capacity(inputs.len());
    for (_, p) in inputs {
        kinds.push(sniff(&head_of(p)?, p, cfg.dialect)?);
    }
    let first_capture = kinds
        .iter()
        .position(|k| matches!(k, InputKind::Capture(_)));
    let first_csv = kinds.iter().position(|k| matches!(k, InputKind::Csv(_)));
    if let (Some(a), Some(b)) = (first_capture, first_csv) {
        return Err(IngestError::MixedKinds {
            packets: inputs[a].1.clone(),
            flows: inputs[b].1.clone(),
        });
    }
    let spill = opts.spill_dir.clone().unwrap_or_else(|| {
        out.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    });
    let progress = |n: u64| {
        if let Some(p) = opts.progress {
            p(n)
        }
    };
    if first_capture.is_some() {
        let order = capture_order(inputs)?;
        let ordered: Vec<&(String, PathBuf)> = order.iter().map(|&i| &inputs[i]).collect();
        run_pipeline::<PacketColumns, _>(out, Vec::new(), &spill, |tally, emit| {
            let mut files = Vec::new();
            let mut batch = PacketColumns::with_capacity(ROW_GROUP_ROWS);
            let mut prog = progress;
            for (name, path) in &ordered {
                let f = File::open(path).map_err(|e| IngestError::io("opening", path, e))?;
                let mut r = CaptureReader::new(f)
                    .map_err(|e| IngestError::io("reading", path, e))?
                    .ok_or_else(|| IngestError::UnknownFormat {
                        path: path.clone(),
                        looks_like: "a file that changed while it was read".into(),
                    })?;
                files.push(packets::read_capture(
                    &mut r, name, path, tally, &mut batch, emit, &mut prog,
                )?);
            }
            emit(std::mem::take(&mut batch))?;
            Ok((files, Vec::new()))
        })
    } else {
        let dialects: Vec<Dialect> = kinds
            .iter()
            .filter_map(|k| match k {
                InputKind::Csv(d) => Some(*d),
                InputKind::Capture(_) => None,
            })
            .collect();
        let mut names: Vec<&str> = dialects.iter().map(|d| d.name()).collect();
        names.sort_unstable();
        names.dedup();
        let meta = vec![(META_DIALECT.to_string(), names.join("+"))];
        run_pipeline::<FlowColumns, _>(out, meta, &spill, |tally, emit| {
            let mut files = Vec::new();
            let mut bad = Vec::new();
            let mut batch = FlowColumns::default();
            for ((name, path), d) in inputs.iter().zip(&dialects) {
                let f = File::open(path).map_err(|e| IngestError::io("opening", path, e))?;
                let size = f.metadata().map(|m| m.len()).unwrap_or(0);
                let rep = flows::read_csv(
                    BufReader::with_capacity(1 << 20, f),
                    *d,
                    name,
                    path,
                    cfg,
                    tally,
                    &mut bad,
                    &mut batch,
                    emit,
                )?;
                progress(size);
                files.push(rep);
            }
            emit(std::mem::take(&mut batch))?;
            Ok((files, bad))
        })
    }
}

/// Capture inputs ordered by their first frame's time (ties and empty files keep the given
/// order), so hourly files given in any order need no merge.
fn capture_order(inputs: &[(String, PathBuf)]) -> Result<Vec<usize>> {
    let mut keyed = Vec::with_capacity(inputs.len());
    for (i, (_, path)) in inputs.iter().enumerate() {
        let f = File::open(path).map_err(|e| IngestError::io("opening", path, e))?;
        let first = match CaptureReader::new(BufReader::with_capacity(64 * 1024, f)) {
            Ok(Some(mut r)) => r.next_frame().ok().flatten().map(|f| f.time_us),
            _ => None,
        };
        keyed.push((first.unwrap_or(i64::MAX), i));
    }
    keyed.sort();
    Ok(keyed.into_iter().map(|(_, i)| i).collect())
}

type ReadOutcome = (Vec<FileReport>, Vec<BadRow>);

/// Runs `read` on this thread and the sorting Parquet writer on another, joined by a small
/// bounded channel (memory stays at a few batches), then assembles the report.
fn run_pipeline<T, F>(
    out: &Path,
    meta: Vec<(String, String)>,
    spill: &Path,
    read: F,
) -> Result<IngestReport>
where
    T: TimeTable + 'static,
    F: FnOnce(&mut Tally, &mut dyn FnMut(T) -> Result<()>) -> Result<ReadOutcome>,
{
    let sorter = Sorter::<T>::new(out, meta, spill)?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<T>(2);
    let mut tally = Tally::default();
    let (read_result, write_result) = std::thread::scope(|s| {
        let writer = s.spawn(move || -> Result<(usize, AddrSchema)> {
            let mut sorter = sorter;
            for batch in rx {
                sorter.push(batch)?;
            }
            let addrs = sorter.addr_schema();
            Ok((sorter.finish()?, addrs))
        });
        let mut emit = |b: T| -> Result<()> {
            if b.rows() == 0 {
                return Ok(());
            }
            // A send fails only when the writer stopped on an error, which join reports.
            let _ = tx.send(b);
            Ok(())
        };
        let r = read(&mut tally, &mut emit);
        drop(tx);
        let w = writer
            .join()
            .unwrap_or_else(|_| panic!("the records writer thread panicked"));
        (r, w)
    });
    let (files, bad_row_examples) = read_result?;
    let (runs, addrs) = write_result?;
    Ok(IngestReport {
        kind: T::KIND,
        schema: T::KIND.schema_name_for(addrs).to_string(),
        records_ipv6: tally.records_ipv6,
        files_damaged: files.iter().filter(|f| f.damage.is_some()).count() as u64,
        files,
        records_read: tally.records_read,
        records_kept: tally.records_kept,
        skipped: tally.skipped.clone(),
        notes: tally.notes.clone(),
        time_span: tally.time_span(),
        distinct_five_tuples: tally.distinct_five_tuples(),
        sorted_runs: runs as u64,
        bad_row_examples,
    })
}

/// Reads a whole pcap or pcapng capture held in memory: records in file order (not sorted)
/// and the report. Never panics, whatever the bytes.
pub fn read_packets_from_bytes(bytes: &[u8]) -> Result<(PacketColumns, IngestReport)> {
    let path = Path::new("<memory>");
    let mut r = CaptureReader::new(bytes)
        .map_err(|e| IngestError::io("reading", path, e))?
        .ok_or_else(|| IngestError::UnknownFormat {
            path: path.to_path_buf(),
            looks_like: describe(&bytes[..bytes.len().min(4096)]),
        })?;
    let mut tally = Tally::default();
    let mut all = PacketColumns::default();
    let mut batch = PacketColumns::default();
    let mut emit = |b: PacketColumns| -> Result<()> {
        all.extend(&b);
        Ok(())
    };
    let file = packets::read_capture(
        &mut r,
        "<memory>",
        path,
        &mut tally,
        &mut batch,
        &mut emit,
        &mut |_| {},
    )?;
    all.extend(&batch);
    Ok((
        all,
        in_memory_report(TraceKind::Packets, vec![file], Vec::new(), &tally),
    ))
}

/// Parses a flow CSV held in memory (dialect per `cfg`): records in file order (not sorted)
/// and the report.
pub fn parse_flows_csv(bytes: &[u8], cfg: &IngestConfig) -> Result<(FlowColumns, IngestReport)> {
    let path = Path::new("<memory>");
    let head = &bytes[..bytes.len().min(4096)];
    let dialect = match sniff(head, path, cfg.dialect)? {
        InputKind::Csv(d) => d,
        InputKind::Capture(f) => {
            return Err(IngestError::UnknownFormat {
                path: path.to_path_buf(),
                looks_like: format!("a {} capture, not a flow CSV", f.name()),
            });
        }
    };
    let mut tally = Tally::default();
    let mut bad = Vec::new();
    let mut all = FlowColumns::default();
    let mut batch = FlowColumns::default();
    let mut emit = |b: FlowColumns| -> Result<()> {
        all.extend(&b);
        Ok(())
    };
    let file = flows::read_csv(
        bytes, dialect, "<memory>", path, cfg, &mut tally, &mut bad, &mut batch, &mut emit,
    )?;
    all.extend(&batch);
    Ok((
        all,
        in_memory_report(TraceKind::Flows, vec![file], bad, &tally),
    ))
}

fn in_memory_report(
    kind: TraceKind,
    files: Vec<FileReport>,
    bad: Vec<BadRow>,
    tally: &Tally,
) -> IngestReport {
    let addrs = if tally.records_ipv6 > 0 {
        AddrSchema::Mixed
    } else {
        AddrSchema::V4Only
    };
    IngestReport {
        kind,
        schema: kind.schema_name_for(addrs).to_string(),
        records_ipv6: tally.records_ipv6,
        files_damaged: files.iter().filter(|f| f.damage.is_some()).count() as u64,
        files,
        records_read: tally.records_read,
        records_kept: tally.records_kept,
        skipped: tally.skipped.clone(),
        notes: tally.notes.clone(),
        time_span: tally.time_span(),
        distinct_five_tuples: tally.distinct_five_tuples(),
        sorted_runs: 1,
        bad_row_examples: bad,
    }
}

/// Writes a report as pretty JSON.
pub fn write_report(report: &IngestReport, path: &Path) -> Result<()> {
    let mut text = serde_json::to_string_pretty(report).expect("a report always serialises");
    text.push('\n');
    std::fs::write(path, text).map_err(|e| IngestError::io("writing", path, e))
}
