//! `cargo xtask bench-cheap`: what Cheap Paxos saves in the normal case, measured on real
//! members. Three machines either way: Multi-Paxos with majorities, and Cheap Paxos with two
//! mains and one auxiliary (`--quorums cheap:2`, n3 `--auxiliary`); sides alternate in one
//! run, a fresh cluster each phase. Each phase sends the same number of puts through the
//! same clients (to the mains only, under Cheap: the auxiliary refuses clients), and reads
//! every member's `/metrics` before and after: fsyncs (`synod_wal_batch_bytes_count`),
//! bytes sent to peers (`etcd_network_peer_sent_bytes_total`; the node counts bytes, not
//! messages: the simulator's `scripts/bench-cheap.py` counts messages) and the chosen slot.
//! Figures are per chosen slot, over all three machines, and the auxiliary's own.

use std::time::Duration;

use anyhow::{bail, Context as _};
use bench::{BenchConfig, Limit, Workload};

use crate::cluster::fresh_synod;

const MEMBERS: usize = 3;
const READY_WITHIN: Duration = Duration::from_secs(30);
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
const SCRAPE_BYTES_MAX: u64 = 8 << 20;

/// Flags of `bench-cheap`.
#[derive(clap::Args, Debug)]
pub struct BenchCheapArgs {
    /// Puts per phase.
    #[arg(long, default_value_t = 2000)]
    pub puts: u64,
    /// Concurrent clients (1: one command per slot, the protocol's cost unblurred by
    /// batching).
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// Pairs of phases (majority then cheap).
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    #[command(flatten)]
    pub alone: crate::compare::SynodAloneArgs,
}

/// What one member's `/metrics` said.
#[derive(Clone, Copy, Debug, Default)]
struct Sample {
    fsyncs: f64,
    peer_bytes: f64,
    chosen: f64,
}

impl Sample {
    fn of(text: &str) -> Sample {
        Sample {
            fsyncs: sum(text, "synod_wal_batch_bytes_count"),
            peer_bytes: sum(text, "etcd_network_peer_sent_bytes_total"),
            chosen: sum(text, "synod_paxos_chosen_slot"),
        }
    }
}

/// The sum of every series of metric `name` in Prometheus' text format.
fn sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let metric = series.split_once('{').map_or(series, |(m, _)| m);
            (metric == name)
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

fn scrape(urls: &[String]) -> anyhow::Result<Vec<Sample>> {
    urls.iter()
        .map(|u| {
            let answer = bench::http::get(u, "/metrics", SCRAPE_TIMEOUT, SCRAPE_BYTES_MAX)
                .with_context(|| format!("scraping {u}/metrics"))?;
            Ok(Sample::of(&answer.body))
        })
        .collect()
}

/// One phase's figures.
struct Phase {
    cheap: bool,
    slots: f64,
    fsyncs_per_slot: f64,
    peer_bytes_per_slot: f64,
    aux_fsyncs: f64,
    aux_peer_bytes: f64,
    puts_per_sec: f64,
    errors: u64,
}

/// `cargo xtask bench-cheap`.
pub fn run(args: BenchCheapArgs) -> anyhow::Result<bool> {
    if args.rounds == 0 || args.puts == 0 {
        bail!("--rounds and --puts: at least 1");
    }
    let (bin, parent) = args.alone.synod_alone("bench-cheap")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let mut phases = Vec::new();
    for _ in 0..args.rounds {
        for cheap in [false, true] {
            let (flags, member_flags): (&[&str], &[&[&str]]) = if cheap {
                (&["--quorums", "cheap:2"], &[&[], &[], &["--auxiliary"]])
            } else {
                (&[], &[])
            };
            let (_tmp, mut cluster) = fresh_synod(
                &runtime,
                &bin,
                &parent,
                MEMBERS,
                flags,
                member_flags,
                READY_WITHIN,
            )?;
            let urls = cluster.client_urls();
            // Clients go to the mains only under Cheap (the auxiliary refuses them); the same
            // two members either way, so both sides see the same forwarding.
            let clients: Vec<String> = urls[..2].to_vec();
            let before = scrape(&urls)?;
            let mut config = BenchConfig::new(clients, Workload::Put);
            config.clients = args.clients;
            config.limit = Limit::Total(args.puts);
            config.progress = !args.alone.no_progress;
            config.validate()?;
            let report = runtime
                .block_on(bench::run(config))
                .context("the put workload")?;
            let after = scrape(&urls)?;
            cluster.stop()?;
            let delta = |f: fn(&Sample) -> f64, i: usize| f(&after[i]) - f(&before[i]);
            let total = |f: fn(&Sample) -> f64| (0..MEMBERS).map(|i| delta(f, i)).sum::<f64>();
            // Every main knows the chosen prefix; the most advanced one counts.
            let slots = (0..2)
                .map(|i| delta(|s| s.chosen, i))
                .fold(0.0, f64::max)
                .max(1.0);
            let phase = Phase {
                cheap,
                slots,
                fsyncs_per_slot: total(|s| s.fsyncs) / slots,
                peer_bytes_per_slot: total(|s| s.peer_bytes) / slots,
                aux_fsyncs: delta(|s| s.fsyncs, 2),
                aux_peer_bytes: delta(|s| s.peer_bytes, 2),
                puts_per_sec: report.throughput_ops_per_sec,
                errors: report.errors,
            };
            eprintln!(
                "{}: {:.0} slots, {:.2} fsyncs and {:.0} peer bytes per slot, n3: {:.0} fsyncs",
                side(cheap),
                phase.slots,
                phase.fsyncs_per_slot,
                phase.peer_bytes_per_slot,
                phase.aux_fsyncs
            );
            phases.push(phase);
        }
    }
    println!(
        "bench-cheap: {MEMBERS} machines, {} puts per phase at {} clients, {} rounds (a fresh \
         cluster each phase; figures over all machines, per chosen slot)",
        args.puts, args.clients, args.rounds
    );
    println!(
        "| side | slots chosen | fsyncs per slot | peer bytes per slot | n3 fsyncs | n3 peer bytes sent | puts/s | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for p in &phases {
        println!(
            "| {} | {:.0} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {} |",
            side(p.cheap),
            p.slots,
            p.fsyncs_per_slot,
            p.peer_bytes_per_slot,
            p.aux_fsyncs,
            p.aux_peer_bytes,
            p.puts_per_sec,
            p.errors
        );
    }
    Ok(phases.iter().all(|p| p.errors == 0))
}

fn side(cheap: bool) -> &'static str {
    if cheap {
        "cheap (n1, n2 mains; n3 auxiliary)"
    } else {
        "majority"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_sums_every_series_of_its_metrics() {
        let text = "# HELP x\nsynod_wal_batch_bytes_count 7\n\
                    etcd_network_peer_sent_bytes_total{To=\"a\"} 10\n\
                    etcd_network_peer_sent_bytes_total{To=\"b\"} 5\n\
                    synod_paxos_chosen_slot 3\nsynod_paxos_chosen_slot_other 9\n";
        let s = Sample::of(text);
        assert_eq!((s.fsyncs, s.peer_bytes, s.chosen), (7.0, 15.0, 3.0));
    }
}
