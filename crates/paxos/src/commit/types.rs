//! The vocabulary of Paxos Commit: transactions, votes, outcomes, messages, durable state.

use crate::ids::{Ballot, NodeId};
use crate::quorum::Configuration;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Most resource managers one transaction may span: one Paxos instance each.
pub const RMS_PER_TXN_MAX: usize = 16;

/// A transaction, named by whoever begins it. Unique across the system (the caller's duty).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TxnId(pub u64);

impl fmt::Display for TxnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

/// A resource manager's vote: the value its Paxos instance decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Vote {
    /// Ready to commit; from now on it may not abort on its own.
    Prepared,
    /// Refuses: the transaction must abort.
    Aborted,
}

/// What a transaction became.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// Every instance chose Prepared.
    Committed,
    /// Some instance chose Aborted.
    Aborted,
}

/// The resource managers of one transaction, in instance order: the `i`-th manager's vote is
/// decided by instance `i`. Between 1 and [`RMS_PER_TXN_MAX`], no duplicates.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Participants(Vec<NodeId>);

impl Participants {
    /// Checks the list.
    pub fn new(rms: Vec<NodeId>) -> Result<Participants, CommitError> {
        if rms.is_empty() || rms.len() > RMS_PER_TXN_MAX {
            return Err(CommitError::ParticipantCount(rms.len()));
        }
        for (i, r) in rms.iter().enumerate() {
            if rms[..i].contains(r) {
                return Err(CommitError::DuplicateParticipant(*r));
            }
        }
        Ok(Participants(rms))
    }

    /// Whether a list received from a peer is well formed.
    pub(crate) fn valid(&self) -> bool {
        Participants::new(self.0.clone()).is_ok()
    }

    /// The managers, in instance order.
    pub fn rms(&self) -> &[NodeId] {
        &self.0
    }

    /// Number of managers (and instances).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true for a checked list.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The instance of `rm`.
    pub fn instance_of(&self, rm: NodeId) -> Option<usize> {
        self.0.iter().position(|r| *r == rm)
    }
}

/// Who plays which part. `leaders[0]` is the coordinator that starts every transaction; the
/// others take over when it is silent. Two-phase commit is `acceptors` = the coordinator alone
/// (F = 0), with no other leader: nothing can stand in for a lost coordinator.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CommitConfig {
    /// The 2F+1 acceptors (majority quorums).
    pub acceptors: Configuration,
    /// Leaders in order of precedence; the first is the coordinator.
    pub leaders: Vec<NodeId>,
}

impl CommitConfig {
    /// The coordinator, `leaders[0]`.
    pub fn coordinator(&self) -> NodeId {
        self.leaders[0]
    }

    /// F: acceptor crashes tolerated.
    pub fn f(&self) -> usize {
        self.acceptors.members().len() - self.acceptors.phase2_size()
    }
}

/// Timings, in ticks, and table bounds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CommitOptions {
    /// Retransmission period (Prepare, votes, queries, outcomes).
    pub retry_ticks: u32,
    /// Random extra per retry, from the caller's generator: ends duels between leaders.
    pub retry_jitter_ticks: u32,
    /// The coordinator waits this long for every vote, then runs phase 1 and proposes Aborted
    /// for each instance with no accepted value.
    pub vote_timeout_ticks: u32,
    /// A leader that hears of an undecided transaction it does not lead waits this long (plus
    /// jitter) before taking it over.
    pub takeover_timeout_ticks: u32,
    /// Transactions each role keeps at once; past it, new ones are refused and counted.
    pub txns_max: usize,
}

impl Default for CommitOptions {
    fn default() -> Self {
        CommitOptions {
            retry_ticks: 10,
            retry_jitter_ticks: 10,
            vote_timeout_ticks: 40,
            takeover_timeout_ticks: 60,
            txns_max: 1024,
        }
    }
}

/// Operating errors of the local API (never of peer input, which is refused and counted).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    /// Too few or too many participants.
    #[error("a transaction spans 1 to {RMS_PER_TXN_MAX} resource managers, got {0}")]
    ParticipantCount(usize),
    /// A participant listed twice.
    #[error("resource manager {0} listed twice")]
    DuplicateParticipant(NodeId),
    /// This node is not a resource manager, or not one of the transaction's.
    #[error("this node is not a participant of the transaction")]
    NotAParticipant,
    /// This node is not a leader.
    #[error("this node is not a leader")]
    NotALeader,
    /// The transaction is already known here.
    #[error("transaction {0} already known")]
    AlreadyKnown(TxnId),
    /// Unknown transaction, or a vote already given.
    #[error("transaction {0} has no vote pending here")]
    NoVotePending(TxnId),
    /// The table of transactions is full.
    #[error("too many transactions in flight")]
    Busy,
}

/// Messages of Paxos Commit (Gray and Lamport, section 4).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CommitMessage {
    /// An RM asks the coordinator to commit (BeginCommit).
    Begin {
        /// The transaction.
        txn: TxnId,
        /// Its managers.
        rms: Participants,
    },
    /// The coordinator asks an RM to prepare.
    Prepare {
        /// The transaction.
        txn: TxnId,
        /// Its managers.
        rms: Participants,
    },
    /// Phase 2a: from an RM at its own ballot 0 (its vote), or from a leader.
    Phase2a {
        /// The transaction.
        txn: TxnId,
        /// Its managers.
        rms: Participants,
        /// The instance.
        instance: u8,
        /// The ballot: round 0 owned by the instance's RM, or a leader's.
        ballot: Ballot,
        /// The value.
        vote: Vote,
    },
    /// Phase 2b: an acceptor accepted.
    Phase2b {
        /// The transaction.
        txn: TxnId,
        /// Its managers.
        rms: Participants,
        /// The instance.
        instance: u8,
        /// The ballot accepted.
        ballot: Ballot,
        /// The value accepted.
        vote: Vote,
    },
    /// Phase 1a for every instance of a transaction at once.
    Phase1a {
        /// The transaction.
        txn: TxnId,
        /// Its managers.
        rms: Participants,
        /// The leader's ballot.
        ballot: Ballot,
    },
    /// Phase 1b: the promise, with the last accepted `(ballot, vote)` of every instance.
    Phase1b {
        /// The transaction.
        txn: TxnId,
        /// The promised ballot.
        ballot: Ballot,
        /// Per instance, the last accepted value.
        accepted: Vec<Option<(Ballot, Vote)>>,
    },
    /// Refusal, with the higher ballot promised.
    Nack {
        /// The transaction.
        txn: TxnId,
        /// The refused ballot.
        ballot: Ballot,
        /// The promise that refused it.
        promised: Ballot,
    },
    /// An RM that voted asks the leaders for the outcome.
    Query {
        /// The transaction.
        txn: TxnId,
        /// Its managers.
        rms: Participants,
    },
    /// A leader's decision.
    Outcome {
        /// The transaction.
        txn: TxnId,
        /// Committed or aborted.
        outcome: Outcome,
    },
    /// A leader's decision, to the other leaders: they resend it to RMs that may not have it
    /// should the deciding leader go silent before every RM acknowledged it.
    Decided {
        /// The transaction.
        txn: TxnId,
        /// Its managers.
        rms: Participants,
        /// Committed or aborted.
        outcome: Outcome,
    },
    /// Every RM acknowledged the outcome: the other leaders may forget the transaction.
    Settled {
        /// The transaction.
        txn: TxnId,
    },
    /// An RM has the outcome durably: the leader may stop resending it.
    OutcomeAck {
        /// The transaction.
        txn: TxnId,
    },
}

/// A durable state change; the driver writes a batch atomically, in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CommitPersist {
    /// The RM voted (before its vote leaves).
    RmVoted {
        /// The transaction.
        txn: TxnId,
        /// Its managers.
        rms: Participants,
        /// The vote.
        vote: Vote,
    },
    /// The RM learned the outcome (before it acknowledges it).
    RmLearned {
        /// The transaction.
        txn: TxnId,
        /// The outcome.
        outcome: Outcome,
    },
    /// The acceptor promised `ballot` for every instance of `txn`.
    Promised {
        /// The transaction.
        txn: TxnId,
        /// Its managers.
        rms: Participants,
        /// The promise.
        ballot: Ballot,
    },
    /// The acceptor accepted `vote` at `ballot` in `instance`.
    Accepted {
        /// The transaction.
        txn: TxnId,
        /// Its managers.
        rms: Participants,
        /// The instance.
        instance: u8,
        /// The ballot.
        ballot: Ballot,
        /// The value.
        vote: Vote,
    },
    /// The leader used ballots up to this round.
    LeaderRound(u64),
    /// The leader decided (before telling anyone).
    LeaderDecided {
        /// The transaction.
        txn: TxnId,
        /// Its managers.
        rms: Participants,
        /// The outcome.
        outcome: Outcome,
    },
    /// Every RM acknowledged the outcome: the leader forgets the transaction.
    LeaderForgot {
        /// The transaction.
        txn: TxnId,
    },
}

/// An RM's durable record of one transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RmRecord {
    /// Its managers (empty until the vote is written).
    pub rms: Option<Participants>,
    /// The vote, once written.
    pub vote: Option<Vote>,
    /// The outcome, once learned.
    pub outcome: Option<Outcome>,
}

/// An acceptor's durable record of one transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AcceptorRecord {
    /// Its managers.
    pub rms: Participants,
    /// Highest leader ballot promised (round 0 is no promise).
    pub promised: Ballot,
    /// Per instance, the last accepted value.
    pub accepted: Vec<Option<(Ballot, Vote)>>,
}

/// What a node keeps across a crash: the persisted ops, applied in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CommitDurable {
    /// As resource manager.
    pub rm: BTreeMap<TxnId, RmRecord>,
    /// As acceptor.
    pub acceptor: BTreeMap<TxnId, AcceptorRecord>,
    /// As leader: highest round used.
    pub leader_round: u64,
    /// As leader: decisions not yet acknowledged by every RM.
    pub leader_decided: BTreeMap<TxnId, (Participants, Outcome)>,
}

impl CommitDurable {
    /// Applies one persisted op, as storage would on replay.
    pub fn apply(&mut self, op: &CommitPersist) {
        match op {
            CommitPersist::RmVoted { txn, rms, vote } => {
                let r = self.rm.entry(*txn).or_insert(RmRecord {
                    rms: None,
                    vote: None,
                    outcome: None,
                });
                r.rms = Some(rms.clone());
                r.vote = Some(*vote);
            }
            CommitPersist::RmLearned { txn, outcome } => {
                let r = self.rm.entry(*txn).or_insert(RmRecord {
                    rms: None,
                    vote: None,
                    outcome: None,
                });
                r.outcome = Some(*outcome);
            }
            CommitPersist::Promised { txn, rms, ballot } => {
                let r = self.acceptor_record(*txn, rms);
                r.promised = r.promised.max(*ballot);
            }
            CommitPersist::Accepted {
                txn,
                rms,
                instance,
                ballot,
                vote,
            } => {
                let r = self.acceptor_record(*txn, rms);
                if let Some(slot) = r.accepted.get_mut(usize::from(*instance)) {
                    *slot = Some((*ballot, *vote));
                }
            }
            CommitPersist::LeaderRound(round) => {
                self.leader_round = self.leader_round.max(*round);
            }
            CommitPersist::LeaderDecided { txn, rms, outcome } => {
                self.leader_decided.insert(*txn, (rms.clone(), *outcome));
            }
            CommitPersist::LeaderForgot { txn } => {
                self.leader_decided.remove(txn);
            }
        }
    }

    fn acceptor_record(&mut self, txn: TxnId, rms: &Participants) -> &mut AcceptorRecord {
        self.acceptor.entry(txn).or_insert_with(|| AcceptorRecord {
            rms: rms.clone(),
            promised: Ballot::ZERO,
            accepted: vec![None; rms.len()],
        })
    }
}

/// Refusals and oddities, counted rather than panicking on peer input.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CommitCounters {
    /// Messages refused as malformed or from a peer with no right to send them.
    pub refused: u64,
    /// Transactions refused because a table was full.
    pub table_full: u64,
    /// Outcomes heard that contradict one already known (a broken protocol, for checkers).
    pub conflicting_outcomes: u64,
    /// Leader takeovers started (phase 1 runs).
    pub phase1_runs: u64,
}
