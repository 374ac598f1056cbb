//! Snapshot transfer: `storage::SnapshotChunk::decode` and a `SnapshotReceiver` on `MemFs`
//! fed with decoded, forged, damaged and honest chunks.
//!
//! Input: a mode byte (bit 0), then:
//! - **decode** (0): the rest is one encoded chunk. Properties: a decoded chunk re-encodes to
//!   exactly the input (the format is fixed-width, so there is one encoding per chunk);
//!   `verify` agrees with a recomputed checksum; fed to a receiver made from its own fields
//!   it obeys the receiver properties below.
//! - **transfer** (1): a snapshot slot, a body (length u16, then its bytes), optional lies
//!   about its CRC and length, then up to 64 operations: an honest next chunk, a chunk with
//!   fuzz-chosen offset and data (and checksum recomputed, so it passes `verify`), an honest
//!   chunk with one bit flipped on the wire, raw chunk bytes, or a restart with a new receiver.
//!
//! Receiver properties, checked after every `accept`: every refusal is `ChunkRejected`
//! naming the offset the receiver really expects; the bytes accepted so far are exactly the
//! data of the chunks it took; a chunk damaged on the wire is never taken; and a snapshot it
//! reports complete has the body it took, whose CRC is the one announced, and reads back
//! verified (`read_snapshot_meta`, `read_snapshot_body`, `latest_snapshot`). In short: a
//! receiver never installs a snapshot whose body fails its CRC.

use crate::{Cursor, Seed, Writer};
use paxos::Slot;
use std::path::PathBuf;
use storage::memfs::MemFs;
use storage::{
    latest_snapshot, read_snapshot_body, read_snapshot_meta, SnapshotChunk, SnapshotReceiver,
    StorageError, Vfs,
};

const DIR: &str = "/snap";
/// Operations of one transfer at most.
const OPS_MAX: usize = 64;

/// Mode bit: a transfer script instead of one encoded chunk.
pub const MODE_TRANSFER: u8 = 1;
/// Transfer flag: announce a CRC read from the input instead of the body's.
pub const LIE_CRC: u8 = 1;
/// Transfer flag: announce a length read from the input instead of the body's.
pub const LIE_LEN: u8 = 2;

/// Operation tags of a transfer.
pub const OP_HONEST: u8 = 0;
/// See [`OP_HONEST`].
pub const OP_FORGED: u8 = 1;
/// See [`OP_HONEST`].
pub const OP_DAMAGED: u8 = 2;
/// See [`OP_HONEST`].
pub const OP_RAW: u8 = 3;
/// See [`OP_HONEST`].
pub const OP_RESTART: u8 = 4;

/// Runs one input.
pub fn run(data: &[u8]) {
    installs(data);
}

/// Runs one input and returns how many snapshots were installed, for the tests that check
/// the seeds reach what they are named for.
pub fn installs(data: &[u8]) -> usize {
    let mut c = Cursor::new(data);
    if c.u8() & MODE_TRANSFER == 0 {
        decode_one(c.rest())
    } else {
        transfer(&mut c)
    }
}

/// Decodes `bytes`, checking the codec properties; `None` if they are not a chunk.
fn decode_checked(bytes: &[u8]) -> Option<SnapshotChunk> {
    let chunk = SnapshotChunk::decode(bytes).ok()?;
    assert_eq!(
        chunk.encode(),
        bytes,
        "a decoded chunk re-encodes differently"
    );
    let recomputed = SnapshotChunk::new(
        chunk.through,
        chunk.offset,
        chunk.total_len,
        chunk.body_crc,
        chunk.data.clone(),
    );
    assert_eq!(
        chunk.verify(),
        recomputed.chunk_crc == chunk.chunk_crc,
        "verify disagrees with the checksum"
    );
    Some(chunk)
}

fn decode_one(bytes: &[u8]) -> usize {
    let Some(chunk) = decode_checked(bytes) else {
        return 0;
    };
    let mut t = Transfer::new(chunk.through, chunk.total_len, chunk.body_crc);
    t.accept(&chunk, false);
    t.installs
}

/// One receiver and what it must hold.
struct Transfer {
    fs: MemFs,
    rx: SnapshotReceiver<MemFs>,
    through: Slot,
    total_len: u64,
    body_crc: u32,
    /// The data of every chunk taken since the receiver last started over.
    taken: Vec<u8>,
    installed: bool,
    /// The newest snapshot installed in the directory so far.
    newest: Option<Slot>,
    /// Snapshots installed so far.
    installs: usize,
}

impl Transfer {
    fn new(through: Slot, total_len: u64, body_crc: u32) -> Transfer {
        let fs = MemFs::new();
        fs.create_dir_all(&PathBuf::from(DIR)).expect("mkdir");
        let rx = SnapshotReceiver::new(fs.clone(), DIR, through, total_len, body_crc)
            .expect("a receiver starts on a healthy disk");
        Transfer {
            fs,
            rx,
            through,
            total_len,
            body_crc,
            taken: Vec::new(),
            installed: false,
            newest: None,
            installs: 0,
        }
    }

    /// A new receiver in the same directory (a transfer restarted, maybe for another slot).
    fn restart(&mut self, through: Slot) {
        self.rx =
            SnapshotReceiver::new(self.fs.clone(), DIR, through, self.total_len, self.body_crc)
                .expect("a receiver restarts on a healthy disk");
        self.through = through;
        self.taken.clear();
        self.installed = false;
    }

    /// Offers `chunk`; `damaged`: it was changed on the wire, so it must be refused.
    fn accept(&mut self, chunk: &SnapshotChunk, damaged: bool) {
        let result = self.rx.accept(chunk);
        if damaged {
            assert!(result.is_err(), "a chunk damaged on the wire was taken");
        }
        match result {
            Ok(None) => {
                assert!(!self.installed, "took a chunk after installing");
                self.taken.extend_from_slice(&chunk.data);
                assert!((self.taken.len() as u64) < self.total_len);
                assert_eq!(self.rx.next_offset(), self.taken.len() as u64);
            }
            Ok(Some(meta)) => {
                assert!(!self.installed, "installed twice");
                self.taken.extend_from_slice(&chunk.data);
                self.installed = true;
                self.installs += 1;
                self.check_installed(&meta);
            }
            Err(StorageError::ChunkRejected { resume_from, .. }) => {
                if self.installed {
                    assert_eq!(resume_from, self.total_len);
                    return;
                }
                if resume_from == 0 {
                    // The whole body failed its CRC and was discarded (or nothing was taken).
                    self.taken.clear();
                }
                assert_eq!(
                    resume_from,
                    self.taken.len() as u64,
                    "a refusal names the wrong offset to resume from"
                );
                assert_eq!(self.rx.next_offset(), resume_from);
            }
            Err(e) => panic!("a receiver on a healthy disk failed otherwise than a refusal: {e}"),
        }
    }

    fn check_installed(&mut self, meta: &storage::SnapshotMeta) {
        assert_eq!(self.taken.len() as u64, self.total_len, "installed short");
        assert_eq!(
            crc32c::crc32c(&self.taken),
            self.body_crc,
            "installed a body that fails its CRC"
        );
        assert_eq!(
            (meta.through, meta.body_len, meta.body_crc),
            (self.through, self.total_len, self.body_crc)
        );
        let body = read_snapshot_body(&self.fs, meta).expect("an installed snapshot reads back");
        assert_eq!(body, self.taken, "installed other bytes than those taken");
        let verified = read_snapshot_meta(&self.fs, &meta.path).expect("installed, so verifies");
        assert_eq!(&verified, meta);
        let newest = self.newest.map_or(meta.through, |n| n.max(meta.through));
        self.newest = Some(newest);
        let latest = latest_snapshot(&self.fs, &PathBuf::from(DIR))
            .expect("the directory verifies")
            .expect("a snapshot was installed");
        assert_eq!(
            latest.through, newest,
            "latest_snapshot is not the newest installed"
        );
    }
}

fn transfer(c: &mut Cursor<'_>) -> usize {
    let through = Slot(u64::from(c.u8() % 4));
    let body_len = usize::from(c.u16() % 2049);
    let flags = c.u8();
    let body_crc = if flags & LIE_CRC != 0 { c.u32() } else { 0 };
    let total = if flags & LIE_LEN != 0 {
        u64::from(c.u16() % 4097)
    } else {
        0
    };
    let mut body = c.bytes(body_len).to_vec();
    body.resize(body_len, 0);
    let body_crc = if flags & LIE_CRC != 0 {
        body_crc
    } else {
        crc32c::crc32c(&body)
    };
    let total_len = if flags & LIE_LEN != 0 {
        total
    } else {
        body.len() as u64
    };
    let mut t = Transfer::new(through, total_len, body_crc);
    let honest = |t: &Transfer, n: usize| {
        let from = usize::try_from(t.rx.next_offset())
            .unwrap_or(usize::MAX)
            .min(body.len());
        let to = from.saturating_add(n).min(body.len());
        SnapshotChunk::new(
            t.through,
            t.rx.next_offset(),
            t.total_len,
            t.body_crc,
            body[from..to].to_vec(),
        )
    };
    for _ in 0..OPS_MAX {
        if c.is_empty() {
            break;
        }
        match c.u8() % 5 {
            OP_HONEST => {
                let chunk = honest(&t, usize::from(c.u16() % 1025));
                t.accept(&chunk, false);
            }
            OP_FORGED => {
                let how = c.u8();
                let offset = if how & 1 != 0 {
                    t.rx.next_offset()
                } else {
                    u64::from(c.u16())
                };
                let len = usize::from(c.u8());
                let data = c.bytes(len).to_vec();
                let chunk = SnapshotChunk::new(
                    Slot(t.through.0 + u64::from(how >> 1 & 1)),
                    offset,
                    t.total_len + u64::from(how >> 2 & 1),
                    t.body_crc ^ u32::from(how >> 3 & 1),
                    data,
                );
                t.accept(&chunk, false);
            }
            OP_DAMAGED => {
                let chunk = honest(&t, usize::from(c.u16() % 1025));
                let mut wire = chunk.encode();
                let bit = usize::from(c.u16()) % (wire.len() * 8);
                wire[bit / 8] ^= 1 << (bit % 8);
                if let Some(got) = decode_checked(&wire) {
                    // One flipped bit always changes the chunk; CRC32C always catches it.
                    assert_ne!(got, chunk);
                    t.accept(&got, true);
                }
            }
            OP_RAW => {
                let len = usize::from(c.u16() % 2048);
                if let Some(chunk) = decode_checked(c.bytes(len)) {
                    t.accept(&chunk, false);
                }
            }
            _ => t.restart(Slot(u64::from(c.u8() % 4))),
        }
    }
    t.installs
}

/// Seeds: encoded chunks, and honest, lying, damaged and restarted transfers.
pub fn seeds() -> Vec<Seed> {
    let body: Vec<u8> = (0..600u32).map(|i| (i * 7 % 251) as u8).collect();
    let crc = crc32c::crc32c(&body);
    let mut out = Vec::new();
    for (name, offset, data) in [
        ("chunk-first", 0u64, &body[..200]),
        ("chunk-last", 400, &body[400..]),
        ("chunk-empty", 0, &body[..0]),
    ] {
        let chunk = SnapshotChunk::new(Slot(3), offset, body.len() as u64, crc, data.to_vec());
        let mut w = Writer::default();
        w.u8(0).bytes(&chunk.encode());
        out.push((name.into(), w.0));
    }
    let script = |flags: u8, lies: &[u8], ops: &[u8]| {
        let mut w = Writer::default();
        w.u8(MODE_TRANSFER)
            .u8(3)
            .u16(body.len() as u16)
            .u8(flags)
            .bytes(lies)
            .bytes(&body)
            .bytes(ops);
        w.0
    };
    let mut honest = Writer::default();
    honest.u8(OP_HONEST).u16(256);
    honest.u8(OP_HONEST).u16(256);
    honest.u8(OP_HONEST).u16(256);
    out.push(("transfer-honest".into(), script(0, &[], &honest.0)));
    let mut mixed = Writer::default();
    mixed.u8(OP_HONEST).u16(100);
    mixed.u8(OP_DAMAGED).u16(100).u16(77);
    mixed.u8(OP_FORGED).u8(1).u8(4).bytes(b"junk");
    mixed.u8(OP_HONEST).u16(1024);
    mixed.u8(OP_RESTART).u8(2);
    mixed.u8(OP_HONEST).u16(1024);
    out.push(("transfer-mixed".into(), script(0, &[], &mixed.0)));
    let raw = SnapshotChunk::new(Slot(3), 0, body.len() as u64, crc, body.clone()).encode();
    let mut rawop = Writer::default();
    rawop.u8(OP_RAW).u16(raw.len() as u16).bytes(&raw);
    out.push(("transfer-raw".into(), script(0, &[], &rawop.0)));
    // A sender lying about the CRC: the whole body is refused and the transfer starts over.
    let mut lie = Writer::default();
    lie.u32(0xdead_beef);
    out.push((
        "transfer-lying-crc".into(),
        script(LIE_CRC, &lie.0, &honest.0),
    ));
    let mut lie = Writer::default();
    lie.u16(300);
    out.push((
        "transfer-lying-len".into(),
        script(LIE_LEN, &lie.0, &honest.0),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_reach_what_they_are_named_for() {
        for (name, data) in seeds() {
            let expected = match name.as_str() {
                "chunk-first" | "chunk-last" | "chunk-empty" => 0,
                "transfer-honest" | "transfer-raw" => 1,
                // The forged chunk's junk makes the whole body fail its CRC (discarded);
                // the restarted transfer for another slot installs.
                "transfer-mixed" => 1,
                // The body fails the announced CRC; the length lie is caught by the CRC too,
                // since the body is cut at the announced length.
                "transfer-lying-crc" | "transfer-lying-len" => 0,
                other => panic!("no expectation for seed {other}"),
            };
            assert_eq!(installs(&data), expected, "{name}");
        }
    }
}
