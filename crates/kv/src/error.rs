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
    /// A NOSPACE alarm is raised and the command would grow the store (etcd's capped applier).
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// A CORRUPT alarm is raised and the command writes (etcd's corrupt applier).
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
    /// A client raised more alarms than the store holds.
    #[error("synod: at most {alarms_max} alarms can be raised at once")]
    TooManyAlarms {
        /// The most alarms held.
        alarms_max: usize,
    },
    /// The sender may not do this (auth on): etcd's auth errors, with their texts.
    #[error(transparent)]
    Auth(#[from] AuthError),
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
    /// A field that decoded but is not a valid value of its type (a name that is not UTF-8,
    /// a password hash that is not a bcrypt hash).
    #[error("malformed {0}")]
    Malformed(Cow<'static, str>),
}

/// Why an auth command, query, permission check or password operation was refused: etcd's
/// auth errors, each with the exact text etcd's gRPC layer sends (etcd 3.4's
/// `api/v3rpc/rpctypes`), so that clients that match on the text recognise it. Each variant
/// names the gRPC code etcd sends with it. A refused auth command changed nothing.
#[derive(Clone, Debug, Error, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuthError {
    /// AuthEnable without a `root` user. gRPC `FailedPrecondition`.
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    /// AuthEnable while the `root` user lacks the `root` role. gRPC `FailedPrecondition`.
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    /// UserAdd of a name in use. gRPC `FailedPrecondition`.
    #[error("etcdserver: user name already exists")]
    UserAlreadyExist,
    /// UserAdd with an empty name, or a permission check with no user. gRPC `InvalidArgument`.
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    /// A user command or query naming no existing user (and an admin check of an unknown
    /// user). gRPC `FailedPrecondition`.
    #[error("etcdserver: user name not found")]
    UserNotFound,
    /// RoleAdd of a name in use. gRPC `FailedPrecondition`.
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExist,
    /// A role command or query naming no existing role. gRPC `FailedPrecondition`.
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    /// RoleAdd with an empty name. gRPC `InvalidArgument`.
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    /// Authenticate with an unknown user, a wrong password, or a user without a password.
    /// gRPC `InvalidArgument`.
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    /// RoleGrantPermission without a permission (the node refuses this before proposing: a
    /// command always carries one). gRPC `InvalidArgument`.
    #[error("etcdserver: permission not given")]
    PermissionNotGiven,
    /// A request outside the user's permissions, or from a user that does not exist.
    /// gRPC `PermissionDenied`.
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    /// UserRevokeRole of a role the user does not have. gRPC `FailedPrecondition`.
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    /// RoleRevokePermission of a permission the role does not have. gRPC
    /// `FailedPrecondition`.
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    /// Authenticate (or a password check) while auth is disabled. gRPC `FailedPrecondition`.
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    /// A token that does not name a live session (for the node's token layer). gRPC
    /// `Unauthenticated`.
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    /// A refused management operation: deleting the `root` user or role, or revoking the
    /// `root` role from `root`, while auth is enabled; a permission on an empty or inverted
    /// range. gRPC `InvalidArgument`.
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    /// A request authenticated at an auth revision older than the store's. gRPC
    /// `InvalidArgument`.
    #[error("etcdserver: revision of auth store is old")]
    AuthOldRevision,
    /// A password check for a user added with no password. etcd 3.4 does not map this error
    /// to a status of its own: it goes out as gRPC `Unknown` with this text.
    #[error("auth: authentication failed, password was given for no password user")]
    NoPasswordUser,
    /// A password longer than bcrypt's 72 bytes (Go's bcrypt refuses it rather than
    /// truncating). etcd 3.4 sends it as gRPC `Unknown` with this text.
    #[error("bcrypt: password length exceeds 72 bytes")]
    PasswordTooLong,
    /// A bcrypt cost outside `[BCRYPT_COST_MIN, BCRYPT_COST_MAX]` (Synod's: etcd falls back to
    /// its default cost at startup instead).
    #[error("synod: bcrypt cost {cost} outside [4, 31]")]
    BcryptCost {
        /// The cost asked for.
        cost: u32,
    },
    /// The operating system gave no randomness for a salt (Synod's). gRPC `Internal`.
    #[error("synod: password hashing failed: {0}")]
    Hashing(Cow<'static, str>),
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
