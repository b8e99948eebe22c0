//! IP packets in frames: [`fn@decode`] reads one frame into a packet record (or says why it gives
//! none), [`build`] writes a packet record as a frame whose headers and checksums verify.

pub mod build;
pub mod decode;

pub use build::{LinkType, PacketBuilder, PacketOptions, PacketStats};
pub use decode::{Decoded, Note, Skip, decode};
