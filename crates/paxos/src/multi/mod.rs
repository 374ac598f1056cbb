//! Multi-Paxos: a replicated log of slots, a stable leader that skips phase 1, pipelining,
//! batching, takeover with re-proposals and no-ops, catch-up, and read-index reads.
//!
//! A [`Replica`] plays every role at once: acceptor (`acceptor.rs`), candidate and leader
//! (`leader.rs`), learner (`learner.rs`). It is driven through [`Replica::step`],
//! [`Replica::tick`], [`Replica::propose`], [`Replica::read`] and [`Replica::persisted`], and
//! its outputs are drained with [`Replica::ready`], whose documented order is persist, send,
//! apply. Messages to itself never leave: they loop back inside `ready` once durable, so the
//! replica's own promise and accept count toward a quorum only after they are on disk.

mod acceptor;
mod apply;
mod cheap;
mod leader;
mod learner;
mod lease;
mod rebuild;
mod reconfig;
mod types;

pub use apply::{
    incarnation_key, Applied, Applier, Registration, Registrations, SessionOutcome, StateMachine,
    REGISTRATIONS_MAX, REGISTRATION_CLIENT, SESSIONS_PER_INCARNATION, SESSION_BITS,
};
pub use cheap::{DROP_AFTER_TIMEOUTS, READMIT_EVERY_TIMEOUTS, SUSPECT_AFTER_DIVISOR};
pub use lease::LeaderLease;
pub use types::*;

use crate::bugs::{Bug, PlantedBugs};
use crate::ids::{Ballot, NodeId, Slot};
use crate::outbox::{Outbound, Outbox, PersistSeq};
use crate::quorum::{ConfigError, Configuration, NodeSet, QuorumSpec};
use rand_core::RngCore;
use std::collections::{BTreeMap, VecDeque};

/// One slot of the in-memory log.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct LogEntry {
    ballot: Ballot,
    value: Value,
    chosen: bool,
}

/// A slot this leader proposed and has not yet seen chosen.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Proposal {
    value: Value,
    accepted: NodeSet,
    /// When phase 2a for this slot was last sent, so a lost Accept or Accepted is re-sent.
    sent_ticks: u64,
}

/// Counters of what the replica refused or noticed. Read them; they never affect decisions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Counters {
    /// Messages refused, by reason.
    pub rejected: BTreeMap<RejectReason, u64>,
    /// Times this replica became leader.
    pub elections_won: u64,
    /// Phase-1 attempts started.
    pub elections_started: u64,
    /// Times this replica stopped leading.
    pub leaderships_lost: u64,
    /// Configurations this replica entered after its start (stop-signs passed).
    pub configurations_entered: u64,
    /// Cheap Paxos: times this leader began sending to the auxiliaries because a main fell
    /// silent.
    pub auxiliaries_engaged: u64,
    /// Cheap Paxos: stop-signs this leader proposed to drop a failed main.
    pub mains_dropped: u64,
    /// Cheap Paxos: dropped mains (learners of a configuration short of mains) this leader
    /// heard from again, once per epoch and node.
    pub mains_returned: u64,
    /// Cheap Paxos: stop-signs this leader proposed to re-admit a returned main.
    pub mains_readmitted: u64,
    /// Cheap Paxos: configurations this replica entered as leader with more mains than the
    /// one it left (a re-admission that took effect).
    pub readmissions_entered: u64,
    /// Leader leases: reads this leader served under its lease, with no confirmation round.
    pub leased_reads: u64,
    /// Leader leases: Prepares held unanswered because this replica had granted a lease.
    pub promises_held_by_lease: u64,
    /// Leader leases: times this leader ran phase 1 again because a rebuilding voter needed
    /// a ballot above its fence (rebuild.rs): nobody else can get one while it renews grants.
    pub ballots_raised_for_rebuild: u64,
    /// Phase-2a messages this leader sent again because a slot stayed short of a quorum
    /// (one per `Accept` re-sent, to one member).
    pub accepts_resent: u64,
    /// Read-index confirmation rounds this leader started (one heartbeat round each).
    pub read_rounds: u64,
    /// Reads those rounds carried: `read_round_reads / read_rounds` is reads per round.
    pub read_round_reads: u64,
    /// Pre-votes this replica answered with a refusal (it heard a live leader, does not
    /// vote, or the asker is in an older configuration).
    pub pre_votes_refused: u64,
    /// Phase-1a messages this candidate sent again at the same ballot because a promise had
    /// not come within an election timeout (one per `Prepare` re-sent, to one voter).
    pub prepares_resent: u64,
}

/// How many election timeouts a voter's round query ([`Message::RoundQuery`]) marks it as
/// possibly rebuilding ([`Replica::voters_rebuilding`]). A rebuilding voter asks again every
/// election timeout until it is fenced and has the leader's log end, then catches up: a few
/// timeouts cover the catch-up after its last ask.
pub const REBUILD_ASK_FRESH_TIMEOUTS: u64 = 4;

/// A Multi-Paxos replica: sans-IO, single-threaded, deterministic given its inputs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Replica {
    id: NodeId,
    /// This replica's index in `membership.config` (voters first, then learners); only
    /// meaningful while it is a member (see `is_member`).
    index: usize,
    /// The configuration in force: who votes on slots from `membership.first_slot` on.
    membership: Membership,
    /// The configuration before it, so that a removed member's messages are recognized and
    /// refused as such (and a leaving leader's `TakeLead` is heard).
    previous: Option<Configuration>,
    /// As leader: the slot of the stop-sign it proposed or adopted in this epoch. Nothing is
    /// proposed after it (Stoppable Paxos); it clears when the next configuration is entered.
    stop_sign: Option<Slot>,
    /// How far the search for a chosen stop-sign has looked in the epoch in force (see
    /// `enter_chosen_configurations`): a cache, so each chosen slot is looked at once.
    stop_sign_scanned: reconfig::StopSignScan,
    /// A phase-1a from a later epoch that arrived while this replica lagged: handled once it
    /// has caught up into that epoch, so the candidate need not wait an election timeout.
    deferred_prepare: Option<(NodeId, Ballot, Slot, u64)>,
    options: ReplicaOptions,
    bugs: PlantedBugs,
    now_ticks: u64,

    // Acceptor: durable.
    promised: Ballot,
    log: BTreeMap<Slot, LogEntry>,
    /// Slots up to here are chosen, applied and covered by a durable snapshot; `log` holds
    /// nothing for them. Invariant: `compacted_through <= handed_out_through <= chosen_through`.
    compacted_through: Slot,
    /// Some while this replica is a non-voting learner after losing its disk (rebuild.rs).
    rebuild: Option<rebuild::Rebuild>,

    // Learner.
    chosen_through: Slot,
    handed_out_through: Slot,
    catch_up_asked_ticks: Option<u64>,
    /// A peer compacted chosen slots this replica lacks: ask the driver for its snapshot.
    snapshot_wanted: Option<SnapshotWanted>,
    /// When `snapshot_wanted` was last handed to the driver: it is handed out again every
    /// election timeout until a snapshot is installed, since a transfer can fail and nothing
    /// else may remind this replica (a leader behind a compacted prefix hears of it only once).
    snapshot_asked_ticks: Option<u64>,
    /// Highest compacted prefix any promise reported during this candidacy, and who reported it.
    takeover_compacted: Option<(NodeId, Slot)>,
    /// Slots up to here are known chosen because a peer compacted them, though this replica
    /// has not installed the snapshot with their values yet.
    peer_compacted: Slot,

    // Election.
    role: Role,
    leader: Option<NodeId>,
    round_seen: u64,
    election_elapsed_ticks: u32,
    election_timeout_ticks: Option<u32>,
    /// The persist batch that holds this replica's newest promise: while it is slow to become
    /// durable the election timer stands still (see `promise_slow_in_flight`).
    promise_persist_seq: u64,
    /// When (`now_ticks`) this replica recorded its newest promise.
    promise_recorded_ticks: u64,
    /// Phase-1a rounds this candidate re-sent at its current ballot (bounded by
    /// `PREPARE_RESENDS_MAX`, then it moves to a higher ballot).
    prepare_resends: u32,
    heard_leader_ticks: Option<u64>,
    pre_vote_round: u64,
    pre_votes: NodeSet,

    // Candidate.
    ballot: Ballot,
    promises: NodeSet,
    takeover: BTreeMap<Slot, SlotRecord>,

    // Leader.
    next_slot: Slot,
    proposals: BTreeMap<Slot, Proposal>,
    pending: VecDeque<Command>,
    heartbeat_elapsed_ticks: u32,
    /// The highest `chosen_through` any message to the followers has carried since this
    /// replica became leader.
    chosen_announced: Slot,
    acked_ticks: Vec<u64>,
    /// Each member's chosen prefix as it last reported it (heartbeat echoes): how far a
    /// learner lags before it may be promoted.
    peer_chosen: Vec<Slot>,
    read_round: u64,
    acked_round: Vec<u64>,
    reads_unsent: Vec<(ReadId, Slot)>,
    reads_in_round: BTreeMap<u64, Vec<(ReadId, Slot)>>,
    /// Cheap Paxos: whether a main is silent, so the auxiliaries are sent to (cheap.rs).
    cheap_engaged: bool,
    /// Cheap Paxos: the leader's re-admission bookkeeping (cheap.rs, habit 4).
    readmit: cheap::Readmit,
    /// Voters heard asking for rounds (`RoundQuery`, which only a rebuilding replica sends),
    /// with the tick of the latest ask: [`Replica::voters_rebuilding`]. One entry per voter
    /// of the configuration in force at most.
    rebuild_asks: BTreeMap<NodeId, u64>,
    /// Leader leases: the grant this voter gave, and the lease this leader holds (lease.rs).
    lease: lease::LeaseState,

    outbox: Outbox<Message, PersistOp>,
    read_outcomes: Vec<ReadOutcome>,
    abandoned: Vec<CommandId>,
    counters: Counters,
}

impl Replica {
    /// A replica with empty durable state, as at a cluster's first start.
    pub fn new(
        id: NodeId,
        config: Configuration,
        options: ReplicaOptions,
    ) -> Result<Replica, ConfigError> {
        Replica::recover(id, config, options, DurableState::default())
    }

    /// A replica whose durable state was lost (a wiped or replaced disk) while it was a member
    /// that may have voted. It must not trust its empty state: it does not vote (as a learner
    /// does not) until no promise it may have forgotten can matter and it holds again the
    /// chosen log it may have voted for (see rebuild.rs). `config` is the configuration it
    /// knows; if that does not list it (it was added at run time), it learns the one in force
    /// as a joiner does ([`Replica::join`]) and starts its rebuild once it is a voter there.
    /// The first [`Ready`] persists [`PersistOp::RebuildStarted`].
    pub fn rebuild(
        id: NodeId,
        config: Configuration,
        options: ReplicaOptions,
    ) -> Result<Replica, ConfigError> {
        let state = DurableState {
            membership: Some(Membership::initial(config)),
            ..DurableState::default()
        };
        let placeholder = Membership::initial_placeholder();
        let mut replica = Replica::recover(id, placeholder, options, state)?;
        replica.outbox.record(PersistOp::RebuildStarted);
        replica.start_rebuild();
        Ok(replica)
    }

    /// A replica that is not (yet) a member of `config`, started empty to join the cluster:
    /// it votes for nothing and runs for nothing, and learns the chosen log from whoever
    /// sends it (catch-up, or a snapshot through [`Replica::install_snapshot_in`]) until it
    /// enters a configuration that lists it, as a learner first.
    pub fn join(
        id: NodeId,
        config: Configuration,
        options: ReplicaOptions,
    ) -> Result<Replica, ConfigError> {
        let state = DurableState {
            membership: Some(Membership::initial(config)),
            ..DurableState::default()
        };
        Replica::recover(id, Membership::initial_placeholder(), options, state)
    }

    /// A replica restarted from what its storage holds.
    pub fn recover(
        id: NodeId,
        config: Configuration,
        options: ReplicaOptions,
        state: DurableState,
    ) -> Result<Replica, ConfigError> {
        Replica::recover_with_bugs(id, config, options, state, PlantedBugs::none())
    }

    /// As [`Replica::recover`], with test-only planted bugs switched on (they do nothing unless
    /// the crate is built with the `planted-bugs` feature).
    pub fn recover_with_bugs(
        id: NodeId,
        config: Configuration,
        options: ReplicaOptions,
        state: DurableState,
        bugs: PlantedBugs,
    ) -> Result<Replica, ConfigError> {
        // A replica given a membership explicitly (recovered, or joining) may be outside it:
        // it then waits, without a vote, to learn a configuration that includes it.
        let explicit = state.membership.is_some();
        let membership = state
            .membership
            .clone()
            .unwrap_or_else(|| Membership::initial(config));
        let index = match membership.config.index_of(id) {
            Some(i) => i,
            None if explicit => 0,
            None => return Err(ConfigError::NotAMember(id)),
        };
        let n = membership.config.len_everyone();
        let mut promised = state.promised.unwrap_or(Ballot::ZERO);
        if bugs.has(Bug::ForgetPromiseOnRestart) {
            promised = Ballot::ZERO;
        }
        let log: BTreeMap<Slot, LogEntry> = state
            .entries
            .into_iter()
            .map(|(slot, e)| {
                let entry = LogEntry {
                    ballot: e.ballot,
                    value: e.value,
                    chosen: e.chosen,
                };
                (slot, entry)
            })
            .collect();
        let compacted_through = state.compacted_through;
        assert!(
            log.keys().next().is_none_or(|s| *s > compacted_through),
            "storage returned log entries at or below its snapshot's slot {compacted_through}"
        );
        let rebuilding = state.rebuilding;
        let round_seen = log
            .values()
            .map(|e| e.ballot.round)
            .max()
            .unwrap_or(0)
            .max(promised.round);
        let mut replica = Replica {
            id,
            index,
            membership,
            previous: None,
            stop_sign: None,
            stop_sign_scanned: reconfig::StopSignScan::default(),
            deferred_prepare: None,
            options,
            bugs,
            now_ticks: 0,
            promised,
            log,
            compacted_through,
            rebuild: None,
            chosen_through: compacted_through,
            handed_out_through: compacted_through,
            catch_up_asked_ticks: None,
            snapshot_wanted: None,
            snapshot_asked_ticks: None,
            takeover_compacted: None,
            peer_compacted: compacted_through,
            role: Role::Follower,
            leader: None,
            round_seen,
            election_elapsed_ticks: 0,
            election_timeout_ticks: None,
            promise_persist_seq: 0,
            promise_recorded_ticks: 0,
            prepare_resends: 0,
            heard_leader_ticks: None,
            pre_vote_round: 0,
            pre_votes: NodeSet::EMPTY,
            ballot: Ballot::ZERO,
            promises: NodeSet::EMPTY,
            takeover: BTreeMap::new(),
            next_slot: compacted_through.next(),
            proposals: BTreeMap::new(),
            pending: VecDeque::new(),
            heartbeat_elapsed_ticks: 0,
            chosen_announced: Slot::ZERO,
            acked_ticks: vec![0; n],
            peer_chosen: vec![Slot::ZERO; n],
            read_round: 0,
            acked_round: vec![0; n],
            reads_unsent: Vec::new(),
            reads_in_round: BTreeMap::new(),
            cheap_engaged: false,
            readmit: cheap::Readmit::default(),
            rebuild_asks: BTreeMap::new(),
            lease: lease::LeaseState::default(),
            outbox: Outbox::new(),
            read_outcomes: Vec::new(),
            abandoned: Vec::new(),
            counters: Counters::default(),
        };
        replica.start_lease();
        replica.advance_chosen_through();
        replica.enter_chosen_configurations();
        if rebuilding {
            // Crashed while rebuilding: the fence it had gathered was not durable; start over.
            replica.start_rebuild();
        }
        Ok(replica)
    }

    /// The driver made durable a snapshot of the state machine covering every slot through
    /// `through` (applied, so chosen): the log before it is dropped from memory. Storage drops
    /// it from disk on its own schedule.
    ///
    /// # Panics
    /// If `through` was not handed out for apply: a snapshot cannot cover unapplied slots.
    pub fn compact(&mut self, through: Slot) {
        assert!(
            through <= self.handed_out_through,
            "snapshot through {through} covers slots not yet applied (applied through {})",
            self.handed_out_through
        );
        if through <= self.compacted_through {
            return;
        }
        self.log = self.log.split_off(&through.next());
        self.compacted_through = through;
    }

    /// The driver restored the state machine from a peer's snapshot covering every slot
    /// through `through` and made it durable (see [`Ready::snapshot_wanted`]). Slots up to
    /// there count as chosen and applied; apply continues after it.
    pub fn install_snapshot(&mut self, through: Slot) {
        if through <= self.handed_out_through {
            return;
        }
        self.log = self.log.split_off(&through.next());
        self.compacted_through = through;
        self.handed_out_through = through;
        self.chosen_through = self.chosen_through.max(through);
        if self.next_slot <= through {
            self.next_slot = through.next();
        }
        self.proposals = self.proposals.split_off(&through.next());
        if self.snapshot_wanted.is_some_and(|w| w.through <= through) {
            self.snapshot_wanted = None;
            self.snapshot_asked_ticks = None;
        }
        self.advance_chosen_through();
    }

    /// This replica's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The configuration in force.
    pub fn config(&self) -> &Configuration {
        &self.membership.config
    }

    /// The configuration in force, its epoch and its first slot.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// The configuration epoch (how many changes this replica has passed).
    pub fn epoch(&self) -> u64 {
        self.membership.epoch
    }

    /// Whether this replica votes in the configuration in force.
    pub fn is_voter(&self) -> bool {
        self.membership.config.is_voter(self.id)
    }

    /// Whether this replica is a voter or a learner of the configuration in force (false once
    /// removed, and while a joining replica has not yet learned the change that adds it).
    pub fn is_member(&self) -> bool {
        self.membership.config.contains(self.id)
    }

    /// The role played now.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Who this replica believes leads (itself included).
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// Log entries held (accepted or chosen, above the compacted prefix): what a caller
    /// bounds, e.g. a Cheap Paxos auxiliary's retained values.
    pub fn log_len(&self) -> usize {
        self.log.len()
    }

    /// Slots up to here are compacted into the snapshot.
    pub fn compacted_through(&self) -> Slot {
        self.compacted_through
    }

    /// Slots up to here have been handed out for apply (see [`Ready::chosen`]).
    pub fn handed_out_through(&self) -> Slot {
        self.handed_out_through
    }

    /// Whether this replica votes (promises and accepts); false while rebuilding after a lost
    /// disk, as a learner, and outside the configuration.
    pub fn is_voting(&self) -> bool {
        self.rebuild.is_none() && self.is_voter()
    }

    /// The highest ballot this acceptor has promised.
    pub fn promised(&self) -> Ballot {
        self.promised
    }

    /// This replica's own ballot as candidate or leader (ZERO if it never ran).
    pub fn ballot(&self) -> Ballot {
        self.ballot
    }

    /// Every slot up to here is known chosen.
    pub fn chosen_through(&self) -> Slot {
        self.chosen_through
    }

    /// The accepted (or chosen) entry at `slot`: `(ballot, value, known chosen)`.
    pub fn entry(&self, slot: Slot) -> Option<(Ballot, &Value, bool)> {
        self.log.get(&slot).map(|e| (e.ballot, &e.value, e.chosen))
    }

    /// Slots with an entry, ascending.
    pub fn slots(&self) -> impl Iterator<Item = Slot> + '_ {
        self.log.keys().copied()
    }

    /// As leader: the highest slot proposed so far (every slot up to it has a proposal or a
    /// chosen value). Meaningless while not leading.
    pub fn proposed_through(&self) -> Slot {
        Slot(self.next_slot.0.saturating_sub(1))
    }

    /// As leader: each other member's chosen prefix as it last reported it (heartbeat
    /// echoes), so the caller can show how far each lags. Empty while not leading.
    pub fn peers_chosen_through(&self) -> Vec<(NodeId, Slot)> {
        if self.role != Role::Leader {
            return Vec::new();
        }
        (0..self.peer_chosen.len())
            .filter(|&i| i != self.index)
            .map(|i| (self.member_at(i), self.peer_chosen[i]))
            .collect()
    }

    /// Voters of the configuration in force that asked this replica for rounds within the
    /// last [`REBUILD_ASK_FRESH_TIMEOUTS`] election timeouts: they lost their disk and may
    /// still be rebuilding, so they may not vote. A rebuilding voter counts in no phase-1
    /// quorum and fences only once every voter has reported, so a change that takes away
    /// another voter of the old configuration must not count on it (`member`'s removal check).
    pub fn voters_rebuilding(&self) -> Vec<NodeId> {
        let fresh =
            u64::from(self.options.election_timeout_ticks.max(1)) * REBUILD_ASK_FRESH_TIMEOUTS;
        self.rebuild_asks
            .iter()
            .filter(|(n, at)| {
                self.membership.config.is_voter(**n) && self.now_ticks.saturating_sub(**at) < fresh
            })
            .map(|(n, _)| *n)
            .collect()
    }

    /// Commands waiting for a slot at this leader.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// The options this replica runs with (drivers size their own timers from them).
    pub fn options(&self) -> &ReplicaOptions {
        &self.options
    }

    /// Counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Virtual time in ticks since this incarnation started.
    pub fn now_ticks(&self) -> u64 {
        self.now_ticks
    }

    /// Advances time by one tick. `rng` supplies election jitter; nothing else random happens.
    pub fn tick(&mut self, rng: &mut impl RngCore) {
        self.now_ticks += 1;
        self.tick_lease();
        if !self.is_voter() || self.is_auxiliary() {
            // Learners and outsiders never run for leader; they only learn. Cheap Paxos's
            // auxiliaries only vote, when asked.
            return;
        }
        if self.rebuild.is_some() && self.role != Role::Leader {
            self.tick_rebuild(rng);
            return;
        }
        match self.role {
            Role::Leader => self.tick_leader(),
            Role::Follower | Role::PreCandidate | Role::Candidate => {
                if self.promise_slow_in_flight() {
                    // This replica's newest promise has been on its way to disk for a third of
                    // an election timeout (a disk slower than the timer): whoever it promised,
                    // itself included, cannot count it yet, and an election of its own would
                    // queue behind it. Election time runs only from when it is durable
                    // (leader.rs, `promise_slow_in_flight`).
                    self.election_elapsed_ticks = 0;
                    return;
                }
                self.election_elapsed_ticks = self.election_elapsed_ticks.saturating_add(1);
                if self.election_elapsed_ticks >= self.election_timeout(rng) {
                    self.seek_election();
                }
            }
        }
    }

    /// Starts phase 1 now with a fresh ballot, skipping the pre-vote: a forced election, as in
    /// a leadership transfer, or for explorers and model checkers that choose who runs.
    /// (The election timer goes through the pre-vote instead; see [`Replica::tick`].)
    pub fn campaign(&mut self) {
        if !self.is_voter() || self.is_auxiliary() {
            return;
        }
        if self.rebuild.is_some() && self.fence_round().is_none() {
            // A rebuilding replica may run only above its fence, which it does not know yet.
            return;
        }
        if self.role != Role::Leader && self.put_off_campaign() {
            // It granted another leader a lease (lease.rs): it runs once the grant is over.
            return;
        }
        if self.role != Role::Leader {
            self.reset_election_timer();
            self.start_phase1();
        }
    }

    /// Handles a message from `from`. A refused message changes nothing and is counted.
    pub fn step(&mut self, from: NodeId, msg: Message) -> Result<(), RejectReason> {
        if let Err(reason) = self.validate(from, &msg) {
            *self.counters.rejected.entry(reason).or_insert(0) += 1;
            if reason == RejectReason::RemovedMember {
                // A removed member that still acts in its old epoch learns it is behind.
                self.tell_stale(from, &msg);
            }
            return Err(reason);
        }
        if let Some(epoch) = msg.epoch() {
            if epoch != self.membership.epoch {
                *self
                    .counters
                    .rejected
                    .entry(RejectReason::OtherEpoch)
                    .or_insert(0) += 1;
                self.on_other_epoch(from, epoch, msg);
                self.enter_chosen_configurations();
                return Err(RejectReason::OtherEpoch);
            }
        }
        self.dispatch(from, msg);
        self.enter_chosen_configurations();
        Ok(())
    }

    fn dispatch(&mut self, from: NodeId, msg: Message) {
        match msg {
            Message::PreVote { round, .. } => self.on_pre_vote(from, round),
            Message::PreVoteReply { round, granted } => {
                self.on_pre_vote_reply(from, round, granted)
            }
            Message::Prepare {
                ballot, from_slot, ..
            } => self.on_prepare(from, ballot, from_slot),
            Message::Promise {
                ballot,
                records,
                next_from,
                compacted_through,
                ..
            } => self.on_promise(from, ballot, records, next_from, compacted_through),
            Message::Accept {
                ballot,
                slot,
                value,
                chosen_through,
                ..
            } => self.on_accept(from, ballot, slot, value, chosen_through),
            Message::Accepted { ballot, slot } => self.on_accepted(from, ballot, slot),
            Message::Nack { ballot, promised } => self.on_nack(ballot, promised),
            Message::Heartbeat {
                ballot,
                chosen_through,
                round,
                ..
            } => self.on_heartbeat(from, ballot, chosen_through, round),
            Message::HeartbeatAck {
                ballot,
                round,
                chosen_through,
            } => self.on_heartbeat_ack(from, ballot, round, chosen_through),
            Message::CatchUp { from_slot } => self.on_catch_up(from, from_slot),
            Message::Learn {
                records,
                chosen_through,
                compacted_through,
            } => self.on_learn(from, records, chosen_through, compacted_through),
            Message::RoundQuery => {
                if self.membership.config.is_voter(from) {
                    self.rebuild_asks.insert(from, self.now_ticks);
                }
                self.rebuild_asks
                    .retain(|n, _| self.membership.config.is_voter(*n));
                debug_assert!(self.rebuild_asks.len() <= self.membership.config.members().len());
                self.on_round_query(from)
            }
            Message::RoundReport {
                round,
                log_end,
                leading,
            } => self.on_round_report(from, round, log_end, leading),
            Message::TakeLead { .. } => self.on_take_lead(from),
            Message::RaiseBallot { epoch, round } => self.on_raise_ballot(from, epoch, round),
        }
    }

    /// Refuses what no correct peer sends: strangers, ballots not owned by their sender, slots
    /// beyond the horizon, malformed pages.
    fn validate(&self, from: NodeId, msg: &Message) -> Result<(), RejectReason> {
        if from == self.id {
            return Err(RejectReason::FromSelf);
        }
        self.validate_sender(from, msg)?;
        let own_ballot = |b: &Ballot| b.is_real() && b.node == from;
        let slot_ok = |s: &Slot| {
            s.0 >= 1
                && s.0
                    <= self
                        .chosen_through
                        .0
                        .saturating_add(self.options.slot_horizon)
        };
        let page_ok = |records: &[SlotRecord]| {
            records.len() <= self.options.page_records_max.max(1)
                && records.windows(2).all(|w| w[0].slot < w[1].slot)
                && records
                    .iter()
                    .all(|r| slot_ok(&r.slot) && r.ballot.is_real())
        };
        match msg {
            Message::Prepare {
                ballot, from_slot, ..
            } => {
                if !own_ballot(ballot) {
                    return Err(RejectReason::ImpossibleBallot);
                }
                if from_slot.0 == 0 {
                    return Err(RejectReason::ImpossibleSlot);
                }
            }
            Message::Accept { ballot, slot, .. } => {
                if !own_ballot(ballot) {
                    return Err(RejectReason::ImpossibleBallot);
                }
                if !slot_ok(slot) {
                    return Err(RejectReason::ImpossibleSlot);
                }
            }
            Message::Heartbeat { ballot, .. } => {
                if !own_ballot(ballot) {
                    return Err(RejectReason::ImpossibleBallot);
                }
            }
            Message::Promise {
                records, from_slot, ..
            } => {
                if !page_ok(records) || records.first().is_some_and(|r| r.slot < *from_slot) {
                    return Err(RejectReason::Malformed);
                }
            }
            Message::Learn {
                records,
                chosen_through,
                compacted_through,
            } => {
                if !page_ok(records)
                    || records.iter().any(|r| !r.chosen)
                    || compacted_through > chosen_through
                {
                    return Err(RejectReason::Malformed);
                }
            }
            Message::Accepted { slot, .. } => {
                if !slot_ok(slot) {
                    return Err(RejectReason::ImpossibleSlot);
                }
            }
            Message::CatchUp { from_slot } => {
                if from_slot.0 == 0 {
                    return Err(RejectReason::ImpossibleSlot);
                }
            }
            Message::PreVote { .. }
            | Message::TakeLead { .. }
            | Message::RaiseBallot { .. }
            | Message::RoundQuery
            | Message::RoundReport { .. }
            | Message::PreVoteReply { .. }
            | Message::Nack { .. }
            | Message::HeartbeatAck { .. } => {}
        }
        Ok(())
    }

    /// Queues a command for a slot. Only a leader accepts proposals.
    pub fn propose(&mut self, command: Command) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if command.payload.len() > self.options.command_bytes_max {
            return Err(ProposeError::TooLarge {
                bytes: command.payload.len(),
                limit: self.options.command_bytes_max,
            });
        }
        if self.pending.len() >= self.options.pending_commands_max {
            return Err(ProposeError::Busy {
                pending: self.pending.len(),
            });
        }
        self.pending.push_back(command);
        Ok(())
    }

    /// Asks for a linearizable read. Its outcome comes out of [`Replica::ready`].
    pub fn read(&mut self, id: ReadId) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        let waiting =
            self.reads_unsent.len() + self.reads_in_round.values().map(Vec::len).sum::<usize>();
        if waiting >= self.options.pending_reads_max {
            return Err(ProposeError::Busy { pending: waiting });
        }
        // Every slot that could hold a write completed before this read is below next_slot:
        // takeover re-proposed all that phase 1 reported, and this leader proposed the rest.
        let slot = Slot(self.next_slot.0 - 1);
        if self.lease_holds() {
            // Leader lease (lease.rs): no other leader can choose anything until it ends.
            self.counters.leased_reads += 1;
            self.read_outcomes.push(ReadOutcome::Ready { id, slot });
            return Ok(());
        }
        if self.bugs.has(Bug::ReadWithoutConfirm) {
            self.read_outcomes.push(ReadOutcome::Ready {
                id,
                slot: self.chosen_through,
            });
            return Ok(());
        }
        self.reads_unsent.push((id, slot));
        Ok(())
    }

    /// The driver reports every persist batch up to `seq` durable.
    ///
    /// # Panics
    /// If `seq` was never handed out: a driver that acknowledges writes it was not given would
    /// let messages leave before their state is durable, so this is a broken invariant.
    pub fn persisted(&mut self, seq: PersistSeq) {
        assert!(
            self.outbox.persisted(seq),
            "persisted({seq:?}) acknowledges a batch that was never handed out"
        );
    }

    /// Drains what the driver must do now, in order: persist, send, apply (see [`Ready`]).
    pub fn ready(&mut self) -> Ready {
        self.enter_chosen_configurations();
        if self.role == Role::Leader {
            self.fill_window();
            self.start_read_round();
        }
        let mut send = Vec::new();
        let mut released = Vec::new();
        loop {
            if self.role == Role::Leader {
                self.announce_chosen();
            }
            released.clear();
            if self.bugs.has(Bug::SkipPersist) {
                // Planted: answer before the state behind the answer is durable.
                self.outbox.release_ignoring_durability(&mut released);
            } else {
                self.outbox.release(&mut released);
            }
            let mut looped_back = false;
            for (to, msg) in released.drain(..) {
                if to == self.id {
                    looped_back = true;
                    self.dispatch(to, msg);
                } else {
                    send.push(Outbound { to, msg });
                }
            }
            if !looped_back {
                break;
            }
            self.enter_chosen_configurations();
            if self.role == Role::Leader {
                self.fill_window();
            }
        }
        let persist = self.outbox.take_batch();
        let chosen = self.hand_out_chosen();
        Ready {
            persist,
            send,
            chosen,
            reads: std::mem::take(&mut self.read_outcomes),
            abandoned: std::mem::take(&mut self.abandoned),
            snapshot_wanted: self.snapshot_due(),
        }
    }

    /// The snapshot request to hand to the driver now, if one is due.
    fn snapshot_due(&mut self) -> Option<SnapshotWanted> {
        let wanted = self.snapshot_wanted?;
        if wanted.through <= self.handed_out_through {
            self.snapshot_wanted = None;
            return None;
        }
        let retry = u64::from(self.options.election_timeout_ticks.max(1));
        let due = self
            .snapshot_asked_ticks
            .is_none_or(|t| self.now_ticks.saturating_sub(t) >= retry);
        if !due {
            return None;
        }
        self.snapshot_asked_ticks = Some(self.now_ticks);
        Some(wanted)
    }

    /// Whether every state change so far has been reported durable.
    pub fn all_durable(&self) -> bool {
        self.outbox.all_durable()
    }

    /// Messages held back until their state is durable.
    pub fn held_messages(&self) -> usize {
        self.outbox.waiting_len()
    }

    fn index_of(&self, node: NodeId) -> Option<usize> {
        self.membership.config.index_of(node)
    }

    /// To every voter and learner of the configuration in force but this replica (and but
    /// idle auxiliaries under Cheap Paxos: see cheap.rs).
    fn broadcast(&mut self, msg: Message, needs: u64) {
        for i in 0..self.membership.config.len_everyone() {
            let to = self.member_at(i);
            if to != self.id && !self.is_idle_auxiliary(i) {
                self.outbox.send(to, msg.clone(), needs);
            }
        }
    }

    /// To every voter but this replica (elections: learners neither promise nor grant).
    fn broadcast_voters(&mut self, msg: Message, needs: u64) {
        for i in 0..self.membership.config.members().len() {
            let to = self.membership.config.members()[i];
            if to != self.id {
                self.outbox.send(to, msg.clone(), needs);
            }
        }
    }

    /// The member at index `i` (voters first, then learners).
    fn member_at(&self, i: usize) -> NodeId {
        let c = &self.membership.config;
        let voters = c.members().len();
        if i < voters {
            c.members()[i]
        } else {
            c.learners()[i - voters]
        }
    }

    /// This round's election timeout: the base plus jitter drawn from the caller's generator
    /// once per reset of the timer, so replicas that lost the same leader do not all time out
    /// at once.
    fn election_timeout(&mut self, rng: &mut impl RngCore) -> u32 {
        match self.election_timeout_ticks {
            Some(t) => t,
            None => {
                let jitter = rng.next_u32() % (self.options.election_jitter_ticks + 1);
                let t = self.options.election_timeout_ticks + jitter;
                self.election_timeout_ticks = Some(t);
                t
            }
        }
    }

    fn reset_election_timer(&mut self) {
        self.election_elapsed_ticks = 0;
        self.election_timeout_ticks = None;
    }

    fn note_round(&mut self, round: u64) {
        self.round_seen = self.round_seen.max(round);
    }
}

#[cfg(test)]
mod tests;
