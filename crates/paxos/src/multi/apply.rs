//! Applying chosen slots to a state machine in slot order, exactly once per command.
//!
//! A client may retry a command (same [`CommandId`]) at another replica after a leader change,
//! so the same command can be chosen in two slots. The session table, itself part of the
//! replicated state, makes the second one a no-op answered with the first one's output.

use super::types::{ChosenEntry, ClientId, CommandId, Membership, Value};
use crate::ids::Slot;
use std::collections::BTreeMap;

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
}

impl<S: StateMachine> Applier<S> {
    /// Wraps a state machine that has applied nothing.
    pub fn new(machine: S) -> Self {
        Applier {
            machine,
            sessions: BTreeMap::new(),
            applied_through: Slot::ZERO,
            membership: None,
        }
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
            return;
        }
        let Value::Batch(commands) = &entry.value else {
            return;
        };
        for command in commands {
            let id = command.id;
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
            payload: vec![add],
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
