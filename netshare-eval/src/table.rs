//! The table eval judges: one row per record (flow or packet), with the five-tuple, the time
//! and the trace's numeric fields as `f64` (so synthetic outputs with fractional counts, such as
//! the reference implementation's CSV, are judged on their raw values).

use std::path::Path;

use netshare_core::records::{self, Records, TraceKind};

use crate::error::{Error, Result};

/// A numeric field of a trace.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// Field name as in the record schema (`td`, `pkt`, `byt`, `pkt_len`, ...).
    pub name: &'static str,
    /// One value per row.
    pub data: Vec<f64>,
}

/// A trace as eval sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Flows or packets.
    pub kind: TraceKind,
    /// Source IPv4 address.
    pub srcip: Vec<u32>,
    /// Destination IPv4 address.
    pub dstip: Vec<u32>,
    /// Source port.
    pub srcport: Vec<u16>,
    /// Destination port.
    pub dstport: Vec<u16>,
    /// IP protocol number.
    pub proto: Vec<u8>,
    /// Flow start (flows) or capture time (packets), microseconds since the epoch.
    pub time_us: Vec<f64>,
    /// Numeric fields: `td`, `pkt`, `byt` for flows; `pkt_len`, `tos`, `ttl` for packets.
    pub values: Vec<Column>,
    /// Labels (flows; empty strings when the input had none). Empty for packets.
    pub label: Vec<String>,
}

impl Table {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.srcip.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.srcip.is_empty()
    }

    /// A numeric field by name.
    pub fn value(&self, name: &str) -> Option<&[f64]> {
        self.values
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.data.as_slice())
    }

    /// The field that measures a record's size: `pkt` for flows, `pkt_len` for packets.
    pub fn size_field(&self) -> &'static str {
        match self.kind {
            TraceKind::Flows => "pkt",
            TraceKind::Packets => "pkt_len",
        }
    }

    /// Converts a records table.
    pub fn from_records(r: &Records) -> Table {
        match r {
            Records::Flows(t) => Table {
                kind: TraceKind::Flows,
                srcip: t.srcip.clone(),
                dstip: t.dstip.clone(),
                srcport: t.srcport.clone(),
                dstport: t.dstport.clone(),
                proto: t.proto.clone(),
                time_us: t.ts_us.iter().map(|&v| v as f64).collect(),
                values: vec![
                    Column {
                        name: "td",
                        data: t.td.clone(),
                    },
                    Column {
                        name: "pkt",
                        data: t.pkt.iter().map(|&v| v as f64).collect(),
                    },
                    Column {
                        name: "byt",
                        data: t.byt.iter().map(|&v| v as f64).collect(),
                    },
                ],
                label: t.label.clone(),
            },
            Records::Packets(t) => Table {
                kind: TraceKind::Packets,
                srcip: t.srcip.clone(),
                dstip: t.dstip.clone(),
                srcport: t.srcport.clone(),
                dstport: t.dstport.clone(),
                proto: t.proto.clone(),
                time_us: t.time_us.iter().map(|&v| v as f64).collect(),
                values: vec![
                    Column {
                        name: "pkt_len",
                        data: t.pkt_len.iter().map(|&v| f64::from(v)).collect(),
                    },
                    Column {
                        name: "tos",
                        data: t.tos.iter().map(|&v| f64::from(v)).collect(),
                    },
                    Column {
                        name: "ttl",
                        data: t.ttl.iter().map(|&v| f64::from(v)).collect(),
                    },
                ],
                label: Vec::new(),
            },
        }
    }

    /// Reads a table: records Parquet, or a flow CSV in NetShare's layout
    /// (`srcip,dstip,srcport,dstport,proto,ts,td,pkt,byt,type`, any column order) or UGR16's
    /// nfdump layout (`te,td,sa,da,sp,dp,pr,...,pkt,byt,label|lable`), told apart by the
    /// Parquet magic bytes and the CSV header.
    pub fn read(path: &Path) -> Result<Table> {
        // Store blobs have no extension: tell Parquet by its magic bytes.
        let mut magic = [0u8; 4];
        let is_parquet = std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok()
            && &magic == b"PAR1";
        if !is_parquet {
            read_flow_csv(path)
        } else {
            Ok(Table::from_records(&records::read_records(path)?))
        }
    }

    /// The rows in the order given by `idx`.
    pub fn take(&self, idx: &[usize]) -> Table {
        fn pick<T: Clone>(v: &[T], idx: &[usize]) -> Vec<T> {
            if v.is_empty() {
                return Vec::new();
            }
            idx.iter().map(|&i| v[i].clone()).collect()
        }
        Table {
            kind: self.kind,
            srcip: pick(&self.srcip, idx),
            dstip: pick(&self.dstip, idx),
            srcport: pick(&self.srcport, idx),
            dstport: pick(&self.dstport, idx),
            proto: pick(&self.proto, idx),
            time_us: pick(&self.time_us, idx),
            values: self
                .values
                .iter()
                .map(|c| Column {
                    name: c.name,
                    data: pick(&c.data, idx),
                })
                .collect(),
            label: pick(&self.label, idx),
        }
    }

    /// The five-tuple of row `i`.
    pub fn five_tuple(&self, i: usize) -> netshare_core::records::FiveTuple {
        netshare_core::five_tuple_of!(self, i)
    }

    /// Row indices grouped by five-tuple; each group in time order (ties by row order), groups
    /// ordered by their first row.
    pub fn flows(&self) -> Vec<Vec<usize>> {
        let mut index: crate::stats::FxHashMap<netshare_core::records::FiveTuple, usize> =
            crate::stats::FxHashMap::default();
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for i in 0..self.len() {
            let g = *index.entry(self.five_tuple(i)).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[g].push(i);
        }
        for g in &mut groups {
            g.sort_by(|&a, &b| self.time_us[a].total_cmp(&self.time_us[b]).then(a.cmp(&b)));
        }
        groups
    }
}

/// Which CSV layout a header names.
enum Layout {
    NetShare {
        srcip: usize,
        dstip: usize,
        srcport: usize,
        dstport: usize,
        proto: usize,
        ts: usize,
        td: usize,
        pkt: usize,
        byt: usize,
        label: Option<usize>,
    },
    Nfdump {
        te: usize,
        td: usize,
        sa: usize,
        da: usize,
        sp: usize,
        dp: usize,
        pr: usize,
        pkt: usize,
        byt: usize,
        label: Option<usize>,
    },
}

fn read_flow_csv(path: &Path) -> Result<Table> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut rdr = csv::ReaderBuilder::new().flexible(false).from_reader(file);
    let bad = |record: u64, message: String| Error::Csv {
        path: path.to_path_buf(),
        record,
        message,
    };
    let header = rdr
        .headers()
        .map_err(|e| bad(0, format!("reading the header: {e}")))?
        .clone();
    let col = |name: &str| header.iter().position(|h| h.trim() == name);
    let need = |name: &str| {
        col(name).ok_or_else(|| {
            bad(
                0,
                format!(
                    "no column {name:?} in header {:?}",
                    header.iter().collect::<Vec<_>>()
                ),
            )
        })
    };
    let layout = if col("srcip").is_some() {
        Layout::NetShare {
            srcip: need("srcip")?,
            dstip: need("dstip")?,
            srcport: need("srcport")?,
            dstport: need("dstport")?,
            proto: need("proto")?,
            ts: need("ts")?,
            td: need("td")?,
            pkt: need("pkt")?,
            byt: need("byt")?,
            label: col("type").or_else(|| col("label")),
        }
    } else if col("sa").is_some() {
        Layout::Nfdump {
            te: need("te")?,
            td: need("td")?,
            sa: need("sa")?,
            da: need("da")?,
            sp: need("sp")?,
            dp: need("dp")?,
            pr: need("pr")?,
            pkt: need("pkt")?,
            byt: need("byt")?,
            label: col("label").or_else(|| col("lable")),
        }
    } else {
        return Err(bad(
            0,
            "header is neither NetShare's flow layout (srcip,dstip,...) nor nfdump's (te,td,sa,da,...)"
                .into(),
        ));
    };
    let mut t = Table {
        kind: TraceKind::Flows,
        srcip: Vec::new(),
        dstip: Vec::new(),
        srcport: Vec::new(),
        dstport: Vec::new(),
        proto: Vec::new(),
        time_us: Vec::new(),
        values: vec![
            Column {
                name: "td",
                data: Vec::new(),
            },
            Column {
                name: "pkt",
                data: Vec::new(),
            },
            Column {
                name: "byt",
                data: Vec::new(),
            },
        ],
        label: Vec::new(),
    };
    for (n, rec) in rdr.records().enumerate() {
        let rn = n as u64 + 1;
        let rec = rec.map_err(|e| bad(rn, e.to_string()))?;
        let field = |i: usize| rec.get(i).unwrap_or("").trim();
        let num = |i: usize, what: &str| -> Result<f64> {
            field(i)
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| bad(rn, format!("{what} {:?} is not a finite number", field(i))))
        };
        let int_in = |i: usize, what: &str, max: f64| -> Result<f64> {
            let v = num(i, what)?;
            if v < 0.0 || v > max {
                return Err(bad(rn, format!("{what} {v} is outside 0..={max}")));
            }
            Ok(v)
        };
        let proto_of = |i: usize| {
            records::proto_from_name(field(i))
                .ok_or_else(|| bad(rn, format!("unknown protocol {:?}", field(i))))
        };
        match &layout {
            Layout::NetShare {
                srcip,
                dstip,
                srcport,
                dstport,
                proto,
                ts,
                td,
                pkt,
                byt,
                label,
            } => {
                t.srcip
                    .push(int_in(*srcip, "srcip", f64::from(u32::MAX))?.round() as u32);
                t.dstip
                    .push(int_in(*dstip, "dstip", f64::from(u32::MAX))?.round() as u32);
                t.srcport
                    .push(int_in(*srcport, "srcport", 65535.0)?.round() as u16);
                t.dstport
                    .push(int_in(*dstport, "dstport", 65535.0)?.round() as u16);
                t.proto.push(proto_of(*proto)?);
                t.time_us.push(num(*ts, "ts")?);
                t.values[0].data.push(num(*td, "td")?);
                t.values[1].data.push(num(*pkt, "pkt")?);
                t.values[2].data.push(num(*byt, "byt")?);
                t.label
                    .push(label.map(|i| field(i).to_string()).unwrap_or_default());
            }
            Layout::Nfdump {
                te,
                td,
                sa,
                da,
                sp,
                dp,
                pr,
                pkt,
                byt,
                label,
            } => {
                let ip = |i: usize| {
                    field(i)
                        .parse::<std::net::Ipv4Addr>()
                        .map(u32::from)
                        .map_err(|_| bad(rn, format!("{:?} is not an IPv4 address", field(i))))
                };
                let end = parse_datetime_us(field(*te)).ok_or_else(|| {
                    bad(
                        rn,
                        format!("te {:?} is not YYYY-mm-dd HH:MM:SS", field(*te)),
                    )
                })?;
                let dur = num(*td, "td")?;
                t.srcip.push(ip(*sa)?);
                t.dstip.push(ip(*da)?);
                t.srcport.push(int_in(*sp, "sp", 65535.0)?.round() as u16);
                t.dstport.push(int_in(*dp, "dp", 65535.0)?.round() as u16);
                t.proto.push(proto_of(*pr)?);
                t.time_us.push(end as f64 - (dur * 1e6).round());
                t.values[0].data.push(dur);
                t.values[1].data.push(num(*pkt, "pkt")?);
                t.values[2].data.push(num(*byt, "byt")?);
                t.label
                    .push(label.map(|i| field(i).to_string()).unwrap_or_default());
            }
        }
    }
    Ok(t)
}

/// `YYYY-mm-dd HH:MM:SS[.frac]` (UTC) to microseconds since the epoch.
fn parse_datetime_us(s: &str) -> Option<i64> {
    let (date, time) = s.trim().split_once([' ', 'T'])?;
    let mut d = date.split('-');
    let y: i64 = d.next()?.parse().ok()?;
    let m: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    let mut tp = time.split(':');
    let hh: i64 = tp.next()?.parse().ok()?;
    let mm: i64 = tp.next()?.parse().ok()?;
    let sec: f64 = tp.next()?.parse().ok()?;
    if !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || hh > 23
        || mm > 59
        || !(0.0..61.0).contains(&sec)
    {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60) * 1_000_000 + (sec * 1e6).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netshare_core::records::{PacketColumns, PacketRecord};

    #[test]
    fn packet_parquet_files_read_as_packet_tables_and_get_packet_metrics() {
        let mut p = PacketColumns::default();
        for i in 0..6u16 {
            p.push(PacketRecord {
                srcip: 1,
                dstip: 2,
                srcport: 1000 + i % 2,
                dstport: 443,
                proto: 6,
                time_us: 1_000 + i64::from(i) * 10,
                pkt_len: 60 + i,
                ttl: 64,
                ..PacketRecord::default()
            });
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("blob-without-extension");
        records::write_records(&path, &Records::Packets(p), &[]).expect("write");
        let t = Table::read(&path).expect("read");
        assert_eq!(t.kind, TraceKind::Packets);
        assert_eq!(
            t.value("pkt_len"),
            Some(&[60.0, 61.0, 62.0, 63.0, 64.0, 65.0][..])
        );
        assert!(t.label.is_empty());
        assert_eq!(t.flows(), vec![vec![0, 2, 4], vec![1, 3, 5]]);
        let mut sizes = crate::fidelity::flow_sizes(&t);
        sizes.sort_by(f64::total_cmp);
        assert_eq!(sizes, vec![3.0, 3.0]);
        let m = crate::fidelity::distributional(&t, &t, crate::Convention::Netshare);
        let names: Vec<&str> = m.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "emd_flow_size",
                "emd_pkt_len",
                "emd_time",
                "jsd_dstip",
                "jsd_dstport",
                "jsd_proto",
                "jsd_srcip",
                "jsd_srcport"
            ]
        );
        assert!(m.values().all(|v| v.value == Some(0.0)));
    }

    #[test]
    fn civil_dates_convert_to_unix_microseconds() {
        assert_eq!(parse_datetime_us("1970-01-01 00:00:00"), Some(0));
        // date -u -d '2016-04-11 00:03:17' +%s = 1460332997
        assert_eq!(
            parse_datetime_us("2016-04-11 00:03:17"),
            Some(1_460_332_997_000_000)
        );
        assert_eq!(parse_datetime_us("2016-13-11 00:03:17"), None);
        assert_eq!(parse_datetime_us("garbage"), None);
    }
}
