//! Checkpoints: a fingerprint that ties a file to its config and data, and the training log
//! stored in the file's metadata with exact float bits, so a resumed run ends in the same bytes.

use std::collections::BTreeMap;
use std::path::Path;

use netshare_core::tensors::ChunkTensors;

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::log::{LogRow, Losses};
use crate::nets::Dims;
use crate::seed::derive_seed;
use crate::weights::{self, HostTensors};

/// A fingerprint of what a checkpoint belongs to, so a stale file is never resumed.
pub(crate) fn fingerprint(
    cfg: &ModelConfig,
    d: &Dims,
    chunk: usize,
    data: &ChunkTensors,
) -> String {
    let cfg_json = serde_json::to_string(cfg).expect("a config always serialises");
    let mut h: u64 = derive_seed(
        data.n as u64,
        &[chunk as u64, d.critic_in() as u64, d.steps as u64],
    );
    for b in cfg_json.bytes() {
        h = derive_seed(h, &[b as u64]);
    }
    let sample = data
        .attributes
        .iter()
        .chain(&data.features)
        .step_by(97)
        .take(4096);
    for x in sample {
        h = derive_seed(h, &[x.to_bits() as u64]);
    }
    format!("{h:016x}")
}

pub(crate) fn read_checkpoint(
    path: &Path,
    fp: &str,
) -> Result<Option<(HostTensors, u64, Vec<LogRow>)>> {
    if !path.exists() {
        return Ok(None);
    }
    let (t, meta) = weights::read(path)?;
    if meta.get("fingerprint").map(String::as_str) != Some(fp) {
        return Ok(None);
    }
    let bad = |m: &str| Error::Weights {
        path: path.to_path_buf(),
        message: m.to_string(),
    };
    let it: u64 = meta
        .get("iteration")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("metadata lacks a numeric 'iteration'"))?;
    let log = log_from_meta(meta.get("log").map(String::as_str).unwrap_or(""))
        .ok_or_else(|| bad("metadata 'log' is malformed"))?;
    Ok(Some((t, it, log)))
}

/// Log rows as text with every float as its bit pattern, so a resumed run's log is exact.
pub(crate) fn log_to_meta(log: &[LogRow]) -> String {
    let mut s = String::new();
    for r in log {
        let l = &r.losses;
        let secs = r
            .seconds
            .map_or("-".to_string(), |x| x.to_bits().to_string());
        let quality = r
            .quality
            .map_or("-".to_string(), |x| x.to_bits().to_string());
        s.push_str(&format!(
            "{} {} {} {} {} {} {} {secs} {quality}\n",
            r.chunk,
            r.iteration,
            l.d_loss.to_bits(),
            l.d_gp.to_bits(),
            l.aux_loss.to_bits(),
            l.aux_gp.to_bits(),
            l.g_loss.to_bits()
        ));
    }
    s
}

pub(crate) fn log_from_meta(text: &str) -> Option<Vec<LogRow>> {
    text.lines()
        .map(|line| {
            let w: Vec<&str> = line.split(' ').collect();
            if w.len() != 9 {
                return None;
            }
            let opt = |x: &str| match x {
                "-" => Some(None),
                x => x.parse().ok().map(|b| Some(f64::from_bits(b))),
            };
            let f = |i: usize| w[i].parse::<u32>().ok().map(f32::from_bits);
            Some(LogRow {
                chunk: w[0].parse().ok()?,
                iteration: w[1].parse().ok()?,
                losses: Losses {
                    d_loss: f(2)?,
                    d_gp: f(3)?,
                    aux_loss: f(4)?,
                    aux_gp: f(5)?,
                    g_loss: f(6)?,
                },
                seconds: opt(w[7])?,
                quality: opt(w[8])?,
            })
        })
        .collect()
}

pub(crate) fn write_checkpoint(
    path: &Path,
    fp: &str,
    t: &HostTensors,
    it: u64,
    log: &[LogRow],
) -> Result<()> {
    let mut meta = BTreeMap::new();
    meta.insert("fingerprint".to_string(), fp.to_string());
    meta.insert("iteration".to_string(), it.to_string());
    meta.insert("log".to_string(), log_to_meta(log));
    weights::write(path, t, Some(meta))
}
