//! The leader's question at every tick, "which leases ran out?", with many leases none of
//! which is due: the deadline index against a reference measured in the same run, a walk over
//! every lease's clock (how the member asked before the index).

use criterion::{criterion_group, criterion_main, Criterion};
use member::Micros;
use node::lease_clock::LeaseClocks;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

const LEASES: i64 = 100_000;

fn tick(c: &mut Criterion) {
    let t0 = Micros(0);
    let retry = Duration::from_secs(5);
    let mut clocks = LeaseClocks::default();
    let mut walked: BTreeMap<i64, (Micros, Option<Micros>)> = BTreeMap::new();
    for id in 1..=LEASES {
        let ttl = 60 + id % 60;
        clocks.start(id, ttl, t0);
        walked.insert(id, (t0 + Duration::from_secs(ttl as u64), None));
    }
    let now = t0 + Duration::from_secs(30);
    let mut g = c.benchmark_group("tick, 100k leases, none due");
    g.bench_function("reference: walk every clock", |b| {
        b.iter(|| {
            let due: Vec<i64> = walked
                .iter()
                .filter(|(_, (deadline, proposed))| {
                    *deadline <= now && proposed.is_none_or(|at| at + retry <= now)
                })
                .map(|(id, _)| *id)
                .collect();
            black_box(due)
        })
    });
    g.bench_function("deadline index", |b| {
        b.iter(|| black_box(clocks.take_due(black_box(now), retry)))
    });
    g.finish();
    let mut g = c.benchmark_group("renewal, 100k leases");
    let mut id = 0;
    g.bench_function("deadline index", |b| {
        b.iter(|| {
            id = id % LEASES + 1;
            clocks.renew(id, now);
        })
    });
    g.finish();
}

criterion_group!(benches, tick);
criterion_main!(benches);
