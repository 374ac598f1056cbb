//! `synod sim --member`: the member-level simulation (`sim::member`), one seed or a campaign.

use super::{SimArgs, DEFAULT_SEEDS};
use anyhow::{bail, Context, Result};
use sim::member::{
    run_member_seed, run_member_seeds, MemberBug, MemberBugs, MemberCampaignReport,
    MemberCampaignSpec, MemberRunReport, MemberSimConfig, MemberSimulation,
};
use std::io::Write;
use std::time::Instant;

fn parse_bug(name: Option<&str>) -> Result<MemberBugs> {
    let Some(name) = name else {
        return Ok(MemberBugs::none());
    };
    if !sim::planted_bugs_available() {
        bail!(
            "--bug needs a build with planted bugs: cargo run --release -p synod --features planted-bugs -- sim --member ..."
        );
    }
    let bug = MemberBug::from_name(name).with_context(|| {
        let known: Vec<&str> = MemberBug::ALL.iter().map(|b| b.name()).collect();
        format!("unknown member bug {name:?}; known: {}", known.join(", "))
    })?;
    Ok(MemberBugs::only(bug))
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
        let report = match &args.trace {
            Some(path) => {
                config.trace = true;
                let mut sim = MemberSimulation::new(config);
                while sim.step() {}
                let mut out = std::io::BufWriter::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("cannot create {}", path.display()))?,
                );
                for line in sim.trace() {
                    writeln!(out, "{line}")?;
                }
                out.flush()?;
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
    let mut spec = MemberCampaignSpec::new(seeds.clone(), nodes, args.faults);
    spec.bugs = bugs;
    if args.membership {
        // An operator adds, promotes and removes members through the Cluster API.
        spec.tweak = Some(|c: &mut MemberSimConfig| c.membership = true);
    }
    if let Some(t) = args.threads {
        spec.threads = t.max(1);
    }
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
    if let Some((seed, _)) = report.failing.first() {
        println!(
            "replay the first failure with: synod sim --member --seed {seed} --nodes {nodes} --faults {}{}",
            args.faults,
            if args.membership { " --membership" } else { "" }
        );
    }
    Ok(report.passed())
}
