//! A replica that lost its disk rejoins as a non-voting learner until no promise it may have
//! forgotten can matter. ("Paxos Made Live", 5.1: a rebuilt replica takes no part in votes
//! until it has seen an instance started after its rebuild.)
//!
//! Why a wiped acceptor must not simply start again empty: it may have promised a ballot `b`
//! (so it must not accept below `b`) and accepted values (which a later phase 1 must hear of).
//! The rule here makes both harmless:
//!
//! 1. **The fence.** It asks *every* member for the highest round it has seen. A candidate
//!    makes its own promise durable before its Prepares leave (leader.rs), so the proposer of
//!    any ballot this replica promised before the wipe reports a round at least as high. The
//!    fence is the highest report: every ballot it may have promised is at or below it.
//! 2. **A ballot above the fence, won without it.** It regains its vote only on seeing a
//!    leader whose ballot's round is above the fence. That leader finished phase 1 with a
//!    quorum of other members (this replica promises nothing meanwhile), so any value chosen
//!    before, even with this replica's forgotten vote, was reported to it by some member of
//!    that quorum and re-proposed; and no ballot at or below the fence can be chosen later
//!    without a member of that quorum breaking its promise. If no such leader appears, it runs
//!    for leader itself, counting only the others' promises.
//!
//! The fence needs every member's answer: a member that is down delays the rebuild, never
//! safety. A crash during the rebuild starts it over (the fence is not stored).

use super::*;

/// Progress of a rebuild.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) struct Rebuild {
    /// Members whose highest round is known (this replica included).
    reported: NodeSet,
    /// Highest round reported so far; final once every member reported.
    fence_round: u64,
    /// When the round query was last sent, to re-send it to members that did not answer.
    asked_ticks: u64,
    /// Ticks since the fence became known, to run for leader if no new leader shows up.
    fenced_ticks: u32,
}

impl Replica {
    /// Becomes a non-voting learner and asks every member for its highest round.
    pub(super) fn start_rebuild(&mut self) {
        let mut reported = NodeSet::EMPTY;
        reported.insert(self.index);
        self.rebuild = Some(Rebuild {
            reported,
            fence_round: self.round_seen.max(self.promised.round),
            asked_ticks: self.now_ticks,
            fenced_ticks: 0,
        });
        self.broadcast_voters(Message::RoundQuery, 0);
    }

    /// The fence, once every member has reported.
    pub(super) fn fence_round(&self) -> Option<u64> {
        let r = self.rebuild.as_ref()?;
        let voters = self.membership.config.members().len();
        (r.reported.len_below(voters) == voters).then_some(r.fence_round)
    }

    /// Re-asks members that did not answer; once fenced, runs for leader if no leader above
    /// the fence has shown up within an election timeout.
    pub(super) fn tick_rebuild(&mut self, rng: &mut impl RngCore) {
        let retry = u64::from(self.options.election_timeout_ticks.max(1));
        let Some(fence) = self.fence_round() else {
            let Some(r) = self.rebuild.as_mut() else {
                return;
            };
            if self.now_ticks.saturating_sub(r.asked_ticks) >= retry {
                r.asked_ticks = self.now_ticks;
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
        r.fenced_ticks = r.fenced_ticks.saturating_add(1);
        if r.fenced_ticks >= timeout && self.role != Role::Candidate
            || r.fenced_ticks >= timeout.saturating_mul(2)
        {
            r.fenced_ticks = 0;
            self.election_timeout_ticks = None;
            // start_phase1 picks a round above round_seen, which includes the fence.
            self.note_round(fence);
            self.reset_election_timer();
            self.start_phase1();
        }
    }

    /// Any member answers with the highest round it has seen or promised, rebuilding or not.
    pub(super) fn on_round_query(&mut self, from: NodeId) {
        let round = self.round_seen.max(self.promised.round);
        self.outbox.send(from, Message::RoundReport { round }, 0);
    }

    pub(super) fn on_round_report(&mut self, from: NodeId, round: u64) {
        self.note_round(round);
        let Some(i) = self.index_of(from) else { return };
        if self.fence_round().is_some() {
            // The fence is fixed once every member answered; a later (duplicated or delayed)
            // report may already reflect this replica's own candidacy above it.
            return;
        }
        if let Some(r) = self.rebuild.as_mut() {
            r.reported.insert(i);
            r.fence_round = r.fence_round.max(round);
        }
    }

    /// A leader message at `ballot` reached this rebuilding replica. Returns true if the
    /// replica now votes again (the caller then handles the message as a voter would).
    pub(super) fn observe_leader(&mut self, from: NodeId, ballot: Ballot) -> bool {
        debug_assert!(self.rebuild.is_some());
        if self.fence_round().is_some_and(|f| ballot.round > f) && ballot >= self.promised {
            self.regain_vote(ballot);
            return true;
        }
        if self.role == Role::Follower {
            self.leader = Some(from);
            self.heard_leader_ticks = Some(self.now_ticks);
        }
        false
    }

    /// Ends the rebuild: from here on this replica promises and accepts like any other.
    pub(super) fn regain_vote(&mut self, ballot: Ballot) {
        let fence = self.fence_round();
        assert!(
            fence.is_some_and(|f| ballot.round > f),
            "a rebuilt replica may vote again only at a ballot above its fence ({fence:?}), not {ballot}"
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
