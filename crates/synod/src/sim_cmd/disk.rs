//! `synod sim --protocol disk-paxos`: Disk Paxos seeds and campaigns (`sim::disk`).

use super::{SimArgs, DEFAULT_SEEDS};
use anyhow::Result;
use paxos::PlantedBugs;
use sim::disk::{run_disk_seeds, DiskCampaignReport, DiskSimConfig};
use std::time::Instant;

/// Runs one seed (`--seed`) or a campaign (`--seeds`); Ok(false) when a check failed.
pub fn run(args: &SimArgs, bugs: PlantedBugs) -> Result<bool> {
    let seeds = match args.seed {
        Some(s) => s..s + 1,
        None => args.seeds.clone().unwrap_or(DEFAULT_SEEDS),
    };
    let processors = args.processors as usize;
    let disks = args.disks as usize;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let started = Instant::now();
    let runs = run_disk_seeds(seeds, threads, &|seed| {
        let mut c = DiskSimConfig::new(seed, processors, disks);
        c.bugs = bugs;
        c
    });
    let report = DiskCampaignReport::from_runs(&runs);
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
