//! The key-value model the simulator and chaos tests check against: an
//! independent register per key, with put, compare-and-set and delete.

use serde::{Deserialize, Serialize};

use crate::{Model, Operation};

/// A client request to the KV store.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum KvInput {
    /// Read the current value.
    Get {
        /// Key to read.
        key: String,
    },
    /// Unconditionally set the value.
    Put {
        /// Key to write.
        key: String,
        /// Value to store.
        value: String,
    },
    /// Set `new` only if the current value equals `expected`.
    Cas {
        /// Key to update.
        key: String,
        /// Required current value; `None` requires the key to be absent.
        expected: Option<String>,
        /// Value stored on success.
        new: String,
    },
    /// Remove the key.
    Delete {
        /// Key to remove.
        key: String,
    },
}

impl KvInput {
    /// The key the request touches, which is also its partition.
    pub fn key(&self) -> &str {
        match self {
            KvInput::Get { key }
            | KvInput::Put { key, .. }
            | KvInput::Cas { key, .. }
            | KvInput::Delete { key } => key,
        }
    }
}

/// The KV store's response, one variant per [`KvInput`] variant.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum KvOutput {
    /// Value read; `None` if the key was absent.
    Get {
        /// The value observed.
        value: Option<String>,
    },
    /// The put was applied.
    Put,
    /// Whether the compare-and-set matched and was applied.
    Cas {
        /// `true` iff the value was replaced.
        ok: bool,
    },
    /// The key is now absent.
    Delete {
        /// Whether the key was present before.
        existed: bool,
    },
}

/// Linearizable map semantics, checked per key: the state of a partition is
/// the key's value (`None` when absent).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvModel;

/// One recorded KV operation; also one line of a JSON history file (see the
/// crate docs for the format).
pub type KvOperation = Operation<KvInput, KvOutput>;

impl Model for KvModel {
    type State = Option<String>;
    type Input = KvInput;
    type Output = KvOutput;

    fn init(&self) -> Self::State {
        None
    }

    fn step(
        &self,
        state: &Self::State,
        input: &KvInput,
        output: Option<&KvOutput>,
    ) -> Option<Self::State> {
        match (input, output) {
            (KvInput::Get { .. }, None) => Some(state.clone()),
            (KvInput::Get { .. }, Some(KvOutput::Get { value })) => {
                (value == state).then(|| state.clone())
            }
            (KvInput::Put { value, .. }, None | Some(KvOutput::Put)) => Some(Some(value.clone())),
            (KvInput::Cas { expected, new, .. }, output) => {
                let matches = expected == state;
                match output {
                    // Unknown outcome: "took effect" means the comparison ran,
                    // and it can only have gone the way the state dictates.
                    None => Some(if matches {
                        Some(new.clone())
                    } else {
                        state.clone()
                    }),
                    Some(KvOutput::Cas { ok }) if *ok == matches => Some(if matches {
                        Some(new.clone())
                    } else {
                        state.clone()
                    }),
                    Some(_) => None,
                }
            }
            (KvInput::Delete { .. }, None) => Some(None),
            (KvInput::Delete { .. }, Some(KvOutput::Delete { existed })) => {
                (*existed == state.is_some()).then_some(None)
            }
            // A response of the wrong kind cannot be produced by any state.
            (_, Some(_)) => None,
        }
    }

    fn partition(&self, input: &KvInput) -> String {
        input.key().to_owned()
    }

    fn is_read_only(&self, input: &KvInput) -> bool {
        matches!(input, KvInput::Get { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn get_must_match_state() {
        let get = KvInput::Get { key: "k".into() };
        let out = KvOutput::Get { value: s("a") };
        assert_eq!(KvModel.step(&s("a"), &get, Some(&out)), Some(s("a")));
        assert_eq!(KvModel.step(&None, &get, Some(&out)), None);
    }

    #[test]
    fn cas_succeeds_iff_expected_matches() {
        let cas = KvInput::Cas {
            key: "k".into(),
            expected: None,
            new: "b".into(),
        };
        let ok = KvOutput::Cas { ok: true };
        let failed = KvOutput::Cas { ok: false };
        assert_eq!(KvModel.step(&None, &cas, Some(&ok)), Some(s("b")));
        assert_eq!(KvModel.step(&None, &cas, Some(&failed)), None);
        assert_eq!(KvModel.step(&s("a"), &cas, Some(&ok)), None);
        assert_eq!(KvModel.step(&s("a"), &cas, Some(&failed)), Some(s("a")));
        assert_eq!(KvModel.step(&s("a"), &cas, None), Some(s("a")));
        assert_eq!(KvModel.step(&None, &cas, None), Some(s("b")));
    }

    #[test]
    fn delete_reports_presence() {
        let del = KvInput::Delete { key: "k".into() };
        let existed = KvOutput::Delete { existed: true };
        assert_eq!(KvModel.step(&s("a"), &del, Some(&existed)), Some(None));
        assert_eq!(KvModel.step(&None, &del, Some(&existed)), None);
    }

    #[test]
    fn mismatched_output_kind_is_illegal() {
        let put = KvInput::Put {
            key: "k".into(),
            value: "a".into(),
        };
        assert_eq!(
            KvModel.step(&None, &put, Some(&KvOutput::Cas { ok: true })),
            None
        );
    }
}
