//! A Synod member as a deterministic state machine: everything a member decides around the
//! Paxos core ([`paxos::multi::Replica`]) and the applied key-value store ([`kv::KvStore`]
//! behind a [`paxos::multi::Applier`]), with no I/O.
//!
//! What it holds: client sessions and sequence numbers (exactly-once apply of writes),
//! writes forwarded to the leader and re-sent, linearizable reads (read-index, at followers
//! through `ReadIndexAsk`/`ReadIndexAnswer`), lease clocks and the leader's expiry proposals,
//! when to snapshot and the schedule of a snapshot transfer, leadership transfers
//! (MoveLeader), Defragment, the NOSPACE quota, the members' client URLs, and the batches of
//! applied changes shared with watchers. The peer envelope ([`peer::PeerMessage`]) is here too.
//!
//! **What it must never do:** I/O of any kind (no socket, no file: storage is used for its
//! types and pure encodings only), read a clock (time comes in as [`Micros`] with every
//! input), draw randomness of its own (the caller hands it a seeded generator and the
//! incarnation number), hold a tokio or other async type, spawn a thread, or panic on a
//! peer's or a client's input. So the tokio driver in `crates/node` and a simulator can drive
//! the very same member, and one run's outputs are a function of its inputs and seed.
//!
//! # Inputs
//!
//! Each input carries the caller's monotonic time `now`:
//! - [`Member::on_request`]`(now, id, request)`: a client's [`Request`], named by a caller-chosen
//!   [`RequestId`]; its [`Answer`] comes back with that id, now or later.
//! - [`Member::on_peer`]`(now, from, message)`: a [`peer::PeerMessage`] from another member.
//! - [`Member::tick`]`(now)`: the periodic tick (elections, heartbeats, re-sends, timeouts,
//!   lease expiry).
//! - [`Member::on_durable`]`(now, tag)`: the log synced every record through `tag`;
//!   [`Member::on_log_failed`] when it cannot.
//! - [`Member::on_snapshot_written`]`(now, through, result)`: a snapshot write ended (`Ok` with
//!   the bytes of its store part once durable).
//! - [`Member::on_snapshot_chunk_stored`]`(now, transfer, outcome)`: a received chunk was
//!   stored (or not), or completed a snapshot.
//!
//! # Outputs, and their order
//!
//! After every input, drain [`Member::poll_output`] until it answers `None`, and carry out each
//! [`Output`] in the order it comes. The order is the order the member decided things in, which
//! is the order the Paxos core's `Ready` dictates: the persist records of a batch
//! ([`Output::Persist`]) before the messages of the same step ([`Output::Send`]), then the effects
//! of applying the chosen slots (answers, [`Output::AppliedChanges`], [`Output::AppliedRevision`],
//! a snapshot to write), then read answers. Safety never rests on the driver's speed: a message
//! that depends on a persist is held inside the core until [`Member::on_durable`] reports it, so
//! a driver that submits records asynchronously (group commit) is correct. [`Output::Crash`]
//! (test-only) means "die here": the driver must do none of the outputs after it, which is what a
//! crash at that point of the old single-task loop did.
//!
//! Snapshot files are the driver's: it encodes the body of [`Output::WriteSnapshot`] (a
//! [`snapshot::BodyJob`]: a view of the store, O(1) for the member to take; the encoding is the
//! pass over the whole store, so the driver runs it off the thread that drives the member, which
//! goes on meanwhile), writes it and reports [`Member::on_snapshot_written`]; the member compacts
//! only through a snapshot reported durable. HashKV and backups are answered the same way: a
//! view ([`KvHash`], [`BackupBody`]) that the driver hashes or encodes elsewhere. It serves
//! [`Output::ServeSnapshotChunk`] from its newest file and stores [`Output::StoreSnapshotChunk`]
//! (in order; the last chunk finishes the file: sync, rename) whenever it likes, off the
//! member's thread, and reports each stored chunk through [`Member::on_snapshot_chunk_stored`]
//! (the member counts a chunk not yet reported as in flight, so the transfer's window bounds
//! them); it decodes a complete one on [`Output::DecodeSnapshot`] and hands it back through
//! [`Member::on_snapshot_decoded`], which installs it only if it is still ahead; it compacts
//! its log on [`Output::CompactLog`].
//!
//! # A driver in a few lines
//!
//! One member, an instant disk and a clock that moves 10 ms per tick: it elects itself, then
//! answers a put.
//!
//! ```
//! use member::{Answer, Member, MemberOptions, MemberParts, Micros, Output, Request, RequestId};
//! use paxos::multi::{Applier, Replica, ReplicaOptions};
//! use paxos::{Configuration, NodeId, QuorumSpec};
//! use rand_chacha::{rand_core::SeedableRng, ChaCha8Rng};
//! use std::time::Duration;
//!
//! let config = Configuration::new(vec![NodeId(1)], QuorumSpec::Majority).unwrap();
//! let replica = Replica::new(NodeId(1), config, ReplicaOptions::default()).unwrap();
//! let options = MemberOptions {
//!     members: vec![1],
//!     tick: Duration::from_millis(10),
//!     request_timeout: Duration::from_secs(5),
//!     quota_bytes: 1 << 30,
//!     client_urls: vec![],
//!     snapshot_every_slots: 10_000,
//!     crash_at: None,
//!     table: Default::default(),
//!     name: "m1".into(),
//!     lease_checkpoint_interval: Duration::from_secs(60),
//!     election_timeout: Duration::from_secs(1),
//! };
//! let parts = MemberParts {
//!     replica,
//!     applier: Applier::new(kv::KvStore::new()),
//!     rng: Box::new(ChaCha8Rng::seed_from_u64(1)),
//!     incarnation: 1 << 12,
//!     newest_snapshot: None,
//!     restored_bytes: 0,
//!     options,
//! };
//! let mut now = Micros::ZERO;
//! let mut m = Member::new(parts, now);
//!
//! // Carries out every output; returns the answer to `id` if it came.
//! fn drain(m: &mut Member, now: Micros, id: RequestId) -> Option<Answer> {
//!     let mut answer = None;
//!     while let Some(output) = m.poll_output() {
//!         match output {
//!             Output::Persist { tag, .. } => m.on_durable(now, tag), // an instant disk
//!             Output::Answer { id: a, answer: x } if a == id => answer = Some(x),
//!             _ => {} // alone: nobody to send to, no snapshot due
//!         }
//!     }
//!     answer
//! }
//!
//! let put = kv::encode(&kv::KvCommand::Put(kv::PutRequest {
//!     key: b"k".to_vec(),
//!     value: b"v".to_vec(),
//!     ..kv::PutRequest::default()
//! }));
//! let id = RequestId(1);
//! while m.status().leader != 1 {
//!     now = now + Duration::from_millis(10);
//!     m.tick(now);
//!     drain(&mut m, now, id);
//! }
//! m.on_request(now, id, Request::Write { payload: put, grows: true });
//! let answer = drain(&mut m, now, id);
//! assert!(matches!(answer, Some(Answer::Write(Ok(_)))));
//! ```

pub mod bugs;
pub mod cluster;
pub mod error;
pub mod lease_clock;
mod member;
pub mod peer;
pub mod snapshot;
mod time;

#[cfg(test)]
mod tests;

pub use error::MemberError;
pub use member::{
    Answer, AppliedChanges, BackupBody, CrashPoint, KvHash, LeaseRenewed, Member, MemberOptions,
    MemberParts, Output, ReadAnswer, Request, RequestId, Status, ViewRead, WriteAnswer, WriteTrace,
    SLOW_TRACE_AFTER,
};
pub use time::Micros;
