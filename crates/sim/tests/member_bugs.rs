//! Bugs planted in the member (`member::bugs`, feature `planted-bugs`) are caught by the
//! member-level simulation's checks; the same seeds pass without them.

use member::bugs::{MemberBug, MemberBugs};
use sim::member::{run_member_seed, MemberCheck, MemberRunReport, MemberSimConfig};
use sim::FaultProfile;

/// Seeds tried before giving up on a catch.
const SEEDS_MAX: u64 = 40;

fn config(seed: u64, faults: FaultProfile, bug: Option<MemberBug>) -> MemberSimConfig {
    let mut config = MemberSimConfig::new(seed, 3, faults);
    config.bugs = bug.map_or(MemberBugs::none(), MemberBugs::only);
    config
}

/// The first seed whose run with `bug` fails `check`, with its report.
fn first_catch(bug: MemberBug, faults: FaultProfile, check: MemberCheck) -> (u64, MemberRunReport) {
    for seed in 0..SEEDS_MAX {
        let report = run_member_seed(config(seed, faults, Some(bug)));
        if report.violation_counts.contains_key(&check) {
            return (seed, report);
        }
    }
    panic!(
        "{} not caught by {} in {SEEDS_MAX} seeds",
        bug.name(),
        check.name()
    );
}

#[test]
fn a_follower_reading_before_it_applied_the_read_index_is_caught_by_lincheck() {
    let (seed, report) = first_catch(
        MemberBug::ReadBeforeApplied,
        FaultProfile::Net,
        MemberCheck::Linearizability,
    );
    println!("caught at seed {seed}:\n{report}");
    let clean = run_member_seed(config(seed, FaultProfile::Net, None));
    assert!(
        clean.passed(),
        "the same seed without the bug passes:\n{clean}"
    );
}

#[test]
fn a_lease_revoked_long_before_its_ttl_is_caught_by_lincheck() {
    let (seed, report) = first_catch(
        MemberBug::LeaseTtlInMillis,
        FaultProfile::None,
        MemberCheck::Linearizability,
    );
    println!("caught at seed {seed}:\n{report}");
    let clean = run_member_seed(config(seed, FaultProfile::None, None));
    assert!(
        clean.passed(),
        "the same seed without the bug passes:\n{clean}"
    );
}

#[test]
fn a_watch_event_shared_twice_is_caught_by_the_watch_check() {
    let (seed, report) = first_catch(
        MemberBug::WatchEventTwice,
        FaultProfile::None,
        MemberCheck::Watch,
    );
    println!("caught at seed {seed}:\n{report}");
    let clean = run_member_seed(config(seed, FaultProfile::None, None));
    assert!(
        clean.passed(),
        "the same seed without the bug passes:\n{clean}"
    );
}

#[test]
fn a_watch_that_starts_one_revision_late_is_caught_by_the_watch_check() {
    let (seed, report) = first_catch(
        MemberBug::WatchStartOffByOne,
        FaultProfile::None,
        MemberCheck::Watch,
    );
    println!("caught at seed {seed}:\n{report}");
    let clean = run_member_seed(config(seed, FaultProfile::None, None));
    assert!(
        clean.passed(),
        "the same seed without the bug passes:\n{clean}"
    );
}

#[test]
fn an_older_snapshot_installed_over_a_newer_state_is_caught_by_revision_went_back() {
    let (seed, report) = first_catch(
        MemberBug::RevisionBackAfterSnapshotInstall,
        FaultProfile::None,
        MemberCheck::RevisionWentBack,
    );
    println!("caught at seed {seed}:\n{report}");
    let clean = run_member_seed(config(seed, FaultProfile::None, None));
    assert!(
        clean.passed(),
        "the same seed without the bug passes:\n{clean}"
    );
}

#[test]
fn a_lease_revoked_long_before_its_ttl_is_caught_by_the_lock_check() {
    let (seed, report) = first_catch(
        MemberBug::LeaseTtlInMillis,
        FaultProfile::None,
        MemberCheck::Lock,
    );
    println!("caught at seed {seed}:\n{report}");
    let clean = run_member_seed(config(seed, FaultProfile::None, None));
    assert!(
        clean.passed(),
        "the same seed without the bug passes:\n{clean}"
    );
}

#[test]
fn a_lease_revoked_long_before_its_ttl_is_caught_by_the_election_check() {
    let (seed, report) = first_catch(
        MemberBug::LeaseTtlInMillis,
        FaultProfile::None,
        MemberCheck::Election,
    );
    println!("caught at seed {seed}:\n{report}");
    let clean = run_member_seed(config(seed, FaultProfile::None, None));
    assert!(
        clean.passed(),
        "the same seed without the bug passes:\n{clean}"
    );
}
