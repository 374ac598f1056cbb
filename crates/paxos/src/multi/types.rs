//! What goes into and comes out of a Multi-Paxos [`Replica`](super::Replica).

use crate::ids::{Ballot, NodeId, Slot};
use crate::outbox::{Outbound, PersistBatch};
use crate::quorum::{ConfigError, Configuration};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A client session's identity, chosen by the client and stable across its retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClientId(pub u64);

/// Identifies one command for exactly-once apply: the client and its sequence number.
/// A client numbers its commands 1, 2, 3... and has at most one outstanding at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CommandId {
    /// The client session.
    pub client: ClientId,
    /// The client's sequence number for this command (from 1).
    pub seq: u64,
}

/// A command for the replicated state machine. The payload is opaque to the core.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Command {
    /// Session identity for exactly-once apply.
    pub id: CommandId,
    /// State-machine-specific bytes, shared (`Bytes`: a clone is a reference-count increment,
    /// so the proposal, the Accept to each peer, the local accept and the WAL append all hold
    /// the one buffer the command was encoded into). Serialized as a byte string
    /// (`payload_bytes`): in postcard the same bytes on the wire as serde's default sequence
    /// of `u8` that a `Vec<u8>` used to write, read as one slice rather than one call per byte.
    #[serde(with = "payload_bytes")]
    pub payload: Bytes,
}

/// `Bytes` as a serde byte string. Postcard writes a byte string and a sequence of `u8`
/// alike (a varint length, then the bytes), so peer frames and anything else postcard
/// encoded before this read the same; a format that tells them apart (JSON: an array)
/// is read either way.
mod payload_bytes {
    use bytes::Bytes;
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer>(bytes: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Bytes;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Bytes, E> {
            Ok(Bytes::copy_from_slice(v))
        }

        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
            Ok(Bytes::from(v))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
            // The hint comes from the input: bounded so a lying length allocates little.
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(Bytes::from(out))
        }
    }
}

/// The value of one slot: a batch of commands, a no-op that fills a hole at takeover, or a
/// stop-sign that ends the configuration in force (see `reconfig.rs`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Value {
    /// Fills a slot no one proposed anything for, so later slots can be applied.
    Noop,
    /// Commands applied in order, as one slot.
    Batch(Vec<Command>),
    /// A stop-sign: the configuration in force decides no slot after this one; every later
    /// slot belongs to the configuration carried here (the next epoch).
    StopSign(Configuration),
}

impl Value {
    /// Number of commands carried.
    pub fn len(&self) -> usize {
        match self {
            Value::Noop | Value::StopSign(_) => 0,
            Value::Batch(c) => c.len(),
        }
    }

    /// Whether this is a stop-sign.
    pub fn is_stop_sign(&self) -> bool {
        matches!(self, Value::StopSign(_))
    }

    /// Whether the value carries no command.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An acceptor's record for one slot, as reported in a promise or a catch-up.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SlotRecord {
    /// The slot.
    pub slot: Slot,
    /// The ballot at which the value was accepted.
    pub ballot: Ballot,
    /// The accepted value.
    pub value: Value,
    /// Whether the sender knows this value is chosen.
    pub chosen: bool,
}

/// Messages between replicas. Leader-to-acceptor messages carry the leader's ballot, whose node
/// must be the sender.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Message {
    /// Election, step 0: "may I start phase 1?" Granted only by a node that has not heard from
    /// a live leader lately, so a node that cannot reach a quorum never deposes one that can.
    PreVote {
        /// The round the candidate would use.
        round: u64,
        /// The candidate's configuration epoch: granted only within the same epoch.
        epoch: u64,
    },
    /// Answer to [`Message::PreVote`].
    PreVoteReply {
        /// The round asked about.
        round: u64,
        /// Whether the sender would promise.
        granted: bool,
    },
    /// Phase 1a, for every slot from `from_slot` on.
    Prepare {
        /// The candidate's ballot.
        ballot: Ballot,
        /// First slot the candidate needs reports for.
        from_slot: Slot,
        /// The configuration epoch the candidate runs in: only acceptors in the same epoch
        /// promise (see `reconfig.rs`).
        epoch: u64,
    },
    /// Phase 1b: a promise not to accept below `ballot`, with what was accepted from `from_slot`.
    Promise {
        /// The promised ballot.
        ballot: Ballot,
        /// First slot this page reports.
        from_slot: Slot,
        /// Accepted slots in `[from_slot, ...)`, ascending, at most a page.
        records: Vec<SlotRecord>,
        /// If the page was cut short, where the next page starts (ask with another Prepare).
        next_from: Option<Slot>,
        /// Every slot up to here is chosen and compacted into the sender's snapshot: it reports
        /// nothing for them, and a new leader must neither re-propose nor fill them.
        compacted_through: Slot,
    },
    /// Phase 2a.
    Accept {
        /// The leader's ballot.
        ballot: Ballot,
        /// The slot.
        slot: Slot,
        /// The proposed value.
        value: Value,
        /// Every slot up to here is chosen (piggybacked learning).
        chosen_through: Slot,
        /// The leader's configuration epoch: only acceptors in the same epoch accept.
        epoch: u64,
    },
    /// Phase 2b.
    Accepted {
        /// The ballot accepted.
        ballot: Ballot,
        /// The slot.
        slot: Slot,
    },
    /// A refusal: the sender has promised `promised`, higher than the request's `ballot`.
    Nack {
        /// The ballot of the refused request.
        ballot: Ballot,
        /// The higher ballot the sender has promised; retry above it.
        promised: Ballot,
    },
    /// Leader liveness, chosen index, and read-index confirmation rounds.
    Heartbeat {
        /// The leader's ballot.
        ballot: Ballot,
        /// Every slot up to here is chosen.
        chosen_through: Slot,
        /// Confirmation round, echoed back; reads waiting for round r are confirmed by a quorum of echoes.
        round: u64,
        /// The leader's configuration epoch: only followers in the same epoch echo.
        epoch: u64,
    },
    /// Answer to [`Message::Heartbeat`]: "I still promise nothing above your ballot".
    HeartbeatAck {
        /// The leader's ballot.
        ballot: Ballot,
        /// The round echoed.
        round: u64,
        /// The sender's chosen prefix, so the leader can help it catch up.
        chosen_through: Slot,
    },
    /// A lagging replica asks for chosen slots from `from_slot` on.
    CatchUp {
        /// First slot wanted.
        from_slot: Slot,
    },
    /// Chosen slots, ascending, at most a page.
    Learn {
        /// Chosen records.
        records: Vec<SlotRecord>,
        /// The sender's chosen prefix.
        chosen_through: Slot,
        /// The sender's log starts after this slot; a replica missing slots up to here needs the
        /// sender's snapshot (see [`Ready::snapshot_wanted`]).
        compacted_through: Slot,
    },
    /// A rebuilding replica asks every member for the highest round it has seen, to learn a
    /// round above any ballot it may have promised before it lost its disk.
    RoundQuery,
    /// Answer to [`Message::RoundQuery`]: the highest round the sender has seen or promised,
    /// and how far its log reaches.
    RoundReport {
        /// That round.
        round: u64,
        /// The highest slot the sender holds an entry for, knows chosen, or proposed as
        /// leader: a rebuilding replica catches up through the leader's before it votes.
        log_end: Slot,
        /// The ballot the sender leads at when it answers (`Ballot::ZERO` if it does not
        /// lead), so a rebuilding replica takes the log end only from the leader it follows.
        leading: Ballot,
    },
    /// A leader leaving the configuration (removed, or made a learner) asks a voter of the
    /// next one to run phase 1 at once rather than wait out an election timeout. Taken only
    /// from the member the receiver last followed, in the same epoch.
    TakeLead {
        /// The epoch the receiver should lead in.
        epoch: u64,
    },
    /// A rebuilding voter whose fence is at or above the leader's ballot asks that leader to
    /// run phase 1 again above `round`. With leader leases on, the voters hold every other
    /// candidate's Prepare while the leader renews their grants, so the ballot above the
    /// fence that the rebuild waits for can only be the grant holder's own (rebuild.rs).
    RaiseBallot {
        /// The epoch the sender rebuilds in.
        epoch: u64,
        /// The new ballot's round must be above this (the sender's fence or higher).
        round: u64,
    },
}

impl Message {
    /// A short name for counters and traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::PreVote { .. } => "pre_vote",
            Message::PreVoteReply { .. } => "pre_vote_reply",
            Message::Prepare { .. } => "prepare",
            Message::Promise { .. } => "promise",
            Message::Accept { .. } => "accept",
            Message::Accepted { .. } => "accepted",
            Message::Nack { .. } => "nack",
            Message::Heartbeat { .. } => "heartbeat",
            Message::HeartbeatAck { .. } => "heartbeat_ack",
            Message::CatchUp { .. } => "catch_up",
            Message::Learn { .. } => "learn",
            Message::RoundQuery => "round_query",
            Message::RoundReport { .. } => "round_report",
            Message::TakeLead { .. } => "take_lead",
            Message::RaiseBallot { .. } => "raise_ballot",
        }
    }
}

/// A durable state change. Storage applies a batch of these atomically and in order.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PersistOp {
    /// The acceptor promised `ballot` (for every slot).
    Promise {
        /// The promised ballot.
        ballot: Ballot,
    },
    /// The acceptor accepted `value` at `ballot` in `slot`.
    Accept {
        /// The slot.
        slot: Slot,
        /// The ballot.
        ballot: Ballot,
        /// The value.
        value: Value,
    },
    /// `value` is chosen in `slot` (learned, possibly without having accepted it).
    Chosen {
        /// The slot.
        slot: Slot,
        /// The ballot at which the teller accepted it.
        ballot: Ballot,
        /// The chosen value.
        value: Value,
    },
    /// The replica's durable state was lost (a wiped or replaced disk) and it rejoined as a
    /// learner that neither promises nor accepts until no promise it may have forgotten can
    /// matter; see [`Replica::rebuild`](super::Replica::rebuild).
    RebuildStarted,
    /// The rebuilding replica saw a leader elected after its rebuild began (a ballot above
    /// every round any member had seen when asked) and votes again; its promise is `ballot`.
    VoteRegained {
        /// The leader's ballot, now promised.
        ballot: Ballot,
    },
    /// The replica entered a new configuration: every slot before `membership.first_slot` is
    /// chosen (the entries held for them hold the chosen values), the stop-sign that ended
    /// the old configuration is at `first_slot - 1`, and entries at or after `first_slot`
    /// accepted in the old epoch are void (nothing after a chosen stop-sign is ever chosen
    /// in its configuration).
    EnterConfiguration {
        /// The configuration now in force.
        membership: Membership,
    },
}

/// The configuration in force and where it starts: the replicated answer to "who votes on
/// which slots". Epoch 0 is the cluster's initial configuration, from slot 1; epoch `e + 1`
/// starts right after the stop-sign chosen in epoch `e`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Membership {
    /// How many configuration changes came before this one.
    pub epoch: u64,
    /// The first slot this configuration decides.
    pub first_slot: Slot,
    /// Its voters, learners and quorum rule.
    pub config: Configuration,
}

impl Membership {
    /// The cluster's first configuration.
    pub fn initial(config: Configuration) -> Membership {
        Membership {
            epoch: 0,
            first_slot: Slot(1),
            config,
        }
    }

    /// A configuration of one member, for constructors whose configuration is ignored in
    /// favour of a durable one.
    pub(crate) fn initial_placeholder() -> Configuration {
        Configuration::majority_of(1).expect("one member is a valid configuration")
    }

    /// The membership a stop-sign chosen at `slot` leads to.
    pub fn after_stop_sign(&self, slot: Slot, next: Configuration) -> Membership {
        Membership {
            epoch: self.epoch + 1,
            first_slot: slot.next(),
            config: next,
        }
    }
}

/// What a replica keeps across a crash: exactly what it was told is durable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DurableState {
    /// Highest ballot promised.
    pub promised: Option<Ballot>,
    /// Accepted or learned entries by slot, above `compacted_through`.
    pub entries: BTreeMap<Slot, DurableEntry>,
    /// Every slot up to here is chosen and covered by the state machine's snapshot; the log
    /// holds nothing for them. Set by storage from the snapshot it recovered.
    pub compacted_through: Slot,
    /// Between [`PersistOp::RebuildStarted`] and [`PersistOp::VoteRegained`]: the replica must
    /// not promise or accept.
    pub rebuilding: bool,
    /// The newest configuration this replica entered ([`PersistOp::EnterConfiguration`], or
    /// the one its snapshot was taken in); `None`: the initial one it is started with.
    pub membership: Option<Membership>,
}

/// One slot as stored.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DurableEntry {
    /// Ballot at which the value was accepted (or at which the teller accepted it).
    pub ballot: Ballot,
    /// The value.
    pub value: Value,
    /// Known chosen.
    pub chosen: bool,
}

impl DurableState {
    /// Applies one persisted op, as storage would on replay.
    pub fn apply(&mut self, op: &PersistOp) {
        match op {
            PersistOp::Promise { ballot } => {
                debug_assert!(
                    self.promised.is_none_or(|p| p <= *ballot),
                    "promises only grow"
                );
                self.promised = Some(*ballot);
            }
            PersistOp::Accept { slot, .. } if *slot <= self.compacted_through => {}
            PersistOp::Accept {
                slot,
                ballot,
                value,
            } => {
                let chosen = self.entries.get(slot).is_some_and(|e| e.chosen);
                if !chosen {
                    self.entries.insert(
                        *slot,
                        DurableEntry {
                            ballot: *ballot,
                            value: value.clone(),
                            chosen: false,
                        },
                    );
                }
            }
            PersistOp::RebuildStarted => {
                self.rebuilding = true;
            }
            PersistOp::VoteRegained { ballot } => {
                self.rebuilding = false;
                self.promised = Some(self.promised.map_or(*ballot, |p| p.max(*ballot)));
            }
            PersistOp::EnterConfiguration { membership } => {
                if self
                    .membership
                    .as_ref()
                    .is_some_and(|m| m.epoch >= membership.epoch)
                {
                    return;
                }
                let first = membership.first_slot;
                // Old-epoch votes at or after the first slot can never be chosen: drop them.
                self.entries.retain(|slot, e| *slot < first || e.chosen);
                for (_, e) in self.entries.range_mut(..first) {
                    e.chosen = true;
                }
                self.membership = Some(membership.clone());
            }
            PersistOp::Chosen { slot, .. } if *slot <= self.compacted_through => {}
            PersistOp::Chosen {
                slot,
                ballot,
                value,
            } => {
                self.entries.insert(
                    *slot,
                    DurableEntry {
                        ballot: *ballot,
                        value: value.clone(),
                        chosen: true,
                    },
                );
            }
        }
    }
}

/// A chosen slot, handed out for apply in slot order, each exactly once per incarnation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChosenEntry {
    /// The slot.
    pub slot: Slot,
    /// The chosen value.
    pub value: Value,
}

/// Identifies a read request to [`Replica::read`](super::Replica::read).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReadId(pub u64);

/// What became of a read-index request.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReadOutcome {
    /// Leadership confirmed by a quorum after the read arrived: serve the read from the state
    /// machine once it has applied every slot up to and including `slot`.
    Ready {
        /// The read.
        id: ReadId,
        /// Apply through this slot before answering.
        slot: Slot,
    },
    /// The read cannot be served here; retry, at `leader` if known.
    Failed {
        /// The read.
        id: ReadId,
        /// Who this replica believes leads.
        leader: Option<NodeId>,
    },
}

/// Why a proposal or read was refused. Carries what the caller needs next.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// This replica does not lead; send to `leader` if known.
    #[error("not the leader; leader is {leader:?}")]
    NotLeader {
        /// Who this replica believes leads.
        leader: Option<NodeId>,
    },
    /// The queue of pending proposals is full; retry later.
    #[error("busy: {pending} proposals pending, the limit; retry later")]
    Busy {
        /// Proposals pending.
        pending: usize,
    },
    /// The command is larger than the configured limit.
    #[error("command of {bytes} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
}

/// Why a reconfiguration was refused. Carries what the operator needs next.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReconfigError {
    /// Only the leader proposes a change; send it to `leader` if known.
    #[error("not the leader; leader is {leader:?}")]
    NotLeader {
        /// Who this replica believes leads.
        leader: Option<NodeId>,
    },
    /// A change is already under way (its stop-sign is at `slot`); retry once it is in force.
    #[error("a configuration change is already in progress (stop-sign at slot {slot}); retry once it is in force")]
    InProgress {
        /// The pending stop-sign's slot.
        slot: Slot,
    },
    /// A new voter must first be a learner of the configuration in force.
    #[error(
        "{node} is not a learner: add it as a learner first, let it catch up, then promote it"
    )]
    NotALearner {
        /// The node.
        node: NodeId,
    },
    /// A learner to be promoted has not reported, in the configuration in force, a chosen
    /// prefix through the stop-sign that made it a learner: it may not run at all yet.
    #[error("{node} has not yet reported that it holds the log through the change that made it a learner: start it, let it catch up, then promote it")]
    LearnerNotReported {
        /// The learner.
        node: NodeId,
    },
    /// A learner to be promoted lags the leader by more than the bound.
    #[error("{node} is {lag_slots} slots behind the leader (at most {bound_slots} allowed): can only promote a learner which is in sync with the leader")]
    LearnerBehind {
        /// The learner.
        node: NodeId,
        /// How far behind it is (all of the chosen log if it has not reported yet).
        lag_slots: u64,
        /// The bound.
        bound_slots: u64,
    },
    /// The new configuration itself is invalid.
    #[error("invalid configuration: {0}")]
    Invalid(#[from] ConfigError),
}

/// Everything a replica asks its driver to do, in the order to do it:
/// 1. write `persist` (atomically) and later report `persisted(persist.seq)`;
/// 2. send `send` (all of it is already safe to send: its state is durable);
/// 3. apply `chosen` in order; answer `reads` once applied far enough;
/// 4. tell clients of `abandoned` proposals to retry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// State to make durable.
    pub persist: Option<PersistBatch<PersistOp>>,
    /// Messages to send now.
    pub send: Vec<Outbound<Message>>,
    /// Newly chosen slots, contiguous, in slot order.
    pub chosen: Vec<ChosenEntry>,
    /// Read-index outcomes.
    pub reads: Vec<ReadOutcome>,
    /// Proposals dropped without being given a slot here (leadership lost); retry elsewhere.
    pub abandoned: Vec<CommandId>,
    /// This replica misses chosen slots that `from` has compacted into a snapshot: fetch a
    /// snapshot covering at least `through` from it, restore the state machine from it, make it
    /// durable, then call [`Replica::install_snapshot`](super::Replica::install_snapshot).
    pub snapshot_wanted: Option<SnapshotWanted>,
}

/// A snapshot this replica needs from a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SnapshotWanted {
    /// A peer known to hold it.
    pub from: NodeId,
    /// The snapshot must cover at least this slot.
    pub through: Slot,
}

impl Ready {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.persist.is_none()
            && self.send.is_empty()
            && self.chosen.is_empty()
            && self.reads.is_empty()
            && self.abandoned.is_empty()
            && self.snapshot_wanted.is_none()
    }
}

/// Bounds and timings of a replica. Units are in the names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplicaOptions {
    /// A leader sends a heartbeat every this many ticks.
    pub heartbeat_ticks: u32,
    /// A follower that has not heard from a leader for this many ticks (plus jitter) seeks election.
    pub election_timeout_ticks: u32,
    /// Upper bound of the random extra added to each election timeout (drawn from the caller's generator).
    pub election_jitter_ticks: u32,
    /// Slots a leader may have proposed but not yet chosen.
    pub pipeline_window_slots: u64,
    /// Commands packed into one slot at most.
    pub batch_commands_max: usize,
    /// Payload bytes packed into one slot at most (a single larger command still gets a slot
    /// of its own): bounds a slot's value, so a persist record and a peer frame stay bounded.
    pub batch_bytes_max: usize,
    /// Commands waiting for a slot at most; beyond it, proposals get [`ProposeError::Busy`].
    pub pending_commands_max: usize,
    /// Largest command payload accepted.
    pub command_bytes_max: usize,
    /// Records per promise page and per catch-up page.
    pub page_records_max: usize,
    /// Reads waiting for confirmation at most.
    pub pending_reads_max: usize,
    /// A message naming a slot further than this beyond the chosen prefix is refused as impossible.
    pub slot_horizon: u64,
    /// A learner is promoted to voter only if its chosen prefix is at most this many slots
    /// behind the leader's, and it has reported in the epoch in force a prefix through the
    /// stop-sign that began it. `u64::MAX` turns both checks off.
    pub promote_lag_slots_max: u64,
    /// Leader leases with a bound on clock drift (lease.rs): `None`, the default, serves every
    /// read through a confirmation round (read-index).
    pub leader_lease: Option<super::LeaderLease>,
}

impl Default for ReplicaOptions {
    fn default() -> Self {
        ReplicaOptions {
            heartbeat_ticks: 2,
            election_timeout_ticks: 10,
            election_jitter_ticks: 10,
            pipeline_window_slots: 64,
            batch_commands_max: 256,
            batch_bytes_max: 1 << 20,
            pending_commands_max: 16_384,
            command_bytes_max: 1 << 20,
            page_records_max: 256,
            pending_reads_max: 16_384,
            slot_horizon: 1 << 32,
            promote_lag_slots_max: 64,
            leader_lease: None,
        }
    }
}

/// Why an incoming message was refused. Counted, never a panic.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    thiserror::Error,
)]
pub enum RejectReason {
    /// The sender is not a member.
    #[error("sender is not a member of the configuration")]
    UnknownSender,
    /// A leader message whose ballot belongs to another node, or round 0.
    #[error("ballot does not belong to the sender or is not a real ballot")]
    ImpossibleBallot,
    /// A slot of 0, or beyond the horizon.
    #[error("slot is 0 or beyond the slot horizon")]
    ImpossibleSlot,
    /// A page that is too long or out of order.
    #[error("malformed message: records out of order or page too long")]
    Malformed,
    /// A message from the replica to itself over the network.
    #[error("message claims to come from this replica")]
    FromSelf,
    /// A vote or a leader's message from a member that a reconfiguration removed.
    #[error("sender was removed from the configuration")]
    RemovedMember,
    /// A vote or a leader's message from another configuration epoch than this replica's.
    #[error("message belongs to another configuration epoch")]
    OtherEpoch,
}

/// The role a replica plays now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Accepts and learns; not seeking election.
    Follower,
    /// Asking for pre-votes.
    PreCandidate,
    /// Running phase 1 with its ballot.
    Candidate,
    /// Phase 1 done: proposes in phase 2.
    Leader,
}
