//! The EPaxos simulator: N real [`paxos::epaxos::Replica`]s, each with its own key-value state
//! machine, many concurrent clients on few keys (so commands interfere often), a lossy,
//! duplicating, reordering network, and replica crashes with recovery from the records each
//! replica persisted (the persistence contract: a `ready`'s records are durable before its
//! messages leave; here the disk is instant, so the driver writes them, then sends).
//!
//! A run is a pure function of its [`EpaxosSimConfig`]: one seeded `ChaCha8Rng` draws the
//! fault plan, the clients' operations, every delay; time is virtual (µs); events are ordered
//! by `(time, sequence number)`; every event is folded into a trace hash.
//!
//! Checks ([`EpaxosCheck`]):
//! - **agreement**: every replica that commits an instance commits the same command with the
//!   same attributes (sequence number and dependencies);
//! - **order**: every replica applies interfering commands in the same order: per key, the
//!   n-th write any replica applies is the same command everywhere, and a read sees the same
//!   number of writes before it everywhere (checked again from scratch after a restart, which
//!   re-executes every committed command);
//! - **linearizability** of the client history with [`lincheck`] (a request that got no answer
//!   may or may not have taken effect); a checker `Unknown` is counted apart, never as a pass;
//! - **liveness**: once faults stop, every operation started completes, and every replica ends
//!   with every instance it knows committed and executed;
//! - no panic.
//!
//! ```
//! use sim::epaxos::{run_epaxos_seed, EpaxosSimConfig};
//!
//! let report = run_epaxos_seed(EpaxosSimConfig::new(3, 3));
//! assert!(report.passed(), "{report:?}");
//! assert!(report.ops_ok > 0);
//! ```

use crate::campaign::{add_counts, fmt_every_count, never_fired};
use crate::fnv::Fnv;
use crate::report::fmt_us;
use crate::rng::{below, chance_permille, range};
use lincheck::kv::{KvInput, KvModel, KvOperation, KvOutput};
use lincheck::{CheckOptions, Verdict};
use paxos::epaxos::{
    Command, CommandId, EpaxosMessage, EpaxosOptions, InstanceId, InstanceRecord, KvOp, Replica,
    Status,
};
use paxos::{NodeId, PlantedBugs};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Range;

/// Faults the EPaxos simulator injects, as counted in the figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EpaxosFault {
    /// A message dropped.
    Loss,
    /// A message delivered twice.
    Duplicate,
    /// A message given extra random delay, so it overtakes or is overtaken.
    Reorder,
    /// A message held for tens of milliseconds.
    Delay,
    /// A replica crashed (restarted later from its records).
    Crash,
    /// A replica crashed after its records were durable and before their messages left (the
    /// crash point between persist and send).
    CrashBeforeSend,
}

impl EpaxosFault {
    /// Every kind.
    pub const ALL: [EpaxosFault; 6] = [
        EpaxosFault::Loss,
        EpaxosFault::Duplicate,
        EpaxosFault::Reorder,
        EpaxosFault::Delay,
        EpaxosFault::Crash,
        EpaxosFault::CrashBeforeSend,
    ];
}

/// The checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EpaxosCheck {
    /// Two replicas committed one instance differently.
    Agreement,
    /// Two replicas applied interfering commands in different orders.
    Order,
    /// The client history is not linearizable.
    Linearizability,
    /// The linearizability checker gave up (never a pass).
    LincheckUnknown,
    /// An operation or an instance unfinished once faults stopped plus the bound.
    Liveness,
    /// The core or the simulator panicked.
    NoPanic,
}

impl EpaxosCheck {
    /// Every check.
    pub const ALL: [EpaxosCheck; 6] = [
        EpaxosCheck::Agreement,
        EpaxosCheck::Order,
        EpaxosCheck::Linearizability,
        EpaxosCheck::LincheckUnknown,
        EpaxosCheck::Liveness,
        EpaxosCheck::NoPanic,
    ];
}

/// Per-seed fault rates (swarm testing: each kind on or off per seed).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EpaxosFaultPlan {
    /// Per-mille of messages lost.
    pub loss_permille: u32,
    /// Per-mille duplicated.
    pub duplicate_permille: u32,
    /// Largest extra delay for reordering, µs (0: off).
    pub reorder_us: u64,
    /// Per-mille held for a long delay.
    pub delay_permille: u32,
    /// Replica crashes planned.
    pub crashes: u32,
}

impl EpaxosFaultPlan {
    fn draw(rng: &mut ChaCha8Rng) -> EpaxosFaultPlan {
        let on = |rng: &mut ChaCha8Rng| chance_permille(rng, 500);
        let mut plan = EpaxosFaultPlan::default();
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
        if on(rng) {
            plan.crashes = range(rng, 1, 4) as u32;
        }
        plan
    }
}

/// One run's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpaxosSimConfig {
    /// The seed.
    pub seed: u64,
    /// Replicas: 3, 5, 7 or 9.
    pub replicas: usize,
    /// Whether the nemesis injects faults.
    pub nemesis: bool,
    /// Planted bugs.
    pub bugs: PlantedBugs,
    /// Clients (None: drawn per seed, 3 to 8).
    pub clients: Option<usize>,
    /// Keys (None: drawn per seed, 1 to 3).
    pub keys: Option<usize>,
    /// Virtual time per tick, µs.
    pub tick_us: u64,
    /// One-way message latency range, µs.
    pub latency_us: (u64, u64),
    /// Length of the fault phase, µs.
    pub fault_phase_us: u64,
    /// After the fault phase, clients keep going this long, µs.
    pub quiet_ops_us: u64,
    /// After clients stop, how long everything has to finish, µs.
    pub liveness_us: u64,
    /// A client gives up on an operation (outcome unknown) after this long, µs.
    pub client_timeout_us: u64,
    /// Keep every trace line (the hash is always kept).
    pub trace: bool,
}

impl EpaxosSimConfig {
    /// Defaults for a seed.
    pub fn new(seed: u64, replicas: usize) -> EpaxosSimConfig {
        EpaxosSimConfig {
            seed,
            replicas,
            nemesis: true,
            bugs: PlantedBugs::none(),
            clients: None,
            keys: None,
            tick_us: 2_000,
            latency_us: (200, 1_000),
            fault_phase_us: 300_000,
            quiet_ops_us: 60_000,
            liveness_us: 2_000_000,
            client_timeout_us: 150_000,
            trace: false,
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
            "synod sim --protocol epaxos --seed {} --nodes {}{bug}",
            self.seed, self.replicas
        )
    }
}

/// The figures of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EpaxosRunReport {
    /// The seed.
    pub seed: u64,
    /// Operations answered.
    pub ops_ok: u64,
    /// Operations without an answer (may or may not have taken effect).
    pub ops_unknown: u64,
    /// Commands chosen on the fast path.
    pub fast_commits: u64,
    /// Commands chosen after phase 2.
    pub slow_commits: u64,
    /// Explicit prepares started.
    pub recoveries: u64,
    /// Recoveries that chose a no-op.
    pub noops: u64,
    /// Dependency cycles (components of more than one instance) executed.
    pub cycles: u64,
    /// Faults injected by kind.
    pub faults_injected: BTreeMap<EpaxosFault, u64>,
    /// Violations by check.
    pub violation_counts: BTreeMap<EpaxosCheck, u64>,
    /// The first violations, in words.
    pub violations: Vec<String>,
    /// Messages sent.
    pub messages_sent: u64,
    /// Virtual time simulated, µs.
    pub simulated_us: u64,
    /// Events processed.
    pub events: u64,
    /// FNV-1a hash of the trace.
    pub trace_hash: u64,
    /// Replay command.
    pub replay: String,
}

crate::campaign::impl_seed_report!(EpaxosRunReport);

impl EpaxosRunReport {
    /// The command that replays this seed.
    pub fn replay_command(&self) -> String {
        self.replay.clone()
    }

    /// No check failed.
    pub fn passed(&self) -> bool {
        self.violation_counts.is_empty()
    }

    fn violation(&mut self, check: EpaxosCheck, what: String) {
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
        msg: EpaxosMessage,
    },
    Tick {
        node: usize,
        incarnation: u64,
    },
    /// A client's request reaches a replica.
    Request {
        node: usize,
        client: usize,
        op: usize,
    },
    /// A replica's answer reaches a client.
    Reply {
        client: usize,
        op: usize,
        output: KvOutput,
    },
    ClientTimeout {
        client: usize,
        op: usize,
    },
    ClientNext {
        client: usize,
    },
    Crash {
        node: usize,
        down_us: u64,
    },
    Restart {
        node: usize,
    },
    Quiet,
}

struct SimReplica {
    core: Replica,
    durable: BTreeMap<InstanceId, InstanceRecord>,
    up: bool,
    incarnation: u64,
    kv: BTreeMap<String, String>,
    /// Requests this replica leads: command id → (client, op index). Volatile.
    waiting: BTreeMap<CommandId, (usize, usize)>,
    /// Crash at the next persist, before its messages leave: how long to stay down.
    crash_before_send: Option<u64>,
    /// Writes applied per key in this incarnation (for the order check).
    writes_applied: BTreeMap<String, usize>,
    applied: BTreeSet<CommandId>,
}

struct SimClientState {
    next_op: u64,
    /// The operation in flight: index into the history.
    current: Option<usize>,
}

/// An EPaxos simulation.
pub struct EpaxosSim {
    config: EpaxosSimConfig,
    rng: ChaCha8Rng,
    plan: EpaxosFaultPlan,
    keys: usize,
    now_us: u64,
    seq: u64,
    events: BTreeMap<(u64, u64), Event>,
    nodes: Vec<SimReplica>,
    clients: Vec<SimClientState>,
    history: Vec<KvOperation>,
    ids: Vec<CommandId>,
    quiet: bool,
    clients_stop_at_us: u64,
    /// Oracle: the first commit seen of each instance.
    chosen: BTreeMap<InstanceId, (Command, paxos::epaxos::Attrs)>,
    /// Oracle: per key, the order of writes as first applied anywhere.
    write_order: BTreeMap<String, Vec<CommandId>>,
    /// Oracle: per read, the writes before it.
    read_position: BTreeMap<CommandId, usize>,
    report: EpaxosRunReport,
    trace: Vec<String>,
    hash: u64,
}

impl EpaxosSim {
    /// Builds a run from its configuration.
    pub fn new(config: EpaxosSimConfig) -> EpaxosSim {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let ids: Vec<NodeId> = (1..=config.replicas as u64).map(NodeId).collect();
        let nodes = ids
            .iter()
            .map(|id| SimReplica {
                core: Replica::recover(
                    *id,
                    ids.clone(),
                    EpaxosOptions::default(),
                    Vec::new(),
                    config.bugs,
                )
                .expect("a valid replica set"),
                durable: BTreeMap::new(),
                up: true,
                incarnation: 0,
                kv: BTreeMap::new(),
                waiting: BTreeMap::new(),
                crash_before_send: None,
                writes_applied: BTreeMap::new(),
                applied: BTreeSet::new(),
            })
            .collect();
        let plan = if config.nemesis {
            EpaxosFaultPlan::draw(&mut rng)
        } else {
            EpaxosFaultPlan::default()
        };
        let clients = config
            .clients
            .unwrap_or_else(|| range(&mut rng, 3, 8) as usize);
        let keys = config
            .keys
            .unwrap_or_else(|| range(&mut rng, 1, 3) as usize);
        let clients_stop_at_us = config.fault_phase_us + config.quiet_ops_us;
        let mut sim = EpaxosSim {
            report: EpaxosRunReport {
                seed: config.seed,
                replay: config.replay_command(),
                ..EpaxosRunReport::default()
            },
            rng,
            plan,
            keys,
            now_us: 0,
            seq: 0,
            events: BTreeMap::new(),
            nodes,
            clients: (0..clients)
                .map(|_| SimClientState {
                    next_op: 0,
                    current: None,
                })
                .collect(),
            history: Vec::new(),
            ids: Vec::new(),
            quiet: false,
            clients_stop_at_us,
            chosen: BTreeMap::new(),
            write_order: BTreeMap::new(),
            read_position: BTreeMap::new(),
            trace: Vec::new(),
            hash: 0xcbf2_9ce4_8422_2325,
            config,
        };
        sim.schedule_start();
        sim
    }

    fn schedule_start(&mut self) {
        for node in 0..self.nodes.len() {
            let at = below(&mut self.rng, self.config.tick_us);
            self.push(
                at,
                Event::Tick {
                    node,
                    incarnation: 0,
                },
            );
        }
        for client in 0..self.clients.len() {
            let at = below(&mut self.rng, 2_000);
            self.push(at, Event::ClientNext { client });
        }
        let phase = self.config.fault_phase_us;
        for _ in 0..self.plan.crashes {
            let node = below(&mut self.rng, self.nodes.len() as u64) as usize;
            let at = below(&mut self.rng, phase);
            let down_us = range(&mut self.rng, 10_000, 150_000);
            self.push(at, Event::Crash { node, down_us });
        }
        self.push(phase, Event::Quiet);
    }

    fn push(&mut self, at: u64, event: Event) {
        self.seq += 1;
        self.events.insert((at, self.seq), event);
    }

    fn fault(&mut self, kind: EpaxosFault) {
        *self.report.faults_injected.entry(kind).or_default() += 1;
    }

    fn record(&mut self, what: impl Hash, line: impl FnOnce() -> String) {
        let mut h = Fnv::resume(self.hash);
        self.now_us.hash(&mut h);
        what.hash(&mut h);
        self.hash = h.finish();
        if self.config.trace {
            self.trace.push(format!("{:>10} {}", self.now_us, line()));
        }
    }

    /// The trace lines (only with [`EpaxosSimConfig::trace`]).
    pub fn trace(&self) -> &[String] {
        &self.trace
    }

    fn latency(&mut self) -> u64 {
        let (lo, hi) = self.config.latency_us;
        range(&mut self.rng, lo, hi)
    }

    /// Sends over the faulty network.
    fn send(&mut self, from: NodeId, to: NodeId, msg: EpaxosMessage) {
        self.report.messages_sent += 1;
        let faulty = !self.quiet;
        if faulty && chance_permille(&mut self.rng, self.plan.loss_permille) {
            self.fault(EpaxosFault::Loss);
            return;
        }
        let mut at = self.now_us + self.latency();
        if faulty && self.plan.reorder_us > 0 && chance_permille(&mut self.rng, 300) {
            self.fault(EpaxosFault::Reorder);
            at += below(&mut self.rng, self.plan.reorder_us);
        }
        if faulty && chance_permille(&mut self.rng, self.plan.delay_permille) {
            self.fault(EpaxosFault::Delay);
            at += range(&mut self.rng, 10_000, 60_000);
        }
        if faulty && chance_permille(&mut self.rng, self.plan.duplicate_permille) {
            self.fault(EpaxosFault::Duplicate);
            let again = at + self.latency();
            self.push(
                again,
                Event::Deliver {
                    from,
                    to,
                    msg: msg.clone(),
                },
            );
        }
        self.push(at, Event::Deliver { from, to, msg });
    }

    /// Hands a replica's `ready` to the world: records durable, then messages, then apply.
    fn drain(&mut self, k: usize) {
        let ready = self.nodes[k].core.ready();
        let from = self.nodes[k].core.id();
        for rec in ready.persist {
            if rec.vballot.is_some() && rec.status == Status::Committed {
                self.check_agreement(k, &rec);
            }
            self.nodes[k].durable.insert(rec.instance, rec);
        }
        if let Some(down_us) = self.nodes[k].crash_before_send.take() {
            if !ready.send.is_empty() {
                self.record((7u8, k), || format!("crash r{} before send", k + 1));
                self.fault(EpaxosFault::CrashBeforeSend);
                self.crash_now(k, down_us);
                return;
            }
            self.nodes[k].crash_before_send = Some(down_us);
        }
        for o in ready.send {
            self.send(from, o.to, o.msg);
        }
        for (instance, command) in ready.executed {
            self.apply(k, instance, command);
        }
    }

    fn check_agreement(&mut self, k: usize, rec: &InstanceRecord) {
        let mine = (rec.command.clone(), rec.attrs.clone());
        match self.chosen.get(&rec.instance) {
            None => {
                self.chosen.insert(rec.instance, mine);
            }
            Some(first) if *first != mine => {
                let what = format!(
                    "instance {} committed at replica {} as {:?} but first as {:?}",
                    rec.instance,
                    k + 1,
                    mine,
                    first
                );
                self.report.violation(EpaxosCheck::Agreement, what);
            }
            Some(_) => {}
        }
    }

    /// Applies one executed command to replica `k`'s state machine, checks its place in the
    /// order of interfering commands, and answers the client if this replica leads it.
    fn apply(&mut self, k: usize, instance: InstanceId, command: Command) {
        let Command::Kv { id, op } = command else {
            return;
        };
        self.record((5u8, k, instance), || {
            format!("apply r{} {instance} {op:?}", k + 1)
        });
        let node = &mut self.nodes[k];
        if !node.applied.insert(id) {
            let what = format!("replica {} applied {id:?} twice", k + 1);
            self.report.violation(EpaxosCheck::Order, what);
            return;
        }
        let key = op.key().to_string();
        let position = node.writes_applied.get(&key).copied().unwrap_or(0);
        let output = match &op {
            KvOp::Get { .. } => KvOutput::Get {
                value: node.kv.get(&key).cloned(),
            },
            KvOp::Put { value, .. } => {
                node.kv.insert(key.clone(), value.clone());
                KvOutput::Put
            }
            KvOp::Cas { expected, new, .. } => {
                let ok = node.kv.get(&key) == expected.as_ref();
                if ok {
                    node.kv.insert(key.clone(), new.clone());
                }
                KvOutput::Cas { ok }
            }
        };
        if op.writes() {
            *node.writes_applied.entry(key.clone()).or_default() += 1;
            let order = self.write_order.entry(key.clone()).or_default();
            if order.len() == position {
                order.push(id);
            } else if order.get(position) != Some(&id) {
                let what = format!(
                    "replica {} applied {id:?} as write {position} on {key:?}, first applied as {:?}",
                    k + 1,
                    order.get(position)
                );
                self.report.violation(EpaxosCheck::Order, what);
            }
        } else {
            match self.read_position.get(&id) {
                None => {
                    self.read_position.insert(id, position);
                }
                Some(p) if *p != position => {
                    let what = format!(
                        "replica {} applied read {id:?} after {position} writes on {key:?}, elsewhere after {p}",
                        k + 1
                    );
                    self.report.violation(EpaxosCheck::Order, what);
                }
                Some(_) => {}
            }
        }
        if let Some((client, op_index)) = self.nodes[k].waiting.remove(&id) {
            let at = self.now_us + self.latency();
            self.push(
                at,
                Event::Reply {
                    client,
                    op: op_index,
                    output,
                },
            );
        }
    }

    fn client_next(&mut self, client: usize) {
        if self.now_us >= self.clients_stop_at_us || self.clients[client].current.is_some() {
            return;
        }
        let c = &mut self.clients[client];
        c.next_op += 1;
        let n = c.next_op;
        let key = format!("k{}", below(&mut self.rng, self.keys as u64));
        let value = format!("c{client}-{n}");
        let input = match below(&mut self.rng, 10) {
            0..=3 => KvInput::Get { key },
            4..=7 => KvInput::Put { key, value },
            _ => {
                // Compare-and-set against the last value this client saw or wrote is as good
                // as any: a random expected value mostly fails, which still orders.
                let expected = if chance_permille(&mut self.rng, 500) {
                    None
                } else {
                    Some(format!(
                        "c{}-{}",
                        below(&mut self.rng, self.clients.len() as u64),
                        n.saturating_sub(1)
                    ))
                };
                KvInput::Cas {
                    key,
                    expected,
                    new: value,
                }
            }
        };
        let index = self.history.len();
        self.history.push(KvOperation {
            client: client as u64,
            input,
            invoke: self.now_us,
            complete: None,
            output: None,
        });
        self.ids.push(CommandId {
            client: client as u64,
            seq: n,
        });
        self.clients[client].current = Some(index);
        let node = below(&mut self.rng, self.nodes.len() as u64) as usize;
        let at = self.now_us + self.latency();
        self.push(
            at,
            Event::Request {
                node,
                client,
                op: index,
            },
        );
        // Once faults stopped, a client waits out the liveness bound: no answer by then is a
        // violation, not an unknown outcome.
        let patience = if self.quiet {
            self.config.liveness_us
        } else {
            self.config.client_timeout_us
        };
        let timeout = self.now_us + patience;
        self.push(timeout, Event::ClientTimeout { client, op: index });
    }

    fn on_request(&mut self, k: usize, client: usize, op: usize) {
        if !self.nodes[k].up {
            return;
        }
        let id = self.ids[op];
        let kv = match &self.history[op].input {
            KvInput::Get { key } => KvOp::Get { key: key.clone() },
            KvInput::Put { key, value } => KvOp::Put {
                key: key.clone(),
                value: value.clone(),
            },
            KvInput::Cas { key, expected, new } => KvOp::Cas {
                key: key.clone(),
                expected: expected.clone(),
                new: new.clone(),
            },
            KvInput::Delete { key } => KvOp::Put {
                key: key.clone(),
                value: String::new(),
            },
        };
        if self.nodes[k]
            .core
            .propose(Command::Kv { id, op: kv })
            .is_ok()
        {
            self.nodes[k].waiting.insert(id, (client, op));
            self.drain(k);
        }
    }

    /// Processes one event; false when the run is over.
    pub fn step(&mut self) -> bool {
        if self.done() {
            return false;
        }
        let Some(((at, _), event)) = self.events.pop_first() else {
            return false;
        };
        self.now_us = at;
        self.report.events += 1;
        match event {
            Event::Deliver { from, to, msg } => {
                let k = (to.0 - 1) as usize;
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
            Event::Request { node, client, op } => {
                self.record((1u8, node, client, op), || {
                    format!("request c{client} op{op} -> r{}", node + 1)
                });
                self.on_request(node, client, op);
            }
            Event::Reply { client, op, output } => {
                self.record((2u8, client, op), || {
                    format!("reply c{client} op{op} {output:?}")
                });
                if self.clients[client].current == Some(op) {
                    self.history[op].complete = Some(self.now_us);
                    self.history[op].output = Some(output);
                    self.clients[client].current = None;
                    self.report.ops_ok += 1;
                    let think = self.now_us + below(&mut self.rng, 3_000);
                    self.push(think, Event::ClientNext { client });
                }
            }
            Event::ClientTimeout { client, op } => {
                if self.clients[client].current == Some(op) {
                    self.record((3u8, client, op), || format!("timeout c{client} op{op}"));
                    self.clients[client].current = None;
                    if self.history[op].invoke >= self.config.fault_phase_us {
                        let what = format!(
                            "operation {op} of client {client} invoked at {} after faults stopped got no answer in {}",
                            fmt_us(self.history[op].invoke),
                            fmt_us(self.config.liveness_us)
                        );
                        self.report.violation(EpaxosCheck::Liveness, what);
                    }
                    let next = self.now_us + 1;
                    self.push(next, Event::ClientNext { client });
                }
            }
            Event::ClientNext { client } => self.client_next(client),
            Event::Crash { node, down_us } => {
                if self.nodes[node].up && !self.quiet {
                    if chance_permille(&mut self.rng, 500) {
                        self.nodes[node].crash_before_send = Some(down_us);
                    } else {
                        self.record((4u8, node), || format!("crash r{}", node + 1));
                        self.fault(EpaxosFault::Crash);
                        self.crash_now(node, down_us);
                    }
                }
            }
            Event::Restart { node } => self.restart(node),
            Event::Quiet => {
                self.quiet = true;
                for n in &mut self.nodes {
                    n.crash_before_send = None;
                }
                for node in 0..self.nodes.len() {
                    self.restart(node);
                }
            }
        }
        true
    }

    fn crash_now(&mut self, node: usize, down_us: u64) {
        let n = &mut self.nodes[node];
        n.up = false;
        n.crash_before_send = None;
        n.incarnation += 1;
        let back = self.now_us + down_us;
        self.push(back, Event::Restart { node });
    }

    fn restart(&mut self, node: usize) {
        if self.nodes[node].up {
            return;
        }
        self.record((6u8, node), || format!("restart r{}", node + 1));
        let ids: Vec<NodeId> = (1..=self.nodes.len() as u64).map(NodeId).collect();
        let n = &mut self.nodes[node];
        let records: Vec<InstanceRecord> = n.durable.values().cloned().collect();
        n.core = Replica::recover(
            NodeId(node as u64 + 1),
            ids,
            EpaxosOptions::default(),
            records,
            self.config.bugs,
        )
        .expect("a valid replica set");
        n.up = true;
        n.kv.clear();
        n.waiting.clear();
        n.writes_applied.clear();
        n.applied.clear();
        let incarnation = n.incarnation;
        let at = self.now_us + below(&mut self.rng, self.config.tick_us);
        self.push(at, Event::Tick { node, incarnation });
        // Recovery re-executes every committed instance from the start.
        self.drain(node);
    }

    /// Clients stopped and answered, and every replica finished what it knows; or the bound.
    fn done(&self) -> bool {
        if self.now_us < self.clients_stop_at_us || !self.quiet {
            return false;
        }
        if self.now_us > self.clients_stop_at_us + self.config.liveness_us {
            return true;
        }
        self.clients.iter().all(|c| c.current.is_none())
            && self.nodes.iter().all(|n| n.core.unfinished() == 0)
    }

    /// Runs to the end and reports.
    pub fn run(mut self) -> EpaxosRunReport {
        while self.step() {}
        self.finish()
    }

    /// The end-of-run checks and figures.
    pub fn finish(mut self) -> EpaxosRunReport {
        for (k, n) in self.nodes.iter().enumerate() {
            if n.core.unfinished() > 0 {
                let what = format!(
                    "replica {} still has {} instances unfinished at {}",
                    k + 1,
                    n.core.unfinished(),
                    fmt_us(self.now_us)
                );
                self.report.violation(EpaxosCheck::Liveness, what);
            }
        }
        self.report.ops_unknown =
            self.history.iter().filter(|o| o.complete.is_none()).count() as u64;
        let options = CheckOptions::default();
        let result = lincheck::check(&KvModel, &self.history, &options);
        match result.verdict {
            Verdict::Ok => {}
            Verdict::Illegal => {
                let what = format!("{result}");
                self.report.violation(
                    EpaxosCheck::Linearizability,
                    what.chars().take(2_000).collect(),
                );
            }
            Verdict::Unknown => {
                self.report
                    .violation(EpaxosCheck::LincheckUnknown, "checker gave up".into());
            }
        }
        for n in &self.nodes {
            let c = n.core.counters();
            self.report.fast_commits += c.fast_commits;
            self.report.slow_commits += c.slow_commits;
            self.report.recoveries += c.recoveries;
            self.report.noops += c.noops;
            self.report.cycles += c.cycles_executed;
        }
        self.report.simulated_us = self.now_us;
        self.report.trace_hash = self.hash;
        self.report
    }
}

impl crate::campaign::SeedRun for EpaxosSimConfig {
    type Report = EpaxosRunReport;
    fn run(self) -> EpaxosRunReport {
        EpaxosSim::new(self).run()
    }
    fn panicked(&self, message: String) -> EpaxosRunReport {
        let mut r = EpaxosRunReport {
            seed: self.seed,
            replay: self.replay_command(),
            ..EpaxosRunReport::default()
        };
        r.violation(EpaxosCheck::NoPanic, message);
        r
    }
}

/// Runs one seed; a panic is reported as a violation of [`EpaxosCheck::NoPanic`].
pub fn run_epaxos_seed(config: EpaxosSimConfig) -> EpaxosRunReport {
    crate::campaign::run_guarded(config)
}

/// A campaign: seeds × one configuration.
#[derive(Clone, Debug)]
pub struct EpaxosCampaignSpec {
    /// Seeds, half-open.
    pub seeds: Range<u64>,
    /// Replicas.
    pub replicas: usize,
    /// Planted bugs.
    pub bugs: PlantedBugs,
    /// Worker threads.
    pub threads: usize,
}

impl EpaxosCampaignSpec {
    /// A campaign on every available core.
    pub fn new(seeds: Range<u64>, replicas: usize) -> Self {
        EpaxosCampaignSpec {
            seeds,
            replicas,
            bugs: PlantedBugs::none(),
            threads: crate::campaign::default_threads(),
        }
    }

    /// The configuration of one seed.
    pub fn config(&self, seed: u64) -> EpaxosSimConfig {
        let mut c = EpaxosSimConfig::new(seed, self.replicas);
        c.bugs = self.bugs;
        c
    }
}

/// A campaign's figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct EpaxosCampaignReport {
    /// Replicas.
    pub replicas: usize,
    /// Seeds run.
    pub seeds_run: u64,
    /// Operations answered.
    pub ops_ok: u64,
    /// Operations without an answer.
    pub ops_unknown: u64,
    /// Fast-path commits.
    pub fast_commits: u64,
    /// Slow-path commits.
    pub slow_commits: u64,
    /// Explicit prepares.
    pub recoveries: u64,
    /// No-ops chosen by recovery.
    pub noops: u64,
    /// Dependency cycles executed.
    pub cycles: u64,
    /// Faults injected by kind.
    pub faults_injected: BTreeMap<EpaxosFault, u64>,
    /// Violations by check.
    pub violation_counts: BTreeMap<EpaxosCheck, u64>,
    /// Seeds that failed, with their first violation.
    pub failing: Vec<(u64, String)>,
    /// Messages sent.
    pub messages_sent: u64,
    /// Virtual time, µs.
    pub simulated_us: u64,
}

impl EpaxosCampaignReport {
    /// Sums runs.
    pub fn from_runs(spec: &EpaxosCampaignSpec, runs: &[EpaxosRunReport]) -> Self {
        let mut r = EpaxosCampaignReport {
            replicas: spec.replicas,
            ..Default::default()
        };
        for run in runs {
            r.seeds_run += 1;
            r.ops_ok += run.ops_ok;
            r.ops_unknown += run.ops_unknown;
            r.fast_commits += run.fast_commits;
            r.slow_commits += run.slow_commits;
            r.recoveries += run.recoveries;
            r.noops += run.noops;
            r.cycles += run.cycles;
            add_counts(&mut r.faults_injected, &run.faults_injected);
            add_counts(&mut r.violation_counts, &run.violation_counts);
            if !run.passed() {
                r.failing.push((
                    run.seed,
                    run.violations.first().cloned().unwrap_or_default(),
                ));
            }
            r.messages_sent += run.messages_sent;
            r.simulated_us += run.simulated_us;
        }
        r
    }

    /// Total violations (checker Unknowns included).
    pub fn violation_total(&self) -> u64 {
        self.violation_counts.values().sum()
    }

    /// No seed failed.
    pub fn passed(&self) -> bool {
        self.violation_total() == 0
    }

    /// Fault kinds that never fired.
    pub fn never_fired(&self) -> Vec<EpaxosFault> {
        never_fired(&EpaxosFault::ALL, &self.faults_injected)
    }
}

crate::campaign::impl_campaign_totals!(EpaxosCampaignReport, failing);

impl fmt::Display for EpaxosCampaignReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "epaxos campaign: {} replicas", self.replicas)?;
        writeln!(f, "  seeds run             {}", self.seeds_run)?;
        writeln!(f, "  simulated time        {}", fmt_us(self.simulated_us))?;
        writeln!(
            f,
            "  operations            {} ok, {} unknown (no answer)",
            self.ops_ok, self.ops_unknown
        )?;
        writeln!(
            f,
            "  commits               {} fast path, {} slow path; {} explicit prepares ({} no-ops); {} dependency cycles executed",
            self.fast_commits, self.slow_commits, self.recoveries, self.noops, self.cycles
        )?;
        let faults = fmt_every_count(&EpaxosFault::ALL, &self.faults_injected);
        writeln!(f, "  faults injected       {faults}")?;
        let never = self.never_fired();
        if !never.is_empty() {
            writeln!(f, "  never fired           {never:?}")?;
        }
        writeln!(f, "  messages              {}", self.messages_sent)?;
        let checks = fmt_every_count(&EpaxosCheck::ALL, &self.violation_counts);
        writeln!(f, "  violations            {checks}")?;
        for (seed, what) in self.failing.iter().take(5) {
            let what: String = what.chars().take(300).collect();
            writeln!(f, "  failing seed {seed}: {what}")?;
        }
        Ok(())
    }
}

/// Runs every seed of `spec` on its threads; reports sorted by seed.
pub fn run_epaxos_seeds(spec: &EpaxosCampaignSpec) -> Vec<EpaxosRunReport> {
    crate::campaign::run_seed_range(
        spec.seeds.clone(),
        spec.threads,
        &|seed| run_epaxos_seed(spec.config(seed)),
        &|_| {},
    )
}

/// Runs a campaign and sums it.
pub fn run_epaxos_campaign(spec: &EpaxosCampaignSpec) -> EpaxosCampaignReport {
    EpaxosCampaignReport::from_runs(spec, &run_epaxos_seeds(spec))
}
