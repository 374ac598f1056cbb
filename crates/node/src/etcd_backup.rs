//! etcd's backups brought across: the file `etcdctl snapshot save` writes against etcd 3.4 or
//! later (its bbolt database, then the SHA-256 of it) read into a [`KvStore`] holding every
//! key's versions with their revisions, the leases and the auth tables, so that a cluster
//! restored from it continues from etcd's revision (`backup.rs` does the restore).
//!
//! What is read, from etcd 3.4's buckets (`mvcc/kvstore.go`, `lease/lessor.go`,
//! `auth/store.go`):
//!
//! - `key`: one entry per version. The key is the revision: main u64 big-endian, `_`, sub u64
//!   big-endian, and a `t` after a tombstone's; the value is an `mvccpb.KeyValue`.
//! - `meta`: `finishedCompactRev` and `scheduledCompactRev` (revision keys as above); the
//!   store's compaction is the later one, as etcd's restore finishes a scheduled compaction.
//! - `lease`: `leasepb.Lease` per lease (id, TTL).
//! - `auth` (`authEnabled`, `authRevision`), `authUsers` (`authpb.User`) and `authRoles`
//!   (`authpb.Role`).
//! - `alarm`: one key per raised alarm, an `etcdserverpb.AlarmMember` (member id, type), as
//!   etcd's alarm store writes it; they stay raised in the restored store, naming etcd's
//!   member ids, until disarmed (`etcdctl alarm disarm` clears them whatever the member).
//!
//! Each version keeps its sub-revision, so HashKV over the restored store equals etcd's.
//! The store's revision is the highest main revision in `key`, or the compaction's if a
//! compaction removed the newest versions (as etcd's own restore decides it). Members and the
//! consistent index are not carried: a restore makes a new cluster.

use crate::bbolt::{BoltError, BoltFile, Entry};
use etcd_proto::authpb;
use etcd_proto::mvccpb::KeyValue;
use kv::{
    Import, ImportedAuth, ImportedLive, ImportedUser, ImportedVersion, KvStore, Limits,
    PasswordHash, Permission, PermissionType,
};
use prost::Message;

/// etcd's `leasepb.Lease`, the value in its `lease` bucket.
#[derive(Clone, PartialEq, prost::Message)]
struct LeaseRecord {
    #[prost(int64, tag = "1")]
    id: i64,
    #[prost(int64, tag = "2")]
    ttl: i64,
    #[prost(int64, tag = "3")]
    remaining_ttl: i64,
}

/// A revision key's length: main, `_`, sub.
const REVISION_KEY_BYTES: usize = 17;
const TOMBSTONE_MARK: u8 = b't';
const SHA256_BYTES: usize = 32;

/// Whether `bytes` start as a bbolt database does (page 0's meta magic), that is, as an etcd
/// backup rather than a Synod one.
pub fn looks_like_etcd(bytes: &[u8]) -> bool {
    bytes.get(16..20) == Some(&0xED0C_DAEDu32.to_le_bytes()[..])
}

/// The database inside an etcd backup: with the trailing SHA-256 `etcdctl snapshot save`
/// writes, checked; without (a `member/snap/db` copied from a stopped member), as it is.
fn database(bytes: &[u8]) -> Result<&[u8], String> {
    // bbolt files are whole pages (a multiple of 512); one from etcdctl has 32 more bytes.
    if bytes.len() % 512 != SHA256_BYTES {
        return Ok(bytes);
    }
    let (db, stored) = bytes.split_at(bytes.len() - SHA256_BYTES);
    let computed = ring::digest::digest(&ring::digest::SHA256, db);
    if computed.as_ref() != stored {
        return Err(
            "the SHA-256 in its last 32 bytes does not match its content (damaged or \
             truncated)"
                .into(),
        );
    }
    Ok(db)
}

/// The store an etcd backup holds, with `limits`. Refused with what is wrong: damage, a
/// record that does not decode, or state that contradicts itself.
pub fn read(bytes: &[u8], limits: Limits) -> Result<KvStore, String> {
    let db = database(bytes)?;
    let file = BoltFile::open(db).map_err(|e| format!("etcd's database: {e}"))?;
    let parts = import_parts(&file).map_err(|e| format!("etcd's database: {e}"))?;
    KvStore::import(parts, limits).map_err(|e| format!("etcd's data: {e}"))
}

/// Why a bucket's content could not be taken.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("{0}")]
    Bolt(#[from] BoltError),
    #[error("bucket {bucket}, key {key}: {what}")]
    Record {
        bucket: &'static str,
        key: String,
        what: String,
    },
}

fn record(bucket: &'static str, e: &Entry<'_>, what: impl Into<String>) -> ReadError {
    ReadError::Record {
        bucket,
        key: format!("{:x?}", e.key),
        what: what.into(),
    }
}

/// A bucket's plain entries (none if the bucket is missing); a nested bucket is damage.
fn entries<'a>(file: &BoltFile<'a>, name: &'static str) -> Result<Vec<Entry<'a>>, ReadError> {
    let Some(bucket) = file.bucket(name.as_bytes())? else {
        return Ok(Vec::new());
    };
    let all = file.entries(bucket)?;
    if let Some(e) = all.iter().find(|e| e.is_bucket) {
        return Err(record(name, e, "a nested bucket where records belong"));
    }
    Ok(all)
}

/// A revision key's (main, sub) revisions and whether it marks a tombstone (17 bytes, or 18
/// with the tombstone mark).
fn revision_key(bucket: &'static str, e: &Entry<'_>) -> Result<(i64, u32, bool), ReadError> {
    let (main, tombstone) = main_revision(bucket, e)?;
    let sub = e
        .key
        .get(9..REVISION_KEY_BYTES)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .and_then(|s| u32::try_from(s).ok())
        .ok_or_else(|| record(bucket, e, "a sub-revision past 2^32"))?;
    Ok((main, sub, tombstone))
}

/// The main revision of a revision key (17 bytes, or 18 with the tombstone mark).
fn main_revision(bucket: &'static str, e: &Entry<'_>) -> Result<(i64, bool), ReadError> {
    let k = e.key;
    let tombstone = match k.len() {
        REVISION_KEY_BYTES => false,
        n if n == REVISION_KEY_BYTES + 1 && k[REVISION_KEY_BYTES] == TOMBSTONE_MARK => true,
        _ => return Err(record(bucket, e, "not a revision key")),
    };
    if k[8] != b'_' {
        return Err(record(bucket, e, "not a revision key"));
    }
    let main = k
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(i64::from_be_bytes)
        .filter(|r| *r >= 1)
        .ok_or_else(|| record(bucket, e, "a revision below 1"))?;
    Ok((main, tombstone))
}

fn import_parts(file: &BoltFile<'_>) -> Result<Import, ReadError> {
    let mut compact_revision = 0;
    for e in entries(file, "meta")? {
        if e.key == b"finishedCompactRev" || e.key == b"scheduledCompactRev" {
            let value = Entry { key: e.value, ..e };
            let (rev, _) = main_revision("meta", &value)?;
            compact_revision = compact_revision.max(rev);
        }
    }
    let mut revision = 1i64.max(compact_revision);
    let mut versions = Vec::new();
    for e in entries(file, "key")? {
        let (mod_revision, sub, tombstone) = revision_key("key", &e)?;
        revision = revision.max(mod_revision);
        let kv = KeyValue::decode(e.value).map_err(|err| record("key", &e, err.to_string()))?;
        if kv.key.is_empty() {
            return Err(record("key", &e, "a version of an empty key"));
        }
        let live = (!tombstone).then_some(ImportedLive {
            create_revision: kv.create_revision,
            version: kv.version,
            lease: kv.lease,
            value: kv.value,
        });
        versions.push(ImportedVersion {
            key: kv.key,
            mod_revision,
            sub,
            live,
        });
    }
    let mut leases = Vec::new();
    for e in entries(file, "lease")? {
        let l = LeaseRecord::decode(e.value).map_err(|err| record("lease", &e, err.to_string()))?;
        leases.push((l.id, l.ttl));
    }
    Ok(Import {
        revision,
        compact_revision,
        versions,
        leases,
        auth: import_auth(file)?,
        alarms: import_alarms(file)?,
    })
}

/// etcd's raised alarms: each key of the `alarm` bucket is an `AlarmMember`.
fn import_alarms(file: &BoltFile<'_>) -> Result<Vec<kv::AlarmMember>, ReadError> {
    let mut alarms = Vec::new();
    for e in entries(file, "alarm")? {
        let m = etcd_proto::etcdserverpb::AlarmMember::decode(e.key)
            .map_err(|err| record("alarm", &e, err.to_string()))?;
        let alarm = kv::AlarmType::from_number(i64::from(m.alarm))
            .ok_or_else(|| record("alarm", &e, format!("alarm type {}", m.alarm)))?;
        alarms.push(kv::AlarmMember {
            alarm,
            member_id: m.member_id,
        });
    }
    Ok(alarms)
}

fn import_auth(file: &BoltFile<'_>) -> Result<ImportedAuth, ReadError> {
    let mut auth = ImportedAuth::default();
    for e in entries(file, "auth")? {
        match e.key {
            b"authEnabled" => auth.enabled = e.value == [1],
            b"authRevision" => {
                let rev = <[u8; 8]>::try_from(e.value)
                    .map(u64::from_be_bytes)
                    .map_err(|_| record("auth", &e, "not an 8-byte revision"))?;
                // etcd starts a store without one at 1.
                auth.revision = rev.max(1);
            }
            _ => {}
        }
    }
    let text = |bucket, e: &Entry<'_>, b: Vec<u8>| {
        String::from_utf8(b).map_err(|_| record(bucket, e, "a name that is not UTF-8"))
    };
    for e in entries(file, "authUsers")? {
        let u = authpb::User::decode(e.value)
            .map_err(|err| record("authUsers", &e, err.to_string()))?;
        let no_password = u.options.is_some_and(|o| o.no_password);
        let hash = if u.password.is_empty() {
            None
        } else {
            let h = std::str::from_utf8(&u.password)
                .ok()
                .and_then(PasswordHash::parse)
                .ok_or_else(|| record("authUsers", &e, "a password that is not a bcrypt hash"))?;
            Some(h)
        };
        auth.users.push(ImportedUser {
            name: text("authUsers", &e, u.name)?,
            hash,
            no_password,
            roles: u.roles,
        });
    }
    for e in entries(file, "authRoles")? {
        let r = authpb::Role::decode(e.value)
            .map_err(|err| record("authRoles", &e, err.to_string()))?;
        let mut perms = Vec::new();
        for p in r.key_permission {
            let perm_type = match p.perm_type {
                0 => PermissionType::Read,
                1 => PermissionType::Write,
                2 => PermissionType::ReadWrite,
                t => return Err(record("authRoles", &e, format!("permission type {t}"))),
            };
            perms.push(Permission {
                key: p.key,
                range_end: p.range_end,
                perm_type,
            });
        }
        auth.roles.push((text("authRoles", &e, r.name)?, perms));
    }
    Ok(auth)
}
