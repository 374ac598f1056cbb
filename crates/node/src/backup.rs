//! Backups: one member's applied state as one file, and the restore that seeds a new cluster
//! from it.
//!
//! A backup is what `etcdctl snapshot save` fetches (`Maintenance.Snapshot`): a snapshot file
//! in storage's format (a checksummed header, then this node's body) holding the store at the
//! slot the member had applied, without the session table (it only answers retries of the
//! cluster's own clients, which a restored cluster will never see). Around it is etcd's
//! envelope, which etcdctl checks before it keeps a file: zeros up to a multiple of 512 bytes,
//! then the SHA-256 of everything before (32 bytes). A restore is that snapshot installed into
//! a fresh data directory: every member restored from the same file starts at the same slot
//! with the same state and no promise, so together they form a new cluster.
//!
//! A restore never writes over anything: it builds the directory beside its final place and
//! renames it in only once it is whole and synced.

use crate::config::NodeConfig;
use crate::etcd_backup;
use bytes::Bytes;
use kv::RangeRequest;
use member::snapshot::{encode_body, AppliedSnapshot, BodyError};
use member::BackupBody;
use paxos::multi::Applier;
use paxos::Slot;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use storage::{Meta, StdFs, StorageError, Store, Vfs, WalOptions};
use thiserror::Error;

/// A backup taken from a member, ready to stream.
#[derive(Clone, Debug)]
pub struct Backup {
    /// Every slot through here is in it.
    pub through: Slot,
    /// The store's revision in it.
    pub revision: i64,
    /// The whole file: header, then body.
    pub bytes: Bytes,
}

/// A backup's length is a multiple of this plus [`DIGEST_BYTES`] (etcd's shape).
const ALIGN_BYTES: usize = 512;
/// The SHA-256 at the end.
const DIGEST_BYTES: usize = 32;

/// A backup file around the member's backup body, once encoded: storage's snapshot header, the
/// body, then etcd's envelope (zero padding, SHA-256). Passes over the whole store twice (the
/// encoding, the SHA-256): the node runs it off the core.
pub(crate) fn wrap(backup: BackupBody) -> Result<Backup, BodyError> {
    let BackupBody {
        through,
        revision,
        body,
    } = backup;
    let body = body.encode()?.bytes;
    let mut bytes = storage::snapshot_header(through, &body);
    bytes.extend_from_slice(&body);
    bytes.resize(bytes.len().next_multiple_of(ALIGN_BYTES), 0);
    let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
    bytes.extend_from_slice(digest.as_ref());
    debug_assert_eq!(bytes.len() % ALIGN_BYTES, DIGEST_BYTES);
    Ok(Backup {
        through,
        revision,
        bytes: Bytes::from(bytes),
    })
}

/// The snapshot file inside a backup's bytes, once the envelope checks out.
fn unwrap_envelope(bytes: &[u8]) -> Result<&[u8], String> {
    let len = bytes.len();
    if len < DIGEST_BYTES || !(len - DIGEST_BYTES).is_multiple_of(ALIGN_BYTES) {
        return Err(format!(
            "it is {len} bytes, and a backup is a multiple of {ALIGN_BYTES} bytes and then a \
             {DIGEST_BYTES}-byte SHA-256 (truncated, or not a backup?)"
        ));
    }
    let (padded, stored) = bytes.split_at(len - DIGEST_BYTES);
    let computed = ring::digest::digest(&ring::digest::SHA256, padded);
    if computed.as_ref() != stored {
        return Err(format!(
            "the SHA-256 in its last {DIGEST_BYTES} bytes does not match its content \
             (damaged or truncated)"
        ));
    }
    // The header's body length says where the padding starts; a header damaged there fails
    // its own checksum below.
    let declared = padded
        .get(24..32)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes);
    let end = storage::SNAPSHOT_HEADER_BYTES
        .saturating_add(declared)
        .min(padded.len() as u64) as usize;
    let (file, padding) = padded.split_at(end);
    if padding.iter().any(|&b| b != 0) {
        return Err(format!(
            "bytes after its snapshot's end at byte {end} are not zero"
        ));
    }
    Ok(file)
}

/// What a backup file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupInfo {
    /// The slot it covers (of the cluster it was taken from).
    pub through: Slot,
    /// The store's revision.
    pub revision: i64,
    /// The revision history was compacted through.
    pub compact_revision: i64,
    /// Keys that exist at `revision`.
    pub keys: u64,
    /// Bytes before the trailing SHA-256 (as etcd's `totalSize` counts its database's).
    pub bytes: u64,
    /// CRC32C of the body (the file's header carries it).
    pub body_crc: u32,
}

/// Why a backup could not be read or restored. Each says what to do.
#[derive(Debug, Error)]
pub enum BackupError {
    /// The file is not a whole, undamaged backup.
    #[error(
        "{path} is not a usable backup: {why}. Nothing was restored; take a new backup \
         (etcdctl snapshot save) or use another copy"
    )]
    Unusable {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// The data directory already holds something.
    #[error(
        "the data directory {} is not empty: a restore never writes over a member's data. \
         Remove it, or restore into another --data-dir",
        dir.display()
    )]
    DirNotEmpty {
        /// The directory.
        dir: PathBuf,
    },
    /// Writing the new data directory failed; whatever was written is left under `tmp`.
    #[error("cannot write the restored data directory {}: {source}", tmp.display())]
    Write {
        /// The directory being built.
        tmp: PathBuf,
        /// What failed.
        source: StorageError,
    },
}

/// Reads and verifies the backup at `path` (header, whole-body checksum, body decoded), and
/// returns what it holds along with its body. An etcd backup is taken with default limits.
pub fn inspect(path: &Path) -> Result<(BackupInfo, Vec<u8>), BackupError> {
    inspect_with(path, kv::Limits::default())
}

/// [`inspect`], with the limits an etcd backup's store is given (a Synod backup carries its
/// own): a restore gives the member's, so an imported store enforces `--max-txn-ops` as
/// etcd did, and keeps it (the snapshot carries it).
fn inspect_with(path: &Path, limits: kv::Limits) -> Result<(BackupInfo, Vec<u8>), BackupError> {
    let unusable = |why: String| BackupError::Unusable {
        path: path.to_path_buf(),
        why,
    };
    // Storage's remedy for a corrupt file speaks of a member's data directory; a backup's is
    // another copy, which the error says.
    let damaged = |e: StorageError| match e {
        StorageError::Corrupt { offset, what, .. } => unusable(format!("at byte {offset}: {what}")),
        other => unusable(other.to_string()),
    };
    let bytes = std::fs::read(path).map_err(|e| unusable(format!("cannot read it: {e}")))?;
    let from_etcd;
    let file = if etcd_backup::looks_like_etcd(&bytes) {
        from_etcd = snapshot_of_etcd(&bytes, limits).map_err(unusable)?;
        from_etcd.as_slice()
    } else {
        unwrap_envelope(&bytes).map_err(unusable)?
    };
    let meta = storage::verify_snapshot_bytes(path, file).map_err(damaged)?;
    let body = file[storage::SNAPSHOT_HEADER_BYTES as usize..].to_vec();
    let applier = AppliedSnapshot::decode(meta.through, &body)
        .and_then(AppliedSnapshot::into_applier)
        .map_err(|e| unusable(e.to_string()))?;
    let store = applier.machine();
    let every_key = RangeRequest {
        key: vec![0],
        range_end: vec![0],
        count_only: true,
        ..RangeRequest::default()
    };
    let keys = store
        .range(&every_key)
        .map_err(|e| unusable(format!("its store does not answer a read: {e}")))?
        .count;
    let info = BackupInfo {
        through: meta.through,
        revision: store.revision(),
        compact_revision: store.compact_revision(),
        keys: u64::try_from(keys).unwrap_or(0),
        // Both kinds end in a SHA-256, except a bare etcd database (whole 512-byte blocks).
        bytes: if bytes.len() % ALIGN_BYTES == DIGEST_BYTES {
            bytes.len() - DIGEST_BYTES
        } else {
            bytes.len()
        } as u64,
        body_crc: meta.body_crc,
    };
    Ok((info, body))
}

/// The slot an etcd backup's state is taken as applied through: the first, since the
/// restored cluster's log starts after it (etcd's raft index means nothing here).
pub const ETCD_BACKUP_THROUGH: Slot = Slot(1);

/// A Synod snapshot file (header, then body) of the state in an etcd backup.
fn snapshot_of_etcd(bytes: &[u8], limits: kv::Limits) -> Result<Vec<u8>, String> {
    let store = etcd_backup::read(bytes, limits)?;
    let applier = Applier::restore(store, BTreeMap::new(), ETCD_BACKUP_THROUGH);
    let (body, _) = encode_body(&applier, false).map_err(|e| e.to_string())?;
    let mut file = storage::snapshot_header(ETCD_BACKUP_THROUGH, &body);
    file.extend_from_slice(&body);
    Ok(file)
}

/// Seeds `config`'s data directory from the backup at `path`, for the member `config`
/// describes (its name, initial cluster and token decide the member and cluster ids, as they
/// do when it starts). Run it for every member of the new cluster, from the same file, then
/// start them as usual.
pub fn restore(path: &Path, config: &NodeConfig) -> Result<BackupInfo, BackupError> {
    let (info, body) = inspect_with(path, config.store_limits())?;
    let dir = &config.data_dir;
    let fs = StdFs::new();
    if let Ok(mut entries) = std::fs::read_dir(dir) {
        if entries.next().is_some() {
            return Err(BackupError::DirNotEmpty { dir: dir.clone() });
        }
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    let tmp = dir.with_file_name(format!(".{name}.restoring"));
    let write = |source: StorageError| BackupError::Write {
        tmp: tmp.clone(),
        source,
    };
    let io = |op: &'static str, at: &Path, error: std::io::Error| {
        write(StorageError::Io {
            op,
            path: at.to_path_buf(),
            error,
        })
    };
    // A leftover of an interrupted restore of this same directory: ours by its name.
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| io("remove", &tmp, e))?;
    }
    let meta = Meta {
        cluster_id: config.cluster_id(),
        member_id: config.me().id,
        initial_members: config.initial_cluster.iter().map(|p| p.id).collect(),
    };
    let wal_options = WalOptions::with_sizes(
        config.wal_segment_bytes,
        WalOptions::default().record_bytes_max,
    )
    .with_recycle_segments(true);
    Store::init(fs, &tmp, &meta, wal_options).map_err(write)?;
    let mut writer =
        storage::SnapshotWriter::create(fs, tmp.clone(), info.through).map_err(write)?;
    writer.write(&body).map_err(write)?;
    writer.finish().map_err(write)?;
    // `rename` replaces an empty directory, and nothing else (checked above).
    std::fs::rename(&tmp, dir).map_err(|e| io("rename", &tmp, e))?;
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs.sync_dir(parent)
        .map_err(|e| io("sync directory", parent, e))?;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kv::{KvCommand, KvStore, PutRequest};
    use member::snapshot::BodyJob;
    use paxos::multi::{ChosenEntry, ClientId, Command, CommandId, Value};

    /// A backup of `applier`'s state, as the member and the driver take one.
    fn take(applier: &Applier<KvStore>) -> Result<Backup, BodyError> {
        wrap(BackupBody {
            through: applier.applied_through(),
            revision: applier.machine().revision(),
            body: BodyJob::new(applier, false, None),
        })
    }

    fn applier_with(keys: &[(&str, &str)]) -> Applier<KvStore> {
        let mut applier = Applier::new(KvStore::new());
        let mut out = Vec::new();
        for (i, (k, v)) in keys.iter().enumerate() {
            let cmd = KvCommand::Put(PutRequest {
                key: k.as_bytes().to_vec(),
                value: v.as_bytes().to_vec(),
                ..PutRequest::default()
            });
            let entry = ChosenEntry {
                slot: Slot(i as u64 + 1),
                value: Value::Batch(vec![Command {
                    id: CommandId {
                        client: ClientId(7),
                        seq: i as u64 + 1,
                    },
                    payload: kv::encode(&cmd).into(),
                }]),
            };
            applier.apply(&entry, &mut out);
        }
        applier
    }

    #[test]
    fn a_backup_file_verifies_and_says_what_it_holds() {
        let dir = tempfile::tempdir().expect("tempdir");
        let applier = applier_with(&[("a", "1"), ("b", "2"), ("a", "3")]);
        let backup = take(&applier).expect("backup");
        assert_eq!(backup.through, Slot(3));
        assert_eq!(backup.revision, 4);
        let path = dir.path().join("backup.db");
        std::fs::write(&path, &backup.bytes).expect("write");
        let (info, _) = inspect(&path).expect("a whole backup verifies");
        assert_eq!(info.through, Slot(3));
        assert_eq!(info.revision, 4);
        assert_eq!(info.keys, 2, "two keys exist, one of them written twice");
        assert_eq!(info.bytes, backup.bytes.len() as u64 - 32);
    }

    /// `bytes` with its last 32 bytes replaced by the SHA-256 of the rest: damage that the
    /// envelope cannot see, for the checks inside it.
    fn resealed(mut bytes: Vec<u8>) -> Vec<u8> {
        let n = bytes.len() - DIGEST_BYTES;
        let digest = ring::digest::digest(&ring::digest::SHA256, &bytes[..n]);
        bytes[n..].copy_from_slice(digest.as_ref());
        bytes
    }

    #[test]
    fn a_damaged_backup_is_refused_with_its_path_and_what_is_wrong() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backup = take(&applier_with(&[("a", "1")])).expect("backup");
        let whole = backup.bytes.to_vec();
        let body_at = storage::SNAPSHOT_HEADER_BYTES as usize;
        let flip = |at: usize| {
            let mut b = whole.clone();
            b[at] ^= 0x40;
            b
        };
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", Vec::new(), "truncated, or not a backup"),
            (
                "one byte short",
                whole[..whole.len() - 1].to_vec(),
                "truncated, or not a backup",
            ),
            ("a flipped body byte", flip(body_at + 1), "SHA-256"),
            ("a flipped digest byte", flip(whole.len() - 1), "SHA-256"),
            (
                "a flipped body byte, resealed",
                resealed(flip(body_at + 1)),
                "checksum mismatch",
            ),
            (
                "a flipped magic byte, resealed",
                resealed(flip(0)),
                "not a Synod snapshot",
            ),
            (
                "a flipped length byte, resealed",
                resealed(flip(25)),
                "checksum mismatch",
            ),
            (
                "a stray byte in the padding, resealed",
                resealed(flip(whole.len() - DIGEST_BYTES - 1)),
                "not zero",
            ),
        ];
        for (what, bytes, expected) in cases {
            std::fs::write(path_in(&dir), &bytes).expect("write");
            let err = inspect(&path_in(&dir)).expect_err(what).to_string();
            assert!(
                err.contains(&path_in(&dir).display().to_string()),
                "{what}: {err}"
            );
            assert!(err.contains(expected), "{what}: {err}");
            assert!(err.contains("take a new backup"), "{what}: {err}");
        }
        std::fs::write(path_in(&dir), &whole).expect("write");
        inspect(&path_in(&dir)).expect("the undamaged bytes verify");
    }

    fn path_in(dir: &tempfile::TempDir) -> PathBuf {
        dir.path().join("backup.db")
    }

    #[test]
    fn a_restore_writes_a_data_directory_and_never_over_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let backup = take(&applier_with(&[("a", "1"), ("b", "2")])).expect("backup");
        std::fs::write(path_in(&dir), &backup.bytes).expect("write");
        let addr = "127.0.0.1:1".parse().expect("addr");
        let mut config = NodeConfig::single("n1", dir.path().join("n1.synod"), addr, addr);
        config.wal_segment_bytes = crate::config::WAL_SEGMENT_BYTES_MIN;
        let info = restore(&path_in(&dir), &config).expect("restore");
        assert_eq!((info.revision, info.keys), (3, 2));
        let fs = StdFs::new();
        let meta = Meta {
            cluster_id: config.cluster_id(),
            member_id: config.me().id,
            initial_members: config.initial_cluster.iter().map(|p| p.id).collect(),
        };
        let (_, recovered) = Store::open(fs, &config.data_dir, &meta, WalOptions::default())
            .expect("the restored directory opens as this member's");
        assert_eq!(recovered.state.compacted_through, Slot(2));
        assert!(
            recovered.state.promised.is_none(),
            "no promise was ever made"
        );
        let snapshot = recovered.snapshot.expect("the backup's snapshot");
        let body = storage::read_snapshot_body(&fs, &snapshot).expect("body");
        let applier = AppliedSnapshot::decode(snapshot.through, &body)
            .and_then(AppliedSnapshot::into_applier)
            .expect("decodes");
        assert_eq!(
            applier.machine().digest(),
            applier_with(&[("a", "1"), ("b", "2")]).machine().digest()
        );

        let again = restore(&path_in(&dir), &config).expect_err("a second restore");
        assert!(matches!(again, BackupError::DirNotEmpty { .. }), "{again}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(
            leftovers.len(),
            2,
            "the backup and the member's directory: {leftovers:?}"
        );
    }
}
