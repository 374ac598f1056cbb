//! The Paxos Commit simulator: the real [`paxos::commit`] cores of resource managers,
//! acceptors and leaders, many concurrent transactions, a lossy duplicating reordering network,
//! and crashes of every part with recovery from what each node persisted. Two-phase commit runs
//! in the same harness as Paxos Commit with F = 0 (the coordinator is the one acceptor).
//!
//! A run is a pure function of its [`CommitSimConfig`]: one seeded `ChaCha8Rng` draws the
//! fault plan, the transactions, every delay and vote; time is virtual (microseconds); events
//! are ordered by `(time, sequence number)`. Every event is folded into a trace hash (and, if
//! asked, written as a line), so two runs of one seed can be compared byte for byte.
//!
//! Checks, after every step and at the end ([`CommitCheck`]):
//! - agreement: every RM and leader that learns or decides an outcome for a transaction learns
//!   the same one;
//! - validity: Committed only if every participant's Prepared vote was durable first;
//! - liveness: once faults stop (every crashed node restarted, the network reliable), every
//!   participant of every transaction learns its outcome within [`CommitSimConfig::liveness_us`].
//!   A transaction that no node ever heard of (its initiator crashed before its vote was durable
//!   and its BeginCommit was lost) is counted as vanished, not checked. Under two-phase commit
//!   with its coordinator lost for good, an undecided transaction is *blocked*: the expected,
//!   counted outcome that Paxos Commit exists to avoid, not a violation.
//!
//! ```
//! use sim::commit::{run_commit_seed, CommitProtocol, CommitSimConfig};
//!
//! let report = run_commit_seed(CommitSimConfig::new(3, CommitProtocol::Paxos, 3, 1));
//! assert!(report.passed(), "{report:?}");
//! assert!(report.committed + report.aborted > 0);
//! ```

use crate::campaign::{add_counts, fmt_every_count, never_fired};
use crate::fnv::Fnv;
use crate::report::fmt_us;
use crate::rng::{below, chance_permille, range};
use paxos::commit::{
    paxos_commit, two_phase_commit, CommitConfig, CommitDurable, CommitMessage, CommitNode,
    CommitOptions, CommitPersist, Outcome, Roles, TxnId, Vote,
};
use paxos::{NodeId, PersistSeq, PlantedBugs};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Range;

/// Which atomic commitment protocol a run drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommitProtocol {
    /// Paxos Commit: 2F+1 acceptors, a coordinator and a backup leader.
    Paxos,
    /// Two-phase commit: F = 0, the coordinator is the only acceptor and leader.
    TwoPhase,
}

impl CommitProtocol {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            CommitProtocol::Paxos => "commit",
            CommitProtocol::TwoPhase => "2pc",
        }
    }
}

/// Faults the commit simulator injects, as counted in the figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommitFault {
    /// A message dropped.
    Loss,
    /// A message delivered twice.
    Duplicate,
    /// A message given extra random delay, so it overtakes or is overtaken.
    Reorder,
    /// A message held for a long time (tens of milliseconds).
    Delay,
    /// A resource manager crashed (restarted later from its persisted state).
    CrashRm,
    /// An acceptor crashed.
    CrashAcceptor,
    /// A leader crashed (restarted later).
    CrashLeader,
    /// The coordinator crashed and never came back.
    CoordinatorLost,
}

impl CommitFault {
    /// Every kind.
    pub const ALL: [CommitFault; 8] = [
        CommitFault::Loss,
        CommitFault::Duplicate,
        CommitFault::Reorder,
        CommitFault::Delay,
        CommitFault::CrashRm,
        CommitFault::CrashAcceptor,
        CommitFault::CrashLeader,
        CommitFault::CoordinatorLost,
    ];
}

/// The checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommitCheck {
    /// Two different outcomes learned or decided for one transaction.
    Agreement,
    /// Committed although some participant had not durably voted Prepared.
    Validity,
    /// A participant still without the outcome once faults stopped plus the bound.
    Liveness,
    /// The core or the simulator panicked.
    NoPanic,
}

/// Per-seed fault rates (swarm testing: each kind on or off per seed).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CommitFaultPlan {
    /// Per-mille of messages lost.
    pub loss_permille: u32,
    /// Per-mille duplicated.
    pub duplicate_permille: u32,
    /// Largest extra delay for reordering, µs (0: off).
    pub reorder_us: u64,
    /// Per-mille held for a long delay.
    pub delay_permille: u32,
    /// Crashes planned per kind.
    pub crashes: BTreeMap<CommitFault, u32>,
    /// When the coordinator is lost for good, if it is.
    pub coordinator_lost_at_us: Option<u64>,
}

impl CommitFaultPlan {
    fn draw(rng: &mut ChaCha8Rng) -> CommitFaultPlan {
        let on = |rng: &mut ChaCha8Rng| chance_permille(rng, 500);
        let mut plan = CommitFaultPlan::default();
        if on(rng) {
            plan.loss_permille = range(rng, 10, 200) as u32;
        }
        if on(rng) {
            plan.duplicate_permille = range(rng, 10, 300) as u32;
        }
        if on(rng) {
            plan.reorder_us = range(rng, 500, 5_000);
        }
        if on(rng) {
            plan.delay_permille = range(rng, 5, 50) as u32;
        }
        for kind in [
            CommitFault::CrashRm,
            CommitFault::CrashAcceptor,
            CommitFault::CrashLeader,
        ] {
            if on(rng) {
                plan.crashes.insert(kind, range(rng, 1, 4) as u32);
            }
        }
        if chance_permille(rng, 250) {
            plan.coordinator_lost_at_us = Some(0);
        }
        plan
    }

    /// Kinds this plan switched on.
    pub fn enabled(&self) -> Vec<CommitFault> {
        let mut out = Vec::new();
        for (on, kind) in [
            (self.loss_permille > 0, CommitFault::Loss),
            (self.duplicate_permille > 0, CommitFault::Duplicate),
            (self.reorder_us > 0, CommitFault::Reorder),
            (self.delay_permille > 0, CommitFault::Delay),
            (
                self.coordinator_lost_at_us.is_some(),
                CommitFault::CoordinatorLost,
            ),
        ] {
            if on {
                out.push(kind);
            }
        }
        out.extend(self.crashes.keys().copied());
        out.sort();
        out
    }
}

/// One run's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitSimConfig {
    /// The seed.
    pub seed: u64,
    /// Paxos Commit or two-phase commit.
    pub protocol: CommitProtocol,
    /// Resource managers.
    pub rms: usize,
    /// F: acceptors are 2F+1 (ignored by two-phase commit, which is F = 0).
    pub f: usize,
    /// Transactions begun during the fault phase (None: drawn per seed, 10 to 40).
    pub txns: Option<usize>,
    /// Whether the nemesis injects faults (None: drawn per seed).
    pub nemesis: bool,
    /// Planted bugs.
    pub bugs: PlantedBugs,
    /// Virtual time per tick, µs.
    pub tick_us: u64,
    /// One-way message latency range, µs.
    pub latency_us: (u64, u64),
    /// Time to make a persist batch durable, µs.
    pub persist_us: (u64, u64),
    /// Length of the fault phase, µs: transactions begin and faults happen in it.
    pub fault_phase_us: u64,
    /// After the fault phase, how long every transaction has to finish, µs.
    pub liveness_us: u64,
    /// Per-mille of votes that are Aborted (None: drawn per seed, 0 to 300).
    pub abort_permille: Option<u32>,
    /// Keep every trace line (the hash is always kept).
    pub trace: bool,
    /// A scripted coordinator crash: `(at, back after)`, `None` for never back. Replaces
    /// the drawn plan's loss of the coordinator.
    pub coordinator_crash: Option<(u64, Option<u64>)>,
}

impl CommitSimConfig {
    /// Defaults for a seed.
    pub fn new(seed: u64, protocol: CommitProtocol, rms: usize, f: usize) -> CommitSimConfig {
        CommitSimConfig {
            seed,
            protocol,
            rms,
            f,
            txns: None,
            nemesis: true,
            bugs: PlantedBugs::none(),
            tick_us: 2_000,
            latency_us: (200, 1_000),
            persist_us: (50, 500),
            fault_phase_us: 1_000_000,
            liveness_us: 3_000_000,
            abort_permille: None,
            trace: false,
            coordinator_crash: None,
        }
    }

    /// The command that replays this seed.
    pub fn replay_command(&self) -> String {
        let bug = paxos::Bug::ALL
            .iter()
            .find(|b| self.bugs.has(**b))
            .map(|b| format!(" --bug {}", b.name()))
            .unwrap_or_default();
        format!(
            "synod sim --protocol {} --seed {} --rms {} --f {}{bug}",
            self.protocol.name(),
            self.seed,
            self.rms,
            self.f
        )
    }
}

/// The figures of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CommitRunReport {
    /// The seed.
    pub seed: u64,
    /// Transactions begun.
    pub txns: u64,
    /// Transactions every participant learned as committed.
    pub committed: u64,
    /// ... as aborted.
    pub aborted: u64,
    /// Two-phase commit only: undecided at the end because the coordinator was lost.
    pub blocked: u64,
    /// Transactions no node ever heard of (not checked).
    pub vanished: u64,
    /// Participants of decided transactions that never heard of them (no vote, nothing held),
    /// left without the outcome because every leader that knew was lost or down meanwhile.
    pub rms_unheard: u64,
    /// Fault kinds switched on.
    pub faults_enabled: Vec<CommitFault>,
    /// Faults injected by kind.
    pub faults_injected: BTreeMap<CommitFault, u64>,
    /// Violations by check.
    pub violation_counts: BTreeMap<CommitCheck, u64>,
    /// The first violations, in words.
    pub violations: Vec<String>,
    /// Messages sent (duplicates not counted twice).
    pub messages_sent: u64,
    /// Leader takeovers (phase 1 runs).
    pub phase1_runs: u64,
    /// Per decided transaction, µs from begin until its last participant learned.
    pub latencies_us: Vec<u64>,
    /// Virtual time simulated, µs.
    pub simulated_us: u64,
    /// Events processed.
    pub events: u64,
    /// FNV-1a hash of the trace.
    pub trace_hash: u64,
    /// Replay command.
    pub replay: String,
}

crate::campaign::impl_seed_report!(CommitRunReport);

impl CommitRunReport {
    /// The command that replays this seed.
    pub fn replay_command(&self) -> String {
        self.replay.clone()
    }

    /// No check failed.
    pub fn passed(&self) -> bool {
        self.violation_counts.is_empty()
    }

    fn violation(&mut self, check: CommitCheck, what: String) {
        *self.violation_counts.entry(check).or_default() += 1;
        if self.violations.len() < 5 {
            self.violations.push(format!("{check:?}: {what}"));
        }
    }
}

#[derive(Clone, Debug)]
enum Event {
    Deliver {
        from: NodeId,
        to: NodeId,
        msg: CommitMessage,
    },
    Tick {
        node: usize,
        incarnation: u64,
    },
    PersistDone {
        node: usize,
        incarnation: u64,
        seq: PersistSeq,
        ops: Vec<CommitPersist>,
    },
    Begin {
        txn: usize,
    },
    Crash {
        node: usize,
        kind: CommitFault,
        down_us: Option<u64>,
    },
    Restart {
        node: usize,
    },
    Quiet,
}

struct SimNode {
    id: NodeId,
    roles: Roles,
    core: CommitNode,
    durable: CommitDurable,
    up: bool,
    lost: bool,
    incarnation: u64,
    disk_free_at_us: u64,
}

struct Txn {
    id: TxnId,
    rms: Vec<NodeId>,
    began_at_us: Option<u64>,
    learned: BTreeMap<NodeId, Outcome>,
    done_at_us: Option<u64>,
}

/// A Paxos Commit (or 2PC) simulation.
pub struct CommitSim {
    config: CommitSimConfig,
    commit_config: CommitConfig,
    options: CommitOptions,
    rng: ChaCha8Rng,
    plan: CommitFaultPlan,
    now_us: u64,
    seq: u64,
    events: BTreeMap<(u64, u64), Event>,
    nodes: Vec<SimNode>,
    txns: Vec<Txn>,
    abort_permille: u32,
    quiet: bool,
    /// Ghost: durable votes, `(rm, txn) -> vote`.
    votes: BTreeMap<(NodeId, TxnId), Vote>,
    /// Oracle: the first outcome anyone learned or decided.
    outcomes: BTreeMap<TxnId, Outcome>,
    report: CommitRunReport,
    trace: Vec<String>,
    hash: Fnv,
}

impl CommitSim {
    /// Builds a run: nodes, the fault plan and the transactions, all drawn from the seed.
    pub fn new(config: CommitSimConfig) -> CommitSim {
        assert!(config.rms >= 1 && config.rms <= paxos::commit::RMS_PER_TXN_MAX);
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let n = config.rms as u64;
        let (commit_config, mut layout) = match config.protocol {
            CommitProtocol::TwoPhase => {
                let c = NodeId(n + 1);
                let roles = Roles {
                    acceptor: true,
                    leader: true,
                    rm: false,
                };
                (two_phase_commit(c), vec![(c, roles)])
            }
            CommitProtocol::Paxos => {
                let leaders = vec![NodeId(n + 1), NodeId(n + 2)];
                let acceptors: Vec<NodeId> = (n + 3..n + 3 + 2 * config.f as u64 + 1)
                    .map(NodeId)
                    .collect();
                let leader = Roles {
                    leader: true,
                    ..Roles::default()
                };
                let acceptor = Roles {
                    acceptor: true,
                    ..Roles::default()
                };
                let mut layout: Vec<(NodeId, Roles)> =
                    leaders.iter().map(|l| (*l, leader)).collect();
                layout.extend(acceptors.iter().map(|a| (*a, acceptor)));
                let config = paxos_commit(acceptors, leaders).expect("2F+1 distinct acceptors");
                (config, layout)
            }
        };
        let rm = Roles {
            rm: true,
            ..Roles::default()
        };
        let mut all: Vec<(NodeId, Roles)> = (1..=n).map(|i| (NodeId(i), rm)).collect();
        all.append(&mut layout);
        let options = CommitOptions::default();
        let nodes = all
            .into_iter()
            .map(|(id, roles)| SimNode {
                id,
                roles,
                core: CommitNode::recover(
                    id,
                    roles,
                    commit_config.clone(),
                    options.clone(),
                    &CommitDurable::default(),
                    config.bugs,
                ),
                durable: CommitDurable::default(),
                up: true,
                lost: false,
                incarnation: 0,
                disk_free_at_us: 0,
            })
            .collect();
        let plan = if config.nemesis {
            CommitFaultPlan::draw(&mut rng)
        } else {
            CommitFaultPlan::default()
        };
        let abort_permille = config
            .abort_permille
            .unwrap_or_else(|| range(&mut rng, 0, 300) as u32);
        let mut sim = CommitSim {
            report: CommitRunReport {
                seed: config.seed,
                faults_enabled: plan.enabled(),
                replay: config.replay_command(),
                ..CommitRunReport::default()
            },
            commit_config,
            options,
            rng,
            plan,
            now_us: 0,
            seq: 0,
            events: BTreeMap::new(),
            nodes,
            txns: Vec::new(),
            abort_permille,
            quiet: false,
            votes: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            trace: Vec::new(),
            hash: Fnv::new(),
            config,
        };
        sim.schedule_start();
        sim
    }

    fn schedule_start(&mut self) {
        let phase = self.config.fault_phase_us;
        for k in 0..self.nodes.len() {
            let at = below(&mut self.rng, self.config.tick_us);
            self.push(
                at,
                Event::Tick {
                    node: k,
                    incarnation: 0,
                },
            );
        }
        let count = match self.config.txns {
            Some(c) => c,
            None => range(&mut self.rng, 10, 40) as usize,
        };
        let n = self.config.rms;
        for t in 0..count {
            let size = if n == 1 {
                1
            } else {
                range(&mut self.rng, 2, n as u64) as usize
            };
            let mut pool: Vec<NodeId> = (1..=n as u64).map(NodeId).collect();
            crate::rng::shuffle(&mut self.rng, &mut pool);
            pool.truncate(size);
            // The first is the initiator; instances follow RM ids.
            let first = pool[0];
            pool.sort();
            let i = pool.iter().position(|r| *r == first).unwrap_or(0);
            pool.swap(0, i);
            self.txns.push(Txn {
                id: TxnId(t as u64 + 1),
                rms: pool,
                began_at_us: None,
                learned: BTreeMap::new(),
                done_at_us: None,
            });
            let at = if self.config.txns.is_some() {
                // Scripted runs (benchmarks): one transaction at a time.
                (t as u64) * (phase / count.max(1) as u64)
            } else {
                below(&mut self.rng, phase * 8 / 10)
            };
            self.push(at, Event::Begin { txn: t });
        }
        // Crashes.
        let crashes: Vec<(CommitFault, u32)> =
            self.plan.crashes.iter().map(|(k, v)| (*k, *v)).collect();
        for (kind, count) in crashes {
            let candidates = self.candidates(kind);
            if candidates.is_empty() {
                continue;
            }
            for _ in 0..count {
                let node = candidates[below(&mut self.rng, candidates.len() as u64) as usize];
                let at = below(&mut self.rng, phase);
                let down = range(&mut self.rng, 20_000, 300_000);
                self.push(
                    at,
                    Event::Crash {
                        node,
                        kind,
                        down_us: Some(down),
                    },
                );
            }
        }
        let coordinator = self.index_of(self.commit_config.coordinator());
        match self.config.coordinator_crash {
            Some((at, back)) => {
                let kind = if back.is_some() {
                    CommitFault::CrashLeader
                } else {
                    CommitFault::CoordinatorLost
                };
                self.push(
                    at,
                    Event::Crash {
                        node: coordinator,
                        kind,
                        down_us: back,
                    },
                );
            }
            None => {
                if self.plan.coordinator_lost_at_us.is_some() {
                    let at = range(&mut self.rng, phase / 10, phase);
                    self.plan.coordinator_lost_at_us = Some(at);
                    self.push(
                        at,
                        Event::Crash {
                            node: coordinator,
                            kind: CommitFault::CoordinatorLost,
                            down_us: None,
                        },
                    );
                }
            }
        }
        self.push(phase, Event::Quiet);
    }

    fn candidates(&self, kind: CommitFault) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&k| {
                let r = self.nodes[k].roles;
                match kind {
                    CommitFault::CrashRm => r.rm,
                    // A node that is both (2PC's coordinator) counts as a leader crash.
                    CommitFault::CrashAcceptor => r.acceptor && !r.leader,
                    CommitFault::CrashLeader => r.leader,
                    _ => false,
                }
            })
            .collect()
    }

    fn index_of(&self, id: NodeId) -> usize {
        (id.0 - 1) as usize
    }

    fn push(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.events.insert((at, self.seq), event);
    }

    fn fault(&mut self, kind: CommitFault) {
        *self.report.faults_injected.entry(kind).or_default() += 1;
    }

    fn record(&mut self, what: impl Hash, line: impl FnOnce() -> String) {
        self.now_us.hash(&mut self.hash);
        what.hash(&mut self.hash);
        if self.config.trace {
            self.trace.push(format!("{:>10} {}", self.now_us, line()));
        }
    }

    /// Processes one event; false when the run is over.
    pub fn step(&mut self) -> bool {
        let Some(((at, _), event)) = self.events.pop_first() else {
            return false;
        };
        self.now_us = at;
        self.report.events += 1;
        match event {
            Event::Deliver { from, to, msg } => {
                let k = self.index_of(to);
                self.record((0u8, from, to, &msg), || {
                    format!("deliver {from}->{to} {msg:?}")
                });
                if self.nodes[k].up {
                    self.nodes[k].core.step(from, msg);
                    self.drain(k);
                }
            }
            Event::Tick { node, incarnation } => {
                let n = &mut self.nodes[node];
                if n.up && n.incarnation == incarnation {
                    n.core.tick(&mut self.rng);
                    self.drain(node);
                    let next = self.now_us + self.config.tick_us;
                    self.push(next, Event::Tick { node, incarnation });
                }
            }
            Event::PersistDone {
                node,
                incarnation,
                seq,
                ops,
            } => {
                if self.nodes[node].up && self.nodes[node].incarnation == incarnation {
                    self.record((1u8, node, seq.0), || {
                        format!("persisted n{} {seq:?} {ops:?}", node + 1)
                    });
                    let id = self.nodes[node].id;
                    for op in &ops {
                        if let CommitPersist::RmVoted { txn, vote, .. } = op {
                            self.votes.insert((id, *txn), *vote);
                        }
                        self.nodes[node].durable.apply(op);
                    }
                    self.nodes[node].core.persisted(seq);
                    self.drain(node);
                }
            }
            Event::Begin { txn } => self.begin(txn),
            Event::Crash {
                node,
                kind,
                down_us,
            } => self.crash(node, kind, down_us),
            Event::Restart { node } => self.restart(node),
            Event::Quiet => {
                self.record(2u8, || "quiet: faults stop".to_string());
                self.quiet = true;
                for k in 0..self.nodes.len() {
                    if !self.nodes[k].up && !self.nodes[k].lost {
                        self.restart(k);
                    }
                }
            }
        }
        if self.quiet
            && (self.all_resolved()
                || self.now_us > self.config.fault_phase_us + self.config.liveness_us)
        {
            return false;
        }
        true
    }

    fn begin(&mut self, t: usize) {
        let first = self.txns[t].rms[0];
        let k = self.index_of(first);
        if !self.nodes[k].up {
            // Its initiator is down: the transaction is never begun.
            return;
        }
        let (id, rms) = (self.txns[t].id, self.txns[t].rms.clone());
        self.record((3u8, id), || format!("begin {id} at {first} over {rms:?}"));
        if self.nodes[k].core.begin(id, rms).is_ok() {
            self.txns[t].began_at_us = Some(self.now_us);
            self.report.txns += 1;
        }
        self.drain(k);
    }

    fn crash(&mut self, node: usize, kind: CommitFault, down_us: Option<u64>) {
        if self.quiet || !self.nodes[node].up {
            return;
        }
        self.fault(kind);
        self.record((4u8, node), || format!("crash n{} ({kind:?})", node + 1));
        let n = &mut self.nodes[node];
        n.up = false;
        n.incarnation += 1;
        match down_us {
            Some(d) => {
                let at = self.now_us + d;
                self.push(at, Event::Restart { node });
            }
            None => n.lost = true,
        }
    }

    fn restart(&mut self, node: usize) {
        if self.nodes[node].up || (self.nodes[node].lost && self.quiet) {
            return;
        }
        self.record((5u8, node), || format!("restart n{}", node + 1));
        let n = &mut self.nodes[node];
        n.lost = false;
        n.up = true;
        n.disk_free_at_us = self.now_us;
        n.core = CommitNode::recover(
            n.id,
            n.roles,
            self.commit_config.clone(),
            self.options.clone(),
            &n.durable,
            self.config.bugs,
        );
        let incarnation = n.incarnation;
        let at = self.now_us + 1 + below(&mut self.rng, self.config.tick_us);
        self.push(at, Event::Tick { node, incarnation });
    }

    /// What a driver does after any input: persist, send, hand votes and outcomes to the RM's
    /// application, until the node has nothing more to say.
    fn drain(&mut self, k: usize) {
        loop {
            let ready = self.nodes[k].core.ready();
            let id = self.nodes[k].id;
            let idle = ready.persist.is_none()
                && ready.send.is_empty()
                && ready.prepare.is_empty()
                && ready.learned.is_empty()
                && ready.decided.is_empty();
            if let Some(batch) = ready.persist {
                let d = range(
                    &mut self.rng,
                    self.config.persist_us.0,
                    self.config.persist_us.1,
                );
                let n = &mut self.nodes[k];
                let at = n.disk_free_at_us.max(self.now_us) + d;
                n.disk_free_at_us = at;
                let incarnation = n.incarnation;
                self.push(
                    at,
                    Event::PersistDone {
                        node: k,
                        incarnation,
                        seq: batch.seq,
                        ops: batch.ops,
                    },
                );
            }
            for out in ready.send {
                self.send(id, out.to, out.msg);
            }
            for txn in ready.prepare {
                let vote = if chance_permille(&mut self.rng, self.abort_permille) {
                    Vote::Aborted
                } else {
                    Vote::Prepared
                };
                self.record((6u8, id, txn, vote), || {
                    format!("{id} votes {vote:?} on {txn}")
                });
                let _ = self.nodes[k].core.vote(txn, vote);
            }
            for (txn, outcome) in ready.learned {
                self.learned(id, txn, outcome, true);
            }
            for (txn, outcome) in ready.decided {
                self.learned(id, txn, outcome, false);
            }
            if idle {
                break;
            }
        }
    }

    fn learned(&mut self, who: NodeId, txn: TxnId, outcome: Outcome, rm: bool) {
        self.record((7u8, who, txn, outcome), || {
            format!(
                "{who} {} {outcome:?} for {txn}",
                if rm { "learns" } else { "decides" }
            )
        });
        match self.outcomes.get(&txn) {
            Some(o) if *o != outcome => {
                let what = format!(
                    "{txn}: {who} has {outcome:?}, another had {o:?} (replay: {})",
                    self.report.replay
                );
                self.report.violation(CommitCheck::Agreement, what);
            }
            Some(_) => {}
            None => {
                self.outcomes.insert(txn, outcome);
            }
        }
        let Some(t) = self.txns.iter().position(|t| t.id == txn) else {
            return;
        };
        if outcome == Outcome::Committed {
            let rms = self.txns[t].rms.clone();
            for r in rms {
                if self.votes.get(&(r, txn)) != Some(&Vote::Prepared) {
                    let what = format!("{txn} committed by {who} without {r}'s durable Prepared vote (it has {:?})", self.votes.get(&(r, txn)));
                    self.report.violation(CommitCheck::Validity, what);
                }
            }
        }
        if rm {
            let now = self.now_us;
            let tx = &mut self.txns[t];
            if let Some(prev) = tx.learned.insert(who, outcome) {
                if prev != outcome {
                    let what = format!("{who} learned {prev:?} then {outcome:?} for {txn}");
                    self.report.violation(CommitCheck::Agreement, what);
                }
            }
            if tx.done_at_us.is_none() && tx.rms.iter().all(|r| tx.learned.contains_key(r)) {
                tx.done_at_us = Some(now);
            }
        }
    }

    fn send(&mut self, from: NodeId, to: NodeId, msg: CommitMessage) {
        self.report.messages_sent += 1;
        let copies = if !self.quiet && chance_permille(&mut self.rng, self.plan.duplicate_permille)
        {
            self.fault(CommitFault::Duplicate);
            2
        } else {
            1
        };
        for _ in 0..copies {
            if !self.quiet && chance_permille(&mut self.rng, self.plan.loss_permille) {
                self.fault(CommitFault::Loss);
                continue;
            }
            let mut d = range(
                &mut self.rng,
                self.config.latency_us.0,
                self.config.latency_us.1,
            );
            if !self.quiet && self.plan.reorder_us > 0 {
                let extra = below(&mut self.rng, self.plan.reorder_us);
                if extra > self.config.latency_us.1 {
                    self.fault(CommitFault::Reorder);
                }
                d += extra;
            }
            if !self.quiet && chance_permille(&mut self.rng, self.plan.delay_permille) {
                self.fault(CommitFault::Delay);
                d += range(&mut self.rng, 20_000, 100_000);
            }
            let at = self.now_us + d;
            self.push(
                at,
                Event::Deliver {
                    from,
                    to,
                    msg: msg.clone(),
                },
            );
        }
    }

    /// Whether every begun transaction is learned by all its participants, or blocked for
    /// good, or vanished.
    fn all_resolved(&self) -> bool {
        (0..self.txns.len()).all(|t| self.resolution(t).is_some())
    }

    fn coordinator_lost(&self) -> bool {
        self.nodes[self.index_of(self.commit_config.coordinator())].lost
    }

    /// Some(..) once nothing more can happen to transaction `t`.
    fn resolution(&self, t: usize) -> Option<&'static str> {
        let tx = &self.txns[t];
        if tx.began_at_us.is_none() {
            return Some("not begun");
        }
        if tx.done_at_us.is_some() {
            return Some("done");
        }
        if self.vanished(t) {
            return Some("vanished");
        }
        if self.quiet && self.outcomes.contains_key(&tx.id) && self.unheard_only(t) {
            return Some("decided, unheard");
        }
        if self.config.protocol == CommitProtocol::TwoPhase && self.coordinator_lost() && self.quiet
        {
            // Blocked once every participant that may learn on its own (it voted Aborted) did.
            let waiting = tx.rms.iter().all(|r| {
                tx.learned.contains_key(r) || self.votes.get(&(*r, tx.id)) != Some(&Vote::Aborted)
            });
            return waiting.then_some("blocked");
        }
        None
    }

    /// Decided, no running leader still at work on it, and every participant without the
    /// outcome is up and never heard of the transaction: it holds nothing for it (no vote, no
    /// locks), so there is nothing for it to wait for. This happens when the only leaders that
    /// knew were lost or down while their retransmissions to a crashed RM ran.
    fn unheard_only(&self, t: usize) -> bool {
        let tx = &self.txns[t];
        let leader_busy = self
            .nodes
            .iter()
            .any(|n| n.up && n.roles.leader && n.core.knows(tx.id));
        !leader_busy
            && tx
                .rms
                .iter()
                .filter(|r| !tx.learned.contains_key(r))
                .all(|r| {
                    let n = &self.nodes[self.index_of(*r)];
                    !self.votes.contains_key(&(*r, tx.id)) && n.up && !n.core.knows(tx.id)
                })
    }

    /// No participant durably voted or learned it, and no running node holds it: nobody ever
    /// will hear of it.
    fn vanished(&self, t: usize) -> bool {
        let tx = &self.txns[t];
        tx.learned.is_empty()
            && tx
                .rms
                .iter()
                .all(|r| !self.votes.contains_key(&(*r, tx.id)))
            && self.nodes.iter().all(|n| {
                !n.durable.leader_decided.contains_key(&tx.id) && (!n.up || !n.core.knows(tx.id))
            })
    }

    /// Runs to the end and reports.
    pub fn run(mut self) -> CommitRunReport {
        while self.step() {}
        self.finish()
    }

    /// The end-of-run checks and figures.
    pub fn finish(mut self) -> CommitRunReport {
        for t in 0..self.txns.len() {
            let tx = &self.txns[t];
            let Some(began) = tx.began_at_us else {
                continue;
            };
            match self.resolution(t) {
                Some("done") => {
                    match self.outcomes.get(&tx.id) {
                        Some(Outcome::Committed) => self.report.committed += 1,
                        _ => self.report.aborted += 1,
                    }
                    let done = tx.done_at_us.unwrap_or(began);
                    self.report.latencies_us.push(done - began);
                }
                Some("vanished") => self.report.vanished += 1,
                Some("decided, unheard") => {
                    match self.outcomes.get(&tx.id) {
                        Some(Outcome::Committed) => self.report.committed += 1,
                        _ => self.report.aborted += 1,
                    }
                    let unheard = tx
                        .rms
                        .iter()
                        .filter(|r| !tx.learned.contains_key(r))
                        .count();
                    self.report.rms_unheard += unheard as u64;
                }
                Some(_) => self.report.blocked += 1,
                None => {
                    let missing: Vec<NodeId> = tx
                        .rms
                        .iter()
                        .filter(|r| !tx.learned.contains_key(r))
                        .copied()
                        .collect();
                    let what = format!(
                        "{} undecided at {} for {missing:?} ({} after faults stopped)",
                        tx.id,
                        self.now_us,
                        fmt_us(self.now_us.saturating_sub(self.config.fault_phase_us))
                    );
                    self.report.violation(CommitCheck::Liveness, what);
                }
            }
        }
        self.report.phase1_runs = self
            .nodes
            .iter()
            .map(|n| n.core.counters().phase1_runs)
            .sum();
        self.report.simulated_us = self.now_us;
        self.report.trace_hash = self.hash.finish();
        self.report
    }

    /// The trace lines (only with [`CommitSimConfig::trace`]).
    pub fn trace(&self) -> &[String] {
        &self.trace
    }
}

impl crate::campaign::SeedRun for CommitSimConfig {
    type Report = CommitRunReport;
    fn run(self) -> CommitRunReport {
        CommitSim::new(self).run()
    }
    fn panicked(&self, message: String) -> CommitRunReport {
        let mut r = CommitRunReport {
            seed: self.seed,
            replay: self.replay_command(),
            ..CommitRunReport::default()
        };
        r.violation(CommitCheck::NoPanic, message);
        r
    }
}

/// Runs one seed; a panic is reported as a violation of [`CommitCheck::NoPanic`].
pub fn run_commit_seed(config: CommitSimConfig) -> CommitRunReport {
    crate::campaign::run_guarded(config)
}

/// A campaign: seeds × one configuration.
#[derive(Clone, Debug)]
pub struct CommitCampaignSpec {
    /// Seeds, half-open.
    pub seeds: Range<u64>,
    /// Protocol.
    pub protocol: CommitProtocol,
    /// Resource managers.
    pub rms: usize,
    /// F.
    pub f: usize,
    /// Planted bugs.
    pub bugs: PlantedBugs,
    /// Worker threads.
    pub threads: usize,
}

impl CommitCampaignSpec {
    /// A campaign on every available core.
    pub fn new(seeds: Range<u64>, protocol: CommitProtocol, rms: usize, f: usize) -> Self {
        CommitCampaignSpec {
            seeds,
            protocol,
            rms,
            f,
            bugs: PlantedBugs::none(),
            threads: crate::campaign::default_threads(),
        }
    }

    /// The configuration of one seed.
    pub fn config(&self, seed: u64) -> CommitSimConfig {
        let mut c = CommitSimConfig::new(seed, self.protocol, self.rms, self.f);
        c.bugs = self.bugs;
        c
    }
}

/// A campaign's figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CommitCampaignReport {
    /// Protocol name.
    pub protocol: String,
    /// Resource managers.
    pub rms: usize,
    /// F.
    pub f: usize,
    /// Seeds run.
    pub seeds_run: u64,
    /// Transactions begun.
    pub txns: u64,
    /// Committed.
    pub committed: u64,
    /// Aborted.
    pub aborted: u64,
    /// Blocked (two-phase commit with its coordinator lost).
    pub blocked: u64,
    /// Seeds with at least one blocked transaction.
    pub seeds_blocked: u64,
    /// Vanished before anyone heard of them.
    pub vanished: u64,
    /// Participants of decided transactions that never heard of them.
    pub rms_unheard: u64,
    /// Faults injected by kind.
    pub faults_injected: BTreeMap<CommitFault, u64>,
    /// Kinds switched on by some seed.
    pub faults_enabled: BTreeSet<CommitFault>,
    /// Violations by check.
    pub violation_counts: BTreeMap<CommitCheck, u64>,
    /// Seeds that failed, with their first violation.
    pub failing: Vec<(u64, String)>,
    /// Messages sent.
    pub messages_sent: u64,
    /// Leader takeovers.
    pub phase1_runs: u64,
    /// Latency from begin until every participant learned, µs: p50, p99, max.
    pub latency_us: (u64, u64, u64),
    /// Virtual time, µs.
    pub simulated_us: u64,
}

impl CommitCampaignReport {
    /// Sums runs.
    pub fn from_runs(spec: &CommitCampaignSpec, runs: &[CommitRunReport]) -> Self {
        let mut r = CommitCampaignReport {
            protocol: spec.protocol.name().to_string(),
            rms: spec.rms,
            f: if spec.protocol == CommitProtocol::TwoPhase {
                0
            } else {
                spec.f
            },
            ..Default::default()
        };
        let mut lat = Vec::new();
        for run in runs {
            r.seeds_run += 1;
            r.txns += run.txns;
            r.committed += run.committed;
            r.aborted += run.aborted;
            r.blocked += run.blocked;
            r.seeds_blocked += u64::from(run.blocked > 0);
            r.vanished += run.vanished;
            r.rms_unheard += run.rms_unheard;
            add_counts(&mut r.faults_injected, &run.faults_injected);
            r.faults_enabled.extend(run.faults_enabled.iter().copied());
            add_counts(&mut r.violation_counts, &run.violation_counts);
            if !run.passed() {
                r.failing.push((
                    run.seed,
                    run.violations.first().cloned().unwrap_or_default(),
                ));
            }
            r.messages_sent += run.messages_sent;
            r.phase1_runs += run.phase1_runs;
            r.simulated_us += run.simulated_us;
            lat.extend(&run.latencies_us);
        }
        lat.sort_unstable();
        let pick = |q: f64| {
            lat.get(((lat.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(0)
        };
        r.latency_us = (pick(0.5), pick(0.99), lat.last().copied().unwrap_or(0));
        r
    }

    /// Total violations.
    pub fn violation_total(&self) -> u64 {
        self.violation_counts.values().sum()
    }

    /// No seed failed.
    pub fn passed(&self) -> bool {
        self.violation_total() == 0
    }

    /// Fault kinds that never fired.
    pub fn never_fired(&self) -> Vec<CommitFault> {
        never_fired(&CommitFault::ALL, &self.faults_injected)
    }
}

crate::campaign::impl_campaign_totals!(CommitCampaignReport, failing);

impl fmt::Display for CommitCampaignReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per_txn = if self.txns == 0 {
            0.0
        } else {
            self.messages_sent as f64 / self.txns as f64
        };
        writeln!(
            f,
            "{} campaign: {} RMs, F = {}",
            self.protocol, self.rms, self.f
        )?;
        writeln!(f, "  seeds run             {}", self.seeds_run)?;
        writeln!(f, "  simulated time        {}", fmt_us(self.simulated_us))?;
        writeln!(f, "  transactions          {} begun: {} committed, {} aborted, {} blocked (in {} seeds), {} vanished", self.txns, self.committed, self.aborted, self.blocked, self.seeds_blocked, self.vanished)?;
        writeln!(f, "  unheard participants  {} (decided without them; they never heard of it, so hold nothing)", self.rms_unheard)?;
        let faults = fmt_every_count(&CommitFault::ALL, &self.faults_injected);
        writeln!(f, "  faults injected       {faults}")?;
        let never = self.never_fired();
        if !never.is_empty() {
            writeln!(f, "  never fired           {never:?}")?;
        }
        writeln!(
            f,
            "  leader takeovers      {} phase-1 runs",
            self.phase1_runs
        )?;
        writeln!(
            f,
            "  messages              {} ({per_txn:.1} per transaction, retransmissions included)",
            self.messages_sent
        )?;
        writeln!(
            f,
            "  begin -> all learned  p50 {}, p99 {}, max {}",
            fmt_us(self.latency_us.0),
            fmt_us(self.latency_us.1),
            fmt_us(self.latency_us.2)
        )?;
        let checks = [
            CommitCheck::Agreement,
            CommitCheck::Validity,
            CommitCheck::Liveness,
            CommitCheck::NoPanic,
        ];
        let checks = fmt_every_count(&checks, &self.violation_counts);
        writeln!(f, "  violations            {checks}")?;
        for (seed, what) in self.failing.iter().take(5) {
            writeln!(f, "  failing seed {seed}: {what}")?;
        }
        Ok(())
    }
}

/// Runs every seed of `spec` on its threads; reports sorted by seed.
pub fn run_commit_seeds(
    spec: &CommitCampaignSpec,
    on_done: &(dyn Fn(&CommitRunReport) + Sync),
) -> Vec<CommitRunReport> {
    crate::campaign::run_seed_range(
        spec.seeds.clone(),
        spec.threads,
        &|seed| run_commit_seed(spec.config(seed)),
        on_done,
    )
}

/// Runs a campaign and sums it.
pub fn run_commit_campaign(spec: &CommitCampaignSpec) -> CommitCampaignReport {
    CommitCampaignReport::from_runs(spec, &run_commit_seeds(spec, &|_| {}))
}

/// Figures of the benchmark: measured in the simulator with a fixed one-way latency, instant
/// disks and no faults, so that time divided by the latency counts message delays.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CommitBench {
    /// Protocol name.
    pub protocol: String,
    /// Resource managers per transaction.
    pub rms: usize,
    /// F.
    pub f: usize,
    /// Message delays from BeginCommit sent until every RM learned the outcome.
    pub delays: f64,
    /// Messages per committed transaction (outcome acknowledgements included).
    pub messages_per_txn: f64,
    /// With the coordinator crashing after its Prepare messages left and back after
    /// `recovers_after_us`: time the transaction stayed undecided after the crash, µs.
    pub blocked_us: Option<u64>,
    /// Same, coordinator never back: time to decide, µs, or None if it never was.
    pub blocked_forever_us: Option<u64>,
}

/// Measures `protocol` with `rms` RMs (all in every transaction) and `f`.
pub fn bench_commit(
    protocol: CommitProtocol,
    rms: usize,
    f: usize,
    recovers_after_us: u64,
) -> CommitBench {
    const LATENCY_US: u64 = 1_000;
    let base = |seed: u64| {
        let mut c = CommitSimConfig::new(seed, protocol, rms, f);
        c.nemesis = false;
        c.latency_us = (LATENCY_US, LATENCY_US);
        c.persist_us = (0, 0);
        c.abort_permille = Some(0);
        c
    };
    let all_rms = |sim: &mut CommitSim| {
        for t in &mut sim.txns {
            t.rms = (1..=rms as u64).map(NodeId).collect();
        }
    };
    // Steady state: 20 transactions one after another.
    let mut c = base(1);
    c.txns = Some(20);
    c.fault_phase_us = 20 * 100_000;
    let mut sim = CommitSim::new(c);
    all_rms(&mut sim);
    let r = sim.run();
    let txns = r.txns.max(1);
    let mean_us = r.latencies_us.iter().sum::<u64>() as f64 / r.latencies_us.len().max(1) as f64;
    let crashed = |back: Option<u64>| {
        let mut c = base(2);
        c.txns = Some(1);
        // Faults stop (and crashed nodes restart) only after the scripted recovery.
        c.fault_phase_us = back.map_or(100_000, |b| b + 1_000_000);
        c.liveness_us = 20_000_000;
        // The coordinator crashes once its Prepare left and before any vote reached it.
        c.coordinator_crash = Some((LATENCY_US + LATENCY_US / 2, back));
        let mut sim = CommitSim::new(c);
        all_rms(&mut sim);
        let r = sim.run();
        r.latencies_us
            .first()
            .map(|l| l.saturating_sub(LATENCY_US + LATENCY_US / 2))
    };
    CommitBench {
        protocol: protocol.name().to_string(),
        rms,
        f: if protocol == CommitProtocol::TwoPhase {
            0
        } else {
            f
        },
        delays: mean_us / LATENCY_US as f64,
        messages_per_txn: r.messages_sent as f64 / txns as f64,
        blocked_us: crashed(Some(recovers_after_us)),
        blocked_forever_us: crashed(None),
    }
}
