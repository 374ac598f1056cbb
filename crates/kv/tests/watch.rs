//! Watch reads against a model built from range reads: the events after a revision are
//! exactly the differences between each revision's state and the one before it.

mod common;

use common::{command, key, range_end};
use kv::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Every live key at revision `at`, by key.
fn state_at(s: &KvStore, at: i64) -> BTreeMap<Vec<u8>, KeyValue> {
    let all = RangeRequest {
        revision: at,
        ..RangeRequest::range(vec![0], vec![0])
    };
    s.range(&all)
        .expect("a revision at or above the compaction is readable")
        .kvs
        .into_iter()
        .map(|kv| (kv.key.clone(), kv))
        .collect()
}

/// What a watcher on `key..range_end` after `after` must see, derived from range reads.
fn model_events(s: &KvStore, w: &WatchRead) -> Vec<Event> {
    let probe = |k: &[u8]| {
        // Whether the watch's range selects k: a range read at the current state of a store
        // holding only k would find it. Span logic lives in the crate; test it through reads.
        let mut one = KvStore::new();
        one.apply(&KvCommand::Put(PutRequest::new(k.to_vec(), "v")))
            .unwrap();
        let r = RangeRequest::range(w.key.clone(), w.range_end.clone());
        one.range(&r).unwrap().count == 1
    };
    let mut events = Vec::new();
    let mut before = state_at(s, w.after);
    for r in w.after + 1..=s.revision() {
        let now = state_at(s, r);
        let mut keys: Vec<&Vec<u8>> = before.keys().chain(now.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let (old, new) = (before.get(k), now.get(k));
            if old == new || !probe(k) {
                continue;
            }
            let prev_kv = if w.prev_kv { old.cloned() } else { None };
            let event = match new {
                Some(kv) => Event {
                    kind: EventKind::Put,
                    kv: kv.clone(),
                    prev_kv,
                },
                None => Event {
                    kind: EventKind::Delete,
                    kv: KeyValue {
                        key: k.clone(),
                        mod_revision: r,
                        ..KeyValue::default()
                    },
                    prev_kv,
                },
            };
            let filtered = match event.kind {
                EventKind::Put => w.no_put,
                EventKind::Delete => w.no_delete,
            };
            if !filtered {
                events.push(event);
            }
        }
        before = now;
    }
    events
}

/// Reads every change after `w.after` in as many answers as the bounds make it take.
fn read_all(s: &KvStore, mut w: WatchRead) -> (Vec<Event>, usize) {
    let mut events = Vec::new();
    let mut answers = 0;
    loop {
        let a = s.watch_read(&w).expect("a valid watch read");
        assert!(!a.compacted);
        assert!(a.through > w.after || a.through == s.revision(), "progress");
        assert!(a.through <= s.revision());
        if let (Some(first), Some(last)) = (a.events.first(), a.events.last()) {
            assert!(first.kv.mod_revision > w.after && last.kv.mod_revision <= a.through);
        }
        events.extend(a.events);
        answers += 1;
        if a.through == s.revision() {
            return (events, answers);
        }
        w.after = a.through;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn a_watch_read_sees_exactly_the_differences_between_revisions(
        cmds in prop::collection::vec(command(), 0..40),
        key in key(),
        range_end in range_end(),
        after in any::<prop::sample::Index>(),
        (prev_kv, no_put, no_delete) in (any::<bool>(), any::<bool>(), any::<bool>()),
        events_max in 1usize..4,
    ) {
        let mut s = KvStore::new();
        for cmd in &cmds {
            let _ = s.apply(cmd);
        }
        // Any revision the store can still serve: from the compaction (or 1) to now.
        let low = s.compact_revision().max(1);
        let after = low + after.index((s.revision() - low + 1) as usize) as i64;
        let w = WatchRead {
            key,
            range_end,
            after,
            prev_kv,
            no_put,
            no_delete,
            events_max: 1 << 20,
            bytes_max: 1 << 30,
        };
        let want = model_events(&s, &w);
        let (got, answers) = read_all(&s, w.clone());
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(answers, 1, "unbounded reads answer at once");
        // Small answers, read on from each `through`, add up to the same events.
        let (pieces, _) = read_all(&s, WatchRead { events_max, bytes_max: 1, ..w.clone() });
        prop_assert_eq!(&pieces, &want);
        // One read of every key's changes, selected for this watcher, is the same events
        // (what a member does to serve many watchers from one read per applied batch).
        let (all, _) = read_all(&s, WatchRead::everything(after, 1 << 20, 1 << 30));
        prop_assert_eq!(&w.select(&all), &want);
        // A restored snapshot serves the same events.
        let restored = KvStore::restore(&s.snapshot()).unwrap();
        prop_assert_eq!(read_all(&restored, w).0, want);
    }
}

/// etcd's rule: a watch whose start revision is below the compaction revision is cancelled as
/// compacted; one that starts at it is served, from the puts at that revision (the compaction
/// keeps them). `after` is the revision before the start.
#[test]
fn a_watcher_behind_the_compaction_is_told_so_and_one_at_it_is_served() {
    let mut s = KvStore::new();
    // Revisions 2, 3, 4 and 5.
    for v in ["1", "2", "3", "4"] {
        s.apply(&KvCommand::Put(PutRequest::new("k", v))).unwrap();
    }
    s.apply(&KvCommand::Compact(CompactRequest { revision: 3 }))
        .unwrap();
    let w = |after| WatchRead {
        key: b"k".to_vec(),
        after,
        events_max: 100,
        bytes_max: 1 << 20,
        ..WatchRead::default()
    };
    let values = |after| {
        let a = s.watch_read(&w(after)).unwrap();
        assert!(!a.compacted, "a watch from {} is served", after + 1);
        assert_eq!(a.through, 5);
        a.events
            .iter()
            .map(|e| String::from_utf8_lossy(&e.kv.value).into_owned())
            .collect::<Vec<_>>()
    };
    let behind = s.watch_read(&w(1)).unwrap();
    assert!(behind.compacted, "a watch from revision 2 < 3 is compacted");
    assert!(behind.events.is_empty());
    assert_eq!(behind.compact_revision, 3);
    assert_eq!(values(2), ["2", "3", "4"], "from the compaction revision");
    assert_eq!(values(3), ["3", "4"]);
    // A restored snapshot keeps the put at the compaction revision too.
    let restored = KvStore::restore(&s.snapshot()).unwrap();
    let again = restored.watch_read(&w(2)).unwrap();
    assert_eq!(again.events.len(), 3);
}

/// A key deleted at the compaction revision has no version left there: a watch from that
/// revision starts after it, as etcd's (whose compaction drops the tombstone).
#[test]
fn a_deletion_at_the_compaction_revision_is_not_replayed() {
    let mut s = KvStore::new();
    s.apply(&KvCommand::Put(PutRequest::new("a", "1"))).unwrap(); // 2
    s.apply(&KvCommand::DeleteRange(DeleteRangeRequest::new("a", "")))
        .unwrap(); // 3
    s.apply(&KvCommand::Put(PutRequest::new("b", "2"))).unwrap(); // 4
    s.apply(&KvCommand::Compact(CompactRequest { revision: 3 }))
        .unwrap();
    let every_key_from_3 = WatchRead::everything(2, 100, 1 << 20);
    let a = s.watch_read(&every_key_from_3).unwrap();
    assert!(!a.compacted);
    let keys: Vec<&[u8]> = a.events.iter().map(|e| e.kv.key.as_slice()).collect();
    assert_eq!(keys, [b"b"]);
    let restored = KvStore::restore(&s.snapshot()).unwrap();
    assert_eq!(
        restored.watch_read(&every_key_from_3).unwrap().events,
        a.events
    );
}

#[test]
fn one_revision_is_never_split_however_small_the_bound() {
    let mut s = KvStore::new();
    let put = |k: &str| RequestOp::Put(PutRequest::new(k, "v"));
    s.apply(&KvCommand::Txn(TxnRequest {
        success: vec![put("c"), put("a"), put("b")],
        ..TxnRequest::default()
    }))
    .unwrap();
    s.apply(&KvCommand::Put(PutRequest::new("d", "v"))).unwrap();
    let a = s
        .watch_read(&WatchRead {
            key: vec![0],
            range_end: vec![0],
            after: 1,
            events_max: 1,
            bytes_max: 1,
            ..WatchRead::default()
        })
        .unwrap();
    let keys: Vec<&[u8]> = a.events.iter().map(|e| e.kv.key.as_slice()).collect();
    assert_eq!(
        keys,
        [b"a", b"b", b"c"],
        "the whole transaction, in key order"
    );
    assert_eq!(a.through, 2);
    assert_eq!(s.revision(), 3);
}

#[test]
fn a_key_written_twice_by_nested_transactions_is_one_event_and_one_undone_is_none() {
    let mut s = KvStore::new();
    s.apply(&KvCommand::Put(PutRequest::new("twice", "0")))
        .unwrap();
    let nested = |op| {
        RequestOp::Txn(TxnRequest {
            success: vec![op],
            ..TxnRequest::default()
        })
    };
    let put = |k: &str, v: &str| RequestOp::Put(PutRequest::new(k, v));
    let del = |k: &str| RequestOp::DeleteRange(DeleteRangeRequest::new(k, ""));
    s.apply(&KvCommand::Txn(TxnRequest {
        success: vec![
            nested(put("twice", "1")),
            nested(del("twice")),
            nested(put("undone", "x")),
            nested(del("undone")),
        ],
        ..TxnRequest::default()
    }))
    .unwrap();
    let a = s
        .watch_read(&WatchRead {
            key: vec![0],
            range_end: vec![0],
            after: 2,
            events_max: 100,
            bytes_max: 1 << 20,
            prev_kv: true,
            ..WatchRead::default()
        })
        .unwrap();
    assert_eq!(a.events.len(), 1, "{:?}", a.events);
    assert_eq!(a.events[0].kind, EventKind::Delete);
    assert_eq!(a.events[0].kv.key, b"twice");
    assert_eq!(a.events[0].prev_kv.as_ref().unwrap().value, b"0");
    assert_eq!(KvStore::restore(&s.snapshot()).as_ref(), Ok(&s));
}
