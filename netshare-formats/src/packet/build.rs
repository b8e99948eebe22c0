//! Packet records to wire bytes: an Ethernet (or raw IP) frame with a valid IPv4 or IPv6 header
//! and a TCP, UDP, ICMP or ICMPv6 header whose checksums verify (over the pseudo-header of the
//! record's family), built with pnet_packet's mutable packets.
//!
//! A packet record holds only the fields NetShare models (SPEC §1); the rest of each header is
//! filled deterministically: fixed locally-administered MAC addresses, TCP sequence numbers that
//! advance by the payload length per direction (starting from a hash of the five-tuple, so two
//! runs agree), ACK set with the peer direction's next sequence number, window 65535, ICMP echo
//! requests, IGMP membership queries, an empty IPsec AH, and for IP-in-IP an inner IPv4 or IPv6 header carrying "no
//! next header", so dissectors find what the protocol number promises; TCP segments of port 53 carry
//! a DNS-over-TCP length prefix. The payload is zero-filled to the generated IP total length; with
//! [`PacketOptions::headers_only`] only the headers are captured and the wire length is kept,
//! as in header-only traces such as CAIDA's.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netshare_core::records::PacketRecord;
use pnet_packet::MutablePacket;
use pnet_packet::ethernet::{EtherTypes, MutableEthernetPacket};
use pnet_packet::icmp::{self, IcmpCode, IcmpTypes, MutableIcmpPacket};
use pnet_packet::icmpv6::{self, Icmpv6Code, Icmpv6Types, MutableIcmpv6Packet};
use pnet_packet::ip::IpNextHeaderProtocol;
use pnet_packet::ipv4::{self, MutableIpv4Packet};
use pnet_packet::ipv6::MutableIpv6Packet;
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
/// IANA protocol number of ICMPv6.
pub const PROTO_ICMPV6: u8 = 58;
/// IPv6 next-header number of the fragment header.
pub const IPV6_FRAGMENT: u8 = 44;

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
/// Length of an IPv6 fragment header.
pub const IPV6_FRAGMENT_HEADER: usize = 8;
/// Length of an ICMPv6 echo header.
pub const ICMPV6_HEADER: usize = 8;
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
    /// Bare IP packets (LINKTYPE_RAW, 101), as CAIDA traces are.
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
    /// IPv6, AH, and ICMPv6 under IPv6): zero payload after the IP header, which some
    /// dissectors (SCTP, VRRP, ICMPv6 over IPv4) flag as malformed.
    pub other_protocol: u64,
    /// Packets captured shorter than their wire length (snaplen or header-only).
    pub truncated: u64,
    /// Records with one IPv4 and one IPv6 address: written as IPv6, the IPv4 one IPv4-mapped.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub mixed_family: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl PacketStats {
    /// Adds another set of counts.
    pub fn add(&mut self, o: &PacketStats) {
        self.packets += o.packets;
        self.pkt_len_raised += o.pkt_len_raised;
        self.fragments_without_l4 += o.fragments_without_l4;
        self.other_protocol += o.other_protocol;
        self.truncated += o.truncated;
        self.mixed_family += o.mixed_family;
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
    next_seq: HashMap<SeqKey, u32>,
    stats: PacketStats,
}

/// One direction of a TCP connection.
type SeqKey = (IpAddr, IpAddr, u16, u16);

/// The transport header a record gets, if any. ICMPv6 gets one under IPv6 only: over IPv4 it
/// is written as before IPv6 was carried, with a zero payload (an IPv4 trace's bytes do not
/// change).
fn l4_header_len(proto: u8, off: u16, v6: bool) -> usize {
    if off != 0 || (proto == PROTO_ICMPV6 && !v6) {
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
        PROTO_ICMPV6 => ICMPV6_HEADER,
        _ => 0,
    }
}

/// Protocols whose header [`PacketBuilder`] writes.
fn has_header(proto: u8, v6: bool) -> bool {
    matches!(
        proto,
        PROTO_TCP | PROTO_UDP | PROTO_ICMP | PROTO_IGMP | PROTO_IPIP | PROTO_IPV6 | PROTO_AH
    ) || (proto == PROTO_ICMPV6 && v6)
}

/// The addresses a packet is written with, which decide the IP header and the transport
/// checksum's pseudo-header.
#[derive(Clone, Copy)]
enum Addrs {
    V4(Ipv4Addr, Ipv4Addr),
    V6(Ipv6Addr, Ipv6Addr),
}

impl Addrs {
    /// The record's addresses; with one of each family, both as IPv6 (and true).
    fn of(r: &PacketRecord) -> (Addrs, bool) {
        let six = |a: IpAddr| match a {
            IpAddr::V4(v) => v.to_ipv6_mapped(),
            IpAddr::V6(v) => v,
        };
        match (r.srcip, r.dstip) {
            (IpAddr::V4(s), IpAddr::V4(d)) => (Addrs::V4(s, d), false),
            (IpAddr::V6(s), IpAddr::V6(d)) => (Addrs::V6(s, d), false),
            (s, d) => (Addrs::V6(six(s), six(d)), true),
        }
    }

    /// The inner IPv4 header's addresses for IP-in-IP: the outer ones, or none under IPv6.
    fn inner_v4(self) -> (Ipv4Addr, Ipv4Addr) {
        match self {
            Addrs::V4(s, d) => (s, d),
            Addrs::V6(..) => (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED),
        }
    }
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
fn initial_seq(key: SeqKey) -> u32 {
    use netshare_core::addr::key64;
    // splitmix64 over the packed tuple: stable across runs and platforms. An IPv4 address's
    // key is its 32-bit number, so the rotate-xor is the shift-or it has always been there.
    let z = (key64(key.0).rotate_left(32) ^ key64(key.1))
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
        let (addrs, mixed) = Addrs::of(r);
        if mixed {
            self.stats.mixed_family += 1;
        }
        let flag = r.flag & 0x7;
        let off = r.off & 0x1fff;
        let ip_header = match addrs {
            Addrs::V4(..) => IPV4_HEADER,
            Addrs::V6(..) if off != 0 || flag & 1 == 1 => IPV6_HEADER + IPV6_FRAGMENT_HEADER,
            Addrs::V6(..) => IPV6_HEADER,
        };
        let v6 = matches!(addrs, Addrs::V6(..));
        let l4 = l4_header_len(r.proto, off, v6);
        let min_total = ip_header + l4;
        let mut total = usize::from(r.pkt_len);
        if total < min_total {
            total = min_total;
            self.stats.pkt_len_raised += 1;
        }
        if off != 0 && has_header(r.proto, v6) {
            self.stats.fragments_without_l4 += 1;
        }
        if !has_header(r.proto, v6) {
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
            eth.set_ethertype(match addrs {
                Addrs::V4(..) => EtherTypes::Ipv4,
                Addrs::V6(..) => EtherTypes::Ipv6,
            });
        }
        {
            let ip_bytes = &mut self.buf[link..];
            let (ip_hdr, l4_bytes) = ip_bytes.split_at_mut(ip_header);
            let seq = &mut self.next_seq;
            write_transport(r, addrs, l4, total - ip_header, l4_bytes, seq);
            match addrs {
                Addrs::V4(src, dst) => {
                    let mut ip =
                        MutableIpv4Packet::new(ip_hdr).expect("the buffer holds an IPv4 header");
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
                Addrs::V6(src, dst) => {
                    let (fixed, frag) = ip_hdr.split_at_mut(IPV6_HEADER);
                    let mut ip =
                        MutableIpv6Packet::new(fixed).expect("the buffer holds an IPv6 header");
                    ip.set_version(6);
                    ip.set_traffic_class(r.tos);
                    ip.set_payload_length((total - IPV6_HEADER) as u16);
                    ip.set_hop_limit(r.ttl);
                    ip.set_source(src);
                    ip.set_destination(dst);
                    if frag.is_empty() {
                        ip.set_next_header(IpNextHeaderProtocol::new(r.proto));
                    } else {
                        ip.set_next_header(IpNextHeaderProtocol::new(IPV6_FRAGMENT));
                        frag[0] = r.proto;
                        frag[2..4]
                            .copy_from_slice(&((off << 3) | u16::from(flag & 1)).to_be_bytes());
                        frag[4..8].copy_from_slice(&u32::from(r.id).to_be_bytes());
                    }
                }
            }
        }

        let mut captured = wire;
        if self.opts.headers_only {
            captured = captured.min(link + ip_header + l4);
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

/// The DNS port: over TCP each message is preceded by its length (RFC 1035 §4.2.2).
const DNS_PORT: u16 = 53;
/// Bytes of a DNS header: a zero-filled one is a valid message with no records.
const DNS_HEADER: usize = 12;

/// Frames the zero payload of a TCP segment to or from port 53 as DNS over TCP, so dissectors
/// do not read a zero length prefix as an empty (malformed) message: a payload of at least 14
/// bytes holds one message, a zero DNS header followed by zeros; a shorter one starts a message
/// of the longest length (its rest never arrives, as in a capture cut mid-message).
fn frame_dns_over_tcp(r: &PacketRecord, payload: &mut [u8]) {
    if (r.srcport != DNS_PORT && r.dstport != DNS_PORT) || payload.len() < 2 {
        return;
    }
    let len = if payload.len() >= 2 + DNS_HEADER {
        u16::try_from(payload.len() - 2).unwrap_or(u16::MAX)
    } else {
        u16::MAX
    };
    payload[..2].copy_from_slice(&len.to_be_bytes());
}

/// Writes the transport header (`l4` bytes of it, none for a later fragment) at the start of
/// `l4_bytes`, the IP payload of `payload_len` bytes, with its checksum over the family's
/// pseudo-header.
fn write_transport(
    r: &PacketRecord,
    addrs: Addrs,
    l4: usize,
    payload_len: usize,
    l4_bytes: &mut [u8],
    next_seq: &mut HashMap<SeqKey, u32>,
) {
    match (r.proto, l4) {
        (PROTO_TCP, TCP_HEADER) => {
            let key = (r.srcip, r.dstip, r.srcport, r.dstport);
            let payload = (payload_len - TCP_HEADER) as u32;
            let seq = *next_seq.entry(key).or_insert_with(|| initial_seq(key));
            next_seq.insert(key, seq.wrapping_add(payload));
            let rev = (r.dstip, r.srcip, r.dstport, r.srcport);
            let ack = next_seq
                .get(&rev)
                .copied()
                .unwrap_or_else(|| initial_seq(rev));
            let mut t = MutableTcpPacket::new(l4_bytes).expect("the buffer holds a TCP header");
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
            frame_dns_over_tcp(r, t.payload_mut());
            let c = match addrs {
                Addrs::V4(s, d) => tcp::ipv4_checksum(&t.to_immutable(), &s, &d),
                Addrs::V6(s, d) => tcp::ipv6_checksum(&t.to_immutable(), &s, &d),
            };
            t.set_checksum(c);
        }
        (PROTO_UDP, UDP_HEADER) => {
            let mut u = MutableUdpPacket::new(l4_bytes).expect("the buffer holds a UDP header");
            u.set_source(r.srcport);
            u.set_destination(r.dstport);
            u.set_length(payload_len as u16);
            let c = match addrs {
                Addrs::V4(s, d) => udp::ipv4_checksum(&u.to_immutable(), &s, &d),
                Addrs::V6(s, d) => udp::ipv6_checksum(&u.to_immutable(), &s, &d),
            };
            // RFC 768 / RFC 8200 §8.1: a computed zero is sent as all ones (zero means "no
            // checksum", which IPv6 forbids).
            u.set_checksum(if c == 0 { 0xffff } else { c });
        }
        (PROTO_ICMP, ICMP_HEADER) => {
            let mut m = MutableIcmpPacket::new(l4_bytes).expect("the buffer holds an ICMP header");
            m.set_icmp_type(IcmpTypes::EchoRequest);
            m.set_icmp_code(IcmpCode::new(0));
            // Identifier and sequence: the id field echoes the IP id so repeats differ.
            let payload = m.payload_mut();
            payload[..2].copy_from_slice(&r.srcport.to_be_bytes());
            payload[2..4].copy_from_slice(&r.id.to_be_bytes());
            let c = icmp::checksum(&m.to_immutable());
            m.set_checksum(c);
        }
        (PROTO_ICMPV6, ICMPV6_HEADER) => {
            let mut m =
                MutableIcmpv6Packet::new(l4_bytes).expect("the buffer holds an ICMPv6 header");
            m.set_icmpv6_type(Icmpv6Types::EchoRequest);
            m.set_icmpv6_code(Icmpv6Code::new(0));
            let payload = m.payload_mut();
            payload[..2].copy_from_slice(&r.srcport.to_be_bytes());
            payload[2..4].copy_from_slice(&r.id.to_be_bytes());
            // ICMPv6's checksum covers the IPv6 pseudo-header (RFC 4443 §2.3). Under IPv4
            // `l4_header_len` gives no header, so this arm is not reached there.
            let (s, d) = match addrs {
                Addrs::V6(s, d) => (s, d),
                Addrs::V4(s, d) => (s.to_ipv6_mapped(), d.to_ipv6_mapped()),
            };
            let c = icmpv6::checksum(&m.to_immutable(), &s, &d);
            m.set_checksum(c);
        }
        (PROTO_IGMP, IGMP_HEADER) => {
            // A general membership query; the checksum covers the whole message.
            l4_bytes[0] = 0x11;
            let c = pnet_packet::util::checksum(l4_bytes, 1);
            l4_bytes[2..4].copy_from_slice(&c.to_be_bytes());
        }
        (PROTO_IPIP, IPV4_HEADER) => {
            let (s, d) = addrs.inner_v4();
            write_ipv4_header(l4_bytes, payload_len, s, d, 59);
        }
        (PROTO_IPV6, IPV6_HEADER) => {
            // Version 6, payload length, next header 59 ("no next header"), hop
            // limit 64, unspecified addresses.
            let payload = (payload_len - IPV6_HEADER) as u16;
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
}

#[cfg(test)]
mod tests;
