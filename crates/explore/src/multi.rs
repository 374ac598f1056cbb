//! The Multi-Paxos world: the simulator's real `Replica`s, stepped and steered by hand, with a
//! plain sentence for every event.
//!
//! The explanations are read off the real run: the event about to be processed, the state of
//! the node it concerns before and after, and the trace records it produced. Nothing of the
//! protocol is decided here.

use crate::journal::{and_list, ballot_text, Journal};
use crate::model::{
    Action, MessageView, NodeView, OpView, SessionError, SlotView, Spec, View, ViolationView,
};
use lincheck::kv::{KvInput, KvOutput};
use paxos::multi::{Message, Role, SlotRecord, Value};
use paxos::{Ballot, Configuration, NodeId, NodeSet, QuorumSpec, Slot};
use sim::trace::{TraceEvent, TraceRecord};
use sim::{
    Endpoint, Event, FaultProfile, InFlight, KvCommand, LinkMatrix, Payload, ReplyBody,
    RequestBody, SimConfig, Simulation,
};
use std::collections::{BTreeMap, BTreeSet};

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
                let text = format!(
                    "n{node}'s election timer fires (by hand): it stops waiting for a leader and \
                     starts phase 1 with ballot {}, higher than every round it has seen. It \
                     first writes its own promise to disk; its Prepares leave once that is \
                     durable.",
                    ballot_text(after.ballot)
                );
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
            },
        }
    }

    fn explain_persisted(&self, i: usize, ops: Vec<String>, records: &[TraceRecord]) -> String {
        let what = if ops.is_empty() {
            "its write".to_string()
        } else {
            and_list(&ops)
        };
        let sends = sends_to(records);
        if sends.is_empty() {
            format!("n{}'s disk has made durable: {what}.", i + 1)
        } else {
            format!(
                "n{}'s disk has made durable: {what}. Only now may the messages that depend on it \
                 leave{sends}: a node never tells anyone about a promise or a vote it could \
                 forget in a crash.",
                i + 1
            )
        }
    }

    fn explain_tick(&self, i: usize, before: &Snap, records: &[TraceRecord]) -> String {
        let after = self.snap(i);
        let name = format!("n{}", i + 1);
        if before.role != after.role {
            return match after.role {
                Role::PreCandidate => format!(
                    "{name} has heard from no leader for its election timeout (randomized, so \
                     nodes rarely time out together). Before raising any ballot it asks the \
                     others for pre-votes{}: only if a quorum also misses a leader will it \
                     start phase 1.",
                    sends_to(records)
                ),
                Role::Candidate => format!(
                    "{name}'s timer fires again: it starts phase 1 with ballot {}{}.",
                    ballot_text(after.ballot),
                    sends_to(records)
                ),
                Role::Follower if before.role == Role::Leader => format!(
                    "{name} has not heard from a quorum within an election timeout, so it steps \
                     down as leader (check-quorum): a node that may be cut off must not go on \
                     answering as leader."
                ),
                _ => format!(
                    "{name}'s timer fires: {} → {}.",
                    role_name(before.role),
                    role_name(after.role)
                ),
            };
        }
        if after.role == Role::Leader {
            return format!(
                "{name} leads (ballot {}) and sends heartbeats{}: they tell followers it is \
                 alive, so they do not start an election, and carry what is chosen (through \
                 slot {}).",
                ballot_text(after.ballot),
                sends_to(records),
                after.chosen_through.0
            );
        }
        format!("{name}'s timer fires. {}", generic(records))
    }

    fn explain_delivery(
        &self,
        m: &InFlight,
        before: Option<&Snap>,
        records: &[TraceRecord],
    ) -> String {
        let dropped = records
            .iter()
            .any(|r| matches!(&r.event, TraceEvent::Drop { id, .. } if *id == m.id));
        let from = m.sender();
        let to = m.receiver();
        if dropped {
            return format!(
                "{} from {from} reaches {to}, but {to} is down or the link is cut: it is lost.",
                payload_label(&m.payload)
            );
        }
        let Endpoint::Node(i) = m.to else {
            return explain_reply(m, &to);
        };
        let after = self.snap(i);
        let sends = sends_to(records);
        let Some(b) = before else {
            return generic(records);
        };
        match &m.payload {
            Payload::Peer(msg) => explain_peer(msg, &from, &to, b, &after, &sends, records),
            Payload::Request(req) => match &req.body {
                RequestBody::Write(cmd) => {
                    let what = KvCommand::decode(&cmd.payload)
                        .map(|c| c.to_string())
                        .unwrap_or_default();
                    if after.role == Role::Leader {
                        format!(
                            "{to} leads, so it proposes c{}'s {what} in the next free slot: it \
                             records its own vote on disk and sends Accept to every other \
                             node{sends}.",
                            req.client + 1
                        )
                    } else {
                        let leader = after
                            .leader
                            .map(|l| format!("n{}", l.0))
                            .unwrap_or_else(|| "nobody yet".to_string());
                        format!(
                            "{to} does not lead, so it does not propose {what}; it tells c{} \
                             that the leader is {leader}, and the client will try there.",
                            req.client + 1
                        )
                    }
                }
                RequestBody::Read { key } => {
                    if after.role == Role::Leader {
                        format!(
                            "{to} leads: it notes the last slot that may hold a write (read \
                             index) and confirms its leadership with a fresh heartbeat round{sends} \
                             before serving get {key}. No log write is needed."
                        )
                    } else {
                        format!(
                            "{to} does not lead: it sends c{} to the leader to read {key}.",
                            req.client + 1
                        )
                    }
                }
            },
            _ => generic(records),
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

trait Names {
    fn sender(&self) -> String;
    fn receiver(&self) -> String;
}

impl Names for InFlight {
    fn sender(&self) -> String {
        endpoint_name(self.from)
    }
    fn receiver(&self) -> String {
        endpoint_name(self.to)
    }
}

fn endpoint_name(e: Endpoint) -> String {
    match e {
        Endpoint::Node(i) => format!("n{}", i + 1),
        Endpoint::Client(i) => format!("c{}", i + 1),
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

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Follower => "follower",
        Role::PreCandidate => "pre-candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

/// A slot's value as a learner reads it: `'put x=1'`, `no-op`.
pub fn describe_value(v: &Value) -> String {
    match v {
        Value::Noop => "no-op".to_string(),
        Value::StopSign(next) => {
            let ids = |ns: &[paxos::NodeId]| {
                ns.iter()
                    .map(|n| format!("n{}", n.0))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "stop-sign: next voters {}; learners {}",
                ids(next.members()),
                ids(next.learners())
            )
        }
        Value::Batch(commands) => {
            let parts: Vec<String> = commands
                .iter()
                .map(|c| match KvCommand::decode(&c.payload) {
                    Some(k) => k.to_string(),
                    None => format!("<{} bytes>", c.payload.len()),
                })
                .collect();
            format!("'{}'", parts.join("; "))
        }
    }
}

fn describe_op(op: &paxos::multi::PersistOp) -> String {
    use paxos::multi::PersistOp;
    match op {
        PersistOp::Promise { ballot } => format!("its promise of ballot {ballot}"),
        PersistOp::Accept {
            slot,
            ballot,
            value,
        } => {
            format!(
                "its vote for {} in slot {} at {ballot}",
                describe_value(value),
                slot.0
            )
        }
        PersistOp::Chosen { slot, .. } => format!("slot {} as chosen", slot.0),
        PersistOp::RebuildStarted => "that it is rebuilding".to_string(),
        PersistOp::VoteRegained { .. } => "that it votes again".to_string(),
        PersistOp::EnterConfiguration { membership } => format!(
            "that it entered configuration epoch {} (from slot {})",
            membership.epoch, membership.first_slot.0
        ),
    }
}

fn describe_records(records: &[SlotRecord]) -> String {
    let parts: Vec<String> = records
        .iter()
        .take(4)
        .map(|r| {
            format!(
                "{} at {} in slot {}",
                describe_value(&r.value),
                r.ballot,
                r.slot.0
            )
        })
        .collect();
    let more = records.len().saturating_sub(4);
    if more > 0 {
        format!("{} and {more} more", parts.join(", "))
    } else {
        and_list(&parts)
    }
}

fn kind_of(p: &Payload) -> &'static str {
    match p {
        Payload::Peer(m) => m.kind(),
        Payload::Request(_) => "request",
        Payload::Reply(_) => "reply",
        Payload::SnapshotFetch { .. } => "snapshot_fetch",
        Payload::SnapshotChunk(_) => "snapshot_chunk",
    }
}

/// A short label: kind and the fields that matter to a learner.
pub fn payload_label(p: &Payload) -> String {
    match p {
        Payload::Peer(m) => match m {
            Message::PreVote { round, .. } => format!("PreVote r{round}"),
            Message::PreVoteReply { round, granted } => {
                format!(
                    "PreVoteReply r{round} {}",
                    if *granted { "yes" } else { "no" }
                )
            }
            Message::Prepare {
                ballot, from_slot, ..
            } => {
                format!("Prepare {ballot} from slot {}", from_slot.0)
            }
            Message::Promise {
                ballot, records, ..
            } => {
                if records.is_empty() {
                    format!("Promise {ballot}, nothing accepted")
                } else {
                    format!("Promise {ballot}, accepted {}", describe_records(records))
                }
            }
            Message::Accept {
                ballot,
                slot,
                value,
                ..
            } => format!("Accept {ballot} slot {} {}", slot.0, describe_value(value)),
            Message::Accepted { ballot, slot } => format!("Accepted {ballot} slot {}", slot.0),
            Message::Nack { ballot, promised } => format!("Nack {ballot} (promised {promised})"),
            Message::Heartbeat {
                ballot,
                chosen_through,
                ..
            } => format!("Heartbeat {ballot} chosen≤{}", chosen_through.0),
            Message::HeartbeatAck { ballot, .. } => format!("HeartbeatAck {ballot}"),
            Message::CatchUp { from_slot } => format!("CatchUp from slot {}", from_slot.0),
            Message::Learn {
                records,
                chosen_through,
                ..
            } => format!("Learn {} slots, chosen≤{}", records.len(), chosen_through.0),
            Message::RoundQuery => "RoundQuery".to_string(),
            Message::RoundReport { round, log_end, .. } => {
                format!("RoundReport r{round} end {}", log_end.0)
            }
            Message::TakeLead { epoch } => format!("TakeLead epoch {epoch}"),
            Message::RaiseBallot { round, .. } => format!("RaiseBallot above r{round}"),
        },
        Payload::Request(r) => match &r.body {
            RequestBody::Write(c) => format!(
                "request {}",
                KvCommand::decode(&c.payload)
                    .map(|k| k.to_string())
                    .unwrap_or_default()
            ),
            RequestBody::Read { key } => format!("request get {key}"),
        },
        Payload::Reply(r) => match &r.body {
            ReplyBody::Done(out) => format!("reply {}", describe_output(out)),
            ReplyBody::NotLeader(Some(l)) => format!("reply: ask n{}", l.0),
            ReplyBody::NotLeader(None) => "reply: no leader known".to_string(),
            ReplyBody::Busy => "reply: busy".to_string(),
        },
        Payload::SnapshotFetch { .. } => "snapshot fetch".to_string(),
        Payload::SnapshotChunk(_) => "snapshot chunk".to_string(),
    }
}

fn describe_input(i: &KvInput) -> String {
    match i {
        KvInput::Get { key } => format!("get {key}"),
        KvInput::Put { key, value } => format!("put {key}={value}"),
        other => format!("{other:?}"),
    }
}

fn describe_output(o: &KvOutput) -> String {
    match o {
        KvOutput::Get { value: Some(v) } => format!("= {v}"),
        KvOutput::Get { value: None } => "= (absent)".to_string(),
        KvOutput::Put => "ok".to_string(),
        other => format!("{other:?}"),
    }
}

/// " (Prepare to n2 and n3)" from the records' sends, or "" if none.
fn sends_to(records: &[TraceRecord]) -> String {
    let mut by_kind: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in records {
        if let TraceEvent::Send { kind, to, .. } = &r.event {
            by_kind
                .entry(kind_title(kind))
                .or_default()
                .push(to.clone());
        }
    }
    if by_kind.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = by_kind
        .into_iter()
        .map(|(k, to)| format!("{k} to {}", and_list(&to)))
        .collect();
    format!(" ({})", parts.join("; "))
}

fn kind_title(kind: &str) -> String {
    kind.split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect(),
                None => String::new(),
            }
        })
        .collect()
}

fn generic(records: &[TraceRecord]) -> String {
    let mut parts = Vec::new();
    for r in records {
        match &r.event {
            TraceEvent::Send { .. } | TraceEvent::Deliver { .. } | TraceEvent::Persist { .. } => {}
            TraceEvent::Role {
                node, to, ballot, ..
            } => parts.push(format!(
                "{node} becomes {} at ballot {ballot}",
                role_name(*to)
            )),
            TraceEvent::Chosen { node, slot, .. } => {
                parts.push(format!("{node} applies chosen slot {slot}"))
            }
            TraceEvent::Complete { client, output, .. } => {
                parts.push(format!("{client} gets {}", describe_output(output)))
            }
            TraceEvent::Crash { node, .. } => parts.push(format!("{node} crashes")),
            TraceEvent::Restart { node, .. } => parts.push(format!("{node} restarts")),
            TraceEvent::Partition { cut, .. } => {
                parts.push(format!("the network partitions ({} links cut)", cut.len()))
            }
            TraceEvent::HealAll => parts.push("every link heals".to_string()),
            TraceEvent::Drop { id, reason } => {
                parts.push(format!("message {id} is lost ({reason:?})"))
            }
            other => {
                if let Ok(serde_json::Value::Object(o)) = serde_json::to_value(other) {
                    if let Some(ev) = o.get("ev").and_then(|e| e.as_str()) {
                        parts.push(ev.replace('_', " "));
                    }
                }
            }
        }
    }
    let sends = sends_to(records);
    if parts.is_empty() && sends.is_empty() {
        "An internal event with nothing to show.".to_string()
    } else {
        let mut s = parts.join("; ");
        if !sends.is_empty() {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(&format!("Sends{sends}"));
        }
        format!("{s}.")
    }
}

fn explain_reply(m: &InFlight, to: &str) -> String {
    match &m.payload {
        Payload::Reply(r) => match &r.body {
            ReplyBody::Done(out) => format!(
                "{to} receives its answer from {}: {}. The operation is complete.",
                m.sender(),
                describe_output(out)
            ),
            ReplyBody::NotLeader(Some(l)) => format!(
                "{to} learns from {} that n{} leads, and will send its request there.",
                m.sender(),
                l.0
            ),
            ReplyBody::NotLeader(None) => format!(
                "{to} learns that {} knows no leader; it will try again later.",
                m.sender()
            ),
            ReplyBody::Busy => format!("{to} is told {} is busy.", m.sender()),
        },
        p => format!("{to} receives {}.", payload_label(p)),
    }
}

#[allow(clippy::too_many_arguments)]
fn explain_peer(
    msg: &Message,
    from: &str,
    to: &str,
    b: &Snap,
    a: &Snap,
    sends: &str,
    records: &[TraceRecord],
) -> String {
    let became = |role: Role| b.role != role && a.role == role;
    match msg {
        Message::PreVote { round, .. } => {
            let granted = records.iter().any(|r| {
                matches!(&r.event, TraceEvent::Send { kind, msg, .. }
                    if kind == "pre_vote_reply" && msg.get("granted") == Some(&serde_json::json!(true)))
            });
            if granted {
                format!(
                    "{to} grants {from} a pre-vote for round {round}: it has not heard from a \
                     live leader lately either. A pre-vote promises nothing; it only lets \
                     {from} know an election could succeed."
                )
            } else {
                format!(
                    "{to} refuses {from} a pre-vote for round {round}: it heard from a leader \
                     recently (or its log is ahead), so an election now would only disrupt."
                )
            }
        }
        Message::PreVoteReply { granted, .. } => {
            if became(Role::Candidate) {
                format!(
                    "{to} now has pre-votes from a quorum, so it starts phase 1 with ballot {}: \
                     it writes its own promise to disk, and its Prepares leave once that is \
                     durable{sends}.",
                    ballot_text(a.ballot)
                )
            } else if *granted {
                format!("{to} counts {from}'s pre-vote; it needs a quorum before phase 1.")
            } else {
                format!("{to} notes {from} refused its pre-vote.")
            }
        }
        Message::Prepare {
            ballot, from_slot, ..
        } => {
            if a.promised == *ballot && b.promised < *ballot {
                let accepted: Vec<String> = b
                    .entries
                    .iter()
                    .filter(|(s, _)| **s >= from_slot.0)
                    .take(4)
                    .map(|(s, (bb, v, _))| format!("{v} at {bb} in slot {s}"))
                    .collect();
                let report = if accepted.is_empty() {
                    "that it has accepted nothing from there".to_string()
                } else {
                    format!(
                        "that it already accepted {}, so {from} must propose that again rather \
                         than a value of its own",
                        and_list(&accepted)
                    )
                };
                format!(
                    "{to} promises ballot {ballot} to {from} (its promise was {}): it will never \
                     again accept anything below {ballot}. Its Promise will report {report}. \
                     The promise goes to disk first; the Promise leaves once it is durable.",
                    ballot_text(b.promised)
                )
            } else if b.promised > *ballot {
                format!(
                    "{to} refuses ballot {ballot}: it already promised {}, which is higher. \
                     It tells {from} so{sends}, so that {from} can retry above it.",
                    ballot_text(b.promised)
                )
            } else if !b.voting {
                format!("{to} is rebuilding after losing its disk and does not promise anything.")
            } else {
                format!(
                    "{to} receives {from}'s Prepare {ballot} again and repeats its answer{sends}."
                )
            }
        }
        Message::Promise {
            ballot, records: r, ..
        } => {
            let reported = if r.is_empty() {
                format!("{from} reports nothing accepted")
            } else {
                format!(
                    "{from} reports it accepted {}, which {to} must re-propose",
                    describe_records(r)
                )
            };
            if became(Role::Leader) {
                format!(
                    "{to} now holds promises for ballot {ballot} from a quorum ({reported}): it \
                     leads. No smaller ballot can get a new value chosen any more. For every \
                     open slot it proposes the value accepted at the highest ballot a promise \
                     reported, a no-op where none was, and then new commands{sends}."
                )
            } else if a.role == Role::Leader && a.ballot == *ballot {
                format!(
                    "{to} already leads with ballot {ballot}; {from}'s promise adds nothing new."
                )
            } else if a.role == Role::Candidate && a.ballot == *ballot {
                format!("{to} counts {from}'s promise for {ballot}; {reported}. It needs a quorum.")
            } else {
                format!("{to} ignores {from}'s promise for {ballot}: it is no longer running that ballot.")
            }
        }
        Message::Accept {
            ballot,
            slot,
            value,
            ..
        } => {
            let v = describe_value(value);
            let now = a.entries.get(&slot.0);
            if now.is_some_and(|(bb, vv, _)| bb == ballot && *vv == v)
                && b.entries.get(&slot.0) != now
            {
                format!(
                    "{to} accepts {v} in slot {} at ballot {ballot} (it promised nothing higher). \
                     The vote goes to disk first; {to} answers Accepted once it is durable.",
                    slot.0
                )
            } else if b.promised > *ballot {
                format!(
                    "{to} refuses the Accept for slot {} at {ballot}: it promised {}, which is \
                     higher{sends}.",
                    slot.0,
                    ballot_text(b.promised)
                )
            } else {
                format!(
                    "{to} already holds this vote for slot {} and answers again{sends}.",
                    slot.0
                )
            }
        }
        Message::Accepted { ballot, slot } => {
            if a.chosen_through > b.chosen_through {
                format!(
                    "{to} now counts Accepted for slot {} at {ballot} from a quorum: it knows the \
                     slot is chosen and applies it (through slot {}); its next Accept tells the \
                     others, or a heartbeat sent at once when it has nothing to propose.",
                    slot.0, a.chosen_through.0
                )
            } else {
                format!("{to} counts {from}'s vote for slot {} at {ballot}.", slot.0)
            }
        }
        Message::Nack { ballot, promised } => format!(
            "{to} learns {from} promised {promised}, above its ballot {ballot}: it gives up that \
             ballot{}.",
            if b.role != a.role {
                format!(" and becomes {}", role_name(a.role))
            } else {
                String::new()
            }
        ),
        Message::Heartbeat {
            ballot,
            chosen_through,
            ..
        } => {
            let learned = if a.chosen_through > b.chosen_through {
                format!(
                    " It learns slots through {} are chosen.",
                    a.chosen_through.0
                )
            } else {
                String::new()
            };
            let follow = if b.leader != a.leader {
                format!(" It now follows {from}.")
            } else {
                String::new()
            };
            format!(
                "{to} hears from leader {from} (ballot {ballot}, chosen through {}) and resets \
                 its election timer.{follow}{learned}",
                chosen_through.0
            )
        }
        Message::HeartbeatAck { ballot, .. } => format!(
            "{to} hears that {from} still follows ballot {ballot}: a quorum of these confirms \
             {to} still leads (for check-quorum and read-index)."
        ),
        Message::CatchUp { from_slot } => format!(
            "{to} is asked by {from}, who is behind, for chosen slots from {}{sends}.",
            from_slot.0
        ),
        Message::Learn { records: r, .. } => format!(
            "{to} learns {} chosen slot(s) from {from} and applies them in order.",
            r.len()
        ),
        Message::RoundQuery => {
            format!("{to} tells {from}, which lost its disk, the highest round it has seen{sends}.")
        }
        Message::RoundReport { round, log_end, .. } => format!(
            "{to} hears {from} has seen round {round} and holds slots through {}; it will not \
             vote at or below that round, nor before it holds the chosen log through the \
             leader's log end.",
            log_end.0
        ),
        Message::TakeLead { epoch } => format!(
            "{to} is asked by {from}, a leader leaving the configuration, to lead epoch {epoch}: \
             it runs phase 1 at once."
        ),
        Message::RaiseBallot { round, .. } => format!(
            "{to}, the leader, is asked by {from}, which lost its disk, to run phase 1 again above \
             round {round}: leases hold back every other candidate, not the leader itself."
        ),
    }
}
