//! NetFlow-derived CSV: the dialects (one enum for reading and writing), their detection from a
//! header, a row reader that names the file and line of every bad row, and the writers.
//!
//! - [`read`]: [`FlowCsvReader`] (rows to flow records) and [`detect`];
//! - [`mod@write`]: [`FlowCsvWriter`] (flow records to a dialect) and [`PacketCsvWriter`].

pub mod read;
pub mod write;

pub use read::{FlowCsvReader, FlowRow, RowError, detect, read_flows, read_flows_raw};
pub use write::{FlowCsvWriter, PACKET_HEADER, PacketCsvWriter};

use serde::{Deserialize, Serialize};

/// A CSV flow dialect.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// NetShare's own layout: `srcip,dstip,srcport,dstport,proto,ts,td,pkt,byt,type`; integer
    /// IPs, proto by name, ts in µs.
    #[default]
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
    /// Every dialect, in detection order.
    pub const ALL: [Dialect; 4] = [
        Dialect::Netshare,
        Dialect::Ugr16,
        Dialect::Cidds,
        Dialect::Ton,
    ];

    /// The dialect's name (as in configs and the `netshare.dialect` metadata).
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Netshare => "netshare",
            Dialect::Ugr16 => "ugr16",
            Dialect::Cidds => "cidds",
            Dialect::Ton => "ton",
        }
    }

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
            "netshare" => Dialect::Netshare,
            "ugr16" | "ugr" | "nfdump" => Dialect::Ugr16,
            "cidds" | "cidds001" => Dialect::Cidds,
            "ton" | "toniot" | "tonnetwork" | "toniotnetwork" => Dialect::Ton,
            _ => return None,
        })
    }

    /// The header row the writer puts first.
    pub fn header(self) -> &'static [&'static str] {
        match self {
            Dialect::Netshare => &[
                "srcip", "dstip", "srcport", "dstport", "proto", "ts", "td", "pkt", "byt", "type",
            ],
            Dialect::Ugr16 => &[
                "te", "td", "sa", "da", "sp", "dp", "pr", "flg", "fwd", "stos", "pkt", "byt",
                "label",
            ],
            Dialect::Cidds => &[
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
            Dialect::Ton => &[
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

    /// Column names (lower case) the reader needs, in the order src, dst, sp, dp, proto, time,
    /// duration.
    pub(crate) fn required(self) -> [&'static str; 7] {
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

    /// Columns summed into the packet count.
    pub(crate) fn packets(self) -> &'static [&'static str] {
        match self {
            Dialect::Netshare | Dialect::Ugr16 => &["pkt"],
            Dialect::Cidds => &["packets"],
            Dialect::Ton => &["src_pkts", "dst_pkts"],
        }
    }

    /// Columns summed into the byte count.
    pub(crate) fn bytes(self) -> &'static [&'static str] {
        match self {
            Dialect::Netshare | Dialect::Ugr16 => &["byt"],
            Dialect::Cidds => &["bytes"],
            // IP-level bytes, as NetFlow counts them.
            Dialect::Ton => &["src_ip_bytes", "dst_ip_bytes"],
        }
    }

    /// Candidate label columns, first found wins.
    pub(crate) fn labels(self) -> &'static [&'static str] {
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
    /// The fixed dialect, `None` for `auto`.
    pub fn fixed(self) -> Option<Dialect> {
        match self {
            DialectChoice::Auto => None,
            DialectChoice::Netshare => Some(Dialect::Netshare),
            DialectChoice::Ugr16 => Some(Dialect::Ugr16),
            DialectChoice::Cidds => Some(Dialect::Cidds),
            DialectChoice::Ton => Some(Dialect::Ton),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialect_names_from_metadata_are_recognised() {
        for (s, d) in [
            ("netshare", Dialect::Netshare),
            ("UGR16", Dialect::Ugr16),
            ("cidds-001", Dialect::Cidds),
            ("TON_IoT", Dialect::Ton),
        ] {
            assert_eq!(Dialect::from_name(s), Some(d), "{s}");
        }
        assert_eq!(Dialect::from_name("pcap"), None);
        for d in Dialect::ALL {
            assert_eq!(Dialect::from_name(d.name()), Some(d));
        }
    }

    /// Every dialect the writer writes, the reader reads back, IPv4 and IPv6 rows alike:
    /// exactly for NetShare's layout, CIDDS (ms) and TON (µs); UGR16 keeps the end time to the
    /// second.
    #[test]
    fn every_dialect_round_trips_through_writer_and_reader() {
        use netshare_core::addr::{v4, v6};
        use netshare_core::records::{FlowColumns, FlowRecord};
        use std::path::Path;
        let mut t = FlowColumns::default();
        for i in 0..5u16 {
            // Rows 3 and 4 are IPv6 (a global and a link-local pair).
            let (srcip, dstip) = if i < 3 {
                (v4(0x0a00_0001 + u32::from(i)), v4(0xc0a8_0102))
            } else {
                (
                    v6(0x2001_0db8_0000_0000_0000_0000_0000_0000 | u128::from(i)),
                    v6(0xfe80_0000_0000_0000_0211_22ff_fe33_4455),
                )
            };
            t.push(FlowRecord {
                srcip,
                dstip,
                srcport: 40_000 + i,
                dstport: 443,
                proto: [6, 17, 1, 6, 47][usize::from(i)],
                ts_us: 1_458_298_072_364_000 + i64::from(i) * 1_000_000,
                td: 1.5 * f64::from(i),
                pkt: 3 + u64::from(i),
                byt: 180 + u64::from(i),
                label: if i == 2 {
                    "anomaly".into()
                } else {
                    "background".into()
                },
            });
        }
        for d in Dialect::ALL {
            let mut w = FlowCsvWriter::new(Vec::new(), Path::new("t.csv"), d).expect("header");
            w.write_flows(&t).expect("rows");
            let bytes = w.finish().expect("finish");
            let first = std::str::from_utf8(&bytes)
                .expect("utf8")
                .lines()
                .next()
                .expect("a header");
            assert_eq!(detect(first, DialectChoice::Auto), Ok(Some(d)), "{d:?}");
            let mut r = FlowCsvReader::new(&bytes[..], d, Path::new("t.csv"));
            let mut back = FlowColumns::default();
            while let Some((_, row)) = r.next_row().expect("readable") {
                back.push(row.expect("a record").record);
            }
            assert_eq!(back.len(), t.len(), "{d:?}");
            for i in 0..t.len() {
                let (a, b) = (t.row(i), back.row(i));
                let tol_us = if d == Dialect::Ugr16 { 1_000_000 } else { 0 };
                assert!(
                    (a.ts_us - b.ts_us).abs() <= tol_us,
                    "{d:?} row {i}: {a:?} {b:?}"
                );
                assert_eq!(
                    (
                        a.srcip, a.dstip, a.srcport, a.dstport, a.proto, a.pkt, a.byt
                    ),
                    (
                        b.srcip, b.dstip, b.srcport, b.dstport, b.proto, b.pkt, b.byt
                    ),
                    "{d:?} row {i}"
                );
                assert!((a.td - b.td).abs() < 1e-9, "{d:?} row {i}");
                if d != Dialect::Ton {
                    assert_eq!(a.label, b.label, "{d:?} row {i}");
                }
            }
        }
    }

    #[test]
    fn a_strict_read_names_the_file_and_line_of_a_bad_row() {
        let dir = std::env::temp_dir().join(format!("netshare-formats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let p = dir.join("bad.csv");
        std::fs::write(
            &p,
            "srcip,dstip,srcport,dstport,proto,ts,td,pkt,byt,type\n1,2,3,4,TCP,5.25,6,7.5,8,x\n1,2,3,99999,TCP,5,6,7,8,x\n",
        )
        .expect("write");
        let e = read_flows(&p).expect_err("bad port").to_string();
        assert!(e.contains("bad.csv, line 3") && e.contains("99999"), "{e}");
        std::fs::write(
            &p,
            "srcip,dstip,srcport,dstport,proto,ts,td,pkt,byt,type\n1,2,3,4,TCP,5.25,6,7.5,8,x\n",
        )
        .expect("write");
        let (d, t, raw) = read_flows_raw(&p).expect("reads");
        assert_eq!((d, t.len()), (Dialect::Netshare, 1));
        assert_eq!((t.ts_us[0], t.pkt[0]), (5, 8));
        assert_eq!(raw, vec![[5.25, 7.5, 8.0]]);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
