//! The member-level simulation with an operator changing the membership through the members'
//! Cluster API (add a learner, promote it, remove a follower, the leader or a member that is
//! down; a removed member's place wiped and filled later under a new id), among every
//! network fault and crash: every check still holds, the changes are carried out (not only
//! asked), and the run stays a pure function of its seed.

use lincheck::Verdict;
use sim::member::{
    run_member_seeds, MemberCampaignReport, MemberCampaignSpec, MemberCheck, MemberSimConfig,
    MemberSimulation,
};
use sim::FaultProfile;

/// Seeds per cluster size: sized for well under a minute in the test profile on a loaded
/// 2-core machine (`synod sim --member --membership` runs campaigns).
const SEEDS: u64 = 40;

fn campaign(nodes: usize) -> MemberCampaignReport {
    let mut spec = MemberCampaignSpec::new(0..SEEDS, nodes, FaultProfile::All);
    spec.threads = 2;
    spec.tweak = Some(|c: &mut MemberSimConfig| c.membership = true);
    let runs = run_member_seeds(&spec, &|_| {});
    let report = MemberCampaignReport::from_runs(&runs);
    println!("{report}");
    for run in &runs {
        if KNOWN_NO_LEADER.contains(&(nodes, run.seed)) {
            // The open finding: no leader after the heal. It must stay that and only that:
            // every safety check holds and the history is linearizable.
            let only_liveness = run.completed
                && run.lincheck == Some(Verdict::Ok)
                && run
                    .violation_counts
                    .keys()
                    .all(|c| *c == MemberCheck::Liveness);
            assert!(
                only_liveness,
                "a known liveness seed broke more than liveness: {run}"
            );
            continue;
        }
        assert!(run.passed(), "{run}");
    }
    report
}

/// Seeds (members, seed) that end without a leader after the heal: wiped members combined
/// with membership changes, an open finding (ARCHITECTURE.md, "Reconfiguration"; seeds 921,
/// 992 and 1354 of the 2,000-seed campaign are the same). Seed 13 passed before
/// this session's merges changed the simulator's schedules (snapshot chunks stored and read a
/// disk latency later) and failed since, with every safety check holding; with the slow-disk
/// election rules it passes again (the check below holds for a seed that passes), and seed
/// 323 of the 500-seed campaign fails instead.
const KNOWN_NO_LEADER: &[(usize, u64)] = &[(3, 13)];

fn done(report: &MemberCampaignReport, kind: &str) -> u64 {
    report.changes.get(kind).map_or(0, |c| c.1)
}

#[test]
fn three_members_grow_and_shrink_through_the_cluster_api_and_every_check_holds() {
    let report = campaign(3);
    // Growing takes an added learner promoted; shrinking back removes followers and leaders.
    for kind in ["add-learner", "promote", "remove-follower", "remove-leader"] {
        assert!(done(&report, kind) > 0, "no {kind} carried out:\n{report}");
    }
    assert!(report.members_retired > 0, "{report}");
    assert!(
        report.store_comparisons > 0 && report.watch_events > 0,
        "{report}"
    );
}

#[test]
fn five_members_shift_membership_and_every_check_holds() {
    let report = campaign(5);
    for kind in ["add-learner", "promote", "remove-follower", "remove-leader"] {
        assert!(done(&report, kind) > 0, "no {kind} carried out:\n{report}");
    }
    assert!(report.members_retired > 0, "{report}");
}

#[test]
fn membership_runs_are_a_pure_function_of_their_seed() {
    let run = |seed| {
        let mut config = MemberSimConfig::new(seed, 3, FaultProfile::All);
        config.membership = true;
        config.trace = true;
        let mut sim = MemberSimulation::new(config);
        while sim.step() {}
        let trace = sim.trace().to_vec();
        (trace, serde_json::to_string(&sim.run()).expect("a report"))
    };
    let a = run(7);
    assert!(
        a.0.iter().any(|l| l.contains("operator asks")),
        "the operator acted"
    );
    assert_eq!(a, run(7));
}

/// A longer campaign for a hand run: `SEEDS=0..400 NODES=5 cargo test -p synod-sim --test
/// member_membership longer -- --ignored --nocapture`.
#[test]
#[ignore]
fn longer_membership_campaign() {
    let seeds = std::env::var("SEEDS").unwrap_or_else(|_| "0..400".into());
    let (from, to) = seeds.split_once("..").expect("SEEDS is FROM..TO");
    let nodes = std::env::var("NODES").map_or(3, |n| n.parse().expect("NODES is a number"));
    let mut spec = MemberCampaignSpec::new(
        from.parse().expect("a seed")..to.parse().expect("a seed"),
        nodes,
        FaultProfile::All,
    );
    spec.threads = 2;
    spec.tweak = Some(|c: &mut MemberSimConfig| c.membership = true);
    let report = MemberCampaignReport::from_runs(&run_member_seeds(&spec, &|_| {}));
    println!("{report}");
    assert!(report.passed(), "{report}");
}
