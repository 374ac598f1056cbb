//! Group commit: a thread that owns the [`Wal`], takes every batch queued since its last
//! sync, appends them all, syncs once, and reports the highest tag made durable.
//!
//! Completions are delivered by calling the `on_complete` callback given to
//! [`GroupCommit::spawn`] on the commit thread, once per sync, in submission order. The
//! callback should be quick (e.g. send on a channel to the driver's loop): the next sync waits
//! for it.

use crate::error::{Result, StorageError};
use crate::vfs::Vfs;
use crate::wal::Wal;
use paxos::multi::PersistOp;
use paxos::Slot;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Zero-fill done per idle step of the commit thread: about a few milliseconds of disk time,
/// the longest a submission arriving mid-step waits for it.
const IDLE_PREPARE_STEP_BYTES: u64 = 1 << 20;

/// Bounds of the commit thread. Units are in the names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupCommitOptions {
    /// Submissions queued at most; a full queue blocks [`GroupCommit::submit`] (backpressure).
    pub queue_depth: usize,
    /// Submissions appended per sync at most, so one sync's latency stays bounded.
    pub group_submissions_max: usize,
}

impl Default for GroupCommitOptions {
    fn default() -> Self {
        GroupCommitOptions {
            queue_depth: 1024,
            group_submissions_max: 1024,
        }
    }
}

/// What one sync achieved.
#[derive(Debug)]
pub enum Completion {
    /// Every submission up to and including the one tagged `tag` is durable.
    Durable {
        /// The highest tag now durable (the last submitted in the group).
        tag: u64,
    },
    /// The group ending with `tag` is not durable; the log refuses every later write too
    /// (an fsync error is not retryable), so the member must stop and recover.
    Failed {
        /// The last tag of the failed group.
        tag: u64,
        /// Why.
        error: StorageError,
    },
}

/// Counters of the commit thread.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Groups written (one sync each).
    pub batches: u64,
    /// Submissions (records) written.
    pub records: u64,
    /// Syncs done.
    pub syncs: u64,
    /// Bytes appended.
    pub bytes: u64,
}

/// What one group cost, for metrics ([`GroupCommit::spawn_observed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncObserved {
    /// How long the sync (fdatasync) took.
    pub sync: Duration,
    /// Bytes appended in the group.
    pub bytes: u64,
    /// Records (submissions) in the group.
    pub records: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    records: AtomicU64,
    syncs: AtomicU64,
    bytes: AtomicU64,
}

struct Submission {
    ops: Vec<PersistOp>,
    tag: u64,
    /// A compaction request instead of a batch: carries no ops and completes nothing.
    compact: Option<Slot>,
}

/// A [`Wal`] on its own thread.
pub struct GroupCommit<V: Vfs + Send + 'static>
where
    V::File: Send,
{
    tx: Option<SyncSender<Submission>>,
    thread: Option<JoinHandle<Wal<V>>>,
    counters: Arc<Counters>,
}

impl<V: Vfs + Send + 'static> GroupCommit<V>
where
    V::File: Send,
{
    /// Moves `wal` onto a new thread. `on_complete` is called on that thread after each sync.
    pub fn spawn<F>(wal: Wal<V>, options: GroupCommitOptions, on_complete: F) -> Result<Self>
    where
        F: FnMut(Completion) + Send + 'static,
    {
        Self::spawn_observed(wal, options, on_complete, |_| {})
    }

    /// As [`GroupCommit::spawn`], and `on_sync` is called on the commit thread after each
    /// successful group, before its completion, with what the group cost ([`SyncObserved`]):
    /// for metrics, so it must be quick.
    pub fn spawn_observed<F, O>(
        wal: Wal<V>,
        options: GroupCommitOptions,
        on_complete: F,
        on_sync: O,
    ) -> Result<Self>
    where
        F: FnMut(Completion) + Send + 'static,
        O: FnMut(SyncObserved) + Send + 'static,
    {
        if options.queue_depth == 0 || options.group_submissions_max == 0 {
            return Err(StorageError::Invalid(
                "group commit needs a queue depth and a group size of at least 1".into(),
            ));
        }
        let (tx, rx) = sync_channel(options.queue_depth);
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("synod-wal".into())
            .spawn(move || run(wal, rx, options, on_complete, on_sync, &thread_counters))
            .map_err(|e| StorageError::io("spawn commit thread", "", e))?;
        Ok(GroupCommit {
            tx: Some(tx),
            thread: Some(thread),
            counters,
        })
    }

    /// As [`GroupCommit::submit`], without ever waiting: `Ok(Some(ops))` hands the batch back
    /// when the queue is full, for the caller to wait with `submit` where waiting is allowed.
    /// An async driver calls this first, so the common case costs no hand-off of its thread.
    pub fn try_submit(&self, ops: Vec<PersistOp>, tag: u64) -> Result<Option<Vec<PersistOp>>> {
        let tx = self.tx.as_ref().ok_or_else(|| StorageError::Poisoned {
            cause: "the commit thread was shut down".into(),
        })?;
        match tx.try_send(Submission {
            ops,
            tag,
            compact: None,
        }) {
            Ok(()) => Ok(None),
            Err(std::sync::mpsc::TrySendError::Full(s)) => Ok(Some(s.ops)),
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => Err(StorageError::Poisoned {
                cause: "the commit thread has stopped".into(),
            }),
        }
    }

    /// Queues one batch (one record) tagged `tag`; tags should increase with submission order.
    /// Blocks while the queue is full.
    pub fn submit(&self, ops: Vec<PersistOp>, tag: u64) -> Result<()> {
        let tx = self.tx.as_ref().ok_or_else(|| StorageError::Poisoned {
            cause: "the commit thread was shut down".into(),
        })?;
        tx.send(Submission {
            ops,
            tag,
            compact: None,
        })
        .map_err(|_| StorageError::Poisoned {
            cause: "the commit thread has stopped".into(),
        })
    }

    /// Queues a compaction: once every batch queued before it is synced, the commit thread
    /// deletes the segments a durable snapshot through `through` covers (see [`Wal::compact`]).
    /// A failed compaction is logged and leaves the segments in place: it loses nothing.
    pub fn compact(&self, through: Slot) -> Result<()> {
        let tx = self.tx.as_ref().ok_or_else(|| StorageError::Poisoned {
            cause: "the commit thread was shut down".into(),
        })?;
        tx.send(Submission {
            ops: Vec::new(),
            tag: 0,
            compact: Some(through),
        })
        .map_err(|_| StorageError::Poisoned {
            cause: "the commit thread has stopped".into(),
        })
    }

    /// Counters so far.
    pub fn stats(&self) -> GroupCommitStats {
        GroupCommitStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            records: self.counters.records.load(Ordering::Relaxed),
            syncs: self.counters.syncs.load(Ordering::Relaxed),
            bytes: self.counters.bytes.load(Ordering::Relaxed),
        }
    }

    /// Drains the queue (every submission gets its completion), stops the thread and hands
    /// back the log.
    pub fn shutdown(mut self) -> Result<Wal<V>> {
        self.tx = None;
        let thread = self
            .thread
            .take()
            .ok_or_else(|| StorageError::Invalid("commit thread already joined".into()))?;
        thread
            .join()
            .map_err(|_| StorageError::Invalid("the commit thread panicked".into()))
    }
}

impl<V: Vfs + Send + 'static> Drop for GroupCommit<V>
where
    V::File: Send,
{
    fn drop(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            // Draining on drop keeps the promise that every submission gets a completion.
            let _ = thread.join();
        }
    }
}

fn run<V: Vfs, F: FnMut(Completion), O: FnMut(SyncObserved)>(
    mut wal: Wal<V>,
    rx: Receiver<Submission>,
    options: GroupCommitOptions,
    mut on_complete: F,
    mut on_sync: O,
    counters: &Counters,
) -> Wal<V> {
    let mut group: Vec<Submission> = Vec::new();
    // The active segment whose successor is prepared (or failed to be): nothing more to do
    // while idle until the next rotation.
    let mut prepared_after: Option<u64> = None;
    loop {
        let first = match rx.try_recv() {
            Ok(s) => s,
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {
                let active = wal.segments().last().map(|s| s.index);
                if prepared_after != active && !wal.is_poisoned() {
                    // Idle: zero-fill the next segment a step at a time, looking at the queue
                    // between steps, so a rotation later is a rename and a submission that
                    // arrives now waits for one step at most.
                    match wal.prepare_next_segment(IDLE_PREPARE_STEP_BYTES) {
                        Ok(false) => {}
                        Ok(true) => prepared_after = active,
                        Err(e) => {
                            // Not fatal: the rotation will fill the segment itself.
                            tracing::warn!(error = %e, "could not prepare the next WAL segment");
                            prepared_after = active;
                        }
                    }
                    continue;
                }
                match rx.recv() {
                    Ok(s) => s,
                    Err(_) => break,
                }
            }
        };
        group.clear();
        group.push(first);
        while group.len() < options.group_submissions_max {
            match rx.try_recv() {
                Ok(s) => group.push(s),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let batches: Vec<&Submission> = group.iter().filter(|s| s.compact.is_none()).collect();
        if let Some(last) = batches.last() {
            let tag = last.tag;
            let before = wal.stats().bytes;
            let ops: Vec<&[PersistOp]> = batches.iter().map(|s| s.ops.as_slice()).collect();
            let mut sync = Duration::ZERO;
            let result = wal.append_batches(&ops).and_then(|_| {
                let started = Instant::now();
                let synced = wal.sync();
                sync = started.elapsed();
                synced
            });
            let bytes = wal.stats().bytes - before;
            counters.bytes.fetch_add(bytes, Ordering::Relaxed);
            match result {
                Ok(_) => {
                    on_sync(SyncObserved {
                        sync,
                        bytes,
                        records: batches.len() as u64,
                    });
                    counters.batches.fetch_add(1, Ordering::Relaxed);
                    counters
                        .records
                        .fetch_add(batches.len() as u64, Ordering::Relaxed);
                    counters.syncs.fetch_add(1, Ordering::Relaxed);
                    on_complete(Completion::Durable { tag });
                }
                Err(error) => on_complete(Completion::Failed { tag, error }),
            }
        }
        for through in group.iter().filter_map(|s| s.compact) {
            if let Err(e) = wal.compact(through) {
                tracing::warn!(error = %e, through = through.0, "log compaction failed; segments kept");
            }
        }
    }
    wal
}
