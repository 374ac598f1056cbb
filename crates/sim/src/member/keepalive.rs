//! Lease holders: clients that grant a short lease and keep it alive as etcd's clients do
//! (`LeaseKeepAlive`, to any member), sometimes pausing long enough for the leader to
//! checkpoint the lease's remaining time, and sometimes letting it run out; and the check that
//! a leader change never moves a lease's end by more than the bound ARCHITECTURE.md states
//! ("Leases"), on the simulator's true clock:
//!
//! - never revoked before `i + TTL − B`, where `i` is when the last acknowledged renewal (or
//!   the grant) was sent (the leader renewed it at or after `i`);
//! - never still there after `c + TTL + B + R + (time without a leader since c)`, where `c` is
//!   when the last renewal that may have taken effect ended (acknowledged, failed or given up),
//!   or the end of the faults if later (the bound needs a log that makes progress), and `R` the
//!   request timeout (a lost revoke proposal is made again after it);
//!
//! with `B = C + E`, `C` the checkpoint interval (drawn per seed) and `E` the longest election
//! timeout. A revoke is seen at the first check (every 20 ms) where a member that applied
//! through a slot where it held the lease no longer holds it.

use super::check::MemberCheck;
use super::{MemberSimConfig, MemberSimulation};
use crate::rng::{below, range};
use kv::{KvCommand, KvResponse, LeaseGrantRequest};
use member::{Answer, LeaseRenewed, Request, RequestId};
use paxos::Slot;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// Lease holders per run.
const HOLDERS: usize = 5;
/// Their leases' TTL, seconds (the store counts whole seconds; the shortest etcd grants).
const TTL_SECS: i64 = 1;
const TTL_US: u64 = 1_000_000;
/// Lease ids of holders start here, far from the checked clients' (`LEASE_GROUP_STRIDE`).
const ID_BASE: i64 = 0x5eed_0000_0000;
/// A request unanswered this long is given up (its member crashed, or the answer was lost).
const GIVE_UP_US: u64 = 1_500_000;

impl MemberSimConfig {
    /// The leader checkpoints a lease that went this long unrenewed: 50, 150 or 400 ms, by
    /// the seed (all below the holders' TTL, so checkpoints happen).
    pub(crate) fn lease_checkpoint_us(&self) -> u64 {
        [100_000, 250_000, 500_000][(self.seed % 3) as usize]
    }

    /// The longest election timeout: timeout plus jitter (see `replica_options`).
    pub(crate) fn election_timeout_us(&self) -> u64 {
        let o = self.replica_options();
        u64::from(o.election_timeout_ticks + o.election_jitter_ticks) * self.tick_us
    }

    /// The bound `B` on how far a leader change moves a lease's end (module doc).
    pub(crate) fn lease_bound_us(&self) -> u64 {
        self.lease_checkpoint_us() + self.election_timeout_us()
    }
}

/// One lease a holder had, watched until it is seen revoked.
#[derive(Clone, Debug)]
struct Held {
    id: i64,
    /// When the last acknowledged renewal (or the grant) was sent.
    acked_invoke: u64,
    /// When the last renewal that may have taken effect ended, and the time without a leader
    /// up to then.
    late_ref: u64,
    late_ref_leaderless: u64,
    /// The lowest applied slot at which a member was seen holding it.
    seen_slot: Option<Slot>,
    /// Reported late already (once per lease).
    late_reported: bool,
}

#[derive(Clone, Copy, Debug)]
enum Asked {
    Grant,
    Renew,
}

#[derive(Clone, Copy, Debug)]
struct Waiting {
    node: usize,
    request: RequestId,
    asked: Asked,
    id: i64,
    invoke: u64,
}

#[derive(Debug, Default)]
struct Holder {
    /// The lease it keeps alive now (also in `watched`).
    current: Option<i64>,
    waiting: Option<Waiting>,
    next_at: u64,
    grants: i64,
}

/// The holders and the leases under watch.
pub(crate) struct KeepAlives {
    rng: ChaCha8Rng,
    holders: Vec<Holder>,
    /// (member, request) → holder.
    pub(super) asks: BTreeMap<(usize, RequestId), usize>,
    watched: BTreeMap<i64, Held>,
    /// Total time no member led, as of the last check, and that check's time.
    leaderless_us: u64,
    last_check: u64,
    /// Members that led at the last check, and their terms (traced when it changes).
    leaders_seen: Vec<(u64, u64)>,
    /// Figures: renewals acknowledged, revokes seen, and the closest a revoke came to the
    /// early bound (µs of margin left; negative is a violation).
    pub renewals: u64,
    pub revokes: u64,
    pub early_margin_min_us: Option<i64>,
}

impl KeepAlives {
    pub(crate) fn new(seed: u64) -> KeepAlives {
        KeepAlives {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6b65_6570_616c_6976),
            holders: (0..HOLDERS).map(|_| Holder::default()).collect(),
            asks: BTreeMap::new(),
            watched: BTreeMap::new(),
            leaderless_us: 0,
            last_check: 0,
            leaders_seen: Vec::new(),
            renewals: 0,
            revokes: 0,
            early_margin_min_us: None,
        }
    }
}

/// When lease `held` must be gone by: `slack` after its TTL from the later of its last
/// renewal and the end of the faults, plus the time without a leader since, plus two checks.
fn late_limit(held: &Held, quiet_at: u64, slack: u64, leaderless: u64) -> u64 {
    held.late_ref.max(quiet_at) + TTL_US + slack + (leaderless - held.late_ref_leaderless) + 40_000
}

impl MemberSimulation {
    /// Every check: the time without a leader, revokes seen (and checked), and each holder's
    /// next request. Holders stop asking once the run drains.
    pub(super) fn tend_keepalives(&mut self, asking: bool) {
        let now = self.now;
        let leaders: Vec<(u64, u64)> = self
            .nodes
            .iter()
            .filter_map(|n| {
                let status = n.run.as_ref()?.member.status();
                (status.leader == n.id).then_some((n.id, status.term))
            })
            .collect();
        let leading = !leaders.is_empty();
        if self.config.trace && leaders != self.keepalive.leaders_seen {
            self.trace_line(|| format!("leading (member, term): {leaders:?}"));
            self.keepalive.leaders_seen = leaders;
        }
        let ka = &mut self.keepalive;
        if !leading {
            ka.leaderless_us += now.saturating_sub(ka.last_check);
        }
        ka.last_check = now;
        self.observe_revokes();
        for h in 0..HOLDERS {
            let holder = &self.keepalive.holders[h];
            if let Some(w) = holder.waiting {
                if now >= w.invoke + GIVE_UP_US {
                    self.keepalive.asks.remove(&(w.node, w.request));
                    self.keepalive_ended(h, w, None);
                }
                continue;
            }
            if asking && now >= holder.next_at {
                self.keepalive_ask(h);
            }
        }
    }

    fn keepalive_ask(&mut self, h: usize) {
        let places = self.config.places() as u64;
        let ka = &mut self.keepalive;
        let node = below(&mut ka.rng, places) as usize;
        let holder = &mut ka.holders[h];
        let (asked, id, request) = match holder.current {
            Some(id) => (Asked::Renew, id, Request::LeaseKeepAlive { id }),
            None => {
                holder.grants += 1;
                let id = ID_BASE + (h as i64) * 1_000_000 + holder.grants;
                let grant = KvCommand::LeaseGrant(LeaseGrantRequest { id, ttl: TTL_SECS });
                let request = Request::Write {
                    payload: kv::encode(&grant),
                    grows: true,
                };
                (Asked::Grant, id, request)
            }
        };
        if let Some(until) = self.clocks.paused(node, self.now) {
            // A paused process takes no request (as a client's waits, clocks.rs): ask again
            // once it runs.
            self.keepalive.holders[h].next_at = until + 1;
            return;
        }
        // The place's own clock, as every input carries (true time would move a member on a
        // slow clock ahead, then hold it still: its leader lease would outlast the grants).
        let now = self.clocks.local(node, self.now);
        let Some(run) = self.nodes[node].run.as_mut() else {
            // Refused at connect: no effect; try again shortly.
            self.keepalive.holders[h].next_at = self.now + 20_000;
            return;
        };
        let rid = RequestId(self.next_request);
        self.next_request += 1;
        let w = Waiting {
            node,
            request: rid,
            asked,
            id,
            invoke: self.now,
        };
        self.keepalive.holders[h].waiting = Some(w);
        self.keepalive.asks.insert((node, rid), h);
        run.member.on_request(now, rid, request);
        self.drive(node);
        self.trace_line(|| format!("holder {h} asks m{} {asked:?} lease {id:x}", node + 1));
    }

    /// Holder `h`'s request was answered (`Some`) or given up (`None`).
    pub(super) fn keepalive_answered(&mut self, h: usize, answer: Answer) {
        let Some(w) = self.keepalive.holders[h].waiting else {
            return;
        };
        self.keepalive_ended(h, w, Some(answer));
    }

    fn keepalive_ended(&mut self, h: usize, w: Waiting, answer: Option<Answer>) {
        self.trace_line(|| {
            format!(
                "holder {h} {:?} lease {:x} (asked m{} at {}) answered {answer:?}",
                w.asked,
                w.id,
                w.node + 1,
                w.invoke
            )
        });
        let now = self.now;
        let leaderless = self.keepalive.leaderless_us;
        let ka = &mut self.keepalive;
        ka.holders[h].waiting = None;
        let kind = match w.asked {
            Asked::Grant => "lease-grant-kept-alive",
            Asked::Renew => "lease-keep-alive",
        };
        let tally = self.tally.ops_by_kind.entry(kind).or_insert((0, 0, 0));
        // Whether it took effect: yes, no, or maybe.
        let effect = match (&w.asked, answer) {
            (Asked::Grant, Some(Answer::Write(Ok((Ok(KvResponse::LeaseGrant(_)), _))))) => {
                Some(true)
            }
            (Asked::Grant, Some(Answer::Write(Ok(_)))) => Some(false),
            (Asked::Renew, Some(Answer::LeaseKeepAlive(Ok(LeaseRenewed { ttl: Some(_), .. })))) => {
                Some(true)
            }
            (Asked::Renew, Some(Answer::LeaseKeepAlive(Ok(LeaseRenewed { ttl: None, .. })))) => {
                Some(false)
            }
            _ => None,
        };
        match effect {
            Some(_) => tally.0 += 1,
            None => tally.2 += 1,
        }
        let holder = &mut ka.holders[h];
        match (w.asked, effect) {
            (Asked::Grant, Some(true)) => {
                holder.current = Some(w.id);
                ka.watched.insert(
                    w.id,
                    Held {
                        id: w.id,
                        acked_invoke: w.invoke,
                        late_ref: now,
                        late_ref_leaderless: leaderless,
                        seen_slot: None,
                        late_reported: false,
                    },
                );
            }
            // A grant that may have happened is not watched: nobody knows when it began.
            (Asked::Grant, _) => {}
            (Asked::Renew, Some(true)) => {
                ka.renewals += 1;
                if let Some(held) = ka.watched.get_mut(&w.id) {
                    held.acked_invoke = held.acked_invoke.max(w.invoke);
                    held.late_ref = now;
                    held.late_ref_leaderless = leaderless;
                }
            }
            // The leader says it is gone: grant another.
            (Asked::Renew, Some(false)) => holder.current = None,
            (Asked::Renew, None) => {
                if let Some(held) = ka.watched.get_mut(&w.id) {
                    held.late_ref = now;
                    held.late_ref_leaderless = leaderless;
                }
            }
        }
        // The next request: a renewal every 5–30 % of the TTL mostly; now and then a pause of
        // 30–90 % (long enough for checkpoints), and now and then let the lease go.
        let roll = below(&mut ka.rng, 100);
        let wait = match roll {
            0..=79 => range(&mut ka.rng, TTL_US / 20, TTL_US * 3 / 10),
            80..=94 => range(&mut ka.rng, TTL_US * 3 / 10, TTL_US * 9 / 10),
            _ => {
                holder.current = None;
                range(&mut ka.rng, 0, TTL_US / 10)
            }
        };
        holder.next_at = now + wait;
    }

    /// Marks leases seen revoked and checks them against the bound; reports leases kept too
    /// long.
    fn observe_revokes(&mut self) {
        let now = self.now;
        let bound = self.config.lease_bound_us();
        let retry = 1_000_000; // the request timeout (member_options)
        let leaderless = self.keepalive.leaderless_us;
        // The late bound holds while the log makes progress (checkpoints chosen within an
        // interval, a lost revoke made again): it is checked from the end of the faults on.
        let quiet_at = self.quiet_at;
        let checking_late = self.phase != super::Phase::Faults;
        let mut revoked = Vec::new();
        for held in self.keepalive.watched.values_mut() {
            for node in &self.nodes {
                let Some(run) = node.run.as_ref() else {
                    continue;
                };
                let applier = run.member.applier();
                let slot = applier.applied_through();
                if applier.machine().lease_checkpoint(held.id).is_some() {
                    held.seen_slot = Some(held.seen_slot.map_or(slot, |s| s.min(slot)));
                } else if held.seen_slot.is_some_and(|s| slot >= s) {
                    revoked.push(held.id);
                    break;
                }
            }
        }
        for id in revoked {
            let Some(held) = self.keepalive.watched.remove(&id) else {
                continue;
            };
            self.trace_line(|| format!("lease {id:x} seen revoked"));
            self.keepalive.revokes += 1;
            for h in self.keepalive.holders.iter_mut() {
                if h.current == Some(id) {
                    h.current = None;
                }
            }
            let earliest = held.acked_invoke + TTL_US;
            let margin = now as i64 - (earliest as i64 - bound as i64);
            let m = &mut self.keepalive.early_margin_min_us;
            *m = Some(m.map_or(margin, |x| x.min(margin)));
            if margin < 0 {
                let detail = format!(
                    "lease {id:x} revoked at {now} us, {} us before its renewal sent at {} us could run out (TTL {TTL_US} us, bound {bound} us)",
                    earliest - now,
                    held.acked_invoke
                );
                self.checks.violation(MemberCheck::Lease, now, None, detail);
            }
            let latest = late_limit(&held, quiet_at, bound + retry, leaderless);
            if checking_late && now > latest && !held.late_reported {
                self.lease_kept_too_long(&held, now, latest);
            }
        }
        let late: Vec<(Held, u64)> = self
            .keepalive
            .watched
            .values_mut()
            .filter(|h| !h.late_reported)
            .filter_map(|h| {
                let latest = late_limit(h, quiet_at, bound + retry, leaderless);
                (checking_late && now > latest).then(|| {
                    h.late_reported = true;
                    (h.clone(), latest)
                })
            })
            .collect();
        for (held, latest) in late {
            self.lease_kept_too_long(&held, now, latest);
        }
    }

    fn lease_kept_too_long(&mut self, held: &Held, now: u64, latest: u64) {
        let detail = format!(
            "lease {:x} still held at {now} us, past {latest} us (its last renewal ended at {} us, TTL {TTL_US} us)",
            held.id, held.late_ref
        );
        self.checks.violation(MemberCheck::Lease, now, None, detail);
    }
}
