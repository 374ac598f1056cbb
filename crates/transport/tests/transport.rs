//! The transport over real TCP on 127.0.0.1, ports chosen by the OS.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use transport::handshake::{Hello, Reply, PROTOCOL_VERSION};
use transport::{
    Inbound, RefusalReason, SendError, SendOutcome, Stats, Transport, TransportConfig,
    TransportHandle,
};

const CLUSTER: u64 = 0xC1_05_7E_12;
/// Every wait in these tests gives up after this, so a broken transport fails, not hangs.
const PATIENCE: Duration = Duration::from_secs(10);

type Started = (TransportHandle, mpsc::Receiver<Inbound>);

/// Binds one listener per id on an OS-chosen port and returns them with the address book.
async fn bind_all(ids: &[u64]) -> (BTreeMap<u64, TcpListener>, BTreeMap<u64, SocketAddr>) {
    let mut listeners = BTreeMap::new();
    let mut addrs = BTreeMap::new();
    for id in ids {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        addrs.insert(*id, l.local_addr().unwrap());
        listeners.insert(*id, l);
    }
    (listeners, addrs)
}

/// Fast limits for tests: short backoff so reconnects happen within the test's patience.
fn config(cluster: u64, id: u64, members: &BTreeMap<u64, SocketAddr>) -> TransportConfig {
    let mut c = TransportConfig::new(cluster, id, members[&id], members.clone());
    c.backoff_min = Duration::from_millis(10);
    c.backoff_max = Duration::from_millis(200);
    c.handshake_timeout = Duration::from_secs(1);
    c.shutdown_flush_timeout = Duration::from_millis(500);
    c
}

async fn start_on(c: TransportConfig, l: TcpListener) -> Started {
    Transport::start_on(c, l).await.unwrap()
}

/// Polls `f` until it holds; panics with `what` after `PATIENCE`.
async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

fn all_connected(h: &TransportHandle) -> bool {
    h.stats().peers.values().all(|p| p.connected)
}

fn peer(stats: &Stats, id: u64) -> &transport::PeerStats {
    &stats.peers[&id]
}

/// A message naming its sender and sequence number, padded to `pad` bytes.
fn message(from: u64, seq: u64, pad: usize) -> Bytes {
    let mut v = Vec::with_capacity(16 + pad);
    v.extend_from_slice(&from.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.resize(16 + pad, 0xAB);
    Bytes::from(v)
}

fn parse(bytes: &[u8]) -> (u64, u64) {
    let from = u64::from_be_bytes(bytes[0..8].try_into().unwrap());
    let seq = u64::from_be_bytes(bytes[8..16].try_into().unwrap());
    (from, seq)
}

/// Receives until `want` returns true for the collected messages.
async fn collect_until(
    rx: &mut mpsc::Receiver<Inbound>,
    mut done: impl FnMut(&[Inbound]) -> bool,
) -> Vec<Inbound> {
    let mut got = Vec::new();
    within("collecting inbound messages", async {
        while !done(&got) {
            match rx.recv().await {
                Some(m) => got.push(m),
                None => panic!("inbound channel closed early"),
            }
        }
    })
    .await;
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_exchange_thousands_of_messages_in_order() {
    const PER_PAIR: u64 = 3000;
    let ids = [1, 2, 3];
    let (mut listeners, addrs) = bind_all(&ids).await;
    let mut handles = BTreeMap::new();
    let mut receivers = BTreeMap::new();
    for id in ids {
        let mut c = config(CLUSTER, id, &addrs);
        // Deep enough that nothing is dropped: this test checks delivery, not backpressure.
        c.queue_depth = PER_PAIR as usize + 1;
        let (h, rx) = start_on(c, listeners.remove(&id).unwrap()).await;
        handles.insert(id, h);
        receivers.insert(id, rx);
    }
    for h in handles.values() {
        wait_until("all connected", || all_connected(h)).await;
    }
    // Receive concurrently with sending, as a node would.
    let mut collectors = Vec::new();
    for (id, mut rx) in receivers {
        collectors.push(tokio::spawn(async move {
            let got = collect_until(&mut rx, |g| g.len() as u64 == 2 * PER_PAIR).await;
            (id, got)
        }));
    }
    for seq in 0..PER_PAIR {
        for (&from, h) in &handles {
            for &to in &ids {
                if to != from {
                    let outcome = h.send(to, message(from, seq, 32)).unwrap();
                    assert_eq!(outcome, SendOutcome::Queued);
                }
            }
        }
    }
    for c in collectors {
        let (id, got) = c.await.unwrap();
        let mut next: BTreeMap<u64, u64> = BTreeMap::new();
        for m in &got {
            let (claimed, seq) = parse(&m.bytes);
            assert_eq!(m.from, claimed, "`from` is the sender's member id");
            assert_ne!(m.from, id);
            let expected = next.entry(m.from).or_insert(0);
            assert_eq!(
                seq, *expected,
                "messages from {} to {id} out of order",
                m.from
            );
            *expected += 1;
        }
        assert_eq!(
            next.values().copied().collect::<Vec<_>>(),
            vec![PER_PAIR, PER_PAIR]
        );
    }
    for (&id, h) in &handles {
        let s = h.stats();
        for (&p, ps) in &s.peers {
            assert_eq!(ps.sent, PER_PAIR, "{id} -> {p}");
            assert_eq!(ps.dropped_queue_full, 0);
            assert_eq!(ps.received, PER_PAIR, "{p} -> {id}");
        }
    }
    for (_, h) in handles {
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_starts_late_is_reached_once_up() {
    let (mut listeners, addrs) = bind_all(&[1, 2]).await;
    // Member 2 is down: free its port so that dials are refused.
    drop(listeners.remove(&2));
    let mut c1 = config(CLUSTER, 1, &addrs);
    c1.queue_depth = 16;
    let (h1, _rx1) = start_on(c1, listeners.remove(&1).unwrap()).await;
    let mut outcomes = BTreeMap::new();
    for seq in 0..100 {
        *outcomes
            .entry(format!("{:?}", h1.send(2, message(1, seq, 0)).unwrap()))
            .or_insert(0) += 1;
    }
    assert_eq!(outcomes.get("Queued"), Some(&16), "{outcomes:?}");
    assert_eq!(outcomes.get("Dropped"), Some(&84), "{outcomes:?}");
    wait_until("a few failed dials", || {
        peer(&h1.stats(), 2).connect_failures >= 2
    })
    .await;
    let s = h1.stats();
    assert!(!peer(&s, 2).connected);
    assert_eq!(peer(&s, 2).dropped_queue_full, 84);
    assert_eq!(peer(&s, 2).queued, 16);

    let l2 = TcpListener::bind(addrs[&2]).await.unwrap();
    let (h2, mut rx2) = start_on(config(CLUSTER, 2, &addrs), l2).await;
    wait_until("1 connects to 2", || peer(&h1.stats(), 2).connected).await;
    for seq in 1000..1010 {
        assert_eq!(h1.send(2, message(1, seq, 0)).unwrap(), SendOutcome::Queued);
    }
    let got = collect_until(&mut rx2, |g| {
        g.last().map(|m| parse(&m.bytes).1) == Some(1009)
    })
    .await;
    let seqs: Vec<u64> = got.iter().map(|m| parse(&m.bytes).1).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    assert!(seqs.ends_with(&(1000..1010).collect::<Vec<_>>()));
    // What was queued while 2 was down is delivered too (it fit the queue).
    assert_eq!(seqs.len(), 16 + 10);
    let s = h1.stats();
    assert_eq!(peer(&s, 2).connects, 1);
    assert!(peer(&s, 2).connect_failures >= 2);
    h1.shutdown().await;
    h2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_from_another_cluster_is_refused_and_others_still_served() {
    let (mut listeners, addrs) = bind_all(&[1, 2]).await;
    let (h1, _rx1) = start_on(config(CLUSTER, 1, &addrs), listeners.remove(&1).unwrap()).await;
    let (h2, mut rx2) = start_on(config(CLUSTER, 2, &addrs), listeners.remove(&2).unwrap()).await;

    // The stranger has member 1's id but another cluster id, and dials member 2.
    let stranger_cluster = 0xBAD;
    let (stranger_l, stranger_addrs) = bind_all(&[1]).await;
    let mut book = stranger_addrs.clone();
    book.insert(2, addrs[&2]);
    let (stranger, _srx) = start_on(
        config(stranger_cluster, 1, &book),
        stranger_l.into_values().next().unwrap(),
    )
    .await;
    wait_until("the stranger is refused", || {
        peer(&stranger.stats(), 2).refused_by_peer >= 1
    })
    .await;
    let refusal = peer(&stranger.stats(), 2).last_refusal.unwrap();
    assert_eq!(refusal.reason, RefusalReason::WrongCluster);
    assert_eq!(
        refusal.cluster_id, CLUSTER,
        "the refusal names the real cluster"
    );
    assert_eq!(refusal.member_id, 2);
    assert!(!peer(&stranger.stats(), 2).connected);
    assert!(h2.stats().listener.refused_wrong_cluster >= 1);
    assert_eq!(
        stranger.send(2, message(1, 0, 0)).ok(),
        Some(SendOutcome::Queued)
    );

    // Legitimate traffic still flows, and nothing of the stranger's arrives.
    wait_until("1 connects to 2", || peer(&h1.stats(), 2).connected).await;
    for seq in 0..50 {
        h1.send(2, message(1, seq, 8)).unwrap();
    }
    let got = collect_until(&mut rx2, |g| g.len() == 50).await;
    assert!(got.iter().all(|m| m.from == 1 && m.bytes.len() == 24));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        rx2.try_recv().is_err(),
        "the stranger's message never arrives"
    );
    stranger.shutdown().await;
    h1.shutdown().await;
    h2.shutdown().await;
}

/// Dials `addr` with a hand-made hello and returns the stream and the decoded reply.
async fn raw_handshake(addr: SocketAddr, hello: Hello) -> (TcpStream, Reply) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let body = hello.encode();
    s.write_all(&(body.len() as u32).to_be_bytes())
        .await
        .unwrap();
    s.write_all(&body).await.unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.unwrap();
    let mut reply = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut reply).await.unwrap();
    (s, Reply::decode(&reply).unwrap())
}

/// Reads until the server closes; returns how long that took.
async fn time_to_close(s: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 64];
    within("the server closes the connection", async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_handshakes_garbage_and_oversized_frames_close_only_their_connection() {
    // Member 1 is played by hand; members 2 and 3 are real.
    let (mut listeners, addrs) = bind_all(&[1, 2, 3]).await;
    drop(listeners.remove(&1));
    let mut c2 = config(CLUSTER, 2, &addrs);
    // Long enough that "closed at once" and "closed by the timeout" stay apart on a loaded
    // machine: these are behaviours, not speed measurements.
    c2.handshake_timeout = Duration::from_millis(1_500);
    c2.frame_bytes_max = 1024;
    let (h2, mut rx2) = start_on(c2, listeners.remove(&2).unwrap()).await;
    let (h3, _rx3) = start_on(config(CLUSTER, 3, &addrs), listeners.remove(&3).unwrap()).await;
    wait_until("3 connects to 2", || peer(&h3.stats(), 2).connected).await;
    let hello = Hello {
        version: PROTOCOL_VERSION,
        cluster_id: CLUSTER,
        from: 1,
        to: 2,
    };

    // A member id not in the configuration.
    let (mut s, reply) = raw_handshake(addrs[&2], Hello { from: 99, ..hello }).await;
    assert!(matches!(reply, Reply::Refused(r) if r.reason == RefusalReason::UnknownMember));
    time_to_close(&mut s).await;
    // A dialer that meant member 3.
    let (mut s, reply) = raw_handshake(addrs[&2], Hello { to: 3, ..hello }).await;
    assert!(
        matches!(reply, Reply::Refused(r) if r.reason == RefusalReason::WrongReceiver && r.member_id == 2)
    );
    time_to_close(&mut s).await;
    // An unsupported version.
    let (mut s, reply) = raw_handshake(
        addrs[&2],
        Hello {
            version: 999,
            ..hello
        },
    )
    .await;
    assert!(
        matches!(reply, Reply::Refused(r) if r.reason == RefusalReason::UnsupportedVersion && r.version == PROTOCOL_VERSION)
    );
    time_to_close(&mut s).await;
    let l = h2.stats().listener;
    assert_eq!(
        (
            l.refused_unknown_member,
            l.refused_wrong_receiver,
            l.refused_version
        ),
        (1, 1, 1)
    );

    // Garbage whose first bytes read as a huge length: closed at once.
    let mut s = TcpStream::connect(addrs[&2]).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(time_to_close(&mut s).await < Duration::from_millis(1_000));
    // A plausible length, then silence: closed by the handshake timeout (1.5 s).
    let mut s = TcpStream::connect(addrs[&2]).await.unwrap();
    s.write_all(&[0, 0, 0, 30, b'S', b'Y']).await.unwrap();
    let waited = time_to_close(&mut s).await;
    assert!(
        waited >= Duration::from_millis(1_200) && waited < Duration::from_secs(6),
        "closed after {waited:?}"
    );
    // Nothing at all: closed by the timeout too.
    let mut s = TcpStream::connect(addrs[&2]).await.unwrap();
    let waited = time_to_close(&mut s).await;
    assert!(waited < Duration::from_secs(6), "closed after {waited:?}");
    wait_until("failures counted", || {
        h2.stats().listener.handshake_failures == 3
    })
    .await;

    // A welcomed member 1 sends one good frame, then one over the 1024-byte limit.
    let (mut s, reply) = raw_handshake(addrs[&2], hello).await;
    assert!(matches!(reply, Reply::Welcome { member_id: 2, .. }));
    s.write_all(&[0, 0, 0, 2, b'o', b'k']).await.unwrap();
    s.write_all(&2048u32.to_be_bytes()).await.unwrap();
    s.write_all(&[0u8; 2048]).await.unwrap();
    time_to_close(&mut s).await;
    let first = within("the good frame", rx2.recv()).await.unwrap();
    assert_eq!((first.from, &first.bytes[..]), (1, &b"ok"[..]));
    wait_until("oversize counted", || {
        h2.stats().listener.oversized_frames == 1
    })
    .await;

    // Member 3's connection was never disturbed.
    for seq in 0..20 {
        h3.send(2, message(3, seq, 0)).unwrap();
    }
    let got = collect_until(&mut rx2, |g| g.len() == 20).await;
    assert!(got.iter().all(|m| m.from == 3));
    assert_eq!(peer(&h3.stats(), 2).connects, 1, "3's connection survived");
    // A message over the limit is refused at `send`, before it could break a connection.
    assert_eq!(
        h3.send(2, Bytes::from(vec![0u8; 1 << 25])),
        Err(SendError::TooLarge {
            len: 1 << 25,
            max: transport::FRAME_BYTES_MAX_DEFAULT
        })
    );
    assert_eq!(h3.send(7, Bytes::new()), Err(SendError::UnknownPeer(7)));
    assert_eq!(h3.send(3, Bytes::new()), Err(SendError::ToSelf(3)));
    h2.shutdown().await;
    h3.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_bounds_memory_and_send_never_blocks() {
    const BLAST: u64 = 100_000;
    const QUEUE: usize = 64;
    const INBOUND: usize = 4;
    let (mut listeners, addrs) = bind_all(&[1, 2]).await;
    let mut c1 = config(CLUSTER, 1, &addrs);
    c1.queue_depth = QUEUE;
    let mut c2 = config(CLUSTER, 2, &addrs);
    c2.inbound_depth = INBOUND;
    let (h1, _rx1) = start_on(c1, listeners.remove(&1).unwrap()).await;
    let (h2, mut rx2) = start_on(c2, listeners.remove(&2).unwrap()).await;
    wait_until("1 connects to 2", || peer(&h1.stats(), 2).connected).await;

    // Nobody reads rx2 during the blast.
    let mut slowest = Duration::ZERO;
    let mut dropped = 0u64;
    let mut max_queued = 0usize;
    for seq in 0..BLAST {
        let start = Instant::now();
        if h1.send(2, message(1, seq, 1024)).unwrap() == SendOutcome::Dropped {
            dropped += 1;
        }
        slowest = slowest.max(start.elapsed());
        if seq % 1000 == 0 {
            max_queued = max_queued.max(peer(&h1.stats(), 2).queued);
            // Let the writer run, so that the socket buffers fill too.
            tokio::task::yield_now().await;
        }
    }
    // Nobody reads the receiver, so a send that waited for room would never return; a bound
    // of a second separates that from scheduling noise on a loaded machine.
    assert!(slowest < Duration::from_secs(1), "a send took {slowest:?}");
    assert!(dropped > 0, "the queue filled and messages were dropped");
    assert!(max_queued <= QUEUE);
    let s1 = h1.stats();
    let s2 = h2.stats();
    assert_eq!(peer(&s1, 2).dropped_queue_full, dropped);
    assert!(peer(&s1, 2).queued <= QUEUE);
    assert!(s2.inbound_queued <= INBOUND);
    assert!(
        peer(&s2, 1).received <= INBOUND as u64,
        "only the channel's worth crossed"
    );
    // What left the queue is bounded by the kernel's socket buffers, far below the blast.
    assert!(peer(&s1, 2).sent < BLAST / 2, "sent {}", peer(&s1, 2).sent);

    // The consumer wakes up: everything that left 1 arrives, in order, then traffic stops.
    let mut last = None;
    let mut received = 0u64;
    within("draining", async {
        loop {
            let s1 = h1.stats();
            let settled = peer(&s1, 2).queued == 0 && received == peer(&s1, 2).sent;
            if settled {
                break;
            }
            match tokio::time::timeout(Duration::from_millis(200), rx2.recv()).await {
                Ok(Some(m)) => {
                    let (_, seq) = parse(&m.bytes);
                    assert!(last < Some(seq), "out of order");
                    last = Some(seq);
                    received += 1;
                }
                Ok(None) => panic!("channel closed"),
                Err(_) => {}
            }
        }
    })
    .await;
    assert_eq!(
        received + dropped,
        BLAST,
        "every message was either delivered or counted dropped"
    );
    h1.shutdown().await;
    h2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_peer_is_reconnected_and_traffic_resumes() {
    let ids = [1, 2, 3];
    let (mut listeners, addrs) = bind_all(&ids).await;
    let mut handles = BTreeMap::new();
    let mut receivers = BTreeMap::new();
    for id in ids {
        let (h, rx) = start_on(config(CLUSTER, id, &addrs), listeners.remove(&id).unwrap()).await;
        handles.insert(id, h);
        receivers.insert(id, rx);
    }
    for h in handles.values() {
        wait_until("all connected", || all_connected(h)).await;
    }
    // Member 3 goes away abruptly (dropped, not shut down) and comes back on its address.
    drop(handles.remove(&3));
    drop(receivers.remove(&3));
    for id in [1, 2] {
        let h = &handles[&id];
        wait_until("3 seen down", || !peer(&h.stats(), 3).connected).await;
    }
    let l3 = within("rebinding 3's address", async {
        loop {
            match TcpListener::bind(addrs[&3]).await {
                Ok(l) => break l,
                // The aborted listener task may not have released the port yet.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    })
    .await;
    let (h3, mut rx3) = start_on(config(CLUSTER, 3, &addrs), l3).await;
    for id in [1, 2] {
        let h = &handles[&id];
        wait_until("reconnected to 3", || peer(&h.stats(), 3).connected).await;
        assert_eq!(peer(&h.stats(), 3).reconnects(), 1);
    }
    wait_until("3 connected", || all_connected(&h3)).await;
    for seq in 0..100 {
        handles[&1].send(3, message(1, 1_000 + seq, 0)).unwrap();
        handles[&2].send(3, message(2, 1_000 + seq, 0)).unwrap();
        h3.send(1, message(3, seq, 0)).unwrap();
    }
    let got = collect_until(&mut rx3, |g| {
        g.iter().filter(|m| parse(&m.bytes).1 >= 1_000).count() == 200
    })
    .await;
    for from in [1, 2] {
        let seqs: Vec<u64> = got
            .iter()
            .filter(|m| m.from == from)
            .map(|m| parse(&m.bytes).1)
            .filter(|s| *s >= 1_000)
            .collect();
        assert_eq!(seqs, (1_000..1_100).collect::<Vec<_>>());
    }
    let rx1 = receivers.get_mut(&1).unwrap();
    let got = collect_until(rx1, |g| g.iter().filter(|m| m.from == 3).count() == 100).await;
    assert!(got
        .iter()
        .filter(|m| m.from == 3)
        .map(|m| parse(&m.bytes).1)
        .eq(0..100));
    h3.shutdown().await;
    for (_, h) in handles {
        h.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_queued_messages_and_closes_the_channel() {
    let (mut listeners, addrs) = bind_all(&[1, 2]).await;
    let (h1, mut rx1) = start_on(config(CLUSTER, 1, &addrs), listeners.remove(&1).unwrap()).await;
    let (h2, mut rx2) = start_on(config(CLUSTER, 2, &addrs), listeners.remove(&2).unwrap()).await;
    wait_until("1 connects to 2", || peer(&h1.stats(), 2).connected).await;
    for seq in 0..500 {
        h1.send(2, message(1, seq, 64)).unwrap();
    }
    h1.shutdown().await;
    let got = collect_until(&mut rx2, |g| g.len() == 500).await;
    assert!(got.iter().map(|m| parse(&m.bytes).1).eq(0..500));
    assert!(
        within("1's channel closes", rx1.recv()).await.is_none(),
        "the inbound channel ends after shutdown"
    );
    h2.shutdown().await;
}

#[tokio::test]
async fn invalid_configurations_are_refused() {
    let addrs = BTreeMap::from([(1, "127.0.0.1:0".parse().unwrap())]);
    let mut c = config(CLUSTER, 1, &addrs);
    c.queue_depth = 0;
    assert!(matches!(
        Transport::start(c).await,
        Err(transport::StartError::Config(transport::ConfigError::Zero(
            "queue_depth"
        )))
    ));
    let mut c = config(CLUSTER, 1, &addrs);
    c.backoff_min = Duration::from_secs(2);
    c.backoff_max = Duration::from_secs(1);
    assert!(matches!(
        Transport::start(c).await,
        Err(transport::StartError::Config(
            transport::ConfigError::BackoffInverted { .. }
        ))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_connection_from_a_peer_replaces_the_older() {
    // Member 1 is played by hand, as a peer whose old connection died silently.
    let (mut listeners, addrs) = bind_all(&[1, 2]).await;
    drop(listeners.remove(&1));
    let (h2, mut rx2) = start_on(config(CLUSTER, 2, &addrs), listeners.remove(&2).unwrap()).await;
    let hello = Hello {
        version: PROTOCOL_VERSION,
        cluster_id: CLUSTER,
        from: 1,
        to: 2,
    };
    let (mut old, reply) = raw_handshake(addrs[&2], hello).await;
    assert!(matches!(reply, Reply::Welcome { .. }));
    old.write_all(&[0, 0, 0, 3, b'o', b'l', b'd'])
        .await
        .unwrap();
    let m = within("the old connection's frame", rx2.recv())
        .await
        .unwrap();
    assert_eq!(&m.bytes[..], b"old");
    let (mut new, reply) = raw_handshake(addrs[&2], hello).await;
    assert!(matches!(reply, Reply::Welcome { .. }));
    // The older connection is closed by the acceptor; the newer one carries traffic.
    let waited = time_to_close(&mut old).await;
    assert!(waited < Duration::from_secs(2), "closed after {waited:?}");
    new.write_all(&[0, 0, 0, 3, b'n', b'e', b'w'])
        .await
        .unwrap();
    let m = within("the new connection's frame", rx2.recv())
        .await
        .unwrap();
    assert_eq!((m.from, &m.bytes[..]), (1, &b"new"[..]));
    let s = h2.stats();
    assert_eq!(s.listener.superseded, 1);
    assert_eq!(peer(&s, 1).inbound_connections, 2);
    h2.shutdown().await;
}
