//! The learner: which slots are chosen, handing them out in slot order, and catching up from
//! peers when the chosen prefix announced by a leader runs past what this replica holds.

use super::*;

impl Replica {
    /// Records that `value` is chosen in `slot`.
    pub(super) fn learn_chosen(&mut self, slot: Slot, ballot: Ballot, value: Value) {
        if slot <= self.compacted_through {
            return;
        }
        if let Some(e) = self.log.get(&slot) {
            if e.chosen {
                // Agreement: a slot has one chosen value. With a planted bug this may break, and
                // it is the simulator's oracle, not this assertion, that must report it.
                assert!(
                    e.value == value || self.bugs.any(),
                    "two values chosen in {slot}: {:?} and {value:?}",
                    e.value
                );
                return;
            }
            if e.value == value {
                // Our own accepted value: the chosen mark needs no write, it can be relearned.
                self.log.insert(
                    slot,
                    LogEntry {
                        ballot: e.ballot,
                        value,
                        chosen: true,
                    },
                );
                return;
            }
        }
        self.outbox.record(PersistOp::Chosen {
            slot,
            ballot,
            value: value.clone(),
        });
        self.log.insert(
            slot,
            LogEntry {
                ballot,
                value,
                chosen: true,
            },
        );
    }

    /// Extends the contiguous chosen prefix as far as the log allows.
    pub(super) fn advance_chosen_through(&mut self) {
        let mut next = self.chosen_through.next();
        while self.log.get(&next).is_some_and(|e| e.chosen) {
            self.chosen_through = next;
            next = next.next();
        }
    }

    /// A leader at `ballot` says every slot through `chosen_through` is chosen. Our entries
    /// accepted at that same ballot hold the value it chose (a leader proposes one value per
    /// slot per ballot); anything else we must fetch.
    pub(super) fn learn_chosen_through(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        chosen_through: Slot,
    ) {
        let mut slot = self.chosen_through.next();
        while slot <= chosen_through {
            match self.log.get_mut(&slot) {
                Some(e) if e.chosen => {}
                Some(e) if e.ballot == ballot => e.chosen = true,
                _ => break,
            }
            slot = slot.next();
        }
        self.advance_chosen_through();
        if self.chosen_through < chosen_through {
            let due = self.catch_up_asked_ticks.is_none_or(|t| {
                self.now_ticks.saturating_sub(t)
                    >= u64::from(self.options.election_timeout_ticks / 2).max(1)
            });
            if due {
                self.ask_catch_up(from);
            }
        }
    }

    pub(super) fn ask_catch_up(&mut self, from: NodeId) {
        self.catch_up_asked_ticks = Some(self.now_ticks);
        let msg = Message::CatchUp {
            from_slot: self.chosen_through.next(),
        };
        self.outbox.send(from, msg, 0);
    }

    /// Serves one page of chosen slots from `from_slot` on.
    pub(super) fn on_catch_up(&mut self, from: NodeId, from_slot: Slot) {
        let page_max = self.options.page_records_max.max(1);
        // Below the compacted prefix there is nothing to send: the answer's compacted_through
        // tells the asker to fetch the snapshot instead.
        let records: Vec<SlotRecord> = if from_slot <= self.compacted_through {
            Vec::new()
        } else {
            self.log
                .range(from_slot..)
                .take_while(|(_, e)| e.chosen)
                .take(page_max)
                .map(|(slot, e)| SlotRecord {
                    slot: *slot,
                    ballot: e.ballot,
                    value: e.value.clone(),
                    chosen: true,
                })
                .collect()
        };
        let msg = Message::Learn {
            records,
            chosen_through: self.chosen_through,
            compacted_through: self.compacted_through,
        };
        self.outbox.send(from, msg, 0);
    }

    /// A page of chosen slots; asks for the next at once while progress is being made.
    pub(super) fn on_learn(
        &mut self,
        from: NodeId,
        records: Vec<SlotRecord>,
        chosen_through: Slot,
        compacted_through: Slot,
    ) {
        let before = self.chosen_through;
        // Only values that extend the chosen prefix: a page that arrives out of order is
        // asked for again. This keeps every chosen mark this replica holds beyond its prefix
        // one that its own epoch decided (its leader counted a quorum, or a peer in the same
        // epoch reported it in phase 1): a value learned past a hole could belong to a later
        // epoch, and phase 1 would then weigh it as a vote of this one (reconfig.rs).
        for r in records {
            if r.slot <= self.chosen_through {
                continue;
            }
            if r.slot != self.chosen_through.next() {
                break;
            }
            self.learn_chosen(r.slot, r.ballot, r.value);
            self.advance_chosen_through();
        }
        self.advance_chosen_through();
        if self.chosen_through < compacted_through {
            // Those slots are decided; a leader stops counting them as in flight.
            self.peer_compacted = self.peer_compacted.max(compacted_through);
            self.want_snapshot(SnapshotWanted {
                from,
                through: compacted_through,
            });
            return;
        }
        if self.chosen_through < chosen_through {
            // Progress: the next page at once. None (a pointer such as a peer's answer to a
            // stale epoch's message): ask, at most every half election timeout.
            let due = self.chosen_through > before
                || self.catch_up_asked_ticks.is_none_or(|t| {
                    self.now_ticks.saturating_sub(t)
                        >= u64::from(self.options.election_timeout_ticks / 2).max(1)
                });
            if due {
                self.ask_catch_up(from);
            }
        }
    }

    /// Notes that `wanted.from` holds a snapshot this replica needs. A request for a further
    /// slot is handed out at once; one as good from another peer replaces the source for the
    /// next repetition (the latest informant was just heard from, the old source may be down
    /// for good), keeping the schedule (see `snapshot_due`).
    pub(super) fn want_snapshot(&mut self, wanted: SnapshotWanted) {
        match self.snapshot_wanted {
            Some(w) if w.through > wanted.through => {}
            Some(w) if w.through == wanted.through => self.snapshot_wanted = Some(wanted),
            _ => {
                self.snapshot_wanted = Some(wanted);
                self.snapshot_asked_ticks = None;
            }
        }
    }

    /// Newly chosen slots not yet handed out, in slot order.
    pub(super) fn hand_out_chosen(&mut self) -> Vec<ChosenEntry> {
        let mut out = Vec::new();
        while self.handed_out_through < self.chosen_through {
            let slot = self.handed_out_through.next();
            let Some(e) = self.log.get(&slot) else {
                unreachable!("chosen prefix {} has a hole at {slot}", self.chosen_through)
            };
            debug_assert!(e.chosen);
            out.push(ChosenEntry {
                slot,
                value: e.value.clone(),
            });
            self.handed_out_through = slot;
        }
        out
    }
}
