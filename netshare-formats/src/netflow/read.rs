//! NetFlow-derived CSV rows to flow records, with the reason when a row gives none.
//!
//! Columns are found by name, so extra columns (UGR16's derived ones, TON_IoT's dozens) are
//! ignored and column order does not matter. Times are read as UTC.

use std::io::Read;
use std::path::{Path, PathBuf};

use netshare_core::records::{FlowColumns, FlowRecord, IpAddr, proto_from_name};

use super::{Dialect, DialectChoice};
use crate::datetime::parse_datetime_us;
use crate::error::{Error, Result};

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

/// Dotted quad, or the address as an unsigned integer. `Err(true)` for an IPv6 address.
/// An address as text (dotted IPv4, IPv6 in any RFC 4291 spelling, optionally in brackets) or,
/// as NetShare writes IPv4, a 32-bit integer.
fn parse_ip(s: &str) -> Option<IpAddr> {
    if let Ok(a) = s.parse::<IpAddr>() {
        return Some(a);
    }
    if let Some(a) = s
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .and_then(|t| t.parse::<std::net::Ipv6Addr>().ok())
    {
        return Some(IpAddr::V6(a));
    }
    if let Ok(v) = s.parse::<u32>() {
        return Some(netshare_core::addr::v4(v));
    }
    // NetShare's CSVs sometimes hold the integer as a float ("1730436467.0").
    if let Ok(f) = s.parse::<f64>()
        && f.fract() == 0.0
        && (0.0..=u32::MAX as f64).contains(&f)
    {
        return Some(netshare_core::addr::v4(f as u32));
    }
    None
}

fn parse_port(s: &str) -> Option<u16> {
    if let Ok(v) = s.parse::<u16>() {
        return Some(v);
    }
    // CIDDS writes ICMP type.code in the port column ("3.3"); keep the integer part.
    let f = s.parse::<f64>().ok()?;
    (f.is_finite() && (0.0..65536.0).contains(&f)).then_some(f as u16)
}

/// A count, possibly with nfdump's scale suffix ("1.2 M", decimal multiples), rounded to an
/// integer.
fn parse_count(s: &str) -> Option<u64> {
    if let Ok(v) = s.parse::<u64>() {
        return Some(v);
    }
    let f = parse_count_raw(s)?;
    (f < 1.8e19).then_some(f.round() as u64)
}

/// A count as written (a non-negative number, with nfdump's scale suffix applied), unrounded.
fn parse_count_raw(s: &str) -> Option<f64> {
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
    (f.is_finite() && f >= 0.0).then_some(f)
}

fn parse_seconds(s: &str) -> Option<f64> {
    let f = s.parse::<f64>().ok()?;
    (f.is_finite() && f >= 0.0).then_some(f)
}

/// One row read: the record, and its time and counts as written (unrounded; the reference
/// implementation's outputs hold fractional microseconds and counts, which evaluation judges
/// as they are).
#[derive(Clone, Debug, PartialEq)]
pub struct FlowRow {
    /// The record (time rounded to µs, counts to integers).
    pub record: FlowRecord,
    /// Start time in µs as written.
    pub ts_raw_us: f64,
    /// Packets as written.
    pub pkt_raw: f64,
    /// Bytes as written.
    pub byt_raw: f64,
}

/// A row that gives no record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RowError {
    /// A field that cannot be read, and why.
    Bad(String),
}

fn field<'a>(
    rec: &'a csv::ByteRecord,
    i: usize,
    name: &str,
) -> std::result::Result<&'a str, RowError> {
    let raw = rec.get(i).ok_or_else(|| {
        RowError::Bad(format!(
            "has {} fields, column {name:?} is field {}",
            rec.len(),
            i + 1
        ))
    })?;
    std::str::from_utf8(raw)
        .map(str::trim)
        .map_err(|_| RowError::Bad(format!("field {name:?} is not UTF-8")))
}

fn parse_row(
    d: Dialect,
    c: &Cols,
    rec: &csv::ByteRecord,
) -> std::result::Result<FlowRow, RowError> {
    let bad =
        |name: &str, v: &str, what: &str| RowError::Bad(format!("{name} {v:?} is not {what}"));
    let ip = |i: usize, name: &str| -> std::result::Result<IpAddr, RowError> {
        let v = field(rec, i, name)?;
        parse_ip(v).ok_or_else(|| bad(name, v, "an IP address (IPv4 dotted or integer, or IPv6)"))
    };
    let srcip = ip(c.src, "srcip")?;
    let dstip = ip(c.dst, "dstip")?;
    if srcip.is_ipv4() != dstip.is_ipv4() {
        return Err(RowError::Bad(format!(
            "srcip {srcip} and dstip {dstip} are of different IP versions"
        )));
    }
    let port = |i: usize, name: &str| -> std::result::Result<u16, RowError> {
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
    let mut ts_raw_us = None;
    let ts_us = match d {
        Dialect::Netshare => {
            let f = tv
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && f.abs() < 9.2e18)
                .ok_or_else(|| bad("ts", tv, "a time in microseconds"))?;
            ts_raw_us = Some(f);
            f.round() as i64
        }
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
    let sum = |cols: &[usize], name: &str| -> std::result::Result<(u64, f64), RowError> {
        let (mut t, mut raw) = (0u64, 0.0f64);
        for &i in cols {
            let v = field(rec, i, name)?;
            let n = parse_count(v).ok_or_else(|| bad(name, v, "a count"))?;
            t = t.saturating_add(n);
            raw += parse_count_raw(v).unwrap_or(n as f64);
        }
        Ok((t, raw))
    };
    let (pkt, pkt_raw) = sum(&c.pkt, "packets")?;
    let (byt, byt_raw) = sum(&c.byt, "bytes")?;
    let label = c
        .label
        .and_then(|i| rec.get(i))
        .map(|l| String::from_utf8_lossy(l).trim().to_string())
        .unwrap_or_default();
    Ok(FlowRow {
        record: FlowRecord {
            srcip,
            dstip,
            srcport: sp,
            dstport: dp,
            proto,
            ts_us,
            td,
            pkt,
            byt,
            label,
        },
        ts_raw_us: ts_raw_us.unwrap_or(ts_us as f64),
        pkt_raw,
        byt_raw,
    })
}

/// Reads the rows of one CSV flow file of a known dialect, as records or the reason a row
/// gives none. The first row is the header, except for headerless UGR'16 files.
pub struct FlowCsvReader<R: Read> {
    rdr: csv::Reader<R>,
    rec: csv::ByteRecord,
    dialect: Dialect,
    cols: Option<Cols>,
    path: PathBuf,
}

impl<R: Read> FlowCsvReader<R> {
    /// A reader of `src` in `dialect`; `path` names the file in errors.
    pub fn new(src: R, dialect: Dialect, path: &Path) -> Self {
        let rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .buffer_capacity(1 << 20)
            .from_reader(src);
        FlowCsvReader {
            rdr,
            rec: csv::ByteRecord::new(),
            dialect,
            cols: None,
            path: path.to_path_buf(),
        }
    }

    /// The dialect being read.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.rdr.position().byte()
    }

    /// The next data row and its one-based line number: `Ok(None)` at the end. A header that
    /// lacks the dialect's columns, or text that is not CSV, is an error; a row that gives no
    /// record is returned with its reason, for the caller to count, quote or refuse.
    pub fn next_row(&mut self) -> Result<Option<(u64, std::result::Result<FlowRow, RowError>)>> {
        loop {
            let more = self.rdr.read_byte_record(&mut self.rec).map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                Error::CsvRow {
                    path: self.path.clone(),
                    line,
                    message: format!("unreadable CSV: {e}"),
                }
            })?;
            if !more {
                return Ok(None);
            }
            let line = self.rec.position().map_or(0, |p| p.line());
            if self.cols.is_none() {
                let header: Vec<String> = self
                    .rec
                    .iter()
                    .map(|f| normalise(&String::from_utf8_lossy(f)))
                    .collect();
                let is_data = header.len() >= 12 && parse_datetime_us(&header[0]).is_some();
                let c = if self.dialect == Dialect::Ugr16 && is_data {
                    ugr16_headerless(header.len())
                } else {
                    columns_for(self.dialect, &header).map_err(|message| Error::CsvHeader {
                        path: self.path.clone(),
                        message,
                    })?
                };
                let headerless = c.headerless;
                self.cols = Some(c);
                if !headerless {
                    continue;
                }
            }
            if self.rec.len() == 1 && self.rec.get(0).is_some_and(<[u8]>::is_empty) {
                continue;
            }
            let c = self.cols.as_ref().expect("set above");
            return Ok(Some((line, parse_row(self.dialect, c, &self.rec))));
        }
    }
}

/// Reads a whole flow CSV, detecting its dialect from the first line, and refuses the first
/// row that gives no record (naming the file and line). For tools that read our own outputs;
/// ingest reads leniently through [`FlowCsvReader`].
pub fn read_flows(path: &Path) -> Result<(Dialect, FlowColumns)> {
    let (d, t, _) = read_flows_raw(path)?;
    Ok((d, t))
}

/// [`read_flows`], with each row's start time (µs), packet and byte counts as written
/// (unrounded).
pub fn read_flows_raw(path: &Path) -> Result<(Dialect, FlowColumns, Vec<[f64; 3]>)> {
    use std::io::BufRead;
    let open = || std::fs::File::open(path).map_err(|e| Error::io("opening", path, e));
    let mut first = String::new();
    std::io::BufReader::new(open()?)
        .read_line(&mut first)
        .map_err(|e| Error::io("reading", path, e))?;
    let line = first.trim_end_matches(['\r', '\n']);
    let dialect = match detect(line, DialectChoice::Auto) {
        Ok(Some(d)) => d,
        Ok(None) | Err(_) => {
            return Err(Error::CsvHeader {
                path: path.to_path_buf(),
                message: format!(
                    "the first line {line:?} is the header of no flow CSV dialect (netshare, ugr16, cidds, ton)"
                ),
            });
        }
    };
    let mut rdr = FlowCsvReader::new(
        std::io::BufReader::with_capacity(1 << 20, open()?),
        dialect,
        path,
    );
    let mut t = FlowColumns::default();
    let mut raw = Vec::new();
    while let Some((line, row)) = rdr.next_row()? {
        match row {
            Ok(r) => {
                raw.push([r.ts_raw_us, r.pkt_raw, r.byt_raw]);
                t.push(r.record);
            }
            Err(e) => {
                return Err(Error::CsvRow {
                    path: path.to_path_buf(),
                    line,
                    message: {
                        let RowError::Bad(m) = e;
                        m
                    },
                });
            }
        }
    }
    Ok((dialect, t, raw))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let v4 = netshare_core::addr::v4;
        assert_eq!(parse_ip("10.0.0.1"), Some(v4(0x0a00_0001)));
        assert_eq!(parse_ip("167772161"), Some(v4(0x0a00_0001)));
        assert_eq!(parse_ip("167772161.0"), Some(v4(0x0a00_0001)));
        let six = netshare_core::addr::v6(0xfe80 << 112 | 1);
        assert_eq!(parse_ip("fe80::1"), Some(six));
        assert_eq!(parse_ip("FE80:0:0:0:0:0:0:1"), Some(six));
        assert_eq!(parse_ip("[fe80::1]"), Some(six));
        assert_eq!(parse_ip("fe80::1::2"), None);
        assert_eq!(parse_ip("EXT_SERVER"), None);
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
