//! The acceptor: promises and accepts, and says no with the higher ballot it holds.
//! (Paxos Made Simple, 2.2: P1a — accept a proposal numbered n unless it promised a higher one.)

use super::*;

impl Replica {
    /// Phase 1a → 1b. A re-sent Prepare at the promised ballot asks for the next page.
    pub(super) fn on_prepare(&mut self, from: NodeId, ballot: Ballot, from_slot: Slot) {
        self.note_round(ballot.round);
        if !self.is_voter() {
            // Learners and outsiders never promise: they are not counted, and a promise from
            // one would only hold a ballot back for nothing.
            return;
        }
        if self.rebuild.is_some() && from != self.id {
            // Non-voting: a promise from a replica that may have forgotten what it accepted
            // could let a new leader miss a chosen value.
            return;
        }
        if self.hold_prepare_under_grant(from, ballot, from_slot) {
            // Leader lease: this voter stands behind another leader until its grant runs out.
            return;
        }
        if ballot < self.promised {
            let nack = Message::Nack {
                ballot,
                promised: self.promised,
            };
            self.outbox.send(from, nack, 0);
            return;
        }
        if ballot > self.promised {
            self.raise_promise(ballot);
            if from != self.id {
                // A candidate at a higher ballot is running: give it time before seeking election.
                self.leader = None;
                self.reset_election_timer();
            }
        }
        let page_max = self.options.page_records_max.max(1);
        let mut records = Vec::new();
        let mut next_from = None;
        let first = from_slot.max(self.compacted_through.next());
        for (slot, e) in self.log.range(first..) {
            if records.len() == page_max {
                next_from = Some(*slot);
                break;
            }
            records.push(SlotRecord {
                slot: *slot,
                ballot: e.ballot,
                value: e.value.clone(),
                chosen: e.chosen,
            });
        }
        let promise = Message::Promise {
            ballot,
            from_slot,
            records,
            next_from,
            compacted_through: self.compacted_through,
        };
        // The promise must be durable before anyone counts it.
        let needs = self.outbox.newest();
        self.outbox.send(from, promise, needs);
    }

    /// Phase 2a → 2b.
    pub(super) fn on_accept(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        slot: Slot,
        value: Value,
        chosen_through: Slot,
    ) {
        self.note_round(ballot.round);
        if !self.is_member() {
            return;
        }
        // A rebuilding learner is a learner like any other (its accept is never counted).
        let rebuilding_voter = self.rebuild.is_some() && self.is_voter();
        if rebuilding_voter && from != self.id && !self.observe_leader(from, ballot) {
            self.learn_chosen_through(from, ballot, chosen_through);
            return;
        }
        if ballot < self.promised && !self.bugs.has(Bug::AcceptLowerBallot) {
            let nack = Message::Nack {
                ballot,
                promised: self.promised,
            };
            self.outbox.send(from, nack, 0);
            return;
        }
        if ballot > self.promised {
            // Accepting at b is promising b: nothing below b may be accepted afterwards.
            self.raise_promise(ballot);
        }
        if from != self.id {
            self.follow(ballot);
        }
        if slot <= self.compacted_through {
            // Chosen, applied and compacted: the value is gone, so this acceptor cannot say
            // whether the leader's value is the chosen one, and must not vote for it. It tells
            // the leader the slot is decided, so that the leader fetches the snapshot instead
            // of waiting for a quorum that may never come (this acceptor may have compacted
            // after it promised, so the leader's phase 1 could not know).
            if from != self.id {
                let learn = Message::Learn {
                    records: Vec::new(),
                    chosen_through: self.chosen_through,
                    compacted_through: self.compacted_through,
                };
                self.outbox.send(from, learn, 0);
            }
            return;
        }
        let known = self.log.get(&slot);
        if known.is_some_and(|e| e.chosen && e.value != value) {
            // Another value is chosen here, so this Accept comes from a superseded ballot.
            // Answering "accepted" would count a vote never cast for this value.
            return;
        }
        // Nothing to write if the slot is known chosen (with this value), or if this is a
        // repeated Accept (the network may duplicate): the answer below waits for the first
        // write like any other.
        let already_held =
            known.is_some_and(|e| e.chosen || (e.ballot == ballot && e.value == value));
        if !already_held {
            let entry = LogEntry {
                ballot,
                value: value.clone(),
                chosen: false,
            };
            self.log.insert(slot, entry);
            self.outbox.record(PersistOp::Accept {
                slot,
                ballot,
                value,
            });
        }
        let needs = self.outbox.newest();
        self.outbox
            .send(from, Message::Accepted { ballot, slot }, needs);
        if from != self.id {
            self.learn_chosen_through(from, ballot, chosen_through);
        }
    }

    /// A leader's heartbeat: follow it if its ballot is current, and echo the read round.
    pub(super) fn on_heartbeat(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        chosen_through: Slot,
        round: u64,
    ) {
        self.note_round(ballot.round);
        if !self.is_member() {
            return;
        }
        if self.rebuild.is_some() && self.is_voter() && !self.observe_leader(from, ballot) {
            // No echo: an echo vouches that no higher promise exists here, which a replica that
            // forgot its promises cannot vouch for. (A rebuilding learner echoes, as learners
            // do: its echo only tells the leader how far it has caught up, for promotion.)
            self.learn_chosen_through(from, ballot, chosen_through);
            return;
        }
        if ballot < self.promised {
            let nack = Message::Nack {
                ballot,
                promised: self.promised,
            };
            self.outbox.send(from, nack, 0);
            return;
        }
        self.follow(ballot);
        // The echo below counts toward this leader's lease (lease.rs): grant it first.
        self.grant_lease(from);
        let ack = Message::HeartbeatAck {
            ballot,
            round,
            chosen_through: self.chosen_through,
        };
        // The echo says "no promise above your ballot": true now, whether or not it is on disk,
        // since a promise not yet durable was never sent and so was never counted.
        self.outbox.send(from, ack, 0);
        self.learn_chosen_through(from, ballot, chosen_through);
    }

    /// Answers a pre-vote: granted only if no live leader has been heard from lately, so a node
    /// cut off from the leader cannot depose a leader that a quorum still follows.
    pub(super) fn on_pre_vote(&mut self, from: NodeId, round: u64) {
        let leader_live = match self.role {
            Role::Leader => true,
            _ => self.heard_leader_ticks.is_some_and(|t| {
                self.now_ticks.saturating_sub(t) < u64::from(self.options.election_timeout_ticks)
            }),
        };
        // A non-voting replica grants nothing: its grant would help depose a leader that it
        // cannot then help replace.
        let granted = !leader_live && self.rebuild.is_none() && self.is_voter();
        if !granted {
            self.counters.pre_votes_refused += 1;
        }
        self.outbox
            .send(from, Message::PreVoteReply { round, granted }, 0);
    }

    pub(super) fn raise_promise(&mut self, ballot: Ballot) {
        assert!(
            ballot > self.promised,
            "promises only grow: {ballot} after {}",
            self.promised
        );
        self.promised = ballot;
        self.promise_persist_seq = self.outbox.record(PersistOp::Promise { ballot });
        self.promise_recorded_ticks = self.now_ticks;
        if self.role != Role::Follower && self.ballot < ballot {
            self.step_down(None);
        }
    }

    /// Treats the owner of `ballot` (≥ promised) as the live leader.
    pub(super) fn follow(&mut self, ballot: Ballot) {
        debug_assert!(ballot >= self.promised || self.bugs.has(Bug::AcceptLowerBallot));
        if self.role != Role::Follower && ballot > self.ballot {
            self.step_down(Some(ballot.node));
        }
        if self.role == Role::Follower {
            self.leader = Some(ballot.node);
            self.heard_leader_ticks = Some(self.now_ticks);
            self.reset_election_timer();
        }
    }
}
