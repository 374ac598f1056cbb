//! The MVCC store: every key's history of versions, one revision counter, and leases.

use crate::alarm::{AlarmMember, AlarmResponse};
use crate::auth::{
    AuthCommand, AuthRead, AuthReadResponse, AuthResponse, AuthStore, Caller, SimpleTokens,
};
use crate::codec::decode_as;
use crate::error::KvError;
use crate::span::Span;
use crate::types::*;
use crate::watch::ChangeIndex;
use imbl::{OrdMap, OrdSet};
use paxos::multi::StateMachine;
use paxos::Slot;

/// etcd's largest lease TTL, in seconds (`MaxLeaseTTL`).
pub const LEASE_TTL_MAX_SECONDS: i64 = 9_000_000_000;

/// Bounds the store enforces on requests. Part of the replicated behaviour: every replica must
/// run with the same limits (a snapshot carries them), or one may refuse what another applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Most compares, and most operations per branch, in one transaction level (etcd's
    /// `--max-txn-ops`).
    pub txn_ops_max: usize,
    /// Longest key or `range_end`.
    pub key_bytes_max: usize,
    /// Longest value (in a put or a value compare).
    pub value_bytes_max: usize,
}

impl Default for Limits {
    /// etcd's defaults: 128 operations; keys and values bounded only by the 1.5 MiB request
    /// size (`--max-request-bytes`), so we use that bound for each.
    fn default() -> Limits {
        Limits {
            txn_ops_max: 128,
            key_bytes_max: 1536 * 1024,
            value_bytes_max: 1536 * 1024,
        }
    }
}

/// One entry of a key's history: written at `mod_revision`, live or a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Version {
    pub(crate) mod_revision: i64,
    /// etcd's sub-revision: the change's place among the changes of its revision (0 for the
    /// first put or deletion of a command, 1 for the next, ...). Reads never look at it; etcd's
    /// HashKV does, since etcd's database is keyed by (revision, sub-revision).
    pub(crate) sub: u32,
    /// `None`: the key was deleted at `mod_revision`.
    pub(crate) live: Option<Live>,
}

/// The fields of a live version besides its key and mod revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Live {
    pub(crate) create_revision: i64,
    pub(crate) version: i64,
    pub(crate) value: Vec<u8>,
    pub(crate) lease: i64,
}

/// A lease: its granted TTL and the live keys attached to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Lease {
    pub(crate) ttl: i64,
    /// Milliseconds the lease had left at the leader's last checkpoint, at most the TTL's;
    /// `None`: a full TTL (never checkpointed, or renewed through the log since).
    pub(crate) remaining_ms: Option<u64>,
    /// Derived state (rebuilt from the keys on restore): exactly the keys whose latest version
    /// is live with this lease. Persistent, so copying a lease (when a view shares the lease
    /// map's node) costs O(1), not O(keys).
    pub(crate) keys: OrdSet<Vec<u8>>,
}

/// Every key's history, by key. A persistent B-tree: a clone shares every node, and a write
/// copies only the nodes on its path that a clone still shares (see [`crate::KvView`]).
pub(crate) type Keys = OrdMap<Vec<u8>, Vec<Version>>;

/// The deterministic MVCC key-value store: etcd v3 KV semantics over a history of versions.
///
/// Writes go through [`KvStore::apply`] (or the [`StateMachine`] impl, from log payloads);
/// reads through [`KvStore::range`] and [`KvStore::read`]. Same commands, same order: same
/// state, same outputs, same [`KvStore::digest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvStore {
    /// Every key with history still visible at some revision `>= compact_revision`. A history
    /// is non-empty, its mod revisions strictly increase, and it starts with a live version.
    pub(crate) keys: Keys,
    pub(crate) revision: i64,
    /// Reads below this revision are refused; 0 before the first compaction.
    pub(crate) compact_revision: i64,
    /// Whether any compaction was taken, including one at revision 0. etcd's store starts at
    /// compaction revision -1, so it takes one compaction at 0 and refuses the next as
    /// compacted; this flag is that -1, without changing what 0 means for reads. Invariant:
    /// `compact_revision > 0` implies it.
    pub(crate) compacted: bool,
    /// The raised alarms (see the `alarm` module).
    pub(crate) alarms: crate::alarm::Alarms,
    pub(crate) leases: OrdMap<i64, Lease>,
    /// Where the search for a free id starts when a grant asks the store to pick one.
    pub(crate) lease_id_next: i64,
    /// The ballot `(round, node)` of the latest leadership whose lease record was applied
    /// ([`LeaseCheckpointRequest::leader`]): records of earlier ones change nothing.
    pub(crate) lease_leader: (u64, u64),
    pub(crate) limits: Limits,
    /// Which keys changed at which revision, for watchers (derived from `keys`).
    pub(crate) changes: ChangeIndex,
    /// Users, roles, permissions, the enabled flag and the auth revision.
    pub(crate) auth: AuthStore,
    /// etcd's simple tokens handed out here: not replicated state (see [`SimpleTokens`]).
    pub(crate) tokens: SimpleTokens,
}

impl Default for KvStore {
    fn default() -> KvStore {
        KvStore::new()
    }
}

/// An ongoing write: every change of one command happens at `begin + 1`.
struct Write {
    begin: i64,
    changed: bool,
    /// Changes made so far, counted as etcd counts them (`len(tw.changes)`): the next change's
    /// sub-revision. Counts changes the store then folds away (see `push_version`), so the
    /// versions it keeps have etcd's numbers.
    changes: u32,
}

impl Write {
    fn revision(&self) -> i64 {
        self.begin + 1
    }

    /// The sub-revision of the change being made, and counts it.
    fn next_sub(&mut self) -> u32 {
        let sub = self.changes;
        // Ops per branch and nesting are bounded, but one delete may span every key; more
        // than 2^32 keys is past any store this process can hold.
        self.changes = self
            .changes
            .checked_add(1)
            .expect("fewer than 2^32 changes in one command");
        sub
    }

    /// The revision a read inside the command sees: its own writes once there are some.
    fn view(&self) -> i64 {
        if self.changed {
            self.begin + 1
        } else {
            self.begin
        }
    }
}

/// The latest version of `history` at or below `at`, if live: (mod revision, fields).
fn live_at(history: &[Version], at: i64) -> Option<(i64, &Live)> {
    let n = history.partition_point(|v| v.mod_revision <= at);
    let v = history.get(n.checked_sub(1)?)?;
    v.live.as_ref().map(|l| (v.mod_revision, l))
}

pub(crate) fn key_value(key: &[u8], mod_revision: i64, live: &Live, with_value: bool) -> KeyValue {
    KeyValue {
        key: key.to_vec(),
        create_revision: live.create_revision,
        mod_revision,
        version: live.version,
        value: if with_value {
            live.value.clone()
        } else {
            Vec::new()
        },
        lease: live.lease,
    }
}

impl KvStore {
    /// An empty store at revision 1, as etcd starts, with default limits.
    pub fn new() -> KvStore {
        KvStore::with_limits(Limits::default())
    }

    /// An empty store with the given limits.
    pub fn with_limits(limits: Limits) -> KvStore {
        KvStore {
            keys: OrdMap::new(),
            revision: 1,
            compact_revision: 0,
            compacted: false,
            alarms: Default::default(),
            leases: OrdMap::new(),
            lease_id_next: 1,
            lease_leader: (0, 0),
            limits,
            changes: ChangeIndex::default(),
            auth: AuthStore::new(),
            tokens: SimpleTokens::default(),
        }
    }

    /// Keys in the index: live ones and deleted ones whose history the compaction has not
    /// dropped yet (etcd's `etcd_debugging_mvcc_keys_total`). O(1).
    pub fn keys_len(&self) -> usize {
        self.keys.len()
    }

    /// The current revision: 1 when empty, +1 per write that changed something.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// The last compaction's revision (0 if none): reads below it answer
    /// [`KvError::Compacted`].
    pub fn compact_revision(&self) -> i64 {
        self.compact_revision
    }

    /// The compaction revision as etcd reports it (`HashKV`'s `compact_revision`): -1 before
    /// any compaction, else the last one's (which may be 0).
    pub fn etcd_compact_revision(&self) -> i64 {
        if self.compacted {
            self.compact_revision
        } else {
            -1
        }
    }

    /// The raised alarms, ordered by type then member.
    pub fn alarms(&self) -> Vec<AlarmMember> {
        self.alarms.iter().copied().collect()
    }

    /// The limits this store enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The auth tables, for permission checks, password checks and queries.
    pub fn auth(&self) -> &AuthStore {
        &self.auth
    }

    /// Applies one write. A refusal is returned as `Err` and changed nothing.
    pub fn apply(&mut self, cmd: &KvCommand) -> KvOutput {
        if let Some(refused) = crate::alarm::refusal(&self.alarms, cmd) {
            return Err(refused);
        }
        match cmd {
            KvCommand::Put(p) => self.apply_put(p).map(KvResponse::Put),
            KvCommand::DeleteRange(d) => self.apply_delete(d).map(KvResponse::DeleteRange),
            KvCommand::Txn(t) => self.apply_txn(t).map(KvResponse::Txn),
            KvCommand::Compact(c) => self.apply_compact(c).map(KvResponse::Compact),
            KvCommand::LeaseGrant(g) => self.apply_lease_grant(g).map(KvResponse::LeaseGrant),
            KvCommand::LeaseRevoke(r) => self.apply_lease_revoke(r).map(KvResponse::LeaseRevoke),
            KvCommand::LeaseKeepAlive(k) => {
                // Renewals are no longer logged, but a log written before may hold one: it
                // gives the lease a full TTL again, as it did then.
                let lease = self.leases.get_mut(&k.id).ok_or(KvError::LeaseNotFound)?;
                lease.remaining_ms = None;
                Ok(KvResponse::LeaseKeepAlive(LeaseKeepAliveResponse {
                    revision: self.revision,
                    id: k.id,
                    ttl: lease.ttl,
                }))
            }
            KvCommand::LeaseCheckpoint(c) => Ok(self.apply_lease_checkpoint(c)),
            KvCommand::Auth(a) => {
                let applied = self.auth.apply(a);
                if let (Ok(()), AuthCommand::Authenticate { name, token, .. }) = (&applied, a) {
                    self.tokens.insert(token, name, self.auth.revision());
                }
                Ok(KvResponse::Auth(applied.map(|()| AuthResponse {
                    revision: self.revision,
                })))
            }
            KvCommand::Alarm(a) => {
                let alarms = crate::alarm::apply(&mut self.alarms, a)?;
                Ok(KvResponse::Alarm(AlarmResponse {
                    revision: self.revision,
                    alarms,
                }))
            }
        }
    }

    /// Applies a client's command after checking that `caller` may send it, against the auth
    /// tables as they are now (so at the command's slot: every replica decides alike). A
    /// refusal ([`KvError::Auth`]) changed nothing. See `auth/access.rs` for the rules.
    pub fn apply_as(&mut self, caller: &Caller, cmd: &KvCommand) -> KvOutput {
        let lease_keys = |id: i64| -> Vec<Vec<u8>> {
            self.leases
                .get(&id)
                .map(|l| l.keys.iter().cloned().collect())
                .unwrap_or_default()
        };
        crate::auth::check_command(&self.auth, caller, cmd, lease_keys)?;
        self.apply(cmd)
    }

    /// The simple tokens this store recorded (for the member resolving a client's token).
    pub fn simple_tokens(&self) -> &SimpleTokens {
        &self.tokens
    }

    /// Serves a client's read after checking that `caller` may: a range needs read permission
    /// on its whole range; a watch read too, and besides every event it answers is checked
    /// against the user's permissions, so that no event outside the readable ranges is ever
    /// delivered; auth queries need the root role, except a user's own entry and its own
    /// roles' (etcd's rules). Lease queries are open, as in etcd 3.4.
    pub fn read_as(&self, caller: &Caller, q: &KvRead) -> Result<KvReadResponse, KvError> {
        let auth = &self.auth;
        match q {
            KvRead::Range(r) => {
                let perms = auth.caller_permissions(caller)?;
                if !perms.allows(&r.key, &r.range_end, crate::PermissionType::Read) {
                    return Err(crate::AuthError::PermissionDenied.into());
                }
                self.read(q)
            }
            KvRead::Watch(w) => {
                let perms = auth.caller_permissions(caller)?;
                #[cfg(feature = "planted-bugs")]
                if crate::auth::planted::watch_checks_first_key_only() {
                    if !perms.may_read(&w.key) {
                        return Err(crate::AuthError::PermissionDenied.into());
                    }
                    return self.watch_read(w).map(KvReadResponse::Watch);
                }
                if !perms.allows(&w.key, &w.range_end, crate::PermissionType::Read) {
                    return Err(crate::AuthError::PermissionDenied.into());
                }
                let mut answer = self.watch_read(w)?;
                answer.events.retain(|e| perms.may_read(&e.kv.key));
                Ok(KvReadResponse::Watch(answer))
            }
            // Open, as in etcd 3.4's applier.
            KvRead::LeaseTimeToLive { .. } | KvRead::LeaseLeases => self.read(q),
            KvRead::Auth(a) => {
                let own = match a {
                    AuthRead::Status => true,
                    AuthRead::UserGet { name } => auth.is_enabled() && *name == caller.user,
                    AuthRead::RoleGet { name } => {
                        auth.is_enabled() && auth.has_role(&caller.user, name)
                    }
                    AuthRead::UserList | AuthRead::RoleList => false,
                    AuthRead::PasswordHash { .. } => {
                        return Err(crate::AuthError::PermissionDenied.into())
                    }
                };
                if own {
                    auth.caller_permissions(caller)?;
                } else {
                    auth.check_caller_admin(caller)?;
                }
                self.read(q)
            }
            KvRead::As { .. } => Err(KvError::Decode(crate::DecodeError::Malformed(
                "a read inside a read's sender".into(),
            ))),
        }
    }

    /// Serves a read from the applied state (after read-index, or serializable).
    pub fn read(&self, q: &KvRead) -> Result<KvReadResponse, KvError> {
        match q {
            KvRead::Range(r) => self.range(r).map(KvReadResponse::Range),
            KvRead::LeaseTimeToLive { id, keys } => self
                .lease_time_to_live(*id, *keys)
                .map(KvReadResponse::LeaseTimeToLive),
            KvRead::LeaseLeases => Ok(KvReadResponse::LeaseLeases(LeaseLeasesResponse {
                revision: self.revision,
                leases: self.leases.keys().copied().collect(),
            })),
            KvRead::Watch(w) => self.watch_read(w).map(KvReadResponse::Watch),
            KvRead::Auth(a) => Ok(KvReadResponse::Auth(self.auth.read(a).map(|answer| {
                AuthReadResponse {
                    revision: self.revision,
                    answer,
                }
            }))),
            KvRead::As { caller, read } => self.read_as(caller, read),
        }
    }

    /// A range read at `r.revision` (0: now).
    pub fn range(&self, r: &RangeRequest) -> Result<RangeResponse, KvError> {
        self.check_range_shape(r)?;
        self.check_read_revision(r.revision)?;
        let at = self.read_revision(r.revision, self.revision);
        Ok(self.collect_range(r, at, self.revision))
    }

    /// Every lease's id and granted TTL (seconds), by id.
    pub fn lease_ttls(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.leases.iter().map(|(id, l)| (*id, l.ttl))
    }

    /// Every lease's id, granted TTL (seconds) and the milliseconds it had left at its last
    /// checkpoint (`None`: a full TTL), by id: what a new leader restarts its clocks from.
    pub fn lease_checkpoints(&self) -> impl Iterator<Item = (i64, i64, Option<u64>)> + '_ {
        self.leases
            .iter()
            .map(|(id, l)| (*id, l.ttl, l.remaining_ms))
    }

    /// Lease `id`'s granted TTL (seconds) and the milliseconds it had left at its last
    /// checkpoint (`None`: a full TTL), if it exists.
    pub fn lease_checkpoint(&self, id: i64) -> Option<(i64, Option<u64>)> {
        self.leases.get(&id).map(|l| (l.ttl, l.remaining_ms))
    }

    /// One lease's granted TTL and, if `keys`, its attached keys.
    pub fn lease_time_to_live(
        &self,
        id: i64,
        keys: bool,
    ) -> Result<LeaseTimeToLiveResponse, KvError> {
        let lease = self.leases.get(&id).ok_or(KvError::LeaseNotFound)?;
        Ok(LeaseTimeToLiveResponse {
            revision: self.revision,
            id,
            granted_ttl: lease.ttl,
            keys: if keys {
                lease.keys.iter().cloned().collect()
            } else {
                Vec::new()
            },
        })
    }

    // ---- validation: everything that can refuse a command runs before anything changes ----

    pub(crate) fn check_key(&self, key: &[u8]) -> Result<(), KvError> {
        if key.is_empty() {
            return Err(KvError::EmptyKey);
        }
        self.check_key_len(key)
    }

    fn check_key_len(&self, key: &[u8]) -> Result<(), KvError> {
        if key.len() > self.limits.key_bytes_max {
            return Err(KvError::RequestTooLarge);
        }
        Ok(())
    }

    pub(crate) fn check_range_shape(&self, r: &RangeRequest) -> Result<(), KvError> {
        self.check_key(&r.key)?;
        self.check_key_len(&r.range_end)
    }

    pub(crate) fn check_delete_shape(&self, d: &DeleteRangeRequest) -> Result<(), KvError> {
        self.check_key(&d.key)?;
        self.check_key_len(&d.range_end)
    }

    /// What etcd's gRPC layer checks on a put before it reaches the store.
    pub(crate) fn check_put_shape(&self, p: &PutRequest) -> Result<(), KvError> {
        self.check_key(&p.key)?;
        if p.ignore_value && !p.value.is_empty() {
            return Err(KvError::ValueProvided);
        }
        if p.ignore_lease && p.lease != 0 {
            return Err(KvError::LeaseProvided);
        }
        if p.value.len() > self.limits.value_bytes_max {
            return Err(KvError::RequestTooLarge);
        }
        Ok(())
    }

    /// What etcd checks on a put against the state: the lease exists, and the key does when
    /// the put keeps its value or lease.
    pub(crate) fn check_put_state(&self, p: &PutRequest) -> Result<(), KvError> {
        if p.lease != 0 && !self.leases.contains_key(&p.lease) {
            return Err(KvError::LeaseNotFound);
        }
        if (p.ignore_value || p.ignore_lease) && self.current(&p.key).is_none() {
            return Err(KvError::KeyNotFound);
        }
        Ok(())
    }

    /// Refuses a read revision the store cannot serve. Depends only on the store's revision and
    /// compaction, which do not change while a transaction runs, so a transaction can check
    /// every read before its first write.
    pub(crate) fn check_read_revision(&self, requested: i64) -> Result<(), KvError> {
        if requested > self.revision {
            return Err(KvError::FutureRevision);
        }
        if requested > 0 && requested < self.compact_revision {
            return Err(KvError::Compacted);
        }
        Ok(())
    }

    /// The revision a checked read runs at: the one asked for, or `view` for 0 or less.
    pub(crate) fn read_revision(&self, requested: i64, view: i64) -> i64 {
        if requested <= 0 {
            view
        } else {
            requested
        }
    }

    /// The key's latest version, if live.
    fn current(&self, key: &[u8]) -> Option<(i64, &Live)> {
        self.keys.get(key).and_then(|h| live_at(h, i64::MAX))
    }

    // ---- the top-level commands ----

    fn apply_put(&mut self, p: &PutRequest) -> Result<PutResponse, KvError> {
        self.check_put_shape(p)?;
        self.check_put_state(p)?;
        let mut w = self.begin();
        let out = self.exec_put(&mut w, p);
        self.end(w);
        Ok(out)
    }

    fn apply_delete(&mut self, d: &DeleteRangeRequest) -> Result<DeleteRangeResponse, KvError> {
        self.check_delete_shape(d)?;
        let mut w = self.begin();
        let mut out = self.exec_delete(&mut w, d);
        self.end(w);
        // A delete that found nothing does not move the revision; report the store's.
        out.revision = self.revision;
        Ok(out)
    }

    fn apply_txn(&mut self, t: &TxnRequest) -> Result<TxnResponse, KvError> {
        self.check_txn(t)?;
        let mut w = self.begin();
        let mut out = self.exec_txn(&mut w, t);
        self.end(w);
        out.revision = self.revision;
        Ok(out)
    }

    fn apply_compact(&mut self, c: &CompactRequest) -> Result<CompactResponse, KvError> {
        // etcd's store starts at compaction revision -1, so it takes one compaction at 0 (which
        // keeps every revision) and refuses a second as compacted; `compacted` is that -1.
        if c.revision == 0 && !self.compacted {
            self.compacted = true;
            return Ok(CompactResponse {
                revision: self.revision,
            });
        }
        if c.revision <= self.compact_revision {
            return Err(KvError::Compacted);
        }
        if c.revision > self.revision {
            return Err(KvError::FutureRevision);
        }
        let at = c.revision;
        drop_history_below(&mut self.keys, at);
        self.compact_revision = at;
        self.compacted = true;
        self.changes.compact(at, &self.keys);
        Ok(CompactResponse {
            revision: self.revision,
        })
    }

    fn apply_lease_grant(&mut self, g: &LeaseGrantRequest) -> Result<LeaseGrantResponse, KvError> {
        if g.ttl > LEASE_TTL_MAX_SECONDS {
            return Err(KvError::LeaseTtlTooLarge);
        }
        let id = match g.id {
            0 => self.pick_lease_id(),
            id if self.leases.contains_key(&id) => return Err(KvError::LeaseExists),
            id => id,
        };
        self.leases.insert(
            id,
            Lease {
                ttl: g.ttl,
                remaining_ms: None,
                keys: OrdSet::new(),
            },
        );
        Ok(LeaseGrantResponse {
            revision: self.revision,
            id,
            ttl: g.ttl,
        })
    }

    /// The first free id from `lease_id_next` on (wrapping past `i64::MAX` to 1; ids are
    /// positive as etcd's own are). Terminates: fewer than `i64::MAX` leases can exist.
    fn pick_lease_id(&mut self) -> i64 {
        let after = |id: i64| if id == i64::MAX { 1 } else { id + 1 };
        let mut id = self.lease_id_next.max(1);
        while self.leases.contains_key(&id) {
            id = after(id);
        }
        self.lease_id_next = after(id);
        id
    }

    /// The ballot `(round, node)` of the latest leadership whose lease record was applied.
    pub fn lease_leader(&self) -> (u64, u64) {
        self.lease_leader
    }

    /// Records each existing lease's remaining time (capped at its TTL, where it means a full
    /// TTL again) and revokes the expired ones; a lease revoked meanwhile is skipped, as
    /// etcd's lessor skips it. A record of a leadership older than the last one applied
    /// changes nothing (see [`LeaseCheckpointRequest`]).
    fn apply_lease_checkpoint(&mut self, c: &LeaseCheckpointRequest) -> KvResponse {
        if c.leader < self.lease_leader {
            return KvResponse::LeaseCheckpoint {
                recorded: 0,
                revoked: 0,
                current: false,
            };
        }
        self.lease_leader = c.leader;
        let mut recorded = 0;
        for &(id, remaining_ms) in &c.checkpoints {
            let Some(lease) = self.leases.get_mut(&id) else {
                continue;
            };
            let full_ms = lease.ttl.max(0).unsigned_abs().saturating_mul(1000);
            lease.remaining_ms = (remaining_ms < full_ms).then_some(remaining_ms);
            recorded += 1;
        }
        let mut revoked = 0;
        for &id in &c.expired {
            if self.apply_lease_revoke(&LeaseRevokeRequest { id }).is_ok() {
                revoked += 1;
            }
        }
        KvResponse::LeaseCheckpoint {
            recorded,
            revoked,
            current: true,
        }
    }

    fn apply_lease_revoke(
        &mut self,
        r: &LeaseRevokeRequest,
    ) -> Result<LeaseRevokeResponse, KvError> {
        let Some(lease) = self.leases.remove(&r.id) else {
            return Err(KvError::LeaseNotFound);
        };
        let mut w = self.begin();
        for key in &lease.keys {
            self.tombstone(&mut w, key);
        }
        self.end(w);
        Ok(LeaseRevokeResponse {
            revision: self.revision,
        })
    }

    // ---- execution: infallible, on validated requests ----

    fn begin(&self) -> Write {
        Write {
            begin: self.revision,
            changed: false,
            changes: 0,
        }
    }

    fn end(&mut self, w: Write) {
        self.changes.seal(w.revision(), &self.keys);
        if w.changed {
            self.revision = w.revision();
        }
    }

    fn exec_put(&mut self, w: &mut Write, p: &PutRequest) -> PutResponse {
        let rev = w.revision();
        let prev = self.current(&p.key);
        let prev_kv = match prev {
            Some((m, live)) if p.prev_kv => Some(key_value(&p.key, m, live, true)),
            _ => None,
        };
        let old_lease = prev.map_or(0, |(_, l)| l.lease);
        // ignore_value/ignore_lease on a missing key was refused by validation; should it get
        // here anyway, the put writes the request's own fields rather than failing halfway.
        let value = match prev {
            Some((_, live)) if p.ignore_value => live.value.clone(),
            _ => p.value.clone(),
        };
        let lease = if p.ignore_lease { old_lease } else { p.lease };
        let (create_revision, version) = match prev {
            Some((_, live)) => (live.create_revision, live.version + 1),
            None => (rev, 1),
        };
        self.detach(old_lease, &p.key);
        if let Some(l) = self.leases.get_mut(&lease) {
            l.keys.insert(p.key.clone());
        }
        let sub = w.next_sub();
        self.push_version(
            &p.key,
            Version {
                mod_revision: rev,
                sub,
                live: Some(Live {
                    create_revision,
                    version,
                    value,
                    lease,
                }),
            },
        );
        w.changed = true;
        PutResponse {
            revision: rev,
            prev_kv,
        }
    }

    fn exec_delete(&mut self, w: &mut Write, d: &DeleteRangeRequest) -> DeleteRangeResponse {
        let span = Span::new(&d.key, &d.range_end);
        let mut victims = Vec::new();
        let mut prev_kvs = Vec::new();
        for (key, history) in span.iter(&self.keys) {
            if let Some((m, live)) = live_at(history, i64::MAX) {
                if d.prev_kv {
                    prev_kvs.push(key_value(key, m, live, true));
                }
                victims.push(key.clone());
            }
        }
        for key in &victims {
            self.tombstone(w, key);
        }
        DeleteRangeResponse {
            revision: w.view(),
            deleted: victims.len() as i64,
            prev_kvs,
        }
    }

    /// Deletes `key` at the write's revision if it is live.
    fn tombstone(&mut self, w: &mut Write, key: &[u8]) {
        let Some((_, live)) = self.current(key) else {
            return;
        };
        let lease = live.lease;
        self.detach(lease, key);
        let sub = w.next_sub();
        self.push_version(
            key,
            Version {
                mod_revision: w.revision(),
                sub,
                live: None,
            },
        );
        w.changed = true;
    }

    fn detach(&mut self, lease: i64, key: &[u8]) {
        if let Some(l) = self.leases.get_mut(&lease) {
            l.keys.remove(key);
        }
    }

    /// Appends a version. One written earlier in the same command is replaced, so a history
    /// holds one version per revision (etcd would keep both under sub-revisions, but reads
    /// only ever see the last). A tombstone that would follow nothing live (a key created and
    /// deleted by one transaction) records nothing and is dropped: histories then start live
    /// and never hold two tombstones in a row, which compaction relies on.
    fn push_version(&mut self, key: &[u8], v: Version) {
        self.changes.record(v.mod_revision, key);
        let Some(history) = self.keys.get_mut(key) else {
            if v.live.is_some() {
                self.keys.insert(key.to_vec(), vec![v]);
            }
            return;
        };
        if history
            .last()
            .is_some_and(|last| last.mod_revision == v.mod_revision)
        {
            history.pop();
        }
        let follows_live = history.last().is_some_and(|last| last.live.is_some());
        if v.live.is_some() || follows_live {
            history.push(v);
        }
        if history.is_empty() {
            self.keys.remove(key);
        }
    }

    fn exec_range(&self, w: &Write, r: &RangeRequest) -> RangeResponse {
        let at = self.read_revision(r.revision, w.view());
        self.collect_range(r, at, w.view())
    }

    /// Runs a checked transaction. Every compare, nested ones included, is evaluated at the
    /// revision before the transaction, as etcd does (it computes the whole path first):
    /// writes of the transaction are at `begin + 1`, so the history still shows `begin`.
    fn exec_txn(&mut self, w: &mut Write, t: &TxnRequest) -> TxnResponse {
        let succeeded = self.compares_hold(&t.compare, w.begin);
        let branch = if succeeded { &t.success } else { &t.failure };
        let mut responses = Vec::with_capacity(branch.len());
        for op in branch {
            responses.push(match op {
                RequestOp::Range(r) => ResponseOp::Range(self.exec_range(w, r)),
                RequestOp::Put(p) => ResponseOp::Put(self.exec_put(w, p)),
                RequestOp::DeleteRange(d) => ResponseOp::DeleteRange(self.exec_delete(w, d)),
                RequestOp::Txn(t) => ResponseOp::Txn(self.exec_txn(w, t)),
            });
        }
        TxnResponse {
            revision: w.view(),
            succeeded,
            responses,
        }
    }

    /// Whether every compare holds at revision `at`.
    pub(crate) fn compares_hold(&self, compares: &[Compare], at: i64) -> bool {
        compares.iter().all(|c| self.compare_holds(c, at))
    }

    /// etcd's rule: every key in the range must satisfy the compare; with no key, a value
    /// compare fails and the others compare a missing key's zeros.
    fn compare_holds(&self, c: &Compare, at: i64) -> bool {
        let mut any = false;
        for (_, history) in Span::new(&c.key, &c.range_end).iter(&self.keys) {
            if let Some(kv) = live_at(history, at) {
                any = true;
                if !compare_one(c, Some(kv)) {
                    return false;
                }
            }
        }
        if any {
            true
        } else {
            !matches!(c.target, CompareTarget::Value(_)) && compare_one(c, None)
        }
    }

    /// The range's result at revision `at`; `header` is the revision the response reports.
    fn collect_range(&self, r: &RangeRequest, at: i64, header: i64) -> RangeResponse {
        let order = effective_order(r.sort_target, r.sort_order);
        let filtered = r.min_mod_revision != 0
            || r.max_mod_revision != 0
            || r.min_create_revision != 0
            || r.max_create_revision != 0;
        let limit = usize::try_from(r.limit).ok().filter(|l| *l > 0);
        // In key order and unfiltered, the first limit + 1 matches decide `more`; otherwise
        // all are needed before sorting. `count` always covers the whole range.
        let keep_max = match (order, filtered) {
            (Order::Key, false) => limit.map(|l| l.saturating_add(1)),
            _ => None,
        };
        let with_value = !r.keys_only || r.sort_target == SortTarget::Value;
        let mut count: i64 = 0;
        let mut kvs = Vec::new();
        for (key, history) in Span::new(&r.key, &r.range_end).iter(&self.keys) {
            let Some((m, live)) = live_at(history, at) else {
                continue;
            };
            count += 1;
            if r.count_only || keep_max.is_some_and(|n| kvs.len() >= n) {
                continue;
            }
            let outside = (r.max_mod_revision != 0 && m > r.max_mod_revision)
                || (r.min_mod_revision != 0 && m < r.min_mod_revision)
                || (r.max_create_revision != 0 && live.create_revision > r.max_create_revision)
                || (r.min_create_revision != 0 && live.create_revision < r.min_create_revision);
            if !outside {
                kvs.push(key_value(key, m, live, with_value));
            }
        }
        sort_kvs(&mut kvs, r.sort_target, order);
        let more = limit.is_some_and(|l| kvs.len() > l);
        if let Some(l) = limit {
            kvs.truncate(l);
        }
        if r.keys_only {
            for kv in &mut kvs {
                kv.value = Vec::new();
            }
        }
        RangeResponse {
            revision: header,
            kvs,
            more,
            count,
        }
    }
}

fn compare_one(c: &Compare, kv: Option<(i64, &Live)>) -> bool {
    let ord = match &c.target {
        CompareTarget::Value(v) => kv
            .map_or(&[][..], |(_, l)| l.value.as_slice())
            .cmp(v.as_slice()),
        CompareTarget::Version(n) => kv.map_or(0, |(_, l)| l.version).cmp(n),
        CompareTarget::Create(n) => kv.map_or(0, |(_, l)| l.create_revision).cmp(n),
        CompareTarget::Mod(n) => kv.map_or(0, |(m, _)| m).cmp(n),
        CompareTarget::Lease(n) => kv.map_or(0, |(_, l)| l.lease).cmp(n),
    };
    match c.result {
        CompareResult::Equal => ord.is_eq(),
        CompareResult::Greater => ord.is_gt(),
        CompareResult::Less => ord.is_lt(),
        CompareResult::NotEqual => ord.is_ne(),
    }
}

/// How results end up ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    /// Key order, as the map yields them: no sort needed.
    Key,
    KeyDescend,
    Ascend,
    Descend,
}

/// etcd's defaults: a non-key target with no order sorts ascending; key ascending is the
/// natural order.
fn effective_order(target: SortTarget, order: SortOrder) -> Order {
    match (target, order) {
        (SortTarget::Key, SortOrder::None | SortOrder::Ascend) => Order::Key,
        (SortTarget::Key, SortOrder::Descend) => Order::KeyDescend,
        (_, SortOrder::None | SortOrder::Ascend) => Order::Ascend,
        (_, SortOrder::Descend) => Order::Descend,
    }
}

/// Sorts stably, so that ties stay in key order whichever the direction (etcd's sort is not
/// stable and leaves ties in no particular order; any order is etcd-compatible, and ours must
/// be deterministic).
fn sort_kvs(kvs: &mut [KeyValue], target: SortTarget, order: Order) {
    let cmp = |a: &KeyValue, b: &KeyValue| match target {
        SortTarget::Key => a.key.cmp(&b.key),
        SortTarget::Version => a.version.cmp(&b.version),
        SortTarget::Create => a.create_revision.cmp(&b.create_revision),
        SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
        SortTarget::Value => a.value.cmp(&b.value),
    };
    match order {
        Order::Key => {}
        Order::KeyDescend => kvs.reverse(),
        Order::Ascend => kvs.sort_by(cmp),
        Order::Descend => kvs.sort_by(|a, b| cmp(b, a)),
    }
}

/// A log payload is decoded and applied; one that does not decode is refused with
/// [`KvError::Decode`] and changes nothing (only a broken proposer makes one, and every
/// replica refuses it alike).
impl StateMachine for KvStore {
    type Output = KvOutput;

    fn apply(&mut self, _slot: Slot, payload: &[u8]) -> KvOutput {
        match decode_as(payload) {
            Ok((None, cmd)) => KvStore::apply(self, &cmd),
            Ok((Some(caller), cmd)) => KvStore::apply_as(self, &caller, &cmd),
            Err(e) => Err(KvError::Decode(e)),
        }
    }
}

/// Compaction's cut of the histories at `at`: keeps, per key, the latest version at or below
/// `at` (what a read at `at` sees) unless it is a tombstone, and everything after it; a key left
/// with nothing is dropped.
pub(crate) fn drop_history_below(keys: &mut Keys, at: i64) {
    // The persistent map has no `retain`: find the cuts first, then make them, so a key whose
    // history keeps everything is not touched (nor its node copied from a view).
    let cuts: Vec<(Vec<u8>, usize)> = keys
        .iter()
        .filter_map(|(key, history)| {
            let n = history.partition_point(|v| v.mod_revision <= at);
            let last = n.checked_sub(1)?;
            let keep_from = match history.get(last) {
                Some(v) if v.live.is_some() => last,
                _ => n,
            };
            (keep_from > 0).then(|| (key.clone(), keep_from))
        })
        .collect();
    for (key, keep_from) in cuts {
        let Some(history) = keys.get_mut(&key) else {
            continue;
        };
        history.drain(..keep_from);
        if history.is_empty() {
            keys.remove(&key);
        }
    }
}
