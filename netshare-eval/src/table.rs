//! The table eval judges: one row per record (flow or packet), with the five-tuple, the time
//! and the trace's numeric fields as `f64` (so synthetic outputs with fractional counts, such as
//! the reference implementation's CSV, are judged on their raw values).

use std::path::Path;

use netshare_core::records::{self, IpAddr, Records, TraceKind};

use crate::error::Result;

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
    /// Source address (either family).
    pub srcip: Vec<IpAddr>,
    /// Destination address.
    pub dstip: Vec<IpAddr>,
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

    /// Reads a table: records Parquet, or a flow CSV in any dialect `netshare-formats` reads
    /// (NetShare's layout, UGR16's nfdump, CIDDS-001, TON_IoT; told apart by the header), told
    /// apart by the Parquet magic bytes.
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

/// A flow CSV in any dialect the formats crate reads, times and counts kept as written.
fn read_flow_csv(path: &Path) -> Result<Table> {
    let (_, flows, raw) = netshare_formats::netflow::read_flows_raw(path)?;
    let mut t = Table::from_records(&Records::Flows(flows));
    for (i, [ts, pkt, byt]) in raw.into_iter().enumerate() {
        t.time_us[i] = ts;
        t.values[1].data[i] = pkt;
        t.values[2].data[i] = byt;
    }
    Ok(t)
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
                srcip: netshare_core::addr::v4(1),
                dstip: netshare_core::addr::v4(2),
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
}
