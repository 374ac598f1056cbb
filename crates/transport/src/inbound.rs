//! The listener and one task per inbound connection: handshake, then read frames into the
//! one inbound channel.

use crate::error::ConnError;
use crate::frame::{read_frame, write_frame, FrameError};
use crate::handshake::{judge, Hello, Reply, HANDSHAKE_FRAME_MAX};
use crate::stream::PeerStream;
use crate::transport::{shutdown_signalled, Inbound, Shared};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, warn};

/// The socket read buffer: many small frames per read syscall.
const READ_BUFFER_BYTES: usize = 64 * 1024;
/// Pause after a failed `accept` (typically out of file descriptors) so the loop does not
/// spin; connections already open keep working meanwhile.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Accepts connections until shutdown. Dropping this task's `JoinSet` (at return or abort)
/// aborts every inbound connection task, which closes their sockets.
pub(crate) async fn run_listener(
    shared: Arc<Shared>,
    listener: TcpListener,
    inbound: mpsc::Sender<Inbound>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(shared.config.inbound_connections_max));
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown_signalled(&mut shutdown) => return,
            // Reap finished connection tasks so the set holds only live ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                warn!(error = %e, "accepting a peer connection failed; pausing");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        shared.listener.accepted.fetch_add(1, Relaxed);
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                connections.spawn(serve(
                    shared.clone(),
                    stream,
                    remote,
                    inbound.clone(),
                    permit,
                ));
            }
            Err(_) => {
                shared.listener.over_limit.fetch_add(1, Relaxed);
                warn!(%remote, limit = shared.config.inbound_connections_max,
                    "closing connection: too many inbound connections open");
            }
        }
    }
}

/// One inbound connection. The permit is held for the connection's life.
async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    remote: SocketAddr,
    inbound: mpsc::Sender<Inbound>,
    _permit: OwnedSemaphorePermit,
) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(%remote, error = %e, "cannot set TCP_NODELAY");
    }
    if let Err(e) = crate::config::set_keepalive(&stream, shared.config.keepalive) {
        debug!(%remote, error = %e, "cannot set TCP keepalive");
    }
    let limit = shared.config.handshake_timeout;
    let handshake = async {
        let stream = PeerStream::accept(stream, shared.config.tls.as_ref()).await?;
        // `wr` must live as long as the connection: dropping a write half sends FIN, which
        // the dialer reads as "peer gone" and redials.
        let (rd, mut wr) = stream.halves();
        let mut rd = BufReader::with_capacity(READ_BUFFER_BYTES, rd);
        let from = accept_handshake(&shared, remote, &mut rd, &mut wr).await?;
        Ok::<_, ConnError>(from.map(|from| (from, rd, wr)))
    };
    let (from, mut rd, _wr) = match tokio::time::timeout(limit, handshake).await {
        Ok(Ok(Some(connection))) => connection,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            shared.listener.handshake_failures.fetch_add(1, Relaxed);
            warn!(%remote, error = %e, "closing connection: bad handshake");
            return;
        }
        Err(_) => {
            shared.listener.handshake_failures.fetch_add(1, Relaxed);
            warn!(%remote, timeout = ?limit, "closing connection: no handshake in time");
            return;
        }
    };
    let Some((counters, latest)) = shared.admitted(from) else {
        return;
    };
    counters.inbound_connections.fetch_add(1, Relaxed);
    let mut generation = 0;
    latest.send_modify(|g| {
        *g += 1;
        generation = *g;
    });
    let mut newer = latest.subscribe();
    let frame_bytes_max = shared.config.frame_bytes_max;
    loop {
        // Dropping a half-read frame is fine here: a superseded connection is closed anyway.
        let frame = tokio::select! {
            r = read_frame(&mut rd, frame_bytes_max) => r,
            _ = superseded(&mut newer, generation) => break,
        };
        match frame {
            Ok(Some(bytes)) => {
                // Waiting here is the backpressure: while the channel is full this socket is
                // not read, the kernel buffers fill, and TCP flow control stalls the sender,
                // whose queue then fills and drops. Nothing buffers without bound.
                let delivered = tokio::select! {
                    r = inbound.send(Inbound { from, bytes }) => r,
                    _ = superseded(&mut newer, generation) => break,
                };
                if delivered.is_err() {
                    debug!(peer = from, "inbound channel closed; closing connection");
                    return;
                }
                counters.received.fetch_add(1, Relaxed);
            }
            Ok(None) => {
                debug!(peer = from, %remote, "peer closed its connection");
                return;
            }
            Err(FrameError::TooLarge { len, max }) => {
                shared.listener.oversized_frames.fetch_add(1, Relaxed);
                warn!(peer = from, %remote, len, max, "closing connection: frame exceeds the limit");
                return;
            }
            Err(e) => {
                debug!(peer = from, %remote, error = %e, "inbound connection ended");
                return;
            }
        }
    }
    shared.listener.superseded.fetch_add(1, Relaxed);
    debug!(peer = from, %remote, "closing connection: superseded by a newer one from the same peer");
}

/// Resolves once a newer connection from the same peer completed its handshake.
async fn superseded(latest: &mut watch::Receiver<u64>, mine: u64) {
    let _ = latest.wait_for(|g| *g != mine).await;
}

/// Reads the hello and answers it. `Ok(Some(member))` when welcomed, `Ok(None)` when
/// refused (counted and logged here).
async fn accept_handshake<R, W>(
    shared: &Shared,
    remote: SocketAddr,
    rd: &mut R,
    wr: &mut W,
) -> Result<Option<u64>, ConnError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let config = &shared.config;
    let body = read_frame(rd, HANDSHAKE_FRAME_MAX)
        .await?
        .ok_or(ConnError::Closed)?;
    let hello = Hello::decode(&body)?;
    let reply = judge(&hello, config.cluster_id, config.member_id, |id| {
        shared.admitted(id).is_some()
    });
    write_frame(wr, &reply.encode()).await?;
    wr.flush().await?;
    match reply {
        Reply::Welcome { .. } => Ok(Some(hello.from)),
        Reply::Refused(refusal) => {
            shared.listener.record_refusal(refusal.reason);
            warn!(
                %remote,
                reason = ?refusal.reason,
                their_cluster = format_args!("{:#x}", hello.cluster_id),
                our_cluster = format_args!("{:#x}", config.cluster_id),
                their_member = hello.from,
                wanted_member = hello.to,
                "refused peer handshake"
            );
            Ok(None)
        }
    }
}
