//! A replica that lost its disk does not vote until it holds again what it may have voted
//! for. ("Paxos Made Live", 5.1: a rebuilt replica takes no part in votes until it has seen
//! an instance started after its rebuild; the "amnesia" rule.)
//!
//! Why a wiped acceptor must not simply start again empty: it may have promised a ballot `b`
//! (so it must not accept below `b`) and accepted values (which a later phase 1 must hear of,
//! and which were part of the copies that make a chosen value survive one more lost disk).
//! Until it votes again it is, like a learner, a replica that does not vote yet: it never
//! promises (but for its own ballot, which never counts), never answers an accept, never
//! echoes a heartbeat, never grants a pre-vote, is never counted in a quorum and never leads;
//! it learns the chosen log by snapshot, then the tail. It regains its vote when both hold:
//!
//! 1. **A ballot above the fence, won without it.** It asks *every* voter for the highest
//!    round it has seen. A candidate makes its own promise durable before its Prepares leave
//!    (leader.rs), so the proposer of any ballot this replica promised before the wipe
//!    reports a round at least as high. The fence is the highest report: every ballot it may
//!    have promised is at or below it. It votes again only for a leader whose ballot's round
//!    is above the fence. That leader finished phase 1 with a quorum of other members, so any
//!    value chosen before, even with this replica's forgotten vote, was reported to it by some
//!    member of that quorum and re-proposed; and no ballot at or below the fence can be chosen
//!    later without a member of that quorum breaking its promise. If no such leader appears,
//!    it runs phase 1 itself above the fence, counting only the others' promises, and on
//!    winning hands the lead to a voter that promised (`TakeLead`) rather than lead while it
//!    cannot vote: that voter's ballot is then above the fence too. With leader leases on,
//!    while a leader below the fence is live, the voters hold every other candidate's Prepare
//!    (their grants name that leader and it renews them with each heartbeat): it asks that
//!    leader to run phase 1 again above the fence instead (`RaiseBallot`).
//! 2. **Caught up through that leader's log end.** It asks that leader how far its log reaches
//!    (`RoundQuery` again; the answer names the ballot it leads at) and votes only once its
//!    own chosen prefix reaches there. The leader's phase 1 ran after the wipe (its ballot is
//!    above every round the voters had seen after it), so every slot this replica's forgotten
//!    votes helped choose is at or below the highest slot that phase 1 found, which that
//!    leader re-proposed: at or below its log end. So once it votes, it holds every value it
//!    may have voted for, and a chosen value is on as many disks as before the wipe; a wiped
//!    replica counts as one lost disk until then, never longer. Every slot up to a leader's
//!    log end is chosen while that leader leads (it proposed them all), so the catch-up ends;
//!    a new leader above the fence restarts it against the new leader's log end.
//!
//! The fence needs every voter's answer: a member that is down delays the rebuild, never
//! safety. A crash during the rebuild starts it over (the fence is not stored). A rebuilding
//! replica outside the configuration in force (one added at run time that lost its disk, or
//! behind a change) learns like a joiner and starts its fence once it is a voter of the
//! configuration it has entered; one that is a learner there is simply a learner (it echoes
//! heartbeats, so the leader can promote it once caught up), and the fence starts when a
//! promotion makes it a voter.

use super::*;

/// Progress of a rebuild.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Rebuild {
    /// Voters whose highest round is known (this replica included).
    reported: NodeSet,
    /// Highest round reported so far; final once every voter reported.
    fence_round: u64,
    /// When the round query was last sent, to re-send it to voters that did not answer (and
    /// to the leader, until it tells its log end).
    asked_ticks: u64,
    /// Ticks since the fence became known, to run for leader if no new leader shows up.
    fenced_ticks: u32,
    /// The leader above the fence this replica follows, and, once it answered, its log end:
    /// the chosen prefix to hold before voting again.
    leader: Option<(Ballot, Option<Slot>)>,
}

impl Replica {
    /// Does not vote from here on and, once a voter of its configuration, asks every voter
    /// for its highest round.
    pub(super) fn start_rebuild(&mut self) {
        let mut reported = NodeSet::EMPTY;
        if self.is_voter() {
            reported.insert(self.index);
        }
        self.rebuild = Some(Rebuild {
            reported,
            fence_round: self.round_seen.max(self.promised.round),
            asked_ticks: self.now_ticks,
            fenced_ticks: 0,
            leader: None,
        });
        if self.is_voter() {
            self.broadcast_voters(Message::RoundQuery, 0);
        }
    }

    /// The fence, once every voter has reported.
    pub(super) fn fence_round(&self) -> Option<u64> {
        let r = self.rebuild.as_ref()?;
        let voters = self.membership.config.members().len();
        (self.is_voter() && r.reported.len_below(voters) == voters).then_some(r.fence_round)
    }

    /// Re-asks voters that did not answer (and a leader that did not tell its log end); once
    /// fenced, runs for leader if no leader above the fence has shown up within an election
    /// timeout.
    pub(super) fn tick_rebuild(&mut self, rng: &mut impl RngCore) {
        let retry = u64::from(self.options.election_timeout_ticks.max(1));
        let now = self.now_ticks;
        let Some(fence) = self.fence_round() else {
            let Some(r) = self.rebuild.as_mut() else {
                return;
            };
            if now.saturating_sub(r.asked_ticks) >= retry {
                r.asked_ticks = now;
                let reported = r.reported;
                for i in 0..self.membership.config.members().len() {
                    if !reported.contains(i) {
                        let to = self.membership.config.members()[i];
                        self.outbox.send(to, Message::RoundQuery, 0);
                    }
                }
            }
            return;
        };
        let timeout = self.election_timeout(rng);
        let Some(r) = self.rebuild.as_mut() else {
            return;
        };
        if let Some((ballot, None)) = r.leader {
            if now.saturating_sub(r.asked_ticks) >= retry {
                r.asked_ticks = now;
                self.outbox.send(ballot.node, Message::RoundQuery, 0);
            }
        }
        // A leader above the fence heard from lately: catching up, nothing to run for.
        let leader_live = r.leader.is_some()
            && self
                .heard_leader_ticks
                .is_some_and(|t| now.saturating_sub(t) < retry);
        if leader_live {
            r.fenced_ticks = 0;
            return;
        }
        r.fenced_ticks = r.fenced_ticks.saturating_add(1);
        if r.fenced_ticks >= timeout && self.role != Role::Candidate
            || r.fenced_ticks >= timeout.saturating_mul(2)
        {
            r.fenced_ticks = 0;
            r.leader = None;
            self.election_timeout_ticks = None;
            // start_phase1 picks a round above round_seen, which includes the fence.
            self.note_round(fence);
            if let Some(leader) = self.leader_renewing_grants() {
                // Its own Prepares would be held for as long as that leader renews its
                // grants: ask the grant holder for the ballot instead.
                let msg = Message::RaiseBallot {
                    epoch: self.membership.epoch,
                    round: self.round_seen.max(self.promised.round),
                };
                self.outbox.send(leader, msg, 0);
                return;
            }
            self.reset_election_timer();
            self.start_phase1();
        }
    }

    /// With leader leases on: the leader below the fence this rebuilding follower heard from
    /// within an election timeout. The voters that echo it grant it a lease with every
    /// heartbeat and hold every other candidate's Prepare until the grant runs out (lease.rs),
    /// which is never while it leads; only its own ballot can rise above the fence.
    fn leader_renewing_grants(&self) -> Option<NodeId> {
        let retry = u64::from(self.options.election_timeout_ticks.max(1));
        let heard = self
            .heard_leader_ticks
            .is_some_and(|t| self.now_ticks.saturating_sub(t) < retry);
        let leader = self.leader.filter(|l| *l != self.id)?;
        (self.lease_options().is_some() && self.role == Role::Follower && heard).then_some(leader)
    }

    /// As leader: a rebuilding voter asks for a ballot above `round` (its fence or higher),
    /// which its own candidacy cannot get while this leader's grants hold every other
    /// Prepare back. Runs phase 1 again above it. The leases stay safe: the grants name this
    /// leader, so no other candidate gets a promise they forbid, and it serves no leased read
    /// until it leads again under rounds echoed at the new ballot.
    pub(super) fn on_raise_ballot(&mut self, from: NodeId, epoch: u64, round: u64) {
        let asked = self.role == Role::Leader
            && epoch == self.membership.epoch
            && self.ballot.round <= round
            && self.stop_sign.is_none()
            && self.membership.config.is_voter(from);
        if !asked {
            return;
        }
        self.note_round(round);
        if self.lease_blocks_candidacy() {
            // Its own grant names no holder (it granted another leader before it led): it
            // cannot promise itself a new ballot until that runs out; the voter asks again.
            return;
        }
        self.counters.ballots_raised_for_rebuild += 1;
        self.lead_again();
        debug_assert!(self.role != Role::Candidate || self.ballot.round > round);
    }

    /// Any member answers with the highest round it has seen or promised and how far its log
    /// reaches, rebuilding or not.
    pub(super) fn on_round_query(&mut self, from: NodeId) {
        let round = self.round_seen.max(self.promised.round);
        let leading = if self.role == Role::Leader {
            self.ballot
        } else {
            Ballot::ZERO
        };
        let mut log_end = self.chosen_through;
        if let Some((slot, _)) = self.log.last_key_value() {
            log_end = log_end.max(*slot);
        }
        if self.role == Role::Leader {
            log_end = log_end.max(Slot(self.next_slot.0.saturating_sub(1)));
        }
        let report = Message::RoundReport {
            round,
            log_end,
            leading,
        };
        self.outbox.send(from, report, 0);
    }

    pub(super) fn on_round_report(
        &mut self,
        from: NodeId,
        round: u64,
        log_end: Slot,
        leading: Ballot,
    ) {
        self.note_round(round);
        if self.fence_round().is_some() {
            // The fence is fixed once every voter answered; a later (duplicated or delayed)
            // report may already reflect this replica's own candidacy above it. Only the
            // leader's log end is still wanted, from the ballot it leads at.
            if let Some(r) = self.rebuild.as_mut() {
                if let Some((ballot, end @ None)) = r.leader.as_mut() {
                    if leading == *ballot && leading.node == from {
                        *end = Some(log_end);
                    }
                }
            }
            return;
        }
        if !self.is_voter() {
            return;
        }
        let Some(i) = self
            .index_of(from)
            .filter(|_| self.membership.config.is_voter(from))
        else {
            return;
        };
        if let Some(r) = self.rebuild.as_mut() {
            r.reported.insert(i);
            r.fence_round = r.fence_round.max(round);
        }
    }

    /// A leader message at `ballot` reached this rebuilding replica. Returns true if the
    /// replica now votes again (the caller then handles the message as a voter would).
    pub(super) fn observe_leader(&mut self, from: NodeId, ballot: Ballot) -> bool {
        debug_assert!(self.rebuild.is_some());
        if self.role == Role::Follower {
            self.leader = Some(from);
            self.heard_leader_ticks = Some(self.now_ticks);
        }
        let above = self.fence_round().is_some_and(|f| ballot.round > f) && ballot >= self.promised;
        if !above {
            if self.role == Role::Candidate
                && self.lease_options().is_some()
                && ballot < self.ballot
            {
                // Its own candidacy is held back at every voter granting that leader a lease:
                // follow it, and ask it for a ballot above the fence (`tick_rebuild`).
                self.step_down(Some(from));
                self.heard_leader_ticks = Some(self.now_ticks);
            }
            return false;
        }
        if self.role != Role::Follower && ballot > self.ballot {
            // Its own candidacy lost to a leader above the fence: follow that one.
            self.step_down(Some(from));
            self.heard_leader_ticks = Some(self.now_ticks);
        }
        let now = self.now_ticks;
        let Some(r) = self.rebuild.as_mut() else {
            return false;
        };
        if r.leader.is_none_or(|(b, _)| b != ballot) {
            // A new leader above the fence: catch up through its log end, which it tells.
            r.leader = Some((ballot, None));
            r.asked_ticks = now;
            self.outbox.send(from, Message::RoundQuery, 0);
        }
        let caught_up = r
            .leader
            .is_some_and(|(_, end)| end.is_some_and(|end| self.chosen_through >= end));
        if caught_up || self.bugs.has(Bug::RebuiltVotesBeforeCaughtUp) {
            self.regain_vote(ballot);
            return true;
        }
        false
    }

    /// Won phase 1 above the fence with a quorum of others, but cannot lead without a vote:
    /// hands the lead to a voter that promised this ballot, whose own ballot will be above
    /// the fence too.
    pub(super) fn hand_off_lead(&mut self) {
        debug_assert!(self.rebuild.is_some());
        let successor = (0..self.membership.config.members().len())
            .filter(|i| self.promises.contains(*i))
            .map(|i| self.membership.config.members()[i])
            .find(|n| *n != self.id && !self.membership.config.is_auxiliary(*n));
        self.step_down(None);
        if let Some(to) = successor {
            let msg = Message::TakeLead {
                epoch: self.membership.epoch,
            };
            self.outbox.send(to, msg, 0);
        }
    }

    /// Ends the rebuild: from here on this replica promises and accepts like any other.
    pub(super) fn regain_vote(&mut self, ballot: Ballot) {
        let fence = self.fence_round();
        assert!(
            fence.is_some_and(|f| ballot.round > f),
            "a rebuilt replica may vote again only at a ballot above its fence ({fence:?}), not {ballot}"
        );
        let caught_up = self
            .rebuild
            .as_ref()
            .and_then(|r| r.leader)
            .is_some_and(|(b, end)| {
                b == ballot && end.is_some_and(|end| self.chosen_through >= end)
            });
        assert!(
            caught_up || self.bugs.any(),
            "a rebuilt replica may vote again only once it holds the chosen log through the \
             leader's log end (chosen through {})",
            self.chosen_through
        );
        self.rebuild = None;
        if ballot > self.promised {
            self.promised = ballot;
        }
        // Recorded before anything that depends on the vote: replies wait for this write.
        self.outbox.record(PersistOp::VoteRegained { ballot });
        self.reset_election_timer();
    }
}
