//! One simulated member's storage side: what `crates/node` does for a [`Member`] with real
//! files, done here with the same `storage` calls on the member's own [`MemFs`].
//!
//! - Boot ([`boot`]) is the node's start (`node::server::start`): initialize the data
//!   directory if it holds no meta file, `Store::open` (replay the log over the newest
//!   snapshot), decode the snapshot body into the applied state and the member table
//!   (`node::snapshot::SnapshotFiles::open`), `Replica::recover` from the durable state. The
//!   node's code is async and bound to `StdFs`, so it is not shared; these are the same calls
//!   in the same order.
//! - Snapshot files ([`Running::write_snapshot`], [`Running::serve`], [`Running::store_chunk`])
//!   mirror `node::snapshot::SnapshotFiles`: a verified snapshot file per write, chunks served
//!   from the newest, storage's `SnapshotIntake` for incoming transfers, and a received
//!   snapshot decoded a seed-chosen while later ([`Running::decode`]).

use bytes::Bytes;
use kv::KvStore;
use member::bugs::MemberBugs;
use member::cluster::{MemberInfo, MemberTable};
use member::snapshot::{BodyJob, ChunkStored, DecodedSnapshot, EncodedBody};
use member::{Member, MemberOptions, MemberParts, Micros};
use paxos::multi::{Applier, Membership, PersistOp, Replica, ReplicaOptions};
use paxos::{Configuration, NodeId, QuorumSpec, Slot};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use storage::{
    memfs::MemFs, read_snapshot_body, Intake, Meta, SnapshotChunk, SnapshotIntake, SnapshotMeta,
    SnapshotSource, SnapshotWriter, Store, WalOptions,
};

/// Where every simulated member keeps its files, on its own [`MemFs`].
pub(crate) const DATA_DIR: &str = "/data";
/// The cluster id in every simulated member's meta file.
const CLUSTER_ID: u64 = 0x5359_4e4f_444d_454d;
/// Snapshot chunks are small here, so that a transfer takes several chunks (and messages that
/// can be lost, duplicated or reordered) even for the simulator's small stores.
const CHUNK_BYTES: u64 = 2048;

/// A persist record on its way to the log: appended and synced at `done_at`.
#[derive(Debug)]
pub(crate) struct DiskWrite {
    pub tag: u64,
    pub ops: Vec<PersistOp>,
    pub done_at: u64,
}

/// A running member and everything its driver holds; dropped whole at a crash.
pub(crate) struct Running {
    pub member: Member,
    pub store: Store<MemFs>,
    /// Records submitted and not yet synced, oldest first.
    pub disk: VecDeque<DiskWrite>,
    /// The newest durable snapshot file.
    pub newest: Option<SnapshotMeta>,
    /// The member's transfer number, and the receiver storing its chunks.
    pub incoming: SnapshotIntake<MemFs>,
    /// The snapshot being written: (through, the body to encode, crash in the middle). The
    /// member goes on while it waits, as it does while a node's worker thread encodes and
    /// writes: the job is a view of the store as of `through`.
    pub writing: Option<(Slot, BodyJob, bool)>,
    /// The last snapshot received whole, and the slot of the one being decoded (a seed-chosen
    /// while of virtual time, as a node's worker thread takes its time).
    pub received: Option<SnapshotMeta>,
    pub decoding: Option<Slot>,
    /// The log refused a write or a sync: nothing more goes to it.
    pub log_failed: bool,
    /// The highest store revision this incarnation has had.
    pub revision: i64,
}

/// Why a member could not start (the simulator counts this as a violation: without disk
/// damage, recovery must always succeed).
#[derive(Debug, thiserror::Error)]
pub(crate) enum BootError {
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    #[error(transparent)]
    Body(#[from] member::snapshot::BodyError),
    #[error(transparent)]
    Config(#[from] paxos::ConfigError),
    /// The store restored from the snapshot is ahead of what the core would hand out: it
    /// would skip every snapshot sent to it as already applied and never apply again.
    #[error("the store is applied through {store}, the core only through {core}")]
    StoreAhead { store: Slot, core: Slot },
}

/// What [`boot`] needs beyond the disk.
pub(crate) struct BootParts {
    pub id: u64,
    pub members: Vec<u64>,
    pub replica: ReplicaOptions,
    pub member: MemberOptions,
    pub rng: ChaCha8Rng,
    pub incarnation: u64,
    pub salt_seed: u64,
    pub bugs: MemberBugs,
    /// Started outside the configuration (`--initial-cluster-state existing` after `member
    /// add`): `members` are the voters it knows, and it learns the rest from them.
    pub join: bool,
    /// Its disk was wiped while it was a voter: it rejoins through the core's rebuild path
    /// (a non-voting learner until no promise it forgot can matter), as the node does.
    pub rebuild: bool,
}

fn wal_options(salt_seed: u64) -> WalOptions {
    WalOptions::small()
        .with_recycle_segments(true)
        .with_salt_seed(Some(salt_seed))
}

/// Starts a member from its disk, as a node does at start (see the module doc).
pub(crate) fn boot(fs: &MemFs, parts: BootParts, now: Micros) -> Result<Running, BootError> {
    let meta = Meta {
        cluster_id: CLUSTER_ID,
        member_id: parts.id,
        initial_members: parts.members.clone(),
    };
    let dir = std::path::Path::new(DATA_DIR);
    if !Store::is_initialized(fs, dir)? {
        Store::init(fs.clone(), DATA_DIR, &meta, wal_options(parts.salt_seed))?;
    }
    let (store, recovered) =
        Store::open(fs.clone(), DATA_DIR, &meta, wal_options(parts.salt_seed))?;
    let (applier, kv_bytes, table) = match &recovered.snapshot {
        Some(m) => {
            let body = read_snapshot_body(fs, m)?;
            DecodedSnapshot::decode(m.through, &body)?.into_parts()
        }
        None => (Applier::new(KvStore::new()), 0, None),
    };
    let configuration = Configuration::new(
        parts.members.iter().map(|m| NodeId(*m)).collect(),
        QuorumSpec::Majority,
    )?;
    // As the node's start does: the log's `EnterConfiguration` records go with the segments a
    // snapshot compacts away, and the snapshot keeps the configuration in force at its slot.
    let mut state = recovered.state;
    if let Some(m) = applier.membership() {
        if state.membership.as_ref().is_none_or(|w| w.epoch < m.epoch) {
            state.membership = Some(m.clone());
        }
    }
    let fresh = state.membership.is_none() && state.entries.is_empty();
    // Nothing at all on the disk since the wipe: not even `RebuildStarted`, a promise or a
    // snapshot installed while rebuilding (a rebuild that crashed goes on from its disk, with
    // what it caught up: booting it empty again left its store ahead of its core, `chosen 0`,
    // which never caught up: the member campaign's liveness failures with wipes on).
    let empty = fresh
        && state.promised.is_none()
        && !state.rebuilding
        && state.compacted_through == Slot::ZERO;
    let replica = if parts.rebuild && empty {
        // A wiped disk, whether the member was one of the first or joined later: it may have
        // voted, so it rebuilds (from what it knows; outside that, it learns as a joiner).
        Replica::rebuild(NodeId(parts.id), configuration, parts.replica)?
    } else if parts.join
        && state.membership.is_none()
        && !state.rebuilding
        && state.compacted_through == Slot::ZERO
    {
        // Nothing it learned reached its disk yet: it joins again from what it knows. (Not
        // with a snapshot on disk, even one taken before any change (no configuration in
        // it): the store restored from it is ahead of a joiner's core, which would then
        // skip every snapshot sent to it as already applied and never hand out a slot:
        // seed 471 of the membership campaign with wipes, a learner at chosen 0.)
        Replica::join(NodeId(parts.id), configuration, parts.replica)?
    } else {
        if parts.rebuild {
            // Wiped and not yet voting durably: whatever reached the disk since (a snapshot
            // may be there before `RebuildStarted` was synced), the rebuild goes on.
            state.rebuilding = true;
        }
        if (state.rebuilding || parts.join) && state.membership.is_none() {
            // A rebuild, or a joiner with a snapshot, that crashed before it entered a
            // configuration: it goes on from the one it knows, as `Replica::rebuild` or
            // `Replica::join` started it (it may not be listed there), with the snapshot.
            state.membership = Some(Membership::initial(configuration.clone()));
        }
        Replica::recover(NodeId(parts.id), configuration, parts.replica, state)?
    };
    if replica.handed_out_through() < applier.applied_through() {
        return Err(BootError::StoreAhead {
            store: applier.applied_through(),
            core: replica.handed_out_through(),
        });
    }
    let mut options = parts.member;
    // The name the initial table lists, as a node's `--name` matches its `--initial-cluster`.
    options.name = format!("m{}", parts.id);
    options.table = table.unwrap_or_else(|| initial_table(&parts.members));
    let revision = applier.machine().revision();
    let mut member = Member::new(
        MemberParts {
            replica,
            applier,
            rng: Box::new(parts.rng),
            incarnation: parts.incarnation,
            newest_snapshot: recovered.snapshot.as_ref().map(|m| m.through),
            restored_bytes: kv_bytes,
            options,
        },
        now,
    );
    member.plant_bugs(parts.bugs);
    Ok(Running {
        member,
        store,
        disk: VecDeque::new(),
        newest: recovered.snapshot,
        incoming: SnapshotIntake::new(fs.clone(), DATA_DIR),
        received: None,
        decoding: None,
        writing: None,
        log_failed: false,
        revision,
    })
}

/// The member table of the initial cluster (names and peer URLs are only labels here).
pub(crate) fn initial_table(members: &[u64]) -> MemberTable {
    members
        .iter()
        .map(|id| {
            let info = MemberInfo {
                name: format!("m{id}"),
                peer_urls: vec![format!("http://127.0.0.1:{}", 2380 + id)],
            };
            (*id, info)
        })
        .collect()
}

impl Running {
    /// Writes a snapshot file durably (write, fsync, rename, directory fsync); on success it
    /// becomes the newest unless a received one is newer, and the answer is the bytes of the
    /// body's store part (what the member measures the db size by).
    pub fn write_snapshot(
        &mut self,
        fs: &MemFs,
        through: Slot,
        body: &EncodedBody,
    ) -> Result<u64, String> {
        let write = || -> Result<SnapshotMeta, storage::StorageError> {
            let mut writer = SnapshotWriter::create(fs.clone(), DATA_DIR, through)?;
            writer.write(&body.bytes)?;
            writer.finish()
        };
        match write() {
            Ok(meta) => {
                if self
                    .newest
                    .as_ref()
                    .is_none_or(|n| n.through < meta.through)
                {
                    self.newest = Some(meta);
                }
                Ok(body.kv_bytes)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Writes the body of a snapshot and dies before finishing it (crash point
    /// `DuringSnapshot`): a temporary file that recovery must ignore.
    pub fn write_snapshot_partly(fs: &MemFs, through: Slot, body: &[u8]) {
        if let Ok(mut writer) = SnapshotWriter::create(fs.clone(), DATA_DIR, through) {
            let _ = writer.write(body);
        }
    }

    /// The chunk at `offset` of the newest snapshot, if it covers `through`.
    pub fn serve(&self, fs: &MemFs, through: Slot, offset: u64) -> Option<Bytes> {
        let meta = self.newest.as_ref().filter(|m| m.through >= through)?;
        let mut source = SnapshotSource::open(fs, meta, offset, CHUNK_BYTES).ok()?;
        match source.next_chunk() {
            Ok(Some(chunk)) => Some(Bytes::from(chunk.encode())),
            _ => None,
        }
    }

    /// Stores one chunk of transfer `transfer` (node::snapshot::SnapshotFiles::store).
    pub fn store_chunk(&mut self, transfer: u64, chunk: &SnapshotChunk) -> ChunkStored {
        match self.try_store(transfer, chunk) {
            Ok(stored) => stored,
            Err(e) => ChunkStored::Failed(e.to_string()),
        }
    }

    fn try_store(
        &mut self,
        transfer: u64,
        chunk: &SnapshotChunk,
    ) -> Result<ChunkStored, storage::StorageError> {
        let meta = match self.incoming.store(transfer, chunk)? {
            Intake::Progress { next_offset } => return Ok(ChunkStored::Progress { next_offset }),
            Intake::Ignored { next_offset } => return Ok(ChunkStored::Ignored { next_offset }),
            Intake::Complete(meta) => meta,
        };
        let through = meta.through;
        // Only forward: a transfer begun while this member was behind can complete after it
        // caught up by the log and wrote a newer snapshot of its own (whose slot its log is
        // compacted through). Going back to the older file would leave it unable to serve
        // the chunks its followers need, for ever (node::snapshot::SnapshotFiles::try_store
        // keeps the same rule; the simulator found it missing there, seed 69).
        if self.newest.as_ref().is_none_or(|n| n.through < through) {
            self.newest = Some(meta.clone());
        }
        self.received = Some(meta);
        Ok(ChunkStored::Complete { through })
    }

    /// Reads and decodes the snapshot through `through` received last
    /// (node::snapshot::SnapshotFiles::decode).
    pub fn decode(&self, fs: &MemFs, through: Slot) -> Result<DecodedSnapshot, String> {
        let meta = self
            .received
            .as_ref()
            .filter(|m| m.through == through)
            .ok_or_else(|| format!("no received snapshot through {through} to decode"))?;
        let body = read_snapshot_body(fs, meta).map_err(|e| e.to_string())?;
        DecodedSnapshot::decode(through, &body).map_err(|e| e.to_string())
    }
}
