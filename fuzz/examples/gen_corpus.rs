//! Writes the seed corpus, `fuzz/corpus/<target>/<name>`, after running every seed through
//! its own harness (a seed that trips its harness is a harness bug, found here rather than as
//! a "crash" on the first fuzzing run).
//!
//! `cargo run --example gen_corpus` from `fuzz/` (any toolchain; no libFuzzer involved).
//! Existing seeds of the same name are overwritten; others are left alone.

use std::path::PathBuf;

/// A target's name, its seeds, and its harness.
type Target = (&'static str, fn() -> Vec<synod_fuzz::Seed>, fn(&[u8]));

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let targets: [Target; 4] = [
        (
            "peer_frame",
            synod_fuzz::peer_frame::seeds,
            synod_fuzz::peer_frame::run,
        ),
        (
            "wal_replay",
            synod_fuzz::wal_replay::seeds,
            synod_fuzz::wal_replay::run,
        ),
        (
            "snapshot_chunk",
            synod_fuzz::snapshot_chunk::seeds,
            synod_fuzz::snapshot_chunk::run,
        ),
        (
            "kv_request",
            synod_fuzz::kv_request::seeds,
            synod_fuzz::kv_request::run,
        ),
    ];
    for (target, seeds, run) in targets {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        let seeds = seeds();
        let mut bytes = 0;
        for (name, data) in &seeds {
            run(data);
            std::fs::write(dir.join(name), data)?;
            bytes += data.len();
        }
        println!("{target}: {} seeds, {bytes} bytes", seeds.len());
    }
    Ok(())
}
