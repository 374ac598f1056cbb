//! The member's snapshots on disk: the files behind the decisions `member` makes. The member
//! says when to write one (with its body), which chunk of the newest to serve, and which
//! received chunk to store; this module does the file work and reports back.
//!
//! The body is the member's format (`member::snapshot`) inside storage's verified snapshot
//! file. The member hands a body out as a job (a view of the store, O(1) for it to take);
//! encoding it (the pass over the whole store) and writing it (file fsync, rename, directory
//! fsync) run on a blocking thread, one at a time, so neither a large store's encoding nor its
//! write stalls the core's task, which applies writes meanwhile. A transfer's file work is off
//! the core's task too: received chunks are stored (and the finished file synced and renamed)
//! by one thread in their order, the intake lane, and served chunks are read by another, the
//! serving lane; each reports back through [`SnapshotIo`] events. Storage's intake keeps what
//! it wrote durably, so a transfer resumes after a lost message, a dropped connection or a
//! restart of either side.

use bytes::Bytes;
use kv::KvStore;
use member::snapshot::{BodyError, BodyJob, ChunkStored, DecodedSnapshot};
use paxos::multi::Applier;
use paxos::Slot;
use std::collections::HashMap;
use std::path::PathBuf;
use storage::{Intake, SnapshotChunk, SnapshotIntake, SnapshotMeta, SnapshotSource, StdFs};
use thiserror::Error;
use tokio::sync::mpsc;

/// One chunk on the wire: well under the peer frame limit.
const CHUNK_BYTES: u64 = 1 << 20;

/// Open sources kept for members being served a snapshot (one open file each).
const SERVING_MAX: usize = 16;

/// Received chunks waiting for (or in) the intake lane, at most: the member asks for
/// `member::snapshot::WINDOW_CHUNKS` (4) at a time, so more are duplicates or late ones. One
/// past the bound is refused at once (the member asks again), so a flood of chunks holds at
/// most this many MiB here.
const STORES_MAX: usize = 8;

/// A transfer syncs what it received every this many bytes (4 chunks): what a restart of
/// this member resumes from, at one data and one index `fdatasync` per 4 MiB.
const INTAKE_SYNC_BYTES: u64 = 4 * CHUNK_BYTES;

/// Chunk reads waiting for (or in) the serving lane, at most (the MiB a flood of asks can hold
/// here). An ask past it is dropped; its asker asks again.
const READS_MAX: usize = 16;

/// Why a snapshot could not be taken, read or installed.
#[derive(Debug, Error)]
pub enum SnapshotError {
    /// Storage refused.
    #[error(transparent)]
    Storage(#[from] storage::StorageError),
    /// A lane's thread could not start.
    #[error("cannot start the snapshot {lane} thread: {error}")]
    Thread {
        /// Which lane.
        lane: &'static str,
        /// Why.
        error: std::io::Error,
    },
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

/// One member's snapshot files: the newest on disk, the last received whole, and the two
/// lanes a transfer's file work runs on.
pub struct SnapshotFiles {
    fs: StdFs,
    dir: PathBuf,
    newest: Option<SnapshotMeta>,
    /// The last snapshot received whole, for [`SnapshotFiles::decode`].
    received: Option<SnapshotMeta>,
    /// Stores received chunks in order (storage's intake), and finishes the file.
    intake: Lane<SnapshotIntake<StdFs>>,
    /// Reads served chunks: the open source of the newest file per member being served.
    serving: Lane<HashMap<u64, SnapshotSource<StdFs>>>,
    /// Where the lanes report, and the core's end of it (taken once by the core's loop).
    io: mpsc::UnboundedSender<SnapshotIo>,
    io_rx: Option<mpsc::UnboundedReceiver<SnapshotIo>>,
    /// Jobs handed to each lane and not yet reported back (bounded: [`STORES_MAX`],
    /// [`READS_MAX`]), so the report channel holds no more than that either.
    stores_in_flight: usize,
    reads_in_flight: usize,
}

/// A lane's report to the core.
#[derive(Debug)]
pub enum SnapshotIo {
    /// A chunk of the member's transfer `transfer` was stored (or not).
    Stored {
        /// The member's transfer number.
        transfer: u64,
        /// What the intake did.
        result: storage::Result<Intake>,
    },
    /// A chunk for member `to` was read (`None`: the file no longer serves it).
    Read {
        /// The member served.
        to: u64,
        /// The encoded [`SnapshotChunk`].
        chunk: Option<Bytes>,
    },
}

type Job<S> = Box<dyn FnOnce(&mut S) + Send>;

/// A thread that owns `S` and runs the jobs handed to it on it, one at a time, in order.
struct Lane<S> {
    jobs: Option<std::sync::mpsc::SyncSender<Job<S>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<S: Send + 'static> Lane<S> {
    fn start(lane: &'static str, state: S, depth: usize) -> Result<Lane<S>, SnapshotError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job<S>>(depth);
        let thread = std::thread::Builder::new()
            .name(format!("snapshot-{lane}"))
            .spawn(move || {
                let mut state = state;
                while let Ok(job) = rx.recv() {
                    job(&mut state);
                }
            })
            .map_err(|error| SnapshotError::Thread { lane, error })?;
        Ok(Lane {
            jobs: Some(tx),
            thread: Some(thread),
        })
    }

    /// Hands `job` over without waiting; false if the lane is full or stopped.
    fn try_run(&self, job: impl FnOnce(&mut S) + Send + 'static) -> bool {
        self.jobs
            .as_ref()
            .is_some_and(|tx| tx.try_send(Box::new(job)).is_ok())
    }

    /// Lets the jobs handed over end, then the thread (blocks).
    fn stop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("a snapshot lane's thread panicked");
            }
        }
    }
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
        let (io, io_rx) = mpsc::unbounded_channel();
        Ok(Restored {
            files: SnapshotFiles {
                intake: Lane::start(
                    "intake",
                    SnapshotIntake::new(fs, dir.clone()).with_sync_every(INTAKE_SYNC_BYTES),
                    STORES_MAX,
                )?,
                serving: Lane::start("serving", HashMap::new(), READS_MAX)?,
                fs,
                dir,
                newest,
                received: None,
                io,
                io_rx: Some(io_rx),
                stores_in_flight: 0,
                reads_in_flight: 0,
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

    /// Encodes `body` and writes it durably (file fsync, rename, directory fsync) on a thread
    /// of lower priority ([`crate::background`]), so neither the pass over a large store nor its write and sync hold up
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
        crate::background::spawn("synod-snapshot", move || {
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
                    sessions = body.sessions,
                    sessions_bytes = body.sessions_bytes,
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
    /// its last chunk was stored) on a thread of lower priority: the read and the pass over the whole
    /// body stay off the core's task, which goes on with heartbeats and writes. The member asks
    /// for one at a time, so at most one body (and the store it restores) is in memory here.
    pub fn decode(&self, through: Slot, done: mpsc::UnboundedSender<SnapshotDecoded>) {
        let fs = self.fs;
        let meta = self.received.clone().filter(|m| m.through == through);
        crate::background::spawn("synod-snapshot-decode", move || {
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

    /// The lanes' reports, for the core's loop (once).
    pub fn take_io(&mut self) -> Option<mpsc::UnboundedReceiver<SnapshotIo>> {
        self.io_rx.take()
    }

    /// Reads the chunk at `offset` of the newest snapshot for member `to`, if it covers
    /// `through`, on the serving lane: [`SnapshotIo::Read`] brings it back. The file was
    /// verified whole when it became the newest; each chunk is read on its own, without
    /// reading the whole file again (see [`SnapshotSource::resume`]). A full lane drops the
    /// ask (the asker asks again).
    pub fn serve(&mut self, to: u64, through: Slot, offset: u64) {
        let Some(meta) = self.newest.clone().filter(|m| m.through >= through) else {
            return;
        };
        if self.reads_in_flight >= READS_MAX {
            tracing::debug!(
                to,
                offset,
                "too many snapshot chunks being read: ask dropped"
            );
            return;
        }
        let (fs, io) = (self.fs, self.io.clone());
        let handed = self.serving.try_run(move |sources| {
            let chunk = read_chunk(&fs, sources, to, &meta, offset);
            let _ = io.send(SnapshotIo::Read { to, chunk });
        });
        if handed {
            self.reads_in_flight += 1;
        }
    }

    /// A read [`SnapshotFiles::serve`] handed to the serving lane is back.
    pub fn read_done(&mut self) {
        self.reads_in_flight = self.reads_in_flight.saturating_sub(1);
    }

    /// Stores one chunk of the member's transfer `transfer` on the intake lane, in the order
    /// the chunks come: [`SnapshotIo::Stored`] brings the outcome, which
    /// [`SnapshotFiles::stored`] turns into the member's. A new transfer number of the same
    /// snapshot (the member gave up on a dead connection and asked again, or restarted)
    /// keeps what was received: the transfer resumes from the receiver's offset, not from
    /// zero. `Some` is the member's answer at once: the lane is full, so the chunk is refused.
    pub fn store(&mut self, transfer: u64, chunk: SnapshotChunk) -> Option<ChunkStored> {
        if self.stores_in_flight >= STORES_MAX {
            return Some(ChunkStored::Failed(
                "too many snapshot chunks waiting to be stored".into(),
            ));
        }
        let io = self.io.clone();
        let handed = self.intake.try_run(move |intake| {
            let result = intake.store(transfer, &chunk);
            let _ = io.send(SnapshotIo::Stored { transfer, result });
        });
        if !handed {
            return Some(ChunkStored::Failed(
                "the snapshot intake has stopped".into(),
            ));
        }
        self.stores_in_flight += 1;
        None
    }

    /// A chunk the intake lane stored: the member's answer. Once the last chunk verified, the
    /// snapshot is durable and the newest on disk (if it is ahead); the member then asks for
    /// the decode ([`SnapshotFiles::decode`]).
    pub fn stored(&mut self, result: storage::Result<Intake>) -> ChunkStored {
        self.stores_in_flight = self.stores_in_flight.saturating_sub(1);
        if let Ok(Intake::Resumed { next_offset }) = &result {
            tracing::info!(
                next_offset,
                "a snapshot transfer resumes from what is on disk"
            );
        }
        ChunkStored::from_intake(result, &mut self.newest, &mut self.received)
    }

    /// Ends the lanes once the jobs handed to them are done (blocks): a chunk being stored
    /// may be finishing its file (sync, rename), which must not happen under a member started
    /// next on the same directory in this process.
    pub fn stop(&mut self) {
        self.intake.stop();
        self.serving.stop();
    }
}

/// The chunk at `offset` of `meta` for member `to`, read through the source kept for it.
fn read_chunk(
    fs: &StdFs,
    sources: &mut HashMap<u64, SnapshotSource<StdFs>>,
    to: u64,
    meta: &SnapshotMeta,
    offset: u64,
) -> Option<Bytes> {
    // One open source per member served, reading the newest file in order: a pipelined
    // transfer asks for the chunks one after another, so each is one read where the last
    // ended (no open and header check per chunk). Sources of an older file go.
    sources.retain(|_, s| s.meta() == meta);
    if !sources.contains_key(&to) && sources.len() >= SERVING_MAX {
        sources.clear();
    }
    let source = match sources.entry(to) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            match SnapshotSource::resume(fs, meta, offset, CHUNK_BYTES) {
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
            sources.remove(&to);
            None
        }
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

    /// Files in `dir` with no snapshot yet (a test sets `newest` to serve one), and their
    /// lanes' reports.
    fn files(dir: &std::path::Path) -> (SnapshotFiles, mpsc::UnboundedReceiver<SnapshotIo>) {
        match SnapshotFiles::open(StdFs::new(), dir.to_path_buf(), None, kv::Limits::default()) {
            Ok(mut restored) => {
                let io = restored.files.take_io().expect("once");
                (restored.files, io)
            }
            Err(e) => panic!("an empty directory opens: {e}"),
        }
    }

    /// The chunk at `offset` through the serving lane.
    fn chunk(
        (source, io): &mut (SnapshotFiles, mpsc::UnboundedReceiver<SnapshotIo>),
        through: u64,
        offset: u64,
    ) -> SnapshotChunk {
        source.serve(2, Slot(through), offset);
        match io.blocking_recv() {
            Some(SnapshotIo::Read {
                to: 2,
                chunk: Some(bytes),
            }) => {
                source.read_done();
                SnapshotChunk::decode(&bytes).expect("decodes")
            }
            other => panic!("no chunk: {other:?}"),
        }
    }

    /// A chunk through the intake lane, and the member's answer.
    fn store(
        (sink, io): &mut (SnapshotFiles, mpsc::UnboundedReceiver<SnapshotIo>),
        transfer: u64,
        chunk: SnapshotChunk,
    ) -> ChunkStored {
        assert_eq!(sink.store(transfer, chunk), None, "the lane takes it");
        match io.blocking_recv() {
            Some(SnapshotIo::Stored {
                transfer: t,
                result,
            }) => {
                assert_eq!(t, transfer);
                sink.stored(result)
            }
            other => panic!("not stored: {other:?}"),
        }
    }

    #[test]
    fn a_transfer_is_stored_chunk_by_chunk_off_the_core_and_a_new_transfer_resumes_it() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (meta, body) = snapshot_file(a.path(), 9, (CHUNK_BYTES as usize) * 2 + 100);
        let mut source = files(a.path());
        source.0.newest = Some(meta);
        source.0.serve(2, Slot(10), 0);
        let mut sink = files(b.path());

        // A new transfer must start at offset 0.
        let late = chunk(&mut source, 9, CHUNK_BYTES);
        assert_eq!(
            store(&mut sink, 1, late),
            ChunkStored::Ignored { next_offset: 0 }
        );
        let first = chunk(&mut source, 9, 0);
        assert_eq!(
            store(&mut sink, 1, first.clone()),
            ChunkStored::Progress {
                next_offset: CHUNK_BYTES
            }
        );
        // The member restarted its transfer (transfer 2, after a connection drop, say) from
        // offset 0: the receiver keeps the chunk it has and points the member past it.
        assert_eq!(
            store(&mut sink, 2, first),
            ChunkStored::Ignored {
                next_offset: CHUNK_BYTES
            }
        );
        let mut offset = CHUNK_BYTES;
        let mut chunks = 0;
        let stored = loop {
            chunks += 1;
            let next = chunk(&mut source, 9, offset);
            match store(&mut sink, 2, next) {
                ChunkStored::Progress { next_offset } => offset = next_offset,
                other => break other,
            }
        };
        assert_eq!(stored, ChunkStored::Complete { through: Slot(9) });
        assert_eq!(
            chunks, 2,
            "only the chunks not yet received were sent again"
        );
        assert!(
            source.1.try_recv().is_err(),
            "an ask the newest file does not cover is not served"
        );
        let received = sink.0.received.clone().expect("the received file");
        assert_eq!(
            storage::read_snapshot_body(&StdFs::new(), &received).expect("reads"),
            body
        );
        assert_eq!(sink.0.newest_through(), Some(Slot(9)));
        let _ = chunk(&mut sink, 9, 0);
        // Another snapshot under a new transfer is a fresh start.
        let (other, _) = snapshot_file(a.path(), 12, 10);
        source.0.newest = Some(other);
        let first = chunk(&mut source, 12, 0);
        assert_eq!(
            store(&mut sink, 3, first),
            ChunkStored::Complete { through: Slot(12) }
        );
        assert_eq!(sink.0.newest_through(), Some(Slot(12)));
        sink.0.stop();
        source.0.stop();
    }

    #[test]
    fn a_full_intake_lane_refuses_a_chunk_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (mut sink, _io) = files(dir.path());
        sink.stores_in_flight = STORES_MAX;
        let chunk = SnapshotChunk::new(Slot(3), 0, 1, 0, vec![1]);
        assert!(matches!(sink.store(1, chunk), Some(ChunkStored::Failed(_))));
    }
}
