//! Lease time, as etcd's lessor keeps it: renewals are served by the leader alone, without a
//! log write, and what of them a new leader must know reaches the log as checkpoints.
//!
//! - **Renewal** (etcd's `lessor.Renew` on the leader): the leader resets the lease's clock
//!   and answers its granted TTL at once. A follower's client is forwarded to the leader
//!   ([`PeerMessage::LeaseAsk`], etcd's leasehttp) and answered from the leader's reply; a
//!   lease that does not exist or already ran out is answered "not found" (etcd's stream
//!   then says TTL 0).
//! - **Checkpoints** (etcd's lease checkpointing): a lease that went one checkpoint interval
//!   `C` without a renewal has its remaining time recorded through the log
//!   ([`kv::KvCommand::LeaseCheckpoint`]), and again every `C` while it is not renewed; the
//!   first renewal after such a ("low") record logs a full one and is answered only once it
//!   is applied. A lease renewed at least every `C` costs no log write at all.
//! - **A new leader** restarts every lease from its record: the checkpoint's remaining time,
//!   or a full TTL, plus one election timeout `E` (etcd's `Promote(extend)`), and a record
//!   applied later that another leader wrote restarts that lease the same way.
//! - **Records name their leadership** (its ballot): checkpoints and expiries are one
//!   command, which the store ignores once a later leadership's record was applied. A leader
//!   logs an empty one first ([`Takeover`]) and serves renewals and revokes only once it is
//!   applied, so a deposed leader's record that a later phase 1 takes up cannot undo them.
//!
//! The bound (ARCHITECTURE.md, "Leases"): against the last acknowledged renewal `r` of a
//! lease with TTL `T`, a leader change never revokes it before `r + T` (the record is full
//! after any renewal that followed a low one, and `E` covers an old leader that answers
//! renewals until it notices it was deposed), and never keeps it past
//! `r + T + C + E + (time without a leader)`: a lease not renewed for `C` is re-recorded
//! every `C`, so a new leader's record is at most `C` old when the old leader stopped.

use super::{Answer, Member, RequestId, WriteAnswer, WriteFor};
use crate::bugs::MemberBug;
use crate::error::MemberError;
use crate::peer::{LeaseQuestion, LeaseTtl, PeerMessage};
use crate::time::Micros;
use kv::{KvCommand, KvOutput, KvResponse, LeaseCheckpointRequest, LEASE_CHECKPOINTS_MAX};
use paxos::multi::{Applied, ChosenEntry, ReadId, Role, SessionOutcome, Value};
use paxos::Slot;
use std::collections::BTreeMap;

/// Lease questions one member waits on the leader for at once (each holds a client's request).
const LEASE_ASKS_MAX: usize = 65_536;
/// Renewals a leader holds at once until their full checkpoint is applied.
const RENEWALS_WAITING_MAX: usize = 65_536;
/// Ask a forwarded lease question again this often while it waits.
const ASK_AGAIN_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// A keep-alive's answer ([`super::Answer::LeaseKeepAlive`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseRenewed {
    /// The lease's granted TTL in seconds; `None` if there is no such lease or it ran out.
    pub ttl: Option<i64>,
    /// The store's revision here (the answer header's).
    pub revision: i64,
    /// The ballot round here (the header's raft term).
    pub term: u64,
}

/// Who waits for an answer about a lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asker {
    /// A client of this member, about this lease.
    Local(RequestId, LeaseQuestion, i64),
    /// A follower's [`PeerMessage::LeaseAsk`].
    Peer { from: u64, ask: u64 },
}

/// A renewal the leader holds until a quorum confirmed it still leads and it applied through
/// the confirming read's slot (then, if the lease's record was low, until a full one is
/// applied).
#[derive(Clone, Copy, Debug)]
struct HeldRenewal {
    lease: i64,
    asker: Asker,
    /// The lease's granted TTL, seconds.
    granted: i64,
    /// Whether the lease's record was low when its clock was renewed.
    low: bool,
    /// [`LeaseAsks::restarts`] when its clock was renewed. A restart of the clocks since
    /// replaced that renewal with the lease's replicated record (which may be low, or run out
    /// soon): answering it then would acknowledge a renewal that neither the clocks nor the
    /// log hold, and this leader would revoke the lease early (seed 77 of the member sim).
    restarts: u64,
}

/// A lease question this member (not leading) sent to the leader.
struct Forwarded {
    request: RequestId,
    lease: i64,
    question: LeaseQuestion,
    deadline: Micros,
    resend_at: Micros,
}

/// The member's lease questions in flight.
#[derive(Default)]
pub(super) struct LeaseAsks {
    next_ask: u64,
    /// As follower: questions sent to the leader, by ask number.
    forwarded: BTreeMap<u64, Forwarded>,
    /// As leader: renewals of low leases met during the current input, logged together as
    /// one checkpoint (of their full TTLs) when the input is handled.
    gathered: Vec<HeldRenewal>,
    /// As leader: renewals waiting for their checkpoint (the key of its `WriteFor`).
    checkpointing: BTreeMap<u64, Vec<HeldRenewal>>,
    waiting: usize,
    /// As leader: renewals waiting for a quorum to confirm this member still leads, by read.
    confirming: BTreeMap<ReadId, HeldRenewal>,
    /// Confirmed renewals waiting to apply through their read's slot, in confirmation order.
    applying: Vec<(Slot, HeldRenewal)>,
    /// How many times the clocks were restarted from the replicated records (a new
    /// leadership, a snapshot installed): a renewal held across one is asked again.
    restarts: u64,
    /// As leader: the empty lease record logged at the start of this leadership (see
    /// [`Takeover`]).
    takeover: Takeover,
}

/// The empty lease record ([`kv::LeaseCheckpointRequest`] with this leadership's ballot) a
/// leader logs first. Once it is applied, this member applied everything earlier leaders had
/// chosen (its records, and so its clocks, are no older than theirs: a member can lead before
/// it caught up), and any record of an earlier leadership chosen later changes nothing (a
/// deposed leader's revoke, accepted by it alone and taken up by a later phase 1, would
/// otherwise undo renewals this leader answered without a log write). Until then it answers
/// no renewal and proposes no revoke.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Takeover {
    /// Not logged in this leadership (or its write failed: logged again at the next tick).
    #[default]
    None,
    /// Logged under this checkpoint key, not applied yet.
    Logging(u64),
    /// Applied.
    Applied,
}

/// A renewal's answer: the granted TTL, all of it left.
fn full_ttl(granted: i64) -> Option<LeaseTtl> {
    Some(LeaseTtl {
        granted,
        remaining: granted,
    })
}

impl Member {
    /// A client's keep-alive or time-to-live question about `lease`.
    pub(super) fn lease_question(
        &mut self,
        now: Micros,
        id: RequestId,
        lease: i64,
        question: LeaseQuestion,
    ) {
        let asker = Asker::Local(id, question, lease);
        self.note_leadership(now);
        if self.replica.role() == Role::Leader {
            self.answer_lease_here(now, lease, question, asker);
            return;
        }
        if self.lease_asks.forwarded.len() >= LEASE_ASKS_MAX {
            self.reply_lease(asker, Err(MemberError::TooManyRequests));
            return;
        }
        let ask = self.hold_forwarded(id, lease, question, now + ASK_AGAIN_EVERY);
        self.send_lease_ask(ask);
    }

    /// Holds a client's question to send to the leader (again) at `resend_at`; returns its ask
    /// number. The caller checked [`LEASE_ASKS_MAX`].
    fn hold_forwarded(
        &mut self,
        request: RequestId,
        lease: i64,
        question: LeaseQuestion,
        resend_at: Micros,
    ) -> u64 {
        let ask = self.lease_asks.next_ask;
        self.lease_asks.next_ask += 1;
        let deadline = self.clock + self.options.request_timeout;
        self.lease_asks.forwarded.insert(
            ask,
            Forwarded {
                request,
                lease,
                question,
                deadline,
                resend_at,
            },
        );
        ask
    }

    fn send_lease_ask(&mut self, ask: u64) {
        let Some(f) = self.lease_asks.forwarded.get(&ask) else {
            return;
        };
        let message = PeerMessage::LeaseAsk {
            ask,
            lease: f.lease,
            question: f.question,
        };
        if let Some(leader) = self.replica.leader().filter(|l| l.0 != self.me()) {
            self.send(leader.0, message);
        }
    }

    /// A follower's [`PeerMessage::LeaseAsk`].
    pub(super) fn on_lease_ask(
        &mut self,
        now: Micros,
        from: u64,
        ask: u64,
        lease: i64,
        question: LeaseQuestion,
    ) {
        let asker = Asker::Peer { from, ask };
        self.note_leadership(now);
        if self.replica.role() == Role::Leader {
            self.answer_lease_here(now, lease, question, asker);
        } else {
            self.reply_lease(asker, Err(MemberError::NotLeader));
        }
    }

    /// The leader's [`PeerMessage::LeaseAnswer`] to this member's question `ask`.
    pub(super) fn on_lease_answer(
        &mut self,
        now: Micros,
        ask: u64,
        result: Result<Option<LeaseTtl>, MemberError>,
    ) {
        if matches!(result, Err(MemberError::NotLeader)) {
            // Asked a member that no longer leads: ask the next leader shortly.
            if let Some(f) = self.lease_asks.forwarded.get_mut(&ask) {
                f.resend_at = now + self.options.tick * 2;
            }
            return;
        }
        let Some(f) = self.lease_asks.forwarded.remove(&ask) else {
            return;
        };
        self.reply_lease(Asker::Local(f.request, f.question, f.lease), result);
    }

    /// As leader: renews `lease` or says how long it has left.
    fn answer_lease_here(
        &mut self,
        now: Micros,
        lease: i64,
        question: LeaseQuestion,
        asker: Asker,
    ) {
        let Ok(record) = self.applier.machine().lease_time_to_live(lease, false) else {
            self.reply_lease(asker, Ok(None));
            return;
        };
        let granted = record.granted_ttl;
        let left = self.lease_clocks.remaining(lease, now);
        let ttl = |remaining| Ok(Some(LeaseTtl { granted, remaining }));
        match question {
            LeaseQuestion::Remaining => {
                // Whole seconds, rounded down, as etcd's `int64(l.Remaining().Seconds())`: a
                // lease of 60 s asked right after its grant has 59 s left.
                let remaining = left.map_or(granted, |d| d.as_secs() as i64);
                self.reply_lease(asker, ttl(remaining));
            }
            LeaseQuestion::Renew => {
                if left.is_some_and(|d| d.is_zero()) {
                    // Ran out: its revoke is proposed or about to be. etcd waits for it and
                    // answers "not found"; the answer is the same without the wait.
                    self.reply_lease(asker, Ok(None));
                    return;
                }
                let low = match self.lease_clocks.renew(lease, now) {
                    Some((_, low)) => low,
                    None => {
                        // A lease without a clock (granted in a slot not applied through the
                        // usual path): start one now, full.
                        self.lease_clocks.start(lease, granted, now);
                        false
                    }
                };
                // Answered only once a quorum confirms this member still leads, in a round
                // begun after the renewal (read-index, no log write): a deposed leader that
                // has not noticed yet must not acknowledge renewals a new leader never
                // learns of (its restart would revoke the lease before the renewal's TTL).
                let held = self.lease_asks.confirming.len() + self.lease_asks.applying.len();
                if held >= RENEWALS_WAITING_MAX {
                    self.reply_lease(asker, Err(MemberError::TooManyRequests));
                    return;
                }
                let read = ReadId(self.next_read);
                self.next_read = self.next_read.wrapping_add(1);
                let held = HeldRenewal {
                    lease,
                    asker,
                    granted,
                    low,
                    restarts: self.lease_asks.restarts,
                };
                match self.replica.read(read) {
                    Ok(()) => {
                        self.lease_asks.confirming.insert(read, held);
                    }
                    Err(_) => self.reply_lease(asker, Err(MemberError::NotLeader)),
                }
            }
        }
    }

    /// The outcome of read `id` (confirmed through `slot`, or not): if it was a renewal's,
    /// the renewal waits to apply through `slot`; returns whether it was one.
    pub(super) fn lease_read_outcome(&mut self, id: ReadId, slot: Option<Slot>) -> bool {
        let Some(held) = self.lease_asks.confirming.remove(&id) else {
            return false;
        };
        match slot {
            None => self.reply_lease(held.asker, Err(MemberError::NotLeader)),
            Some(slot) => self.lease_asks.applying.push((slot, held)),
        }
        true
    }

    /// Answers the confirmed renewals whose read slot is applied. Waiting for it is what
    /// makes a revoke an earlier leader proposed (its clock ran out) show before the answer:
    /// everything any earlier leader may have had chosen lies below that slot. A lease it
    /// revoked answers "not found" instead of a renewal the revoke would undo.
    pub(super) fn serve_confirmed_renewals(&mut self) {
        let applied = self.applier.applied_through();
        if self.lease_asks.applying.is_empty() || self.lease_asks.takeover != Takeover::Applied {
            return;
        }
        let (ready, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.lease_asks.applying)
            .into_iter()
            .partition(|(slot, ..)| *slot <= applied);
        self.lease_asks.applying = wait;
        for (_, held) in ready {
            self.renewal_confirmed(held);
        }
    }

    fn renewal_confirmed(&mut self, held: HeldRenewal) {
        let asker = held.asker;
        if self
            .applier
            .machine()
            .lease_checkpoint(held.lease)
            .is_none()
        {
            self.reply_lease(asker, Ok(None));
        } else if held.restarts != self.lease_asks.restarts {
            // The clocks were restarted since this renewal: ask again (module doc).
            self.reply_lease(asker, Err(MemberError::NotLeader));
        } else if held.low && !self.bugs.has(MemberBug::RenewalNotCheckpointed) {
            if self.lease_asks.waiting >= RENEWALS_WAITING_MAX {
                self.reply_lease(asker, Err(MemberError::TooManyRequests));
                return;
            }
            self.lease_asks.waiting += 1;
            self.lease_asks.gathered.push(held);
        } else {
            self.reply_lease(asker, Ok(full_ttl(held.granted)));
        }
    }

    fn reply_lease(&mut self, asker: Asker, result: Result<Option<LeaseTtl>, MemberError>) {
        if let (Asker::Local(id, question, lease), Err(MemberError::NotLeader)) = (asker, &result) {
            // This member stopped leading while it held the question: ask the next leader.
            if self.lease_asks.forwarded.len() < LEASE_ASKS_MAX {
                self.hold_forwarded(id, lease, question, self.clock + self.options.tick * 2);
                return;
            }
        }
        match asker {
            Asker::Peer { from, ask } => self.send(from, PeerMessage::LeaseAnswer { ask, result }),
            Asker::Local(id, LeaseQuestion::Renew, _) => {
                let answer = result.map(|t| LeaseRenewed {
                    ttl: t.map(|t| t.granted),
                    revision: self.applier.machine().revision(),
                    term: self.term(),
                });
                self.answer(id, Answer::LeaseKeepAlive(answer));
            }
            Asker::Local(id, LeaseQuestion::Remaining, lease) => {
                let left = match result {
                    Ok(t) => t.map(|t| t.remaining),
                    // Without the leader's answer (none known, or it timed out) this member's
                    // own clock is the best it has (it restarts at each checkpoint applied).
                    Err(_) => self
                        .lease_clocks
                        .remaining(lease, self.clock)
                        .map(|d| d.as_secs() as i64),
                };
                self.answer(id, Answer::LeaseRemaining(left));
            }
        }
    }

    /// Logs the full checkpoints that renewals of low leases met in this input wait for, one
    /// command per [`LEASE_CHECKPOINTS_MAX`].
    pub(super) fn flush_lease_checkpoints(&mut self) {
        if self.lease_asks.gathered.is_empty() {
            return;
        }
        let gathered = std::mem::take(&mut self.lease_asks.gathered);
        if self.replica.role() != Role::Leader {
            for held in gathered {
                self.lease_asks.waiting -= 1;
                self.reply_lease(held.asker, Err(MemberError::NotLeader));
            }
            return;
        }
        for chunk in gathered.chunks(LEASE_CHECKPOINTS_MAX) {
            let checkpoints = chunk
                .iter()
                .map(|h| {
                    (
                        h.lease,
                        h.granted.max(0).unsigned_abs().saturating_mul(1000),
                    )
                })
                .collect();
            self.submit_checkpoint(checkpoints, chunk.to_vec());
        }
    }

    /// Logs a lease record of this leadership: remaining times, and leases whose time ran out
    /// (nobody waits on those: the revoke's effect is the answer); returns its key.
    fn submit_lease_record(
        &mut self,
        checkpoints: Vec<(i64, u64)>,
        expired: Vec<i64>,
        waiters: Vec<HeldRenewal>,
    ) -> u64 {
        let ballot = self.replica.ballot();
        let leader = if self.bugs.has(MemberBug::LeaseRecordWithoutLeader) {
            (0, 0)
        } else {
            (ballot.round, ballot.node.0)
        };
        let key = self.lease_asks.next_ask;
        self.lease_asks.next_ask += 1;
        let for_ = if expired.is_empty() {
            self.lease_asks.checkpointing.insert(key, waiters);
            WriteFor::Checkpoint { key }
        } else {
            debug_assert!(waiters.is_empty(), "nobody waits on an expiry");
            WriteFor::Expiry
        };
        let payload = kv::encode(&KvCommand::LeaseCheckpoint(LeaseCheckpointRequest {
            leader,
            checkpoints,
            expired,
        }));
        self.submit_write(self.clock, payload, for_);
        key
    }

    fn submit_checkpoint(&mut self, checkpoints: Vec<(i64, u64)>, waiters: Vec<HeldRenewal>) {
        self.submit_lease_record(checkpoints, Vec::new(), waiters);
    }

    /// The checkpoint written under `key` was applied (or failed): answer its renewals. One
    /// applied after a later leadership's record changed nothing: it failed.
    pub(super) fn checkpoint_written(&mut self, key: u64, answer: WriteAnswer) {
        let result = answer.and_then(|(output, _)| match output {
            Ok(KvResponse::LeaseCheckpoint { current: false, .. }) => Err(MemberError::NotLeader),
            _ => Ok(()),
        });
        if self.lease_asks.takeover == Takeover::Logging(key) {
            self.lease_asks.takeover = match result {
                Ok(()) => Takeover::Applied,
                // Logged again at the next tick, if this member still leads.
                Err(_) => Takeover::None,
            };
            self.serve_confirmed_renewals();
        }
        let waiters = self
            .lease_asks
            .checkpointing
            .remove(&key)
            .unwrap_or_default();
        for held in waiters {
            self.lease_asks.waiting -= 1;
            // A restart since the record was logged may have left this leader's clock on the
            // low record (its own full one does not restart it): ask again, as above.
            let answer = match &result {
                Ok(()) if held.restarts != self.lease_asks.restarts => Err(MemberError::NotLeader),
                Ok(()) => Ok(full_ttl(held.granted)),
                Err(e) => Err(e.clone()),
            };
            self.reply_lease(held.asker, answer);
        }
    }

    /// Every tick: forwarded questions asked again or timed out; as leader, the checkpoints
    /// due and the revokes of leases that ran out.
    pub(super) fn tend_leases(&mut self, now: Micros, timeout: &MemberError) {
        let leading = self.note_leadership(now);
        let expired = super::keys_where(&self.lease_asks.forwarded, |f| f.deadline <= now);
        for ask in expired {
            if let Some(f) = self.lease_asks.forwarded.remove(&ask) {
                self.reply_lease(
                    Asker::Local(f.request, f.question, f.lease),
                    Err(timeout.clone()),
                );
            }
        }
        let again = super::keys_where(&self.lease_asks.forwarded, |f| f.resend_at <= now);
        for ask in again {
            if leading {
                // This member leads now: answer here.
                if let Some(f) = self.lease_asks.forwarded.remove(&ask) {
                    let asker = Asker::Local(f.request, f.question, f.lease);
                    self.answer_lease_here(now, f.lease, f.question, asker);
                }
                continue;
            }
            if let Some(f) = self.lease_asks.forwarded.get_mut(&ask) {
                f.resend_at = now + ASK_AGAIN_EVERY;
            }
            self.send_lease_ask(ask);
        }
        if !leading {
            return;
        }
        loop {
            let due = self
                .lease_clocks
                .take_checkpoints_due(now, LEASE_CHECKPOINTS_MAX);
            if due.is_empty() {
                break;
            }
            let full = due.len() == LEASE_CHECKPOINTS_MAX;
            self.submit_checkpoint(due, Vec::new());
            if !full {
                break;
            }
        }
        self.expire_leases(now);
    }

    /// Restarts the clocks if this member began to lead since it last looked, before it
    /// serves any renewal as leader (a renewal answered from a follower's clocks, then
    /// overwritten by the restart, would be lost); returns whether it leads.
    fn note_leadership(&mut self, now: Micros) -> bool {
        let leading = self.replica.role() == Role::Leader;
        if leading && !self.was_leading {
            // Revokes and checkpoints this member decided in an earlier leadership are not
            // made again now: the restart below may have given those leases new life.
            let stale = super::keys_where(&self.writes, |w| {
                matches!(w.for_, WriteFor::Expiry | WriteFor::Checkpoint { .. })
            });
            for id in stale {
                if let Some(w) = self.remove_write(id) {
                    self.answer_write(w.for_, Err(MemberError::NotLeader));
                }
            }
            self.restart_lease_clocks(now);
            self.lease_asks.takeover = Takeover::None;
        }
        if !leading {
            self.lease_asks.takeover = Takeover::None;
            // Confirmed renewals can no longer be answered here (their reads in flight fail
            // with the leadership): ask again, at the next leader.
            for (_, held) in std::mem::take(&mut self.lease_asks.applying) {
                self.reply_lease(held.asker, Err(MemberError::NotLeader));
            }
        }
        self.was_leading = leading;
        if leading && self.lease_asks.takeover == Takeover::None {
            let key = self.submit_lease_record(Vec::new(), Vec::new(), Vec::new());
            self.lease_asks.takeover = Takeover::Logging(key);
        }
        leading
    }

    /// A leader that just began: every lease restarts from its replicated record plus one
    /// election timeout; also at start and after a snapshot is installed.
    pub(super) fn restart_lease_clocks(&mut self, now: Micros) {
        self.lease_asks.restarts += 1;
        let store = self.applier.machine();
        let extension = self.options.election_timeout;
        self.lease_clocks
            .restart(store.lease_checkpoints(), now, extension);
    }

    /// Keeps the lease clocks in step with an applied command; `entry` is the slot it came in.
    pub(super) fn on_lease_applied(
        &mut self,
        applied: &Applied<KvOutput>,
        entry: &ChosenEntry,
        now: Micros,
    ) {
        let SessionOutcome::Applied(Ok(response)) = &applied.outcome else {
            return;
        };
        match response {
            KvResponse::LeaseGrant(g) => self.lease_clocks.start(g.id, g.ttl, now),
            KvResponse::LeaseKeepAlive(k) => {
                // Logged by an older build: a renewal, with a full record again.
                self.lease_clocks.renew(k.id, now);
            }
            // A record of an earlier leadership than the last one applied changed nothing.
            KvResponse::LeaseCheckpoint { current: false, .. } => {}
            KvResponse::LeaseRevoke(_) | KvResponse::LeaseCheckpoint { current: true, .. } => {
                // The answer does not name the leases; the command does. Both are rare next
                // to puts, so finding and decoding it again costs little.
                let Value::Batch(commands) = &entry.value else {
                    return;
                };
                let command = commands
                    .iter()
                    .find(|c| c.id == applied.id)
                    .and_then(|c| kv::decode(&c.payload).ok());
                match command {
                    Some(KvCommand::LeaseRevoke(r)) => self.lease_clocks.forget(r.id),
                    Some(KvCommand::LeaseCheckpoint(c)) => {
                        for &id in &c.expired {
                            if self.applier.machine().lease_checkpoint(id).is_none() {
                                self.lease_clocks.forget(id);
                            }
                        }
                        self.on_checkpoint_applied(applied, &c);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// A checkpoint was applied. At a leader, one this member wrote (in this incarnation: its
    /// session ids say so, even once the write timed out here) says nothing its clocks do
    /// not know better, since they moved on since (restarting from it would undo renewals
    /// answered meanwhile); any other is an older leader's record that the restart at the
    /// start of this leadership did not see (chosen before, applied since): restart those
    /// leases from it.
    fn on_checkpoint_applied(&mut self, applied: &Applied<KvOutput>, c: &LeaseCheckpointRequest) {
        let own = applied.id.client.0 & !0xfff == self.session_base;
        if own && self.replica.role() == Role::Leader {
            return;
        }
        let leading = self.replica.role() == Role::Leader;
        let extension = if leading {
            self.options.election_timeout
        } else {
            std::time::Duration::ZERO
        };
        let now = self.clock;
        for &(id, _) in &c.checkpoints {
            let record = self.applier.machine().lease_checkpoint(id);
            if let Some((ttl, remaining_ms)) = record {
                self.lease_clocks
                    .restart_one(id, ttl, remaining_ms, now, extension, leading);
            }
        }
    }

    /// As leader: proposes the revoke of every lease whose clock ran out (again after a
    /// request timeout, should the first proposal be lost).
    fn expire_leases(&mut self, now: Micros) {
        if self.lease_asks.takeover != Takeover::Applied {
            return;
        }
        let mut expired = Vec::new();
        for id in self
            .lease_clocks
            .take_due(now, self.options.request_timeout)
        {
            if self
                .applier
                .machine()
                .lease_time_to_live(id, false)
                .is_err()
            {
                // Revoked already (its revoke applied in a slot this member installed from a
                // snapshot, say): nothing to expire, and no clock to keep.
                self.lease_clocks.forget(id);
                continue;
            }
            tracing::info!(lease = id, "lease expired; proposing its revoke");
            expired.push(id);
        }
        for chunk in expired.chunks(LEASE_CHECKPOINTS_MAX) {
            self.submit_lease_record(Vec::new(), chunk.to_vec(), Vec::new());
        }
    }

    /// Fails every lease question waiting here (the member stops serving).
    pub(super) fn fail_lease_asks(&mut self, error: &MemberError) {
        for (_, f) in std::mem::take(&mut self.lease_asks.forwarded) {
            self.reply_lease(
                Asker::Local(f.request, f.question, f.lease),
                Err(error.clone()),
            );
        }
    }
}
