//! Leader leases in the simulator (`synod sim --leases [--drift PPM] [--clock-fault]`): each
//! node's clock runs at its own rate, drawn per seed within the drift bound the replicas are
//! configured with, and the figures that show the leases were used. Nothing here drives the
//! protocol: the core grants, holds and serves under leases by itself (paxos `multi/lease.rs`);
//! the simulator only ticks each node on its own clock. The clock fault breaks the bound: one
//! node per seed runs several times further from true time than the replicas assume, which is
//! how a lease gives a stale read (the explorer's "break it").

use paxos::multi::Replica;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// The drift bound `synod sim --leases` assumes without `--drift`: 200 ppm, Spanner's
/// assumption for its clocks (section 3).
pub const DEFAULT_DRIFT_PPM: u32 = 200;

/// How far from true time the nodes' clocks run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ClockModel {
    /// Every clock runs at a rate within `1 ± drift_ppm / 10^6` of true time (each node's
    /// drawn per seed, often at either end of the bound, where leases are tightest).
    pub drift_ppm: u32,
    /// The fault: one node per seed runs outside the bound, by 5 to 10 times it (at least
    /// 20 to 40 %): slow or fast, drawn per seed.
    pub beyond_bound: bool,
}

impl ClockModel {
    /// Each node's clock drift in ppm (negative: slow), drawn from the seed alone, so a run
    /// without clocks draws exactly what it drew before clocks existed.
    pub fn draw(&self, seed: u64, nodes: usize) -> Vec<i64> {
        // A generator of its own: the run's other draws do not move.
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6c65_6173_6573);
        let eps = i64::from(self.drift_ppm.min(999_999));
        let mut drifts: Vec<i64> = (0..nodes)
            .map(|_| match rng.next_u32() % 3 {
                0 => -eps,
                1 => eps,
                _ => (rng.next_u64() % (2 * eps as u64 + 1)) as i64 - eps,
            })
            .collect();
        if self.beyond_bound && nodes > 0 {
            let i = (rng.next_u64() % nodes as u64) as usize;
            let least = (5 * eps).max(200_000);
            let most = (10 * eps).max(400_000);
            let magnitude = (least + (rng.next_u64() % (most - least) as u64) as i64).min(900_000);
            drifts[i] = if rng.next_u32() % 2 == 0 {
                -magnitude
            } else {
                magnitude
            };
        }
        drifts
    }
}

/// Virtual time between two ticks of a node whose clock drifts by `drift_ppm`: the nominal
/// tick, stretched for a slow clock and shrunk for a fast one, rounded toward the nominal so
/// the rate stays inside the drift.
pub fn tick_period_us(tick_us: u64, drift_ppm: i64) -> u64 {
    let rate = 1_000_000i128 + i128::from(drift_ppm);
    assert!(rate > 0, "a clock that stands still or runs backwards");
    let scaled = i128::from(tick_us) * 1_000_000;
    let period = if drift_ppm > 0 {
        (scaled + rate - 1) / rate
    } else {
        scaled / rate
    };
    u64::try_from(period).unwrap_or(u64::MAX).max(1)
}

/// What the leases did in a run, or summed over a campaign.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseFigures {
    /// Reads a leader served under its lease, with no confirmation round.
    pub leased_reads: u64,
    /// Prepares a voter held because it had granted another leader a lease.
    pub promises_held: u64,
    /// Nodes whose clock ran outside the bound (the clock fault).
    pub clocks_beyond_bound: u64,
    /// The slowest and fastest clocks drawn, in ppm.
    pub drift_min_ppm: i64,
    /// See `drift_min_ppm`.
    pub drift_max_ppm: i64,
    /// Seeds in which a read was served under a lease (campaigns only).
    pub seeds_leased: u64,
}

impl LeaseFigures {
    /// The figures of a run's clocks, before any replica counted anything.
    pub(crate) fn of_clocks(drifts: &[i64], model: &ClockModel) -> LeaseFigures {
        let eps = i64::from(model.drift_ppm);
        LeaseFigures {
            clocks_beyond_bound: drifts.iter().filter(|d| d.abs() > eps).count() as u64,
            drift_min_ppm: drifts.iter().copied().min().unwrap_or(0),
            drift_max_ppm: drifts.iter().copied().max().unwrap_or(0),
            ..LeaseFigures::default()
        }
    }

    /// Adds what `replica` counted (at its crash, and at the end of the run).
    pub(crate) fn add_replica(&mut self, replica: &Replica) {
        let c = replica.counters();
        self.leased_reads += c.leased_reads;
        self.promises_held += c.promises_held_by_lease;
    }

    /// Adds a run's figures into a campaign's.
    pub(crate) fn add_run(&mut self, run: &LeaseFigures) {
        self.leased_reads += run.leased_reads;
        self.promises_held += run.promises_held;
        self.clocks_beyond_bound += run.clocks_beyond_bound;
        self.drift_min_ppm = self.drift_min_ppm.min(run.drift_min_ppm);
        self.drift_max_ppm = self.drift_max_ppm.max(run.drift_max_ppm);
        self.seeds_leased += u64::from(run.leased_reads > 0);
    }

    /// One line for the figures: the bound, the clocks drawn, what the leases did.
    pub fn describe(&self, clocks: &ClockModel) -> String {
        let mut line = format!(
            "drift bound {} ppm, clocks drawn {}..{} ppm, {} beyond the bound; leased reads {}",
            clocks.drift_ppm,
            self.drift_min_ppm,
            self.drift_max_ppm,
            self.clocks_beyond_bound,
            self.leased_reads
        );
        if self.seeds_leased > 0 {
            line.push_str(&format!(" in {} seeds", self.seeds_leased));
        }
        line.push_str(&format!(
            "; promises held by a grant {}",
            self.promises_held
        ));
        line
    }

    /// Whether there is anything to show (only runs with clocks count anything).
    pub fn is_empty(&self) -> bool {
        *self == LeaseFigures::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drifting_clock_stays_inside_its_drift() {
        for drift in [-200, -1, 0, 1, 200, 100_000, -100_000] {
            let period = tick_period_us(5_000, drift);
            // rate = 5000 / period must lie in [1 - |d|, 1 + |d|].
            let rate_ppm = 5_000i64 * 1_000_000 / period as i64 - 1_000_000;
            assert!(rate_ppm.abs() <= drift.abs(), "{drift} gave {rate_ppm}");
        }
        assert_eq!(tick_period_us(5_000, -100_000), 5_555);
        assert_eq!(tick_period_us(5_000, 100_000), 4_546);
    }

    #[test]
    fn clocks_keep_the_bound_unless_the_fault_breaks_it() {
        let kept = ClockModel {
            drift_ppm: 1_000,
            beyond_bound: false,
        };
        let broken = ClockModel {
            beyond_bound: true,
            ..kept
        };
        for seed in 0..50 {
            assert!(kept.draw(seed, 5).iter().all(|d| d.abs() <= 1_000));
            let drifts = broken.draw(seed, 5);
            assert_eq!(drifts.iter().filter(|d| d.abs() > 1_000).count(), 1);
            assert_eq!(
                kept.draw(seed, 5),
                kept.draw(seed, 5),
                "not a function of the seed"
            );
        }
    }
}
