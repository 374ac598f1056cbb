//! The member-level checks: linearizability of the client history (`lincheck`'s etcd model:
//! ranges, multi-key transactions, leases), revisions never going back on any member (within
//! an incarnation, and never below what the member had before a crash once it serves again
//! is a figure), revisions in real-time order across the cluster, members' stores equal at
//! equal applied slots, historical reads agreeing, and liveness once faults stop.

use super::Done;
use lincheck::etcd::{EtcdModel, EtcdOperation};
use lincheck::{CheckOptions, Verdict};
use paxos::Slot;
use serde::Serialize;
use std::collections::BTreeMap;

/// The first violations are kept in full; the rest are counted.
const VIOLATIONS_KEPT: usize = 16;

/// A member-level check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemberCheck {
    /// The client history is not linearizable.
    Linearizability,
    /// A member's store revision went back within one incarnation.
    RevisionWentBack,
    /// An operation saw a revision below one already acknowledged before it began.
    RevisionOrder,
    /// Two members' stores differ at the same applied slot.
    StoresDiffer,
    /// Two reads of one key at one past revision disagree.
    HistoricalReads,
    /// Not converged, or operations pending, long after faults stopped.
    Liveness,
    /// A watch's events were out of order, repeated, before its start, or not exactly the
    /// changes applied in its range (a gap or a split revision): what a client sees.
    Watch,
    /// A member shared a batch of changes outside its revisions, or members shared different
    /// changes for one revision.
    SharedChanges,
    /// A member could not start from its disk (no disk damage is injected here).
    Recovery,
    /// A peer message did not encode or decode.
    Codec,
    /// A membership change was answered done with a member list that contradicts it.
    Membership,
    /// Leader leases: a member held a lease by its own clock while another led at a higher
    /// ballot (`clocks.rs`).
    LeaseOverlap,
    /// A lease was revoked earlier, or kept later, than its last acknowledged renewal allows
    /// (`keepalive.rs`: the bound a leader change may move it by).
    Lease,
    /// Two lock (or election) holders at once, or a holder's fencing revision not above the
    /// one before it (`locks.rs`).
    Lock,
    /// An observation of an election went back, or disagreed with the leader holding then
    /// (`locks.rs`).
    Election,
}

impl MemberCheck {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            MemberCheck::Linearizability => "linearizability",
            MemberCheck::RevisionWentBack => "revision-went-back",
            MemberCheck::RevisionOrder => "revision-order",
            MemberCheck::StoresDiffer => "stores-differ",
            MemberCheck::HistoricalReads => "historical-reads",
            MemberCheck::Liveness => "liveness",
            MemberCheck::Watch => "watch",
            MemberCheck::SharedChanges => "shared-changes",
            MemberCheck::Recovery => "recovery",
            MemberCheck::Codec => "codec",
            MemberCheck::Membership => "membership",
            MemberCheck::LeaseOverlap => "lease-overlap",
            MemberCheck::Lease => "lease",
            MemberCheck::Lock => "lock",
            MemberCheck::Election => "election",
        }
    }
}

/// One violation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberViolation {
    /// The check.
    pub check: MemberCheck,
    /// Virtual time, microseconds.
    pub at_us: u64,
    /// The member (1-based id), if one.
    pub member: Option<u64>,
    /// What was seen.
    pub detail: String,
}

/// What a historical read saw: the value and its mod revision, or nothing.
type Seen = Option<(String, i64)>;

pub(crate) struct Checks {
    pub violations: Vec<MemberViolation>,
    pub counts: BTreeMap<MemberCheck, u64>,
    /// Per member: the highest revision this incarnation, and ever.
    revisions: Vec<(i64, i64)>,
    /// Restarts that came up with a store revision below the member's highest before.
    pub restarts_behind: u64,
    /// Applied slot → (digest, revision, member) first seen there.
    stores: BTreeMap<u64, (u64, i64, usize)>,
    pub store_comparisons: u64,
    /// (key, revision) → (value and mod revision, member) first read there.
    historical: BTreeMap<(String, i64), (Seen, usize)>,
    pub historical_reads: u64,
    pub lincheck_detail: Option<String>,
}

impl Checks {
    pub fn new(nodes: usize) -> Checks {
        Checks {
            violations: Vec::new(),
            counts: BTreeMap::new(),
            revisions: vec![(0, 0); nodes],
            restarts_behind: 0,
            stores: BTreeMap::new(),
            store_comparisons: 0,
            historical: BTreeMap::new(),
            historical_reads: 0,
            lincheck_detail: None,
        }
    }

    pub fn violation(
        &mut self,
        check: MemberCheck,
        at_us: u64,
        node: Option<usize>,
        detail: String,
    ) {
        *self.counts.entry(check).or_insert(0) += 1;
        if self.violations.len() < VIOLATIONS_KEPT {
            self.violations.push(MemberViolation {
                check,
                at_us,
                member: node.map(|i| i as u64 + 1),
                detail,
            });
        }
    }

    /// Member `i` started (a new incarnation) with its store at `revision`.
    pub fn started(&mut self, i: usize, revision: i64) {
        let (_, ever) = self.revisions[i];
        self.revisions[i] = (revision, ever);
    }

    /// Place `i`'s disk was wiped (or a new member took the place): what it had before is
    /// another member's history.
    pub fn wiped(&mut self, i: usize) {
        self.revisions[i] = (0, 0);
    }

    /// Member `i` re-applied what its disk holds and stands at `revision`: below what it
    /// had before the crash is counted (it catches up from its peers before it can serve a
    /// linearizable read; serializable reads may be that stale, as in etcd).
    pub fn recovered(&mut self, i: usize, revision: i64) {
        let (this, ever) = self.revisions[i];
        if revision < ever {
            self.restarts_behind += 1;
        }
        self.revisions[i] = (this.max(revision), ever.max(revision));
    }

    /// Member `i`'s store (or published) revision is `revision` now.
    pub fn revision(&mut self, i: usize, revision: i64, now: u64) {
        let (this, ever) = self.revisions[i];
        if revision < this {
            let detail = format!("m{}: revision {revision} after {this}", i + 1);
            self.violation(MemberCheck::RevisionWentBack, now, Some(i), detail);
        }
        self.revisions[i] = (this.max(revision), ever.max(revision));
    }

    /// Member `i` applied through `slot`, with this store.
    pub fn store_at(&mut self, i: usize, slot: Slot, digest: u64, revision: i64, now: u64) {
        match self.stores.get(&slot.0) {
            None => {
                self.stores.insert(slot.0, (digest, revision, i));
            }
            Some(&(d, r, j)) => {
                self.store_comparisons += 1;
                if (d, r) != (digest, revision) {
                    let detail = format!(
                        "at slot {}: m{} has revision {r} digest {d:x}, m{} revision {revision} digest {digest:x}",
                        slot.0,
                        j + 1,
                        i + 1
                    );
                    self.violation(MemberCheck::StoresDiffer, now, Some(i), detail);
                }
            }
        }
    }

    /// A read of `key` at past revision `at` on member `i` saw `value`.
    pub fn historical(&mut self, key: &str, at: i64, value: Seen, i: usize, now: u64) {
        self.historical_reads += 1;
        if let Some((mod_revision, _)) = value.as_ref().map(|(v, m)| (*m, v)) {
            if mod_revision > at {
                let detail = format!(
                    "m{}: {key} at revision {at} has mod revision {mod_revision}",
                    i + 1
                );
                self.violation(MemberCheck::HistoricalReads, now, Some(i), detail);
            }
        }
        match self.historical.get(&(key.to_string(), at)) {
            None => {
                self.historical.insert((key.to_string(), at), (value, i));
            }
            Some((first, j)) if *first != value => {
                let detail = format!(
                    "{key} at revision {at}: m{} read {first:?}, m{} read {value:?}",
                    j + 1,
                    i + 1
                );
                self.violation(MemberCheck::HistoricalReads, now, Some(i), detail);
            }
            Some(_) => {}
        }
    }

    /// Every linearizable operation's revision is at least that of every operation
    /// acknowledged before it began, and a put's is above it (a put makes a new revision).
    pub fn real_time_revisions(&mut self, done: &[Done]) {
        let mut by_complete: Vec<&Done> = done.iter().filter(|d| d.linearizable).collect();
        by_complete.sort_by_key(|d| (d.complete, d.revision));
        let mut prefix_max = Vec::with_capacity(by_complete.len());
        let mut max = 0i64;
        for d in &by_complete {
            max = max.max(d.revision);
            prefix_max.push(max);
        }
        for d in done.iter().filter(|d| d.linearizable) {
            let before = by_complete.partition_point(|p| p.complete < d.invoke);
            if before == 0 {
                continue;
            }
            let floor = prefix_max[before - 1];
            let by = by_complete[..before]
                .iter()
                .find(|p| p.revision == floor)
                .map_or(String::new(), |p| {
                    format!(
                        " ({} at m{}, answered at {})",
                        p.kind,
                        p.node + 1,
                        p.complete
                    )
                });
            let bad = if d.bumps {
                d.revision <= floor
            } else {
                d.revision < floor
            };
            if bad {
                let detail = format!(
                    "{} invoked at {} answered revision {} at m{}, but revision {floor} was acknowledged before{by}",
                    d.kind,
                    d.invoke,
                    d.revision,
                    d.node + 1
                );
                self.violation(MemberCheck::RevisionOrder, d.complete, None, detail);
            }
        }
    }

    /// Checks the history; returns the verdict (Unknown is never a pass).
    pub fn linearizability(&mut self, history: &[EtcdOperation]) -> Verdict {
        let result = lincheck::check(&EtcdModel, history, &CheckOptions::default());
        if result.verdict != Verdict::Ok {
            let detail = result
                .partitions
                .iter()
                .filter(|p| p.verdict == result.verdict)
                .map(|p| {
                    format!(
                        "group {}: {}",
                        p.key,
                        p.explanation.clone().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            if result.verdict == Verdict::Illegal {
                self.violation(MemberCheck::Linearizability, 0, None, detail.clone());
            }
            self.lincheck_detail = Some(detail);
        }
        result.verdict
    }
}
