//! An in-memory, deterministic file system for the simulator, modelling durability faithfully.
//!
//! Every file (an inode) has a *volatile* image (what reads see, like the page cache) and a
//! *durable* image (what survives a crash), plus the list of writes since its last sync.
//! Every directory has volatile and durable entries (name → inode). `sync_data`/`sync_all`
//! make a file's data durable; `sync_dir` makes that directory's creates, renames and removes
//! durable. A [`MemFs::crash`] keeps only what is durable, except that each file's unsynced
//! writes may partly survive: a prefix of them in order, the last one possibly torn at a
//! 512-byte sector boundary (the rest of its sectors keep their old contents).
//!
//! Directories themselves are durable as soon as they are created (storage creates its data
//! directory once, at initialization). Every fault is driven by the caller: randomness comes
//! only from the generator passed to [`MemFs::crash`], so a simulation stays a function of its
//! seed. Iteration is over `BTreeMap`s, never hash maps.

use crate::vfs::{OpenMode, Vfs, VfsFile};
use rand_core::RngCore;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// Sector size assumed by the torn-write model.
pub const SECTOR_BYTES: u64 = 512;

/// How often each fault fired and how much work the disk did, so a campaign can prove its
/// faults reached the code.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemFsCounters {
    /// Crashes simulated.
    pub crashes: u64,
    /// Unsynced writes lost whole in a crash.
    pub writes_dropped: u64,
    /// Unsynced writes that survived a crash only in part (torn at a sector boundary).
    pub writes_torn: u64,
    /// Unsynced writes that survived a crash whole.
    pub writes_kept: u64,
    /// Directory operations lost in a crash.
    pub dir_ops_lost: u64,
    /// Bits flipped.
    pub bit_flips: u64,
    /// Writes sent to a wrong offset.
    pub misdirected_writes: u64,
    /// Files truncated by fault.
    pub truncations: u64,
    /// Files rolled back to their previous sync.
    pub rollbacks: u64,
    /// Whole-disk wipes.
    pub wipes: u64,
    /// Syncs made to fail.
    pub sync_failures: u64,
    /// `sync_data`/`sync_all` calls that succeeded.
    pub file_syncs: u64,
    /// `sync_dir` calls.
    pub dir_syncs: u64,
    /// Bytes written by `write_at` (preallocation not counted).
    pub bytes_written: u64,
}

/// A file and its size, for choosing fault targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    /// Its path.
    pub path: PathBuf,
    /// Length as reads see it now.
    pub len: u64,
    /// Length of its durable image.
    pub durable_len: u64,
    /// Whether its name is durable in its directory.
    pub name_durable: bool,
    /// Whether it has writes not yet synced.
    pub dirty: bool,
}

/// The in-memory file system. Cloning gives another handle to the same disk.
#[derive(Clone, Debug, Default)]
pub struct MemFs {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    inodes: BTreeMap<u64, Inode>,
    next_inode: u64,
    dirs: BTreeMap<PathBuf, Dir>,
    counters: MemFsCounters,
    /// Bumped by every crash and wipe: handles opened before it are dead, like the processes
    /// that held them.
    generation: u64,
    fail_next_sync: BTreeSet<PathBuf>,
}

#[derive(Debug, Default)]
struct Dir {
    volatile: BTreeMap<String, u64>,
    durable: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
struct Inode {
    volatile: Vec<u8>,
    durable: Vec<u8>,
    /// The durable image before the last sync, for [`MemFs::rollback`].
    previous: Vec<u8>,
    pending: Vec<Pending>,
    misdirect: Option<u64>,
}

#[derive(Debug)]
enum Pending {
    Write { offset: u64, data: Vec<u8> },
    Resize { len: u64 },
}

/// An open file of a [`MemFs`].
#[derive(Debug)]
pub struct MemFile {
    fs: MemFs,
    inode: u64,
    generation: u64,
}

fn not_found(what: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", what.display()),
    )
}

fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    Ok((dir, name.to_string()))
}

fn to_usize(n: u64) -> io::Result<usize> {
    usize::try_from(n).map_err(|_| io::Error::other("offset overflows usize"))
}

fn write_into(image: &mut Vec<u8>, offset: u64, data: &[u8]) -> io::Result<()> {
    let start = to_usize(offset)?;
    let end = start
        .checked_add(data.len())
        .ok_or_else(|| io::Error::other("write end overflows"))?;
    if image.len() < end {
        image.resize(end, 0);
    }
    image[start..end].copy_from_slice(data);
    Ok(())
}

impl Pending {
    fn apply(&self, image: &mut Vec<u8>) -> io::Result<()> {
        match self {
            Pending::Write { offset, data } => write_into(image, *offset, data),
            Pending::Resize { len } => {
                image.resize(to_usize(*len)?, 0);
                Ok(())
            }
        }
    }
}

impl MemFs {
    /// An empty disk.
    pub fn new() -> MemFs {
        MemFs::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the model consistent at operation granularity
        // (every operation mutates after validating), so the state is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The counters so far.
    pub fn counters(&self) -> MemFsCounters {
        self.lock().counters.clone()
    }

    /// Every file whose name exists now (volatile view), sorted by path.
    pub fn files(&self) -> Vec<FileInfo> {
        let state = self.lock();
        let mut out = Vec::new();
        for (dir_path, dir) in &state.dirs {
            for (name, ino) in &dir.volatile {
                if let Some(inode) = state.inodes.get(ino) {
                    out.push(FileInfo {
                        path: dir_path.join(name),
                        len: inode.volatile.len() as u64,
                        durable_len: inode.durable.len() as u64,
                        name_durable: dir.durable.get(name) == Some(ino),
                        dirty: !inode.pending.is_empty(),
                    });
                }
            }
        }
        out
    }

    /// The durable image of a file, if its inode exists.
    pub fn read_durable(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.lock();
        let ino = state.lookup(path).ok()?;
        state.inodes.get(&ino).map(|i| i.durable.clone())
    }

    /// A power loss: everything not durable is lost, except that each file's unsynced writes
    /// may survive in part (see the module docs). Open handles become invalid.
    pub fn crash(&self, rng: &mut impl RngCore) {
        let mut state = self.lock();
        state.generation += 1;
        state.counters.crashes += 1;
        let mut lost = 0;
        for dir in state.dirs.values_mut() {
            if dir.volatile != dir.durable {
                lost += dir_op_difference(&dir.volatile, &dir.durable);
                dir.volatile = dir.durable.clone();
            }
        }
        state.counters.dir_ops_lost += lost;
        let live: BTreeSet<u64> = state
            .dirs
            .values()
            .flat_map(|d| d.durable.values().copied())
            .collect();
        state.inodes.retain(|ino, _| live.contains(ino));
        let mut counters = std::mem::take(&mut state.counters);
        for inode in state.inodes.values_mut() {
            crash_inode(inode, rng, &mut counters);
        }
        state.counters = counters;
        state.fail_next_sync.clear();
    }

    /// Flips one bit of a file's durable data (and of what reads see): media corruption.
    pub fn flip_bit(&self, path: &Path, offset: u64, bit: u8) -> io::Result<()> {
        let mut state = self.lock();
        let ino = state.lookup(path)?;
        let inode = state.inode_mut(ino, path)?;
        let at = to_usize(offset)?;
        let mask = 1u8 << (bit % 8);
        if at >= inode.durable.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "flip_bit beyond the durable data",
            ));
        }
        inode.durable[at] ^= mask;
        if at < inode.volatile.len() {
            inode.volatile[at] ^= mask;
        }
        state.counters.bit_flips += 1;
        Ok(())
    }

    /// The next write to `path` lands at `wrong_offset` instead of its own.
    pub fn misdirect_next_write(&self, path: &Path, wrong_offset: u64) -> io::Result<()> {
        let mut state = self.lock();
        let ino = state.lookup(path)?;
        state.inode_mut(ino, path)?.misdirect = Some(wrong_offset);
        Ok(())
    }

    /// Cuts a file (durable and volatile images) to `len` bytes.
    pub fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut state = self.lock();
        let ino = state.lookup(path)?;
        let inode = state.inode_mut(ino, path)?;
        let len = to_usize(len)?;
        inode.durable.truncate(len);
        inode.volatile.truncate(len);
        inode.pending.clear();
        state.counters.truncations += 1;
        Ok(())
    }

    /// The file reverts to the contents it had before its last sync that changed it (writes
    /// the disk acknowledged and then lost).
    pub fn rollback(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let ino = state.lookup(path)?;
        let inode = state.inode_mut(ino, path)?;
        inode.durable = inode.previous.clone();
        inode.volatile = inode.previous.clone();
        inode.pending.clear();
        state.counters.rollbacks += 1;
        Ok(())
    }

    /// Everything is gone, as with a replaced disk. Directories are gone too.
    pub fn wipe(&self) {
        let mut state = self.lock();
        state.inodes.clear();
        state.dirs.clear();
        state.fail_next_sync.clear();
        state.generation += 1;
        state.counters.wipes += 1;
    }

    /// The next `sync_data`/`sync_all` of `path` fails with an I/O error (and syncs nothing).
    pub fn fail_next_sync(&self, path: &Path) {
        self.lock().fail_next_sync.insert(path.to_path_buf());
    }

    fn with_file<T>(
        &self,
        handle: &MemFile,
        f: impl FnOnce(&mut Inode, &mut MemFsCounters) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut state = self.lock();
        if state.generation != handle.generation {
            return Err(io::Error::other("file handle from before a crash"));
        }
        let mut counters = std::mem::take(&mut state.counters);
        let result = match state.inodes.get_mut(&handle.inode) {
            Some(inode) => f(inode, &mut counters),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "file was removed")),
        };
        state.counters = counters;
        result
    }

    fn path_of(&self, inode: u64) -> Option<PathBuf> {
        let state = self.lock();
        for (dir_path, dir) in &state.dirs {
            for (name, ino) in &dir.volatile {
                if *ino == inode {
                    return Some(dir_path.join(name));
                }
            }
        }
        None
    }
}

fn dir_op_difference(a: &BTreeMap<String, u64>, b: &BTreeMap<String, u64>) -> u64 {
    let only_a = a.iter().filter(|(k, v)| b.get(*k) != Some(v)).count();
    let only_b = b.iter().filter(|(k, v)| a.get(*k) != Some(v)).count();
    (only_a + only_b) as u64
}

fn crash_inode(inode: &mut Inode, rng: &mut impl RngCore, counters: &mut MemFsCounters) {
    let pending = std::mem::take(&mut inode.pending);
    inode.misdirect = None;
    if pending.is_empty() {
        inode.volatile = inode.durable.clone();
        return;
    }
    // A prefix of the unsynced writes reached the platter in order; the next one may be torn.
    let kept = (rng.next_u64() % (pending.len() as u64 + 1)) as usize;
    let mut image = inode.durable.clone();
    for op in &pending[..kept] {
        // A write that fit when issued fits again: the image only grows the same way.
        if op.apply(&mut image).is_err() {
            break;
        }
    }
    counters.writes_kept += kept as u64;
    if let Some(Pending::Write { offset, data }) = pending.get(kept) {
        let end = offset + data.len() as u64;
        let first_boundary = (offset / SECTOR_BYTES + 1) * SECTOR_BYTES;
        if first_boundary < end && rng.next_u32() & 1 == 0 {
            let boundaries = (end - 1 - first_boundary) / SECTOR_BYTES + 1;
            let cut = first_boundary + (rng.next_u64() % boundaries) * SECTOR_BYTES;
            let keep = (cut - offset) as usize;
            if write_into(&mut image, *offset, &data[..keep]).is_ok() {
                counters.writes_torn += 1;
                counters.writes_dropped += (pending.len() - kept - 1) as u64;
            }
        } else {
            counters.writes_dropped += (pending.len() - kept) as u64;
        }
    } else {
        counters.writes_dropped += (pending.len() - kept) as u64;
    }
    inode.durable = image.clone();
    inode.volatile = image;
}

impl State {
    fn lookup(&self, path: &Path) -> io::Result<u64> {
        let (dir, name) = split(path)?;
        self.dirs
            .get(&dir)
            .and_then(|d| d.volatile.get(&name))
            .copied()
            .ok_or_else(|| not_found(path))
    }

    fn inode_mut(&mut self, ino: u64, path: &Path) -> io::Result<&mut Inode> {
        self.inodes.get_mut(&ino).ok_or_else(|| not_found(path))
    }

    fn dir_mut(&mut self, dir: &Path) -> io::Result<&mut Dir> {
        self.dirs.get_mut(dir).ok_or_else(|| not_found(dir))
    }
}

impl Vfs for MemFs {
    type File = MemFile;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let mut at = Some(dir);
        while let Some(d) = at {
            state.dirs.entry(d.to_path_buf()).or_default();
            at = d.parent();
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.lock();
        let d = state.dirs.get(dir).ok_or_else(|| not_found(dir))?;
        Ok(d.volatile.keys().cloned().collect())
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<MemFile> {
        let (dir, name) = split(path)?;
        let mut state = self.lock();
        let generation = state.generation;
        let existing = state
            .dirs
            .get(&dir)
            .and_then(|d| d.volatile.get(&name))
            .copied();
        let inode = match (existing, mode) {
            (Some(ino), OpenMode::Existing) => ino,
            (Some(_), OpenMode::CreateNew) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{}: exists", path.display()),
                ))
            }
            (Some(ino), OpenMode::CreateTruncate) => {
                let inode = state.inode_mut(ino, path)?;
                inode.volatile.clear();
                inode.pending.push(Pending::Resize { len: 0 });
                ino
            }
            (None, OpenMode::Existing) => return Err(not_found(path)),
            (None, _) => {
                let ino = state.next_inode;
                state.next_inode += 1;
                state.dir_mut(&dir)?.volatile.insert(name, ino);
                state.inodes.insert(ino, Inode::default());
                ino
            }
        };
        Ok(MemFile {
            fs: self.clone(),
            inode,
            generation,
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from_dir, from_name) = split(from)?;
        let (to_dir, to_name) = split(to)?;
        let mut state = self.lock();
        let ino = state
            .dir_mut(&from_dir)?
            .volatile
            .remove(&from_name)
            .ok_or_else(|| not_found(from))?;
        state.dir_mut(&to_dir)?.volatile.insert(to_name, ino);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let (dir, name) = split(path)?;
        let mut state = self.lock();
        state
            .dir_mut(&dir)?
            .volatile
            .remove(&name)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let d = state.dir_mut(dir)?;
        d.durable = d.volatile.clone();
        state.counters.dir_syncs += 1;
        // An inode no durable or volatile name refers to can never be reached again.
        let live: BTreeSet<u64> = state
            .dirs
            .values()
            .flat_map(|d| d.durable.values().chain(d.volatile.values()).copied())
            .collect();
        state.inodes.retain(|ino, _| live.contains(ino));
        Ok(())
    }

    fn exists(&self, path: &Path) -> io::Result<bool> {
        let state = self.lock();
        Ok(state.lookup(path).is_ok() || state.dirs.contains_key(path))
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        let state = self.lock();
        let ino = state.lookup(path)?;
        state
            .inodes
            .get(&ino)
            .map(|i| i.volatile.len() as u64)
            .ok_or_else(|| not_found(path))
    }
}

impl MemFile {
    fn sync(&mut self) -> io::Result<()> {
        let path = self.fs.path_of(self.inode);
        {
            let mut state = self.fs.lock();
            if let Some(p) = &path {
                if state.fail_next_sync.remove(p) {
                    state.counters.sync_failures += 1;
                    return Err(io::Error::other("injected fsync failure (EIO)"));
                }
            }
        }
        self.fs.clone().with_file(self, |inode, counters| {
            // Only a sync that changed something starts a new version: a rollback reverts to
            // the contents before the last sync that made a difference.
            if !inode.pending.is_empty() {
                inode.previous = std::mem::replace(&mut inode.durable, inode.volatile.clone());
                inode.pending.clear();
            }
            counters.file_syncs += 1;
            Ok(())
        })
    }
}

impl VfsFile for MemFile {
    fn len(&self) -> io::Result<u64> {
        self.fs
            .clone()
            .with_file(self, |inode, _| Ok(inode.volatile.len() as u64))
    }

    fn read_at(&mut self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.fs.clone().with_file(self, |inode, _| {
            let start = to_usize(offset)?;
            let end = start
                .checked_add(buf.len())
                .filter(|end| *end <= inode.volatile.len())
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past end"))?;
            buf.copy_from_slice(&inode.volatile[start..end]);
            Ok(())
        })
    }

    fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.fs.clone().with_file(self, |inode, counters| {
            let offset = match inode.misdirect.take() {
                Some(wrong) => {
                    counters.misdirected_writes += 1;
                    wrong
                }
                None => offset,
            };
            write_into(&mut inode.volatile, offset, buf)?;
            inode.pending.push(Pending::Write {
                offset,
                data: buf.to_vec(),
            });
            counters.bytes_written += buf.len() as u64;
            Ok(())
        })
    }

    fn allocate(&mut self, len: u64) -> io::Result<()> {
        self.fs.clone().with_file(self, |inode, _| {
            if (inode.volatile.len() as u64) < len {
                inode.volatile.resize(to_usize(len)?, 0);
                inode.pending.push(Pending::Resize { len });
            }
            Ok(())
        })
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.sync()
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::{rand_core::SeedableRng, ChaCha8Rng};

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn unsynced_names_and_data_are_lost_in_a_crash_and_synced_ones_kept() {
        let fs = MemFs::new();
        fs.create_dir_all(&p("/d")).unwrap();
        let mut a = fs.open(&p("/d/a"), OpenMode::CreateNew).unwrap();
        a.write_at(b"synced", 0).unwrap();
        a.sync_data().unwrap();
        fs.sync_dir(&p("/d")).unwrap();
        let mut b = fs.open(&p("/d/b"), OpenMode::CreateNew).unwrap();
        b.write_at(b"data synced, name not", 0).unwrap();
        b.sync_data().unwrap();
        fs.crash(&mut ChaCha8Rng::seed_from_u64(0));
        assert_eq!(fs.list(&p("/d")).unwrap(), vec!["a".to_string()]);
        assert_eq!(fs.read_durable(&p("/d/a")).unwrap(), b"synced");
        assert!(a.len().is_err(), "handles die with the crash");
        assert_eq!(fs.counters().dir_ops_lost, 1);
    }

    #[test]
    fn a_crash_keeps_a_prefix_of_unsynced_writes_torn_at_a_sector() {
        for seed in 0..100 {
            let fs = MemFs::new();
            fs.create_dir_all(&p("/d")).unwrap();
            let mut f = fs.open(&p("/d/f"), OpenMode::CreateNew).unwrap();
            f.allocate(4096).unwrap();
            f.sync_data().unwrap();
            fs.sync_dir(&p("/d")).unwrap();
            f.write_at(&[1u8; 2000], 100).unwrap();
            fs.crash(&mut ChaCha8Rng::seed_from_u64(seed));
            let image = fs.read_durable(&p("/d/f")).unwrap();
            let ones = image.iter().filter(|b| **b == 1).count();
            // Nothing, everything, or up to a sector boundary.
            assert!(
                ones == 0 || ones == 2000 || (100 + ones) % 512 == 0,
                "{ones}"
            );
            assert!(image[100..100 + ones].iter().all(|b| *b == 1));
            assert!(image[100 + ones..].iter().all(|b| *b == 0));
        }
    }

    #[test]
    fn crashes_are_a_function_of_the_seed() {
        let run = |seed| {
            let fs = MemFs::new();
            fs.create_dir_all(&p("/d")).unwrap();
            let mut f = fs.open(&p("/d/f"), OpenMode::CreateNew).unwrap();
            fs.sync_dir(&p("/d")).unwrap();
            for i in 0..20u64 {
                f.write_at(&[i as u8 + 1; 700], i * 700).unwrap();
            }
            fs.crash(&mut ChaCha8Rng::seed_from_u64(seed));
            (fs.read_durable(&p("/d/f")), fs.counters())
        };
        assert_eq!(run(5), run(5));
    }

    #[test]
    fn rollback_reverts_to_the_version_before_the_last_sync() {
        let fs = MemFs::new();
        fs.create_dir_all(&p("/d")).unwrap();
        let mut f = fs.open(&p("/d/f"), OpenMode::CreateNew).unwrap();
        f.write_at(b"one", 0).unwrap();
        f.sync_data().unwrap();
        f.write_at(b"two", 0).unwrap();
        f.sync_data().unwrap();
        f.sync_data().unwrap(); // a sync that changes nothing is not a new version
        fs.rollback(&p("/d/f")).unwrap();
        assert_eq!(fs.read_durable(&p("/d/f")).unwrap(), b"one");
        assert_eq!(fs.counters().rollbacks, 1);
    }

    #[test]
    fn wipe_removes_everything() {
        let fs = MemFs::new();
        fs.create_dir_all(&p("/d")).unwrap();
        fs.open(&p("/d/f"), OpenMode::CreateNew).unwrap();
        fs.sync_dir(&p("/d")).unwrap();
        fs.wipe();
        assert!(fs.files().is_empty());
        assert!(!fs.exists(&p("/d")).unwrap());
    }
}
