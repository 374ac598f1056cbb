//! Reconfiguration: the configuration is replicated state, changed by a stop-sign chosen in
//! the log. (Lamport, Malkhi, Zhou, "Stoppable Paxos" (2008) and "Reconfiguring a State
//! Machine" (2010); the stop-sign as in Vertical Paxos and OmniPaxos.)
//!
//! **Epochs.** Epoch 0 is the cluster's first configuration, deciding slots from 1. A leader
//! changes the configuration by proposing `Value::StopSign(next)` in a slot `j` of its epoch
//! `e`; once `j` is chosen *and every slot before it is* (the chosen prefix passes `j`), a
//! replica enters epoch `e + 1`, whose configuration `next` decides every slot after `j`.
//! So each slot is decided by exactly one configuration, and single-decree Paxos per slot
//! keeps it safe, provided two things hold:
//!
//! 1. **Nothing after a chosen stop-sign is chosen in its epoch.** A leader proposes nothing
//!    after a stop-sign it proposed or adopted (`fill_window`), and a stop-sign is proposed
//!    only at `next_slot`, above everything the leader proposed. At takeover (phase 1), the
//!    Stoppable Paxos rule: a stop-sign at `j` reported at ballot `b` while some later slot
//!    was reported at a ballot above `b` cannot have been chosen (that later ballot's leader
//!    ran phase 1 after `b` and did not adopt it, which it would have had it been chosen), so
//!    it is replaced by a no-op; otherwise the first stop-sign ends the slots the new leader
//!    re-proposes, and nothing above it is proposed in this epoch. Induction on ballots shows
//!    no value above a chosen stop-sign is ever chosen in its epoch.
//! 2. **Each epoch's phase 1 happens in that epoch's configuration.** Leader messages carry
//!    their epoch and an acceptor votes only in its own epoch: a replica that has not yet
//!    entered epoch `e + 1` refuses to promise or accept for it (it catches up first), and a
//!    replica in `e + 1` refuses the stale leaders of `e` (telling them how far the log is
//!    chosen). A leader entering `e + 1` runs phase 1 in it before proposing, even if it led
//!    `e`. Entries accepted in `e` after `j` are void on entry (they can never be chosen, by
//!    1), so they are never reported in `e + 1`'s phase 1.
//!
//! A stop-sign may name any next configuration, since epochs never share a slot: growing from
//! 3 to 5 voters or replacing all of them is as safe as replacing one. What a change costs is
//! liveness, so new voters must first be **learners** (members that receive accepts,
//! heartbeats and catch-up but never promise, never grant a pre-vote and never count in a
//! quorum) that have caught up to within `promote_lag_slots_max` slots of the leader.
//!
//! A leader that is not a voter of the next configuration steps down on entering it and asks
//! the best caught-up voter of the next one to run phase 1 at once (`TakeLead`). A removed
//! member refuses nothing it is sent but is sent nothing; what it sends in its old epoch is
//! refused (`RemovedMember`) and answered with the chosen prefix, from which it learns it was
//! removed. A node outside the configuration cannot vote or be counted by sending messages.

use super::*;

impl Message {
    /// The configuration epoch a leader's or candidate's message belongs to, if it has one.
    pub fn epoch(&self) -> Option<u64> {
        match self {
            Message::PreVote { epoch, .. }
            | Message::Prepare { epoch, .. }
            | Message::Accept { epoch, .. }
            | Message::Heartbeat { epoch, .. }
            | Message::TakeLead { epoch } => Some(*epoch),
            _ => None,
        }
    }
}

impl Replica {
    /// Proposes a change to `next` (as leader): a stop-sign at the next free slot, after which
    /// this configuration decides nothing more. Returns the stop-sign's slot; the change is in
    /// force once [`Replica::epoch`] grows. Refused while another change is under way, for a
    /// new voter that is not a learner now, and for a learner that lags by more than
    /// `promote_lag_slots_max` slots.
    pub fn propose_reconfiguration(&mut self, next: Configuration) -> Result<Slot, ReconfigError> {
        if self.role != Role::Leader {
            return Err(ReconfigError::NotLeader {
                leader: self.leader,
            });
        }
        if let Some(slot) = self.stop_sign {
            return Err(ReconfigError::InProgress { slot });
        }
        let now = &self.membership.config;
        let bound = self.options.promote_lag_slots_max;
        for &node in next.members() {
            if now.is_voter(node) {
                continue;
            }
            let Some(i) = now.index_of(node).filter(|_| now.is_learner(node)) else {
                return Err(ReconfigError::NotALearner { node });
            };
            // A learner that has not reported yet counts as holding nothing. It must also have
            // reported, in this epoch, a chosen prefix through the stop-sign that began it (so
            // it runs and knows it is a learner): else a learner that never started would pass
            // while the log is still shorter than the bound, and become a voter that cannot
            // vote. `u64::MAX` turns the whole check off (the model judges the rule alone).
            let lag_slots = self.chosen_through.0.saturating_sub(self.peer_chosen[i].0);
            let reported = self.peer_chosen[i].0 + 1 >= self.membership.first_slot.0;
            if bound != u64::MAX && !reported {
                return Err(ReconfigError::LearnerNotReported { node });
            }
            if bound != u64::MAX && lag_slots > bound {
                return Err(ReconfigError::LearnerBehind {
                    node,
                    lag_slots,
                    bound_slots: bound,
                });
            }
        }
        Ok(self.propose_stop_sign(next))
    }

    /// Proposes the stop-sign to `next` at the next free slot, with no check of who is in
    /// it: only for [`Replica::propose_reconfiguration`] and a planted bug.
    pub(super) fn propose_stop_sign(&mut self, next: Configuration) -> Slot {
        debug_assert!(self.role == Role::Leader && self.stop_sign.is_none());
        let slot = self.next_slot;
        self.next_slot = slot.next();
        self.stop_sign = Some(slot);
        self.propose_slot(slot, Value::StopSign(next));
        slot
    }

    /// Whether a change of configuration may be under way in the epoch in force, as far as
    /// this replica knows: it proposed a stop-sign as leader, or its log holds one in a slot
    /// of this epoch (accepted, or chosen behind a hole) that it has not entered yet. For
    /// drivers that must not add faults while the configuration may still move.
    pub fn change_in_flight(&self) -> bool {
        self.stop_sign.is_some()
            || self
                .log
                .range(self.membership.first_slot..)
                .any(|(_, e)| e.value.is_stop_sign())
    }

    /// Checks who may send `msg`: members of the configuration in force for everything; anyone
    /// for `Learn` (chosen values are facts, and a replica that lags behind a change learns of
    /// its new members this way) and for a leader's message from a later epoch (answered only
    /// by catching up, never by a vote); members of the previous configuration for `CatchUp`
    /// (a removed member learns of its removal) and `TakeLead` (from the leader that left).
    pub(super) fn validate_sender(&self, from: NodeId, msg: &Message) -> Result<(), RejectReason> {
        if self.membership.config.contains(from) {
            return Ok(());
        }
        let removed = self.previous.as_ref().is_some_and(|p| p.contains(from));
        match msg {
            Message::Learn { .. } => Ok(()),
            Message::CatchUp { .. } | Message::TakeLead { .. } if removed => Ok(()),
            m if m.epoch().is_some_and(|e| e > self.membership.epoch) => Ok(()),
            _ if removed => Err(RejectReason::RemovedMember),
            _ => Err(RejectReason::UnknownSender),
        }
    }

    /// A leader's message from a member this replica knows was removed: tell it how far the
    /// log is chosen, so it catches up and learns of its removal.
    pub(super) fn tell_stale(&mut self, to: NodeId, msg: &Message) {
        if matches!(
            msg,
            Message::Prepare { .. } | Message::Accept { .. } | Message::Heartbeat { .. }
        ) {
            self.send_chosen_prefix(to);
        }
    }

    fn send_chosen_prefix(&mut self, to: NodeId) {
        let learn = Message::Learn {
            records: Vec::new(),
            chosen_through: self.chosen_through,
            compacted_through: self.compacted_through,
        };
        self.outbox.send(to, learn, 0);
    }

    /// A message from another epoch than this replica's. From a later one: this replica lags
    /// behind a change, so it catches up from the sender and keeps a Prepare for when it has
    /// entered that epoch. From an earlier one: the sender lags, and is told how far the log
    /// is chosen. A pre-vote across epochs is never granted.
    pub(super) fn on_other_epoch(&mut self, from: NodeId, epoch: u64, msg: Message) {
        if epoch > self.membership.epoch {
            if let Message::Prepare {
                ballot,
                from_slot,
                epoch,
            } = msg
            {
                self.deferred_prepare = Some((from, ballot, from_slot, epoch));
            }
            let due = self.catch_up_asked_ticks.is_none_or(|t| {
                self.now_ticks.saturating_sub(t)
                    >= u64::from(self.options.election_timeout_ticks / 2).max(1)
            });
            if due {
                self.ask_catch_up(from);
            }
            return;
        }
        match msg {
            Message::PreVote { round, .. } => {
                let reply = Message::PreVoteReply {
                    round,
                    granted: false,
                };
                self.outbox.send(from, reply, 0);
                self.counters.pre_votes_refused += 1;
                self.send_chosen_prefix(from);
            }
            Message::Prepare { .. } | Message::Accept { .. } | Message::Heartbeat { .. } => {
                self.send_chosen_prefix(from)
            }
            _ => {}
        }
    }

    /// Enters every configuration whose stop-sign the chosen prefix has passed. Called after
    /// each input, never in the middle of handling one, so a role change never cuts a
    /// handler short.
    pub(super) fn enter_chosen_configurations(&mut self) {
        if let Some(slot) = self.stop_sign {
            if self
                .log
                .get(&slot)
                .is_some_and(|e| e.chosen && !e.value.is_stop_sign())
            {
                // Another value was chosen where this leader's stop-sign stood (it adopted a
                // stop-sign that lost): nothing is sealed, proposals go on.
                self.stop_sign = None;
            }
        }
        loop {
            let first = self.membership.first_slot;
            if self.chosen_through < first {
                return;
            }
            // Slots already looked at in this epoch hold no stop-sign, and cannot come to:
            // they are at or below `chosen_through`, so chosen, and a chosen value never
            // changes (`chosen_through` only grows, and a new epoch has a new first slot).
            // Looking again at every chosen slot after each input made a long log cost
            // time proportional to its length per input (most of a busy member's CPU).
            let from = self.stop_sign_scanned.resume(first, self.chosen_through);
            // (`BTreeMap::range` refuses a start past its end: nothing new was chosen.)
            let stop = (from <= self.chosen_through)
                .then(|| {
                    self.log
                        .range(from..=self.chosen_through)
                        .find(|(_, e)| e.chosen && e.value.is_stop_sign())
                        .map(|(slot, e)| (*slot, e.value.clone()))
                })
                .flatten();
            if cfg!(debug_assertions) && self.log.len() <= STOP_SIGN_SCAN_CHECK_ENTRIES_MAX {
                let everything = self
                    .log
                    .range(first..=self.chosen_through)
                    .find(|(_, e)| e.chosen && e.value.is_stop_sign())
                    .map(|(slot, _)| *slot);
                assert_eq!(
                    stop.as_ref().map(|(slot, _)| *slot),
                    everything,
                    "the stop-sign search skipped a chosen stop-sign"
                );
            }
            let Some((slot, Value::StopSign(next))) = stop else {
                self.stop_sign_scanned = StopSignScan {
                    first,
                    through: self.chosen_through,
                };
                return;
            };
            self.enter_configuration(slot, next);
        }
    }

    /// The stop-sign at `stop` is chosen and so is every slot before it: from `stop + 1` on,
    /// `next` decides.
    fn enter_configuration(&mut self, stop: Slot, next: Configuration) {
        debug_assert!(self.chosen_through >= stop);
        let membership = self.membership.after_stop_sign(stop, next);
        // Votes cast in the old epoch after its stop-sign are void. Entries marked chosen
        // after it are the next epoch's (learned in the same page that passed the stop-sign):
        // by rule 1 none was chosen in the old one.
        self.log.retain(|slot, e| *slot <= stop || e.chosen);
        self.outbox.record(PersistOp::EnterConfiguration {
            membership: membership.clone(),
        });
        let was_leader = self.role == Role::Leader;
        // The successor to hand the lead to, if this leader leaves: the voter of the next
        // configuration that has reported the longest chosen prefix (never a Cheap Paxos
        // auxiliary, which does not lead).
        let successor = membership
            .config
            .members()
            .iter()
            .copied()
            .filter(|n| *n != self.id && !membership.config.is_auxiliary(*n))
            .max_by_key(|n| {
                self.index_of(*n)
                    .map_or(Slot::ZERO, |i| self.peer_chosen[i])
            });
        if was_leader {
            // Tell followers the prefix now, at the old ballot, so they enter the new epoch
            // before this replica's (or its successor's) Prepare reaches them.
            self.send_heartbeats();
        }
        let cheap = |c: &Configuration| matches!(c.quorum(), QuorumSpec::Cheap { .. });
        if was_leader
            && cheap(&membership.config)
            && cheap(&self.membership.config)
            && membership.config.mains().len() > self.membership.config.mains().len()
        {
            // A Cheap Paxos re-admission took effect (cheap.rs, habit 4).
            self.counters.readmissions_entered += 1;
        }
        self.adopt(membership);
        self.proposals.clear();
        if self.next_slot <= stop {
            self.next_slot = stop.next();
        }
        // Reads waiting here were confirmed (or not) by the old configuration: retry them.
        self.fail_waiting_reads(None);
        let voter = self.is_voter();
        if self.role != Role::Follower {
            if was_leader && voter {
                // Lead on in the new epoch after its phase 1; queued commands wait for it.
                self.lead_again();
            } else {
                self.step_down(None);
                if was_leader {
                    if let Some(to) = successor {
                        let msg = Message::TakeLead {
                            epoch: self.membership.epoch,
                        };
                        self.outbox.send(to, msg, 0);
                    }
                }
            }
        }
        if !self.is_member() {
            self.leader = None;
        }
        if self.rebuild.is_some() && voter {
            // The fence must come from the voters of the configuration in force.
            self.start_rebuild();
        }
        if let Some((from, ballot, from_slot, epoch)) = self.deferred_prepare.take() {
            if epoch == self.membership.epoch && self.membership.config.is_voter(from) {
                self.on_prepare(from, ballot, from_slot);
            } else if epoch > self.membership.epoch {
                self.deferred_prepare = Some((from, ballot, from_slot, epoch));
            }
        }
    }

    /// The Stoppable Paxos rule at takeover (rule 1 of the module doc). Replaces stop-signs
    /// outvoted by a higher ballot at a later slot with no-ops, and returns the first
    /// stop-sign left: the last slot the new leader may propose in this epoch.
    pub(super) fn seal_takeover(
        &mut self,
        takeover: &mut BTreeMap<Slot, SlotRecord>,
    ) -> Option<Slot> {
        if self.bugs.has(Bug::ReconfigWithoutStop) {
            return None;
        }
        let first = self.membership.first_slot;
        let mut stop = None;
        let slots: Vec<Slot> = takeover.range(first..).map(|(s, _)| *s).collect();
        for slot in slots {
            let Some(record) = takeover.get(&slot) else {
                continue;
            };
            if !record.value.is_stop_sign() {
                continue;
            }
            let ballot = record.ballot;
            let outvoted = takeover
                .range(slot.next()..)
                .any(|(_, later)| later.ballot > ballot);
            if outvoted && !record.chosen {
                if let Some(r) = takeover.get_mut(&slot) {
                    r.value = Value::Noop;
                }
                continue;
            }
            stop = Some(slot);
            break;
        }
        if let Some(stop) = stop {
            assert!(
                self.bugs.any() || takeover.range(stop.next()..).all(|(_, r)| !r.chosen),
                "a value is reported chosen after the stop-sign at {stop}"
            );
            takeover.retain(|slot, _| *slot <= stop);
            self.stop_sign = Some(stop);
        }
        stop
    }

    /// A leaving leader asks this voter to lead the configuration it just entered, or a
    /// rebuilding replica that won phase 1 without a vote asks a voter that promised it.
    pub(super) fn on_take_lead(&mut self, from: NodeId) {
        let asked_by_leader = self.leader == Some(from) || self.promised.node == from;
        if asked_by_leader && self.is_voter() && self.role != Role::Leader {
            self.campaign();
        }
    }

    /// As [`Replica::install_snapshot`], for a snapshot taken in `membership` (which the
    /// driver keeps beside the state machine: see [`Applier::membership`]). A later
    /// configuration than this replica's is entered at once.
    pub fn install_snapshot_in(&mut self, through: Slot, membership: Membership) {
        if through <= self.handed_out_through {
            return;
        }
        if membership.epoch > self.membership.epoch {
            assert!(
                membership.first_slot <= through.next(),
                "a snapshot through {through} cannot be in a configuration starting at {}",
                membership.first_slot
            );
            self.log.retain(|slot, _| *slot > through);
            self.outbox.record(PersistOp::EnterConfiguration {
                membership: membership.clone(),
            });
            self.adopt(membership);
            if self.role != Role::Follower {
                self.step_down(None);
            }
            if self.rebuild.is_some() {
                // The fence must come from the voters of the configuration in force.
                self.start_rebuild();
            }
        }
        self.install_snapshot(through);
        self.enter_chosen_configurations();
    }

    /// Makes `membership` the configuration in force (its `EnterConfiguration` is recorded
    /// by the caller): indices, per-member tables and the pending stop-sign start afresh.
    fn adopt(&mut self, membership: Membership) {
        let old = std::mem::replace(&mut self.membership, membership);
        self.previous = Some(old.config);
        self.index = self.membership.config.index_of(self.id).unwrap_or(0);
        let n = self.membership.config.len_everyone();
        self.acked_ticks = vec![self.now_ticks; n];
        self.acked_round = vec![0; n];
        self.peer_chosen = vec![Slot::ZERO; n];
        self.stop_sign = None;
        self.counters.configurations_entered += 1;
    }
}

/// In debug builds, logs up to this many entries are also searched in full for a chosen
/// stop-sign, to check the incremental search against the plain one.
const STOP_SIGN_SCAN_CHECK_ENTRIES_MAX: usize = 4096;

/// Where the search for a chosen stop-sign resumes: slots `first..=through` of the epoch
/// that starts at `first` were looked at and hold none.
///
/// A cache of a function of the log, not state: it compares equal and hashes as nothing,
/// so two replicas in the same state are equal whatever their caches hold (the model
/// checkers count states by equality).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct StopSignScan {
    first: Slot,
    through: Slot,
}

impl StopSignScan {
    /// The first slot still to look at, in the epoch starting at `first` whose chosen
    /// prefix ends at `chosen_through`; `first` itself if the cache is of another epoch or
    /// (never, as `chosen_through` only grows) ahead of the prefix.
    fn resume(self, first: Slot, chosen_through: Slot) -> Slot {
        if self.first == first && self.through >= first && self.through <= chosen_through {
            self.through.next()
        } else {
            first
        }
    }
}

impl PartialEq for StopSignScan {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for StopSignScan {}

impl std::hash::Hash for StopSignScan {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

#[cfg(test)]
mod stop_sign_scan_tests {
    use super::*;

    #[test]
    fn the_search_resumes_only_within_its_epoch_and_prefix() {
        let s = |n| Slot(n);
        let fresh = StopSignScan::default();
        assert_eq!(fresh.resume(s(1), s(10)), s(1));
        let seen = StopSignScan {
            first: s(1),
            through: s(7),
        };
        assert_eq!(seen.resume(s(1), s(10)), s(8), "after what was looked at");
        assert_eq!(seen.resume(s(1), s(7)), s(8), "nothing new: an empty range");
        assert_eq!(
            seen.resume(s(5), s(10)),
            s(5),
            "another epoch: from its start"
        );
        assert_eq!(
            seen.resume(s(1), s(6)),
            s(1),
            "a prefix behind the cache: again"
        );
        assert_eq!(seen, fresh, "a cache never makes two replicas differ");
    }
}
