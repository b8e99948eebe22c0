//! Every link type and container variant, built by the fixtures' independent writer.

use fixtures::captures::{
    Frame, Iface, Ipv4Spec, NgPacket, PcapOpts, Wrap, ipv4, ipv6, lt, pcap, pcapng, sample_frames,
    wrap,
};
use netshare_ingest::read_packets_from_bytes;

const T0: i64 = 1_521_000_000_123_456;

/// The record the fixtures' IPv6 packet gives: UDP from ::1 to ::2, ports 0, 48 bytes.
fn check_ipv6_row(t: &netshare_core::records::PacketColumns, i: usize, time: i64, what: &str) {
    let r = t.row(i);
    // Within one unit of a 2^-20 s interface's resolution.
    assert!(
        (r.time_us - time).abs() <= 1,
        "{what}: time of the IPv6 record"
    );
    assert_eq!(
        (r.srcip, r.dstip),
        (netshare_core::addr::v6(1), netshare_core::addr::v6(2)),
        "{what}: IPv6 addresses"
    );
    assert_eq!(
        (r.proto, r.srcport, r.dstport, r.pkt_len, r.ttl, r.tos),
        (17, 0, 0, 48, 64, 0),
        "{what}: IPv6 fields"
    );
}

/// Checks the records `sample_frames(w, n, T0)` must give.
fn check_sample(bytes: &[u8], n: usize, what: &str) {
    let (t, rep) = read_packets_from_bytes(bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(t.len(), n + 1, "{what}: IPv4 records and the IPv6 one");
    assert_eq!(rep.records_ipv6, 1, "{what}: the IPv6 packet is carried");
    check_ipv6_row(&t, n, T0 + 1000 * n as i64, what);
    for i in 0..n {
        assert_eq!(t.time_us[i], T0 + 1000 * i as i64, "{what}: time of {i}");
        assert_eq!(
            t.srcip[i],
            netshare_core::addr::v4(0x0a00_0001 + (i % 3) as u32),
            "{what}: srcip of {i}"
        );
        assert_eq!(t.dstip[i], netshare_core::addr::v4(0xc0a8_0102), "{what}");
        assert_eq!(t.proto[i], [6, 17, 1][i % 3], "{what}");
        let (sp, dp) = if i % 3 == 2 {
            (0, 0)
        } else {
            (40000 + (i % 3) as u16, [443, 53][i % 3])
        };
        assert_eq!(
            (t.srcport[i], t.dstport[i]),
            (sp, dp),
            "{what}: ports of {i}"
        );
        let l4 = [20, 8, 8][i % 3];
        assert_eq!(
            t.pkt_len[i] as usize,
            20 + l4 + 10 * i,
            "{what}: length of {i}"
        );
        assert_eq!(
            (t.id[i], t.ttl[i], t.flag[i], t.off[i]),
            (i as u16, 64 - (i % 5) as u8, 2, 0),
            "{what}"
        );
    }
}

#[test]
fn every_link_type_in_pcap_of_every_flavour() {
    let wraps = [
        Wrap::Ethernet,
        Wrap::Vlan,
        Wrap::QinQ,
        Wrap::Sll,
        Wrap::Sll2,
        Wrap::NullLe,
        Wrap::NullBe,
        Wrap::Loop,
        Wrap::Raw,
    ];
    for w in wraps {
        for nanos in [false, true] {
            for big_endian in [false, true] {
                let o = PcapOpts {
                    nanos,
                    big_endian,
                    ..PcapOpts::new(w.linktype())
                };
                let bytes = pcap(&o, &sample_frames(w, 7, T0));
                check_sample(&bytes, 7, &format!("{w:?} nanos={nanos} be={big_endian}"));
            }
        }
    }
}

#[test]
fn raw_link_type_aliases_and_ipv4_ipv6_link_types() {
    for linktype in [lt::RAW_12, lt::RAW_14, lt::RAW] {
        let bytes = pcap(&PcapOpts::new(linktype), &sample_frames(Wrap::Raw, 5, T0));
        check_sample(&bytes, 5, &format!("linktype {linktype}"));
    }
    let v4: Vec<Frame> = sample_frames(Wrap::Raw, 4, T0)
        .into_iter()
        .take(4)
        .collect();
    let (t, _) = read_packets_from_bytes(&pcap(&PcapOpts::new(lt::IPV4), &v4)).expect("reads");
    assert_eq!(t.len(), 4);
    let v6 = vec![Frame {
        time_us: T0,
        data: ipv6(),
    }];
    let (t, rep) = read_packets_from_bytes(&pcap(&PcapOpts::new(lt::IPV6), &v6)).expect("reads");
    assert_eq!((t.len(), rep.records_ipv6), (1, 1));
    check_ipv6_row(&t, 0, T0, "linktype IPV6");
}

#[test]
fn unknown_link_types_are_counted_not_fatal() {
    let bytes = pcap(&PcapOpts::new(147), &sample_frames(Wrap::Raw, 3, T0));
    let (t, rep) = read_packets_from_bytes(&bytes).expect("reads");
    assert_eq!(t.len(), 0);
    assert_eq!(rep.skipped.get("unsupported_link_type"), Some(&4));
    assert_eq!(rep.files[0].link_types.get("unsupported (147)"), Some(&4));
}

#[test]
fn pcapng_with_several_interfaces_resolutions_and_block_kinds() {
    let ifaces = [
        Iface {
            linktype: lt::ETHERNET,
            tsresol: None,
            snaplen: 65535,
        },
        Iface {
            linktype: lt::LINUX_SLL2,
            tsresol: Some(9),
            snaplen: 65535,
        },
        Iface {
            linktype: lt::RAW,
            tsresol: Some(0x80 | 20),
            snaplen: 65535,
        },
        Iface {
            linktype: lt::NULL,
            tsresol: Some(3),
            snaplen: 65535,
        },
    ];
    let wraps = [Wrap::Ethernet, Wrap::Sll2, Wrap::Raw, Wrap::NullLe];
    let spec = |i: usize| Ipv4Spec {
        id: i as u16,
        ..Ipv4Spec::default()
    };
    for be in [false, true] {
        let mut pk = Vec::new();
        for i in 0..12 {
            let iface = (i % 4) as u32;
            let frame = Frame {
                time_us: T0 + 1000 * i as i64,
                data: wrap(wraps[i % 4], &ipv4(&spec(i))),
            };
            pk.push(if i == 5 {
                NgPacket::Opb {
                    iface: iface as u16,
                    frame,
                }
            } else {
                NgPacket::Epb { iface, frame }
            });
        }
        // A simple packet block (interface 0, no time of its own) and an IPv6 packet.
        pk.push(NgPacket::Spb(wrap(Wrap::Ethernet, &ipv4(&spec(99)))));
        pk.push(NgPacket::Epb {
            iface: 2,
            frame: Frame {
                time_us: T0 + 20_000,
                data: ipv6(),
            },
        });
        let bytes = pcapng(&ifaces, &pk, be);
        let (t, rep) = read_packets_from_bytes(&bytes).expect("reads");
        assert_eq!(rep.files[0].format, "pcapng");
        assert_eq!(t.len(), 14, "be={be}");
        assert_eq!(rep.records_ipv6, 1);
        check_ipv6_row(&t, 13, T0 + 20_000, &format!("pcapng be={be}"));
        for i in 0..12 {
            assert_eq!(t.id[i], i as u16);
            let want = T0 + 1000 * i as i64;
            let got = t.time_us[i];
            match i % 4 {
                // 2^-20 s units: within one unit, floored.
                2 => assert!(
                    (want - got).abs() <= 1,
                    "be={be} frame {i}: {got} vs {want}"
                ),
                // Millisecond interface: floored to the millisecond.
                3 => assert_eq!(got, want - want % 1000, "be={be} frame {i}"),
                _ => assert_eq!(got, want, "be={be} frame {i}"),
            }
        }
        // The SPB takes the time of the packet before it.
        assert_eq!((t.id[12], t.time_us[12]), (99, t.time_us[11]));
        assert_eq!(rep.files[0].link_types.len(), 4);
    }
}

#[test]
fn header_only_raw_pcapng_like_caida_keeps_wire_lengths_and_counts_missing_ports() {
    // CAIDA's format: pcapng, link type RAW, header-only snap length, real wire lengths.
    let mk = |snaplen: u32| {
        let ifaces = [Iface {
            linktype: lt::RAW,
            tsresol: Some(9),
            snaplen,
        }];
        let pk: Vec<NgPacket> = (0..6)
            .map(|i| NgPacket::Epb {
                iface: 0,
                frame: Frame {
                    time_us: T0 + i,
                    data: ipv4(&Ipv4Spec {
                        proto: [6, 17][i as usize % 2],
                        payload: 1400,
                        ..Ipv4Spec::default()
                    }),
                },
            })
            .collect();
        pcapng(&ifaces, &pk, false)
    };
    for (snap, ports_kept, note) in [
        (64, true, None),
        (24, true, Some("l4_header_partial_ports_kept")),
        (20, false, Some("l4_header_missing_ports_zero")),
    ] {
        let (t, rep) = read_packets_from_bytes(&mk(snap)).expect("reads");
        assert_eq!(t.len(), 6, "snap {snap}");
        assert!(
            t.pkt_len.iter().all(|&l| l > 1400),
            "wire length kept at snap {snap}"
        );
        assert_eq!(
            t.srcport.iter().all(|&p| p == 40000),
            ports_kept,
            "snap {snap}"
        );
        match note {
            Some(n) => assert_eq!(rep.notes.get(n), Some(&6), "snap {snap}: {:?}", rep.notes),
            None => assert!(rep.notes.is_empty(), "snap {snap}: {:?}", rep.notes),
        }
    }
    // Snap length below the IP header: counted by reason.
    let (t, rep) = read_packets_from_bytes(&mk(16)).expect("reads");
    assert_eq!(
        (t.len(), rep.skipped.get("ipv4_header_truncated")),
        (0, Some(&6))
    );
}

#[test]
fn fragments_and_non_port_protocols_get_port_zero() {
    let frames: Vec<Frame> = [
        Ipv4Spec {
            flags: 1,
            frag_off: 0,
            payload: 100,
            ..Ipv4Spec::default()
        },
        Ipv4Spec {
            flags: 0,
            frag_off: 17,
            payload: 100,
            ..Ipv4Spec::default()
        },
        Ipv4Spec {
            proto: 47,
            payload: 40,
            ..Ipv4Spec::default()
        },
    ]
    .iter()
    .enumerate()
    .map(|(i, s)| Frame {
        time_us: T0 + i as i64,
        data: wrap(Wrap::Ethernet, &ipv4(s)),
    })
    .collect();
    let (t, rep) =
        read_packets_from_bytes(&pcap(&PcapOpts::new(lt::ETHERNET), &frames)).expect("reads");
    assert_eq!(t.srcport, vec![40000, 0, 0]);
    assert_eq!((t.flag[0], t.off[0]), (1, 0));
    assert_eq!((t.flag[1], t.off[1]), (0, 17));
    assert_eq!(rep.notes.get("non_first_fragment_ports_zero"), Some(&1));
}
