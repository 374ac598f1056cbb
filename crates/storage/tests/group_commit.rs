//! Group commit on a thread, on real files: one completion per sync, tags in order, fewer
//! syncs than submissions under load, and everything durable on reopen.

mod common;

use common::*;
use std::sync::mpsc;
use storage::group::{Completion, GroupCommit, GroupCommitOptions};
use storage::{StdFs, Wal, WalOptions};

#[test]
fn many_submissions_share_few_syncs_and_complete_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let options = WalOptions::with_sizes(1 << 20, 64 << 10);
    let (wal, _) = Wal::open(StdFs::new(), tmp.path(), options.clone()).unwrap();
    let (tx, rx) = mpsc::channel();
    let group = GroupCommit::spawn(
        wal,
        GroupCommitOptions {
            queue_depth: 64,
            group_submissions_max: 256,
        },
        move |c| {
            let _ = tx.send(c);
        },
    )
    .unwrap();
    let submissions = 2000u64;
    for tag in 1..=submissions {
        group.submit(vec![accept(tag, 1, 64)], tag).unwrap();
    }
    let wal = group_shutdown(group, submissions);
    let completions: Vec<Completion> = rx.try_iter().collect();
    let mut last = 0;
    for c in &completions {
        match c {
            Completion::Durable { tag } => {
                assert!(*tag > last, "tags out of order: {tag} after {last}");
                last = *tag;
            }
            Completion::Failed { error, .. } => panic!("{error}"),
        }
    }
    assert_eq!(last, submissions);
    assert!(
        (completions.len() as u64) < submissions / 2,
        "{} syncs for {submissions} submissions",
        completions.len()
    );
    drop(wal);
    let (_, rec) = Wal::open(StdFs::new(), tmp.path(), options).unwrap();
    assert_eq!(rec.state.entries.len() as u64, submissions);
}

fn group_shutdown(group: GroupCommit<StdFs>, submissions: u64) -> Wal<StdFs> {
    let stats = group.stats();
    assert!(stats.records <= submissions);
    group.shutdown().unwrap()
}

#[test]
fn after_a_failed_sync_every_later_group_fails() {
    let fs = storage::memfs::MemFs::new();
    let (wal, _) = Wal::open(fs.clone(), "/d", WalOptions::small()).unwrap();
    let (tx, rx) = mpsc::channel();
    let group = GroupCommit::spawn(wal, GroupCommitOptions::default(), move |c| {
        let _ = tx.send(c);
    })
    .unwrap();
    fs.fail_next_sync(&std::path::Path::new("/d").join(storage::wal::segment_name(1)));
    group.submit(vec![promise(1)], 1).unwrap();
    group.submit(vec![promise(2)], 2).unwrap();
    let wal = group.shutdown().unwrap();
    assert!(wal.is_poisoned());
    let completions: Vec<Completion> = rx.try_iter().collect();
    assert!(!completions.is_empty());
    assert!(completions
        .iter()
        .all(|c| matches!(c, Completion::Failed { .. })));
}

#[test]
fn stats_count_one_sync_per_group() {
    let tmp = tempfile::tempdir().unwrap();
    let (wal, _) = Wal::open(StdFs::new(), tmp.path(), WalOptions::small()).unwrap();
    let (tx, rx) = mpsc::sync_channel(1024);
    let group = GroupCommit::spawn(wal, GroupCommitOptions::default(), move |c| {
        let _ = tx.send(c);
    })
    .unwrap();
    for tag in 1..=300 {
        group.submit(vec![promise(tag)], tag).unwrap();
    }
    // Wait for the last completion, then read the counters.
    let mut seen = 0;
    while seen < 300 {
        match rx.recv().unwrap() {
            Completion::Durable { tag } => seen = tag,
            Completion::Failed { error, .. } => panic!("{error}"),
        }
    }
    let stats = group.stats();
    assert_eq!(stats.records, 300);
    assert_eq!(stats.syncs, stats.batches);
    assert!(stats.syncs <= 300 && stats.syncs >= 1);
    assert!(stats.bytes > 300 * 17);
    let wal = group.shutdown().unwrap();
    assert_eq!(wal.durable_lsn(), wal.last_lsn());
}

#[test]
fn a_queued_compaction_drops_the_segments_a_snapshot_covers() {
    let tmp = tempfile::tempdir().unwrap();
    let options = WalOptions::with_sizes(64 << 10, 16 << 10);
    let (wal, _) = Wal::open(StdFs::new(), tmp.path(), options.clone()).unwrap();
    let group = GroupCommit::spawn(wal, GroupCommitOptions::default(), |_| {}).unwrap();
    for slot in 1..=400 {
        group.submit(vec![accept(slot, 1, 512)], slot).unwrap();
    }
    // Refused before a snapshot exists: nothing is lost.
    group.compact(paxos::Slot(300)).unwrap();
    let mut writer =
        storage::SnapshotWriter::create(StdFs::new(), tmp.path(), paxos::Slot(300)).unwrap();
    writer.write(b"state through 300").unwrap();
    writer.finish().unwrap();
    group.compact(paxos::Slot(300)).unwrap();
    let wal = group.shutdown().unwrap();
    let first = wal.segments().first().unwrap().index;
    assert!(
        first > 1,
        "the covered segments are gone (first is {first})"
    );
    drop(wal);
    let (_, rec) = Wal::open(StdFs::new(), tmp.path(), options).unwrap();
    assert_eq!(rec.state.compacted_through, paxos::Slot(300));
    assert_eq!(rec.state.entries.keys().last(), Some(&paxos::Slot(400)));
}

/// `spawn_observed` reports every successful group before its completion: the records and
/// bytes of all groups add up to what was submitted and appended.
#[test]
fn the_sync_observer_sees_every_group_and_its_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let options = WalOptions::with_sizes(1 << 20, 64 << 10);
    let (wal, _) = Wal::open(StdFs::new(), tmp.path(), options).unwrap();
    let (tx, rx) = mpsc::channel();
    let (otx, orx) = mpsc::channel();
    let group = GroupCommit::spawn_observed(
        wal,
        GroupCommitOptions::default(),
        move |c| {
            let _ = tx.send(c);
        },
        move |o| {
            let _ = otx.send(o);
        },
    )
    .unwrap();
    let submissions = 50u64;
    for tag in 1..=submissions {
        group.submit(vec![accept(tag, 1, 64)], tag).unwrap();
    }
    let _wal = group.shutdown().unwrap();
    let observed: Vec<storage::group::SyncObserved> = orx.try_iter().collect();
    let completions = rx.try_iter().count();
    assert_eq!(observed.len(), completions, "one observation per sync");
    assert_eq!(observed.iter().map(|o| o.records).sum::<u64>(), submissions);
    let bytes: u64 = observed.iter().map(|o| o.bytes).sum();
    assert!(bytes >= submissions * 64, "{bytes} bytes observed");
}

/// `try_submit` never waits: with the commit thread held inside a completion and the queue
/// full, it hands the batch back untouched; once the thread moves on, the same batch goes in
/// and everything is durable in order.
#[test]
fn try_submit_hands_the_batch_back_when_the_queue_is_full() {
    let tmp = tempfile::tempdir().unwrap();
    let options = WalOptions::with_sizes(1 << 20, 64 << 10);
    let (wal, _) = Wal::open(StdFs::new(), tmp.path(), options.clone()).unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    let (hold_tx, hold_rx) = mpsc::channel::<()>();
    let group = GroupCommit::spawn(
        wal,
        GroupCommitOptions {
            queue_depth: 1,
            group_submissions_max: 1,
        },
        move |c| {
            let _ = done_tx.send(c);
            // The commit thread waits here until the test lets it go on.
            let _ = hold_rx.recv();
        },
    )
    .unwrap();
    assert!(group
        .try_submit(vec![accept(1, 1, 64)], 1)
        .unwrap()
        .is_none());
    // The first group completed and the thread is held: one more fills the queue.
    assert!(matches!(
        done_rx.recv().unwrap(),
        Completion::Durable { tag: 1 }
    ));
    assert!(group
        .try_submit(vec![accept(2, 1, 64)], 2)
        .unwrap()
        .is_none());
    let back = group
        .try_submit(vec![accept(3, 1, 64)], 3)
        .unwrap()
        .expect("a full queue hands the batch back");
    assert_eq!(back, vec![accept(3, 1, 64)]);
    // Released, the thread drains the queue; the batch handed back goes in by `submit`.
    hold_tx.send(()).unwrap();
    group.submit(back, 3).unwrap();
    for _ in 0..2 {
        hold_tx.send(()).unwrap();
    }
    let mut last = 1;
    while last < 3 {
        match done_rx.recv().unwrap() {
            Completion::Durable { tag } => {
                assert!(tag > last);
                last = tag;
            }
            Completion::Failed { error, .. } => panic!("{error}"),
        }
    }
    drop(hold_tx);
    let wal = group.shutdown().unwrap();
    drop(wal);
    let (_, rec) = Wal::open(StdFs::new(), tmp.path(), options).unwrap();
    assert_eq!(rec.state.entries.len(), 3);
}
