//! A kind-independent view of a records table: the five-tuple, the time and the non-key fields
//! as numeric or categorical columns, and the way back to typed records.

pub use netshare_core::records::FiveTuple;
use netshare_core::records::{FlowColumns, PacketColumns, Records, TraceKind};

use crate::config::trace_fields;

/// One non-key column.
#[derive(Clone, Debug, PartialEq)]
pub enum Column {
    /// Numbers (integers are exact in f64 up to 2^53).
    Num(Vec<f64>),
    /// Category names (packet `flag` is written as its decimal digit).
    Cat(Vec<String>),
}

/// A records table in the encoder's terms.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// The trace kind.
    pub kind: TraceKind,
    /// Five-tuple per row.
    pub keys: Vec<FiveTuple>,
    /// Time per row in µs (packet time or flow start).
    pub time: Vec<i64>,
    /// The non-key fields in [`trace_fields`] order.
    pub fields: Vec<(String, Column)>,
}

impl Table {
    /// Converts typed records.
    pub fn from_records(records: &Records) -> Table {
        match records {
            Records::Flows(t) => Table {
                kind: TraceKind::Flows,
                keys: (0..t.len())
                    .map(|i| netshare_core::five_tuple_of!(t, i))
                    .collect(),
                time: t.ts_us.clone(),
                fields: vec![
                    ("td".into(), Column::Num(t.td.clone())),
                    ("pkt".into(), num(&t.pkt)),
                    ("byt".into(), num(&t.byt)),
                    ("label".into(), Column::Cat(t.label.clone())),
                ],
            },
            Records::Packets(t) => Table {
                kind: TraceKind::Packets,
                keys: (0..t.len())
                    .map(|i| netshare_core::five_tuple_of!(t, i))
                    .collect(),
                time: t.time_us.clone(),
                fields: vec![
                    ("pkt_len".into(), num(&t.pkt_len)),
                    ("tos".into(), num(&t.tos)),
                    ("id".into(), num(&t.id)),
                    (
                        "flag".into(),
                        Column::Cat(t.flag.iter().map(|f| f.to_string()).collect()),
                    ),
                    ("off".into(), num(&t.off)),
                    ("ttl".into(), num(&t.ttl)),
                ],
            },
        }
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The column of a field.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }
}

fn num<T: Copy + Widen>(v: &[T]) -> Column {
    Column::Num(v.iter().map(|&x| x.widen()).collect())
}

/// Widening of the integer column types to f64 (u64 values above 2^53 lose their lowest bits,
/// far beyond any packet or byte count).
trait Widen {
    fn widen(self) -> f64;
}

macro_rules! widen {
    ($($t:ty),*) => {$(
        impl Widen for $t {
            fn widen(self) -> f64 { self as f64 }
        }
    )*};
}
widen!(u8, u16, u64);

/// One decoded row's non-key values, in [`trace_fields`] order.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A number (already rounded for integer fields).
    Num(f64),
    /// A category.
    Cat(String),
}

/// Builds typed records from decoded rows: `(key, time, values)` per row.
pub(crate) struct RecordsBuilder {
    out: Records,
}

impl RecordsBuilder {
    pub(crate) fn new(kind: TraceKind, capacity: usize) -> Self {
        RecordsBuilder {
            out: match kind {
                TraceKind::Flows => Records::Flows(FlowColumns::with_capacity(capacity)),
                TraceKind::Packets => Records::Packets(PacketColumns::with_capacity(capacity)),
            },
        }
    }

    /// Appends a row; `values` are in [`trace_fields`] order of the kind. Numbers are clamped
    /// into the column type's range (decoders already keep them in the fitted bounds).
    pub(crate) fn push(&mut self, key: FiveTuple, time: i64, values: &[Value]) {
        let n = |i: usize| match values.get(i) {
            Some(Value::Num(x)) => *x,
            Some(Value::Cat(s)) => s.parse::<f64>().unwrap_or(0.0),
            None => 0.0,
        };
        let s = |i: usize| match values.get(i) {
            Some(Value::Cat(s)) => s.clone(),
            Some(Value::Num(x)) => x.to_string(),
            None => String::new(),
        };
        match &mut self.out {
            Records::Flows(t) => {
                debug_assert_eq!(trace_fields(TraceKind::Flows).len(), 4);
                t.srcip.push(key.srcip);
                t.dstip.push(key.dstip);
                t.srcport.push(key.srcport);
                t.dstport.push(key.dstport);
                t.proto.push(key.proto);
                t.ts_us.push(time);
                t.td.push(n(0).max(0.0));
                t.pkt.push(to_u64(n(1)));
                t.byt.push(to_u64(n(2)));
                t.label.push(s(3));
            }
            Records::Packets(t) => {
                t.srcip.push(key.srcip);
                t.dstip.push(key.dstip);
                t.srcport.push(key.srcport);
                t.dstport.push(key.dstport);
                t.proto.push(key.proto);
                t.time_us.push(time);
                t.pkt_len.push(clamp_to(n(0), u16::MAX as f64) as u16);
                t.tos.push(clamp_to(n(1), 255.0) as u8);
                t.id.push(clamp_to(n(2), u16::MAX as f64) as u16);
                t.flag.push(clamp_to(n(3), 7.0) as u8);
                t.off.push(clamp_to(n(4), 8191.0) as u16);
                t.ttl.push(clamp_to(n(5), 255.0) as u8);
            }
        }
    }

    pub(crate) fn finish(self) -> Records {
        self.out
    }
}

fn clamp_to(x: f64, max: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.round().clamp(0.0, max)
    }
}

fn to_u64(x: f64) -> u64 {
    // `as` saturates for out-of-range floats and maps NaN to 0, which is what we want.
    x.round().max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use netshare_core::records::PacketRecord;

    #[test]
    fn packet_rows_go_through_the_table_and_back() {
        let mut p = PacketColumns::default();
        p.push(PacketRecord {
            srcip: netshare_core::addr::v4(1),
            dstip: netshare_core::addr::v4(2),
            srcport: 3,
            dstport: 4,
            proto: 6,
            time_us: 10,
            pkt_len: 60,
            tos: 1,
            id: 999,
            flag: 2,
            off: 0,
            ttl: 64,
        });
        let t = Table::from_records(&Records::Packets(p.clone()));
        let mut b = RecordsBuilder::new(TraceKind::Packets, 1);
        let vals: Vec<Value> = t
            .fields
            .iter()
            .map(|(_, c)| match c {
                Column::Num(v) => Value::Num(v[0]),
                Column::Cat(v) => Value::Cat(v[0].clone()),
            })
            .collect();
        b.push(t.keys[0], t.time[0], &vals);
        assert_eq!(b.finish(), Records::Packets(p));
    }
}
