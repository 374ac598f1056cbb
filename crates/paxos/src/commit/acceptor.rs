//! The acceptor's part: one promise per transaction covering all of its instances, one
//! accepted value per instance.
//!
//! Gray and Lamport, section 4: ballot 0 of instance `i` belongs to RM `i` (here the ballot
//! `(0, rm)`), every leader ballot has round 1 or more, so an acceptor that promised a leader
//! refuses a late vote, and a leader that finds no vote accepted may propose Aborted.

use super::node::Ctx;
use super::types::{AcceptorRecord, CommitMessage, CommitPersist, Participants, TxnId, Vote};
use crate::ids::{Ballot, NodeId};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct AcceptorRole {
    txns: BTreeMap<TxnId, AcceptorRecord>,
}

impl AcceptorRole {
    pub(crate) fn recover(records: &BTreeMap<TxnId, AcceptorRecord>) -> AcceptorRole {
        AcceptorRole {
            txns: records.clone(),
        }
    }

    /// The record of `txn`, created if new; None (counted) if refused.
    fn record(
        &mut self,
        ctx: &mut Ctx,
        txn: TxnId,
        rms: &Participants,
    ) -> Option<&mut AcceptorRecord> {
        if !self.txns.contains_key(&txn) && self.txns.len() >= ctx.options.txns_max {
            ctx.counters.table_full += 1;
            return None;
        }
        let r = self.txns.entry(txn).or_insert_with(|| AcceptorRecord {
            rms: rms.clone(),
            promised: Ballot::ZERO,
            accepted: vec![None; rms.len()],
        });
        if r.rms != *rms {
            ctx.counters.refused += 1;
            return None;
        }
        Some(r)
    }

    pub(crate) fn on_phase1a(
        &mut self,
        ctx: &mut Ctx,
        from: NodeId,
        txn: TxnId,
        rms: Participants,
        ballot: Ballot,
    ) {
        if !rms.valid()
            || ballot.node != from
            || ballot.round == 0
            || !ctx.config.leaders.contains(&from)
        {
            ctx.counters.refused += 1;
            return;
        }
        let Some(r) = self.record(ctx, txn, &rms) else {
            return;
        };
        if ballot < r.promised {
            let promised = r.promised;
            ctx.outbox.send(
                from,
                CommitMessage::Nack {
                    txn,
                    ballot,
                    promised,
                },
                0,
            );
            return;
        }
        if ballot > r.promised {
            r.promised = ballot;
            ctx.outbox
                .record(CommitPersist::Promised { txn, rms, ballot });
        }
        let accepted = r.accepted.clone();
        let needs = ctx.outbox.newest();
        ctx.outbox.send(
            from,
            CommitMessage::Phase1b {
                txn,
                ballot,
                accepted,
            },
            needs,
        );
    }

    // The fields of the message, unpacked where it is routed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_phase2a(
        &mut self,
        ctx: &mut Ctx,
        from: NodeId,
        txn: TxnId,
        rms: Participants,
        instance: u8,
        ballot: Ballot,
        vote: Vote,
    ) {
        let i = usize::from(instance);
        let owner_ok = if ballot.round == 0 {
            // Only the instance's own RM proposes at its ballot 0, and only its vote.
            rms.rms().get(i) == Some(&from)
        } else {
            ctx.config.leaders.contains(&from)
        };
        if !rms.valid() || i >= rms.len() || ballot.node != from || !owner_ok {
            ctx.counters.refused += 1;
            return;
        }
        let Some(r) = self.record(ctx, txn, &rms) else {
            return;
        };
        if ballot < r.promised {
            let promised = r.promised;
            ctx.outbox.send(
                from,
                CommitMessage::Nack {
                    txn,
                    ballot,
                    promised,
                },
                0,
            );
            return;
        }
        if ballot.round > 0 {
            r.promised = r.promised.max(ballot);
        }
        let to = if ballot.round == 0 {
            ctx.config.coordinator()
        } else {
            ballot.node
        };
        let reply = CommitMessage::Phase2b {
            txn,
            rms: rms.clone(),
            instance,
            ballot,
            vote,
        };
        if r.accepted[i] == Some((ballot, vote)) {
            // A repeat (the network duplicates, RMs retransmit): no second write.
            let needs = ctx.outbox.newest();
            ctx.outbox.send(to, reply, needs);
            return;
        }
        if r.accepted[i].is_some_and(|(b, _)| b == ballot) {
            // Two values at one ballot: its owner equivocates. Refuse.
            ctx.counters.refused += 1;
            return;
        }
        r.accepted[i] = Some((ballot, vote));
        let needs = ctx.outbox.record(CommitPersist::Accepted {
            txn,
            rms,
            instance,
            ballot,
            vote,
        });
        ctx.outbox.send(to, reply, needs);
    }
}
