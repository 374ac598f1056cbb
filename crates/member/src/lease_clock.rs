//! This member's clocks for the store's leases. Every member keeps one per lease (set when it
//! applies the grant or a renewal), but only the leader acts on them: it proposes the revoke
//! of a lease whose clock ran out, which then deletes the lease's keys on every member alike.
//!
//! The leader asks at every tick which clocks ran out, so that question must not cost a walk
//! over every lease: an index by the next time each clock needs attention answers it in
//! O(log n) per lease that is due, and O(1) when none is.
//!
//! Renewals are the leader's alone and are not logged (see `member/lease_renewal.rs`); what a
//! new leader knows of them is the checkpoints: the leader records a lease's remaining time
//! through the log once it has gone a checkpoint interval without a renewal (and again every
//! interval after), and a renewal of a lease whose record is below a full TTL ("low") writes a
//! full one before it is answered. A second index, by when each lease next needs a
//! checkpoint, keeps that O(log n) per lease due as well.

use crate::time::Micros;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// One lease's clock.
#[derive(Clone, Copy, Debug)]
struct Clock {
    ttl: Duration,
    /// When the lease expires unless renewed.
    deadline: Micros,
    /// The deadline as the log knows it: `deadline` without the extension a new leader adds.
    /// Checkpoints record this one, so that extensions never pile up across leader changes
    /// (each new leader adds its own to a record at most an interval old).
    recorded: Micros,
    /// When the leader next has something to do for it: `deadline`, or after a proposed
    /// revoke, when that proposal is considered lost and made again.
    next: Micros,
    /// When the leader next records its remaining time (a checkpoint interval after its last
    /// renewal or checkpoint).
    checkpoint_at: Micros,
    /// Whether the replicated record of this lease is below a full TTL (a checkpoint of a
    /// lease that was not renewed): a renewal must then log a full one before it is answered,
    /// or a new leader would restart the lease from the low record and revoke it early.
    low: bool,
}

/// The clocks of every lease, indexed by when each next needs the leader.
#[derive(Debug, Default)]
pub struct LeaseClocks {
    clocks: HashMap<i64, Clock>,
    /// `(clock.next, lease)` for every clock, and nothing else.
    due: BTreeSet<(Micros, i64)>,
    /// `(clock.checkpoint_at, lease)` for every clock, and nothing else.
    checkpoints_due: BTreeSet<(Micros, i64)>,
    /// How long a lease goes unrenewed before the leader records its remaining time.
    checkpoint_interval: Duration,
    /// Planted bug `LeaseTtlInMillis` (test-only): TTLs counted in milliseconds.
    ttl_in_millis: bool,
}

/// `now + ttl`, or the far future for a TTL too large to add (etcd allows 9e9 s).
fn later(now: Micros, ttl: Duration) -> Micros {
    now.plus(ttl)
}

impl LeaseClocks {
    /// Plants the bug `LeaseTtlInMillis` (see [`crate::bugs`]); callers pass
    /// `MemberBugs::has`, which is false in every build without the `planted-bugs` feature.
    pub fn plant_ttl_in_millis(&mut self, on: bool) {
        self.ttl_in_millis = on;
    }

    /// Clocks whose leader records a lease's remaining time once it went `interval` without
    /// a renewal (at least 1 ms).
    pub fn new(checkpoint_interval: Duration) -> LeaseClocks {
        LeaseClocks {
            checkpoint_interval: checkpoint_interval.max(Duration::from_millis(1)),
            ..LeaseClocks::default()
        }
    }

    /// Every lease of `leases` (id, TTL in seconds, milliseconds left at its last checkpoint
    /// if any) restarted from its replicated record: `extension` plus the checkpoint's
    /// remaining time, or plus a full TTL, from `now` (etcd's `Promote(extend)`); no other.
    pub fn restart(
        &mut self,
        leases: impl Iterator<Item = (i64, i64, Option<u64>)>,
        now: Micros,
        extension: Duration,
    ) {
        self.clocks.clear();
        self.due.clear();
        self.checkpoints_due.clear();
        for (id, ttl, remaining_ms) in leases {
            self.restart_one(id, ttl, remaining_ms, now, extension, false);
        }
    }

    /// Lease `id` (TTL in seconds) restarted from a record of `remaining_ms` left (`None`: a
    /// full TTL) plus `extension`, from `now`; with `keep_later`, a clock that already runs
    /// later is kept (a leader taking an older leader's record never undoes a renewal).
    pub fn restart_one(
        &mut self,
        id: i64,
        ttl_secs: i64,
        remaining_ms: Option<u64>,
        now: Micros,
        extension: Duration,
        keep_later: bool,
    ) {
        let ttl = self.ttl(ttl_secs);
        let left = remaining_ms.map_or(ttl, |ms| Duration::from_millis(ms).min(ttl));
        let recorded = later(now, left);
        let deadline = later(recorded, extension);
        if keep_later && self.clocks.get(&id).is_some_and(|c| c.deadline >= deadline) {
            return;
        }
        self.forget(id);
        self.insert(id, ttl, (deadline, recorded), now, left < ttl);
    }

    /// Lease `id` granted with `ttl_secs`: its clock starts now (a grant of an id that
    /// somehow has a clock replaces it).
    pub fn start(&mut self, id: i64, ttl_secs: i64, now: Micros) {
        self.forget(id);
        let ttl = self.ttl(ttl_secs);
        let deadline = later(now, ttl);
        self.insert(id, ttl, (deadline, deadline), now, false);
    }

    fn ttl(&self, ttl_secs: i64) -> Duration {
        if self.ttl_in_millis {
            Duration::from_millis(ttl_secs.max(0).unsigned_abs())
        } else {
            Duration::from_secs(ttl_secs.max(0).unsigned_abs())
        }
    }

    fn insert(
        &mut self,
        id: i64,
        ttl: Duration,
        (deadline, recorded): (Micros, Micros),
        now: Micros,
        low: bool,
    ) {
        let checkpoint_at = later(now, self.checkpoint_interval);
        self.clocks.insert(
            id,
            Clock {
                ttl,
                deadline,
                recorded,
                next: deadline,
                checkpoint_at,
                low,
            },
        );
        self.due.insert((deadline, id));
        self.checkpoints_due.insert((checkpoint_at, id));
        self.check();
    }

    /// Lease `id` renewed: a full TTL from now, any revoke in flight no longer wanted, and
    /// its next checkpoint an interval from now. Returns its TTL and whether its replicated
    /// record was low (the caller must log a full one before answering; it is full from
    /// here on), or `None` if it has no clock.
    pub fn renew(&mut self, id: i64, now: Micros) -> Option<(Duration, bool)> {
        let clock = self.clocks.get_mut(&id)?;
        self.due.remove(&(clock.next, id));
        self.checkpoints_due.remove(&(clock.checkpoint_at, id));
        clock.deadline = later(now, clock.ttl);
        clock.recorded = clock.deadline;
        clock.next = clock.deadline;
        clock.checkpoint_at = later(now, self.checkpoint_interval);
        let was_low = std::mem::replace(&mut clock.low, false);
        let ttl = clock.ttl;
        self.due.insert((clock.next, id));
        self.checkpoints_due.insert((clock.checkpoint_at, id));
        self.check();
        Some((ttl, was_low))
    }

    /// The leases that went a checkpoint interval without a renewal or a checkpoint, with the
    /// milliseconds each has left (at least 1: a lease about to run out is not "full"), at
    /// most `max` of them; each is low from here on and due again an interval from now.
    pub fn take_checkpoints_due(&mut self, now: Micros, max: usize) -> Vec<(i64, u64)> {
        let mut due = Vec::new();
        while due.len() < max {
            let Some(&(at, id)) = self.checkpoints_due.first() else {
                break;
            };
            if at > now {
                break;
            }
            self.checkpoints_due.pop_first();
            let again = later(now, self.checkpoint_interval.max(Duration::from_millis(1)));
            if let Some(clock) = self.clocks.get_mut(&id) {
                let left = clock.recorded.saturating_since(now);
                let ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1);
                // At or above a full TTL (a lease just granted) the record means "full".
                clock.low = left < clock.ttl;
                clock.checkpoint_at = again;
                due.push((id, ms));
            }
            self.checkpoints_due.insert((again, id));
        }
        self.check();
        due
    }

    /// Lease `id` revoked: no clock.
    pub fn forget(&mut self, id: i64) {
        if let Some(clock) = self.clocks.remove(&id) {
            self.due.remove(&(clock.next, id));
            self.checkpoints_due.remove(&(clock.checkpoint_at, id));
        }
        self.check();
    }

    /// How long until lease `id` expires by this clock, if it has one.
    pub fn remaining(&self, id: i64, now: Micros) -> Option<Duration> {
        Some(self.clocks.get(&id)?.deadline.saturating_since(now))
    }

    /// The leases whose clocks ran out by `now` and whose revoke was not proposed within
    /// `retry` before: the leader proposes their revokes now. Each is asked for again only
    /// `retry` from now, should that proposal be lost and the lease not renewed meanwhile.
    pub fn take_due(&mut self, now: Micros, retry: Duration) -> Vec<i64> {
        let mut due = Vec::new();
        while let Some(&(next, id)) = self.due.first() {
            if next > now {
                break;
            }
            self.due.pop_first();
            due.push(id);
            let again = later(now, retry.max(Duration::from_millis(1)));
            if let Some(clock) = self.clocks.get_mut(&id) {
                clock.next = again;
            }
            self.due.insert((again, id));
        }
        self.check();
        due
    }

    /// Leases with a clock.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.clocks.len()
    }

    /// The index holds exactly one entry per clock, at its `next` (checked whole in unit
    /// tests only: it walks every lease).
    fn check(&self) {
        debug_assert_eq!(
            self.clocks.len(),
            self.due.len(),
            "one index entry per clock"
        );
        debug_assert_eq!(
            self.clocks.len(),
            self.checkpoints_due.len(),
            "one checkpoint entry per clock"
        );
        #[cfg(test)]
        assert!(self
            .due
            .iter()
            .all(|(next, id)| self.clocks.get(id).is_some_and(|c| c.next == *next)));
        #[cfg(test)]
        assert!(self
            .checkpoints_due
            .iter()
            .all(|(at, id)| self.clocks.get(id).is_some_and(|c| c.checkpoint_at == *at)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn a_clock_runs_out_at_its_ttl_and_not_before() {
        let t0 = Micros(1_000_000);
        let mut c = LeaseClocks::default();
        c.start(7, 10, t0);
        c.start(8, 5, t0);
        assert!(c.take_due(t0 + 4 * SEC, SEC).is_empty());
        assert_eq!(c.take_due(t0 + 5 * SEC, SEC), vec![8]);
        assert_eq!(c.remaining(7, t0 + 4 * SEC), Some(6 * SEC));
        // 8's revoke, proposed at 5 s, is due again a retry later (and before 7's deadline).
        assert_eq!(c.take_due(t0 + 10 * SEC, 3 * SEC), vec![8, 7]);
        assert!(c.take_due(t0 + 12 * SEC, 3 * SEC).is_empty());
    }

    #[test]
    fn a_renewal_moves_the_deadline_and_cancels_a_retry() {
        let t0 = Micros(1_000_000);
        let mut c = LeaseClocks::default();
        c.start(1, 10, t0);
        assert_eq!(c.renew(1, t0 + 8 * SEC), Some((10 * SEC, false)));
        assert!(c.take_due(t0 + 12 * SEC, SEC).is_empty(), "renewed at 8 s");
        assert_eq!(c.take_due(t0 + 18 * SEC, 5 * SEC), vec![1]);
        // The revoke is in flight: not asked again until the retry is due...
        assert!(c.take_due(t0 + 22 * SEC, 5 * SEC).is_empty());
        assert_eq!(c.take_due(t0 + 23 * SEC, 5 * SEC), vec![1], "retried");
        // ...and a renewal meanwhile (the revoke was lost) gives a full TTL again.
        c.renew(1, t0 + 24 * SEC);
        assert!(c.take_due(t0 + 33 * SEC, 5 * SEC).is_empty());
        assert_eq!(c.remaining(1, t0 + 33 * SEC), Some(SEC));
    }

    #[test]
    fn forgotten_and_restarted_clocks_leave_nothing_behind() {
        let t0 = Micros(1_000_000);
        let mut c = LeaseClocks::default();
        for id in 1..=100 {
            c.start(id, id, t0);
        }
        for id in (2..=100).step_by(2) {
            c.forget(id);
        }
        assert_eq!(c.len(), 50);
        let due = c.take_due(t0 + 100 * SEC, SEC);
        assert_eq!(
            due,
            (1..=99).step_by(2).collect::<Vec<_>>(),
            "in deadline order"
        );
        assert_eq!(c.remaining(2, t0), None);
        c.restart([(5, 30, None)].into_iter(), t0, Duration::ZERO);
        assert_eq!(c.len(), 1);
        assert_eq!(c.remaining(5, t0), Some(30 * SEC));
        assert!(c.take_due(t0 + 29 * SEC, SEC).is_empty());
        // A renewal of a lease without a clock (revoked meanwhile) starts none.
        assert_eq!(c.renew(6, t0), None);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn an_unrenewed_lease_is_checkpointed_every_interval_and_its_next_renewal_must_log_a_full_one()
    {
        let t0 = Micros(1_000_000);
        let mut c = LeaseClocks::new(2 * SEC);
        c.start(1, 10, t0);
        c.start(2, 10, t0 + SEC);
        assert!(c.take_checkpoints_due(t0 + SEC, 10).is_empty());
        // Renewed more often than every interval: never checkpointed, never low.
        assert_eq!(c.renew(2, t0 + 2 * SEC), Some((10 * SEC, false)));
        assert_eq!(c.take_checkpoints_due(t0 + 2 * SEC, 10), vec![(1, 8_000)]);
        assert_eq!(
            c.take_checkpoints_due(t0 + 4 * SEC, 1),
            vec![(1, 6_000)],
            "again"
        );
        // The renewal after a low record must log a full one; the one after it need not.
        assert_eq!(c.renew(1, t0 + 5 * SEC), Some((10 * SEC, true)));
        assert_eq!(c.renew(1, t0 + 6 * SEC), Some((10 * SEC, false)));
        assert_eq!(c.take_checkpoints_due(t0 + 7 * SEC, 10), vec![(2, 5_000)]);
        assert_eq!(c.take_checkpoints_due(t0 + 8 * SEC, 10), vec![(1, 8_000)]);
        // A restart from records: the record plus the extension, or a full TTL.
        c.restart([(1, 10, Some(3_000)), (2, 10, None)].into_iter(), t0, SEC);
        assert_eq!(c.remaining(1, t0), Some(4 * SEC));
        assert_eq!(c.remaining(2, t0), Some(11 * SEC));
        assert_eq!(c.renew(1, t0), Some((10 * SEC, true)), "restarted low");
        assert_eq!(c.renew(2, t0), Some((10 * SEC, false)));
    }

    #[test]
    fn a_ttl_too_large_to_add_still_makes_a_clock() {
        let t0 = Micros(1_000_000);
        let mut c = LeaseClocks::default();
        c.start(1, i64::MAX, t0);
        assert!(c.take_due(t0 + 1000 * SEC, SEC).is_empty());
        assert!(c.remaining(1, t0).is_some_and(|d| d > 1000 * SEC));
    }
}
