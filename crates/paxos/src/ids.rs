//! Identities in Paxos's own words: nodes, ballots, slots.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A member of the cluster. Newtype so a node id can never be confused with a slot or a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// A ballot `(round, node)`: totally ordered, round first, then the proposing node to break ties.
///
/// Every proposer owns the ballots carrying its own id, so two proposers never use the same
/// ballot (The Part-Time Parliament, B1: each ballot has a unique number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Ballot {
    /// Round number; 0 is reserved for "no ballot yet".
    pub round: u64,
    /// The node that owns this ballot.
    pub node: NodeId,
}

impl Ballot {
    /// The ballot below every real ballot: what an acceptor has promised before it promised anything.
    pub const ZERO: Ballot = Ballot {
        round: 0,
        node: NodeId(0),
    };

    /// A ballot of `node` at `round`.
    pub fn new(round: u64, node: NodeId) -> Ballot {
        Ballot { round, node }
    }

    /// The smallest ballot owned by `node` that is greater than `self`.
    pub fn next_for(self, node: NodeId) -> Ballot {
        let round = self.round.saturating_add(1);
        Ballot { round, node }
    }

    /// Whether this is a real ballot (round 0 is never used by a proposer).
    pub fn is_real(self) -> bool {
        self.round > 0
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.round, self.node.0)
    }
}

/// A position in the replicated log. Slot 0 is never used; the log starts at slot 1.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Slot(pub u64);

impl Slot {
    /// "Before the first slot": the chosen prefix of an empty log ends here.
    pub const ZERO: Slot = Slot(0);

    /// The slot after this one.
    pub fn next(self) -> Slot {
        Slot(self.0 + 1)
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ballots_order_by_round_then_node() {
        let a = Ballot::new(1, NodeId(9));
        let b = Ballot::new(2, NodeId(1));
        let c = Ballot::new(2, NodeId(3));
        assert!(a < b && b < c);
        assert!(Ballot::ZERO < a);
        assert_eq!(a.next_for(NodeId(4)), Ballot::new(2, NodeId(4)));
        assert!(!Ballot::ZERO.is_real());
    }
}
