//! Record tables in Parquet files: the streaming writer with pinned properties, and the
//! readers of either kind and either schema.

use std::fs::File;
use std::path::Path;

use arrow_array::RecordBatch;
use arrow_schema::DataType;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use super::{
    AddrSchema, FlowColumns, META_KIND, META_SCHEMA, PacketColumns, ROW_GROUP_ROWS, Records,
    TraceKind,
};
use crate::error::{Error, Result};

/// Streams record batches of one kind into a Parquet file with pinned properties.
pub struct RecordsWriter {
    writer: ArrowWriter<File>,
    kind: TraceKind,
    addrs: AddrSchema,
    path: std::path::PathBuf,
}

impl RecordsWriter {
    /// Creates the file. `extra` key-value metadata (e.g. the dialect) is stored sorted.
    /// `addrs` is the address schema of the whole file (a writer streams, so it cannot wait
    /// to see every row): `V4Only` refuses IPv6 rows.
    pub fn create(
        path: &Path,
        kind: TraceKind,
        addrs: AddrSchema,
        extra: &[(&str, &str)],
    ) -> Result<Self> {
        Self::create_with_plain_columns(path, kind, addrs, extra, &[])
    }

    /// Like [`RecordsWriter::create`], but the named columns are written without dictionary
    /// encoding. For columns with nearly unique values (packet times, IP ids) the dictionary
    /// only fills up and falls back to plain encoding after doing the work of hashing every
    /// value; skipping it makes writing large packet tables several times cheaper. The bytes
    /// stay deterministic; with no names the file is exactly what `create` writes.
    pub fn create_with_plain_columns(
        path: &Path,
        kind: TraceKind,
        addrs: AddrSchema,
        extra: &[(&str, &str)],
        plain: &[&str],
    ) -> Result<Self> {
        let file = File::create(path).map_err(|e| Error::io("creating", path, e))?;
        let mut kv = vec![
            KeyValue::new(META_KIND.to_string(), kind.name().to_string()),
            KeyValue::new(
                META_SCHEMA.to_string(),
                kind.schema_name_for(addrs).to_string(),
            ),
        ];
        kv.extend(
            extra
                .iter()
                .map(|(k, v)| KeyValue::new(k.to_string(), v.to_string())),
        );
        kv.sort_by(|a, b| a.key.cmp(&b.key));
        let mut props = WriterProperties::builder()
            .set_created_by("netshare-rs".to_string())
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_key_value_metadata(Some(kv));
        for name in plain {
            props = props.set_column_dictionary_enabled(
                parquet::schema::types::ColumnPath::from(*name),
                false,
            );
        }
        let props = props.build();
        let writer =
            ArrowWriter::try_new(file, kind.schema(addrs), Some(props)).map_err(|source| {
                Error::Parquet {
                    path: path.to_path_buf(),
                    source,
                }
            })?;
        Ok(RecordsWriter {
            writer,
            kind,
            addrs,
            path: path.to_path_buf(),
        })
    }

    /// Appends a table; its kind must match the writer's.
    pub fn write(&mut self, records: &Records) -> Result<()> {
        if records.kind() != self.kind {
            return Err(Error::Schema {
                path: self.path.clone(),
                message: format!(
                    "cannot write {:?} rows into a {:?} file",
                    records.kind(),
                    self.kind
                ),
            });
        }
        let batch = self.named(records.to_batch_as(self.addrs))?;
        self.writer.write(&batch).map_err(|source| Error::Parquet {
            path: self.path.clone(),
            source,
        })
    }

    /// The file's address schema.
    pub fn addr_schema(&self) -> AddrSchema {
        self.addrs
    }

    /// Names the file in an error converting rows.
    fn named(&self, r: Result<RecordBatch>) -> Result<RecordBatch> {
        r.map_err(|e| match e {
            Error::Invalid(message) => Error::Schema {
                path: self.path.clone(),
                message,
            },
            other => other,
        })
    }

    /// Appends packet rows.
    pub fn write_packets(&mut self, t: &PacketColumns) -> Result<()> {
        let batch = self.named(t.to_batch_as(self.addrs))?;
        self.write_batch(TraceKind::Packets, batch)
    }

    /// Appends flow rows.
    pub fn write_flows(&mut self, t: &FlowColumns) -> Result<()> {
        let batch = self.named(t.to_batch_as(self.addrs))?;
        self.write_batch(TraceKind::Flows, batch)
    }

    fn write_batch(&mut self, kind: TraceKind, batch: RecordBatch) -> Result<()> {
        if kind != self.kind {
            return Err(Error::Schema {
                path: self.path.clone(),
                message: format!("cannot write {kind:?} rows into a {:?} file", self.kind),
            });
        }
        self.writer.write(&batch).map_err(|source| Error::Parquet {
            path: self.path.clone(),
            source,
        })
    }

    /// Finishes the file (footer, fsync).
    pub fn finish(self) -> Result<()> {
        let path = self.path;
        let file = self.writer.into_inner().map_err(|source| Error::Parquet {
            path: path.clone(),
            source,
        })?;
        file.sync_all().map_err(|e| Error::io("syncing", &path, e))
    }
}

/// Writes a whole table to a Parquet file, in the first schema when every address is IPv4.
pub fn write_records(path: &Path, records: &Records, extra: &[(&str, &str)]) -> Result<()> {
    let mut w = RecordsWriter::create(path, records.kind(), records.addr_schema(), extra)?;
    w.write(records)?;
    w.finish()
}

/// A Parquet reader builder over a records file (its schema and metadata, before any row).
fn open_builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>> {
    let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|source| Error::Parquet {
        path: path.to_path_buf(),
        source,
    })
}

/// The kind and key-value metadata of a records file.
pub fn read_metadata(
    path: &Path,
) -> Result<(TraceKind, std::collections::BTreeMap<String, String>)> {
    let builder = open_builder(path)?;
    let kv: std::collections::BTreeMap<String, String> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kvs| {
            kvs.iter()
                .filter_map(|kv| kv.value.clone().map(|v| (kv.key.clone(), v)))
                .collect()
        })
        .unwrap_or_default();
    let kind = match kv.get(META_KIND).map(String::as_str) {
        Some("packets") => TraceKind::Packets,
        Some("flows") => TraceKind::Flows,
        other => {
            // A file written by another tool: decide by its columns.
            let schema = builder.schema();
            if schema.field_with_name("time_us").is_ok() {
                TraceKind::Packets
            } else if schema.field_with_name("ts_us").is_ok() {
                TraceKind::Flows
            } else {
                return Err(Error::Schema {
                    path: path.to_path_buf(),
                    message: format!(
                        "not a netshare records file (kind {other:?}; expected columns of {} or {})",
                        TraceKind::Packets.schema_name(),
                        TraceKind::Flows.schema_name()
                    ),
                });
            }
        }
    };
    Ok((kind, kv))
}

/// The address schema of a records file, from the type of its `srcip` column.
pub fn read_addr_schema(path: &Path) -> Result<AddrSchema> {
    let builder = open_builder(path)?;
    match builder
        .schema()
        .field_with_name("srcip")
        .map(|f| f.data_type())
    {
        Ok(DataType::FixedSizeBinary(16)) => Ok(AddrSchema::Mixed),
        _ => Ok(AddrSchema::V4Only),
    }
}

/// Reads a whole records file of either kind.
pub fn read_records(path: &Path) -> Result<Records> {
    let (kind, _) = read_metadata(path)?;
    let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.with_batch_size(64 * 1024).build())
        .map_err(|source| Error::Parquet {
            path: path.to_path_buf(),
            source,
        })?;
    let mut out = match kind {
        TraceKind::Packets => Records::Packets(PacketColumns::default()),
        TraceKind::Flows => Records::Flows(FlowColumns::default()),
    };
    for batch in reader {
        let batch = batch?;
        match &mut out {
            Records::Packets(t) => t.append_batch(&batch, path)?,
            Records::Flows(t) => t.append_batch(&batch, path)?,
        }
    }
    Ok(out)
}

/// Reads a packet records file, failing with a clear error if it holds flows.
pub fn read_packets(path: &Path) -> Result<PacketColumns> {
    match read_records(path)? {
        Records::Packets(t) => Ok(t),
        Records::Flows(_) => Err(Error::Schema {
            path: path.to_path_buf(),
            message: "expected packet records, found flow records".to_string(),
        }),
    }
}

/// Reads a flow records file, failing with a clear error if it holds packets.
pub fn read_flows(path: &Path) -> Result<FlowColumns> {
    match read_records(path)? {
        Records::Flows(t) => Ok(t),
        Records::Packets(_) => Err(Error::Schema {
            path: path.to_path_buf(),
            message: "expected flow records, found packet records".to_string(),
        }),
    }
}
