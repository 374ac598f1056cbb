//! Scenario tests for quorum rules other than majorities (ARCHITECTURE.md, "Flexible quorums"):
//! each count the core makes is tested with a rule under which the wrong phase, or a count of
//! heads instead of a set test, would give another answer.

use super::*;

impl Cluster {
    /// Voters `1..=n` under `rule`, and learners `n+1..=n+learners`.
    fn with_rule(n: u64, learners: u64, rule: QuorumSpec) -> Cluster {
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
