//! Scenario tests for quorum rules other than majorities (ARCHITECTURE.md, "Flexible quorums"):
//! each count the core makes is tested with a rule under which the wrong phase, or a count of
//! heads instead of a set test, would give another answer.

use super::*;

impl Cluster {
    /// Voters `1..=n` under `rule`, and learners `n+1..=n+learners`.
    pub(super) fn with_rule(n: u64, learners: u64, rule: QuorumSpec) -> Cluster {
        let config = Configuration::with_learners(
            (1..=n).map(NodeId).collect(),
            (n + 1..=n + learners).map(NodeId).collect(),
            rule,
        )
        .unwrap();
        let mut c = Cluster::new(n + learners);
        c.replicas = (1..=n + learners)
            .map(|i| Replica::new(NodeId(i), config.clone(), options()).unwrap())
            .collect();
        c
    }
}

/// Flexible Paxos, section 3: a value accepted by a phase-2 quorum of two is chosen, and a
/// later leader finds it because its phase-1 quorum of four must include one of the two.
#[test]
fn two_accepts_choose_and_only_four_promises_elect_under_flexible_4_2() {
    let mut c = Cluster::with_rule(
        5,
        0,
        QuorumSpec::Flexible {
            phase1: 4,
            phase2: 2,
        },
    );
    c.elect(1);
    for id in [3, 4, 5] {
        c.crash(id);
    }
    c.r(1).propose(cmd(1, 1)).unwrap();
    c.settle();
    assert_eq!(c.r(1).chosen_through(), Slot(1), "two of five choose");
    // Bring back 3..5 and lose the leader: 2 holds the only other copy.
    c.crash(1);
    for id in [3, 4, 5] {
        c.restart(id);
    }
    // Three promises (3, 4, 5) must not elect: they would miss the chosen value.
    c.crash(2);
    c.r(3).campaign();
    c.settle();
    assert_ne!(
        c.r(3).role(),
        Role::Leader,
        "three promises elected under phase1 = 4"
    );
    c.restart(2);
    c.r(3).campaign();
    c.settle();
    assert_eq!(
        c.r(3).role(),
        Role::Leader,
        "2, 3, 4, 5 are a phase-1 quorum"
    );
    c.r(3).propose(cmd(1, 2)).unwrap();
    c.settle();
    c.assert_applied(&[2, 3, 4, 5], &[cmd(1, 1), cmd(1, 2)]);
}

/// Pre-votes ask for a phase-1 quorum: three live nodes out of five, under phase1 = 4, never
/// raise a ballot (so they never disturb a leader they could not replace anyway).
#[test]
fn pre_votes_need_a_phase1_quorum() {
    let mut c = Cluster::with_rule(
        5,
        0,
        QuorumSpec::Flexible {
            phase1: 4,
            phase2: 2,
        },
    );
    c.elect(1);
    let promised = c.r(3).promised();
    c.crash(1);
    c.crash(2);
    c.tick_all(10 * options().election_timeout_ticks);
    for id in [3, 4, 5] {
        assert_eq!(c.r(id).promised(), promised, "n{id} raised a ballot");
        assert_ne!(c.r(id).role(), Role::Leader);
    }
    c.restart(2);
    c.tick_all(10 * options().election_timeout_ticks);
    assert!(c.leader().is_some(), "four live nodes elect");
}

/// Check-quorum asks for a phase-2 quorum: a leader that still reaches one follower keeps
/// leading under phase2 = 2 (it can still choose), and the three it cannot reach cannot elect.
#[test]
fn check_quorum_keeps_a_leader_that_reaches_a_phase2_quorum() {
    let mut c = Cluster::with_rule(
        5,
        0,
        QuorumSpec::Flexible {
            phase1: 4,
            phase2: 2,
        },
    );
    c.elect(1);
    let ballot = c.r(1).ballot();
    for a in 1..=5u64 {
        for b in (a + 1)..=5 {
            if !(a == 1 && b == 2) {
                c.cut.insert((a, b));
            }
        }
    }
    c.tick_all(10 * options().election_timeout_ticks);
    assert_eq!(
        c.r(1).role(),
        Role::Leader,
        "check-quorum counted a phase-1 quorum"
    );
    assert_eq!(c.r(1).ballot(), ballot);
    c.r(1).propose(cmd(1, 1)).unwrap();
    c.tick_all(2);
    assert_eq!(c.r(1).chosen_through(), Slot(1), "n1 and n2 choose");
}

/// Grid quorums: a read is confirmed by the echoes of a full row, not by as many voters as a
/// row holds. Voters 1..6 in 2 rows x 3 columns: rows {1,2,3} and {4,5,6}.
#[test]
fn a_grid_read_is_confirmed_by_a_full_row_not_by_a_count() {
    let mut c = Cluster::with_rule(
        6,
        0,
        QuorumSpec::Grid {
            rows: 2,
            columns: 3,
        },
    );
    c.elect(1);
    c.r(1).propose(cmd(1, 1)).unwrap();
    c.settle();
    assert_eq!(c.r(1).chosen_through(), Slot(1));
    // 1, 3, 4, 6 echo: four voters, more than a row's three, but no full row.
    c.cut.insert((1, 2));
    c.cut.insert((1, 5));
    c.r(1).read(ReadId(1)).unwrap();
    c.settle();
    assert!(c.reads.is_empty(), "a read confirmed without a full row");
    c.cut.clear();
    c.r(1).read(ReadId(2)).unwrap();
    c.settle();
    let ready: Vec<ReadId> = c
        .reads
        .iter()
        .filter_map(|r| match r {
            ReadOutcome::Ready { id, .. } => Some(*id),
            ReadOutcome::Failed { .. } => None,
        })
        .collect();
    assert_eq!(
        ready,
        vec![ReadId(1), ReadId(2)],
        "a full row confirms both"
    );
}

/// Grid quorums: accepts from a full row choose; the same number of accepts spread over two
/// rows do not.
#[test]
fn a_grid_chooses_with_a_full_row_only() {
    let mut c = Cluster::with_rule(
        6,
        0,
        QuorumSpec::Grid {
            rows: 2,
            columns: 3,
        },
    );
    c.elect(1);
    // 1, 2 and 4 accept: three voters, but row 0 lacks 3 and row 1 lacks 5 and 6.
    c.crash(3);
    c.crash(5);
    c.crash(6);
    c.r(1).propose(cmd(1, 1)).unwrap();
    c.settle();
    assert_eq!(
        c.r(1).chosen_through(),
        Slot(0),
        "chosen without a full row"
    );
    c.restart(3);
    c.tick_all(2);
    assert_eq!(c.r(1).chosen_through(), Slot(1), "row 1, 2, 3 chooses");
}

/// Weighted voting: what counts is weight. n1 weighs 3 of 7; phase 2 needs 3, so n1 alone
/// chooses, and phase 1 needs 5, so no leader can be elected without n1 (the others weigh 4).
#[test]
fn weighted_quorums_count_weight_not_heads() {
    let mut c = Cluster::with_rule(
        5,
        0,
        QuorumSpec::Weighted {
            weights: vec![3, 1, 1, 1, 1],
            phase1: 5,
            phase2: 3,
        },
    );
    c.elect(1);
    for id in 2..=5 {
        c.crash(id);
    }
    c.r(1).propose(cmd(1, 1)).unwrap();
    c.settle();
    assert_eq!(
        c.r(1).chosen_through(),
        Slot(1),
        "weight 3 is a phase-2 quorum"
    );
    c.crash(1);
    for id in 2..=5 {
        c.restart(id);
    }
    c.r(2).campaign();
    c.settle();
    assert_ne!(
        c.r(2).role(),
        Role::Leader,
        "four voters of weight 1 elected"
    );
    c.restart(1);
    c.r(2).campaign();
    c.settle();
    assert_eq!(c.r(2).role(), Role::Leader);
    c.r(2).propose(cmd(1, 2)).unwrap();
    c.settle();
    c.assert_applied(&[1, 2], &[cmd(1, 1), cmd(1, 2)]);
}

/// A learner's echo never confirms a read: it holds no promise that could stop a competing
/// leader. Voters 1..3 with phase 2 = 2, learner 4.
#[test]
fn a_learner_echo_never_confirms_a_read() {
    let mut c = Cluster::with_rule(
        3,
        1,
        QuorumSpec::Flexible {
            phase1: 2,
            phase2: 2,
        },
    );
    c.elect(1);
    c.r(1).propose(cmd(1, 1)).unwrap();
    c.settle();
    c.cut.insert((1, 2));
    c.cut.insert((1, 3));
    c.r(1).read(ReadId(1)).unwrap();
    c.settle();
    assert!(
        c.reads.is_empty(),
        "the leader and a learner confirmed a read"
    );
    c.cut.clear();
    c.r(1).read(ReadId(2)).unwrap();
    c.settle();
    assert_eq!(c.reads.len(), 2);
}

/// The rule is part of the configuration, so a stop-sign changes it (Stoppable Paxos: each
/// epoch runs its own phase 1 under its own rule). Majority, then Flexible, then Grid on the
/// same six voters, with values chosen before and after each change, and each rule shown in
/// force by a set of live voters that only it accepts.
#[test]
fn the_quorum_rule_changes_through_stop_signs() {
    let mut c = Cluster::with_rule(6, 0, QuorumSpec::Majority);
    let voters: Vec<NodeId> = (1..=6).map(NodeId).collect();
    let change = |c: &mut Cluster, rule: QuorumSpec| {
        let next = Configuration::new(voters.clone(), rule.clone()).unwrap();
        c.r(1).propose_reconfiguration(next).unwrap();
        c.settle();
        c.tick_all(4);
        for id in 1..=6 {
            assert_eq!(
                c.r(id).config().quorum(),
                rule,
                "n{id} entered the new rule"
            );
        }
        assert_eq!(c.leader(), Some(NodeId(1)));
    };
    c.elect(1);
    c.commit_one_by_one(1, 1..=2);
    // Majority in force: the leader and one follower choose nothing.
    for id in 3..=6 {
        c.crash(id);
    }
    c.r(1).propose(cmd(1, 3)).unwrap();
    c.settle();
    assert_eq!(
        c.r(1).chosen_through(),
        Slot(2),
        "two of six chose under majority"
    );
    for id in 3..=6 {
        c.restart(id);
    }
    c.tick_all(4);
    assert_eq!(c.r(1).chosen_through(), Slot(3));

    change(
        &mut c,
        QuorumSpec::Flexible {
            phase1: 5,
            phase2: 2,
        },
    );
    // Flexible 5,2: the leader and n4 choose.
    for id in [2, 3, 5, 6] {
        c.crash(id);
    }
    c.commit_one_by_one(1, 4..=4);
    assert!(
        c.r(1).chosen_through() >= Slot(5),
        "two of six choose under flexible:5,2"
    );
    for id in [2, 3, 5, 6] {
        c.restart(id);
    }
    c.tick_all(4);

    change(
        &mut c,
        QuorumSpec::Grid {
            rows: 2,
            columns: 3,
        },
    );
    // Grid 2x3: n1 and n4 are a column, not a row: nothing is chosen until row 1, 2, 3 is back.
    let before = c.r(1).chosen_through();
    for id in [2, 3, 5, 6] {
        c.crash(id);
    }
    c.r(1).propose(cmd(1, 5)).unwrap();
    c.settle();
    assert_eq!(
        c.r(1).chosen_through(),
        before,
        "a column chose under the grid"
    );
    c.restart(2);
    c.restart(3);
    c.tick_all(2);
    assert_eq!(
        c.r(1).chosen_through(),
        before.next(),
        "row 1, 2, 3 chooses"
    );
    c.restart(5);
    c.restart(6);
    c.tick_all(4);
    let all: Vec<Command> = (1..=5).map(|s| cmd(1, s)).collect();
    c.assert_applied(&[1, 2, 3, 4, 5, 6], &all);
}
