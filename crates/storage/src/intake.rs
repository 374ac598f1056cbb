//! The receiving end of a member's snapshot transfers, durable across a restart.
//!
//! A snapshot received from a peer is written chunk by chunk into `snap-<slot>.recv` (the
//! layout of a snapshot file, header zero until the end) and, beside it, an index
//! `snap-<slot>.recv-index` says which prefix of the body is durable:
//!
//! ```text
//! index header (36 bytes): magic "SYNODRCV", version u32, through u64, total_len u64,
//!                          body_crc u32, CRC32C of those 32 bytes u32
//! entry k (20 bytes):      end u64 (the body offset after chunk k), CRC32C of chunk k's
//!                          data u32, CRC32C of the body through `end` u32, CRC32C of the
//!                          entry's first 16 bytes u32
//! ```
//!
//! Crash argument: entries are written only after `fdatasync` of the data they cover, then
//! the index is synced; so an entry that reads back whole names bytes that were durable
//! before it was written. On a restart the intake trusts nothing it has not checked again:
//! the header's CRC and identity (slot, length, body CRC, all from the sender's chunk), each
//! entry's CRC, and each chunk's data against the entry's CRC (a torn or damaged chunk, or a
//! torn entry, ends the usable prefix there; what follows it is asked for again). The whole
//! body is checked against the sender's CRC before the file is renamed in, as always, so even
//! a damage these checks cannot see is never installed.
//!
//! Syncs are grouped: every [`SnapshotIntake::with_sync_every`] bytes (8 MiB by default), so
//! a 1 GiB transfer costs about 256 syncs, and a restart loses at most one group.

use crate::codec::{put_u32, put_u64};
use crate::error::{Result, StorageError};
use crate::snapshot::{remove_files, SnapshotChunk, SnapshotMeta, SnapshotWriter};
use crate::vfs::{OpenMode, Vfs, VfsFile};
use paxos::Slot;
use std::path::{Path, PathBuf};

const INDEX_MAGIC: [u8; 8] = *b"SYNODRCV";
const INDEX_VERSION: u32 = 1;
const INDEX_HEADER_BYTES: u64 = 36;
const ENTRY_BYTES: u64 = 20;
/// A chunk longer than this in an index is damage, not a chunk (the node's are 1 MiB): it
/// bounds what a resume reads into memory at once.
const ENTRY_CHUNK_BYTES_MAX: u64 = 64 << 20;
/// Default of [`SnapshotIntake::with_sync_every`].
pub const INTAKE_SYNC_BYTES_DEFAULT: u64 = 8 << 20;

/// What [`SnapshotIntake::store`] did with a chunk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Intake {
    /// Written; the transfer continues from `next_offset`.
    Progress { next_offset: u64 },
    /// Not taken (a chunk of another snapshot not at its start, or not where the receiver
    /// stands); ask again from `next_offset`.
    Ignored { next_offset: u64 },
    /// The first chunk of a snapshot whose receive an earlier run of this member began: the
    /// durable, checked prefix is kept; ask again from `next_offset`.
    Resumed { next_offset: u64 },
    /// The last chunk verified: the snapshot is durable in this file.
    Complete(SnapshotMeta),
}

/// Which snapshot a receive is of: `(through, total_len, body_crc)`, from its chunks.
type Identity = (Slot, u64, u32);

/// One entry of the index: a chunk that is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    end: u64,
    data_crc: u32,
    body_crc: u32,
}

impl Entry {
    fn encode(&self, out: &mut Vec<u8>) {
        let at = out.len();
        put_u64(out, self.end);
        put_u32(out, self.data_crc);
        put_u32(out, self.body_crc);
        let crc = crc32c::crc32c(&out[at..]);
        put_u32(out, crc);
    }

    fn decode(b: &[u8; ENTRY_BYTES as usize]) -> Option<Entry> {
        let word = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        if crc32c::crc32c(&b[..16]) != word(16) {
            return None;
        }
        let mut end = [0u8; 8];
        end.copy_from_slice(&b[..8]);
        Some(Entry {
            end: u64::from_le_bytes(end),
            data_crc: word(8),
            body_crc: word(12),
        })
    }
}

fn encode_index_header((through, total_len, body_crc): Identity) -> Vec<u8> {
    let mut out = Vec::with_capacity(INDEX_HEADER_BYTES as usize);
    out.extend_from_slice(&INDEX_MAGIC);
    put_u32(&mut out, INDEX_VERSION);
    put_u64(&mut out, through.0);
    put_u64(&mut out, total_len);
    put_u32(&mut out, body_crc);
    let crc = crc32c::crc32c(&out);
    put_u32(&mut out, crc);
    out
}

/// The two files of a receive of the snapshot covering `through`.
fn receive_paths(dir: &Path, through: Slot) -> (PathBuf, PathBuf) {
    let base = format!("snap-{:016x}", through.0);
    (
        dir.join(format!("{base}.recv")),
        dir.join(format!("{base}.recv-index")),
    )
}

fn is_receive_file(name: &str) -> bool {
    name.starts_with("snap-") && (name.ends_with(".recv") || name.ends_with(".recv-index"))
}

/// A receive in progress: the body so far and its index.
struct Receive<V: Vfs> {
    transfer: u64,
    identity: Identity,
    body: SnapshotWriter<V>,
    index: V::File,
    index_path: PathBuf,
    /// Entries on the index file (synced or not), and the body bytes they cover durably.
    entries: u64,
    durable: u64,
    /// Entries of chunks written since the last sync, written to the index at the next.
    unsynced: Vec<Entry>,
}

impl<V: Vfs> Receive<V> {
    fn next_offset(&self) -> u64 {
        self.body.written()
    }

    /// Makes the body written so far durable, then the entries that cover it.
    fn sync(&mut self) -> Result<()> {
        if self.unsynced.is_empty() {
            return Ok(());
        }
        self.body.sync_data()?;
        let mut bytes = Vec::with_capacity(self.unsynced.len() * ENTRY_BYTES as usize);
        for e in &self.unsynced {
            e.encode(&mut bytes);
        }
        let at = INDEX_HEADER_BYTES + self.entries * ENTRY_BYTES;
        self.index
            .write_at(&bytes, at)
            .and_then(|()| self.index.sync_data())
            .map_err(|e| StorageError::io("sync", &self.index_path, e))?;
        self.entries += self.unsynced.len() as u64;
        self.durable = self.body.written();
        self.unsynced.clear();
        Ok(())
    }
}

/// The receiving end of a member's snapshot transfers: one receive at a time, numbered by the
/// member's transfer. A new transfer of the same snapshot (the member gave up on a dead
/// connection and asked again, or restarted) keeps what was received and resumes from its
/// offset; a chunk of another snapshot starts over, from its first chunk. See the module doc
/// for what is on disk and why a restart can trust it.
pub struct SnapshotIntake<V: Vfs + Clone> {
    vfs: V,
    dir: PathBuf,
    sync_every_bytes: u64,
    current: Option<Receive<V>>,
    #[cfg(feature = "planted-bugs")]
    trust_index: bool,
}

impl<V: Vfs + Clone> SnapshotIntake<V> {
    /// Receives into `dir`, syncing every [`INTAKE_SYNC_BYTES_DEFAULT`] bytes.
    pub fn new(vfs: V, dir: impl Into<PathBuf>) -> Self {
        SnapshotIntake {
            vfs,
            dir: dir.into(),
            sync_every_bytes: INTAKE_SYNC_BYTES_DEFAULT,
            current: None,
            #[cfg(feature = "planted-bugs")]
            trust_index: false,
        }
    }

    /// Syncs what was received every `bytes` (at least 1): what a restart can resume from.
    #[must_use]
    pub fn with_sync_every(mut self, bytes: u64) -> Self {
        self.sync_every_bytes = bytes.max(1);
        self
    }

    /// Sets the planted `intake-trusts-its-index` bug (with the `planted-bugs` feature: a
    /// resume believes the index without reading the chunks back, so a damaged chunk is
    /// kept and the whole transfer fails at its end). Without the feature, nothing.
    #[must_use]
    pub fn with_trust_index(self, on: bool) -> Self {
        #[cfg(feature = "planted-bugs")]
        {
            SnapshotIntake {
                trust_index: on,
                ..self
            }
        }
        #[cfg(not(feature = "planted-bugs"))]
        {
            let _ = on;
            self
        }
    }

    /// Stores one chunk of transfer `transfer`.
    pub fn store(&mut self, transfer: u64, chunk: &SnapshotChunk) -> Result<Intake> {
        let identity = (chunk.through, chunk.total_len, chunk.body_crc);
        match self.current.as_mut() {
            Some(r) if r.identity == identity => {
                r.transfer = transfer;
                if chunk.offset != r.next_offset() {
                    // A resumed transfer asks from 0 (or a chunk came twice): point it past
                    // what is here.
                    return Ok(Intake::Ignored {
                        next_offset: r.next_offset(),
                    });
                }
            }
            _ => {
                if chunk.offset != 0 {
                    let next_offset = match &self.current {
                        Some(r) if r.transfer == transfer => r.next_offset(),
                        _ => 0,
                    };
                    return Ok(Intake::Ignored { next_offset });
                }
                if !chunk.verify() {
                    return Err(StorageError::ChunkRejected {
                        reason: "chunk checksum mismatch".into(),
                        resume_from: 0,
                    });
                }
                self.current = None;
                if let Some(resumed) = self.resume(transfer, identity)? {
                    let next_offset = resumed.next_offset();
                    self.current = Some(resumed);
                    return Ok(Intake::Resumed { next_offset });
                }
                self.current = Some(self.begin(transfer, identity)?);
            }
        }
        self.accept(chunk)
    }

    /// Writes `chunk`, at the current receive's next offset.
    fn accept(&mut self, chunk: &SnapshotChunk) -> Result<Intake> {
        let Some(r) = self.current.as_mut() else {
            return Ok(Intake::Ignored { next_offset: 0 });
        };
        let reject = |r: &Receive<V>, reason: &str| StorageError::ChunkRejected {
            reason: reason.into(),
            resume_from: r.next_offset(),
        };
        if !chunk.verify() {
            return Err(reject(r, "chunk checksum mismatch"));
        }
        let (_, total_len, body_crc) = r.identity;
        let end = chunk.offset + chunk.data.len() as u64;
        if end > total_len {
            return Err(reject(r, "chunk runs past the end of the snapshot"));
        }
        if chunk.data.is_empty() && end < total_len {
            return Err(reject(r, "an empty chunk before the end"));
        }
        r.body.write(&chunk.data)?;
        debug_assert_eq!(r.body.written(), end, "chunks are written in order");
        if end < total_len {
            r.unsynced.push(Entry {
                end,
                data_crc: crc32c::crc32c(&chunk.data),
                body_crc: r.body.body_crc(),
            });
            if end - r.durable >= self.sync_every_bytes {
                r.sync()?;
            }
            return Ok(Intake::Progress { next_offset: end });
        }
        // The last chunk: the whole body against the sender's CRC, then the file in place.
        let Some(r) = self.current.take() else {
            return Ok(Intake::Ignored { next_offset: 0 });
        };
        let got = r.body.body_crc();
        if got != body_crc {
            self.discard(r)?;
            return Err(StorageError::ChunkRejected {
                reason: format!(
                    "the whole body has crc {got:#010x}, not {body_crc:#010x}; discarded"
                ),
                resume_from: 0,
            });
        }
        let index_path = r.index_path.clone();
        let meta = r.body.finish()?;
        // The index goes once the snapshot is in place (a crash before leaves an index
        // without its body, which the next receive removes).
        self.vfs
            .remove(&index_path)
            .and_then(|()| self.vfs.sync_dir(&self.dir))
            .map_err(|e| StorageError::io("remove", &index_path, e))?;
        Ok(Intake::Complete(meta))
    }

    /// Starts a fresh receive of `identity`, removing any other receive's files first (one at
    /// a time: a new snapshot supersedes an unfinished one).
    fn begin(&self, transfer: u64, identity: Identity) -> Result<Receive<V>> {
        self.remove_receives()?;
        let (body_path, index_path) = receive_paths(&self.dir, identity.0);
        let body =
            SnapshotWriter::create_at(self.vfs.clone(), self.dir.clone(), identity.0, body_path)?;
        let mut index = self
            .vfs
            .open(&index_path, OpenMode::CreateTruncate)
            .map_err(|e| StorageError::io("create", &index_path, e))?;
        index
            .write_at(&encode_index_header(identity), 0)
            .and_then(|()| index.sync_data())
            .map_err(|e| StorageError::io("write", &index_path, e))?;
        self.vfs
            .sync_dir(&self.dir)
            .map_err(|e| StorageError::io("sync directory", &self.dir, e))?;
        Ok(Receive {
            transfer,
            identity,
            body,
            index,
            index_path,
            entries: 0,
            durable: 0,
            unsynced: Vec::new(),
        })
    }

    /// The receive of `identity` an earlier run left on disk, with its checked durable prefix,
    /// if there is one with at least one chunk.
    fn resume(&self, transfer: u64, identity: Identity) -> Result<Option<Receive<V>>> {
        let (body_path, index_path) = receive_paths(&self.dir, identity.0);
        let exists = |p: &Path| {
            self.vfs
                .exists(p)
                .map_err(|e| StorageError::io("stat", p, e))
        };
        if !exists(&body_path)? || !exists(&index_path)? {
            return Ok(None);
        }
        let mut index = self
            .vfs
            .open(&index_path, OpenMode::Existing)
            .map_err(|e| StorageError::io("open", &index_path, e))?;
        let len = index
            .len()
            .map_err(|e| StorageError::io("stat", &index_path, e))?;
        let mut header = vec![0u8; INDEX_HEADER_BYTES as usize];
        if len < INDEX_HEADER_BYTES
            || index.read_at(&mut header, 0).is_err()
            || header != encode_index_header(identity)
        {
            // Another snapshot's, or torn before its header was synced.
            return Ok(None);
        }
        let on_file = (len - INDEX_HEADER_BYTES) / ENTRY_BYTES;
        let mut body = SnapshotWriter::reopen(
            self.vfs.clone(),
            self.dir.clone(),
            identity.0,
            body_path,
            0,
            0,
        )?;
        let mut good: Vec<Entry> = Vec::new();
        let (mut end, mut crc) = (0u64, 0u32);
        for k in 0..on_file {
            let mut raw = [0u8; ENTRY_BYTES as usize];
            if index
                .read_at(&mut raw, INDEX_HEADER_BYTES + k * ENTRY_BYTES)
                .is_err()
            {
                break;
            }
            let Some(entry) = Entry::decode(&raw) else {
                break;
            };
            // Strictly inside the body: the last chunk is never in the index (the file is
            // finished with it), and a chunk is never longer than a sender sends.
            if entry.end <= end
                || entry.end >= identity.1
                || entry.end - end > ENTRY_CHUNK_BYTES_MAX
            {
                break;
            }
            if !self.trusts_index() {
                let mut data = vec![0u8; (entry.end - end) as usize];
                if body.read_body(&mut data, end).is_err()
                    || crc32c::crc32c(&data) != entry.data_crc
                    || crc32c::crc32c_append(crc, &data) != entry.body_crc
                {
                    tracing::warn!(
                        offset = end,
                        "a received snapshot chunk on disk does not match its index: resuming before it"
                    );
                    break;
                }
            }
            good.push(entry);
            (end, crc) = (entry.end, entry.body_crc);
        }
        if good.is_empty() {
            return Ok(None);
        }
        if (good.len() as u64) < on_file {
            // Entries past a bad one go, so a later restart cannot read them again: the index
            // is written anew with the good ones (a crash meanwhile leaves a header that does
            // not check, and the receive starts over).
            let mut bytes = encode_index_header(identity);
            for e in &good {
                e.encode(&mut bytes);
            }
            index = self
                .vfs
                .open(&index_path, OpenMode::CreateTruncate)
                .map_err(|e| StorageError::io("create", &index_path, e))?;
            index
                .write_at(&bytes, 0)
                .and_then(|()| index.sync_data())
                .map_err(|e| StorageError::io("write", &index_path, e))?;
        }
        body = SnapshotWriter::reopen(
            self.vfs.clone(),
            self.dir.clone(),
            identity.0,
            receive_paths(&self.dir, identity.0).0,
            end,
            crc,
        )?;
        tracing::info!(
            through = identity.0 .0,
            resume_from = end,
            total = identity.1,
            "resuming a snapshot receive an earlier run began"
        );
        Ok(Some(Receive {
            transfer,
            identity,
            body,
            index,
            index_path,
            entries: good.len() as u64,
            durable: end,
            unsynced: Vec::new(),
        }))
    }

    fn trusts_index(&self) -> bool {
        #[cfg(feature = "planted-bugs")]
        {
            self.trust_index
        }
        #[cfg(not(feature = "planted-bugs"))]
        {
            false
        }
    }

    /// Drops a receive whose body did not check, with its files.
    fn discard(&self, r: Receive<V>) -> Result<()> {
        drop(r.index);
        r.body.abort()?;
        self.vfs
            .remove(&r.index_path)
            .and_then(|()| self.vfs.sync_dir(&self.dir))
            .map_err(|e| StorageError::io("remove", &r.index_path, e))
    }

    /// Removes every receive's files in the directory.
    fn remove_receives(&self) -> Result<()> {
        remove_files(&self.vfs, &self.dir, is_receive_file)
    }

    /// The offset the receive in progress stands at, and the bytes of it that are durable.
    pub fn progress(&self) -> Option<(u64, u64)> {
        self.current.as_ref().map(|r| (r.next_offset(), r.durable))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memfs::MemFs;
    use crate::read_snapshot_body;
    use rand_chacha::rand_core::{RngCore, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    const DIR: &str = "/data";
    const CHUNK: u64 = 1000;

    /// A body of `chunks` chunks of [`CHUNK`] bytes (the last shorter), and its chunks.
    fn sent(through: u64, chunks: u64) -> (Vec<u8>, Vec<SnapshotChunk>) {
        let len = (chunks * CHUNK - 300) as usize;
        let body: Vec<u8> = (0..len).map(|i| (i * 7 % 253) as u8).collect();
        let crc = crc32c::crc32c(&body);
        let pieces = body
            .chunks(CHUNK as usize)
            .enumerate()
            .map(|(i, d)| {
                SnapshotChunk::new(Slot(through), i as u64 * CHUNK, len as u64, crc, d.to_vec())
            })
            .collect();
        (body, pieces)
    }

    fn disk() -> MemFs {
        let fs = MemFs::new();
        fs.create_dir_all(Path::new(DIR)).unwrap();
        fs
    }

    /// Stores `chunks` from `from` on (transfer 1) until the last; the body installed.
    fn finish(
        intake: &mut SnapshotIntake<MemFs>,
        fs: &MemFs,
        chunks: &[SnapshotChunk],
        from: u64,
    ) -> Result<Vec<u8>> {
        for c in chunks.iter().filter(|c| c.offset >= from) {
            match intake.store(1, c)? {
                Intake::Progress { next_offset } => {
                    assert_eq!(next_offset, c.offset + c.data.len() as u64)
                }
                Intake::Complete(meta) => return read_snapshot_body(fs, &meta),
                other => panic!("chunk at {}: {other:?}", c.offset),
            }
        }
        panic!("the transfer never completed")
    }

    /// Where a new run's intake resumes, offered the first chunk again.
    fn resume_at(intake: &mut SnapshotIntake<MemFs>, first: &SnapshotChunk) -> u64 {
        match intake.store(1, first).expect("stores") {
            Intake::Resumed { next_offset } => next_offset,
            Intake::Progress { next_offset } => {
                assert_eq!(next_offset, CHUNK, "nothing to resume: a fresh start");
                0
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_receive_resumes_after_a_crash_from_its_last_synced_chunk() {
        let (body, chunks) = sent(9, 10);
        for seed in 0..40 {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let fs = disk();
            let mut intake = SnapshotIntake::new(fs.clone(), DIR).with_sync_every(2 * CHUNK);
            let k = 1 + rng.next_u64() % 9;
            for c in &chunks[..k as usize] {
                assert!(matches!(
                    intake.store(7, c).unwrap(),
                    Intake::Progress { .. }
                ));
            }
            drop(intake);
            fs.crash(&mut rng);
            let mut intake = SnapshotIntake::new(fs.clone(), DIR).with_sync_every(2 * CHUNK);
            let at = resume_at(&mut intake, &chunks[0]);
            // Exactly what the last sync covered: no less (it is durable), no more.
            assert_eq!(at, k / 2 * 2 * CHUNK, "seed {seed}, {k} chunks stored");
            let from = at.max(CHUNK);
            assert_eq!(finish(&mut intake, &fs, &chunks, from).unwrap(), body);
            let left: Vec<String> = fs.list(Path::new(DIR)).unwrap();
            assert_eq!(left, vec![snapshot_name_of(9)], "only the snapshot stays");
        }
    }

    fn snapshot_name_of(through: u64) -> String {
        crate::snapshot::snapshot_name(Slot(through))
    }

    /// Six chunks durable, chunk 3 damaged on disk and the index's last entry torn; a new run
    /// resumes at chunk 3 and the transfer ends with the sender's body. The result is the
    /// receive's outcome, for the planted bug's test to see it fail.
    fn damaged_chunk_scenario(trust_index: bool) -> std::result::Result<(), String> {
        let (body, chunks) = sent(4, 10);
        let fs = stored_durably(&chunks[..7]);
        let (data, index) = receive_paths(Path::new(DIR), Slot(4));
        fs.flip_bit(&data, SNAPSHOT_HEADER + 3 * CHUNK + 17, 2)
            .unwrap();
        let index_len = fs.file_len(&index).unwrap();
        fs.truncate(&index, index_len - 7).unwrap();
        fs.crash(&mut ChaCha8Rng::seed_from_u64(1));
        let mut intake = SnapshotIntake::new(fs.clone(), DIR)
            .with_sync_every(CHUNK)
            .with_trust_index(trust_index);
        let at = resume_at(&mut intake, &chunks[0]);
        if at != 3 * CHUNK {
            return Err(format!("resumed at {at}, not before the damaged chunk"));
        }
        let got = finish(&mut intake, &fs, &chunks, at).map_err(|e| e.to_string())?;
        assert_eq!(got, body);
        Ok(())
    }

    const SNAPSHOT_HEADER: u64 = crate::SNAPSHOT_HEADER_BYTES;

    /// A disk on which `chunks` were received, each synced, by a run that then stopped.
    fn stored_durably(chunks: &[SnapshotChunk]) -> MemFs {
        let fs = disk();
        let mut intake = SnapshotIntake::new(fs.clone(), DIR).with_sync_every(CHUNK);
        for c in chunks {
            assert!(matches!(intake.store(1, c), Ok(Intake::Progress { .. })));
        }
        fs
    }

    #[test]
    fn a_damaged_chunk_on_disk_ends_the_resumed_prefix_before_it() {
        damaged_chunk_scenario(false).unwrap();
    }

    #[cfg(feature = "planted-bugs")]
    #[test]
    fn planted_intake_trusts_its_index_is_caught() {
        let outcome = damaged_chunk_scenario(true);
        assert!(
            outcome.is_err(),
            "a resume that trusts its index must be caught"
        );
    }

    #[test]
    fn another_snapshot_replaces_an_unfinished_receive_and_its_files() {
        let (_, old) = sent(4, 6);
        let (body, new) = sent(8, 3);
        let fs = stored_durably(&old[..3]);
        let mut intake = SnapshotIntake::new(fs.clone(), DIR);
        assert_eq!(finish(&mut intake, &fs, &new, 0).unwrap(), body);
        assert_eq!(
            fs.list(Path::new(DIR)).unwrap(),
            vec![snapshot_name_of(8)],
            "the older receive's files are gone"
        );
    }
}
