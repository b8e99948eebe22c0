//! CART decision trees and random forests (Gini impurity, midpoint thresholds, bootstrap
//! samples, seeded feature subsets).

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::{Classifier, Matrix};

/// A node of a decision tree.
#[derive(Clone, Debug)]
enum Node {
    Leaf(Vec<f64>),
    Split {
        feature: usize,
        threshold: f64,
        left: usize,
        right: usize,
    },
}

/// A CART classification tree (Gini impurity, midpoint thresholds).
#[derive(Clone, Debug)]
pub struct DecisionTree {
    /// Maximum depth.
    pub max_depth: usize,
    /// Fewest rows a node needs to be split.
    pub min_samples_split: usize,
    /// Features tried per split (`None`: all; a forest uses about the square root).
    pub max_features: Option<usize>,
    /// Seed for the feature subsets.
    pub seed: u64,
    nodes: Vec<Node>,
    n_classes: usize,
}

impl DecisionTree {
    /// A tree of the given depth trying all features.
    pub fn new(max_depth: usize) -> DecisionTree {
        DecisionTree {
            max_depth,
            min_samples_split: 2,
            max_features: None,
            seed: 0,
            nodes: Vec::new(),
            n_classes: 0,
        }
    }

    fn leaf(y: &[usize], idx: &[usize], k: usize) -> Vec<f64> {
        let mut p = vec![0.0; k];
        for &i in idx {
            p[y[i]] += 1.0;
        }
        let n = idx.len().max(1) as f64;
        p.iter_mut().for_each(|v| *v /= n);
        p
    }

    fn build(
        &mut self,
        x: &Matrix,
        y: &[usize],
        idx: Vec<usize>,
        depth: usize,
        rng: &mut ChaCha8Rng,
    ) -> usize {
        let k = self.n_classes;
        let mut counts = vec![0.0; k];
        for &i in &idx {
            counts[y[i]] += 1.0;
        }
        let pure = counts.iter().filter(|&&c| c > 0.0).count() <= 1;
        if pure || depth >= self.max_depth || idx.len() < self.min_samples_split {
            self.nodes.push(Node::Leaf(Self::leaf(y, &idx, k)));
            return self.nodes.len() - 1;
        }
        let mut features: Vec<usize> = (0..x.cols).collect();
        if let Some(m) = self.max_features {
            features.shuffle(rng);
            features.truncate(m.clamp(1, x.cols));
        }
        let n = idx.len() as f64;
        let gini = |c: &[f64], n: f64| {
            if n > 0.0 {
                1.0 - c.iter().map(|v| (v / n) * (v / n)).sum::<f64>()
            } else {
                0.0
            }
        };
        let parent = gini(&counts, n);
        let mut best: Option<(f64, usize, f64)> = None;
        let mut vals: Vec<(f64, usize)> = Vec::with_capacity(idx.len());
        let mut right = vec![0.0; k];
        let mut left = vec![0.0; k];
        for &f in &features {
            vals.clear();
            vals.extend(idx.iter().map(|&i| (x.data[i * x.cols + f], i)));
            vals.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            // Running sums of squared class counts give each candidate's Gini in O(1).
            left.iter_mut().for_each(|v| *v = 0.0);
            right.copy_from_slice(&counts);
            let mut sq_left = 0.0;
            let mut sq_right: f64 = counts.iter().map(|c| c * c).sum();
            for s in 0..vals.len() - 1 {
                let c = y[vals[s].1];
                sq_left += 2.0 * left[c] + 1.0;
                left[c] += 1.0;
                sq_right -= 2.0 * right[c] - 1.0;
                right[c] -= 1.0;
                let (v, w) = (vals[s].0, vals[s + 1].0);
                if v == w {
                    continue;
                }
                let nl = (s + 1) as f64;
                let nr = n - nl;
                let imp = ((nl - sq_left / nl) + (nr - sq_right / nr)) / n;
                if best.is_none_or(|(b, _, _)| imp < b - 1e-12) {
                    best = Some((imp, f, v + (w - v) / 2.0));
                }
            }
        }
        match best {
            // Like scikit-learn, an impure node is split even without a Gini gain, so that
            // interactions such as XOR are found one level down.
            Some((imp, feature, threshold)) if imp <= parent + 1e-12 => {
                let (l, r): (Vec<usize>, Vec<usize>) =
                    idx.iter().partition(|&&i| x.row(i)[feature] <= threshold);
                let slot = self.nodes.len();
                self.nodes.push(Node::Leaf(Vec::new()));
                let left = self.build(x, y, l, depth + 1, rng);
                let right = self.build(x, y, r, depth + 1, rng);
                self.nodes[slot] = Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                };
                slot
            }
            _ => {
                self.nodes.push(Node::Leaf(Self::leaf(y, &idx, k)));
                self.nodes.len() - 1
            }
        }
    }

    fn fit_rows(&mut self, x: &Matrix, y: &[usize], n_classes: usize, idx: Vec<usize>) {
        self.n_classes = n_classes;
        self.nodes.clear();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        if idx.is_empty() {
            self.nodes
                .push(Node::Leaf(vec![1.0 / n_classes.max(1) as f64; n_classes]));
            return;
        }
        self.build(x, y, idx, 0, &mut rng);
    }

    fn proba_row(&self, row: &[f64]) -> &[f64] {
        let mut at = 0;
        loop {
            match &self.nodes[at] {
                Node::Leaf(p) => return p,
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    at = if row[*feature] <= *threshold {
                        *left
                    } else {
                        *right
                    }
                }
            }
        }
    }
}

impl Classifier for DecisionTree {
    fn name(&self) -> &'static str {
        "decision-tree"
    }

    fn fit(&mut self, x: &Matrix, y: &[usize], n_classes: usize) {
        self.fit_rows(x, y, n_classes, (0..x.rows).collect());
    }

    fn predict_proba(&self, x: &Matrix) -> Matrix {
        let k = self.n_classes;
        let mut data = Vec::with_capacity(x.rows * k);
        for i in 0..x.rows {
            data.extend_from_slice(self.proba_row(x.row(i)));
        }
        Matrix::new(x.rows, k, data)
    }
}

/// A random forest: bootstrap samples, about sqrt(features) tried per split, averaged leaf
/// probabilities. Trees are grown in parallel, each from its own seed, so results do not depend
/// on the thread count.
#[derive(Clone, Debug)]
pub struct RandomForest {
    /// Number of trees.
    pub n_trees: usize,
    /// Depth of each tree.
    pub max_depth: usize,
    /// Seed of the bootstrap samples and feature subsets.
    pub seed: u64,
    trees: Vec<DecisionTree>,
    n_classes: usize,
}

impl RandomForest {
    /// A forest of `n_trees` trees of depth `max_depth`.
    pub fn new(n_trees: usize, max_depth: usize, seed: u64) -> RandomForest {
        RandomForest {
            n_trees,
            max_depth,
            seed,
            trees: Vec::new(),
            n_classes: 0,
        }
    }
}

impl Classifier for RandomForest {
    fn name(&self) -> &'static str {
        "random-forest"
    }

    fn fit(&mut self, x: &Matrix, y: &[usize], n_classes: usize) {
        self.n_classes = n_classes;
        let m = ((x.cols as f64).sqrt().round() as usize).max(1);
        self.trees = (0..self.n_trees)
            .into_par_iter()
            .map(|t| {
                let seed = self
                    .seed
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    .wrapping_add(t as u64);
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                let idx: Vec<usize> = (0..x.rows)
                    .map(|_| rng.random_range(0..x.rows.max(1)))
                    .collect();
                let mut tree = DecisionTree::new(self.max_depth);
                tree.max_features = Some(m);
                tree.seed = seed ^ 0x5851_f42d_4c95_7f2d;
                tree.fit_rows(x, y, n_classes, if x.rows == 0 { Vec::new() } else { idx });
                tree
            })
            .collect();
    }

    fn predict_proba(&self, x: &Matrix) -> Matrix {
        let k = self.n_classes;
        let mut data = vec![0.0; x.rows * k];
        let nt = self.trees.len().max(1) as f64;
        for tree in &self.trees {
            for i in 0..x.rows {
                for (o, p) in data[i * k..(i + 1) * k]
                    .iter_mut()
                    .zip(tree.proba_row(x.row(i)))
                {
                    *o += p / nt;
                }
            }
        }
        Matrix::new(x.rows, k, data)
    }
}
