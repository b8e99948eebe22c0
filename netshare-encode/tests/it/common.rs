//! Shared helpers: a tiny reader of NetShare's flow CSV layout, record builders, and the
//! encode → decode loop.

use std::collections::BTreeMap;
use std::path::Path;

use netshare_core::records::{FlowColumns, FlowRecord, Records, proto_from_name};
use netshare_encode::table::Column;
use netshare_encode::{EncodeConfig, Encoded, FiveTuple, Table, Value, encode};

/// Reads a flow CSV in NetShare's own layout
/// (`srcip,dstip,srcport,dstport,proto,ts,td,pkt,byt,type`, IPs as integers, ts in µs).
pub fn read_netshare_csv(path: &Path) -> FlowColumns {
    let text = std::fs::read_to_string(path).expect("read csv");
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    assert_eq!(
        header,
        "srcip,dstip,srcport,dstport,proto,ts,td,pkt,byt,type"
    );
    let mut t = FlowColumns::default();
    for (i, line) in lines.enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 10, "line {}: {line}", i + 2);
        let num = |s: &str| -> f64 {
            s.parse()
                .unwrap_or_else(|e| panic!("line {}: {s:?}: {e}", i + 2))
        };
        t.push(FlowRecord {
            srcip: netshare_core::addr::v4(num(f[0]) as u32),
            dstip: netshare_core::addr::v4(num(f[1]) as u32),
            srcport: num(f[2]) as u16,
            dstport: num(f[3]) as u16,
            proto: proto_from_name(f[4])
                .unwrap_or_else(|| panic!("line {}: proto {}", i + 2, f[4])),
            ts_us: num(f[5]) as i64,
            td: num(f[6]),
            pkt: num(f[7]) as u64,
            byt: num(f[8]) as u64,
            label: f[9].to_string(),
        });
    }
    t
}

/// The 1k-record UGR16 excerpt in NetShare's layout.
pub fn ugr16_1k() -> FlowColumns {
    let p = fixtures::real_trace("netflow/ugr16-netshare-1k.csv")
        .expect("ugr16-netshare-1k.csv is embedded");
    read_netshare_csv(&p)
}

/// Decodes every chunk of an encoding with its own (real) tensors, as the synthesiser would
/// decode generated ones, and returns the records chunk after chunk.
pub fn decode_all(e: &Encoded) -> Vec<Records> {
    e.chunks
        .chunks
        .iter()
        .zip(&e.tensors)
        .map(|(info, t)| {
            let lengths: Vec<usize> = t
                .gen_flag
                .chunks(t.max_len)
                .map(|g| g.iter().filter(|&&x| x > 0.5).count())
                .collect();
            e.encoder
                .decode_chunk(info, &t.attributes, &t.features, &lengths)
                .expect("decode")
        })
        .collect()
}

/// Rows of a records table grouped by five-tuple, each group in time order (stable), as
/// (time, non-key values in trace field order).
pub type Groups = BTreeMap<FiveTuple, Vec<(i64, Vec<Value>)>>;

/// Groups the rows of tables by five-tuple.
pub fn groups(records: &[Records]) -> Groups {
    let mut out = Groups::new();
    for r in records {
        let t = Table::from_records(r);
        let mut order: Vec<usize> = (0..t.len()).collect();
        order.sort_by_key(|&i| t.time[i]);
        for i in order {
            let vals = t
                .fields
                .iter()
                .map(|(_, c)| match c {
                    Column::Num(v) => Value::Num(v[i]),
                    Column::Cat(v) => Value::Cat(v[i].clone()),
                })
                .collect();
            out.entry(t.keys[i]).or_default().push((t.time[i], vals));
        }
    }
    out
}

/// Encodes with a config.
pub fn encode_with(records: &Records, cfg: &EncodeConfig) -> Encoded {
    encode(records, None, cfg).expect("encode")
}
