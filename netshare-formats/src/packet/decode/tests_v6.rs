//! IPv6 decoding: the fixed header's fields, the walk over extension headers to the
//! upper-layer protocol, fragments, and every way an IPv6 frame can be cut short.

use super::*;

const SRC: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
];
const DST: [u8; 16] = [
    0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55,
];

/// An IPv6 packet: traffic class 0xb8, hop limit 57, the given next header and payload (the
/// payload length field says `payload.len()`).
fn ipv6(next: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x6b, 0x80, 0x12, 0x34, 0, 0, next, 57];
    p[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&SRC);
    p.extend_from_slice(&DST);
    p.extend_from_slice(payload);
    p
}

/// A generic extension header of `words8` 8-byte units in all, carrying `next`.
fn ext(next: u8, words8: usize) -> Vec<u8> {
    let mut h = vec![0u8; 8 * words8];
    h[0] = next;
    h[1] = (words8 - 1) as u8;
    h
}

fn ports(sp: u16, dp: u16, len: usize) -> Vec<u8> {
    let mut l4 = vec![0u8; len];
    l4[0..2].copy_from_slice(&sp.to_be_bytes());
    l4[2..4].copy_from_slice(&dp.to_be_bytes());
    l4
}

fn record(d: Decoded) -> (IpFields, Option<Note>) {
    match d {
        Decoded::Ip(f, n) => (f, n),
        Decoded::Skipped(s) => panic!("expected a record, got {s:?}"),
    }
}

#[test]
fn extension_headers_are_walked_to_tcp_and_the_fields_follow_the_spec() {
    // Hop-by-hop (8 bytes) -> routing (24 bytes) -> destination options (16 bytes) -> TCP.
    let mut payload = ext(43, 1);
    payload.extend(ext(60, 3));
    payload.extend(ext(6, 2));
    payload.extend(ports(443, 51000, 20));
    let p = ipv6(0, &payload);
    let (f, note) = record(decode(linktype::RAW, &p));
    assert_eq!(note, None);
    assert_eq!(f.srcip, IpAddr::from(SRC));
    assert_eq!(f.dstip, IpAddr::from(DST));
    assert_eq!((f.srcport, f.dstport, f.proto), (443, 51000, 6));
    assert_eq!(f.pkt_len as usize, 40 + 8 + 24 + 16 + 20);
    assert_eq!((f.tos, f.ttl), (0xb8, 57), "traffic class and hop limit");
    assert_eq!((f.id, f.flag, f.off), (0, 0, 0));
}

#[test]
fn a_first_fragment_keeps_its_ports_and_a_later_one_has_none() {
    // Fragment header: next UDP, offset 0, M = 1, identification 0x0a0b0c0d.
    let frag = |off: u16, more: bool| {
        let mut h = vec![17, 0, 0, 0, 0x0a, 0x0b, 0x0c, 0x0d];
        h[2..4].copy_from_slice(&((off << 3) | u16::from(more)).to_be_bytes());
        h
    };
    let mut first = frag(0, true);
    first.extend(ports(5353, 53, 8));
    let (f, note) = record(decode(linktype::IPV6, &ipv6(44, &first)));
    assert_eq!(note, None);
    assert_eq!((f.proto, f.srcport, f.dstport), (17, 5353, 53));
    assert_eq!((f.id, f.flag, f.off), (0x0c0d, 1, 0));

    let mut later = frag(185, false);
    later.extend([0u8; 16]);
    let (f, note) = record(decode(linktype::IPV6, &ipv6(44, &later)));
    assert_eq!(note, Some(Note::NonFirstFragment));
    assert_eq!((f.proto, f.srcport, f.dstport), (17, 0, 0));
    assert_eq!((f.id, f.flag, f.off), (0x0c0d, 0, 185));
}

#[test]
fn icmpv6_esp_and_no_next_header_end_the_walk_without_ports() {
    for next in [58u8, 50, 59, 51] {
        let (f, note) = record(decode(linktype::RAW, &ipv6(next, &[0x80, 0, 0, 0, 0, 0])));
        assert_eq!((f.proto, f.srcport, f.dstport, note), (next, 0, 0, None));
    }
}

#[test]
fn cut_headers_are_skipped_or_noted_by_reason() {
    assert_eq!(
        decode(linktype::RAW, &ipv6(6, &[])[..39]),
        Decoded::Skipped(Skip::Ipv6HeaderTruncated)
    );
    // A hop-by-hop header claiming 16 bytes, 8 captured.
    let p = ipv6(0, &ext(6, 2)[..8]);
    assert_eq!(
        decode(linktype::RAW, &p),
        Decoded::Skipped(Skip::Ipv6ExtensionTruncated)
    );
    // Captured in full but beyond the payload length (Ethernet padding is no header).
    let mut p = ipv6(0, &[]);
    p.extend(ext(6, 1));
    assert_eq!(
        decode(linktype::RAW, &p),
        Decoded::Skipped(Skip::Ipv6ExtensionTruncated)
    );
    // A fragment header cut in the middle.
    assert_eq!(
        decode(linktype::RAW, &ipv6(44, &[17, 0, 0])),
        Decoded::Skipped(Skip::Ipv6ExtensionTruncated)
    );
    // TCP cut after the ports (header-only capture): ports kept.
    let (f, note) = record(decode(linktype::RAW, &ipv6(6, &ports(80, 8080, 4))));
    assert_eq!(
        (f.srcport, f.dstport, note),
        (80, 8080, Some(Note::L4HeaderPartial))
    );
    let (_, note) = record(decode(linktype::RAW, &ipv6(17, &[0, 80])));
    assert_eq!(note, Some(Note::L4HeaderMissing));
    // The link says IPv6, the version nibble does not.
    let mut p = ipv6(6, &ports(1, 2, 20));
    p[0] = 0x45;
    assert_eq!(
        decode(linktype::IPV6, &p),
        Decoded::Skipped(Skip::BadIpVersion)
    );
}

#[test]
fn every_link_layer_that_announces_ipv6_reaches_the_decoder() {
    let ip = ipv6(17, &ports(1000, 53, 8));
    let mut eth = vec![0u8; 12];
    eth.extend([0x81, 0x00, 0, 5, 0x86, 0xdd]);
    eth.extend(&ip);
    let mut sll = vec![0u8; 14];
    sll.extend([0x86, 0xdd]);
    sll.extend(&ip);
    let mut null_le = 30u32.to_le_bytes().to_vec();
    null_le.extend(&ip);
    let mut lo = 24u32.to_be_bytes().to_vec();
    lo.extend(&ip);
    for (lt, frame) in [
        (linktype::ETHERNET, eth),
        (linktype::LINUX_SLL, sll),
        (linktype::NULL, null_le),
        (linktype::LOOP, lo),
        (linktype::RAW, ip.clone()),
        (linktype::IPV6, ip.clone()),
    ] {
        let (f, _) = record(decode(lt, &frame));
        assert_eq!(
            (f.srcport, f.dstport, f.proto),
            (1000, 53, 17),
            "link type {lt}"
        );
        assert!(f.srcip.is_ipv6(), "link type {lt}");
    }
}

#[test]
fn no_prefix_of_an_ipv6_frame_panics() {
    let mut payload = ext(44, 1);
    payload.extend([6, 0, 0, 1, 0, 0, 0, 9]);
    payload.extend(ports(1, 2, 20));
    let p = ipv6(0, &payload);
    for n in 0..=p.len() {
        let _ = decode(linktype::RAW, &p[..n]);
        let mut q = p[..n].to_vec();
        if q.len() > 41 {
            q[41] = 0xff;
        }
        let _ = decode(linktype::RAW, &q);
    }
}
