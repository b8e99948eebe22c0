//! Integration tests of netshare-synth: writers read back by our ingest and by tshark, the
//! cross-chunk merge, the stage, determinism.

mod capture;
mod flows_csv;
mod merge;
mod mixed;
mod pychecks;
mod stage;
mod tshark;

use std::path::{Path, PathBuf};

use netshare_core::records::{FlowColumns, PacketColumns, PacketRecord};

/// Hand-made packet records that cover the edge cases of packet building.
pub fn edge_case_packets() -> PacketColumns {
    let base = PacketRecord {
        srcip: std::net::Ipv4Addr::new(10, 0, 0, 1).into(),
        dstip: std::net::Ipv4Addr::new(192, 168, 1, 2).into(),
        srcport: 40_000,
        dstport: 8_080,
        proto: 6,
        time_us: 1_458_298_072_364_001,
        pkt_len: 60,
        tos: 0,
        id: 1,
        flag: 2,
        off: 0,
        ttl: 64,
    };
    let mut t = PacketColumns::default();
    let mut push = |f: &dyn Fn(&mut PacketRecord)| {
        let mut r = base.clone();
        r.time_us += 1000 * t.len() as i64;
        r.id = t.len() as u16;
        f(&mut r);
        t.push(r);
    };
    push(&|_| {});
    push(&|r| r.pkt_len = 40); // TCP, header only
    push(&|r| r.pkt_len = 1500); // TCP, full MTU
    push(&|r| {
        // the reverse direction, so ACK numbers follow the peer
        std::mem::swap(&mut r.srcip, &mut r.dstip);
        std::mem::swap(&mut r.srcport, &mut r.dstport);
        r.tos = 0xb8;
        r.ttl = 1;
    });
    push(&|r| {
        r.proto = 17;
        r.dstport = 5_555;
        r.pkt_len = 29; // odd UDP payload
    });
    push(&|r| {
        r.proto = 17;
        r.srcport = 12_345;
        r.dstport = 9_999;
        r.pkt_len = 28; // empty UDP payload
        r.flag = 0;
    });
    push(&|r| {
        r.proto = 1;
        r.srcport = 0;
        r.dstport = 0;
        r.pkt_len = 84;
    });
    push(&|r| {
        // first fragment of a UDP datagram (more fragments)
        r.proto = 17;
        r.dstport = 7_777;
        r.flag = 1;
        r.pkt_len = 1500;
        r.id = 999;
    });
    push(&|r| {
        // a later fragment: no UDP header, ports unknown
        r.proto = 17;
        r.srcport = 0;
        r.dstport = 0;
        r.flag = 0;
        r.off = 185;
        r.pkt_len = 500;
        r.id = 999;
    });
    push(&|r| {
        r.proto = 47; // GRE
        r.srcport = 0;
        r.dstport = 0;
        r.pkt_len = 24;
    });
    push(&|r| {
        r.proto = 50; // ESP
        r.srcport = 0;
        r.dstport = 0;
        r.pkt_len = 100;
    });
    // IGMP, IPIP, IPv6-in-IPv4 and protocols whose zero payload dissects cleanly. SCTP (132),
    // VRRP (112) and ICMPv6 over IPv4 (58) are written with a zero payload too, which tshark
    // flags; see PacketStats::other_protocol.
    for proto in [2u8, 4, 41, 46, 51, 89, 103, 255] {
        let f = move |r: &mut PacketRecord| {
            r.proto = proto;
            r.srcport = 0;
            r.dstport = 0;
            r.pkt_len = 64;
        };
        push(&f);
    }
    push(&|r| {
        r.ttl = 0;
        r.tos = 0xff;
        r.id = 65_535;
    });
    // IPv6: no identification or DF flag outside a fragment header, so id and flag are 0
    // except in fragments (what a reader sees).
    let v6 = |r: &mut PacketRecord| {
        r.srcip = "2001:db8::1".parse().expect("v6");
        r.dstip = "fe80::211:22ff:fe33:4455".parse().expect("v6");
        r.id = 0;
        r.flag = 0;
        r.tos = 0x2e;
        r.ttl = 255;
    };
    push(&|r| {
        v6(r);
        r.pkt_len = 1500; // TCP, full MTU
    });
    push(&|r| {
        v6(r);
        r.pkt_len = 30; // raised to the TCP header
    });
    push(&|r| {
        // the reverse direction
        v6(r);
        std::mem::swap(&mut r.srcip, &mut r.dstip);
        std::mem::swap(&mut r.srcport, &mut r.dstport);
        r.pkt_len = 61;
    });
    push(&|r| {
        v6(r);
        r.proto = 17;
        r.dstport = 5_555;
        r.pkt_len = 40 + 8 + 5; // odd UDP payload
    });
    push(&|r| {
        v6(r);
        r.proto = 58; // ICMPv6 echo request
        r.srcport = 0;
        r.dstport = 0;
        r.pkt_len = 104;
    });
    push(&|r| {
        // first fragment of a UDP datagram (more fragments)
        v6(r);
        r.proto = 17;
        r.dstport = 7_777;
        r.flag = 1;
        r.id = 4_242;
        r.pkt_len = 1280;
    });
    push(&|r| {
        // a later fragment: no UDP header, ports unknown
        v6(r);
        r.proto = 17;
        r.srcport = 0;
        r.dstport = 0;
        r.off = 100;
        r.id = 4_242;
        r.pkt_len = 500;
    });
    t
}

/// The same table with `pkt_len` raised where the headers do not fit (what a reader sees).
pub fn with_min_lengths(t: &PacketColumns) -> PacketColumns {
    let mut t = t.clone();
    for i in 0..t.len() {
        let l4 = match (t.proto[i], t.off[i]) {
            (6, 0) => 20,
            (17, 0) | (1, 0) | (2, 0) | (58, 0) => 8,
            (4, 0) => 20,
            (41, 0) => 40,
            (51, 0) => 12,
            _ => 0,
        };
        let ip = match (t.srcip[i].is_ipv6(), t.flag[i] & 1 == 1 || t.off[i] != 0) {
            (false, _) => 20,
            (true, false) => 40,
            (true, true) => 48, // and a fragment header
        };
        t.pkt_len[i] = t.pkt_len[i].max(ip + l4);
    }
    t
}

/// Real packet records: the skype capture read by our ingest.
pub fn skype_packets() -> PacketColumns {
    let path = fixtures::real_trace("pcap/skype.pcap").expect("skype.pcap is embedded");
    let bytes = std::fs::read(&path).expect("read skype.pcap");
    let (t, report) = netshare_ingest::read_packets_from_bytes(&bytes).expect("ingest");
    assert!(report.records_kept > 1000, "{}", report.summary());
    t
}

/// Real flow records: the UGR16 excerpt in NetShare's layout, read by our ingest.
pub fn ugr16_flows() -> FlowColumns {
    let path = fixtures::real_trace("netflow/ugr16-netshare-1k.csv").expect("embedded");
    let bytes = std::fs::read(&path).expect("read csv");
    let (t, _) = netshare_ingest::parse_flows_csv(&bytes, &Default::default()).expect("ingest");
    assert_eq!(t.len(), 1000);
    t
}

/// A temporary directory.
pub fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// `dir/name`.
pub fn at(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}
