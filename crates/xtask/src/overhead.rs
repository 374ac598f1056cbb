//! `cargo xtask bench-observe-overhead`: what looking inside costs. One 3-member Synod, one
//! put workload at `--clients`, run in alternating phases with the observers off and on; on
//! means, against every member, a Prometheus-like scrape of `/metrics`, a health probe of
//! `/health` and the dashboard's own scrape (what `synod top` reads), each every
//! `--every`. Phases run in ABBA order (off, on, on, off, ...) in one run, so a steady drift
//! of the machine or of the growing store falls on both sides alike; the figure is the mean
//! throughput on against off.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bench::{BenchConfig, Limit, Workload};

use crate::cluster::{free_ports, member_specs, Cluster, System};

const MEMBERS: usize = 3;
const READY_WITHIN: Duration = Duration::from_secs(30);
/// One observer request gets this long.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Flags of `bench-observe-overhead`.
#[derive(clap::Args, Debug)]
pub struct OverheadArgs {
    /// Concurrent clients of the put workload.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Length of each phase.
    #[arg(long, value_parser = bench::parse_duration, default_value = "10s")]
    pub phase: Duration,
    /// Pairs of phases (off then on, then on then off, alternating).
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    /// How often each observer asks each member while on.
    #[arg(long, value_parser = bench::parse_duration, default_value = "1s")]
    pub every: Duration,
    #[command(flatten)]
    pub alone: crate::compare::SynodAloneArgs,
}

/// `cargo xtask bench-observe-overhead`.
pub fn run(args: OverheadArgs) -> anyhow::Result<bool> {
    if args.rounds == 0 {
        bail!("--rounds: at least 1");
    }
    let (bin, parent) = args.alone.synod_alone("bench-observe-overhead")?;
    let bin = &bin;
    let tmp = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&parent)
        .context("creating a temporary directory")?;
    let ports = free_ports(2 * MEMBERS)?;
    let pairs: Vec<(u16, u16)> = ports.chunks(2).map(|p| (p[0], p[1])).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let mut cluster = Cluster::start(System::Synod, bin, tmp.path(), &member_specs(&pairs))?;
    runtime.block_on(cluster.wait_ready(READY_WITHIN))?;
    let urls = cluster.client_urls();

    let mut off = Vec::new();
    let mut on = Vec::new();
    let mut asked = 0;
    let mut failed = 0;
    for round in 0..args.rounds {
        // ABBA order (off, on, on, off, ...): the store grows through the run and a put costs
        // a little more each phase, so a fixed order would charge that drift to one side.
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for observing in order {
            let observers = observing.then(|| Observers::start(&urls, args.every));
            let mut config = BenchConfig::new(urls.clone(), Workload::Put);
            config.clients = args.clients;
            config.limit = Limit::Duration(args.phase);
            config.progress = !args.alone.no_progress;
            config.validate()?;
            let report = runtime
                .block_on(bench::run(config))
                .context("the put workload")?;
            if let Some(o) = observers {
                let (a, f) = o.stop();
                asked += a;
                failed += f;
            }
            let side = if observing { "on " } else { "off" };
            eprintln!(
                "round {}: observers {side}: {:.0} puts/s, p99 {} µs, {} errors",
                round + 1,
                report.throughput_ops_per_sec,
                report.latency.p99_us,
                report.errors
            );
            let side = if observing { &mut on } else { &mut off };
            side.push(report.throughput_ops_per_sec);
        }
    }
    cluster.stop()?;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (off_mean, on_mean) = (mean(&off), mean(&on));
    let cost = if off_mean > 0.0 {
        (off_mean - on_mean) / off_mean * 100.0
    } else {
        f64::NAN
    };
    println!(
        "bench-observe-overhead: {} clients, {} rounds of {:?} in ABBA order; observers every {:?} \
         against each of {MEMBERS} members (/metrics scrape, /health probe, dashboard scrape)",
        args.clients, args.rounds, args.phase, args.every
    );
    println!("off: {off:.0?} puts/s, mean {off_mean:.0}");
    println!("on:  {on:.0?} puts/s, mean {on_mean:.0}");
    println!("observer requests: {asked} ({failed} failed)");
    println!("cost of observing: {cost:.2} % of put throughput (budget: 2 %)");
    Ok(failed == 0)
}

/// The observers while on: one thread per kind, each asking every member in turn.
struct Observers {
    stop: Arc<AtomicBool>,
    asked: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Observers {
    fn start(urls: &[String], every: Duration) -> Observers {
        let stop = Arc::new(AtomicBool::new(false));
        let asked = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        // Prometheus, a load balancer's health probe, and the dashboard.
        let threads = ["/metrics", "/health", "/metrics"]
            .into_iter()
            .map(|path| {
                let (stop, asked, failed) = (stop.clone(), asked.clone(), failed.clone());
                let urls = urls.to_vec();
                std::thread::spawn(move || {
                    while !stop.load(Relaxed) {
                        let started = Instant::now();
                        for url in &urls {
                            asked.fetch_add(1, Relaxed);
                            if get(url, path).is_err() {
                                failed.fetch_add(1, Relaxed);
                            }
                        }
                        // Sleep out the rest of the period, waking to notice a stop.
                        while !stop.load(Relaxed) && started.elapsed() < every {
                            std::thread::sleep(Duration::from_millis(20).min(every));
                        }
                    }
                })
            })
            .collect();
        Observers {
            stop,
            asked,
            failed,
            threads,
        }
    }

    /// Stops them; how many requests they made and how many failed.
    fn stop(self) -> (u64, u64) {
        self.stop.store(true, Relaxed);
        for t in self.threads {
            let _ = t.join();
        }
        (self.asked.load(Relaxed), self.failed.load(Relaxed))
    }
}

/// `GET path`, reading the whole answer; an error unless it is a 200.
fn get(url: &str, path: &str) -> std::io::Result<()> {
    let answer = bench::http::get(url, path, PROBE_TIMEOUT, 16 << 20)?;
    if answer.status == 200 {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("answered {}", answer.status)))
    }
}
