//! Link-layer and IPv4 decoding of one frame into one packet record, with the reason when a
//! frame gives no record.
//!
//! IPv4 and the TCP/UDP port fields are read through `pnet_packet` views. One case is read by
//! hand: a TCP or UDP header cut by the snap length but still holding its first four bytes
//! (the ports). pnet's views refuse headers shorter than their minimum size, yet header-only
//! captures such as CAIDA's routinely stop there, and their ports are real data.

use pnet_packet::ipv4::Ipv4Packet;
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
    /// An IPv6 packet (counted, not carried).
    Ipv6,
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
            Skip::Ipv6 => "ipv6",
            Skip::NotIp => "not_ip",
            Skip::Ipv4HeaderTruncated => "ipv4_header_truncated",
            Skip::BadIpVersion => "bad_ip_version",
            Skip::BadIpv4HeaderLength => "bad_ipv4_header_length",
        }
    }

    /// Every reason, in report order.
    pub const ALL: [Skip; 7] = [
        Skip::UnsupportedLinkType,
        Skip::LinkHeaderTruncated,
        Skip::Ipv6,
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

/// The fields of one IPv4 packet record (time is added by the caller).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ipv4Fields {
    /// Source address.
    pub srcip: u32,
    /// Destination address.
    pub dstip: u32,
    /// Source port (0 when absent).
    pub srcport: u16,
    /// Destination port (0 when absent).
    pub dstport: u16,
    /// IP protocol.
    pub proto: u8,
    /// IP total length.
    pub pkt_len: u16,
    /// Type of service.
    pub tos: u8,
    /// Identification.
    pub id: u16,
    /// `frag_off >> 13`.
    pub flag: u8,
    /// `frag_off & 0x1fff`.
    pub off: u16,
    /// Time to live.
    pub ttl: u8,
}

/// What one frame decodes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// An IPv4 record, with an optional note.
    Ipv4(Ipv4Fields, Option<Note>),
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
    V6,
    Other,
}

fn by_ethertype(ethertype: u16, rest: &[u8]) -> L3<'_> {
    match ethertype {
        ETH_IPV4 => L3::V4(rest),
        ETH_IPV6 => L3::V6,
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
        IPV6 => Ok(L3::V6),
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
                a if af_is_ipv6(a) => L3::V6,
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
        Ok(L3::V6) => return Decoded::Skipped(Skip::Ipv6),
        Ok(L3::Other) => return Decoded::Skipped(Skip::NotIp),
        Ok(L3::V4(ip)) => ip,
        Ok(L3::ByVersion(ip)) => match ip.first().map(|b| b >> 4) {
            Some(4) => ip,
            Some(6) => return Decoded::Skipped(Skip::Ipv6),
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
    if v4.get_version() != 4 {
        return Decoded::Skipped(if v4.get_version() == 6 {
            Skip::Ipv6
        } else {
            Skip::BadIpVersion
        });
    }
    let ihl = v4.get_header_length() as usize * 4;
    if ihl < 20 || ihl > ip.len() {
        return Decoded::Skipped(Skip::BadIpv4HeaderLength);
    }
    let total = v4.get_total_length();
    let flags = v4.get_flags();
    let off = v4.get_fragment_offset();
    let proto = v4.get_next_level_protocol().0;
    let mut f = Ipv4Fields {
        srcip: u32::from(v4.get_source()),
        dstip: u32::from(v4.get_destination()),
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
            return Decoded::Ipv4(f, Some(Note::NonFirstFragment));
        }
        // Ethernet padding after a short packet is not L4 header: stop at the IP length.
        let end = if (total as usize) >= ihl {
            ip.len().min(total as usize)
        } else {
            ip.len()
        };
        let l4 = &ip[ihl..end];
        let full = if proto == 6 {
            TcpPacket::new(l4).map(|t| (t.get_source(), t.get_destination()))
        } else {
            UdpPacket::new(l4).map(|u| (u.get_source(), u.get_destination()))
        };
        match full {
            Some((s, d)) => {
                f.srcport = s;
                f.dstport = d;
            }
            None if l4.len() >= 4 => {
                f.srcport = u16::from_be_bytes([l4[0], l4[1]]);
                f.dstport = u16::from_be_bytes([l4[2], l4[3]]);
                note = Some(Note::L4HeaderPartial);
            }
            None => note = Some(Note::L4HeaderMissing),
        }
    }
    Decoded::Ipv4(f, note)
}

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
        let Decoded::Ipv4(f, note) = decode(linktype::RAW, &p) else {
            panic!("expected a record")
        };
        assert_eq!(note, None);
        assert_eq!(f.srcip, 0x0a00_0001);
        assert_eq!(f.dstip, 0xc0a8_0102);
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
            Decoded::Ipv4(
                Ipv4Fields {
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
            Decoded::Ipv4(
                Ipv4Fields {
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
            Decoded::Ipv4(Ipv4Fields { srcport: 0, .. }, Some(Note::NonFirstFragment))
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
            decode(linktype::RAW, &[0x60; 40]),
            Decoded::Skipped(Skip::Ipv6)
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
