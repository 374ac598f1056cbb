//! Why the member refuses or fails a request. The node maps each to etcd's gRPC status and
//! message (`node::NodeError`); the texts here are etcd's, because clients match on them.

use thiserror::Error;

/// Why the member could not serve a request. Also on the wire (a leader's answer to a
/// forwarded membership change): variants are appended, never reordered.
#[derive(Clone, Debug, Error, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    /// No member with that id in the configuration in force.
    #[error("etcdserver: member not found")]
    MemberNotFound,
    /// A member with that id is already in the configuration.
    #[error("etcdserver: member ID already exist")]
    MemberExists,
    /// Another member already listens at one of the peer URLs.
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    /// Promote of a member that is not a learner.
    #[error("etcdserver: can only promote a learner member")]
    NotALearner,
    /// Promote of a learner that lags the leader by more than the core's bound.
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    /// The change would leave no voter, or too few to form a quorum.
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStarted,
    /// Removing an active voter would leave fewer active voters than a quorum (etcd's strict
    /// reconfiguration check).
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
    /// A configuration change is already under way (its stop-sign not yet in force).
    #[error("synod: a membership change is already in progress; retry once it is in force")]
    ChangeInProgress,
    /// `MemberAdd` without `is_learner`: the core makes voters only of caught-up learners.
    #[error("synod: a new member must be added as a learner (etcdctl member add --learner), then promoted once it is in sync with the leader")]
    VoterAddRefused,
    /// Peer URLs that are missing, too many or too long.
    #[error("etcdserver: given member URLs are invalid")]
    BadUrls,
}
