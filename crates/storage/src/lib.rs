//! Durable storage for a Synod replica: the write-ahead log, snapshots and the member's
//! metadata, so that a Multi-Paxos acceptor keeps its promises and votes across crashes.
//!
//! What it does: the sans-IO core ([`paxos::multi::Replica`]) hands its driver batches of
//! [`paxos::multi::PersistOp`]; the driver appends each batch as one record to a [`Wal`],
//! calls [`Wal::sync`] (or lets [`group::GroupCommit`] batch the syncs on a thread), and only
//! then reports `persisted(seq)`. On restart [`Wal::open`] (or [`Store::open`]) replays the log
//! over the newest snapshot into a [`paxos::multi::DurableState`] for `Replica::recover`.
//!
//! What it must never do:
//! - know about the network or gRPC: it stores bytes and Paxos state, nothing else;
//! - acknowledge a record before it is synced: [`Wal::sync`] returns only after `fdatasync`
//!   (and the directory fsync when a segment was created) completed;
//! - silently drop data: a torn final record (never acknowledged) is the only thing recovery
//!   discards, and it says so; every other checksum failure, gap or truncation is
//!   [`StorageError::Corrupt`] naming the file, the byte offset and what the operator can do.
//!
//! All file access goes through [`Vfs`], so the same code runs on real files ([`StdFs`]) and on
//! the simulator's [`memfs::MemFs`], which injects crashes, torn writes and bit flips.
//!
//! ```
//! use paxos::multi::PersistOp;
//! use paxos::{Ballot, NodeId};
//! use storage::{memfs::MemFs, Wal, WalOptions};
//! use rand_chacha::{rand_core::SeedableRng, ChaCha8Rng};
//!
//! let fs = MemFs::new();
//! let (mut wal, recovered) = Wal::open(fs.clone(), "/data", WalOptions::small()).unwrap();
//! assert_eq!(recovered.state.promised, None);
//! let ballot = Ballot::new(3, NodeId(1));
//! wal.append(&[PersistOp::Promise { ballot }]).unwrap();
//! wal.sync().unwrap(); // only now may the driver call replica.persisted(seq)
//!
//! fs.crash(&mut ChaCha8Rng::seed_from_u64(1));
//! let (_wal, recovered) = Wal::open(fs, "/data", WalOptions::small()).unwrap();
//! assert_eq!(recovered.state.promised, Some(ballot));
//! ```

pub mod codec;
mod crc;
pub mod disk_paxos;
pub mod error;
pub mod floor;
pub mod group;
pub mod memfs;
pub mod meta;
mod preparer;
pub mod snapshot;
pub mod store;
pub mod vfs;
pub mod wal;

pub use error::{DecodeError, Result, StorageError, CORRUPTION_REMEDY};
pub use floor::WalFloor;
pub use meta::{Meta, QuorumRuleFile};
pub use snapshot::{
    latest_snapshot, read_snapshot_body, read_snapshot_meta, snapshot_header,
    verify_snapshot_bytes, Intake, SnapshotChunk, SnapshotIntake, SnapshotMeta, SnapshotReceiver,
    SnapshotSource, SnapshotWriter, SNAPSHOT_HEADER_BYTES,
};
pub use store::Store;
pub use vfs::{OpenMode, Prealloc, StdFs, Vfs, VfsFile};
pub use wal::{Lsn, Recovered, Repair, SegmentInfo, Wal, WalOptions, WalStats};
