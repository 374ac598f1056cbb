//! Sans-IO Paxos cores: the single-decree Synod protocol ([`synod`]), a Multi-Paxos
//! replicated log with reconfiguration ([`multi`]), Disk Paxos ([`disk`]), Paxos Commit
//! ([`commit`]), Fast Paxos ([`fast`]) and EPaxos ([`epaxos`]), with ballots, slots and
//! quorums as types.
//!
//! A core is stepped with inputs (messages, ticks, proposals, "persisted up to here") and
//! hands back outputs in one documented order: state to persist, messages to send, chosen
//! values to apply. Messages whose state is not yet durable are held inside the core until the
//! driver reports the state persisted, so a driver cannot send a promise before it is on disk.
//!
//! This crate must never do I/O, read a clock, draw randomness of its own (the caller passes a
//! seeded generator to `tick`), spawn threads, or panic on anything a peer sends: bad messages
//! are refused and counted. It panics only on a broken invariant of its own.
//!
//! ```
//! use paxos::multi::{Command, CommandId, ClientId, Replica, ReplicaOptions, Role};
//! use paxos::{Configuration, NodeId};
//! use rand_chacha::{rand_core::SeedableRng, ChaCha8Rng};
//!
//! // A one-member cluster: it elects itself, then chooses a command.
//! let config = Configuration::majority_of(1).unwrap();
//! let mut replica = Replica::new(NodeId(1), config, ReplicaOptions::default()).unwrap();
//! let mut rng = ChaCha8Rng::seed_from_u64(7);
//! let mut chosen = Vec::new();
//! for _ in 0..100 {
//!     replica.tick(&mut rng);
//!     let ready = replica.ready();
//!     // A real driver writes ready.persist to disk here, then reports it durable.
//!     if let Some(batch) = &ready.persist {
//!         replica.persisted(batch.seq);
//!     }
//!     chosen.extend(ready.chosen);
//!     if replica.role() == Role::Leader && chosen.is_empty() && replica.pending_len() == 0 {
//!         let id = CommandId { client: ClientId(1), seq: 1 };
//!         replica.propose(Command { id, payload: b"x".to_vec().into() }).unwrap();
//!     }
//! }
//! assert!(chosen.iter().any(|c| c.value.len() == 1));
//! ```

pub mod bugs;
pub mod commit;
pub mod disk;
pub mod epaxos;
pub mod fast;
mod ids;
pub mod multi;
mod outbox;
mod quorum;
pub mod synod;

pub use bugs::{Bug, PlantedBugs};
pub use ids::{Ballot, NodeId, Slot};
pub use outbox::{Outbound, PersistBatch, PersistSeq};
pub use quorum::{ConfigError, Configuration, NodeSet, QuorumParseError, QuorumSpec, MEMBERS_MAX};
