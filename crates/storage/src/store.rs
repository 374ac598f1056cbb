//! A node's whole data directory: its [`Meta`], its [`Wal`] and its snapshots.

use crate::error::{Result, StorageError};
use crate::meta::Meta;
use crate::snapshot::{SnapshotMeta, SnapshotWriter};
use crate::vfs::Vfs;
use crate::wal::{Lsn, Recovered, Wal, WalOptions};
use paxos::multi::PersistOp;
use paxos::Slot;
use std::path::{Path, PathBuf};

/// Meta, log and snapshots of one member, in one directory.
#[derive(Debug)]
pub struct Store<V: Vfs + Clone> {
    meta: Meta,
    wal: Wal<V>,
}

impl<V: Vfs + Clone> Store<V> {
    /// Whether `dir` holds a meta file.
    pub fn is_initialized(vfs: &V, dir: &Path) -> Result<bool> {
        Ok(Meta::read(vfs, dir)?.is_some())
    }

    /// Initializes `dir` for `meta`: creates the log (with `options` for its first segment),
    /// then writes the meta file last, so a crash midway leaves a directory that is not yet
    /// initialized and can be initialized again. Refuses an initialized directory.
    pub fn init(vfs: V, dir: impl Into<PathBuf>, meta: &Meta, options: WalOptions) -> Result<()> {
        Store::init_with(vfs, dir, meta, options, &[])
    }

    /// As [`Store::init`], with `first` appended to the log and synced before the meta file
    /// is written: a directory initialized for a member that must rebuild
    /// (`PersistOp::RebuildStarted`) is never found initialized without it, whenever it
    /// crashes.
    pub fn init_with(
        vfs: V,
        dir: impl Into<PathBuf>,
        meta: &Meta,
        options: WalOptions,
        first: &[PersistOp],
    ) -> Result<()> {
        let dir = dir.into();
        vfs.create_dir_all(&dir)
            .map_err(|e| StorageError::io("create directory", &dir, e))?;
        if Store::is_initialized(&vfs, &dir)? {
            return Err(StorageError::AlreadyInitialized { dir });
        }
        let (mut wal, _) = Wal::open(vfs.clone(), dir.clone(), options)?;
        if !first.is_empty() {
            wal.append(first)?;
        }
        wal.sync()?;
        meta.write(&vfs, &dir)
    }

    /// Opens an initialized directory, refusing one that belongs to another cluster or member,
    /// and replays its log.
    pub fn open(
        vfs: V,
        dir: impl Into<PathBuf>,
        expected: &Meta,
        options: WalOptions,
    ) -> Result<(Store<V>, Recovered)> {
        let dir = dir.into();
        let Some(meta) = Meta::read(&vfs, &dir)? else {
            return Err(StorageError::NotInitialized { dir });
        };
        if meta.cluster_id != expected.cluster_id || meta.member_id != expected.member_id {
            return Err(StorageError::WrongMember {
                dir,
                found_cluster: meta.cluster_id,
                found_member: meta.member_id,
                expected_cluster: expected.cluster_id,
                expected_member: expected.member_id,
            });
        }
        let (wal, recovered) = Wal::open_existing(vfs, dir, options)?;
        Ok((Store { meta, wal }, recovered))
    }

    /// Who this directory belongs to.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// The log.
    pub fn wal(&mut self) -> &mut Wal<V> {
        &mut self.wal
    }

    /// Gives up the store, keeping its log (e.g. to hand it to a group-commit thread).
    pub fn into_wal(self) -> Wal<V> {
        self.wal
    }

    /// Appends one batch (see [`Wal::append`]).
    pub fn append(&mut self, ops: &[PersistOp]) -> Result<Lsn> {
        self.wal.append(ops)
    }

    /// Makes everything appended durable (see [`Wal::sync`]).
    pub fn sync(&mut self) -> Result<Lsn> {
        self.wal.sync()
    }

    /// Starts writing a snapshot through `through`.
    pub fn snapshot_writer(&self, through: Slot) -> Result<SnapshotWriter<V>> {
        SnapshotWriter::create(
            self.wal.vfs().clone(),
            self.wal.dir().to_path_buf(),
            through,
        )
    }

    /// After a snapshot was finished: deletes the log segments it covers.
    pub fn compact(&mut self, snapshot: &SnapshotMeta) -> Result<usize> {
        self.wal.compact(snapshot.through)
    }
}
