//! Figures: per run, and summed over a campaign.
//!
//! Testing practice 14: prove the test reached the code. Every fault kind and crash point is
//! counted, and a campaign says which enabled kinds never fired.

use crate::campaign::add_counts;
use crate::cheap::CheapFigures;
use crate::check::{CheckKind, Violation};
use crate::faults::{CrashPoint, FaultKind, FaultProfile};
use crate::leases::{ClockModel, LeaseFigures};
use crate::sim::{bug_names, SimConfig, Simulation};
use lincheck::Verdict;
use paxos::QuorumSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

/// The figures of one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunReport {
    /// The seed.
    pub seed: u64,
    /// Cluster size.
    pub nodes: usize,
    /// Fault profile.
    pub faults: FaultProfile,
    /// Planted bugs by name.
    pub bugs: Vec<String>,
    /// Whether the nemesis changed the membership (`--membership`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub membership_changes: bool,
    /// The first configuration's quorum rule (`--quorums`; drawn per seed under `swarm`).
    #[serde(default, skip_serializing_if = "is_majority")]
    pub quorum: QuorumSpec,
    /// Membership changes that also changed the quorum rule.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub quorum_rule_changes: u64,
    /// Virtual time simulated, in microseconds.
    pub simulated_us: u64,
    /// Events processed.
    pub events: u64,
    /// Fault kinds the seed's plan switched on.
    pub faults_enabled: Vec<FaultKind>,
    /// Faults injected, by kind.
    pub faults_injected: BTreeMap<FaultKind, u64>,
    /// Crashes by crash point.
    pub crash_points: BTreeMap<CrashPoint, u64>,
    /// Persist batches in flight at a crash that were lost.
    pub batches_lost: u64,
    /// Persist batches in flight at a crash that survived.
    pub batches_kept: u64,
    /// Snapshots, transfers and rebuilds.
    pub storage: StorageFigures,
    /// Client operations answered.
    pub ops_ok: u64,
    /// Gets given up: no outcome, and no effect since they only read.
    pub ops_failed: u64,
    /// Writes given up (or still pending at the end): they may or may not have taken effect.
    pub ops_unknown: u64,
    /// Times some node became leader.
    pub leader_changes: u64,
    /// Highest slot handed out by any node.
    pub slots_chosen: u64,
    /// Messages sent (peers and clients).
    pub messages_sent: u64,
    /// Messages delivered.
    pub messages_delivered: u64,
    /// Violations by check.
    pub violation_counts: BTreeMap<CheckKind, u64>,
    /// The first violations, in full.
    pub violations: Vec<Violation>,
    /// The linearizability checker's verdict (`None` if the run did not get that far).
    pub lincheck: Option<Verdict>,
    /// Why the checker said Illegal or Unknown.
    pub lincheck_detail: Option<String>,
    /// Virtual time from faults stopping until the leader that was stable at the end became
    /// stable (0 if it already was). `None` if no stable leader at the end.
    pub recovery_us: Option<u64>,
    /// Whether the run reached its end (false if it panicked).
    pub completed: bool,
    /// Cheap Paxos: what the auxiliaries did (empty under any other rule).
    #[serde(default, skip_serializing_if = "CheapFigures::is_empty")]
    pub cheap: CheapFigures,
    /// Leader leases: the clocks of the run (`None`: leases off, exact clocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clocks: Option<ClockModel>,
    /// Leader leases: what the leases did (empty with leases off).
    #[serde(default, skip_serializing_if = "LeaseFigures::is_empty")]
    pub leases: LeaseFigures,
}

impl RunReport {
    pub(crate) fn build(sim: &Simulation) -> RunReport {
        let config = sim.config();
        let tally = sim.tally();
        let mut ops_ok = 0;
        let mut ops_failed = 0;
        let mut ops_unknown = 0;
        for op in sim.history() {
            match (op.complete, &op.input) {
                (Some(_), _) => ops_ok += 1,
                (None, lincheck::kv::KvInput::Get { .. }) => ops_failed += 1,
                (None, _) => ops_unknown += 1,
            }
        }
        let (lincheck, lincheck_detail) = match sim.lincheck_verdict() {
            Some((v, d)) => (Some(v), d),
            None => (None, None),
        };
        let recovery_us = match (sim.stable_leader(), sim.quiet_at()) {
            (Some(s), Some(q)) => Some(s.since_us.saturating_sub(q)),
            _ => None,
        };
        RunReport {
            seed: config.seed,
            nodes: config.nodes,
            faults: config.faults,
            bugs: bug_names(config.bugs),
            membership_changes: config.membership_changes,
            quorum: config.quorum.clone(),
            quorum_rule_changes: tally.quorum_rule_changes,
            simulated_us: sim.now_us(),
            events: tally.events,
            faults_enabled: sim.plan().enabled(),
            faults_injected: tally.faults.clone(),
            crash_points: tally.crash_points.clone(),
            batches_lost: tally.batches_lost,
            batches_kept: tally.batches_kept,
            storage: StorageFigures {
                snapshots_taken: tally.snapshots_taken,
                snapshot_transfers: tally.snapshot_transfers,
                snapshots_installed: tally.snapshots_installed,
                rebuilds: tally.rebuilds,
                votes_regained: tally.votes_regained,
                refused_starts: tally.refused_starts,
                operator_rebuilds: tally.operator_rebuilds,
                storage_failures: tally.storage_failures,
            },
            ops_ok,
            ops_failed,
            ops_unknown,
            leader_changes: tally.leader_changes,
            slots_chosen: sim.oracle().highest().0,
            messages_sent: tally.messages_sent,
            messages_delivered: tally.messages_delivered,
            violation_counts: tally.violation_counts.clone(),
            violations: sim.violations().to_vec(),
            lincheck,
            lincheck_detail,
            recovery_us,
            completed: true,
            cheap: sim.cheap_figures(),
            clocks: config.clocks,
            leases: sim.lease_figures(),
        }
    }

    /// The report of a run that panicked: a violation of the "no panic" check.
    pub fn panicked(config: &SimConfig, message: String) -> RunReport {
        let mut violation_counts = BTreeMap::new();
        violation_counts.insert(CheckKind::Panic, 1);
        RunReport {
            seed: config.seed,
            nodes: config.nodes,
            faults: config.faults,
            bugs: bug_names(config.bugs),
            membership_changes: config.membership_changes,
            quorum: config.quorum.clone(),
            quorum_rule_changes: 0,
            simulated_us: 0,
            events: 0,
            faults_enabled: Vec::new(),
            faults_injected: BTreeMap::new(),
            crash_points: BTreeMap::new(),
            batches_lost: 0,
            batches_kept: 0,
            storage: StorageFigures::default(),
            ops_ok: 0,
            ops_failed: 0,
            ops_unknown: 0,
            leader_changes: 0,
            slots_chosen: 0,
            messages_sent: 0,
            messages_delivered: 0,
            violation_counts,
            violations: vec![Violation {
                check: CheckKind::Panic,
                at_us: 0,
                node: None,
                slot: None,
                detail: message,
            }],
            lincheck: None,
            lincheck_detail: None,
            recovery_us: None,
            completed: false,
            cheap: CheapFigures::default(),
            clocks: config.clocks,
            leases: LeaseFigures::default(),
        }
    }

    /// Total violations.
    pub fn violation_total(&self) -> u64 {
        self.violation_counts.values().sum()
    }

    /// Whether every check passed (linearizability must be Ok, not Unknown).
    pub fn passed(&self) -> bool {
        self.violation_total() == 0 && self.lincheck == Some(Verdict::Ok)
    }

    /// The first check that failed, if any.
    pub fn first_failed_check(&self) -> Option<CheckKind> {
        self.violations.first().map(|v| v.check)
    }

    /// The command that replays this run and writes its trace.
    pub fn replay_command(&self) -> String {
        let mut cmd = format!(
            "synod sim --seed {} --nodes {} --faults {} --trace seed-{}.trace.jsonl",
            self.seed, self.nodes, self.faults, self.seed
        );
        for b in &self.bugs {
            let _ = write!(cmd, " --bug {b}");
        }
        if self.membership_changes {
            cmd.push_str(" --membership");
        }
        if !is_majority(&self.quorum) {
            // The seed's own rule, even when a swarm drew it: the replay needs no draw.
            let _ = write!(cmd, " --quorums {}", self.quorum);
        }
        if let Some(clocks) = &self.clocks {
            let _ = write!(cmd, " --leases --drift {}", clocks.drift_ppm);
            if clocks.beyond_bound {
                cmd.push_str(" --clock-fault");
            }
        }
        cmd
    }
}

crate::campaign::impl_seed_report!(RunReport);

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {}: {} nodes, faults {}",
            self.seed, self.nodes, self.faults
        )?;
        if !self.bugs.is_empty() {
            writeln!(f, "  planted bugs          {}", self.bugs.join(", "))?;
        }
        if !is_majority(&self.quorum) || self.quorum_rule_changes > 0 {
            writeln!(
                f,
                "  quorum rule           {} ({} changed by reconfiguration)",
                self.quorum, self.quorum_rule_changes
            )?;
        }
        if !self.cheap.is_empty() {
            writeln!(
                f,
                "  cheap paxos           auxiliaries engaged {}, mains dropped {}, back to idle {}; mains returned {}, re-admissions proposed {}, in effect {}",
                self.cheap.auxiliaries_engaged,
                self.cheap.mains_dropped,
                self.cheap.returned_to_idle,
                self.cheap.mains_returned,
                self.cheap.mains_readmitted,
                self.cheap.readmissions_entered
            )?;
        }
        if let Some(clocks) = &self.clocks {
            writeln!(
                f,
                "  leader leases         {}",
                self.leases.describe(clocks)
            )?;
        }
        writeln!(f, "  simulated time        {}", fmt_us(self.simulated_us))?;
        writeln!(f, "  events                {}", self.events)?;
        let enabled: Vec<&str> = self.faults_enabled.iter().map(|k| k.name()).collect();
        writeln!(
            f,
            "  faults enabled        {}",
            if enabled.is_empty() {
                "none".to_string()
            } else {
                enabled.join(", ")
            }
        )?;
        writeln!(
            f,
            "  faults injected       {}",
            fmt_counts(self.faults_injected.iter().map(|(k, v)| (k.name(), *v)))
        )?;
        writeln!(
            f,
            "  crash points hit      {}",
            fmt_counts(self.crash_points.iter().map(|(k, v)| (k.name(), *v)))
        )?;
        writeln!(
            f,
            "  batches at crash      {} kept, {} lost",
            self.batches_kept, self.batches_lost
        )?;
        writeln!(f, "  {}", self.storage)?;
        writeln!(
            f,
            "  operations            {} ok, {} failed, {} unknown",
            self.ops_ok, self.ops_failed, self.ops_unknown
        )?;
        writeln!(f, "  slots chosen          {}", self.slots_chosen)?;
        writeln!(f, "  leader changes        {}", self.leader_changes)?;
        writeln!(
            f,
            "  messages              {} sent, {} delivered",
            self.messages_sent, self.messages_delivered
        )?;
        match self.recovery_us {
            Some(r) => writeln!(f, "  stable leader after heal {}", fmt_us(r))?,
            None => writeln!(f, "  stable leader after heal none")?,
        }
        writeln!(
            f,
            "  linearizability       {}",
            self.lincheck
                .map_or("not checked".to_string(), |v| v.to_string())
        )?;
        writeln!(
            f,
            "  violations            {}",
            fmt_violations(&self.violation_counts)
        )?;
        for v in &self.violations {
            writeln!(f, "    {v}")?;
        }
        if let (Some(Verdict::Unknown), Some(d)) = (self.lincheck, &self.lincheck_detail) {
            writeln!(f, "    lincheck unknown: {d}")?;
        }
        Ok(())
    }
}

/// Figures summed over many runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CampaignReport {
    /// Seeds run.
    pub seeds_run: u64,
    /// Whether the nemesis changed the membership in these runs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub membership_changes: bool,
    /// Cluster size.
    pub nodes: usize,
    /// Fault profile name.
    pub faults: String,
    /// Planted bugs by name.
    pub bugs: Vec<String>,
    /// Virtual time simulated, summed, in microseconds.
    pub simulated_us: u64,
    /// Events processed, summed.
    pub events: u64,
    /// Seeds by the kind of their first quorum rule (`majority`, `flexible`, `grid`,
    /// `weighted`).
    pub quorum_kinds: BTreeMap<String, u64>,
    /// Membership changes that also changed the quorum rule, summed.
    pub quorum_rule_changes: u64,
    /// Seeds whose plan enabled each kind.
    pub seeds_with_fault_enabled: BTreeMap<FaultKind, u64>,
    /// Faults injected, by kind.
    pub faults_injected: BTreeMap<FaultKind, u64>,
    /// Crashes by crash point.
    pub crash_points: BTreeMap<CrashPoint, u64>,
    /// Persist batches lost at crashes.
    pub batches_lost: u64,
    /// Persist batches that survived crashes.
    pub batches_kept: u64,
    /// Snapshots, transfers and rebuilds, summed.
    pub storage: StorageFigures,
    /// Operations answered.
    pub ops_ok: u64,
    /// Gets given up.
    pub ops_failed: u64,
    /// Writes with unknown outcome.
    pub ops_unknown: u64,
    /// Leader changes.
    pub leader_changes: u64,
    /// Slots chosen.
    pub slots_chosen: u64,
    /// Violations by check.
    pub violation_counts: BTreeMap<CheckKind, u64>,
    /// Seeds with at least one violation, or a linearizability verdict other than Ok, with
    /// the first thing that went wrong and the command that replays them.
    pub failing_seeds: Vec<FailingSeed>,
    /// Linearizability verdicts.
    pub lincheck_ok: u64,
    /// Linearizability verdicts.
    pub lincheck_illegal: u64,
    /// Linearizability verdicts (never a pass).
    pub lincheck_unknown: u64,
    /// Time to a stable leader after faults stopped: median, microseconds.
    pub recovery_p50_us: Option<u64>,
    /// 99th percentile.
    pub recovery_p99_us: Option<u64>,
    /// Worst.
    pub recovery_max_us: Option<u64>,
    /// Wall-clock time of the campaign, set by the caller (the simulator never reads a clock).
    pub wall_ms: Option<u64>,
    /// Cheap Paxos: what the auxiliaries did, summed (empty under any other rule).
    #[serde(skip_serializing_if = "CheapFigures::is_empty")]
    pub cheap: CheapFigures,
    /// Leader leases: the clocks of the campaign (`None`: leases off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clocks: Option<ClockModel>,
    /// Leader leases: what the leases did, summed.
    #[serde(skip_serializing_if = "LeaseFigures::is_empty")]
    pub leases: LeaseFigures,
}

fn is_majority(rule: &QuorumSpec) -> bool {
    *rule == QuorumSpec::Majority
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The kind of a rule, for counting seeds by kind.
pub fn quorum_kind(rule: &QuorumSpec) -> &'static str {
    match rule {
        QuorumSpec::Majority => "majority",
        QuorumSpec::Flexible { .. } => "flexible",
        QuorumSpec::Grid { .. } => "grid",
        QuorumSpec::Weighted { .. } => "weighted",
        QuorumSpec::Cheap { .. } => "cheap",
    }
}

/// A seed that failed a check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FailingSeed {
    /// The seed.
    pub seed: u64,
    /// The first check that failed (`None`: only the linearizability verdict was Unknown).
    pub check: Option<CheckKind>,
    /// What it saw.
    pub detail: String,
    /// The command that replays it.
    pub replay: String,
}

impl CampaignReport {
    /// Sums `runs` (in any order: every figure is a sum or an order-free statistic).
    pub fn from_runs(runs: &[RunReport]) -> CampaignReport {
        let mut c = CampaignReport::default();
        let mut recoveries = Vec::new();
        for r in runs {
            c.nodes = r.nodes;
            c.faults = r.faults.to_string();
            c.bugs.clone_from(&r.bugs);
            c.membership_changes |= r.membership_changes;
            c.seeds_run += 1;
            c.simulated_us += r.simulated_us;
            c.events += r.events;
            *c.quorum_kinds
                .entry(quorum_kind(&r.quorum).to_string())
                .or_insert(0) += 1;
            c.quorum_rule_changes += r.quorum_rule_changes;
            c.cheap.add_run(&r.cheap);
            c.clocks = c.clocks.or(r.clocks);
            c.leases.add_run(&r.leases);
            for k in &r.faults_enabled {
                *c.seeds_with_fault_enabled.entry(*k).or_insert(0) += 1;
            }
            add_counts(&mut c.faults_injected, &r.faults_injected);
            add_counts(&mut c.crash_points, &r.crash_points);
            add_counts(&mut c.violation_counts, &r.violation_counts);
            c.batches_lost += r.batches_lost;
            c.batches_kept += r.batches_kept;
            c.storage.add(&r.storage);
            c.ops_ok += r.ops_ok;
            c.ops_failed += r.ops_failed;
            c.ops_unknown += r.ops_unknown;
            c.leader_changes += r.leader_changes;
            c.slots_chosen += r.slots_chosen;
            match r.lincheck {
                Some(Verdict::Ok) => c.lincheck_ok += 1,
                Some(Verdict::Illegal) => c.lincheck_illegal += 1,
                Some(Verdict::Unknown) => c.lincheck_unknown += 1,
                None => {}
            }
            if let Some(us) = r.recovery_us {
                recoveries.push(us);
            }
            if !r.passed() {
                let (check, detail) = match r.violations.first() {
                    Some(v) => (Some(v.check), v.to_string()),
                    None => (None, format!("linearizability verdict {:?}", r.lincheck)),
                };
                c.failing_seeds.push(FailingSeed {
                    seed: r.seed,
                    check,
                    detail,
                    replay: r.replay_command(),
                });
            }
        }
        c.failing_seeds.sort_by_key(|f| f.seed);
        recoveries.sort_unstable();
        c.recovery_p50_us = percentile(&recoveries, 50);
        c.recovery_p99_us = percentile(&recoveries, 99);
        c.recovery_max_us = recoveries.last().copied();
        c
    }

    /// Total violations.
    pub fn violation_total(&self) -> u64 {
        self.violation_counts.values().sum()
    }

    /// Whether every seed passed every check, with linearizability Ok everywhere.
    pub fn passed(&self) -> bool {
        self.failing_seeds.is_empty() && self.lincheck_ok == self.seeds_run
    }

    /// Fault kinds enabled in some seed that never fired in any.
    pub fn never_fired(&self) -> Vec<FaultKind> {
        self.seeds_with_fault_enabled
            .keys()
            .filter(|k| self.faults_injected.get(k).copied().unwrap_or(0) == 0)
            .copied()
            .collect()
    }

    /// Fault kinds the profile allows that no seed enabled.
    pub fn never_enabled(&self) -> Vec<FaultKind> {
        let Some(profile) = FaultProfile::from_name(&self.faults) else {
            return Vec::new();
        };
        FaultKind::ALL
            .into_iter()
            .filter(|k| {
                let allowed = match k {
                    // Opt-in (`--membership`), not part of any profile.
                    FaultKind::AddLearner
                    | FaultKind::Promote
                    | FaultKind::RemoveFollower
                    | FaultKind::RemoveLeader => false,
                    FaultKind::Crash => profile.crash(),
                    FaultKind::ForcedElection => profile != FaultProfile::None && self.nodes >= 2,
                    _ => profile.net() && crate::faults::shape_possible_or_net(*k, self.nodes),
                };
                allowed && !self.seeds_with_fault_enabled.contains_key(k)
            })
            .collect()
    }

    /// Crash points the profile allows that were never hit.
    pub fn crash_points_missed(&self) -> Vec<CrashPoint> {
        if !FaultProfile::from_name(&self.faults).is_some_and(FaultProfile::crash) {
            return Vec::new();
        }
        CrashPoint::ALL
            .into_iter()
            .filter(|p| !self.crash_points.contains_key(p))
            .collect()
    }
}

crate::campaign::impl_campaign_totals!(CampaignReport, failing_seeds);

impl fmt::Display for CampaignReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "campaign: {} seeds, {} nodes, faults {}",
            self.seeds_run, self.nodes, self.faults
        )?;
        if !self.bugs.is_empty() {
            writeln!(f, "  planted bugs          {}", self.bugs.join(", "))?;
        }
        if let Some(ms) = self.wall_ms {
            writeln!(f, "  wall time             {:.1} s", ms as f64 / 1000.0)?;
        }
        if self.quorum_kinds.keys().any(|k| k != "majority") || self.quorum_rule_changes > 0 {
            writeln!(
                f,
                "  quorum rules (seeds)  {}; changed by reconfiguration {}",
                fmt_counts(self.quorum_kinds.iter().map(|(k, v)| (k.as_str(), *v))),
                self.quorum_rule_changes
            )?;
        }
        if !self.cheap.is_empty() || self.quorum_kinds.contains_key("cheap") {
            let c = &self.cheap;
            writeln!(
                f,
                "  cheap paxos           auxiliaries engaged {} times in {} seeds; mains dropped {} in {} seeds; back to idle {}",
                c.auxiliaries_engaged, c.seeds_engaged, c.mains_dropped, c.seeds_dropped, c.returned_to_idle
            )?;
            writeln!(
                f,
                "  cheap re-admission    mains returned {} in {} seeds; re-admissions proposed {}, in effect {} in {} seeds",
                c.mains_returned, c.seeds_returned, c.mains_readmitted, c.readmissions_entered, c.seeds_readmitted
            )?;
        }
        if let Some(clocks) = &self.clocks {
            writeln!(
                f,
                "  leader leases         {}",
                self.leases.describe(clocks)
            )?;
        }
        writeln!(f, "  simulated time        {}", fmt_us(self.simulated_us))?;
        writeln!(f, "  events                {}", self.events)?;
        writeln!(f, "  faults injected (seeds enabled / times fired):")?;
        for k in FaultKind::ALL {
            let seeds = self.seeds_with_fault_enabled.get(&k).copied().unwrap_or(0);
            let fired = self.faults_injected.get(&k).copied().unwrap_or(0);
            if seeds > 0 || fired > 0 {
                writeln!(f, "    {:<20} {:>6} / {}", k.name(), seeds, fired)?;
            }
        }
        let never = self.never_fired();
        if !never.is_empty() {
            let names: Vec<&str> = never.iter().map(|k| k.name()).collect();
            writeln!(f, "  NEVER FIRED although enabled: {}", names.join(", "))?;
        }
        let never_enabled = self.never_enabled();
        if !never_enabled.is_empty() {
            let names: Vec<&str> = never_enabled.iter().map(|k| k.name()).collect();
            writeln!(f, "  never enabled by any seed: {}", names.join(", "))?;
        }
        writeln!(
            f,
            "  crash points hit      {}",
            fmt_counts(self.crash_points.iter().map(|(k, v)| (k.name(), *v)))
        )?;
        let missed = self.crash_points_missed();
        if !missed.is_empty() {
            let names: Vec<&str> = missed.iter().map(|k| k.name()).collect();
            writeln!(f, "  crash points NEVER HIT: {}", names.join(", "))?;
        }
        writeln!(
            f,
            "  batches at crash      {} kept, {} lost",
            self.batches_kept, self.batches_lost
        )?;
        writeln!(f, "  {}", self.storage)?;
        writeln!(
            f,
            "  operations            {} ok, {} failed, {} unknown",
            self.ops_ok, self.ops_failed, self.ops_unknown
        )?;
        writeln!(f, "  slots chosen          {}", self.slots_chosen)?;
        writeln!(f, "  leader changes        {}", self.leader_changes)?;
        writeln!(
            f,
            "  stable leader after heal  p50 {}, p99 {}, max {}",
            self.recovery_p50_us.map_or("-".into(), fmt_us),
            self.recovery_p99_us.map_or("-".into(), fmt_us),
            self.recovery_max_us.map_or("-".into(), fmt_us),
        )?;
        writeln!(
            f,
            "  linearizability       {} ok, {} illegal, {} unknown",
            self.lincheck_ok, self.lincheck_illegal, self.lincheck_unknown
        )?;
        writeln!(
            f,
            "  violations            {}",
            fmt_violations(&self.violation_counts)
        )?;
        if !self.failing_seeds.is_empty() {
            writeln!(f, "  failing seeds         {}", self.failing_seeds.len())?;
            for s in self.failing_seeds.iter().take(10) {
                writeln!(f, "    seed {}: {}", s.seed, s.detail)?;
                writeln!(f, "      replay: {}", s.replay)?;
            }
            if self.failing_seeds.len() > 10 {
                writeln!(f, "    ... and {} more", self.failing_seeds.len() - 10)?;
            }
        }
        Ok(())
    }
}

fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    Some(sorted[rank - 1])
}

/// Microseconds for a person: `1.234 s`, `56.7 ms` or `89 us`.
pub fn fmt_us(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.3} s", us as f64 / 1e6)
    } else if us >= 1_000 {
        format!("{:.1} ms", us as f64 / 1e3)
    } else {
        format!("{us} us")
    }
}

fn fmt_counts<'a>(counts: impl Iterator<Item = (&'a str, u64)>) -> String {
    let parts: Vec<String> = counts.map(|(k, v)| format!("{k} {v}")).collect();
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    }
}

fn fmt_violations(counts: &BTreeMap<CheckKind, u64>) -> String {
    let total: u64 = counts.values().sum();
    if total == 0 {
        return "0".to_string();
    }
    let parts: Vec<String> = CheckKind::ALL
        .into_iter()
        .filter_map(|k| counts.get(&k).map(|v| format!("{k} {v}")))
        .collect();
    format!("{total} ({})", parts.join(", "))
}

/// Snapshot and rebuild figures of a run or a campaign.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageFigures {
    /// Snapshots taken (each compacts the log).
    pub snapshots_taken: u64,
    /// Snapshot transfers started by a replica that missed compacted slots.
    pub snapshot_transfers: u64,
    /// Snapshots received whole, verified and installed.
    pub snapshots_installed: u64,
    /// Disks wiped: rebuilds started.
    pub rebuilds: u64,
    /// Rebuilt replicas that regained their vote.
    pub votes_regained: u64,
    /// Starts refused by storage (damage found at recovery).
    pub refused_starts: u64,
    /// Refused members wiped and rebuilt by the simulated operator.
    pub operator_rebuilds: u64,
    /// Writes or syncs that failed while running (the node stopped).
    pub storage_failures: u64,
}

impl StorageFigures {
    fn add(&mut self, o: &StorageFigures) {
        self.snapshots_taken += o.snapshots_taken;
        self.snapshot_transfers += o.snapshot_transfers;
        self.snapshots_installed += o.snapshots_installed;
        self.rebuilds += o.rebuilds;
        self.votes_regained += o.votes_regained;
        self.refused_starts += o.refused_starts;
        self.operator_rebuilds += o.operator_rebuilds;
        self.storage_failures += o.storage_failures;
    }
}

impl fmt::Display for StorageFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "snapshots             {} taken, {} transfers, {} installed\n  storage               {} starts refused (damage found), {} operator rebuilds, {} write failures; rebuilds {} (vote regained {})",
            self.snapshots_taken,
            self.snapshot_transfers,
            self.snapshots_installed,
            self.refused_starts,
            self.operator_rebuilds,
            self.storage_failures,
            self.rebuilds,
            self.votes_regained
        )
    }
}
