//! The write-ahead log on the simulated disk: crashes, torn writes and every corruption kind.

mod common;

use common::*;
use paxos::multi::{DurableState, PersistOp};
use paxos::Slot;
use rand_chacha::{rand_core::SeedableRng, ChaCha8Rng};
use std::path::{Path, PathBuf};
use storage::memfs::MemFs;
use storage::wal::{scan_records, RECORD_BATCH};
use storage::{Repair, SnapshotWriter, StorageError, Vfs, VfsFile, Wal, WalOptions};

const DIR: &str = "/data";

/// Tiny segments so a few records rotate.
fn tiny() -> WalOptions {
    WalOptions::with_sizes(4096, 1024)
}

fn open(fs: &MemFs, options: WalOptions) -> Result<(Wal<MemFs>, storage::Recovered), StorageError> {
    Wal::open(fs.clone(), DIR, options)
}

fn segment(index: u64) -> PathBuf {
    Path::new(DIR).join(storage::wal::segment_name(index))
}

/// Asserts `err` is corruption of `path` at `offset` whose text contains `needle`.
fn assert_corrupt(err: StorageError, path: &Path, offset: u64, needle: &str) {
    let text = err.to_string();
    match &err {
        StorageError::Corrupt {
            path: p, offset: o, ..
        } => {
            assert_eq!(p, path, "{text}");
            assert_eq!(*o, offset, "{text}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    assert!(text.contains(needle), "{text:?} lacks {needle:?}");
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(
        text.contains("restore this member's data directory"),
        "{text}"
    );
}

#[test]
fn append_sync_crash_reopen_returns_exactly_what_was_synced() {
    for seed in 0..60u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let fs = MemFs::new();
        let (mut wal, rec) = open(&fs, tiny()).unwrap();
        assert_eq!(rec.state, DurableState::default());
        let mut batches: Vec<Vec<PersistOp>> = Vec::new();
        let mut synced = 0;
        let total = 5 + seed % 20;
        for i in 1..=total {
            let batch = vec![
                promise(i),
                accept(i, i, (seed as usize * 37 + i as usize * 91) % 900),
            ];
            wal.append(&batch).unwrap();
            batches.push(batch);
            if i % 3 == 0 || i == total / 2 {
                wal.sync().unwrap();
                synced = batches.len();
            }
        }
        fs.crash(&mut rng);
        let (_wal, rec) = open(&fs, tiny()).unwrap();
        // Exactly a prefix of the batches, and at least every synced one.
        let k = (synced..=batches.len())
            .find(|k| replay(&DurableState::default(), &batches[..*k]) == rec.state);
        assert!(
            k.is_some(),
            "seed {seed}: recovered state is not a prefix ≥ {synced} synced batches"
        );
    }
}

#[test]
fn a_torn_final_record_is_truncated_reported_and_overwritten() {
    let mut torn_seen = 0;
    for seed in 0..200u64 {
        let fs = MemFs::new();
        let (mut wal, _) = open(&fs, WalOptions::small()).unwrap();
        let synced = vec![vec![promise(1), accept(1, 1, 100)]];
        wal.append(&synced[0]).unwrap();
        wal.sync().unwrap();
        // One large unsynced record spanning several sectors: a crash may tear it.
        wal.append(&[accept(2, 1, 3000)]).unwrap();
        let before = fs.counters().writes_torn;
        fs.crash(&mut ChaCha8Rng::seed_from_u64(seed));
        let torn = fs.counters().writes_torn > before;
        let (mut wal, rec) = open(&fs, WalOptions::small()).unwrap();
        let base = replay(&DurableState::default(), &synced);
        if torn {
            torn_seen += 1;
            assert_eq!(rec.state, base, "seed {seed}");
            assert!(
                matches!(rec.repairs.as_slice(), [Repair::TornTail { path, .. }] if *path == segment(1)),
                "seed {seed}: {:?}",
                rec.repairs
            );
            // A shorter record over the zeroed tail, then a clean reopen.
            wal.append(&[chosen(1, 1)]).unwrap();
            wal.sync().unwrap();
            drop(wal);
            let (_, again) = open(&fs, WalOptions::small()).unwrap();
            assert!(again.repairs.is_empty());
            assert!(again.state.entries[&Slot(1)].chosen);
        }
    }
    assert!(
        torn_seen > 10,
        "the crash model tore only {torn_seen} writes"
    );
}

#[test]
fn rotation_and_compaction_keep_the_promise_and_the_rebuilding_flag() {
    let fs = MemFs::new();
    let (mut wal, _) = open(&fs, tiny()).unwrap();
    wal.append(&[promise(5), PersistOp::RebuildStarted])
        .unwrap();
    for slot in 1..=40 {
        wal.append(&[accept(slot, 5, 300), chosen(slot, 5)])
            .unwrap();
    }
    wal.sync().unwrap();
    assert!(
        wal.segments().len() >= 4,
        "{} segments",
        wal.segments().len()
    );
    let mut snap = SnapshotWriter::create(fs.clone(), DIR, Slot(30)).unwrap();
    snap.write(b"state machine through 30").unwrap();
    snap.finish().unwrap();
    let removed = wal.compact(Slot(30)).unwrap();
    assert!(removed >= 2, "removed {removed}");
    assert!(!fs.exists(&segment(1)).unwrap());
    fs.crash(&mut ChaCha8Rng::seed_from_u64(3));
    let (_, rec) = open(&fs, tiny()).unwrap();
    assert_eq!(rec.state.promised, Some(ballot(5)));
    assert!(rec.state.rebuilding);
    assert_eq!(rec.state.compacted_through, Slot(30));
    assert_eq!(rec.snapshot.as_ref().map(|s| s.through), Some(Slot(30)));
    assert!(rec.state.entries.keys().all(|s| *s > Slot(30)));
    assert_eq!(rec.state.entries.len(), 10);
}

#[test]
fn compaction_without_a_covering_snapshot_is_refused() {
    let fs = MemFs::new();
    let (mut wal, _) = open(&fs, tiny()).unwrap();
    assert!(matches!(
        wal.compact(Slot(1)),
        Err(StorageError::Invalid(_))
    ));
}

/// Three sealed-or-active segments of synced records.
fn three_segments(fs: &MemFs) -> Wal<MemFs> {
    let (mut wal, _) = open(fs, tiny()).unwrap();
    wal.append(&[promise(2)]).unwrap();
    let mut slot = 1;
    while wal.segments().len() < 3 {
        wal.append(&[accept(slot, 2, 500)]).unwrap();
        wal.sync().unwrap();
        slot += 1;
    }
    wal.append(&[accept(slot, 2, 500)]).unwrap();
    wal.sync().unwrap();
    wal
}

fn batch_records(fs: &MemFs, path: &Path) -> Vec<storage::wal::RecordLocation> {
    scan_records(fs, Path::new(DIR))
        .unwrap()
        .into_iter()
        .filter(|r| r.path == path && r.kind == RECORD_BATCH)
        .collect()
}

#[test]
fn a_bit_flip_in_a_synced_record_is_corruption_at_its_offset() {
    let fs = MemFs::new();
    drop(three_segments(&fs));
    let target = &batch_records(&fs, &segment(2))[1];
    fs.flip_bit(&target.path, target.offset + 30, 3).unwrap();
    let err = open(&fs, tiny()).unwrap_err();
    assert_corrupt(err, &segment(2), target.offset, "checksum mismatch");
}

#[test]
fn a_bit_flip_in_the_final_synced_record_is_corruption_not_a_torn_write() {
    let fs = MemFs::new();
    drop(three_segments(&fs));
    let last = batch_records(&fs, &segment(3)).pop().unwrap();
    fs.flip_bit(&last.path, last.offset + 40, 0).unwrap();
    let err = open(&fs, tiny()).unwrap_err();
    assert_corrupt(err, &segment(3), last.offset, "not a torn final write");
}

#[test]
fn a_flipped_length_bit_is_corruption_not_a_torn_write_that_swallows_later_records() {
    // Found by the simulator: a length grown by a bit flip ran past the written area, which
    // looked torn, and recovery dropped every acknowledged record after it.
    for bit in [6, 7, 8 + 3, 16 + 1, 24 + 7] {
        let fs = MemFs::new();
        drop(three_segments(&fs));
        let records = batch_records(&fs, &segment(3));
        assert!(
            records.len() >= 2,
            "the last segment needs records after the victim"
        );
        let victim = &records[0];
        fs.flip_bit(&victim.path, victim.offset + bit / 8, (bit % 8) as u8)
            .unwrap();
        let err = open(&fs, tiny()).unwrap_err();
        assert_corrupt(err, &segment(3), victim.offset, "not a torn final write");
    }
}

#[test]
fn damage_covering_the_next_record_too_is_corruption_if_any_later_record_follows() {
    // Found by the simulator: a misdirected write, torn by a crash, covered a record and the
    // one after it; recovery looked only for the very next LSN, found none, and took the
    // damage for a torn tail, dropping the acknowledged records after it.
    let fs = MemFs::new();
    let mut wal = three_segments(&fs);
    for slot in 100..104 {
        wal.append(&[accept(slot, 2, 500)]).unwrap();
        wal.sync().unwrap();
    }
    drop(wal);
    let records = batch_records(&fs, &segment(3));
    assert!(
        records.len() >= 3,
        "need a record after the two damaged ones"
    );
    let (first, second) = (&records[0], &records[1]);
    let garbage = vec![0xA5u8; (second.offset + second.len - first.offset) as usize];
    let mut f = fs.open(&segment(3), storage::OpenMode::Existing).unwrap();
    f.write_at(&garbage, first.offset).unwrap();
    f.sync_data().unwrap();
    drop(f);
    let err = open(&fs, tiny()).unwrap_err();
    assert_corrupt(err, &segment(3), first.offset, "not a torn final write");
}

#[test]
fn a_misdirected_write_is_caught_by_its_lsn() {
    let fs = MemFs::new();
    let mut wal = three_segments(&fs);
    let victim = batch_records(&fs, &segment(3))[0].clone();
    fs.misdirect_next_write(&segment(3), victim.offset).unwrap();
    wal.append(&[chosen(1, 2)]).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let err = open(&fs, tiny()).unwrap_err();
    assert_corrupt(
        err,
        &segment(3),
        victim.offset,
        "records must be consecutive",
    );
    assert_eq!(fs.counters().misdirected_writes, 1);
}

#[test]
fn a_misdirected_write_past_the_end_is_non_zero_bytes_after_the_log() {
    let fs = MemFs::new();
    let mut wal = three_segments(&fs);
    fs.misdirect_next_write(&segment(3), 3000).unwrap();
    wal.append(&[chosen(1, 2)]).unwrap();
    wal.sync().unwrap();
    drop(wal);
    let err = open(&fs, tiny()).unwrap_err();
    assert_corrupt(
        err,
        &segment(3),
        3000,
        "non-zero bytes after the end of the log",
    );
}

#[test]
fn a_truncated_segment_is_corruption() {
    let fs = MemFs::new();
    drop(three_segments(&fs));
    fs.truncate(&segment(2), 2000).unwrap();
    let err = open(&fs, tiny()).unwrap_err();
    assert_corrupt(err, &segment(2), 2000, "shorter than the 4096 bytes");
}

#[test]
fn a_rolled_back_sealed_segment_leaves_a_gap_that_is_corruption() {
    let fs = MemFs::new();
    drop(three_segments(&fs));
    let records = batch_records(&fs, &segment(1));
    fs.rollback(&segment(1)).unwrap();
    let err = open(&fs, tiny()).unwrap_err();
    // The log of segment 1 now ends where its last record used to begin.
    let last = records.last().unwrap();
    assert_corrupt(err, &segment(1), last.offset, "records are missing");
}

#[test]
fn a_missing_segment_is_corruption_naming_the_next_one() {
    let fs = MemFs::new();
    drop(three_segments(&fs));
    fs.remove(&segment(2)).unwrap();
    fs.sync_dir(Path::new(DIR)).unwrap();
    let err = open(&fs, tiny()).unwrap_err();
    assert_corrupt(err, &segment(3), 0, "segment 2 is missing");
}

#[test]
fn non_zero_bytes_after_the_end_are_corruption() {
    let fs = MemFs::new();
    drop(three_segments(&fs));
    let mut f = fs.open(&segment(3), storage::OpenMode::Existing).unwrap();
    f.write_at(&[0xAB], 4000).unwrap();
    f.sync_data().unwrap();
    let err = open(&fs, tiny()).unwrap_err();
    assert_corrupt(err, &segment(3), 4000, "non-zero bytes after the end");
}

#[test]
fn a_wiped_log_under_a_snapshot_is_corruption() {
    let fs = MemFs::new();
    drop(three_segments(&fs));
    let mut snap = SnapshotWriter::create(fs.clone(), DIR, Slot(1)).unwrap();
    snap.write(b"x").unwrap();
    snap.finish().unwrap();
    for i in 1..=3 {
        fs.remove(&segment(i)).unwrap();
    }
    let err = open(&fs, tiny()).unwrap_err();
    assert!(err.to_string().contains("no WAL segment"), "{err}");
}

#[test]
fn a_record_above_the_limit_is_refused_and_nothing_is_written() {
    let fs = MemFs::new();
    let (mut wal, _) = open(&fs, tiny()).unwrap();
    let before = wal.last_lsn();
    let err = wal.append(&[accept(1, 1, 2000)]).unwrap_err();
    assert!(
        matches!(err, StorageError::RecordTooLarge { limit: 1024, .. }),
        "{err}"
    );
    assert_eq!(wal.last_lsn(), before);
    wal.append(&[accept(1, 1, 10)]).unwrap();
    wal.sync().unwrap();
}

#[test]
fn after_a_failed_fsync_the_log_refuses_writes() {
    let fs = MemFs::new();
    let (mut wal, _) = open(&fs, tiny()).unwrap();
    wal.append(&[promise(1)]).unwrap();
    fs.fail_next_sync(&segment(1));
    assert!(matches!(wal.sync(), Err(StorageError::Io { .. })));
    assert!(wal.is_poisoned());
    assert!(matches!(
        wal.append(&[promise(2)]),
        Err(StorageError::Poisoned { .. })
    ));
    assert!(matches!(wal.sync(), Err(StorageError::Poisoned { .. })));
}

#[test]
fn an_unsynced_rotation_loses_only_unacknowledged_records() {
    // The new segment's name is durable only after the directory fsync in sync().
    let fs = MemFs::new();
    let (mut wal, _) = open(&fs, tiny()).unwrap();
    let mut batches = Vec::new();
    for slot in 1..=5 {
        let b = vec![accept(slot, 1, 500)];
        wal.append(&b).unwrap();
        batches.push(b);
    }
    wal.sync().unwrap();
    let synced = batches.len();
    while wal.segments().len() < 2 {
        let b = vec![accept(batches.len() as u64 + 1, 1, 500)];
        wal.append(&b).unwrap();
        batches.push(b);
    }
    fs.crash(&mut Zeros);
    let (_, rec) = open(&fs, tiny()).unwrap();
    let k = (synced..=batches.len())
        .find(|k| replay(&DurableState::default(), &batches[..*k]) == rec.state);
    assert!(k.is_some());
}

#[cfg(feature = "planted-bugs")]
#[test]
fn planted_ack_before_sync_loses_acknowledged_records_after_a_crash() {
    let fs = MemFs::new();
    let options = WalOptions {
        ack_before_sync: true,
        ..tiny()
    };
    let (mut wal, _) = open(&fs, options.clone()).unwrap();
    wal.append(&[promise(9), accept(1, 9, 10)]).unwrap();
    let acked = wal.sync().unwrap();
    assert_eq!(acked, wal.last_lsn(), "the bug acknowledges the record");
    fs.crash(&mut Zeros);
    let (_, rec) = open(&fs, options).unwrap();
    assert_eq!(rec.state.promised, None, "an acknowledged promise was lost");
    assert!(rec.state.entries.is_empty());
}

#[cfg(feature = "planted-bugs")]
#[test]
fn with_ack_before_sync_sets_the_planted_bug() {
    assert!(tiny().with_ack_before_sync(true).ack_before_sync);
    assert!(
        !tiny()
            .with_ack_before_sync(true)
            .with_ack_before_sync(false)
            .ack_before_sync
    );
    let fs = MemFs::new();
    let (mut wal, _) = open(&fs, tiny().with_ack_before_sync(true)).unwrap();
    wal.append(&[promise(9)]).unwrap();
    wal.sync().unwrap();
    fs.crash(&mut Zeros);
    let (_, rec) = open(&fs, tiny()).unwrap();
    assert_eq!(rec.state.promised, None, "acknowledged without a sync");
}

#[cfg(not(feature = "planted-bugs"))]
#[test]
fn without_planted_bugs_with_ack_before_sync_does_nothing() {
    assert_eq!(tiny().with_ack_before_sync(true), tiny());
    let fs = MemFs::new();
    let (mut wal, _) = open(&fs, tiny().with_ack_before_sync(true)).unwrap();
    wal.append(&[promise(9)]).unwrap();
    wal.sync().unwrap();
    fs.crash(&mut Zeros);
    let (_, rec) = open(&fs, tiny()).unwrap();
    assert_eq!(
        rec.state.promised,
        Some(ballot(9)),
        "the sync really synced"
    );
}
