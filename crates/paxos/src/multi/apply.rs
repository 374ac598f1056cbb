//! Applying chosen slots to a state machine in slot order, exactly once per command.
//!
//! A client may retry a command (same [`CommandId`]) at another replica after a leader change,
//! so the same command can be chosen in two slots. The session table, itself part of the
//! replicated state, makes the second one a no-op answered with the first one's output.
//!
//! # Retiring sessions
//!
//! A client id is an incarnation key (its bits above [`SESSION_BITS`]) and a session (the
//! low bits). A member incarnation (one start of a member's process) registers its key with
//! a registration command ([`Registration`], proposed like a write) before any of its writes
//! is proposed. The applier keeps the registrations (at most one per member: a member's new
//! registration retires its previous one, and a stop-sign retires those of members it
//! removes) and, once any registration was applied, applies only commands of registered
//! incarnations: a command of a retired or never registered incarnation is answered
//! [`SessionOutcome::Stale`] and not applied. Retiring an incarnation drops its session
//! entries, so the table holds at most [`SESSIONS_PER_INCARNATION`] entries per registered
//! incarnation, at most [`REGISTRATIONS_MAX`] of those.
//!
//! Why that keeps exactly-once apply: a command is applied only while its incarnation is
//! registered, and its session entry is dropped only when the incarnation is retired; so a
//! command applied twice would need its incarnation retired and registered again in between.
//! A registration carries `seen`, the slot its sender had applied through when it sent it,
//! and is refused unless `seen` is at least the slot of the member's current registration
//! (or, for a member without one, the latest stop-sign). Every copy of incarnation X's
//! registration (resends, delayed or duplicated messages, a value re-proposed by a new
//! leader) was sent before X saw itself registered, so its `seen` is below X's registration
//! slot, itself below the slot of whatever retired X (a later registration of the member, or
//! the stop-sign that removed it). So no copy of it is ever accepted after X is retired, and
//! a member that lost its registration registers a new key, never the old one again. A
//! command refused as Stale is refused for good (its incarnation never comes back), so a
//! client told "unknown" never sees it applied later.
//!
//! Before the first registration (a table restored from a snapshot of a build without them,
//! or drivers that never register, such as the plain simulator) every command is applied as
//! before; the first registration drops the entries of unregistered incarnations, whose
//! commands are refused from then on.

use super::types::{ChosenEntry, ClientId, Command, CommandId, Membership, Value};
use crate::ids::{NodeId, Slot};
use crate::quorum::MEMBERS_MAX;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Low bits of a client id that name the session within its incarnation.
pub const SESSION_BITS: u32 = 12;
/// Sessions one incarnation can have: its entries in the table are at most this many.
pub const SESSIONS_PER_INCARNATION: u64 = 1 << SESSION_BITS;
/// Incarnations registered at once, at most (one per member of a configuration).
pub const REGISTRATIONS_MAX: usize = MEMBERS_MAX;
/// The client id of registration commands (never a session's: its incarnation key is
/// reserved, see [`incarnation_key`]).
pub const REGISTRATION_CLIENT: ClientId = ClientId(u64::MAX);

/// The incarnation key of a client id: the bits above the session.
pub fn incarnation_key(client: ClientId) -> u64 {
    client.0 >> SESSION_BITS
}

/// A member incarnation's registration: proposed as a command of [`REGISTRATION_CLIENT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The member (its node id).
    pub member: u64,
    /// The incarnation key its client ids carry.
    pub incarnation: u64,
    /// The slot its sender had applied through when it sent this.
    pub seen: Slot,
}

impl Registration {
    /// The command that carries it.
    pub fn command(&self) -> Command {
        let mut payload = Vec::with_capacity(24);
        payload.extend_from_slice(&self.member.to_le_bytes());
        payload.extend_from_slice(&self.incarnation.to_le_bytes());
        payload.extend_from_slice(&self.seen.0.to_le_bytes());
        Command {
            id: CommandId {
                client: REGISTRATION_CLIENT,
                seq: self.seen.0,
            },
            payload: payload.into(),
        }
    }

    /// The registration a command carries, if it is a well-formed one.
    pub fn from_command(command: &Command) -> Option<Registration> {
        if command.id.client != REGISTRATION_CLIENT || command.payload.len() != 24 {
            return None;
        }
        let word = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&command.payload[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        Some(Registration {
            member: word(0),
            incarnation: word(1),
            seen: Slot(word(2)),
        })
    }
}

/// The registered incarnations: replicated state beside the session table (see the module
/// doc), carried in snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registrations {
    /// Each member's registered incarnation key and the slot it was registered in.
    pub live: BTreeMap<u64, (u64, Slot)>,
    /// A member without a registration must have seen this slot (the latest stop-sign).
    pub floor: Slot,
    /// Whether any registration was applied: from then on only registered incarnations'
    /// commands apply.
    pub strict: bool,
}

impl Registrations {
    /// Whether commands of incarnation `key` are applied.
    pub fn admits(&self, key: u64) -> bool {
        !self.strict || self.live.values().any(|(k, _)| *k == key)
    }

    /// Whether `key` is registered (to any member).
    pub fn is_live(&self, key: u64) -> bool {
        self.live.values().any(|(k, _)| *k == key)
    }
}

/// A deterministic state machine: same commands in the same order, same states and outputs.
/// It must not read clocks, randomness or anything outside its own state.
pub trait StateMachine {
    /// What applying one command returns to its client.
    type Output: Clone;
    /// Applies one command's payload, chosen in `slot`.
    fn apply(&mut self, slot: Slot, payload: &[u8]) -> Self::Output;
}

/// What became of one command at apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionOutcome<O> {
    /// Applied now, for the first time.
    Applied(O),
    /// Applied before (a retry chosen twice): the first application's output.
    Duplicate(O),
    /// Older than the client's latest applied command: the client has moved on, so its answer
    /// is gone. Not applied.
    Stale,
}

/// One command's result, for the driver to hand to whoever waits on `id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied<O> {
    /// The command.
    pub id: CommandId,
    /// The slot it was chosen in.
    pub slot: Slot,
    /// What became of it.
    pub outcome: SessionOutcome<O>,
}

/// A state machine behind a session table.
#[derive(Clone, Debug)]
pub struct Applier<S: StateMachine> {
    machine: S,
    sessions: BTreeMap<ClientId, (u64, S::Output)>,
    applied_through: Slot,
    /// The configuration the newest applied stop-sign put in force (`None`: the initial one).
    /// Replicated state like the sessions: a snapshot carries it, so a member restored from
    /// one knows who votes after it.
    membership: Option<Membership>,
    /// The registered incarnations (see the module doc).
    registrations: Registrations,
    /// Planted bug (tests and `planted-bugs` only): retired incarnations' entries are dropped
    /// but their late commands are applied, not refused.
    bug_admit_retired: bool,
}

impl<S: StateMachine> Applier<S> {
    /// Wraps a state machine that has applied nothing.
    pub fn new(machine: S) -> Self {
        Applier {
            machine,
            sessions: BTreeMap::new(),
            applied_through: Slot::ZERO,
            membership: None,
            registrations: Registrations::default(),
            bug_admit_retired: false,
        }
    }

    /// Plants the bug "retire without refusing late commands" (a retired incarnation's late
    /// copy of an applied command then applies again): for showing that a test catches it.
    #[cfg(any(test, feature = "planted-bugs"))]
    pub fn plant_admit_retired(&mut self) {
        self.bug_admit_retired = true;
    }

    /// The registered incarnations (replicated state: a snapshot carries them).
    pub fn registrations(&self) -> &Registrations {
        &self.registrations
    }

    /// Sets the registrations, as restored from a snapshot beside the sessions.
    pub fn set_registrations(&mut self, registrations: Registrations) {
        self.registrations = registrations;
    }

    /// The configuration the newest applied stop-sign put in force (`None` if no change was
    /// applied yet: the cluster's initial configuration is in force).
    pub fn membership(&self) -> Option<&Membership> {
        self.membership.as_ref()
    }

    /// Sets the configuration in force, as restored from a snapshot beside the machine.
    pub fn set_membership(&mut self, membership: Option<Membership>) {
        self.membership = membership;
    }

    /// The state machine.
    pub fn machine(&self) -> &S {
        &self.machine
    }

    /// Every slot up to here has been applied.
    pub fn applied_through(&self) -> Slot {
        self.applied_through
    }

    /// The session table: each client's latest applied sequence number and its output. Part
    /// of the replicated state: a snapshot must carry it, or a retry applied before the
    /// snapshot would be applied again after it.
    pub fn sessions(&self) -> &BTreeMap<ClientId, (u64, S::Output)> {
        &self.sessions
    }

    /// An applier restored from a snapshot covering every slot through `applied_through`.
    pub fn restore(
        machine: S,
        sessions: BTreeMap<ClientId, (u64, S::Output)>,
        applied_through: Slot,
    ) -> Self {
        Applier {
            machine,
            sessions,
            applied_through,
            membership: None,
            registrations: Registrations::default(),
            bug_admit_retired: false,
        }
    }

    /// Applies one chosen slot; slots must come in order, each once.
    ///
    /// # Panics
    /// If `entry` is not the next slot: applying out of order would diverge replicas.
    pub fn apply(&mut self, entry: &ChosenEntry, out: &mut Vec<Applied<S::Output>>) {
        assert_eq!(
            entry.slot,
            self.applied_through.next(),
            "slots must be applied in order without gaps"
        );
        self.applied_through = entry.slot;
        if let Value::StopSign(next) = &entry.value {
            let epoch = self.membership.as_ref().map_or(0, |m| m.epoch) + 1;
            self.membership = Some(Membership {
                epoch,
                first_slot: entry.slot.next(),
                config: next.clone(),
            });
            // Members the new configuration leaves out are retired; a member without a
            // registration must have seen this stop-sign to register.
            let gone: Vec<u64> = self
                .registrations
                .live
                .keys()
                .copied()
                .filter(|m| !next.contains(NodeId(*m)))
                .collect();
            for member in gone {
                if let Some((key, _)) = self.registrations.live.remove(&member) {
                    self.drop_sessions_of(key);
                }
            }
            self.registrations.floor = entry.slot;
            return;
        }
        let Value::Batch(commands) = &entry.value else {
            return;
        };
        for command in commands {
            let id = command.id;
            if id.client == REGISTRATION_CLIENT {
                // Answers nobody: its sender watches `registrations`. A malformed one (no
                // member proposes it) changes nothing.
                if let Some(r) = Registration::from_command(command) {
                    self.register(r, entry.slot);
                }
                continue;
            }
            if !self.registrations.admits(incarnation_key(id.client)) && !self.bug_admit_retired {
                out.push(Applied {
                    id,
                    slot: entry.slot,
                    outcome: SessionOutcome::Stale,
                });
                continue;
            }
            let outcome = match self.sessions.get(&id.client) {
                Some((last, output)) if id.seq == *last => {
                    SessionOutcome::Duplicate(output.clone())
                }
                Some((last, _)) if id.seq < *last => SessionOutcome::Stale,
                _ => {
                    let output = self.machine.apply(entry.slot, &command.payload);
                    self.sessions.insert(id.client, (id.seq, output.clone()));
                    SessionOutcome::Applied(output)
                }
            };
            out.push(Applied {
                id,
                slot: entry.slot,
                outcome,
            });
        }
        if self.registrations.strict {
            assert!(
                self.registrations.live.len() <= REGISTRATIONS_MAX
                    && self.sessions.len() as u64
                        <= self.registrations.live.len() as u64 * SESSIONS_PER_INCARNATION,
                "the session table outgrew its registered incarnations"
            );
        }
    }

    /// Applies a registration chosen in `slot` (see the module doc for the rule).
    fn register(&mut self, r: Registration, slot: Slot) {
        // Keys are client ids' top bits; the top one is reserved.
        if r.incarnation >= incarnation_key(REGISTRATION_CLIENT) {
            return;
        }
        if let Some(m) = &self.membership {
            if !m.config.contains(NodeId(r.member)) {
                return;
            }
        }
        let regs = &mut self.registrations;
        let retired = match regs.live.get(&r.member) {
            Some((key, _)) if *key == r.incarnation => return,
            Some((_, since)) if r.seen < *since => return,
            Some((key, _)) => Some(*key),
            None if r.seen < regs.floor || regs.live.len() >= REGISTRATIONS_MAX => return,
            None => None,
        };
        // Another member's key (a collision of random keys): refused, not shared.
        if regs
            .live
            .iter()
            .any(|(m, (k, _))| *m != r.member && *k == r.incarnation)
        {
            return;
        }
        regs.live.insert(r.member, (r.incarnation, slot));
        if let Some(key) = retired {
            self.drop_sessions_of(key);
        }
        if !self.registrations.strict {
            // From here on only registered incarnations apply: the entries of every other
            // (incarnations of a build without registrations) can no longer be used.
            self.registrations.strict = true;
            let regs = &self.registrations;
            self.sessions
                .retain(|client, _| regs.is_live(incarnation_key(*client)));
        }
    }

    /// Drops the session entries of incarnation `key` (just retired).
    fn drop_sessions_of(&mut self, key: u64) {
        let from = ClientId(key << SESSION_BITS);
        let to = ClientId((key << SESSION_BITS) | (SESSIONS_PER_INCARNATION - 1));
        let gone: Vec<ClientId> = self.sessions.range(from..=to).map(|(c, _)| *c).collect();
        for c in gone {
            self.sessions.remove(&c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::multi::types::Command;

    #[derive(Default)]
    struct Counter(u64);
    impl StateMachine for Counter {
        type Output = u64;
        fn apply(&mut self, _slot: Slot, payload: &[u8]) -> u64 {
            self.0 += u64::from(payload[0]);
            self.0
        }
    }

    fn cmd(client: u64, seq: u64, add: u8) -> Command {
        Command {
            id: CommandId {
                client: ClientId(client),
                seq,
            },
            payload: vec![add].into(),
        }
    }

    #[test]
    fn a_retry_chosen_twice_applies_once() {
        let mut a = Applier::new(Counter::default());
        let mut out = Vec::new();
        let e1 = ChosenEntry {
            slot: Slot(1),
            value: Value::Batch(vec![cmd(7, 1, 5)]),
        };
        let e2 = ChosenEntry {
            slot: Slot(2),
            value: Value::Batch(vec![cmd(7, 1, 5), cmd(8, 1, 1)]),
        };
        let e3 = ChosenEntry {
            slot: Slot(3),
            value: Value::Batch(vec![cmd(7, 2, 1), cmd(7, 1, 5)]),
        };
        a.apply(&e1, &mut out);
        a.apply(&e2, &mut out);
        a.apply(&e3, &mut out);
        assert_eq!(a.machine().0, 7, "5 once, then 1, then 1");
        let outcomes: Vec<_> = out.iter().map(|x| x.outcome.clone()).collect();
        assert_eq!(
            outcomes,
            vec![
                SessionOutcome::Applied(5),
                SessionOutcome::Duplicate(5),
                SessionOutcome::Applied(6),
                SessionOutcome::Applied(7),
                SessionOutcome::Stale,
            ]
        );
    }

    fn key_cmd(key: u64, session: u64, seq: u64, add: u8) -> Command {
        cmd((key << SESSION_BITS) | session, seq, add)
    }

    fn reg(member: u64, key: u64, seen: u64) -> Command {
        Registration {
            member,
            incarnation: key,
            seen: Slot(seen),
        }
        .command()
    }

    /// Applies each batch in the next slot; returns the outcomes.
    fn run(a: &mut Applier<Counter>, batches: Vec<Vec<Command>>) -> Vec<SessionOutcome<u64>> {
        let mut out = Vec::new();
        for batch in batches {
            let slot = a.applied_through().next();
            a.apply(
                &ChosenEntry {
                    slot,
                    value: Value::Batch(batch),
                },
                &mut out,
            );
        }
        out.into_iter().map(|x| x.outcome).collect()
    }

    #[test]
    fn a_new_incarnation_retires_the_old_ones_entries() {
        let mut a = Applier::new(Counter::default());
        run(
            &mut a,
            vec![
                vec![reg(1, 10, 0), reg(2, 20, 0)],
                vec![
                    key_cmd(10, 0, 1, 1),
                    key_cmd(10, 1, 1, 1),
                    key_cmd(20, 0, 1, 1),
                ],
            ],
        );
        assert_eq!(a.sessions().len(), 3);
        // Member 1 restarts as key 11, having applied through slot 2.
        run(&mut a, vec![vec![reg(1, 11, 2)]]);
        assert_eq!(
            a.sessions()
                .keys()
                .map(|c| incarnation_key(*c))
                .collect::<Vec<_>>(),
            vec![20],
            "key 10's entries are gone, member 2's stay"
        );
        assert_eq!(a.registrations().live.get(&1), Some(&(11, Slot(3))));
    }

    #[test]
    fn a_retired_incarnations_late_commands_are_stale_and_not_applied() {
        let mut a = Applier::new(Counter::default());
        let outcomes = run(
            &mut a,
            vec![
                vec![reg(1, 10, 0)],
                vec![key_cmd(10, 0, 1, 5)],
                vec![reg(1, 11, 2)],
                // A copy of the applied command (re-proposed by a new leader) and one never
                // applied, both of the dead incarnation.
                vec![key_cmd(10, 0, 1, 5), key_cmd(10, 1, 1, 7)],
                // A late copy of the dead incarnation's registration is refused...
                vec![reg(1, 10, 0)],
                // ...so its commands stay refused.
                vec![key_cmd(10, 0, 1, 5)],
            ],
        );
        assert_eq!(
            a.machine().0,
            5,
            "the first command applied once, nothing after"
        );
        assert_eq!(
            outcomes,
            vec![
                SessionOutcome::Applied(5),
                SessionOutcome::Stale,
                SessionOutcome::Stale,
                SessionOutcome::Stale,
            ]
        );
        assert_eq!(a.registrations().live.get(&1), Some(&(11, Slot(3))));
    }

    /// The check: a command of an incarnation retired after it applied, chosen again later
    /// (re-proposed by a new leader), must not apply again.
    fn late_copy_applies_at_most_once(a: &mut Applier<Counter>) -> Result<(), String> {
        run(
            a,
            vec![
                vec![reg(1, 10, 0)],
                vec![key_cmd(10, 0, 1, 5)],
                vec![reg(1, 11, 2)],
                vec![key_cmd(10, 0, 1, 5)],
            ],
        );
        match a.machine().0 {
            5 => Ok(()),
            n => Err(format!("the command applied twice: counter {n}")),
        }
    }

    #[test]
    fn the_late_copy_check_catches_retiring_without_refusing() {
        let mut a = Applier::new(Counter::default());
        assert_eq!(late_copy_applies_at_most_once(&mut a), Ok(()));
        let mut bugged = Applier::new(Counter::default());
        bugged.plant_admit_retired();
        assert_eq!(
            late_copy_applies_at_most_once(&mut bugged),
            Err("the command applied twice: counter 10".to_string()),
            "with late commands let through, the dropped entry makes the copy look new"
        );
    }

    #[test]
    fn a_live_incarnation_still_deduplicates_and_unregistered_ones_are_refused() {
        let mut a = Applier::new(Counter::default());
        let outcomes = run(
            &mut a,
            vec![
                vec![reg(1, 10, 0)],
                vec![key_cmd(10, 3, 1, 2), key_cmd(10, 3, 1, 2)],
                vec![
                    key_cmd(10, 3, 2, 1),
                    key_cmd(10, 3, 1, 2),
                    key_cmd(99, 0, 1, 9),
                ],
            ],
        );
        assert_eq!(
            outcomes,
            vec![
                SessionOutcome::Applied(2),
                SessionOutcome::Duplicate(2),
                SessionOutcome::Applied(3),
                SessionOutcome::Stale,
                SessionOutcome::Stale,
            ]
        );
        assert_eq!(a.machine().0, 3);
    }

    #[test]
    fn before_any_registration_everything_applies_and_the_first_drops_old_entries() {
        let mut a = Applier::new(Counter::default());
        let outcomes = run(
            &mut a,
            vec![
                vec![cmd(7, 1, 1), cmd(7, 1, 1)],
                vec![reg(1, 10, 0)],
                vec![cmd(7, 1, 1), cmd(7, 2, 1)],
            ],
        );
        assert_eq!(
            outcomes,
            vec![
                SessionOutcome::Applied(1),
                SessionOutcome::Duplicate(1),
                SessionOutcome::Stale,
                SessionOutcome::Stale,
            ]
        );
        assert!(a.sessions().is_empty());
        assert!(a.registrations().strict);
    }

    #[test]
    fn a_stop_sign_retires_removed_members_and_raises_the_floor() {
        let mut a = Applier::new(Counter::default());
        run(
            &mut a,
            vec![
                vec![reg(1, 10, 0), reg(2, 20, 0)],
                vec![key_cmd(10, 0, 1, 1), key_cmd(20, 0, 1, 1)],
            ],
        );
        let next = crate::quorum::Configuration::majority_of(1).expect("config");
        let mut out = Vec::new();
        a.apply(
            &ChosenEntry {
                slot: Slot(3),
                value: Value::StopSign(next),
            },
            &mut out,
        );
        assert_eq!(a.registrations().live.keys().collect::<Vec<_>>(), vec![&1]);
        assert_eq!(a.sessions().len(), 1, "member 2's entry went with it");
        assert_eq!(a.registrations().floor, Slot(3));
        let outcomes = run(
            &mut a,
            vec![vec![key_cmd(20, 0, 1, 1)], vec![reg(2, 21, 3)]],
        );
        assert_eq!(outcomes, vec![SessionOutcome::Stale]);
        assert!(
            !a.registrations().live.contains_key(&2),
            "a member outside the configuration cannot register"
        );
    }

    #[test]
    fn a_restored_applier_keeps_the_registrations() {
        let mut a = Applier::new(Counter::default());
        run(
            &mut a,
            vec![
                vec![reg(1, 10, 0)],
                vec![key_cmd(10, 0, 1, 5)],
                vec![reg(1, 11, 2)],
                vec![key_cmd(11, 0, 1, 1)],
            ],
        );
        let mut b = Applier::restore(
            Counter(a.machine().0),
            a.sessions().clone(),
            a.applied_through(),
        );
        b.set_registrations(a.registrations().clone());
        let late = vec![
            vec![key_cmd(10, 0, 1, 5)],
            vec![reg(1, 10, 1)],
            vec![key_cmd(11, 0, 1, 1)],
        ];
        let from_a = run(&mut a, late.clone());
        let from_b = run(&mut b, late);
        assert_eq!(from_a, from_b);
        assert_eq!(
            from_b,
            vec![SessionOutcome::Stale, SessionOutcome::Duplicate(6)]
        );
        assert_eq!(b.machine().0, 6);
    }

    #[test]
    fn the_table_stays_bounded_over_many_restarts() {
        let mut a = Applier::new(Counter::default());
        for restart in 0..50u64 {
            let key = 100 + restart;
            let seen = a.applied_through().0;
            let batch: Vec<Command> = (0..64).map(|s| key_cmd(key, s, 1, 0)).collect();
            run(&mut a, vec![vec![reg(1, key, seen)], batch]);
            assert!(
                a.sessions().len() <= 64,
                "one incarnation's sessions at most"
            );
        }
        assert_eq!(a.registrations().live.len(), 1);
    }

    #[test]
    #[should_panic(expected = "in order")]
    fn out_of_order_apply_is_refused() {
        let mut a = Applier::new(Counter::default());
        a.apply(
            &ChosenEntry {
                slot: Slot(2),
                value: Value::Noop,
            },
            &mut Vec::new(),
        );
    }
}
