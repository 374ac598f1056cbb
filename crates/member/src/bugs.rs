//! Bugs planted in the member on purpose, so that the simulator's tests can show its checkers
//! catch them. Switched per member at run time ([`crate::Member::plant_bugs`]) and compiled to
//! nothing unless the crate is built with the `planted-bugs` feature: without it,
//! [`MemberBugs::has`] is always false, so a node can never run one.

/// One planted bug in the member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberBug {
    /// A member serves a linearizable read once the leader confirmed its read index, without
    /// waiting to apply through that index (a lagging follower answers stale data).
    ReadBeforeApplied,
    /// A lease's clock counts its TTL in milliseconds instead of seconds, so the leader
    /// revokes it (and deletes its keys) long before its TTL could have run out.
    LeaseTtlInMillis,
    /// The changes shared with watchers in step ([`crate::AppliedChanges`]) are read from one
    /// revision too early, so a watcher in step is sent the previous revision's events twice.
    WatchEventTwice,
    /// With leader leases on, the replica's clock is not caught up from the caller's time
    /// (`member/ticks.rs`): it ticks once per tick input, so a member whose ticks were missed
    /// (a stopped or starved process) serves leased reads on a stale tick count.
    LeaseTicksNotCaughtUp,
    /// The leader renews a lease whose replicated record is low (a checkpoint of a lease that
    /// went unrenewed) without logging a full one first: a new leader restarts the lease from
    /// the low record and revokes it before the acknowledged renewal's TTL ran out.
    RenewalNotCheckpointed,
    /// Lease records (checkpoints and expiries) name no leadership, so the store applies one
    /// a deposed leader decided even after a later leader's: its revoke, accepted by it alone
    /// and taken up by a later phase 1, undoes a renewal the later leader answered.
    LeaseRecordWithoutLeader,
    /// A watch read served from the store (a watch created at start revision R asks for the
    /// changes after R - 1, and one resumed out of step after its last revision) starts one
    /// revision late: the events at R are never sent (etcd users would miss a change).
    WatchStartOffByOne,
    /// A snapshot older than the state applied here is installed anyway: the member's own
    /// snapshot once it is durable (as a restart would restore it), or a received one decoded
    /// after the log applied past it. The store goes back to the snapshot's state while the
    /// member keeps its applied slot, so it serves a revision lower than it served before.
    RevisionBackAfterSnapshotInstall,
}

impl MemberBug {
    /// Every planted member bug.
    pub const ALL: [MemberBug; 8] = [
        MemberBug::ReadBeforeApplied,
        MemberBug::LeaseTtlInMillis,
        MemberBug::WatchEventTwice,
        MemberBug::LeaseTicksNotCaughtUp,
        MemberBug::RenewalNotCheckpointed,
        MemberBug::LeaseRecordWithoutLeader,
        MemberBug::WatchStartOffByOne,
        MemberBug::RevisionBackAfterSnapshotInstall,
    ];

    /// Its kebab-case name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            MemberBug::ReadBeforeApplied => "read-before-applied",
            MemberBug::LeaseTtlInMillis => "lease-ttl-in-millis",
            MemberBug::WatchEventTwice => "watch-event-twice",
            MemberBug::LeaseTicksNotCaughtUp => "lease-ticks-not-caught-up",
            MemberBug::RenewalNotCheckpointed => "renewal-not-checkpointed",
            MemberBug::LeaseRecordWithoutLeader => "lease-record-without-leader",
            MemberBug::WatchStartOffByOne => "watch-start-off-by-one",
            MemberBug::RevisionBackAfterSnapshotInstall => "revision-back-after-snapshot-install",
        }
    }

    /// The bug named `name`.
    pub fn from_name(name: &str) -> Option<MemberBug> {
        MemberBug::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// The set of planted bugs a member runs with (none by default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemberBugs(u8);

impl MemberBugs {
    /// No bug.
    pub fn none() -> MemberBugs {
        MemberBugs(0)
    }

    /// Just `bug`.
    pub fn only(bug: MemberBug) -> MemberBugs {
        MemberBugs(1 << bug as u8)
    }

    /// Whether `bug` is on (always false without the `planted-bugs` feature).
    pub fn has(self, bug: MemberBug) -> bool {
        cfg!(feature = "planted-bugs") && self.0 & (1 << bug as u8) != 0
    }

    /// Every bug switched on, by name.
    pub fn names(self) -> Vec<&'static str> {
        MemberBug::ALL
            .into_iter()
            .filter(|b| self.0 & (1 << *b as u8) != 0)
            .map(MemberBug::name)
            .collect()
    }
}
