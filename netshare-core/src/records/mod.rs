//! Record schemas and their Parquet files: the tables every stage reads and writes.
//!
//! Two kinds of trace, two schemas, both column-oriented in memory:
//! - packets: one row per IP packet, SPEC §1;
//! - flows: one row per NetFlow record, SPEC §1.
//!
//! Addresses are [`IpAddr`] of either family ([`crate::addr`]). A table whose addresses are all
//! IPv4 is written in the first schema (`netshare.packets.v1`, `netshare.flows.v1`: addresses
//! as unsigned 32-bit integers, network order read as a big-endian number), byte for byte as
//! before IPv6 was carried; a table with any IPv6 address is written in the second
//! (`netshare.packets.v2`, `netshare.flows.v2`): `srcip` and `dstip` as 16-byte fixed-size
//! binary (IPv6 as it is, IPv4 IPv4-mapped) and a last column `ip_version` (4 or 6) saying which.
//! Readers take either. Times are microseconds since the Unix epoch. Files are written with
//! pinned writer properties (snappy, fixed row-group size, fixed `created_by`) so equal tables
//! give equal bytes, and carry the schema name and trace kind in their key-value metadata.
//! pandas / pyarrow read them as they are.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

pub use crate::addr::IpAddr;
use crate::addr::{self as ip};
use crate::error::{Error, Result};

mod columns;
mod file;

pub use columns::AddrSchema;
use columns::{addr_array, addr_type, read_addrs, version_array};
pub use file::{
    RecordsWriter, read_addr_schema, read_flows, read_metadata, read_packets, read_records,
    write_records,
};

/// Metadata key holding the schema name.
pub const META_SCHEMA: &str = "netshare.schema";
/// Metadata key holding the trace kind (`packets` or `flows`).
pub const META_KIND: &str = "netshare.kind";
/// Metadata key holding the CSV dialect a flow trace came in (if any).
pub const META_DIALECT: &str = "netshare.dialect";
/// Rows per Parquet row group (fixed so files are reproducible).
pub const ROW_GROUP_ROWS: usize = 256 * 1024;
/// Name of the second schema's address-family column.
pub const IP_VERSION: &str = "ip_version";

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
    /// The name of the first schema (IPv4 only) for this kind.
    pub fn schema_name(self) -> &'static str {
        self.schema_name_for(AddrSchema::V4Only)
    }

    /// The schema name for this kind with the given address columns.
    pub fn schema_name_for(self, addrs: AddrSchema) -> &'static str {
        match (self, addrs) {
            (TraceKind::Packets, AddrSchema::V4Only) => "netshare.packets.v1",
            (TraceKind::Flows, AddrSchema::V4Only) => "netshare.flows.v1",
            (TraceKind::Packets, AddrSchema::Mixed) => "netshare.packets.v2",
            (TraceKind::Flows, AddrSchema::Mixed) => "netshare.flows.v2",
        }
    }

    /// The Arrow schema for this kind with the given address columns.
    pub fn schema(self, addrs: AddrSchema) -> SchemaRef {
        match self {
            TraceKind::Packets => PacketColumns::schema(addrs),
            TraceKind::Flows => FlowColumns::schema(addrs),
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
/// conversions to and from Arrow record batches. Every table starts with the two address
/// columns `srcip` and `dstip` ([`IpAddr`]); the listed fields follow.
macro_rules! table {
    (
        $(#[$tmeta:meta])* $table:ident, $(#[$rmeta:meta])* $row:ident, $kind:expr;
        $( $(#[$fmeta:meta])* $field:ident : $ty:ty => $dtype:ident, $arr:ident; )+
    ) => {
        $(#[$rmeta])*
        #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
        pub struct $row {
            /// Source address.
            pub srcip: IpAddr,
            /// Destination address.
            pub dstip: IpAddr,
            $( $(#[$fmeta])* pub $field: $ty, )+
        }

        impl Default for $row {
            /// Addresses `0.0.0.0`, every other field its type's default.
            fn default() -> Self {
                $row { srcip: ip::UNSPECIFIED, dstip: ip::UNSPECIFIED, $( $field: Default::default(), )+ }
            }
        }

        $(#[$tmeta])*
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct $table {
            /// Source addresses.
            pub srcip: Vec<IpAddr>,
            /// Destination addresses.
            pub dstip: Vec<IpAddr>,
            $( $(#[$fmeta])* pub $field: Vec<$ty>, )+
        }

        impl $table {
            /// The trace kind of this table.
            pub const KIND: TraceKind = $kind;

            /// The Arrow schema (no nullable columns) with the given address columns.
            pub fn schema(addrs: AddrSchema) -> SchemaRef {
                let mut fields = vec![
                    Field::new("srcip", addr_type(addrs), false),
                    Field::new("dstip", addr_type(addrs), false),
                    $( Field::new(stringify!($field), DataType::$dtype, false), )+
                ];
                if addrs == AddrSchema::Mixed {
                    fields.push(Field::new(IP_VERSION, DataType::UInt8, false));
                }
                Arc::new(Schema::new(fields))
            }

            /// The schema this table's addresses need (v1 when all are IPv4).
            pub fn addr_schema(&self) -> AddrSchema {
                AddrSchema::for_addresses(&self.srcip, &self.dstip)
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
                Self {
                    srcip: Vec::with_capacity(n),
                    dstip: Vec::with_capacity(n),
                    $( $field: Vec::with_capacity(n), )+
                }
            }

            /// Appends one row.
            pub fn push(&mut self, r: $row) {
                self.srcip.push(r.srcip);
                self.dstip.push(r.dstip);
                $( self.$field.push(r.$field); )+
            }

            /// Row `i` (panics when out of range, like slice indexing).
            pub fn row(&self, i: usize) -> $row {
                $row { srcip: self.srcip[i], dstip: self.dstip[i], $( $field: self.$field[i].clone(), )+ }
            }

            /// Appends all rows of another table.
            pub fn extend(&mut self, other: &Self) {
                self.srcip.extend_from_slice(&other.srcip);
                self.dstip.extend_from_slice(&other.dstip);
                $( self.$field.extend_from_slice(&other.$field); )+
            }

            /// Removes every row, keeping the allocations.
            pub fn clear(&mut self) {
                self.srcip.clear();
                self.dstip.clear();
                $( self.$field.clear(); )+
            }

            /// The rows in the order given by `order` (a permutation or a selection of indices).
            pub fn take(&self, order: &[usize]) -> Self {
                Self {
                    srcip: order.iter().map(|&i| self.srcip[i]).collect(),
                    dstip: order.iter().map(|&i| self.dstip[i]).collect(),
                    $( $field: order.iter().map(|&i| self.$field[i].clone()).collect(), )+
                }
            }

            /// Converts to an Arrow record batch in the schema its addresses need.
            pub fn to_batch(&self) -> Result<RecordBatch> {
                self.to_batch_as(self.addr_schema())
            }

            /// Converts to an Arrow record batch with the given address columns (`V4Only` with
            /// an IPv6 address is refused).
            pub fn to_batch_as(&self, addrs: AddrSchema) -> Result<RecordBatch> {
                let mut cols: Vec<ArrayRef> = vec![
                    addr_array(&self.srcip, addrs, "srcip")?,
                    addr_array(&self.dstip, addrs, "dstip")?,
                    $( Arc::new(arrow_array::$arr::from(self.$field.clone())) as ArrayRef, )+
                ];
                if addrs == AddrSchema::Mixed {
                    cols.push(version_array(&self.srcip, &self.dstip)?);
                }
                Ok(RecordBatch::try_new(Self::schema(addrs), cols)?)
            }

            /// Appends the rows of an Arrow record batch of this kind (either schema).
            pub fn append_batch(&mut self, batch: &RecordBatch, path: &Path) -> Result<()> {
                let (src, dst) = read_addrs(batch, path, Self::KIND)?;
                self.srcip.extend(src);
                self.dstip.extend(dst);
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
    /// Packet records, column-oriented (schema `netshare.packets.v1`, or `v2` with IPv6).
    PacketColumns,
    /// One IP packet.
    PacketRecord, TraceKind::Packets;
    /// Source port (0 for protocols without ports, non-first fragments, or a cut-off L4 header).
    srcport: u16 => UInt16, UInt16Array;
    /// Destination port (0 as for `srcport`).
    dstport: u16 => UInt16, UInt16Array;
    /// IP protocol number.
    proto: u8 => UInt8, UInt8Array;
    /// Capture time, microseconds since the Unix epoch.
    time_us: i64 => Int64, Int64Array;
    /// IP total length (bytes on the wire at the IP layer; IPv6: 40 + payload length).
    pkt_len: u16 => UInt16, UInt16Array;
    /// Type of service byte (IPv6: traffic class).
    tos: u8 => UInt8, UInt8Array;
    /// IP identification (IPv6: the low 16 bits of a Fragment header's, else 0).
    id: u16 => UInt16, UInt16Array;
    /// IP flags: `frag_off >> 13` (IPv6: 1 when a Fragment header says more fragments follow).
    flag: u8 => UInt8, UInt8Array;
    /// Fragment offset: `frag_off & 0x1fff` (IPv6: a Fragment header's, in 8-byte units).
    off: u16 => UInt16, UInt16Array;
    /// Time to live (IPv6: hop limit).
    ttl: u8 => UInt8, UInt8Array;
}

table! {
    /// Flow records, column-oriented (schema `netshare.flows.v1`, or `v2` with IPv6).
    FlowColumns,
    /// One NetFlow record.
    FlowRecord, TraceKind::Flows;
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

/// A flow key: (srcip, dstip, srcport, dstport, proto), ordered field by field in that order
/// (as the tuple of the five would be). The one five-tuple type of every crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct FiveTuple {
    /// Source address.
    pub srcip: IpAddr,
    /// Destination address.
    pub dstip: IpAddr,
    /// Source port.
    pub srcport: u16,
    /// Destination port.
    pub dstport: u16,
    /// IP protocol number.
    pub proto: u8,
}

/// Hashes an address as the first schema's `u32` field did when it is IPv4 (so hash maps keyed
/// by an all-IPv4 trace's five-tuples iterate as before), as its 128 bits when IPv6.
fn hash_addr<H: std::hash::Hasher>(a: IpAddr, state: &mut H) {
    use std::hash::Hash;
    match a {
        IpAddr::V4(v) => u32::from(v).hash(state),
        IpAddr::V6(v) => u128::from(v).hash(state),
    }
}

impl std::hash::Hash for FiveTuple {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        hash_addr(self.srcip, state);
        hash_addr(self.dstip, state);
        self.srcport.hash(state);
        self.dstport.hash(state);
        self.proto.hash(state);
    }
}

impl FiveTuple {
    /// A seeded 64-bit hash of the five-tuple (SplitMix64's finaliser), stable across runs and
    /// platforms: what splits a trace by five-tuple. An all-IPv4 key hashes as it did when
    /// addresses were `u32`; a key with an IPv6 address first folds each address to 64 bits.
    pub fn seeded_hash(&self, seed: u64) -> u64 {
        use crate::seed::mix64;
        let a = match (ip::v4_bits(self.srcip), ip::v4_bits(self.dstip)) {
            (Some(s), Some(d)) => (u64::from(s) << 32) | u64::from(d),
            _ => mix64(ip::key64(self.srcip)) ^ ip::key64(self.dstip).rotate_left(32),
        };
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

    /// The schema this table's addresses need (v1 when all are IPv4).
    pub fn addr_schema(&self) -> AddrSchema {
        match self {
            Records::Packets(t) => t.addr_schema(),
            Records::Flows(t) => t.addr_schema(),
        }
    }

    /// The schema name this table is written in.
    pub fn schema_name(&self) -> &'static str {
        self.kind().schema_name_for(self.addr_schema())
    }

    fn to_batch_as(&self, addrs: AddrSchema) -> Result<RecordBatch> {
        match self {
            Records::Packets(t) => t.to_batch_as(addrs),
            Records::Flows(t) => t.to_batch_as(addrs),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_flows() -> FlowColumns {
        let mut t = FlowColumns::default();
        for i in 0..5u32 {
            t.push(FlowRecord {
                srcip: ip::v4(0x0a00_0001 + i),
                dstip: ip::v4(0xc0a8_0101),
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
