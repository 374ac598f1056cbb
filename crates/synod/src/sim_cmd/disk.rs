//! `synod sim --protocol disk-paxos`: Disk Paxos seeds and campaigns (`sim::disk`).

use super::campaign::{print_campaign, seeds_of, threads_of, Tail};
use super::{SimArgs, DEFAULT_SEEDS};
use anyhow::Result;
use paxos::PlantedBugs;
use sim::disk::{run_disk_seeds, DiskCampaignReport, DiskSimConfig};
use std::time::Instant;

/// Runs one seed (`--seed`) or a campaign (`--seeds`); Ok(false) when a check failed.
pub fn run(args: &SimArgs, bugs: PlantedBugs) -> Result<bool> {
    let (processors, disks) = (args.processors as usize, args.disks as usize);
    let started = Instant::now();
    let seeds = seeds_of(args.seed, args.seeds.clone(), DEFAULT_SEEDS);
    let runs = run_disk_seeds(seeds, threads_of(args.threads), &|seed| {
        let mut c = DiskSimConfig::new(seed, processors, disks);
        c.bugs = bugs;
        c
    });
    let report = DiskCampaignReport::from_runs(&runs);
    let tail = Tail {
        wall_since: Some(started),
    };
    print_campaign(&report, &runs, args.json, tail)
}
