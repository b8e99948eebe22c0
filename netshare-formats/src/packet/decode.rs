//! Link-layer, IPv4 and IPv6 decoding of one frame into one packet record, with the reason
//! when a frame gives no record.
//!
//! IPv4, IPv6 and the TCP/UDP port fields are read through `pnet_packet` views. IPv6 extension
//! headers (hop-by-hop, routing, fragment, destination options, mobility, HIP, shim6) are
//! walked to the upper-layer protocol, which is the record's `proto`; AH and ESP end the walk
//! as they end IPv4's (their number is the protocol, as in an IPv4 record). A fragment header
//! gives the record's `id` (low 16 bits), `flag` (1 = more fragments) and `off`.
//! One case is read by hand: a TCP or UDP header cut by the snap length but still holding its
//! first four bytes (the ports). pnet's views refuse headers shorter than their minimum size,
//! yet header-only captures such as CAIDA's routinely stop there, and their ports are real data.

use std::net::IpAddr;

use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::ipv6::Ipv6Packet;
use pnet_packet::tcp::TcpPacket;
use pnet_packet::udp::UdpPacket;

use crate::linktype;

/// Why a frame gave no record (the keys of the report's `skipped` map).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Skip {
    /// The capture's link type is not one this reader understands.
    UnsupportedLinkType,
    /// The frame is shorter than its link-layer header.
    LinkHeaderTruncated,
    /// Fewer than 40 bytes of IPv6 header were captured.
    Ipv6HeaderTruncated,
    /// An IPv6 extension header runs past the captured bytes, so the upper-layer protocol is
    /// unknown.
    Ipv6ExtensionTruncated,
    /// A frame that carries neither IPv4 nor IPv6 (ARP, LLC, LLDP, ...).
    NotIp,
    /// Fewer than 20 bytes of IPv4 header were captured.
    Ipv4HeaderTruncated,
    /// The IP version nibble is neither 4 nor 6 where IP was announced.
    BadIpVersion,
    /// The IPv4 header length field is below 5 words or beyond the captured bytes.
    BadIpv4HeaderLength,
}

impl Skip {
    /// The reason's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Skip::UnsupportedLinkType => "unsupported_link_type",
            Skip::LinkHeaderTruncated => "link_header_truncated",
            Skip::Ipv6HeaderTruncated => "ipv6_header_truncated",
            Skip::Ipv6ExtensionTruncated => "ipv6_extension_header_truncated",
            Skip::NotIp => "not_ip",
            Skip::Ipv4HeaderTruncated => "ipv4_header_truncated",
            Skip::BadIpVersion => "bad_ip_version",
            Skip::BadIpv4HeaderLength => "bad_ipv4_header_length",
        }
    }

    /// Every reason, in report order.
    pub const ALL: [Skip; 8] = [
        Skip::UnsupportedLinkType,
        Skip::LinkHeaderTruncated,
        Skip::Ipv6HeaderTruncated,
        Skip::Ipv6ExtensionTruncated,
        Skip::NotIp,
        Skip::Ipv4HeaderTruncated,
        Skip::BadIpVersion,
        Skip::BadIpv4HeaderLength,
    ];
}

/// Something noteworthy about a record that was kept (the keys of the report's `notes` map).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Note {
    /// TCP/UDP whose ports were not captured (snap length): ports recorded as 0.
    L4HeaderMissing,
    /// TCP/UDP header cut short after the ports: ports kept.
    L4HeaderPartial,
    /// A non-first fragment: ports recorded as 0.
    NonFirstFragment,
    /// IPv4 total length below the header length (e.g. TSO captures); kept as read.
    TotalLengthBelowHeader,
}

impl Note {
    /// The note's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Note::L4HeaderMissing => "l4_header_missing_ports_zero",
            Note::L4HeaderPartial => "l4_header_partial_ports_kept",
            Note::NonFirstFragment => "non_first_fragment_ports_zero",
            Note::TotalLengthBelowHeader => "ipv4_total_length_below_header",
        }
    }

    /// Every note, in report order.
    pub const ALL: [Note; 4] = [
        Note::L4HeaderMissing,
        Note::L4HeaderPartial,
        Note::NonFirstFragment,
        Note::TotalLengthBelowHeader,
    ];
}

/// The fields of one IP packet record (time is added by the caller).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpFields {
    /// Source address.
    pub srcip: IpAddr,
    /// Destination address.
    pub dstip: IpAddr,
    /// Source port (0 when absent).
    pub srcport: u16,
    /// Destination port (0 when absent).
    pub dstport: u16,
    /// IP protocol.
    pub proto: u8,
    /// IP total length (IPv6: 40 + payload length).
    pub pkt_len: u16,
    /// Type of service (IPv6: traffic class).
    pub tos: u8,
    /// Identification (IPv6: low 16 bits of a fragment header's, else 0).
    pub id: u16,
    /// `frag_off >> 13` (IPv6: a fragment header's M bit).
    pub flag: u8,
    /// `frag_off & 0x1fff` (IPv6: a fragment header's offset).
    pub off: u16,
    /// Time to live (IPv6: hop limit).
    pub ttl: u8,
}

/// What one frame decodes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// An IPv4 or IPv6 record, with an optional note.
    Ip(IpFields, Option<Note>),
    /// No record, for this reason.
    Skipped(Skip),
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Where the network layer starts and what it is, per the link header.
enum L3<'a> {
    V4(&'a [u8]),
    /// Raw IP: decide by the version nibble.
    ByVersion(&'a [u8]),
    V6(&'a [u8]),
    Other,
}

fn by_ethertype(ethertype: u16, rest: &[u8]) -> L3<'_> {
    match ethertype {
        ETH_IPV4 => L3::V4(rest),
        ETH_IPV6 => L3::V6(rest),
        _ => L3::Other,
    }
}

/// BSD address family values that mean IPv6 (Linux, NetBSD/OpenBSD, FreeBSD, Darwin).
fn af_is_ipv6(af: u32) -> bool {
    matches!(af, 10 | 24 | 28 | 30)
}

fn link<'a>(linktype: u32, d: &'a [u8]) -> Result<L3<'a>, Skip> {
    use linktype::*;
    match linktype {
        ETHERNET => {
            let mut at = 12;
            let mut et = be16(d, at).ok_or(Skip::LinkHeaderTruncated)?;
            // 802.1Q, 802.1ad and the old QinQ tag: any depth.
            while matches!(et, 0x8100 | 0x88a8 | 0x9100 | 0x9200) {
                at += 4;
                et = be16(d, at).ok_or(Skip::LinkHeaderTruncated)?;
            }
            Ok(by_ethertype(et, &d[at + 2..]))
        }
        RAW | RAW_12 | RAW_14 => Ok(L3::ByVersion(d)),
        IPV4 => Ok(L3::V4(d)),
        IPV6 => Ok(L3::V6(d)),
        LINUX_SLL => {
            let et = be16(d, 14).ok_or(Skip::LinkHeaderTruncated)?;
            Ok(by_ethertype(et, &d[16..]))
        }
        LINUX_SLL2 => {
            let et = be16(d, 0).ok_or(Skip::LinkHeaderTruncated)?;
            if d.len() < 20 {
                return Err(Skip::LinkHeaderTruncated);
            }
            Ok(by_ethertype(et, &d[20..]))
        }
        NULL | LOOP => {
            let h: [u8; 4] = d
                .get(..4)
                .and_then(|h| h.try_into().ok())
                .ok_or(Skip::LinkHeaderTruncated)?;
            let af = if linktype == LOOP {
                u32::from_be_bytes(h)
            } else if h[0] == 0 && h[1] == 0 {
                // NULL is in the capturing host's order; family values are small, so the
                // non-zero end tells the order.
                u32::from_be_bytes(h)
            } else {
                u32::from_le_bytes(h)
            };
            Ok(match af {
                2 => L3::V4(&d[4..]),
                a if af_is_ipv6(a) => L3::V6(&d[4..]),
                _ => L3::Other,
            })
        }
        _ => Err(Skip::UnsupportedLinkType),
    }
}

/// True when this reader knows the link type.
pub fn link_type_supported(linktype: u32) -> bool {
    use linktype::*;
    matches!(
        linktype,
        ETHERNET | RAW | RAW_12 | RAW_14 | IPV4 | IPV6 | LINUX_SLL | LINUX_SLL2 | NULL | LOOP
    )
}

/// Decodes one frame.
pub fn decode(linktype: u32, data: &[u8]) -> Decoded {
    let ip = match link(linktype, data) {
        Err(s) => return Decoded::Skipped(s),
        Ok(L3::V6(ip)) => return ipv6(ip),
        Ok(L3::Other) => return Decoded::Skipped(Skip::NotIp),
        Ok(L3::V4(ip)) => ip,
        Ok(L3::ByVersion(ip)) => match ip.first().map(|b| b >> 4) {
            Some(4) => ip,
            Some(6) => return ipv6(ip),
            Some(_) => return Decoded::Skipped(Skip::BadIpVersion),
            None => return Decoded::Skipped(Skip::Ipv4HeaderTruncated),
        },
    };
    ipv4(ip)
}

/// Decodes an IPv4 header (and the ports after it) from the start of `ip`.
pub fn ipv4(ip: &[u8]) -> Decoded {
    let Some(v4) = Ipv4Packet::new(ip) else {
        return Decoded::Skipped(Skip::Ipv4HeaderTruncated);
    };
    match v4.get_version() {
        4 => {}
        6 => return ipv6(ip),
        _ => return Decoded::Skipped(Skip::BadIpVersion),
    }
    let ihl = v4.get_header_length() as usize * 4;
    if ihl < 20 || ihl > ip.len() {
        return Decoded::Skipped(Skip::BadIpv4HeaderLength);
    }
    let total = v4.get_total_length();
    let flags = v4.get_flags();
    let off = v4.get_fragment_offset();
    let proto = v4.get_next_level_protocol().0;
    let mut f = IpFields {
        srcip: IpAddr::V4(v4.get_source()),
        dstip: IpAddr::V4(v4.get_destination()),
        srcport: 0,
        dstport: 0,
        proto,
        pkt_len: total,
        tos: (v4.get_dscp() << 2) | v4.get_ecn(),
        id: v4.get_identification(),
        flag: flags,
        off,
        ttl: v4.get_ttl(),
    };
    let mut note = None;
    if (total as usize) < ihl {
        note = Some(Note::TotalLengthBelowHeader);
    }
    if proto == 6 || proto == 17 {
        if off != 0 {
            return Decoded::Ip(f, Some(Note::NonFirstFragment));
        }
        // Ethernet padding after a short packet is not L4 header: stop at the IP length.
        let end = if (total as usize) >= ihl {
            ip.len().min(total as usize)
        } else {
            ip.len()
        };
        if let Some(n) = read_ports(&mut f, &ip[ihl..end]) {
            note = Some(n);
        }
    }
    Decoded::Ip(f, note)
}

/// Fills the ports of a TCP or UDP record from its transport bytes; the note says when they
/// were cut short.
fn read_ports(f: &mut IpFields, l4: &[u8]) -> Option<Note> {
    let full = if f.proto == 6 {
        TcpPacket::new(l4).map(|t| (t.get_source(), t.get_destination()))
    } else {
        UdpPacket::new(l4).map(|u| (u.get_source(), u.get_destination()))
    };
    match full {
        Some((s, d)) => {
            f.srcport = s;
            f.dstport = d;
            None
        }
        None if l4.len() >= 4 => {
            f.srcport = u16::from_be_bytes([l4[0], l4[1]]);
            f.dstport = u16::from_be_bytes([l4[2], l4[3]]);
            Some(Note::L4HeaderPartial)
        }
        None => Some(Note::L4HeaderMissing),
    }
}

/// IPv6 extension headers with the generic layout (next header, length in 8-byte units beyond
/// the first 8): hop-by-hop, routing, destination options, mobility, HIP, shim6.
fn is_generic_extension(nh: u8) -> bool {
    matches!(nh, 0 | 43 | 60 | 135 | 139 | 140)
}

/// IPv6 extension header number of the fragment header.
const IPV6_FRAGMENT: u8 = 44;

/// Decodes an IPv6 header, walks its extension headers and reads the ports after them.
pub fn ipv6(ip: &[u8]) -> Decoded {
    let Some(v6) = Ipv6Packet::new(ip) else {
        return Decoded::Skipped(Skip::Ipv6HeaderTruncated);
    };
    if v6.get_version() != 6 {
        return Decoded::Skipped(Skip::BadIpVersion);
    }
    const HEADER: usize = 40;
    let payload = usize::from(v6.get_payload_length());
    let mut f = IpFields {
        srcip: IpAddr::V6(v6.get_source()),
        dstip: IpAddr::V6(v6.get_destination()),
        srcport: 0,
        dstport: 0,
        proto: 0,
        // A jumbogram (payload length 0 with a hop-by-hop option) saturates, as u16 must.
        pkt_len: u16::try_from(HEADER + payload).unwrap_or(u16::MAX),
        tos: v6.get_traffic_class(),
        id: 0,
        flag: 0,
        off: 0,
        ttl: v6.get_hop_limit(),
    };
    // Ethernet padding after a short packet is not header: stop at the IPv6 length.
    let end = ip.len().min(HEADER + payload);
    let mut nh = v6.get_next_header().0;
    let mut at = HEADER;
    loop {
        if is_generic_extension(nh) {
            let (Some(&next), Some(&len)) = (ip.get(at), ip.get(at + 1)) else {
                return Decoded::Skipped(Skip::Ipv6ExtensionTruncated);
            };
            let size = 8 * (usize::from(len) + 1);
            if at + size > end {
                return Decoded::Skipped(Skip::Ipv6ExtensionTruncated);
            }
            nh = next;
            at += size;
        } else if nh == IPV6_FRAGMENT {
            let Some(h) = ip.get(at..at + 8).filter(|_| at + 8 <= end) else {
                return Decoded::Skipped(Skip::Ipv6ExtensionTruncated);
            };
            let off_m = u16::from_be_bytes([h[2], h[3]]);
            f.off = off_m >> 3;
            f.flag = (off_m & 1) as u8;
            // The record's id field is 16 bits wide; the low half of the 32 varies fastest.
            f.id = u16::from_be_bytes([h[6], h[7]]);
            nh = h[0];
            at += 8;
            if f.off != 0 {
                // Later fragments carry no further headers.
                f.proto = nh;
                let note = matches!(nh, 6 | 17).then_some(Note::NonFirstFragment);
                return Decoded::Ip(f, note);
            }
        } else {
            break;
        }
    }
    f.proto = nh;
    let mut note = None;
    if nh == 6 || nh == 17 {
        note = read_ports(&mut f, ip.get(at..end).unwrap_or(&[]));
    }
    Decoded::Ip(f, note)
}

#[cfg(test)]
mod tests_v6;

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_tcp(total: u16, frag: u16, l4: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x45, 0x10, 0, 0, 0x12, 0x34, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 192, 168, 1, 2,
        ];
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[6..8].copy_from_slice(&frag.to_be_bytes());
        p.extend_from_slice(l4);
        p
    }

    #[test]
    fn fields_follow_the_spec() {
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&443u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&51000u16.to_be_bytes());
        let p = ipv4_tcp(40, 0x4000, &tcp);
        let Decoded::Ip(f, note) = decode(linktype::RAW, &p) else {
            panic!("expected a record")
        };
        assert_eq!(note, None);
        assert_eq!(f.srcip, netshare_core::addr::v4(0x0a00_0001));
        assert_eq!(f.dstip, netshare_core::addr::v4(0xc0a8_0102));
        assert_eq!((f.srcport, f.dstport, f.proto), (443, 51000, 6));
        assert_eq!(
            (f.pkt_len, f.tos, f.id, f.flag, f.off, f.ttl),
            (40, 0x10, 0x1234, 2, 0, 64)
        );
    }

    #[test]
    fn cut_l4_headers_give_partial_or_zero_ports() {
        let p = ipv4_tcp(1500, 0, &[0, 80, 0x1f, 0x90, 1, 2]);
        assert!(matches!(
            decode(linktype::RAW, &p),
            Decoded::Ip(
                IpFields {
                    srcport: 80,
                    dstport: 8080,
                    ..
                },
                Some(Note::L4HeaderPartial)
            )
        ));
        let p = ipv4_tcp(1500, 0, &[0, 80]);
        assert!(matches!(
            decode(linktype::RAW, &p),
            Decoded::Ip(
                IpFields {
                    srcport: 0,
                    dstport: 0,
                    ..
                },
                Some(Note::L4HeaderMissing)
            )
        ));
        let p = ipv4_tcp(1500, 0x0010, &[0, 80, 0x1f, 0x90]);
        assert!(matches!(
            decode(linktype::RAW, &p),
            Decoded::Ip(IpFields { srcport: 0, .. }, Some(Note::NonFirstFragment))
        ));
    }

    #[test]
    fn short_and_foreign_frames_are_skipped_by_reason() {
        assert_eq!(
            decode(linktype::ETHERNET, &[0; 13]),
            Decoded::Skipped(Skip::LinkHeaderTruncated)
        );
        let mut arp = vec![0u8; 42];
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(
            decode(linktype::ETHERNET, &arp),
            Decoded::Skipped(Skip::NotIp)
        );
        assert_eq!(
            decode(linktype::RAW, &[0x60; 39]),
            Decoded::Skipped(Skip::Ipv6HeaderTruncated)
        );
        assert_eq!(
            decode(linktype::RAW, &[0x45; 10]),
            Decoded::Skipped(Skip::Ipv4HeaderTruncated)
        );
        assert_eq!(
            decode(linktype::RAW, &[0x46; 20]),
            Decoded::Skipped(Skip::BadIpv4HeaderLength)
        );
        assert_eq!(
            decode(147, &[0; 40]),
            Decoded::Skipped(Skip::UnsupportedLinkType)
        );
    }
}
