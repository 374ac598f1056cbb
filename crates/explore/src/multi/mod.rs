//! The Multi-Paxos world: the simulator's real `Replica`s, stepped and steered by hand, with a
//! plain sentence for every event (`words.rs`).
//!
//! This file drives the simulator on the learner's actions and runs the explorer's own checks
//! (a quorum's votes per slot, and, for hand-driven clients, the linearizability of what they
//! were answered); `words.rs` turns each event into the sentence the learner reads. Nothing of
//! the protocol is decided in either: leader leases, Cheap Paxos and reconfiguration are the
//! core's own, switched on through the simulator's configuration.

mod words;

pub use words::{describe_value, payload_label};

use crate::journal::{and_list, ballot_text, Journal};
use crate::model::{
    Action, MessageView, NodeView, OpView, SessionError, SlotView, Spec, View, ViolationView,
};
use lincheck::kv::KvModel;
use lincheck::{CheckOptions, Verdict};
use paxos::multi::{Role, Value};
use paxos::{Ballot, Configuration, NodeId, NodeSet, QuorumSpec, Slot};
use sim::leases::ClockModel;
use sim::trace::{TraceEvent, TraceRecord};
use sim::{Endpoint, Event, FaultProfile, InFlight, KvCommand, LinkMatrix, SimConfig, Simulation};
use std::collections::{BTreeMap, BTreeSet};
use words::{
    describe_input, describe_op, describe_output, generic, kind_of, role_name, sends_to, Names,
};

/// Search budget of the explorer's linearizability check per key: a hand-driven session's
/// history is a few dozen operations, far below it; beyond it the check says nothing.
const LINCHECK_STATES_MAX: u64 = 200_000;

/// Events skipped at most in one step while looking for one that shows (ticks that change
/// nothing); a bound so that a cluster with nothing to do cannot spin forever.
const QUIET_EVENTS_MAX: usize = 100_000;

/// How much later a duplicated message's copy arrives.
const DUPLICATE_DELAY_US: u64 = 3_000;

/// Clients a hand-driven session offers.
pub const CLIENTS: usize = 2;

/// A Multi-Paxos session's world.
pub struct MultiWorld {
    sim: Simulation,
    n: usize,
    journal: Journal,
    /// Trace records already turned into log entries and lines.
    trace_seen: usize,
    /// Simulator violations already reported.
    violations_seen: usize,
    /// Who voted for what: `(slot, ballot, value)` to a bit per node.
    votes: BTreeMap<(u64, Ballot, String), u64>,
    /// Votes already seen to form a quorum (reported once).
    quorums_seen: BTreeSet<(u64, Ballot, String)>,
    /// Every configuration some node has entered, by the first slot it decides: a slot's
    /// votes are counted against the voters of the configuration that decides it.
    configurations: BTreeMap<Slot, Configuration>,
    /// Leader leases: each node's clock drift in ppm (negative: slow), as the simulator drew
    /// it from the seed; empty without leases.
    drifts: Vec<i64>,
    /// Completed client operations already checked for linearizability.
    completed_checked: usize,
}

/// What a node looked like before an event, for the sentence about it.
#[derive(Clone, Debug)]
struct Snap {
    up: bool,
    role: Role,
    promised: Ballot,
    ballot: Ballot,
    leader: Option<NodeId>,
    chosen_through: Slot,
    voting: bool,
    entries: BTreeMap<u64, (Ballot, String, bool)>,
    /// Reads it served under its lease, and Prepares it held under a grant (leases.rs).
    leased_reads: u64,
    promises_held: u64,
}

/// The simulator's configuration for a session.
pub fn config(spec: &Spec, bugs: paxos::PlantedBugs) -> Result<SimConfig, SessionError> {
    let mut config = match &spec.faults {
        Some(name) => {
            let faults = parse_faults(name)?;
            // As `synod sim` runs a seed: nemesis and clients on their own.
            SimConfig::new(spec.seed, spec.nodes, faults)
        }
        None => {
            let mut c = SimConfig::new(spec.seed, spec.nodes, FaultProfile::None);
            c.nemesis = false;
            c.timing.fault_phase_us = u64::MAX;
            c.clients = CLIENTS;
            c.manual_clients = true;
            // Spares start outside the first configuration; the nemesis is off, so only
            // the learner's `reconfigure` actions change it.
            c.membership_changes = spec.spares > 0;
            c.spares = spec.spares;
            if let Some(drift_ppm) = spec.leases {
                c.with_leases(lease_clocks(drift_ppm));
            }
            c
        }
    };
    if let Some(rule) = &spec.quorums {
        config.quorum = crate::session::quorum_rule(spec, rule)?;
    }
    config.bugs = bugs;
    config.trace = true;
    Ok(config)
}

/// The clocks of a leases session: every one inside the bound (the "break it" for leases is
/// the planted `lease-without-drift-margin`, a lease that ignores the bound).
fn lease_clocks(drift_ppm: u32) -> ClockModel {
    ClockModel {
        drift_ppm,
        beyond_bound: false,
    }
}

/// Each node's clock drift in ppm in a leases session (empty without leases), drawn from the
/// seed alone exactly as the simulator draws it.
pub fn clock_drifts(spec: &Spec) -> Vec<i64> {
    match spec.leases {
        Some(drift_ppm) => lease_clocks(drift_ppm).draw(spec.seed, spec.nodes + spec.spares),
        None => Vec::new(),
    }
}

/// A fault profile by its command-line name.
pub fn parse_faults(name: &str) -> Result<FaultProfile, SessionError> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|_| SessionError::UnknownFaults(name.to_string()))
}

impl MultiWorld {
    /// A fresh cluster at step 0.
    pub fn new(spec: &Spec, bugs: paxos::PlantedBugs) -> Result<MultiWorld, SessionError> {
        let sim = Simulation::new(config(spec, bugs)?);
        let mut world = MultiWorld {
            sim,
            n: spec.nodes + spec.spares,
            journal: Journal::default(),
            trace_seen: 0,
            violations_seen: 0,
            votes: BTreeMap::new(),
            quorums_seen: BTreeSet::new(),
            configurations: BTreeMap::new(),
            drifts: clock_drifts(spec),
            completed_checked: 0,
        };
        world.absorb_trace(0);
        Ok(world)
    }

    /// The simulation (tests compare it with `synod sim`'s).
    pub fn sim(&self) -> &Simulation {
        &self.sim
    }

    /// Number of clients.
    pub fn clients(&self) -> usize {
        self.sim.clients().len()
    }

    /// Applies one unit of `action` as step number `step` (from 1).
    pub fn apply(&mut self, action: &Action, step: usize) {
        self.journal.note = None;
        match action {
            Action::Step { .. } => self.step_event(step),
            Action::Deliver { id } => {
                let Some(m) = self.sim.in_flight().find(|m| m.id == *id).cloned() else {
                    return self.nothing(step, format!("Message {id} is no longer in flight."));
                };
                let i = target_node(&m);
                let before = i.map(|i| self.snap(i));
                self.sim.deliver_now(*id);
                let records = self.new_records();
                let text = format!(
                    "By hand, out of turn: {}",
                    self.explain_delivery(&m, before.as_ref(), &records)
                );
                self.finish_unit(step, text);
            }
            Action::Drop { id } => {
                let Some(m) = self.sim.in_flight().find(|m| m.id == *id).cloned() else {
                    return self.nothing(step, format!("Message {id} is no longer in flight."));
                };
                self.sim.drop_message(*id);
                let text = format!(
                    "The network loses {} from {} to {}. Paxos never relies on one message: \
                     a timer or a retry sends what matters again.",
                    payload_label(&m.payload),
                    m.sender(),
                    m.receiver()
                );
                self.finish_unit(step, text);
            }
            Action::Duplicate { id } => {
                let Some(m) = self.sim.in_flight().find(|m| m.id == *id).cloned() else {
                    return self.nothing(step, format!("Message {id} is no longer in flight."));
                };
                self.sim.duplicate_message(*id, DUPLICATE_DELAY_US);
                let text = format!(
                    "The network duplicates {} from {} to {}: the receiver must cope with \
                     hearing it twice.",
                    payload_label(&m.payload),
                    m.sender(),
                    m.receiver()
                );
                self.finish_unit(step, text);
            }
            Action::Crash { node } => {
                let i = node - 1;
                if !self.sim.crash(i) {
                    return self.nothing(step, format!("n{node} is already down."));
                }
                let text = format!(
                    "n{node} loses power: everything in memory is gone. Only what reached its \
                     disk (its promise and accepted values) survives; writes still in progress \
                     may be lost, and the messages that waited for them never leave."
                );
                self.finish_unit(step, text);
            }
            Action::Restart { node } => {
                let i = node - 1;
                if !self.sim.restart(i) {
                    return self.nothing(step, format!("n{node} is already running."));
                }
                let s = self.snap(i);
                let text = format!(
                    "n{node} restarts from its disk: it recovers its promise ({}) and its \
                     accepted values ({} slots), so it keeps every promise it made before \
                     the crash. It rejoins as a follower.",
                    ballot_text(s.promised),
                    s.entries.len()
                );
                self.finish_unit(step, text);
            }
            Action::Cut { from, to } => {
                self.sim.cut(from - 1, to - 1);
                let text = format!(
                    "The link n{from} → n{to} is cut: messages that way are lost until it heals."
                );
                self.finish_unit(step, text);
            }
            Action::Heal { from, to } => {
                self.sim.heal(from - 1, to - 1);
                let text = format!("The link n{from} → n{to} works again.");
                self.finish_unit(step, text);
            }
            Action::Partition { groups } => {
                self.sim.set_links(partition_links(self.n, groups));
                let names: Vec<String> = groups
                    .iter()
                    .map(|g| {
                        let g: Vec<String> = g.iter().map(|n| format!("n{n}")).collect();
                        format!("{{{}}}", g.join(", "))
                    })
                    .collect();
                let text = format!(
                    "The network splits into {}: nodes talk only within their group. Only a \
                     group holding a majority can choose anything.",
                    and_list(&names)
                );
                self.finish_unit(step, text);
            }
            Action::HealAll => {
                self.sim.heal_all();
                self.finish_unit(step, "Every link works again.".to_string());
            }
            Action::Propose {
                value, client, key, ..
            } => {
                let c = client.unwrap_or(1) - 1;
                let key = key.clone().unwrap_or_else(|| "x".to_string());
                let command = KvCommand::Put {
                    key: key.clone(),
                    value: value.clone(),
                };
                if !self.sim.client_invoke(c, Some(command), &key) {
                    return self.nothing(
                        step,
                        format!("c{} still waits for its previous operation.", c + 1),
                    );
                }
                let target = self.sim.clients()[c].target();
                let text = format!(
                    "Client c{} asks {target} to write put {key}={value}. Only the leader \
                     proposes; any other node answers with who it thinks leads.",
                    c + 1
                );
                self.finish_unit(step, text);
            }
            Action::Read { client, key } => {
                let c = client - 1;
                if !self.sim.client_invoke(c, None, key) {
                    return self.nothing(
                        step,
                        format!("c{client} still waits for its previous operation."),
                    );
                }
                let target = self.sim.clients()[c].target();
                let text = format!(
                    "Client c{client} asks {target} to read {key}. A linearizable read must not \
                     return a stale value: the leader first confirms, with one heartbeat round \
                     answered by a quorum, that nobody has deposed it (read-index)."
                );
                self.finish_unit(step, text);
            }
            Action::Persist { node } => {
                let i = node - 1;
                let Some(sim_node) = self.sim.nodes().get(i) else {
                    return self.nothing(step, format!("there is no n{node}."));
                };
                if !sim_node.is_up() {
                    return self.nothing(step, format!("n{node} is down."));
                }
                let Some(ops) = sim_node
                    .disk_in_flight()
                    .next()
                    .map(|(_, ops)| ops.iter().map(describe_op).collect::<Vec<_>>())
                else {
                    return self.nothing(step, format!("n{node} has no disk write in progress."));
                };
                self.sim.persist_now(i);
                let records = self.new_records();
                let text = format!(
                    "By hand, out of turn: {}",
                    self.explain_persisted(i, ops, &records)
                );
                self.finish_unit(step, text);
            }
            Action::Reconfigure { voters, learners } => self.reconfigure(voters, learners, step),
            Action::Timer { node } => {
                let i = node - 1;
                let before = self.snap(i);
                if !before.up {
                    return self.nothing(step, format!("n{node} is down: it has no timer."));
                }
                self.sim.force_election(i);
                let after = self.snap(i);
                let put_off = before.role != Role::Leader && after.ballot == before.ballot;
                let text = if put_off && !self.drifts.is_empty() {
                    format!(
                        "n{node}'s election timer fires (by hand), but n{node} echoed its \
                         leader's heartbeat lately and so granted it a lease: it may not back \
                         anyone else, itself included, until that grant runs out on its own \
                         clock. Its campaign is put off until then."
                    )
                } else {
                    format!(
                    "n{node}'s election timer fires (by hand): it stops waiting for a leader and \
                     starts phase 1 with ballot {}, higher than every round it has seen. It \
                     first writes its own promise to disk; its Prepares leave once that is \
                     durable.",
                    ballot_text(after.ballot)
                    )
                };
                self.finish_unit(step, text);
            }
        }
    }

    /// Hands the change to the leader (the up node leading at the highest ballot).
    fn reconfigure(&mut self, voters: &[usize], learners: &[usize], step: usize) {
        let leader = (0..self.n)
            .filter(|i| {
                self.sim.nodes()[*i]
                    .replica()
                    .is_some_and(|r| r.role() == Role::Leader)
            })
            .max_by_key(|i| self.snap(*i).ballot);
        let Some(l) = leader else {
            return self.nothing(
                step,
                "no node leads now, and only a leader proposes a change: step until one does."
                    .to_string(),
            );
        };
        let ids = |ns: &[usize]| ns.iter().map(|n| NodeId(*n as u64)).collect::<Vec<_>>();
        let next =
            match Configuration::with_learners(ids(voters), ids(learners), QuorumSpec::Majority) {
                Ok(c) => c,
                Err(e) => {
                    return self.nothing(step, format!("that configuration is refused: {e}."))
                }
            };
        let described = describe_value(&Value::StopSign(next.clone()));
        match self.sim.propose_reconfiguration(l, next) {
            Ok(slot) => {
                let text = format!(
                    "n{} proposes the change as a stop-sign in slot {slot}: {described}. Once it \
                     and every slot before it are chosen, the new configuration decides every \
                     later slot, with its own phase 1. Until then the old one decides, and \
                     n{} proposes nothing after the stop-sign: two configurations never share \
                     a slot.",
                    l + 1,
                    l + 1
                );
                self.finish_unit(step, text);
            }
            Err(e) => self.nothing(step, format!("n{} refuses the change: {e}.", l + 1)),
        }
    }

    fn nothing(&mut self, step: usize, why: String) {
        let t = self.sim.now_us();
        self.journal.say(step, t, format!("Nothing happens: {why}"));
        self.journal.note = Some(why);
    }

    /// Processes events until one shows (produces a trace record), and explains it.
    fn step_event(&mut self, step: usize) {
        let before: Vec<Snap> = (0..self.n).map(|i| self.snap(i)).collect();
        for _ in 0..QUIET_EVENTS_MAX {
            let next = self.sim.pending_events().into_iter().next();
            let message = match &next {
                Some((_, Event::Deliver { id })) => {
                    self.sim.in_flight().find(|m| m.id == *id).cloned()
                }
                _ => None,
            };
            let disk: Option<Vec<String>> = match &next {
                Some((_, Event::PersistDone { node, .. })) => self.sim.nodes()[*node]
                    .disk_in_flight()
                    .next()
                    .map(|(_, ops)| ops.iter().map(describe_op).collect()),
                _ => None,
            };
            let seen = self.sim.trace().len();
            if !self.sim.step() {
                return self.nothing(step, "the simulation has nothing left to do.".to_string());
            }
            if self.sim.trace().len() == seen {
                continue;
            }
            let records = self.new_records();
            let text = match (next.map(|(_, e)| e), message) {
                (Some(Event::Deliver { .. }), Some(m)) => {
                    let b = target_node(&m).map(|i| &before[i]);
                    self.explain_delivery(&m, b, &records)
                }
                (Some(Event::PersistDone { node, .. }), _) => {
                    self.explain_persisted(node, disk.unwrap_or_default(), &records)
                }
                (Some(Event::Tick { node, .. }), _) => {
                    self.explain_tick(node, &before[node], &records)
                }
                (Some(Event::ClientTimer { client, .. }), _) => {
                    format!(
                        "Client c{} sends its request again{}: its last attempt timed out, or it \
                         was told who leads.",
                        client + 1,
                        sends_to(&records)
                    )
                }
                _ => generic(&records),
            };
            return self.finish_unit(step, text);
        }
        self.nothing(
            step,
            "nothing visible happened for a long while.".to_string(),
        )
    }

    /// The trace records not yet absorbed.
    fn new_records(&self) -> Vec<TraceRecord> {
        self.sim.trace()[self.trace_seen..].to_vec()
    }

    /// Logs `text` for this step, then turns the new trace records into message lines, looks
    /// for quorums that formed, and for checks that failed.
    fn finish_unit(&mut self, step: usize, text: String) {
        let t = self.sim.now_us();
        self.journal.say(step, t, text);
        self.absorb_trace(step);
        self.look_for_quorums(step);
        let violations = self.sim.violations();
        for v in &violations[self.violations_seen.min(violations.len())..] {
            self.journal.violations.push(ViolationView {
                check: v.check.name().to_string(),
                detail: v.to_string(),
                step,
            });
        }
        self.violations_seen = violations.len();
        self.check_linearizable(step);
    }

    /// The clients' history so far, checked by the real linearizability checker each time an
    /// operation completes (hand-driven sessions only: a replayed simulator run has its own
    /// check at the end). A stale read, a leased read served after another leader chose a
    /// newer write, shows here.
    fn check_linearizable(&mut self, step: usize) {
        if !self.sim.config().manual_clients {
            return;
        }
        let history = self.sim.history();
        let completed = history.iter().filter(|op| op.output.is_some()).count();
        if completed == self.completed_checked {
            return;
        }
        self.completed_checked = completed;
        let options = CheckOptions {
            max_states_per_partition: LINCHECK_STATES_MAX,
            ..CheckOptions::default()
        };
        let result = lincheck::check(&KvModel, history, &options);
        for p in result
            .partitions
            .iter()
            .filter(|p| p.verdict == Verdict::Illegal)
        {
            let detail = format!(
                "key {}: {}",
                p.key,
                p.explanation.clone().unwrap_or_default()
            );
            self.journal.violate("linearizability", detail, step);
        }
    }

    fn absorb_trace(&mut self, step: usize) {
        let records = self.new_records();
        self.trace_seen = self.sim.trace().len();
        for r in records {
            match &r.event {
                TraceEvent::Send {
                    id, from, to, kind, ..
                } => self.journal.sent(*id, from, to, kind, step),
                TraceEvent::Deliver { id } => self.journal.ended(*id, step, true),
                TraceEvent::Drop { id, .. } => self.journal.ended(*id, step, false),
                TraceEvent::Duplicate { id, copy, .. } => {
                    if let Some(l) = self.journal.lines.get(id).cloned() {
                        self.journal.sent(*copy, &l.from, &l.to, &l.kind, step);
                    }
                }
                _ => {}
            }
        }
    }

    /// A value is chosen once a quorum has voted for it at one ballot, whatever any node
    /// knows: that is the moment the learner should see, before the leader counts the votes.
    /// Votes are read from each node's durable state (a vote counts once it is on disk) and
    /// remembered, since a later ballot may overwrite an entry that already helped choose.
    /// The quorum is one of the voters of the configuration that decides the slot (the
    /// newest one some node entered whose first slot is at or before it), so a change that
    /// breaks the stop-sign rule shows as two values chosen in one slot.
    fn look_for_quorums(&mut self, step: usize) {
        for node in self.sim.nodes() {
            if let Some(r) = node.replica() {
                let m = r.membership();
                self.configurations
                    .entry(m.first_slot)
                    .or_insert_with(|| m.config.clone());
            }
        }
        for (i, node) in self.sim.nodes().iter().enumerate() {
            for (slot, e) in &node.durable().entries {
                let key = (slot.0, e.ballot, describe_value(&e.value));
                *self.votes.entry(key).or_insert(0) |= 1 << i;
            }
        }
        let mut fresh = Vec::new();
        for (key, voters) in &self.votes {
            if self.quorums_seen.contains(key) {
                continue;
            }
            let Some((_, config)) = self.configurations.range(..=Slot(key.0)).next_back() else {
                continue;
            };
            let mut set = NodeSet::EMPTY;
            for i in 0..self.n {
                if voters & (1 << i) != 0 {
                    if let Some(index) = config.index_of(NodeId(i as u64 + 1)) {
                        set.insert(index);
                    }
                }
            }
            if config.is_phase2_quorum(set) {
                fresh.push(key.clone());
            }
        }
        let t = self.sim.now_us();
        for key in fresh {
            self.quorums_seen.insert(key.clone());
            let (slot, ballot, value) = key;
            if let Some(text) = self.journal.quorum(slot, &value, &ballot.to_string(), step) {
                self.journal.say(step, t, text);
            }
        }
    }

    fn snap(&self, i: usize) -> Snap {
        let node = &self.sim.nodes()[i];
        match node.replica() {
            Some(r) => Snap {
                up: true,
                role: r.role(),
                promised: r.promised(),
                ballot: r.ballot(),
                leader: r.leader(),
                chosen_through: r.chosen_through(),
                voting: r.is_voting(),
                entries: r
                    .slots()
                    .filter_map(|s| r.entry(s).map(|(b, v, c)| (s.0, (b, describe_value(v), c))))
                    .collect(),
                leased_reads: r.counters().leased_reads,
                promises_held: r.counters().promises_held_by_lease,
            },
            None => Snap {
                up: false,
                role: Role::Follower,
                promised: node.durable().promised.unwrap_or(Ballot::ZERO),
                ballot: Ballot::ZERO,
                leader: None,
                chosen_through: Slot::ZERO,
                voting: false,
                entries: node
                    .durable()
                    .entries
                    .iter()
                    .map(|(s, e)| (s.0, (e.ballot, describe_value(&e.value), e.chosen)))
                    .collect(),
                leased_reads: 0,
                promises_held: 0,
            },
        }
    }

    /// The view of this step.
    pub fn view(&self, spec: &Spec, step: usize, total: usize) -> View {
        let nodes = (0..self.n).map(|i| self.node_view(i)).collect();
        let in_flight = self
            .sim
            .in_flight()
            .map(|m| MessageView {
                id: m.id,
                from: m.sender(),
                to: m.receiver(),
                kind: kind_of(&m.payload).to_string(),
                label: payload_label(&m.payload),
                deliver_at: m.deliver_at,
            })
            .collect();
        let cut = self
            .sim
            .links()
            .blocked_links()
            .into_iter()
            .map(|(a, b)| [format!("n{}", a + 1), format!("n{}", b + 1)])
            .collect();
        let ops = self
            .sim
            .history()
            .iter()
            .map(|op| OpView {
                client: format!("c{}", op.client),
                input: describe_input(&op.input),
                output: op.output.as_ref().map(describe_output),
            })
            .collect();
        let known_by = |slot: u64| {
            self.sim
                .nodes()
                .iter()
                .filter_map(|n| {
                    let r = n.replica()?;
                    let known = r.chosen_through().0 >= slot
                        || r.entry(Slot(slot)).is_some_and(|(_, _, c)| c);
                    known.then(|| format!("n{}", n.id().0))
                })
                .collect()
        };
        View {
            spec: spec.clone(),
            step,
            total,
            time_us: self.sim.now_us(),
            nodes,
            clients: (1..=self.sim.clients().len())
                .map(|c| format!("c{c}"))
                .collect(),
            in_flight,
            cut,
            chosen: self.journal.chosen_views(known_by),
            ops,
            log: self.journal.log_tail(),
            lines: self.journal.lines_tail(),
            violations: self.journal.violations.clone(),
            note: self.journal.note.clone(),
        }
    }

    /// Leader leases: the node's clock against the bound, the lease it holds, and what the
    /// leases did at it (nothing without leases).
    fn lease_notes(&self, i: usize, s: &Snap, notes: &mut Vec<String>) {
        let Some(drift) = self.drifts.get(i) else {
            return;
        };
        let percent = |ppm: i64| format!("{:.1} %", ppm.unsigned_abs() as f64 / 10_000.0);
        notes.push(match drift {
            0 => "clock: keeps true time".to_string(),
            d if *d < 0 => format!("clock: {} slow", percent(*d)),
            d => format!("clock: {} fast", percent(*d)),
        });
        if let Some(r) = self.sim.nodes()[i].replica() {
            if let Some(until) = r.lease_until_ticks() {
                notes.push(format!(
                    "lease: serves reads alone until tick {until} (now {})",
                    r.now_ticks()
                ));
            }
        }
        if s.leased_reads > 0 {
            notes.push(format!("reads served under its lease: {}", s.leased_reads));
        }
        if s.promises_held > 0 {
            notes.push(format!("Prepares held by a grant: {}", s.promises_held));
        }
    }

    fn node_view(&self, i: usize) -> NodeView {
        let s = self.snap(i);
        let node = &self.sim.nodes()[i];
        let mut notes = Vec::new();
        if let Some(why) = node.refused() {
            notes.push(format!("refused to start: {why}"));
        }
        // Where it stands in the configuration it has entered (only worth saying once a
        // session has spares, or a change has happened).
        let place = node.replica().map(|r| {
            let m = r.membership();
            let place = if m.config.is_voter(r.id()) {
                "voter"
            } else if m.config.is_learner(r.id()) {
                "learner"
            } else {
                "outside"
            };
            (place, m.epoch)
        });
        match place {
            Some(("learner", epoch)) => notes.push(format!(
                "learner in configuration {epoch}: receives the log, never votes"
            )),
            Some(("outside", 0)) => {
                notes.push("outside the configuration: a spare, not yet added".to_string())
            }
            Some(("outside", epoch)) => notes.push(format!(
                "outside configuration {epoch}: removed, it no longer votes"
            )),
            Some((_, epoch)) if epoch > 0 => notes.push(format!("voter in configuration {epoch}")),
            _ => {}
        }
        // Cheap Paxos: an auxiliary is sent to only while a main is silent.
        if node.replica().is_some_and(|r| r.is_auxiliary()) {
            notes.push("auxiliary: votes only while a main is silent".to_string());
        }
        if s.up && !s.voting && place.is_none_or(|(p, _)| p == "voter") {
            notes.push("rebuilding: does not vote".to_string());
        }
        self.lease_notes(i, &s, &mut notes);
        let pending = node.disk_in_flight().count();
        if pending > 0 {
            notes.push(format!("{pending} disk write(s) in progress"));
        }
        NodeView {
            name: format!("n{}", i + 1),
            up: s.up,
            role: if s.up {
                match place {
                    Some(("learner", _)) => "learner".to_string(),
                    Some(("outside", _)) => "outside".to_string(),
                    _ => role_name(s.role).to_string(),
                }
            } else {
                "down".to_string()
            },
            promised: ballot_text(s.promised),
            ballot: ballot_text(s.ballot),
            leader: s.leader.map(|l| format!("n{}", l.0)),
            chosen_through: s.chosen_through.0,
            slots: s
                .entries
                .iter()
                .map(|(slot, (b, v, c))| SlotView {
                    slot: *slot,
                    ballot: ballot_text(*b),
                    value: v.clone(),
                    known_chosen: *c || (s.up && s.chosen_through.0 >= *slot),
                })
                .collect(),
            notes,
        }
    }
}

fn target_node(m: &InFlight) -> Option<usize> {
    match m.to {
        Endpoint::Node(i) => Some(i),
        Endpoint::Client(_) => None,
    }
}

/// Links for `groups`: cut both ways between different groups; a node in no group is alone.
pub fn partition_links(n: usize, groups: &[Vec<usize>]) -> LinkMatrix {
    let group_of = |node: usize| groups.iter().position(|g| g.contains(&(node + 1)));
    let mut links = LinkMatrix::healed(n);
    for a in 0..n {
        for b in 0..n {
            let same = a == b || (group_of(a).is_some() && group_of(a) == group_of(b));
            if !same {
                links.set(a, b, true);
            }
        }
    }
    links
}
