//! Cheap Paxos (Lamport and Massa, "Cheap Paxos", DSN 2004): f+1 main acceptors and f
//! auxiliary acceptors. It is not a fork of the core but the quorum rule
//! [`QuorumSpec::Cheap`] plus three leader habits, all here:
//!
//! 1. **Ask only the mains while they answer.** The set of all mains is a quorum, so in the
//!    normal case phase 2a and heartbeats go to the mains (and learners) only; auxiliaries
//!    get nothing and store nothing. Phase 1 (rare) still asks every voter.
//! 2. **Engage the auxiliaries while a main is silent.** A main not heard from for
//!    [`SUSPECT_AFTER_DIVISOR`]-th of an election timeout makes the leader send to the
//!    auxiliaries too, so a majority (mains that live plus auxiliaries) keeps choosing;
//!    stalled slots are re-sent to them at the next heartbeat.
//! 3. **Drop the failed main through a stop-sign.** A main silent for
//!    [`DROP_AFTER_TIMEOUTS`] election timeouts is removed by a reconfiguration (reconfig.rs),
//!    to a configuration whose mains are the others: from then on they alone are a quorum and
//!    the auxiliaries are idle again. The stop-sign is what keeps it safe (the paper, section
//!    3: the new configuration is chosen in the old one). Switching the rule without one is
//!    the planted bug [`Bug::CheapDropWithoutStopSign`].
//!
//! Auxiliaries never run for leader (they are not there to serve) and are skipped by the
//! simulator's convergence check: while idle they hold only what they accepted while engaged.

use super::*;

/// A main is suspected once silent for an election timeout divided by this.
pub const SUSPECT_AFTER_DIVISOR: u64 = 2;

/// A main silent for this many election timeouts is dropped from the configuration.
pub const DROP_AFTER_TIMEOUTS: u64 = 2;

impl Replica {
    /// Whether this replica is an auxiliary acceptor of the configuration in force.
    pub fn is_auxiliary(&self) -> bool {
        self.membership.config.is_auxiliary(self.id)
    }

    /// Whether the member at index `i` is an auxiliary that the leader leaves out now: the
    /// rule is Cheap, every main answers, and the auxiliary has reported a chosen prefix
    /// through the stop-sign that began this epoch. Until it has, it is still sent to: an
    /// auxiliary that never learned of the change would stay in the old configuration and
    /// could make a quorum there with the dropped main (the paper's auxiliaries, too, learn
    /// the new configuration before they go idle).
    pub(super) fn is_idle_auxiliary(&self, i: usize) -> bool {
        let config = &self.membership.config;
        let mains = config.mains().len();
        let in_epoch = self.peer_chosen[i].0 + 1 >= self.membership.first_slot.0;
        i >= mains && i < config.members().len() && !self.cheap_engaged && in_epoch
    }

    /// The main voters (by index) that this leader has not heard from for `silent_ticks`.
    fn silent_mains(&self, silent_ticks: u64) -> impl Iterator<Item = usize> + '_ {
        let mains = self.membership.config.mains().len();
        (0..mains).filter(move |i| {
            *i != self.index && self.now_ticks.saturating_sub(self.acked_ticks[*i]) >= silent_ticks
        })
    }

    /// The leader's Cheap Paxos habits on each tick (nothing under any other rule).
    pub(super) fn tick_cheap(&mut self) {
        if !matches!(self.membership.config.quorum(), QuorumSpec::Cheap { .. }) {
            return;
        }
        debug_assert!(self.role == Role::Leader);
        let timeout = u64::from(self.options.election_timeout_ticks.max(1));
        let suspect = (timeout / SUSPECT_AFTER_DIVISOR).max(1);
        let engaged = self.silent_mains(suspect).next().is_some();
        if engaged && !self.cheap_engaged {
            self.counters.auxiliaries_engaged += 1;
            // Slots sent to the mains alone may wait on the silent one: ask again, now of
            // the auxiliaries too, without waiting for the next heartbeat.
            self.cheap_engaged = true;
            self.resend_all_accepts();
        }
        self.cheap_engaged = engaged;
        if self.stop_sign.is_some() {
            return;
        }
        let Some(failed) = self.silent_mains(timeout * DROP_AFTER_TIMEOUTS).next() else {
            return;
        };
        let Some(next) = self.config_without_main(failed) else {
            return;
        };
        if self.bugs.has(Bug::CheapDropWithoutStopSign) {
            // Planted: the rule changes here and now, while the others may still decide in
            // the configuration that holds the failed main.
            self.membership.config = next;
            self.index = self.membership.config.index_of(self.id).unwrap_or(0);
            let n = self.membership.config.len_everyone();
            self.acked_ticks = vec![self.now_ticks; n];
            self.acked_round = vec![0; n];
            self.peer_chosen = vec![Slot::ZERO; n];
            self.proposals.clear();
            self.counters.mains_dropped += 1;
            return;
        }
        if self.propose_reconfiguration(next).is_ok() {
            self.counters.mains_dropped += 1;
        }
    }

    /// The configuration in force without the main at index `failed`: the other mains stay
    /// mains, auxiliaries and learners stay as they are. None when what is left is not a
    /// valid Cheap configuration (no main left, or auxiliaries as many as a majority).
    fn config_without_main(&self, failed: usize) -> Option<Configuration> {
        let config = &self.membership.config;
        let gone = config.members()[failed];
        let members: Vec<NodeId> = config
            .members()
            .iter()
            .copied()
            .filter(|m| *m != gone)
            .collect();
        let main = config.mains().len() - 1;
        Configuration::with_learners(
            members,
            config.learners().to_vec(),
            QuorumSpec::Cheap { main },
        )
        .ok()
    }
}
