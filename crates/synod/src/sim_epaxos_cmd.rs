//! `synod sim --protocol epaxos`: the EPaxos simulator, one seed or a campaign, and with
//! `--bench` the table of EPaxos against Multi-Paxos.

use crate::sim_cmd::campaign::{print_campaign, threads_of, write_trace_lines, Tail};
use anyhow::{bail, Result};
use paxos::PlantedBugs;
use sim::epaxos::{
    run_epaxos_seeds, EpaxosCampaignReport, EpaxosCampaignSpec, EpaxosSim, EpaxosSimConfig,
};
use sim::report::fmt_us;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Instant;

/// What `synod sim` passes on for EPaxos.
pub struct EpaxosArgs {
    pub seed: Option<u64>,
    pub seeds: Range<u64>,
    pub replicas: usize,
    pub bugs: PlantedBugs,
    pub threads: Option<usize>,
    pub trace: Option<PathBuf>,
    pub json: bool,
    pub bench: bool,
}

/// Runs the command; Ok(false) when a check failed.
pub fn run(args: EpaxosArgs) -> Result<bool> {
    if !matches!(args.replicas, 3 | 5 | 7) {
        bail!("EPaxos runs 2F+1 replicas: --nodes 3, 5 or 7");
    }
    if args.bench {
        let table = sim::epaxos_bench::bench_epaxos_vs_multi(args.replicas, 200);
        if args.json {
            println!("{}", serde_json::to_string_pretty(&table)?);
        } else {
            print!("{table}");
        }
        return Ok(true);
    }
    match args.seed {
        Some(seed) => run_one(&args, seed),
        None => run_many(&args),
    }
}

fn run_one(args: &EpaxosArgs, seed: u64) -> Result<bool> {
    let mut config = EpaxosSimConfig::new(seed, args.replicas);
    config.bugs = args.bugs;
    config.trace = args.trace.is_some();
    let mut sim = EpaxosSim::new(config);
    while sim.step() {}
    if let Some(path) = &args.trace {
        write_trace_lines(path, sim.trace())?;
    }
    let report = sim.finish();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("epaxos seed {}: {} replicas", seed, args.replicas);
        println!(
            "  operations     {} ok, {} unknown",
            report.ops_ok, report.ops_unknown
        );
        println!(
            "  commits        {} fast, {} slow; {} explicit prepares ({} no-ops); {} cycles",
            report.fast_commits,
            report.slow_commits,
            report.recoveries,
            report.noops,
            report.cycles
        );
        println!("  faults         {:?}", report.faults_injected);
        println!("  messages       {}", report.messages_sent);
        println!(
            "  simulated      {} ({} events)",
            fmt_us(report.simulated_us),
            report.events
        );
        println!("  trace hash     {:016x}", report.trace_hash);
        println!("  violations     {:?}", report.violation_counts);
        for v in &report.violations {
            println!("    {v}");
        }
    }
    Ok(report.passed())
}

fn run_many(args: &EpaxosArgs) -> Result<bool> {
    let mut spec = EpaxosCampaignSpec::new(args.seeds.clone(), args.replicas);
    spec.bugs = args.bugs;
    spec.threads = threads_of(args.threads);
    let started = Instant::now();
    let runs = run_epaxos_seeds(&spec);
    let report = EpaxosCampaignReport::from_runs(&spec, &runs);
    let tail = Tail {
        wall_since: Some(started),
    };
    print_campaign(&report, &runs, args.json, tail)
}
