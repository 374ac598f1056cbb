//! How long a member takes to come back: `Wal::open` replaying a large log, and the same
//! directory after a snapshot, compaction and a short tail (open + reading the snapshot).
//! Each is measured with the files in the page cache (warm) and evicted from it (cold,
//! `posix_fadvise(DONTNEED)` after they were synced), with the peak resident memory of the
//! open. Every case runs in a fresh child process (this binary re-executed with
//! `SYNOD_RECOVERY_CHILD` set), which reports its resident memory before the open (`VmRSS`,
//! the binary's baseline) and its peak after (`VmHWM`): in one process, the heap that writing
//! the log or an earlier case left behind (kept by the allocator) would count as recovery's,
//! and `clear_refs` can only reset the peak to that polluted level.
//!
//! `cargo bench -p synod-storage --bench recovery`: a 1 GiB log; `SYNOD_BENCH_QUICK=1`: 128 MiB.
//! `SYNOD_BENCH_DIR=<dir>` as for the `wal` bench. Writes `target/bench/recovery.json`.

use paxos::multi::{ClientId, Command, CommandId, PersistOp, Value};
use paxos::{Ballot, NodeId, Slot};
use serde_json::json;
use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::Instant;
use storage::{read_snapshot_body, SnapshotWriter, StdFs, Wal, WalOptions};

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

const RECORD_PAYLOAD: usize = 64 << 10;
const RECORDS_PER_SYNC: usize = 64;

fn target_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"))
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

/// Appends `bytes` of 64 KiB records from slot `first`; returns the last slot written.
fn fill(wal: &mut Wal<StdFs>, first: u64, bytes: u64) -> BoxResult<u64> {
    let payload = vec![0x3Cu8; RECORD_PAYLOAD];
    let records = bytes / RECORD_PAYLOAD as u64;
    let mut slot = first;
    let mut written = 0;
    while written < records {
        let n = (records - written).min(RECORDS_PER_SYNC as u64);
        let batch: Vec<Vec<PersistOp>> = (0..n).map(|i| vec![accept(slot + i, &payload)]).collect();
        wal.append_batches(&batch)?;
        wal.sync()?;
        slot += n;
        written += n;
    }
    Ok(slot - 1)
}

/// Evicts every file of `dir` from the page cache (they are synced, so the pages are clean).
fn evict(dir: &Path) -> BoxResult<()> {
    for entry in fs::read_dir(dir)? {
        let file = fs::File::open(entry?.path())?;
        file.sync_all()?;
        // SAFETY: the descriptor is owned by `file`, alive for the call; no memory is passed.
        let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc).into());
        }
    }
    Ok(())
}

/// Set in a child process: `<directory>` and `<0|1>` (read the snapshot too), separated by `|`.
const CHILD_ENV: &str = "SYNOD_RECOVERY_CHILD";

/// A `kB` field of `/proc/self/status` (`VmRSS`, `VmHWM`), in MiB.
fn status_mib(field: &str) -> f64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn dir_bytes(dir: &Path) -> BoxResult<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        total += entry?.metadata()?.len();
    }
    Ok(total)
}

struct Measured {
    secs: f64,
    /// Resident memory of the child before the open: the binary, its libraries, the runtime.
    baseline_mib: f64,
    /// Peak resident memory of the child, open included.
    peak_rss_mib: f64,
    entries: usize,
}

impl Measured {
    /// What the open itself added at its peak.
    fn open_peak_mib(&self) -> f64 {
        self.peak_rss_mib - self.baseline_mib
    }
}

/// The child's side: one open (and snapshot read), then one line for the parent.
fn child(spec: &str) -> BoxResult<()> {
    let (dir, snapshot) = spec.rsplit_once('|').ok_or("bad child spec")?;
    let baseline = status_mib("VmRSS:");
    let started = Instant::now();
    let (wal, recovered) = Wal::open(StdFs::new(), dir, WalOptions::default())?;
    if snapshot == "1" {
        let meta = recovered
            .snapshot
            .as_ref()
            .ok_or("the snapshot case recovered no snapshot")?;
        let body = read_snapshot_body(&StdFs::new(), meta)?;
        std::hint::black_box(&body);
    }
    let secs = started.elapsed().as_secs_f64();
    let peak = status_mib("VmHWM:");
    println!(
        "measured {secs} {baseline} {peak} {}",
        recovered.state.entries.len()
    );
    drop(recovered);
    drop(wal);
    Ok(())
}

/// Opens the log (and, with `snapshot`, reads the snapshot body) in a fresh child process,
/// `cold` after evicting the directory from the page cache.
fn measure_open(dir: &Path, cold: bool, snapshot: bool) -> BoxResult<Measured> {
    if cold {
        evict(dir)?;
    }
    let spec = format!("{}|{}", dir.display(), if snapshot { 1 } else { 0 });
    let out = Process::new(std::env::current_exe()?)
        .env(CHILD_ENV, spec)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "recovery child failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let stdout = String::from_utf8(out.stdout)?;
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("measured "))
        .ok_or("the recovery child printed no measurement")?;
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() != 4 {
        return Err(format!("unexpected child line {line:?}").into());
    }
    Ok(Measured {
        secs: f[0].parse()?,
        baseline_mib: f[1].parse()?,
        peak_rss_mib: f[2].parse()?,
        entries: f[3].parse()?,
    })
}

fn main() -> BoxResult<()> {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return child(&spec);
    }
    let quick = std::env::var("SYNOD_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let log_bytes: u64 = if quick { 128 << 20 } else { 1 << 30 };
    let snapshot_bytes: u64 = if quick { 16 << 20 } else { 64 << 20 };
    let tail_bytes: u64 = 16 << 20;
    let target = target_dir();
    let base = match std::env::var("SYNOD_BENCH_DIR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => target.join("bench-tmp"),
    };
    let dir = base.join("recovery");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir)?;
    println!(
        "recovery bench{}: {} MiB log of {} KiB records in {}",
        if quick { " (quick)" } else { "" },
        log_bytes >> 20,
        RECORD_PAYLOAD >> 10,
        dir.display()
    );

    let started = Instant::now();
    let (mut wal, _) = Wal::open(StdFs::new(), &dir, WalOptions::default())?;
    let last = fill(&mut wal, 1, log_bytes)?;
    let segments = wal.segments().len();
    drop(wal);
    let on_disk = dir_bytes(&dir)?;
    println!(
        "wrote {last} records, {segments} segments, {:.0} MiB on disk in {:.1} s",
        on_disk as f64 / f64::from(1 << 20),
        started.elapsed().as_secs_f64()
    );
    let gib = log_bytes as f64 / f64::from(1u32 << 30);

    let full_cold = measure_open(&dir, true, false)?;
    let full_warm = measure_open(&dir, false, false)?;

    // Snapshot covering every slot so far, compaction, then a short tail.
    let mut wal = Wal::open(StdFs::new(), &dir, WalOptions::default())?.0;
    let mut writer = SnapshotWriter::create(StdFs::new(), &dir, Slot(last))?;
    let chunk = vec![0x77u8; 1 << 20];
    while writer.written() < snapshot_bytes {
        writer.write(&chunk)?;
    }
    writer.finish()?;
    let removed = wal.compact(Slot(last))?;
    let tail_last = fill(&mut wal, last + 1, tail_bytes)?;
    let tail_segments = wal.segments().len();
    drop(wal);
    let snap_on_disk = dir_bytes(&dir)?;
    let snap_cold = measure_open(&dir, true, true)?;
    let snap_warm = measure_open(&dir, false, true)?;

    println!();
    println!(
        "{:<48} {:>9} {:>9} {:>10} {:>10} {:>9}",
        "case", "seconds", "s/GiB", "open MiB", "peak MiB", "entries"
    );
    let row = |name: &str, m: &Measured, per_gib: Option<f64>| {
        println!(
            "{name:<48} {:>9.3} {:>9} {:>10.0} {:>10.0} {:>9}",
            m.secs,
            per_gib.map_or("-".to_string(), |g| format!("{:.3}", m.secs / g)),
            m.open_peak_mib(),
            m.peak_rss_mib,
            m.entries
        );
    };
    row(
        &format!("full replay, {} MiB log, cold cache", log_bytes >> 20),
        &full_cold,
        Some(gib),
    );
    row(
        &format!("full replay, {} MiB log, warm cache", log_bytes >> 20),
        &full_warm,
        Some(gib),
    );
    let snap_name = format!(
        "snapshot {} MiB + tail {} MiB ({} segs), cold",
        snapshot_bytes >> 20,
        tail_bytes >> 20,
        tail_segments
    );
    row(&snap_name, &snap_cold, None);
    row(&snap_name.replace("cold", "warm"), &snap_warm, None);
    println!(
        "(compaction removed {removed} segments; the snapshot case reads {:.0} MiB: snapshot, \
         the active segment's compacted records and the tail through slot {tail_last})",
        snap_on_disk as f64 / f64::from(1 << 20)
    );
    println!(
        "(each case in its own process; open MiB = peak VmHWM minus VmRSS before the open: the \
         recovered DurableState, i.e. every entry since the snapshot, plus one segment read whole \
         at a time, plus the snapshot body in the snapshot case)"
    );

    let m = |x: &Measured| json!({ "seconds": x.secs, "peak_rss_mib": x.peak_rss_mib, "baseline_rss_mib": x.baseline_mib, "open_peak_mib": x.open_peak_mib(), "entries": x.entries });
    let report = json!({
        "quick": quick,
        "directory": dir.display().to_string(),
        "record_payload_bytes": RECORD_PAYLOAD,
        "full_replay": {
            "log_bytes": log_bytes,
            "segments": segments,
            "cold": m(&full_cold),
            "warm": m(&full_warm),
            "cold_seconds_per_gib": full_cold.secs / gib,
            "warm_seconds_per_gib": full_warm.secs / gib,
        },
        "snapshot_and_tail": {
            "snapshot_bytes": snapshot_bytes,
            "tail_bytes": tail_bytes,
            "segments_removed": removed,
            "segments_left": tail_segments,
            "directory_bytes": snap_on_disk,
            "cold": m(&snap_cold),
            "warm": m(&snap_warm),
        },
    });
    let out = target.join("bench");
    fs::create_dir_all(&out)?;
    let path = out.join("recovery.json");
    fs::write(&path, serde_json::to_string_pretty(&report)?)?;
    println!("wrote {}", path.display());
    fs::remove_dir_all(&dir)?;
    Ok(())
}
