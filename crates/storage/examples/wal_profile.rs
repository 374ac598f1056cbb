//! Where the time of the WAL's large-batch path goes (64 KiB records, 256 per sync), on the
//! disk holding the given directory (default `target/bench-tmp`). Measures, each a few times
//! interleaved so a noisy machine shows as spread rather than bias:
//!
//! - the ceiling: 16 MiB groups of 64 KiB `pwrite`s + `fdatasync` into a zero-filled file;
//! - the costs of creating a 64 MiB segment: zero-fill + fsync, `posix_fallocate` + fsync;
//! - the ceiling while another thread zero-fills (does a background preparer steal bandwidth?);
//! - `Wal::append` × 256 + `Wal::sync`, split into CPU time in `append` and time in `sync`,
//!   with rotation filling inline, and with the segment prepared untimed;
//!
//! `cargo run --release -p synod-storage --example wal_profile [DIR]`

use paxos::multi::{ClientId, Command, CommandId, PersistOp, Value};
use paxos::{Ballot, NodeId, Slot};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use storage::{OpenMode, Prealloc, StdFs, Vfs, VfsFile, Wal, WalOptions};

type R<T> = Result<T, Box<dyn std::error::Error>>;

const GROUP: u64 = 16 << 20;
const SEGMENT: u64 = 64 << 20;

fn zero_file(path: &Path, bytes: u64) -> R<File> {
    let _ = fs::remove_file(path);
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)?;
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < bytes {
        f.write_all_at(&zeros, at)?;
        at += zeros.len() as u64;
    }
    f.sync_all()?;
    Ok(f)
}

/// MB/s of 16 MiB groups of 64 KiB writes + fdatasync for `secs`.
fn ceiling(f: &File, file_bytes: u64, secs: f64) -> R<f64> {
    let chunk = vec![0x5Au8; 64 << 10];
    let mut at = 0;
    let mut bytes = 0u64;
    let t = Instant::now();
    while t.elapsed().as_secs_f64() < secs {
        let mut g = 0;
        while g < GROUP {
            if at + chunk.len() as u64 > file_bytes {
                at = 0;
            }
            f.write_all_at(&chunk, at)?;
            at += chunk.len() as u64;
            g += chunk.len() as u64;
        }
        f.sync_data()?;
        bytes += g;
    }
    Ok(bytes as f64 / t.elapsed().as_secs_f64() / 1e6)
}

fn create_ms(dir: &Path, prealloc: Prealloc) -> R<f64> {
    let fs = StdFs::with_prealloc(prealloc);
    let path = dir.join("prof-seg.dat");
    let _ = fs::remove_file(&path);
    let t = Instant::now();
    let mut f = fs.open(&path, OpenMode::CreateNew)?;
    f.allocate(SEGMENT)?;
    f.sync_all()?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    fs::remove_file(&path)?;
    Ok(ms)
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

struct WalRun {
    mbs: f64,
    append_ms_per_batch: f64,
    sync_ms_per_batch: f64,
    rotations: u64,
}

fn wal_run(dir: &Path, fs: StdFs, prepare: bool, secs: f64) -> R<WalRun> {
    let _ = fs::remove_dir_all(dir);
    let (mut wal, _) = Wal::open(fs, dir, WalOptions::default())?;
    let payload = vec![0xC3u8; 64 << 10];
    let before = wal.stats().clone();
    let (mut append_s, mut sync_s, mut idle_s) = (0.0, 0.0, 0.0);
    let mut slot = 0;
    let mut batches = 0u64;
    let t0 = Instant::now();
    while t0.elapsed().as_secs_f64() - idle_s < secs {
        let ops: Vec<PersistOp> = (0..256).map(|i| accept(slot + 1 + i, &payload)).collect();
        slot += 256;
        let t = Instant::now();
        for op in &ops {
            wal.append(std::slice::from_ref(op))?;
        }
        let a = t.elapsed().as_secs_f64();
        wal.sync()?;
        sync_s += t.elapsed().as_secs_f64() - a;
        append_s += a;
        batches += 1;
        let i = Instant::now();
        drop(ops);
        if prepare {
            wal.prepare_next_segment(u64::MAX)?;
        }
        idle_s += i.elapsed().as_secs_f64();
    }
    let after = wal.stats().clone();
    drop(wal);
    fs::remove_dir_all(dir)?;
    Ok(WalRun {
        mbs: (after.bytes - before.bytes) as f64 / (append_s + sync_s) / 1e6,
        append_ms_per_batch: append_s * 1e3 / batches as f64,
        sync_ms_per_batch: sync_s * 1e3 / batches as f64,
        rotations: after.rotations - before.rotations,
    })
}

fn main() -> R<()> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/bench-tmp"));
    fs::create_dir_all(&dir)?;
    let secs = 2.0;
    if let Ok(only) = std::env::var("PROFILE_ONLY") {
        // One WAL configuration alone, for strace/perf.
        let (fs, prepare) = match only.as_str() {
            "inline" => (StdFs::new(), false),
            "spare" => (StdFs::new(), true),
            _ => (StdFs::with_prealloc(Prealloc::Fallocate), false),
        };
        let r = wal_run(&dir.join("prof-wal"), fs, prepare, secs)?;
        println!(
            "{only}: {:>8.0} MB/s  append {:>6.2} ms + sync {:>6.2} ms per 16 MiB batch, {} rotations",
            r.mbs, r.append_ms_per_batch, r.sync_ms_per_batch, r.rotations
        );
        return Ok(());
    }
    let cpath = dir.join("prof-ceiling.dat");
    let cfile = zero_file(&cpath, 256 << 20)?;
    for round in 0..3 {
        println!("--- round {round}");
        println!(
            "ceiling 64K groups            {:>8.0} MB/s",
            ceiling(&cfile, 256 << 20, secs)?
        );
        println!(
            "create 64 MiB: zero-fill+fsync {:>7.1} ms, fallocate+fsync {:>6.2} ms",
            create_ms(&dir, Prealloc::ZeroFill)?,
            create_ms(&dir, Prealloc::Fallocate)?
        );
        // The ceiling with a concurrent zero-filler (a background preparer that never stops).
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = Arc::clone(&stop);
        let d2 = dir.clone();
        let filler = std::thread::spawn(move || -> u64 {
            let mut n = 0;
            while !s2.load(Ordering::Relaxed) {
                let p = d2.join("prof-bg.dat");
                if zero_file(&p, SEGMENT).is_ok() {
                    n += 1;
                }
                let _ = fs::remove_file(&p);
            }
            n
        });
        let with_bg = ceiling(&cfile, 256 << 20, secs)?;
        stop.store(true, Ordering::Relaxed);
        let fills = filler.join().map_err(|_| "filler panicked")?;
        println!(
            "ceiling with a zero-filler     {with_bg:>8.0} MB/s (filler: {:.0} MB/s of zeros)",
            (fills * SEGMENT) as f64 / secs / 1e6
        );
        for (name, fs, prepare) in [
            ("wal, inline zero-fill", StdFs::new(), false),
            ("wal, spare prepared untimed", StdFs::new(), true),
            (
                "wal, fallocate",
                StdFs::with_prealloc(Prealloc::Fallocate),
                false,
            ),
        ] {
            let r = wal_run(&dir.join("prof-wal"), fs, prepare, secs)?;
            println!(
                "{name:<30} {:>8.0} MB/s  append {:>6.2} ms + sync {:>6.2} ms per 16 MiB batch, {} rotations",
                r.mbs, r.append_ms_per_batch, r.sync_ms_per_batch, r.rotations
            );
        }
    }
    drop(cfile);
    fs::remove_file(&cpath)?;
    Ok(())
}
