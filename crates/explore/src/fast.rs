//! The Fast Paxos world: real [`FastNode`]s from `paxos::fast` (one single-decree instance),
//! in a small deterministic harness: virtual time, one seeded generator, a network, disks
//! with latency. Proposers are the clients `c1`, `c2`: a proposal is a `Propose` message to
//! every node, which the learner can deliver by hand in any order to make acceptors split.
//!
//! The harness only carries out each node's `ready()` in the core's order (persist, then
//! send, then learn) and reports writes durable; collisions, recovery and learning are the
//! core's. The explorer's own checks count durable votes against the quorum sizes the nodes
//! run with, and compare what every learner learned.

use crate::harness::{self, Core, Harness, Member, Outputs};
use crate::journal::Journal;
use crate::model::{Action, NodeView, OpView, SlotView, Spec, View};
use crate::net::Net;
use crate::synod::{name, paren, sends_text};
use paxos::fast::{
    FastConfig, FastDurable, FastMessage, FastNode, FastOptions, FastPersist, Round, RoundMode,
};
use paxos::{NodeId, PersistSeq, PlantedBugs};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// Proposers a Fast Paxos session offers (`c1`, `c2`): two are enough to collide.
pub const PROPOSERS: usize = 2;
/// Proposer `c` is `NodeId(PROPOSER_ID_BASE + c)`, outside the nodes' ids, and sends from
/// index `PROPOSER_ID_BASE + c` of the network (no node has it, so no link of it is cut).
const PROPOSER_ID_BASE: u64 = 100;
/// Fewer ticks than the core's default before a classic round: the page's timelines stay
/// short, and the learner can always fire a timer by hand.
const RETRY_TIMEOUT_TICKS: u32 = 12;
const RETRY_JITTER_TICKS: u32 = 12;

type Flying = crate::net::Flying<FastMessage>;

/// The name of a network index: a node, or a proposer.
fn end_name(from: usize) -> String {
    match (from as u64).checked_sub(PROPOSER_ID_BASE) {
        Some(c) => format!("c{c}"),
        None => name(from),
    }
}

/// The id a core sees a network index as.
fn end_id(from: usize) -> NodeId {
    NodeId(if from as u64 >= PROPOSER_ID_BASE {
        from as u64
    } else {
        from as u64 + 1
    })
}

impl Core for FastNode {
    type Op = FastPersist;
    type Msg = FastMessage;
    type Durable = FastDurable;

    fn outputs(&mut self) -> Outputs<FastPersist, FastMessage> {
        let ready = self.ready();
        Outputs {
            persist: ready.persist,
            send: ready.send,
            learned: ready.learned.as_deref().map(text),
        }
    }

    fn persisted(&mut self, seq: PersistSeq) {
        FastNode::persisted(self, seq);
    }

    fn make_durable(durable: &mut FastDurable, op: &FastPersist) {
        durable.apply(op);
    }

    fn kind(msg: &FastMessage) -> &'static str {
        kind(msg)
    }
}

/// A Fast Paxos session's world.
pub struct FastWorld {
    n: usize,
    config: FastConfig,
    options: FastOptions,
    bugs: PlantedBugs,
    net: Net<FastMessage>,
    members: Vec<Member<FastNode>>,
    journal: Journal,
    proposals: Vec<OpView>,
    /// Durable votes ever cast: `(round, value)` to a bit per acceptor.
    votes: BTreeMap<(Round, String), u64>,
    extra: Vec<String>,
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

impl FastWorld {
    /// A fresh cluster at step 0: n1 coordinates the fast round 0 and sends `Any` at once.
    pub fn new(spec: &Spec, bugs: PlantedBugs) -> FastWorld {
        let n = spec.nodes;
        let config = FastConfig::new(n, RoundMode::Fast).expect("3 to 7 nodes fit Fast Paxos");
        let options = FastOptions {
            retry_timeout_ticks: RETRY_TIMEOUT_TICKS,
            retry_jitter_ticks: RETRY_JITTER_TICKS,
        };
        let mut net = Net::new(spec.seed);
        let members = (0..n)
            .map(|i| Member {
                node: FastNode::new(NodeId(i as u64 + 1), config, options, bugs).ok(),
                durable: FastDurable::default(),
                disk: Default::default(),
                incarnation: 0,
                rng: ChaCha8Rng::seed_from_u64(net.rng.next_u64()),
                learned: None,
            })
            .collect();
        net.start_ticks(n);
        let mut world = FastWorld {
            n,
            config,
            options,
            bugs,
            net,
            members,
            journal: Journal::default(),
            proposals: Vec::new(),
            votes: BTreeMap::new(),
            extra: Vec::new(),
        };
        for i in 0..n {
            world.drive(i, 0);
        }
        let q = world.quorums();
        world.journal.say(
            0,
            0,
            format!(
                "n1 coordinates round 0, a fast round: it sends Any to every acceptor before any \
                 value is proposed. Fast quorums are {} of {n}, classic quorums {} of {n}.",
                q.fast, q.classic
            ),
        );
        world
    }

    /// The quorum sizes the nodes run with (a planted bug may shrink the fast one).
    fn quorums(&self) -> paxos::fast::FastQuorums {
        self.config.with_planted_bugs(self.bugs).quorums()
    }

    fn send(&mut self, from: usize, to: usize, msg: FastMessage, step: usize) {
        let k = kind(&msg);
        self.net
            .send(&mut self.journal, from, &end_name(from), to, msg, k, step);
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

    /// A value is chosen once a quorum of its round's size holds a durable vote for it.
    fn look_for_quorum(&mut self, step: usize) {
        for (i, m) in self.members.iter().enumerate() {
            if let Some((r, v)) = &m.durable.vote {
                *self.votes.entry((*r, text(v))).or_insert(0) |= 1 << i;
            }
        }
        let config = self.config.with_planted_bugs(self.bugs);
        let formed: Vec<(Round, String)> = self
            .votes
            .iter()
            .filter(|((r, _), bits)| bits.count_ones() as usize >= config.quorum(*r))
            .map(|(k, _)| k.clone())
            .collect();
        for (r, v) in formed {
            if let Some(said) = self
                .journal
                .quorum(1, &format!("'{v}'"), &r.to_string(), step)
            {
                self.journal.say(step, self.net.now, said);
            }
        }
    }

    /// The view of this step.
    pub fn view(&self, spec: &Spec, step: usize, total: usize) -> View {
        let nodes = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let mut notes = Vec::new();
                let (role, ballot, durable) = match &m.node {
                    None => ("down".to_string(), "none".to_string(), &m.durable),
                    Some(p) => {
                        let c = p.counters();
                        if c.collisions > 0 {
                            notes.push(format!("collisions seen: {}", c.collisions));
                        }
                        if c.recoveries > 0 {
                            notes.push(format!("recoveries: {}", c.recoveries));
                        }
                        match p.coordinating() {
                            Some(r) => (format!("coordinator of {r}"), r.to_string(), p.durable()),
                            None => ("acceptor".to_string(), "none".to_string(), p.durable()),
                        }
                    }
                };
                if !m.disk.is_empty() {
                    notes.push(format!("{} disk write(s) in progress", m.disk.len()));
                }
                NodeView {
                    name: name(i),
                    up: m.node.is_some(),
                    role,
                    promised: round_text(durable.rnd),
                    ballot,
                    leader: None,
                    chosen_through: u64::from(m.learned.is_some()),
                    slots: durable
                        .vote
                        .iter()
                        .map(|(r, v)| SlotView {
                            slot: 1,
                            ballot: r.to_string(),
                            value: format!("'{}'", text(v)),
                            known_chosen: m.learned.is_some(),
                        })
                        .collect(),
                    notes,
                }
            })
            .collect();
        let in_flight = harness::message_views(&self.net, end_name, kind, label);
        let known_by = |_slot: u64| harness::learned_by(&self.members);
        harness::view(
            spec,
            step,
            total,
            &self.net,
            &self.journal,
            harness::Shown {
                nodes,
                clients: (1..=PROPOSERS).map(|c| format!("c{c}")).collect(),
                in_flight,
                chosen: self.journal.chosen_views(known_by),
                ops: self.proposals.clone(),
            },
        )
    }
}

impl Harness for FastWorld {
    harness::plumbing!(FastMessage, extra);
    harness::disks!();

    fn describe(m: &Flying) -> (String, &'static str, String) {
        (label(&m.msg), kind(&m.msg), end_name(m.from))
    }

    fn up(&self, i: usize) -> bool {
        self.members[i].node.is_some()
    }

    fn incarnation(&self, i: usize) -> u64 {
        self.members[i].incarnation
    }

    fn busy(&self) -> bool {
        // A write in progress, or a proposal some running node has not learned the end of.
        self.members.iter().any(|m| !m.disk.is_empty())
            || (!self.proposals.is_empty()
                && self
                    .members
                    .iter()
                    .any(|m| m.node.is_some() && m.learned.is_none()))
    }

    fn tick(&mut self, node: usize, step: usize) -> Option<String> {
        let member = &mut self.members[node];
        let p = member.node.as_mut()?;
        let before = p.coordinating();
        p.tick(&mut member.rng);
        let after = p.coordinating();
        if !self.drive(node, step) && before == after {
            return None;
        }
        let what = match after {
            Some(r) if Some(r) != before => format!("starts classic round {r} with phase 1"),
            _ => "tells the others what it knows".to_string(),
        };
        Some(format!(
            "n{}'s retry timer fires: nothing was learned in time, so it {what}.",
            node + 1
        ))
    }

    /// Message `m` reaches its receiver (up, over a working link), which steps its core with
    /// it.
    fn deliver(&mut self, m: Flying, step: usize) -> String {
        let (from, to) = (end_name(m.from), name(m.to));
        let lbl = label(&m.msg);
        let i = m.to;
        let Some(before) = self.members[i].node.as_ref().map(Snap::of) else {
            return format!("{to} is down.");
        };
        let sent_before = self.net.next_id;
        if let Some(p) = self.members[i].node.as_mut() {
            p.step(end_id(m.from), m.msg.clone());
        }
        self.drive(i, step);
        let sends = sends_text(&self.journal, sent_before);
        let Some(after) = self.members[i].node.as_ref().map(Snap::of) else {
            return format!("{to} receives {lbl}.");
        };
        let q = self.quorums();
        let voted = after.vote != before.vote;
        let mut said = match &m.msg {
            FastMessage::Propose { value } => {
                let v = text(value);
                if voted {
                    format!(
                        "{to} gets {from}'s '{v}' and votes for it in the fast round: the first \
                         proposal it received. The vote goes to disk, then its 2b leaves for \
                         every node."
                    )
                } else {
                    match &after.vote {
                        Some((r, w)) => format!(
                            "{to} gets '{v}' from {from}, but it voted for '{}' in {r} already: \
                             an acceptor votes once per round.",
                            text(w)
                        ),
                        None => {
                            format!("{to} gets '{v}' from {from} and keeps it{}.", paren(&sends))
                        }
                    }
                }
            }
            FastMessage::Any { round } => format!(
                "{to} learns that round {round} is fast: it will vote for the first value a \
                 proposer sends it."
            ),
            FastMessage::Phase1a { round } => {
                if after.rnd != before.rnd {
                    format!(
                        "{to} promises round {round} to {from} and reports its vote ({}); the \
                         promise goes to disk first.",
                        vote_text(&after.vote)
                    )
                } else {
                    format!("{to} does not promise {round}{}.", paren(&sends))
                }
            }
            FastMessage::Phase1b { round, .. } => {
                format!("{to} counts {from}'s promise for {round}{}.", paren(&sends))
            }
            FastMessage::Phase2a { round, value } => {
                if voted {
                    format!(
                        "{to} votes for '{}' in round {round}, as the coordinator asked.",
                        text(value)
                    )
                } else {
                    format!("{to} does not vote in {round}{}.", paren(&sends))
                }
            }
            FastMessage::Phase2b { round, value } => {
                let v = text(value);
                if after.collisions > before.collisions {
                    // The coordinator votes for its own 2a first; the 2a leaves once that
                    // vote is durable, so the value is read off the vote.
                    let picked = after
                        .vote
                        .as_ref()
                        .filter(|(r, _)| *r == round.recovery_round())
                        .map(|(_, v)| text(v));
                    format!(
                        "{to}, the coordinator, counts {from}'s 2b for '{v}' in {round} and sees \
                         a collision: the votes split, so no value can reach a fast quorum of \
                         {}. Coordinated recovery: it uses these 2b votes as the phase-1 answers \
                         of the recovery round {}, skips phase 1, and asks for '{}'. The value is \
                         picked by the rule of section 3.3: one that may have been chosen in the \
                         fast round if there is one, else any value voted.",
                        q.fast,
                        round.recovery_round(),
                        picked.unwrap_or_else(|| "a value".to_string())
                    )
                } else if self.config.is_fast(*round) {
                    format!(
                        "{to} counts {from}'s fast-round vote for '{v}' (a fast quorum is {} of \
                         {}){}.",
                        q.fast,
                        self.n,
                        paren(&sends)
                    )
                } else {
                    format!(
                        "{to} counts {from}'s vote for '{v}' in {round} (a classic quorum is {} \
                         of {}){}.",
                        q.classic,
                        self.n,
                        paren(&sends)
                    )
                }
            }
            FastMessage::Nack { round, promised } => format!(
                "{to} learns {from} promised {promised}, above round {round}: it gives up that \
                 round."
            ),
            FastMessage::Chosen { value } => {
                format!("{to} learns from {from} that '{}' is chosen.", text(value))
            }
        };
        if after.recoveries > before.recoveries && !matches!(m.msg, FastMessage::Phase2b { .. }) {
            said.push_str(" That completes a coordinated recovery.");
        }
        said
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
            "",
        )
    }

    fn own(&mut self, action: &Action, step: usize) -> Result<String, String> {
        Ok(match action {
            Action::Crash { node } => {
                let m = &mut self.members[node - 1];
                let lost = m.crash();
                format!(
                    "n{node} loses power: {lost} write(s) in progress are lost. Its disk keeps \
                     its promise ({}) and its vote ({}).",
                    round_text(m.durable.rnd),
                    vote_text(&m.durable.vote)
                )
            }
            Action::Restart { node } => {
                let i = node - 1;
                let m = &mut self.members[i];
                m.node = FastNode::recover(
                    NodeId(*node as u64),
                    self.config,
                    self.options,
                    self.bugs,
                    m.durable.clone(),
                )
                .ok();
                let incarnation = m.incarnation;
                let said = format!(
                    "n{node} restarts from its disk: promise {}, vote {}.",
                    round_text(m.durable.rnd),
                    vote_text(&m.durable.vote)
                );
                self.net.restart_ticks(i, incarnation);
                self.drive(i, step);
                said
            }
            Action::Propose { value, client, .. } => {
                let c = client.unwrap_or(1);
                self.proposals.push(OpView {
                    client: format!("c{c}"),
                    input: format!("propose '{value}'"),
                    output: None,
                });
                for to in 0..self.n {
                    let msg = FastMessage::Propose {
                        value: value.as_bytes().to_vec(),
                    };
                    self.send(PROPOSER_ID_BASE as usize + c, to, msg, step);
                }
                format!(
                    "Proposer c{c} sends '{value}' straight to every acceptor: no leader on the \
                     path. In the fast round each acceptor votes for the first proposal it gets."
                )
            }
            Action::Read { .. } => return Err("this Fast Paxos instance has no reads.".to_string()),
            Action::Reconfigure { .. } => {
                return Err("this Fast Paxos instance has no configuration to change.".to_string())
            }
            Action::Timer { node } => {
                let i = node - 1;
                let Some(p) = self.members[i].node.as_mut() else {
                    return Err(format!("n{node} is down."));
                };
                p.campaign();
                if !self.drive(i, step) {
                    return Err(format!("n{node} has nothing to send."));
                }
                let round = self.members[i]
                    .node
                    .as_ref()
                    .and_then(FastNode::coordinating);
                format!(
                    "n{node}'s timer fires (by hand): it starts a classic round{} with phase 1, \
                     as in classic Paxos.",
                    round.map(|r| format!(" {r}")).unwrap_or_default()
                )
            }
            // The harness answers the rest.
            _ => return Err(harness::ANSWERED.to_string()),
        })
    }

    fn finish(&mut self, step: usize) {
        self.look_for_quorum(step);
        let learned: Vec<(usize, String)> = self
            .members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.learned.as_ref().map(|v| (i, format!("'{v}'"))))
            .collect();
        self.journal.check_learned(step, learned);
        let first = self.members.iter().find_map(|m| m.learned.clone());
        if let Some(v) = first {
            for op in &mut self.proposals {
                op.output.get_or_insert_with(|| format!("chosen: '{v}'"));
            }
        }
    }
}

/// What a node looked like before a delivery, for the sentence about it.
struct Snap {
    rnd: Option<Round>,
    vote: Option<(Round, Vec<u8>)>,
    collisions: u64,
    recoveries: u64,
}

impl Snap {
    fn of(p: &FastNode) -> Snap {
        let c = p.counters();
        Snap {
            rnd: p.durable().rnd,
            vote: p.durable().vote.clone(),
            collisions: c.collisions,
            recoveries: c.recoveries,
        }
    }
}

fn round_text(r: Option<Round>) -> String {
    r.map_or_else(|| "none".to_string(), |r| r.to_string())
}

fn vote_text(v: &Option<(Round, Vec<u8>)>) -> String {
    match v {
        None => "none".to_string(),
        Some((r, v)) => format!("'{}' in {r}", text(v)),
    }
}

fn kind(m: &FastMessage) -> &'static str {
    match m {
        FastMessage::Propose { .. } => "propose",
        FastMessage::Phase1a { .. } => "1a",
        FastMessage::Phase1b { .. } => "1b",
        FastMessage::Any { .. } => "any",
        FastMessage::Phase2a { .. } => "2a",
        FastMessage::Phase2b { .. } => "2b",
        FastMessage::Nack { .. } => "nack",
        FastMessage::Chosen { .. } => "chosen",
    }
}

fn label(m: &FastMessage) -> String {
    match m {
        FastMessage::Propose { value } => format!("Propose '{}'", text(value)),
        FastMessage::Phase1a { round } => format!("1a {round}"),
        FastMessage::Phase1b { round, vote } => format!("1b {round}, vote {}", vote_text(vote)),
        FastMessage::Any { round } => format!("Any {round}"),
        FastMessage::Phase2a { round, value } => format!("2a {round} '{}'", text(value)),
        FastMessage::Phase2b { round, value } => format!("2b {round} '{}'", text(value)),
        FastMessage::Nack { round, promised } => format!("Nack {round} (promised {promised})"),
        FastMessage::Chosen { value } => format!("Chosen '{}'", text(value)),
    }
}

fn persist_text(op: &FastPersist) -> String {
    match op {
        FastPersist::Promise(r) => format!("its promise of round {r}"),
        FastPersist::Vote((r, v)) => format!("its vote for '{}' in {r}", text(v)),
    }
}
