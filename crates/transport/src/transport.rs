//! Starting a transport, and the handle the node holds.

use crate::config::TransportConfig;
use crate::error::{SendError, StartError};
use crate::stats::{ListenerCounters, PeerCounters, Stats};
use crate::{inbound, outbound};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

/// Peers a transport reaches at most (the core's configurations hold at most 64 members).
pub const PEERS_MAX: usize = 64;

/// A message received from a peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inbound {
    /// The sender's member id, as established by the connection's handshake.
    pub from: u64,
    /// The message, exactly as the sender passed it to [`TransportHandle::send`].
    pub bytes: Bytes,
}

/// What became of a message handed to [`TransportHandle::send`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// In the peer's queue; it leaves when the connection allows. Not a delivery receipt.
    Queued,
    /// The peer's queue was full (peer slow or down): the message was dropped and counted in
    /// [`PeerStats::dropped_queue_full`](crate::PeerStats::dropped_queue_full). Paxos
    /// tolerates loss; the protocol re-sends what matters.
    Dropped,
}

/// State shared by the handle and the connection tasks.
pub(crate) struct Shared {
    pub config: TransportConfig,
    /// Per peer (never this member): its counters and the generation of its newest inbound
    /// connection. Also the set of members allowed in; it changes as members are added and
    /// removed ([`TransportHandle::add_peer`], [`TransportHandle::remove_peer`]). A
    /// connection that sees a newer generation closes itself, so a peer's dead connections
    /// (it crashed, its host vanished without a FIN) cannot pile up and exhaust
    /// `inbound_connections_max`; removing a peer closes its inbound connection the same way.
    pub peers: RwLock<BTreeMap<u64, PeerEntry>>,
    pub listener: ListenerCounters,
}

/// What the transport keeps of one peer.
pub(crate) struct PeerEntry {
    pub counters: Arc<PeerCounters>,
    pub inbound_latest: Arc<watch::Sender<u64>>,
}

impl PeerEntry {
    fn new() -> PeerEntry {
        PeerEntry {
            counters: Arc::new(PeerCounters::default()),
            inbound_latest: Arc::new(watch::Sender::new(0)),
        }
    }
}

impl Shared {
    /// A peer's counters, if it is a peer.
    pub fn counters(&self, peer: u64) -> Option<Arc<PeerCounters>> {
        let peers = self.peers.read().unwrap_or_else(|e| e.into_inner());
        peers.get(&peer).map(|p| p.counters.clone())
    }

    /// A peer's counters and inbound generation, if it is a peer (allowed in).
    pub fn admitted(&self, peer: u64) -> Option<(Arc<PeerCounters>, Arc<watch::Sender<u64>>)> {
        let peers = self.peers.read().unwrap_or_else(|e| e.into_inner());
        peers
            .get(&peer)
            .map(|p| (p.counters.clone(), p.inbound_latest.clone()))
    }
}

/// Resolves once shutdown is signalled, or once the signal's sender is gone (the handle was
/// dropped), which means the same.
pub(crate) async fn shutdown_signalled(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Entry point: see [`Transport::start`].
pub struct Transport;

impl Transport {
    /// Binds `config.listen` and starts the transport: a listener, and one outbound task per
    /// peer that dials it and keeps redialling. Returns the handle to send with and the one
    /// channel every received message comes out of.
    ///
    /// Must be called within a Tokio runtime.
    pub async fn start(
        config: TransportConfig,
    ) -> Result<(TransportHandle, mpsc::Receiver<Inbound>), StartError> {
        config.validate()?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        Self::start_on(config, listener).await
    }

    /// As [`Transport::start`], on a listener the caller bound (so that it can learn the
    /// port before writing every member's configuration, e.g. when binding port 0).
    /// `config.listen` is ignored.
    pub async fn start_on(
        config: TransportConfig,
        listener: TcpListener,
    ) -> Result<(TransportHandle, mpsc::Receiver<Inbound>), StartError> {
        config.validate()?;
        let local_addr = listener.local_addr().map_err(StartError::LocalAddr)?;
        let peer_addrs: BTreeMap<u64, SocketAddr> = config
            .peers
            .iter()
            .filter(|(id, _)| **id != config.member_id)
            .map(|(id, addr)| (*id, *addr))
            .collect();
        let shared = Arc::new(Shared {
            peers: RwLock::new(
                peer_addrs
                    .keys()
                    .map(|id| (*id, PeerEntry::new()))
                    .collect(),
            ),
            listener: ListenerCounters::default(),
            config,
        });
        let (inbound_tx, inbound_rx) = mpsc::channel(shared.config.inbound_depth);
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let mut queues = BTreeMap::new();
        for (peer, addr) in peer_addrs {
            let (tx, rx) = mpsc::channel(shared.config.queue_depth);
            let task = tasks.spawn(outbound::run_outbound(
                shared.clone(),
                peer,
                addr,
                rx,
                shutdown_rx.clone(),
            ));
            queues.insert(peer, (tx, addr, task));
        }
        let inbound_probe = inbound_tx.downgrade();
        tasks.spawn(inbound::run_listener(
            shared.clone(),
            listener,
            inbound_tx,
            shutdown_rx,
        ));
        let handle = TransportHandle {
            local_addr,
            queues,
            shared,
            inbound_probe,
            shutdown_rx: shutdown_tx.subscribe(),
            shutdown_tx,
            closed: AtomicBool::new(false),
            tasks,
        };
        Ok((handle, inbound_rx))
    }
}

/// The node's side of a running transport. Dropping it stops everything at once (tasks
/// aborted, sockets closed); [`TransportHandle::shutdown`] stops gracefully.
///
/// `send` takes `&self`: share the handle behind an `Arc` if several tasks send.
pub struct TransportHandle {
    local_addr: SocketAddr,
    /// Per peer: its queue, its address, and its outbound task.
    queues: BTreeMap<u64, (mpsc::Sender<Bytes>, SocketAddr, AbortHandle)>,
    /// For outbound tasks of peers added later.
    shutdown_rx: watch::Receiver<bool>,
    shared: Arc<Shared>,
    /// Weak, so that the inbound channel closes when the listener's tasks end; used only to
    /// read the channel's fill level for [`Stats::inbound_queued`].
    inbound_probe: mpsc::WeakSender<Inbound>,
    shutdown_tx: watch::Sender<bool>,
    closed: AtomicBool,
    tasks: JoinSet<()>,
}

impl TransportHandle {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This member's id.
    pub fn member_id(&self) -> u64 {
        self.shared.config.member_id
    }

    /// Queues `message` for peer `to`. Never blocks and never waits for the network: when
    /// the peer's queue is full (peer slow or down) the message is dropped, counted, and
    /// [`SendOutcome::Dropped`] returned.
    pub fn send(&self, to: u64, message: Bytes) -> Result<SendOutcome, SendError> {
        let max = self.shared.config.frame_bytes_max;
        if to == self.shared.config.member_id {
            return Err(SendError::ToSelf(to));
        }
        let (queue, _, _) = self.queues.get(&to).ok_or(SendError::UnknownPeer(to))?;
        if message.len() > max as usize {
            return Err(SendError::TooLarge {
                len: message.len(),
                max,
            });
        }
        if self.closed.load(Relaxed) {
            return Err(SendError::ShutDown);
        }
        match queue.try_send(message) {
            Ok(()) => Ok(SendOutcome::Queued),
            Err(TrySendError::Full(_)) => {
                if let Some(counters) = self.shared.counters(to) {
                    counters.dropped_queue_full.fetch_add(1, Relaxed);
                }
                Ok(SendOutcome::Dropped)
            }
            Err(TrySendError::Closed(_)) => Err(SendError::ShutDown),
        }
    }

    /// The peers this transport reaches, with their addresses.
    pub fn peers(&self) -> BTreeMap<u64, SocketAddr> {
        self.queues
            .iter()
            .map(|(id, (_, addr, _))| (*id, *addr))
            .collect()
    }

    /// Starts reaching member `id` at `addr` (a member added at run time) and lets it in. A
    /// peer already known at another address is redialled there; at the same address nothing
    /// changes. At most [`PEERS_MAX`] peers.
    pub fn add_peer(&mut self, id: u64, addr: SocketAddr) -> Result<(), SendError> {
        if id == self.shared.config.member_id {
            return Err(SendError::ToSelf(id));
        }
        if self.closed.load(Relaxed) {
            return Err(SendError::ShutDown);
        }
        match self.queues.get(&id) {
            Some((_, known, _)) if *known == addr => return Ok(()),
            Some(_) => self.stop_outbound(id),
            None if self.queues.len() >= PEERS_MAX => return Err(SendError::UnknownPeer(id)),
            None => {}
        }
        self.shared
            .peers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id)
            .or_insert_with(PeerEntry::new);
        let (tx, rx) = mpsc::channel(self.shared.config.queue_depth);
        let task = self.tasks.spawn(outbound::run_outbound(
            self.shared.clone(),
            id,
            addr,
            rx,
            self.shutdown_rx.clone(),
        ));
        self.queues.insert(id, (tx, addr, task));
        Ok(())
    }

    /// Stops reaching member `id` (a removed member) and refuses it from now on: its queue is
    /// dropped, its outbound task ends and its inbound connection closes.
    pub fn remove_peer(&mut self, id: u64) {
        self.stop_outbound(id);
        let removed = self
            .shared
            .peers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        if let Some(entry) = removed {
            // A newer generation makes the open inbound connection close itself.
            entry.inbound_latest.send_modify(|g| *g += 1);
        }
    }

    fn stop_outbound(&mut self, id: u64) {
        if let Some((_, _, task)) = self.queues.remove(&id) {
            task.abort();
        }
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        let peers = self
            .shared
            .peers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, entry)| {
                let queued = self
                    .queues
                    .get(id)
                    .map(|(q, _, _)| q.max_capacity() - q.capacity())
                    .unwrap_or(0);
                (*id, entry.counters.snapshot(queued))
            })
            .collect();
        let inbound_queued = self
            .inbound_probe
            .upgrade()
            .map(|tx| tx.max_capacity() - tx.capacity())
            .unwrap_or(0);
        Stats {
            peers,
            listener: self.shared.listener.snapshot(),
            inbound_queued,
        }
    }

    /// Stops gracefully: stops accepting and reading, writes out what is queued to connected
    /// peers within `shutdown_flush_timeout`, closes every connection. Anything still
    /// running after that bound (plus a small margin) is aborted. The inbound channel
    /// returns `None` once drained.
    pub async fn shutdown(mut self) {
        self.closed.store(true, Relaxed);
        self.shutdown_tx.send_replace(true);
        // The margin covers the tasks' own bookkeeping after their flush deadline.
        let bound = self.shared.config.shutdown_flush_timeout + Duration::from_millis(100);
        let tasks = &mut self.tasks;
        let _ =
            tokio::time::timeout(bound, async { while tasks.join_next().await.is_some() {} }).await;
        self.tasks.abort_all();
    }
}

impl Drop for TransportHandle {
    fn drop(&mut self) {
        self.closed.store(true, Relaxed);
        self.shutdown_tx.send_replace(true);
        // The JoinSet aborts every task as it drops, right after this.
    }
}
