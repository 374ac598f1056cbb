//! One task per peer: dial, handshake, then write the peer's queue to the socket; on any
//! failure, back off and dial again.

use crate::error::ConnError;
use crate::frame::{read_frame, write_frame};
use crate::handshake::{
    Hello, Refusal, RefusalReason, Reply, HANDSHAKE_FRAME_MAX, PROTOCOL_VERSION,
};
use crate::stats::PeerCounters;
use crate::stream::{PeerStream, Writer};
use crate::transport::{shutdown_signalled, Shared};
use bytes::Bytes;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

/// Messages moved from the queue per write batch: one flush (one syscall, usually) per
/// batch instead of per message, while a batch stays small enough to count losses exactly.
const BATCH_MESSAGES_MAX: usize = 64;
/// The socket write buffer; frames larger than this are written straight through.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// Exponential backoff with jitter. Jitter keeps members that lost a peer at the same moment
/// from redialling it in lockstep when it comes back.
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    rng: ChaCha8Rng,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            min,
            max,
            next: min,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// Back to the minimum, after a connection succeeded.
    pub fn reset(&mut self) {
        self.next = self.min;
    }

    /// The next delay: uniform in `[d/2, d]` where `d` doubles from `min` to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = d.saturating_mul(2).min(self.max);
        let half = d / 2;
        let span_nanos = u64::try_from((d - half).as_nanos()).unwrap_or(u64::MAX);
        let jitter = self.rng.next_u64() % span_nanos.saturating_add(1);
        half + Duration::from_nanos(jitter)
    }
}

/// How a connection ended without an error.
enum PumpEnd {
    /// The transport is shutting down.
    Shutdown,
    /// The handle and so every sender is gone.
    QueueClosed,
}

/// The peer's outbound task. Returns at shutdown.
pub(crate) async fn run_outbound(
    shared: Arc<Shared>,
    peer: u64,
    addr: SocketAddr,
    mut queue: mpsc::Receiver<Bytes>,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(counters) = shared.counters(peer) else {
        return;
    };
    let counters = &*counters;
    let config = &shared.config;
    let seed = config.member_id.rotate_left(32) ^ peer ^ wall_clock_nanos();
    let mut backoff = Backoff::new(config.backoff_min, config.backoff_max, seed);
    let mut failures_in_a_row: u64 = 0;
    loop {
        let attempt = tokio::select! {
            r = dial(&shared, peer, addr) => r,
            _ = shutdown_signalled(&mut shutdown) => break,
        };
        match attempt {
            Ok(stream) => {
                backoff.reset();
                failures_in_a_row = 0;
                counters.connects.fetch_add(1, Relaxed);
                counters.connected.store(true, Relaxed);
                info!(peer, %addr, "connected to peer");
                let end = pump(&shared, counters, stream, &mut queue, &mut shutdown).await;
                counters.connected.store(false, Relaxed);
                match end {
                    Ok(PumpEnd::Shutdown) => break,
                    Ok(PumpEnd::QueueClosed) => return,
                    Err(e) => {
                        warn!(peer, %addr, error = %e, "connection to peer lost; reconnecting")
                    }
                }
            }
            Err(ConnError::Refused(refusal)) => {
                counters.connect_failures.fetch_add(1, Relaxed);
                counters.record_refusal(refusal);
                warn!(peer, %addr, "{}", describe_refusal(&refusal, addr, config.cluster_id, config.member_id, peer));
            }
            Err(e) => {
                counters.connect_failures.fetch_add(1, Relaxed);
                // A down peer fails every attempt; one warning per outage is enough.
                if failures_in_a_row == 0 {
                    warn!(peer, %addr, error = %e, "cannot connect to peer; retrying with backoff");
                } else {
                    debug!(peer, %addr, error = %e, failures_in_a_row, "cannot connect to peer");
                }
                failures_in_a_row = failures_in_a_row.saturating_add(1);
            }
        }
        let delay = backoff.next_delay();
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown_signalled(&mut shutdown) => break,
        }
    }
    // Shutting down without a connection: what is queued cannot reach the peer.
    queue.close();
    let mut left: u64 = 0;
    while queue.try_recv().is_ok() {
        left += 1;
    }
    counters.dropped_at_shutdown.fetch_add(left, Relaxed);
}

/// The sentence a refused dialer logs: what it reached, against what it expected.
pub(crate) fn describe_refusal(
    r: &Refusal,
    addr: SocketAddr,
    our_cluster: u64,
    me: u64,
    expected_peer: u64,
) -> String {
    match r.reason {
        RefusalReason::WrongCluster => format!(
            "peer {addr} belongs to cluster {:#x} not {our_cluster:#x}",
            r.cluster_id
        ),
        RefusalReason::UnknownMember => format!(
            "peer {addr} (member {}) does not list member {me} in cluster {our_cluster:#x}",
            r.member_id
        ),
        RefusalReason::WrongReceiver => format!(
            "peer {addr} is member {} not member {expected_peer}",
            r.member_id
        ),
        RefusalReason::UnsupportedVersion => format!(
            "peer {addr} speaks protocol version {} not {PROTOCOL_VERSION}",
            r.version
        ),
    }
}

fn wall_clock_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Connects and completes the handshake, within `handshake_timeout`.
async fn dial(shared: &Shared, peer: u64, addr: SocketAddr) -> Result<PeerStream, ConnError> {
    let limit = shared.config.handshake_timeout;
    match tokio::time::timeout(limit, dial_unbounded(shared, peer, addr)).await {
        Ok(result) => result,
        Err(_) => Err(ConnError::Timeout(limit)),
    }
}

async fn dial_unbounded(
    shared: &Shared,
    peer: u64,
    addr: SocketAddr,
) -> Result<PeerStream, ConnError> {
    let config = &shared.config;
    let tcp = TcpStream::connect(addr).await?;
    // Paxos messages are small and latency-bound; batching is done above, per flush.
    tcp.set_nodelay(true)?;
    crate::config::set_keepalive(&tcp, config.keepalive)?;
    let mut stream = PeerStream::dial(tcp, addr, config.tls.as_ref()).await?;
    let hello = Hello {
        version: PROTOCOL_VERSION,
        cluster_id: config.cluster_id,
        from: config.member_id,
        to: peer,
    };
    write_frame(&mut stream, &hello.encode()).await?;
    stream.flush().await?;
    let body = read_frame(&mut stream, HANDSHAKE_FRAME_MAX)
        .await?
        .ok_or(ConnError::Closed)?;
    match Reply::decode(&body)? {
        Reply::Refused(refusal) => Err(ConnError::Refused(refusal)),
        Reply::Welcome {
            cluster_id,
            member_id,
            ..
        } if cluster_id == config.cluster_id && member_id == peer => Ok(stream),
        // An acceptor that welcomes us while being someone else is broken; do not talk to it.
        Reply::Welcome {
            cluster_id,
            member_id,
            ..
        } => Err(ConnError::WrongPeer {
            member_id,
            cluster_id,
            expected_member: peer,
            expected_cluster: config.cluster_id,
        }),
    }
}

/// Writes queued messages until the connection breaks, the transport shuts down, or the
/// queue closes. Also watches the read side: the acceptor never sends after its handshake
/// reply, so end-of-stream there means the peer went away, and noticing it now (rather than
/// at the next write) lets us redial while idle.
async fn pump(
    shared: &Shared,
    counters: &PeerCounters,
    stream: PeerStream,
    queue: &mut mpsc::Receiver<Bytes>,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<PumpEnd, ConnError> {
    let (mut rd, wr) = stream.halves();
    let mut wr = BufWriter::with_capacity(WRITE_BUFFER_BYTES, wr);
    let mut probe = [0u8; 1];
    let mut batch: Vec<Bytes> = Vec::with_capacity(BATCH_MESSAGES_MAX);
    loop {
        tokio::select! {
            biased;
            _ = shutdown_signalled(shutdown) => {
                flush_at_shutdown(shared, counters, &mut wr, queue).await;
                return Ok(PumpEnd::Shutdown);
            }
            r = rd.read(&mut probe) => {
                return Err(match r {
                    Ok(0) => ConnError::Closed,
                    Ok(_) => ConnError::UnexpectedData,
                    Err(e) => ConnError::Io(e),
                });
            }
            n = queue.recv_many(&mut batch, BATCH_MESSAGES_MAX) => {
                if n == 0 {
                    return Ok(PumpEnd::QueueClosed);
                }
            }
        }
        let count = batch.len() as u64;
        // A peer that stops reading blocks this write (TCP backpressure); its queue then
        // fills and `send` drops. Shutdown is not watched here so that a batch in progress
        // completes; a write stuck for good is aborted by `TransportHandle::shutdown`'s bound.
        let written = write_batch(&mut wr, &batch).await;
        batch.clear();
        match written {
            Ok(()) => counters.sent.fetch_add(count, Relaxed),
            Err(e) => {
                counters.dropped_connection_lost.fetch_add(count, Relaxed);
                return Err(ConnError::Io(e));
            }
        };
    }
}

async fn write_batch(wr: &mut BufWriter<Writer>, batch: &[Bytes]) -> std::io::Result<()> {
    for message in batch {
        write_frame(wr, message).await?;
    }
    wr.flush().await
}

/// Writes out what is queued, within `shutdown_flush_timeout`, then closes our side.
async fn flush_at_shutdown(
    shared: &Shared,
    counters: &PeerCounters,
    wr: &mut BufWriter<Writer>,
    queue: &mut mpsc::Receiver<Bytes>,
) {
    queue.close();
    let mut written: u64 = 0;
    let drain = async {
        while let Ok(message) = queue.try_recv() {
            write_frame(wr, &message).await?;
            written += 1;
        }
        wr.flush().await?;
        wr.shutdown().await
    };
    let flushed = tokio::time::timeout(shared.config.shutdown_flush_timeout, drain).await;
    if matches!(flushed, Ok(Ok(()))) {
        counters.sent.fetch_add(written, Relaxed);
    } else {
        counters.dropped_at_shutdown.fetch_add(written, Relaxed);
    }
    let mut left: u64 = 0;
    while queue.try_recv().is_ok() {
        left += 1;
    }
    counters.dropped_at_shutdown.fetch_add(left, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_the_cap_with_jitter_and_resets() {
        let min = Duration::from_millis(10);
        let max = Duration::from_millis(80);
        let mut b = Backoff::new(min, max, 7);
        let mut ceilings = vec![];
        for _ in 0..6 {
            let d = b.next_delay();
            ceilings.push(d);
        }
        let expected_ceiling = [10, 20, 40, 80, 80, 80];
        for (d, ceiling) in ceilings.iter().zip(expected_ceiling) {
            let ceiling = Duration::from_millis(ceiling);
            assert!(
                *d <= ceiling && *d >= ceiling / 2,
                "{d:?} not in [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
        b.reset();
        assert!(b.next_delay() <= min);
    }

    #[test]
    fn refusal_descriptions_name_both_sides() {
        let addr: SocketAddr = "127.0.0.1:7002".parse().unwrap();
        let r = Refusal {
            reason: RefusalReason::WrongCluster,
            version: PROTOCOL_VERSION,
            cluster_id: 0xbeef,
            member_id: 2,
        };
        assert_eq!(
            describe_refusal(&r, addr, 0xcafe, 1, 2),
            "peer 127.0.0.1:7002 belongs to cluster 0xbeef not 0xcafe"
        );
    }
}
