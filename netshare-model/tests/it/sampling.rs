//! The sampling API's contract: shapes, activation ranges, lengths, zero padding after the
//! end, determinism in the seed, errors for bad arguments.

use netshare_model::testing::two_flow_types;
use netshare_model::{TrainOptions, TrainedModel};

fn model() -> (tempfile::TempDir, TrainedModel) {
    let enc = two_flow_types(64, 2, 4);
    let t = netshare_model::train(&crate::tiny(5, 2), &enc, &TrainOptions::default())
        .expect("train")
        .expect("not stopped");
    let dir = tempfile::tempdir().expect("tempdir");
    t.write(dir.path()).expect("write");
    let m = TrainedModel::load(dir.path()).expect("load");
    (dir, m)
}

#[test]
fn samples_have_the_documented_shapes_ranges_and_padding() {
    let (_dir, m) = model();
    assert_eq!(
        (m.n_chunks(), m.attr_dim(), m.feat_dim(), m.max_len()),
        (2, 4, 2, 6)
    );
    let n = 77; // not a multiple of the batch size
    let a = m.sample_attributes(1, n, 3);
    assert_eq!(a.len(), n * 4);
    for row in a.chunks_exact(4) {
        assert!(
            (row[0] + row[1] - 1.0).abs() < 1e-5,
            "softmax head sums to one: {row:?}"
        );
        assert!(
            (-1.0..=1.0).contains(&row[2]) && (0.0..=1.0).contains(&row[3]),
            "{row:?}"
        );
    }
    let (f, lengths) = m.sample_features(1, &a, 4);
    assert_eq!((f.len(), lengths.len()), (n * 6 * 2, n));
    for (i, &len) in lengths.iter().enumerate() {
        assert!((1..=6).contains(&len));
        let after = &f[(i * 6 + len) * 2..(i + 1) * 6 * 2];
        assert!(
            after.iter().all(|x| *x == 0.0),
            "records after the end are zero"
        );
    }
    assert_eq!(m.sample_attributes(1, n, 3), a, "same seed, same samples");
    assert_ne!(m.sample_attributes(1, n, 4), a);
    assert_eq!(m.sample_features(1, &a, 4), (f, lengths));
}

#[test]
fn continued_samples_match_the_masked_ones_up_to_each_end_and_go_on_after_it() {
    let (_dir, m) = model();
    let n = 77;
    let a = m.sample_attributes(0, n, 3);
    let (f, lengths) = m.sample_features(0, &a, 9);
    let c = m.try_sample_continued(0, &a, 9).expect("continued");
    assert_eq!(c.lengths, lengths, "same seed, same lengths");
    assert_eq!((c.features.len(), c.margins.len()), (f.len(), n));
    let (t, w) = (6, 2);
    let mut after_nonzero = 0;
    for (i, &len) in lengths.iter().enumerate() {
        let row = |v: &[f32], a: usize, b: usize| v[(i * t + a) * w..(i * t + b) * w].to_vec();
        assert_eq!(
            row(&c.features, 0, len),
            row(&f, 0, len),
            "flow {i} up to its end"
        );
        after_nonzero += row(&c.features, len, t)
            .iter()
            .filter(|x| **x != 0.0)
            .count();
        // The flag said 'end' at the last record of a flow shorter than T.
        if len < t {
            assert!(
                c.margins[i] < 0.0,
                "flow {i} ended: margin {}",
                c.margins[i]
            );
        }
    }
    assert!(
        after_nonzero > 0,
        "the generator's records after the ends are kept"
    );
    assert_eq!(m.try_sample_continued(0, &a, 9).expect("again"), c);
}

#[test]
fn bad_arguments_are_errors_in_the_try_variants() {
    let (_dir, m) = model();
    let e = m.try_sample_attributes(2, 3, 0).expect_err("chunk 2 of 2");
    assert!(e.to_string().contains("chunk 2 does not exist"), "{e}");
    let e = m
        .try_sample_features(0, &[0.0; 5], 0)
        .expect_err("5 is not a multiple of 4");
    assert!(
        e.to_string()
            .contains("not a multiple of the attribute width 4"),
        "{e}"
    );
}

#[test]
fn missing_or_mismatched_weights_are_reported_with_the_file() {
    let (dir, _m) = model();
    std::fs::remove_file(dir.path().join("weights-001.safetensors")).expect("rm");
    let e = TrainedModel::load(dir.path()).expect_err("one weights file short");
    assert!(
        e.to_string()
            .contains("describes 2 chunks but 1 weights files"),
        "{e}"
    );
}

#[test]
fn a_trained_model_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<TrainedModel>();
    let (_dir, m) = model();
    let results: Vec<Vec<f32>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|c| {
                let m = &m;
                s.spawn(move || m.sample_attributes(c, 10, 1))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(results[0], m.sample_attributes(0, 10, 1));
    assert_eq!(results[1], m.sample_attributes(1, 10, 1));
}
