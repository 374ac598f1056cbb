//! `synod sim`: one seed with its figures (and optionally its trace), or a campaign.

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use paxos::{Bug, PlantedBugs};
use sim::leases::ClockModel;
use sim::report::fmt_us;
use sim::trace::write_jsonl;
use sim::{CampaignSpec, FaultProfile, QuorumChoice, RunReport, SimConfig, Simulation};
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::PathBuf;
use std::time::Instant;

pub(crate) mod campaign;
mod disk;
mod fast;
mod member;

/// Seeds run by a bare `synod sim`: enough to show faults, recovery and every check.
pub(crate) const DEFAULT_SEEDS: Range<u64> = 0..20;
/// Campaigns of at most this many seeds print one line per seed.
const PER_SEED_LINES_MAX: u64 = 50;

#[derive(Args, Debug)]
pub struct SimArgs {
    /// Run this one seed and print its figures.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run a campaign over seeds A..B (half-open). Default: 0..20.
    #[arg(long, value_parser = parse_range)]
    seeds: Option<Range<u64>>,
    /// Cluster size (1 to 7).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=7))]
    nodes: u64,
    /// Faults: none, net, crash or all.
    #[arg(long, default_value = "all", value_parser = parse_profile)]
    faults: FaultProfile,
    /// Write the trace of a single seed to FILE as JSON lines (see docs/trace-format.md).
    #[arg(long, value_name = "FILE", requires = "seed")]
    trace: Option<PathBuf>,
    /// Plant a bug: forget-promise-on-restart, ignore-promised-values, read-without-confirm,
    /// chosen-without-quorum, accept-lower-ballot, skip-persist. Only in builds with the
    /// planted-bugs feature.
    #[arg(long = "bug", value_name = "NAME")]
    bug: Option<String>,
    /// Worker threads for a campaign (default: every core). Figures do not depend on it.
    #[arg(long)]
    threads: Option<usize>,
    /// Print the figures as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// The nemesis also changes the membership: two spare nodes start outside the
    /// configuration; learners are added and promoted, followers and leaders removed
    /// (never below three voters), among the other faults.
    #[arg(long)]
    membership: bool,
    /// With --member: no wiped disks. By default a crash may also wipe the member's disk
    /// (it rebuilds, and votes again only once it holds the chosen log), with or without
    /// --membership.
    #[arg(long)]
    no_wipes: bool,
    /// Quorum rule of the first configuration: majority, flexible:P1,P2 (phase-1 and phase-2
    /// sizes, P1 + P2 > nodes), grid:RxC (R x C = nodes; phase 1 a full column, phase 2 a
    /// full row), weighted:W1,...,Wn/P1,P2 (a weight per node, thresholds whose sum exceeds
    /// the total weight), or swarm (a valid rule drawn per seed). With --membership, a
    /// change keeps a rule that fits the next voters and, unless majority, may draw a new one.
    #[arg(long, default_value = "majority", value_parser = parse_quorums)]
    quorums: QuorumChoice,
    /// Protocol: multi-paxos (the replicated KV service, the default; also "multi"),
    /// disk-paxos (Gafni and Lamport's Disk Paxos: processors and disks, no messages),
    /// commit (Paxos Commit), 2pc (two-phase commit, Paxos Commit with F = 0), fast
    /// (Lamport's Fast Paxos: single-decree instances on --nodes nodes, collisions) or
    /// epaxos (Egalitarian Paxos on --nodes 3, 5 or 7 replicas), or cheap (Cheap Paxos: the
    /// Multi-Paxos service with f+1 main and f auxiliary acceptors, i.e. --quorums
    /// cheap:MAIN with MAIN = nodes/2 + 1).
    #[arg(long, default_value = "multi-paxos",
          value_parser = ["multi-paxos", "multi", "disk-paxos", "commit", "2pc", "fast", "epaxos", "cheap"])]
    protocol: String,
    /// EPaxos only: print the benchmark table of EPaxos against Multi-Paxos (0, 2, 25 and
    /// 100 % conflicting commands, node 1 normal and slowed) instead of running seeds.
    #[arg(long)]
    bench: bool,
    /// Run real members (`member::Member`: sessions, forwarding, read-index, leases,
    /// snapshots, around the core and the MVCC store) under etcd clients, instead of the
    /// core with the simulator's own driver (`--bug` then names a member bug:
    /// read-before-applied, lease-ttl-in-millis, watch-event-twice,
    /// lease-ticks-not-caught-up).
    #[arg(long)]
    member: bool,
    /// Leader leases (multi-paxos and cheap): a leader serves reads from its lease, with no
    /// confirmation round, and each node's clock runs at its own rate within the drift bound.
    /// With --member: the real members run them, and the leader's process is paused now and
    /// then (as SIGSTOP pauses one; checked by `lease-overlap`).
    #[arg(long)]
    leases: bool,
    /// With --leases: the bound on clock drift, in parts per million, that the replicas
    /// assume and the clocks keep (default 200).
    #[arg(long, value_name = "PPM", requires = "leases",
          value_parser = clap::value_parser!(u32).range(0..1_000_000))]
    drift: Option<u32>,
    /// With --leases: the fault that breaks the bound, one node per seed whose clock runs 5
    /// to 10 times further off than --drift (at least 20 to 40 %). Leases are then unsafe by design:
    /// expect stale reads.
    #[arg(long, requires = "leases")]
    clock_fault: bool,
    /// Disk Paxos: processors (1 to 16).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=16))]
    processors: u64,
    /// Disk Paxos: disks (1 to 16).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=16))]
    disks: u64,
    /// Resource managers (commit and 2pc only).
    #[arg(long, default_value_t = 3)]
    rms: usize,
    /// F: Paxos Commit runs 2F+1 acceptors (commit only).
    #[arg(long, default_value_t = 1)]
    f: usize,
}

fn parse_range(s: &str) -> Result<Range<u64>, String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("expected A..B, got {s:?}"))?;
    let a: u64 = a
        .trim()
        .parse()
        .map_err(|e| format!("bad start {a:?}: {e}"))?;
    let b: u64 = b
        .trim()
        .parse()
        .map_err(|e| format!("bad end {b:?}: {e}"))?;
    if b <= a {
        return Err(format!("empty range {a}..{b}"));
    }
    Ok(a..b)
}

fn parse_quorums(s: &str) -> Result<QuorumChoice, String> {
    s.parse()
        .map_err(|e: paxos::QuorumParseError| e.to_string())
}

/// Refuses a fixed rule that does not fit `nodes` voters, with the core's reason (a rule
/// whose quorums need not intersect is refused unless that very bug is planted).
fn check_quorums(quorums: &QuorumChoice, nodes: usize, bugs: PlantedBugs) -> Result<()> {
    if let QuorumChoice::Fixed(rule) = quorums {
        let voters = (1..=nodes as u64).map(paxos::NodeId).collect();
        paxos::Configuration::with_planted_bugs(voters, Vec::new(), rule.clone(), bugs)
            .with_context(|| format!("--quorums {rule} with {nodes} nodes"))?;
    }
    Ok(())
}

fn parse_profile(s: &str) -> Result<FaultProfile, String> {
    FaultProfile::from_name(s)
        .ok_or_else(|| format!("unknown fault profile {s:?}: use none, net, crash or all"))
}

fn parse_bug(name: Option<&str>) -> Result<PlantedBugs> {
    let Some(name) = name else {
        return Ok(PlantedBugs::none());
    };
    let bug = campaign::planted_bug(name, &Bug::ALL, Bug::name, ("bug", "sim"))?;
    Ok(PlantedBugs::only(bug))
}

/// Runs the command; Ok(false) when a check failed (exit code 1).
pub fn run(args: SimArgs) -> Result<bool> {
    let lease_protocol = matches!(args.protocol.as_str(), "multi-paxos" | "multi" | "cheap");
    if args.leases && !args.member && !lease_protocol {
        bail!("--leases is for the multi-paxos and cheap protocols, and for --member");
    }
    if args.member {
        return member::run(&args);
    }
    let bugs = parse_bug(args.bug.as_deref())?;
    let commit = match args.protocol.as_str() {
        "commit" => Some(sim::commit::CommitProtocol::Paxos),
        "2pc" => Some(sim::commit::CommitProtocol::TwoPhase),
        _ => None,
    };
    if let Some(protocol) = commit {
        return crate::sim_commit_cmd::run(crate::sim_commit_cmd::CommitArgs {
            protocol,
            seed: args.seed,
            seeds: args.seeds.clone().unwrap_or(DEFAULT_SEEDS),
            rms: args.rms,
            f: args.f,
            bugs,
            threads: args.threads,
            trace: args.trace.clone(),
            json: args.json,
        });
    }
    if args.protocol == "epaxos" {
        return crate::sim_epaxos_cmd::run(crate::sim_epaxos_cmd::EpaxosArgs {
            seed: args.seed,
            seeds: args.seeds.clone().unwrap_or(DEFAULT_SEEDS),
            replicas: args.nodes as usize,
            bugs,
            threads: args.threads,
            trace: args.trace.clone(),
            json: args.json,
            bench: args.bench,
        });
    }
    if args.bench {
        bail!("--bench is for --protocol epaxos");
    }
    let cheap_rule;
    let quorums = match args.protocol.as_str() {
        "cheap" => {
            cheap_rule = QuorumChoice::Fixed(sim::cheap::rule_for(args.nodes as usize));
            &cheap_rule
        }
        _ => &args.quorums,
    };
    match args.protocol.as_str() {
        "multi-paxos" | "multi" | "cheap" => {}
        "disk-paxos" => return disk::run(&args, bugs),
        "fast" => return fast::run(&args, bugs),
        other => {
            bail!("unknown protocol {other:?}: use multi-paxos, disk-paxos, commit, 2pc, fast, epaxos or cheap")
        }
    }
    let nodes = args.nodes as usize;
    check_quorums(quorums, nodes, bugs)?;
    let clocks = args.leases.then(|| sim::leases::ClockModel {
        drift_ppm: args.drift.unwrap_or(sim::leases::DEFAULT_DRIFT_PPM),
        beyond_bound: args.clock_fault,
    });
    match args.seed {
        Some(seed) => run_one(
            seed,
            nodes,
            args.faults,
            bugs,
            (args.membership, quorums, clocks),
            args.trace.as_ref(),
            args.json,
        ),
        None => {
            let seeds = args.seeds.clone().unwrap_or(DEFAULT_SEEDS);
            run_many(
                seeds,
                nodes,
                args.faults,
                bugs,
                (args.membership, quorums, clocks),
                args.threads,
                args.json,
            )
        }
    }
}

fn run_one(
    seed: u64,
    nodes: usize,
    faults: FaultProfile,
    bugs: PlantedBugs,
    (membership, quorums, clocks): (bool, &QuorumChoice, Option<ClockModel>),
    trace: Option<&PathBuf>,
    json: bool,
) -> Result<bool> {
    let mut config = SimConfig::new(seed, nodes, faults);
    config.bugs = bugs;
    config.membership_changes = membership;
    config.quorum = quorums.rule_for(seed, nodes);
    if let Some(clocks) = clocks {
        config.with_leases(clocks);
    }
    config.trace = trace.is_some();
    let mut simulation = Simulation::new(config.clone());
    let report = match sim::campaign::catch_panic(|| while simulation.step() {}) {
        Ok(()) => simulation.finish(),
        Err(message) => RunReport::panicked(&config, format!("panicked: {message}")),
    };
    if let Some(path) = trace {
        let file =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut out = BufWriter::new(file);
        write_jsonl(&mut out, &simulation.trace_header(), simulation.trace())?;
        out.flush()?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
        if let Some(path) = trace {
            println!(
                "  trace                 {} ({} events)",
                path.display(),
                simulation.trace().len()
            );
        }
    }
    let passed = report.passed();
    if !passed {
        println!("FAILED. Replay with: {}", report.replay_command());
    }
    Ok(passed)
}

fn run_many(
    seeds: Range<u64>,
    nodes: usize,
    faults: FaultProfile,
    bugs: PlantedBugs,
    (membership, quorums, clocks): (bool, &QuorumChoice, Option<ClockModel>),
    threads: Option<usize>,
    json: bool,
) -> Result<bool> {
    let mut spec = CampaignSpec::new(seeds.clone(), nodes, faults);
    spec.bugs = bugs;
    spec.membership_changes = membership;
    spec.quorums = quorums.clone();
    spec.clocks = clocks;
    spec.threads = campaign::threads_of(threads);
    let count = seeds.end - seeds.start;
    let bar = ProgressBar::with_draw_target(Some(count), ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} seeds ({per_sec}, eta {eta}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let failures = std::sync::atomic::AtomicU64::new(0);
    let started = Instant::now();
    let runs = sim::run_seeds(&spec, &|r: &RunReport| {
        if !r.passed() {
            let f = failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            bar.set_message(format!("{f} failing"));
        }
        bar.inc(1);
    });
    bar.finish_and_clear();
    let mut report = sim::CampaignReport::from_runs(&runs);
    report.nodes = nodes;
    report.faults = faults.to_string();
    report.wall_ms = Some(started.elapsed().as_millis() as u64);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(report.passed());
    }
    if count <= PER_SEED_LINES_MAX {
        println!(
            "{:>6} {:>6} {:>6} {:>8} {:>11} {:>10} {:>8} {:>14} {:>10} {:>10}  result",
            "seed",
            "slots",
            "ops",
            "crashes",
            "partitions",
            "msgs lost",
            "leaders",
            "leader in",
            "lincheck",
            "violations"
        );
        for r in &runs {
            println!("{}", one_line(r));
        }
        println!();
    }
    print!("{report}");
    campaign::print_verdict(&report, &runs);
    Ok(report.passed())
}

fn one_line(r: &RunReport) -> String {
    let crashes = r
        .faults_injected
        .get(&sim::FaultKind::Crash)
        .copied()
        .unwrap_or(0);
    let partitions: u64 = sim::FaultKind::PARTITIONS
        .iter()
        .map(|k| r.faults_injected.get(k).copied().unwrap_or(0))
        .sum();
    let dropped = r
        .faults_injected
        .get(&sim::FaultKind::Loss)
        .copied()
        .unwrap_or(0);
    let verdict = match r.lincheck {
        Some(v) => v.to_string(),
        None => "-".to_string(),
    };
    let status = if r.passed() { "ok" } else { "FAILED" };
    // "leader in": time from faults stopping to a stable leader (0: it never lost one).
    format!(
        "{:>6} {:>6} {:>6} {:>8} {:>11} {:>10} {:>8} {:>14} {:>10} {:>10}  {}",
        r.seed,
        r.slots_chosen,
        r.ops_ok,
        crashes,
        partitions,
        dropped,
        r.leader_changes,
        r.recovery_us.map_or("never".to_string(), fmt_us),
        verdict,
        r.violation_total(),
        status
    )
}
