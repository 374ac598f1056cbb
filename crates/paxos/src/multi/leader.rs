//! Candidate and leader: pre-vote, phase 1 over every slot from the first unchosen one,
//! takeover, pipelined phase 2 with batching, heartbeats, check-quorum, read-index.

use super::*;

/// How many times a candidate re-sends its Prepares at the same ballot before it gives the
/// ballot up for a higher one: enough for voters whose syncs take a few election timeouts,
/// few enough that a voter which will never answer does not hold an election for long.
pub(super) const PREPARE_RESENDS_MAX: u32 = 4;

impl Replica {
    /// The election timer fired: ask for pre-votes (phase 1 comes only once a quorum grants).
    pub(super) fn seek_election(&mut self) {
        self.reset_election_timer();
        if self.role == Role::Leader {
            return;
        }
        if self.role == Role::Candidate {
            if self.phase1_may_still_win() && self.prepare_resends < PREPARE_RESENDS_MAX {
                // No higher ballot is known: the promises missing may only be slow (a disk
                // whose syncs outlast an election timeout, a lost message). A new ballot would
                // need every promise again, each behind another sync, and would throw away
                // those already on their way: on disks slower than the timer no attempt would
                // ever finish. Ask again at the same ballot instead, a bounded number of
                // times: a voter that never answers (one that is rebuilding, or has left the
                // configuration) would otherwise hold this candidate at its ballot for good.
                self.prepare_resends += 1;
                self.resend_prepares();
                return;
            }
            // A higher ballot is known, or the re-sends are spent: this attempt cannot win, or
            // should not wait longer. Forget it, start over.
            self.takeover.clear();
            self.promises = NodeSet::EMPTY;
        }
        self.role = Role::PreCandidate;
        self.leader = None;
        // A node that seeks election no longer counts the old leader as live.
        self.heard_leader_ticks = None;
        self.pre_vote_round = self.round_seen.max(self.promised.round) + 1;
        self.pre_votes = NodeSet::EMPTY;
        self.pre_votes.insert(self.index);
        let msg = Message::PreVote {
            round: self.pre_vote_round,
            epoch: self.membership.epoch,
        };
        self.broadcast_voters(msg, 0);
        if self.membership.config.is_phase1_quorum(self.pre_votes) {
            self.start_phase1();
        }
    }

    /// Whether this candidate's phase 1 can still win at its ballot: it still holds its own
    /// promise of it and has seen no higher round (a Prepare, Nack or heartbeat of one would
    /// have raised `round_seen`; a higher ballot at the same round it promised would have
    /// raised `promised`).
    fn phase1_may_still_win(&self) -> bool {
        debug_assert!(self.role == Role::Candidate);
        self.promised == self.ballot && self.round_seen == self.ballot.round
    }

    /// Phase 1a again at the candidate's ballot, to every voter whose promise has not come.
    /// A voter that promised it already answers again with no new write; one that promised
    /// higher answers with a Nack, which ends the attempt.
    fn resend_prepares(&mut self) {
        let from_slot = self.chosen_through.next();
        // The Prepares of a ballot leave only once the candidate's own promise of it is
        // durable, as in `start_phase1`.
        let needs = self.promise_persist_seq;
        for i in 0..self.membership.config.members().len() {
            let to = self.membership.config.members()[i];
            if to == self.id || self.promises.contains(i) {
                continue;
            }
            let prepare = Message::Prepare {
                ballot: self.ballot,
                from_slot,
                epoch: self.membership.epoch,
            };
            self.outbox.send(to, prepare, needs);
            self.counters.prepares_resent += 1;
        }
    }

    /// Whether this replica's newest promise is still on its way to disk a third of an
    /// election timeout after it was recorded. While it is, the election timer stands still
    /// (`Replica::tick`), so election time runs from when the promise is durable: the
    /// candidate it promised cannot count the promise before, and an election of its own
    /// would need a promise queued behind this one. Without this, on a disk whose syncs
    /// outlast an election timeout, a follower would depose every candidate before its
    /// promise reached it, and a candidate itself before its own promise counted (a 1-member
    /// cluster on a 700 ms disk never elected a leader).
    ///
    /// Only a slow promise stops the timer: an earlier version stopped it for every promise in
    /// flight, which moved elections on fast disks as well (a promise is often in flight at a
    /// tick) and left member_membership seeds 29 and 39 without a leader. A promise is
    /// recorded where the timer is reset anyway (a Prepare, an Accept followed, a candidacy),
    /// so a third of a timeout of waiting never lets the timer run out first. The threshold is
    /// a judgement: longer than a fast disk's sync, shorter than the shortest timeout. In the
    /// member simulation, half a timeout left member_slow_disk seed 2 without a leader and two
    /// ticks member_membership's 5-member seed 35, all schedules into the open wipe-and-change
    /// finding (ARCHITECTURE.md, "Reconfiguration").
    pub(super) fn promise_slow_in_flight(&self) -> bool {
        let slow = u64::from((self.options.election_timeout_ticks / 3).max(1));
        !self.outbox.is_durable(self.promise_persist_seq)
            && self.now_ticks.saturating_sub(self.promise_recorded_ticks) >= slow
    }

    pub(super) fn on_pre_vote_reply(&mut self, from: NodeId, round: u64, granted: bool) {
        if self.role != Role::PreCandidate || round != self.pre_vote_round || !granted {
            return;
        }
        let Some(i) = self.index_of(from) else { return };
        self.pre_votes.insert(i);
        if self.membership.config.is_phase1_quorum(self.pre_votes) {
            self.start_phase1();
        }
    }

    /// Phase 1a with a fresh ballot, covering every slot from the first unchosen one.
    pub(super) fn start_phase1(&mut self) {
        if self.lease_blocks_candidacy() {
            // This voter granted another leader a lease: no promise, its own included, until
            // the grant runs out (lease.rs).
            self.role = Role::Follower;
            self.reset_election_timer();
            return;
        }
        let round = self.round_seen.max(self.promised.round) + 1;
        self.ballot = Ballot::new(round, self.id);
        self.note_round(round);
        self.role = Role::Candidate;
        self.prepare_resends = 0;
        self.promises = NodeSet::EMPTY;
        self.takeover.clear();
        self.takeover_compacted = None;
        self.counters.elections_started += 1;
        let from_slot = self.chosen_through.next();
        // Our own promise first, so the Prepares below leave only once it is durable: a
        // restart must never reuse this ballot with another value.
        self.on_prepare(self.id, self.ballot, from_slot);
        let needs = self.outbox.newest();
        let prepare = Message::Prepare {
            ballot: self.ballot,
            from_slot,
            epoch: self.membership.epoch,
        };
        self.broadcast_voters(prepare, needs);
    }

    /// Phase 1b page from `from`.
    pub(super) fn on_promise(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        records: Vec<SlotRecord>,
        next_from: Option<Slot>,
        compacted_through: Slot,
    ) {
        if self.role != Role::Candidate || ballot != self.ballot {
            return;
        }
        let Some(i) = self.index_of(from) else { return };
        if self.promises.contains(i) {
            return;
        }
        if compacted_through > self.chosen_through
            && self
                .takeover_compacted
                .is_none_or(|(_, c)| c < compacted_through)
        {
            self.takeover_compacted = Some((from, compacted_through));
        }
        let ignore_values = self.bugs.has(Bug::IgnorePromisedValues) && from != self.id;
        for r in records {
            if ignore_values && !r.chosen {
                continue;
            }
            match self.takeover.get(&r.slot) {
                Some(have) if have.chosen || (!r.chosen && have.ballot >= r.ballot) => {}
                _ => {
                    self.takeover.insert(r.slot, r);
                }
            }
        }
        if let Some(next) = next_from {
            let prepare = Message::Prepare {
                ballot,
                from_slot: next,
                epoch: self.membership.epoch,
            };
            self.send_to(from, prepare);
            return;
        }
        if self.rebuild.is_some() && from == self.id {
            // A rebuilding replica may run for leader but its own promise does not count: it
            // may have forgotten values it accepted, and a quorum must report them.
            return;
        }
        self.promises.insert(i);
        if self.membership.config.is_phase1_quorum(self.promises) {
            if self.rebuild.is_some() {
                // Its ballot is above the fence, but it cannot lead without a vote.
                self.hand_off_lead();
                return;
            }
            self.become_leader();
        }
    }

    fn send_to(&mut self, to: NodeId, msg: Message) {
        if to == self.id {
            self.dispatch(to, msg);
        } else {
            self.outbox.send(to, msg, 0);
        }
    }

    /// Phase 1 done: re-propose the highest-ballot value of every unchosen slot reported, fill
    /// holes with no-ops, then lead. (Paxos Made Simple, 3: the new leader's phase 2 for every
    /// slot it learned of, with "no-op" commands for gaps.)
    fn become_leader(&mut self) {
        debug_assert!(self.ballot.node == self.id && self.promised == self.ballot);
        assert!(
            self.rebuild.is_none(),
            "a replica that does not vote yet never leads"
        );
        self.role = Role::Leader;
        self.leader = Some(self.id);
        self.counters.elections_won += 1;
        self.heartbeat_elapsed_ticks = 0;
        self.acked_ticks
            .iter_mut()
            .for_each(|t| *t = self.now_ticks);
        self.acked_round.iter_mut().for_each(|r| *r = 0);
        self.read_round = 0;
        self.end_lease();
        self.cheap_engaged = false;
        self.proposals.clear();
        let mut takeover = std::mem::take(&mut self.takeover);
        // Slots a promiser compacted are chosen, though their values are unknown here: they
        // must be neither re-proposed nor filled, and this leader needs that peer's snapshot.
        let gap = match self.takeover_compacted.take() {
            Some((from, through)) if through > self.chosen_through => {
                self.want_snapshot(SnapshotWanted { from, through });
                self.peer_compacted = self.peer_compacted.max(through);
                through
            }
            _ => self.chosen_through,
        };
        // What this replica learned chosen while phase 1 ran outranks any report: a stale
        // stop-sign in a slot since chosen with another value must not seal anything.
        takeover.retain(|slot, _| *slot > gap);
        for (slot, r) in takeover.iter_mut() {
            if let Some(e) = self.log.get(slot).filter(|e| e.chosen) {
                r.ballot = e.ballot;
                r.value = e.value.clone();
                r.chosen = true;
            }
        }
        // Stoppable Paxos: nothing after a stop-sign that may be chosen (reconfig.rs).
        let stop = self.seal_takeover(&mut takeover);
        let first = gap.next();
        let mut last = takeover
            .keys()
            .next_back()
            .copied()
            .unwrap_or(Slot::ZERO)
            .max(gap);
        if let Some(stop) = stop {
            last = last.min(stop).max(gap);
        }
        for (slot, r) in takeover.iter().filter(|(_, r)| r.chosen) {
            self.learn_chosen(*slot, r.ballot, r.value.clone());
        }
        let mut slot = first;
        while slot <= last {
            let known_chosen = self.log.get(&slot).is_some_and(|e| e.chosen);
            if !known_chosen {
                let value = match takeover.get(&slot) {
                    Some(r) => r.value.clone(),
                    None => Value::Noop,
                };
                self.propose_slot(slot, value);
            }
            slot = slot.next();
        }
        self.next_slot = last.next();
        self.advance_chosen_through();
        self.send_heartbeats();
    }

    /// Phase 2a for one slot: accept it ourselves, ask the others.
    pub(super) fn propose_slot(&mut self, slot: Slot, value: Value) {
        debug_assert!(self.role == Role::Leader);
        self.proposals.insert(
            slot,
            Proposal {
                value: value.clone(),
                accepted: NodeSet::EMPTY,
                sent_ticks: self.now_ticks,
            },
        );
        let accept = Message::Accept {
            ballot: self.ballot,
            slot,
            value: value.clone(),
            chosen_through: self.chosen_through,
            epoch: self.membership.epoch,
        };
        // Others may accept in parallel with our own disk write; our own vote counts once durable.
        self.broadcast(accept, 0);
        self.chosen_announced = self.chosen_through;
        self.on_accept(self.id, self.ballot, slot, value, self.chosen_through);
    }

    /// Packs pending commands into new slots while the pipeline window has room.
    pub(super) fn fill_window(&mut self) {
        if self.stop_sign.is_some() && !self.bugs.has(Bug::ReconfigWithoutStop) {
            // The configuration in force decides nothing after its stop-sign: commands wait
            // for the next one (reconfig.rs).
            return;
        }
        while !self.pending.is_empty() {
            let decided = self.chosen_through.max(self.peer_compacted);
            let in_flight = (self.next_slot.0 - 1).saturating_sub(decided.0);
            if in_flight >= self.options.pipeline_window_slots {
                break;
            }
            // Whole commands only, at least one: a slot's value stays within a WAL record and a
            // peer frame whatever the clients send.
            let mut n = 0;
            let mut bytes = 0usize;
            for command in self
                .pending
                .iter()
                .take(self.options.batch_commands_max.max(1))
            {
                bytes = bytes.saturating_add(command.payload.len());
                if n > 0 && bytes > self.options.batch_bytes_max {
                    break;
                }
                n += 1;
            }
            let batch: Vec<Command> = self.pending.drain(..n).collect();
            let slot = self.next_slot;
            self.next_slot = slot.next();
            self.propose_slot(slot, Value::Batch(batch));
        }
    }

    /// Phase 2b from `from`: chosen once a phase-2 quorum accepted the same ballot.
    pub(super) fn on_accepted(&mut self, from: NodeId, ballot: Ballot, slot: Slot) {
        if self.role != Role::Leader || ballot != self.ballot {
            return;
        }
        let Some(i) = self.index_of(from) else { return };
        self.acked_ticks[i] = self.now_ticks;
        let Some(proposal) = self.proposals.get_mut(&slot) else {
            return;
        };
        proposal.accepted.insert(i);
        let quorum = if self.bugs.has(Bug::ChosenWithoutQuorum) {
            !proposal.accepted.is_empty()
        } else if self.bugs.has(Bug::LearnerInQuorum) {
            proposal.accepted.len() >= self.membership.config.phase2_size()
        } else {
            self.membership.config.is_phase2_quorum(proposal.accepted)
        };
        if quorum {
            let Some(proposal) = self.proposals.remove(&slot) else {
                return;
            };
            self.learn_chosen(slot, ballot, proposal.value);
            self.advance_chosen_through();
        }
    }

    /// A refusal carrying a higher ballot: whatever we were doing at the lower one is over.
    pub(super) fn on_nack(&mut self, ballot: Ballot, promised: Ballot) {
        self.note_round(promised.round);
        if self.role != Role::Follower && ballot == self.ballot && promised > self.ballot {
            self.step_down(None);
        }
    }

    pub(super) fn tick_leader(&mut self) {
        self.heartbeat_elapsed_ticks += 1;
        if self.heartbeat_elapsed_ticks >= self.options.heartbeat_ticks {
            self.send_heartbeats();
            self.resend_stalled_accepts();
        }
        // Check-quorum: a leader that has not heard from a phase-2 quorum within an election
        // timeout steps down, so that a node which can reach a quorum may take over.
        let window = u64::from(self.options.election_timeout_ticks.max(1));
        if self.now_ticks.is_multiple_of(window) {
            let mut live = NodeSet::EMPTY;
            live.insert(self.index);
            for (i, t) in self.acked_ticks.iter().enumerate() {
                if self.now_ticks.saturating_sub(*t) < window {
                    live.insert(i);
                }
            }
            if !self.membership.config.is_phase2_quorum(live) {
                self.step_down(None);
                return;
            }
        }
        self.tick_cheap();
    }

    /// Re-sends phase 2a, to members that have not accepted, for every slot proposed at least a
    /// heartbeat ago and still short of a quorum: without it one lost Accept or Accepted leaves
    /// a hole that stalls the chosen prefix (and every client behind it) forever.
    fn resend_stalled_accepts(&mut self) {
        let due = u64::from(self.options.heartbeat_ticks.max(1));
        self.resend_accepts(due);
    }

    /// Re-sends phase 2a for every slot still short of a quorum, at once (Cheap Paxos, when
    /// the auxiliaries are engaged).
    pub(super) fn resend_all_accepts(&mut self) {
        self.resend_accepts(0);
    }

    /// Re-sends phase 2a, to members that have not accepted, for slots sent `due` ticks ago.
    fn resend_accepts(&mut self, due: u64) {
        let now = self.now_ticks;
        let mut stalled = Vec::new();
        for (slot, p) in self.proposals.iter_mut() {
            if now.saturating_sub(p.sent_ticks) >= due {
                p.sent_ticks = now;
                stalled.push((*slot, p.value.clone(), p.accepted));
            }
        }
        for (slot, value, accepted) in stalled {
            for i in 0..self.membership.config.len_everyone() {
                let to = self.member_at(i);
                if to != self.id && !accepted.contains(i) && !self.is_idle_auxiliary(i) {
                    let accept = Message::Accept {
                        ballot: self.ballot,
                        slot,
                        value: value.clone(),
                        chosen_through: self.chosen_through,
                        epoch: self.membership.epoch,
                    };
                    self.outbox.send(to, accept, 0);
                    self.counters.accepts_resent += 1;
                }
            }
        }
    }

    /// Tells the followers a newly chosen prefix at once if no Accept has carried it: without
    /// this a follower learns it at the next heartbeat, and a client that wrote through that
    /// follower (which answers once it applies the write) waits a heartbeat interval for
    /// every write the leader has nothing to send after. Under load the next Accept carries
    /// it, and nothing extra is sent.
    pub(super) fn announce_chosen(&mut self) {
        debug_assert!(self.role == Role::Leader);
        if self.chosen_through > self.chosen_announced {
            self.send_heartbeats();
        }
    }

    pub(super) fn send_heartbeats(&mut self) {
        self.heartbeat_elapsed_ticks = 0;
        self.chosen_announced = self.chosen_through;
        self.open_lease_round();
        let hb = Message::Heartbeat {
            ballot: self.ballot,
            chosen_through: self.chosen_through,
            round: self.read_round,
            epoch: self.membership.epoch,
        };
        self.broadcast(hb, 0);
    }

    /// Starts one confirmation round shared by every read that arrived since the last one.
    pub(super) fn start_read_round(&mut self) {
        if self.reads_unsent.is_empty() {
            return;
        }
        self.read_round += 1;
        let reads = std::mem::take(&mut self.reads_unsent);
        self.counters.read_rounds += 1;
        self.counters.read_round_reads += reads.len() as u64;
        self.reads_in_round.insert(self.read_round, reads);
        self.acked_round[self.index] = self.read_round;
        self.send_heartbeats();
        self.confirm_reads();
    }

    pub(super) fn on_heartbeat_ack(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        round: u64,
        chosen_through: Slot,
    ) {
        if self.role != Role::Leader || ballot != self.ballot {
            return;
        }
        let Some(i) = self.index_of(from) else { return };
        self.acked_ticks[i] = self.now_ticks;
        self.peer_chosen[i] = self.peer_chosen[i].max(chosen_through);
        self.acked_round[i] = self.acked_round[i].max(round.min(self.read_round));
        self.extend_lease();
        // A lagging follower pulls what it misses (learner.rs); the leader does not push, since
        // a follower is normally behind by the slots still in flight.
        self.confirm_reads();
    }

    /// Reads in rounds echoed by a phase-2 quorum are confirmed: no higher ballot had been
    /// promised by that quorum when they echoed, so no other leader could have chosen anything.
    /// Why phase 2 is enough: a competing leader must first win phase 1, and every phase-1
    /// quorum meets every phase-2 quorum, so one echoing voter would have promised it first.
    /// The echoing set is tested as a set: under a grid or weights a count says nothing.
    fn confirm_reads(&mut self) {
        while let Some((&round, _)) = self.reads_in_round.first_key_value() {
            let mut echoed = NodeSet::EMPTY;
            for (i, r) in self.acked_round.iter().enumerate() {
                if *r >= round {
                    echoed.insert(i);
                }
            }
            // Only voters' echoes vouch for the absence of a higher promise: the quorum test
            // counts voters only, so a learner's echo never confirms a read.
            if !self.membership.config.is_phase2_quorum(echoed) {
                break;
            }
            let Some((_, reads)) = self.reads_in_round.pop_first() else {
                break;
            };
            for (id, slot) in reads {
                // A read at or past this epoch's stop-sign would be served from the state at
                // the stop-sign, but the next configuration may already have chosen (and
                // acknowledged) writes after it: the echoes of this epoch's quorum say
                // nothing about that epoch. It is retried in the next one. (Found by the
                // simulator under Cheap Paxos: an auxiliary that had not yet learned the
                // stop-sign echoed, with the dropped main, a read of the old epoch.)
                if self.stop_sign.is_some_and(|stop| slot >= stop) {
                    self.read_outcomes
                        .push(ReadOutcome::Failed { id, leader: None });
                } else {
                    self.read_outcomes.push(ReadOutcome::Ready { id, slot });
                }
            }
        }
    }

    /// Stops being candidate or leader. Pending commands and reads fail back to their callers.
    pub(super) fn step_down(&mut self, leader: Option<NodeId>) {
        if self.role == Role::Leader {
            self.counters.leaderships_lost += 1;
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.end_lease();
        self.takeover.clear();
        self.promises = NodeSet::EMPTY;
        self.proposals.clear();
        self.abandoned.extend(self.pending.drain(..).map(|c| c.id));
        self.fail_waiting_reads(leader);
        self.reset_election_timer();
    }

    /// Reads queued or waiting for a confirmation round fail, naming `leader` to retry at:
    /// what confirms them is gone with this leadership.
    pub(super) fn fail_waiting_reads(&mut self, leader: Option<NodeId>) {
        let failed = self.reads_unsent.drain(..).chain(
            std::mem::take(&mut self.reads_in_round)
                .into_values()
                .flatten(),
        );
        let failed: Vec<ReadId> = failed.map(|(id, _)| id).collect();
        for id in failed {
            self.read_outcomes.push(ReadOutcome::Failed { id, leader });
        }
    }

    /// As leader: runs phase 1 again with a higher ballot and leads on once it wins it (on
    /// entering a new configuration, or asked by a rebuilding voter for a ballot above its
    /// fence). Queued commands wait for it; what was proposed is in its own log, so its
    /// own promise reports it and it is proposed again. Reads waiting for a confirmation
    /// fail, to be retried: the heartbeats that would confirm them belong to the old ballot.
    pub(super) fn lead_again(&mut self) {
        debug_assert_eq!(self.role, Role::Leader);
        self.fail_waiting_reads(None);
        self.role = Role::Follower;
        self.counters.leaderships_lost += 1;
        self.end_lease();
        self.takeover.clear();
        self.promises = NodeSet::EMPTY;
        self.reset_election_timer();
        self.start_phase1();
    }
}
