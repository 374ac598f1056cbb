//! Campaigns: many seeds, on several threads, summed into one report.
//!
//! Every protocol's simulator (Multi-Paxos here, [`crate::member`], [`crate::disk`],
//! [`crate::fast`], [`crate::commit`], [`crate::epaxos`]) runs its campaigns through the one
//! runner of this module: [`run_seed_range`] hands seeds to worker threads, [`catch_panic`]
//! turns a panic of one seed into that seed's "no panic" violation, and the reports come back
//! sorted by seed. Each seed is independent, so the figures are the same whatever the thread
//! count; only the protocol's own report type differs, seen through [`SeedReport`] and
//! [`CampaignTotals`] by the command line, which prints every protocol's verdict the same way.
//!
//! What it must never do: let a seed's outcome depend on the thread that ran it or on the
//! order seeds finished in (the one shared thing, the next-seed counter, only hands out seeds).

use crate::faults::FaultProfile;
use crate::quorums::QuorumChoice;
use crate::report::{CampaignReport, RunReport};
use crate::sim::{SimConfig, Simulation};
use paxos::PlantedBugs;
use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// One seed's figures, whatever the protocol: what the runner and the command line need.
pub trait SeedReport: Send {
    /// The seed this run was drawn from.
    fn seed(&self) -> u64;
    /// Every check held (a checker Unknown is not a pass).
    fn passed(&self) -> bool;
    /// The command that replays this seed exactly.
    fn replay_command(&self) -> String;
}

/// A campaign's sums, whatever the protocol: what the command line prints its verdict from.
/// `Display` is the protocol's text report; `Serialize` its JSON.
pub trait CampaignTotals: fmt::Display + serde::Serialize {
    /// Seeds run.
    fn seeds_run(&self) -> u64;
    /// Seeds with at least one violation.
    fn failing_seed_count(&self) -> usize;
    /// No seed failed.
    fn passed(&self) -> bool;
}

/// Worker threads when the caller names none: every available core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The text of a panic's payload (panics carry a `String` or a `&str`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "panic with a non-string payload".to_string())
}

/// Runs one seed's simulation, turning a panic (in a core or the simulator) into `Err` with
/// the panic's text, so a campaign goes on and names the seed instead of dying with it.
pub fn catch_panic<R>(run: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(run)).map_err(|payload| panic_message(payload.as_ref()))
}

/// One seed's configuration, as the guarded runner [`run_guarded`] takes it: every protocol's
/// simulator runs a seed through it, so a panic is turned into a report the same way for all.
pub trait SeedRun: Clone + Send {
    /// The protocol's report of one seed.
    type Report;
    /// Runs the seed to its end.
    fn run(self) -> Self::Report;
    /// The report of this seed when its run panicked with `message`: a violation of the
    /// protocol's "no panic" check.
    fn panicked(&self, message: String) -> Self::Report;
}

/// Runs one seed; a panic (in a core or the simulator) is caught and reported as a violation
/// of the "no panic" check, so a campaign goes on and names the seed.
pub fn run_guarded<C: SeedRun>(config: C) -> C::Report {
    let for_report = config.clone();
    catch_panic(move || config.run())
        .unwrap_or_else(|message| for_report.panicked(format!("panicked: {message}")))
}

/// Runs `run(seed)` for every seed of `seeds` on `threads` worker threads (at least one),
/// calling `on_done` after each (from the workers; use it for a progress bar). Returns every
/// report, sorted by seed.
pub fn run_seed_range<R: SeedReport>(
    seeds: Range<u64>,
    threads: usize,
    run: &(dyn Fn(u64) -> R + Sync),
    on_done: &(dyn Fn(&R) + Sync),
) -> Vec<R> {
    let next = AtomicU64::new(seeds.start);
    let count = usize::try_from(seeds.end.saturating_sub(seeds.start)).unwrap_or(0);
    let results = Mutex::new(Vec::with_capacity(count));
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= seeds.end {
                    break;
                }
                let report = run(seed);
                debug_assert_eq!(report.seed(), seed, "a seed's report names its seed");
                on_done(&report);
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(report);
            });
        }
    });
    let mut runs = results.into_inner().unwrap_or_else(|e| e.into_inner());
    runs.sort_by_key(|r| r.seed());
    runs
}

/// What a campaign runs.
#[derive(Clone, Debug)]
pub struct CampaignSpec {
    /// Seeds, half-open.
    pub seeds: Range<u64>,
    /// Cluster size.
    pub nodes: usize,
    /// Fault profile.
    pub faults: FaultProfile,
    /// Planted bugs.
    pub bugs: PlantedBugs,
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Adjusts each seed's configuration after the defaults (e.g. shorter runs in tests).
    pub tweak: Option<fn(&mut SimConfig)>,
    /// Whether the nemesis changes the membership too.
    pub membership_changes: bool,
    /// The quorum rule of each seed's first configuration: fixed, or drawn per seed.
    pub quorums: QuorumChoice,
    /// Leader leases on, with these clocks (see [`SimConfig::with_leases`]).
    pub clocks: Option<crate::leases::ClockModel>,
}

impl CampaignSpec {
    /// A campaign over `seeds` with default configurations, on every available core.
    pub fn new(seeds: Range<u64>, nodes: usize, faults: FaultProfile) -> CampaignSpec {
        CampaignSpec {
            seeds,
            nodes,
            faults,
            bugs: PlantedBugs::none(),
            threads: default_threads(),
            tweak: None,
            membership_changes: false,
            quorums: QuorumChoice::default(),
            clocks: None,
        }
    }

    /// The configuration of one seed.
    pub fn config(&self, seed: u64) -> SimConfig {
        let mut config = SimConfig::new(seed, self.nodes, self.faults);
        config.bugs = self.bugs;
        config.membership_changes = self.membership_changes;
        config.quorum = self.quorums.rule_for(seed, self.nodes);
        if let Some(clocks) = self.clocks {
            config.with_leases(clocks);
        }
        if let Some(tweak) = self.tweak {
            tweak(&mut config);
        }
        config
    }
}

impl SeedRun for SimConfig {
    type Report = RunReport;
    fn run(self) -> RunReport {
        Simulation::new(self).run()
    }
    fn panicked(&self, message: String) -> RunReport {
        RunReport::panicked(self, message)
    }
}

/// Runs one seed to the end (a panic is a violation of the "no panic" check).
pub fn run_seed(config: SimConfig) -> RunReport {
    run_guarded(config)
}

/// Runs every seed of `spec`, calling `on_done` after each (from worker threads; use it for
/// a progress bar). Returns every run's report, sorted by seed.
pub fn run_seeds(spec: &CampaignSpec, on_done: &(dyn Fn(&RunReport) + Sync)) -> Vec<RunReport> {
    run_seed_range(
        spec.seeds.clone(),
        spec.threads,
        &|seed| run_seed(spec.config(seed)),
        on_done,
    )
}

/// Runs a campaign and sums it.
pub fn run_campaign(spec: &CampaignSpec, on_done: &(dyn Fn(&RunReport) + Sync)) -> CampaignReport {
    let runs = run_seeds(spec, on_done);
    let mut report = CampaignReport::from_runs(&runs);
    report.nodes = spec.nodes;
    report.faults = spec.faults.to_string();
    report
}

/// The `--bug NAME` part of a replay line (empty without a planted bug; `synod sim` plants
/// one bug at a time, so only the first is named).
pub fn bug_flag(bugs: &[String]) -> String {
    bugs.first()
        .map(|b| format!(" --bug {b}"))
        .unwrap_or_default()
}

/// Adds `from`'s counts into `into`, key by key: how every report sums its per-kind figures.
pub fn add_counts<K: Ord + Clone>(into: &mut BTreeMap<K, u64>, from: &BTreeMap<K, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_insert(0) += v;
    }
}

/// The kinds of `all` that never fired: a campaign in which a fault never fired says so.
pub fn never_fired<K: Ord + Copy>(all: &[K], counts: &BTreeMap<K, u64>) -> Vec<K> {
    all.iter()
        .copied()
        .filter(|k| counts.get(k).copied().unwrap_or(0) == 0)
        .collect()
}

/// `Kind n, Kind n, ...` over every kind of `all`, zeros included, for a report line.
pub fn fmt_every_count<K: Ord + fmt::Debug>(all: &[K], counts: &BTreeMap<K, u64>) -> String {
    let parts: Vec<String> = all
        .iter()
        .map(|k| format!("{k:?} {}", counts.get(k).copied().unwrap_or(0)))
        .collect();
    parts.join(", ")
}

/// Counts one run's violations by check into `counts` and, if it had any, lists its seed in
/// `failing` with its first violation (call it once per run).
pub fn note_violations<C: Ord + Copy>(
    counts: &mut BTreeMap<C, u64>,
    failing: &mut Vec<(u64, String)>,
    seed: u64,
    violations: &[(C, String)],
) {
    for (check, _) in violations {
        *counts.entry(*check).or_insert(0) += 1;
    }
    if let Some((_, first)) = violations.first() {
        failing.push((seed, first.clone()));
    }
}

/// Implements [`SeedReport`] for a report with a `seed` field and inherent `passed` and
/// `replay_command` methods (every protocol's run report has them).
macro_rules! impl_seed_report {
    ($report:ty) => {
        impl $crate::campaign::SeedReport for $report {
            fn seed(&self) -> u64 {
                self.seed
            }
            fn passed(&self) -> bool {
                <$report>::passed(self)
            }
            fn replay_command(&self) -> String {
                <$report>::replay_command(self)
            }
        }
    };
}

/// Implements [`CampaignTotals`] for a campaign report with a `seeds_run` field, a list of
/// failing seeds in the named field, and an inherent `passed` method.
macro_rules! impl_campaign_totals {
    ($report:ty, $failing:ident) => {
        impl $crate::campaign::CampaignTotals for $report {
            fn seeds_run(&self) -> u64 {
                self.seeds_run
            }
            fn failing_seed_count(&self) -> usize {
                self.$failing.len()
            }
            fn passed(&self) -> bool {
                <$report>::passed(self)
            }
        }
    };
}
pub(crate) use {impl_campaign_totals, impl_seed_report};
