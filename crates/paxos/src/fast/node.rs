//! One node of Fast Paxos: acceptor, learner and coordinator of its own rounds.
//!
//! The `match` on message kinds is in [`FastNode::step`]; each role's handling is a short
//! helper below it.

use super::{
    pick_value, FastBatch, FastConfig, FastConfigError, FastDurable, FastMessage, FastOptions,
    FastPersist, Pick, Round, RoundMode, Value, Vote, VALUE_BYTES_MAX,
};
use crate::bugs::PlantedBugs;
use crate::ids::NodeId;
use crate::outbox::{release_looping_back, Outbound, Outbox, PersistSeq};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A learner keeps the votes of at most this many rounds (the highest), which bounds its table.
pub const ROUNDS_TRACKED_MAX: usize = 8;

/// How often things happened, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FastCounters {
    /// Votes cast by this acceptor.
    pub votes: u64,
    /// Votes cast in a fast round, for a proposal received straight from a proposer.
    pub fast_votes: u64,
    /// Collisions this coordinator detected in its fast round.
    pub collisions: u64,
    /// Coordinated recoveries (phase 2a of a recovery round) this coordinator started.
    pub recoveries: u64,
    /// Classic rounds with phase 1 this node started.
    pub classic_rounds: u64,
    /// Refusals (nacks) this acceptor sent.
    pub nacks: u64,
    /// Messages ignored: from a non-node, malformed, or for a role this node is not in.
    pub ignored: u64,
    /// Quorums of votes this learner saw for a value other than the one it learned: a broken
    /// agreement, which the simulator reports (the core does not stop on its peers' say-so).
    pub conflicting_quorums: u64,
}

/// Outputs, in order: persist, then send, then what was learned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FastReady {
    /// Acceptor state to make durable, atomically, before reporting [`FastNode::persisted`].
    pub persist: Option<FastBatch>,
    /// Messages whose state is durable.
    pub send: Vec<Outbound<FastMessage>>,
    /// The value learned, the first time.
    pub learned: Option<Value>,
}

/// The coordinator's part: which of its rounds it is running.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Coordinating {
    Idle,
    /// Fast round 0: watching its phase-2b votes for a collision.
    FastWatch {
        round: Round,
        votes: BTreeMap<NodeId, Value>,
    },
    /// Classic round 0: phase 1 skipped, waiting for a proposal to send in phase 2a.
    AwaitProposal {
        round: Round,
    },
    /// Phase 1 of a classic round.
    Phase1 {
        round: Round,
        promises: BTreeMap<NodeId, Option<Vote>>,
    },
    /// Phase 2a sent.
    Phase2 {
        round: Round,
    },
}

/// One node of one Fast Paxos instance.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FastNode {
    id: NodeId,
    config: FastConfig,
    options: FastOptions,
    bugs: PlantedBugs,
    now_ticks: u64,
    // Acceptor.
    /// The acceptor state as recorded (durable once the outbox says so).
    durable: FastDurable,
    /// The fast round whose `Any` this acceptor received (volatile: forgetting it only means
    /// not voting in that fast round, which is safe).
    any_round: Option<Round>,
    /// The first proposal received (volatile): voted for once `Any` arrives, and the value a
    /// coordinator sends when it is free to pick.
    proposal: Option<Value>,
    // Coordinator.
    coordinating: Coordinating,
    /// Highest round number seen: a new round is above it.
    number_seen: u64,
    may_lead: bool,
    retry_at_ticks: Option<u64>,
    // Learner.
    votes: BTreeMap<Round, BTreeMap<NodeId, Value>>,
    learned: Option<Value>,
    learned_round: Option<Round>,
    learned_reported: bool,
    outbox: Outbox<FastMessage, FastPersist>,
    counters: FastCounters,
}

impl FastNode {
    /// A node starting with empty durable state.
    pub fn new(
        id: NodeId,
        config: FastConfig,
        options: FastOptions,
        bugs: PlantedBugs,
    ) -> Result<FastNode, FastConfigError> {
        FastNode::recover(id, config, options, bugs, FastDurable::default())
    }

    /// A node restarting from its durable acceptor state. Only a node that never promised
    /// anything runs the initial round: a restarted coordinator must not send a second, perhaps
    /// different, 2a in a round it already used, and every round it used was first promised
    /// by its own acceptor, durably, before any message of it left.
    pub fn recover(
        id: NodeId,
        config: FastConfig,
        options: FastOptions,
        bugs: PlantedBugs,
        durable: FastDurable,
    ) -> Result<FastNode, FastConfigError> {
        if !config.is_node(id) {
            return Err(FastConfigError::NotANode(id.0));
        }
        let config = config.with_planted_bugs(bugs);
        let number_seen = durable.rnd.map_or(0, |r| r.number);
        let fresh = durable.rnd.is_none();
        let mut node = FastNode {
            id,
            config,
            options,
            bugs,
            now_ticks: 0,
            durable,
            any_round: None,
            proposal: None,
            coordinating: Coordinating::Idle,
            number_seen,
            may_lead: true,
            retry_at_ticks: None,
            votes: BTreeMap::new(),
            learned: None,
            learned_round: None,
            learned_reported: false,
            outbox: Outbox::new(),
            counters: FastCounters::default(),
        };
        if fresh && id == config.initial_coordinator() {
            node.start_initial_round();
        }
        Ok(node)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }
    /// The configuration (with any planted bug applied).
    pub fn config(&self) -> FastConfig {
        self.config
    }
    /// The acceptor state as recorded.
    pub fn durable(&self) -> &FastDurable {
        &self.durable
    }
    /// The value learned, once learned.
    pub fn learned(&self) -> Option<&Value> {
        self.learned.as_ref()
    }
    /// The round whose quorum of votes this node learned from (`None` if it learned from
    /// another learner's `Chosen`, or not yet).
    pub fn learned_round(&self) -> Option<Round> {
        self.learned_round
    }
    /// Counters.
    pub fn counters(&self) -> FastCounters {
        self.counters
    }
    /// The round this node coordinates now, if any.
    pub fn coordinating(&self) -> Option<Round> {
        match &self.coordinating {
            Coordinating::Idle => None,
            Coordinating::FastWatch { round, .. }
            | Coordinating::AwaitProposal { round }
            | Coordinating::Phase1 { round, .. }
            | Coordinating::Phase2 { round } => Some(*round),
        }
    }

    /// Whether this node may start rounds on its timer: the driver's leader hint (the paper's
    /// progress argument assumes eventually a single coordinator tries, section 2.3).
    pub fn set_may_lead(&mut self, may_lead: bool) {
        self.may_lead = may_lead;
    }

    /// Starts a classic round now (or, having learned, tells the others): what the timer
    /// does when it fires.
    pub fn campaign(&mut self) {
        match self.learned.clone() {
            Some(value) => self.broadcast(FastMessage::Chosen { value }, 0),
            None => self.start_classic_round(),
        }
    }

    /// Advances time by one tick; `rng` draws the retry jitter.
    pub fn tick(&mut self, rng: &mut impl RngCore) {
        self.now_ticks += 1;
        if self.proposal.is_none() && self.learned.is_none() {
            // Nothing to do before a value is proposed: a round started now would only delay
            // the fast round that the first proposal opens.
            return;
        }
        let Some(at) = self.retry_at_ticks else {
            self.schedule_retry(rng);
            return;
        };
        if self.now_ticks < at {
            return;
        }
        self.schedule_retry(rng);
        if self.may_lead {
            self.campaign();
        }
    }

    fn schedule_retry(&mut self, rng: &mut impl RngCore) {
        let jitter = rng.next_u32() % self.options.retry_jitter_ticks.saturating_add(1);
        let wait = u64::from(self.options.retry_timeout_ticks) + u64::from(jitter);
        self.retry_at_ticks = Some(self.now_ticks + wait.max(1));
    }

    /// Handles a message from `from` (a node, or a proposer for [`FastMessage::Propose`]).
    pub fn step(&mut self, from: NodeId, msg: FastMessage) {
        if !self.config.is_node(from) && !matches!(msg, FastMessage::Propose { .. }) {
            self.counters.ignored += 1;
            return;
        }
        match msg {
            FastMessage::Propose { value } => self.on_propose(value),
            FastMessage::Phase1a { round } => self.on_phase1a(from, round),
            FastMessage::Phase1b { round, vote } => self.on_phase1b(from, round, vote),
            FastMessage::Any { round } => self.on_any(from, round),
            FastMessage::Phase2a { round, value } => self.on_phase2a(from, round, value),
            FastMessage::Phase2b { round, value } => self.on_phase2b(from, round, value),
            FastMessage::Nack { round, promised } => self.on_nack(round, promised),
            FastMessage::Chosen { value } => self.on_chosen(value),
        }
    }

    fn valid_value(&mut self, value: &Value) -> bool {
        let ok = value.len() <= VALUE_BYTES_MAX;
        if !ok {
            self.counters.ignored += 1;
        }
        ok
    }

    fn see(&mut self, round: Round) {
        self.number_seen = self.number_seen.max(round.number);
    }

    fn broadcast(&mut self, msg: FastMessage, needs: u64) {
        for to in self.config.node_ids() {
            self.outbox.send(to, msg.clone(), needs);
        }
    }

    // ---- acceptor ----

    /// Records a change to the acceptor state; returns the batch it is durable under.
    fn record(&mut self, op: FastPersist) -> u64 {
        self.durable.apply(&op);
        self.outbox.record(op)
    }

    /// Promises `round` if it is above the current promise; false if it is below.
    fn promise(&mut self, round: Round) -> bool {
        if self.durable.rnd > Some(round) {
            return false;
        }
        if self.durable.rnd < Some(round) {
            self.record(FastPersist::Promise(round));
        }
        true
    }

    fn vote(&mut self, round: Round, value: Value) {
        assert!(self.durable.rnd <= Some(round), "vote below the promise");
        if let Some((r, v)) = &self.durable.vote {
            assert!(*r <= round, "votes go back from round {r} to {round}");
            if *r == round {
                // A second 2a in one round (a duplicate): repeat the vote, never change it.
                assert!(*v == value, "two votes in round {round}");
                let value = v.clone();
                self.broadcast(FastMessage::Phase2b { round, value }, self.outbox.newest());
                return;
            }
        }
        self.counters.votes += 1;
        let needs = self.record(FastPersist::Vote((round, value.clone())));
        self.broadcast(FastMessage::Phase2b { round, value }, needs);
    }

    fn nack(&mut self, round: Round) {
        if let Some(promised) = self.durable.rnd {
            self.counters.nacks += 1;
            self.outbox
                .send(round.coordinator, FastMessage::Nack { round, promised }, 0);
        }
    }

    fn on_phase1a(&mut self, from: NodeId, round: Round) {
        self.see(round);
        if from != round.coordinator {
            self.counters.ignored += 1;
            return;
        }
        if !self.promise(round) {
            return self.nack(round);
        }
        let vote = self.durable.vote.clone();
        let needs = self.outbox.newest();
        self.outbox.send(
            round.coordinator,
            FastMessage::Phase1b { round, vote },
            needs,
        );
    }

    fn on_any(&mut self, from: NodeId, round: Round) {
        self.see(round);
        if from != round.coordinator || !self.config.is_fast(round) {
            self.counters.ignored += 1;
            return;
        }
        if !self.promise(round) {
            return self.nack(round);
        }
        self.any_round = Some(round);
        self.try_fast_vote();
    }

    fn on_phase2a(&mut self, from: NodeId, round: Round, value: Value) {
        self.see(round);
        if from != round.coordinator || !self.valid_value(&value) {
            self.counters.ignored += 1;
            return;
        }
        if self.durable.rnd > Some(round) {
            return self.nack(round);
        }
        if let Some((r, v)) = &self.durable.vote {
            if *r == round && *v != value {
                // Its coordinator sent two values in one round: refuse the second.
                self.counters.ignored += 1;
                return;
            }
        }
        self.vote(round, value);
    }

    /// In a fast round whose `Any` arrived, vote for the first proposal, once.
    fn try_fast_vote(&mut self) {
        let Some(round) = self.any_round else { return };
        if self.durable.rnd != Some(round)
            || self.durable.vote.as_ref().is_some_and(|(r, _)| *r == round)
        {
            return;
        }
        let Some(value) = self.proposal.clone() else {
            return;
        };
        self.counters.fast_votes += 1;
        self.vote(round, value);
    }

    fn on_propose(&mut self, value: Value) {
        if !self.valid_value(&value) {
            return;
        }
        if self.proposal.is_none() {
            self.proposal = Some(value);
        }
        self.try_fast_vote();
        match self.coordinating.clone() {
            Coordinating::AwaitProposal { round } => self.send_phase2a(round),
            Coordinating::Phase1 { round, .. } => self.try_phase2a(round),
            _ => {}
        }
    }

    // ---- coordinator ----

    /// Round 0: fast (send `Any` in advance) or classic (wait for a proposal). Phase 1 is
    /// skipped because no round is below it.
    fn start_initial_round(&mut self) {
        let round = Round::initial(self.id);
        debug_assert!(self.durable.rnd.is_none());
        // Our own acceptor promises the round durably before any message of it leaves, so a
        // restart never runs it again.
        let needs = self.record(FastPersist::Promise(round));
        match self.config.mode() {
            RoundMode::Fast => {
                self.broadcast(FastMessage::Any { round }, needs);
                self.coordinating = Coordinating::FastWatch {
                    round,
                    votes: BTreeMap::new(),
                };
            }
            RoundMode::Classic => {
                self.coordinating = Coordinating::AwaitProposal { round };
                if self.proposal.is_some() {
                    self.send_phase2a(round);
                }
            }
        }
    }

    /// A classic round with phase 1, above every round seen (section 2.2).
    fn start_classic_round(&mut self) {
        let number = self
            .number_seen
            .max(self.durable.rnd.map_or(0, |r| r.number))
            + 1;
        self.number_seen = number;
        let round = Round {
            number,
            coordinator: self.id,
            recovery: false,
        };
        assert!(number >= 1 && Some(round) > self.durable.rnd);
        self.counters.classic_rounds += 1;
        let needs = self.record(FastPersist::Promise(round));
        self.broadcast(FastMessage::Phase1a { round }, needs);
        self.coordinating = Coordinating::Phase1 {
            round,
            promises: BTreeMap::new(),
        };
    }

    fn on_phase1b(&mut self, from: NodeId, round: Round, vote: Option<Vote>) {
        let Coordinating::Phase1 {
            round: mine,
            promises,
        } = &mut self.coordinating
        else {
            return;
        };
        if round != *mine {
            return;
        }
        if vote
            .as_ref()
            .is_some_and(|(r, v)| *r > round || v.len() > VALUE_BYTES_MAX)
        {
            self.counters.ignored += 1;
            return;
        }
        promises.insert(from, vote);
        self.try_phase2a(round);
    }

    /// Phase 2a of a classic round, once a quorum promised and a value is safe to send.
    fn try_phase2a(&mut self, round: Round) {
        let Coordinating::Phase1 { promises, .. } = &self.coordinating else {
            return;
        };
        if promises.len() < self.config.quorum(round) {
            return;
        }
        let reports: Vec<(NodeId, Option<Vote>)> =
            promises.iter().map(|(n, v)| (*n, v.clone())).collect();
        let value = match pick_value(&self.config, &reports, self.bugs) {
            Pick::Value(v) => v,
            Pick::Free => match self.proposal.clone() {
                Some(v) => v,
                // Nothing proposed yet: wait for a proposal.
                None => return,
            },
        };
        self.coordinating = Coordinating::Phase2 { round };
        let needs = self.outbox.newest();
        self.broadcast(FastMessage::Phase2a { round, value }, needs);
    }

    /// Phase 2a of the classic round 0, with the first proposal.
    fn send_phase2a(&mut self, round: Round) {
        let Some(value) = self.proposal.clone() else {
            return;
        };
        self.coordinating = Coordinating::Phase2 { round };
        let needs = self.outbox.newest();
        self.broadcast(FastMessage::Phase2a { round, value }, needs);
    }

    /// Coordinated recovery (section 3.2): the fast round's votes from a quorum serve as the
    /// phase-1b messages of its recovery round, which no round lies between.
    fn watch_fast_round(&mut self, from: NodeId, round: Round, value: &Value) {
        let Coordinating::FastWatch { round: fast, votes } = &mut self.coordinating else {
            return;
        };
        if round != *fast {
            return;
        }
        votes.insert(from, value.clone());
        let fast = *fast;
        let quorums = self.config.quorums();
        let mut counts: BTreeMap<&Value, usize> = BTreeMap::new();
        for v in votes.values() {
            *counts.entry(v).or_default() += 1;
        }
        let unheard = quorums.acceptors - votes.len();
        if counts.values().any(|&c| c >= quorums.fast) {
            // Chosen in the fast round: nothing to recover.
            self.coordinating = Coordinating::Idle;
            return;
        }
        let collision = counts.len() >= 2
            && counts.values().all(|&c| c + unheard < quorums.fast)
            && votes.len() >= quorums.classic;
        if !collision {
            return;
        }
        self.counters.collisions += 1;
        let reports: Vec<(NodeId, Option<Vote>)> = votes
            .iter()
            .map(|(n, v)| (*n, Some((fast, v.clone()))))
            .collect();
        let recovery = fast.recovery_round();
        let Pick::Value(value) = pick_value(&self.config, &reports, self.bugs) else {
            unreachable!("votes were reported");
        };
        if !self.promise(recovery) {
            // Our own acceptor moved on to a higher round: that round will recover.
            self.coordinating = Coordinating::Idle;
            return;
        }
        self.counters.recoveries += 1;
        self.coordinating = Coordinating::Phase2 { round: recovery };
        let needs = self.outbox.newest();
        self.broadcast(
            FastMessage::Phase2a {
                round: recovery,
                value,
            },
            needs,
        );
    }

    fn on_nack(&mut self, round: Round, promised: Round) {
        self.see(promised);
        if self.coordinating() == Some(round) && promised > round {
            // A higher round is under way: stop; the timer starts a higher one if need be.
            self.coordinating = Coordinating::Idle;
        }
    }

    // ---- learner ----

    fn on_phase2b(&mut self, from: NodeId, round: Round, value: Value) {
        self.see(round);
        if !self.valid_value(&value) {
            return;
        }
        self.watch_fast_round(from, round, &value);
        if !self.votes.contains_key(&round) && self.votes.len() >= ROUNDS_TRACKED_MAX {
            let lowest = *self.votes.keys().next().expect("table is full");
            if lowest > round {
                return;
            }
            self.votes.remove(&lowest);
        }
        let voters = self.votes.entry(round).or_default();
        if let Some(earlier) = voters.get(&from) {
            if *earlier != value {
                // An acceptor never votes twice in a round: a peer's bug, not ours to count.
                self.counters.ignored += 1;
            }
            return;
        }
        voters.insert(from, value.clone());
        let count = voters.values().filter(|v| **v == value).count();
        if count >= self.config.quorum(round) {
            self.learn(value, Some(round));
        }
    }

    fn on_chosen(&mut self, value: Value) {
        if self.valid_value(&value) {
            self.learn(value, None);
        }
    }

    fn learn(&mut self, value: Value, round: Option<Round>) {
        match &self.learned {
            None => {
                self.learned = Some(value);
                self.learned_round = round;
            }
            Some(v) if *v != value => self.counters.conflicting_quorums += 1,
            Some(_) => {
                if self.learned_round.is_none() {
                    self.learned_round = round;
                }
            }
        }
    }

    // ---- outputs ----

    /// The driver reports batches up to `seq` durable.
    ///
    /// # Panics
    /// If `seq` was never handed out (a driver bug that would let messages leave early).
    pub fn persisted(&mut self, seq: PersistSeq) {
        assert!(
            self.outbox.persisted(seq),
            "persisted({seq:?}) was never handed out"
        );
    }

    /// Drains outputs: persist, then send, then what was learned. Messages to itself are
    /// delivered inside (they cost no message delay).
    pub fn ready(&mut self) -> FastReady {
        let me = self.id;
        let send = release_looping_back(self, me, false, |node| &mut node.outbox, Self::step);
        let learned = match (&self.learned, self.learned_reported) {
            (Some(v), false) => {
                self.learned_reported = true;
                Some(v.clone())
            }
            _ => None,
        };
        FastReady {
            persist: self.outbox.take_batch(),
            send,
            learned,
        }
    }
}
