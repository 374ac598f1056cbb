//! Disks for Disk Paxos ([`paxos::disk`]): one file per disk, one fixed-size checksummed block
//! per processor, through [`Vfs`] (so the simulator's [`MemFs`](crate::memfs::MemFs), with its
//! power losses and torn writes, and real files run the same code).
//!
//! # Format
//!
//! A disk is a directory holding one file, [`DISK_FILE`]. Processor `p` (ids from 1) owns the
//! [`BLOCK_BYTES`] bytes at offset `(p - 1) * BLOCK_BYTES`; nobody else writes them. A block:
//!
//! | bytes | field |
//! |---|---|
//! | 0..4 | magic `DPB1` |
//! | 4 | disk id |
//! | 5 | 0 (reserved) |
//! | 6..8 | processor id, u16 little endian |
//! | 8..24 | `mbal`: round u64, node u64, little endian |
//! | 24..40 | `bal`: round u64, node u64 |
//! | 40 | 1 if `inp` is present, else 0 |
//! | 41 | length of `inp` (at most [`VALUE_BYTES_MAX`]) |
//! | 42..42+len | `inp` |
//! | ..1020 | zeros |
//! | 1020..1024 | CRC-32C of bytes 0..1020, little endian |
//!
//! A block whose bytes are all zero, or that lies past the end of the file, was never written
//! and reads as [`DiskBlock::INITIAL`].
//!
//! # What a torn or damaged block does
//!
//! A block is two 512-byte sectors, so a write interrupted by a power loss can leave one sector
//! new and one old. Such a block, a block with a flipped bit, one at the wrong offset (a
//! misdirected write: it names another disk or processor) and one cut by the end of the file
//! all fail their checks and read as [`BlockError::Corrupt`]: the read of that disk *fails*,
//! and the core counts that disk as not answering. A damaged block is never read as a valid
//! block with other contents, so damage costs availability (that disk, for the processors that
//! read it, until the owner writes its block again), never safety.
//!
//! Assumptions about the disk: a write that was synced stays (no rollback); reads see the last
//! write. Every write is synced (`fdatasync`) before it is reported complete.
//!
//! Files are opened for each request and closed after it, so a disk whose directory
//! disappears (removed, or replaced by a file) fails at once instead of writing on through an
//! old handle into an unlinked file.

use crate::vfs::{OpenMode, Vfs, VfsFile};
use paxos::disk::{Completion, DiskBlock, DiskConfig, DiskId, DiskIo, VALUE_BYTES_MAX};
use paxos::{Ballot, NodeId};
use std::io;
use std::path::{Path, PathBuf};

/// Bytes of one block: two sectors.
pub const BLOCK_BYTES: u64 = 1024;
/// The name of a disk's file in its directory.
pub const DISK_FILE: &str = "disk-paxos.blocks";
const MAGIC: &[u8; 4] = b"DPB1";
const CRC_AT: usize = BLOCK_BYTES as usize - 4;

/// Why a block could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// The file system refused (the disk is gone, full, or failing).
    #[error("disk {disk}: {source}")]
    Io {
        /// The disk.
        disk: u8,
        /// The error.
        source: io::Error,
    },
    /// A block failed its checks: torn, flipped, misdirected or cut.
    #[error("disk {disk}, processor {processor}: block corrupt ({what})")]
    Corrupt {
        /// The disk.
        disk: u8,
        /// The owner of the block.
        processor: u64,
        /// Which check failed.
        what: &'static str,
    },
}

/// Encodes processor `p`'s block for `disk`.
///
/// # Panics
/// If the block is not well formed or `p` is out of range: the core never hands out such a
/// block, so this is a broken invariant, asserted before the write.
pub fn encode_block(disk: DiskId, p: NodeId, block: &DiskBlock) -> [u8; BLOCK_BYTES as usize] {
    assert!(
        block.is_well_formed(),
        "writing a malformed block {block:?}"
    );
    let id = u16::try_from(p.0).expect("processor id fits 16 bits");
    let mut b = [0u8; BLOCK_BYTES as usize];
    b[0..4].copy_from_slice(MAGIC);
    b[4] = disk.0;
    b[6..8].copy_from_slice(&id.to_le_bytes());
    put_ballot(&mut b[8..24], block.mbal);
    put_ballot(&mut b[24..40], block.bal);
    if let Some(inp) = &block.inp {
        b[40] = 1;
        b[41] = inp.len() as u8;
        b[42..42 + inp.len()].copy_from_slice(inp);
    }
    let crc = crc32c::crc32c(&b[..CRC_AT]);
    b[CRC_AT..].copy_from_slice(&crc.to_le_bytes());
    b
}

fn put_ballot(out: &mut [u8], ballot: Ballot) {
    out[0..8].copy_from_slice(&ballot.round.to_le_bytes());
    out[8..16].copy_from_slice(&ballot.node.0.to_le_bytes());
}

fn get_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn get_ballot(b: &[u8]) -> Ballot {
    Ballot::new(get_u64(&b[0..8]), NodeId(get_u64(&b[8..16])))
}

/// Decodes processor `p`'s block read from `disk`; checked after reading, before use.
pub fn decode_block(disk: DiskId, p: NodeId, b: &[u8]) -> Result<DiskBlock, BlockError> {
    let corrupt = |what| BlockError::Corrupt {
        disk: disk.0,
        processor: p.0,
        what,
    };
    if b.len() != BLOCK_BYTES as usize {
        return Err(corrupt("wrong length"));
    }
    if b.iter().all(|x| *x == 0) {
        return Ok(DiskBlock::INITIAL);
    }
    let crc = u32::from_le_bytes([b[CRC_AT], b[CRC_AT + 1], b[CRC_AT + 2], b[CRC_AT + 3]]);
    if crc32c::crc32c(&b[..CRC_AT]) != crc {
        return Err(corrupt("checksum"));
    }
    if &b[0..4] != MAGIC || b[5] != 0 {
        return Err(corrupt("magic"));
    }
    if b[4] != disk.0 || u64::from(u16::from_le_bytes([b[6], b[7]])) != p.0 {
        return Err(corrupt("misdirected: names another disk or processor"));
    }
    let len = usize::from(b[41]);
    let inp = match b[40] {
        0 if len == 0 => None,
        1 if len <= VALUE_BYTES_MAX => Some(b[42..42 + len].to_vec()),
        _ => return Err(corrupt("value")),
    };
    let block = DiskBlock {
        mbal: get_ballot(&b[8..24]),
        bal: get_ballot(&b[24..40]),
        inp,
    };
    if !block.is_well_formed() {
        return Err(corrupt("not a block a processor writes"));
    }
    Ok(block)
}

/// One disk: a directory with one file of blocks.
#[derive(Debug)]
pub struct BlockDisk<F: Vfs> {
    fs: F,
    dir: PathBuf,
    path: PathBuf,
    disk: DiskId,
    config: DiskConfig,
}

impl<F: Vfs> BlockDisk<F> {
    /// Disk `disk` in directory `dir` (which must exist: a missing directory is a failed
    /// disk). No I/O happens until a request.
    pub fn new(fs: F, dir: impl Into<PathBuf>, disk: DiskId, config: DiskConfig) -> BlockDisk<F> {
        let dir = dir.into();
        let path = dir.join(DISK_FILE);
        BlockDisk {
            fs,
            dir,
            path,
            disk,
            config,
        }
    }

    /// The disk's id.
    pub fn id(&self) -> DiskId {
        self.disk
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn io_err(&self, source: io::Error) -> BlockError {
        BlockError::Io {
            disk: self.disk.0,
            source,
        }
    }

    fn offset(&self, p: NodeId) -> Result<u64, BlockError> {
        match self.config.index_of(p) {
            Some(i) => Ok(i as u64 * BLOCK_BYTES),
            None => Err(self.io_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("processor {} is not configured", p.0),
            ))),
        }
    }

    /// Opens the file, creating it (durably) if missing.
    fn open(&self) -> Result<F::File, BlockError> {
        match self.fs.open(&self.path, OpenMode::Existing) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let f = match self.fs.open(&self.path, OpenMode::CreateNew) {
                    Ok(f) => f,
                    // Another processor created it first.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => self
                        .fs
                        .open(&self.path, OpenMode::Existing)
                        .map_err(|e| self.io_err(e))?,
                    Err(e) => return Err(self.io_err(e)),
                };
                self.fs.sync_dir(&self.dir).map_err(|e| self.io_err(e))?;
                Ok(f)
            }
            Err(e) => Err(self.io_err(e)),
        }
    }

    /// Writes `p`'s block without syncing it (the simulator splits a write from its sync so
    /// a power loss can fall between them).
    pub fn write_unsynced(&self, p: NodeId, block: &DiskBlock) -> Result<(), BlockError> {
        let offset = self.offset(p)?;
        let bytes = encode_block(self.disk, p, block);
        let mut f = self.open()?;
        f.write_at(&bytes, offset).map_err(|e| self.io_err(e))
    }

    /// Makes the writes so far durable.
    pub fn sync(&self) -> Result<(), BlockError> {
        let mut f = self.open()?;
        f.sync_data().map_err(|e| self.io_err(e))
    }

    /// Writes `p`'s block durably.
    pub fn write_block(&self, p: NodeId, block: &DiskBlock) -> Result<(), BlockError> {
        let offset = self.offset(p)?;
        let bytes = encode_block(self.disk, p, block);
        let mut f = self.open()?;
        f.write_at(&bytes, offset).map_err(|e| self.io_err(e))?;
        f.sync_data().map_err(|e| self.io_err(e))
    }

    /// Reads the blocks of `of`, each checked; any damaged block fails the whole read.
    pub fn read_blocks(&self, of: &[NodeId]) -> Result<Vec<(NodeId, DiskBlock)>, BlockError> {
        let mut f = self.open()?;
        let len = f.len().map_err(|e| self.io_err(e))?;
        let mut out = Vec::with_capacity(of.len());
        let mut buf = vec![0u8; BLOCK_BYTES as usize];
        for &p in of {
            let offset = self.offset(p)?;
            if len <= offset {
                out.push((p, DiskBlock::INITIAL));
                continue;
            }
            if len < offset + BLOCK_BYTES {
                return Err(BlockError::Corrupt {
                    disk: self.disk.0,
                    processor: p.0,
                    what: "cut by the end of the file",
                });
            }
            f.read_at(&mut buf, offset).map_err(|e| self.io_err(e))?;
            out.push((p, decode_block(self.disk, p, &buf)?));
        }
        Ok(out)
    }

    /// Serves one request of processor `owner` synchronously (write and sync, or read), as a
    /// real driver does: any error is a [`Completion::Failed`].
    pub fn serve(&self, owner: NodeId, io: DiskIo) -> (Completion, Option<BlockError>) {
        match io {
            DiskIo::Write { disk, tag, block } => match self.write_block(owner, &block) {
                Ok(()) => (Completion::Written { disk, tag }, None),
                Err(e) => (Completion::Failed { disk, tag }, Some(e)),
            },
            DiskIo::Read { disk, tag, of } => match self.read_blocks(&of) {
                Ok(blocks) => (Completion::Read { disk, tag, blocks }, None),
                Err(e) => (Completion::Failed { disk, tag }, Some(e)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memfs::MemFs;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn block(round: u64, v: &[u8]) -> DiskBlock {
        DiskBlock {
            mbal: Ballot::new(round + 1, NodeId(2)),
            bal: Ballot::new(round, NodeId(2)),
            inp: Some(v.to_vec()),
        }
    }

    fn disk(fs: &MemFs) -> BlockDisk<MemFs> {
        fs.create_dir_all(Path::new("/d0")).unwrap();
        BlockDisk::new(fs.clone(), "/d0", DiskId(0), DiskConfig::new(3, 3).unwrap())
    }

    #[test]
    fn blocks_round_trip_and_unwritten_ones_are_initial() {
        let fs = MemFs::new();
        let d = disk(&fs);
        let all = [NodeId(1), NodeId(2), NodeId(3)];
        let read = d.read_blocks(&all).unwrap();
        assert!(read.iter().all(|(_, b)| *b == DiskBlock::INITIAL));
        d.write_block(NodeId(2), &block(4, b"xyz")).unwrap();
        let read = d.read_blocks(&all).unwrap();
        assert_eq!(read[0].1, DiskBlock::INITIAL);
        assert_eq!(read[1].1, block(4, b"xyz"));
        assert_eq!(read[2].1, DiskBlock::INITIAL);
    }

    #[test]
    fn a_flipped_bit_or_a_misdirected_block_fails_the_read() {
        let fs = MemFs::new();
        let d = disk(&fs);
        d.write_block(NodeId(2), &block(4, b"xyz")).unwrap();
        let path = Path::new("/d0").join(DISK_FILE);
        fs.flip_bit(&path, BLOCK_BYTES + 30, 3).unwrap();
        assert!(matches!(
            d.read_blocks(&[NodeId(2)]),
            Err(BlockError::Corrupt { .. })
        ));
        assert!(d.read_blocks(&[NodeId(1), NodeId(3)]).is_ok());
        let bytes = encode_block(DiskId(0), NodeId(1), &block(1, b"a"));
        assert!(decode_block(DiskId(0), NodeId(2), &bytes).is_err());
        assert!(decode_block(DiskId(1), NodeId(1), &bytes).is_err());
        assert!(decode_block(DiskId(0), NodeId(1), &bytes).is_ok());
    }

    #[test]
    fn a_torn_write_never_reads_as_another_valid_block() {
        // Over many power losses mid-write, a read gives the old block, the new block, or a
        // failure: nothing else.
        let mut torn = 0;
        for seed in 0..200 {
            let fs = MemFs::new();
            let d = disk(&fs);
            let old = block(1, b"old");
            let new = DiskBlock {
                mbal: Ballot::new(9, NodeId(2)),
                bal: Ballot::new(8, NodeId(2)),
                inp: Some(vec![7; VALUE_BYTES_MAX]),
            };
            d.write_block(NodeId(2), &old).unwrap();
            d.write_unsynced(NodeId(2), &new).unwrap();
            fs.crash(&mut ChaCha8Rng::seed_from_u64(seed));
            match d.read_blocks(&[NodeId(2)]) {
                Ok(b) => assert!(b[0].1 == old || b[0].1 == new, "{:?}", b[0].1),
                Err(BlockError::Corrupt { .. }) => torn += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(
            torn > 0,
            "no write was torn: the test did not reach its case"
        );
    }
}
