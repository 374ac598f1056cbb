//! The peer-to-peer transport between Synod members, on Tokio TCP, optionally under TLS
//! ([`PeerTls`]).
//!
//! It carries opaque, already-encoded messages ([`Bytes`](bytes::Bytes)) between members of
//! one cluster, each member named by a `u64` member id, the cluster by a `u64` cluster id. It
//! knows nothing of Paxos: the node encodes `paxos::multi::Message`s (see [`codec`]) and
//! hands the bytes over.
//!
//! # What it must never do
//!
//! - **Block the protocol on a slow peer.** [`TransportHandle::send`] is not `async` and
//!   never waits: each peer has its own bounded queue and its own task; a peer that is slow
//!   or down fills only its own queue, after which messages to it are dropped and counted.
//!   Paxos tolerates message loss (the protocol re-sends what matters), so dropping is the
//!   right backpressure for a consensus transport; blocking the node would turn one slow
//!   peer into a stalled cluster.
//! - **Grow memory without bound.** Every queue, frame and retry is bounded: per-peer
//!   queues hold `queue_depth` messages; the one inbound channel holds `inbound_depth`; a
//!   frame is at most `frame_bytes_max` bytes and its length is checked before anything is
//!   allocated; handshake frames at most 64 bytes; inbound connections at most
//!   `inbound_connections_max`; reconnects are spaced by capped exponential backoff. When the
//!   consumer of the inbound channel is slow, sockets stop being read, and TCP flow control
//!   pushes the pressure back to the senders' bounded queues.
//! - **Accept a peer from another cluster.** Every connection starts with a handshake naming
//!   cluster, sender and intended receiver; the acceptor refuses another cluster, an unknown
//!   member, or a dialer that meant someone else, and says why in a refusal frame.
//!
//! # Connections
//!
//! Each member dials every peer for its own outbound traffic and accepts inbound
//! connections on its listener: between two members there are two TCP connections, one per
//! direction, each written by its dialer only. This is the simplest correct scheme: no
//! tie-breaking between simultaneous dials, and each direction reconnects independently.
//! Order is preserved per sender over one connection (TCP is ordered); across a reconnect,
//! messages lost with the old connection are simply missing, never reordered behind newer
//! ones of the same connection.
//!
//! # Wire format
//!
//! Every frame is a `u32` **big-endian** body length followed by the body. The first frame
//! each way is the handshake ([`handshake`] documents it byte by byte); after it, every
//! frame from dialer to acceptor is one message; the acceptor sends nothing more.
//!
//! # Known limits
//!
//! - A peer is seen gone when its socket closes or errors. A host that vanishes without a
//!   FIN or RST is noticed only when the kernel gives up retransmitting; meanwhile its queue
//!   fills and drops, and nothing else slows down. (On the inbound side a newer handshake
//!   from the same member closes its older connection, so dead ones do not pile up.)
//! - `frame_bytes_max` must be the same on every member: a sender checks its own limit, the
//!   receiver closes the connection on a frame over its limit.
//!
//! # Example
//!
//! ```
//! use std::collections::BTreeMap;
//! use transport::{Transport, TransportConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let a_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let b_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let members = BTreeMap::from([(1, a_listener.local_addr()?), (2, b_listener.local_addr()?)]);
//! let cluster = 0x5eed;
//! let (a, _a_in) = Transport::start_on(TransportConfig::new(cluster, 1, members[&1], members.clone()), a_listener).await?;
//! let (b, mut b_in) = Transport::start_on(TransportConfig::new(cluster, 2, members[&2], members.clone()), b_listener).await?;
//! a.send(2, bytes::Bytes::from_static(b"prepare"))?;
//! let got = b_in.recv().await.expect("b is running");
//! assert_eq!((got.from, &got.bytes[..]), (1, &b"prepare"[..]));
//! a.shutdown().await;
//! b.shutdown().await;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod ask;
pub mod codec;
mod config;
mod error;
pub mod frame;
pub mod handshake;
mod inbound;
mod outbound;
mod stats;
mod stream;
mod transport;

pub use ask::{ask, AskError};
pub use config::{Keepalive, TransportConfig, FRAME_BYTES_MAX_DEFAULT};
pub use error::{ConfigError, SendError, StartError};
pub use handshake::{Refusal, RefusalReason};
pub use stats::{ListenerStats, PeerStats, Stats};
pub use stream::{PeerTls, PeerTlsSource};
pub use transport::{Inbound, SendOutcome, Transport, TransportHandle};
