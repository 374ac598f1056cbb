//! The member-level simulation: N real [`member::Member`]s (the code a `synod` member runs,
//! around the real Paxos core and the real MVCC store), each on the real `storage` crate over
//! its own [`MemFs`], driven by one seeded generator in virtual time, with simulated etcd
//! clients, the nemesis's network faults and crashes (at random times and at the member's
//! own named crash points), and checkers.
//!
//! A run is a pure function of its [`MemberSimConfig`]: events are ordered by `(time,
//! sequence number)`, every member's randomness is a generator derived from the run's, and no
//! hash map is iterated where order matters.
//!
//! - `driver.rs`: one member's storage side, as `crates/node` does it (boot and recovery,
//!   the log, snapshot files and transfers).
//! - `clients.rs`: what the clients ask (etcd's KV and Lease requests as `kv` types) and what
//!   answers mean.
//! - `check.rs`: the checks (linearizability through `lincheck`'s etcd model, revisions never
//!   going back, stores equal at equal applied slots, historical reads agreeing, liveness).
//! - `watch.rs`: watches as the node's Watch service serves them, checked for etcd's watch
//!   guarantees against every change the members applied.
//! - `locks.rs`: clients of etcd's Lock and Election services running the node's recipe
//!   (`kv::recipe`), checked for one holder at a time, growing fencing revisions and
//!   observations that never go back.
//! - `report.rs`: figures per run and per campaign.
//!
//! A run: a fault phase (clients busy, network faults and crashes as the seed's plan says),
//! a quiet phase (everything healed and restarted, clients still busy), then a drain (no new
//! operations; the run ends once every operation is answered and the members converged, or
//! at the liveness bound).

mod check;
mod clients;
mod clocks;
mod driver;
mod keepalive;
mod locks;
mod operator;
pub mod report;
mod watch;

pub use check::{MemberCheck, MemberViolation};
pub use member::bugs::{MemberBug, MemberBugs};
pub use report::{
    run_member_seed, run_member_seeds, MemberCampaignReport, MemberCampaignSpec, MemberRunReport,
};

use crate::faults::{FaultKind, FaultPlan, FaultProfile, LinkMatrix, PartitionShape};
use crate::rng::{below, chance_permille, range};
use clients::{ClientOp, Outcome};
use driver::{boot, due, queue_later, BootParts, ChunkRead, ChunkStore, DiskWrite, Running};
use lincheck::etcd::EtcdOperation;
use member::peer::PeerMessage;
use member::{CrashPoint, MemberOptions, Micros, Output, RequestId};
use paxos::multi::{PersistOp, ReplicaOptions};
use paxos::Slot;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::Duration;
use storage::memfs::MemFs;
use watch::{Reference, Watch};

/// Every member crash point, for arming and for reports.
pub const CRASH_POINTS: [CrashPoint; 6] = [
    CrashPoint::BeforeWalSync,
    CrashPoint::AfterWalSync,
    CrashPoint::BeforeApply,
    CrashPoint::AfterApply,
    CrashPoint::DuringSnapshot,
    CrashPoint::DuringCompaction,
];

/// What a member-level run is.
#[derive(Clone, Debug)]
pub struct MemberSimConfig {
    /// The seed: the run is a function of it (and of the rest of this).
    pub seed: u64,
    /// Members.
    pub nodes: usize,
    /// Fault profile (disk damage is not simulated at member level: `disk` means crashes).
    pub faults: FaultProfile,
    /// Concurrent clients.
    pub clients: usize,
    /// Key groups (each a lincheck partition).
    pub groups: u64,
    /// Watches open at once (each over one group, re-created across crashes and cancels).
    pub watches: usize,
    /// Lock and election clients (each contends for one of two locks or two elections).
    pub lockers: usize,
    /// Planted member bugs.
    pub bugs: MemberBugs,
    /// Member tick, microseconds.
    pub tick_us: u64,
    /// Fault phase, microseconds.
    pub fault_phase_us: u64,
    /// Quiet phase with clients still busy, microseconds.
    pub quiet_ops_us: u64,
    /// Drain bound after the quiet phase (liveness), microseconds.
    pub drain_max_us: u64,
    /// A snapshot every this many applied slots (small, so that runs snapshot, compact and
    /// transfer often).
    pub snapshot_every_slots: u64,
    /// Keep a line per event ([`MemberSimulation::trace`]); the trace hash is kept always.
    pub trace: bool,
    /// An operator changes the membership through the members' Cluster API while faults
    /// run: adds learners, promotes them, removes followers, the leader and members that are
    /// down; a removed member's disk is wiped and its place comes back later under a new id
    /// (etcd's replacement procedure). Needs [`MemberSimConfig::spares`] places to grow into.
    pub membership: bool,
    /// Places outside the first configuration, for members the operator adds.
    pub spares: usize,
    /// Wipe disks at crashes (as the plan draws), with or without membership changes: the
    /// member rebuilds through the core's rebuild path (rebuild.rs), votes again only once
    /// it holds the chosen log, and counts as rebuilt once `VoteRegained` is on its disk.
    /// On by default (`synod sim --member --no-wipes` turns it off).
    pub wipes: bool,
    /// Leader leases (`synod sim --member --leases`): the replicas run them with this drift
    /// bound, each place's clock drifts within it, and the leader is paused now and then as
    /// a stopped process is (`clocks.rs`). `None` by default: every clock keeps true time.
    pub leases: Option<crate::leases::ClockModel>,
    /// Slow disks: every log write of the first [`SlowDisk::places`] places takes
    /// [`SlowDisk::latency_us`] more (a disk whose syncs outlast the election timeout).
    /// `None` by default; never drawn, so it changes no seed's run when off.
    pub slow_disk: Option<SlowDisk>,
}

/// Disks slower than the plan's (see [`MemberSimConfig::slow_disk`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlowDisk {
    /// How many places, from the first, have the slow disk.
    pub places: usize,
    /// Added to each of their log writes, microseconds.
    pub latency_us: u64,
}

impl MemberSimConfig {
    /// Defaults for `seed` with `nodes` members and `faults`.
    pub fn new(seed: u64, nodes: usize, faults: FaultProfile) -> MemberSimConfig {
        MemberSimConfig {
            seed,
            nodes,
            faults,
            clients: 4,
            groups: 6,
            watches: 3,
            lockers: 4,
            bugs: MemberBugs::none(),
            tick_us: 5_000,
            fault_phase_us: 3_000_000,
            quiet_ops_us: 1_000_000,
            drain_max_us: 4_000_000,
            snapshot_every_slots: 40,
            trace: false,
            membership: false,
            spares: 2,
            wipes: true,
            leases: None,
            slow_disk: None,
        }
    }

    /// Every place a member can run in: the first members, and the spares with membership
    /// changes.
    pub fn places(&self) -> usize {
        self.nodes + if self.membership { self.spares } else { 0 }
    }

    fn replica_options(&self) -> ReplicaOptions {
        ReplicaOptions {
            heartbeat_ticks: 2,
            election_timeout_ticks: 10,
            election_jitter_ticks: 10,
            leader_lease: self.leases.map(|m| paxos::multi::LeaderLease {
                max_drift_ppm: m.drift_ppm,
            }),
            ..ReplicaOptions::default()
        }
    }

    fn member_options(
        &self,
        members: Vec<u64>,
        crash_at: Option<(CrashPoint, u32)>,
    ) -> MemberOptions {
        MemberOptions {
            members,
            tick: Duration::from_micros(self.tick_us),
            request_timeout: Duration::from_millis(1_000),
            quota_bytes: 1 << 30,
            client_urls: vec![],
            snapshot_every_slots: self.snapshot_every_slots,
            crash_at,
            table: Default::default(),
            // Set per member at boot (driver.rs).
            name: String::new(),
            lease_checkpoint_interval: Duration::from_micros(self.lease_checkpoint_us()),
            election_timeout: Duration::from_micros(self.election_timeout_us()),
        }
    }
}

/// Where the run is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Faults,
    Quiet,
    Drain,
    Done,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Tick {
        node: usize,
        inc: u64,
    },
    Deliver {
        id: u64,
    },
    Disk {
        node: usize,
        inc: u64,
    },
    SnapshotWrite {
        node: usize,
        inc: u64,
    },
    SnapshotDecode {
        node: usize,
        inc: u64,
    },
    /// The oldest received chunk waiting at the member's intake is stored.
    ChunkStore {
        node: usize,
        inc: u64,
    },
    /// The oldest chunk waiting to be read for a member served is read and sent.
    ChunkRead {
        node: usize,
        inc: u64,
    },
    Restart {
        node: usize,
    },
    ClientNext {
        client: usize,
    },
    Arrive {
        client: usize,
    },
    LockerNext {
        locker: usize,
    },
    LockerArrive {
        locker: usize,
    },
    Partition,
    Heal,
    Crash,
    Quiet,
    Drain,
    Check,
    Operator,
    /// Leader leases: a member's process pauses (`clocks.rs`).
    Pause,
}

struct InFlight {
    from: usize,
    to: usize,
    /// The member ids of both ends when it was sent: a place's member may have been
    /// replaced (a new id) while it was on its way, and the new one is another member.
    from_id: u64,
    to_id: u64,
    bytes: bytes::Bytes,
}

/// A place a simulated member runs in: its disk survives crashes, the rest does not.
struct Node {
    fs: MemFs,
    /// Starts so far (0: never started).
    inc: u64,
    run: Option<Running>,
    /// The member id that runs here (a replaced member comes back under a new one).
    id: u64,
    /// No member here: removed (its disk wiped), or a spare never added yet.
    spare: bool,
    /// Started outside the configuration, knowing these voters (`member add` then
    /// `--initial-cluster-state existing`); `None` for a member of the first configuration.
    joined_knowing: Option<Vec<u64>>,
    /// Its disk was wiped as a fault: it starts through the core's rebuild path.
    wiped: bool,
}

/// An operation on its way or waiting at a member.
struct Pending {
    op: ClientOp,
    node: usize,
    request: RequestId,
    invoke: u64,
    /// The member's incarnation it went to (a crash loses it).
    inc: u64,
}

#[derive(Default)]
struct Client {
    pending: Option<Pending>,
    values: u64,
    seen_revision: i64,
}

/// A finished client operation, for the revision checks.
#[derive(Clone, Debug)]
pub(crate) struct Done {
    pub kind: &'static str,
    pub invoke: u64,
    pub complete: u64,
    pub revision: i64,
    /// A write that made a new revision (a put always does).
    pub bumps: bool,
    pub linearizable: bool,
    /// The member that answered.
    pub node: usize,
}

/// Figures counted during a run.
#[derive(Clone, Debug, Default)]
pub(crate) struct Tally {
    pub faults: BTreeMap<FaultKind, u64>,
    pub crash_points: BTreeMap<String, u64>,
    pub messages_sent: u64,
    pub messages_delivered: u64,
    pub ops_by_kind: BTreeMap<&'static str, (u64, u64, u64)>,
    pub snapshots_written: u64,
    pub snapshots_installed: u64,
    pub snapshot_receives_resumed: u64,
    /// The most session-table entries (and their bytes) in one snapshot written.
    pub snapshot_sessions_max: (u64, u64),
    pub compactions: u64,
    pub events: u64,
    pub watches_cancelled: u64,
    pub watches_compacted: u64,
    /// Membership changes by kind: (asked, done, refused, answer lost).
    pub changes: BTreeMap<&'static str, (u64, u64, u64, u64)>,
    /// Members that stopped being members (removed) and whose places were wiped.
    pub retired: u64,
    /// Wiped members that regained their vote through the rebuild path.
    pub rebuilt: u64,
    /// Leader leases: member processes paused (`clocks.rs`).
    pub pauses: u64,
    /// Leader leases: reads served under a lease, with no read-index round.
    pub leased_reads: u64,
}

/// The member-level simulation. See the module doc.
pub struct MemberSimulation {
    config: MemberSimConfig,
    plan: FaultPlan,
    rng: ChaCha8Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<(u64, u64, Event)>>,
    nodes: Vec<Node>,
    links: LinkMatrix,
    messages: BTreeMap<u64, InFlight>,
    next_msg: u64,
    clients: Vec<Client>,
    next_request: u64,
    /// (member, request) → client waiting on it.
    waiting: BTreeMap<(usize, RequestId), usize>,
    watches: Vec<Watch>,
    /// Watches that ended (compacted away, or replaced), to check at the end.
    watches_ended: Vec<Watch>,
    /// (member, request) → watch whose read it is.
    watch_reads: BTreeMap<(usize, RequestId), usize>,
    lockers: Vec<locks::Locker>,
    /// (member, request) → lock client waiting on it.
    lock_waiting: BTreeMap<(usize, RequestId), usize>,
    pub(crate) locks: locks::LockHistory,
    pub(crate) reference: Reference,
    phase: Phase,
    quiet_at: u64,
    drain_at: u64,
    pub(crate) history: Vec<EtcdOperation>,
    pub(crate) done: Vec<Done>,
    pub(crate) checks: check::Checks,
    /// Lease holders and the lease check (`keepalive.rs`).
    pub(crate) keepalive: keepalive::KeepAlives,
    pub(crate) tally: Tally,
    trace_hash: u64,
    trace: Vec<String>,
    operator: operator::Operator,
    /// Each place's clock and pauses (leader leases; true clocks without).
    clocks: clocks::Clocks,
}

fn fnv(hash: u64, value: u64) -> u64 {
    let mut h = hash;
    for b in value.to_le_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl MemberSimulation {
    /// A run ready to start.
    pub fn new(config: MemberSimConfig) -> MemberSimulation {
        assert!(config.nodes >= 1, "a cluster has at least one member");
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let mut plan = FaultPlan::draw(config.faults, config.nodes, &mut rng);
        if !config.wipes {
            plan.wipe_permille = 0;
        }
        // Swizzle cuts and heals links one by one over time, which the core simulator's
        // nemesis schedules itself; not simulated at member level yet.
        plan.partitions.retain(|k| *k != FaultKind::Swizzle);
        let n = config.nodes;
        let places = config.places();
        let mut sim = MemberSimulation {
            plan,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes: (0..places)
                .map(|i| Node {
                    fs: MemFs::new(),
                    inc: 0,
                    run: None,
                    id: i as u64 + 1,
                    spare: i >= n,
                    joined_knowing: None,
                    wiped: false,
                })
                .collect(),
            links: LinkMatrix::healed(places),
            messages: BTreeMap::new(),
            next_msg: 0,
            clients: (0..config.clients).map(|_| Client::default()).collect(),
            next_request: 1,
            waiting: BTreeMap::new(),
            watches: Vec::new(),
            watches_ended: Vec::new(),
            watch_reads: BTreeMap::new(),
            lockers: Vec::new(),
            lock_waiting: BTreeMap::new(),
            locks: locks::LockHistory::default(),
            reference: Reference::default(),
            phase: Phase::Faults,
            quiet_at: config.fault_phase_us,
            drain_at: config.fault_phase_us + config.quiet_ops_us,
            history: Vec::new(),
            done: Vec::new(),
            checks: check::Checks::new(places),
            keepalive: keepalive::KeepAlives::new(config.seed),
            tally: Tally::default(),
            trace_hash: 0xcbf2_9ce4_8422_2325,
            trace: Vec::new(),
            operator: operator::Operator::new(places as u64 + 1),
            clocks: clocks::Clocks::new(config.leases, config.seed, places),
            config,
        };
        for w in 0..sim.config.watches {
            let group = w as u64 % sim.config.groups.max(1);
            sim.watches.push(Watch::new(format!("g{group}/"), 1));
        }
        for l in 0..sim.config.lockers {
            // Lock clients 0, 1 contend for lock0, 2, 3 campaign in election0, and so on.
            let election = (l / 2) % 2 == 1;
            let name = format!("{}{}", if election { "election" } else { "lock" }, l / 4);
            sim.lockers.push(locks::Locker::new(l, name, election));
        }
        for i in 0..n {
            sim.start(i);
        }
        for l in 0..sim.lockers.len() {
            let at = below(&mut sim.rng, 50_000);
            sim.schedule(at, Event::LockerNext { locker: l });
        }
        if sim.config.membership {
            let at = range(&mut sim.rng, 100_000, 400_000);
            sim.schedule(at, Event::Operator);
        }
        for c in 0..sim.clients.len() {
            let at = below(&mut sim.rng, 20_000);
            sim.schedule(at, Event::ClientNext { client: c });
        }
        sim.schedule(sim.quiet_at, Event::Quiet);
        sim.schedule(sim.drain_at, Event::Drain);
        sim.schedule(20_000, Event::Check);
        if sim.plan.profile.net() && !sim.plan.partitions.is_empty() {
            let at = range(
                &mut sim.rng,
                100_000,
                sim.plan.partition_gap_us.max(100_000),
            );
            sim.schedule(at, Event::Partition);
        }
        if sim.plan.profile.crash() {
            let at = range(&mut sim.rng, 100_000, sim.plan.crash_gap_us.max(100_000));
            sim.schedule(at, Event::Crash);
        }
        sim.schedule_first_pause();
        sim
    }

    /// Runs to the end and reports.
    pub fn run(mut self) -> MemberRunReport {
        while self.step() {}
        self.finish()
    }

    /// The trace lines (only with [`MemberSimConfig::trace`]).
    pub fn trace(&self) -> &[String] {
        &self.trace
    }

    /// Processes one event; false once the run is over.
    pub fn step(&mut self) -> bool {
        if self.phase == Phase::Done {
            return false;
        }
        let Some(Reverse((at, _, event))) = self.queue.pop() else {
            self.phase = Phase::Done;
            return false;
        };
        debug_assert!(at >= self.now, "virtual time went back");
        self.now = at;
        self.tally.events += 1;
        self.note(&event);
        self.handle(event);
        true
    }

    fn note(&mut self, event: &Event) {
        let code = match *event {
            Event::Tick { node, inc } => 1 + (node as u64) * 16 + (inc << 8),
            Event::Deliver { id } => 2 + (id << 4),
            Event::Disk { node, inc } => 3 + (node as u64) * 16 + (inc << 8),
            Event::SnapshotWrite { node, .. } => 4 + (node as u64) * 16,
            Event::Restart { node } => 5 + (node as u64) * 16,
            Event::ClientNext { client } => 6 + (client as u64) * 16,
            Event::Arrive { client } => 7 + (client as u64) * 16,
            Event::Partition => 8,
            Event::Heal => 9,
            Event::Crash => 10,
            Event::Quiet => 11,
            Event::Drain => 12,
            Event::Check => 13,
            Event::Operator => 14,
            Event::Pause => 15,
            // The low nibble 0 is free: every other event has its own in 1..=15.
            Event::SnapshotDecode { node, .. } => (node as u64 + 1) * 16,
            Event::ChunkStore { node, inc } => (1 << 40) + (node as u64) * 16 + (inc << 8),
            Event::ChunkRead { node, inc } => (2 << 40) + (node as u64) * 16 + (inc << 8),
            Event::LockerNext { locker } => (3 << 40) + locker as u64,
            Event::LockerArrive { locker } => (4 << 40) + locker as u64,
        };
        self.trace_hash = fnv(fnv(self.trace_hash, self.now), code);
        if self.config.trace && !matches!(event, Event::Tick { .. } | Event::Check) {
            self.trace.push(format!("{} {:?}", self.now, event));
        }
    }

    fn trace_line(&mut self, line: impl FnOnce() -> String) {
        if self.config.trace {
            let line = format!("{} {}", self.now, line());
            self.trace.push(line);
        }
    }

    fn schedule(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, event)));
    }

    /// Place `i`'s clock now: the time its member's inputs carry.
    fn micros(&self, i: usize) -> Micros {
        self.clocks.local(i, self.now)
    }

    fn handle(&mut self, event: Event) {
        if self.hold_while_paused(event) {
            return;
        }
        // Checked after an input only: then the member's clock is the present.
        let input_to = self.input_of(&event);
        self.handle_now(event);
        if let Some(i) = input_to {
            self.check_lease(i);
        }
    }

    fn handle_now(&mut self, event: Event) {
        match event {
            Event::Tick { node, inc } => {
                if self.nodes[node].inc != inc || self.nodes[node].run.is_none() {
                    return;
                }
                let now = self.micros(node);
                if let Some(run) = self.nodes[node].run.as_mut() {
                    run.member.tick(now);
                }
                self.drive(node);
                let at = self.now + self.clocks.tick_period(node, self.config.tick_us);
                self.schedule(at, Event::Tick { node, inc });
            }
            Event::Deliver { id } => self.deliver(id),
            Event::Disk { node, inc } => self.disk_done(node, inc),
            Event::SnapshotWrite { node, inc } => self.snapshot_written(node, inc),
            Event::SnapshotDecode { node, inc } => self.snapshot_decoded(node, inc),
            Event::ChunkStore { node, inc } => self.chunk_stored(node, inc),
            Event::ChunkRead { node, inc } => self.chunk_read(node, inc),
            Event::Restart { node } => {
                if self.nodes[node].run.is_none() && !self.nodes[node].spare {
                    self.start(node);
                }
            }
            Event::ClientNext { client } => self.client_next(client),
            Event::Arrive { client } => self.arrive(client),
            Event::LockerNext { locker } => self.locker_next(locker),
            Event::LockerArrive { locker } => self.locker_arrive(locker),
            Event::Partition => self.nemesis_partition(),
            Event::Heal => self.links = LinkMatrix::healed(self.config.places()),
            Event::Crash => self.nemesis_crash(),
            Event::Quiet => self.start_quiet(),
            Event::Drain => self.phase = Phase::Drain,
            Event::Check => self.on_check(),
            Event::Operator => self.operate(),
            Event::Pause => self.nemesis_pause(),
        }
    }

    // ----- members -----

    /// Starts member `i` from its disk (first boot or restart after a crash).
    fn start(&mut self, i: usize) {
        let node_seed = self.rng.next_u64();
        let incarnation = self.rng.next_u64();
        let crash_at = if self.phase == Phase::Faults
            && self.plan.profile.crash()
            && chance_permille(&mut self.rng, 400)
        {
            let point = CRASH_POINTS[below(&mut self.rng, CRASH_POINTS.len() as u64) as usize];
            // Snapshot points come once per `snapshot_every_slots` slots, the others per
            // record or slot: each is armed for a hit a run of this length reaches.
            let hits = match point {
                CrashPoint::DuringSnapshot | CrashPoint::DuringCompaction => 3,
                _ => 40,
            };
            Some((point, 1 + below(&mut self.rng, hits) as u32))
        } else {
            None
        };
        let node = &self.nodes[i];
        let members = node
            .joined_knowing
            .clone()
            .unwrap_or_else(|| (1..=self.config.nodes as u64).collect());
        let (id, join, rebuild) = (node.id, node.joined_knowing.is_some(), node.wiped);
        let mut known = members.clone();
        if !known.contains(&id) {
            known.push(id);
        }
        let parts = BootParts {
            id,
            members,
            replica: self.config.replica_options(),
            member: self.config.member_options(known, crash_at),
            rng: ChaCha8Rng::seed_from_u64(node_seed),
            incarnation,
            salt_seed: self.config.seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15),
            bugs: self.config.bugs,
            join,
            rebuild,
        };
        self.clocks.started(i);
        let now = self.micros(i);
        match boot(&self.nodes[i].fs, parts, now) {
            Ok(run) => {
                let mut run = run;
                // Watchers listen on every member: what it shares is checked too.
                run.member.set_sharing_changes(true);
                let node = &mut self.nodes[i];
                node.inc += 1;
                let inc = node.inc;
                let revision = run.revision;
                let keys = if self.config.trace {
                    // What the store holds at start, to compare members' stores by hand.
                    let all = kv::RangeRequest {
                        key: vec![0],
                        range_end: vec![0],
                        ..kv::RangeRequest::default()
                    };
                    let machine = run.member.applier().machine();
                    machine.range(&all).map_or_else(
                        |e| format!("{e}"),
                        |r| {
                            let kvs: Vec<String> = r
                                .kvs
                                .iter()
                                .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
                                .collect();
                            format!("{kvs:?}")
                        },
                    )
                } else {
                    String::new()
                };
                node.run = Some(run);
                self.trace_line(|| {
                    format!("start m{id} at place {i} inc {inc} revision {revision} {keys}")
                });
                self.checks.started(i, revision);
                let at = self.now + 1 + below(&mut self.rng, self.config.tick_us);
                self.schedule(at, Event::Tick { node: i, inc });
                // The first outputs apply the durable chosen prefix again.
                self.drive(i);
                if let Some(run) = self.nodes[i].run.as_ref() {
                    self.checks.recovered(i, run.revision);
                }
            }
            Err(e) => {
                let detail = format!("m{id} could not start from its disk: {e}");
                self.checks
                    .violation(MemberCheck::Recovery, self.now, Some(i), detail);
            }
        }
    }

    /// Carries out member `i`'s outputs in their order, until it has none (or it crashed).
    fn drive(&mut self, i: usize) {
        loop {
            loop {
                let Some(run) = self.nodes[i].run.as_mut() else {
                    return;
                };
                let Some(output) = run.member.poll_output() else {
                    break;
                };
                self.carry_out(i, output);
            }
            // Watchers out of step read what they missed (answered at once: serializable).
            if !self.watch_reads_due(i) {
                break;
            }
        }
        let Some(run) = self.nodes[i].run.as_mut() else {
            return;
        };
        let revision = run.member.applier().machine().revision();
        run.revision = run.revision.max(revision);
        self.checks.revision(i, revision, self.now);
    }

    fn carry_out(&mut self, i: usize, output: Output) {
        let now = self.micros(i);
        match output {
            Output::Persist { tag, ops } => {
                let slow = self
                    .config
                    .slow_disk
                    .filter(|d| i < d.places)
                    .map_or(0, |d| d.latency_us);
                let latency = range(
                    &mut self.rng,
                    self.plan.disk_base_us,
                    self.plan.disk_base_us + self.plan.disk_jitter_us,
                ) + slow;
                let Some(run) = self.nodes[i].run.as_mut() else {
                    return;
                };
                if run.log_failed {
                    return;
                }
                // A sync covers every record before it: records finish in order.
                let done_at = run
                    .disk
                    .back()
                    .map_or(0, |w| w.done_at)
                    .max(self.now + latency);
                run.disk.push_back(DiskWrite { tag, ops, done_at });
                let inc = self.nodes[i].inc;
                self.schedule(done_at, Event::Disk { node: i, inc });
            }
            Output::Send { to, message } => self.send(i, to, &message),
            Output::ServeSnapshotChunk {
                to,
                through,
                offset,
            } => {
                // Read off the member's thread, as the node's serving lane does: a while later,
                // in the order asked, while the member goes on.
                let earliest = self.now + range(&mut self.rng, 100, 1_000);
                let Some(run) = self.nodes[i].run.as_mut() else {
                    return;
                };
                let read = ChunkRead {
                    to,
                    through,
                    offset,
                };
                let at = queue_later(&mut run.chunk_reads, read, earliest);
                let inc = self.nodes[i].inc;
                self.schedule(at, Event::ChunkRead { node: i, inc });
            }
            Output::StoreSnapshotChunk { transfer, chunk } => {
                // Stored off the member's thread, as the node's intake lane does: a disk
                // latency later, in the order the chunks came.
                let base = self.plan.disk_base_us;
                let earliest =
                    self.now + range(&mut self.rng, base, base + self.plan.disk_jitter_us);
                let Some(run) = self.nodes[i].run.as_mut() else {
                    return;
                };
                let at = queue_later(
                    &mut run.chunk_stores,
                    ChunkStore { transfer, chunk },
                    earliest,
                );
                let inc = self.nodes[i].inc;
                self.schedule(at, Event::ChunkStore { node: i, inc });
            }
            Output::WriteSnapshot {
                through,
                body,
                crash_mid,
            } => {
                let Some(run) = self.nodes[i].run.as_mut() else {
                    return;
                };
                debug_assert!(run.writing.is_none(), "one snapshot write at a time");
                run.writing = Some((through, body, crash_mid));
                let latency = range(&mut self.rng, 1_000, 5_000);
                let inc = self.nodes[i].inc;
                self.schedule(self.now + latency, Event::SnapshotWrite { node: i, inc });
            }
            Output::DecodeSnapshot { through } => {
                let Some(run) = self.nodes[i].run.as_mut() else {
                    return;
                };
                assert!(run.decoding.is_none(), "one snapshot decode at a time");
                run.decoding = Some(through);
                // Decoding takes virtual time, during which the member goes on (heartbeats,
                // writes), as it does while a node's worker thread decodes.
                let latency = range(&mut self.rng, 1_000, 5_000);
                let inc = self.nodes[i].inc;
                self.schedule(self.now + latency, Event::SnapshotDecode { node: i, inc });
            }
            Output::CompactLog { through } => {
                if let Some(run) = self.nodes[i].run.as_mut() {
                    // A failed compaction only keeps segments longer (as in the node).
                    if run.store.wal().compact(through).is_ok() {
                        self.tally.compactions += 1;
                    }
                }
            }
            Output::Answer { id, answer } => {
                // Reads on a view are served here, at once: the node serves them off its core
                // task, on the same view, so the answer is the same.
                let answer = answer.served();
                if let Some(ask) = self.operator.asks.remove(&(i, id)) {
                    self.operator_answered(i, ask, answer);
                } else if let Some(c) = self.waiting.remove(&(i, id)) {
                    self.answered(c, answer);
                } else if let Some(w) = self.watch_reads.remove(&(i, id)) {
                    self.watch_answered(w, answer);
                } else if let Some(h) = self.keepalive.asks.remove(&(i, id)) {
                    self.keepalive_answered(h, answer);
                } else if let Some(l) = self.lock_waiting.remove(&(i, id)) {
                    self.locker_answered(l, answer);
                }
            }
            Output::AppliedChanges(changes) => {
                self.trace_line(|| {
                    let events: Vec<_> = changes.events.iter().map(watch::change).collect();
                    format!(
                        "m{} shares ({}, {}]: {events:?}",
                        i + 1,
                        changes.after,
                        changes.through
                    )
                });
                self.reference
                    .record(&changes, i, self.now, &mut self.checks);
                let here = Some((i, self.nodes[i].inc));
                for w in self.watches.iter_mut().filter(|w| w.at == here) {
                    w.take_shared(&changes);
                }
            }
            Output::AppliedRevision(revision) => {
                self.checks.revision(i, revision, self.now);
            }
            Output::Crash(point) => {
                let name = format!("{point:?}");
                self.crash(i, &name);
            }
            // The member applied its own removal: as a node's process does, it stops.
            Output::Removed => {
                self.operator_removed(i);
                self.retire(i, "it applied its removal");
            }
            Output::Peers(_) => {}
        }
        let _ = now;
    }

    /// The oldest received chunk waiting at member `i` is stored; the member hears how.
    fn chunk_stored(&mut self, i: usize, inc: u64) {
        if self.nodes[i].inc != inc {
            return;
        }
        let Some(run) = self.nodes[i].run.as_mut() else {
            return;
        };
        let Some(ChunkStore { transfer, chunk }) = due(&mut run.chunk_stores, self.now) else {
            return;
        };
        let (stored, resumed) = run.store_chunk(transfer, &chunk);
        self.trace_line(|| {
            format!(
                "m{} stored chunk {} of transfer {transfer} through {}: {stored:?}",
                i + 1,
                chunk.offset,
                chunk.through
            )
        });
        if resumed {
            self.tally.snapshot_receives_resumed += 1;
        }
        if matches!(stored, member::snapshot::ChunkStored::Complete { .. }) {
            self.tally.snapshots_installed += 1;
        }
        let now = self.micros(i);
        if let Some(run) = self.nodes[i].run.as_mut() {
            run.member.on_snapshot_chunk_stored(now, transfer, stored);
        }
        self.drive(i);
    }

    /// The oldest chunk waiting to be read at member `i` is read (from the newest file then)
    /// and sent.
    fn chunk_read(&mut self, i: usize, inc: u64) {
        if self.nodes[i].inc != inc {
            return;
        }
        let node = &mut self.nodes[i];
        let Some(run) = node.run.as_mut() else {
            return;
        };
        let Some(ChunkRead {
            to,
            through,
            offset,
        }) = due(&mut run.chunk_reads, self.now)
        else {
            return;
        };
        let newest = run.newest.as_ref().map(|m| m.through);
        let chunk = run.serve(&node.fs, through, offset);
        self.trace_line(|| {
            format!(
                "m{} serves m{to} a chunk through {through} at {offset} (newest {newest:?})",
                i + 1
            )
        });
        if let Some(bytes) = chunk {
            self.send(i, to, &PeerMessage::SnapshotChunk(bytes));
        }
    }

    fn disk_done(&mut self, i: usize, inc: u64) {
        if self.nodes[i].inc != inc {
            return;
        }
        let now = self.micros(i);
        let Some(run) = self.nodes[i].run.as_mut() else {
            return;
        };
        match run.disk.front() {
            Some(w) if w.done_at <= self.now => {}
            _ => return,
        }
        let Some(write) = run.disk.pop_front() else {
            return;
        };
        let synced = crate::sim::append_batch(&mut run.store, &write.ops)
            .and_then(|lsn| run.store.sync().map(|s| (lsn, s)));
        match synced {
            Ok((lsn, synced)) => {
                if self.config.trace {
                    let line = format!("{} m{} durable tag {}", self.now, i + 1, write.tag);
                    self.trace.push(line);
                }
                assert!(synced >= lsn, "a sync returned before its record");
                run.member.on_durable(now, write.tag);
                // A wiped member votes durably again only once this is on its disk: until
                // then a crash rebuilds it again, and no other disk may be wiped.
                if write
                    .ops
                    .iter()
                    .any(|op| matches!(op, PersistOp::VoteRegained { .. }))
                {
                    self.nodes[i].wiped = false;
                    self.tally.rebuilt += 1;
                    if self.config.trace {
                        let line = format!("{} m{} votes again (durably)", self.now, i + 1);
                        self.trace.push(line);
                    }
                }
            }
            Err(e) => {
                // Not retryable: nothing after it may be reported durable.
                run.log_failed = true;
                run.member.on_log_failed(now, e.to_string());
            }
        }
        self.drive(i);
    }

    /// The decode of a received snapshot that member `i` asked for ends.
    fn snapshot_decoded(&mut self, i: usize, inc: u64) {
        let node = &mut self.nodes[i];
        let Some(run) = node.run.as_mut().filter(|_| node.inc == inc) else {
            return;
        };
        let Some(through) = run.decoding.take() else {
            return;
        };
        let decoded = run.decode(&node.fs, through);
        let ok = decoded.is_ok();
        // The place's own clock, as every input carries (not true time: a member on a slow
        // clock would jump ahead, then stand still until its clock caught up).
        let now = self.clocks.local(i, self.now);
        run.member.on_snapshot_decoded(now, through, decoded);
        self.trace_line(|| format!("m{} decoded the snapshot through {through}: ok {ok}", i + 1));
        self.drive(i);
    }

    fn snapshot_written(&mut self, i: usize, inc: u64) {
        if self.nodes[i].inc != inc {
            return;
        }
        let fs = self.nodes[i].fs.clone();
        let now = self.micros(i);
        let Some(run) = self.nodes[i].run.as_mut() else {
            return;
        };
        let Some((through, job, crash_mid)) = run.writing.take() else {
            return;
        };
        // Encoded now, a seed-chosen while after the member handed the job out and went on
        // applying: the body must still be the store's as of `through` (the check of equal
        // digests at equal slots compares it with the other members' when one installs it).
        let body = match job.encode() {
            Ok(body) => body,
            Err(e) => {
                run.member
                    .on_snapshot_written(now, through, Err(e.to_string()));
                self.drive(i);
                return;
            }
        };
        if crash_mid {
            Running::write_snapshot_partly(&fs, through, &body.bytes);
            self.crash(i, "DuringSnapshot");
            return;
        }
        let result = run.write_snapshot(&fs, through, &body);
        if self.config.trace {
            let line = format!(
                "{} m{} wrote a snapshot through {through}: {result:?}",
                self.now,
                i + 1
            );
            self.trace.push(line);
        }
        if result.is_ok() {
            self.tally.snapshots_written += 1;
            let most = &mut self.tally.snapshot_sessions_max;
            *most = (*most).max((body.sessions, body.sessions_bytes));
        }
        run.member.on_snapshot_written(now, through, result);
        self.drive(i);
    }

    /// Power loss at member `i`: records still on their way reach the disk's cache and some
    /// prefix of them may survive, as the disk decides from the seed; everything else the
    /// driver held is gone, and so are its clients' requests.
    fn crash(&mut self, i: usize, point: &str) {
        let wipe = self.phase == Phase::Faults
            && self.plan.wipe_permille > 0
            && self.may_wipe(i)
            && chance_permille(&mut self.rng, self.plan.wipe_permille);
        let Some(mut run) = self.nodes[i].run.take() else {
            return;
        };
        for w in run.disk.drain(..) {
            if crate::sim::append_batch(&mut run.store, &w.ops).is_err() {
                break;
            }
        }
        drop(run);
        self.nodes[i].fs.crash(&mut self.rng);
        *self
            .tally
            .crash_points
            .entry(point.to_string())
            .or_insert(0) += 1;
        *self.tally.faults.entry(FaultKind::Crash).or_insert(0) += 1;
        self.trace_line(|| format!("crash m{} at {point}", i + 1));
        self.lose_volatile(i);
        if wipe {
            // A replaced disk: the member comes back empty and must rebuild.
            self.nodes[i].fs = MemFs::new();
            self.nodes[i].wiped = true;
            self.checks.wiped(i);
            *self.tally.faults.entry(FaultKind::Wipe).or_insert(0) += 1;
            self.trace_line(|| format!("wipe m{}", i + 1));
        }
        let down = if self.phase == Phase::Faults {
            range(&mut self.rng, 1_000, self.plan.restart_max_us.max(1_000))
        } else {
            1_000
        };
        self.schedule(self.now + down, Event::Restart { node: i });
    }

    /// Member `i`'s process is gone (crashed or stopped): its clients' requests and watch
    /// reads are lost (a write may or may not have happened), its watches are re-created
    /// elsewhere, and the operator's asks there go unanswered.
    fn lose_volatile(&mut self, i: usize) {
        let lost: Vec<(usize, RequestId)> = self
            .waiting
            .keys()
            .filter(|(n, _)| *n == i)
            .copied()
            .collect();
        for key in lost {
            if let Some(c) = self.waiting.remove(&key) {
                self.give_up(c);
            }
        }
        self.watch_reads.retain(|(n, _), _| *n != i);
        let lost: Vec<usize> = self
            .lock_waiting
            .iter()
            .filter(|((n, _), _)| *n == i)
            .map(|(_, l)| *l)
            .collect();
        self.lock_waiting.retain(|(n, _), _| *n != i);
        for l in lost {
            self.locker_lost(l);
        }
        self.operator_lost(i);
        let inc = self.nodes[i].inc;
        for w in self.watches.iter_mut().filter(|w| w.at == Some((i, inc))) {
            w.resume();
        }
    }

    // ----- network -----

    fn send(&mut self, from: usize, to_id: u64, message: &PeerMessage) {
        let Some(to) = self.place_of(to_id) else {
            return;
        };
        let from_id = self.nodes[from].id;
        self.tally.messages_sent += 1;
        let bytes = match member::peer::encode(message) {
            Ok(b) => b,
            Err(e) => {
                let detail = format!("m{} could not encode a peer message: {e}", from + 1);
                self.checks
                    .violation(MemberCheck::Codec, self.now, Some(from), detail);
                return;
            }
        };
        let faulty = self.phase == Phase::Faults && self.plan.profile.net();
        if self.links.is_blocked(from, to) {
            return;
        }
        if faulty && chance_permille(&mut self.rng, self.plan.loss_permille) {
            *self.tally.faults.entry(FaultKind::Loss).or_insert(0) += 1;
            return;
        }
        let copies = if faulty && chance_permille(&mut self.rng, self.plan.duplicate_permille) {
            *self.tally.faults.entry(FaultKind::Duplicate).or_insert(0) += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = range(
                &mut self.rng,
                self.plan.delay_base_us,
                self.plan.delay_base_us + self.plan.delay_jitter_us,
            );
            if faulty && chance_permille(&mut self.rng, self.plan.long_delay_permille) {
                *self.tally.faults.entry(FaultKind::LongDelay).or_insert(0) += 1;
                delay += below(&mut self.rng, self.plan.long_delay_max_us);
            }
            let id = self.next_msg;
            self.next_msg += 1;
            self.messages.insert(
                id,
                InFlight {
                    from,
                    to,
                    from_id,
                    to_id,
                    bytes: bytes.clone(),
                },
            );
            self.schedule(self.now + delay, Event::Deliver { id });
        }
    }

    fn deliver(&mut self, id: u64) {
        let Some(m) = self.messages.remove(&id) else {
            return;
        };
        if self.links.is_blocked(m.from, m.to)
            || self.nodes[m.to].run.is_none()
            || self.nodes[m.to].id != m.to_id
        {
            return;
        }
        let message = match member::peer::decode(&m.bytes) {
            Ok(message) => message,
            Err(e) => {
                let detail = format!("m{} could not decode a peer message: {e}", m.to + 1);
                self.checks
                    .violation(MemberCheck::Codec, self.now, Some(m.to), detail);
                return;
            }
        };
        self.tally.messages_delivered += 1;
        if self.config.trace
            && matches!(
                message,
                PeerMessage::ReadIndexAsk { .. } | PeerMessage::ReadIndexAnswer { .. }
            )
        {
            let line = format!(
                "{} m{} -> m{}: {:?}",
                self.now,
                m.from + 1,
                m.to + 1,
                message
            );
            self.trace.push(line);
        }
        let now = self.micros(m.to);
        if let Some(run) = self.nodes[m.to].run.as_mut() {
            run.member.on_peer(now, m.from_id, message);
        }
        self.drive(m.to);
    }

    // ----- nemesis -----

    fn nemesis_partition(&mut self) {
        if self.phase != Phase::Faults {
            return;
        }
        let kinds = self.plan.partitions.clone();
        let kind = kinds[below(&mut self.rng, kinds.len() as u64) as usize];
        let places = self.config.places();
        if let Some(shape) = PartitionShape::draw(kind, places, &mut self.rng) {
            self.links = shape.links(places);
            *self.tally.faults.entry(kind).or_insert(0) += 1;
            self.trace_line(|| format!("partition {shape:?}"));
            let heal = range(
                &mut self.rng,
                50_000,
                self.plan.partition_max_us.max(50_000),
            );
            self.schedule(self.now + heal, Event::Heal);
        }
        let next = range(
            &mut self.rng,
            heal_gap(),
            self.plan.partition_gap_us.max(heal_gap()),
        );
        self.schedule(self.now + next, Event::Partition);
    }

    fn nemesis_crash(&mut self) {
        if self.phase != Phase::Faults {
            return;
        }
        let up: Vec<usize> = (0..self.config.places())
            .filter(|i| self.nodes[*i].run.is_some())
            .collect();
        if !up.is_empty() {
            let i = up[below(&mut self.rng, up.len() as u64) as usize];
            self.crash(i, "RandomTime");
        }
        let next = range(&mut self.rng, 100_000, self.plan.crash_gap_us.max(100_000));
        self.schedule(self.now + next, Event::Crash);
    }

    fn start_quiet(&mut self) {
        self.phase = Phase::Quiet;
        self.links = LinkMatrix::healed(self.config.places());
        for i in 0..self.config.places() {
            if self.nodes[i].run.is_none() && !self.nodes[i].spare {
                self.start(i);
            }
        }
        self.trace_line(|| "quiet: healed and restarted".to_string());
    }

    // ----- clients -----

    fn client_next(&mut self, c: usize) {
        if self.clients[c].pending.is_some() || matches!(self.phase, Phase::Drain | Phase::Done) {
            return;
        }
        let client = &mut self.clients[c];
        client.values += 1;
        let value = format!("c{c}v{}", client.values);
        let seen = client.seen_revision;
        let op = clients::draw(&mut self.rng, self.config.groups, c as u64, value, seen);
        let node = below(&mut self.rng, self.config.places() as u64) as usize;
        let request = RequestId(self.next_request);
        self.next_request += 1;
        self.clients[c].pending = Some(Pending {
            op,
            node,
            request,
            invoke: self.now,
            inc: 0,
        });
        let delay = range(&mut self.rng, 100, 1_000);
        self.schedule(self.now + delay, Event::Arrive { client: c });
    }

    fn arrive(&mut self, c: usize) {
        let Some(p) = self.clients[c].pending.as_mut() else {
            return;
        };
        let node = p.node;
        let inc = self.nodes[node].inc;
        let Some(run) = self.nodes[node].run.as_mut() else {
            // Refused at connect: it never reached a member, so it had no effect.
            self.count_op(c, 1);
            self.clients[c].pending = None;
            self.next_op(c);
            return;
        };
        p.inc = inc;
        if self.config.trace {
            let line = format!("{} c{c} asks m{}: {:?}", self.now, node + 1, p.op);
            self.trace.push(line);
        }
        let Some(p) = self.clients[c].pending.as_mut() else {
            return;
        };
        let request = clients::request(&p.op);
        let id = p.request;
        self.waiting.insert((node, id), c);
        let now = self.clocks.local(node, self.now);
        run.member.on_request(now, id, request);
        self.drive(node);
    }

    fn count_op(&mut self, c: usize, which: usize) {
        let Some(p) = self.clients[c].pending.as_ref() else {
            return;
        };
        let entry = self
            .tally
            .ops_by_kind
            .entry(p.op.kind())
            .or_insert((0, 0, 0));
        match which {
            0 => entry.0 += 1,
            1 => entry.1 += 1,
            _ => entry.2 += 1,
        }
    }

    fn next_op(&mut self, c: usize) {
        let think = below(&mut self.rng, 10_000);
        self.schedule(self.now + think, Event::ClientNext { client: c });
    }

    /// The member client `c` waited on crashed: a write may or may not have happened.
    fn give_up(&mut self, c: usize) {
        let Some(p) = self.clients[c].pending.take() else {
            return;
        };
        let writes = p.op.writes();
        let entry = self
            .tally
            .ops_by_kind
            .entry(p.op.kind())
            .or_insert((0, 0, 0));
        if writes {
            entry.2 += 1;
        } else {
            entry.1 += 1;
        }
        if let (true, ClientOp::Checked(input)) = (writes, p.op) {
            self.history.push(EtcdOperation {
                client: c as u64,
                input,
                invoke: p.invoke,
                complete: None,
                output: None,
            });
        }
        self.next_op(c);
    }

    fn answered(&mut self, c: usize, answer: member::Answer) {
        let Some(p) = self.clients[c].pending.take() else {
            return;
        };
        debug_assert_eq!(
            self.nodes[p.node].inc, p.inc,
            "an answer from another incarnation"
        );
        let outcome = clients::outcome(&p.op, answer);
        let kind = p.op.kind();
        let entry = self.tally.ops_by_kind.entry(kind).or_insert((0, 0, 0));
        match &outcome {
            Outcome::Done { .. } | Outcome::Refused => entry.0 += 1,
            Outcome::Unknown if p.op.writes() => entry.2 += 1,
            Outcome::Unknown => entry.1 += 1,
        }
        match outcome {
            Outcome::Done {
                output,
                revision,
                historical,
            } => {
                let client = &mut self.clients[c];
                client.seen_revision = client.seen_revision.max(revision);
                if let ClientOp::Historical { key, revision: at } = &p.op {
                    if let Some(value) = historical {
                        self.checks.historical(key, *at, value, p.node, self.now);
                    }
                }
                let linearizable = matches!(p.op, ClientOp::Checked(_));
                let bumps = matches!(
                    (&p.op, &output),
                    (
                        ClientOp::Checked(lincheck::etcd::EtcdInput::Put { .. }),
                        Some(lincheck::etcd::EtcdOutput::Put)
                    )
                );
                if revision > 0 {
                    self.done.push(Done {
                        kind,
                        invoke: p.invoke,
                        complete: self.now,
                        revision,
                        bumps,
                        linearizable,
                        node: p.node,
                    });
                }
                if let (ClientOp::Checked(input), Some(output)) = (p.op, output) {
                    self.history.push(EtcdOperation {
                        client: c as u64,
                        input,
                        invoke: p.invoke,
                        complete: Some(self.now),
                        output: Some(output),
                    });
                }
            }
            Outcome::Refused => {}
            Outcome::Unknown => {
                if let (true, ClientOp::Checked(input)) = (p.op.writes(), p.op) {
                    self.history.push(EtcdOperation {
                        client: c as u64,
                        input,
                        invoke: p.invoke,
                        complete: None,
                        output: None,
                    });
                }
            }
        }
        self.next_op(c);
    }

    // ----- checks -----

    /// Issues a read for every watch at member `i` that is behind its store and not reading;
    /// returns whether any was issued.
    fn watch_reads_due(&mut self, i: usize) -> bool {
        let here = Some((i, self.nodes[i].inc));
        let Some(run) = self.nodes[i].run.as_mut() else {
            return false;
        };
        let revision = run.member.applier().machine().revision();
        let now = self.clocks.local(i, self.now);
        let mut issued = false;
        for w in 0..self.watches.len() {
            let watch = &mut self.watches[w];
            if watch.at != here || watch.reading.is_some() || watch.after >= revision {
                continue;
            }
            let id = RequestId(self.next_request);
            self.next_request += 1;
            watch.reading = Some(id);
            self.watch_reads.insert((i, id), w);
            run.member.on_request(now, id, watch.read_request());
            issued = true;
        }
        issued
    }

    fn watch_answered(&mut self, w: usize, answer: member::Answer) {
        let watch = &mut self.watches[w];
        watch.reading = None;
        match answer {
            member::Answer::Read(Ok((Ok(kv::KvReadResponse::Watch(read)), _))) => {
                if !watch.take_read(&read) {
                    // Compacted away: etcd cancels it with the compaction revision; the
                    // client starts a new watch after it.
                    let fresh = Watch::like(watch, read.compact_revision + 1);
                    let ended = std::mem::replace(watch, fresh);
                    self.watches_ended.push(ended);
                    self.tally.watches_compacted += 1;
                }
            }
            // Refused (the member stopped serving): the client re-creates the watch.
            _ => watch.resume(),
        }
    }

    /// Attaches detached watches to a member, and sometimes cancels one (the client
    /// re-creates it where it left off) or replaces it with a new watch from the past, the
    /// present or the future.
    fn tend_watches(&mut self) {
        for w in 0..self.watches.len() {
            if self.watches[w].at.is_some()
                && chance_permille(&mut self.rng, 30)
                && self.watches[w].reading.is_none()
            {
                self.watches[w].resume();
                self.tally.watches_cancelled += 1;
                if chance_permille(&mut self.rng, 300) {
                    let seen = self
                        .clients
                        .iter()
                        .map(|c| c.seen_revision)
                        .max()
                        .unwrap_or(0);
                    let start = (seen + range(&mut self.rng, 0, 15) as i64 - 10).max(1);
                    let mut fresh = Watch::new(self.watches[w].prefix.clone(), start);
                    // etcd's options: NOPUT, NODELETE (rarely both), previous versions.
                    fresh.no_put = chance_permille(&mut self.rng, 150);
                    fresh.no_delete = chance_permille(&mut self.rng, 200);
                    fresh.prev_kv = chance_permille(&mut self.rng, 500);
                    let ended = std::mem::replace(&mut self.watches[w], fresh);
                    self.watches_ended.push(ended);
                }
            }
            if self.watches[w].at.is_none() {
                let node = below(&mut self.rng, self.config.places() as u64) as usize;
                // Not at a paused member: the watch's reads would be inputs to it.
                if self.nodes[node].run.is_some() && self.clocks.paused(node, self.now).is_none() {
                    self.watches[w].at = Some((node, self.nodes[node].inc));
                    self.drive(node);
                }
            }
        }
    }

    fn on_check(&mut self) {
        self.tend_watches();
        self.tend_keepalives(matches!(self.phase, Phase::Faults | Phase::Quiet));
        self.tend_membership();
        for i in 0..self.config.places() {
            if let Some(run) = self.nodes[i].run.as_ref() {
                let applier = run.member.applier();
                let store = applier.machine();
                self.checks.store_at(
                    i,
                    applier.applied_through(),
                    store.digest(),
                    store.revision(),
                    self.now,
                );
            }
        }
        if self.phase == Phase::Drain {
            let idle = self.clients.iter().all(|c| c.pending.is_none());
            if idle && self.converged() {
                self.phase = Phase::Done;
                return;
            }
            if self.now >= self.drain_at + self.config.drain_max_us {
                let detail = format!(
                    "not converged {} us after faults stopped: {}",
                    self.now - self.quiet_at,
                    self.positions()
                );
                self.checks
                    .violation(MemberCheck::Liveness, self.now, None, detail);
                self.phase = Phase::Done;
                return;
            }
        }
        self.schedule(self.now + 20_000, Event::Check);
    }

    /// Every member up, one leader they all follow, and all applied through the same slot.
    fn converged(&self) -> bool {
        let mut seen: Option<(u64, u64)> = None;
        if self.operator.busy() {
            return false;
        }
        for node in self.nodes.iter().filter(|n| !n.spare) {
            let Some(run) = node.run.as_ref() else {
                return false;
            };
            let status = run.member.status();
            if status.leader == 0 {
                return false;
            }
            let here = (status.leader, status.applied_through);
            if seen.is_some_and(|s| s != here) {
                return false;
            }
            seen = Some(here);
        }
        true
    }

    fn positions(&self) -> String {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| !n.spare)
            .map(|(i, n)| match &n.run {
                Some(run) => {
                    let s = run.member.status();
                    format!(
                        "m{}: leader {} chosen {} applied {}",
                        i + 1,
                        s.leader,
                        s.chosen_through,
                        s.applied_through
                    )
                }
                None => format!("m{}: down", i + 1),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// The run's report, once [`MemberSimulation::step`] has returned false (after a run
    /// stepped by hand, to keep its trace).
    pub fn finish(mut self) -> MemberRunReport {
        // Operations still waiting at the end (only after a liveness failure).
        for c in 0..self.clients.len() {
            if self.clients[c].pending.is_some() {
                self.give_up(c);
            }
        }
        self.checks.real_time_revisions(&self.done);
        for w in self.watches_ended.iter().chain(self.watches.iter()) {
            self.reference.check(w, self.now, &mut self.checks);
        }
        self.locks.check(self.now, &mut self.checks);
        let lincheck = self.checks.linearizability(&self.history);
        MemberRunReport::build(&self, lincheck)
    }

    pub(crate) fn config(&self) -> &MemberSimConfig {
        &self.config
    }

    pub(crate) fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    pub(crate) fn now_us(&self) -> u64 {
        self.now
    }

    pub(crate) fn trace_hash(&self) -> u64 {
        self.trace_hash
    }

    pub(crate) fn slot_applied_max(&self) -> Slot {
        self.nodes
            .iter()
            .filter_map(|n| n.run.as_ref())
            .map(|r| r.member.applier().applied_through())
            .max()
            .unwrap_or(Slot(0))
    }
}

/// The shortest gap between partitions.
fn heal_gap() -> u64 {
    100_000
}
