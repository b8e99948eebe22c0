//! Converting any records table (real or synthetic) to the wire formats, batch by batch so a
//! large table never sits in memory whole.

use std::fs::File;
use std::path::Path;

use netshare_core::records::{
    FlowColumns, META_DIALECT, PacketColumns, Records, TraceKind, read_metadata,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::error::{Error, Result};
use crate::write::{Dialect, OutputFormat, PacketOptions, Sink, SinkSummary, WriteOptions};

/// Rows per batch read from Parquet.
pub const READ_BATCH_ROWS: usize = 64 * 1024;

/// Calls `f` with each batch of a records file, in file order. Returns the kind and the
/// file's key-value metadata.
pub fn for_each_batch<F>(
    path: &Path,
    mut f: F,
) -> Result<(TraceKind, std::collections::BTreeMap<String, String>)>
where
    F: FnMut(&Records) -> Result<()>,
{
    let (kind, meta) = read_metadata(path)?;
    let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let parquet_err = |source| {
        Error::Core(netshare_core::Error::Parquet {
            path: path.to_path_buf(),
            source,
        })
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(READ_BATCH_ROWS).build())
        .map_err(parquet_err)?;
    for batch in reader {
        let batch = batch.map_err(|e| Error::Core(netshare_core::Error::Arrow(e)))?;
        let records = match kind {
            TraceKind::Packets => {
                let mut t = PacketColumns::with_capacity(batch.num_rows());
                t.append_batch(&batch, path)?;
                Records::Packets(t)
            }
            TraceKind::Flows => {
                let mut t = FlowColumns::with_capacity(batch.num_rows());
                t.append_batch(&batch, path)?;
                Records::Flows(t)
            }
        };
        f(&records)?;
    }
    Ok((kind, meta))
}

/// What to write when converting.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConvertOptions {
    /// The output format; `None` takes it from the output's extension.
    pub format: Option<OutputFormat>,
    /// The flow CSV dialect; `None` takes the input's (`netshare.dialect`), else NetShare's.
    pub dialect: Option<Dialect>,
    /// Packet framing for captures.
    pub packets: PacketOptions,
}

/// Converts a records file to `output`.
pub fn convert(input: &Path, output: &Path, opts: &ConvertOptions) -> Result<SinkSummary> {
    let format = match opts.format {
        Some(f) => f,
        None => OutputFormat::from_path(output).ok_or_else(|| Error::Format {
            path: output.to_path_buf(),
            message: "cannot tell the format from the extension; use .parquet, .csv, .pcap or \
                      .pcapng, or name the format"
                .into(),
        })?,
    };
    let (kind, meta) = read_metadata(input)?;
    let dialect_meta = meta.get(META_DIALECT).cloned();
    let dialect = opts
        .dialect
        .or_else(|| dialect_meta.as_deref().and_then(Dialect::from_name))
        .unwrap_or_default();
    let wopts = WriteOptions {
        dialect,
        dialect_meta,
        packets: opts.packets,
        addrs: netshare_core::records::read_addr_schema(input)?,
    };
    let mut sink = Sink::create(output, format, kind, &wopts)?;
    for_each_batch(input, |b| sink.write(b))?;
    sink.finish()
}
