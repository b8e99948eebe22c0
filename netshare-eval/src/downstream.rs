//! Tasks a synthetic trace is used for (SPEC §6): detectability (can a classifier tell it from
//! the real one?), traffic-type classification trained on synthetic and tested on real, and
//! heavy-hitter estimation with sketches.

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::fidelity::{Metric, OWN_CONVENTION};
use crate::joint::features;
use crate::ml::{self, Classifier, Matrix, RandomForest};
use crate::sketch::{self, CountMin, CountSketch, Sketch, UnivMon};
use crate::stats;
use crate::table::Table;

/// Settings of the downstream tasks.
#[derive(Clone, Copy, Debug)]
pub struct TaskSettings {
    /// Seed of every split, subsample and forest.
    pub seed: u64,
    /// Rows per side kept for training classifiers.
    pub max_rows: usize,
    /// Heavy hitters whose counts are estimated.
    pub top_k: usize,
    /// Hash seeds averaged per sketch.
    pub sketch_repeats: usize,
}

fn shuffled(n: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(rng);
    idx
}

/// Real-vs-synthetic detectability: a random forest is trained to tell rows apart on 70% of an
/// equal-size sample of both traces and scored on the other 30%. AUC 0.5 is indistinguishable.
pub fn detectability(real: &Table, syn: &Table, s: &TaskSettings) -> Detectability {
    // One sample, split and feature matrix serves the overall forest and the per-field ones.
    let d = DetectionData::new(real, syn, s);
    let auc = d.auc(None, s.seed);
    let n = d.n;
    let mut overall = BTreeMap::new();
    overall.insert(
        "auc".to_string(),
        Metric::lower(auc, OWN_CONVENTION, format!("held-out ROC AUC of a random forest telling {n}+{n} rows apart (0.5 = indistinguishable)")),
    );
    overall.insert(
        "auc_excess".to_string(),
        Metric::lower(auc.map(|a| (a - 0.5).abs()), OWN_CONVENTION, "|AUC - 0.5|"),
    );
    let mut by_field = BTreeMap::new();
    for (j, name) in d.names.iter().enumerate() {
        by_field.insert(
            name.clone(),
            Metric::lower(
                d.auc(Some(j), s.seed),
                OWN_CONVENTION,
                format!("held-out ROC AUC of a random forest telling real from candidate rows by {name} alone"),
            ),
        );
    }
    Detectability { overall, by_field }
}

/// What [`detectability`] measures: the forest on every feature, and on one feature at a time
/// (the same rows, split and forest settings; for flow traces bytes per packet is added, a
/// ratio the generator must get right jointly), which says what gives a candidate away.
pub struct Detectability {
    /// `auc` and `auc_excess`.
    pub overall: BTreeMap<String, Metric>,
    /// AUC per feature.
    pub by_field: BTreeMap<String, Metric>,
}

/// The labelled, shuffled and split rows of a detectability task.
struct DetectionData {
    n: usize,
    /// Columns of the overall forest: the shared features, without the derived ones.
    base_cols: usize,
    x: Matrix,
    y: Vec<usize>,
    train: Vec<usize>,
    test: Vec<usize>,
    names: Vec<String>,
}

impl DetectionData {
    fn new(real: &Table, syn: &Table, s: &TaskSettings) -> DetectionData {
        let mut rng = ChaCha8Rng::seed_from_u64(s.seed ^ 0xde7e);
        let n = real.len().min(syn.len()).min(s.max_rows);
        let (fr, mut names) = features(real);
        let (fs, _) = features(syn);
        let ir: Vec<usize> = shuffled(real.len(), &mut rng).into_iter().take(n).collect();
        let is: Vec<usize> = shuffled(syn.len(), &mut rng).into_iter().take(n).collect();
        let mut data = fr.take(&ir).data;
        data.extend(fs.take(&is).data);
        let mut x = Matrix::new(2 * n, fr.cols, data);
        let base_cols = x.cols;
        // Bytes per packet, when both counts exist (flow traces).
        let col = |name: &str| names.iter().position(|c| c == name);
        if let (Some(b), Some(p)) = (col("log1p_byt"), col("log1p_pkt")) {
            let cols = x.cols + 1;
            let mut data = Vec::with_capacity(x.rows * cols);
            for i in 0..x.rows {
                let row = x.row(i);
                // Features hold log1p values: bytes per packet is expm1(b) / expm1(p).
                let (byt, pkt) = (row[b].exp_m1(), row[p].exp_m1());
                data.extend_from_slice(row);
                data.push(if pkt > 0.0 { byt / pkt } else { 0.0 });
            }
            x = Matrix::new(x.rows, cols, data);
            names.push("bytes_per_packet".to_string());
        }
        let y: Vec<usize> = (0..2 * n).map(|i| usize::from(i >= n)).collect();
        let order = shuffled(2 * n, &mut rng);
        let cut = order.len() * 7 / 10;
        let (tr, te) = order.split_at(cut);
        DetectionData {
            n,
            base_cols,
            x,
            y,
            train: tr.to_vec(),
            test: te.to_vec(),
            names,
        }
    }

    /// The forest's held-out AUC on every feature but the derived ones (`None`), or on feature
    /// `only` alone.
    fn auc(&self, only: Option<usize>, seed: u64) -> Option<f64> {
        if self.n < 10 {
            return None;
        }
        let cols: Vec<usize> = match only {
            Some(j) => vec![j],
            None => (0..self.base_cols).collect(),
        };
        let pick = |rows: &[usize]| {
            let mut data = Vec::with_capacity(rows.len() * cols.len());
            for &i in rows {
                let r = self.x.row(i);
                data.extend(cols.iter().map(|&j| r[j]));
            }
            Matrix::new(rows.len(), cols.len(), data)
        };
        let mut rf = RandomForest::new(30, 10, seed);
        rf.fit(
            &pick(&self.train),
            &self.train.iter().map(|&i| self.y[i]).collect::<Vec<_>>(),
            2,
        );
        let p = rf.predict_proba(&pick(&self.test));
        let scores: Vec<f64> = (0..p.rows).map(|i| p.row(i)[1]).collect();
        let truth: Vec<bool> = self.test.iter().map(|&i| self.y[i] == 1).collect();
        stats::roc_auc(&scores, &truth)
    }
}

/// One classifier's accuracy on the real test rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassifierScore {
    /// Classifier name.
    pub classifier: String,
    /// Accuracy when trained on real training rows.
    pub real_trained: f64,
    /// Accuracy when trained on the candidate trace.
    pub candidate_trained: f64,
}

/// Traffic-type classification: train on the candidate, test on real rows held out of training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Classification {
    /// What is predicted: `label` (traffic type) or `proto`.
    pub target: String,
    /// Why the task did not run (e.g. the real trace has fewer than two labels); else null.
    pub skipped: Option<String>,
    /// The label classes (from the real trace).
    pub classes: Vec<String>,
    /// Real rows used for training / testing, candidate rows used for training.
    pub rows: BTreeMap<String, usize>,
    /// Per classifier.
    pub scores: Vec<ClassifierScore>,
    /// Spearman correlation of the classifiers' accuracy order, real-trained vs candidate-trained
    /// (`netshare-rs` convention; higher is better, null when undefined).
    pub rank_correlation: Metric,
    /// Mean over classifiers of |accuracy real-trained - accuracy candidate-trained|.
    pub mean_accuracy_gap: Metric,
}

/// What the classification task predicts.
fn target(t: &Table, use_label: bool) -> Vec<String> {
    if use_label {
        t.label.clone()
    } else {
        t.proto
            .iter()
            .map(|&p| netshare_core::records::proto_name(p))
            .collect()
    }
}

/// The feature matrix without column `drop` (the target's own column, if it is a feature).
fn without_column(m: &Matrix, drop: Option<usize>) -> Matrix {
    let Some(d) = drop else { return m.clone() };
    let mut data = Vec::with_capacity(m.rows * (m.cols - 1));
    for i in 0..m.rows {
        let r = m.row(i);
        data.extend_from_slice(&r[..d]);
        data.extend_from_slice(&r[d + 1..]);
    }
    Matrix::new(m.rows, m.cols - 1, data)
}

/// Rows a label class needs in the real trace for the label to be the classification target.
pub const MIN_LABEL_ROWS: usize = 10;

/// Runs the classification task. The target is the traffic-type label when the real trace has
/// at least two labels with [`MIN_LABEL_ROWS`] rows each; otherwise (packet traces, or UGR16
/// samples that are almost all `background`) it is the protocol, predicted from the other
/// features.
pub fn classification(real: &Table, cand: &Table, s: &TaskSettings) -> Classification {
    let label_counts = stats::counts(&real.label.iter().map(String::as_str).collect::<Vec<_>>());
    let use_label = label_counts
        .values()
        .filter(|&&c| c >= MIN_LABEL_ROWS as f64)
        .count()
        >= 2;
    let mut out = Classification {
        target: if use_label { "label" } else { "proto" }.to_string(),
        skipped: None,
        classes: Vec::new(),
        rows: BTreeMap::new(),
        scores: Vec::new(),
        rank_correlation: Metric::higher(
            None,
            OWN_CONVENTION,
            "Spearman of classifier accuracies, real-trained vs candidate-trained",
        ),
        mean_accuracy_gap: Metric::lower(
            None,
            OWN_CONVENTION,
            "mean |accuracy real-trained - accuracy candidate-trained| on real test rows",
        ),
    };
    let (yr_all, yc_all) = (target(real, use_label), target(cand, use_label));
    let mut classes: Vec<String> = yr_all.clone();
    classes.sort();
    classes.dedup();
    if classes.len() < 2 {
        out.skipped = Some(format!(
            "the real trace has {} class(es) of {}; classification needs two",
            classes.len(),
            out.target
        ));
        return out;
    }
    let class_of = |l: &String| classes.binary_search(l).ok();
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed ^ 0xc1a5);
    let drop = if use_label { None } else { Some(4) };
    let fr = without_column(&features(real).0, drop);
    let fc = without_column(&features(cand).0, drop);
    let order = shuffled(real.len(), &mut rng);
    let cut = order.len() * 7 / 10;
    let train: Vec<usize> = order[..cut].iter().copied().take(s.max_rows).collect();
    let test: Vec<usize> = order[cut..].to_vec();
    let cand_rows: Vec<usize> = shuffled(cand.len(), &mut rng)
        .into_iter()
        .filter(|&i| yc_all.get(i).and_then(class_of).is_some())
        .take(s.max_rows)
        .collect();
    out.rows.insert("real_train".into(), train.len());
    out.rows.insert("real_test".into(), test.len());
    out.rows.insert("candidate_train".into(), cand_rows.len());
    if test.is_empty() || cand_rows.is_empty() {
        out.skipped = Some(format!(
            "no real test rows, or no candidate rows carry a {} seen in the real trace",
            out.target
        ));
        out.classes = classes;
        return out;
    }
    let label_idx = |y: &[String], rows: &[usize]| -> Vec<usize> {
        rows.iter().map(|&i| class_of(&y[i]).unwrap_or(0)).collect()
    };
    let (xr, yr) = (fr.take(&train), label_idx(&yr_all, &train));
    let (xt, yt) = (fr.take(&test), label_idx(&yr_all, &test));
    let (xc, yc) = (fc.take(&cand_rows), label_idx(&yc_all, &cand_rows));
    let k = classes.len();
    for (mut a, mut b) in ml::downstream_classifiers(s.seed)
        .into_iter()
        .zip(ml::downstream_classifiers(s.seed))
    {
        a.fit(&xr, &yr, k);
        b.fit(&xc, &yc, k);
        out.scores.push(ClassifierScore {
            classifier: a.name().to_string(),
            real_trained: ml::accuracy(&a.predict(&xt), &yt),
            candidate_trained: ml::accuracy(&b.predict(&xt), &yt),
        });
    }
    let ra: Vec<f64> = out.scores.iter().map(|c| c.real_trained).collect();
    let ca: Vec<f64> = out.scores.iter().map(|c| c.candidate_trained).collect();
    out.rank_correlation.value = stats::spearman(&ra, &ca);
    out.mean_accuracy_gap.value =
        Some(stats::sum(ra.iter().zip(&ca).map(|(a, b)| (a - b).abs())) / ra.len() as f64);
    out.classes = classes;
    out
}

/// One sketch's heavy-hitter error on both traces.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SketchScore {
    /// Sketch name.
    pub sketch: String,
    /// Mean relative error over the reference trace's heavy hitters.
    pub reference_error: Option<f64>,
    /// Mean relative error over the candidate trace's heavy hitters.
    pub candidate_error: Option<f64>,
    /// |candidate - reference| / reference.
    pub relative_difference: Option<f64>,
}

/// Heavy-hitter telemetry on destination IPs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    /// Key, weight, sketch sizes.
    pub setup: String,
    /// Per sketch.
    pub scores: Vec<SketchScore>,
    /// Spearman of the sketches' error order, reference vs candidate (higher is better).
    pub rank_correlation: Metric,
    /// Mean relative difference of the sketch errors (lower is better).
    pub mean_relative_difference: Metric,
}

/// The sketches' 32-bit keys of destination addresses: an IPv4 address is its number (as
/// sketches over IPv4 traffic key it), an IPv6 address its 128 bits folded to 32 through
/// SplitMix64. Two addresses folding to one key are counted as one; among n IPv6 addresses that
/// happens with probability about n²/2³³ (under 1% for 9,000 distinct addresses).
fn sketch_keys(ips: &[netshare_core::records::IpAddr]) -> Vec<u32> {
    ips.iter()
        .map(|&a| match netshare_core::addr::v4_bits(a) {
            Some(v) => v,
            None => {
                let k = netshare_core::addr::key64(a);
                // Both halves of the folded key, on purpose.
                (k ^ (k >> 32)) as u32
            }
        })
        .collect()
}

/// Runs heavy-hitter estimation with the three sketches on both traces. The sketch width is
/// set from the reference trace (a quarter of its distinct destination IPs, at least 16) so
/// both traces meet the same sketch.
pub fn telemetry(real: &Table, cand: &Table, s: &TaskSettings) -> Telemetry {
    let distinct = stats::counts(&real.dstip).len();
    let (real_keys, cand_keys) = (sketch_keys(&real.dstip), sketch_keys(&cand.dstip));
    let width = (distinct / 4).clamp(16, 1 << 16);
    let depth = 5;
    type Maker = Box<dyn Fn(u64) -> Box<dyn Sketch>>;
    let makers: Vec<(&str, Maker)> = vec![
        (
            "count-min",
            Box::new(move |sd| Box::new(CountMin::new(depth, width, sd)) as Box<dyn Sketch>),
        ),
        (
            "count-sketch",
            Box::new(move |sd| Box::new(CountSketch::new(depth, width, sd)) as Box<dyn Sketch>),
        ),
        // Same memory as the others: four levels of a quarter of the width each.
        (
            "univmon",
            Box::new(move |sd| {
                Box::new(UnivMon::new(4, depth, (width / 4).max(1), sd)) as Box<dyn Sketch>
            }),
        ),
    ];
    let mut scores = Vec::new();
    for (name, make) in &makers {
        let seed = s.seed ^ sketch::mix64(name.len() as u64);
        let r =
            sketch::heavy_hitter_error(&real_keys, s.top_k, s.sketch_repeats, seed, make.as_ref());
        let c =
            sketch::heavy_hitter_error(&cand_keys, s.top_k, s.sketch_repeats, seed, make.as_ref());
        let rel = match (r, c) {
            (Some(r), Some(c)) if r > 0.0 => Some((c - r).abs() / r),
            (Some(r), Some(c)) if r == 0.0 && c == 0.0 => Some(0.0),
            _ => None,
        };
        scores.push(SketchScore {
            sketch: name.to_string(),
            reference_error: r,
            candidate_error: c,
            relative_difference: rel,
        });
    }
    let re: Vec<f64> = scores
        .iter()
        .map(|x| x.reference_error.unwrap_or(f64::NAN))
        .collect();
    let ce: Vec<f64> = scores
        .iter()
        .map(|x| x.candidate_error.unwrap_or(f64::NAN))
        .collect();
    let rank = if re.iter().chain(&ce).all(|v| v.is_finite()) {
        stats::spearman(&re, &ce)
    } else {
        None
    };
    let rels: Vec<f64> = scores
        .iter()
        .filter_map(|x| x.relative_difference)
        .collect();
    Telemetry {
        setup: format!(
            "key dstip, one count per record, top {} heavy hitters of each trace, depth {depth}, width {width} (UnivMon: 4 levels of width {}), {} hash seeds averaged",
            s.top_k,
            (width / 4).max(1),
            s.sketch_repeats
        ),
        scores,
        rank_correlation: Metric::higher(
            rank,
            OWN_CONVENTION,
            "Spearman of sketch errors, reference vs candidate",
        ),
        mean_relative_difference: Metric::lower(
            (!rels.is_empty()).then(|| stats::sum(rels.iter().copied()) / rels.len() as f64),
            OWN_CONVENTION,
            "mean over sketches of |error_candidate - error_reference| / error_reference",
        ),
    }
}
