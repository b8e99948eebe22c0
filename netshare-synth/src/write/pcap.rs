//! pcap (microsecond or nanosecond timestamps) and pcapng files, written as packets arrive.
//!
//! Both are little-endian. pcap: the classic 24-byte global header (magic `a1b2c3d4` for µs,
//! `a1b23c4d` for ns, version 2.4), then a 16-byte record header per packet. pcapng: one
//! Section Header Block, one Interface Description Block (link type, snaplen, `if_tsresol` 6),
//! then one Enhanced Packet Block per packet. No block carries a host name, time of writing or
//! other varying option, so equal records give equal bytes.

use std::io::Write;
use std::path::{Path, PathBuf};

use netshare_core::records::{PacketColumns, PacketRecord};
use serde::{Deserialize, Serialize};

use super::packet::{PacketBuilder, PacketOptions, PacketStats};
use crate::error::{Error, Result};

/// The capture file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CaptureFormat {
    /// pcap with microsecond timestamps.
    Pcap,
    /// pcap with nanosecond timestamps.
    PcapNs,
    /// pcapng (microsecond resolution).
    Pcapng,
}

/// Writes packet records as a capture file, one packet per record, in the order given.
pub struct CaptureWriter<W: Write> {
    out: W,
    path: PathBuf,
    format: CaptureFormat,
    builder: PacketBuilder,
    record: u64,
    frame: Vec<u8>,
}

const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_IDB: u32 = 0x0000_0001;
const PCAPNG_EPB: u32 = 0x0000_0006;

impl<W: Write> CaptureWriter<W> {
    /// Writes the file header. `path` names the output in errors.
    pub fn new(
        mut out: W,
        path: &Path,
        format: CaptureFormat,
        opts: PacketOptions,
    ) -> Result<Self> {
        let io = |e| Error::io("writing", path, e);
        let link = u32::from(opts.link.linktype());
        match format {
            CaptureFormat::Pcap | CaptureFormat::PcapNs => {
                let magic: u32 = if format == CaptureFormat::Pcap {
                    0xa1b2_c3d4
                } else {
                    0xa1b2_3c4d
                };
                let mut h = Vec::with_capacity(24);
                h.extend_from_slice(&magic.to_le_bytes());
                h.extend_from_slice(&2u16.to_le_bytes());
                h.extend_from_slice(&4u16.to_le_bytes());
                h.extend_from_slice(&0i32.to_le_bytes()); // thiszone
                h.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
                h.extend_from_slice(&opts.snaplen.to_le_bytes());
                h.extend_from_slice(&link.to_le_bytes());
                out.write_all(&h).map_err(io)?;
            }
            CaptureFormat::Pcapng => {
                let mut h = Vec::with_capacity(60);
                // Section Header Block, 28 bytes, no options.
                h.extend_from_slice(&PCAPNG_SHB.to_le_bytes());
                h.extend_from_slice(&28u32.to_le_bytes());
                h.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
                h.extend_from_slice(&1u16.to_le_bytes());
                h.extend_from_slice(&0u16.to_le_bytes());
                h.extend_from_slice(&(-1i64).to_le_bytes()); // section length unknown
                h.extend_from_slice(&28u32.to_le_bytes());
                // Interface Description Block, 32 bytes: if_tsresol = 6 (µs) and end of options.
                h.extend_from_slice(&PCAPNG_IDB.to_le_bytes());
                h.extend_from_slice(&32u32.to_le_bytes());
                h.extend_from_slice(&opts.link.linktype().to_le_bytes());
                h.extend_from_slice(&0u16.to_le_bytes());
                h.extend_from_slice(&opts.snaplen.to_le_bytes());
                h.extend_from_slice(&9u16.to_le_bytes());
                h.extend_from_slice(&1u16.to_le_bytes());
                h.extend_from_slice(&[6, 0, 0, 0]);
                h.extend_from_slice(&[0, 0, 0, 0]);
                h.extend_from_slice(&32u32.to_le_bytes());
                out.write_all(&h).map_err(io)?;
            }
        }
        Ok(CaptureWriter {
            out,
            path: path.to_path_buf(),
            format,
            builder: PacketBuilder::new(opts),
            record: 0,
            frame: Vec::with_capacity(2048),
        })
    }

    /// Writes one packet.
    pub fn write_record(&mut self, r: &PacketRecord) -> Result<()> {
        let record = self.record;
        self.record += 1;
        if r.time_us < 0 {
            return Err(Error::Record {
                path: self.path.clone(),
                record,
                message: format!(
                    "time {} µs is before 1970, which capture files cannot hold",
                    r.time_us
                ),
            });
        }
        let secs = r.time_us / 1_000_000;
        let frac = (r.time_us % 1_000_000) as u32;
        let built = self.builder.build(r);
        let data = self.builder.bytes();
        let (cap, wire) = (built.captured as u32, built.wire as u32);
        self.frame.clear();
        match self.format {
            CaptureFormat::Pcap | CaptureFormat::PcapNs => {
                let secs = u32::try_from(secs).map_err(|_| Error::Record {
                    path: self.path.clone(),
                    record,
                    message: format!(
                        "time {} µs is after 2106, which pcap's 32-bit seconds cannot hold (use pcapng)",
                        r.time_us
                    ),
                })?;
                let frac = if self.format == CaptureFormat::PcapNs {
                    frac * 1000
                } else {
                    frac
                };
                self.frame.extend_from_slice(&secs.to_le_bytes());
                self.frame.extend_from_slice(&frac.to_le_bytes());
                self.frame.extend_from_slice(&cap.to_le_bytes());
                self.frame.extend_from_slice(&wire.to_le_bytes());
                self.frame.extend_from_slice(data);
            }
            CaptureFormat::Pcapng => {
                let ts = r.time_us as u64;
                let padded = (data.len() + 3) & !3;
                let total = (32 + padded) as u32;
                self.frame.extend_from_slice(&PCAPNG_EPB.to_le_bytes());
                self.frame.extend_from_slice(&total.to_le_bytes());
                self.frame.extend_from_slice(&0u32.to_le_bytes()); // interface 0
                self.frame
                    .extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
                self.frame.extend_from_slice(&(ts as u32).to_le_bytes());
                self.frame.extend_from_slice(&cap.to_le_bytes());
                self.frame.extend_from_slice(&wire.to_le_bytes());
                self.frame.extend_from_slice(data);
                self.frame.resize(self.frame.len() + padded - data.len(), 0);
                self.frame.extend_from_slice(&total.to_le_bytes());
            }
        }
        self.out
            .write_all(&self.frame)
            .map_err(|e| Error::io("writing", &self.path, e))
    }

    /// Writes every row of a packet table.
    pub fn write_packets(&mut self, t: &PacketColumns) -> Result<()> {
        for i in 0..t.len() {
            self.write_record(&t.row(i))?;
        }
        Ok(())
    }

    /// Counts of adjustments so far.
    pub fn stats(&self) -> &PacketStats {
        self.builder.stats()
    }

    /// Flushes and returns the inner writer and the counts.
    pub fn finish(mut self) -> Result<(W, PacketStats)> {
        self.out
            .flush()
            .map_err(|e| Error::io("flushing", &self.path, e))?;
        let stats = self.builder.stats().clone();
        Ok((self.out, stats))
    }
}
