//! pcap and pcapng containers: a streaming reader of frames ([`read`]) and a writer of frames
//! ([`mod@write`]). What a frame holds is [`crate::packet`]'s business.

pub mod read;
pub mod write;

pub use read::{CaptureFormat, CaptureReader, Damage, Frame};
pub use write::{CaptureKind, CaptureWriter};

/// The container's magic numbers and block types, read and written by the modules above.
pub mod magic {
    /// pcap, microsecond timestamps, as read little-endian from a little-endian file.
    pub const PCAP_US: u32 = 0xa1b2_c3d4;
    /// pcap, nanosecond timestamps.
    pub const PCAP_NS: u32 = 0xa1b2_3c4d;
    /// pcap, microseconds, big-endian file read little-endian.
    pub const PCAP_US_SWAPPED: u32 = 0xd4c3_b2a1;
    /// pcap, nanoseconds, big-endian file read little-endian.
    pub const PCAP_NS_SWAPPED: u32 = 0x4d3c_b2a1;
    /// pcapng Section Header Block type (a palindrome, so byte order does not matter).
    pub const PCAPNG_SHB: u32 = 0x0a0d_0d0a;
    /// pcapng byte-order magic in the section header.
    pub const PCAPNG_BOM: u32 = 0x1a2b_3c4d;
    /// pcapng Interface Description Block type.
    pub const PCAPNG_IDB: u32 = 1;
    /// pcapng obsolete Packet Block type.
    pub const PCAPNG_OPB: u32 = 2;
    /// pcapng Simple Packet Block type.
    pub const PCAPNG_SPB: u32 = 3;
    /// pcapng Enhanced Packet Block type.
    pub const PCAPNG_EPB: u32 = 6;
}
