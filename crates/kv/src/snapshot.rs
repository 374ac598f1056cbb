//! The store's snapshot bytes and its digest, both defined by one walk over the state.
//!
//! # Snapshot format, versions 1 and 2
//!
//! `b"SKVS"`, a version byte (`1` or `2`), the body, then the CRC32C of everything before it
//! (little-endian `u32`). The body, in the varint encoding of [`crate::codec`]:
//!
//! - limits: `txn_ops_max`, `key_bytes_max`, `value_bytes_max`;
//! - `revision`, `compact_revision`, `lease_id_next`;
//! - leases, ascending by id: count, then per lease `id`, `ttl` (the attached keys are
//!   rebuilt from the keys, not stored);
//! - keys, ascending: count, then per key its bytes and its history: count, then per version
//!   `mod_revision` and a tag, 0 for a tombstone or 1 followed by `create_revision`,
//!   `version`, `lease` and the value.
//! - version 2 only: the auth tables. A flags byte (1: enabled), the auth revision (unsigned
//!   varint); users, ascending by name: count, then per user its name, a flags byte (1: added
//!   with no password, 2: a hash follows), the hash if any, and its roles, ascending: count,
//!   then names; roles, ascending by name: count, then per role its name and its permissions,
//!   ascending by key then range end: count, then per permission key, range end and type (0
//!   read, 1 write, 2 readwrite).
//!
//! A store whose auth tables were never changed is written as version 1, exactly as before
//! auth existed, and every other store of versions 1 and 2 as version 2: a store that does not
//! use auth keeps its bytes and its [`KvStore::digest`] (compared across mixed-version
//! members), and a version 1 snapshot restores with auth disabled and empty tables. A version
//! 2 snapshot whose auth tables are untouched is refused: each state has exactly one encoding.
//!
//! # Version 3
//!
//! Version 1's body, then a flags byte (1: the auth section follows; 2: the store took a
//! compaction at revision 0, etcd's "compaction revision 0" rather than "never compacted"),
//! the auth section if flagged, then the raised alarms, ascending by type then member: count,
//! then per alarm its type (etcd's number) and member id (unsigned varint). Written only for a
//! store with an alarm raised or compacted at 0 (versions 1 and 2 cannot say either), so
//! every other store keeps its bytes and digest; a version 3 snapshot that needs neither is
//! refused, as is one with more than [`crate::ALARMS_MAX`] alarms.
//!
//! Flag 4 (sub-revisions): after the alarms, the versions whose etcd sub-revision is not 0
//! (a transaction's second change and later, a multi-key deletion's second key and later),
//! ascending by key then revision: count, then per version its key, `mod_revision` and sub
//! (unsigned varint). A store whose every command changed at most one key has none, and
//! keeps its version 1 or 2 bytes and digest. HashKV needs them (see `hash.rs`).
//!
//! # Version 4
//!
//! Version 3's body (flags, auth if flagged, alarms, sub-revisions if flagged; none of them
//! is needed here), then the lease section: the leases' checkpoints (see [`crate::LeaseCheckpointRequest`]), ascending
//! by id: count, then per lease its `id` and the milliseconds it had left (unsigned, below its
//! TTL); then the ballot round and node of the last leadership whose lease record was applied
//! (unsigned; not both zero when there is no checkpoint). Written for a store that applied a
//! lease record (every store a member leads: each leader logs one first), whatever else it
//! holds; a store that never did keeps its version 1, 2 or 3 bytes and digest.
//!
//! Everything is in map order, so equal stores give equal bytes.

use crate::auth::{AuthStore, Permission, Role, User};
use crate::codec::{put_permission_type, take_permission_type, Fnv, Reader, Sink};
use crate::error::{DecodeError, KvError, SnapshotError};
use crate::store::{Keys, KvStore, Lease, Limits, Live, Version};
use crate::view::KvView;
use crate::watch::ChangeIndex;
use imbl::{OrdMap, OrdSet};
use std::collections::{BTreeMap, BTreeSet};

const MAGIC: &[u8; 4] = b"SKVS";
/// Written when the auth tables were never changed: no auth section.
const SNAPSHOT_VERSION_NO_AUTH: u8 = 1;
/// Written when the auth tables changed, and neither of version 3's reasons holds.
const SNAPSHOT_VERSION_AUTH: u8 = 2;
/// Written for a store with alarms raised or compacted at revision 0, and no lease record.
const SNAPSHOT_VERSION_EXTRAS: u8 = 3;
/// Written for a store that applied a lease record: version 3's body, then the lease section.
const SNAPSHOT_VERSION_LEASE_RECORDS: u8 = 4;
/// Version 3's (and 4's) flags.
const EXTRAS_AUTH: u8 = 1;
const EXTRAS_COMPACTED_AT_ZERO: u8 = 2;
const EXTRAS_SUBS: u8 = 4;

impl KvView {
    /// The snapshot bytes of the state the view holds (format above): [`KvStore::snapshot`]'s
    /// at the moment the view was taken. One pass over every key: run it off the member's core
    /// thread.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(MAGIC);
        out.push(self.snapshot_version());
        self.write(&mut out);
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// The digest of the state the view holds ([`KvStore::digest`] at the moment the view was
    /// taken): FNV over the snapshot's body. One pass over every key, as [`KvView::snapshot`].
    pub fn digest(&self) -> u64 {
        let mut h = Fnv::new();
        self.write(&mut h);
        h.finish()
    }

    fn write(&self, out: &mut impl Sink) {
        out.put_len(self.state.limits.txn_ops_max);
        out.put_len(self.state.limits.key_bytes_max);
        out.put_len(self.state.limits.value_bytes_max);
        out.put_i64(self.state.revision);
        out.put_i64(self.state.compact_revision);
        out.put_i64(self.state.lease_id_next);
        out.put_len(self.state.leases.len());
        for (id, lease) in &self.state.leases {
            out.put_i64(*id);
            out.put_i64(lease.ttl);
        }
        out.put_len(self.state.keys.len());
        for (key, history) in &self.state.keys {
            out.put_bytes(key);
            out.put_len(history.len());
            for v in history {
                out.put_i64(v.mod_revision);
                match &v.live {
                    None => out.put_u8(0),
                    Some(live) => {
                        out.put_u8(1);
                        out.put_i64(live.create_revision);
                        out.put_i64(live.version);
                        out.put_i64(live.lease);
                        out.put_bytes(&live.value);
                    }
                }
            }
        }
        let version = self.snapshot_version();
        if version >= SNAPSHOT_VERSION_EXTRAS {
            let mut flags = 0;
            if !self.state.auth.is_pristine() {
                flags |= EXTRAS_AUTH;
            }
            if self.compacted_at_zero() {
                flags |= EXTRAS_COMPACTED_AT_ZERO;
            }
            let subs = self.subs();
            if !subs.is_empty() {
                flags |= EXTRAS_SUBS;
            }
            out.put_u8(flags);
            if !self.state.auth.is_pristine() {
                write_auth(&self.state.auth, out);
            }
            out.put_len(self.state.alarms.len());
            for a in &self.state.alarms {
                out.put_u8(a.alarm.number());
                out.put_u64(a.member_id);
            }
            if !subs.is_empty() {
                out.put_len(subs.len());
                for (key, v) in subs {
                    out.put_bytes(key);
                    out.put_i64(v.mod_revision);
                    out.put_u64(u64::from(v.sub));
                }
            }
        } else if version == SNAPSHOT_VERSION_AUTH {
            write_auth(&self.state.auth, out);
        }
        if version == SNAPSHOT_VERSION_LEASE_RECORDS {
            let checkpoints: Vec<(i64, u64)> = self
                .state
                .leases
                .iter()
                .filter_map(|(id, l)| Some((*id, l.remaining_ms?)))
                .collect();
            out.put_len(checkpoints.len());
            for (id, remaining_ms) in checkpoints {
                out.put_i64(id);
                out.put_u64(remaining_ms);
            }
            out.put_u64(self.state.lease_leader.0);
            out.put_u64(self.state.lease_leader.1);
        }
    }

    /// The one version this state is written in (see the format above).
    fn snapshot_version(&self) -> u8 {
        if self.state.lease_leader != (0, 0)
            || self.state.leases.values().any(|l| l.remaining_ms.is_some())
        {
            SNAPSHOT_VERSION_LEASE_RECORDS
        } else if self.needs_extras() {
            SNAPSHOT_VERSION_EXTRAS
        } else if self.state.auth.is_pristine() {
            SNAPSHOT_VERSION_NO_AUTH
        } else {
            SNAPSHOT_VERSION_AUTH
        }
    }

    fn compacted_at_zero(&self) -> bool {
        self.state.compacted && self.state.compact_revision == 0
    }

    /// Whether the state says something versions 1 and 2 cannot.
    fn needs_extras(&self) -> bool {
        !self.state.alarms.is_empty() || self.compacted_at_zero() || self.has_subs()
    }

    fn has_subs(&self) -> bool {
        self.state.keys.values().flatten().any(|v| v.sub != 0)
    }

    /// The versions with a sub-revision other than 0, by key then revision.
    fn subs(&self) -> Vec<(&Vec<u8>, &Version)> {
        self.state
            .keys
            .iter()
            .flat_map(|(key, history)| history.iter().map(move |v| (key, v)))
            .filter(|(_, v)| v.sub != 0)
            .collect()
    }
}

impl KvStore {
    /// The whole replicated state as bytes (format above): deterministic, versioned and
    /// checksummed. [`KvStore::restore`] reads it back. A [`KvView`] makes the same bytes off
    /// the store's thread; this is one taken and encoded at once.
    pub fn snapshot(&self) -> Vec<u8> {
        self.view().snapshot()
    }

    /// A 64-bit hash of the whole replicated state (the snapshot body: history, revision,
    /// compaction, leases, limits and auth tables), for comparing replicas at equal slots. Stable across
    /// Rust releases.
    pub fn digest(&self) -> u64 {
        self.view().digest()
    }

    /// A store from [`KvStore::snapshot`] bytes. Refuses, without panicking, anything that is
    /// not such a snapshot or that breaks the store's invariants.
    pub fn restore(bytes: &[u8]) -> Result<KvStore, KvError> {
        let Some(body_end) = bytes.len().checked_sub(4) else {
            return Err(SnapshotError::BadMagic.into());
        };
        let (content, crc) = bytes.split_at(body_end);
        let Some(body) = content.strip_prefix(MAGIC.as_slice()) else {
            return Err(SnapshotError::BadMagic.into());
        };
        let Some((&version, body)) = body.split_first() else {
            return Err(SnapshotError::BadMagic.into());
        };
        if !(SNAPSHOT_VERSION_NO_AUTH..=SNAPSHOT_VERSION_LEASE_RECORDS).contains(&version) {
            return Err(SnapshotError::UnknownVersion(version).into());
        }
        let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32c::crc32c(content) != stored {
            return Err(SnapshotError::Checksum.into());
        }
        let mut r = Reader::new(body);
        let mut store = read_state(&mut r)?;
        if version == SNAPSHOT_VERSION_AUTH {
            store.auth = read_auth(&mut r)?;
            if store.auth.is_pristine() {
                return Err(SnapshotError::Inconsistent(
                    "a version 2 snapshot with untouched auth tables".into(),
                )
                .into());
            }
        }
        if version >= SNAPSHOT_VERSION_EXTRAS {
            read_extras(&mut r, &mut store, version)?;
        }
        if version == SNAPSHOT_VERSION_LEASE_RECORDS {
            read_lease_records(&mut r, &mut store)?;
        }
        r.finish().map_err(SnapshotError::Body)?;
        store.validate()?;
        Ok(store)
    }

    /// The invariants every other method relies on, checked on restored state: a snapshot
    /// passed its checksum, but it came from another process and we do not run on a suspect
    /// state.
    pub(crate) fn validate(&self) -> Result<(), SnapshotError> {
        let bad = |what: &'static str| Err(SnapshotError::Inconsistent(what.into()));
        // The upper bound keeps `revision + 1` and `version + 1` (bounded by the revision
        // below) from overflowing on the next write.
        if self.revision < 1 || self.revision == i64::MAX {
            return bad("revision outside [1, i64::MAX)");
        }
        if self.compact_revision < 0 || self.compact_revision > self.revision {
            return bad("compaction outside [0, revision]");
        }
        if self.compact_revision > 0 && !self.compacted {
            return bad("a compaction revision without a compaction");
        }
        if self.alarms.len() > crate::ALARMS_MAX {
            return bad("more alarms than the store holds");
        }
        for (key, history) in &self.keys {
            if key.is_empty() {
                return bad("empty key");
            }
            match history.first() {
                Some(Version { live: Some(_), .. }) => {}
                _ => return bad("a history that does not start with a live version"),
            }
            let mut prev: Option<&Version> = None;
            for v in history {
                if v.mod_revision < 1 || v.mod_revision > self.revision {
                    return bad("mod revision outside [1, revision]");
                }
                if prev.is_some_and(|p| p.mod_revision >= v.mod_revision) {
                    return bad("mod revisions not increasing");
                }
                if v.live.is_none() && prev.is_some_and(|p| p.live.is_none()) {
                    return bad("two tombstones in a row");
                }
                if let Some(live) = &v.live {
                    if live.create_revision < 1
                        || live.create_revision > v.mod_revision
                        || live.version < 1
                        || live.version > v.mod_revision
                    {
                        return bad("live version with impossible create revision or version");
                    }
                }
                prev = Some(v);
            }
            if let Some(Version {
                live: Some(live), ..
            }) = history.last()
            {
                if live.lease != 0 && !self.leases.contains_key(&live.lease) {
                    return bad("a live key attached to a lease that does not exist");
                }
            }
        }
        self.auth.validate().or_else(bad)
    }
}

/// The lease section of a version 4 snapshot, into the leases just read.
fn read_lease_records(r: &mut Reader<'_>, store: &mut KvStore) -> Result<(), SnapshotError> {
    let bad = |what: &'static str| Err(SnapshotError::Inconsistent(what.into()));
    let n = r.len()?;
    let mut last = None;
    for _ in 0..n {
        let id = r.i64()?;
        let remaining_ms = r.u64()?;
        if last.is_some_and(|l| l >= id) {
            return bad("lease checkpoints not ascending");
        }
        last = Some(id);
        let Some(lease) = store.leases.get_mut(&id) else {
            return bad("a checkpoint of a lease that does not exist");
        };
        if remaining_ms >= lease.ttl.max(0).unsigned_abs().saturating_mul(1000) {
            return bad("a lease checkpoint at or above its TTL");
        }
        lease.remaining_ms = Some(remaining_ms);
    }
    store.lease_leader = (r.u64()?, r.u64()?);
    if n == 0 && store.lease_leader == (0, 0) {
        return bad("a version 4 snapshot without a lease checkpoint or record");
    }
    Ok(())
}

fn read_state(r: &mut Reader<'_>) -> Result<KvStore, SnapshotError> {
    let limits = Limits {
        txn_ops_max: r.u64_usize()?,
        key_bytes_max: r.u64_usize()?,
        value_bytes_max: r.u64_usize()?,
    };
    let revision = r.i64()?;
    let compact_revision = r.i64()?;
    let lease_id_next = r.i64()?;
    let mut leases = OrdMap::new();
    for _ in 0..r.len()? {
        let id = r.i64()?;
        let ttl = r.i64()?;
        if leases.get_max().is_some_and(|(last, _)| *last >= id) {
            return Err(SnapshotError::Inconsistent(
                "lease ids not ascending".into(),
            ));
        }
        leases.insert(
            id,
            Lease {
                ttl,
                remaining_ms: None,
                keys: OrdSet::new(),
            },
        );
    }
    let mut keys = Keys::new();
    for _ in 0..r.len()? {
        let key = r.bytes()?;
        if keys.get_max().is_some_and(|(last, _)| *last >= key) {
            return Err(SnapshotError::Inconsistent("keys not ascending".into()));
        }
        let n = r.len()?;
        let mut history = Vec::with_capacity(n);
        for _ in 0..n {
            let mod_revision = r.i64()?;
            let live = match r.u8()? {
                0 => None,
                1 => Some(Live {
                    create_revision: r.i64()?,
                    version: r.i64()?,
                    lease: r.i64()?,
                    value: r.bytes()?,
                }),
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "version".into(),
                        tag,
                    }
                    .into())
                }
            };
            history.push(Version {
                mod_revision,
                sub: 0,
                live,
            });
        }
        keys.insert(key, history);
    }
    let changes = ChangeIndex::rebuild(&keys, compact_revision);
    let mut store = KvStore {
        keys,
        revision,
        compact_revision,
        compacted: compact_revision > 0,
        alarms: Default::default(),
        leases,
        lease_id_next,
        lease_leader: (0, 0),
        limits,
        changes,
        auth: AuthStore::new(),
        tokens: Default::default(),
    };
    store.reattach_leases();
    Ok(store)
}

impl KvStore {
    /// Rebuilds each lease's key set from the keys' latest versions (`validate` then refuses a
    /// live key whose lease is missing: revoking a lease deletes its keys).
    pub(crate) fn reattach_leases(&mut self) {
        for (key, history) in &self.keys {
            if let Some(Version {
                live: Some(live), ..
            }) = history.last()
            {
                if let Some(l) = self.leases.get_mut(&live.lease) {
                    l.keys.insert(key.clone());
                }
            }
        }
    }
}

/// Version 3's section after the body: flags, auth, alarms and sub-revisions (format above;
/// also the start of version 4's extras).
fn read_extras(r: &mut Reader<'_>, store: &mut KvStore, version: u8) -> Result<(), SnapshotError> {
    let inconsistent = |what: &'static str| Err(SnapshotError::Inconsistent(what.into()));
    let flags = r.u8()?;
    if flags & !(EXTRAS_AUTH | EXTRAS_COMPACTED_AT_ZERO | EXTRAS_SUBS) != 0 {
        return inconsistent("unknown flags in a version 3 snapshot");
    }
    if flags & EXTRAS_AUTH != 0 {
        store.auth = read_auth(r)?;
        if store.auth.is_pristine() {
            return inconsistent("a version 3 snapshot with untouched auth tables flagged");
        }
    }
    if flags & EXTRAS_COMPACTED_AT_ZERO != 0 {
        if store.compact_revision != 0 {
            return inconsistent("compacted at 0 flagged with another compaction revision");
        }
        store.compacted = true;
    }
    let n = r.len()?;
    if n > crate::ALARMS_MAX {
        return inconsistent("more alarms than the store holds");
    }
    for _ in 0..n {
        let alarm = crate::codec::take_alarm_type(r)?;
        let member_id = r.u64()?;
        let m = crate::AlarmMember { alarm, member_id };
        if store.alarms.last().is_some_and(|last| *last >= m) {
            return inconsistent("alarms not ascending");
        }
        store.alarms.insert(m);
    }
    if flags & EXTRAS_SUBS != 0 {
        read_subs(r, store)?;
    }
    // Version 4 is written for its lease section: it needs none of them.
    if version == SNAPSHOT_VERSION_EXTRAS
        && store.alarms.is_empty()
        && !store.compacted
        && flags & EXTRAS_SUBS == 0
    {
        return inconsistent(
            "a version 3 snapshot with neither alarms, a compaction at 0 nor sub-revisions",
        );
    }
    Ok(())
}

/// Flag 4's list: sets each named version's sub-revision. Refuses a list out of order, one
/// that names no version, a sub-revision of 0, or an empty list (the flag would be unneeded).
fn read_subs(r: &mut Reader<'_>, store: &mut KvStore) -> Result<(), SnapshotError> {
    let inconsistent = |what: &'static str| Err(SnapshotError::Inconsistent(what.into()));
    let n = r.len()?;
    if n == 0 {
        return inconsistent("an empty list of sub-revisions");
    }
    let mut last: Option<(Vec<u8>, i64)> = None;
    for _ in 0..n {
        let key = r.bytes()?;
        let mod_revision = r.i64()?;
        let Ok(sub) = u32::try_from(r.u64()?) else {
            return inconsistent("a sub-revision past 2^32");
        };
        if sub == 0 {
            return inconsistent("a sub-revision of 0 listed");
        }
        let at = (key, mod_revision);
        if last.as_ref().is_some_and(|l| *l >= at) {
            return inconsistent("sub-revisions not ascending");
        }
        let Some(v) = store.keys.get_mut(&at.0).and_then(|h| {
            let i = h.binary_search_by_key(&at.1, |v| v.mod_revision).ok()?;
            h.get_mut(i)
        }) else {
            return inconsistent("a sub-revision of a version that does not exist");
        };
        v.sub = sub;
        last = Some(at);
    }
    Ok(())
}

fn write_auth(auth: &AuthStore, out: &mut impl Sink) {
    out.put_u8(u8::from(auth.enabled));
    out.put_u64(auth.revision);
    out.put_len(auth.users.len());
    for (name, user) in &auth.users {
        out.put_bytes(name.as_bytes());
        out.put_u8(u8::from(user.no_password) | u8::from(user.hash.is_some()) << 1);
        if let Some(h) = &user.hash {
            out.put_bytes(h.as_str().as_bytes());
        }
        out.put_len(user.roles.len());
        for role in &user.roles {
            out.put_bytes(role.as_bytes());
        }
    }
    out.put_len(auth.roles.len());
    for (name, role) in &auth.roles {
        out.put_bytes(name.as_bytes());
        out.put_len(role.perms.len());
        for p in &role.perms {
            out.put_bytes(&p.key);
            out.put_bytes(&p.range_end);
            put_permission_type(out, p.perm_type);
        }
    }
}

fn read_auth(r: &mut Reader<'_>) -> Result<AuthStore, SnapshotError> {
    let not_ascending = |what: &'static str| SnapshotError::Inconsistent(what.into());
    let enabled = r.flags(1)? != 0;
    let revision = r.u64()?;
    let mut users = BTreeMap::new();
    for _ in 0..r.len()? {
        let name = r.string()?;
        if users
            .last_key_value()
            .is_some_and(|(last, _): (&String, _)| *last >= name)
        {
            return Err(not_ascending("user names not ascending"));
        }
        let flags = r.flags(0b11)?;
        let hash = if flags & 2 != 0 {
            Some(r.password_hash()?)
        } else {
            None
        };
        let mut roles = BTreeSet::new();
        for _ in 0..r.len()? {
            let role = r.string()?;
            if roles.last().is_some_and(|last: &String| *last >= role) {
                return Err(not_ascending("a user's roles not ascending"));
            }
            roles.insert(role);
        }
        let user = User {
            hash,
            no_password: flags & 1 != 0,
            roles,
        };
        users.insert(name, user);
    }
    let mut roles = BTreeMap::new();
    for _ in 0..r.len()? {
        let name = r.string()?;
        if roles
            .last_key_value()
            .is_some_and(|(last, _): (&String, _)| *last >= name)
        {
            return Err(not_ascending("role names not ascending"));
        }
        let n = r.len()?;
        let mut perms = Vec::with_capacity(n);
        for _ in 0..n {
            perms.push(Permission {
                key: r.bytes()?,
                range_end: r.bytes()?,
                perm_type: take_permission_type(r)?,
            });
        }
        roles.insert(name, Role { perms });
    }
    Ok(AuthStore {
        enabled,
        revision,
        users,
        roles,
    })
}

impl Reader<'_> {
    /// An unsigned varint that must fit a `usize` (a limit, not a length).
    fn u64_usize(&mut self) -> Result<usize, DecodeError> {
        let v = self.u64()?;
        usize::try_from(v).map_err(|_| DecodeError::LengthTooLarge(v))
    }
}
