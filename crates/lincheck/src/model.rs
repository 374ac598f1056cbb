//! The sequential specification a history is checked against.

use std::fmt::Debug;
use std::hash::Hash;

/// A deterministic sequential specification.
///
/// The search memoizes states, so `State` should be small and cheap to hash;
/// with partitioning, it only needs to describe one partition.
pub trait Model {
    /// State of one partition.
    type State: Clone + Eq + Hash + Debug;
    /// A client request.
    type Input: Clone + Debug;
    /// A client-visible response.
    type Output: Clone + Debug + PartialEq;

    /// The state every partition starts in.
    fn init(&self) -> Self::State;

    /// Apply `input` to `state`. With Some(output): return Some(next) only if
    /// the model can produce exactly that output; None if illegal. With None
    /// (unknown outcome): return the next state assuming the op took effect.
    fn step(
        &self,
        state: &Self::State,
        input: &Self::Input,
        output: Option<&Self::Output>,
    ) -> Option<Self::State>;

    /// Partition key: operations on different partitions are checked
    /// independently (P-compositionality). Return the key the op touches.
    ///
    /// Only sound if no operation's effect or output depends on another
    /// partition's state.
    fn partition(&self, input: &Self::Input) -> String;

    /// Whether `input` never changes the state (every successful `step`
    /// returns the state it was given).
    ///
    /// Unknown-outcome operations for which this holds are dropped before
    /// the search, since they can neither be observed nor constrain
    /// anything, and known-outcome ones are placed as soon as they apply
    /// instead of being branched on. Returning `false` is always safe,
    /// merely slower; returning `true` wrongly for an operation whose
    /// unknown outcome could matter can hide a violation.
    fn is_read_only(&self, input: &Self::Input) -> bool {
        let _ = input;
        false
    }
}
