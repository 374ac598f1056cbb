//! The key-value state machine the simulated cluster replicates.
//!
//! Writes (put, compare-and-set, delete) travel through the log as [`KvCommand`] payloads;
//! gets do not: they are served by read-index from the applied state. Keys and values are
//! short strings so that histories stay readable and conflicts frequent.
//!
//! The payload encoding is a compact hand format rather than JSON because every command is
//! cloned into each accept message; it is documented on [`KvCommand::encode`].

use crate::fnv::Fnv;
use lincheck::kv::{KvInput, KvOutput};
use paxos::multi::StateMachine;
use paxos::Slot;
use std::collections::BTreeMap;
use std::hash::Hasher;

/// A write command, as carried in a log entry's payload.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KvCommand {
    /// Sets `key` to `value`.
    Put {
        /// The key.
        key: String,
        /// The new value.
        value: String,
    },
    /// Sets `key` to `new` if its current value is `expected` (`None`: absent).
    Cas {
        /// The key.
        key: String,
        /// The value the key must hold for the swap to happen.
        expected: Option<String>,
        /// The value written on success.
        new: String,
    },
    /// Removes `key`.
    Delete {
        /// The key.
        key: String,
    },
}

/// What applying a command answers. Mirrors [`KvOutput`] plus a variant for a payload that
/// does not decode, which only a broken driver produces (the simulator reports it as a
/// validity violation rather than panicking inside the state machine).
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum KvResult {
    /// A put was applied.
    Put,
    /// A compare-and-set ran; `ok` says whether it swapped.
    Cas {
        /// Whether the value matched and was replaced.
        ok: bool,
    },
    /// A delete ran; `existed` says whether the key was there.
    Delete {
        /// Whether the key held a value.
        existed: bool,
    },
    /// The payload did not decode.
    Invalid,
}

impl KvResult {
    /// The checker's view of this result (`None` for [`KvResult::Invalid`]).
    pub fn to_output(&self) -> Option<KvOutput> {
        match self {
            KvResult::Put => Some(KvOutput::Put),
            KvResult::Cas { ok } => Some(KvOutput::Cas { ok: *ok }),
            KvResult::Delete { existed } => Some(KvOutput::Delete { existed: *existed }),
            KvResult::Invalid => None,
        }
    }
}

const TAG_PUT: u8 = b'P';
const TAG_CAS: u8 = b'C';
const TAG_DELETE: u8 = b'D';

impl KvCommand {
    /// The key the command touches.
    pub fn key(&self) -> &str {
        match self {
            KvCommand::Put { key, .. } | KvCommand::Cas { key, .. } | KvCommand::Delete { key } => {
                key
            }
        }
    }

    /// The checker's input for this command.
    pub fn to_input(&self) -> KvInput {
        match self.clone() {
            KvCommand::Put { key, value } => KvInput::Put { key, value },
            KvCommand::Cas { key, expected, new } => KvInput::Cas { key, expected, new },
            KvCommand::Delete { key } => KvInput::Delete { key },
        }
    }

    /// Encodes as: one tag byte (`P`, `C`, `D`), then each string field as a little-endian
    /// `u16` length and its UTF-8 bytes; for `C` the expected value is preceded by one byte,
    /// 0 for absent, 1 for present.
    ///
    /// # Panics
    /// If a string is longer than 65,535 bytes: the simulator never makes one.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        match self {
            KvCommand::Put { key, value } => {
                out.push(TAG_PUT);
                put_str(&mut out, key);
                put_str(&mut out, value);
            }
            KvCommand::Cas { key, expected, new } => {
                out.push(TAG_CAS);
                put_str(&mut out, key);
                match expected {
                    None => out.push(0),
                    Some(e) => {
                        out.push(1);
                        put_str(&mut out, e);
                    }
                }
                put_str(&mut out, new);
            }
            KvCommand::Delete { key } => {
                out.push(TAG_DELETE);
                put_str(&mut out, key);
            }
        }
        out
    }

    /// Decodes what [`KvCommand::encode`] wrote; `None` for anything else, including trailing bytes.
    pub fn decode(bytes: &[u8]) -> Option<KvCommand> {
        let (&tag, mut rest) = bytes.split_first()?;
        let command = match tag {
            TAG_PUT => {
                let key = take_str(&mut rest)?;
                let value = take_str(&mut rest)?;
                KvCommand::Put { key, value }
            }
            TAG_CAS => {
                let key = take_str(&mut rest)?;
                let (&present, after) = rest.split_first()?;
                rest = after;
                let expected = match present {
                    0 => None,
                    1 => Some(take_str(&mut rest)?),
                    _ => return None,
                };
                let new = take_str(&mut rest)?;
                KvCommand::Cas { key, expected, new }
            }
            TAG_DELETE => KvCommand::Delete {
                key: take_str(&mut rest)?,
            },
            _ => return None,
        };
        rest.is_empty().then_some(command)
    }
}

impl std::fmt::Display for KvCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KvCommand::Put { key, value } => write!(f, "put {key}={value}"),
            KvCommand::Cas { key, expected, new } => {
                let e = expected.as_deref().unwrap_or("_");
                write!(f, "cas {key} {e}->{new}")
            }
            KvCommand::Delete { key } => write!(f, "delete {key}"),
        }
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).expect("simulator strings are short");
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn take_str(rest: &mut &[u8]) -> Option<String> {
    if rest.len() < 2 {
        return None;
    }
    let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
    let body = rest.get(2..2 + len)?;
    let s = std::str::from_utf8(body).ok()?.to_owned();
    *rest = &rest[2 + len..];
    Some(s)
}

/// The replicated map. Deterministic: a `BTreeMap`, no clocks, no randomness.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KvMachine {
    map: BTreeMap<String, String>,
}

impl KvMachine {
    /// An empty map.
    pub fn new() -> KvMachine {
        KvMachine::default()
    }

    /// The value of `key`, as a get served by read-index answers it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }

    /// Every key and value, in key order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// A deterministic 64-bit digest of the whole map (FNV-1a over length-prefixed keys and
    /// values in key order). Hand-rolled rather than `DefaultHasher` so that the value is the
    /// same on every Rust release, since traces record it.
    pub fn digest(&self) -> u64 {
        let mut h = Fnv::new();
        for (k, v) in &self.map {
            h.write(&(k.len() as u64).to_le_bytes());
            h.write(k.as_bytes());
            h.write(&(v.len() as u64).to_le_bytes());
            h.write(v.as_bytes());
        }
        h.finish()
    }
}

impl StateMachine for KvMachine {
    type Output = KvResult;

    fn apply(&mut self, _slot: Slot, payload: &[u8]) -> KvResult {
        let Some(command) = KvCommand::decode(payload) else {
            return KvResult::Invalid;
        };
        match command {
            KvCommand::Put { key, value } => {
                self.map.insert(key, value);
                KvResult::Put
            }
            KvCommand::Cas { key, expected, new } => {
                let ok = self.map.get(&key) == expected.as_ref();
                if ok {
                    self.map.insert(key, new);
                }
                KvResult::Cas { ok }
            }
            KvCommand::Delete { key } => KvResult::Delete {
                existed: self.map.remove(&key).is_some(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip() {
        let commands = [
            KvCommand::Put {
                key: "k".into(),
                value: "v".into(),
            },
            KvCommand::Cas {
                key: "k".into(),
                expected: None,
                new: "n".into(),
            },
            KvCommand::Cas {
                key: "k".into(),
                expected: Some("".into()),
                new: "n".into(),
            },
            KvCommand::Delete { key: "key".into() },
        ];
        for c in commands {
            assert_eq!(KvCommand::decode(&c.encode()), Some(c.clone()), "{c}");
            let mut longer = c.encode();
            longer.push(0);
            assert_eq!(KvCommand::decode(&longer), None, "trailing bytes refused");
        }
        assert_eq!(KvCommand::decode(b""), None);
        assert_eq!(KvCommand::decode(b"P\x05\x00ab"), None);
    }

    #[test]
    fn machine_applies_and_digests() {
        let mut m = KvMachine::new();
        let empty = m.digest();
        let put = KvCommand::Put {
            key: "a".into(),
            value: "1".into(),
        }
        .encode();
        assert_eq!(m.apply(Slot(1), &put), KvResult::Put);
        let cas = KvCommand::Cas {
            key: "a".into(),
            expected: Some("1".into()),
            new: "2".into(),
        };
        assert_eq!(m.apply(Slot(2), &cas.encode()), KvResult::Cas { ok: true });
        assert_eq!(m.apply(Slot(3), &cas.encode()), KvResult::Cas { ok: false });
        assert_eq!(m.get("a"), Some("2"));
        let del = KvCommand::Delete { key: "a".into() }.encode();
        assert_eq!(m.apply(Slot(4), &del), KvResult::Delete { existed: true });
        assert_eq!(m.apply(Slot(5), &del), KvResult::Delete { existed: false });
        assert_eq!(m.digest(), empty);
        assert_eq!(m.apply(Slot(6), b"?"), KvResult::Invalid);
    }
}
