//! NetFlow-derived CSV to flow records: the dialects, their detection from the header, and
//! row parsing that names the file and line of every bad row.
//!
//! Columns are found by name, so extra columns (UGR16's derived ones, TON_IoT's dozens) are
//! ignored and column order does not matter. Times are read as UTC.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use netshare_core::records::{FlowColumns, ROW_GROUP_ROWS, proto_from_name};
use serde::{Deserialize, Serialize};

use crate::error::{IngestError, Result};
use crate::report::{BadRow, FileReport, MAX_BAD_ROW_EXAMPLES, Tally};
use crate::{IngestConfig, OnError};

/// A CSV flow dialect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// NetShare's own layout: `srcip,dstip,srcport,dstport,proto,ts,td,pkt,byt,type`.
    Netshare,
    /// nfdump CSV as in UGR'16: `te,td,sa,da,sp,dp,pr,flg,fwd,stos,pkt,byt,label`; `te` is
    /// the flow's END time. Also read without a header (the raw UGR'16 files).
    Ugr16,
    /// CIDDS-001: `Date first seen,Duration,Proto,Src IP Addr,Src Pt,...,class,...`.
    Cidds,
    /// TON_IoT network: `ts,src_ip,src_port,dst_ip,dst_port,proto,service,duration,...`.
    Ton,
}

impl Dialect {
    /// The dialect's name (as in configs and the `netshare.dialect` metadata).
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Netshare => "netshare",
            Dialect::Ugr16 => "ugr16",
            Dialect::Cidds => "cidds",
            Dialect::Ton => "ton",
        }
    }

    /// Every dialect.
    pub const ALL: [Dialect; 4] = [
        Dialect::Netshare,
        Dialect::Ugr16,
        Dialect::Cidds,
        Dialect::Ton,
    ];

    /// Column names (lower case) this dialect needs, in the order of [`Cols`]'s fields
    /// src, dst, sp, dp, proto, time, td.
    fn required(self) -> [&'static str; 7] {
        match self {
            Dialect::Netshare => ["srcip", "dstip", "srcport", "dstport", "proto", "ts", "td"],
            Dialect::Ugr16 => ["sa", "da", "sp", "dp", "pr", "te", "td"],
            Dialect::Cidds => [
                "src ip addr",
                "dst ip addr",
                "src pt",
                "dst pt",
                "proto",
                "date first seen",
                "duration",
            ],
            Dialect::Ton => [
                "src_ip", "dst_ip", "src_port", "dst_port", "proto", "ts", "duration",
            ],
        }
    }

    fn packets(self) -> &'static [&'static str] {
        match self {
            Dialect::Netshare | Dialect::Ugr16 => &["pkt"],
            Dialect::Cidds => &["packets"],
            Dialect::Ton => &["src_pkts", "dst_pkts"],
        }
    }

    fn bytes(self) -> &'static [&'static str] {
        match self {
            Dialect::Netshare | Dialect::Ugr16 => &["byt"],
            Dialect::Cidds => &["bytes"],
            // IP-level bytes, as NetFlow counts them.
            Dialect::Ton => &["src_ip_bytes", "dst_ip_bytes"],
        }
    }

    fn labels(self) -> &'static [&'static str] {
        match self {
            Dialect::Netshare => &["type", "label"],
            Dialect::Ugr16 => &["label", "lable"],
            Dialect::Cidds => &["class"],
            Dialect::Ton => &["type", "label"],
        }
    }
}

/// Which dialect to read: detect from the header, or a fixed one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DialectChoice {
    /// Detect from the header.
    #[default]
    Auto,
    /// NetShare's own layout.
    Netshare,
    /// nfdump / UGR'16.
    Ugr16,
    /// CIDDS-001.
    Cidds,
    /// TON_IoT.
    Ton,
}

impl DialectChoice {
    fn fixed(self) -> Option<Dialect> {
        match self {
            DialectChoice::Auto => None,
            DialectChoice::Netshare => Some(Dialect::Netshare),
            DialectChoice::Ugr16 => Some(Dialect::Ugr16),
            DialectChoice::Cidds => Some(Dialect::Cidds),
            DialectChoice::Ton => Some(Dialect::Ton),
        }
    }
}

/// Field positions of one file.
#[derive(Clone, Debug)]
struct Cols {
    src: usize,
    dst: usize,
    sp: usize,
    dp: usize,
    proto: usize,
    time: usize,
    td: usize,
    pkt: Vec<usize>,
    byt: Vec<usize>,
    label: Option<usize>,
    /// Headerless files: the first row is data.
    headerless: bool,
}

fn normalise(h: &str) -> String {
    h.trim()
        .trim_start_matches('\u{feff}')
        .trim()
        .to_ascii_lowercase()
}

fn columns_for(d: Dialect, header: &[String]) -> std::result::Result<Cols, String> {
    let find = |n: &str| header.iter().position(|h| h == n);
    let mut req = [0usize; 7];
    let mut missing = Vec::new();
    for (slot, name) in req.iter_mut().zip(d.required()) {
        match find(name) {
            Some(i) => *slot = i,
            None => missing.push(name),
        }
    }
    let mut pkt = Vec::new();
    let mut byt = Vec::new();
    for n in d.packets() {
        match find(n) {
            Some(i) => pkt.push(i),
            None => missing.push(n),
        }
    }
    for n in d.bytes() {
        match find(n) {
            Some(i) => byt.push(i),
            None => missing.push(n),
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "a {} header needs the columns {:?}; missing {:?}",
            d.name(),
            d.required(),
            missing
        ));
    }
    Ok(Cols {
        src: req[0],
        dst: req[1],
        sp: req[2],
        dp: req[3],
        proto: req[4],
        time: req[5],
        td: req[6],
        pkt,
        byt,
        label: d.labels().iter().find_map(|n| find(n)),
        headerless: false,
    })
}

/// Headerless nfdump CSV of UGR'16: te,td,sa,da,sp,dp,pr,flg,fwd,stos,pkt,byt,label.
fn ugr16_headerless(n_fields: usize) -> Cols {
    Cols {
        src: 2,
        dst: 3,
        sp: 4,
        dp: 5,
        proto: 6,
        time: 0,
        td: 1,
        pkt: vec![10],
        byt: vec![11],
        label: (n_fields > 12).then_some(12),
        headerless: true,
    }
}

/// Decides the dialect of a CSV from its first line: `Ok(None)` when it is not a CSV of any
/// known dialect (the caller then describes the file).
pub fn detect(
    first_line: &str,
    choice: DialectChoice,
) -> std::result::Result<Option<Dialect>, String> {
    let fields: Vec<String> = first_line.split(',').map(normalise).collect();
    let headerless_ugr = fields.len() >= 12 && parse_datetime_us(&fields[0]).is_some();
    if let Some(d) = choice.fixed() {
        if d == Dialect::Ugr16 && headerless_ugr {
            return Ok(Some(d));
        }
        columns_for(d, &fields)?;
        return Ok(Some(d));
    }
    for d in Dialect::ALL {
        if columns_for(d, &fields).is_ok() {
            return Ok(Some(d));
        }
    }
    if headerless_ugr {
        return Ok(Some(Dialect::Ugr16));
    }
    Ok(None)
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-mm-dd HH:MM:SS[.fff]` (or with `T`) as µs since the epoch, UTC.
pub fn parse_datetime_us(s: &str) -> Option<i64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b' ' || b[10] == b'T') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut frac_us = 0i64;
    if b.len() > 19 {
        if b[19] != b'.' {
            return None;
        }
        let digits = s.get(20..)?;
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        for (i, c) in digits.bytes().take(6).enumerate() {
            frac_us += (c - b'0') as i64 * 10i64.pow(5 - i as u32);
        }
    }
    let days = days_from_civil(y, mo as u32, d as u32);
    Some(((days * 86_400 + h * 3600 + mi * 60 + se) * 1_000_000) + frac_us)
}

/// Dotted quad, or the address as an unsigned integer. `Err(true)` for an IPv6 address.
fn parse_ip(s: &str) -> std::result::Result<u32, bool> {
    if let Ok(a) = s.parse::<std::net::Ipv4Addr>() {
        return Ok(u32::from(a));
    }
    if let Ok(v) = s.parse::<u32>() {
        return Ok(v);
    }
    // NetShare's CSVs sometimes hold the integer as a float ("1730436467.0").
    if let Ok(f) = s.parse::<f64>()
        && f.fract() == 0.0
        && (0.0..=u32::MAX as f64).contains(&f)
    {
        return Ok(f as u32);
    }
    Err(s.contains(':'))
}

fn parse_port(s: &str) -> Option<u16> {
    if let Ok(v) = s.parse::<u16>() {
        return Some(v);
    }
    // CIDDS writes ICMP type.code in the port column ("3.3"); keep the integer part.
    let f = s.parse::<f64>().ok()?;
    (f.is_finite() && (0.0..65536.0).contains(&f)).then_some(f as u16)
}

/// A count, possibly with nfdump's scale suffix ("1.2 M", decimal multiples).
fn parse_count(s: &str) -> Option<u64> {
    if let Ok(v) = s.parse::<u64>() {
        return Some(v);
    }
    let (num, mult) = match s.trim_end().strip_suffix(['K', 'k', 'M', 'G']) {
        Some(n) => {
            let m = match s.trim_end().as_bytes().last() {
                Some(b'K' | b'k') => 1e3,
                Some(b'M') => 1e6,
                _ => 1e9,
            };
            (n.trim(), m)
        }
        None => (s, 1.0),
    };
    let f = num.parse::<f64>().ok()? * mult;
    (0.0..1.8e19).contains(&f).then_some(f.round() as u64)
}

fn parse_seconds(s: &str) -> Option<f64> {
    let f = s.parse::<f64>().ok()?;
    (f.is_finite() && f >= 0.0).then_some(f)
}

/// A row that cannot become a record: a bad field, or an IPv6 flow (counted, not carried).
enum RowSkip {
    Bad(String),
    Ipv6,
}

struct Row {
    srcip: u32,
    dstip: u32,
    sp: u16,
    dp: u16,
    proto: u8,
    ts_us: i64,
    td: f64,
    pkt: u64,
    byt: u64,
}

fn field<'a>(
    rec: &'a csv::ByteRecord,
    i: usize,
    name: &str,
) -> std::result::Result<&'a str, RowSkip> {
    let raw = rec.get(i).ok_or_else(|| {
        RowSkip::Bad(format!(
            "has {} fields, column {name:?} is field {}",
            rec.len(),
            i + 1
        ))
    })?;
    std::str::from_utf8(raw)
        .map(str::trim)
        .map_err(|_| RowSkip::Bad(format!("field {name:?} is not UTF-8")))
}

fn parse_row(d: Dialect, c: &Cols, rec: &csv::ByteRecord) -> std::result::Result<Row, RowSkip> {
    let bad = |name: &str, v: &str, what: &str| RowSkip::Bad(format!("{name} {v:?} is not {what}"));
    let ip = |i: usize, name: &str| -> std::result::Result<u32, RowSkip> {
        let v = field(rec, i, name)?;
        parse_ip(v).map_err(|v6| {
            if v6 {
                RowSkip::Ipv6
            } else {
                bad(name, v, "an IPv4 address (dotted or integer)")
            }
        })
    };
    let srcip = ip(c.src, "srcip")?;
    let dstip = ip(c.dst, "dstip")?;
    let port = |i: usize, name: &str| -> std::result::Result<u16, RowSkip> {
        let v = field(rec, i, name)?;
        parse_port(v).ok_or_else(|| bad(name, v, "a port number"))
    };
    let sp = port(c.sp, "srcport")?;
    let dp = port(c.dp, "dstport")?;
    let pv = field(rec, c.proto, "proto")?;
    let proto = proto_from_name(pv).ok_or_else(|| bad("proto", pv, "a protocol name or number"))?;
    let tdv = field(rec, c.td, "duration")?;
    let td = parse_seconds(tdv)
        .ok_or_else(|| bad("duration", tdv, "a non-negative number of seconds"))?;
    let tv = field(rec, c.time, "time")?;
    let ts_us = match d {
        Dialect::Netshare => tv
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && f.abs() < 9.2e18)
            .map(|f| f.round() as i64)
            .ok_or_else(|| bad("ts", tv, "a time in microseconds"))?,
        Dialect::Ugr16 => {
            let te =
                parse_datetime_us(tv).ok_or_else(|| bad("te", tv, "a time YYYY-mm-dd HH:MM:SS"))?;
            te - (td * 1e6).round() as i64
        }
        Dialect::Cidds => parse_datetime_us(tv)
            .ok_or_else(|| bad("Date first seen", tv, "a time YYYY-mm-dd HH:MM:SS.fff"))?,
        Dialect::Ton => tv
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && f.abs() < 9.2e12)
            .map(|f| (f * 1e6).round() as i64)
            .ok_or_else(|| bad("ts", tv, "a Unix time in seconds"))?,
    };
    let sum = |cols: &[usize], name: &str| -> std::result::Result<u64, RowSkip> {
        let mut t = 0u64;
        for &i in cols {
            let v = field(rec, i, name)?;
            let n = parse_count(v).ok_or_else(|| bad(name, v, "a count"))?;
            t = t.saturating_add(n);
        }
        Ok(t)
    };
    Ok(Row {
        srcip,
        dstip,
        sp,
        dp,
        proto,
        ts_us,
        td,
        pkt: sum(&c.pkt, "packets")?,
        byt: sum(&c.byt, "bytes")?,
    })
}

/// Reads one CSV flow file of a known dialect, calling `emit` with each full batch.
#[allow(clippy::too_many_arguments)]
pub fn read_csv<R: Read>(
    src: R,
    dialect: Dialect,
    name: &str,
    path: &Path,
    cfg: &IngestConfig,
    tally: &mut Tally,
    bad_rows: &mut Vec<BadRow>,
    batch: &mut FlowColumns,
    emit: &mut dyn FnMut(FlowColumns) -> Result<()>,
) -> Result<FileReport> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .buffer_capacity(1 << 20)
        .from_reader(src);
    let mut rec = csv::ByteRecord::new();
    let mut cols: Option<Cols> = None;
    let mut read = 0u64;
    let mut kept = 0u64;
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    loop {
        let more = rdr.read_byte_record(&mut rec).map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            IngestError::CsvRow {
                path: path.to_path_buf(),
                line,
                message: format!("unreadable CSV: {e}"),
            }
        })?;
        if !more {
            break;
        }
        let line = rec.position().map_or(0, |p| p.line());
        let c = match &cols {
            Some(c) => c,
            None => {
                let header: Vec<String> = rec
                    .iter()
                    .map(|f| normalise(&String::from_utf8_lossy(f)))
                    .collect();
                let is_data = header.len() >= 12 && parse_datetime_us(&header[0]).is_some();
                let c = if dialect == Dialect::Ugr16 && is_data {
                    ugr16_headerless(header.len())
                } else {
                    columns_for(dialect, &header).map_err(|message| IngestError::CsvHeader {
                        path: path.to_path_buf(),
                        message,
                    })?
                };
                let headerless = c.headerless;
                cols = Some(c);
                if !headerless {
                    continue;
                }
                cols.as_ref().expect("set just above")
            }
        };
        if rec.len() == 1 && rec.get(0).is_some_and(|f| f.is_empty()) {
            continue;
        }
        read += 1;
        match parse_row(dialect, c, &rec) {
            Ok(r) => {
                let label = c
                    .label
                    .and_then(|i| rec.get(i))
                    .map(|l| String::from_utf8_lossy(l).trim().to_string())
                    .unwrap_or_default();
                kept += 1;
                tally.see(r.ts_us, r.srcip, r.dstip, r.sp, r.dp, r.proto);
                batch.srcip.push(r.srcip);
                batch.dstip.push(r.dstip);
                batch.srcport.push(r.sp);
                batch.dstport.push(r.dp);
                batch.proto.push(r.proto);
                batch.ts_us.push(r.ts_us);
                batch.td.push(r.td);
                batch.pkt.push(r.pkt);
                batch.byt.push(r.byt);
                batch.label.push(label);
                if batch.len() >= ROW_GROUP_ROWS {
                    emit(std::mem::take(batch))?;
                }
            }
            Err(RowSkip::Ipv6) => *skipped.entry("ipv6_address".into()).or_default() += 1,
            Err(RowSkip::Bad(message)) => {
                if cfg.on_error == OnError::Fail {
                    return Err(IngestError::CsvRow {
                        path: path.to_path_buf(),
                        line,
                        message: format!("{message} (use on_error = skip to skip bad rows)"),
                    });
                }
                *skipped.entry("bad_row".into()).or_default() += 1;
                if bad_rows.len() < MAX_BAD_ROW_EXAMPLES {
                    bad_rows.push(BadRow {
                        file: name.to_string(),
                        line,
                        message,
                    });
                }
            }
        }
    }
    for (k, v) in &skipped {
        *tally.skipped.entry(k.clone()).or_default() += v;
    }
    tally.records_read += read;
    tally.records_kept += kept;
    Ok(FileReport {
        name: name.to_string(),
        format: "csv".to_string(),
        dialect: Some(dialect.name().to_string()),
        link_types: BTreeMap::new(),
        records_read: read,
        records_kept: kept,
        skipped,
        notes: BTreeMap::new(),
        bytes_read: rdr.position().byte(),
        damage: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_are_utc_microseconds() {
        assert_eq!(parse_datetime_us("1970-01-01 00:00:00"), Some(0));
        assert_eq!(
            parse_datetime_us("2016-04-11 00:03:17"),
            Some(1_460_332_997_000_000)
        );
        assert_eq!(
            parse_datetime_us("2017-03-15 00:01:16.632"),
            Some(1_489_536_076_632_000)
        );
        assert_eq!(parse_datetime_us("2017-03-15 00:01:16."), None);
        assert_eq!(parse_datetime_us("2017-13-15 00:01:16"), None);
        assert_eq!(parse_datetime_us("not a date at all!!"), None);
    }

    #[test]
    fn counts_accept_nfdump_suffixes() {
        assert_eq!(parse_count("42"), Some(42));
        assert_eq!(parse_count("1.2 M"), Some(1_200_000));
        assert_eq!(parse_count("3 K"), Some(3000));
        assert_eq!(parse_count("-1"), None);
        assert_eq!(parse_count("x"), None);
    }

    #[test]
    fn ips_dotted_integer_or_ipv6() {
        assert_eq!(parse_ip("10.0.0.1"), Ok(0x0a00_0001));
        assert_eq!(parse_ip("167772161"), Ok(0x0a00_0001));
        assert_eq!(parse_ip("fe80::1"), Err(true));
        assert_eq!(parse_ip("EXT_SERVER"), Err(false));
    }

    #[test]
    fn headers_pick_their_dialect() {
        let cases = [
            (
                "srcip,dstip,srcport,dstport,proto,ts,td,pkt,byt,type",
                Some(Dialect::Netshare),
            ),
            (
                "te,td,sa,da,sp,dp,pr,flg,fwd,stos,pkt,byt,lable,byt-1",
                Some(Dialect::Ugr16),
            ),
            (
                "2016-03-18 00:00:00,0.000,42.219.153.7,1.2.3.4,53,53,UDP,.A....,0,0,1,80,background",
                Some(Dialect::Ugr16),
            ),
            (
                "Date first seen,Duration,Proto,Src IP Addr,Src Pt,Dst IP Addr,Dst Pt,Packets,Bytes,Flows,Flags,Tos,class,attackType,attackID,attackDescription",
                Some(Dialect::Cidds),
            ),
            (
                "ts,src_ip,src_port,dst_ip,dst_port,proto,service,duration,src_bytes,dst_bytes,conn_state,missed_bytes,src_pkts,src_ip_bytes,dst_pkts,dst_ip_bytes,label,type",
                Some(Dialect::Ton),
            ),
            ("a,b,c", None),
        ];
        for (line, want) in cases {
            assert_eq!(
                detect(line, DialectChoice::Auto).ok().flatten(),
                want,
                "{line}"
            );
        }
        assert!(detect("a,b,c", DialectChoice::Cidds).is_err());
    }
}
