//! Wiped disks in the member-level simulation: seeds that once failed, each replayed with the
//! fault mix that found it. A member whose disk is wiped rebuilds through the core's amnesia
//! rule (rebuild.rs); these runs must pass every check, liveness included.

use sim::member::{MemberSimConfig, MemberSimulation};
use sim::FaultProfile;

fn run(seed: u64, nodes: usize, membership: bool) -> sim::member::MemberRunReport {
    let mut config = MemberSimConfig::new(seed, nodes, FaultProfile::All);
    config.membership = membership;
    config.wipes = true;
    MemberSimulation::new(config).run()
}

/// Seed 471 (3 members, membership changes, wipes): a joiner that crashed with a snapshot on
/// its disk but no configuration entered was booted through `Replica::join`, which dropped
/// the snapshot's slot: its store was applied through s80 while its core had handed out
/// nothing, so it skipped every snapshot sent to it as already applied and stayed at chosen 0
/// (no convergence after the heal). Boot now recovers such a joiner with its snapshot, and
/// refuses to start a store ahead of its core.
#[test]
fn a_joiner_restarted_on_a_snapshot_catches_up() {
    let report = run(471, 3, true);
    assert!(report.passed(), "{report}");
}

/// Seed 1265 (3 members, wipes): a compaction at revision 27 applied in the same batch as a
/// deletion at 27; the changes shared with watchers in step were read after it, without the
/// deletion's tombstone (`shared-changes`: another member had shared it). The member now
/// shares the changes before a compaction applies.
#[test]
fn changes_are_shared_before_a_compaction_drops_their_tombstones() {
    let report = run(1265, 3, false);
    assert!(report.passed(), "{report}");
}

/// Seed 147 (3 members, membership changes, wipes): m2's removal was chosen but two of the
/// remaining members had not learned it, so to them m2 was still a voter, gone for good;
/// wiping m1 then left them two of four voters. The simulator wipes only once every running
/// member entered the newest configuration and all of its members are up.
#[test]
fn no_wipe_while_a_removal_is_not_known_to_all() {
    let report = run(147, 3, true);
    assert!(report.passed(), "{report}");
}

/// Replays one seed with its trace lines holding TRACE printed: `SEED=.. NODES=..
/// MEMBERSHIP=1 TRACE=text cargo test --release -p synod-sim --test member_wipes replay --
/// --ignored --nocapture`.
#[test]
#[ignore]
fn replay() {
    let var = |k: &str| std::env::var(k).ok();
    let seed = var("SEED").and_then(|s| s.parse().ok()).unwrap_or(0);
    let nodes = var("NODES").and_then(|s| s.parse().ok()).unwrap_or(3);
    let mut config = MemberSimConfig::new(seed, nodes, FaultProfile::All);
    config.membership = var("MEMBERSHIP").is_some();
    config.wipes = var("NO_WIPES").is_none();
    config.trace = true;
    let mut sim = MemberSimulation::new(config);
    while sim.step() {}
    let filter = var("TRACE").unwrap_or_default();
    for line in sim.trace().iter().filter(|l| l.contains(&filter)) {
        println!("{line}");
    }
    println!("{}", sim.finish());
}
