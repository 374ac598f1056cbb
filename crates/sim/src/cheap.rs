//! Cheap Paxos in the simulator: the core simulator run under the rule
//! [`paxos::QuorumSpec::Cheap`] (`synod sim --protocol cheap`), with the figures that show
//! what the auxiliaries did. Nothing here drives the protocol: the core engages the
//! auxiliaries and drops a failed main by itself (paxos `multi/cheap.rs`); the nemesis's
//! crashes and partitions are what make a main fail, while the clients run.

use paxos::multi::Replica;
use paxos::QuorumSpec;
use serde::{Deserialize, Serialize};

/// What the auxiliaries did in a run, or summed over a campaign.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CheapFigures {
    /// Times a leader began sending to the auxiliaries because a main fell silent.
    pub auxiliaries_engaged: u64,
    /// Stop-signs proposed to drop a failed main.
    pub mains_dropped: u64,
    /// Configurations entered by the leader that proposed a drop, counted once per drop that
    /// took effect: from then on the auxiliaries were idle again.
    pub returned_to_idle: u64,
    /// Seeds in which the auxiliaries were engaged at least once (campaigns only).
    pub seeds_engaged: u64,
    /// Seeds in which a main was dropped (campaigns only).
    pub seeds_dropped: u64,
}

impl CheapFigures {
    /// Adds what `replica` counted (at its crash, and at the end of the run: counters live
    /// as long as a replica's incarnation).
    pub(crate) fn add_replica(&mut self, replica: &Replica) {
        let c = replica.counters();
        self.auxiliaries_engaged += c.auxiliaries_engaged;
        self.mains_dropped += c.mains_dropped;
        if c.mains_dropped > 0 {
            self.returned_to_idle += c.configurations_entered.min(c.mains_dropped);
        }
    }

    /// Adds a run's figures into a campaign's.
    pub(crate) fn add_run(&mut self, run: &CheapFigures) {
        self.auxiliaries_engaged += run.auxiliaries_engaged;
        self.mains_dropped += run.mains_dropped;
        self.returned_to_idle += run.returned_to_idle;
        self.seeds_engaged += u64::from(run.auxiliaries_engaged > 0);
        self.seeds_dropped += u64::from(run.mains_dropped > 0);
    }

    /// Whether there is anything to show (only Cheap runs count anything).
    pub fn is_empty(&self) -> bool {
        *self == CheapFigures::default()
    }
}

/// The Cheap Paxos rule for `nodes` voters: f+1 mains and f auxiliaries (with an even count,
/// one main more, as the majority needs).
pub fn rule_for(nodes: usize) -> QuorumSpec {
    QuorumSpec::Cheap {
        main: nodes / 2 + 1,
    }
}
