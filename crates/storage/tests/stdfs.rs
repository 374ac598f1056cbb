//! Real files in a temporary directory: byte-level damage to a segment, a snapshot and the meta
//! file must each be refused with an error naming the file.

mod common;

use common::*;
use paxos::Slot;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use storage::wal::{scan_records, segment_name, RECORD_BATCH};
use storage::{Meta, StdFs, StorageError, Store, WalOptions};

fn meta() -> Meta {
    Meta {
        cluster_id: 0xABCD,
        member_id: 2,
        initial_members: vec![1, 2, 3],
    }
}

fn options() -> WalOptions {
    WalOptions::with_sizes(16 << 10, 4 << 10)
}

/// An initialized directory with a few synced records and a snapshot.
fn populated() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("member-2");
    Store::init(StdFs::new(), &dir, &meta(), options()).unwrap();
    let (mut store, _) = Store::open(StdFs::new(), &dir, &meta(), options()).unwrap();
    store.append(&[promise(3)]).unwrap();
    for slot in 1..=10 {
        store.append(&[accept(slot, 3, 200)]).unwrap();
    }
    store.sync().unwrap();
    let mut w = store.snapshot_writer(Slot(2)).unwrap();
    w.write(&[7u8; 3000]).unwrap();
    w.finish().unwrap();
    (tmp, dir)
}

fn open_err(dir: &Path) -> String {
    match Store::open(StdFs::new(), dir, &meta(), options()) {
        Ok(_) => panic!("damage went unnoticed"),
        Err(e) => {
            assert!(
                matches!(e, StorageError::Corrupt { .. }),
                "expected corruption, got {e:?}"
            );
            e.to_string()
        }
    }
}

fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
    f.sync_all().unwrap();
}

fn flip(path: &Path, offset: u64) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    f.write_all_at(&[b[0] ^ 0x10], offset).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn a_clean_directory_reopens_with_everything_synced() {
    let (_tmp, dir) = populated();
    let (_, rec) = Store::open(StdFs::new(), &dir, &meta(), options()).unwrap();
    assert_eq!(rec.state.promised, Some(ballot(3)));
    assert_eq!(rec.state.compacted_through, Slot(2));
    assert_eq!(rec.state.entries.len(), 8);
    assert!(rec.repairs.is_empty());
}

#[test]
fn a_flipped_byte_in_a_segment_names_the_file_and_offset() {
    let (_tmp, dir) = populated();
    let records: Vec<_> = scan_records(&StdFs::new(), &dir)
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == RECORD_BATCH)
        .collect();
    let target = &records[3];
    flip(&target.path, target.offset + 20);
    let text = open_err(&dir);
    assert!(text.contains(&target.path.display().to_string()), "{text}");
    assert!(
        text.contains(&format!("at byte {}", target.offset)),
        "{text}"
    );
    assert!(text.contains("checksum mismatch"), "{text}");
}

#[test]
fn zeroed_bytes_inside_a_segment_are_corruption() {
    let (_tmp, dir) = populated();
    let records: Vec<_> = scan_records(&StdFs::new(), &dir)
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == RECORD_BATCH)
        .collect();
    let target = &records[2];
    patch(&target.path, target.offset + 17, &[0u8; 100]);
    let text = open_err(&dir);
    assert!(text.contains(&target.path.display().to_string()), "{text}");
}

#[test]
fn a_truncated_segment_names_the_file() {
    let (_tmp, dir) = populated();
    let path = dir.join(segment_name(1));
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(8000).unwrap();
    f.sync_all().unwrap();
    let text = open_err(&dir);
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("shorter"), "{text}");
}

#[test]
fn a_flipped_byte_in_the_snapshot_names_it() {
    let (_tmp, dir) = populated();
    let path = dir.join(storage::snapshot::snapshot_name(Slot(2)));
    flip(&path, 48 + 1500);
    let text = open_err(&dir);
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("snapshot body checksum mismatch"), "{text}");
}

#[test]
fn a_flipped_byte_in_the_snapshot_header_names_it() {
    let (_tmp, dir) = populated();
    let path = dir.join(storage::snapshot::snapshot_name(Slot(2)));
    flip(&path, 20);
    let text = open_err(&dir);
    assert!(text.contains(&path.display().to_string()), "{text}");
}

#[test]
fn a_flipped_byte_in_meta_names_it() {
    let (_tmp, dir) = populated();
    let path = dir.join("meta");
    flip(&path, 14);
    let text = open_err(&dir);
    assert!(text.contains(&path.display().to_string()), "{text}");
    assert!(text.contains("meta file does not verify"), "{text}");
}

#[test]
fn a_leftover_segment_tmp_is_removed_and_reported() {
    let (_tmp, dir) = populated();
    std::fs::write(dir.join("wal-00000000000000ff.tmp"), b"half a rotation").unwrap();
    let (_, rec) = Store::open(StdFs::new(), &dir, &meta(), options()).unwrap();
    assert!(matches!(
        rec.repairs.as_slice(),
        [storage::Repair::LeftoverRemoved { .. }]
    ));
    assert!(!dir.join("wal-00000000000000ff.tmp").exists());
}
