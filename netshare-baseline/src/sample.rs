//! Baseline generators every evaluation report is measured against (plain table sampling, no
//! model):
//!
//! - **independent marginals**: each output row takes each field from an independently chosen
//!   real row, so every per-field marginal matches the real trace while all dependence between
//!   fields (and every flow structure) is destroyed. A generator that does not beat it on joint
//!   and flow-level metrics has learnt nothing beyond marginals.
//! - **real-vs-real split**: the real trace cut in two halves with disjoint five-tuples and about
//!   equal record counts (largest flows first, each to the lighter half; equal sizes in seeded
//!   hash order). Every record of a five-tuple lands in the same half, so flows stay whole, and both halves
//!   cover the whole capture period with the same traffic mix; splitting by time instead would
//!   compare different hours (diurnal drift) and cut flows at the boundary. The distance between
//!   the halves is the floor: what sampling noise alone costs.
//!   The price of whole flows: in a capture dominated by a few long flows (e.g. one call), each
//!   of them lands in one half, so the halves differ more than two random row samples would.
//!
//! Randomness comes from a seeded SplitMix64 stream with Lemire's unbiased bounded draws, so
//! equal inputs, config and seed give equal bytes.

use std::path::Path;

use netshare_core::records::{
    self, FlowColumns, IpAddr, META_DIALECT, PacketColumns, Records, TraceKind,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Typed configuration of the baseline stage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineConfig {
    /// Seed of the marginal draws and of the split hash.
    pub seed: u64,
    /// Rows of the marginals sample (`null`: as many as the real trace).
    pub rows: Option<usize>,
}

/// A small seeded generator: SplitMix64 (Steele, Lea, Flood 2014).
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A stream from a seed.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }

    /// A uniform index in `0..n` (`n > 0`), without modulo bias (Lemire 2019).
    pub fn below(&mut self, n: usize) -> usize {
        let n = n as u64;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            let low = m as u64;
            if low >= n.wrapping_neg() % n {
                return (m >> 64) as usize;
            }
        }
    }
}

/// SplitMix64's finaliser, also used as the split hash.
pub use netshare_core::seed::mix64;

fn draw<T: Clone>(col: &[T], n: usize, rng: &mut SplitMix64) -> Vec<T> {
    (0..n).map(|_| col[rng.below(col.len())].clone()).collect()
}

/// Destination addresses for drawn sources: each from the real destinations of the source's IP
/// version (a record has one), uniformly; from all of them when that version has none. On an
/// all-IPv4 trace this is [`draw`] over the whole column, draw for draw.
fn draw_dst(src: &[IpAddr], col: &[IpAddr], rng: &mut SplitMix64) -> Vec<IpAddr> {
    let (v6, v4): (Vec<IpAddr>, Vec<IpAddr>) = col.iter().partition(|a| a.is_ipv6());
    src.iter()
        .map(|s| {
            let pool = match (s.is_ipv6(), v4.is_empty(), v6.is_empty()) {
                (false, false, _) => v4.as_slice(),
                (true, _, false) => v6.as_slice(),
                _ => col,
            };
            pool[rng.below(pool.len())]
        })
        .collect()
}

/// Indices sorting a time column (stable, so equal times keep draw order).
fn time_order(t: &[i64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..t.len()).collect();
    idx.sort_by_key(|&i| t[i]);
    idx
}

/// Independent-marginals sample of `n` rows, sorted by time. Each field of each row is drawn
/// from the real column at its own uniformly random row, except that the destination address
/// is drawn among those of the source's IP version.
pub fn marginals(real: &Records, n: usize, seed: u64) -> Result<Records> {
    if real.is_empty() {
        return Err(Error::Config(
            "cannot sample marginals of an empty trace".to_string(),
        ));
    }
    let mut rng = SplitMix64::new(seed);
    Ok(match real {
        Records::Flows(t) => {
            let srcip = draw(&t.srcip, n, &mut rng);
            let out = FlowColumns {
                dstip: draw_dst(&srcip, &t.dstip, &mut rng),
                srcip,
                srcport: draw(&t.srcport, n, &mut rng),
                dstport: draw(&t.dstport, n, &mut rng),
                proto: draw(&t.proto, n, &mut rng),
                ts_us: draw(&t.ts_us, n, &mut rng),
                td: draw(&t.td, n, &mut rng),
                pkt: draw(&t.pkt, n, &mut rng),
                byt: draw(&t.byt, n, &mut rng),
                label: draw(&t.label, n, &mut rng),
            };
            Records::Flows(out.take(&time_order(&out.ts_us)))
        }
        Records::Packets(t) => {
            let srcip = draw(&t.srcip, n, &mut rng);
            let out = PacketColumns {
                dstip: draw_dst(&srcip, &t.dstip, &mut rng),
                srcip,
                srcport: draw(&t.srcport, n, &mut rng),
                dstport: draw(&t.dstport, n, &mut rng),
                proto: draw(&t.proto, n, &mut rng),
                time_us: draw(&t.time_us, n, &mut rng),
                pkt_len: draw(&t.pkt_len, n, &mut rng),
                tos: draw(&t.tos, n, &mut rng),
                id: draw(&t.id, n, &mut rng),
                flag: draw(&t.flag, n, &mut rng),
                off: draw(&t.off, n, &mut rng),
                ttl: draw(&t.ttl, n, &mut rng),
            };
            Records::Packets(out.take(&time_order(&out.time_us)))
        }
    })
}

use netshare_core::records::FiveTuple as Key;

/// Assigns every five-tuple to half 0 or 1 so that the halves hold about equal record counts
/// (greedy, largest flow first, each to the half with fewer records so far; flows of equal size
/// in seeded hash order, so which flow goes where is random but reproducible). A plain hash
/// split can put one flow of thousands of records on one side and make the halves differ in
/// everything; this one keeps them within one flow's length of each other.
fn balanced_halves(seed: u64, keys: &[Key]) -> Vec<usize> {
    use std::collections::HashMap;
    let mut counts: HashMap<Key, usize> = HashMap::new();
    for k in keys {
        *counts.entry(*k).or_insert(0) += 1;
    }
    let mut order: Vec<(Key, usize, u64)> = counts
        .into_iter()
        .map(|(k, n)| (k, n, k.seeded_hash(seed)))
        .collect();
    // The hash orders equal sizes; the key itself breaks the (astronomically rare) hash tie.
    order.sort_by(|x, y| y.1.cmp(&x.1).then(x.2.cmp(&y.2)).then(x.0.cmp(&y.0)));
    let mut load = [0usize; 2];
    let mut half: HashMap<Key, usize> = HashMap::with_capacity(order.len());
    for (k, n, h) in order {
        let side = match load[0].cmp(&load[1]) {
            std::cmp::Ordering::Less => 0,
            std::cmp::Ordering::Greater => 1,
            std::cmp::Ordering::Equal => (h >> 63) as usize,
        };
        load[side] += n;
        half.insert(k, side);
    }
    keys.iter().map(|k| half[k]).collect()
}

/// Splits a trace into two halves with disjoint five-tuples and about equal record counts
/// (see `balanced_halves`), keeping row order within each half.
pub fn split(real: &Records, seed: u64) -> (Records, Records) {
    // Five-tuple columns are named alike in both tables, so one body serves both kinds.
    macro_rules! halves {
        ($t:expr) => {{
            let t = $t;
            let keys: Vec<_> = (0..t.len())
                .map(|i| netshare_core::five_tuple_of!(t, i))
                .collect();
            let side = balanced_halves(seed, &keys);
            let mut halves: [Vec<usize>; 2] = [Vec::new(), Vec::new()];
            for (i, &h) in side.iter().enumerate() {
                halves[h].push(i);
            }
            (t.take(&halves[0]), t.take(&halves[1]))
        }};
    }
    match real {
        Records::Flows(t) => {
            let (a, b) = halves!(t);
            (Records::Flows(a), Records::Flows(b))
        }
        Records::Packets(t) => {
            let (a, b) = halves!(t);
            (Records::Packets(a), Records::Packets(b))
        }
    }
}

/// Which baseline outputs to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BaselineKind {
    /// `marginals.parquet`.
    Marginals,
    /// `half-a.parquet` and `half-b.parquet`.
    Split,
}

/// Reads `input` and writes the chosen baselines into `dir` (file names as in the store:
/// `marginals.parquet`, `half-a.parquet`, `half-b.parquet`). Returns a small JSON summary.
pub fn run(
    input: &Path,
    dir: &Path,
    kinds: &[BaselineKind],
    cfg: &BaselineConfig,
) -> Result<serde_json::Value> {
    let real = records::read_records(input)?;
    let (_, meta) = records::read_metadata(input)?;
    let dialect = meta.get(META_DIALECT).cloned();
    let extra: Vec<(&str, &str)> = dialect.iter().map(|d| (META_DIALECT, d.as_str())).collect();
    std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    let mut summary = serde_json::Map::new();
    summary.insert("input_rows".into(), real.len().into());
    summary.insert(
        "kind".into(),
        match real.kind() {
            TraceKind::Flows => "flows",
            TraceKind::Packets => "packets",
        }
        .into(),
    );
    for kind in kinds {
        match kind {
            BaselineKind::Marginals => {
                let n = cfg.rows.unwrap_or(real.len());
                let m = marginals(&real, n, cfg.seed)?;
                records::write_records(&dir.join("marginals.parquet"), &m, &extra)?;
                summary.insert("marginals_rows".into(), m.len().into());
            }
            BaselineKind::Split => {
                let (a, b) = split(&real, cfg.seed);
                records::write_records(&dir.join("half-a.parquet"), &a, &extra)?;
                records::write_records(&dir.join("half-b.parquet"), &b, &extra)?;
                summary.insert("half_a_rows".into(), a.len().into());
                summary.insert("half_b_rows".into(), b.len().into());
            }
        }
    }
    Ok(serde_json::Value::Object(summary))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netshare_core::records::FlowRecord;
    use std::collections::BTreeMap;

    fn flows() -> Records {
        let mut t = FlowColumns::default();
        for i in 0..400u32 {
            t.push(FlowRecord {
                srcip: netshare_core::addr::v4(0x0a00_0000 + i % 37),
                dstip: netshare_core::addr::v4(0xc0a8_0000 + i % 5),
                srcport: (1024 + i % 11) as u16,
                // Fully dependent on the source: the marginal sampler must break this.
                dstport: (i % 37) as u16,
                proto: if i % 3 == 0 { 17 } else { 6 },
                ts_us: 1_000_000 + i64::from(i) * 1000,
                td: f64::from(i % 7),
                pkt: u64::from(i % 13 + 1),
                byt: u64::from(i % 13 + 1) * 60,
                label: if i % 4 == 0 {
                    "attack".into()
                } else {
                    "background".into()
                },
            });
        }
        Records::Flows(t)
    }

    fn hist<T: Ord + Clone>(v: &[T]) -> BTreeMap<T, usize> {
        let mut m = BTreeMap::new();
        for x in v {
            *m.entry(x.clone()).or_insert(0) += 1;
        }
        m
    }

    #[test]
    fn bounded_draws_are_uniform_and_seeded() {
        let mut a = SplitMix64::new(9);
        let mut b = SplitMix64::new(9);
        let mut counts = [0usize; 6];
        for _ in 0..60_000 {
            let x = a.below(6);
            assert_eq!(x, b.below(6));
            counts[x] += 1;
        }
        for c in counts {
            assert!((9_400..10_600).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn marginals_keep_each_field_distribution_but_break_dependence() {
        let real = flows();
        let Records::Flows(m) = marginals(&real, 40_000, 1).expect("sample") else {
            panic!("kind changed");
        };
        let Records::Flows(r) = &real else {
            unreachable!()
        };
        // Every drawn value exists in the real column, with close frequencies.
        let (hr, hm) = (hist(&r.proto), hist(&m.proto));
        for (k, &c) in &hr {
            let expect = c as f64 / r.len() as f64;
            let got = hm.get(k).copied().unwrap_or(0) as f64 / m.len() as f64;
            assert!((expect - got).abs() < 0.01, "proto {k}: {expect} vs {got}");
        }
        assert!(m.ts_us.windows(2).all(|w| w[0] <= w[1]), "sorted by time");
        // In the real trace dstport == srcip % 37 always; independent draws match by chance (1/37).
        let same = (0..m.len())
            .filter(|&i| {
                let src = netshare_core::addr::v4_bits(m.srcip[i]).expect("IPv4");
                u32::from(m.dstport[i]) == src - 0x0a00_0000
            })
            .count() as f64
            / m.len() as f64;
        assert!(same < 0.05, "dependence survived: {same}");
    }

    #[test]
    fn split_keeps_five_tuples_whole_and_is_reproducible() {
        let real = flows();
        let (a, b) = split(&real, 3);
        assert_eq!(a.len() + b.len(), real.len());
        assert!(a.len() > 100 && b.len() > 100, "{} / {}", a.len(), b.len());
        let (Records::Flows(a), Records::Flows(b)) = (a, b) else {
            panic!("kind changed")
        };
        let key = |t: &FlowColumns, i: usize| {
            (
                t.srcip[i],
                t.dstip[i],
                t.srcport[i],
                t.dstport[i],
                t.proto[i],
            )
        };
        let ka: std::collections::HashSet<_> = (0..a.len()).map(|i| key(&a, i)).collect();
        assert!((0..b.len()).all(|i| !ka.contains(&key(&b, i))));
        let (a2, _) = split(&real, 3);
        assert_eq!(Records::Flows(a), a2);
    }

    #[test]
    fn split_balances_record_counts_when_one_flow_dominates() {
        // One five-tuple with 100 records and 300 single-record flows: a hash split puts the
        // big flow on one side (100 + ~150 vs ~150); the balanced split gives 200 vs 200.
        let mut rows = Vec::new();
        for i in 0..300u32 {
            if i < 100 {
                rows.push((1u32, 2u32, 80u16, 1000u16, i64::from(i)));
            }
            rows.push((10 + i, 3, 53, 2000, i64::from(i)));
        }
        let t = FlowColumns {
            srcip: rows.iter().map(|r| netshare_core::addr::v4(r.0)).collect(),
            dstip: rows.iter().map(|r| netshare_core::addr::v4(r.1)).collect(),
            srcport: rows.iter().map(|r| r.2).collect(),
            dstport: rows.iter().map(|r| r.3).collect(),
            proto: vec![6; rows.len()],
            ts_us: rows.iter().map(|r| r.4).collect(),
            td: vec![0.0; rows.len()],
            pkt: vec![1; rows.len()],
            byt: vec![40; rows.len()],
            label: vec!["background".to_string(); rows.len()],
        };
        for seed in 0..4 {
            let (a, b) = split(&Records::Flows(t.clone()), seed);
            assert_eq!((a.len(), b.len()), (200, 200), "seed {seed}");
        }
        let (a0, _) = split(&Records::Flows(t.clone()), 0);
        let (a1, _) = split(&Records::Flows(t), 1);
        assert_ne!(a0, a1, "the seed chooses which small flows go where");
    }

    #[test]
    fn run_writes_the_store_file_names_with_identical_bytes_each_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("records.parquet");
        records::write_records(&input, &flows(), &[(META_DIALECT, "netshare")]).expect("write");
        let kinds = [BaselineKind::Marginals, BaselineKind::Split];
        let cfg = BaselineConfig::default();
        run(&input, &dir.path().join("x"), &kinds, &cfg).expect("run x");
        run(&input, &dir.path().join("y"), &kinds, &cfg).expect("run y");
        for f in ["marginals.parquet", "half-a.parquet", "half-b.parquet"] {
            let x = std::fs::read(dir.path().join("x").join(f)).expect("x");
            assert_eq!(
                x,
                std::fs::read(dir.path().join("y").join(f)).expect("y"),
                "{f}"
            );
        }
        let (_, meta) =
            records::read_metadata(&dir.path().join("x/marginals.parquet")).expect("meta");
        assert_eq!(meta.get(META_DIALECT).map(String::as_str), Some("netshare"));
    }
}
