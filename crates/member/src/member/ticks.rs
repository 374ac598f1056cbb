//! The replica's clock when leader leases are on: its tick count follows the caller's
//! monotonic time, not the number of tick inputs.
//!
//! **Why.** A lease is counted in the leader's ticks (paxos `multi/lease.rs`) and is safe only
//! while the leader's tick count runs no slower than true time, less the drift bound. A driver
//! that ticks from a timer (the node's tokio interval) misses ticks whenever its process is
//! starved or stopped (SIGSTOP, swapping, a loaded machine): the leader's clock then stands
//! still while true time passes, and on waking it would serve reads under a lease that ran out
//! long ago, while another leader was elected and chose writes. So, with leases on, every input
//! first brings the replica to `floor((now - origin) / tick)` ticks before the replica sees the
//! input, and the periodic tick input only prompts that catch-up. The count then runs at the
//! rate of the caller's clock: in the node, `Instant` (CLOCK_MONOTONIC, which counts the time a
//! process is stopped and which NTP slews by at most 500 ppm), never the wall clock.
//!
//! Voters need it as much: a voter's grant runs for its election timeout in its own ticks from
//! when it handled the leader's heartbeat; a count that lagged then and jumped afterwards would
//! end the grant early in true time.
//!
//! **A long stop.** A catch-up of more than [`catch_up_max`] ticks hands only that many and
//! drops the rest, as if the clock had run slow while the process slept. That is safe: the
//! ticks handed (more than a grant's length) end every lease the leader held before the stop,
//! since a lease is shorter than a grant; and a voter whose clock runs slow only keeps its
//! grant longer in true time. It bounds the work (and the heartbeats) of one input.

use super::Member;
use crate::bugs::MemberBug;
use crate::time::Micros;
use paxos::multi::{ReplicaOptions, Role};
use rand_core::RngCore;
use std::time::Duration;

/// The most ticks one input hands the replica: twice a grant's length (the election timeout)
/// and its jitter, so every lease held before a long stop ends in the catch-up.
pub(super) fn catch_up_max(options: &ReplicaOptions) -> u64 {
    2 * (u64::from(options.election_timeout_ticks) + u64::from(options.election_jitter_ticks)) + 2
}

/// How many ticks the replica was handed, counted from `origin` on the caller's clock.
#[derive(Clone, Copy, Debug)]
pub(super) struct TickClock {
    /// The caller's time of tick 0 (the member's start, moved on by ticks dropped).
    origin: Micros,
    /// Ticks handed to the replica since `origin`.
    given: u64,
}

impl TickClock {
    /// A clock whose tick 0 is `now`.
    pub(super) fn new(now: Micros) -> TickClock {
        TickClock {
            origin: now,
            given: 0,
        }
    }

    /// The ticks due at `now`: whole ticks since the origin.
    fn due(&self, now: Micros, tick: Duration) -> u64 {
        let tick = tick.as_micros().max(1);
        let since = now.saturating_since(self.origin).as_micros();
        u64::try_from(since / tick).unwrap_or(u64::MAX)
    }
}

impl Member {
    /// Whether the replica runs leader leases (its tick count then follows the clock).
    pub(super) fn leases_on(&self) -> bool {
        self.replica.options().leader_lease.is_some()
    }

    /// With leases on: hands the replica every tick due at `now` (at most [`catch_up_max`]).
    pub(super) fn catch_up_ticks(&mut self, now: Micros) {
        if !self.leases_on() || self.bugs.has(MemberBug::LeaseTicksNotCaughtUp) {
            return;
        }
        let due = self.ticks.due(now, self.options.tick);
        let max = catch_up_max(self.replica.options());
        let behind = due.saturating_sub(self.ticks.given);
        if behind > max {
            // A long stop: drop the ticks past the bound (see the module doc for why).
            let dropped = behind - max;
            let tick = u64::try_from(self.options.tick.as_micros()).unwrap_or(u64::MAX);
            let skip = Micros(
                self.ticks
                    .origin
                    .0
                    .saturating_add(dropped.saturating_mul(tick)),
            );
            self.ticks.origin = skip.min(now);
            tracing::warn!(
                dropped,
                handed = max,
                "the member's clock was stopped for long: ticks dropped"
            );
        }
        let due = self.ticks.due(now, self.options.tick);
        let mut rng: &mut (dyn RngCore + Send) = &mut *self.rng;
        while self.ticks.given < due {
            self.replica.tick(&mut rng);
            self.ticks.given += 1;
        }
    }

    /// The periodic tick's work on the replica's clock: with leases on, the catch-up (done
    /// by `advance`) is all; without, one tick per tick input, as the driver's timer says.
    pub(super) fn tick_replica(&mut self) {
        if self.leases_on() && !self.bugs.has(MemberBug::LeaseTicksNotCaughtUp) {
            return;
        }
        let mut rng: &mut (dyn RngCore + Send) = &mut *self.rng;
        self.replica.tick(&mut rng);
        self.ticks.given += 1;
    }

    /// Asserted before a leader asks its replica for a read: with leases on, the replica's
    /// clock is not behind the caller's, so a lease it holds holds in true time.
    pub(super) fn assert_ticks_caught_up(&self) {
        if self.leases_on()
            && self.replica.role() == Role::Leader
            && !self.bugs.has(MemberBug::LeaseTicksNotCaughtUp)
        {
            let due = self.ticks.due(self.clock, self.options.tick);
            assert!(
                self.ticks.given >= due,
                "a leased read with the replica's clock behind the caller's: {} ticks handed, \
                 {due} due",
                self.ticks.given
            );
        }
    }
}
