//! The Disk Paxos simulator: the real [`DiskProcessor`] cores over the real block code
//! ([`storage::disk_paxos::BlockDisk`]) on one [`MemFs`] per disk, with seeded faults.
//!
//! There are no messages: processors only read and write disks. A run is a pure function of
//! its [`DiskSimConfig`] (one `ChaCha8Rng`, virtual time in microseconds, events ordered by
//! `(time, sequence)`).
//!
//! # A run
//!
//! 1. **Fault phase** ([`DiskSimConfig::fault_phase_us`]): every processor starts at a random
//!    moment of its first half, proposes its own input and tries whenever its retry timer fires (so processors duel). The nemesis, with
//!    fault kinds and rates drawn per seed (swarm testing), makes disks unavailable (every
//!    request fails) or slow (requests take milliseconds, past the core's phase deadline),
//!    crashes disks (a power loss of the `MemFs`: unsynced writes dropped, kept or torn at a
//!    sector boundary, then the disk is down a while), and crashes processors (their memory
//!    is lost; they restart later from what they wrote to the disks).
//! 2. **Quiet phase**: every disk works, every processor is up, and a single processor tries
//!    at a time (the paper's leader-election assumption, section 3): the leader is the lowest
//!    undecided processor; it campaigns and is the only one ticked (the others only finish
//!    requests already issued) until it decides or its term ends, then the next one leads.
//!    The run ends when every processor decided, or fails liveness at the bound.
//!
//! Disk crashes only hit a minority of disks, chosen per seed: Disk Paxos assumes a majority
//! of disks never fails (section 2.1). A crashed disk's torn blocks read as failures, never as
//! blocks (see `storage::disk_paxos`); the others (unavailable, slow) lose nothing and may hit
//! any disk.
//!
//! # Checks
//!
//! After every decision: **agreement** (no two processors decide different values, across
//! restarts too) and **validity** (the value decided is some processor's input). At the end:
//! **liveness** (every processor decided within the bound after faults stopped). A panic of the
//! core or the driver is a violation too.

use crate::campaign::{add_counts, note_violations};
use crate::rng::{below, chance_permille, range};
use paxos::disk::{Completion, DiskConfig, DiskId, DiskIo, DiskPaxosOptions, DiskProcessor, Value};
use paxos::{NodeId, PlantedBugs};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use storage::disk_paxos::{BlockDisk, BlockError};
use storage::memfs::MemFs;
use storage::Vfs;

/// What a Disk Paxos run simulates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DiskSimConfig {
    /// The seed.
    pub seed: u64,
    /// Processors (1 to 16).
    pub processors: usize,
    /// Disks (1 to 16).
    pub disks: usize,
    /// Planted bugs.
    pub bugs: PlantedBugs,
    /// Length of the fault phase, microseconds.
    pub fault_phase_us: u64,
    /// Each processor ticks every this many microseconds.
    pub tick_us: u64,
    /// A leader's term in the quiet phase, in ticks.
    pub leader_term_ticks: u64,
    /// Every processor must have decided this long after faults stopped.
    pub liveness_bound_us: u64,
    /// Keep a human-readable trace of the run (disk requests, faults, decisions).
    pub trace: bool,
}

impl DiskSimConfig {
    /// The defaults for `seed`: 3 processors, 3 disks, a 300 ms fault phase.
    pub fn new(seed: u64, processors: usize, disks: usize) -> DiskSimConfig {
        DiskSimConfig {
            seed,
            processors,
            disks,
            bugs: PlantedBugs::none(),
            fault_phase_us: 300_000,
            tick_us: 1_000,
            leader_term_ticks: 200,
            liveness_bound_us: 2_000_000,
            trace: false,
        }
    }

    fn options() -> DiskPaxosOptions {
        DiskPaxosOptions::default()
    }
}

/// Fault kinds of the Disk Paxos nemesis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskFaultKind {
    /// A disk fails every request for a while.
    Unavailable,
    /// A disk answers in milliseconds for a while.
    Slow,
    /// A disk loses power: unsynced writes are dropped, kept, or torn.
    DiskCrash,
    /// A block write torn by a disk crash (counted by the `MemFs`).
    TornWrite,
    /// A read that failed on a torn or corrupt block.
    CorruptRead,
    /// A processor crashes, losing its memory, and restarts later.
    ProcessorCrash,
}

impl DiskFaultKind {
    /// Every kind.
    pub const ALL: [DiskFaultKind; 6] = [
        DiskFaultKind::Unavailable,
        DiskFaultKind::Slow,
        DiskFaultKind::DiskCrash,
        DiskFaultKind::TornWrite,
        DiskFaultKind::CorruptRead,
        DiskFaultKind::ProcessorCrash,
    ];

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            DiskFaultKind::Unavailable => "disk unavailable",
            DiskFaultKind::Slow => "disk slow",
            DiskFaultKind::DiskCrash => "disk crash",
            DiskFaultKind::TornWrite => "torn block write",
            DiskFaultKind::CorruptRead => "torn/corrupt block read",
            DiskFaultKind::ProcessorCrash => "processor crash",
        }
    }
}

/// A check that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiskCheck {
    /// Two processors decided different values.
    Agreement,
    /// A decided value was no processor's input.
    Validity,
    /// Not every processor decided within the bound after faults stopped.
    Liveness,
    /// The core or the driver panicked.
    NoPanic,
}

/// The figures of one run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DiskRunReport {
    /// The seed.
    pub seed: u64,
    /// Processors.
    pub processors: usize,
    /// Disks.
    pub disks: usize,
    /// Planted bugs by name.
    pub bugs: Vec<String>,
    /// Virtual time simulated, microseconds.
    pub simulated_us: u64,
    /// Processors that decided (each counted once per incarnation that decided).
    pub decisions: u64,
    /// The value decided first, if any.
    pub decided: Option<Value>,
    /// Faults by kind.
    pub faults: BTreeMap<DiskFaultKind, u64>,
    /// Ballots started, over all processors and incarnations.
    pub ballots: u64,
    /// Ballots aborted on a higher mbal.
    pub aborts: u64,
    /// Disk requests issued.
    pub requests: u64,
    /// Requests that failed.
    pub requests_failed: u64,
    /// Time from faults stopping to the last processor deciding, microseconds.
    pub decided_all_after_us: Option<u64>,
    /// Violations, in full.
    pub violations: Vec<(DiskCheck, String)>,
    /// The trace, if asked for: one line per event.
    #[serde(skip)]
    pub trace: Vec<String>,
}

crate::campaign::impl_seed_report!(DiskRunReport);

impl DiskRunReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The command that replays this run.
    pub fn replay_command(&self) -> String {
        let mut s = format!(
            "synod sim --protocol disk-paxos --seeds {}..{} --processors {} --disks {}",
            self.seed,
            self.seed + 1,
            self.processors,
            self.disks
        );
        for b in &self.bugs {
            s.push_str(&format!(" --bug {b}"));
        }
        s
    }
}

#[derive(Clone, Debug)]
enum Event {
    /// Every processor allowed to run ticks.
    Tick,
    /// A request reaches its disk.
    IoStart {
        p: usize,
        incarnation: u64,
        io: DiskIo,
        sync_us: u64,
    },
    /// A write's sync.
    IoSync {
        p: usize,
        incarnation: u64,
        io: DiskIo,
        disk_generation: u64,
    },
    DiskDown {
        disk: usize,
        until_us: u64,
        crash: bool,
    },
    DiskSlow {
        disk: usize,
        until_us: u64,
    },
    ProcessorCrash {
        p: usize,
        down_us: u64,
    },
    ProcessorRestart {
        p: usize,
    },
    FaultsStop,
}

struct Disk {
    fs: MemFs,
    blocks: BlockDisk<MemFs>,
    down_until_us: u64,
    slow_until_us: u64,
    generation: u64,
}

struct Proc {
    core: Option<DiskProcessor>,
    incarnation: u64,
    input: Value,
    ballots_before: u64,
    aborts_before: u64,
}

/// One Disk Paxos run.
pub struct DiskSimulation {
    config: DiskSimConfig,
    disk_config: DiskConfig,
    rng: ChaCha8Rng,
    now_us: u64,
    seq: u64,
    events: BTreeMap<(u64, u64), Event>,
    disks: Vec<Disk>,
    procs: Vec<Proc>,
    quiet: bool,
    quiet_since_us: u64,
    leader: Option<usize>,
    leader_ticks: u64,
    decided: Vec<Option<Value>>,
    /// Per processor and disk: when its queue is free again.
    busy_until_us: Vec<Vec<u64>>,
    report: DiskRunReport,
}

impl DiskSimulation {
    /// A run, with its fault plan drawn from the seed.
    ///
    /// # Panics
    /// If processors or disks are out of bounds.
    pub fn new(config: DiskSimConfig) -> DiskSimulation {
        let disk_config =
            DiskConfig::new(config.processors, config.disks).expect("processors and disks");
        let rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0xd15c_9a05);
        let disks = (0..config.disks)
            .map(|d| {
                let fs = MemFs::new();
                let dir = PathBuf::from(format!("/disk{d}"));
                fs.create_dir_all(&dir).expect("MemFs directory");
                Disk {
                    blocks: BlockDisk::new(fs.clone(), dir, DiskId(d as u8), disk_config),
                    fs,
                    down_until_us: 0,
                    slow_until_us: 0,
                    generation: 0,
                }
            })
            .collect();
        let procs = (0..config.processors)
            .map(|p| Proc {
                core: None,
                incarnation: 0,
                input: format!("v{}-{}", p + 1, config.seed % 1000).into_bytes(),
                ballots_before: 0,
                aborts_before: 0,
            })
            .collect();
        let report = DiskRunReport {
            seed: config.seed,
            processors: config.processors,
            disks: config.disks,
            bugs: crate::sim::bug_names(config.bugs),
            simulated_us: 0,
            decisions: 0,
            decided: None,
            faults: DiskFaultKind::ALL.iter().map(|k| (*k, 0)).collect(),
            ballots: 0,
            aborts: 0,
            requests: 0,
            requests_failed: 0,
            decided_all_after_us: None,
            violations: Vec::new(),
            trace: Vec::new(),
        };
        let mut sim = DiskSimulation {
            decided: vec![None; config.processors],
            busy_until_us: vec![vec![0; config.disks]; config.processors],
            config,
            disk_config,
            rng,
            now_us: 0,
            seq: 0,
            events: BTreeMap::new(),
            disks,
            procs,
            quiet: false,
            quiet_since_us: 0,
            leader: None,
            leader_ticks: 0,
            report,
        };
        sim.plan_faults();
        // Processors start at random moments of the first half of the fault phase, so the
        // faults meet ballots in progress rather than disks nobody uses any more.
        for p in 0..sim.procs.len() {
            let at = below(&mut sim.rng, sim.config.fault_phase_us / 2);
            sim.schedule(at, Event::ProcessorRestart { p });
        }
        sim.schedule(sim.config.tick_us, Event::Tick);
        sim.schedule(sim.config.fault_phase_us, Event::FaultsStop);
        sim
    }

    fn schedule(&mut self, at_us: u64, event: Event) {
        self.seq += 1;
        self.events.insert((at_us, self.seq), event);
    }

    /// Swarm testing: each kind is on or off per seed, with its own rate.
    fn plan_faults(&mut self) {
        let end = self.config.fault_phase_us;
        let disks = self.config.disks as u64;
        // Disks that may crash: a minority, so a majority never fails (section 2.1).
        let faulty = (disks.saturating_sub(1) / 2) as usize;
        let mut order: Vec<usize> = (0..self.config.disks).collect();
        crate::rng::shuffle(&mut self.rng, &mut order);
        let crashable: Vec<usize> = order[..faulty].to_vec();
        if chance_permille(&mut self.rng, 600) {
            for _ in 0..range(&mut self.rng, 1, 8) {
                let at = below(&mut self.rng, end);
                let disk = below(&mut self.rng, disks) as usize;
                let until_us = at + range(&mut self.rng, 2_000, 40_000);
                self.schedule(
                    at,
                    Event::DiskDown {
                        disk,
                        until_us,
                        crash: false,
                    },
                );
            }
        }
        if chance_permille(&mut self.rng, 600) {
            for _ in 0..range(&mut self.rng, 1, 8) {
                let at = below(&mut self.rng, end);
                let disk = below(&mut self.rng, disks) as usize;
                let until_us = at + range(&mut self.rng, 5_000, 60_000);
                self.schedule(at, Event::DiskSlow { disk, until_us });
            }
        }
        if !crashable.is_empty() && chance_permille(&mut self.rng, 700) {
            for _ in 0..range(&mut self.rng, 4, 30) {
                let at = below(&mut self.rng, end);
                let disk = crashable[below(&mut self.rng, crashable.len() as u64) as usize];
                let until_us = at + range(&mut self.rng, 500, 10_000);
                self.schedule(
                    at,
                    Event::DiskDown {
                        disk,
                        until_us,
                        crash: true,
                    },
                );
            }
        }
        if chance_permille(&mut self.rng, 600) {
            for _ in 0..range(&mut self.rng, 1, 10) {
                let at = below(&mut self.rng, end);
                let p = below(&mut self.rng, self.config.processors as u64) as usize;
                let down_us = range(&mut self.rng, 1_000, 50_000);
                self.schedule(at, Event::ProcessorCrash { p, down_us });
            }
        }
    }

    fn start_processor(&mut self, p: usize) {
        let mut core = DiskProcessor::new(
            NodeId(p as u64 + 1),
            self.disk_config,
            DiskSimConfig::options(),
            self.config.bugs,
        )
        .expect("processor id in range");
        core.propose(self.procs[p].input.clone())
            .expect("input within bounds");
        let proc = &mut self.procs[p];
        proc.incarnation += 1;
        proc.core = Some(core);
        self.pump(p);
    }

    fn latency_us(&mut self, disk: usize) -> u64 {
        if self.now_us < self.disks[disk].slow_until_us {
            range(&mut self.rng, 3_000, 30_000)
        } else {
            range(&mut self.rng, 30, 400)
        }
    }

    /// Drains a processor's outputs: requests go to their disks, a decision is checked.
    fn pump(&mut self, p: usize) {
        let Some(core) = self.procs[p].core.as_mut() else {
            return;
        };
        let ready = core.ready();
        let incarnation = self.procs[p].incarnation;
        for io in ready.io {
            self.report.requests += 1;
            let disk = io.disk().0 as usize;
            // One queue per processor and disk, as a driver with one I/O thread per disk has:
            // a request starts after the previous one (and a write's sync) finished, so a
            // late write of an abandoned phase never lands over a newer block.
            let at = (self.now_us + self.latency_us(disk)).max(self.busy_until_us[p][disk]);
            let sync_us = if matches!(io, DiskIo::Write { .. }) {
                range(&mut self.rng, 20, 300)
            } else {
                0
            };
            self.busy_until_us[p][disk] = at + sync_us + 1;
            self.schedule(
                at,
                Event::IoStart {
                    p,
                    incarnation,
                    io,
                    sync_us,
                },
            );
        }
        if let Some(v) = ready.decided {
            self.on_decided(p, v);
        }
    }

    fn on_decided(&mut self, p: usize, v: Value) {
        if self.config.trace {
            let line = format!("  p{} DECIDED {:?}", p + 1, String::from_utf8_lossy(&v));
            self.trace(|| line);
        }
        self.report.decisions += 1;
        if !self.procs.iter().any(|q| q.input == v) {
            self.violation(
                DiskCheck::Validity,
                format!("processor {} decided {:?}, no processor's input", p + 1, v),
            );
        }
        match &self.report.decided {
            Some(first) if *first != v => {
                let msg = format!(
                    "processor {} decided {:?}, but {:?} was decided before",
                    p + 1,
                    String::from_utf8_lossy(&v),
                    String::from_utf8_lossy(first)
                );
                self.violation(DiskCheck::Agreement, msg);
            }
            Some(_) => {}
            None => self.report.decided = Some(v.clone()),
        }
        self.decided[p] = Some(v);
    }

    fn violation(&mut self, check: DiskCheck, msg: String) {
        if self.report.violations.len() < 16 {
            self.report.violations.push((check, msg));
        }
    }

    fn complete(&mut self, p: usize, incarnation: u64, c: Completion) {
        if self.config.trace {
            let line = format!("  p{} inc {incarnation} <- {c:?}", p + 1);
            self.trace(|| line);
        }
        if matches!(c, Completion::Failed { .. }) {
            self.report.requests_failed += 1;
        }
        if self.procs[p].incarnation != incarnation {
            return;
        }
        if let Some(core) = self.procs[p].core.as_mut() {
            core.completed(c);
            self.pump(p);
        }
    }

    fn note_error(&mut self, e: &BlockError) {
        if matches!(e, BlockError::Corrupt { .. }) {
            *self
                .report
                .faults
                .entry(DiskFaultKind::CorruptRead)
                .or_default() += 1;
        }
    }

    fn io_start(&mut self, p: usize, incarnation: u64, io: DiskIo, sync_us: u64) {
        if self.procs[p].incarnation != incarnation || self.procs[p].core.is_none() {
            // The processor crashed before the request reached the disk: it never happens.
            return;
        }
        let d = io.disk().0 as usize;
        let owner = NodeId(p as u64 + 1);
        if self.now_us < self.disks[d].down_until_us {
            let (disk, tag) = match &io {
                DiskIo::Write { disk, tag, .. } | DiskIo::Read { disk, tag, .. } => (*disk, *tag),
            };
            self.complete(p, incarnation, Completion::Failed { disk, tag });
            return;
        }
        match io {
            DiskIo::Write { disk, tag, block } => {
                match self.disks[d].blocks.write_unsynced(owner, &block) {
                    Ok(()) => {
                        // The queue reserved the sync's time when the request was issued.
                        let at = self.now_us + sync_us;
                        let disk_generation = self.disks[d].generation;
                        let io = DiskIo::Write { disk, tag, block };
                        self.schedule(
                            at,
                            Event::IoSync {
                                p,
                                incarnation,
                                io,
                                disk_generation,
                            },
                        );
                    }
                    Err(e) => {
                        self.note_error(&e);
                        self.complete(p, incarnation, Completion::Failed { disk, tag });
                    }
                }
            }
            DiskIo::Read { disk, tag, of } => {
                let c = match self.disks[d].blocks.read_blocks(&of) {
                    Ok(blocks) => Completion::Read { disk, tag, blocks },
                    Err(e) => {
                        self.note_error(&e);
                        Completion::Failed { disk, tag }
                    }
                };
                self.complete(p, incarnation, c);
            }
        }
    }

    fn io_sync(&mut self, p: usize, incarnation: u64, io: DiskIo, disk_generation: u64) {
        if self.procs[p].incarnation != incarnation || self.procs[p].core.is_none() {
            // The process died before its sync: the write stays unsynced in the disk's cache.
            return;
        }
        let d = io.disk().0 as usize;
        let DiskIo::Write { disk, tag, .. } = io else {
            return;
        };
        let lost = self.disks[d].generation != disk_generation
            || self.now_us < self.disks[d].down_until_us;
        let c = if lost {
            Completion::Failed { disk, tag }
        } else {
            match self.disks[d].blocks.sync() {
                Ok(()) => Completion::Written { disk, tag },
                Err(_) => Completion::Failed { disk, tag },
            }
        };
        self.complete(p, incarnation, c);
    }

    fn count(&mut self, kind: DiskFaultKind) {
        *self.report.faults.entry(kind).or_default() += 1;
    }

    fn tick(&mut self) {
        if self.quiet {
            self.choose_leader();
        }
        for p in 0..self.procs.len() {
            if self.quiet && self.leader != Some(p) {
                continue;
            }
            if let Some(core) = self.procs[p].core.as_mut() {
                core.tick(&mut self.rng);
                self.pump(p);
            }
        }
        let next = self.now_us + self.config.tick_us;
        self.schedule(next, Event::Tick);
    }

    /// The quiet phase's leader: the lowest undecided processor, for a term of ticks.
    fn choose_leader(&mut self) {
        let undecided: Vec<usize> = (0..self.procs.len())
            .filter(|p| self.decided[*p].is_none())
            .collect();
        let keep = self.leader.is_some_and(|l| {
            undecided.contains(&l) && self.leader_ticks < self.config.leader_term_ticks
        });
        if keep {
            self.leader_ticks += 1;
            return;
        }
        let next = match self.leader {
            Some(l) => undecided
                .iter()
                .find(|p| **p > l)
                .or(undecided.first())
                .copied(),
            None => undecided.first().copied(),
        };
        self.leader = next;
        self.leader_ticks = 0;
        if let Some(l) = next {
            if let Some(core) = self.procs[l].core.as_mut() {
                core.campaign();
            }
            self.pump(l);
        }
    }

    fn faults_stop(&mut self) {
        self.quiet = true;
        self.quiet_since_us = self.now_us;
        for d in &mut self.disks {
            d.down_until_us = 0;
            d.slow_until_us = 0;
        }
        for p in 0..self.procs.len() {
            if self.procs[p].core.is_none() {
                self.start_processor(p);
            }
        }
    }

    fn trace(&mut self, line: impl FnOnce() -> String) {
        if self.config.trace {
            let line = format!("{:>9} {}", self.now_us, line());
            self.report.trace.push(line);
        }
    }

    fn handle(&mut self, event: Event) {
        if self.config.trace {
            let e = format!("{event:?}");
            self.trace(|| e);
        }
        match event {
            Event::Tick => self.tick(),
            Event::IoStart {
                p,
                incarnation,
                io,
                sync_us,
            } => self.io_start(p, incarnation, io, sync_us),
            Event::IoSync {
                p,
                incarnation,
                io,
                disk_generation,
            } => self.io_sync(p, incarnation, io, disk_generation),
            Event::DiskDown {
                disk,
                until_us,
                crash,
            } => {
                if self.quiet {
                    return;
                }
                if crash {
                    let before = self.disks[disk].fs.counters().writes_torn;
                    self.disks[disk].fs.crash(&mut self.rng);
                    self.disks[disk].generation += 1;
                    let torn = self.disks[disk].fs.counters().writes_torn - before;
                    self.count(DiskFaultKind::DiskCrash);
                    *self
                        .report
                        .faults
                        .entry(DiskFaultKind::TornWrite)
                        .or_default() += torn;
                } else {
                    self.count(DiskFaultKind::Unavailable);
                }
                let d = &mut self.disks[disk];
                d.down_until_us = d.down_until_us.max(until_us);
            }
            Event::DiskSlow { disk, until_us } => {
                if self.quiet {
                    return;
                }
                self.count(DiskFaultKind::Slow);
                let d = &mut self.disks[disk];
                d.slow_until_us = d.slow_until_us.max(until_us);
            }
            Event::ProcessorCrash { p, down_us } => {
                if self.quiet || self.procs[p].core.is_none() {
                    return;
                }
                self.count(DiskFaultKind::ProcessorCrash);
                let proc = &mut self.procs[p];
                if let Some(core) = proc.core.take() {
                    proc.ballots_before += core.counters().ballots;
                    proc.aborts_before += core.counters().aborts;
                }
                proc.incarnation += 1;
                self.decided[p] = None;
                let at = self.now_us + down_us;
                self.schedule(at, Event::ProcessorRestart { p });
            }
            Event::ProcessorRestart { p } => {
                if self.procs[p].core.is_none() {
                    self.start_processor(p);
                }
            }
            Event::FaultsStop => self.faults_stop(),
        }
    }

    /// Processes one event; false once the run is over.
    pub fn step(&mut self) -> bool {
        if self.quiet && self.decided.iter().all(Option::is_some) {
            return false;
        }
        if self.quiet && self.now_us > self.quiet_since_us + self.config.liveness_bound_us {
            return false;
        }
        let Some(((at, _), event)) = self.events.pop_first() else {
            return false;
        };
        self.now_us = at;
        self.handle(event);
        true
    }

    /// Runs to the end and reports.
    pub fn run(mut self) -> DiskRunReport {
        while self.step() {}
        self.finish()
    }

    /// The report, with the end-of-run checks.
    pub fn finish(mut self) -> DiskRunReport {
        if self.decided.iter().all(Option::is_some) && self.quiet {
            self.report.decided_all_after_us = Some(self.now_us - self.quiet_since_us);
        } else {
            let missing: Vec<String> = (0..self.procs.len())
                .filter(|p| self.decided[*p].is_none())
                .map(|p| (p + 1).to_string())
                .collect();
            let msg = format!(
                "processors {} had not decided {} µs after faults stopped",
                missing.join(", "),
                self.config.liveness_bound_us
            );
            self.violation(DiskCheck::Liveness, msg);
        }
        for proc in &self.procs {
            let (b, a) = proc
                .core
                .as_ref()
                .map_or((0, 0), |c| (c.counters().ballots, c.counters().aborts));
            self.report.ballots += proc.ballots_before + b;
            self.report.aborts += proc.aborts_before + a;
        }
        self.report.simulated_us = self.now_us;
        self.report
    }
}

impl crate::campaign::SeedRun for DiskSimConfig {
    type Report = DiskRunReport;
    fn run(self) -> DiskRunReport {
        DiskSimulation::new(self).run()
    }
    fn panicked(&self, message: String) -> DiskRunReport {
        DiskRunReport {
            seed: self.seed,
            processors: self.processors,
            disks: self.disks,
            bugs: crate::sim::bug_names(self.bugs),
            simulated_us: 0,
            decisions: 0,
            decided: None,
            faults: BTreeMap::new(),
            ballots: 0,
            aborts: 0,
            requests: 0,
            requests_failed: 0,
            decided_all_after_us: None,
            violations: vec![(DiskCheck::NoPanic, message)],
            trace: Vec::new(),
        }
    }
}

/// Runs one seed; a panic is a `NoPanic` violation.
pub fn run_disk_seed(config: DiskSimConfig) -> DiskRunReport {
    crate::campaign::run_guarded(config)
}

/// A campaign's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DiskCampaignReport {
    /// Processors per run.
    pub processors: usize,
    /// Disks per run.
    pub disks: usize,
    /// Seeds run.
    pub seeds_run: u64,
    /// Decisions, over all runs.
    pub decisions: u64,
    /// Runs in which every processor decided.
    pub runs_all_decided: u64,
    /// Faults by kind, summed.
    pub faults: BTreeMap<DiskFaultKind, u64>,
    /// Fault kinds that never fired in any run.
    pub never_fired: Vec<DiskFaultKind>,
    /// Ballots and aborts, summed.
    pub ballots: u64,
    /// Aborts on a higher mbal, summed.
    pub aborts: u64,
    /// Disk requests and failed ones, summed.
    pub requests: u64,
    /// Failed requests, summed.
    pub requests_failed: u64,
    /// Violations by check.
    pub violations: BTreeMap<DiskCheck, u64>,
    /// Failing seeds, in order, with their first violation.
    pub failing_seeds: Vec<(u64, String)>,
    /// Slowest time from faults stopping to all decided, microseconds.
    pub decided_all_after_us_max: u64,
}

impl DiskCampaignReport {
    /// Sums runs.
    pub fn from_runs(runs: &[DiskRunReport]) -> DiskCampaignReport {
        let mut r = DiskCampaignReport {
            faults: DiskFaultKind::ALL.iter().map(|k| (*k, 0)).collect(),
            ..DiskCampaignReport::default()
        };
        for run in runs {
            r.processors = run.processors;
            r.disks = run.disks;
            r.seeds_run += 1;
            r.decisions += run.decisions;
            if run.decided_all_after_us.is_some() {
                r.runs_all_decided += 1;
            }
            r.decided_all_after_us_max = r
                .decided_all_after_us_max
                .max(run.decided_all_after_us.unwrap_or(0));
            add_counts(&mut r.faults, &run.faults);
            r.ballots += run.ballots;
            r.aborts += run.aborts;
            r.requests += run.requests;
            r.requests_failed += run.requests_failed;
            note_violations(
                &mut r.violations,
                &mut r.failing_seeds,
                run.seed,
                &run.violations,
            );
        }
        r.never_fired = r
            .faults
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(k, _)| *k)
            .collect();
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
}

crate::campaign::impl_campaign_totals!(DiskCampaignReport, failing_seeds);

impl fmt::Display for DiskCampaignReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "disk-paxos campaign: {} processors, {} disks",
            self.processors, self.disks
        )?;
        writeln!(f, "  seeds run             {}", self.seeds_run)?;
        writeln!(f, "  decisions             {}", self.decisions)?;
        writeln!(
            f,
            "  runs all decided      {} of {} (slowest {} µs after faults stopped)",
            self.runs_all_decided, self.seeds_run, self.decided_all_after_us_max
        )?;
        writeln!(
            f,
            "  ballots               {} ({} aborted on a higher mbal)",
            self.ballots, self.aborts
        )?;
        writeln!(
            f,
            "  disk requests         {} ({} failed)",
            self.requests, self.requests_failed
        )?;
        writeln!(f, "  faults by kind")?;
        for (k, n) in &self.faults {
            writeln!(f, "    {:<24}{}", k.name(), n)?;
        }
        if self.never_fired.is_empty() {
            writeln!(f, "  every fault kind fired")?;
        } else {
            let names: Vec<&str> = self.never_fired.iter().map(|k| k.name()).collect();
            writeln!(f, "  NEVER FIRED           {}", names.join(", "))?;
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

/// Runs seeds `seeds` with `make(seed)` configurations on `threads` threads; reports sorted
/// by seed, so the figures do not depend on the thread count.
pub fn run_disk_seeds(
    seeds: Range<u64>,
    threads: usize,
    make: &(dyn Fn(u64) -> DiskSimConfig + Sync),
) -> Vec<DiskRunReport> {
    crate::campaign::run_seed_range(seeds, threads, &|seed| run_disk_seed(make(seed)), &|_| {})
}

/// A campaign over `seeds` with the default configuration.
pub fn run_disk_campaign(
    seeds: Range<u64>,
    processors: usize,
    disks: usize,
    bugs: PlantedBugs,
    threads: usize,
) -> DiskCampaignReport {
    let runs = run_disk_seeds(seeds, threads, &|seed| {
        let mut c = DiskSimConfig::new(seed, processors, disks);
        c.bugs = bugs;
        c
    });
    DiskCampaignReport::from_runs(&runs)
}
