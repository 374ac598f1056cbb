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
//! 4. **Re-admit a dropped main that comes back.** The drop keeps the main in the
//!    configuration as a *learner* (replicated state: the stop-sign names it, so every
//!    later leader and every restart knows it). While the configuration is short of mains
//!    (no more mains than auxiliaries), a learner heard from again within a suspect window
//!    and caught up to within `promote_lag_slots_max` slots is promoted back among the mains
//!    by another stop-sign (`cheap:MAIN+1`), through [`Replica::propose_reconfiguration`]
//!    and its learner checks, never by a shortcut. At most one change is in flight (the
//!    stop-sign rule), and a leader re-admits no more often than once per
//!    [`READMIT_EVERY_TIMEOUTS`] election timeouts, counted from its own election too, so a
//!    flapping main cannot make the configuration flap faster. Skipping the catch-up check
//!    is the planted bug [`Bug::CheapReadmitWithoutCatchUp`].
//!
//! Auxiliaries never run for leader (they are not there to serve) and are skipped by the
//! simulator's convergence check: while idle they hold only what they accepted while engaged.

use super::*;

/// A main is suspected once silent for an election timeout divided by this.
pub const SUSPECT_AFTER_DIVISOR: u64 = 2;

/// A main silent for this many election timeouts is dropped from the configuration.
pub const DROP_AFTER_TIMEOUTS: u64 = 2;

/// A leader re-admits a dropped main at most once per this many election timeouts, and not
/// before this many have passed since it was elected (so a change of leader does not reset
/// the bound). Twice the drop window: a main flapping faster than that is dropped and
/// re-admitted at most once per cycle of `DROP_AFTER_TIMEOUTS + READMIT_EVERY_TIMEOUTS`.
pub const READMIT_EVERY_TIMEOUTS: u64 = 4;

/// The leader's bookkeeping for re-admissions (habit 4), kept in memory: what must survive
/// a leader change or a restart (who was dropped) is in the configuration itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct Readmit {
    /// Whether habit 4 is on ([`Replica::enable_cheap_readmission`]; off by default: see
    /// ARCHITECTURE.md, "Cheap Paxos", for the simulator seed that keeps it off).
    pub(super) enabled: bool,
    /// The election (`Counters::elections_won`) the bound below was set for.
    term: u64,
    /// No re-admission before this tick.
    not_before: u64,
    /// When this replica last proposed a re-admission (for the assertion of the bound).
    last: Option<u64>,
    /// The (epoch, node) whose return was last counted in `Counters::mains_returned`.
    counted: Option<(u64, NodeId)>,
}

impl Replica {
    /// Turns on habit 4 (re-admission of a dropped main; off by default). With it off, a
    /// dropped main leaves the configuration altogether, as before habit 4.
    pub fn enable_cheap_readmission(&mut self, on: bool) {
        self.readmit.enabled = on;
    }

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
        if self.readmit.term != self.counters.elections_won {
            self.readmit.term = self.counters.elections_won;
            self.readmit.not_before = self.now_ticks + timeout * READMIT_EVERY_TIMEOUTS;
        }
        if self.stop_sign.is_some() {
            return;
        }
        let Some(failed) = self.silent_mains(timeout * DROP_AFTER_TIMEOUTS).next() else {
            self.readmit_returned_main(timeout, suspect);
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

    /// Habit 4: while the configuration is short of mains, promotes a learner that answers
    /// again back among the mains, by a stop-sign, once it has caught up.
    fn readmit_returned_main(&mut self, timeout: u64, suspect: u64) {
        if !self.readmit.enabled {
            return;
        }
        let config = &self.membership.config;
        let mains = config.mains().len();
        if mains > config.auxiliaries().len() || config.learners().is_empty() {
            return;
        }
        let voters = config.members().len();
        // A learner that answered within a suspect window, in this epoch (acked_ticks start
        // at the leader's election, which `not_before` is well past).
        let first = self.membership.first_slot;
        let Some(i) = (voters..config.len_everyone()).find(|&i| {
            self.now_ticks.saturating_sub(self.acked_ticks[i]) < suspect
                && self.peer_chosen[i].0 + 1 >= first.0
        }) else {
            return;
        };
        if self.now_ticks < self.readmit.not_before {
            return;
        }
        let node = self.member_at(i);
        let key = (self.membership.epoch, node);
        if self.readmit.counted != Some(key) {
            self.readmit.counted = Some(key);
            self.counters.mains_returned += 1;
        }
        let Some(next) = self.config_with_main(node) else {
            return;
        };
        let proposed = if self.bugs.has(Bug::CheapReadmitWithoutCatchUp) {
            // Planted: promoted at once, however far behind it is.
            Ok(self.propose_stop_sign(next))
        } else {
            // Refused (`LearnerBehind`) while it lags: it stays a learner and catches up.
            self.propose_reconfiguration(next)
        };
        if proposed.is_ok() {
            let bound = timeout * READMIT_EVERY_TIMEOUTS;
            assert!(
                self.readmit
                    .last
                    .is_none_or(|t| self.now_ticks.saturating_sub(t) >= bound),
                "a main re-admitted twice within {bound} ticks"
            );
            self.readmit.last = Some(self.now_ticks);
            self.readmit.not_before = self.now_ticks + bound;
            self.counters.mains_readmitted += 1;
        }
    }

    /// The configuration in force without the main at index `failed`, which stays as a
    /// learner (so it is let back in and re-admitted when it returns: habit 4): the other
    /// mains stay mains, auxiliaries and learners stay as they are. None when what is left
    /// is not a valid Cheap configuration (no main left, or auxiliaries as many as a
    /// majority).
    fn config_without_main(&self, failed: usize) -> Option<Configuration> {
        let config = &self.membership.config;
        let gone = config.members()[failed];
        let members: Vec<NodeId> = config
            .members()
            .iter()
            .copied()
            .filter(|m| *m != gone)
            .collect();
        let mut learners = config.learners().to_vec();
        if self.readmit.enabled {
            learners.push(gone);
        }
        let main = config.mains().len() - 1;
        Configuration::with_learners(members, learners, QuorumSpec::Cheap { main }).ok()
    }

    /// The configuration in force with the learner `node` made the last main (before the
    /// auxiliaries): `cheap:MAIN+1`. None when that shape is not valid.
    fn config_with_main(&self, node: NodeId) -> Option<Configuration> {
        let config = &self.membership.config;
        let main = config.mains().len();
        let mut members = config.mains().to_vec();
        members.push(node);
        members.extend_from_slice(config.auxiliaries());
        let learners: Vec<NodeId> = config
            .learners()
            .iter()
            .copied()
            .filter(|n| *n != node)
            .collect();
        Configuration::with_learners(members, learners, QuorumSpec::Cheap { main: main + 1 }).ok()
    }
}
