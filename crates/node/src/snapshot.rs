//! Snapshots of the applied state (the key-value store and the session table) on disk, and
//! their transfer to a member that needs slots others have compacted.
//!
//! The body is this node's format inside storage's verified snapshot file: a version byte,
//! then postcard of [`NodeSnapshot`]'s fields. Transfer is stop-and-wait: the receiver asks for
//! the chunk at its next offset, the source sends that one chunk, so a transfer holds at most
//! one chunk in flight and resumes from where it stopped after a lost message or a restart of
//! either side (storage's receiver keeps what it wrote).

use crate::peer::PeerMessage;
use bytes::Bytes;
use kv::{KvOutput, KvStore};
use paxos::multi::{Applier, ClientId};
use paxos::Slot;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use storage::{SnapshotChunk, SnapshotMeta, SnapshotReceiver, SnapshotSource, StdFs};
use thiserror::Error;
use tokio::sync::mpsc;
use tokio::time::Instant;

const BODY_VERSION: u8 = 1;
/// One chunk on the wire: well under the peer frame limit.
const CHUNK_BYTES: u64 = 1 << 20;
/// A transfer asks again this long after its last chunk, and gives up after this many asks
/// without progress (the core asks again on its own schedule).
const ASK_AGAIN: Duration = Duration::from_millis(500);
const ASKS_MAX: u32 = 10;

/// Why a snapshot could not be taken, read or installed.
#[derive(Debug, Error)]
pub enum SnapshotError {
    /// Storage refused.
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    /// The body is not ours or is damaged.
    #[error("snapshot body: {0}")]
    Body(String),
}

/// The applied state at a slot.
pub struct NodeSnapshot {
    /// Every slot through here is applied in it.
    pub through: Slot,
    kv: Vec<u8>,
    sessions: Vec<(u64, u64, KvOutput)>,
}

#[derive(Serialize, Deserialize)]
struct Body {
    kv: Vec<u8>,
    sessions: Vec<(u64, u64, KvOutput)>,
}

/// This node's snapshot body for `applier`'s state: the version byte, then postcard of the
/// store and (`with_sessions`) the session table. Also returns the store's part's length.
pub(crate) fn encode_body(
    applier: &Applier<KvStore>,
    with_sessions: bool,
) -> Result<(Vec<u8>, u64), SnapshotError> {
    let kv = applier.machine().snapshot();
    let kv_len = kv.len() as u64;
    let sessions = if with_sessions {
        applier
            .sessions()
            .iter()
            .map(|(c, (seq, out))| (c.0, *seq, out.clone()))
            .collect()
    } else {
        Vec::new()
    };
    let body = Body { kv, sessions };
    let bytes = postcard::to_extend(&body, vec![BODY_VERSION])
        .map_err(|e| SnapshotError::Body(e.to_string()))?;
    Ok((bytes, kv_len))
}

impl NodeSnapshot {
    pub(crate) fn decode(through: Slot, bytes: &[u8]) -> Result<NodeSnapshot, SnapshotError> {
        let (&version, rest) = bytes
            .split_first()
            .ok_or_else(|| SnapshotError::Body("empty".into()))?;
        if version != BODY_VERSION {
            return Err(SnapshotError::Body(format!(
                "version {version}, this build reads {BODY_VERSION}"
            )));
        }
        let body: Body =
            postcard::from_bytes(rest).map_err(|e| SnapshotError::Body(e.to_string()))?;
        Ok(NodeSnapshot {
            through,
            kv: body.kv,
            sessions: body.sessions,
        })
    }

    /// Size of the store's part, the node's "db size".
    pub fn kv_bytes_len(&self) -> u64 {
        self.kv.len() as u64
    }

    /// The applier this snapshot restores.
    pub fn into_applier(self) -> Result<Applier<KvStore>, SnapshotError> {
        let store = KvStore::restore(&self.kv).map_err(|e| SnapshotError::Body(e.to_string()))?;
        let sessions: BTreeMap<ClientId, (u64, KvOutput)> = self
            .sessions
            .into_iter()
            .map(|(c, seq, out)| (ClientId(c), (seq, out)))
            .collect();
        Ok(Applier::restore(store, sessions, self.through))
    }
}

/// The outcome of a snapshot write begun by [`SnapshotState::start`].
#[derive(Debug)]
pub struct SnapshotWritten {
    /// The slot it covers.
    pub through: Slot,
    result: Result<SnapshotMeta, SnapshotError>,
}

struct Incoming {
    from: u64,
    at_least: Slot,
    receiver: Option<SnapshotReceiver<StdFs>>,
    asked_at: Instant,
    asks: u32,
}

/// Snapshots of one member: when to take one, the newest on disk, and a transfer in progress.
pub struct SnapshotState {
    fs: StdFs,
    dir: PathBuf,
    every_slots: u64,
    newest: Option<SnapshotMeta>,
    /// The slot of the snapshot being written off the core's task, if one is.
    writing: Option<Slot>,
    restored_bytes: u64,
    incoming: Option<Incoming>,
}

impl SnapshotState {
    /// Loads the newest snapshot storage recovered (if any) into an applier.
    pub fn open(
        fs: StdFs,
        dir: PathBuf,
        every_slots: u64,
        newest: Option<SnapshotMeta>,
        limits: kv::Limits,
    ) -> Result<(SnapshotState, Applier<KvStore>), SnapshotError> {
        let (applier, restored_bytes) = match &newest {
            Some(meta) => {
                let body = storage::read_snapshot_body(&fs, meta)?;
                let snap = NodeSnapshot::decode(meta.through, &body)?;
                let bytes = snap.kv_bytes_len();
                (snap.into_applier()?, bytes)
            }
            // A snapshot carries the limits it was taken with; a fresh store takes the
            // configured ones (every member must be configured alike).
            None => (Applier::new(KvStore::with_limits(limits)), 0),
        };
        Ok((
            SnapshotState {
                fs,
                dir,
                every_slots,
                newest,
                writing: None,
                restored_bytes,
                incoming: None,
            },
            applier,
        ))
    }

    /// The slot the newest snapshot on disk covers, if there is one.
    pub fn newest_through(&self) -> Option<Slot> {
        self.newest.as_ref().map(|m| m.through)
    }

    /// Bytes of the store restored at start.
    pub fn restored_bytes(&self) -> u64 {
        self.restored_bytes
    }

    /// Whether a snapshot is due with `applied` slots applied.
    pub fn due(&self, applied: Slot) -> bool {
        let last = self.newest.as_ref().map_or(0, |m| m.through.0);
        self.writing.is_none() && applied.0 >= last + self.every_slots
    }

    /// Serializes the applier's state here, then writes it durably (file fsync, rename,
    /// directory fsync) on a blocking thread, so a large store's write and sync never hold up
    /// the caller (the core's task, which sends heartbeats); `done` gets the outcome, which the
    /// caller hands to [`SnapshotState::written`] before compacting anything. Returns the
    /// slot covered and the store's bytes, or `None` if a write is already in progress (one at
    /// a time). `crash_mid` (test-only) aborts the process once the body is written but before
    /// the file is finished, leaving a temporary file recovery must ignore.
    pub fn start(
        &mut self,
        applier: &Applier<KvStore>,
        crash_mid: bool,
        done: mpsc::UnboundedSender<SnapshotWritten>,
    ) -> Result<Option<(Slot, u64)>, SnapshotError> {
        if self.writing.is_some() {
            return Ok(None);
        }
        let through = applier.applied_through();
        let (bytes, kv_len) = encode_body(applier, true)?;
        let (fs, dir) = (self.fs, self.dir.clone());
        self.writing = Some(through);
        tokio::task::spawn_blocking(move || {
            let write = || -> Result<SnapshotMeta, SnapshotError> {
                let mut writer = storage::SnapshotWriter::create(fs, dir, through)?;
                writer.write(&bytes)?;
                if crash_mid {
                    eprintln!("synod: test crash point DuringSnapshot reached; aborting");
                    std::process::abort();
                }
                Ok(writer.finish()?)
            };
            let _ = done.send(SnapshotWritten {
                through,
                result: write(),
            });
        });
        Ok(Some((through, kv_len)))
    }

    /// A write [`SnapshotState::start`] began has ended; on success the snapshot is durable
    /// and becomes the newest (unless one received from a peer meanwhile is newer), and the
    /// log through its slot may be compacted.
    pub fn written(&mut self, w: SnapshotWritten) -> Result<Slot, SnapshotError> {
        debug_assert_eq!(self.writing, Some(w.through), "one write at a time");
        self.writing = None;
        let meta = w.result?;
        if self
            .newest
            .as_ref()
            .is_none_or(|n| n.through < meta.through)
        {
            self.newest = Some(meta);
        }
        Ok(w.through)
    }

    /// The one chunk at `offset` of the newest snapshot, if it covers `through`.
    pub fn serve(&self, through: Slot, offset: u64) -> Option<Bytes> {
        let meta = self.newest.as_ref().filter(|m| m.through >= through)?;
        let mut source = match SnapshotSource::open(&self.fs, meta, offset, CHUNK_BYTES) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot serve the snapshot");
                return None;
            }
        };
        match source.next_chunk() {
            Ok(Some(chunk)) => Some(Bytes::from(chunk.encode())),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the snapshot");
                None
            }
        }
    }

    /// The replica wants a snapshot through at least `through` from `from`: starts a transfer
    /// (or re-asks an idle one) and returns the ask to send.
    pub fn want(&mut self, from: u64, through: Slot) -> Option<(u64, PeerMessage)> {
        let restart = self
            .incoming
            .as_ref()
            .is_none_or(|i| i.at_least < through || i.asks >= ASKS_MAX);
        if restart {
            self.incoming = Some(Incoming {
                from,
                at_least: through,
                receiver: None,
                asked_at: Instant::now(),
                asks: 0,
            });
        }
        self.next_ask()
    }

    /// The ask for the next chunk of the transfer in progress.
    pub fn next_ask(&mut self) -> Option<(u64, PeerMessage)> {
        let i = self.incoming.as_mut()?;
        i.asked_at = Instant::now();
        i.asks += 1;
        let offset = i.receiver.as_ref().map_or(0, |r| r.next_offset());
        Some((
            i.from,
            PeerMessage::SnapshotAsk {
                through: i.at_least,
                offset,
            },
        ))
    }

    /// Re-asks a transfer that heard nothing for a while; drops one that keeps failing.
    pub fn retry_ask(&mut self, now: Instant) -> Option<(u64, PeerMessage)> {
        let i = self.incoming.as_ref()?;
        if now.duration_since(i.asked_at) < ASK_AGAIN {
            return None;
        }
        if i.asks >= ASKS_MAX {
            // The replica asks again (possibly from another member) on its own schedule.
            self.incoming = None;
            return None;
        }
        self.next_ask()
    }

    /// Takes one chunk; returns the whole snapshot once the last chunk verified.
    pub fn receive(
        &mut self,
        from: u64,
        bytes: &[u8],
    ) -> Result<Option<NodeSnapshot>, SnapshotError> {
        let chunk = SnapshotChunk::decode(bytes).map_err(storage::StorageError::from)?;
        let Some(i) = self.incoming.as_mut().filter(|i| i.from == from) else {
            return Ok(None);
        };
        if chunk.through < i.at_least {
            return Err(SnapshotError::Body(format!(
                "chunk of snapshot {} does not cover slot {}",
                chunk.through, i.at_least
            )));
        }
        let fresh = i
            .receiver
            .as_ref()
            .is_none_or(|r| r.snapshot() != (chunk.through, chunk.total_len, chunk.body_crc));
        if fresh {
            if chunk.offset != 0 {
                return Ok(None);
            }
            i.receiver = Some(SnapshotReceiver::new(
                self.fs,
                self.dir.clone(),
                chunk.through,
                chunk.total_len,
                chunk.body_crc,
            )?);
        }
        let Some(receiver) = i.receiver.as_mut() else {
            return Ok(None);
        };
        i.asks = 0;
        let Some(meta) = receiver.accept(&chunk)? else {
            return Ok(None);
        };
        self.incoming = None;
        let body = storage::read_snapshot_body(&self.fs, &meta)?;
        let snap = NodeSnapshot::decode(meta.through, &body)?;
        self.newest = Some(meta);
        Ok(Some(snap))
    }
}
