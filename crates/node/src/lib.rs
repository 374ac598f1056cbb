//! A Synod member: the member's deterministic state machine ([`member::Member`], around the
//! sans-IO Paxos core [`paxos::multi::Replica`]) driven over real TCP (the peer [`transport`])
//! and real files with fsync ([`storage`]), applying the etcd-style key-value state machine
//! ([`kv`]) and serving etcd's v3 gRPC API, with HTTP beside it on the client port
//! (`/metrics`, `/health`, `/version`: [`http`], [`metrics`]).
//!
//! What it must never do: answer a write before its slot is chosen and applied; answer a
//! linearizable read without the read-index confirmation; send a message whose state is not
//! durable (the core holds those back until storage reports the sync); or let a client or a
//! peer grow memory without bound (every queue here is bounded); or let a scrape or a probe
//! hold up the core (metrics are atomics the core writes and a scrape reads).

pub mod auth;
pub mod authority;
pub mod auxiliary;
mod background;
pub mod backup;
pub mod bbolt;
mod compactor;
pub mod config;
pub mod convert;
mod core;
mod election;
pub mod error;
pub mod etcd_backup;
pub mod gateway;
pub mod http;
pub mod join;
mod lease;
/// This member's lease clocks (moved to `member`; re-exported for the bench).
pub use member::lease_clock;
mod lock;
pub mod metrics;
pub mod otel;
/// The envelope on the peer port (moved to `member`; re-exported for the fuzzers and the probe).
pub use member::peer;
mod recipe;
pub mod server;
pub mod service;
mod snapshot;
pub mod tls;
pub mod tokens;
pub mod watch;

pub use config::{AutoCompaction, ClusterState, CrashPoint, NodeBug, NodeConfig, Peer, TestFaults};
pub use error::NodeError;
pub use server::{start, Node};
