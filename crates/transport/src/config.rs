//! What a transport needs to start, with every limit named and in units.

use crate::error::ConfigError;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// The default largest frame body: 16 MiB, room for a page of catch-up records or a
/// snapshot chunk, small enough that a lying length prefix cannot hurt.
pub const FRAME_BYTES_MAX_DEFAULT: u32 = 16 * 1024 * 1024;

/// Configuration of one member's transport.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// The cluster this member belongs to; peers of any other cluster are refused.
    pub cluster_id: u64,
    /// This member's id.
    pub member_id: u64,
    /// Where to listen for inbound peer connections (ignored by
    /// [`Transport::start_on`](crate::Transport::start_on), which takes a bound listener).
    pub listen: SocketAddr,
    /// Every other member and the address it listens on. Only these ids may connect in, and
    /// only these may be sent to. An entry for `member_id` itself is ignored.
    pub peers: BTreeMap<u64, SocketAddr>,
    /// Messages held per peer while its connection is slow or down. When full, new messages
    /// to that peer are dropped and counted.
    pub queue_depth: usize,
    /// Capacity of the one inbound channel, in messages. When full, sockets stop being read.
    pub inbound_depth: usize,
    /// Largest frame body accepted or sent, in bytes.
    pub frame_bytes_max: u32,
    /// Time allowed to connect and complete the handshake, each way.
    pub handshake_timeout: Duration,
    /// First reconnect delay after a failure.
    pub backoff_min: Duration,
    /// Reconnect delays double up to this cap.
    pub backoff_max: Duration,
    /// At shutdown, time allowed to write out what is queued before closing.
    pub shutdown_flush_timeout: Duration,
    /// Inbound connections open at once (including those still in their handshake); further
    /// ones are closed at once. Bounds what strangers can make us hold.
    pub inbound_connections_max: usize,
    /// TCP keepalive on every peer connection: the idle time before the first probe, the gap
    /// between probes, and how many unanswered probes close the connection. Without it a peer
    /// whose host vanished (no FIN, no RST) is noticed only when the kernel gives up on
    /// retransmissions, many minutes later.
    pub keepalive: Keepalive,
    /// TLS between members, or none (plain TCP). Every member of a cluster must agree.
    pub tls: Option<crate::PeerTls>,
}

/// TCP keepalive settings (see [`TransportConfig::keepalive`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between probes.
    pub interval: Duration,
    /// Unanswered probes before the connection is closed.
    pub retries: u32,
}

impl Default for Keepalive {
    /// A vanished host is noticed within about 5 s + 3 × 1 s = 8 s.
    fn default() -> Self {
        Keepalive {
            idle: Duration::from_secs(5),
            interval: Duration::from_secs(1),
            retries: 3,
        }
    }
}

impl TransportConfig {
    /// A configuration with the default limits.
    pub fn new(
        cluster_id: u64,
        member_id: u64,
        listen: SocketAddr,
        peers: BTreeMap<u64, SocketAddr>,
    ) -> Self {
        TransportConfig {
            cluster_id,
            member_id,
            listen,
            peers,
            queue_depth: 1024,
            inbound_depth: 4096,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            handshake_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
            shutdown_flush_timeout: Duration::from_secs(1),
            inbound_connections_max: 64,
            keepalive: Keepalive::default(),
            tls: None,
        }
    }

    /// Refuses a configuration whose limits make no sense, before anything starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let nonzero = [
            ("queue_depth", self.queue_depth == 0),
            ("inbound_depth", self.inbound_depth == 0),
            ("frame_bytes_max", self.frame_bytes_max == 0),
            ("handshake_timeout", self.handshake_timeout.is_zero()),
            ("backoff_min", self.backoff_min.is_zero()),
            (
                "shutdown_flush_timeout",
                self.shutdown_flush_timeout.is_zero(),
            ),
            ("inbound_connections_max", self.inbound_connections_max == 0),
        ];
        if let Some((name, _)) = nonzero.iter().find(|(_, zero)| *zero) {
            return Err(ConfigError::Zero(name));
        }
        if self.backoff_min > self.backoff_max {
            return Err(ConfigError::BackoffInverted {
                min: self.backoff_min,
                max: self.backoff_max,
            });
        }
        Ok(())
    }
}

/// Switches TCP keepalive on for `stream` with `keepalive`'s timings.
pub(crate) fn set_keepalive(
    stream: &tokio::net::TcpStream,
    keepalive: Keepalive,
) -> std::io::Result<()> {
    let probes = socket2::TcpKeepalive::new()
        .with_time(keepalive.idle)
        .with_interval(keepalive.interval)
        .with_retries(keepalive.retries);
    socket2::SockRef::from(stream).set_tcp_keepalive(&probes)
}

#[cfg(test)]
mod keepalive_tests {
    use super::*;

    #[tokio::test]
    async fn keepalive_timings_reach_the_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let k = Keepalive {
            idle: Duration::from_secs(7),
            interval: Duration::from_secs(2),
            retries: 4,
        };
        set_keepalive(&stream, k).unwrap();
        let sock = socket2::SockRef::from(&stream);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), k.idle);
        assert_eq!(sock.tcp_keepalive_interval().unwrap(), k.interval);
        assert_eq!(sock.tcp_keepalive_retries().unwrap(), k.retries);
    }
}
