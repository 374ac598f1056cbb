//! The Fast Paxos simulator: the real [`FastNode`] cores, many single-decree instances per run,
//! many concurrent proposers, a lossy network and crashing nodes whose acceptor state is
//! durable.
//!
//! A run is a pure function of its [`FastSimConfig`]: one `ChaCha8Rng` (each node's retry
//! jitter comes from a generator derived from it), virtual time in microseconds, events
//! ordered by `(time, sequence)`.
//!
//! # A run
//!
//! 1. **Fault phase** ([`FastSimConfig::fault_phase_us`]): each instance gets one proposer, or
//!    (with the per-seed conflict rate) two or three proposing different values within a few
//!    milliseconds of each other, so that acceptors split: collisions. Proposers send to every
//!    node and resend every 100 ms until every node learned. Rates drawn per seed (swarm
//!    testing): message loss 0–20 %, duplication 0–10 %, delay up to 2–10 ms; nodes crash
//!    (losing everything but their acceptor state, persisted before any message that depends
//!    on it leaves) and restart later. Every node may start classic rounds on its timer.
//! 2. **Quiet phase**: every node up, no loss; only node 1 starts rounds (the paper's
//!    progress assumption, a single coordinator). The run ends when every node learned every
//!    instance, or fails liveness at the bound.
//!
//! # Checks
//!
//! Against a global oracle fed every vote an acceptor persists: **agreement** (at most one
//! value chosen per instance, counting a value chosen when a quorum of its round, as the
//! cores size it, voted for it; every learner learns that value), **validity** (every vote,
//! so every chosen value, was proposed for its instance). At the end, **liveness**. A panic of
//! a core or the driver is a violation too.
//!
//! # Figures
//!
//! How instances were first learned (in the fast round, in its recovery round, or in a
//! classic round with phase 1), collisions and coordinated recoveries, classic rounds, and the
//! message delays from proposal to the first learner: each message carries the length of the
//! causal chain of messages that led to it (a proposal is 1), and an instance's figure is the
//! length at the phase-2b message that completed the first learner's quorum.

use crate::campaign::{add_counts, note_violations};
use crate::rng::{below, chance_permille, range};
use paxos::fast::{
    FastConfig, FastCounters, FastDurable, FastMessage, FastNode, FastOptions, FastPersist, Round,
    RoundMode, Value,
};
use paxos::{NodeId, PlantedBugs};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

/// Proposers resend their value this often until every node learned it.
const RESEND_US: u64 = 100_000;
/// Proposers of a conflicting instance propose within this much of each other.
const CONFLICT_WINDOW_US: u64 = 2_000;
/// Proposer ids start here (nodes are 1..=n).
const PROPOSER_ID_BASE: u64 = 1_000;

/// What a Fast Paxos run simulates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FastSimConfig {
    /// The seed.
    pub seed: u64,
    /// Nodes (each an acceptor, a learner and a coordinator), 1 to 16.
    pub nodes: usize,
    /// Single-decree instances per run.
    pub instances: usize,
    /// Fast (round 0 fast) or classic (round 0 classic, the coordinator on the path).
    pub mode: RoundMode,
    /// Planted bugs.
    pub bugs: PlantedBugs,
    /// Faults on (loss, duplication, crashes); off for benchmarks.
    pub faults: bool,
    /// Chance, per mille, that an instance has two or three conflicting proposers; `None`:
    /// drawn per seed.
    pub conflict_permille: Option<u32>,
    /// Longest message delay, microseconds; `None`: drawn per seed (2 to 10 ms).
    pub delay_max_us: Option<u64>,
    /// Length of the fault phase, microseconds (proposals start in its first half).
    pub fault_phase_us: u64,
    /// Each node ticks every this many microseconds.
    pub tick_us: u64,
    /// Every node must have learned every instance this long after faults stopped.
    pub liveness_bound_us: u64,
}

impl FastSimConfig {
    /// The defaults for `seed`: `nodes` nodes, 6 instances, fast mode, faults on.
    pub fn new(seed: u64, nodes: usize) -> FastSimConfig {
        FastSimConfig {
            seed,
            nodes,
            instances: 6,
            mode: RoundMode::Fast,
            bugs: PlantedBugs::none(),
            faults: true,
            conflict_permille: None,
            delay_max_us: None,
            fault_phase_us: 400_000,
            tick_us: 2_000,
            liveness_bound_us: 3_000_000,
        }
    }
}

/// A check that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FastCheck {
    /// Two values chosen, or a learner learned a value not chosen.
    Agreement,
    /// A vote (so perhaps a chosen value) for a value never proposed.
    Validity,
    /// Not every node learned every instance within the bound after faults stopped.
    Liveness,
    /// A core or the driver panicked.
    NoPanic,
}

/// How an instance was first learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LearnedIn {
    /// From a fast quorum of the fast round: no collision.
    FastRound,
    /// From the recovery round after a collision (coordinated recovery).
    RecoveryRound,
    /// From a classic round: round 0 in classic mode, or a round with phase 1.
    ClassicRound,
}

/// The figures of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FastRunReport {
    /// The seed.
    pub seed: u64,
    /// Nodes.
    pub nodes: usize,
    /// Instances.
    pub instances: usize,
    /// Planted bugs by name.
    pub bugs: Vec<String>,
    /// Virtual time simulated, microseconds.
    pub simulated_us: u64,
    /// Instances with more than one proposer.
    pub conflicting_instances: u64,
    /// Instances learned, by how the first learner learned them.
    pub learned_in: BTreeMap<LearnedIn, u64>,
    /// Message delays from proposal to the first learner, one per learned instance.
    pub delays: Vec<u32>,
    /// Microseconds from the first proposal to the first learner, one per learned instance.
    pub latencies_us: Vec<u64>,
    /// Core counters summed over nodes, instances and incarnations.
    pub collisions: u64,
    /// Coordinated recoveries started.
    pub recoveries: u64,
    /// Classic rounds with phase 1 started.
    pub classic_rounds: u64,
    /// Messages sent, lost and duplicated.
    pub messages: u64,
    /// Messages lost.
    pub lost: u64,
    /// Messages duplicated.
    pub duplicated: u64,
    /// Node crashes.
    pub crashes: u64,
    /// Time from faults stopping to every node learning every instance, microseconds.
    pub learned_all_after_us: Option<u64>,
    /// Violations, in full.
    pub violations: Vec<(FastCheck, String)>,
}

impl FastRunReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        let bug = crate::campaign::bug_flag(&self.bugs);
        format!(
            "synod sim --protocol fast --seed {} --nodes {}{bug}",
            self.seed, self.nodes
        )
    }
}

crate::campaign::impl_seed_report!(FastRunReport);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    Deliver {
        from: NodeId,
        to: NodeId,
        instance: usize,
        msg: FastMessage,
        depth: u32,
    },
    Tick(usize),
    Propose {
        instance: usize,
        proposer: usize,
    },
    Crash(usize),
    Restart(usize),
    Quiet,
}

struct SimNode {
    up: bool,
    /// One core per instance (`None` while down).
    cores: Vec<Option<FastNode>>,
    /// The acceptor state on disk, per instance.
    disk: Vec<FastDurable>,
    /// Longest causal chain seen, per instance (what a timer's messages extend).
    depth_seen: Vec<u32>,
    rng: ChaCha8Rng,
    counters_before: FastCounters,
}

struct Instance {
    proposals: Vec<Value>,
    first_proposal_us: Option<u64>,
    /// Votes persisted: round -> acceptor -> value.
    votes: BTreeMap<Round, BTreeMap<NodeId, Value>>,
    chosen: Option<Value>,
    learned_by: Vec<bool>,
    first_learned: bool,
}

/// A Fast Paxos simulation.
pub struct FastSimulation {
    config: FastSimConfig,
    core_config: FastConfig,
    rng: ChaCha8Rng,
    now_us: u64,
    seq: u64,
    events: BTreeMap<(u64, u64), Event>,
    nodes: Vec<SimNode>,
    instances: Vec<Instance>,
    loss_permille: u32,
    dup_permille: u32,
    delay_us: Range<u64>,
    quiet: bool,
    report: FastRunReport,
}

fn add(total: &mut FastCounters, c: FastCounters) {
    total.collisions += c.collisions;
    total.recoveries += c.recoveries;
    total.classic_rounds += c.classic_rounds;
    total.conflicting_quorums += c.conflicting_quorums;
}

impl FastSimulation {
    /// A simulation of `config`.
    ///
    /// # Panics
    /// If `config.nodes` is not 1 to 16.
    pub fn new(config: FastSimConfig) -> FastSimulation {
        let core_config = FastConfig::new(config.nodes, config.mode)
            .expect("nodes must be 1 to 16")
            .with_planted_bugs(config.bugs);
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let (loss_permille, dup_permille, crashes) = if config.faults {
            (
                range(&mut rng, 0, 200) as u32,
                range(&mut rng, 0, 100) as u32,
                range(&mut rng, 0, 4),
            )
        } else {
            (0, 0, 0)
        };
        let delay_max = config
            .delay_max_us
            .unwrap_or_else(|| range(&mut rng, 2_000, 10_000));
        let conflict = config
            .conflict_permille
            .unwrap_or_else(|| range(&mut rng, 0, 1000) as u32);
        let mut sim = FastSimulation {
            core_config,
            now_us: 0,
            seq: 0,
            events: BTreeMap::new(),
            nodes: Vec::new(),
            instances: Vec::new(),
            loss_permille,
            dup_permille,
            delay_us: 500..delay_max.max(501),
            quiet: false,
            report: FastRunReport {
                seed: config.seed,
                nodes: config.nodes,
                instances: config.instances,
                bugs: crate::sim::bug_names(config.bugs),
                ..FastRunReport::default()
            },
            rng,
            config,
        };
        for i in 0..sim.config.nodes {
            let node_rng = ChaCha8Rng::seed_from_u64(sim.rng.next_u64());
            sim.nodes.push(SimNode {
                up: true,
                cores: vec![None; sim.config.instances],
                disk: vec![FastDurable::default(); sim.config.instances],
                depth_seen: vec![0; sim.config.instances],
                rng: node_rng,
                counters_before: FastCounters::default(),
            });
            sim.start_node(i);
            let first_tick = range(&mut sim.rng, 1, sim.config.tick_us);
            sim.schedule(first_tick, Event::Tick(i));
        }
        for instance in 0..sim.config.instances {
            let proposers = if chance_permille(&mut sim.rng, conflict) {
                sim.report.conflicting_instances += 1;
                range(&mut sim.rng, 2, 3) as usize
            } else {
                1
            };
            let at = range(&mut sim.rng, 0, sim.config.fault_phase_us / 2);
            for p in 0..proposers {
                let offset = if p == 0 {
                    0
                } else {
                    range(&mut sim.rng, 0, CONFLICT_WINDOW_US)
                };
                sim.schedule(
                    at + offset,
                    Event::Propose {
                        instance,
                        proposer: p,
                    },
                );
            }
            sim.instances.push(Instance {
                proposals: (0..proposers)
                    .map(|p| format!("i{instance}p{p}").into_bytes())
                    .collect(),
                first_proposal_us: None,
                votes: BTreeMap::new(),
                chosen: None,
                learned_by: vec![false; sim.config.nodes],
                first_learned: false,
            });
        }
        for _ in 0..crashes {
            let node = below(&mut sim.rng, sim.config.nodes as u64) as usize;
            let at = range(&mut sim.rng, 1, sim.config.fault_phase_us);
            sim.schedule(at, Event::Crash(node));
        }
        sim.schedule(sim.config.fault_phase_us, Event::Quiet);
        sim
    }

    fn schedule(&mut self, at_us: u64, event: Event) {
        self.seq += 1;
        self.events.insert((at_us, self.seq), event);
    }

    fn violation(&mut self, check: FastCheck, msg: String) {
        if self.report.violations.len() < 10 {
            self.report.violations.push((check, msg));
        }
    }

    /// Creates (or recreates, from its disk) every core of node `i`.
    fn start_node(&mut self, i: usize) {
        let id = NodeId(i as u64 + 1);
        let options = FastOptions::default();
        for inst in 0..self.config.instances {
            let durable = self.nodes[i].disk[inst].clone();
            let mut core = FastNode::recover(
                id,
                FastConfig::new(self.config.nodes, self.config.mode).expect("checked in new"),
                options,
                self.config.bugs,
                durable,
            )
            .expect("node ids are 1..=nodes");
            core.set_may_lead(!self.quiet || i == 0);
            self.nodes[i].cores[inst] = Some(core);
            self.nodes[i].depth_seen[inst] = 0;
            self.drain(i, inst, 0);
        }
    }

    /// Takes a core's outputs: persist (and feed the oracle), then send, then learn.
    fn drain(&mut self, i: usize, inst: usize, depth: u32) {
        loop {
            let Some(core) = self.nodes[i].cores[inst].as_mut() else {
                return;
            };
            let ready = core.ready();
            if let Some(batch) = &ready.persist {
                core.persisted(batch.seq);
            }
            let persisted = ready.persist.is_some();
            if let Some(batch) = ready.persist {
                for op in &batch.ops {
                    self.nodes[i].disk[inst].apply(op);
                    if let FastPersist::Vote((round, value)) = op {
                        self.record_vote(inst, NodeId(i as u64 + 1), *round, value.clone());
                    }
                }
            }
            for out in ready.send {
                self.send(NodeId(i as u64 + 1), out.to, inst, out.msg, depth + 1);
            }
            if let Some(value) = ready.learned {
                // The chain that completed the quorum is the longest seen: the other votes
                // of the quorum arrived before the last one, perhaps along longer chains.
                let chain = self.nodes[i].depth_seen[inst].max(depth);
                self.learned(i, inst, value, chain);
            }
            if !persisted {
                return;
            }
        }
    }

    fn send(&mut self, from: NodeId, to: NodeId, instance: usize, msg: FastMessage, depth: u32) {
        self.report.messages += 1;
        if chance_permille(&mut self.rng, self.loss_permille) {
            self.report.lost += 1;
            return;
        }
        let copies = if chance_permille(&mut self.rng, self.dup_permille) {
            self.report.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = range(&mut self.rng, self.delay_us.start, self.delay_us.end);
            let event = Event::Deliver {
                from,
                to,
                instance,
                msg: msg.clone(),
                depth,
            };
            self.schedule(self.now_us + delay, event);
        }
    }

    fn record_vote(&mut self, inst: usize, acceptor: NodeId, round: Round, value: Value) {
        if !self.instances[inst].proposals.contains(&value) {
            let msg = format!(
                "instance {inst}: {acceptor} voted {:?} in {round}, never proposed",
                String::from_utf8_lossy(&value)
            );
            self.violation(FastCheck::Validity, msg);
        }
        let quorum = self.core_config.quorum(round);
        let voters = self.instances[inst].votes.entry(round).or_default();
        if let Some(earlier) = voters.insert(acceptor, value.clone()) {
            assert_eq!(earlier, value, "{acceptor} voted twice in {round}");
        }
        let count = voters.values().filter(|v| **v == value).count();
        if count < quorum {
            return;
        }
        match self.instances[inst].chosen.clone() {
            None => self.instances[inst].chosen = Some(value),
            Some(c) if c != value => {
                let msg = format!(
                    "instance {inst}: {:?} chosen in {round} after {:?} was chosen",
                    String::from_utf8_lossy(&value),
                    String::from_utf8_lossy(&c)
                );
                self.violation(FastCheck::Agreement, msg);
            }
            Some(_) => {}
        }
    }

    fn learned(&mut self, i: usize, inst: usize, value: Value, depth: u32) {
        let chosen = self.instances[inst].chosen.clone();
        if chosen.as_ref() != Some(&value) {
            let msg = format!(
                "instance {inst}: n{} learned {:?}, chosen is {:?}",
                i + 1,
                String::from_utf8_lossy(&value),
                chosen.map(|c| String::from_utf8_lossy(&c).into_owned())
            );
            self.violation(FastCheck::Agreement, msg);
        }
        self.instances[inst].learned_by[i] = true;
        if self.instances[inst].first_learned {
            return;
        }
        self.instances[inst].first_learned = true;
        let round = self.nodes[i].cores[inst]
            .as_ref()
            .and_then(|c| c.learned_round());
        let how = match round {
            Some(r) if self.core_config.is_fast(r) => LearnedIn::FastRound,
            Some(r) if r.recovery => LearnedIn::RecoveryRound,
            _ => LearnedIn::ClassicRound,
        };
        *self.report.learned_in.entry(how).or_default() += 1;
        self.report.delays.push(depth);
        let since = self.instances[inst].first_proposal_us.unwrap_or(0);
        self.report.latencies_us.push(self.now_us - since);
    }

    fn all_learned(&self) -> bool {
        self.instances
            .iter()
            .all(|inst| inst.learned_by.iter().all(|l| *l))
    }

    /// Processes one event; false when the run is over.
    pub fn step(&mut self) -> bool {
        if self.quiet && self.all_learned() {
            return false;
        }
        let Some(((at, _), event)) = self.events.pop_first() else {
            return false;
        };
        if self.quiet && at > self.config.fault_phase_us + self.config.liveness_bound_us {
            return false;
        }
        self.now_us = at;
        match event {
            Event::Deliver {
                from,
                to,
                instance,
                msg,
                depth,
            } => {
                let i = (to.0 - 1) as usize;
                if !self.nodes[i].up {
                    return true;
                }
                self.nodes[i].depth_seen[instance] = self.nodes[i].depth_seen[instance].max(depth);
                if let Some(core) = self.nodes[i].cores[instance].as_mut() {
                    core.step(from, msg);
                }
                self.drain(i, instance, depth);
            }
            Event::Tick(i) => {
                if self.nodes[i].up {
                    for inst in 0..self.config.instances {
                        let node = &mut self.nodes[i];
                        if let Some(core) = node.cores[inst].as_mut() {
                            core.tick(&mut node.rng);
                        }
                        let depth = self.nodes[i].depth_seen[inst];
                        self.drain(i, inst, depth);
                    }
                }
                self.schedule(at + self.config.tick_us, Event::Tick(i));
            }
            Event::Propose { instance, proposer } => self.propose(instance, proposer),
            Event::Crash(i) => self.crash(i),
            Event::Restart(i) => {
                if !self.nodes[i].up {
                    self.nodes[i].up = true;
                    self.start_node(i);
                }
            }
            Event::Quiet => self.go_quiet(),
        }
        true
    }

    fn propose(&mut self, instance: usize, proposer: usize) {
        let inst = &mut self.instances[instance];
        inst.first_proposal_us.get_or_insert(self.now_us);
        if inst.learned_by.iter().all(|l| *l) {
            return;
        }
        let value = inst.proposals[proposer].clone();
        let from = NodeId(PROPOSER_ID_BASE + proposer as u64);
        for to in 1..=self.config.nodes as u64 {
            let msg = FastMessage::Propose {
                value: value.clone(),
            };
            self.send(from, NodeId(to), instance, msg, 1);
        }
        self.schedule(
            self.now_us + RESEND_US,
            Event::Propose { instance, proposer },
        );
    }

    fn crash(&mut self, i: usize) {
        if !self.nodes[i].up || self.quiet {
            return;
        }
        self.report.crashes += 1;
        let node = &mut self.nodes[i];
        node.up = false;
        for core in node.cores.iter_mut() {
            if let Some(c) = core.take() {
                add(&mut node.counters_before, c.counters());
            }
        }
        let down_us = range(&mut self.rng, 10_000, 100_000);
        self.schedule(self.now_us + down_us, Event::Restart(i));
    }

    fn go_quiet(&mut self) {
        self.quiet = true;
        self.loss_permille = 0;
        self.dup_permille = 0;
        for i in 0..self.nodes.len() {
            if !self.nodes[i].up {
                self.nodes[i].up = true;
                self.start_node(i);
            }
            for core in self.nodes[i].cores.iter_mut().flatten() {
                core.set_may_lead(i == 0);
            }
        }
    }

    /// Runs to the end and reports.
    pub fn run(mut self) -> FastRunReport {
        while self.step() {}
        self.finish()
    }

    /// The report, with the end-of-run checks.
    pub fn finish(mut self) -> FastRunReport {
        if self.quiet && self.all_learned() {
            self.report.learned_all_after_us = Some(self.now_us - self.config.fault_phase_us);
        } else {
            let missing = self
                .instances
                .iter()
                .filter(|i| !i.learned_by.iter().all(|l| *l))
                .count();
            let msg = format!(
                "{missing} instances not learned by every node {} µs after faults stopped",
                self.config.liveness_bound_us
            );
            self.violation(FastCheck::Liveness, msg);
        }
        let mut total = FastCounters::default();
        for node in &self.nodes {
            add(&mut total, node.counters_before);
            for core in node.cores.iter().flatten() {
                add(&mut total, core.counters());
            }
        }
        if total.conflicting_quorums > 0 {
            let msg = format!(
                "learners saw {} quorums for a value other than the one they learned",
                total.conflicting_quorums
            );
            self.violation(FastCheck::Agreement, msg);
        }
        self.report.collisions = total.collisions;
        self.report.recoveries = total.recoveries;
        self.report.classic_rounds = total.classic_rounds;
        self.report.simulated_us = self.now_us;
        self.report
    }
}

impl crate::campaign::SeedRun for FastSimConfig {
    type Report = FastRunReport;
    fn run(self) -> FastRunReport {
        FastSimulation::new(self).run()
    }
    fn panicked(&self, message: String) -> FastRunReport {
        FastRunReport {
            seed: self.seed,
            nodes: self.nodes,
            instances: self.instances,
            bugs: crate::sim::bug_names(self.bugs),
            violations: vec![(FastCheck::NoPanic, message)],
            ..FastRunReport::default()
        }
    }
}

/// Runs one seed; a panic is a `NoPanic` violation.
pub fn run_fast_seed(config: FastSimConfig) -> FastRunReport {
    crate::campaign::run_guarded(config)
}

/// Runs seeds `seeds` with `make(seed)` configurations on `threads` threads; reports sorted
/// by seed, so the figures do not depend on the thread count.
pub fn run_fast_seeds(
    seeds: Range<u64>,
    threads: usize,
    make: &(dyn Fn(u64) -> FastSimConfig + Sync),
) -> Vec<FastRunReport> {
    crate::campaign::run_seed_range(seeds, threads, &|seed| run_fast_seed(make(seed)), &|_| {})
}

/// A campaign's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FastCampaignReport {
    /// Nodes per run (the last run's).
    pub nodes: usize,
    /// Seeds run.
    pub seeds_run: u64,
    /// Instances run, and those with conflicting proposers.
    pub instances: u64,
    /// Instances with two or three proposers.
    pub conflicting_instances: u64,
    /// Instances by how they were first learned.
    pub learned_in: BTreeMap<LearnedIn, u64>,
    /// Collisions detected, recoveries started, classic rounds started.
    pub collisions: u64,
    /// Coordinated recoveries.
    pub recoveries: u64,
    /// Classic rounds with phase 1.
    pub classic_rounds: u64,
    /// Messages sent, lost, duplicated; node crashes.
    pub messages: u64,
    /// Messages lost.
    pub lost: u64,
    /// Messages duplicated.
    pub duplicated: u64,
    /// Node crashes.
    pub crashes: u64,
    /// Violations by check.
    pub violations: BTreeMap<FastCheck, u64>,
    /// Failing seeds with their first violation.
    pub failing_seeds: Vec<(u64, String)>,
    /// Slowest time from faults stopping to all learned, microseconds.
    pub learned_all_after_us_max: u64,
}

impl FastCampaignReport {
    /// Sums runs.
    pub fn from_runs(runs: &[FastRunReport]) -> FastCampaignReport {
        let mut r = FastCampaignReport::default();
        for run in runs {
            r.nodes = run.nodes;
            r.seeds_run += 1;
            r.instances += run.instances as u64;
            r.conflicting_instances += run.conflicting_instances;
            add_counts(&mut r.learned_in, &run.learned_in);
            r.collisions += run.collisions;
            r.recoveries += run.recoveries;
            r.classic_rounds += run.classic_rounds;
            r.messages += run.messages;
            r.lost += run.lost;
            r.duplicated += run.duplicated;
            r.crashes += run.crashes;
            r.learned_all_after_us_max = r
                .learned_all_after_us_max
                .max(run.learned_all_after_us.unwrap_or(0));
            note_violations(
                &mut r.violations,
                &mut r.failing_seeds,
                run.seed,
                &run.violations,
            );
        }
        r
    }

    /// Total violations.
    pub fn violation_total(&self) -> u64 {
        self.violations.values().sum()
    }

    /// Whether every run passed.
    pub fn passed(&self) -> bool {
        self.violation_total() == 0
    }

    /// Fault kinds that never fired (loss, duplication, crash), by name: a campaign in which
    /// one never fired did not test it.
    pub fn never_fired(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for (name, n) in [
            ("message loss", self.lost),
            ("duplication", self.duplicated),
            ("node crash", self.crashes),
            ("collision", self.collisions),
            ("coordinated recovery", self.recoveries),
        ] {
            if n == 0 {
                out.push(name);
            }
        }
        out
    }
}

crate::campaign::impl_campaign_totals!(FastCampaignReport, failing_seeds);

impl fmt::Display for FastCampaignReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "fast-paxos campaign: {} nodes", self.nodes)?;
        writeln!(f, "  seeds run             {}", self.seeds_run)?;
        writeln!(
            f,
            "  instances             {} ({} with conflicting proposers)",
            self.instances, self.conflicting_instances
        )?;
        for (k, n) in &self.learned_in {
            writeln!(f, "    first learned in {k:?}: {n}")?;
        }
        writeln!(
            f,
            "  collisions            {} ({} coordinated recoveries, {} classic rounds)",
            self.collisions, self.recoveries, self.classic_rounds
        )?;
        writeln!(
            f,
            "  messages              {} ({} lost, {} duplicated); {} node crashes",
            self.messages, self.lost, self.duplicated, self.crashes
        )?;
        writeln!(
            f,
            "  slowest to learn all  {} µs after faults stopped",
            self.learned_all_after_us_max
        )?;
        let never = self.never_fired();
        if never.is_empty() {
            writeln!(f, "  every fault kind fired")?;
        } else {
            writeln!(f, "  NEVER FIRED           {}", never.join(", "))?;
        }
        writeln!(f, "  violations            {}", self.violation_total())?;
        for (check, n) in &self.violations {
            writeln!(f, "    {check:?}: {n}")?;
        }
        for (seed, msg) in self.failing_seeds.iter().take(5) {
            writeln!(f, "  seed {seed}: {msg}")?;
        }
        Ok(())
    }
}

/// A campaign over `seeds` with the default configuration.
pub fn run_fast_campaign(
    seeds: Range<u64>,
    nodes: usize,
    bugs: PlantedBugs,
    threads: usize,
) -> FastCampaignReport {
    let runs = run_fast_seeds(seeds, threads, &|seed| {
        let mut c = FastSimConfig::new(seed, nodes);
        c.bugs = bugs;
        c
    });
    FastCampaignReport::from_runs(&runs)
}
