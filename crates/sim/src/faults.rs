//! Fault models: what can go wrong, and how often, drawn per seed (swarm testing).
//!
//! Each seed draws a [`FaultPlan`] from its profile: which fault kinds are switched on and at
//! what rates. Swarm testing (Groce et al.) finds more bugs than running every fault at once,
//! because some bugs only show when a fault that would mask them is off.

use crate::rng::{chance_permille, range};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which families of faults a run may inject, as chosen on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultProfile {
    /// No faults: only ordinary network delay and disk latency.
    None,
    /// Network faults: loss, duplication, long delays, partitions.
    Net,
    /// Crashes and restarts only.
    Crash,
    /// Crashes plus disk faults: torn writes, bit flips, misdirected writes, truncated and
    /// rolled-back files, wiped disks.
    Disk,
    /// All of the above.
    All,
}

impl FaultProfile {
    /// Every profile.
    pub const ALL: [FaultProfile; 5] = [
        FaultProfile::None,
        FaultProfile::Net,
        FaultProfile::Crash,
        FaultProfile::Disk,
        FaultProfile::All,
    ];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            FaultProfile::None => "none",
            FaultProfile::Net => "net",
            FaultProfile::Crash => "crash",
            FaultProfile::Disk => "disk",
            FaultProfile::All => "all",
        }
    }

    /// Parses [`FaultProfile::name`].
    pub fn from_name(name: &str) -> Option<FaultProfile> {
        FaultProfile::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether network faults are in this profile.
    pub fn net(self) -> bool {
        matches!(self, FaultProfile::Net | FaultProfile::All)
    }

    /// Whether crashes are in this profile.
    pub fn crash(self) -> bool {
        matches!(
            self,
            FaultProfile::Crash | FaultProfile::Disk | FaultProfile::All
        )
    }

    /// Whether disk faults are in this profile.
    pub fn disk(self) -> bool {
        matches!(self, FaultProfile::Disk | FaultProfile::All)
    }
}

impl fmt::Display for FaultProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One kind of fault, as counted in the figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// A message dropped by random loss.
    Loss,
    /// A message delivered twice.
    Duplicate,
    /// A message held back far beyond the usual delay (reordering it past many others).
    LongDelay,
    /// One node cut off from every other.
    IsolateOne,
    /// A minority cut off from a majority, both ways.
    MajorityMinority,
    /// Messages flow one way only between two groups.
    OneWay,
    /// Two groups that cannot talk, joined through one bridge node.
    Bridge,
    /// Nodes in a line, each reaching only its neighbours.
    Chained,
    /// Links cut one by one, then healed in random order.
    Swizzle,
    /// A node crashed, losing every volatile state.
    Crash,
    /// A follower started phase 1 at once, skipping the pre-vote (as a leadership transfer
    /// does): dueling ballots even while a leader is healthy.
    ForcedElection,
    /// A crashed node's disk was wiped (a replaced disk): it must rebuild as a learner.
    Wipe,
    /// A crash cut the last unsynced write of a file short (a torn write).
    TornWrite,
    /// A bit flipped in a synced record.
    BitFlip,
    /// A write landed at the wrong offset of its file.
    MisdirectedWrite,
    /// A file was cut short.
    Truncate,
    /// A file reverted to its contents before its last sync.
    Rollback,
    /// A membership change proposed: a node outside the configuration added as a learner.
    AddLearner,
    /// A membership change proposed: a learner made a voter.
    Promote,
    /// A membership change proposed: a follower (voter or learner) removed.
    RemoveFollower,
    /// A membership change proposed: the leader removes itself.
    RemoveLeader,
}

impl FaultKind {
    /// Every kind, in the order figures list them.
    pub const ALL: [FaultKind; 21] = [
        FaultKind::Loss,
        FaultKind::Duplicate,
        FaultKind::LongDelay,
        FaultKind::IsolateOne,
        FaultKind::MajorityMinority,
        FaultKind::OneWay,
        FaultKind::Bridge,
        FaultKind::Chained,
        FaultKind::Swizzle,
        FaultKind::Crash,
        FaultKind::ForcedElection,
        FaultKind::Wipe,
        FaultKind::TornWrite,
        FaultKind::BitFlip,
        FaultKind::MisdirectedWrite,
        FaultKind::Truncate,
        FaultKind::Rollback,
        FaultKind::AddLearner,
        FaultKind::Promote,
        FaultKind::RemoveFollower,
        FaultKind::RemoveLeader,
    ];

    /// Membership changes (only with `SimConfig::membership_changes`).
    pub const MEMBERSHIP: [FaultKind; 4] = [
        FaultKind::AddLearner,
        FaultKind::Promote,
        FaultKind::RemoveFollower,
        FaultKind::RemoveLeader,
    ];

    /// Disk damage found only at the next start (the node then refuses to run).
    pub const DISK_DAMAGE: [FaultKind; 4] = [
        FaultKind::BitFlip,
        FaultKind::MisdirectedWrite,
        FaultKind::Truncate,
        FaultKind::Rollback,
    ];

    /// The partition kinds.
    pub const PARTITIONS: [FaultKind; 6] = [
        FaultKind::IsolateOne,
        FaultKind::MajorityMinority,
        FaultKind::OneWay,
        FaultKind::Bridge,
        FaultKind::Chained,
        FaultKind::Swizzle,
    ];

    /// Its kebab-case name, as in traces and figures.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Loss => "loss",
            FaultKind::Duplicate => "duplicate",
            FaultKind::LongDelay => "long-delay",
            FaultKind::IsolateOne => "isolate-one",
            FaultKind::MajorityMinority => "majority-minority",
            FaultKind::OneWay => "one-way",
            FaultKind::Bridge => "bridge",
            FaultKind::Chained => "chained",
            FaultKind::Swizzle => "swizzle",
            FaultKind::Crash => "crash",
            FaultKind::ForcedElection => "forced-election",
            FaultKind::Wipe => "wipe",
            FaultKind::TornWrite => "torn-write",
            FaultKind::BitFlip => "bit-flip",
            FaultKind::MisdirectedWrite => "misdirected-write",
            FaultKind::Truncate => "truncate",
            FaultKind::Rollback => "rollback",
            FaultKind::AddLearner => "add-learner",
            FaultKind::Promote => "promote",
            FaultKind::RemoveFollower => "remove-follower",
            FaultKind::RemoveLeader => "remove-leader",
        }
    }
}

/// A named moment at which a crash can be injected, counted in the figures so that a campaign
/// shows it reached each one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrashPoint {
    /// At a random moment.
    RandomTime,
    /// The node that leads, while it leads.
    Leader,
    /// Right after the node handed a persist batch to its disk, before the disk finished:
    /// the batch is lost or kept by a seeded coin.
    PersistIssued,
    /// Right after a batch became durable and the messages waiting on it left.
    PersistCompleted,
    /// Right after the node applied newly chosen slots and answered its clients.
    ChosenApplied,
    /// Right after a snapshot file was made durable, before the log was compacted.
    SnapshotWritten,
}

impl CrashPoint {
    /// Every crash point.
    pub const ALL: [CrashPoint; 6] = [
        CrashPoint::RandomTime,
        CrashPoint::Leader,
        CrashPoint::PersistIssued,
        CrashPoint::PersistCompleted,
        CrashPoint::ChosenApplied,
        CrashPoint::SnapshotWritten,
    ];

    /// Its kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            CrashPoint::RandomTime => "random-time",
            CrashPoint::Leader => "leader",
            CrashPoint::PersistIssued => "persist-issued",
            CrashPoint::PersistCompleted => "persist-completed",
            CrashPoint::ChosenApplied => "chosen-applied",
            CrashPoint::SnapshotWritten => "snapshot-written",
        }
    }
}

/// The faults one seed runs with, and their rates. Rates are in per mille so that plans are
/// exact integers in traces. Times are in microseconds of virtual time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultPlan {
    /// The profile this plan was drawn from.
    pub profile: FaultProfile,
    /// Fixed part of every network delay.
    pub delay_base_us: u64,
    /// Uniform random extra on every network delay (this is what reorders messages).
    pub delay_jitter_us: u64,
    /// Chance of a long delay on a message, per mille.
    pub long_delay_permille: u32,
    /// Largest long delay.
    pub long_delay_max_us: u64,
    /// Chance of losing a message, per mille (0 to 300).
    pub loss_permille: u32,
    /// Chance of delivering a message twice, per mille (0 to 500).
    pub duplicate_permille: u32,
    /// Partition shapes this seed may use (empty: none).
    pub partitions: Vec<FaultKind>,
    /// Mean gap between two partitions.
    pub partition_gap_us: u64,
    /// Longest a partition lasts.
    pub partition_max_us: u64,
    /// Mean gap between two crashes (0: no crashes).
    pub crash_gap_us: u64,
    /// Longest a crashed node stays down.
    pub restart_max_us: u64,
    /// Mean gap between two forced elections (0: none).
    pub election_gap_us: u64,
    /// Crash points this seed may use.
    pub crash_points: Vec<CrashPoint>,
    /// Fixed part of every disk write's latency.
    pub disk_base_us: u64,
    /// Uniform random extra on every disk write.
    pub disk_jitter_us: u64,
    /// A node snapshots its applied state and compacts its log every this many slots (0:
    /// never).
    pub snapshot_every_slots: u64,
    /// Chance that a crash also wipes the node's disk, per mille (only while every other
    /// member votes: a cluster that lost a quorum's disks has lost data, which no protocol
    /// can prevent).
    pub wipe_permille: u32,
    /// Kinds of disk damage this seed injects (found at the damaged node's next start).
    pub disk_damage: Vec<FaultKind>,
    /// Mean gap between two disk damages (0: none).
    pub disk_damage_gap_us: u64,
    /// Whether the nodes' logs reuse compacted segments (stale bytes after the end of a
    /// recycled segment) instead of zero-filling new ones.
    pub recycle_segments: bool,
    /// Mean gap between two membership changes the nemesis proposes (0: none; only with
    /// `SimConfig::membership_changes`, and absent from the traces of runs without).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub membership_gap_us: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl FaultPlan {
    /// The plan of a fault-free run: a few hundred microseconds to a few milliseconds of
    /// network delay, sub-millisecond disks.
    pub fn quiet(profile: FaultProfile) -> FaultPlan {
        FaultPlan {
            profile,
            delay_base_us: 500,
            delay_jitter_us: 1_500,
            long_delay_permille: 0,
            long_delay_max_us: 0,
            loss_permille: 0,
            duplicate_permille: 0,
            partitions: Vec::new(),
            partition_gap_us: 0,
            partition_max_us: 0,
            crash_gap_us: 0,
            restart_max_us: 0,
            election_gap_us: 0,
            crash_points: Vec::new(),
            disk_base_us: 100,
            disk_jitter_us: 400,
            snapshot_every_slots: 0,
            wipe_permille: 0,
            disk_damage: Vec::new(),
            disk_damage_gap_us: 0,
            recycle_segments: false,
            membership_gap_us: 0,
        }
    }

    /// Draws a plan for `profile` on a cluster of `nodes` from `rng`: each fault kind is
    /// switched on by a coin, and its rate drawn from its range.
    pub fn draw(profile: FaultProfile, nodes: usize, rng: &mut ChaCha8Rng) -> FaultPlan {
        let mut plan = FaultPlan::quiet(profile);
        plan.delay_base_us = range(rng, 100, 2_000);
        plan.delay_jitter_us = range(rng, 200, 8_000);
        plan.disk_base_us = range(rng, 20, 500);
        plan.disk_jitter_us = range(rng, 50, 2_000);
        if chance_permille(rng, 200) {
            // A slow disk: writes take up to tens of milliseconds, widening every window in
            // which a crash finds a batch in flight.
            plan.disk_jitter_us = range(rng, 2_000, 20_000);
        }
        if profile.net() {
            if chance_permille(rng, 600) {
                plan.loss_permille = range(rng, 1, 300) as u32;
            }
            if chance_permille(rng, 500) {
                plan.duplicate_permille = range(rng, 1, 500) as u32;
            }
            if chance_permille(rng, 500) {
                plan.long_delay_permille = range(rng, 1, 50) as u32;
                plan.long_delay_max_us = range(rng, 20_000, 300_000);
            }
            if nodes >= 2 && chance_permille(rng, 800) {
                for kind in FaultKind::PARTITIONS {
                    if chance_permille(rng, 600) && shape_possible(kind, nodes) {
                        plan.partitions.push(kind);
                    }
                }
                if plan.partitions.is_empty() {
                    plan.partitions.push(FaultKind::IsolateOne);
                }
                plan.partition_gap_us = range(rng, 50_000, 400_000);
                plan.partition_max_us = range(rng, 50_000, 800_000);
            }
        }
        if profile != FaultProfile::None && nodes >= 2 && chance_permille(rng, 600) {
            plan.election_gap_us = range(rng, 100_000, 800_000);
        }
        if profile.crash() {
            if chance_permille(rng, 500) {
                // A crash storm: nodes go down every few tens of milliseconds and come back
                // almost at once, so that restarts overlap elections and stale messages.
                plan.crash_gap_us = range(rng, 20_000, 80_000);
                plan.restart_max_us = range(rng, 2_000, 30_000);
            } else {
                plan.crash_gap_us = range(rng, 80_000, 600_000);
                plan.restart_max_us = range(rng, 5_000, 400_000);
            }
            for point in CrashPoint::ALL {
                if chance_permille(rng, 600) {
                    plan.crash_points.push(point);
                }
            }
            if plan.crash_points.is_empty() {
                plan.crash_points.push(CrashPoint::RandomTime);
            }
        }
        if profile.disk() && nodes >= 3 {
            if chance_permille(rng, 500) {
                plan.wipe_permille = range(rng, 50, 400) as u32;
            }
            for kind in FaultKind::DISK_DAMAGE {
                if chance_permille(rng, 500) {
                    plan.disk_damage.push(kind);
                }
            }
            if !plan.disk_damage.is_empty() {
                plan.disk_damage_gap_us = range(rng, 100_000, 800_000);
            }
        }
        plan.recycle_segments = chance_permille(rng, 500);
        if chance_permille(rng, 350) {
            // Not in every seed: a replica that installs a snapshot skips handing out the slots
            // it covers, which hides a disagreement in them from the agreement oracle.
            plan.snapshot_every_slots = range(rng, 4, 60);
        }
        plan
    }

    /// Fault kinds this plan switched on.
    pub fn enabled(&self) -> Vec<FaultKind> {
        let mut kinds = Vec::new();
        if self.loss_permille > 0 {
            kinds.push(FaultKind::Loss);
        }
        if self.duplicate_permille > 0 {
            kinds.push(FaultKind::Duplicate);
        }
        if self.long_delay_permille > 0 {
            kinds.push(FaultKind::LongDelay);
        }
        kinds.extend(self.partitions.iter().copied());
        if self.crash_gap_us > 0 {
            kinds.push(FaultKind::Crash);
        }
        if self.election_gap_us > 0 {
            kinds.push(FaultKind::ForcedElection);
        }
        if self.wipe_permille > 0 {
            kinds.push(FaultKind::Wipe);
        }
        if self.crash_gap_us > 0 {
            kinds.push(FaultKind::TornWrite);
        }
        if self.disk_damage_gap_us > 0 {
            kinds.extend(self.disk_damage.iter().copied());
        }
        if self.membership_gap_us > 0 {
            kinds.extend(FaultKind::MEMBERSHIP);
        }
        kinds.sort();
        kinds
    }
}

/// Whether a partition of this kind means anything on `nodes` members.
pub fn shape_possible(kind: FaultKind, nodes: usize) -> bool {
    match kind {
        FaultKind::Bridge | FaultKind::Chained => nodes >= 3,
        FaultKind::IsolateOne
        | FaultKind::MajorityMinority
        | FaultKind::OneWay
        | FaultKind::Swizzle => nodes >= 2,
        _ => false,
    }
}

/// Whether a network fault of this kind can happen on `nodes` members (loss, duplication and
/// delay always can; partitions need enough members for their shape).
pub fn shape_possible_or_net(kind: FaultKind, nodes: usize) -> bool {
    match kind {
        FaultKind::Loss | FaultKind::Duplicate | FaultKind::LongDelay => true,
        _ => shape_possible(kind, nodes),
    }
}

/// A partition: the set of directed links cut, by member index. `blocked[from][to]` true means
/// nothing sent by `from` reaches `to`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LinkMatrix {
    n: usize,
    blocked: Vec<bool>,
}

impl LinkMatrix {
    /// Every link up.
    pub fn healed(n: usize) -> LinkMatrix {
        LinkMatrix {
            n,
            blocked: vec![false; n * n],
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Whether messages from `from` to `to` are dropped.
    pub fn is_blocked(&self, from: usize, to: usize) -> bool {
        self.blocked[from * self.n + to]
    }

    /// Cuts (or restores) the one-way link `from → to`.
    pub fn set(&mut self, from: usize, to: usize, blocked: bool) {
        if from != to {
            self.blocked[from * self.n + to] = blocked;
        }
    }

    /// Cuts both directions between `a` and `b`.
    pub fn cut_both(&mut self, a: usize, b: usize) {
        self.set(a, b, true);
        self.set(b, a, true);
    }

    /// Whether any link is cut.
    pub fn any_blocked(&self) -> bool {
        self.blocked.iter().any(|b| *b)
    }

    /// The cut links, as `(from, to)` index pairs in order.
    pub fn blocked_links(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for from in 0..self.n {
            for to in 0..self.n {
                if self.is_blocked(from, to) {
                    out.push((from, to));
                }
            }
        }
        out
    }

    /// Whether `a` and `b` can talk both ways.
    pub fn connected(&self, a: usize, b: usize) -> bool {
        a == b || (!self.is_blocked(a, b) && !self.is_blocked(b, a))
    }
}

/// A partition shape with its members named, so that tests and explorers can ask for one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "shape", rename_all = "kebab-case")]
pub enum PartitionShape {
    /// `node` cut off from everyone.
    IsolateOne {
        /// Member index.
        node: usize,
    },
    /// `minority` cut off from the rest, both ways.
    MajorityMinority {
        /// Member indexes on the small side.
        minority: Vec<usize>,
    },
    /// Nothing from `senders` reaches anyone outside `senders`; the other direction works.
    OneWay {
        /// Member indexes whose outgoing links to the rest are cut.
        senders: Vec<usize>,
    },
    /// `left` and `right` cannot talk; `bridge` talks to both.
    Bridge {
        /// The bridge member.
        bridge: usize,
        /// One side.
        left: Vec<usize>,
        /// The other side.
        right: Vec<usize>,
    },
    /// Members in `order`, each connected only to its neighbours in the list.
    Chained {
        /// The chain, end to end.
        order: Vec<usize>,
    },
    /// Only `center` is connected to anyone; every other link is cut (OmniPaxos's
    /// "quorum-loss" shape).
    QuorumLoss {
        /// The one member still connected to all.
        center: usize,
    },
    /// `isolated` cut off from all; `hub` connected to every other member; those others
    /// cannot talk among themselves (OmniPaxos's "constrained election" shape).
    Constrained {
        /// The member cut off (typically the old leader).
        isolated: usize,
        /// The only member connected to a quorum.
        hub: usize,
    },
}

impl PartitionShape {
    /// The links this shape cuts on `n` members.
    pub fn links(&self, n: usize) -> LinkMatrix {
        let mut m = LinkMatrix::healed(n);
        match self {
            PartitionShape::IsolateOne { node } => {
                for other in 0..n {
                    m.cut_both(*node, other);
                }
            }
            PartitionShape::MajorityMinority { minority } => {
                for a in minority {
                    for b in (0..n).filter(|b| !minority.contains(b)) {
                        m.cut_both(*a, b);
                    }
                }
            }
            PartitionShape::OneWay { senders } => {
                for a in senders {
                    for b in (0..n).filter(|b| !senders.contains(b)) {
                        m.set(*a, b, true);
                    }
                }
            }
            PartitionShape::Bridge { left, right, .. } => {
                for a in left {
                    for b in right {
                        m.cut_both(*a, *b);
                    }
                }
            }
            PartitionShape::Chained { order } => {
                for (i, a) in order.iter().enumerate() {
                    for (j, b) in order.iter().enumerate() {
                        if i.abs_diff(j) > 1 {
                            m.set(*a, *b, true);
                        }
                    }
                }
            }
            PartitionShape::QuorumLoss { center } => {
                for a in 0..n {
                    for b in 0..n {
                        if a != *center && b != *center {
                            m.set(a, b, true);
                        }
                    }
                }
            }
            PartitionShape::Constrained { isolated, hub } => {
                for a in 0..n {
                    for b in 0..n {
                        let keep = a != *isolated && b != *isolated && (a == *hub || b == *hub);
                        if !keep {
                            m.set(a, b, true);
                        }
                    }
                }
            }
        }
        m
    }

    /// The fault kind this shape is counted under; `None` for the OmniPaxos scenario shapes,
    /// which only tests apply by hand.
    pub fn kind(&self) -> Option<FaultKind> {
        match self {
            PartitionShape::IsolateOne { .. } => Some(FaultKind::IsolateOne),
            PartitionShape::MajorityMinority { .. } => Some(FaultKind::MajorityMinority),
            PartitionShape::OneWay { .. } => Some(FaultKind::OneWay),
            PartitionShape::Bridge { .. } => Some(FaultKind::Bridge),
            PartitionShape::Chained { .. } => Some(FaultKind::Chained),
            PartitionShape::QuorumLoss { .. } | PartitionShape::Constrained { .. } => None,
        }
    }

    /// Draws a random shape of `kind` on `n` members (not for [`FaultKind::Swizzle`], which is
    /// a sequence of single cuts, nor for non-partition kinds).
    pub fn draw(kind: FaultKind, n: usize, rng: &mut ChaCha8Rng) -> Option<PartitionShape> {
        let mut order: Vec<usize> = (0..n).collect();
        crate::rng::shuffle(rng, &mut order);
        let shape = match kind {
            FaultKind::IsolateOne => PartitionShape::IsolateOne { node: order[0] },
            FaultKind::MajorityMinority => {
                let size = range(rng, 1, ((n - 1) / 2).max(1) as u64) as usize;
                PartitionShape::MajorityMinority {
                    minority: sorted(order[..size].to_vec()),
                }
            }
            FaultKind::OneWay => {
                let size = range(rng, 1, (n - 1) as u64) as usize;
                PartitionShape::OneWay {
                    senders: sorted(order[..size].to_vec()),
                }
            }
            FaultKind::Bridge => {
                let rest = &order[1..];
                let half = rest.len() / 2;
                PartitionShape::Bridge {
                    bridge: order[0],
                    left: sorted(rest[..half].to_vec()),
                    right: sorted(rest[half..].to_vec()),
                }
            }
            FaultKind::Chained => PartitionShape::Chained { order },
            _ => return None,
        };
        Some(shape)
    }
}

fn sorted(mut v: Vec<usize>) -> Vec<usize> {
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_cut_what_they_say() {
        let q = PartitionShape::QuorumLoss { center: 2 }.links(5);
        assert!(q.connected(2, 0) && q.connected(2, 4));
        assert!(!q.connected(0, 1) && !q.connected(3, 4));
        let c = PartitionShape::Chained {
            order: vec![0, 1, 2, 3, 4],
        }
        .links(5);
        assert!(c.connected(0, 1) && c.connected(3, 4) && !c.connected(0, 2));
        let k = PartitionShape::Constrained {
            isolated: 0,
            hub: 1,
        }
        .links(5);
        assert!(!k.connected(0, 1) && k.connected(1, 4) && !k.connected(2, 3));
        let o = PartitionShape::OneWay { senders: vec![0] }.links(3);
        assert!(o.is_blocked(0, 1) && !o.is_blocked(1, 0));
    }
}
