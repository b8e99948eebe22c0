//! Small, real classifiers for the downstream and detectability tasks: multinomial logistic
//! regression, Gaussian naive Bayes, k-nearest neighbours, a CART decision tree and a random
//! forest. Written here rather than pulled in (smartcore, linfa) to keep the clean build of the
//! workspace light; each is tested against its textbook behaviour and, where the definition is
//! exact, against scikit-learn.

use rayon::prelude::*;

mod tree;

pub use tree::{DecisionTree, RandomForest};

/// A dense row-major matrix of features.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// `rows * cols` values, row after row.
    pub data: Vec<f64>,
}

impl Matrix {
    /// A matrix from row-major data.
    pub fn new(rows: usize, cols: usize, data: Vec<f64>) -> Matrix {
        assert_eq!(data.len(), rows * cols, "matrix data has the wrong length");
        Matrix { rows, cols, data }
    }

    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The rows given by `idx`.
    pub fn take(&self, idx: &[usize]) -> Matrix {
        let mut data = Vec::with_capacity(idx.len() * self.cols);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Matrix::new(idx.len(), self.cols, data)
    }
}

/// A classifier over `n_classes` classes labelled `0..n_classes`.
pub trait Classifier: Send + Sync {
    /// A short name for reports.
    fn name(&self) -> &'static str;
    /// Trains on rows `x` with labels `y`.
    fn fit(&mut self, x: &Matrix, y: &[usize], n_classes: usize);
    /// Class probabilities (or scores that rank like them), `rows x n_classes`.
    fn predict_proba(&self, x: &Matrix) -> Matrix;
    /// The most probable class of each row (the lowest class index on ties).
    fn predict(&self, x: &Matrix) -> Vec<usize> {
        let p = self.predict_proba(x);
        (0..p.rows).map(|i| argmax(p.row(i))).collect()
    }
}

/// Index of the largest value (first on ties).
pub fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

/// Fraction of equal labels.
pub fn accuracy(pred: &[usize], truth: &[usize]) -> f64 {
    if truth.is_empty() {
        return 0.0;
    }
    pred.iter().zip(truth).filter(|(a, b)| a == b).count() as f64 / truth.len() as f64
}

/// Per-column mean and standard deviation (population) fitted on training rows.
#[derive(Clone, Debug, Default)]
pub struct Standardizer {
    mean: Vec<f64>,
    scale: Vec<f64>,
    var: Vec<f64>,
}

impl Standardizer {
    /// Fits on `x`; constant columns get scale 1.
    pub fn fit(x: &Matrix) -> Standardizer {
        let n = x.rows.max(1) as f64;
        let mut mean = vec![0.0; x.cols];
        for i in 0..x.rows {
            for (m, v) in mean.iter_mut().zip(x.row(i)) {
                *m += v;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0; x.cols];
        for i in 0..x.rows {
            for ((s, v), m) in var.iter_mut().zip(x.row(i)).zip(&mean) {
                *s += (v - m) * (v - m);
            }
        }
        var.iter_mut().for_each(|s| *s /= n);
        let scale = var
            .iter()
            .map(|s| {
                let sd = s.sqrt();
                if sd > 0.0 { sd } else { 1.0 }
            })
            .collect();
        Standardizer { mean, scale, var }
    }

    /// Applies the fitted transform.
    pub fn transform(&self, x: &Matrix) -> Matrix {
        let mut out = x.clone();
        for i in 0..x.rows {
            let row = &mut out.data[i * x.cols..(i + 1) * x.cols];
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.scale) {
                *v = (*v - m) / s;
            }
        }
        out
    }
}

/// Multinomial logistic regression on standardised features, full-batch gradient descent with
/// a small L2 penalty (deterministic: no sampling).
#[derive(Clone, Debug)]
pub struct LogisticRegression {
    /// Gradient steps.
    pub iterations: usize,
    /// Step size.
    pub learning_rate: f64,
    /// L2 penalty on the weights (not the biases).
    pub l2: f64,
    std: Standardizer,
    /// `(cols + 1) x n_classes`, bias row last.
    w: Vec<f64>,
    n_classes: usize,
}

impl Default for LogisticRegression {
    fn default() -> Self {
        LogisticRegression {
            iterations: 200,
            learning_rate: 0.5,
            l2: 1e-4,
            std: Standardizer::default(),
            w: Vec::new(),
            n_classes: 0,
        }
    }
}

impl LogisticRegression {
    fn logits(&self, row: &[f64], out: &mut [f64]) {
        let k = self.n_classes;
        let d = row.len();
        out.copy_from_slice(&self.w[d * k..(d + 1) * k]);
        for (j, v) in row.iter().enumerate() {
            for (o, w) in out.iter_mut().zip(&self.w[j * k..(j + 1) * k]) {
                *o += v * w;
            }
        }
    }
}

fn softmax(v: &mut [f64]) {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut s = 0.0;
    for x in v.iter_mut() {
        *x = (*x - m).exp();
        s += *x;
    }
    for x in v.iter_mut() {
        *x /= s;
    }
}

impl Classifier for LogisticRegression {
    fn name(&self) -> &'static str {
        "logistic-regression"
    }

    fn fit(&mut self, x: &Matrix, y: &[usize], n_classes: usize) {
        self.std = Standardizer::fit(x);
        let xs = self.std.transform(x);
        let (d, k) = (x.cols, n_classes);
        self.n_classes = k;
        self.w = vec![0.0; (d + 1) * k];
        let n = x.rows.max(1) as f64;
        let mut grad = vec![0.0; (d + 1) * k];
        let mut p = vec![0.0; k];
        for _ in 0..self.iterations {
            grad.iter_mut().for_each(|g| *g = 0.0);
            for (i, &yi) in y.iter().enumerate() {
                let row = xs.row(i);
                self.logits(row, &mut p);
                softmax(&mut p);
                p[yi] -= 1.0;
                for (j, v) in row.iter().enumerate() {
                    for c in 0..k {
                        grad[j * k + c] += v * p[c];
                    }
                }
                for c in 0..k {
                    grad[d * k + c] += p[c];
                }
            }
            for (idx, g) in grad.iter().enumerate() {
                let reg = if idx < d * k {
                    self.l2 * self.w[idx]
                } else {
                    0.0
                };
                self.w[idx] -= self.learning_rate * (g / n + reg);
            }
        }
    }

    fn predict_proba(&self, x: &Matrix) -> Matrix {
        let xs = self.std.transform(x);
        let k = self.n_classes;
        let mut data = vec![0.0; x.rows * k];
        for i in 0..x.rows {
            let out = &mut data[i * k..(i + 1) * k];
            self.logits(xs.row(i), out);
            softmax(out);
        }
        Matrix::new(x.rows, k, data)
    }
}

/// Gaussian naive Bayes with scikit-learn's variance smoothing (1e-9 of the largest feature
/// variance added to every variance).
#[derive(Clone, Debug, Default)]
pub struct GaussianNb {
    log_prior: Vec<f64>,
    mean: Vec<Vec<f64>>,
    var: Vec<Vec<f64>>,
}

impl Classifier for GaussianNb {
    fn name(&self) -> &'static str {
        "gaussian-naive-bayes"
    }

    fn fit(&mut self, x: &Matrix, y: &[usize], n_classes: usize) {
        let d = x.cols;
        let max_var = Standardizer::fit(x)
            .var
            .iter()
            .copied()
            .fold(0.0f64, f64::max);
        let eps = 1e-9 * max_var;
        let mut count = vec![0usize; n_classes];
        let mut mean = vec![vec![0.0; d]; n_classes];
        let mut var = vec![vec![0.0; d]; n_classes];
        for (i, &c) in y.iter().enumerate() {
            count[c] += 1;
            for (m, v) in mean[c].iter_mut().zip(x.row(i)) {
                *m += v;
            }
        }
        for c in 0..n_classes {
            let n = count[c].max(1) as f64;
            mean[c].iter_mut().for_each(|m| *m /= n);
        }
        for (i, &c) in y.iter().enumerate() {
            for ((s, v), m) in var[c].iter_mut().zip(x.row(i)).zip(&mean[c]) {
                *s += (v - m) * (v - m);
            }
        }
        for c in 0..n_classes {
            let n = count[c].max(1) as f64;
            var[c].iter_mut().for_each(|s| *s = *s / n + eps);
        }
        let total = y.len().max(1) as f64;
        self.log_prior = count
            .iter()
            .map(|&n| {
                if n == 0 {
                    f64::NEG_INFINITY
                } else {
                    (n as f64 / total).ln()
                }
            })
            .collect();
        self.mean = mean;
        self.var = var;
    }

    fn predict_proba(&self, x: &Matrix) -> Matrix {
        let k = self.log_prior.len();
        let mut data = vec![0.0; x.rows * k];
        for i in 0..x.rows {
            let row = x.row(i);
            let out = &mut data[i * k..(i + 1) * k];
            for (c, o) in out.iter_mut().enumerate() {
                if self.log_prior[c] == f64::NEG_INFINITY {
                    *o = f64::NEG_INFINITY;
                    continue;
                }
                let mut ll = self.log_prior[c];
                for ((v, m), s) in row.iter().zip(&self.mean[c]).zip(&self.var[c]) {
                    if *s > 0.0 {
                        ll += -0.5 * (2.0 * std::f64::consts::PI * s).ln()
                            - 0.5 * (v - m) * (v - m) / s;
                    } else if v != m {
                        ll = f64::NEG_INFINITY;
                    }
                }
                *o = ll;
            }
            if out.iter().all(|v| *v == f64::NEG_INFINITY) {
                out.iter_mut().for_each(|v| *v = 0.0);
            } else {
                softmax(out);
            }
        }
        Matrix::new(x.rows, k, data)
    }
}

/// k-nearest neighbours, Euclidean distance on standardised features, uniform votes; neighbours
/// ordered by (distance, training row) and vote ties go to the lowest class.
#[derive(Clone, Debug)]
pub struct Knn {
    /// Neighbours consulted.
    pub k: usize,
    /// Standardise features with the training statistics first.
    pub standardize: bool,
    std: Standardizer,
    x: Option<Matrix>,
    y: Vec<usize>,
    n_classes: usize,
}

impl Knn {
    /// `k` neighbours.
    pub fn new(k: usize, standardize: bool) -> Knn {
        Knn {
            k,
            standardize,
            std: Standardizer::default(),
            x: None,
            y: Vec::new(),
            n_classes: 0,
        }
    }
}

impl Classifier for Knn {
    fn name(&self) -> &'static str {
        "k-nearest-neighbours"
    }

    fn fit(&mut self, x: &Matrix, y: &[usize], n_classes: usize) {
        if self.standardize {
            self.std = Standardizer::fit(x);
            self.x = Some(self.std.transform(x));
        } else {
            self.x = Some(x.clone());
        }
        self.y = y.to_vec();
        self.n_classes = n_classes;
    }

    fn predict_proba(&self, x: &Matrix) -> Matrix {
        let k = self.n_classes;
        let Some(train) = &self.x else {
            return Matrix::new(x.rows, k, vec![0.0; x.rows * k]);
        };
        let xs = if self.standardize {
            self.std.transform(x)
        } else {
            x.clone()
        };
        let kk = self.k.min(train.rows).max(1);
        let rows: Vec<Vec<f64>> = (0..xs.rows)
            .into_par_iter()
            .map(|i| {
                let q = xs.row(i);
                let mut d: Vec<(f64, usize)> = (0..train.rows)
                    .map(|t| {
                        let dist: f64 = train
                            .row(t)
                            .iter()
                            .zip(q)
                            .map(|(a, b)| (a - b) * (a - b))
                            .sum();
                        (dist, t)
                    })
                    .collect();
                if kk < d.len() {
                    d.select_nth_unstable_by(kk - 1, |a, b| {
                        a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
                    });
                }
                let mut votes = vec![0.0; k];
                for &(_, t) in d.iter().take(kk) {
                    votes[self.y[t]] += 1.0 / kk as f64;
                }
                votes
            })
            .collect();
        Matrix::new(x.rows, k, rows.concat())
    }
}

/// The classifiers of the downstream task, in report order.
pub fn downstream_classifiers(seed: u64) -> Vec<Box<dyn Classifier>> {
    vec![
        Box::new(LogisticRegression::default()),
        Box::new(GaussianNb::default()),
        Box::new(Knn::new(5, true)),
        Box::new(DecisionTree::new(10)),
        Box::new(RandomForest::new(30, 12, seed)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Two Gaussian-ish blobs laid out on a grid, separable along x0 + x1.
    fn blobs(n: usize, seed: u64) -> (Matrix, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut data = Vec::new();
        let mut y = Vec::new();
        for i in 0..n {
            let c = i % 2;
            let off = if c == 0 { -2.0 } else { 2.0 };
            data.push(off + rng.random_range(-1.5..1.5));
            data.push(off + rng.random_range(-1.5..1.5));
            data.push(rng.random_range(-1.0..1.0));
            y.push(c);
        }
        (Matrix::new(n, 3, data), y)
    }

    #[test]
    fn every_classifier_learns_separable_blobs() {
        let (x, y) = blobs(400, 1);
        let (xt, yt) = blobs(200, 2);
        for mut c in downstream_classifiers(7) {
            c.fit(&x, &y, 2);
            let acc = accuracy(&c.predict(&xt), &yt);
            assert!(acc > 0.95, "{} accuracy {acc}", c.name());
            let p = c.predict_proba(&xt);
            for i in 0..p.rows {
                let s: f64 = p.row(i).iter().sum();
                assert!((s - 1.0).abs() < 1e-9, "{} row {i} sums to {s}", c.name());
            }
        }
    }

    #[test]
    fn a_tree_fits_xor_that_no_linear_model_can() {
        let mut data = Vec::new();
        let mut y = Vec::new();
        for i in 0..200 {
            let a = (i % 2) as f64;
            let b = ((i / 2) % 2) as f64;
            data.extend([a, b]);
            y.push((a as usize) ^ (b as usize));
        }
        let x = Matrix::new(200, 2, data);
        let mut tree = DecisionTree::new(4);
        tree.fit(&x, &y, 2);
        assert_eq!(accuracy(&tree.predict(&x), &y), 1.0);
        let mut lr = LogisticRegression::default();
        lr.fit(&x, &y, 2);
        assert!(accuracy(&lr.predict(&x), &y) <= 0.75);
    }

    #[test]
    fn forests_are_reproducible_from_their_seed() {
        let (x, y) = blobs(200, 3);
        let mut a = RandomForest::new(8, 6, 42);
        let mut b = RandomForest::new(8, 6, 42);
        a.fit(&x, &y, 2);
        b.fit(&x, &y, 2);
        assert_eq!(a.predict_proba(&x), b.predict_proba(&x));
    }

    #[test]
    fn knn_with_k1_recalls_its_training_rows() {
        let (x, y) = blobs(100, 4);
        let mut k = Knn::new(1, false);
        k.fit(&x, &y, 2);
        assert_eq!(k.predict(&x), y);
    }
}
