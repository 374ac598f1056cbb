//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod crash_fs;

use paxos::multi::{ClientId, Command, CommandId, DurableState, PersistOp, Value};
use paxos::{Ballot, NodeId, Slot};
use rand_core::{impls, RngCore};

pub fn ballot(round: u64) -> Ballot {
    Ballot::new(round, NodeId(1))
}

pub fn accept(slot: u64, round: u64, payload_bytes: usize) -> PersistOp {
    PersistOp::Accept {
        slot: Slot(slot),
        ballot: ballot(round),
        value: Value::Batch(vec![Command {
            id: CommandId {
                client: ClientId(7),
                seq: slot,
            },
            payload: (0..payload_bytes)
                .map(|i| (i % 251) as u8 + 1)
                .collect::<Vec<u8>>()
                .into(),
        }]),
    }
}

pub fn chosen(slot: u64, round: u64) -> PersistOp {
    PersistOp::Chosen {
        slot: Slot(slot),
        ballot: ballot(round),
        value: Value::Noop,
    }
}

pub fn promise(round: u64) -> PersistOp {
    PersistOp::Promise {
        ballot: ballot(round),
    }
}

/// The state after applying `batches` in order over `base`.
pub fn replay(base: &DurableState, batches: &[Vec<PersistOp>]) -> DurableState {
    let mut s = base.clone();
    for b in batches {
        for op in b {
            s.apply(op);
        }
    }
    s
}

/// A generator that always answers 0: in `MemFs::crash` it keeps no unsynced write.
pub struct Zeros;

impl RngCore for Zeros {
    fn next_u32(&mut self) -> u32 {
        0
    }
    fn next_u64(&mut self) -> u64 {
        0
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        impls::fill_bytes_via_next(self, dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
