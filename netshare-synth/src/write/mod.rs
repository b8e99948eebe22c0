//! [`Sink`], which streams record tables of either kind into any output format as they arrive
//! (memory stays bounded by the batch, not the trace). The formats themselves are
//! `netshare-formats`'; Parquet records are the schema's.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use netshare_core::records::{
    AddrSchema, META_DIALECT, PacketColumns, Records, RecordsWriter, TraceKind,
};
pub use netshare_formats::capture::{CaptureKind, CaptureWriter};
pub use netshare_formats::netflow::{Dialect, FlowCsvWriter, PacketCsvWriter};
pub use netshare_formats::packet::{LinkType, PacketBuilder, PacketOptions, PacketStats};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An output file format.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum OutputFormat {
    /// Parquet records with the ingest schema (`netshare.packets.v1` / `netshare.flows.v1`).
    Parquet,
    /// CSV: flows in a [`Dialect`], packets in NetShare's packet layout.
    Csv,
    /// pcap, microsecond timestamps (packets only).
    Pcap,
    /// pcap, nanosecond timestamps (packets only).
    PcapNs,
    /// pcapng (packets only).
    Pcapng,
}

impl OutputFormat {
    /// The format a file name's extension names (`.parquet`, `.csv`, `.pcap`, `.pcapng`).
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "parquet" => OutputFormat::Parquet,
            "csv" => OutputFormat::Csv,
            "pcap" => OutputFormat::Pcap,
            "pcapng" => OutputFormat::Pcapng,
            _ => return None,
        })
    }

    /// The usual file extension.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Parquet => "parquet",
            OutputFormat::Csv => "csv",
            OutputFormat::Pcap | OutputFormat::PcapNs => "pcap",
            OutputFormat::Pcapng => "pcapng",
        }
    }

    fn capture(self) -> Option<CaptureKind> {
        match self {
            OutputFormat::Pcap => Some(CaptureKind::Pcap),
            OutputFormat::PcapNs => Some(CaptureKind::PcapNs),
            OutputFormat::Pcapng => Some(CaptureKind::Pcapng),
            _ => None,
        }
    }
}

/// How to write outputs: the CSV dialect for flows and the packet framing for captures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// The CSV dialect of flow CSV output.
    pub dialect: Dialect,
    /// The dialect name stored in Parquet metadata (`netshare.dialect`), when known.
    pub dialect_meta: Option<String>,
    /// Framing and capture length of packets.
    pub packets: PacketOptions,
    /// The address schema of Parquet output (a streaming writer fixes it up front): `Mixed`
    /// when the records may hold IPv6.
    pub addrs: AddrSchema,
}

enum Inner {
    Parquet(RecordsWriter),
    FlowCsv(FlowCsvWriter<BufWriter<File>>),
    PacketCsv(PacketCsvWriter<BufWriter<File>>),
    Capture(CaptureWriter<BufWriter<File>>, PacketBuilder),
}

/// Builds each packet record's frame and writes it.
fn write_frames(
    w: &mut CaptureWriter<BufWriter<File>>,
    b: &mut PacketBuilder,
    t: &PacketColumns,
) -> Result<()> {
    for i in 0..t.len() {
        let r = t.row(i);
        let built = b.build(&r);
        w.write_frame(r.time_us, b.bytes(), built.wire as u32)?;
    }
    Ok(())
}

/// What a finished sink wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkSummary {
    /// The file name (no directory).
    pub file: String,
    /// Its format.
    pub format: OutputFormat,
    /// Records written.
    pub records: u64,
    /// Adjustments made while building packets (captures only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub packets: Option<PacketStats>,
}

/// A streaming writer of one output file.
pub struct Sink {
    inner: Inner,
    path: PathBuf,
    format: OutputFormat,
    kind: TraceKind,
    records: u64,
}

const BUF: usize = 1 << 20;

fn create_buffered(path: &Path) -> Result<BufWriter<File>> {
    let f = File::create(path).map_err(|e| Error::io("creating", path, e))?;
    Ok(BufWriter::with_capacity(BUF, f))
}

fn close(w: BufWriter<File>, path: &Path) -> Result<()> {
    let f = w
        .into_inner()
        .map_err(|e| Error::io("flushing", path, e.into_error()))?;
    f.sync_all().map_err(|e| Error::io("syncing", path, e))
}

impl Sink {
    /// Creates `path` for records of `kind` in `format`.
    pub fn create(
        path: &Path,
        format: OutputFormat,
        kind: TraceKind,
        opts: &WriteOptions,
    ) -> Result<Self> {
        let inner = match (format, kind) {
            (OutputFormat::Parquet, _) => {
                let extra: Vec<(&str, &str)> = match (&opts.dialect_meta, kind) {
                    (Some(d), TraceKind::Flows) => vec![(META_DIALECT, d.as_str())],
                    _ => Vec::new(),
                };
                Inner::Parquet(RecordsWriter::create(path, kind, opts.addrs, &extra)?)
            }
            (OutputFormat::Csv, TraceKind::Flows) => Inner::FlowCsv(FlowCsvWriter::new(
                create_buffered(path)?,
                path,
                opts.dialect,
            )?),
            (OutputFormat::Csv, TraceKind::Packets) => {
                Inner::PacketCsv(PacketCsvWriter::new(create_buffered(path)?, path)?)
            }
            (f, TraceKind::Packets) => {
                let cf = f.capture().expect("every other format is a capture format");
                Inner::Capture(
                    CaptureWriter::new(
                        create_buffered(path)?,
                        path,
                        cf,
                        opts.packets.link.linktype(),
                        opts.packets.snaplen,
                    )?,
                    PacketBuilder::new(opts.packets),
                )
            }
            (f, TraceKind::Flows) => {
                return Err(Error::Format {
                    path: path.to_path_buf(),
                    message: format!(
                        "{f:?} holds packets, but these records are flows; write flows as CSV or Parquet"
                    ),
                });
            }
        };
        Ok(Sink {
            inner,
            path: path.to_path_buf(),
            format,
            kind,
            records: 0,
        })
    }

    /// The output path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a table of records (of the kind the sink was created for).
    pub fn write(&mut self, records: &Records) -> Result<()> {
        if records.kind() != self.kind {
            return Err(Error::Format {
                path: self.path.clone(),
                message: format!(
                    "cannot write {:?} into a {:?} output",
                    records.kind(),
                    self.kind
                ),
            });
        }
        match (&mut self.inner, records) {
            (Inner::Parquet(w), r) => w.write(r)?,
            (Inner::FlowCsv(w), Records::Flows(t)) => w.write_flows(t)?,
            (Inner::PacketCsv(w), Records::Packets(t)) => w.write_packets(t)?,
            (Inner::Capture(w, b), Records::Packets(t)) => write_frames(w, b, t)?,
            _ => unreachable!("the kind check above matches writer and table"),
        }
        self.records += records.len() as u64;
        Ok(())
    }

    /// Finishes the file (footer, flush, fsync).
    pub fn finish(self) -> Result<SinkSummary> {
        let mut packets = None;
        match self.inner {
            Inner::Parquet(w) => w.finish()?,
            Inner::FlowCsv(w) => close(w.finish()?, &self.path)?,
            Inner::PacketCsv(w) => close(w.finish()?, &self.path)?,
            Inner::Capture(w, b) => {
                close(w.finish()?, &self.path)?;
                packets = Some(b.stats().clone());
            }
        }
        Ok(SinkSummary {
            file: self
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            format: self.format,
            records: self.records,
            packets,
        })
    }
}

/// Writes `records` (one table, or batches from an iterator) to `path` in one go.
pub fn write_all<'a, I>(
    path: &Path,
    format: OutputFormat,
    kind: TraceKind,
    opts: &WriteOptions,
    batches: I,
) -> Result<SinkSummary>
where
    I: IntoIterator<Item = &'a Records>,
{
    let mut sink = Sink::create(path, format, kind, opts)?;
    for b in batches {
        sink.write(b)?;
    }
    sink.finish()
}
