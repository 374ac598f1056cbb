//! Errors callers can act on.

use crate::frame::FrameError;
use crate::handshake::{HandshakeError, Refusal};
use std::net::SocketAddr;
use std::time::Duration;
use thiserror::Error;

/// A configuration that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// A limit that must be positive is zero.
    #[error("{0} must be positive")]
    Zero(&'static str),
    /// `backoff_min` above `backoff_max`.
    #[error("backoff_min {min:?} is above backoff_max {max:?}")]
    BackoffInverted {
        /// The configured minimum.
        min: Duration,
        /// The configured maximum.
        max: Duration,
    },
}

/// Why the transport did not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error("invalid transport configuration: {0}")]
    Config(#[from] ConfigError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The listener's address could not be read back.
    #[error("cannot read the listener's address: {0}")]
    LocalAddr(std::io::Error),
}

/// Why a message was not queued. A full queue is not an error: see
/// [`SendOutcome::Dropped`](crate::SendOutcome::Dropped).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SendError {
    /// The id is not a configured peer.
    #[error("member {0} is not a configured peer")]
    UnknownPeer(u64),
    /// The id is this member's own; the core loops its own messages back itself.
    #[error("member {0} is this member; it does not send to itself over the network")]
    ToSelf(u64),
    /// The message cannot fit one frame; the peer would refuse it and drop the connection.
    #[error("message of {len} bytes exceeds the frame limit of {max} bytes")]
    TooLarge {
        /// The message's size.
        len: usize,
        /// The frame limit.
        max: u32,
    },
    /// The transport is shutting down or shut down.
    #[error("the transport is shut down")]
    ShutDown,
}

/// Why one connection attempt or one connection ended. Internal to the connection tasks,
/// which log it and carry on; surfaced only through logs and [`crate::Stats`].
#[derive(Debug, Error)]
pub(crate) enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("bad handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("closed by the peer")]
    Closed,
    #[error("refused: {0}")]
    Refused(Refusal),
    #[error("reached member {member_id} of cluster {cluster_id:#x}, expected member {expected_member} of cluster {expected_cluster:#x}")]
    WrongPeer {
        member_id: u64,
        cluster_id: u64,
        expected_member: u64,
        expected_cluster: u64,
    },
    #[error("the peer sent data on a connection that only we write to")]
    UnexpectedData,
}
