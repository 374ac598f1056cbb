//! The rule a coordinator uses to pick the value of its phase 2a (section 3.1), the heart of
//! Fast Paxos's safety.
//!
//! Given the votes reported by a quorum `Q` of acceptors (phase-1b messages, or in coordinated
//! recovery the fast round's phase-2b messages): let `k` be the highest round voted in and `V`
//! the values voted in `k`. No vote: the coordinator is free. One value: pick it. Several
//! (only possible when `k` was fast): a value `v` *may have been chosen* in `k` exactly when
//! some fast quorum `R` exists whose members in `Q` all voted `v` in `k` (the paper's O4(v));
//! pick that `v`. Otherwise none was chosen and any value of `V` is safe.
//!
//! Why at most one `v` satisfies O4: `|Q| - votes(v) <= n - qf` for two values `v`, `w` gives
//! `|Q| <= 2(n - qf)`, and `|Q| >= qc` contradicts `qc + 2qf > 2n`. A fast quorum that is too
//! small breaks exactly this, and the rule can then pick a value other than the one chosen.

use super::{FastConfig, Value, Vote};
use crate::bugs::{Bug, PlantedBugs};
use crate::ids::NodeId;

/// What a coordinator may send in phase 2a.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Pick {
    /// No acceptor of the quorum voted: any proposed value (or `Any` in a fast round).
    Free,
    /// This value, and no other, is safe.
    Value(Value),
}

/// Applies the rule to the reports of a quorum (one entry per acceptor).
///
/// # Panics
/// If `reports` holds fewer acceptors than a classic quorum, or (without the planted bug) if
/// two values satisfy O4: both would mean a broken invariant of the caller or the quorums.
pub fn pick_value(
    config: &FastConfig,
    reports: &[(NodeId, Option<Vote>)],
    bugs: PlantedBugs,
) -> Pick {
    let quorums = config.quorums();
    assert!(
        reports.len() >= quorums.classic,
        "picking from {} reports, below a classic quorum of {}",
        reports.len(),
        quorums.classic
    );
    let Some(k) = reports
        .iter()
        .filter_map(|(_, v)| v.as_ref().map(|(r, _)| *r))
        .max()
    else {
        return Pick::Free;
    };
    let mut in_k: Vec<(&Value, usize)> = Vec::new();
    for (_, vote) in reports {
        if let Some((r, v)) = vote {
            if *r == k {
                match in_k.iter_mut().find(|(w, _)| *w == v) {
                    Some((_, count)) => *count += 1,
                    None => in_k.push((v, 1)),
                }
            }
        }
    }
    in_k.sort();
    if let [(v, _)] = in_k.as_slice() {
        return Pick::Value((*v).clone());
    }
    // Several values in round k: only a fast round lets acceptors vote for different values.
    assert!(
        config.is_fast(k),
        "different values voted in classic round {k}"
    );
    let outside_fast_quorum = quorums.acceptors - quorums.fast;
    let may_be_chosen: Vec<&(&Value, usize)> = in_k
        .iter()
        .filter(|(_, count)| reports.len() - count <= outside_fast_quorum)
        .collect();
    if !bugs.has(Bug::FastQuorumTooSmall) {
        assert!(
            may_be_chosen.len() <= 1,
            "two values may have been chosen in fast round {k}: quorums {quorums:?}"
        );
    }
    // With the planted bug several may qualify: the most voted wins, ties to the least value
    // (the order `in_k` is in), which is wrong whenever the chosen value lost that tie.
    let best = may_be_chosen
        .iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)));
    match best {
        Some((v, _)) => Pick::Value((*v).clone()),
        // No value may have been chosen in k: any of V is safe; the least, to be deterministic.
        None => Pick::Value(in_k[0].0.clone()),
    }
}
