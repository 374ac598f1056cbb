//! A missing oldest segment is corruption, not a shorter log: the `wal-floor` file records the
//! oldest segment compaction kept, and without it the log must start at segment 1, LSN 1.
//! On MemFs (including a crash at every step of compaction and of a fresh log's creation, over
//! many seeds) and on real files.

mod common;

use common::*;
use paxos::multi::{DurableState, PersistOp};
use paxos::Slot;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use storage::floor::{FLOOR_FILE, FLOOR_TMP};
use storage::memfs::{MemFile, MemFs};
use storage::wal::segment_name;
use storage::{
    OpenMode, Recovered, SnapshotWriter, StdFs, StorageError, Vfs, VfsFile, Wal, WalFloor,
    WalOptions,
};

const DIR: &str = "/data";

fn tiny() -> WalOptions {
    WalOptions::with_sizes(4096, 1024)
}

fn segment(index: u64) -> PathBuf {
    Path::new(DIR).join(segment_name(index))
}

fn assert_corrupt_at(
    result: Result<(Wal<impl Vfs>, Recovered), StorageError>,
    path: &Path,
    needle: &str,
) -> String {
    let err = match result {
        Ok(_) => panic!("opened although {} is damaged or missing", path.display()),
        Err(e) => e,
    };
    match &err {
        StorageError::Corrupt { path: p, what, .. } => {
            assert_eq!(p, path, "{err}");
            assert!(what.contains(needle), "{what:?} lacks {needle:?}");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("restore this member's data directory"),
        "{msg}"
    );
    msg
}

/// A promise, then `slots` synced accepts of 300 bytes (several per 4 KiB segment).
fn fill<V: Vfs>(wal: &mut Wal<V>, slots: u64) -> Vec<Vec<PersistOp>> {
    let mut batches = vec![vec![promise(4), PersistOp::RebuildStarted]];
    wal.append(&batches[0]).unwrap();
    for slot in 1..=slots {
        let b = vec![accept(slot, 4, 300)];
        wal.append(&b).unwrap();
        batches.push(b);
    }
    wal.sync().unwrap();
    batches
}

fn snapshot<V: Vfs + Clone>(vfs: &V, dir: &Path, through: u64) {
    let mut w = SnapshotWriter::create(vfs.clone(), dir, Slot(through)).unwrap();
    w.write(format!("state through {through}").as_bytes())
        .unwrap();
    w.finish().unwrap();
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

#[test]
fn a_fresh_log_records_its_floor_and_an_old_one_gets_it_on_open() {
    let fs = MemFs::new();
    let (wal, _) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
    assert_eq!(wal.floor(), WalFloor::ORIGIN);
    drop(wal);
    let floor = Path::new(DIR).join(FLOOR_FILE);
    assert!(fs.exists(&floor).unwrap());
    // A log written before the floor existed: segment 1 at LSN 1 is proof enough.
    fs.remove(&floor).unwrap();
    let (wal, rec) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
    assert!(rec.repairs.is_empty());
    assert_eq!(wal.floor(), WalFloor::ORIGIN);
    assert!(fs.exists(&floor).unwrap());
}

#[test]
fn without_compaction_a_missing_first_segment_is_corruption() {
    let fs = MemFs::new();
    let (mut wal, _) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
    fill(&mut wal, 40);
    assert!(wal.segments().len() >= 4);
    drop(wal);
    fs.remove(&segment(1)).unwrap();
    let msg = assert_corrupt_at(
        Wal::open(fs.clone(), DIR, tiny()),
        &segment(1),
        "segment 1 is missing",
    );
    assert!(msg.contains(FLOOR_FILE), "{msg}");
    // Without the floor file too, the log must start at segment 1.
    fs.remove(&Path::new(DIR).join(FLOOR_FILE)).unwrap();
    assert_corrupt_at(
        Wal::open(fs, DIR, tiny()),
        &segment(1),
        "segment 1 is missing",
    );
}

/// A log of several segments compacted behind a snapshot through slot 25.
fn compacted(fs: &MemFs) -> (Vec<Vec<PersistOp>>, WalFloor) {
    let (mut wal, _) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
    let batches = fill(&mut wal, 40);
    snapshot(fs, Path::new(DIR), 25);
    let removed = wal.compact(Slot(25)).unwrap();
    assert!(removed >= 2, "removed {removed}");
    let floor = wal.floor();
    assert_eq!(floor.index, wal.segments()[0].index);
    assert_eq!(floor.first_lsn, wal.segments()[0].first_lsn);
    assert_eq!(floor.compacted_through, Slot(25));
    (batches, floor)
}

#[test]
fn after_compaction_a_missing_oldest_segment_is_corruption_naming_it() {
    let fs = MemFs::new();
    let (batches, floor) = compacted(&fs);
    let (_, rec) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
    assert_eq!(rec.state, expected(&batches, 25));
    fs.remove(&segment(floor.index)).unwrap();
    let msg = assert_corrupt_at(
        Wal::open(fs.clone(), DIR, tiny()),
        &segment(floor.index),
        "is missing",
    );
    assert!(msg.contains(FLOOR_FILE), "{msg}");
    // The floor file gone as well: still not a shorter log.
    fs.remove(&Path::new(DIR).join(FLOOR_FILE)).unwrap();
    assert_corrupt_at(Wal::open(fs, DIR, tiny()), &segment(1), "no wal-floor file");
}

#[test]
fn a_replaced_floor_segment_is_caught_by_its_first_lsn() {
    let fs = MemFs::new();
    let (_, floor) = compacted(&fs);
    let mut bad = floor;
    bad.first_lsn.0 += 1;
    bad.write(&fs, Path::new(DIR)).unwrap();
    assert_corrupt_at(
        Wal::open(fs, DIR, tiny()),
        &segment(floor.index),
        "recorded it as the oldest segment kept",
    );
}

#[test]
fn all_segments_gone_is_corruption_with_or_without_a_snapshot() {
    // Compacted, with a snapshot.
    let fs = MemFs::new();
    let (_, floor) = compacted(&fs);
    remove_segments(&fs);
    let msg = assert_corrupt_at(
        Wal::open(fs, DIR, tiny()),
        Path::new(DIR),
        "has no WAL segment",
    );
    assert!(msg.contains(&segment_name(floor.index)), "{msg}");
    // Never compacted, no snapshot: the floor alone tells a lost log from an empty directory.
    let fs = MemFs::new();
    let (mut wal, _) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
    fill(&mut wal, 3);
    drop(wal);
    remove_segments(&fs);
    assert_corrupt_at(
        Wal::open(fs, DIR, tiny()),
        Path::new(DIR),
        "has no WAL segment",
    );
}

fn remove_segments(fs: &MemFs) {
    for name in fs.list(Path::new(DIR)).unwrap() {
        if name.ends_with(".log") {
            fs.remove(&Path::new(DIR).join(name)).unwrap();
        }
    }
}

#[test]
fn a_snapshot_lost_after_compaction_is_corruption() {
    let fs = MemFs::new();
    compacted(&fs);
    for name in fs.list(Path::new(DIR)).unwrap() {
        if name.starts_with("snap-") {
            fs.remove(&Path::new(DIR).join(name)).unwrap();
        }
    }
    assert_corrupt_at(
        Wal::open(fs, DIR, tiny()),
        &Path::new(DIR).join(FLOOR_FILE),
        "compacted through slot 25 but there is no snapshot",
    );
}

#[test]
fn a_damaged_floor_file_is_corruption_naming_it() {
    let fs = MemFs::new();
    compacted(&fs);
    let floor = Path::new(DIR).join(FLOOR_FILE);
    fs.flip_bit(&floor, 13, 2).unwrap();
    assert_corrupt_at(
        Wal::open(fs.clone(), DIR, tiny()),
        &floor,
        "does not verify",
    );
    fs.truncate(&floor, 20).unwrap();
    assert_corrupt_at(Wal::open(fs, DIR, tiny()), &floor, "20 bytes, not 40");
}

#[test]
fn compaction_never_removes_the_active_segment() {
    let fs = MemFs::new();
    let (mut wal, _) = Wal::open(fs.clone(), DIR, tiny()).unwrap();
    let batches = fill(&mut wal, 40);
    let active = wal.segments().last().unwrap().clone();
    // A snapshot past everything the log holds: every segment qualifies but the active one.
    snapshot(&fs, Path::new(DIR), 1000);
    wal.compact(Slot(1000)).unwrap();
    assert_eq!(wal.segments(), std::slice::from_ref(&active));
    assert_eq!(wal.floor().index, active.index);
    assert_eq!(wal.compact(Slot(1000)).unwrap(), 0);
    drop(wal);
    fs.crash(&mut ChaCha8Rng::seed_from_u64(9));
    let (_, rec) = Wal::open(fs, DIR, tiny()).unwrap();
    assert_eq!(rec.state, expected(&batches, 1000));
    assert_eq!(rec.state.promised, Some(ballot(4)));
    assert!(rec.state.rebuilding);
}

/// A `Vfs` over MemFs that lets `budget` mutating operations (create, write, allocate, sync,
/// rename, remove, directory sync) through and fails every later one: a crash at that step.
#[derive(Clone)]
struct Stepped {
    fs: MemFs,
    budget: Arc<AtomicU64>,
}

struct SteppedFile {
    file: MemFile,
    budget: Arc<AtomicU64>,
}

fn spend(budget: &AtomicU64) -> io::Result<()> {
    budget
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1))
        .map(|_| ())
        .map_err(|_| io::Error::other("injected crash"))
}

impl Vfs for Stepped {
    type File = SteppedFile;
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.fs.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.fs.list(dir)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<SteppedFile> {
        if mode != OpenMode::Existing {
            spend(&self.budget)?;
        }
        Ok(SteppedFile {
            file: self.fs.open(path, mode)?,
            budget: Arc::clone(&self.budget),
        })
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        spend(&self.budget)?;
        self.fs.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        spend(&self.budget)?;
        self.fs.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        spend(&self.budget)?;
        self.fs.sync_dir(dir)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.fs.exists(path)
    }
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        self.fs.file_len(path)
    }
}

impl VfsFile for SteppedFile {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_at(buf, offset)
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        spend(&self.budget)?;
        self.file.write_at(buf, offset)
    }
    fn allocate(&mut self, len: u64) -> io::Result<()> {
        spend(&self.budget)?;
        self.file.allocate(len)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        spend(&self.budget)?;
        self.file.sync_data()
    }
    fn sync_all(&mut self) -> io::Result<()> {
        spend(&self.budget)?;
        self.file.sync_all()
    }
}

const SEEDS: u64 = 24;

#[test]
fn a_crash_at_every_step_of_compaction_loses_nothing_and_raises_no_false_alarm() {
    let mut finished = false;
    let mut step = 0u64;
    let mut below_floor_seen = 0;
    while !finished {
        for seed in 0..SEEDS {
            let fs = MemFs::new();
            let budget = Arc::new(AtomicU64::new(u64::MAX));
            let vfs = Stepped {
                fs: fs.clone(),
                budget: Arc::clone(&budget),
            };
            let (mut wal, _) = Wal::open(vfs.clone(), DIR, tiny()).unwrap();
            let batches = fill(&mut wal, 40);
            snapshot(&fs, Path::new(DIR), 12);
            // A first compaction, so the crash lands on a log that already has a raised floor.
            assert!(wal.compact(Slot(12)).unwrap() > 0);
            snapshot(&fs, Path::new(DIR), 30);
            budget.store(step, Ordering::SeqCst);
            let outcome = wal.compact(Slot(30));
            drop(wal);
            if outcome.is_ok() {
                finished = true;
            }
            fs.crash(&mut ChaCha8Rng::seed_from_u64(seed ^ (step << 16)));
            let (wal, rec) = match Wal::open(fs.clone(), DIR, tiny()) {
                Ok(r) => r,
                Err(e) => panic!("step {step} seed {seed}: recovery failed: {e}"),
            };
            assert_eq!(rec.state, expected(&batches, 30), "step {step} seed {seed}");
            let floor = wal.floor();
            if wal.segments()[0].index < floor.index {
                // Crashed after the floor was raised, before every removal was durable.
                below_floor_seen += 1;
            }
            // Whatever the crash left, the next compaction finishes the job.
            let mut wal = wal;
            wal.compact(Slot(30)).unwrap();
            assert_eq!(wal.segments()[0].index, wal.floor().index);
            assert!(
                !fs.exists(&Path::new(DIR).join(FLOOR_TMP)).unwrap(),
                "step {step}: a leftover floor tmp survived open"
            );
        }
        step += 1;
        assert!(step < 100, "compaction never finished");
    }
    assert!(step > 4, "compaction took only {step} steps");
    assert!(
        below_floor_seen > 0,
        "no crash landed between the floor and the removals"
    );
}

#[test]
fn a_crash_at_every_step_of_creating_a_log_leaves_a_fresh_or_a_whole_one() {
    let mut finished = false;
    let mut step = 0u64;
    while !finished {
        for seed in 0..SEEDS {
            let fs = MemFs::new();
            let vfs = Stepped {
                fs: fs.clone(),
                budget: Arc::new(AtomicU64::new(step)),
            };
            match Wal::open(vfs, DIR, tiny()) {
                Ok(_) => finished = true,
                Err(e) => assert!(!e.is_corruption(), "{e}"),
            }
            fs.crash(&mut ChaCha8Rng::seed_from_u64(seed ^ (step << 16)));
            let (mut wal, rec) = match Wal::open(fs.clone(), DIR, tiny()) {
                Ok(r) => r,
                Err(e) => panic!("step {step} seed {seed}: recovery failed: {e}"),
            };
            assert_eq!(rec.state, DurableState::default());
            assert_eq!(wal.floor(), WalFloor::ORIGIN);
            wal.append(&[promise(1)]).unwrap();
            wal.sync().unwrap();
        }
        step += 1;
        assert!(step < 100, "creation never finished");
    }
}

// Real files.

fn std_compacted() -> (tempfile::TempDir, PathBuf, Vec<Vec<PersistOp>>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("member");
    let (mut wal, _) = Wal::open(StdFs::new(), &dir, tiny()).unwrap();
    let batches = fill(&mut wal, 40);
    snapshot(&StdFs::new(), &dir, 25);
    assert!(wal.compact(Slot(25)).unwrap() >= 2);
    (tmp, dir, batches)
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    out.sort();
    out
}

#[test]
fn real_files_a_deleted_oldest_segment_is_corruption() {
    // Never compacted.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("member");
    let (mut wal, _) = Wal::open(StdFs::new(), &dir, tiny()).unwrap();
    fill(&mut wal, 40);
    drop(wal);
    let segments = segment_files(&dir);
    std::fs::remove_file(&segments[0]).unwrap();
    let msg = assert_corrupt_at(
        Wal::open(StdFs::new(), &dir, tiny()),
        &dir.join(segment_name(1)),
        "segment 1 is missing",
    );
    assert!(
        msg.contains(&dir.join(segment_name(1)).display().to_string()),
        "{msg}"
    );

    // Compacted.
    let (_tmp, dir, batches) = std_compacted();
    let (_, rec) = Wal::open(StdFs::new(), &dir, tiny()).unwrap();
    assert_eq!(rec.state, expected(&batches, 25));
    let segments = segment_files(&dir);
    std::fs::remove_file(&segments[0]).unwrap();
    assert_corrupt_at(
        Wal::open(StdFs::new(), &dir, tiny()),
        &segments[0],
        "as the oldest segment kept",
    );
}

#[test]
fn real_files_all_segments_deleted_is_corruption() {
    let (_tmp, dir, _) = std_compacted();
    for path in segment_files(&dir) {
        std::fs::remove_file(path).unwrap();
    }
    assert_corrupt_at(
        Wal::open(StdFs::new(), &dir, tiny()),
        &dir,
        "has no WAL segment",
    );
    // Without the floor the snapshot still says the directory had a log.
    std::fs::remove_file(dir.join(FLOOR_FILE)).unwrap();
    assert_corrupt_at(
        Wal::open(StdFs::new(), &dir, tiny()),
        &dir,
        "has no WAL segment",
    );
}

#[test]
fn real_files_a_leftover_floor_tmp_is_removed_and_the_old_floor_used() {
    let (_tmp, dir, batches) = std_compacted();
    std::fs::write(dir.join(FLOOR_TMP), b"half a floor").unwrap();
    let (_, rec) = Wal::open(StdFs::new(), &dir, tiny()).unwrap();
    assert_eq!(rec.state, expected(&batches, 25));
    assert_eq!(rec.repairs.len(), 1, "{:?}", rec.repairs);
    assert!(!dir.join(FLOOR_TMP).exists());
}
