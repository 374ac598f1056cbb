//! Counters the connection tasks bump and [`TransportHandle::stats`](crate::TransportHandle::stats)
//! reads. Relaxed atomics: each counter is monotone and read for observation only, never to
//! synchronize other memory.

use crate::handshake::{Refusal, RefusalReason};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// What one peer's traffic looks like from this member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Whether our outbound connection to the peer is up (handshake done).
    pub connected: bool,
    /// Messages waiting in the peer's outbound queue now (at most `queue_depth`).
    pub queued: usize,
    /// Messages written to the peer's socket and flushed to the kernel. Not a delivery
    /// receipt: a connection that breaks can lose what the kernel held.
    pub sent: u64,
    /// Messages refused by `send` because the peer's queue was full.
    pub dropped_queue_full: u64,
    /// Messages taken from the queue whose write failed when the connection broke.
    pub dropped_connection_lost: u64,
    /// Messages still queued when the transport shut down without reaching the peer.
    pub dropped_at_shutdown: u64,
    /// Outbound connections established (handshake completed).
    pub connects: u64,
    /// Outbound connection attempts that failed (refused, timed out, handshake refused...).
    pub connect_failures: u64,
    /// Outbound attempts the peer refused in its handshake.
    pub refused_by_peer: u64,
    /// The peer's last handshake refusal, for a precise diagnosis.
    pub last_refusal: Option<Refusal>,
    /// Inbound connections from the peer that completed the handshake.
    pub inbound_connections: u64,
    /// Messages received from the peer and handed to the inbound channel.
    pub received: u64,
}

impl PeerStats {
    /// Outbound connections established after the first one: how often the link came back.
    pub fn reconnects(&self) -> u64 {
        self.connects.saturating_sub(1)
    }
}

/// What the listener saw, across all inbound connections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListenerStats {
    /// TCP connections accepted (before the handshake).
    pub accepted: u64,
    /// Connections closed at once because `inbound_connections_max` were open.
    pub over_limit: u64,
    /// Handshakes refused: the dialer belongs to another cluster.
    pub refused_wrong_cluster: u64,
    /// Handshakes refused: the dialer's member id is not configured.
    pub refused_unknown_member: u64,
    /// Handshakes refused: the dialer meant another member.
    pub refused_wrong_receiver: u64,
    /// Handshakes refused: unsupported protocol version.
    pub refused_version: u64,
    /// Connections closed before a handshake completed: garbage, timeout, or early close.
    pub handshake_failures: u64,
    /// Connections closed because a frame exceeded `frame_bytes_max`.
    pub oversized_frames: u64,
    /// Connections closed because the same member completed a newer handshake (it
    /// restarted, or the old connection died without us noticing).
    pub superseded: u64,
}

impl ListenerStats {
    /// All refused handshakes.
    pub fn refused(&self) -> u64 {
        self.refused_wrong_cluster
            + self.refused_unknown_member
            + self.refused_wrong_receiver
            + self.refused_version
    }
}

/// A snapshot of the transport's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Per configured peer.
    pub peers: BTreeMap<u64, PeerStats>,
    /// The listener.
    pub listener: ListenerStats,
    /// Messages waiting in the inbound channel now (at most `inbound_depth`).
    pub inbound_queued: usize,
}

#[derive(Default)]
pub(crate) struct PeerCounters {
    pub connected: AtomicBool,
    pub sent: AtomicU64,
    pub dropped_queue_full: AtomicU64,
    pub dropped_connection_lost: AtomicU64,
    pub dropped_at_shutdown: AtomicU64,
    pub connects: AtomicU64,
    pub connect_failures: AtomicU64,
    pub refused_by_peer: AtomicU64,
    pub last_refusal: Mutex<Option<Refusal>>,
    pub inbound_connections: AtomicU64,
    pub received: AtomicU64,
}

impl PeerCounters {
    pub fn snapshot(&self, queued: usize) -> PeerStats {
        PeerStats {
            connected: self.connected.load(Relaxed),
            queued,
            sent: self.sent.load(Relaxed),
            dropped_queue_full: self.dropped_queue_full.load(Relaxed),
            dropped_connection_lost: self.dropped_connection_lost.load(Relaxed),
            dropped_at_shutdown: self.dropped_at_shutdown.load(Relaxed),
            connects: self.connects.load(Relaxed),
            connect_failures: self.connect_failures.load(Relaxed),
            refused_by_peer: self.refused_by_peer.load(Relaxed),
            // A poisoned lock only means a panic elsewhere while holding a plain value;
            // the value itself is still whole.
            last_refusal: *self
                .last_refusal
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
            inbound_connections: self.inbound_connections.load(Relaxed),
            received: self.received.load(Relaxed),
        }
    }

    pub fn record_refusal(&self, refusal: Refusal) {
        self.refused_by_peer.fetch_add(1, Relaxed);
        *self
            .last_refusal
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(refusal);
    }
}

#[derive(Default)]
pub(crate) struct ListenerCounters {
    pub accepted: AtomicU64,
    pub over_limit: AtomicU64,
    pub refused_wrong_cluster: AtomicU64,
    pub refused_unknown_member: AtomicU64,
    pub refused_wrong_receiver: AtomicU64,
    pub refused_version: AtomicU64,
    pub handshake_failures: AtomicU64,
    pub oversized_frames: AtomicU64,
    pub superseded: AtomicU64,
}

impl ListenerCounters {
    pub fn snapshot(&self) -> ListenerStats {
        ListenerStats {
            accepted: self.accepted.load(Relaxed),
            over_limit: self.over_limit.load(Relaxed),
            refused_wrong_cluster: self.refused_wrong_cluster.load(Relaxed),
            refused_unknown_member: self.refused_unknown_member.load(Relaxed),
            refused_wrong_receiver: self.refused_wrong_receiver.load(Relaxed),
            refused_version: self.refused_version.load(Relaxed),
            handshake_failures: self.handshake_failures.load(Relaxed),
            oversized_frames: self.oversized_frames.load(Relaxed),
            superseded: self.superseded.load(Relaxed),
        }
    }

    pub fn record_refusal(&self, reason: RefusalReason) {
        let counter = match reason {
            RefusalReason::WrongCluster => &self.refused_wrong_cluster,
            RefusalReason::UnknownMember => &self.refused_unknown_member,
            RefusalReason::WrongReceiver => &self.refused_wrong_receiver,
            RefusalReason::UnsupportedVersion => &self.refused_version,
        };
        counter.fetch_add(1, Relaxed);
    }
}
