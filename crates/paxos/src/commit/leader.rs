//! The leader's part (the coordinator, or a leader taking over): learn each instance's chosen
//! vote from phase 2b messages, and decide.
//!
//! Gray and Lamport, section 4: the transaction commits iff every instance chose Prepared; it
//! aborts as soon as one instance chose Aborted. A leader that takes over (or a coordinator
//! tired of waiting) runs phase 1 at a higher ballot for all instances of the transaction and,
//! for each undecided one, proposes the value of the highest ballot reported, or Aborted if no
//! acceptor of the quorum reported any (Paxos's rule P2c with Aborted as the free choice).

use super::node::Ctx;
use super::types::{CommitMessage, CommitPersist, Outcome, Participants, TxnId, Vote};
use crate::bugs::Bug;
use crate::ids::{Ballot, NodeId};
use crate::quorum::NodeSet;
use rand_core::RngCore;
use std::collections::BTreeMap;

/// Ballots whose phase 2b messages an instance tracks at once (older ones are dropped).
const BALLOTS_PER_INSTANCE_MAX: usize = 4;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Phase {
    /// The coordinator waits for the RMs' ballot-0 votes.
    Voting,
    /// Heard of it, not leading it: takes over at the deadline.
    Watching,
    /// Phase 1 at `ballot`, merging the values reported.
    Phase1 {
        ballot: Ballot,
        promises: NodeSet,
        reported: Vec<Option<(Ballot, Vote)>>,
    },
    /// Phase 2 at `ballot`.
    Phase2 { ballot: Ballot },
    /// Decided; resending the outcome to RMs that have not acknowledged it.
    Decided { outcome: Outcome, acked: NodeSet },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct LeaderTxn {
    rms: Participants,
    phase: Phase,
    /// Per instance, the vote chosen, once a phase-2 quorum reported it at one ballot.
    chosen: Vec<Option<Vote>>,
    /// Per instance, phase 2b messages by ballot.
    acks: Vec<Vec<(Ballot, Vote, NodeSet)>>,
    started_ticks: u64,
    deadline_ticks: u64,
}

impl LeaderTxn {
    fn new(rms: Participants, phase: Phase, now: u64, deadline: u64) -> LeaderTxn {
        let n = rms.len();
        LeaderTxn {
            rms,
            phase,
            chosen: vec![None; n],
            acks: vec![Vec::new(); n],
            started_ticks: now,
            deadline_ticks: deadline,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct LeaderRole {
    round_seen: u64,
    txns: BTreeMap<TxnId, LeaderTxn>,
}

impl LeaderRole {
    pub(crate) fn recover(
        round: u64,
        decided: &BTreeMap<TxnId, (Participants, Outcome)>,
    ) -> LeaderRole {
        let txns = decided
            .iter()
            .map(|(t, (rms, outcome))| {
                let phase = Phase::Decided {
                    outcome: *outcome,
                    acked: NodeSet::EMPTY,
                };
                (*t, LeaderTxn::new(rms.clone(), phase, 0, 0))
            })
            .collect();
        LeaderRole {
            round_seen: round,
            txns,
        }
    }

    pub(crate) fn outcome(&self, txn: TxnId) -> Option<Outcome> {
        match self.txns.get(&txn)?.phase {
            Phase::Decided { outcome, .. } => Some(outcome),
            _ => None,
        }
    }

    pub(crate) fn tracks(&self, txn: TxnId) -> bool {
        self.txns.contains_key(&txn)
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.txns.len()
    }

    /// Starts tracking `txn` in `phase`, unless known or the table is full.
    fn track(
        &mut self,
        ctx: &mut Ctx,
        txn: TxnId,
        rms: &Participants,
        phase: Phase,
        deadline: u64,
    ) -> bool {
        if self.txns.contains_key(&txn) {
            return true;
        }
        if self.txns.len() >= ctx.options.txns_max {
            ctx.counters.table_full += 1;
            return false;
        }
        let t = LeaderTxn::new(rms.clone(), phase, ctx.now_ticks, deadline);
        self.txns.insert(txn, t);
        true
    }

    pub(crate) fn on_begin(&mut self, ctx: &mut Ctx, from: NodeId, txn: TxnId, rms: Participants) {
        if !rms.valid() || rms.instance_of(from).is_none() || ctx.id != ctx.config.coordinator() {
            ctx.counters.refused += 1;
            return;
        }
        if self.txns.contains_key(&txn) {
            return;
        }
        let deadline = ctx.now_ticks + u64::from(ctx.options.retry_ticks);
        if self.track(ctx, txn, &rms, Phase::Voting, deadline) {
            for &to in rms.rms() {
                if to != from {
                    let msg = CommitMessage::Prepare {
                        txn,
                        rms: rms.clone(),
                    };
                    ctx.outbox.send(to, msg, 0);
                }
            }
        }
    }

    pub(crate) fn on_query(&mut self, ctx: &mut Ctx, from: NodeId, txn: TxnId, rms: Participants) {
        if !rms.valid() || rms.instance_of(from).is_none() {
            ctx.counters.refused += 1;
            return;
        }
        if let Some(t) = self.txns.get(&txn) {
            if let Phase::Decided { outcome, .. } = t.phase {
                ctx.outbox
                    .send(from, CommitMessage::Outcome { txn, outcome }, 0);
            }
            return;
        }
        // Unknown here: the coordinator lost it in a crash and takes it over at once; another
        // leader gives the coordinator time first.
        let wait = if ctx.id == ctx.config.coordinator() {
            0
        } else {
            ctx.options.takeover_timeout_ticks
        };
        let deadline = ctx.now_ticks + u64::from(wait);
        self.track(ctx, txn, &rms, Phase::Watching, deadline);
    }

    // The fields of the message, unpacked where it is routed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_phase2b(
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
        let Some(a) = ctx.config.acceptors.index_of(from) else {
            ctx.counters.refused += 1;
            return;
        };
        if !rms.valid() || i >= rms.len() {
            ctx.counters.refused += 1;
            return;
        }
        if !self.txns.contains_key(&txn) {
            let phase = if ballot.round == 0 {
                Phase::Voting
            } else {
                Phase::Watching
            };
            let deadline = ctx.now_ticks + u64::from(ctx.options.retry_ticks);
            if !self.track(ctx, txn, &rms, phase, deadline) {
                return;
            }
        }
        let Some(t) = self.txns.get_mut(&txn) else {
            return;
        };
        if t.rms != rms {
            ctx.counters.refused += 1;
            return;
        }
        if matches!(t.phase, Phase::Decided { .. }) {
            return;
        }
        let acks = &mut t.acks[i];
        let k = match acks.iter().position(|(b, _, _)| *b == ballot) {
            Some(k) => k,
            None => {
                if acks.len() >= BALLOTS_PER_INSTANCE_MAX {
                    acks.remove(0);
                }
                acks.push((ballot, vote, NodeSet::EMPTY));
                acks.len() - 1
            }
        };
        if acks[k].1 != vote {
            ctx.counters.refused += 1;
            return;
        }
        acks[k].2.insert(a);
        if ctx.config.acceptors.is_phase2_quorum(acks[k].2) {
            match t.chosen[i] {
                None => t.chosen[i] = Some(vote),
                // Paxos guarantees one value per instance; a second means broken acceptors.
                Some(v) if v != vote => ctx.counters.refused += 1,
                Some(_) => {}
            }
        }
        self.try_decide(ctx, txn);
    }

    pub(crate) fn on_phase1b(
        &mut self,
        ctx: &mut Ctx,
        from: NodeId,
        txn: TxnId,
        ballot: Ballot,
        accepted: Vec<Option<(Ballot, Vote)>>,
    ) {
        let Some(a) = ctx.config.acceptors.index_of(from) else {
            ctx.counters.refused += 1;
            return;
        };
        let Some(t) = self.txns.get_mut(&txn) else {
            return;
        };
        if accepted.len() != t.rms.len() {
            ctx.counters.refused += 1;
            return;
        }
        let Phase::Phase1 {
            ballot: b,
            promises,
            reported,
        } = &mut t.phase
        else {
            return;
        };
        if *b != ballot {
            return;
        }
        promises.insert(a);
        for (r, acc) in reported.iter_mut().zip(accepted) {
            if let Some((ab, v)) = acc {
                if r.is_none_or(|(rb, _)| ab > rb) {
                    *r = Some((ab, v));
                }
            }
        }
        if !ctx.config.acceptors.is_phase1_quorum(*promises) {
            return;
        }
        // P2c for every undecided instance: the highest-ballot value reported, else Aborted.
        let values: Vec<Option<Vote>> = reported
            .iter()
            .zip(&t.chosen)
            .map(|(r, c)| match c {
                Some(_) => None,
                None => Some(r.map_or(Vote::Aborted, |(_, v)| v)),
            })
            .collect();
        t.phase = Phase::Phase2 { ballot };
        for (i, v) in values.into_iter().enumerate() {
            let Some(vote) = v else { continue };
            for k in 0..ctx.config.acceptors.members().len() {
                let to = ctx.config.acceptors.members()[k];
                let msg = CommitMessage::Phase2a {
                    txn,
                    rms: t.rms.clone(),
                    instance: i as u8,
                    ballot,
                    vote,
                };
                ctx.outbox.send(to, msg, 0);
            }
        }
    }

    pub(crate) fn on_nack(&mut self, ctx: &mut Ctx, txn: TxnId, ballot: Ballot, promised: Ballot) {
        self.round_seen = self.round_seen.max(promised.round);
        let Some(t) = self.txns.get_mut(&txn) else {
            return;
        };
        let ours = match t.phase {
            Phase::Phase1 { ballot: b, .. } | Phase::Phase2 { ballot: b } => b == ballot,
            _ => false,
        };
        if ours && promised > ballot {
            // Another leader is at work: back off, and take over again only if it goes quiet.
            t.phase = Phase::Watching;
            t.deadline_ticks = ctx.now_ticks + u64::from(ctx.options.takeover_timeout_ticks);
        }
    }

    /// Another leader's decision: kept durably, answered to queries, and resent to RMs only
    /// if that leader has not settled it by the takeover timeout.
    pub(crate) fn on_decided(
        &mut self,
        ctx: &mut Ctx,
        from: NodeId,
        txn: TxnId,
        rms: Participants,
        outcome: Outcome,
    ) {
        if !ctx.config.leaders.contains(&from) || !rms.valid() {
            ctx.counters.refused += 1;
            return;
        }
        let deadline = ctx.now_ticks + u64::from(ctx.options.takeover_timeout_ticks);
        if !self.track(ctx, txn, &rms, Phase::Watching, deadline) {
            return;
        }
        let Some(t) = self.txns.get_mut(&txn) else {
            return;
        };
        if matches!(t.phase, Phase::Decided { .. }) || t.rms != rms {
            return;
        }
        t.phase = Phase::Decided {
            outcome,
            acked: NodeSet::EMPTY,
        };
        t.deadline_ticks = deadline;
        let needs = ctx
            .outbox
            .record(CommitPersist::LeaderDecided { txn, rms, outcome });
        ctx.decided.push((needs, txn, outcome));
    }

    /// Another leader has every RM's acknowledgement.
    pub(crate) fn on_settled(&mut self, ctx: &mut Ctx, from: NodeId, txn: TxnId) {
        if !ctx.config.leaders.contains(&from) {
            ctx.counters.refused += 1;
            return;
        }
        if self
            .txns
            .get(&txn)
            .is_some_and(|t| matches!(t.phase, Phase::Decided { .. }))
        {
            self.txns.remove(&txn);
            ctx.outbox.record(CommitPersist::LeaderForgot { txn });
        }
    }

    pub(crate) fn on_ack(&mut self, ctx: &mut Ctx, from: NodeId, txn: TxnId) {
        let Some(t) = self.txns.get_mut(&txn) else {
            return;
        };
        let Some(i) = t.rms.instance_of(from) else {
            ctx.counters.refused += 1;
            return;
        };
        if let Phase::Decided { acked, .. } = &mut t.phase {
            acked.insert(i);
            if acked.len() == t.rms.len() {
                self.txns.remove(&txn);
                ctx.outbox.record(CommitPersist::LeaderForgot { txn });
                for k in 0..ctx.config.leaders.len() {
                    let to = ctx.config.leaders[k];
                    if to != ctx.id {
                        ctx.outbox.send(to, CommitMessage::Settled { txn }, 0);
                    }
                }
            }
        }
    }

    fn try_decide(&mut self, ctx: &mut Ctx, txn: TxnId) {
        let Some(t) = self.txns.get_mut(&txn) else {
            return;
        };
        if matches!(t.phase, Phase::Decided { .. }) {
            return;
        }
        let prepared = t
            .chosen
            .iter()
            .filter(|c| **c == Some(Vote::Prepared))
            .count();
        let outcome = if t.chosen.contains(&Some(Vote::Aborted)) {
            Outcome::Aborted
        } else if prepared == t.rms.len() {
            Outcome::Committed
        } else if ctx.bugs.has(Bug::CommitWithMissingVote)
            && t.rms.len() > 1
            && prepared + 1 == t.rms.len()
        {
            // Planted: one instance's vote is still missing, and the leader commits anyway.
            Outcome::Committed
        } else {
            return;
        };
        t.phase = Phase::Decided {
            outcome,
            acked: NodeSet::EMPTY,
        };
        t.deadline_ticks = ctx.now_ticks + u64::from(ctx.options.retry_ticks);
        let rms = t.rms.clone();
        let needs = ctx.outbox.record(CommitPersist::LeaderDecided {
            txn,
            rms: rms.clone(),
            outcome,
        });
        ctx.decided.push((needs, txn, outcome));
        for &to in rms.rms() {
            ctx.outbox
                .send(to, CommitMessage::Outcome { txn, outcome }, needs);
        }
        for k in 0..ctx.config.leaders.len() {
            let to = ctx.config.leaders[k];
            if to != ctx.id {
                let msg = CommitMessage::Decided {
                    txn,
                    rms: rms.clone(),
                    outcome,
                };
                ctx.outbox.send(to, msg, needs);
            }
        }
    }

    /// Takes `txn` over now: phase 1 at a fresh ballot (a failure detector's or an operator's
    /// call; the timers call it too).
    pub(crate) fn take_over(&mut self, ctx: &mut Ctx, txn: TxnId, rms: Participants) {
        let now = ctx.now_ticks;
        if !self.track(ctx, txn, &rms, Phase::Watching, now) {
            return;
        }
        if self
            .txns
            .get(&txn)
            .is_some_and(|t| t.rms == rms && !matches!(t.phase, Phase::Decided { .. }))
        {
            self.start_phase1(ctx, txn);
        }
    }

    /// Runs phase 1 for `txn` at a ballot above every ballot seen.
    fn start_phase1(&mut self, ctx: &mut Ctx, txn: TxnId) {
        let round = self.round_seen + 1;
        self.round_seen = round;
        let Some(t) = self.txns.get_mut(&txn) else {
            return;
        };
        let ballot = Ballot::new(round, ctx.id);
        t.phase = Phase::Phase1 {
            ballot,
            promises: NodeSet::EMPTY,
            reported: vec![None; t.rms.len()],
        };
        ctx.counters.phase1_runs += 1;
        // Never reuse a ballot after a restart: the 1a messages wait until this is durable.
        let needs = ctx.outbox.record(CommitPersist::LeaderRound(round));
        for k in 0..ctx.config.acceptors.members().len() {
            let to = ctx.config.acceptors.members()[k];
            let msg = CommitMessage::Phase1a {
                txn,
                rms: t.rms.clone(),
                ballot,
            };
            ctx.outbox.send(to, msg, needs);
        }
    }

    pub(crate) fn tick(&mut self, ctx: &mut Ctx, rng: &mut impl RngCore) {
        let now = ctx.now_ticks;
        let due: Vec<TxnId> = self
            .txns
            .iter()
            .filter(|(_, t)| now >= t.deadline_ticks)
            .map(|(id, _)| *id)
            .collect();
        for txn in due {
            let jitter = rng.next_u32() % (ctx.options.retry_jitter_ticks + 1);
            let Some(t) = self.txns.get_mut(&txn) else {
                continue;
            };
            t.deadline_ticks = now + u64::from(ctx.options.retry_ticks + jitter);
            let voting = now < t.started_ticks + u64::from(ctx.options.vote_timeout_ticks);
            match &t.phase {
                Phase::Voting if voting => {
                    // Ask again the RMs whose vote is not in yet.
                    for (i, &to) in t.rms.rms().iter().enumerate() {
                        if t.chosen[i].is_none() {
                            let msg = CommitMessage::Prepare {
                                txn,
                                rms: t.rms.clone(),
                            };
                            ctx.outbox.send(to, msg, 0);
                        }
                    }
                }
                Phase::Decided { outcome, acked } => {
                    let needs = ctx.outbox.newest();
                    for (i, &to) in t.rms.rms().iter().enumerate() {
                        if !acked.contains(i) {
                            let msg = CommitMessage::Outcome {
                                txn,
                                outcome: *outcome,
                            };
                            ctx.outbox.send(to, msg, needs);
                        }
                    }
                }
                Phase::Voting | Phase::Watching | Phase::Phase1 { .. } | Phase::Phase2 { .. } => {
                    self.start_phase1(ctx, txn);
                }
            }
        }
    }
}
