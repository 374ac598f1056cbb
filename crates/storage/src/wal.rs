//! The write-ahead log: append-only, preallocated segment files of framed, checksummed
//! records. One [`Wal::append`] is one record, so a batch of [`PersistOp`]s is atomic: after a
//! crash it is either wholly there or wholly absent. Nothing is reported durable before the
//! fdatasync (and, after a segment was created, the directory fsync) that makes it so.
//!
//! The byte layout and the crash-safety argument are in `docs/storage-format.md`.

use crate::codec::{self, put_u32, put_u64, Checkpoint, Scatter};
use crate::error::{Result, StorageError};
use crate::floor::{WalFloor, FLOOR_FILE};
use crate::preparer::{Prepared, Preparer, Spare};
use crate::snapshot::{self, SnapshotMeta};
use crate::vfs::{OpenMode, Vfs, VfsFile};
use paxos::multi::{DurableState, PersistOp};
use paxos::{Ballot, Slot};
use std::fmt;
use std::path::{Path, PathBuf};

/// Bytes of a segment header.
pub const SEGMENT_HEADER_BYTES: u64 = 64;
/// Bytes of a record's frame before its payload: length, CRC32C, LSN, type.
pub const RECORD_HEADER_BYTES: u64 = 17;
/// The unit the torn-write rule reasons in.
pub const SECTOR_BYTES: u64 = 512;
/// Magic number at the start of every segment.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SYNODWAL";
/// Version of the segment and record framing.
pub const SEGMENT_VERSION: u32 = 1;

/// Record type: a batch of [`PersistOp`]s.
pub const RECORD_BATCH: u8 = 1;
/// Record type: a [`Checkpoint`] (first record of every segment).
pub const RECORD_CHECKPOINT: u8 = 2;

/// Most compacted segments kept for reuse; compaction deletes the rest. Two cover a rotation
/// while the next compaction has not yet run; more would only hold disk space.
pub const RECYCLE_POOL_MAX: usize = 2;

/// Header flag (byte 40, bit 0): the segment was written over a recycled file, so bytes after
/// its log's end may be stale records of an earlier life (all with LSNs below its first).
const HEADER_FLAG_RECYCLED: u8 = 1;

/// Largest checkpoint payload: version, flags, ballot.
const CHECKPOINT_BYTES_MAX: u64 = 1 + 1 + 16;

/// A log sequence number: records are numbered 1, 2, 3... without gaps, across segments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lsn{}", self.0)
    }
}

/// Sizes of the log. Units are in the names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalOptions {
    /// Size every new segment is preallocated to.
    pub segment_bytes: u64,
    /// Largest record payload (one encoded batch). Checked on append (an error) and on replay
    /// (corruption).
    pub record_bytes_max: u64,
    /// Reuse the segments compaction frees instead of deleting them: rename them to
    /// `wal-recycle-<index>.spare` (at most [`RECYCLE_POOL_MAX`]) and let rotation write the
    /// next segment's header and checkpoint over one, so a log under sustained load overwrites
    /// blocks the disk has already allocated instead of zero-filling new ones. Off by default.
    /// Recovery reads recycled segments whatever this says (the header marks them), so a log
    /// written with it on opens with it off. See `docs/storage-format.md` ("Recycling").
    pub recycle_segments: bool,
    /// Where recycled segments' salts come from: `None` (the default) draws them from the
    /// process's random hasher and the clock, so no one writing payloads can predict them;
    /// `Some(seed)` derives them from the seed, the segment index and its first LSN, so a
    /// deterministic simulation writes the same bytes on every run. Only for simulations and
    /// tests: a predictable salt lets a client that can guess it forge a stale frame.
    pub salt_seed: Option<u64>,
    /// After this many bytes have been written to a segment since the last hint, ask the
    /// operating system to start writing them to the disk (`sync_file_range`), so the disk
    /// works while the next records are written and the following `fdatasync` has less left
    /// to do. A hint only: durability still comes from `sync`. Hints end on 1 MiB boundaries
    /// (see `WRITEBACK_ALIGN`). 0 turns them off. Default 1 MiB: measured here, hints raised
    /// 16 MiB groups of 64 KiB writes + `fdatasync` from about 3 to about 4–5 GB/s, and no
    /// append under 1 MiB gives one, so small records' latency is unchanged.
    pub writeback_bytes: u64,
    /// Planted bug: `sync` reports durable without syncing. The simulator must catch it.
    #[cfg(feature = "planted-bugs")]
    pub ack_before_sync: bool,
}

/// Appends with at least this many bytes of records compute their checksums on a second
/// thread while the first writes (see `Wal::write_frames`); below it a thread costs more
/// than it saves.
const PIPELINE_BYTES_MIN: u64 = 1 << 20;
/// Bytes of records per write call (and per message from the checksum thread) in an append
/// that large, so writing starts while later checksums are computed.
const PIPELINE_CHUNK_BYTES: u64 = 1 << 20;

/// Writeback hints end on a multiple of this. The page cache keeps a file in naturally
/// aligned folios (Linux 6.x on ext4 uses large ones), and a write into a folio under
/// writeback waits for the disk; a hint that ends on a coarse boundary leaves the folio the
/// writer is filling alone. Measured here (kernel 6.18, ext4, 16 MiB groups of unaligned
/// 64 KiB records): hints ending on 4 KiB boundaries gave 1.4–2.4 GB/s; on 256 KiB to 2 MiB
/// boundaries 3.2–4.1 GB/s, with no size clearly ahead.
const WRITEBACK_ALIGN: u64 = 1 << 20;

/// Default of [`WalOptions::writeback_bytes`].
pub const WRITEBACK_BYTES_DEFAULT: u64 = 1 << 20;

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_bytes: 64 << 20,
            record_bytes_max: 8 << 20,
            recycle_segments: false,
            salt_seed: None,
            writeback_bytes: WRITEBACK_BYTES_DEFAULT,
            #[cfg(feature = "planted-bugs")]
            ack_before_sync: false,
        }
    }
}

impl WalOptions {
    /// Small sizes for tests: 64 KiB segments, 16 KiB records.
    pub fn small() -> Self {
        WalOptions::with_sizes(64 << 10, 16 << 10)
    }

    /// Options with the given sizes and every other field at its default.
    pub fn with_sizes(segment_bytes: u64, record_bytes_max: u64) -> Self {
        WalOptions {
            segment_bytes,
            record_bytes_max,
            recycle_segments: false,
            salt_seed: None,
            writeback_bytes: WRITEBACK_BYTES_DEFAULT,
            #[cfg(feature = "planted-bugs")]
            ack_before_sync: false,
        }
    }

    /// Sets the planted `ack_before_sync` bug (with the `planted-bugs` feature: [`Wal::sync`]
    /// then reports durable without syncing, for the simulator to catch). Without the feature
    /// the bug does not exist and this does nothing, so callers need no `cfg` of their own and
    /// a build that serves users cannot be given the bug by a flag.
    #[must_use]
    pub fn with_ack_before_sync(self, on: bool) -> Self {
        #[cfg(feature = "planted-bugs")]
        {
            WalOptions {
                ack_before_sync: on,
                ..self
            }
        }
        #[cfg(not(feature = "planted-bugs"))]
        {
            let _ = on;
            self
        }
    }

    /// Sets [`WalOptions::salt_seed`] (simulations and tests only).
    #[must_use]
    pub fn with_salt_seed(self, seed: Option<u64>) -> Self {
        WalOptions {
            salt_seed: seed,
            ..self
        }
    }

    /// Sets [`WalOptions::writeback_bytes`] (0: no writeback hints).
    #[must_use]
    pub fn with_writeback_bytes(self, bytes: u64) -> Self {
        WalOptions {
            writeback_bytes: bytes,
            ..self
        }
    }

    /// Turns segment recycling on or off (see [`WalOptions::recycle_segments`]).
    #[must_use]
    pub fn with_recycle_segments(self, on: bool) -> Self {
        WalOptions {
            recycle_segments: on,
            ..self
        }
    }

    fn validate(&self) -> Result<()> {
        if self.record_bytes_max == 0 || self.record_bytes_max > u64::from(u32::MAX) {
            return Err(StorageError::Invalid(format!(
                "record_bytes_max {} must be in 1..=u32::MAX",
                self.record_bytes_max
            )));
        }
        // A fresh segment must hold its header, its checkpoint and the largest record, or a
        // batch could be refused forever.
        let needed = SEGMENT_HEADER_BYTES
            + RECORD_HEADER_BYTES
            + CHECKPOINT_BYTES_MAX
            + RECORD_HEADER_BYTES
            + self.record_bytes_max;
        if self.segment_bytes < needed {
            return Err(StorageError::Invalid(format!(
                "segment_bytes {} cannot hold a header, a checkpoint and a record of \
                 record_bytes_max {}: need at least {needed}",
                self.segment_bytes, self.record_bytes_max
            )));
        }
        Ok(())
    }
}

/// Something recovery repaired, reported so the operator can see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Repair {
    /// A torn final record (a write cut by a crash, never acknowledged) was zeroed.
    TornTail {
        /// The segment.
        path: PathBuf,
        /// Where the torn record began.
        offset: u64,
        /// Bytes zeroed.
        bytes: u64,
    },
    /// A leftover temporary file of an interrupted rotation or snapshot was removed.
    LeftoverRemoved {
        /// The file.
        path: PathBuf,
    },
}

/// What [`Wal::open`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The durable state: the log replayed over the newest snapshot.
    pub state: DurableState,
    /// The newest valid snapshot, whose slot is `state.compacted_through`.
    pub snapshot: Option<SnapshotMeta>,
    /// What was repaired.
    pub repairs: Vec<Repair>,
    /// The last record recovered.
    pub last_lsn: Lsn,
}

/// Work done by a [`Wal`], for reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Write calls that appended records.
    pub writes: u64,
    /// Records appended (batches and checkpoints).
    pub records: u64,
    /// Bytes appended, frames included.
    pub bytes: u64,
    /// `sync` calls that synced something.
    pub syncs: u64,
    /// Directory fsyncs.
    pub dir_syncs: u64,
    /// Segments created.
    pub rotations: u64,
    /// Segments deleted by compaction.
    pub segments_removed: u64,
    /// Segments compaction renamed for reuse instead of deleting them (not counted in
    /// `segments_removed`).
    pub segments_recycled: u64,
    /// Rotations that wrote the new segment over a recycled file (also counted in `rotations`).
    pub recycled_rotations: u64,
    /// Writeback hints given (see [`WalOptions::writeback_bytes`]).
    pub writeback_hints: u64,
}

/// One segment as the log knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Its index (its name).
    pub index: u64,
    /// Its path.
    pub path: PathBuf,
    /// LSN of its first record (its checkpoint).
    pub first_lsn: Lsn,
    /// Its preallocated size.
    pub segment_bytes: u64,
    /// Highest slot any of its records names, if any.
    pub max_slot: Option<Slot>,
}

/// The write-ahead log of one replica. Synchronous: the caller chooses when to sync (see
/// [`crate::group::GroupCommit`] for a thread that batches syncs).
pub struct Wal<V: Vfs> {
    vfs: V,
    dir: PathBuf,
    options: WalOptions,
    segments: Vec<SegmentInfo>,
    active: V::File,
    write_offset: u64,
    next_lsn: u64,
    durable_lsn: u64,
    /// The promise and rebuilding flag after every appended record, for the next checkpoint.
    tracked: Checkpoint,
    dir_dirty: bool,
    poisoned: Option<String>,
    /// Reused encoding buffer: the records of one append, framed, back to back.
    buf: Vec<u8>,
    /// Reused list of the records of one append.
    frames: Vec<Frame>,
    /// Reused frames (headers) of the records of one append, sealed.
    headers: Vec<[u8; 17]>,
    /// Where in the active segment the bytes not yet covered by a writeback hint start.
    writeback_from: u64,
    stats: WalStats,
    /// The next segment, zero-filled ahead of time by [`Wal::prepare_next_segment`] so that
    /// rotation is a header write, a sync and a rename instead of a 64 MiB fill on the append
    /// path.
    spare: Option<Spare<V::File>>,
    /// The thread preparing spares in the background, if started
    /// ([`Wal::start_background_preparer`]). Its finished spare is moved into `spare`.
    preparer: Option<Preparer<V::File>>,
    /// The oldest segment recorded on disk as kept (`wal-floor`). Compaction raises it before
    /// removing anything, so recovery can tell compaction from a lost segment.
    floor: WalFloor,
    /// Compacted segments renamed for reuse (`wal-recycle-<old index>.spare`), oldest first,
    /// at most [`RECYCLE_POOL_MAX`]; only with [`WalOptions::recycle_segments`]. Deleted on
    /// open, so only this process's compactions fill it.
    recycled: Vec<PathBuf>,
    /// The active segment's salt if it is a recycled one (its records' CRCs include it).
    active_salt: Option<u32>,
}

impl<V: Vfs> fmt::Debug for Wal<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.dir)
            .field("segments", &self.segments.len())
            .field("next_lsn", &self.next_lsn)
            .field("durable_lsn", &self.durable_lsn)
            .finish()
    }
}

/// The file name of segment `index`.
pub fn segment_name(index: u64) -> String {
    format!("wal-{index:016x}.log")
}

fn segment_tmp_name(index: u64) -> String {
    format!("wal-{index:016x}.tmp")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

pub(crate) fn segment_spare_name(index: u64) -> String {
    format!("wal-{index:016x}.spare")
}

fn segment_recycle_name(index: u64) -> String {
    format!("wal-recycle-{index:016x}.spare")
}

fn is_segment_spare(name: &str) -> bool {
    name.starts_with("wal-") && name.ends_with(".spare")
}

fn is_segment_tmp(name: &str) -> bool {
    name.starts_with("wal-") && name.ends_with(".tmp")
}

#[derive(Clone, Copy, Debug)]
struct SegmentHeader {
    index: u64,
    first_lsn: u64,
    segment_bytes: u64,
    /// Written over a recycled file: see [`HEADER_FLAG_RECYCLED`].
    recycled: bool,
    /// Recycled segments only (else 0): a random value mixed into every record's CRC, so that
    /// no stale record of the file's earlier lives, and no frame forged inside a client's
    /// payload, verifies in this life (see [`record_crc`]).
    salt: u32,
}

fn encode_header(h: &SegmentHeader) -> Vec<u8> {
    let mut out = Vec::with_capacity(SEGMENT_HEADER_BYTES as usize);
    out.extend_from_slice(&SEGMENT_MAGIC);
    put_u32(&mut out, SEGMENT_VERSION);
    put_u32(&mut out, SEGMENT_HEADER_BYTES as u32);
    put_u64(&mut out, h.index);
    put_u64(&mut out, h.first_lsn);
    put_u64(&mut out, h.segment_bytes);
    out.push(if h.recycled { HEADER_FLAG_RECYCLED } else { 0 });
    out.resize(44, 0);
    put_u32(&mut out, h.salt);
    out.resize(60, 0);
    let crc = crc32c::crc32c(&out);
    put_u32(&mut out, crc);
    out
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Whether the segment at `path` (named `wal-<index>.log`) was written over a compacted
/// segment (`WalOptions::recycle_segments`), from its verified header: for tools and tests
/// that look at a live log from outside. Refuses a file that is not a whole segment header.
pub fn segment_is_recycled<V: Vfs>(vfs: &V, path: &Path) -> Result<bool> {
    let index = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_segment_name)
        .ok_or_else(|| StorageError::corrupt(path, 0, "not named like a log segment"))?;
    let mut file = vfs
        .open(path, OpenMode::Existing)
        .map_err(|e| StorageError::io("open", path, e))?;
    let len = file.len().map_err(|e| StorageError::io("stat", path, e))?;
    let mut head = [0u8; SEGMENT_HEADER_BYTES as usize];
    file.read_at(&mut head, 0)
        .map_err(|e| StorageError::io("read the header of", path, e))?;
    Ok(parse_header(path, &head, len, index)?.recycled)
}

/// The verified header at the start of `data`, the first bytes of the segment file `path`,
/// which is `file_len` bytes long.
fn parse_header(path: &Path, data: &[u8], file_len: u64, index: u64) -> Result<SegmentHeader> {
    if (data.len() as u64) < SEGMENT_HEADER_BYTES {
        return Err(StorageError::corrupt(
            path,
            0,
            format!(
                "the file is {} bytes, too short for a segment header (truncated?)",
                data.len()
            ),
        ));
    }
    if data[..8] != SEGMENT_MAGIC {
        return Err(StorageError::corrupt(
            path,
            0,
            "bad magic number: not a Synod WAL segment",
        ));
    }
    let stored = le_u32(data, 60);
    let computed = crc32c::crc32c(&data[..60]);
    if stored != computed {
        return Err(StorageError::corrupt(
            path,
            60,
            format!(
                "segment header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
        ));
    }
    let version = le_u32(data, 8);
    if version != SEGMENT_VERSION {
        return Err(StorageError::corrupt(
            path,
            8,
            format!("unsupported segment format version {version}"),
        ));
    }
    if u64::from(le_u32(data, 12)) != SEGMENT_HEADER_BYTES {
        return Err(StorageError::corrupt(path, 12, "unexpected header length"));
    }
    let flags = data[40];
    if flags & !HEADER_FLAG_RECYCLED != 0 {
        return Err(StorageError::corrupt(
            path,
            40,
            format!("unknown segment header flags {flags:#04x}"),
        ));
    }
    let header = SegmentHeader {
        index: le_u64(data, 16),
        first_lsn: le_u64(data, 24),
        segment_bytes: le_u64(data, 32),
        recycled: flags & HEADER_FLAG_RECYCLED != 0,
        salt: le_u32(data, 44),
    };
    if header.index != index {
        return Err(StorageError::corrupt(
            path,
            16,
            format!(
                "the header says segment {} but the file is named for segment {index}",
                header.index
            ),
        ));
    }
    let len = file_len;
    if len != header.segment_bytes {
        let how = if len < header.segment_bytes {
            "shorter"
        } else {
            "longer"
        };
        return Err(StorageError::corrupt(
            path,
            len.min(header.segment_bytes),
            format!(
                "the segment is {len} bytes, {how} than the {} bytes it was preallocated to \
                 (truncated or extended behind the log's back)",
                header.segment_bytes
            ),
        ));
    }
    Ok(header)
}

fn record_crc(record: &[u8]) -> u32 {
    record_crc_salted(None, record)
}

/// A record's CRC in a segment with `salt` (recycled segments; `None` for zero-filled ones,
/// whose format is unchanged). The salt goes first, so a frame only verifies in the life of
/// the file it was written in: stale records of earlier lives and frames a client forged in
/// its payload (the stale bytes are old payloads) cannot guess it.
fn record_crc_salted(salt: Option<u32>, record: &[u8]) -> u32 {
    // The CRC covers every byte of the record except its own four: length, LSN, type, payload.
    let seed = match salt {
        Some(salt) => crc32c::crc32c_append(crc32c::crc32c(&salt.to_le_bytes()), &record[..4]),
        None => crc32c::crc32c(&record[..4]),
    };
    crc32c::crc32c_append(seed, &record[8..])
}

/// A fresh salt for a recycled segment: unpredictable to anyone writing payloads (the std
/// hasher's keys are random per process and advance per `RandomState`), varied by what makes
/// this segment unique.
fn new_salt(index: u64, first_lsn: u64, seed: Option<u64>) -> u32 {
    use std::hash::{BuildHasher, Hasher};
    if let Some(seed) = seed {
        let mut bytes = [0u8; 24];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        bytes[8..16].copy_from_slice(&index.to_le_bytes());
        bytes[16..].copy_from_slice(&first_lsn.to_le_bytes());
        return crc32c::crc32c(&bytes);
    }
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(index);
    h.write_u64(first_lsn);
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    let x = h.finish();
    (x ^ (x >> 32)) as u32
}

/// Frames `payload` (already at `out[start + RECORD_HEADER_BYTES..]`) as a record.
fn seal_frame(out: &mut [u8], start: usize, lsn: u64, kind: u8, salt: Option<u32>) {
    let payload_len = (out.len() - start) as u64 - RECORD_HEADER_BYTES;
    // Bounded by record_bytes_max, itself at most u32::MAX (checked in validate).
    let len = u32::try_from(payload_len).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 8..start + 16].copy_from_slice(&lsn.to_le_bytes());
    out[start + 16] = kind;
    let crc = record_crc_salted(salt, &out[start..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The CRC of a record's body (its pieces), to be folded into its frame's by [`seal_header`].
fn body_crc(out: &Scatter<'_>, frame: &Frame) -> u32 {
    out.pieces[frame.pieces.clone()]
        .iter()
        .fold(0, |crc, piece| {
            crc32c::crc32c_append(crc, out.piece(*piece))
        })
}

/// The frame of the record `frame` of `out`, whose body's CRC is `body_crc` if it was
/// computed already (it is then combined in): the same bytes [`seal_frame`] writes when the
/// body follows the frame in one buffer.
fn seal_header(
    out: &Scatter<'_>,
    frame: &Frame,
    body_crc: Option<u32>,
    lsn: u64,
    kind: u8,
    salt: Option<u32>,
) -> [u8; 17] {
    const _: () = assert!(RECORD_HEADER_BYTES == 17);
    let mut head = [0u8; 17];
    // Bounded by record_bytes_max, itself at most u32::MAX (checked in validate).
    let len = u32::try_from(frame.body_bytes).unwrap_or(u32::MAX);
    head[..4].copy_from_slice(&len.to_le_bytes());
    head[8..16].copy_from_slice(&lsn.to_le_bytes());
    head[16] = kind;
    // As `record_crc_salted`: (salt,) length, LSN, type, body.
    let seed = match salt {
        Some(salt) => crc32c::crc32c_append(crc32c::crc32c(&salt.to_le_bytes()), &head[..4]),
        None => crc32c::crc32c(&head[..4]),
    };
    let framed = crc32c::crc32c_append(seed, &head[8..]);
    let crc = match body_crc {
        Some(body) => crate::crc::combine(framed, body, frame.body_bytes),
        None => out.pieces[frame.pieces.clone()]
            .iter()
            .fold(framed, |crc, piece| {
                crc32c::crc32c_append(crc, out.piece(*piece))
            }),
    };
    head[4..8].copy_from_slice(&crc.to_le_bytes());
    head
}

/// A record encoded into a [`Scatter`], before it is written.
#[derive(Clone, Debug)]
struct Frame {
    /// Its body's pieces.
    pieces: std::ops::Range<usize>,
    /// Its body's length (the frame not included).
    body_bytes: u64,
    /// Index of its batch in the append.
    batch: usize,
}

fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.resize(start + RECORD_HEADER_BYTES as usize, 0);
    start
}

/// A record found by a scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordLocation {
    /// The segment.
    pub path: PathBuf,
    /// Byte offset of the record's frame.
    pub offset: u64,
    /// Frame plus payload bytes.
    pub len: u64,
    /// Its LSN.
    pub lsn: Lsn,
    /// Its type byte.
    pub kind: u8,
}

struct Scan {
    records: Vec<(u64, u64, u64, u8)>, // offset, total len, lsn, kind
    end: u64,
    torn: Option<(u64, u64)>, // offset, bytes
}

/// How far past the expected LSN a record found after a damaged one may be and still count
/// (see `frame_follows`): far more records than fit in a segment.
const FOLLOWING_LSN_WINDOW: u64 = 1 << 24;

/// Whether a valid record with LSN `next_lsn` or later starts anywhere after `start`: then
/// the record at `start` was not the last one written, whatever its length field says. A bit
/// flip in a length can make a record seem to run past the written area, exactly like a torn
/// write; without this, recovery would "truncate" it and every acknowledged record after it.
fn frame_follows(
    data: &[u8],
    start: u64,
    written_end: u64,
    next_lsn: u64,
    record_bytes_max: u64,
) -> bool {
    let written_end = (written_end as usize).min(data.len());
    let mut at = start as usize + 1;
    while at + RECORD_HEADER_BYTES as usize <= written_end {
        // Any later record counts, not only the very next one: a misdirected write can cover
        // the record right after the damaged one. The window keeps random bytes from passing
        // the LSN test often; the CRC decides.
        let lsn = le_u64(data, at + 8);
        if lsn >= next_lsn && lsn - next_lsn < FOLLOWING_LSN_WINDOW {
            let payload_len = u64::from(le_u32(data, at));
            let end = at as u64 + RECORD_HEADER_BYTES + payload_len;
            if payload_len <= record_bytes_max
                && end <= data.len() as u64
                && record_crc(&data[at..end as usize]) == le_u32(data, at + 4)
            {
                return true;
            }
        }
        at += 1;
    }
    false
}

/// Whether a record that failed verification at `start` looks like a write cut short by a
/// crash: its declared end runs past the last non-zero byte of the segment, or it ends exactly
/// there and some sector's share of it is all zero (an unwritten sector of a preallocated
/// file reads as zeros). Either way nothing non-zero follows it.
fn looks_torn(data: &[u8], start: u64, declared_end: u64, written_end: u64) -> bool {
    if declared_end > written_end {
        return true;
    }
    if declared_end != written_end {
        return false;
    }
    let mut sector = start / SECTOR_BYTES;
    while sector * SECTOR_BYTES < declared_end {
        let lo = (sector * SECTOR_BYTES).max(start) as usize;
        let hi = ((sector + 1) * SECTOR_BYTES).min(declared_end) as usize;
        if data[lo..hi].iter().all(|b| *b == 0) {
            return true;
        }
        sector += 1;
    }
    false
}

/// The first record at or after `from` that verifies (length within the limit and the file,
/// known type, CRC) and carries an LSN in `min_lsn..lsn_limit`: proof that the log did not end
/// before `from`. The LSN window is what keeps this cheap: payload bytes read as an LSN almost
/// never fall in it, so few candidates get as far as a CRC. `lsn_limit` bounds every LSN this
/// log can have written (see `lsn_limit` in `open_inner`).
fn valid_frame_from(
    data: &[u8],
    salt: Option<u32>,
    from: u64,
    min_lsn: u64,
    lsn_limit: u64,
    record_bytes_max: u64,
) -> Option<(u64, u64)> {
    let len = data.len() as u64;
    let mut at = from;
    while at + RECORD_HEADER_BYTES <= len {
        let i = at as usize;
        let lsn = le_u64(data, i + 8);
        if lsn >= min_lsn
            && lsn < lsn_limit
            && matches!(data[i + 16], RECORD_BATCH | RECORD_CHECKPOINT)
        {
            let payload_len = u64::from(le_u32(data, i));
            let end = at + RECORD_HEADER_BYTES + payload_len;
            if payload_len <= record_bytes_max
                && end <= len
                && record_crc_salted(salt, &data[i..end as usize]) == le_u32(data, i + 4)
            {
                return Some((at, lsn));
            }
        }
        at += 1;
    }
    None
}

/// Scans a segment written over a recycled file, whose bytes after the log's end may be stale
/// records of earlier lives, every one with an LSN below this segment's first (LSNs only grow
/// and the file was below the floor when it was recycled). The log ends at the first position
/// that is an all-zero frame header, a verifying record with an LSN below the first (stale),
/// a record that fails verification, or too close to the end of the file for a frame; and at
/// that end no verifying record with an LSN at or above the segment's first may follow anywhere
/// in the file (else corruption: a bit flip in the middle of the log, or a misdirected write).
/// In a sealed segment the continuity check against the next segment's first LSN (in
/// `open_inner`) then catches an end that comes too early. In the last segment an end at a
/// failed record that carries the expected LSN is a torn write and is reported as such.
fn scan_recycled(
    path: &Path,
    data: &[u8],
    header: &SegmentHeader,
    is_last: bool,
    record_bytes_max: u64,
    lsn_limit: u64,
) -> Result<Scan> {
    let len = data.len() as u64;
    let salt = Some(header.salt);
    let mut records = Vec::new();
    let mut p = SEGMENT_HEADER_BYTES;
    let mut expected_lsn = header.first_lsn;
    loop {
        // Why the log would end at `p`, if it does: (what, torn extent, failure).
        let mut torn = None;
        let mut failure: Option<String> = None;
        if p + RECORD_HEADER_BYTES <= len
            && data[p as usize..(p + RECORD_HEADER_BYTES) as usize]
                .iter()
                .any(|b| *b != 0)
        {
            let at = p as usize;
            let payload_len = u64::from(le_u32(data, at));
            let stored_crc = le_u32(data, at + 4);
            let lsn = le_u64(data, at + 8);
            let kind = data[at + 16];
            let declared_end = p + RECORD_HEADER_BYTES + payload_len;
            let problem = if payload_len > record_bytes_max {
                Some(format!(
                    "record length {payload_len} exceeds the limit of {record_bytes_max} bytes"
                ))
            } else if declared_end > len {
                Some(format!(
                    "record length {payload_len} runs past the end of the segment"
                ))
            } else {
                let computed = record_crc_salted(salt, &data[at..declared_end as usize]);
                (computed != stored_crc).then(|| {
                    format!(
                        "record checksum mismatch (stored {stored_crc:#010x}, computed {computed:#010x})"
                    )
                })
            };
            match problem {
                None if lsn == expected_lsn => {
                    check_record_kind(path, p, kind)?;
                    records.push((p, declared_end - p, lsn, kind));
                    p = declared_end;
                    expected_lsn += 1;
                    continue;
                }
                // A stale record of an earlier life: the log ends before it.
                None if lsn < header.first_lsn => {}
                None => {
                    return Err(StorageError::corrupt(
                        path,
                        p,
                        format!(
                            "record has LSN {lsn} where LSN {expected_lsn} belongs: records                              must be consecutive (a misdirected or lost write)"
                        ),
                    ));
                }
                Some(problem) => {
                    // Only a frame that carries the expected LSN was (the start of) a write
                    // of ours: that is a torn write. Anything else is stale bytes after a
                    // clean end, which need no repair (the next append overwrites them).
                    if is_last && lsn == expected_lsn {
                        let extent = if payload_len <= record_bytes_max {
                            declared_end.min(len) - p
                        } else {
                            RECORD_HEADER_BYTES
                        };
                        torn = Some((p, extent));
                    }
                    failure = Some(problem);
                }
            }
        }
        if let Some((at, lsn)) = valid_frame_from(
            data,
            salt,
            p + 1,
            header.first_lsn,
            lsn_limit,
            record_bytes_max,
        ) {
            let what = match failure {
                Some(problem) => format!(
                    "{problem} at LSN {expected_lsn}, and a valid record with LSN {lsn}                      follows at byte {at}: not the end of the log (a bit flip?)"
                ),
                None => format!(
                    "a record with LSN {lsn} at byte {at} lies after the end of the log (it                      ends at byte {p}, before LSN {expected_lsn}): a misdirected or stray                      write, or a lost one"
                ),
            };
            return Err(StorageError::corrupt(path, p, what));
        }
        return Ok(Scan {
            records,
            end: p,
            torn,
        });
    }
}

fn scan_segment(
    path: &Path,
    data: &[u8],
    header: &SegmentHeader,
    is_last: bool,
    record_bytes_max: u64,
    lsn_limit: u64,
) -> Result<Scan> {
    if header.recycled {
        return scan_recycled(path, data, header, is_last, record_bytes_max, lsn_limit);
    }
    let len = data.len() as u64;
    let written_end = data
        .iter()
        .rposition(|b| *b != 0)
        .map_or(0, |i| i as u64 + 1)
        .max(SEGMENT_HEADER_BYTES);
    let mut records = Vec::new();
    let mut p = SEGMENT_HEADER_BYTES;
    let mut expected_lsn = header.first_lsn;
    loop {
        if p >= written_end {
            return Ok(Scan {
                records,
                end: p,
                torn: None,
            });
        }
        let header_zero = p + RECORD_HEADER_BYTES <= len
            && data[p as usize..(p + RECORD_HEADER_BYTES) as usize]
                .iter()
                .all(|b| *b == 0);
        if p + RECORD_HEADER_BYTES > len || header_zero {
            let first = data[p as usize..]
                .iter()
                .position(|b| *b != 0)
                .map_or(p, |i| p + i as u64);
            return Err(StorageError::corrupt(
                path,
                first,
                format!(
                    "non-zero bytes after the end of the log (it ends at byte {p}): a \
                     misdirected or stray write"
                ),
            ));
        }
        let at = p as usize;
        let payload_len = u64::from(le_u32(data, at));
        let stored_crc = le_u32(data, at + 4);
        let lsn = le_u64(data, at + 8);
        let kind = data[at + 16];
        let declared_end = p + RECORD_HEADER_BYTES + payload_len;
        let problem = if payload_len > record_bytes_max {
            Some(format!(
                "record length {payload_len} exceeds the limit of {record_bytes_max} bytes"
            ))
        } else if declared_end > len {
            Some(format!(
                "record length {payload_len} runs past the end of the segment"
            ))
        } else {
            let computed = record_crc(&data[at..declared_end as usize]);
            (computed != stored_crc).then(|| {
                format!(
                    "record checksum mismatch (stored {stored_crc:#010x}, computed {computed:#010x})"
                )
            })
        };
        if let Some(problem) = problem {
            if is_last
                && looks_torn(data, p, declared_end, written_end)
                && !frame_follows(data, p, written_end, expected_lsn + 1, record_bytes_max)
            {
                return Ok(Scan {
                    records,
                    end: p,
                    torn: Some((p, written_end - p)),
                });
            }
            let place = if is_last {
                "and it is not a torn final write (bytes follow it, or none of its sectors is unwritten)"
            } else {
                "in a sealed segment, which was synced whole before the next one was created"
            };
            return Err(StorageError::corrupt(
                path,
                p,
                format!("{problem} at LSN {expected_lsn}, {place}"),
            ));
        }
        if lsn != expected_lsn {
            return Err(StorageError::corrupt(
                path,
                p,
                format!(
                    "record has LSN {lsn} where LSN {expected_lsn} belongs: records must be \
                     consecutive (a misdirected or lost write)"
                ),
            ));
        }
        check_record_kind(path, p, kind)?;
        records.push((p, declared_end - p, lsn, kind));
        p = declared_end;
        expected_lsn += 1;
    }
}

/// A segment's first record must be its checkpoint and every later one a batch; anything else
/// in a record whose checksum verified is corruption (or a format this build does not know).
fn check_record_kind(path: &Path, at: u64, kind: u8) -> Result<()> {
    let first = at == SEGMENT_HEADER_BYTES;
    match (first, kind) {
        (true, RECORD_CHECKPOINT) | (false, RECORD_BATCH) => Ok(()),
        (true, _) => Err(StorageError::corrupt(
            path,
            at,
            format!("the first record has type {kind}, not a checkpoint"),
        )),
        (false, _) => Err(StorageError::corrupt(
            path,
            at,
            format!("record of unknown type {kind}"),
        )),
    }
}

fn read_whole<V: Vfs>(vfs: &V, path: &Path) -> Result<Vec<u8>> {
    let mut file = vfs
        .open(path, OpenMode::Existing)
        .map_err(|e| StorageError::io("open", path, e))?;
    let len = file.len().map_err(|e| StorageError::io("stat", path, e))?;
    let len = usize::try_from(len)
        .map_err(|_| StorageError::corrupt(path, 0, "file too large to read"))?;
    let mut data = vec![0u8; len];
    file.read_at(&mut data, 0)
        .map_err(|e| StorageError::io("read", path, e))?;
    Ok(data)
}

fn slot_of(op: &PersistOp) -> Option<Slot> {
    match op {
        PersistOp::Accept { slot, .. } | PersistOp::Chosen { slot, .. } => Some(*slot),
        _ => None,
    }
}

fn track(cp: &mut Checkpoint, op: &PersistOp) {
    match op {
        PersistOp::Promise { ballot } => cp.promised = Some(max_ballot(cp.promised, *ballot)),
        PersistOp::VoteRegained { ballot } => {
            cp.promised = Some(max_ballot(cp.promised, *ballot));
            cp.rebuilding = false;
        }
        PersistOp::RebuildStarted => cp.rebuilding = true,
        // The configuration is not in the checkpoint: a segment holding an
        // `EnterConfiguration` is deleted only once a snapshot covers the stop-sign before it
        // (segments go in order, and the stop-sign's accept is in that segment or an earlier
        // one), and the driver keeps the configuration in its snapshot.
        PersistOp::Accept { .. }
        | PersistOp::Chosen { .. }
        | PersistOp::EnterConfiguration { .. } => {}
    }
}

fn max_ballot(a: Option<Ballot>, b: Ballot) -> Ballot {
    a.map_or(b, |a| a.max(b))
}

/// Every record of every segment in `dir`, for a simulator choosing where to inject a fault.
/// Stops quietly at the first record that does not verify.
pub fn scan_records<V: Vfs>(vfs: &V, dir: &Path) -> Result<Vec<RecordLocation>> {
    let names = vfs
        .list(dir)
        .map_err(|e| StorageError::io("list", dir, e))?;
    let mut out = Vec::new();
    for name in names {
        let Some(index) = parse_segment_name(&name) else {
            continue;
        };
        let path = dir.join(&name);
        let data = read_whole(vfs, &path)?;
        let Ok(header) = parse_header(&path, &data, data.len() as u64, index) else {
            continue;
        };
        // No newer header is at hand here: a generous bound (every record at its smallest).
        let lsn_limit = header
            .first_lsn
            .saturating_add(4 * (header.segment_bytes / RECORD_HEADER_BYTES));
        if let Ok(scan) = scan_segment(&path, &data, &header, true, u64::from(u32::MAX), lsn_limit)
        {
            for (offset, len, lsn, kind) in scan.records {
                out.push(RecordLocation {
                    path: path.clone(),
                    offset,
                    len,
                    lsn: Lsn(lsn),
                    kind,
                });
            }
        }
    }
    Ok(out)
}

impl<V: Vfs> Wal<V> {
    /// Opens the log in `dir`, creating an empty one if the directory holds no segment and no
    /// snapshot, and replays it. See the module docs and `docs/storage-format.md` for what is
    /// repaired and what is corruption.
    pub fn open(
        vfs: V,
        dir: impl Into<PathBuf>,
        options: WalOptions,
    ) -> Result<(Wal<V>, Recovered)> {
        Wal::open_inner(vfs, dir.into(), options, true)
    }

    /// Opens an existing log; a directory without segments is corruption (its log was lost).
    pub(crate) fn open_existing(
        vfs: V,
        dir: PathBuf,
        options: WalOptions,
    ) -> Result<(Wal<V>, Recovered)> {
        Wal::open_inner(vfs, dir, options, false)
    }

    fn open_inner(
        vfs: V,
        dir: PathBuf,
        options: WalOptions,
        create_if_empty: bool,
    ) -> Result<(Wal<V>, Recovered)> {
        options.validate()?;
        vfs.create_dir_all(&dir)
            .map_err(|e| StorageError::io("create directory", &dir, e))?;
        let mut repairs = Vec::new();
        let names = vfs
            .list(&dir)
            .map_err(|e| StorageError::io("list", &dir, e))?;
        let mut removed = false;
        for name in names.iter().filter(|n| is_segment_tmp(n)) {
            let path = dir.join(name);
            tracing::warn!(path = %path.display(), "removing the leftover of an interrupted segment rotation or floor update");
            vfs.remove(&path)
                .map_err(|e| StorageError::io("remove", &path, e))?;
            repairs.push(Repair::LeftoverRemoved { path });
            removed = true;
        }
        for name in names.iter().filter(|n| is_segment_spare(n)) {
            // A spare segment prepared ahead of a rotation that never came: only zeros and
            // never part of the log, so it goes without a repair report. It is simpler to
            // prepare a new one than to prove this one whole.
            let path = dir.join(name);
            tracing::debug!(path = %path.display(), "removing an unused spare segment");
            vfs.remove(&path)
                .map_err(|e| StorageError::io("remove", &path, e))?;
            removed = true;
        }
        if removed {
            vfs.sync_dir(&dir)
                .map_err(|e| StorageError::io("sync directory", &dir, e))?;
        }
        let snapshot = snapshot::latest_snapshot_inner(&vfs, &dir, &mut repairs)?;
        let mut indices: Vec<(u64, String)> = names
            .iter()
            .filter_map(|n| parse_segment_name(n).map(|i| (i, n.clone())))
            .collect();
        indices.sort();

        let compacted_through = snapshot.as_ref().map_or(Slot::ZERO, |s| s.through);
        let floor = WalFloor::read(&vfs, &dir)?;
        if indices.is_empty() {
            if snapshot.is_some() || floor.is_some() || !create_if_empty {
                let what = match floor {
                    // Compaction never removes the active segment, so a floor always names a
                    // segment that must exist: none at all means the log itself was lost.
                    Some(f) => format!(
                        "the directory has no WAL segment, but {FLOOR_FILE} says segment {} \
                         (first LSN {}, {}) and every later one are kept: the log holding \
                         this member's promise and newest entries is gone",
                        f.index,
                        f.first_lsn.0,
                        segment_name(f.index)
                    ),
                    None => "the directory has no WAL segment although it was initialized \
                             (it has a snapshot or a meta file): the log holding this member's \
                             promise is gone"
                        .to_string(),
                };
                return Err(StorageError::corrupt(&dir, 0, what));
            }
            return Wal::create_fresh(vfs, dir, options, repairs);
        }
        check_floor(&dir, floor.as_ref(), snapshot.as_ref(), &indices)?;
        let lsn_limit = lsn_limit(&vfs, &dir, &indices, &options);
        for pair in indices.windows(2) {
            if pair[1].0 != pair[0].0 + 1 {
                return Err(StorageError::corrupt(
                    dir.join(&pair[1].1),
                    0,
                    format!(
                        "segment {} follows segment {}: segment {} is missing",
                        pair[1].0,
                        pair[0].0,
                        pair[0].0 + 1
                    ),
                ));
            }
        }

        let mut state = DurableState {
            compacted_through,
            ..DurableState::default()
        };
        let mut tracked = Checkpoint::default();
        let mut segments = Vec::new();
        let mut next_lsn: Option<(u64, PathBuf, u64)> = None; // lsn, previous path, its end
        let mut tail = None;
        let count = indices.len();
        for (k, (index, name)) in indices.iter().enumerate() {
            let path = dir.join(name);
            let is_last = k + 1 == count;
            let data = read_whole(&vfs, &path)?;
            let header = parse_header(&path, &data, data.len() as u64, *index)?;
            let expected_first = match floor {
                Some(f) if f.index == *index => Some(f.first_lsn.0),
                None if k == 0 => Some(WalFloor::ORIGIN.first_lsn.0),
                _ => None,
            };
            if let Some(expected_first) = expected_first.filter(|e| *e != header.first_lsn) {
                let why = if floor.is_some() {
                    format!("{FLOOR_FILE} recorded it as the oldest segment kept")
                } else {
                    "it is the first segment of a log never compacted".to_string()
                };
                return Err(StorageError::corrupt(
                    &path,
                    24,
                    format!(
                        "the segment begins at LSN {} but must begin at LSN {expected_first} \
                         ({why}): the records before it are missing or it was replaced",
                        header.first_lsn
                    ),
                ));
            }
            if let Some((expected, prev_path, prev_end)) = &next_lsn {
                if header.first_lsn != *expected {
                    return Err(StorageError::corrupt(
                        prev_path,
                        *prev_end,
                        format!(
                            "the log in this segment ends before LSN {expected} but the next \
                             segment {} begins at LSN {}: records are missing (a rolled-back \
                             or lost write?)",
                            path.display(),
                            header.first_lsn
                        ),
                    ));
                }
            }
            let scan = scan_segment(
                &path,
                &data,
                &header,
                is_last,
                options.record_bytes_max,
                lsn_limit,
            )?;
            let mut info = SegmentInfo {
                index: *index,
                path: path.clone(),
                first_lsn: Lsn(header.first_lsn),
                segment_bytes: header.segment_bytes,
                max_slot: None,
            };
            if scan.records.is_empty() {
                return Err(StorageError::corrupt(
                    &path,
                    SEGMENT_HEADER_BYTES,
                    "the segment has no checkpoint record",
                ));
            }
            for (offset, len, _lsn, kind) in &scan.records {
                let payload =
                    &data[(offset + RECORD_HEADER_BYTES) as usize..(offset + len) as usize];
                replay_record(
                    &path,
                    *offset,
                    *kind,
                    payload,
                    k == 0,
                    &mut state,
                    &mut tracked,
                    &mut info,
                )?;
            }
            let last_lsn = header.first_lsn + scan.records.len() as u64 - 1;
            next_lsn = Some((last_lsn + 1, path.clone(), scan.end));
            segments.push(info);
            if is_last {
                let salt = header.recycled.then_some(header.salt);
                tail = Some((path, scan, last_lsn, salt));
            }
        }
        let Some((path, scan, last_lsn, active_salt)) = tail else {
            return Err(StorageError::Invalid("no last segment".into()));
        };
        let mut active = vfs
            .open(&path, OpenMode::Existing)
            .map_err(|e| StorageError::io("open", &path, e))?;
        if let Some((offset, bytes)) = scan.torn {
            tracing::warn!(
                path = %path.display(),
                offset,
                bytes,
                "truncating a torn final record (a write cut short by a crash, never acknowledged)"
            );
            // Zero the torn bytes now: a shorter record appended over them would otherwise
            // leave non-zero garbage after the end of the log, which the next recovery must
            // call corruption.
            let zeros = vec![0u8; usize::try_from(bytes).unwrap_or(0)];
            active
                .write_at(&zeros, offset)
                .and_then(|()| active.sync_data())
                .map_err(|e| StorageError::io("zero torn tail of", &path, e))?;
            repairs.push(Repair::TornTail {
                path: path.clone(),
                offset,
                bytes,
            });
        }
        let mut stats = WalStats::default();
        let floor = match floor {
            Some(f) => f,
            None => {
                // A log never compacted (or created before the floor existed) whose first
                // segment was just verified to be segment 1 at LSN 1: record that, so a later
                // loss of every segment is not mistaken for an empty directory.
                WalFloor::ORIGIN.write(&vfs, &dir)?;
                stats.dir_syncs += 1;
                WalFloor::ORIGIN
            }
        };
        let wal = Wal {
            vfs,
            dir,
            options,
            segments,
            active,
            write_offset: scan.end,
            writeback_from: scan.end,
            next_lsn: last_lsn + 1,
            durable_lsn: last_lsn,
            tracked,
            dir_dirty: false,
            poisoned: None,
            buf: Vec::new(),
            frames: Vec::new(),
            headers: Vec::new(),
            stats,
            spare: None,
            preparer: None,
            floor,
            recycled: Vec::new(),
            active_salt,
        };
        Ok((
            wal,
            Recovered {
                state,
                snapshot,
                repairs,
                last_lsn: Lsn(last_lsn),
            },
        ))
    }

    fn create_fresh(
        vfs: V,
        dir: PathBuf,
        options: WalOptions,
        repairs: Vec<Repair>,
    ) -> Result<(Wal<V>, Recovered)> {
        let tracked = Checkpoint::default();
        let (active, end, info) =
            create_segment(&vfs, &dir, 1, 1, options.segment_bytes, &tracked, None)?;
        // The segment's name is made durable before the floor that names it: a floor without
        // its segment would read as a lost log.
        vfs.sync_dir(&dir)
            .map_err(|e| StorageError::io("sync directory", &dir, e))?;
        WalFloor::ORIGIN.write(&vfs, &dir)?;
        let wal = Wal {
            vfs,
            dir,
            options,
            segments: vec![info],
            active,
            write_offset: end,
            writeback_from: end,
            next_lsn: 2,
            durable_lsn: 1,
            tracked,
            dir_dirty: false,
            poisoned: None,
            buf: Vec::new(),
            frames: Vec::new(),
            headers: Vec::new(),
            stats: WalStats {
                rotations: 1,
                dir_syncs: 2,
                ..WalStats::default()
            },
            spare: None,
            preparer: None,
            floor: WalFloor::ORIGIN,
            recycled: Vec::new(),
            active_salt: None,
        };
        Ok((
            wal,
            Recovered {
                state: DurableState::default(),
                snapshot: None,
                repairs,
                last_lsn: Lsn(1),
            },
        ))
    }

    /// Appends one batch as one record (atomic after a crash). Not durable until [`Wal::sync`].
    /// Returns the record's LSN (the last LSN if `ops` is empty, which writes nothing).
    pub fn append(&mut self, ops: &[PersistOp]) -> Result<Lsn> {
        self.append_batches(&[ops])
    }

    /// Appends several batches, one record each. Returns the LSN of the last record. If any
    /// batch is too large nothing is written.
    pub fn append_batches<B: AsRef<[PersistOp]>>(&mut self, batches: &[B]) -> Result<Lsn> {
        self.check_poisoned()?;
        // Every record's body is encoded into one reusable buffer, except large payloads,
        // which stay where the caller has them and go to the file by `pwritev`: each byte is
        // copied once, into the page cache. Frames are sealed once rotation has fixed their
        // LSNs. All records are encoded before anything is written, so a batch that is too
        // large writes nothing.
        let mut out = Scatter::with_bytes(std::mem::take(&mut self.buf));
        let mut frames = std::mem::take(&mut self.frames);
        frames.clear();
        let mut too_large = None;
        for (i, batch) in batches.iter().enumerate() {
            let ops = batch.as_ref();
            if ops.is_empty() {
                continue;
            }
            let first = out.mark();
            codec::encode_batch(ops, &mut out);
            let end = out.mark();
            let len = out.len_of(first..end) as u64;
            if len > self.options.record_bytes_max {
                too_large = Some(len);
                break;
            }
            frames.push(Frame {
                pieces: first..end,
                body_bytes: len,
                batch: i,
            });
        }
        let result = match too_large {
            Some(bytes) => Err(StorageError::RecordTooLarge {
                bytes,
                limit: self.options.record_bytes_max,
            }),
            None => self.write_frames(&out, &frames, batches),
        };
        self.buf = out.bytes;
        self.frames = frames;
        result
    }

    /// Seals and writes the encoded records `frames`, rotating first whenever the next record
    /// would not fit in the active segment. The checksums of large appends are computed on a
    /// second thread while this one writes, so the writer never waits for them.
    fn write_frames<B: AsRef<[PersistOp]>>(
        &mut self,
        out: &Scatter<'_>,
        frames: &[Frame],
        batches: &[B],
    ) -> Result<Lsn> {
        let total: u64 = frames.iter().map(|f| f.body_bytes).sum();
        if total < PIPELINE_BYTES_MIN || frames.len() < 2 {
            // Each checksum computed as its frame is sealed, in one pass.
            return self.write_sealed(out, frames, batches, || Some(None));
        }
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::channel::<Vec<u32>>();
            scope.spawn(move || {
                // Runs of about PIPELINE_CHUNK_BYTES, so a channel message is amortised over
                // many small records and the writer can start on the first run early.
                let mut run = Vec::new();
                let mut run_bytes = 0;
                for frame in frames {
                    run.push(body_crc(out, frame));
                    run_bytes += frame.body_bytes;
                    if run_bytes >= PIPELINE_CHUNK_BYTES {
                        if tx.send(std::mem::take(&mut run)).is_err() {
                            // The writer stopped (a failed write): nothing more is needed.
                            return;
                        }
                        run_bytes = 0;
                    }
                }
                if !run.is_empty() {
                    let _ = tx.send(run);
                }
            });
            let mut run = Vec::new().into_iter();
            self.write_sealed(out, frames, batches, || loop {
                if let Some(crc) = run.next() {
                    return Some(Some(crc));
                }
                run = rx.recv().ok()?.into_iter();
            })
        })
    }

    /// [`Wal::write_frames`] with the body checksums from `next_crc`, one per frame in order:
    /// `Some(Some(crc))` computed already, `Some(None)` to compute now, `None` if the thread
    /// computing them is gone. Writes go out about every [`PIPELINE_CHUNK_BYTES`], and at each
    /// rotation.
    fn write_sealed<B: AsRef<[PersistOp]>>(
        &mut self,
        out: &Scatter<'_>,
        frames: &[Frame],
        batches: &[B],
        mut next_crc: impl FnMut() -> Option<Option<u32>>,
    ) -> Result<Lsn> {
        let mut headers = std::mem::take(&mut self.headers);
        headers.clear();
        // `frames[flushed..]` (sealed into `headers[flushed..]`) is what the active segment
        // has not been given yet, and `pending` its length in bytes.
        let mut flushed = 0;
        let mut pending = 0u64;
        let mut result = Ok(());
        for (n, frame) in frames.iter().enumerate() {
            let record_bytes = RECORD_HEADER_BYTES + frame.body_bytes;
            let segment_bytes = self.active_info().segment_bytes;
            if self.write_offset + pending + record_bytes > segment_bytes {
                result = self
                    .flush(out, &frames[flushed..n], &headers[flushed..n])
                    .and_then(|()| self.rotate());
                if result.is_err() {
                    break;
                }
                flushed = n;
                pending = 0;
            }
            let Some(crc) = next_crc() else {
                // The checksum thread ended early: only if it panicked.
                result = Err(self.poison(
                    "checksum",
                    std::io::Error::other("the checksum thread stopped"),
                ));
                break;
            };
            headers.push(seal_header(
                out,
                frame,
                crc,
                self.next_lsn,
                RECORD_BATCH,
                self.active_salt,
            ));
            pending += record_bytes;
            self.next_lsn += 1;
            self.stats.records += 1;
            let ops = batches.get(frame.batch).map_or(&[][..], |b| b.as_ref());
            let info = self.active_info_mut();
            for op in ops {
                if let Some(slot) = slot_of(op) {
                    info.max_slot = Some(info.max_slot.map_or(slot, |m| m.max(slot)));
                }
            }
            for op in ops {
                track(&mut self.tracked, op);
            }
            if pending >= PIPELINE_CHUNK_BYTES {
                result = self.flush(out, &frames[flushed..=n], &headers[flushed..=n]);
                if result.is_err() {
                    break;
                }
                flushed = n + 1;
                pending = 0;
            }
        }
        if result.is_ok() {
            result = self.flush(out, &frames[flushed..], &headers[flushed..]);
        }
        self.headers = headers;
        result.map(|()| Lsn(self.next_lsn - 1))
    }

    /// Writes the sealed records `frames` with their `headers` at the end of the active
    /// segment in one write call (a vectored one unless it is one buffer), then asks the disk
    /// to start on what has piled up since the last hint.
    fn flush(&mut self, out: &Scatter<'_>, frames: &[Frame], headers: &[[u8; 17]]) -> Result<()> {
        debug_assert_eq!(frames.len(), headers.len());
        let mut bufs: Vec<&[u8]> = Vec::with_capacity(frames.len() * 3);
        for (frame, header) in frames.iter().zip(headers) {
            bufs.push(header);
            for piece in &out.pieces[frame.pieces.clone()] {
                bufs.push(out.piece(*piece));
            }
        }
        let len: u64 = bufs.iter().map(|b| b.len() as u64).sum();
        if len == 0 {
            return Ok(());
        }
        let offset = self.write_offset;
        let written = self.active.write_vectored_at(&bufs, offset);
        if let Err(e) = written {
            return Err(self.poison("write", e));
        }
        self.write_offset += len;
        self.stats.writes += 1;
        self.stats.bytes += len;
        // Hints end on a WRITEBACK_ALIGN boundary, which no folio of the page cache spans:
        // the next write never lands in a folio under writeback (it would wait for the disk).
        let hint_to = self.write_offset / WRITEBACK_ALIGN * WRITEBACK_ALIGN;
        let unhinted = hint_to.saturating_sub(self.writeback_from);
        if self.options.writeback_bytes > 0 && unhinted >= self.options.writeback_bytes {
            let given = self.active.start_writeback(self.writeback_from, unhinted);
            if let Err(e) = given {
                // A failed writeback may mean lost data: treated like a failed write.
                return Err(self.poison("start writeback", e));
            }
            self.writeback_from = hint_to;
            self.stats.writeback_hints += 1;
        }
        Ok(())
    }

    fn rotate(&mut self) -> Result<()> {
        // Seal the old segment first: recovery requires every segment but the last to be
        // whole, which holds only if its records are durable before a newer segment can be.
        if let Err(e) = self.active.sync_data() {
            return Err(self.poison("sync", e));
        }
        let index = self.active_info().index + 1;
        let first_lsn = self.next_lsn;
        // A recycled file first (its blocks are allocated already: no zeros to write), then a
        // zero-filled spare, then the inline fill.
        let recycled = if self.recycled.is_empty() {
            None
        } else {
            Some(self.recycled.remove(0))
        };
        let created = match recycled {
            Some(from) => {
                self.stats.recycled_rotations += 1;
                create_segment_over(
                    &self.vfs,
                    &self.dir,
                    &from,
                    index,
                    first_lsn,
                    &self.options,
                    &self.tracked,
                )
            }
            None => {
                let spare = self.take_spare(index);
                create_segment(
                    &self.vfs,
                    &self.dir,
                    index,
                    first_lsn,
                    self.options.segment_bytes,
                    &self.tracked,
                    spare,
                )
                .map(|(file, end, info)| (file, end, info, None))
            }
        };
        match created {
            Ok((file, end, info, salt)) => {
                // Every record of the new segment is sealed with its salt (none if zero-filled).
                self.active_salt = salt;
                self.active = file;
                self.write_offset = end;
                self.writeback_from = end;
                self.segments.push(info);
                self.next_lsn += 1;
                self.dir_dirty = true;
                self.stats.rotations += 1;
                self.stats.records += 1;
                if let Some(preparer) = self.preparer.as_mut() {
                    // Its successor, right away: the preparer gets this segment's whole life.
                    // Not while a recycled file is waiting: the next rotation takes that, and
                    // zeros nobody needs would take bandwidth from the records.
                    if self.recycled.is_empty() {
                        preparer.request(index + 1);
                    }
                }
                Ok(())
            }
            Err(e) => {
                self.poisoned = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Makes everything appended durable and returns the last durable LSN: fdatasync of the
    /// active segment, and a directory fsync if a segment was created since the last sync.
    pub fn sync(&mut self) -> Result<Lsn> {
        self.check_poisoned()?;
        let last = self.next_lsn - 1;
        #[cfg(feature = "planted-bugs")]
        if self.options.ack_before_sync {
            // The planted bug: report durable without syncing anything.
            self.durable_lsn = last;
            return Ok(Lsn(last));
        }
        if self.durable_lsn == last && !self.dir_dirty {
            return Ok(Lsn(last));
        }
        if let Err(e) = self.active.sync_data() {
            return Err(self.poison("sync", e));
        }
        if self.dir_dirty {
            if let Err(e) = self.vfs.sync_dir(&self.dir) {
                return Err(self.poison("sync directory", e));
            }
            self.dir_dirty = false;
            self.stats.dir_syncs += 1;
        }
        self.stats.syncs += 1;
        self.durable_lsn = last;
        Ok(Lsn(last))
    }

    /// Deletes the oldest segments whose slot-carrying records all lie at or below `through`
    /// (never the active one, whose checkpoint carries the promise). Before removing anything
    /// it records the first segment kept in `wal-floor` (tmp, fsync, rename, directory fsync),
    /// so recovery can tell these removals from a lost segment; then it removes the segments
    /// oldest first, each followed by a directory fsync, so a crash midway leaves a contiguous
    /// run below the floor (replayed harmlessly and removed by the next compaction). The
    /// promise survives in the checkpoint heading every newer segment. `through` must be
    /// covered by a snapshot in the directory. Returns how many segments were removed.
    pub fn compact(&mut self, through: Slot) -> Result<usize> {
        self.check_poisoned()?;
        let newest = snapshot::newest_snapshot_slot(&self.vfs, &self.dir)?;
        if newest.is_none_or(|s| s < through) {
            return Err(StorageError::Invalid(format!(
                "cannot compact through {through}: the newest snapshot covers only {:?}",
                newest
            )));
        }
        // `count + 1 < len`: the active segment is never a candidate, so the floor never
        // passes it and the newest checkpoint with the promise is never removed.
        let mut count = 0;
        while count + 1 < self.segments.len()
            && self.segments[count].max_slot.is_none_or(|m| m <= through)
        {
            count += 1;
        }
        if count == 0 {
            return Ok(0);
        }
        let kept = &self.segments[count];
        if kept.index > self.floor.index {
            let floor = WalFloor {
                index: kept.index,
                first_lsn: kept.first_lsn,
                compacted_through: through.max(self.floor.compacted_through),
            };
            floor.write(&self.vfs, &self.dir)?;
            self.floor = floor;
            self.stats.dir_syncs += 1;
        }
        for _ in 0..count {
            let path = self.segments[0].path.clone();
            if self.options.recycle_segments && self.recycled.len() < RECYCLE_POOL_MAX {
                // Renamed, not removed: to recovery the segment is gone exactly as if removed
                // (a recycle name is a spare, never read and deleted on open), and rotation
                // can overwrite its blocks instead of zero-filling new ones.
                let to = self.dir.join(segment_recycle_name(self.segments[0].index));
                self.vfs
                    .rename(&path, &to)
                    .map_err(|e| StorageError::io("rename", &path, e))?;
                self.recycled.push(to);
                self.stats.segments_recycled += 1;
            } else {
                self.vfs
                    .remove(&path)
                    .map_err(|e| StorageError::io("remove", &path, e))?;
                self.stats.segments_removed += 1;
            }
            self.vfs
                .sync_dir(&self.dir)
                .map_err(|e| StorageError::io("sync directory", &self.dir, e))?;
            self.stats.dir_syncs += 1;
            self.segments.remove(0);
        }
        Ok(count)
    }

    /// The oldest segment recorded as kept (the `wal-floor` file).
    pub fn floor(&self) -> WalFloor {
        self.floor
    }

    /// Prepares the next segment ahead of its rotation, by up to `budget_bytes` of zero-fill
    /// (each step is synced, so the final sync before the rotation's rename has nothing left
    /// to flush). Returns whether the spare is complete. Call it when the log is idle (the
    /// [`crate::group::GroupCommit`] thread does, a megabyte at a time, whenever its queue is
    /// empty); a rotation finds the spare and only writes the header and checkpoint into it,
    /// syncs and renames it, instead of zero-filling a whole segment on the append path.
    /// A rotation without a complete spare finishes (or does) the fill itself, as before.
    ///
    /// A failure here leaves the log writable: the spare is not part of the log.
    ///
    /// With a background preparer running ([`Wal::start_background_preparer`]) it does no I/O:
    /// it collects the preparer's spare if it is finished and returns `true` ("nothing for
    /// the caller to do before the next rotation").
    pub fn prepare_next_segment(&mut self, budget_bytes: u64) -> Result<bool> {
        self.check_poisoned()?;
        if self.preparer.is_some() {
            self.collect_prepared(false);
            return Ok(true);
        }
        if !self.recycled.is_empty() {
            // The next rotation reuses a recycled file: zeros would be wasted bandwidth.
            return Ok(true);
        }
        let index = self.active_info().index + 1;
        let segment_bytes = self.options.segment_bytes;
        let mut spare = match self.spare.take() {
            // Older: prepared before rotations into recycled files; zeros serve any segment.
            Some(s) if s.index <= index => s,
            stale => {
                if let Some(s) = stale {
                    // Cannot happen (rotation consumes the spare it was made for); removing it
                    // keeps the directory tidy if it ever does.
                    let _ = self.vfs.remove(&s.path);
                }
                let path = self.dir.join(segment_spare_name(index));
                let file = self
                    .vfs
                    .open(&path, OpenMode::CreateTruncate)
                    .map_err(|e| StorageError::io("create", &path, e))?;
                Spare {
                    index,
                    path,
                    file,
                    filled: 0,
                }
            }
        };
        if spare.filled < segment_bytes {
            let to = spare
                .filled
                .saturating_add(budget_bytes.max(1))
                .min(segment_bytes);
            if let Err(e) = spare
                .file
                .allocate(to)
                .and_then(|()| spare.file.sync_data())
            {
                let _ = self.vfs.remove(&spare.path);
                return Err(StorageError::io("preallocate", &spare.path, e));
            }
            spare.filled = to;
        }
        let done = spare.filled >= segment_bytes;
        self.spare = Some(spare);
        Ok(done)
    }

    /// Whether a background preparer is running ([`Wal::start_background_preparer`]).
    pub fn has_background_preparer(&self) -> bool {
        self.preparer.is_some()
    }

    /// Moves the background preparer's answer into `spare` if it has arrived (or, with
    /// `wait`, once it arrives). A failure is only logged: the rotation fills inline.
    fn collect_prepared(&mut self, wait: bool) {
        let Some(preparer) = self.preparer.as_mut() else {
            return;
        };
        match preparer.receive(wait) {
            Some(Prepared::Ready(spare)) => {
                if let Some(stale) = self.spare.replace(spare) {
                    // Cannot happen (a spare is only asked for when none is held); removing
                    // it keeps the directory tidy if it ever does.
                    let _ = self.vfs.remove(&stale.path);
                }
            }
            Some(Prepared::Failed { index, error }) => {
                tracing::warn!(index, %error, "the background preparer failed; rotation fills the segment inline");
            }
            None => {}
        }
    }

    /// The spare for segment `index`, if there is one. With a background preparer still
    /// filling it, waits for it: that costs no more than filling inline (less, by what it
    /// has done already) and never has two writers on one file.
    fn take_spare(&mut self, index: u64) -> Option<Spare<V::File>> {
        if self.preparer.as_ref().is_some_and(|p| p.is_pending()) {
            self.collect_prepared(true);
        }
        match self.spare.take() {
            // An older index only means rotations into recycled files came in between: a
            // spare holds nothing but zeros, so it serves any later segment (its name is not
            // read by anyone; the rename gives the segment its name).
            Some(s) if s.index <= index => Some(s),
            Some(stale) => {
                let _ = self.vfs.remove(&stale.path);
                None
            }
            None => None,
        }
    }

    /// LSN of the last record appended.
    pub fn last_lsn(&self) -> Lsn {
        Lsn(self.next_lsn - 1)
    }

    /// LSN of the last record known durable.
    pub fn durable_lsn(&self) -> Lsn {
        Lsn(self.durable_lsn)
    }

    /// The segments, oldest first; the last is active.
    pub fn segments(&self) -> &[SegmentInfo] {
        &self.segments
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file-system handle.
    pub fn vfs(&self) -> &V {
        &self.vfs
    }

    /// Counters.
    pub fn stats(&self) -> &WalStats {
        &self.stats
    }

    /// The promise the log would checkpoint now.
    pub fn promised(&self) -> Option<Ballot> {
        self.tracked.promised
    }

    /// Whether the log has refused writes since an I/O error.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    fn active_info(&self) -> &SegmentInfo {
        // `segments` is never empty: open creates or finds one, compaction keeps the active.
        &self.segments[self.segments.len() - 1]
    }

    fn active_info_mut(&mut self) -> &mut SegmentInfo {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    fn check_poisoned(&self) -> Result<()> {
        match &self.poisoned {
            Some(cause) => Err(StorageError::Poisoned {
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    fn poison(&mut self, op: &'static str, e: std::io::Error) -> StorageError {
        let path = self.active_info().path.clone();
        let err = StorageError::io(op, path, e);
        tracing::error!(error = %err, "the log refuses further writes");
        self.poisoned = Some(err.to_string());
        err
    }
}

impl<V> Wal<V>
where
    V: Vfs + Clone + Send + 'static,
    V::File: Send + 'static,
{
    /// Starts a thread, with its own handle on the file system, that keeps the next segment
    /// zero-filled ahead of its rotation (`wal-<index>.spare`, see `docs/storage-format.md`),
    /// asking for the successor of each segment as soon as that segment becomes active. A
    /// rotation then writes the header and checkpoint into the ready spare, fsyncs it and
    /// renames it; if the spare is still being filled it waits for it, and if preparing it
    /// failed it fills the segment inline as without a preparer.
    ///
    /// This is what a member on real disks should use (a synchronous caller gets it as well as
    /// [`crate::group::GroupCommit`], whose idle-time preparation then has nothing to do). Not
    /// for the deterministic simulator: the thread's timing is not a function of the seed.
    /// Idempotent. The thread stops (and removes an unfinished spare) when the log is dropped.
    pub fn start_background_preparer(&mut self) -> Result<()> {
        if self.preparer.is_some() {
            return Ok(());
        }
        let mut preparer = Preparer::spawn(
            self.vfs.clone(),
            self.dir.clone(),
            self.options.segment_bytes,
        )
        .map_err(|e| StorageError::io("spawn the segment preparer for", &self.dir, e))?;
        let next = self.active_info().index + 1;
        match self.spare.take() {
            // A spare finished synchronously is kept and used.
            Some(s) if s.index == next && s.filled >= self.options.segment_bytes => {
                self.spare = Some(s);
            }
            other => {
                if let Some(partial) = other {
                    // The preparer recreates it from scratch; one writer per file.
                    drop(partial.file);
                    let _ = self.vfs.remove(&partial.path);
                }
                preparer.request(next);
            }
        }
        self.preparer = Some(preparer);
        Ok(())
    }
}

/// Checks the segments present (sorted, non-empty) against the floor and the snapshot, before
/// any is read: the oldest segment must be the first ever (1) when the log was never compacted,
/// else no newer than the floor; the floor's segment must be present; and the snapshot must
/// cover what compaction removed. Segments older than the floor are allowed: a crash during
/// compaction leaves them (the floor is written before anything is removed).
fn check_floor(
    dir: &Path,
    floor: Option<&WalFloor>,
    snapshot: Option<&SnapshotMeta>,
    indices: &[(u64, String)],
) -> Result<()> {
    let (Some((oldest, oldest_name)), Some((newest, _))) = (indices.first(), indices.last()) else {
        return Ok(());
    };
    let Some(floor) = floor else {
        if *oldest != WalFloor::ORIGIN.index {
            return Err(StorageError::corrupt(
                dir.join(segment_name(WalFloor::ORIGIN.index)),
                0,
                format!(
                    "{} (the oldest segment present is {oldest_name}, and there is no \
                     {FLOOR_FILE} file recording a compaction, so the log must start at {}): \
                     the entries they held are lost (deleted by hand or by a fault?)",
                    missing_range(WalFloor::ORIGIN.index, oldest - 1),
                    segment_name(WalFloor::ORIGIN.index)
                ),
            ));
        }
        return Ok(());
    };
    let floor_name = segment_name(floor.index);
    if *oldest > floor.index || *newest < floor.index {
        let missing = if *oldest > floor.index {
            missing_range(floor.index, oldest - 1)
        } else {
            format!(
                "segment {} and every later one are missing, the active one included",
                floor.index
            )
        };
        return Err(StorageError::corrupt(
            dir.join(&floor_name),
            0,
            format!(
                "{missing} ({FLOOR_FILE} records {floor_name}, first LSN {}, as the oldest \
                 segment kept; segments present: {oldest_name} to {}): the entries they held \
                 are lost (deleted by hand or by a fault?)",
                floor.first_lsn.0,
                segment_name(*newest)
            ),
        ));
    }
    let covered = snapshot.map(|s| s.through);
    if covered.unwrap_or(Slot::ZERO) < floor.compacted_through {
        let have = match snapshot {
            Some(s) => format!(
                "the newest snapshot {} covers only slot {}",
                s.path.display(),
                s.through.0
            ),
            None => "there is no snapshot".to_string(),
        };
        return Err(StorageError::corrupt(
            dir.join(FLOOR_FILE),
            0,
            format!(
                "the log was compacted through slot {} but {have}: the entries the removed \
                 segments held are in neither (the snapshot was deleted or rolled back?)",
                floor.compacted_through.0
            ),
        ));
    }
    Ok(())
}

/// An LSN no record of this log can reach: the newest segment's first LSN plus four segments'
/// worth of the smallest records (the newest, and rotations whose renames a crash undid). The
/// search for records after a recycled segment's end looks only below it, which is what keeps
/// that search cheap; without a readable newest header it is unbounded (correct, only slower),
/// and the main loop reports that header.
fn lsn_limit<V: Vfs>(vfs: &V, dir: &Path, indices: &[(u64, String)], options: &WalOptions) -> u64 {
    let Some((index, name)) = indices.last() else {
        return u64::MAX;
    };
    let path = dir.join(name);
    let mut head = vec![0u8; SEGMENT_HEADER_BYTES as usize];
    let read = vfs
        .open(&path, OpenMode::Existing)
        .and_then(|mut f| f.read_at(&mut head, 0));
    if read.is_err()
        || head[..8] != SEGMENT_MAGIC
        || le_u32(&head, 60) != crc32c::crc32c(&head[..60])
        || le_u64(&head, 16) != *index
    {
        return u64::MAX;
    }
    let bytes = le_u64(&head, 32).max(options.segment_bytes);
    le_u64(&head, 24).saturating_add(4 * (bytes / RECORD_HEADER_BYTES) + 1)
}

/// "segment 3 is missing" or "segments 1 to 3 are missing".
fn missing_range(first: u64, last: u64) -> String {
    if first == last {
        format!("segment {first} is missing")
    } else {
        format!("segments {first} to {last} are missing")
    }
}

#[allow(clippy::too_many_arguments)]
fn replay_record(
    path: &Path,
    offset: u64,
    kind: u8,
    payload: &[u8],
    first_segment: bool,
    state: &mut DurableState,
    tracked: &mut Checkpoint,
    info: &mut SegmentInfo,
) -> Result<()> {
    let bad = |what: String| StorageError::corrupt(path, offset, what);
    match kind {
        RECORD_CHECKPOINT => {
            let cp = codec::decode_checkpoint(payload)
                .map_err(|e| bad(format!("checkpoint does not decode: {e}")))?;
            // Replayed from its start, the log must agree with each later checkpoint; only the
            // first surviving segment's checkpoint may add what deleted segments held.
            if !first_segment && cp != *tracked {
                return Err(bad(format!(
                    "checkpoint {cp:?} disagrees with the log before it {tracked:?}"
                )));
            }
            *tracked = cp;
            state.promised = cp.promised;
            state.rebuilding = cp.rebuilding;
        }
        _ => {
            let ops = codec::decode_batch(payload)
                .map_err(|e| bad(format!("batch does not decode: {e}")))?;
            for op in &ops {
                if let PersistOp::Promise { ballot } = op {
                    if state.promised.is_some_and(|p| p > *ballot) {
                        return Err(bad(format!(
                            "promise {ballot} is below the earlier promise {:?}: promises only grow",
                            state.promised
                        )));
                    }
                }
                if let Some(slot) = slot_of(op) {
                    info.max_slot = Some(info.max_slot.map_or(slot, |m| m.max(slot)));
                }
                state.apply(op);
                track(tracked, op);
            }
        }
    }
    Ok(())
}

/// Creates segment `index` under a temporary name, writes its header and checkpoint,
/// preallocates it, syncs it, and renames it into place, so a segment that has its final name
/// always has a durable header and checkpoint. The rename is durable after the caller's
/// directory fsync. With a `spare` prepared for `index` (zeros only, never written otherwise),
/// that file is used instead: the fill left to do is none or little, the rest is the same.
fn create_segment<V: Vfs>(
    vfs: &V,
    dir: &Path,
    index: u64,
    first_lsn: u64,
    segment_bytes: u64,
    checkpoint: &Checkpoint,
    spare: Option<Spare<V::File>>,
) -> Result<(V::File, u64, SegmentInfo)> {
    let path = dir.join(segment_name(index));
    let head = segment_head(index, first_lsn, segment_bytes, checkpoint, None);
    let (tmp, mut file) = match spare {
        Some(spare) => (spare.path, spare.file),
        None => {
            let tmp = dir.join(segment_tmp_name(index));
            let file = vfs
                .open(&tmp, OpenMode::CreateTruncate)
                .map_err(|e| StorageError::io("create", &tmp, e))?;
            (tmp, file)
        }
    };
    file.allocate(segment_bytes)
        .and_then(|()| file.write_at(&head, 0))
        .and_then(|()| file.sync_all())
        .map_err(|e| StorageError::io("preallocate", &tmp, e))?;
    vfs.rename(&tmp, &path)
        .map_err(|e| StorageError::io("rename", &tmp, e))?;
    let info = SegmentInfo {
        index,
        path,
        first_lsn: Lsn(first_lsn),
        segment_bytes,
        max_slot: None,
    };
    Ok((file, head.len() as u64, info))
}

/// A segment's header and checkpoint record, as written at offset 0.
fn segment_head(
    index: u64,
    first_lsn: u64,
    segment_bytes: u64,
    checkpoint: &Checkpoint,
    salt: Option<u32>,
) -> Vec<u8> {
    let mut head = encode_header(&SegmentHeader {
        index,
        first_lsn,
        segment_bytes,
        recycled: salt.is_some(),
        salt: salt.unwrap_or(0),
    });
    let frame = begin_frame(&mut head);
    codec::encode_checkpoint(checkpoint, &mut head);
    seal_frame(&mut head, frame, first_lsn, RECORD_CHECKPOINT, salt);
    head
}

/// Like [`create_segment`], over the recycled file `from` (a compacted segment): header
/// (marked recycled) and checkpoint at offset 0, `fsync`, rename. The bytes after the
/// checkpoint are stale records of the file's earlier lives, all with LSNs below `first_lsn`,
/// which recovery tells from this segment's own (`scan_recycled`). A file of another size
/// (the options changed) is deleted and the segment is made the ordinary way.
fn create_segment_over<V: Vfs>(
    vfs: &V,
    dir: &Path,
    from: &Path,
    index: u64,
    first_lsn: u64,
    options: &WalOptions,
    checkpoint: &Checkpoint,
) -> Result<(V::File, u64, SegmentInfo, Option<u32>)> {
    let segment_bytes = options.segment_bytes;
    let mut file = vfs
        .open(from, OpenMode::Existing)
        .map_err(|e| StorageError::io("open", from, e))?;
    let len = file.len().map_err(|e| StorageError::io("stat", from, e))?;
    if len != segment_bytes {
        drop(file);
        vfs.remove(from)
            .map_err(|e| StorageError::io("remove", from, e))?;
        return create_segment(vfs, dir, index, first_lsn, segment_bytes, checkpoint, None)
            .map(|(file, end, info)| (file, end, info, None));
    }
    let path = dir.join(segment_name(index));
    let salt = new_salt(index, first_lsn, options.salt_seed);
    let head = segment_head(index, first_lsn, segment_bytes, checkpoint, Some(salt));
    file.write_at(&head, 0)
        .and_then(|()| file.sync_all())
        .map_err(|e| StorageError::io("write the header of", from, e))?;
    vfs.rename(from, &path)
        .map_err(|e| StorageError::io("rename", from, e))?;
    let info = SegmentInfo {
        index,
        path,
        first_lsn: Lsn(first_lsn),
        segment_bytes,
        max_slot: None,
    };
    Ok((file, head.len() as u64, info, Some(salt)))
}
