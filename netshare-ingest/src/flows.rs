//! Flow CSVs to flow records: the format crate reads the rows; this module counts what it
//! skips, quotes the first bad rows, and applies `on_error`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use netshare_core::records::{FlowColumns, ROW_GROUP_ROWS};
use netshare_formats::netflow::{Dialect, FlowCsvReader, RowError};

use crate::error::Result;
use crate::report::{BadRow, FileReport, MAX_BAD_ROW_EXAMPLES, Tally};
use crate::{IngestConfig, OnError};

/// Reads one CSV flow file of a known dialect, calling `emit` with each full batch.
#[allow(clippy::too_many_arguments)]
pub fn read_csv<R: Read>(
    src: R,
    dialect: Dialect,
    name: &str,
    path: &Path,
    cfg: &IngestConfig,
    tally: &mut Tally,
    bad_rows: &mut Vec<BadRow>,
    batch: &mut FlowColumns,
    emit: &mut dyn FnMut(FlowColumns) -> Result<()>,
) -> Result<FileReport> {
    let mut rdr = FlowCsvReader::new(src, dialect, path);
    let mut read = 0u64;
    let mut kept = 0u64;
    let mut skipped: BTreeMap<String, u64> = BTreeMap::new();
    while let Some((line, row)) = rdr.next_row()? {
        read += 1;
        match row {
            Ok(row) => {
                let r = row.record;
                kept += 1;
                tally.see(r.ts_us, r.srcip, r.dstip, r.srcport, r.dstport, r.proto);
                batch.push(r);
                if batch.len() >= ROW_GROUP_ROWS {
                    emit(std::mem::take(batch))?;
                }
            }
            Err(RowError::Bad(message)) => {
                if cfg.on_error == OnError::Fail {
                    return Err(netshare_formats::Error::CsvRow {
                        path: path.to_path_buf(),
                        line,
                        message: format!("{message} (use on_error = skip to skip bad rows)"),
                    }
                    .into());
                }
                *skipped.entry("bad_row".into()).or_default() += 1;
                if bad_rows.len() < MAX_BAD_ROW_EXAMPLES {
                    bad_rows.push(BadRow {
                        file: name.to_string(),
                        line,
                        message,
                    });
                }
            }
        }
    }
    for (k, v) in &skipped {
        *tally.skipped.entry(k.clone()).or_default() += v;
    }
    tally.records_read += read;
    tally.records_kept += kept;
    Ok(FileReport {
        name: name.to_string(),
        format: "csv".to_string(),
        dialect: Some(dialect.name().to_string()),
        link_types: BTreeMap::new(),
        records_read: read,
        records_kept: kept,
        skipped,
        notes: BTreeMap::new(),
        bytes_read: rdr.bytes_read(),
        damage: None,
    })
}
