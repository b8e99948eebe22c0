//! Private mode: nothing the encoder stores may depend on the private records.

use netshare_core::records::{FlowColumns, Records};
use netshare_encode::config::DiscreteEncoding;
use netshare_encode::{EncodeConfig, Error, encode};

use crate::common::ugr16_1k;

fn private_cfg(t0: i64, t1: i64) -> EncodeConfig {
    EncodeConfig {
        private: true,
        n_chunks: Some(2),
        max_flow_len: Some(1),
        time_range_us: Some([t0, t1]),
        ..EncodeConfig::default()
    }
}

/// The first and second halves of the real file: one public, one private.
fn halves() -> (FlowColumns, FlowColumns) {
    let all = ugr16_1k();
    let n = all.len();
    (
        all.take(&(0..n / 2).collect::<Vec<_>>()),
        all.take(&(n / 2..n).collect::<Vec<_>>()),
    )
}

#[test]
fn private_mode_needs_every_data_dependent_setting_explicitly() {
    let (public, private) = halves();
    let err = encode(
        &Records::Flows(private),
        Some(&Records::Flows(public)),
        &EncodeConfig {
            private: true,
            ..EncodeConfig::default()
        },
    )
    .expect_err("refused")
    .to_string();
    for setting in ["n_chunks", "max_flow_len", "time_range_us"] {
        assert!(err.contains(setting), "{err}");
    }
}

#[test]
fn private_mode_without_public_records_refuses_embeddings_but_takes_bits() {
    let (_, private) = halves();
    let (t0, t1) = (
        private.ts_us[0] - 1,
        private.ts_us[private.len() - 1] + 1_000_000,
    );
    let cfg = private_cfg(t0, t1);
    let input = Records::Flows(private);
    assert!(matches!(encode(&input, None, &cfg), Err(Error::Config(m)) if m.contains("public")));
    // Bits need no fitting, but td/pkt/byt bounds and labels still need a source.
    let mut cfg = EncodeConfig {
        ips: DiscreteEncoding::Bits,
        ports: DiscreteEncoding::Bits,
        proto: DiscreteEncoding::Bits,
        ..cfg
    };
    assert!(
        matches!(encode(&input, None, &cfg), Err(Error::Config(m)) if m.contains("bounds of `td`"))
    );
    for (f, hi) in [("td", 4000.0), ("pkt", 1e6), ("byt", 1e9)] {
        cfg.fields.insert(
            f.into(),
            netshare_encode::config::FieldEncoding::Continuous {
                log1p: true,
                range: Default::default(),
                bounds: Some([0.0, hi]),
                quantiles: 0,
            },
        );
    }
    cfg.fields.insert(
        "label".into(),
        netshare_encode::config::FieldEncoding::Categorical {
            categories: Some(vec!["background".into(), "blacklist".into()]),
        },
    );
    let e = encode(&input, None, &cfg).expect("fully configured private mode");
    assert!(e.report.private);
    assert!(e.report.embedding.is_none());
    // The layout says so, for the model's DP-SGD to check; a non-private layout does not.
    assert!(e.encoder.private && e.encoder.layout().private);
    let json = serde_json::to_string(&e.encoder.layout()).expect("json");
    assert!(json.contains("\"private\":true"), "{json}");
}

#[test]
fn the_fitted_encoder_does_not_depend_on_the_private_records() {
    let (public, private) = halves();
    let t0 = private.ts_us.iter().min().copied().unwrap_or(0) - 10;
    let t1 = private.ts_us.iter().max().copied().unwrap_or(0) + 10;
    let cfg = private_cfg(t0, t1);
    let public = Records::Flows(public);
    let a = encode(&Records::Flows(private.clone()), Some(&public), &cfg).expect("encode a");
    // Another private trace: larger byte counts, another label, other ports.
    let mut other = private.clone();
    other.byt.iter_mut().for_each(|b| *b = *b * 10 + 7);
    other
        .label
        .iter_mut()
        .for_each(|l| *l = "secret-label".into());
    other
        .srcport
        .iter_mut()
        .for_each(|p| *p = p.wrapping_add(1));
    let b = encode(&Records::Flows(other.clone()), Some(&public), &cfg).expect("encode b");
    assert_eq!(a.report.n_chunks, 2);
    assert_eq!(a.report.n_chunks, b.report.n_chunks);
    assert_eq!(a.encoder, b.encoder, "encoder.json must be the same");
    assert_eq!(a.encoder.layout(), b.encoder.layout());
    // Chunk ranges come from time_range_us, not from the records.
    let mid = t0 + (t1 - t0) / 2;
    let ranges: Vec<(i64, i64)> = a
        .chunks
        .chunks
        .iter()
        .map(|c| (c.t_min_us, c.t_max_us))
        .collect();
    assert_eq!(ranges, vec![(t0, mid), (mid, t1)]);
    // No marginal of the private codes, times, sizes or classes is recorded for synth to
    // calibrate with.
    for c in &a.chunks.chunks {
        assert!(c.code_quantiles.is_empty() && c.code_probabilities.is_empty());
        assert!(c.time_quantiles_us.is_empty() && c.flow_sizes.is_none());
        assert!(c.class_counts.is_empty() && c.class_pairs.is_empty() && c.flow_lengths.is_none());
    }
    let asked = EncodeConfig {
        code_quantiles: Some(100),
        ..cfg.clone()
    };
    assert!(
        matches!(encode(&Records::Flows(private.clone()), Some(&public), &asked),
            Err(Error::Config(m)) if m.contains("code_quantiles")),
        "private mode refuses code quantiles"
    );
    // The unknown label is counted, not silently kept.
    assert_eq!(
        b.report.counts.unseen.get("label").copied(),
        Some(b.report.encoded_records as u64)
    );
    // Long flows are dropped (max_flow_len 1), not truncated.
    assert_eq!(a.report.truncated_flows, 0);
    assert_eq!(
        a.report.encoded_records + a.report.dropped_records,
        private.len()
    );
}

#[test]
fn records_outside_the_fixed_time_range_are_dropped_and_counted() {
    let (public, private) = halves();
    let mut ts = private.ts_us.clone();
    ts.sort_unstable();
    let (t0, t1) = (ts[100], ts[ts.len() - 101]);
    let e = encode(
        &Records::Flows(private.clone()),
        Some(&Records::Flows(public)),
        &private_cfg(t0, t1),
    )
    .expect("encode");
    let outside = ts.iter().filter(|&&t| t < t0 || t > t1).count();
    assert!(outside >= 200 - 2 * 5, "{outside}");
    assert_eq!(e.report.outside_time_range, outside);
    assert_eq!(
        e.report.encoded_records + e.report.dropped_records + outside,
        private.len()
    );
}
