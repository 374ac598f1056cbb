//! The network and clock of the explorer's own harnesses (single-decree, Fast Paxos, EPaxos):
//! one seeded generator, virtual time, an event queue, messages in flight with ids the page
//! can act on, and cut links. Multi-Paxos uses the simulator's instead.
//!
//! It carries messages and nothing else: what a delivery means is the world's business.

use crate::journal::Journal;
use crate::model::Action;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

/// Virtual time between two ticks of a node.
pub const TICK_US: u64 = 5_000;
/// Network delay: base plus up to this much jitter.
const DELAY_BASE_US: u64 = 1_000;
const DELAY_JITTER_US: u64 = 2_000;
/// How much later a duplicated message's copy arrives.
const DUPLICATE_DELAY_US: u64 = 3_000;

/// Something due at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ev {
    /// Node `node`'s clock ticks (ignored if it restarted since: another incarnation).
    Tick { node: usize, incarnation: u64 },
    /// Message `id` arrives (ignored if it was delivered or dropped by hand).
    Deliver { id: u64 },
    /// Node `node`'s oldest disk write completes.
    PersistDone { node: usize, incarnation: u64 },
}

/// A message in flight. `from` is a node index, or an endpoint outside the nodes that the
/// world names itself (Fast Paxos's proposers).
#[derive(Clone, Debug)]
pub struct Flying<M> {
    pub id: u64,
    pub from: usize,
    pub to: usize,
    pub deliver_at: u64,
    pub msg: M,
}

/// The network, clock and event queue.
pub struct Net<M> {
    pub rng: ChaCha8Rng,
    pub now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    pub in_flight: BTreeMap<u64, Flying<M>>,
    pub next_id: u64,
    /// Blocked one-way links `(from, to)`, node indexes.
    pub cut: BTreeSet<(usize, usize)>,
    /// Disk Paxos: the index of the first disk (`d1`); indexes from there on are disks,
    /// which the page names `d1`, `d2`... rather than nodes.
    pub first_disk: Option<usize>,
}

impl<M: Clone> Net<M> {
    /// A quiet network at time 0, drawing from `seed`.
    pub fn new(seed: u64) -> Net<M> {
        Net {
            rng: ChaCha8Rng::seed_from_u64(seed),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            in_flight: BTreeMap::new(),
            next_id: 1,
            cut: BTreeSet::new(),
            first_disk: None,
        }
    }

    /// The page's name for index `i`: `n1`..., or `d1`... for a disk.
    pub fn endpoint(&self, i: usize) -> String {
        match self.first_disk.and_then(|d| i.checked_sub(d)) {
            Some(d) => format!("d{}", d + 1),
            None => format!("n{}", i + 1),
        }
    }

    pub fn schedule(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    /// Ticks of `nodes` nodes, started at random phases so they are not in lockstep.
    pub fn start_ticks(&mut self, nodes: usize) {
        for node in 0..nodes {
            let at = 1 + self.rng.next_u64() % TICK_US;
            self.schedule(
                at,
                Ev::Tick {
                    node,
                    incarnation: 0,
                },
            );
        }
    }

    /// The first tick of node `node`'s incarnation `incarnation`, one tick from now (after a
    /// restart).
    pub fn restart_ticks(&mut self, node: usize, incarnation: u64) {
        self.schedule(self.now + TICK_US, Ev::Tick { node, incarnation });
    }

    /// The next event, with the clock moved to it.
    pub fn pop(&mut self) -> Option<Ev> {
        let Reverse((at, _, ev)) = self.queue.pop()?;
        self.now = self.now.max(at);
        Some(ev)
    }

    pub fn draw(&mut self, base: u64, jitter: u64) -> u64 {
        base + self.rng.next_u64() % (jitter + 1)
    }

    /// Sends `msg` (of `kind`) from `from` (named `from_name`) to node `to`; a cut link loses
    /// it at once.
    #[allow(clippy::too_many_arguments)]
    pub fn send(
        &mut self,
        journal: &mut Journal,
        from: usize,
        from_name: &str,
        to: usize,
        msg: M,
        kind: &str,
        step: usize,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        let deliver_at = self.now + self.draw(DELAY_BASE_US, DELAY_JITTER_US);
        journal.sent(id, from_name, &self.endpoint(to), kind, step);
        if self.cut.contains(&(from, to)) {
            journal.ended(id, step, false);
            return;
        }
        self.in_flight.insert(
            id,
            Flying {
                id,
                from,
                to,
                deliver_at,
                msg,
            },
        );
        self.schedule(deliver_at, Ev::Deliver { id });
    }

    /// Whether a delivery from `m.from` to `m.to` crosses a cut link.
    pub fn is_cut(&self, m: &Flying<M>) -> bool {
        self.cut.contains(&(m.from, m.to))
    }

    /// The network's part of an action: drop, duplicate, cut, heal, partition, heal all.
    /// Returns `None` for any other action; `Some(Err(why))` when it can do nothing (the
    /// message is gone); `Some(Ok(sentence))` otherwise. `describe` gives a message's label,
    /// kind and sender's name.
    pub fn network_action(
        &mut self,
        action: &Action,
        nodes: usize,
        journal: &mut Journal,
        step: usize,
        describe: impl Fn(&Flying<M>) -> (String, &'static str, String),
    ) -> Option<Result<String, String>> {
        let gone = |id: &u64| Err(format!("Message {id} is no longer in flight."));
        Some(Ok(match action {
            Action::Drop { id } => {
                let Some(m) = self.in_flight.remove(id) else {
                    return Some(gone(id));
                };
                journal.ended(*id, step, false);
                let (label, _, from) = describe(&m);
                format!(
                    "The network loses {label} from {from} to {}.",
                    self.endpoint(m.to)
                )
            }
            Action::Duplicate { id } => {
                let Some(m) = self.in_flight.get(id).cloned() else {
                    return Some(gone(id));
                };
                let copy = self.next_id;
                self.next_id += 1;
                let deliver_at = self.now + DUPLICATE_DELAY_US;
                let (label, kind, from) = describe(&m);
                journal.sent(copy, &from, &self.endpoint(m.to), kind, step);
                let to = m.to;
                self.in_flight.insert(
                    copy,
                    Flying {
                        id: copy,
                        deliver_at,
                        ..m
                    },
                );
                self.schedule(deliver_at, Ev::Deliver { id: copy });
                format!(
                    "The network duplicates {label} from {from} to {}: it will arrive twice.",
                    self.endpoint(to)
                )
            }
            Action::Cut { from, to } => {
                self.cut.insert((from - 1, to - 1));
                let (a, b) = (self.endpoint(from - 1), self.endpoint(to - 1));
                format!("The link {a} → {b} is cut.")
            }
            Action::Heal { from, to } => {
                self.cut.remove(&(from - 1, to - 1));
                let (a, b) = (self.endpoint(from - 1), self.endpoint(to - 1));
                format!("The link {a} → {b} works again.")
            }
            Action::Partition { groups } => {
                let links = crate::multi::partition_links(nodes, groups);
                self.cut = links.blocked_links().into_iter().collect();
                format!("The network splits into {} groups.", groups.len())
            }
            Action::HealAll => {
                self.cut.clear();
                "Every link works again.".to_string()
            }
            _ => return None,
        }))
    }
}
