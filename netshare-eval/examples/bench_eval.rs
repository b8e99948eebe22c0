//! Benchmark: every distributional metric (NetShare §6) on two 1M-record tables, in both
//! conventions, for flow and packet traces; also the joint and flow-level metrics for reference.
//!
//! The tables are built from the real UGR16 day trace (9,320 flows) by resampling rows with a
//! seeded generator and jittering times, sizes and ephemeral ports, so value distributions are
//! realistic (heavy-tailed sizes, skewed IP popularity) at a million rows.
//!
//! Run: `cargo run --release -p netshare-eval --example bench_eval [-- ROWS REPEATS]`

use std::time::Instant;

use netshare_core::records::TraceKind;
use netshare_eval::fidelity::{self, Convention};
use netshare_eval::table::Column;
use netshare_eval::{Table, joint};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn scale_up(base: &Table, n: usize, seed: u64, kind: TraceKind) -> Table {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut idx = Vec::with_capacity(n);
    for _ in 0..n {
        idx.push(rng.random_range(0..base.len()));
    }
    let mut t = base.take(&idx);
    for i in 0..n {
        // Distinct hosts per copy keep the IP popularity tail long, as in a larger capture.
        if rng.random_bool(0.3) {
            let shift: u32 = rng.random_range(0..4096) << 8;
            t.srcip[i] = match t.srcip[i] {
                std::net::IpAddr::V4(a) => {
                    netshare_core::addr::v4(u32::from(a).wrapping_add(shift))
                }
                std::net::IpAddr::V6(a) => {
                    netshare_core::addr::v6(u128::from(a).wrapping_add(u128::from(shift)))
                }
            };
        }
        if t.srcport[i] >= 1024 {
            t.srcport[i] = rng.random_range(1024..=65535);
        }
        t.time_us[i] += rng.random_range(0.0..86_400e6);
    }
    for c in &mut t.values {
        for v in &mut c.data {
            *v *= rng.random_range(0.9..1.1);
        }
    }
    if kind == TraceKind::Packets {
        t.kind = TraceKind::Packets;
        let byt = t.value("byt").expect("flows carry byt").to_vec();
        let pkt = t.value("pkt").expect("flows carry pkt").to_vec();
        t.values = vec![
            Column {
                name: "pkt_len",
                data: byt
                    .iter()
                    .zip(&pkt)
                    .map(|(b, p)| (b / p.max(1.0)).round().clamp(20.0, 1500.0))
                    .collect(),
            },
            Column {
                name: "tos",
                data: vec![0.0; n],
            },
            Column {
                name: "ttl",
                data: (0..n)
                    .map(|_| f64::from(rng.random_range(32u8..=128)))
                    .collect(),
            },
        ];
        t.label.clear();
    }
    t
}

fn time<F: FnMut()>(repeats: usize, mut f: F) -> (f64, f64) {
    let mut v: Vec<f64> = (0..repeats)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64()
        })
        .collect();
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2])
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let repeats: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    let path = fixtures::real_trace("netflow/ugr16-day1-host-a.csv")
        .expect("the UGR16 day trace is embedded in fixtures");
    let base = Table::read(&path).expect("read the UGR16 trace");
    println!(
        "threads: {} (rayon); rows per side: {n}; repeats: {repeats} (min / median wall seconds)",
        rayon::current_num_threads()
    );
    println!(
        "{:<8} {:<34} {:>9} {:>9}",
        "kind", "work", "min s", "median s"
    );
    for kind in [TraceKind::Flows, TraceKind::Packets] {
        let real = scale_up(&base, n, 1, kind);
        let syn = scale_up(&base, n, 2, kind);
        for conv in [Convention::Netshare, Convention::Netdpsyn] {
            let (lo, med) = time(repeats, || {
                let m = fidelity::distributional(&real, &syn, conv);
                assert!(m.values().all(|x| x.value.is_some()));
            });
            println!(
                "{:<8} {:<34} {lo:>9.3} {med:>9.3}",
                format!("{kind:?}"),
                format!("all distributional ({})", conv.name())
            );
        }
        let (lo, med) = time(1, || {
            let mi = joint::mutual_information_pairs(&real, &syn);
            let _ = joint::joint(&real, &syn, &mi);
        });
        println!(
            "{:<8} {:<34} {lo:>9.3} {med:>9.3}",
            format!("{kind:?}"),
            "joint + mutual information"
        );
        let (lo, med) = time(1, || {
            let _ = joint::flow_level(&real, &syn);
        });
        println!(
            "{:<8} {:<34} {lo:>9.3} {med:>9.3}",
            format!("{kind:?}"),
            "flow-level"
        );
    }
}
