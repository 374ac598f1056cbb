//! The driver: one task that owns the Paxos [`Replica`] and the applied key-value store, and
//! does what the replica's [`paxos::multi::Ready`] says, in its order: hand the persist batch
//! to the group-commit thread, send the messages, apply the chosen slots, answer clients.
//!
//! Everything that touches the replica or the store happens on this one task, so there is no
//! lock around either; gRPC handlers talk to it through a bounded channel and wait on a
//! oneshot for their answer.

use crate::config::CrashPoint;
use crate::error::NodeError;
use crate::lease_clock::LeaseClocks;
use crate::peer::{self, PeerMessage};
use crate::snapshot::{NodeSnapshot, SnapshotState, SnapshotWritten};
use bytes::Bytes;
use kv::{KvCommand, KvOutput, KvRead, KvReadResponse, KvResponse, KvStore, LeaseRevokeRequest};
use paxos::multi::{
    Applied, Applier, ChosenEntry, ClientId, Command, CommandId, PersistOp, ProposeError, ReadId,
    ReadOutcome, Replica, Role, SessionOutcome, Value,
};
use paxos::{NodeId, PersistSeq, Slot};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use storage::group::{Completion, GroupCommit};
use storage::StdFs;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use transport::{Inbound, TransportHandle};

/// Sessions (client ids) a member proposes under at once: each carries one write in flight.
const SESSIONS: u64 = 4096;
/// A persist batch whose values add up to more than this is written one op per record, so
/// every record stays below the log's record limit.
const RECORD_SPLIT_BYTES: usize = 4 << 20;
/// Re-send a forwarded write or a read-index request this often while it waits.
const RESEND_EVERY: Duration = Duration::from_millis(500);
/// Leadership transfers waiting at once on one member (each is an operator's MoveLeader).
const TRANSFERS_MAX: usize = 16;

/// Where a read's answer goes: the store's answer (or refusal) and the ballot round, or why
/// the node could not serve it.
pub type ReadReply = oneshot::Sender<Result<(Result<KvReadResponse, kv::KvError>, u64), NodeError>>;

/// A question from a gRPC handler.
pub enum Request {
    /// Propose an encoded [`kv::KvCommand`]; answer once applied here.
    Write {
        /// The encoded command.
        payload: Vec<u8>,
        /// Whether it can add data (a put or a txn): refused while the quota alarm is raised.
        grows: bool,
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
    /// Hash the whole applied state (chaos checks compare members at equal applied slots).
    HashKv {
        /// (digest of the store, slot applied through, store revision, compact revision).
        reply: oneshot::Sender<(u64, u64, i64, i64)>,
    },
    /// Seconds left before a lease expires, by this member's clock (`None`: no such lease).
    LeaseRemaining {
        /// The lease.
        id: i64,
        /// Where it goes.
        reply: oneshot::Sender<Option<i64>>,
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
}

/// The changes of every key between two revisions, with previous versions: what one batch of
/// applied slots changed, read once by the core and shared by every watcher that has seen
/// exactly the revisions before it ([`kv::WatchRead::select`] picks each one's part). A watcher
/// out of step ignores it and reads for itself, so one that lags or misses some never skips
/// or repeats a change.
#[derive(Debug)]
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

/// Most events, and bytes of keys and values, in one [`AppliedChanges`]; a batch that changed
/// more is not shared (its watchers read), which bounds what slow streams hold.
const SHARED_EVENTS_MAX: usize = 4096;
const SHARED_BYTES_MAX: usize = 1 << 20;

/// What `Maintenance.Status` and the member list need.
#[derive(Clone, Debug, Default)]
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
    /// Whether the storage quota alarm is raised.
    pub no_space: bool,
    /// Whether this member votes (false while rebuilding after a lost disk).
    pub voting: bool,
    /// Client URLs each member announced, by member id.
    pub client_urls: BTreeMap<u64, Vec<String>>,
    /// A storage failure that stopped this member's writes, if any.
    pub storage_error: Option<String>,
}

struct PendingWrite {
    command: Command,
    reply: oneshot::Sender<Result<(KvOutput, u64), NodeError>>,
    deadline: Instant,
    resend_at: Instant,
}

/// A leadership transfer this member (the leader when it began) waits on.
struct Transfer {
    target: u64,
    reply: oneshot::Sender<Result<(), NodeError>>,
    deadline: Instant,
    resend_at: Instant,
}

struct PendingRead {
    read: KvRead,
    reply: ReadReply,
    deadline: Instant,
    resend_at: Instant,
    /// Confirmed by the leader: serve once applied through this slot.
    confirmed: Option<Slot>,
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
    pub quota_bytes: u64,
    pub client_urls: Vec<String>,
    pub snapshots: SnapshotState,
    /// A random number, different on every start, so this incarnation's session ids are new.
    pub incarnation: u64,
    /// Test-only: abort the Nth time this point is reached.
    pub crash_at: Option<(CrashPoint, u32)>,
    /// Where the store's applied revision is published, for watchers.
    pub applied_revision: watch::Sender<i64>,
    /// Every applied batch's changes, for watchers in step ([`AppliedChanges`]).
    pub applied_changes: broadcast::Sender<Arc<AppliedChanges>>,
}

/// The driver's state. See the module doc.
pub struct Core {
    replica: Replica,
    applier: Applier<KvStore>,
    rng: ChaCha8Rng,
    transport: TransportHandle,
    wal: Option<GroupCommit<StdFs>>,
    members: Vec<u64>,
    tick: Duration,
    request_timeout: Duration,
    quota_bytes: u64,
    /// Submission tags handed to the commit thread, and which persist batch each completes.
    next_tag: u64,
    batch_tags: VecDeque<(u64, PersistSeq)>,
    storage_error: Option<String>,
    /// Free sessions, and each session's last sequence number.
    free_sessions: Vec<u64>,
    session_seq: Vec<u64>,
    session_base: u64,
    writes: HashMap<CommandId, PendingWrite>,
    reads: HashMap<ReadId, PendingRead>,
    /// Reads this member (as leader) confirms for others: local read id → (asker, its id).
    remote_reads: HashMap<ReadId, (u64, ReadId)>,
    next_read: u64,
    client_urls: BTreeMap<u64, Vec<String>>,
    my_client_urls: Vec<String>,
    snapshots: SnapshotState,
    /// Rough bytes of the store (etcd's db size, checked against the quota): the newest
    /// snapshot's size plus every command payload applied since. Deletes count nothing until
    /// the next snapshot measures the store again.
    db_bytes: u64,
    applied_buf: Vec<Applied<KvOutput>>,
    hello_at: Instant,
    crash_at: Option<(CrashPoint, u32)>,
    crash_hits: u32,
    /// The leader as of the last tick: when it changes, waiting requests are re-routed at
    /// once instead of at their next re-send.
    last_leader: Option<NodeId>,
    /// The store's applied revision, for watchers.
    applied_revision: watch::Sender<i64>,
    applied_changes: broadcast::Sender<Arc<AppliedChanges>>,
    /// Every lease's clock, by id (the store's leases, always).
    lease_clocks: LeaseClocks,
    /// Whether this member led at the last tick: a new leader restarts every lease's clock.
    was_leading: bool,
    /// Leadership transfers in progress, at most [`TRANSFERS_MAX`].
    transfers: Vec<Transfer>,
    /// Defragments waiting for the snapshot being written, at most [`TRANSFERS_MAX`].
    defragments: Vec<oneshot::Sender<Result<(), NodeError>>>,
    /// Snapshot writes report here when they end (see `SnapshotState::start`).
    snapshot_done: mpsc::UnboundedSender<SnapshotWritten>,
    snapshot_done_rx: Option<mpsc::UnboundedReceiver<SnapshotWritten>>,
}

impl Core {
    /// Builds the driver.
    pub fn new(parts: CoreParts) -> Core {
        let me = parts.replica.id().0;
        let (snapshot_done, snapshot_done_rx) = mpsc::unbounded_channel();
        let db_bytes = parts.snapshots.restored_bytes();
        let mut client_urls = BTreeMap::new();
        client_urls.insert(me, parts.client_urls.clone());
        let mut core = Core {
            replica: parts.replica,
            applier: parts.applier,
            rng: parts.rng,
            transport: parts.transport,
            wal: Some(parts.wal),
            members: parts.members,
            tick: parts.tick,
            request_timeout: parts.request_timeout,
            quota_bytes: parts.quota_bytes,
            next_tag: 0,
            batch_tags: VecDeque::new(),
            storage_error: None,
            free_sessions: (0..SESSIONS).rev().collect(),
            session_seq: vec![0; SESSIONS as usize],
            // Sessions of different members and incarnations must never collide: the top bits
            // are the incarnation's random number, the low 12 the session.
            session_base: parts.incarnation & !0xfff,
            writes: HashMap::new(),
            reads: HashMap::new(),
            remote_reads: HashMap::new(),
            next_read: 1,
            client_urls,
            my_client_urls: parts.client_urls,
            snapshots: parts.snapshots,
            db_bytes,
            applied_buf: Vec::new(),
            hello_at: Instant::now(),
            last_leader: None,
            crash_at: parts.crash_at,
            crash_hits: 0,
            applied_revision: parts.applied_revision,
            applied_changes: parts.applied_changes,
            lease_clocks: LeaseClocks::default(),
            was_leading: false,
            transfers: Vec::new(),
            defragments: Vec::new(),
            snapshot_done,
            snapshot_done_rx: Some(snapshot_done_rx),
        };
        core.restart_lease_clocks();
        core
    }

    /// Gives every lease of the store a full TTL from now: at start, after a snapshot is
    /// installed, and when this member becomes leader (as etcd's new leader does, so that a
    /// lease is never expired for the time it took to elect someone to renew it with).
    fn restart_lease_clocks(&mut self) {
        let store = self.applier.machine();
        self.lease_clocks
            .restart(store.lease_ttls(), Instant::now());
    }

    /// Keeps the lease clocks in step with an applied command; `entry` is the slot it came in.
    fn on_lease_applied(&mut self, applied: &Applied<KvOutput>, entry: &ChosenEntry) {
        let SessionOutcome::Applied(Ok(response)) = &applied.outcome else {
            return;
        };
        let now = Instant::now();
        match response {
            KvResponse::LeaseGrant(g) => self.lease_clocks.start(g.id, g.ttl, now),
            KvResponse::LeaseKeepAlive(k) => self.lease_clocks.renew(k.id, now),
            KvResponse::LeaseRevoke(_) => {
                // The answer does not name the lease; the command does. Revokes are rare, so
                // finding and decoding it again costs little.
                let Value::Batch(commands) = &entry.value else {
                    return;
                };
                let revoked = commands
                    .iter()
                    .find(|c| c.id == applied.id)
                    .and_then(|c| kv::decode(&c.payload).ok());
                if let Some(KvCommand::LeaseRevoke(r)) = revoked {
                    self.lease_clocks.forget(r.id);
                }
            }
            _ => {}
        }
    }

    /// As leader: proposes the revoke of every lease whose clock ran out (again after a
    /// request timeout, should the first proposal be lost).
    fn expire_leases(&mut self, now: Instant) {
        let leading = self.replica.role() == Role::Leader;
        if leading && !self.was_leading {
            self.restart_lease_clocks();
        }
        self.was_leading = leading;
        if !leading {
            return;
        }
        for id in self.lease_clocks.take_due(now, self.request_timeout) {
            if self
                .applier
                .machine()
                .lease_time_to_live(id, false)
                .is_err()
            {
                // Revoked already (its revoke applied in a slot this member installed from a
                // snapshot, say): nothing to expire, and no clock to keep.
                self.lease_clocks.forget(id);
                continue;
            }
            tracing::info!(lease = id, "lease expired; proposing its revoke");
            let payload = kv::encode(&KvCommand::LeaseRevoke(LeaseRevokeRequest { id }));
            // Nobody waits on the answer: the revoke's effect is the answer.
            let (reply, _) = oneshot::channel();
            self.submit_write(payload, reply);
        }
    }

    /// Seconds until lease `id` expires by this member's clock, rounded up.
    fn lease_remaining(&self, id: i64) -> Option<i64> {
        let left = self.lease_clocks.remaining(id, Instant::now())?;
        Some(left.as_secs() as i64 + i64::from(left.subsec_nanos() > 0))
    }

    fn me(&self) -> u64 {
        self.replica.id().0
    }

    /// Test-only: counts a hit of `point` and says whether this is the hit a chaos run asked
    /// the process to die at.
    fn crash_due(&mut self, point: CrashPoint) -> bool {
        let Some((at, nth)) = self.crash_at else {
            return false;
        };
        if at != point {
            return false;
        }
        self.crash_hits += 1;
        self.crash_hits >= nth
    }

    /// Test-only: dies here if a chaos run asked for it (abort: no cleanup, like SIGKILL).
    fn crash_point(&mut self, point: CrashPoint) {
        if self.crash_due(point) {
            eprintln!("synod: test crash point {point:?} reached; aborting");
            std::process::abort();
        }
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
        let mut ticker = tokio::time::interval(self.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.say_hello();
        loop {
            // Unbiased: a flood of peer messages or requests must not starve the tick (the
            // leader's heartbeats and every member's election timer live there).
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                Some(c) = durable.recv() => self.on_durable(c),
                Some(w) = snapshot_done.recv() => self.on_snapshot_written(w),
                Some(m) = inbound.recv() => self.on_peer(m),
                r = requests.recv() => match r {
                    Some(r) => self.on_request(r),
                    None => break,
                },
                _ = ticker.tick() => self.on_tick(),
            }
            self.drive();
        }
        self.fail_all(NodeError::Stopped);
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

    fn fail_all(&mut self, e: NodeError) {
        for reply in self.defragments.drain(..) {
            let _ = reply.send(Err(e.clone()));
        }
        for t in self.transfers.drain(..) {
            let _ = t.reply.send(Err(e.clone()));
        }
        let ids: Vec<CommandId> = self.writes.keys().copied().collect();
        for id in ids {
            if let Some(w) = self.remove_write(id) {
                let _ = w.reply.send(Err(e.clone()));
            }
        }
        for (_, r) in self.reads.drain() {
            let _ = r.reply.send(Err(e.clone()));
        }
    }

    fn say_hello(&mut self) {
        let hello = PeerMessage::Hello {
            client_urls: self.my_client_urls.clone(),
        };
        for m in self.members.clone() {
            if m != self.me() {
                self.send(m, &hello);
            }
        }
        self.hello_at = Instant::now();
    }

    fn send(&self, to: u64, msg: &PeerMessage) {
        match peer::encode(msg) {
            // A full queue drops the message; the protocol re-sends what matters.
            Ok(bytes) => {
                let _ = self.transport.send(to, bytes);
            }
            Err(e) => tracing::error!(error = %e, "could not encode a peer message"),
        }
    }

    fn on_durable(&mut self, c: Completion) {
        match c {
            Completion::Durable { tag } => {
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
            }
            Completion::Failed { tag, error } => {
                // An fsync error is not retryable: nothing after it may be reported durable.
                tracing::error!(tag, error = %error, "the log failed; this member stops serving writes and must be restarted");
                self.storage_error = Some(error.to_string());
                let e = NodeError::StorageFailed(error.to_string());
                self.fail_all(e);
            }
        }
    }

    fn on_peer(&mut self, m: Inbound) {
        let msg = match peer::decode(&m.bytes) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!(from = m.from, error = %e, "refused a peer message");
                return;
            }
        };
        match msg {
            PeerMessage::Paxos(p) => {
                if let Err(reason) = self.replica.step(NodeId(m.from), p) {
                    tracing::debug!(from = m.from, %reason, "core refused a message");
                }
            }
            PeerMessage::Forward(command) => {
                // Not leader (any more): drop; the forwarder re-sends to whoever leads.
                let _ = self.replica.propose(command);
            }
            PeerMessage::ReadIndexAsk { id } => {
                let local = ReadId(self.next_read);
                self.next_read += 1;
                match self.replica.read(local) {
                    Ok(()) => {
                        self.remote_reads.insert(local, (m.from, id));
                    }
                    Err(_) => self.send(m.from, &PeerMessage::ReadIndexAnswer { id, slot: None }),
                }
            }
            PeerMessage::ReadIndexAnswer { id, slot } => self.on_read_answer(id, slot),
            PeerMessage::Probe => {
                let round = self
                    .replica
                    .promised()
                    .round
                    .max(self.replica.ballot().round);
                self.send(m.from, &PeerMessage::ProbeReply { round });
            }
            PeerMessage::ProbeReply { .. } => {}
            PeerMessage::Hello { client_urls } => {
                let urls: Vec<String> = client_urls.into_iter().take(16).collect();
                self.client_urls.insert(m.from, urls);
            }
            PeerMessage::SnapshotAsk { through, offset } => {
                if let Some(chunk) = self.snapshots.serve(through, offset) {
                    self.send(m.from, &PeerMessage::SnapshotChunk(chunk));
                }
            }
            PeerMessage::SnapshotChunk(bytes) => self.on_snapshot_chunk(m.from, &bytes),
            PeerMessage::TakeLead => {
                // Only from the member this one follows: a stale or stray request must not
                // start elections. A non-voting member cannot lead (`campaign` knows).
                if self.replica.leader().map(|n| n.0) == Some(m.from) {
                    tracing::info!(
                        from = format!("{:x}", m.from),
                        "taking the lead at the leader's request"
                    );
                    self.replica.campaign();
                }
            }
        }
    }

    fn on_snapshot_chunk(&mut self, from: u64, bytes: &Bytes) {
        match self.snapshots.receive(from, bytes) {
            Ok(Some(snapshot)) => {
                let through = snapshot.through;
                self.install(snapshot);
                if let Some(wal) = &self.wal {
                    if let Err(e) = wal.compact(through) {
                        tracing::warn!(error = %e, "log compaction after install failed");
                    }
                }
            }
            Ok(None) => {
                if let Some((to, ask)) = self.snapshots.next_ask() {
                    self.send(to, &ask);
                }
            }
            Err(e) => tracing::warn!(from, error = %e, "snapshot chunk refused"),
        }
    }

    fn install(&mut self, snapshot: NodeSnapshot) {
        let through = snapshot.through;
        if through <= self.applier.applied_through() {
            return;
        }
        self.db_bytes = snapshot.kv_bytes_len();
        match snapshot.into_applier() {
            Ok(applier) => {
                self.applier = applier;
                self.replica.install_snapshot(through);
                self.publish_revision();
                self.restart_lease_clocks();
                tracing::info!(through = through.0, "installed a snapshot from a peer");
            }
            Err(e) => tracing::error!(error = %e, "a received snapshot does not restore"),
        }
    }

    fn on_request(&mut self, r: Request) {
        match r {
            Request::Write {
                payload,
                grows,
                reply,
            } => {
                if grows && self.db_bytes >= self.quota_bytes {
                    let _ = reply.send(Err(NodeError::NoSpace));
                    return;
                }
                self.submit_write(payload, reply)
            }
            Request::Read {
                read,
                linearizable,
                reply,
            } => {
                if !linearizable {
                    let _ = reply.send(Ok((self.serve(&read), self.replica.ballot().round)));
                    return;
                }
                let now = Instant::now();
                let id = ReadId(self.next_read);
                self.next_read += 1;
                self.reads.insert(
                    id,
                    PendingRead {
                        read,
                        reply,
                        deadline: now + self.request_timeout,
                        resend_at: now + RESEND_EVERY,
                        confirmed: None,
                    },
                );
                self.ask_read_index(id);
            }
            Request::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Request::MoveLeader { target, reply } => self.move_leader(target, reply),
            Request::Defragment { reply } => self.defragment(reply),
            Request::Backup { reply } => {
                let backup = crate::backup::take(&self.applier).map_err(|e| {
                    tracing::error!(error = %e, "cannot take a backup");
                    NodeError::Snapshot(e.to_string())
                });
                let _ = reply.send(backup);
            }
            Request::LeaseRemaining { id, reply } => {
                let _ = reply.send(self.lease_remaining(id));
            }
            Request::HashKv { reply } => {
                let store = self.applier.machine();
                let _ = reply.send((
                    store.digest(),
                    self.applier.applied_through().0,
                    store.revision(),
                    store.compact_revision(),
                ));
            }
        }
    }

    fn move_leader(&mut self, target: u64, reply: oneshot::Sender<Result<(), NodeError>>) {
        if self.replica.role() != Role::Leader {
            let _ = reply.send(Err(NodeError::NotLeader));
            return;
        }
        if !self.members.contains(&target) {
            let _ = reply.send(Err(NodeError::BadTransferee));
            return;
        }
        if target == self.me() {
            let _ = reply.send(Ok(()));
            return;
        }
        if self.transfers.len() >= TRANSFERS_MAX {
            let _ = reply.send(Err(NodeError::TooManyRequests));
            return;
        }
        tracing::info!(
            to = format!("{target:x}"),
            "handing the lead over (MoveLeader)"
        );
        self.send(target, &PeerMessage::TakeLead);
        let now = Instant::now();
        self.transfers.push(Transfer {
            target,
            reply,
            deadline: now + self.request_timeout,
            resend_at: now + RESEND_EVERY,
        });
    }

    /// Answers each transfer whose target now leads (as this member sees it) or whose time is
    /// up; asks the target again while this member still leads (the request may be lost).
    fn progress_transfers(&mut self, now: Instant) {
        if self.transfers.is_empty() {
            return;
        }
        let leader = self.replica.leader().map(|n| n.0);
        let leading = self.replica.role() == Role::Leader;
        for mut t in std::mem::take(&mut self.transfers) {
            if leader == Some(t.target) {
                let _ = t.reply.send(Ok(()));
            } else if now >= t.deadline {
                let _ = t.reply.send(Err(NodeError::TransferTimeout));
            } else {
                if leading && now >= t.resend_at {
                    self.send(t.target, &PeerMessage::TakeLead);
                    t.resend_at = now + RESEND_EVERY;
                }
                self.transfers.push(t);
            }
        }
    }

    fn status(&self) -> Status {
        Status {
            leader: self.replica.leader().map_or(0, |n| n.0),
            term: self
                .replica
                .ballot()
                .round
                .max(self.replica.promised().round),
            chosen_through: self.replica.chosen_through().0,
            applied_through: self.applier.applied_through().0,
            revision: self.applier.machine().revision(),
            db_bytes: self.db_bytes,
            no_space: self.db_bytes >= self.quota_bytes,
            voting: self.replica.is_voting(),
            client_urls: self.client_urls.clone(),
            storage_error: self.storage_error.clone(),
        }
    }

    /// Reads the changes since `after` once for every watch stream, if any listens: the
    /// streams' watchers in step then need no read of their own.
    fn share_changes(&self, after: i64) {
        let store = self.applier.machine();
        if store.revision() == after || self.applied_changes.receiver_count() == 0 {
            return;
        }
        let everything = kv::WatchRead::everything(after, SHARED_EVENTS_MAX, SHARED_BYTES_MAX);
        match store.watch_read(&everything) {
            Ok(answer) if !answer.compacted && answer.through == store.revision() => {
                debug_assert!(answer.through > after);
                let term = self
                    .replica
                    .ballot()
                    .round
                    .max(self.replica.promised().round);
                let _ = self.applied_changes.send(Arc::new(AppliedChanges {
                    after,
                    through: answer.through,
                    term,
                    events: answer.events,
                }));
            }
            // Too much to share, or compacted away already: each watcher reads.
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot read the changes just applied"),
        }
    }

    /// Wakes the watchers when the store's revision moved. It only moves forward: a snapshot
    /// is installed only when it is ahead of what is applied here.
    fn publish_revision(&self) {
        let revision = self.applier.machine().revision();
        self.applied_revision.send_if_modified(|published| {
            debug_assert!(revision >= *published, "the applied revision went back");
            let moved = revision != *published;
            *published = revision;
            moved
        });
    }

    fn serve(&self, read: &KvRead) -> Result<KvReadResponse, kv::KvError> {
        self.applier.machine().read(read)
    }

    fn submit_write(
        &mut self,
        payload: Vec<u8>,
        reply: oneshot::Sender<Result<(KvOutput, u64), NodeError>>,
    ) {
        if let Some(e) = &self.storage_error {
            let _ = reply.send(Err(NodeError::StorageFailed(e.clone())));
            return;
        }
        let Some(session) = self.free_sessions.pop() else {
            let _ = reply.send(Err(NodeError::TooManyRequests));
            return;
        };
        let seq = &mut self.session_seq[session as usize];
        *seq += 1;
        let command = Command {
            id: CommandId {
                client: ClientId(self.session_base | session),
                seq: *seq,
            },
            payload,
        };
        let now = Instant::now();
        let id = command.id;
        self.writes.insert(
            id,
            PendingWrite {
                command,
                reply,
                deadline: now + self.request_timeout,
                resend_at: now + RESEND_EVERY,
            },
        );
        self.route_write(id);
    }

    /// Proposes here if leading, else forwards to the leader if one is known; otherwise the
    /// write waits for the next re-send.
    fn route_write(&mut self, id: CommandId) {
        let Some(w) = self.writes.get(&id) else {
            return;
        };
        let command = w.command.clone();
        if self.replica.role() == Role::Leader {
            match self.replica.propose(command) {
                Ok(()) => return,
                Err(ProposeError::TooLarge { .. }) => {
                    if let Some(w) = self.remove_write(id) {
                        let _ = w.reply.send(Err(NodeError::RequestTooLarge));
                    }
                    return;
                }
                Err(_) => return,
            }
        }
        if let Some(leader) = self.replica.leader().filter(|l| l.0 != self.me()) {
            self.send(leader.0, &PeerMessage::Forward(command));
        }
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
            let _ = self.replica.read(id);
        } else if let Some(leader) = self.replica.leader().filter(|l| l.0 != self.me()) {
            self.send(leader.0, &PeerMessage::ReadIndexAsk { id });
        }
    }

    fn on_tick(&mut self) {
        self.replica.tick(&mut self.rng);
        let now = Instant::now();
        self.expire_leases(now);
        let leader = self.replica.leader();
        if leader != self.last_leader {
            self.last_leader = leader;
            if leader.is_some() {
                self.writes.values_mut().for_each(|w| w.resend_at = now);
                self.reads
                    .values_mut()
                    .filter(|r| r.confirmed.is_none())
                    .for_each(|r| r.resend_at = now);
            }
        }
        let no_leader = self.replica.leader().is_none();
        let timeout = if no_leader {
            NodeError::NoLeader
        } else {
            NodeError::Timeout
        };
        let expired = keys_where(&self.writes, |w| w.deadline <= now);
        for id in expired {
            if let Some(w) = self.remove_write(id) {
                let _ = w.reply.send(Err(timeout.clone()));
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
                let _ = r.reply.send(Err(timeout.clone()));
            }
        }
        let reask = keys_where(&self.reads, |r| r.confirmed.is_none() && r.resend_at <= now);
        for id in reask {
            if let Some(r) = self.reads.get_mut(&id) {
                r.resend_at = now + RESEND_EVERY;
            }
            self.ask_read_index(id);
        }
        if now.duration_since(self.hello_at) > Duration::from_secs(5) {
            self.say_hello();
        }
        if let Some((to, ask)) = self.snapshots.retry_ask(now) {
            self.send(to, &ask);
        }
        self.progress_transfers(now);
    }

    /// Does what the replica asks, until it asks nothing.
    fn drive(&mut self) {
        for _ in 0..64 {
            let ready = self.replica.ready();
            if ready.is_empty() {
                break;
            }
            if let Some(batch) = ready.persist {
                self.persist(batch.seq, batch.ops);
            }
            for out in ready.send {
                self.send(out.to.0, &PeerMessage::Paxos(out.msg));
            }
            let mut applied = std::mem::take(&mut self.applied_buf);
            let revision_before = self.applier.machine().revision();
            for entry in &ready.chosen {
                if let Value::Batch(commands) = &entry.value {
                    let bytes: usize = commands.iter().map(|c| c.payload.len()).sum();
                    self.db_bytes = self.db_bytes.saturating_add(bytes as u64);
                }
                self.crash_point(CrashPoint::BeforeApply);
                let from = applied.len();
                self.applier.apply(entry, &mut applied);
                for a in &applied[from..] {
                    self.on_lease_applied(a, entry);
                }
                self.crash_point(CrashPoint::AfterApply);
            }
            for a in applied.drain(..) {
                self.complete_write(a);
            }
            self.applied_buf = applied;
            for outcome in ready.reads {
                self.on_read_outcome(outcome);
            }
            for id in ready.abandoned {
                if let Some(w) = self.writes.get_mut(&id) {
                    w.resend_at = Instant::now();
                }
            }
            if let Some(wanted) = ready.snapshot_wanted {
                if let Some((to, ask)) = self.snapshots.want(wanted.from.0, wanted.through) {
                    self.send(to, &ask);
                }
            }
            if !ready.chosen.is_empty() {
                self.share_changes(revision_before);
                self.publish_revision();
                self.maybe_snapshot();
            }
        }
        self.serve_confirmed_reads();
    }

    fn persist(&mut self, seq: PersistSeq, ops: Vec<PersistOp>) {
        self.crash_point(CrashPoint::BeforeWalSync);
        let Some(wal) = &self.wal else { return };
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
        for record in records {
            self.next_tag += 1;
            let tag = self.next_tag;
            let result = tokio::task::block_in_place(|| wal.submit(record, tag));
            if let Err(e) = result {
                tracing::error!(error = %e, "could not submit to the log");
                self.storage_error = Some(e.to_string());
                self.fail_all(NodeError::StorageFailed(e.to_string()));
                return;
            }
        }
        self.batch_tags.push_back((self.next_tag, seq));
    }

    fn complete_write(&mut self, a: Applied<KvOutput>) {
        if !self.writes.contains_key(&a.id) {
            return;
        }
        let Some(w) = self.remove_write(a.id) else {
            return;
        };
        let term = self
            .replica
            .ballot()
            .round
            .max(self.replica.promised().round);
        let out = match a.outcome {
            SessionOutcome::Applied(o) | SessionOutcome::Duplicate(o) => Ok((o, term)),
            // Our own latest command cannot be older than our latest: a broken session table.
            SessionOutcome::Stale => Err(NodeError::Timeout),
        };
        let _ = w.reply.send(out);
    }

    fn on_read_outcome(&mut self, outcome: ReadOutcome) {
        let (id, slot) = match outcome {
            ReadOutcome::Ready { id, slot } => (id, Some(slot)),
            ReadOutcome::Failed { id, .. } => (id, None),
        };
        if let Some((asker, their)) = self.remote_reads.remove(&id) {
            self.send(asker, &PeerMessage::ReadIndexAnswer { id: their, slot });
        } else {
            self.on_read_answer(id, slot);
        }
    }

    /// Our read `id` is confirmed through `slot`, or (`None`) must be asked again shortly.
    fn on_read_answer(&mut self, id: ReadId, slot: Option<Slot>) {
        if let Some(r) = self.reads.get_mut(&id) {
            match slot {
                Some(s) => r.confirmed = Some(s),
                None => r.resend_at = Instant::now() + self.tick * 2,
            }
        }
    }

    fn serve_confirmed_reads(&mut self) {
        let applied = self.applier.applied_through();
        let ready = keys_where(&self.reads, |r| r.confirmed.is_some_and(|s| s <= applied));
        let term = self
            .replica
            .ballot()
            .round
            .max(self.replica.promised().round);
        for id in ready {
            if let Some(r) = self.reads.remove(&id) {
                let answer = self.serve(&r.read);
                let _ = r.reply.send(Ok((answer, term)));
            }
        }
    }

    fn maybe_snapshot(&mut self) {
        if !self.snapshots.due(self.applier.applied_through()) {
            return;
        }
        if let Err(e) = self.start_snapshot() {
            tracing::warn!(error = %e, "snapshot failed; will retry at the next interval")
        }
    }

    /// Serializes the applied state now (the store's size, the db size, is measured again) and
    /// has it written off this task; [`Core::on_snapshot_written`] compacts once it is durable.
    /// Does nothing while a write is in progress.
    fn start_snapshot(&mut self) -> Result<(), crate::snapshot::SnapshotError> {
        let crash_mid = self.crash_due(CrashPoint::DuringSnapshot);
        let done = self.snapshot_done.clone();
        if let Some((_, kv_bytes)) = self.snapshots.start(&self.applier, crash_mid, done)? {
            self.db_bytes = kv_bytes;
        }
        Ok(())
    }

    /// A snapshot is durable (or failed): compact the core's log and the WAL through it (a
    /// failed WAL compaction only keeps segments longer), and answer the defragments waiting.
    fn on_snapshot_written(&mut self, written: SnapshotWritten) {
        let outcome = self.snapshots.written(written);
        match &outcome {
            Ok(through) => {
                self.crash_point(CrashPoint::DuringCompaction);
                self.replica.compact(*through);
                if let Some(wal) = &self.wal {
                    if let Err(e) = wal.compact(*through) {
                        tracing::warn!(error = %e, "log compaction failed; the log keeps its segments");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "snapshot failed; will retry at the next interval")
            }
        }
        for reply in self.defragments.drain(..) {
            let _ = reply.send(
                outcome
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| NodeError::Snapshot(e.to_string())),
            );
        }
    }

    /// etcd's Defragment, in Synod's terms: a snapshot now (unless the newest covers every
    /// applied slot), which frees the log segments it covers and measures the db size again, so
    /// space freed by a compaction shows (and can clear the NOSPACE alarm) at once. Answered
    /// when the snapshot is durable (the one in progress, if there is one).
    fn defragment(&mut self, reply: oneshot::Sender<Result<(), NodeError>>) {
        let applied = self.applier.applied_through();
        if applied == Slot::ZERO || self.snapshots.newest_through() == Some(applied) {
            let _ = reply.send(Ok(()));
            return;
        }
        if self.defragments.len() >= TRANSFERS_MAX {
            let _ = reply.send(Err(NodeError::TooManyRequests));
            return;
        }
        if let Err(e) = self.start_snapshot() {
            tracing::error!(error = %e, "defragment: cannot take a snapshot");
            let _ = reply.send(Err(NodeError::Snapshot(e.to_string())));
            return;
        }
        self.defragments.push(reply);
    }
}

/// The keys of `map` whose value satisfies `pred` (collected, so the map can be changed next).
fn keys_where<K: Copy, V>(map: &HashMap<K, V>, pred: impl Fn(&V) -> bool) -> Vec<K> {
    map.iter()
        .filter(|(_, v)| pred(v))
        .map(|(k, _)| *k)
        .collect()
}

/// Rough bytes an op takes in a record: the values dominate.
fn op_bytes(op: &PersistOp) -> usize {
    let value_bytes = |v: &paxos::multi::Value| match v {
        paxos::multi::Value::Noop => 0,
        paxos::multi::Value::StopSign(c) => 8 * c.len_everyone(),
        paxos::multi::Value::Batch(c) => c.iter().map(|c| c.payload.len() + 32).sum(),
    };
    match op {
        PersistOp::Accept { value, .. } | PersistOp::Chosen { value, .. } => {
            32 + value_bytes(value)
        }
        _ => 32,
    }
}
