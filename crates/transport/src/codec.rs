//! A versioned binary encoding of [`paxos::multi::Message`], for the node to put in frames.
//!
//! ```text
//! byte 0     codec version (CODEC_VERSION = 1)
//! bytes 1..  the message in postcard's format: unsigned integers as LEB128 varints,
//!            an enum as its variant index (a varint, in declaration order) then its fields
//!            in declaration order, a Vec as a varint length then its elements, an Option
//!            as 0 or 1 then the value, a bool as 0 or 1.
//! ```
//!
//! Variant indices follow the declaration order of `Message`, so new variants must be
//! appended; reordering or changing a field changes the format and must bump
//! [`CODEC_VERSION`]. The golden-bytes test below catches an accidental change.
//!
//! Decoding never panics on a peer's bytes, refuses trailing bytes, and bounds what it
//! allocates: the input is at most `frame_bytes_max` (the frame was refused otherwise), and a
//! sequence's claimed length only pre-sizes its vector up to serde's cautious cap (1 MiB),
//! so a lying length fails when the data runs out instead of reserving memory for it.

use bytes::Bytes;
use paxos::multi::{ClientId, Command, CommandId, Message, SlotRecord, Value};
use paxos::{Ballot, NodeId, Slot};
use serde::{de::DeserializeOwned, Serialize};
use thiserror::Error;

/// The encoding's version, the first byte of every encoded message.
pub const CODEC_VERSION: u8 = 1;

/// Why bytes are not a message (or a message could not be encoded).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// No bytes at all.
    #[error("empty message")]
    Empty,
    /// A codec version this build does not read.
    #[error("unsupported codec version {0} (this build reads {CODEC_VERSION})")]
    UnsupportedVersion(u8),
    /// The body is not a valid encoding.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Bytes left over after a whole message: a framing bug or a forgery.
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
}

/// Encodes `message` as version byte plus postcard body.
pub fn encode(message: &Message) -> Result<Bytes, CodecError> {
    encode_value(message)
}

/// Decodes one message, refusing anything but exactly one well-formed message of our version.
pub fn decode(bytes: &[u8]) -> Result<Message, CodecError> {
    decode_value(bytes)
}

/// Encodes any serializable value the same way as a [`Message`]: the node uses it for its
/// envelope around `Message` (forwarded commands, read-index requests, snapshot chunks), so
/// one format and one set of decoding guarantees cover everything on the peer port.
pub fn encode_value<T: Serialize>(value: &T) -> Result<Bytes, CodecError> {
    let out = postcard::to_extend(value, vec![CODEC_VERSION])
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    Ok(Bytes::from(out))
}

/// Decodes exactly one value of type `T` written by [`encode_value`], with the guarantees of
/// [`decode`]: no panic, no trailing bytes, bounded allocation.
pub fn decode_value<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != CODEC_VERSION {
        return Err(CodecError::UnsupportedVersion(version));
    }
    let (value, rest) =
        postcard::take_from_bytes::<T>(body).map_err(|e| CodecError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CodecError::Trailing(rest.len()));
    }
    Ok(value)
}

fn ballot(round: u64, node: u64) -> Ballot {
    Ballot::new(round, NodeId(node))
}

fn record(slot: u64) -> SlotRecord {
    SlotRecord {
        slot: Slot(slot),
        ballot: ballot(9, 1),
        value: Value::Batch(vec![Command {
            id: CommandId {
                client: ClientId(u64::MAX),
                seq: slot,
            },
            payload: vec![1, 2, 3, 0xff].into(),
        }]),
        chosen: slot >= 10,
    }
}

/// One message of every kind, in declaration order: the round-trip tests' cases and the
/// fuzzers' seeds.
pub fn samples() -> Vec<Message> {
    vec![
        Message::PreVote { round: 3, epoch: 0 },
        Message::PreVoteReply {
            round: 3,
            granted: true,
        },
        Message::Prepare {
            ballot: ballot(4, 2),
            from_slot: Slot(10),
            epoch: 0,
        },
        Message::Promise {
            ballot: ballot(4, 2),
            from_slot: Slot(10),
            records: vec![record(10), record(11)],
            next_from: Some(Slot(12)),
            compacted_through: Slot(5),
        },
        Message::Accept {
            ballot: ballot(4, 2),
            slot: Slot(12),
            value: Value::Noop,
            chosen_through: Slot(11),
            epoch: 0,
        },
        Message::Accepted {
            ballot: ballot(3, 2),
            slot: Slot(7),
        },
        Message::Nack {
            ballot: ballot(1, 1),
            promised: ballot(2, 3),
        },
        Message::Heartbeat {
            ballot: ballot(4, 2),
            chosen_through: Slot(11),
            round: 77,
            epoch: 0,
        },
        Message::HeartbeatAck {
            ballot: ballot(4, 2),
            round: 77,
            chosen_through: Slot(9),
        },
        Message::CatchUp { from_slot: Slot(3) },
        Message::Learn {
            records: vec![record(3)],
            chosen_through: Slot(3),
            compacted_through: Slot(0),
        },
        Message::RoundQuery,
        Message::RoundReport {
            round: u64::MAX,
            log_end: Slot(u64::MAX),
            leading: ballot(4, 2),
        },
        Message::TakeLead { epoch: 3 },
        Message::RaiseBallot {
            epoch: 3,
            round: u64::MAX,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha8Rng;
    use rand_core::{RngCore, SeedableRng};

    #[test]
    fn every_variant_round_trips() {
        for m in samples() {
            let bytes = encode(&m).unwrap();
            assert_eq!(bytes[0], CODEC_VERSION);
            assert_eq!(decode(&bytes), Ok(m));
        }
    }

    #[test]
    fn golden_bytes_pin_the_format() {
        // Accepted is variant 5; ballot (3, n2); slot 7; all small varints.
        let m = Message::Accepted {
            ballot: ballot(3, 2),
            slot: Slot(7),
        };
        assert_eq!(&encode(&m).unwrap()[..], &[1, 5, 3, 2, 7]);
        assert_eq!(&encode(&Message::RoundQuery).unwrap()[..], &[1, 11]);
    }

    #[test]
    fn bad_input_is_refused_with_an_error() {
        assert_eq!(decode(&[]), Err(CodecError::Empty));
        assert_eq!(
            decode(&[2, 5, 3, 2, 7]),
            Err(CodecError::UnsupportedVersion(2))
        );
        assert_eq!(decode(&[1, 5, 3, 2, 7, 0]), Err(CodecError::Trailing(1)));
        assert!(matches!(decode(&[1, 99]), Err(CodecError::Malformed(_))));
        assert!(matches!(decode(&[1, 5, 3]), Err(CodecError::Malformed(_))));
        // A Learn claiming u64::MAX records in a few bytes: refused, not allocated.
        let mut lying = vec![1, 10];
        lying.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        lying.extend_from_slice(&[1, 2, 3]);
        assert!(matches!(decode(&lying), Err(CodecError::Malformed(_))));
    }

    #[test]
    fn random_and_mutated_bytes_never_panic() {
        let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
        let valid: Vec<Bytes> = samples().iter().map(|m| encode(m).unwrap()).collect();
        let mut decoded_ok = 0;
        for i in 0..20_000 {
            let mut bytes = valid[i % valid.len()].to_vec();
            match rng.next_u32() % 3 {
                // Flip a few bytes of a valid message.
                0 => {
                    for _ in 0..1 + rng.next_u32() % 3 {
                        let at = (rng.next_u32() as usize) % bytes.len();
                        bytes[at] = rng.next_u32() as u8;
                    }
                }
                // Cut it short.
                1 => bytes.truncate((rng.next_u32() as usize) % bytes.len()),
                // Pure noise after the version byte.
                _ => {
                    bytes.truncate(1);
                    bytes.extend((0..rng.next_u32() % 64).map(|_| rng.next_u32() as u8));
                }
            }
            if let Ok(m) = decode(&bytes) {
                // Whatever decodes must re-encode to a message that decodes the same.
                assert_eq!(decode(&encode(&m).unwrap()), Ok(m));
                decoded_ok += 1;
            }
        }
        assert!(decoded_ok < 20_000, "some inputs must have been refused");
    }
}
