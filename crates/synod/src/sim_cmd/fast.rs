//! `synod sim --protocol fast`: Fast Paxos seeds and campaigns (`sim::fast`).

use super::campaign::{print_campaign, seeds_of, threads_of, Tail};
use super::{SimArgs, DEFAULT_SEEDS};
use anyhow::Result;
use paxos::PlantedBugs;
use sim::fast::{run_fast_seeds, FastCampaignReport, FastSimConfig};
use std::time::Instant;

/// Runs one seed (`--seed`) or a campaign (`--seeds`) on `--nodes` nodes; Ok(false) when a
/// check failed.
pub fn run(args: &SimArgs, bugs: PlantedBugs) -> Result<bool> {
    let nodes = args.nodes as usize;
    let started = Instant::now();
    let seeds = seeds_of(args.seed, args.seeds.clone(), DEFAULT_SEEDS);
    let runs = run_fast_seeds(seeds, threads_of(args.threads), &|seed| {
        let mut c = FastSimConfig::new(seed, nodes);
        c.bugs = bugs;
        c
    });
    let report = FastCampaignReport::from_runs(&runs);
    let tail = Tail {
        wall_since: Some(started),
    };
    print_campaign(&report, &runs, args.json, tail)
}
