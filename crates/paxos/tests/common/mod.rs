//! What the stateright models share: the network's message wrapper and node/actor ids.

use paxos::NodeId;
use stateright::actor::Id;
use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

/// A message on stateright's network. stateright sorts actions, so messages must be `Ord`; the
/// core's messages are not (they need not be), so this orders by a stable hash and breaks the
/// (astronomically unlikely) tie with the `Debug` text, which is consistent with `Eq`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Wire<M>(pub M);

impl<M: Hash + Eq + std::fmt::Debug> Ord for Wire<M> {
    fn cmp(&self, other: &Self) -> Ordering {
        if self.0 == other.0 {
            return Ordering::Equal;
        }
        let hash = |m: &M| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            m.hash(&mut h);
            h.finish()
        };
        hash(&self.0)
            .cmp(&hash(&other.0))
            .then_with(|| format!("{:?}", self.0).cmp(&format!("{:?}", other.0)))
    }
}

impl<M: Hash + Eq + std::fmt::Debug> PartialOrd for Wire<M> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Actor `i` is node `i + 1`.
pub fn node_id(id: Id) -> NodeId {
    NodeId(usize::from(id) as u64 + 1)
}

/// Node `n` is actor `n - 1`.
pub fn actor_id(node: NodeId) -> Id {
    Id::from((node.0 - 1) as usize)
}

/// Threads for a checker: every core.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
