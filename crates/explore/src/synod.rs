//! The single-decree world: real [`SynodNode`]s from `crates/paxos`, in a small deterministic
//! harness of its own (virtual time, one seeded generator, a network, disks with latency).
//!
//! The harness is a driver, like the simulator's for Multi-Paxos: it carries out each node's
//! `ready()` in the core's order (persist, then send, then learn) and reports writes durable
//! with `persisted`. It decides nothing of the protocol.

use crate::harness::{self, Core, Harness, Member, Outputs};
use crate::journal::{and_list, ballot_text, Journal};
use crate::model::{Action, NodeView, OpView, SlotView, Spec, View};
use crate::net::Net;
use paxos::synod::{
    ProposerPhase, SynodDurable, SynodMessage, SynodNode, SynodOptions, SynodPersist,
};
use paxos::{Ballot, Configuration, NodeId, PersistSeq, PlantedBugs};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

type Msg = SynodMessage<String>;

type Flying = crate::net::Flying<Msg>;

impl Core for SynodNode<String> {
    type Op = SynodPersist<String>;
    type Msg = Msg;
    type Durable = SynodDurable<String>;

    fn outputs(&mut self) -> Outputs<Self::Op, Msg> {
        let ready = self.ready();
        Outputs {
            persist: ready.persist,
            send: ready.send,
            learned: ready.learned,
        }
    }

    fn persisted(&mut self, seq: PersistSeq) {
        SynodNode::persisted(self, seq);
    }

    fn make_durable(durable: &mut Self::Durable, op: &Self::Op) {
        durable.apply(op);
    }

    fn kind(msg: &Msg) -> &'static str {
        kind(msg)
    }
}

/// A single-decree session's world.
pub struct SynodWorld {
    n: usize,
    acceptors: Configuration,
    bugs: PlantedBugs,
    net: Net<Msg>,
    members: Vec<Member<SynodNode<String>>>,
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
                disk: Default::default(),
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

    /// Carries out node `i`'s outputs in the core's order; returns whether there were any.
    fn drive(&mut self, i: usize, step: usize) -> bool {
        harness::drive(
            &mut self.members,
            &mut self.net,
            &mut self.journal,
            &mut self.extra,
            i,
            step,
        )
    }

    /// Applies one unit of `action` as step `step`.
    pub fn apply(&mut self, action: &Action, step: usize) {
        harness::apply(self, action, step);
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
        let in_flight = harness::message_views(&self.net, name, kind, label);
        let known_by = |_slot: u64| harness::learned_by(&self.members);
        harness::view(
            spec,
            step,
            total,
            &self.net,
            &self.journal,
            harness::Shown {
                nodes,
                clients: Vec::new(),
                in_flight,
                chosen: self.journal.chosen_views(known_by),
                ops: self.proposals.clone(),
            },
        )
    }
}

impl Harness for SynodWorld {
    harness::plumbing!(Msg, extra);
    harness::disks!();

    fn describe(m: &Flying) -> (String, &'static str, String) {
        (label(&m.msg), kind(&m.msg), name(m.from))
    }

    fn network_why(action: &Action) -> &'static str {
        // What the network's sentence leaves out, for single-decree Paxos.
        match action {
            Action::Drop { .. } => {
                " Paxos never relies on one message: the proposer's retry timer will try again."
            }
            Action::Partition { .. } => " Only a group with a majority of acceptors can choose.",
            _ => "",
        }
    }

    fn up(&self, i: usize) -> bool {
        self.members[i].node.is_some()
    }

    fn incarnation(&self, i: usize) -> u64 {
        self.members[i].incarnation
    }

    fn busy(&self) -> bool {
        // A proposer waiting to retry, or a write in progress.
        self.members.iter().any(|m| {
            !m.disk.is_empty()
                || m.node
                    .as_ref()
                    .is_some_and(|p| p.chosen().is_none() && p.ballot().is_real())
        })
    }

    fn tick(&mut self, node: usize, step: usize) -> Option<String> {
        let member = &mut self.members[node];
        let p = member.node.as_mut()?;
        let before = p.ballot();
        p.tick(&mut member.rng);
        let after = p.ballot();
        (self.drive(node, step) || before != after).then(|| {
            format!(
                "n{}'s retry timer fires: no value was chosen in time (a lost message, a \
                 crash, or a competing proposer), so it tries again with ballot {after}. The \
                 timeout has a random part, so two dueling proposers soon stop colliding.",
                node + 1
            )
        })
    }

    /// Message `m` reaches its receiver (up, over a working link), which steps its core with
    /// it.
    fn deliver(&mut self, m: Flying, step: usize) -> String {
        let (from, to) = (name(m.from), name(m.to));
        let lbl = label(&m.msg);
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

    fn complete_write(&mut self, i: usize, step: usize, how: &str) -> String {
        harness::complete_write(
            &mut self.members,
            &mut self.net,
            &mut self.journal,
            &mut self.extra,
            i,
            step,
            how,
            persist_text,
            " A node never tells anyone of a promise or vote it could forget in a crash.",
        )
    }

    fn own(&mut self, action: &Action, step: usize) -> Result<String, String> {
        Ok(match action {
            Action::Crash { node } => {
                let m = &mut self.members[node - 1];
                let lost = m.crash();
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
                self.net.restart_ticks(i, incarnation);
                text
            }
            Action::Propose { value, node, .. } => {
                let n = node.unwrap_or(1);
                let Some(p) = self.members[n - 1].node.as_mut() else {
                    return Err(format!("n{n} is down."));
                };
                if p.chosen().is_some() {
                    return Err(format!("n{n} already knows a value is chosen."));
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
            Action::Read { .. } => return Err("single-decree Paxos has no reads.".to_string()),
            Action::Reconfigure { .. } => {
                return Err("single-decree Paxos has no configuration to change.".to_string())
            }
            Action::Timer { node } => {
                let i = node - 1;
                let Some(p) = self.members[i].node.as_mut() else {
                    return Err(format!("n{node} is down."));
                };
                let before = p.ballot();
                p.retry();
                let after = p.ballot();
                if before == after {
                    return Err(format!(
                        "n{node} has nothing to retry (no proposal, or already chosen)."
                    ));
                }
                self.drive(i, step);
                format!(
                    "n{node}'s retry timer fires (by hand): it abandons ballot {} and starts \
                     phase 1 again with {after}.",
                    ballot_text(before)
                )
            }
            // The harness answers the rest.
            _ => return Err(harness::ANSWERED.to_string()),
        })
    }

    fn finish(&mut self, step: usize) {
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
