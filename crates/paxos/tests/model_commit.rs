//! Model checking of the real Paxos Commit core, `paxos::commit::CommitNode`, with stateright:
//! two resource managers (nodes 1, 2), the coordinator (3), a second leader (4) and three
//! acceptors (5..=7, F = 1), one transaction begun by RM 1.
//!
//! Nothing here re-implements Paxos Commit. Each actor owns a `CommitNode` and does what a
//! driver does: `step` the message in, drain `ready()`, make each persist batch durable at once
//! and report it. Nondeterminism beyond message order:
//! - RM 2 votes Prepared or Aborted (two timers; whichever fires first votes);
//! - the coordinator may stop for good at any moment (a timer): the crash;
//! - the second leader may take the transaction over at any moment (a timer): `take_over`,
//!   phase 1 at a higher ballot, proposing Aborted for an instance with no accepted value.
//!
//! Bounds: no retransmission timers (in an unordered network a lost message is one never
//! delivered, which the search already covers, so loss is not modelled); outcome
//! acknowledgements, and `Decided` and `Settled` between leaders, are not delivered (they only
//! let leaders forget, or resend outcomes should the decider go silent: liveness, not safety);
//! the search is breadth first to [`DEPTH_MAX`] steps: every execution of up to that many
//! deliveries and timer firings (see the constant for why that bound).
//!
//! Properties: atomic commitment (every RM and leader that learns or decides has the same
//! outcome; Committed only if both RMs durably voted Prepared), and, so that the check is not
//! vacuous, "committed" and "aborted after the first leader stopped" are reached.
//!
//! With `--features planted-bugs`, the checker must find the planted `commit-with-missing-vote`:
//! `cargo test -p synod-paxos --features planted-bugs --test model_commit -- --nocapture`.

mod common;

use common::{actor_id, node_id, Wire};
use paxos::commit::{
    paxos_commit, CommitConfig, CommitMessage, CommitNode, CommitOptions, CommitPersist, Outcome,
    Roles, TxnId, Vote,
};
use paxos::{NodeId, PlantedBugs};
use stateright::actor::{Actor, ActorModel, ActorModelState, Id, LossyNetwork, Network, Out};
use stateright::{Checker, CheckerBuilder, Expectation, Model};
use std::borrow::Cow;

const TXN: TxnId = TxnId(1);
const RMS: [u64; 2] = [1, 2];
const COORDINATOR: u64 = 3;
const SECOND_LEADER: u64 = 4;
const ACCEPTORS: [u64; 3] = [5, 6, 7];
/// Steps explored. Enough for the coordinator to decide, or to stop and the second leader to
/// finish with every message of its phases 1 and 2 delivered.
/// Steps explored. The shortest commit is 11 steps after the initial state (Begin, Prepare,
/// RM 2's vote, two acceptors' accepts per instance, their four phase 2b messages), the
/// shortest abort by the second leader after the coordinator stopped 11 too (stop, take over,
/// two promises asked and given, one instance's Aborted accepted by two acceptors, their 2b,
/// an Outcome); stateright counts the initial state as depth 1 and does not check states at the
/// bound itself, hence 13. Each step further multiplies the states by about four (15: 1.7
/// million states, 150 s on two shared cores); the seeded simulator covers longer runs.
const DEPTH_MAX: usize = 13;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Timer {
    VotePrepared,
    VoteAborted,
    Stop,
    TakeOver,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    node: CommitNode,
    stopped: bool,
    /// Ghost: this RM's durable vote.
    voted: Option<Vote>,
    /// Ghost: outcome learned (RM) or decided (leader).
    outcome: Option<Outcome>,
    /// Ghost: a second, different outcome, if any (a broken protocol).
    conflicting: bool,
}

struct CommitActor {
    config: CommitConfig,
    roles: Roles,
    bugs: PlantedBugs,
}

impl CommitActor {
    fn drain(&self, id: Id, s: &mut State, o: &mut Out<Self>) {
        loop {
            let ready = s.node.ready();
            for out in ready.send {
                if matches!(
                    out.msg,
                    CommitMessage::OutcomeAck { .. }
                        | CommitMessage::Settled { .. }
                        | CommitMessage::Decided { .. }
                ) {
                    continue;
                }
                o.send(actor_id(out.to), Wire(out.msg));
            }
            for txn in &ready.prepare {
                if node_id(id) == NodeId(RMS[0]) {
                    let _ = s.node.vote(*txn, Vote::Prepared);
                } else {
                    o.set_timer(Timer::VotePrepared, stateright::actor::model_timeout());
                    o.set_timer(Timer::VoteAborted, stateright::actor::model_timeout());
                }
            }
            for (_, outcome) in ready.learned.iter().chain(&ready.decided) {
                match s.outcome {
                    None => s.outcome = Some(*outcome),
                    Some(o) if o != *outcome => s.conflicting = true,
                    Some(_) => {}
                }
            }
            let more = !ready.prepare.is_empty();
            match ready.persist {
                Some(batch) => {
                    for op in &batch.ops {
                        if let CommitPersist::RmVoted { vote, .. } = op {
                            s.voted = Some(*vote);
                        }
                    }
                    s.node.persisted(batch.seq);
                }
                None if !more => break,
                None => {}
            }
        }
    }
}

impl Actor for CommitActor {
    type Msg = Wire<CommitMessage>;
    type Timer = Timer;
    type State = State;
    type Storage = ();
    type Random = ();

    fn on_start(&self, id: Id, _storage: &Option<()>, o: &mut Out<Self>) -> State {
        let node = CommitNode::recover(
            node_id(id),
            self.roles,
            self.config.clone(),
            CommitOptions::default(),
            &Default::default(),
            self.bugs,
        );
        let mut s = State {
            node,
            stopped: false,
            voted: None,
            outcome: None,
            conflicting: false,
        };
        match node_id(id).0 {
            1 => {
                s.node
                    .begin(TXN, RMS.iter().map(|r| NodeId(*r)).collect())
                    .expect("RM 1 begins");
            }
            COORDINATOR => o.set_timer(Timer::Stop, stateright::actor::model_timeout()),
            SECOND_LEADER => o.set_timer(Timer::TakeOver, stateright::actor::model_timeout()),
            _ => {}
        }
        self.drain(id, &mut s, o);
        s
    }

    fn on_msg(
        &self,
        id: Id,
        state: &mut Cow<State>,
        src: Id,
        msg: Wire<CommitMessage>,
        o: &mut Out<Self>,
    ) {
        if state.stopped {
            return;
        }
        let mut next = (**state).clone();
        next.node.step(node_id(src), msg.0);
        self.drain(id, &mut next, o);
        if next != **state {
            *state.to_mut() = next;
        }
    }

    fn on_timeout(&self, id: Id, state: &mut Cow<State>, timer: &Timer, o: &mut Out<Self>) {
        if state.stopped {
            return;
        }
        let mut next = (**state).clone();
        match timer {
            Timer::VotePrepared | Timer::VoteAborted => {
                let vote = if *timer == Timer::VotePrepared {
                    Vote::Prepared
                } else {
                    Vote::Aborted
                };
                if next.node.vote(TXN, vote).is_err() {
                    return;
                }
            }
            Timer::Stop => next.stopped = true,
            Timer::TakeOver => {
                let rms = RMS.iter().map(|r| NodeId(*r)).collect();
                next.node.take_over(TXN, rms).expect("a leader");
            }
        }
        self.drain(id, &mut next, o);
        if next != **state {
            *state.to_mut() = next;
        }
    }
}

type CommitModel = ActorModel<CommitActor, ()>;
type MState = ActorModelState<CommitActor>;

fn outcomes(s: &MState) -> Vec<Outcome> {
    s.actor_states.iter().filter_map(|a| a.outcome).collect()
}

fn model(bugs: PlantedBugs) -> CommitModel {
    let config = paxos_commit(
        ACCEPTORS.iter().map(|a| NodeId(*a)).collect(),
        vec![NodeId(COORDINATOR), NodeId(SECOND_LEADER)],
    )
    .unwrap();
    let actor = |roles: Roles| CommitActor {
        config: config.clone(),
        roles,
        bugs,
    };
    let rm = Roles {
        rm: true,
        ..Roles::default()
    };
    let leader = Roles {
        leader: true,
        ..Roles::default()
    };
    let acceptor = Roles {
        acceptor: true,
        ..Roles::default()
    };
    ActorModel::new((), ())
        .actors([actor(rm), actor(rm), actor(leader), actor(leader)])
        .actors(ACCEPTORS.map(|_| actor(acceptor)))
        .init_network(Network::new_unordered_nonduplicating([]))
        .lossy_network(LossyNetwork::No)
        .property(
            Expectation::Always,
            "atomic commitment: agreement",
            |_, s| {
                let o = outcomes(s);
                o.windows(2).all(|w| w[0] == w[1]) && s.actor_states.iter().all(|a| !a.conflicting)
            },
        )
        .property(
            Expectation::Always,
            "atomic commitment: commit only if every RM voted Prepared",
            |_, s| {
                !outcomes(s).contains(&Outcome::Committed)
                    || s.actor_states[..2]
                        .iter()
                        .all(|a| a.voted == Some(Vote::Prepared))
            },
        )
        .property(Expectation::Sometimes, "committed", |_, s| {
            outcomes(s).contains(&Outcome::Committed)
        })
        .property(
            Expectation::Sometimes,
            "aborted after the first leader stopped",
            |_, s| {
                let l = &s.actor_states[(SECOND_LEADER - 1) as usize];
                s.actor_states[(COORDINATOR - 1) as usize].stopped
                    && l.outcome == Some(Outcome::Aborted)
                    && s.actor_states[..2]
                        .iter()
                        .any(|a| a.outcome == Some(Outcome::Aborted))
            },
        )
        .within_boundary(|_, s: &MState| {
            // A cheap guard on top of the depth bound: nothing grows past a handful of messages.
            s.network.len() <= 24
        })
}

fn checker(bugs: PlantedBugs) -> CheckerBuilder<CommitModel> {
    model(bugs)
        .checker()
        .threads(common::threads())
        .target_max_depth(DEPTH_MAX)
}

#[test]
fn paxos_commit_atomic_commitment_two_rms_f1_with_takeover() {
    common::explore(
        "model_commit 2 RMs, F = 1, coordinator may stop, second leader may take over",
        checker(PlantedBugs::none()),
    )
    .assert_properties();
}

#[cfg(feature = "planted-bugs")]
mod planted {
    use super::*;
    use paxos::Bug;

    #[test]
    fn commit_with_a_missing_vote_is_found() {
        let bug = Bug::CommitWithMissingVote;
        common::expect_counterexample(
            &format!("model_commit {}", bug.name()),
            "atomic commitment: commit only if every RM voted Prepared",
            checker(PlantedBugs::only(bug)),
        );
    }
}
