//! Metrics beyond per-field marginals, because a sampler that draws each field independently
//! matches every marginal: joint JSDs of field pairs, mutual-information differences, flow-level
//! distributions (records per flow, flow duration, inter-arrival within flows).

use std::collections::BTreeMap;

use netshare_core::records::TraceKind;
use serde::{Deserialize, Serialize};

use crate::fidelity::{Metric, OWN_CONVENTION};
use crate::stats;
use crate::table::Table;

/// Each row's IP popularity rank within its own trace (1 = most frequent; ties by address).
pub fn ip_ranks<K: std::hash::Hash + Eq + Ord + Copy>(ips: &[K]) -> Vec<u64> {
    let c = stats::counts(ips);
    let mut order: Vec<(K, f64)> = c.into_iter().collect();
    order.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let rank: crate::stats::FxHashMap<K, u64> = order
        .iter()
        .enumerate()
        .map(|(i, (ip, _))| (*ip, i as u64 + 1))
        .collect();
    ips.iter().map(|ip| rank[ip]).collect()
}

/// A port folded to a code: well-known ports (< 1024) keep their number, the rest fall into
/// 16 ranges of 4,096.
pub fn port_code(p: u16) -> u64 {
    if p < 1024 {
        u64::from(p)
    } else {
        1024 + u64::from(p / 4096)
    }
}

/// The discretised fields mutual information is measured on, with one code per row.
pub fn discrete_fields(t: &Table) -> Vec<(&'static str, Vec<u64>)> {
    let mut out = vec![
        (
            "srcip_rank",
            ip_ranks(&t.srcip)
                .into_iter()
                .map(|r| stats::log2_bin(r as f64 - 1.0))
                .collect(),
        ),
        (
            "dstip_rank",
            ip_ranks(&t.dstip)
                .into_iter()
                .map(|r| stats::log2_bin(r as f64 - 1.0))
                .collect(),
        ),
        ("srcport", t.srcport.iter().map(|&p| port_code(p)).collect()),
        ("dstport", t.dstport.iter().map(|&p| port_code(p)).collect()),
        ("proto", t.proto.iter().map(|&p| u64::from(p)).collect()),
    ];
    for c in &t.values {
        let codes = match c.name {
            // Durations in milliseconds on a log scale.
            "td" => c
                .data
                .iter()
                .map(|&v| stats::log2_bin(v * 1000.0))
                .collect(),
            "tos" | "ttl" => c.data.iter().map(|&v| v.max(0.0) as u64).collect(),
            _ => c.data.iter().map(|&v| stats::log2_bin(v)).collect(),
        };
        out.push((c.name, codes));
    }
    out
}

/// Mutual information of one field pair in both traces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MiPair {
    /// First field.
    pub a: String,
    /// Second field.
    pub b: String,
    /// MI (nats) in the reference trace.
    pub reference: f64,
    /// MI (nats) in the candidate trace.
    pub candidate: f64,
    /// |reference - candidate|.
    pub abs_diff: f64,
}

/// Mutual information of every pair of discretised fields, in both traces.
pub fn mutual_information_pairs(real: &Table, syn: &Table) -> Vec<MiPair> {
    let fr = discrete_fields(real);
    let fs = discrete_fields(syn);
    let mut pairs = Vec::new();
    for i in 0..fr.len() {
        for j in i + 1..fr.len() {
            pairs.push((i, j));
        }
    }
    use rayon::prelude::*;
    pairs
        .par_iter()
        .map(|&(i, j)| {
            let r = stats::mutual_information(&fr[i].1, &fr[j].1);
            let s = stats::mutual_information(&fs[i].1, &fs[j].1);
            MiPair {
                a: fr[i].0.to_string(),
                b: fr[j].0.to_string(),
                reference: r,
                candidate: s,
                abs_diff: (r - s).abs(),
            }
        })
        .collect()
}

/// Codes of the (srcip popularity-rank bin, size bin) pair of each row.
fn rank_size_codes(t: &Table) -> Vec<u64> {
    let size = t.value(t.size_field()).unwrap_or(&[]);
    ip_ranks(&t.srcip)
        .into_iter()
        .zip(size)
        .map(|(r, &s)| (stats::log2_bin(r as f64 - 1.0) << 32) | stats::log2_bin(s))
        .collect()
}

/// Joint-distribution metrics: squared JSDs of field pairs and the mean MI difference.
pub fn joint(real: &Table, syn: &Table, mi: &[MiPair]) -> BTreeMap<String, Metric> {
    // Port codes, not raw ports: two samples of the same traffic share few ephemeral ports, so
    // exact-port joints would measure sampling noise rather than dependence.
    let dp = |t: &Table| -> Vec<u32> {
        t.dstport
            .iter()
            .zip(&t.proto)
            .map(|(&p, &q)| ((port_code(p) as u32) << 8) | u32::from(q))
            .collect()
    };
    let sp = |t: &Table| -> Vec<u32> {
        t.srcport
            .iter()
            .zip(&t.dstport)
            .map(|(&a, &b)| ((port_code(a) as u32) << 16) | port_code(b) as u32)
            .collect()
    };
    let mut m = BTreeMap::new();
    m.insert(
        "jsd_dstport_proto".to_string(),
        Metric::lower(
            stats::exact_jsd(&dp(real), &dp(syn)),
            OWN_CONVENTION,
            "squared JSD (ln) of joint (dstport code, proto); codes keep ports < 1024, else 16 ranges",
        ),
    );
    m.insert(
        "jsd_srcport_dstport".to_string(),
        Metric::lower(
            stats::exact_jsd(&sp(real), &sp(syn)),
            OWN_CONVENTION,
            "squared JSD (ln) of joint (srcport code, dstport code); codes keep ports < 1024, else 16 ranges",
        ),
    );
    m.insert(
        "jsd_srcip_rank_size".to_string(),
        Metric::lower(
            stats::exact_jsd(&rank_size_codes(real), &rank_size_codes(syn)),
            OWN_CONVENTION,
            format!(
                "squared JSD (ln) of joint (floor log2 srcip popularity rank, floor log2(1+{}))",
                real.size_field()
            ),
        ),
    );
    let mean = if mi.is_empty() {
        None
    } else {
        Some(stats::sum(mi.iter().map(|p| p.abs_diff)) / mi.len() as f64)
    };
    m.insert(
        "mi_mean_abs_diff".to_string(),
        Metric::lower(
            mean,
            OWN_CONVENTION,
            "mean over field pairs of |MI_reference - MI_candidate| (nats, plug-in, discretised fields)",
        ),
    );
    m
}

/// Flow-level samples of a trace: records per five-tuple, duration of each five-tuple (s), and
/// gaps between consecutive records of a five-tuple (s).
pub fn flow_samples(t: &Table) -> [Vec<f64>; 3] {
    let groups = t.flows();
    let td = t.value("td");
    let mut sizes = Vec::with_capacity(groups.len());
    let mut durations = Vec::with_capacity(groups.len());
    let mut gaps = Vec::new();
    for g in &groups {
        sizes.push(g.len() as f64);
        let first = t.time_us[g[0]];
        // A flow record lasts td seconds; a packet is a point in time.
        let end = g
            .iter()
            .map(|&i| t.time_us[i] + td.map_or(0.0, |d| d[i] * 1e6))
            .fold(f64::NEG_INFINITY, f64::max);
        durations.push((end - first) / 1e6);
        gaps.extend(
            g.windows(2)
                .map(|w| (t.time_us[w[1]] - t.time_us[w[0]]) / 1e6),
        );
    }
    [sizes, durations, gaps]
}

/// Flow-level EMDs.
pub fn flow_level(real: &Table, syn: &Table) -> BTreeMap<String, Metric> {
    let r = flow_samples(real);
    let s = flow_samples(syn);
    let span = match real.kind {
        TraceKind::Flows => "from the first start to the last end (start + td)",
        TraceKind::Packets => "from the first to the last packet",
    };
    let mut m = BTreeMap::new();
    let finite = |v: &[f64]| {
        v.iter()
            .copied()
            .filter(|x| x.is_finite())
            .collect::<Vec<f64>>()
    };
    m.insert(
        "emd_records_per_flow".to_string(),
        Metric::lower(
            stats::wasserstein(&r[0], &s[0]),
            OWN_CONVENTION,
            "Wasserstein-1 of records per five-tuple",
        ),
    );
    m.insert(
        "emd_flow_duration_s".to_string(),
        Metric::lower(
            stats::wasserstein(&finite(&r[1]), &finite(&s[1])),
            OWN_CONVENTION,
            format!("Wasserstein-1 of each five-tuple's duration in s, {span}"),
        ),
    );
    m.insert(
        "emd_flow_interarrival_s".to_string(),
        Metric::lower(
            stats::wasserstein(&finite(&r[2]), &finite(&s[2])),
            OWN_CONVENTION,
            "Wasserstein-1 of gaps (s) between consecutive records of a five-tuple (null when a trace has no repeated five-tuple)",
        ),
    );
    m
}

/// Per-row numeric features for the classifiers: IP popularity ranks (log2), port codes (see
/// [`port_code`]; raw ephemeral ports would identify individual flows, so a classifier could tell
/// two halves of one real trace apart by memorising them), protocol, time as a fraction of the
/// trace's span, and log(1 + v) of each numeric field.
pub fn features(t: &Table) -> (crate::ml::Matrix, Vec<String>) {
    let sr = ip_ranks(&t.srcip);
    let dr = ip_ranks(&t.dstip);
    let lo = t.time_us.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = t.time_us.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let mut names: Vec<String> = [
        "srcip_rank_log2",
        "dstip_rank_log2",
        "srcport_code",
        "dstport_code",
        "proto",
        "time_frac",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.extend(t.values.iter().map(|c| format!("log1p_{}", c.name)));
    let cols = names.len();
    let mut data = Vec::with_capacity(t.len() * cols);
    for i in 0..t.len() {
        data.push((sr[i] as f64).log2());
        data.push((dr[i] as f64).log2());
        data.push(port_code(t.srcport[i]) as f64);
        data.push(port_code(t.dstport[i]) as f64);
        data.push(f64::from(t.proto[i]));
        data.push((t.time_us[i] - lo) / span);
        for c in &t.values {
            let v = c.data[i];
            data.push(if v.is_finite() {
                v.max(0.0).ln_1p()
            } else {
                0.0
            });
        }
    }
    (crate::ml::Matrix::new(t.len(), cols, data), names)
}
