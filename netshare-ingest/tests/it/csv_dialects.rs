//! Every CSV dialect: the real NetShare-layout and UGR16 files, hand-made CIDDS-001 and
//! TON_IoT files (see tests/data/README.md), bad rows, overrides.

use netshare_core::records::{META_DIALECT, read_flows, read_metadata};
use netshare_ingest::{
    DialectChoice, IngestConfig, IngestError, OnError, ingest_files, parse_flows_csv,
};

use crate::{is_sorted, read, real, temp_file};

fn skip() -> IngestConfig {
    IngestConfig {
        on_error: OnError::Skip,
        ..IngestConfig::default()
    }
}

#[test]
fn netshare_layout_real_file() {
    let Some(p) = real("netflow/ugr16-netshare-1k.csv") else {
        return;
    };
    let (t, rep) = parse_flows_csv(&read(&p), &IngestConfig::default()).expect("parses");
    assert_eq!(rep.files[0].dialect.as_deref(), Some("netshare"));
    assert_eq!((t.len(), rep.distinct_five_tuples), (1000, 989));
    // First row: 1730436467,719036359,0,0,ICMP,1458298072364000.0,305.636,62,1736,background
    assert_eq!(
        (t.srcip[0], t.dstip[0], t.proto[0]),
        (
            netshare_core::addr::v4(1_730_436_467),
            netshare_core::addr::v4(719_036_359),
            1
        )
    );
    assert_eq!(
        (t.ts_us[0], t.pkt[0], t.byt[0]),
        (1_458_298_072_364_000, 62, 1736)
    );
    assert!((t.td[0] - 305.636).abs() < 1e-9);
    assert_eq!(t.label[0], "background");
}

#[test]
fn ugr16_real_file_start_is_end_minus_duration() {
    let Some(p) = real("netflow/ugr16-day1-host-a.csv") else {
        return;
    };
    let (t, rep) = parse_flows_csv(&read(&p), &IngestConfig::default()).expect("parses");
    assert_eq!(rep.files[0].dialect.as_deref(), Some("ugr16"));
    assert_eq!(t.len(), 9319);
    // 2016-04-11 00:03:17,0.0,32.100.20.28,42.219.152.246,41478,465,TCP,....S.,0,40,1,40,background
    assert_eq!(t.ts_us[0], 1_460_332_997_000_000);
    assert_eq!(
        t.srcip[0],
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(32, 100, 20, 28))
    );
    assert_eq!(
        (t.srcport[0], t.dstport[0], t.proto[0], t.pkt[0], t.byt[0]),
        (41478, 465, 6, 1, 40)
    );
    assert_eq!(t.label[0], "background");
    // A long flow: its start is its end time minus its duration.
    let text = String::from_utf8(read(&p)).expect("utf8");
    let (i, line) = text
        .lines()
        .skip(1)
        .enumerate()
        .find(|(_, l)| {
            l.split(',')
                .nth(1)
                .and_then(|d| d.parse::<f64>().ok())
                .is_some_and(|d| d > 10.0)
        })
        .expect("a flow longer than 10 s");
    let f: Vec<&str> = line.split(',').collect();
    let te = netshare_formats::datetime::parse_datetime_us(f[0]).expect("te");
    let td: f64 = f[1].parse().expect("td");
    assert_eq!(
        t.ts_us[i],
        te - (td * 1e6).round() as i64,
        "row {i}: {line}"
    );
}

#[test]
fn ugr16_without_header_like_the_raw_dataset() {
    let text = "2016-03-18 00:00:00,1.500,42.219.153.7,143.72.8.137,53,36872,UDP,.A....,0,0,1,109,background\n\
                2016-03-18 00:00:02,0.000,42.219.153.7,143.72.8.137,53,36873,UDP,.A....,0,0,1,109,background\n";
    let (t, rep) = parse_flows_csv(text.as_bytes(), &IngestConfig::default()).expect("parses");
    assert_eq!(rep.files[0].dialect.as_deref(), Some("ugr16"));
    assert_eq!(t.len(), 2);
    assert_eq!(t.ts_us[0], 1_458_259_200_000_000 - 1_500_000);
}

#[test]
fn cidds_hand_made_file() {
    let bytes = include_bytes!("../data/cidds-handmade.csv");
    let err =
        parse_flows_csv(bytes, &IngestConfig::default()).expect_err("EXT_SERVER is not an IP");
    match err {
        IngestError::Formats(netshare_formats::Error::CsvRow { line, message, .. }) => {
            assert_eq!(line, 6);
            assert!(message.contains("EXT_SERVER"), "{message}");
        }
        e => panic!("unexpected {e}"),
    }
    let (t, rep) = parse_flows_csv(bytes, &skip()).expect("parses");
    assert_eq!(rep.files[0].dialect.as_deref(), Some("cidds"));
    assert_eq!(t.len(), 4);
    assert_eq!(rep.skipped.get("bad_row"), Some(&1));
    assert_eq!(rep.bad_row_examples[0].line, 6);
    assert_eq!(t.ts_us[0], 1_489_536_076_632_000);
    assert_eq!(
        (t.proto[0], t.srcport[0], t.dstport[0], t.byt[0]),
        (6, 445, 58844, 108)
    );
    // ICMP type.code in the port column, nfdump's "1.2 M" byte count, the class label.
    assert_eq!(
        (t.proto[3], t.dstport[3], t.pkt[3], t.byt[3]),
        (1, 3, 1500, 1_200_000)
    );
    assert_eq!(
        (t.label[0].as_str(), t.label[3].as_str()),
        ("normal", "attacker")
    );
    assert!((t.td[3] - 12.5).abs() < 1e-12);
}

#[test]
fn ton_iot_hand_made_file() {
    let bytes = include_bytes!("../data/ton-handmade.csv");
    let (t, rep) = parse_flows_csv(bytes, &IngestConfig::default()).expect("parses");
    assert_eq!(rep.files[0].dialect.as_deref(), Some("ton"));
    assert_eq!(t.len(), 5);
    assert_eq!(rep.records_ipv6, 1, "the IPv6 row is carried");
    assert!(rep.skipped.is_empty(), "{:?}", rep.skipped);
    assert_eq!(
        (t.srcip[2], t.dstip[2], t.srcport[2], t.proto[2]),
        (
            "fe80::250:56ff:febe:89ee".parse().expect("v6"),
            "ff02::16".parse().expect("v6"),
            143,
            1
        )
    );
    assert_eq!(t.ts_us[0], 1_554_198_358_000_000);
    assert_eq!((t.srcport[0], t.dstport[0], t.proto[0]), (1883, 52976, 6));
    // Packets and IP-level bytes of both directions.
    assert_eq!((t.pkt[0], t.byt[0]), (252_183, 14_911_392));
    assert_eq!(
        t.label.iter().map(String::as_str).collect::<Vec<_>>(),
        ["normal", "normal", "normal", "backdoor", "scanning"]
    );
}

#[test]
fn dialect_override_and_mismatch() {
    let bytes = include_bytes!("../data/ton-handmade.csv");
    let cfg = IngestConfig {
        dialect: DialectChoice::Cidds,
        ..IngestConfig::default()
    };
    let err = parse_flows_csv(bytes, &cfg).expect_err("a TON header is not CIDDS");
    assert!(
        err.to_string().contains("a cidds header needs the columns"),
        "{err}"
    );
    let cfg = IngestConfig {
        dialect: DialectChoice::Ton,
        ..IngestConfig::default()
    };
    assert_eq!(parse_flows_csv(bytes, &cfg).expect("parses").0.len(), 5);
}

#[test]
fn bad_rows_name_file_and_line_or_are_skipped_and_quoted() {
    let text = "srcip,dstip,srcport,dstport,proto,ts,td,pkt,byt,type\n\
                1,2,3,4,TCP,1000,0.5,1,40,a\n\
                1,2,3,4,FOO,2000,0.5,1,40,a\n\
                1,2,70000,4,TCP,3000,0.5,1,40,a\n\
                1,2,3\n\
                1,2,3,4,UDP,500,0.5,1,40,b\n";
    let (dir, p) = temp_file("flows.csv", text.as_bytes());
    let out = dir.path().join("o.parquet");
    let err = ingest_files(std::slice::from_ref(&p), &IngestConfig::default(), &out)
        .expect_err("bad row");
    let msg = err.to_string();
    assert!(
        msg.contains("flows.csv, line 3") && msg.contains("FOO"),
        "{msg}"
    );
    let rep = ingest_files(&[p], &skip(), &out).expect("skips");
    assert_eq!((rep.records_read, rep.records_kept), (5, 2));
    assert_eq!(rep.skipped.get("bad_row"), Some(&3));
    let lines: Vec<u64> = rep.bad_row_examples.iter().map(|b| b.line).collect();
    assert_eq!(lines, [3, 4, 5]);
    let t = read_flows(&out).expect("read back");
    assert_eq!(t.ts_us, [500, 1000]);
    assert_eq!(
        read_metadata(&out)
            .expect("meta")
            .1
            .get(META_DIALECT)
            .map(String::as_str),
        Some("netshare")
    );
}

#[test]
fn several_flow_files_merge_in_time_order_with_their_dialects() {
    let (Some(a), Some(b), Some(c)) = (
        real("netflow/ugr16-day1-host-a.csv"),
        real("netflow/ugr16-day1-host-b.csv"),
        real("netflow/ugr16-netshare-1k.csv"),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp");
    let out = dir.path().join("o.parquet");
    let rep = ingest_files(&[a, b, c], &IngestConfig::default(), &out).expect("ingest");
    let t = read_flows(&out).expect("read back");
    assert_eq!(t.len(), 9319 + 7005 + 1000);
    assert_eq!(rep.records_kept as usize, t.len());
    assert!(is_sorted(&t.ts_us));
    let meta = read_metadata(&out).expect("meta").1;
    assert_eq!(
        meta.get(META_DIALECT).map(String::as_str),
        Some("netshare+ugr16")
    );
}
