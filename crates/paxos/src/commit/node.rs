//! A node of Paxos Commit: any mix of the three parts (resource manager, acceptor, leader)
//! behind one sans-IO interface and one persist-before-send outbox.

use super::acceptor::AcceptorRole;
use super::leader::LeaderRole;
use super::rm::RmRole;
use super::types::{
    CommitConfig, CommitCounters, CommitDurable, CommitError, CommitMessage, CommitOptions,
    CommitPersist, Outcome, Participants, TxnId, Vote,
};
use crate::bugs::PlantedBugs;
use crate::ids::NodeId;
use crate::outbox::{Outbound, Outbox, PersistBatch, PersistSeq};
use rand_core::RngCore;

/// Which parts a node plays.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Roles {
    /// Resource manager: votes, learns outcomes.
    pub rm: bool,
    /// Acceptor: a member of `CommitConfig::acceptors`.
    pub acceptor: bool,
    /// Leader: one of `CommitConfig::leaders`.
    pub leader: bool,
}

/// Outputs, in the order to handle them: persist, send, then what the node's application
/// must hear (votes to give, outcomes learned and decided, each only once durable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitReady {
    /// State to make durable, then report with [`CommitNode::persisted`].
    pub persist: Option<PersistBatch<CommitPersist>>,
    /// Messages safe to send now.
    pub send: Vec<Outbound<CommitMessage>>,
    /// Transactions whose vote this RM must give, with [`CommitNode::vote`].
    pub prepare: Vec<TxnId>,
    /// Outcomes this RM learned (durably).
    pub learned: Vec<(TxnId, Outcome)>,
    /// Outcomes this leader decided, or heard another leader decide (durably).
    pub decided: Vec<(TxnId, Outcome)>,
}

/// What plays a resource manager: a local store, or later a whole consensus group (its
/// "prepare" is then a log entry, and its vote arrives once that entry is chosen).
pub trait ResourceManager {
    /// Asked to prepare `txn`. Answer now, or `None` and call [`CommitNode::vote`] later.
    fn prepare(&mut self, txn: TxnId) -> Option<Vote>;
    /// The outcome of `txn`, durable at this node. Called once per learning.
    fn learn(&mut self, txn: TxnId, outcome: Outcome);
}

/// Everything the parts share: identity, configuration, clock, outbox and the gated outputs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Ctx {
    pub(crate) id: NodeId,
    pub(crate) config: CommitConfig,
    pub(crate) options: CommitOptions,
    pub(crate) bugs: PlantedBugs,
    pub(crate) now_ticks: u64,
    pub(crate) outbox: Outbox<CommitMessage, CommitPersist>,
    pub(crate) prepare: Vec<TxnId>,
    /// `(batch needed, txn, outcome)`: released once that batch is durable.
    pub(crate) learned: Vec<(u64, TxnId, Outcome)>,
    pub(crate) decided: Vec<(u64, TxnId, Outcome)>,
    pub(crate) counters: CommitCounters,
}

/// One node of Paxos Commit.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CommitNode {
    ctx: Ctx,
    rm: Option<RmRole>,
    acceptor: Option<AcceptorRole>,
    leader: Option<LeaderRole>,
}

impl CommitNode {
    /// A node that has never run.
    pub fn new(id: NodeId, roles: Roles, config: CommitConfig, options: CommitOptions) -> Self {
        Self::recover(
            id,
            roles,
            config,
            options,
            &CommitDurable::default(),
            PlantedBugs::none(),
        )
    }

    /// A node restarted from its durable state.
    pub fn recover(
        id: NodeId,
        roles: Roles,
        config: CommitConfig,
        options: CommitOptions,
        durable: &CommitDurable,
        bugs: PlantedBugs,
    ) -> Self {
        assert!(
            !config.leaders.is_empty(),
            "Paxos Commit needs a coordinator"
        );
        assert!(
            !roles.acceptor || config.acceptors.contains(id),
            "{id} is not an acceptor"
        );
        assert!(
            !roles.leader || config.leaders.contains(&id),
            "{id} is not a leader"
        );
        CommitNode {
            rm: roles.rm.then(|| RmRole::recover(&durable.rm)),
            acceptor: roles
                .acceptor
                .then(|| AcceptorRole::recover(&durable.acceptor)),
            leader: roles
                .leader
                .then(|| LeaderRole::recover(durable.leader_round, &durable.leader_decided)),
            ctx: Ctx {
                id,
                config,
                options,
                bugs,
                now_ticks: 0,
                outbox: Outbox::new(),
                prepare: Vec::new(),
                learned: Vec::new(),
                decided: Vec::new(),
                counters: CommitCounters::default(),
            },
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.ctx.id
    }

    /// Refusals and takeovers so far.
    pub fn counters(&self) -> &CommitCounters {
        &self.ctx.counters
    }

    /// The outcome this RM knows for `txn` (an Aborted vote counts once durable or not).
    pub fn rm_outcome(&self, txn: TxnId) -> Option<Outcome> {
        self.rm.as_ref()?.outcome(txn)
    }

    /// This RM's vote on `txn`, if given.
    pub fn rm_vote(&self, txn: TxnId) -> Option<Vote> {
        self.rm.as_ref()?.vote_of(txn)
    }

    /// The outcome this leader decided or heard for `txn`, while it still tracks it.
    pub fn leader_outcome(&self, txn: TxnId) -> Option<Outcome> {
        self.leader.as_ref()?.outcome(txn)
    }

    /// Whether this node holds any state about `txn` in memory (as RM or leader).
    pub fn knows(&self, txn: TxnId) -> bool {
        self.rm.as_ref().is_some_and(|r| r.knows(txn))
            || self.leader.as_ref().is_some_and(|l| l.tracks(txn))
    }

    /// Transactions this leader tracks.
    pub fn leader_in_flight(&self) -> usize {
        self.leader.as_ref().map_or(0, |l| l.in_flight())
    }

    /// This RM asks to commit `txn` over `rms` (itself among them): BeginCommit goes to the
    /// coordinator, and its own vote is asked for through [`CommitReady::prepare`].
    pub fn begin(&mut self, txn: TxnId, rms: Vec<crate::NodeId>) -> Result<(), CommitError> {
        let rms = Participants::new(rms)?;
        let Some(rm) = self.rm.as_mut() else {
            return Err(CommitError::NotAParticipant);
        };
        rm.begin(&mut self.ctx, txn, rms)
    }

    /// This RM's vote on `txn`, once asked through [`CommitReady::prepare`].
    pub fn vote(&mut self, txn: TxnId, vote: Vote) -> Result<(), CommitError> {
        let Some(rm) = self.rm.as_mut() else {
            return Err(CommitError::NotAParticipant);
        };
        rm.vote(&mut self.ctx, txn, vote)
    }

    /// This leader takes `txn` over at once (phase 1 at a fresh ballot, proposing Aborted for
    /// every instance with no accepted value), rather than wait for its takeover timer.
    pub fn take_over(&mut self, txn: TxnId, rms: Vec<NodeId>) -> Result<(), CommitError> {
        let rms = Participants::new(rms)?;
        let Some(l) = self.leader.as_mut() else {
            return Err(CommitError::NotALeader);
        };
        l.take_over(&mut self.ctx, txn, rms);
        Ok(())
    }

    /// Handles a message from a peer. Anything malformed or unexpected is refused and counted.
    pub fn step(&mut self, from: NodeId, msg: CommitMessage) {
        let ctx = &mut self.ctx;
        match msg {
            CommitMessage::Begin { txn, rms } => match &mut self.leader {
                Some(l) => l.on_begin(ctx, from, txn, rms),
                None => ctx.counters.refused += 1,
            },
            CommitMessage::Prepare { txn, rms } => match &mut self.rm {
                Some(r) if ctx.config.leaders.contains(&from) && rms.valid() => {
                    r.on_prepare(ctx, txn, rms)
                }
                _ => ctx.counters.refused += 1,
            },
            CommitMessage::Phase2a {
                txn,
                rms,
                instance,
                ballot,
                vote,
            } => match &mut self.acceptor {
                Some(a) => a.on_phase2a(ctx, from, txn, rms, instance, ballot, vote),
                None => ctx.counters.refused += 1,
            },
            CommitMessage::Phase1a { txn, rms, ballot } => match &mut self.acceptor {
                Some(a) => a.on_phase1a(ctx, from, txn, rms, ballot),
                None => ctx.counters.refused += 1,
            },
            CommitMessage::Phase2b {
                txn,
                rms,
                instance,
                ballot,
                vote,
            } => match &mut self.leader {
                Some(l) => l.on_phase2b(ctx, from, txn, rms, instance, ballot, vote),
                None => ctx.counters.refused += 1,
            },
            CommitMessage::Phase1b {
                txn,
                ballot,
                accepted,
            } => match &mut self.leader {
                Some(l) => l.on_phase1b(ctx, from, txn, ballot, accepted),
                None => ctx.counters.refused += 1,
            },
            CommitMessage::Nack {
                txn,
                ballot,
                promised,
            } => {
                if let Some(l) = &mut self.leader {
                    l.on_nack(ctx, txn, ballot, promised);
                }
            }
            CommitMessage::Query { txn, rms } => match &mut self.leader {
                Some(l) => l.on_query(ctx, from, txn, rms),
                None => ctx.counters.refused += 1,
            },
            CommitMessage::Outcome { txn, outcome } => {
                if !ctx.config.leaders.contains(&from) {
                    ctx.counters.refused += 1;
                    return;
                }
                match &mut self.rm {
                    Some(r) => r.on_outcome(ctx, from, txn, outcome),
                    None => ctx.counters.refused += 1,
                }
            }
            CommitMessage::Decided { txn, rms, outcome } => match &mut self.leader {
                Some(l) => l.on_decided(ctx, from, txn, rms, outcome),
                None => ctx.counters.refused += 1,
            },
            CommitMessage::Settled { txn } => match &mut self.leader {
                Some(l) => l.on_settled(ctx, from, txn),
                None => ctx.counters.refused += 1,
            },
            CommitMessage::OutcomeAck { txn } => {
                if let Some(l) = &mut self.leader {
                    l.on_ack(ctx, from, txn);
                }
            }
        }
    }

    /// Advances time by one tick; `rng` draws retry jitter.
    pub fn tick(&mut self, rng: &mut impl RngCore) {
        self.ctx.now_ticks += 1;
        if let Some(r) = &mut self.rm {
            r.tick(&mut self.ctx, rng);
        }
        if let Some(l) = &mut self.leader {
            l.tick(&mut self.ctx, rng);
        }
    }

    /// The driver reports batches up to `seq` durable.
    ///
    /// # Panics
    /// If `seq` was never handed out (a driver bug that would let messages leave early).
    pub fn persisted(&mut self, seq: PersistSeq) {
        assert!(
            self.ctx.outbox.persisted(seq),
            "persisted({seq:?}) was never handed out"
        );
    }

    /// Drains outputs: persist, then send, then what the application must hear.
    pub fn ready(&mut self) -> CommitReady {
        let mut send = Vec::new();
        let mut released = Vec::new();
        loop {
            released.clear();
            if self.ctx.bugs.has(crate::Bug::SkipPersist) {
                self.ctx.outbox.release_ignoring_durability(&mut released);
            } else {
                self.ctx.outbox.release(&mut released);
            }
            let mut looped_back = false;
            for (to, msg) in released.drain(..) {
                if to == self.ctx.id {
                    looped_back = true;
                    self.step(to, msg);
                } else {
                    send.push(Outbound { to, msg });
                }
            }
            if !looped_back {
                break;
            }
        }
        let outbox = &self.ctx.outbox;
        let learned = drain_durable(&mut self.ctx.learned, |s| outbox.is_durable(s));
        let decided = drain_durable(&mut self.ctx.decided, |s| outbox.is_durable(s));
        CommitReady {
            persist: self.ctx.outbox.take_batch(),
            send,
            prepare: std::mem::take(&mut self.ctx.prepare),
            learned,
            decided,
        }
    }

    /// Hands `ready`'s requests and outcomes to `rm`, voting where it answers at once.
    pub fn serve(&mut self, ready: &CommitReady, rm: &mut impl ResourceManager) {
        for &(txn, outcome) in &ready.learned {
            rm.learn(txn, outcome);
        }
        for &txn in &ready.prepare {
            if let Some(v) = rm.prepare(txn) {
                // Refused only if the outcome arrived meanwhile: nothing left to vote on.
                let _ = self.vote(txn, v);
            }
        }
    }
}

fn drain_durable(
    gated: &mut Vec<(u64, TxnId, Outcome)>,
    durable: impl Fn(u64) -> bool,
) -> Vec<(TxnId, Outcome)> {
    let mut out = Vec::new();
    gated.retain(|&(needs, txn, o)| {
        if durable(needs) {
            out.push((txn, o));
            false
        } else {
            true
        }
    });
    out
}
