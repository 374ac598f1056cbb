//! Paxos Commit in the simulator: campaigns with every fault pass every check, two-phase commit
//! blocks where Paxos Commit does not, a run is a function of its seed, the planted bug is
//! caught, and the benchmark's figures (printed with --nocapture).

use paxos::{Bug, PlantedBugs};
use sim::commit::{
    bench_commit, run_commit_campaign, run_commit_seed, CommitCampaignReport, CommitCampaignSpec,
    CommitCheck, CommitFault, CommitProtocol, CommitSim, CommitSimConfig,
};

fn assert_clean(report: &CommitCampaignReport) {
    assert_eq!(report.violation_total(), 0, "{report}");
    assert!(report.never_fired().is_empty(), "{report}");
    assert!(report.committed > 0 && report.aborted > 0, "{report}");
    assert_eq!(report.blocked, 0, "Paxos Commit never blocks\n{report}");
}

#[test]
fn paxos_commit_campaign_passes_every_check() {
    // 2,000 seeds: 1,000 with 3 RMs and F = 1, 1,000 with 5 RMs and F = 2.
    for (seeds, rms, f) in [(0..1_000, 3, 1), (1_000..2_000, 5, 2)] {
        let report = run_commit_campaign(&CommitCampaignSpec::new(
            seeds,
            CommitProtocol::Paxos,
            rms,
            f,
        ));
        println!("{report}");
        assert_clean(&report);
        assert!(report.phase1_runs > 0, "takeovers happened\n{report}");
    }
}

#[test]
fn two_phase_commit_is_safe_but_blocks_when_its_coordinator_is_lost() {
    let report = run_commit_campaign(&CommitCampaignSpec::new(
        0..300,
        CommitProtocol::TwoPhase,
        3,
        0,
    ));
    println!("{report}");
    assert_eq!(report.violation_total(), 0, "{report}");
    assert!(
        report.blocked > 0,
        "a lost coordinator blocks 2PC\n{report}"
    );
    assert!(
        report
            .faults_injected
            .get(&CommitFault::CoordinatorLost)
            .copied()
            .unwrap_or(0)
            > 0
    );
}

#[test]
fn a_run_is_a_function_of_its_seed() {
    for protocol in [CommitProtocol::Paxos, CommitProtocol::TwoPhase] {
        for seed in [1, 7, 42] {
            let run = || {
                let mut c = CommitSimConfig::new(seed, protocol, 4, 1);
                c.trace = true;
                let mut sim = CommitSim::new(c);
                while sim.step() {}
                let trace = sim.trace().join("\n");
                (trace, sim.finish())
            };
            let (t1, r1) = run();
            let (t2, r2) = run();
            assert!(!t1.is_empty());
            assert_eq!(t1.as_bytes(), t2.as_bytes(), "seed {seed}");
            assert_eq!(r1, r2);
        }
    }
}

#[test]
fn commit_with_a_missing_vote_is_caught() {
    assert!(sim::planted_bugs_available());
    const SEEDS_MAX: u64 = 200;
    let caught = (0..SEEDS_MAX).find_map(|seed| {
        let mut c = CommitSimConfig::new(seed, CommitProtocol::Paxos, 3, 1);
        c.bugs = PlantedBugs::only(Bug::CommitWithMissingVote);
        let r = run_commit_seed(c);
        r.violation_counts
            .contains_key(&CommitCheck::Validity)
            .then_some(r)
    });
    let Some(r) = caught else {
        panic!("commit-with-missing-vote not caught in {SEEDS_MAX} seeds");
    };
    println!(
        "commit-with-missing-vote caught at seed {} by {:?}: {:?}; replay: {}",
        r.seed,
        r.violation_counts,
        r.violations.first(),
        r.replay
    );
    // Without the bug, the same seeds pass.
    for seed in 0..=r.seed {
        let r = run_commit_seed(CommitSimConfig::new(seed, CommitProtocol::Paxos, 3, 1));
        assert!(r.passed(), "seed {seed}: {:?}", r.violations);
    }
}

#[test]
fn benchmark_paxos_commit_against_two_phase_commit() {
    const BACK_AFTER_US: u64 = 5_000_000;
    println!("message delays and messages per transaction (3 RMs, fixed 1 ms one-way latency, instant disks), and time blocked after a coordinator crash (back after 5 s / never)");
    let mut figures = Vec::new();
    for (protocol, f) in [
        (CommitProtocol::TwoPhase, 0),
        (CommitProtocol::Paxos, 1),
        (CommitProtocol::Paxos, 2),
    ] {
        let b = bench_commit(protocol, 3, f, BACK_AFTER_US);
        println!(
            "  {:<6} F={}  delays {:.1}  messages/txn {:.1}  blocked (coordinator back after 5 s) {}  blocked (never back) {}",
            b.protocol,
            b.f,
            b.delays,
            b.messages_per_txn,
            b.blocked_us.map_or("never decided".into(), sim::report::fmt_us),
            b.blocked_forever_us.map_or("never decided".into(), sim::report::fmt_us),
        );
        figures.push(b);
    }
    let (tpc, pc) = (&figures[0], &figures[1]);
    assert!(
        (tpc.delays - 4.0).abs() < 0.01,
        "2PC: BeginCommit, Prepare, vote, outcome: {tpc:?}"
    );
    assert!(
        (pc.delays - 5.0).abs() < 0.01,
        "Paxos Commit: one more, acceptors to leader: {pc:?}"
    );
    assert!(
        tpc.blocked_us.is_some_and(|b| b >= BACK_AFTER_US),
        "{tpc:?}"
    );
    assert_eq!(tpc.blocked_forever_us, None, "{tpc:?}");
    assert!(pc.blocked_us.is_some_and(|b| b < 1_000_000), "{pc:?}");
    assert!(
        pc.blocked_forever_us.is_some_and(|b| b < 1_000_000),
        "{pc:?}"
    );
}
