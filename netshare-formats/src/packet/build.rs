//! Packet records to wire bytes: an Ethernet (or raw IP) frame with a valid IPv4 header and a
//! TCP, UDP or ICMP header whose checksums verify, built with pnet_packet's mutable packets.
//!
//! A packet record holds only the fields NetShare models (SPEC §1); the rest of each header is
//! filled deterministically: fixed locally-administered MAC addresses, TCP sequence numbers that
//! advance by the payload length per direction (starting from a hash of the five-tuple, so two
//! runs agree), ACK set with the peer direction's next sequence number, window 65535, ICMP echo
//! requests, IGMP membership queries, an empty IPsec AH, and for IP-in-IP an inner IPv4 or IPv6 header carrying "no
//! next header", so dissectors find what the protocol number promises. The payload is zero-filled to the generated IP total length; with
//! [`PacketOptions::headers_only`] only the headers are captured and the wire length is kept,
//! as in header-only traces such as CAIDA's.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use netshare_core::records::PacketRecord;
use pnet_packet::MutablePacket;
use pnet_packet::ethernet::{EtherTypes, MutableEthernetPacket};
use pnet_packet::icmp::{self, IcmpCode, IcmpTypes, MutableIcmpPacket};
use pnet_packet::ip::IpNextHeaderProtocol;
use pnet_packet::ipv4::{self, MutableIpv4Packet};
use pnet_packet::tcp::{self, MutableTcpPacket, TcpFlags};
use pnet_packet::udp::{self, MutableUdpPacket};
use serde::{Deserialize, Serialize};

/// IANA protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// IANA protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IANA protocol number of UDP.
pub const PROTO_UDP: u8 = 17;
/// IANA protocol number of IGMP.
pub const PROTO_IGMP: u8 = 2;
/// IANA protocol number of IPv4-in-IPv4.
pub const PROTO_IPIP: u8 = 4;
/// IANA protocol number of IPv6-in-IPv4.
pub const PROTO_IPV6: u8 = 41;
/// IANA protocol number of the IPsec Authentication Header.
pub const PROTO_AH: u8 = 51;

/// Length of an IPv4 header without options.
pub const IPV4_HEADER: usize = 20;
/// Length of a TCP header without options.
pub const TCP_HEADER: usize = 20;
/// Length of a UDP header.
pub const UDP_HEADER: usize = 8;
/// Length of an ICMP echo header.
pub const ICMP_HEADER: usize = 8;
/// Length of an IGMP message.
pub const IGMP_HEADER: usize = 8;
/// Length of an IPv6 header.
pub const IPV6_HEADER: usize = 40;
/// Length of an Authentication Header without integrity check value.
pub const AH_HEADER: usize = 12;
/// Length of an Ethernet II header.
pub const ETHERNET_HEADER: usize = 14;

/// Source MAC of Ethernet frames (locally administered, so it names no real vendor).
pub const SRC_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
/// Destination MAC of Ethernet frames.
pub const DST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];

/// The link layer of written packets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LinkType {
    /// Ethernet II frames with fixed MAC addresses (LINKTYPE_ETHERNET, 1).
    #[default]
    Ethernet,
    /// Bare IPv4 packets (LINKTYPE_RAW, 101), as CAIDA traces are.
    Raw,
}

impl LinkType {
    /// The pcap / pcapng link-type number.
    pub fn linktype(self) -> u16 {
        match self {
            // Both numbers fit the 16 bits pcapng's interface block gives them.
            LinkType::Ethernet => crate::linktype::ETHERNET as u16,
            LinkType::Raw => crate::linktype::RAW as u16,
        }
    }

    /// Bytes of link header before the IP header.
    pub fn header_len(self) -> usize {
        match self {
            LinkType::Ethernet => ETHERNET_HEADER,
            LinkType::Raw => 0,
        }
    }
}

/// How packets are framed and how much of each is captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PacketOptions {
    /// Link layer.
    pub link: LinkType,
    /// Largest number of bytes captured per packet (the pcap snaplen); longer packets are cut
    /// and keep their wire length.
    pub snaplen: u32,
    /// Capture only the link, IP and transport headers; the wire length stays the full one.
    pub headers_only: bool,
}

impl Default for PacketOptions {
    fn default() -> Self {
        PacketOptions {
            link: LinkType::Ethernet,
            snaplen: 65_535,
            headers_only: false,
        }
    }
}

/// Counts of adjustments made while building packets (each packet counts at most once per
/// reason).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketStats {
    /// Packets built.
    pub packets: u64,
    /// Packets whose IP total length was smaller than their headers and was raised to fit them.
    pub pkt_len_raised: u64,
    /// Non-first fragments (offset > 0): no transport header, ports not written.
    pub fragments_without_l4: u64,
    /// Packets of protocols we build no header for (all but TCP, UDP, ICMP, IGMP, IPIP,
    /// IPv6, AH): zero payload after the IP header, which some dissectors (SCTP, VRRP, ICMPv6
    /// over IPv4) flag as malformed.
    pub other_protocol: u64,
    /// Packets captured shorter than their wire length (snaplen or header-only).
    pub truncated: u64,
}

impl PacketStats {
    /// Adds another set of counts.
    pub fn add(&mut self, o: &PacketStats) {
        self.packets += o.packets;
        self.pkt_len_raised += o.pkt_len_raised;
        self.fragments_without_l4 += o.fragments_without_l4;
        self.other_protocol += o.other_protocol;
        self.truncated += o.truncated;
    }
}

/// One built packet: the captured bytes are in the builder's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Built {
    /// Bytes captured (what goes into the file).
    pub captured: usize,
    /// Bytes on the wire (link header + IP total length).
    pub wire: usize,
}

/// Builds packets one at a time into a reused buffer.
#[derive(Debug)]
pub struct PacketBuilder {
    opts: PacketOptions,
    buf: Vec<u8>,
    /// Next TCP sequence number per direction (src, dst, sport, dport).
    next_seq: HashMap<(u32, u32, u16, u16), u32>,
    stats: PacketStats,
}

/// The transport header a record gets, if any.
fn l4_header_len(proto: u8, off: u16) -> usize {
    if off != 0 {
        return 0;
    }
    match proto {
        PROTO_TCP => TCP_HEADER,
        PROTO_UDP => UDP_HEADER,
        PROTO_ICMP => ICMP_HEADER,
        PROTO_IGMP => IGMP_HEADER,
        PROTO_IPIP => IPV4_HEADER,
        PROTO_IPV6 => IPV6_HEADER,
        PROTO_AH => AH_HEADER,
        _ => 0,
    }
}

/// Protocols whose header [`PacketBuilder`] writes.
fn has_header(proto: u8) -> bool {
    matches!(
        proto,
        PROTO_TCP | PROTO_UDP | PROTO_ICMP | PROTO_IGMP | PROTO_IPIP | PROTO_IPV6 | PROTO_AH
    )
}

/// Writes a minimal IPv4 header (no options, "no next header" inside) with a valid checksum.
fn write_ipv4_header(buf: &mut [u8], total: usize, src: Ipv4Addr, dst: Ipv4Addr, proto: u8) {
    let mut ip = MutableIpv4Packet::new(buf).expect("the buffer holds an IPv4 header");
    ip.set_version(4);
    ip.set_header_length((IPV4_HEADER / 4) as u8);
    ip.set_total_length(total as u16);
    ip.set_ttl(64);
    ip.set_next_level_protocol(IpNextHeaderProtocol::new(proto));
    ip.set_source(src);
    ip.set_destination(dst);
    let c = ipv4::checksum(&ip.to_immutable());
    ip.set_checksum(c);
}

/// A deterministic initial sequence number for one direction of a TCP connection.
fn initial_seq(key: (u32, u32, u16, u16)) -> u32 {
    // splitmix64 over the packed tuple: stable across runs and platforms.
    let z = (u64::from(key.0) << 32 | u64::from(key.1))
        ^ (u64::from(key.2) << 16 | u64::from(key.3)).wrapping_mul(netshare_core::seed::GOLDEN);
    netshare_core::seed::mix64(z) as u32
}

impl PacketBuilder {
    /// A builder with the given options.
    pub fn new(opts: PacketOptions) -> Self {
        PacketBuilder {
            opts,
            buf: Vec::with_capacity(2048),
            next_seq: HashMap::new(),
            stats: PacketStats::default(),
        }
    }

    /// The options in use.
    pub fn options(&self) -> &PacketOptions {
        &self.opts
    }

    /// Counts so far.
    pub fn stats(&self) -> &PacketStats {
        &self.stats
    }

    /// The captured bytes of the last built packet.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Builds the packet for one record; its captured bytes are then in [`Self::bytes`].
    pub fn build(&mut self, r: &PacketRecord) -> Built {
        let link = self.opts.link.header_len();
        let flag = r.flag & 0x7;
        let off = r.off & 0x1fff;
        let l4 = l4_header_len(r.proto, off);
        let min_total = IPV4_HEADER + l4;
        let mut total = usize::from(r.pkt_len);
        if total < min_total {
            total = min_total;
            self.stats.pkt_len_raised += 1;
        }
        if off != 0 && has_header(r.proto) {
            self.stats.fragments_without_l4 += 1;
        }
        if !has_header(r.proto) {
            self.stats.other_protocol += 1;
        }
        let wire = link + total;
        self.buf.clear();
        self.buf.resize(wire, 0);

        if self.opts.link == LinkType::Ethernet {
            let mut eth = MutableEthernetPacket::new(&mut self.buf[..ETHERNET_HEADER])
                .expect("the buffer holds an Ethernet header");
            eth.set_destination(DST_MAC.into());
            eth.set_source(SRC_MAC.into());
            eth.set_ethertype(EtherTypes::Ipv4);
        }
        let src = Ipv4Addr::from(r.srcip);
        let dst = Ipv4Addr::from(r.dstip);
        {
            let ip_bytes = &mut self.buf[link..];
            let (ip_hdr, l4_bytes) = ip_bytes.split_at_mut(IPV4_HEADER);
            match (r.proto, l4) {
                (PROTO_TCP, TCP_HEADER) => {
                    let key = (r.srcip, r.dstip, r.srcport, r.dstport);
                    let payload = (total - IPV4_HEADER - TCP_HEADER) as u32;
                    let seq = *self.next_seq.entry(key).or_insert_with(|| initial_seq(key));
                    self.next_seq.insert(key, seq.wrapping_add(payload));
                    let rev = (r.dstip, r.srcip, r.dstport, r.srcport);
                    let ack = self
                        .next_seq
                        .get(&rev)
                        .copied()
                        .unwrap_or_else(|| initial_seq(rev));
                    let mut t =
                        MutableTcpPacket::new(l4_bytes).expect("the buffer holds a TCP header");
                    t.set_source(r.srcport);
                    t.set_destination(r.dstport);
                    t.set_sequence(seq);
                    t.set_acknowledgement(ack);
                    t.set_data_offset((TCP_HEADER / 4) as u8);
                    t.set_flags(if payload > 0 {
                        TcpFlags::ACK | TcpFlags::PSH
                    } else {
                        TcpFlags::ACK
                    });
                    t.set_window(65_535);
                    let c = tcp::ipv4_checksum(&t.to_immutable(), &src, &dst);
                    t.set_checksum(c);
                }
                (PROTO_UDP, UDP_HEADER) => {
                    let mut u =
                        MutableUdpPacket::new(l4_bytes).expect("the buffer holds a UDP header");
                    u.set_source(r.srcport);
                    u.set_destination(r.dstport);
                    u.set_length((total - IPV4_HEADER) as u16);
                    let c = udp::ipv4_checksum(&u.to_immutable(), &src, &dst);
                    // RFC 768: a computed zero is sent as all ones (zero means "no checksum").
                    u.set_checksum(if c == 0 { 0xffff } else { c });
                }
                (PROTO_ICMP, ICMP_HEADER) => {
                    let mut m =
                        MutableIcmpPacket::new(l4_bytes).expect("the buffer holds an ICMP header");
                    m.set_icmp_type(IcmpTypes::EchoRequest);
                    m.set_icmp_code(IcmpCode::new(0));
                    // Identifier and sequence: the id field echoes the IP id so repeats differ.
                    let payload = m.payload_mut();
                    payload[..2].copy_from_slice(&r.srcport.to_be_bytes());
                    payload[2..4].copy_from_slice(&r.id.to_be_bytes());
                    let c = icmp::checksum(&m.to_immutable());
                    m.set_checksum(c);
                }
                (PROTO_IGMP, IGMP_HEADER) => {
                    // A general membership query; the checksum covers the whole message.
                    l4_bytes[0] = 0x11;
                    let c = pnet_packet::util::checksum(l4_bytes, 1);
                    l4_bytes[2..4].copy_from_slice(&c.to_be_bytes());
                }
                (PROTO_IPIP, IPV4_HEADER) => {
                    let inner = total - IPV4_HEADER;
                    write_ipv4_header(l4_bytes, inner, src, dst, 59);
                }
                (PROTO_IPV6, IPV6_HEADER) => {
                    // Version 6, payload length, next header 59 ("no next header"), hop
                    // limit 64, unspecified addresses.
                    let payload = (total - IPV4_HEADER - IPV6_HEADER) as u16;
                    l4_bytes[0] = 0x60;
                    l4_bytes[4..6].copy_from_slice(&payload.to_be_bytes());
                    l4_bytes[6] = 59;
                    l4_bytes[7] = 64;
                }
                (PROTO_AH, AH_HEADER) => {
                    // Next header 59 ("no next header"), length 1 (three words: no ICV).
                    l4_bytes[0] = 59;
                    l4_bytes[1] = 1;
                }
                _ => {}
            }
            let mut ip = MutableIpv4Packet::new(ip_hdr).expect("the buffer holds an IPv4 header");
            ip.set_version(4);
            ip.set_header_length((IPV4_HEADER / 4) as u8);
            ip.set_dscp(r.tos >> 2);
            ip.set_ecn(r.tos & 0x3);
            ip.set_total_length(total as u16);
            ip.set_identification(r.id);
            ip.set_flags(flag);
            ip.set_fragment_offset(off);
            ip.set_ttl(r.ttl);
            ip.set_next_level_protocol(IpNextHeaderProtocol::new(r.proto));
            ip.set_source(src);
            ip.set_destination(dst);
            let c = ipv4::checksum(&ip.to_immutable());
            ip.set_checksum(c);
        }

        let mut captured = wire;
        if self.opts.headers_only {
            captured = captured.min(link + IPV4_HEADER + l4);
        }
        captured = captured.min(self.opts.snaplen as usize);
        if captured < wire {
            self.stats.truncated += 1;
            self.buf.truncate(captured);
        }
        self.stats.packets += 1;
        Built { captured, wire }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pnet_packet::Packet;
    use pnet_packet::ipv4::Ipv4Packet;
    use pnet_packet::tcp::TcpPacket;
    use pnet_packet::udp::UdpPacket;

    fn rec(proto: u8, pkt_len: u16) -> PacketRecord {
        PacketRecord {
            srcip: 0x0a00_0001,
            dstip: 0xc0a8_0102,
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
}
