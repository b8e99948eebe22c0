//! A quick quality score for the training log, cheap enough for every checkpoint: the mean, over
//! the critic's input columns (each attribute dimension, and each feature and flag at each
//! step), of the 1-D Wasserstein-1 distance between the chunk's real flows and
//! [`SCORE_FLOWS`] generated ones, in the encoded space the model trains in.
//!
//! 0 means every column's marginal matches. It ignores joints and is not one of the eval's
//! metrics; it tracks how training progresses (the eval report plots it against training time),
//! while the eval judges the decoded trace.

use netshare_stats::wasserstein_sorted;
use rayon::prelude::*;

/// Generated flows per score (rounded up to whole batches).
pub(crate) const SCORE_FLOWS: usize = 1000;

/// Mean over the `cols` columns of two row-major matrices of the Wasserstein-1 distance between
/// the real and the generated column. `None` when either has no rows or there are no columns.
pub(crate) fn column_w1(real: &[f32], fake: &[f32], cols: usize) -> Option<f64> {
    if cols == 0 || real.len() < cols || fake.len() < cols {
        return None;
    }
    let column = |m: &[f32], c: usize| -> Vec<f64> {
        let mut v: Vec<f64> = m
            .iter()
            .skip(c)
            .step_by(cols)
            .map(|&x| f64::from(x))
            .collect();
        v.sort_unstable_by(f64::total_cmp);
        v
    };
    // Collected in column order, then summed in that order: the same value for any thread count.
    let per: Vec<f64> = (0..cols)
        .into_par_iter()
        .map(|c| wasserstein_sorted(&column(real, c), &column(fake, c)).unwrap_or(0.0))
        .collect();
    Some(per.iter().sum::<f64>() / cols as f64)
}

/// The score of a chunk: attributes `[n, A]` and critic records `[n, T · (F + 2)]` of the real
/// and the generated flows, every column weighted alike.
pub(crate) fn score(
    real: (&[f32], &[f32]),
    fake: (&[f32], &[f32]),
    attr_cols: usize,
    rec_cols: usize,
) -> Option<f64> {
    let a = column_w1(real.0, fake.0, attr_cols)?;
    let r = column_w1(real.1, fake.1, rec_cols)?;
    Some((a * attr_cols as f64 + r * rec_cols as f64) / (attr_cols + rec_cols) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_distances_match_a_hand_worked_case() {
        // Column 0: real {0, 1}, generated {1}: |F_real - F_gen| = 1/2 on [0, 1), so 0.5.
        // Column 1: real {1, 1}, generated {1}: 0. Mean 0.25.
        let real = [0.0, 1.0, 1.0, 1.0];
        let fake = [1.0, 1.0];
        assert_eq!(column_w1(&real, &fake, 2), Some(0.25));
        // A shift of every value by 0.5 moves each column by 0.5.
        let shifted: Vec<f32> = real.iter().map(|x| x + 0.5).collect();
        assert_eq!(column_w1(&real, &shifted, 2), Some(0.5));
        assert_eq!(column_w1(&real, &[], 2), None);
        // Weighted by column count: attributes 0.25 over 2 columns, records 0.5 over 2.
        let s = score((&real, &real), (&fake, &shifted), 2, 2).expect("defined");
        assert!((s - 0.375).abs() < 1e-15, "{s}");
    }
}
