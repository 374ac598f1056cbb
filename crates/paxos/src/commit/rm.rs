//! The resource manager's part: vote at its own ballot 0, learn the outcome, ask when unsure.
//!
//! Gray and Lamport, section 4: an RM's vote is the phase 2a message of ballot 0 of its own
//! instance, sent straight to the acceptors. It is written durably first: a Prepared RM may
//! no longer abort on its own, and an Aborted RM may abort at once, because no leader can
//! choose Prepared for an instance whose only proposer of Prepared (the RM) voted Aborted.

use super::node::Ctx;
use super::types::{
    CommitError, CommitMessage, CommitPersist, Outcome, Participants, RmRecord, TxnId, Vote,
};
use crate::ids::Ballot;
use rand_core::RngCore;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct RmTxn {
    rms: Option<Participants>,
    vote: Option<Vote>,
    outcome: Option<Outcome>,
    /// A leader told it the outcome (an Aborted vote alone does not tell the others: until a
    /// leader confirms, the RM keeps sending it and asking).
    confirmed: bool,
    /// When to resend the vote and ask the leaders again.
    deadline_ticks: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct RmRole {
    txns: BTreeMap<TxnId, RmTxn>,
}

impl RmRole {
    pub(crate) fn recover(records: &BTreeMap<TxnId, RmRecord>) -> RmRole {
        let txns = records
            .iter()
            .map(|(t, r)| {
                let outcome = r.outcome.or(match r.vote {
                    Some(Vote::Aborted) => Some(Outcome::Aborted),
                    _ => None,
                });
                let txn = RmTxn {
                    rms: r.rms.clone(),
                    vote: r.vote,
                    outcome,
                    confirmed: r.outcome.is_some(),
                    deadline_ticks: 0,
                };
                (*t, txn)
            })
            .collect();
        RmRole { txns }
    }

    pub(crate) fn outcome(&self, txn: TxnId) -> Option<Outcome> {
        self.txns.get(&txn).and_then(|t| t.outcome)
    }

    pub(crate) fn knows(&self, txn: TxnId) -> bool {
        self.txns.contains_key(&txn)
    }

    pub(crate) fn vote_of(&self, txn: TxnId) -> Option<Vote> {
        self.txns.get(&txn).and_then(|t| t.vote)
    }

    /// This RM starts `txn`: BeginCommit to the coordinator, and its own vote is asked for.
    pub(crate) fn begin(
        &mut self,
        ctx: &mut Ctx,
        txn: TxnId,
        rms: Participants,
    ) -> Result<(), CommitError> {
        if rms.instance_of(ctx.id).is_none() {
            return Err(CommitError::NotAParticipant);
        }
        if self.txns.contains_key(&txn) {
            return Err(CommitError::AlreadyKnown(txn));
        }
        if self.txns.len() >= ctx.options.txns_max {
            return Err(CommitError::Busy);
        }
        let to = ctx.config.coordinator();
        ctx.outbox.send(
            to,
            CommitMessage::Begin {
                txn,
                rms: rms.clone(),
            },
            0,
        );
        self.insert_asking(ctx, txn, rms);
        Ok(())
    }

    fn insert_asking(&mut self, ctx: &mut Ctx, txn: TxnId, rms: Participants) {
        self.txns.insert(
            txn,
            RmTxn {
                rms: Some(rms),
                vote: None,
                outcome: None,
                confirmed: false,
                deadline_ticks: 0,
            },
        );
        ctx.prepare.push(txn);
    }

    pub(crate) fn vote(
        &mut self,
        ctx: &mut Ctx,
        txn: TxnId,
        vote: Vote,
    ) -> Result<(), CommitError> {
        let Some(t) = self.txns.get_mut(&txn) else {
            return Err(CommitError::NoVotePending(txn));
        };
        if t.vote.is_some() || t.outcome.is_some() {
            return Err(CommitError::NoVotePending(txn));
        }
        let Some(rms) = t.rms.clone() else {
            return Err(CommitError::NoVotePending(txn));
        };
        t.vote = Some(vote);
        t.deadline_ticks = ctx.now_ticks + u64::from(ctx.options.retry_ticks);
        let needs = ctx.outbox.record(CommitPersist::RmVoted {
            txn,
            rms: rms.clone(),
            vote,
        });
        if vote == Vote::Aborted {
            // An RM that votes Aborted knows the outcome as soon as its vote is durable.
            t.outcome = Some(Outcome::Aborted);
            ctx.learned.push((needs, txn, Outcome::Aborted));
        }
        send_vote(ctx, txn, &rms, vote, needs);
        Ok(())
    }

    pub(crate) fn on_prepare(&mut self, ctx: &mut Ctx, txn: TxnId, rms: Participants) {
        if rms.instance_of(ctx.id).is_none() {
            ctx.counters.refused += 1;
            return;
        }
        match self.txns.get(&txn) {
            None if self.txns.len() >= ctx.options.txns_max => ctx.counters.table_full += 1,
            None => self.insert_asking(ctx, txn, rms),
            // A repeated Prepare: the vote may have been lost, send it again.
            Some(RmTxn {
                rms: Some(r),
                vote: Some(v),
                outcome: None,
                ..
            }) => {
                let (r, v) = (r.clone(), *v);
                let needs = ctx.outbox.newest();
                send_vote(ctx, txn, &r, v, needs);
            }
            Some(_) => {}
        }
    }

    pub(crate) fn on_outcome(
        &mut self,
        ctx: &mut Ctx,
        from: crate::NodeId,
        txn: TxnId,
        outcome: Outcome,
    ) {
        if !self.txns.contains_key(&txn) && self.txns.len() >= ctx.options.txns_max {
            ctx.counters.table_full += 1;
            return;
        }
        let known = self.txns.entry(txn).or_insert(RmTxn {
            rms: None,
            vote: None,
            outcome: None,
            confirmed: false,
            deadline_ticks: 0,
        });
        known.confirmed |= ctx.config.leaders.contains(&from);
        let needs = match known.outcome {
            Some(o) if o == outcome => ctx.outbox.newest(),
            Some(_) => {
                // Two outcomes for one transaction: the protocol is broken. Keep the first, and
                // report the second so that a checker sees it.
                ctx.counters.conflicting_outcomes += 1;
                ctx.learned.push((ctx.outbox.newest(), txn, outcome));
                return;
            }
            None => {
                known.outcome = Some(outcome);
                let needs = ctx.outbox.record(CommitPersist::RmLearned { txn, outcome });
                ctx.learned.push((needs, txn, outcome));
                needs
            }
        };
        if ctx.config.leaders.contains(&from) {
            ctx.outbox
                .send(from, CommitMessage::OutcomeAck { txn }, needs);
        }
    }

    /// Resends every vote no leader has answered yet, and asks the leaders for the outcome.
    pub(crate) fn tick(&mut self, ctx: &mut Ctx, rng: &mut impl RngCore) {
        let now = ctx.now_ticks;
        for (txn, t) in self.txns.iter_mut() {
            let (Some(rms), Some(vote), false) = (&t.rms, t.vote, t.confirmed) else {
                continue;
            };
            if now < t.deadline_ticks {
                continue;
            }
            let jitter = rng.next_u32() % (ctx.options.retry_jitter_ticks + 1);
            t.deadline_ticks = now + u64::from(ctx.options.retry_ticks + jitter);
            let needs = ctx.outbox.newest();
            send_vote(ctx, *txn, rms, vote, needs);
            for i in 0..ctx.config.leaders.len() {
                let to = ctx.config.leaders[i];
                let msg = CommitMessage::Query {
                    txn: *txn,
                    rms: rms.clone(),
                };
                ctx.outbox.send(to, msg, needs);
            }
        }
    }
}

fn send_vote(ctx: &mut Ctx, txn: TxnId, rms: &Participants, vote: Vote, needs: u64) {
    let Some(instance) = rms.instance_of(ctx.id) else {
        return;
    };
    let ballot = Ballot::new(0, ctx.id);
    for k in 0..ctx.config.acceptors.members().len() {
        let to = ctx.config.acceptors.members()[k];
        let msg = CommitMessage::Phase2a {
            txn,
            rms: rms.clone(),
            instance: instance as u8,
            ballot,
            vote,
        };
        ctx.outbox.send(to, msg, needs);
    }
}
