//! Campaigns: many seeds, on several threads, summed into one report.
//!
//! Each seed is independent, so threads take seeds from a shared counter and the figures are
//! the same whatever the thread count: reports are sorted by seed before they are summed.

use crate::faults::FaultProfile;
use crate::quorums::QuorumChoice;
use crate::report::{CampaignReport, RunReport};
use crate::sim::{SimConfig, Simulation};
use paxos::PlantedBugs;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

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
}

impl CampaignSpec {
    /// A campaign over `seeds` with default configurations, on every available core.
    pub fn new(seeds: Range<u64>, nodes: usize, faults: FaultProfile) -> CampaignSpec {
        CampaignSpec {
            seeds,
            nodes,
            faults,
            bugs: PlantedBugs::none(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            tweak: None,
            membership_changes: false,
            quorums: QuorumChoice::default(),
        }
    }

    /// The configuration of one seed.
    pub fn config(&self, seed: u64) -> SimConfig {
        let mut config = SimConfig::new(seed, self.nodes, self.faults);
        config.bugs = self.bugs;
        config.membership_changes = self.membership_changes;
        config.quorum = self.quorums.rule_for(seed, self.nodes);
        if let Some(tweak) = self.tweak {
            tweak(&mut config);
        }
        config
    }
}

/// Runs one seed to the end. A panic (in the core or the simulator) is caught and reported
/// as a violation of the "no panic" check, so a campaign goes on and names the seed.
pub fn run_seed(config: SimConfig) -> RunReport {
    let for_report = config.clone();
    match catch_unwind(AssertUnwindSafe(move || Simulation::new(config).run())) {
        Ok(report) => report,
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_else(|| "panic with a non-string payload".to_string());
            RunReport::panicked(&for_report, format!("panicked: {message}"))
        }
    }
}

/// Runs every seed of `spec`, calling `on_done` after each (from worker threads; use it for
/// a progress bar). Returns every run's report, sorted by seed.
pub fn run_seeds(spec: &CampaignSpec, on_done: &(dyn Fn(&RunReport) + Sync)) -> Vec<RunReport> {
    let next = AtomicU64::new(spec.seeds.start);
    let results = Mutex::new(Vec::with_capacity(
        (spec.seeds.end - spec.seeds.start) as usize,
    ));
    std::thread::scope(|scope| {
        for _ in 0..spec.threads.max(1) {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= spec.seeds.end {
                    break;
                }
                let report = run_seed(spec.config(seed));
                on_done(&report);
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(report);
            });
        }
    });
    let mut runs = results.into_inner().unwrap_or_else(|e| e.into_inner());
    runs.sort_by_key(|r| r.seed);
    runs
}

/// Runs a campaign and sums it.
pub fn run_campaign(spec: &CampaignSpec, on_done: &(dyn Fn(&RunReport) + Sync)) -> CampaignReport {
    let runs = run_seeds(spec, on_done);
    let mut report = CampaignReport::from_runs(&runs);
    report.nodes = spec.nodes;
    report.faults = spec.faults.to_string();
    report
}
