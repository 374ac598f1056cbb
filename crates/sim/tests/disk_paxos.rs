//! Disk Paxos in the simulator: the real cores over the real block code on `MemFs` disks.
//!
//! A campaign passes every check with every fault kind firing; a run is a function of its
//! seed; and the planted bug (a phase completed on fewer than a majority of disks) is caught
//! within a bounded number of seeds, which pass without it.

use paxos::{Bug, PlantedBugs};
use sim::disk::{run_disk_campaign, run_disk_seed, DiskCheck, DiskFaultKind, DiskSimConfig};

/// Seeds of the campaign in the test command (10,000 are run by hand: see ARCHITECTURE.md).
const CAMPAIGN_SEEDS: u64 = 2_000;
/// Seeds tried before declaring the planted bug uncaught.
const BUG_SEEDS_MAX: u64 = 200;

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[test]
fn a_campaign_passes_every_check_and_every_fault_fires() {
    let report = run_disk_campaign(0..CAMPAIGN_SEEDS, 3, 3, PlantedBugs::none(), threads());
    println!("{report}");
    assert!(report.passed(), "{report}");
    assert!(report.never_fired.is_empty(), "{report}");
    assert_eq!(report.runs_all_decided, CAMPAIGN_SEEDS);
    assert!(report.decisions >= 3 * CAMPAIGN_SEEDS);
    assert!(report.aborts > 0, "processors never duelled: {report}");
}

#[test]
fn five_processors_on_five_disks_pass_too() {
    let report = run_disk_campaign(0..200, 5, 5, PlantedBugs::none(), threads());
    println!("{report}");
    assert!(report.passed(), "{report}");
}

#[test]
fn a_run_is_a_function_of_its_seed() {
    for seed in [1, 17, 99] {
        let a = run_disk_seed(DiskSimConfig::new(seed, 3, 3));
        let b = run_disk_seed(DiskSimConfig::new(seed, 3, 3));
        assert_eq!(a, b);
    }
}

#[test]
fn deciding_without_a_disk_majority_is_caught() {
    let bugged = |seed| {
        let mut c = DiskSimConfig::new(seed, 3, 3);
        c.bugs = PlantedBugs::only(Bug::DecideWithoutDiskMajority);
        run_disk_seed(c)
    };
    let caught = (0..BUG_SEEDS_MAX)
        .map(bugged)
        .find(|r| r.violations.iter().any(|(c, _)| *c == DiskCheck::Agreement));
    let caught = caught.expect("the planted bug was never caught");
    println!(
        "decide-without-disk-majority caught at seed {}: {:?}",
        caught.seed, caught.violations[0]
    );
    // The same seeds, without the bug, pass.
    for seed in 0..=caught.seed {
        let r = run_disk_seed(DiskSimConfig::new(seed, 3, 3));
        assert!(r.passed(), "seed {seed}: {:?}", r.violations);
    }
    assert!(DiskFaultKind::ALL.len() == 6);
}
