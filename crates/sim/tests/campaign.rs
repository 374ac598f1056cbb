//! A campaign of 2,000 seeds, half on 3 nodes and half on 5, with every fault, and 400 more with
//! membership changes among them: no check may fail, the linearizability checker must never
//! give up, and every fault kind and crash point must have fired somewhere (a fault that never
//! fired proved nothing).

use sim::{run_seeds, CampaignReport, CampaignSpec, CrashPoint, FaultKind, FaultProfile};

fn campaign(nodes: usize, seeds: std::ops::Range<u64>) -> CampaignReport {
    let spec = CampaignSpec::new(seeds, nodes, FaultProfile::All);
    CampaignReport::from_runs(&run_seeds(&spec, &|_| {}))
}

/// The same, with the nemesis also changing the membership (`synod sim --membership`).
fn campaign_with_changes(nodes: usize, seeds: std::ops::Range<u64>) -> CampaignReport {
    let mut spec = CampaignSpec::new(seeds, nodes, FaultProfile::All);
    spec.membership_changes = true;
    CampaignReport::from_runs(&run_seeds(&spec, &|_| {}))
}

fn assert_clean(report: &CampaignReport) {
    assert_eq!(report.violation_total(), 0, "{report}");
    assert_eq!(report.lincheck_unknown, 0, "{report}");
    assert_eq!(report.lincheck_illegal, 0, "{report}");
    assert_eq!(report.lincheck_ok, report.seeds_run, "{report}");
    assert!(report.failing_seeds.is_empty(), "{report}");
    assert!(report.never_fired().is_empty(), "{report}");
    assert!(report.never_enabled().is_empty(), "{report}");
    assert!(report.crash_points_missed().is_empty(), "{report}");
    for kind in FaultKind::ALL {
        if FaultKind::MEMBERSHIP.contains(&kind) && !report.membership_changes {
            continue;
        }
        // With membership changes the nemesis wipes and damages no disk (see the test).
        let disk = kind == FaultKind::Wipe || FaultKind::DISK_DAMAGE.contains(&kind);
        if disk && report.membership_changes {
            continue;
        }
        assert!(
            report.faults_injected.get(&kind).copied().unwrap_or(0) > 0,
            "{kind:?} never fired\n{report}"
        );
    }
    for point in CrashPoint::ALL {
        assert!(
            report.crash_points.get(&point).copied().unwrap_or(0) > 0,
            "{point:?} never hit\n{report}"
        );
    }
    assert!(
        report.ops_ok > report.seeds_run * 50,
        "clients got work done\n{report}"
    );
    assert!(
        report.batches_lost > 0 && report.batches_kept > 0,
        "{report}"
    );
    // Storage paths that must have been exercised: snapshots taken and shipped, damage found
    // at recovery (a refused start), members rebuilt after a wipe regaining their vote.
    let st = &report.storage;
    assert!(
        st.snapshots_taken > 0 && st.snapshots_installed > 0,
        "{report}"
    );
    if report.membership_changes {
        // No disk damage or wipes with membership changes: nothing to refuse or rebuild.
        return;
    }
    assert!(
        st.refused_starts > 0 && st.operator_rebuilds > 0,
        "{report}"
    );
    assert!(st.rebuilds > 0 && st.votes_regained > 0, "{report}");
}

#[test]
fn a_thousand_seeds_on_three_nodes_pass_every_check() {
    let report = campaign(3, 0..1_000);
    println!("{report}");
    assert_clean(&report);
}

#[test]
fn a_thousand_seeds_on_five_nodes_pass_every_check() {
    let report = campaign(5, 1_000..2_000);
    println!("{report}");
    assert_clean(&report);
}

/// Membership changes among every other fault (disk damage and wipes aside: a wiped member
/// is rebuilt from the first configuration, which a change may have left behind).
#[test]
fn membership_changes_under_every_fault_pass_every_check() {
    for (nodes, seeds) in [(3, 0..200), (5, 200..400)] {
        let report = campaign_with_changes(nodes, seeds);
        println!("{report}");
        assert_clean(&report);
        for kind in FaultKind::MEMBERSHIP {
            assert!(report.faults_injected.get(&kind).copied().unwrap_or(0) > 0);
        }
    }
}

#[test]
fn other_profiles_and_sizes_pass() {
    for (nodes, faults) in [
        (1, FaultProfile::All),
        (2, FaultProfile::All),
        (4, FaultProfile::Net),
        (5, FaultProfile::None),
        (7, FaultProfile::Crash),
        (3, FaultProfile::Disk),
        (5, FaultProfile::Disk),
    ] {
        let spec = CampaignSpec::new(0..30, nodes, faults);
        let report = CampaignReport::from_runs(&run_seeds(&spec, &|_| {}));
        assert!(report.passed(), "{nodes} nodes, {faults}\n{report}");
    }
}
