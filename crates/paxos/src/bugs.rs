//! Bugs planted on purpose, so that tests can show the checkers catch them.
//!
//! They are switched per replica at run time, and compiled to nothing unless the crate is built
//! with the `planted-bugs` feature: without it, [`PlantedBugs::has`] is always false.

use serde::{Deserialize, Serialize};

/// One planted bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// An acceptor forgets its promise when it restarts.
    ForgetPromiseOnRestart,
    /// A new leader ignores the values reported in promises (phase 1b) by others.
    IgnorePromisedValues,
    /// A leader serves a read without confirming it still leads.
    ReadWithoutConfirm,
    /// A leader declares a value chosen without a phase-2 quorum.
    ChosenWithoutQuorum,
    /// An acceptor accepts below the ballot it promised.
    AcceptLowerBallot,
    /// Messages leave before the state they depend on is durable.
    SkipPersist,
    /// The write-ahead log acknowledges a write before syncing it (a driver and storage bug:
    /// the core is correct, and the driver reads this flag to configure its log).
    AckBeforeSync,
    /// A learner's accept counts toward a phase-2 quorum.
    LearnerInQuorum,
    /// A configuration change without the stop-sign rule: the old configuration keeps
    /// proposing after its stop-sign, and takeover re-proposes values above one.
    ReconfigWithoutStop,
    /// Flexible quorums: the check that every phase-1 quorum meets every phase-2 quorum is
    /// skipped, so a rule such as phase1 + phase2 = n is accepted
    /// ([`crate::Configuration::with_planted_bugs`]).
    QuorumsDoNotIntersect,
    /// Disk Paxos: a processor completes a phase (and so decides) after writing and reading
    /// fewer than a majority of disks.
    DecideWithoutDiskMajority,
    /// Paxos Commit: the leader decides Commit with one instance's vote still missing.
    CommitWithMissingVote,
    /// Fast Paxos: a fast quorum is only a classic majority, too small for the quorum
    /// requirement (`qc + 2qf > 2n`), so recovery can pick a value other than the one chosen.
    FastQuorumTooSmall,
    /// EPaxos: a replica leaves the most recent interfering instance out of the dependencies
    /// it computes in PreAccept.
    DropDependencyInPreAccept,
    /// EPaxos: execution runs a strongly connected component in the order the replica learned
    /// the commits in, not by sequence number.
    ExecuteIgnoringSeq,
    /// Cheap Paxos: the leader drops a failed main acceptor by switching its own quorum rule
    /// at once, without a stop-sign, so it decides alone while the others may still decide
    /// in the configuration that holds the main.
    CheapDropWithoutStopSign,
    /// Leader leases: the leader's lease is as long as the grants behind it less one tick,
    /// with no margin for clock drift, so a leader with a slow clock serves reads after a
    /// follower with a fast clock has promised a new leader.
    LeaseWithoutDriftMargin,
    /// A replica that lost its disk votes again as soon as it sees a leader above its fence,
    /// before it holds the chosen log that leader reaches (the amnesia rule's second half).
    RebuiltVotesBeforeCaughtUp,
    /// Cheap Paxos: a dropped main that returns is promoted back among the mains without the
    /// learner catch-up check, however far behind it is.
    CheapReadmitWithoutCatchUp,
}

impl Bug {
    /// Every planted bug.
    pub const ALL: [Bug; 19] = [
        Bug::ForgetPromiseOnRestart,
        Bug::IgnorePromisedValues,
        Bug::ReadWithoutConfirm,
        Bug::ChosenWithoutQuorum,
        Bug::AcceptLowerBallot,
        Bug::SkipPersist,
        Bug::AckBeforeSync,
        Bug::LearnerInQuorum,
        Bug::ReconfigWithoutStop,
        Bug::QuorumsDoNotIntersect,
        Bug::DecideWithoutDiskMajority,
        Bug::CommitWithMissingVote,
        Bug::FastQuorumTooSmall,
        Bug::DropDependencyInPreAccept,
        Bug::ExecuteIgnoringSeq,
        Bug::CheapDropWithoutStopSign,
        Bug::LeaseWithoutDriftMargin,
        Bug::RebuiltVotesBeforeCaughtUp,
        Bug::CheapReadmitWithoutCatchUp,
    ];

    /// Its kebab-case name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Bug::ForgetPromiseOnRestart => "forget-promise-on-restart",
            Bug::IgnorePromisedValues => "ignore-promised-values",
            Bug::ReadWithoutConfirm => "read-without-confirm",
            Bug::ChosenWithoutQuorum => "chosen-without-quorum",
            Bug::AcceptLowerBallot => "accept-lower-ballot",
            Bug::SkipPersist => "skip-persist",
            Bug::AckBeforeSync => "ack-before-sync",
            Bug::LearnerInQuorum => "learner-in-quorum",
            Bug::ReconfigWithoutStop => "reconfig-without-stop",
            Bug::QuorumsDoNotIntersect => "quorums-do-not-intersect",
            Bug::DecideWithoutDiskMajority => "decide-without-disk-majority",
            Bug::CommitWithMissingVote => "commit-with-missing-vote",
            Bug::FastQuorumTooSmall => "fast-quorum-too-small",
            Bug::DropDependencyInPreAccept => "drop-dependency-in-pre-accept",
            Bug::ExecuteIgnoringSeq => "execute-ignoring-seq",
            Bug::CheapDropWithoutStopSign => "cheap-drop-without-stop-sign",
            Bug::LeaseWithoutDriftMargin => "lease-without-drift-margin",
            Bug::RebuiltVotesBeforeCaughtUp => "rebuilt-votes-before-caught-up",
            Bug::CheapReadmitWithoutCatchUp => "cheap-readmit-without-catch-up",
        }
    }

    /// Parses a name given by [`Bug::name`].
    pub fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|b| b.name() == name)
    }
}

/// A set of planted bugs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlantedBugs(u32);

impl PlantedBugs {
    /// No bug: the protocol as designed.
    pub fn none() -> PlantedBugs {
        PlantedBugs(0)
    }

    /// Only `bug`.
    pub fn only(bug: Bug) -> PlantedBugs {
        PlantedBugs(1 << bug as u32)
    }

    /// Whether `bug` is planted (always false without the `planted-bugs` feature).
    #[inline]
    pub fn has(self, bug: Bug) -> bool {
        cfg!(feature = "planted-bugs") && self.0 & (1 << bug as u32) != 0
    }

    /// Whether any bug is planted.
    #[inline]
    pub fn any(self) -> bool {
        cfg!(feature = "planted-bugs") && self.0 != 0
    }
}
