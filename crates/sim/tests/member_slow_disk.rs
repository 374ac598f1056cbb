//! Disks whose syncs outlast the election timeout: a cluster must still elect a leader and
//! serve. A promise counts only once durable, so on such a disk a candidate that starts over
//! with a new ballot whenever its timer fires, or a follower that seeks election while its
//! promise is still on its way to disk, never lets any phase 1 finish. (Found with the real
//! binary: `synod --test-slow-fsync-ms 700`, a 1-member cluster, never elected a leader.)
//!
//! The member simulation's election timeout is 10 ticks of 5 ms plus up to 10 of jitter
//! (50–100 ms); every log write of the slow members here takes 150 ms more than the plan's.

use sim::member::{run_member_seed, MemberRunReport, MemberSimConfig, SlowDisk};
use sim::FaultProfile;

/// Longer than the longest election timeout of the member simulation (100 ms).
const SLOW_WRITE_US: u64 = 150_000;

fn run(seed: u64, nodes: usize, slow_places: usize, faults: FaultProfile) -> MemberRunReport {
    let mut config = MemberSimConfig::new(seed, nodes, faults);
    config.slow_disk = Some(SlowDisk {
        places: slow_places,
        latency_us: SLOW_WRITE_US,
    });
    run_member_seed(config)
}

/// The run passed every check (liveness among them: one leader all follow once faults
/// stop), and clients' writes and linearizable reads were answered.
fn assert_serves(report: &MemberRunReport) {
    assert!(report.passed(), "{report}");
    for kind in ["put", "get"] {
        let ok = report.ops_by_kind.get(kind).map_or(0, |k| k.0);
        assert!(
            ok > 0,
            "no {kind} answered: {:?}\n{report}",
            report.ops_by_kind
        );
    }
}

#[test]
fn one_member_on_a_disk_slower_than_the_election_timeout_elects_and_serves() {
    for seed in 0..3 {
        assert_serves(&run(seed, 1, 1, FaultProfile::None));
    }
}

#[test]
fn three_members_on_disks_slower_than_the_election_timeout_elect_and_serve() {
    for seed in 0..3 {
        assert_serves(&run(seed, 3, 3, FaultProfile::None));
    }
}

#[test]
fn three_members_with_one_slow_disk_serve_through_faults() {
    // The first member's disk is slow; messages are lost, delayed and cut, members crash.
    for seed in 0..3 {
        assert_serves(&run(seed, 3, 1, FaultProfile::All));
    }
}
