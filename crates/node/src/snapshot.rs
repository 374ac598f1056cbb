//! The member's snapshots on disk: the files behind the decisions `member` makes. The member
//! says when to write one (with its body), which chunk of the newest to serve, and which
//! received chunk to store; this module does the file work and reports back.
//!
//! The body is the member's format (`member::snapshot`) inside storage's verified snapshot
//! file. The member hands a body out as a job (a view of the store, O(1) for it to take);
//! encoding it (the pass over the whole store) and writing it (file fsync, rename, directory
//! fsync) run on a blocking thread, one at a time, so neither a large store's encoding nor its
//! write stalls the core's task, which applies writes meanwhile; storage's receiver keeps what it
//! wrote, so a transfer resumes after a lost message or a restart of either side.

use bytes::Bytes;
use kv::KvStore;
use member::snapshot::{BodyError, BodyJob, ChunkStored, DecodedSnapshot};
use paxos::multi::Applier;
use paxos::Slot;
use std::path::PathBuf;
use storage::{Intake, SnapshotChunk, SnapshotIntake, SnapshotMeta, SnapshotSource, StdFs};
use thiserror::Error;
use tokio::sync::mpsc;

/// One chunk on the wire: well under the peer frame limit.
const CHUNK_BYTES: u64 = 1 << 20;

/// Open sources kept for members being served a snapshot (one open file each).
const SERVING_MAX: usize = 16;

/// Why a snapshot could not be taken, read or installed.
#[derive(Debug, Error)]
pub enum SnapshotError {
    /// Storage refused.
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    /// The body is not ours or is damaged.
    #[error(transparent)]
    Body(#[from] BodyError),
}

/// The outcome of a snapshot write begun by [`SnapshotFiles::write`].
#[derive(Debug)]
pub struct SnapshotWritten {
    /// The slot it covers.
    pub through: Slot,
    /// The file, and the bytes of the body's store part.
    result: Result<(SnapshotMeta, u64), SnapshotError>,
}

/// One member's snapshot files: the newest on disk, and the receiver of a transfer.
pub struct SnapshotFiles {
    fs: StdFs,
    dir: PathBuf,
    newest: Option<SnapshotMeta>,
    /// The member's transfer number, and the receiver storing its chunks.
    incoming: SnapshotIntake<StdFs>,
    /// The open source of the newest file per member being served, at most [`SERVING_MAX`].
    serving: std::collections::HashMap<u64, SnapshotSource<StdFs>>,
    /// The last snapshot received whole, for [`SnapshotFiles::decode`].
    received: Option<SnapshotMeta>,
}

/// The outcome of a decode begun by [`SnapshotFiles::decode`].
#[derive(Debug)]
pub struct SnapshotDecoded {
    /// The slot it covers.
    pub through: Slot,
    /// The state it restores, or why not.
    pub result: Result<DecodedSnapshot, String>,
}

/// What [`SnapshotFiles::open`] restored.
pub struct Restored {
    /// The files.
    pub files: SnapshotFiles,
    /// The applied state of the newest snapshot (or an empty store).
    pub applier: Applier<KvStore>,
    /// The member table the snapshot holds (a member's own snapshot since body version 2).
    pub table: Option<member::cluster::MemberTable>,
    /// Bytes of the store's part of the snapshot (0 without one).
    pub kv_bytes: u64,
}

impl SnapshotFiles {
    /// Loads the newest snapshot storage recovered (if any) into an applier.
    pub fn open(
        fs: StdFs,
        dir: PathBuf,
        newest: Option<SnapshotMeta>,
        limits: kv::Limits,
    ) -> Result<Restored, SnapshotError> {
        let (applier, kv_bytes, table) = match &newest {
            Some(meta) => {
                let body = storage::read_snapshot_body(&fs, meta)?;
                DecodedSnapshot::decode(meta.through, &body)?.into_parts()
            }
            // A snapshot carries the limits it was taken with; a fresh store takes the
            // configured ones (every member must be configured alike).
            None => (Applier::new(KvStore::with_limits(limits)), 0, None),
        };
        Ok(Restored {
            files: SnapshotFiles {
                incoming: SnapshotIntake::new(fs, dir.clone()),
                fs,
                dir,
                newest,
                received: None,
                serving: std::collections::HashMap::new(),
            },
            applier,
            table,
            kv_bytes,
        })
    }

    /// The slot the newest snapshot on disk covers, if there is one.
    pub fn newest_through(&self) -> Option<Slot> {
        self.newest.as_ref().map(|m| m.through)
    }

    /// Encodes `body` and writes it durably (file fsync, rename, directory fsync) on a
    /// blocking thread, so neither the pass over a large store nor its write and sync hold up
    /// the core's task (which applies writes and sends heartbeats meanwhile: the job is a view
    /// of the store as of `through`); `done` gets the outcome, which the caller hands to
    /// [`SnapshotFiles::written`] before telling the member. `crash_mid` (test-only) aborts the
    /// process once the body is written but before the file is finished, leaving a temporary
    /// file recovery must ignore.
    pub fn write(
        &self,
        through: Slot,
        body: BodyJob,
        crash_mid: bool,
        done: mpsc::UnboundedSender<SnapshotWritten>,
    ) {
        let (fs, dir) = (self.fs, self.dir.clone());
        tokio::task::spawn_blocking(move || {
            let write = || -> Result<(SnapshotMeta, u64), SnapshotError> {
                let started = std::time::Instant::now();
                let body = body.encode()?;
                let encoded = started.elapsed();
                let mut writer = storage::SnapshotWriter::create(fs, dir, through)?;
                writer.write(&body.bytes)?;
                if crash_mid {
                    eprintln!("synod: test crash point DuringSnapshot reached; aborting");
                    std::process::abort();
                }
                let meta = writer.finish()?;
                tracing::info!(
                    through = through.0,
                    bytes = body.bytes.len(),
                    encode_ms = encoded.as_millis() as u64,
                    write_ms = (started.elapsed() - encoded).as_millis() as u64,
                    "snapshot written off the core"
                );
                Ok((meta, body.kv_bytes))
            };
            let _ = done.send(SnapshotWritten {
                through,
                result: write(),
            });
        });
    }

    /// A write [`SnapshotFiles::write`] began has ended; on success the snapshot is durable
    /// and becomes the newest (unless one received from a peer meanwhile is newer). Returns
    /// the slot and the outcome for the member (the bytes of the store part, on success).
    pub fn written(&mut self, w: SnapshotWritten) -> (Slot, Result<u64, String>) {
        let outcome = match w.result {
            Ok((meta, kv_bytes)) => {
                if self
                    .newest
                    .as_ref()
                    .is_none_or(|n| n.through < meta.through)
                {
                    self.newest = Some(meta);
                }
                Ok(kv_bytes)
            }
            Err(e) => Err(e.to_string()),
        };
        (w.through, outcome)
    }

    /// Reads and decodes the snapshot through `through` received last (the member asked, once
    /// its last chunk was stored) on a blocking thread: the read and the pass over the whole
    /// body stay off the core's task, which goes on with heartbeats and writes. The member asks
    /// for one at a time, so at most one body (and the store it restores) is in memory here.
    pub fn decode(&self, through: Slot, done: mpsc::UnboundedSender<SnapshotDecoded>) {
        let fs = self.fs;
        let meta = self.received.clone().filter(|m| m.through == through);
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let result = match meta {
                None => Err(format!("no received snapshot through {through} to decode")),
                Some(meta) => storage::read_snapshot_body(&fs, &meta)
                    .map_err(|e| e.to_string())
                    .and_then(|body| {
                        DecodedSnapshot::decode(through, &body).map_err(|e| e.to_string())
                    }),
            };
            tracing::info!(
                through = through.0,
                decode_ms = started.elapsed().as_millis() as u64,
                ok = result.is_ok(),
                "received snapshot decoded off the core"
            );
            let _ = done.send(SnapshotDecoded { through, result });
        });
    }

    /// The one chunk at `offset` of the newest snapshot, for member `to`, if it covers
    /// `through`. The file was verified whole when it became the newest; each chunk is read on
    /// its own, without reading the whole file again (see [`SnapshotSource::resume`]).
    pub fn serve(&mut self, to: u64, through: Slot, offset: u64) -> Option<Bytes> {
        let meta = self.newest.as_ref().filter(|m| m.through >= through)?;
        // One open source per member served, reading the newest file in order: a pipelined
        // transfer asks for the chunks one after another, so each is one read where the last
        // ended (no open and header check per chunk). Sources of an older file go.
        self.serving.retain(|_, s| s.meta() == meta);
        if !self.serving.contains_key(&to) && self.serving.len() >= SERVING_MAX {
            self.serving.clear();
        }
        let source = match self.serving.entry(to) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                match SnapshotSource::resume(&self.fs, meta, offset, CHUNK_BYTES) {
                    Ok(s) => e.insert(s),
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot serve the snapshot");
                        return None;
                    }
                }
            }
        };
        source.seek(offset);
        match source.next_chunk() {
            Ok(Some(chunk)) => Some(Bytes::from(chunk.encode())),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the snapshot");
                self.serving.remove(&to);
                None
            }
        }
    }

    /// Stores one chunk of the member's transfer `transfer`. A new transfer number of the same
    /// snapshot (the member gave up on a dead connection and asked again) keeps what was
    /// received: the transfer resumes from the receiver's offset, not from zero. Once the last
    /// chunk verified, the snapshot is the newest on disk and the member is told; it then asks
    /// for the decode ([`SnapshotFiles::decode`]).
    pub fn store(&mut self, transfer: u64, chunk: &SnapshotChunk) -> ChunkStored {
        match self.try_store(transfer, chunk) {
            Ok(stored) => stored,
            Err(e) => ChunkStored::Failed(e.to_string()),
        }
    }

    fn try_store(
        &mut self,
        transfer: u64,
        chunk: &SnapshotChunk,
    ) -> Result<ChunkStored, SnapshotError> {
        let meta = match self.incoming.store(transfer, chunk)? {
            Intake::Progress { next_offset } => return Ok(ChunkStored::Progress { next_offset }),
            Intake::Ignored { next_offset } => return Ok(ChunkStored::Ignored { next_offset }),
            Intake::Complete(meta) => meta,
        };
        let through = meta.through;
        // Only forward: a transfer begun while this member was behind can complete after it
        // caught up by the log and wrote a newer snapshot of its own (whose slot its log is
        // compacted through); serving the older file would leave its followers unable to
        // catch up. Found by the member-level simulator (seed 69).
        if self.newest.as_ref().is_none_or(|n| n.through < through) {
            self.newest = Some(meta.clone());
        }
        self.received = Some(meta);
        Ok(ChunkStored::Complete { through })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A snapshot file of `len` bytes of body in `dir`, through `slot`.
    fn snapshot_file(dir: &std::path::Path, slot: u64, len: usize) -> (SnapshotMeta, Vec<u8>) {
        let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut writer =
            storage::SnapshotWriter::create(StdFs::new(), dir, Slot(slot)).expect("create");
        writer.write(&body).expect("write");
        (writer.finish().expect("finish"), body)
    }

    /// Files in `dir` with no snapshot yet (a test sets `newest` to serve one).
    fn files(dir: &std::path::Path) -> SnapshotFiles {
        match SnapshotFiles::open(StdFs::new(), dir.to_path_buf(), None, kv::Limits::default()) {
            Ok(restored) => restored.files,
            Err(e) => panic!("an empty directory opens: {e}"),
        }
    }

    fn chunk(source: &mut SnapshotFiles, through: u64, offset: u64) -> SnapshotChunk {
        let bytes = source.serve(2, Slot(through), offset).expect("a chunk");
        SnapshotChunk::decode(&bytes).expect("decodes")
    }

    #[test]
    fn a_transfer_is_stored_chunk_by_chunk_and_a_new_transfer_resumes_it() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (meta, body) = snapshot_file(a.path(), 9, (CHUNK_BYTES as usize) * 2 + 100);
        let mut source = files(a.path());
        source.newest = Some(meta);
        assert!(
            source.serve(2, Slot(10), 0).is_none(),
            "does not cover slot 10"
        );
        let mut sink = files(b.path());

        // A new transfer must start at offset 0.
        let late = chunk(&mut source, 9, CHUNK_BYTES);
        assert_eq!(
            sink.store(1, &late),
            ChunkStored::Ignored { next_offset: 0 }
        );
        let first = chunk(&mut source, 9, 0);
        assert_eq!(
            sink.store(1, &first),
            ChunkStored::Progress {
                next_offset: CHUNK_BYTES
            }
        );
        // The member restarted its transfer (transfer 2, after a connection drop, say) from
        // offset 0: the receiver keeps the chunk it has and points the member past it.
        assert_eq!(
            sink.store(2, &first),
            ChunkStored::Ignored {
                next_offset: CHUNK_BYTES
            }
        );
        let mut offset = CHUNK_BYTES;
        let mut chunks = 0;
        let stored = loop {
            chunks += 1;
            match sink.store(2, &chunk(&mut source, 9, offset)) {
                ChunkStored::Progress { next_offset } => offset = next_offset,
                other => break other,
            }
        };
        assert_eq!(stored, ChunkStored::Complete { through: Slot(9) });
        assert_eq!(
            chunks, 2,
            "only the chunks not yet received were sent again"
        );
        let received = sink.received.clone().expect("the received file");
        assert_eq!(
            storage::read_snapshot_body(&StdFs::new(), &received).expect("reads"),
            body
        );
        assert_eq!(sink.newest_through(), Some(Slot(9)));
        assert!(
            sink.serve(2, Slot(9), 0).is_some(),
            "the received snapshot is served"
        );
        // Another snapshot under a new transfer is a fresh start.
        let (other, _) = snapshot_file(a.path(), 12, 10);
        source.newest = Some(other);
        assert_eq!(
            sink.store(3, &chunk(&mut source, 12, 0)),
            ChunkStored::Complete { through: Slot(12) }
        );
        assert_eq!(sink.newest_through(), Some(Slot(12)));
    }
}
