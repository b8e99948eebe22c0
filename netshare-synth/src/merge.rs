//! The cross-chunk merge of SPEC §5 as pure functions: which sampled flows a chunk keeps, how a
//! flow's five-tuple is carried into the later chunks its tags name, and the record-level clean-up
//! (one flow per five-tuple, records inside the chunk's time range, time order).
//!
//! Attributes are rows of `A` floats laid out as `layout.json` says. Tag heads are two-way
//! softmaxes named `tag/starts_here` and `tag/in_chunk/NNN`; index 1 means yes, decided by the
//! larger of the two (as every softmax head is decoded). A flow *starts* in chunk `c` when its
//! `starts_here` and `in_chunk/c` are both yes. Its identity — every attribute head except
//! `flow_start` and the tags — is then copied unchanged into each later chunk `i` whose
//! `in_chunk/i` is yes, so that decoding gives the same five-tuple there. The rest of a carried
//! row (its `flow_start`) comes from a row the model sampled for the later chunk with
//! `starts_here` off (a "continuation" row), so carried flows get that chunk's start times.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;

use netshare_core::layout::{Activation, Layout};
use netshare_core::records::{FiveTuple, FlowColumns, PacketColumns, Records};
use netshare_encode::encoder::is_tag_head;
use netshare_formats::packet::build::{PROTO_TCP, PROTO_UDP};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Name of the attribute head of the flow start time.
pub use netshare_encode::encoder::FLOW_START;
/// Prefix of the attribute heads saying a flow is present in chunk `NNN`.
pub use netshare_encode::encoder::TAG_IN_CHUNK_PREFIX as IN_CHUNK_PREFIX;
/// Name of the attribute head saying a flow starts in its chunk.
pub use netshare_encode::encoder::TAG_STARTS_HERE as STARTS_HERE;

/// Where the tag heads and the identity dimensions are inside an attribute row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagHeads {
    /// Attribute dimensions per row.
    pub attr_dim: usize,
    /// Offset of `tag/starts_here` (None when the layout has no tags: one chunk).
    pub starts_here: Option<usize>,
    /// Offset of `tag/in_chunk/NNN`, indexed by chunk.
    pub in_chunk: Vec<usize>,
    /// Dimension ranges copied when a flow is carried (the five-tuple heads).
    pub identity: Vec<Range<usize>>,
}

impl TagHeads {
    /// Finds the heads in a layout; `n_chunks` is the number of chunks the encoder made.
    pub fn from_layout(layout: &Layout, n_chunks: usize) -> Result<Self> {
        let mut starts_here = None;
        let mut in_chunk = BTreeMap::new();
        let mut identity: Vec<Range<usize>> = Vec::new();
        for (off, seg) in layout.attribute_offsets() {
            let two_way = seg.dim == 2 && seg.activation == Activation::Softmax;
            if seg.field == STARTS_HERE {
                if !two_way {
                    return Err(Error::Inconsistent(format!(
                        "layout head {STARTS_HERE} must be a two-way softmax, is {:?} of {}",
                        seg.activation, seg.dim
                    )));
                }
                starts_here = Some(off);
            } else if let Some(n) = seg.field.strip_prefix(IN_CHUNK_PREFIX) {
                let c: usize = n.parse().map_err(|_| {
                    Error::Inconsistent(format!("layout head {:?} has no chunk number", seg.field))
                })?;
                if !two_way {
                    return Err(Error::Inconsistent(format!(
                        "layout head {} must be a two-way softmax",
                        seg.field
                    )));
                }
                in_chunk.insert(c, off);
            } else if seg.field != FLOW_START && !is_tag_head(&seg.field) {
                match identity.last_mut() {
                    Some(r) if r.end == off => r.end = off + seg.dim,
                    _ => identity.push(off..off + seg.dim),
                }
            }
        }
        let in_chunk: Vec<usize> = in_chunk.into_values().collect();
        let tagged = starts_here.is_some() || !in_chunk.is_empty();
        if tagged && (starts_here.is_none() || in_chunk.len() != n_chunks) {
            return Err(Error::Inconsistent(format!(
                "layout has {} in_chunk heads and {} starts_here head for {n_chunks} chunks",
                in_chunk.len(),
                if starts_here.is_some() { "a" } else { "no" }
            )));
        }
        if !tagged && n_chunks > 1 {
            return Err(Error::Inconsistent(format!(
                "layout has no flow tags but the encoder made {n_chunks} chunks"
            )));
        }
        Ok(TagHeads {
            attr_dim: layout.attribute_dim(),
            starts_here,
            in_chunk,
            identity,
        })
    }

    fn yes(row: &[f32], off: usize) -> bool {
        row[off + 1] > row[off]
    }

    fn set(row: &mut [f32], off: usize, yes: bool) {
        row[off] = if yes { 0.0 } else { 1.0 };
        row[off + 1] = if yes { 1.0 } else { 0.0 };
    }
}

/// Where a planned flow came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The chunk whose sample started the flow.
    pub chunk: usize,
    /// Its row in that chunk's sampled attributes.
    pub row: usize,
}

/// The attribute rows a chunk generates features for: carried flows first, then new ones.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChunkPlan {
    /// `[rows, A]` attributes, row-major.
    pub attributes: Vec<f32>,
    /// The origin of each row.
    pub origins: Vec<Origin>,
    /// How many leading rows are carried from earlier chunks.
    pub carried: usize,
    /// Rows whose flow lives in this chunk only (neither carried in nor carried on): the ones
    /// whose five-tuple [`clean_chunk`] may change.
    pub local: Vec<bool>,
}

impl ChunkPlan {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.origins.len()
    }

    /// True when the chunk generates nothing.
    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }
}

/// Counts of what the attribute-level merge kept and dropped, summed over chunks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeCounts {
    /// Attribute rows sampled.
    pub sampled: u64,
    /// Rows kept as flows starting in their chunk.
    pub started: u64,
    /// Rows with `starts_here` off, usable only as continuation rows.
    pub continuation_rows: u64,
    /// Continuation rows no carried flow used (dropped).
    pub continuation_rows_unused: u64,
    /// Rows with `starts_here` on but their own `in_chunk` off (contradictory tags; dropped).
    pub dropped_contradictory_tags: u64,
    /// Flows carried into a later chunk (one per flow and later chunk).
    pub carried: u64,
    /// Carried flows that took their start time from a row already used (too few
    /// continuation rows in the chunk).
    pub continuation_rows_reused: u64,
    /// Carried flows that found no continuation row at all (their start time is the chunk's
    /// beginning).
    pub carried_without_continuation: u64,
}

struct Pending {
    origin: Origin,
    identity: Vec<f32>,
}

/// Plans chunks in order, holding the identities of flows carried into later chunks.
pub struct Merger {
    heads: TagHeads,
    n_chunks: usize,
    next: usize,
    pending: Vec<Vec<Pending>>,
    counts: MergeCounts,
}

impl Merger {
    /// A merger for `n_chunks` chunks with the given heads.
    pub fn new(heads: TagHeads, n_chunks: usize) -> Self {
        Merger {
            heads,
            n_chunks,
            next: 0,
            pending: (0..n_chunks).map(|_| Vec::new()).collect(),
            counts: MergeCounts::default(),
        }
    }

    /// Counts so far.
    pub fn counts(&self) -> &MergeCounts {
        &self.counts
    }

    /// Plans chunk `chunk` (chunks must come in order 0, 1, 2, ...) from the attributes the
    /// model sampled for it, `[n, A]` row-major.
    pub fn plan_chunk(&mut self, chunk: usize, sampled: &[f32]) -> Result<ChunkPlan> {
        let a = self.heads.attr_dim;
        if chunk != self.next || chunk >= self.n_chunks {
            return Err(Error::Inconsistent(format!(
                "chunk {chunk} planned out of order (expected {} of {})",
                self.next, self.n_chunks
            )));
        }
        if a == 0 || !sampled.len().is_multiple_of(a) {
            return Err(Error::Inconsistent(format!(
                "chunk {chunk}: {} attribute values are not rows of {a}",
                sampled.len()
            )));
        }
        self.next += 1;
        let n = sampled.len() / a;
        self.counts.sampled += n as u64;
        let Some(sh) = self.heads.starts_here else {
            // One chunk, no tags: every row is a flow of its own.
            return Ok(ChunkPlan {
                attributes: sampled.to_vec(),
                origins: (0..n).map(|row| Origin { chunk, row }).collect(),
                carried: 0,
                local: vec![true; n],
            });
        };
        let own = self.heads.in_chunk[chunk];
        let mut started = Vec::new();
        let mut continuation = Vec::new();
        for (row, r) in sampled.chunks_exact(a).enumerate() {
            match (TagHeads::yes(r, sh), TagHeads::yes(r, own)) {
                (true, true) => started.push(row),
                (true, false) => self.counts.dropped_contradictory_tags += 1,
                (false, _) => continuation.push(row),
            }
        }
        self.counts.started += started.len() as u64;
        self.counts.continuation_rows += continuation.len() as u64;

        let mut plan = ChunkPlan::default();
        let carried = std::mem::take(&mut self.pending[chunk]);
        plan.carried = carried.len();
        self.counts.carried += carried.len() as u64;
        if carried.len() < continuation.len() {
            self.counts.continuation_rows_unused += (continuation.len() - carried.len()) as u64;
        }
        for (k, p) in carried.into_iter().enumerate() {
            // Start from a continuation row (its flow_start is this chunk's), or from zeros
            // (flow_start at the chunk's beginning) when the model sampled none.
            let mut row = match continuation.len() {
                0 => {
                    self.counts.carried_without_continuation += 1;
                    vec![0.0; a]
                }
                m => {
                    if k >= m {
                        self.counts.continuation_rows_reused += 1;
                    }
                    sampled[continuation[k % m] * a..][..a].to_vec()
                }
            };
            let mut at = 0;
            for range in &self.heads.identity {
                row[range.clone()].copy_from_slice(&p.identity[at..at + range.len()]);
                at += range.len();
            }
            TagHeads::set(&mut row, sh, false);
            for (c, &off) in self.heads.in_chunk.iter().enumerate() {
                TagHeads::set(&mut row, off, c == chunk);
            }
            plan.attributes.extend_from_slice(&row);
            plan.origins.push(p.origin);
            plan.local.push(false);
        }
        for &row in &started {
            let r = &sampled[row * a..][..a];
            plan.attributes.extend_from_slice(r);
            let origin = Origin { chunk, row };
            plan.origins.push(origin);
            let identity: Vec<f32> = self
                .heads
                .identity
                .iter()
                .flat_map(|range| r[range.clone()].iter().copied())
                .collect();
            let later: Vec<usize> = (chunk + 1..self.n_chunks)
                .filter(|&i| TagHeads::yes(r, self.heads.in_chunk[i]))
                .collect();
            plan.local.push(later.is_empty());
            for i in later {
                self.pending[i].push(Pending {
                    origin,
                    identity: identity.clone(),
                });
            }
        }
        Ok(plan)
    }
}

/// Counts of the record-level clean-up, summed over chunks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CleanCounts {
    /// Records decoded (steps whose gen_flag was on).
    pub decoded_records: u64,
    /// Flows dropped because an earlier flow of the chunk had the same five-tuple.
    pub duplicate_flows: u64,
    /// Records of those flows.
    pub duplicate_flow_records: u64,
    /// Flows that repeated an earlier flow's five-tuple and got a fresh port instead of being
    /// dropped (see [`Duplicates::NewPort`]).
    #[serde(default)]
    pub new_port_flows: u64,
    /// Records dropped for lying outside their chunk's time range.
    pub outside_time_range: u64,
    /// Records kept.
    pub kept_records: u64,
}

fn five_tuple(r: &Records, i: usize) -> FiveTuple {
    r.five_tuple(i)
}

fn time_of(r: &Records, i: usize) -> i64 {
    match r {
        Records::Packets(t) => t.time_us[i],
        Records::Flows(t) => t.ts_us[i],
    }
}

fn take(r: &Records, idx: &[usize]) -> Records {
    match r {
        Records::Packets(t) => Records::Packets(t.take(idx)),
        Records::Flows(t) => Records::Flows(t.take(idx)),
    }
}

/// What happens to a flow whose five-tuple an earlier flow of its chunk already has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Duplicates {
    /// A TCP or UDP flow that lives in this chunk only gets a fresh port, as a host opening
    /// another connection would: its higher port (the ephemeral one by convention; the source
    /// on a tie) moves up to the next value, wrapping from 65535 to 1024, that gives a
    /// five-tuple no flow of the chunk has. Other flows are dropped.
    #[default]
    NewPort,
    /// Every such flow is dropped (SPEC §5.4).
    Drop,
}

/// TCP and UDP: the protocols whose ports identify a connection.
fn has_ports(proto: u8) -> bool {
    matches!(proto, PROTO_TCP | PROTO_UDP)
}

/// The five-tuple `k` with its higher port moved to the next value (wrapping from 65535 to
/// 1024) that is not in `used`; `None` when every value is.
fn fresh_port(k: FiveTuple, used: &HashSet<FiveTuple>) -> Option<FiveTuple> {
    let src = k.srcport >= k.dstport;
    let start = if src { k.srcport } else { k.dstport };
    let mut p = start;
    for _ in 0..(65_536 - 1024) {
        p = if p == u16::MAX { 1024 } else { p + 1 };
        let mut n = k;
        if src {
            n.srcport = p;
        } else {
            n.dstport = p;
        }
        if !used.contains(&n) {
            return Some(n);
        }
    }
    None
}

fn set_ports(r: &mut Records, i: usize, k: FiveTuple) {
    match r {
        Records::Packets(t) => (t.srcport[i], t.dstport[i]) = (k.srcport, k.dstport),
        Records::Flows(t) => (t.srcport[i], t.dstport[i]) = (k.srcport, k.dstport),
    }
}

/// Cleans one chunk's decoded records: the first flow (lowest flow index) of each five-tuple
/// keeps it; a later flow with the same five-tuple gets a fresh port when `policy` is
/// [`Duplicates::NewPort`], it is TCP or UDP and `local[flow]` says it lives in this chunk
/// only (a missing entry means no), and is dropped otherwise; records outside `[t_lo, t_hi]`
/// (µs, inclusive) are dropped; the rest are sorted by time (stable, so equal times keep flow
/// order). `flow_of[i]` is the flow (plan row) record `i` belongs to.
pub fn clean_chunk(
    records: &Records,
    flow_of: &[usize],
    local: &[bool],
    policy: Duplicates,
    t_lo: i64,
    t_hi: i64,
    counts: &mut CleanCounts,
) -> Result<Records> {
    if flow_of.len() != records.len() {
        return Err(Error::Inconsistent(format!(
            "{} records but {} flow indices",
            records.len(),
            flow_of.len()
        )));
    }
    counts.decoded_records += records.len() as u64;
    // The first flow index seen for each five-tuple owns it; the other flows with it are
    // duplicates, with the five-tuple they share (every record of a flow has its flow's).
    let mut owner: std::collections::HashMap<FiveTuple, usize> = std::collections::HashMap::new();
    let mut dups: BTreeMap<usize, FiveTuple> = BTreeMap::new();
    for (i, &f) in flow_of.iter().enumerate() {
        let key = five_tuple(records, i);
        let o = *owner.entry(key).or_insert(f);
        if o != f {
            // Flows arrive in plan order, but be safe if they do not: the lower index wins.
            if f < o {
                dups.insert(o, key);
                owner.insert(key, f);
            } else {
                dups.insert(f, key);
            }
        }
    }
    // Duplicates that may move get a fresh port, in flow order; the rest are dropped.
    let mut moved: BTreeMap<usize, FiveTuple> = BTreeMap::new();
    if policy == Duplicates::NewPort && !dups.is_empty() {
        let mut used: HashSet<FiveTuple> = owner.keys().copied().collect();
        for (&f, &k) in &dups {
            if !(local.get(f).copied().unwrap_or(false) && has_ports(k.proto)) {
                continue;
            }
            if let Some(n) = fresh_port(k, &used) {
                used.insert(n);
                moved.insert(f, n);
            }
        }
        dups.retain(|f, _| !moved.contains_key(f));
        counts.new_port_flows += moved.len() as u64;
    }
    let mut keep = Vec::with_capacity(records.len());
    for (i, &f) in flow_of.iter().enumerate() {
        if dups.contains_key(&f) {
            counts.duplicate_flow_records += 1;
            continue;
        }
        let t = time_of(records, i);
        if t < t_lo || t > t_hi {
            counts.outside_time_range += 1;
            continue;
        }
        keep.push(i);
    }
    counts.duplicate_flows += dups.len() as u64;
    keep.sort_by_key(|&i| time_of(records, i));
    counts.kept_records += keep.len() as u64;
    let mut out = take(records, &keep);
    if !moved.is_empty() {
        for (j, &i) in keep.iter().enumerate() {
            if let Some(&k) = moved.get(&flow_of[i]) {
                set_ports(&mut out, j, k);
            }
        }
    }
    Ok(out)
}

/// An empty table of the same kind.
pub fn empty_like(r: &Records) -> Records {
    match r {
        Records::Packets(_) => Records::Packets(PacketColumns::default()),
        Records::Flows(_) => Records::Flows(FlowColumns::default()),
    }
}
