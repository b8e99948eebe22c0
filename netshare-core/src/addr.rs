//! The one address type of every crate (`std::net::IpAddr`, either family) and the few
//! conversions the record files, the encoder and the packet writer share.
//!
//! An address keeps its family: an IPv4 address is `IpAddr::V4`, never an IPv4-mapped IPv6 one,
//! so an all-IPv4 trace orders, compares and hashes its five-tuples as the 32-bit integers of
//! the first schema did. Where one 128-bit number must stand for either family (the `v2`
//! Parquet column, the encoder's bits), an IPv4 address is written IPv4-mapped
//! (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2) and the family travels beside it.

pub use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 address held as the 32-bit number of its four bytes (network order).
pub fn v4(bits: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(bits))
}

/// An IPv6 address held as the 128-bit number of its sixteen bytes (network order).
pub fn v6(bits: u128) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(bits))
}

/// The unspecified IPv4 address (the default of a record's address fields).
pub const UNSPECIFIED: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// The IP version of an address: 4 or 6.
pub fn version(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 4,
        IpAddr::V6(_) => 6,
    }
}

/// The 32-bit number of an IPv4 address; `None` for IPv6.
pub fn v4_bits(ip: IpAddr) -> Option<u32> {
    match ip {
        IpAddr::V4(a) => Some(u32::from(a)),
        IpAddr::V6(_) => None,
    }
}

/// The address as 128 bits: IPv6 as it is, IPv4 IPv4-mapped.
pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The inverse of [`to_u128`] given the version: version 4 takes the low 32 bits (whatever
/// the upper 96 hold), any other version reads all 128 as IPv6.
pub fn from_u128(version: u8, bits: u128) -> IpAddr {
    if version == 4 {
        // Truncation to the low 32 bits is the point.
        v4(bits as u32)
    } else {
        v6(bits)
    }
}

/// True when `bits` is an IPv4-mapped IPv6 address (`::ffff:0:0/96`).
pub fn is_v4_mapped(bits: u128) -> bool {
    bits >> 32 == 0xffff
}

/// True when any address of the columns is IPv6.
pub fn any_v6(a: &[IpAddr], b: &[IpAddr]) -> bool {
    a.iter().chain(b).any(IpAddr::is_ipv6)
}

/// A 64-bit key of an address for hashing (sketches, sequence numbers): an IPv4 address is its
/// 32-bit number, as the first schema's integers were, so IPv4 keys are unchanged; an IPv6
/// address folds its two halves through SplitMix64.
pub fn key64(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(a) => u64::from(u32::from(a)),
        IpAddr::V6(a) => {
            let b = u128::from(a);
            // High and low halves, split on purpose.
            crate::seed::mix64((b >> 64) as u64 ^ crate::seed::mix64(b as u64))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_round_trips_through_the_mapped_form_and_ipv6_as_it_is() {
        let a = v4(0xc0a8_0102);
        assert_eq!(to_u128(a), 0xffff_c0a8_0102);
        assert!(is_v4_mapped(to_u128(a)));
        assert_eq!(from_u128(4, to_u128(a)), a);
        let b: IpAddr = "2001:db8::1".parse().expect("text");
        assert_eq!(to_u128(b), 0x2001_0db8_0000_0000_0000_0000_0000_0001);
        assert_eq!(from_u128(6, to_u128(b)), b);
        assert_eq!((version(a), version(b)), (4, 6));
        assert_eq!((v4_bits(a), v4_bits(b)), (Some(0xc0a8_0102), None));
    }

    #[test]
    fn ipv4_orders_as_its_integer() {
        let mut v = [v4(3), v4(0x0100_0000), v4(2)];
        v.sort();
        assert_eq!(v, [v4(2), v4(3), v4(0x0100_0000)]);
        assert!(v4(u32::MAX) < v6(0), "every IPv4 address sorts before IPv6");
    }
}
