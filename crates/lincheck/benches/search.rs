//! The linearizability search on generated histories, in each candidate order, all in one run:
//! `SearchOrder::Interleaved` (the default) against each order alone.
//!
//! - A correct history: 10 clients, 20,000 operations on one key, 1 % timed out. The early
//!   order alone is the reference; the default may cost up to 4/3 of it.
//! - A refutation: the history CI's proptest found (one client, 109 operations, 24 timed
//!   out) with its last read changed to a value nobody wrote. The late order alone is the
//!   reference; the early one alone needs about 100 times more states.
//!
//! Each case also prints the states its search explored, the figure that does not depend on
//! the machine.

// The test helpers' own `allow(dead_code)` covers what this bench leaves unused.
#[path = "../tests/common/mod.rs"]
mod common;

use common::{correct_history, known_reads, set_read_value, GenConfig};
use criterion::{criterion_group, criterion_main, Criterion};
use lincheck::kv::{KvModel, KvOperation};
use lincheck::{check, CheckOptions, SearchOrder, Verdict};
use std::hint::black_box;

const ORDERS: [(SearchOrder, &str); 3] = [
    (SearchOrder::Interleaved, "interleaved (default)"),
    (SearchOrder::UnknownEarly, "timeouts early alone"),
    (SearchOrder::UnknownLate, "timeouts late alone"),
];

fn run(history: &[KvOperation], order: SearchOrder) -> (Verdict, u64) {
    let options = CheckOptions {
        order,
        ..CheckOptions::default()
    };
    let result = check(&KvModel, history, &options);
    let states = result.partitions.iter().map(|p| p.states_explored).sum();
    (result.verdict, states)
}

fn bench_case(
    c: &mut Criterion,
    group: &str,
    history: &[KvOperation],
    expected: Verdict,
    orders: &[(SearchOrder, &str)],
) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10);
    for &(order, name) in orders {
        let (verdict, states) = run(history, order);
        assert_eq!(verdict, expected, "{group}, {name}");
        println!("{group} / {name}: {states} states explored");
        g.bench_function(name, |b| b.iter(|| black_box(run(history, order))));
    }
    g.finish();
}

fn correct(c: &mut Criterion) {
    let history = correct_history(GenConfig {
        seed: 7,
        clients: 10,
        ops: 20_000,
        keys: 1,
        unknown_percent: 1,
    });
    // The late order alone takes minutes on this history: it is left out.
    bench_case(c, "correct 20k ops", &history, Verdict::Ok, &ORDERS[..2]);
}

fn refutation(c: &mut Criterion) {
    let mut history = correct_history(GenConfig {
        seed: 15_655_952_032_937_296_485,
        clients: 1,
        ops: 109,
        keys: 1,
        unknown_percent: 13,
    });
    let last = *known_reads(&history).last().expect("a read");
    set_read_value(&mut history, last, Some("never-written".into()));
    bench_case(
        c,
        "refute never-written read",
        &history,
        Verdict::Illegal,
        &ORDERS,
    );
}

criterion_group!(benches, correct, refutation);
criterion_main!(benches);
