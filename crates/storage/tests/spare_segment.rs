//! The next segment prepared ahead of its rotation (`Wal::prepare_next_segment`): rotation
//! uses it, a crash with a spare (complete or partial, synced or not) recovers exactly what
//! was synced without a repair report, and the spare never becomes part of the log early.

mod common;

use common::*;
use paxos::multi::PersistOp;
use rand_chacha::{rand_core::SeedableRng, ChaCha8Rng};
use std::path::Path;
use storage::group::{Completion, GroupCommit, GroupCommitOptions};
use storage::memfs::MemFs;
use storage::{StdFs, Vfs, Wal, WalOptions};

const DIR: &str = "/data";

fn tiny() -> WalOptions {
    WalOptions::with_sizes(4096, 1024)
}

fn names(fs: &impl Vfs, dir: &Path) -> Vec<String> {
    fs.list(dir).unwrap()
}

#[test]
fn rotation_renames_a_prepared_spare_and_the_log_reads_back() {
    let fs = MemFs::new();
    let (mut wal, _) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
    // Step by step: 1 KiB at a time, incomplete until the whole segment is filled.
    let mut steps = 0;
    while !wal.prepare_next_segment(1024).unwrap() {
        steps += 1;
    }
    assert_eq!(
        steps, 3,
        "4096 bytes in 1 KiB steps: three incomplete, the fourth completes"
    );
    assert!(names(&fs, Path::new(DIR)).contains(&"wal-0000000000000002.spare".to_string()));
    let mut batches: Vec<Vec<PersistOp>> = Vec::new();
    for slot in 1..=40 {
        let b = vec![accept(slot, 1, 300)];
        wal.append(&b).unwrap();
        batches.push(b);
        // Prepare every successor as soon as the previous spare was used.
        wal.prepare_next_segment(u64::MAX).unwrap();
    }
    wal.sync().unwrap();
    assert!(wal.segments().len() > 2);
    let listed = names(&fs, Path::new(DIR));
    assert!(!listed.iter().any(|n| n.ends_with(".tmp")), "{listed:?}");
    drop(wal);
    let (_, rec) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
    assert!(rec.repairs.is_empty(), "{:?}", rec.repairs);
    assert_eq!(rec.state, replay(&Default::default(), &batches));
    let listed = names(&fs, Path::new(DIR));
    assert!(!listed.iter().any(|n| n.ends_with(".spare")), "{listed:?}");
}

#[test]
fn a_crash_with_a_spare_in_any_state_recovers_exactly_what_was_synced() {
    for seed in 0..80u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let fs = MemFs::new();
        let (mut wal, _) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
        let mut synced = Vec::new();
        let mut pending = Vec::new();
        let total = 3 + seed % 15;
        for slot in 1..=total {
            let b = vec![accept(
                slot,
                1,
                200 + (seed as usize * 37 + slot as usize * 11) % 500,
            )];
            wal.append(&b).unwrap();
            pending.push(b);
            if (seed + slot) % 3 == 0 {
                wal.sync().unwrap();
                synced.append(&mut pending);
            }
            // A spare at every stage: partial, complete, or none yet.
            let budget = [0u64, 512, 1500, u64::MAX][((seed + slot) % 4) as usize];
            if budget > 0 {
                wal.prepare_next_segment(budget).unwrap();
            }
        }
        drop(wal);
        fs.crash(&mut rng);
        let (_, rec) =
            Wal::open(fs.clone(), DIR, tiny()).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        // Unsynced batches may or may not survive, but only as a prefix, and whole.
        let base = replay(&Default::default(), &synced);
        let mut ok = rec.state == base;
        let mut acc = synced.clone();
        for b in &pending {
            acc.push(b.clone());
            ok |= rec.state == replay(&Default::default(), &acc);
        }
        assert!(
            ok,
            "seed {seed}: recovered state is not a synced prefix plus whole batches"
        );
        assert!(
            !names(&fs, Path::new(DIR))
                .iter()
                .any(|n| n.ends_with(".spare")),
            "seed {seed}: spare left behind"
        );
    }
}

#[test]
fn the_commit_thread_prepares_the_next_segment_while_idle() {
    let tmp = tempfile::tempdir().unwrap();
    let options = WalOptions::with_sizes(1 << 20, 64 << 10);
    let (wal, _) = Wal::open(StdFs::new(), tmp.path(), options.clone()).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let gc = GroupCommit::spawn(wal, GroupCommitOptions::default(), move |c| {
        tx.send(c).unwrap();
    })
    .unwrap();
    gc.submit(vec![accept(1, 1, 100)], 1).unwrap();
    assert!(matches!(rx.recv().unwrap(), Completion::Durable { tag: 1 }));
    // Idle now: the spare for segment 2 appears and reaches its full size.
    let spare = tmp.path().join("wal-0000000000000002.spare");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::metadata(&spare).map_or(true, |m| m.len() < 1 << 20) {
        assert!(std::time::Instant::now() < deadline, "no spare prepared");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Enough records to rotate twice; every one is durable and reads back.
    let mut batches = vec![vec![accept(1, 1, 100)]];
    for slot in 2..=60u64 {
        let b = vec![accept(slot, 1, 40 << 10)];
        gc.submit(b.clone(), slot).unwrap();
        batches.push(b);
    }
    let mut last = 0;
    while last < 60 {
        match rx.recv().unwrap() {
            Completion::Durable { tag } => last = tag,
            Completion::Failed { error, .. } => panic!("{error}"),
        }
    }
    let wal = gc.shutdown().unwrap();
    assert!(wal.segments().len() >= 3);
    drop(wal);
    let (_, rec) = Wal::open(StdFs::new(), tmp.path(), options).unwrap();
    assert!(rec.repairs.is_empty(), "{:?}", rec.repairs);
    assert_eq!(rec.state, replay(&Default::default(), &batches));
}
