//! The file-system seam: every byte storage reads or writes goes through [`Vfs`], so the same
//! WAL code runs on real files ([`StdFs`]) and inside the deterministic simulator
//! ([`MemFs`](crate::memfs::MemFs)), where crashes, torn writes and bit flips are injected.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// How to open a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// An existing file, for reading and writing; fails if it does not exist.
    Existing,
    /// A new file; fails if it exists.
    CreateNew,
    /// Create the file, or empty it if it exists.
    CreateTruncate,
}

/// A directory of files. Methods take `&self` so one handle can be shared; implementations use
/// interior mutability where they need it.
pub trait Vfs {
    /// An open file.
    type File: VfsFile;

    /// Creates `dir` and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names (not paths) of the files in `dir`, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Opens `path`.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Self::File>;
    /// Atomically renames `from` to `to`, replacing `to`. Durable only after [`Vfs::sync_dir`].
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file. Durable only after [`Vfs::sync_dir`].
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the creates, renames and removes in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> io::Result<bool>;
    /// Length of the file at `path` in bytes.
    fn file_len(&self, path: &Path) -> io::Result<u64>;
}

/// An open file. Reads and writes are positional; there is no cursor.
pub trait VfsFile {
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Fills `buf` from `offset`; fails if the file ends first.
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`, extending the file if needed. Not durable until synced.
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Writes `bufs` back to back from `offset`, as if they were one buffer. Not atomic, like
    /// `write_at`. The default copies them into one buffer and writes that; real files use
    /// `pwritev`, so a record's payload goes from the caller's memory to the file with no copy
    /// of ours.
    fn write_vectored_at(&mut self, bufs: &[&[u8]], offset: u64) -> io::Result<()> {
        self.write_at(&bufs.concat(), offset)
    }
    /// Asks the operating system to start writing `len` bytes from `offset` to the disk now,
    /// without waiting: a hint that lets the disk work while the writer encodes the next
    /// records, so the `sync_data` that follows has less left to do. It promises nothing about
    /// durability. The default does nothing.
    fn start_writeback(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }
    /// Makes the file at least `len` bytes long, reading as zeros, with the space reserved.
    fn allocate(&mut self, len: u64) -> io::Result<()>;
    /// Makes the file's data (and the length needed to read it) durable: `fdatasync`.
    fn sync_data(&mut self) -> io::Result<()>;
    /// Makes the file's data and all its metadata durable: `fsync`.
    fn sync_all(&mut self) -> io::Result<()>;
}

/// How [`StdFs`] preallocates a new file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Prealloc {
    /// Write zeros over the whole file once. On ext4, `fallocate` leaves *unwritten* extents:
    /// the first write into each one converts it, a metadata change that every later
    /// `fdatasync` must commit through the journal. Zero-filling pays the whole cost up front,
    /// once per segment, so each later `fdatasync` flushes data only. Measured on this
    /// machine's ext4 (`cargo run --release -p synod-storage --example prealloc`, 64 MiB
    /// segment, 2000 × 4 KiB write + fdatasync, 3 rounds): zero-fill 110–124 µs per append,
    /// fallocate 160–201 µs; zero-filling the segment cost 37–166 ms against fallocate's
    /// 0.3–0.5 ms, repaid after about 1,000 of the ~16,000 4 KiB appends a segment holds.
    #[default]
    ZeroFill,
    /// `posix_fallocate`: fast to create, slower syncs afterwards (see above).
    Fallocate,
}

/// Real files through `std::fs`.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdFs {
    prealloc: Prealloc,
}

impl StdFs {
    /// Real files, preallocating by zero-filling (the faster choice here; see [`Prealloc`]).
    pub fn new() -> StdFs {
        StdFs::default()
    }

    /// Real files with a chosen preallocation strategy.
    pub fn with_prealloc(prealloc: Prealloc) -> StdFs {
        StdFs { prealloc }
    }
}

/// A real open file.
#[derive(Debug)]
pub struct StdFile {
    file: File,
    prealloc: Prealloc,
}

impl Vfs for StdFs {
    type File = StdFile;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                // A name that is not UTF-8 is none of ours; skipping it is safe because every
                // file storage creates has an ASCII name.
                if let Ok(name) = entry.file_name().into_string() {
                    names.push(name);
                }
            }
        }
        names.sort();
        Ok(names)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<StdFile> {
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        match mode {
            OpenMode::Existing => {}
            OpenMode::CreateNew => {
                options.create_new(true);
            }
            OpenMode::CreateTruncate => {
                options.create(true).truncate(true);
            }
        }
        Ok(StdFile {
            file: options.open(path)?,
            prealloc: self.prealloc,
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        // A directory's entries are durable only once the directory itself is fsynced; fsyncing
        // the files in it does not persist their names.
        File::open(dir)?.sync_all()
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        path.try_exists()
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        Ok(fs::metadata(path)?.len())
    }
}

impl VfsFile for StdFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn write_vectored_at(&mut self, bufs: &[&[u8]], offset: u64) -> io::Result<()> {
        pwritev_all(&self.file, bufs, offset)
    }

    fn start_writeback(&mut self, offset: u64, len: u64) -> io::Result<()> {
        start_writeback(&self.file, offset, len)
    }

    fn allocate(&mut self, len: u64) -> io::Result<()> {
        let current = self.len()?;
        if current >= len {
            return Ok(());
        }
        match self.prealloc {
            Prealloc::ZeroFill => {
                let zeros = vec![0u8; 1 << 20];
                let mut at = current;
                while at < len {
                    let n = usize::try_from((len - at).min(zeros.len() as u64))
                        .map_err(|_| io::Error::other("allocation chunk overflows usize"))?;
                    self.file.write_all_at(&zeros[..n], at)?;
                    at += n as u64;
                }
                Ok(())
            }
            Prealloc::Fallocate => fallocate(&self.file, current, len - current),
        }
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.file.sync_all()
    }
}

/// `sync_file_range(SYNC_FILE_RANGE_WRITE)`: start writing the range, do not wait.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let offset = libc::off64_t::try_from(offset)
        .map_err(|_| io::Error::other("offset overflows off64_t"))?;
    let len =
        libc::off64_t::try_from(len).map_err(|_| io::Error::other("length overflows off64_t"))?;
    // SAFETY: the descriptor is owned by `file`, which outlives the call; sync_file_range
    // reads no memory of ours.
    let rc = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Elsewhere there is no such call; the hint is dropped.
#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _offset: u64, _len: u64) -> io::Result<()> {
    Ok(())
}

/// Most buffers one `pwritev` call takes (Linux's `IOV_MAX`).
const IOV_MAX: usize = 1024;

/// `pwritev` of all of `bufs` from `offset`, going on after short writes and interruptions.
fn pwritev_all(file: &File, bufs: &[&[u8]], offset: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut bufs = bufs;
    // Bytes of `bufs[0]` already written by a short write.
    let mut skip = 0usize;
    let mut offset = offset;
    while let Some(first) = bufs.first() {
        if skip == first.len() {
            bufs = &bufs[1..];
            skip = 0;
            continue;
        }
        let iov: Vec<libc::iovec> = bufs
            .iter()
            .take(IOV_MAX)
            .enumerate()
            .map(|(i, b)| {
                let b = if i == 0 { &b[skip..] } else { b };
                libc::iovec {
                    iov_base: b.as_ptr() as *mut libc::c_void,
                    iov_len: b.len(),
                }
            })
            .collect();
        let at = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::other("offset overflows off_t"))?;
        let count = libc::c_int::try_from(iov.len()).unwrap_or(libc::c_int::MAX);
        // SAFETY: every iovec points into a slice of `bufs`, borrowed for the whole call, and
        // pwritev only reads them; the descriptor is owned by `file`.
        let n = unsafe { libc::pwritev(file.as_raw_fd(), iov.as_ptr(), count, at) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "pwritev wrote nothing",
            ));
        }
        let mut n = n as usize;
        offset += n as u64;
        // Step over what was written: whole buffers, then part of the next one.
        while n > 0 {
            let left = bufs[0].len() - skip;
            if n >= left {
                n -= left;
                bufs = &bufs[1..];
                skip = 0;
            } else {
                skip += n;
                n = 0;
            }
        }
    }
    Ok(())
}

fn fallocate(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let offset =
        libc::off_t::try_from(offset).map_err(|_| io::Error::other("offset overflows off_t"))?;
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::other("length overflows off_t"))?;
    // SAFETY: the descriptor is owned by `file`, which outlives the call; posix_fallocate
    // reads no memory of ours.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), offset, len) };
    if rc == 0 {
        Ok(())
    } else {
        // posix_fallocate returns the error number instead of setting errno.
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Reads a small whole file: `None` if it does not exist; `Some((bytes, len))` with `len` its
/// length, reading at most `max_len` bytes (a longer file is the caller's to refuse, with the
/// length in hand). For the meta and floor files, whose damage must be reported, not guessed.
pub(crate) fn read_small_file<V: Vfs>(
    vfs: &V,
    path: &Path,
    max_len: u64,
) -> crate::error::Result<Option<(Vec<u8>, u64)>> {
    use crate::error::StorageError;
    if !vfs
        .exists(path)
        .map_err(|e| StorageError::io("stat", path, e))?
    {
        return Ok(None);
    }
    let mut file = vfs
        .open(path, OpenMode::Existing)
        .map_err(|e| StorageError::io("open", path, e))?;
    let len = file.len().map_err(|e| StorageError::io("stat", path, e))?;
    let mut bytes = vec![0u8; len.min(max_len) as usize];
    file.read_at(&mut bytes, 0)
        .map_err(|e| StorageError::io("read", path, e))?;
    Ok(Some((bytes, len)))
}

/// Replaces `dir/name` with `bytes` atomically and durably: write `dir/tmp_name`, fsync it,
/// rename it over `name`, fsync the directory. When it returns, a crash leaves the new
/// contents; before, the old ones (or none).
pub(crate) fn replace_file<V: Vfs>(
    vfs: &V,
    dir: &Path,
    name: &str,
    tmp_name: &str,
    bytes: &[u8],
) -> crate::error::Result<()> {
    use crate::error::StorageError;
    let tmp = dir.join(tmp_name);
    let path = dir.join(name);
    let mut file = vfs
        .open(&tmp, OpenMode::CreateTruncate)
        .map_err(|e| StorageError::io("create", &tmp, e))?;
    file.write_at(bytes, 0)
        .and_then(|()| file.sync_all())
        .map_err(|e| StorageError::io("write", &tmp, e))?;
    vfs.rename(&tmp, &path)
        .map_err(|e| StorageError::io("rename", &tmp, e))?;
    vfs.sync_dir(dir)
        .map_err(|e| StorageError::io("sync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pwritev_writes_every_buffer_in_order_past_iov_max() {
        // More buffers than one call takes, empty ones among them, at an offset.
        let bufs: Vec<Vec<u8>> = (0..2500u32)
            .map(|i| vec![(i % 251) as u8; (i % 7) as usize])
            .collect();
        let slices: Vec<&[u8]> = bufs.iter().map(Vec::as_slice).collect();
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        let mut file = StdFs::new().open(&path, OpenMode::CreateNew).unwrap();
        file.write_at(b"head", 0).unwrap();
        file.write_vectored_at(&slices, 4).unwrap();
        let expected: Vec<u8> = b"head".iter().copied().chain(slices.concat()).collect();
        assert_eq!(fs::read(&path).unwrap(), expected);
        // A hint over what was written is accepted and changes nothing.
        file.start_writeback(0, expected.len() as u64).unwrap();
        file.sync_data().unwrap();
        assert_eq!(fs::read(&path).unwrap(), expected);
    }
}
