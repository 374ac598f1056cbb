//! Fast Paxos in the simulator: the real cores, many instances, concurrent proposers, loss,
//! duplication and crashes.
//!
//! A campaign passes every check with collisions, recoveries and every fault firing; a run is
//! a function of its seed; and the planted bug (fast quorums of a classic majority) is caught
//! within a bounded number of seeds, which pass without it.

use paxos::fast::RoundMode;
use paxos::{Bug, PlantedBugs};
use sim::fast::{run_fast_campaign, run_fast_seed, FastCheck, FastSimConfig, LearnedIn};

/// Seeds of the campaign in the test command (10,000 are run by hand: see ARCHITECTURE.md).
const CAMPAIGN_SEEDS: u64 = 2_000;
/// Seeds tried before declaring the planted bug uncaught.
const BUG_SEEDS_MAX: u64 = 500;

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[test]
fn a_campaign_passes_every_check_and_every_fault_fires() {
    let report = run_fast_campaign(0..CAMPAIGN_SEEDS, 5, PlantedBugs::none(), threads());
    println!("{report}");
    assert!(report.passed(), "{report}");
    assert!(report.never_fired().is_empty(), "{report}");
    for how in [
        LearnedIn::FastRound,
        LearnedIn::RecoveryRound,
        LearnedIn::ClassicRound,
    ] {
        assert!(
            report.learned_in.get(&how).copied().unwrap_or(0) > 0,
            "{how:?}: {report}"
        );
    }
}

#[test]
fn three_and_four_nodes_pass_too() {
    for nodes in [3, 4] {
        let report = run_fast_campaign(0..300, nodes, PlantedBugs::none(), threads());
        println!("{report}");
        assert!(report.passed(), "{report}");
        assert!(report.recoveries > 0, "{report}");
    }
}

#[test]
fn a_run_is_a_function_of_its_seed() {
    for seed in [1, 17, 99] {
        let a = run_fast_seed(FastSimConfig::new(seed, 5));
        let b = run_fast_seed(FastSimConfig::new(seed, 5));
        assert_eq!(a, b);
    }
}

/// Without faults and without conflicts, every instance is chosen in two message delays in
/// fast mode and three in classic mode (proposer, coordinator, acceptors, learner).
#[test]
fn two_delays_fast_three_classic_without_conflicts() {
    for (mode, delays) in [(RoundMode::Fast, 2), (RoundMode::Classic, 3)] {
        let mut c = FastSimConfig::new(5, 5);
        c.mode = mode;
        c.faults = false;
        c.conflict_permille = Some(0);
        c.instances = 20;
        let r = run_fast_seed(c);
        assert!(r.passed(), "{:?}", r.violations);
        assert_eq!(r.delays, vec![delays; 20], "{mode:?}");
    }
}

#[test]
fn a_fast_quorum_that_is_too_small_is_caught() {
    let bugged = |seed| {
        let mut c = FastSimConfig::new(seed, 5);
        c.bugs = PlantedBugs::only(Bug::FastQuorumTooSmall);
        run_fast_seed(c)
    };
    let caught = (0..BUG_SEEDS_MAX)
        .map(bugged)
        .find(|r| r.violations.iter().any(|(c, _)| *c == FastCheck::Agreement));
    let caught = caught.expect("the planted bug was never caught");
    println!(
        "fast-quorum-too-small caught at seed {}: {:?}",
        caught.seed, caught.violations[0]
    );
    // The same seeds, without the bug, pass.
    for seed in 0..=caught.seed {
        let r = run_fast_seed(FastSimConfig::new(seed, 5));
        assert!(r.passed(), "seed {seed}: {:?}", r.violations);
    }
}
