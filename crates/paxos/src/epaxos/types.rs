//! EPaxos's vocabulary: instances, ballots per instance, key-value commands and their
//! interference, the attributes (sequence number, dependencies) a command is chosen with, the
//! messages, and what a replica hands back.

use crate::ids::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;

/// Instances a replica keeps at most (its own and others'): a full table refuses new proposals
/// and new instances from peers rather than grow without bound.
pub const INSTANCES_MAX: usize = 1 << 20;
/// Dependencies one instance may carry; a message with more is refused.
pub const DEPS_MAX: usize = 4_096;
/// Own instances being decided at once; `propose` refuses more.
pub const IN_FLIGHT_MAX: usize = 1_024;
/// Key length in bytes; longer keys are refused.
pub const KEY_BYTES_MAX: usize = 1_024;
/// Replicas at most (N = 2F+1 ≤ 9).
pub const REPLICAS_MAX: usize = 9;

/// An instance: the `slot`-th command slot owned by `replica` (its command leader at the
/// default ballot). EPaxos's log is two-dimensional: one row per replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct InstanceId {
    /// The replica that owns the row.
    pub replica: NodeId,
    /// Position in the row, from 1.
    pub slot: u64,
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.replica.0, self.slot)
    }
}

/// A ballot of one instance, `(round, node)`. Round 0 owned by the instance's replica is the
/// *default ballot*: the command leader's own first round, the only one whose pre-accepts may
/// end on the fast path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EBallot {
    /// Round; 0 only for the default ballot.
    pub round: u64,
    /// The replica that owns this ballot.
    pub node: NodeId,
}

impl EBallot {
    /// The default ballot of `instance`.
    pub fn default_of(instance: InstanceId) -> EBallot {
        EBallot {
            round: 0,
            node: instance.replica,
        }
    }

    /// Whether this is the default ballot of `instance`.
    pub fn is_default_of(self, instance: InstanceId) -> bool {
        self == EBallot::default_of(instance)
    }

    /// The smallest ballot of `node` above `self`.
    pub fn next_for(self, node: NodeId) -> EBallot {
        EBallot {
            round: self.round.saturating_add(1),
            node,
        }
    }
}

impl fmt::Display for EBallot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.round, self.node.0)
    }
}

/// A client's command id: unique per client request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CommandId {
    /// The client.
    pub client: u64,
    /// Its request number.
    pub seq: u64,
}

/// A key-value operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvOp {
    /// Read the key.
    Get {
        /// The key.
        key: String,
    },
    /// Set the key.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: String,
    },
    /// Set `new` iff the value is `expected` (`None`: absent).
    Cas {
        /// The key.
        key: String,
        /// The value required.
        expected: Option<String>,
        /// The value set on a match.
        new: String,
    },
}

impl KvOp {
    /// The key the operation touches.
    pub fn key(&self) -> &str {
        match self {
            KvOp::Get { key } | KvOp::Put { key, .. } | KvOp::Cas { key, .. } => key,
        }
    }

    /// Whether it may change the key (a failed compare-and-set still counts: it is ordered
    /// against writes because its outcome depends on them).
    pub fn writes(&self) -> bool {
        !matches!(self, KvOp::Get { .. })
    }
}

/// What an instance decides: a client's command, or a no-op (a recovery that found no trace of
/// the original command).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Command {
    /// A client's key-value command.
    Kv {
        /// Its id.
        id: CommandId,
        /// The operation.
        op: KvOp,
    },
    /// Nothing: interferes with nothing, applies as nothing.
    Noop,
}

impl Command {
    /// The interference relation (EPaxos §4.1): two commands interfere iff they touch the same
    /// key and at least one of them writes. Reads commute with reads; no-ops with everything.
    pub fn interferes(&self, other: &Command) -> bool {
        match (self, other) {
            (Command::Kv { op: a, .. }, Command::Kv { op: b, .. }) => {
                a.key() == b.key() && (a.writes() || b.writes())
            }
            _ => false,
        }
    }

    /// The key, for a key-value command.
    pub fn key(&self) -> Option<&str> {
        match self {
            Command::Kv { op, .. } => Some(op.key()),
            Command::Noop => None,
        }
    }
}

/// The attributes a command is chosen with (EPaxos §4.3): its sequence number and the instances
/// it depends on. Execution orders by the dependency graph, and by `seq` inside a cycle.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Attrs {
    /// Sequence number: above that of every interfering instance the replicas knew of.
    pub seq: u64,
    /// Interfering instances this command must be ordered after (or with, in a cycle).
    pub deps: BTreeSet<InstanceId>,
}

/// Where an instance is, at one replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Status {
    /// Attributes proposed and agreed to by this replica in phase 1 (PreAccept).
    PreAccepted,
    /// Attributes accepted in phase 2 (Paxos Accept).
    Accepted,
    /// Chosen: command and attributes are final.
    Committed,
}

/// What a replica holds about one instance: exactly what it persists.
///
/// `ballot` is the highest ballot it promised for the instance; `vballot` the ballot at which it
/// took the command and attributes it holds. Keeping the two apart is the correction Sutra (2019)
/// makes to the published EPaxos specification, where one ballot served both: recovery must take
/// the Accepted attributes of the *highest vballot*, as in classic Paxos, and one ballot cannot
/// say which those are once a replica has promised a later ballot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// The instance.
    pub instance: InstanceId,
    /// Highest ballot promised.
    pub ballot: EBallot,
    /// Ballot of the command and attributes held (`None`: none held, only a promise).
    pub vballot: Option<EBallot>,
    /// Status of what is held (meaningless while `vballot` is `None`).
    pub status: Status,
    /// The command.
    pub command: Command,
    /// Its attributes.
    pub attrs: Attrs,
    /// For a pre-accept at the default ballot: whether this replica agreed to the command
    /// leader's attributes unchanged (what the fast path counts, and recovery looks for).
    pub unchanged: bool,
}

/// Messages between replicas.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EpaxosMessage {
    /// Phase 1: the leader of `ballot` proposes `command` with `attrs`.
    PreAccept {
        /// Instance.
        instance: InstanceId,
        /// Ballot.
        ballot: EBallot,
        /// Command.
        command: Command,
        /// The leader's attributes.
        attrs: Attrs,
    },
    /// Phase 1 reply: the replica's attributes (the leader's, updated with what it knows).
    PreAcceptOk {
        /// Instance.
        instance: InstanceId,
        /// Ballot.
        ballot: EBallot,
        /// Attributes.
        attrs: Attrs,
        /// Whether they equal the leader's.
        unchanged: bool,
    },
    /// Phase 2: accept `command` with `attrs` at `ballot`.
    Accept {
        /// Instance.
        instance: InstanceId,
        /// Ballot.
        ballot: EBallot,
        /// Command.
        command: Command,
        /// Attributes.
        attrs: Attrs,
    },
    /// Phase 2 reply.
    AcceptOk {
        /// Instance.
        instance: InstanceId,
        /// Ballot.
        ballot: EBallot,
    },
    /// The instance is chosen.
    Commit {
        /// Instance.
        instance: InstanceId,
        /// Command.
        command: Command,
        /// Attributes.
        attrs: Attrs,
    },
    /// Explicit prepare: a replica takes over `instance` at `ballot`.
    Prepare {
        /// Instance.
        instance: InstanceId,
        /// Ballot.
        ballot: EBallot,
    },
    /// Prepare reply: the promise, with what the replica holds (`None`: nothing).
    PrepareOk {
        /// Instance.
        instance: InstanceId,
        /// Ballot promised.
        ballot: EBallot,
        /// What it holds.
        held: Option<InstanceRecord>,
    },
    /// A refusal: the replica promised `promised`, above the sender's ballot.
    Nack {
        /// Instance.
        instance: InstanceId,
        /// The higher promise.
        promised: EBallot,
    },
}

impl EpaxosMessage {
    /// The instance the message is about.
    pub fn instance(&self) -> InstanceId {
        match self {
            EpaxosMessage::PreAccept { instance, .. }
            | EpaxosMessage::PreAcceptOk { instance, .. }
            | EpaxosMessage::Accept { instance, .. }
            | EpaxosMessage::AcceptOk { instance, .. }
            | EpaxosMessage::Commit { instance, .. }
            | EpaxosMessage::Prepare { instance, .. }
            | EpaxosMessage::PrepareOk { instance, .. }
            | EpaxosMessage::Nack { instance, .. } => *instance,
        }
    }

    /// Short name for traces and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            EpaxosMessage::PreAccept { .. } => "pre-accept",
            EpaxosMessage::PreAcceptOk { .. } => "pre-accept-ok",
            EpaxosMessage::Accept { .. } => "accept",
            EpaxosMessage::AcceptOk { .. } => "accept-ok",
            EpaxosMessage::Commit { .. } => "commit",
            EpaxosMessage::Prepare { .. } => "prepare",
            EpaxosMessage::PrepareOk { .. } => "prepare-ok",
            EpaxosMessage::Nack { .. } => "nack",
        }
    }
}

/// Tuning, in ticks.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EpaxosOptions {
    /// A leader resends its phase message to replicas that have not answered after this many
    /// ticks, and gives up on the fast path once it holds a majority.
    pub retry_ticks: u64,
    /// A replica that knows an instance not yet committed for this many ticks (plus up to as
    /// many again of jitter from the caller's generator) takes it over with explicit prepare.
    pub recovery_ticks: u64,
}

impl Default for EpaxosOptions {
    fn default() -> Self {
        EpaxosOptions {
            retry_ticks: 3,
            recovery_ticks: 12,
        }
    }
}

/// Counters, for figures and for proving the paths were taken.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct EpaxosCounters {
    /// Own commands chosen on the fast path (one round trip).
    pub fast_commits: u64,
    /// Own commands (or recovered ones) chosen after phase 2.
    pub slow_commits: u64,
    /// Explicit prepares started.
    pub recoveries: u64,
    /// Recoveries that chose a no-op.
    pub noops: u64,
    /// Strongly connected components of more than one command executed.
    pub cycles_executed: u64,
    /// Messages refused (malformed, over a bound, or contradicting a chosen instance).
    pub refused: u64,
}

/// What a replica hands back from [`Replica::ready`](super::Replica::ready), in the order a
/// driver must handle it: write `persist` durably, then send `send`, then apply `executed`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpaxosReady {
    /// Records changed since the last `ready`, to make durable before anything in `send` leaves.
    pub persist: Vec<InstanceRecord>,
    /// Messages to send.
    pub send: Vec<crate::Outbound<EpaxosMessage>>,
    /// Commands executed, in this replica's execution order.
    pub executed: Vec<(InstanceId, Command)>,
}

/// Errors of the EPaxos core.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EpaxosError {
    /// The replica set is not 2F+1 distinct replicas with F ≥ 1 (at most [`REPLICAS_MAX`]), or
    /// does not contain this replica.
    #[error("bad replica set: {0}")]
    BadReplicas(String),
    /// Too many own instances being decided; try again once some are chosen.
    #[error("{in_flight} commands in flight, at most {max}")]
    TooManyInFlight {
        /// Now.
        in_flight: usize,
        /// Bound.
        max: usize,
    },
    /// The instance table is full.
    #[error("instance table full ({0} instances)")]
    TableFull(usize),
    /// The key is longer than [`KEY_BYTES_MAX`].
    #[error("key of {0} bytes, at most {KEY_BYTES_MAX}")]
    KeyTooLong(usize),
}
