//! The Disk Paxos world: real [`DiskProcessor`]s from `paxos::disk` (Gafni and Lamport)
//! sharing [`DISKS`] disks, in the explorer's own harness. Processors send no messages to one
//! another; every arrow on the page is a disk request (`write`, `read`) or its answer, so the
//! learner can deliver, drop or delay each one, cut a processor off a disk, fail a disk while
//! a write to it is under way, and crash a processor (it keeps nothing: it recovers from the
//! disks).
//!
//! A disk holds one block per processor and serves one processor's requests in the order they
//! were issued, as the core's `DiskIo` contract asks (delivering a request by hand first
//! performs the same processor's earlier requests to that disk). A disk that fails while a
//! write to it is in flight tears that block: reading it fails (a checksum error) until its
//! owner writes it again, which is what the real `storage::disk_paxos` blocks do.
//!
//! The explorer's own checks: a value is chosen once one processor's vote at one ballot is on
//! a majority of disks (two values chosen is an agreement violation), and every value a
//! processor decides must be the chosen one.

use crate::harness::{self, Harness};
use crate::journal::{and_list, ballot_text, Journal};
use crate::model::{Action, NodeView, OpView, SlotView, Spec, View};
use crate::net::Net;
use crate::synod::{paren, sends_text};
use paxos::disk::{
    Completion, DiskBlock, DiskConfig, DiskId, DiskIo, DiskPaxosOptions, DiskProcessor, Stage,
};
use paxos::{Ballot, NodeId, PlantedBugs};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};

/// Disks every Disk Paxos session has (`d1`..`d3`): a majority is two, so one may fail.
pub const DISKS: usize = 3;

/// What travels between a processor and a disk.
#[derive(Clone, Debug)]
pub enum DiskMsg {
    /// A processor's request to a disk.
    Request(DiskIo),
    /// The disk's answer.
    Answer(Completion),
}

type Flying = crate::net::Flying<DiskMsg>;

struct Processor {
    core: Option<DiskProcessor>,
    incarnation: u64,
    rng: ChaCha8Rng,
    /// What this incarnation decided.
    decided: Option<String>,
}

struct Disk {
    up: bool,
    /// One block per processor, by processor index.
    blocks: Vec<DiskBlock>,
    /// Processors whose block is torn (the disk failed while writing it).
    torn: BTreeSet<usize>,
}

/// A Disk Paxos session's world.
pub struct DiskWorld {
    /// Network endpoints: processors, then disks.
    n: usize,
    processors: usize,
    config: DiskConfig,
    bugs: PlantedBugs,
    net: Net<DiskMsg>,
    journal: Journal,
    procs: Vec<Processor>,
    disks: Vec<Disk>,
    /// Inputs given, with the processor that got each.
    ops: Vec<(usize, OpView)>,
    /// Every decision made, by processor index, across crashes.
    decisions: Vec<(usize, String)>,
    extra: Vec<String>,
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

fn pname(i: usize) -> String {
    format!("n{}", i + 1)
}

fn dname(d: DiskId) -> String {
    format!("d{}", d.0 + 1)
}

fn vote_text(b: &DiskBlock) -> String {
    match &b.inp {
        Some(v) if b.bal.is_real() => format!("'{}' at {}", text(v), b.bal),
        _ => "none".to_string(),
    }
}

fn block_text(b: &DiskBlock) -> String {
    format!("mbal {}, vote {}", ballot_text(b.mbal), vote_text(b))
}

fn stage_text(s: Stage) -> &'static str {
    match s {
        Stage::Recovering => "recovering",
        Stage::Idle => "idle",
        Stage::Phase1 => "phase 1",
        Stage::Phase2 => "phase 2",
        Stage::Decided => "decided",
    }
}

fn names(of: &[NodeId]) -> String {
    let v: Vec<String> = of.iter().map(|q| q.to_string()).collect();
    and_list(&v)
}

impl DiskWorld {
    /// `spec.nodes` processors and [`DISKS`] empty disks at step 0; nobody has an input yet.
    pub fn new(spec: &Spec, bugs: PlantedBugs) -> DiskWorld {
        let processors = spec.nodes;
        let config = DiskConfig::new(processors, DISKS).expect("3 to 7 processors, 3 disks");
        let mut net = Net::new(spec.seed);
        net.first_disk = Some(processors);
        let procs = (0..processors)
            .map(|i| Processor {
                core: Some(Self::boot(config, i, bugs)),
                incarnation: 0,
                rng: ChaCha8Rng::seed_from_u64(net.rng.next_u64()),
                decided: None,
            })
            .collect();
        let disks = (0..DISKS)
            .map(|_| Disk {
                up: true,
                blocks: vec![DiskBlock::INITIAL; processors],
                torn: BTreeSet::new(),
            })
            .collect();
        net.start_ticks(processors);
        let mut w = DiskWorld {
            n: processors + DISKS,
            processors,
            config,
            bugs,
            net,
            journal: Journal::default(),
            procs,
            disks,
            ops: Vec::new(),
            decisions: Vec::new(),
            extra: Vec::new(),
        };
        // Each processor starts by reading its own block back (phase 0): the requests leave
        // at time 0, before the first step.
        for i in 0..processors {
            w.drive(i, 0);
        }
        w
    }

    fn boot(config: DiskConfig, i: usize, bugs: PlantedBugs) -> DiskProcessor {
        DiskProcessor::new(
            NodeId(i as u64 + 1),
            config,
            DiskPaxosOptions::default(),
            bugs,
        )
        .expect("processor ids are 1..=processors")
    }

    /// Applies one unit of `action` as step `step`.
    pub fn apply(&mut self, action: &Action, step: usize) {
        harness::apply(self, action, step);
    }

    /// Issues processor `i`'s requests and reports its decision. Returns whether there was
    /// anything.
    fn drive(&mut self, i: usize, step: usize) -> bool {
        let Some(p) = self.procs[i].core.as_mut() else {
            return false;
        };
        let ready = p.ready();
        let any = !ready.io.is_empty() || ready.decided.is_some();
        for io in ready.io {
            let to = self.processors + usize::from(io.disk().0);
            let k = request_kind(&io);
            self.net.send(
                &mut self.journal,
                i,
                &pname(i),
                to,
                DiskMsg::Request(io),
                k,
                step,
            );
        }
        if let Some(v) = ready.decided {
            let v = text(&v);
            self.extra.push(format!("{} decides '{v}'.", pname(i)));
            self.procs[i].decided = Some(v.clone());
            self.decisions.push((i, v));
        }
        any
    }

    /// Disk `d` carries out processor `from`'s request; returns the sentence and the answer.
    fn perform(&mut self, from: usize, io: DiskIo) -> (String, Completion) {
        let d = io.disk();
        let disk = &mut self.disks[usize::from(d.0)];
        match io {
            DiskIo::Write {
                disk: id,
                tag,
                block,
            } => {
                let said = format!(
                    "{} stores {}'s block ({}) and answers that it is durable.",
                    dname(id),
                    pname(from),
                    block_text(&block)
                );
                if let Some(slot) = disk.blocks.get_mut(from) {
                    *slot = block;
                    disk.torn.remove(&from);
                }
                (said, Completion::Written { disk: id, tag })
            }
            DiskIo::Read { disk: id, tag, of } => {
                let index = |q: &NodeId| self.config.index_of(*q);
                let torn = of.iter().filter_map(index).find(|q| disk.torn.contains(q));
                if let Some(q) = torn {
                    let said = format!(
                        "{} cannot return {}'s block: it was torn when the disk failed \
                         mid-write, and its checksum fails. The whole read fails: damage costs \
                         a read, never a vote.",
                        dname(id),
                        pname(q)
                    );
                    return (said, Completion::Failed { disk: id, tag });
                }
                let blocks: Vec<(NodeId, DiskBlock)> = of
                    .iter()
                    .filter_map(|q| index(q).map(|i| (*q, disk.blocks[i].clone())))
                    .collect();
                let shown: Vec<String> = blocks
                    .iter()
                    .map(|(q, b)| format!("{q}: {}", block_text(b)))
                    .collect();
                let said = format!(
                    "{} returns the blocks of {} to {} ({}).",
                    dname(id),
                    names(&of),
                    pname(from),
                    shown.join("; ")
                );
                (
                    said,
                    Completion::Read {
                        disk: id,
                        tag,
                        blocks,
                    },
                )
            }
        }
    }

    /// A request reaches its disk: the same processor's earlier requests to that disk first
    /// (one queue per processor and disk), then this one; each answer goes back.
    fn serve(&mut self, m: Flying, step: usize) -> String {
        let earlier: Vec<u64> = self
            .net
            .in_flight
            .range(..m.id)
            .filter(|(_, f)| {
                f.from == m.from && f.to == m.to && matches!(f.msg, DiskMsg::Request(_))
            })
            .map(|(id, _)| *id)
            .collect();
        let mut said = Vec::new();
        if !earlier.is_empty() {
            said.push(format!(
                "{} serves {}'s requests in the order they were issued, so its {} earlier \
                 one(s) go first.",
                self.net.endpoint(m.to),
                pname(m.from),
                earlier.len()
            ));
        }
        let mut queue = Vec::new();
        for id in earlier {
            if let Some(f) = self.net.in_flight.remove(&id) {
                self.journal.ended(id, step, true);
                queue.push(f);
            }
        }
        queue.push(m);
        for f in queue {
            let DiskMsg::Request(io) = f.msg else {
                continue;
            };
            let (text, answer) = self.perform(f.from, io);
            said.push(text);
            let k = answer_kind(&answer);
            let from = self.net.endpoint(f.to);
            self.net.send(
                &mut self.journal,
                f.to,
                &from,
                f.from,
                DiskMsg::Answer(answer),
                k,
                step,
            );
        }
        said.join(" ")
    }

    /// An answer reaches its processor, which is up.
    fn answered(&mut self, i: usize, c: Completion, step: usize) -> String {
        let who = pname(i);
        let (disk, what) = match &c {
            Completion::Written { disk, .. } => (*disk, "its write is durable"),
            Completion::Read { disk, .. } => (*disk, "the blocks it read"),
            Completion::Failed { disk, .. } => (*disk, "that the request failed"),
        };
        let Some(p) = self.procs[i].core.as_mut() else {
            return format!("{who} is down.");
        };
        let before = (p.stage(), p.block().mbal, p.counters());
        p.completed(c.clone());
        let after = (p.stage(), p.block().clone(), p.counters());
        let sent_before = self.net.next_id;
        self.drive(i, step);
        let sends = paren(&sends_text(&self.journal, sent_before));
        let head = format!("{who} hears from {} {what}.", dname(disk));
        let (stage, block, counters) = after;
        let tail = if counters.ignored > before.2.ignored {
            format!(
                " It belongs to a phase that is over (or was counted already): {who} ignores it."
            )
        } else if counters.aborts > before.2.aborts {
            format!(
                " A block there has an mbal above {who}'s ballot {}: another processor started \
                 a higher ballot, so {who} aborts and will retry later with a higher one.",
                before.1
            )
        } else {
            match (before.0, stage) {
                (Stage::Recovering, Stage::Idle) => format!(
                    " {who} has read its own block back from a majority of disks: it is \
                     recovered ({}), and its next ballot will be above every mbal it read.",
                    block_text(&block)
                ),
                (Stage::Phase1, Stage::Phase2) => format!(
                    " That is a majority of disks written and then read: phase 1 of ballot {} \
                     is over. {who} takes the value of the highest vote it read, or its own \
                     input if it read none, and phase 2 writes it as its vote ({}) to every \
                     disk{sends}.",
                    block.mbal,
                    vote_text(&block)
                ),
                (Stage::Phase2, Stage::Decided) => " Phase 2 is done on a majority of disks: any \
                                                    later ballot's phase 1 reads this vote on at \
                                                    least one of them."
                    .to_string(),
                (Stage::Phase1 | Stage::Phase2, Stage::Idle) => format!(
                    " Too many disks failed for a majority in this phase: {who} gives up ballot \
                     {} and will retry.",
                    before.1
                ),
                _ if matches!(c, Completion::Written { .. }) => format!(
                    " Only now, with its block on {}, does it read the others' blocks there: of \
                     two processors doing this on one disk, the later reader sees the earlier \
                     writer{sends}.",
                    dname(disk)
                ),
                _ if matches!(c, Completion::Read { .. })
                    && matches!(stage, Stage::Phase1 | Stage::Phase2 | Stage::Recovering) =>
                {
                    format!(
                        " {who} counts {} toward the majority of disks this phase needs{sends}.",
                        dname(disk)
                    )
                }
                _ => sends,
            }
        };
        format!("{head}{tail}")
    }

    /// A value is chosen once one processor's vote at one ballot is on a majority of disks;
    /// every decision must be the chosen value.
    fn check(&mut self, step: usize) {
        let majority = DISKS / 2 + 1;
        let mut holders: BTreeMap<(usize, Ballot, String), usize> = BTreeMap::new();
        for disk in &self.disks {
            for (q, b) in disk.blocks.iter().enumerate() {
                if disk.torn.contains(&q) || !b.bal.is_real() {
                    continue;
                }
                if let Some(v) = &b.inp {
                    *holders.entry((q, b.bal, text(v))).or_insert(0) += 1;
                }
            }
        }
        for ((q, bal, v), count) in holders {
            if count < majority {
                continue;
            }
            let value = format!("'{v}'");
            if let Some(said) = self.journal.quorum(1, &value, &bal.to_string(), step) {
                self.journal.say(
                    step,
                    self.net.now,
                    format!(
                        "{said} (Here a quorum is a majority of disks holding {}'s vote.)",
                        pname(q)
                    ),
                );
            }
        }
        let decided = self.decisions.iter().map(|(i, v)| (*i, format!("'{v}'")));
        self.journal
            .check_learned(step, decided.collect::<Vec<_>>());
    }

    /// The view of this step.
    pub fn view(&self, spec: &Spec, step: usize, total: usize) -> View {
        let mut nodes: Vec<NodeView> = self
            .procs
            .iter()
            .enumerate()
            .map(|(i, pr)| {
                let mut notes = Vec::new();
                let (role, promised, ballot, slots) = match &pr.core {
                    None => ("down", "none".to_string(), "none".to_string(), Vec::new()),
                    Some(p) => {
                        let b = p.block();
                        let active = matches!(p.stage(), Stage::Phase1 | Stage::Phase2);
                        if let Some(v) = p.input() {
                            notes.push(format!("input '{}'", text(v)));
                        }
                        if let Some(v) = &pr.decided {
                            notes.push(format!("decided '{v}'"));
                        }
                        let slots = match &b.inp {
                            Some(v) if b.bal.is_real() => vec![SlotView {
                                slot: 1,
                                ballot: b.bal.to_string(),
                                value: format!("'{}'", text(v)),
                                known_chosen: pr.decided.is_some(),
                            }],
                            _ => Vec::new(),
                        };
                        (
                            stage_text(p.stage()),
                            ballot_text(b.mbal),
                            if active {
                                b.mbal.to_string()
                            } else {
                                "none".to_string()
                            },
                            slots,
                        )
                    }
                };
                NodeView {
                    name: pname(i),
                    up: pr.core.is_some(),
                    role: role.to_string(),
                    promised,
                    ballot,
                    leader: None,
                    chosen_through: u64::from(pr.decided.is_some()),
                    slots,
                    notes,
                }
            })
            .collect();
        for (d, disk) in self.disks.iter().enumerate() {
            let mut notes = Vec::new();
            let mut slots = Vec::new();
            for (q, b) in disk.blocks.iter().enumerate() {
                if disk.torn.contains(&q) {
                    notes.push(format!("{}'s block: torn (its checksum fails)", pname(q)));
                    continue;
                }
                notes.push(format!("{}'s block: {}", pname(q), block_text(b)));
                if let Some(v) = b.inp.as_ref().filter(|_| b.bal.is_real()) {
                    slots.push(SlotView {
                        slot: q as u64 + 1,
                        ballot: b.bal.to_string(),
                        value: format!("{}'s vote '{}'", pname(q), text(v)),
                        known_chosen: false,
                    });
                }
            }
            nodes.push(NodeView {
                name: dname(DiskId(d as u8)),
                up: disk.up,
                role: if disk.up { "disk" } else { "down" }.to_string(),
                promised: "none".to_string(),
                ballot: "none".to_string(),
                leader: None,
                chosen_through: 0,
                slots,
                notes,
            });
        }
        let known_by = |_slot: u64| {
            self.procs
                .iter()
                .enumerate()
                .filter(|(_, p)| p.decided.is_some())
                .map(|(i, _)| pname(i))
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
                clients: Vec::new(),
                in_flight: harness::message_views(&self.net, |i| self.net.endpoint(i), kind, label),
                chosen: self.journal.chosen_views(known_by),
                ops: self.ops.iter().map(|(_, o)| o.clone()).collect(),
            },
        )
    }

    fn crash(&mut self, node: usize, step: usize) -> String {
        let i = node - 1;
        if i < self.processors {
            let p = &mut self.procs[i];
            p.core = None;
            p.incarnation += 1;
            p.decided = None;
            return format!(
                "{} crashes. A Disk Paxos processor keeps nothing of its own: all it knows is \
                 its blocks on the disks. Its requests already under way still reach them.",
                pname(i)
            );
        }
        let d = i - self.processors;
        let id = DiskId(d as u8);
        // A write under way to a failing disk is cut off halfway: its block is torn.
        let mid: Vec<(u64, usize)> = self
            .net
            .in_flight
            .values()
            .filter(|f| f.to == i && matches!(f.msg, DiskMsg::Request(DiskIo::Write { .. })))
            .map(|f| (f.id, f.from))
            .collect();
        let disk = &mut self.disks[d];
        disk.up = false;
        let mut torn = Vec::new();
        for (id, from) in mid {
            self.net.in_flight.remove(&id);
            self.journal.ended(id, step, false);
            if disk.torn.insert(from) {
                torn.push(pname(from));
            }
        }
        if torn.is_empty() {
            format!(
                "{} fails: it answers nothing until it comes back. A majority of disks, {} of \
                 {DISKS}, is still enough for every phase.",
                dname(id),
                self.config.majority()
            )
        } else {
            format!(
                "{} fails in the middle of writing {}'s block: that block is torn, half old \
                 and half new, and its checksum will fail. A majority of disks, {} of \
                 {DISKS}, is still enough for every phase.",
                dname(id),
                and_list(&torn),
                self.config.majority()
            )
        }
    }

    fn restart(&mut self, node: usize, step: usize) -> String {
        let i = node - 1;
        if i < self.processors {
            let p = &mut self.procs[i];
            p.core = Some(Self::boot(self.config, i, self.bugs));
            let incarnation = p.incarnation;
            self.net.restart_ticks(i, incarnation);
            self.drive(i, step);
            return format!(
                "{} restarts with an empty memory (its input is gone too): phase 0 reads its \
                 own block back from every disk, and a majority of them is enough.",
                pname(i)
            );
        }
        let d = i - self.processors;
        self.disks[d].up = true;
        format!(
            "{} is back with what it held. A torn block on it reads as a failure until its \
             owner writes it again.",
            dname(DiskId(d as u8))
        )
    }
}

impl Harness for DiskWorld {
    harness::plumbing!(DiskMsg);
    const DISKS: bool = false;

    fn describe(m: &Flying) -> (String, &'static str, String) {
        let from = match &m.msg {
            DiskMsg::Request(_) => pname(m.from),
            DiskMsg::Answer(c) => dname(answer_disk(c)),
        };
        (label(&m.msg), kind(&m.msg), from)
    }

    fn network_why(action: &Action) -> &'static str {
        match action {
            Action::Drop { .. } => {
                " To its processor, a lost request is a disk that did not answer: the phase \
                 goes on if a majority of disks still do."
            }
            _ => "",
        }
    }

    fn up(&self, i: usize) -> bool {
        match i.checked_sub(self.processors) {
            None => self.procs[i].core.is_some(),
            Some(d) => self.disks[d].up,
        }
    }

    fn incarnation(&self, i: usize) -> u64 {
        self.procs.get(i).map_or(0, |p| p.incarnation)
    }

    fn busy(&self) -> bool {
        // A processor still trying: recovering, in a ballot, or idle with an input.
        self.procs.iter().any(|p| {
            p.core.as_ref().is_some_and(|c| match c.stage() {
                Stage::Decided => false,
                Stage::Idle => c.input().is_some(),
                _ => true,
            })
        })
    }

    fn tick(&mut self, i: usize, step: usize) -> Option<String> {
        let pr = &mut self.procs[i];
        let p = pr.core.as_mut()?;
        let before = (p.stage(), p.counters().timeouts);
        p.tick(&mut pr.rng);
        let after = (p.stage(), p.block().mbal, p.counters().timeouts);
        let sent_before = self.net.next_id;
        let any = self.drive(i, step);
        let who = pname(i);
        let sends = paren(&sends_text(&self.journal, sent_before));
        if after.2 > before.1 {
            return Some(match before.0 {
                Stage::Recovering => format!(
                    "{who} has not heard its own block back from a majority of disks in time: \
                     it reads again{sends}."
                ),
                _ => format!(
                    "{who} gives up its phase: fewer than a majority of disks answered in time. \
                     It will retry later with a higher ballot."
                ),
            });
        }
        if before.0 == Stage::Idle && after.0 == Stage::Phase1 {
            return Some(format!(
                "{who}'s retry timer fires: it starts ballot {}. Phase 1 writes its block with \
                 mbal {} to every disk; on each disk, once that write is done, it will read the \
                 other processors' blocks{sends}.",
                after.1, after.1
            ));
        }
        any.then(|| format!("{who}'s timer fires{sends}."))
    }

    fn deliver(&mut self, m: Flying, step: usize) -> String {
        match m.msg.clone() {
            DiskMsg::Request(_) => self.serve(m, step),
            DiskMsg::Answer(c) => self.answered(m.to, c, step),
        }
    }

    fn own(&mut self, action: &Action, step: usize) -> Result<String, String> {
        let processor = |node: usize| -> Result<usize, String> {
            if node <= self.processors {
                Ok(node - 1)
            } else {
                Err(format!(
                    "d{} is a disk, not a processor.",
                    node - self.processors
                ))
            }
        };
        Ok(match action {
            Action::Crash { node } => self.crash(*node, step),
            Action::Restart { node } => self.restart(*node, step),
            Action::Propose { value, node, .. } => {
                let i = processor(node.unwrap_or(1))?;
                let Some(p) = self.procs[i].core.as_mut() else {
                    return Err(format!("{} is down.", pname(i)));
                };
                p.propose(value.as_bytes().to_vec())
                    .map_err(|e| format!("{} refuses: {e}.", pname(i)))?;
                self.ops.push((
                    i,
                    OpView {
                        client: pname(i),
                        input: format!("propose '{value}'"),
                        output: None,
                    },
                ));
                format!(
                    "{}'s input is now '{value}'. It tries to decide once its retry timer fires \
                     (or fire it by hand): the value of the highest vote it reads on a majority \
                     of disks, or its own input if there is none.",
                    pname(i)
                )
            }
            Action::Timer { node } => {
                let i = processor(*node)?;
                let Some(p) = self.procs[i].core.as_mut() else {
                    return Err(format!("{} is down.", pname(i)));
                };
                if p.stage() != Stage::Idle || p.input().is_none() {
                    return Err(format!(
                        "{} starts a ballot only when idle with an input (it is {}).",
                        pname(i),
                        stage_text(p.stage())
                    ));
                }
                p.campaign();
                let mbal = p.block().mbal;
                let sent_before = self.net.next_id;
                self.drive(i, step);
                let sends = paren(&sends_text(&self.journal, sent_before));
                format!(
                    "By hand, {} starts ballot {mbal}: phase 1 writes its block with mbal \
                     {mbal} to every disk{sends}.",
                    pname(i)
                )
            }
            Action::Persist { .. } => {
                return Err(
                    "a disk's work is its request's delivery: deliver the request \
                            instead."
                        .to_string(),
                )
            }
            Action::Read { .. } => return Err("Disk Paxos decides one value: no reads.".into()),
            Action::Reconfigure { .. } => {
                return Err("this Disk Paxos mode has fixed processors and disks.".to_string())
            }
            // The harness answers the rest.
            _ => return Err(harness::ANSWERED.to_string()),
        })
    }

    fn begin(&mut self) {
        self.extra.clear();
    }

    fn finish(&mut self, step: usize, said: String) {
        let said = harness::with_extra(said, &mut self.extra);
        self.journal.say(step, self.net.now, said);
        self.check(step);
        for (i, op) in &mut self.ops {
            if op.output.is_none() {
                if let Some(v) = &self.procs[*i].decided {
                    op.output = Some(format!("decided '{v}'"));
                }
            }
        }
    }
}

fn answer_disk(c: &Completion) -> DiskId {
    match c {
        Completion::Written { disk, .. }
        | Completion::Read { disk, .. }
        | Completion::Failed { disk, .. } => *disk,
    }
}

fn request_kind(io: &DiskIo) -> &'static str {
    match io {
        DiskIo::Write { .. } => "write",
        DiskIo::Read { .. } => "read",
    }
}

fn answer_kind(c: &Completion) -> &'static str {
    match c {
        Completion::Written { .. } => "written",
        Completion::Read { .. } => "blocks",
        Completion::Failed { .. } => "failed",
    }
}

fn kind(m: &DiskMsg) -> &'static str {
    match m {
        DiskMsg::Request(io) => request_kind(io),
        DiskMsg::Answer(c) => answer_kind(c),
    }
}

fn label(m: &DiskMsg) -> String {
    match m {
        DiskMsg::Request(DiskIo::Write { block, .. }) => match &block.inp {
            Some(v) if block.bal.is_real() => {
                format!("Write mbal {} vote '{}'@{}", block.mbal, text(v), block.bal)
            }
            _ => format!("Write mbal {}", ballot_text(block.mbal)),
        },
        DiskMsg::Request(DiskIo::Read { of, .. }) => format!("Read {}", names(of)),
        DiskMsg::Answer(Completion::Written { .. }) => "Written".to_string(),
        DiskMsg::Answer(Completion::Read { blocks, .. }) => {
            let votes: Vec<String> = blocks
                .iter()
                .filter(|(_, b)| b.bal.is_real())
                .map(|(q, b)| format!("{q} {}", vote_text(b)))
                .collect();
            if votes.is_empty() {
                "Blocks (no vote)".to_string()
            } else {
                format!("Blocks ({})", votes.join(", "))
            }
        }
        DiskMsg::Answer(Completion::Failed { .. }) => "Failed".to_string(),
    }
}
