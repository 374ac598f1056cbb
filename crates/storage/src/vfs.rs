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
