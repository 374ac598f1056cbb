//! Quorum rules for simulated clusters: one rule for every seed, or a valid rule drawn per seed
//! (`swarm`), so that campaigns try majorities, flexible sizes, grids and weights alike.
//!
//! A draw comes from a generator of its own, seeded from the run's seed: a run with a fixed
//! rule draws nothing, so the runs of every seed without `--quorums` are exactly as before.

use crate::rng::{below, range};
use paxos::{Configuration, NodeId, QuorumParseError, QuorumSpec};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Which quorum rule the seeds of a campaign run under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuorumChoice {
    /// The same rule for every seed.
    Fixed(QuorumSpec),
    /// A valid rule drawn per seed among every kind (majority, flexible, grid, weighted).
    Swarm,
}

impl Default for QuorumChoice {
    fn default() -> QuorumChoice {
        QuorumChoice::Fixed(QuorumSpec::Majority)
    }
}

impl std::fmt::Display for QuorumChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuorumChoice::Fixed(rule) => write!(f, "{rule}"),
            QuorumChoice::Swarm => write!(f, "swarm"),
        }
    }
}

impl std::str::FromStr for QuorumChoice {
    type Err = QuorumParseError;

    /// `swarm`, or a rule as [`QuorumSpec`] reads it (`flexible:4,2`, `grid:3x2`, ...).
    fn from_str(text: &str) -> Result<QuorumChoice, QuorumParseError> {
        if text.trim() == "swarm" {
            return Ok(QuorumChoice::Swarm);
        }
        text.parse().map(QuorumChoice::Fixed)
    }
}

/// Salt for the per-seed draw, so it shares nothing with the run's own generator.
const DRAW_SALT: u64 = 0x7175_6f72_756d_7321;

impl QuorumChoice {
    /// The rule seed `seed` runs under with `voters` voters.
    pub fn rule_for(&self, seed: u64, voters: usize) -> QuorumSpec {
        match self {
            QuorumChoice::Fixed(rule) => rule.clone(),
            QuorumChoice::Swarm => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed ^ DRAW_SALT);
                draw_rule(&mut rng, voters)
            }
        }
    }
}

/// A rule for `n` voters that [`Configuration::new`] accepts, any kind with equal odds (a
/// grid only when `n` has a factor pair of at least 2 x 2; flexible sizes otherwise).
pub(crate) fn draw_rule(rng: &mut ChaCha8Rng, n: usize) -> QuorumSpec {
    let n64 = n.max(1) as u64;
    let shapes: Vec<(usize, usize)> = (1..=n)
        .filter(|r| n.is_multiple_of(*r))
        .map(|r| (r, n / r))
        .filter(|(r, c)| *r > 1 && *c > 1)
        .collect();
    let mut kind = below(rng, 4);
    if kind == 2 && shapes.is_empty() {
        // No grid of at least 2 x 2 for a prime size: flexible sizes instead.
        kind = 1;
    }
    let rule = match kind {
        0 => QuorumSpec::Majority,
        1 => {
            // A phase-2 size that survives one failure (a phase 2 of every voter stalls behind
            // any rebuilding or lagging member: 23 of 10,000 swarm seeds failed the liveness
            // bound with it, none safety), and the smallest phase-1 size that meets it
            // (sometimes one more).
            let phase2 = range(rng, 1, n64.saturating_sub(1).max(1)) as usize;
            let phase1 = (n + 1 - phase2 + below(rng, 2) as usize).min(n);
            QuorumSpec::Flexible { phase1, phase2 }
        }
        2 => {
            let (rows, columns) = shapes[below(rng, shapes.len() as u64) as usize];
            QuorumSpec::Grid { rows, columns }
        }
        _ => {
            let weights: Vec<u32> = (0..n).map(|_| range(rng, 1, 3) as u32).collect();
            let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
            // As for flexible sizes: phase 2 reachable without the heaviest voter.
            let heaviest = weights.iter().copied().max().map_or(0, u64::from);
            let phase2 = range(rng, 1, total.saturating_sub(heaviest).max(1));
            let phase1 = total + 1 - phase2;
            QuorumSpec::Weighted {
                weights,
                phase1,
                phase2,
            }
        }
    };
    debug_assert!(
        Configuration::new((1..=n64).map(NodeId).collect(), rule.clone()).is_ok(),
        "drew an invalid rule {rule} for {n} voters"
    );
    rule
}

/// `rule` if it fits `voters` voters, else a rule of the same kind scaled to them (the
/// simulator's membership changes add and remove voters; a change may also draw a new rule).
pub(crate) fn fit_rule(rng: &mut ChaCha8Rng, rule: &QuorumSpec, voters: usize) -> QuorumSpec {
    let ids: Vec<NodeId> = (1..=voters as u64).map(NodeId).collect();
    if Configuration::new(ids, rule.clone()).is_ok() {
        return rule.clone();
    }
    match rule {
        QuorumSpec::Majority => QuorumSpec::Majority,
        _ => draw_rule(rng, voters),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_drawn_rule_is_valid_and_every_kind_is_drawn() {
        let mut kinds = [0u32; 4];
        for n in 1..=7usize {
            for seed in 0..200 {
                let rule = QuorumChoice::Swarm.rule_for(seed, n);
                let config = Configuration::new((1..=n as u64).map(NodeId).collect(), rule.clone());
                assert!(config.is_ok(), "{rule} for {n}: {config:?}");
                kinds[match rule {
                    QuorumSpec::Majority => 0,
                    QuorumSpec::Flexible { .. } => 1,
                    QuorumSpec::Grid { .. } => 2,
                    QuorumSpec::Weighted { .. } => 3,
                    QuorumSpec::Cheap { .. } => unreachable!("swarm never draws cheap"),
                }] += 1;
            }
        }
        assert!(kinds.iter().all(|k| *k > 0), "{kinds:?}");
    }

    #[test]
    fn choices_parse() {
        assert_eq!("swarm".parse(), Ok(QuorumChoice::Swarm));
        assert_eq!(
            "grid:2x3".parse(),
            Ok(QuorumChoice::Fixed(QuorumSpec::Grid {
                rows: 2,
                columns: 3
            }))
        );
        assert!("grid".parse::<QuorumChoice>().is_err());
    }
}
