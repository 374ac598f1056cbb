//! A peer connection's byte stream: plain TCP, or TLS over it when the members are set up
//! with certificates (both directions authenticate: the dialer checks the acceptor's
//! certificate against the peer address, the acceptor requires the dialer's).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Where a member's peer TLS settings come from. Asked at every handshake, so a source may
/// hand out new settings (certificates re-read from disk) without a restart; connections
/// already up keep the settings they were made with.
pub trait PeerTlsSource: Send + Sync + 'static {
    /// Accepts dialers; it should require their certificates.
    fn acceptor(&self) -> TlsAcceptor;
    /// Dials peers, presenting this member's certificate.
    fn connector(&self) -> TlsConnector;
}

/// TLS between members: how to accept and how to dial.
#[derive(Clone)]
pub struct PeerTls {
    source: Arc<dyn PeerTlsSource>,
}

impl PeerTls {
    /// Settings asked of `source` at every handshake.
    pub fn from_source(source: impl PeerTlsSource) -> PeerTls {
        PeerTls {
            source: Arc::new(source),
        }
    }

    /// The acceptor for the next handshake.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.source.acceptor()
    }

    /// The connector for the next handshake.
    pub fn connector(&self) -> TlsConnector {
        self.source.connector()
    }
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerTls")
    }
}

pub(crate) enum PeerStream {
    Plain(TcpStream),
    Dialed(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    Accepted(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// A connection's read half.
pub(crate) type Reader = Box<dyn AsyncRead + Unpin + Send>;
/// A connection's write half; dropping it closes our side.
pub(crate) type Writer = Box<dyn AsyncWrite + Unpin + Send>;

impl PeerStream {
    /// Dials over TLS with `tls`, or returns `tcp` as it is.
    pub(crate) async fn dial(
        tcp: TcpStream,
        addr: SocketAddr,
        tls: Option<&PeerTls>,
    ) -> io::Result<PeerStream> {
        let Some(tls) = tls else {
            return Ok(PeerStream::Plain(tcp));
        };
        // Peers are named by address: their certificates must hold it as an IP SAN.
        let name = ServerName::IpAddress(addr.ip().into());
        let stream = tls.connector().connect(name, tcp).await?;
        Ok(PeerStream::Dialed(Box::new(stream)))
    }

    /// Accepts over TLS with `tls`, or returns `tcp` as it is.
    pub(crate) async fn accept(tcp: TcpStream, tls: Option<&PeerTls>) -> io::Result<PeerStream> {
        let Some(tls) = tls else {
            return Ok(PeerStream::Plain(tcp));
        };
        let stream = tls.acceptor().accept(tcp).await?;
        Ok(PeerStream::Accepted(Box::new(stream)))
    }

    /// Read and write halves that can be used at once. Plain TCP splits without a lock.
    pub(crate) fn halves(self) -> (Reader, Writer) {
        match self {
            PeerStream::Plain(tcp) => {
                let (rd, wr) = tcp.into_split();
                (Box::new(rd), Box::new(wr))
            }
            PeerStream::Dialed(tls) => {
                let (rd, wr) = tokio::io::split(*tls);
                (Box::new(rd), Box::new(wr))
            }
            PeerStream::Accepted(tls) => {
                let (rd, wr) = tokio::io::split(*tls);
                (Box::new(rd), Box::new(wr))
            }
        }
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PeerStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            PeerStream::Dialed(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            PeerStream::Accepted(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            PeerStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            PeerStream::Dialed(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            PeerStream::Accepted(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PeerStream::Plain(s) => Pin::new(s).poll_flush(cx),
            PeerStream::Dialed(s) => Pin::new(s.as_mut()).poll_flush(cx),
            PeerStream::Accepted(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            PeerStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            PeerStream::Dialed(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            PeerStream::Accepted(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
