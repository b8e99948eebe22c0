//! Statistical primitives with the exact definitions of scipy / scikit-learn, so values can be
//! checked against them: Jensen-Shannon divergence, 1-D Wasserstein distance, mutual
//! information, Spearman correlation and ROC AUC. Their one home: the evaluator's metrics and
//! the trainer's quick quality score both use them.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// FxHash (the rustc hasher): much faster than SipHash on the small integer keys counted here,
/// and deterministic. Never used on untrusted keys where collision attacks matter: its only
/// inputs are trace fields, and a slow count is the worst an adversarial trace can cause.
#[derive(Clone, Copy, Debug, Default)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` with [`FxHasher`].
pub type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Neumaier-compensated sum (the order of summation then barely matters, so values agree
/// with numpy's pairwise sums to far better than 1e-9 relative).
pub fn sum(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut s = 0.0f64;
    let mut c = 0.0f64;
    for v in values {
        let t = s + v;
        if s.abs() >= v.abs() {
            c += (s - t) + v;
        } else {
            c += (v - t) + s;
        }
        s = t;
    }
    s + c
}

/// `p * ln(p / m)` with scipy's `rel_entr` conventions (0 when `p` is 0).
fn rel_entr(p: f64, m: f64) -> f64 {
    if p > 0.0 && m > 0.0 {
        p * (p / m).ln()
    } else if p == 0.0 {
        0.0
    } else {
        f64::INFINITY
    }
}

/// Squared Jensen-Shannon distance with natural log between two count vectors of equal
/// length (`scipy.spatial.distance.jensenshannon(p, q) ** 2`): each is normalised to sum 1.
/// Values lie in `[0, ln 2]`. Returns `None` when either vector sums to zero.
pub fn jsd_squared(p: &[f64], q: &[f64]) -> Option<f64> {
    debug_assert_eq!(p.len(), q.len());
    let sp = sum(p.iter().copied());
    let sq = sum(q.iter().copied());
    if sp <= 0.0 || sq <= 0.0 {
        return None;
    }
    let terms = p.iter().zip(q).map(|(&a, &b)| {
        let a = a / sp;
        let b = b / sq;
        let m = (a + b) / 2.0;
        rel_entr(a, m) + rel_entr(b, m)
    });
    Some((sum(terms) / 2.0).max(0.0))
}

/// Counts of each distinct value.
pub fn counts<K: Hash + Eq + Copy>(values: &[K]) -> FxHashMap<K, f64> {
    let mut m: FxHashMap<K, f64> =
        FxHashMap::with_capacity_and_hasher(values.len().min(1 << 20), Default::default());
    for &v in values {
        *m.entry(v).or_insert(0.0) += 1.0;
    }
    m
}

/// Counts of each distinct value, sorted descending (the popularity-rank frequency vector).
pub fn rank_counts<K: Ord + Copy>(values: &[K]) -> Vec<f64> {
    let mut v = values.to_vec();
    v.sort_unstable();
    let mut out = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i + 1;
        while j < v.len() && v[j] == v[i] {
            j += 1;
        }
        out.push((j - i) as f64);
        i = j;
    }
    out.sort_unstable_by(|a, b| b.total_cmp(a));
    out
}

/// Squared JSD between two popularity-rank vectors, zero-padded to equal length.
pub fn rank_jsd<K: Ord + Copy>(a: &[K], b: &[K]) -> Option<f64> {
    let mut p = rank_counts(a);
    let mut q = rank_counts(b);
    let n = p.len().max(q.len());
    p.resize(n, 0.0);
    q.resize(n, 0.0);
    jsd_squared(&p, &q)
}

/// Squared JSD between the distributions of two samples over their exact values.
pub fn exact_jsd<K: Hash + Eq + Copy + Ord>(a: &[K], b: &[K]) -> Option<f64> {
    let ca = counts(a);
    let cb = counts(b);
    let mut keys: Vec<K> = ca.keys().chain(cb.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    let p: Vec<f64> = keys
        .iter()
        .map(|k| ca.get(k).copied().unwrap_or(0.0))
        .collect();
    let q: Vec<f64> = keys
        .iter()
        .map(|k| cb.get(k).copied().unwrap_or(0.0))
        .collect();
    jsd_squared(&p, &q)
}

/// Squared JSD between two samples over `bins` fixed bins (values are bin indices).
pub fn binned_jsd(
    a: impl Iterator<Item = usize>,
    b: impl Iterator<Item = usize>,
    bins: usize,
) -> Option<f64> {
    let mut p = vec![0.0; bins];
    let mut q = vec![0.0; bins];
    for v in a {
        p[v] += 1.0;
    }
    for v in b {
        q[v] += 1.0;
    }
    jsd_squared(&p, &q)
}

/// Sorts a sample (NaN last).
pub fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_unstable_by(f64::total_cmp);
    s
}

/// 1-D Wasserstein-1 distance between two samples given sorted
/// (`scipy.stats.wasserstein_distance(u, v)`): the integral of |F_u - F_v|.
/// `None` when either sample is empty.
pub fn wasserstein_sorted(u: &[f64], v: &[f64]) -> Option<f64> {
    if u.is_empty() || v.is_empty() {
        return None;
    }
    let (nu, nv) = (u.len() as f64, v.len() as f64);
    let (mut i, mut j) = (0usize, 0usize);
    // Walk the merged sorted values; between consecutive distinct points both CDFs are flat.
    let mut prev = u[0].min(v[0]);
    let mut terms = Vec::with_capacity(u.len() + v.len());
    while i < u.len() || j < v.len() {
        let x = match (u.get(i), v.get(j)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => break,
        };
        if x > prev {
            let fu = i as f64 / nu;
            let fv = j as f64 / nv;
            terms.push((fu - fv).abs() * (x - prev));
            prev = x;
        }
        while i < u.len() && u[i] <= x {
            i += 1;
        }
        while j < v.len() && v[j] <= x {
            j += 1;
        }
    }
    Some(sum(terms))
}

/// 1-D Wasserstein-1 distance between two unsorted samples.
pub fn wasserstein(u: &[f64], v: &[f64]) -> Option<f64> {
    wasserstein_sorted(&sorted(u), &sorted(v))
}

/// Ranks with ties averaged (1-based, as `scipy.stats.rankdata`).
pub fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i + 1;
        while j < idx.len() && v[idx[j]] == v[idx[i]] {
            j += 1;
        }
        let r = (i + j + 1) as f64 / 2.0;
        for &k in &idx[i..j] {
            ranks[k] = r;
        }
        i = j;
    }
    ranks
}

/// Pearson correlation; `None` when either side is constant or shorter than 2.
pub fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() != b.len() || a.len() < 2 {
        return None;
    }
    let n = a.len() as f64;
    let ma = sum(a.iter().copied()) / n;
    let mb = sum(b.iter().copied()) / n;
    let cov = sum(a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)));
    let va = sum(a.iter().map(|x| (x - ma) * (x - ma)));
    let vb = sum(b.iter().map(|y| (y - mb) * (y - mb)));
    if va <= 0.0 || vb <= 0.0 {
        return None;
    }
    Some((cov / (va.sqrt() * vb.sqrt())).clamp(-1.0, 1.0))
}

/// Spearman rank correlation (`scipy.stats.spearmanr`); `None` when undefined.
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    pearson(&average_ranks(a), &average_ranks(b))
}

/// Area under the ROC curve of `scores` for binary `positive` labels
/// (`sklearn.metrics.roc_auc_score`; ties count one half). `None` without both classes.
pub fn roc_auc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let ranks = average_ranks(scores);
    let n_pos = positive.iter().filter(|&&p| p).count() as f64;
    let n_neg = positive.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return None;
    }
    let rank_sum = sum(ranks
        .iter()
        .zip(positive)
        .filter(|(_, p)| **p)
        .map(|(r, _)| *r));
    Some((rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg))
}

/// Plug-in mutual information (nats) of two discrete variables given as parallel codes
/// (`sklearn.metrics.mutual_info_score`).
pub fn mutual_information(x: &[u64], y: &[u64]) -> f64 {
    let n = x.len() as f64;
    if x.is_empty() {
        return 0.0;
    }
    let cx = counts(x);
    let cy = counts(y);
    let pairs: Vec<(u64, u64)> = x.iter().copied().zip(y.iter().copied()).collect();
    let cxy = counts(&pairs);
    let mut keys: Vec<&(u64, u64)> = cxy.keys().collect();
    keys.sort_unstable();
    sum(keys.into_iter().map(|k| {
        let nxy = cxy[k];
        let nx = cx[&k.0];
        let ny = cy[&k.1];
        nxy / n * ((nxy * n) / (nx * ny)).ln()
    }))
    .max(0.0)
}

/// `floor(log2(1 + max(v, 0)))`: a log-scale bin for counts and sizes.
pub fn log2_bin(v: f64) -> u64 {
    (1.0 + v.max(0.0)).log2().floor() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsd_of_identical_and_disjoint_distributions_hits_its_bounds() {
        assert_eq!(jsd_squared(&[1.0, 2.0], &[2.0, 4.0]), Some(0.0));
        let d = jsd_squared(&[1.0, 0.0], &[0.0, 1.0]).expect("defined");
        assert!((d - std::f64::consts::LN_2).abs() < 1e-15);
        assert_eq!(jsd_squared(&[0.0], &[1.0]), None);
    }

    #[test]
    fn wasserstein_of_a_shift_is_the_shift() {
        let u = [0.0, 1.0, 3.0];
        let v = [2.5, 3.5, 5.5];
        assert!((wasserstein(&u, &v).expect("defined") - 2.5).abs() < 1e-12);
        // scipy.stats.wasserstein_distance([0, 1, 3], [5, 6, 8]) == 5.0
        assert_eq!(wasserstein(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0]), Some(5.0));
        // |F_u - F_v| is 1/6 on [0, 1) and 1/3 on [1, 3): 5/6 in all.
        let w = wasserstein(&[0.0, 1.0], &[0.0, 0.0, 3.0]).expect("defined");
        assert!((w - 5.0 / 6.0).abs() < 1e-15, "{w}");
    }

    #[test]
    fn auc_counts_ties_as_half_and_spearman_averages_tied_ranks() {
        assert_eq!(
            roc_auc(&[0.1, 0.9, 0.5, 0.5], &[false, true, true, false]),
            Some(0.875)
        );
        assert_eq!(roc_auc(&[0.1], &[true]), None);
        assert_eq!(average_ranks(&[3.0, 1.0, 3.0]), vec![2.5, 1.0, 2.5]);
        let s = spearman(&[1.0, 2.0, 3.0, 4.0], &[10.0, 20.0, 40.0, 30.0]).expect("defined");
        assert!((s - 0.8).abs() < 1e-12);
        assert_eq!(spearman(&[1.0, 1.0], &[1.0, 2.0]), None);
    }

    #[test]
    fn mutual_information_of_a_copy_is_the_entropy() {
        let x = [0u64, 0, 1, 1];
        assert!((mutual_information(&x, &x) - std::f64::consts::LN_2).abs() < 1e-12);
        assert_eq!(mutual_information(&x, &[5, 6, 5, 6]), 0.0);
    }
}
