//! [`Member`]: the member's logic around the Paxos core, as a deterministic state machine.
//!
//! See the crate doc for the inputs and the order of the outputs.

mod auxiliary;
mod changes;
mod forward;
mod lease_renewal;
mod snapshot;
mod ticks;

pub use lease_renewal::LeaseRenewed;

use crate::bugs::{MemberBug, MemberBugs};
use crate::cluster::{ClusterChange, MemberEntry, MemberTable};
use crate::error::MemberError;
use crate::lease_clock::LeaseClocks;
use crate::peer::{LeaseQuestion, PeerMessage};
use crate::snapshot::{BodyJob, SnapshotSchedule};
use crate::time::Micros;
use changes::Changes;
use kv::{KvOutput, KvRead, KvReadResponse, KvStore};
use paxos::multi::{
    Applied, Applier, ClientId, Command, CommandId, PersistOp, ProposeError, ReadId, ReadOutcome,
    Registration, Replica, Role, SessionOutcome, Value, REGISTRATION_CLIENT,
    SESSIONS_PER_INCARNATION, SESSION_BITS,
};
use paxos::{NodeId, PersistSeq, Slot};
use rand_core::RngCore;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use storage::SnapshotChunk;

/// Sessions (client ids) a member proposes under at once: each carries one write in flight.
/// The session is a client id's low [`SESSION_BITS`]; the rest is the incarnation's key.
const SESSIONS: u64 = SESSIONS_PER_INCARNATION;
/// A persist batch whose values add up to more than this is written one op per record, so
/// every record stays below the log's record limit.
const RECORD_SPLIT_BYTES: usize = 4 << 20;
/// Re-send a forwarded write or a read-index request this often while it waits.
const RESEND_EVERY: Duration = Duration::from_millis(500);
/// Leadership transfers waiting at once on one member (each is an operator's MoveLeader).
const TRANSFERS_MAX: usize = 16;
/// Linearizable reads waiting at once on one member (each holds a client's request).
const READS_MAX: usize = 65_536;
/// Reads confirmed at once on others' behalf, as leader.
const REMOTE_READS_MAX: usize = 65_536;
/// Say hello (client URLs) to every member this often.
const HELLO_EVERY: Duration = Duration::from_secs(5);
/// Most events, and bytes of keys and values, in one [`AppliedChanges`]; a batch that changed
/// more is not shared (its watchers read), which bounds what slow streams hold.
const SHARED_EVENTS_MAX: usize = 4096;
const SHARED_BYTES_MAX: usize = 1 << 20;
/// Membership changes waiting at once on one member (the core takes one at a time anyway).
const CHANGES_MAX: usize = 16;
/// A removed member stays among the transport's peers this long, so it can still catch up
/// far enough to learn that it was removed.
const DEPARTED_GRACE: Duration = Duration::from_secs(30);

/// Names a request, chosen by the caller: its answer comes back with the same id. The member
/// only compares ids; a caller must not reuse one while its request waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// A question from a client (through the driver).
#[derive(Clone, Debug)]
pub enum Request {
    /// Propose an encoded [`kv::KvCommand`]; answered once applied here.
    Write {
        /// The encoded command.
        payload: Vec<u8>,
        /// Whether it can add data (a put or a txn): refused while the quota alarm is raised.
        grows: bool,
    },
    /// Serve a read; linearizable ones go through read-index first.
    Read {
        /// The read.
        read: KvRead,
        /// Read-index first (etcd's default), or answer from what is applied here.
        linearizable: bool,
    },
    /// Hash the whole applied state (chaos checks compare members at equal applied slots).
    /// Answered with a view of it: the driver hashes it off the core ([`KvHash::digest`], or
    /// etcd's hash through a revision, [`kv::KvView::hash_by_revision`]).
    HashKv,
    /// Seconds left before a lease expires, by the leader's clock (a follower asks it).
    LeaseRemaining {
        /// The lease.
        id: i64,
    },
    /// Renew a lease (a keep-alive): served by the leader without a log write (a follower
    /// asks it); see `member/lease_renewal.rs`.
    LeaseKeepAlive {
        /// The lease.
        id: i64,
    },
    /// Hand the lead to member `target` (`Maintenance.MoveLeader`); answered once this member
    /// sees `target` lead, or refused if this member does not lead.
    MoveLeader {
        /// The member id to lead next.
        target: u64,
    },
    /// Snapshot now and free the log it covers (`Maintenance.Defragment`).
    Defragment,
    /// Serialize the state applied here for a backup (`Maintenance.Snapshot`).
    Backup,
    /// Report the member's state.
    Status,
    /// `MemberList`: every member of the configuration in force (linearizable: through
    /// read-index first).
    MemberList,
    /// `MemberAdd`, `MemberPromote`, `MemberRemove`, `MemberUpdate` (as leader; see
    /// [`crate::cluster`]). Answered with the member list once the change is in force here.
    Cluster(ClusterChange),
}

/// A write's outcome: the store's output and the ballot round (etcd's raft term).
pub type WriteAnswer = Result<(KvOutput, u64), MemberError>;
/// A read's outcome: the store's answer (or refusal) and the ballot round.
pub type ReadAnswer = Result<(Result<KvReadResponse, kv::KvError>, u64), MemberError>;

/// The answer to one [`Request`], of the request's kind.
#[derive(Debug)]
pub enum Answer {
    /// To [`Request::Write`].
    Write(WriteAnswer),
    /// To [`Request::Read`].
    Read(ReadAnswer),
    /// To [`Request::Read`], still to be served: the read and a view of the state it is to be
    /// served from, so that the driver serves it off the member's core (a range over every key
    /// delays no heartbeat). [`ViewRead::serve`] gives the [`Answer::Read`] the member would
    /// have given at once; [`Answer::served`] turns one into the other.
    ReadOnView(ViewRead),
    /// To [`Request::HashKv`].
    HashKv(KvHash),
    /// To [`Request::LeaseRemaining`]: `None` if there is no such lease.
    LeaseRemaining(Option<i64>),
    /// To [`Request::LeaseKeepAlive`]: the lease's granted TTL in seconds, `None` if there is
    /// no such lease or it ran out (etcd's stream answers TTL 0), or why it was not renewed.
    LeaseKeepAlive(Result<LeaseRenewed, MemberError>),
    /// To [`Request::MoveLeader`].
    MoveLeader(Result<(), MemberError>),
    /// To [`Request::Defragment`].
    Defragment(Result<(), MemberError>),
    /// To [`Request::Backup`].
    Backup(Result<BackupBody, MemberError>),
    /// To [`Request::Status`].
    Status(Status),
    /// To [`Request::MemberList`] and [`Request::Cluster`]: the members after it.
    Members(Result<Vec<MemberEntry>, MemberError>),
}

/// A read the member decided to answer, with the state to answer it from: the store as
/// applied when the member decided (a view shares the store's maps, O(1) to take and to clone),
/// so serving it later, on another thread, answers exactly what serving it then would have.
#[derive(Clone)]
pub struct ViewRead {
    /// The applied state the read is served from.
    pub view: Arc<kv::KvView>,
    /// The read (one that [`kv::KvView::serves`]).
    pub read: KvRead,
    /// The ballot round (etcd's raft term) the answer reports.
    pub term: u64,
}

/// The read and the view's revision: not the view's whole store.
impl std::fmt::Debug for ViewRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewRead")
            .field("read", &self.read)
            .field("view_revision", &self.view.revision())
            .field("term", &self.term)
            .finish()
    }
}

impl ViewRead {
    /// The answer: one pass over the keys the read covers, wherever the caller runs it.
    pub fn serve(&self) -> ReadAnswer {
        Ok((self.view.read(&self.read), self.term))
    }
}

impl Answer {
    /// The answer with a read on a view served here ([`ViewRead::serve`]); any other as it is.
    /// For drivers that do not move reads off their thread (the simulator, tests).
    pub fn served(self) -> Answer {
        match self {
            Answer::ReadOnView(r) => Answer::Read(r.serve()),
            other => other,
        }
    }
}

/// The whole applied state, to hash, and where it stands. Hashing is a pass over the whole
/// store, so the member hands out a view (O(1) to take) and the driver runs
/// [`KvHash::digest`] or etcd's HashKV ([`kv::KvView::hash_by_revision`]) off the core.
#[derive(Clone, Debug)]
pub struct KvHash {
    /// The store as applied through `applied_through`.
    pub view: kv::KvView,
    /// Slot applied through.
    pub applied_through: u64,
    /// The store's revision.
    pub revision: i64,
    /// The store's compaction revision as etcd reports it: -1 before any compaction
    /// ([`kv::KvStore::etcd_compact_revision`]).
    pub compact_revision: i64,
}

impl KvHash {
    /// The store's digest ([`KvStore::digest`] at `applied_through`): one pass over the whole
    /// store, to run off the member's core.
    pub fn digest(&self) -> u64 {
        self.view.digest()
    }
}

/// A backup's snapshot body (without the session table), before the driver encodes it (off
/// the core: [`BodyJob::encode`]) and wraps it in a file.
#[derive(Clone, Debug)]
pub struct BackupBody {
    /// Every slot through here is in it.
    pub through: Slot,
    /// The store's revision in it.
    pub revision: i64,
    /// The body, to encode.
    pub body: BodyJob,
}

/// What `Maintenance.Status` and the member list need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Who this member believes leads (member id), 0 if no one.
    pub leader: u64,
    /// The ballot round this member is at (etcd's raft term).
    pub term: u64,
    /// Slots chosen here (etcd's raft index).
    pub chosen_through: u64,
    /// Slots applied here (etcd's raft applied index).
    pub applied_through: u64,
    /// The store's revision.
    pub revision: i64,
    /// Approximate bytes of the store (etcd's db size).
    pub db_bytes: u64,
    /// Whether the storage quota alarm is raised (measured here: the store's size against
    /// the quota).
    pub no_space: bool,
    /// The alarms raised through the log (by clients, as etcd lets them), the same on every
    /// member that applied as far.
    pub alarms: Vec<kv::AlarmMember>,
    /// Whether this member votes (false while rebuilding after a lost disk).
    pub voting: bool,
    /// Whether this member is a learner of the configuration in force.
    pub is_learner: bool,
    /// Whether this member is an auxiliary acceptor (Cheap Paxos) of the configuration in
    /// force, as far as it knows it: it serves no client.
    pub is_auxiliary: bool,
    /// On an auxiliary: the leader it heard from lately (its answer to this member's hello,
    /// `member/auxiliary.rs`), 0 if none. Always 0 on other members.
    pub auxiliary_leader: u64,
    /// The main acceptors of the configuration in force under Cheap Paxos (empty under any
    /// other rule): where an auxiliary sends clients.
    pub mains: Vec<u64>,
    /// Client URLs each member announced, by member id.
    pub client_urls: BTreeMap<u64, Vec<String>>,
    /// A storage failure that stopped this member's writes, if any.
    pub storage_error: Option<String>,
}

/// The changes of every key between two revisions, with previous versions: what one batch of
/// applied slots changed, read once by the member and shared by every watcher that has seen
/// exactly the revisions before it ([`kv::WatchRead::select`] picks each one's part). A watcher
/// out of step ignores it and reads for itself, so one that lags or misses some never skips
/// or repeats a change.
#[derive(Clone, Debug, PartialEq)]
pub struct AppliedChanges {
    /// The revision before the first change.
    pub after: i64,
    /// Every change through this revision is in `events`.
    pub through: i64,
    /// The ballot round when they were applied (the header's raft term).
    pub term: u64,
    /// The changes, oldest first.
    pub events: Vec<kv::Event>,
}

/// A named place in the member's work where a test can make the process die (the node's
/// `--test-crash-at`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CrashPoint {
    /// A persist batch is about to go to the log (not yet written or synced).
    BeforeWalSync,
    /// The log reported a batch durable; the replica has not been told yet.
    AfterWalSync,
    /// A chosen slot is about to be applied.
    BeforeApply,
    /// A chosen slot was applied; its clients are not answered yet.
    AfterApply,
    /// A snapshot's body is written but the file is not finished (synced and renamed).
    DuringSnapshot,
    /// A snapshot is durable and the log is about to be compacted.
    DuringCompaction,
}

/// One thing for the driver to do. See the crate doc for the order.
#[derive(Debug)]
pub enum Output {
    /// Append this record to the log, then sync; report [`Member::on_durable`] with `tag`
    /// once synced. Tags grow by one per record; a sync covers every record before it.
    Persist {
        /// Names this record for [`Member::on_durable`].
        tag: u64,
        /// The ops, in order.
        ops: Vec<PersistOp>,
    },
    /// Send `message` to member `to` (dropping it is allowed: everything is re-sent).
    Send {
        /// The member.
        to: u64,
        /// The message.
        message: PeerMessage,
    },
    /// Send member `to` the chunk at `offset` of the newest snapshot file, if that covers
    /// `through` (as [`PeerMessage::SnapshotChunk`]); nothing otherwise.
    ServeSnapshotChunk {
        /// The asker.
        to: u64,
        /// The snapshot must cover this slot.
        through: Slot,
        /// The chunk's start in the body.
        offset: u64,
    },
    /// Store this chunk of transfer `transfer` (a new transfer number: start a new receiver),
    /// then report [`Member::on_snapshot_chunk_stored`].
    StoreSnapshotChunk {
        /// The transfer it belongs to.
        transfer: u64,
        /// The chunk, checksum verified.
        chunk: SnapshotChunk,
    },
    /// Decode the received snapshot through `through` that the driver just stored whole
    /// ([`crate::snapshot::DecodedSnapshot::decode`], a pass over the whole body: off the
    /// core, one at a time, while the member goes on), then report
    /// [`Member::on_snapshot_decoded`].
    DecodeSnapshot {
        /// The slot it covers.
        through: Slot,
    },
    /// Encode this snapshot body ([`BodyJob::encode`], a pass over the whole store: off the
    /// core, while the member goes on) and write it durably (one at a time), then report
    /// [`Member::on_snapshot_written`]. `crash_mid` (test-only): die once the body is written
    /// but before the file is finished.
    WriteSnapshot {
        /// The slot it covers.
        through: Slot,
        /// The body, as of `through`, to encode.
        body: BodyJob,
        /// Test-only crash point.
        crash_mid: bool,
    },
    /// A durable snapshot covers every slot through `through`: the log before it may go.
    CompactLog {
        /// The slot.
        through: Slot,
    },
    /// The answer to request `id`.
    Answer {
        /// The request.
        id: RequestId,
        /// Its answer.
        answer: Answer,
    },
    /// What the slots just applied changed, for watchers in step (only while
    /// [`Member::set_sharing_changes`] is on).
    AppliedChanges(AppliedChanges),
    /// The store's applied revision moved (forward) to this.
    AppliedRevision(i64),
    /// Test-only: the crash point the member was configured to die at was reached. The driver
    /// must stop here, doing none of the outputs after it.
    Crash(CrashPoint),
    /// The members the transport should reach (member id → peer URLs; never this member):
    /// the configuration's members with a table entry, and members removed less than
    /// `DEPARTED_GRACE` ago. Emitted at start and whenever it changes.
    Peers(BTreeMap<u64, Vec<String>>),
    /// This member was a member and the configuration in force no longer lists it: etcd's
    /// removed member stops. Emitted once.
    Removed,
}

/// What a member is configured with (units in the names).
#[derive(Clone, Debug)]
pub struct MemberOptions {
    /// Every member's id, this one's included.
    pub members: Vec<u64>,
    /// The driver's tick: a read refused by a leader that lost its lead is asked again two
    /// ticks later.
    pub tick: Duration,
    /// How long a request may wait.
    pub request_timeout: Duration,
    /// Writes that can grow the store are refused once the db size reaches this.
    pub quota_bytes: u64,
    /// This member's client URLs (announced to the others).
    pub client_urls: Vec<String>,
    /// A snapshot every this many applied slots.
    pub snapshot_every_slots: u64,
    /// Test-only: emit [`Output::Crash`] the Nth time this point is reached.
    pub crash_at: Option<(CrashPoint, u32)>,
    /// The member table to start from: the newest snapshot's, else the initial cluster's.
    pub table: MemberTable,
    /// This member's name (`--name`): published into the replicated table once it is a
    /// member whose entry lacks it (a member added by `MemberAdd` is listed without a name
    /// until it starts, as in etcd). Empty: nothing to publish.
    pub name: String,
    /// A lease not renewed for this long has its remaining time recorded through the log
    /// (and again every interval after): the bound on how much a leader change can stretch
    /// a lease (see `member/lease_renewal.rs`).
    pub lease_checkpoint_interval: Duration,
    /// The longest a follower waits for a leader before it campaigns, jitter included: a new
    /// leader adds it to every lease, so that no lease runs out for the time it took to
    /// elect someone to renew it with (etcd's `Promote(electionTimeout)`).
    pub election_timeout: Duration,
}

/// What a member is built from.
pub struct MemberParts {
    /// The Paxos core (new, recovered or rebuilding).
    pub replica: Replica,
    /// The applied state (empty, or restored from the newest snapshot).
    pub applier: Applier<KvStore>,
    /// The only randomness the member uses (election jitter); the caller seeds it.
    pub rng: Box<dyn RngCore + Send>,
    /// A number different on every start of this member, so this incarnation's session ids
    /// are new (the caller draws it).
    pub incarnation: u64,
    /// The slot of the newest durable snapshot, if any.
    pub newest_snapshot: Option<Slot>,
    /// Bytes of the store's part of that snapshot (the db size at start).
    pub restored_bytes: u64,
    /// Configuration.
    pub options: MemberOptions,
}

/// Where a write's outcome goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriteFor {
    Client(RequestId),
    /// The member-table half of the membership change under this key (see `changes`).
    Table(u64),
    /// A lease revoke proposed by this member as leader: nobody waits on it.
    Expiry,
    /// Lease checkpoints written by this member as leader; the renewals waiting on them are
    /// under `key` (see `lease_renewal`).
    Checkpoint {
        key: u64,
    },
    /// This member's own name for the member table (see `changes`): nobody waits on it.
    Publish,
}

struct PendingWrite {
    command: Command,
    for_: WriteFor,
    deadline: Micros,
    resend_at: Micros,
    /// Where its time goes, for the driver's slow-request log.
    trace: WriteTrace,
}

/// Where a client write's time went, as this member saw it, on the caller's clock (each
/// stamp is the time of the input during which it happened). Kept only for writes slower
/// than [`SLOW_TRACE_AFTER`], for the driver to log ([`Member::slow_write_trace`]); it never
/// steers anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteTrace {
    /// The request reached the member.
    pub taken: Micros,
    /// It was first handed to the core here (as leader) or forwarded to the leader; `None`
    /// while no leader was known.
    pub routed: Option<Micros>,
    /// Whether that first routing was a forward to another member.
    pub forwarded: bool,
    /// Times it was routed again: a re-send every 500 ms, or to a new leader.
    pub rerouted: u32,
    /// The slot it was chosen in was applied here (the answer is decided at this moment).
    pub applied: Micros,
}

/// A write that took at least this long from taken to applied keeps its [`WriteTrace`].
pub const SLOW_TRACE_AFTER: Duration = Duration::from_millis(100);
/// The most recent slow writes' traces kept (the driver reads each right after its answer).
const SLOW_TRACES_MAX: usize = 64;

/// A leadership transfer this member (the leader when it began) waits on.
struct Transfer {
    target: u64,
    request: RequestId,
    deadline: Micros,
    resend_at: Micros,
}

struct PendingRead {
    /// `None`: a member list.
    read: Option<KvRead>,
    request: RequestId,
    deadline: Micros,
    resend_at: Micros,
    /// Confirmed by the leader: serve once applied through this slot.
    confirmed: Option<Slot>,
}

/// The member's state machine. See the crate doc.
pub struct Member {
    replica: Replica,
    applier: Applier<KvStore>,
    rng: Box<dyn RngCore + Send>,
    options: MemberOptions,
    /// Tags handed out with [`Output::Persist`], and which persist batch each completes.
    next_tag: u64,
    batch_tags: VecDeque<(u64, PersistSeq)>,
    storage_error: Option<String>,
    /// Free sessions, and each session's last sequence number.
    free_sessions: Vec<u64>,
    session_seq: Vec<u64>,
    session_base: u64,
    /// Whether the applied state lists this incarnation's key as this member's (see paxos'
    /// `apply`: commands of an unregistered incarnation are refused). Writes wait, unproposed,
    /// until it does; the registration is sent (again) at `register_at` while one waits.
    registered: bool,
    register_at: Micros,
    writes: BTreeMap<CommandId, PendingWrite>,
    reads: BTreeMap<ReadId, PendingRead>,
    /// Reads this member (as leader) confirms for others: local read id → (asker, its id).
    remote_reads: BTreeMap<ReadId, (u64, ReadId)>,
    next_read: u64,
    client_urls: BTreeMap<u64, Vec<String>>,
    snapshots: SnapshotSchedule,
    /// Rough bytes of the store (etcd's db size, checked against the quota): the newest
    /// snapshot's size plus every command payload applied since. Deletes count nothing until
    /// the next snapshot measures the store again.
    db_bytes: u64,
    applied_buf: Vec<Applied<KvOutput>>,
    hello_at: Micros,
    crash_hits: u32,
    /// The leader as of the last tick: when it changes, waiting requests are re-routed at
    /// once instead of at their next re-send.
    last_leader: Option<NodeId>,
    /// The store's revision as last published.
    published_revision: i64,
    /// Whether anyone takes [`Output::AppliedChanges`].
    sharing_changes: bool,
    /// Every lease's clock, by id (the store's leases, always).
    lease_clocks: LeaseClocks,
    /// Whether this member led at the last tick: a new leader restarts every lease's clock.
    was_leading: bool,
    /// Lease questions in flight (renewals and time-to-live; see `lease_renewal`).
    lease_asks: lease_renewal::LeaseAsks,
    /// Leadership transfers in progress, at most [`TRANSFERS_MAX`].
    transfers: Vec<Transfer>,
    /// Defragments waiting for the snapshot being written, at most [`TRANSFERS_MAX`].
    defragments: Vec<RequestId>,
    outputs: VecDeque<Output>,
    /// Writes to forward to the leader, sent together once the input is handled.
    forwards: forward::ForwardOutbox,
    /// The member table (see [`crate::cluster`]).
    table: MemberTable,
    /// Membership changes waiting, as leader or forwarder, at most [`CHANGES_MAX`].
    changes: Changes,
    /// The peers last emitted in [`Output::Peers`].
    peers: BTreeMap<u64, Vec<String>>,
    /// Members removed lately, with their URLs and when they went (see `DEPARTED_GRACE`).
    departed: BTreeMap<u64, (Vec<String>, Micros)>,
    /// Whether the configuration in force ever listed this member, and whether
    /// [`Output::Removed`] went out.
    was_member: bool,
    said_removed: bool,
    /// The highest configuration epoch named by a leader's or candidate's message received.
    /// A member says it was removed only once its own epoch has caught up with it: a member
    /// re-added under the id it had before replays, while catching up, its previous
    /// incarnation's removal, which is not its own.
    epoch_seen: u64,
    /// The time of the input being handled (the caller's clock; never goes back here).
    clock: Micros,
    /// The latest slow client writes' traces, by request (bounded: [`SLOW_TRACES_MAX`]).
    slow_traces: VecDeque<(RequestId, WriteTrace)>,
    /// Ticks handed to the replica, on the caller's clock (with leader leases on, the count
    /// follows that clock: see `ticks.rs`).
    ticks: ticks::TickClock,
    /// Test-only planted bugs (none unless built with `planted-bugs` and switched on).
    bugs: MemberBugs,
    /// Cheap Paxos: what the leader owes the auxiliaries, and on an auxiliary how far the
    /// mains hold the chosen log (`member/auxiliary.rs`).
    auxiliaries: auxiliary::AuxiliaryState,
    /// The view reads were last answered from, and the slot applied when it was taken
    /// ([`Member::read_view`]).
    read_view: Option<(Slot, Arc<kv::KvView>)>,
}

impl Member {
    /// Builds the member at time `now`; its first outputs introduce it to the other members.
    pub fn new(parts: MemberParts, now: Micros) -> Member {
        let me = parts.replica.id().0;
        let mut client_urls = BTreeMap::new();
        client_urls.insert(me, parts.options.client_urls.clone());
        let published_revision = parts.applier.machine().revision();
        let mut member = Member {
            replica: parts.replica,
            applier: parts.applier,
            rng: parts.rng,
            next_tag: 0,
            batch_tags: VecDeque::new(),
            storage_error: None,
            free_sessions: (0..SESSIONS).rev().collect(),
            session_seq: vec![0; SESSIONS as usize],
            // Sessions of different members and incarnations must never collide: the top bits
            // are the incarnation's random number (its key), the low 12 the session.
            session_base: session_base(parts.incarnation),
            registered: false,
            register_at: now,
            writes: BTreeMap::new(),
            reads: BTreeMap::new(),
            remote_reads: BTreeMap::new(),
            // Read ids start at the incarnation's random number, not at 1: a leader's answer
            // to an earlier incarnation's read (delayed or duplicated in the network) must
            // never confirm a read of this one at the old, lower slot (a stale linearizable
            // read; the member-level simulation found it).
            next_read: parts.incarnation | 1,
            client_urls,
            snapshots: SnapshotSchedule::new(
                parts.options.snapshot_every_slots,
                parts.newest_snapshot,
                parts.restored_bytes,
            ),
            db_bytes: parts.restored_bytes,
            applied_buf: Vec::new(),
            hello_at: now,
            crash_hits: 0,
            last_leader: None,
            published_revision,
            sharing_changes: false,
            lease_clocks: LeaseClocks::new(parts.options.lease_checkpoint_interval),
            was_leading: false,
            lease_asks: Default::default(),
            transfers: Vec::new(),
            defragments: Vec::new(),
            outputs: VecDeque::new(),
            forwards: Default::default(),
            table: parts.options.table.clone(),
            changes: Changes::new(parts.options.name.clone()),
            peers: BTreeMap::new(),
            departed: BTreeMap::new(),
            was_member: false,
            said_removed: false,
            epoch_seen: 0,
            clock: now,
            ticks: ticks::TickClock::new(now),
            slow_traces: VecDeque::new(),
            bugs: MemberBugs::none(),
            auxiliaries: Default::default(),
            read_view: None,
            options: parts.options,
        };
        member.restart_lease_clocks(now);
        member.update_peers(now);
        member.say_hello(now);
        member
    }

    // ---- inputs ----

    /// A client's request `id` at `now`. Its answer comes out as [`Output::Answer`], now or
    /// later (at the latest when the request times out).
    pub fn on_request(&mut self, now: Micros, id: RequestId, request: Request) {
        self.take_request(now, id, request);
        self.drive();
    }

    /// Requests that arrived together, each as [`Member::on_request`] in order; the replica
    /// is asked for its work once, after all of them, so writes that arrive together share a
    /// slot (one accept per acceptor, one log record) instead of taking a slot each. The
    /// replica's own bounds (commands and bytes per slot, pending commands) still apply.
    pub fn on_requests(
        &mut self,
        now: Micros,
        requests: impl IntoIterator<Item = (RequestId, Request)>,
    ) {
        for (id, request) in requests {
            self.take_request(now, id, request);
        }
        self.drive();
    }

    fn take_request(&mut self, now: Micros, id: RequestId, request: Request) {
        let now = self.advance(now);
        match request {
            Request::Write { payload, grows } => {
                if grows && self.db_bytes >= self.options.quota_bytes {
                    self.answer(id, Answer::Write(Err(MemberError::NoSpace)));
                } else {
                    self.submit_write(now, payload, WriteFor::Client(id));
                }
            }
            Request::Read { read, linearizable } => self.read(now, id, Some(read), linearizable),
            Request::MemberList => self.read(now, id, None, true),
            Request::Cluster(change) => self.cluster_change(now, id, change),
            Request::Status => {
                let status = self.status();
                self.answer(id, Answer::Status(status));
            }
            Request::MoveLeader { target } => self.move_leader(now, id, target),
            Request::Defragment => self.defragment(id),
            Request::Backup => {
                let backup = self.backup();
                self.answer(id, Answer::Backup(Ok(backup)));
            }
            Request::LeaseRemaining { id: lease } => {
                self.lease_question(now, id, lease, LeaseQuestion::Remaining)
            }
            Request::LeaseKeepAlive { id: lease } => {
                self.lease_question(now, id, lease, LeaseQuestion::Renew)
            }
            Request::HashKv => {
                let store = self.applier.machine();
                let hash = KvHash {
                    view: store.view(),
                    applied_through: self.applier.applied_through().0,
                    revision: store.revision(),
                    compact_revision: store.etcd_compact_revision(),
                };
                self.answer(id, Answer::HashKv(hash));
            }
        }
    }

    /// A message from member `from` (decoded with [`crate::peer::decode`]).
    pub fn on_peer(&mut self, now: Micros, from: u64, message: PeerMessage) {
        self.take_peer(now, from, message);
        self.drive();
    }

    /// Messages that arrived together (`(from, message)`), each as [`Member::on_peer`] in
    /// order, with the replica asked for its work once after all of them: a follower that
    /// takes several accepts at once persists them in one record and answers them in one
    /// turn, and a leader that takes several forwarded commands proposes them together.
    pub fn on_peers(
        &mut self,
        now: Micros,
        messages: impl IntoIterator<Item = (u64, PeerMessage)>,
    ) {
        for (from, message) in messages {
            self.take_peer(now, from, message);
        }
        self.drive();
    }

    fn take_peer(&mut self, now: Micros, from: u64, message: PeerMessage) {
        let now = self.advance(now);
        if self.replica.config().contains(NodeId(from)) {
            self.changes.heard_from(from, now);
        }
        match message {
            PeerMessage::Paxos(p) => self.step_paxos(from, p),
            PeerMessage::Forward(command) => self.take_forwarded(vec![command]),
            PeerMessage::Forwards(commands) => self.take_forwarded(commands),
            // The traces are the node's business (its spans), not the member's.
            PeerMessage::ForwardsTraced { commands, .. } => self.take_forwarded(commands),
            PeerMessage::ReadIndexAsk { id } => {
                let local = ReadId(self.next_read);
                self.next_read = self.next_read.wrapping_add(1);
                let room = self.remote_reads.len() < REMOTE_READS_MAX;
                match self.replica.read(local) {
                    Ok(()) if room => {
                        self.remote_reads.insert(local, (from, id));
                    }
                    _ => self.send(from, PeerMessage::ReadIndexAnswer { id, slot: None }),
                }
            }
            PeerMessage::ReadIndexAnswer { id, slot } => self.on_read_answer(now, id, slot),
            PeerMessage::LeaseAsk {
                ask,
                lease,
                question,
            } => self.on_lease_ask(now, from, ask, lease, question),
            PeerMessage::LeaseAnswer { ask, result } => self.on_lease_answer(now, ask, result),
            PeerMessage::Probe => {
                let round = self
                    .replica
                    .promised()
                    .round
                    .max(self.replica.ballot().round);
                self.send(from, PeerMessage::ProbeReply { round });
            }
            PeerMessage::ProbeReply { .. } => {}
            PeerMessage::Hello { client_urls } => {
                // At most 16 URLs per member; the transport delivers only from members.
                let urls: Vec<String> = client_urls.into_iter().take(16).collect();
                self.client_urls.insert(from, urls);
                self.answer_auxiliary_hello(from);
            }
            // An auxiliary holds no store, so no snapshot of one (`member/auxiliary.rs`).
            PeerMessage::SnapshotAsk { .. } if self.is_auxiliary() => {}
            PeerMessage::MainsHave { through } => self.on_mains_have(from, through),
            PeerMessage::SnapshotAsk { through, offset } => {
                self.outputs.push_back(Output::ServeSnapshotChunk {
                    to: from,
                    through,
                    offset,
                });
            }
            PeerMessage::SnapshotChunk(bytes) => self.on_snapshot_chunk(now, from, &bytes),
            PeerMessage::ChangeAsk { ask, change } => self.on_change_ask(now, from, ask, change),
            PeerMessage::ChangeDone {
                ask,
                result,
                change,
            } => self.on_change_done(now, from, ask, result, change),
            PeerMessage::TakeLead => {
                // Only from the member this one follows: a stale or stray request must not
                // start elections. A non-voting member cannot lead (`campaign` knows).
                if self.replica.leader().map(|n| n.0) == Some(from) {
                    tracing::info!(
                        from = format!("{from:x}"),
                        "taking the lead at the leader's request"
                    );
                    self.replica.campaign();
                }
            }
        }
    }

    /// The driver's periodic tick (every [`MemberOptions::tick`]).
    pub fn tick(&mut self, now: Micros) {
        let now = self.advance(now);
        self.tick_replica();
        let leader = self.replica.leader();
        if leader != self.last_leader {
            self.last_leader = leader;
            if leader.is_some() {
                self.writes.values_mut().for_each(|w| w.resend_at = now);
                self.register_at = now;
                self.reads
                    .values_mut()
                    .filter(|r| r.confirmed.is_none())
                    .for_each(|r| r.resend_at = now);
                self.send_forwarded_changes(now);
            }
        }
        let timeout = if self.replica.leader().is_none() {
            MemberError::NoLeader
        } else {
            MemberError::Timeout
        };
        self.tend_leases(now, &timeout);
        let expired = keys_where(&self.writes, |w| w.deadline <= now);
        for id in expired {
            if let Some(w) = self.remove_write(id) {
                self.answer_write(w.for_, Err(timeout.clone()));
            }
        }
        let resend = keys_where(&self.writes, |w| w.resend_at <= now);
        for id in resend {
            if let Some(w) = self.writes.get_mut(&id) {
                w.resend_at = now + RESEND_EVERY;
            }
            self.route_write(id);
        }
        let expired = keys_where(&self.reads, |r| r.deadline <= now);
        for id in expired {
            if let Some(r) = self.reads.remove(&id) {
                let answer = match r.read {
                    Some(_) => Answer::Read(Err(timeout.clone())),
                    None => Answer::Members(Err(timeout.clone())),
                };
                self.answer(r.request, answer);
            }
        }
        let reask = keys_where(&self.reads, |r| r.confirmed.is_none() && r.resend_at <= now);
        for id in reask {
            if let Some(r) = self.reads.get_mut(&id) {
                r.resend_at = now + RESEND_EVERY;
            }
            self.ask_read_index(id);
        }
        if now.saturating_since(self.hello_at) > HELLO_EVERY {
            self.say_hello(now);
        }
        for (to, ask) in self.snapshots.retry_ask(now) {
            self.send(to, ask);
        }
        self.progress_transfers(now);
        self.expire_changes(now, &timeout);
        self.publish_own_name(now);
        self.update_peers(now);
        self.tell_auxiliaries();
        self.drive();
    }

    /// The log synced every record through `tag` (tags of [`Output::Persist`]).
    pub fn on_durable(&mut self, now: Micros, tag: u64) {
        self.advance(now);
        let mut last = None;
        while let Some(&(t, seq)) = self.batch_tags.front() {
            if t > tag {
                break;
            }
            last = Some(seq);
            self.batch_tags.pop_front();
        }
        if let Some(seq) = last {
            self.crash_point(CrashPoint::AfterWalSync);
            self.replica.persisted(seq);
        }
        self.drive();
    }

    /// The log failed (a write or a sync): nothing after it may be reported durable, so this
    /// member stops taking writes and fails what waits; it must be restarted.
    pub fn on_log_failed(&mut self, now: Micros, error: String) {
        self.advance(now);
        if self.storage_error.is_some() {
            return;
        }
        tracing::error!(%error, "the log failed; this member stops serving writes and must be restarted");
        self.fail_all(MemberError::StorageFailed(error.clone()));
        self.storage_error = Some(error);
        self.drive();
    }

    /// Switches planted bugs on (test-only: without the `planted-bugs` feature every bug
    /// stays off whatever is passed). Leases already granted keep their clocks.
    pub fn plant_bugs(&mut self, bugs: MemberBugs) {
        self.bugs = bugs;
        self.lease_clocks
            .plant_ttl_in_millis(bugs.has(MemberBug::LeaseTtlInMillis));
    }

    /// Whether anyone listens for [`Output::AppliedChanges`]: reading them costs a pass over
    /// what each batch changed, so only while some watcher would take them.
    pub fn set_sharing_changes(&mut self, on: bool) {
        self.sharing_changes = on;
    }

    // ---- outputs ----

    /// The next thing to do, in the order the member decided them (the crate doc says why
    /// that order is safe); `None` once everything is drained. Drain after every input.
    pub fn poll_output(&mut self) -> Option<Output> {
        debug_assert!(
            self.forwards.is_empty(),
            "every input ends in drive, which sends the gathered forwards"
        );
        self.outputs.pop_front()
    }

    /// Every request waiting for an answer is answered with `error` now (the driver is
    /// stopping), and forgotten.
    pub fn fail_all(&mut self, error: MemberError) {
        for id in std::mem::take(&mut self.defragments) {
            self.answer(id, Answer::Defragment(Err(error.clone())));
        }
        for t in std::mem::take(&mut self.transfers) {
            self.answer(t.request, Answer::MoveLeader(Err(error.clone())));
        }
        let ids: Vec<CommandId> = self.writes.keys().copied().collect();
        for id in ids {
            if let Some(w) = self.remove_write(id) {
                self.answer_write(w.for_, Err(error.clone()));
            }
        }
        for (_, r) in std::mem::take(&mut self.reads) {
            let answer = match r.read {
                Some(_) => Answer::Read(Err(error.clone())),
                None => Answer::Members(Err(error.clone())),
            };
            self.answer(r.request, answer);
        }
        self.fail_changes(&error);
        self.fail_lease_asks(&error);
    }

    // ---- views ----

    /// The time of the latest input (the caller's clock; it never goes back here).
    pub fn clock(&self) -> Micros {
        self.clock
    }

    /// The Paxos core (read-only).
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// The applied state (read-only).
    pub fn applier(&self) -> &Applier<KvStore> {
        &self.applier
    }

    /// This member's id.
    pub fn id(&self) -> u64 {
        self.replica.id().0
    }

    /// The member's state, as [`Request::Status`] answers it.
    pub fn status(&self) -> Status {
        Status {
            leader: self.replica.leader().map_or(0, |n| n.0),
            term: self.term(),
            chosen_through: self.replica.chosen_through().0,
            applied_through: self.applier.applied_through().0,
            revision: self.applier.machine().revision(),
            db_bytes: self.db_bytes,
            no_space: self.db_bytes >= self.options.quota_bytes,
            alarms: self.applier.machine().alarms(),
            voting: self.replica.is_voting(),
            is_learner: self.replica.config().is_learner(self.replica.id()),
            is_auxiliary: self.replica.is_auxiliary(),
            auxiliary_leader: self.auxiliary_leader().unwrap_or(0),
            mains: match self.replica.config().quorum() {
                paxos::QuorumSpec::Cheap { .. } => {
                    self.replica.config().mains().iter().map(|n| n.0).collect()
                }
                _ => Vec::new(),
            },
            client_urls: self.client_urls.clone(),
            storage_error: self.storage_error.clone(),
        }
    }

    /// Where the time of client write `id` went, if it was slower than [`SLOW_TRACE_AFTER`]
    /// and is among the latest such (the driver asks right after its answer).
    pub fn slow_write_trace(&self, id: RequestId) -> Option<WriteTrace> {
        self.slow_traces
            .iter()
            .rev()
            .find(|(r, _)| *r == id)
            .map(|(_, t)| *t)
    }

    /// The command ids of client writes `ids` still waiting for their answer (a driver that
    /// exports spans sends each one's trace context beside it when it is forwarded). One pass
    /// over the waiting writes, however many are asked.
    pub fn write_commands(&self, ids: &BTreeSet<RequestId>) -> Vec<(RequestId, CommandId)> {
        if ids.is_empty() {
            return Vec::new();
        }
        self.writes
            .iter()
            .filter_map(|(command, w)| match w.for_ {
                WriteFor::Client(r) if ids.contains(&r) => Some((r, *command)),
                _ => None,
            })
            .collect()
    }

    /// Requests waiting for an answer (writes, reads, transfers, defragments).
    pub fn waiting(&self) -> usize {
        self.writes
            .values()
            .filter(|w| !matches!(w.for_, WriteFor::Expiry | WriteFor::Publish))
            .count()
            + self.reads.len()
            + self.transfers.len()
            + self.defragments.len()
            + self.changes.len()
    }

    // ---- internals ----

    fn me(&self) -> u64 {
        self.replica.id().0
    }

    /// Takes the caller's time for the input being handled; a clock that went back is held
    /// where it was (time never goes back inside the member).
    /// With leader leases on, the replica's clock is brought up to it first (`ticks.rs`).
    fn advance(&mut self, now: Micros) -> Micros {
        self.clock = self.clock.max(now);
        self.catch_up_ticks(self.clock);
        self.clock
    }

    fn term(&self) -> u64 {
        self.replica
            .ballot()
            .round
            .max(self.replica.promised().round)
    }

    fn answer(&mut self, id: RequestId, answer: Answer) {
        self.outputs.push_back(Output::Answer { id, answer });
    }

    fn answer_write(&mut self, for_: WriteFor, answer: WriteAnswer) {
        match for_ {
            WriteFor::Client(id) => self.answer(id, Answer::Write(answer)),
            WriteFor::Table(id) => self.on_table_written(id, answer.map(|_| ())),
            WriteFor::Checkpoint { key } => self.checkpoint_written(key, answer),
            WriteFor::Expiry | WriteFor::Publish => {}
        }
    }

    /// Hands a Paxos message to the core. A `Learn` whose records run past stop-signs is
    /// handed over in one step per stop-sign, so the core enters each next configuration
    /// before it learns the slots that configuration decided. The core asserts, on entering a
    /// configuration, that nothing after the stop-sign is chosen; in one step it would have
    /// marked the later epoch's slots chosen first and stopped the process (a replica catching
    /// up across a change, such as a new learner). What follows a part that did not bring the
    /// core into the next configuration (a gap before the stop-sign) is dropped; the core
    /// asks again.
    fn step_paxos(&mut self, from: u64, message: paxos::multi::Message) {
        if let Some(epoch) = message.epoch() {
            self.epoch_seen = self.epoch_seen.max(epoch);
        }
        let paxos::multi::Message::Learn {
            mut records,
            chosen_through,
            compacted_through,
        } = message
        else {
            self.step_core(from, message);
            return;
        };
        // One step per stop-sign: each part ends at one (or is the last).
        loop {
            let cut = records
                .iter()
                .position(|r| r.value.is_stop_sign())
                .map(|i| i + 1)
                .filter(|&i| i < records.len());
            let rest = match cut {
                Some(i) => records.split_off(i),
                None => Vec::new(),
            };
            let epoch = self.replica.epoch();
            let part = paxos::multi::Message::Learn {
                records,
                chosen_through,
                compacted_through,
            };
            self.step_core(from, part);
            if rest.is_empty() || self.replica.epoch() == epoch {
                return;
            }
            records = rest;
        }
    }

    fn step_core(&mut self, from: u64, message: paxos::multi::Message) {
        if let Err(reason) = self.replica.step(NodeId(from), message) {
            tracing::debug!(from, %reason, "core refused a message");
        }
    }

    fn send(&mut self, to: u64, message: PeerMessage) {
        self.outputs.push_back(Output::Send { to, message });
    }

    /// Test-only: counts a hit of `point` and says whether this is the hit a test asked the
    /// member to die at.
    fn crash_due(&mut self, point: CrashPoint) -> bool {
        let Some((at, nth)) = self.options.crash_at else {
            return false;
        };
        if at != point {
            return false;
        }
        self.crash_hits += 1;
        self.crash_hits >= nth
    }

    /// Test-only: tells the driver to die here if a test asked for it.
    fn crash_point(&mut self, point: CrashPoint) {
        if self.crash_due(point) {
            self.outputs.push_back(Output::Crash(point));
        }
    }

    fn say_hello(&mut self, now: Micros) {
        let hello = PeerMessage::Hello {
            client_urls: self.options.client_urls.clone(),
        };
        // Everyone in the configuration in force (members added at run time included).
        let everyone: Vec<u64> = self.replica.config().everyone().map(|n| n.0).collect();
        for m in everyone {
            if m != self.me() {
                self.send(m, hello.clone());
            }
        }
        self.hello_at = now;
    }

    fn read(&mut self, now: Micros, request: RequestId, read: Option<KvRead>, linearizable: bool) {
        if !linearizable {
            let Some(read) = read else {
                let members = self.members();
                self.answer(request, Answer::Members(Ok(members)));
                return;
            };
            let term = self.replica.ballot().round;
            self.answer_read(request, read, term);
            return;
        }
        if self.reads.len() >= READS_MAX {
            let answer = match read {
                Some(_) => Answer::Read(Err(MemberError::TooManyRequests)),
                None => Answer::Members(Err(MemberError::TooManyRequests)),
            };
            self.answer(request, answer);
            return;
        }
        let id = ReadId(self.next_read);
        self.next_read = self.next_read.wrapping_add(1);
        self.reads.insert(
            id,
            PendingRead {
                read,
                request,
                deadline: now + self.options.request_timeout,
                resend_at: now + RESEND_EVERY,
                confirmed: None,
            },
        );
        self.ask_read_index(id);
    }

    fn move_leader(&mut self, now: Micros, request: RequestId, target: u64) {
        let refusal = if self.replica.role() != Role::Leader {
            Some(Err(MemberError::NotLeader))
        } else if !self.replica.config().is_voter(NodeId(target)) {
            Some(Err(MemberError::BadTransferee))
        } else if target == self.me() {
            Some(Ok(()))
        } else if self.transfers.len() >= TRANSFERS_MAX {
            Some(Err(MemberError::TooManyRequests))
        } else {
            None
        };
        if let Some(answer) = refusal {
            self.answer(request, Answer::MoveLeader(answer));
            return;
        }
        tracing::info!(
            to = format!("{target:x}"),
            "handing the lead over (MoveLeader)"
        );
        self.send(target, PeerMessage::TakeLead);
        self.transfers.push(Transfer {
            target,
            request,
            deadline: now + self.options.request_timeout,
            resend_at: now + RESEND_EVERY,
        });
    }

    /// Answers each transfer whose target now leads (as this member sees it) or whose time is
    /// up; asks the target again while this member still leads (the request may be lost).
    fn progress_transfers(&mut self, now: Micros) {
        if self.transfers.is_empty() {
            return;
        }
        let leader = self.replica.leader().map(|n| n.0);
        let leading = self.replica.role() == Role::Leader;
        for mut t in std::mem::take(&mut self.transfers) {
            if leader == Some(t.target) {
                self.answer(t.request, Answer::MoveLeader(Ok(())));
            } else if now >= t.deadline {
                self.answer(
                    t.request,
                    Answer::MoveLeader(Err(MemberError::TransferTimeout)),
                );
            } else {
                if leading && now >= t.resend_at {
                    self.send(t.target, PeerMessage::TakeLead);
                    t.resend_at = now + RESEND_EVERY;
                }
                self.transfers.push(t);
            }
        }
    }

    fn submit_write(&mut self, now: Micros, payload: Vec<u8>, for_: WriteFor) {
        if let Some(e) = &self.storage_error {
            let e = MemberError::StorageFailed(e.clone());
            self.answer_write(for_, Err(e));
            return;
        }
        let Some(session) = self.free_sessions.pop() else {
            self.answer_write(for_, Err(MemberError::TooManyRequests));
            return;
        };
        let seq = &mut self.session_seq[session as usize];
        *seq += 1;
        let command = Command {
            id: CommandId {
                client: ClientId(self.session_base | session),
                seq: *seq,
            },
            // The encoded command becomes shared bytes here without a copy; every later
            // holder (proposal, Accepts, WAL) shares it.
            payload: payload.into(),
        };
        let id = command.id;
        self.writes.insert(
            id,
            PendingWrite {
                command,
                for_,
                deadline: now + self.options.request_timeout,
                resend_at: now + RESEND_EVERY,
                trace: WriteTrace {
                    taken: now,
                    routed: None,
                    forwarded: false,
                    rerouted: 0,
                    applied: now,
                },
            },
        );
        self.route_write(id);
    }

    /// Proposes here if leading, else forwards to the leader if one is known; otherwise the
    /// write waits for the next re-send.
    fn route_write(&mut self, id: CommandId) {
        if !self.registered {
            // Proposed once registered (`check_registration`): before, it would be refused.
            return;
        }
        let Some(w) = self.writes.get(&id) else {
            return;
        };
        let command = w.command.clone();
        let decided_here = matches!(w.for_, WriteFor::Expiry | WriteFor::Checkpoint { .. });
        let leading = self.replica.role() == Role::Leader;
        let leader_known = self.replica.leader().is_some_and(|l| l.0 != self.me());
        if leading || leader_known {
            let clock = self.clock;
            if let Some(w) = self.writes.get_mut(&id) {
                match w.trace.routed {
                    None => {
                        w.trace.routed = Some(clock);
                        w.trace.forwarded = !leading;
                    }
                    Some(_) => w.trace.rerouted = w.trace.rerouted.saturating_add(1),
                }
            }
        }
        if leading {
            match self.replica.propose(command) {
                Ok(()) => return,
                Err(ProposeError::TooLarge { .. }) => {
                    if let Some(w) = self.remove_write(id) {
                        self.answer_write(w.for_, Err(MemberError::RequestTooLarge));
                    }
                    return;
                }
                Err(_) => return,
            }
        }
        if decided_here {
            // Decided by this member's clocks as leader: another leader's clocks may have
            // moved on (a renewal), so they are never handed on, only dropped.
            if let Some(w) = self.remove_write(id) {
                self.answer_write(w.for_, Err(MemberError::NotLeader));
            }
            return;
        }
        if let Some(leader) = self.replica.leader().filter(|l| l.0 != self.me()) {
            self.forward(leader.0, command);
        }
    }

    /// Notes whether the applied state lists this incarnation: once it does, the writes that
    /// waited for it are routed; if it stops (a stop-sign removed this member, or a process
    /// with this member's id registered since), this incarnation's key is never registered
    /// again (the applier's rule relies on it): later writes use a new random key.
    fn check_registration(&mut self) {
        let me = self.me();
        let key = self.session_base >> SESSION_BITS;
        let live = self.applier.registrations().live.get(&me).map(|r| r.0) == Some(key);
        if live == self.registered {
            return;
        }
        self.registered = live;
        if live {
            let ids: Vec<CommandId> = self.writes.keys().copied().collect();
            for id in ids {
                if let Some(w) = self.writes.get_mut(&id) {
                    w.resend_at = self.clock + RESEND_EVERY;
                }
                self.route_write(id);
            }
        } else {
            tracing::info!("this incarnation's registration was retired; registering a new one");
            self.session_base = session_base(self.rng.next_u64());
            self.register_at = self.clock;
        }
    }

    /// Sends this incarnation's registration to the leader (or proposes it, leading) while
    /// a write waits for it, every [`RESEND_EVERY`] (a lost one, or one refused because this
    /// member had not applied far enough yet, is sent again with what it has applied now).
    fn progress_registration(&mut self) {
        if self.registered || self.writes.is_empty() || self.clock < self.register_at {
            return;
        }
        let command = Registration {
            member: self.me(),
            incarnation: self.session_base >> SESSION_BITS,
            seen: self.applier.applied_through(),
        }
        .command();
        if self.replica.role() == Role::Leader {
            let _ = self.replica.propose(command);
        } else if let Some(leader) = self.replica.leader().filter(|l| l.0 != self.me()) {
            self.forward(leader.0, command);
        } else {
            return;
        }
        self.register_at = self.clock + RESEND_EVERY;
    }

    fn remove_write(&mut self, id: CommandId) -> Option<PendingWrite> {
        let w = self.writes.remove(&id)?;
        let session = id.client.0 & 0xfff;
        debug_assert!(session < SESSIONS && !self.free_sessions.contains(&session));
        self.free_sessions.push(session);
        Some(w)
    }

    fn ask_read_index(&mut self, id: ReadId) {
        if self.replica.role() == Role::Leader {
            self.assert_ticks_caught_up();
            let _ = self.replica.read(id);
        } else if let Some(leader) = self.replica.leader().filter(|l| l.0 != self.me()) {
            self.send(leader.0, PeerMessage::ReadIndexAsk { id });
        }
    }

    /// Does what the replica asks, until it asks nothing.
    fn drive(&mut self) {
        self.check_registration();
        self.progress_registration();
        self.flush_forwards();
        self.flush_lease_checkpoints();
        for _ in 0..64 {
            let ready = self.replica.ready();
            if ready.is_empty() {
                break;
            }
            if let Some(batch) = ready.persist {
                self.persist(batch.seq, batch.ops);
            }
            for out in ready.send {
                self.note_sent_paxos(out.to);
                self.send(out.to.0, PeerMessage::Paxos(out.msg));
            }
            let mut applied = std::mem::take(&mut self.applied_buf);
            let mut revision_before = self.applier.machine().revision();
            for entry in &ready.chosen {
                let entry = self.entry_to_apply(entry);
                let entry = &*entry;
                if let Value::Batch(commands) = &entry.value {
                    let bytes: usize = commands.iter().map(|c| c.payload.len()).sum();
                    self.db_bytes = self.db_bytes.saturating_add(bytes as u64);
                    self.snapshots.applied(bytes as u64);
                    // A compaction drops the tombstones at or below its revision, which the
                    // changes read after it would then lack: watchers in step are owed
                    // them (etcd sends each write's events before the next write applies),
                    // so the changes so far are shared first. (Once shared after a batch
                    // that compacted, a deletion went missing from a watcher in step: the
                    // member campaign's seed 1265 with wipes, `shared-changes`.)
                    if self.sharing_changes
                        && commands.iter().any(|c| {
                            c.id.client != REGISTRATION_CLIENT && kv::is_compaction(&c.payload)
                        })
                    {
                        self.share_changes(revision_before);
                        revision_before = self.applier.machine().revision();
                    }
                }
                self.crash_point(CrashPoint::BeforeApply);
                if let Value::StopSign(next) = &entry.value {
                    // A member leaves the table as it leaves the configuration, at the same
                    // slot on every member.
                    self.table.retain(|id, _| next.contains(NodeId(*id)));
                }
                let from = applied.len();
                self.applier.apply(entry, &mut applied);
                for a in &applied[from..] {
                    self.on_lease_applied(a, entry, self.clock);
                    self.on_table_applied(a, entry);
                }
                self.crash_point(CrashPoint::AfterApply);
            }
            self.check_registration();
            for a in applied.drain(..) {
                self.complete_write(a);
            }
            self.applied_buf = applied;
            for outcome in ready.reads {
                self.on_read_outcome(outcome);
            }
            for id in ready.abandoned {
                if let Some(w) = self.writes.get_mut(&id) {
                    w.resend_at = self.clock;
                }
            }
            if let Some(wanted) = ready.snapshot_wanted {
                let from = self.snapshot_source(wanted.from.0);
                for (to, ask) in self.snapshots.want(from, wanted.through, self.clock) {
                    self.send(to, ask);
                }
            }
            if !ready.chosen.is_empty() {
                self.prune_auxiliary();
                self.update_peers(self.clock);
                self.share_changes(revision_before);
                self.publish_revision();
                self.maybe_snapshot();
            }
        }
        self.serve_confirmed_reads();
        self.serve_confirmed_renewals();
        self.progress_changes();
        // Writes routed as this incarnation's registration applied (`check_registration`).
        self.flush_forwards();
    }

    fn persist(&mut self, seq: PersistSeq, ops: Vec<PersistOp>) {
        self.crash_point(CrashPoint::BeforeWalSync);
        if self.storage_error.is_some() {
            // Nothing after a failed sync may be reported durable: the member is stopped.
            return;
        }
        let bytes: usize = ops.iter().map(op_bytes).sum();
        let records: Vec<Vec<PersistOp>> = if bytes > RECORD_SPLIT_BYTES && ops.len() > 1 {
            // One op per record, in order: a prefix of the batch may become durable before a
            // crash, which is safe because the replica has not been told of any of it yet and
            // each op alone is a valid durable step (the simulator does the same).
            ops.into_iter().map(|op| vec![op]).collect()
        } else {
            vec![ops]
        };
        for ops in records {
            self.next_tag += 1;
            let tag = self.next_tag;
            self.outputs.push_back(Output::Persist { tag, ops });
        }
        self.batch_tags.push_back((self.next_tag, seq));
    }

    fn complete_write(&mut self, a: Applied<KvOutput>) {
        let Some(w) = self.remove_write(a.id) else {
            return;
        };
        let out = match a.outcome {
            SessionOutcome::Applied(o) | SessionOutcome::Duplicate(o) => Ok((o, self.term())),
            // Our own latest command cannot be older than our latest, so this incarnation was
            // retired (removed, or another process took this member's id) before it applied:
            // it never will be.
            SessionOutcome::Stale => Err(MemberError::Timeout),
        };
        if let WriteFor::Client(request) = w.for_ {
            let took = self.clock.saturating_since(w.trace.taken);
            if took >= SLOW_TRACE_AFTER {
                if self.slow_traces.len() >= SLOW_TRACES_MAX {
                    self.slow_traces.pop_front();
                }
                let trace = WriteTrace {
                    applied: self.clock,
                    ..w.trace
                };
                self.slow_traces.push_back((request, trace));
            }
        }
        self.answer_write(w.for_, out);
    }

    fn on_read_outcome(&mut self, outcome: ReadOutcome) {
        let (id, slot) = match outcome {
            ReadOutcome::Ready { id, slot } => (id, Some(slot)),
            ReadOutcome::Failed { id, .. } => (id, None),
        };
        if self.lease_read_outcome(id, slot) {
            return;
        }
        if let Some((asker, their)) = self.remote_reads.remove(&id) {
            self.send(asker, PeerMessage::ReadIndexAnswer { id: their, slot });
        } else {
            self.on_read_answer(self.clock, id, slot);
        }
    }

    /// Our read `id` is confirmed through `slot`, or (`None`) must be asked again shortly.
    fn on_read_answer(&mut self, now: Micros, id: ReadId, slot: Option<Slot>) {
        let again = now + self.options.tick * 2;
        if let Some(r) = self.reads.get_mut(&id) {
            match slot {
                Some(s) => r.confirmed = Some(s),
                None => r.resend_at = again,
            }
        }
    }

    fn serve_confirmed_reads(&mut self) {
        let applied = self.applier.applied_through();
        // Planted bug `ReadBeforeApplied`: serve once confirmed, applied or not.
        let early = self.bugs.has(MemberBug::ReadBeforeApplied);
        let ready = keys_where(&self.reads, |r| {
            r.confirmed.is_some_and(|s| early || s <= applied)
        });
        let term = self.term();
        for id in ready {
            if let Some(r) = self.reads.remove(&id) {
                match r.read {
                    Some(read) => self.answer_read(r.request, read, term),
                    None => {
                        let members = self.members();
                        self.answer(r.request, Answer::Members(Ok(members)));
                    }
                }
            }
        }
    }

    /// Reads the changes since `after` once for every watch stream, if any listens: the
    /// streams' watchers in step then need no read of their own.
    fn share_changes(&mut self, after: i64) {
        let store = self.applier.machine();
        if store.revision() == after || !self.sharing_changes {
            return;
        }
        // Shared changes are unfiltered: while auth is on, each watcher reads its own, which
        // the store checks against its user's permissions.
        if store.auth().is_enabled() {
            return;
        }
        // Planted bug `WatchEventTwice`: the read starts one revision early, so the batch
        // repeats the last revision of the one before it.
        let from = if self.bugs.has(MemberBug::WatchEventTwice) {
            (after - 1).max(0)
        } else {
            after
        };
        // A compaction in the batch itself (after a deletion in the same slot) may have
        // dropped a tombstone at its revision: each watcher then reads for itself, as one
        // that starts at the compaction revision does.
        if store.compact_revision() > after {
            return;
        }
        let everything = kv::WatchRead::everything(from, SHARED_EVENTS_MAX, SHARED_BYTES_MAX);
        match store.watch_read(&everything) {
            Ok(answer) if !answer.compacted && answer.through == store.revision() => {
                debug_assert!(answer.through > after);
                let changes = AppliedChanges {
                    after,
                    through: answer.through,
                    term: self.term(),
                    events: answer.events,
                };
                self.outputs.push_back(Output::AppliedChanges(changes));
            }
            // Too much to share, or compacted away already: each watcher reads.
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot read the changes just applied"),
        }
    }

    /// Tells the watchers when the store's revision moved. It only moves forward: a snapshot
    /// is installed only when it is ahead of what is applied here.
    fn publish_revision(&mut self) {
        let revision = self.applier.machine().revision();
        debug_assert!(
            revision >= self.published_revision
                || self.bugs.has(MemberBug::RevisionBackAfterSnapshotInstall),
            "the applied revision went back"
        );
        if revision != self.published_revision {
            self.published_revision = revision;
            self.outputs.push_back(Output::AppliedRevision(revision));
        }
    }

    /// Answers a read that may be served now: a watch read here (it needs the store's change
    /// index, and is a bounded batch), any other on a view of the applied state, which the
    /// driver serves off the core ([`Answer::ReadOnView`]).
    fn answer_read(&mut self, request: RequestId, read: KvRead, term: u64) {
        if !kv::KvView::serves(&read) {
            let answer = self.serve(&read);
            self.answer(request, Answer::Read(Ok((answer, term))));
            return;
        }
        let view = self.read_view();
        self.answer(request, Answer::ReadOnView(ViewRead { view, read, term }));
    }

    /// A view of the store as applied now, shared by every read answered before the next
    /// slot is applied (taking one copies the auth tables and the alarms).
    fn read_view(&mut self) -> Arc<kv::KvView> {
        let applied = self.applier.applied_through();
        let store = self.applier.machine();
        if let Some((at, view)) = &self.read_view {
            if *at == applied {
                // Every change to the store is an applied slot, so a view taken at this slot is
                // the store as it is.
                debug_assert_eq!(view.revision(), store.revision());
                return Arc::clone(view);
            }
        }
        let view = Arc::new(store.view());
        self.read_view = Some((applied, Arc::clone(&view)));
        view
    }

    fn serve(&self, read: &KvRead) -> Result<KvReadResponse, kv::KvError> {
        // Planted bug `WatchStartOffByOne`: a watch read skips the first revision it owes.
        if let (true, KvRead::Watch(w)) = (self.bugs.has(MemberBug::WatchStartOffByOne), read) {
            let late = kv::WatchRead {
                after: w.after + 1,
                ..w.clone()
            };
            return self.applier.machine().read(&KvRead::Watch(late));
        }
        self.applier.machine().read(read)
    }
}

/// The keys of `map` whose value satisfies `pred` (collected, so the map can be changed next),
/// in key order: the member's outputs never depend on a hash order.
/// The Cluster API (see [`crate::cluster`]).
impl Member {
    /// The members of the configuration in force, by id, as this member knows them.
    fn members(&self) -> Vec<MemberEntry> {
        let config = self.replica.config();
        let mut out: Vec<MemberEntry> = config
            .everyone()
            .map(|node| {
                let info = self.table.get(&node.0).cloned().unwrap_or_default();
                MemberEntry {
                    id: node.0,
                    name: info.name,
                    peer_urls: info.peer_urls,
                    // An auxiliary serves no client, so it lists none: clients that learn
                    // endpoints from the member list (clientv3's auto-sync) never pick it.
                    client_urls: if config.is_auxiliary(node) {
                        Vec::new()
                    } else {
                        self.client_urls.get(&node.0).cloned().unwrap_or_default()
                    },
                    is_learner: config.is_learner(node),
                }
            })
            .collect();
        out.sort_by_key(|m| m.id);
        out
    }

    /// The member table as replicated here (the snapshot body carries it).
    pub fn table(&self) -> &MemberTable {
        &self.table
    }

    /// Tells the driver whom to reach when that changed, and that this member was removed
    /// once the configuration in force no longer lists it.
    fn update_peers(&mut self, now: Micros) {
        let me = self.me();
        let config = self.replica.config();
        let mut peers: BTreeMap<u64, Vec<String>> = config
            .everyone()
            .filter(|n| n.0 != me)
            .filter_map(|n| Some((n.0, self.table.get(&n.0)?.peer_urls.clone())))
            .filter(|(_, urls)| !urls.is_empty())
            .collect();
        for (id, urls) in &self.peers {
            if !peers.contains_key(id) && !config.contains(NodeId(*id)) {
                self.departed.entry(*id).or_insert((urls.clone(), now));
            }
        }
        self.departed.retain(|id, (_, at)| {
            now.saturating_since(*at) < DEPARTED_GRACE && !config.contains(NodeId(*id))
        });
        for (id, (urls, _)) in &self.departed {
            peers.entry(*id).or_insert_with(|| urls.clone());
        }
        if peers != self.peers {
            self.peers = peers.clone();
            self.outputs.push_back(Output::Peers(peers));
        }
        if self.replica.is_member() {
            self.was_member = true;
        } else if self.was_member && !self.said_removed && self.replica.epoch() >= self.epoch_seen {
            self.said_removed = true;
            self.outputs.push_back(Output::Removed);
        }
    }
}

fn keys_where<K: Copy + Ord, V>(map: &BTreeMap<K, V>, pred: impl Fn(&V) -> bool) -> Vec<K> {
    map.iter()
        .filter(|(_, v)| pred(v))
        .map(|(k, _)| *k)
        .collect()
}

/// Rough bytes an op takes in a record: the values dominate.
fn op_bytes(op: &PersistOp) -> usize {
    let value_bytes = |v: &Value| match v {
        Value::Noop => 0,
        Value::StopSign(c) => 8 * c.len_everyone(),
        Value::Batch(c) => c.iter().map(|c| c.payload.len() + 32).sum(),
    };
    match op {
        PersistOp::Accept { value, .. } | PersistOp::Chosen { value, .. } => {
            32 + value_bytes(value)
        }
        _ => 32,
    }
}

/// The session base of incarnation number `incarnation`: its key (the bits above the
/// session), never the key reserved for registrations.
fn session_base(incarnation: u64) -> u64 {
    let base = incarnation & !(SESSIONS - 1);
    if base == REGISTRATION_CLIENT.0 & !(SESSIONS - 1) {
        base ^ SESSIONS
    } else {
        base
    }
}
