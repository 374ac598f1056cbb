//! Why the member refuses or fails a request. The node maps each to etcd's gRPC status and
//! message (`node::NodeError`); the texts here are etcd's, because clients match on them.

use thiserror::Error;

/// Why the member could not serve a request.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum MemberError {
    /// Not chosen and applied (or not confirmed, for a read) within the request timeout. A
    /// write that timed out may still take effect.
    #[error("etcdserver: request timed out")]
    Timeout,
    /// Timed out while no leader was known.
    #[error("etcdserver: no leader")]
    NoLeader,
    /// Too many requests waiting in this member.
    #[error("etcdserver: too many requests")]
    TooManyRequests,
    /// Larger than the replica accepts in one command.
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// The storage quota is used up: only deletes and compactions are accepted.
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// The member's log can no longer be written; it must be restarted.
    #[error("synod: storage failed, this member stopped serving writes: {0}")]
    StorageFailed(String),
    /// Asked of the leader only, and this member does not lead.
    #[error("etcdserver: not leader")]
    NotLeader,
    /// A leadership transfer to a member that is not in the cluster.
    #[error("etcdserver: bad leader transferee")]
    BadTransferee,
    /// The transferee did not take the lead in time.
    #[error("etcdserver: request timed out, leader transfer took too long")]
    TransferTimeout,
    /// The applied state could not be serialized or written (a backup, a defragment).
    #[error("synod: snapshot failed: {0}")]
    Snapshot(String),
}
