//! Leader leases in the member simulation (`synod sim --member --leases`): each place's clock
//! runs at its own rate within the drift bound (drawn per seed as `sim::leases` draws them),
//! and the member's process can be *paused*, as SIGSTOP or a starved machine pauses a real
//! one: it takes no input (no tick, no message, no disk completion, no client request) until
//! the pause ends, then gets what queued meanwhile in a random order, and its timer ticks on
//! from there without replaying the ticks it missed (tokio's `MissedTickBehavior::Delay`, as
//! the node's driver runs it).
//!
//! The member reads only the time its inputs carry: a place's is its own clock,
//! `now · (1 + drift)`, so leases are served by the real member on drifting clocks. The pause
//! is what makes the member's tick catch-up matter (`member/src/member/ticks.rs`): a leader
//! paused past an election wakes with a stale tick count unless it catches up from its clock.
//!
//! The check `lease-overlap`: after any input to a member, if it holds a lease by its own
//! clock, no other member may lead at a higher ballot (the new leader's phase 1 waits out every
//! grant behind an older lease, so the two never meet in true time).

use super::{Event, MemberSimulation};
use crate::leases::{tick_period_us, ClockModel};
use crate::rng::{below, range};
use member::Micros;
use paxos::multi::Role;

/// A pause lasts this long at least and at most (true time, microseconds): long enough for
/// the others to elect a leader and choose writes meanwhile.
const PAUSE_US: (u64, u64) = (150_000, 600_000);
/// Time between two pauses (microseconds), during the fault phase.
const PAUSE_GAP_US: (u64, u64) = (200_000, 900_000);

/// Every place's clock and pause.
#[derive(Default)]
pub(super) struct Clocks {
    /// Each place's drift in ppm (empty with leases off: every clock keeps true time).
    drifts: Vec<i64>,
    /// Each place's process takes no input until this true time.
    paused_until: Vec<u64>,
    /// Each place's leased reads as last counted, with the incarnation they were counted in.
    leased_seen: Vec<(u64, u64)>,
}

impl Clocks {
    /// The clocks of `places` places for `seed`: true ones without leases.
    pub(super) fn new(model: Option<ClockModel>, seed: u64, places: usize) -> Clocks {
        Clocks {
            drifts: model.map_or_else(Vec::new, |m| m.draw(seed, places)),
            paused_until: vec![0; places],
            leased_seen: vec![(0, 0); places],
        }
    }

    /// Whether leases run (clocks drift and processes pause).
    pub(super) fn on(&self) -> bool {
        !self.drifts.is_empty()
    }

    fn drift(&self, place: usize) -> i64 {
        self.drifts.get(place).copied().unwrap_or(0)
    }

    /// Place `place`'s clock at true time `now`.
    pub(super) fn local(&self, place: usize, now: u64) -> Micros {
        let now = i128::from(now);
        let local = now + now * i128::from(self.drift(place)) / 1_000_000;
        Micros(u64::try_from(local.max(0)).unwrap_or(u64::MAX))
    }

    /// True time between two of place `place`'s ticks.
    pub(super) fn tick_period(&self, place: usize, tick_us: u64) -> u64 {
        tick_period_us(tick_us, self.drift(place))
    }

    /// Until when place `place` is paused, if it is at `now`.
    pub(super) fn paused(&self, place: usize, now: u64) -> Option<u64> {
        self.paused_until
            .get(place)
            .copied()
            .filter(|until| *until > now)
    }

    /// A member that starts (again) is not paused: a crash ended its process.
    pub(super) fn started(&mut self, place: usize) {
        if let Some(until) = self.paused_until.get_mut(place) {
            *until = 0;
        }
    }
}

impl MemberSimulation {
    /// With leases on: the first pause of the run.
    pub(super) fn schedule_first_pause(&mut self) {
        if self.clocks.on() {
            let at = range(&mut self.rng, PAUSE_GAP_US.0, PAUSE_GAP_US.1);
            self.schedule(at, Event::Pause);
        }
    }

    /// Pauses the leader (or, with none, a running member) for a while; the next pause
    /// follows while the fault phase lasts.
    pub(super) fn nemesis_pause(&mut self) {
        if self.phase != super::Phase::Faults {
            return;
        }
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].run.is_some() && self.clocks.paused(i, self.now).is_none())
            .collect();
        let leader = running.iter().copied().find(|&i| {
            self.nodes[i]
                .run
                .as_ref()
                .is_some_and(|r| r.member.replica().role() == Role::Leader)
        });
        let target = leader.or_else(|| {
            (!running.is_empty())
                .then(|| running[below(&mut self.rng, running.len() as u64) as usize])
        });
        if let Some(i) = target {
            let until = self.now + range(&mut self.rng, PAUSE_US.0, PAUSE_US.1);
            self.clocks.paused_until[i] = until;
            self.tally.pauses += 1;
            self.trace_line(|| format!("pause m{} until {until}", i + 1));
        }
        let next = self.now + range(&mut self.rng, PAUSE_GAP_US.0, PAUSE_GAP_US.1);
        self.schedule(next, Event::Pause);
    }

    /// The place an event is an input to, if any.
    pub(super) fn input_of(&self, event: &Event) -> Option<usize> {
        match *event {
            Event::Tick { node, .. } | Event::Disk { node, .. } => Some(node),
            Event::SnapshotWrite { node, .. } | Event::ChunkStore { node, .. } => Some(node),
            Event::SnapshotDecode { node, .. } => Some(node),
            Event::Deliver { id } => self.messages.get(&id).map(|m| m.to),
            Event::Arrive { client } => self.clients[client].pending.as_ref().map(|p| p.node),
            Event::LockerArrive { locker } => self.lockers[locker].pending.as_ref().map(|p| p.node),
            _ => None,
        }
    }

    /// An input to a paused member waits for the pause to end; returns whether it waits.
    /// What queued is taken in a random order after the pause; a tick is not replayed.
    pub(super) fn hold_while_paused(&mut self, event: Event) -> bool {
        let Some(place) = self.input_of(&event) else {
            return false;
        };
        let Some(until) = self.clocks.paused(place, self.now) else {
            return false;
        };
        let at = until + 1 + below(&mut self.rng, self.config.tick_us);
        self.schedule(at, event);
        true
    }

    /// The check `lease-overlap`, after an event for place `i` that reached its member.
    pub(super) fn check_lease(&mut self, i: usize) {
        if !self.clocks.on() {
            return;
        }
        let inc = self.nodes[i].inc;
        let Some(run) = self.nodes[i].run.as_ref() else {
            return;
        };
        // Every input carries its place's clock: a member's clock ahead of it was handed true
        // time (or another place's), and its ticks would run in jumps and stalls, not at a
        // rate within the bound.
        assert!(
            run.member.clock() <= self.clocks.local(i, self.now),
            "m{} was handed a time ({:?}) ahead of its place's clock ({:?}) at {} us",
            i + 1,
            run.member.clock(),
            self.clocks.local(i, self.now),
            self.now
        );
        if run.member.clock() != self.clocks.local(i, self.now) {
            // The event reached no member (a cut link, a lost message): its clock is not now.
            return;
        }
        let replica = run.member.replica();
        let leased = replica.counters().leased_reads;
        let seen = &mut self.clocks.leased_seen[i];
        if seen.0 != inc {
            *seen = (inc, 0);
        }
        self.tally.leased_reads += leased.saturating_sub(seen.1);
        seen.1 = leased;
        if replica.lease_until_ticks().is_none() {
            return;
        }
        let ballot = replica.ballot();
        let newer = self.nodes.iter().enumerate().find(|(j, node)| {
            *j != i
                && node.run.as_ref().is_some_and(|r| {
                    r.member.replica().role() == Role::Leader
                        && r.member.replica().ballot() > ballot
                })
        });
        if let Some((j, _)) = newer {
            let detail = format!(
                "m{} serves leased reads at ballot {ballot:?} (tick {}, lease until {:?}) while \
                 m{} leads at a higher one",
                i + 1,
                replica.now_ticks(),
                replica.lease_until_ticks(),
                j + 1
            );
            self.checks
                .violation(super::MemberCheck::LeaseOverlap, self.now, Some(i), detail);
        }
    }
}
