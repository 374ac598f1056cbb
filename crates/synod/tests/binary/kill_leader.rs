//! The leader dies mid-load (`kill -9`), and nothing acknowledged is lost.
//!
//! Concurrent writers put distinct keys through the `etcd-client` crate, each recording every
//! put the cluster acknowledged. The leader is killed while they write; writers whose member
//! stops answering retry the same put at another member. Then: writes resume through a new
//! leader within a bound, the killed member restarts from its own data directory, every
//! acknowledged write is there in a linearizable read, and the restarted member catches up, seen
//! through serializable reads (answered from its own state) with the same values and revision.

use crate::common::{etcdctl, parse_range, Cluster, Kv, Range};
use etcd_client::{Client, ConnectOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WRITERS: usize = 4;
/// A writer waits this long after each acknowledged put, so the load lasts as long as the test
/// needs it whatever the speed of the machine: unpaced, a fast machine finished every key
/// before the killed member was back, and the check for load after the restart saw none.
const PACE: Duration = Duration::from_millis(5);
/// Bounds the load: more than a paced writer can put before `WRITER_DEADLINE`, so no writer
/// runs out of keys while the test still waits for acknowledgements.
const KEYS_PER_WRITER_MAX: usize = 30_000;
/// One attempt at one put; past it the writer tries the next member.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// From the kill until every writer has had a put acknowledged again.
const RESUME_BOUND: Duration = Duration::from_secs(10);
/// From the end of the load until every member's serializable read matches.
const CATCH_UP_BOUND: Duration = Duration::from_secs(30);
/// No writer runs longer than this, whatever happens.
const WRITER_DEADLINE: Duration = Duration::from_secs(120);

#[derive(Clone, Debug)]
struct Ack {
    writer: usize,
    key: String,
    value: String,
    revision: i64,
    /// When the attempt that was acknowledged was sent.
    sent: Instant,
    /// When its acknowledgement arrived.
    acknowledged: Instant,
}

#[derive(Default)]
struct Shared {
    acks: Mutex<Vec<Ack>>,
    /// Every key a writer tried to put, acknowledged or not.
    attempted: Mutex<BTreeSet<String>>,
    stop: AtomicBool,
}

impl Shared {
    fn acks(&self) -> Vec<Ack> {
        self.acks.lock().expect("acks lock").clone()
    }
}

/// Puts `w{writer}/{seq}` one after the other until told to stop; a put that fails or times out
/// is retried, same key and value, at the next member.
async fn writer(
    w: usize,
    endpoints: Vec<String>,
    shared: Arc<Shared>,
    deadline: Instant,
) -> Result<(), String> {
    let mut target = w % endpoints.len();
    let mut client: Option<Client> = None;
    for seq in 0..KEYS_PER_WRITER_MAX {
        let key = format!("w{w}/{seq:05}");
        let value = format!("v{w}.{seq}");
        shared
            .attempted
            .lock()
            .expect("attempted lock")
            .insert(key.clone());
        loop {
            if shared.stop.load(Ordering::SeqCst) {
                // The last put may or may not have happened; it was never acknowledged.
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "writer {w}: {key} not acknowledged before the deadline"
                ));
            }
            if client.is_none() {
                // One endpoint: the crate connects lazily, so this does not wait for the member.
                let options = ConnectOptions::new().with_timeout(ATTEMPT_TIMEOUT);
                client = Some(
                    Client::connect([endpoints[target].as_str()], Some(options))
                        .await
                        .map_err(|e| {
                            format!("writer {w}: client for {}: {e}", endpoints[target])
                        })?,
                );
            }
            let sent = Instant::now();
            let put = client
                .as_mut()
                .expect("connected")
                .put(key.clone(), value.clone(), None);
            match tokio::time::timeout(ATTEMPT_TIMEOUT, put).await {
                Ok(Ok(resp)) => {
                    let revision = resp.header().expect("put header").revision();
                    shared.acks.lock().expect("acks lock").push(Ack {
                        writer: w,
                        key,
                        value,
                        revision,
                        sent,
                        acknowledged: Instant::now(),
                    });
                    tokio::time::sleep(PACE).await;
                    break;
                }
                // Dead member, no leader yet, or too slow: try the next member.
                _ => {
                    client = None;
                    target = (target + 1) % endpoints.len();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    Err(format!(
        "writer {w}: put all {KEYS_PER_WRITER_MAX} keys before the test stopped the load"
    ))
}

/// Polls `done` every 50 ms until it returns `Ok`, failing with `what` and the last reason it
/// gave after `bound`. Returns how long it took.
fn wait_until(
    bound: Duration,
    what: &str,
    mut done: impl FnMut() -> Result<(), String>,
) -> Duration {
    let start = Instant::now();
    loop {
        let why = match done() {
            Ok(()) => return start.elapsed(),
            Err(why) => why,
        };
        assert!(
            start.elapsed() < bound,
            "{what}: not within {bound:?}: {why}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `Ok` when `cond` holds, else `Err` with `why`.
fn check(cond: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(why())
    }
}

/// `etcdctl get --prefix w` at one member; an error (say, a member still starting) is `Err`.
fn read_all(endpoint: &str, serializable: bool) -> Result<Range, String> {
    let mut args = vec!["get", "--prefix", "w", "-w", "json"];
    if serializable {
        args.push("--consistency=s");
    }
    let out = etcdctl(endpoint, &args);
    if !out.success() {
        return Err(out.to_string());
    }
    let range = parse_range(&out.stdout);
    assert_eq!(range.count as usize, range.kvs.len(), "a complete answer");
    Ok(range)
}

#[test]
fn acknowledged_writes_survive_killing_the_leader_and_the_member_catches_up() {
    let mut cluster = Cluster::start(3);
    let endpoints: Vec<String> = (0..3).map(|i| cluster.endpoint(i).to_string()).collect();
    let old_leader = cluster.leader();

    // Declared after the cluster, so dropped before it: writers stop before the members do.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let shared = Arc::new(Shared::default());
    let deadline = Instant::now() + WRITER_DEADLINE;
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| rt.spawn(writer(w, endpoints.clone(), shared.clone(), deadline)))
        .collect();

    wait_until(
        Duration::from_secs(20),
        "load flowing before the kill",
        || {
            let n = shared.acks().len();
            check(n >= 40, || format!("{n} puts acknowledged"))
        },
    );

    cluster.kill(old_leader);
    // Taken once the killed member is reaped: only attempts sent after that count, since they
    // cannot have been committed by the old leader.
    let killed_at = Instant::now();
    let resumed = wait_until(
        RESUME_BOUND,
        "every writer acknowledged again after the kill",
        || {
            let acks = shared.acks();
            let waiting: Vec<usize> = (0..WRITERS)
                .filter(|&w| !acks.iter().any(|a| a.writer == w && a.sent > killed_at))
                .collect();
            check(waiting.is_empty(), || {
                format!("writers {waiting:?} still waiting")
            })
        },
    );
    let first = shared
        .acks()
        .iter()
        .filter(|a| a.sent > killed_at)
        .map(|a| a.acknowledged.duration_since(killed_at))
        .min();
    eprintln!(
        "first put sent after the kill acknowledged {first:?} after it, every writer's within {resumed:?}"
    );
    let new_leader = cluster.leader();
    assert_ne!(new_leader, old_leader, "a dead member cannot lead");

    // Load with one member down, then bring it back from its own data directory under load.
    std::thread::sleep(Duration::from_secs(1));
    cluster.restart(old_leader);
    let before = shared.acks().len();
    wait_until(
        Duration::from_secs(20),
        "load flowing after the restart",
        || {
            let n = shared.acks().len() - before;
            check(n >= 40, || {
                format!("{n} puts acknowledged since the restart")
            })
        },
    );
    shared.stop.store(true, Ordering::SeqCst);
    for (w, handle) in writers.into_iter().enumerate() {
        let outcome = rt
            .block_on(async { tokio::time::timeout(Duration::from_secs(15), handle).await })
            .unwrap_or_else(|_| panic!("writer {w} did not stop"))
            .unwrap_or_else(|e| panic!("writer {w} panicked: {e}"));
        if let Err(e) = outcome {
            panic!("{e}");
        }
    }
    drop(rt);

    let acks = shared.acks();
    let attempted = shared.attempted.lock().expect("attempted lock").clone();
    eprintln!(
        "{} puts acknowledged of {} keys attempted",
        acks.len(),
        attempted.len()
    );

    // Each acknowledged put got its own revision, and a writer's puts, each sent after the
    // previous one was acknowledged, got increasing revisions (real-time order).
    let revisions: BTreeSet<i64> = acks.iter().map(|a| a.revision).collect();
    assert_eq!(
        revisions.len(),
        acks.len(),
        "two acknowledged puts share a revision"
    );
    for w in 0..WRITERS {
        let mine: Vec<i64> = acks
            .iter()
            .filter(|a| a.writer == w)
            .map(|a| a.revision)
            .collect();
        assert!(
            mine.windows(2).all(|p| p[0] < p[1]),
            "writer {w}: revisions not increasing: {mine:?}"
        );
    }

    // Every member, the restarted one included, answers a serializable read (its own applied
    // state) identical to a linearizable read: same revision, same keys, values and revisions.
    // Polled, because the restarted member may still be catching up.
    let survivor = (0..3).find(|&i| i != old_leader).expect("a survivor");
    let mut agreed = None;
    let caught_up = wait_until(CATCH_UP_BOUND, "every member serves the same state", || {
        let linearizable = read_all(&endpoints[survivor], false);
        let serializable: Vec<_> = (0..3).map(|i| read_all(&endpoints[i], true)).collect();
        match &linearizable {
            Ok(lin) if serializable.iter().all(|s| s.as_ref() == Ok(lin)) => {
                agreed = Some(lin.clone());
                Ok(())
            }
            _ => {
                // Only the revisions, or an error: the full state would drown the message.
                let summary = |r: &Result<Range, String>| match r {
                    Ok(r) => format!("revision {} with {} keys", r.revision, r.kvs.len()),
                    Err(e) => e.clone(),
                };
                Err(format!(
                    "linearizable at n{}: {}; serializable at n1, n2, n3: {:?}",
                    survivor + 1,
                    summary(&linearizable),
                    serializable.iter().map(summary).collect::<Vec<_>>()
                ))
            }
        }
    });
    let state = agreed.expect("set when the wait succeeded");
    eprintln!("the restarted member matched the others {caught_up:?} after the load stopped");

    let by_key: BTreeMap<&str, &Kv> = state.kvs.iter().map(|kv| (kv.key.as_str(), kv)).collect();
    for ack in &acks {
        let kv = by_key
            .get(ack.key.as_str())
            .unwrap_or_else(|| panic!("acknowledged put lost: {ack:?}"));
        assert_eq!(kv.value, ack.value, "{ack:?}");
        // A retried put may have been applied twice (the first attempt's fate was unknown), so
        // the key's last write is at or after the acknowledged one.
        assert!(kv.mod_revision >= ack.revision, "{ack:?} vs {kv:?}");
        assert!(
            ack.revision <= state.revision,
            "{ack:?} after {}",
            state.revision
        );
    }
    for kv in &state.kvs {
        assert!(attempted.contains(&kv.key), "a key nobody wrote: {kv:?}");
    }
}
