//! Records as CSV: flows in NetShare's own layout or in the dialect the input came in (UGR16,
//! CIDDS-001, TON_IoT; SPEC §1), packets in NetShare's packet layout.
//!
//! Each dialect writes the columns its readers need; columns our records do not model (TCP flags,
//! forwarding status, ToS, the TON service fields) get the dataset's own "unknown" spelling.
//! Times are UTC. UGR16 stores the flow *end* time to the second, so a round trip through it
//! keeps the start time only to within a second; the other dialects keep microseconds.

use std::io::Write;
use std::path::{Path, PathBuf};

use netshare_core::records::{FlowColumns, PacketColumns, ip_to_string, proto_name};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A flow CSV dialect.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CsvDialect {
    /// `srcip,dstip,srcport,dstport,proto,ts,td,pkt,byt,type`: integer IPs, proto by name,
    /// ts in µs.
    #[default]
    Netshare,
    /// nfdump CSV as UGR16 ships it: `te,td,sa,da,sp,dp,pr,flg,fwd,stos,pkt,byt,label`.
    Ugr16,
    /// CIDDS-001: `Date first seen,Duration,Proto,Src IP Addr,...`.
    Cidds,
    /// TON_IoT network: `ts,src_ip,src_port,dst_ip,dst_port,proto,service,duration,...`.
    Ton,
}

impl CsvDialect {
    /// The dialect named in a records file's `netshare.dialect` metadata (case-insensitive;
    /// spellings with `-`/`_`/`001`/`_iot` accepted). `None` for an unknown name.
    pub fn from_name(name: &str) -> Option<Self> {
        let n: String = name
            .trim()
            .to_ascii_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        Some(match n.as_str() {
            "netshare" => CsvDialect::Netshare,
            "ugr16" | "ugr" | "nfdump" => CsvDialect::Ugr16,
            "cidds" | "cidds001" => CsvDialect::Cidds,
            "ton" | "toniot" | "tonnetwork" | "toniotnetwork" => CsvDialect::Ton,
            _ => return None,
        })
    }

    /// The header row.
    pub fn header(self) -> &'static [&'static str] {
        match self {
            CsvDialect::Netshare => &[
                "srcip", "dstip", "srcport", "dstport", "proto", "ts", "td", "pkt", "byt", "type",
            ],
            CsvDialect::Ugr16 => &[
                "te", "td", "sa", "da", "sp", "dp", "pr", "flg", "fwd", "stos", "pkt", "byt",
                "label",
            ],
            CsvDialect::Cidds => &[
                "Date first seen",
                "Duration",
                "Proto",
                "Src IP Addr",
                "Src Pt",
                "Dst IP Addr",
                "Dst Pt",
                "Packets",
                "Bytes",
                "Flows",
                "Flags",
                "Tos",
                "class",
                "attackType",
                "attackID",
                "attackDescription",
            ],
            CsvDialect::Ton => &[
                "ts",
                "src_ip",
                "src_port",
                "dst_ip",
                "dst_port",
                "proto",
                "service",
                "duration",
                "src_bytes",
                "dst_bytes",
                "conn_state",
                "missed_bytes",
                "src_pkts",
                "src_ip_bytes",
                "dst_pkts",
                "dst_ip_bytes",
                "label",
                "type",
            ],
        }
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day) (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYY-mm-dd HH:MM:SS` (UTC) of a time in µs, with `frac_digits` (0, 3 or 6) decimals.
pub fn format_datetime(time_us: i64, frac_digits: u32) -> String {
    let secs = time_us.div_euclid(1_000_000);
    let micros = time_us.rem_euclid(1_000_000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let base = format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}:{:02}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
    match frac_digits {
        0 => base,
        3 => format!("{base}.{:03}", micros / 1000),
        _ => format!("{base}.{micros:06}"),
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
    dialect: CsvDialect,
    fields: Vec<String>,
}

impl<W: Write> FlowCsvWriter<W> {
    /// Writes the header row. `path` names the output in errors.
    pub fn new(out: W, path: &Path, dialect: CsvDialect) -> Result<Self> {
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
                CsvDialect::Netshare => {
                    f.push(t.srcip[i].to_string());
                    f.push(t.dstip[i].to_string());
                    f.push(t.srcport[i].to_string());
                    f.push(t.dstport[i].to_string());
                    f.push(proto_name(t.proto[i]));
                    f.push(ts.to_string());
                    f.push(td.to_string());
                    f.push(t.pkt[i].to_string());
                    f.push(t.byt[i].to_string());
                    f.push(label.to_string());
                }
                CsvDialect::Ugr16 => {
                    let end = ts.saturating_add((td * 1e6).round() as i64);
                    f.push(format_datetime(end, 0));
                    f.push(format!("{td:.3}"));
                    f.push(ip_to_string(t.srcip[i]));
                    f.push(ip_to_string(t.dstip[i]));
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
                CsvDialect::Cidds => {
                    f.push(format_datetime(ts, 3));
                    f.push(format!("{td:.3}"));
                    f.push(proto_name(t.proto[i]));
                    f.push(ip_to_string(t.srcip[i]));
                    f.push(t.srcport[i].to_string());
                    f.push(ip_to_string(t.dstip[i]));
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
                CsvDialect::Ton => {
                    f.push(format_seconds(ts));
                    f.push(ip_to_string(t.srcip[i]));
                    f.push(t.srcport[i].to_string());
                    f.push(ip_to_string(t.dstip[i]));
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

/// Writes packet records as CSV (integer IPs, protocol number, time in µs), as they arrive.
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
                t.srcip[i].to_string(),
                t.dstip[i].to_string(),
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
    fn dialect_names_from_metadata_are_recognised() {
        for (s, d) in [
            ("netshare", CsvDialect::Netshare),
            ("UGR16", CsvDialect::Ugr16),
            ("cidds-001", CsvDialect::Cidds),
            ("TON_IoT", CsvDialect::Ton),
        ] {
            assert_eq!(CsvDialect::from_name(s), Some(d), "{s}");
        }
        assert_eq!(CsvDialect::from_name("pcap"), None);
    }

    #[test]
    fn netshare_and_ugr16_rows_spell_fields_as_the_datasets_do() {
        let mut t = FlowColumns::default();
        t.push(FlowRecord {
            srcip: 1_730_436_467,
            dstip: 719_036_359,
            srcport: 0,
            dstport: 0,
            proto: 1,
            ts_us: 1_458_298_072_364_000,
            td: 305.636,
            pkt: 62,
            byt: 1736,
            label: "background".into(),
        });
        let mut w = FlowCsvWriter::new(Vec::new(), Path::new("x.csv"), CsvDialect::Netshare)
            .expect("header");
        w.write_flows(&t).expect("rows");
        let text = String::from_utf8(w.finish().expect("finish")).expect("utf8");
        assert_eq!(
            text,
            "srcip,dstip,srcport,dstport,proto,ts,td,pkt,byt,type\n\
             1730436467,719036359,0,0,ICMP,1458298072364000,305.636,62,1736,background\n"
        );
        let mut w =
            FlowCsvWriter::new(Vec::new(), Path::new("x.csv"), CsvDialect::Ugr16).expect("header");
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
