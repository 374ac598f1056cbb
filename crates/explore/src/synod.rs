//! The single-decree world: real [`SynodNode`]s from `crates/paxos`, in a small deterministic
//! harness of its own (virtual time, one seeded generator, a network, disks with latency).
//!
//! The harness is a driver, like the simulator's for Multi-Paxos: it carries out each node's
//! `ready()` in the core's order (persist, then send, then learn) and reports writes durable
//! with `persisted`. It decides nothing of the protocol.

use crate::journal::{and_list, ballot_text, Journal};
use crate::model::{Action, MessageView, NodeView, OpView, SlotView, Spec, View};
use crate::net::{Ev, Net, TICK_US};
use paxos::synod::{
    ProposerPhase, SynodDurable, SynodMessage, SynodNode, SynodOptions, SynodPersist,
};
use paxos::{Ballot, Configuration, NodeId, PersistSeq, PlantedBugs};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, VecDeque};

type Msg = SynodMessage<String>;

/// Disk write latency: base plus jitter.
const DISK_BASE_US: u64 = 500;
const DISK_JITTER_US: u64 = 1_000;
/// Events skipped at most in one step while looking for one that shows.
const QUIET_EVENTS_MAX: usize = 10_000;

type Flying = crate::net::Flying<Msg>;

struct Member {
    node: Option<SynodNode<String>>,
    durable: SynodDurable<String>,
    /// Batches handed to the disk, oldest first, with their completion time.
    disk: VecDeque<(PersistSeq, Vec<SynodPersist<String>>, u64)>,
    incarnation: u64,
    rng: ChaCha8Rng,
    learned: Option<String>,
}

/// A single-decree session's world.
pub struct SynodWorld {
    n: usize,
    acceptors: Configuration,
    bugs: PlantedBugs,
    net: Net<Msg>,
    members: Vec<Member>,
    journal: Journal,
    proposals: Vec<OpView>,
    /// Durable votes ever cast: `(ballot, value)` to a bit per acceptor.
    votes: BTreeMap<(Ballot, String), u64>,
    /// Sentences about what happened inside the current unit, beyond the event itself.
    extra: Vec<String>,
}

impl SynodWorld {
    /// A fresh cluster at step 0: nobody proposes until a learner does.
    pub fn new(spec: &Spec, bugs: PlantedBugs) -> SynodWorld {
        let n = spec.nodes;
        let acceptors = Configuration::majority_of(n as u64).expect("3 to 7 members");
        let mut net = Net::new(spec.seed);
        let members = (0..n)
            .map(|i| Member {
                node: Some(SynodNode::recover(
                    NodeId(i as u64 + 1),
                    acceptors.clone(),
                    SynodOptions::default(),
                    SynodDurable::default(),
                    bugs,
                )),
                durable: SynodDurable::default(),
                disk: VecDeque::new(),
                incarnation: 0,
                rng: ChaCha8Rng::seed_from_u64(net.rng.next_u64()),
                learned: None,
            })
            .collect();
        // Ticks start at random phases so nodes are not in lockstep.
        net.start_ticks(n);
        SynodWorld {
            n,
            acceptors,
            bugs,
            net,
            members,
            journal: Journal::default(),
            proposals: Vec::new(),
            votes: BTreeMap::new(),
            extra: Vec::new(),
        }
    }

    fn send(&mut self, from: usize, to: usize, msg: Msg, step: usize) {
        let k = kind(&msg);
        self.net
            .send(&mut self.journal, from, &name(from), to, msg, k, step);
    }

    /// Carries out node `i`'s outputs in the core's order; returns whether there were any.
    fn drive(&mut self, i: usize, step: usize) -> bool {
        let mut any = false;
        loop {
            let Some(node) = self.members[i].node.as_mut() else {
                return any;
            };
            let ready = node.ready();
            if ready.persist.is_none() && ready.send.is_empty() && ready.learned.is_none() {
                return any;
            }
            any = true;
            if let Some(batch) = ready.persist {
                let latency = self.net.draw(DISK_BASE_US, DISK_JITTER_US);
                let member = &mut self.members[i];
                // A disk completes writes in order.
                let after = member.disk.back().map_or(0, |(_, _, at)| *at);
                let done_at = (self.net.now + latency).max(after + 1);
                member.disk.push_back((batch.seq, batch.ops, done_at));
                let incarnation = member.incarnation;
                self.net.schedule(
                    done_at,
                    Ev::PersistDone {
                        node: i,
                        incarnation,
                    },
                );
            }
            for out in ready.send {
                let to = (out.to.0 as usize).wrapping_sub(1);
                if to < self.n {
                    self.send(i, to, out.msg, step);
                }
            }
            if let Some(v) = ready.learned {
                self.extra
                    .push(format!("n{} now knows '{v}' is chosen.", i + 1));
                self.members[i].learned = Some(v);
            }
        }
    }

    /// Applies one unit of `action` as step `step`.
    pub fn apply(&mut self, action: &Action, step: usize) {
        self.journal.note = None;
        self.extra.clear();
        let shared = self
            .net
            .network_action(action, self.n, &mut self.journal, step, |m| {
                (label(&m.msg), kind(&m.msg), name(m.from))
            });
        match shared {
            Some(Ok(said)) => {
                // What the network's sentence leaves out, for single-decree Paxos.
                let why = match action {
                    Action::Drop { .. } => {
                        " Paxos never relies on one message: the proposer's retry timer will try \
                         again."
                    }
                    Action::Partition { .. } => {
                        " Only a group with a majority of acceptors can choose."
                    }
                    _ => "",
                };
                return self.finish(step, format!("{said}{why}"));
            }
            Some(Err(why)) => return self.nothing(step, why),
            None => {}
        }
        let text = match action {
            Action::Step { .. } => match self.step_event(step) {
                Some(t) => t,
                None => return self.nothing(step, "nothing is left to happen.".to_string()),
            },
            Action::Deliver { id } => {
                let Some(m) = self.net.in_flight.remove(id) else {
                    return self.nothing(step, format!("Message {id} is no longer in flight."));
                };
                format!("By hand, out of turn: {}", self.deliver(m, step))
            }
            Action::Crash { node } => {
                let i = node - 1;
                let m = &mut self.members[i];
                if m.node.is_none() {
                    return self.nothing(step, format!("n{node} is already down."));
                }
                m.node = None;
                let lost = m.disk.len();
                m.disk.clear();
                m.incarnation += 1;
                m.learned = None;
                format!(
                    "n{node} loses power: its memory is gone, {lost} write(s) in progress are \
                     lost, and what waited for them never leaves. Its disk keeps its promise \
                     ({}) and its vote ({}).",
                    ballot_text(m.durable.promised),
                    vote_text(&m.durable.accepted)
                )
            }
            Action::Restart { node } => {
                let i = node - 1;
                if self.members[i].node.is_some() {
                    return self.nothing(step, format!("n{node} is already running."));
                }
                let m = &mut self.members[i];
                m.node = Some(SynodNode::recover(
                    NodeId(*node as u64),
                    self.acceptors.clone(),
                    SynodOptions::default(),
                    m.durable.clone(),
                    self.bugs,
                ));
                let incarnation = m.incarnation;
                let text = format!(
                    "n{node} restarts from its disk: promise {}, vote {}. It keeps every promise \
                     it made before the crash; without that, Paxos would not be safe.",
                    ballot_text(m.durable.promised),
                    vote_text(&m.durable.accepted)
                );
                self.net.schedule(
                    self.net.now + TICK_US,
                    Ev::Tick {
                        node: i,
                        incarnation,
                    },
                );
                text
            }
            Action::Propose { value, node, .. } => {
                let n = node.unwrap_or(1);
                let Some(p) = self.members[n - 1].node.as_mut() else {
                    return self.nothing(step, format!("n{n} is down."));
                };
                if p.chosen().is_some() {
                    return self.nothing(step, format!("n{n} already knows a value is chosen."));
                }
                p.propose(value.clone());
                let b = p.ballot();
                self.proposals.push(OpView {
                    client: format!("n{n}"),
                    input: format!("propose '{value}'"),
                    output: None,
                });
                self.drive(n - 1, step);
                format!(
                    "n{n} proposes '{value}'. First phase 1: it picks ballot {b}, above every \
                     ballot it has seen, writes it to disk (it must never reuse a ballot), then \
                     asks every acceptor to promise."
                )
            }
            Action::Read { .. } => {
                return self.nothing(step, "single-decree Paxos has no reads.".to_string())
            }
            Action::Reconfigure { .. } => {
                return self.nothing(
                    step,
                    "single-decree Paxos has no configuration to change.".to_string(),
                )
            }
            Action::Persist { node } => {
                let i = node - 1;
                if self.members[i].node.is_none() {
                    return self.nothing(step, format!("n{node} is down."));
                }
                if self.members[i].disk.is_empty() {
                    return self.nothing(step, format!("n{node} has no disk write in progress."));
                }
                self.complete_write(i, step, "By hand, out of turn: ")
            }
            Action::Timer { node } => {
                let i = node - 1;
                let Some(p) = self.members[i].node.as_mut() else {
                    return self.nothing(step, format!("n{node} is down."));
                };
                let before = p.ballot();
                p.retry();
                let after = p.ballot();
                if before == after {
                    return self.nothing(
                        step,
                        format!("n{node} has nothing to retry (no proposal, or already chosen)."),
                    );
                }
                self.drive(i, step);
                format!(
                    "n{node}'s retry timer fires (by hand): it abandons ballot {} and starts \
                     phase 1 again with {after}.",
                    ballot_text(before)
                )
            }
            // Handled by the network above.
            Action::Drop { .. }
            | Action::Duplicate { .. }
            | Action::Cut { .. }
            | Action::Heal { .. }
            | Action::Partition { .. }
            | Action::HealAll => return,
        };
        self.finish(step, text);
    }

    fn nothing(&mut self, step: usize, why: String) {
        self.journal
            .say(step, self.net.now, format!("Nothing happens: {why}"));
        self.journal.note = Some(why);
    }

    fn finish(&mut self, step: usize, text: String) {
        let mut text = text;
        for e in self.extra.drain(..) {
            text.push(' ');
            text.push_str(&e);
        }
        self.journal.say(step, self.net.now, text);
        self.look_for_quorum(step);
        self.check_learned(step);
        for op in &mut self.proposals {
            if op.output.is_none() {
                let n: usize = op.client[1..].parse().unwrap_or(0);
                if let Some(v) = n
                    .checked_sub(1)
                    .and_then(|i| self.members.get(i))
                    .and_then(|m| m.learned.clone())
                {
                    op.output = Some(format!("chosen: '{v}'"));
                }
            }
        }
    }

    fn look_for_quorum(&mut self, step: usize) {
        for (i, m) in self.members.iter().enumerate() {
            if let Some((b, v)) = &m.durable.accepted {
                *self.votes.entry((*b, v.clone())).or_insert(0) |= 1 << i;
            }
        }
        let quorum = self.n / 2 + 1;
        let formed: Vec<(Ballot, String)> = self
            .votes
            .iter()
            .filter(|(_, bits)| bits.count_ones() as usize >= quorum)
            .map(|(k, _)| k.clone())
            .collect();
        for (b, v) in formed {
            if let Some(text) = self
                .journal
                .quorum(1, &format!("'{v}'"), &b.to_string(), step)
            {
                self.journal.say(step, self.net.now, text);
            }
        }
    }

    /// Agreement among learners, and with the value a quorum chose.
    fn check_learned(&mut self, step: usize) {
        let learned: Vec<(usize, String)> = self
            .members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.learned.as_ref().map(|v| (i, format!("'{v}'"))))
            .collect();
        self.journal.check_learned(step, learned);
    }

    /// Processes events until one shows; returns its sentence.
    fn step_event(&mut self, step: usize) -> Option<String> {
        // With nothing in the network or on a disk and no proposer waiting to retry, only
        // ticks are left: say so rather than burn virtual time.
        let waiting = self.members.iter().any(|m| {
            m.node
                .as_ref()
                .is_some_and(|p| p.chosen().is_none() && p.ballot().is_real())
        });
        if self.net.in_flight.is_empty()
            && self.members.iter().all(|m| m.disk.is_empty())
            && !waiting
        {
            return None;
        }
        for _ in 0..QUIET_EVENTS_MAX {
            let ev = self.net.pop()?;
            match ev {
                Ev::Tick { node, incarnation } => {
                    if self.members[node].incarnation != incarnation
                        || self.members[node].node.is_none()
                    {
                        continue;
                    }
                    self.net
                        .schedule(self.net.now + TICK_US, Ev::Tick { node, incarnation });
                    let member = &mut self.members[node];
                    let Some(p) = member.node.as_mut() else {
                        continue;
                    };
                    let before = p.ballot();
                    p.tick(&mut member.rng);
                    let after = p.ballot();
                    if self.drive(node, step) || before != after {
                        return Some(format!(
                            "n{}'s retry timer fires: no value was chosen in time (a lost \
                             message, a crash, or a competing proposer), so it tries again with \
                             ballot {after}. The timeout has a random part, so two dueling \
                             proposers soon stop colliding.",
                            node + 1
                        ));
                    }
                }
                Ev::Deliver { id } => {
                    let Some(m) = self.net.in_flight.remove(&id) else {
                        continue;
                    };
                    return Some(self.deliver(m, step));
                }
                Ev::PersistDone { node, incarnation } => {
                    if self.members[node].incarnation != incarnation {
                        continue;
                    }
                    // A write finished by hand already is gone; the next one has its own event.
                    if self.members[node]
                        .disk
                        .front()
                        .is_none_or(|(_, _, done_at)| *done_at > self.net.now)
                    {
                        continue;
                    }
                    return Some(self.complete_write(node, step, ""));
                }
            }
        }
        None
    }

    /// Node `node`'s oldest disk write completes: its ops become durable, the core is told,
    /// and what waited for them leaves. `how` prefixes the sentence.
    fn complete_write(&mut self, node: usize, step: usize, how: &str) -> String {
        let Some((seq, ops, _)) = self.members[node].disk.pop_front() else {
            return format!("n{} has no disk write in progress.", node + 1);
        };
        let what: Vec<String> = ops.iter().map(persist_text).collect();
        let m = &mut self.members[node];
        for op in &ops {
            m.durable.apply(op);
        }
        if let Some(p) = m.node.as_mut() {
            p.persisted(seq);
        }
        let sent_before = self.net.next_id;
        self.drive(node, step);
        let sends = sends_text(&self.journal, sent_before);
        format!(
            "{how}n{}'s disk has made durable {}.{}",
            node + 1,
            and_list(&what),
            if sends.is_empty() {
                String::new()
            } else {
                format!(
                    " Only now may what depends on it leave: {sends}. A node never \
                     tells anyone of a promise or vote it could forget in a crash."
                )
            }
        )
    }

    fn deliver(&mut self, m: Flying, step: usize) -> String {
        let (from, to) = (name(m.from), name(m.to));
        let lbl = label(&m.msg);
        if self.net.cut.contains(&(m.from, m.to)) || self.members[m.to].node.is_none() {
            self.journal.ended(m.id, step, false);
            return format!(
                "{lbl} from {from} reaches {to}, but {to} is down or the link is cut: it is lost."
            );
        }
        self.journal.ended(m.id, step, true);
        let i = m.to;
        let before = self.members[i].node.clone();
        let sent_before = self.net.next_id;
        if let Some(p) = self.members[i].node.as_mut() {
            p.step(NodeId(m.from as u64 + 1), m.msg.clone());
        }
        self.drive(i, step);
        let sends = sends_text(&self.journal, sent_before);
        let (Some(b), Some(a)) = (before, self.members[i].node.as_ref()) else {
            return format!("{to} receives {lbl}.");
        };
        let held = "it goes to disk first, and the answer leaves once it is durable";
        match &m.msg {
            SynodMessage::Prepare { ballot } => {
                if a.promised() == *ballot && b.promised() < *ballot {
                    let report = match b.accepted() {
                        None => "it has accepted nothing, so the proposer is free to propose its own value".to_string(),
                        Some((ab, v)) => format!(
                            "it already accepted '{v}' at {ab}, so the proposer must now propose '{v}'"
                        ),
                    };
                    format!(
                        "{to} promises ballot {ballot} to {from} (its promise was {}): it will \
                         never accept below {ballot}. Its Promise reports that {report}. The \
                         promise is a state change: {held}.",
                        ballot_text(b.promised())
                    )
                } else if b.promised() > *ballot {
                    format!(
                        "{to} refuses ballot {ballot}: it promised {}, which is higher, and says so{}.",
                        b.promised(),
                        paren(&sends)
                    )
                } else {
                    format!(
                        "{to} has promised {ballot} already and repeats its Promise{}.",
                        paren(&sends)
                    )
                }
            }
            SynodMessage::Promise { ballot, accepted } => {
                let reported = match accepted {
                    None => format!("{from} reports nothing accepted"),
                    Some((ab, v)) => format!("{from} reports it accepted '{v}' at {ab}"),
                };
                match (b.phase(), a.phase()) {
                    (ProposerPhase::Preparing { .. }, ProposerPhase::Accepting { value, .. }) => {
                        let why = if self.proposal_of(i).as_deref() == Some(value.as_str()) {
                            "no promise reported an accepted value, so it proposes its own"
                                .to_string()
                        } else {
                            format!(
                                "'{value}' is the value accepted at the highest ballot among \
                                 the promises, and it may already be chosen, so {to} must \
                                 propose it instead of its own"
                            )
                        };
                        format!(
                            "{to} now has promises for {ballot} from a quorum ({reported}). \
                             Phase 2: {why}. It asks every acceptor to accept '{value}' at \
                             {ballot}{}.",
                            paren(&sends)
                        )
                    }
                    (
                        ProposerPhase::Preparing { .. },
                        ProposerPhase::Preparing { promises, .. },
                    ) => {
                        format!(
                            "{to} counts {from}'s promise for {ballot} ({reported}): {} of {} \
                             needed.",
                            promises.len(),
                            self.acceptors.phase1_size()
                        )
                    }
                    _ => format!(
                        "{to} ignores {from}'s promise for {ballot}: it is not collecting \
                         promises for that ballot any more."
                    ),
                }
            }
            SynodMessage::Accept { ballot, value } => {
                if a.accepted() == Some(&(*ballot, value.clone())) && b.accepted() != a.accepted() {
                    format!(
                        "{to} accepts '{value}' at ballot {ballot} (it promised nothing higher): \
                         {held}."
                    )
                } else if b.promised() > *ballot {
                    format!(
                        "{to} refuses to accept '{value}' at {ballot}: it promised {}{}.",
                        b.promised(),
                        paren(&sends)
                    )
                } else {
                    format!(
                        "{to} already accepted this and answers again{}.",
                        paren(&sends)
                    )
                }
            }
            SynodMessage::Accepted { ballot } => match (b.chosen(), a.chosen()) {
                (None, Some(v)) => format!(
                    "{to} now has Accepted at {ballot} from a quorum: it knows '{v}' is chosen \
                     and tells the others{}.",
                    paren(&sends)
                ),
                _ => match a.phase() {
                    ProposerPhase::Accepting { accepted, .. } => format!(
                        "{to} counts {from}'s Accepted at {ballot}: {} of {} needed.",
                        accepted.len(),
                        self.acceptors.phase2_size()
                    ),
                    _ => format!("{to} has no use for {from}'s Accepted at {ballot} any more."),
                },
            },
            SynodMessage::Nack { ballot, promised } => {
                if b.phase() != a.phase() {
                    format!(
                        "{to} learns {from} promised {promised}, above its ballot {ballot}: it \
                         gives up this attempt and will retry above {promised} when its \
                         randomized retry timer fires."
                    )
                } else {
                    format!(
                        "{to} notes {from} promised {promised} (its own attempt is over already)."
                    )
                }
            }
            SynodMessage::Chosen { value } => {
                format!("{to} learns from {from} that '{value}' is chosen.")
            }
        }
    }

    fn proposal_of(&self, i: usize) -> Option<String> {
        let input = self
            .proposals
            .iter()
            .rev()
            .find(|p| p.client == name(i))?
            .input
            .clone();
        Some(
            input
                .trim_start_matches("propose '")
                .trim_end_matches('\'')
                .to_string(),
        )
    }

    /// The view of this step.
    pub fn view(&self, spec: &Spec, step: usize, total: usize) -> View {
        let nodes = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let (role, ballot, mut notes) = match &m.node {
                    None => ("down".to_string(), "none".to_string(), Vec::new()),
                    Some(p) => {
                        let role = match p.phase() {
                            ProposerPhase::Idle => "acceptor",
                            ProposerPhase::Preparing { .. } => "proposer: phase 1",
                            ProposerPhase::Accepting { .. } => "proposer: phase 2",
                        };
                        (role.to_string(), ballot_text(p.ballot()), Vec::new())
                    }
                };
                if !m.disk.is_empty() {
                    notes.push(format!("{} disk write(s) in progress", m.disk.len()));
                }
                let (promised, accepted) = match &m.node {
                    Some(p) => (p.promised(), p.accepted().cloned()),
                    None => (m.durable.promised, m.durable.accepted.clone()),
                };
                NodeView {
                    name: name(i),
                    up: m.node.is_some(),
                    role,
                    promised: ballot_text(promised),
                    ballot,
                    leader: None,
                    chosen_through: u64::from(m.learned.is_some()),
                    slots: accepted
                        .map(|(b, v)| SlotView {
                            slot: 1,
                            ballot: b.to_string(),
                            value: format!("'{v}'"),
                            known_chosen: m.learned.is_some(),
                        })
                        .into_iter()
                        .collect(),
                    notes,
                }
            })
            .collect();
        let in_flight = self
            .net
            .in_flight
            .values()
            .map(|m| MessageView {
                id: m.id,
                from: name(m.from),
                to: name(m.to),
                kind: kind(&m.msg).to_string(),
                label: label(&m.msg),
                deliver_at: m.deliver_at,
            })
            .collect();
        let known_by = |_slot: u64| {
            self.members
                .iter()
                .enumerate()
                .filter(|(_, m)| m.learned.is_some())
                .map(|(i, _)| name(i))
                .collect()
        };
        View {
            spec: spec.clone(),
            step,
            total,
            time_us: self.net.now,
            nodes,
            clients: Vec::new(),
            in_flight,
            cut: self
                .net
                .cut
                .iter()
                .map(|(a, b)| [name(*a), name(*b)])
                .collect(),
            chosen: self.journal.chosen_views(known_by),
            ops: self.proposals.clone(),
            log: self.journal.log_tail(),
            lines: self.journal.lines_tail(),
            violations: self.journal.violations.clone(),
            note: self.journal.note.clone(),
        }
    }
}

pub(crate) fn name(i: usize) -> String {
    format!("n{}", i + 1)
}

pub(crate) fn paren(s: &str) -> String {
    if s.is_empty() {
        String::new()
    } else {
        format!(" ({s})")
    }
}

fn vote_text(v: &Option<(Ballot, String)>) -> String {
    match v {
        None => "none".to_string(),
        Some((b, v)) => format!("'{v}' at {b}"),
    }
}

fn kind(m: &Msg) -> &'static str {
    match m {
        SynodMessage::Prepare { .. } => "prepare",
        SynodMessage::Promise { .. } => "promise",
        SynodMessage::Accept { .. } => "accept",
        SynodMessage::Accepted { .. } => "accepted",
        SynodMessage::Nack { .. } => "nack",
        SynodMessage::Chosen { .. } => "chosen",
    }
}

fn label(m: &Msg) -> String {
    match m {
        SynodMessage::Prepare { ballot } => format!("Prepare {ballot}"),
        SynodMessage::Promise { ballot, accepted } => match accepted {
            None => format!("Promise {ballot}, nothing accepted"),
            Some((b, v)) => format!("Promise {ballot}, accepted '{v}' at {b}"),
        },
        SynodMessage::Accept { ballot, value } => format!("Accept {ballot} '{value}'"),
        SynodMessage::Accepted { ballot } => format!("Accepted {ballot}"),
        SynodMessage::Nack { ballot, promised } => format!("Nack {ballot} (promised {promised})"),
        SynodMessage::Chosen { value } => format!("Chosen '{value}'"),
    }
}

fn persist_text(op: &SynodPersist<String>) -> String {
    match op {
        SynodPersist::Proposed(b) => format!("the ballot {b} it proposes with"),
        SynodPersist::Promised(b) => format!("its promise of {b}"),
        SynodPersist::Accepted(b, v) => format!("its vote for '{v}' at {b}"),
    }
}

/// "Promise to n1; Accept to n2 and n3" for the messages sent since id `first`.
pub(crate) fn sends_text(journal: &Journal, first: u64) -> String {
    let mut by_kind: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in journal.lines.range(first..).map(|(_, l)| l) {
        let mut k = line.kind.clone();
        if let Some(c) = k.get_mut(0..1) {
            c.make_ascii_uppercase();
        }
        by_kind.entry(k).or_default().push(line.to.clone());
    }
    by_kind
        .into_iter()
        .map(|(k, to)| format!("{k} to {}", and_list(&to)))
        .collect::<Vec<_>>()
        .join("; ")
}
