//! Crash consistency on real files with a real process kill.
//!
//! The test binary re-executes itself as a child (`SYNOD_CRASH_CHILD=<dir>`), which appends
//! batches of `Accept`s to a `Wal<StdFs>`, syncs each one and only then prints `ack <last
//! slot>`. The parent SIGKILLs it at a seeded random moment, reopens the directory itself and
//! checks that every acknowledged slot is there with the exact value the child wrote, that
//! nothing beyond the last acknowledgement is half-present (only the one unacknowledged batch
//! may be there, and then whole), and that slots are contiguous. Then it restarts the child on
//! the same directory and repeats.
//!
//! A SIGKILL keeps the page cache, so this exercises the process-crash half of the argument
//! in `docs/storage-format.md` (partial writes, interrupted rotations, compactions and
//! snapshots); power loss is the MemFs tests' job.
//!
//! `SYNOD_CRASH_CYCLES=<n>` (default 30) and `SYNOD_CRASH_SEED=<u64>` steer a longer run:
//! `SYNOD_CRASH_CYCLES=1000 cargo test -p synod-storage --release --test crash_consistency -- --nocapture`

use paxos::multi::{ClientId, Command, CommandId, DurableEntry, PersistOp, Value};
use paxos::{Ballot, NodeId, Slot};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};
use storage::wal::Repair;
use storage::{read_snapshot_body, SnapshotWriter, StdFs, Wal, WalOptions};

const CHILD_ENV: &str = "SYNOD_CRASH_CHILD";
const TEST_NAME: &str = "sigkill_at_random_moments_loses_no_acknowledged_batch";
/// Small segments so that rotation (and compaction) happen every few dozen batches.
const SEGMENT_BYTES: u64 = 256 << 10;
const RECORD_BYTES_MAX: u64 = 128 << 10;
/// The child snapshots and compacts after every this many batches.
const SNAPSHOT_EVERY_BATCHES: u64 = 50;
/// A child never killed (the parent died) stops on its own after this long.
const CHILD_LIFETIME: Duration = Duration::from_secs(120);

fn options() -> WalOptions {
    WalOptions::with_sizes(SEGMENT_BYTES, RECORD_BYTES_MAX)
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn the_ballot() -> Ballot {
    Ballot::new(1, NodeId(1))
}

/// Records in the batch that starts at `first`: 1..=16, a function of the slot alone so the
/// parent knows the child's batch boundaries.
fn batch_len(first: u64) -> u64 {
    1 + splitmix(first ^ 0xBA7C) % 16
}

/// The payload size of `slot`: mostly small, one in eight between 4 and 12 KiB so records
/// span several sectors (and the 4 KiB page).
fn payload_len(slot: u64) -> usize {
    let h = splitmix(slot);
    if h & 7 == 0 {
        4096 + (h >> 8) as usize % 8192
    } else {
        (h >> 8) as usize % 600
    }
}

/// The value the child writes for `slot`, recomputed by the parent.
fn value_of(slot: u64) -> Value {
    let seed = splitmix(slot ^ 0x5EED);
    let payload: Vec<u8> = (0..payload_len(slot))
        .map(|i| (seed.wrapping_add(i as u64 * 0x9E37) >> 13) as u8)
        .collect();
    Value::Batch(vec![Command {
        id: CommandId {
            client: ClientId(7),
            seq: slot,
        },
        payload: payload.into(),
    }])
}

fn accept_of(slot: u64) -> PersistOp {
    PersistOp::Accept {
        slot: Slot(slot),
        ballot: the_ballot(),
        value: value_of(slot),
    }
}

fn snapshot_body(through: u64) -> Vec<u8> {
    let mut body = format!("state machine through slot {through};").into_bytes();
    body.resize(
        body.len() + (splitmix(through) % 20_000) as usize,
        (through % 251) as u8,
    );
    body
}

/// The test, or, inside the re-executed child, the child's loop.
#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_batch() {
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        child(Path::new(&dir));
        return;
    }
    parent();
}

/// Appends, syncs and acknowledges batches until killed.
fn child(dir: &Path) {
    let (mut wal, recovered) = Wal::open(StdFs::new(), dir, options()).expect("child open");
    let mut last = recovered
        .state
        .entries
        .keys()
        .next_back()
        .map_or(recovered.state.compacted_through.0, |s| s.0);
    let mut stdout = std::io::stdout().lock();
    let started = Instant::now();
    let mut batches = 0u64;
    let mut last_snapshot_batch = 0u64;
    while started.elapsed() < CHILD_LIFETIME {
        let first = last + 1;
        let mut ops = Vec::new();
        if recovered.state.promised.is_none() && batches == 0 {
            ops.push(PersistOp::Promise {
                ballot: the_ballot(),
            });
        }
        ops.extend((first..first + batch_len(first)).map(accept_of));
        wal.append(&ops).expect("child append");
        wal.sync().expect("child sync");
        last = first + batch_len(first) - 1;
        // Only a synced batch is acknowledged; a failed write means the parent is gone.
        if writeln!(stdout, "ack {last}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return;
        }
        batches += 1;
        // Prepare the next segment a little at a time, so kills also land mid-preparation and
        // rotations into a prepared spare.
        wal.prepare_next_segment(32 << 10).expect("prepare spare");
        if batches - last_snapshot_batch >= SNAPSHOT_EVERY_BATCHES {
            last_snapshot_batch = batches;
            let mut w = SnapshotWriter::create(StdFs::new(), dir, Slot(last)).expect("snapshot");
            w.write(&snapshot_body(last)).expect("snapshot write");
            w.finish().expect("snapshot finish");
            wal.compact(Slot(last)).expect("compact");
        }
    }
}

#[derive(Default)]
struct Totals {
    cycles: u64,
    torn_tails: u64,
    leftovers: u64,
    records_verified: u64,
    unacked_batches_kept: u64,
    acks: u64,
    compactions_seen: u64,
}

fn parent() {
    let cycles: u64 = std::env::var("SYNOD_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let seed: u64 = std::env::var("SYNOD_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5EED_C0DE);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("member");
    let exe = std::env::current_exe().unwrap();
    let mut totals = Totals::default();
    // The highest slot acknowledged, or recovered by an earlier cycle (the child builds on
    // what it recovered): never goes backwards across cycles.
    let mut floor = 0u64;
    let started = Instant::now();
    for cycle in 0..cycles {
        let acks_wanted = rng.next_u64() % 200;
        let delay = Duration::from_micros(rng.next_u64() % 30_000);
        let last_ack = run_and_kill(&exe, &dir, acks_wanted, delay, &mut totals);
        floor = floor.max(last_ack.unwrap_or(0));
        floor = verify(&dir, floor, cycle, &mut totals);
        totals.cycles += 1;
    }
    println!(
        "crash consistency (seed {seed}): {} kill/restart cycles in {:.1} s, {} acks, {} torn \
         tails repaired, {} leftover tmp files removed, {} unacknowledged batches found whole, \
         {} snapshots seen, {} records verified",
        totals.cycles,
        started.elapsed().as_secs_f64(),
        totals.acks,
        totals.torn_tails,
        totals.leftovers,
        totals.unacked_batches_kept,
        totals.compactions_seen,
        totals.records_verified
    );
}

/// Starts a child, waits for `acks_wanted` acknowledgements and `delay`, SIGKILLs it, and
/// returns the last slot it acknowledged (every line it printed is read, also after the kill).
fn run_and_kill(
    exe: &Path,
    dir: &Path,
    acks_wanted: u64,
    delay: Duration,
    totals: &mut Totals,
) -> Option<u64> {
    let mut child = Process::new(exe)
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut last_ack = None;
    let mut acks = 0u64;
    let parse = |line: &str, last_ack: &mut Option<u64>| -> bool {
        // libtest prints its own lines ("running 1 test"); only ours start with "ack ".
        match line.strip_prefix("ack ") {
            Some(n) => {
                let slot: u64 = n.trim().parse().unwrap();
                assert!(last_ack.is_none_or(|a| a < slot), "acks must increase");
                *last_ack = Some(slot);
                true
            }
            None => false,
        }
    };
    while acks < acks_wanted {
        match lines.next() {
            Some(line) => {
                if parse(&line.unwrap(), &mut last_ack) {
                    acks += 1;
                }
            }
            None => {
                let status = child.wait().unwrap();
                panic!("the child exited before it was killed: {status}");
            }
        }
    }
    std::thread::sleep(delay);
    // Child::kill is SIGKILL on unix: no destructor, no flush, no chance to finish a write.
    child.kill().unwrap();
    child.wait().unwrap();
    for line in lines {
        if parse(&line.unwrap(), &mut last_ack) {
            acks += 1;
        }
    }
    totals.acks += acks;
    last_ack
}

/// Reopens the log, checks it against `acked` (everything through it must be there) and
/// returns the last slot recovered.
fn verify(dir: &Path, acked: u64, cycle: u64, totals: &mut Totals) -> u64 {
    let (wal, recovered) = match Wal::open(StdFs::new(), dir, options()) {
        Ok(r) => r,
        Err(e) => panic!("cycle {cycle}: recovery failed after a SIGKILL: {e}"),
    };
    drop(wal);
    for repair in &recovered.repairs {
        match repair {
            Repair::TornTail { .. } => totals.torn_tails += 1,
            Repair::LeftoverRemoved { .. } => totals.leftovers += 1,
        }
    }
    let state = &recovered.state;
    if acked > 0 {
        assert_eq!(
            state.promised,
            Some(the_ballot()),
            "cycle {cycle}: promise lost"
        );
    }
    let through = state.compacted_through.0;
    if let Some(snap) = &recovered.snapshot {
        totals.compactions_seen += 1;
        assert!(
            through <= acked,
            "cycle {cycle}: snapshot {through} beyond ack {acked}"
        );
        let body = read_snapshot_body(&StdFs::new(), snap).unwrap();
        assert_eq!(body, snapshot_body(through), "cycle {cycle}: snapshot body");
        totals.records_verified += 1;
    }
    // Slots are contiguous from the snapshot on, each exactly as written.
    let mut expected = through + 1;
    for (slot, entry) in &state.entries {
        assert_eq!(
            slot.0, expected,
            "cycle {cycle}: slot {expected} is missing"
        );
        let want = DurableEntry {
            ballot: the_ballot(),
            value: value_of(slot.0),
            chosen: false,
        };
        assert_eq!(entry, &want, "cycle {cycle}: slot {} differs", slot.0);
        expected += 1;
        totals.records_verified += 1;
    }
    let last = expected - 1;
    assert!(
        last >= acked,
        "cycle {cycle}: acknowledged through slot {acked} but only {last} recovered"
    );
    if last > acked {
        // Beyond the last ack only the batch being written at the kill may be there, whole.
        let whole = acked + batch_len(acked + 1);
        assert_eq!(
            last,
            whole,
            "cycle {cycle}: acked through {acked}; the next batch is {}..={whole}, but the log \
             ends at {last}: a batch is half-present",
            acked + 1
        );
        totals.unacked_batches_kept += 1;
    }
    last
}
