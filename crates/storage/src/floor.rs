//! The `wal-floor` file: which segment is the oldest the log keeps, so that recovery can tell
//! "compaction removed the segments below it" from "a segment was deleted behind the log's
//! back". Without it, a directory whose oldest segment vanished opens silently with that
//! segment's entries gone, because the next segment's checkpoint still carries the promise.
//!
//! Written with tmp + fsync + rename + directory fsync, and by compaction *before* it removes
//! anything: after a crash the floor is either the old one or the new one, and every segment
//! it names as kept is still there (see `docs/storage-format.md`, "Crash during compaction").

use crate::codec::{open_small_file, put_u32, put_u64};
use crate::error::{DecodeError, Result, StorageError};
use crate::vfs::{read_small_file, replace_file, Vfs};
use crate::wal::Lsn;
use paxos::Slot;
use std::path::Path;

/// Name of the floor file in a data directory.
pub const FLOOR_FILE: &str = "wal-floor";
/// The name the floor is written under before its rename. It matches `wal-*.tmp`, so a
/// leftover is removed (and reported) on open with the other interrupted-write leftovers.
pub const FLOOR_TMP: &str = "wal-floor.tmp";
/// Magic number at the start of the floor file.
pub const FLOOR_MAGIC: [u8; 8] = *b"SYNODFLR";
/// Version of the floor file format.
pub const FLOOR_VERSION: u32 = 1;
/// Exact length of the floor file.
pub const FLOOR_BYTES: u64 = 40;

/// The oldest segment the log keeps, as recorded on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalFloor {
    /// Index of the oldest segment kept; every older one was removed by compaction (or, after
    /// a crash during compaction, is about to be).
    pub index: u64,
    /// LSN of that segment's first record (its checkpoint), checked against its header so a
    /// segment replaced by another one with the same name is caught too.
    pub first_lsn: Lsn,
    /// The slot the removed segments were compacted through: the newest snapshot must cover at
    /// least this much, or the entries the removed segments held are gone.
    pub compacted_through: Slot,
}

impl WalFloor {
    /// The floor of a log that was never compacted: segment 1, LSN 1.
    pub const ORIGIN: WalFloor = WalFloor {
        index: 1,
        first_lsn: Lsn(1),
        compacted_through: Slot::ZERO,
    };

    /// The file's bytes: magic, version u32, index u64, first LSN u64, compacted-through slot
    /// u64, CRC32C of everything before u32; little-endian, 40 bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FLOOR_BYTES as usize);
        out.extend_from_slice(&FLOOR_MAGIC);
        put_u32(&mut out, FLOOR_VERSION);
        put_u64(&mut out, self.index);
        put_u64(&mut out, self.first_lsn.0);
        put_u64(&mut out, self.compacted_through.0);
        let crc = crc32c::crc32c(&out);
        put_u32(&mut out, crc);
        out
    }

    /// Parses and verifies the file's bytes.
    pub fn decode(bytes: &[u8]) -> std::result::Result<WalFloor, DecodeError> {
        if bytes.len() != FLOOR_BYTES as usize {
            return Err(DecodeError::Invalid {
                what: "floor file length (must be exactly 40 bytes)",
            });
        }
        let mut r = open_small_file(bytes, &FLOOR_MAGIC, FLOOR_VERSION, "floor", "floor magic")?;
        let floor = WalFloor {
            index: r.u64()?,
            first_lsn: Lsn(r.u64()?),
            compacted_through: Slot(r.u64()?),
        };
        r.finish()?;
        // Segment indices and LSNs start at 1; a zero could only come from a bug or damage
        // that happened to keep the CRC valid.
        if floor.index == 0 || floor.first_lsn.0 == 0 {
            return Err(DecodeError::Invalid {
                what: "floor names segment 0 or LSN 0",
            });
        }
        Ok(floor)
    }

    /// Reads `dir/wal-floor`; `None` if there is none. A floor that does not verify is
    /// corruption: guessing would either hide lost segments or refuse a sound log.
    pub fn read<V: Vfs>(vfs: &V, dir: &Path) -> Result<Option<WalFloor>> {
        let path = dir.join(FLOOR_FILE);
        let Some((bytes, len)) = read_small_file(vfs, &path, FLOOR_BYTES)? else {
            return Ok(None);
        };
        if len != FLOOR_BYTES {
            return Err(StorageError::corrupt(
                &path,
                len.min(FLOOR_BYTES),
                format!(
                    "the WAL floor file is {len} bytes, not {FLOOR_BYTES}: it records which \
                     segment is the oldest kept, so the log cannot be checked for a missing \
                     oldest segment"
                ),
            ));
        }
        WalFloor::decode(&bytes).map(Some).map_err(|e| {
            StorageError::corrupt(
                &path,
                0,
                format!(
                    "the WAL floor file does not verify ({e}): it records which segment is the \
                     oldest kept, so the log cannot be checked for a missing oldest segment"
                ),
            )
        })
    }

    /// Writes `dir/wal-floor` atomically and durably: tmp, fsync, rename, directory fsync.
    /// When it returns, a crash leaves this floor; before, the previous one (or none).
    pub fn write<V: Vfs>(&self, vfs: &V, dir: &Path) -> Result<()> {
        replace_file(vfs, dir, FLOOR_FILE, FLOOR_TMP, &self.encode())
    }
}
