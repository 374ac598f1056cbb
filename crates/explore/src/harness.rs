//! What the explorer's own harnesses (single-decree, Fast Paxos, EPaxos, Paxos Commit) share
//! beyond the network: the event loop that runs one step, the actions every world answers
//! the same way (the network's, a step, a delivery by hand, a crash or restart of a node in
//! the wrong state, a disk write finished by hand), and disks that complete writes in order
//! after a latency.
//!
//! A world implements [`Harness`] with what only it knows (what a tick, a delivery or its own
//! actions mean, in its protocol's words); [`apply`] does the rest. Single-value cores
//! (`SynodNode`, `FastNode`) also share their members and drive loop through [`Core`].
//!
//! The order in which things are scheduled is part of a session's replay: keep it when
//! changing anything here (same seed and actions, same trace).

use crate::journal::{and_list, Journal};
use crate::model::{Action, ChosenView, MessageView, NodeView, OpView, Spec, View};
use crate::net::{Ev, Flying, Net, TICK_US};
use crate::synod::{name, sends_text};
use paxos::{Outbound, PersistBatch, PersistSeq};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;

/// Disk write latency: base plus jitter.
const DISK_BASE_US: u64 = 500;
const DISK_JITTER_US: u64 = 1_000;
/// Events skipped at most in one step while looking for one that shows.
const QUIET_EVENTS_MAX: usize = 10_000;

/// What a world's `own` answers for an action the harness answers itself (never shown).
pub(crate) const ANSWERED: &str = "the harness answers this action";

/// A node's disk: batches handed to it, oldest first, each with its completion time. Writes
/// complete in order, as one disk's do.
pub(crate) struct Disk<Op> {
    writes: VecDeque<(PersistSeq, Vec<Op>, u64)>,
}

impl<Op> Default for Disk<Op> {
    fn default() -> Self {
        Disk {
            writes: VecDeque::new(),
        }
    }
}

impl<Op> Disk<Op> {
    /// Hands `ops` (batch `seq`) to the disk of node `node` in incarnation `incarnation`; it
    /// completes after a drawn latency, never before the writes ahead of it.
    pub fn start<M: Clone>(
        &mut self,
        net: &mut Net<M>,
        node: usize,
        incarnation: u64,
        seq: PersistSeq,
        ops: Vec<Op>,
    ) {
        let latency = net.draw(DISK_BASE_US, DISK_JITTER_US);
        let after = self.writes.back().map_or(0, |(_, _, at)| *at);
        let done_at = (net.now + latency).max(after + 1);
        self.writes.push_back((seq, ops, done_at));
        net.schedule(done_at, Ev::PersistDone { node, incarnation });
    }

    /// Whether the oldest write is due by `now` (one finished by hand already is gone, and
    /// the next one has its own event).
    pub fn due(&self, now: u64) -> bool {
        self.writes.front().is_some_and(|(_, _, at)| *at <= now)
    }

    /// The oldest write, taken off the disk as completed.
    pub fn complete(&mut self) -> Option<(PersistSeq, Vec<Op>)> {
        self.writes.pop_front().map(|(seq, ops, _)| (seq, ops))
    }

    /// Power loss: writes in progress are lost; returns how many.
    pub fn lose(&mut self) -> usize {
        let lost = self.writes.len();
        self.writes.clear();
        lost
    }

    pub fn len(&self) -> usize {
        self.writes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

/// A world the explorer drives with its own network: what only it knows.
pub(crate) trait Harness {
    type Msg: Clone;
    /// Whether nodes have disks whose writes the learner may finish by hand (else the
    /// world answers `persist` itself).
    const DISKS: bool;

    /// How many nodes.
    fn nodes(&self) -> usize;
    fn net(&self) -> &Net<Self::Msg>;
    /// The network and the journal, both mutably.
    fn parts(&mut self) -> (&mut Net<Self::Msg>, &mut Journal);
    /// A message's label, kind and sender's name.
    fn describe(m: &Flying<Self::Msg>) -> (String, &'static str, String);
    /// What the network's sentence about `action` leaves out, in this protocol.
    fn network_why(_action: &Action) -> &'static str {
        ""
    }
    /// Whether node `i` runs.
    fn up(&self, i: usize) -> bool;
    fn incarnation(&self, i: usize) -> u64;
    /// Whether anything but messages in flight is left to happen (a write, a proposer that
    /// waits): with nothing, only ticks are left, and a step says so.
    fn busy(&self) -> bool;
    /// Node `i`'s clock ticks; a sentence if it did something that shows.
    fn tick(&mut self, i: usize, step: usize) -> Option<String>;
    /// Message `m`, taken out of flight, reaches its receiver, which is up over a working link
    /// (else the harness loses it).
    fn deliver(&mut self, m: Flying<Self::Msg>, step: usize) -> String;
    /// Whether node `i`'s oldest disk write is due now.
    fn write_due(&self, _i: usize) -> bool {
        false
    }
    /// Whether node `i` has a disk write in progress.
    fn writes_pending(&self, _i: usize) -> bool {
        false
    }
    /// Node `i`'s oldest disk write completes; `how` prefixes the sentence.
    fn complete_write(&mut self, i: usize, step: usize, _how: &str) -> String {
        let _ = step;
        format!("n{} has no disk write in progress.", i + 1)
    }
    /// Every other action, in the world's words: a sentence, or why nothing happens.
    fn own(&mut self, action: &Action, step: usize) -> Result<String, String>;
    /// Called before each unit.
    fn begin(&mut self) {}
    /// Called after a unit that did something, with its sentence.
    fn finish(&mut self, step: usize, said: String);
}

/// The plumbing of a [`Harness`] impl for a world with fields `n`, `net` and `journal`.
macro_rules! plumbing {
    ($msg:ty) => {
        type Msg = $msg;

        fn nodes(&self) -> usize {
            self.n
        }

        fn net(&self) -> &crate::net::Net<$msg> {
            &self.net
        }

        fn parts(&mut self) -> (&mut crate::net::Net<$msg>, &mut crate::journal::Journal) {
            (&mut self.net, &mut self.journal)
        }
    };
}

/// The disk part of a [`Harness`] impl for a world whose `members` each have a [`Disk`] (the
/// world still says what a completed write means, in `complete_write`).
macro_rules! disks {
    () => {
        const DISKS: bool = true;

        fn write_due(&self, i: usize) -> bool {
            self.members[i].disk.due(self.net.now)
        }

        fn writes_pending(&self, i: usize) -> bool {
            !self.members[i].disk.is_empty()
        }
    };
}

pub(crate) use {disks, plumbing};

/// `said` followed by the sentences gathered in `extra` (which is left empty).
pub(crate) fn with_extra(said: String, extra: &mut Vec<String>) -> String {
    let mut said = said;
    for e in extra.drain(..) {
        said.push(' ');
        said.push_str(&e);
    }
    said
}

/// Applies one unit of `action` to `h` as step `step`.
pub(crate) fn apply<H: Harness>(h: &mut H, action: &Action, step: usize) {
    h.parts().1.note = None;
    h.begin();
    match answer(h, action, step) {
        Ok(said) => h.finish(step, said),
        Err(why) => {
            let (net, journal) = h.parts();
            journal.say(step, net.now, format!("Nothing happens: {why}"));
            journal.note = Some(why);
        }
    }
}

fn answer<H: Harness>(h: &mut H, action: &Action, step: usize) -> Result<String, String> {
    let nodes = h.nodes();
    let (net, journal) = h.parts();
    if let Some(said) = net.network_action(action, nodes, journal, step, H::describe) {
        return said.map(|s| format!("{s}{}", H::network_why(action)));
    }
    match action {
        Action::Step { .. } => {
            step_event(h, step).ok_or_else(|| "nothing is left to happen.".to_string())
        }
        Action::Deliver { id } => {
            let m = net
                .in_flight
                .remove(id)
                .ok_or_else(|| format!("Message {id} is no longer in flight."))?;
            Ok(format!("By hand, out of turn: {}", arrive(h, m, step)))
        }
        Action::Crash { node } if !h.up(node - 1) => Err(format!("n{node} is already down.")),
        Action::Restart { node } if h.up(node - 1) => Err(format!("n{node} is already running.")),
        Action::Persist { node } if H::DISKS => {
            let i = node - 1;
            if !h.up(i) {
                Err(format!("n{node} is down."))
            } else if !h.writes_pending(i) {
                Err(format!("n{node} has no disk write in progress."))
            } else {
                Ok(h.complete_write(i, step, "By hand, out of turn: "))
            }
        }
        _ => h.own(action, step),
    }
}

/// Processes events until one shows; returns its sentence.
fn step_event<H: Harness>(h: &mut H, step: usize) -> Option<String> {
    if h.net().in_flight.is_empty() && !h.busy() {
        return None;
    }
    for _ in 0..QUIET_EVENTS_MAX {
        let (net, _) = h.parts();
        let ev = net.pop()?;
        match ev {
            Ev::Tick { node, incarnation } => {
                if h.incarnation(node) != incarnation || !h.up(node) {
                    continue;
                }
                let (net, _) = h.parts();
                net.schedule(net.now + TICK_US, Ev::Tick { node, incarnation });
                if let Some(said) = h.tick(node, step) {
                    return Some(said);
                }
            }
            Ev::Deliver { id } => {
                let Some(m) = net.in_flight.remove(&id) else {
                    continue;
                };
                return Some(arrive(h, m, step));
            }
            Ev::PersistDone { node, incarnation } => {
                if h.incarnation(node) != incarnation || !h.write_due(node) {
                    continue;
                }
                return Some(h.complete_write(node, step, ""));
            }
        }
    }
    None
}

/// The messages in flight, as the page draws them; `end` names a sender or receiver.
pub(crate) fn message_views<M: Clone>(
    net: &Net<M>,
    end: impl Fn(usize) -> String,
    kind: impl Fn(&M) -> &'static str,
    label: impl Fn(&M) -> String,
) -> Vec<MessageView> {
    net.in_flight
        .values()
        .map(|m| MessageView {
            id: m.id,
            from: end(m.from),
            to: net.endpoint(m.to),
            kind: kind(&m.msg).to_string(),
            label: label(&m.msg),
            deliver_at: m.deliver_at,
        })
        .collect()
}

/// What a view takes from the world itself; the rest comes from its network and journal.
pub(crate) struct Shown {
    pub nodes: Vec<NodeView>,
    pub clients: Vec<String>,
    pub in_flight: Vec<MessageView>,
    pub chosen: Vec<ChosenView>,
    pub ops: Vec<OpView>,
}

/// The view of step `step` of `total`.
pub(crate) fn view<M: Clone>(
    spec: &Spec,
    step: usize,
    total: usize,
    net: &Net<M>,
    journal: &Journal,
    shown: Shown,
) -> View {
    View {
        spec: spec.clone(),
        step,
        total,
        time_us: net.now,
        nodes: shown.nodes,
        clients: shown.clients,
        in_flight: shown.in_flight,
        cut: net
            .cut
            .iter()
            .map(|(a, b)| [net.endpoint(*a), net.endpoint(*b)])
            .collect(),
        chosen: shown.chosen,
        ops: shown.ops,
        log: journal.log_tail(),
        lines: journal.lines_tail(),
        violations: journal.violations.clone(),
        note: journal.note.clone(),
    }
}

/// The nodes of a single-value world that know the value is chosen.
pub(crate) fn learned_by<N: Core>(members: &[Member<N>]) -> Vec<String> {
    members
        .iter()
        .enumerate()
        .filter(|(_, m)| m.learned.is_some())
        .map(|(i, _)| name(i))
        .collect()
}

/// What a single-value core (`SynodNode`, `FastNode`) hands its driver, in the core's order:
/// persist, then send, then learn.
pub(crate) struct Outputs<Op, M> {
    pub persist: Option<PersistBatch<Op>>,
    pub send: Vec<Outbound<M>>,
    /// The chosen value, as the page shows it, the first time this node learns it.
    pub learned: Option<String>,
}

/// A single-value core as its driver sees it.
pub(crate) trait Core {
    type Op;
    type Msg: Clone;
    type Durable: Clone;
    fn outputs(&mut self) -> Outputs<Self::Op, Self::Msg>;
    fn persisted(&mut self, seq: PersistSeq);
    /// Applies a write to the durable state a restart reads.
    fn make_durable(durable: &mut Self::Durable, op: &Self::Op);
    /// The message's kind, for the diagram.
    fn kind(msg: &Self::Msg) -> &'static str;
}

/// A node of a single-value world, with what survives it.
pub(crate) struct Member<N: Core> {
    pub node: Option<N>,
    pub durable: N::Durable,
    pub disk: Disk<N::Op>,
    pub incarnation: u64,
    pub rng: ChaCha8Rng,
    pub learned: Option<String>,
}

impl<N: Core> Member<N> {
    /// Power loss: memory and writes in progress are gone; returns how many writes.
    pub fn crash(&mut self) -> usize {
        self.node = None;
        self.incarnation += 1;
        self.learned = None;
        self.disk.lose()
    }
}

/// Carries out node `i`'s outputs in the core's order: writes to its disk, messages to the
/// network, what it learned into `extra`. Returns whether there were any.
pub(crate) fn drive<N: Core>(
    members: &mut [Member<N>],
    net: &mut Net<N::Msg>,
    journal: &mut Journal,
    extra: &mut Vec<String>,
    i: usize,
    step: usize,
) -> bool {
    let n = members.len();
    let mut any = false;
    loop {
        let member = &mut members[i];
        let Some(node) = member.node.as_mut() else {
            return any;
        };
        let out = node.outputs();
        if out.persist.is_none() && out.send.is_empty() && out.learned.is_none() {
            return any;
        }
        any = true;
        if let Some(batch) = out.persist {
            member
                .disk
                .start(net, i, member.incarnation, batch.seq, batch.ops);
        }
        for o in out.send {
            let to = (o.to.0 as usize).wrapping_sub(1);
            if to < n {
                let kind = N::kind(&o.msg);
                net.send(journal, i, &name(i), to, o.msg, kind, step);
            }
        }
        if let Some(v) = out.learned {
            extra.push(format!("n{} now knows '{v}' is chosen.", i + 1));
            members[i].learned = Some(v);
        }
    }
}

/// Node `i`'s oldest disk write completes: its ops become durable, the core is told, and what
/// waited for them leaves. `how` prefixes the sentence, `why` follows the list of messages
/// that left (if any).
#[allow(clippy::too_many_arguments)]
pub(crate) fn complete_write<N: Core>(
    members: &mut [Member<N>],
    net: &mut Net<N::Msg>,
    journal: &mut Journal,
    extra: &mut Vec<String>,
    i: usize,
    step: usize,
    how: &str,
    describe: impl Fn(&N::Op) -> String,
    why: &str,
) -> String {
    let m = &mut members[i];
    let Some((seq, ops)) = m.disk.complete() else {
        return format!("n{} has no disk write in progress.", i + 1);
    };
    let what: Vec<String> = ops.iter().map(describe).collect();
    for op in &ops {
        N::make_durable(&mut m.durable, op);
    }
    if let Some(p) = m.node.as_mut() {
        p.persisted(seq);
    }
    let sent_before = net.next_id;
    drive(members, net, journal, extra, i, step);
    let sends = sends_text(journal, sent_before);
    write_sentence(how, i, &what, &sends, why)
}

/// "n1's disk has made durable its promise. Only now may what depends on it leave: ...",
/// prefixed by `how`; `why` follows the messages that left, if any did.
pub(crate) fn write_sentence(
    how: &str,
    i: usize,
    what: &[String],
    sends: &str,
    why: &str,
) -> String {
    format!(
        "{how}n{}'s disk has made durable {}.{}",
        i + 1,
        and_list(what),
        if sends.is_empty() {
            String::new()
        } else {
            format!(" Only now may what depends on it leave: {sends}.{why}")
        }
    )
}

/// Message `m`, taken out of flight, reaches its receiver if that is up and the link works;
/// if not, it is lost, and the sentence says so.
fn arrive<H: Harness>(h: &mut H, m: Flying<H::Msg>, step: usize) -> String {
    let (label, _, from) = H::describe(&m);
    let up = h.up(m.to);
    let (net, journal) = h.parts();
    if net.is_cut(&m) || !up {
        journal.ended(m.id, step, false);
        let to = net.endpoint(m.to);
        return format!(
            "{label} from {from} reaches {to}, but {to} is down or the link is cut: it is lost."
        );
    }
    journal.ended(m.id, step, true);
    h.deliver(m, step)
}
