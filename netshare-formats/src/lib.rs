//! The wire formats NetShare reads and writes, in one place: every byte of a capture file, an
//! IP packet or a NetFlow CSV that enters or leaves the pipeline passes through this crate.
//!
//! - [`capture`]: pcap and pcapng containers (a streaming, damage-tolerant reader and a writer);
//! - [`packet`]: frames to packet records and back (link layer, IPv4, TCP/UDP/ICMP headers);
//! - [`netflow`]: the NetFlow CSV dialects (UGR16/nfdump, CIDDS-001, TON_IoT, NetShare's own),
//!   read and written;
//! - [`datetime`]: the civil-date arithmetic those dialects' text times need;
//! - [`linktype`]: the LINKTYPE numbers both sides use.
//!
//! The artifact files between stages (Parquet records, tensors) are the schema's, in
//! `netshare-core`; this crate is about formats other tools read.
#![deny(missing_docs)]

pub mod capture;
pub mod datetime;
pub mod error;
pub mod linktype;
pub mod netflow;
pub mod packet;

pub use error::{Error, Result};
