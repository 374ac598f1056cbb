//! Snapshot files and their transfer between peers.
//!
//! A snapshot `snap-<slot as 16 hex digits>.snap` holds the state machine's opaque bytes for
//! every slot up to its slot. It is written under `.tmp`, fsynced, renamed and the directory
//! fsynced, so a snapshot with its final name is always whole; only then are older snapshots
//! removed and may the log be compacted.

use crate::codec::{put_u32, put_u64, Reader};
use crate::error::{DecodeError, Result, StorageError};
use crate::vfs::{OpenMode, Vfs, VfsFile};
use paxos::Slot;
use std::path::{Path, PathBuf};

/// Bytes of a snapshot header.
pub const SNAPSHOT_HEADER_BYTES: u64 = 48;
/// Magic number at the start of a snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"SYNODSNP";
/// Version of the snapshot file format.
pub const SNAPSHOT_VERSION: u32 = 1;
/// Bytes read at a time when verifying a snapshot body.
const VERIFY_CHUNK_BYTES: usize = 1 << 20;

/// A verified snapshot on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotMeta {
    /// Every slot up to and including this one is in the snapshot.
    pub through: Slot,
    /// Length of the body in bytes.
    pub body_len: u64,
    /// CRC32C of the body.
    pub body_crc: u32,
    /// The file.
    pub path: PathBuf,
}

/// The file name of the snapshot covering `through`.
pub fn snapshot_name(through: Slot) -> String {
    format!("snap-{:016x}.snap", through.0)
}

fn parse_snapshot_name(name: &str) -> Option<Slot> {
    let hex = name.strip_prefix("snap-")?.strip_suffix(".snap")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(Slot)
}

fn is_snapshot_tmp(name: &str) -> bool {
    name.starts_with("snap-") && name.ends_with(".tmp")
}

/// The header a snapshot file of `body` covering `through` starts with. A file made of this
/// header and then `body` is a snapshot file wherever it lies: [`read_snapshot_meta`] and
/// [`read_snapshot_body`] verify it (a backup streamed to a client is one).
pub fn snapshot_header(through: Slot, body: &[u8]) -> Vec<u8> {
    encode_header(through, body.len() as u64, crc32c::crc32c(body))
}

fn encode_header(through: Slot, body_len: u64, body_crc: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(SNAPSHOT_HEADER_BYTES as usize);
    out.extend_from_slice(&SNAPSHOT_MAGIC);
    put_u32(&mut out, SNAPSHOT_VERSION);
    put_u32(&mut out, SNAPSHOT_HEADER_BYTES as u32);
    put_u64(&mut out, through.0);
    put_u64(&mut out, body_len);
    put_u32(&mut out, body_crc);
    out.resize(44, 0);
    let crc = crc32c::crc32c(&out);
    put_u32(&mut out, crc);
    out
}

/// Reads and verifies a snapshot file: header, length and the CRC of the whole body.
pub fn read_snapshot_meta<V: Vfs>(vfs: &V, path: &Path) -> Result<SnapshotMeta> {
    let mut file = vfs
        .open(path, OpenMode::Existing)
        .map_err(|e| StorageError::io("open", path, e))?;
    let meta = read_header(&mut file, path)?;
    let mut crc = 0u32;
    let mut at = 0u64;
    let mut buf = vec![0u8; VERIFY_CHUNK_BYTES];
    while at < meta.body_len {
        let n = (meta.body_len - at).min(buf.len() as u64) as usize;
        file.read_at(&mut buf[..n], SNAPSHOT_HEADER_BYTES + at)
            .map_err(|e| StorageError::io("read", path, e))?;
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        at += n as u64;
    }
    if crc != meta.body_crc {
        return Err(StorageError::corrupt(
            path,
            SNAPSHOT_HEADER_BYTES,
            format!(
                "snapshot body checksum mismatch (stored {:#010x}, computed {crc:#010x})",
                meta.body_crc
            ),
        ));
    }
    Ok(meta)
}

/// Verifies a whole snapshot file held in memory, `bytes`, read from `path` (named in errors):
/// header, length and the CRC of the body, as [`read_snapshot_meta`] does for a file on disk.
/// The body is `bytes[SNAPSHOT_HEADER_BYTES..]`.
pub fn verify_snapshot_bytes(path: &Path, bytes: &[u8]) -> Result<SnapshotMeta> {
    let len = bytes.len() as u64;
    let header = bytes
        .get(..SNAPSHOT_HEADER_BYTES as usize)
        .and_then(|h| <&[u8; SNAPSHOT_HEADER_BYTES as usize]>::try_from(h).ok())
        .ok_or_else(|| too_short(path, len))?;
    let meta = parse_header(header, len, path)?;
    let crc = crc32c::crc32c(&bytes[SNAPSHOT_HEADER_BYTES as usize..]);
    if crc != meta.body_crc {
        return Err(StorageError::corrupt(
            path,
            SNAPSHOT_HEADER_BYTES,
            format!(
                "snapshot body checksum mismatch (stored {:#010x}, computed {crc:#010x})",
                meta.body_crc
            ),
        ));
    }
    Ok(meta)
}

fn too_short(path: &Path, len: u64) -> StorageError {
    StorageError::corrupt(
        path,
        0,
        format!("the file is {len} bytes, too short for a snapshot header"),
    )
}

fn read_header<F: VfsFile>(file: &mut F, path: &Path) -> Result<SnapshotMeta> {
    let len = file.len().map_err(|e| StorageError::io("stat", path, e))?;
    if len < SNAPSHOT_HEADER_BYTES {
        return Err(too_short(path, len));
    }
    let mut h = [0u8; SNAPSHOT_HEADER_BYTES as usize];
    file.read_at(&mut h, 0)
        .map_err(|e| StorageError::io("read", path, e))?;
    parse_header(&h, len, path)
}

/// Checks a snapshot header `h` of a file of `len` bytes at `path`.
fn parse_header(
    h: &[u8; SNAPSHOT_HEADER_BYTES as usize],
    len: u64,
    path: &Path,
) -> Result<SnapshotMeta> {
    if h[..8] != SNAPSHOT_MAGIC {
        return Err(StorageError::corrupt(
            path,
            0,
            "bad magic number: not a Synod snapshot",
        ));
    }
    let mut r = Reader::new(&h[..44]);
    let computed = crc32c::crc32c(&h[..44]);
    let stored = u32::from_le_bytes([h[44], h[45], h[46], h[47]]);
    if stored != computed {
        return Err(StorageError::corrupt(
            path,
            44,
            format!("snapshot header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"),
        ));
    }
    let parse = |r: &mut Reader<'_>| -> std::result::Result<_, DecodeError> {
        r.bytes(8)?;
        Ok((r.u32()?, r.u32()?, r.u64()?, r.u64()?, r.u32()?))
    };
    let (version, header_bytes, through, body_len, body_crc) =
        parse(&mut r).map_err(|e| StorageError::corrupt(path, 0, e.to_string()))?;
    if version != SNAPSHOT_VERSION || u64::from(header_bytes) != SNAPSHOT_HEADER_BYTES {
        return Err(StorageError::corrupt(
            path,
            8,
            format!("unsupported snapshot format version {version}"),
        ));
    }
    let expected = SNAPSHOT_HEADER_BYTES.checked_add(body_len);
    if expected != Some(len) {
        return Err(StorageError::corrupt(
            path,
            len.min(expected.unwrap_or(u64::MAX)),
            format!("the file is {len} bytes but its header declares a body of {body_len} bytes (truncated?)"),
        ));
    }
    if let Some(named) = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(parse_snapshot_name)
    {
        if named.0 != through {
            return Err(StorageError::corrupt(
                path,
                16,
                format!(
                    "the header covers slot {through} but the file is named for slot {}",
                    named.0
                ),
            ));
        }
    }
    Ok(SnapshotMeta {
        through: Slot(through),
        body_len,
        body_crc,
        path: path.to_path_buf(),
    })
}

/// Reads a verified snapshot's whole body, checking its CRC again (the disk may have changed
/// since it was verified).
pub fn read_snapshot_body<V: Vfs>(vfs: &V, meta: &SnapshotMeta) -> Result<Vec<u8>> {
    let path = &meta.path;
    let mut file = vfs
        .open(path, OpenMode::Existing)
        .map_err(|e| StorageError::io("open", path, e))?;
    let fresh = read_header(&mut file, path)?;
    let len = usize::try_from(fresh.body_len)
        .map_err(|_| StorageError::corrupt(path, 24, "snapshot body too large for memory"))?;
    let mut body = vec![0u8; len];
    file.read_at(&mut body, SNAPSHOT_HEADER_BYTES)
        .map_err(|e| StorageError::io("read", path, e))?;
    let crc = crc32c::crc32c(&body);
    if crc != fresh.body_crc || fresh != *meta {
        return Err(StorageError::corrupt(
            path,
            SNAPSHOT_HEADER_BYTES,
            format!(
                "snapshot body checksum mismatch (stored {:#010x}, computed {crc:#010x})",
                fresh.body_crc
            ),
        ));
    }
    Ok(body)
}

/// The newest snapshot in `dir`, verified, after deleting leftover `.tmp` files of interrupted
/// writes. A newest snapshot that does not verify is an error: falling back to an older one
/// would silently lose the slots the log no longer holds.
pub fn latest_snapshot<V: Vfs>(vfs: &V, dir: &Path) -> Result<Option<SnapshotMeta>> {
    latest_snapshot_inner(vfs, dir, &mut Vec::new())
}

pub(crate) fn latest_snapshot_inner<V: Vfs>(
    vfs: &V,
    dir: &Path,
    repairs: &mut Vec<crate::wal::Repair>,
) -> Result<Option<SnapshotMeta>> {
    let names = vfs
        .list(dir)
        .map_err(|e| StorageError::io("list", dir, e))?;
    let mut removed = false;
    for name in names.iter().filter(|n| is_snapshot_tmp(n)) {
        let path = dir.join(name);
        tracing::warn!(path = %path.display(), "removing the leftover of an interrupted snapshot");
        vfs.remove(&path)
            .map_err(|e| StorageError::io("remove", &path, e))?;
        repairs.push(crate::wal::Repair::LeftoverRemoved { path });
        removed = true;
    }
    if removed {
        vfs.sync_dir(dir)
            .map_err(|e| StorageError::io("sync directory", dir, e))?;
    }
    let newest = names
        .iter()
        .filter_map(|n| parse_snapshot_name(n).map(|s| (s, n)))
        .max();
    match newest {
        None => Ok(None),
        Some((_, name)) => read_snapshot_meta(vfs, &dir.join(name)).map(Some),
    }
}

pub(crate) fn newest_snapshot_slot<V: Vfs>(vfs: &V, dir: &Path) -> Result<Option<Slot>> {
    let names = vfs
        .list(dir)
        .map_err(|e| StorageError::io("list", dir, e))?;
    Ok(names.iter().filter_map(|n| parse_snapshot_name(n)).max())
}

/// Removes the files of `dir` whose names `doomed` picks, then syncs the directory (if it
/// removed any): after it returns, they are gone for good.
pub(crate) fn remove_files<V: Vfs>(
    vfs: &V,
    dir: &Path,
    doomed: impl Fn(&str) -> bool,
) -> Result<()> {
    let names = vfs
        .list(dir)
        .map_err(|e| StorageError::io("list", dir, e))?;
    let mut removed = false;
    for name in names.iter().filter(|n| doomed(n)) {
        let path = dir.join(name);
        vfs.remove(&path)
            .map_err(|e| StorageError::io("remove", &path, e))?;
        removed = true;
    }
    if removed {
        vfs.sync_dir(dir)
            .map_err(|e| StorageError::io("sync directory", dir, e))?;
    }
    Ok(())
}

/// Streams a snapshot into `snap-....tmp`; [`SnapshotWriter::finish`] makes it the newest.
pub struct SnapshotWriter<V: Vfs> {
    vfs: V,
    dir: PathBuf,
    through: Slot,
    tmp: PathBuf,
    file: V::File,
    written: u64,
    crc: u32,
}

impl<V: Vfs> SnapshotWriter<V> {
    /// Starts a snapshot covering every slot through `through`.
    pub fn create(vfs: V, dir: impl Into<PathBuf>, through: Slot) -> Result<Self> {
        let dir = dir.into();
        let tmp = dir.join(format!("snap-{:016x}.tmp", through.0));
        Self::create_at(vfs, dir, through, tmp)
    }

    /// Starts a snapshot covering `through` in the temporary file `tmp` (in `dir`), which
    /// [`SnapshotWriter::finish`] renames into place.
    pub(crate) fn create_at(vfs: V, dir: PathBuf, through: Slot, tmp: PathBuf) -> Result<Self> {
        let mut file = vfs
            .open(&tmp, OpenMode::CreateTruncate)
            .map_err(|e| StorageError::io("create", &tmp, e))?;
        // A zero header until finish: a crash leaves a file that can never verify.
        file.write_at(&[0u8; SNAPSHOT_HEADER_BYTES as usize], 0)
            .map_err(|e| StorageError::io("write", &tmp, e))?;
        drop(file);
        Self::reopen(vfs, dir, through, tmp, 0, 0)
    }

    /// Goes on with the temporary file `tmp` (in `dir`) of a snapshot covering `through`,
    /// whose first `written` body bytes, with CRC32C `crc`, are there already (a receive that
    /// resumes after a restart: `intake.rs` checked them).
    pub(crate) fn reopen(
        vfs: V,
        dir: PathBuf,
        through: Slot,
        tmp: PathBuf,
        written: u64,
        crc: u32,
    ) -> Result<Self> {
        let file = vfs
            .open(&tmp, OpenMode::Existing)
            .map_err(|e| StorageError::io("open", &tmp, e))?;
        Ok(SnapshotWriter {
            vfs,
            dir,
            through,
            tmp,
            file,
            written,
            crc,
        })
    }

    /// Makes the body written so far durable (`fdatasync` of the temporary file).
    pub(crate) fn sync_data(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| StorageError::io("sync", &self.tmp, e))
    }

    /// Reads `buf.len()` body bytes from `offset` of the temporary file.
    pub(crate) fn read_body(&mut self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.file
            .read_at(buf, SNAPSHOT_HEADER_BYTES + offset)
            .map_err(|e| StorageError::io("read", &self.tmp, e))
    }

    /// Appends body bytes.
    pub fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.file
            .write_at(chunk, SNAPSHOT_HEADER_BYTES + self.written)
            .map_err(|e| StorageError::io("write", &self.tmp, e))?;
        self.written += chunk.len() as u64;
        self.crc = crc32c::crc32c_append(self.crc, chunk);
        Ok(())
    }

    /// Body bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// CRC32C of the body written so far.
    pub fn body_crc(&self) -> u32 {
        self.crc
    }

    /// Writes the header, fsyncs, renames into place, fsyncs the directory, then removes older
    /// snapshots (and fsyncs the directory again). After it returns the snapshot is durable and
    /// the log may be compacted through its slot.
    pub fn finish(mut self) -> Result<SnapshotMeta> {
        let header = encode_header(self.through, self.written, self.crc);
        self.file
            .write_at(&header, 0)
            .and_then(|()| self.file.sync_all())
            .map_err(|e| StorageError::io("sync", &self.tmp, e))?;
        let path = self.dir.join(snapshot_name(self.through));
        self.vfs
            .rename(&self.tmp, &path)
            .map_err(|e| StorageError::io("rename", &self.tmp, e))?;
        self.vfs
            .sync_dir(&self.dir)
            .map_err(|e| StorageError::io("sync directory", &self.dir, e))?;
        let through = self.through;
        remove_files(&self.vfs, &self.dir, |name| {
            parse_snapshot_name(name).is_some_and(|s| s < through)
        })?;
        Ok(SnapshotMeta {
            through: self.through,
            body_len: self.written,
            body_crc: self.crc,
            path,
        })
    }

    /// Gives up: removes the temporary file.
    pub fn abort(self) -> Result<()> {
        self.vfs
            .remove(&self.tmp)
            .map_err(|e| StorageError::io("remove", &self.tmp, e))
    }
}

/// One piece of a snapshot in transfer. `chunk_crc` covers every other field and the data, so
/// a chunk damaged on the wire is refused and asked for again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotChunk {
    /// The snapshot's slot.
    pub through: Slot,
    /// Offset of `data` in the body.
    pub offset: u64,
    /// Length of the whole body.
    pub total_len: u64,
    /// CRC32C of the whole body.
    pub body_crc: u32,
    /// The bytes.
    pub data: Vec<u8>,
    /// CRC32C of the encoding of all the fields above.
    pub chunk_crc: u32,
}

/// Fixed bytes of an encoded chunk besides its data.
const CHUNK_FIXED_BYTES: usize = 8 + 8 + 8 + 4 + 4 + 4;

impl SnapshotChunk {
    /// A chunk with its checksum computed.
    pub fn new(through: Slot, offset: u64, total_len: u64, body_crc: u32, data: Vec<u8>) -> Self {
        let mut chunk = SnapshotChunk {
            through,
            offset,
            total_len,
            body_crc,
            data,
            chunk_crc: 0,
        };
        chunk.chunk_crc = chunk.computed_crc();
        chunk
    }

    fn encode_fields(&self, out: &mut Vec<u8>) {
        put_u64(out, self.through.0);
        put_u64(out, self.offset);
        put_u64(out, self.total_len);
        put_u32(out, self.body_crc);
        put_u32(out, u32::try_from(self.data.len()).unwrap_or(u32::MAX));
        out.extend_from_slice(&self.data);
    }

    fn computed_crc(&self) -> u32 {
        let mut out = Vec::with_capacity(CHUNK_FIXED_BYTES + self.data.len());
        self.encode_fields(&mut out);
        crc32c::crc32c(&out)
    }

    /// Whether the checksum matches the fields.
    pub fn verify(&self) -> bool {
        self.computed_crc() == self.chunk_crc
    }

    /// The wire encoding: through u64, offset u64, total_len u64, body_crc u32, data_len u32,
    /// data, chunk_crc u32, all little-endian. Data is at most u32::MAX bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CHUNK_FIXED_BYTES + self.data.len());
        self.encode_fields(&mut out);
        put_u32(&mut out, self.chunk_crc);
        out
    }

    /// Decodes a chunk; refuses truncated, oversized or trailing input. The checksum is checked
    /// by the receiver ([`SnapshotChunk::verify`]), which answers with where to resume.
    pub fn decode(bytes: &[u8]) -> std::result::Result<SnapshotChunk, DecodeError> {
        let mut r = Reader::new(bytes);
        let through = Slot(r.u64()?);
        let offset = r.u64()?;
        let total_len = r.u64()?;
        let body_crc = r.u32()?;
        let len = r.count("chunk data length", 1)?;
        let data = r.bytes(len)?.to_vec();
        let chunk_crc = r.u32()?;
        r.finish()?;
        Ok(SnapshotChunk {
            through,
            offset,
            total_len,
            body_crc,
            data,
            chunk_crc,
        })
    }
}

/// Yields the chunks of a stored snapshot from any offset, so a transfer can resume.
pub struct SnapshotSource<V: Vfs> {
    file: V::File,
    meta: SnapshotMeta,
    offset: u64,
    chunk_bytes: u64,
    done: bool,
}

impl<V: Vfs> SnapshotSource<V> {
    /// Opens the snapshot `meta` (verifying it again) to send from `offset` in chunks of
    /// `chunk_bytes` (at least 1).
    pub fn open(vfs: &V, meta: &SnapshotMeta, offset: u64, chunk_bytes: u64) -> Result<Self> {
        let verified = read_snapshot_meta(vfs, &meta.path)?;
        Self::from_checked(vfs, meta, verified, offset, chunk_bytes)
    }

    /// Opens the snapshot `meta`, which was verified whole when it was read or written, to
    /// send one transfer's chunks from `offset`, checking its header only. A transfer of a
    /// large snapshot asks for each chunk separately; verifying the whole body for every
    /// chunk made a 1 GiB transfer read a terabyte. Nothing is lost by checking less here:
    /// each chunk carries its own checksum, and the receiver checks the whole body against
    /// `meta.body_crc` before it installs the snapshot, so a body damaged since it was
    /// verified is refused there, not installed.
    pub fn resume(vfs: &V, meta: &SnapshotMeta, offset: u64, chunk_bytes: u64) -> Result<Self> {
        let mut file = vfs
            .open(&meta.path, OpenMode::Existing)
            .map_err(|e| StorageError::io("open", &meta.path, e))?;
        let header = read_header(&mut file, &meta.path)?;
        Self::from_checked(vfs, meta, header, offset, chunk_bytes)
    }

    /// The source once `checked`, what the file says now, has been read from `meta.path`.
    fn from_checked(
        vfs: &V,
        meta: &SnapshotMeta,
        checked: SnapshotMeta,
        offset: u64,
        chunk_bytes: u64,
    ) -> Result<Self> {
        if checked != *meta {
            return Err(StorageError::corrupt(
                &meta.path,
                0,
                "the snapshot changed since it was verified",
            ));
        }
        if offset > meta.body_len || chunk_bytes == 0 || chunk_bytes > u64::from(u32::MAX) {
            return Err(StorageError::Invalid(format!(
                "cannot send from offset {offset} of a {}-byte snapshot in chunks of {chunk_bytes}",
                meta.body_len
            )));
        }
        let file = vfs
            .open(&meta.path, OpenMode::Existing)
            .map_err(|e| StorageError::io("open", &meta.path, e))?;
        Ok(SnapshotSource {
            file,
            meta: checked,
            offset,
            chunk_bytes,
            done: false,
        })
    }

    /// The snapshot being sent.
    pub fn meta(&self) -> &SnapshotMeta {
        &self.meta
    }

    /// Restarts from `offset` (what a receiver asked to resume from).
    pub fn seek(&mut self, offset: u64) {
        self.offset = offset.min(self.meta.body_len);
        self.done = false;
    }

    /// The next chunk, or `None` after the last. An empty snapshot is one empty chunk.
    pub fn next_chunk(&mut self) -> Result<Option<SnapshotChunk>> {
        if self.done {
            return Ok(None);
        }
        let n = (self.meta.body_len - self.offset).min(self.chunk_bytes);
        // n is at most chunk_bytes, checked to fit a u32 in open.
        let mut data = vec![0u8; n as usize];
        self.file
            .read_at(&mut data, SNAPSHOT_HEADER_BYTES + self.offset)
            .map_err(|e| StorageError::io("read", &self.meta.path, e))?;
        let chunk = SnapshotChunk::new(
            self.meta.through,
            self.offset,
            self.meta.body_len,
            self.meta.body_crc,
            data,
        );
        self.offset += n;
        self.done = self.offset == self.meta.body_len;
        Ok(Some(chunk))
    }
}

/// Accepts the chunks of one snapshot in order and installs it once the whole body verifies.
pub struct SnapshotReceiver<V: Vfs + Clone> {
    vfs: V,
    dir: PathBuf,
    through: Slot,
    total_len: u64,
    body_crc: u32,
    writer: Option<SnapshotWriter<V>>,
}

impl<V: Vfs + Clone> SnapshotReceiver<V> {
    /// Prepares to receive the snapshot described by a first chunk's fields.
    pub fn new(
        vfs: V,
        dir: impl Into<PathBuf>,
        through: Slot,
        total_len: u64,
        body_crc: u32,
    ) -> Result<Self> {
        let dir = dir.into();
        let writer = SnapshotWriter::create(vfs.clone(), dir.clone(), through)?;
        Ok(SnapshotReceiver {
            vfs,
            dir,
            through,
            total_len,
            body_crc,
            writer: Some(writer),
        })
    }

    /// Which snapshot this receives: `(through, total_len, body_crc)` from its first chunk.
    pub fn snapshot(&self) -> (Slot, u64, u32) {
        (self.through, self.total_len, self.body_crc)
    }

    /// The offset expected next.
    pub fn next_offset(&self) -> u64 {
        self.writer.as_ref().map_or(self.total_len, |w| w.written())
    }

    fn reject(&self, reason: String) -> StorageError {
        StorageError::ChunkRejected {
            reason,
            resume_from: self.next_offset(),
        }
    }

    /// Takes one chunk. Returns the installed snapshot after the last chunk, `None` before.
    /// A chunk that fails its checksum, belongs to another snapshot or is not at the expected
    /// offset is refused with [`StorageError::ChunkRejected`] naming the offset to resume from.
    /// If the whole body does not match its CRC, everything is discarded and the transfer must
    /// restart from 0.
    pub fn accept(&mut self, chunk: &SnapshotChunk) -> Result<Option<SnapshotMeta>> {
        if !chunk.verify() {
            return Err(self.reject("chunk checksum mismatch".into()));
        }
        if chunk.through != self.through
            || chunk.total_len != self.total_len
            || chunk.body_crc != self.body_crc
        {
            return Err(self.reject(format!(
                "chunk belongs to snapshot {} ({} bytes, crc {:#010x}), not {} ({} bytes, crc {:#010x})",
                chunk.through, chunk.total_len, chunk.body_crc, self.through, self.total_len, self.body_crc
            )));
        }
        let expected = self.next_offset();
        if chunk.offset != expected {
            return Err(self.reject(format!(
                "chunk at offset {}, expected {expected}",
                chunk.offset
            )));
        }
        if chunk.offset + chunk.data.len() as u64 > self.total_len {
            return Err(self.reject("chunk runs past the end of the snapshot".into()));
        }
        let Some(writer) = self.writer.as_mut() else {
            return Err(self.reject("the snapshot is already installed".into()));
        };
        writer.write(&chunk.data)?;
        if writer.written() < self.total_len {
            return Ok(None);
        }
        let Some(writer) = self.writer.take() else {
            return Err(self.reject("the snapshot is already installed".into()));
        };
        if writer.body_crc() != self.body_crc {
            let got = writer.body_crc();
            writer.abort()?;
            self.writer = Some(SnapshotWriter::create(
                self.vfs.clone(),
                self.dir.clone(),
                self.through,
            )?);
            return Err(StorageError::ChunkRejected {
                reason: format!(
                    "the whole body has crc {got:#010x}, not {:#010x}; discarded",
                    self.body_crc
                ),
                resume_from: 0,
            });
        }
        writer.finish().map(Some)
    }
}
