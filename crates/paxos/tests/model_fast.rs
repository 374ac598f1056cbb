//! Model checking of the real Fast Paxos core, `paxos::fast::FastNode`, with stateright: three
//! nodes (classic quorums of 2, fast quorums of 3) and two proposers with values `a` and `b`,
//! so the fast round can collide.
//!
//! Nothing here re-implements Fast Paxos. The model owns the cores and a network holding every
//! message sent and not yet delivered (a set: a duplicate merges with its original). Actions:
//! a proposer's value reaches a node (once each); a message is delivered (in any order;
//! a message never delivered is a lost one, since every prefix is checked); one node's timer
//! fires once in all (`campaign`: a classic round with phase 1, above the fast round). Each
//! core's outputs are drained at once: its persist batch reported durable, its messages added
//! to the network.
//!
//! Properties: Always **agreement** (at most one value chosen, counting a value chosen when a
//! quorum of its round, as the cores size it, persisted a vote for it; and all learners learn
//! that one) and **validity** (only `a` or `b`); Sometimes **chosen in the fast round** and
//! **chosen after a collision** (in the coordinator's recovery round), so the checks are not
//! vacuous. Exhaustive up to `DEPTH_MAX` steps, breadth first.
//!
//! With `--features planted-bugs` the checker must find an agreement counterexample with
//! `fast-quorum-too-small` (fast quorums of 2 of 3):
//! `cargo test -p synod-paxos --features planted-bugs --test model_fast -- --nocapture`.

mod common;

use paxos::fast::{
    FastConfig, FastMessage, FastNode, FastOptions, FastPersist, Round, RoundMode, Value,
};
use paxos::{NodeId, PlantedBugs};
use stateright::{Checker, Model, Property};
use std::collections::{BTreeMap, BTreeSet};

const NODES: usize = 3;
const PROPOSERS: usize = 2;
const TIMEOUTS_MAX: u8 = 1;
/// Every execution of at most this many actions is explored (stateright counts the initial
/// state as depth 1). A fast choice takes 5 actions (Any to two acceptors, one value to all
/// three); a choice after a collision 5 (Any to node 2, a to node 1, b to node 2, node 2's
/// vote to the coordinator, its recovery 2a to node 2). Depth 10 took 31 s (618,000 states)
/// on two loaded cores, depth 11 104 s (1.75 million).
const DEPTH_MAX: usize = 10;
/// The planted bug's disagreement takes 9 actions, which the search reaches at depth 11 (it
/// stops at the first counterexample, after about 530,000 states).
#[cfg(feature = "planted-bugs")]
const PLANTED_DEPTH_MAX: usize = 11;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    nodes: Vec<FastNode>,
    net: BTreeSet<(u64, u64, FastMessage)>,
    /// Which proposer's value reached which node: `proposed[p][i]`.
    proposed: Vec<Vec<bool>>,
    timeouts: u8,
    /// Ghosts: votes persisted per round, values chosen, values learned.
    votes: BTreeMap<Round, BTreeMap<u64, Value>>,
    chosen: BTreeSet<Value>,
    learned: BTreeSet<Value>,
    chosen_in_fast_round: bool,
    chosen_after_collision: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Action {
    /// Proposer `p`'s value reaches node `i` (sending and delivery in one step: a proposal
    /// that never arrives is one never taken).
    Propose(usize, usize),
    Deliver(u64, u64, FastMessage),
    Timeout(usize),
}

struct FastModel {
    bugs: PlantedBugs,
}

fn value(p: usize) -> Value {
    vec![b'a' + p as u8]
}

fn config() -> FastConfig {
    FastConfig::new(NODES, RoundMode::Fast).unwrap()
}

/// Drains node `i`'s outputs: persist (feeding the vote ghost), send, learn.
fn pump(s: &mut State, i: usize) {
    loop {
        let ready = s.nodes[i].ready();
        let core_config = s.nodes[i].config();
        let id = s.nodes[i].id();
        let persisted = ready.persist.is_some();
        if let Some(batch) = ready.persist {
            s.nodes[i].persisted(batch.seq);
            for op in batch.ops {
                if let FastPersist::Vote((round, v)) = op {
                    let voters = s.votes.entry(round).or_default();
                    voters.insert(id.0, v.clone());
                    if voters.values().filter(|w| **w == v).count() >= core_config.quorum(round) {
                        s.chosen.insert(v);
                        s.chosen_in_fast_round |= core_config.is_fast(round);
                        s.chosen_after_collision |= round.recovery;
                    }
                }
            }
        }
        for out in ready.send {
            s.net.insert((id.0, out.to.0, out.msg));
        }
        if let Some(v) = ready.learned {
            s.learned.insert(v);
        }
        if !persisted {
            return;
        }
    }
}

impl Model for FastModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let mut s = State {
            nodes: (1..=NODES as u64)
                .map(|i| {
                    FastNode::new(NodeId(i), config(), FastOptions::default(), self.bugs).unwrap()
                })
                .collect(),
            net: BTreeSet::new(),
            proposed: vec![vec![false; NODES]; PROPOSERS],
            timeouts: 0,
            votes: BTreeMap::new(),
            chosen: BTreeSet::new(),
            learned: BTreeSet::new(),
            chosen_in_fast_round: false,
            chosen_after_collision: false,
        };
        for i in 0..NODES {
            pump(&mut s, i);
        }
        vec![s]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        for p in 0..PROPOSERS {
            for i in 0..NODES {
                if !s.proposed[p][i] {
                    actions.push(Action::Propose(p, i));
                }
            }
        }
        for (from, to, msg) in &s.net {
            actions.push(Action::Deliver(*from, *to, msg.clone()));
        }
        if s.timeouts < TIMEOUTS_MAX {
            for i in 0..NODES {
                actions.push(Action::Timeout(i));
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Propose(p, i) => {
                s.proposed[p][i] = true;
                let msg = FastMessage::Propose { value: value(p) };
                s.nodes[i].step(NodeId(100 + p as u64), msg);
                pump(&mut s, i);
            }
            Action::Deliver(from, to, msg) => {
                s.net.remove(&(from, to, msg.clone()));
                let i = (to - 1) as usize;
                s.nodes[i].step(NodeId(from), msg);
                pump(&mut s, i);
            }
            Action::Timeout(i) => {
                s.timeouts += 1;
                s.nodes[i].campaign();
                pump(&mut s, i);
            }
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("agreement", |_, s: &State| {
                s.chosen.len() <= 1 && s.learned.iter().all(|v| s.chosen.contains(v))
            }),
            Property::always("validity", |_, s: &State| {
                s.chosen
                    .iter()
                    .all(|v| (0..PROPOSERS).any(|p| value(p) == *v))
            }),
            Property::sometimes("chosen in the fast round", |_, s: &State| {
                s.chosen_in_fast_round
            }),
            Property::sometimes("chosen after a collision", |_, s: &State| {
                s.chosen_after_collision
            }),
        ]
    }
}

#[test]
fn fast_paxos_safety_every_execution_up_to_the_depth_bound() {
    let model = FastModel {
        bugs: PlantedBugs::none(),
    };
    let builder = model
        .checker()
        .threads(common::threads())
        .target_max_depth(DEPTH_MAX);
    common::explore("model_fast", builder).assert_properties();
}

#[cfg(feature = "planted-bugs")]
mod planted {
    use super::*;
    use paxos::Bug;

    #[test]
    fn planted_fast_quorum_too_small_breaks_agreement() {
        let model = FastModel {
            bugs: PlantedBugs::only(Bug::FastQuorumTooSmall),
        };
        let builder = model
            .checker()
            .threads(common::threads())
            .target_max_depth(PLANTED_DEPTH_MAX);
        common::expect_counterexample("model_fast fast-quorum-too-small", "agreement", builder);
    }
}
