//! Field semantics learned from the trace and enforced when decoding: the value resolution of
//! times and continuous fields, the few values an integer field takes (a host sends TTL 64 or
//! 128, not 97), implications between fields (a one-packet flow lasts 0 s), per-protocol
//! ranges (bytes per packet between the protocol's smallest header and the MTU), the few
//! values the port fields of port-less protocols take (ICMP's type and code), and that a
//! flow's two addresses differ.
//!
//! A generator's continuous outputs break such rules in ways a classifier spots at once (a
//! NetFlow duration of 0.317 s with one packet, where real ones are whole milliseconds and 0 for
//! one packet). No amount of training removes those tells, so decoding applies the rules the
//! training records obey. Every rule is fitted on the records (the public ones in private mode)
//! and written into `encoder.json`, so it is visible and reproducible.

use std::collections::{BTreeMap, BTreeSet};

use netshare_core::records::TraceKind;
use serde::{Deserialize, Serialize};

use crate::table::{Column, Table, Value};

/// Share of the records a rule must hold for before it is enforced.
pub const RULE_SUPPORT: f64 = 0.995;
/// Fewest records a conditional rule (an implication, a protocol's range) is fitted from.
pub const MIN_RULE_RECORDS: usize = 20;

/// Most distinct values an integer field may take for its value set to be enforced.
pub const MAX_VALUE_SET: usize = 64;
/// Fewest records per distinct value (on average) for a value set to be enforced: the values
/// must repeat, or the set would only copy the training records.
pub const VALUE_SET_RECORDS_PER_VALUE: usize = 20;

/// A flow whose bytes are within this share of its protocol's bytes-per-packet range has them
/// clamped; further out, its packet count moves instead (see [`Semantics::apply`]).
pub const NEAR_RANGE: f64 = 0.01;

/// Candidate resolutions of continuous values, coarsest first.
const VALUE_QUANTA: [f64; 7] = [1.0, 0.1, 0.01, 0.001, 1e-4, 1e-5, 1e-6];
/// Candidate resolutions of record times in µs, coarsest first.
const TIME_QUANTA_US: [i64; 7] = [1_000_000, 100_000, 10_000, 1000, 100, 10, 1];

/// "When `if_field` is `if_value`, `then_field` is `then_value`."
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Implication {
    /// The conditioning field.
    pub if_field: String,
    /// Its value (the field's smallest value in the records).
    pub if_value: f64,
    /// The implied field.
    pub then_field: String,
    /// The value it takes.
    pub then_value: f64,
    /// Records with `if_field == if_value` the rule was fitted on.
    pub support: usize,
}

/// The range of a field, or of the ratio `field / per`, for each protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtoRange {
    /// The bounded field.
    pub field: String,
    /// The divisor field, when the bound is on a ratio (bytes per packet).
    pub per: Option<String>,
    /// `[min, max]` by protocol number, for protocols with at least [`MIN_RULE_RECORDS`] records.
    pub by_proto: BTreeMap<u8, [f64; 2]>,
    /// `[min, max]` over all records (for the other protocols).
    pub all: [f64; 2],
}

/// Every learned rule of one trace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Semantics {
    /// Record times are multiples of this many µs (1: no coarser resolution).
    pub time_quantum_us: i64,
    /// Non-integer continuous fields whose values are multiples of a quantum.
    pub quanta: BTreeMap<String, f64>,
    /// Integer fields that take few values: every value seen, ascending. A decoded value
    /// becomes the nearest of them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub value_sets: BTreeMap<String, Vec<f64>>,
    /// Implications between fields, applied in order.
    pub implications: Vec<Implication>,
    /// Per-protocol ranges.
    pub ranges: Vec<ProtoRange>,
    /// The values the port fields take in the records of each port-less protocol (every
    /// protocol but [`PORT_PROTOCOLS`]), where each field takes at most [`MAX_VALUE_SET`].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub port_values: BTreeMap<u8, PortValues>,
    /// A record's source and destination addresses differ (they do in all but
    /// [`RULE_SUPPORT`] of the records, of which there are at least [`MIN_RULE_RECORDS`]):
    /// class calibration keeps a generated flow's two frequent addresses apart
    /// ([`Calibration::keep_addresses_apart`](crate::calibrate::Calibration::keep_addresses_apart)),
    /// and decoding any two addresses that still meet
    /// ([`AddrDecoder::decode_distinct`](crate::addr::AddrDecoder::decode_distinct)). A
    /// capture on the loopback interface, where they are the same, gets no such rule.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub distinct_addresses: bool,
}

/// Protocols whose records carry transport ports: TCP, UDP, DCCP, SCTP, UDP-Lite. The others
/// have none, and a flow exporter fills their port fields with something else or 0 (ICMP's
/// type and code in the destination port: 2048 is an echo request).
pub const PORT_PROTOCOLS: [u8; 5] = [6, 17, 33, 132, 136];

/// What the port fields of a port-less protocol's records take, ascending (empty: no rule for
/// that field).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortValues {
    /// Source port values.
    pub srcport: Vec<u16>,
    /// Destination port values.
    pub dstport: Vec<u16>,
}

/// For each port-less protocol among `keys`, the values each port field takes (ascending);
/// a field with more than [`MAX_VALUE_SET`] values gets none.
fn port_values(keys: &[crate::table::FiveTuple]) -> BTreeMap<u8, PortValues> {
    let mut seen: BTreeMap<u8, (BTreeSet<u16>, BTreeSet<u16>)> = BTreeMap::new();
    for k in keys.iter().filter(|k| !PORT_PROTOCOLS.contains(&k.proto)) {
        let e = seen.entry(k.proto).or_default();
        e.0.insert(k.srcport);
        e.1.insert(k.dstport);
    }
    let set = |s: BTreeSet<u16>| {
        if s.len() <= MAX_VALUE_SET {
            s.into_iter().collect()
        } else {
            Vec::new()
        }
    };
    seen.into_iter()
        .map(|(p, (src, dst))| {
            (
                p,
                PortValues {
                    srcport: set(src),
                    dstport: set(dst),
                },
            )
        })
        .filter(|(_, v)| !v.srcport.is_empty() || !v.dstport.is_empty())
        .collect()
}

fn is_multiple(x: f64, q: f64) -> bool {
    let r = x / q;
    (r - r.round()).abs() <= 1e-6 * r.abs().max(1.0)
}

/// The member of `set` (ascending) nearest to `x`, the lower one on a tie; the first for a
/// NaN (no member is below it); `x` when `set` is empty.
fn nearest<T: Copy + PartialOrd + std::ops::Sub<Output = T>>(set: &[T], x: T) -> T {
    let i = set.partition_point(|&s| s < x);
    match (i.checked_sub(1).map(|j| set[j]), set.get(i)) {
        (Some(lo), Some(&hi)) => {
            if x - lo <= hi - x {
                lo
            } else {
                hi
            }
        }
        (Some(lo), None) => lo,
        (None, Some(&hi)) => hi,
        (None, None) => x,
    }
}

/// The integers `x` with `lo <= x / div <= hi`, as `[a, b]`. The bounds were ratios of
/// integers: a relative slack far below one unit keeps f64 rounding of `div * lo` from
/// excluding the value the ratio came from. With a fractional ratio range a small divisor can
/// leave no integer inside; the integer nearest the range's middle is then the best there is.
fn integer_bounds(lo: f64, hi: f64, div: f64) -> (f64, f64) {
    let (lo_x, hi_x) = (div * lo, div * hi);
    let (a, b) = (
        (lo_x - 1e-9 * lo_x.abs()).ceil(),
        (hi_x + 1e-9 * hi_x.abs()).floor(),
    );
    if a <= b {
        (a, b)
    } else {
        let mid = (0.5 * (lo_x + hi_x)).round();
        (mid, mid)
    }
}

/// The clock tick in units of a decimal resolution: the largest `k` in 2..=9 such that most
/// of the nonzero `values` are multiples of `k` units (`multiple(x, k)`), else 1. A router
/// whose clock ticks every 4 ms writes durations in whole ms that are all multiples of 4 ms,
/// and decoding to any other ms is a tell. Needs [`MIN_RULE_RECORDS`] nonzero values.
fn tick<T: PartialEq + Default>(values: &[T], multiple: impl Fn(&T, u32) -> bool) -> u32 {
    let zero = T::default();
    let nonzero: Vec<&T> = values.iter().filter(|x| **x != zero).collect();
    if nonzero.len() < MIN_RULE_RECORDS {
        return 1;
    }
    (2..=9)
        .rev()
        .find(|&k| holds_for_most(&nonzero, |x| multiple(x, k)))
        .unwrap_or(1)
}

fn holds_for_most<T>(values: &[T], mut pred: impl FnMut(&T) -> bool) -> bool {
    if values.is_empty() {
        return false;
    }
    let ok = values.iter().filter(|v| pred(v)).count();
    ok as f64 >= RULE_SUPPORT * values.len() as f64
}

/// The ratio bounded per protocol for a trace kind: (field, divisor).
fn ratio_fields(kind: TraceKind) -> (&'static str, Option<&'static str>) {
    match kind {
        TraceKind::Flows => ("byt", Some("pkt")),
        TraceKind::Packets => ("pkt_len", None),
    }
}

impl Semantics {
    /// Fits the rules on `t`. `integer` names the fields decoded as integers (their resolution
    /// is already 1).
    pub fn fit(t: &Table, integer: &[&str]) -> Semantics {
        let time_quantum_us = TIME_QUANTA_US
            .iter()
            .copied()
            .find(|&q| holds_for_most(&t.time, |&x| x % q == 0))
            .unwrap_or(1);
        let time_quantum_us = time_quantum_us
            * i64::from(tick(&t.time, |&x, k| {
                x % (time_quantum_us * i64::from(k)) == 0
            }));
        let nums: Vec<(&str, &[f64])> = t
            .fields
            .iter()
            .filter_map(|(n, c)| match c {
                Column::Num(v) => Some((n.as_str(), v.as_slice())),
                Column::Cat(_) => None,
            })
            .collect();
        let mut quanta = BTreeMap::new();
        for &(name, v) in &nums {
            if integer.contains(&name) {
                continue;
            }
            let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
            if let Some(q) = VALUE_QUANTA
                .iter()
                .copied()
                .find(|&q| holds_for_most(&finite, |&x| is_multiple(x, q)))
            {
                let k = tick(&finite, |&x, k| is_multiple(x, q * f64::from(k)));
                quanta.insert(name.to_string(), q * f64::from(k));
            }
        }
        let mut value_sets = BTreeMap::new();
        for &(name, v) in &nums {
            if !integer.contains(&name) {
                continue;
            }
            let mut set: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
            let n = set.len();
            set.sort_by(f64::total_cmp);
            set.dedup();
            if !set.is_empty()
                && set.len() <= MAX_VALUE_SET
                && n >= VALUE_SET_RECORDS_PER_VALUE * set.len()
            {
                value_sets.insert(name.to_string(), set);
            }
        }
        let mut implications = Vec::new();
        for &(xname, xv) in &nums {
            if !integer.contains(&xname) {
                continue;
            }
            let Some(min) = xv
                .iter()
                .copied()
                .filter(|x| x.is_finite())
                .reduce(f64::min)
            else {
                continue;
            };
            let rows: Vec<usize> = (0..xv.len()).filter(|&i| xv[i] == min).collect();
            if rows.len() < MIN_RULE_RECORDS {
                continue;
            }
            for &(yname, yv) in &nums {
                if yname == xname {
                    continue;
                }
                let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
                for &i in &rows {
                    *counts.entry(yv[i].to_bits()).or_insert(0) += 1;
                }
                let Some((&bits, &n)) = counts
                    .iter()
                    .max_by_key(|(b, n)| (**n, std::cmp::Reverse(**b)))
                else {
                    continue;
                };
                let c = f64::from_bits(bits);
                let conditional = n as f64 >= RULE_SUPPORT * rows.len() as f64;
                // A field that is constant everywhere needs no rule.
                let everywhere = holds_for_most(yv, |&y| y == c);
                if conditional && !everywhere {
                    implications.push(Implication {
                        if_field: xname.to_string(),
                        if_value: min,
                        then_field: yname.to_string(),
                        then_value: c,
                        support: rows.len(),
                    });
                }
            }
        }
        let mut ranges = Vec::new();
        let (field, per) = ratio_fields(t.kind);
        let col = |name: &str| nums.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        if let Some(fv) = col(field) {
            let dv = per.and_then(col);
            if per.is_none() || dv.is_some() {
                let ratio = |i: usize| match dv {
                    Some(d) if d[i] > 0.0 => Some(fv[i] / d[i]),
                    Some(_) => None,
                    None => Some(fv[i]),
                };
                let mut by: BTreeMap<u8, (f64, f64, usize)> = BTreeMap::new();
                let mut all = (f64::INFINITY, f64::NEG_INFINITY);
                for i in 0..t.len() {
                    let Some(r) = ratio(i).filter(|r| r.is_finite()) else {
                        continue;
                    };
                    let e =
                        by.entry(t.keys[i].proto)
                            .or_insert((f64::INFINITY, f64::NEG_INFINITY, 0));
                    e.0 = e.0.min(r);
                    e.1 = e.1.max(r);
                    e.2 += 1;
                    all = (all.0.min(r), all.1.max(r));
                }
                if all.0 <= all.1 {
                    ranges.push(ProtoRange {
                        field: field.to_string(),
                        per: per.map(String::from),
                        by_proto: by
                            .into_iter()
                            .filter(|(_, e)| e.2 >= MIN_RULE_RECORDS)
                            .map(|(p, e)| (p, [e.0, e.1]))
                            .collect(),
                        all: [all.0, all.1],
                    });
                }
            }
        }
        Semantics {
            time_quantum_us,
            quanta,
            value_sets,
            implications,
            ranges,
            port_values: port_values(&t.keys),
            distinct_addresses: t.keys.len() >= MIN_RULE_RECORDS
                && holds_for_most(&t.keys, |k| k.srcip != k.dstip),
        }
    }

    /// Puts a decoded flow key's port fields under the rules: a port-less protocol's take the
    /// nearest of the values they take in the trace (a generated ICMP flow to port 80 is a
    /// tell no training removes).
    pub fn apply_ports(&self, key: &mut crate::table::FiveTuple) {
        if let Some(v) = self.port_values.get(&key.proto) {
            key.srcport = nearest(&v.srcport, key.srcport);
            key.dstport = nearest(&v.dstport, key.dstport);
        }
    }

    /// Rounds a decoded record time to the trace's resolution.
    pub fn round_time(&self, t: i64) -> i64 {
        let q = self.time_quantum_us.max(1);
        if q == 1 {
            return t;
        }
        let r = t.rem_euclid(q);
        if 2 * r >= q { t - r + q } else { t - r }
    }

    /// Puts decoded flow records' durations and bytes back under the rules after synth moved
    /// them (calibration), keeping their packet counts: [`Semantics::apply`]'s rules, except
    /// that bytes out of the protocol's bytes-per-packet range are clamped into it rather than
    /// the count moved (a one-packet flow lasts 0 s again, durations take the resolution).
    pub fn finish_flows(&self, proto: &[u8], pkt: &[u64], td: &mut [f64], byt: &mut [u64]) {
        let names = ["td", "pkt", "byt"].map(String::from);
        for i in 0..pkt.len() {
            let mut values = [
                Value::Num(td[i]),
                Value::Num(pkt[i] as f64),
                Value::Num(byt[i] as f64),
            ];
            self.apply_rules(&names, proto[i], &mut values, false);
            if let [Value::Num(t), _, Value::Num(b)] = values {
                td[i] = t;
                byt[i] = b.max(0.0).round() as u64;
            }
        }
    }

    /// Puts decoded packets' lengths back under the rules after synth moved them (calibration):
    /// each within its protocol's range, then onto the length's value set where it has one.
    pub fn finish_packets(&self, proto: &[u8], pkt_len: &mut [u16]) {
        let names = [String::from("pkt_len")];
        for (len, &p) in pkt_len.iter_mut().zip(proto) {
            let mut values = [Value::Num(f64::from(*len))];
            self.apply_rules(&names, p, &mut values, false);
            if let [Value::Num(x)] = values {
                *len = x.round().clamp(0.0, f64::from(u16::MAX)) as u16;
            }
        }
    }

    /// Applies the rules to one decoded record's values (`names[i]` is the field of `values[i]`).
    pub fn apply(&self, names: &[String], proto: u8, values: &mut [Value]) {
        self.apply_rules(names, proto, values, true);
    }

    /// [`Semantics::apply`], where `move_divisor` says whether a ratio out of range may move
    /// its divisor (the packet count) instead of clamping the field.
    fn apply_rules(&self, names: &[String], proto: u8, values: &mut [Value], move_divisor: bool) {
        let idx = |name: &str| names.iter().position(|n| n == name);
        for (name, &q) in &self.quanta {
            if let Some(Value::Num(x)) = idx(name).and_then(|i| values.get_mut(i)) {
                *x = (*x / q).round() * q;
            }
        }
        // Value sets come after the ranges: a protocol's bounds are values of the set, so the
        // nearest member of a clamped value stays inside them.
        for r in &self.ranges {
            let [lo, hi] = r.by_proto.get(&proto).copied().unwrap_or(r.all);
            let div = match &r.per {
                Some(p) => match idx(p).and_then(|i| values.get(i)) {
                    Some(Value::Num(d)) => *d,
                    _ => continue,
                },
                None => 1.0,
            };
            let Some(fi) = idx(&r.field) else { continue };
            let Some(&Value::Num(x)) = values.get(fi) else {
                continue;
            };
            let (a, b) = integer_bounds(lo, hi, div);
            let clamped = x.clamp(a, b);
            if clamped == x {
                continue;
            }
            // Out of range by more than NEAR_RANGE (a record's own extreme ratio can decode a
            // unit off): move the divisor (packets) when some count of at least one packet
            // fits, so the bytes keep their value and synth's calibrated marginal. A divisor
            // with a value set keeps it.
            if let Some(p) = &r.per
                && move_divisor
                && lo > 0.0
                && div > 0.0
                && (clamped - x).abs() > NEAR_RANGE * x.abs().max(1.0)
                && !self.value_sets.contains_key(p)
            {
                let d_lo = (x / hi - 1e-9 * (x / hi)).ceil().max(1.0);
                let d_hi = (x / lo + 1e-9 * (x / lo)).floor();
                if d_lo <= d_hi
                    && let Some(Value::Num(d)) = idx(p).and_then(|i| values.get_mut(i))
                {
                    *d = div.clamp(d_lo, d_hi);
                    continue;
                }
            }
            values[fi] = Value::Num(clamped);
        }
        for (name, set) in &self.value_sets {
            if let Some(Value::Num(x)) = idx(name).and_then(|i| values.get_mut(i)) {
                *x = nearest(set, *x);
            }
        }
        for imp in &self.implications {
            let holds = matches!(
                idx(&imp.if_field).and_then(|i| values.get(i)),
                Some(Value::Num(x)) if *x == imp.if_value
            );
            if holds
                && let Some(Value::Num(y)) = idx(&imp.then_field).and_then(|i| values.get_mut(i))
            {
                *y = imp.then_value;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::FiveTuple;

    fn flows(rows: &[(u8, i64, f64, f64, f64)]) -> Table {
        Table {
            kind: TraceKind::Flows,
            keys: rows
                .iter()
                .map(|r| FiveTuple {
                    srcip: netshare_core::addr::v4(1),
                    dstip: netshare_core::addr::v4(2),
                    srcport: 3,
                    dstport: 4,
                    proto: r.0,
                })
                .collect(),
            time: rows.iter().map(|r| r.1).collect(),
            fields: vec![
                ("td".into(), Column::Num(rows.iter().map(|r| r.2).collect())),
                (
                    "pkt".into(),
                    Column::Num(rows.iter().map(|r| r.3).collect()),
                ),
                (
                    "byt".into(),
                    Column::Num(rows.iter().map(|r| r.4).collect()),
                ),
                ("label".into(), Column::Cat(vec!["x".into(); rows.len()])),
            ],
        }
    }

    #[test]
    fn port_less_protocols_keep_the_port_values_of_the_trace() {
        // ICMP: source 0, destination an echo request (2048) or reply (0). GRE (47): source
        // 0, 65 destination values, too many for a rule. TCP ports are ports: no rule.
        let mut rows = vec![(1u8, 0i64, 0.0, 1.0, 84.0); 3];
        rows.extend(vec![(47, 0, 0.0, 1.0, 100.0); 65]);
        rows.extend(vec![(6, 0, 0.0, 1.0, 40.0); 2]);
        let mut t = flows(&rows);
        let ports = [(0, 2048), (0, 0), (0, 2048)];
        for (k, (s, d)) in t.keys.iter_mut().zip(ports) {
            (k.srcport, k.dstport) = (s, d);
        }
        for (i, k) in t.keys[3..68].iter_mut().enumerate() {
            (k.srcport, k.dstport) = (0, 1000 + i as u16);
        }
        let sem = Semantics::fit(&t, &["pkt", "byt"]);
        assert_eq!(
            sem.port_values,
            BTreeMap::from([
                (
                    1,
                    PortValues {
                        srcport: vec![0],
                        dstport: vec![0, 2048]
                    }
                ),
                (
                    47,
                    PortValues {
                        srcport: vec![0],
                        dstport: vec![]
                    }
                ),
            ])
        );
        let key = |proto: u8, srcport: u16, dstport: u16| FiveTuple {
            srcip: netshare_core::addr::v4(1),
            dstip: netshare_core::addr::v4(2),
            srcport,
            dstport,
            proto,
        };
        // 1024 is as far from 0 as from 2048: the tie takes the lower.
        for (before, after) in [
            (key(1, 80, 19297), key(1, 0, 2048)),
            (key(1, 80, 1024), key(1, 0, 0)),
            (key(1, 0, 1025), key(1, 0, 2048)),
            (key(47, 5, 7), key(47, 0, 7)),
            (key(6, 80, 19297), key(6, 80, 19297)),
            (key(50, 80, 19297), key(50, 80, 19297)),
        ] {
            let mut k = before;
            sem.apply_ports(&mut k);
            assert_eq!(k, after);
        }
    }

    #[test]
    fn the_addresses_are_kept_apart_where_the_trace_keeps_them_apart() {
        let mut t = flows(&[(6, 0, 0.0, 1.0, 40.0); 400]);
        let fit = |t: &Table| Semantics::fit(t, &["pkt", "byt"]).distinct_addresses;
        assert!(fit(&t), "no record sends a host to itself");
        // 2 of 400 (0.5%) may; 3 (0.75%) may not.
        let to_itself = |t: &mut Table, n: usize| {
            for k in &mut t.keys[..n] {
                k.dstip = k.srcip;
            }
        };
        to_itself(&mut t, 2);
        assert!(fit(&t));
        to_itself(&mut t, 3);
        assert!(!fit(&t));
        // A loopback capture: every record.
        to_itself(&mut t, 400);
        assert!(!fit(&t));
        // Too few records for a rule.
        assert!(!fit(&flows(
            &[(6, 0, 0.0, 1.0, 40.0); MIN_RULE_RECORDS - 1]
        )));
        assert!(fit(&flows(&[(6, 0, 0.0, 1.0, 40.0); MIN_RULE_RECORDS])));
        // Written only when it holds; an encoder file without it has no such rule.
        let sem = Semantics::fit(&flows(&[(6, 0, 0.0, 1.0, 40.0); 400]), &["pkt", "byt"]);
        let text = serde_json::to_string(&sem).expect("json");
        assert!(text.contains("\"distinct_addresses\":true"), "{text}");
        let without = Semantics {
            distinct_addresses: false,
            ..sem
        };
        let text = serde_json::to_string(&without).expect("json");
        assert!(!text.contains("distinct_addresses"), "{text}");
        let back: Semantics = serde_json::from_str(&text).expect("reads back");
        assert!(!back.distinct_addresses);
    }

    /// 40 one-packet TCP flows (td 0, 40-60 bytes) and 40 longer ones, times in whole ms.
    fn netflow_like() -> Table {
        let mut rows = Vec::new();
        for i in 0..40 {
            rows.push((
                6,
                1_000 * (3 * i + 7),
                0.0,
                1.0,
                40.0 + f64::from(i as u8 % 20),
            ));
            rows.push((
                6,
                1_000 * (5 * i + 1),
                0.001 * f64::from(i as u8 + 3),
                3.0,
                900.0,
            ));
        }
        flows(&rows)
    }

    const INTEGER: [&str; 2] = ["pkt", "byt"];

    #[test]
    fn fits_the_resolution_the_implication_and_the_bytes_per_packet_range() {
        let s = Semantics::fit(&netflow_like(), &INTEGER);
        assert_eq!(s.time_quantum_us, 1000);
        assert_eq!(s.quanta.get("td"), Some(&0.001));
        assert_eq!(
            s.implications,
            vec![Implication {
                if_field: "pkt".into(),
                if_value: 1.0,
                then_field: "td".into(),
                then_value: 0.0,
                support: 40,
            }]
        );
        // pkt takes two values in 80 records; byt takes 21, too few records for each.
        assert_eq!(
            s.value_sets,
            BTreeMap::from([("pkt".to_string(), vec![1.0, 3.0])])
        );
        assert_eq!(s.ranges.len(), 1);
        assert_eq!(s.ranges[0].by_proto.get(&6), Some(&[40.0, 300.0]));
        assert_eq!(s.ranges[0].all, [40.0, 300.0]);
    }

    #[test]
    fn a_clock_that_ticks_every_few_units_is_learned_as_the_resolution() {
        // Times and durations that are all multiples of 4 ms, as a router's 4 ms clock writes.
        let mut rows: Vec<(u8, i64, f64, f64, f64)> = (0..40)
            .map(|i| {
                (
                    6,
                    4_000 * (3 * i + 7),
                    0.004 * f64::from(i as u8),
                    3.0,
                    900.0,
                )
            })
            .collect();
        let s = Semantics::fit(&flows(&rows), &INTEGER);
        assert_eq!(s.time_quantum_us, 4000);
        assert_eq!(s.quanta.get("td"), Some(&0.004));
        // Decoding rounds to the tick.
        assert_eq!(s.round_time(4_000 * 7 + 2_500), 4_000 * 8);
        let names: Vec<String> = ["td", "pkt", "byt"].map(String::from).to_vec();
        let mut v = vec![Value::Num(0.0131), Value::Num(3.0), Value::Num(900.0)];
        s.apply(&names, 6, &mut v);
        assert!(
            matches!(v[0], Value::Num(x) if (x - 0.012).abs() < 1e-12),
            "{v:?}"
        );
        // One duration in 40 off the tick (97.5% < 99.5%): the resolution stays 1 ms.
        rows[5].2 = 0.021;
        let s = Semantics::fit(&flows(&rows), &INTEGER);
        assert_eq!(s.quanta.get("td"), Some(&0.001));
        // Too few nonzero values to tell a tick: the decimal resolution.
        let few: Vec<(u8, i64, f64, f64, f64)> = (0..40)
            .map(|i| (6, 1_000 * i, if i < 10 { 0.008 } else { 0.0 }, 3.0, 900.0))
            .collect();
        let s = Semantics::fit(&flows(&few), &INTEGER);
        assert_eq!(s.quanta.get("td"), Some(&0.001));
        assert_eq!(s.time_quantum_us, 1000, "{s:?}");
    }

    #[test]
    fn finishing_a_calibrated_flow_keeps_its_packets_and_restores_the_rules() {
        let s = Semantics::fit(&netflow_like(), &INTEGER);
        // One packet: bytes into TCP's [40, 300] per packet, and a one-packet flow lasts 0 s.
        // Three packets: bytes up to 120, the duration to whole ms. In range: unchanged.
        let mut td = [0.3171, 0.01234, 0.5];
        let mut byt = [500u64, 100, 600];
        let pkt = [1u64, 3, 3];
        s.finish_flows(&[6, 6, 6], &pkt, &mut td, &mut byt);
        assert_eq!((td[0], byt[0]), (0.0, 300));
        assert_eq!(byt[1], 120);
        assert!((td[1] - 0.012).abs() < 1e-12, "{}", td[1]);
        assert_eq!((td[2], byt[2]), (0.5, 600));
        assert_eq!(pkt, [1, 3, 3]);
    }

    #[test]
    fn decoding_applies_every_rule() {
        let s = Semantics::fit(&netflow_like(), &INTEGER);
        let names: Vec<String> = ["td", "pkt", "byt", "label"].map(String::from).to_vec();
        let mut one = vec![
            Value::Num(0.3171),
            Value::Num(1.0),
            Value::Num(2000.0),
            Value::Cat("x".into()),
        ];
        s.apply(&names, 6, &mut one);
        assert_eq!(one[0], Value::Num(0.0), "one packet lasts 0 s");
        assert_eq!(one[2], Value::Num(300.0), "at most 300 bytes per packet");
        let mut three = vec![
            Value::Num(0.3171),
            Value::Num(3.0),
            Value::Num(10.0),
            Value::Cat("x".into()),
        ];
        s.apply(&names, 6, &mut three);
        assert_eq!(three[0], Value::Num(0.317), "whole milliseconds");
        assert_eq!(three[2], Value::Num(120.0), "at least 40 bytes per packet");
        // A ratio fitted from one record gives that record back exactly (f64 rounding of
        // 12021 * (480842 / 12021) must not push the bound below 480842).
        let one = flows(&[(6, 0, 0.0, 12021.0, 480_842.0)]);
        let r = Semantics::fit(&one, &INTEGER);
        let mut v = vec![
            Value::Num(0.0),
            Value::Num(12021.0),
            Value::Num(480_842.0),
            Value::Cat("x".into()),
        ];
        r.apply(&names, 6, &mut v);
        assert_eq!(v[2], Value::Num(480_842.0));
        // pkt snaps to the values seen (the lower one on a tie), before the implication reads it.
        for (pkt, want, td) in [
            (2.0, 1.0, 0.0),
            (2.6, 3.0, 0.317),
            (0.0, 1.0, 0.0),
            (9.0, 3.0, 0.317),
        ] {
            let mut v = vec![
                Value::Num(0.3171),
                Value::Num(pkt),
                Value::Num(100.0),
                Value::Cat("x".into()),
            ];
            s.apply(&names, 6, &mut v);
            assert_eq!(
                (&v[0], &v[1]),
                (&Value::Num(td), &Value::Num(want)),
                "pkt {pkt}"
            );
        }
        assert_eq!(s.round_time(1_499), 1_000);
        assert_eq!(s.round_time(1_500), 2_000);
        assert_eq!(s.round_time(-1_499), -1_000);
    }

    #[test]
    fn an_out_of_range_ratio_moves_the_packets_unless_the_bytes_are_nearly_in_range() {
        // 80 packet counts (no value set), always 100 bytes per packet.
        let rows: Vec<_> = (1..=80)
            .map(|p| (6, i64::from(p), 1.0, f64::from(p), 100.0 * f64::from(p)))
            .collect();
        let s = Semantics::fit(&flows(&rows), &INTEGER);
        assert!(!s.value_sets.contains_key("pkt"));
        assert_eq!(s.ranges[0].by_proto.get(&6), Some(&[100.0, 100.0]));
        let names: Vec<String> = ["td", "pkt", "byt", "label"].map(String::from).to_vec();
        // (pkt, byt) -> (pkt, byt): 1,000 bytes in 3, 8 or 12 packets take 10 packets; 7
        // bytes fit no count of packets, so the bytes move (to 5 x 100); 1,005 bytes in 10
        // packets are within 1% of the range, so the bytes move (to 1,000); in range, nothing
        // changes.
        for ((pkt, byt), want) in [
            ((3.0, 1000.0), (10.0, 1000.0)),
            ((8.0, 1000.0), (10.0, 1000.0)),
            ((12.0, 1000.0), (10.0, 1000.0)),
            ((5.0, 7.0), (5.0, 500.0)),
            ((10.0, 1005.0), (10.0, 1000.0)),
            ((4.0, 400.0), (4.0, 400.0)),
        ] {
            let mut v = vec![
                Value::Num(1.0),
                Value::Num(pkt),
                Value::Num(byt),
                Value::Cat("x".into()),
            ];
            s.apply(&names, 6, &mut v);
            assert_eq!(
                (&v[1], &v[2]),
                (&Value::Num(want.0), &Value::Num(want.1)),
                "{pkt} {byt}"
            );
        }
    }

    #[test]
    fn a_field_with_more_values_than_a_set_holds_gets_none() {
        // 65 values, 40 records each: above MAX_VALUE_SET though each value repeats.
        let rows: Vec<_> = (0..65 * 40)
            .map(|i| (6, i64::from(i), 0.0, f64::from(1 + i % 65), 1000.0))
            .collect();
        let s = Semantics::fit(&flows(&rows), &INTEGER);
        assert!(!s.value_sets.contains_key("pkt"), "{:?}", s.value_sets);
        // 64 of them are a set.
        let rows: Vec<_> = (0..64 * 20)
            .map(|i| (6, i64::from(i), 0.0, f64::from(1 + i % 64), 1000.0))
            .collect();
        let s = Semantics::fit(&flows(&rows), &INTEGER);
        assert_eq!(s.value_sets.get("pkt").map(Vec::len), Some(64));
    }

    #[test]
    fn rules_that_the_records_do_not_support_are_not_fitted() {
        // Times in µs, durations continuous, one-packet flows with nonzero durations.
        let rows: Vec<_> = (0..60)
            .map(|i| {
                (
                    17,
                    7 * i + 3,
                    0.123_457 * f64::from(i as u8 + 1),
                    1.0,
                    100.0,
                )
            })
            .collect();
        let s = Semantics::fit(&flows(&rows), &INTEGER);
        assert_eq!(s.time_quantum_us, 1);
        assert_eq!(s.quanta.get("td"), Some(&1e-6));
        assert!(s.implications.is_empty(), "{:?}", s.implications);
        // 60 records of one pkt and one byt value: each is its field's whole set.
        assert_eq!(s.value_sets.get("pkt"), Some(&vec![1.0]));
        assert_eq!(s.value_sets.get("byt"), Some(&vec![100.0]));
        assert!(
            !s.value_sets.contains_key("td"),
            "td is not an integer field"
        );
        // Too few records of a protocol: only the overall range applies to it.
        let few: Vec<_> = (0..10).map(|i| (47, i, 0.0, 2.0, 100.0)).collect();
        let s = Semantics::fit(&flows(&few), &INTEGER);
        assert!(s.value_sets.is_empty(), "10 records: {:?}", s.value_sets);
        assert!(s.ranges[0].by_proto.is_empty());
        assert_eq!(s.ranges[0].all, [50.0, 50.0]);
    }
}
