//! The binary encoding of [`PersistOp`] batches and WAL checkpoints: little-endian, fixed-width
//! integers, versioned, hand-written so every byte is documented in `docs/storage-format.md`.
//!
//! Decoding refuses bad input with a [`DecodeError`] and never panics; every count and length
//! is checked against the bytes that remain before anything is allocated, so a corrupt length
//! cannot make us allocate gigabytes.

use crate::error::DecodeError;
use paxos::multi::{ClientId, Command, CommandId, Membership, PersistOp, Value};
use paxos::{Ballot, Configuration, NodeId, QuorumSpec, Slot};

/// Version of the batch encoding, the first byte of every batch payload.
pub const BATCH_VERSION: u8 = 1;
/// Version of the checkpoint encoding, the first byte of every checkpoint payload.
pub const CHECKPOINT_VERSION: u8 = 1;

const OP_PROMISE: u8 = 1;
const OP_ACCEPT: u8 = 2;
const OP_CHOSEN: u8 = 3;
const OP_REBUILD_STARTED: u8 = 4;
const OP_VOTE_REGAINED: u8 = 5;
const OP_ENTER_CONFIGURATION: u8 = 6;

const VALUE_NOOP: u8 = 0;
const VALUE_BATCH: u8 = 1;
const VALUE_STOP_SIGN: u8 = 2;

const QUORUM_MAJORITY: u8 = 0;
const QUORUM_FLEXIBLE: u8 = 1;
/// Grid quorums: rows u64, columns u64. New tags only: records written before them decode as
/// they always did.
const QUORUM_GRID: u8 = 2;
/// Weighted quorums: u32 weight count, weight u32*, phase-1 threshold u64, phase-2 u64.
const QUORUM_WEIGHTED: u8 = 3;
/// Cheap Paxos quorums: main acceptors u64 (the first voters are main, the rest auxiliary).
const QUORUM_CHEAP: u8 = 4;

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

/// Where an encoding goes. A `Vec<u8>` takes every byte; a [`Scatter`] copies the small
/// fields but keeps large command payloads by reference, so the WAL can hand them to the file
/// without copying them first. Both produce the same bytes.
pub trait Sink<'a> {
    /// Appends a small field.
    fn put(&mut self, bytes: &[u8]);
    /// Appends a command's payload, which the sink may keep by reference.
    fn put_payload(&mut self, payload: &'a [u8]) {
        self.put(payload);
    }
}

impl Sink<'_> for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// Payloads at least this long are kept by reference in a [`Scatter`]; shorter ones are
/// cheaper to copy than to give the kernel as a buffer of their own.
pub const SCATTER_PAYLOAD_MIN: usize = 2048;

/// One piece of a [`Scatter`]: a run of its copied bytes, or a borrowed payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// `Scatter::bytes[start..end]`.
    Copied { start: usize, end: usize },
    /// A payload of the ops being encoded.
    Borrowed(&'a [u8]),
}

/// An encoding as a list of pieces: the concatenation of [`Scatter::pieces`] is what a
/// `Vec<u8>` sink would hold.
#[derive(Debug, Default)]
pub struct Scatter<'a> {
    /// The copied bytes.
    pub bytes: Vec<u8>,
    /// The pieces, in order.
    pub pieces: Vec<Piece<'a>>,
    /// Where the copied run not yet closed into a piece starts.
    run_start: usize,
}

impl<'a> Scatter<'a> {
    /// A scatter reusing `bytes` (cleared) for its copied bytes.
    pub fn with_bytes(mut bytes: Vec<u8>) -> Self {
        bytes.clear();
        Scatter {
            bytes,
            pieces: Vec::new(),
            run_start: 0,
        }
    }

    /// Closes the current copied run, so the next byte starts a new piece; returns the index
    /// of that next piece. A record starts and ends at a mark, so its pieces are its own.
    pub fn mark(&mut self) -> usize {
        if self.bytes.len() > self.run_start {
            self.pieces.push(Piece::Copied {
                start: self.run_start,
                end: self.bytes.len(),
            });
            self.run_start = self.bytes.len();
        }
        self.pieces.len()
    }

    /// The bytes of a piece.
    pub fn piece(&self, piece: Piece<'a>) -> &[u8] {
        match piece {
            Piece::Copied { start, end } => &self.bytes[start..end],
            Piece::Borrowed(b) => b,
        }
    }

    /// Total bytes of `pieces[range]`.
    pub fn len_of(&self, range: std::ops::Range<usize>) -> usize {
        self.pieces[range]
            .iter()
            .map(|p| self.piece(*p).len())
            .sum()
    }
}

impl<'a> Sink<'a> for Scatter<'a> {
    fn put(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    fn put_payload(&mut self, payload: &'a [u8]) {
        if payload.len() < SCATTER_PAYLOAD_MIN {
            self.bytes.extend_from_slice(payload);
            return;
        }
        self.mark();
        self.pieces.push(Piece::Borrowed(payload));
    }
}

/// Appends the encoding of a batch of ops to `out`.
pub fn encode_batch<'a, S: Sink<'a>>(ops: &'a [PersistOp], out: &mut S) {
    out.put(&[BATCH_VERSION]);
    out.put(&len_u32(ops.len()).to_le_bytes());
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

fn encode_op<'a, S: Sink<'a>>(op: &'a PersistOp, out: &mut S) {
    match op {
        PersistOp::Promise { ballot } => {
            out.put(&[OP_PROMISE]);
            sink_ballot(out, *ballot);
        }
        PersistOp::Accept {
            slot,
            ballot,
            value,
        } => {
            out.put(&[OP_ACCEPT]);
            out.put(&slot.0.to_le_bytes());
            sink_ballot(out, *ballot);
            encode_value(value, out);
        }
        PersistOp::Chosen {
            slot,
            ballot,
            value,
        } => {
            out.put(&[OP_CHOSEN]);
            out.put(&slot.0.to_le_bytes());
            sink_ballot(out, *ballot);
            encode_value(value, out);
        }
        PersistOp::RebuildStarted => out.put(&[OP_REBUILD_STARTED]),
        PersistOp::VoteRegained { ballot } => {
            out.put(&[OP_VOTE_REGAINED]);
            sink_ballot(out, *ballot);
        }
        PersistOp::EnterConfiguration { membership } => {
            out.put(&[OP_ENTER_CONFIGURATION]);
            out.put(&membership.epoch.to_le_bytes());
            out.put(&membership.first_slot.0.to_le_bytes());
            encode_configuration(&membership.config, out);
        }
    }
}

/// Voters (u32 count, u64 ids), learners (the same), the quorum rule (a tag; two u64 sizes
/// for flexible quorums, rows and columns for a grid, weights and two thresholds for weights).
fn encode_configuration<'a, S: Sink<'a>>(config: &Configuration, out: &mut S) {
    for nodes in [config.members(), config.learners()] {
        out.put(&len_u32(nodes.len()).to_le_bytes());
        for n in nodes {
            out.put(&n.0.to_le_bytes());
        }
    }
    encode_quorum_rule(&config.quorum(), out);
}

/// The quorum rule: a tag, then its sizes (see docs/storage-format.md).
pub(crate) fn encode_quorum_rule<'a, S: Sink<'a>>(rule: &QuorumSpec, out: &mut S) {
    match rule {
        QuorumSpec::Majority => out.put(&[QUORUM_MAJORITY]),
        QuorumSpec::Flexible { phase1, phase2 } => {
            out.put(&[QUORUM_FLEXIBLE]);
            out.put(&(*phase1 as u64).to_le_bytes());
            out.put(&(*phase2 as u64).to_le_bytes());
        }
        QuorumSpec::Grid { rows, columns } => {
            out.put(&[QUORUM_GRID]);
            out.put(&(*rows as u64).to_le_bytes());
            out.put(&(*columns as u64).to_le_bytes());
        }
        QuorumSpec::Weighted {
            weights,
            phase1,
            phase2,
        } => {
            out.put(&[QUORUM_WEIGHTED]);
            out.put(&len_u32(weights.len()).to_le_bytes());
            for w in weights {
                out.put(&w.to_le_bytes());
            }
            out.put(&phase1.to_le_bytes());
            out.put(&phase2.to_le_bytes());
        }
        QuorumSpec::Cheap { main } => {
            out.put(&[QUORUM_CHEAP]);
            out.put(&(*main as u64).to_le_bytes());
        }
    }
}

fn decode_configuration(r: &mut Reader<'_>) -> Result<Configuration, DecodeError> {
    let mut lists = [Vec::new(), Vec::new()];
    for (list, what) in lists.iter_mut().zip(["voter count", "learner count"]) {
        let count = r.count(what, 8)?;
        for _ in 0..count {
            list.push(NodeId(r.u64()?));
        }
    }
    let quorum = decode_quorum_rule(r)?;
    let [voters, learners] = lists;
    Configuration::with_learners(voters, learners, quorum).map_err(|_| DecodeError::Invalid {
        what:
            "configuration (duplicate, zero or too many members, or quorums that do not intersect)",
    })
}

/// Reads what [`encode_quorum_rule`] wrote; whether it fits the voters is checked by the
/// caller (a [`Configuration`]).
pub(crate) fn decode_quorum_rule(r: &mut Reader<'_>) -> Result<QuorumSpec, DecodeError> {
    let at = r.pos;
    let quorum = match r.u8()? {
        QUORUM_MAJORITY => QuorumSpec::Majority,
        QUORUM_FLEXIBLE => {
            let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
            QuorumSpec::Flexible {
                phase1: size(r.u64()?),
                phase2: size(r.u64()?),
            }
        }
        QUORUM_GRID => {
            let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
            QuorumSpec::Grid {
                rows: size(r.u64()?),
                columns: size(r.u64()?),
            }
        }
        QUORUM_WEIGHTED => {
            let count = r.count("weight count", 4)?;
            let mut weights = Vec::with_capacity(count);
            for _ in 0..count {
                weights.push(r.u32()?);
            }
            QuorumSpec::Weighted {
                weights,
                phase1: r.u64()?,
                phase2: r.u64()?,
            }
        }
        QUORUM_CHEAP => QuorumSpec::Cheap {
            main: usize::try_from(r.u64()?).unwrap_or(usize::MAX),
        },
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "quorum rule",
                tag,
                at,
            })
        }
    };
    Ok(quorum)
}

fn sink_ballot<'a, S: Sink<'a>>(out: &mut S, b: Ballot) {
    out.put(&b.round.to_le_bytes());
    out.put(&b.node.0.to_le_bytes());
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
        OP_ENTER_CONFIGURATION => PersistOp::EnterConfiguration {
            membership: Membership {
                epoch: r.u64()?,
                first_slot: Slot(r.u64()?),
                config: decode_configuration(r)?,
            },
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

fn encode_value<'a, S: Sink<'a>>(value: &'a Value, out: &mut S) {
    match value {
        Value::Noop => out.put(&[VALUE_NOOP]),
        Value::Batch(commands) => {
            out.put(&[VALUE_BATCH]);
            out.put(&len_u32(commands.len()).to_le_bytes());
            for c in commands {
                out.put(&c.id.client.0.to_le_bytes());
                out.put(&c.id.seq.to_le_bytes());
                out.put(&len_u32(c.payload.len()).to_le_bytes());
                out.put_payload(&c.payload);
            }
        }
        Value::StopSign(next) => {
            out.put(&[VALUE_STOP_SIGN]);
            encode_configuration(next, out);
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
                let payload = bytes::Bytes::copy_from_slice(r.bytes(len)?);
                commands.push(Command {
                    id: CommandId { client, seq },
                    payload,
                });
            }
            Ok(Value::Batch(commands))
        }
        VALUE_STOP_SIGN => Ok(Value::StopSign(decode_configuration(r)?)),
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

/// Opens a small checksummed file's bytes (meta, quorum rule, log floor): a body that ends in
/// its CRC32C, starting with an 8-byte `magic` and a `u32` version that must be `version`.
/// Returns a reader past that header; `what` names the file in errors ("meta" gives "meta
/// magic" and version errors about "meta").
pub(crate) fn open_small_file<'a>(
    bytes: &'a [u8],
    magic: &[u8; 8],
    version: u32,
    what: &'static str,
    magic_what: &'static str,
) -> Result<Reader<'a>, DecodeError> {
    if bytes.len() < 4 {
        return Err(DecodeError::Truncated {
            at: 0,
            need: 4 - bytes.len(),
            have: bytes.len(),
        });
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Err(DecodeError::Checksum { stored, computed });
    }
    let mut r = Reader::new(body);
    if r.bytes(8)? != magic {
        return Err(DecodeError::Invalid { what: magic_what });
    }
    let found = r.u32()?;
    if found != version {
        return Err(DecodeError::UnsupportedVersion {
            what,
            version: found,
        });
    }
    Ok(r)
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
            configuration().prop_map(Value::StopSign),
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
                        payload: payload.into()
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
            (any::<u64>(), any::<u64>(), configuration()).prop_map(|(epoch, first, config)| {
                PersistOp::EnterConfiguration {
                    membership: Membership {
                        epoch,
                        first_slot: Slot(first),
                        config,
                    },
                }
            }),
        ]
    }

    /// 1 to 7 voters and 0 to 3 learners, distinct, with majority, intersecting flexible,
    /// grid (one row of all voters) or weighted quorums.
    fn configuration() -> impl Strategy<Value = Configuration> {
        (1usize..8, 0usize..4, 0u8..4, 1u64..1000).prop_map(|(v, l, kind, base)| {
            let voters: Vec<NodeId> = (0..v as u64).map(|i| NodeId(base + i)).collect();
            let learners: Vec<NodeId> = (0..l as u64).map(|i| NodeId(base + 100 + i)).collect();
            let quorum = match kind {
                0 => QuorumSpec::Majority,
                1 => QuorumSpec::Flexible {
                    phase1: v,
                    phase2: 1,
                },
                2 => QuorumSpec::Grid {
                    rows: 1,
                    columns: v,
                },
                _ => {
                    let weights: Vec<u32> = (1..=v as u32).collect();
                    let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
                    QuorumSpec::Weighted {
                        weights,
                        phase1: total,
                        phase2: 1,
                    }
                }
            };
            Configuration::with_learners(voters, learners, quorum).unwrap()
        })
    }

    /// Accepts whose payloads fall on both sides of [`SCATTER_PAYLOAD_MIN`].
    fn accepts_with_large_payloads() -> impl Strategy<Value = Vec<PersistOp>> {
        let payload = prop_oneof![
            prop::collection::vec(any::<u8>(), 0..40),
            prop::collection::vec(
                any::<u8>(),
                SCATTER_PAYLOAD_MIN - 2..SCATTER_PAYLOAD_MIN + 2
            ),
            prop::collection::vec(any::<u8>(), 5000..5001),
        ];
        let command = (any::<u64>(), payload).prop_map(|(seq, payload)| Command {
            id: CommandId {
                client: ClientId(1),
                seq,
            },
            payload: payload.into(),
        });
        let accept = (any::<u64>(), ballot(), prop::collection::vec(command, 0..4)).prop_map(
            |(s, ballot, commands)| PersistOp::Accept {
                slot: Slot(s),
                ballot,
                value: Value::Batch(commands),
            },
        );
        prop::collection::vec(prop_oneof![accept, op()], 0..6)
    }

    proptest! {
        #[test]
        fn a_scatter_holds_the_bytes_a_vec_holds(ops in accepts_with_large_payloads()) {
            let mut flat = Vec::new();
            encode_batch(&ops, &mut flat);
            let mut scatter = Scatter::with_bytes(vec![1, 2, 3]);
            let first = scatter.mark();
            encode_batch(&ops, &mut scatter);
            let end = scatter.mark();
            let joined: Vec<u8> = scatter.pieces[first..end]
                .iter()
                .flat_map(|p| scatter.piece(*p).to_vec())
                .collect();
            prop_assert_eq!(&joined, &flat);
            prop_assert_eq!(scatter.len_of(first..end), flat.len());
            // Large payloads are borrowed, small ones copied.
            let large = ops.iter().filter_map(|op| match op {
                PersistOp::Accept { value: Value::Batch(cs), .. }
                | PersistOp::Chosen { value: Value::Batch(cs), .. } => Some(cs),
                _ => None,
            }).flatten().filter(|c| c.payload.len() >= SCATTER_PAYLOAD_MIN).count();
            let borrowed = scatter.pieces.iter().filter(|p| matches!(p, Piece::Borrowed(_))).count();
            prop_assert_eq!(borrowed, large);
        }

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
            payload: bytes::Bytes::from_static(b"put k v"),
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

    /// The bytes an older writer (before grid and weighted rules) wrote for a stop-sign with
    /// flexible quorums, pinned by hand: they still decode to the same configuration.
    #[test]
    fn a_flexible_configuration_written_before_grid_and_weights_still_decodes() {
        let mut old = vec![BATCH_VERSION];
        put_u32(&mut old, 1); // one op
        old.push(OP_ENTER_CONFIGURATION);
        put_u64(&mut old, 2); // epoch
        put_u64(&mut old, 9); // first slot
        put_u32(&mut old, 3); // voters
        for id in [1, 2, 3] {
            put_u64(&mut old, id);
        }
        put_u32(&mut old, 0); // learners
        old.push(1); // flexible
        put_u64(&mut old, 3);
        put_u64(&mut old, 1);
        let config = Configuration::new(
            vec![NodeId(1), NodeId(2), NodeId(3)],
            QuorumSpec::Flexible {
                phase1: 3,
                phase2: 1,
            },
        )
        .unwrap();
        let want = vec![PersistOp::EnterConfiguration {
            membership: Membership {
                epoch: 2,
                first_slot: Slot(9),
                config,
            },
        }];
        assert_eq!(decode_batch(&old), Ok(want.clone()));
        let mut again = Vec::new();
        encode_batch(&want, &mut again);
        assert_eq!(again, old, "the encoding of an old rule changed");
    }

    #[test]
    fn grid_and_weighted_rules_round_trip_and_a_non_intersecting_one_is_refused() {
        let voters = || (1..=6).map(NodeId).collect::<Vec<_>>();
        for rule in [
            QuorumSpec::Grid {
                rows: 3,
                columns: 2,
            },
            QuorumSpec::Weighted {
                weights: vec![2, 1, 1, 1, 1, 1],
                phase1: 5,
                phase2: 3,
            },
            QuorumSpec::Cheap { main: 4 },
        ] {
            let config = Configuration::new(voters(), rule).unwrap();
            let ops = vec![PersistOp::EnterConfiguration {
                membership: Membership {
                    epoch: 1,
                    first_slot: Slot(4),
                    config,
                },
            }];
            let mut out = Vec::new();
            encode_batch(&ops, &mut out);
            assert_eq!(decode_batch(&out), Ok(ops));
        }
        // Weighted 2,1,1,1,1,1 (total 7) with thresholds 4 + 3 = 7: disjoint quorums possible.
        let mut bad = vec![BATCH_VERSION];
        put_u32(&mut bad, 1);
        bad.push(OP_ENTER_CONFIGURATION);
        put_u64(&mut bad, 1);
        put_u64(&mut bad, 4);
        put_u32(&mut bad, 6);
        for id in 1..=6 {
            put_u64(&mut bad, id);
        }
        put_u32(&mut bad, 0);
        bad.push(QUORUM_WEIGHTED);
        put_u32(&mut bad, 6);
        for w in [2u32, 1, 1, 1, 1, 1] {
            bad.extend_from_slice(&w.to_le_bytes());
        }
        put_u64(&mut bad, 4);
        put_u64(&mut bad, 3);
        assert!(matches!(
            decode_batch(&bad),
            Err(DecodeError::Invalid { .. })
        ));
    }
}
