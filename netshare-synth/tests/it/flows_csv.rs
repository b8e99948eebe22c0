//! Flow CSV in every dialect and Parquet, read back by our own ingest.

use netshare_core::records::{
    FlowColumns, META_DIALECT, Records, TraceKind, read_flows, read_metadata, write_records,
};
use netshare_synth::convert::{ConvertOptions, convert};
use netshare_synth::write::{Dialect, OutputFormat, WriteOptions, write_all};

use crate::{at, tmp, ugr16_flows};

fn write_csv(t: &FlowColumns, dialect: Dialect) -> Vec<u8> {
    let dir = tmp();
    let path = at(dir.path(), "out.csv");
    let opts = WriteOptions {
        dialect,
        ..WriteOptions::default()
    };
    write_all(
        &path,
        OutputFormat::Csv,
        TraceKind::Flows,
        &opts,
        [&Records::Flows(t.clone())],
    )
    .expect("write csv");
    std::fs::read(&path).expect("read back")
}

fn parse(bytes: &[u8]) -> FlowColumns {
    let (t, report) = netshare_ingest::parse_flows_csv(bytes, &Default::default()).expect("ingest");
    assert_eq!(
        report.records_read,
        report.records_kept,
        "{}",
        report.summary()
    );
    t
}

#[test]
fn netshare_layout_round_trips_exactly() {
    let t = ugr16_flows();
    assert_eq!(parse(&write_csv(&t, Dialect::Netshare)), t);
}

#[test]
fn every_dialect_round_trips_within_its_time_resolution() {
    let t = ugr16_flows();
    // (dialect, start-time tolerance µs, duration tolerance s)
    for (dialect, dt_us, dtd) in [
        (Dialect::Netshare, 0, 0.0),
        (Dialect::Ugr16, 1_000_000, 0.0005),
        (Dialect::Cidds, 1_000, 0.0005),
        (Dialect::Ton, 1, 1e-9),
    ] {
        let got = parse(&write_csv(&t, dialect));
        assert_eq!(got.len(), t.len(), "{dialect:?}");
        assert_eq!(got.srcip, t.srcip, "{dialect:?}");
        assert_eq!(got.dstip, t.dstip, "{dialect:?}");
        assert_eq!(got.srcport, t.srcport, "{dialect:?}");
        assert_eq!(got.dstport, t.dstport, "{dialect:?}");
        assert_eq!(got.proto, t.proto, "{dialect:?}");
        assert_eq!(got.pkt, t.pkt, "{dialect:?}");
        assert_eq!(got.byt, t.byt, "{dialect:?}");
        assert_eq!(got.label, t.label, "{dialect:?}");
        for i in 0..t.len() {
            assert!(
                (got.ts_us[i] - t.ts_us[i]).abs() <= dt_us,
                "{dialect:?} row {i}: ts {} vs {}",
                got.ts_us[i],
                t.ts_us[i]
            );
            assert!(
                (got.td[i] - t.td[i]).abs() <= dtd,
                "{dialect:?} row {i}: td {} vs {}",
                got.td[i],
                t.td[i]
            );
        }
    }
}

#[test]
fn parquet_output_has_the_ingest_schema_and_the_dialect() {
    let t = ugr16_flows();
    let dir = tmp();
    let path = at(dir.path(), "synthetic.parquet");
    let opts = WriteOptions {
        dialect_meta: Some("ugr16".into()),
        ..WriteOptions::default()
    };
    // Two batches, as the stage streams them.
    let half = t.len() / 2;
    let idx: Vec<usize> = (0..t.len()).collect();
    let a = Records::Flows(t.take(&idx[..half]));
    let b = Records::Flows(t.take(&idx[half..]));
    write_all(
        &path,
        OutputFormat::Parquet,
        TraceKind::Flows,
        &opts,
        [&a, &b],
    )
    .expect("write");
    assert_eq!(read_flows(&path).expect("read"), t);
    let (kind, meta) = read_metadata(&path).expect("meta");
    assert_eq!(kind, TraceKind::Flows);
    assert_eq!(meta.get(META_DIALECT).map(String::as_str), Some("ugr16"));
}

#[test]
fn convert_writes_csv_in_the_dialect_the_input_came_in() {
    let t = ugr16_flows();
    let dir = tmp();
    let input = at(dir.path(), "records.parquet");
    write_records(
        &input,
        &Records::Flows(t.clone()),
        &[(META_DIALECT, "cidds")],
    )
    .expect("write");
    let out = at(dir.path(), "out.csv");
    let s = convert(&input, &out, &ConvertOptions::default()).expect("convert");
    assert_eq!(s.records, 1000);
    let text = std::fs::read_to_string(&out).expect("read");
    assert!(
        text.starts_with("Date first seen,Duration,Proto,"),
        "{}",
        &text[..80]
    );
    // An explicit dialect wins.
    let s = convert(
        &input,
        &out,
        &ConvertOptions {
            dialect: Some(Dialect::Netshare),
            ..ConvertOptions::default()
        },
    )
    .expect("convert");
    assert_eq!(s.format, OutputFormat::Csv);
    assert_eq!(parse(&std::fs::read(&out).expect("read")), t);
}
