//! Fast Paxos (Lamport, *Fast Paxos*, Distributed Computing 19, 2006), single-decree: one
//! [`FastNode`] per node per instance; a driver that wants many values runs many instances.
//!
//! Every node plays acceptor, learner and (possibly) coordinator. Rounds are [`Round`]s. In a
//! *fast* round, after the coordinator's [`FastMessage::Any`], proposers send their values
//! straight to the acceptors ([`FastMessage::Propose`]); each acceptor votes for the first it
//! receives, and a value is chosen once a *fast quorum* voted for it: two message delays from
//! proposal to learner, with no leader on the path. When proposers collide (acceptors voted
//! for different values and no value can still reach a fast quorum), the coordinator uses the
//! round's phase-2b votes as the phase-1b messages of the *recovery round* that immediately
//! follows it and goes straight to phase 2a (coordinated recovery, section 3.2). Any node may
//! also start a classic round with phase 1 when it times out (section 2.2).
//!
//! # Quorums (section 3.1, "Quorum Requirement")
//!
//! With `n` acceptors, classic quorums of size `qc` and fast quorums of size `qf` must satisfy:
//! any two quorums intersect (`2·qc > n`, `qc + qf > n`), and any quorum meets any two *fast*
//! quorums (`qc + 2·qf > 2n`, `3·qf > 2n`). [`FastQuorums::for_acceptors`] picks the classic
//! majority and the smallest such `qf` (n=3: 2 and 3; n=4: 3 and 3; n=5: 3 and 4; n=7: 4 and 6),
//! the paper's `n > 2E + F` with `F = ⌊(n-1)/2⌋` (section 3.4). The second condition is what makes the
//! value-picking rule safe: at most one value can have been chosen in a fast round *as seen by
//! a quorum* ([`pick_value`]).
//!
//! # Rounds
//!
//! Round 0 of the initial coordinator ([`FastConfig::initial_coordinator`]) is the only round
//! that skips phase 1 (no round is below it): in fast mode it is fast and its coordinator sends
//! `Any` at start, in advance of any proposal, in classic mode it is classic and the
//! coordinator sends its 2a with the first proposal it receives. Its recovery round is the
//! next round in the order (`recovery: true`), so no other round lies between them, which is
//! what lets the coordinator skip phase 1 there. Every other round is classic and runs both
//! phases; the value-picking rule in its phase 2a handles a fast round below it.
//!
//! # Outputs
//!
//! [`FastNode::ready`] hands back, in order: a [`PersistBatch`] of acceptor state to make
//! durable (then report [`FastNode::persisted`]), the messages whose state is already durable
//! (a promise or vote never leaves before it is on disk: the outbox holds it), and the value
//! learned, once. Time arrives as [`FastNode::tick`]; randomness (retry jitter) from the caller.
//!
//! ```
//! use paxos::fast::{FastConfig, FastMessage, FastNode, FastOptions, RoundMode};
//! use paxos::{NodeId, PlantedBugs};
//!
//! // Three nodes, fast mode, a perfect network: a proposer's value is chosen in a fast round.
//! let config = FastConfig::new(3, RoundMode::Fast).unwrap();
//! let mut nodes: Vec<FastNode> = (1..=3)
//!     .map(|i| FastNode::new(NodeId(i), config, FastOptions::default(), PlantedBugs::none()).unwrap())
//!     .collect();
//! let proposer = NodeId(100);
//! let mut inbox: Vec<(NodeId, NodeId, FastMessage)> =
//!     (1..=3).map(|i| (proposer, NodeId(i), FastMessage::Propose { value: b"v".to_vec() })).collect();
//! let mut learned = Vec::new();
//! for _ in 0..10 {
//!     for node in nodes.iter_mut() {
//!         let ready = node.ready();
//!         if let Some(batch) = &ready.persist {
//!             node.persisted(batch.seq); // a real driver writes batch.ops durably first
//!         }
//!         learned.extend(ready.learned);
//!         inbox.extend(ready.send.into_iter().map(|o| (node.id(), o.to, o.msg)));
//!     }
//!     for (from, to, msg) in std::mem::take(&mut inbox) {
//!         nodes[(to.0 - 1) as usize].step(from, msg);
//!     }
//! }
//! assert_eq!(learned, vec![b"v".to_vec(); 3]);
//! assert_eq!(nodes[0].counters().collisions, 0);
//! ```

mod node;
mod pick;
#[cfg(test)]
mod tests;

pub use node::{FastCounters, FastNode, FastReady};
pub use pick::{pick_value, Pick};

use crate::bugs::{Bug, PlantedBugs};
use crate::ids::NodeId;
use crate::outbox::PersistBatch;
use serde::{Deserialize, Serialize};
use std::fmt;

/// At most this many acceptors (nodes).
pub const ACCEPTORS_MAX: usize = 16;
/// The longest value a proposer may propose, in bytes.
pub const VALUE_BYTES_MAX: usize = 64;

/// A value to agree on, at most [`VALUE_BYTES_MAX`] bytes.
pub type Value = Vec<u8>;

/// A round, ordered by `(number, coordinator, recovery)`: a round's recovery round comes
/// right after it, before any round of a higher coordinator or number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Round {
    /// Round number; 0 only for the initial coordinator's first round and its recovery.
    pub number: u64,
    /// The node that coordinates it (and only it sends its 2a or `Any`).
    pub coordinator: NodeId,
    /// Whether this is the recovery round of `(number, coordinator, false)`.
    pub recovery: bool,
}

impl Round {
    /// The initial round of `coordinator`.
    pub fn initial(coordinator: NodeId) -> Round {
        Round {
            number: 0,
            coordinator,
            recovery: false,
        }
    }
    /// The recovery round right after this one.
    pub fn recovery_round(self) -> Round {
        debug_assert!(!self.recovery, "a recovery round has no recovery round");
        Round {
            recovery: true,
            ..self
        }
    }
}

impl fmt::Display for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = if self.recovery { "r" } else { "" };
        write!(f, "{}.{}{}", self.number, self.coordinator.0, r)
    }
}

/// Whether the initial round is fast (Fast Paxos) or classic (a leader on the path, as in
/// classic Paxos); the benchmark compares the two on the same simulator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RoundMode {
    /// Round 0 is fast: proposers send straight to acceptors.
    Fast,
    /// Round 0 is classic: proposers send to the coordinator, which sends the 2a.
    Classic,
}

/// Quorum sizes for `n` acceptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FastQuorums {
    /// Acceptors.
    pub acceptors: usize,
    /// Classic quorum size.
    pub classic: usize,
    /// Fast quorum size.
    pub fast: usize,
}

/// A configuration out of bounds or unsafe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FastConfigError {
    /// Acceptors must be 1 to [`ACCEPTORS_MAX`].
    #[error("acceptors must be 1 to {ACCEPTORS_MAX}, got {0}")]
    Acceptors(usize),
    /// The sizes break the quorum requirement of section 3.1.
    #[error(
        "quorums of {classic} (classic) and {fast} (fast) of {acceptors} break Fast Paxos's \
         requirement: 2qc > n, qc + qf > n, qc + 2qf > 2n and 3qf > 2n, each within 1..=n"
    )]
    QuorumRequirement {
        /// Acceptors.
        acceptors: usize,
        /// Classic size.
        classic: usize,
        /// Fast size.
        fast: usize,
    },
    /// The node is not one of `1..=acceptors`.
    #[error("node {0} is not one of 1..=acceptors")]
    NotANode(u64),
}

impl FastQuorums {
    /// Classic majorities and the smallest fast quorum meeting the requirement.
    pub fn for_acceptors(n: usize) -> Result<FastQuorums, FastConfigError> {
        if !(1..=ACCEPTORS_MAX).contains(&n) {
            return Err(FastConfigError::Acceptors(n));
        }
        let classic = n / 2 + 1;
        let fast = (classic..=n)
            .find(|&fast| FastQuorums::meets_requirement(n, classic, fast))
            .ok_or(FastConfigError::QuorumRequirement {
                acceptors: n,
                classic,
                fast: n,
            })?;
        Ok(FastQuorums {
            acceptors: n,
            classic,
            fast,
        })
    }

    /// Given sizes, refused unless they meet the requirement.
    pub fn new(n: usize, classic: usize, fast: usize) -> Result<FastQuorums, FastConfigError> {
        if !(1..=ACCEPTORS_MAX).contains(&n) {
            return Err(FastConfigError::Acceptors(n));
        }
        if !FastQuorums::meets_requirement(n, classic, fast) {
            return Err(FastConfigError::QuorumRequirement {
                acceptors: n,
                classic,
                fast,
            });
        }
        Ok(FastQuorums {
            acceptors: n,
            classic,
            fast,
        })
    }

    /// The quorum requirement (section 3.1) for sizes `qc` and `qf` of `n`.
    pub fn meets_requirement(n: usize, qc: usize, qf: usize) -> bool {
        (1..=n).contains(&qc)
            && (1..=n).contains(&qf)
            && 2 * qc > n
            && qc + qf > n
            && qc + 2 * qf > 2 * n
            && 3 * qf > 2 * n
    }

    /// The size of a quorum of a round of this kind.
    pub fn size(&self, fast: bool) -> usize {
        if fast {
            self.fast
        } else {
            self.classic
        }
    }
}

/// The nodes and how the first round runs. Nodes are `NodeId(1..=acceptors)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FastConfig {
    quorums: FastQuorums,
    mode: RoundMode,
}

impl FastConfig {
    /// `acceptors` nodes with [`FastQuorums::for_acceptors`].
    pub fn new(acceptors: usize, mode: RoundMode) -> Result<FastConfig, FastConfigError> {
        Ok(FastConfig {
            quorums: FastQuorums::for_acceptors(acceptors)?,
            mode,
        })
    }

    /// The same nodes, with `bugs` planted: [`Bug::FastQuorumTooSmall`] makes a fast quorum a
    /// classic majority, which breaks `qc + 2qf > 2n` (for n = 3 and n = 5).
    pub fn with_planted_bugs(mut self, bugs: PlantedBugs) -> FastConfig {
        if bugs.has(Bug::FastQuorumTooSmall) {
            self.quorums.fast = self.quorums.classic;
        }
        self
    }

    /// The quorum sizes.
    pub fn quorums(&self) -> FastQuorums {
        self.quorums
    }
    /// Whether round 0 is fast.
    pub fn mode(&self) -> RoundMode {
        self.mode
    }
    /// Number of acceptors.
    pub fn acceptors(&self) -> usize {
        self.quorums.acceptors
    }
    /// The coordinator of round 0.
    pub fn initial_coordinator(&self) -> NodeId {
        NodeId(1)
    }
    /// Whether `round` is a fast round: only the initial round, in fast mode.
    pub fn is_fast(&self, round: Round) -> bool {
        self.mode == RoundMode::Fast && round == Round::initial(self.initial_coordinator())
    }
    /// The quorum size of `round`.
    pub fn quorum(&self, round: Round) -> usize {
        self.quorums.size(self.is_fast(round))
    }
    /// Whether `id` is one of the nodes.
    pub fn is_node(&self, id: NodeId) -> bool {
        (1..=self.quorums.acceptors as u64).contains(&id.0)
    }
    /// Every node.
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> {
        (1..=self.quorums.acceptors as u64).map(NodeId)
    }
}

/// A vote: the round and the value an acceptor voted for in it (the paper's `vrnd`, `vval`).
pub type Vote = (Round, Value);

/// A message of Fast Paxos.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FastMessage {
    /// Proposer to acceptors (and coordinators): please choose this value.
    Propose {
        /// The value.
        value: Value,
    },
    /// Coordinator to acceptors: phase 1a of `round`.
    Phase1a {
        /// The round.
        round: Round,
    },
    /// Acceptor to coordinator: the promise for `round` and the acceptor's last vote.
    Phase1b {
        /// The round promised.
        round: Round,
        /// The last vote, if any.
        vote: Option<Vote>,
    },
    /// Coordinator to acceptors: in fast round `round`, vote for any proposed value.
    Any {
        /// The fast round.
        round: Round,
    },
    /// Coordinator to acceptors: vote for `value` in `round`.
    Phase2a {
        /// The round.
        round: Round,
        /// The value.
        value: Value,
    },
    /// Acceptor to every node (coordinator and learners): voted `value` in `round`.
    Phase2b {
        /// The round.
        round: Round,
        /// The value.
        value: Value,
    },
    /// Acceptor to coordinator: refused `round`, having promised `promised`.
    Nack {
        /// The round refused.
        round: Round,
        /// The round promised.
        promised: Round,
    },
    /// Learner to learners: `value` was chosen (sent by a node that learned it from a quorum).
    Chosen {
        /// The value.
        value: Value,
    },
}

/// A change to an acceptor's durable state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FastPersist {
    /// Promised `round` (the paper's `rnd`).
    Promise(Round),
    /// Voted (the paper's `vrnd`, `vval`); implies the promise of its round.
    Vote(Vote),
}

/// An acceptor's durable state: what survives a crash.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FastDurable {
    /// Highest round promised or voted in.
    pub rnd: Option<Round>,
    /// Last vote.
    pub vote: Option<Vote>,
}

impl FastDurable {
    /// Applies one op, as a driver does when it reads its log back.
    ///
    /// # Panics
    /// On an op that would move the promise back or vote below it (a corrupt log).
    pub fn apply(&mut self, op: &FastPersist) {
        match op {
            FastPersist::Promise(r) => {
                assert!(
                    self.rnd <= Some(*r),
                    "promise moves back: {:?} -> {r}",
                    self.rnd
                );
                self.rnd = Some(*r);
            }
            FastPersist::Vote((r, v)) => {
                assert!(
                    self.rnd <= Some(*r),
                    "vote below promise: {:?} -> {r}",
                    self.rnd
                );
                self.rnd = Some(*r);
                self.vote = Some((*r, v.clone()));
            }
        }
    }
}

/// A persist batch of Fast Paxos acceptor state.
pub type FastBatch = PersistBatch<FastPersist>;

/// Timings, in ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FastOptions {
    /// A node that has not learned starts a classic round after this many ticks without
    /// progress (if it may lead)...
    pub retry_timeout_ticks: u32,
    /// ...plus up to this many more, drawn from the caller's generator (ends duels).
    pub retry_jitter_ticks: u32,
}

impl Default for FastOptions {
    fn default() -> Self {
        FastOptions {
            retry_timeout_ticks: 30,
            retry_jitter_ticks: 30,
        }
    }
}
