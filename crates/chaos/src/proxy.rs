//! The fault-injecting proxy on the peer links.
//!
//! Each member advertises a proxy address as its peer URL and binds its real peer listener
//! elsewhere, so every peer connection to it passes through here. The transport opens one
//! connection per direction and the dialer's first frame (the handshake hello) names the
//! sender and the receiver, so the proxy knows the directed link of every connection and
//! applies that link's rule to each frame: pass, drop (partition or loss) or hold back
//! (delay). Whole frames are dropped, never parts, so a drop is a lost message to the
//! protocol rather than a corrupted stream.
//!
//! Bounded: a frame above [`FRAME_MAX`] closes the connection, each connection's delay queue
//! holds at most [`DELAY_QUEUE_MAX`] frames (past that frames are dropped and counted), and
//! the number of live connections is capped at [`CONNECTIONS_MAX`] per listener.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Larger than any frame the transport sends (its own limit is far below).
pub const FRAME_MAX: u32 = 64 << 20;
/// Frames held back per connection while a delay is in force.
pub const DELAY_QUEUE_MAX: usize = 4096;
/// Live connections per proxy listener; the transport needs at most one per peer.
pub const CONNECTIONS_MAX: usize = 64;
/// Bytes of the hello frame body, from `transport::handshake`.
const HELLO_BYTES: usize = 30;

/// The fate of frames on one directed link.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LinkRule {
    /// Drop every frame (partition).
    pub blocked: bool,
    /// Drop each frame with this probability.
    pub loss: f64,
    /// Hold each frame this long before forwarding.
    pub delay: Duration,
}

/// Rules for every directed link `(from, to)` (member indexes), shared with the nemesis.
#[derive(Default)]
pub struct Links {
    rules: Mutex<HashMap<(usize, usize), LinkRule>>,
    pub frames_forwarded: AtomicU64,
    pub frames_dropped: AtomicU64,
}

impl Links {
    pub fn rule(&self, from: usize, to: usize) -> LinkRule {
        self.rules
            .lock()
            .expect("links lock")
            .get(&(from, to))
            .copied()
            .unwrap_or_default()
    }

    pub fn set(&self, from: usize, to: usize, rule: LinkRule) {
        self.rules
            .lock()
            .expect("links lock")
            .insert((from, to), rule);
    }

    /// Every link back to pass-through.
    pub fn heal(&self) {
        self.rules.lock().expect("links lock").clear();
    }
}

/// Member ids in the order of member indexes, to name a connection's sender. Atomics: a
/// replaced member (the `replace` fault) comes back under a new id at the same index.
pub type Ids = Arc<Vec<AtomicU64>>;

/// Accepts on `listen` the connections meant for member `to` and forwards them to its real
/// peer listener `target`, until the runtime shuts down.
pub async fn serve(
    listen: SocketAddr,
    target: SocketAddr,
    to: usize,
    ids: Ids,
    links: Arc<Links>,
    seed: u64,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(listen).await?;
    let live = Arc::new(AtomicUsize::new(0));
    Ok(tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            let Ok((inbound, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            if live.load(Ordering::Relaxed) >= CONNECTIONS_MAX {
                continue; // dropped: the dialer retries with backoff
            }
            n += 1;
            live.fetch_add(1, Ordering::Relaxed);
            let (ids, links, live) = (ids.clone(), links.clone(), live.clone());
            let rng = ChaCha8Rng::seed_from_u64(seed ^ (to as u64) << 32 ^ n);
            tokio::spawn(async move {
                let _ = connection(inbound, target, to, ids, links, rng).await;
                live.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }))
}

async fn connection(
    inbound: TcpStream,
    target: SocketAddr,
    to: usize,
    ids: Ids,
    links: Arc<Links>,
    mut rng: ChaCha8Rng,
) -> std::io::Result<()> {
    inbound.set_nodelay(true)?;
    let outbound = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(target))
        .await
        .map_err(|_| std::io::Error::other("connect timeout"))??;
    outbound.set_nodelay(true)?;
    let (mut in_r, mut in_w) = inbound.into_split();
    let (mut out_r, mut out_w) = outbound.into_split();

    // The hello goes through untouched; it names the sender.
    let Some(hello) = read_frame(&mut in_r).await? else {
        return Ok(());
    };
    let from = (hello.len() == 4 + HELLO_BYTES)
        .then(|| u64::from_be_bytes(hello[4 + 14..4 + 22].try_into().expect("8 bytes")))
        .and_then(|sender| {
            ids.iter()
                .position(|id| id.load(Ordering::Relaxed) == sender)
        });
    out_w.write_all(&hello).await?;

    // Acceptor to dialer carries only the handshake reply: pass it through as bytes.
    let back = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut out_r, &mut in_w).await;
        let _ = in_w.shutdown().await;
    });

    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(DELAY_QUEUE_MAX);
    let writer = tokio::spawn(async move {
        while let Some((at, frame)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if out_w.write_all(&frame).await.is_err() {
                break;
            }
        }
        let _ = out_w.shutdown().await;
    });

    while let Some(frame) = read_frame(&mut in_r).await? {
        // An unknown sender (never expected) gets no faults rather than a guess.
        let rule = from.map(|f| links.rule(f, to)).unwrap_or_default();
        let lost = rule.loss > 0.0 && (rng.next_u64() as f64 / u64::MAX as f64) < rule.loss;
        if rule.blocked || lost {
            links.frames_dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        if tx.try_send((Instant::now() + rule.delay, frame)).is_err() {
            if tx.is_closed() {
                break;
            }
            links.frames_dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        links.frames_forwarded.fetch_add(1, Ordering::Relaxed);
    }
    drop(tx);
    let _ = writer.await;
    back.abort();
    Ok(())
}

/// One frame including its 4-byte length prefix; `None` at a clean end of stream.
async fn read_frame(r: &mut tokio::net::tcp::OwnedReadHalf) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let n = u32::from_be_bytes(len);
    if n > FRAME_MAX {
        return Err(std::io::Error::other("frame too large"));
    }
    let mut frame = vec![0u8; 4 + n as usize];
    frame[..4].copy_from_slice(&len);
    r.read_exact(&mut frame[4..]).await?;
    Ok(Some(frame))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &[u8]) -> Vec<u8> {
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(body);
        f
    }

    fn hello(sender: u64, receiver: u64) -> Vec<u8> {
        let mut b = Vec::from(*b"SYNP");
        b.extend_from_slice(&1u16.to_be_bytes());
        b.extend_from_slice(&7u64.to_be_bytes());
        b.extend_from_slice(&sender.to_be_bytes());
        b.extend_from_slice(&receiver.to_be_bytes());
        frame(&b)
    }

    /// Reads frames until `want` bodies arrived or `within` passed.
    async fn collect(
        r: &mut tokio::net::tcp::OwnedReadHalf,
        want: usize,
        within: Duration,
    ) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let deadline = Instant::now() + within;
        while got.len() < want {
            match tokio::time::timeout_at(deadline, read_frame(r)).await {
                Ok(Ok(Some(f))) => got.push(f[4..].to_vec()),
                _ => break,
            }
        }
        got
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_on_a_blocked_link_are_dropped_and_others_pass_in_order() {
        let member = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = member.local_addr().unwrap();
        let probe = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listen = probe.local_addr().unwrap();
        drop(probe);
        let links = Arc::new(Links::default());
        let ids: Ids = Arc::new(vec![100.into(), 200.into()]);
        let proxy = serve(listen, target, 1, ids, links.clone(), 1)
            .await
            .unwrap();

        let dialer = TcpStream::connect(listen).await.unwrap();
        let (accepted, _) = member.accept().await.unwrap();
        let (mut member_r, _member_w) = accepted.into_split();
        let (_dialer_r, mut dialer_w) = dialer.into_split();

        dialer_w.write_all(&hello(100, 200)).await.unwrap();
        let got = collect(&mut member_r, 1, Duration::from_secs(2)).await;
        assert_eq!(got.len(), 1, "the hello passes");
        assert_eq!(&got[0][14..22], &100u64.to_be_bytes());

        dialer_w.write_all(&frame(b"one")).await.unwrap();
        assert_eq!(
            collect(&mut member_r, 1, Duration::from_secs(2)).await,
            vec![b"one".to_vec()]
        );

        // Partition n1 -> n2: nothing gets through, and it is counted.
        links.set(
            0,
            1,
            LinkRule {
                blocked: true,
                ..LinkRule::default()
            },
        );
        dialer_w.write_all(&frame(b"lost")).await.unwrap();
        assert!(collect(&mut member_r, 1, Duration::from_millis(300))
            .await
            .is_empty());
        assert_eq!(links.frames_dropped.load(Ordering::Relaxed), 1);
        // The other direction's rule does not touch this link.
        links.heal();
        links.set(
            1,
            0,
            LinkRule {
                blocked: true,
                ..LinkRule::default()
            },
        );

        // Delay: held back at least that long, order kept.
        links.set(
            0,
            1,
            LinkRule {
                delay: Duration::from_millis(200),
                ..LinkRule::default()
            },
        );
        let sent = Instant::now();
        dialer_w.write_all(&frame(b"a")).await.unwrap();
        dialer_w.write_all(&frame(b"b")).await.unwrap();
        let got = collect(&mut member_r, 2, Duration::from_secs(2)).await;
        assert_eq!(got, vec![b"a".to_vec(), b"b".to_vec()]);
        assert!(sent.elapsed() >= Duration::from_millis(200));

        // Loss 100 %: every frame dropped.
        links.set(
            0,
            1,
            LinkRule {
                loss: 1.0,
                ..LinkRule::default()
            },
        );
        dialer_w.write_all(&frame(b"gone")).await.unwrap();
        assert!(collect(&mut member_r, 1, Duration::from_millis(300))
            .await
            .is_empty());
        links.heal();
        dialer_w.write_all(&frame(b"back")).await.unwrap();
        assert_eq!(
            collect(&mut member_r, 1, Duration::from_secs(2)).await,
            vec![b"back".to_vec()]
        );
        proxy.abort();
    }
}
