//! Scenario tests of Paxos Commit, named after what they break (Gray and Lamport, section 4).

use super::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// RMs 1..=rms, leaders and acceptors after them; instant persistence, FIFO delivery.
struct Net {
    nodes: Vec<CommitNode>,
    down: Vec<bool>,
    votes: BTreeMap<NodeId, Vote>,
    learned: BTreeMap<(NodeId, TxnId), Outcome>,
    decided: Vec<(NodeId, TxnId, Outcome)>,
    rng: ChaCha8Rng,
}

impl Net {
    /// Paxos Commit with `f`: leaders rms+1, rms+2; acceptors after. `f = None`: 2PC with
    /// coordinator rms+1.
    fn new(rms: u64, f: Option<u64>) -> Net {
        let opts = CommitOptions::default();
        let rm = Roles {
            rm: true,
            ..Roles::default()
        };
        let mut nodes: Vec<CommitNode> = Vec::new();
        let config = match f {
            None => two_phase_commit(NodeId(rms + 1)),
            Some(f) => {
                let acc = (rms + 3..rms + 3 + 2 * f + 1).map(NodeId).collect();
                paxos_commit(acc, vec![NodeId(rms + 1), NodeId(rms + 2)]).unwrap()
            }
        };
        for i in 1..=rms {
            nodes.push(CommitNode::new(NodeId(i), rm, config.clone(), opts.clone()));
        }
        match f {
            None => nodes.push(CommitNode::new(
                NodeId(rms + 1),
                Roles {
                    acceptor: true,
                    leader: true,
                    rm: false,
                },
                config,
                opts,
            )),
            Some(f) => {
                let leader = Roles {
                    leader: true,
                    ..Roles::default()
                };
                let acceptor = Roles {
                    acceptor: true,
                    ..Roles::default()
                };
                for i in rms + 1..=rms + 2 {
                    nodes.push(CommitNode::new(
                        NodeId(i),
                        leader,
                        config.clone(),
                        opts.clone(),
                    ));
                }
                for i in rms + 3..rms + 3 + 2 * f + 1 {
                    nodes.push(CommitNode::new(
                        NodeId(i),
                        acceptor,
                        config.clone(),
                        opts.clone(),
                    ));
                }
            }
        }
        let down = vec![false; nodes.len()];
        Net {
            nodes,
            down,
            votes: BTreeMap::new(),
            learned: BTreeMap::new(),
            decided: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(1),
        }
    }

    /// Runs `ticks` rounds: drain every node, deliver, tick.
    fn run(&mut self, ticks: u32) {
        for _ in 0..ticks {
            let mut mail = Vec::new();
            for k in 0..self.nodes.len() {
                if self.down[k] {
                    continue;
                }
                loop {
                    let n = &mut self.nodes[k];
                    let ready = n.ready();
                    if let Some(b) = &ready.persist {
                        n.persisted(b.seq);
                    }
                    for t in &ready.prepare {
                        let v = self.votes.get(&n.id()).copied().unwrap_or(Vote::Prepared);
                        n.vote(*t, v).unwrap();
                    }
                    for (t, o) in &ready.learned {
                        let prev = self.learned.insert((n.id(), *t), *o);
                        assert!(prev.is_none_or(|p| p == *o));
                    }
                    for (t, o) in &ready.decided {
                        self.decided.push((n.id(), *t, *o));
                    }
                    let quiet = ready.persist.is_none() && ready.prepare.is_empty();
                    mail.extend(ready.send.into_iter().map(|o| (n.id(), o)));
                    if quiet {
                        break;
                    }
                }
            }
            for (from, o) in mail {
                let k = (o.to.0 - 1) as usize;
                if !self.down[k] {
                    self.nodes[k].step(from, o.msg);
                }
            }
            for k in 0..self.nodes.len() {
                if !self.down[k] {
                    self.nodes[k].tick(&mut self.rng);
                }
            }
        }
    }

    fn outcome(&self, rm: u64) -> Option<Outcome> {
        self.learned.get(&(NodeId(rm), TxnId(1))).copied()
    }
}

#[test]
fn every_rm_prepared_commits() {
    let mut net = Net::new(3, Some(1));
    net.nodes[0]
        .begin(TxnId(1), vec![NodeId(1), NodeId(2), NodeId(3)])
        .unwrap();
    net.run(10);
    for rm in 1..=3 {
        assert_eq!(net.outcome(rm), Some(Outcome::Committed), "rm {rm}");
    }
}

#[test]
fn one_aborted_vote_aborts() {
    let mut net = Net::new(3, Some(1));
    net.votes.insert(NodeId(2), Vote::Aborted);
    net.nodes[0]
        .begin(TxnId(1), vec![NodeId(1), NodeId(2), NodeId(3)])
        .unwrap();
    net.run(10);
    for rm in 1..=3 {
        assert_eq!(net.outcome(rm), Some(Outcome::Aborted), "rm {rm}");
    }
}

#[test]
fn a_silent_coordinator_is_replaced_and_the_votes_it_missed_still_commit() {
    // The coordinator (node 4) dies right after sending Prepare: the votes reach the acceptors,
    // the backup leader (5) hears of the transaction from the RMs' queries, runs phase 1 and
    // finds every instance Prepared.
    let mut net = Net::new(3, Some(1));
    net.nodes[0]
        .begin(TxnId(1), vec![NodeId(1), NodeId(2), NodeId(3)])
        .unwrap();
    net.run(2);
    net.down[3] = true;
    net.run(300);
    for rm in 1..=3 {
        assert_eq!(net.outcome(rm), Some(Outcome::Committed), "rm {rm}");
    }
    assert!(net.decided.iter().any(|(n, _, _)| *n == NodeId(5)));
}

#[test]
fn a_vote_never_cast_is_aborted_by_the_taking_over_leader() {
    // RM 3 is down: its instance has no accepted value, so the leader's phase 1 proposes
    // Aborted for it (the paper's rule), and RMs 1 and 2 learn Aborted.
    let mut net = Net::new(3, Some(1));
    net.down[2] = true;
    net.nodes[0]
        .begin(TxnId(1), vec![NodeId(1), NodeId(2), NodeId(3)])
        .unwrap();
    net.run(300);
    assert_eq!(net.outcome(1), Some(Outcome::Aborted));
    assert_eq!(net.outcome(2), Some(Outcome::Aborted));
}

#[test]
fn two_phase_commit_blocks_while_its_coordinator_is_down() {
    let mut net = Net::new(2, None);
    net.nodes[0]
        .begin(TxnId(1), vec![NodeId(1), NodeId(2)])
        .unwrap();
    net.run(1);
    net.down[2] = true;
    net.run(500);
    assert_eq!(
        net.outcome(1),
        None,
        "prepared RM 1 cannot know the outcome"
    );
    assert_eq!(net.outcome(2), None);
    net.down[2] = false;
    // It comes back with nothing on disk: acceptable here only because nothing was decided
    // (it never accepted a vote), and the point is that only its return unblocks the RMs.
    let durable = CommitDurable::default();
    let c = net.nodes[2].clone();
    net.nodes[2] = CommitNode::recover(
        c.id(),
        Roles {
            acceptor: true,
            leader: true,
            rm: false,
        },
        two_phase_commit(c.id()),
        CommitOptions::default(),
        &durable,
        crate::PlantedBugs::none(),
    );
    net.run(300);
    assert!(net.outcome(1).is_some() && net.outcome(1) == net.outcome(2));
}

#[test]
fn peer_garbage_is_refused_not_panicked_on() {
    let mut net = Net::new(2, Some(1));
    let acceptor = &mut net.nodes[4];
    let rms = Participants::new(vec![NodeId(1), NodeId(2)]).unwrap();
    // RM 2 cannot vote for instance 0, nor anyone at instance 9, nor a non-leader at round 1.
    for (from, instance, ballot) in [
        (NodeId(2), 0, Ballot::new(0, NodeId(2))),
        (NodeId(1), 9, Ballot::new(0, NodeId(1))),
        (NodeId(1), 0, Ballot::new(1, NodeId(1))),
    ] {
        let msg = CommitMessage::Phase2a {
            txn: TxnId(1),
            rms: rms.clone(),
            instance,
            ballot,
            vote: Vote::Prepared,
        };
        acceptor.step(from, msg);
    }
    assert_eq!(acceptor.counters().refused, 3);
    assert!(acceptor.ready().send.is_empty());
}

use crate::ids::Ballot;
