//! Snapshots of a simulated node's applied state, and the receiving side of their transfer
//! between nodes in chunks over the simulated (lossy, reordering) network.
//!
//! A snapshot holds the key-value map and the session table, so that a retry applied before
//! the snapshot is still recognised after it. Transfer is pull-based and resumable: the
//! receiver asks for the chunk at its current offset and re-asks after a timeout, so a lost,
//! duplicated or reordered chunk only costs time.

use crate::kv::{KvMachine, KvResult};
use paxos::multi::{Applier, ClientId, Membership};
use paxos::{NodeId, Slot};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use storage::memfs::MemFs;
use storage::SnapshotReceiver;

/// Bytes per transferred chunk: small, so that a transfer spans many messages and faults.
pub const CHUNK_BYTES: usize = 256;

/// The applied state through `through`, as stored and as sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct SnapshotBody {
    through: u64,
    machine: KvMachine,
    sessions: Vec<(ClientId, u64, KvResult)>,
    /// The configuration in force after `through`, once a change was applied (absent before,
    /// so snapshots of runs without changes keep their bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    membership: Option<Membership>,
}

/// A durable snapshot: the slot it covers and its encoded body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSnapshot {
    /// Every slot through here is covered.
    pub through: Slot,
    /// The encoded state (with a checksum at the end).
    pub bytes: Vec<u8>,
}

impl StoredSnapshot {
    /// Encodes an applier's state.
    pub fn take(applier: &Applier<KvMachine>) -> StoredSnapshot {
        let body = SnapshotBody {
            through: applier.applied_through().0,
            machine: applier.machine().clone(),
            sessions: applier
                .sessions()
                .iter()
                .map(|(c, (seq, out))| (*c, *seq, out.clone()))
                .collect(),
            membership: applier.membership().cloned(),
        };
        let mut bytes = serde_json::to_vec(&body).expect("a snapshot body always encodes");
        let crc = checksum(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        StoredSnapshot {
            through: applier.applied_through(),
            bytes,
        }
    }

    /// Decodes and verifies; `None` if the bytes are damaged or cover another slot.
    pub fn restore(&self) -> Option<Applier<KvMachine>> {
        let split = self.bytes.len().checked_sub(8)?;
        let (body, crc) = self.bytes.split_at(split);
        if checksum(body).to_le_bytes() != crc {
            return None;
        }
        let body: SnapshotBody = serde_json::from_slice(body).ok()?;
        if body.through != self.through.0 {
            return None;
        }
        let sessions: BTreeMap<ClientId, (u64, KvResult)> = body
            .sessions
            .into_iter()
            .map(|(c, seq, out)| (c, (seq, out)))
            .collect();
        let mut applier = Applier::restore(body.machine, sessions, self.through);
        applier.set_membership(body.membership);
        Some(applier)
    }
}

/// FNV-1a over the body: the simulator only needs to notice a transfer that went wrong.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A snapshot being received from a peer, through storage's own transfer code: chunks are
/// encoded and checksummed by [`SnapshotChunk`], written by a [`SnapshotReceiver`] straight into
/// the receiver's data directory, and the whole body is verified before it is installed.
pub struct Incoming {
    /// The peer it comes from.
    pub from: NodeId,
    /// The slot it must cover at least.
    pub at_least: Slot,
    /// Open once the first chunk (offset 0) told which snapshot it is.
    pub receiver: Option<SnapshotReceiver<MemFs>>,
    /// Virtual time of the last progress, for re-asking.
    pub progress_at_us: u64,
    /// Re-asks since the last progress; past a bound the transfer is abandoned, so that the
    /// next request can go to a peer that answers (the source may be down for good).
    pub retries: u32,
}

impl Incoming {
    /// Starts receiving from `from` a snapshot covering at least `at_least`.
    pub fn new(from: NodeId, at_least: Slot, now_us: u64) -> Incoming {
        Incoming {
            from,
            at_least,
            receiver: None,
            progress_at_us: now_us,
            retries: 0,
        }
    }

    /// The offset to ask for next.
    pub fn offset(&self) -> u64 {
        self.receiver
            .as_ref()
            .map_or(0, SnapshotReceiver::next_offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paxos::multi::{ChosenEntry, Command, CommandId, Value};

    fn applier_with(n: u64) -> Applier<KvMachine> {
        let mut a = Applier::new(KvMachine::new());
        let mut out = Vec::new();
        for s in 1..=n {
            let cmd = crate::kv::KvCommand::Put {
                key: format!("k{s}"),
                value: format!("v{s}"),
            };
            let entry = ChosenEntry {
                slot: Slot(s),
                value: Value::Batch(vec![Command {
                    id: CommandId {
                        client: ClientId(s % 3),
                        seq: s,
                    },
                    payload: cmd.encode().into(),
                }]),
            };
            a.apply(&entry, &mut out);
        }
        a
    }

    #[test]
    fn a_snapshot_restores_machine_and_sessions_and_refuses_damage() {
        let a = applier_with(20);
        let snap = StoredSnapshot::take(&a);
        let b = snap.restore().expect("restores");
        assert_eq!(b.machine(), a.machine());
        assert_eq!(b.sessions(), a.sessions());
        assert_eq!(b.applied_through(), Slot(20));
        for i in [0, snap.bytes.len() / 2, snap.bytes.len() - 1] {
            let mut bad = snap.clone();
            bad.bytes[i] ^= 0x10;
            assert!(bad.restore().is_none(), "damage at byte {i} went unnoticed");
        }
    }
}
