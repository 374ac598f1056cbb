//! The EPaxos world: real [`Replica`]s from `paxos::epaxos`, in a small deterministic harness
//! (virtual time, one seeded generator, a network). Every replica leads the commands proposed
//! at it; the learner sends `put key=value` to a replica of their choice and orders the
//! PreAccepts by hand to make two replicas' commands conflict.
//!
//! EPaxos hands back the records to persist with the messages that depend on them and no
//! sequence to report back, so this driver makes each `ready()`'s records durable before its
//! messages leave, at once (there is no disk write in progress to finish by hand).
//!
//! The explorer's own checks: replicas that committed an instance agree on its command and
//! attributes, and every replica executes interfering commands (same key) in the same order.

use crate::harness::{self, Harness};
use crate::journal::Journal;
use crate::model::{Action, NodeView, OpView, SlotView, Spec, View};
use crate::net::Net;
use crate::synod::{name, paren, sends_text};
use paxos::epaxos::{
    Attrs, Command, CommandId, EpaxosMessage, EpaxosOptions, InstanceId, InstanceRecord, KvOp,
    Replica, Status,
};
use paxos::{NodeId, PlantedBugs};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// Clients an EPaxos session offers; each may send to any replica.
pub const CLIENTS: usize = 2;

type Flying = crate::net::Flying<EpaxosMessage>;

struct Member {
    replica: Option<Replica>,
    /// Its durable records, by instance (what a restart rebuilds from).
    disk: BTreeMap<InstanceId, InstanceRecord>,
    incarnation: u64,
    rng: ChaCha8Rng,
    /// Commands executed in this incarnation, in order (a restart executes again from the
    /// start, as the core's contract says).
    executed: Vec<(InstanceId, Command)>,
}

/// An EPaxos session's world.
pub struct EpaxosWorld {
    n: usize,
    ids: Vec<NodeId>,
    options: EpaxosOptions,
    bugs: PlantedBugs,
    net: Net<EpaxosMessage>,
    members: Vec<Member>,
    journal: Journal,
    ops: Vec<(InstanceId, OpView)>,
    /// Commands sent per client (their sequence numbers).
    sent: [u64; CLIENTS],
    /// Instances in the order they were first committed somewhere: the page's "slots".
    numbers: BTreeMap<InstanceId, u64>,
}

impl EpaxosWorld {
    /// A fresh cluster of `nodes` replicas (2F+1) at step 0.
    pub fn new(spec: &Spec, bugs: PlantedBugs) -> EpaxosWorld {
        let n = spec.nodes;
        let ids: Vec<NodeId> = (1..=n as u64).map(NodeId).collect();
        let options = EpaxosOptions::default();
        let mut net = Net::new(spec.seed);
        let members = (0..n)
            .map(|i| Member {
                replica: Replica::recover(ids[i], ids.clone(), options.clone(), Vec::new(), bugs)
                    .ok(),
                disk: BTreeMap::new(),
                incarnation: 0,
                rng: ChaCha8Rng::seed_from_u64(net.rng.next_u64()),
                executed: Vec::new(),
            })
            .collect();
        net.start_ticks(n);
        EpaxosWorld {
            n,
            ids,
            options,
            bugs,
            net,
            members,
            journal: Journal::default(),
            ops: Vec::new(),
            sent: [0; CLIENTS],
            numbers: BTreeMap::new(),
        }
    }

    fn send(&mut self, from: usize, to: usize, msg: EpaxosMessage, step: usize) {
        let k = msg.kind();
        self.net
            .send(&mut self.journal, from, &name(from), to, msg, k, step);
    }

    /// Carries out replica `i`'s outputs in the core's order: records durable, then messages,
    /// then execution. Returns whether there were any.
    fn drive(&mut self, i: usize, step: usize) -> bool {
        let Some(r) = self.members[i].replica.as_mut() else {
            return false;
        };
        let ready = r.ready();
        let any = !ready.persist.is_empty() || !ready.send.is_empty() || !ready.executed.is_empty();
        let m = &mut self.members[i];
        for rec in ready.persist {
            m.disk.insert(rec.instance, rec);
        }
        m.executed.extend(ready.executed);
        for out in ready.send {
            let to = (out.to.0 as usize).wrapping_sub(1);
            if to < self.n {
                self.send(i, to, out.msg, step);
            }
        }
        any
    }

    /// Applies one unit of `action` as step `step`.
    pub fn apply(&mut self, action: &Action, step: usize) {
        harness::apply(self, action, step);
    }

    /// Records the unit's sentence, then checks and marks answered operations.
    fn settle(&mut self, step: usize) {
        self.check(step);
        for (instance, op) in &mut self.ops {
            if op.output.is_none()
                && self
                    .members
                    .iter()
                    .any(|m| m.executed.iter().any(|(i, _)| i == instance))
            {
                op.output = Some("ok".to_string());
            }
        }
    }

    /// Commits seen for the first time become "chosen" lines; two replicas that committed
    /// one instance differently, or executed interfering commands in different orders, are
    /// violations.
    fn check(&mut self, step: usize) {
        let mut committed: BTreeMap<InstanceId, (Command, Attrs)> = BTreeMap::new();
        for m in &self.members {
            for rec in m.disk.values() {
                if rec.status != Status::Committed || rec.vballot.is_none() {
                    continue;
                }
                let number = self.numbers.len() as u64 + 1;
                let number = *self.numbers.entry(rec.instance).or_insert(number);
                let value = format!(
                    "{}: {} with {}",
                    rec.instance,
                    command_text(&rec.command),
                    attrs_text(&rec.attrs)
                );
                if let Some(said) = self.journal.quorum(
                    number,
                    &value,
                    &rec.vballot
                        .map_or_else(String::new, |b| format!("{}.{}", b.round, b.node.0)),
                    step,
                ) {
                    self.journal.say(step, self.net.now, said);
                }
                committed
                    .entry(rec.instance)
                    .or_insert_with(|| (rec.command.clone(), rec.attrs.clone()));
            }
        }
        // Same order of interfering commands: per key, each replica's order is a prefix of
        // the longest one.
        let mut by_key: BTreeMap<String, Vec<(usize, Vec<InstanceId>)>> = BTreeMap::new();
        for (i, m) in self.members.iter().enumerate() {
            let mut orders: BTreeMap<String, Vec<InstanceId>> = BTreeMap::new();
            for (instance, c) in &m.executed {
                if let Some(k) = c.key() {
                    orders.entry(k.to_string()).or_default().push(*instance);
                }
            }
            for (k, order) in orders {
                by_key.entry(k).or_default().push((i, order));
            }
        }
        for (key, orders) in by_key {
            for (a, oa) in &orders {
                for (b, ob) in &orders {
                    let common = oa.len().min(ob.len());
                    if a < b && oa[..common] != ob[..common] {
                        let list = |o: &[InstanceId]| {
                            o.iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        let detail = format!(
                            "key {key}: n{} executed {} but n{} executed {}",
                            a + 1,
                            list(oa),
                            b + 1,
                            list(ob)
                        );
                        self.journal.violate("execution order", detail, step);
                    }
                }
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
                if let Some(r) = &m.replica {
                    let c = r.counters();
                    notes.push(format!(
                        "fast path: {}, slow path: {}",
                        c.fast_commits, c.slow_commits
                    ));
                    if c.recoveries > 0 {
                        notes.push(format!("recoveries: {}", c.recoveries));
                    }
                }
                if !m.executed.is_empty() {
                    let order: Vec<String> = m
                        .executed
                        .iter()
                        .map(|(x, c)| format!("{x} {}", command_text(c)))
                        .collect();
                    notes.push(format!("executed: {}", order.join(", ")));
                }
                let records: Vec<&InstanceRecord> = match &m.replica {
                    Some(r) => r.instances().collect(),
                    None => m.disk.values().collect(),
                };
                NodeView {
                    name: name(i),
                    up: m.replica.is_some(),
                    role: if m.replica.is_some() {
                        "replica"
                    } else {
                        "down"
                    }
                    .to_string(),
                    promised: "—".to_string(),
                    ballot: "—".to_string(),
                    leader: None,
                    chosen_through: records
                        .iter()
                        .filter(|x| x.status == Status::Committed)
                        .count() as u64,
                    slots: records
                        .iter()
                        .filter(|x| x.vballot.is_some())
                        .map(|x| SlotView {
                            slot: self.numbers.get(&x.instance).copied().unwrap_or(0),
                            ballot: status_text(x.status).to_string(),
                            value: format!(
                                "{}: {} with {}",
                                x.instance,
                                command_text(&x.command),
                                attrs_text(&x.attrs)
                            ),
                            known_chosen: x.status == Status::Committed,
                        })
                        .collect(),
                    notes,
                }
            })
            .collect();
        let in_flight = harness::message_views(&self.net, name, EpaxosMessage::kind, label);
        let known_by = |slot: u64| {
            let Some((instance, _)) = self.numbers.iter().find(|(_, n)| **n == slot) else {
                return Vec::new();
            };
            self.members
                .iter()
                .enumerate()
                .filter(|(_, m)| {
                    m.replica.as_ref().is_some_and(|r| {
                        r.record(*instance)
                            .is_some_and(|x| x.status == Status::Committed)
                    })
                })
                .map(|(i, _)| name(i))
                .collect()
        };
        harness::view(
            spec,
            step,
            total,
            &self.net,
            &self.journal,
            harness::Shown {
                nodes,
                clients: (1..=CLIENTS).map(|c| format!("c{c}")).collect(),
                in_flight,
                chosen: self.journal.chosen_views(known_by),
                ops: self.ops.iter().map(|(_, o)| o.clone()).collect(),
            },
        )
    }
}

impl Harness for EpaxosWorld {
    harness::plumbing!(EpaxosMessage);
    const DISKS: bool = false;

    fn describe(m: &Flying) -> (String, &'static str, String) {
        (label(&m.msg), m.msg.kind(), name(m.from))
    }

    fn up(&self, i: usize) -> bool {
        self.members[i].replica.is_some()
    }

    fn incarnation(&self, i: usize) -> u64 {
        self.members[i].incarnation
    }

    fn busy(&self) -> bool {
        // An instance some running replica has not seen committed.
        self.members.iter().any(|m| {
            m.replica
                .as_ref()
                .is_some_and(|r| r.instances().any(|x| x.status != Status::Committed))
        })
    }

    fn tick(&mut self, node: usize, step: usize) -> Option<String> {
        let m = &mut self.members[node];
        let r = m.replica.as_mut()?;
        let before = r.counters().recoveries;
        r.tick(&mut m.rng);
        let after = r.counters().recoveries;
        let sent_before = self.net.next_id;
        if !self.drive(node, step) {
            return None;
        }
        let sends = sends_text(&self.journal, sent_before);
        Some(if after > before {
            format!(
                "n{}'s recovery timer fires: an instance it knows has waited too long to be \
                 committed, so it takes it over with explicit prepare{}.",
                node + 1,
                paren(&sends)
            )
        } else {
            format!(
                "n{}'s retry timer fires: it resends what is unanswered{}.",
                node + 1,
                paren(&sends)
            )
        })
    }

    /// Message `m` reaches its receiver (up, over a working link), which steps its core with
    /// it.
    fn deliver(&mut self, m: Flying, step: usize) -> String {
        let (from, to) = (name(m.from), name(m.to));
        let lbl = label(&m.msg);
        let i = m.to;
        let instance = m.msg.instance();
        let before = self.members[i].replica.as_ref().map(|r| {
            (
                r.record(instance).cloned(),
                r.counters().clone(),
                self.members[i].executed.len(),
            )
        });
        let sent_before = self.net.next_id;
        if let Some(r) = self.members[i].replica.as_mut() {
            r.step(NodeId(m.from as u64 + 1), m.msg.clone());
        }
        self.drive(i, step);
        let sends = sends_text(&self.journal, sent_before);
        let Some((rec_before, c_before, executed_before)) = before else {
            return format!("{to} receives {lbl}.");
        };
        let Some(r) = self.members[i].replica.as_ref() else {
            return format!("{to} receives {lbl}.");
        };
        let rec = r.record(instance);
        let c = r.counters();
        let mut said =
            match &m.msg {
                EpaxosMessage::PreAccept { attrs, .. } => match rec {
                    Some(x) if x.unchanged => format!(
                        "{to} pre-accepts {instance} with the leader's {}: it knows no other \
                     interfering command, so it agrees unchanged{}.",
                        attrs_text(attrs),
                        paren(&sends)
                    ),
                    Some(x) => format!(
                    "{to} pre-accepts {instance}, but it knows interfering commands the leader \
                     did not: it answers {} instead of {}{}.",
                    attrs_text(&x.attrs),
                    attrs_text(attrs),
                    paren(&sends)
                ),
                    None => format!("{to} does not pre-accept {instance}{}.", paren(&sends)),
                },
                EpaxosMessage::PreAcceptOk {
                    attrs, unchanged, ..
                } => {
                    if c.fast_commits > c_before.fast_commits {
                        format!(
                        "{to} has a fast quorum agreeing unchanged on {instance}'s attributes: \
                         the fast path. {instance} is committed after one round trip{}.",
                        paren(&sends)
                    )
                    } else if self
                        .journal
                        .lines
                        .range(sent_before..)
                        .any(|(_, l)| l.kind == "accept")
                    {
                        format!(
                        "{to} gets {from}'s answer for {instance} ({}{}): the answers differ, so \
                         the fast path is lost. The slow path: {to} takes the union of the \
                         dependencies and the highest seq, and runs a Paxos Accept round on a \
                         majority{}.",
                        attrs_text(attrs),
                        if *unchanged { ", unchanged" } else { ", changed" },
                        paren(&sends)
                    )
                    } else {
                        format!(
                            "{to} counts {from}'s answer for {instance} ({}){}.",
                            attrs_text(attrs),
                            paren(&sends)
                        )
                    }
                }
                EpaxosMessage::Accept { .. } => format!(
                    "{to} accepts {instance}'s command and attributes{}.",
                    paren(&sends)
                ),
                EpaxosMessage::AcceptOk { .. } => {
                    if c.slow_commits > c_before.slow_commits {
                        format!(
                            "{to} has a majority of Accepts for {instance}: committed on the slow \
                         path, after two round trips{}.",
                            paren(&sends)
                        )
                    } else {
                        format!("{to} counts {from}'s AcceptOk for {instance}.")
                    }
                }
                EpaxosMessage::Commit { attrs, .. } => {
                    let was = rec_before.is_some_and(|x| x.status == Status::Committed);
                    if was {
                        format!("{to} already knew {instance} committed.")
                    } else {
                        format!(
                            "{to} learns {instance} is committed with {}.",
                            attrs_text(attrs)
                        )
                    }
                }
                EpaxosMessage::Prepare { .. } => format!(
                    "{to} answers {from}'s explicit prepare for {instance} with what it holds{}.",
                    paren(&sends)
                ),
                EpaxosMessage::PrepareOk { .. } => {
                    format!(
                        "{to} counts {from}'s promise for {instance}{}.",
                        paren(&sends)
                    )
                }
                EpaxosMessage::Nack { promised, .. } => format!(
                    "{to} learns {from} promised {}.{} for {instance}: it gives up leading it.",
                    promised.round, promised.node.0
                ),
            };
        let executed = &self.members[i].executed;
        if executed.len() > executed_before {
            let names: Vec<String> = executed[executed_before..]
                .iter()
                .map(|(x, c)| format!("{x} ({})", command_text(c)))
                .collect();
            said.push_str(&format!(
                " {to} executes {}: the dependency graph, with a cycle ordered by seq.",
                crate::journal::and_list(&names)
            ));
        }
        said
    }

    fn own(&mut self, action: &Action, step: usize) -> Result<String, String> {
        Ok(match action {
            Action::Crash { node } => {
                let m = &mut self.members[node - 1];
                m.replica = None;
                m.incarnation += 1;
                m.executed.clear();
                format!(
                    "n{node} loses power. Its disk keeps {} instance record(s).",
                    m.disk.len()
                )
            }
            Action::Restart { node } => {
                let i = node - 1;
                let records: Vec<InstanceRecord> = self.members[i].disk.values().cloned().collect();
                let count = records.len();
                self.members[i].replica = Replica::recover(
                    self.ids[i],
                    self.ids.clone(),
                    self.options.clone(),
                    records,
                    self.bugs,
                )
                .ok();
                let incarnation = self.members[i].incarnation;
                self.net.restart_ticks(i, incarnation);
                self.drive(i, step);
                format!(
                    "n{node} restarts from its {count} record(s) and executes the committed \
                     commands again from the start."
                )
            }
            Action::Propose {
                value,
                node,
                client,
                key,
            } => {
                let (n, c) = (node.unwrap_or(1), client.unwrap_or(1));
                let key = key.clone().unwrap_or_else(|| "x".to_string());
                let Some(r) = self.members[n - 1].replica.as_mut() else {
                    return Err(format!("n{n} is down."));
                };
                let seq = self.sent[c - 1] + 1;
                let command = Command::Kv {
                    id: CommandId {
                        client: c as u64,
                        seq,
                    },
                    op: KvOp::Put {
                        key: key.clone(),
                        value: value.clone(),
                    },
                };
                let instance = match r.propose(command) {
                    Ok(i) => i,
                    Err(e) => return Err(format!("n{n} refuses: {e}.")),
                };
                self.sent[c - 1] = seq;
                let attrs = r
                    .record(instance)
                    .map(|x| x.attrs.clone())
                    .unwrap_or_default();
                self.ops.push((
                    instance,
                    OpView {
                        client: format!("c{c}"),
                        input: format!("put {key}={value} at n{n}"),
                        output: None,
                    },
                ));
                self.drive(n - 1, step);
                format!(
                    "c{c} sends put {key}={value} to n{n}, which leads it as instance {instance}: \
                     it proposes it with {} from what n{n} knows, and sends PreAccept to the \
                     others. No leader is asked: every replica leads its own commands.",
                    attrs_text(&attrs)
                )
            }
            Action::Read { .. } => {
                return Err(
                    "this EPaxos mode sends writes only; a read would be one more command."
                        .to_string(),
                )
            }
            Action::Reconfigure { .. } => {
                return Err("this EPaxos mode has a fixed set of replicas.".to_string())
            }
            Action::Persist { node } => {
                return Err(format!(
                    "n{node} has no disk write in progress: EPaxos records are made durable \
                         before the messages that depend on them leave."
                ))
            }
            Action::Timer { node } => {
                let i = node - 1;
                let Some(r) = self.members[i].replica.as_mut() else {
                    return Err(format!("n{node} is down."));
                };
                let open: Vec<InstanceId> = r
                    .instances()
                    .filter(|x| x.status != Status::Committed)
                    .map(|x| x.instance)
                    .collect();
                if open.is_empty() {
                    return Err(format!("n{node} waits on no instance."));
                }
                for instance in &open {
                    r.take_over(*instance);
                }
                self.drive(i, step);
                let names: Vec<String> = open.iter().map(ToString::to_string).collect();
                format!(
                    "n{node}'s recovery timer fires (by hand): it takes over {} with explicit \
                     prepare at a higher ballot.",
                    crate::journal::and_list(&names)
                )
            }
            // The harness answers the rest.
            _ => return Err(harness::ANSWERED.to_string()),
        })
    }

    fn finish(&mut self, step: usize) {
        self.settle(step);
    }
}

fn status_text(s: Status) -> &'static str {
    match s {
        Status::PreAccepted => "pre-accepted",
        Status::Accepted => "accepted",
        Status::Committed => "committed",
    }
}

fn command_text(c: &Command) -> String {
    match c {
        Command::Noop => "no-op".to_string(),
        Command::Kv { op, .. } => match op {
            KvOp::Put { key, value } => format!("put {key}={value}"),
            KvOp::Get { key } => format!("get {key}"),
            KvOp::Cas { key, new, .. } => format!("cas {key}→{new}"),
        },
    }
}

fn attrs_text(a: &Attrs) -> String {
    let deps: Vec<String> = a.deps.iter().map(ToString::to_string).collect();
    format!("seq {} deps {{{}}}", a.seq, deps.join(", "))
}

fn label(m: &EpaxosMessage) -> String {
    match m {
        EpaxosMessage::PreAccept {
            instance,
            attrs,
            command,
            ..
        } => format!(
            "PreAccept {instance} {} {}",
            command_text(command),
            attrs_text(attrs)
        ),
        EpaxosMessage::PreAcceptOk {
            instance,
            attrs,
            unchanged,
            ..
        } => format!(
            "PreAcceptOk {instance} {}{}",
            attrs_text(attrs),
            if *unchanged { " unchanged" } else { " changed" }
        ),
        EpaxosMessage::Accept {
            instance, attrs, ..
        } => {
            format!("Accept {instance} {}", attrs_text(attrs))
        }
        EpaxosMessage::AcceptOk { instance, .. } => format!("AcceptOk {instance}"),
        EpaxosMessage::Commit {
            instance, attrs, ..
        } => {
            format!("Commit {instance} {}", attrs_text(attrs))
        }
        EpaxosMessage::Prepare { instance, ballot } => {
            format!("Prepare {instance} at {}.{}", ballot.round, ballot.node.0)
        }
        EpaxosMessage::PrepareOk { instance, .. } => format!("PrepareOk {instance}"),
        EpaxosMessage::Nack { instance, promised } => format!(
            "Nack {instance} (promised {}.{})",
            promised.round, promised.node.0
        ),
    }
}
