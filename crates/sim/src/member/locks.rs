//! Simulated clients of etcd's Lock and Election services: each runs the recipe the node
//! runs, through `kv::recipe`'s decisions (`crates/node/src/recipe.rs` does the same IO
//! through its KV service), as member requests. A session grants a lease of
//! [`LOCK_LEASE_TTL_SECS`] (nothing keeps it alive), claims `<name>/<lease in hex>`, waits
//! for every older contender's key to go (reads the newest older key, then waits for its
//! deletion with a watch read, then reads again), checks its own key still stands, holds for
//! a while (one session in five has a lease longer than the run), then releases (a lock deletes its key; a leader resigns: deletes it if it is
//! still the incarnation it campaigned with) or crashes (stops, and its lease expires). Any
//! answer lost or refused ends the session: the client gives up and revokes its lease (once,
//! as etcd's `Session.Close` does), else the lease expires. A session with a lease longer
//! than the run holds 0.1–1 s and never crashes holding. Between
//! sessions a client sometimes observes (a linearizable read of the oldest contender, what
//! etcd's `Observe` and `Leader` answer).
//!
//! What is checked, and why etcd promises it (at the end of the run, [`LockHistory::check`]):
//! - **At most one holder at a time** (`lock`). A hold runs from its acquire answer to the
//!   earlier of the invoke of its release and the earliest time its lease could have
//!   expired (its grant's invoke plus the TTL; half the TTL with leader leases on, whose
//!   clocks may run fast). Until then its key exists: nobody else deletes it, and the
//!   member expires a lease no sooner than its TTL after the grant applied. A holder decided
//!   on a linearizable read that found no older key, so every older holder's key was deleted
//!   before that, hence after that holder's hold ended. So two holds of one name never
//!   overlap in simulated real time. A hold whose acquire answer arrives after its lease
//!   could have expired is empty (etcd promises nothing there: that is what fencing is for).
//! - **The fencing revision grows** (`lock`): holds of one name with non-empty intervals,
//!   in acquire order, have strictly increasing create revisions.
//! - **Observations never go back and agree with the holder** (`election`): of two
//!   observations of one name, one answered before the other began, the later names a key
//!   created no earlier (new contenders are always newer keys); and an observation that ran
//!   wholly inside a hold names that holder's key.

use super::check::{Checks, MemberCheck};
use kv::recipe::{self, Turn};
use kv::{
    Compare, CompareResult, CompareTarget, DeleteRangeRequest, KvCommand, KvRead, KvReadResponse,
    KvResponse, LeaseGrantRequest, PutRequest, RangeRequest, RequestOp, ResponseOp, TxnRequest,
    WatchRead,
};
use member::{Answer, Request};

/// A lock session's lease TTL: short, so that crashed holders' leases expire within a run...
pub(crate) const LOCK_LEASE_TTL_SECS: i64 = 1;
/// ... or, for one session in five, far longer than a run (as etcd's default session's 60 s is
/// long beside a hold): a lease that ends early (planted `lease-ttl-in-millis`) then ends
/// while its holder still holds, with time for another contender to acquire.
pub(crate) const LOCK_LEASE_TTL_LONG_SECS: i64 = 600;
/// Lock clients' lease ids start here (far from the lincheck groups' ids).
const LEASE_ID_BASE: i64 = 900_000_000;
/// Holds kept for the check (a run holds far fewer).
const HOLDS_MAX: usize = 100_000;
const OBSERVATIONS_MAX: usize = 100_000;

/// The next thing a lock client asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Grant,
    Claim,
    ReadOlder,
    WaitDelete {
        key: Vec<u8>,
        after: i64,
    },
    Confirm,
    Release,
    /// Ends the session after a lost or refused answer: revokes its lease, as etcd's
    /// `Session.Close` does.
    Revoke,
    Observe,
}

/// A lock client's request on its way or waiting at a member.
pub(crate) struct LockPending {
    pub step: Step,
    pub node: usize,
    pub request: member::RequestId,
    pub inc: u64,
    pub invoke: u64,
}

/// One lock (or election) client.
pub(crate) struct Locker {
    pub name: String,
    pub election: bool,
    index: usize,
    sessions: i64,
    lease: i64,
    ttl_secs: i64,
    lease_invoke: u64,
    key: Vec<u8>,
    rev: i64,
    pub pending: Option<LockPending>,
    /// The step to ask next, if any (none: between sessions).
    pub next: Option<Step>,
    /// The hold it is in ([`LockHistory::holds`]), if any.
    pub hold: Option<usize>,
}

/// One hold of a lock or a leadership.
#[derive(Clone, Debug)]
pub(crate) struct Hold {
    pub locker: usize,
    pub name: String,
    pub rev: i64,
    pub acquired: u64,
    pub release_invoke: Option<u64>,
    pub earliest_expiry: u64,
}

impl Hold {
    fn end(&self) -> u64 {
        self.release_invoke
            .map_or(self.earliest_expiry, |r| r.min(self.earliest_expiry))
    }
}

/// One observation: the oldest contender's create revision (none: no contender).
#[derive(Clone, Debug)]
pub(crate) struct Observation {
    pub name: String,
    pub invoke: u64,
    pub complete: u64,
    pub oldest: Option<i64>,
}

/// What lock clients did, for the checks and the report.
#[derive(Default)]
pub(crate) struct LockHistory {
    pub holds: Vec<Hold>,
    pub observations: Vec<Observation>,
    pub sessions: u64,
    /// Sessions whose key was gone once the older ones went (the lease ended meanwhile).
    pub expired_waiting: u64,
    pub abandoned: u64,
    pub released: u64,
    pub crashed_holding: u64,
}

/// What a lock client does after an answer.
pub(crate) enum Then {
    /// Ask `Step` next, after a short pause.
    Ask(Step),

    /// It acquired: hold, then release or crash.
    Acquired,
    /// The session is over (released, given up or expired): start another later.
    SessionOver,
}

fn write(command: KvCommand, grows: bool) -> Request {
    Request::Write {
        payload: kv::encode(&command),
        grows,
    }
}

fn range_read(range: RangeRequest, linearizable: bool) -> Request {
    Request::Read {
        read: KvRead::Range(range),
        linearizable,
    }
}

fn first_created(op: Option<&ResponseOp>) -> Option<(i64, Vec<u8>)> {
    match op {
        Some(ResponseOp::Range(r)) => r.kvs.first().map(|kv| (kv.create_revision, kv.key.clone())),
        _ => None,
    }
}

impl Locker {
    pub fn new(index: usize, name: String, election: bool) -> Locker {
        Locker {
            name,
            election,
            index,
            sessions: 0,
            lease: 0,
            ttl_secs: LOCK_LEASE_TTL_SECS,
            lease_invoke: 0,
            key: Vec::new(),
            rev: 0,
            pending: None,
            next: None,
            hold: None,
        }
    }

    /// A new session starts: a new lease, of [`LOCK_LEASE_TTL_LONG_SECS`] if `long`.
    pub fn start_session(&mut self, long: bool) {
        self.ttl_secs = if long {
            LOCK_LEASE_TTL_LONG_SECS
        } else {
            LOCK_LEASE_TTL_SECS
        };
        self.sessions += 1;
        self.lease = LEASE_ID_BASE + self.index as i64 * 1_000_000 + self.sessions;
        self.key = recipe::contender_key(self.name.as_bytes(), self.lease);
        self.rev = 0;
        self.next = Some(Step::Grant);
    }

    /// The member request for `step`.
    pub fn request(&self, step: &Step) -> Request {
        let prefix = recipe::contenders(self.name.as_bytes());
        match step {
            Step::Grant => write(
                KvCommand::LeaseGrant(LeaseGrantRequest {
                    id: self.lease,
                    ttl: self.ttl_secs,
                }),
                true,
            ),
            Step::Claim => {
                let put = PutRequest {
                    key: self.key.clone(),
                    value: format!("l{}s{}", self.index, self.sessions).into_bytes(),
                    lease: self.lease,
                    ..PutRequest::default()
                };
                let oldest = || RequestOp::Range(recipe::top_by_creation(&prefix, true, 0));
                write(
                    KvCommand::Txn(TxnRequest {
                        compare: vec![Compare {
                            key: self.key.clone(),
                            range_end: Vec::new(),
                            target: CompareTarget::Create(0),
                            result: CompareResult::Equal,
                        }],
                        success: vec![RequestOp::Put(put), oldest()],
                        failure: vec![
                            RequestOp::Range(RangeRequest::single(self.key.clone())),
                            oldest(),
                        ],
                    }),
                    true,
                )
            }
            Step::ReadOlder => {
                range_read(recipe::top_by_creation(&prefix, false, self.rev - 1), true)
            }
            Step::WaitDelete { key, after } => Request::Read {
                read: KvRead::Watch(WatchRead {
                    key: key.clone(),
                    range_end: Vec::new(),
                    after: *after,
                    prev_kv: false,
                    no_put: true,
                    no_delete: false,
                    events_max: 1,
                    bytes_max: 64 << 10,
                }),
                linearizable: false,
            },
            Step::Confirm => range_read(RangeRequest::single(self.key.clone()), true),
            Step::Release if self.election => write(
                KvCommand::Txn(TxnRequest {
                    compare: vec![Compare {
                        key: self.key.clone(),
                        range_end: Vec::new(),
                        target: CompareTarget::Create(self.rev),
                        result: CompareResult::Equal,
                    }],
                    success: vec![RequestOp::DeleteRange(DeleteRangeRequest {
                        key: self.key.clone(),
                        ..DeleteRangeRequest::default()
                    })],
                    failure: Vec::new(),
                }),
                false,
            ),
            Step::Release => write(
                KvCommand::DeleteRange(DeleteRangeRequest {
                    key: self.key.clone(),
                    ..DeleteRangeRequest::default()
                }),
                false,
            ),
            Step::Revoke => write(
                KvCommand::LeaseRevoke(kv::LeaseRevokeRequest { id: self.lease }),
                false,
            ),
            Step::Observe => range_read(recipe::top_by_creation(&prefix, true, 0), true),
        }
    }

    /// Takes the answer to `p`; `now` is when it arrived.
    pub fn answered(
        &mut self,
        p: &LockPending,
        answer: Answer,
        now: u64,
        lease_margin_div: u64,
        history: &mut LockHistory,
    ) -> Then {
        let write_ok = |answer: &Answer| match answer {
            Answer::Write(Ok((Ok(r), _))) => Some(r.clone()),
            _ => None,
        };
        let range_ok = |answer: &Answer| match answer {
            Answer::Read(Ok((Ok(KvReadResponse::Range(r)), _))) => Some(r.clone()),
            _ => None,
        };
        match &p.step {
            Step::Grant => match write_ok(&answer) {
                Some(KvResponse::LeaseGrant(_)) => {
                    self.lease_invoke = p.invoke;
                    history.sessions += 1;
                    Then::Ask(Step::Claim)
                }
                _ => self.abandon(history, &p.step),
            },
            Step::Claim => {
                let Some(KvResponse::Txn(t)) = write_ok(&answer) else {
                    return self.abandon(history, &p.step);
                };
                let mine = if t.succeeded {
                    Some(t.revision)
                } else {
                    first_created(t.responses.first()).map(|(rev, _)| rev)
                };
                let Some(mine) = mine else {
                    return self.abandon(history, &p.step);
                };
                self.rev = mine;
                let oldest = first_created(t.responses.get(1)).map(|(rev, _)| rev);
                if !self.election && recipe::holds_at_claim(mine, oldest) {
                    self.acquire(now, lease_margin_div, history)
                } else {
                    Then::Ask(Step::ReadOlder)
                }
            }
            Step::ReadOlder => {
                let Some(r) = range_ok(&answer) else {
                    return self.abandon(history, &p.step);
                };
                let newest_older = r.kvs.first().map(|kv| kv.key.as_slice());
                match recipe::turn(newest_older, r.revision) {
                    Turn::Holds => Then::Ask(Step::Confirm),
                    Turn::WaitForDelete { key, after } => {
                        Then::Ask(Step::WaitDelete { key, after })
                    }
                }
            }
            Step::WaitDelete { key, after } => match &answer {
                Answer::Read(Ok((Ok(KvReadResponse::Watch(w)), _))) => {
                    if w.compacted || !w.events.is_empty() {
                        Then::Ask(Step::ReadOlder)
                    } else {
                        Then::Ask(Step::WaitDelete {
                            key: key.clone(),
                            after: w.through.max(*after),
                        })
                    }
                }
                _ => self.abandon(history, &p.step),
            },
            Step::Confirm => {
                let Some(r) = range_ok(&answer) else {
                    return self.abandon(history, &p.step);
                };
                let found = r.kvs.first().map(|kv| kv.create_revision);
                if recipe::still_created_at(found, self.rev) {
                    self.acquire(now, lease_margin_div, history)
                } else {
                    history.expired_waiting += 1;
                    Then::SessionOver
                }
            }
            Step::Release => {
                self.hold = None;
                if write_ok(&answer).is_some() {
                    history.released += 1;
                    Then::SessionOver
                } else {
                    self.abandon(history, &p.step)
                }
            }
            Step::Revoke => {
                self.lease = 0;
                Then::SessionOver
            }
            Step::Observe => {
                if let Some(r) = range_ok(&answer) {
                    if history.observations.len() < OBSERVATIONS_MAX {
                        history.observations.push(Observation {
                            name: self.name.clone(),
                            invoke: p.invoke,
                            complete: now,
                            oldest: r.kvs.first().map(|kv| kv.create_revision),
                        });
                    }
                }
                Then::SessionOver
            }
        }
    }

    fn acquire(&mut self, now: u64, lease_margin_div: u64, history: &mut LockHistory) -> Then {
        let ttl_us = self.ttl_secs as u64 * 1_000_000;
        // `lease_margin_div` 0: no margin.
        let margin = ttl_us.checked_div(lease_margin_div).unwrap_or(0);
        let earliest_expiry = self.lease_invoke + ttl_us - margin;
        if history.holds.len() < HOLDS_MAX {
            self.hold = Some(history.holds.len());
            history.holds.push(Hold {
                locker: self.index,
                name: self.name.clone(),
                rev: self.rev,
                acquired: now,
                release_invoke: None,
                earliest_expiry,
            });
        }
        Then::Acquired
    }

    /// The client gives up its session (an answer lost or refused): it revokes its lease, if
    /// it may have one, once; its key (if any) goes with it, or with its expiry.
    pub fn abandon(&mut self, history: &mut LockHistory, step: &Step) -> Then {
        history.abandoned += 1;
        self.hold = None;
        if self.lease != 0 && *step != Step::Revoke {
            Then::Ask(Step::Revoke)
        } else {
            Then::SessionOver
        }
    }

    /// The session is over (or the client crashed and forgot it): nothing of it is revoked
    /// or released later; its key goes with its lease if it is still there.
    pub fn end_session(&mut self) {
        self.lease = 0;
        self.hold = None;
        self.next = None;
    }

    /// Whether this session's lease outlives any run.
    pub fn long_session(&self) -> bool {
        self.ttl_secs == LOCK_LEASE_TTL_LONG_SECS
    }
}

impl LockHistory {
    /// Checks the holds and observations (see the module doc).
    pub fn check(&self, now: u64, checks: &mut Checks) {
        let mut by_name: std::collections::BTreeMap<&str, Vec<&Hold>> = Default::default();
        for h in self.holds.iter().filter(|h| h.acquired < h.end()) {
            by_name.entry(h.name.as_str()).or_default().push(h);
        }
        for (name, mut holds) in by_name {
            holds.sort_by_key(|h| (h.acquired, h.rev));
            for pair in holds.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                if b.acquired < a.end() {
                    let detail = format!(
                        "{name}: l{} held (revision {}) from {} to {}, l{} acquired (revision {}) at {}",
                        a.locker, a.rev, a.acquired, a.end(), b.locker, b.rev, b.acquired
                    );
                    checks.violation(MemberCheck::Lock, now, None, detail);
                }
                if b.rev <= a.rev {
                    let detail = format!(
                        "{name}: fencing revision {} (l{}, acquired at {}) after {} (l{}, acquired at {})",
                        b.rev, b.locker, b.acquired, a.rev, a.locker, a.acquired
                    );
                    checks.violation(MemberCheck::Lock, now, None, detail);
                }
            }
        }
        let mut observed: Vec<&Observation> = self.observations.iter().collect();
        observed.sort_by_key(|o| (o.complete, o.invoke));
        for o in &observed {
            for p in observed
                .iter()
                .filter(|p| p.name == o.name && p.complete < o.invoke)
            {
                if let (Some(before), Some(after)) = (p.oldest, o.oldest) {
                    if after < before {
                        let detail = format!(
                            "{}: observed leader revision {after} (from {}) after {before} (answered at {})",
                            o.name, o.invoke, p.complete
                        );
                        checks.violation(MemberCheck::Election, now, None, detail);
                    }
                }
            }
            let inside = self
                .holds
                .iter()
                .filter(|h| h.name == o.name && h.acquired < o.invoke && o.complete < h.end());
            for h in inside {
                if o.oldest != Some(h.rev) {
                    let detail = format!(
                        "{}: observed {:?} from {} to {} while l{} held revision {} from {} to {}",
                        o.name,
                        o.oldest,
                        o.invoke,
                        o.complete,
                        h.locker,
                        h.rev,
                        h.acquired,
                        h.end()
                    );
                    checks.violation(MemberCheck::Election, now, None, detail);
                }
            }
        }
    }
}

use super::{Event, MemberSimulation, Phase};
use crate::rng::{below, chance_permille, range};
use member::RequestId;

impl MemberSimulation {
    /// Lock client `l` asks its next step (starting a session, or observing, if between
    /// sessions).
    pub(super) fn locker_next(&mut self, l: usize) {
        if self.lockers[l].pending.is_some() {
            return;
        }
        let step = match self.lockers[l].next.take() {
            Some(step) => step,
            // Between sessions: none once the run drains.
            None if matches!(self.phase, Phase::Drain | Phase::Done) => return,
            None if chance_permille(&mut self.rng, 300) => Step::Observe,
            None => {
                let long = chance_permille(&mut self.rng, 300);
                self.lockers[l].start_session(long);
                match self.lockers[l].next.take() {
                    Some(step) => step,
                    None => return,
                }
            }
        };
        if step == Step::Release {
            if let Some(h) = self.lockers[l].hold {
                self.locks.holds[h].release_invoke = Some(self.now);
            }
        }
        let node = below(&mut self.rng, self.config.places() as u64) as usize;
        let request = RequestId(self.next_request);
        self.next_request += 1;
        self.lockers[l].pending = Some(LockPending {
            step,
            node,
            request,
            inc: 0,
            invoke: self.now,
        });
        let delay = range(&mut self.rng, 100, 1_000);
        self.schedule(self.now + delay, Event::LockerArrive { locker: l });
    }

    pub(super) fn locker_arrive(&mut self, l: usize) {
        let Some(p) = self.lockers[l].pending.as_ref() else {
            return;
        };
        let node = p.node;
        if self.nodes[node].run.is_none() {
            // Refused at connect.
            self.locker_lost(l);
            return;
        }
        let request = self.lockers[l].request(&p.step);
        let id = p.request;
        let inc = self.nodes[node].inc;
        if let Some(p) = self.lockers[l].pending.as_mut() {
            p.inc = inc;
        }
        self.trace_line(|| format!("l{l} asks m{}: {request:?}", node + 1));
        self.lock_waiting.insert((node, id), l);
        let now = self.clocks.local(node, self.now);
        if let Some(run) = self.nodes[node].run.as_mut() {
            run.member.on_request(now, id, request);
        }
        self.drive(node);
    }

    pub(super) fn locker_answered(&mut self, l: usize, answer: member::Answer) {
        let Some(p) = self.lockers[l].pending.take() else {
            return;
        };
        // With leader leases on, a member's clock may run fast: its lease expiry too.
        let margin_div = if self.config.leases.is_some() { 2 } else { 0 };
        let then = self.lockers[l].answered(&p, answer, self.now, margin_div, &mut self.locks);
        self.locker_then(l, then);
    }

    /// The member lock client `l` waited on is gone: it gives up its session.
    pub(super) fn locker_lost(&mut self, l: usize) {
        let Some(p) = self.lockers[l].pending.take() else {
            return;
        };
        let then = self.lockers[l].abandon(&mut self.locks, &p.step);
        self.locker_then(l, then);
    }

    fn locker_then(&mut self, l: usize, then: Then) {
        let pause = match then {
            Then::Ask(step) => {
                // A wait for a deletion not applied yet polls again a little later (the
                // node waits for the member's next applied batch instead).
                let pause = if matches!(step, Step::WaitDelete { .. }) {
                    range(&mut self.rng, 5_000, 20_000)
                } else {
                    range(&mut self.rng, 100, 2_000)
                };
                self.lockers[l].next = Some(step);
                pause
            }
            Then::Acquired => {
                let long = self.lockers[l].long_session();
                // A client with a lease longer than the run never crashes holding: its key
                // would hold the lock up for the rest of the run.
                if !long && chance_permille(&mut self.rng, 150) {
                    // The client crashes holding: its lease expires, and its key with it.
                    self.locks.crashed_holding += 1;
                    self.lockers[l].end_session();
                    range(&mut self.rng, 200_000, 1_500_000)
                } else {
                    self.lockers[l].next = Some(Step::Release);
                    if long {
                        range(&mut self.rng, 100_000, 1_000_000)
                    } else {
                        range(&mut self.rng, 1_000, 50_000)
                    }
                }
            }
            Then::SessionOver => {
                self.lockers[l].end_session();
                range(&mut self.rng, 20_000, 100_000)
            }
        };
        self.schedule(self.now + pause, Event::LockerNext { locker: l });
    }
}
