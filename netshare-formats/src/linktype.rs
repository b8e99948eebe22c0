//! LINKTYPE numbers of pcap and pcapng: the one list the reader, the writers and the test
//! capture builders share.

/// BSD loopback, address family in host byte order.
pub const NULL: u32 = 0;
/// Ethernet II (with 802.1Q / 802.1ad / QinQ tags).
pub const ETHERNET: u32 = 1;
/// Raw IP on most systems (DLT_RAW).
pub const RAW_12: u32 = 12;
/// Raw IP on OpenBSD (DLT_RAW there).
pub const RAW_14: u32 = 14;
/// Raw IP (LINKTYPE_RAW).
pub const RAW: u32 = 101;
/// OpenBSD loopback, address family in network byte order.
pub const LOOP: u32 = 108;
/// Linux cooked capture v1.
pub const LINUX_SLL: u32 = 113;
/// Raw IPv4.
pub const IPV4: u32 = 228;
/// Raw IPv6.
pub const IPV6: u32 = 229;
/// Linux cooked capture v2.
pub const LINUX_SLL2: u32 = 276;

/// A link type's name in reports: `ethernet (1)`, or `unsupported (147)`.
pub fn name(lt: u32) -> String {
    let n = match lt {
        NULL => "null",
        ETHERNET => "ethernet",
        RAW_12 | RAW_14 | RAW => "raw",
        LOOP => "loop",
        LINUX_SLL => "linux_sll",
        IPV4 => "ipv4",
        IPV6 => "ipv6",
        LINUX_SLL2 => "linux_sll2",
        _ => "unsupported",
    };
    format!("{n} ({lt})")
}
