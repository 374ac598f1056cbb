//! Measures whether a segment preallocated by zero-filling or by `posix_fallocate` makes the
//! appends-with-fdatasync that follow cheaper, on the disk holding the given directory
//! (default: a temporary directory). The result chose [`storage::Prealloc::ZeroFill`].
//!
//! `cargo run --release -p synod-storage --example prealloc [DIR]`

use std::path::PathBuf;
use std::time::Instant;
use storage::{OpenMode, Prealloc, StdFs, Vfs, VfsFile};

const SEGMENT_BYTES: u64 = 64 << 20;
const RECORD_BYTES: usize = 4096;
const APPENDS: u64 = 2000;
const ROUNDS: usize = 3;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = match std::env::args().nth(1) {
        Some(d) => PathBuf::from(d),
        None => std::env::temp_dir().join("synod-prealloc-bench"),
    };
    std::fs::create_dir_all(&dir)?;
    for round in 0..ROUNDS {
        for (name, prealloc) in [
            ("zero-fill", Prealloc::ZeroFill),
            ("fallocate", Prealloc::Fallocate),
        ] {
            let fs = StdFs::with_prealloc(prealloc);
            let path = dir.join(format!("bench-{name}.log"));
            let _ = std::fs::remove_file(&path);
            let started = Instant::now();
            let mut file = fs.open(&path, OpenMode::CreateNew)?;
            file.allocate(SEGMENT_BYTES)?;
            file.sync_all()?;
            fs.sync_dir(&dir)?;
            let create = started.elapsed();
            let record = vec![0xA5u8; RECORD_BYTES];
            let started = Instant::now();
            for i in 0..APPENDS {
                file.write_at(&record, i * RECORD_BYTES as u64)?;
                file.sync_data()?;
            }
            let appends = started.elapsed();
            println!(
                "round {round} {name:>9}: create+prealloc {:>8.2} ms, {APPENDS} x ({RECORD_BYTES} B write + fdatasync) {:>8.2} ms = {:>6.1} us/append",
                create.as_secs_f64() * 1e3,
                appends.as_secs_f64() * 1e3,
                appends.as_secs_f64() * 1e6 / APPENDS as f64
            );
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}
