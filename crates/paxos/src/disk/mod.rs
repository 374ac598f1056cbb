//! Disk Paxos (Gafni and Lamport, *Disk Paxos*, Distributed Computing 16, 2003): consensus
//! among processors that share no memory and send no messages, only disks.
//!
//! Each of N processors owns one block on each of M disks, a [`DiskBlock`] `(mbal, bal, inp)`
//! (the paper's `dblock[p]`). A processor writes only its own block, on every disk, and reads
//! every other processor's block on every disk. A majority of disks stands in for a quorum of
//! acceptors: a *phase* succeeds once, for a majority of disks, the processor wrote its block
//! to the disk and *then* read every other processor's block from it (section 2.2). It aborts
//! when it reads a block with a higher `mbal`, and retries later with a higher ballot.
//!
//! A [`DiskProcessor`] is sans-IO: it emits [`DiskIo`] requests ("write my block to disk d",
//! "read these processors' blocks from disk d") and is fed their [`Completion`]s, which may
//! be failures: a disk that is down, slow past a deadline, or holds a block that does not
//! pass its checksum is simply a disk that did not answer. Time arrives as ticks; randomness
//! (retry backoff) from the caller's generator. A processor keeps nothing of its own across a
//! crash: it restarts by reading its own block back from a majority of disks (phase 0 of the
//! paper's TLA+ specification), so its state is exactly what it wrote to disks.
//!
//! ```
//! use paxos::disk::{Completion, DiskConfig, DiskIo, DiskProcessor, DiskPaxosOptions};
//! use paxos::disk::DiskBlock;
//! use paxos::{NodeId, PlantedBugs};
//! use rand_chacha::{rand_core::SeedableRng, ChaCha8Rng};
//!
//! // One processor, three in-memory disks that answer at once.
//! let config = DiskConfig::new(1, 3).unwrap();
//! let mut p = DiskProcessor::new(NodeId(1), config, DiskPaxosOptions::default(), PlantedBugs::none()).unwrap();
//! p.propose(b"v".to_vec()).unwrap();
//! let mut disks = vec![vec![DiskBlock::INITIAL]; 3];
//! let mut rng = ChaCha8Rng::seed_from_u64(1);
//! for _ in 0..100 {
//!     p.tick(&mut rng);
//!     for io in p.ready().io {
//!         let done = match io {
//!             DiskIo::Write { disk, tag, block } => {
//!                 disks[disk.0 as usize][0] = block;
//!                 Completion::Written { disk, tag }
//!             }
//!             DiskIo::Read { disk, tag, of } => {
//!                 let blocks = of.iter().map(|q| (*q, disks[disk.0 as usize][0].clone())).collect();
//!                 Completion::Read { disk, tag, blocks }
//!             }
//!         };
//!         p.completed(done);
//!     }
//! }
//! assert_eq!(p.decided(), Some(&b"v".to_vec()));
//! ```

use crate::bugs::{Bug, PlantedBugs};
use crate::ids::{Ballot, NodeId};
use rand_core::RngCore;
use serde::{Deserialize, Serialize};

#[cfg(test)]
mod tests;

/// At most this many processors share the disks.
pub const PROCESSORS_MAX: usize = 16;
/// At most this many disks.
pub const DISKS_MAX: usize = 16;
/// The longest input a processor may propose, in bytes (a block has a fixed size on disk).
pub const VALUE_BYTES_MAX: usize = 64;

/// A value to agree on: a processor's input, at most [`VALUE_BYTES_MAX`] bytes.
pub type Value = Vec<u8>;

/// A disk, numbered from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DiskId(pub u8);

/// One processor's block on one disk: the paper's `dblock[p]` (section 2.2).
///
/// `mbal` is the ballot of the processor's current (or last) attempt, the promise others must
/// not pass; `bal` and `inp` are its vote: the highest ballot at which it completed (or began)
/// phase 2, and the value of that ballot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DiskBlock {
    /// The ballot of the processor's latest attempt.
    pub mbal: Ballot,
    /// The ballot of its vote, [`Ballot::ZERO`] if none.
    pub bal: Ballot,
    /// The value of its vote (`None` exactly when `bal` is zero).
    pub inp: Option<Value>,
}

impl DiskBlock {
    /// The block every disk holds before its processor wrote anything.
    pub const INITIAL: DiskBlock = DiskBlock {
        mbal: Ballot::ZERO,
        bal: Ballot::ZERO,
        inp: None,
    };

    /// Whether the block could have been written by a correct processor: `bal <= mbal`, a
    /// vote exactly when `bal` is real, a value within bounds. The core treats a block that
    /// fails this as a failed read (a checksum cannot catch a well-formed lie, but it can).
    pub fn is_well_formed(&self) -> bool {
        self.bal <= self.mbal
            && self.bal.is_real() == self.inp.is_some()
            && self.inp.as_ref().is_none_or(|v| v.len() <= VALUE_BYTES_MAX)
    }
}

/// Processors and disks. Processors are `NodeId(1..=processors)`; disks `DiskId(0..disks)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DiskConfig {
    processors: usize,
    disks: usize,
}

/// A configuration out of bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DiskConfigError {
    /// Processors must be 1 to [`PROCESSORS_MAX`].
    #[error("processors must be 1 to {PROCESSORS_MAX}, got {0}")]
    Processors(usize),
    /// Disks must be 1 to [`DISKS_MAX`].
    #[error("disks must be 1 to {DISKS_MAX}, got {0}")]
    Disks(usize),
    /// The processor id is not one of `1..=processors`.
    #[error("processor {0} is not one of 1..=processors")]
    NotAProcessor(u64),
}

impl DiskConfig {
    /// `processors` processors sharing `disks` disks.
    pub fn new(processors: usize, disks: usize) -> Result<DiskConfig, DiskConfigError> {
        if !(1..=PROCESSORS_MAX).contains(&processors) {
            return Err(DiskConfigError::Processors(processors));
        }
        if !(1..=DISKS_MAX).contains(&disks) {
            return Err(DiskConfigError::Disks(disks));
        }
        Ok(DiskConfig { processors, disks })
    }
    /// Number of processors.
    pub fn processors(&self) -> usize {
        self.processors
    }
    /// Number of disks.
    pub fn disks(&self) -> usize {
        self.disks
    }
    /// Disks a phase must complete on: a majority.
    pub fn majority(&self) -> usize {
        self.disks / 2 + 1
    }
    /// Every processor id.
    pub fn processor_ids(&self) -> impl Iterator<Item = NodeId> {
        (1..=self.processors as u64).map(NodeId)
    }
    /// Every disk id.
    pub fn disk_ids(&self) -> impl Iterator<Item = DiskId> {
        (0..self.disks as u8).map(DiskId)
    }
    /// The slot of processor `p` on each disk (0-based), if it is one.
    pub fn index_of(&self, p: NodeId) -> Option<usize> {
        (1..=self.processors as u64)
            .contains(&p.0)
            .then(|| (p.0 - 1) as usize)
    }
}

/// Names one attempt's requests, so a completion from an earlier attempt (a slow disk
/// answering late) is recognized and ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IoTag(pub u64);

/// A request to a disk.
///
/// **Order:** the driver must perform one processor's requests to one disk in the order they
/// were issued, each finished (a write synced) before the next starts: one queue per disk, as
/// a driver with one I/O thread per disk has. Otherwise a late write of an abandoned phase
/// could land over a newer block of the same processor and roll back its vote (the simulator
/// found exactly that before its disks had queues). Requests to different disks run in
/// parallel.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DiskIo {
    /// Write this processor's own block on `disk`, durably, then answer
    /// [`Completion::Written`].
    Write {
        /// The disk.
        disk: DiskId,
        /// The attempt.
        tag: IoTag,
        /// The block (always this processor's own).
        block: DiskBlock,
    },
    /// Read the blocks of processors `of` on `disk`, then answer [`Completion::Read`] with
    /// exactly those blocks. A block never written reads as [`DiskBlock::INITIAL`].
    Read {
        /// The disk.
        disk: DiskId,
        /// The attempt.
        tag: IoTag,
        /// Whose blocks, in increasing order.
        of: Vec<NodeId>,
    },
}

impl DiskIo {
    /// The disk the request is for.
    pub fn disk(&self) -> DiskId {
        match self {
            DiskIo::Write { disk, .. } | DiskIo::Read { disk, .. } => *disk,
        }
    }
}

/// The outcome of a [`DiskIo`], fed back through [`DiskProcessor::completed`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Completion {
    /// The block is durably on the disk.
    Written {
        /// The disk.
        disk: DiskId,
        /// The request's tag.
        tag: IoTag,
    },
    /// The blocks read.
    Read {
        /// The disk.
        disk: DiskId,
        /// The request's tag.
        tag: IoTag,
        /// One block per requested processor.
        blocks: Vec<(NodeId, DiskBlock)>,
    },
    /// The request failed: the disk is unavailable, timed out, or a block is torn or corrupt.
    Failed {
        /// The disk.
        disk: DiskId,
        /// The request's tag.
        tag: IoTag,
    },
}

/// Timings, in ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DiskPaxosOptions {
    /// A phase (or the restart read) not finished after this many ticks is given up.
    pub phase_timeout_ticks: u32,
    /// After an abort, a failure or a timeout, wait this many ticks before the next attempt...
    pub retry_timeout_ticks: u32,
    /// ...plus up to this many more, drawn from the caller's generator (ends duels).
    pub retry_jitter_ticks: u32,
}

impl Default for DiskPaxosOptions {
    fn default() -> Self {
        DiskPaxosOptions {
            phase_timeout_ticks: 20,
            retry_timeout_ticks: 5,
            retry_jitter_ticks: 20,
        }
    }
}

/// Where a processor stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Stage {
    /// Phase 0: reading its own block back from the disks after a (re)start.
    Recovering,
    /// Not in a ballot: waiting for the retry timer or [`DiskProcessor::campaign`].
    Idle,
    /// Phase 1 of ballot `mbal`: choosing the value.
    Phase1,
    /// Phase 2: writing the vote.
    Phase2,
    /// Decided.
    Decided,
}

/// How often things happened, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DiskCounters {
    /// Ballots started (phase 1 entered).
    pub ballots: u64,
    /// Ballots aborted on reading a higher `mbal`.
    pub aborts: u64,
    /// Phases (and restart reads) given up on a deadline.
    pub timeouts: u64,
    /// Phases given up because too many disks failed.
    pub majority_lost: u64,
    /// Failed completions.
    pub failed_io: u64,
    /// Completions ignored: an earlier attempt's, a bad disk, or a malformed answer.
    pub ignored: u64,
    /// Blocks read that were not well formed (counted as failed reads).
    pub malformed: u64,
}

/// Outputs, in order: requests to issue (any order, in parallel), then the decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskReady {
    /// Disk requests to issue now.
    pub io: Vec<DiskIo>,
    /// The decided value, the first time.
    pub decided: Option<Value>,
}

/// A proposal the core refuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// The value is longer than [`VALUE_BYTES_MAX`].
    #[error("value of {0} bytes is longer than {VALUE_BYTES_MAX}")]
    TooLong(usize),
}

/// Disks answered in the current phase: bit `d` for disk `d`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
struct DiskMask(u32);

impl DiskMask {
    fn has(self, d: DiskId) -> bool {
        self.0 & (1 << d.0) != 0
    }
    fn insert(&mut self, d: DiskId) {
        self.0 |= 1 << d.0;
    }
    fn count(self) -> usize {
        self.0.count_ones() as usize
    }
}

/// One processor of Disk Paxos.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DiskProcessor {
    id: NodeId,
    config: DiskConfig,
    options: DiskPaxosOptions,
    bugs: PlantedBugs,
    now_ticks: u64,
    input: Option<Value>,
    /// The paper's `dblock[p]`: what this processor last wrote (or is writing).
    dblock: DiskBlock,
    /// The highest round of any `mbal` seen: the next ballot is above it.
    round_seen: u64,
    stage: Stage,
    tag: IoTag,
    /// Disks whose write completed in this phase.
    written: DiskMask,
    /// Disks whose read completed (after the write) in this phase.
    read: DiskMask,
    /// Disks that failed in this phase.
    failed: DiskMask,
    /// Phase 0: the own block with the highest `bal` read back so far, and the highest `mbal`.
    /// Phase 1: the highest-`bal` vote read from others.
    best: Option<(Ballot, Value)>,
    recovered_mbal: Ballot,
    /// Ticks at which the current phase is given up, or the next attempt starts.
    deadline_ticks: Option<u64>,
    decided: Option<Value>,
    decided_reported: bool,
    io: Vec<DiskIo>,
    counters: DiskCounters,
}

impl DiskProcessor {
    /// A processor starting (or restarting: it is the same thing) with nothing in memory. Its
    /// first outputs read its own block back from every disk (phase 0).
    pub fn new(
        id: NodeId,
        config: DiskConfig,
        options: DiskPaxosOptions,
        bugs: PlantedBugs,
    ) -> Result<DiskProcessor, DiskConfigError> {
        if config.index_of(id).is_none() {
            return Err(DiskConfigError::NotAProcessor(id.0));
        }
        let mut p = DiskProcessor {
            id,
            config,
            options,
            bugs,
            now_ticks: 0,
            input: None,
            dblock: DiskBlock::INITIAL,
            round_seen: 0,
            stage: Stage::Recovering,
            tag: IoTag(0),
            written: DiskMask::default(),
            read: DiskMask::default(),
            failed: DiskMask::default(),
            best: None,
            recovered_mbal: Ballot::ZERO,
            deadline_ticks: None,
            decided: None,
            decided_reported: false,
            io: Vec::new(),
            counters: DiskCounters::default(),
        };
        p.start_recovery();
        Ok(p)
    }

    /// This processor's id.
    pub fn id(&self) -> NodeId {
        self.id
    }
    /// Where it stands.
    pub fn stage(&self) -> Stage {
        self.stage
    }
    /// Its block as last written (or being written).
    pub fn block(&self) -> &DiskBlock {
        &self.dblock
    }
    /// The decided value, once decided.
    pub fn decided(&self) -> Option<&Value> {
        self.decided.as_ref()
    }
    /// Its input, once proposed.
    pub fn input(&self) -> Option<&Value> {
        self.input.as_ref()
    }
    /// The tag of the current attempt's requests: completions with another are ignored.
    pub fn current_tag(&self) -> IoTag {
        self.tag
    }
    /// Counters.
    pub fn counters(&self) -> DiskCounters {
        self.counters
    }
    /// The configuration.
    pub fn config(&self) -> DiskConfig {
        self.config
    }

    /// Gives the processor its input. It tries to decide (its own input, or the value a
    /// ballot before it may have chosen) once recovered, when the retry timer fires or on
    /// [`DiskProcessor::campaign`]. A second call replaces an input not yet used.
    pub fn propose(&mut self, value: Value) -> Result<(), ProposeError> {
        if value.len() > VALUE_BYTES_MAX {
            return Err(ProposeError::TooLong(value.len()));
        }
        self.input = Some(value);
        Ok(())
    }

    /// Starts a ballot now if it is idle with an input: the leader-election hint of section 3
    /// (the paper's liveness assumes eventually a single processor tries).
    pub fn campaign(&mut self) {
        if self.stage == Stage::Idle && self.input.is_some() {
            self.start_ballot();
        }
    }

    /// Advances time by one tick; `rng` draws the retry backoff.
    pub fn tick(&mut self, rng: &mut impl RngCore) {
        self.now_ticks += 1;
        let Some(at) = self.deadline_ticks else {
            if self.stage == Stage::Idle && self.input.is_some() {
                self.schedule_retry(rng);
            }
            return;
        };
        if self.now_ticks < at {
            return;
        }
        self.deadline_ticks = None;
        match self.stage {
            Stage::Recovering => {
                self.counters.timeouts += 1;
                self.start_recovery();
            }
            Stage::Phase1 | Stage::Phase2 => {
                self.counters.timeouts += 1;
                self.give_up();
                self.schedule_retry(rng);
            }
            Stage::Idle => {
                if self.input.is_some() {
                    self.start_ballot();
                }
            }
            Stage::Decided => {}
        }
    }

    fn schedule_retry(&mut self, rng: &mut impl RngCore) {
        let jitter = rng.next_u32() % (self.options.retry_jitter_ticks.saturating_add(1)).max(1);
        let wait = u64::from(self.options.retry_timeout_ticks) + u64::from(jitter);
        self.deadline_ticks = Some(self.now_ticks + wait.max(1));
    }

    fn new_phase(&mut self) {
        // Requests of an earlier attempt not yet issued are useless now: this bounds `io` to
        // one phase's requests (a write and a read per disk).
        self.io.clear();
        self.tag = IoTag(self.tag.0 + 1);
        self.written = DiskMask::default();
        self.read = DiskMask::default();
        self.failed = DiskMask::default();
        self.deadline_ticks = Some(self.now_ticks + u64::from(self.options.phase_timeout_ticks));
    }

    /// Phase 0: read the own block back from every disk.
    fn start_recovery(&mut self) {
        self.stage = Stage::Recovering;
        self.new_phase();
        self.best = None;
        self.recovered_mbal = Ballot::ZERO;
        let tag = self.tag;
        for disk in self.config.disk_ids() {
            let of = vec![self.id];
            self.io.push(DiskIo::Read { disk, tag, of });
        }
    }

    /// Phase 1 of a new ballot above every `mbal` seen (section 2.2).
    fn start_ballot(&mut self) {
        self.counters.ballots += 1;
        self.round_seen += 1;
        self.dblock.mbal = Ballot::new(self.round_seen, self.id);
        self.stage = Stage::Phase1;
        self.best = None;
        self.write_everywhere();
    }

    fn write_everywhere(&mut self) {
        self.new_phase();
        let tag = self.tag;
        for disk in self.config.disk_ids() {
            let block = self.dblock.clone();
            self.io.push(DiskIo::Write { disk, tag, block });
        }
    }

    /// Back to idle: the ballot is abandoned (the paper lets a processor abort at any time).
    fn give_up(&mut self) {
        self.stage = Stage::Idle;
        self.tag = IoTag(self.tag.0 + 1);
        self.deadline_ticks = None;
    }

    /// Feeds the outcome of a request.
    pub fn completed(&mut self, completion: Completion) {
        let (disk, tag) = match &completion {
            Completion::Written { disk, tag }
            | Completion::Read { disk, tag, .. }
            | Completion::Failed { disk, tag } => (*disk, *tag),
        };
        if tag != self.tag || usize::from(disk.0) >= self.config.disks {
            self.counters.ignored += 1;
            return;
        }
        match completion {
            Completion::Failed { .. } => self.on_failed(disk),
            Completion::Written { .. } => self.on_written(disk),
            Completion::Read { blocks, .. } => self.on_read(disk, blocks),
        }
    }

    fn on_failed(&mut self, disk: DiskId) {
        self.counters.failed_io += 1;
        if self.failed.has(disk) {
            return;
        }
        self.failed.insert(disk);
        if self.config.disks - self.failed.count() >= self.config.majority() {
            return;
        }
        // A majority can no longer answer in this phase.
        self.counters.majority_lost += 1;
        match self.stage {
            // The restart read is retried when its deadline passes.
            Stage::Recovering => {}
            Stage::Phase1 | Stage::Phase2 => {
                self.give_up();
            }
            Stage::Idle | Stage::Decided => {}
        }
    }

    fn on_written(&mut self, disk: DiskId) {
        if !matches!(self.stage, Stage::Phase1 | Stage::Phase2) || self.written.has(disk) {
            self.counters.ignored += 1;
            return;
        }
        self.written.insert(disk);
        // Read only after the write completed on this disk: of two processors writing then
        // reading the same disk, one sees the other's block (the heart of section 2.2).
        let of: Vec<NodeId> = self
            .config
            .processor_ids()
            .filter(|q| *q != self.id)
            .collect();
        if of.is_empty() {
            self.read.insert(disk);
            self.check_phase_done();
        } else {
            let tag = self.tag;
            self.io.push(DiskIo::Read { disk, tag, of });
        }
    }

    /// The blocks of a read answer, if it answers exactly the request.
    fn expected_blocks(&self, blocks: &[(NodeId, DiskBlock)]) -> bool {
        let mut expected = self.config.processor_ids().filter(|q| match self.stage {
            Stage::Recovering => *q == self.id,
            _ => *q != self.id,
        });
        let mut got = blocks.iter().map(|(q, _)| *q);
        loop {
            match (expected.next(), got.next()) {
                (None, None) => return true,
                (Some(a), Some(b)) if a == b => {}
                _ => return false,
            }
        }
    }

    fn on_read(&mut self, disk: DiskId, blocks: Vec<(NodeId, DiskBlock)>) {
        let reading = match self.stage {
            Stage::Recovering => true,
            Stage::Phase1 | Stage::Phase2 => self.written.has(disk),
            Stage::Idle | Stage::Decided => false,
        };
        if !reading || self.read.has(disk) || self.failed.has(disk) {
            self.counters.ignored += 1;
            return;
        }
        if !self.expected_blocks(&blocks) {
            self.counters.ignored += 1;
            return;
        }
        if blocks.iter().any(|(_, b)| !b.is_well_formed()) {
            self.counters.malformed += 1;
            self.on_failed(disk);
            return;
        }
        if self.stage == Stage::Recovering {
            self.recovery_read(disk, blocks);
        } else {
            self.phase_read(disk, blocks);
        }
    }

    fn recovery_read(&mut self, disk: DiskId, blocks: Vec<(NodeId, DiskBlock)>) {
        for (_, block) in blocks {
            self.round_seen = self.round_seen.max(block.mbal.round);
            self.recovered_mbal = self.recovered_mbal.max(block.mbal);
            if let Some(inp) = block.inp {
                if self.best.as_ref().is_none_or(|(b, _)| block.bal > *b) {
                    self.best = Some((block.bal, inp));
                }
            }
        }
        self.read.insert(disk);
        if self.read.count() < self.config.majority() {
            return;
        }
        // EndPhase0: the block with the highest bal read from a majority; the next ballot will
        // be above every mbal read. The disks not read may hold a later block of ours, written
        // when we crashed: only ones that never completed on a majority, which no phase of
        // ours counted.
        let (bal, inp) = match self.best.take() {
            Some((b, v)) => (b, Some(v)),
            None => (Ballot::ZERO, None),
        };
        self.dblock = DiskBlock {
            mbal: self.recovered_mbal,
            bal,
            inp,
        };
        self.stage = Stage::Idle;
        self.tag = IoTag(self.tag.0 + 1);
        self.deadline_ticks = None;
    }

    fn phase_read(&mut self, disk: DiskId, blocks: Vec<(NodeId, DiskBlock)>) {
        for (_, block) in blocks {
            self.round_seen = self.round_seen.max(block.mbal.round);
            if block.mbal > self.dblock.mbal {
                // Another processor started a higher ballot: abort (section 2.2).
                self.counters.aborts += 1;
                self.give_up();
                return;
            }
            if self.stage == Stage::Phase1 {
                if let Some(inp) = block.inp {
                    if self.best.as_ref().is_none_or(|(b, _)| block.bal > *b) {
                        self.best = Some((block.bal, inp));
                    }
                }
            }
        }
        self.read.insert(disk);
        self.check_phase_done();
    }

    /// A phase is done once a majority of disks was written and then read.
    fn check_phase_done(&mut self) {
        let done = self.written.0 & self.read.0;
        let needed = if self.bugs.has(Bug::DecideWithoutDiskMajority) {
            1
        } else {
            self.config.majority()
        };
        if (done.count_ones() as usize) < needed {
            return;
        }
        match self.stage {
            Stage::Phase1 => self.end_phase1(),
            Stage::Phase2 => self.end_phase2(),
            _ => {}
        }
    }

    fn end_phase1(&mut self) {
        // The value of the highest-bal vote read, counting our own; else our own input.
        let own = self
            .dblock
            .inp
            .clone()
            .map(|v| (self.dblock.bal, v))
            .filter(|(b, _)| b.is_real());
        let highest = match (self.best.take(), own) {
            (Some(a), Some(b)) => Some(if a.0 > b.0 { a } else { b }),
            (a, b) => a.or(b),
        };
        let value = match highest {
            Some((_, v)) => v,
            None => match self.input.clone() {
                Some(v) => v,
                None => {
                    self.give_up();
                    return;
                }
            },
        };
        self.dblock.bal = self.dblock.mbal;
        self.dblock.inp = Some(value);
        self.stage = Stage::Phase2;
        self.write_everywhere();
    }

    fn end_phase2(&mut self) {
        self.stage = Stage::Decided;
        self.tag = IoTag(self.tag.0 + 1);
        self.deadline_ticks = None;
        self.decided = self.dblock.inp.clone();
    }

    /// Drains the requests to issue and the decision.
    pub fn ready(&mut self) -> DiskReady {
        let decided = match (&self.decided, self.decided_reported) {
            (Some(v), false) => {
                self.decided_reported = true;
                Some(v.clone())
            }
            _ => None,
        };
        DiskReady {
            io: std::mem::take(&mut self.io),
            decided,
        }
    }
}
