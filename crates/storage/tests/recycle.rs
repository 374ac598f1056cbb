//! Recycled segments (`WalOptions::recycle_segments`): compaction renames the segments it frees
//! to `wal-recycle-*.spare` and rotation writes the next segment over one, leaving stale
//! records of earlier lives after the new log's end. Recovery must never replay them, must
//! still catch every damage it catches in zero-filled segments (a bit flip mid-log, a
//! misdirected write, truncation, rollback, a missing segment), and a crash at every step of
//! compaction + recycling and of rotation into a recycled file must recover a synced prefix.

mod common;

use common::crash_fs::CrashFs;
use common::*;
use paxos::multi::{DurableState, PersistOp};
use paxos::Slot;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use storage::memfs::MemFs;
use storage::wal::scan_records;
use storage::{
    OpenMode, Recovered, Repair, SnapshotWriter, StdFs, StorageError, Vfs, VfsFile, Wal, WalOptions,
};

const DIR: &str = "/data";

fn tiny() -> WalOptions {
    WalOptions::with_sizes(4096, 1024).with_recycle_segments(true)
}

fn snapshot<V: Vfs + Clone>(vfs: &V, dir: &Path, through: u64) -> Result<(), StorageError> {
    let mut w = SnapshotWriter::create(vfs.clone(), dir, Slot(through))?;
    w.write(format!("state through {through}").as_bytes())?;
    w.finish()?;
    Ok(())
}

fn read_all<V: Vfs>(vfs: &V, path: &Path) -> Vec<u8> {
    let mut f = vfs.open(path, OpenMode::Existing).unwrap();
    let mut data = vec![0u8; f.len().unwrap() as usize];
    f.read_at(&mut data, 0).unwrap();
    data
}

fn is_recycled<V: Vfs>(vfs: &V, path: &Path) -> bool {
    read_all(vfs, path)[40] & 1 == 1
}

fn u64_at(data: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(data[at..at + 8].try_into().unwrap())
}

fn expected(batches: &[Vec<PersistOp>], through: u64) -> DurableState {
    replay(
        &DurableState {
            compacted_through: Slot(through),
            ..DurableState::default()
        },
        batches,
    )
}

/// A log driven through many rotations and compactions: each batch is synced; every
/// `compact_every` slots a snapshot through `slot - 4` is written and the log compacted.
struct Driver {
    batches: Vec<Vec<PersistOp>>,
    slot: u64,
    snapshot: u64,
    /// Add rebuild flags to some batches (which changes their size).
    flags: bool,
}

impl Driver {
    fn new() -> Driver {
        Driver {
            batches: Vec::new(),
            slot: 0,
            snapshot: 0,
            flags: true,
        }
    }

    fn step<V: Vfs + Clone>(
        &mut self,
        wal: &mut Wal<V>,
        payload: usize,
        compact_every: u64,
    ) -> Result<(), StorageError> {
        self.slot += 1;
        let mut b = vec![accept(self.slot, 5, payload)];
        // Flags that a stale replay would visibly change: rebuilding on, then off again.
        if self.flags && self.slot % 17 == 3 {
            b.push(PersistOp::RebuildStarted);
        }
        if self.flags && self.slot % 17 == 5 {
            b.push(PersistOp::VoteRegained {
                ballot: ballot(5 + self.slot / 17),
            });
        }
        wal.append(&b)?;
        wal.sync()?;
        self.batches.push(b);
        if self.slot.is_multiple_of(compact_every) && self.slot > 4 {
            let through = self.slot - 4;
            snapshot(wal.vfs(), wal.dir(), through)?;
            self.snapshot = through;
            wal.compact(Slot(through))?;
        }
        Ok(())
    }
}

#[test]
fn recycling_is_off_by_default_and_the_builder_sets_it() {
    assert!(!WalOptions::default().recycle_segments);
    assert!(!WalOptions::small().recycle_segments);
    assert!(
        WalOptions::small()
            .with_recycle_segments(true)
            .recycle_segments
    );
    // Without it compaction deletes, as before.
    let fs = MemFs::new();
    let (mut wal, _) = Wal::open(fs.clone(), DIR, WalOptions::with_sizes(4096, 1024)).unwrap();
    let mut d = Driver::new();
    for _ in 0..60 {
        d.step(&mut wal, 300, 10).unwrap();
    }
    assert_eq!(wal.stats().segments_recycled, 0);
    assert_eq!(wal.stats().recycled_rotations, 0);
    assert!(wal.stats().segments_removed > 0);
}

#[test]
fn long_runs_reuse_compacted_segments_and_reopen_to_the_same_state() {
    for seed in 0..24u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let fs = MemFs::new();
        let (mut wal, _) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
        // Spares prepared alongside the recycle pool: none, synchronously, in the background.
        let spares = seed % 3;
        if spares == 2 {
            wal.start_background_preparer().unwrap();
        }
        wal.append(&[promise(5)]).unwrap();
        let mut d = Driver::new();
        d.batches.push(vec![promise(5)]);
        let mut recycled_rotations = 0;
        // Fixed-size records on even seeds (stale frames then line up with the new log's
        // record boundaries, so the log often ends exactly at a verifying stale record),
        // random sizes on odd ones (it ends in the middle of stale bytes).
        for _ in 0..400 {
            let payload = if seed % 2 == 0 {
                300
            } else {
                50 + (rng.next_u32() % 900) as usize
            };
            d.step(&mut wal, payload, 7 + seed % 5).unwrap();
            if spares == 1 {
                wal.prepare_next_segment(1024).unwrap();
            }
            if rng.next_u32() % 40 == 0 {
                // Reopen mid-run: recovery over recycled segments, and the pool starts empty.
                let last = wal.last_lsn();
                recycled_rotations += wal.stats().recycled_rotations;
                drop(wal);
                let (mut w, rec) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
                if spares == 2 {
                    w.start_background_preparer().unwrap();
                }
                assert_eq!(rec.last_lsn, last, "seed {seed}");
                assert!(rec.repairs.is_empty(), "seed {seed}: {:?}", rec.repairs);
                assert_eq!(rec.state, expected(&d.batches, d.snapshot), "seed {seed}");
                wal = w;
            }
        }
        recycled_rotations += wal.stats().recycled_rotations;
        assert!(
            recycled_rotations > 20,
            "seed {seed}: rotations reuse compacted files: {recycled_rotations}"
        );
        let last = wal.last_lsn();
        drop(wal);
        let (_, rec) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
        assert_eq!(rec.last_lsn, last, "seed {seed}");
        assert!(rec.repairs.is_empty(), "seed {seed}: {:?}", rec.repairs);
        assert_eq!(rec.state, expected(&d.batches, d.snapshot), "seed {seed}");
        // Opened with recycling off, the same log reads the same (the header marks it).
        let (_, rec) = Wal::open(fs.clone(), DIR, WalOptions::with_sizes(4096, 1024)).unwrap();
        assert_eq!(rec.state, expected(&d.batches, d.snapshot), "seed {seed}");
        // Every record found is one of the log's own: consecutive LSNs, none stale.
        let records = scan_records(&fs, Path::new(DIR)).unwrap();
        for pair in records.windows(2) {
            assert_eq!(pair[1].lsn.0, pair[0].lsn.0 + 1, "seed {seed}");
        }
        assert_eq!(records.last().unwrap().lsn, last, "seed {seed}");
    }
}

#[test]
fn a_log_ending_at_a_stale_record_is_not_replayed_past_its_end() {
    let fs = MemFs::new();
    let (mut wal, _) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
    let mut d = Driver::new();
    d.flags = false;
    for _ in 0..100 {
        d.step(&mut wal, 300, 8).unwrap();
    }
    // On until the active segment is recycled and partly full (3 to 6 records), so that a
    // stale record of the file's earlier life lies right after the end of its log.
    let ready = |wal: &Wal<MemFs>| {
        let a = wal.segments().last().unwrap();
        let n = wal.last_lsn().0 + 1 - a.first_lsn.0;
        (3..=6).contains(&n) && is_recycled(&fs, &a.path)
    };
    for _ in 0..200 {
        if ready(&wal) {
            break;
        }
        d.step(&mut wal, 300, 8).unwrap();
    }
    assert!(ready(&wal));
    let active = wal.segments().last().unwrap().clone();
    drop(wal);
    assert!(is_recycled(&fs, &active.path));
    let data = read_all(&fs, &active.path);
    let last = scan_records(&fs, Path::new(DIR))
        .unwrap()
        .into_iter()
        .rfind(|r| r.path == active.path)
        .unwrap();
    let end = (last.offset + last.len) as usize;
    // Same-size records: the stale record of the file's last life sits exactly at the end.
    let stale_lsn = u64_at(&data, end + 8);
    assert!(
        stale_lsn > 0 && stale_lsn < active.first_lsn.0,
        "a stale record at the end: lsn {stale_lsn}, segment starts at {}",
        active.first_lsn
    );
    let (_, rec) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
    assert_eq!(rec.last_lsn, last.lsn);
    assert!(!rec.state.rebuilding || expected(&d.batches, d.snapshot).rebuilding);
    assert_eq!(rec.state, expected(&d.batches, d.snapshot));
}

/// What one run wrote: batches acknowledged by a successful sync, and those appended after.
struct Run {
    synced: Vec<Vec<PersistOp>>,
    pending: Vec<Vec<PersistOp>>,
    recycled_rotations: u64,
}

/// Phase one (no crash possible: `crash_at` counts only phase two) builds a log whose
/// compactions have filled the recycle pool; phase two appends, syncing every other batch,
/// compacting every 6 slots, so a crash lands in every step of compaction + recycling and of
/// rotation into a recycled file, and in appends over stale bytes.
fn run(mem: &MemFs, crash_at: u64, seed: u64) -> (Run, Arc<AtomicU64>) {
    let fs = CrashFs::new(mem.clone(), u64::MAX, seed);
    let (mut wal, _) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
    let mut d = Driver::new();
    wal.append(&[promise(5)]).unwrap();
    d.batches.push(vec![promise(5)]);
    for _ in 0..40 {
        d.step(&mut wal, 250 + (d.slot as usize * 97) % 500, 6)
            .unwrap();
    }
    let ops = Arc::clone(&fs.ops);
    ops.store(0, Ordering::SeqCst);
    // From here the crash can strike.
    let fs2 = CrashFs {
        crash_at,
        ..fs.clone()
    };
    drop(wal);
    let mut out = Run {
        synced: d.batches.clone(),
        pending: Vec::new(),
        recycled_rotations: 0,
    };
    let Ok((mut wal, _)) = Wal::open(fs2, DIR, tiny()) else {
        return (out, ops);
    };
    let before = wal.stats().recycled_rotations;
    let mut slot = d.slot;
    for i in 0..30u64 {
        slot += 1;
        let b = vec![accept(slot, 6, 200 + ((slot * 131) % 600) as usize)];
        if wal.append(&b).is_err() {
            break;
        }
        out.pending.push(b);
        if i % 2 == 1 {
            if wal.sync().is_err() {
                break;
            }
            out.synced.append(&mut out.pending);
        }
        if i % 6 == 5 {
            let through = slot - 3;
            if snapshot(wal.vfs(), wal.dir(), through).is_err() {
                break;
            }
            if wal.compact(Slot(through)).is_err() {
                break;
            }
        }
    }
    out.recycled_rotations = wal.stats().recycled_rotations - before;
    (out, ops)
}

fn check_recovery(fs: &MemFs, run: &Run, what: &str) {
    let (mut wal, rec) =
        Wal::open(fs.clone(), DIR, tiny()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let through = rec.state.compacted_through.0;
    let mut acc = run.synced.clone();
    let mut ok = rec.state == expected(&acc, through);
    for b in &run.pending {
        acc.push(b.clone());
        ok |= rec.state == expected(&acc, through);
    }
    assert!(
        ok,
        "{what}: recovered state is not the synced prefix plus whole batches"
    );
    let names = fs.list(Path::new(DIR)).unwrap();
    assert!(
        !names.iter().any(|n| n.ends_with(".spare")),
        "{what}: spare or recycle file left behind: {names:?}"
    );
    // Still a log: more batches are durable, rotate, and read back.
    let mut expected_state = rec.state.clone();
    for slot in 5000..5012u64 {
        let extra = vec![accept(slot, 9, 400)];
        wal.append(&extra).unwrap();
        for op in &extra {
            expected_state.apply(op);
        }
    }
    wal.sync().unwrap();
    drop(wal);
    let (_, again) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
    assert_eq!(
        again.state, expected_state,
        "{what}: the log after recovery"
    );
}

#[test]
fn a_crash_before_every_step_of_compaction_recycling_and_rotation_recovers() {
    let mem = MemFs::new();
    let (r, ops) = run(&mem, u64::MAX, 0);
    let total = ops.load(Ordering::SeqCst);
    assert!(r.pending.is_empty(), "the run without a crash syncs all");
    assert!(
        r.recycled_rotations >= 2,
        "the run rotates into recycled files: {}",
        r.recycled_rotations
    );
    eprintln!("{total} mutating operations, a crash before each");
    for crash_at in 1..=total + 1 {
        for seed in 0..6u64 {
            let mem = MemFs::new();
            let (r, _) = run(&mem, crash_at, seed);
            check_recovery(&mem, &r, &format!("crash at op {crash_at}, seed {seed}"));
        }
    }
}

/// A log of many recycled segments, all synced; returns the log's batches and snapshot slot.
fn recycled_log(fs: &MemFs, payload: usize) -> (Vec<Vec<PersistOp>>, u64) {
    let (mut wal, _) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
    let mut d = Driver::new();
    for _ in 0..150 {
        d.step(&mut wal, payload, 9).unwrap();
    }
    // On until the two newest segments both reuse compacted files (a rotation that finds the
    // pool empty fills a new one): the tests below damage a recycled sealed segment.
    let both_recycled = |wal: &Wal<MemFs>| {
        let s = wal.segments();
        // And a few records in the active one, besides its checkpoint.
        let records = wal.last_lsn().0 + 1 - s[s.len() - 1].first_lsn.0;
        s.len() >= 2 && records >= 4 && s[s.len() - 2..].iter().all(|i| is_recycled(fs, &i.path))
    };
    for _ in 0..500 {
        if both_recycled(&wal) {
            break;
        }
        d.step(&mut wal, payload, 9).unwrap();
    }
    assert!(both_recycled(&wal));
    assert!(wal.stats().recycled_rotations > 5);
    (d.batches, d.snapshot)
}

fn segment_paths(fs: &MemFs) -> Vec<PathBuf> {
    let mut names: Vec<String> = fs
        .list(Path::new(DIR))
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    names.iter().map(|n| Path::new(DIR).join(n)).collect()
}

fn corrupt_at(result: Result<(Wal<MemFs>, Recovered), StorageError>, path: &Path) -> String {
    match result {
        Ok(_) => panic!("damage to {} went unnoticed", path.display()),
        Err(StorageError::Corrupt { path: p, what, .. }) => {
            assert_eq!(p, path, "{what}");
            what
        }
        Err(e) => panic!("expected corruption, got {e:?}"),
    }
}

fn write_raw(fs: &MemFs, path: &Path, offset: u64, bytes: &[u8]) {
    let mut f = fs.open(path, OpenMode::Existing).unwrap();
    f.write_at(bytes, offset).unwrap();
    f.sync_data().unwrap();
}

#[test]
fn a_torn_tail_inside_a_recycled_segment_is_repaired_without_zeroing_the_stale_rest() {
    for payload in [300usize, 377] {
        let fs = MemFs::new();
        let (batches, through) = recycled_log(&fs, payload);
        let active = segment_paths(&fs).pop().unwrap();
        assert!(is_recycled(&fs, &active));
        let last = scan_records(&fs, Path::new(DIR)).unwrap().pop().unwrap();
        assert_eq!(last.path, active);
        assert!(
            last.offset > 64 + 40,
            "the last record is not the checkpoint"
        );
        // The write's later sectors never landed: they hold what was there (stale bytes).
        let cut = last.offset + 40;
        let end = last.offset + last.len;
        let junk: Vec<u8> = (cut..end).map(|i| (i * 7 + 3) as u8).collect();
        write_raw(&fs, &active, cut, &junk);
        let before = read_all(&fs, &active);
        let (_, rec) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
        assert_eq!(
            rec.repairs,
            vec![Repair::TornTail {
                path: active.clone(),
                offset: last.offset,
                bytes: last.len,
            }]
        );
        assert_eq!(
            rec.state,
            expected(&batches[..batches.len() - 1], through),
            "payload {payload}"
        );
        let after = read_all(&fs, &active);
        assert!(after[last.offset as usize..end as usize]
            .iter()
            .all(|b| *b == 0));
        assert_eq!(
            after[end as usize..],
            before[end as usize..],
            "the stale rest is left alone"
        );
        // A second open finds nothing to repair.
        let (_, rec) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
        assert!(rec.repairs.is_empty());
    }
}

#[test]
fn a_bit_flip_in_a_middle_record_of_a_recycled_segment_is_corruption() {
    for seed in 0..12u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let fs = MemFs::new();
        recycled_log(&fs, 300 + (seed as usize * 37) % 300);
        let records = scan_records(&fs, Path::new(DIR)).unwrap();
        let paths = segment_paths(&fs);
        // Sealed and active segments alike, if recycled.
        for path in &paths {
            if !is_recycled(&fs, path) {
                continue;
            }
            let mine: Vec<_> = records.iter().filter(|r| &r.path == path).collect();
            if mine.len() < 3 {
                continue;
            }
            // Neither the checkpoint nor the last record of the segment.
            let r = mine[1 + (rng.next_u32() as usize) % (mine.len() - 2)];
            let offset = r.offset + u64::from(rng.next_u32()) % r.len;
            let bit = (rng.next_u32() % 8) as u8;
            let snap = MemFs::new();
            // Damage a copy: rebuild the same log (deterministic) in a fresh MemFs.
            recycled_log(&snap, 300 + (seed as usize * 37) % 300);
            snap.flip_bit(path, offset, bit).unwrap();
            corrupt_at(Wal::open(snap.clone(), DIR, tiny()), path);
        }
    }
}

#[test]
fn a_bit_flip_in_the_last_record_of_a_sealed_recycled_segment_is_corruption() {
    let fs = MemFs::new();
    recycled_log(&fs, 333);
    let records = scan_records(&fs, Path::new(DIR)).unwrap();
    let paths = segment_paths(&fs);
    let sealed = paths[..paths.len() - 1]
        .iter()
        .rfind(|p| is_recycled(&fs, p))
        .unwrap()
        .clone();
    let last = records.iter().rfind(|r| r.path == sealed).unwrap();
    fs.flip_bit(&sealed, last.offset + last.len / 2, 3).unwrap();
    let what = corrupt_at(Wal::open(fs.clone(), DIR, tiny()), &sealed);
    assert!(what.contains("records are missing"), "{what}");
}

#[test]
fn a_misdirected_write_into_the_stale_region_is_corruption() {
    let mut tried = 0;
    for wrong in [2000u64, 3000, 3500] {
        let fs = MemFs::new();
        recycled_log(&fs, 120);
        let (mut wal, _) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
        let active = wal.segments().last().unwrap().path.clone();
        assert!(is_recycled(&fs, &active));
        let end = scan_records(&fs, Path::new(DIR))
            .unwrap()
            .pop()
            .map(|r| r.offset + r.len)
            .unwrap();
        if wrong < end + 200 {
            continue;
        }
        fs.misdirect_next_write(&active, wrong).unwrap();
        wal.append(&[accept(9000, 9, 100)]).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let what = corrupt_at(Wal::open(fs.clone(), DIR, tiny()), &active);
        // Either the record lies after the end, or the stale bytes at its intended place
        // fail verification and a valid record follows them: corruption both ways.
        assert!(
            what.contains("after the end of the log") || what.contains("follows at byte"),
            "{what}"
        );
        tried += 1;
    }
    assert!(
        tried >= 2,
        "the stale region was big enough to aim at: {tried}"
    );
}

#[test]
fn truncation_rollback_and_a_missing_segment_are_still_caught() {
    // Truncation of a recycled segment.
    let fs = MemFs::new();
    recycled_log(&fs, 300);
    let paths = segment_paths(&fs);
    let sealed = paths[..paths.len() - 1]
        .iter()
        .rfind(|p| is_recycled(&fs, p))
        .unwrap()
        .clone();
    fs.truncate(&sealed, 4000).unwrap();
    let what = corrupt_at(Wal::open(fs.clone(), DIR, tiny()), &sealed);
    assert!(what.contains("shorter"), "{what}");

    // A sealed recycled segment rolled back to before its last sync.
    let fs = MemFs::new();
    recycled_log(&fs, 300);
    let paths = segment_paths(&fs);
    let sealed = paths[paths.len() - 2].clone();
    assert!(is_recycled(&fs, &sealed));
    fs.rollback(&sealed).unwrap();
    let what = corrupt_at(Wal::open(fs.clone(), DIR, tiny()), &sealed);
    assert!(what.contains("records are missing"), "{what}");

    // A missing segment (the oldest kept, which the floor names).
    let fs = MemFs::new();
    recycled_log(&fs, 300);
    let paths = segment_paths(&fs);
    fs.remove(&paths[0]).unwrap();
    let err = Wal::open(fs.clone(), DIR, tiny()).unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
}

#[test]
fn recycling_on_real_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("wal");
    let (mut wal, _) = Wal::open(StdFs::new(), &dir, tiny()).unwrap();
    let mut d = Driver::new();
    for i in 0..200u64 {
        d.step(&mut wal, 200 + ((i * 53) % 500) as usize, 8)
            .unwrap();
    }
    assert!(wal.stats().recycled_rotations > 10, "{:?}", wal.stats());
    let last = wal.last_lsn();
    drop(wal);
    let (_, rec) = Wal::open(StdFs::new(), &dir, tiny()).unwrap();
    assert_eq!(rec.last_lsn, last);
    assert!(rec.repairs.is_empty());
    assert_eq!(rec.state, expected(&d.batches, d.snapshot));
    // A flipped byte in a middle record of a recycled sealed segment.
    let records = scan_records(&StdFs::new(), &dir).unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".log"))
        .collect();
    names.sort();
    let sealed = dir.join(&names[names.len() - 2]);
    assert!(is_recycled(&StdFs::new(), &sealed));
    let mine: Vec<_> = records.iter().filter(|r| r.path == sealed).collect();
    assert!(mine.len() >= 3);
    let r = mine[mine.len() / 2];
    let data = read_all(&StdFs::new(), &sealed);
    let at = (r.offset + r.len / 2) as usize;
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&sealed)
            .unwrap();
        f.write_all_at(&[data[at] ^ 0x10], at as u64).unwrap();
        f.sync_all().unwrap();
    }
    match Wal::open(StdFs::new(), &dir, tiny()) {
        Err(StorageError::Corrupt { path, .. }) => assert_eq!(path, sealed),
        Err(e) => panic!("expected corruption, got {e:?}"),
        Ok(_) => panic!("a flipped byte in a recycled segment went unnoticed"),
    }
}

/// The stale bytes of a recycled file are old payloads, which clients choose: a frame forged
/// in one (here: a real record of an unsalted, zero-filled log, with exactly the LSN the
/// recycled log expects next) must neither be replayed at the log's end nor make the log
/// unreadable when it lies after the end. The per-segment salt in record CRCs is what stops it.
#[test]
fn a_frame_forged_in_the_stale_bytes_is_never_replayed() {
    let fs = MemFs::new();
    let (batches, through) = recycled_log(&fs, 300);
    let (wal, _) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
    let next = wal.last_lsn().0 + 1;
    let active = wal.segments().last().unwrap().path.clone();
    drop(wal);
    // A valid, unsalted frame carrying LSN `next`, from a plain log.
    let plain = MemFs::new();
    let (mut other, _) = Wal::open(plain.clone(), DIR, WalOptions::with_sizes(4096, 1024)).unwrap();
    while other.last_lsn().0 < next {
        other.append(&[accept(777, 77, 200)]).unwrap();
    }
    other.sync().unwrap();
    drop(other);
    let forged = scan_records(&plain, Path::new(DIR))
        .unwrap()
        .into_iter()
        .find(|r| r.lsn.0 == next && r.kind == storage::wal::RECORD_BATCH)
        .unwrap();
    let frame = read_all(&plain, &forged.path)
        [forged.offset as usize..(forged.offset + forged.len) as usize]
        .to_vec();
    let end = scan_records(&fs, Path::new(DIR))
        .unwrap()
        .pop()
        .map(|r| r.offset + r.len)
        .unwrap();
    // Right at the end of the log, and again further on.
    write_raw(&fs, &active, end, &frame);
    write_raw(&fs, &active, end + 1000, &frame);
    let (_, rec) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
    assert_eq!(
        rec.state,
        expected(&batches, through),
        "nothing forged replayed"
    );
    assert_eq!(rec.last_lsn.0, next - 1);
    assert!(rec.state.entries.keys().all(|s| s.0 != 777));
}
