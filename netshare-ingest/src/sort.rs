//! Time ordering with flat memory: sorted batches, sorted runs on disk, a k-way merge.
//!
//! Batches arrive in input order. Each is stably sorted by time. While every batch starts no
//! earlier than the previous one ended (the usual case for captures, and for hourly files
//! given in order), batches go straight into the output file: one pass, no extra I/O. The
//! first batch that would break the order closes the current *run*; the rest goes to further
//! runs in a spill folder, and at the end the runs are merged (at most [`FAN_IN`] at a time).
//! Ties keep input order (earlier run first), so the result is the stable sort of the input
//! by time, whatever the batch boundaries: deterministic bytes.
//!
//! The output is in the first record schema (IPv4 only) until a batch with an IPv6 address
//! arrives; that batch starts a new run in the second schema, so a trace with IPv6 is merged
//! into a `v2` file and an all-IPv4 trace is written exactly as before.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use netshare_core::records::{
    AddrSchema, FlowColumns, PacketColumns, ROW_GROUP_ROWS, RecordsWriter, TraceKind,
};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use crate::error::{IngestError, Result};

/// Most runs merged in one pass.
pub const FAN_IN: usize = 64;
/// Rows read at a time from each run while merging.
const MERGE_READ_ROWS: usize = 8 * 1024;

/// A column table with a time column: what the sorter needs from packet and flow tables.
pub trait TimeTable: Default + Send + Sized {
    /// The trace kind.
    const KIND: TraceKind;
    /// Columns of nearly unique values, written without a dictionary (see
    /// `RecordsWriter::create_with_plain_columns`).
    const PLAIN: &'static [&'static str];
    /// Number of rows.
    fn rows(&self) -> usize;
    /// The time of row `i` (µs).
    fn time(&self, i: usize) -> i64;
    /// The time column.
    fn times(&self) -> &[i64];
    /// Rows in the given order.
    fn take_rows(&self, order: &[usize]) -> Self;
    /// Appends row `i` of `other`.
    fn push_from(&mut self, other: &Self, i: usize);
    /// Removes every row.
    fn clear_rows(&mut self);
    /// Writes the table to a records writer.
    fn write_to(&self, w: &mut RecordsWriter) -> Result<()>;
    /// Appends an Arrow batch read back from a run.
    fn append(&mut self, batch: &RecordBatch, path: &Path) -> Result<()>;
    /// The address schema the rows need.
    fn addrs(&self) -> AddrSchema;
}

impl TimeTable for PacketColumns {
    const KIND: TraceKind = TraceKind::Packets;
    const PLAIN: &'static [&'static str] = &["time_us", "id"];
    fn rows(&self) -> usize {
        self.len()
    }
    fn time(&self, i: usize) -> i64 {
        self.time_us[i]
    }
    fn times(&self) -> &[i64] {
        &self.time_us
    }
    fn take_rows(&self, order: &[usize]) -> Self {
        self.take(order)
    }
    fn push_from(&mut self, o: &Self, i: usize) {
        self.srcip.push(o.srcip[i]);
        self.dstip.push(o.dstip[i]);
        self.srcport.push(o.srcport[i]);
        self.dstport.push(o.dstport[i]);
        self.proto.push(o.proto[i]);
        self.time_us.push(o.time_us[i]);
        self.pkt_len.push(o.pkt_len[i]);
        self.tos.push(o.tos[i]);
        self.id.push(o.id[i]);
        self.flag.push(o.flag[i]);
        self.off.push(o.off[i]);
        self.ttl.push(o.ttl[i]);
    }
    fn clear_rows(&mut self) {
        self.clear()
    }
    fn write_to(&self, w: &mut RecordsWriter) -> Result<()> {
        Ok(w.write_packets(self)?)
    }
    fn append(&mut self, batch: &RecordBatch, path: &Path) -> Result<()> {
        Ok(self.append_batch(batch, path)?)
    }
    fn addrs(&self) -> AddrSchema {
        self.addr_schema()
    }
}

impl TimeTable for FlowColumns {
    const KIND: TraceKind = TraceKind::Flows;
    const PLAIN: &'static [&'static str] = &["ts_us", "td"];
    fn rows(&self) -> usize {
        self.len()
    }
    fn time(&self, i: usize) -> i64 {
        self.ts_us[i]
    }
    fn times(&self) -> &[i64] {
        &self.ts_us
    }
    fn take_rows(&self, order: &[usize]) -> Self {
        self.take(order)
    }
    fn push_from(&mut self, o: &Self, i: usize) {
        self.push(o.row(i))
    }
    fn clear_rows(&mut self) {
        self.clear()
    }
    fn write_to(&self, w: &mut RecordsWriter) -> Result<()> {
        Ok(w.write_flows(self)?)
    }
    fn append(&mut self, batch: &RecordBatch, path: &Path) -> Result<()> {
        Ok(self.append_batch(batch, path)?)
    }
    fn addrs(&self) -> AddrSchema {
        self.addr_schema()
    }
}

fn create_writer<T: TimeTable>(
    path: &Path,
    addrs: AddrSchema,
    kv: &[(&str, &str)],
) -> Result<RecordsWriter> {
    Ok(RecordsWriter::create_with_plain_columns(
        path,
        T::KIND,
        addrs,
        kv,
        T::PLAIN,
    )?)
}

/// Stably sorts a table by time unless it already is.
pub fn sort_by_time<T: TimeTable>(t: T) -> T {
    let ts = t.times();
    if ts.windows(2).all(|w| w[0] <= w[1]) {
        return t;
    }
    let mut order: Vec<usize> = (0..ts.len()).collect();
    order.sort_by_key(|&i| ts[i]);
    t.take_rows(&order)
}

/// Receives batches in input order and leaves one time-ordered records file.
pub struct Sorter<T: TimeTable> {
    out: PathBuf,
    meta: Vec<(String, String)>,
    spill_parent: PathBuf,
    spill: Option<tempfile::TempDir>,
    current: Option<RecordsWriter>,
    current_is_output: bool,
    runs: Vec<PathBuf>,
    last_max: Option<i64>,
    /// Rows written to the open run or output.
    current_rows: usize,
    /// Schema of the runs from now on (and of the output): `Mixed` once IPv6 was seen.
    addrs: AddrSchema,
    _kind: std::marker::PhantomData<T>,
}

impl<T: TimeTable> Sorter<T> {
    /// A sorter writing to `out` with extra key-value metadata; spill runs (if any) go to a
    /// temporary folder inside `spill_parent`.
    pub fn new(out: &Path, meta: Vec<(String, String)>, spill_parent: &Path) -> Result<Self> {
        let kv: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let w = create_writer::<T>(out, AddrSchema::V4Only, &kv)?;
        Ok(Sorter {
            out: out.to_path_buf(),
            meta,
            spill_parent: spill_parent.to_path_buf(),
            spill: None,
            current: Some(w),
            current_is_output: true,
            runs: Vec::new(),
            last_max: None,
            current_rows: 0,
            addrs: AddrSchema::V4Only,
            _kind: std::marker::PhantomData,
        })
    }

    /// The schema of the output file.
    pub fn addr_schema(&self) -> AddrSchema {
        self.addrs
    }

    fn meta_kv(&self) -> Vec<(&str, &str)> {
        self.meta
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    fn spill_dir(&mut self) -> Result<PathBuf> {
        if self.spill.is_none() {
            let d = tempfile::Builder::new()
                .prefix(".netshare-ingest-runs-")
                .tempdir_in(&self.spill_parent)
                .map_err(|e| IngestError::io("creating spill folder in", &self.spill_parent, e))?;
            self.spill = Some(d);
        }
        Ok(self
            .spill
            .as_ref()
            .expect("created just above")
            .path()
            .to_path_buf())
    }

    fn new_run_path(&mut self) -> Result<PathBuf> {
        let dir = self.spill_dir()?;
        Ok(dir.join(format!("run-{:06}.parquet", self.runs.len())))
    }

    /// Adds a batch (any order inside).
    pub fn push(&mut self, batch: T) -> Result<()> {
        if batch.rows() == 0 {
            return Ok(());
        }
        let batch = sort_by_time(batch);
        let min = batch.time(0);
        let max = batch.time(batch.rows() - 1);
        let first_v6 = self.addrs == AddrSchema::V4Only && batch.addrs() == AddrSchema::Mixed;
        if first_v6 {
            self.addrs = AddrSchema::Mixed;
        }
        if first_v6 && self.current_is_output && self.current_rows == 0 {
            // Nothing written yet: the output itself can take the second schema.
            drop(self.current.take());
            let w = create_writer::<T>(&self.out, self.addrs, &self.meta_kv())?;
            self.current = Some(w);
        } else if first_v6 || self.last_max.is_some_and(|m| min < m) {
            self.close_run()?;
            let p = self.new_run_path()?;
            self.current = Some(create_writer::<T>(&p, self.addrs, &[])?);
            self.current_rows = 0;
            self.runs.push(p);
        }
        self.last_max = Some(max);
        self.current_rows += batch.rows();
        let w = self
            .current
            .as_mut()
            .expect("a run is always open while pushing");
        batch.write_to(w)
    }

    /// Closes the open run; the first time, moves the output-so-far into the spill folder as
    /// run 0.
    fn close_run(&mut self) -> Result<()> {
        if let Some(w) = self.current.take() {
            w.finish()?;
        }
        if self.current_is_output {
            self.current_is_output = false;
            let dir = self.spill_dir()?;
            let run0 = dir.join("run-000000.parquet");
            move_file(&self.out, &run0)?;
            self.runs.insert(0, run0);
        }
        Ok(())
    }

    /// Finishes the output; returns the number of sorted runs the input formed.
    pub fn finish(mut self) -> Result<usize> {
        if self.current_is_output {
            if let Some(w) = self.current.take() {
                w.finish()?;
            }
            return Ok(1);
        }
        if let Some(w) = self.current.take() {
            w.finish()?;
        }
        let n_runs = self.runs.len();
        let mut runs = std::mem::take(&mut self.runs);
        let mut generation = 0;
        while runs.len() > FAN_IN {
            generation += 1;
            let dir = self.spill_dir()?;
            let mut next = Vec::new();
            for (g, group) in runs.chunks(FAN_IN).enumerate() {
                let p = dir.join(format!("merge-{generation}-{g:06}.parquet"));
                merge::<T>(group, &p, self.addrs, &[])?;
                for r in group {
                    let _ = std::fs::remove_file(r);
                }
                next.push(p);
            }
            runs = next;
        }
        merge::<T>(&runs, &self.out, self.addrs, &self.meta_kv())?;
        Ok(n_runs)
    }
}

fn move_file(from: &Path, to: &Path) -> Result<()> {
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to).map_err(|e| IngestError::io("copying", from, e))?;
    std::fs::remove_file(from).map_err(|e| IngestError::io("removing", from, e))
}

struct RunCursor<T> {
    path: PathBuf,
    reader: ParquetRecordBatchReader,
    table: T,
    pos: usize,
}

impl<T: TimeTable> RunCursor<T> {
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| IngestError::io("opening", path, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|b| b.with_batch_size(MERGE_READ_ROWS).build())
            .map_err(|source| IngestError::Parquet {
                path: path.to_path_buf(),
                source,
            })?;
        let mut c = RunCursor {
            path: path.to_path_buf(),
            reader,
            table: T::default(),
            pos: 0,
        };
        c.refill()?;
        Ok(c)
    }

    /// Loads the next batch once the current one is used up; false at the end of the run.
    fn refill(&mut self) -> Result<bool> {
        while self.pos >= self.table.rows() {
            let Some(batch) = self.reader.next() else {
                return Ok(false);
            };
            let batch = batch.map_err(|e| IngestError::Parquet {
                path: self.path.clone(),
                source: e.into(),
            })?;
            self.table.clear_rows();
            self.pos = 0;
            self.table.append(&batch, &self.path)?;
        }
        Ok(true)
    }
}

/// Merges time-sorted runs into one file; ties go to the earlier run.
fn merge<T: TimeTable>(
    runs: &[PathBuf],
    out: &Path,
    addrs: AddrSchema,
    kv: &[(&str, &str)],
) -> Result<()> {
    let mut cursors = Vec::with_capacity(runs.len());
    for r in runs {
        cursors.push(RunCursor::<T>::open(r)?);
    }
    let mut heap = BinaryHeap::new();
    for (i, c) in cursors.iter().enumerate() {
        if c.pos < c.table.rows() {
            heap.push(Reverse((c.table.time(c.pos), i)));
        }
    }
    let mut w = create_writer::<T>(out, addrs, kv)?;
    let mut buf = T::default();
    while let Some(Reverse((_, i))) = heap.pop() {
        let c = &mut cursors[i];
        buf.push_from(&c.table, c.pos);
        c.pos += 1;
        if c.refill()? {
            heap.push(Reverse((c.table.time(c.pos), i)));
        }
        if buf.rows() >= ROW_GROUP_ROWS {
            buf.write_to(&mut w)?;
            buf.clear_rows();
        }
    }
    if buf.rows() > 0 {
        buf.write_to(&mut w)?;
    }
    w.finish()?;
    Ok(())
}
