//! Streaming readers of pcap and pcapng containers: frames out, no per-frame allocation.
//!
//! Both formats are read through one refillable buffer (a few MiB). A frame is handed out as a
//! borrowed slice of that buffer, so memory stays flat whatever the file size. Damage never
//! panics and never loses what came before it: the reader stops at the first record it cannot
//! frame and remembers where ([`Damage`]).

use std::io::Read;

/// Size of the read buffer. Big reads keep system calls off the per-frame path.
const BUF_SIZE: usize = 4 << 20;
/// The largest frame or block we accept; anything bigger is treated as a corrupt length field.
const MAX_RECORD: usize = 64 << 20;

use super::magic::{
    PCAP_NS, PCAP_NS_SWAPPED, PCAP_US, PCAP_US_SWAPPED, PCAPNG_BOM, PCAPNG_EPB, PCAPNG_IDB,
    PCAPNG_OPB, PCAPNG_SHB, PCAPNG_SPB,
};

/// The container format of a capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureFormat {
    /// Classic pcap.
    Pcap {
        /// Timestamps are nanoseconds (else microseconds).
        nanos: bool,
        /// The file is big-endian.
        big_endian: bool,
    },
    /// pcapng.
    Pcapng,
}

impl CaptureFormat {
    /// Recognises a capture from its first four bytes.
    pub fn sniff(head: &[u8]) -> Option<CaptureFormat> {
        let m = u32::from_le_bytes(head.get(..4)?.try_into().ok()?);
        Some(match m {
            PCAP_US => CaptureFormat::Pcap {
                nanos: false,
                big_endian: false,
            },
            PCAP_NS => CaptureFormat::Pcap {
                nanos: true,
                big_endian: false,
            },
            PCAP_US_SWAPPED => CaptureFormat::Pcap {
                nanos: false,
                big_endian: true,
            },
            PCAP_NS_SWAPPED => CaptureFormat::Pcap {
                nanos: true,
                big_endian: true,
            },
            PCAPNG_SHB => CaptureFormat::Pcapng,
            _ => return None,
        })
    }

    /// A short name for reports (`pcap-us-le`, `pcap-ns-be`, `pcapng`).
    pub fn name(self) -> &'static str {
        match self {
            CaptureFormat::Pcap {
                nanos: false,
                big_endian: false,
            } => "pcap-us-le",
            CaptureFormat::Pcap {
                nanos: false,
                big_endian: true,
            } => "pcap-us-be",
            CaptureFormat::Pcap {
                nanos: true,
                big_endian: false,
            } => "pcap-ns-le",
            CaptureFormat::Pcap {
                nanos: true,
                big_endian: true,
            } => "pcap-ns-be",
            CaptureFormat::Pcapng => "pcapng",
        }
    }
}

/// Where and why a capture stopped early.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Damage {
    /// Byte offset of the first record that could not be read.
    pub offset: u64,
    /// What was wrong, e.g. "truncated at byte 1234: record needs 60 bytes, 12 remain".
    pub message: String,
}

/// One captured frame, borrowed from the reader's buffer.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Link-layer type (LINKTYPE_* number).
    pub linktype: u32,
    /// Capture time in microseconds since the Unix epoch (floored).
    pub time_us: i64,
    /// Length of the frame on the wire.
    pub orig_len: u32,
    /// The captured bytes (possibly cut short by the snap length).
    pub data: &'a [u8],
}

/// One pcapng interface: what its packets' link type and time unit are.
#[derive(Clone, Copy, Debug)]
struct Interface {
    linktype: u32,
    /// Timestamp units per second.
    units_per_sec: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_s: i64,
    snaplen: u32,
}

#[derive(Debug)]
enum State {
    Pcap {
        big_endian: bool,
        nanos: bool,
        linktype: u32,
    },
    Pcapng {
        big_endian: bool,
        interfaces: Vec<Interface>,
        /// SPBs carry no time; they take the last time seen in the section.
        last_time_us: i64,
    },
}

/// A streaming reader of a pcap or pcapng file.
pub struct CaptureReader<R> {
    src: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// File offset of `buf[start]`.
    offset: u64,
    eof: bool,
    state: State,
    format: CaptureFormat,
    damage: Option<Damage>,
    /// Frames of link types we cannot attribute (e.g. SPB before any interface).
    bytes_consumed: u64,
}

fn rd_u16(b: &[u8], be: bool) -> u16 {
    let a = [b[0], b[1]];
    if be {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    }
}

fn rd_u32(b: &[u8], be: bool) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if be {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

/// Converts a timestamp in `units` per second to floored microseconds.
fn to_us(ts: u64, units: u64, offset_s: i64) -> i64 {
    let base = offset_s.saturating_mul(1_000_000);
    let us = match units {
        1_000_000 => ts as i128,
        0 => 0,
        u => (ts as i128 * 1_000_000) / u as i128,
    };
    (us + base as i128).clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

impl<R: Read> CaptureReader<R> {
    /// Opens a reader on a source whose first bytes are a pcap or pcapng header.
    /// `Ok(None)` when the bytes are neither (the caller describes what they are).
    pub fn new(src: R) -> std::io::Result<Option<Self>> {
        let mut r = CaptureReader {
            src,
            buf: vec![0; BUF_SIZE],
            start: 0,
            end: 0,
            offset: 0,
            eof: false,
            state: State::Pcap {
                big_endian: false,
                nanos: false,
                linktype: 0,
            },
            format: CaptureFormat::Pcapng,
            damage: None,
            bytes_consumed: 0,
        };
        r.fill(24)?;
        let Some(format) = CaptureFormat::sniff(r.avail()) else {
            return Ok(None);
        };
        r.format = format;
        match format {
            CaptureFormat::Pcap { nanos, big_endian } => {
                if r.avail().len() < 24 {
                    r.damage = Some(Damage {
                        offset: 0,
                        message: format!(
                            "truncated at byte 0: pcap file header needs 24 bytes, {} present",
                            r.avail().len()
                        ),
                    });
                    r.eof = true;
                    r.start = r.end;
                } else {
                    let h = r.avail();
                    let linktype = rd_u32(&h[20..24], big_endian) & 0xffff;
                    r.state = State::Pcap {
                        big_endian,
                        nanos,
                        linktype,
                    };
                    r.consume(24);
                }
            }
            CaptureFormat::Pcapng => {
                r.state = State::Pcapng {
                    big_endian: false,
                    interfaces: Vec::new(),
                    last_time_us: 0,
                };
            }
        }
        Ok(Some(r))
    }

    /// The container format.
    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    /// Where the file stopped early, if it did.
    pub fn damage(&self) -> Option<&Damage> {
        self.damage.as_ref()
    }

    /// Bytes of the file consumed so far.
    pub fn bytes_consumed(&self) -> u64 {
        self.bytes_consumed
    }

    fn avail(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
        self.bytes_consumed += n as u64;
    }

    /// Makes at least `n` bytes available unless the file ends first.
    fn fill(&mut self, n: usize) -> std::io::Result<()> {
        if self.end - self.start >= n || self.eof {
            return Ok(());
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.buf.len() < n {
            self.buf.resize(n.next_power_of_two(), 0);
        }
        while self.end < n {
            let got = match self.src.read(&mut self.buf[self.end..]) {
                Ok(g) => g,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if got == 0 {
                self.eof = true;
                break;
            }
            self.end += got;
        }
        Ok(())
    }

    fn stop(&mut self, message: String) {
        self.damage = Some(Damage {
            offset: self.offset,
            message,
        });
        self.start = self.end;
        self.eof = true;
    }

    fn truncated(&mut self, what: &str, need: usize) {
        let have = self.end - self.start;
        let off = self.offset;
        self.stop(format!(
            "truncated at byte {off}: {what} needs {need} bytes, {have} remain"
        ));
    }

    /// The next frame, `Ok(None)` at the end of the file or at the first damage.
    pub fn next_frame(&mut self) -> std::io::Result<Option<Frame<'_>>> {
        match self.state {
            State::Pcap { .. } => self.next_pcap(),
            State::Pcapng { .. } => self.next_pcapng(),
        }
    }

    fn next_pcap(&mut self) -> std::io::Result<Option<Frame<'_>>> {
        let State::Pcap {
            big_endian: be,
            nanos,
            linktype,
        } = self.state
        else {
            unreachable!("next_pcap is only called in the pcap state")
        };
        self.fill(16)?;
        let have = self.end - self.start;
        if have == 0 {
            return Ok(None);
        }
        if have < 16 {
            self.truncated("pcap record header", 16);
            return Ok(None);
        }
        let h = &self.buf[self.start..self.start + 16];
        let sec = rd_u32(&h[0..4], be) as u64;
        let frac = rd_u32(&h[4..8], be) as u64;
        let incl = rd_u32(&h[8..12], be) as usize;
        let orig_len = rd_u32(&h[12..16], be);
        if incl > MAX_RECORD {
            let off = self.offset;
            self.stop(format!(
                "corrupt record at byte {off}: captured length {incl} is implausible (over {MAX_RECORD})"
            ));
            return Ok(None);
        }
        self.fill(16 + incl)?;
        if self.end - self.start < 16 + incl {
            self.truncated("pcap record", 16 + incl);
            return Ok(None);
        }
        let frac_us = if nanos { frac / 1000 } else { frac };
        let time_us = (sec * 1_000_000 + frac_us) as i64;
        let s = self.start + 16;
        self.consume(16 + incl);
        Ok(Some(Frame {
            linktype,
            time_us,
            orig_len,
            data: &self.buf[s..s + incl],
        }))
    }

    fn next_pcapng(&mut self) -> std::io::Result<Option<Frame<'_>>> {
        loop {
            self.fill(12)?;
            let have = self.end - self.start;
            if have == 0 {
                return Ok(None);
            }
            if have < 12 {
                self.truncated("pcapng block header", 12);
                return Ok(None);
            }
            let head = &self.buf[self.start..self.start + 12];
            let btype_le = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            let is_shb = btype_le == PCAPNG_SHB;
            let be = if is_shb {
                // The byte-order magic decides the order of this whole section.
                match u32::from_le_bytes([head[8], head[9], head[10], head[11]]) {
                    PCAPNG_BOM => false,
                    m if m.swap_bytes() == PCAPNG_BOM => true,
                    m => {
                        let off = self.offset;
                        self.stop(format!(
                            "corrupt section header at byte {off}: byte-order magic {m:#010x}"
                        ));
                        return Ok(None);
                    }
                }
            } else {
                match &self.state {
                    State::Pcapng { big_endian, .. } => *big_endian,
                    State::Pcap { .. } => unreachable!("pcapng blocks only in the pcapng state"),
                }
            };
            let btype = rd_u32(&head[0..4], be);
            let blen = rd_u32(&head[4..8], be) as usize;
            if blen < 12 || !blen.is_multiple_of(4) || blen > MAX_RECORD {
                let off = self.offset;
                self.stop(format!(
                    "corrupt block at byte {off}: block length {blen} (type {btype:#x})"
                ));
                return Ok(None);
            }
            self.fill(blen)?;
            if self.end - self.start < blen {
                self.truncated("pcapng block", blen);
                return Ok(None);
            }
            let s = self.start;
            let trailer = rd_u32(&self.buf[s + blen - 4..s + blen], be) as usize;
            if trailer != blen {
                let off = self.offset;
                self.stop(format!(
                    "corrupt block at byte {off}: leading length {blen} != trailing length {trailer}"
                ));
                return Ok(None);
            }
            let off = self.offset;
            self.consume(blen);
            let body = s + 8..s + blen - 4;
            let State::Pcapng {
                big_endian,
                interfaces,
                last_time_us,
            } = &mut self.state
            else {
                unreachable!("pcapng blocks only in the pcapng state")
            };
            match btype {
                PCAPNG_SHB => {
                    *big_endian = be;
                    interfaces.clear();
                }
                PCAPNG_IDB => {
                    let b = &self.buf[body];
                    if b.len() < 8 {
                        self.stop(format!("corrupt interface block at byte {off}: too short"));
                        return Ok(None);
                    }
                    let mut iface = Interface {
                        linktype: rd_u16(&b[0..2], be) as u32,
                        units_per_sec: 1_000_000,
                        offset_s: 0,
                        snaplen: rd_u32(&b[4..8], be),
                    };
                    parse_idb_options(&b[8..], be, &mut iface);
                    interfaces.push(iface);
                }
                PCAPNG_EPB | PCAPNG_OPB => {
                    let b = &self.buf[body.clone()];
                    let (ifid, hi, lo, caplen, orig) = if btype == PCAPNG_EPB {
                        if b.len() < 20 {
                            self.stop(format!("corrupt packet block at byte {off}: too short"));
                            return Ok(None);
                        }
                        (
                            rd_u32(&b[0..4], be) as usize,
                            rd_u32(&b[4..8], be),
                            rd_u32(&b[8..12], be),
                            rd_u32(&b[12..16], be) as usize,
                            rd_u32(&b[16..20], be),
                        )
                    } else {
                        if b.len() < 20 {
                            self.stop(format!("corrupt packet block at byte {off}: too short"));
                            return Ok(None);
                        }
                        (
                            rd_u16(&b[0..2], be) as usize,
                            rd_u32(&b[4..8], be),
                            rd_u32(&b[8..12], be),
                            rd_u32(&b[12..16], be) as usize,
                            rd_u32(&b[16..20], be),
                        )
                    };
                    let Some(iface) = interfaces.get(ifid).copied() else {
                        let known = interfaces.len();
                        self.stop(format!(
                            "corrupt packet block at byte {off}: interface {ifid} was never described ({known} known)"
                        ));
                        return Ok(None);
                    };
                    if caplen > b.len() - 20 {
                        self.stop(format!(
                            "corrupt packet block at byte {off}: captured length {caplen} exceeds the block"
                        ));
                        return Ok(None);
                    }
                    let ts = ((hi as u64) << 32) | lo as u64;
                    let time_us = to_us(ts, iface.units_per_sec, iface.offset_s);
                    *last_time_us = time_us;
                    let d = body.start + 20;
                    return Ok(Some(Frame {
                        linktype: iface.linktype,
                        time_us,
                        orig_len: orig,
                        data: &self.buf[d..d + caplen],
                    }));
                }
                PCAPNG_SPB => {
                    let b = &self.buf[body.clone()];
                    let Some(iface) = interfaces.first().copied() else {
                        self.stop(format!(
                            "corrupt simple packet block at byte {off}: no interface described"
                        ));
                        return Ok(None);
                    };
                    if b.len() < 4 {
                        self.stop(format!(
                            "corrupt simple packet block at byte {off}: too short"
                        ));
                        return Ok(None);
                    }
                    let orig = rd_u32(&b[0..4], be);
                    let mut caplen = (orig as usize).min(b.len() - 4);
                    if iface.snaplen > 0 {
                        caplen = caplen.min(iface.snaplen as usize);
                    }
                    let d = body.start + 4;
                    return Ok(Some(Frame {
                        linktype: iface.linktype,
                        time_us: *last_time_us,
                        orig_len: orig,
                        data: &self.buf[d..d + caplen],
                    }));
                }
                _ => {}
            }
        }
    }
}

/// Reads `if_tsresol` (9) and `if_tsoffset` (14) from an interface block's options.
fn parse_idb_options(mut o: &[u8], be: bool, iface: &mut Interface) {
    while o.len() >= 4 {
        let code = rd_u16(&o[0..2], be);
        let len = rd_u16(&o[2..4], be) as usize;
        let padded = (len + 3) & !3;
        if o.len() < 4 + len {
            return;
        }
        let v = &o[4..4 + len];
        match code {
            0 => return,
            9 if len >= 1 => {
                let r = v[0];
                let units = if r & 0x80 == 0 {
                    10u64.checked_pow(r as u32)
                } else {
                    1u64.checked_shl((r & 0x7f) as u32)
                };
                // Resolutions beyond u64 are nonsense; keep the default.
                if let Some(u) = units.filter(|&u| u > 0) {
                    iface.units_per_sec = u;
                }
            }
            14 if len >= 8 => {
                let a = [v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]];
                iface.offset_s = if be {
                    i64::from_be_bytes(a)
                } else {
                    i64::from_le_bytes(a)
                };
            }
            _ => {}
        }
        if o.len() < 4 + padded {
            return;
        }
        o = &o[4 + padded..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_convert_from_any_resolution() {
        assert_eq!(
            to_us(1_500_000_000_123_456, 1_000_000, 0),
            1_500_000_000_123_456
        );
        assert_eq!(
            to_us(1_500_000_000_123_456_789, 1_000_000_000, 0),
            1_500_000_000_123_456
        );
        assert_eq!(to_us(3, 2, 10), 11_500_000);
        assert_eq!(to_us(5, 0, 0), 0);
    }

    #[test]
    fn sniff_knows_every_magic() {
        for (bytes, name) in [
            ([0xd4u8, 0xc3, 0xb2, 0xa1], "pcap-us-le"),
            ([0xa1, 0xb2, 0xc3, 0xd4], "pcap-us-be"),
            ([0x4d, 0x3c, 0xb2, 0xa1], "pcap-ns-le"),
            ([0xa1, 0xb2, 0x3c, 0x4d], "pcap-ns-be"),
            ([0x0a, 0x0d, 0x0d, 0x0a], "pcapng"),
        ] {
            assert_eq!(CaptureFormat::sniff(&bytes).map(|f| f.name()), Some(name));
        }
        assert_eq!(CaptureFormat::sniff(b"PAR1"), None);
        assert_eq!(CaptureFormat::sniff(b"ab"), None);
    }
}
