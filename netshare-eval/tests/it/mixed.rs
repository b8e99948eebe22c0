//! Traces with IPv4 and IPv6 addresses: address metrics count addresses of either family
//! (an IPv4 and an IPv6 address with the same low bits are two addresses), a v2 records file
//! reads as a table, and a whole report runs on mixed tables.

use netshare_core::addr::{v4, v6};
use netshare_core::records::{FlowColumns, FlowRecord, IpAddr, Records, write_records};
use netshare_eval::report::{self, EvalConfig, Inputs};
use netshare_eval::{Convention, Table, fidelity};

fn table(src: &[IpAddr]) -> Table {
    let mut t = FlowColumns::default();
    for (i, &s) in src.iter().enumerate() {
        t.push(FlowRecord {
            srcip: s,
            dstip: if s.is_ipv6() {
                v6(0xff02 << 112 | 0xfb)
            } else {
                v4(0xe000_00fb)
            },
            srcport: 5353,
            dstport: 5353,
            proto: 17,
            ts_us: 1_600_000_000_000_000 + i as i64 * 1000,
            td: 0.0,
            pkt: 1 + i as u64 % 3,
            byt: 100 + i as u64,
            label: String::new(),
        });
    }
    Table::from_records(&Records::Flows(t))
}

#[test]
fn address_jsds_of_mixed_traces_match_hand_worked_values() {
    let (a, b, c) = (v6(0x2001_0db8 << 96 | 1), v4(1), v6(1));
    let (d, e, f) = (v4(2), v6(0x2001_0db8 << 96 | 2), v6(2));
    // Popularity ranks: real (3, 1, 1), synthetic (2, 2, 1). With p = (.6, .2, .2), q = (.4, .4,
    // .2) and m their mean, (KL(p||m) + KL(q||m)) / 2 = 0.0270577 (natural log).
    let real = table(&[a, a, a, b, c]);
    let syn = table(&[d, d, e, e, f]);
    let j = fidelity::jsd(&real, &syn, "srcip", Convention::Netshare).expect("defined");
    assert!((j - 0.027_057_66).abs() < 1e-7, "{j}");
    // Exact identities: no address in common, so the distance is sqrt(ln 2), even though
    // 0.0.0.1 / ::1 and 0.0.0.2 / ::2 share their low bits.
    let real = table(&[b, b, c]);
    let syn = table(&[c, d, f]);
    let one =
        fidelity::jsd(&table(&[b]), &table(&[c]), "srcip", Convention::Netdpsyn).expect("defined");
    assert!((one - 2f64.ln().sqrt()).abs() < 1e-12, "{one}");
    let same = fidelity::jsd(&real, &real, "srcip", Convention::Netdpsyn).expect("defined");
    assert!(same.abs() < 1e-12);
    assert!(fidelity::jsd(&real, &syn, "dstip", Convention::Netshare).is_some());
    // The family split: real 1 IPv6 of 3 records, synthetic 2 of 3. p = (2/3, 1/3),
    // q = (1/3, 2/3), m = (1/2, 1/2): each KL is 2/3 ln(4/3) + 1/3 ln(2/3) = 0.0566330.
    let j = fidelity::jsd(&real, &syn, "ip_version", Convention::Netshare).expect("defined");
    assert!((j - 0.056_633_0).abs() < 1e-7, "{j}");
    // All-IPv4 tables get no family metric at all.
    let four = table(&[b, d]);
    assert!(
        !fidelity::distributional(&four, &four, Convention::Netshare)
            .contains_key("jsd_ip_version")
    );
    assert!(
        fidelity::distributional(&real, &syn, Convention::Netshare).contains_key("jsd_ip_version")
    );
}

#[test]
fn a_report_runs_on_mixed_traces_read_from_v2_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addrs: Vec<IpAddr> = (0..120u32)
        .map(|i| {
            if i % 3 == 0 {
                v6(0x2001_0db8 << 96 | u128::from(i % 17))
            } else {
                v4(0x0a00_0000 | (i % 23))
            }
        })
        .collect();
    let mut t = FlowColumns::default();
    for (i, &s) in addrs.iter().enumerate() {
        t.push(FlowRecord {
            srcip: s,
            dstip: if s.is_ipv6() {
                v6(0xfe80 << 112 | 7)
            } else {
                v4(0xc0a8_0001)
            },
            srcport: 1024 + (i as u16 % 50),
            dstport: [53u16, 443, 80][i % 3],
            proto: [17u8, 6, 6][i % 3],
            ts_us: 1_600_000_000_000_000 + i as i64 * 1_000_000,
            td: (i % 7) as f64,
            pkt: 1 + (i % 5) as u64,
            byt: 60 * (1 + (i % 5) as u64),
            label: ["a", "b"][i % 2].into(),
        });
    }
    let p = dir.path().join("mixed.parquet");
    write_records(&p, &Records::Flows(t), &[]).expect("write v2");
    let real = Table::read(&p).expect("a v2 file reads");
    assert_eq!(real.srcip.iter().filter(|a| a.is_ipv6()).count(), 40);
    let (a, b) = crate::helpers::halves(&real);
    let inputs = Inputs {
        synthetic: Some(crate::helpers::marginals(&real, 3)),
        marginals: None,
        reference_impl: None,
        half_a: Some(a),
        half_b: Some(b),
        train: None,
        training: None,
        ledger: None,
        real: Some(real),
    };
    let cfg = EvalConfig {
        max_rows: 300,
        ..EvalConfig::default()
    };
    let syn_v6 = inputs
        .synthetic
        .as_ref()
        .map_or(0, |t| t.srcip.iter().filter(|a| a.is_ipv6()).count());
    let r = report::build(&inputs, &cfg).expect("report on mixed traces");
    // The family split, counted by hand: every third row is IPv6, and its 40 five-tuples are
    // distinct (source address i mod 17 and port i mod 50 repeat together only after 850 rows).
    let real_info = &r.tables["real"];
    assert_eq!(
        (
            real_info.rows,
            real_info.ipv6_rows,
            real_info.ipv6_five_tuples
        ),
        (120, 40, 40)
    );
    assert_eq!(r.tables["synthetic"].ipv6_rows, syn_v6);
    let line = r
        .verdict
        .iter()
        .find(|l| l.starts_with("Address families"))
        .expect("a verdict line on the family split");
    assert!(
        line.contains("33.3% of the real rows (33.3% of their five-tuples)"),
        "{line}"
    );
    let flat = report::flatten(&r);
    for k in [
        "synthetic.distributional.jsd_srcip",
        "synthetic.distributional.jsd_dstip",
        "synthetic.distributional.jsd_ip_version",
    ] {
        let v = flat.get(k).unwrap_or_else(|| panic!("{k} missing"));
        assert!(
            v.value.is_some_and(|x| x.is_finite() && x >= 0.0),
            "{k}: {:?}",
            v.value
        );
    }
}
