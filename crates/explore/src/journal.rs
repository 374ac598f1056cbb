//! What both worlds record as they go: the explained log, each message's life for the
//! time-space diagram, the moment each value became chosen, and failed checks.

use crate::model::{ChosenView, LineView, LogEntry, ViolationView};
use std::collections::BTreeMap;

/// Log entries and lines sent to the page: the newest ones only, so a long session stays
/// fast to draw (rewinding shows older ones again).
pub const LOG_SHOWN: usize = 400;
/// Message lines sent to the page.
pub const LINES_SHOWN: usize = 600;

/// The first quorum seen for a slot.
#[derive(Clone, Debug)]
pub struct Chosen {
    pub value: String,
    pub ballot: String,
    pub at_step: usize,
}

/// The record of a session so far.
#[derive(Clone, Debug, Default)]
pub struct Journal {
    pub log: Vec<LogEntry>,
    pub lines: BTreeMap<u64, LineView>,
    pub chosen: BTreeMap<u64, Chosen>,
    pub violations: Vec<ViolationView>,
    /// Why the last action did nothing, if it did nothing.
    pub note: Option<String>,
}

impl Journal {
    pub fn say(&mut self, step: usize, t: u64, text: impl Into<String>) {
        self.log.push(LogEntry {
            step,
            t,
            text: text.into(),
        });
    }

    pub fn sent(&mut self, id: u64, from: &str, to: &str, kind: &str, step: usize) {
        self.lines.insert(
            id,
            LineView {
                id,
                from: from.to_string(),
                to: to.to_string(),
                kind: kind.to_string(),
                sent: step,
                ended: None,
                fate: "flying".to_string(),
            },
        );
    }

    /// Records a failed check, once per detail.
    pub fn violate(&mut self, check: &str, detail: String, step: usize) {
        if !self.violations.iter().any(|x| x.detail == detail) {
            self.violations.push(ViolationView {
                check: check.to_string(),
                detail,
                step,
            });
        }
    }

    pub fn ended(&mut self, id: u64, step: usize, delivered: bool) {
        if let Some(line) = self.lines.get_mut(&id) {
            line.ended = Some(step);
            line.fate = if delivered { "delivered" } else { "dropped" }.to_string();
        }
    }

    /// Records that a quorum accepted `value` at `ballot` in `slot`, the first time only.
    /// Returns a sentence for the log the first time, and a violation if another value had
    /// been chosen in that slot before (possible only with a planted bug).
    pub fn quorum(&mut self, slot: u64, value: &str, ballot: &str, step: usize) -> Option<String> {
        match self.chosen.get(&slot) {
            None => {
                self.chosen.insert(
                    slot,
                    Chosen {
                        value: value.to_string(),
                        ballot: ballot.to_string(),
                        at_step: step,
                    },
                );
                Some(format!(
                    "Slot {slot} is now chosen: a quorum accepted {value} at ballot {ballot}. \
                     No node knows it yet; each learns it from the votes or from the leader."
                ))
            }
            Some(c) if c.value == value => None,
            Some(c) => {
                let detail = format!(
                    "slot {slot}: a quorum accepted {value} at {ballot}, but {} had been chosen at {} (step {})",
                    c.value, c.ballot, c.at_step
                );
                if !self.violations.iter().any(|v| v.detail == detail) {
                    self.violations.push(ViolationView {
                        check: "agreement".to_string(),
                        detail,
                        step,
                    });
                }
                None
            }
        }
    }

    /// Agreement among single-decree learners: each `(node index, value described)` learned
    /// must be the value a quorum chose (slot 1); a violation is recorded once otherwise.
    pub fn check_learned(
        &mut self,
        step: usize,
        learned: impl IntoIterator<Item = (usize, String)>,
    ) {
        let chosen = self.chosen.get(&1).map(|c| c.value.clone());
        for (i, v) in learned {
            if chosen.as_ref().is_some_and(|c| *c == v) {
                continue;
            }
            let detail = match &chosen {
                Some(c) => format!("n{} learned {v}, but {c} was chosen", i + 1),
                None => format!("n{} learned {v}, which no quorum accepted", i + 1),
            };
            if !self.violations.iter().any(|x| x.detail == detail) {
                self.violations.push(ViolationView {
                    check: "agreement".to_string(),
                    detail,
                    step,
                });
            }
        }
    }

    pub fn chosen_views(&self, known_by: impl Fn(u64) -> Vec<String>) -> Vec<ChosenView> {
        self.chosen
            .iter()
            .map(|(slot, c)| ChosenView {
                slot: *slot,
                value: c.value.clone(),
                ballot: c.ballot.clone(),
                at_step: c.at_step,
                known_by: known_by(*slot),
            })
            .collect()
    }

    pub fn log_tail(&self) -> Vec<LogEntry> {
        let from = self.log.len().saturating_sub(LOG_SHOWN);
        self.log[from..].to_vec()
    }

    pub fn lines_tail(&self) -> Vec<LineView> {
        let from = self.lines.len().saturating_sub(LINES_SHOWN);
        self.lines.values().skip(from).cloned().collect()
    }
}

/// `round.node`, or "none" for the zero ballot (nothing promised yet).
pub fn ballot_text(b: paxos::Ballot) -> String {
    if b.is_real() {
        b.to_string()
    } else {
        "none".to_string()
    }
}

/// Joins names as "n1, n2 and n3".
pub fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}
