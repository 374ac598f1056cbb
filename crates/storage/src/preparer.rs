//! The background segment preparer: a thread with its own handle on the file system that
//! zero-fills the next WAL segment as `wal-<index>.spare` while the log appends to the active
//! one, so that rotation is a header write, an fsync and a rename instead of a 64 MiB fill on
//! the append path. Started by [`crate::Wal::start_background_preparer`]; see
//! `docs/storage-format.md` ("Spare segment") for why a spare can never be mistaken for part of
//! the log.
//!
//! It keeps one spare ready, not two: the log asks for the next one the moment it renames the
//! last, so the preparer has the whole life of a segment to fill its successor. A second
//! spare would only help a burst longer than two segments, and under a sustained load it would
//! double the zeros in flight without adding lead time.

use crate::vfs::{OpenMode, Vfs, VfsFile};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Zero-fill per step: the preparer looks at its stop flag between steps, so dropping the log
/// waits for one step at most.
const STEP_BYTES: u64 = 1 << 20;
/// Zero-fill between two `fdatasync`s: bounds the dirty zeros a later fsync of the spare (or
/// a cache flush by the log's own sync) has to write at once.
const SYNC_EVERY_BYTES: u64 = 8 << 20;

/// A segment file being prepared ahead of its rotation. Its name (`wal-<index>.spare`) is not
/// a segment's, so recovery never reads it; open deletes it.
pub(crate) struct Spare<F> {
    pub(crate) index: u64,
    pub(crate) path: PathBuf,
    pub(crate) file: F,
    /// Bytes zero-filled so far (synced, except when the preparer hands over a complete one,
    /// whose last step the rotation's fsync covers anyway).
    pub(crate) filled: u64,
}

/// What the preparer thread reports for one request.
pub(crate) enum Prepared<F> {
    /// The spare for this index is complete (zero-filled to the segment size and synced).
    Ready(Spare<F>),
    /// Preparing it failed; the rotation fills the segment itself.
    Failed { index: u64, error: String },
}

/// The log's end of the preparer thread.
pub(crate) struct Preparer<F> {
    requests: Option<Sender<u64>>,
    /// In a mutex only so that the log stays `Sync` as it was before it had a preparer (a
    /// bare `Receiver` is not); only the log's thread ever locks it.
    results: Mutex<Receiver<Prepared<F>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// The index asked for whose answer has not been received yet.
    pending: Option<u64>,
}

impl<F: VfsFile + Send + 'static> Preparer<F> {
    /// Starts the thread; it prepares nothing until asked.
    pub(crate) fn spawn<V>(vfs: V, dir: PathBuf, segment_bytes: u64) -> std::io::Result<Self>
    where
        V: Vfs<File = F> + Send + 'static,
    {
        let (requests, requests_rx) = channel::<u64>();
        let (results_tx, results) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("synod-wal-prep".into())
            .spawn(move || {
                while let Ok(index) = requests_rx.recv() {
                    let Some(result) = prepare(&vfs, &dir, index, segment_bytes, &thread_stop)
                    else {
                        return; // stopping
                    };
                    if results_tx.send(result).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Preparer {
            requests: Some(requests),
            results: Mutex::new(results),
            stop,
            thread: Some(thread),
            pending: None,
        })
    }
}

impl<F> Preparer<F> {
    /// Asks for the spare of segment `index`, unless one is already being prepared.
    pub(crate) fn request(&mut self, index: u64) {
        if self.pending.is_some() {
            return;
        }
        let sent = self
            .requests
            .as_ref()
            .is_some_and(|r| r.send(index).is_ok());
        if sent {
            self.pending = Some(index);
        }
    }

    /// Whether a request is outstanding.
    pub(crate) fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// The answer to the outstanding request if it has arrived, or (with `wait`) once it
    /// arrives. `None` if nothing was asked, or the thread is gone.
    pub(crate) fn receive(&mut self, wait: bool) -> Option<Prepared<F>> {
        self.pending?;
        // A poisoned lock only means a panic elsewhere while holding it; the receiver is fine.
        let results = self
            .results
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let got = if wait {
            results.recv().ok()
        } else {
            match results.try_recv() {
                Ok(p) => Some(p),
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => None,
            }
        };
        // An answer, or a thread that died: either way nothing is outstanding any more.
        self.pending = None;
        got
    }
}

impl<F> Drop for Preparer<F> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            // Joined so that no file of this directory is touched once the log is gone (a
            // reopen deletes spares; a preparer still writing would race it).
            let _ = thread.join();
        }
    }
}

/// Creates `wal-<index>.spare` and zero-fills it to `segment_bytes` in steps, syncing every
/// few MiB and at the end. `None` if asked to stop (the partial spare is removed; open would
/// delete it anyway).
fn prepare<V: Vfs>(
    vfs: &V,
    dir: &std::path::Path,
    index: u64,
    segment_bytes: u64,
    stop: &AtomicBool,
) -> Option<Prepared<V::File>> {
    let path = dir.join(crate::wal::segment_spare_name(index));
    let failed = |what: &str, e: std::io::Error| {
        let _ = vfs.remove(&path);
        let error = format!("{what} {}: {e}", path.display());
        tracing::warn!(%error, "could not prepare the next WAL segment; its rotation will fill it");
        Some(Prepared::Failed { index, error })
    };
    let mut file = match vfs.open(&path, OpenMode::CreateTruncate) {
        Ok(f) => f,
        Err(e) => return failed("create", e),
    };
    let mut filled = 0;
    let mut synced = 0;
    while filled < segment_bytes {
        if stop.load(Ordering::Relaxed) {
            drop(file);
            let _ = vfs.remove(&path);
            return None;
        }
        let to = filled.saturating_add(STEP_BYTES).min(segment_bytes);
        if let Err(e) = file.allocate(to) {
            return failed("zero-fill", e);
        }
        filled = to;
        if filled - synced >= SYNC_EVERY_BYTES || filled == segment_bytes {
            if let Err(e) = file.sync_data() {
                return failed("sync", e);
            }
            synced = filled;
        }
    }
    Some(Prepared::Ready(Spare {
        index,
        path,
        file,
        filled,
    }))
}
