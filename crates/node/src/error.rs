//! What can go wrong for a client request inside the node (the key-value store's own refusals
//! are [`kv::KvError`]), with the gRPC status and text etcd clients expect.

use thiserror::Error;
use tonic::{Code, Status};

/// Why the node could not serve a request. Each maps to the status etcd returns in the same
/// situation, with etcd's message, because clients match on both.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum NodeError {
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
    /// Larger than `--max-request-bytes`.
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// The storage quota is used up: only deletes and compactions are accepted.
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// The member is shutting down.
    #[error("etcdserver: server stopped")]
    Stopped,
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
    /// A Cluster API refusal, with etcd's message (see [`NodeError::status`] for the code).
    #[error("{0}")]
    Cluster(member::MemberError),
}

impl From<member::MemberError> for NodeError {
    fn from(e: member::MemberError) -> NodeError {
        use member::MemberError as M;
        match e {
            M::Timeout => NodeError::Timeout,
            M::NoLeader => NodeError::NoLeader,
            M::TooManyRequests => NodeError::TooManyRequests,
            M::RequestTooLarge => NodeError::RequestTooLarge,
            M::NoSpace => NodeError::NoSpace,
            M::StorageFailed(s) => NodeError::StorageFailed(s),
            M::NotLeader => NodeError::NotLeader,
            M::BadTransferee => NodeError::BadTransferee,
            M::TransferTimeout => NodeError::TransferTimeout,
            M::Snapshot(s) => NodeError::Snapshot(s),
            e @ (M::MemberNotFound
            | M::MemberExists
            | M::PeerUrlExists
            | M::NotALearner
            | M::LearnerNotReady
            | M::NotEnoughStarted
            | M::ChangeInProgress
            | M::Unhealthy
            | M::VoterAddRefused
            | M::BadUrls) => NodeError::Cluster(e),
        }
    }
}

impl NodeError {
    /// The gRPC status etcd's server uses for the same condition.
    pub fn status(&self) -> Status {
        let code = match self {
            NodeError::Timeout | NodeError::NoLeader | NodeError::Stopped => Code::Unavailable,
            NodeError::TooManyRequests | NodeError::NoSpace => Code::ResourceExhausted,
            NodeError::RequestTooLarge => Code::InvalidArgument,
            NodeError::StorageFailed(_) => Code::Unavailable,
            NodeError::Snapshot(_) => Code::Internal,
            NodeError::NotLeader | NodeError::BadTransferee => Code::FailedPrecondition,
            NodeError::TransferTimeout => Code::Unavailable,
            // etcd's codes (api/v3rpc/rpctypes/error.go).
            NodeError::Cluster(e) => match e {
                member::MemberError::MemberNotFound => Code::NotFound,
                member::MemberError::BadUrls => Code::InvalidArgument,
                member::MemberError::Unhealthy => Code::Unavailable,
                _ => Code::FailedPrecondition,
            },
        };
        Status::new(code, self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_carry_etcds_codes_and_messages() {
        let s = NodeError::Timeout.status();
        assert_eq!(
            (s.code(), s.message()),
            (Code::Unavailable, "etcdserver: request timed out")
        );
        let s = NodeError::NoSpace.status();
        assert_eq!(
            (s.code(), s.message()),
            (
                Code::ResourceExhausted,
                "etcdserver: mvcc: database space exceeded"
            )
        );
        let s = NodeError::RequestTooLarge.status();
        assert_eq!(s.code(), Code::InvalidArgument);
    }

    #[test]
    fn cluster_refusals_carry_etcds_codes_and_messages() {
        use member::MemberError as M;
        let cases = [
            (
                M::MemberNotFound,
                Code::NotFound,
                "etcdserver: member not found",
            ),
            (
                M::MemberExists,
                Code::FailedPrecondition,
                "etcdserver: member ID already exist",
            ),
            (
                M::PeerUrlExists,
                Code::FailedPrecondition,
                "etcdserver: Peer URLs already exists",
            ),
            (
                M::NotALearner,
                Code::FailedPrecondition,
                "etcdserver: can only promote a learner member",
            ),
            (
                M::LearnerNotReady,
                Code::FailedPrecondition,
                "etcdserver: can only promote a learner member which is in sync with leader",
            ),
            (
                M::NotEnoughStarted,
                Code::FailedPrecondition,
                "etcdserver: re-configuration failed due to not enough started members",
            ),
            (
                M::BadUrls,
                Code::InvalidArgument,
                "etcdserver: given member URLs are invalid",
            ),
            (
                M::Unhealthy,
                Code::Unavailable,
                "etcdserver: unhealthy cluster",
            ),
        ];
        for (e, code, message) in cases {
            let s = NodeError::from(e).status();
            assert_eq!((s.code(), s.message()), (code, message));
        }
    }
}
