//! The key-value store alone: puts applied per second, and watch reads, each beside a
//! reference measured in the same run (the same keys and values into a plain `BTreeMap`).
//!
//! The store keeps every version and, for watchers, a change index; the reference keeps only
//! the latest value. The ratio is what history and the index cost per put.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kv::{KvCommand, KvStore, PutRequest, WatchRead};
use std::collections::BTreeMap;
use std::hint::black_box;

const KEYS: u64 = 10_000;
const PUTS: u64 = 100_000;
const VALUE: usize = 256;

fn key(i: u64) -> Vec<u8> {
    format!("{:08}", i % KEYS).into_bytes()
}

/// Keys in a scattered but fixed order, as a bench's clients would write them.
fn order() -> Vec<u64> {
    (0..PUTS)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40)
        .collect()
}

fn puts(c: &mut Criterion) {
    let order = order();
    let value = vec![b'v'; VALUE];
    let commands: Vec<KvCommand> = order
        .iter()
        .map(|i| KvCommand::Put(PutRequest::new(key(*i), value.clone())))
        .collect();
    let mut g = c.benchmark_group("put");
    g.throughput(Throughput::Elements(PUTS));
    g.sample_size(10);
    g.bench_function("reference: BTreeMap insert", |b| {
        b.iter(|| {
            let mut map: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            for i in &order {
                map.insert(key(*i), value.clone());
            }
            black_box(map.len())
        })
    });
    g.bench_function("KvStore::apply", |b| {
        b.iter(|| {
            let mut store = KvStore::new();
            for cmd in &commands {
                let _ = black_box(store.apply(cmd));
            }
            black_box(store.revision())
        })
    });
    g.finish();
}

/// A watcher of `key..range_end` catching up from revision 1 in answers of 1,000 events, as
/// the node's watch streams read; returns the events it got.
fn catch_up(store: &KvStore, key: Vec<u8>, range_end: Vec<u8>) -> usize {
    let mut w = WatchRead {
        key,
        range_end,
        after: 1,
        events_max: 1000,
        bytes_max: 1 << 20,
        ..WatchRead::default()
    };
    let mut events = 0;
    while w.after < store.revision() {
        let a = store.watch_read(&w).expect("a valid read");
        events += a.events.len();
        w.after = a.through;
    }
    events
}

fn watch_reads(c: &mut Criterion) {
    let value = vec![b'v'; VALUE];
    let mut store = KvStore::new();
    for i in order() {
        store
            .apply(&KvCommand::Put(PutRequest::new(key(i), value.clone())))
            .expect("a put applies");
    }
    let mut g = c.benchmark_group("watch read");
    g.sample_size(10);
    // Every change since revision 1, read 1,000 events at a time as a watcher catches up.
    g.throughput(Throughput::Elements(PUTS));
    g.bench_function("all keys, in answers of 1000 events", |b| {
        b.iter(|| black_box(catch_up(&store, vec![0], vec![0])))
    });
    // One key among 10,000: the index is scanned, the events are few.
    g.bench_function("one key, every change since revision 1", |b| {
        b.iter(|| black_box(catch_up(&store, key(42), Vec::new())))
    });
    g.finish();
}

criterion_group!(benches, puts, watch_reads);
criterion_main!(benches);
