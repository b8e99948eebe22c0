//! pcap (microsecond or nanosecond timestamps) and pcapng files, written frame by frame.
//!
//! Both are little-endian. pcap: the classic 24-byte global header (magic `a1b2c3d4` for µs,
//! `a1b23c4d` for ns, version 2.4), then a 16-byte record header per frame. pcapng: one
//! Section Header Block, one Interface Description Block (link type, snaplen, `if_tsresol` 6),
//! then one Enhanced Packet Block per frame. No block carries a host name, time of writing or
//! other varying option, so equal frames give equal bytes.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::magic::{PCAP_NS, PCAP_US, PCAPNG_BOM, PCAPNG_EPB, PCAPNG_IDB, PCAPNG_SHB};
use crate::error::{Error, Result};

/// The capture file format to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum CaptureKind {
    /// pcap with microsecond timestamps.
    Pcap,
    /// pcap with nanosecond timestamps.
    PcapNs,
    /// pcapng (microsecond resolution).
    Pcapng,
}

/// Writes frames as a capture file, in the order given.
pub struct CaptureWriter<W: Write> {
    out: W,
    path: PathBuf,
    kind: CaptureKind,
    record: u64,
    head: Vec<u8>,
}

impl<W: Write> CaptureWriter<W> {
    /// Writes the file header for one interface of `linktype`. `path` names the output in
    /// errors.
    pub fn new(
        mut out: W,
        path: &Path,
        kind: CaptureKind,
        linktype: u16,
        snaplen: u32,
    ) -> Result<Self> {
        let mut h = Vec::with_capacity(60);
        match kind {
            CaptureKind::Pcap | CaptureKind::PcapNs => {
                let magic = if kind == CaptureKind::Pcap {
                    PCAP_US
                } else {
                    PCAP_NS
                };
                h.extend_from_slice(&magic.to_le_bytes());
                h.extend_from_slice(&2u16.to_le_bytes());
                h.extend_from_slice(&4u16.to_le_bytes());
                h.extend_from_slice(&0i32.to_le_bytes()); // thiszone
                h.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
                h.extend_from_slice(&snaplen.to_le_bytes());
                h.extend_from_slice(&u32::from(linktype).to_le_bytes());
            }
            CaptureKind::Pcapng => {
                // Section Header Block, 28 bytes, no options.
                h.extend_from_slice(&PCAPNG_SHB.to_le_bytes());
                h.extend_from_slice(&28u32.to_le_bytes());
                h.extend_from_slice(&PCAPNG_BOM.to_le_bytes());
                h.extend_from_slice(&1u16.to_le_bytes());
                h.extend_from_slice(&0u16.to_le_bytes());
                h.extend_from_slice(&(-1i64).to_le_bytes()); // section length unknown
                h.extend_from_slice(&28u32.to_le_bytes());
                // Interface Description Block, 32 bytes: if_tsresol = 6 (µs) and end of options.
                h.extend_from_slice(&PCAPNG_IDB.to_le_bytes());
                h.extend_from_slice(&32u32.to_le_bytes());
                h.extend_from_slice(&linktype.to_le_bytes());
                h.extend_from_slice(&0u16.to_le_bytes());
                h.extend_from_slice(&snaplen.to_le_bytes());
                h.extend_from_slice(&9u16.to_le_bytes());
                h.extend_from_slice(&1u16.to_le_bytes());
                h.extend_from_slice(&[6, 0, 0, 0]);
                h.extend_from_slice(&[0, 0, 0, 0]);
                h.extend_from_slice(&32u32.to_le_bytes());
            }
        }
        out.write_all(&h)
            .map_err(|e| Error::io("writing", path, e))?;
        Ok(CaptureWriter {
            out,
            path: path.to_path_buf(),
            kind,
            record: 0,
            head: Vec::with_capacity(32),
        })
    }

    /// Writes one frame captured at `time_us` (µs since the epoch), `data` being the captured
    /// bytes of a frame `wire_len` long on the wire.
    pub fn write_frame(&mut self, time_us: i64, data: &[u8], wire_len: u32) -> Result<()> {
        let record = self.record;
        self.record += 1;
        let refuse = |message: String| Error::Record {
            path: self.path.clone(),
            record,
            message,
        };
        if time_us < 0 {
            return Err(refuse(format!(
                "time {time_us} µs is before 1970, which capture files cannot hold"
            )));
        }
        let cap = u32::try_from(data.len())
            .map_err(|_| refuse(format!("a frame of {} bytes is too long", data.len())))?;
        let secs = time_us / 1_000_000;
        let frac = (time_us % 1_000_000) as u32;
        self.head.clear();
        match self.kind {
            CaptureKind::Pcap | CaptureKind::PcapNs => {
                let secs = u32::try_from(secs).map_err(|_| {
                    refuse(format!(
                        "time {time_us} µs is after 2106, which pcap's 32-bit seconds cannot hold (use pcapng)"
                    ))
                })?;
                let frac = if self.kind == CaptureKind::PcapNs {
                    frac * 1000
                } else {
                    frac
                };
                self.head.extend_from_slice(&secs.to_le_bytes());
                self.head.extend_from_slice(&frac.to_le_bytes());
                self.head.extend_from_slice(&cap.to_le_bytes());
                self.head.extend_from_slice(&wire_len.to_le_bytes());
            }
            CaptureKind::Pcapng => {
                let ts = time_us as u64;
                let padded = (data.len() + 3) & !3;
                let total = (32 + padded) as u32;
                self.head.extend_from_slice(&PCAPNG_EPB.to_le_bytes());
                self.head.extend_from_slice(&total.to_le_bytes());
                self.head.extend_from_slice(&0u32.to_le_bytes()); // interface 0
                self.head
                    .extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
                self.head.extend_from_slice(&(ts as u32).to_le_bytes());
                self.head.extend_from_slice(&cap.to_le_bytes());
                self.head.extend_from_slice(&wire_len.to_le_bytes());
            }
        }
        let io = |e| Error::io("writing", &self.path, e);
        self.out.write_all(&self.head).map_err(io)?;
        self.out.write_all(data).map_err(io)?;
        if self.kind == CaptureKind::Pcapng {
            let pad = ((data.len() + 3) & !3) - data.len();
            let total = (32 + data.len() + pad) as u32;
            let mut tail = [0u8; 7];
            tail[pad..pad + 4].copy_from_slice(&total.to_le_bytes());
            self.out.write_all(&tail[..pad + 4]).map_err(io)?;
        }
        Ok(())
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> Result<W> {
        self.out
            .flush()
            .map_err(|e| Error::io("flushing", &self.path, e))?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::CaptureReader;

    /// Frames written in each format read back with their times, lengths and bytes.
    #[test]
    fn written_frames_read_back() {
        let frames: Vec<(i64, Vec<u8>, u32)> = vec![
            (1_458_298_072_364_123, vec![1, 2, 3], 3),
            (1_458_298_073_000_000, vec![9; 61], 1500),
            (1_458_298_074_999_999, vec![], 40),
        ];
        for kind in [CaptureKind::Pcap, CaptureKind::PcapNs, CaptureKind::Pcapng] {
            let mut w =
                CaptureWriter::new(Vec::new(), Path::new("t"), kind, 101, 65535).expect("header");
            for (t, d, wire) in &frames {
                w.write_frame(*t, d, *wire).expect("frame");
            }
            let bytes = w.finish().expect("finish");
            let mut r = CaptureReader::new(&bytes[..])
                .expect("io")
                .expect("a capture");
            for (t, d, wire) in &frames {
                let f = r.next_frame().expect("io").expect("a frame");
                assert_eq!(
                    (f.time_us, f.data, f.orig_len, f.linktype),
                    (*t, &d[..], *wire, 101),
                    "{kind:?}"
                );
            }
            assert!(r.next_frame().expect("io").is_none(), "{kind:?}");
            assert!(r.damage().is_none(), "{kind:?}");
        }
    }

    #[test]
    fn times_a_format_cannot_hold_name_the_record() {
        let mut w = CaptureWriter::new(
            Vec::new(),
            Path::new("out.pcap"),
            CaptureKind::Pcap,
            1,
            65535,
        )
        .expect("header");
        w.write_frame(0, &[0], 1).expect("epoch");
        let e = w.write_frame(-1, &[0], 1).expect_err("before 1970");
        assert!(e.to_string().contains("out.pcap: record 1: time -1"), "{e}");
        let e = w.write_frame(1 << 53, &[0], 1).expect_err("after 2106");
        assert!(
            e.to_string().contains("record 2") && e.to_string().contains("pcapng"),
            "{e}"
        );
    }
}
