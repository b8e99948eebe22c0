//! The training log the model stage writes (`train-log.csv`: `chunk,iteration,` then one column
//! per loss or statistic), parsed into one curve per numeric column and chunk.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Curves of a training log.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingLog {
    /// Column → chunk → (iteration, value) points in file order.
    pub curves: BTreeMap<String, BTreeMap<u64, Vec<(f64, f64)>>>,
    /// Rows read.
    pub rows: usize,
}

/// Reads a training log. Empty or non-numeric cells are skipped; a column with no numeric cell
/// is left out.
pub fn read_training_log(path: &Path) -> Result<TrainingLog> {
    let file = std::fs::File::open(path).map_err(|e| Error::io("opening", path, e))?;
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(file);
    let bad = |record: u64, message: String| Error::Csv {
        path: path.to_path_buf(),
        record,
        message,
    };
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| bad(0, format!("reading the header: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let pos = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| bad(0, format!("no column {name:?} in header {header:?}")))
    };
    let (ci, ii) = (pos("chunk")?, pos("iteration")?);
    let mut log = TrainingLog::default();
    for (n, rec) in rdr.records().enumerate() {
        let rn = n as u64 + 1;
        let rec = rec.map_err(|e| bad(rn, e.to_string()))?;
        let chunk: u64 = rec
            .get(ci)
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| {
                bad(
                    rn,
                    format!("chunk {:?} is not a non-negative integer", rec.get(ci)),
                )
            })?;
        let it: f64 = rec
            .get(ii)
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| bad(rn, format!("iteration {:?} is not a number", rec.get(ii))))?;
        for (j, name) in header.iter().enumerate() {
            if j == ci || j == ii {
                continue;
            }
            if let Some(v) = rec
                .get(j)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite())
            {
                log.curves
                    .entry(name.clone())
                    .or_default()
                    .entry(chunk)
                    .or_default()
                    .push((it, v));
            }
        }
        log.rows += 1;
    }
    Ok(log)
}
