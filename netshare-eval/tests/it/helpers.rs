//! Shared test inputs: the real traces and simple baselines built here (eval must not depend on
//! the synth crate, which owns the real baseline generators).

use std::path::PathBuf;

use netshare_eval::Table;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

pub fn data(rel: &str) -> PathBuf {
    fixtures::real_trace(rel).unwrap_or_else(|| panic!("fixture {rel} is missing"))
}

pub fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("reference")
}

pub fn read(rel: &str) -> Table {
    Table::read(&data(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Independent marginals: each column permuted on its own.
pub fn marginals(t: &Table, seed: u64) -> Table {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut perm = |n: usize| {
        let mut idx: Vec<usize> = (0..n).collect();
        idx.shuffle(&mut rng);
        idx
    };
    let n = t.len();
    let mut out = t.clone();
    let pick = |v: &[std::net::IpAddr], p: &[usize]| p.iter().map(|&i| v[i]).collect::<Vec<_>>();
    out.srcip = pick(&t.srcip, &perm(n));
    out.dstip = pick(&t.dstip, &perm(n));
    let p = perm(n);
    out.srcport = p.iter().map(|&i| t.srcport[i]).collect();
    let p = perm(n);
    out.dstport = p.iter().map(|&i| t.dstport[i]).collect();
    let p = perm(n);
    out.proto = p.iter().map(|&i| t.proto[i]).collect();
    let p = perm(n);
    out.time_us = p.iter().map(|&i| t.time_us[i]).collect();
    for c in &mut out.values {
        let p = perm(n);
        let src = c.data.clone();
        c.data = p.iter().map(|&i| src[i]).collect();
    }
    out
}

/// Two halves by five-tuple parity of a simple hash.
pub fn halves(t: &Table) -> (Table, Table) {
    let mut a = Vec::new();
    let mut b = Vec::new();
    for i in 0..t.len() {
        let k = t.five_tuple(i);
        let (s, d, sp, dp, p) = (
            netshare_core::addr::key64(k.srcip),
            netshare_core::addr::key64(k.dstip),
            k.srcport,
            k.dstport,
            k.proto,
        );
        let h = (s.wrapping_mul(0x9e37_79b9)
            ^ d.wrapping_mul(0x85eb_ca6b)
            ^ (u64::from(sp) << 7)
            ^ (u64::from(dp) << 3)
            ^ u64::from(p))
        .wrapping_mul(0xff51_afd7_ed55_8ccd);
        if (h >> 40) & 1 == 0 {
            a.push(i);
        } else {
            b.push(i);
        }
    }
    (t.take(&a), t.take(&b))
}
