//! The address columns of the two record schemas: `UInt32` (v1, IPv4 only) or 16-byte
//! fixed-size binary plus `ip_version` (v2), to Arrow and back.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;

use super::{IP_VERSION, IpAddr, TraceKind};
use crate::addr as ip;
use crate::error::{Error, Result};

/// How a file holds its addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AddrSchema {
    /// Schema v1: IPv4 only, `UInt32` columns.
    #[default]
    V4Only,
    /// Schema v2: either family, `FixedSizeBinary(16)` columns and `ip_version`.
    Mixed,
}

impl AddrSchema {
    /// The schema a table with these address columns needs (v1 when all are IPv4).
    pub fn for_addresses(src: &[IpAddr], dst: &[IpAddr]) -> Self {
        if ip::any_v6(src, dst) {
            AddrSchema::Mixed
        } else {
            AddrSchema::V4Only
        }
    }
}

/// The Arrow type of an address column.
pub(super) fn addr_type(addrs: AddrSchema) -> DataType {
    match addrs {
        AddrSchema::V4Only => DataType::UInt32,
        AddrSchema::Mixed => DataType::FixedSizeBinary(16),
    }
}

/// One address column as Arrow. `V4Only` with an IPv6 address is refused.
pub(super) fn addr_array(v: &[IpAddr], addrs: AddrSchema, name: &str) -> Result<ArrayRef> {
    Ok(match addrs {
        AddrSchema::V4Only => {
            let mut out = Vec::with_capacity(v.len());
            for (i, &a) in v.iter().enumerate() {
                out.push(ip::v4_bits(a).ok_or_else(|| {
                    Error::Invalid(format!(
                        "row {i}: {name} {a} is IPv6 and the file's schema holds IPv4 only"
                    ))
                })?);
            }
            Arc::new(arrow_array::UInt32Array::from(out)) as ArrayRef
        }
        AddrSchema::Mixed => {
            let bytes: Vec<[u8; 16]> = v.iter().map(|&a| ip::to_u128(a).to_be_bytes()).collect();
            Arc::new(
                arrow_array::FixedSizeBinaryArray::try_from_iter(bytes.into_iter())
                    .expect("every value has the declared 16 bytes"),
            ) as ArrayRef
        }
    })
}

/// The `ip_version` column. A record has one IP version: a row whose addresses are of two
/// families is refused.
pub(super) fn version_array(src: &[IpAddr], dst: &[IpAddr]) -> Result<ArrayRef> {
    let mut v = Vec::with_capacity(src.len());
    for (i, (&s, &d)) in src.iter().zip(dst).enumerate() {
        if s.is_ipv6() != d.is_ipv6() {
            return Err(Error::Invalid(format!(
                "row {i}: srcip {s} and dstip {d} are of two IP versions; a record has one"
            )));
        }
        v.push(ip::version(s));
    }
    Ok(Arc::new(arrow_array::UInt8Array::from(v)) as ArrayRef)
}

/// Reads the two address columns of a batch of either schema.
pub(super) fn read_addrs(
    batch: &RecordBatch,
    path: &Path,
    kind: TraceKind,
) -> Result<(Vec<IpAddr>, Vec<IpAddr>)> {
    let schema_err = |message: String| Error::Schema {
        path: path.to_path_buf(),
        message,
    };
    let col = |name: &str| {
        batch.column_by_name(name).ok_or_else(|| {
            schema_err(format!(
                "missing column {name:?} (schema {} or {})",
                kind.schema_name_for(AddrSchema::V4Only),
                kind.schema_name_for(AddrSchema::Mixed)
            ))
        })
    };
    let src = col("srcip")?;
    let dst = col("dstip")?;
    for (name, c) in [("srcip", src), ("dstip", dst)] {
        if c.null_count() > 0 {
            return Err(schema_err(format!(
                "column {name:?} has {} nulls",
                c.null_count()
            )));
        }
    }
    match src.data_type() {
        DataType::UInt32 => {
            let mut out = (Vec::new(), Vec::new());
            for (name, c, o) in [("srcip", src, &mut out.0), ("dstip", dst, &mut out.1)] {
                let a = c
                    .as_any()
                    .downcast_ref::<arrow_array::UInt32Array>()
                    .ok_or_else(|| {
                        schema_err(format!(
                            "column {name:?} has type {}, expected UInt32 like srcip",
                            c.data_type()
                        ))
                    })?;
                o.extend(a.values().iter().map(|&b| ip::v4(b)));
            }
            Ok(out)
        }
        DataType::FixedSizeBinary(16) => {
            let ver = col(IP_VERSION)?;
            let ver = ver
                .as_any()
                .downcast_ref::<arrow_array::UInt8Array>()
                .filter(|v| v.null_count() == 0)
                .ok_or_else(|| {
                    schema_err(format!(
                        "column {IP_VERSION:?} must be UInt8 without nulls, found {}",
                        ver.data_type()
                    ))
                })?;
            let mut out = (Vec::new(), Vec::new());
            for (name, c, o) in [("srcip", src, &mut out.0), ("dstip", dst, &mut out.1)] {
                let a = c
                    .as_any()
                    .downcast_ref::<arrow_array::FixedSizeBinaryArray>()
                    .filter(|a| a.value_length() == 16)
                    .ok_or_else(|| {
                        schema_err(format!(
                            "column {name:?} has type {}, expected FixedSizeBinary(16) like srcip",
                            c.data_type()
                        ))
                    })?;
                for i in 0..a.len() {
                    let bytes: [u8; 16] = a.value(i).try_into().expect("16-byte values");
                    let bits = u128::from_be_bytes(bytes);
                    let v = ver.value(i);
                    if !(v == 6 || (v == 4 && ip::is_v4_mapped(bits))) {
                        return Err(schema_err(format!(
                            "row {i}: {name} {} with {IP_VERSION} {v} (expected 6, or 4 with an \
                             IPv4-mapped address)",
                            ip::v6(bits)
                        )));
                    }
                    o.push(ip::from_u128(v, bits));
                }
            }
            Ok(out)
        }
        other => Err(schema_err(format!(
            "column \"srcip\" has type {other}, expected UInt32 (schema {}) or \
             FixedSizeBinary(16) (schema {})",
            kind.schema_name_for(AddrSchema::V4Only),
            kind.schema_name_for(AddrSchema::Mixed)
        ))),
    }
}
