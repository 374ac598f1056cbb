//! The background segment preparer (`Wal::start_background_preparer`) and the spare's whole
//! life under crashes: a crash injected before *every* file-system operation of a run that
//! prepares spares (creating, each zero-fill step, each sync) and rotates into them (header
//! write, fsync, rename, directory fsync), over many seeds, must recover exactly a synced
//! prefix plus whole unsynced batches, leave no spare behind, and leave a writable log.

mod common;

use common::crash_fs::CrashFs;
use common::*;
use paxos::multi::PersistOp;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage::memfs::MemFs;
use storage::{Repair, StdFs, Vfs, Wal, WalOptions};

const DIR: &str = "/data";

fn tiny() -> WalOptions {
    WalOptions::with_sizes(4096, 1024)
}

/// What one run wrote: batches acknowledged by a successful sync, and those appended after.
struct Run {
    synced: Vec<Vec<PersistOp>>,
    pending: Vec<Vec<PersistOp>>,
}

/// Appends 14 batches (rotating several times at 4 KiB segments), syncing every other one,
/// preparing spares either synchronously in 1 KiB steps or on the background preparer. Stops
/// at the first error (the simulated power loss).
fn run(fs: CrashFs, background: bool) -> Run {
    let mut out = Run {
        synced: Vec::new(),
        pending: Vec::new(),
    };
    let Ok((mut wal, _)) = Wal::open(fs, DIR, tiny()) else {
        return out;
    };
    if background && wal.start_background_preparer().is_err() {
        return out;
    }
    for slot in 1..=14u64 {
        let b = vec![accept(slot, 1, 300 + (slot as usize * 53) % 400)];
        if wal.append(&b).is_err() {
            break;
        }
        out.pending.push(b);
        if slot % 2 == 0 {
            if wal.sync().is_err() {
                break;
            }
            out.synced.append(&mut out.pending);
        }
        if !background && wal.prepare_next_segment(1024).is_err() {
            break;
        }
    }
    // Dropping the log joins the preparer: nothing touches the disk after this.
    drop(wal);
    out
}

fn check_recovery(fs: &MemFs, run: &Run, what: &str) {
    let (mut wal, rec) =
        Wal::open(fs.clone(), DIR, tiny()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let mut acc = run.synced.clone();
    let mut ok = rec.state == replay(&Default::default(), &acc);
    for b in &run.pending {
        acc.push(b.clone());
        ok |= rec.state == replay(&Default::default(), &acc);
    }
    assert!(
        ok,
        "{what}: recovered state is not the synced prefix plus whole batches"
    );
    for r in &rec.repairs {
        match r {
            Repair::TornTail { .. } => {}
            Repair::LeftoverRemoved { path } => assert!(
                path.to_string_lossy().ends_with(".tmp"),
                "{what}: unexpected leftover {path:?}"
            ),
        }
    }
    let names = fs.list(Path::new(DIR)).unwrap();
    assert!(
        !names.iter().any(|n| n.ends_with(".spare")),
        "{what}: spare left behind: {names:?}"
    );
    // Still a log: one more batch is durable and reads back.
    let extra = vec![accept(1000, 2, 100)];
    wal.append(&extra).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let (_, again) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
    let mut expected = rec.state.clone();
    for op in &extra {
        expected.apply(op);
    }
    assert_eq!(again.state, expected, "{what}: the log after recovery");
}

/// How many mutating operations a whole run does when nothing crashes.
fn count_ops(background: bool) -> u64 {
    let fs = CrashFs::new(MemFs::new(), u64::MAX, 0);
    let ops = Arc::clone(&fs.ops);
    let r = run(fs, background);
    assert_eq!(
        r.synced.len(),
        14,
        "the run without a crash syncs everything"
    );
    ops.load(Ordering::SeqCst)
}

#[test]
fn a_crash_before_every_step_of_synchronous_spare_preparation_and_rotation_recovers() {
    let total = count_ops(false);
    eprintln!("synchronous run: {total} mutating operations, a crash before each");
    assert!(total > 40, "the run does the steps it is meant to: {total}");
    for crash_at in 1..=total + 1 {
        for seed in 0..6u64 {
            let mem = MemFs::new();
            let r = run(CrashFs::new(mem.clone(), crash_at, seed), false);
            check_recovery(&mem, &r, &format!("crash at op {crash_at}, seed {seed}"));
        }
    }
}

#[test]
fn a_crash_at_any_point_with_the_background_preparer_recovers() {
    let total = count_ops(true);
    eprintln!("background run: {total} mutating operations, a crash before each");
    assert!(total > 40, "the run does the steps it is meant to: {total}");
    // The preparer's thread interleaves its steps with the log's as timing has it, so each
    // crash point is tried under several seeds (and interleavings).
    for crash_at in 1..=total + 1 {
        for seed in 0..4u64 {
            let mem = MemFs::new();
            let r = run(CrashFs::new(mem.clone(), crash_at, seed), true);
            check_recovery(&mem, &r, &format!("crash at op {crash_at}, seed {seed}"));
        }
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn the_background_preparer_keeps_the_next_segment_ready_and_rotation_renames_it() {
    let fs = MemFs::new();
    let (mut wal, _) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
    assert!(!wal.has_background_preparer());
    wal.start_background_preparer().unwrap();
    wal.start_background_preparer().unwrap(); // idempotent
    assert!(wal.has_background_preparer());
    let spare = |index: u64| Path::new(DIR).join(format!("wal-{index:016x}.spare"));
    wait_for("spare 2", || {
        fs.files()
            .iter()
            .any(|f| f.path == spare(2) && f.len == 4096 && !f.dirty)
    });
    let mut batches = Vec::new();
    let mut seen_spares = 0;
    for slot in 1..=40u64 {
        let b = vec![accept(slot, 1, 300)];
        wal.append(&b).unwrap();
        wal.sync().unwrap();
        batches.push(b);
        // Never a `.tmp`: every rotation found (or waited for) its spare.
        let names = fs.list(Path::new(DIR)).unwrap();
        assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
        let next = wal.segments().last().unwrap().index + 1;
        if names.contains(&format!("wal-{next:016x}.spare")) {
            seen_spares += 1;
        }
    }
    assert!(
        wal.segments().len() >= 4,
        "{} segments",
        wal.segments().len()
    );
    assert!(
        seen_spares > 0,
        "the successor of a rotated segment is prepared"
    );
    // The synchronous entry point has nothing to do while the thread runs.
    assert!(wal.prepare_next_segment(1).unwrap());
    drop(wal);
    let (_, rec) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
    assert!(rec.repairs.is_empty(), "{:?}", rec.repairs);
    assert_eq!(rec.state, replay(&Default::default(), &batches));
    let names = fs.list(Path::new(DIR)).unwrap();
    assert!(!names.iter().any(|n| n.ends_with(".spare")), "{names:?}");
}

#[test]
fn a_failing_preparer_leaves_rotation_to_fill_inline() {
    let mem = MemFs::new();
    let fs = CrashFs {
        fail_spares: true,
        ..CrashFs::new(mem.clone(), u64::MAX, 0)
    };
    let (mut wal, _) = Wal::open(fs, DIR, tiny()).unwrap();
    wal.start_background_preparer().unwrap();
    let mut batches = Vec::new();
    for slot in 1..=40u64 {
        let b = vec![accept(slot, 1, 300)];
        wal.append(&b).unwrap();
        wal.sync().unwrap();
        batches.push(b);
    }
    assert!(wal.segments().len() >= 3);
    assert!(!wal.is_poisoned(), "a failed spare is not a failed log");
    drop(wal);
    let (_, rec) = Wal::open(mem, DIR, tiny()).unwrap();
    assert_eq!(rec.state, replay(&Default::default(), &batches));
}

#[test]
fn the_background_preparer_on_real_files() {
    let tmp = tempfile::tempdir().unwrap();
    let options = WalOptions::with_sizes(1 << 20, 64 << 10);
    let (mut wal, _) = Wal::open(StdFs::new(), tmp.path(), options.clone()).unwrap();
    wal.start_background_preparer().unwrap();
    let mut batches = Vec::new();
    for slot in 1..=80u64 {
        let b = vec![accept(slot, 1, 40 << 10)];
        wal.append(&b).unwrap();
        if slot % 4 == 0 {
            wal.sync().unwrap();
        }
        batches.push(b);
    }
    wal.sync().unwrap();
    assert!(wal.segments().len() >= 3);
    let next = wal.segments().last().unwrap().index + 1;
    let spare = tmp.path().join(format!("wal-{next:016x}.spare"));
    wait_for("the next spare", || {
        std::fs::metadata(&spare).is_ok_and(|m| m.len() == 1 << 20)
    });
    drop(wal);
    let (_, rec) = Wal::open(StdFs::new(), tmp.path(), options).unwrap();
    assert!(rec.repairs.is_empty(), "{:?}", rec.repairs);
    assert_eq!(rec.state, replay(&Default::default(), &batches));
    assert!(!spare.exists(), "open removes the unused spare");
}

#[test]
fn the_log_keeps_its_auto_traits() {
    // The simulator and drivers move logs between threads and may share them: having a
    // preparer field must not take `Send` or `Sync` away.
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Wal<MemFs>>();
    send_sync::<Wal<StdFs>>();
}
