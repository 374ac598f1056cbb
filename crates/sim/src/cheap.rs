//! Cheap Paxos in the simulator: the core simulator run under the rule
//! [`paxos::QuorumSpec::Cheap`] (`synod sim --protocol cheap`), with the figures that show
//! what the auxiliaries did. Nothing here drives the protocol: the core engages the
//! auxiliaries, drops a failed main and re-admits it when it returns by itself (paxos
//! `multi/cheap.rs`); the nemesis's
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
    /// Dropped mains heard from again by a leader (once per leader, epoch and main).
    pub mains_returned: u64,
    /// Stop-signs proposed to re-admit a returned main among the mains.
    pub mains_readmitted: u64,
    /// Re-admissions that took effect (the leader entered the configuration with more mains).
    pub readmissions_entered: u64,
    /// Seeds in which a dropped main returned (campaigns only).
    pub seeds_returned: u64,
    /// Seeds in which a re-admission took effect (campaigns only).
    pub seeds_readmitted: u64,
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
            // Configurations entered less those a re-admission led to.
            let entered = c
                .configurations_entered
                .saturating_sub(c.readmissions_entered);
            self.returned_to_idle += entered.min(c.mains_dropped);
        }
        self.mains_returned += c.mains_returned;
        self.mains_readmitted += c.mains_readmitted;
        self.readmissions_entered += c.readmissions_entered;
    }

    /// Adds a run's figures into a campaign's.
    pub(crate) fn add_run(&mut self, run: &CheapFigures) {
        self.auxiliaries_engaged += run.auxiliaries_engaged;
        self.mains_dropped += run.mains_dropped;
        self.returned_to_idle += run.returned_to_idle;
        self.mains_returned += run.mains_returned;
        self.mains_readmitted += run.mains_readmitted;
        self.readmissions_entered += run.readmissions_entered;
        self.seeds_returned += u64::from(run.mains_returned > 0);
        self.seeds_readmitted += u64::from(run.readmissions_entered > 0);
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
