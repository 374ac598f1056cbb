//! The store's refusals. Each etcd error carries etcd's exact message, so that the node can
//! map it to the gRPC status etcd clients expect (they match on the text).

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use thiserror::Error;

/// Why a command, a read, a payload or a snapshot was refused. A refused command changed
/// nothing.
#[derive(Clone, Debug, Error, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KvError {
    /// A request or compare named no key.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// `ignore_value` or `ignore_lease` on a key that does not exist.
    #[error("etcdserver: key not found")]
    KeyNotFound,
    /// `ignore_value` together with a value.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// `ignore_lease` together with a lease.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// A put, revoke or TTL query named a lease that does not exist.
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    /// A grant named a lease id already in use.
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    /// A grant's TTL is above etcd's maximum ([`crate::LEASE_TTL_MAX_SECONDS`]).
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    /// A transaction level with more compares or operations than `Limits::txn_ops_max`.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// A transaction branch writes one key twice (nested transactions included).
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// A key or value longer than the store's limits.
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// A read or compaction at a revision that compaction already dropped.
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    /// A read or compaction at a revision the store has not reached.
    #[error("mvcc: required revision is a future revision")]
    FutureRevision,
    /// Transactions nested deeper than [`crate::TXN_DEPTH_MAX`]. etcd bounds nesting only by
    /// request size; we bound it so that recursion depth is bounded too.
    #[error("synod: transactions nested deeper than {depth_max} levels")]
    TxnTooDeep {
        /// The deepest nesting accepted.
        depth_max: usize,
    },
    /// A log payload that does not decode: only a broken or foreign proposer makes one.
    #[error("synod: undecodable kv command: {0}")]
    Decode(#[from] DecodeError),
    /// A snapshot that does not restore.
    #[error("synod: kv snapshot refused: {0}")]
    Snapshot(#[from] SnapshotError),
}

/// Why a command payload did not decode.
#[derive(Clone, Debug, Error, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("truncated")]
    Truncated,
    /// A format version this build does not know.
    #[error("unknown format version {0}")]
    UnknownVersion(u8),
    /// An unknown tag for an enum.
    #[error("unknown {what} tag {tag}")]
    UnknownTag {
        /// Which enum.
        what: Cow<'static, str>,
        /// The tag read.
        tag: u8,
    },
    /// Flag bits this format does not define.
    #[error("unknown flag bits {0:#04x}")]
    UnknownFlags(u8),
    /// A varint longer than ten bytes, overflowing 64 bits, or not in its shortest form.
    #[error("malformed varint")]
    BadVarint,
    /// A length or count larger than the bytes left.
    #[error("length {0} exceeds the input")]
    LengthTooLarge(u64),
    /// Transactions nested deeper than [`crate::TXN_DEPTH_MAX`].
    #[error("transactions nested too deeply")]
    TooDeep,
    /// Bytes after the command.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
}

/// Why a snapshot did not restore.
#[derive(Clone, Debug, Error, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SnapshotError {
    /// Not a kv snapshot: the magic bytes differ.
    #[error("bad magic")]
    BadMagic,
    /// A snapshot format this build does not know.
    #[error("unknown snapshot version {0}")]
    UnknownVersion(u8),
    /// The checksum does not match the contents.
    #[error("checksum mismatch")]
    Checksum,
    /// The body did not parse.
    #[error("malformed body: {0}")]
    Body(#[from] DecodeError),
    /// The body parsed but breaks an invariant of the store.
    #[error("inconsistent state: {0}")]
    Inconsistent(Cow<'static, str>),
}
