//! Flexible, grid and weighted quorums under every fault (`synod sim --quorums swarm`): a rule
//! drawn per seed among the non-majority kinds, no check may fail, the linearizability checker
//! must never give up, and each kind of rule must have run. With membership changes, the rule
//! also changes through stop-signs. The planted non-intersecting rule is in `planted_bugs.rs`.

use paxos::{NodeId, QuorumSpec};
use sim::{run_seeds, CampaignReport, CampaignSpec, FaultProfile, QuorumChoice};

/// Seeds per cluster size: sized to stay well under a minute in the test profile on a loaded
/// 2-core machine (375 seeds: 9 s on an idle one, about 45 s under a load of 13).
const SEEDS: u64 = 150;

/// A swarm rule for the seed that is not majority (majority has its own campaign): the seed's
/// swarm draw if it is not majority, else flexible with the smallest phase-2 quorum.
fn non_majority(seed: u64, nodes: usize) -> QuorumSpec {
    match QuorumChoice::Swarm.rule_for(seed, nodes) {
        QuorumSpec::Majority => QuorumSpec::Flexible {
            phase1: nodes,
            phase2: 1,
        },
        rule => rule,
    }
}

fn campaign(nodes: usize, seeds: std::ops::Range<u64>, changes: bool) -> CampaignReport {
    let mut spec = CampaignSpec::new(seeds, nodes, FaultProfile::All);
    spec.membership_changes = changes;
    spec.tweak = Some(|config| config.quorum = non_majority(config.seed, config.nodes));
    CampaignReport::from_runs(&run_seeds(&spec, &|_| {}))
}

fn assert_clean(report: &CampaignReport) {
    assert_eq!(report.violation_total(), 0, "{report}");
    assert_eq!(report.lincheck_unknown, 0, "{report}");
    assert_eq!(report.lincheck_ok, report.seeds_run, "{report}");
    assert!(report.failing_seeds.is_empty(), "{report}");
    assert!(report.never_fired().is_empty(), "{report}");
    assert!(
        report.ops_ok > report.seeds_run * 50,
        "clients got work done\n{report}"
    );
    assert_eq!(
        report.quorum_kinds.get("majority"),
        None,
        "only non-majority rules\n{report}"
    );
}

#[test]
fn flexible_grid_and_weighted_rules_pass_every_check_on_five_and_six_nodes() {
    for (nodes, seeds) in [(5, 0..SEEDS), (6, SEEDS..2 * SEEDS)] {
        let report = campaign(nodes, seeds, false);
        println!("{report}");
        assert_clean(&report);
        for kind in ["flexible", "weighted"] {
            assert!(report.quorum_kinds.contains_key(kind), "{kind}\n{report}");
        }
        if nodes == 6 {
            assert!(report.quorum_kinds.contains_key("grid"), "{report}");
        }
    }
}

#[test]
fn quorum_rules_change_through_stop_signs_under_every_fault() {
    let report = campaign(5, 0..SEEDS / 2, true);
    println!("{report}");
    assert_clean(&report);
    assert!(report.quorum_rule_changes > 0, "{report}");
}

/// The drawn rules are the ones a configuration accepts, for every size the simulator runs.
#[test]
fn every_drawn_rule_is_accepted() {
    for nodes in 1..=7usize {
        for seed in 0..100 {
            let rule = non_majority(seed, nodes);
            let voters = (1..=nodes as u64).map(NodeId).collect();
            assert!(
                paxos::Configuration::new(voters, rule.clone()).is_ok(),
                "{rule} for {nodes}"
            );
        }
    }
}
