//! The pure parts of snapshots: the body (the key-value store and the session table) and the
//! schedule of a transfer from a peer. Files are the driver's: it encodes and writes a body the
//! member hands it as a [`BodyJob`] ([`crate::Output::WriteSnapshot`]: a view of the store, so
//! the pass over the whole store runs off the member's core), serves chunks of its newest file
//! ([`crate::Output::ServeSnapshotChunk`]) and stores received chunks
//! ([`crate::Output::StoreSnapshotChunk`]), reporting back what happened.
//!
//! The body is a version byte, then postcard of the store's snapshot and the session table,
//! inside storage's verified snapshot file. Transfer is pipelined: the receiver keeps asks for
//! up to [`WINDOW_CHUNKS`] chunks past its next offset in flight, the source sends each chunk
//! asked for, read in order from its file, so a transfer holds a bounded number of chunks in
//! flight and resumes from where it stopped after a lost message or a dropped connection
//! (storage's `SnapshotIntake` keeps what it wrote, even for a new transfer of the same
//! snapshot).

use crate::cluster::MemberTable;
use crate::peer::PeerMessage;
use crate::time::Micros;
use kv::{KvOutput, KvStore, KvView};
use paxos::multi::{Applier, ClientId, Membership, Registrations};
use paxos::Slot;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use storage::{Intake, SnapshotMeta};
use thiserror::Error;

/// Version 2 adds the configuration the snapshot was taken in and the member table; version 3
/// the registered incarnations beside the session table (paxos' `Registrations`). Version 1
/// and 2 bodies still decode (with no registrations: every command applies until the first
/// one, as before them).
const BODY_VERSION: u8 = 3;
const BODY_VERSION_V2: u8 = 2;
const BODY_VERSION_V1: u8 = 1;
/// A transfer asks again this long after its last ask, and gives up after this many asks
/// without progress (the replica asks again on its own schedule).
const ASK_AGAIN: Duration = Duration::from_millis(500);
const ASKS_MAX: u32 = 10;
/// Chunks a transfer asks for ahead of the one it stores next: the source streams this many
/// back to back instead of one per round trip, and the receiver holds at most this many (plus
/// the one being stored) in flight, whatever the snapshot's size.
pub const WINDOW_CHUNKS: u64 = 4;
/// Below this, a store is small enough to snapshot every `snapshot_every_slots` slots
/// whatever it costs (the simulator's tiny stores keep their frequent snapshots).
pub const SNAPSHOT_SPACED_FROM_BYTES: u64 = 8 << 20;
/// The most command bytes applied between two snapshots of a large store: the bound on the
/// log kept in memory and replayed after a crash.
pub const SNAPSHOT_LOG_BYTES_MAX: u64 = 128 << 20;

/// Why a snapshot body could not be made or read.
#[derive(Debug, Error)]
pub enum BodyError {
    /// The body is not ours or is damaged.
    #[error("snapshot body: {0}")]
    Body(String),
}

/// The applied state at a slot, decoded from a snapshot body.
pub struct AppliedSnapshot {
    /// Every slot through here is applied in it.
    pub through: Slot,
    kv: Vec<u8>,
    sessions: Vec<(u64, u64, KvOutput)>,
    membership: Option<Membership>,
    table: Option<MemberTable>,
    registrations: Registrations,
}

#[derive(Serialize, Deserialize)]
struct BodyV1 {
    kv: Vec<u8>,
    sessions: Vec<(u64, u64, KvOutput)>,
}

#[derive(Serialize, Deserialize)]
struct BodyV2 {
    kv: Vec<u8>,
    sessions: Vec<(u64, u64, KvOutput)>,
    membership: Option<Membership>,
    table: Option<MemberTable>,
}

#[derive(Serialize, Deserialize)]
struct Body {
    kv: Vec<u8>,
    sessions: Vec<(u64, u64, KvOutput)>,
    /// The configuration in force at `through` (none in a backup: a restore is a new cluster).
    membership: Option<Membership>,
    /// The member table at `through` (none in a backup).
    table: Option<MemberTable>,
    /// The registered incarnations (empty without the sessions: a backup).
    registrations: Registrations,
}

/// A snapshot body still to be encoded: a view of the store ([`KvStore::view`], O(1) to take)
/// and copies of the small parts (the session table, the configuration, the member table).
/// Taking one ([`BodyJob::new`]) is cheap and happens on the member's core; [`BodyJob::encode`]
/// is the pass over the whole store, and runs wherever the driver likes (the node: a blocking
/// thread; the simulator: a later step), while the member keeps applying writes. The bytes are
/// those the state had when the job was taken, whatever was applied since.
#[derive(Clone, Debug)]
pub struct BodyJob {
    kv: KvView,
    sessions: Vec<(u64, u64, KvOutput)>,
    membership: Option<Membership>,
    table: Option<MemberTable>,
    registrations: Registrations,
}

/// An encoded snapshot body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedBody {
    /// The body: the version byte, then postcard of the store's snapshot and the rest.
    pub bytes: Vec<u8>,
    /// Bytes of the store's part (the member's db size).
    pub kv_bytes: u64,
    /// Entries of the session table in it, and their bytes.
    pub sessions: u64,
    pub sessions_bytes: u64,
}

impl BodyJob {
    /// The body of `applier`'s state as it is now, to encode later: the store (and, with
    /// `with_sessions`, the session table); a member's own snapshot (`table` given) also keeps
    /// the configuration it was taken in ([`Applier::membership`]) and the member table, so a
    /// member restored or caught up from it knows who the members are. O(1) for the store,
    /// O(sessions) for the rest.
    pub fn new(
        applier: &Applier<KvStore>,
        with_sessions: bool,
        table: Option<&MemberTable>,
    ) -> BodyJob {
        let (sessions, registrations) = if with_sessions {
            let sessions = applier
                .sessions()
                .iter()
                .map(|(c, (seq, out))| (c.0, *seq, out.clone()))
                .collect();
            (sessions, applier.registrations().clone())
        } else {
            (Vec::new(), Registrations::default())
        };
        BodyJob {
            kv: applier.machine().view(),
            sessions,
            membership: table.and(applier.membership().cloned()),
            table: table.cloned(),
            registrations,
        }
    }

    /// Entries in the session table it carries.
    pub fn sessions_len(&self) -> usize {
        self.sessions.len()
    }

    /// The store's revision in the body.
    pub fn revision(&self) -> i64 {
        self.kv.revision()
    }

    /// Encodes the body: one pass over the whole store (run it off the member's core).
    pub fn encode(self) -> Result<EncodedBody, BodyError> {
        let kv = self.kv.snapshot();
        let kv_bytes = kv.len() as u64;
        let sessions = self.sessions.len() as u64;
        // Measured by encoding them apart (small beside the store: a few entries per member).
        let sessions_bytes = postcard::to_allocvec(&self.sessions)
            .map_err(|e| BodyError::Body(e.to_string()))?
            .len() as u64;
        let body = Body {
            kv,
            sessions: self.sessions,
            membership: self.membership,
            table: self.table,
            registrations: self.registrations,
        };
        let bytes = postcard::to_extend(&body, vec![BODY_VERSION])
            .map_err(|e| BodyError::Body(e.to_string()))?;
        Ok(EncodedBody {
            bytes,
            kv_bytes,
            sessions,
            sessions_bytes,
        })
    }
}

/// The snapshot body for `applier`'s state, encoded at once (a backup taken outside a running
/// member, a restore, tests): [`BodyJob::new`] then [`BodyJob::encode`]. Also returns the store's
/// part's length (the db size).
pub fn encode_body(
    applier: &Applier<KvStore>,
    with_sessions: bool,
) -> Result<(Vec<u8>, u64), BodyError> {
    let body = BodyJob::new(applier, with_sessions, None).encode()?;
    Ok((body.bytes, body.kv_bytes))
}

impl AppliedSnapshot {
    /// Decodes a body (as [`encode_body`] made it) that covers every slot through `through`.
    pub fn decode(through: Slot, bytes: &[u8]) -> Result<AppliedSnapshot, BodyError> {
        let (&version, rest) = bytes
            .split_first()
            .ok_or_else(|| BodyError::Body("empty".into()))?;
        let body: Body = match version {
            BODY_VERSION => {
                postcard::from_bytes(rest).map_err(|e| BodyError::Body(e.to_string()))?
            }
            BODY_VERSION_V2 => {
                let v2: BodyV2 =
                    postcard::from_bytes(rest).map_err(|e| BodyError::Body(e.to_string()))?;
                Body {
                    kv: v2.kv,
                    sessions: v2.sessions,
                    membership: v2.membership,
                    table: v2.table,
                    registrations: Registrations::default(),
                }
            }
            BODY_VERSION_V1 => {
                let v1: BodyV1 =
                    postcard::from_bytes(rest).map_err(|e| BodyError::Body(e.to_string()))?;
                Body {
                    kv: v1.kv,
                    sessions: v1.sessions,
                    membership: None,
                    table: None,
                    registrations: Registrations::default(),
                }
            }
            _ => {
                return Err(BodyError::Body(format!(
                    "version {version}, this build reads {BODY_VERSION_V1} to {BODY_VERSION}"
                )))
            }
        };
        if let Some(m) = &body.membership {
            if m.first_slot > through.next() {
                return Err(BodyError::Body(format!(
                    "a snapshot through {through} in a configuration from slot {}",
                    m.first_slot
                )));
            }
        }
        Ok(AppliedSnapshot {
            through,
            kv: body.kv,
            sessions: body.sessions,
            membership: body.membership,
            table: body.table,
            registrations: body.registrations,
        })
    }

    /// The configuration the snapshot was taken in, if it says (a member's own snapshot).
    pub fn membership(&self) -> Option<&Membership> {
        self.membership.as_ref()
    }

    /// The member table at the snapshot, if it says (a member's own snapshot).
    pub fn table(&self) -> Option<&MemberTable> {
        self.table.as_ref()
    }

    /// Size of the store's part, the member's "db size".
    pub fn kv_bytes_len(&self) -> u64 {
        self.kv.len() as u64
    }

    /// The applier this snapshot restores.
    pub fn into_applier(self) -> Result<Applier<KvStore>, BodyError> {
        let store = KvStore::restore(&self.kv).map_err(|e| BodyError::Body(e.to_string()))?;
        let sessions: BTreeMap<ClientId, (u64, KvOutput)> = self
            .sessions
            .into_iter()
            .map(|(c, seq, out)| (ClientId(c), (seq, out)))
            .collect();
        let mut applier = Applier::restore(store, sessions, self.through);
        applier.set_membership(self.membership);
        applier.set_registrations(self.registrations);
        Ok(applier)
    }
}

/// A received snapshot decoded into the applied state it restores, ready to swap in: the
/// driver builds it off the member's core ([`DecodedSnapshot::decode`], a pass over the whole
/// body) and hands it to [`crate::Member::on_snapshot_decoded`], which only moves it in.
#[derive(Debug)]
pub struct DecodedSnapshot {
    through: Slot,
    applier: Applier<KvStore>,
    kv_bytes: u64,
    table: Option<MemberTable>,
}

impl DecodedSnapshot {
    /// Decodes a body (as [`encode_body`] made it) that covers every slot through `through`
    /// and restores the store, the session table and the configuration from it.
    pub fn decode(through: Slot, bytes: &[u8]) -> Result<DecodedSnapshot, BodyError> {
        let snapshot = AppliedSnapshot::decode(through, bytes)?;
        let kv_bytes = snapshot.kv_bytes_len();
        let table = snapshot.table().cloned();
        Ok(DecodedSnapshot {
            through,
            applier: snapshot.into_applier()?,
            kv_bytes,
            table,
        })
    }

    /// The slot it covers.
    pub fn through(&self) -> Slot {
        self.through
    }

    /// Its parts: the applier it restores, the bytes of its store part (the db size), and the
    /// member table, if it carries one.
    pub fn into_parts(self) -> (Applier<KvStore>, u64, Option<MemberTable>) {
        (self.applier, self.kv_bytes, self.table)
    }
}

/// What the driver did with a chunk the member asked it to store
/// ([`crate::Member::on_snapshot_chunk_stored`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChunkStored {
    /// Written; the transfer continues from `next_offset`.
    Progress {
        /// Where the next chunk starts.
        next_offset: u64,
    },
    /// Not taken (a chunk of another snapshot, not at the start); ask again from
    /// `next_offset` (where the transfer's receiver stands, 0 if it has none).
    Ignored {
        /// Where the next chunk starts.
        next_offset: u64,
    },
    /// The last chunk verified: the whole snapshot is durable (the driver's newest received
    /// file, which [`crate::Output::DecodeSnapshot`] then asks it to decode).
    Complete {
        /// The slot it covers.
        through: Slot,
    },
    /// Storage refused the chunk.
    Failed(String),
}

impl ChunkStored {
    /// What storage's intake did with a chunk, as the member hears it; the driver's two
    /// snapshot files follow: one received whole becomes the newest (only forward: a transfer
    /// begun while this member was behind can complete after it caught up by the log and
    /// wrote a newer snapshot of its own, whose slot its log is compacted through; going back
    /// to the older file would leave it unable to serve its followers: the member simulator's
    /// seed 69) and the one [`crate::Output::DecodeSnapshot`] reads. The node and the
    /// simulator both call this, so they keep the same rule.
    pub fn from_intake(
        intake: storage::Result<Intake>,
        newest: &mut Option<SnapshotMeta>,
        received: &mut Option<SnapshotMeta>,
    ) -> ChunkStored {
        match intake {
            Ok(Intake::Progress { next_offset }) => ChunkStored::Progress { next_offset },
            Ok(Intake::Ignored { next_offset } | Intake::Resumed { next_offset }) => {
                ChunkStored::Ignored { next_offset }
            }
            Ok(Intake::Complete(meta)) => {
                let through = meta.through;
                if newest.as_ref().is_none_or(|n| n.through < through) {
                    *newest = Some(meta.clone());
                }
                *received = Some(meta);
                ChunkStored::Complete { through }
            }
            Err(e) => ChunkStored::Failed(e.to_string()),
        }
    }
}

/// A transfer in progress: from whom, what it must cover, and when it last asked.
#[derive(Clone, Debug)]
pub(crate) struct Incoming {
    /// Numbers transfers, so the driver can tell a new one from the one its receiver serves.
    pub(crate) transfer: u64,
    pub(crate) from: u64,
    pub(crate) at_least: Slot,
    pub(crate) next_offset: u64,
    /// The offset past the last chunk asked for: chunks from `next_offset` to here are in
    /// flight (one ask, while the chunk size is not known yet).
    asked_end: u64,
    /// The source's chunk size and the body's length, once a chunk told them (0 before).
    chunk_len: u64,
    total_len: u64,
    asked_at: Micros,
    asks: u32,
}

/// When to snapshot, what is being written, and the transfer in progress: the decisions of
/// snapshots, none of their bytes on disk.
#[derive(Debug)]
pub(crate) struct SnapshotSchedule {
    every_slots: u64,
    /// The store bytes of the newest snapshot (as measured when it was written or installed;
    /// at boot, the restored db size): what the next snapshot will cost to write, about.
    newest_bytes: u64,
    /// Command bytes applied since the newest snapshot began: what the log holds beyond it.
    log_bytes: u64,
    /// The slot the newest durable snapshot covers (written here or received).
    pub(crate) newest: Option<Slot>,
    /// The slot of the snapshot the driver is writing, if one is.
    pub(crate) writing: Option<Slot>,
    /// The member's db size when that snapshot was taken: what was applied since is added to
    /// the size the snapshot measures.
    pub(crate) db_bytes_at_start: u64,
    pub(crate) incoming: Option<Incoming>,
    /// The slot of a received snapshot, durable, that the driver is decoding: no other
    /// transfer starts meanwhile (it would fetch what is about to be installed).
    pub(crate) decoding: Option<Slot>,
    transfers: u64,
    /// Planted bug `RevisionBackAfterSnapshotInstall` only: the state the snapshot being
    /// written holds, to install again once it is durable.
    pub(crate) planted_older: Option<Applier<KvStore>>,
}

impl SnapshotSchedule {
    pub(crate) fn new(
        every_slots: u64,
        newest: Option<Slot>,
        newest_bytes: u64,
    ) -> SnapshotSchedule {
        SnapshotSchedule {
            every_slots,
            newest_bytes,
            log_bytes: 0,
            newest,
            writing: None,
            db_bytes_at_start: 0,
            incoming: None,
            decoding: None,
            transfers: 0,
            planted_older: None,
        }
    }

    /// Whether a snapshot is due with `applied` slots applied: at least `every_slots` since the
    /// newest, and, once the store is large, at least half its bytes (or
    /// [`SNAPSHOT_LOG_BYTES_MAX`]) applied since. A snapshot writes the whole store, history
    /// included: spaced by slots alone, a store that grows makes each one dearer at the same
    /// pace, until writing snapshots takes most of the machine (3.3 s apart, 0.7 s of encoding
    /// each for 171 MB on three members of one 2-core machine: puts fell from 14,000/s to
    /// 9,000/s in a minute). Spaced by bytes, a snapshot costs at most two bytes written per
    /// byte of command applied, whatever the store's size; the log kept in memory meanwhile is
    /// at most half a snapshot, and never more than [`SNAPSHOT_LOG_BYTES_MAX`].
    pub(crate) fn due(&self, applied: Slot) -> bool {
        let last = self.newest.map_or(0, |s| s.0);
        let slots_due = applied.0 >= last.saturating_add(self.every_slots);
        let bytes_due = self.newest_bytes < SNAPSHOT_SPACED_FROM_BYTES
            || self.log_bytes >= (self.newest_bytes / 2).min(SNAPSHOT_LOG_BYTES_MAX);
        self.writing.is_none() && slots_due && bytes_due
    }

    /// `bytes` of commands were applied: the log beyond the newest snapshot grew.
    pub(crate) fn applied(&mut self, bytes: u64) {
        self.log_bytes = self.log_bytes.saturating_add(bytes);
    }

    /// A snapshot of everything applied so far begins: the log it will cover starts over.
    pub(crate) fn begin(&mut self, through: Slot) {
        debug_assert!(self.writing.is_none(), "one snapshot write at a time");
        self.writing = Some(through);
        self.log_bytes = 0;
    }

    /// The newest snapshot's store measured `bytes` (written here, or installed from a peer,
    /// which also ends the log before it).
    pub(crate) fn measured(&mut self, bytes: u64, installed: bool) {
        self.newest_bytes = bytes;
        if installed {
            self.log_bytes = 0;
        }
    }

    /// A snapshot is durable: it is the newest unless a newer one arrived meanwhile.
    pub(crate) fn made_durable(&mut self, through: Slot) {
        if self.newest.is_none_or(|n| n < through) {
            self.newest = Some(through);
        }
    }

    /// The replica wants a snapshot through at least `through` from `from`: starts a transfer
    /// (or re-asks an idle one) and returns the ask to send.
    pub(crate) fn want(
        &mut self,
        from: u64,
        through: Slot,
        now: Micros,
    ) -> Vec<(u64, PeerMessage)> {
        if self.decoding.is_some() {
            return Vec::new();
        }
        let restart = self
            .incoming
            .as_ref()
            .is_none_or(|i| i.at_least < through || i.asks >= ASKS_MAX);
        if restart {
            self.transfers += 1;
            self.incoming = Some(Incoming {
                transfer: self.transfers,
                from,
                at_least: through,
                next_offset: 0,
                asked_end: 0,
                chunk_len: 0,
                total_len: 0,
                asked_at: now,
                asks: 0,
            });
        }
        // A transfer in progress is re-asked only by the timer (`retry_ask`): the replica may
        // want the snapshot again while its chunks are on their way.
        self.next_asks(now)
    }

    /// The asks that fill the window of the transfer in progress: from the end of what is in
    /// flight up to [`WINDOW_CHUNKS`] chunks past the next offset (one ask until a chunk told
    /// the source's chunk size), all to the transfer's source.
    pub(crate) fn next_asks(&mut self, now: Micros) -> Vec<(u64, PeerMessage)> {
        let Some(i) = self.incoming.as_mut() else {
            return Vec::new();
        };
        i.asked_end = i.asked_end.max(i.next_offset);
        let mut asks = Vec::new();
        loop {
            let in_flight = i.asked_end - i.next_offset;
            let room = if i.chunk_len == 0 {
                in_flight == 0
            } else {
                i.asked_end < i.total_len && in_flight < WINDOW_CHUNKS * i.chunk_len
            };
            if !room {
                break;
            }
            asks.push((
                i.from,
                PeerMessage::SnapshotAsk {
                    through: i.at_least,
                    offset: i.asked_end,
                },
            ));
            // Unknown chunk size: one byte past marks the one ask in flight.
            i.asked_end += i.chunk_len.max(1);
        }
        debug_assert!(asks.len() as u64 <= WINDOW_CHUNKS, "the window is bounded");
        if !asks.is_empty() {
            i.asked_at = now;
            i.asks += 1;
        }
        asks
    }

    /// Re-asks a transfer that heard nothing for a while (from its next offset: what was in
    /// flight is taken as lost); drops one that keeps failing.
    pub(crate) fn retry_ask(&mut self, now: Micros) -> Vec<(u64, PeerMessage)> {
        let Some(i) = self.incoming.as_mut() else {
            return Vec::new();
        };
        if now.saturating_since(i.asked_at) < ASK_AGAIN {
            return Vec::new();
        }
        if i.asks >= ASKS_MAX {
            // The replica asks again (possibly from another member) on its own schedule.
            self.incoming = None;
            return Vec::new();
        }
        i.asked_end = i.next_offset;
        self.next_asks(now)
    }

    /// A chunk of the transfer in progress arrived from its source: it tells the source's chunk
    /// size and the body's length, which size the window.
    pub(crate) fn chunk_arrived(&mut self, data_len: u64, total_len: u64) {
        if let Some(i) = self.incoming.as_mut() {
            i.chunk_len = i.chunk_len.max(data_len);
            i.total_len = total_len;
        }
    }

    /// The driver stored (or not) a chunk of transfer `transfer`; `progress` resets the count
    /// of asks without progress. Whether to fill the window again.
    pub(crate) fn stored(&mut self, transfer: u64, next_offset: u64, progress: bool) -> bool {
        let Some(i) = self.incoming.as_mut().filter(|i| i.transfer == transfer) else {
            return false;
        };
        i.next_offset = next_offset;
        if progress {
            i.asks = 0;
            return true;
        }
        // Not taken: ask from where the receiver stands unless that chunk is still in flight
        // (chunks after a lost one come back not taken; the retry asks again).
        if next_offset < i.asked_end {
            return false;
        }
        i.asked_end = next_offset;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paxos::multi::{ChosenEntry, Registration, Value};

    /// An applier with one registration applied (member 1, key 10, in slot 1).
    fn registered() -> Applier<KvStore> {
        let mut applier = Applier::new(KvStore::new());
        let reg = Registration {
            member: 1,
            incarnation: 10,
            seen: Slot::ZERO,
        };
        applier.apply(
            &ChosenEntry {
                slot: Slot(1),
                value: Value::Batch(vec![reg.command()]),
            },
            &mut Vec::new(),
        );
        applier
    }

    #[test]
    fn a_body_keeps_the_registrations() {
        let applier = registered();
        assert!(applier.registrations().strict);
        let (bytes, _) = encode_body(&applier, true).expect("encodes");
        assert_eq!(bytes[0], BODY_VERSION);
        let restored = AppliedSnapshot::decode(Slot(1), &bytes)
            .and_then(AppliedSnapshot::into_applier)
            .expect("decodes");
        assert_eq!(restored.registrations(), applier.registrations());
        // A backup (no sessions) carries none: a restore is a new cluster.
        let (bytes, _) = encode_body(&applier, false).expect("encodes");
        let restored = AppliedSnapshot::decode(Slot(1), &bytes)
            .and_then(AppliedSnapshot::into_applier)
            .expect("decodes");
        assert_eq!(restored.registrations(), &Registrations::default());
    }

    #[test]
    fn a_version_2_body_decodes_without_registrations() {
        let applier = registered();
        let v2 = BodyV2 {
            kv: applier.machine().view().snapshot(),
            sessions: vec![(7 << 12, 3, Err(kv::KvError::EmptyKey))],
            membership: None,
            table: None,
        };
        let bytes = postcard::to_extend(&v2, vec![BODY_VERSION_V2]).expect("encodes");
        let restored = AppliedSnapshot::decode(Slot(1), &bytes)
            .and_then(AppliedSnapshot::into_applier)
            .expect("a version 2 body decodes");
        assert_eq!(restored.registrations(), &Registrations::default());
        assert_eq!(restored.sessions().len(), 1, "its sessions kept");
        let v1 = BodyV1 {
            kv: v2.kv,
            sessions: v2.sessions,
        };
        let bytes = postcard::to_extend(&v1, vec![BODY_VERSION_V1]).expect("encodes");
        let restored = AppliedSnapshot::decode(Slot(1), &bytes)
            .and_then(AppliedSnapshot::into_applier)
            .expect("a version 1 body decodes");
        assert!(!restored.registrations().strict);
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_small_store_is_snapshotted_every_so_many_slots() {
        let mut schedule = SnapshotSchedule::new(100, Some(Slot(100)), MIB);
        assert!(!schedule.due(Slot(199)));
        assert!(
            schedule.due(Slot(200)),
            "no bytes needed below the spacing threshold"
        );
        schedule.begin(Slot(200));
        assert!(!schedule.due(Slot(400)), "one write at a time");
    }

    #[test]
    fn a_large_store_waits_for_half_its_bytes_of_commands() {
        let mut schedule = SnapshotSchedule::new(100, Some(Slot(100)), 64 * MIB);
        schedule.applied(31 * MIB);
        assert!(
            !schedule.due(Slot(10_000)),
            "31 MiB applied since a 64 MiB snapshot"
        );
        schedule.applied(MIB);
        assert!(schedule.due(Slot(10_000)));
        assert!(!schedule.due(Slot(199)), "the slot spacing still holds");
        // Beginning a snapshot starts the count over; a durable one measures the store again.
        schedule.begin(Slot(10_000));
        schedule.writing = None;
        schedule.made_durable(Slot(10_000));
        schedule.measured(80 * MIB, false);
        schedule.applied(39 * MIB);
        assert!(!schedule.due(Slot(20_000)));
        schedule.applied(MIB);
        assert!(schedule.due(Slot(20_000)));
    }

    #[test]
    fn the_log_between_snapshots_of_a_huge_store_is_bounded() {
        let mut schedule = SnapshotSchedule::new(100, Some(Slot(100)), 8 << 30);
        schedule.applied(SNAPSHOT_LOG_BYTES_MAX - 1);
        assert!(!schedule.due(Slot(1_000_000)));
        schedule.applied(1);
        assert!(
            schedule.due(Slot(1_000_000)),
            "half of 8 GiB is more than the log may hold"
        );
    }

    #[test]
    fn an_installed_snapshot_ends_the_log_before_it() {
        let mut schedule = SnapshotSchedule::new(100, Some(Slot(100)), 64 * MIB);
        schedule.applied(40 * MIB);
        schedule.made_durable(Slot(5_000));
        schedule.measured(64 * MIB, true);
        assert!(
            !schedule.due(Slot(10_000)),
            "the log counts from the installed snapshot"
        );
    }
}
