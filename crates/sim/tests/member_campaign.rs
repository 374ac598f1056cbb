//! The member-level simulation: a campaign of real `member::Member`s under network faults,
//! crashes (at random times and at the member's named crash points) and wiped disks (the
//! member rebuilds as a non-voting learner) passes every check, and
//! its checks are live (they see operations of every kind, snapshots and crashes).

use sim::member::{run_member_seeds, MemberCampaignReport, MemberCampaignSpec};
use sim::FaultProfile;

/// Seeds in the test: sized to take well under 90 s in the test profile on a loaded 2-core
/// machine (the release-built `synod sim --member` in scripts/test.sh runs more).
const SEEDS: u64 = 200;

#[test]
fn a_member_campaign_with_every_fault_passes() {
    let mut spec = MemberCampaignSpec::new(0..SEEDS, 3, FaultProfile::All);
    spec.threads = 2;
    let runs = run_member_seeds(&spec, &|_| {});
    let report = MemberCampaignReport::from_runs(&runs);
    println!("{report}");
    for run in &runs {
        assert!(run.passed(), "{run}");
    }
    assert!(report.passed(), "{report}");
    // The checks reached the code: every kind of operation answered, stores compared,
    // snapshots taken and sent, crashes at the member's own points.
    for kind in [
        "put",
        "get",
        "range-prefix",
        "txn",
        "delete",
        "lease-grant",
        "lease-keep-alive",
    ] {
        let ok = report.ops_by_kind.get(kind).map_or(0, |k| k.0);
        assert!(ok > 0, "no {kind} answered:\n{report}");
    }
    assert!(report.store_comparisons > 0, "{report}");
    assert!(report.snapshots_written > 0, "{report}");
    assert!(report.crash_points.len() > 1, "{report}");
    assert!(
        report.watches_compared > 0 && report.watch_events > 0,
        "{report}"
    );
    assert!(report.watches_cancelled > 0, "{report}");
}

/// One seed, printed (for sizing and debugging: `--ignored --nocapture`).
#[test]
#[ignore]
fn one_member_seed() {
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let t = std::time::Instant::now();
    let mut config = sim::member::MemberSimConfig::new(seed, 3, FaultProfile::All);
    if std::env::var("NET").is_ok() {
        config.faults = FaultProfile::Net;
    }
    if std::env::var("NO_WIPES").is_ok() {
        config.wipes = false;
    }
    // TRACE=text prints the trace lines holding it.
    if let Ok(filter) = std::env::var("TRACE") {
        config.trace = true;
        let mut sim = sim::member::MemberSimulation::new(config.clone());
        while sim.step() {}
        for line in sim.trace().iter().filter(|l| l.contains(&filter)) {
            println!("{line}");
        }
    }
    let report = sim::member::run_member_seed(config);
    println!("{report}\n{:?} {:?}", report.ops_by_kind, t.elapsed());
}

/// A campaign sized by the environment, every fault (`SEEDS=0..5000 NODES=3 MEMBERSHIP=1
/// NO_WIPES=1 LEASES=1`),
/// without the `synod` binary: `cargo test --release -p synod-sim --test member_campaign --
/// --ignored campaign_from_env --nocapture`.
#[test]
#[ignore]
fn campaign_from_env() {
    let var = |name: &str| std::env::var(name).ok();
    let (from, to) = var("SEEDS")
        .and_then(|s| {
            let (a, b) = s.split_once("..")?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .unwrap_or((0, SEEDS));
    let nodes = var("NODES").and_then(|n| n.parse().ok()).unwrap_or(3);
    let mut spec = MemberCampaignSpec::new(from..to, nodes, FaultProfile::All);
    // As `synod sim --member` takes --membership and --no-wipes.
    spec.tweak = match (var("MEMBERSHIP").is_some(), var("NO_WIPES").is_some()) {
        (false, false) => None,
        (true, false) => Some(|c: &mut sim::member::MemberSimConfig| c.membership = true),
        (false, true) => Some(|c: &mut sim::member::MemberSimConfig| c.wipes = false),
        (true, true) => Some(|c: &mut sim::member::MemberSimConfig| {
            c.membership = true;
            c.wipes = false;
        }),
    };
    // LEASES=1: leader leases, as `--leases` with its default drift bound.
    spec.leases = var("LEASES").map(|_| sim::leases::ClockModel {
        drift_ppm: sim::leases::DEFAULT_DRIFT_PPM,
        beyond_bound: false,
    });
    spec.threads = 2;
    let t = std::time::Instant::now();
    let runs = run_member_seeds(&spec, &|_| {});
    let report = MemberCampaignReport::from_runs(&runs);
    println!("{report}\n{:?} wall", t.elapsed());
    let failed: Vec<u64> = runs
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.seed)
        .collect();
    assert!(failed.is_empty(), "failed seeds {failed:?}");
}
