//! The simulation: nodes, network, disks, clients and the nemesis, stepped one event at a time.

use crate::check::{CheckKind, Oracle, OracleVerdict, Violation};
use crate::faults::{
    shape_possible, CrashPoint, FaultKind, FaultPlan, FaultProfile, LinkMatrix, PartitionShape,
};
use crate::kv::{KvCommand, KvMachine, KvResult};
use crate::report::RunReport;
use crate::rng::{below, chance_permille, range, shuffle};
use crate::snapshot::{Incoming, StoredSnapshot, CHUNK_BYTES};
use crate::trace::{
    client_name, describe_message, describe_value, node_name, DropReason, TraceEvent, TraceHeader,
    TraceRecord, TRACE_FORMAT_NAME, TRACE_FORMAT_VERSION,
};
use lincheck::kv::{KvInput, KvModel, KvOperation, KvOutput};
use lincheck::{CheckOptions, Verdict};
use paxos::multi::{
    Applied, Applier, ChosenEntry, ClientId, Command, CommandId, DurableState, Membership, Message,
    PersistOp, ProposeError, ReadId, ReadOutcome, Ready, ReconfigError, Replica, ReplicaOptions,
    Role, SessionOutcome, Value,
};
use paxos::{
    Ballot, Bug, Configuration, NodeId, NodeSet, PersistSeq, PlantedBugs, QuorumSpec, Slot,
};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use storage::memfs::MemFs;
use storage::wal::{scan_records, RecordLocation};
use storage::{
    latest_snapshot, read_snapshot_body, Lsn, Meta, Recovered, Repair, SnapshotChunk,
    SnapshotReceiver, SnapshotSource, StorageError, Store, WalOptions,
};

/// Chance that a duplicated message's copy is a stale one, held back for long, per mille.
const STALE_COPY_PERMILLE: u32 = 300;
/// Longest hold-back of a stale copy.
const STALE_COPY_MAX_US: u64 = 500_000;

/// Violations kept in full per run; beyond this only counts grow (one bug tends to cascade).
const VIOLATIONS_KEPT_MAX: usize = 20;

/// Timings of a run, in microseconds of virtual time unless the name says ticks.
///
/// One replica tick is `tick_us` of virtual time; the replica's own options count in ticks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timing {
    /// Virtual time between two ticks of a node.
    pub tick_us: u64,
    /// Length of the phase in which faults are injected.
    pub fault_phase_us: u64,
    /// After faults stop, clients keep starting operations for this long.
    pub quiet_ops_us: u64,
    /// After faults stop, every operation must complete within this much of
    /// `max(invoke, faults stopped)`; the run ends at the latest this long after clients stop.
    pub liveness_bound_us: u64,
    /// A client re-sends its operation (to another node) after this long without an answer.
    pub client_attempt_timeout_us: u64,
    /// During the fault phase, a client gives up on an operation after this long.
    pub client_give_up_us: u64,
    /// Longest pause of a client between two operations.
    pub client_think_max_us: u64,
}

impl Timing {
    /// Timings for `options`: 5 ms ticks, a 4 s fault phase, and a liveness bound of ten of
    /// the longest election timeouts plus 200 ms.
    pub fn for_options(options: &ReplicaOptions) -> Timing {
        let tick_us = 5_000;
        let election_max_us =
            u64::from(options.election_timeout_ticks + options.election_jitter_ticks) * tick_us;
        Timing {
            tick_us,
            fault_phase_us: 4_000_000,
            quiet_ops_us: 200_000,
            liveness_bound_us: 10 * election_max_us + 200_000,
            client_attempt_timeout_us: 150_000,
            client_give_up_us: 1_000_000,
            client_think_max_us: 10_000,
        }
    }

    /// The longest election timeout, timer jitter included.
    pub fn election_max_us(&self, options: &ReplicaOptions) -> u64 {
        u64::from(options.election_timeout_ticks + options.election_jitter_ticks) * self.tick_us
    }
}

/// Everything a run depends on. A run is a pure function of this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// The seed of the one generator everything random is drawn from.
    pub seed: u64,
    /// Cluster size, 1 to 7 (more works, but the figures were tuned for these).
    pub nodes: usize,
    /// Which fault families the nemesis may use.
    pub faults: FaultProfile,
    /// Planted bugs switched on in every replica (only with the `planted-bugs` feature).
    pub bugs: PlantedBugs,
    /// The replicas' options.
    pub replica: ReplicaOptions,
    /// Timings.
    pub timing: Timing,
    /// Number of clients.
    pub clients: usize,
    /// Number of distinct keys the clients use (few, so that conflicts are frequent).
    pub keys: usize,
    /// Whether the nemesis injects faults by itself; off for scenario tests and explorers
    /// that inject by hand.
    pub nemesis: bool,
    /// Whether to record the trace in memory.
    pub trace: bool,
    /// A fault plan to use instead of drawing one from the seed.
    pub plan: Option<FaultPlan>,
    /// Whether clients start operations only through [`Simulation::client_invoke`] (an
    /// explorer's learner proposes by hand). False, the default, leaves every run exactly as
    /// it was: only the check in the client timer reads it.
    pub manual_clients: bool,
    /// Whether the nemesis changes the membership (add learners, promote, remove followers
    /// and the leader) while it injects faults. Off by default: runs without it are exactly
    /// as they were.
    pub membership_changes: bool,
    /// Nodes started outside the first configuration, for membership changes to add.
    pub spares: usize,
    /// The first configuration's quorum rule (majority by default; see
    /// [`crate::QuorumChoice`] for drawing one per seed). With membership changes, a change
    /// keeps a rule that fits the next voters and may draw a new one when this is not
    /// majority.
    pub quorum: QuorumSpec,
    /// Each node's clock rate (leader leases: see [`crate::leases`]). `None`, the default,
    /// keeps every clock exact and every run exactly as it was.
    pub clocks: Option<crate::leases::ClockModel>,
}

impl SimConfig {
    /// The defaults for a seed: 4 clients on 3 keys, nemesis on, no trace.
    pub fn new(seed: u64, nodes: usize, faults: FaultProfile) -> SimConfig {
        let replica = ReplicaOptions::default();
        let timing = Timing::for_options(&replica);
        SimConfig {
            seed,
            nodes,
            faults,
            bugs: PlantedBugs::none(),
            replica,
            timing,
            clients: 4,
            keys: 3,
            nemesis: true,
            trace: false,
            plan: None,
            manual_clients: false,
            membership_changes: false,
            spares: 2,
            quorum: QuorumSpec::Majority,
            clocks: None,
        }
    }

    /// Leader leases on: the replicas assume clocks drift within `clocks.drift_ppm`, and the
    /// nodes' clocks are drawn within it (or one beyond it, with the clock fault).
    pub fn with_leases(&mut self, clocks: crate::leases::ClockModel) {
        self.replica.leader_lease = Some(paxos::multi::LeaderLease {
            max_drift_ppm: clocks.drift_ppm,
        });
        self.clocks = Some(clocks);
    }
}

/// The phases of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The nemesis injects faults.
    Faults,
    /// Faults stopped: links healed, crashed nodes restarted, no loss; clients carry on.
    Quiet,
    /// Clients start nothing new; the run ends once the cluster converged or the bound passed.
    Drain,
    /// The run is over.
    Done,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Faults => "faults",
            Phase::Quiet => "quiet",
            Phase::Drain => "drain",
            Phase::Done => "end",
        }
    }
}

/// A network endpoint: a member (by index) or a client (by index).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Endpoint {
    /// Member index (node id is index + 1).
    Node(usize),
    /// Client index (client id is index + 1).
    Client(usize),
}

impl Endpoint {
    fn name(self) -> String {
        match self {
            Endpoint::Node(i) => node_name(i),
            Endpoint::Client(i) => client_name(i),
        }
    }
}

/// A client's request to a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRequest {
    /// Client index.
    pub client: usize,
    /// The client's operation number; the reply echoes it.
    pub op: u64,
    /// What is asked.
    pub body: RequestBody,
}

/// What a client asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestBody {
    /// A write, through the log.
    Write(Command),
    /// A get, through read-index.
    Read {
        /// The key.
        key: String,
    },
}

/// A node's answer to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientReply {
    /// The operation number echoed.
    pub op: u64,
    /// The answer.
    pub body: ReplyBody,
}

/// The answer itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyBody {
    /// Done, with its output.
    Done(KvOutput),
    /// Not the leader; try `leader` if known.
    NotLeader(Option<NodeId>),
    /// Overloaded; retry later.
    Busy,
}

/// What a message in flight carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// Between members.
    Peer(Message),
    /// Client to node.
    Request(ClientRequest),
    /// Node to client.
    Reply(ClientReply),
    /// A node asks a peer for the chunk at `offset` of its snapshot (covering at least
    /// `at_least`).
    SnapshotFetch {
        /// The slot the snapshot must cover at least.
        at_least: Slot,
        /// Byte offset wanted.
        offset: u64,
    },
    /// One chunk of a snapshot, as storage encodes it (`SnapshotChunk::encode`: the slot, the
    /// offset, the body's length and CRC, the data and the chunk's own CRC).
    SnapshotChunk(Vec<u8>),
}

impl Payload {
    fn kind(&self) -> &'static str {
        match self {
            Payload::Peer(m) => m.kind(),
            Payload::Request(_) => "request",
            Payload::Reply(_) => "reply",
            Payload::SnapshotFetch { .. } => "snapshot_fetch",
            Payload::SnapshotChunk { .. } => "snapshot_chunk",
        }
    }
}

/// A message in the network, not yet delivered or dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InFlight {
    /// Unique in the run.
    pub id: u64,
    /// Sender.
    pub from: Endpoint,
    /// Receiver.
    pub to: Endpoint,
    /// When it was sent.
    pub sent_at: u64,
    /// When it is due.
    pub deliver_at: u64,
    /// The message.
    pub payload: Payload,
}

/// Something scheduled to happen at a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A node's tick (stale if the node restarted since: `incarnation` differs).
    Tick {
        /// Member index.
        node: usize,
        /// Incarnation it was scheduled for.
        incarnation: u64,
    },
    /// A message is due.
    Deliver {
        /// Message id.
        id: u64,
    },
    /// The oldest persist batch of a node completes.
    PersistDone {
        /// Member index.
        node: usize,
        /// Incarnation it was scheduled for.
        incarnation: u64,
    },
    /// A client's timer (stale if `token` differs from the client's).
    ClientTimer {
        /// Client index.
        client: usize,
        /// Token at scheduling.
        token: u64,
    },
    /// The nemesis considers a new partition.
    NemesisPartition,
    /// The nemesis considers a crash.
    NemesisCrash,
    /// The nemesis makes a follower start phase 1 at once.
    NemesisElection,
    /// A restarted node starts phase 1 at once (stale if it crashed again since).
    CampaignAfterRestart {
        /// Member index.
        node: usize,
        /// Incarnation that restarted.
        incarnation: u64,
    },
    /// Heal the partition of this epoch.
    HealPartition {
        /// Partition epoch.
        epoch: u64,
    },
    /// Cut one link of a swizzle.
    SwizzleCut {
        /// Partition epoch.
        epoch: u64,
        /// Member index.
        from: usize,
        /// Member index.
        to: usize,
    },
    /// Heal one link of a swizzle (the last one ends the partition).
    SwizzleHeal {
        /// Partition epoch.
        epoch: u64,
        /// Member index.
        from: usize,
        /// Member index.
        to: usize,
        /// Whether this is the last heal.
        last: bool,
    },
    /// Restart a crashed node (stale if it restarted since).
    Restart {
        /// Member index.
        node: usize,
        /// Incarnation that crashed.
        incarnation: u64,
    },
    /// An operator rebuilds a member whose storage refused to start.
    OperatorRebuild {
        /// Member index.
        node: usize,
    },
    /// The nemesis damages a disk.
    NemesisDisk,
    /// The nemesis asks the leader for a membership change.
    NemesisMembership,
    /// Faults stop.
    QuietStart,
    /// Clients stop starting operations.
    StopClients,
    /// Look whether the cluster converged (drain phase).
    Check,
    /// The liveness bound passed: end the run.
    Deadline,
}

#[derive(Debug)]
struct Scheduled {
    at: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at && self.seq == other.seq
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed, so the max-heap pops the earliest (time, sequence) first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A persist batch on its way to the log: written and synced at `done_at`.
#[derive(Clone, Debug)]
struct DiskWrite {
    seq: PersistSeq,
    ops: Vec<PersistOp>,
    done_at: u64,
}

/// Damage injected into a node's files, remembered to check that recovery finds it.
#[derive(Clone, Debug)]
struct Damage {
    kind: FaultKind,
    path: std::path::PathBuf,
    /// For a misdirected write: the durable bytes at the target before it. The write damages
    /// the file only if it lands there and is synced; a crash before that loses it harmlessly.
    before: Option<(u64, Vec<u8>)>,
}

/// Where every simulated node keeps its files, on its own [`MemFs`].
const DATA_DIR: &str = "/data";

/// Re-asks for a snapshot chunk without progress before a transfer is abandoned.
const TRANSFER_RETRIES_MAX: u32 = 5;

/// The cluster id in every simulated member's meta file.
const SIM_CLUSTER_ID: u64 = 0x5359_4e4f_4453_494d;

/// How a simulated node's log is set up: small segments, so that a run rotates and compacts
/// many times; compacted segments recycled or not, as the seed's plan says, with salts derived
/// from `salt_seed` so the disk's bytes are the same on every run. The planted bug
/// `ack-before-sync` is the log's own: its `sync` reports durable without syncing.
#[derive(Clone, Copy, Debug)]
struct LogSetup {
    bugs: PlantedBugs,
    recycle: bool,
    salt_seed: u64,
}

/// The largest record a simulated log writes: the reach of one misdirected write.
fn wal_options_record_bytes_max() -> u64 {
    WalOptions::small().record_bytes_max
}

fn wal_options(setup: LogSetup) -> WalOptions {
    WalOptions::small()
        .with_ack_before_sync(setup.bugs.has(Bug::AckBeforeSync))
        .with_recycle_segments(setup.recycle)
        .with_salt_seed(Some(setup.salt_seed))
}

/// Appends one persist batch, as one record when it fits, else one record per op: the core
/// releases what depends on a batch only once all of it is synced, so a crash that keeps only
/// a prefix of the records loses nothing that was acknowledged. (A catch-up page can exceed the
/// record limit.)
pub(crate) fn append_batch(
    store: &mut Store<MemFs>,
    ops: &[PersistOp],
) -> Result<Lsn, StorageError> {
    match store.append(ops) {
        Err(StorageError::RecordTooLarge { .. }) if ops.len() > 1 => {
            let mut last = Lsn(0);
            for op in ops {
                last = store.append(std::slice::from_ref(op))?;
            }
            Ok(last)
        }
        other => other,
    }
}

/// Node `index`'s log setup in a run with `config` and `plan`.
fn log_setup(config: &SimConfig, plan: &FaultPlan, index: usize) -> LogSetup {
    LogSetup {
        bugs: config.bugs,
        recycle: plan.recycle_segments,
        salt_seed: config.seed ^ (index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15),
    }
}

/// Opens a member's data directory as a node does at start: initializes it if it holds no
/// meta file (returning `fresh`), replays the log, reads the newest snapshot.
fn open_storage(
    fs: &MemFs,
    meta: &Meta,
    setup: LogSetup,
) -> Result<(Store<MemFs>, Recovered, Option<StoredSnapshot>, bool), StorageError> {
    let dir = std::path::Path::new(DATA_DIR);
    let fresh = !Store::is_initialized(fs, dir)?;
    if fresh {
        Store::init(fs.clone(), DATA_DIR, meta, wal_options(setup))?;
    }
    let (store, recovered) = Store::open(fs.clone(), DATA_DIR, meta, wal_options(setup))?;
    let snapshot = match &recovered.snapshot {
        Some(m) => Some(StoredSnapshot {
            through: m.through,
            bytes: read_snapshot_body(fs, m)?,
        }),
        None => None,
    };
    Ok((store, recovered, snapshot, fresh))
}

/// One simulated member: the real replica and the real write-ahead log (on a simulated disk),
/// plus everything a real node's driver holds.
pub struct SimNode {
    id: NodeId,
    replica: Option<Replica>,
    rng: ChaCha8Rng,
    incarnation: u64,
    /// What the log should hold durably, kept beside the real log: the promise-regression
    /// check reads it, and so does the nemesis before it destroys data (it never destroys the
    /// last copies of a chosen value). After a restart it is what recovery returned.
    durable: DurableState,
    /// The simulated disk; survives crashes, loses what was not synced.
    fs: MemFs,
    /// The data directory (meta, log, snapshots), open while the node runs.
    wal: Option<Store<MemFs>>,
    disk: VecDeque<DiskWrite>,
    /// LSNs of batches appended but not synced when the node last crashed.
    unsynced_at_crash: Vec<Lsn>,
    /// Damage injected since the last wipe: the next start must refuse to run.
    damage: Vec<Damage>,
    /// Why the last start refused to run (the storage error), until an operator rebuilds it.
    refused: Option<String>,
    applier: Applier<KvMachine>,
    next_handout: u64,
    writes: BTreeMap<CommandId, (usize, u64)>,
    reads: BTreeMap<ReadId, (usize, u64, String)>,
    confirmed_reads: Vec<(Slot, ReadId)>,
    next_read: u64,
    armed: Option<CrashPoint>,
    role: Role,
    /// The durable snapshot (survives crashes, not wipes).
    snapshot: Option<StoredSnapshot>,
    /// A snapshot being received from a peer (volatile).
    transfer: Option<Incoming>,
    /// The disk was wiped while down: the next start is a rebuild.
    wiped: bool,
    /// Started as a rebuild and has not regained its vote yet.
    rebuilding: bool,
}

impl SimNode {
    /// Node id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Whether the node is running.
    pub fn is_up(&self) -> bool {
        self.replica.is_some()
    }

    /// The replica, while up.
    pub fn replica(&self) -> Option<&Replica> {
        self.replica.as_ref()
    }

    /// What its disk holds durably (survives crashes).
    pub fn durable(&self) -> &DurableState {
        &self.durable
    }

    /// The simulated disk.
    pub fn fs(&self) -> &MemFs {
        &self.fs
    }

    /// Why the node refused to start, while it does.
    pub fn refused(&self) -> Option<&str> {
        self.refused.as_deref()
    }

    /// Persist batches handed to the disk and not yet durable: `(seq, ops)`.
    pub fn disk_in_flight(&self) -> impl Iterator<Item = (PersistSeq, &[PersistOp])> {
        self.disk.iter().map(|w| (w.seq, w.ops.as_slice()))
    }

    /// The durable snapshot's slot, if any.
    pub fn snapshot_through(&self) -> Option<Slot> {
        self.snapshot.as_ref().map(|s| s.through)
    }

    /// The applied key-value state (volatile: rebuilt from the log at restart).
    pub fn machine(&self) -> &KvMachine {
        self.applier.machine()
    }

    /// Slots applied so far in this incarnation.
    pub fn applied_through(&self) -> Slot {
        self.applier.applied_through()
    }

    /// How many times it has crashed.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The crash point armed on it, if any.
    pub fn armed(&self) -> Option<CrashPoint> {
        self.armed
    }
}

/// A client operation not yet answered.
#[derive(Clone, Debug)]
struct PendingOp {
    op: u64,
    history: usize,
    body: RequestBody,
    command: Option<KvCommand>,
    invoke_at: u64,
    attempts: u32,
    retry_due: bool,
}

/// A simulated client: one outstanding operation at a time, retries, timeouts.
#[derive(Clone, Debug)]
pub struct SimClient {
    index: usize,
    next_seq: u64,
    next_op: u64,
    target: usize,
    token: u64,
    current: Option<PendingOp>,
    seen: BTreeMap<String, Option<String>>,
}

impl SimClient {
    /// Client id (index + 1).
    pub fn id(&self) -> ClientId {
        ClientId(self.index as u64 + 1)
    }

    /// Whether an operation is outstanding.
    pub fn busy(&self) -> bool {
        self.current.is_some()
    }

    /// The node it sends to next.
    pub fn target(&self) -> NodeId {
        NodeId(self.target as u64 + 1)
    }
}

/// Counters that become a [`RunReport`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Tally {
    pub(crate) events: u64,
    pub(crate) faults: BTreeMap<FaultKind, u64>,
    pub(crate) crash_points: BTreeMap<CrashPoint, u64>,
    pub(crate) batches_lost: u64,
    pub(crate) batches_kept: u64,
    pub(crate) leader_changes: u64,
    pub(crate) messages_sent: u64,
    pub(crate) messages_delivered: u64,
    pub(crate) ops_ok: u64,
    pub(crate) reads_given_up: u64,
    pub(crate) writes_given_up: u64,
    pub(crate) violation_counts: BTreeMap<CheckKind, u64>,
    pub(crate) snapshots_taken: u64,
    pub(crate) snapshot_transfers: u64,
    pub(crate) snapshots_installed: u64,
    pub(crate) rebuilds: u64,
    pub(crate) votes_regained: u64,
    pub(crate) refused_starts: u64,
    pub(crate) operator_rebuilds: u64,
    pub(crate) storage_failures: u64,
    /// Membership changes the nemesis asked for that the leader refused (one in progress, a
    /// learner behind).
    pub(crate) reconfigurations_refused: u64,
    /// Membership changes that also changed the quorum rule.
    pub(crate) quorum_rule_changes: u64,
    /// Cheap Paxos: what the auxiliaries did, from the counters of replicas that crashed
    /// (those still up are added when the report is built).
    pub(crate) cheap: crate::cheap::CheapFigures,
    /// Leader leases: the clocks drawn, and what crashed replicas counted.
    pub(crate) leases: crate::leases::LeaseFigures,
}

/// The stable leader: a leader that a quorum follows, and since when it has been.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StableLeader {
    /// The leader.
    pub node: NodeId,
    /// Its ballot.
    pub ballot: Ballot,
    /// Since when (virtual µs) this leader at this ballot has been followed by a quorum without a break.
    pub since_us: u64,
}

/// A deterministic simulation of a cluster. Step it with [`Simulation::step`], or run it to
/// the end with [`Simulation::run`].
pub struct Simulation {
    config: SimConfig,
    plan: FaultPlan,
    membership: Configuration,
    rng: ChaCha8Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Scheduled>,
    phase: Phase,
    quiet_at: Option<u64>,
    nodes: Vec<SimNode>,
    clients: Vec<SimClient>,
    links: LinkMatrix,
    partition_epoch: u64,
    partition_active: bool,
    in_flight: BTreeMap<u64, InFlight>,
    next_msg: u64,
    history: Vec<KvOperation>,
    proposed: BTreeMap<CommandId, Vec<u8>>,
    oracle: Oracle,
    digests: Vec<u64>,
    violations: Vec<Violation>,
    tally: Tally,
    stable: Option<StableLeader>,
    trace: Option<Vec<TraceRecord>>,
    lincheck: Option<Verdict>,
    lincheck_detail: Option<String>,
    /// Virtual time between two ticks of each node: its own clock (leases.rs).
    tick_periods_us: Vec<u64>,
}

impl Simulation {
    /// Builds the cluster, draws the fault plan, and schedules the first events.
    ///
    /// # Panics
    /// If `config.nodes` is 0 or above the configuration limit.
    pub fn new(config: SimConfig) -> Simulation {
        assert!(config.nodes >= 1, "a cluster needs at least one member");
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut plan = match (&config.plan, config.nemesis) {
            (Some(plan), _) => plan.clone(),
            (None, true) => FaultPlan::draw(config.faults, config.nodes, &mut rng),
            (None, false) => FaultPlan::quiet(config.faults),
        };
        let spares = if config.membership_changes {
            config.spares
        } else {
            0
        };
        if config.membership_changes && config.nemesis && config.plan.is_none() {
            plan.membership_gap_us = range(&mut rng, 60_000, 400_000);
            // A wiped or damaged member is rebuilt through rebuild.rs from the first
            // configuration, which a change may have left behind: not combined yet.
            plan.wipe_permille = 0;
            plan.disk_damage.clear();
            plan.disk_damage_gap_us = 0;
        }
        // The planted `quorums-do-not-intersect` lets a rule through that the check refuses.
        let membership = Configuration::with_planted_bugs(
            (1..=config.nodes as u64).map(NodeId).collect(),
            Vec::new(),
            config.quorum.clone(),
            config.bugs,
        )
        .unwrap_or_else(|e| panic!("quorum rule {} refused: {e}", config.quorum));
        let total = config.nodes + spares;
        let mut nodes = Vec::with_capacity(total);
        for index in 0..total {
            let id = NodeId(index as u64 + 1);
            let fs = MemFs::new();
            let meta = Meta {
                cluster_id: SIM_CLUSTER_ID,
                member_id: id.0,
                initial_members: (1..=config.nodes as u64).collect(),
            };
            let (wal, _, _, _) = open_storage(&fs, &meta, log_setup(&config, &plan, index))
                .expect("a fresh simulated disk opens");
            // A spare starts outside the first configuration, learning only once a change
            // adds it.
            let start = DurableState {
                membership: (index >= config.nodes)
                    .then(|| Membership::initial(membership.clone())),
                ..DurableState::default()
            };
            let replica = Replica::recover_with_bugs(
                id,
                membership.clone(),
                config.replica.clone(),
                start,
                config.bugs,
            )
            .expect("member of its own configuration");
            nodes.push(SimNode {
                id,
                replica: Some(replica),
                rng: ChaCha8Rng::seed_from_u64(rng.next_u64()),
                incarnation: 0,
                durable: DurableState::default(),
                fs,
                wal: Some(wal),
                disk: VecDeque::new(),
                unsynced_at_crash: Vec::new(),
                damage: Vec::new(),
                refused: None,
                applier: Applier::new(KvMachine::new()),
                next_handout: 1,
                writes: BTreeMap::new(),
                reads: BTreeMap::new(),
                confirmed_reads: Vec::new(),
                next_read: 1,
                armed: None,
                role: Role::Follower,
                snapshot: None,
                transfer: None,
                wiped: false,
                rebuilding: false,
            });
        }
        let clients = (0..config.clients)
            .map(|index| SimClient {
                index,
                next_seq: 1,
                next_op: 1,
                target: below(&mut rng, config.nodes as u64) as usize,
                token: 0,
                current: None,
                seen: BTreeMap::new(),
            })
            .collect();
        let trace = config.trace.then(Vec::new);
        let tick_us = config.timing.tick_us;
        let mut tally = Tally::default();
        let tick_periods_us = match &config.clocks {
            Some(model) => {
                let drifts = model.draw(config.seed, total);
                tally.leases = crate::leases::LeaseFigures::of_clocks(&drifts, model);
                drifts
                    .iter()
                    .map(|d| crate::leases::tick_period_us(tick_us, *d))
                    .collect()
            }
            None => vec![tick_us; total],
        };
        let mut sim = Simulation {
            links: LinkMatrix::healed(total),
            plan,
            membership,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            phase: Phase::Faults,
            quiet_at: None,
            nodes,
            clients,
            partition_epoch: 0,
            partition_active: false,
            in_flight: BTreeMap::new(),
            next_msg: 1,
            history: Vec::new(),
            proposed: BTreeMap::new(),
            oracle: Oracle::default(),
            digests: vec![KvMachine::new().digest()],
            violations: Vec::new(),
            tally,
            stable: None,
            trace,
            lincheck: None,
            lincheck_detail: None,
            tick_periods_us,
            config,
        };
        sim.schedule_start();
        sim
    }

    fn schedule_start(&mut self) {
        let tick_us = self.config.timing.tick_us;
        for i in 0..self.nodes.len() {
            // Ticks start at random phases so that nodes are not in lockstep.
            let at = 1 + below(&mut self.rng, tick_us);
            self.schedule(
                at,
                Event::Tick {
                    node: i,
                    incarnation: 0,
                },
            );
        }
        for c in 0..self.clients.len() {
            let at = 1 + below(&mut self.rng, 20_000);
            self.schedule_client_timer(c, at);
        }
        if self.config.nemesis {
            if !self.plan.partitions.is_empty() {
                let at = range(
                    &mut self.rng,
                    self.plan.partition_gap_us / 2,
                    self.plan.partition_gap_us * 3 / 2,
                );
                self.schedule(at, Event::NemesisPartition);
            }
            if self.plan.crash_gap_us > 0 {
                let at = range(
                    &mut self.rng,
                    self.plan.crash_gap_us / 2,
                    self.plan.crash_gap_us * 3 / 2,
                );
                self.schedule(at, Event::NemesisCrash);
            }
            if self.plan.election_gap_us > 0 {
                let at = range(
                    &mut self.rng,
                    self.plan.election_gap_us / 2,
                    self.plan.election_gap_us * 3 / 2,
                );
                self.schedule(at, Event::NemesisElection);
            }
            if self.plan.disk_damage_gap_us > 0 {
                let gap = self.plan.disk_damage_gap_us;
                let at = range(&mut self.rng, gap / 2, gap * 3 / 2);
                self.schedule(at, Event::NemesisDisk);
            }
            if self.plan.membership_gap_us > 0 {
                let gap = self.plan.membership_gap_us;
                let at = range(&mut self.rng, gap / 2, gap * 3 / 2);
                self.schedule(at, Event::NemesisMembership);
            }
        }
        if self.config.timing.fault_phase_us != u64::MAX {
            self.schedule(self.config.timing.fault_phase_us, Event::QuietStart);
        }
        self.trace_event(TraceEvent::Phase {
            phase: Phase::Faults.name().to_string(),
        });
    }

    // ----- Introspection -----

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The fault plan in force.
    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// Virtual time now, in microseconds.
    pub fn now_us(&self) -> u64 {
        self.now
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The members, by index (node id = index + 1).
    pub fn nodes(&self) -> &[SimNode] {
        &self.nodes
    }

    /// The clients, by index.
    pub fn clients(&self) -> &[SimClient] {
        &self.clients
    }

    /// Messages in the network, by id.
    pub fn in_flight(&self) -> impl Iterator<Item = &InFlight> {
        self.in_flight.values()
    }

    /// Events scheduled, earliest first, as `(time, event)`.
    pub fn pending_events(&self) -> Vec<(u64, Event)> {
        let mut v: Vec<&Scheduled> = self.queue.iter().collect();
        v.sort_by_key(|s| (s.at, s.seq));
        v.into_iter().map(|s| (s.at, s.event.clone())).collect()
    }

    /// The links as they are now.
    pub fn links(&self) -> &LinkMatrix {
        &self.links
    }

    /// The trace recorded so far (empty unless `config.trace`).
    pub fn trace(&self) -> &[TraceRecord] {
        self.trace.as_deref().unwrap_or(&[])
    }

    /// The header a trace of this run starts with.
    pub fn trace_header(&self) -> TraceHeader {
        TraceHeader {
            format: TRACE_FORMAT_NAME.to_string(),
            version: TRACE_FORMAT_VERSION,
            seed: self.config.seed,
            nodes: self.config.nodes,
            faults: self.config.faults,
            bugs: bug_names(self.config.bugs),
            clients: self.config.clients,
            time_unit: "us".to_string(),
            timing: self.config.timing.clone(),
            replica: self.config.replica.clone(),
            plan: self.plan.clone(),
        }
    }

    /// Violations found so far (the first few in full).
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// The client history so far.
    pub fn history(&self) -> &[KvOperation] {
        &self.history
    }

    /// The first value each slot was handed out with, by any node.
    pub fn oracle(&self) -> &Oracle {
        &self.oracle
    }

    /// The stable leader now, if any.
    pub fn stable_leader(&self) -> Option<StableLeader> {
        self.stable
    }

    /// Whether the run is over.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    // ----- Stepping -----

    /// Processes the next scheduled event. Returns false once the run is over (or nothing is
    /// left to do).
    pub fn step(&mut self) -> bool {
        if self.phase == Phase::Done {
            return false;
        }
        let Some(next) = self.queue.pop() else {
            return false;
        };
        debug_assert!(next.at >= self.now, "time never goes back");
        self.now = next.at;
        self.tally.events += 1;
        self.handle(next.event);
        self.observe_leadership();
        true
    }

    /// Steps until virtual time reaches `t_us` (events at `t_us` included) or the run ends.
    pub fn run_until(&mut self, t_us: u64) {
        while self.phase != Phase::Done && self.queue.peek().is_some_and(|s| s.at <= t_us) {
            self.step();
        }
        if self.phase != Phase::Done {
            self.now = self.now.max(t_us);
        }
    }

    /// Runs to the end, then checks linearizability and liveness, and reports.
    pub fn run(mut self) -> RunReport {
        while self.step() {}
        self.finish()
    }

    /// Ends the run now (if not already), runs the end-of-run checks once, and reports.
    pub fn finish(&mut self) -> RunReport {
        if self.phase != Phase::Done {
            self.end_run();
        }
        RunReport::build(self)
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick { node, incarnation } => self.on_tick(node, incarnation),
            Event::Deliver { id } => self.on_deliver(id),
            Event::PersistDone { node, incarnation } => self.on_persist_done(node, incarnation),
            Event::ClientTimer { client, token } => {
                if self.clients[client].token == token {
                    self.on_client_timer(client);
                }
            }
            Event::NemesisPartition => self.nemesis_partition(),
            Event::NemesisCrash => self.nemesis_crash(),
            Event::NemesisElection => self.nemesis_election(),
            Event::CampaignAfterRestart { node, incarnation } => {
                if self.phase == Phase::Faults && self.nodes[node].incarnation == incarnation {
                    self.count_fault(FaultKind::ForcedElection);
                    self.force_election(node);
                }
            }
            Event::HealPartition { epoch } => {
                if epoch == self.partition_epoch && self.partition_active {
                    self.heal_all();
                }
            }
            Event::SwizzleCut { epoch, from, to } => {
                if epoch == self.partition_epoch && self.partition_active {
                    self.cut(from, to);
                }
            }
            Event::SwizzleHeal {
                epoch,
                from,
                to,
                last,
            } => {
                if epoch == self.partition_epoch && self.partition_active {
                    self.heal(from, to);
                    if last {
                        self.partition_active = false;
                    }
                }
            }
            Event::Restart { node, incarnation } => {
                if self.nodes[node].incarnation == incarnation && !self.nodes[node].is_up() {
                    self.restart(node);
                }
            }
            Event::OperatorRebuild { node } => self.operator_rebuild(node),
            Event::NemesisDisk => self.nemesis_disk(),
            Event::NemesisMembership => self.nemesis_membership(),
            Event::QuietStart => self.start_quiet(),
            Event::StopClients => self.start_drain(),
            Event::Check => self.on_check(),
            Event::Deadline => self.end_run(),
        }
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at,
            seq: self.seq,
            event,
        });
    }

    fn trace_event(&mut self, event: TraceEvent) {
        if let Some(t) = &mut self.trace {
            t.push(TraceRecord { t: self.now, event });
        }
    }

    fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    fn violation(
        &mut self,
        check: CheckKind,
        node: Option<usize>,
        slot: Option<u64>,
        detail: String,
    ) {
        *self.tally.violation_counts.entry(check).or_insert(0) += 1;
        if self.tracing() {
            self.trace_event(TraceEvent::Violation {
                check,
                node: node.map(node_name),
                slot,
                detail: detail.clone(),
            });
        }
        if self.violations.len() < VIOLATIONS_KEPT_MAX {
            self.violations.push(Violation {
                check,
                at_us: self.now,
                node: node.map(|i| NodeId(i as u64 + 1)),
                slot,
                detail,
            });
        }
    }

    fn count_fault(&mut self, kind: FaultKind) {
        *self.tally.faults.entry(kind).or_insert(0) += 1;
    }

    // ----- Nodes -----

    fn on_tick(&mut self, i: usize, incarnation: u64) {
        let node = &mut self.nodes[i];
        if node.incarnation != incarnation {
            return;
        }
        let Some(replica) = node.replica.as_mut() else {
            return;
        };
        let before = replica.role();
        replica.tick(&mut node.rng);
        let after = replica.role();
        if before != after && self.tracing() {
            self.trace_event(TraceEvent::Timeout {
                node: node_name(i),
                from: before,
                to: after,
            });
        }
        self.drive(i);
        self.retry_transfer(i);
        let next = self.now + self.tick_periods_us[i];
        self.schedule(
            next,
            Event::Tick {
                node: i,
                incarnation,
            },
        );
    }

    /// Drains the replica's `Ready` and carries it out, like a real node's driver loop.
    fn drive(&mut self, i: usize) {
        // Two rounds are enough: handling a Ready never calls back into the replica, so the
        // second only catches work queued by the first round's own bookkeeping.
        for _ in 0..2 {
            let Some(replica) = self.nodes[i].replica.as_mut() else {
                return;
            };
            let ready = replica.ready();
            if ready.is_empty() {
                break;
            }
            self.carry_out(i, ready);
            if !self.nodes[i].is_up() {
                return;
            }
        }
        self.note_role(i);
        let node = &mut self.nodes[i];
        let voting = node.replica.as_ref().is_some_and(Replica::is_voting);
        if voting && std::mem::take(&mut node.rebuilding) {
            self.tally.votes_regained += 1;
        }
        self.crash_if_armed_at(i, CrashPoint::Leader);
    }

    fn note_role(&mut self, i: usize) {
        let Some(replica) = self.nodes[i].replica.as_ref() else {
            return;
        };
        let role = replica.role();
        let before = self.nodes[i].role;
        if role == before {
            return;
        }
        let ballot = replica.ballot();
        self.nodes[i].role = role;
        if role == Role::Leader {
            self.tally.leader_changes += 1;
            self.check_lease_overlap(i);
        }
        if self.tracing() {
            self.trace_event(TraceEvent::Role {
                node: node_name(i),
                from: before,
                to: role,
                ballot: ballot.to_string(),
            });
        }
    }

    /// Leader leases: node `i` just won phase 1; no node may still hold a lease at a lower
    /// ballot now. (A leader at a lower ballot than a lease holder's is harmless: the holder's
    /// phase-1 quorum refuses its accepts, so it chooses nothing.)
    fn check_lease_overlap(&mut self, i: usize) {
        if self.config.clocks.is_none() {
            return;
        }
        let Some(won) = self.nodes[i].replica.as_ref().map(Replica::ballot) else {
            return;
        };
        for j in (0..self.nodes.len()).filter(|j| *j != i) {
            let held = self.nodes[j].replica.as_ref().and_then(|r| {
                r.lease_until_ticks()
                    .map(|until| (r.ballot(), r.now_ticks(), until))
            });
            if let Some((ballot, now, until)) = held.filter(|(b, _, _)| *b < won) {
                let detail = format!(
                    "{} leads at ballot {won} while {} still holds its lease at ballot {ballot} (tick {now} of {until})",
                    node_name(i),
                    node_name(j)
                );
                self.violation(CheckKind::LeaseOverlap, Some(j), None, detail);
            }
        }
    }

    fn carry_out(&mut self, i: usize, ready: Ready) {
        let Ready {
            persist,
            send,
            chosen,
            reads,
            abandoned,
            snapshot_wanted,
        } = ready;
        let mut persist_issued = false;
        if let Some(batch) = persist {
            persist_issued = true;
            let latency =
                self.plan.disk_base_us + below(&mut self.rng, self.plan.disk_jitter_us + 1);
            let node = &mut self.nodes[i];
            let done_at = node
                .disk
                .back()
                .map_or(0, |w| w.done_at)
                .max(self.now + latency);
            let (seq, ops) = (batch.seq, batch.ops.len());
            // The write itself happens at `done_at`, with its sync: a sync covers every write
            // before it, so writing early would make a batch durable with an earlier batch's
            // sync and shrink the window a crash can catch it in.
            node.disk.push_back(DiskWrite {
                seq: batch.seq,
                ops: batch.ops,
                done_at,
            });
            let incarnation = node.incarnation;
            self.schedule(
                done_at,
                Event::PersistDone {
                    node: i,
                    incarnation,
                },
            );
            if self.tracing() {
                self.trace_event(TraceEvent::Persist {
                    node: node_name(i),
                    seq: seq.0,
                    ops,
                    done_at,
                });
            }
        }
        for out in send {
            let to = self
                .node_index(out.to)
                .expect("replicas only send to simulated nodes");
            self.send(
                Endpoint::Node(i),
                Endpoint::Node(to),
                Payload::Peer(out.msg),
            );
        }
        let any_chosen = !chosen.is_empty();
        for entry in chosen {
            self.hand_out(i, entry);
        }
        for outcome in reads {
            match outcome {
                ReadOutcome::Ready { id, slot } => self.nodes[i].confirmed_reads.push((slot, id)),
                ReadOutcome::Failed { id, leader } => {
                    if let Some((client, op, _)) = self.nodes[i].reads.remove(&id) {
                        self.reply(i, client, op, ReplyBody::NotLeader(leader));
                    }
                }
            }
        }
        self.serve_reads(i);
        if !abandoned.is_empty() {
            let leader = self.nodes[i].replica.as_ref().and_then(Replica::leader);
            for id in abandoned {
                if let Some((client, op)) = self.nodes[i].writes.remove(&id) {
                    self.reply(i, client, op, ReplyBody::NotLeader(leader));
                }
            }
        }
        if let Some(w) = snapshot_wanted {
            self.start_transfer(i, w.from, w.through);
        }
        if persist_issued {
            self.crash_if_armed_at(i, CrashPoint::PersistIssued);
        }
        if any_chosen {
            self.crash_if_armed_at(i, CrashPoint::ChosenApplied);
        }
    }

    /// One chosen slot handed out by node `i`: the oracle, validity and contiguity checks,
    /// then apply, answer waiting writes, and compare the state digest.
    fn hand_out(&mut self, i: usize, entry: ChosenEntry) {
        if !self.nodes[i].is_up() {
            return;
        }
        let slot = entry.slot;
        if self.tracing() {
            self.trace_event(TraceEvent::Chosen {
                node: node_name(i),
                slot: slot.0,
                value: describe_value(&entry.value),
            });
        }
        self.observe_chosen(i, slot, &entry.value, "handed out");
        if let Value::Batch(commands) = &entry.value {
            for c in commands {
                if self.proposed.get(&c.id).map(|p| &p[..]) != Some(&c.payload[..]) {
                    let detail = format!(
                        "command c{}#{} was never proposed with this payload",
                        c.id.client.0, c.id.seq
                    );
                    self.violation(CheckKind::Validity, Some(i), Some(slot.0), detail);
                }
            }
        }
        let expected = self.nodes[i].next_handout;
        if slot.0 != expected {
            let detail = format!("handed out slot {} when slot {expected} was next", slot.0);
            self.violation(CheckKind::Contiguity, Some(i), Some(slot.0), detail);
            return;
        }
        self.nodes[i].next_handout += 1;
        let mut applied: Vec<Applied<KvResult>> = Vec::new();
        self.nodes[i].applier.apply(&entry, &mut applied);
        let digest = self.nodes[i].applier.machine().digest();
        let s = slot.0 as usize;
        if s == self.digests.len() {
            self.digests.push(digest);
        } else if s < self.digests.len() && self.digests[s] != digest {
            let detail = format!(
                "state digest {digest:016x} after slot {s}, others had {:016x}",
                self.digests[s]
            );
            self.violation(CheckKind::StateDivergence, Some(i), Some(slot.0), detail);
        }
        self.maybe_snapshot(i);
        for a in applied {
            let output = match a.outcome {
                SessionOutcome::Applied(o) | SessionOutcome::Duplicate(o) => o,
                SessionOutcome::Stale => {
                    self.nodes[i].writes.remove(&a.id);
                    continue;
                }
            };
            if let Some((client, op)) = self.nodes[i].writes.remove(&a.id) {
                match output.to_output() {
                    Some(out) => self.reply(i, client, op, ReplyBody::Done(out)),
                    None => {
                        let detail =
                            format!("command c{}#{} did not decode", a.id.client.0, a.id.seq);
                        self.violation(CheckKind::Validity, Some(i), Some(slot.0), detail);
                    }
                }
            }
        }
    }

    /// Takes a snapshot once enough slots were applied since the last one, and compacts.
    /// Taking it is modelled as durable at once; the storage layer makes that real.
    fn maybe_snapshot(&mut self, i: usize) {
        let every = self.plan.snapshot_every_slots;
        if every == 0 {
            return;
        }
        let node = &mut self.nodes[i];
        let applied = node.applier.applied_through();
        let last = node.snapshot.as_ref().map_or(Slot::ZERO, |s| s.through);
        if applied.0 < last.0 + every {
            return;
        }
        if node.replica.is_none() {
            return;
        }
        let snap = StoredSnapshot::take(&node.applier);
        if let Err(e) = self.store_snapshot(i, &snap) {
            self.storage_failure(i, format!("snapshot: {e}"));
            return;
        }
        self.tally.snapshots_taken += 1;
        if self.tracing() {
            self.trace_event(TraceEvent::Snapshot {
                node: node_name(i),
                through: applied.0,
            });
        }
        self.crash_if_armed_at(i, CrashPoint::SnapshotWritten);
        if !self.nodes[i].is_up() {
            return;
        }
        let node = &mut self.nodes[i];
        if let Some(replica) = node.replica.as_mut() {
            replica.compact(applied);
        }
        let compacted = match node.wal.as_mut() {
            Some(store) => store.wal().compact(applied),
            None => Ok(0),
        };
        if let Err(e) = compacted {
            self.storage_failure(i, format!("compact: {e}"));
        }
    }

    /// Writes a snapshot durably into node `i`'s data directory (the log is compacted later).
    fn store_snapshot(&mut self, i: usize, snap: &StoredSnapshot) -> Result<(), StorageError> {
        let node = &mut self.nodes[i];
        let Some(store) = node.wal.as_mut() else {
            return Ok(());
        };
        let mut writer = store.snapshot_writer(snap.through)?;
        writer.write(&snap.bytes)?;
        writer.finish()?;
        self.note_snapshot_stored(i, snap);
        Ok(())
    }

    /// Node `i`'s disk now holds `snap`: its model of the log is compacted to match.
    fn note_snapshot_stored(&mut self, i: usize, snap: &StoredSnapshot) {
        let node = &mut self.nodes[i];
        node.durable.compacted_through = snap.through;
        node.durable.entries = node.durable.entries.split_off(&snap.through.next());
        node.snapshot = Some(snap.clone());
    }

    /// The replica of node `i` misses slots `from` compacted: fetch its snapshot.
    fn start_transfer(&mut self, i: usize, from: NodeId, at_least: Slot) {
        let busy = self.nodes[i]
            .transfer
            .as_ref()
            .is_some_and(|t| t.at_least >= at_least);
        if busy {
            return;
        }
        let Some(j) = self.node_index(from) else {
            return;
        };
        self.nodes[i].transfer = Some(Incoming::new(from, at_least, self.now));
        self.tally.snapshot_transfers += 1;
        self.send(
            Endpoint::Node(i),
            Endpoint::Node(j),
            Payload::SnapshotFetch {
                at_least,
                offset: 0,
            },
        );
    }

    /// Re-asks for the current chunk if a transfer made no progress for a while (a chunk or
    /// a request was lost).
    fn retry_transfer(&mut self, i: usize) {
        let patience = 10 * self.config.timing.tick_us;
        let Some(t) = self.nodes[i].transfer.as_mut() else {
            return;
        };
        if self.now.saturating_sub(t.progress_at_us) < patience {
            return;
        }
        if t.retries >= TRANSFER_RETRIES_MAX {
            // The replica asks again when it next hears of the compacted prefix, from
            // whichever peer tells it.
            self.nodes[i].transfer = None;
            return;
        }
        t.retries += 1;
        t.progress_at_us = self.now;
        let (from, at_least, offset) = (t.from, t.at_least, t.offset());
        let Some(j) = self.node_index(from) else {
            return;
        };
        self.send(
            Endpoint::Node(i),
            Endpoint::Node(j),
            Payload::SnapshotFetch { at_least, offset },
        );
    }

    /// Node `j` serves one chunk of its durable snapshot, read from its disk by storage's
    /// `SnapshotSource`, to node `to`.
    fn serve_snapshot(&mut self, j: usize, to: usize, at_least: Slot, offset: u64) {
        let fs = self.nodes[j].fs.clone();
        let meta = match latest_snapshot(&fs, std::path::Path::new(DATA_DIR)) {
            Ok(Some(meta)) => meta,
            Ok(None) => return,
            Err(e) => {
                // Its own snapshot no longer verifies: the disk is damaged. A real node stops
                // rather than serve from it; its next start refuses, and an operator rebuilds.
                self.storage_failure(j, format!("serve snapshot: {e}"));
                return;
            }
        };
        if meta.through < at_least || offset >= meta.body_len {
            return;
        }
        let chunk = SnapshotSource::open(&fs, &meta, offset, CHUNK_BYTES as u64)
            .and_then(|mut source| source.next_chunk());
        match chunk {
            Ok(Some(chunk)) => {
                let payload = Payload::SnapshotChunk(chunk.encode());
                self.send(Endpoint::Node(j), Endpoint::Node(to), payload);
            }
            Ok(None) => {}
            Err(e) => self.storage_failure(j, format!("serve snapshot: {e}")),
        }
    }

    /// One chunk reached node `i`. Out-of-order, duplicated and stale chunks are refused by the
    /// receiver and cost only a re-ask; the body is verified whole before it is installed.
    fn on_snapshot_chunk(&mut self, i: usize, bytes: &[u8]) {
        let Ok(chunk) = SnapshotChunk::decode(bytes) else {
            return;
        };
        let fs = self.nodes[i].fs.clone();
        let now = self.now;
        let Some(t) = self.nodes[i].transfer.as_mut() else {
            return;
        };
        if chunk.through < t.at_least {
            return;
        }
        let same_snapshot = t
            .receiver
            .as_ref()
            .is_some_and(|r| r.snapshot() == (chunk.through, chunk.total_len, chunk.body_crc));
        if !same_snapshot {
            if chunk.offset != 0 {
                return;
            }
            // The first chunk of a snapshot, or of a newer one the peer took meanwhile.
            match SnapshotReceiver::new(
                fs.clone(),
                DATA_DIR,
                chunk.through,
                chunk.total_len,
                chunk.body_crc,
            ) {
                Ok(r) => t.receiver = Some(r),
                Err(_) => return,
            }
        }
        let Some(receiver) = t.receiver.as_mut() else {
            return;
        };
        match receiver.accept(&chunk) {
            Err(_) => {}
            Ok(None) => {
                t.progress_at_us = now;
                t.retries = 0;
                let (from, at_least, offset) = (t.from, t.at_least, t.offset());
                if let Some(j) = self.node_index(from) {
                    self.send(
                        Endpoint::Node(i),
                        Endpoint::Node(j),
                        Payload::SnapshotFetch { at_least, offset },
                    );
                }
            }
            Ok(Some(meta)) => {
                self.nodes[i].transfer = None;
                match read_snapshot_body(&fs, &meta) {
                    Ok(bytes) => {
                        let snap = StoredSnapshot {
                            through: meta.through,
                            bytes,
                        };
                        self.install_snapshot(i, snap, true);
                    }
                    Err(e) => self.storage_failure(i, format!("read received snapshot: {e}")),
                }
            }
        }
    }

    /// Node `i` restores its state machine from a received snapshot, stores it (unless the
    /// transfer already wrote it), and tells its replica. The restored state must match what
    /// every other node had after that slot.
    fn install_snapshot(&mut self, i: usize, snap: StoredSnapshot, stored: bool) {
        let through = snap.through;
        if through <= self.nodes[i].applier.applied_through() {
            return;
        }
        let Some(applier) = snap.restore() else {
            let detail = format!("snapshot through {} did not verify", through.0);
            self.violation(CheckKind::StateDivergence, Some(i), Some(through.0), detail);
            return;
        };
        let digest = applier.machine().digest();
        if let Some(want) = self.digests.get(through.0 as usize) {
            if *want != digest {
                let detail = format!(
                    "snapshot through {} restores digest {digest:016x}, others had {want:016x}",
                    through.0
                );
                self.violation(CheckKind::StateDivergence, Some(i), Some(through.0), detail);
            }
        }
        let written = if stored {
            self.note_snapshot_stored(i, &snap);
            Ok(())
        } else {
            self.store_snapshot(i, &snap)
        };
        if let Err(e) = written {
            self.storage_failure(i, format!("install snapshot: {e}"));
            return;
        }
        let node = &mut self.nodes[i];
        node.applier = applier;
        node.next_handout = through.0 + 1;
        if let Some(Err(e)) = node.wal.as_mut().map(|s| s.wal().compact(through)) {
            self.storage_failure(i, format!("compact: {e}"));
            return;
        }
        // Slots this replica knew chosen but had not handed out vanish into the snapshot: show
        // them to the oracle first, or a disagreement in them would go unseen.
        let known: Vec<(Slot, Value)> = self.nodes[i]
            .replica
            .as_ref()
            .map(|r| {
                r.slots()
                    .take_while(|s| *s <= through)
                    .filter_map(|s| match r.entry(s) {
                        Some((_, value, true)) => Some((s, value.clone())),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        for (slot, value) in known {
            self.observe_chosen(i, slot, &value, "knew chosen");
        }
        let node = &mut self.nodes[i];
        // Writes waiting at this node for slots the snapshot covers are answered by a retry
        // (the session table in the snapshot recognises it).
        let membership = node.applier.membership().cloned();
        if let Some(replica) = node.replica.as_mut() {
            match membership {
                Some(m) => replica.install_snapshot_in(through, m),
                None => replica.install_snapshot(through),
            }
        }
        self.tally.snapshots_installed += 1;
        if self.tracing() {
            self.trace_event(TraceEvent::SnapshotInstalled {
                node: node_name(i),
                through: through.0,
            });
        }
        self.drive(i);
    }

    /// Tells the agreement oracle that node `i` holds `value` as chosen in `slot` (`how`: it
    /// handed it out, or it knew it chosen when a snapshot replaced it).
    fn observe_chosen(&mut self, i: usize, slot: Slot, value: &Value, how: &str) {
        if let OracleVerdict::Conflict { first, same_node } = self.oracle.observe(i, slot, value) {
            let check = if same_node {
                CheckKind::Stability
            } else {
                CheckKind::Agreement
            };
            let detail = format!(
                "{how} {} but {} was handed out first",
                describe_value(value),
                describe_value(&first)
            );
            self.violation(check, Some(i), Some(slot.0), detail);
        }
    }

    /// Answers confirmed reads whose slot is applied.
    fn serve_reads(&mut self, i: usize) {
        let applied = self.nodes[i].applier.applied_through();
        if self.nodes[i]
            .confirmed_reads
            .iter()
            .all(|(slot, _)| *slot > applied)
        {
            return;
        }
        let confirmed = std::mem::take(&mut self.nodes[i].confirmed_reads);
        for (slot, id) in confirmed {
            if slot > applied {
                self.nodes[i].confirmed_reads.push((slot, id));
                continue;
            }
            if let Some((client, op, key)) = self.nodes[i].reads.remove(&id) {
                let value = self.nodes[i].applier.machine().get(&key).map(str::to_owned);
                self.reply(i, client, op, ReplyBody::Done(KvOutput::Get { value }));
            }
        }
    }

    fn on_persist_done(&mut self, i: usize, incarnation: u64) {
        let node = &self.nodes[i];
        if node.incarnation != incarnation || !node.is_up() {
            return;
        }
        // Each write has one event, at its `done_at`; a write finished early by hand
        // (`persist_now`) leaves its event to finish the next write if that one is due by now,
        // or to find nothing to do.
        match node.disk.front() {
            Some(w) if w.done_at <= self.now => {}
            _ => return,
        }
        self.complete_oldest_write(i);
    }

    /// Finishes node `i`'s oldest disk write now, ahead of its time (the adversary may order
    /// disk completions as it likes; a sync still covers the writes before it, so only the
    /// oldest may finish). Returns false if the node is down or has no write in progress.
    pub fn persist_now(&mut self, i: usize) -> bool {
        let Some(node) = self.nodes.get(i) else {
            return false;
        };
        if !node.is_up() || node.disk.is_empty() {
            return false;
        }
        self.complete_oldest_write(i);
        self.observe_leadership();
        true
    }

    fn complete_oldest_write(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let Some(write) = node.disk.pop_front() else {
            return;
        };
        debug_assert!(write.done_at >= self.now, "a disk write finished late");
        let Some(store) = node.wal.as_mut() else {
            unreachable!("a running node has its log open")
        };
        let written = append_batch(store, &write.ops);
        let synced = written.and_then(|lsn| {
            store.sync().inspect(|synced| {
                debug_assert!(*synced >= lsn, "sync returned before {lsn}");
            })
        });
        if let Err(e) = synced {
            // A write or sync error poisons the log; a real node stops. So does this one.
            self.storage_failure(i, format!("write: {e}"));
            return;
        }
        for op in &write.ops {
            self.store(i, op);
        }
        let node = &mut self.nodes[i];
        if let Some(replica) = node.replica.as_mut() {
            replica.persisted(write.seq);
        }
        if self.tracing() {
            self.trace_event(TraceEvent::Persisted {
                node: node_name(i),
                seq: write.seq.0,
            });
        }
        self.drive(i);
        self.crash_if_armed_at(i, CrashPoint::PersistCompleted);
    }

    /// Notes one op as durable in node `i`'s model of its log. Storage keeps what it is told,
    /// like a real disk; a promise below the stored one is reported, not refused.
    fn store(&mut self, i: usize, op: &PersistOp) {
        if let PersistOp::Promise { ballot } = op {
            let durable = &mut self.nodes[i].durable;
            if let Some(stored) = durable.promised.filter(|p| p > ballot) {
                durable.promised = Some(*ballot);
                let detail = format!("stores promise {ballot} over {stored}");
                self.violation(CheckKind::PromiseRegression, Some(i), None, detail);
                return;
            }
        }
        self.nodes[i].durable.apply(op);
    }

    fn crash_if_armed_at(&mut self, i: usize, point: CrashPoint) {
        if self.nodes[i].armed != Some(point) || !self.nodes[i].is_up() {
            return;
        }
        if point == CrashPoint::Leader
            && self.nodes[i].replica.as_ref().map(Replica::role) != Some(Role::Leader)
        {
            return;
        }
        self.nodes[i].armed = None;
        self.crash_at(i, point);
    }

    /// Crashes node `index` now: volatile state is gone; persist batches in flight survive as
    /// a prefix, each by a seeded coin (the first lost batch loses every later one too, as a
    /// write-ahead log would). Returns false if it was already down.
    pub fn crash(&mut self, index: usize) -> bool {
        if !self.nodes[index].is_up() {
            return false;
        }
        self.crash_at(index, CrashPoint::RandomTime);
        true
    }

    fn crash_at(&mut self, i: usize, point: CrashPoint) {
        // Power loss. Batches still on their way were being written: they reach the disk's
        // cache, and the disk keeps some prefix of those unsynced writes, the last one perhaps
        // torn, as it decides from the seed. The replica learns which at restart.
        let node = &mut self.nodes[i];
        let in_flight: Vec<DiskWrite> = node.disk.drain(..).collect();
        node.unsynced_at_crash.clear();
        if let Some(store) = node.wal.as_mut() {
            for w in &in_flight {
                match append_batch(store, &w.ops) {
                    Ok(lsn) => node.unsynced_at_crash.push(lsn),
                    Err(_) => break,
                }
            }
        }
        node.wal = None;
        let torn_before = node.fs.counters().writes_torn;
        node.fs.crash(&mut self.rng);
        let torn = node.fs.counters().writes_torn - torn_before;
        for _ in 0..torn {
            self.count_fault(FaultKind::TornWrite);
        }
        if let Some(r) = self.nodes[i].replica.take() {
            self.tally.cheap.add_replica(&r);
            self.tally.leases.add_replica(&r);
        }
        let node = &mut self.nodes[i];
        let unsynced = node.unsynced_at_crash.len();
        node.incarnation += 1;
        node.writes.clear();
        node.reads.clear();
        node.confirmed_reads.clear();
        node.armed = None;
        node.role = Role::Follower;
        node.transfer = None;
        *self.tally.crash_points.entry(point).or_insert(0) += 1;
        self.count_fault(FaultKind::Crash);
        if self.tracing() {
            self.trace_event(TraceEvent::Crash {
                node: node_name(i),
                point,
                unsynced,
            });
        }
        if self.phase == Phase::Faults
            && self.config.nemesis
            && chance_permille(&mut self.rng, self.plan.wipe_permille)
            && self.others_vote(i)
            && self.wipe_keeps_chosen_values(i)
        {
            self.wipe_disk(i, true);
        }
        if self.phase == Phase::Faults && self.config.nemesis {
            let down_us = range(&mut self.rng, 1_000, self.plan.restart_max_us.max(1_000));
            let incarnation = self.nodes[i].incarnation;
            self.schedule(
                self.now + down_us,
                Event::Restart {
                    node: i,
                    incarnation,
                },
            );
        }
    }

    /// Node `i` opened its storage although damage was injected: that is correct only if the
    /// damaged file is gone (compaction deleted it, a newer snapshot replaced it) or the damage
    /// never landed (a misdirected write armed but no write came).
    fn check_damage_found(&mut self, i: usize) {
        let damage = std::mem::take(&mut self.nodes[i].damage);
        let fs = self.nodes[i].fs.clone();
        for d in damage {
            let now = fs.read_durable(&d.path);
            let landed = match (&d.before, &now) {
                (Some((at, before)), Some(now)) => {
                    let at = *at as usize;
                    now.get(at..at + before.len()) != Some(before.as_slice())
                }
                _ => true,
            };
            if now.is_some() && landed {
                let detail = format!(
                    "started from {} despite a {} in it",
                    d.path.display(),
                    d.kind.name()
                );
                self.violation(CheckKind::SilentCorruption, Some(i), None, detail);
            }
        }
    }

    /// The meta file node `i` is initialized with.
    fn member_meta(&self, i: usize) -> Meta {
        Meta {
            cluster_id: SIM_CLUSTER_ID,
            member_id: i as u64 + 1,
            initial_members: (1..=self.nodes.len() as u64).collect(),
        }
    }

    /// Node `i`'s storage refused to open: it stays down, as a real node would, and an
    /// operator rebuilds it later (wipes the directory and restarts it as an existing member).
    fn refuse_start(&mut self, i: usize, error: impl ToString) {
        let error = error.to_string();
        self.tally.refused_starts += 1;
        if self.tracing() {
            self.trace_event(TraceEvent::Refused {
                node: node_name(i),
                error: error.clone(),
            });
        }
        self.nodes[i].refused = Some(error);
        let at = self.now + range(&mut self.rng, 10_000, 100_000);
        self.schedule(at, Event::OperatorRebuild { node: i });
    }

    /// An operator replaces the refused disk of node `i` and restarts it: only once the others
    /// vote and hold every possibly-chosen value, else later.
    fn operator_rebuild(&mut self, i: usize) {
        if self.nodes[i].is_up() || self.nodes[i].refused.is_none() {
            return;
        }
        if !(self.others_vote(i) && self.wipe_keeps_chosen_values(i)) {
            let at = self.now + range(&mut self.rng, 10_000, 100_000);
            self.schedule(at, Event::OperatorRebuild { node: i });
            return;
        }
        self.nodes[i].refused = None;
        self.wipe_disk(i, false);
        self.tally.operator_rebuilds += 1;
        self.restart(i);
    }

    /// A write or sync failed on node `i`: the log is poisoned, so the node stops.
    fn storage_failure(&mut self, i: usize, error: String) {
        self.tally.storage_failures += 1;
        if self.tracing() {
            self.trace_event(TraceEvent::Refused {
                node: node_name(i),
                error: error.clone(),
            });
        }
        self.crash_at(i, CrashPoint::RandomTime);
        if self.phase != Phase::Faults {
            // A supervisor restarts the stopped process (in the fault phase the nemesis does).
            let incarnation = self.nodes[i].incarnation;
            let at = self.now + range(&mut self.rng, 1_000, 20_000);
            self.schedule(
                at,
                Event::Restart {
                    node: i,
                    incarnation,
                },
            );
        }
    }

    /// Whether every member other than `i` votes: up and not rebuilding, or down with its
    /// disk intact.
    fn others_vote(&self, i: usize) -> bool {
        self.nodes.iter().enumerate().all(|(j, n)| {
            j == i
                || ((n.damage.is_empty() || (self.phase != Phase::Faults && n.is_up()))
                    && n.refused.is_none()
                    // Voting durably: a replica that regained its vote in memory but crashes
                    // before `VoteRegained` is synced rebuilds again.
                    && !n.durable.rebuilding
                    && match n.replica.as_ref() {
                        Some(r) => r.is_voting(),
                        None => !n.wiped,
                    })
        })
    }

    /// Whether wiping node `i` leaves every value that may be chosen on enough disks that
    /// every phase-1 quorum of the others still meets one: Paxos survives the loss of one
    /// disk, not of the last copies of a chosen value. Counts only durable state: a value
    /// is possibly chosen once a phase-2 quorum holds it durably (an Accepted leaves only
    /// after its write), and a snapshot covering the slot holds whatever was chosen there.
    /// Also, the others alone must make a phase-1 quorum: a rebuilding member promises
    /// nothing, so under a rule whose phase 1 needs `i` (flexible phase 1 = n, a grid column
    /// of one...) it could never regain its vote.
    fn wipe_keeps_chosen_values(&self, i: usize) -> bool {
        if self.newest_configuration() != self.membership {
            // The judgement below is against the first configuration. The nemesis does not
            // change the membership while it damages disks, but the core may (Cheap Paxos
            // drops a failed main): after that, no more disk damage, so a lone remaining
            // main never loses the only durable copy, which no protocol survives.
            return false;
        }
        if !self.membership.auxiliaries().is_empty()
            && !self.membership.is_auxiliary(self.nodes[i].id)
        {
            // Cheap Paxos on f + 1 mains: a main whose disk is lost is a failure that no drop
            // can mend once another main is dropped (the last main is then every quorum), so
            // disk damage hits auxiliaries only; mains crash and restart with their disks.
            return false;
        }
        let n = self.nodes.len();
        // Sets of the first configuration's indices (node j is voter j; wipes are not combined
        // with membership changes).
        let set_of = |holders: &mut dyn Iterator<Item = usize>| {
            let mut set = NodeSet::EMPTY;
            for j in holders {
                if let Some(index) = self.membership.index_of(self.nodes[j].id) {
                    set.insert(index);
                }
            }
            set
        };
        let others = set_of(&mut (0..n).filter(|j| *j != i));
        if !self.membership.is_phase1_quorum(others) {
            return false;
        }
        let last = self
            .nodes
            .iter()
            .filter_map(|node| node.durable.entries.keys().next_back().copied())
            .chain(self.nodes.iter().map(|node| node.durable.compacted_through))
            .max()
            .unwrap_or(Slot::ZERO);
        let mut slot = Slot(1);
        while slot <= last {
            let compacted: Vec<usize> = (0..n)
                .filter(|j| self.nodes[*j].durable.compacted_through >= slot)
                .collect();
            let known = self.oracle.chosen(slot);
            let mut values: Vec<&Value> = known.into_iter().collect();
            if values.is_empty() && !compacted.is_empty() {
                // Compacted somewhere but never handed out where the oracle saw it: cannot
                // tell which copy is the chosen one, so do not wipe.
                return false;
            }
            for node in &self.nodes {
                if let Some(e) = node.durable.entries.get(&slot) {
                    if !values.contains(&&e.value) {
                        values.push(&e.value);
                    }
                }
            }
            for v in values {
                let chosen = known == Some(v);
                let holders = (0..n).filter(|j| {
                    (chosen && compacted.contains(j))
                        || self.nodes[*j]
                            .durable
                            .entries
                            .get(&slot)
                            .is_some_and(|e| &e.value == v)
                });
                let all = set_of(&mut holders.clone());
                let others = set_of(&mut holders.filter(|j| *j != i));
                if (chosen || self.membership.is_phase2_quorum(all))
                    && !self.membership.every_phase1_quorum_meets(others)
                {
                    return false;
                }
            }
            slot = slot.next();
        }
        true
    }

    /// Crashes node `i` if it is up and wipes its disk: the next start is a rebuild.
    pub fn wipe(&mut self, i: usize) {
        if self.nodes[i].is_up() {
            self.crash_at(i, CrashPoint::RandomTime);
        }
        if !self.nodes[i].wiped {
            self.wipe_disk(i, true);
        }
    }

    /// Empties node `i`'s disk. `as_fault`: the nemesis (or a hand-driven wipe) did it, and it
    /// counts as a fault; an operator replacing a refused disk is recovery, counted apart.
    fn wipe_disk(&mut self, i: usize, as_fault: bool) {
        let node = &mut self.nodes[i];
        debug_assert!(!node.is_up());
        node.fs.wipe();
        node.durable = DurableState::default();
        node.disk.clear();
        node.unsynced_at_crash.clear();
        node.snapshot = None;
        node.wiped = true;
        node.damage.clear();
        node.refused = None;
        self.tally.rebuilds += 1;
        if as_fault {
            self.count_fault(FaultKind::Wipe);
        }
        if self.tracing() {
            self.trace_event(TraceEvent::Wipe { node: node_name(i) });
        }
    }

    /// Restarts a crashed node from its durable state. Returns false if it was up.
    pub fn restart(&mut self, i: usize) -> bool {
        if self.nodes[i].is_up() {
            return false;
        }
        if self.nodes[i].refused.is_some() {
            // Refused storage stays refused until an operator rebuilds the member.
            return false;
        }
        let meta = self.member_meta(i);
        let setup = log_setup(&self.config, &self.plan, i);
        let opened = open_storage(&self.nodes[i].fs, &meta, setup);
        let (store, recovered, snapshot, fresh) = match opened {
            Ok(opened) => opened,
            Err(error) => {
                self.refuse_start(i, error);
                return false;
            }
        };
        let applier = match snapshot.as_ref().map(StoredSnapshot::restore) {
            Some(Some(applier)) => applier,
            Some(None) => {
                // Storage verified the file; a body that does not decode is still damage.
                self.refuse_start(i, "snapshot body does not decode".to_string());
                return false;
            }
            None => Applier::new(KvMachine::new()),
        };
        self.check_damage_found(i);
        let torn_tails = recovered
            .repairs
            .iter()
            .filter(|r| matches!(r, Repair::TornTail { .. }))
            .count();
        let node = &mut self.nodes[i];
        let unsynced = std::mem::take(&mut node.unsynced_at_crash);
        let kept = unsynced
            .iter()
            .filter(|l| **l <= recovered.last_lsn)
            .count();
        let lost = unsynced.len() - kept;
        self.tally.batches_kept += kept as u64;
        self.tally.batches_lost += lost as u64;
        // A member of a running cluster whose directory holds no meta file lost its disk: it
        // must not trust the empty state (it may have voted), so it rebuilds.
        node.wiped = false;
        node.rebuilding = fresh || recovered.state.rebuilding;
        node.durable = recovered.state.clone();
        let mut recovered_state = recovered.state;
        // The configuration in force: the newest of what the log entered and what the
        // snapshot was taken in; a node outside the first configuration (a spare) starts
        // outside it, waiting to learn a change that adds it.
        if let Some(m) = applier.membership() {
            if recovered_state
                .membership
                .as_ref()
                .is_none_or(|d| d.epoch < m.epoch)
            {
                recovered_state.membership = Some(m.clone());
            }
        }
        if !self.membership.contains(node.id) && recovered_state.membership.is_none() {
            recovered_state.membership = Some(Membership::initial(self.membership.clone()));
        }
        let replica = if fresh {
            Replica::rebuild(
                node.id,
                self.membership.clone(),
                self.config.replica.clone(),
            )
        } else {
            Replica::recover_with_bugs(
                node.id,
                self.membership.clone(),
                self.config.replica.clone(),
                recovered_state,
                self.config.bugs,
            )
        }
        .expect("member of its own configuration");
        node.replica = Some(replica);
        node.wal = Some(store);
        node.incarnation += 1;
        node.rng = ChaCha8Rng::seed_from_u64(self.rng.next_u64());
        node.snapshot = snapshot;
        node.applier = applier;
        node.next_handout = node.applier.applied_through().0 + 1;
        node.next_read = 1;
        node.role = Role::Follower;
        let incarnation = node.incarnation;
        if self.tracing() {
            self.trace_event(TraceEvent::Restart {
                node: node_name(i),
                batches_kept: kept,
                batches_lost: lost,
                torn_tails,
            });
        }
        let at = self.now + 1 + below(&mut self.rng, self.config.timing.tick_us);
        self.schedule(
            at,
            Event::Tick {
                node: i,
                incarnation,
            },
        );
        if self.phase == Phase::Faults
            && self.plan.election_gap_us > 0
            && chance_permille(&mut self.rng, 300)
        {
            // Campaigning right after a restart, before hearing the leader: the ballot comes
            // from the rounds in the node's own log only, so it may be below one the others
            // promised, which correct acceptors refuse.
            let at = self.now + below(&mut self.rng, 5_000);
            self.schedule(
                at,
                Event::CampaignAfterRestart {
                    node: i,
                    incarnation,
                },
            );
        }
        // A restarted replica hands out its durable chosen prefix again: apply it now.
        self.drive(i);
        true
    }

    // ----- Network -----

    fn send(&mut self, from: Endpoint, to: Endpoint, payload: Payload) {
        let id = self.next_msg;
        self.next_msg += 1;
        self.tally.messages_sent += 1;
        let faulty = self.phase == Phase::Faults;
        let mut delay =
            self.plan.delay_base_us + below(&mut self.rng, self.plan.delay_jitter_us + 1);
        if faulty && chance_permille(&mut self.rng, self.plan.long_delay_permille) {
            delay += range(&mut self.rng, 1, self.plan.long_delay_max_us);
            self.count_fault(FaultKind::LongDelay);
        }
        let deliver_at = self.now + delay.max(1);
        if self.tracing() {
            let msg = match &payload {
                Payload::Peer(m) => describe_message(m),
                Payload::Request(r) => describe_request(r),
                Payload::Reply(r) => describe_reply(r),
                Payload::SnapshotFetch { at_least, offset } => {
                    serde_json::json!({ "at_least": at_least.0, "offset": offset })
                }
                Payload::SnapshotChunk(bytes) => match SnapshotChunk::decode(bytes) {
                    Ok(c) => serde_json::json!({
                        "through": c.through.0, "offset": c.offset, "total": c.total_len,
                        "bytes": c.data.len()
                    }),
                    Err(e) => serde_json::json!({ "undecodable": e.to_string() }),
                },
            };
            self.trace_event(TraceEvent::Send {
                id,
                from: from.name(),
                to: to.name(),
                kind: payload.kind().to_string(),
                msg,
                deliver_at,
            });
        }
        if let (Endpoint::Node(a), Endpoint::Node(b)) = (from, to) {
            if self.links.is_blocked(a, b) {
                self.trace_event(TraceEvent::Drop {
                    id,
                    reason: DropReason::Partition,
                });
                return;
            }
        }
        if faulty && chance_permille(&mut self.rng, self.plan.loss_permille) {
            self.count_fault(FaultKind::Loss);
            self.trace_event(TraceEvent::Drop {
                id,
                reason: DropReason::Loss,
            });
            return;
        }
        let duplicate = faulty && chance_permille(&mut self.rng, self.plan.duplicate_permille);
        let message = InFlight {
            id,
            from,
            to,
            sent_at: self.now,
            deliver_at,
            payload,
        };
        if duplicate {
            self.count_fault(FaultKind::Duplicate);
            let mut copy_delay =
                self.plan.delay_base_us + below(&mut self.rng, self.plan.delay_jitter_us + 1);
            if chance_permille(&mut self.rng, STALE_COPY_PERMILLE) {
                // A stale copy arriving long after the original: old ballots replayed into a
                // cluster that has moved on are what acceptor bugs trip over.
                copy_delay += range(&mut self.rng, 10_000, STALE_COPY_MAX_US);
            }
            self.duplicate_with_delay(&message, copy_delay.max(1));
        }
        self.in_flight.insert(id, message);
        self.schedule(deliver_at, Event::Deliver { id });
    }

    fn duplicate_with_delay(&mut self, original: &InFlight, delay: u64) -> u64 {
        let copy = self.next_msg;
        self.next_msg += 1;
        let deliver_at = self.now + delay;
        let mut m = original.clone();
        m.id = copy;
        m.deliver_at = deliver_at;
        self.in_flight.insert(copy, m);
        self.schedule(deliver_at, Event::Deliver { id: copy });
        self.trace_event(TraceEvent::Duplicate {
            id: original.id,
            copy,
            deliver_at,
        });
        copy
    }

    fn on_deliver(&mut self, id: u64) {
        let Some(m) = self.in_flight.remove(&id) else {
            return;
        };
        self.deliver_message(m);
    }

    fn deliver_message(&mut self, m: InFlight) {
        match m.to {
            Endpoint::Node(j) => {
                if !self.nodes[j].is_up() {
                    self.tally_drop(m.id, DropReason::NodeDown);
                    return;
                }
                if let Endpoint::Node(a) = m.from {
                    if self.links.is_blocked(a, j) {
                        self.tally_drop(m.id, DropReason::Partition);
                        return;
                    }
                }
                self.tally.messages_delivered += 1;
                self.trace_event(TraceEvent::Deliver { id: m.id });
                match m.payload {
                    Payload::Peer(msg) => {
                        let Endpoint::Node(a) = m.from else { return };
                        let from = NodeId(a as u64 + 1);
                        if let Some(replica) = self.nodes[j].replica.as_mut() {
                            // A refused message is counted by the replica; nothing else to do.
                            let _ = replica.step(from, msg);
                        }
                        self.drive(j);
                    }
                    Payload::Request(req) => self.on_request(j, req),
                    Payload::Reply(_) => {}
                    Payload::SnapshotFetch { at_least, offset } => {
                        if let Endpoint::Node(a) = m.from {
                            self.serve_snapshot(j, a, at_least, offset);
                        }
                    }
                    Payload::SnapshotChunk(bytes) => self.on_snapshot_chunk(j, &bytes),
                }
            }
            Endpoint::Client(c) => {
                self.tally.messages_delivered += 1;
                self.trace_event(TraceEvent::Deliver { id: m.id });
                if let Payload::Reply(reply) = m.payload {
                    self.on_reply(c, reply);
                }
            }
        }
    }

    fn tally_drop(&mut self, id: u64, reason: DropReason) {
        self.trace_event(TraceEvent::Drop { id, reason });
    }

    /// Delivers in-flight message `id` now, ahead of its time. Returns false if unknown.
    pub fn deliver_now(&mut self, id: u64) -> bool {
        let Some(m) = self.in_flight.remove(&id) else {
            return false;
        };
        self.deliver_message(m);
        self.observe_leadership();
        true
    }

    /// Drops in-flight message `id`. Returns false if unknown.
    pub fn drop_message(&mut self, id: u64) -> bool {
        if self.in_flight.remove(&id).is_none() {
            return false;
        }
        self.tally_drop(id, DropReason::Manual);
        true
    }

    /// Duplicates in-flight message `id`; the copy arrives after `delay_us`. Returns the
    /// copy's id.
    pub fn duplicate_message(&mut self, id: u64, delay_us: u64) -> Option<u64> {
        let original = self.in_flight.get(&id)?.clone();
        Some(self.duplicate_with_delay(&original, delay_us.max(1)))
    }

    /// Cuts the one-way link `from → to` (member indexes).
    pub fn cut(&mut self, from: usize, to: usize) {
        self.links.set(from, to, true);
        self.trace_event(TraceEvent::Cut {
            from: node_name(from),
            to: node_name(to),
        });
    }

    /// Restores the one-way link `from → to`.
    pub fn heal(&mut self, from: usize, to: usize) {
        self.links.set(from, to, false);
        self.trace_event(TraceEvent::Heal {
            from: node_name(from),
            to: node_name(to),
        });
    }

    /// Restores every link.
    pub fn heal_all(&mut self) {
        self.links = LinkMatrix::healed(self.nodes.len());
        self.partition_active = false;
        self.trace_event(TraceEvent::HealAll);
    }

    /// Replaces every link at once (no fault kind is counted).
    pub fn set_links(&mut self, links: LinkMatrix) {
        assert_eq!(links.len(), self.nodes.len(), "one row per member");
        self.links = links;
        if self.tracing() {
            let cut = self
                .links
                .blocked_links()
                .into_iter()
                .map(|(a, b)| [node_name(a), node_name(b)])
                .collect();
            self.trace_event(TraceEvent::Partition {
                kind: None,
                shape: serde_json::Value::Null,
                cut,
            });
        }
    }

    /// Replaces the links with `shape`'s. Counted under its fault kind if it has one.
    pub fn set_partition(&mut self, shape: &PartitionShape) {
        self.links = shape.links(self.nodes.len());
        if let Some(kind) = shape.kind() {
            self.count_fault(kind);
        }
        if self.tracing() {
            let cut = self
                .links
                .blocked_links()
                .into_iter()
                .map(|(a, b)| [node_name(a), node_name(b)])
                .collect();
            self.trace_event(TraceEvent::Partition {
                kind: shape.kind(),
                shape: serde_json::to_value(shape).unwrap_or_default(),
                cut,
            });
        }
    }

    /// Ticks node `index` once, outside its schedule (an explorer firing a timer by hand).
    pub fn tick_node(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let Some(replica) = node.replica.as_mut() else {
            return;
        };
        replica.tick(&mut node.rng);
        self.drive(index);
        self.observe_leadership();
    }

    /// Asks node `index` (a leader, or the core refuses) to change the configuration to
    /// `next`, as an operator would (the explorer's learner does it by hand; the nemesis draws
    /// its own changes). Returns the slot of the stop-sign, or the core's refusal.
    pub fn propose_reconfiguration(
        &mut self,
        index: usize,
        next: Configuration,
    ) -> Result<Slot, ReconfigError> {
        let Some(replica) = self.nodes[index].replica.as_mut() else {
            return Err(ReconfigError::NotLeader { leader: None });
        };
        let slot = replica.propose_reconfiguration(next)?;
        self.drive(index);
        Ok(slot)
    }

    /// Makes node `index` start phase 1 now (its election timer firing, pre-vote skipped).
    pub fn force_election(&mut self, index: usize) {
        let Some(replica) = self.nodes[index].replica.as_mut() else {
            return;
        };
        replica.campaign();
        self.drive(index);
        self.observe_leadership();
    }

    // ----- Nemesis -----

    fn nemesis_partition(&mut self) {
        if self.phase != Phase::Faults || self.plan.partitions.is_empty() {
            return;
        }
        let n = self.nodes.len();
        let gap = self.plan.partition_gap_us;
        let mut next = self.now + range(&mut self.rng, gap / 2, gap * 3 / 2);
        if !self.partition_active {
            let kind = self.plan.partitions
                [below(&mut self.rng, self.plan.partitions.len() as u64) as usize];
            let duration = range(
                &mut self.rng,
                self.plan.partition_max_us / 5,
                self.plan.partition_max_us,
            );
            self.partition_epoch += 1;
            self.partition_active = true;
            let epoch = self.partition_epoch;
            if kind == FaultKind::Swizzle {
                self.count_fault(FaultKind::Swizzle);
                let mut pairs = Vec::new();
                for a in 0..n {
                    for b in 0..n {
                        if a != b {
                            pairs.push((a, b));
                        }
                    }
                }
                shuffle(&mut self.rng, &mut pairs);
                let cuts = range(&mut self.rng, 1, pairs.len() as u64) as usize;
                pairs.truncate(cuts);
                let step = (duration / (2 * cuts as u64)).max(1);
                let mut at = self.now;
                for &(from, to) in &pairs {
                    self.schedule(at, Event::SwizzleCut { epoch, from, to });
                    at += step;
                }
                shuffle(&mut self.rng, &mut pairs);
                for (k, &(from, to)) in pairs.iter().enumerate() {
                    let last = k + 1 == pairs.len();
                    self.schedule(
                        at,
                        Event::SwizzleHeal {
                            epoch,
                            from,
                            to,
                            last,
                        },
                    );
                    at += step;
                }
                next = next.max(at);
            } else if let Some(shape) = PartitionShape::draw(kind, n, &mut self.rng) {
                debug_assert!(shape_possible(kind, n));
                self.set_partition(&shape);
                self.schedule(self.now + duration, Event::HealPartition { epoch });
                next = next.max(self.now + duration);
            }
        }
        self.schedule(next, Event::NemesisPartition);
    }

    fn nemesis_crash(&mut self) {
        if self.phase != Phase::Faults || self.plan.crash_points.is_empty() {
            return;
        }
        let point = self.plan.crash_points
            [below(&mut self.rng, self.plan.crash_points.len() as u64) as usize];
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_up())
            .collect();
        if !up.is_empty() {
            let target = up[below(&mut self.rng, up.len() as u64) as usize];
            match point {
                CrashPoint::RandomTime => self.crash_at(target, CrashPoint::RandomTime),
                CrashPoint::Leader => {
                    let leader = up.iter().copied().find(|i| {
                        self.nodes[*i].replica.as_ref().map(Replica::role) == Some(Role::Leader)
                    });
                    match leader {
                        Some(l) => self.crash_at(l, CrashPoint::Leader),
                        // No leader now: arm the point, it fires when one is elected.
                        None => self.nodes[target].armed = Some(CrashPoint::Leader),
                    }
                }
                _ => self.nodes[target].armed = Some(point),
            }
        }
        let gap = self.plan.crash_gap_us;
        let next = self.now + range(&mut self.rng, gap / 2, gap * 3 / 2);
        self.schedule(next, Event::NemesisCrash);
    }

    /// Damages one node's files, as media errors and firmware bugs do. Only a node whose loss
    /// the cluster survives is chosen (the others vote and hold every possibly-chosen value):
    /// the damage costs that node its data at its next start, where storage must refuse to
    /// run rather than serve from it.
    fn nemesis_disk(&mut self) {
        if self.phase != Phase::Faults || self.plan.disk_damage.is_empty() {
            return;
        }
        let gap = self.plan.disk_damage_gap_us;
        let next = self.now + range(&mut self.rng, gap / 2, gap * 3 / 2);
        self.schedule(next, Event::NemesisDisk);
        let candidates: Vec<usize> = (0..self.nodes.len())
            .filter(|i| {
                let n = &self.nodes[*i];
                n.is_up()
                    && n.damage.is_empty()
                    && n.replica.as_ref().is_some_and(Replica::is_voting)
                    && self.others_vote(*i)
                    && self.wipe_keeps_chosen_values(*i)
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let i = candidates[below(&mut self.rng, candidates.len() as u64) as usize];
        let kinds = self.plan.disk_damage.clone();
        let kind = kinds[below(&mut self.rng, kinds.len() as u64) as usize];
        let Some((file, offset, before)) = self.damage(i, kind) else {
            return;
        };
        let path = std::path::PathBuf::from(&file);
        self.nodes[i].damage.push(Damage { kind, path, before });
        self.count_fault(kind);
        if self.tracing() {
            self.trace_event(TraceEvent::DiskDamage {
                node: node_name(i),
                kind,
                file,
                offset,
            });
        }
        if chance_permille(&mut self.rng, 500) {
            // Damage is found at the next start; often make that start come soon.
            self.crash_at(i, CrashPoint::RandomTime);
        }
    }

    /// Applies one kind of damage to a file of node `i`; returns the file and offset, or
    /// `None` if nothing fits. Targets are what the format promises to detect: not the last
    /// record of the log (its damage looks like a torn write, see docs/storage-format.md) and
    /// not the active segment for a rollback (a lost synced append of the newest segment
    /// cannot be told apart from one never made without a second copy).
    #[allow(clippy::type_complexity)]
    fn damage(
        &mut self,
        i: usize,
        kind: FaultKind,
    ) -> Option<(String, u64, Option<(u64, Vec<u8>)>)> {
        let fs = self.nodes[i].fs.clone();
        let dir = std::path::Path::new(DATA_DIR);
        let files = fs.files();
        let durable_len = |path: &std::path::Path| {
            files
                .iter()
                .find(|f| f.path == path)
                .map_or(0, |f| f.durable_len)
        };
        let records = scan_records(&fs, dir).ok()?;
        // Records synced, but not the last of them: after a crash that one may be the log's
        // final record, whose damage is indistinguishable from a torn write.
        let durable_lsn = self.nodes[i].wal.as_mut()?.wal().durable_lsn();
        let synced: Vec<&RecordLocation> = records
            .iter()
            .filter(|r| r.lsn < durable_lsn && r.offset + r.len <= durable_len(&r.path))
            .collect();
        let segments: Vec<&storage::memfs::FileInfo> = files
            .iter()
            .filter(|f| f.path.extension().is_some_and(|e| e == "log"))
            .collect();
        let snapshots: Vec<&storage::memfs::FileInfo> = files
            .iter()
            .filter(|f| f.path.extension().is_some_and(|e| e == "snap"))
            .collect();
        let active = segments.iter().map(|f| f.path.clone()).max();
        let pick = |rng: &mut ChaCha8Rng, n: usize| below(rng, n as u64) as usize;
        let name = |p: &std::path::Path| p.display().to_string();
        match kind {
            FaultKind::BitFlip => {
                if synced.is_empty() {
                    return None;
                }
                let r = synced[pick(&mut self.rng, synced.len())];
                let at = r.offset + below(&mut self.rng, r.len);
                let bit = below(&mut self.rng, 8) as u8;
                fs.flip_bit(&r.path, at, bit).ok()?;
                Some((name(&r.path), at, None))
            }
            FaultKind::MisdirectedWrite => {
                let active = active?;
                // A misdirected write over the last few records, if it is then torn by a crash,
                // looks exactly like a torn final write with nothing after it: undetectable
                // without a second copy (docs/storage-format.md). Aim it where at least a
                // whole record's worth of synced records follows, which recovery does see.
                let tail_end = records
                    .iter()
                    .filter(|r| r.path == active && r.lsn <= durable_lsn)
                    .map(|r| r.offset + r.len)
                    .max()?;
                let room = wal_options_record_bytes_max() + 64;
                let in_active: Vec<&&RecordLocation> = synced
                    .iter()
                    .filter(|r| r.path == active && r.offset + room <= tail_end)
                    .collect();
                if in_active.is_empty() {
                    return None;
                }
                let r = in_active[pick(&mut self.rng, in_active.len())];
                let durable = fs.read_durable(&active)?;
                let before = durable.get(r.offset as usize..(r.offset + r.len) as usize)?;
                let before = Some((r.offset, before.to_vec()));
                fs.misdirect_next_write(&active, r.offset).ok()?;
                Some((name(&active), r.offset, before))
            }
            FaultKind::Truncate => {
                let targets: Vec<&&storage::memfs::FileInfo> = segments
                    .iter()
                    .chain(snapshots.iter())
                    .filter(|f| f.durable_len > 0)
                    .collect();
                if targets.is_empty() {
                    return None;
                }
                let f = targets[pick(&mut self.rng, targets.len())];
                let len = below(&mut self.rng, f.durable_len);
                fs.truncate(&f.path, len).ok()?;
                Some((name(&f.path), len, None))
            }
            FaultKind::Rollback => {
                let targets: Vec<&&storage::memfs::FileInfo> = segments
                    .iter()
                    .filter(|f| Some(&f.path) != active.as_ref())
                    .chain(snapshots.iter())
                    .collect();
                if targets.is_empty() {
                    return None;
                }
                let f = targets[pick(&mut self.rng, targets.len())];
                fs.rollback(&f.path).ok()?;
                Some((name(&f.path), 0, None))
            }
            _ => None,
        }
    }

    fn nemesis_election(&mut self) {
        if self.phase != Phase::Faults {
            return;
        }
        let candidates: Vec<usize> = (0..self.nodes.len())
            .filter(|i| {
                self.nodes[*i]
                    .replica
                    .as_ref()
                    .is_some_and(|r| r.role() != Role::Leader)
            })
            .collect();
        if !candidates.is_empty() {
            let i = candidates[below(&mut self.rng, candidates.len() as u64) as usize];
            self.count_fault(FaultKind::ForcedElection);
            self.force_election(i);
        }
        let gap = self.plan.election_gap_us;
        let next = self.now + range(&mut self.rng, gap / 2, gap * 3 / 2);
        self.schedule(next, Event::NemesisElection);
    }

    /// Asks the leader for one membership change, drawn among those the configuration in
    /// force allows: add a node outside it as a learner, promote a learner, remove a follower
    /// or the leader itself (never below three voters, so the run keeps tolerating a crash).
    /// A change the core refuses (one in progress, a learner behind) is just not made.
    fn nemesis_membership(&mut self) {
        if self.phase != Phase::Faults {
            return;
        }
        let leader = (0..self.nodes.len()).find(|i| {
            self.nodes[*i]
                .replica
                .as_ref()
                .is_some_and(|r| r.role() == Role::Leader)
        });
        if let Some(l) = leader {
            self.propose_membership_change(l);
        }
        let gap = self.plan.membership_gap_us;
        let next = self.now + range(&mut self.rng, gap / 2, gap * 3 / 2);
        self.schedule(next, Event::NemesisMembership);
    }

    fn propose_membership_change(&mut self, l: usize) {
        let Some(config) = self.nodes[l].replica.as_ref().map(|r| r.config().clone()) else {
            return;
        };
        let leader_id = self.nodes[l].id;
        let outside: Vec<NodeId> = self
            .nodes
            .iter()
            .map(|n| n.id)
            .filter(|id| !config.contains(*id))
            .collect();
        let voters = config.members().to_vec();
        let learners = config.learners().to_vec();
        let mut kinds = Vec::new();
        if !outside.is_empty() {
            kinds.push(FaultKind::AddLearner);
        }
        if !learners.is_empty() {
            kinds.push(FaultKind::Promote);
        }
        if voters.len() > 3 || !learners.is_empty() {
            kinds.push(FaultKind::RemoveFollower);
        }
        if voters.len() > 3 {
            kinds.push(FaultKind::RemoveLeader);
        }
        if kinds.is_empty() {
            return;
        }
        let kind = kinds[below(&mut self.rng, kinds.len() as u64) as usize];
        let pick =
            |rng: &mut ChaCha8Rng, from: &[NodeId]| from[below(rng, from.len() as u64) as usize];
        let (mut next_voters, mut next_learners) = (voters.clone(), learners.clone());
        match kind {
            FaultKind::AddLearner => next_learners.push(pick(&mut self.rng, &outside)),
            FaultKind::Promote => {
                let n = pick(&mut self.rng, &learners);
                next_learners.retain(|m| *m != n);
                next_voters.push(n);
            }
            FaultKind::RemoveFollower => {
                let mut followers: Vec<NodeId> = learners
                    .iter()
                    .copied()
                    .filter(|m| *m != leader_id)
                    .collect();
                if voters.len() > 3 {
                    followers.extend(voters.iter().copied().filter(|m| *m != leader_id));
                }
                let n = pick(&mut self.rng, &followers);
                next_voters.retain(|m| *m != n);
                next_learners.retain(|m| *m != n);
            }
            _ => next_voters.retain(|m| *m != leader_id),
        }
        // The rule in force if it fits the next voters; under a non-majority run, sometimes a
        // fresh one (a change of quorum rule through the same stop-sign).
        let mut rule = crate::quorums::fit_rule(&mut self.rng, &config.quorum(), next_voters.len());
        if self.config.quorum != QuorumSpec::Majority && below(&mut self.rng, 3) == 0 {
            rule = crate::quorums::draw_rule(&mut self.rng, next_voters.len());
        }
        let rule_changes = rule != config.quorum();
        let Ok(next) = Configuration::with_learners(next_voters, next_learners, rule) else {
            return;
        };
        let Some(replica) = self.nodes[l].replica.as_mut() else {
            return;
        };
        match replica.propose_reconfiguration(next) {
            Ok(_) => {
                self.count_fault(kind);
                if rule_changes {
                    self.tally.quorum_rule_changes += 1;
                }
                self.drive(l);
            }
            Err(_) => self.tally.reconfigurations_refused += 1,
        }
    }

    fn start_quiet(&mut self) {
        if self.phase != Phase::Faults {
            return;
        }
        self.phase = Phase::Quiet;
        self.quiet_at = Some(self.now);
        self.trace_event(TraceEvent::Phase {
            phase: Phase::Quiet.name().to_string(),
        });
        self.partition_epoch += 1;
        if self.links.any_blocked() || self.partition_active {
            self.heal_all();
        }
        for i in 0..self.nodes.len() {
            self.nodes[i].armed = None;
            if !self.nodes[i].is_up() {
                self.restart(i);
            }
        }
        let at = self.now + self.config.timing.quiet_ops_us;
        self.schedule(at, Event::StopClients);
    }

    fn start_drain(&mut self) {
        if self.phase != Phase::Quiet {
            return;
        }
        self.phase = Phase::Drain;
        self.trace_event(TraceEvent::Phase {
            phase: Phase::Drain.name().to_string(),
        });
        let deadline = self.now + self.config.timing.liveness_bound_us;
        self.schedule(deadline, Event::Deadline);
        let at = self.now + self.config.timing.tick_us;
        self.schedule(at, Event::Check);
    }

    fn on_check(&mut self) {
        if self.phase != Phase::Drain {
            return;
        }
        if self.clients.iter().all(|c| c.current.is_none())
            && self.converged()
            && self.stable.is_some()
        {
            self.end_run();
            return;
        }
        let at = self.now + self.config.timing.tick_us;
        self.schedule(at, Event::Check);
    }

    /// Whether every node is up, has the same chosen prefix, and has applied all of it.
    pub fn converged(&self) -> bool {
        let mut through = None;
        let newest = self.newest_configuration();
        for n in &self.nodes {
            if !newest.contains(n.id) || newest.is_auxiliary(n.id) {
                // Removed, or a spare never added: it stops learning where it left. A Cheap
                // Paxos auxiliary learns only while it is engaged, by design.
                continue;
            }
            let Some(r) = n.replica.as_ref() else {
                return false;
            };
            if n.applier.applied_through() != r.chosen_through() {
                return false;
            }
            match through {
                None => through = Some(r.chosen_through()),
                Some(t) if t != r.chosen_through() => return false,
                Some(_) => {}
            }
        }
        true
    }

    fn end_run(&mut self) {
        if self.phase == Phase::Done {
            return;
        }
        let was_draining = self.phase == Phase::Drain;
        self.phase = Phase::Done;
        if was_draining {
            self.check_liveness_at_end();
        }
        self.check_linearizability();
        self.trace_event(TraceEvent::Phase {
            phase: Phase::Done.name().to_string(),
        });
    }

    fn check_liveness_at_end(&mut self) {
        let Some(quiet_at) = self.quiet_at else {
            return;
        };
        let bound = self.config.timing.liveness_bound_us;
        for c in 0..self.clients.len() {
            if let Some(p) = &self.clients[c].current {
                let since = p.invoke_at.max(quiet_at);
                let waited = self.now - since;
                let detail = format!(
                    "client c{} operation {} still pending {waited} us after faults stopped or it was invoked",
                    c + 1,
                    p.op
                );
                if waited >= bound {
                    self.violation(CheckKind::Liveness, None, None, detail);
                }
            }
        }
        if self.stable.is_none() {
            let detail = format!(
                "no stable leader {} us after faults stopped",
                self.now - quiet_at
            );
            self.violation(CheckKind::Liveness, None, None, detail);
        }
        if !self.converged() {
            let prefixes: Vec<String> = self
                .nodes
                .iter()
                .map(|n| match &n.replica {
                    Some(r) => format!(
                        "{}:{}/{}",
                        n.id,
                        r.chosen_through().0,
                        n.applier.applied_through().0
                    ),
                    None => format!("{}:down", n.id),
                })
                .collect();
            let detail = format!(
                "replicas did not converge (chosen/applied): {}",
                prefixes.join(" ")
            );
            self.violation(CheckKind::Liveness, None, None, detail);
        }
    }

    fn check_linearizability(&mut self) {
        let options = CheckOptions::default();
        let result = lincheck::check(&KvModel, &self.history, &options);
        if result.verdict == Verdict::Illegal {
            let detail = result
                .partitions
                .iter()
                .filter(|p| p.verdict == Verdict::Illegal)
                .map(|p| {
                    format!(
                        "key {}: {}",
                        p.key,
                        p.explanation.clone().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            self.lincheck_detail = Some(detail.clone());
            self.violation(CheckKind::Linearizability, None, None, detail);
        } else if result.verdict == Verdict::Unknown {
            let detail = result
                .partitions
                .iter()
                .filter(|p| p.verdict == Verdict::Unknown)
                .map(|p| {
                    format!(
                        "key {}: {}",
                        p.key,
                        p.explanation.clone().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join("; ");
            self.lincheck_detail = Some(detail);
        }
        self.lincheck = Some(result.verdict);
    }

    /// Recomputes the stable leader after a step.
    fn observe_leadership(&mut self) {
        let current = self.compute_stable();
        let same = match (&self.stable, &current) {
            (Some(s), Some((node, ballot))) => s.node == *node && s.ballot == *ballot,
            (None, None) => true,
            _ => false,
        };
        if same {
            return;
        }
        self.stable = current.map(|(node, ballot)| StableLeader {
            node,
            ballot,
            since_us: self.now,
        });
        if self.tracing() {
            self.trace_event(TraceEvent::Leader {
                node: current.map(|(n, _)| n.to_string()),
                ballot: current.map(|(_, b)| b.to_string()),
            });
        }
    }

    /// A leader that a quorum of its configuration (itself included) follows at its ballot:
    /// they name it leader and have promised exactly its ballot.
    fn compute_stable(&self) -> Option<(NodeId, Ballot)> {
        for n in &self.nodes {
            let Some(r) = n.replica.as_ref() else {
                continue;
            };
            if r.role() != Role::Leader {
                continue;
            }
            let ballot = r.ballot();
            let config = r.config();
            let mut followers = NodeSet::EMPTY;
            for m in &self.nodes {
                if let Some(f) = m.replica.as_ref() {
                    if f.leader() == Some(n.id) && f.promised() == ballot {
                        if let Some(index) = config.index_of(m.id) {
                            followers.insert(index);
                        }
                    }
                }
            }
            if config.is_phase1_quorum(followers) {
                return Some((n.id, ballot));
            }
        }
        None
    }

    /// The index of node `id` (node `n` is index `n - 1`), members and spares alike.
    fn node_index(&self, id: NodeId) -> Option<usize> {
        (id.0 as usize)
            .checked_sub(1)
            .filter(|i| *i < self.nodes.len())
    }

    /// The configuration of the highest epoch any running replica is in (the first one if
    /// none changed it).
    pub fn newest_configuration(&self) -> Configuration {
        self.nodes
            .iter()
            .filter_map(|n| n.replica.as_ref())
            .max_by_key(|r| r.epoch())
            .filter(|r| r.epoch() > 0)
            .map_or_else(|| self.membership.clone(), |r| r.config().clone())
    }

    // ----- Clients -----

    fn schedule_client_timer(&mut self, c: usize, at: u64) {
        self.clients[c].token += 1;
        let token = self.clients[c].token;
        self.schedule(at, Event::ClientTimer { client: c, token });
    }

    fn clients_may_start(&self) -> bool {
        matches!(self.phase, Phase::Faults | Phase::Quiet)
    }

    fn on_client_timer(&mut self, c: usize) {
        let Some(p) = &self.clients[c].current else {
            if self.clients_may_start() && !self.config.manual_clients {
                self.start_op(c);
            }
            return;
        };
        if p.retry_due {
            self.send_attempt(c);
            return;
        }
        // The attempt timed out.
        let give_up = self.phase == Phase::Faults
            && self.now >= p.invoke_at + self.config.timing.client_give_up_us;
        if give_up {
            self.give_up(c);
            return;
        }
        let n = self.nodes.len() as u64;
        if n > 1 {
            let client = &mut self.clients[c];
            client.target = (client.target + 1 + below(&mut self.rng, n - 1) as usize) % n as usize;
        }
        self.send_attempt(c);
    }

    /// Starts a new operation for an idle client: a get, put, cas or delete on a small key set.
    fn start_op(&mut self, c: usize) {
        let key = format!("k{}", below(&mut self.rng, self.config.keys.max(1) as u64));
        let roll = below(&mut self.rng, 100);
        let write = if roll < 40 {
            None
        } else {
            let client = &self.clients[c];
            let value = format!("v{}.{}", c + 1, client.next_seq);
            Some(if roll < 70 {
                KvCommand::Put {
                    key: key.clone(),
                    value,
                }
            } else if roll < 90 {
                let expected = client.seen.get(&key).cloned().flatten();
                KvCommand::Cas {
                    key: key.clone(),
                    expected,
                    new: value,
                }
            } else {
                KvCommand::Delete { key: key.clone() }
            })
        };
        self.begin_op(c, write, &key);
    }

    /// Starts an operation for client `c`: records the invoke in the history and the trace,
    /// then sends the first attempt. Writes get the client's next sequence number.
    fn begin_op(&mut self, c: usize, write: Option<KvCommand>, key: &str) {
        let client = &mut self.clients[c];
        let op = client.next_op;
        client.next_op += 1;
        let (input, body, command) = match write {
            None => (
                KvInput::Get {
                    key: key.to_string(),
                },
                RequestBody::Read {
                    key: key.to_string(),
                },
                None,
            ),
            Some(command) => {
                let seq = client.next_seq;
                client.next_seq += 1;
                let id = CommandId {
                    client: client.id(),
                    seq,
                };
                let payload = command.encode();
                self.proposed.insert(id, payload.clone());
                (
                    command.to_input(),
                    RequestBody::Write(Command {
                        id,
                        payload: payload.into(),
                    }),
                    Some(command),
                )
            }
        };
        let history = self.history.len();
        self.history.push(KvOperation {
            client: c as u64 + 1,
            input: input.clone(),
            invoke: self.now,
            complete: None,
            output: None,
        });
        if self.tracing() {
            let command_id = match &body {
                RequestBody::Write(cmd) => Some(format!("c{}#{}", cmd.id.client.0, cmd.id.seq)),
                RequestBody::Read { .. } => None,
            };
            self.trace_event(TraceEvent::Invoke {
                client: client_name(c),
                op,
                input,
                command: command_id,
            });
        }
        self.clients[c].current = Some(PendingOp {
            op,
            history,
            body,
            command,
            invoke_at: self.now,
            attempts: 0,
            retry_due: false,
        });
        self.send_attempt(c);
    }

    fn send_attempt(&mut self, c: usize) {
        let client = &mut self.clients[c];
        let Some(p) = client.current.as_mut() else {
            return;
        };
        p.attempts += 1;
        p.retry_due = false;
        let request = ClientRequest {
            client: c,
            op: p.op,
            body: p.body.clone(),
        };
        let (op, attempt, target) = (p.op, p.attempts, client.target);
        if self.tracing() {
            self.trace_event(TraceEvent::Attempt {
                client: client_name(c),
                op,
                node: node_name(target),
                attempt,
            });
        }
        self.send(
            Endpoint::Client(c),
            Endpoint::Node(target),
            Payload::Request(request),
        );
        let at = self.now + self.config.timing.client_attempt_timeout_us;
        self.schedule_client_timer(c, at);
    }

    fn give_up(&mut self, c: usize) {
        let Some(p) = self.clients[c].current.take() else {
            return;
        };
        match p.body {
            RequestBody::Read { .. } => self.tally.reads_given_up += 1,
            RequestBody::Write(_) => self.tally.writes_given_up += 1,
        }
        if self.tracing() {
            self.trace_event(TraceEvent::GiveUp {
                client: client_name(c),
                op: p.op,
            });
        }
        self.schedule_next_op(c);
    }

    fn schedule_next_op(&mut self, c: usize) {
        let think = below(&mut self.rng, self.config.timing.client_think_max_us + 1);
        self.schedule_client_timer(c, self.now + think);
    }

    fn on_reply(&mut self, c: usize, reply: ClientReply) {
        let Some(p) = &self.clients[c].current else {
            return;
        };
        if p.op != reply.op || p.retry_due {
            return;
        }
        match reply.body {
            ReplyBody::Done(output) => {
                let Some(p) = self.clients[c].current.take() else {
                    return;
                };
                let op = &mut self.history[p.history];
                op.complete = Some(self.now);
                op.output = Some(output.clone());
                self.tally.ops_ok += 1;
                let client = &mut self.clients[c];
                match (&p.command, &output) {
                    (None, KvOutput::Get { value }) => {
                        if let RequestBody::Read { key } = &p.body {
                            client.seen.insert(key.clone(), value.clone());
                        }
                    }
                    (Some(KvCommand::Put { key, value }), _) => {
                        client.seen.insert(key.clone(), Some(value.clone()));
                    }
                    (Some(KvCommand::Cas { key, new, .. }), KvOutput::Cas { ok: true }) => {
                        client.seen.insert(key.clone(), Some(new.clone()));
                    }
                    (Some(KvCommand::Delete { key }), _) => {
                        client.seen.insert(key.clone(), None);
                    }
                    _ => {}
                }
                if self.tracing() {
                    self.trace_event(TraceEvent::Complete {
                        client: client_name(c),
                        op: p.op,
                        output,
                    });
                }
                if let Some(quiet_at) = self.quiet_at {
                    let waited = self.now.saturating_sub(p.invoke_at.max(quiet_at));
                    if waited > self.config.timing.liveness_bound_us {
                        let detail = format!(
                            "client c{} operation {} completed {waited} us after faults stopped or it was invoked",
                            c + 1,
                            p.op
                        );
                        self.violation(CheckKind::Liveness, None, None, detail);
                    }
                }
                self.schedule_next_op(c);
            }
            ReplyBody::NotLeader(hint) => {
                let n = self.nodes.len();
                let hint = hint.and_then(|h| self.node_index(h));
                let client = &mut self.clients[c];
                let hinted = hint.filter(|h| *h != client.target);
                let backoff = match hinted {
                    Some(h) => {
                        client.target = h;
                        range(&mut self.rng, 500, 3_000)
                    }
                    None => {
                        if n > 1 {
                            client.target =
                                (client.target + 1 + below(&mut self.rng, n as u64 - 1) as usize)
                                    % n;
                        }
                        range(&mut self.rng, 5_000, 20_000)
                    }
                };
                self.retry_after(c, backoff);
            }
            ReplyBody::Busy => {
                let backoff = range(&mut self.rng, 5_000, 20_000);
                self.retry_after(c, backoff);
            }
        }
    }

    fn retry_after(&mut self, c: usize, backoff: u64) {
        if let Some(p) = self.clients[c].current.as_mut() {
            p.retry_due = true;
        }
        self.schedule_client_timer(c, self.now + backoff);
    }

    /// Node `i` receives a client request.
    fn on_request(&mut self, i: usize, req: ClientRequest) {
        if !self.nodes[i].is_up() {
            return;
        }
        let ClientRequest { client, op, body } = req;
        let result = match body {
            RequestBody::Write(command) => {
                let id = command.id;
                let r = match self.nodes[i].replica.as_mut() {
                    Some(replica) => replica.propose(command),
                    None => return,
                };
                if r.is_ok() {
                    self.nodes[i].writes.insert(id, (client, op));
                }
                r
            }
            RequestBody::Read { key } => {
                let id = ReadId(self.nodes[i].next_read);
                let r = match self.nodes[i].replica.as_mut() {
                    Some(replica) => replica.read(id),
                    None => return,
                };
                let node = &mut self.nodes[i];
                node.next_read += 1;
                if r.is_ok() {
                    node.reads.insert(id, (client, op, key));
                }
                r
            }
        };
        match result {
            Ok(()) => {}
            Err(ProposeError::NotLeader { leader }) => {
                self.reply(i, client, op, ReplyBody::NotLeader(leader))
            }
            Err(ProposeError::Busy { .. } | ProposeError::TooLarge { .. }) => {
                self.reply(i, client, op, ReplyBody::Busy)
            }
        }
        self.drive(i);
    }

    fn reply(&mut self, i: usize, client: usize, op: u64, body: ReplyBody) {
        self.send(
            Endpoint::Node(i),
            Endpoint::Client(client),
            Payload::Reply(ClientReply { op, body }),
        );
    }

    /// Starts an operation for idle client `c` by hand (`None` for a get of `key`).
    /// Returns false if the client is busy.
    pub fn client_invoke(&mut self, c: usize, write: Option<KvCommand>, key: &str) -> bool {
        if self.clients[c].current.is_some() {
            return false;
        }
        self.begin_op(c, write, key);
        true
    }

    // ----- Report plumbing -----

    pub(crate) fn tally(&self) -> &Tally {
        &self.tally
    }

    /// Cheap Paxos figures: those of crashed incarnations plus those of the replicas up now.
    pub(crate) fn cheap_figures(&self) -> crate::cheap::CheapFigures {
        let mut figures = self.tally.cheap.clone();
        for r in self.nodes.iter().filter_map(|n| n.replica.as_ref()) {
            figures.add_replica(r);
        }
        figures
    }

    /// Leader lease figures: the clocks, those of crashed incarnations, and the replicas up now.
    pub(crate) fn lease_figures(&self) -> crate::leases::LeaseFigures {
        let mut figures = self.tally.leases.clone();
        for r in self.nodes.iter().filter_map(|n| n.replica.as_ref()) {
            figures.add_replica(r);
        }
        figures
    }

    pub(crate) fn lincheck_verdict(&self) -> Option<(Verdict, Option<String>)> {
        self.lincheck.map(|v| (v, self.lincheck_detail.clone()))
    }

    pub(crate) fn quiet_at(&self) -> Option<u64> {
        self.quiet_at
    }
}

fn describe_request(r: &ClientRequest) -> serde_json::Value {
    match &r.body {
        RequestBody::Write(c) => {
            let cmd = KvCommand::decode(&c.payload)
                .map(|k| k.to_string())
                .unwrap_or_default();
            serde_json::json!({ "op": r.op, "id": format!("c{}#{}", c.id.client.0, c.id.seq), "cmd": cmd })
        }
        RequestBody::Read { key } => serde_json::json!({ "op": r.op, "get": key }),
    }
}

fn describe_reply(r: &ClientReply) -> serde_json::Value {
    match &r.body {
        ReplyBody::Done(out) => serde_json::json!({ "op": r.op, "done": out }),
        ReplyBody::NotLeader(l) => {
            serde_json::json!({ "op": r.op, "not_leader": l.map(|n| n.to_string()) })
        }
        ReplyBody::Busy => serde_json::json!({ "op": r.op, "busy": true }),
    }
}

/// Names of the planted bugs switched on.
pub fn bug_names(bugs: PlantedBugs) -> Vec<String> {
    paxos::Bug::ALL
        .into_iter()
        .filter(|b| bugs.has(*b))
        .map(|b| b.name().to_string())
        .collect()
}
