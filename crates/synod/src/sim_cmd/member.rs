//! `synod sim --member`: the member-level simulation (`sim::member`), one seed or a campaign.

use super::campaign::{planted_bug, print_verdict, threads_of, write_trace_lines};
use super::{SimArgs, DEFAULT_SEEDS};
use anyhow::{bail, Result};
use sim::member::{
    run_member_seed, run_member_seeds, MemberBug, MemberBugs, MemberCampaignReport,
    MemberCampaignSpec, MemberRunReport, MemberSimConfig, MemberSimulation,
};
use std::time::Instant;

fn parse_bug(name: Option<&str>) -> Result<MemberBugs> {
    let Some(name) = name else {
        return Ok(MemberBugs::none());
    };
    let known = MemberBug::ALL;
    let bug = planted_bug(
        name,
        &known,
        MemberBug::name,
        ("member bug", "sim --member"),
    )?;
    Ok(MemberBugs::only(bug))
}

/// Leader leases' clocks, with --leases (see `sim::member::MemberSimConfig::leases`).
fn clocks(args: &SimArgs) -> Option<sim::leases::ClockModel> {
    args.leases.then(|| sim::leases::ClockModel {
        drift_ppm: args.drift.unwrap_or(sim::leases::DEFAULT_DRIFT_PPM),
        beyond_bound: args.clock_fault,
    })
}

/// Runs the command; Ok(false) when a check failed.
pub fn run(args: &SimArgs) -> Result<bool> {
    if args.protocol != "multi-paxos" && args.protocol != "multi" {
        bail!("--member runs the replicated KV service's members (protocol multi-paxos)");
    }
    let bugs = parse_bug(args.bug.as_deref())?;
    let nodes = args.nodes as usize;
    if let Some(seed) = args.seed {
        let mut config = MemberSimConfig::new(seed, nodes, args.faults);
        config.bugs = bugs;
        config.membership = args.membership;
        config.wipes = !args.no_wipes;
        config.leases = clocks(args);
        let report = match &args.trace {
            Some(path) => {
                config.trace = true;
                let mut sim = MemberSimulation::new(config);
                while sim.step() {}
                write_trace_lines(path, sim.trace())?;
                sim.run()
            }
            None => run_member_seed(config),
        };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{report}");
            let ops: Vec<String> = report
                .ops_by_kind
                .iter()
                .map(|(k, (a, b, c))| format!("{k} {a}/{b}/{c}"))
                .collect();
            println!("  by kind (ok/failed/unknown): {}", ops.join(", "));
            println!(
                "  result                {}",
                if report.passed() { "PASS" } else { "FAIL" }
            );
        }
        return Ok(report.passed());
    }
    let seeds = args.seeds.clone().unwrap_or(DEFAULT_SEEDS);
    let mut spec = MemberCampaignSpec::new(seeds, nodes, args.faults);
    spec.bugs = bugs;
    spec.leases = clocks(args);
    // An operator adds, promotes and removes members through the Cluster API; disks wiped.
    spec.tweak = match (args.membership, !args.no_wipes) {
        (false, true) => None,
        (true, true) => Some(|c: &mut MemberSimConfig| c.membership = true),
        (false, false) => Some(|c: &mut MemberSimConfig| c.wipes = false),
        (true, false) => Some(|c: &mut MemberSimConfig| {
            c.membership = true;
            c.wipes = false;
        }),
    };
    spec.threads = threads_of(args.threads);
    let started = Instant::now();
    let runs = run_member_seeds(&spec, &|_: &MemberRunReport| {});
    let mut report = MemberCampaignReport::from_runs(&runs);
    report.nodes = nodes;
    report.faults = args.faults.to_string();
    let wall = started.elapsed();
    report.wall_ms = Some(wall.as_millis() as u64);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(report.passed());
    }
    print!("{report}");
    println!(
        "  speed                 {:.1} seeds/s wall on {} threads",
        report.seeds_run as f64 / wall.as_secs_f64().max(1e-9),
        spec.threads
    );
    print_verdict(&report, &runs);
    Ok(report.passed())
}
