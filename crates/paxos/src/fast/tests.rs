//! Fast Paxos rules as tables, and a collision driven by hand.

use super::*;
#[cfg(feature = "planted-bugs")]
use crate::bugs::Bug;
use crate::bugs::PlantedBugs;
use crate::ids::NodeId;

/// Section 3.1/3.4: the smallest fast quorum meeting the requirement, for n = 1..=7.
#[test]
fn quorum_sizes_meet_the_requirement() {
    let table = [
        (1, 1, 1),
        (2, 2, 2),
        (3, 2, 3),
        (4, 3, 3),
        (5, 3, 4),
        (6, 4, 5),
        (7, 4, 6),
    ];
    for (n, qc, qf) in table {
        let q = FastQuorums::for_acceptors(n).unwrap();
        assert_eq!((q.classic, q.fast), (qc, qf), "n = {n}");
        // One smaller fast quorum breaks it.
        assert!(
            !FastQuorums::meets_requirement(n, qc, qf - 1) || qf == 1,
            "n = {n}"
        );
    }
    assert!(matches!(
        FastQuorums::new(5, 3, 3),
        Err(FastConfigError::QuorumRequirement { .. })
    ));
    assert!(FastQuorums::new(5, 4, 4).is_ok());
    assert_eq!(
        FastQuorums::for_acceptors(0),
        Err(FastConfigError::Acceptors(0))
    );
}

fn r0() -> Round {
    Round::initial(NodeId(1))
}

fn report(votes: &[(u64, Option<(Round, &str)>)]) -> Vec<(NodeId, Option<Vote>)> {
    votes
        .iter()
        .map(|(n, v)| (NodeId(*n), v.map(|(r, s)| (r, s.as_bytes().to_vec()))))
        .collect()
}

fn pick(n: usize, bugs: PlantedBugs, votes: &[(u64, Option<(Round, &str)>)]) -> Pick {
    let config = FastConfig::new(n, RoundMode::Fast)
        .unwrap()
        .with_planted_bugs(bugs);
    pick_value(&config, &report(votes), bugs)
}

fn value(s: &str) -> Pick {
    Pick::Value(s.as_bytes().to_vec())
}

/// The rule of section 3.1 on five acceptors (qc = 3, qf = 4), as a table.
#[test]
fn the_value_picking_rule() {
    let none = PlantedBugs::none();
    let classic = Round {
        number: 2,
        coordinator: NodeId(3),
        recovery: false,
    };
    let a = Some((r0(), "a"));
    let b = Some((r0(), "b"));
    // No votes: free.
    assert_eq!(
        pick(5, none, &[(1, None), (2, None), (3, None)]),
        Pick::Free
    );
    // The highest round's single value wins over a lower round's.
    assert_eq!(
        pick(5, none, &[(1, a), (2, Some((classic, "c"))), (3, None)]),
        value("c")
    );
    // Fast round, a in 2 of Q = {1,2,3}: a fast quorum of 4 may hold {1,2,4,5}: a may be chosen.
    assert_eq!(pick(5, none, &[(1, a), (2, a), (3, b)]), value("a"));
    assert_eq!(pick(5, none, &[(1, b), (2, a), (3, a)]), value("a"));
    // Split 2-2 in Q = {1,2,3,4}: neither can have 4 votes; any of V, the least.
    assert_eq!(pick(5, none, &[(1, b), (2, b), (3, a), (4, a)]), value("a"));
    // One vote each of three values: none chosen.
    let c = Some((r0(), "c"));
    assert_eq!(pick(5, none, &[(1, c), (2, b), (3, a)]), value("a"));
}

/// With fast quorums of 3 of 5 (the planted bug), a may have been chosen by {1,4,5} while
/// Q = {1,2,3} reports a, b, b: both a and b pass O4, and the rule picks b. Without the bug
/// the same reports cannot arise from a chosen a (it needs 4 votes), and b is simply safe.
#[cfg(feature = "planted-bugs")]
#[test]
fn planted_small_fast_quorum_lets_two_values_qualify() {
    let bug = PlantedBugs::only(Bug::FastQuorumTooSmall);
    let a = Some((r0(), "a"));
    let b = Some((r0(), "b"));
    assert_eq!(pick(5, bug, &[(1, a), (2, b), (3, b)]), value("b"));
    assert_eq!(
        FastConfig::new(5, RoundMode::Fast)
            .unwrap()
            .with_planted_bugs(bug)
            .quorums()
            .fast,
        3
    );
}

struct Net {
    nodes: Vec<FastNode>,
    inbox: Vec<(NodeId, NodeId, FastMessage)>,
}

impl Net {
    fn new(n: usize, mode: RoundMode) -> Net {
        Net::with_bugs(n, mode, PlantedBugs::none())
    }
    fn with_bugs(n: usize, mode: RoundMode, bugs: PlantedBugs) -> Net {
        let config = FastConfig::new(n, mode).unwrap();
        let nodes = (1..=n as u64)
            .map(|i| {
                let mut node =
                    FastNode::new(NodeId(i), config, FastOptions::default(), bugs).unwrap();
                node.set_may_lead(false);
                node
            })
            .collect();
        Net {
            nodes,
            inbox: Vec::new(),
        }
    }
    fn flush(&mut self) {
        for node in self.nodes.iter_mut() {
            loop {
                let ready = node.ready();
                let Some(batch) = ready.persist else {
                    self.inbox
                        .extend(ready.send.into_iter().map(|o| (node.id(), o.to, o.msg)));
                    break;
                };
                node.persisted(batch.seq);
                self.inbox
                    .extend(ready.send.into_iter().map(|o| (node.id(), o.to, o.msg)));
            }
        }
    }
    /// Delivers messages for which `pick` holds, in order, until none is left.
    fn deliver_while(&mut self, pick: impl Fn(&NodeId, &NodeId, &FastMessage) -> bool) {
        loop {
            self.flush();
            let Some(i) = self.inbox.iter().position(|(f, t, m)| pick(f, t, m)) else {
                return;
            };
            let (from, to, msg) = self.inbox.remove(i);
            self.nodes[(to.0 - 1) as usize].step(from, msg);
        }
    }
    fn propose(&mut self, to: &[u64], value: &str) {
        for &i in to {
            let msg = FastMessage::Propose {
                value: value.as_bytes().to_vec(),
            };
            self.nodes[(i - 1) as usize].step(NodeId(100), msg);
        }
    }
}

/// Section 3.2: two proposers split three acceptors 2-1 on a fast quorum of 3; the
/// coordinator detects the collision and recovers in one round-trip, without phase 1.
#[test]
fn a_collision_is_recovered_by_the_coordinator() {
    let mut net = Net::new(3, RoundMode::Fast);
    // Every acceptor gets its Any.
    net.deliver_while(|_, _, m| matches!(m, FastMessage::Any { .. }));
    net.propose(&[1, 2], "a");
    net.propose(&[3], "b");
    net.propose(&[1, 2], "b");
    net.propose(&[3], "a");
    net.deliver_while(|_, _, _| true);
    let coordinator = &net.nodes[0];
    assert_eq!(coordinator.counters().collisions, 1);
    assert_eq!(coordinator.counters().recoveries, 1);
    assert_eq!(coordinator.counters().classic_rounds, 0);
    for node in &net.nodes {
        assert_eq!(node.learned(), Some(&b"a".to_vec()));
        assert_eq!(node.learned_round(), Some(r0().recovery_round()));
    }
}

/// Without a collision, every learner learns from the fast round itself.
#[test]
fn no_collision_chooses_in_the_fast_round() {
    let mut net = Net::new(5, RoundMode::Fast);
    net.deliver_while(|_, _, m| matches!(m, FastMessage::Any { .. }));
    net.propose(&[1, 2, 3, 4, 5], "a");
    net.deliver_while(|_, _, _| true);
    for node in &net.nodes {
        assert_eq!(node.learned(), Some(&b"a".to_vec()));
        assert_eq!(node.learned_round(), Some(r0()));
    }
    assert_eq!(net.nodes[0].counters().collisions, 0);
}

/// A value chosen in the fast round survives a later classic round (section 2.2 + 3.1).
#[test]
fn a_classic_round_keeps_the_fast_choice() {
    let mut net = Net::new(5, RoundMode::Fast);
    net.deliver_while(|_, _, m| matches!(m, FastMessage::Any { .. }));
    net.propose(&[1, 2, 3, 4], "a");
    net.propose(&[5], "b");
    // Votes reach no learner: only the acceptors know a was chosen by {1,2,3,4}.
    net.deliver_while(|_, _, m| !matches!(m, FastMessage::Phase2b { .. }));
    net.inbox.clear();
    net.propose(&[1, 2, 3, 4, 5], "b");
    // Node 5 starts a classic round; phase 1b from {3,4,5} reports a, a, b.
    net.nodes[4].campaign();
    net.deliver_while(|_, to, m| match m {
        FastMessage::Phase1a { .. } => to.0 >= 3,
        _ => true,
    });
    for node in &net.nodes {
        assert_eq!(node.learned(), Some(&b"a".to_vec()), "node {}", node.id());
    }
}

/// A restarted coordinator never runs its initial round again.
#[test]
fn a_restarted_coordinator_does_not_reuse_round_zero() {
    let config = FastConfig::new(3, RoundMode::Classic).unwrap();
    let mut node = FastNode::new(
        NodeId(1),
        config,
        FastOptions::default(),
        PlantedBugs::none(),
    )
    .unwrap();
    let ready = node.ready();
    assert!(
        ready.persist.is_some(),
        "the initial round is promised first"
    );
    let mut durable = FastDurable::default();
    for op in &ready.persist.unwrap().ops {
        durable.apply(op);
    }
    let node = FastNode::recover(
        NodeId(1),
        config,
        FastOptions::default(),
        PlantedBugs::none(),
        durable,
    )
    .unwrap();
    assert_eq!(node.coordinating(), None);
}

#[test]
fn messages_from_strangers_are_ignored() {
    let config = FastConfig::new(3, RoundMode::Fast).unwrap();
    let mut node = FastNode::new(
        NodeId(2),
        config,
        FastOptions::default(),
        PlantedBugs::none(),
    )
    .unwrap();
    node.step(NodeId(9), FastMessage::Phase1a { round: r0() });
    node.step(
        NodeId(1),
        FastMessage::Propose {
            value: vec![0; VALUE_BYTES_MAX + 1],
        },
    );
    assert_eq!(node.counters().ignored, 2);
    assert!(node.ready().send.is_empty());
}

/// The model checker's counterexample for the planted bug, by hand: b is chosen in the fast
/// round by {2,3} (a "fast quorum" of 2), then node 1's classic round hears {1,2} (a, b), both
/// pass O4, and it picks a.
#[cfg(feature = "planted-bugs")]
#[test]
fn planted_small_fast_quorum_chooses_twice() {
    let mut net = Net::with_bugs(
        3,
        RoundMode::Fast,
        PlantedBugs::only(Bug::FastQuorumTooSmall),
    );
    net.deliver_while(|_, _, m| matches!(m, FastMessage::Any { .. }));
    net.propose(&[2, 3], "b");
    net.propose(&[1], "a");
    net.deliver_while(|_, to, m| matches!(m, FastMessage::Phase2b { .. }) && to.0 == 2);
    assert_eq!(net.nodes[1].learned(), Some(&b"b".to_vec()));
    net.inbox.clear();
    net.nodes[0].campaign();
    net.deliver_while(|_, to, _| to.0 <= 2);
    assert_eq!(net.nodes[0].learned(), Some(&b"a".to_vec()));
}
