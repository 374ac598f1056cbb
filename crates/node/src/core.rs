//! The driver: one tokio task that owns the [`Member`] (the member's deterministic state
//! machine: the Paxos replica, the applied store, sessions, forwarding, read-index, leases,
//! snapshot decisions) and does what it outputs, in its order: hand persist records to the
//! group-commit thread, send peer messages, hand snapshot file work to its threads, answer
//! clients, publish applied changes to watchers.
//!
//! What lives here and not in the member is what needs tokio or the OS: the clock (`Instant`
//! → [`Micros`] since the task's start), the oneshot senders of waiting requests (by
//! [`RequestId`]), the watch and broadcast channels, the log's commit thread, the transport,
//! the snapshot file threads (writing one, storing and reading a transfer's chunks, decoding
//! a received one), the blocking threads that pass over the whole store (a snapshot's or a
//! backup's encoding, HashKV's digest: the member hands out views, so the core never does),
//! and crash-point aborts. Everything that touches the
//! member happens on this one task, so there is no lock around it; gRPC handlers talk to it
//! through a bounded channel and wait on a oneshot for their answer.

use crate::backup::Backup;
use crate::config::CrashPoint;
use crate::error::NodeError;
use crate::metrics::{Metrics, Observer, RequestKind};
use crate::peer::{self, PeerMessage};
use crate::snapshot::{SnapshotDecoded, SnapshotFiles, SnapshotIo, SnapshotWritten};
use bytes::Bytes;
use kv::{KvOutput, KvRead, KvReadResponse, KvStore};
use member::{Answer, Member, MemberOptions, MemberParts, Micros, Output, RequestId};
use paxos::multi::{Applier, Replica};
use paxos::Slot;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use storage::group::{Completion, GroupCommit};
use storage::StdFs;
use tokio::sync::{broadcast, mpsc, oneshot, watch, Semaphore};
use tokio::time::Instant;
use transport::{Inbound, TransportHandle};

pub use member::cluster::{ClusterChange, MemberEntry};
pub use member::{AppliedChanges, Status};

/// Inputs of one kind (client requests, or peer messages) taken in one turn at most: those
/// already waiting go to the member together, so writes that arrived together are proposed
/// in one slot and accepts that arrived together are persisted in one record, instead of
/// one slot and one record each. The bound keeps a turn short: a tick or a log completion
/// waits behind at most this many inputs.
const INPUTS_PER_TURN_MAX: usize = 256;

/// Where a member list goes (after a change, the members then).
pub type MembersReply = oneshot::Sender<Result<Vec<MemberEntry>, NodeError>>;

/// Where a read's answer goes: the read, done or still to serve, or why the node could not
/// serve it.
pub type ReadReply = oneshot::Sender<Result<ReadDone, NodeError>>;

/// A read the member decided to answer. Most come with a view of the applied state
/// ([`member::ViewRead`]) and are served by the handler that asked, off the core task, so a
/// range over every key delays no heartbeat and no other request; watch reads (bounded
/// batches that need the store's change index) come served.
#[derive(Debug)]
pub enum ReadDone {
    /// Served on the core: the store's answer (or refusal) and the ballot round.
    Served(Result<KvReadResponse, kv::KvError>, u64),
    /// To serve on the view it carries.
    OnView(member::ViewRead),
}

/// Ranges that may return more keys than this are served on the blocking pool rather than on
/// the handler's runtime thread, which other handlers (and the core task) share.
const INLINE_RANGE_KEYS_MAX: i64 = 1_000;

impl ReadDone {
    /// The store's answer and the ballot round: for a read on a view, one pass over the keys it
    /// covers, here (a large range on tokio's blocking pool).
    pub async fn serve(self) -> Result<(Result<KvReadResponse, kv::KvError>, u64), NodeError> {
        match self {
            ReadDone::Served(answer, term) => Ok((answer, term)),
            ReadDone::OnView(read) if is_small(&read.read) => Ok(on_view(&read)),
            ReadDone::OnView(read) => tokio::task::spawn_blocking(move || on_view(&read))
                .await
                .map_err(|_| NodeError::Stopped),
        }
    }
}

fn on_view(read: &member::ViewRead) -> (Result<KvReadResponse, kv::KvError>, u64) {
    (read.view.read(&read.read), read.term)
}

/// Whether a read is cheap enough to serve on a runtime thread: a single key, a range with a
/// small limit or count only, or a lease or auth query.
fn is_small(read: &KvRead) -> bool {
    match read {
        KvRead::Range(r) => {
            r.range_end.is_empty() || (1..=INLINE_RANGE_KEYS_MAX).contains(&r.limit)
        }
        KvRead::As { read, .. } => is_small(read),
        KvRead::LeaseTimeToLive { .. } | KvRead::LeaseLeases | KvRead::Auth(_) => true,
        KvRead::Watch(_) => true,
    }
}

/// A question from a gRPC handler.
pub enum Request {
    /// Propose an encoded [`kv::KvCommand`]; answer once applied here.
    Write {
        /// The encoded command.
        payload: Vec<u8>,
        /// Whether it can add data (a put or a txn): refused while the quota alarm is raised.
        grows: bool,
        /// Its span's trace context, when spans are exported (carried if it is forwarded).
        trace: Option<crate::peer::TraceContext>,
        /// Where the outcome goes.
        reply: oneshot::Sender<Result<(KvOutput, u64), NodeError>>,
    },
    /// Serve a read; linearizable ones go through read-index first.
    Read {
        /// The read.
        read: KvRead,
        /// Read-index first (etcd's default), or answer from what is applied here.
        linearizable: bool,
        /// Where the answer goes.
        reply: ReadReply,
    },
    /// etcd's HashKV: the hash of the applied history through `revision` (0: the current
    /// one), as etcd's `HashByRev` computes it (`kv::KvView::hash_by_revision`).
    HashKv {
        /// The revision to hash through.
        revision: i64,
        /// Where the hash goes (or the store's refusal of `revision`).
        reply: HashReply,
    },
    /// Seconds left before a lease expires, by this member's clock (`None`: no such lease).
    LeaseRemaining {
        /// The lease.
        id: i64,
        /// Where it goes.
        reply: oneshot::Sender<Option<i64>>,
    },
    /// Renew a lease (a keep-alive), at the leader without a log write: its granted TTL,
    /// `None` if there is no such lease or it ran out.
    LeaseKeepAlive {
        /// The lease.
        id: i64,
        /// Where it goes.
        reply: oneshot::Sender<Result<member::LeaseRenewed, NodeError>>,
    },
    /// Hand the lead to member `target` (`Maintenance.MoveLeader`); answered once this member
    /// sees `target` lead, or refused if this member does not lead.
    MoveLeader {
        /// The member id to lead next.
        target: u64,
        /// Where the outcome goes.
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    /// Snapshot now and free the log it covers (`Maintenance.Defragment`).
    Defragment {
        /// Where the outcome goes.
        reply: oneshot::Sender<Result<(), NodeError>>,
    },
    /// Take a backup of the state applied here (`Maintenance.Snapshot`).
    Backup {
        /// Where it goes.
        reply: oneshot::Sender<Result<crate::backup::Backup, NodeError>>,
    },
    /// Report the member's state.
    Status {
        /// Where it goes.
        reply: oneshot::Sender<Status>,
    },
    /// `MemberList` (linearizable).
    MemberList {
        /// Where it goes.
        reply: MembersReply,
    },
    /// `MemberAdd`, `MemberPromote`, `MemberRemove`, `MemberUpdate`.
    Cluster {
        /// The change.
        change: ClusterChange,
        /// Where the members after it go.
        reply: MembersReply,
    },
    /// Name the sender of a client's request from its credential, against the auth tables
    /// and simple tokens applied here (and, if `admin`, check it may do admin operations).
    /// Answered at once, without the member: it reads the applied store only.
    Resolve {
        /// What the client presented.
        credential: crate::auth::Credential,
        /// Whether the request needs the `root` role.
        admin: bool,
        /// Where the sender goes.
        reply: oneshot::Sender<Result<kv::Caller, kv::AuthError>>,
    },
}

/// Where a HashKV answer goes: the node's failure, or the store's hash or refusal.
pub type HashReply = oneshot::Sender<Result<Result<kv::RevisionHash, kv::KvError>, NodeError>>;

/// Where an answer goes, by the kind of request.
enum Reply {
    Write(oneshot::Sender<Result<(KvOutput, u64), NodeError>>),
    Read(ReadReply),
    HashKv(i64, HashReply),
    LeaseRemaining(oneshot::Sender<Option<i64>>),
    LeaseKeepAlive(oneshot::Sender<Result<member::LeaseRenewed, NodeError>>),
    MoveLeader(oneshot::Sender<Result<(), NodeError>>),
    Defragment(oneshot::Sender<Result<(), NodeError>>),
    Backup(oneshot::Sender<Result<Backup, NodeError>>),
    Status(oneshot::Sender<Status>),
    Members(MembersReply),
}

/// A gRPC handler's request as the member's input, and where its answer goes.
fn split(r: Request) -> (member::Request, Reply) {
    use member::Request as M;
    match r {
        Request::Write {
            payload,
            grows,
            trace: _,
            reply,
        } => (M::Write { payload, grows }, Reply::Write(reply)),
        Request::Read {
            read,
            linearizable,
            reply,
        } => (M::Read { read, linearizable }, Reply::Read(reply)),
        Request::HashKv { revision, reply } => (M::HashKv, Reply::HashKv(revision, reply)),
        Request::LeaseRemaining { id, reply } => {
            (M::LeaseRemaining { id }, Reply::LeaseRemaining(reply))
        }
        Request::LeaseKeepAlive { id, reply } => {
            (M::LeaseKeepAlive { id }, Reply::LeaseKeepAlive(reply))
        }
        Request::MoveLeader { target, reply } => {
            (M::MoveLeader { target }, Reply::MoveLeader(reply))
        }
        Request::Defragment { reply } => (M::Defragment, Reply::Defragment(reply)),
        Request::Backup { reply } => (M::Backup, Reply::Backup(reply)),
        Request::Status { reply } => (M::Status, Reply::Status(reply)),
        Request::MemberList { reply } => (M::MemberList, Reply::Members(reply)),
        Request::Cluster { change, reply } => (M::Cluster(change), Reply::Members(reply)),
        // `Core::on_request` answers these itself and never splits one.
        Request::Resolve { .. } => unreachable!("a Resolve is answered before split"),
    }
}

/// Whole-store work (HashKV's digest, a backup's encoding and SHA-256) running at once off the
/// core, at most: each holds a view of the store, which keeps the nodes the store has since
/// replaced alive until it ends, so the bound is also one on memory. More are refused as "too
/// many requests".
const WHOLE_STORE_JOBS_MAX: usize = 4;

/// Runs `work`, a pass over the whole store (on a view the member handed out), on a thread of
/// lower priority ([`crate::background`]), so the core's task goes on applying and answering;
/// its outcome goes to `tx`.
fn off_core<T: Send + 'static>(
    jobs: &Arc<Semaphore>,
    tx: oneshot::Sender<Result<T, NodeError>>,
    work: impl FnOnce() -> Result<T, NodeError> + Send + 'static,
) {
    let Ok(permit) = jobs.clone().try_acquire_owned() else {
        let _ = tx.send(Err(NodeError::TooManyRequests));
        return;
    };
    crate::background::spawn("synod-whole-store", move || {
        let _ = tx.send(work());
        drop(permit);
    });
}

impl Reply {
    /// Sends the member's answer (a handler that gave up is not waiting: ignored). Answers
    /// that still need a pass over the whole store (HashKV, a backup) get it off the core,
    /// bounded by `jobs`.
    fn answer(self, answer: Answer, jobs: &Arc<Semaphore>) {
        match (self, answer) {
            (Reply::Write(tx), Answer::Write(a)) => {
                let _ = tx.send(a.map_err(NodeError::from));
            }
            (Reply::Read(tx), Answer::Read(a)) => {
                let done = a.map(|(answer, term)| ReadDone::Served(answer, term));
                let _ = tx.send(done.map_err(NodeError::from));
            }
            (Reply::Read(tx), Answer::ReadOnView(read)) => {
                let _ = tx.send(Ok(ReadDone::OnView(read)));
            }
            (Reply::HashKv(revision, tx), Answer::HashKv(h)) => off_core(jobs, tx, move || {
                Ok(h.view
                    .hash_by_revision(revision, crate::convert::marshal_key_value))
            }),
            (Reply::LeaseRemaining(tx), Answer::LeaseRemaining(a)) => {
                let _ = tx.send(a);
            }
            (Reply::LeaseKeepAlive(tx), Answer::LeaseKeepAlive(a)) => {
                let _ = tx.send(a.map_err(NodeError::from));
            }
            (Reply::MoveLeader(tx), Answer::MoveLeader(a)) => {
                let _ = tx.send(a.map_err(NodeError::from));
            }
            (Reply::Defragment(tx), Answer::Defragment(a)) => {
                let _ = tx.send(a.map_err(NodeError::from));
            }
            (Reply::Backup(tx), Answer::Backup(Ok(body))) => off_core(jobs, tx, move || {
                crate::backup::wrap(body).map_err(|e| NodeError::Snapshot(e.to_string()))
            }),
            (Reply::Backup(tx), Answer::Backup(Err(e))) => {
                let _ = tx.send(Err(e.into()));
            }
            (Reply::Status(tx), Answer::Status(s)) => {
                let _ = tx.send(s);
            }
            (Reply::Members(tx), Answer::Members(a)) => {
                let _ = tx.send(a.map_err(NodeError::from));
            }
            (_, answer) => {
                debug_assert!(false, "an answer of another kind: {answer:?}");
                tracing::error!(
                    ?answer,
                    "the member answered a request with another kind of answer"
                );
            }
        }
    }

    /// Fails a waiting request (the member stops). Requests without an error answer are
    /// answered at once by the member, so never wait here.
    fn fail(self, e: NodeError) {
        match self {
            Reply::Write(tx) => {
                let _ = tx.send(Err(e));
            }
            Reply::Read(tx) => {
                let _ = tx.send(Err(e));
            }
            Reply::MoveLeader(tx) | Reply::Defragment(tx) => {
                let _ = tx.send(Err(e));
            }
            Reply::Backup(tx) => {
                let _ = tx.send(Err(e));
            }
            Reply::HashKv(_, tx) => {
                let _ = tx.send(Err(e));
            }
            Reply::Members(tx) => {
                let _ = tx.send(Err(e));
            }
            Reply::LeaseKeepAlive(tx) => {
                let _ = tx.send(Err(e));
            }
            Reply::LeaseRemaining(_) | Reply::Status(_) => {}
        }
    }
}

/// What the driver is built from.
#[allow(missing_docs)]
pub struct CoreParts {
    pub replica: Replica,
    pub applier: Applier<KvStore>,
    pub rng: ChaCha8Rng,
    pub transport: TransportHandle,
    pub wal: GroupCommit<StdFs>,
    pub members: Vec<u64>,
    pub tick: Duration,
    pub request_timeout: Duration,
    /// The longest election timeout, jitter included (a new leader adds it to every lease).
    pub election_timeout: Duration,
    pub quota_bytes: u64,
    pub client_urls: Vec<String>,
    pub snapshots: SnapshotFiles,
    pub snapshot_every_slots: u64,
    /// Bytes of the store's part of the snapshot restored at start (the db size).
    pub restored_bytes: u64,
    /// A random number, different on every start, so this incarnation's session ids are new.
    pub incarnation: u64,
    /// Test-only: abort the Nth time this point is reached.
    pub crash_at: Option<(CrashPoint, u32)>,
    /// Where the store's applied revision is published, for watchers.
    pub applied_revision: watch::Sender<i64>,
    /// Every applied batch's changes, for watchers in step ([`AppliedChanges`]).
    pub applied_changes: broadcast::Sender<Arc<AppliedChanges>>,
    /// The member table to start from (the snapshot's, else the initial cluster's).
    pub table: member::cluster::MemberTable,
    /// This member's name (`--name`), published into the table once it is a member.
    pub name: String,
    /// Set once this member learns it was removed from the cluster.
    pub removed: watch::Sender<bool>,
    /// Where the member's figures go (`metrics.rs`).
    pub metrics: Arc<Metrics>,
}

/// A lease not renewed for this long has its remaining time checkpointed through the log, so
/// a leader change never stretches a lease by more than this plus an election timeout (see
/// `member/lease_renewal.rs`). Leases renewed more often (etcd's clients renew every third of
/// the TTL: any TTL up to 3 minutes) cost no log write at all.
const LEASE_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(60);

/// A request the member has not answered yet: where its answer goes, and since when it waits.
struct Waiting {
    reply: Reply,
    since: Instant,
}

impl Reply {
    fn kind(&self) -> RequestKind {
        match self {
            Reply::Write(_) => RequestKind::Write,
            Reply::Read(_) => RequestKind::Read,
            _ => RequestKind::Other,
        }
    }
}

/// The driver's state. See the module doc.
pub struct Core {
    member: Member,
    transport: TransportHandle,
    wal: Option<GroupCommit<StdFs>>,
    tick: Duration,
    /// The member's time is microseconds since this.
    start: Instant,
    /// Requests the member has not answered yet, by id. Bounded by the member's own bounds on
    /// what waits (sessions, reads, transfers, defragments); other requests are answered
    /// within the input that brought them.
    replies: HashMap<RequestId, Waiting>,
    next_request: u64,
    /// The log refused a write or a sync: nothing more goes to it.
    log_failed: bool,
    snapshots: SnapshotFiles,
    /// The store's applied revision, for watchers.
    applied_revision: watch::Sender<i64>,
    applied_changes: broadcast::Sender<Arc<AppliedChanges>>,
    /// Snapshot writes report here when they end (see `SnapshotFiles::write`).
    snapshot_done: mpsc::UnboundedSender<SnapshotWritten>,
    snapshot_done_rx: Option<mpsc::UnboundedReceiver<SnapshotWritten>>,
    /// Received snapshots decoded off the core report here (see `SnapshotFiles::decode`; the
    /// member asks for one at a time).
    snapshot_decoded: mpsc::UnboundedSender<SnapshotDecoded>,
    snapshot_decoded_rx: Option<mpsc::UnboundedReceiver<SnapshotDecoded>>,
    /// A snapshot is being encoded and written on a blocking thread (one at a time).
    snapshot_writing: bool,
    removed: watch::Sender<bool>,
    observer: Observer,
    /// Whole-store work running off the core (see [`WHOLE_STORE_JOBS_MAX`]).
    whole_store_jobs: Arc<Semaphore>,
    /// Trace contexts of waiting writes, sent with their forwards (`otel.rs`; empty when
    /// spans are not exported).
    forward_traces: crate::otel::ForwardTraces,
    /// The spans of forwarded writes taken in this turn: they end once its outputs are done.
    turn_spans: Vec<tracing::Span>,
}

/// One thing the driver's loop woke up for.
enum Event {
    Stop,
    Durable(Completion),
    SnapshotWritten(SnapshotWritten),
    /// Boxed: the decoded store is far larger than the other events.
    SnapshotDecoded(Box<SnapshotDecoded>),
    /// A snapshot lane's report: a chunk stored or read off the core.
    SnapshotIo(SnapshotIo),
    Peers(Vec<Inbound>),
    Requests(Vec<Request>),
    Tick,
}

impl Core {
    /// Builds the driver.
    pub fn new(parts: CoreParts) -> Core {
        let (snapshot_done, snapshot_done_rx) = mpsc::unbounded_channel();
        let (snapshot_decoded, snapshot_decoded_rx) = mpsc::unbounded_channel();
        let start = Instant::now();
        let member = Member::new(
            MemberParts {
                replica: parts.replica,
                applier: parts.applier,
                rng: Box::new(parts.rng),
                incarnation: parts.incarnation,
                newest_snapshot: parts.snapshots.newest_through(),
                restored_bytes: parts.restored_bytes,
                options: MemberOptions {
                    members: parts.members,
                    tick: parts.tick,
                    request_timeout: parts.request_timeout,
                    quota_bytes: parts.quota_bytes,
                    client_urls: parts.client_urls,
                    snapshot_every_slots: parts.snapshot_every_slots,
                    crash_at: parts.crash_at.map(|(p, n)| (p.into(), n)),
                    table: parts.table,
                    name: parts.name,
                    lease_checkpoint_interval: LEASE_CHECKPOINT_INTERVAL,
                    election_timeout: parts.election_timeout,
                },
            },
            Micros::ZERO,
        );
        Core {
            member,
            transport: parts.transport,
            wal: Some(parts.wal),
            tick: parts.tick,
            start,
            replies: HashMap::new(),
            next_request: 1,
            log_failed: false,
            snapshots: parts.snapshots,
            applied_revision: parts.applied_revision,
            applied_changes: parts.applied_changes,
            snapshot_done,
            snapshot_done_rx: Some(snapshot_done_rx),
            snapshot_decoded,
            snapshot_decoded_rx: Some(snapshot_decoded_rx),
            snapshot_writing: false,
            removed: parts.removed,
            observer: Observer::new(parts.metrics),
            whole_store_jobs: Arc::new(Semaphore::new(WHOLE_STORE_JOBS_MAX)),
            forward_traces: Default::default(),
            turn_spans: Vec::new(),
        }
    }

    /// The member's time: microseconds since this driver was built.
    fn now(&self) -> Micros {
        Micros(u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX))
    }

    /// Runs until `stop` fires or the request channel closes; then fails what waits, drains
    /// the log (every submitted batch synced) and returns.
    pub async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut requests: mpsc::Receiver<Request>,
        mut durable: mpsc::UnboundedReceiver<Completion>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Core {
        let mut snapshot_done = self
            .snapshot_done_rx
            .take()
            .expect("a core runs once: the snapshot channel is there");
        let mut snapshot_decoded = self
            .snapshot_decoded_rx
            .take()
            .expect("a core runs once: the decode channel is there");
        let mut snapshot_io = self
            .snapshots
            .take_io()
            .expect("a core runs once: the snapshot lanes' channel is there");
        let mut ticker = tokio::time::interval(self.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The member's first outputs introduce it to the others.
        self.drive();
        loop {
            // Unbiased: a flood of peer messages or requests must not starve the tick (the
            // leader's heartbeats and every member's election timer live there).
            let event = tokio::select! {
                _ = stop.wait_for(|s| *s) => Event::Stop,
                Some(c) = durable.recv() => Event::Durable(c),
                Some(w) = snapshot_done.recv() => Event::SnapshotWritten(w),
                Some(d) = snapshot_decoded.recv() => Event::SnapshotDecoded(Box::new(d)),
                Some(io) = snapshot_io.recv() => Event::SnapshotIo(io),
                Some(m) = inbound.recv() => Event::Peers(take_more(m, &mut inbound)),
                r = requests.recv() => match r {
                    Some(r) => Event::Requests(take_more(r, &mut requests)),
                    None => Event::Stop,
                },
                _ = ticker.tick() => Event::Tick,
            };
            self.member
                .set_sharing_changes(self.applied_changes.receiver_count() > 0);
            let now = self.now();
            let started = std::time::Instant::now();
            let applied_before = self.member.applier().applied_through();
            let tick = matches!(event, Event::Tick);
            match event {
                Event::Stop => break,
                Event::Durable(c) => self.on_durable(now, c),
                Event::SnapshotWritten(w) => {
                    self.snapshot_writing = false;
                    let (through, result) = self.snapshots.written(w);
                    self.member.on_snapshot_written(now, through, result);
                }
                Event::SnapshotDecoded(d) => {
                    let SnapshotDecoded { through, result } = *d;
                    self.member.on_snapshot_decoded(now, through, result)
                }
                Event::SnapshotIo(io) => self.on_snapshot_io(now, io),
                Event::Peers(m) => self.on_peers(now, m),
                Event::Requests(r) => self.on_requests(now, r),
                Event::Tick => self.member.tick(now),
            }
            self.drive();
            self.turn_spans.clear();
            self.observer.after_input(&self.member);
            self.observer.input_handled(
                started.elapsed(),
                self.member.applier().applied_through() > applied_before,
            );
            if tick {
                self.observer.on_tick(&self.member);
                for to in self.observer.probes_due(&self.member) {
                    self.send(to, &PeerMessage::Probe);
                }
            }
        }
        // A snapshot still being encoded or written ends first: its thread renames its file
        // in and removes older ones, which must not happen under a member started next on the
        // same directory (in this process) after it recovered the older one as the newest.
        if self.snapshot_writing {
            if let Some(w) = snapshot_done.recv().await {
                self.snapshot_writing = false;
                let (through, result) = self.snapshots.written(w);
                tracing::debug!(
                    through = through.0,
                    ?result,
                    "a snapshot write ended at stop"
                );
            }
        }
        // The lanes end after their jobs: a chunk being stored may be finishing its file.
        tokio::task::block_in_place(|| self.snapshots.stop());
        for (_, waiting) in self.replies.drain() {
            if waiting.reply.kind() == RequestKind::Write {
                self.observer
                    .answered(RequestKind::Write, waiting.since.elapsed(), true, None);
            }
            waiting.reply.fail(NodeError::Stopped);
        }
        if let Some(wal) = self.wal.take() {
            if let Err(e) = tokio::task::block_in_place(|| wal.shutdown()) {
                tracing::error!(error = %e, "log shutdown failed");
            }
        }
        self
    }

    /// Shuts the transport down.
    pub async fn close(self) {
        self.transport.shutdown().await;
    }

    /// Requests that arrived together go to the member together (`Member::on_requests`).
    fn on_requests(&mut self, now: Micros, batch: Vec<Request>) {
        let since = Instant::now();
        let mut requests = Vec::with_capacity(batch.len());
        let mut traced = Vec::new();
        for r in batch {
            if let Request::Resolve {
                credential,
                admin,
                reply,
            } = r
            {
                let store = self.member.applier().machine();
                let _ = reply.send(crate::auth::resolve(store, &credential, admin));
                continue;
            }
            let id = RequestId(self.next_request);
            self.next_request += 1;
            if let Request::Write {
                trace: Some(trace), ..
            } = &r
            {
                traced.push((id, *trace));
            }
            let (request, reply) = split(r);
            if reply.kind() == RequestKind::Write {
                self.observer.write_taken();
            }
            self.replies.insert(id, Waiting { reply, since });
            requests.push((id, request));
        }
        if !requests.is_empty() {
            self.member.on_requests(now, requests);
            self.forward_traces.track(&self.member, traced);
        }
    }

    /// Peer messages that arrived together go to the member together (`Member::on_peers`).
    fn on_peers(&mut self, now: Micros, batch: Vec<Inbound>) {
        let mut messages = Vec::with_capacity(batch.len());
        for m in batch {
            self.observer.received(m.from, m.bytes.len());
            match peer::decode(&m.bytes) {
                Ok(msg) => {
                    match &msg {
                        // The answer to the round-trip probe `probes_due` sent.
                        PeerMessage::ProbeReply { .. } => self.observer.probe_answered(m.from),
                        PeerMessage::ForwardsTraced { traces, .. } => {
                            for (command, trace) in traces {
                                self.turn_spans
                                    .push(crate::otel::forwarded_span(trace, m.from, *command));
                            }
                        }
                        _ => {}
                    }
                    messages.push((m.from, msg))
                }
                Err(e) => tracing::warn!(from = m.from, error = %e, "refused a peer message"),
            }
        }
        if !messages.is_empty() {
            self.member.on_peers(now, messages);
        }
    }

    /// A snapshot lane reports: a received chunk stored (the member hears what storage did),
    /// or a chunk read for a member it serves (sent).
    fn on_snapshot_io(&mut self, now: Micros, io: SnapshotIo) {
        match io {
            SnapshotIo::Stored { transfer, result } => {
                let stored = self.snapshots.stored(result);
                self.member.on_snapshot_chunk_stored(now, transfer, stored);
            }
            SnapshotIo::Read { to, chunk } => {
                self.snapshots.read_done();
                if let Some(chunk) = chunk {
                    self.observer.snapshot_sent(chunk.len());
                    self.send(to, &PeerMessage::SnapshotChunk(chunk));
                }
            }
        }
    }

    fn on_durable(&mut self, now: Micros, c: Completion) {
        match c {
            Completion::Durable { tag } => self.member.on_durable(now, tag),
            Completion::Failed { tag, error } => {
                // An fsync error is not retryable: nothing after it may be reported durable.
                tracing::error!(tag, error = %error, "the log failed");
                self.log_failed = true;
                self.member.on_log_failed(now, error.to_string());
            }
        }
    }

    fn send(&mut self, to: u64, msg: &PeerMessage) {
        match peer::encode(msg) {
            Ok(bytes) => self.send_encoded(to, bytes),
            Err(e) => tracing::error!(error = %e, "could not encode a peer message"),
        }
    }

    fn send_encoded(&mut self, to: u64, bytes: Bytes) {
        self.observer.sent(to, bytes.len());
        // A full queue drops the message; the protocol re-sends what matters.
        if let Ok(transport::SendOutcome::Dropped) = self.transport.send(to, bytes) {
            self.observer.send_failed(to);
        }
    }

    /// Does what the member asks, in its order, until it asks nothing.
    fn drive(&mut self) {
        // The last message sent and its encoding: a broadcast (an Accept to every
        // follower) comes out as the same message once per member, in a row, so each
        // after the first is sent as the first one's bytes (shared, not copied) instead of
        // being encoded again. Equality is checked, never assumed.
        let mut last_sent: Option<(PeerMessage, Bytes)> = None;
        while let Some(output) = self.member.poll_output() {
            match output {
                Output::Persist { tag, ops } => self.persist(tag, ops),
                Output::Send { to, message } => match self.forward_traces.tag(&message) {
                    Some(traced) => self.send(to, &traced),
                    None => match last_sent.take() {
                        Some((last, bytes)) if last == message => {
                            self.send_encoded(to, bytes.clone());
                            last_sent = Some((last, bytes));
                        }
                        _ => match peer::encode(&message) {
                            Ok(bytes) => {
                                self.send_encoded(to, bytes.clone());
                                last_sent = Some((message, bytes));
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "could not encode a peer message")
                            }
                        },
                    },
                },
                Output::ServeSnapshotChunk {
                    to,
                    through,
                    offset,
                } => self.snapshots.serve(to, through, offset),
                Output::StoreSnapshotChunk { transfer, chunk } => {
                    self.observer.snapshot_received(chunk.data.len());
                    // Stored off the core; only a refusal (the lane is full) answers now.
                    if let Some(refused) = self.snapshots.store(transfer, chunk) {
                        let now = self.now();
                        self.member.on_snapshot_chunk_stored(now, transfer, refused);
                    }
                }
                Output::WriteSnapshot {
                    through,
                    body,
                    crash_mid,
                } => {
                    self.snapshot_writing = true;
                    self.snapshots
                        .write(through, body, crash_mid, self.snapshot_done.clone());
                }
                Output::DecodeSnapshot { through } => self
                    .snapshots
                    .decode(through, self.snapshot_decoded.clone()),
                Output::CompactLog { through } => self.compact_log(through),
                Output::Answer { id, answer } => match self.replies.remove(&id) {
                    Some(Waiting { reply, since }) => {
                        self.forward_traces.answered(id);
                        let failed = matches!(answer, member::Answer::Write(Err(_)));
                        let waited = since.elapsed();
                        // Only a slow write's stages are looked up, and only then logged.
                        let trace = (waited > crate::metrics::SLOW_REQUEST)
                            .then(|| self.member.slow_write_trace(id))
                            .flatten()
                            .map(|t| (t, self.now()));
                        self.observer.answered(reply.kind(), waited, failed, trace);
                        reply.answer(answer, &self.whole_store_jobs);
                    }
                    // Only the member's own requests (none today) have no reply here.
                    None => tracing::debug!(?id, "an answer nobody waits for"),
                },
                Output::AppliedChanges(changes) => {
                    let _ = self.applied_changes.send(Arc::new(changes));
                }
                Output::AppliedRevision(revision) => {
                    self.applied_revision.send_if_modified(|published| {
                        debug_assert!(revision >= *published, "the applied revision went back");
                        let moved = revision != *published;
                        *published = revision;
                        moved
                    });
                }
                Output::Crash(point) => {
                    eprintln!("synod: test crash point {point:?} reached; aborting");
                    std::process::abort();
                }
                Output::Peers(peers) => self.set_peers(&peers),
                Output::Removed => {
                    tracing::warn!(
                        member = format!("{:x}", self.member.id()),
                        "this member was removed from the cluster; stopping (its data directory \
                         must not be reused: add the machine back as a new member with an empty one)"
                    );
                    self.removed.send_replace(true);
                }
            }
        }
    }

    /// The transport reaches exactly `peers` (member id → peer URLs; the first URL that
    /// parses is dialled): members added at run time are dialled, removed ones dropped.
    fn set_peers(&mut self, peers: &std::collections::BTreeMap<u64, Vec<String>>) {
        let wanted: std::collections::BTreeMap<u64, std::net::SocketAddr> = peers
            .iter()
            .filter_map(|(id, urls)| {
                let addr = urls
                    .iter()
                    .find_map(|u| crate::config::url_addr("--peer-urls", u).ok());
                if addr.is_none() {
                    tracing::warn!(member = format!("{id:x}"), ?urls, "no peer URL to dial");
                }
                Some((*id, addr?))
            })
            .collect();
        for id in self.transport.peers().keys() {
            if !wanted.contains_key(id) {
                tracing::info!(
                    member = format!("{id:x}"),
                    "no longer a peer: disconnecting"
                );
                self.transport.remove_peer(*id);
            }
        }
        for (id, addr) in wanted {
            if self.transport.peers().get(&id) != Some(&addr) {
                tracing::info!(member = format!("{id:x}"), %addr, "a new peer: connecting");
                if let Err(e) = self.transport.add_peer(id, addr) {
                    tracing::warn!(member = format!("{id:x}"), error = %e, "cannot add the peer");
                }
            }
        }
    }

    fn persist(&mut self, tag: u64, ops: Vec<paxos::multi::PersistOp>) {
        if self.log_failed {
            return;
        }
        let Some(wal) = &self.wal else { return };
        // Without waiting when the queue has room (nearly always): `block_in_place` hands
        // this worker's other tasks to another thread, a cost paid per persist record that
        // showed as a quarter of a loaded member's CPU. Only a full queue (the disk is behind:
        // backpressure) waits.
        let result = match wal.try_submit(ops, tag) {
            Ok(None) => Ok(()),
            Ok(Some(ops)) => tokio::task::block_in_place(|| wal.submit(ops, tag)),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "could not submit to the log");
            self.log_failed = true;
            let now = self.now();
            self.member.on_log_failed(now, e.to_string());
        }
    }

    /// A durable snapshot covers `through`: the log's segments before it may go (a failed
    /// compaction only keeps segments longer).
    fn compact_log(&self, through: Slot) {
        // The member compacts only through a snapshot it was told is durable; the files must
        // agree, or the slots compacted away would be nowhere.
        assert!(
            self.snapshots.newest_through() >= Some(through),
            "compacting the log through {through} with no snapshot file covering it (newest {:?})",
            self.snapshots.newest_through()
        );
        if let Some(wal) = &self.wal {
            if let Err(e) = wal.compact(through) {
                tracing::warn!(error = %e, "log compaction failed; the log keeps its segments");
            }
        }
    }
}

/// `first`, then whatever else already waits in `rx`, up to [`INPUTS_PER_TURN_MAX`] in all.
/// Never waits: only what has arrived goes into this turn.
fn take_more<T>(first: T, rx: &mut mpsc::Receiver<T>) -> Vec<T> {
    // Sized for what waits now, so a turn's list is one allocation, not grown by doubling
    // from one (a profile showed that growth once per turn).
    let mut batch = Vec::with_capacity((1 + rx.len()).min(INPUTS_PER_TURN_MAX));
    batch.push(first);
    while batch.len() < INPUTS_PER_TURN_MAX {
        match rx.try_recv() {
            Ok(more) => batch.push(more),
            Err(_) => break,
        }
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_takes_what_waits_and_no_more_than_its_bound() {
        let (tx, mut rx) = mpsc::channel(2 * INPUTS_PER_TURN_MAX);
        for i in 1..=(INPUTS_PER_TURN_MAX + 10) {
            tx.try_send(i).expect("room");
        }
        let turn = take_more(0, &mut rx);
        assert_eq!(turn.len(), INPUTS_PER_TURN_MAX);
        assert_eq!(
            turn,
            (0..INPUTS_PER_TURN_MAX).collect::<Vec<_>>(),
            "in order"
        );
        let next = take_more(0, &mut rx);
        assert_eq!(
            next.len(),
            1 + 11,
            "the first, the rest, and nothing invented"
        );
        assert_eq!(
            take_more(7, &mut rx),
            vec![7],
            "an empty channel adds nothing"
        );
    }

    /// The member encodes its envelope itself (it cannot depend on the transport); the bytes
    /// must be the transport codec's, so members of both builds understand each other.
    #[test]
    fn the_member_envelope_is_the_transport_codecs_bytes() {
        for m in peer::samples() {
            let ours = peer::encode(&m).expect("encodes");
            let transport = transport::codec::encode_value(&m).expect("encodes");
            assert_eq!(ours, transport);
            assert_eq!(
                transport::codec::decode_value::<PeerMessage>(&ours).expect("decodes"),
                m
            );
        }
    }
}
