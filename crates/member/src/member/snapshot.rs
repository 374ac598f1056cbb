//! The member's snapshot work: when to take one, what the driver is handed, what follows once it
//! is durable (compaction), backups, Defragment, and a transfer from a peer (asks, chunks, the
//! install of a snapshot the driver decoded).
//!
//! Nothing here passes over the whole store on the member's core: a snapshot or a backup is
//! handed out as a [`BodyJob`], a view of the store that is O(1) to take, and the driver
//! encodes it elsewhere while the member goes on applying; a received snapshot is decoded by
//! the driver too ([`Output::DecodeSnapshot`]) and only swapped in here. The log is compacted
//! only through a snapshot that is durable (asserted in [`Member::compact_log`]).

use super::{Answer, BackupBody, CrashPoint, Member, Output, RequestId, TRANSFERS_MAX};
use crate::bugs::MemberBug;
use crate::error::MemberError;
use crate::snapshot::{BodyJob, ChunkStored, DecodedSnapshot};
use crate::time::Micros;
use bytes::Bytes;
use kv::KvStore;
use paxos::multi::Applier;
use paxos::Slot;
use storage::SnapshotChunk;

impl Member {
    /// A snapshot write begun by [`Output::WriteSnapshot`] ended: `Ok` with the bytes of its
    /// store part (the db size as of its slot) once the file is durable, or why it failed. On
    /// success the log through it is compacted ([`Output::CompactLog`]); waiting defragments
    /// are answered either way.
    pub fn on_snapshot_written(&mut self, now: Micros, through: Slot, result: Result<u64, String>) {
        self.advance(now);
        // A report of another slot than the one being written would compact a log that no
        // durable snapshot covers: a broken driver, so stop.
        assert_eq!(
            self.snapshots.writing,
            Some(through),
            "a snapshot write reported that was not begun (one write at a time)"
        );
        self.snapshots.writing = None;
        match &result {
            Ok(kv_bytes) => {
                self.snapshots.made_durable(through);
                if self.snapshots.newest == Some(through) {
                    // The db size, measured again: the store as of `through`, plus what was
                    // applied while the snapshot was encoded and written. (A newer snapshot
                    // installed meanwhile measured it already.)
                    let grown = self
                        .db_bytes
                        .saturating_sub(self.snapshots.db_bytes_at_start);
                    self.db_bytes = kv_bytes.saturating_add(grown);
                    self.snapshots.measured(*kv_bytes, false);
                }
                self.crash_point(CrashPoint::DuringCompaction);
                self.compact_log(through);
                // Planted bug `RevisionBackAfterSnapshotInstall`: the snapshot just made
                // durable is installed, as a restart would restore it, over what was applied
                // while it was written.
                if let Some(older) = self.snapshots.planted_older.take() {
                    if older.applied_through() < self.applier.applied_through() {
                        self.install_older_store(&older);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "snapshot failed; will retry at the next interval")
            }
        }
        let outcome = result.map(|_| ()).map_err(MemberError::Snapshot);
        for id in std::mem::take(&mut self.defragments) {
            self.answer(id, Answer::Defragment(outcome.clone()));
        }
        self.drive();
    }

    /// The driver handled [`Output::StoreSnapshotChunk`] of transfer `transfer`.
    pub fn on_snapshot_chunk_stored(&mut self, now: Micros, transfer: u64, stored: ChunkStored) {
        let now = self.advance(now);
        let current = self
            .snapshots
            .incoming
            .as_ref()
            .is_some_and(|i| i.transfer == transfer);
        match stored {
            ChunkStored::Progress { next_offset } => {
                if self.snapshots.stored(transfer, next_offset, true) {
                    self.ask_next_chunk(now);
                }
            }
            ChunkStored::Ignored { next_offset } => {
                if self.snapshots.stored(transfer, next_offset, false) {
                    self.ask_next_chunk(now);
                }
            }
            ChunkStored::Complete { through } => {
                if current {
                    self.snapshots.incoming = None;
                }
                // Durable whole: it may compact the log once the core takes it.
                self.snapshots.made_durable(through);
                // Decoded off the core, and only if it can still be installed: one already
                // applied past is not worth a pass over its body.
                if through > self.applier.applied_through() && self.snapshots.decoding.is_none() {
                    self.snapshots.decoding = Some(through);
                    self.outputs.push_back(Output::DecodeSnapshot { through });
                }
            }
            ChunkStored::Failed(e) => tracing::warn!(error = %e, "snapshot chunk refused"),
        }
        self.drive();
    }

    /// The driver decoded (off the core) the received snapshot [`Output::DecodeSnapshot`]
    /// asked for: installed if it is still ahead of what is applied here, and then the log
    /// through it is compacted. An error leaves the state as it was; the replica asks for a
    /// snapshot again on its own schedule.
    pub fn on_snapshot_decoded(
        &mut self,
        now: Micros,
        through: Slot,
        decoded: Result<DecodedSnapshot, String>,
    ) {
        let now = self.advance(now);
        assert_eq!(
            self.snapshots.decoding,
            Some(through),
            "a snapshot decode reported that was not asked for (one decode at a time)"
        );
        self.snapshots.decoding = None;
        match decoded {
            Ok(snapshot) => {
                assert_eq!(snapshot.through(), through, "decoded another snapshot");
                // Only a snapshot the core took may compact its log: one it already had
                // applied past (by the log, while this one was decoded) leaves the log be
                // (the core may not have handed its slots out here).
                if self.install(now, snapshot) {
                    self.compact_log(through);
                }
            }
            Err(e) => tracing::warn!(error = %e, "a received snapshot does not restore"),
        }
        self.drive();
    }

    /// The log before `through` may go. Only a durable snapshot covering `through` allows it:
    /// the slots compacted away are then only in that snapshot.
    fn compact_log(&mut self, through: Slot) {
        assert!(
            self.snapshots.newest.is_some_and(|n| n >= through),
            "compacting through {through} with no durable snapshot covering it (newest {:?})",
            self.snapshots.newest
        );
        self.replica.compact(through);
        self.outputs.push_back(Output::CompactLog { through });
    }

    /// A backup of the state applied here, for the driver to encode off the core.
    pub(super) fn backup(&self) -> BackupBody {
        BackupBody {
            through: self.applier.applied_through(),
            revision: self.applier.machine().revision(),
            body: BodyJob::new(&self.applier, false, None),
        }
    }

    pub(super) fn on_snapshot_chunk(&mut self, now: Micros, from: u64, bytes: &Bytes) {
        let chunk = match SnapshotChunk::decode(bytes) {
            Ok(chunk) => chunk,
            Err(e) => {
                tracing::warn!(from, error = %e, "snapshot chunk refused");
                return;
            }
        };
        let Some(incoming) = self.snapshots.incoming.as_ref() else {
            return;
        };
        if incoming.from != from {
            // Not the member this transfer asks: ask it again.
            self.ask_next_chunk(now);
            return;
        }
        if chunk.through < incoming.at_least {
            tracing::warn!(
                from,
                "snapshot chunk refused: chunk of snapshot {} does not cover slot {}",
                chunk.through,
                incoming.at_least
            );
            return;
        }
        let transfer = incoming.transfer;
        self.snapshots
            .chunk_arrived(chunk.data.len() as u64, chunk.total_len);
        self.outputs
            .push_back(Output::StoreSnapshotChunk { transfer, chunk });
    }

    fn ask_next_chunk(&mut self, now: Micros) {
        for (to, ask) in self.snapshots.next_asks(now) {
            self.send(to, ask);
        }
    }

    /// Installs `snapshot` if it is ahead of what is applied here; whether it did. Swapping the
    /// decoded state in is O(1): the pass over the body was the driver's.
    fn install(&mut self, now: Micros, snapshot: DecodedSnapshot) -> bool {
        let through = snapshot.through();
        if through <= self.applier.applied_through() {
            // Planted bug `RevisionBackAfterSnapshotInstall`: the older store goes in anyway,
            // under the slot applied here (so applying goes on), and its revision is older.
            if self.bugs.has(MemberBug::RevisionBackAfterSnapshotInstall) {
                let (older, _, _) = snapshot.into_parts();
                self.install_older_store(&older);
            }
            return false;
        }
        let (applier, kv_bytes, table) = snapshot.into_parts();
        self.db_bytes = kv_bytes;
        self.snapshots.measured(kv_bytes, true);
        match applier.membership() {
            Some(m) => self.replica.install_snapshot_in(through, m.clone()),
            None => self.replica.install_snapshot(through),
        }
        self.applier = applier;
        // Views of the store replaced are of no use to reads any more.
        self.read_view = None;
        if self.is_auxiliary() {
            // An auxiliary keeps the snapshot's slot and configuration, not its store.
            self.applier = super::auxiliary::without_store(&self.applier);
            self.db_bytes = 0;
        }
        if let Some(table) = table {
            self.table = table;
        }
        self.update_peers(now);
        self.publish_revision();
        self.restart_lease_clocks(now);
        tracing::info!(through = through.0, "installed a snapshot from a peer");
        true
    }

    /// Planted bug `RevisionBackAfterSnapshotInstall`: puts `older`'s store in over the state
    /// applied here, keeping the applied slot (so applying goes on from there), and tells the
    /// watchers its (lower) revision.
    fn install_older_store(&mut self, older: &Applier<KvStore>) {
        let mut applier = Applier::restore(
            older.machine().clone(),
            self.applier.sessions().clone(),
            self.applier.applied_through(),
        );
        applier.set_membership(self.applier.membership().cloned());
        self.applier = applier;
        self.read_view = None;
        self.publish_revision();
    }

    pub(super) fn maybe_snapshot(&mut self) {
        // An auxiliary's store is empty by design: a snapshot of it would be a false one.
        if self.is_auxiliary() {
            return;
        }
        if self.snapshots.due(self.applier.applied_through()) {
            self.start_snapshot();
        }
    }

    /// Hands the applied state, as it is now, to the driver to encode and write
    /// ([`Output::WriteSnapshot`]: a view, O(1) here; the pass over the store is the driver's,
    /// off the core); [`Member::on_snapshot_written`] measures the db size again and compacts
    /// once it is durable. Does nothing while a write is in progress.
    fn start_snapshot(&mut self) {
        // Counted before the check for a write in progress, as every attempt is a hit.
        let crash_mid = self.crash_due(CrashPoint::DuringSnapshot);
        if self.is_auxiliary() {
            return;
        }
        if self.snapshots.writing.is_some() {
            return;
        }
        let through = self.applier.applied_through();
        let body = BodyJob::new(&self.applier, true, Some(&self.table));
        self.snapshots.begin(through);
        if self.bugs.has(MemberBug::RevisionBackAfterSnapshotInstall) {
            self.snapshots.planted_older = Some(self.applier.clone());
        }
        self.snapshots.db_bytes_at_start = self.db_bytes;
        self.outputs.push_back(Output::WriteSnapshot {
            through,
            body,
            crash_mid,
        });
    }

    /// etcd's Defragment, in Synod's terms: a snapshot now (unless the newest covers every
    /// applied slot), which frees the log segments it covers and measures the db size again, so
    /// space freed by a compaction shows (and can clear the NOSPACE alarm) at once. Answered
    /// when the snapshot is durable (the one in progress, if there is one).
    pub(super) fn defragment(&mut self, request: RequestId) {
        let applied = self.applier.applied_through();
        if applied == Slot::ZERO || self.snapshots.newest == Some(applied) {
            self.answer(request, Answer::Defragment(Ok(())));
            return;
        }
        if self.defragments.len() >= TRANSFERS_MAX {
            self.answer(
                request,
                Answer::Defragment(Err(MemberError::TooManyRequests)),
            );
            return;
        }
        self.start_snapshot();
        self.defragments.push(request);
    }
}
