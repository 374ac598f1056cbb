//! A crash-injecting file system for the crash-at-every-step tests.

use rand_chacha::{rand_core::SeedableRng, ChaCha8Rng};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use storage::memfs::{MemFile, MemFs};
use storage::{OpenMode, Vfs, VfsFile};

/// A `MemFs` that simulates a power loss just before its `crash_at`-th mutating operation
/// (counted across every handle and thread) and fails every operation from then on, like the
/// process that died with it.
#[derive(Clone)]
pub struct CrashFs {
    pub inner: MemFs,
    pub ops: Arc<AtomicU64>,
    pub crash_at: u64,
    pub seed: u64,
    pub crashed: Arc<AtomicBool>,
    /// Refuse to create `.spare` files (a preparer that always fails).
    pub fail_spares: bool,
    /// Held from the count of an operation to its end, so that a power loss another thread
    /// triggers falls between two operations, never between one's count and its effect (a
    /// sync counted before the crash but done after it would report lost data as durable).
    pub gate: Arc<Mutex<()>>,
}

impl CrashFs {
    pub fn new(inner: MemFs, crash_at: u64, seed: u64) -> CrashFs {
        CrashFs {
            inner,
            ops: Arc::new(AtomicU64::new(0)),
            crash_at,
            seed,
            crashed: Arc::new(AtomicBool::new(false)),
            fail_spares: false,
            gate: Arc::new(Mutex::new(())),
        }
    }

    /// Counts one mutating operation; on success the caller keeps the returned guard until
    /// the operation is done.
    fn tick(&self) -> io::Result<MutexGuard<'_, ()>> {
        let gate = self.gate.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.ops.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.crash_at {
            self.inner.crash(&mut ChaCha8Rng::seed_from_u64(self.seed));
            self.crashed.store(true, Ordering::SeqCst);
        }
        if self.crashed.load(Ordering::SeqCst) {
            return Err(io::Error::other("simulated power loss"));
        }
        Ok(gate)
    }
}

pub struct CrashFile {
    fs: CrashFs,
    file: MemFile,
}

impl Vfs for CrashFs {
    type File = CrashFile;
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let _gate = self.tick()?;
        self.inner.create_dir_all(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<CrashFile> {
        let _gate = if mode != OpenMode::Existing {
            Some(self.tick()?)
        } else {
            None
        };
        if self.fail_spares && path.to_string_lossy().ends_with(".spare") {
            return Err(io::Error::other("no space left for a spare"));
        }
        Ok(CrashFile {
            fs: self.clone(),
            file: self.inner.open(path, mode)?,
        })
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let _gate = self.tick()?;
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        let _gate = self.tick()?;
        self.inner.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let _gate = self.tick()?;
        self.inner.sync_dir(dir)
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        self.inner.file_len(path)
    }
}

impl VfsFile for CrashFile {
    fn len(&self) -> io::Result<u64> {
        self.file.len()
    }
    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.file.read_at(buf, offset)
    }
    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        let _gate = self.fs.tick()?;
        self.file.write_at(buf, offset)
    }
    fn allocate(&mut self, len: u64) -> io::Result<()> {
        let _gate = self.fs.tick()?;
        self.file.allocate(len)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        let _gate = self.fs.tick()?;
        self.file.sync_data()
    }
    fn sync_all(&mut self) -> io::Result<()> {
        let _gate = self.fs.tick()?;
        self.file.sync_all()
    }
}
