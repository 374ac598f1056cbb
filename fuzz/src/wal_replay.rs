//! WAL recovery (`storage::Wal::open`) on damaged and on arbitrary segment bytes, on `MemFs`.
//!
//! Input: a mode byte; bit 0 picks the mode.
//!
//! **Damaged log** (bit 0 clear). A real log is written: batches of valid `PersistOp`s drawn
//! from the input (promises only grow, as a replica writes them), some synced, then maybe a
//! power loss (`MemFs::crash`, seed from the input), then up to eight kinds of damage drawn
//! from the input: bit flips (at most three: CRC32C detects every error of three bits or
//! fewer, so flips cannot forge a record), zeroed ranges, truncation, a range copied within
//! or between files (a misdirected write of real data), rollback to the previous sync, and a
//! removed file. Properties, when `Wal::open` succeeds:
//! - it invents nothing and skips nothing: its `last_lsn` falls between the LSNs of batches
//!   `k - 1` and `k` for some `k`, and its state is exactly the replay of batches `0..k`;
//! - with no damage, nothing synced is lost: `k` covers every synced batch (every batch when
//!   there was no crash either);
//! - the recovered log is sound to go on with (see [`check_continues`]).
//!
//!   When it fails, the error is `StorageError::Corrupt` (the disk is a `MemFs` that injects
//!   no I/O error here, so nothing else is expected).
//!
//! **Raw segment** (bit 0 set): the input is the whole first segment file, optionally with a
//! valid header written over its first 64 bytes (bit 1 of the flags byte; bit 2 marks it
//! recycled, with a salt) and every record's CRC fixed up along the chain (bit 3), so that
//! arbitrary CRC-valid records reach the replay. No ground truth exists here, so the property
//! is only that recovery never panics or hangs and that an `Ok` is sound to go on with.
//!
//! Both use 1 KiB segments and 256-byte records (many segments from a few batches, cheap
//! runs) unless a flag asks for `WalOptions::small()`.

use crate::{Cursor, Seed, Writer};
use paxos::multi::{ClientId, Command, CommandId, DurableState, PersistOp, Value};
use paxos::{Ballot, NodeId, Slot};
use rand_chacha::ChaCha8Rng;
use rand_core::SeedableRng;
use std::path::{Path, PathBuf};
use storage::memfs::MemFs;
use storage::wal::{segment_name, SEGMENT_HEADER_BYTES, SEGMENT_MAGIC, SEGMENT_VERSION};
use storage::{Lsn, OpenMode, Recovered, StorageError, Vfs, VfsFile, Wal, WalOptions};

const DIR: &str = "/wal";
/// Batches written at most in the damaged-log mode.
const BATCHES_MAX: u8 = 24;
/// Damage operations applied at most.
const DAMAGE_MAX: usize = 8;
/// Bit flips applied at most: below CRC32C's Hamming distance of 4, so never a forged record.
const FLIPS_MAX: usize = 3;
/// Bytes of a record frame before its payload (length, CRC, LSN, type).
const RECORD_HEADER: usize = 17;

/// Mode bit: raw segment instead of a damaged log.
pub const MODE_RAW: u8 = 1;
/// Mode bit (damaged log): `WalOptions::small()` instead of 1 KiB segments.
pub const MODE_SMALL: u8 = 2;
/// Raw flag: write a valid header over the first 64 bytes.
pub const RAW_FIX_HEADER: u8 = 2;
/// Raw flag: the fixed header marks the segment recycled (records salted).
pub const RAW_RECYCLED: u8 = 4;
/// Raw flag: fix every record's CRC along the chain.
pub const RAW_FIX_CRCS: u8 = 8;
/// Raw flag: `WalOptions::small()` instead of 1 KiB segments.
pub const RAW_SMALL: u8 = 16;

/// Damage kinds, in the order the input's damage byte selects them.
pub const DAMAGE_FLIP: u8 = 0;
/// See [`DAMAGE_FLIP`].
pub const DAMAGE_ZERO: u8 = 1;
/// See [`DAMAGE_FLIP`].
pub const DAMAGE_TRUNCATE: u8 = 2;
/// See [`DAMAGE_FLIP`].
pub const DAMAGE_COPY: u8 = 3;
/// See [`DAMAGE_FLIP`].
pub const DAMAGE_ROLLBACK: u8 = 4;
/// See [`DAMAGE_FLIP`].
pub const DAMAGE_REMOVE: u8 = 5;

fn tiny() -> WalOptions {
    WalOptions::with_sizes(1024, 256)
}

/// Runs one input.
pub fn run(data: &[u8]) {
    outcome(data);
}

/// What recovery made of an input, for the tests that check the seeds reach what they are
/// named for.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `Wal::open` succeeded with this many segments; `batches`: the written batches it
    /// recovered (damaged-log mode; 0 in raw mode).
    Opened {
        /// Batches recovered.
        batches: usize,
        /// Segments in the recovered log.
        segments: usize,
    },
    /// `Wal::open` refused the log as corrupt.
    Refused,
}

/// Runs one input and says what recovery made of it.
pub fn outcome(data: &[u8]) -> Outcome {
    let mut c = Cursor::new(data);
    let mode = c.u8();
    if mode & MODE_RAW == 0 {
        damaged_log(&mut c, mode)
    } else {
        raw_segment(&mut c)
    }
}

/// Draws valid batches: promises never go down, as a replica persists them (recovery refuses
/// a falling promise as corruption, so a harness writing one would only test itself).
#[derive(Default)]
struct OpGen {
    promised: Option<Ballot>,
}

impl OpGen {
    fn raise(&mut self, c: &mut Cursor<'_>) -> Ballot {
        let round = self.promised.map_or(0, |p| p.round) + u64::from(c.u8() % 4);
        let candidate = Ballot::new(round, NodeId(u64::from(c.u8() % 5)));
        let b = self.promised.map_or(candidate, |p| p.max(candidate));
        self.promised = Some(b);
        b
    }

    fn op(&mut self, c: &mut Cursor<'_>) -> PersistOp {
        match c.u8() % 5 {
            0 => PersistOp::Promise {
                ballot: self.raise(c),
            },
            1 => PersistOp::Accept {
                slot: Slot(u64::from(c.u8() % 32)),
                ballot: Ballot::new(u64::from(c.u8() % 16), NodeId(u64::from(c.u8() % 5))),
                value: value(c),
            },
            2 => PersistOp::Chosen {
                slot: Slot(u64::from(c.u8() % 32)),
                ballot: Ballot::new(u64::from(c.u8() % 16), NodeId(u64::from(c.u8() % 5))),
                value: value(c),
            },
            3 => PersistOp::RebuildStarted,
            _ => PersistOp::VoteRegained {
                ballot: self.raise(c),
            },
        }
    }

    fn batch(&mut self, c: &mut Cursor<'_>) -> Vec<PersistOp> {
        // Never empty: an empty batch writes no record, which would blur the LSN bookkeeping.
        (0..1 + c.u8() % 4).map(|_| self.op(c)).collect()
    }
}

fn value(c: &mut Cursor<'_>) -> Value {
    if c.u8().is_multiple_of(2) {
        return Value::Noop;
    }
    Value::Batch(
        (0..c.u8() % 3)
            .map(|_| {
                let client = ClientId(u64::from(c.u8()));
                let seq = u64::from(c.u8());
                let len = usize::from(c.u8() % 48);
                Command {
                    id: CommandId { client, seq },
                    payload: c.bytes(len).to_vec().into(),
                }
            })
            .collect(),
    )
}

fn damaged_log(c: &mut Cursor<'_>, mode: u8) -> Outcome {
    let options = if mode & MODE_SMALL != 0 {
        WalOptions::small()
    } else {
        tiny()
    };
    let fs = MemFs::new();
    let (mut wal, _) = Wal::open(fs.clone(), DIR, options.clone()).expect("a fresh log opens");
    let n = c.u8() % (BATCHES_MAX + 1);
    let sync_before = c.u8() % (n + 1);
    let mut gen = OpGen::default();
    let mut batches: Vec<Vec<PersistOp>> = Vec::new();
    let mut lsns: Vec<Lsn> = Vec::new();
    let mut synced = 0;
    for i in 0..n {
        if i == sync_before {
            wal.sync().expect("sync on a healthy disk");
            synced = batches.len();
        }
        let ops = gen.batch(c);
        match wal.append(&ops) {
            Ok(lsn) => {
                batches.push(ops);
                lsns.push(lsn);
            }
            // Nothing was written: the batch is not part of the log.
            Err(StorageError::RecordTooLarge { .. }) => {}
            Err(e) => panic!("append failed on a healthy disk: {e}"),
        }
    }
    if sync_before == n {
        wal.sync().expect("sync on a healthy disk");
        synced = batches.len();
    }
    let written_last = wal.last_lsn();
    drop(wal);

    let crash = c.u8() & 1 != 0;
    if crash {
        fs.crash(&mut ChaCha8Rng::seed_from_u64(c.u64()));
    }
    let damaged = damage(c, &fs);

    let result = Wal::open(fs.clone(), DIR, options.clone());
    let (wal, recovered) = match result {
        Ok(ok) => ok,
        Err(e) => {
            assert!(
                damaged,
                "a log that was only crashed (crash: {crash}) must open, got: {e}"
            );
            assert!(
                matches!(e, StorageError::Corrupt { .. }),
                "damage must be refused as Corrupt, got: {e:?}"
            );
            return Outcome::Refused;
        }
    };
    let last = recovered.last_lsn;
    assert!(
        last <= written_last,
        "recovered LSN {last} beyond the last written {written_last}: invented records"
    );
    // Batches wholly at or below the recovered end: the log must be exactly their replay.
    let k = lsns.iter().take_while(|lsn| **lsn <= last).count();
    let mut expected = DurableState::default();
    for ops in &batches[..k] {
        for op in ops {
            expected.apply(op);
        }
    }
    assert_eq!(
        recovered.state, expected,
        "recovered state (through {last}) is not the replay of the {k} batches up to it"
    );
    if !damaged {
        let floor = if crash { synced } else { batches.len() };
        assert!(
            k >= floor,
            "lost acknowledged data without damage: recovered {k} batches, {floor} were durable"
        );
    }
    let segments = wal.segments().len();
    check_continues(&fs, wal, recovered, &options);
    Outcome::Opened {
        batches: k,
        segments,
    }
}

/// Damage drawn from the input; returns whether any was done.
fn damage(c: &mut Cursor<'_>, fs: &MemFs) -> bool {
    let dir = Path::new(DIR);
    let mut damaged = false;
    let mut flips = 0;
    for _ in 0..DAMAGE_MAX {
        if c.is_empty() {
            break;
        }
        let files = fs.files();
        if files.is_empty() {
            break;
        }
        let kind = c.u8() % 6;
        let target = &files[usize::from(c.u8()) % files.len()];
        let len = target.len;
        let path = target.path.clone();
        match kind {
            DAMAGE_FLIP => {
                let at = u64::from(c.u32());
                let bit = c.u8();
                if flips < FLIPS_MAX && target.durable_len > 0 {
                    fs.flip_bit(&path, at % target.durable_len, bit)
                        .expect("flip within the file");
                    flips += 1;
                    damaged = true;
                }
            }
            DAMAGE_ZERO => {
                let at = u64::from(c.u32());
                let n = u64::from(c.u16() % 2048);
                if len > 0 {
                    let at = at % len;
                    let n = n.min(len - at);
                    write_at(fs, &path, at, &vec![0u8; n as usize]);
                    damaged = true;
                }
            }
            DAMAGE_TRUNCATE => {
                let to = u64::from(c.u32()) % (len + 1);
                fs.truncate(&path, to).expect("truncate an existing file");
                damaged = true;
            }
            DAMAGE_COPY => {
                let source = &files[usize::from(c.u8()) % files.len()];
                let from = u64::from(c.u32());
                let to = u64::from(c.u32());
                let n = u64::from(c.u16() % 1024);
                if source.len > 0 && len > 0 {
                    let from = from % source.len;
                    let to = to % len;
                    let n = n.min(source.len - from).min(len - to);
                    let mut buf = vec![0u8; n as usize];
                    fs.open(&source.path, OpenMode::Existing)
                        .and_then(|mut f| f.read_at(&mut buf, from))
                        .expect("read within the file");
                    write_at(fs, &path, to, &buf);
                    damaged = true;
                }
            }
            DAMAGE_ROLLBACK => {
                fs.rollback(&path).expect("roll back an existing file");
                damaged = true;
            }
            _ => {
                fs.remove(&path).expect("remove an existing file");
                fs.sync_dir(dir).expect("sync the directory");
                damaged = true;
            }
        }
    }
    damaged
}

fn write_at(fs: &MemFs, path: &Path, at: u64, bytes: &[u8]) {
    fs.open(path, OpenMode::Existing)
        .and_then(|mut f| {
            f.write_at(bytes, at)?;
            f.sync_data()
        })
        .expect("write within an existing file");
}

/// A recovered log must be sound to go on with: opened again it recovers the same state with
/// nothing left to repair, and a batch appended and synced to it is there on the next open.
fn check_continues(fs: &MemFs, wal: Wal<MemFs>, recovered: Recovered, options: &WalOptions) {
    drop(wal);
    let (mut wal, again) = match Wal::open(fs.clone(), DIR, options.clone()) {
        Ok(ok) => ok,
        Err(e) => panic!("a log that opened does not open again: {e}"),
    };
    assert_eq!(
        again.state, recovered.state,
        "a second open recovers another state"
    );
    assert_eq!(
        again.last_lsn, recovered.last_lsn,
        "a second open ends elsewhere"
    );
    assert!(
        again.repairs.is_empty(),
        "a second open repairs again: {:?}",
        again.repairs
    );

    let state = &recovered.state;
    let mut ops = Vec::new();
    let round = state.promised.map_or(Some(1), |p| p.round.checked_add(1));
    if let Some(round) = round {
        ops.push(PersistOp::Promise {
            ballot: Ballot::new(round, NodeId(1)),
        });
    }
    let top = state
        .entries
        .keys()
        .next_back()
        .copied()
        .unwrap_or(state.compacted_through);
    if let Some(slot) = top.0.checked_add(1) {
        ops.push(PersistOp::Accept {
            slot: Slot(slot),
            ballot: Ballot::new(round.unwrap_or(u64::MAX), NodeId(1)),
            value: Value::Batch(vec![Command {
                id: CommandId {
                    client: ClientId(1),
                    seq: 1,
                },
                payload: b"after recovery".to_vec().into(),
            }]),
        });
    }
    if ops.is_empty() {
        ops.push(PersistOp::RebuildStarted);
    }
    let lsn = match wal.append(&ops).and_then(|lsn| wal.sync().map(|_| lsn)) {
        Ok(lsn) => lsn,
        Err(e) => panic!("append to a recovered log failed: {e}"),
    };
    drop(wal);
    let mut expected = state.clone();
    for op in &ops {
        expected.apply(op);
    }
    match Wal::open(fs.clone(), DIR, options.clone()) {
        Ok((_, after)) => {
            assert_eq!(
                after.state, expected,
                "a batch appended after recovery is lost"
            );
            assert_eq!(after.last_lsn, lsn);
        }
        Err(e) => panic!("a recovered log with one more batch does not open: {e}"),
    }
}

fn raw_segment(c: &mut Cursor<'_>) -> Outcome {
    let flags = c.u8();
    let options = if flags & RAW_SMALL != 0 {
        WalOptions::small()
    } else {
        tiny()
    };
    let mut seg = c.rest().to_vec();
    if flags & RAW_FIX_HEADER != 0 {
        fix_header(&mut seg, flags & RAW_RECYCLED != 0);
    }
    if flags & RAW_FIX_CRCS != 0 && seg.len() >= SEGMENT_HEADER_BYTES as usize {
        let recycled = seg[40] & 1 != 0;
        let salt = recycled.then(|| u32::from_le_bytes([seg[44], seg[45], seg[46], seg[47]]));
        fix_crcs(&mut seg, salt, options.record_bytes_max);
    }
    let fs = MemFs::new();
    let dir = PathBuf::from(DIR);
    fs.create_dir_all(&dir).expect("mkdir");
    let path = dir.join(segment_name(1));
    fs.open(&path, OpenMode::CreateNew)
        .and_then(|mut f| {
            f.write_at(&seg, 0)?;
            f.sync_data()
        })
        .expect("write the segment");
    fs.sync_dir(&dir).expect("sync the directory");
    match Wal::open(fs.clone(), DIR, options.clone()) {
        Ok((wal, recovered)) => {
            let segments = wal.segments().len();
            check_continues(&fs, wal, recovered, &options);
            Outcome::Opened {
                batches: 0,
                segments,
            }
        }
        Err(e) => {
            assert!(
                matches!(e, StorageError::Corrupt { .. }),
                "bad segment bytes must be refused as Corrupt, got: {e:?}"
            );
            Outcome::Refused
        }
    }
}

/// Writes a valid header for segment 1 at LSN 1 over the first 64 bytes (padding the file
/// to hold it and a checkpoint frame), keeping the input's salt bytes.
fn fix_header(seg: &mut Vec<u8>, recycled: bool) {
    let min = SEGMENT_HEADER_BYTES as usize + RECORD_HEADER;
    if seg.len() < min {
        seg.resize(min, 0);
    }
    let len = seg.len() as u64;
    seg[..8].copy_from_slice(&SEGMENT_MAGIC);
    seg[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    seg[12..16].copy_from_slice(&(SEGMENT_HEADER_BYTES as u32).to_le_bytes());
    seg[16..24].copy_from_slice(&1u64.to_le_bytes());
    seg[24..32].copy_from_slice(&1u64.to_le_bytes());
    seg[32..40].copy_from_slice(&len.to_le_bytes());
    seg[40] = u8::from(recycled);
    seg[41..44].fill(0);
    seg[48..60].fill(0);
    let crc = crc32c::crc32c(&seg[..60]);
    seg[60..64].copy_from_slice(&crc.to_le_bytes());
}

/// Recomputes every record's CRC from the first record on, following the length fields, so
/// that the record contents the fuzzer chose reach the replay.
fn fix_crcs(seg: &mut [u8], salt: Option<u32>, record_bytes_max: u64) {
    let mut p = SEGMENT_HEADER_BYTES as usize;
    while p + RECORD_HEADER <= seg.len() {
        // An all-zero frame header is where a log ends (no record has LSN 0): sealing it
        // would write a CRC into the zeros after the end.
        if seg[p..p + RECORD_HEADER].iter().all(|b| *b == 0) {
            break;
        }
        let len = u32::from_le_bytes([seg[p], seg[p + 1], seg[p + 2], seg[p + 3]]);
        let end = p + RECORD_HEADER + len as usize;
        if u64::from(len) > record_bytes_max || end > seg.len() {
            break;
        }
        let crc = record_crc(salt, &seg[p..end]);
        seg[p + 4..p + 8].copy_from_slice(&crc.to_le_bytes());
        p = end;
    }
}

/// A record's CRC as `docs/storage-format.md` defines it: over every byte of the frame but
/// the CRC's own four, the salt (recycled segments only) first.
fn record_crc(salt: Option<u32>, record: &[u8]) -> u32 {
    let seed = match salt {
        Some(salt) => crc32c::crc32c_append(crc32c::crc32c(&salt.to_le_bytes()), &record[..4]),
        None => crc32c::crc32c(&record[..4]),
    };
    crc32c::crc32c_append(seed, &record[8..])
}

/// Writes the damaged-log input for `batches` (encoded as `OpGen` reads them).
struct ScenarioWriter {
    w: Writer,
}

impl ScenarioWriter {
    fn new(mode: u8, batches: u8, sync_before: u8) -> Self {
        let mut w = Writer::default();
        w.u8(mode).u8(batches).u8(sync_before);
        ScenarioWriter { w }
    }

    /// A batch of one promise (round delta 1, node 1) and one accepted command.
    fn batch(&mut self, slot: u8, payload: &[u8]) -> &mut Self {
        self.w.u8(2); // 1 + 2 % 4 = 3 ops
        self.w.u8(0).u8(1).u8(1); // Promise, round +1, node 1
        self.w.u8(1).u8(slot).u8(3).u8(1); // Accept at slot, ballot (3, n1)
        self.w.u8(1).u8(1).u8(7).u8(slot).u8(payload.len() as u8); // one command
        self.w.bytes(payload);
        self.w.u8(2).u8(slot).u8(3).u8(1).u8(0); // Chosen at slot, Noop
        self
    }

    fn end(&mut self, crash_seed: Option<u64>) -> &mut Writer {
        match crash_seed {
            Some(seed) => self.w.u8(1).u64(seed),
            None => self.w.u8(0),
        }
    }
}

/// A segment file written by the real log, for the raw seeds.
fn real_segment(batches: usize) -> Vec<u8> {
    let fs = MemFs::new();
    let (mut wal, _) = Wal::open(fs.clone(), DIR, tiny()).expect("opens");
    for i in 0..batches {
        wal.append(&[
            PersistOp::Promise {
                ballot: Ballot::new(i as u64 + 1, NodeId(1)),
            },
            PersistOp::Accept {
                slot: Slot(i as u64 + 1),
                ballot: Ballot::new(i as u64 + 1, NodeId(1)),
                value: Value::Noop,
            },
        ])
        .expect("appends");
    }
    wal.sync().expect("syncs");
    fs.read_durable(&Path::new(DIR).join(segment_name(1)))
        .expect("segment 1 exists")
}

/// Seeds: clean logs, crashed ones, one per damage kind, and real segments for the raw mode.
pub fn seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    let log = |n: u8, sync_before: u8, mode: u8| {
        let mut s = ScenarioWriter::new(mode, n, sync_before);
        for i in 0..n {
            s.batch(i + 1, &[b'v', i]);
        }
        s
    };
    out.push(("clean".into(), log(6, 6, 0).end(None).0.clone()));
    out.push((
        "clean-many-segments".into(),
        log(20, 20, 0).end(None).0.clone(),
    ));
    out.push((
        "clean-small".into(),
        log(8, 8, MODE_SMALL).end(None).0.clone(),
    ));
    out.push(("crash-unsynced".into(), log(8, 3, 0).end(Some(7)).0.clone()));
    out.push(("crash-synced".into(), log(8, 8, 0).end(Some(9)).0.clone()));
    let damages: [(&str, Vec<u8>); 6] = [
        ("flip", {
            let mut w = Writer::default();
            w.u8(DAMAGE_FLIP).u8(0).u32(200).u8(3);
            w.0
        }),
        ("zero", {
            let mut w = Writer::default();
            w.u8(DAMAGE_ZERO).u8(0).u32(150).u16(40);
            w.0
        }),
        ("truncate", {
            let mut w = Writer::default();
            w.u8(DAMAGE_TRUNCATE).u8(1).u32(500);
            w.0
        }),
        ("copy", {
            let mut w = Writer::default();
            w.u8(DAMAGE_COPY).u8(1).u8(0).u32(81).u32(300).u16(120);
            w.0
        }),
        ("rollback", {
            let mut w = Writer::default();
            w.u8(DAMAGE_ROLLBACK).u8(1);
            w.0
        }),
        ("remove", {
            let mut w = Writer::default();
            w.u8(DAMAGE_REMOVE).u8(1);
            w.0
        }),
    ];
    for (name, d) in damages {
        let mut s = log(12, 12, 0);
        let w = s.end(None);
        w.bytes(&d);
        out.push((format!("damage-{name}"), w.0.clone()));
    }
    for (name, flags, batches) in [
        ("raw-segment", 0u8, 4usize),
        ("raw-fixed", RAW_FIX_HEADER | RAW_FIX_CRCS, 4),
        (
            "raw-recycled",
            RAW_FIX_HEADER | RAW_RECYCLED | RAW_FIX_CRCS,
            2,
        ),
        ("raw-empty", 0, 0),
    ] {
        let mut w = Writer::default();
        w.u8(MODE_RAW).u8(flags).bytes(&real_segment(batches));
        out.push((name.into(), w.0));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_crc_matches_the_log() {
        // The harness's CRC must be the log's, or the fix-up mode would fix nothing.
        let seg = real_segment(2);
        let mut fixed = seg.clone();
        fix_crcs(&mut fixed, None, 256);
        assert_eq!(seg, fixed);
    }

    #[test]
    fn seeds_reach_what_they_are_named_for() {
        for (name, data) in seeds() {
            let got = outcome(&data);
            eprintln!("{name}: {got:?}");
            match name.as_str() {
                "clean" => assert_eq!(
                    got,
                    Outcome::Opened {
                        batches: 6,
                        segments: 1
                    }
                ),
                "clean-small" => assert_eq!(
                    got,
                    Outcome::Opened {
                        batches: 8,
                        segments: 1
                    }
                ),
                "clean-many-segments" => {
                    assert!(
                        matches!(got, Outcome::Opened { batches: 20, segments } if segments > 2)
                    )
                }
                n if n.starts_with("crash") || n.starts_with("raw") => {
                    assert!(matches!(got, Outcome::Opened { .. }), "{name}")
                }
                _ => {}
            }
        }
    }
}
