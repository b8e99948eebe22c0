//! Record schemas and their Parquet files: the tables every stage reads and writes.
//!
//! Two kinds of trace, two schemas, both column-oriented in memory:
//! - packets (`netshare.packets.v1`): one row per IPv4 packet, SPEC §1;
//! - flows (`netshare.flows.v1`): one row per NetFlow record, SPEC §1.
//!
//! IPs are unsigned 32-bit integers (network order read as a big-endian number), times are
//! microseconds since the Unix epoch. Files are written with pinned writer properties (snappy,
//! fixed row-group size, fixed `created_by`) so equal tables give equal bytes, and carry the schema
//! name and trace kind in their key-value metadata. pandas / pyarrow read them as they are.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::error::{Error, Result};

/// Metadata key holding the schema name.
pub const META_SCHEMA: &str = "netshare.schema";
/// Metadata key holding the trace kind (`packets` or `flows`).
pub const META_KIND: &str = "netshare.kind";
/// Metadata key holding the CSV dialect a flow trace came in (if any).
pub const META_DIALECT: &str = "netshare.dialect";
/// Rows per Parquet row group (fixed so files are reproducible).
pub const ROW_GROUP_ROWS: usize = 256 * 1024;

/// The kind of a trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TraceKind {
    /// Packet records.
    Packets,
    /// Flow records.
    Flows,
}

impl TraceKind {
    /// The schema name for this kind.
    pub fn schema_name(self) -> &'static str {
        match self {
            TraceKind::Packets => "netshare.packets.v1",
            TraceKind::Flows => "netshare.flows.v1",
        }
    }

    /// The Arrow schema for this kind.
    pub fn schema(self) -> SchemaRef {
        match self {
            TraceKind::Packets => PacketColumns::schema(),
            TraceKind::Flows => FlowColumns::schema(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            TraceKind::Packets => "packets",
            TraceKind::Flows => "flows",
        }
    }
}

/// Defines a column-oriented table type with one `Vec` per field, a row struct, and the
/// conversions to and from Arrow record batches.
macro_rules! table {
    (
        $(#[$tmeta:meta])* $table:ident, $(#[$rmeta:meta])* $row:ident, $kind:expr;
        $( $(#[$fmeta:meta])* $field:ident : $ty:ty => $dtype:ident, $arr:ident; )+
    ) => {
        $(#[$rmeta])*
        #[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        pub struct $row {
            $( $(#[$fmeta])* pub $field: $ty, )+
        }

        $(#[$tmeta])*
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct $table {
            $( $(#[$fmeta])* pub $field: Vec<$ty>, )+
        }

        impl $table {
            /// The trace kind of this table.
            pub const KIND: TraceKind = $kind;

            /// The Arrow schema (no nullable columns).
            pub fn schema() -> SchemaRef {
                Arc::new(Schema::new(vec![
                    $( Field::new(stringify!($field), DataType::$dtype, false), )+
                ]))
            }

            /// Number of rows.
            pub fn len(&self) -> usize {
                self.srcip.len()
            }

            /// True when there are no rows.
            pub fn is_empty(&self) -> bool {
                self.srcip.is_empty()
            }

            /// An empty table with room for `n` rows.
            pub fn with_capacity(n: usize) -> Self {
                Self { $( $field: Vec::with_capacity(n), )+ }
            }

            /// Appends one row.
            pub fn push(&mut self, r: $row) {
                $( self.$field.push(r.$field); )+
            }

            /// Row `i` (panics when out of range, like slice indexing).
            pub fn row(&self, i: usize) -> $row {
                $row { $( $field: self.$field[i].clone(), )+ }
            }

            /// Appends all rows of another table.
            pub fn extend(&mut self, other: &Self) {
                $( self.$field.extend_from_slice(&other.$field); )+
            }

            /// Removes every row, keeping the allocations.
            pub fn clear(&mut self) {
                $( self.$field.clear(); )+
            }

            /// The rows in the order given by `order` (a permutation or a selection of indices).
            pub fn take(&self, order: &[usize]) -> Self {
                Self { $( $field: order.iter().map(|&i| self.$field[i].clone()).collect(), )+ }
            }

            /// Converts to an Arrow record batch.
            pub fn to_batch(&self) -> Result<RecordBatch> {
                let cols: Vec<ArrayRef> = vec![
                    $( Arc::new(arrow_array::$arr::from(self.$field.clone())) as ArrayRef, )+
                ];
                Ok(RecordBatch::try_new(Self::schema(), cols)?)
            }

            /// Appends the rows of an Arrow record batch with this table's schema.
            pub fn append_batch(&mut self, batch: &RecordBatch, path: &Path) -> Result<()> {
                $(
                    let col = batch.column_by_name(stringify!($field)).ok_or_else(|| Error::Schema {
                        path: path.to_path_buf(),
                        message: format!("missing column {:?} (schema {})", stringify!($field), Self::KIND.schema_name()),
                    })?;
                    let arr = col.as_any().downcast_ref::<arrow_array::$arr>().ok_or_else(|| Error::Schema {
                        path: path.to_path_buf(),
                        message: format!("column {:?} has type {}, expected {}", stringify!($field), col.data_type(), DataType::$dtype),
                    })?;
                    if arr.null_count() > 0 {
                        return Err(Error::Schema {
                            path: path.to_path_buf(),
                            message: format!("column {:?} has {} nulls", stringify!($field), arr.null_count()),
                        });
                    }
                    table!(@extend self.$field, arr, $arr);
                )+
                Ok(())
            }
        }
    };
    (@extend $dst:expr, $a:ident, StringArray) => {
        $dst.extend($a.iter().map(|v| v.unwrap_or_default().to_string()))
    };
    (@extend $dst:expr, $a:ident, $other:ident) => {
        $dst.extend_from_slice($a.values())
    };
}

table! {
    /// Packet records, column-oriented (schema `netshare.packets.v1`).
    PacketColumns,
    /// One IPv4 packet.
    PacketRecord, TraceKind::Packets;
    /// Source IPv4 address.
    srcip: u32 => UInt32, UInt32Array;
    /// Destination IPv4 address.
    dstip: u32 => UInt32, UInt32Array;
    /// Source port (0 for protocols without ports, non-first fragments, or a cut-off L4 header).
    srcport: u16 => UInt16, UInt16Array;
    /// Destination port (0 as for `srcport`).
    dstport: u16 => UInt16, UInt16Array;
    /// IP protocol number.
    proto: u8 => UInt8, UInt8Array;
    /// Capture time, microseconds since the Unix epoch.
    time_us: i64 => Int64, Int64Array;
    /// IP total length (bytes on the wire at the IP layer).
    pkt_len: u16 => UInt16, UInt16Array;
    /// Type of service byte.
    tos: u8 => UInt8, UInt8Array;
    /// IP identification.
    id: u16 => UInt16, UInt16Array;
    /// IP flags: `frag_off >> 13`.
    flag: u8 => UInt8, UInt8Array;
    /// Fragment offset: `frag_off & 0x1fff`.
    off: u16 => UInt16, UInt16Array;
    /// Time to live.
    ttl: u8 => UInt8, UInt8Array;
}

table! {
    /// Flow records, column-oriented (schema `netshare.flows.v1`).
    FlowColumns,
    /// One NetFlow record.
    FlowRecord, TraceKind::Flows;
    /// Source IPv4 address.
    srcip: u32 => UInt32, UInt32Array;
    /// Destination IPv4 address.
    dstip: u32 => UInt32, UInt32Array;
    /// Source port.
    srcport: u16 => UInt16, UInt16Array;
    /// Destination port.
    dstport: u16 => UInt16, UInt16Array;
    /// IP protocol number.
    proto: u8 => UInt8, UInt8Array;
    /// Flow start, microseconds since the Unix epoch.
    ts_us: i64 => Int64, Int64Array;
    /// Duration in seconds.
    td: f64 => Float64, Float64Array;
    /// Packets in the flow.
    pkt: u64 => UInt64, UInt64Array;
    /// Bytes in the flow.
    byt: u64 => UInt64, UInt64Array;
    /// Label / traffic type ("" when the input had none).
    label: String => Utf8, StringArray;
}

/// A flow key: (srcip, dstip, srcport, dstport, proto), ordered and hashed field by field in
/// that order (as the tuple of the five would be). The one five-tuple type of every crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct FiveTuple {
    /// Source IPv4 address.
    pub srcip: u32,
    /// Destination IPv4 address.
    pub dstip: u32,
    /// Source port.
    pub srcport: u16,
    /// Destination port.
    pub dstport: u16,
    /// IP protocol number.
    pub proto: u8,
}

impl FiveTuple {
    /// A seeded 64-bit hash of the five-tuple (SplitMix64's finaliser), stable across runs and
    /// platforms: what splits a trace by five-tuple.
    pub fn seeded_hash(&self, seed: u64) -> u64 {
        use crate::seed::mix64;
        let a = (u64::from(self.srcip) << 32) | u64::from(self.dstip);
        let b = (u64::from(self.srcport) << 24)
            | (u64::from(self.dstport) << 8)
            | u64::from(self.proto);
        mix64(mix64(a ^ mix64(seed)) ^ b.wrapping_add(crate::seed::GOLDEN))
    }
}

/// The five-tuple of row `i` of any table with the five key columns (records of either kind,
/// and the evaluator's and encoder's views of them).
#[macro_export]
macro_rules! five_tuple_of {
    ($t:expr, $i:expr) => {
        $crate::records::FiveTuple {
            srcip: $t.srcip[$i],
            dstip: $t.dstip[$i],
            srcport: $t.srcport[$i],
            dstport: $t.dstport[$i],
            proto: $t.proto[$i],
        }
    };
}

/// A records table of either kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Records {
    /// Packet records.
    Packets(PacketColumns),
    /// Flow records.
    Flows(FlowColumns),
}

impl Records {
    /// The trace kind.
    pub fn kind(&self) -> TraceKind {
        match self {
            Records::Packets(_) => TraceKind::Packets,
            Records::Flows(_) => TraceKind::Flows,
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            Records::Packets(t) => t.len(),
            Records::Flows(t) => t.len(),
        }
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The five-tuple of row `i`.
    pub fn five_tuple(&self, i: usize) -> FiveTuple {
        match self {
            Records::Packets(t) => crate::five_tuple_of!(t, i),
            Records::Flows(t) => crate::five_tuple_of!(t, i),
        }
    }

    fn to_batch(&self) -> Result<RecordBatch> {
        match self {
            Records::Packets(t) => t.to_batch(),
            Records::Flows(t) => t.to_batch(),
        }
    }
}

/// Streams record batches of one kind into a Parquet file with pinned properties.
pub struct RecordsWriter {
    writer: ArrowWriter<File>,
    kind: TraceKind,
    path: std::path::PathBuf,
}

impl RecordsWriter {
    /// Creates the file. `extra` key-value metadata (e.g. the dialect) is stored sorted.
    pub fn create(path: &Path, kind: TraceKind, extra: &[(&str, &str)]) -> Result<Self> {
        Self::create_with_plain_columns(path, kind, extra, &[])
    }

    /// Like [`RecordsWriter::create`], but the named columns are written without dictionary
    /// encoding. For columns with nearly unique values (packet times, IP ids) the dictionary
    /// only fills up and falls back to plain encoding after doing the work of hashing every
    /// value; skipping it makes writing large packet tables several times cheaper. The bytes
    /// stay deterministic; with no names the file is exactly what `create` writes.
    pub fn create_with_plain_columns(
        path: &Path,
        kind: TraceKind,
        extra: &[(&str, &str)],
        plain: &[&str],
    ) -> Result<Self> {
        let file = File::create(path).map_err(|e| Error::io("creating", path, e))?;
        let mut kv = vec![
            KeyValue::new(META_KIND.to_string(), kind.name().to_string()),
            KeyValue::new(META_SCHEMA.to_string(), kind.schema_name().to_string()),
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
        let writer = ArrowWriter::try_new(file, kind.schema(), Some(props)).map_err(|source| {
            Error::Parquet {
                path: path.to_path_buf(),
                source,
            }
        })?;
        Ok(RecordsWriter {
            writer,
            kind,
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
        let batch = records.to_batch()?;
        self.writer.write(&batch).map_err(|source| Error::Parquet {
            path: self.path.clone(),
            source,
        })
    }

    /// Appends packet rows.
    pub fn write_packets(&mut self, t: &PacketColumns) -> Result<()> {
        self.write_batch(TraceKind::Packets, t.to_batch()?)
    }

    /// Appends flow rows.
    pub fn write_flows(&mut self, t: &FlowColumns) -> Result<()> {
        self.write_batch(TraceKind::Flows, t.to_batch()?)
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

/// Writes a whole table to a Parquet file.
pub fn write_records(path: &Path, records: &Records, extra: &[(&str, &str)]) -> Result<()> {
    let mut w = RecordsWriter::create(path, records.kind(), extra)?;
    w.write(records)?;
    w.finish()
}

/// The kind and key-value metadata of a records file.
pub fn read_metadata(
    path: &Path,
) -> Result<(TraceKind, std::collections::BTreeMap<String, String>)> {
    let file = File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|source| Error::Parquet {
            path: path.to_path_buf(),
            source,
        })?;
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

/// IANA protocol numbers for the names NetFlow dialects use.
pub fn proto_from_name(name: &str) -> Option<u8> {
    let n = name.trim();
    if let Ok(v) = n.parse::<u8>() {
        return Some(v);
    }
    Some(match n.to_ascii_uppercase().as_str() {
        "ICMP" => 1,
        "IGMP" => 2,
        "IPIP" | "IPINIP" | "IP-IN-IP" => 4,
        "TCP" => 6,
        "UDP" => 17,
        "IPV6" => 41,
        "RSVP" => 46,
        "GRE" => 47,
        "ESP" => 50,
        "AH" => 51,
        "ICMP6" | "IPV6-ICMP" | "ICMPV6" => 58,
        "SCTP" => 132,
        _ => return None,
    })
}

/// The name NetShare's CSV layout uses for a protocol number (the number itself when unnamed).
pub fn proto_name(proto: u8) -> String {
    match proto {
        1 => "ICMP".into(),
        2 => "IGMP".into(),
        4 => "IPIP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        41 => "IPv6".into(),
        46 => "RSVP".into(),
        47 => "GRE".into(),
        50 => "ESP".into(),
        51 => "AH".into(),
        58 => "ICMP6".into(),
        132 => "SCTP".into(),
        n => n.to_string(),
    }
}

/// Dotted-quad text of an IPv4 address held as u32.
pub fn ip_to_string(ip: u32) -> String {
    std::net::Ipv4Addr::from(ip).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_flows() -> FlowColumns {
        let mut t = FlowColumns::default();
        for i in 0..5u32 {
            t.push(FlowRecord {
                srcip: 0x0a00_0001 + i,
                dstip: 0xc0a8_0101,
                srcport: 1000 + i as u16,
                dstport: 53,
                proto: 17,
                ts_us: 1_458_000_000_000_000 + i as i64,
                td: 0.5 * i as f64,
                pkt: i as u64 + 1,
                byt: 100 * (i as u64 + 1),
                label: if i % 2 == 0 {
                    "background".into()
                } else {
                    "dos".into()
                },
            });
        }
        t
    }

    #[test]
    fn flows_round_trip_through_parquet_with_identical_bytes_each_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.parquet");
        let b = dir.path().join("b.parquet");
        let t = sample_flows();
        write_records(
            &a,
            &Records::Flows(t.clone()),
            &[(META_DIALECT, "netshare")],
        )
        .expect("write a");
        write_records(
            &b,
            &Records::Flows(t.clone()),
            &[(META_DIALECT, "netshare")],
        )
        .expect("write b");
        assert_eq!(std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"));
        assert_eq!(read_flows(&a).expect("read"), t);
        let (kind, kv) = read_metadata(&a).expect("meta");
        assert_eq!(kind, TraceKind::Flows);
        assert_eq!(kv.get(META_DIALECT).map(String::as_str), Some("netshare"));
    }

    #[test]
    fn reading_packets_from_a_flow_file_names_the_mismatch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a.parquet");
        write_records(&a, &Records::Flows(sample_flows()), &[]).expect("write");
        let err = read_packets(&a).expect_err("kind mismatch").to_string();
        assert!(err.contains("expected packet records"), "{err}");
    }

    #[test]
    fn protocol_names_map_to_iana_numbers_and_back() {
        for (name, n) in [
            ("TCP", 6),
            ("udp", 17),
            ("ICMP", 1),
            ("GRE", 47),
            ("ESP", 50),
            ("IPIP", 4),
            ("IPv6", 41),
        ] {
            assert_eq!(proto_from_name(name), Some(n), "{name}");
            assert_eq!(proto_from_name(&proto_name(n)), Some(n));
        }
        assert_eq!(proto_from_name("bogus"), None);
    }
}
