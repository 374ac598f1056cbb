//! The operator: membership changes asked through the members' own Cluster API
//! ([`member::Request::Cluster`], what `etcdctl member add|promote|remove` send), as etcd's
//! replacement procedure and growing and shrinking do them: add a learner (a spare place
//! starts a new member outside the configuration, `--initial-cluster-state existing`),
//! promote it, remove a follower, the leader, or a member that is down. A removed member
//! stops (as a node's process exits), its disk is wiped and its place becomes a spare, which
//! a later add fills under a new id: a lost member is replaced, never brought back.
//!
//! The operator asks one change at a time, at the member that leads (as `etcdctl` does after
//! a `member list`); refusals (a lagging learner, an unhealthy cluster, a change in flight)
//! are counted, not failures. Which places hold members is learned from the members: the
//! newest configuration any running member entered is the cluster's (a member enters one
//! only once its stop-sign is chosen), and a place whose member it does not list is retired.

use super::{Event, MemberSimulation, Phase};
use crate::rng::{below, range};
use member::cluster::ClusterChange;
use member::{Answer, Request, RequestId};
use paxos::NodeId;
use std::collections::BTreeMap;
use storage::memfs::MemFs;

/// A joiner whose add is neither answered nor in the configuration is retired after this
/// long (its add was refused or lost).
const JOIN_GRACE_US: u64 = 2_000_000;

/// Kinds of change, for asking and for figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ChangeKind {
    AddLearner,
    Promote,
    RemoveFollower,
    RemoveLeader,
    /// A member that is down (crashed, or a place retired while its removal was lost).
    RemoveDown,
}

impl ChangeKind {
    pub(super) fn name(self) -> &'static str {
        match self {
            ChangeKind::AddLearner => "add-learner",
            ChangeKind::Promote => "promote",
            ChangeKind::RemoveFollower => "remove-follower",
            ChangeKind::RemoveLeader => "remove-leader",
            ChangeKind::RemoveDown => "remove-down",
        }
    }
}

/// A change asked and not yet answered.
pub(super) struct Ask {
    kind: ChangeKind,
    /// The member it is about.
    target: u64,
}

/// The operator's state.
pub(super) struct Operator {
    /// (place asked, request) → the change.
    pub asks: BTreeMap<(usize, RequestId), Ask>,
    /// The id the next added member gets (ids are never reused).
    next_id: u64,
    /// When each joiner place started its member.
    joined_at: BTreeMap<usize, u64>,
}

impl Operator {
    pub(super) fn new(first_new_id: u64) -> Operator {
        Operator {
            asks: BTreeMap::new(),
            next_id: first_new_id,
            joined_at: BTreeMap::new(),
        }
    }

    /// A change is being asked: the membership may still move.
    pub(super) fn busy(&self) -> bool {
        !self.asks.is_empty()
    }
}

impl MemberSimulation {
    /// The place running member `id`, if any.
    pub(super) fn place_of(&self, id: u64) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id && !n.spare)
    }

    /// The place whose member leads by its own account, if any.
    fn leader_place(&self) -> Option<usize> {
        self.nodes.iter().position(|n| {
            !n.spare
                && n.run.as_ref().is_some_and(|r| {
                    r.member.status().leader == n.id && !r.member.status().is_learner
                })
        })
    }

    /// The newest configuration a running member entered: (epoch, voters, learners).
    fn newest_configuration(&self) -> Option<(u64, Vec<u64>, Vec<u64>)> {
        self.nodes
            .iter()
            .filter(|n| !n.spare)
            .filter_map(|n| n.run.as_ref())
            .map(|r| r.member.replica().membership())
            .max_by_key(|m| m.epoch)
            .map(|m| {
                let ids = |s: &[NodeId]| s.iter().map(|n| n.0).collect::<Vec<u64>>();
                (m.epoch, ids(m.config.members()), ids(m.config.learners()))
            })
    }

    /// Whether place `i`'s disk may be wiped: every other member is up, votes durably (none
    /// is rebuilding after a wipe) and has every slot `i` knows chosen. Paxos survives one
    /// lost disk, not the last copies of a chosen value: a value chosen by `i` and one other
    /// must not lose both. A rebuilding member counts as a lost disk until it votes again,
    /// which it does only once it holds the chosen log (rebuild.rs; seed 91 of the member
    /// campaign lost acknowledged writes when it voted again before, and this asked less).
    ///
    /// With membership changes, "every other member" is every member of the configuration
    /// any of them still holds: each running member must have entered the newest one. A
    /// member whose removal the others have not yet learned is chosen is still a voter to
    /// them, and it is gone for good: wiping another then left two of four voters unable to
    /// vote (seed 147 of the membership campaign with wipes, no leader after the heal).
    pub(super) fn may_wipe(&self, i: usize) -> bool {
        let chosen = |n: &super::Node| n.run.as_ref().map(|r| r.member.status().chosen_through);
        let Some(mine) = chosen(&self.nodes[i]) else {
            return false;
        };
        let others_hold =
            self.nodes.iter().enumerate().all(|(j, n)| {
                j == i || n.spare || (!n.wiped && chosen(n).is_some_and(|c| c >= mine))
            });
        if !others_hold || !self.config.membership {
            return others_hold;
        }
        let Some((epoch, voters, learners)) = self.newest_configuration() else {
            return false;
        };
        let entered = self
            .nodes
            .iter()
            .filter_map(|n| n.run.as_ref().filter(|_| !n.spare))
            .all(|r| r.member.replica().membership().epoch == epoch);
        let listed_up = voters.iter().chain(&learners).all(|&id| {
            self.place_of(id)
                .is_some_and(|p| self.nodes[p].run.is_some())
        });
        // Nor while a change may still move the configuration: one asked and not answered,
        // or one whose answer was lost while its stop-sign sits in some member's log.
        let settled = !self.operator.busy()
            && self
                .nodes
                .iter()
                .filter_map(|n| n.run.as_ref().filter(|_| !n.spare))
                .all(|r| !r.member.replica().change_in_flight());
        entered && listed_up && settled
    }

    /// The operator's turn: asks one change of the leader (faults phase only).
    pub(super) fn operate(&mut self) {
        if self.phase != Phase::Faults {
            return;
        }
        let next = range(&mut self.rng, 150_000, 500_000);
        self.schedule(self.now + next, Event::Operator);
        if self.operator.busy() {
            return;
        }
        let (Some(leader), Some((_, voters, learners))) =
            (self.leader_place(), self.newest_configuration())
        else {
            return;
        };
        let leader_id = self.nodes[leader].id;
        let min_voters = self.config.nodes.min(3);
        let up = |s: &Self, id: u64| s.place_of(id).is_some_and(|p| s.nodes[p].run.is_some());
        let mut choices: Vec<(ChangeKind, u64)> = Vec::new();
        for &id in &learners {
            if up(self, id) {
                choices.push((ChangeKind::Promote, id));
            } else {
                choices.push((ChangeKind::RemoveDown, id));
            }
        }
        if let Some(spare) = self.nodes.iter().position(|n| n.spare) {
            if learners.is_empty() {
                choices.push((ChangeKind::AddLearner, spare as u64));
            }
        }
        if voters.len() > min_voters {
            for &id in voters.iter().filter(|&&id| id != leader_id) {
                let kind = if up(self, id) {
                    ChangeKind::RemoveFollower
                } else {
                    ChangeKind::RemoveDown
                };
                choices.push((kind, id));
            }
            choices.push((ChangeKind::RemoveLeader, leader_id));
        }
        if choices.is_empty() {
            return;
        }
        let (kind, target) = choices[below(&mut self.rng, choices.len() as u64) as usize];
        let change = match kind {
            ChangeKind::AddLearner => {
                let place = target as usize;
                let id = self.operator.next_id;
                self.operator.next_id += 1;
                self.join(place, id, voters);
                return self.ask(
                    leader,
                    kind,
                    id,
                    ClusterChange::Add {
                        id,
                        peer_urls: vec![format!("http://sim-{id}:2380")],
                        learner: true,
                    },
                );
            }
            ChangeKind::Promote => ClusterChange::Promote { id: target },
            _ => ClusterChange::Remove { id: target },
        };
        self.ask(leader, kind, target, change);
    }

    /// Starts a new member `id` at spare `place`, on an empty disk, knowing `voters`.
    fn join(&mut self, place: usize, id: u64, voters: Vec<u64>) {
        let node = &mut self.nodes[place];
        debug_assert!(node.spare && node.run.is_none(), "a spare place is empty");
        node.fs = MemFs::new();
        node.id = id;
        node.spare = false;
        node.wiped = false;
        node.joined_knowing = Some(voters);
        self.operator.joined_at.insert(place, self.now);
        self.checks.wiped(place);
        self.trace_line(|| format!("operator starts m{id} at place {place} to join"));
        self.start(place);
    }

    fn ask(&mut self, place: usize, kind: ChangeKind, target: u64, change: ClusterChange) {
        let request = RequestId(self.next_request);
        self.next_request += 1;
        self.tally.changes.entry(kind.name()).or_default().0 += 1;
        let at = self.nodes[place].id;
        self.trace_line(|| format!("operator asks m{at}: {change:?}"));
        self.operator
            .asks
            .insert((place, request), Ask { kind, target });
        let now = self.micros(place);
        if let Some(run) = self.nodes[place].run.as_mut() {
            run.member
                .on_request(now, request, Request::Cluster(change));
        }
        self.drive(place);
    }

    /// The member at `place` answered a change.
    pub(super) fn operator_answered(&mut self, place: usize, ask: Ask, answer: Answer) {
        let entry = self.tally.changes.entry(ask.kind.name()).or_default();
        match answer {
            Answer::Members(Ok(list)) => {
                entry.1 += 1;
                let listed = list.iter().any(|m| m.id == ask.target);
                let removal = !matches!(ask.kind, ChangeKind::AddLearner | ChangeKind::Promote);
                if removal == listed {
                    let detail = format!(
                        "m{} answered {:?} of m{} with a member list that {} it",
                        self.nodes[place].id,
                        ask.kind,
                        ask.target,
                        if listed {
                            "still lists"
                        } else {
                            "does not list"
                        }
                    );
                    self.checks.violation(
                        super::MemberCheck::Membership,
                        self.now,
                        Some(place),
                        detail,
                    );
                }
                if removal {
                    if let Some(p) = self.place_of(ask.target) {
                        self.retire(p, "the operator removed it");
                    }
                }
            }
            other => {
                entry.2 += 1;
                self.trace_line(|| format!("operator's {:?} refused: {other:?}", ask.kind));
            }
        }
    }

    /// The member at place `i` applied its own removal and stops (as a node's process exits):
    /// the change the operator asked of it (removing itself, as leader) is in force, though
    /// its answer goes with it.
    pub(super) fn operator_removed(&mut self, i: usize) {
        let id = self.nodes[i].id;
        let own: Vec<(usize, RequestId)> = self
            .operator
            .asks
            .iter()
            .filter(|((p, _), ask)| *p == i && ask.target == id)
            .map(|(k, _)| *k)
            .collect();
        for key in own {
            if let Some(ask) = self.operator.asks.remove(&key) {
                self.tally.changes.entry(ask.kind.name()).or_default().1 += 1;
            }
        }
    }

    /// Place `i` lost its member's volatile state: its asks will not be answered (the change
    /// may or may not take effect; the members tell which).
    pub(super) fn operator_lost(&mut self, i: usize) {
        let lost: Vec<(usize, RequestId)> = self
            .operator
            .asks
            .keys()
            .filter(|(p, _)| *p == i)
            .copied()
            .collect();
        for key in lost {
            if let Some(ask) = self.operator.asks.remove(&key) {
                self.tally.changes.entry(ask.kind.name()).or_default().3 += 1;
            }
        }
    }

    /// The member at place `i` is no longer one: it stops, its disk is wiped, the place is a
    /// spare again.
    pub(super) fn retire(&mut self, i: usize, why: &str) {
        if self.nodes[i].spare {
            return;
        }
        let id = self.nodes[i].id;
        self.trace_line(|| format!("m{id} at place {i} retires: {why}"));
        self.lose_volatile(i);
        let node = &mut self.nodes[i];
        node.run = None;
        node.fs = MemFs::new();
        node.spare = true;
        node.wiped = false;
        node.joined_knowing = None;
        self.operator.joined_at.remove(&i);
        self.checks.wiped(i);
        self.tally.retired += 1;
    }

    /// At every check: places whose member the cluster's newest configuration does not list are retired (a removal
    /// whose answer was lost, a joiner whose add failed).
    pub(super) fn tend_membership(&mut self) {
        if !self.config.membership || self.operator.busy() {
            return;
        }
        let Some((_, voters, learners)) = self.newest_configuration() else {
            return;
        };
        for i in 0..self.nodes.len() {
            let node = &self.nodes[i];
            if node.spare || voters.contains(&node.id) || learners.contains(&node.id) {
                continue;
            }
            let joining = self
                .operator
                .joined_at
                .get(&i)
                .is_some_and(|t| self.now.saturating_sub(*t) < JOIN_GRACE_US);
            if !joining {
                self.retire(i, "the configuration in force does not list it");
            }
        }
    }
}
