//! The packet builder's tests: every header field, checksums against an independent RFC 1071
//! sum over the pseudo-header of each family, lengths, fragments and capture limits.

use super::*;
use pnet_packet::Packet;
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::tcp::TcpPacket;
use pnet_packet::udp::UdpPacket;

use crate::packet::decode::Decoded;

fn rec(proto: u8, pkt_len: u16) -> PacketRecord {
    PacketRecord {
        srcip: netshare_core::addr::v4(0x0a00_0001),
        dstip: netshare_core::addr::v4(0xc0a8_0102),
        srcport: 40_000,
        dstport: 443,
        proto,
        time_us: 1_000_000,
        pkt_len,
        tos: 0xb8,
        id: 4242,
        flag: 2,
        off: 0,
        ttl: 63,
    }
}

/// Independent ones'-complement sum (RFC 1071) over 16-bit words.
fn ones_sum(parts: &[&[u8]]) -> u16 {
    let mut data = Vec::new();
    for p in parts {
        data.extend_from_slice(p);
    }
    if data.len() % 2 == 1 {
        data.push(0);
    }
    let mut s: u32 = data
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

fn pseudo(ip: &Ipv4Packet) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&ip.get_source().octets());
    p.extend_from_slice(&ip.get_destination().octets());
    p.push(0);
    p.push(ip.get_next_level_protocol().0);
    p.extend_from_slice(&(ip.payload().len() as u16).to_be_bytes());
    p
}

#[test]
fn tcp_packet_carries_every_field_and_both_checksums_verify() {
    let mut b = PacketBuilder::new(PacketOptions::default());
    let r = rec(PROTO_TCP, 300);
    let built = b.build(&r);
    assert_eq!(built.wire, 14 + 300);
    assert_eq!(built.captured, built.wire);
    let ip = Ipv4Packet::new(&b.bytes()[14..]).expect("ip");
    assert_eq!(ip.get_total_length(), 300);
    assert_eq!((ip.get_dscp() << 2) | ip.get_ecn(), 0xb8);
    assert_eq!(ip.get_identification(), 4242);
    assert_eq!(ip.get_flags(), 2);
    assert_eq!(ip.get_ttl(), 63);
    assert_eq!(ones_sum(&[&b.bytes()[14..34]]), 0xffff, "IP header sum");
    let tcp = TcpPacket::new(ip.payload()).expect("tcp");
    assert_eq!((tcp.get_source(), tcp.get_destination()), (40_000, 443));
    assert_eq!(ones_sum(&[&pseudo(&ip), ip.payload()]), 0xffff, "TCP sum");
}

#[test]
fn tcp_sequence_numbers_advance_by_payload_and_ack_the_peer() {
    let mut b = PacketBuilder::new(PacketOptions::default());
    let r = rec(PROTO_TCP, 140);
    b.build(&r);
    let s1 = TcpPacket::new(&b.bytes()[34..])
        .expect("tcp")
        .get_sequence();
    b.build(&r);
    let s2 = TcpPacket::new(&b.bytes()[34..])
        .expect("tcp")
        .get_sequence();
    assert_eq!(s2.wrapping_sub(s1), 100);
    let mut back = r.clone();
    std::mem::swap(&mut back.srcip, &mut back.dstip);
    std::mem::swap(&mut back.srcport, &mut back.dstport);
    back.pkt_len = 40;
    b.build(&back);
    let ack = TcpPacket::new(&b.bytes()[34..])
        .expect("tcp")
        .get_acknowledgement();
    assert_eq!(ack, s2.wrapping_add(100));
}

#[test]
fn tcp_segments_of_port_53_are_framed_as_dns_over_tcp() {
    // (pkt_len, ports, expected first two payload bytes): a 30-byte payload holds one 28-byte
    // message; 5 bytes start a message that never completes; other ports stay zero.
    for (len, ports, want) in [
        (20 + 20 + 30, (40_000, 53), [0u8, 28]),
        (20 + 20 + 30, (53, 40_000), [0, 28]),
        (20 + 20 + 14, (40_000, 53), [0, 12]),
        (20 + 20 + 5, (40_000, 53), [0xff, 0xff]),
        (20 + 20 + 30, (40_000, 443), [0, 0]),
    ] {
        let mut b = PacketBuilder::new(PacketOptions {
            link: LinkType::Raw,
            ..PacketOptions::default()
        });
        let mut r = rec(PROTO_TCP, len);
        (r.srcport, r.dstport) = ports;
        b.build(&r);
        let ip = Ipv4Packet::new(b.bytes()).expect("ip");
        let tcp = TcpPacket::new(ip.payload()).expect("tcp");
        let payload = tcp.payload();
        assert_eq!(payload[..2], want, "pkt_len {len}, ports {ports:?}");
        assert!(payload[2..].iter().all(|&x| x == 0), "the rest is zero");
        assert_eq!(ones_sum(&[&pseudo(&ip), ip.payload()]), 0xffff, "TCP sum");
    }
    // A payload of one byte has no room for a length and stays zero.
    let mut b = PacketBuilder::new(PacketOptions::default());
    let mut r = rec(PROTO_TCP, 20 + 20 + 1);
    r.dstport = 53;
    b.build(&r);
    assert_eq!(b.bytes()[14 + 40], 0);
}

#[test]
fn udp_checksum_verifies_with_odd_payload_and_raw_link() {
    let mut b = PacketBuilder::new(PacketOptions {
        link: LinkType::Raw,
        ..PacketOptions::default()
    });
    let built = b.build(&rec(PROTO_UDP, 20 + 8 + 13));
    assert_eq!(built.wire, 41);
    let ip = Ipv4Packet::new(b.bytes()).expect("ip");
    let u = UdpPacket::new(ip.payload()).expect("udp");
    assert_eq!(u.get_length(), 21);
    assert_ne!(u.get_checksum(), 0);
    assert_eq!(ones_sum(&[&pseudo(&ip), ip.payload()]), 0xffff);
}

#[test]
fn icmp_checksum_verifies() {
    let mut b = PacketBuilder::new(PacketOptions::default());
    b.build(&rec(PROTO_ICMP, 84));
    assert_eq!(ones_sum(&[&b.bytes()[34..]]), 0xffff);
    assert_eq!(b.bytes()[34], 8, "echo request");
}

#[test]
fn too_short_lengths_are_raised_to_the_headers_and_counted() {
    let mut b = PacketBuilder::new(PacketOptions::default());
    let built = b.build(&rec(PROTO_TCP, 10));
    assert_eq!(built.wire, 14 + 40);
    let ip = Ipv4Packet::new(&b.bytes()[14..]).expect("ip");
    assert_eq!(ip.get_total_length(), 40);
    assert_eq!(b.stats().pkt_len_raised, 1);
}

#[test]
fn non_first_fragments_have_no_transport_header() {
    let mut b = PacketBuilder::new(PacketOptions::default());
    let mut r = rec(PROTO_UDP, 21);
    r.flag = 0;
    r.off = 185;
    let built = b.build(&r);
    assert_eq!(built.wire, 14 + 21, "a 1-byte fragment payload is fine");
    let ip = Ipv4Packet::new(&b.bytes()[14..]).expect("ip");
    assert_eq!(ip.get_fragment_offset(), 185);
    assert_eq!(ip.payload(), &[0]);
    assert_eq!(b.stats().fragments_without_l4, 1);
    assert_eq!(b.stats().pkt_len_raised, 0);
}

#[test]
fn headers_only_keeps_the_wire_length_and_snaplen_cuts() {
    let mut b = PacketBuilder::new(PacketOptions {
        link: LinkType::Raw,
        snaplen: 65_535,
        headers_only: true,
    });
    let built = b.build(&rec(PROTO_TCP, 1500));
    assert_eq!(
        built,
        Built {
            captured: 40,
            wire: 1500
        }
    );
    let ip = Ipv4Packet::new(b.bytes()).expect("ip");
    assert_eq!(ip.get_total_length(), 1500);
    let mut b = PacketBuilder::new(PacketOptions {
        snaplen: 64,
        ..PacketOptions::default()
    });
    assert_eq!(b.build(&rec(PROTO_UDP, 1000)).captured, 64);
    assert_eq!(b.stats().truncated, 1);
}

#[test]
fn other_protocols_get_zero_payload() {
    let mut b = PacketBuilder::new(PacketOptions::default());
    let built = b.build(&rec(47, 60));
    assert_eq!(built.wire, 74);
    assert!(b.bytes()[34..].iter().all(|&x| x == 0));
    assert_eq!(b.stats().other_protocol, 1);
}

#[test]
fn igmp_and_ip_in_ip_get_valid_inner_headers() {
    let mut b = PacketBuilder::new(PacketOptions::default());
    b.build(&rec(PROTO_IGMP, 28));
    assert_eq!(b.bytes()[34], 0x11);
    assert_eq!(ones_sum(&[&b.bytes()[34..]]), 0xffff);
    let built = b.build(&rec(PROTO_IPIP, 30));
    assert_eq!(built.wire, 14 + 40, "raised to fit the inner header");
    let inner = Ipv4Packet::new(&b.bytes()[34..]).expect("inner");
    assert_eq!(inner.get_total_length(), 20);
    assert_eq!(ones_sum(&[&b.bytes()[34..54]]), 0xffff);
    b.build(&rec(PROTO_IPV6, 100));
    assert_eq!(b.bytes()[34] >> 4, 6);
    assert_eq!(u16::from_be_bytes([b.bytes()[38], b.bytes()[39]]), 40);
    assert_eq!(b.stats().other_protocol, 0);
}

fn rec6(proto: u8, pkt_len: u16) -> PacketRecord {
    PacketRecord {
        srcip: "2001:db8::1".parse().expect("v6"),
        dstip: "fe80::211:22ff:fe33:4455".parse().expect("v6"),
        ..rec(proto, pkt_len)
    }
}

/// The IPv6 pseudo-header (RFC 8200 §8.1): addresses, upper-layer length as 32 bits, three
/// zero bytes, the next header.
fn pseudo6(r: &PacketRecord, upper_len: usize, next: u8) -> Vec<u8> {
    let mut p = Vec::new();
    for a in [r.srcip, r.dstip] {
        let std::net::IpAddr::V6(a) = a else {
            panic!("IPv6 record")
        };
        p.extend_from_slice(&a.octets());
    }
    p.extend_from_slice(&(upper_len as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, next]);
    p
}

#[test]
fn ipv6_packets_carry_every_field_and_checksums_verify_over_the_ipv6_pseudo_header() {
    use pnet_packet::ipv6::Ipv6Packet;
    for (proto, len) in [
        (PROTO_TCP, 300u16),
        (PROTO_UDP, 40 + 8 + 13),
        (PROTO_ICMPV6, 104),
    ] {
        let mut b = PacketBuilder::new(PacketOptions::default());
        let r = rec6(proto, len);
        let built = b.build(&r);
        assert_eq!(built.wire, 14 + usize::from(len), "proto {proto}");
        assert_eq!(&b.bytes()[12..14], &[0x86, 0xdd], "ethertype IPv6");
        let ip = Ipv6Packet::new(&b.bytes()[14..]).expect("ip");
        assert_eq!(ip.get_version(), 6);
        assert_eq!(usize::from(ip.get_payload_length()), usize::from(len) - 40);
        assert_eq!(ip.get_traffic_class(), 0xb8);
        assert_eq!(ip.get_hop_limit(), 63);
        assert_eq!(ip.get_next_header().0, proto);
        let upper = &b.bytes()[54..];
        assert_eq!(
            ones_sum(&[&pseudo6(&r, upper.len(), proto), upper]),
            0xffff,
            "proto {proto}: transport checksum over the IPv6 pseudo-header"
        );
        // Read back, the frame gives the record it was built from.
        let Decoded::Ip(f, None) = crate::packet::decode(crate::linktype::ETHERNET, b.bytes())
        else {
            panic!("proto {proto}: not decoded cleanly")
        };
        assert_eq!(
            (f.srcip, f.dstip, f.proto, f.pkt_len),
            (r.srcip, r.dstip, proto, len)
        );
        assert_eq!((f.tos, f.ttl), (r.tos, r.ttl));
        if proto != PROTO_ICMPV6 {
            assert_eq!((f.srcport, f.dstport), (r.srcport, r.dstport));
        }
    }
}

/// A checksum worked by hand, so the test does not rest on one implementation alone: UDP from
/// ::1 port 1 to ::2 port 2, no payload. Pseudo-header words: ::1 gives 0x0001, ::2 gives
/// 0x0002, the length 8 gives 0x0008, next header 17 gives 0x0011; the UDP header: ports 0x0001
/// and 0x0002, length 0x0008, checksum 0. Sum 0x0001 + 0x0002 + 0x0008 + 0x0011 + 0x0001 +
/// 0x0002 + 0x0008 = 0x0027; its complement is 0xffd8.
#[test]
fn ipv6_udp_checksum_matches_a_hand_worked_value() {
    let mut b = PacketBuilder::new(PacketOptions {
        link: LinkType::Raw,
        ..PacketOptions::default()
    });
    let r = PacketRecord {
        srcip: "::1".parse().expect("v6"),
        dstip: "::2".parse().expect("v6"),
        srcport: 1,
        dstport: 2,
        proto: PROTO_UDP,
        pkt_len: 48,
        ..PacketRecord::default()
    };
    b.build(&r);
    assert_eq!(&b.bytes()[40..48], &[0, 1, 0, 2, 0, 8, 0xff, 0xd8]);
}

#[test]
fn ipv6_fragments_get_a_fragment_header_and_later_ones_no_transport_header() {
    let mut b = PacketBuilder::new(PacketOptions {
        link: LinkType::Raw,
        ..PacketOptions::default()
    });
    let mut r = rec6(PROTO_UDP, 40 + 8 + 8 + 100);
    r.flag = 1;
    r.off = 0;
    r.id = 0x0c0d;
    b.build(&r);
    assert_eq!(b.bytes()[6], IPV6_FRAGMENT, "next header: fragment");
    assert_eq!(&b.bytes()[40..48], &[17, 0, 0, 1, 0, 0, 0x0c, 0x0d]);
    let Decoded::Ip(f, None) = crate::packet::decode(crate::linktype::RAW, b.bytes()) else {
        panic!("first fragment not decoded cleanly")
    };
    assert_eq!(
        (f.proto, f.srcport, f.id, f.flag, f.off),
        (17, 40_000, 0x0c0d, 1, 0)
    );

    r.flag = 0;
    r.off = 14;
    r.pkt_len = 40 + 8 + 50;
    let built = b.build(&r);
    assert_eq!(built.wire, 98);
    assert_eq!(&b.bytes()[40..44], &[17, 0, 0, 14 << 3]);
    assert!(
        b.bytes()[48..].iter().all(|&x| x == 0),
        "no transport header"
    );
    let Decoded::Ip(f, Some(crate::packet::Note::NonFirstFragment)) =
        crate::packet::decode(crate::linktype::RAW, b.bytes())
    else {
        panic!("later fragment not decoded as one")
    };
    assert_eq!((f.off, f.flag, f.srcport), (14, 0, 0));
    assert_eq!(b.stats().fragments_without_l4, 1);
}

#[test]
fn a_record_with_two_ip_versions_is_written_as_ipv6_and_counted() {
    let mut b = PacketBuilder::new(PacketOptions::default());
    let mut r = rec6(PROTO_TCP, 60);
    r.srcip = netshare_core::addr::v4(0x0a00_0001);
    b.build(&r);
    assert_eq!(&b.bytes()[12..14], &[0x86, 0xdd]);
    assert_eq!(
        &b.bytes()[22..38],
        &"::ffff:10.0.0.1"
            .parse::<std::net::Ipv6Addr>()
            .expect("v6")
            .octets()
    );
    assert_eq!(b.stats().mixed_family, 1);
}
