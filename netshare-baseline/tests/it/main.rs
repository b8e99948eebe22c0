//! The `netshare-baseline` binary on real records: both baselines, read back. (Having an
//! integration test also makes `cargo test` build the binary, which CI's pipeline step runs.)

use std::collections::BTreeSet;
use std::process::Command;

use netshare_core::records::{FlowColumns, Records, read_records, write_records};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_netshare-baseline"))
}

fn five_tuples(t: &FlowColumns) -> BTreeSet<(std::net::IpAddr, std::net::IpAddr, u16, u16, u8)> {
    (0..t.len())
        .map(|i| {
            (
                t.srcip[i],
                t.dstip[i],
                t.srcport[i],
                t.dstport[i],
                t.proto[i],
            )
        })
        .collect()
}

#[test]
fn the_binary_writes_a_marginals_sample_and_two_disjoint_halves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut t = FlowColumns::default();
    for r in fixtures::flows::ugr16_flows()
        .expect("embedded traces")
        .into_iter()
        .take(2_000)
    {
        t.push(r);
    }
    let input = dir.path().join("records.parquet");
    write_records(&input, &Records::Flows(t.clone()), &[]).expect("write records");
    let out = dir.path().join("out");
    let st = bin()
        .arg(&input)
        .args(["--kind", "all", "--seed", "3", "-o"])
        .arg(&out)
        .output()
        .expect("run");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let read = |name: &str| match read_records(&out.join(name)).expect(name) {
        Records::Flows(f) => f,
        Records::Packets(_) => panic!("{name} holds packets"),
    };
    let (m, a, b) = (
        read("marginals.parquet"),
        read("half-a.parquet"),
        read("half-b.parquet"),
    );
    assert_eq!(
        m.len(),
        t.len(),
        "the marginals sample has as many rows as the input"
    );
    assert_eq!(a.len() + b.len(), t.len(), "the halves partition the input");
    assert!(
        five_tuples(&a).is_disjoint(&five_tuples(&b)),
        "no five-tuple is in both halves"
    );
    let (small, large) = (a.len().min(b.len()), a.len().max(b.len()));
    assert!(
        small * 10 >= large * 9,
        "halves of {small} and {large} records"
    );

    // Without an output folder it says what is missing, and fails.
    let st = bin().arg(&input).output().expect("run");
    assert!(!st.status.success());
    assert!(String::from_utf8_lossy(&st.stderr).contains("-o"));
}
