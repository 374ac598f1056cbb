//! Simulated watchers, as `crates/node/src/watch.rs` serves them from a member: a watcher is a
//! key range and the last revision it covered, no buffer. In step (its revision is the start
//! of an applied batch) it takes its part of [`member::AppliedChanges`]; out of step it reads
//! the changes after its revision from the member's store (`kv::KvRead::Watch`, serializable).
//! A client's watch outlives the member it is on: when that member crashes, or when the client
//! cancels it, it is created again on some member from the revision after its last event
//! (etcd's clients resume that way). A watcher behind a compaction is cancelled (etcd's
//! `compact_revision`) and the client starts a new watch after it.
//!
//! Checked against the reference, every revision's changes as the members applied them (all
//! members must agree on each): a watch's events are ordered and unique by (revision, key),
//! none before its start revision (resumable), and exactly the reference's in its key range
//! over every revision it covered (reliable, atomic: a revision never split), after its
//! filters (a watch may drop puts or deletes, etcd's NOPUT and NODELETE); and a watch that
//! asked for previous versions gets, with every event, the key's value before that revision
//! as the reference's history has it (none after a delete or before the first put), where
//! the reference knows every revision before it.

use super::check::{Checks, MemberCheck};
use kv::{Event, EventKind, KvRead, WatchRead};
use member::{AppliedChanges, Request, RequestId};
use std::collections::BTreeMap;

/// Events one watch read answers at most (it never splits a revision).
const READ_EVENTS_MAX: usize = 64;
const READ_BYTES_MAX: usize = 64 << 10;

/// One change as checked: (revision, key, is a put, value).
pub(crate) type Change = (i64, String, bool, String);

pub(crate) fn change(e: &Event) -> Change {
    (
        e.kv.mod_revision,
        String::from_utf8_lossy(&e.kv.key).into_owned(),
        e.kind == EventKind::Put,
        String::from_utf8_lossy(&e.kv.value).into_owned(),
    )
}

/// A client's watch over one key prefix.
pub(crate) struct Watch {
    pub prefix: String,
    /// The first revision asked for.
    pub start: i64,
    /// Every revision through this one was covered (events or none in range).
    pub after: i64,
    pub events: Vec<Change>,
    /// Where it is served now: (member, incarnation), if anywhere.
    pub at: Option<(usize, u64)>,
    /// A read in flight at that member.
    pub reading: Option<RequestId>,
    /// Revisions a read started at while they were the store's compaction revision: the
    /// compaction dropped the deletions at them (etcd's too keeps only the puts there), so
    /// the watch rightly never saw those.
    pub started_at_compaction: Vec<i64>,
    /// etcd's NOPUT and NODELETE filters.
    pub no_put: bool,
    pub no_delete: bool,
    /// Asks for previous versions: then each event's previous value, in step with `events`.
    pub prev_kv: bool,
    pub prevs: Vec<Option<String>>,
}

impl Watch {
    pub fn new(prefix: String, start: i64) -> Watch {
        Watch {
            prefix,
            start,
            after: start - 1,
            events: Vec::new(),
            at: None,
            reading: None,
            started_at_compaction: Vec::new(),
            no_put: false,
            no_delete: false,
            prev_kv: false,
            prevs: Vec::new(),
        }
    }

    /// A new watch from `start` with the options of `like` (filters, previous versions).
    pub fn like(like: &Watch, start: i64) -> Watch {
        Watch {
            no_put: like.no_put,
            no_delete: like.no_delete,
            prev_kv: like.prev_kv,
            ..Watch::new(like.prefix.clone(), start)
        }
    }

    fn take(&mut self, events: &[Event]) {
        self.events.extend(events.iter().map(change));
        if self.prev_kv {
            self.prevs.extend(events.iter().map(|e| {
                e.prev_kv
                    .as_ref()
                    .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
            }));
        }
    }

    fn read(&self) -> WatchRead {
        WatchRead {
            key: self.prefix.as_bytes().to_vec(),
            range_end: super::clients::prefix_end(self.prefix.as_bytes()),
            after: self.after,
            prev_kv: self.prev_kv,
            no_put: self.no_put,
            no_delete: self.no_delete,
            events_max: READ_EVENTS_MAX,
            bytes_max: READ_BYTES_MAX,
        }
    }

    /// The request to read what it missed (out of step), if it may read now.
    pub fn read_request(&self) -> Request {
        Request::Read {
            read: KvRead::Watch(self.read()),
            linearizable: false,
        }
    }

    /// Takes its part of a shared batch if in step; returns whether it was.
    pub fn take_shared(&mut self, changes: &AppliedChanges) -> bool {
        if self.reading.is_some() || self.after != changes.after {
            return false;
        }
        let mine = self.read().select(&changes.events);
        self.take(&mine);
        self.after = changes.through;
        true
    }

    /// Takes a read's answer: false if the watch was compacted away (it ends).
    pub fn take_read(&mut self, answer: &kv::WatchReadResponse) -> bool {
        if answer.compacted {
            return false;
        }
        let first = self.after + 1;
        if first == answer.compact_revision && !self.started_at_compaction.contains(&first) {
            self.started_at_compaction.push(first);
        }
        self.take(&answer.events);
        self.after = self.after.max(answer.through);
        true
    }

    /// Where a re-created watch resumes: after its last event (or from its start).
    pub fn resume(&mut self) {
        self.at = None;
        self.reading = None;
        self.after = self.events.last().map_or(self.start - 1, |c| c.0);
    }
}

/// Every revision's changes, as members applied them.
#[derive(Default)]
pub(crate) struct Reference {
    changes: BTreeMap<i64, Vec<Change>>,
    pub watch_events: u64,
    pub watches_checked: u64,
    /// Watches whose events were compared with every change applied in their range.
    pub watches_compared: u64,
    /// Previous versions compared with the reference's.
    pub prevs_compared: u64,
}

impl Reference {
    /// A member shared `batch`: record it, and check it agrees with what others shared.
    pub fn record(&mut self, batch: &AppliedChanges, i: usize, now: u64, checks: &mut Checks) {
        let mut by_revision: BTreeMap<i64, Vec<Change>> = BTreeMap::new();
        for e in &batch.events {
            let c = change(e);
            by_revision.entry(c.0).or_default().push(c);
        }
        for (revision, changes) in by_revision {
            if revision <= batch.after || revision > batch.through {
                let detail = format!(
                    "m{}: a shared batch ({}, {}] holds a change at revision {revision}",
                    i + 1,
                    batch.after,
                    batch.through
                );
                checks.violation(MemberCheck::SharedChanges, now, Some(i), detail);
                continue;
            }
            match self.changes.get(&revision) {
                None => {
                    self.changes.insert(revision, changes);
                }
                Some(seen) if *seen != changes => {
                    let detail = format!(
                        "m{}: revision {revision} changed {changes:?}, another member shared {seen:?}",
                        i + 1
                    );
                    checks.violation(MemberCheck::SharedChanges, now, Some(i), detail);
                }
                Some(_) => {}
            }
        }
    }

    /// The value `key` had before revision `revision` by the reference (none: absent), if the
    /// reference knows every revision back to the key's last change (or to the start).
    fn value_before(&self, key: &str, revision: i64) -> Option<Option<String>> {
        let mut expect = revision - 1;
        for (r, changes) in self.changes.range(..revision).rev() {
            if *r != expect {
                return None;
            }
            if let Some(c) = changes.iter().find(|c| c.1 == key) {
                return Some(c.2.then(|| c.3.clone()));
            }
            expect -= 1;
        }
        // Revision 1 is the empty store's.
        (expect <= 1).then_some(None)
    }

    /// Checks one watch's events (see the module doc).
    pub fn check(&mut self, w: &Watch, now: u64, checks: &mut Checks) {
        self.watches_checked += 1;
        if w.prev_kv {
            for (c, prev) in w.events.iter().zip(&w.prevs) {
                let Some(want) = self.value_before(&c.1, c.0) else {
                    continue;
                };
                self.prevs_compared += 1;
                if want != *prev {
                    let detail = format!(
                        "watch on {} from {}: {c:?} came with previous value {prev:?}, the history has {want:?}",
                        w.prefix, w.start
                    );
                    checks.violation(MemberCheck::Watch, now, None, detail);
                    return;
                }
            }
        }
        self.watch_events += w.events.len() as u64;
        for pair in w.events.windows(2) {
            if (pair[0].0, &pair[0].1) >= (pair[1].0, &pair[1].1) {
                let detail = format!(
                    "watch on {} from {}: {:?} then {:?} (out of order or twice)",
                    w.prefix, w.start, pair[0], pair[1]
                );
                checks.violation(MemberCheck::Watch, now, None, detail);
                return;
            }
        }
        if let Some(first) = w.events.first().filter(|c| c.0 < w.start) {
            let detail = format!(
                "watch on {} from {} sent revision {} first",
                w.prefix, w.start, first.0
            );
            checks.violation(MemberCheck::Watch, now, None, detail);
            return;
        }
        // Revisions with no change recorded (applied by snapshot install only, with no
        // member sharing them) cannot be compared: compare only a fully known stretch.
        let through = w.after;
        if through < w.start.max(1) {
            return;
        }
        let known = (w.start.max(1)..=through).all(|r| self.changes.contains_key(&r));
        if !known {
            return;
        }
        self.watches_compared += 1;
        let want: Vec<&Change> = self
            .changes
            .range(w.start.max(1)..=through)
            .flat_map(|(_, cs)| cs.iter())
            .filter(|c| c.1.starts_with(&w.prefix))
            .filter(|c| if c.2 { !w.no_put } else { !w.no_delete })
            // A deletion at a revision the watch was read from while it was the compaction
            // revision is gone from the store (as in etcd): not owed.
            .filter(|c| c.2 || !w.started_at_compaction.contains(&c.0))
            .collect();
        let got: Vec<&Change> = w.events.iter().filter(|c| c.0 <= through).collect();
        if want != got {
            let missing: Vec<&&Change> = want.iter().filter(|c| !got.contains(c)).take(3).collect();
            let extra: Vec<&&Change> = got.iter().filter(|c| !want.contains(c)).take(3).collect();
            let detail = format!(
                "watch on {} from {} through {through}: {} events, the members applied {}; missing {missing:?}, extra {extra:?}",
                w.prefix,
                w.start,
                got.len(),
                want.len()
            );
            checks.violation(MemberCheck::Watch, now, None, detail);
        }
    }
}
