//! Anomaly detection, the third downstream task of the paper: unsupervised detectors fitted on
//! the normal traffic of a trace score held-out real rows, and their ROC AUC against the real
//! labels is compared between real-fitted and candidate-fitted detectors (values and rank
//! order). Runs when the real trace carries at least two labels with enough rows; the majority
//! label is "normal", every other label an anomaly.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::downstream::{MIN_LABEL_ROWS, TaskSettings};
use crate::fidelity::{Metric, OWN_CONVENTION};
use crate::joint::features;
use crate::ml::{Matrix, Standardizer};
use crate::stats;
use crate::table::Table;

/// An unsupervised detector: higher scores are more anomalous.
pub trait Detector: Send + Sync {
    /// A short name for reports.
    fn name(&self) -> &'static str;
    /// Fits on normal rows.
    fn fit(&mut self, x: &Matrix);
    /// Anomaly score per row.
    fn score(&self, x: &Matrix) -> Vec<f64>;
}

/// Diagonal Gaussian: the sum of squared z-scores (Mahalanobis distance, independent features).
#[derive(Clone, Debug, Default)]
pub struct GaussianDetector {
    std: Standardizer,
}

impl Detector for GaussianDetector {
    fn name(&self) -> &'static str {
        "gaussian"
    }
    fn fit(&mut self, x: &Matrix) {
        self.std = Standardizer::fit(x);
    }
    fn score(&self, x: &Matrix) -> Vec<f64> {
        let z = self.std.transform(x);
        (0..z.rows)
            .map(|i| z.row(i).iter().map(|v| v * v).sum())
            .collect()
    }
}

/// Distance to the k-th nearest normal row (standardised features).
#[derive(Clone, Debug)]
pub struct KnnDetector {
    /// Which neighbour's distance is the score.
    pub k: usize,
    std: Standardizer,
    train: Option<Matrix>,
}

impl KnnDetector {
    /// Scores by the `k`-th neighbour.
    pub fn new(k: usize) -> KnnDetector {
        KnnDetector {
            k,
            std: Standardizer::default(),
            train: None,
        }
    }
}

impl Detector for KnnDetector {
    fn name(&self) -> &'static str {
        "knn-distance"
    }
    fn fit(&mut self, x: &Matrix) {
        self.std = Standardizer::fit(x);
        self.train = Some(self.std.transform(x));
    }
    fn score(&self, x: &Matrix) -> Vec<f64> {
        use rayon::prelude::*;
        let Some(train) = &self.train else {
            return vec![0.0; x.rows];
        };
        let z = self.std.transform(x);
        let k = self.k.clamp(1, train.rows.max(1));
        (0..z.rows)
            .into_par_iter()
            .map(|i| {
                let q = z.row(i);
                let mut d: Vec<f64> = (0..train.rows)
                    .map(|t| {
                        train
                            .row(t)
                            .iter()
                            .zip(q)
                            .map(|(a, b)| (a - b) * (a - b))
                            .sum::<f64>()
                    })
                    .collect();
                if d.is_empty() {
                    return 0.0;
                }
                let kk = (k - 1).min(d.len() - 1);
                let (_, v, _) = d.select_nth_unstable_by(kk, f64::total_cmp);
                v.sqrt()
            })
            .collect()
    }
}

/// Histogram-based outlier score (HBOS): per feature, 20 equal-width bins over the training
/// range; the score is the sum of -log(bin density), with unseen bins at a small floor.
#[derive(Clone, Debug, Default)]
pub struct HbosDetector {
    bins: Vec<(f64, f64, Vec<f64>)>,
}

const HBOS_BINS: usize = 20;

impl Detector for HbosDetector {
    fn name(&self) -> &'static str {
        "hbos"
    }
    fn fit(&mut self, x: &Matrix) {
        self.bins = (0..x.cols)
            .map(|j| {
                let col: Vec<f64> = (0..x.rows).map(|i| x.row(i)[j]).collect();
                let lo = col.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = col.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let mut h = vec![0.0; HBOS_BINS];
                for v in &col {
                    h[bin(*v, lo, hi)] += 1.0;
                }
                let n = col.len().max(1) as f64;
                h.iter_mut().for_each(|c| *c /= n);
                (lo, hi, h)
            })
            .collect();
    }
    fn score(&self, x: &Matrix) -> Vec<f64> {
        (0..x.rows)
            .map(|i| {
                x.row(i)
                    .iter()
                    .zip(&self.bins)
                    .map(|(&v, (lo, hi, h))| {
                        let p = if v < *lo || v > *hi {
                            0.0
                        } else {
                            h[bin(v, *lo, *hi)]
                        };
                        -(p.max(1e-6)).ln()
                    })
                    .sum()
            })
            .collect()
    }
}

fn bin(v: f64, lo: f64, hi: f64) -> usize {
    if hi <= lo {
        return 0;
    }
    (((v - lo) / (hi - lo) * HBOS_BINS as f64) as usize).min(HBOS_BINS - 1)
}

/// The detectors of the task, in report order.
pub fn detectors() -> Vec<Box<dyn Detector>> {
    vec![
        Box::new(GaussianDetector::default()),
        Box::new(KnnDetector::new(5)),
        Box::new(HbosDetector::default()),
    ]
}

/// One detector's AUC on the real test rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectorScore {
    /// Detector name.
    pub detector: String,
    /// AUC when fitted on real normal rows.
    pub real_fitted_auc: Option<f64>,
    /// AUC when fitted on the candidate's normal rows.
    pub candidate_fitted_auc: Option<f64>,
}

/// The anomaly-detection task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalyTask {
    /// Why it did not run, else null.
    pub skipped: Option<String>,
    /// The label taken as normal traffic.
    pub normal_label: Option<String>,
    /// Rows used.
    pub rows: BTreeMap<String, usize>,
    /// Per detector.
    pub scores: Vec<DetectorScore>,
    /// Spearman of detector AUCs, real-fitted vs candidate-fitted (higher is better).
    pub rank_correlation: Metric,
    /// Mean |AUC real-fitted - AUC candidate-fitted| (lower is better).
    pub mean_auc_gap: Metric,
}

/// Runs the task.
pub fn anomaly(real: &Table, cand: &Table, s: &TaskSettings) -> AnomalyTask {
    let mut out = AnomalyTask {
        skipped: None,
        normal_label: None,
        rows: BTreeMap::new(),
        scores: Vec::new(),
        rank_correlation: Metric::higher(
            None,
            OWN_CONVENTION,
            "Spearman of detector AUCs, real-fitted vs candidate-fitted",
        ),
        mean_auc_gap: Metric::lower(
            None,
            OWN_CONVENTION,
            "mean |AUC real-fitted - AUC candidate-fitted| on real test rows",
        ),
    };
    let counts = stats::counts(&real.label.iter().map(String::as_str).collect::<Vec<_>>());
    let mut by_count: Vec<(&str, f64)> = counts.into_iter().collect();
    by_count.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let anomalies = by_count.iter().skip(1).map(|x| x.1 as usize).sum::<usize>();
    if by_count.len() < 2 || anomalies < MIN_LABEL_ROWS {
        out.skipped = Some(format!(
            "the real trace has {anomalies} rows outside its majority label; anomaly detection needs {MIN_LABEL_ROWS}"
        ));
        return out;
    }
    let normal = by_count[0].0.to_string();
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed ^ 0xa11);
    let mut order: Vec<usize> = (0..real.len()).collect();
    order.shuffle(&mut rng);
    let cut = order.len() * 7 / 10;
    let train: Vec<usize> = order[..cut]
        .iter()
        .copied()
        .filter(|&i| real.label[i] == normal)
        .take(s.max_rows)
        .collect();
    let test: Vec<usize> = order[cut..].to_vec();
    let mut cand_rows: Vec<usize> = (0..cand.len())
        .filter(|&i| cand.label.get(i) == Some(&normal))
        .collect();
    cand_rows.shuffle(&mut rng);
    cand_rows.truncate(s.max_rows);
    out.rows.insert("real_train_normal".into(), train.len());
    out.rows.insert("real_test".into(), test.len());
    out.rows
        .insert("candidate_train_normal".into(), cand_rows.len());
    out.normal_label = Some(normal.clone());
    let truth: Vec<bool> = test.iter().map(|&i| real.label[i] != normal).collect();
    if train.is_empty() || cand_rows.is_empty() || !truth.iter().any(|&t| t) {
        out.skipped =
            Some("no normal rows to fit on, or no anomaly among the real test rows".into());
        return out;
    }
    let (fr, fc) = (features(real).0, features(cand).0);
    let xt = fr.take(&test);
    for (mut a, mut b) in detectors().into_iter().zip(detectors()) {
        a.fit(&fr.take(&train));
        b.fit(&fc.take(&cand_rows));
        out.scores.push(DetectorScore {
            detector: a.name().to_string(),
            real_fitted_auc: stats::roc_auc(&a.score(&xt), &truth),
            candidate_fitted_auc: stats::roc_auc(&b.score(&xt), &truth),
        });
    }
    let ra: Vec<f64> = out
        .scores
        .iter()
        .map(|d| d.real_fitted_auc.unwrap_or(f64::NAN))
        .collect();
    let ca: Vec<f64> = out
        .scores
        .iter()
        .map(|d| d.candidate_fitted_auc.unwrap_or(f64::NAN))
        .collect();
    if ra.iter().chain(&ca).all(|v| v.is_finite()) {
        out.rank_correlation.value = stats::spearman(&ra, &ca);
        out.mean_auc_gap.value =
            Some(stats::sum(ra.iter().zip(&ca).map(|(a, b)| (a - b).abs())) / ra.len() as f64);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Column;
    use netshare_core::records::TraceKind;

    /// Normal rows: small flows to port 443; anomalies: huge UDP bursts to port 0.
    fn labelled(n: usize, seed: u64) -> Table {
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut t = Table {
            kind: TraceKind::Flows,
            srcip: Vec::new(),
            dstip: Vec::new(),
            srcport: Vec::new(),
            dstport: Vec::new(),
            proto: Vec::new(),
            time_us: Vec::new(),
            values: ["td", "pkt", "byt"]
                .iter()
                .map(|n| Column {
                    name: n,
                    data: Vec::new(),
                })
                .collect(),
            label: Vec::new(),
        };
        for i in 0..n {
            let attack = i % 10 == 0;
            t.srcip
                .push(netshare_core::addr::v4(rng.random_range(0..50)));
            t.dstip
                .push(netshare_core::addr::v4(rng.random_range(0..20)));
            t.srcport.push(rng.random_range(1024..65535));
            t.dstport.push(if attack { 0 } else { 443 });
            t.proto.push(if attack { 17 } else { 6 });
            t.time_us.push(i as f64 * 1000.0);
            t.values[0].data.push(rng.random_range(0.0..2.0));
            t.values[1].data.push(if attack {
                rng.random_range(5000.0..9000.0)
            } else {
                rng.random_range(1.0..20.0)
            });
            t.values[2].data.push(if attack {
                1e7
            } else {
                rng.random_range(60.0..20_000.0)
            });
            t.label.push(if attack {
                "dos".into()
            } else {
                "background".into()
            });
        }
        t
    }

    #[test]
    fn detectors_fitted_on_normal_rows_find_the_attacks() {
        let real = labelled(1000, 1);
        let s = TaskSettings {
            seed: 0,
            max_rows: 500,
            top_k: 10,
            sketch_repeats: 1,
        };
        let task = anomaly(&real, &labelled(1000, 2), &s);
        assert_eq!(task.skipped, None);
        assert_eq!(task.normal_label.as_deref(), Some("background"));
        assert_eq!(task.scores.len(), 3);
        for d in &task.scores {
            assert!(d.real_fitted_auc.expect("auc") > 0.95, "{d:?}");
            assert!(d.candidate_fitted_auc.expect("auc") > 0.95, "{d:?}");
        }
        // A candidate whose "normal" traffic looks like the attacks makes the detectors useless.
        let mut bad = labelled(1000, 3);
        for i in 0..bad.len() {
            bad.dstport[i] = 0;
            bad.proto[i] = 17;
            bad.values[1].data[i] = 7000.0;
            bad.values[2].data[i] = 1e7;
        }
        let worse = anomaly(&real, &bad, &s);
        assert!(
            worse.mean_auc_gap.value.expect("gap") > task.mean_auc_gap.value.expect("gap") + 0.2
        );
    }

    #[test]
    fn a_trace_without_enough_anomalies_is_skipped_with_the_reason() {
        let mut real = labelled(100, 1);
        real.label.iter_mut().for_each(|l| *l = "background".into());
        let s = TaskSettings {
            seed: 0,
            max_rows: 100,
            top_k: 10,
            sketch_repeats: 1,
        };
        let t = anomaly(&real, &real.clone(), &s);
        assert!(t.skipped.expect("skipped").contains("needs 10"));
    }
}
