//! Synod's own linearizability checker.
//!
//! It decides whether a recorded client history (from the deterministic
//! simulator or from chaos runs against real processes) can be explained by
//! some sequential execution of a [`Model`] that respects real-time order.
//! The search is a just-in-time linearization search in the style of
//! Wing & Gong and Lowe, memoizing `(set of linearized operations, model
//! state)` pairs, and run independently per [`Model::partition`] key.
//!
//! What it must never do: report [`Verdict::Ok`] for a history it did not
//! fully verify. A search cut short by the budget, or a history that is
//! malformed, yields [`Verdict::Unknown`], never `Ok`. Conversely it must
//! never report [`Verdict::Illegal`] for a history that has a valid
//! linearization, which is why every ambiguity (equal timestamps, unknown
//! outcomes) is resolved in favour of more admissible orders.
//!
//! # Timing rules
//!
//! * An operation may take effect at any instant in `[invoke, complete]`.
//! * Timestamps are compared with calls before returns at equal times: an
//!   operation completing at `t` and another invoked at `t` are treated as
//!   concurrent, so either order is accepted. Recorders with coarse clocks
//!   therefore cannot cause false `Illegal` verdicts through ties.
//! * An operation with `complete: None` (the client never learned the
//!   outcome) may take effect at any instant after `invoke`, or never. Its
//!   output is unconstrained. Unknown-outcome operations for which
//!   [`Model::is_read_only`] holds cannot influence anything and are dropped
//!   before the search.
//!
//! # History line format
//!
//! The chaos tooling writes one [`kv::KvOperation`] per line as JSON. Times
//! are any monotonic `u64` (virtual ticks or nanoseconds); `complete` and
//! `output` are both `null` when the outcome is unknown:
//!
//! ```text
//! {"client":3,"input":{"op":"put","key":"k1","value":"v7"},"invoke":100,"complete":140,"output":{"result":"put"}}
//! {"client":4,"input":{"op":"get","key":"k1"},"invoke":120,"complete":150,"output":{"result":"get","value":"v7"}}
//! {"client":5,"input":{"op":"cas","key":"k1","expected":null,"new":"v9"},"invoke":130,"complete":null,"output":null}
//! {"client":6,"input":{"op":"delete","key":"k1"},"invoke":160,"complete":170,"output":{"result":"delete","existed":true}}
//! ```
//!
//! Inputs are tagged by `"op"` (`get`, `put`, `cas`, `delete`), outputs by
//! `"result"` (`get` with `value`, `put`, `cas` with `ok`, `delete` with
//! `existed`). An absent value is `null`.
//!
//! ```
//! use lincheck::kv::{KvInput, KvModel, KvOperation, KvOutput};
//! use lincheck::{check, CheckOptions, Verdict};
//!
//! let lines = [
//!     r#"{"client":1,"input":{"op":"put","key":"k","value":"a"},"invoke":0,"complete":10,"output":{"result":"put"}}"#,
//!     r#"{"client":2,"input":{"op":"get","key":"k"},"invoke":20,"complete":30,"output":{"result":"get","value":"a"}}"#,
//! ];
//! let history: Vec<KvOperation> = lines
//!     .iter()
//!     .map(|line| serde_json::from_str(line))
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(history[0].input, KvInput::Put { key: "k".into(), value: "a".into() });
//! assert_eq!(history[1].output, Some(KvOutput::Get { value: Some("a".into()) }));
//! let result = check(&KvModel, &history, &CheckOptions::default());
//! assert_eq!(result.verdict, Verdict::Ok);
//! # Ok::<(), serde_json::Error>(())
//! ```

#![warn(missing_docs)]

mod bitset;
pub mod etcd;
mod history;
pub mod kv;
mod model;
mod result;
mod search;

use std::collections::BTreeMap;

pub use history::{validate, HistoryError, Operation};
pub use model::Model;
pub use result::{CheckResult, PartitionResult, Verdict};

/// Tuning knobs for [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    /// Search budget per partition, counted in distinct search states
    /// explored; once exceeded the partition's verdict is
    /// [`Verdict::Unknown`].
    pub max_states_per_partition: u64,
    /// The order the search tries candidates in. It decides only how fast a
    /// verdict comes, never which; keep the default unless measuring.
    pub order: SearchOrder,
}

impl Default for CheckOptions {
    /// Five million states: far beyond what correct simulator histories
    /// need, while keeping a pathological partition's memory use bounded.
    fn default() -> Self {
        Self {
            max_states_per_partition: 5_000_000,
            order: SearchOrder::default(),
        }
    }
}

/// Where the search tries unknown-outcome (timed-out) operations among the
/// candidates for the next place in a linearization.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SearchOrder {
    /// Run an early and a late search side by side, sharing the budget;
    /// the first to finish decides.
    #[default]
    Interleaved,
    /// Before operations with a known outcome that change the state: finds
    /// linearizations of correct histories fastest.
    UnknownEarly,
    /// After them: refutes histories with many timeouts fastest.
    UnknownLate,
}

/// Checks `history` for linearizability against `model`.
///
/// Operations are grouped by [`Model::partition`] and each group is searched
/// on its own, so the overall verdict is [`Verdict::Illegal`] if any
/// partition is illegal, otherwise [`Verdict::Unknown`] if any partition ran
/// out of budget or contains malformed operations (see [`validate`]),
/// otherwise [`Verdict::Ok`]. Partitions are reported in key order.
pub fn check<M: Model>(
    model: &M,
    history: &[Operation<M::Input, M::Output>],
    options: &CheckOptions,
) -> CheckResult {
    let mut groups: BTreeMap<String, Group<'_, M>> = BTreeMap::new();
    let mut malformed = Vec::new();
    for (index, op) in history.iter().enumerate() {
        let group = groups.entry(model.partition(&op.input)).or_default();
        if let Err(error) = op.validate(index) {
            group.malformed.push(error.clone());
            malformed.push(error);
            continue;
        }
        // An unobserved read cannot constrain any other operation, so
        // dropping it shrinks the search without changing the verdict.
        if op.complete.is_none() && model.is_read_only(&op.input) {
            group.dropped += 1;
            continue;
        }
        group.ops.push((index, op));
    }

    let partitions: Vec<PartitionResult> = groups
        .into_iter()
        .map(|(key, group)| check_partition(model, key, group, options))
        .collect();
    let verdict = Verdict::combine(partitions.iter().map(|p| &p.verdict));
    CheckResult {
        verdict,
        partitions,
        malformed,
    }
}

/// Operations of one partition, with what was set aside before the search.
struct Group<'a, M: Model> {
    ops: Vec<search::IndexedOp<'a, M::Input, M::Output>>,
    dropped: usize,
    malformed: Vec<HistoryError>,
}

// Derived Default would demand `M: Default`.
impl<M: Model> Default for Group<'_, M> {
    fn default() -> Self {
        Self {
            ops: Vec::new(),
            dropped: 0,
            malformed: Vec::new(),
        }
    }
}

fn check_partition<M: Model>(
    model: &M,
    key: String,
    group: Group<'_, M>,
    options: &CheckOptions,
) -> PartitionResult {
    let operations = group.ops.len() + group.malformed.len();
    if !group.malformed.is_empty() {
        // A broken record means the recorder is broken; certifying the rest
        // would hide that, so refuse to judge.
        let reasons: Vec<String> = group.malformed.iter().map(ToString::to_string).collect();
        return PartitionResult {
            key,
            verdict: Verdict::Unknown,
            operations,
            dropped_unknown_reads: group.dropped,
            states_explored: 0,
            explanation: Some(format!(
                "not checked: malformed operations: {}",
                reasons.join("; ")
            )),
        };
    }

    let report = search::search(
        model,
        &group.ops,
        options.max_states_per_partition,
        options.order,
    );
    let (verdict, explanation) = match report.outcome {
        search::Outcome::Linearizable => (Verdict::Ok, None),
        search::Outcome::BudgetExhausted => (
            Verdict::Unknown,
            Some(format!(
                "search abandoned after exploring {} states (max_states_per_partition); \
                 the history was neither verified nor refuted",
                report.states_explored
            )),
        ),
        search::Outcome::NotLinearizable(stuck) => (
            Verdict::Illegal,
            Some(search::explain(model, &key, &group.ops, &stuck)),
        ),
    };
    PartitionResult {
        key,
        verdict,
        operations,
        dropped_unknown_reads: group.dropped,
        states_explored: report.states_explored,
        explanation,
    }
}
