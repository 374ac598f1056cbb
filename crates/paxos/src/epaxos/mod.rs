//! EPaxos, Egalitarian Paxos (Moraru, Andersen, Kaminsky, SOSP 2013): Generalized Paxos without
//! a leader. Every replica leads the commands its clients give it, each in an instance of its
//! own row; a command is chosen together with attributes (a sequence number and the interfering
//! instances it depends on), and execution orders the dependency graph so that every replica
//! applies interfering commands in the same order.
//!
//! - **Phase 1 (PreAccept, §4.3.1)**: the command leader proposes its attributes to the others;
//!   each answers them updated with the interfering instances it knows. If a fast quorum
//!   answers them *unchanged*, the command is chosen in one round trip (the fast path).
//! - **Phase 2 (Accept, §4.3.1)**: otherwise the leader takes the union of the answers and runs
//!   one classic Paxos accept round on a majority (the slow path).
//! - **Commit** tells everyone; **execution (§4.3.2)** runs Tarjan's algorithm on the committed
//!   dependency graph, executes strongly connected components in reverse topological order and
//!   orders the commands inside one by sequence number (instance id to break ties).
//! - **Explicit prepare (§4.4)**: a replica that waited too long for an instance takes it over
//!   at a higher ballot, with Sutra's (2019) correction: a record keeps the ballot it promised
//!   and the ballot its attributes were accepted at apart, and recovery follows the highest of
//!   the latter, as classic Paxos does. See `recovery.rs` for the rule and why it is safe.
//!
//! **Fast quorum.** N = 2F+1 replicas, fast quorum 2F (the leader and 2F-1 others), the
//! quorum of the paper's simplified protocol (§4.3, "EPaxos with a fast quorum of 2F"). The
//! optimized F + ⌊(F+1)/2⌋ is the same number for N = 3 (both are 2), and smaller from N = 5
//! (3 instead of 4); with it, recovery needs TryPreAccept and the rule that every dependency of a
//! fast-path command be committed, the part of EPaxos where the later literature (Sutra 2019,
//! and Ryabinin, Gotsman, Sutra on SwiftPaxos/"EPaxos revisited") found the published
//! specification wrong. With 2F the recovery rule is short and its safety argument fits in a
//! paragraph (`recovery.rs`); the price is one more reply to wait for at N ≥ 5.
//!
//! Commands are key-value operations ([`KvOp`]); two interfere iff they touch one key and at
//! least one writes ([`Command::interferes`]).
//!
//! The core is sans-IO: messages in through [`Replica::step`], client commands through
//! [`Replica::propose`], time through [`Replica::tick`] with the caller's generator for the
//! recovery jitter; [`Replica::ready`] hands back records to persist, then messages, then the
//! commands executed, in that order. A restart rebuilds from the persisted records
//! ([`Replica::recover`]) and executes everything again from the start (the driver starts its
//! state machine empty).
//!
//! ```
//! use paxos::epaxos::{Command, CommandId, KvOp, Replica};
//! use paxos::NodeId;
//! use rand_chacha::{rand_core::SeedableRng, ChaCha8Rng};
//!
//! let ids = vec![NodeId(1), NodeId(2), NodeId(3)];
//! let mut replicas: Vec<Replica> =
//!     ids.iter().map(|id| Replica::new(*id, ids.clone(), Default::default()).unwrap()).collect();
//! let put = KvOp::Put { key: "k".into(), value: "v".into() };
//! replicas[0].propose(Command::Kv { id: CommandId { client: 1, seq: 1 }, op: put }).unwrap();
//! let mut rng = ChaCha8Rng::seed_from_u64(1);
//! let mut executed = vec![Vec::new(); 3];
//! for _ in 0..10 {
//!     let mut mail = Vec::new();
//!     for (k, r) in replicas.iter_mut().enumerate() {
//!         r.tick(&mut rng);
//!         let ready = r.ready(); // a real driver writes ready.persist durably first
//!         mail.extend(ready.send.into_iter().map(|o| (r.id(), o)));
//!         executed[k].extend(ready.executed);
//!     }
//!     for (from, o) in mail {
//!         replicas[(o.to.0 - 1) as usize].step(from, o.msg);
//!     }
//! }
//! assert!(executed.iter().all(|e| e.len() == 1));
//! assert_eq!(replicas[0].counters().fast_commits, 1);
//! ```

mod acceptor;
mod execute;
mod leader;
mod recovery;
mod types;

pub use types::{
    Attrs, Command, CommandId, EBallot, EpaxosCounters, EpaxosError, EpaxosMessage, EpaxosOptions,
    EpaxosReady, InstanceId, InstanceRecord, KvOp, Status, DEPS_MAX, INSTANCES_MAX, IN_FLIGHT_MAX,
    KEY_BYTES_MAX, REPLICAS_MAX,
};

use crate::bugs::{Bug, PlantedBugs};
use crate::ids::NodeId;
use crate::Outbound;
use rand_core::RngCore;
use std::collections::{BTreeMap, BTreeSet};

/// What a replica is doing as the leader of an instance at one ballot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum LeadPhase {
    /// Phase 1: the attributes proposed, and each replier's `(attrs, unchanged)`.
    PreAccept {
        proposed: Attrs,
        replies: BTreeMap<NodeId, (Attrs, bool)>,
    },
    /// Phase 2: who accepted.
    Accept { acks: BTreeSet<NodeId> },
    /// Explicit prepare: each promiser's record (`None`: it held nothing).
    Prepare {
        replies: BTreeMap<NodeId, Option<InstanceRecord>>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Lead {
    ballot: EBallot,
    command: Command,
    attrs: Attrs,
    phase: LeadPhase,
    /// Tick of the last (re)send.
    sent_at: u64,
}

/// One EPaxos replica. See the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Replica {
    id: NodeId,
    replicas: Vec<NodeId>,
    f: usize,
    options: EpaxosOptions,
    bugs: PlantedBugs,
    instances: BTreeMap<InstanceId, InstanceRecord>,
    /// Instances that held a key-value command on each key (filtered by the current command
    /// when read: a recovery may replace it by a no-op).
    by_key: BTreeMap<String, BTreeSet<InstanceId>>,
    next_slot: u64,
    leads: BTreeMap<InstanceId, Lead>,
    committed_unexecuted: BTreeSet<InstanceId>,
    executed: BTreeSet<InstanceId>,
    /// The order this replica learned commits in (only the planted `ExecuteIgnoringSeq` reads
    /// it: an order that differs between replicas).
    commit_arrival: BTreeMap<InstanceId, u64>,
    /// Instances known and not committed: the tick at which to take them over (`None`: not
    /// yet drawn).
    watch: BTreeMap<InstanceId, Option<u64>>,
    now_ticks: u64,
    dirty: BTreeSet<InstanceId>,
    out: Vec<Outbound<EpaxosMessage>>,
    executed_out: Vec<(InstanceId, Command)>,
    counters: EpaxosCounters,
}

impl Replica {
    /// A fresh replica `id` among `replicas` (2F+1 distinct ids, F ≥ 1).
    pub fn new(
        id: NodeId,
        replicas: Vec<NodeId>,
        options: EpaxosOptions,
    ) -> Result<Replica, EpaxosError> {
        Replica::recover(id, replicas, options, Vec::new(), PlantedBugs::none())
    }

    /// A replica rebuilt from its persisted records (the persistence contract: every record a
    /// `ready` returned was durable before that `ready`'s messages left).
    pub fn recover(
        id: NodeId,
        mut replicas: Vec<NodeId>,
        options: EpaxosOptions,
        records: Vec<InstanceRecord>,
        bugs: PlantedBugs,
    ) -> Result<Replica, EpaxosError> {
        replicas.sort();
        replicas.dedup();
        let n = replicas.len();
        if n < 3 || n.is_multiple_of(2) || n > REPLICAS_MAX || !replicas.contains(&id) {
            return Err(EpaxosError::BadReplicas(format!(
                "{replicas:?} for replica {id}: need 3, 5, 7 or 9 distinct replicas including it"
            )));
        }
        let mut r = Replica {
            id,
            f: (n - 1) / 2,
            replicas,
            options,
            bugs,
            instances: BTreeMap::new(),
            by_key: BTreeMap::new(),
            next_slot: 1,
            leads: BTreeMap::new(),
            committed_unexecuted: BTreeSet::new(),
            executed: BTreeSet::new(),
            commit_arrival: BTreeMap::new(),
            watch: BTreeMap::new(),
            now_ticks: 0,
            dirty: BTreeSet::new(),
            out: Vec::new(),
            executed_out: Vec::new(),
            counters: EpaxosCounters::default(),
        };
        for rec in records {
            let i = rec.instance;
            if i.replica == id {
                r.next_slot = r.next_slot.max(i.slot + 1);
            }
            r.index(&rec);
            if rec.vballot.is_some() && rec.status == Status::Committed {
                r.committed_unexecuted.insert(i);
                let n = r.commit_arrival.len() as u64;
                r.commit_arrival.insert(i, n);
            } else {
                r.watch.insert(i, None);
            }
            r.instances.insert(i, rec);
        }
        r.try_execute();
        Ok(r)
    }

    /// This replica's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// F: the replicas are 2F+1.
    pub fn f(&self) -> usize {
        self.f
    }

    /// Fast quorum size, the command leader included: 2F (see the module docs for why).
    pub fn fast_quorum(&self) -> usize {
        2 * self.f
    }

    /// Counters.
    pub fn counters(&self) -> &EpaxosCounters {
        &self.counters
    }

    /// What this replica holds about `instance`.
    pub fn record(&self, instance: InstanceId) -> Option<&InstanceRecord> {
        self.instances.get(&instance)
    }

    /// Instances held.
    pub fn instances(&self) -> impl Iterator<Item = &InstanceRecord> {
        self.instances.values()
    }

    /// Whether `instance` was executed here (since the last restart).
    pub fn is_executed(&self, instance: InstanceId) -> bool {
        self.executed.contains(&instance)
    }

    /// Own instances being decided.
    pub fn in_flight(&self) -> usize {
        self.leads.keys().filter(|i| i.replica == self.id).count()
    }

    /// Instances known here and not yet committed or not yet executed.
    pub fn unfinished(&self) -> usize {
        self.watch.len() + self.committed_unexecuted.len()
    }

    /// Plants bugs (test builds only; without the `planted-bugs` feature this changes nothing).
    pub fn set_bugs(&mut self, bugs: PlantedBugs) {
        self.bugs = bugs;
    }

    /// Proposes a client command as its command leader: a new instance in this replica's row,
    /// phase 1 at the default ballot.
    pub fn propose(&mut self, command: Command) -> Result<InstanceId, EpaxosError> {
        let in_flight = self.in_flight();
        if in_flight >= IN_FLIGHT_MAX {
            return Err(EpaxosError::TooManyInFlight {
                in_flight,
                max: IN_FLIGHT_MAX,
            });
        }
        if self.instances.len() >= INSTANCES_MAX {
            return Err(EpaxosError::TableFull(self.instances.len()));
        }
        if let Some(key) = command.key() {
            if key.len() > KEY_BYTES_MAX {
                return Err(EpaxosError::KeyTooLong(key.len()));
            }
        }
        let instance = InstanceId {
            replica: self.id,
            slot: self.next_slot,
        };
        self.next_slot += 1;
        assert!(
            !self.instances.contains_key(&instance),
            "instance {instance} reused: its slot was already taken"
        );
        let attrs = self.local_attrs(instance, &command, Attrs::default());
        let ballot = EBallot::default_of(instance);
        self.store(InstanceRecord {
            instance,
            ballot,
            vballot: Some(ballot),
            status: Status::PreAccepted,
            command: command.clone(),
            attrs: attrs.clone(),
            unchanged: true,
        });
        self.start_pre_accept(instance, ballot, command, attrs);
        Ok(instance)
    }

    /// Takes `instance` over now by explicit prepare, as a tick does once it waited too long
    /// (for model checking and the explorer, which choose the moment themselves). Nothing
    /// happens if it is committed here or this replica already leads it.
    pub fn take_over(&mut self, instance: InstanceId) {
        let committed = self
            .instances
            .get(&instance)
            .is_some_and(|r| r.vballot.is_some() && r.status == Status::Committed);
        if !committed
            && !self.leads.contains_key(&instance)
            && self.replicas.contains(&instance.replica)
        {
            self.start_recovery(instance);
        }
    }

    /// One tick: resends what is unanswered, and takes over instances waited on too long.
    pub fn tick(&mut self, rng: &mut dyn RngCore) {
        self.now_ticks += 1;
        self.retry_leads();
        let now = self.now_ticks;
        let base = self.options.recovery_ticks;
        let mut due = Vec::new();
        for (i, deadline) in self.watch.iter_mut() {
            match deadline {
                None => {
                    *deadline = Some(now + base + rng.next_u64() % (base.max(1) + 1));
                }
                Some(d) if *d <= now => {
                    due.push(*i);
                    *deadline = Some(now + base + rng.next_u64() % (base.max(1) + 1));
                }
                Some(_) => {}
            }
        }
        for i in due {
            if !self.leads.contains_key(&i) {
                self.start_recovery(i);
            }
        }
    }

    /// Handles a message from `from`.
    pub fn step(&mut self, from: NodeId, msg: EpaxosMessage) {
        if !self.replicas.contains(&from) || from == self.id || !self.well_formed(&msg) {
            self.counters.refused += 1;
            return;
        }
        match msg {
            EpaxosMessage::PreAccept {
                instance,
                ballot,
                command,
                attrs,
            } => self.on_pre_accept(from, instance, ballot, command, attrs),
            EpaxosMessage::PreAcceptOk {
                instance,
                ballot,
                attrs,
                unchanged,
            } => self.on_pre_accept_ok(from, instance, ballot, attrs, unchanged),
            EpaxosMessage::Accept {
                instance,
                ballot,
                command,
                attrs,
            } => self.on_accept(from, instance, ballot, command, attrs),
            EpaxosMessage::AcceptOk { instance, ballot } => {
                self.on_accept_ok(from, instance, ballot)
            }
            EpaxosMessage::Commit {
                instance,
                command,
                attrs,
            } => self.on_commit(instance, command, attrs),
            EpaxosMessage::Prepare { instance, ballot } => self.on_prepare(from, instance, ballot),
            EpaxosMessage::PrepareOk {
                instance,
                ballot,
                held,
            } => self.on_prepare_ok(from, instance, ballot, held),
            EpaxosMessage::Nack { instance, promised } => self.on_nack(instance, promised),
        }
    }

    /// Drains what the driver must do, in order: persist, send, apply.
    pub fn ready(&mut self) -> EpaxosReady {
        let persist = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|i| self.instances.get(&i).cloned())
            .collect();
        EpaxosReady {
            persist,
            send: std::mem::take(&mut self.out),
            executed: std::mem::take(&mut self.executed_out),
        }
    }

    /// Bounds and ids a peer's message must respect.
    fn well_formed(&self, msg: &EpaxosMessage) -> bool {
        let instance = msg.instance();
        if !self.replicas.contains(&instance.replica) || instance.slot == 0 {
            return false;
        }
        let attrs_ok = |a: &Attrs| {
            a.deps.len() <= DEPS_MAX
                && a.deps
                    .iter()
                    .all(|d| self.replicas.contains(&d.replica) && d.slot > 0)
                && !a.deps.contains(&instance)
        };
        let command_ok = |c: &Command| c.key().is_none_or(|k| k.len() <= KEY_BYTES_MAX);
        let new_instance_ok =
            self.instances.contains_key(&instance) || self.instances.len() < INSTANCES_MAX;
        match msg {
            EpaxosMessage::PreAccept { command, attrs, .. }
            | EpaxosMessage::Accept { command, attrs, .. }
            | EpaxosMessage::Commit { command, attrs, .. } => {
                attrs_ok(attrs) && command_ok(command) && new_instance_ok
            }
            EpaxosMessage::PreAcceptOk { attrs, .. } => attrs_ok(attrs),
            EpaxosMessage::PrepareOk { held, .. } => held.as_ref().is_none_or(|h| {
                h.instance == instance && attrs_ok(&h.attrs) && command_ok(&h.command)
            }),
            EpaxosMessage::Prepare { .. } => new_instance_ok,
            EpaxosMessage::AcceptOk { .. } | EpaxosMessage::Nack { .. } => true,
        }
    }

    /// The attributes this replica gives `command` in `instance`: `base` joined with every
    /// interfering instance it knows, and a sequence number above all of theirs (§4.3.1).
    fn local_attrs(&self, instance: InstanceId, command: &Command, base: Attrs) -> Attrs {
        let mut attrs = base;
        let Some(key) = command.key() else {
            return attrs;
        };
        let mut found: Vec<(u64, InstanceId)> = Vec::new();
        if let Some(ids) = self.by_key.get(key) {
            for j in ids {
                if *j == instance {
                    continue;
                }
                let Some(rec) = self.instances.get(j) else {
                    continue;
                };
                if rec.vballot.is_some() && rec.command.interferes(command) {
                    found.push((rec.attrs.seq, *j));
                }
            }
        }
        if self.bugs.has(Bug::DropDependencyInPreAccept) {
            // Planted: the most recent interfering instance (highest sequence number) is left
            // out, so two interfering commands may end up with neither depending on the other.
            if let Some(last) = found.iter().max().copied() {
                found.retain(|f| *f != last);
            }
        }
        for (seq, j) in found {
            attrs.deps.insert(j);
            attrs.seq = attrs.seq.max(seq + 1);
        }
        attrs.seq = attrs.seq.max(1);
        attrs
    }

    /// Stores a record: the only place records change. Asserts that promises only grow and a
    /// committed instance never changes.
    fn store(&mut self, rec: InstanceRecord) {
        let i = rec.instance;
        if let Some(old) = self.instances.get(&i) {
            assert!(
                rec.ballot >= old.ballot,
                "instance {i}: promise went down from {} to {}",
                old.ballot,
                rec.ballot
            );
            if old.vballot.is_some() && old.status == Status::Committed {
                assert!(
                    rec.status == Status::Committed
                        && rec.command == old.command
                        && rec.attrs == old.attrs,
                    "instance {i}: a committed instance changed"
                );
            }
        }
        assert!(
            !rec.attrs.deps.contains(&i),
            "instance {i} depends on itself"
        );
        self.index(&rec);
        if rec.vballot.is_some() && rec.status == Status::Committed {
            self.watch.remove(&i);
        } else {
            self.watch.entry(i).or_insert(None);
        }
        self.instances.insert(i, rec);
        self.dirty.insert(i);
    }

    fn index(&mut self, rec: &InstanceRecord) {
        if let (Some(_), Some(key)) = (rec.vballot, rec.command.key()) {
            self.by_key
                .entry(key.to_string())
                .or_default()
                .insert(rec.instance);
        }
    }

    /// Progress on `instance`: push its takeover back.
    fn progress(&mut self, instance: InstanceId) {
        if let Some(d) = self.watch.get_mut(&instance) {
            *d = None;
        }
    }

    fn send(&mut self, to: NodeId, msg: EpaxosMessage) {
        debug_assert!(to != self.id);
        self.out.push(Outbound { to, msg });
    }

    fn broadcast(&mut self, msg: EpaxosMessage) {
        let others: Vec<NodeId> = self
            .replicas
            .iter()
            .copied()
            .filter(|r| *r != self.id)
            .collect();
        for to in others {
            self.send(to, msg.clone());
        }
    }

    fn others(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.replicas.iter().copied().filter(move |r| *r != self.id)
    }
}

#[cfg(test)]
mod tests;
