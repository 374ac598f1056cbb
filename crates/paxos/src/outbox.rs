//! Persist-before-send by construction.
//!
//! Every state change a message depends on is recorded here as a persist op; the op joins the
//! batch being built, and the message is tagged with that batch's sequence number. A message
//! leaves [`Outbox::release`] only once the driver has reported its batch durable. The core
//! cannot hand out a promise or an accept before the state behind it is on disk, whatever the
//! driver does, because the driver never sees that message until then.

use crate::ids::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Sequence number of a persist batch. Batches are numbered 1, 2, 3... and must be made durable
/// (and reported with `persisted`) in that order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PersistSeq(pub u64);

/// State the driver must make durable, atomically, before reporting `persisted(seq)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PersistBatch<Op> {
    /// Report this number once every op below is durable.
    pub seq: PersistSeq,
    /// Ops in the order they were decided; apply in this order.
    pub ops: Vec<Op>,
}

/// A message ready to leave: its state is durable.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Outbound<M> {
    /// Destination.
    pub to: NodeId,
    /// The message.
    pub msg: M,
}

/// Persist ops being batched and messages waiting for durability.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Outbox<M, Op> {
    building: Vec<Op>,
    /// Sequence number the batch under construction will carry.
    next_seq: u64,
    /// Highest sequence number reported durable.
    durable: u64,
    /// Sequence number of the newest op recorded so far (0 if none).
    newest: u64,
    waiting: VecDeque<(u64, NodeId, M)>,
}

impl<M, Op> Outbox<M, Op> {
    pub(crate) fn new() -> Self {
        Outbox {
            building: Vec::new(),
            next_seq: 1,
            durable: 0,
            newest: 0,
            waiting: VecDeque::new(),
        }
    }

    /// Records a state change; returns the sequence number it will be durable under.
    pub(crate) fn record(&mut self, op: Op) -> u64 {
        self.building.push(op);
        self.newest = self.next_seq;
        self.next_seq
    }

    /// Sequence number of the newest recorded op: a message depending on everything recorded so
    /// far needs this.
    pub(crate) fn newest(&self) -> u64 {
        self.newest
    }

    /// Queues `msg` to leave once batch `needs` is durable (0: needs nothing).
    pub(crate) fn send(&mut self, to: NodeId, msg: M, needs: u64) {
        debug_assert!(needs < self.next_seq || !self.building.is_empty());
        self.waiting.push_back((needs, to, msg));
    }

    /// Takes the batch built so far, if any.
    pub(crate) fn take_batch(&mut self) -> Option<PersistBatch<Op>> {
        if self.building.is_empty() {
            return None;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        Some(PersistBatch {
            seq: PersistSeq(seq),
            ops: std::mem::take(&mut self.building),
        })
    }

    /// The driver reports batches up to `seq` durable.
    ///
    /// Returns false (and changes nothing) for a sequence number never handed out: a driver bug
    /// the caller must surface rather than let a message leave early.
    pub(crate) fn persisted(&mut self, seq: PersistSeq) -> bool {
        if seq.0 >= self.next_seq {
            return false;
        }
        self.durable = self.durable.max(seq.0);
        true
    }

    /// Whether batch `seq` is durable (0: nothing needed).
    pub(crate) fn is_durable(&self, seq: u64) -> bool {
        seq <= self.durable
    }

    /// Whether everything recorded so far is durable.
    pub(crate) fn all_durable(&self) -> bool {
        self.building.is_empty() && self.durable + 1 == self.next_seq
    }

    /// Messages whose state is durable, in the order they were queued.
    pub(crate) fn release(&mut self, out: &mut Vec<(NodeId, M)>) {
        let durable = self.durable;
        if self.waiting.iter().all(|(needs, _, _)| *needs <= durable) {
            out.extend(self.waiting.drain(..).map(|(_, to, m)| (to, m)));
            return;
        }
        let mut keep = VecDeque::with_capacity(self.waiting.len());
        for (needs, to, m) in self.waiting.drain(..) {
            if needs <= durable {
                out.push((to, m));
            } else {
                keep.push_back((needs, to, m));
            }
        }
        self.waiting = keep;
    }

    /// Every waiting message, durable or not: only for the planted bug that skips persistence.
    pub(crate) fn release_ignoring_durability(&mut self, out: &mut Vec<(NodeId, M)>) {
        out.extend(self.waiting.drain(..).map(|(_, to, m)| (to, m)));
    }

    /// Messages still waiting for durability.
    pub(crate) fn waiting_len(&self) -> usize {
        self.waiting.len()
    }
}

/// Releases every message that may leave, for a core's `ready`: messages addressed to `me` are
/// stepped in at once (a message to oneself costs no message delay) and may release more; the
/// rest come back for the driver to send, in release order. `ignore_durability` is only for
/// the planted bug that skips persistence. Every single-decree core drains its outbox this way.
pub(crate) fn release_looping_back<N, M, Op>(
    node: &mut N,
    me: NodeId,
    ignore_durability: bool,
    outbox: fn(&mut N) -> &mut Outbox<M, Op>,
    mut step: impl FnMut(&mut N, NodeId, M),
) -> Vec<Outbound<M>> {
    let mut send = Vec::new();
    let mut released = Vec::new();
    loop {
        released.clear();
        if ignore_durability {
            outbox(node).release_ignoring_durability(&mut released);
        } else {
            outbox(node).release(&mut released);
        }
        let mut looped_back = false;
        for (to, msg) in released.drain(..) {
            if to == me {
                looped_back = true;
                step(node, to, msg);
            } else {
                send.push(Outbound { to, msg });
            }
        }
        if !looped_back {
            return send;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_wait_for_their_batch() {
        let mut o: Outbox<&str, u32> = Outbox::new();
        o.send(NodeId(1), "free", 0);
        let seq = o.record(7);
        o.send(NodeId(2), "gated", seq);
        let mut out = Vec::new();
        o.release(&mut out);
        assert_eq!(out, vec![(NodeId(1), "free")]);
        let batch = o.take_batch().unwrap();
        assert_eq!(batch.seq, PersistSeq(1));
        out.clear();
        o.release(&mut out);
        assert!(
            out.is_empty(),
            "gated message left before its batch was durable"
        );
        assert!(!o.persisted(PersistSeq(2)), "unknown seq must be refused");
        assert!(o.persisted(PersistSeq(1)));
        o.release(&mut out);
        assert_eq!(out, vec![(NodeId(2), "gated")]);
        assert!(o.all_durable());
    }
}
