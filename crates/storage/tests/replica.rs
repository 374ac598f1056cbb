//! End to end with the real core: a one-member replica persists through the WAL on the
//! simulated disk, crashes, and recovers exactly its durable state.

mod common;

use paxos::multi::{ClientId, Command, CommandId, Replica, ReplicaOptions, Role};
use paxos::{Configuration, NodeId};
use rand_chacha::{rand_core::SeedableRng, ChaCha8Rng};
use storage::memfs::MemFs;
use storage::{Wal, WalOptions};

#[test]
fn a_replica_recovers_what_it_persisted_through_the_wal() {
    let fs = MemFs::new();
    let options = WalOptions::with_sizes(8192, 2048);
    let config = Configuration::majority_of(1).unwrap();
    let (mut wal, rec) = Wal::open(fs.clone(), "/n1", options.clone()).unwrap();
    let mut replica = Replica::recover(
        NodeId(1),
        config.clone(),
        ReplicaOptions::default(),
        rec.state,
    )
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut proposed = 0u64;
    for _ in 0..400 {
        replica.tick(&mut rng);
        let ready = replica.ready();
        if let Some(batch) = &ready.persist {
            wal.append(&batch.ops).unwrap();
            wal.sync().unwrap();
            replica.persisted(batch.seq);
        }
        if replica.role() == Role::Leader && replica.pending_len() == 0 && proposed < 50 {
            proposed += 1;
            let id = CommandId {
                client: ClientId(1),
                seq: proposed,
            };
            replica
                .propose(Command {
                    id,
                    payload: vec![proposed as u8; 100].into(),
                })
                .unwrap();
        }
    }
    let promised = replica.promised();
    let chosen_through = replica.chosen_through();
    assert!(chosen_through.0 >= 40, "chose through {chosen_through}");
    assert!(wal.segments().len() > 1, "the log rotated");
    fs.crash(&mut ChaCha8Rng::seed_from_u64(12));
    let (_, rec) = Wal::open(fs, "/n1", options).unwrap();
    assert_eq!(rec.state.promised, Some(promised));
    let recovered =
        Replica::recover(NodeId(1), config, ReplicaOptions::default(), rec.state).unwrap();
    assert_eq!(recovered.promised(), promised);
}
