//! Requests and responses of the etcd v3 KV and lease APIs, in this crate's own terms.
//!
//! They mirror etcd's protobuf messages field for field where the field matters to the state
//! machine; what only the node knows (cluster and member ids, raft term, `serializable`) is
//! left out. A response carries `revision`, the store revision its header reports.

use crate::auth::{AuthCommand, AuthRead, AuthReadResponse, AuthResponse};
use crate::error::{AuthError, KvError};
use serde::{Deserialize, Serialize};

/// One version of a key, as a read returns it (etcd's `mvccpb.KeyValue`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// The revision of the put that created the key (since its last delete).
    pub create_revision: i64,
    /// The revision of the latest put of the key.
    pub mod_revision: i64,
    /// Puts since creation: 1 on create, +1 per put.
    pub version: i64,
    /// The value (empty when the read asked for keys only).
    pub value: Vec<u8>,
    /// The lease the key is attached to, 0 for none.
    pub lease: i64,
}

/// The order of a range's results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SortOrder {
    /// Key order, unless the target is not the key (then ascending, as etcd does).
    #[default]
    None,
    /// Ascending by the target.
    Ascend,
    /// Descending by the target.
    Descend,
}

/// What a range's results are sorted by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SortTarget {
    /// The key.
    #[default]
    Key,
    /// The version.
    Version,
    /// The create revision.
    Create,
    /// The mod revision.
    Mod,
    /// The value, bytewise.
    Value,
}

/// A read of one key or a range of keys (etcd's `RangeRequest`).
///
/// `range_end` empty: the single key `key`; `range_end == [0]`: every key `>= key` (with
/// `key == [0]`, every key); otherwise the half-open interval `[key, range_end)`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RangeRequest {
    /// The first key (or the only one).
    pub key: Vec<u8>,
    /// The end of the range, see the type's docs.
    pub range_end: Vec<u8>,
    /// At most this many keys; 0 or less: no limit.
    pub limit: i64,
    /// Read the store as of this revision; 0 or less: the current revision.
    pub revision: i64,
    /// Result order.
    pub sort_order: SortOrder,
    /// Result sort key.
    pub sort_target: SortTarget,
    /// Leave values out.
    pub keys_only: bool,
    /// Return only the count.
    pub count_only: bool,
    /// Only keys with `mod_revision >=` this (0: no bound).
    pub min_mod_revision: i64,
    /// Only keys with `mod_revision <=` this (0: no bound).
    pub max_mod_revision: i64,
    /// Only keys with `create_revision >=` this (0: no bound).
    pub min_create_revision: i64,
    /// Only keys with `create_revision <=` this (0: no bound).
    pub max_create_revision: i64,
}

impl RangeRequest {
    /// A read of the single key `key` at the current revision.
    pub fn single(key: impl Into<Vec<u8>>) -> RangeRequest {
        RangeRequest {
            key: key.into(),
            ..RangeRequest::default()
        }
    }

    /// A read of `[key, range_end)` at the current revision (see the type for `range_end`).
    pub fn range(key: impl Into<Vec<u8>>, range_end: impl Into<Vec<u8>>) -> RangeRequest {
        RangeRequest {
            key: key.into(),
            range_end: range_end.into(),
            ..RangeRequest::default()
        }
    }

    /// A read of every key starting with `prefix` at the current revision.
    pub fn prefix(prefix: impl Into<Vec<u8>>) -> RangeRequest {
        let key = prefix.into();
        let range_end = prefix_end(&key);
        RangeRequest {
            key,
            range_end,
            ..RangeRequest::default()
        }
    }
}

/// The `range_end` that selects every key starting with `prefix` (what etcd clients compute
/// for `--prefix`): the prefix with its last byte below 0xff incremented and what follows it
/// dropped; `[0]` (every key from `prefix` on) when there is no such byte.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    match prefix.iter().rposition(|b| *b < 0xff) {
        Some(i) => {
            let mut end = prefix[..=i].to_vec();
            end[i] += 1;
            end
        }
        None => vec![0],
    }
}

/// Writes `value` at `key` (etcd's `PutRequest`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PutRequest {
    /// The key; must not be empty.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// The lease to attach the key to, 0 for none.
    pub lease: i64,
    /// Return the key's previous version.
    pub prev_kv: bool,
    /// Keep the current value (the key must exist; `value` must be empty).
    pub ignore_value: bool,
    /// Keep the current lease (the key must exist; `lease` must be 0).
    pub ignore_lease: bool,
}

impl PutRequest {
    /// A plain put of `value` at `key`.
    pub fn new(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> PutRequest {
        PutRequest {
            key: key.into(),
            value: value.into(),
            ..PutRequest::default()
        }
    }
}

/// Deletes one key or a range of keys (etcd's `DeleteRangeRequest`); `range_end` as in
/// [`RangeRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeleteRangeRequest {
    /// The first key (or the only one); must not be empty.
    pub key: Vec<u8>,
    /// The end of the range.
    pub range_end: Vec<u8>,
    /// Return the deleted versions.
    pub prev_kv: bool,
}

impl DeleteRangeRequest {
    /// Deletes `[key, range_end)` (see [`RangeRequest`] for `range_end`).
    pub fn new(key: impl Into<Vec<u8>>, range_end: impl Into<Vec<u8>>) -> DeleteRangeRequest {
        DeleteRangeRequest {
            key: key.into(),
            range_end: range_end.into(),
            prev_kv: false,
        }
    }
}

/// What a compare looks at, with the operand it is compared to (etcd's `Compare.target` and
/// `target_union` in one, so that they cannot disagree).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CompareTarget {
    /// The value, bytewise.
    Value(Vec<u8>),
    /// The version (0 for a missing key).
    Version(i64),
    /// The create revision (0 for a missing key).
    Create(i64),
    /// The mod revision (0 for a missing key).
    Mod(i64),
    /// The lease (0 for none or a missing key).
    Lease(i64),
}

/// How the key's field must relate to the operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CompareResult {
    /// Field == operand.
    Equal,
    /// Field > operand.
    Greater,
    /// Field < operand.
    Less,
    /// Field != operand.
    NotEqual,
}

/// One guard of a transaction (etcd's `Compare`): every key in the range must satisfy it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Compare {
    /// The key (or first key); must not be empty.
    pub key: Vec<u8>,
    /// The end of the range, as in [`RangeRequest`].
    pub range_end: Vec<u8>,
    /// The field and its operand.
    pub target: CompareTarget,
    /// The relation.
    pub result: CompareResult,
}

/// One operation of a transaction branch (etcd's `RequestOp`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RequestOp {
    /// A read.
    Range(RangeRequest),
    /// A put.
    Put(PutRequest),
    /// A delete.
    DeleteRange(DeleteRangeRequest),
    /// A nested transaction.
    Txn(TxnRequest),
}

/// A transaction (etcd's `TxnRequest`): if every compare holds, `success` runs, else
/// `failure`; all of it at one revision.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TxnRequest {
    /// The guards.
    pub compare: Vec<Compare>,
    /// Runs when every guard holds.
    pub success: Vec<RequestOp>,
    /// Runs otherwise.
    pub failure: Vec<RequestOp>,
}

impl TxnRequest {
    /// Whether no branch, at any depth, puts or deletes (etcd's `isTxnReadonly`).
    pub fn is_read_only(&self) -> bool {
        self.success.iter().chain(&self.failure).all(|op| match op {
            RequestOp::Range(_) => true,
            RequestOp::Put(_) | RequestOp::DeleteRange(_) => false,
            RequestOp::Txn(t) => t.is_read_only(),
        })
    }
}

/// Drops history below `revision` (etcd's `CompactionRequest`; `physical` is the node's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CompactRequest {
    /// Reads at revisions below this answer [`KvError::Compacted`] afterwards.
    pub revision: i64,
}

/// Creates a lease. Its expiry is decided outside the store (the leader proposes a revoke).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseGrantRequest {
    /// The lease id; 0: the store picks the next free one.
    pub id: i64,
    /// The granted time to live, in seconds, as the node decided it.
    pub ttl: i64,
}

/// Ends a lease and deletes the keys attached to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseRevokeRequest {
    /// The lease id.
    pub id: i64,
}

/// Renews a lease. The store only checks that the lease exists and answers its granted TTL:
/// the clock that a renewal resets belongs to the node, which applies the same renewals in the
/// same order on every member (so each member's idea of when a lease expires is close to the
/// leader's, and a new leader starts from it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseKeepAliveRequest {
    /// The lease id.
    pub id: i64,
}

/// The leader's record of how long some leases had left, so that a new leader restarts their
/// clocks from it rather than from a full TTL (etcd's lease checkpoints), and of the leases
/// whose time ran out. Renewals are served by the leader without a log write; this is what of
/// them reaches the log.
///
/// Each record names the leadership whose clocks decided it, and the store applies it only if
/// no later leadership's record was applied before it. A deposed leader's record can still be
/// chosen after a later leader's (a value only it accepted, in a slot the later leader never
/// filled, is taken up by the phase 1 of a leader after that): by then the later leader may
/// have renewed the lease without a log write, and the old record would shorten or revoke it.
/// Each leader logs an empty record first thing (see the member's `lease_renewal.rs`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseCheckpointRequest {
    /// The ballot `(round, node)` of the leadership that decided this record.
    pub leader: (u64, u64),
    /// `(lease id, milliseconds left)`, at most [`LEASE_CHECKPOINTS_MAX`]. A lease that does
    /// not exist (revoked meanwhile) is skipped; a remaining time above the lease's TTL is
    /// kept as the full TTL.
    pub checkpoints: Vec<(i64, u64)>,
    /// Leases whose time ran out at that leader, at most [`LEASE_CHECKPOINTS_MAX`]: each is
    /// revoked, at its own revision (as etcd's lessor revokes them one by one); one that does
    /// not exist is skipped.
    pub expired: Vec<i64>,
}

/// Checkpoints in one [`LeaseCheckpointRequest`] at most (about 20 bytes each in the log).
pub const LEASE_CHECKPOINTS_MAX: usize = 8192;

/// A write, as carried in a log entry's payload (see [`crate::encode`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvCommand {
    /// A put.
    Put(PutRequest),
    /// A delete.
    DeleteRange(DeleteRangeRequest),
    /// A transaction (also used for reads that must be linearized through the log).
    Txn(TxnRequest),
    /// A compaction.
    Compact(CompactRequest),
    /// A lease grant.
    LeaseGrant(LeaseGrantRequest),
    /// A lease revoke.
    LeaseRevoke(LeaseRevokeRequest),
    /// A lease renewal.
    LeaseKeepAlive(LeaseKeepAliveRequest),
    /// A change to the auth tables (users, roles, permissions, enabling).
    Auth(AuthCommand),
    /// Leases' remaining times, recorded by the leader.
    LeaseCheckpoint(LeaseCheckpointRequest),
    /// A client's alarm request: list, raise or clear (see the `alarm` module).
    Alarm(crate::AlarmRequest),
}

/// A read served from the applied state, outside the log (read-index or serializable).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvRead {
    /// A range read.
    Range(RangeRequest),
    /// One lease's granted TTL and, if `keys`, its attached keys.
    LeaseTimeToLive {
        /// The lease id.
        id: i64,
        /// Whether to list the attached keys.
        keys: bool,
    },
    /// Every lease's id.
    LeaseLeases,
    /// The changes a watcher has not seen yet.
    Watch(WatchRead),
    /// A query of the auth tables.
    Auth(AuthRead),
    /// A client's read with who sent it: checked against the auth tables when served
    /// ([`crate::KvStore::read_as`]).
    As {
        /// The sender.
        caller: crate::auth::Caller,
        /// The read (not itself an `As`).
        read: Box<KvRead>,
    },
}

/// A watcher's read: the changes to keys in `key..range_end` (etcd's range forms) after
/// revision `after`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WatchRead {
    /// First key (or the only one, when `range_end` is empty).
    pub key: Vec<u8>,
    /// End of the range, as in a range read.
    pub range_end: Vec<u8>,
    /// The last revision the watcher has seen.
    pub after: i64,
    /// Attach each change's previous version, if it had one.
    pub prev_kv: bool,
    /// Leave puts out (etcd's `NOPUT` filter).
    pub no_put: bool,
    /// Leave deletes out (etcd's `NODELETE` filter).
    pub no_delete: bool,
    /// Stop at the first revision boundary after this many events.
    pub events_max: usize,
    /// Stop at the first revision boundary after this many bytes of keys and values.
    pub bytes_max: usize,
}

/// Whether a change wrote or deleted its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// A put.
    Put,
    /// A delete.
    Delete,
}

/// One change, as a watcher receives it (etcd's `mvccpb.Event`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The version written; for a delete, only the key and the deleting revision.
    pub kv: KeyValue,
    /// The version before it, if asked for and there was one.
    pub prev_kv: Option<KeyValue>,
}

/// What a [`WatchRead`] answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WatchReadResponse {
    /// The store's revision.
    pub revision: i64,
    /// The store's compaction revision.
    pub compact_revision: i64,
    /// The watcher is behind the compaction: the changes after `after` are gone.
    pub compacted: bool,
    /// The changes, oldest first, never more than one answer's worth.
    pub events: Vec<Event>,
    /// Every change through this revision is in `events` (or filtered out): the watcher's
    /// next `after`.
    pub through: i64,
}

/// What a range read answers (etcd's `RangeResponse`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RangeResponse {
    /// The store's revision when the read ran (not the revision read at, as in etcd).
    pub revision: i64,
    /// The matching versions, after filters, sort and limit.
    pub kvs: Vec<KeyValue>,
    /// Whether the limit cut matching keys off.
    pub more: bool,
    /// How many keys the range holds at the revision read, before filters and limit.
    pub count: i64,
}

/// What a put answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PutResponse {
    /// The revision of the put.
    pub revision: i64,
    /// The previous version, if asked for and the key existed.
    pub prev_kv: Option<KeyValue>,
}

/// What a delete answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeleteRangeResponse {
    /// The store's revision after the delete.
    pub revision: i64,
    /// How many keys were deleted.
    pub deleted: i64,
    /// The deleted versions, if asked for.
    pub prev_kvs: Vec<KeyValue>,
}

/// One operation's answer inside a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResponseOp {
    /// A read's.
    Range(RangeResponse),
    /// A put's.
    Put(PutResponse),
    /// A delete's.
    DeleteRange(DeleteRangeResponse),
    /// A nested transaction's.
    Txn(TxnResponse),
}

/// What a transaction answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TxnResponse {
    /// The store's revision after the transaction (for a nested one: after its last op).
    pub revision: i64,
    /// Whether every compare held (so `success` ran).
    pub succeeded: bool,
    /// One answer per operation of the branch that ran, in order.
    pub responses: Vec<ResponseOp>,
}

/// What a compaction answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CompactResponse {
    /// The store's revision (a compaction does not change it).
    pub revision: i64,
}

/// What a lease grant answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseGrantResponse {
    /// The store's revision (a grant does not change it).
    pub revision: i64,
    /// The lease's id (the one picked, if the request said 0).
    pub id: i64,
    /// The granted TTL, in seconds.
    pub ttl: i64,
}

/// What a lease revoke answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseRevokeResponse {
    /// The store's revision after deleting the lease's keys.
    pub revision: i64,
}

/// What a lease TTL query answers; the remaining TTL is the node's to add (it holds time).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseTimeToLiveResponse {
    /// The store's revision.
    pub revision: i64,
    /// The lease id.
    pub id: i64,
    /// The TTL granted, in seconds.
    pub granted_ttl: i64,
    /// The attached keys in key order, if asked for.
    pub keys: Vec<Vec<u8>>,
}

/// What a lease listing answers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseLeasesResponse {
    /// The store's revision.
    pub revision: i64,
    /// Every lease id, ascending.
    pub leases: Vec<i64>,
}

/// What a lease renewal answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseKeepAliveResponse {
    /// The store's revision.
    pub revision: i64,
    /// The lease renewed.
    pub id: i64,
    /// Its granted TTL, in seconds.
    pub ttl: i64,
}

/// The answer to a [`KvRead`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvReadResponse {
    /// A range read's.
    Range(RangeResponse),
    /// A lease TTL query's.
    LeaseTimeToLive(LeaseTimeToLiveResponse),
    /// A lease listing's.
    LeaseLeases(LeaseLeasesResponse),
    /// A watcher's read.
    Watch(WatchReadResponse),
    /// An auth query's answer, or etcd's refusal (a user or role that does not exist). The
    /// refusal is inside, rather than a [`KvError`], so that the node's exhaustive map from
    /// [`KvError`] to gRPC statuses stays as it is; map [`AuthError`] beside it.
    Auth(Result<AuthReadResponse, AuthError>),
}

/// The answer to a [`KvCommand`] that was applied.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvResponse {
    /// A put's.
    Put(PutResponse),
    /// A delete's.
    DeleteRange(DeleteRangeResponse),
    /// A transaction's.
    Txn(TxnResponse),
    /// A compaction's.
    Compact(CompactResponse),
    /// A lease grant's.
    LeaseGrant(LeaseGrantResponse),
    /// A lease revoke's.
    LeaseRevoke(LeaseRevokeResponse),
    /// A lease renewal's.
    LeaseKeepAlive(LeaseKeepAliveResponse),
    /// An auth command's: applied, or refused by etcd's rules (and then it changed nothing).
    /// The refusal is inside, rather than a [`KvError`], for the reason given at
    /// [`KvReadResponse::Auth`].
    Auth(Result<AuthResponse, AuthError>),
    /// A lease checkpoint's: how many of its leases exist (the others were skipped).
    LeaseCheckpoint {
        /// Leases whose remaining time was recorded.
        recorded: usize,
        /// Leases revoked because their time ran out.
        revoked: usize,
        /// False if a later leadership's record was applied before it: then it changed
        /// nothing.
        current: bool,
    },
    /// An alarm request's.
    Alarm(crate::AlarmResponse),
}

/// What applying one log payload gives its client: an answer, or a refusal that changed
/// nothing. This is the [`paxos::multi::StateMachine::Output`] of [`crate::KvStore`].
pub type KvOutput = Result<KvResponse, KvError>;
