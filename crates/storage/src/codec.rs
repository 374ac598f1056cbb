//! The binary encoding of [`PersistOp`] batches and WAL checkpoints: little-endian, fixed-width
//! integers, versioned, hand-written so every byte is documented in `docs/storage-format.md`.
//!
//! Decoding refuses bad input with a [`DecodeError`] and never panics; every count and length
//! is checked against the bytes that remain before anything is allocated, so a corrupt length
//! cannot make us allocate gigabytes.

use crate::error::DecodeError;
use paxos::multi::{ClientId, Command, CommandId, PersistOp, Value};
use paxos::{Ballot, NodeId, Slot};

/// Version of the batch encoding, the first byte of every batch payload.
pub const BATCH_VERSION: u8 = 1;
/// Version of the checkpoint encoding, the first byte of every checkpoint payload.
pub const CHECKPOINT_VERSION: u8 = 1;

const OP_PROMISE: u8 = 1;
const OP_ACCEPT: u8 = 2;
const OP_CHOSEN: u8 = 3;
const OP_REBUILD_STARTED: u8 = 4;
const OP_VOTE_REGAINED: u8 = 5;

const VALUE_NOOP: u8 = 0;
const VALUE_BATCH: u8 = 1;

const CHECKPOINT_HAS_PROMISE: u8 = 1;
const CHECKPOINT_REBUILDING: u8 = 2;

/// Smallest encoding of one op (a tag byte), used to bound counts before allocating.
const OP_BYTES_MIN: u64 = 1;
/// Smallest encoding of one command: client, seq, payload length.
const COMMAND_BYTES_MIN: u64 = 8 + 8 + 4;

/// What storage must never forget when old segments are deleted: the promise and whether the
/// replica is rebuilding. Written at the head of every segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Highest ballot promised so far.
    pub promised: Option<Ballot>,
    /// Whether the replica is rebuilding (must not promise or accept).
    pub rebuilding: bool,
}

/// Appends the encoding of a batch of ops to `out`.
pub fn encode_batch(ops: &[PersistOp], out: &mut Vec<u8>) {
    out.push(BATCH_VERSION);
    put_u32(out, len_u32(ops.len()));
    for op in ops {
        encode_op(op, out);
    }
}

/// Decodes a whole batch payload; trailing bytes are an error.
pub fn decode_batch(bytes: &[u8]) -> Result<Vec<PersistOp>, DecodeError> {
    let mut r = Reader::new(bytes);
    let version = r.u8()?;
    if version != BATCH_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            what: "batch",
            version: version.into(),
        });
    }
    let count = r.count("op count", OP_BYTES_MIN)?;
    let mut ops = Vec::with_capacity(count);
    for _ in 0..count {
        ops.push(decode_op(&mut r)?);
    }
    r.finish()?;
    Ok(ops)
}

/// Appends the encoding of a checkpoint to `out`.
pub fn encode_checkpoint(cp: &Checkpoint, out: &mut Vec<u8>) {
    out.push(CHECKPOINT_VERSION);
    let mut flags = 0;
    if cp.promised.is_some() {
        flags |= CHECKPOINT_HAS_PROMISE;
    }
    if cp.rebuilding {
        flags |= CHECKPOINT_REBUILDING;
    }
    out.push(flags);
    if let Some(b) = cp.promised {
        put_ballot(out, b);
    }
}

/// Decodes a whole checkpoint payload.
pub fn decode_checkpoint(bytes: &[u8]) -> Result<Checkpoint, DecodeError> {
    let mut r = Reader::new(bytes);
    let version = r.u8()?;
    if version != CHECKPOINT_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            what: "checkpoint",
            version: version.into(),
        });
    }
    let at = r.pos;
    let flags = r.u8()?;
    if flags & !(CHECKPOINT_HAS_PROMISE | CHECKPOINT_REBUILDING) != 0 {
        return Err(DecodeError::UnknownTag {
            what: "checkpoint flags",
            tag: flags,
            at,
        });
    }
    let promised = if flags & CHECKPOINT_HAS_PROMISE != 0 {
        Some(r.ballot()?)
    } else {
        None
    };
    r.finish()?;
    Ok(Checkpoint {
        promised,
        rebuilding: flags & CHECKPOINT_REBUILDING != 0,
    })
}

fn encode_op(op: &PersistOp, out: &mut Vec<u8>) {
    match op {
        PersistOp::Promise { ballot } => {
            out.push(OP_PROMISE);
            put_ballot(out, *ballot);
        }
        PersistOp::Accept {
            slot,
            ballot,
            value,
        } => {
            out.push(OP_ACCEPT);
            put_u64(out, slot.0);
            put_ballot(out, *ballot);
            encode_value(value, out);
        }
        PersistOp::Chosen {
            slot,
            ballot,
            value,
        } => {
            out.push(OP_CHOSEN);
            put_u64(out, slot.0);
            put_ballot(out, *ballot);
            encode_value(value, out);
        }
        PersistOp::RebuildStarted => out.push(OP_REBUILD_STARTED),
        PersistOp::VoteRegained { ballot } => {
            out.push(OP_VOTE_REGAINED);
            put_ballot(out, *ballot);
        }
    }
}

fn decode_op(r: &mut Reader<'_>) -> Result<PersistOp, DecodeError> {
    let at = r.pos;
    Ok(match r.u8()? {
        OP_PROMISE => PersistOp::Promise {
            ballot: r.ballot()?,
        },
        OP_ACCEPT => PersistOp::Accept {
            slot: Slot(r.u64()?),
            ballot: r.ballot()?,
            value: decode_value(r)?,
        },
        OP_CHOSEN => PersistOp::Chosen {
            slot: Slot(r.u64()?),
            ballot: r.ballot()?,
            value: decode_value(r)?,
        },
        OP_REBUILD_STARTED => PersistOp::RebuildStarted,
        OP_VOTE_REGAINED => PersistOp::VoteRegained {
            ballot: r.ballot()?,
        },
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "op",
                tag,
                at,
            })
        }
    })
}

fn encode_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Noop => out.push(VALUE_NOOP),
        Value::Batch(commands) => {
            out.push(VALUE_BATCH);
            put_u32(out, len_u32(commands.len()));
            for c in commands {
                put_u64(out, c.id.client.0);
                put_u64(out, c.id.seq);
                put_u32(out, len_u32(c.payload.len()));
                out.extend_from_slice(&c.payload);
            }
        }
    }
}

fn decode_value(r: &mut Reader<'_>) -> Result<Value, DecodeError> {
    let at = r.pos;
    match r.u8()? {
        VALUE_NOOP => Ok(Value::Noop),
        VALUE_BATCH => {
            let count = r.count("command count", COMMAND_BYTES_MIN)?;
            let mut commands = Vec::with_capacity(count);
            for _ in 0..count {
                let client = ClientId(r.u64()?);
                let seq = r.u64()?;
                let len = r.count("payload length", 1)?;
                let payload = r.bytes(len)?.to_vec();
                commands.push(Command {
                    id: CommandId { client, seq },
                    payload,
                });
            }
            Ok(Value::Batch(commands))
        }
        tag => Err(DecodeError::UnknownTag {
            what: "value",
            tag,
            at,
        }),
    }
}

/// A length as the u32 the format stores. Batches are bounded by `record_bytes_max` (a u32)
/// before they are written, so a longer one never reaches the disk; saturating keeps the
/// encoder total, and such a record would be refused by its size check first.
fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_ballot(out: &mut Vec<u8>, b: Ballot) {
    put_u64(out, b.round);
    put_u64(out, b.node.0);
}

/// A bounds-checked cursor over untrusted bytes.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated {
                at: self.pos,
                need: n - self.remaining(),
                have: self.bytes.len(),
            });
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.bytes(N)?);
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn ballot(&mut self) -> Result<Ballot, DecodeError> {
        Ok(Ballot {
            round: self.u64()?,
            node: NodeId(self.u64()?),
        })
    }

    /// A u32 count of items each at least `min_bytes` long, refused if the rest of the input
    /// could not hold that many: the bound that keeps a corrupt count from allocating.
    pub(crate) fn count(
        &mut self,
        what: &'static str,
        min_bytes: u64,
    ) -> Result<usize, DecodeError> {
        let at = self.pos;
        let count = u64::from(self.u32()?);
        let remaining = self.remaining();
        if count.saturating_mul(min_bytes) > remaining as u64 {
            return Err(DecodeError::LengthTooLarge {
                what,
                count,
                at,
                remaining,
            });
        }
        // Bounded by `remaining`, itself a usize.
        Ok(count as usize)
    }

    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        if self.remaining() != 0 {
            return Err(DecodeError::TrailingBytes {
                at: self.pos,
                extra: self.remaining(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ballot() -> impl Strategy<Value = Ballot> {
        (any::<u64>(), any::<u64>()).prop_map(|(round, node)| Ballot {
            round,
            node: NodeId(node),
        })
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Noop),
            prop::collection::vec(
                (
                    any::<u64>(),
                    any::<u64>(),
                    prop::collection::vec(any::<u8>(), 0..40)
                ),
                0..5
            )
            .prop_map(|cs| Value::Batch(
                cs.into_iter()
                    .map(|(client, seq, payload)| Command {
                        id: CommandId {
                            client: ClientId(client),
                            seq
                        },
                        payload
                    })
                    .collect()
            )),
        ]
    }

    fn op() -> impl Strategy<Value = PersistOp> {
        prop_oneof![
            ballot().prop_map(|ballot| PersistOp::Promise { ballot }),
            (any::<u64>(), ballot(), value()).prop_map(|(s, ballot, value)| PersistOp::Accept {
                slot: Slot(s),
                ballot,
                value
            }),
            (any::<u64>(), ballot(), value()).prop_map(|(s, ballot, value)| PersistOp::Chosen {
                slot: Slot(s),
                ballot,
                value
            }),
            Just(PersistOp::RebuildStarted),
            ballot().prop_map(|ballot| PersistOp::VoteRegained { ballot }),
        ]
    }

    proptest! {
        #[test]
        fn batches_round_trip(ops in prop::collection::vec(op(), 0..8)) {
            let mut out = Vec::new();
            encode_batch(&ops, &mut out);
            prop_assert_eq!(decode_batch(&out), Ok(ops));
        }

        #[test]
        fn checkpoints_round_trip(promised in prop::option::of(ballot()), rebuilding in any::<bool>()) {
            let cp = Checkpoint { promised, rebuilding };
            let mut out = Vec::new();
            encode_checkpoint(&cp, &mut out);
            prop_assert_eq!(decode_checkpoint(&out), Ok(cp));
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_batch(&bytes);
            let _ = decode_checkpoint(&bytes);
        }

        #[test]
        fn mutated_batches_never_panic(ops in prop::collection::vec(op(), 1..4), at in any::<usize>(), byte in any::<u8>()) {
            let mut out = Vec::new();
            encode_batch(&ops, &mut out);
            let i = at % out.len();
            out[i] = byte;
            let _ = decode_batch(&out);
            out.truncate(i);
            prop_assert!(decode_batch(&out).is_err());
        }
    }

    #[test]
    fn every_op_kind_round_trips() {
        let b = Ballot::new(7, NodeId(3));
        let cmd = Command {
            id: CommandId {
                client: ClientId(9),
                seq: 4,
            },
            payload: b"put k v".to_vec(),
        };
        let ops = vec![
            PersistOp::Promise { ballot: b },
            PersistOp::Accept {
                slot: Slot(1),
                ballot: b,
                value: Value::Batch(vec![cmd.clone()]),
            },
            PersistOp::Chosen {
                slot: Slot(2),
                ballot: b,
                value: Value::Noop,
            },
            PersistOp::RebuildStarted,
            PersistOp::VoteRegained { ballot: b },
        ];
        let mut out = Vec::new();
        encode_batch(&ops, &mut out);
        assert_eq!(decode_batch(&out), Ok(ops));
    }

    #[test]
    fn a_huge_count_is_refused_before_allocating() {
        let mut out = vec![BATCH_VERSION];
        put_u32(&mut out, u32::MAX);
        assert!(matches!(
            decode_batch(&out),
            Err(DecodeError::LengthTooLarge { .. })
        ));
    }
}
