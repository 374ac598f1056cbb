//! The WAL against the disk it runs on, in one run, on one directory:
//!
//! - the physical reference: 4 KiB `pwrite` + `fdatasync` into a preallocated (zero-filled)
//!   file and into a growing file; sequential bandwidth in 16 MiB groups of 64 KiB `pwrite`s
//!   and an `fdatasync` into a preallocated file, from one hot buffer and from 16 MiB of distinct
//!   buffers ("new data", what a log writes), each with and without a `sync_file_range` hint
//!   every 1 MiB (the WAL gives such hints); 1 MiB writes; and, for comparison only, 1 GiB
//!   through the page cache with one `fdatasync` (not a ceiling);
//! - the growing-log reference: the same 16 MiB groups, but into new 64 MiB files each
//!   zero-filled on the clock (what any log that grows into fresh space pays on this disk when
//!   it keeps zero-filled segments), and into new `posix_fallocate`d files;
//! - the synchronous WAL (`Wal::append_batches` with one record per op + `Wal::sync`) for
//!   payloads of 100 B, 1 KiB and 64 KiB and 1, 16 and 256 records per sync, with the
//!   background segment preparer running (what a member on real disks uses), plus rows for
//!   `Wal::append` per record, for no preparer (rotation zero-fills inline), and for the steady
//!   state of `WalOptions::recycle_segments` (compacting to the last 2 segments as it goes, so
//!   rotations overwrite compacted files instead of zero-filling new ones; what a member runs);
//!   rates count the log's time only, not building the ops;
//! - `GroupCommit` with several submitting threads, one record each (syncs per record < 1);
//! - the two targets of the storage issue, measured in alternating rounds (the reference,
//!   then the WAL, back to back, several times; medians), because this disk drifts by 10-20 %
//!   within a run: a single record's durable latency against a raw 4 KiB `fdatasync`, and
//!   64 KiB x 256 batches (recycling) against new data with hints (and, for information,
//!   against one hot buffer with hints, the most the page cache takes). Informational: the
//!   bench never fails.
//!
//! `cargo bench -p synod-storage --bench wal`; `SYNOD_BENCH_QUICK=1` for a short run;
//! `SYNOD_BENCH_DIR=<dir>` to measure another disk (default: `target/bench-tmp`, which must
//! not be tmpfs). Writes `target/bench/storage.json`.

use hdrhistogram::Histogram;
use paxos::multi::{ClientId, Command, CommandId, PersistOp, Value};
use paxos::{Ballot, NodeId, Slot};
use serde_json::{json, Value as Json};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use storage::group::{Completion, GroupCommit, GroupCommitOptions};
use storage::{OpenMode, Prealloc, StdFs, Vfs, VfsFile, Wal, WalOptions};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

struct Knobs {
    quick: bool,
    /// How long each fdatasync-rate measurement runs.
    raw_secs: f64,
    /// Bytes of the page-cache-then-one-fdatasync measurement.
    seq_bytes: u64,
    /// How long each grouped-sync bandwidth measurement runs.
    group_secs: f64,
    /// Size of the preallocated file the grouped-sync measurement cycles through.
    group_file_bytes: u64,
    /// How long each WAL configuration runs.
    wal_secs: f64,
    /// Rounds of the targets' alternating measurements.
    rounds: usize,
    /// How long each side of a round runs.
    round_secs: f64,
}

fn knobs() -> Knobs {
    let quick = std::env::var("SYNOD_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    if quick {
        Knobs {
            quick,
            raw_secs: 0.5,
            seq_bytes: 256 << 20,
            group_secs: 0.5,
            group_file_bytes: 128 << 20,
            wal_secs: 0.5,
            rounds: 3,
            round_secs: 0.5,
        }
    } else {
        Knobs {
            quick,
            raw_secs: 3.0,
            seq_bytes: 1 << 30,
            group_secs: 3.0,
            group_file_bytes: 256 << 20,
            wal_secs: 3.0,
            rounds: 5,
            round_secs: 2.0,
        }
    }
}

/// The cargo target directory: the bench binary lives in `<target>/<profile>/deps/`.
fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// The file system type of `dir` (`statfs`), so a tmpfs directory is refused: it would
/// measure memory, not the disk.
fn fs_type(dir: &Path) -> BoxResult<(String, bool)> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(dir.as_os_str().as_bytes())?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    #[allow(clippy::unnecessary_cast)]
    let magic = st.f_type as i64;
    let (name, tmpfs) = match magic {
        0xEF53 => ("ext4", false),
        0x5846_5342 => ("xfs", false),
        0x9123_683E => ("btrfs", false),
        0x0102_1994 => ("tmpfs", true),
        0x794C_7630 => ("overlayfs", false),
        _ => ("other", false),
    };
    Ok((format!("{name} (magic {magic:#x})"), tmpfs))
}

fn histogram() -> Histogram<u64> {
    // Nanoseconds, 1 ns to 100 s, 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record(d.as_nanos().min(u128::from(u64::MAX)) as u64);
}

fn us(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1e3
}

fn lat_json(h: &Histogram<u64>) -> Json {
    json!({
        "count": h.len(),
        "p50_us": us(h, 0.50),
        "p99_us": us(h, 0.99),
        "max_us": h.max() as f64 / 1e3,
        "mean_us": h.mean() / 1e3,
    })
}

/// `pwrite` of 4 KiB at increasing offsets + `fdatasync`, for `secs`.
fn raw_fdatasync(dir: &Path, preallocated: bool, secs: f64) -> BoxResult<(f64, Histogram<u64>)> {
    const FILE_BYTES: u64 = 64 << 20;
    let path = dir.join(if preallocated {
        "raw-prealloc.dat"
    } else {
        "raw-append.dat"
    });
    let _ = fs::remove_file(&path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    if preallocated {
        zero_fill(&file, FILE_BYTES)?;
    }
    File::open(dir)?.sync_all()?;
    let block = vec![0xA5u8; 4096];
    let mut h = histogram();
    let started = Instant::now();
    let mut ops = 0u64;
    while started.elapsed().as_secs_f64() < secs {
        let offset = (ops * 4096) % FILE_BYTES;
        let t = Instant::now();
        file.write_all_at(&block, offset)?;
        file.sync_data()?;
        record(&mut h, t.elapsed());
        ops += 1;
        if !preallocated && offset + 4096 == FILE_BYTES {
            // Keep "growing" honest: start over on an empty file rather than overwrite.
            file.set_len(0)?;
            file.sync_all()?;
        }
    }
    let rate = ops as f64 / started.elapsed().as_secs_f64();
    fs::remove_file(&path)?;
    Ok((rate, h))
}

/// 1 MiB writes of `bytes` in total into a new file and one `fdatasync`: MB/s (10^6 B/s).
fn raw_sequential(dir: &Path, bytes: u64) -> BoxResult<f64> {
    let path = dir.join("raw-seq.dat");
    let _ = fs::remove_file(&path);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)?;
    let chunk = vec![0x5Au8; 1 << 20];
    let started = Instant::now();
    let mut at = 0;
    while at < bytes {
        file.write_all_at(&chunk, at)?;
        at += chunk.len() as u64;
    }
    file.sync_data()?;
    let secs = started.elapsed().as_secs_f64();
    fs::remove_file(&path)?;
    Ok(bytes as f64 / secs / 1e6)
}

/// Bytes written between two `fdatasync`s by the grouped reference: what one sync of the
/// WAL's largest configuration (256 records of 64 KiB) carries.
const GROUP_BYTES: u64 = 16 << 20;

/// A zero-filled, synced file of `bytes` for the grouped reference (untimed), so its writes
/// land on written extents exactly as the WAL's do in its zero-filled segments.
fn preallocated(dir: &Path, bytes: u64) -> BoxResult<(PathBuf, File)> {
    let path = dir.join("raw-group.dat");
    let _ = fs::remove_file(&path);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    zero_fill(&file, bytes)?;
    File::open(dir)?.sync_all()?;
    Ok((path, file))
}

/// Writes `bytes` of zeros from the start of `file` in 1 MiB steps and syncs it: blocks that
/// were written once, as in a zero-filled segment.
fn zero_fill(file: &File, bytes: u64) -> BoxResult<()> {
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < bytes {
        file.write_all_at(&zeros, at)?;
        at += zeros.len() as u64;
    }
    file.sync_all()?;
    Ok(())
}

/// How the grouped reference writes.
#[derive(Clone, Copy)]
struct Pattern {
    /// Bytes per `pwrite`.
    write_bytes: usize,
    /// Every write from another buffer (16 MiB of them, like the records of one batch): new
    /// data, as a log writes it. Otherwise one buffer, hot in the cache, written again and
    /// again: the most the page cache takes, but no log writes the same bytes twice.
    distinct: bool,
    /// `sync_file_range` hints every this many bytes (0: none), as the WAL gives them.
    hint_bytes: u64,
}

/// Sequential `pwrite`s into the preallocated `file` with `pattern`, `fdatasync` after every
/// 16 MiB group, for `secs` (and at least 4 groups), wrapping to the start at its end: the
/// WAL's best-case pattern without its framing, checksums or rotations. Returns MB/s (10^6
/// B/s) and the latency of each group (writes + sync).
fn raw_grouped(
    file: &File,
    file_bytes: u64,
    pattern: Pattern,
    secs: f64,
) -> BoxResult<(f64, Histogram<u64>)> {
    let count = if pattern.distinct {
        (GROUP_BYTES as usize / pattern.write_bytes).max(1)
    } else {
        1
    };
    let sources: Vec<Vec<u8>> = (0..count)
        .map(|i| vec![0x5Au8 ^ i as u8; pattern.write_bytes])
        .collect();
    let write_bytes = pattern.write_bytes as u64;
    let mut h = histogram();
    let mut at = 0u64;
    let mut hinted = 0u64;
    let mut next = 0usize;
    let mut bytes = 0u64;
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < secs || h.len() < 4 {
        let t = Instant::now();
        let mut in_group = 0u64;
        while in_group < GROUP_BYTES {
            if at + write_bytes > file_bytes {
                at = 0;
                hinted = 0;
            }
            file.write_all_at(&sources[next], at)?;
            next = (next + 1) % sources.len();
            at += write_bytes;
            in_group += write_bytes;
            if pattern.hint_bytes > 0 && at - hinted >= pattern.hint_bytes {
                start_writeback(file, hinted, at - hinted)?;
                hinted = at;
            }
        }
        file.sync_data()?;
        record(&mut h, t.elapsed());
        bytes += in_group;
    }
    Ok((bytes as f64 / started.elapsed().as_secs_f64() / 1e6, h))
}

/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`, as `StdFs` gives the WAL's hints.
fn start_writeback(file: &File, offset: u64, len: u64) -> BoxResult<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor belongs to `file`, alive for the call; no memory is passed.
    let rc = unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            i64::try_from(offset)?,
            i64::try_from(len)?,
            libc::SYNC_FILE_RANGE_WRITE,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

/// The reference patterns the targets use.
const SAME_64K: Pattern = Pattern {
    write_bytes: 64 << 10,
    distinct: false,
    hint_bytes: 0,
};
const SAME_64K_HINTED: Pattern = Pattern {
    hint_bytes: 1 << 20,
    ..SAME_64K
};
const NEW_DATA_64K_HINTED: Pattern = Pattern {
    distinct: true,
    ..SAME_64K_HINTED
};

/// The median of `values` (NaN if empty).
fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Bytes of each new file of the growing-log reference: the WAL's default segment size.
const FRESH_FILE_BYTES: u64 = 64 << 20;

/// The growing-log reference: 16 MiB groups of 64 KiB `pwrite`s + `fdatasync`, like
/// [`raw_grouped`], but each 64 MiB goes into a new file preallocated on the clock with
/// `prealloc` (and fsynced) first, for `secs` (at least 2 files). Files are removed at the end,
/// not during the run (removing them would add discards to the timed syncs). MB/s of data.
fn raw_grouped_fresh(dir: &Path, prealloc: Prealloc, secs: f64) -> BoxResult<f64> {
    let fs = StdFs::with_prealloc(prealloc);
    let chunk = vec![0x5Au8; 64 << 10];
    let mut paths = Vec::new();
    let mut bytes = 0u64;
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < secs || paths.len() < 2 {
        let path = dir.join(format!("raw-fresh-{}.dat", paths.len()));
        let _ = fs::remove_file(&path);
        let mut file = fs.open(&path, OpenMode::CreateNew)?;
        paths.push(path);
        file.allocate(FRESH_FILE_BYTES)?;
        file.sync_all()?;
        let mut at = 0;
        while at < FRESH_FILE_BYTES {
            let end = (at + GROUP_BYTES).min(FRESH_FILE_BYTES);
            while at < end {
                file.write_at(&chunk, at)?;
                at += chunk.len() as u64;
            }
            file.sync_data()?;
        }
        bytes += FRESH_FILE_BYTES;
    }
    let mbs = bytes as f64 / started.elapsed().as_secs_f64() / 1e6;
    for path in paths {
        fs::remove_file(path)?;
    }
    Ok(mbs)
}

fn accept(slot: u64, payload: &[u8]) -> PersistOp {
    PersistOp::Accept {
        slot: Slot(slot),
        ballot: Ballot::new(1, NodeId(1)),
        value: Value::Batch(vec![Command {
            id: CommandId {
                client: ClientId(1),
                seq: slot,
            },
            payload: payload.to_vec().into(),
        }]),
    }
}

struct WalResult {
    payload: usize,
    batch: usize,
    records: u64,
    secs: f64,
    bytes: u64,
    syncs: u64,
    rotations: u64,
    latency: Histogram<u64>,
}

impl WalResult {
    fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.secs
    }
    fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / self.secs / 1e6
    }
    fn syncs_per_record(&self) -> f64 {
        self.syncs as f64 / self.records as f64
    }
}

/// How a batch reaches the log.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Appends {
    /// One `Wal::append_batches` call with every record of the batch (as `GroupCommit` and
    /// a member append), then `Wal::sync`.
    Batch,
    /// `Wal::append` once per record, then `Wal::sync`.
    PerRecord,
}

/// Appends one batch of `ops` (one record each) as `appends` says, and syncs.
fn append_and_sync(wal: &mut Wal<StdFs>, ops: &[PersistOp], appends: Appends) -> BoxResult<()> {
    match appends {
        Appends::Batch => {
            let batches: Vec<&[PersistOp]> = ops.iter().map(std::slice::from_ref).collect();
            wal.append_batches(&batches)?;
        }
        Appends::PerRecord => {
            for op in ops {
                wal.append(std::slice::from_ref(op))?;
            }
        }
    }
    wal.sync()?;
    Ok(())
}

/// The synchronous path: `batch` records of `payload` bytes appended as `appends` says, then
/// `Wal::sync`. The latency of a batch runs from its first append to the sync's return; the
/// rates count only that time (building the ops is the caller's work, before the log).
fn wal_sync_path(
    dir: &Path,
    payload: usize,
    batch: usize,
    secs: f64,
    appends: Appends,
    prepare_spare: bool,
    background: bool,
) -> BoxResult<WalResult> {
    let _ = fs::remove_dir_all(dir);
    let (mut wal, _) = Wal::open(StdFs::new(), dir, WalOptions::default())?;
    if background {
        wal.start_background_preparer()?;
    }
    wal.sync()?;
    let bytes = vec![0xC3u8; payload];
    let mut slot = 0u64;
    let mut h = histogram();
    let before = wal.stats().clone();
    let mut busy_secs = 0.0;
    let started = Instant::now();
    let mut records = 0u64;
    // At least a few batches, so the big configurations report a latency at all.
    while started.elapsed().as_secs_f64() < secs || h.len() < 5 {
        let ops: Vec<PersistOp> = (0..batch)
            .map(|i| accept(slot + 1 + i as u64, &bytes))
            .collect();
        let t = Instant::now();
        append_and_sync(&mut wal, &ops, appends)?;
        let took = t.elapsed();
        record(&mut h, took);
        busy_secs += took.as_secs_f64();
        slot += batch as u64;
        records += batch as u64;
        if prepare_spare {
            // The caller's idle time (untimed): the next rotation finds its segment ready.
            wal.prepare_next_segment(u64::MAX)?;
        }
    }
    let after = wal.stats().clone();
    drop(wal);
    fs::remove_dir_all(dir)?;
    Ok(WalResult {
        payload,
        batch,
        records,
        secs: busy_secs,
        bytes: after.bytes - before.bytes,
        syncs: after.syncs - before.syncs,
        rotations: after.rotations - before.rotations,
        latency: h,
    })
}

/// A log in the steady state of `WalOptions::recycle_segments`, 64 KiB x 256 per sync, with
/// the background preparer running, compacting as it goes so that only the last 2 segments
/// are kept (a snapshot through the older one's last slot, then `Wal::compact`), so rotations
/// write over compacted files instead of zero-filling new ones.
struct Recycling {
    dir: PathBuf,
    options: WalOptions,
    wal: Wal<StdFs>,
    slot: u64,
    payload: Vec<u8>,
}

impl Recycling {
    const PAYLOAD: usize = 64 << 10;
    const BATCH: usize = 256;

    /// A new log in `dir`, warmed up (untimed) until two rotations have reused files.
    fn start(dir: &Path) -> BoxResult<Recycling> {
        let _ = fs::remove_dir_all(dir);
        let options = WalOptions::default().with_recycle_segments(true);
        let (mut wal, _) = Wal::open(StdFs::new(), dir, options.clone())?;
        wal.start_background_preparer()?;
        wal.sync()?;
        let mut log = Recycling {
            dir: dir.to_path_buf(),
            options,
            wal,
            slot: 0,
            payload: vec![0xC3u8; Self::PAYLOAD],
        };
        while log.wal.stats().recycled_rotations < 2 {
            log.step()?;
        }
        Ok(log)
    }

    /// One batch: returns the log's time (append, sync, compaction; not building the ops
    /// nor writing the snapshot, which are the caller's and the state machine's work).
    fn step(&mut self) -> BoxResult<Duration> {
        let ops: Vec<PersistOp> = (0..Self::BATCH)
            .map(|i| accept(self.slot + 1 + i as u64, &self.payload))
            .collect();
        let t = Instant::now();
        append_and_sync(&mut self.wal, &ops, Appends::Batch)?;
        let mut took = t.elapsed();
        self.slot += Self::BATCH as u64;
        let segs = self.wal.segments();
        if segs.len() > 2 {
            if let Some(through) = segs[segs.len() - 3].max_slot {
                let mut w = storage::SnapshotWriter::create(StdFs::new(), &self.dir, through)?;
                w.write(b"bench state")?;
                w.finish()?;
                let t = Instant::now();
                self.wal.compact(through)?;
                took += t.elapsed();
            }
        }
        Ok(took)
    }

    /// Batches for `secs` of the log's time (and at least 12 batches: 3 rotations).
    fn run(&mut self, secs: f64) -> BoxResult<WalResult> {
        let mut h = histogram();
        let before = self.wal.stats().clone();
        let mut busy = 0.0;
        let mut records = 0u64;
        while busy < secs || h.len() < 12 {
            let took = self.step()?;
            record(&mut h, took);
            busy += took.as_secs_f64();
            records += Self::BATCH as u64;
        }
        let after = self.wal.stats().clone();
        Ok(WalResult {
            payload: Self::PAYLOAD,
            batch: Self::BATCH,
            records,
            secs: busy,
            bytes: after.bytes - before.bytes,
            syncs: after.syncs - before.syncs,
            rotations: after.recycled_rotations - before.recycled_rotations,
            latency: h,
        })
    }

    /// Closes the log, reopens it (timed: recovery over recycled segments searches each file
    /// past its log's end for records that must not be there), and removes it.
    fn finish(self) -> BoxResult<()> {
        drop(self.wal);
        let t = Instant::now();
        let (wal, _) = Wal::open(StdFs::new(), &self.dir, self.options)?;
        println!(
            "  (recycling: reopening the log ({} segments of 64 MiB) took {:.0} ms)",
            wal.segments().len(),
            t.elapsed().as_secs_f64() * 1e3
        );
        drop(wal);
        fs::remove_dir_all(&self.dir)?;
        Ok(())
    }
}

/// `GroupCommit` with `threads` closed-loop submitters of one record each; latency from
/// submit to the completion that covers it.
fn group_commit(dir: &Path, payload: usize, threads: usize, secs: f64) -> BoxResult<WalResult> {
    let _ = fs::remove_dir_all(dir);
    let (mut wal, _) = Wal::open(StdFs::new(), dir, WalOptions::default())?;
    wal.start_background_preparer()?;
    wal.sync()?;
    let before = wal.stats().clone();
    // The highest durable tag, and a condition variable the submitters wait on.
    let durable = Arc::new((Mutex::new(0u64), Condvar::new()));
    let on_done = Arc::clone(&durable);
    let gc = Arc::new(GroupCommit::spawn(
        wal,
        GroupCommitOptions::default(),
        move |c| {
            let (lock, cv) = &*on_done;
            match c {
                Completion::Durable { tag } => {
                    let mut d = lock.lock().expect("durable lock");
                    *d = (*d).max(tag);
                    cv.notify_all();
                }
                Completion::Failed { error, .. } => panic!("group commit failed: {error}"),
            }
        },
    )?);
    // Tags must follow submission order, so taking a tag and submitting happen under one lock.
    let submit_lock = Arc::new(Mutex::new(0u64));
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(secs);
    let mut handles = Vec::new();
    for _ in 0..threads {
        let gc = Arc::clone(&gc);
        let durable = Arc::clone(&durable);
        let submit_lock = Arc::clone(&submit_lock);
        let bytes = vec![0xC3u8; payload];
        handles.push(std::thread::spawn(move || {
            let mut h = histogram();
            while Instant::now() < deadline {
                let t = Instant::now();
                let tag = {
                    let mut next = submit_lock.lock().expect("submit lock");
                    *next += 1;
                    gc.submit(vec![accept(*next, &bytes)], *next)
                        .expect("submit");
                    *next
                };
                let (lock, cv) = &*durable;
                let mut d = lock.lock().expect("durable lock");
                while *d < tag {
                    d = cv.wait(d).expect("durable wait");
                }
                drop(d);
                record(&mut h, t.elapsed());
            }
            h
        }));
    }
    let mut h = histogram();
    for handle in handles {
        let part = handle.join().map_err(|_| "submitter panicked")?;
        h.add(&part)?;
    }
    let secs = started.elapsed().as_secs_f64();
    let gc = Arc::try_unwrap(gc).map_err(|_| "group commit still shared")?;
    let stats = gc.stats();
    let wal = gc.shutdown()?;
    let after = wal.stats().clone();
    drop(wal);
    fs::remove_dir_all(dir)?;
    Ok(WalResult {
        payload,
        batch: 1,
        records: stats.records,
        secs,
        bytes: after.bytes - before.bytes,
        syncs: stats.syncs,
        rotations: after.rotations - before.rotations,
        latency: h,
    })
}

fn wal_json(r: &WalResult, mode: &str, threads: usize) -> Json {
    json!({
        "mode": mode,
        "threads": threads,
        "payload_bytes": r.payload,
        "records_per_sync": r.batch,
        "records": r.records,
        "seconds": r.secs,
        "records_per_sec": r.records_per_sec(),
        "mb_per_sec": r.mb_per_sec(),
        "syncs_per_record": r.syncs_per_record(),
        "rotations": r.rotations,
        "batch_latency": lat_json(&r.latency),
    })
}

fn main() -> BoxResult<()> {
    // `cargo bench` passes `--bench`; a filter argument is accepted and ignored.
    let k = knobs();
    let target = target_dir();
    let dir = match std::env::var("SYNOD_BENCH_DIR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => target.join("bench-tmp"),
    };
    fs::create_dir_all(&dir)?;
    let (fs_name, tmpfs) = fs_type(&dir)?;
    println!(
        "storage bench{}: directory {} on {fs_name}",
        if k.quick { " (quick)" } else { "" },
        dir.display()
    );
    if tmpfs {
        return Err(format!(
            "{} is on tmpfs, which measures memory, not a disk: set SYNOD_BENCH_DIR to a \
             directory on the disk under test",
            dir.display()
        )
        .into());
    }
    let bench_started = Instant::now();

    // The physical reference.
    let (pre_rate, pre_h) = raw_fdatasync(&dir, true, k.raw_secs)?;
    let (app_rate, app_h) = raw_fdatasync(&dir, false, k.raw_secs)?;
    let (group_path, group_file) = preallocated(&dir, k.group_file_bytes)?;
    let grouped =
        |pattern: Pattern| raw_grouped(&group_file, k.group_file_bytes, pattern, k.group_secs);
    let (grp64_mbs, grp64_h) = grouped(SAME_64K)?;
    let (grp64h_mbs, grp64h_h) = grouped(SAME_64K_HINTED)?;
    let (grp64d_mbs, grp64d_h) = grouped(Pattern {
        hint_bytes: 0,
        ..NEW_DATA_64K_HINTED
    })?;
    let (grp64dh_mbs, grp64dh_h) = grouped(NEW_DATA_64K_HINTED)?;
    let (grp1m_mbs, grp1m_h) = grouped(Pattern {
        write_bytes: 1 << 20,
        ..SAME_64K
    })?;
    let seq_mbs = raw_sequential(&dir, k.seq_bytes)?;
    let fresh_zero_mbs = raw_grouped_fresh(&dir, Prealloc::ZeroFill, k.group_secs)?;
    let fresh_falloc_mbs = raw_grouped_fresh(&dir, Prealloc::Fallocate, k.group_secs)?;
    println!();
    println!("physical reference (same directory), at the start of the run");
    println!(
        "{:<60} {:>10} {:>10} {:>10}",
        "", "ops/s", "p50 us", "p99 us"
    );
    for (name, rate, h) in [
        (
            "4 KiB pwrite + fdatasync, preallocated file",
            pre_rate,
            &pre_h,
        ),
        ("4 KiB pwrite + fdatasync, growing file", app_rate, &app_h),
    ] {
        println!(
            "{name:<60} {rate:>10.0} {:>10.1} {:>10.1}",
            us(h, 0.5),
            us(h, 0.99)
        );
    }
    println!(
        "{:<60} {:>10} {:>10} {:>10}",
        "", "MB/s", "p50 ms", "p99 ms"
    );
    let group_row = |name: &str, mbs: f64, h: &Histogram<u64>| {
        println!(
            "{name:<60} {mbs:>10.0} {:>10.1} {:>10.1}",
            us(h, 0.5) / 1e3,
            us(h, 0.99) / 1e3
        );
    };
    group_row(
        "16 MiB groups of 64 KiB + fdatasync, one buffer",
        grp64_mbs,
        &grp64_h,
    );
    group_row(
        "  the same, writeback hint every 1 MiB",
        grp64h_mbs,
        &grp64h_h,
    );
    group_row(
        "16 MiB groups of 64 KiB + fdatasync, new data",
        grp64d_mbs,
        &grp64d_h,
    );
    group_row(
        "  the same, writeback hint every 1 MiB (the reference)",
        grp64dh_mbs,
        &grp64dh_h,
    );
    group_row(
        "16 MiB groups of 1 MiB + fdatasync, one buffer",
        grp1m_mbs,
        &grp1m_h,
    );
    println!(
        "{:<60} {:>10.0}   (growing log: each 64 MiB zero-filled on the clock first)",
        "16 MiB groups of 64 KiB into new zero-filled files", fresh_zero_mbs
    );
    println!(
        "{:<60} {:>10.0}   (growing log: each 64 MiB posix_fallocate'd first)",
        "16 MiB groups of 64 KiB into new fallocated files", fresh_falloc_mbs
    );
    println!(
        "{:<60} {:>10.0}   (not a ceiling: {} MiB through the page cache, one fdatasync)",
        "sequential, page cache then one fdatasync",
        seq_mbs,
        k.seq_bytes >> 20
    );
    println!(
        "  (\"one buffer\": the same 64 KiB written again and again, hot in the CPU's cache; \
         \"new data\": 16 MiB of distinct buffers, as the records of a batch are)"
    );

    // The synchronous WAL path.
    let wal_dir = dir.join("wal");
    let mut results = Vec::new();
    println!();
    println!(
        "WAL, synchronous path (Wal::append_batches per batch, one record per op, Wal::sync; \
         64 MiB segments; background segment preparer running, as on a member; rates over the \
         log's time only)"
    );
    let header = || {
        println!(
            "{:>8} {:>6} {:>12} {:>10} {:>11} {:>11} {:>11} {:>6}",
            "payload", "batch", "records/s", "MB/s", "p50 us", "p99 us", "syncs/rec", "rotat"
        )
    };
    header();
    let row = |r: &WalResult, note: &str| {
        println!(
            "{:>8} {:>6} {:>12.0} {:>10.1} {:>11.1} {:>11.1} {:>11.4} {:>6}{}",
            r.payload,
            r.batch,
            r.records_per_sec(),
            r.mb_per_sec(),
            us(&r.latency, 0.5),
            us(&r.latency, 0.99),
            r.syncs_per_record(),
            r.rotations,
            note
        )
    };
    for payload in [100usize, 1024, 64 << 10] {
        for batch in [1usize, 16, 256] {
            let r = wal_sync_path(
                &wal_dir,
                payload,
                batch,
                k.wal_secs,
                Appends::Batch,
                false,
                true,
            )?;
            row(&r, "");
            results.push(r);
        }
    }
    let per_record = wal_sync_path(
        &wal_dir,
        64 << 10,
        256,
        k.wal_secs,
        Appends::PerRecord,
        false,
        true,
    )?;
    row(
        &per_record,
        "  (Wal::append per record: no second thread for checksums)",
    );
    // Without the preparer: every rotation zero-fills its 64 MiB inline (the old behaviour).
    let inline = wal_sync_path(
        &wal_dir,
        64 << 10,
        256,
        k.wal_secs,
        Appends::Batch,
        false,
        false,
    )?;
    row(&inline, "  (no preparer: rotation zero-fills inline)");
    // Rotation with the next segment prepared in the caller's idle time.
    let spare = wal_sync_path(
        &wal_dir,
        64 << 10,
        16,
        k.wal_secs,
        Appends::Batch,
        true,
        false,
    )?;
    row(&spare, "  (next segment prepared between batches, untimed)");
    // Recycling compacted segments: the steady state of a log that compacts as it goes.
    let mut recycling = Recycling::start(&dir.join("wal-recycling"))?;
    let recycled = recycling.run(k.wal_secs)?;
    row(
        &recycled,
        "  (recycle_segments, keeping 2 segments: rotations reuse compacted files; rotat = reused)",
    );

    // Group commit: one record per submitter, several submitters.
    let gc_dir = dir.join("wal-gc");
    let mut gc_results = Vec::new();
    println!();
    println!("WAL, GroupCommit (one record per submission, closed-loop submitters)");
    println!(
        "{:>8} {:>8} {:>12} {:>10} {:>11} {:>11} {:>11}",
        "payload", "threads", "records/s", "MB/s", "p50 us", "p99 us", "syncs/rec"
    );
    for (payload, threads) in [
        (100usize, 1usize),
        (100, 4),
        (100, 16),
        (100, 64),
        (64 << 10, 16),
    ] {
        let r = group_commit(&gc_dir, payload, threads, k.wal_secs)?;
        println!(
            "{:>8} {:>8} {:>12.0} {:>10.2} {:>11.1} {:>11.1} {:>11.4}",
            r.payload,
            threads,
            r.records_per_sec(),
            r.mb_per_sec(),
            us(&r.latency, 0.5),
            us(&r.latency, 0.99),
            r.syncs_per_record()
        );
        gc_results.push((threads, r));
    }

    // The targets: the WAL and its reference measured in alternation, round after round, so
    // a disk that drifts during the run (it does here, by 10-20 %) moves both sides alike.
    println!();
    println!(
        "targets: {} rounds, each the raw reference then the WAL, back to back",
        k.rounds
    );
    let mut lat_rounds = Vec::new();
    let mut bw_rounds = Vec::new();
    for round in 1..=k.rounds {
        let (_, raw_h) = raw_fdatasync(&dir, true, k.round_secs)?;
        let wal = wal_sync_path(&wal_dir, 100, 1, k.round_secs, Appends::Batch, false, true)?;
        let (raw_new_mbs, _) = raw_grouped(
            &group_file,
            k.group_file_bytes,
            NEW_DATA_64K_HINTED,
            k.round_secs,
        )?;
        let (raw_same_mbs, _) = raw_grouped(
            &group_file,
            k.group_file_bytes,
            SAME_64K_HINTED,
            k.round_secs,
        )?;
        let big = recycling.run(k.round_secs)?;
        let lat = (us(&wal.latency, 0.5), us(&raw_h, 0.5));
        let bw = (big.mb_per_sec(), raw_new_mbs, raw_same_mbs);
        println!(
            "  round {round}: 100 B x 1 p50 {:.1} us vs raw fdatasync {:.1} us = {:.2}x; \
             64 KiB x 256 (recycling) {:.0} MB/s vs new data {:.0} MB/s = {:.2}, vs one buffer \
             {:.0} MB/s = {:.2}",
            lat.0,
            lat.1,
            lat.0 / lat.1,
            bw.0,
            bw.1,
            bw.0 / bw.1,
            bw.2,
            bw.0 / bw.2
        );
        lat_rounds.push(lat);
        bw_rounds.push(bw);
    }
    recycling.finish()?;
    let lat_ratio = median(lat_rounds.iter().map(|(w, r)| w / r).collect());
    let bw_ratio = median(bw_rounds.iter().map(|(w, r, _)| w / r).collect());
    let bw_ratio_same = median(bw_rounds.iter().map(|(w, _, r)| w / r).collect());
    let big = results
        .iter()
        .find(|r| r.payload == 64 << 10 && r.batch == 256)
        .ok_or("no 64 KiB x 256 result")?;

    // The reference again, last: how far the disk itself drifted during the run.
    let (pre_end_rate, pre_end_h) = raw_fdatasync(&dir, true, k.raw_secs)?;
    let (grp64dh_end_mbs, grp64dh_end_h) = grouped(NEW_DATA_64K_HINTED)?;
    drop(group_file);
    fs::remove_file(&group_path)?;
    let drift = |start: f64, end: f64| (end - start) / start * 100.0;
    println!();
    println!("run-to-run noise: the reference at the start and at the end of the run");
    println!(
        "{:<60} {:>10} {:>10} {:>10}",
        "", "ops/s", "p50 us", "p99 us"
    );
    for (name, rate, h) in [
        (
            "4 KiB pwrite + fdatasync, preallocated (start)",
            pre_rate,
            &pre_h,
        ),
        (
            "4 KiB pwrite + fdatasync, preallocated (end)",
            pre_end_rate,
            &pre_end_h,
        ),
    ] {
        println!(
            "{name:<60} {rate:>10.0} {:>10.1} {:>10.1}",
            us(h, 0.5),
            us(h, 0.99)
        );
    }
    println!(
        "{:<60} {:>10} {:>10} {:>10}",
        "", "MB/s", "p50 ms", "p99 ms"
    );
    group_row("new data, hinted (start)", grp64dh_mbs, &grp64dh_h);
    group_row("new data, hinted (end)", grp64dh_end_mbs, &grp64dh_end_h);
    println!(
        "drift end vs start: fdatasync ops/s {:+.1}%, p50 {:+.1}%; grouped bandwidth {:+.1}%",
        drift(pre_rate, pre_end_rate),
        drift(us(&pre_h, 0.5), us(&pre_end_h, 0.5)),
        drift(grp64dh_mbs, grp64dh_end_mbs)
    );

    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
    println!();
    println!("targets (informational; medians over the rounds above)");
    println!(
        "single record (100 B, batch 1) durable latency / raw 4 KiB pwrite + fdatasync into a \
         preallocated file, p50: {lat_ratio:.2}x (target <= 1.2x): {}",
        verdict(lat_ratio <= 1.2)
    );
    println!(
        "large batches (64 KiB x 256, recycle_segments) bandwidth / raw 16 MiB groups of 64 KiB \
         new data, hinted: {bw_ratio:.2} (target >= 0.8): {}",
        verdict(bw_ratio >= 0.8)
    );
    println!(
        "  (informational: vs one hot buffer written again, hinted: {bw_ratio_same:.2}; the \
         64 KiB x 256 row of the table, zero-filled segments from the preparer, did {:.0} MB/s \
         = {:.2} of the first new-data reference and {:.2} of the growing-log reference, \
         {:.0} MB/s)",
        big.mb_per_sec(),
        big.mb_per_sec() / grp64dh_mbs,
        big.mb_per_sec() / fresh_zero_mbs,
        fresh_zero_mbs,
    );
    println!("total {:.1} s", bench_started.elapsed().as_secs_f64());

    let report = json!({
        "quick": k.quick,
        "directory": dir.display().to_string(),
        "filesystem": fs_name,
        "raw": {
            "fdatasync_4k_preallocated": { "ops_per_sec": pre_rate, "latency": lat_json(&pre_h) },
            "fdatasync_4k_growing": { "ops_per_sec": app_rate, "latency": lat_json(&app_h) },
            "fdatasync_4k_preallocated_end": { "ops_per_sec": pre_end_rate, "latency": lat_json(&pre_end_h) },
            "sequential_write_page_cache_one_fdatasync": { "mb_per_sec": seq_mbs, "bytes": k.seq_bytes },
            "groups_64k_one_buffer": { "mb_per_sec": grp64_mbs, "group_latency": lat_json(&grp64_h) },
            "groups_64k_one_buffer_hinted": { "mb_per_sec": grp64h_mbs, "group_latency": lat_json(&grp64h_h) },
            "groups_64k_new_data": { "mb_per_sec": grp64d_mbs, "group_latency": lat_json(&grp64d_h) },
            "groups_64k_new_data_hinted": { "mb_per_sec": grp64dh_mbs, "group_latency": lat_json(&grp64dh_h) },
            "groups_1m_one_buffer": { "mb_per_sec": grp1m_mbs, "group_latency": lat_json(&grp1m_h) },
            "groups_64k_into_new_zero_filled_files": { "mb_per_sec": fresh_zero_mbs },
            "groups_64k_into_new_fallocated_files": { "mb_per_sec": fresh_falloc_mbs },
            "groups_64k_new_data_hinted_end": { "mb_per_sec": grp64dh_end_mbs, "group_latency": lat_json(&grp64dh_end_h) },
        },
        "wal_sync_path": results.iter().map(|r| wal_json(r, "sync", 1)).collect::<Vec<_>>(),
        "wal_sync_path_per_record": wal_json(&per_record, "sync_per_record_appends", 1),
        "wal_sync_path_with_spare": wal_json(&spare, "sync_prepared_spare", 1),
        "wal_sync_path_no_preparer": wal_json(&inline, "sync_inline_fill", 1),
        "wal_sync_path_recycling": wal_json(&recycled, "sync_recycle_segments", 1),
        "wal_group_commit": gc_results.iter().map(|(t, r)| wal_json(r, "group_commit", *t)).collect::<Vec<_>>(),
        "target_rounds": lat_rounds.iter().zip(&bw_rounds).map(|(l, b)| json!({
            "single_record_p50_us": l.0,
            "raw_fdatasync_p50_us": l.1,
            "large_batch_mb_per_sec": b.0,
            "raw_new_data_hinted_mb_per_sec": b.1,
            "raw_one_buffer_hinted_mb_per_sec": b.2,
        })).collect::<Vec<_>>(),
        "targets": {
            "single_record_latency_ratio_p50": lat_ratio,
            "single_record_latency_target": 1.2,
            "single_record_latency_pass": lat_ratio <= 1.2,
            "large_batch_bandwidth_ratio": bw_ratio,
            "large_batch_bandwidth_ratio_vs_one_buffer": bw_ratio_same,
            "large_batch_bandwidth_target": 0.8,
            "large_batch_bandwidth_pass": bw_ratio >= 0.8,
        },
        "seconds": bench_started.elapsed().as_secs_f64(),
    });
    let out = target.join("bench");
    fs::create_dir_all(&out)?;
    let path = out.join("storage.json");
    fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", path.display());
    let _ = fs::remove_dir(&dir);
    Ok(())
}
