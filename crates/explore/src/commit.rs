//! The Paxos Commit world: real [`CommitNode`]s from `paxos::commit` (Gray and Lamport), in
//! the explorer's own harness. Every node is an acceptor (2F+1 of them); n1 is the
//! transaction manager (the coordinator, the first leader), n2 a second leader that takes
//! over when n1 goes silent, and n3 and up are the resource managers. With `two_phase` the
//! same core runs two-phase commit (`two_phase_commit`, F = 0): n1 is the only acceptor and
//! the only leader, n2 takes no part, and a crash of n1 blocks every RM that voted Prepared. A learner begins a
//! transaction at an RM over every RM; each RM votes when asked (Prepared, unless the learner
//! told it to refuse), and each vote is decided by its own Paxos instance on the acceptors.
//!
//! The harness only carries out each node's `ready()` in the core's order (persist, then
//! send, then what the RM and leader must hear) and answers an RM's request for its vote.
//! The explorer's own checks: an instance is chosen once a majority of acceptors holds the
//! same vote at the same ballot durably (two values for one instance are a violation), every
//! node that knows a transaction's outcome knows the same one, and Committed only once every
//! instance chose Prepared.

use crate::harness::{self, Disk, Harness};
use crate::journal::{and_list, Journal};
use crate::model::{Action, NodeView, OpView, SlotView, Spec, View};
use crate::net::Net;
use crate::synod::{name, paren, sends_text};
use paxos::commit::{
    paxos_commit, two_phase_commit, CommitConfig, CommitDurable, CommitMessage, CommitNode,
    CommitOptions, CommitPersist, Outcome, Roles, TxnId, Vote,
};
use paxos::{Ballot, NodeId, PlantedBugs};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};

/// Index of the transaction manager (the coordinator) and of the second leader.
const COORDINATOR: usize = 0;
const BACKUP: usize = 1;
/// Index of the first resource manager.
const FIRST_RM: usize = 2;
/// Shorter than the core's defaults, so a takeover comes within a few dozen steps; the
/// learner can also fire a leader's timer by hand.
const VOTE_TIMEOUT_TICKS: u32 = 20;
const TAKEOVER_TIMEOUT_TICKS: u32 = 20;
/// Transactions one session may begin: each adds a row of instances to every acceptor.
pub const TXNS_MAX: u64 = 8;

type Flying = crate::net::Flying<CommitMessage>;

struct Member {
    node: Option<CommitNode>,
    durable: CommitDurable,
    disk: Disk<CommitPersist>,
    incarnation: u64,
    rng: ChaCha8Rng,
    /// Outcomes this node was told it may act on (learned as RM, decided as leader).
    outcomes: BTreeMap<TxnId, Outcome>,
}

/// A Paxos Commit session's world.
pub struct CommitWorld {
    n: usize,
    /// Two-phase commit: n1 the only acceptor and leader.
    two_phase: bool,
    config: CommitConfig,
    options: CommitOptions,
    bugs: PlantedBugs,
    net: Net<CommitMessage>,
    members: Vec<Member>,
    journal: Journal,
    /// Transactions begun, with the RM that began each.
    ops: Vec<(TxnId, usize, OpView)>,
    /// RMs the learner told to vote Aborted when asked.
    refuse: BTreeSet<usize>,
    /// `(txn, instance)` to the page's slot number, in the order instances were chosen.
    numbers: BTreeMap<(TxnId, usize), u64>,
    /// Votes chosen per `(txn, instance)`, as the explorer counts them.
    chosen: BTreeMap<(TxnId, usize), Vote>,
    extra: Vec<String>,
}

/// The parts node `i` plays: in Paxos Commit every node is an acceptor; in two-phase commit
/// only the coordinator is, and the second leader plays no part.
fn roles(i: usize, two_phase: bool) -> Roles {
    Roles {
        rm: i >= FIRST_RM,
        acceptor: !two_phase || i == COORDINATOR,
        leader: if two_phase {
            i == COORDINATOR
        } else {
            i < FIRST_RM
        },
    }
}

fn vote_text(v: Vote) -> &'static str {
    match v {
        Vote::Prepared => "Prepared",
        Vote::Aborted => "Aborted",
    }
}

fn outcome_text(o: Outcome) -> &'static str {
    match o {
        Outcome::Committed => "Committed",
        Outcome::Aborted => "Aborted",
    }
}

fn ballot_text(b: Ballot) -> String {
    if b.round == 0 {
        format!("0 (the RM {}'s own)", name(b.node.0 as usize - 1))
    } else {
        b.to_string()
    }
}

impl CommitWorld {
    /// A fresh cluster at step 0: no transaction until a learner begins one.
    pub fn new(spec: &Spec, bugs: PlantedBugs) -> CommitWorld {
        let n = spec.nodes;
        let ids: Vec<NodeId> = (1..=n as u64).map(NodeId).collect();
        let config = if spec.two_phase {
            two_phase_commit(ids[COORDINATOR])
        } else {
            paxos_commit(ids.clone(), vec![ids[COORDINATOR], ids[BACKUP]])
                .expect("3 to 7 acceptors form a configuration")
        };
        let options = CommitOptions {
            vote_timeout_ticks: VOTE_TIMEOUT_TICKS,
            takeover_timeout_ticks: TAKEOVER_TIMEOUT_TICKS,
            ..CommitOptions::default()
        };
        let mut net = Net::new(spec.seed);
        let members = (0..n)
            .map(|i| Member {
                node: Some(CommitNode::recover(
                    ids[i],
                    roles(i, spec.two_phase),
                    config.clone(),
                    options.clone(),
                    &CommitDurable::default(),
                    bugs,
                )),
                durable: CommitDurable::default(),
                disk: Disk::default(),
                incarnation: 0,
                rng: ChaCha8Rng::seed_from_u64(net.rng.next_u64()),
                outcomes: BTreeMap::new(),
            })
            .collect();
        net.start_ticks(n);
        CommitWorld {
            n,
            two_phase: spec.two_phase,
            config,
            options,
            bugs,
            net,
            members,
            journal: Journal::default(),
            ops: Vec::new(),
            refuse: BTreeSet::new(),
            numbers: BTreeMap::new(),
            chosen: BTreeMap::new(),
            extra: Vec::new(),
        }
    }

    /// Applies one unit of `action` as step `step`.
    pub fn apply(&mut self, action: &Action, step: usize) {
        harness::apply(self, action, step);
    }

    /// Every RM, in instance order.
    fn rms(&self) -> Vec<NodeId> {
        (FIRST_RM..self.n).map(|i| NodeId(i as u64 + 1)).collect()
    }

    /// Carries out node `i`'s outputs in the core's order: its write to disk, its messages,
    /// then its vote if asked, and what it learned or decided. Returns whether there were any.
    fn drive(&mut self, i: usize, step: usize) -> bool {
        let mut any = false;
        loop {
            let m = &mut self.members[i];
            let Some(p) = m.node.as_mut() else {
                return any;
            };
            let ready = p.ready();
            if ready.persist.is_none()
                && ready.send.is_empty()
                && ready.prepare.is_empty()
                && ready.learned.is_empty()
                && ready.decided.is_empty()
            {
                return any;
            }
            any = true;
            if let Some(batch) = ready.persist {
                m.disk
                    .start(&mut self.net, i, m.incarnation, batch.seq, batch.ops);
            }
            for o in ready.send {
                let to = (o.to.0 as usize).wrapping_sub(1);
                if to < self.n {
                    let kind = kind(&o.msg);
                    self.net
                        .send(&mut self.journal, i, &name(i), to, o.msg, kind, step);
                }
            }
            for txn in ready.prepare {
                let vote = if self.refuse.contains(&i) {
                    Vote::Aborted
                } else {
                    Vote::Prepared
                };
                let said = match p.vote(txn, vote) {
                    Ok(()) => format!(
                        "{} votes {} on {txn}: the vote goes to disk, then to every acceptor as \
                         the 2a of its own instance at ballot 0.",
                        name(i),
                        vote_text(vote)
                    ),
                    Err(e) => format!("{} cannot vote on {txn}: {e}.", name(i)),
                };
                self.extra.push(said);
            }
            for (txn, o) in ready.learned {
                m.outcomes.insert(txn, o);
                self.extra.push(format!(
                    "{} now knows {txn} is {}.",
                    name(i),
                    outcome_text(o)
                ));
            }
            for (txn, o) in ready.decided {
                m.outcomes.insert(txn, o);
                self.extra.push(format!(
                    "{}, a leader, has decided {txn}: {}.",
                    name(i),
                    outcome_text(o)
                ));
            }
        }
    }

    /// Instances chosen (a majority of acceptors durably holds one vote at one ballot), and
    /// the outcomes every node knows: one per transaction, Committed only if every instance
    /// chose Prepared.
    fn check(&mut self, step: usize) {
        let majority = self.config.acceptors.members().len() / 2 + 1;
        let mut holders: BTreeMap<(TxnId, usize, Ballot, Vote), usize> = BTreeMap::new();
        for m in &self.members {
            for (txn, rec) in &m.durable.acceptor {
                for (i, acc) in rec.accepted.iter().enumerate() {
                    if let Some((b, v)) = acc {
                        *holders.entry((*txn, i, *b, *v)).or_insert(0) += 1;
                    }
                }
            }
        }
        for ((txn, i, b, v), count) in holders {
            if count < majority {
                continue;
            }
            let number = self.numbers.len() as u64 + 1;
            let slot = *self.numbers.entry((txn, i)).or_insert(number);
            self.chosen.entry((txn, i)).or_insert(v);
            let value = format!("{txn}: {}'s vote {}", name(FIRST_RM + i), vote_text(v));
            if let Some(said) = self.journal.quorum(slot, &value, &b.to_string(), step) {
                self.journal.say(step, self.net.now, said);
            }
        }
        let rms = self.n - FIRST_RM;
        let mut known: BTreeMap<TxnId, Vec<(usize, Outcome)>> = BTreeMap::new();
        for (i, m) in self.members.iter().enumerate() {
            for (txn, o) in &m.outcomes {
                known.entry(*txn).or_default().push((i, *o));
            }
        }
        for (txn, who) in known {
            let (first, o) = who[0];
            if let Some((other, p)) = who.iter().find(|(_, p)| *p != o) {
                let detail = format!(
                    "{txn}: {} knows {} but {} knows {}",
                    name(first),
                    outcome_text(o),
                    name(*other),
                    outcome_text(*p)
                );
                self.journal.violate("atomic commitment", detail, step);
            }
            for (i, o) in &who {
                let all_prepared =
                    (0..rms).all(|k| self.chosen.get(&(txn, k)) == Some(&Vote::Prepared));
                if *o == Outcome::Committed && !all_prepared {
                    let detail = format!(
                        "{txn}: {} knows Committed, but not every instance chose Prepared",
                        name(*i)
                    );
                    self.journal.violate("commit validity", detail, step);
                }
            }
        }
    }

    /// Nodes that know `txn`'s outcome.
    fn knowing(&self, txn: TxnId) -> Vec<String> {
        self.members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.outcomes.contains_key(&txn))
            .map(|(i, _)| name(i))
            .collect()
    }

    /// The view of this step.
    pub fn view(&self, spec: &Spec, step: usize, total: usize) -> View {
        let nodes = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let role = match (i, self.two_phase) {
                    (COORDINATOR, false) => "transaction manager, acceptor",
                    (BACKUP, false) => "second leader, acceptor",
                    (_, false) => "resource manager, acceptor",
                    (COORDINATOR, true) => "coordinator, the only acceptor",
                    (BACKUP, true) => "no part in two-phase commit",
                    (_, true) => "resource manager",
                };
                let mut notes: Vec<String> = m
                    .outcomes
                    .iter()
                    .map(|(t, o)| format!("{t}: {}", outcome_text(*o)))
                    .collect();
                if self.refuse.contains(&i) {
                    notes.push("will vote Aborted".to_string());
                }
                // An RM that voted Prepared and knows no outcome may neither commit nor abort.
                for (txn, rec) in &m.durable.rm {
                    if rec.vote == Some(Vote::Prepared) && !m.outcomes.contains_key(txn) {
                        notes.push(format!("voted Prepared on {txn}, outcome unknown: waits"));
                    }
                }
                if !m.disk.is_empty() {
                    notes.push(format!("{} disk write(s) in progress", m.disk.len()));
                }
                let promised = m
                    .durable
                    .acceptor
                    .values()
                    .map(|r| r.promised)
                    .max()
                    .filter(|b| b.round > 0)
                    .map_or_else(|| "none".to_string(), |b| b.to_string());
                let slots = m
                    .durable
                    .acceptor
                    .iter()
                    .flat_map(|(txn, rec)| {
                        rec.accepted
                            .iter()
                            .enumerate()
                            .filter_map(move |(k, a)| a.map(|(b, v)| (*txn, k, b, v)))
                    })
                    .map(|(txn, k, b, v)| SlotView {
                        slot: self.numbers.get(&(txn, k)).copied().unwrap_or(0),
                        ballot: b.to_string(),
                        value: format!("{txn}: {}'s vote {}", name(FIRST_RM + k), vote_text(v)),
                        known_chosen: m.outcomes.contains_key(&txn),
                    })
                    .collect();
                NodeView {
                    name: name(i),
                    up: m.node.is_some(),
                    role: if m.node.is_some() { role } else { "down" }.to_string(),
                    promised,
                    ballot: "none".to_string(),
                    leader: None,
                    chosen_through: 0,
                    slots,
                    notes,
                }
            })
            .collect();
        let slot_txn: BTreeMap<u64, TxnId> =
            self.numbers.iter().map(|((t, _), s)| (*s, *t)).collect();
        let known_by = |slot: u64| {
            slot_txn
                .get(&slot)
                .map(|t| self.knowing(*t))
                .unwrap_or_default()
        };
        harness::view(
            spec,
            step,
            total,
            &self.net,
            &self.journal,
            harness::Shown {
                nodes,
                clients: Vec::new(),
                in_flight: harness::message_views(&self.net, name, kind, label),
                chosen: self.journal.chosen_views(known_by),
                ops: self.ops.iter().map(|(_, _, o)| o.clone()).collect(),
            },
        )
    }
}

impl Harness for CommitWorld {
    harness::plumbing!(CommitMessage, extra);
    harness::disks!();

    fn describe(m: &Flying) -> (String, &'static str, String) {
        (label(&m.msg), kind(&m.msg), name(m.from))
    }

    fn up(&self, i: usize) -> bool {
        self.members[i].node.is_some()
    }

    fn incarnation(&self, i: usize) -> u64 {
        self.members[i].incarnation
    }

    fn busy(&self) -> bool {
        // A write in progress, or a transaction some running RM does not know the end of.
        self.members.iter().any(|m| !m.disk.is_empty())
            || self.ops.iter().any(|(txn, _, _)| {
                self.members.iter().enumerate().any(|(i, m)| {
                    i >= FIRST_RM && m.node.is_some() && !m.outcomes.contains_key(txn)
                })
            })
    }

    fn tick(&mut self, node: usize, step: usize) -> Option<String> {
        let m = &mut self.members[node];
        let p = m.node.as_mut()?;
        let before = p.counters().phase1_runs;
        p.tick(&mut m.rng);
        let after = p.counters().phase1_runs;
        let sent_before = self.net.next_id;
        if !self.drive(node, step) {
            return None;
        }
        let sends = paren(&sends_text(&self.journal, sent_before));
        Some(if after > before {
            format!(
                "{}'s timer fires: a transaction it leads or heard of is still undecided, so it \
                 takes it over with phase 1 at a higher ballot, for every instance at once{sends}.",
                name(node)
            )
        } else {
            format!(
                "{}'s timer fires: it resends what is unanswered{sends}.",
                name(node)
            )
        })
    }

    /// Message `m` reaches its receiver (up, over a working link), which steps its core with
    /// it.
    fn deliver(&mut self, m: Flying, step: usize) -> String {
        let (from, to) = (name(m.from), name(m.to));
        let i = m.to;
        let sent_before = self.net.next_id;
        if let Some(p) = self.members[i].node.as_mut() {
            p.step(NodeId(m.from as u64 + 1), m.msg.clone());
        }
        self.drive(i, step);
        let sent = sends_text(&self.journal, sent_before);
        let proposes = sent.contains("2a to");
        let sends = paren(&sent);
        match &m.msg {
            CommitMessage::Begin { txn, .. } => format!(
                "{to}, the transaction manager, hears {from} ask to commit {txn} and asks every \
                 RM to prepare{sends}."
            ),
            CommitMessage::Prepare { txn, .. } => {
                format!("{to} is asked by {from} to prepare {txn}{sends}.")
            }
            CommitMessage::Phase2a {
                txn,
                instance,
                ballot,
                vote,
                ..
            } => format!(
                "{to}, an acceptor, gets the 2a of instance {} of {txn} ({}'s vote): {} at \
                 ballot {}. An acceptor accepts unless it promised a higher ballot; what it \
                 accepts goes to disk before its 2b leaves{sends}.",
                instance + 1,
                name(FIRST_RM + usize::from(*instance)),
                vote_text(*vote),
                ballot_text(*ballot)
            ),
            CommitMessage::Phase2b {
                txn,
                instance,
                vote,
                ..
            } => format!(
                "{to}, a leader, counts {from}'s 2b for instance {} of {txn}: {}. It decides \
                 once every instance has a majority of acceptors{sends}.",
                instance + 1,
                vote_text(*vote)
            ),
            CommitMessage::Phase1a { txn, ballot, .. } => format!(
                "{to} promises ballot {ballot} for every instance of {txn} to {from} and reports \
                 what it accepted in each{sends}."
            ),
            CommitMessage::Phase1b { txn, .. } => {
                if !proposes {
                    format!("{to} counts {from}'s promise for {txn}{sends}.")
                } else {
                    format!(
                        "{to} counts {from}'s promise for {txn}. With a majority of promises it \
                         proposes, per instance, the vote accepted at the highest ballot, and \
                         Aborted where none was accepted: an RM that never voted cannot have \
                         been chosen Prepared{sends}."
                    )
                }
            }
            CommitMessage::Nack { txn, promised, .. } => {
                format!("{to} learns {from} promised {promised} for {txn}{sends}.")
            }
            CommitMessage::Query { txn, .. } => format!(
                "{to}, a leader, hears {from} ask how {txn} ended; a leader that cannot answer \
                 takes the transaction over once its timer runs out{sends}."
            ),
            CommitMessage::Outcome { txn, outcome } => format!(
                "{to} hears from {from} that {txn} is {}{sends}.",
                outcome_text(*outcome)
            ),
            CommitMessage::Decided { txn, outcome, .. } => format!(
                "{to}, a leader, hears {from} decided {txn}: {}{sends}.",
                outcome_text(*outcome)
            ),
            CommitMessage::Settled { txn } => {
                format!("{to} hears every RM has {txn}'s outcome: it forgets it{sends}.")
            }
            CommitMessage::OutcomeAck { txn } => {
                format!("{to} hears {from} has {txn}'s outcome on disk{sends}.")
            }
        }
    }

    fn complete_write(&mut self, i: usize, step: usize, how: &str) -> String {
        let m = &mut self.members[i];
        let Some((seq, ops)) = m.disk.complete() else {
            return format!("{} has no disk write in progress.", name(i));
        };
        for op in &ops {
            m.durable.apply(op);
        }
        if let Some(p) = m.node.as_mut() {
            p.persisted(seq);
        }
        let what: Vec<String> = ops.iter().map(persist_text).collect();
        let sent_before = self.net.next_id;
        self.drive(i, step);
        let sends = sends_text(&self.journal, sent_before);
        harness::write_sentence(how, i, &what, &sends, "")
    }

    fn own(&mut self, action: &Action, step: usize) -> Result<String, String> {
        Ok(match action {
            Action::Crash { node } => {
                let m = &mut self.members[node - 1];
                m.node = None;
                m.incarnation += 1;
                m.outcomes.clear();
                let lost = m.disk.lose();
                format!(
                    "n{node} loses power: {lost} write(s) in progress are lost. Its disk keeps \
                     its votes, promises and accepted values.{}",
                    match (node - 1 == COORDINATOR, self.two_phase) {
                        (true, false) => {
                            " The transaction manager is gone: in two-phase commit everyone \
                             would now wait for it. Here the acceptors hold every vote."
                        }
                        (true, true) => {
                            " The coordinator is gone, and with it the only copy of the votes: \
                             every RM that voted Prepared must wait for it to come back."
                        }
                        _ => "",
                    }
                )
            }
            Action::Restart { node } => {
                let i = node - 1;
                let m = &mut self.members[i];
                m.node = Some(CommitNode::recover(
                    NodeId(*node as u64),
                    roles(i, self.two_phase),
                    self.config.clone(),
                    self.options.clone(),
                    &m.durable,
                    self.bugs,
                ));
                let incarnation = m.incarnation;
                self.net.restart_ticks(i, incarnation);
                self.drive(i, step);
                format!("n{node} restarts from its disk.")
            }
            Action::Propose { value, node, .. } => {
                let k = node.unwrap_or(FIRST_RM + 1);
                let i = k - 1;
                if i < FIRST_RM {
                    return Err(format!(
                        "n{k} is a leader, not a resource manager (n{} and up are).",
                        FIRST_RM + 1
                    ));
                }
                if ["abort", "aborted", "no"].contains(&value.to_lowercase().as_str()) {
                    self.refuse.insert(i);
                    return Ok(format!(
                        "n{k} will vote Aborted when asked to prepare: an RM may refuse, and one \
                         refusal aborts the transaction."
                    ));
                }
                if self.ops.len() as u64 >= TXNS_MAX {
                    return Err(format!(
                        "this session began {TXNS_MAX} transactions already."
                    ));
                }
                let txn = TxnId(self.ops.len() as u64 + 1);
                let rms = self.rms();
                let Some(p) = self.members[i].node.as_mut() else {
                    return Err(format!("n{k} is down."));
                };
                p.begin(txn, rms.clone())
                    .map_err(|e| format!("n{k} refuses: {e}."))?;
                let names: Vec<String> = rms.iter().map(|r| r.to_string()).collect();
                self.ops.push((
                    txn,
                    i,
                    OpView {
                        client: name(i),
                        input: format!("commit {txn} ('{value}') over {}", and_list(&names)),
                        output: None,
                    },
                ));
                self.drive(i, step);
                let how = if self.two_phase {
                    "In two-phase commit every vote goes to n1 alone, which decides: the outcome \
                     rests on one node."
                        .to_string()
                } else {
                    format!(
                        "Each RM's vote will be decided by its own Paxos instance on the {} \
                         acceptors, so that no single node's crash can leave the outcome unknown.",
                        self.n
                    )
                };
                format!(
                    "n{k} begins {txn} over {}: it asks the transaction manager n1 to commit. \
                     {how}",
                    and_list(&names)
                )
            }
            Action::Timer { node } => {
                let i = node - 1;
                if i >= FIRST_RM || (self.two_phase && i != COORDINATOR) {
                    return Err(format!("n{node} is not a leader."));
                }
                let rms = self.rms();
                let open: Vec<TxnId> = self
                    .ops
                    .iter()
                    .map(|(t, _, _)| *t)
                    .filter(|t| !self.members[i].outcomes.contains_key(t))
                    .collect();
                let Some(p) = self.members[i].node.as_mut() else {
                    return Err(format!("n{node} is down."));
                };
                if open.is_empty() {
                    return Err(format!("n{node} knows of no undecided transaction."));
                }
                for txn in &open {
                    p.take_over(*txn, rms.clone())
                        .map_err(|e| format!("n{node} refuses: {e}."))?;
                }
                self.drive(i, step);
                let names: Vec<String> = open.iter().map(ToString::to_string).collect();
                format!(
                    "n{node}'s takeover timer fires (by hand): it takes over {} with phase 1 at \
                     a higher ballot, for every instance at once.",
                    and_list(&names)
                )
            }
            Action::Read { .. } => return Err("Paxos Commit has no reads.".to_string()),
            Action::Reconfigure { .. } => {
                return Err("this Paxos Commit mode has fixed acceptors.".to_string())
            }
            // The harness answers the rest.
            _ => return Err(harness::ANSWERED.to_string()),
        })
    }

    fn finish(&mut self, step: usize) {
        self.check(step);
        for (txn, i, op) in &mut self.ops {
            if op.output.is_none() {
                if let Some(o) = self.members[*i].outcomes.get(txn) {
                    op.output = Some(outcome_text(*o).to_string());
                }
            }
        }
    }
}

fn kind(m: &CommitMessage) -> &'static str {
    match m {
        CommitMessage::Begin { .. } => "begin",
        CommitMessage::Prepare { .. } => "prepare",
        CommitMessage::Phase2a { .. } => "2a",
        CommitMessage::Phase2b { .. } => "2b",
        CommitMessage::Phase1a { .. } => "1a",
        CommitMessage::Phase1b { .. } => "1b",
        CommitMessage::Nack { .. } => "nack",
        CommitMessage::Query { .. } => "query",
        CommitMessage::Outcome { .. } => "outcome",
        CommitMessage::Decided { .. } => "decided",
        CommitMessage::Settled { .. } => "settled",
        CommitMessage::OutcomeAck { .. } => "outcome-ack",
    }
}

fn label(m: &CommitMessage) -> String {
    match m {
        CommitMessage::Begin { txn, .. } => format!("Begin {txn}"),
        CommitMessage::Prepare { txn, .. } => format!("Prepare {txn}"),
        CommitMessage::Phase2a {
            txn,
            instance,
            ballot,
            vote,
            ..
        } => format!("2a {txn}#{} {} at {ballot}", instance + 1, vote_text(*vote)),
        CommitMessage::Phase2b {
            txn,
            instance,
            ballot,
            vote,
            ..
        } => format!("2b {txn}#{} {} at {ballot}", instance + 1, vote_text(*vote)),
        CommitMessage::Phase1a { txn, ballot, .. } => format!("1a {txn} {ballot}"),
        CommitMessage::Phase1b { txn, ballot, .. } => format!("1b {txn} {ballot}"),
        CommitMessage::Nack { txn, promised, .. } => format!("Nack {txn} (promised {promised})"),
        CommitMessage::Query { txn, .. } => format!("Query {txn}"),
        CommitMessage::Outcome { txn, outcome } => format!("{txn} {}", outcome_text(*outcome)),
        CommitMessage::Decided { txn, outcome, .. } => {
            format!("Decided {txn} {}", outcome_text(*outcome))
        }
        CommitMessage::Settled { txn } => format!("Settled {txn}"),
        CommitMessage::OutcomeAck { txn } => format!("Ack {txn}"),
    }
}

fn persist_text(op: &CommitPersist) -> String {
    match op {
        CommitPersist::RmVoted { txn, vote, .. } => {
            format!("its vote {} on {txn}", vote_text(*vote))
        }
        CommitPersist::RmLearned { txn, outcome } => {
            format!("the outcome of {txn} ({})", outcome_text(*outcome))
        }
        CommitPersist::Promised { txn, ballot, .. } => format!("its promise of {ballot} for {txn}"),
        CommitPersist::Accepted {
            txn,
            instance,
            ballot,
            vote,
            ..
        } => format!(
            "its acceptance of {} in instance {} of {txn} at {ballot}",
            vote_text(*vote),
            instance + 1
        ),
        CommitPersist::LeaderRound(r) => format!("its leader round {r}"),
        CommitPersist::LeaderDecided { txn, outcome, .. } => {
            format!("its decision on {txn} ({})", outcome_text(*outcome))
        }
        CommitPersist::LeaderForgot { txn } => format!("that {txn} is settled"),
    }
}
