//! Paxos Commit (Gray and Lamport, "Consensus on Transaction Commit", 2006): a transaction
//! over N resource managers commits or aborts by running one Paxos instance per manager,
//! deciding that manager's vote (Prepared or Aborted), on 2F+1 acceptors. The transaction
//! commits iff every instance chose Prepared. A leader that takes over from a silent
//! coordinator runs phase 1 and proposes Aborted for any instance with no accepted value, so
//! the coordinator's failure never blocks the outcome while F+1 acceptors and one leader run.
//! Two-phase commit is the case F = 0 with the coordinator as the only acceptor
//! ([`two_phase_commit`]): it blocks while the coordinator is down.
//!
//! Split by part: [`rm`](self) votes at its own ballot 0 (`rm.rs`), acceptors keep a promise
//! per transaction and a value per instance (`acceptor.rs`), leaders collect phase 2b messages
//! and decide (`leader.rs`); `node.rs` puts any mix of parts behind one sans-IO interface.
//!
//! ```
//! use paxos::commit::{two_phase_commit, CommitNode, CommitOptions, Outcome, Roles, TxnId, Vote};
//! use paxos::NodeId;
//! use rand_chacha::{rand_core::SeedableRng, ChaCha8Rng};
//!
//! // Two RMs (1, 2) and a coordinator (3) that is also the only acceptor: two-phase commit.
//! let config = two_phase_commit(NodeId(3));
//! let rm = Roles { rm: true, ..Roles::default() };
//! let coordinator = Roles { acceptor: true, leader: true, ..Roles::default() };
//! let opts = CommitOptions::default();
//! let mut nodes = vec![
//!     CommitNode::new(NodeId(1), rm, config.clone(), opts.clone()),
//!     CommitNode::new(NodeId(2), rm, config.clone(), opts.clone()),
//!     CommitNode::new(NodeId(3), coordinator, config, opts),
//! ];
//! nodes[0].begin(TxnId(1), vec![NodeId(1), NodeId(2)]).unwrap();
//! let mut learned = Vec::new();
//! for _ in 0..20 {
//!     let mut mail = Vec::new();
//!     for n in nodes.iter_mut() {
//!         let ready = n.ready();
//!         if let Some(b) = &ready.persist {
//!             n.persisted(b.seq); // a real driver writes b.ops durably first
//!         }
//!         for t in &ready.prepare {
//!             n.vote(*t, Vote::Prepared).unwrap();
//!         }
//!         learned.extend(ready.learned.iter().map(|l| (n.id(), *l)));
//!         mail.extend(ready.send.into_iter().map(|o| (n.id(), o)));
//!     }
//!     for (from, o) in mail {
//!         nodes[(o.to.0 - 1) as usize].step(from, o.msg);
//!     }
//! }
//! assert_eq!(learned.len(), 2);
//! assert!(learned.iter().all(|(_, (t, o))| *t == TxnId(1) && *o == Outcome::Committed));
//! ```

mod acceptor;
mod leader;
mod node;
mod rm;
mod types;

pub use node::{CommitNode, CommitReady, ResourceManager, Roles};
pub use types::{
    AcceptorRecord, CommitConfig, CommitCounters, CommitDurable, CommitError, CommitMessage,
    CommitOptions, CommitPersist, Outcome, Participants, RmRecord, TxnId, Vote, RMS_PER_TXN_MAX,
};

use crate::ids::NodeId;
use crate::quorum::Configuration;

/// Paxos Commit with the given acceptors (2F+1, majority quorums) and leaders, the first of
/// which coordinates.
pub fn paxos_commit(
    acceptors: Vec<NodeId>,
    leaders: Vec<NodeId>,
) -> Result<CommitConfig, crate::ConfigError> {
    let acceptors = Configuration::new(acceptors, crate::QuorumSpec::Majority)?;
    Ok(CommitConfig { acceptors, leaders })
}

/// Two-phase commit: F = 0, the coordinator is the one acceptor and the one leader.
pub fn two_phase_commit(coordinator: NodeId) -> CommitConfig {
    CommitConfig {
        acceptors: Configuration::new(vec![coordinator], crate::QuorumSpec::Majority)
            .expect("one member is a valid configuration"),
        leaders: vec![coordinator],
    }
}

#[cfg(test)]
mod tests;
