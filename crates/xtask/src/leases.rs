//! `cargo xtask bench-leases`: what leader leases buy linearizable reads. A 3-member Synod
//! started with and without `--experimental-leader-lease` (a cluster cannot switch: the setting
//! is part of its id), phases alternating in one run (read-index, leases, read-index, ...) so
//! the machine's drift spreads over both; each phase a fresh cluster, its key space preloaded,
//! then linearizable gets at `--clients`. Prints throughput and p50/p99 per phase and the
//! mean of each side; the members' `/metrics` say how the reads went (leased or read-index).

use std::time::Duration;

use anyhow::{bail, Context as _};
use bench::{BenchConfig, BenchReport, Consistency, Limit, Workload};

use crate::cluster::fresh_synod;

const MEMBERS: usize = 3;
const READY_WITHIN: Duration = Duration::from_secs(30);

/// Flags of `bench-leases`.
#[derive(clap::Args, Debug)]
pub struct BenchLeasesArgs {
    /// Concurrent clients of the get workload.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Length of each phase.
    #[arg(long, value_parser = bench::parse_duration, default_value = "10s")]
    pub phase: Duration,
    /// Pairs of phases (read-index then leases).
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    #[command(flatten)]
    pub alone: crate::compare::SynodAloneArgs,
}

/// One phase's figures.
struct Phase {
    leases: bool,
    report: BenchReport,
}

/// `cargo xtask bench-leases`.
pub fn run(args: BenchLeasesArgs) -> anyhow::Result<bool> {
    if args.rounds == 0 {
        bail!("--rounds: at least 1");
    }
    let (bin, parent) = args.alone.synod_alone("bench-leases")?;
    let bin = &bin;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let mut phases = Vec::new();
    for round in 0..args.rounds {
        for leases in [false, true] {
            let flags: &[&str] = if leases {
                &["--experimental-leader-lease"]
            } else {
                &[]
            };
            let (_tmp, mut cluster) =
                fresh_synod(&runtime, bin, &parent, MEMBERS, flags, &[], READY_WITHIN)?;
            let mut config = BenchConfig::new(cluster.client_urls(), Workload::Get);
            config.consistency = Consistency::Linearizable;
            config.clients = args.clients;
            config.limit = Limit::Duration(args.phase);
            config.progress = !args.alone.no_progress;
            config.validate()?;
            let report = runtime
                .block_on(bench::run(config))
                .context("the get workload")?;
            cluster.stop()?;
            eprintln!(
                "round {}: {}: {:.0} gets/s, p50 {} µs, p99 {} µs, {} errors",
                round + 1,
                side(leases),
                report.throughput_ops_per_sec,
                report.latency.p50_us,
                report.latency.p99_us,
                report.errors
            );
            phases.push(Phase { leases, report });
        }
    }
    println!(
        "bench-leases: {MEMBERS} members, {} clients, linearizable gets, {} rounds of {:?} \
         per side (a fresh cluster each phase)",
        args.clients, args.rounds, args.phase
    );
    println!("| side | gets/s | p50 µs | p99 µs | errors |");
    println!("|---|---:|---:|---:|---:|");
    for p in &phases {
        println!(
            "| {} | {:.0} | {} | {} | {} |",
            side(p.leases),
            p.report.throughput_ops_per_sec,
            p.report.latency.p50_us,
            p.report.latency.p99_us,
            p.report.errors
        );
    }
    let mean = |leases: bool, f: &dyn Fn(&BenchReport) -> f64| {
        let v: Vec<f64> = phases
            .iter()
            .filter(|p| p.leases == leases)
            .map(|p| f(&p.report))
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    for leases in [false, true] {
        println!(
            "| mean {} | {:.0} | {:.0} | {:.0} | |",
            side(leases),
            mean(leases, &|r| r.throughput_ops_per_sec),
            mean(leases, &|r| r.latency.p50_us as f64),
            mean(leases, &|r| r.latency.p99_us as f64)
        );
    }
    let errors: u64 = phases.iter().map(|p| p.report.errors).sum();
    Ok(errors == 0)
}

fn side(leases: bool) -> &'static str {
    if leases {
        "leases"
    } else {
        "read-index"
    }
}
