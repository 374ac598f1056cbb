//! What the page and the server exchange: a session (protocol, cluster size, seed, planted
//! bug, actions), the actions a learner can take, and the view of one step.
//!
//! A session is plain data, so it fits in a URL or a JSON file: replaying its actions from
//! the seed rebuilds any step exactly, because both worlds are deterministic.

use serde::{Deserialize, Serialize};

/// Smallest cluster the explorer offers (a quorum needs company to be interesting).
pub const NODES_MIN: usize = 3;
/// Largest cluster the explorer offers (the drawing stays readable).
pub const NODES_MAX: usize = 7;
/// Most actions one session may hold; beyond it the server refuses (replays stay fast).
pub const ACTIONS_MAX: usize = 2_000;
/// Most units (single steps) one session may replay: `step` actions count `n` each.
pub const UNITS_MAX: usize = 20_000;
/// Longest key or value a learner may propose (the simulator's encoding takes short strings).
pub const TEXT_MAX: usize = 32;
/// Most spare nodes a Multi-Paxos session may start outside its first configuration.
pub const SPARES_MAX: usize = 2;

/// Which protocol a session drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// Single-decree Paxos: `paxos::synod::SynodNode`, one value.
    Synod,
    /// Multi-Paxos: the simulator's real `Replica`s, a replicated log.
    Multi,
    /// Fast Paxos: `paxos::fast::FastNode`, one value, proposers `c1` and `c2` sending
    /// straight to the acceptors in the fast round.
    Fast,
    /// EPaxos: `paxos::epaxos::Replica`s, every replica leading the commands sent to it.
    Epaxos,
    /// Paxos Commit: `paxos::commit::CommitNode`s; n1 the transaction manager, n2 a second
    /// leader, n3 and up the resource managers, every node an acceptor.
    Commit,
    /// Disk Paxos: `paxos::disk::DiskProcessor`s, `nodes` processors sharing three disks
    /// (`d1`..`d3`, node numbers `nodes + 1` and up in actions), one value.
    Disk,
}

/// Everything a session's worlds are built from, before any action.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Spec {
    /// The protocol.
    pub protocol: Protocol,
    /// Cluster size, [`NODES_MIN`] to [`NODES_MAX`].
    pub nodes: usize,
    /// The seed of every random draw (latencies, timer jitter).
    pub seed: u64,
    /// A planted bug by name ("break it" mode); needs a build with planted bugs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bug: Option<String>,
    /// Multi-Paxos only: let the simulator's nemesis and clients run by themselves with this
    /// fault profile (`none`, `net`, `crash`, `disk`, `all`), as `synod sim` does. This is how
    /// a trace written by `synod sim --seed S --trace FILE` is replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faults: Option<String>,
    /// Multi-Paxos only: nodes started outside the first configuration (numbered after the
    /// `nodes` voters), for a `reconfigure` action to add as learners; at most
    /// [`SPARES_MAX`], and `nodes + spares` at most [`NODES_MAX`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub spares: usize,
    /// Multi-Paxos only: the first configuration's quorum rule as `synod sim --quorums` reads
    /// it (`majority`, `flexible:P1,P2`, `grid:RxC`, `weighted:...`); none means majorities.
    /// Flexible Paxos: phase-1 and phase-2 quorums may differ in size as long as every
    /// phase-1 quorum meets every phase-2 quorum; a rule that does not is refused (unless
    /// the planted `quorums-do-not-intersect` lets it through).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorums: Option<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// One thing a learner does. Nodes are numbered from 1 (`n1`), clients too (`c1`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "do", rename_all = "snake_case")]
pub enum Action {
    /// Process the next `n` events (ticks that change nothing are skipped).
    Step {
        /// How many events.
        #[serde(default = "one")]
        n: u32,
    },
    /// Deliver in-flight message `id` now, ahead of its turn.
    Deliver {
        /// Message id.
        id: u64,
    },
    /// Lose in-flight message `id`.
    Drop {
        /// Message id.
        id: u64,
    },
    /// Copy in-flight message `id`; the copy arrives a little later.
    Duplicate {
        /// Message id.
        id: u64,
    },
    /// Power loss at node `node`: unsynced writes may be lost.
    Crash {
        /// Node number.
        node: usize,
    },
    /// Restart node `node` from what its disk holds.
    Restart {
        /// Node number.
        node: usize,
    },
    /// Cut the one-way link `from → to`.
    Cut {
        /// Sender node number.
        from: usize,
        /// Receiver node number.
        to: usize,
    },
    /// Restore the one-way link `from → to`.
    Heal {
        /// Sender node number.
        from: usize,
        /// Receiver node number.
        to: usize,
    },
    /// Split the cluster: links between different groups are cut both ways; a node in no
    /// group is alone.
    Partition {
        /// Groups of node numbers.
        groups: Vec<Vec<usize>>,
    },
    /// Restore every link.
    HealAll,
    /// Propose a value. Single-decree: node `node` proposes `value`. Multi-Paxos: client
    /// `client` (default 1) sends `put key=value` (key default `x`).
    Propose {
        /// The value.
        value: String,
        /// Single-decree: the proposing node.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<usize>,
        /// Multi-Paxos: the client.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client: Option<usize>,
        /// Multi-Paxos: the key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key: Option<String>,
    },
    /// Multi-Paxos: client `client` reads `key` (a linearizable read through read-index).
    Read {
        /// The client.
        client: usize,
        /// The key.
        key: String,
    },
    /// Fire node `node`'s timer now: a Multi-Paxos node starts an election (phase 1), a
    /// single-decree proposer retries with a higher ballot.
    Timer {
        /// Node number.
        node: usize,
    },
    /// Multi-Paxos: ask the leader to change the configuration to these voters and learners
    /// (a stop-sign in the log). The core refuses what is unsafe or out of order: a new
    /// voter that is not a caught-up learner, a second change while one is in flight.
    Reconfigure {
        /// The next configuration's voters.
        voters: Vec<usize>,
        /// Its learners: they receive the log but never vote.
        #[serde(default)]
        learners: Vec<usize>,
    },
    /// Single-decree: finish node `node`'s oldest disk write now, ahead of its turn (the
    /// adversary ordering events by hand). Multi-Paxos nodes write through the simulator's
    /// storage, whose writes finish in their turn only.
    Persist {
        /// Node number.
        node: usize,
    },
}

fn one() -> u32 {
    1
}

impl Action {
    /// How many units of the timeline this action takes: `n` for a step, 1 otherwise.
    pub fn units(&self) -> usize {
        match self {
            Action::Step { n } => (*n).max(1) as usize,
            _ => 1,
        }
    }
}

/// A request for a view: the session, and how far into its timeline to look.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ViewRequest {
    /// The session.
    pub spec: Spec,
    /// Its actions.
    #[serde(default)]
    pub actions: Vec<Action>,
    /// Units to replay (`None`: all of them); "back" is a smaller `at`.
    #[serde(default)]
    pub at: Option<usize>,
}

/// Why a session cannot be shown. The page prints the message as is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    /// Cluster size outside the offered range.
    #[error("the cluster must have {NODES_MIN} to {NODES_MAX} nodes, not {0}")]
    Nodes(usize),
    /// Too many actions or units.
    #[error("a session holds at most {ACTIONS_MAX} actions and {UNITS_MAX} steps")]
    TooLong,
    /// A node number outside the cluster.
    #[error("there is no node n{0} in this cluster")]
    NoSuchNode(usize),
    /// A client number that does not exist.
    #[error("there is no client c{0}")]
    NoSuchClient(usize),
    /// An action that belongs to the other protocol.
    #[error("{0}")]
    WrongProtocol(String),
    /// A key or value that is empty or too long.
    #[error("keys and values must be 1 to {TEXT_MAX} characters")]
    Text,
    /// A partition naming a node twice or an empty group.
    #[error("a partition lists each node at most once, in non-empty groups")]
    Partition,
    /// Planted bugs asked of a build without them.
    #[error("this build has no planted bugs: rebuild with `--features planted-bugs` to use \"break it\"")]
    NoPlantedBugs,
    /// A bug name that does not exist.
    #[error("unknown planted bug {0:?}")]
    UnknownBug(String),
    /// Spares asked of single-decree Paxos, or too many.
    #[error("spare nodes are for Multi-Paxos reconfiguration, at most {SPARES_MAX}, with at most {NODES_MAX} nodes in all")]
    Spares,
    /// A configuration that lists a node twice or has no voter.
    #[error("a configuration needs at least one voter and lists each node once")]
    Configuration,
    /// A quorum rule that cannot be read, does not fit the voters, or does not intersect.
    #[error("quorums: {0}")]
    Quorums(String),
    /// EPaxos with an even number of replicas.
    #[error("EPaxos runs on 2F+1 replicas: 3, 5 or 7, not {0}")]
    OddReplicas(usize),
    /// A fault profile name that does not exist.
    #[error("unknown fault profile {0:?}")]
    UnknownFaults(String),
    /// A trace that cannot be read or replayed.
    #[error("trace: {0}")]
    Trace(String),
    /// The core or a world panicked while replaying (a planted bug can do this).
    #[error("the replay stopped: {0}")]
    Panicked(String),
}

/// One node as the page draws it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct NodeView {
    /// `n1`...
    pub name: String,
    /// Running (not crashed).
    pub up: bool,
    /// `leader`, `candidate`, `pre-candidate`, `follower`, `learner`, `outside` (a spare or a
    /// removed node), `proposer`, `acceptor`, `down`.
    pub role: String,
    /// Highest ballot promised, `round.node`.
    pub promised: String,
    /// Its own ballot as a proposer or leader.
    pub ballot: String,
    /// Who it thinks leads.
    pub leader: Option<String>,
    /// Highest slot it knows chosen (Multi-Paxos), 0 if none.
    pub chosen_through: u64,
    /// Accepted `(ballot, value)` per slot.
    pub slots: Vec<SlotView>,
    /// Anything else worth a line (rebuilding, refused to start, disk writes pending).
    pub notes: Vec<String>,
}

/// One accepted slot of one node.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SlotView {
    /// Slot (1 for single-decree).
    pub slot: u64,
    /// Ballot it was accepted at.
    pub ballot: String,
    /// The value, described.
    pub value: String,
    /// Whether this node knows it chosen.
    pub known_chosen: bool,
}

/// A message in the network.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MessageView {
    /// Id, for deliver/drop/duplicate.
    pub id: u64,
    /// Sender (`n1`, `c1`).
    pub from: String,
    /// Receiver.
    pub to: String,
    /// Kind (`prepare`, `promise`, `accept`...).
    pub kind: String,
    /// A short label with the message's content.
    pub label: String,
    /// When it is due, in microseconds of virtual time.
    pub deliver_at: u64,
}

/// A value chosen: a quorum accepted it at one ballot.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ChosenView {
    /// Slot (1 for single-decree).
    pub slot: u64,
    /// The value.
    pub value: String,
    /// The ballot the quorum accepted it at.
    pub ballot: String,
    /// The step at which the quorum was reached (before any node may know it).
    pub at_step: usize,
    /// The nodes that know it chosen now.
    pub known_by: Vec<String>,
}

/// A client operation and its outcome.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct OpView {
    /// `c1`...
    pub client: String,
    /// What was asked, described.
    pub input: String,
    /// The result, once known.
    pub output: Option<String>,
}

/// One line of the event log: a step and why it happened.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LogEntry {
    /// Step number, from 1.
    pub step: usize,
    /// Virtual time in microseconds.
    pub t: u64,
    /// The plain-sentence explanation.
    pub text: String,
}

/// A message's life for the time-space diagram.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LineView {
    /// Message id.
    pub id: u64,
    /// Sender.
    pub from: String,
    /// Receiver.
    pub to: String,
    /// Kind.
    pub kind: String,
    /// Step at which it was sent.
    pub sent: usize,
    /// Step at which it was delivered or lost (`None`: still in flight).
    pub ended: Option<usize>,
    /// `delivered`, `dropped` or `flying`.
    pub fate: String,
}

/// A failed safety check.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ViolationView {
    /// The check's name.
    pub check: String,
    /// What was seen.
    pub detail: String,
    /// The step it was found at.
    pub step: usize,
}

/// Everything the page shows for one step.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct View {
    /// The session's spec, echoed.
    pub spec: Spec,
    /// Steps replayed.
    pub step: usize,
    /// Steps the action list holds (the page can go forward again up to here).
    pub total: usize,
    /// Virtual time now, microseconds.
    pub time_us: u64,
    /// The nodes.
    pub nodes: Vec<NodeView>,
    /// Client names (Multi-Paxos; empty for single-decree).
    pub clients: Vec<String>,
    /// Messages in flight, by id.
    pub in_flight: Vec<MessageView>,
    /// Blocked one-way links as `[from, to]` names.
    pub cut: Vec<[String; 2]>,
    /// Values chosen, by slot.
    pub chosen: Vec<ChosenView>,
    /// Client operations (single-decree: proposals).
    pub ops: Vec<OpView>,
    /// The newest log entries (the page shows them newest last).
    pub log: Vec<LogEntry>,
    /// Message lives for the diagram (the newest ones).
    pub lines: Vec<LineView>,
    /// Failed checks.
    pub violations: Vec<ViolationView>,
    /// Why the last action could not be taken, if it could not (the message vanished...).
    pub note: Option<String>,
}
