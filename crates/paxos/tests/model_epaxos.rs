//! Model checking of the real EPaxos core, `paxos::epaxos::Replica`, with stateright: three
//! replicas; replicas 1 and 2 each propose a write on the same key at the start (the two
//! commands interfere), and replica 3 may take instance 1.1 over by explicit prepare at any
//! moment (a timer), as it would once it waited too long for the command leader.
//!
//! Nothing here re-implements EPaxos. Each actor owns a `Replica` and does what a driver does:
//! `step` the message in, drain `ready()` (the disk is instant). Bounds: no retransmission and
//! no loss (in an unordered network a lost message is one never delivered, which the search
//! covers), breadth first to [`DEPTH_MAX`] steps.
//!
//! Properties: agreement (every replica that commits an instance commits the same command and
//! attributes) and consistent execution (the sequences of writes replicas executed are prefixes
//! of one another: the two writes interfere; a no-op a takeover chose interferes with nothing,
//! so it may run anywhere); and, so the check is not
//! vacuous, the fast path, the slow path, a takeover, and both commands executed at every
//! replica are each reached.
//!
//! With `--features planted-bugs` the checker must find the planted execution order that
//! ignores sequence numbers:
//! `cargo test -p synod-paxos --features planted-bugs --test model_epaxos -- --nocapture`.

mod common;

use common::{actor_id, node_id, Wire};
use paxos::epaxos::{
    Attrs, Command, CommandId, EpaxosMessage, EpaxosOptions, InstanceId, KvOp, Replica, Status,
};
use paxos::{NodeId, PlantedBugs};
use stateright::actor::{Actor, ActorModel, ActorModelState, Id, LossyNetwork, Network, Out};
use stateright::{Checker, CheckerBuilder, Expectation, Model};
use std::borrow::Cow;

/// Steps explored: every interleaving of up to this many deliveries and timer firings. Enough
/// to reach each "sometimes" property (the longest, both writes executed at all three
/// replicas, takes 10 steps with both on the fast path); 12 is 185 thousand states and about
/// 30 s on two shared cores, 14 is 800 thousand and 2 minutes. The simulator covers longer runs.
const DEPTH_MAX: usize = 12;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Timer {
    TakeOver,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    replica: Replica,
    /// Ghost: what this replica executed, in order.
    executed: Vec<Command>,
}

struct EpaxosActor {
    bugs: PlantedBugs,
}

const IDS: [NodeId; 3] = [NodeId(1), NodeId(2), NodeId(3)];
const TAKEN_OVER: InstanceId = InstanceId {
    replica: NodeId(1),
    slot: 1,
};

fn write(client: u64) -> Command {
    Command::Kv {
        id: CommandId { client, seq: 1 },
        op: KvOp::Put {
            key: "k".into(),
            value: format!("v{client}"),
        },
    }
}

fn drain(s: &mut State, o: &mut Out<EpaxosActor>) {
    let ready = s.replica.ready();
    for out in ready.send {
        o.send(actor_id(out.to), Wire(out.msg));
    }
    s.executed
        .extend(ready.executed.into_iter().map(|(_, c)| c));
}

impl Actor for EpaxosActor {
    type Msg = Wire<EpaxosMessage>;
    type Timer = Timer;
    type State = State;
    type Storage = ();
    type Random = ();

    fn on_start(&self, id: Id, _storage: &Option<()>, o: &mut Out<Self>) -> State {
        let me = node_id(id);
        let replica = Replica::recover(
            me,
            IDS.to_vec(),
            EpaxosOptions::default(),
            Vec::new(),
            self.bugs,
        )
        .expect("three replicas");
        let mut s = State {
            replica,
            executed: Vec::new(),
        };
        match me.0 {
            1 | 2 => {
                s.replica.propose(write(me.0)).expect("room");
            }
            _ => o.set_timer(Timer::TakeOver, stateright::actor::model_timeout()),
        }
        drain(&mut s, o);
        s
    }

    fn on_msg(
        &self,
        _id: Id,
        state: &mut Cow<State>,
        src: Id,
        msg: Wire<EpaxosMessage>,
        o: &mut Out<Self>,
    ) {
        let mut next = (**state).clone();
        next.replica.step(node_id(src), msg.0);
        drain(&mut next, o);
        if next != **state {
            *state.to_mut() = next;
        }
    }

    fn on_timeout(&self, _id: Id, state: &mut Cow<State>, _timer: &Timer, o: &mut Out<Self>) {
        let mut next = (**state).clone();
        next.replica.take_over(TAKEN_OVER);
        drain(&mut next, o);
        if next != **state {
            *state.to_mut() = next;
        }
    }
}

type EpaxosModel = ActorModel<EpaxosActor, ()>;
type MState = ActorModelState<EpaxosActor>;

fn committed(s: &State, i: InstanceId) -> Option<(Command, Attrs)> {
    s.replica
        .record(i)
        .filter(|r| r.vballot.is_some() && r.status == Status::Committed)
        .map(|r| (r.command.clone(), r.attrs.clone()))
}

fn instances() -> [InstanceId; 2] {
    [
        TAKEN_OVER,
        InstanceId {
            replica: NodeId(2),
            slot: 1,
        },
    ]
}

fn model(bugs: PlantedBugs) -> EpaxosModel {
    ActorModel::new((), ())
        .actors([
            EpaxosActor { bugs },
            EpaxosActor { bugs },
            EpaxosActor { bugs },
        ])
        .init_network(Network::new_unordered_nonduplicating([]))
        .lossy_network(LossyNetwork::No)
        .property(Expectation::Always, "agreement on each instance", |_, s| {
            instances().iter().all(|i| {
                let c: Vec<_> = s
                    .actor_states
                    .iter()
                    .filter_map(|a| committed(a, *i))
                    .collect();
                c.windows(2).all(|w| w[0] == w[1])
            })
        })
        .property(
            Expectation::Always,
            "interfering commands execute in one order",
            |_, s: &MState| {
                // No-ops interfere with nothing; the two writes interfere with each other.
                let e: Vec<Vec<&Command>> = s
                    .actor_states
                    .iter()
                    .map(|a| a.executed.iter().filter(|c| **c != Command::Noop).collect())
                    .collect();
                e.iter().all(|a| {
                    e.iter().all(|b| {
                        let n = a.len().min(b.len());
                        a[..n] == b[..n]
                    })
                })
            },
        )
        .property(Expectation::Sometimes, "fast path", |_, s| {
            s.actor_states
                .iter()
                .any(|a| a.replica.counters().fast_commits > 0)
        })
        .property(Expectation::Sometimes, "slow path", |_, s| {
            s.actor_states
                .iter()
                .any(|a| a.replica.counters().slow_commits > 0)
        })
        .property(
            Expectation::Sometimes,
            "instance 1.1 chosen by the replica that took it over",
            |_, s| {
                let r3 = &s.actor_states[2].replica;
                r3.counters().recoveries > 0 && committed(&s.actor_states[2], TAKEN_OVER).is_some()
            },
        )
        .property(
            Expectation::Sometimes,
            "both executed everywhere",
            |_, s| s.actor_states.iter().all(|a| a.executed.len() == 2),
        )
}

fn checker(bugs: PlantedBugs) -> CheckerBuilder<EpaxosModel> {
    model(bugs)
        .checker()
        .threads(common::threads())
        .target_max_depth(DEPTH_MAX)
}

#[test]
fn epaxos_agreement_and_one_execution_order_two_interfering_commands_with_takeover() {
    common::explore(
        "model_epaxos 3 replicas, two interfering writes, replica 3 may take 1.1 over",
        checker(PlantedBugs::none()),
    )
    .assert_properties();
}

#[cfg(feature = "planted-bugs")]
mod planted {
    use super::*;
    use paxos::Bug;

    #[test]
    fn an_execution_order_ignoring_sequence_numbers_is_found() {
        let bug = Bug::ExecuteIgnoringSeq;
        common::expect_counterexample(
            &format!("model_epaxos {}", bug.name()),
            "interfering commands execute in one order",
            checker(PlantedBugs::only(bug)),
        );
    }
}
