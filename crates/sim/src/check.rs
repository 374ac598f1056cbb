//! The checkers' vocabulary: which check failed, and the global oracle of chosen values.
//!
//! Checks run as the simulation goes (agreement, validity, stability, equal states at equal
//! slots, contiguous hand-out), and at the end (linearizability, liveness). A violation never
//! stops the simulator: it is recorded and the run goes on, so a trace shows what followed.

use paxos::multi::Value;
use paxos::{NodeId, Slot};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Which check found a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckKind {
    /// Two nodes handed out different values for one slot.
    Agreement,
    /// A chosen batch carried a command no client proposed (or with another payload).
    Validity,
    /// A node handed out, after a restart, a different value than it had before for a slot.
    Stability,
    /// Two replicas that applied the same slots hold different states.
    StateDivergence,
    /// A node handed out chosen slots with a gap or out of order.
    Contiguity,
    /// A node asked its disk to store a promise below the one already stored: an acceptor
    /// going back on its word ("ballots only grow").
    PromiseRegression,
    /// The client history is not linearizable.
    Linearizability,
    /// After faults stopped, a request did not complete, no stable leader emerged, or the
    /// replicas did not converge, within the bound.
    Liveness,
    /// The core or the simulator panicked.
    Panic,
    /// A node started from a data directory with injected damage still in it, and storage
    /// did not refuse: it could serve from a corrupt record.
    SilentCorruption,
    /// Leader leases: a replica won phase 1 while another still held its lease, at the same
    /// instant of true time (the simulator sees every clock at once). The grants make this
    /// impossible while every clock keeps the drift bound.
    LeaseOverlap,
}

impl CheckKind {
    /// Every check, in the order figures list them.
    pub const ALL: [CheckKind; 11] = [
        CheckKind::Agreement,
        CheckKind::Validity,
        CheckKind::Stability,
        CheckKind::StateDivergence,
        CheckKind::Contiguity,
        CheckKind::PromiseRegression,
        CheckKind::Linearizability,
        CheckKind::Liveness,
        CheckKind::Panic,
        CheckKind::SilentCorruption,
        CheckKind::LeaseOverlap,
    ];

    /// Its kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            CheckKind::Agreement => "agreement",
            CheckKind::Validity => "validity",
            CheckKind::Stability => "stability",
            CheckKind::StateDivergence => "state-divergence",
            CheckKind::Contiguity => "contiguity",
            CheckKind::PromiseRegression => "promise-regression",
            CheckKind::Linearizability => "linearizability",
            CheckKind::Liveness => "liveness",
            CheckKind::Panic => "panic",
            CheckKind::SilentCorruption => "silent-corruption",
            CheckKind::LeaseOverlap => "lease-overlap",
        }
    }
}

impl fmt::Display for CheckKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One failed check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The check.
    pub check: CheckKind,
    /// Virtual time it was found, in microseconds.
    pub at_us: u64,
    /// The node involved, if one.
    pub node: Option<NodeId>,
    /// The slot involved, if one.
    pub slot: Option<u64>,
    /// What was seen, for a person.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {} us", self.check, self.at_us)?;
        if let Some(n) = self.node {
            write!(f, " on {n}")?;
        }
        if let Some(s) = self.slot {
            write!(f, " in slot {s}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// The first value handed out for each slot by any node, and who handed it out. It outlives
/// crashes: it is the simulator's memory, not any node's.
#[derive(Clone, Debug, Default)]
pub struct Oracle {
    slots: Vec<Option<OracleSlot>>,
}

#[derive(Clone, Debug)]
struct OracleSlot {
    value: Value,
    /// Bit i: member index i handed this value out at least once.
    seen_by: u64,
}

/// What the oracle makes of a value handed out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OracleVerdict {
    /// First time anyone handed this slot out.
    New,
    /// The same value as before.
    Same,
    /// A different value from the one first handed out; `same_node` says whether this node
    /// itself handed out the first one (a stability failure across its restart) or not.
    Conflict {
        /// The value handed out first.
        first: Value,
        /// Whether the conflicting node had handed out the first value itself.
        same_node: bool,
    },
}

impl Oracle {
    /// Records that member `index` handed out `value` for `slot`.
    pub fn observe(&mut self, index: usize, slot: Slot, value: &Value) -> OracleVerdict {
        let i = slot.0 as usize;
        if self.slots.len() <= i {
            self.slots.resize(i + 1, None);
        }
        match &mut self.slots[i] {
            None => {
                self.slots[i] = Some(OracleSlot {
                    value: value.clone(),
                    seen_by: 1 << index,
                });
                OracleVerdict::New
            }
            Some(s) if s.value == *value => {
                s.seen_by |= 1 << index;
                OracleVerdict::Same
            }
            Some(s) => OracleVerdict::Conflict {
                first: s.value.clone(),
                same_node: s.seen_by & (1 << index) != 0,
            },
        }
    }

    /// The value first handed out for `slot`.
    pub fn chosen(&self, slot: Slot) -> Option<&Value> {
        self.slots
            .get(slot.0 as usize)
            .and_then(|s| s.as_ref())
            .map(|s| &s.value)
    }

    /// Highest slot any node handed out.
    pub fn highest(&self) -> Slot {
        Slot(self.slots.len().saturating_sub(1) as u64)
    }
}
