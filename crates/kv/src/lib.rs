//! Synod's key-value state machine: a deterministic MVCC store with etcd v3 KV semantics
//! (revisions, create/mod revisions and versions, ranges at old revisions, transactions,
//! compaction, and leases without time).
//!
//! Every replica applies the same log of [`KvCommand`]s in slot order; the store is a pure
//! function of that sequence: same commands in the same order, same state, same outputs, same
//! [`KvStore::digest`] and [`KvStore::snapshot`] bytes on every replica.
//!
//! This crate must never read a clock, touch the network or files, draw randomness, spawn
//! threads, iterate a hash map where order matters, or depend on gRPC or protobuf types: the
//! node converts protobuf requests to this crate's types and its responses back. Lease expiry
//! is decided outside (the leader proposes a [`LeaseRevokeRequest`]). A client's request can be
//! refused, with a [`KvError`] carrying etcd's message; it can never panic the store.
//!
//! [`KvStore::view`] takes, in O(1), a read-only copy of the replicated state that another
//! thread can serialize or hash ([`KvView`]) while the store keeps applying: the store's maps
//! are persistent B-trees that share structure with every view. Its
//! [`KvView::hash_by_revision`] is etcd's HashKV, computed as etcd 3.4's store computes it (each
//! version keeps etcd's sub-revision for it), so a Synod member and an etcd member that took the
//! same requests report the same hash.
//!
//! The store also holds etcd's auth tables ([`AuthStore`]: users, roles, permissions, the
//! enabled flag and the auth revision), changed by [`KvCommand::Auth`] through the same log
//! and checked by pure functions of them (see the `auth` module's docs), and etcd's alarms
//! (NOSPACE, CORRUPT), raised and cleared by [`KvCommand::Alarm`] through the log: with one
//! raised, the store refuses the writes etcd 3.4 refuses (see the `alarm` module's docs).
//!
//! ```
//! use kv::{KvCommand, KvResponse, KvStore, PutRequest, RangeRequest};
//!
//! let mut store = KvStore::new();
//! assert_eq!(store.revision(), 1);
//! let put = KvCommand::Put(PutRequest::new("greeting", "hello"));
//! // The log carries the encoded command; every replica decodes and applies it.
//! let payload = kv::encode(&put);
//! let cmd = kv::decode(&payload).unwrap();
//! let Ok(KvResponse::Put(answer)) = store.apply(&cmd) else { panic!("refused") };
//! assert_eq!(answer.revision, 2);
//!
//! store.apply(&KvCommand::Put(PutRequest::new("greeting", "bonjour"))).unwrap();
//! let now = store.range(&RangeRequest::single("greeting")).unwrap();
//! assert_eq!((now.kvs[0].value.as_slice(), now.kvs[0].version), (&b"bonjour"[..], 2));
//! // The store keeps history until compaction: read as of revision 2.
//! let then = store
//!     .range(&RangeRequest { revision: 2, ..RangeRequest::single("greeting") })
//!     .unwrap();
//! assert_eq!(then.kvs[0].value, b"hello");
//! ```

mod alarm;
mod auth;
mod codec;
mod error;
mod hash;
mod import;
pub mod recipe;
mod snapshot;
mod span;
mod store;
mod txn;
mod types;
mod view;
mod watch;

pub use alarm::{AlarmAction, AlarmMember, AlarmRequest, AlarmResponse, AlarmType, ALARMS_MAX};
#[cfg(feature = "planted-bugs")]
pub use auth::planted;
pub use auth::{
    hash_password, hash_password_with_salt, is_valid_permission_range, verify_password, AuthAnswer,
    AuthCommand, AuthRead, AuthReadResponse, AuthResponse, AuthStore, Caller, PasswordHash,
    Permission, PermissionType, SimpleTokens, UserPassword, UserPermissions, BCRYPT_COST_DEFAULT,
    BCRYPT_COST_MAX, BCRYPT_COST_MIN, PASSWORD_BYTES_MAX, ROOT_ROLE, ROOT_USER, SIMPLE_TOKENS_MAX,
};
pub use codec::{
    decode, decode_as, encode, encode_as, is_compaction, FORMAT_VERSION, TXN_DEPTH_MAX,
};
pub use error::{AuthError, DecodeError, KvError, SnapshotError};
pub use hash::RevisionHash;
pub use import::{Import, ImportedAuth, ImportedLive, ImportedUser, ImportedVersion};
pub use store::{KvStore, Limits, LEASE_TTL_MAX_SECONDS};
pub use types::*;
pub use view::KvView;
pub use watch::WATCH_SCAN_ENTRIES_MAX;

#[cfg(test)]
mod tests;
