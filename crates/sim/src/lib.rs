//! A deterministic simulator for Synod: the real Multi-Paxos [`Replica`](paxos::multi::Replica)s,
//! a simulated network, disks and clients, a nemesis that injects faults drawn per seed, and
//! checkers that run after every step. [`member`] runs the real members (`member::Member`,
//! what a `synod` member runs around the core) under etcd clients in the same way.
//!
//! What it is for: finding the bugs that only show under rare interleavings of messages,
//! crashes and partitions, and replaying any of them exactly from its seed. A run is a pure
//! function of its [`SimConfig`]: one seeded `ChaCha8Rng` drives everything (each node's
//! election jitter comes from a generator derived from it), time is virtual, and events are
//! ordered by `(time, sequence number)`.
//!
//! What it must never do:
//! - be needed by a node at run time (the node depends on `paxos`, never on `sim`);
//! - read the wall clock or OS randomness, or iterate a hash map where order matters: any of
//!   these would make a failing seed impossible to replay;
//! - count a linearizability `Unknown` as a pass, or hide a fault kind that never fired.
//!
//! # Time
//!
//! Virtual time is in microseconds. Each node ticks every [`Timing::tick_us`] (5 ms by
//! default), so the replicas' options, counted in ticks, become: heartbeat 10 ms, election
//! timeout 50 ms plus up to 50 ms of jitter.
//!
//! # A run
//!
//! 1. **Fault phase** ([`Timing::fault_phase_us`], 4 s): clients issue gets and writes; the
//!    nemesis partitions, crashes and restarts nodes; the network loses, duplicates and delays.
//! 2. **Quiet phase**: every link healed, every crashed node restarted, no more loss. Clients
//!    go on for [`Timing::quiet_ops_us`] and no longer give up.
//! 3. **Drain**: clients start nothing new; the run ends once every operation completed, a
//!    stable leader exists and all replicas converged, or when the liveness bound passes.
//!    Then the history goes through [`lincheck`].
//!
//! ```
//! use sim::{FaultProfile, SimConfig, Simulation};
//!
//! let report = Simulation::new(SimConfig::new(7, 3, FaultProfile::All)).run();
//! assert!(report.passed(), "{report}");
//! assert!(report.ops_ok > 0);
//! ```
//!
//! # Stepping by hand
//!
//! [`Simulation::step`] processes one event. Between steps everything can be inspected
//! ([`Simulation::nodes`], [`Simulation::in_flight`], [`Simulation::trace`]) and changed:
//! [`Simulation::deliver_now`], [`Simulation::drop_message`], [`Simulation::duplicate_message`],
//! [`Simulation::crash`], [`Simulation::restart`], [`Simulation::cut`], [`Simulation::heal`],
//! [`Simulation::set_partition`], [`Simulation::client_invoke`], [`Simulation::tick_node`],
//! [`Simulation::force_election`]. Set [`SimConfig::nemesis`] to false and
//! [`Timing::fault_phase_us`] to `u64::MAX` for a run driven entirely by hand.

pub mod campaign;
pub mod cheap;
pub mod check;
pub mod commit;
pub mod disk;
pub mod epaxos;
pub mod epaxos_bench;
pub mod fast;
pub mod faults;
mod fnv;
pub mod kv;
pub mod leases;
pub mod member;
pub mod quorums;
pub mod report;
mod rng;
mod sim;
pub mod snapshot;
pub mod trace;

pub use campaign::{
    run_campaign, run_seed, run_seed_range, run_seeds, CampaignSpec, CampaignTotals, SeedReport,
};
pub use check::{CheckKind, Violation};
pub use faults::{CrashPoint, FaultKind, FaultPlan, FaultProfile, LinkMatrix, PartitionShape};
pub use kv::{KvCommand, KvMachine, KvResult};
pub use quorums::QuorumChoice;
pub use report::{CampaignReport, FailingSeed, RunReport};
pub use sim::{
    bug_names, ClientReply, ClientRequest, Endpoint, Event, InFlight, Payload, Phase, ReplyBody,
    RequestBody, SimClient, SimConfig, SimNode, Simulation, StableLeader, Timing,
};

/// Whether this build can plant bugs (the `planted-bugs` feature); without it, planted bugs
/// are compiled to nothing and `--bug` must be refused rather than silently ignored.
pub fn planted_bugs_available() -> bool {
    // Ask the core itself: the feature may reach it through another crate of the build.
    paxos::PlantedBugs::only(paxos::Bug::SkipPersist).has(paxos::Bug::SkipPersist)
}
