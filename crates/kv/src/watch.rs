//! What watchers read: the changes after a revision, as etcd's watch events.
//!
//! The store keeps every version since the last compaction, so a watcher never needs its own
//! buffer: it remembers the last revision it was sent and reads the changes after it. To find
//! them without scanning every key, the store keeps a [`ChangeIndex`]: one (revision, key)
//! entry per version in the histories, in revision order.

use crate::error::KvError;
use crate::span::Span;
use crate::store::{Keys, KvStore, Version};
use crate::types::{Event, EventKind, KeyValue, WatchRead, WatchReadResponse};
use std::collections::VecDeque;

/// Most index entries one [`KvStore::watch_read`] looks at (it then stops at the next revision
/// boundary), so a narrow watch behind a long backlog of other keys' changes cannot hold the
/// store for long; the watcher reads on from where it stopped.
pub const WATCH_SCAN_ENTRIES_MAX: usize = 64 * 1024;

/// (revision, key) for every version after the compaction revision, ordered by revision and,
/// within one revision, by key.
///
/// Derived state: rebuilt from the histories when a snapshot is restored, and kept in the
/// same canonical order as it grows (each command's changes are sorted by key when it ends),
/// so two stores with equal histories have equal indexes. That is also why events of one
/// transaction come in key order rather than in the order of its operations, as etcd's do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ChangeIndex {
    entries: VecDeque<(i64, Vec<u8>)>,
}

impl ChangeIndex {
    /// The index of `keys`' versions from `compact_revision` on: after the compaction, and
    /// the puts at it, which the compaction keeps (see [`ChangeIndex::compact`]).
    pub(crate) fn rebuild(keys: &Keys, compact_revision: i64) -> Self {
        let mut entries: Vec<(i64, Vec<u8>)> = keys
            .iter()
            .flat_map(|(key, history)| {
                history
                    .iter()
                    .filter(|v| {
                        v.mod_revision > compact_revision
                            || (v.mod_revision == compact_revision && v.live.is_some())
                    })
                    .map(move |v| (v.mod_revision, key.clone()))
            })
            .collect();
        entries.sort();
        ChangeIndex {
            entries: entries.into(),
        }
    }

    /// Records that `key` changed at `revision`, the revision of the command being applied.
    /// Duplicates and changes the command undid are cleaned up by [`ChangeIndex::seal`].
    pub(crate) fn record(&mut self, revision: i64, key: &[u8]) {
        debug_assert!(self.entries.back().is_none_or(|(r, _)| *r <= revision));
        self.entries.push_back((revision, key.to_vec()));
    }

    /// Ends the command that wrote at `revision`: its entries are sorted by key, deduplicated,
    /// and those whose key holds no version at `revision` (created and deleted by the same
    /// transaction) are dropped.
    pub(crate) fn seal(&mut self, revision: i64, keys: &Keys) {
        // The common case, a command that changed one key: its one entry is already in
        // place, and it names a version (undoing a change within a command records two).
        let n = self.entries.len();
        let last_is_alone = self.entries.back().is_some_and(|(r, _)| *r == revision)
            && (n == 1 || self.entries[n - 2].0 < revision);
        if last_is_alone {
            debug_assert!(self
                .entries
                .back()
                .is_some_and(|(r, key)| version_at(keys, key, *r).is_some()));
            return;
        }
        let first = self.entries.partition_point(|(r, _)| *r < revision);
        if first == self.entries.len() {
            return;
        }
        let mut tail: Vec<(i64, Vec<u8>)> = self.entries.drain(first..).collect();
        tail.sort();
        tail.dedup();
        tail.retain(|(r, key)| version_at(keys, key, *r).is_some());
        self.entries.extend(tail);
    }

    /// Forgets the changes a compaction at `revision` removed: every change below it, and the
    /// deletions at it. The puts at `revision` stay, as their versions do in `keys` (the
    /// compaction keeps each key's version at the compaction revision): etcd serves a watch
    /// that starts at the compaction revision, beginning with those puts.
    pub(crate) fn compact(&mut self, revision: i64, keys: &Keys) {
        let below = self.entries.partition_point(|(r, _)| *r < revision);
        self.entries.drain(..below);
        let at = self.entries.partition_point(|(r, _)| *r <= revision);
        let kept: Vec<(i64, Vec<u8>)> = self
            .entries
            .drain(..at)
            .filter(|(r, key)| version_at(keys, key, *r).is_some_and(|(v, _)| v.live.is_some()))
            .collect();
        for entry in kept.into_iter().rev() {
            self.entries.push_front(entry);
        }
    }

    /// How many changes the index holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The version of `key` written exactly at `revision`, and the one before it.
fn version_at<'a>(
    keys: &'a Keys,
    key: &[u8],
    revision: i64,
) -> Option<(&'a Version, Option<&'a Version>)> {
    let history = keys.get(key)?;
    let i = history
        .binary_search_by_key(&revision, |v| v.mod_revision)
        .ok()?;
    let before = i.checked_sub(1).and_then(|p| history.get(p));
    Some((&history[i], before))
}

fn key_value(key: &[u8], v: &Version) -> Option<KeyValue> {
    let live = v.live.as_ref()?;
    Some(KeyValue {
        key: key.to_vec(),
        create_revision: live.create_revision,
        mod_revision: v.mod_revision,
        version: live.version,
        value: live.value.clone(),
        lease: live.lease,
    })
}

impl WatchRead {
    /// A watch of every key, with previous versions: what [`WatchRead::select`] picks from.
    pub fn everything(after: i64, events_max: usize, bytes_max: usize) -> WatchRead {
        WatchRead {
            key: vec![0],
            range_end: vec![0],
            after,
            prev_kv: true,
            no_put: false,
            no_delete: false,
            events_max,
            bytes_max,
        }
    }

    /// Of `all`, the changes of every key over some revisions as [`WatchRead::everything`]
    /// reads them, the ones this watcher reads over the same revisions: those in its key
    /// range that its filters keep, with previous versions only if it asked for them. In the
    /// same order, and equal to what [`KvStore::watch_read`] would answer it (without its
    /// bounds), so a node can read once and serve many watchers.
    pub fn select(&self, all: &[Event]) -> Vec<Event> {
        let span = Span::new(&self.key, &self.range_end);
        all.iter()
            .filter(|e| span.contains(&e.kv.key))
            .filter(|e| match e.kind {
                EventKind::Put => !self.no_put,
                EventKind::Delete => !self.no_delete,
            })
            .map(|e| Event {
                kind: e.kind,
                kv: e.kv.clone(),
                prev_kv: if self.prev_kv {
                    e.prev_kv.clone()
                } else {
                    None
                },
            })
            .collect()
    }
}

impl KvStore {
    /// The changes in `w`'s key range after revision `w.after`, oldest first, as watch events.
    ///
    /// Stops at a revision boundary once `w.events_max` events or `w.bytes_max` bytes of keys
    /// and values are gathered, so one answer is bounded and never splits a revision; the
    /// answer's `through` says how far it got. A watcher that fell behind a compaction (its
    /// next revision, `after + 1`, is below `compact_revision`) gets `compacted` and no events:
    /// the changes it missed are gone. One whose next revision is the compaction revision is
    /// served, as etcd serves it (from the puts at that revision).
    pub fn watch_read(&self, w: &WatchRead) -> Result<WatchReadResponse, KvError> {
        self.check_key(&w.key)?;
        let mut out = WatchReadResponse {
            revision: self.revision,
            compact_revision: self.compact_revision,
            compacted: false,
            events: Vec::new(),
            through: w.after.max(self.revision),
        };
        if w.after.saturating_add(1) < self.compact_revision {
            out.compacted = true;
            out.through = w.after;
            return Ok(out);
        }
        if w.after >= self.revision {
            out.through = w.after;
            return Ok(out);
        }
        let span = Span::new(&w.key, &w.range_end);
        let entries = &self.changes.entries;
        let start = entries.partition_point(|(r, _)| *r <= w.after);
        let mut bytes = 0usize;
        for (i, (revision, key)) in entries.iter().enumerate().skip(start) {
            let full = out.events.len() >= w.events_max.max(1)
                || bytes >= w.bytes_max
                || i - start >= WATCH_SCAN_ENTRIES_MAX;
            if full && i > start && entries[i - 1].0 != *revision {
                out.through = entries[i - 1].0;
                break;
            }
            if !span.contains(key) {
                continue;
            }
            let Some((now, before)) = version_at(&self.keys, key, *revision) else {
                debug_assert!(
                    false,
                    "the change index names a version that does not exist"
                );
                continue;
            };
            let prev_kv = if w.prev_kv {
                before.and_then(|b| key_value(key, b))
            } else {
                None
            };
            let event = match key_value(key, now) {
                Some(kv) if !w.no_put => Event {
                    kind: EventKind::Put,
                    kv,
                    prev_kv,
                },
                None if !w.no_delete => Event {
                    kind: EventKind::Delete,
                    kv: KeyValue {
                        key: key.clone(),
                        mod_revision: *revision,
                        ..KeyValue::default()
                    },
                    prev_kv,
                },
                _ => continue,
            };
            bytes += event.kv.key.len()
                + event.kv.value.len()
                + event.prev_kv.as_ref().map_or(0, |p| p.value.len());
            out.events.push(event);
        }
        debug_assert!(out
            .events
            .windows(2)
            .all(|p| p[0].kv.mod_revision <= p[1].kv.mod_revision));
        debug_assert!(out
            .events
            .iter()
            .all(|e| e.kv.mod_revision > w.after && e.kv.mod_revision <= out.through));
        Ok(out)
    }
}
