//! Model checking of reconfiguration in the real Multi-Paxos core (`multi/reconfig.rs`) with
//! stateright: one membership change, replacing a voter with a learner, while leaders change.
//!
//! Four replicas. The first configuration (epoch 0) has voters 1, 2, 3 and learner 4; the one
//! change the model allows is a stop-sign naming voters 1, 2, 4 (3 is removed, 4 promoted:
//! "replace a member"). As in `model_multi.rs`, each actor owns a real `Replica` and drains
//! `ready()` the way a driver does, durable at once; time never passes, so elections and
//! proposals are explicit timer actions the checker may fire at any moment:
//!
//! - replicas 1 and 2 may each `campaign()` once; a leader that stays a voter also runs phase 1
//!   on its own when it enters the new epoch;
//! - a replica that leads may propose the change (once in the whole run) and its one command
//!   (client = its node id), at most `COMMANDS_MAX` commands in the run.
//!
//! The oracle is epoch-aware: every `PersistOp::Accept` a replica emitted is a ghost record
//! `(slot, ballot, value, epoch the replica was in)`, and a value is *chosen* in a slot once a
//! phase-2 quorum **of that epoch's voters** accepted it at one ballot (learners' accepts never
//! count). Checked in every state: agreement across epochs (per slot one value among
//! everything chosen in any epoch, marked chosen, or applied), learned only chosen values,
//! applied in order and as prefixes of one another, at most one epoch per node at a time
//! ahead of what was chosen (a replica is in epoch 1 only if the stop-sign is chosen), and
//! that no value is chosen after a chosen stop-sign in its own epoch.
//!
//! Non-vacuity (`Sometimes`): the change chosen; a command chosen in the new epoch (so a
//! value is chosen after the change); the removed replica outside the configuration; the
//! learner voting.
//!
//! With `--features planted-bugs` the same checker must find a counterexample with the
//! learner counted in a quorum ("learned only chosen values") and with a change made without
//! the stop-sign rule ("a stop-sign seals its epoch"): `cargo test -p synod-paxos --features
//! planted-bugs --test model_reconfig planted`.

mod common;
use common::{actor_id, node_id, threads, Wire};

use paxos::multi::{
    ClientId, Command, CommandId, Message, PersistOp, Replica, ReplicaOptions, Role, Value,
};
use paxos::{Ballot, Configuration, NodeId, PlantedBugs, QuorumSpec, Slot};
use stateright::actor::{Actor, ActorModel, ActorModelState, Id, Network, Out};
use stateright::{Checker, CheckerBuilder, Expectation, Model};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

const REPLICAS: u64 = 4;
const CAMPAIGNERS: [u64; 2] = [1, 2];
const COMMANDS_MAX: usize = 1;

fn first_config() -> Configuration {
    Configuration::with_learners(
        vec![NodeId(1), NodeId(2), NodeId(3)],
        vec![NodeId(4)],
        QuorumSpec::Majority,
    )
    .unwrap()
}

fn next_config() -> Configuration {
    Configuration::new(vec![NodeId(1), NodeId(2), NodeId(4)], QuorumSpec::Majority).unwrap()
}

fn config_of(epoch: u64) -> Configuration {
    if epoch == 0 {
        first_config()
    } else {
        next_config()
    }
}

fn command_of(n: NodeId) -> Command {
    Command {
        id: CommandId {
            client: ClientId(n.0),
            seq: 1,
        },
        payload: vec![n.0 as u8].into(),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct ReplicaState {
    replica: Replica,
    campaigns_left: u8,
    /// Ghost: whether this replica proposed the change, and its command.
    proposed_change: bool,
    proposed_command: bool,
    /// Ghost: every `(slot, ballot, value, epoch)` this replica persisted as accepted.
    accepted_ever: BTreeSet<(Slot, Ballot, Wire<Value>, u64)>,
    /// Ghost: what `ready()` handed out for apply, in order.
    handed_out: Vec<(Slot, Value)>,
    /// Ghost: the epoch of the last `EnterConfiguration` persisted.
    ghost_epoch: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Timer {
    Campaign,
    ProposeChange,
    ProposeCommand,
}

struct ReplicaActor {
    bugs: PlantedBugs,
}

fn options() -> ReplicaOptions {
    ReplicaOptions {
        // The model never delivers heartbeat echoes, so a learner never reports its prefix:
        // promotion is judged by the rule alone, not by lag.
        promote_lag_slots_max: u64::MAX,
        ..ReplicaOptions::default()
    }
}

impl ReplicaActor {
    fn drain(state: &mut ReplicaState, o: &mut Out<Self>) {
        loop {
            let ready = state.replica.ready();
            for out in ready.send {
                if matches!(out.msg, Message::HeartbeatAck { .. }) {
                    continue;
                }
                o.send(actor_id(out.to), Wire(out.msg));
            }
            for c in ready.chosen {
                state.handed_out.push((c.slot, c.value));
            }
            let Some(batch) = ready.persist else { break };
            // Ops come in the order the replica did them: an accept belongs to the epoch of
            // the last configuration entered before it.
            for op in &batch.ops {
                let epoch = state.ghost_epoch;
                match op {
                    PersistOp::EnterConfiguration { membership } => {
                        state.ghost_epoch = membership.epoch
                    }
                    PersistOp::Accept {
                        slot,
                        ballot,
                        value,
                    } => {
                        state
                            .accepted_ever
                            .insert((*slot, *ballot, Wire(value.clone()), epoch));
                    }
                    _ => {}
                }
            }
            state.replica.persisted(batch.seq);
        }
    }

    fn update(state: &mut Cow<ReplicaState>, o: &mut Out<Self>, f: impl FnOnce(&mut ReplicaState)) {
        let mut next = (**state).clone();
        f(&mut next);
        Self::drain(&mut next, o);
        assert!(next.replica.promised() >= state.replica.promised());
        assert!(next.replica.chosen_through() >= state.replica.chosen_through());
        assert!(
            next.replica.epoch() >= state.replica.epoch(),
            "an epoch went back"
        );
        if next != **state {
            *state.to_mut() = next;
        }
    }
}

impl Actor for ReplicaActor {
    type Msg = Wire<Message>;
    type Timer = Timer;
    type State = ReplicaState;
    type Storage = ();
    type Random = ();

    fn on_start(&self, id: Id, _storage: &Option<()>, o: &mut Out<Self>) -> ReplicaState {
        let me = node_id(id);
        let replica = Replica::recover_with_bugs(
            me,
            first_config(),
            options(),
            Default::default(),
            self.bugs,
        )
        .expect("a member of the first configuration");
        let campaigner = CAMPAIGNERS.contains(&me.0);
        if campaigner {
            o.set_timer(Timer::Campaign, stateright::actor::model_timeout());
            o.set_timer(Timer::ProposeChange, stateright::actor::model_timeout());
            o.set_timer(Timer::ProposeCommand, stateright::actor::model_timeout());
        }
        ReplicaState {
            replica,
            campaigns_left: u8::from(campaigner),
            proposed_change: false,
            proposed_command: false,
            accepted_ever: BTreeSet::new(),
            handed_out: Vec::new(),
            ghost_epoch: 0,
        }
    }

    fn on_msg(
        &self,
        _id: Id,
        state: &mut Cow<ReplicaState>,
        src: Id,
        msg: Self::Msg,
        o: &mut Out<Self>,
    ) {
        Self::update(state, o, |s| {
            let _ = s.replica.step(node_id(src), msg.0);
        });
    }

    fn on_timeout(&self, id: Id, state: &mut Cow<ReplicaState>, timer: &Timer, o: &mut Out<Self>) {
        let leading = state.replica.role() == Role::Leader;
        match timer {
            Timer::Campaign => {
                if state.campaigns_left == 0 {
                    return;
                }
                Self::update(state, o, |s| {
                    s.campaigns_left -= 1;
                    s.replica.campaign();
                });
            }
            Timer::ProposeChange => {
                if state.proposed_change {
                    return;
                }
                if !leading || state.replica.epoch() > 0 {
                    if state.replica.epoch() == 0 {
                        o.set_timer(Timer::ProposeChange, stateright::actor::model_timeout());
                    }
                    return;
                }
                // A leader that adopted another leader's stop-sign at takeover refuses a
                // second change (InProgress): then the model has nothing to do.
                let mut trial = state.replica.clone();
                match trial.propose_reconfiguration(next_config()) {
                    Ok(_) => Self::update(state, o, |s| {
                        s.proposed_change = true;
                        s.replica = trial;
                    }),
                    Err(paxos::multi::ReconfigError::InProgress { .. }) => {}
                    Err(e) => panic!("a leader refused the change: {e}"),
                }
            }
            Timer::ProposeCommand => {
                if state.proposed_command {
                    return;
                }
                if !leading {
                    o.set_timer(Timer::ProposeCommand, stateright::actor::model_timeout());
                    return;
                }
                let command = command_of(node_id(id));
                Self::update(state, o, |s| {
                    s.proposed_command = true;
                    s.replica.propose(command).expect("a leader accepts");
                });
            }
        }
    }
}

type State = ActorModelState<ReplicaActor>;
type ReconfigModel = ActorModel<ReplicaActor, ()>;

/// Per slot, the values a phase-2 quorum of their epoch's voters accepted at one ballot, with
/// the epochs in which they were chosen.
fn chosen(state: &State) -> BTreeMap<Slot, BTreeMap<Wire<Value>, BTreeSet<u64>>> {
    let mut votes: BTreeMap<(Slot, Ballot, &Wire<Value>, u64), BTreeSet<NodeId>> = BTreeMap::new();
    for (i, s) in state.actor_states.iter().enumerate() {
        let node = NodeId(i as u64 + 1);
        for (slot, ballot, value, epoch) in &s.accepted_ever {
            if config_of(*epoch).is_voter(node) {
                votes
                    .entry((*slot, *ballot, value, *epoch))
                    .or_default()
                    .insert(node);
            }
        }
    }
    let mut out: BTreeMap<Slot, BTreeMap<Wire<Value>, BTreeSet<u64>>> = BTreeMap::new();
    for ((slot, _, value, epoch), voters) in votes {
        if voters.len() >= config_of(epoch).phase2_size() {
            out.entry(slot)
                .or_default()
                .entry(value.clone())
                .or_default()
                .insert(epoch);
        }
    }
    out
}

fn learned(state: &State) -> BTreeMap<Slot, BTreeSet<Wire<Value>>> {
    let mut out: BTreeMap<Slot, BTreeSet<Wire<Value>>> = BTreeMap::new();
    for s in &state.actor_states {
        let r = &s.replica;
        for slot in r.slots() {
            if let Some((_, value, true)) = r.entry(slot) {
                out.entry(slot).or_default().insert(Wire(value.clone()));
            }
        }
        for (slot, value) in &s.handed_out {
            out.entry(*slot).or_default().insert(Wire(value.clone()));
        }
    }
    out
}

fn agreement(s: &State) -> bool {
    let mut per_slot = learned(s);
    for (slot, values) in chosen(s) {
        per_slot.entry(slot).or_default().extend(values.into_keys());
    }
    per_slot.values().all(|values| values.len() <= 1)
}

fn learned_only_chosen(s: &State) -> bool {
    let chosen = chosen(s);
    learned(s).iter().all(|(slot, values)| {
        values
            .iter()
            .all(|v| chosen.get(slot).is_some_and(|c| c.contains_key(v)))
    })
}

/// The slot of the chosen stop-sign, if any.
fn stop_sign_slot(s: &State) -> Option<Slot> {
    chosen(s)
        .into_iter()
        .find(|(_, vs)| vs.keys().any(|v| v.0.is_stop_sign()))
        .map(|(slot, _)| slot)
}

/// Nothing is chosen in epoch 0 after its chosen stop-sign, and a replica is in epoch 1 only
/// once the stop-sign is chosen.
fn stop_sign_seals(s: &State) -> bool {
    let Some(stop) = stop_sign_slot(s) else {
        return s.actor_states.iter().all(|a| a.replica.epoch() == 0);
    };
    chosen(s)
        .range(stop.next()..)
        .all(|(_, vs)| vs.values().all(|epochs| !epochs.contains(&0)))
}

fn applied_in_order(s: &State) -> bool {
    let logs: Vec<&Vec<(Slot, Value)>> = s.actor_states.iter().map(|a| &a.handed_out).collect();
    let contiguous = logs.iter().all(|log| {
        log.iter()
            .enumerate()
            .all(|(i, (slot, _))| slot.0 == i as u64 + 1)
    });
    let prefixes = logs.iter().all(|a| {
        logs.iter()
            .all(|b| a.iter().zip(b.iter()).all(|(x, y)| x == y))
    });
    contiguous && prefixes
}

fn model(bugs: PlantedBugs) -> ReconfigModel {
    ActorModel::new((), ())
        .actors((1..=REPLICAS).map(|_| ReplicaActor { bugs }))
        .init_network(Network::new_unordered_nonduplicating([]))
        .within_boundary(|_, s| {
            s.actor_states.iter().filter(|a| a.proposed_command).count() <= COMMANDS_MAX
                && s.actor_states.iter().filter(|a| a.proposed_change).count() <= 1
        })
        .property(Expectation::Always, "agreement", |_, s| agreement(s))
        .property(Expectation::Always, "learned only chosen values", |_, s| {
            learned_only_chosen(s)
        })
        .property(
            Expectation::Always,
            "a stop-sign seals its epoch",
            |_, s| stop_sign_seals(s),
        )
        .property(Expectation::Always, "applied in order", |_, s| {
            applied_in_order(s)
        })
        .property(Expectation::Sometimes, "the change chosen", |_, s| {
            stop_sign_slot(s).is_some()
        })
        .property(
            Expectation::Sometimes,
            "a command chosen after the change",
            |_, s| {
                chosen(s).values().any(|vs| {
                    vs.iter()
                        .any(|(v, epochs)| !v.0.is_empty() && epochs.contains(&1))
                })
            },
        )
        .property(
            Expectation::Sometimes,
            "the removed replica is outside",
            |_, s| s.actor_states[2].replica.epoch() == 1 && !s.actor_states[2].replica.is_member(),
        )
        .property(
            Expectation::Sometimes,
            "the promoted learner votes",
            |_, s| s.actor_states[3].replica.is_voter(),
        )
}

fn checker(bugs: PlantedBugs) -> CheckerBuilder<ReconfigModel> {
    model(bugs).checker().threads(threads())
}

const ALWAYS: [&str; 4] = [
    "agreement",
    "learned only chosen values",
    "a stop-sign seals its epoch",
    "applied in order",
];
const SOMETIMES: [&str; 4] = [
    "the change chosen",
    "a command chosen after the change",
    "the removed replica is outside",
    "the promoted learner votes",
];

fn assert_no_counterexample(checker: &impl Checker<ReconfigModel>) {
    for property in ALWAYS {
        if let Some(path) = checker.discovery(property) {
            panic!("{property:?} violated: {:#?}", path.into_actions());
        }
    }
}

/// Every execution of at most this many steps is explored (a step is one delivery or timer).
/// A command chosen after the change takes 11 actions (stateright counts the initial state as
/// depth 1): campaign, Prepare, Promise, the change, its Accept and Accepted (chosen: the
/// leader enters the new epoch and runs phase 1 there), the Heartbeat that brings a voter into
/// the new epoch, its Prepare and Promise, the command, its Accept (the oracle counts accepts,
/// not their answers). One step more roughly triples the states.
const DEPTH_MAX: usize = 13;

#[test]
fn reconfiguration_safety_every_execution_up_to_the_depth_bound() {
    let checker = common::explore(
        &format!("model_reconfig every execution of {DEPTH_MAX} steps"),
        checker(PlantedBugs::none()).target_max_depth(DEPTH_MAX),
    );
    assert_no_counterexample(&checker);
    for property in SOMETIMES {
        assert!(
            checker.discovery(property).is_some(),
            "{property:?} never reached within {DEPTH_MAX} steps: the check would be vacuous"
        );
    }
}

#[cfg(feature = "planted-bugs")]
mod planted {
    use super::*;
    use paxos::Bug;

    fn finds(bug: Bug, property: &'static str) {
        let builder = checker(PlantedBugs::only(bug)).target_max_depth(DEPTH_MAX);
        common::expect_counterexample(&format!("model_reconfig {}", bug.name()), property, builder);
    }

    #[test]
    fn planted_learner_in_quorum_is_learning_an_unchosen_value() {
        finds(Bug::LearnerInQuorum, "learned only chosen values");
    }

    #[test]
    fn planted_reconfig_without_stop_chooses_after_the_stop_sign() {
        finds(Bug::ReconfigWithoutStop, "a stop-sign seals its epoch");
    }
}
