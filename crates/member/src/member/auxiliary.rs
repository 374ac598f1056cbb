//! Cheap Paxos auxiliaries in the member: an auxiliary holds acceptor state only (see
//! ARCHITECTURE.md, Cheap Paxos, "In the node").
//!
//! - **No store, no apply.** An auxiliary hands the applier a [`Value::Noop`] in place of each
//!   chosen batch: its applied prefix and the configuration (stop-signs) advance as on any
//!   member, its key-value store stays empty and its session table too. It applies the member
//!   table's own commands ([`TableCommand`], names and peer URLs: what its transport needs to
//!   reach the mains). It never writes a snapshot (its store would be a false one), never
//!   serves one, and a replica that wants a snapshot from it is sent to a main instead.
//! - **Accepted values pruned once the mains have them.** While engaged, an auxiliary accepts
//!   (and keeps in its replica's log) the slots the leader sends it. The leader, on each tick,
//!   tells each auxiliary it sent Paxos messages to how far every main has reported its chosen
//!   prefix ([`PeerMessage::MainsHave`]); the auxiliary compacts its in-memory log through
//!   that slot (and no further than what it learned chosen itself). A later leader is a main,
//!   so it holds those slots; one that does not (it lost its chosen marks) asks a main for a
//!   snapshot, never the auxiliary.

use super::Member;
use crate::cluster::TableCommand;
use crate::peer::PeerMessage;
use crate::time::Micros;
use kv::KvStore;
use paxos::multi::{Applier, ChosenEntry, Role, Value};
use paxos::{NodeId, QuorumSpec, Slot};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Duration;

/// What the leader owes the auxiliaries: for each one it sent Paxos messages to, the highest
/// slot proposed then; and what it last told each. Both keyed by auxiliaries of the
/// configuration in force only (bounded by its size).
#[derive(Debug, Default)]
pub(super) struct AuxiliaryState {
    /// Leader: auxiliary → the highest slot proposed when it was last sent a Paxos message.
    owed: BTreeMap<u64, Slot>,
    /// Leader: auxiliary → the slot last told it in a [`PeerMessage::MainsHave`].
    told: BTreeMap<u64, Slot>,
    /// Auxiliary: every main holds the chosen slots through here (the leader said so).
    mains_have: Slot,
    /// Auxiliary: the leader that last sent a [`PeerMessage::MainsHave`] (it answers each
    /// hello, every `HELLO_EVERY`), and when.
    leader_heard: Option<(u64, Micros)>,
}

/// An auxiliary counts a leader as heard from for this long after its last
/// [`PeerMessage::MainsHave`]: three hellos' time.
pub(super) const LEADER_HEARD_FOR: Duration = Duration::from_secs(3 * 5);

impl Member {
    /// Whether this member is an auxiliary acceptor (Cheap Paxos) of the configuration in
    /// force: it holds no store and applies no command.
    pub fn is_auxiliary(&self) -> bool {
        self.replica.is_auxiliary()
    }

    /// Log entries (accepted or chosen values) the replica holds in memory now: on an
    /// auxiliary, the slots not yet known held by every main.
    pub fn retained_entries(&self) -> usize {
        self.replica.log_len()
    }

    /// What the applier is given for `entry`: the entry itself, or on an auxiliary a no-op in
    /// place of a batch, once the batch's member-table commands are applied to the table.
    pub(super) fn entry_to_apply<'a>(&mut self, entry: &'a ChosenEntry) -> Cow<'a, ChosenEntry> {
        let Value::Batch(commands) = &entry.value else {
            return Cow::Borrowed(entry);
        };
        if !self.is_auxiliary() {
            return Cow::Borrowed(entry);
        }
        for c in commands {
            if let Some(table) = TableCommand::decode(&c.payload) {
                table.apply(&mut self.table);
            }
        }
        Cow::Owned(ChosenEntry {
            slot: entry.slot,
            value: Value::Noop,
        })
    }

    /// Leader: notes a Paxos message to member `to` (an auxiliary then owes a pruning notice).
    pub(super) fn note_sent_paxos(&mut self, to: NodeId) {
        if self.replica.role() == Role::Leader && self.replica.config().is_auxiliary(to) {
            let upto = self.replica.proposed_through();
            let owed = self.auxiliaries.owed.entry(to.0).or_insert(upto);
            *owed = (*owed).max(upto);
        }
    }

    /// Leader, each tick: tells each auxiliary that owes it how far every main holds the
    /// chosen log, until that covers every slot it was sent.
    pub(super) fn tell_auxiliaries(&mut self) {
        let config = self.replica.config();
        if self.replica.role() != Role::Leader
            || !matches!(config.quorum(), QuorumSpec::Cheap { .. })
        {
            self.auxiliaries.owed.clear();
            self.auxiliaries.told.clear();
            return;
        }
        let auxiliaries: Vec<u64> = config.auxiliaries().iter().map(|n| n.0).collect();
        self.auxiliaries
            .owed
            .retain(|id, _| auxiliaries.contains(id));
        self.auxiliaries
            .told
            .retain(|id, _| auxiliaries.contains(id));
        let mains_have = self.mains_have();
        let owed: Vec<(u64, Slot)> = self
            .auxiliaries
            .owed
            .iter()
            .map(|(id, s)| (*id, *s))
            .collect();
        for (aux, upto) in owed {
            let told = self
                .auxiliaries
                .told
                .get(&aux)
                .copied()
                .unwrap_or(Slot::ZERO);
            if mains_have > told {
                self.auxiliaries.told.insert(aux, mains_have);
                self.send(
                    aux,
                    PeerMessage::MainsHave {
                        through: mains_have,
                    },
                );
            }
            if mains_have >= upto {
                self.auxiliaries.owed.remove(&aux);
            }
        }
    }

    /// Leader: how far every main (this one included) holds the chosen log, as they reported.
    fn mains_have(&self) -> Slot {
        let me = self.replica.id();
        let peers: BTreeMap<NodeId, Slot> =
            self.replica.peers_chosen_through().into_iter().collect();
        self.replica
            .config()
            .mains()
            .iter()
            .filter(|m| **m != me)
            .map(|m| peers.get(m).copied().unwrap_or(Slot::ZERO))
            .fold(self.replica.chosen_through(), Slot::min)
    }

    /// Leader: answers an auxiliary's hello with how far the mains hold the log, so an idle
    /// auxiliary knows who leads (for `/health`) and one that restarted with values in its
    /// log forgets them. One message per hello (`HELLO_EVERY`).
    pub(super) fn answer_auxiliary_hello(&mut self, from: u64) {
        let config = self.replica.config();
        if self.replica.role() != Role::Leader
            || !matches!(config.quorum(), QuorumSpec::Cheap { .. })
            || !config.is_auxiliary(NodeId(from))
        {
            return;
        }
        let through = self.mains_have();
        self.auxiliaries.told.insert(from, through);
        self.send(from, PeerMessage::MainsHave { through });
    }

    /// Auxiliary: the leader it heard from lately (a [`PeerMessage::MainsHave`] within
    /// [`LEADER_HEARD_FOR`]), if any.
    pub fn auxiliary_leader(&self) -> Option<u64> {
        let (leader, at) = self.auxiliaries.leader_heard?;
        (self.is_auxiliary() && self.clock.saturating_since(at) < LEADER_HEARD_FOR)
            .then_some(leader)
    }

    /// Auxiliary: a main (the leader) says every main holds the chosen log through `through`.
    pub(super) fn on_mains_have(&mut self, from: u64, through: Slot) {
        if !self.replica.config().mains().contains(&NodeId(from)) {
            return;
        }
        self.auxiliaries.leader_heard = Some((from, self.clock));
        self.auxiliaries.mains_have = self.auxiliaries.mains_have.max(through);
        self.prune_auxiliary();
    }

    /// Auxiliary: forgets the values every main holds and this member knows chosen.
    pub(super) fn prune_auxiliary(&mut self) {
        if !self.is_auxiliary() {
            return;
        }
        let through = self
            .auxiliaries
            .mains_have
            .min(self.replica.handed_out_through());
        if through > self.replica.compacted_through() {
            self.replica.compact(through);
            debug_assert!(self.replica.slots().all(|s| s > through));
        }
    }

    /// The member to ask for a snapshot the replica wants from `from`: a main in place of an
    /// auxiliary (which holds none), the leader first.
    pub(super) fn snapshot_source(&self, from: u64) -> u64 {
        let config = self.replica.config();
        if !config.is_auxiliary(NodeId(from)) {
            return from;
        }
        let me = self.replica.id();
        self.replica
            .leader()
            .filter(|l| *l != me && config.mains().contains(l))
            .or_else(|| config.mains().iter().copied().find(|m| *m != me))
            .map_or(from, |m| m.0)
    }
}

/// An auxiliary's applier in place of `applier`: the same applied prefix and configuration,
/// an empty store (with the same limits) and no sessions.
pub(super) fn without_store(applier: &Applier<KvStore>) -> Applier<KvStore> {
    let mut empty = Applier::restore(
        KvStore::with_limits(applier.machine().limits()),
        BTreeMap::new(),
        applier.applied_through(),
    );
    empty.set_membership(applier.membership().cloned());
    empty
}
