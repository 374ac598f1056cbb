//! What members say to each other besides Paxos: the member's envelope on the peer port.
//!
//! Encoded as the transport's versioned codec encodes a value (`transport::codec::
//! encode_value`: a version byte, [`CODEC_VERSION`], then postcard), byte for byte, so the
//! wire is unchanged; the member cannot depend on the transport, so the few lines are here.
//! Variants are appended, never reordered (the variant index is on the wire).

use crate::cluster::ClusterChange;
use crate::error::MemberError;
use bytes::Bytes;
use paxos::multi::{ClientId, Command, CommandId, Message, ReadId};
use paxos::Slot;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The first byte of every encoded message (the transport codec's version).
pub const CODEC_VERSION: u8 = 1;

/// Why bytes are not a peer message (or a message could not be encoded).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum CodecError {
    /// No bytes at all.
    #[error("empty message")]
    Empty,
    /// A version this build does not read.
    #[error("unsupported codec version {0} (this build reads {CODEC_VERSION})")]
    UnsupportedVersion(u8),
    /// The body is not a valid encoding.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Bytes left over after one whole message.
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
}

/// One message between members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMessage {
    /// A Paxos message for the core.
    Paxos(Message),
    /// A client write that reached a member other than the leader: propose it. The sender
    /// learns the outcome by applying the slot it is chosen in (same command id), so no answer
    /// travels back; the sender re-sends after a timeout, and the session table makes a
    /// command chosen twice apply once.
    Forward(Command),
    /// "Confirm your leadership for my read `id`" (read-index on behalf of a follower).
    ReadIndexAsk {
        /// The asker's read.
        id: ReadId,
    },
    /// The leader's answer: serve the read once applied through `slot`; `None`: not leader
    /// any more, ask again.
    ReadIndexAnswer {
        /// The asker's read.
        id: ReadId,
        /// Apply through here first.
        slot: Option<Slot>,
    },
    /// "What is the highest round you have seen?" from a member with an empty data directory
    /// deciding whether the cluster is new (see `server.rs`).
    Probe,
    /// Answer to [`PeerMessage::Probe`].
    ProbeReply {
        /// The highest round the member promised or saw; 0 if it has taken part in nothing.
        round: u64,
    },
    /// A member introduces itself, so every member can list everyone's client URLs.
    Hello {
        /// Its client URLs.
        client_urls: Vec<String>,
    },
    /// "Send me your snapshot covering at least `through`, from byte `offset`."
    SnapshotAsk {
        /// The slot it must cover.
        through: Slot,
        /// Resume from here (0: from the start).
        offset: u64,
    },
    /// One chunk of a snapshot (storage's `SnapshotChunk` encoding, CRC-checked).
    SnapshotChunk(#[serde(with = "serde_bytes_compat")] Bytes),
    /// From the leader: "take the lead", a leadership transfer (etcd's MoveLeader). The
    /// receiver starts phase 1 at once with a higher ballot; Paxos keeps that safe whenever it
    /// happens, so the message only decides who runs, never what is chosen.
    TakeLead,
    /// A follower's client asked for a membership change: carry it out as leader and answer
    /// with [`PeerMessage::ChangeDone`] under the same `ask`.
    ChangeAsk {
        /// The follower's number for it.
        ask: u64,
        /// The change.
        change: ClusterChange,
    },
    /// The leader's answer to a [`PeerMessage::ChangeAsk`]: in force once applied through
    /// the slot, or refused. A refusal because the receiver did not lead gives the change
    /// back (nothing was proposed), to be asked of the next leader.
    ChangeDone {
        /// The follower's number for it.
        ask: u64,
        /// Done through this slot, or why not.
        result: Result<Slot, MemberError>,
        /// The change, when it can be asked again elsewhere.
        change: Option<ClusterChange>,
    },
    /// Several client writes forwarded together (those a follower routed to the leader while
    /// handling one input), each as a [`PeerMessage::Forward`] of its own, in order.
    Forwards(Vec<Command>),
    /// [`PeerMessage::Forwards`] with the distributed-tracing context of some of its writes,
    /// sent instead of it only when the sender exports spans
    /// (`--experimental-enable-distributed-tracing`), so the leader's spans of a write join
    /// the follower's trace. The member ignores the contexts (the node reads them); a member
    /// that exports nothing never sends this, so the wire of a cluster without tracing is
    /// unchanged.
    ForwardsTraced {
        /// The writes, as [`PeerMessage::Forwards`] carries them.
        commands: Vec<Command>,
        /// The context of each traced one among them, named by its command id.
        traces: Vec<(CommandId, TraceContext)>,
    },
    /// A follower's client asks about a lease only the leader knows the time of (etcd's
    /// leasehttp): renew it, or say how long it has left. Answered with
    /// [`PeerMessage::LeaseAnswer`] under the same `ask`.
    LeaseAsk {
        /// The follower's number for it.
        ask: u64,
        /// The lease.
        lease: i64,
        /// What is asked.
        question: LeaseQuestion,
    },
    /// The leader's answer to a [`PeerMessage::LeaseAsk`].
    LeaseAnswer {
        /// The follower's number for it.
        ask: u64,
        /// The lease's TTLs (`None`: no such lease, or it ran out), or why not (not the
        /// leader any more: ask the next one).
        result: Result<Option<LeaseTtl>, MemberError>,
    },
    /// Cheap Paxos, from the leader to an auxiliary it sent Paxos messages to: every main
    /// holds the chosen log through `through`, so the auxiliary may forget those slots'
    /// values (`member/auxiliary.rs`). Last, so the other variants keep their wire tags.
    MainsHave {
        /// Every main reported its chosen prefix through here.
        through: Slot,
    },
}

/// What a [`PeerMessage::LeaseAsk`] asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseQuestion {
    /// Renew the lease (a keep-alive).
    Renew,
    /// How long it has left (time-to-live).
    Remaining,
}

/// A lease's TTLs as the leader answers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseTtl {
    /// The granted TTL, seconds.
    pub granted: i64,
    /// Whole seconds left by the leader's clock (rounded down, as etcd's).
    pub remaining: i64,
}

/// Where a write's trace goes on: W3C trace context's ids and flags (`traceparent`), so the
/// member needs no tracing library.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TraceContext {
    /// The trace the write belongs to.
    pub trace_id: [u8; 16],
    /// The sender's span the receiver's spans are children of.
    pub span_id: [u8; 8],
    /// W3C trace flags (bit 0: sampled).
    pub flags: u8,
}

/// `Bytes` as a postcard byte string.
mod serde_bytes_compat {
    use bytes::Bytes;
    use serde::de::{Error, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    pub fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(b)
    }

    /// Read as one slice (a byte string and a sequence of `u8` are the same bytes in
    /// postcard), not one call per byte as `Vec<u8>`'s own deserializer does.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        d.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Bytes;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Bytes, E> {
            Ok(Bytes::copy_from_slice(v))
        }

        fn visit_byte_buf<E: Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
            Ok(Bytes::from(v))
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bytes, A::Error> {
            // The hint comes from the input: bounded so a lying length allocates little.
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(Bytes::from(out))
        }
    }
}

/// Encodes for the wire.
pub fn encode(msg: &PeerMessage) -> Result<Bytes, CodecError> {
    // Sized first (a cheap pass: byte strings count as their length), so a large accept
    // is written into one allocation instead of growing one by doubling.
    let size = postcard::experimental::serialized_size(msg)
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    let mut out = Vec::with_capacity(size + 1);
    out.push(CODEC_VERSION);
    let out = postcard::to_extend(msg, out).map_err(|e| CodecError::Malformed(e.to_string()))?;
    debug_assert_eq!(
        out.len(),
        size + 1,
        "postcard's size pass agrees with its encoding"
    );
    Ok(Bytes::from(out))
}

/// Decodes from the wire; a peer's garbage is an error, never a panic, and trailing bytes
/// are refused.
pub fn decode(bytes: &[u8]) -> Result<PeerMessage, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != CODEC_VERSION {
        return Err(CodecError::UnsupportedVersion(version));
    }
    let (msg, rest) = postcard::take_from_bytes::<PeerMessage>(body)
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CodecError::Trailing(rest.len()));
    }
    Ok(msg)
}

/// One message of every kind: the round-trip test's cases and the fuzzers' seeds.
pub fn samples() -> Vec<PeerMessage> {
    vec![
        PeerMessage::Paxos(Message::RoundQuery),
        PeerMessage::Forward(Command {
            id: CommandId {
                client: ClientId(9),
                seq: 3,
            },
            payload: vec![1, 2, 3].into(),
        }),
        PeerMessage::ReadIndexAsk { id: ReadId(4) },
        PeerMessage::ReadIndexAnswer {
            id: ReadId(4),
            slot: Some(Slot(8)),
        },
        PeerMessage::Probe,
        PeerMessage::ProbeReply { round: 7 },
        PeerMessage::Hello {
            client_urls: vec!["http://127.0.0.1:2379".into()],
        },
        PeerMessage::SnapshotAsk {
            through: Slot(5),
            offset: 10,
        },
        PeerMessage::SnapshotChunk(Bytes::from_static(b"chunk")),
        PeerMessage::TakeLead,
        PeerMessage::MainsHave { through: Slot(12) },
        PeerMessage::Forwards(vec![
            Command {
                id: CommandId {
                    client: ClientId(9),
                    seq: 4,
                },
                payload: vec![4].into(),
            },
            Command {
                id: CommandId {
                    client: ClientId(10),
                    seq: 1,
                },
                payload: vec![5, 6].into(),
            },
        ]),
        PeerMessage::ForwardsTraced {
            commands: vec![Command {
                id: CommandId {
                    client: ClientId(11),
                    seq: 2,
                },
                payload: vec![7].into(),
            }],
            traces: vec![(
                CommandId {
                    client: ClientId(11),
                    seq: 2,
                },
                TraceContext {
                    trace_id: [3; 16],
                    span_id: [4; 8],
                    flags: 1,
                },
            )],
        },
        PeerMessage::LeaseAsk {
            ask: 3,
            lease: 0x7e57,
            question: LeaseQuestion::Renew,
        },
        PeerMessage::LeaseAnswer {
            ask: 3,
            result: Ok(Some(LeaseTtl {
                granted: 60,
                remaining: 59,
            })),
        },
        PeerMessage::LeaseAnswer {
            ask: 4,
            result: Err(MemberError::NotLeader),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_round_trips_and_garbage_is_refused() {
        let all = samples();
        for m in all {
            let bytes = encode(&m).unwrap();
            assert_eq!(decode(&bytes).unwrap(), m);
            // A cut-short message is refused.
            assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        }
        assert!(decode(&[1, 200]).is_err());
        assert!(decode(&[]).is_err());
    }

    /// What `Command` and the snapshot chunk were before their bytes were serialized as byte
    /// strings: serde's default, a sequence of `u8`.
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct SeqCommand {
        id: CommandId,
        payload: Vec<u8>,
    }

    /// `PeerMessage`'s variants in their order (postcard tags a variant by its index); only
    /// those with bytes in them are filled in.
    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    enum SeqEnvelope {
        Paxos,
        Forward(SeqCommand),
        ReadIndexAsk,
        ReadIndexAnswer,
        Probe,
        ProbeReply,
        Hello,
        SnapshotAsk,
        SnapshotChunk(Vec<u8>),
        TakeLead,
        ChangeAsk,
        ChangeDone,
        Forwards(Vec<SeqCommand>),
    }

    #[test]
    fn byte_strings_are_the_bytes_members_sent_before() {
        let payload: Vec<u8> = (0..=255u8).cycle().take(700).collect();
        let id = CommandId {
            client: ClientId(0x1234_5678_9abc),
            seq: 300,
        };
        let command = Command {
            id,
            payload: Bytes::from(payload.clone()),
        };
        let old = SeqCommand {
            id,
            payload: payload.clone(),
        };
        let cases = [
            (
                PeerMessage::Forward(command.clone()),
                SeqEnvelope::Forward(SeqCommand {
                    id,
                    payload: payload.clone(),
                }),
            ),
            (
                PeerMessage::Forwards(vec![command.clone(), command]),
                SeqEnvelope::Forwards(vec![
                    SeqCommand {
                        id,
                        payload: payload.clone(),
                    },
                    old,
                ]),
            ),
            (
                PeerMessage::SnapshotChunk(Bytes::from(payload.clone())),
                SeqEnvelope::SnapshotChunk(payload),
            ),
        ];
        for (new, old) in cases {
            let mut old_bytes = vec![CODEC_VERSION];
            old_bytes.extend(postcard::to_allocvec(&old).unwrap());
            let new_bytes = encode(&new).unwrap();
            assert_eq!(new_bytes[..], old_bytes[..], "{new:?}");
            assert_eq!(decode(&old_bytes).unwrap(), new);
            let (version, body) = new_bytes.split_first().unwrap();
            assert_eq!(*version, CODEC_VERSION);
            assert_eq!(postcard::from_bytes::<SeqEnvelope>(body).unwrap(), old);
        }
    }

    /// An Accept carries the shared `Bytes` payloads of its batch as the bytes a batch of
    /// `Vec<u8>` payloads (serde's sequence of `u8`) made: the leader's Accepts read as they
    /// did before payloads were shared.
    #[test]
    fn an_accept_with_shared_payloads_is_the_bytes_members_sent_before() {
        let payloads: [Vec<u8>; 2] = [(0..=255u8).cycle().take(300).collect(), vec![9; 200]];
        let ids = [
            CommandId {
                client: ClientId(7),
                seq: 1,
            },
            CommandId {
                client: ClientId(1 << 40),
                seq: 129,
            },
        ];
        let accept = |value| {
            PeerMessage::Paxos(Message::Accept {
                ballot: paxos::Ballot::new(3, paxos::NodeId(2)),
                slot: Slot(1000),
                value,
                chosen_through: Slot(999),
                epoch: 4,
            })
        };
        let commands: Vec<Command> = ids
            .iter()
            .zip(&payloads)
            .map(|(id, p)| Command {
                id: *id,
                payload: Bytes::from(p.clone()),
            })
            .collect();
        let full = encode(&accept(paxos::multi::Value::Batch(commands))).unwrap();
        // The same Accept with an empty batch, its count (0) replaced by 2 and the commands
        // as the old derive wrote them inserted after it.
        let empty = encode(&accept(paxos::multi::Value::Batch(Vec::new()))).unwrap();
        let tail = postcard::to_allocvec(&(Slot(999), 4u64)).unwrap();
        let count_at = empty.len() - tail.len() - 1;
        assert_eq!(empty[count_at], 0);
        let mut old = empty[..count_at].to_vec();
        old.push(2);
        for (id, p) in ids.iter().zip(&payloads) {
            let seq = SeqCommand {
                id: *id,
                payload: p.clone(),
            };
            old.extend(postcard::to_allocvec(&seq).unwrap());
        }
        old.extend(&tail);
        assert_eq!(full, old);
        assert_eq!(decode(&old).unwrap(), decode(&full).unwrap());
    }
}
