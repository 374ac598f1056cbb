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
//! - [`Member::on_snapshot_written`]`(now, through, result)`: a snapshot write ended.
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
//! Snapshot files are the driver's: it writes the body of [`Output::WriteSnapshot`] and reports
//! [`Member::on_snapshot_written`]; it serves [`Output::ServeSnapshotChunk`] from its newest
//! file; it stores [`Output::StoreSnapshotChunk`] and reports [`Member::on_snapshot_chunk_stored`]
//! (a complete one with its body, which the member decodes and installs); it compacts its log
//! on [`Output::CompactLog`].

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
    Answer, AppliedChanges, BackupBody, CrashPoint, KvHash, Member, MemberOptions, MemberParts,
    Output, ReadAnswer, Request, RequestId, Status, WriteAnswer,
};
pub use time::Micros;
