//! The recorded client history: one [`Record`] per operation, one JSON line each.
//! The format is documented in `docs/chaos-history.md`; change both together.

use std::io::{BufRead, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// What a client asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Op {
    /// Unconditional put of one key.
    Put { key: String, value: String },
    /// Range of one key; `serializable` reads are answered from the member's own state and
    /// may be stale, so they are not fed to the linearizability checker.
    Get { key: String, serializable: bool },
    /// DeleteRange of one key.
    Delete { key: String },
    /// Txn: if the key's value equals `expected` (`None`: the key is absent) put `new`.
    Cas {
        key: String,
        expected: Option<String>,
        new: String,
    },
    /// Txn with no compare that puts every pair atomically.
    MultiPut { puts: Vec<(String, String)> },
    /// Txn with no compare that ranges every key (a linearizable read of all of them at once).
    MultiGet { keys: Vec<String> },
}

/// What the client learned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "kebab-case")]
pub enum Outcome {
    Put,
    Get {
        value: Option<String>,
        /// The key's mod_revision (0 when absent).
        mod_revision: i64,
    },
    Delete {
        deleted: i64,
    },
    Cas {
        succeeded: bool,
    },
    MultiPut,
    MultiGet {
        values: Vec<Option<String>>,
    },
}

/// One operation: a line of the history file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The client task that issued it; a client has at most one operation in flight.
    pub client: u64,
    /// The member (index 0..5, `n1` is 0) the request was sent to.
    pub member: usize,
    /// That member's incarnation (bumped at every start of its process) when the request
    /// was sent and still the same when it completed; `None` if the member restarted in
    /// between, or for operations without an answer.
    pub incarnation: Option<u64>,
    #[serde(flatten)]
    pub op: Op,
    /// Nanoseconds on the run's monotonic clock.
    pub invoke: u64,
    /// `None`: the client never learned the outcome (error or timeout).
    pub complete: Option<u64>,
    /// `None` exactly when `complete` is `None`.
    pub outcome: Option<Outcome>,
    /// The response header's revision, when answered.
    pub revision: Option<i64>,
    /// The gRPC error or "timeout" when not answered.
    pub error: Option<String>,
}

impl Record {
    /// Whether the operation can change state (so an unanswered one may have taken effect).
    pub fn is_write(&self) -> bool {
        !matches!(self.op, Op::Get { .. } | Op::MultiGet { .. })
    }
}

/// Writes a history, one JSON line per record.
pub fn write(path: &Path, records: &[Record]) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for r in records {
        serde_json::to_writer(&mut out, r)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Reads a history written by [`write`].
pub fn read(path: &Path) -> std::io::Result<Vec<Record>> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut records = Vec::new();
    for line in file.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        records.push(serde_json::from_str(&line)?);
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_round_trips_and_has_the_documented_shape() {
        let r = Record {
            client: 3,
            member: 1,
            incarnation: Some(2),
            op: Op::Cas {
                key: "k0/1".into(),
                expected: None,
                new: "c3-17".into(),
            },
            invoke: 100,
            complete: Some(140),
            outcome: Some(Outcome::Cas { succeeded: true }),
            revision: Some(57),
            error: None,
        };
        let line = serde_json::to_string(&r).unwrap();
        assert_eq!(
            line,
            r#"{"client":3,"member":1,"incarnation":2,"op":"cas","key":"k0/1","expected":null,"new":"c3-17","invoke":100,"complete":140,"outcome":{"result":"cas","succeeded":true},"revision":57,"error":null}"#
        );
        let back: Record = serde_json::from_str(&line).unwrap();
        assert_eq!(back, r);
    }
}
