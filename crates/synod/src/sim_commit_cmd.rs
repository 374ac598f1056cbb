//! `synod sim --protocol commit|2pc`: the Paxos Commit simulator, one seed or a campaign.

use crate::sim_cmd::campaign::{print_campaign, threads_of, write_trace_lines, Tail};
use anyhow::{bail, Result};
use paxos::PlantedBugs;
use sim::commit::{
    run_commit_seeds, CommitCampaignReport, CommitCampaignSpec, CommitProtocol, CommitSim,
    CommitSimConfig,
};
use sim::report::fmt_us;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Instant;

/// What `synod sim` passes on for a commit protocol.
pub struct CommitArgs {
    pub protocol: CommitProtocol,
    pub seed: Option<u64>,
    pub seeds: Range<u64>,
    pub rms: usize,
    pub f: usize,
    pub bugs: PlantedBugs,
    pub threads: Option<usize>,
    pub trace: Option<PathBuf>,
    pub json: bool,
}

/// Runs the command; Ok(false) when a check failed.
pub fn run(args: CommitArgs) -> Result<bool> {
    if args.rms == 0 || args.rms > paxos::commit::RMS_PER_TXN_MAX {
        bail!("--rms must be 1 to {}", paxos::commit::RMS_PER_TXN_MAX);
    }
    if args.f > 3 {
        bail!("--f must be 0 to 3");
    }
    match args.seed {
        Some(seed) => run_one(&args, seed),
        None => run_many(&args),
    }
}

fn run_one(args: &CommitArgs, seed: u64) -> Result<bool> {
    let mut config = CommitSimConfig::new(seed, args.protocol, args.rms, args.f);
    config.bugs = args.bugs;
    config.trace = args.trace.is_some();
    let mut sim = CommitSim::new(config);
    while sim.step() {}
    if let Some(path) = &args.trace {
        write_trace_lines(path, sim.trace())?;
    }
    let report = sim.finish();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} seed {}: {} RMs, F = {}",
            args.protocol.name(),
            seed,
            args.rms,
            args.f
        );
        println!(
            "  transactions   {} begun: {} committed, {} aborted, {} blocked, {} vanished",
            report.txns, report.committed, report.aborted, report.blocked, report.vanished
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

fn run_many(args: &CommitArgs) -> Result<bool> {
    let mut spec = CommitCampaignSpec::new(args.seeds.clone(), args.protocol, args.rms, args.f);
    spec.bugs = args.bugs;
    spec.threads = threads_of(args.threads);
    let started = Instant::now();
    let runs = run_commit_seeds(&spec, &|_| {});
    let report = CommitCampaignReport::from_runs(&spec, &runs);
    let tail = Tail {
        wall_since: Some(started),
    };
    print_campaign(&report, &runs, args.json, tail)
}
