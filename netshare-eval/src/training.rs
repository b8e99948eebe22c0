//! The training log the model stage writes (`train-log.csv`: `chunk,iteration,` then one column
//! per loss or statistic), parsed into one curve per numeric column and chunk.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Chunk → (x, value) points in file order.
pub type ChunkCurves = BTreeMap<u64, Vec<(f64, f64)>>;

/// Curves of a training log.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingLog {
    /// Column → chunk → (iteration, value) points in file order.
    pub curves: BTreeMap<String, ChunkCurves>,
    /// Rows read.
    pub rows: usize,
}

impl TrainingLog {
    /// The model's quick quality score (column `quality`, lower is better) per chunk against
    /// training time: wall-clock seconds when the log has them (column `seconds`, written with
    /// the model's `log_wall_time`), otherwise iterations. The bool says which.
    pub fn time_to_quality(&self) -> Option<(ChunkCurves, bool)> {
        let quality = self.curves.get("quality")?;
        let seconds = self.curves.get("seconds");
        let mut by_time = BTreeMap::new();
        for (chunk, pts) in quality {
            let Some(secs) = seconds.and_then(|s| s.get(chunk)) else {
                return Some((quality.clone(), false));
            };
            // Rows with a score and a time at the same iteration.
            let at: BTreeMap<u64, f64> = secs.iter().map(|&(it, s)| (it as u64, s)).collect();
            let mut v = Vec::new();
            for &(it, q) in pts {
                match at.get(&(it as u64)) {
                    Some(&s) => v.push((s, q)),
                    None => return Some((quality.clone(), false)),
                }
            }
            by_time.insert(*chunk, v);
        }
        Some((by_time, true))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn log_of(text: &str) -> TrainingLog {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("train-log.csv");
        std::fs::write(&p, text).expect("write");
        read_training_log(&p).expect("read")
    }

    #[test]
    fn quality_is_put_against_seconds_when_the_log_has_them_else_iterations() {
        let timed = log_of(
            "chunk,iteration,g_loss,quality,seconds\n0,10,1.0,,1.5\n0,20,0.9,0.30,3.0\n\
             0,30,0.8,0.20,4.5\n1,5,0.7,0.25,0.8\n",
        );
        let (c, t) = timed.time_to_quality().expect("a score column");
        assert!(t);
        assert_eq!(c[&0], vec![(3.0, 0.30), (4.5, 0.20)]);
        assert_eq!(c[&1], vec![(0.8, 0.25)]);
        let untimed = log_of("chunk,iteration,g_loss,quality\n0,10,1.0,\n0,20,0.9,0.30\n");
        let (c, t) = untimed.time_to_quality().expect("a score column");
        assert!(!t);
        assert_eq!(c[&0], vec![(20.0, 0.30)]);
        assert!(
            log_of("chunk,iteration,g_loss\n0,10,1.0\n")
                .time_to_quality()
                .is_none()
        );
    }
}
