//! One handshake and nothing after it: how a member starting on an empty data directory asks
//! the cluster's members who they are and whether they would let it in (the node's join),
//! over the same TLS as the transport's own connections, so that a member with `https://`
//! peer URLs can join as one with `http://` ones can.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::frame::{read_frame, write_frame, FrameError};
use crate::handshake::{HandshakeError, Hello, Reply, HANDSHAKE_FRAME_MAX};
use crate::stream::{PeerStream, PeerTls};

/// Why a member gave no reply to a handshake.
#[derive(Debug, thiserror::Error)]
pub enum AskError {
    /// Connecting, the TLS handshake, or a write failed.
    #[error("cannot reach {addr}: {source}")]
    Io {
        /// The member asked.
        addr: SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
    /// The reply's frame was malformed or too large.
    #[error("bad frame from {addr}: {source}")]
    Frame {
        /// The member asked.
        addr: SocketAddr,
        /// What was wrong with it.
        source: FrameError,
    },
    /// The reply was not a handshake reply.
    #[error("bad handshake reply from {addr}: {source}")]
    Handshake {
        /// The member asked.
        addr: SocketAddr,
        /// What was wrong with it.
        source: HandshakeError,
    },
    /// The member closed the connection without replying.
    #[error("{addr} closed the connection without a reply")]
    Closed {
        /// The member asked.
        addr: SocketAddr,
    },
    /// No reply in time.
    #[error("no reply from {addr} within {timeout:?}")]
    Timeout {
        /// The member asked.
        addr: SocketAddr,
        /// How long it was given.
        timeout: Duration,
    },
}

/// Sends `hello` to the member at `addr` (over TLS with `tls`, as the transport dials) and
/// returns its reply, within `timeout`. The connection is closed afterwards.
pub async fn ask(
    addr: SocketAddr,
    tls: Option<&PeerTls>,
    hello: Hello,
    timeout: Duration,
) -> Result<Reply, AskError> {
    let io = |source| AskError::Io { addr, source };
    let exchange = async {
        let tcp = TcpStream::connect(addr).await.map_err(io)?;
        tcp.set_nodelay(true).map_err(io)?;
        let mut stream = PeerStream::dial(tcp, addr, tls).await.map_err(io)?;
        write_frame(&mut stream, &hello.encode())
            .await
            .map_err(io)?;
        stream.flush().await.map_err(io)?;
        let body = read_frame(&mut stream, HANDSHAKE_FRAME_MAX)
            .await
            .map_err(|source| AskError::Frame { addr, source })?
            .ok_or(AskError::Closed { addr })?;
        Reply::decode(&body).map_err(|source| AskError::Handshake { addr, source })
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| AskError::Timeout { addr, timeout })?
}
