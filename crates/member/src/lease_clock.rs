//! This member's clocks for the store's leases. Every member keeps one per lease (set when it
//! applies the grant or a renewal), but only the leader acts on them: it proposes the revoke
//! of a lease whose clock ran out, which then deletes the lease's keys on every member alike.
//!
//! The leader asks at every tick which clocks ran out, so that question must not cost a walk
//! over every lease: an index by the next time each clock needs attention answers it in
//! O(log n) per lease that is due, and O(1) when none is.

use crate::time::Micros;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// One lease's clock.
#[derive(Clone, Copy, Debug)]
struct Clock {
    ttl: Duration,
    /// When the lease expires unless renewed.
    deadline: Micros,
    /// When the leader next has something to do for it: `deadline`, or after a proposed
    /// revoke, when that proposal is considered lost and made again.
    next: Micros,
}

/// The clocks of every lease, indexed by when each next needs the leader.
#[derive(Debug, Default)]
pub struct LeaseClocks {
    clocks: HashMap<i64, Clock>,
    /// `(clock.next, lease)` for every clock, and nothing else.
    due: BTreeSet<(Micros, i64)>,
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

    /// Every lease of `leases` (id, TTL in seconds) with a full TTL from `now`; no other.
    pub fn restart(&mut self, leases: impl Iterator<Item = (i64, i64)>, now: Micros) {
        self.clocks.clear();
        self.due.clear();
        for (id, ttl) in leases {
            self.start(id, ttl, now);
        }
    }

    /// Lease `id` granted with `ttl_secs`: its clock starts now (a grant of an id that
    /// somehow has a clock replaces it).
    pub fn start(&mut self, id: i64, ttl_secs: i64, now: Micros) {
        self.forget(id);
        let ttl = if self.ttl_in_millis {
            Duration::from_millis(ttl_secs.max(0).unsigned_abs())
        } else {
            Duration::from_secs(ttl_secs.max(0).unsigned_abs())
        };
        let deadline = later(now, ttl);
        self.clocks.insert(
            id,
            Clock {
                ttl,
                deadline,
                next: deadline,
            },
        );
        self.due.insert((deadline, id));
        self.check();
    }

    /// Lease `id` renewed: a full TTL from now, and any revoke in flight no longer wanted.
    pub fn renew(&mut self, id: i64, now: Micros) {
        let Some(clock) = self.clocks.get_mut(&id) else {
            return;
        };
        self.due.remove(&(clock.next, id));
        clock.deadline = later(now, clock.ttl);
        clock.next = clock.deadline;
        self.due.insert((clock.next, id));
        self.check();
    }

    /// Lease `id` revoked: no clock.
    pub fn forget(&mut self, id: i64) {
        if let Some(clock) = self.clocks.remove(&id) {
            self.due.remove(&(clock.next, id));
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
        #[cfg(test)]
        assert!(self
            .due
            .iter()
            .all(|(next, id)| self.clocks.get(id).is_some_and(|c| c.next == *next)));
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
        c.renew(1, t0 + 8 * SEC);
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
        c.restart([(5, 30)].into_iter(), t0);
        assert_eq!(c.len(), 1);
        assert_eq!(c.remaining(5, t0), Some(30 * SEC));
        assert!(c.take_due(t0 + 29 * SEC, SEC).is_empty());
        // A renewal of a lease without a clock (revoked meanwhile) starts none.
        c.renew(6, t0);
        assert_eq!(c.len(), 1);
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
