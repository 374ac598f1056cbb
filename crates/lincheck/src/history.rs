//! The recorded form of a client operation and its well-formedness rules.

use serde::{Deserialize, Serialize};

/// One client operation as recorded. Times are any monotonic u64 (virtual
/// ticks or ns).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation<I, O> {
    /// Identifies the issuing client; used only in explanations, since
    /// real-time order alone constrains the search.
    pub client: u64,
    /// What the client asked for.
    pub input: I,
    /// When the client issued the request.
    pub invoke: u64,
    /// None: the client never learned the outcome (timed out / gave up). The
    /// op may or may not have taken effect, at any time after `invoke`.
    pub complete: Option<u64>,
    /// None exactly when `complete` is None.
    pub output: Option<O>,
}

impl<I, O> Operation<I, O> {
    /// Checks the invariants the search relies on; `index` is the
    /// operation's position in the history, echoed in the error.
    pub(crate) fn validate(&self, index: usize) -> Result<(), HistoryError> {
        match (self.complete, self.output.is_some()) {
            (Some(complete), true) if complete < self.invoke => {
                Err(HistoryError::CompletesBeforeInvoke {
                    index,
                    invoke: self.invoke,
                    complete,
                })
            }
            (Some(_), true) | (None, false) => Ok(()),
            (Some(_), false) => Err(HistoryError::MissingOutput { index }),
            (None, true) => Err(HistoryError::OutputWithoutCompletion { index }),
        }
    }
}

/// A recorded operation that violates the history format, which points at a
/// recorder bug rather than at the system under test.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
pub enum HistoryError {
    /// The completion time precedes the invocation time.
    #[error("operation #{index} completes at {complete}, before its invocation at {invoke}")]
    CompletesBeforeInvoke {
        /// Position of the operation in the history.
        index: usize,
        /// Recorded invocation time.
        invoke: u64,
        /// Recorded completion time.
        complete: u64,
    },
    /// `complete` is set but `output` is not.
    #[error("operation #{index} has a completion time but no output")]
    MissingOutput {
        /// Position of the operation in the history.
        index: usize,
    },
    /// `output` is set but `complete` is not.
    #[error("operation #{index} has an output but no completion time")]
    OutputWithoutCompletion {
        /// Position of the operation in the history.
        index: usize,
    },
}

/// Returns the first malformed operation of `history`, if any.
///
/// [`check`](crate::check) already refuses to judge partitions holding
/// malformed operations (they come out [`Verdict::Unknown`](crate::Verdict));
/// this lets a recorder assert its own output eagerly.
pub fn validate<I, O>(history: &[Operation<I, O>]) -> Result<(), HistoryError> {
    history
        .iter()
        .enumerate()
        .try_for_each(|(index, op)| op.validate(index))
}
