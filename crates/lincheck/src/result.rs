//! What [`check`](crate::check) reports.

use std::fmt;

use serde::Serialize;

use crate::HistoryError;

/// Outcome of checking a history or one partition of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A linearization was found.
    Ok,
    /// It was proven that no linearization exists.
    Illegal,
    /// Neither could be established (budget exhausted or malformed input).
    Unknown,
}

impl Verdict {
    /// Folds partition verdicts: any `Illegal` wins, then any `Unknown`, so
    /// an unfinished partition can never be hidden behind `Ok`.
    pub(crate) fn combine<'a>(verdicts: impl IntoIterator<Item = &'a Verdict>) -> Verdict {
        verdicts
            .into_iter()
            .fold(Verdict::Ok, |acc, v| match (acc, v) {
                (Verdict::Illegal, _) | (_, Verdict::Illegal) => Verdict::Illegal,
                (Verdict::Unknown, _) | (_, Verdict::Unknown) => Verdict::Unknown,
                (Verdict::Ok, Verdict::Ok) => Verdict::Ok,
            })
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Ok => "ok",
            Verdict::Illegal => "illegal",
            Verdict::Unknown => "unknown",
        })
    }
}

/// Result of [`check`](crate::check) over a whole history.
///
/// Its `Display` output is a report meant for test failure messages: one
/// line per partition plus the explanation of every partition that is not
/// `Ok`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    /// Combined verdict: `Illegal` if any partition is, else `Unknown` if
    /// any partition is, else `Ok`.
    pub verdict: Verdict,
    /// One entry per partition key, sorted by key.
    pub partitions: Vec<PartitionResult>,
    /// Every malformed operation found; their partitions are `Unknown`.
    pub malformed: Vec<HistoryError>,
}

/// Result for the operations sharing one [`Model::partition`](crate::Model::partition) key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PartitionResult {
    /// The partition key.
    pub key: String,
    /// Verdict for this partition alone.
    pub verdict: Verdict,
    /// Operations that took part in the check (excludes
    /// `dropped_unknown_reads`).
    pub operations: usize,
    /// Read-only operations with unknown outcome, removed before the search
    /// because they cannot matter.
    pub dropped_unknown_reads: usize,
    /// Distinct `(linearized set, state)` configurations visited.
    pub states_explored: u64,
    /// For `Illegal`: the longest linearizable prefix found and the
    /// operations that could not be placed after it. For `Unknown`: why the
    /// check gave up. `None` for `Ok`.
    pub explanation: Option<String>,
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "linearizability: {} ({} partitions)",
            self.verdict,
            self.partitions.len()
        )?;
        for p in &self.partitions {
            writeln!(
                f,
                "  partition {:?}: {} ({} ops, {} states explored)",
                p.key, p.verdict, p.operations, p.states_explored
            )?;
        }
        for p in self.partitions.iter().filter(|p| p.verdict != Verdict::Ok) {
            if let Some(explanation) = &p.explanation {
                writeln!(f, "\n{explanation}")?;
            }
        }
        Ok(())
    }
}
