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
