//! Figures of member-level runs and campaigns, in the style of the core simulator's
//! (`crate::report`): every fault kind and crash point counted, violations by check, and the
//! linearizability checker's verdicts with Unknown never counted as a pass.

use super::check::{MemberCheck, MemberViolation};
use super::{MemberSimConfig, MemberSimulation};
use crate::campaign::add_counts;
use crate::faults::{FaultKind, FaultProfile};
use lincheck::Verdict;
use member::bugs::MemberBugs;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

/// The figures of one member-level run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MemberRunReport {
    /// The seed.
    pub seed: u64,
    /// Members.
    pub nodes: usize,
    /// Fault profile.
    pub faults: FaultProfile,
    /// Planted member bugs by name.
    pub bugs: Vec<String>,
    /// Whether an operator changed the membership (`--membership`).
    pub membership: bool,
    /// Virtual time simulated, microseconds.
    pub simulated_us: u64,
    /// Events processed.
    pub events: u64,
    /// A hash of every event in order (time and kind): equal seeds give equal hashes.
    pub trace_hash: u64,
    /// Fault kinds the seed's plan switched on (of those simulated here).
    pub faults_enabled: Vec<FaultKind>,
    /// Faults injected, by kind.
    pub faults_injected: BTreeMap<FaultKind, u64>,
    /// Crashes by crash point (`RandomTime` is the nemesis's).
    pub crash_points: BTreeMap<String, u64>,
    /// Client operations by kind: (answered, failed without effect, unknown).
    pub ops_by_kind: BTreeMap<String, (u64, u64, u64)>,
    /// Answered operations.
    pub ops_ok: u64,
    /// Operations that failed without effect (reads given up, requests refused at connect).
    pub ops_failed: u64,
    /// Writes whose outcome the client never learned.
    pub ops_unknown: u64,
    /// Peer messages sent and delivered.
    pub messages_sent: u64,
    /// Delivered.
    pub messages_delivered: u64,
    /// Snapshots written by members, stored from a peer, and log compactions.
    pub snapshots_written: u64,
    /// Snapshots received whole from a peer.
    pub snapshots_installed: u64,
    /// Receives a member's earlier run began, resumed after its restart from what was durable.
    pub snapshot_receives_resumed: u64,
    /// The most session-table entries, and their bytes, in one snapshot written.
    pub snapshot_sessions_max: (u64, u64),
    /// Log compactions.
    pub compactions: u64,
    /// Highest slot applied at the end.
    pub slots_applied: u64,
    /// Members' stores compared at equal applied slots.
    pub store_comparisons: u64,
    /// Historical reads compared.
    pub historical_reads: u64,
    /// Watches checked, and the events they were sent.
    pub watches_checked: u64,
    /// Of those, compared with every change applied in their range (the others' range held
    /// a revision no member shared: installed by snapshot only).
    pub watches_compared: u64,
    /// Events sent to watches.
    pub watch_events: u64,
    /// Watch events whose previous value was compared with the history's.
    pub prevs_compared: u64,
    /// Lock and election holds checked, sessions begun, observations checked.
    pub lock_holds: u64,
    pub lock_sessions: u64,
    pub lock_observations: u64,
    /// Watches cancelled by their client (and re-created), and ended by a compaction.
    pub watches_cancelled: u64,
    /// Ended by a compaction.
    pub watches_compacted: u64,
    /// Restarts whose recovered store was behind what the member had before (it catches up
    /// before it can serve a linearizable read; a figure, not a violation).
    pub restarts_behind: u64,
    /// Membership changes by kind: (asked, done, refused, answer lost).
    pub changes: BTreeMap<String, (u64, u64, u64, u64)>,
    /// Members removed (stopped, their places wiped).
    pub members_retired: u64,
    /// Wiped members that regained their vote.
    pub members_rebuilt: u64,
    /// Leader leases: reads served under a lease, with no read-index round.
    pub leased_reads: u64,
    /// Leader leases: member processes paused (as SIGSTOP pauses one).
    pub pauses: u64,
    /// Violations by check.
    pub violation_counts: BTreeMap<MemberCheck, u64>,
    /// The first violations in full.
    pub violations: Vec<MemberViolation>,
    /// The linearizability verdict.
    pub lincheck: Option<Verdict>,
    /// Why it was Illegal or Unknown.
    pub lincheck_detail: Option<String>,
    /// False if the run panicked.
    pub completed: bool,
}

impl MemberRunReport {
    pub(crate) fn build(sim: &MemberSimulation, lincheck: Verdict) -> MemberRunReport {
        let config = sim.config();
        let mut ops_ok = 0;
        let mut ops_failed = 0;
        let mut ops_unknown = 0;
        for (ok, failed, unknown) in sim.tally.ops_by_kind.values() {
            ops_ok += ok;
            ops_failed += failed;
            ops_unknown += unknown;
        }
        let plan = sim.plan();
        let mut faults_enabled = Vec::new();
        if plan.profile.net() {
            if plan.loss_permille > 0 {
                faults_enabled.push(FaultKind::Loss);
            }
            if plan.duplicate_permille > 0 {
                faults_enabled.push(FaultKind::Duplicate);
            }
            if plan.long_delay_permille > 0 {
                faults_enabled.push(FaultKind::LongDelay);
            }
            faults_enabled.extend(plan.partitions.iter().copied());
        }
        if plan.profile.crash() {
            faults_enabled.push(FaultKind::Crash);
        }
        if plan.profile.crash() && plan.wipe_permille > 0 {
            faults_enabled.push(FaultKind::Wipe);
        }
        MemberRunReport {
            seed: config.seed,
            nodes: config.nodes,
            faults: config.faults,
            bugs: config.bugs.names().into_iter().map(String::from).collect(),
            membership: config.membership,
            simulated_us: sim.now_us(),
            events: sim.tally.events,
            trace_hash: sim.trace_hash(),
            faults_enabled,
            faults_injected: sim.tally.faults.clone(),
            crash_points: sim.tally.crash_points.clone(),
            ops_by_kind: sim
                .tally
                .ops_by_kind
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            ops_ok,
            ops_failed,
            ops_unknown,
            messages_sent: sim.tally.messages_sent,
            messages_delivered: sim.tally.messages_delivered,
            snapshots_written: sim.tally.snapshots_written,
            snapshots_installed: sim.tally.snapshots_installed,
            snapshot_receives_resumed: sim.tally.snapshot_receives_resumed,
            snapshot_sessions_max: sim.tally.snapshot_sessions_max,
            compactions: sim.tally.compactions,
            slots_applied: sim.slot_applied_max().0,
            store_comparisons: sim.checks.store_comparisons,
            historical_reads: sim.checks.historical_reads,
            watches_checked: sim.reference.watches_checked,
            watches_compared: sim.reference.watches_compared,
            watch_events: sim.reference.watch_events,
            prevs_compared: sim.reference.prevs_compared,
            lock_holds: sim.locks.holds.len() as u64,
            lock_sessions: sim.locks.sessions,
            lock_observations: sim.locks.observations.len() as u64,
            watches_cancelled: sim.tally.watches_cancelled,
            watches_compacted: sim.tally.watches_compacted,
            restarts_behind: sim.checks.restarts_behind,
            changes: sim
                .tally
                .changes
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            members_retired: sim.tally.retired,
            members_rebuilt: sim.tally.rebuilt,
            leased_reads: sim.tally.leased_reads,
            pauses: sim.tally.pauses,
            violation_counts: sim.checks.counts.clone(),
            violations: sim.checks.violations.clone(),
            lincheck: Some(lincheck),
            lincheck_detail: sim.checks.lincheck_detail.clone(),
            completed: true,
        }
    }

    fn panicked(config: &MemberSimConfig, message: String) -> MemberRunReport {
        let mut counts = BTreeMap::new();
        counts.insert(MemberCheck::Recovery, 1);
        MemberRunReport {
            seed: config.seed,
            nodes: config.nodes,
            faults: config.faults,
            bugs: config.bugs.names().into_iter().map(String::from).collect(),
            membership: config.membership,
            simulated_us: 0,
            events: 0,
            trace_hash: 0,
            faults_enabled: Vec::new(),
            faults_injected: BTreeMap::new(),
            crash_points: BTreeMap::new(),
            ops_by_kind: BTreeMap::new(),
            ops_ok: 0,
            ops_failed: 0,
            ops_unknown: 0,
            messages_sent: 0,
            messages_delivered: 0,
            snapshots_written: 0,
            snapshots_installed: 0,
            snapshot_receives_resumed: 0,
            snapshot_sessions_max: (0, 0),
            compactions: 0,
            slots_applied: 0,
            store_comparisons: 0,
            historical_reads: 0,
            watches_checked: 0,
            watches_compared: 0,
            watch_events: 0,
            prevs_compared: 0,
            lock_holds: 0,
            lock_sessions: 0,
            lock_observations: 0,
            watches_cancelled: 0,
            watches_compacted: 0,
            restarts_behind: 0,
            changes: BTreeMap::new(),
            members_retired: 0,
            members_rebuilt: 0,
            leased_reads: 0,
            pauses: 0,
            violation_counts: counts,
            violations: vec![MemberViolation {
                check: MemberCheck::Recovery,
                at_us: 0,
                member: None,
                detail: message,
            }],
            lincheck: None,
            lincheck_detail: None,
            completed: false,
        }
    }

    /// No violation, the run completed, and the history was linearizable (not Unknown).
    pub fn passed(&self) -> bool {
        self.completed && self.violation_counts.is_empty() && self.lincheck == Some(Verdict::Ok)
    }

    /// The command that replays this seed.
    pub fn replay_command(&self) -> String {
        let bug = crate::campaign::bug_flag(&self.bugs);
        let membership = if self.membership { " --membership" } else { "" };
        format!(
            "synod sim --member --seed {} --nodes {} --faults {}{membership}{bug}",
            self.seed, self.nodes, self.faults
        )
    }
}

crate::campaign::impl_seed_report!(MemberRunReport);

impl fmt::Display for MemberRunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "member run: seed {}, {} members, faults {}{}",
            self.seed,
            self.nodes,
            self.faults,
            if self.bugs.is_empty() {
                String::new()
            } else {
                format!(", planted bugs {}", self.bugs.join(", "))
            }
        )?;
        writeln!(f, "  simulated time        {} ms", self.simulated_us / 1000)?;
        writeln!(f, "  events                {}", self.events)?;
        writeln!(f, "  trace hash            {:016x}", self.trace_hash)?;
        writeln!(
            f,
            "  operations            {} ok, {} failed, {} unknown",
            self.ops_ok, self.ops_failed, self.ops_unknown
        )?;
        writeln!(
            f,
            "  locks and elections   {} sessions, {} holds, {} observations",
            self.lock_sessions, self.lock_holds, self.lock_observations
        )?;
        writeln!(f, "  lincheck              {:?}", self.lincheck)?;
        for v in &self.violations {
            writeln!(
                f,
                "  VIOLATION {} at {} us{}: {}",
                v.check.name(),
                v.at_us,
                v.member.map_or(String::new(), |m| format!(" (m{m})")),
                v.detail
            )?;
        }
        if let Some(d) = &self.lincheck_detail {
            writeln!(f, "  lincheck detail: {d}")?;
        }
        Ok(())
    }
}

/// What a member-level campaign runs.
#[derive(Clone, Debug)]
pub struct MemberCampaignSpec {
    /// Seeds, half-open.
    pub seeds: Range<u64>,
    /// Members.
    pub nodes: usize,
    /// Fault profile.
    pub faults: FaultProfile,
    /// Planted member bugs.
    pub bugs: MemberBugs,
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Adjusts each seed's configuration after the defaults.
    pub tweak: Option<fn(&mut MemberSimConfig)>,
    /// Leader leases with these clocks (`MemberSimConfig::leases`).
    pub leases: Option<crate::leases::ClockModel>,
}

impl MemberCampaignSpec {
    /// A campaign over `seeds` on every available core.
    pub fn new(seeds: Range<u64>, nodes: usize, faults: FaultProfile) -> MemberCampaignSpec {
        MemberCampaignSpec {
            seeds,
            nodes,
            faults,
            bugs: MemberBugs::none(),
            threads: crate::campaign::default_threads(),
            tweak: None,
            leases: None,
        }
    }

    /// The configuration of one seed.
    pub fn config(&self, seed: u64) -> MemberSimConfig {
        let mut config = MemberSimConfig::new(seed, self.nodes, self.faults);
        config.bugs = self.bugs;
        config.leases = self.leases;
        if let Some(tweak) = self.tweak {
            tweak(&mut config);
        }
        config
    }
}

/// Runs one seed; a panic is caught and reported (as a failed run naming the seed).
pub fn run_member_seed(config: MemberSimConfig) -> MemberRunReport {
    let for_report = config.clone();
    crate::campaign::catch_panic(move || MemberSimulation::new(config).run()).unwrap_or_else(
        |message| MemberRunReport::panicked(&for_report, format!("panicked: {message}")),
    )
}

/// Runs every seed of `spec` on its threads; reports sorted by seed.
pub fn run_member_seeds(
    spec: &MemberCampaignSpec,
    on_done: &(dyn Fn(&MemberRunReport) + Sync),
) -> Vec<MemberRunReport> {
    crate::campaign::run_seed_range(
        spec.seeds.clone(),
        spec.threads,
        &|seed| run_member_seed(spec.config(seed)),
        on_done,
    )
}

/// A member-level campaign's figures, summed over seeds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MemberCampaignReport {
    /// Seeds run.
    pub seeds_run: u64,
    /// Members.
    pub nodes: usize,
    /// Fault profile.
    pub faults: String,
    /// Planted bugs.
    pub bugs: Vec<String>,
    /// Wall time, if measured by the caller.
    pub wall_ms: Option<u64>,
    /// Virtual time simulated.
    pub simulated_us: u64,
    /// Events.
    pub events: u64,
    /// Seeds with each fault kind enabled.
    pub seeds_with_fault_enabled: BTreeMap<FaultKind, u64>,
    /// Faults injected by kind.
    pub faults_injected: BTreeMap<FaultKind, u64>,
    /// Crashes by crash point.
    pub crash_points: BTreeMap<String, u64>,
    /// Operations by kind: (answered, failed, unknown).
    pub ops_by_kind: BTreeMap<String, (u64, u64, u64)>,
    /// Answered.
    pub ops_ok: u64,
    /// Failed without effect.
    pub ops_failed: u64,
    /// Unknown outcome.
    pub ops_unknown: u64,
    /// Snapshots written, installed from peers, compactions.
    pub snapshots_written: u64,
    /// Installed from a peer.
    pub snapshots_installed: u64,
    /// Receives resumed after a restart.
    pub snapshot_receives_resumed: u64,
    /// The most session-table entries (and bytes) in one snapshot, over every run.
    pub snapshot_sessions_max: (u64, u64),
    /// Compactions.
    pub compactions: u64,
    /// Store comparisons at equal slots.
    pub store_comparisons: u64,
    /// Historical reads compared.
    pub historical_reads: u64,
    /// Restarts that recovered behind.
    pub restarts_behind: u64,
    /// Watches checked.
    pub watches_checked: u64,
    /// Watches compared with every change in their range.
    pub watches_compared: u64,
    /// Events sent to watches.
    pub watch_events: u64,
    /// Watch events whose previous value was compared with the history's.
    pub prevs_compared: u64,
    /// Lock and election holds checked, sessions begun, observations checked.
    pub lock_holds: u64,
    pub lock_sessions: u64,
    pub lock_observations: u64,
    /// Watches cancelled by clients.
    pub watches_cancelled: u64,
    /// Watches ended by compaction.
    pub watches_compacted: u64,
    /// Membership changes by kind: (asked, done, refused, answer lost).
    pub changes: BTreeMap<String, (u64, u64, u64, u64)>,
    /// Members removed (stopped, their places wiped).
    pub members_retired: u64,
    /// Wiped members that regained their vote.
    pub members_rebuilt: u64,
    /// Leader leases: reads served under a lease, with no read-index round.
    pub leased_reads: u64,
    /// Leader leases: member processes paused (as SIGSTOP pauses one).
    pub pauses: u64,
    /// Violations by check.
    pub violation_counts: BTreeMap<MemberCheck, u64>,
    /// Linearizability verdicts.
    pub lincheck_ok: u64,
    /// Illegal.
    pub lincheck_illegal: u64,
    /// Unknown (never a pass).
    pub lincheck_unknown: u64,
    /// Seeds that failed, with their first violation.
    pub failing: Vec<(u64, String)>,
}

impl MemberCampaignReport {
    /// Sums `runs`.
    pub fn from_runs(runs: &[MemberRunReport]) -> MemberCampaignReport {
        let mut r = MemberCampaignReport::default();
        for run in runs {
            r.seeds_run += 1;
            r.nodes = run.nodes;
            r.faults = run.faults.to_string();
            r.bugs = run.bugs.clone();
            r.simulated_us += run.simulated_us;
            r.events += run.events;
            for k in &run.faults_enabled {
                *r.seeds_with_fault_enabled.entry(*k).or_insert(0) += 1;
            }
            add_counts(&mut r.faults_injected, &run.faults_injected);
            add_counts(&mut r.crash_points, &run.crash_points);
            for (k, (a, b, c)) in &run.ops_by_kind {
                let e = r.ops_by_kind.entry(k.clone()).or_insert((0, 0, 0));
                e.0 += a;
                e.1 += b;
                e.2 += c;
            }
            r.ops_ok += run.ops_ok;
            r.ops_failed += run.ops_failed;
            r.ops_unknown += run.ops_unknown;
            r.snapshots_written += run.snapshots_written;
            r.snapshots_installed += run.snapshots_installed;
            r.snapshot_receives_resumed += run.snapshot_receives_resumed;
            r.snapshot_sessions_max = r.snapshot_sessions_max.max(run.snapshot_sessions_max);
            r.compactions += run.compactions;
            r.store_comparisons += run.store_comparisons;
            r.historical_reads += run.historical_reads;
            r.restarts_behind += run.restarts_behind;
            r.watches_checked += run.watches_checked;
            r.watches_compared += run.watches_compared;
            r.watch_events += run.watch_events;
            r.prevs_compared += run.prevs_compared;
            r.lock_holds += run.lock_holds;
            r.lock_sessions += run.lock_sessions;
            r.lock_observations += run.lock_observations;
            r.watches_cancelled += run.watches_cancelled;
            r.watches_compacted += run.watches_compacted;
            for (k, (a, b, c, d)) in &run.changes {
                let e = r.changes.entry(k.clone()).or_default();
                e.0 += a;
                e.1 += b;
                e.2 += c;
                e.3 += d;
            }
            r.members_retired += run.members_retired;
            r.members_rebuilt += run.members_rebuilt;
            r.leased_reads += run.leased_reads;
            r.pauses += run.pauses;
            add_counts(&mut r.violation_counts, &run.violation_counts);
            match run.lincheck {
                Some(Verdict::Ok) => r.lincheck_ok += 1,
                Some(Verdict::Illegal) => r.lincheck_illegal += 1,
                _ => r.lincheck_unknown += 1,
            }
            if !run.passed() {
                let first = run
                    .violations
                    .first()
                    .map(|v| format!("{}: {}", v.check.name(), v.detail))
                    .or_else(|| run.lincheck_detail.clone())
                    .unwrap_or_default();
                r.failing.push((run.seed, first));
            }
        }
        r
    }

    /// No violation and no Unknown over every seed.
    pub fn passed(&self) -> bool {
        self.seeds_run > 0 && self.failing.is_empty()
    }
}

crate::campaign::impl_campaign_totals!(MemberCampaignReport, failing);

impl fmt::Display for MemberCampaignReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "member campaign: {} seeds, {} members, faults {}",
            self.seeds_run, self.nodes, self.faults
        )?;
        if !self.bugs.is_empty() {
            writeln!(f, "  planted bugs          {}", self.bugs.join(", "))?;
        }
        if let Some(ms) = self.wall_ms {
            writeln!(f, "  wall time             {:.1} s", ms as f64 / 1000.0)?;
        }
        writeln!(
            f,
            "  simulated time        {:.1} s",
            self.simulated_us as f64 / 1e6
        )?;
        writeln!(f, "  events                {}", self.events)?;
        writeln!(f, "  faults injected (seeds enabled / times fired):")?;
        let mut never = Vec::new();
        for k in FaultKind::ALL {
            let seeds = self.seeds_with_fault_enabled.get(&k).copied().unwrap_or(0);
            let fired = self.faults_injected.get(&k).copied().unwrap_or(0);
            if seeds > 0 || fired > 0 {
                writeln!(f, "    {:<20} {:>6} / {}", k.name(), seeds, fired)?;
            }
            if seeds > 0 && fired == 0 {
                never.push(k.name());
            }
        }
        if !never.is_empty() {
            writeln!(f, "  NEVER FIRED although enabled: {}", never.join(", "))?;
        }
        let hits: Vec<String> = self
            .crash_points
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        writeln!(f, "  crash points hit      {}", hits.join(", "))?;
        let missed: Vec<String> = super::CRASH_POINTS
            .iter()
            .map(|p| format!("{p:?}"))
            .filter(|p| !self.crash_points.contains_key(p))
            .collect();
        if !missed.is_empty() && self.crash_points.contains_key("RandomTime") {
            writeln!(f, "  crash points NEVER HIT: {}", missed.join(", "))?;
        }
        writeln!(
            f,
            "  snapshots             {} written, {} received from peers ({} receives resumed after a restart), {} log compactions, sessions {} at most ({} bytes)",
            self.snapshots_written, self.snapshots_installed, self.snapshot_receives_resumed, self.compactions,
            self.snapshot_sessions_max.0, self.snapshot_sessions_max.1
        )?;
        writeln!(
            f,
            "  operations            {} ok, {} failed, {} unknown",
            self.ops_ok, self.ops_failed, self.ops_unknown
        )?;
        for (k, (a, b, c)) in &self.ops_by_kind {
            writeln!(f, "    {k:<20} {a} ok, {b} failed, {c} unknown")?;
        }
        writeln!(
            f,
            "  checked               {} store comparisons at equal slots, {} historical reads, {} restarts behind",
            self.store_comparisons, self.historical_reads, self.restarts_behind
        )?;
        writeln!(
            f,
            "  watches               {} checked ({} against every change in range), {} events, {} cancelled and re-created, {} ended by compaction",
            self.watches_checked,
            self.watches_compared,
            self.watch_events,
            self.watches_cancelled,
            self.watches_compacted
        )?;
        writeln!(
            f,
            "  locks and elections   {} sessions, {} holds, {} observations; {} watch events' previous values compared",
            self.lock_sessions, self.lock_holds, self.lock_observations, self.prevs_compared
        )?;
        if self.leased_reads > 0 || self.pauses > 0 {
            writeln!(
                f,
                "  leader leases         {} leased reads, {} member processes paused",
                self.leased_reads, self.pauses
            )?;
        }
        if !self.changes.is_empty() || self.members_rebuilt > 0 {
            writeln!(
                f,
                "  membership            {} members removed and wiped, {} wiped members voting again",
                self.members_retired, self.members_rebuilt
            )?;
            for (k, (a, b, c, d)) in &self.changes {
                writeln!(
                    f,
                    "    {k:<20} {a} asked, {b} done, {c} refused, {d} answer lost"
                )?;
            }
        }
        writeln!(
            f,
            "  lincheck              {} ok, {} illegal, {} unknown",
            self.lincheck_ok, self.lincheck_illegal, self.lincheck_unknown
        )?;
        if self.violation_counts.is_empty() {
            writeln!(f, "  violations            0")?;
        } else {
            for (k, v) in &self.violation_counts {
                writeln!(f, "  VIOLATIONS {:<20} {v}", k.name())?;
            }
        }
        for (seed, first) in self.failing.iter().take(10) {
            writeln!(f, "  FAILED seed {seed}: {first}")?;
        }
        if self.failing.is_empty() {
            writeln!(f, "  result                PASS")?;
        } else {
            writeln!(
                f,
                "  result                FAIL ({} seeds)",
                self.failing.len()
            )?;
        }
        Ok(())
    }
}
