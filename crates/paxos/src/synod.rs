//! Single-decree Paxos, the Synod protocol of The Part-Time Parliament: proposers, acceptors
//! and learners agreeing on one value.
//!
//! A [`SynodNode`] is a proposer and learner, and an acceptor if it is a member of the
//! acceptors' configuration. Drive it like the Multi-Paxos replica: inputs through
//! [`SynodNode::propose`], [`SynodNode::step`], [`SynodNode::tick`], [`SynodNode::persisted`];
//! outputs from [`SynodNode::ready`] in the order persist, send, learn.

use crate::bugs::{Bug, PlantedBugs};
use crate::ids::{Ballot, NodeId};
use crate::outbox::{release_looping_back, Outbound, Outbox, PersistBatch, PersistSeq};
use crate::quorum::{Configuration, NodeSet};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::hash::Hash;

/// What a value must be to be agreed on: cloned, compared, hashed (for model checking), shown.
pub trait SynodValue: Clone + Debug + PartialEq + Eq + Hash {}
impl<T: Clone + Debug + PartialEq + Eq + Hash> SynodValue for T {}

/// Messages of the Synod protocol.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SynodMessage<V> {
    /// Phase 1a: "promise not to accept below `ballot`".
    Prepare {
        /// The proposer's ballot.
        ballot: Ballot,
    },
    /// Phase 1b: the promise, with the highest-ballot value this acceptor accepted, if any.
    Promise {
        /// The promised ballot.
        ballot: Ballot,
        /// `(ballot, value)` last accepted.
        accepted: Option<(Ballot, V)>,
    },
    /// Phase 2a: "accept `value` at `ballot`".
    Accept {
        /// The proposer's ballot.
        ballot: Ballot,
        /// The value.
        value: V,
    },
    /// Phase 2b.
    Accepted {
        /// The ballot accepted.
        ballot: Ballot,
    },
    /// Refusal carrying the higher ballot promised, so the proposer can retry above it.
    Nack {
        /// The refused ballot.
        ballot: Ballot,
        /// The higher ballot promised.
        promised: Ballot,
    },
    /// A learner's news: `value` is chosen.
    Chosen {
        /// The chosen value.
        value: V,
    },
}

/// A durable state change of a Synod node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SynodPersist<V> {
    /// The proposer used `ballot`: after a restart it must start above it.
    Proposed(Ballot),
    /// The acceptor promised `ballot`.
    Promised(Ballot),
    /// The acceptor accepted `value` at `ballot`.
    Accepted(Ballot, V),
}

/// What a Synod node keeps across a crash.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SynodDurable<V> {
    /// Highest ballot this node proposed with.
    pub proposed: Ballot,
    /// Highest ballot promised.
    pub promised: Ballot,
    /// Last accepted `(ballot, value)`.
    pub accepted: Option<(Ballot, V)>,
}

impl<V> Default for SynodDurable<V> {
    fn default() -> Self {
        SynodDurable {
            proposed: Ballot::ZERO,
            promised: Ballot::ZERO,
            accepted: None,
        }
    }
}

impl<V: Clone> SynodDurable<V> {
    /// Applies one persisted op, as storage would on replay.
    pub fn apply(&mut self, op: &SynodPersist<V>) {
        match op {
            SynodPersist::Proposed(b) => self.proposed = self.proposed.max(*b),
            SynodPersist::Promised(b) => self.promised = self.promised.max(*b),
            SynodPersist::Accepted(b, v) => {
                self.promised = self.promised.max(*b);
                self.accepted = Some((*b, v.clone()));
            }
        }
    }
}

/// Outputs of a Synod node, in the order to handle them: persist, send, learn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SynodReady<V> {
    /// State to make durable, then report with `persisted`.
    pub persist: Option<PersistBatch<SynodPersist<V>>>,
    /// Messages safe to send now.
    pub send: Vec<Outbound<SynodMessage<V>>>,
    /// The chosen value, the first time this node learns it.
    pub learned: Option<V>,
}

/// Where this node's proposer stands.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ProposerPhase<V> {
    /// Not proposing, or backing off after a refusal.
    Idle,
    /// Phase 1: collecting promises, remembering the highest-ballot accepted value reported.
    Preparing {
        /// Acceptors that promised.
        promises: NodeSet,
        /// Highest-ballot accepted value among the promises.
        highest: Option<(Ballot, V)>,
    },
    /// Phase 2: the value is fixed; collecting accepts.
    Accepting {
        /// The value proposed.
        value: V,
        /// Acceptors that accepted.
        accepted: NodeSet,
    },
}

/// Timings of the proposer's retries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SynodOptions {
    /// An attempt that has not chosen a value after this many ticks (plus jitter) is retried.
    pub retry_timeout_ticks: u32,
    /// Upper bound of the random extra per retry, drawn from the caller's generator: the
    /// randomized backoff that ends duels between proposers.
    pub retry_jitter_ticks: u32,
}

impl Default for SynodOptions {
    fn default() -> Self {
        SynodOptions {
            retry_timeout_ticks: 10,
            retry_jitter_ticks: 10,
        }
    }
}

/// A proposer, learner, and (if a member) acceptor of one Synod instance.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SynodNode<V: SynodValue> {
    id: NodeId,
    acceptors: Configuration,
    options: SynodOptions,
    bugs: PlantedBugs,
    now_ticks: u64,
    // Acceptor.
    promised: Ballot,
    accepted: Option<(Ballot, V)>,
    // Proposer.
    proposal: Option<V>,
    ballot: Ballot,
    round_seen: u64,
    phase: ProposerPhase<V>,
    retry_at_ticks: Option<u64>,
    // Learner.
    chosen: Option<V>,
    learned_reported: bool,
    outbox: Outbox<SynodMessage<V>, SynodPersist<V>>,
}

impl<V: SynodValue> SynodNode<V> {
    /// A node that has never run.
    pub fn new(id: NodeId, acceptors: Configuration, options: SynodOptions) -> Self {
        Self::recover(
            id,
            acceptors,
            options,
            SynodDurable::default(),
            PlantedBugs::none(),
        )
    }

    /// A node restarted from its durable state.
    pub fn recover(
        id: NodeId,
        acceptors: Configuration,
        options: SynodOptions,
        durable: SynodDurable<V>,
        bugs: PlantedBugs,
    ) -> Self {
        let promised = if bugs.has(Bug::ForgetPromiseOnRestart) {
            Ballot::ZERO
        } else {
            durable.promised
        };
        let round_seen = durable.proposed.round.max(durable.promised.round);
        SynodNode {
            id,
            acceptors,
            options,
            bugs,
            now_ticks: 0,
            promised,
            accepted: durable.accepted,
            proposal: None,
            ballot: Ballot::ZERO,
            round_seen,
            phase: ProposerPhase::Idle,
            retry_at_ticks: None,
            chosen: None,
            learned_reported: false,
            outbox: Outbox::new(),
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }
    /// Highest ballot promised (as acceptor).
    pub fn promised(&self) -> Ballot {
        self.promised
    }
    /// Last accepted `(ballot, value)` (as acceptor).
    pub fn accepted(&self) -> Option<&(Ballot, V)> {
        self.accepted.as_ref()
    }
    /// The proposer's current ballot.
    pub fn ballot(&self) -> Ballot {
        self.ballot
    }
    /// The proposer's phase.
    pub fn phase(&self) -> &ProposerPhase<V> {
        &self.phase
    }
    /// The chosen value, once learned.
    pub fn chosen(&self) -> Option<&V> {
        self.chosen.as_ref()
    }
    /// Whether this node is an acceptor.
    pub fn is_acceptor(&self) -> bool {
        self.acceptors.contains(self.id)
    }

    /// Proposes `value`: starts phase 1 at a ballot above every ballot seen.
    pub fn propose(&mut self, value: V) {
        if self.chosen.is_some() {
            return;
        }
        self.proposal = Some(value);
        self.start_attempt();
    }

    /// Starts a new attempt now, as if the retry timer fired.
    pub fn retry(&mut self) {
        if self.proposal.is_some() && self.chosen.is_none() {
            self.start_attempt();
        }
    }

    /// Advances time by one tick; `rng` draws the retry backoff.
    pub fn tick(&mut self, rng: &mut impl RngCore) {
        self.now_ticks += 1;
        if self.proposal.is_none() || self.chosen.is_some() {
            return;
        }
        let at = match self.retry_at_ticks {
            Some(at) => at,
            None => {
                let jitter = rng.next_u32() % (self.options.retry_jitter_ticks + 1);
                let at = self.now_ticks + u64::from(self.options.retry_timeout_ticks + jitter);
                self.retry_at_ticks = Some(at);
                at
            }
        };
        if self.now_ticks >= at {
            self.start_attempt();
        }
    }

    fn start_attempt(&mut self) {
        self.retry_at_ticks = None;
        let round = self.round_seen.max(self.promised.round) + 1;
        self.round_seen = round;
        self.ballot = Ballot::new(round, self.id);
        self.phase = ProposerPhase::Preparing {
            promises: NodeSet::EMPTY,
            highest: None,
        };
        // Never reuse a ballot after a restart: the Prepares wait until this is durable.
        let needs = self.outbox.record(SynodPersist::Proposed(self.ballot));
        let ballot = self.ballot;
        for i in 0..self.acceptors.members().len() {
            let to = self.acceptors.members()[i];
            self.outbox
                .send(to, SynodMessage::Prepare { ballot }, needs);
        }
    }

    /// Handles a message. Messages from outside the cluster's acceptors (for acceptor replies)
    /// or with a ballot not owned by their sender (for proposer requests) are ignored.
    pub fn step(&mut self, from: NodeId, msg: SynodMessage<V>) {
        match msg {
            SynodMessage::Prepare { ballot } if ballot.node == from && ballot.is_real() => {
                self.on_prepare(from, ballot)
            }
            SynodMessage::Accept { ballot, value } if ballot.node == from && ballot.is_real() => {
                self.on_accept(from, ballot, value)
            }
            SynodMessage::Promise { ballot, accepted } => self.on_promise(from, ballot, accepted),
            SynodMessage::Accepted { ballot } => self.on_accepted(from, ballot),
            SynodMessage::Nack { ballot, promised } => self.on_nack(ballot, promised),
            SynodMessage::Chosen { value } => self.learn(value),
            SynodMessage::Prepare { .. } | SynodMessage::Accept { .. } => {}
        }
    }

    fn on_prepare(&mut self, from: NodeId, ballot: Ballot) {
        if !self.is_acceptor() {
            return;
        }
        self.round_seen = self.round_seen.max(ballot.round);
        if ballot < self.promised {
            let nack = SynodMessage::Nack {
                ballot,
                promised: self.promised,
            };
            self.outbox.send(from, nack, 0);
            return;
        }
        if ballot > self.promised {
            self.promised = ballot;
            self.outbox.record(SynodPersist::Promised(ballot));
        }
        let promise = SynodMessage::Promise {
            ballot,
            accepted: self.accepted.clone(),
        };
        let needs = self.outbox.newest();
        self.outbox.send(from, promise, needs);
    }

    fn on_accept(&mut self, from: NodeId, ballot: Ballot, value: V) {
        if !self.is_acceptor() {
            return;
        }
        self.round_seen = self.round_seen.max(ballot.round);
        if ballot < self.promised && !self.bugs.has(Bug::AcceptLowerBallot) {
            let nack = SynodMessage::Nack {
                ballot,
                promised: self.promised,
            };
            self.outbox.send(from, nack, 0);
            return;
        }
        self.promised = self.promised.max(ballot);
        // A repeated Accept (the network may duplicate) needs no second write: the answer waits
        // for everything recorded so far, the first write of this accept included.
        if self
            .accepted
            .as_ref()
            .is_some_and(|(b, v)| *b == ballot && *v == value)
        {
            let needs = self.outbox.newest();
            self.outbox
                .send(from, SynodMessage::Accepted { ballot }, needs);
            return;
        }
        self.accepted = Some((ballot, value.clone()));
        let needs = self.outbox.record(SynodPersist::Accepted(ballot, value));
        self.outbox
            .send(from, SynodMessage::Accepted { ballot }, needs);
    }

    fn on_promise(&mut self, from: NodeId, ballot: Ballot, accepted: Option<(Ballot, V)>) {
        let Some(i) = self.acceptors.index_of(from) else {
            return;
        };
        if ballot != self.ballot {
            return;
        }
        let ignore = self.bugs.has(Bug::IgnorePromisedValues);
        let ProposerPhase::Preparing { promises, highest } = &mut self.phase else {
            return;
        };
        promises.insert(i);
        if let Some((b, v)) = accepted {
            if !ignore && highest.as_ref().is_none_or(|(hb, _)| b > *hb) {
                *highest = Some((b, v));
            }
        }
        if !self.acceptors.is_phase1_quorum(*promises) {
            return;
        }
        // P2c: propose the value of the highest ballot reported, or our own if none was.
        let value = match highest.take() {
            Some((_, v)) => v,
            None => match self.proposal.clone() {
                Some(v) => v,
                None => return,
            },
        };
        self.phase = ProposerPhase::Accepting {
            value: value.clone(),
            accepted: NodeSet::EMPTY,
        };
        for k in 0..self.acceptors.members().len() {
            let to = self.acceptors.members()[k];
            let accept = SynodMessage::Accept {
                ballot,
                value: value.clone(),
            };
            self.outbox.send(to, accept, 0);
        }
    }

    fn on_accepted(&mut self, from: NodeId, ballot: Ballot) {
        let Some(i) = self.acceptors.index_of(from) else {
            return;
        };
        if ballot != self.ballot {
            return;
        }
        let without_quorum = self.bugs.has(Bug::ChosenWithoutQuorum);
        let ProposerPhase::Accepting { value, accepted } = &mut self.phase else {
            return;
        };
        accepted.insert(i);
        if self.acceptors.is_phase2_quorum(*accepted) || without_quorum {
            let value = value.clone();
            self.phase = ProposerPhase::Idle;
            for k in 0..self.acceptors.members().len() {
                let to = self.acceptors.members()[k];
                if to != self.id {
                    let msg = SynodMessage::Chosen {
                        value: value.clone(),
                    };
                    self.outbox.send(to, msg, 0);
                }
            }
            self.learn(value);
        }
    }

    fn on_nack(&mut self, ballot: Ballot, promised: Ballot) {
        self.round_seen = self.round_seen.max(promised.round);
        if ballot == self.ballot && promised > ballot && self.phase != ProposerPhase::Idle {
            // Back off: the next attempt comes from the retry timer, after random jitter.
            self.phase = ProposerPhase::Idle;
        }
    }

    fn learn(&mut self, value: V) {
        match &self.chosen {
            Some(v) => assert!(
                *v == value || self.bugs.any(),
                "two values chosen: {v:?} and {value:?}"
            ),
            None => self.chosen = Some(value),
        }
    }

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

    /// Drains outputs: persist, then send, then what was learned.
    pub fn ready(&mut self) -> SynodReady<V> {
        let (me, skip_persist) = (self.id, self.bugs.has(Bug::SkipPersist));
        let send =
            release_looping_back(self, me, skip_persist, |node| &mut node.outbox, Self::step);
        let learned = match (&self.chosen, self.learned_reported) {
            (Some(v), false) => {
                self.learned_reported = true;
                Some(v.clone())
            }
            _ => None,
        };
        SynodReady {
            persist: self.outbox.take_batch(),
            send,
            learned,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Delivers every message in FIFO order, persisting instantly, until quiet.
    fn run(nodes: &mut [SynodNode<&'static str>], drop: impl Fn(NodeId, NodeId) -> bool) {
        let mut queue: VecDeque<(NodeId, NodeId, SynodMessage<&'static str>)> = VecDeque::new();
        for _ in 0..1000 {
            for n in nodes.iter_mut() {
                loop {
                    let r = n.ready();
                    let had = r.persist.is_some();
                    if let Some(b) = r.persist {
                        n.persisted(b.seq);
                    }
                    for o in r.send {
                        queue.push_back((n.id(), o.to, o.msg));
                    }
                    if !had {
                        break;
                    }
                }
            }
            let Some((from, to, msg)) = queue.pop_front() else {
                return;
            };
            if !drop(from, to) {
                nodes[(to.0 - 1) as usize].step(from, msg);
            }
        }
    }

    fn cluster() -> Vec<SynodNode<&'static str>> {
        let c = Configuration::majority_of(3).unwrap();
        (1..=3)
            .map(|i| SynodNode::new(NodeId(i), c.clone(), SynodOptions::default()))
            .collect()
    }

    #[test]
    fn one_proposer_gets_its_value_chosen() {
        let mut nodes = cluster();
        nodes[0].propose("x");
        run(&mut nodes, |_, _| false);
        for n in &nodes {
            assert_eq!(n.chosen(), Some(&"x"), "node {}", n.id());
        }
    }

    #[test]
    fn a_later_proposer_adopts_the_accepted_value() {
        // Paxos Made Simple, P2c: once "x" is chosen, a higher ballot must propose "x".
        let mut nodes = cluster();
        nodes[0].propose("x");
        run(&mut nodes, |_, to| to == NodeId(3));
        assert_eq!(nodes[0].chosen(), Some(&"x"));
        nodes[2].propose("y");
        run(&mut nodes, |_, _| false);
        assert_eq!(nodes[2].chosen(), Some(&"x"));
        assert_eq!(nodes[2].accepted().map(|a| a.1), Some("x"));
    }

    #[test]
    fn a_lower_ballot_is_refused_with_the_higher_one() {
        let mut nodes = cluster();
        nodes[1].propose("b");
        nodes[1].propose("b");
        run(&mut nodes, |_, _| true);
        let high = Ballot::new(5, NodeId(3));
        nodes[0].step(NodeId(3), SynodMessage::Prepare { ballot: high });
        let _ = nodes[0].ready();
        nodes[0].persisted(PersistSeq(1));
        let _ = nodes[0].ready();
        nodes[0].step(
            NodeId(2),
            SynodMessage::Prepare {
                ballot: Ballot::new(2, NodeId(2)),
            },
        );
        let r = nodes[0].ready();
        assert!(r.send.iter().any(|o| o.msg
            == SynodMessage::Nack {
                ballot: Ballot::new(2, NodeId(2)),
                promised: high
            }));
    }

    #[test]
    fn a_promise_is_not_sent_before_it_is_durable() {
        let mut nodes = cluster();
        nodes[0].step(
            NodeId(2),
            SynodMessage::Prepare {
                ballot: Ballot::new(1, NodeId(2)),
            },
        );
        let r = nodes[0].ready();
        assert!(
            r.send.is_empty(),
            "promise left before persisted: {:?}",
            r.send
        );
        let batch = r.persist.expect("promise to persist");
        assert_eq!(
            batch.ops,
            vec![SynodPersist::Promised(Ballot::new(1, NodeId(2)))]
        );
        nodes[0].persisted(batch.seq);
        let r = nodes[0].ready();
        assert!(matches!(r.send[0].msg, SynodMessage::Promise { .. }));
    }
}
