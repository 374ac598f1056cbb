//! Large appends take another path than small ones: payloads of 2 KiB and more go to the file
//! by reference (`pwritev`), and an append of 1 MiB or more checksums its records on a second
//! thread while the first writes. These tests hold that path to the bytes the plain one
//! writes, and to what recovery reads back, on simulated and on real files.

mod common;

use common::*;
use paxos::multi::PersistOp;
use std::path::Path;
use storage::memfs::MemFs;
use storage::{StdFs, Vfs, Wal, WalOptions};

/// Batches of one accept each, with payloads from 1 byte to 96 KiB (both sides of the
/// by-reference threshold), a promise and a chosen mixed in: about 3 MiB in all.
fn batches() -> Vec<Vec<PersistOp>> {
    let mut out = vec![vec![promise(2)]];
    for slot in 1..=80u64 {
        let bytes = match slot % 5 {
            0 => 1,
            1 => 2047,
            2 => 2048,
            3 => 40 << 10,
            _ => 96 << 10,
        };
        let mut batch = vec![accept(slot, 2, bytes)];
        if slot % 7 == 0 {
            batch.push(chosen(slot - 1, 2));
        }
        out.push(batch);
    }
    out
}

/// 1 MiB segments, so an append of every batch rotates in the middle, several times.
fn options() -> WalOptions {
    WalOptions::with_sizes(1 << 20, 256 << 10).with_salt_seed(Some(11))
}

/// Every file of `dir`, name and durable bytes.
fn durable_files(fs: &MemFs, dir: &str) -> Vec<(String, Vec<u8>)> {
    fs.list(Path::new(dir))
        .unwrap()
        .into_iter()
        .map(|name| {
            let bytes = fs.read_durable(&Path::new(dir).join(&name)).unwrap();
            (name, bytes)
        })
        .collect()
}

fn write_all_at_once(fs: &MemFs, dir: &str, options: WalOptions) {
    let (mut wal, _) = Wal::open(fs.clone(), dir, options).unwrap();
    wal.append_batches(&batches()).unwrap();
    wal.sync().unwrap();
}

fn write_one_by_one(fs: &MemFs, dir: &str, options: WalOptions) {
    let (mut wal, _) = Wal::open(fs.clone(), dir, options).unwrap();
    for batch in batches() {
        wal.append(&batch).unwrap();
    }
    wal.sync().unwrap();
}

#[test]
fn one_large_append_writes_the_bytes_that_many_small_appends_write() {
    for recycle in [false, true] {
        let options = options().with_recycle_segments(recycle);
        let at_once = MemFs::new();
        write_all_at_once(&at_once, "/a", options.clone());
        let one_by_one = MemFs::new();
        write_one_by_one(&one_by_one, "/a", options.clone());
        let a = durable_files(&at_once, "/a");
        let b = durable_files(&one_by_one, "/a");
        assert!(
            a.len() >= 3,
            "the append spans several segments: {}",
            a.len()
        );
        assert_eq!(
            a.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            b.iter().map(|(n, _)| n).collect::<Vec<_>>()
        );
        for ((name, x), (_, y)) in a.iter().zip(&b) {
            assert!(x == y, "{name} differs (recycle {recycle})");
        }
    }
}

#[test]
fn a_large_append_reads_back_after_reopening() {
    let fs = MemFs::new();
    write_all_at_once(&fs, "/a", options());
    let (_, recovered) = Wal::open(fs, "/a", options()).unwrap();
    assert_eq!(recovered.state, replay(&Default::default(), &batches()));
}

#[test]
fn a_damaged_byte_in_a_large_payload_is_caught() {
    // The checksum computed on the second thread covers the borrowed payloads: one flipped
    // byte in the middle of a 96 KiB payload is found on open.
    let fs = MemFs::new();
    write_all_at_once(&fs, "/a", options());
    let first = fs
        .list(Path::new("/a"))
        .unwrap()
        .into_iter()
        .find(|n| n.starts_with("wal-"))
        .unwrap();
    let path = Path::new("/a").join(&first);
    let bytes = fs.read_durable(&path).unwrap();
    // Past the segment header and the first records, inside a payload of bytes 1..=251.
    let at = (300 << 10) + 17;
    assert_ne!(
        bytes[at], 0,
        "the damage lands in a record, not in unused space"
    );
    fs.flip_bit(&path, at as u64, 4).unwrap();
    let err = Wal::open(fs, "/a", options()).unwrap_err().to_string();
    assert!(err.contains(&first), "the error names the segment: {err}");
}

#[test]
fn a_large_append_on_real_files_reads_back_with_writeback_hints_on_and_off() {
    // 8 MiB segments and about 15 MiB of batches: with a hint every 2 MiB, at least three
    // fall in the first segment.
    let mut all = batches();
    for round in 1..3u64 {
        all.extend((1..=80u64).map(|slot| vec![accept(round * 100 + slot, 2, 40 << 10)]));
        all.extend(batches().into_iter().skip(1));
    }
    for writeback in [0, 2 << 20] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("wal");
        let options = WalOptions::with_sizes(8 << 20, 256 << 10).with_writeback_bytes(writeback);
        let (mut wal, _) = Wal::open(StdFs::new(), &dir, options.clone()).unwrap();
        wal.append_batches(&all).unwrap();
        wal.sync().unwrap();
        assert!(wal.segments().len() >= 2, "the append rotates");
        let hints = wal.stats().writeback_hints;
        if writeback == 0 {
            assert_eq!(hints, 0);
        } else {
            assert!(hints >= 3, "{hints} hints");
        }
        drop(wal);
        let (_, recovered) = Wal::open(StdFs::new(), &dir, options).unwrap();
        assert_eq!(recovered.state, replay(&Default::default(), &all));
    }
}
