//! Fast Paxos against classic Paxos in the simulator: message delays from proposal to the
//! first learner, with 0 %, 10 % and 50 % of instances having conflicting proposers.
//!
//! `cargo run --release -p synod-sim --example fast_bench [SEEDS]` prints a table. No faults
//! (no loss, no crash); message delays uniform in 0.5–5 ms; 5 nodes; 50 instances per seed;
//! a conflicting instance has two or three proposers proposing within 2 ms of each other.
//! Delays count messages on the causal chain (a proposal is 1), so they do not depend on
//! the random delays; the latency column does.

use paxos::fast::RoundMode;
use sim::fast::{run_fast_seeds, FastSimConfig, LearnedIn};

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let seeds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "| mode | conflicting | instances | delays mean | p50 | p99 | latency mean (ms) | fast round | recovery | classic | collisions |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for mode in [RoundMode::Fast, RoundMode::Classic] {
        for conflict in [0u32, 100, 500] {
            let runs = run_fast_seeds(0..seeds, threads, &|seed| {
                let mut c = FastSimConfig::new(seed, 5);
                c.mode = mode;
                c.faults = false;
                c.conflict_permille = Some(conflict);
                c.instances = 50;
                c.delay_max_us = Some(5_000);
                c
            });
            assert!(runs.iter().all(|r| r.passed()), "a benchmark run failed");
            let mut delays: Vec<u64> = runs
                .iter()
                .flat_map(|r| r.delays.iter().map(|d| u64::from(*d)))
                .collect();
            delays.sort_unstable();
            let latencies: Vec<u64> = runs.iter().flat_map(|r| r.latencies_us.clone()).collect();
            let n = delays.len().max(1) as f64;
            let mean = delays.iter().sum::<u64>() as f64 / n;
            let latency_ms = latencies.iter().sum::<u64>() as f64 / n / 1000.0;
            let learned = |how| -> u64 {
                runs.iter()
                    .map(|r| r.learned_in.get(&how).copied().unwrap_or(0))
                    .sum()
            };
            let collisions: u64 = runs.iter().map(|r| r.collisions).sum();
            println!(
                "| {mode:?} | {} % | {} | {mean:.2} | {} | {} | {latency_ms:.2} | {} | {} | {} | {collisions} |",
                conflict / 10,
                delays.len(),
                percentile(&delays, 0.5),
                percentile(&delays, 0.99),
                learned(LearnedIn::FastRound),
                learned(LearnedIn::RecoveryRound),
                learned(LearnedIn::ClassicRound),
            );
        }
    }
}
