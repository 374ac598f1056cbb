//! Each planted bug must be caught by the checkers within a bounded number of seeds, and by
//! the check that guards against it (Paxos Made Live, 9: leave known bugs in to prove the
//! tests catch them). The seeds run in order and the search stops at the first failing seed,
//! whose number is printed, so a change that makes a bug harder to catch shows up as a
//! number creeping towards the bound.

use paxos::{Bug, PlantedBugs};
use sim::{run_seed, CheckKind, FaultProfile, RunReport, SimConfig};

/// Seeds tried per bug and cluster size before declaring the bug uncaught.
/// (It was 200 until disk faults, wipes and snapshots joined the `all` profile: they take
/// nodes down for long rebuilds and let lagging replicas skip slots by installing snapshots,
/// so a seed exposes fewer overlapping ballots and fewer per-slot observations.)
const SEEDS_MAX: u64 = 400;

/// Runs seeds `0..SEEDS_MAX` with `bug` planted; returns the first run in which one of
/// `expected` fired.
fn first_catch(
    bug: Bug,
    nodes: usize,
    expected: &[CheckKind],
    seeds_max: u64,
) -> Option<RunReport> {
    first_catch_in(bug, nodes, expected, seeds_max, false)
}

/// As [`first_catch`], with membership changes in the fault mix if `changes`.
fn first_catch_in(
    bug: Bug,
    nodes: usize,
    expected: &[CheckKind],
    seeds_max: u64,
    changes: bool,
) -> Option<RunReport> {
    (0..seeds_max).find_map(|seed| {
        let mut config = SimConfig::new(seed, nodes, FaultProfile::All);
        config.bugs = PlantedBugs::only(bug);
        config.membership_changes = changes;
        let report = run_seed(config);
        let fired = expected
            .iter()
            .any(|c| report.violation_counts.contains_key(c));
        fired.then_some(report)
    })
}

/// The oracle's checks: a slot handed out with two values, by two nodes or by one node
/// across a restart.
const AGREEMENT: &[CheckKind] = &[CheckKind::Agreement, CheckKind::Stability];

fn assert_caught(bug: Bug, nodes: usize, expected: &[CheckKind]) {
    assert_caught_within(bug, nodes, expected, SEEDS_MAX);
}

fn assert_caught_within(bug: Bug, nodes: usize, expected: &[CheckKind], seeds_max: u64) {
    assert!(
        sim::planted_bugs_available(),
        "dev-dependency enables the planted-bugs feature"
    );
    let Some(report) = first_catch(bug, nodes, expected, seeds_max) else {
        panic!(
            "{} on {nodes} nodes not caught by {expected:?} in {seeds_max} seeds",
            bug.name()
        );
    };
    println!(
        "{} on {nodes} nodes: caught at seed {} by {expected:?}; first failed check {:?}; violations {:?}; replay: {}",
        bug.name(),
        report.seed,
        report.first_failed_check(),
        report.violation_counts,
        report.replay_command()
    );
    assert!(!report.passed());
}

#[test]
fn forget_promise_on_restart_breaks_agreement() {
    // The driver sees the acceptor's promise go backwards on disk at once...
    assert_caught(
        Bug::ForgetPromiseOnRestart,
        3,
        &[CheckKind::PromiseRegression],
    );
    assert_caught(
        Bug::ForgetPromiseOnRestart,
        5,
        &[CheckKind::PromiseRegression],
    );
    // Two values chosen for one slot because of it is rarer still: pre-vote and check-quorum
    // make the overlapping ballots it needs rare (first at seed 9 of 3 nodes before disk
    // faults joined the plans, beyond seed 1,000 since). The campaign still finds such seeds.
}

#[test]
fn ignore_promised_values_breaks_agreement() {
    assert_caught(Bug::IgnorePromisedValues, 3, AGREEMENT);
    assert_caught(Bug::IgnorePromisedValues, 5, AGREEMENT);
}

#[test]
fn chosen_without_quorum_breaks_agreement() {
    assert_caught(Bug::ChosenWithoutQuorum, 3, AGREEMENT);
    assert_caught(Bug::ChosenWithoutQuorum, 5, AGREEMENT);
}

#[test]
fn accept_lower_ballot_breaks_agreement() {
    assert_caught(Bug::AcceptLowerBallot, 3, AGREEMENT);
    assert_caught(Bug::AcceptLowerBallot, 5, AGREEMENT);
}

#[test]
fn skip_persist_breaks_agreement() {
    assert_caught(Bug::SkipPersist, 3, AGREEMENT);
    // On five nodes a lost acknowledgement matters only if a later phase-1 quorum avoids
    // every other node that accepted, inside the short window before the write would have
    // been durable: 2 to 4 seeds in 1,000 catch it (4 in seeds 0..1000 before followers were
    // told of chosen slots at once, 2 after; first catch then at seed 37, now 503).
    assert_caught_within(Bug::SkipPersist, 5, AGREEMENT, 1_500);
}

#[test]
fn read_without_confirm_breaks_linearizability() {
    assert_caught(Bug::ReadWithoutConfirm, 3, &[CheckKind::Linearizability]);
    assert_caught(Bug::ReadWithoutConfirm, 5, &[CheckKind::Linearizability]);
}

#[test]
fn a_log_that_acknowledges_before_syncing_breaks_agreement() {
    // The core is correct; the driver reports writes durable while they sit in the simulated
    // disk's cache, and a crash takes them (promises and votes) away.
    assert_caught(Bug::AckBeforeSync, 3, AGREEMENT);
    assert_caught(Bug::AckBeforeSync, 5, AGREEMENT);
}

fn assert_caught_with_changes(bug: Bug, nodes: usize, expected: &[CheckKind]) {
    let Some(report) = first_catch_in(bug, nodes, expected, SEEDS_MAX, true) else {
        panic!(
            "{} on {nodes} nodes with membership changes not caught by {expected:?} in {SEEDS_MAX} seeds",
            bug.name()
        );
    };
    println!(
        "{} on {nodes} nodes with membership changes: caught at seed {} by {expected:?}; violations {:?}; replay: {}",
        bug.name(),
        report.seed,
        report.violation_counts,
        report.replay_command()
    );
    assert!(!report.passed());
}

/// A learner counted in a phase-2 quorum lets a leader and a learner choose a value that a
/// later leader, whose phase 1 never asks the learner, does not see.
#[test]
fn a_learner_counted_in_a_quorum_breaks_agreement() {
    assert_caught_with_changes(Bug::LearnerInQuorum, 3, AGREEMENT);
}

/// A change without the stop-sign rule lets the old configuration choose slots the new one
/// decides too.
#[test]
fn a_change_without_the_stop_sign_rule_breaks_agreement() {
    assert_caught_with_changes(Bug::ReconfigWithoutStop, 3, AGREEMENT);
}

/// Quorums that need not intersect (phase 1 = 3, phase 2 = 2 of 5, the check skipped): a
/// leader's phase 1 can miss both acceptors that chose a value, and choose another.
#[test]
fn quorums_that_do_not_intersect_break_agreement() {
    let bug = Bug::QuorumsDoNotIntersect;
    let caught = (0..SEEDS_MAX).find_map(|seed| {
        let mut config = SimConfig::new(seed, 5, FaultProfile::All);
        config.bugs = PlantedBugs::only(bug);
        config.quorum = paxos::QuorumSpec::Flexible {
            phase1: 3,
            phase2: 2,
        };
        let report = run_seed(config);
        AGREEMENT
            .iter()
            .any(|c| report.violation_counts.contains_key(c))
            .then_some(report)
    });
    let Some(report) = caught else {
        panic!(
            "{} not caught by {AGREEMENT:?} in {SEEDS_MAX} seeds",
            bug.name()
        );
    };
    println!(
        "{} on 5 nodes (flexible:3,2): caught at seed {}; violations {:?}; replay: {}",
        bug.name(),
        report.seed,
        report.violation_counts,
        report.replay_command()
    );
    assert!(!report.passed());
}

/// Cheap Paxos (2 mains, 1 auxiliary): a leader that drops a silent main by switching its own
/// rule at once, without a stop-sign, decides alone while the cut-off main and the auxiliary
/// still make a quorum of the configuration that holds it.
#[test]
fn a_main_dropped_without_a_stop_sign_breaks_agreement() {
    let bug = Bug::CheapDropWithoutStopSign;
    let caught = (0..SEEDS_MAX).find_map(|seed| {
        let mut config = SimConfig::new(seed, 3, FaultProfile::All);
        config.bugs = PlantedBugs::only(bug);
        config.quorum = sim::cheap::rule_for(3);
        let report = run_seed(config);
        AGREEMENT
            .iter()
            .any(|c| report.violation_counts.contains_key(c))
            .then_some(report)
    });
    let Some(report) = caught else {
        panic!(
            "{} not caught by {AGREEMENT:?} in {SEEDS_MAX} seeds",
            bug.name()
        );
    };
    println!(
        "{} on 3 nodes (cheap:2): caught at seed {}; violations {:?}; replay: {}",
        bug.name(),
        report.seed,
        report.violation_counts,
        report.replay_command()
    );
    assert!(!report.passed());
}
