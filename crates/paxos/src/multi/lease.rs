//! Leader leases with a bound on clock drift (Chubby; Paxos Made Live, 5.2; Spanner, 4.1.1):
//! a leader that a quorum has promised to stand behind for a while serves linearizable reads
//! from its own state, with no confirmation round.
//!
//! **The grant.** A voter that echoes the leader's heartbeat also *grants* it a lease: for
//! `grant_ticks` of its own clock (the election timeout) it promises no higher ballot to any
//! other candidate, itself included. A Prepare that arrives meanwhile is held and answered once
//! the grant runs out, so a new leader's phase 1, which needs one voter of every phase-2 quorum,
//! completes only after the old lease is over: the new leader waits it out by construction.
//! A restarted replica forgot what it granted, so it refuses every promise for `grant_ticks`
//! after it starts.
//!
//! **The lease.** The leader starts each heartbeat round at a tick of its own clock. Once a
//! phase-2 quorum echoed round `r`, sent at tick `s`, the leader may serve leased reads while
//! `now < s + leader_ticks`, where `leader_ticks = floor((grant_ticks - 1) * (1 - ε) / (1 + ε))`
//! and ε is the drift bound: every clock runs at a rate within `1 ± ε` of true time. Why that is
//! enough: a voter's grant, given after `s` and counted in its own ticks, lasts more than
//! `(grant_ticks - 1)` of its periods, at least `(grant_ticks - 1) · P / (1 + ε)` of true time
//! (`P` the nominal tick); the leader's lease lasts at most `leader_ticks` of its periods, at most
//! `leader_ticks · P / (1 - ε)`. The one tick off the grant covers a grant given between two of
//! the voter's ticks. So every lease ends, in true time, before one grant of the quorum that
//! echoed it, and that voter promises nobody else until then.
//!
//! **Architecture invariant:** a leased read is answered only by a leader whose own grant to
//! itself still holds (asserted in [`Replica::lease_holds`]): its lease is shorter than any grant.

use super::*;
use serde::{Deserialize, Serialize};

/// The most heartbeat rounds a leader remembers the send tick of: older rounds can only give a
/// shorter lease than a newer round echoed by a quorum.
const LEASE_ROUNDS_MAX: usize = 64;

/// Leader leases, on when [`ReplicaOptions::leader_lease`] is set. Time is the replica's ticks,
/// which the caller drives from its own clock: the bound says how far that clock may run from
/// true time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaderLease {
    /// The bound on clock drift, in parts per million: every replica's clock runs at a rate
    /// within `1 ± max_drift_ppm / 10^6` of true time. At 10^6 or more no lease is ever held.
    pub max_drift_ppm: u32,
}

impl LeaderLease {
    /// How long a voter's grant lasts, in ticks of its own clock: the election timeout, so a
    /// follower that seeks election after an election timeout of silence has no grant left.
    pub fn grant_ticks(election_timeout_ticks: u32) -> u64 {
        u64::from(election_timeout_ticks)
    }

    /// How long a leader's lease lasts, in ticks of its own clock, from the send of the
    /// heartbeat round a quorum echoed: `floor((grant - 1) · (1 - ε) / (1 + ε))`.
    pub fn leader_ticks(self, election_timeout_ticks: u32) -> u64 {
        let grant = LeaderLease::grant_ticks(election_timeout_ticks).saturating_sub(1);
        let eps = u128::from(self.max_drift_ppm);
        if eps >= 1_000_000 {
            return 0;
        }
        let ticks = u128::from(grant) * (1_000_000 - eps) / (1_000_000 + eps);
        u64::try_from(ticks).unwrap_or(0)
    }
}

/// A replica's lease state: volatile, on purpose (a restart refuses every promise for a grant's
/// length instead).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct LeaseState {
    /// As a voter: until this tick, promise no higher ballot to anyone but `grant_holder`.
    grant_until_ticks: u64,
    /// Whom the grant is for; `None` after a restart, or when grants to two leaders overlap:
    /// then nobody gets a promise until it runs out.
    grant_holder: Option<NodeId>,
    /// The highest Prepare refused under the grant, with its epoch: answered once it runs out.
    deferred: Option<(NodeId, Ballot, Slot, u64)>,
    /// A forced campaign (a transfer, an operator) asked while this voter granted another
    /// leader a lease: it starts the moment the grant runs out, not an election timeout later.
    campaign_pending: bool,
    /// As leader: heartbeat rounds sent, as `(round, sent tick)`, oldest first.
    rounds: VecDeque<(u64, u64)>,
    /// As leader: leased reads are served in this epoch while `now_ticks` is below this.
    until: Option<(u64, u64)>,
}

impl Replica {
    /// The lease options, if leases are on.
    pub(super) fn lease_options(&self) -> Option<LeaderLease> {
        self.options.leader_lease
    }

    /// At start (and restart): refuse every promise for a grant's length, since a grant given
    /// before a crash was not written down.
    pub(super) fn start_lease(&mut self) {
        if self.lease_options().is_some() {
            let grant = LeaderLease::grant_ticks(self.options.election_timeout_ticks);
            self.lease.grant_until_ticks = self.now_ticks.saturating_add(grant);
            self.lease.grant_holder = None;
        }
    }

    /// Grants `holder` a lease from now: promise no one else a higher ballot for a grant's
    /// length. Grants only lengthen.
    pub(super) fn grant_lease(&mut self, holder: NodeId) {
        if self.lease_options().is_none() {
            return;
        }
        let grant = LeaderLease::grant_ticks(self.options.election_timeout_ticks);
        let live = self.now_ticks < self.lease.grant_until_ticks;
        if live && self.lease.grant_holder != Some(holder) {
            self.lease.grant_holder = None;
        } else {
            self.lease.grant_holder = Some(holder);
        }
        let until = self.now_ticks.saturating_add(grant);
        self.lease.grant_until_ticks = self.lease.grant_until_ticks.max(until);
    }

    /// Whether a live grant forbids promising `ballot` to `candidate` now.
    fn grant_forbids(&self, candidate: NodeId, ballot: Ballot) -> bool {
        self.lease_options().is_some()
            && ballot > self.promised
            && self.now_ticks < self.lease.grant_until_ticks
            && self.lease.grant_holder != Some(candidate)
    }

    /// Whether this replica may not run phase 1 now: it granted another leader a lease.
    pub(super) fn lease_blocks_candidacy(&self) -> bool {
        let next = Ballot::new(self.round_seen.max(self.promised.round) + 1, self.id);
        self.grant_forbids(self.id, next)
    }

    /// A Prepare under a live grant to someone else: held, not answered (the candidate would
    /// otherwise count a promise the lease forbids). Returns whether it was held.
    pub(super) fn hold_prepare_under_grant(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        from_slot: Slot,
    ) -> bool {
        if !self.grant_forbids(from, ballot) {
            return false;
        }
        if self.lease.deferred.is_none_or(|(_, b, _, _)| b < ballot) {
            self.lease.deferred = Some((from, ballot, from_slot, self.membership.epoch));
        }
        self.counters.promises_held_by_lease += 1;
        true
    }

    /// A forced campaign under a grant to another leader: started once the grant runs out.
    /// Returns whether it was put off.
    pub(super) fn put_off_campaign(&mut self) -> bool {
        if !self.lease_blocks_candidacy() {
            return false;
        }
        self.lease.campaign_pending = true;
        true
    }

    /// Every tick: once the grant has run out, answer the held Prepare and start the campaign
    /// put off.
    pub(super) fn tick_lease(&mut self) {
        if self.now_ticks < self.lease.grant_until_ticks {
            return;
        }
        if std::mem::take(&mut self.lease.campaign_pending) {
            self.campaign();
        }
        if let Some((from, ballot, from_slot, epoch)) = self.lease.deferred.take() {
            if epoch == self.membership.epoch {
                self.on_prepare(from, ballot, from_slot);
            }
        }
    }

    /// As leader, on sending heartbeats: each one opens a fresh round whose echoes grant the
    /// lease, and the leader grants itself one (it promises no one else while it leads).
    pub(super) fn open_lease_round(&mut self) {
        if self.lease_options().is_none() {
            return;
        }
        self.read_round += 1;
        self.acked_round[self.index] = self.read_round;
        self.lease
            .rounds
            .push_back((self.read_round, self.now_ticks));
        while self.lease.rounds.len() > LEASE_ROUNDS_MAX {
            self.lease.rounds.pop_front();
        }
        self.grant_lease(self.id);
        // A leader that is a quorum by itself holds its lease from its own round.
        self.extend_lease();
    }

    /// As leader, after an echo: the newest round a phase-2 quorum echoed starts the lease.
    pub(super) fn extend_lease(&mut self) {
        let Some(lease) = self.lease_options() else {
            return;
        };
        let mut ticks = lease.leader_ticks(self.options.election_timeout_ticks);
        let grant = LeaderLease::grant_ticks(self.options.election_timeout_ticks);
        if grant == 0 {
            return;
        }
        if self.bugs.has(Bug::LeaseWithoutDriftMargin) {
            // Planted: the lease as long as a grant less its tick, as if clocks kept time.
            ticks = grant.saturating_sub(1);
        }
        assert!(
            ticks < grant,
            "a lease of {ticks} ticks outlasts the grants of {grant} ticks behind it"
        );
        let confirmed = self.lease.rounds.iter().rev().find(|(round, _)| {
            let mut echoed = NodeSet::EMPTY;
            for (i, r) in self.acked_round.iter().enumerate() {
                if *r >= *round {
                    echoed.insert(i);
                }
            }
            self.membership.config.is_phase2_quorum(echoed)
        });
        let Some(&(round, sent)) = confirmed else {
            return;
        };
        // Older rounds can only start a shorter lease.
        self.lease.rounds.retain(|(r, _)| *r > round);
        let until = sent.saturating_add(ticks);
        let epoch = self.membership.epoch;
        self.lease.until = match self.lease.until {
            Some((e, u)) if e == epoch => Some((epoch, u.max(until))),
            _ => Some((epoch, until)),
        };
    }

    /// Forgets the lease: on winning or losing leadership.
    pub(super) fn end_lease(&mut self) {
        self.lease.rounds.clear();
        self.lease.until = None;
    }

    /// Whether this leader may serve a read from its own state now, with no confirmation
    /// round. Never across a stop-sign (the next configuration's quorums never granted it),
    /// never while rebuilding.
    pub(super) fn lease_holds(&self) -> bool {
        if self.role != Role::Leader || self.stop_sign.is_some() || self.rebuild.is_some() {
            return false;
        }
        let holds = self
            .lease
            .until
            .is_some_and(|(epoch, until)| epoch == self.membership.epoch && self.now_ticks < until);
        if holds {
            assert!(
                self.now_ticks < self.lease.grant_until_ticks
                    && self.lease.grant_holder == Some(self.id),
                "a leased read at tick {} outside the leader's own grant (until {}, to {:?})",
                self.now_ticks,
                self.lease.grant_until_ticks,
                self.lease.grant_holder
            );
        }
        holds
    }

    /// The tick until which this leader's lease holds, if it holds now (for drivers and
    /// explorers that show it).
    pub fn lease_until_ticks(&self) -> Option<u64> {
        if self.lease_holds() {
            self.lease.until.map(|(_, until)| until)
        } else {
            None
        }
    }
}
