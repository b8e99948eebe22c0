//! Records as CSV: flows in NetShare's own layout or in the dialect the input came in (UGR16,
//! CIDDS-001, TON_IoT; SPEC §1), packets in NetShare's packet layout.
//!
//! Each dialect writes the columns its readers need; columns our records do not model (TCP flags,
//! forwarding status, ToS, the TON service fields) get the dataset's own "unknown" spelling.
//! Times are UTC. UGR16 stores the flow *end* time to the second, so a round trip through it
//! keeps the start time only to within a second; the other dialects keep microseconds.
//! Addresses are text (dotted IPv4, RFC 5952 IPv6), except in NetShare's layouts, which write
//! IPv4 as its 32-bit integer; an IPv6 address is text there too, since no integer column the
//! reference reads can hold it, and the readers take either.

use std::io::Write;
use std::path::{Path, PathBuf};

use netshare_core::records::{FlowColumns, IpAddr, PacketColumns, proto_name};

use super::Dialect;
use crate::datetime::format_datetime;
use crate::error::{Error, Result};

/// An address in NetShare's integer layouts: IPv4 as its 32-bit integer, IPv6 as RFC 5952 text.
pub fn integer_layout_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => u32::from(a).to_string(),
        IpAddr::V6(a) => a.to_string(),
    }
}

/// Seconds with six decimals of a time in µs (exact; no float rounding).
fn format_seconds(time_us: i64) -> String {
    let sign = if time_us < 0 { "-" } else { "" };
    let a = time_us.unsigned_abs();
    format!("{sign}{}.{:06}", a / 1_000_000, a % 1_000_000)
}

/// Writes flow records as CSV in one dialect, as they arrive.
pub struct FlowCsvWriter<W: Write> {
    csv: csv::Writer<W>,
    path: PathBuf,
    dialect: Dialect,
    fields: Vec<String>,
}

impl<W: Write> FlowCsvWriter<W> {
    /// Writes the header row. `path` names the output in errors.
    pub fn new(out: W, path: &Path, dialect: Dialect) -> Result<Self> {
        let mut csv = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(out);
        csv.write_record(dialect.header())
            .map_err(|source| Error::Csv {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(FlowCsvWriter {
            csv,
            path: path.to_path_buf(),
            dialect,
            fields: Vec::with_capacity(18),
        })
    }

    /// Writes every row of a flow table.
    pub fn write_flows(&mut self, t: &FlowColumns) -> Result<()> {
        for i in 0..t.len() {
            self.fields.clear();
            let f = &mut self.fields;
            let (ts, td) = (t.ts_us[i], t.td[i]);
            let label = t.label[i].as_str();
            match self.dialect {
                Dialect::Netshare => {
                    f.push(integer_layout_ip(t.srcip[i]));
                    f.push(integer_layout_ip(t.dstip[i]));
                    f.push(t.srcport[i].to_string());
                    f.push(t.dstport[i].to_string());
                    f.push(proto_name(t.proto[i]));
                    f.push(ts.to_string());
                    f.push(td.to_string());
                    f.push(t.pkt[i].to_string());
                    f.push(t.byt[i].to_string());
                    f.push(label.to_string());
                }
                Dialect::Ugr16 => {
                    let end = ts.saturating_add((td * 1e6).round() as i64);
                    f.push(format_datetime(end, 0));
                    f.push(format!("{td:.3}"));
                    f.push(t.srcip[i].to_string());
                    f.push(t.dstip[i].to_string());
                    f.push(t.srcport[i].to_string());
                    f.push(t.dstport[i].to_string());
                    f.push(proto_name(t.proto[i]));
                    f.push("......".into());
                    f.push("0".into());
                    f.push("0".into());
                    f.push(t.pkt[i].to_string());
                    f.push(t.byt[i].to_string());
                    f.push(label.to_string());
                }
                Dialect::Cidds => {
                    f.push(format_datetime(ts, 3));
                    f.push(format!("{td:.3}"));
                    f.push(proto_name(t.proto[i]));
                    f.push(t.srcip[i].to_string());
                    f.push(t.srcport[i].to_string());
                    f.push(t.dstip[i].to_string());
                    f.push(t.dstport[i].to_string());
                    f.push(t.pkt[i].to_string());
                    f.push(t.byt[i].to_string());
                    f.push("1".into());
                    f.push("......".into());
                    f.push("0".into());
                    f.push(label.to_string());
                    f.push("---".into());
                    f.push("---".into());
                    f.push("---".into());
                }
                Dialect::Ton => {
                    f.push(format_seconds(ts));
                    f.push(t.srcip[i].to_string());
                    f.push(t.srcport[i].to_string());
                    f.push(t.dstip[i].to_string());
                    f.push(t.dstport[i].to_string());
                    f.push(proto_name(t.proto[i]).to_ascii_lowercase());
                    f.push("-".into());
                    f.push(td.to_string());
                    f.push("0".into());
                    f.push("0".into());
                    f.push("OTH".into());
                    f.push("0".into());
                    f.push(t.pkt[i].to_string());
                    f.push(t.byt[i].to_string());
                    f.push("0".into());
                    f.push("0".into());
                    let normal = label.is_empty() || label.eq_ignore_ascii_case("normal");
                    f.push(if normal { "0" } else { "1" }.into());
                    f.push(if label.is_empty() { "normal" } else { label }.into());
                }
            }
            self.csv
                .write_record(&self.fields)
                .map_err(|source| Error::Csv {
                    path: self.path.clone(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Flushes and returns the inner writer.
    pub fn finish(self) -> Result<W> {
        let path = self.path;
        self.csv
            .into_inner()
            .map_err(|e| Error::io("flushing", &path, std::io::Error::other(e.to_string())))
    }
}

/// Header of NetShare's packet CSV layout.
pub const PACKET_HEADER: [&str; 12] = [
    "srcip", "dstip", "srcport", "dstport", "proto", "time", "pkt_len", "tos", "id", "flag", "off",
    "ttl",
];

/// Writes packet records as CSV (integer IPv4 addresses, IPv6 as text, protocol number, time in
/// µs), as they arrive.
pub struct PacketCsvWriter<W: Write> {
    csv: csv::Writer<W>,
    path: PathBuf,
}

impl<W: Write> PacketCsvWriter<W> {
    /// Writes the header row. `path` names the output in errors.
    pub fn new(out: W, path: &Path) -> Result<Self> {
        let mut csv = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(out);
        csv.write_record(PACKET_HEADER)
            .map_err(|source| Error::Csv {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(PacketCsvWriter {
            csv,
            path: path.to_path_buf(),
        })
    }

    /// Writes every row of a packet table.
    pub fn write_packets(&mut self, t: &PacketColumns) -> Result<()> {
        for i in 0..t.len() {
            let row = [
                integer_layout_ip(t.srcip[i]),
                integer_layout_ip(t.dstip[i]),
                t.srcport[i].to_string(),
                t.dstport[i].to_string(),
                t.proto[i].to_string(),
                t.time_us[i].to_string(),
                t.pkt_len[i].to_string(),
                t.tos[i].to_string(),
                t.id[i].to_string(),
                t.flag[i].to_string(),
                t.off[i].to_string(),
                t.ttl[i].to_string(),
            ];
            self.csv.write_record(&row).map_err(|source| Error::Csv {
                path: self.path.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Flushes and returns the inner writer.
    pub fn finish(self) -> Result<W> {
        let path = self.path;
        self.csv
            .into_inner()
            .map_err(|e| Error::io("flushing", &path, std::io::Error::other(e.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netshare_core::records::FlowRecord;

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(format_datetime(0, 0), "1970-01-01 00:00:00");
        // 2016-03-18 10:47:52.364 UTC, the first flow of the UGR16 excerpt.
        assert_eq!(
            format_datetime(1_458_298_072_364_000, 3),
            "2016-03-18 10:47:52.364"
        );
        assert_eq!(
            format_datetime(951_782_400_000_001, 6),
            "2000-02-29 00:00:00.000001"
        );
        assert_eq!(format_datetime(-1, 0), "1969-12-31 23:59:59");
        assert_eq!(format_seconds(1_500_000), "1.500000");
        assert_eq!(format_seconds(-1_500_000), "-1.500000");
    }

    #[test]
    fn netshare_and_ugr16_rows_spell_fields_as_the_datasets_do() {
        let mut t = FlowColumns::default();
        t.push(FlowRecord {
            srcip: netshare_core::addr::v4(1_730_436_467),
            dstip: netshare_core::addr::v4(719_036_359),
            srcport: 0,
            dstport: 0,
            proto: 1,
            ts_us: 1_458_298_072_364_000,
            td: 305.636,
            pkt: 62,
            byt: 1736,
            label: "background".into(),
        });
        let mut w =
            FlowCsvWriter::new(Vec::new(), Path::new("x.csv"), Dialect::Netshare).expect("header");
        w.write_flows(&t).expect("rows");
        let text = String::from_utf8(w.finish().expect("finish")).expect("utf8");
        assert_eq!(
            text,
            "srcip,dstip,srcport,dstport,proto,ts,td,pkt,byt,type\n\
             1730436467,719036359,0,0,ICMP,1458298072364000,305.636,62,1736,background\n"
        );
        let mut w =
            FlowCsvWriter::new(Vec::new(), Path::new("x.csv"), Dialect::Ugr16).expect("header");
        w.write_flows(&t).expect("rows");
        let text = String::from_utf8(w.finish().expect("finish")).expect("utf8");
        assert_eq!(
            text.lines().nth(1),
            Some(
                "2016-03-18 10:52:58,305.636,103.36.93.115,42.219.159.199,0,0,ICMP,......,0,0,62,1736,background"
            )
        );
    }
}
