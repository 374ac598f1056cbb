//! An etcd-shaped model for histories with ranges, multi-key transactions and leases: keys
//! live in groups (`"g3/k1"` is key `k1` of group `g3`), and every operation stays inside one
//! group, so groups are checked independently (P-compositionality) while an operation may
//! still read or write several keys of its group at once.
//!
//! The state of a group is its keys' current values, each with the lease it is attached to,
//! and the group's granted leases. Revisions are not modelled (they are cluster-wide, which
//! would join every group into one partition); the simulator checks them separately.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::{Model, Operation};

/// A lease id names its group: `(group + 1) * LEASE_GROUP_STRIDE + n`.
pub const LEASE_GROUP_STRIDE: i64 = 1_000_000;

/// The group a key belongs to: what comes before its first `/` (the whole key without one).
pub fn group_of(key: &str) -> &str {
    key.split_once('/').map_or(key, |(g, _)| g)
}

/// The group a lease belongs to (see [`LEASE_GROUP_STRIDE`]).
pub fn lease_group(id: i64) -> String {
    format!("g{}", (id / LEASE_GROUP_STRIDE).saturating_sub(1))
}

/// One write inside a transaction.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum TxnWrite {
    /// Put `value` at `key` (no lease).
    Put {
        /// Key.
        key: String,
        /// Value.
        value: String,
    },
    /// Delete `key`.
    Delete {
        /// Key.
        key: String,
    },
}

/// A client request, etcd's KV and Lease API reduced to what the model decides.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum EtcdInput {
    /// A linearizable range: one key, or (`prefix`) every key starting with `key`, sorted
    /// by key, at most `limit` of them (0: no limit).
    Range {
        /// The key or prefix (the prefix names one group).
        key: String,
        /// Whether `key` is a prefix.
        prefix: bool,
        /// At most this many kvs (0: all).
        limit: u64,
    },
    /// Put `value` at `key`, attached to `lease` (0: none).
    Put {
        /// Key.
        key: String,
        /// Value.
        value: String,
        /// Lease id, 0 for none.
        lease: i64,
    },
    /// Delete `key`, or every key starting with it.
    Delete {
        /// Key or prefix.
        key: String,
        /// Whether `key` is a prefix.
        prefix: bool,
    },
    /// If every compare holds (`None`: the key is absent), do `success`, else `failure`.
    Txn {
        /// The group every key is in.
        group: String,
        /// (key, required value).
        compares: Vec<(String, Option<String>)>,
        /// Writes on success.
        success: Vec<TxnWrite>,
        /// Writes on failure.
        failure: Vec<TxnWrite>,
    },
    /// Grant lease `id`.
    LeaseGrant {
        /// Lease id.
        id: i64,
    },
    /// Revoke lease `id`: its keys are deleted.
    LeaseRevoke {
        /// Lease id.
        id: i64,
    },
}

impl EtcdInput {
    /// The group (partition) the request touches.
    pub fn group(&self) -> String {
        match self {
            EtcdInput::Range { key, .. }
            | EtcdInput::Put { key, .. }
            | EtcdInput::Delete { key, .. } => group_of(key).to_owned(),
            EtcdInput::Txn { group, .. } => group.clone(),
            EtcdInput::LeaseGrant { id } | EtcdInput::LeaseRevoke { id } => lease_group(*id),
        }
    }
}

/// What a client saw, one variant per kind of [`EtcdInput`]; `Error` is a refusal the store
/// decided (its message), which the model must predict like any other outcome.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum EtcdOutput {
    /// The kvs (key, value) in key order, and how many matched in all (etcd's `count`).
    Range {
        /// (key, value) pairs.
        kvs: Vec<(String, String)>,
        /// Matches before the limit.
        count: u64,
    },
    /// A put applied.
    Put,
    /// Keys deleted.
    Delete {
        /// How many.
        deleted: u64,
    },
    /// Which branch ran.
    Txn {
        /// Whether every compare held.
        succeeded: bool,
    },
    /// A grant or revoke applied.
    Lease,
    /// The store refused, with this message.
    Error {
        /// etcd's message.
        message: String,
    },
}

/// The message etcd gives a put or revoke naming a lease that does not exist.
pub const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
/// The message etcd gives a grant of an id already granted.
pub const LEASE_EXISTS: &str = "etcdserver: lease already exists";

/// One group's state: each key's value and lease, and the leases granted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct GroupState {
    /// key → (value, lease).
    pub keys: BTreeMap<String, (String, i64)>,
    /// Granted leases.
    pub leases: BTreeSet<i64>,
}

impl GroupState {
    fn matching<'a>(&'a self, key: &'a str, prefix: bool) -> impl Iterator<Item = &'a String> {
        self.keys.keys().filter(move |k| {
            if prefix {
                k.starts_with(key)
            } else {
                *k == key
            }
        })
    }

    fn write(&mut self, w: &TxnWrite) {
        match w {
            TxnWrite::Put { key, value } => {
                self.keys.insert(key.clone(), (value.clone(), 0));
            }
            TxnWrite::Delete { key } => {
                self.keys.remove(key);
            }
        }
    }

    /// Applies `input`; returns the next state and the output it produces.
    pub fn apply(&self, input: &EtcdInput) -> (GroupState, EtcdOutput) {
        let mut next = self.clone();
        let out = match input {
            EtcdInput::Range { key, prefix, limit } => {
                let all: Vec<(String, String)> = self
                    .matching(key, *prefix)
                    .map(|k| (k.clone(), self.keys[k].0.clone()))
                    .collect();
                let count = all.len() as u64;
                let take = if *limit == 0 {
                    all.len()
                } else {
                    *limit as usize
                };
                EtcdOutput::Range {
                    kvs: all.into_iter().take(take).collect(),
                    count,
                }
            }
            EtcdInput::Put { key, value, lease } => {
                if *lease != 0 && !self.leases.contains(lease) {
                    EtcdOutput::Error {
                        message: LEASE_NOT_FOUND.to_owned(),
                    }
                } else {
                    next.keys.insert(key.clone(), (value.clone(), *lease));
                    EtcdOutput::Put
                }
            }
            EtcdInput::Delete { key, prefix } => {
                let gone: Vec<String> = self.matching(key, *prefix).cloned().collect();
                for k in &gone {
                    next.keys.remove(k);
                }
                EtcdOutput::Delete {
                    deleted: gone.len() as u64,
                }
            }
            EtcdInput::Txn {
                compares,
                success,
                failure,
                ..
            } => {
                let succeeded = compares
                    .iter()
                    .all(|(k, want)| self.keys.get(k).map(|(v, _)| v) == want.as_ref());
                let writes = if succeeded { success } else { failure };
                for w in writes {
                    next.write(w);
                }
                EtcdOutput::Txn { succeeded }
            }
            EtcdInput::LeaseGrant { id } => {
                if next.leases.insert(*id) {
                    EtcdOutput::Lease
                } else {
                    EtcdOutput::Error {
                        message: LEASE_EXISTS.to_owned(),
                    }
                }
            }
            EtcdInput::LeaseRevoke { id } => {
                if next.leases.remove(id) {
                    next.keys.retain(|_, (_, lease)| lease != id);
                    EtcdOutput::Lease
                } else {
                    EtcdOutput::Error {
                        message: LEASE_NOT_FOUND.to_owned(),
                    }
                }
            }
        };
        (next, out)
    }
}

/// Linearizable etcd semantics, checked per group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EtcdModel;

/// One recorded etcd operation.
pub type EtcdOperation = Operation<EtcdInput, EtcdOutput>;

impl Model for EtcdModel {
    type State = GroupState;
    type Input = EtcdInput;
    type Output = EtcdOutput;

    fn init(&self) -> GroupState {
        GroupState::default()
    }

    fn step(
        &self,
        state: &GroupState,
        input: &EtcdInput,
        output: Option<&EtcdOutput>,
    ) -> Option<GroupState> {
        let (next, predicted) = state.apply(input);
        match output {
            // Unknown outcome: if it took effect, it did what the state dictates.
            None => Some(next),
            Some(seen) => (*seen == predicted).then_some(next),
        }
    }

    fn partition(&self, input: &EtcdInput) -> String {
        input.group()
    }

    fn is_read_only(&self, input: &EtcdInput) -> bool {
        matches!(input, EtcdInput::Range { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{check, CheckOptions, Verdict};

    fn op(input: EtcdInput, invoke: u64, done: Option<(u64, EtcdOutput)>) -> EtcdOperation {
        let (complete, output) = match done {
            Some((t, o)) => (Some(t), Some(o)),
            None => (None, None),
        };
        Operation {
            client: 0,
            input,
            invoke,
            complete,
            output,
        }
    }

    fn put(key: &str, value: &str) -> EtcdInput {
        EtcdInput::Put {
            key: key.into(),
            value: value.into(),
            lease: 0,
        }
    }

    fn prefix(key: &str, limit: u64) -> EtcdInput {
        EtcdInput::Range {
            key: key.into(),
            prefix: true,
            limit,
        }
    }

    fn range_out(kvs: &[(&str, &str)], count: u64) -> EtcdOutput {
        EtcdOutput::Range {
            kvs: kvs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            count,
        }
    }

    #[test]
    fn a_prefix_range_must_see_every_earlier_write_of_its_group() {
        let ok = vec![
            op(put("g0/a", "1"), 0, Some((1, EtcdOutput::Put))),
            op(put("g0/b", "2"), 2, Some((3, EtcdOutput::Put))),
            op(
                prefix("g0/", 1),
                4,
                Some((5, range_out(&[("g0/a", "1")], 2))),
            ),
        ];
        assert_eq!(
            check(&EtcdModel, &ok, &CheckOptions::default()).verdict,
            Verdict::Ok
        );
        // The range saw a only, after b was acknowledged: not linearizable.
        let mut bad = ok.clone();
        bad[2].output = Some(range_out(&[("g0/a", "1")], 1));
        assert_eq!(
            check(&EtcdModel, &bad, &CheckOptions::default()).verdict,
            Verdict::Illegal
        );
    }

    #[test]
    fn a_txn_is_atomic_over_its_keys() {
        let txn = EtcdInput::Txn {
            group: "g0".into(),
            compares: vec![("g0/a".into(), None)],
            success: vec![
                TxnWrite::Put {
                    key: "g0/a".into(),
                    value: "x".into(),
                },
                TxnWrite::Put {
                    key: "g0/b".into(),
                    value: "x".into(),
                },
            ],
            failure: vec![],
        };
        let history = vec![
            op(txn, 0, Some((1, EtcdOutput::Txn { succeeded: true }))),
            // Half a transaction seen: illegal.
            op(
                prefix("g0/", 0),
                2,
                Some((3, range_out(&[("g0/a", "x")], 1))),
            ),
        ];
        assert_eq!(
            check(&EtcdModel, &history, &CheckOptions::default()).verdict,
            Verdict::Illegal
        );
    }

    #[test]
    fn a_revoke_deletes_its_keys_and_a_put_needs_its_lease() {
        let id = LEASE_GROUP_STRIDE + 7;
        assert_eq!(lease_group(id), "g0");
        let s = GroupState::default();
        let (s1, out) = s.apply(&EtcdInput::Put {
            key: "g0/a".into(),
            value: "v".into(),
            lease: id,
        });
        assert_eq!(
            out,
            EtcdOutput::Error {
                message: LEASE_NOT_FOUND.into()
            }
        );
        let (s2, _) = s1.apply(&EtcdInput::LeaseGrant { id });
        let (s3, out) = s2.apply(&EtcdInput::Put {
            key: "g0/a".into(),
            value: "v".into(),
            lease: id,
        });
        assert_eq!(out, EtcdOutput::Put);
        let (s4, _) = s3.apply(&EtcdInput::LeaseRevoke { id });
        assert!(s4.keys.is_empty());
    }
}
