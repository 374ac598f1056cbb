//! What the stateright models share: the network's message wrapper, node/actor ids, and the
//! checker's harness (figures printed the same way, an exhaustive run, and the planted-bug
//! expectation with its counterexample).

// Each model's test binary includes this module and uses its own part of it.
#![allow(dead_code)]

use paxos::NodeId;
use stateright::actor::Id;
use stateright::{Checker, CheckerBuilder, Model};
use std::cmp::Ordering;
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::time::Instant;

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

/// Prints a checker's figures: `{label}: N unique states (M generated), max depth D, time`.
pub fn report<M: Model>(label: &str, checker: &impl Checker<M>, started: Instant) {
    println!(
        "{label}: {} unique states ({} generated), max depth {}, {:.1?}",
        checker.unique_state_count(),
        checker.state_count(),
        checker.max_depth(),
        started.elapsed(),
    );
}

/// Prints the figures of random walks, which count every state they pass through, not unique
/// ones.
pub fn report_walks<M: Model>(label: &str, checker: &impl Checker<M>, started: Instant) {
    println!(
        "{label}: {} states visited by random walks, longest walk {} steps, {:.1?}",
        checker.state_count(),
        checker.max_depth(),
        started.elapsed(),
    );
}

/// Explores every execution `builder` allows, breadth first, prints the figures under `label`
/// and hands the finished checker back for its assertions.
pub fn explore<M>(label: &str, builder: CheckerBuilder<M>) -> impl Checker<M>
where
    M: Model + Send + Sync + 'static,
    M::State: Hash + Send + Sync + Clone + PartialEq + 'static,
    M::Action: Clone + PartialEq,
{
    let started = Instant::now();
    let checker = builder.spawn_bfs().join();
    report(label, &checker, started);
    checker
}

/// A planted bug must be caught: explores `builder` breadth first (for a shortest
/// counterexample) until `property` is discovered, prints the figures under `label` and the
/// counterexample, and fails the test if the checker never finds it. Returns the
/// counterexample's length in steps.
#[cfg(feature = "planted-bugs")]
pub fn expect_counterexample<M>(
    label: &str,
    property: &'static str,
    builder: CheckerBuilder<M>,
) -> usize
where
    M: Model + Send + Sync + 'static,
    M::State: Hash + Send + Sync + Clone + PartialEq + 'static,
    M::Action: Clone + PartialEq + Debug,
{
    let checker = explore(
        label,
        builder.finish_when(stateright::HasDiscoveries::AnyOf([property].into())),
    );
    let Some(path) = checker.discovery(property) else {
        panic!("{label}: the planted bug went unnoticed by the {property:?} check");
    };
    let actions = path.into_actions();
    println!(
        "counterexample to {property:?} ({} steps; Id(i) is node i+1):",
        actions.len()
    );
    for action in &actions {
        println!("  {action:?}");
    }
    actions.len()
}
