//! Packet traces to packet records: frames from the capture reader, decoded, tallied by
//! reason, gathered column-wise into batches of one row group.

use std::collections::BTreeMap;
use std::io::Read;

use netshare_core::records::{PacketColumns, ROW_GROUP_ROWS};

use crate::error::{IngestError, Result};
use crate::report::{FileReport, Tally};
use netshare_formats::capture::CaptureReader;
use netshare_formats::linktype;
use netshare_formats::packet::decode::{self, Decoded, Note, Skip};

/// Per-file counters kept in arrays on the hot path and turned into named maps at the end.
#[derive(Default)]
struct Counts {
    skipped: [u64; Skip::ALL.len()],
    notes: [u64; Note::ALL.len()],
    link_types: BTreeMap<u32, u64>,
}

/// Reads every frame of one capture, calling `emit` with each full batch of records.
/// Returns the file's report; damage stops the file but is not an error.
pub fn read_capture<R: Read>(
    reader: &mut CaptureReader<R>,
    name: &str,
    path: &std::path::Path,
    tally: &mut Tally,
    batch: &mut PacketColumns,
    emit: &mut dyn FnMut(PacketColumns) -> Result<()>,
    progress: &mut dyn FnMut(u64),
) -> Result<FileReport> {
    let mut counts = Counts::default();
    let mut read = 0u64;
    let mut kept = 0u64;
    let mut cur_lt = u32::MAX;
    let mut cur_lt_n = 0u64;
    let mut last_progress = 0u64;
    while let Some(f) = reader
        .next_frame()
        .map_err(|e| IngestError::io("reading", path, e))?
    {
        read += 1;
        if f.linktype != cur_lt {
            if cur_lt_n > 0 {
                *counts.link_types.entry(cur_lt).or_default() += cur_lt_n;
            }
            cur_lt = f.linktype;
            cur_lt_n = 0;
        }
        cur_lt_n += 1;
        match decode::decode(f.linktype, f.data) {
            Decoded::Skipped(s) => counts.skipped[s as usize] += 1,
            Decoded::Ip(p, note) => {
                if let Some(n) = note {
                    counts.notes[n as usize] += 1;
                }
                kept += 1;
                tally.see(f.time_us, p.srcip, p.dstip, p.srcport, p.dstport, p.proto);
                batch.srcip.push(p.srcip);
                batch.dstip.push(p.dstip);
                batch.srcport.push(p.srcport);
                batch.dstport.push(p.dstport);
                batch.proto.push(p.proto);
                batch.time_us.push(f.time_us);
                batch.pkt_len.push(p.pkt_len);
                batch.tos.push(p.tos);
                batch.id.push(p.id);
                batch.flag.push(p.flag);
                batch.off.push(p.off);
                batch.ttl.push(p.ttl);
                if batch.len() >= ROW_GROUP_ROWS {
                    let full =
                        std::mem::replace(batch, PacketColumns::with_capacity(ROW_GROUP_ROWS));
                    emit(full)?;
                }
            }
        }
        if read & 0xffff == 0 {
            let c = reader.bytes_consumed();
            progress(c - last_progress);
            last_progress = c;
        }
    }
    progress(reader.bytes_consumed() - last_progress);
    if cur_lt_n > 0 {
        *counts.link_types.entry(cur_lt).or_default() += cur_lt_n;
    }
    let mut skipped = BTreeMap::new();
    for s in Skip::ALL {
        let n = counts.skipped[s as usize];
        if n > 0 {
            skipped.insert(s.name().to_string(), n);
            *tally.skipped.entry(s.name().to_string()).or_default() += n;
        }
    }
    let mut notes = BTreeMap::new();
    for n in Note::ALL {
        let c = counts.notes[n as usize];
        if c > 0 {
            notes.insert(n.name().to_string(), c);
            *tally.notes.entry(n.name().to_string()).or_default() += c;
        }
    }
    tally.records_read += read;
    tally.records_kept += kept;
    let link_types = counts
        .link_types
        .into_iter()
        .map(|(lt, n)| (linktype::name(lt), n))
        .collect();
    Ok(FileReport {
        name: name.to_string(),
        format: reader.format().name().to_string(),
        dialect: None,
        link_types,
        records_read: read,
        records_kept: kept,
        skipped,
        notes,
        bytes_read: reader.bytes_consumed(),
        damage: reader.damage().cloned(),
    })
}
