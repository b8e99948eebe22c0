//! The ingest report (`ingest-report.json`): what was read, kept and skipped, and why.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Serialize};

use netshare_core::addr::{self, IpAddr};
use netshare_core::records::FiveTuple;
use netshare_formats::capture::Damage;

/// What one input file gave.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FileReport {
    /// The input's name (its path as given, or its store input name).
    pub name: String,
    /// `pcap-us-le`, `pcap-ns-be`, `pcapng`, or `csv`.
    pub format: String,
    /// The CSV dialect (flow traces only).
    pub dialect: Option<String>,
    /// Frames per link type (packet traces only), e.g. `"ethernet (1)": 3284`.
    pub link_types: BTreeMap<String, u64>,
    /// Frames or data rows read.
    pub records_read: u64,
    /// Records written.
    pub records_kept: u64,
    /// Records not written, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Records written with a caveat, by kind (e.g. ports zeroed).
    pub notes: BTreeMap<String, u64>,
    /// Bytes of the file consumed.
    pub bytes_read: u64,
    /// Where the file stopped early (truncation or a corrupt length), if it did.
    pub damage: Option<Damage>,
}

/// A CSV row that was skipped, kept as an example in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadRow {
    /// The file.
    pub file: String,
    /// 1-based line number.
    pub line: u64,
    /// What was wrong.
    pub message: String,
}

/// First and last record time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimeSpan {
    /// Earliest record time, µs since the Unix epoch.
    pub first_us: i64,
    /// Latest record time, µs since the Unix epoch.
    pub last_us: i64,
    /// `last_us - first_us` in seconds.
    pub seconds: f64,
}

/// The whole ingest's report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IngestReport {
    /// `packets` or `flows`.
    pub kind: netshare_core::records::TraceKind,
    /// The records schema written.
    pub schema: String,
    /// Per input file, in the order they were read.
    pub files: Vec<FileReport>,
    /// Frames or rows read, all files.
    pub records_read: u64,
    /// Records written, all files.
    pub records_kept: u64,
    /// Records not written, by reason, all files.
    pub skipped: BTreeMap<String, u64>,
    /// Records written with a caveat, by kind, all files.
    pub notes: BTreeMap<String, u64>,
    /// Time span of the records written (absent when none were).
    pub time_span: Option<TimeSpan>,
    /// Distinct (srcip, dstip, srcport, dstport, proto) among the records written.
    pub distinct_five_tuples: u64,
    /// Records written with an IPv6 address (absent when none are; the records file is then
    /// in the first schema).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub records_ipv6: u64,
    /// Number of files that stopped early (see each file's `damage`).
    pub files_damaged: u64,
    /// Time-sorted runs the input formed (1 when it was already in order).
    pub sorted_runs: u64,
    /// The first skipped CSV rows (at most [`MAX_BAD_ROW_EXAMPLES`]).
    pub bad_row_examples: Vec<BadRow>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How many skipped rows the report quotes.
pub const MAX_BAD_ROW_EXAMPLES: usize = 20;

impl IngestReport {
    /// A short human summary, a few lines.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} {} read from {} file(s), {} records kept, {} distinct five-tuples",
            self.records_read,
            match self.kind {
                netshare_core::records::TraceKind::Packets => "frames",
                netshare_core::records::TraceKind::Flows => "rows",
            },
            self.files.len(),
            self.records_kept,
            self.distinct_five_tuples
        );
        if let Some(t) = self.time_span {
            s.push_str(&format!(", spanning {:.3} s", t.seconds));
        }
        for (k, v) in &self.skipped {
            s.push_str(&format!("\n  skipped {v} ({k})"));
        }
        for (k, v) in &self.notes {
            s.push_str(&format!("\n  kept with caveat {v} ({k})"));
        }
        for f in &self.files {
            if let Some(d) = &f.damage {
                s.push_str(&format!("\n  warning: {}: {}", f.name, d.message));
            }
        }
        s
    }

    /// The small summary stored in the store manifest.
    pub fn manifest_summary(&self) -> serde_json::Value {
        serde_json::json!({
            "kind": self.kind,
            "records_read": self.records_read,
            "records_kept": self.records_kept,
            "skipped": self.skipped,
            "distinct_five_tuples": self.distinct_five_tuples,
            "files_damaged": self.files_damaged,
        })
    }
}

/// A multiply-rotate hasher for five-tuple keys (SipHash is several times slower here, and
/// the keys are not attacker-chosen in a way that matters for a counting set).
#[derive(Default)]
pub struct TupleHasher(u64);

impl Hasher for TupleHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(*b as u64);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u128(&mut self, v: u128) {
        self.write_u64(v as u64);
        self.write_u64((v >> 64) as u64);
    }
}

/// Running totals over all files.
#[derive(Default)]
pub struct Tally {
    /// Frames or rows read.
    pub records_read: u64,
    /// Records kept.
    pub records_kept: u64,
    /// Skips by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Caveats by kind.
    pub notes: BTreeMap<String, u64>,
    min_t: Option<i64>,
    max_t: Option<i64>,
    tuples: HashSet<u128, BuildHasherDefault<TupleHasher>>,
    last_tuple: Option<u128>,
    /// Five-tuples with an IPv6 address (they do not pack into 128 bits).
    tuples_v6: HashSet<FiveTuple, BuildHasherDefault<TupleHasher>>,
    /// Records seen whose addresses are IPv6.
    pub records_ipv6: u64,
}

impl Tally {
    /// Accounts one kept record's time and five-tuple.
    #[inline]
    pub fn see(&mut self, t: i64, srcip: IpAddr, dstip: IpAddr, sp: u16, dp: u16, proto: u8) {
        self.min_t = Some(self.min_t.map_or(t, |m| m.min(t)));
        self.max_t = Some(self.max_t.map_or(t, |m| m.max(t)));
        let (Some(srcip), Some(dstip)) = (addr::v4_bits(srcip), addr::v4_bits(dstip)) else {
            self.records_ipv6 += 1;
            self.tuples_v6.insert(FiveTuple {
                srcip,
                dstip,
                srcport: sp,
                dstport: dp,
                proto,
            });
            return;
        };
        let key = ((srcip as u128) << 96)
            | ((dstip as u128) << 64)
            | ((sp as u128) << 48)
            | ((dp as u128) << 32)
            | proto as u128;
        // Consecutive packets of one flow are common; skip the hash lookup for them.
        if self.last_tuple != Some(key) {
            self.tuples.insert(key);
            self.last_tuple = Some(key);
        }
    }

    /// Time span of the records seen.
    pub fn time_span(&self) -> Option<TimeSpan> {
        let (a, b) = (self.min_t?, self.max_t?);
        Some(TimeSpan {
            first_us: a,
            last_us: b,
            seconds: (b - a) as f64 / 1e6,
        })
    }

    /// Distinct five-tuples seen.
    pub fn distinct_five_tuples(&self) -> u64 {
        (self.tuples.len() + self.tuples_v6.len()) as u64
    }
}
