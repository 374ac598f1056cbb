//! Quorums as a type: which sets of members may decide phase 1 and phase 2.
//!
//! Majority quorums are one configuration of many. Flexible Paxos (Howard, Malkhi, Spiegelman)
//! only needs every phase-1 quorum to intersect every phase-2 quorum, `|Q1| + |Q2| > n`, so
//! it is a value of [`QuorumSpec`], not a fork of the protocol.

use crate::ids::NodeId;
use serde::{Deserialize, Serialize};

/// Largest cluster a [`NodeSet`] can describe. A bound, not a wish: Paxos clusters are small.
pub const MEMBERS_MAX: usize = 64;

/// A set of members by their index in a [`Configuration`], as a bitset (no allocation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeSet(u64);

impl NodeSet {
    /// The empty set.
    pub const EMPTY: NodeSet = NodeSet(0);

    /// Adds the member at `index`; returns whether it was new.
    pub fn insert(&mut self, index: usize) -> bool {
        debug_assert!(index < MEMBERS_MAX);
        let bit = 1u64 << index;
        let new = self.0 & bit == 0;
        self.0 |= bit;
        new
    }

    /// Whether the member at `index` is in the set.
    pub fn contains(self, index: usize) -> bool {
        index < MEMBERS_MAX && self.0 & (1u64 << index) != 0
    }

    /// Number of members in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Number of members of the set among the indices below `n`.
    pub fn len_below(self, n: usize) -> usize {
        let mask = if n >= MEMBERS_MAX {
            u64::MAX
        } else {
            (1u64 << n) - 1
        };
        (self.0 & mask).count_ones() as usize
    }
}

/// How big phase-1 and phase-2 quorums are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum QuorumSpec {
    /// Any majority, for both phases.
    Majority,
    /// Flexible Paxos: `phase1 + phase2 > n`. A small phase-2 quorum makes the steady state
    /// cheaper at the price of a larger phase-1 quorum at leader changes.
    Flexible {
        /// Members needed to promise a ballot.
        phase1: usize,
        /// Members needed to accept a value.
        phase2: usize,
    },
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No members at all.
    #[error("a configuration needs at least one member")]
    Empty,
    /// More members than a [`NodeSet`] can hold.
    #[error("a configuration holds at most {MEMBERS_MAX} members, got {0}")]
    TooManyMembers(usize),
    /// The same node listed twice.
    #[error("member {0} is listed twice")]
    DuplicateMember(NodeId),
    /// Node id 0 is reserved for [`crate::Ballot::ZERO`].
    #[error("node id 0 is reserved; number members from 1")]
    ReservedNodeId,
    /// Phase-1 and phase-2 quorums would not intersect, so two values could be chosen.
    #[error("flexible quorums must intersect: phase1 {phase1} + phase2 {phase2} must exceed {members} members")]
    QuorumsDoNotIntersect {
        /// Phase-1 quorum size.
        phase1: usize,
        /// Phase-2 quorum size.
        phase2: usize,
        /// Number of members.
        members: usize,
    },
    /// A quorum larger than the cluster can never be formed.
    #[error("a quorum of {size} cannot be formed from {members} members")]
    QuorumTooLarge {
        /// Quorum size.
        size: usize,
        /// Number of members.
        members: usize,
    },
    /// The local node is not a member of the configuration.
    #[error("node {0} is not a member of the configuration")]
    NotAMember(NodeId),
    /// A node listed both as a voter and as a learner.
    #[error("node {0} is listed both as a voting member and as a learner")]
    VoterAndLearner(NodeId),
}

/// The members of the cluster and the rule for their quorums.
///
/// `members` vote: their promises and accepts make quorums. `learners` receive the chosen log
/// (accepts, heartbeats, catch-up) but never count in a quorum and never promise; a learner
/// becomes a voter only through a reconfiguration (see `multi/reconfig.rs`). Indices (for
/// [`NodeSet`]) run over the voters first, then the learners.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Configuration {
    members: Vec<NodeId>,
    learners: Vec<NodeId>,
    quorum: QuorumSpec,
}

impl Configuration {
    /// A checked configuration: members unique, non-zero, at most [`MEMBERS_MAX`], quorums intersecting.
    pub fn new(members: Vec<NodeId>, quorum: QuorumSpec) -> Result<Configuration, ConfigError> {
        Configuration::with_learners(members, Vec::new(), quorum)
    }

    /// A checked configuration with non-voting learners beside its voting members.
    pub fn with_learners(
        members: Vec<NodeId>,
        learners: Vec<NodeId>,
        quorum: QuorumSpec,
    ) -> Result<Configuration, ConfigError> {
        let n = members.len();
        if n == 0 {
            return Err(ConfigError::Empty);
        }
        if n + learners.len() > MEMBERS_MAX {
            return Err(ConfigError::TooManyMembers(n + learners.len()));
        }
        for (i, m) in members.iter().chain(learners.iter()).enumerate() {
            if m.0 == 0 {
                return Err(ConfigError::ReservedNodeId);
            }
            if i >= n && members.contains(m) {
                return Err(ConfigError::VoterAndLearner(*m));
            }
            let before = if i < n {
                &members[..i]
            } else {
                &learners[..i - n]
            };
            if before.contains(m) {
                return Err(ConfigError::DuplicateMember(*m));
            }
        }
        if let QuorumSpec::Flexible { phase1, phase2 } = quorum {
            for size in [phase1, phase2] {
                if size == 0 || size > n {
                    return Err(ConfigError::QuorumTooLarge { size, members: n });
                }
            }
            if phase1 + phase2 <= n {
                return Err(ConfigError::QuorumsDoNotIntersect {
                    phase1,
                    phase2,
                    members: n,
                });
            }
        }
        Ok(Configuration {
            members,
            learners,
            quorum,
        })
    }

    /// A majority-quorum configuration of nodes `1..=n`.
    pub fn majority_of(n: u64) -> Result<Configuration, ConfigError> {
        Configuration::new((1..=n).map(NodeId).collect(), QuorumSpec::Majority)
    }

    /// The voting members, in configuration order.
    pub fn members(&self) -> &[NodeId] {
        &self.members
    }

    /// The non-voting learners, in configuration order.
    pub fn learners(&self) -> &[NodeId] {
        &self.learners
    }

    /// Voters, then learners: everyone who receives the log. Position = index.
    pub fn everyone(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.iter().chain(self.learners.iter()).copied()
    }

    /// Voters plus learners.
    pub fn len_everyone(&self) -> usize {
        self.members.len() + self.learners.len()
    }

    /// Whether `node` votes in this configuration.
    pub fn is_voter(&self, node: NodeId) -> bool {
        self.members.contains(&node)
    }

    /// Whether `node` is a learner in this configuration.
    pub fn is_learner(&self, node: NodeId) -> bool {
        self.learners.contains(&node)
    }

    /// The quorum rule.
    pub fn quorum(&self) -> QuorumSpec {
        self.quorum
    }

    /// The index of `node` in this configuration (voters first, then learners), if it is a
    /// voter or a learner.
    pub fn index_of(&self, node: NodeId) -> Option<usize> {
        self.everyone().position(|m| m == node)
    }

    /// Whether `node` is a voter or a learner.
    pub fn contains(&self, node: NodeId) -> bool {
        self.index_of(node).is_some()
    }

    /// Members needed for a phase-1 (promise) quorum.
    pub fn phase1_size(&self) -> usize {
        match self.quorum {
            QuorumSpec::Majority => self.members.len() / 2 + 1,
            QuorumSpec::Flexible { phase1, .. } => phase1,
        }
    }

    /// Members needed for a phase-2 (accept) quorum.
    pub fn phase2_size(&self) -> usize {
        match self.quorum {
            QuorumSpec::Majority => self.members.len() / 2 + 1,
            QuorumSpec::Flexible { phase2, .. } => phase2,
        }
    }

    /// Whether `set` holds a phase-1 quorum (only voters count).
    pub fn is_phase1_quorum(&self, set: NodeSet) -> bool {
        set.len_below(self.members.len()) >= self.phase1_size()
    }

    /// Whether `set` holds a phase-2 quorum (only voters count).
    pub fn is_phase2_quorum(&self, set: NodeSet) -> bool {
        set.len_below(self.members.len()) >= self.phase2_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_sizes() {
        for (n, q) in [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (7, 4)] {
            let c = Configuration::majority_of(n).unwrap();
            assert_eq!(c.phase1_size(), q, "n={n}");
            assert_eq!(c.phase2_size(), q, "n={n}");
        }
    }

    #[test]
    fn flexible_quorums_must_intersect() {
        let members: Vec<NodeId> = (1..=5).map(NodeId).collect();
        let ok = Configuration::new(
            members.clone(),
            QuorumSpec::Flexible {
                phase1: 4,
                phase2: 2,
            },
        );
        assert!(ok.is_ok());
        let bad = Configuration::new(
            members,
            QuorumSpec::Flexible {
                phase1: 3,
                phase2: 2,
            },
        );
        assert_eq!(
            bad,
            Err(ConfigError::QuorumsDoNotIntersect {
                phase1: 3,
                phase2: 2,
                members: 5
            })
        );
    }

    #[test]
    fn rejects_duplicates_and_zero() {
        assert_eq!(
            Configuration::new(vec![NodeId(1), NodeId(1)], QuorumSpec::Majority),
            Err(ConfigError::DuplicateMember(NodeId(1)))
        );
        assert_eq!(
            Configuration::new(vec![NodeId(0)], QuorumSpec::Majority),
            Err(ConfigError::ReservedNodeId)
        );
    }

    #[test]
    fn learners_never_count_in_a_quorum() {
        let c = Configuration::with_learners(
            vec![NodeId(1), NodeId(2), NodeId(3)],
            vec![NodeId(4), NodeId(5)],
            QuorumSpec::Majority,
        )
        .unwrap();
        assert_eq!(c.index_of(NodeId(4)), Some(3));
        assert!(c.contains(NodeId(5)) && !c.is_voter(NodeId(5)) && c.is_learner(NodeId(5)));
        let mut s = NodeSet::EMPTY;
        s.insert(0);
        s.insert(3);
        s.insert(4);
        assert!(!c.is_phase2_quorum(s), "one voter and two learners");
        s.insert(2);
        assert!(c.is_phase2_quorum(s) && c.is_phase1_quorum(s));
        assert_eq!(
            Configuration::with_learners(vec![NodeId(1)], vec![NodeId(1)], QuorumSpec::Majority),
            Err(ConfigError::VoterAndLearner(NodeId(1)))
        );
        assert_eq!(
            Configuration::with_learners(
                vec![NodeId(1)],
                vec![NodeId(2), NodeId(2)],
                QuorumSpec::Majority
            ),
            Err(ConfigError::DuplicateMember(NodeId(2)))
        );
    }

    #[test]
    fn node_set_counts() {
        let mut s = NodeSet::EMPTY;
        assert!(s.insert(3));
        assert!(!s.insert(3));
        s.insert(0);
        assert_eq!(s.len(), 2);
        assert!(s.contains(3) && !s.contains(1) && !s.contains(64));
    }
}
