//! `synod sim --protocol fast`: Fast Paxos seeds and campaigns (`sim::fast`).

use super::{SimArgs, DEFAULT_SEEDS};
use anyhow::Result;
use paxos::PlantedBugs;
use sim::fast::{run_fast_seeds, FastCampaignReport, FastSimConfig};
use std::time::Instant;

/// Runs one seed (`--seed`) or a campaign (`--seeds`) on `--nodes` nodes; Ok(false) when a
/// check failed.
pub fn run(args: &SimArgs, bugs: PlantedBugs) -> Result<bool> {
    let seeds = match args.seed {
        Some(s) => s..s + 1,
        None => args.seeds.clone().unwrap_or(DEFAULT_SEEDS),
    };
    let nodes = args.nodes as usize;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let started = Instant::now();
    let runs = run_fast_seeds(seeds, threads, &|seed| {
        let mut c = FastSimConfig::new(seed, nodes);
        c.bugs = bugs;
        c
    });
    let report = FastCampaignReport::from_runs(&runs);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(report.passed());
    }
    print!("{report}");
    println!("  wall time             {:.1?}", started.elapsed());
    if report.passed() {
        println!("all {} seeds passed every check", report.seeds_run);
    } else if let Some(first) = runs.iter().find(|r| !r.passed()) {
        println!(
            "FAILED: {} of {} seeds; replay the first with:\n  {}",
            report.failing_seeds.len(),
            report.seeds_run,
            first.replay_command()
        );
    }
    Ok(report.passed())
}
