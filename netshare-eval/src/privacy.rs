//! A membership-inference audit: does the synthetic trace give away which records the model
//! trained on? Measured, not promised, on a held-out report's two parts of the real trace.
//!
//! - **Members** are training records; **non-members** are held-out records (disjoint
//!   five-tuples, same capture). Both are sampled to at most [`MAX_QUERIES`] rows each.
//! - **Distance to closest record (DCR) attack.** For each member and non-member, the distance
//!   to its nearest record of the candidate trace. An attacker guesses "member" for small
//!   distances; the attack's AUC is the ROC AUC of `-DCR` with members as positives. 0.5: the
//!   trace says nothing about membership; 1: every member has a closer copy than any
//!   non-member.
//! - **Exact copies.** The share of candidate records whose five-tuple and size fields equal a
//!   member's exactly, beside the share that equal a non-member's (what chance and popular
//!   services give without any memorisation).
//!
//! The distance between two records counts each differing five-tuple field (source and
//! destination address, ports, protocol) as 1 and adds, for each size field, the absolute
//! difference of `log1p` values divided by that field's standard deviation of `log1p` over the
//! queries (0 when it does not vary). Time is left out: it says when, not what.
//!
//! Beside each candidate the audit reports a **real-vs-real reference**: the non-members are
//! cut in two by five-tuple hash; one half stays the non-member queries and the other half is
//! judged as if it were a synthetic trace. It is real traffic of the same network that never
//! saw the members, so its AUC is what no memorisation at all looks like on this data.

use netshare_core::records::IpAddr;
use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::table::Table;

/// The most member (and non-member) queries the audit makes.
pub const MAX_QUERIES: usize = 2_000;
/// The most candidate rows the nearest-record search scans.
pub const MAX_CANDIDATE_ROWS: usize = 20_000;
/// Name of the real-vs-real reference candidate.
pub const REFERENCE: &str = "real-vs-real";

/// The audit of one candidate trace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditResult {
    /// Candidate rows searched.
    pub candidate_rows: usize,
    /// ROC AUC of the distance-to-closest-record attack (members positive); `None` when
    /// undefined (no members or no non-members).
    pub dcr_auc: Option<f64>,
    /// Median distance of members to their closest candidate record.
    pub member_median_dcr: Option<f64>,
    /// Median distance of non-members to their closest candidate record.
    pub non_member_median_dcr: Option<f64>,
    /// Share of candidate rows equal to some member in five-tuple and size fields.
    pub exact_copy_share_members: f64,
    /// Share of candidate rows equal to some non-member in five-tuple and size fields.
    pub exact_copy_share_non_members: f64,
}

/// The membership-inference audit of a held-out report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MembershipAudit {
    /// Member queries (training records).
    pub members: usize,
    /// Non-member queries (held-out records).
    pub non_members: usize,
    /// The size fields in the distance.
    pub size_fields: Vec<String>,
    /// Results by candidate: `synthetic`, `marginals`, ... and [`REFERENCE`].
    pub candidates: BTreeMap<String, AuditResult>,
}

/// Rows of `t` whose five-tuple hash is even (`true`) or odd: a split with whole flows.
fn by_hash(t: &Table, even: bool, seed: u64) -> Table {
    let idx: Vec<usize> = (0..t.len())
        .filter(|&i| (t.five_tuple(i).seeded_hash(seed) & 1 == 0) == even)
        .collect();
    t.take(&idx)
}

/// At most `n` rows of `t`, evenly spaced (deterministic, keeps the time spread).
fn at_most(t: &Table, n: usize) -> Table {
    if t.len() <= n {
        return t.clone();
    }
    let idx: Vec<usize> = (0..n).map(|k| k * t.len() / n).collect();
    t.take(&idx)
}

/// A record as the distance sees it.
struct Points<'a> {
    t: &'a Table,
    /// `log1p` of each size field, by field.
    logs: Vec<Vec<f64>>,
}

impl<'a> Points<'a> {
    fn new(t: &'a Table, fields: &[String]) -> Points<'a> {
        let logs = fields
            .iter()
            .map(|f| {
                t.value(f)
                    .map(|v| v.iter().map(|x| x.max(0.0).ln_1p()).collect())
                    .unwrap_or_else(|| vec![0.0; t.len()])
            })
            .collect();
        Points { t, logs }
    }
}

/// Distance between row `i` of `a` and row `j` of `b` (see the module documentation).
fn distance(a: &Points, i: usize, b: &Points, j: usize, inv_scale: &[f64]) -> f64 {
    let (x, y) = (a.t, b.t);
    let mut d = f64::from(u8::from(x.srcip[i] != y.srcip[j]))
        + f64::from(u8::from(x.dstip[i] != y.dstip[j]))
        + f64::from(u8::from(x.srcport[i] != y.srcport[j]))
        + f64::from(u8::from(x.dstport[i] != y.dstport[j]))
        + f64::from(u8::from(x.proto[i] != y.proto[j]));
    for (k, s) in inv_scale.iter().enumerate() {
        d += (a.logs[k][i] - b.logs[k][j]).abs() * s;
    }
    d
}

/// Each query's distance to its closest candidate row.
fn closest(queries: &Points, cand: &Points, inv_scale: &[f64]) -> Vec<f64> {
    use rayon::prelude::*;
    (0..queries.t.len())
        .into_par_iter()
        .map(|i| {
            (0..cand.t.len())
                .map(|j| distance(queries, i, cand, j, inv_scale))
                .fold(f64::INFINITY, f64::min)
        })
        .collect()
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let s = netshare_stats::sorted(v);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// The exact-copy key of a row: five-tuple and size fields (bit patterns).
fn key(t: &Table, i: usize, fields: &[String]) -> (IpAddr, IpAddr, u16, u16, u8, Vec<u64>) {
    (
        t.srcip[i],
        t.dstip[i],
        t.srcport[i],
        t.dstport[i],
        t.proto[i],
        fields
            .iter()
            .map(|f| t.value(f).map_or(0, |v| v[i].to_bits()))
            .collect(),
    )
}

/// The size fields of a trace kind: flows `td`, `pkt`, `byt`; packets `pkt_len`, `tos`, `ttl`.
fn size_fields(t: &Table) -> Vec<String> {
    t.values.iter().map(|c| c.name.to_string()).collect()
}

/// Audits one candidate against the member and non-member queries `pm`, `pn`.
fn audit_one(
    pm: &Points,
    pn: &Points,
    cand: &Table,
    fields: &[String],
    inv_scale: &[f64],
) -> AuditResult {
    let (members, non_members) = (pm.t, pn.t);
    let cand = at_most(cand, MAX_CANDIDATE_ROWS);
    let pc = Points::new(&cand, fields);
    let dm = closest(pm, &pc, inv_scale);
    let dn = closest(pn, &pc, inv_scale);
    let scores: Vec<f64> = dm.iter().chain(&dn).map(|d| -d).collect();
    let positive: Vec<bool> = (0..dm.len() + dn.len()).map(|k| k < dm.len()).collect();
    let share = |q: &Table| {
        let keys: HashSet<_> = (0..q.len()).map(|i| key(q, i, fields)).collect();
        if cand.is_empty() {
            return 0.0;
        }
        (0..cand.len())
            .filter(|&i| keys.contains(&key(&cand, i, fields)))
            .count() as f64
            / cand.len() as f64
    };
    AuditResult {
        candidate_rows: cand.len(),
        dcr_auc: if dm.is_empty() || dn.is_empty() || cand.is_empty() {
            None
        } else {
            netshare_stats::roc_auc(&scores, &positive)
        },
        member_median_dcr: median(&dm),
        non_member_median_dcr: median(&dn),
        exact_copy_share_members: share(members),
        exact_copy_share_non_members: share(non_members),
    }
}

/// Audits each candidate (name, table) against the training records `train` (members) and the
/// held-out records `held_out` (non-members), with the real-vs-real reference beside them.
pub fn audit(
    train: &Table,
    held_out: &Table,
    candidates: &[(&str, &Table)],
    seed: u64,
) -> MembershipAudit {
    let members = at_most(train, MAX_QUERIES);
    let non_members = at_most(&by_hash(held_out, true, seed), MAX_QUERIES);
    let reference = by_hash(held_out, false, seed);
    let fields = size_fields(train);
    let (pm, pn) = (
        Points::new(&members, &fields),
        Points::new(&non_members, &fields),
    );
    // Scale of each size field over all queries.
    let inv_scale: Vec<f64> = {
        (0..fields.len())
            .map(|k| {
                let v: Vec<f64> = pm.logs[k].iter().chain(&pn.logs[k]).copied().collect();
                let n = v.len() as f64;
                if v.len() < 2 {
                    return 0.0;
                }
                let mean = v.iter().sum::<f64>() / n;
                let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
                if sd > 0.0 { 1.0 / sd } else { 0.0 }
            })
            .collect()
    };
    let mut out = BTreeMap::new();
    for (name, t) in candidates {
        out.insert(
            (*name).to_string(),
            audit_one(&pm, &pn, t, &fields, &inv_scale),
        );
    }
    out.insert(
        REFERENCE.to_string(),
        audit_one(&pm, &pn, &reference, &fields, &inv_scale),
    );
    MembershipAudit {
        members: pm.t.len(),
        non_members: pn.t.len(),
        size_fields: fields,
        candidates: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netshare_core::records::{FlowColumns, FlowRecord, Records};

    fn flows(rows: &[(u32, u16, u64)]) -> Table {
        let mut t = FlowColumns::default();
        for (k, &(ip, port, pkt)) in rows.iter().enumerate() {
            t.push(FlowRecord {
                srcip: netshare_core::addr::v4(ip),
                dstip: netshare_core::addr::v4(99),
                srcport: port,
                dstport: 53,
                proto: 17,
                ts_us: k as i64,
                td: 0.0,
                pkt,
                byt: 100,
                label: String::new(),
            });
        }
        Table::from_records(&Records::Flows(t))
    }

    /// Worked by hand: pkt log1p values 1 → 0.693, 3 → 1.386, 7 → 2.079; over the four queries
    /// (1, 1, 3, 7) the mean is 1.213 and the population sd 0.5747.
    #[test]
    fn distances_shares_and_the_auc_match_a_hand_computation() {
        let members = flows(&[(1, 10, 1), (2, 20, 3)]);
        let non_members = flows(&[(3, 30, 1), (4, 40, 7)]);
        let cand = flows(&[(1, 10, 1), (4, 41, 7)]);
        let fields = size_fields(&members);
        let logs = [2f64.ln(), 2f64.ln(), 4f64.ln(), 8f64.ln()];
        let mean = logs.iter().sum::<f64>() / 4.0;
        let sd = (logs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 4.0).sqrt();
        assert!((sd - 0.5747).abs() < 1e-4, "{sd}");
        // td and byt do not vary: scale 0; pkt: 1/sd.
        let inv = [0.0, 1.0 / sd, 0.0];
        let (pm, pn) = (
            Points::new(&members, &fields),
            Points::new(&non_members, &fields),
        );
        let r = audit_one(&pm, &pn, &cand, &fields, &inv);
        // Member 1 equals candidate 1: 0. Member 2 (ip 2, port 20, pkt 3): to candidate 1,
        // srcip and srcport differ (2) plus |ln4 - ln2|/sd; to candidate 2 the same two fields
        // plus |ln4 - ln8|/sd; both are 2 + ln2/sd.
        // Non-member 1 (3, 30, 1): to candidate 1, 2 + 0. Non-member 2 (4, 40, 7): to candidate
        // 2, srcport differs: 1.
        let m2 = 2.0 + 2f64.ln() / sd;
        let got = r.member_median_dcr.expect("defined");
        assert!((got - m2 / 2.0).abs() < 1e-12, "{got}");
        assert_eq!(r.non_member_median_dcr, Some(1.5));
        // Scores -d: members {0, -m2 = -3.22}, non-members {-2, -1}. Pairs (member beats
        // non-member): 0 beats both, -3.22 beats none: 2 of 4.
        assert_eq!(r.dcr_auc, Some(0.5));
        assert_eq!(r.exact_copy_share_members, 0.5);
        assert_eq!(r.exact_copy_share_non_members, 0.0);
    }

    /// A generator that copies its training records is flagged: AUC 1, every record a copy;
    /// real traffic that never saw the members is not.
    #[test]
    fn a_copying_generator_is_flagged_and_real_traffic_is_not() {
        // Hosts of one population, ports and sizes drawn independently per record; members
        // and held-out have disjoint addresses.
        let rows = |base: u32| -> Vec<(u32, u16, u64)> {
            (0..400u32)
                .map(|i| {
                    let h = netshare_core::seed::mix64(u64::from(base + i));
                    (base + i, 1000 + (h % 50) as u16, 1 + (h >> 32) % 17)
                })
                .collect()
        };
        let train = flows(&rows(0));
        let held_out = flows(&rows(10_000));
        let a = audit(&train, &held_out, &[("copy", &train)], 7);
        let copy = &a.candidates["copy"];
        assert_eq!(copy.dcr_auc, Some(1.0));
        assert_eq!(copy.exact_copy_share_members, 1.0);
        assert_eq!(copy.exact_copy_share_non_members, 0.0);
        let reference = &a.candidates[REFERENCE];
        let auc = reference.dcr_auc.expect("defined");
        assert!((auc - 0.5).abs() < 0.1, "real-vs-real AUC {auc}");
        assert_eq!(reference.exact_copy_share_members, 0.0);
        assert!(
            a.members == 400 && a.non_members > 150 && a.non_members < 250,
            "{a:?}"
        );
    }
}
