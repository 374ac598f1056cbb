//! Scenario tests for Cheap Paxos (Lamport and Massa, 2004; cheap.rs): two main acceptors and
//! one auxiliary. Each names the rule it would break.

use super::*;

/// Nodes 1 and 2 are mains, 3 is the auxiliary.
fn cheap_cluster() -> Cluster {
    let mut c = Cluster::with_rule(3, 0, QuorumSpec::Cheap { main: 2 });
    c.elect(1);
    c
}

/// Section 3: in the normal case the mains alone choose; the auxiliary is sent no accept and
/// stores nothing.
#[test]
fn the_mains_alone_choose_and_the_auxiliary_stores_nothing() {
    let mut c = cheap_cluster();
    c.commit_one_by_one(1, 1..=3);
    c.tick_all(3 * options().election_timeout_ticks);
    let all: Vec<Command> = (1..=3).map(|s| cmd(1, s)).collect();
    c.assert_applied(&[1, 2], &all);
    assert_eq!(c.r(3).chosen_through(), Slot::ZERO, "the auxiliary learned");
    assert!(c.r(3).entry(Slot(1)).is_none(), "the auxiliary accepted");
    assert_eq!(c.r(1).counters().auxiliaries_engaged, 0);
    assert_eq!(c.r(3).role(), Role::Follower, "an idle auxiliary ran");
}

/// Section 3: a main fails; the auxiliary takes part until a stop-sign drops that main, and
/// is idle again after it: the remaining main chooses alone.
#[test]
fn a_failed_main_is_replaced_by_the_auxiliary_then_dropped_through_a_stop_sign() {
    let mut c = cheap_cluster();
    c.commit_one_by_one(1, 1..=1);
    c.crash(2);
    c.r(1).propose(cmd(1, 2)).unwrap();
    c.settle();
    assert_eq!(c.r(1).chosen_through(), Slot(1), "one main chose alone");
    let timeout = options().election_timeout_ticks;
    c.tick_all(timeout);
    assert_eq!(c.r(1).counters().auxiliaries_engaged, 1);
    assert!(
        c.r(1).chosen_through() >= Slot(2),
        "the auxiliary did not step in"
    );
    assert!(c.r(3).entry(Slot(2)).is_some());
    c.tick_all(3 * timeout);
    assert_eq!(c.r(1).counters().mains_dropped, 1);
    for id in [1, 3] {
        let config = c.r(id).config().clone();
        assert_eq!(
            c.r(id).epoch(),
            1,
            "n{id} did not enter the smaller configuration"
        );
        assert_eq!(config.mains(), &[NodeId(1)]);
        assert_eq!(config.auxiliaries(), &[NodeId(3)]);
    }
    // Back to idle: the remaining main is a quorum alone.
    let before = c.r(3).chosen_through();
    c.tick_all(timeout);
    c.r(1).propose(cmd(1, 3)).unwrap();
    c.settle();
    let last = c.r(1).chosen_through();
    assert!(
        c.r(3).entry(last).is_none(),
        "the auxiliary was asked after the drop"
    );
    assert_eq!(c.r(3).chosen_through(), before);
    assert_eq!(c.r(1).counters().auxiliaries_engaged, 1);
    let applied: Vec<Command> = commands(&c.chosen[0]);
    assert_eq!(applied, (1..=3).map(|s| cmd(1, s)).collect::<Vec<_>>());
}

/// A main cut off from the leader (not crashed) while the auxiliary hears both: the leader
/// drops it through a stop-sign, and whatever the cut-off main does, one value per slot.
/// With the planted `cheap-drop-without-stop-sign` the two sides choose different values.
fn split_between_mains(bugs: crate::bugs::PlantedBugs) -> Cluster {
    let mut c = Cluster::with_rule(3, 0, QuorumSpec::Cheap { main: 2 });
    for r in &mut c.replicas {
        r.bugs = bugs;
    }
    c.elect(1);
    c.commit_one_by_one(1, 1..=1);
    c.cut.insert((1, 2));
    let timeout = options().election_timeout_ticks;
    for round in 0..6 {
        c.tick_all(timeout);
        // Both sides take commands: 1 as leader, 2 once it leads at a higher ballot.
        for (id, client) in [(1, 1), (2, 2)] {
            if c.r(id).role() == Role::Leader {
                let _ = c.r(id).propose(cmd(client, 10 + round));
            }
        }
        c.settle();
    }
    c
}

/// One value per slot across everyone's chosen entries.
fn agree(c: &Cluster) -> bool {
    let mut seen: BTreeMap<Slot, Value> = BTreeMap::new();
    c.chosen.iter().flatten().all(|e| match seen.get(&e.slot) {
        Some(v) => *v == e.value,
        None => {
            seen.insert(e.slot, e.value.clone());
            true
        }
    })
}

#[test]
fn a_main_cut_off_from_the_leader_is_dropped_without_two_values_in_a_slot() {
    let c = split_between_mains(crate::bugs::PlantedBugs::none());
    assert!(agree(&c), "two values chosen in one slot");
}

#[cfg(feature = "planted-bugs")]
#[test]
fn planted_drop_without_stop_sign_chooses_two_values_in_one_slot() {
    let c = split_between_mains(crate::bugs::PlantedBugs::only(
        crate::bugs::Bug::CheapDropWithoutStopSign,
    ));
    assert!(!agree(&c), "the planted bug went unnoticed");
}

// ---- Habit 4: a dropped main that comes back is re-admitted (cheap.rs) ----

/// Main 2 crashes while 1 leads and is dropped through a stop-sign: it stays as a learner.
fn dropped_main(bugs: crate::bugs::PlantedBugs) -> Cluster {
    let mut c = Cluster::with_rule(3, 0, QuorumSpec::Cheap { main: 2 });
    for r in &mut c.replicas {
        r.bugs = bugs;
        r.enable_cheap_readmission(true);
    }
    c.elect(1);
    c.commit_one_by_one(1, 1..=2);
    c.crash(2);
    c.tick_all(3 * options().election_timeout_ticks);
    assert_eq!(c.r(1).counters().mains_dropped, 1);
    let config = c.r(1).config().clone();
    assert_eq!(c.r(1).epoch(), 1);
    assert_eq!(config.mains(), &[NodeId(1)]);
    assert_eq!(config.auxiliaries(), &[NodeId(3)]);
    assert_eq!(config.learners(), &[NodeId(2)], "the drop forgot the main");
    c
}

/// The configuration `c.r(id)` is in: (mains, auxiliaries, learners).
fn shape(c: &mut Cluster, id: u64) -> (Vec<NodeId>, Vec<NodeId>, Vec<NodeId>) {
    let config = c.r(id).config().clone();
    (
        config.mains().to_vec(),
        config.auxiliaries().to_vec(),
        config.learners().to_vec(),
    )
}

/// Drop, return, catch up, re-admitted as a main by a second stop-sign; after it the two
/// mains alone choose again and the auxiliary is idle.
#[test]
fn a_dropped_main_that_returns_is_readmitted_through_a_stop_sign() {
    let mut c = dropped_main(crate::bugs::PlantedBugs::none());
    c.commit_one_by_one(1, 3..=5);
    c.restart(2);
    let timeout = options().election_timeout_ticks;
    let mut waited = 0;
    while c.r(1).epoch() < 2 {
        assert!(
            waited < 2 * READMIT_EVERY_TIMEOUTS as u32 * timeout,
            "never re-admitted"
        );
        c.tick_all(1);
        waited += 1;
    }
    c.tick_all(timeout);
    assert_eq!(c.r(1).counters().mains_returned, 1);
    assert_eq!(c.r(1).counters().mains_readmitted, 1);
    for id in 1..=3 {
        assert_eq!(
            c.r(id).epoch(),
            2,
            "n{id} is not in the healed configuration"
        );
        assert_eq!(
            shape(&mut c, id),
            (vec![NodeId(1), NodeId(2)], vec![NodeId(3)], vec![]),
            "n{id}"
        );
    }
    assert!(c.r(2).is_voter());
    // The two stop-signs are chosen values like any other, in the same slots everywhere.
    let stops = c.chosen[0]
        .iter()
        .filter(|e| e.value.is_stop_sign())
        .count();
    assert_eq!(stops, 2);
    // Back to the first shape: the mains alone choose, the auxiliary is not asked.
    let aux_before = c.r(3).chosen_through();
    c.r(1).propose(cmd(1, 6)).unwrap();
    c.settle();
    c.tick_all(2);
    let last = c.r(1).chosen_through();
    assert!(c.r(3).entry(last).is_none(), "the auxiliary was asked");
    assert_eq!(c.r(3).chosen_through(), aux_before);
    let all: Vec<Command> = (1..=6).map(|s| cmd(1, s)).collect();
    c.assert_applied(&[1], &all);
    // And it carries the quorum: with the leader, main 2 alone chooses.
    c.crash(3);
    c.r(1).propose(cmd(1, 7)).unwrap();
    c.settle();
    assert!(c.r(2).chosen_through() >= c.r(1).chosen_through());
    assert!(commands(&c.chosen[0]).contains(&cmd(1, 7)));
}

/// Main 2 is dropped, comes back once (so it enters the smaller configuration as a learner),
/// goes away again while 80 slots are chosen, and returns unable to fetch the log: it
/// answers heartbeats but lags by more than `promote_lag_slots_max`. Returns whether it
/// became a main while it lagged, and the cluster (with the starvation lifted).
fn returns_lagging(bugs: crate::bugs::PlantedBugs) -> (bool, Cluster) {
    let mut c = dropped_main(bugs);
    c.restart(2);
    c.tick_all(2);
    assert_eq!(c.r(2).epoch(), 1, "n2 did not learn it was dropped");
    assert!(!c.r(2).is_voter());
    c.crash(2);
    for seq in 3..=90 {
        c.r(1).propose(cmd(1, seq)).unwrap();
        c.settle();
    }
    c.starved.insert(2);
    c.restart(2);
    let timeout = options().election_timeout_ticks;
    let mut readmitted_lagging = false;
    for _ in 0..(2 * READMIT_EVERY_TIMEOUTS as u32 * timeout) {
        c.tick_all(1);
        if c.r(1).config().mains().contains(&NodeId(2)) {
            readmitted_lagging = true;
        }
    }
    assert!(
        c.r(1).counters().mains_returned >= 1,
        "its return went unseen"
    );
    assert!(
        c.r(2).chosen_through() < Slot(30),
        "n2 caught up while starved"
    );
    c.starved.clear();
    (readmitted_lagging, c)
}

#[test]
fn a_main_that_returns_far_behind_is_a_learner_until_caught_up() {
    let (readmitted_lagging, mut c) = returns_lagging(crate::bugs::PlantedBugs::none());
    assert!(!readmitted_lagging, "re-admitted while 80 slots behind");
    assert_eq!(c.r(1).counters().mains_readmitted, 0);
    let timeout = options().election_timeout_ticks;
    c.tick_all(2 * READMIT_EVERY_TIMEOUTS as u32 * timeout);
    assert_eq!(c.r(1).counters().mains_readmitted, 1);
    assert_eq!(
        shape(&mut c, 2),
        (vec![NodeId(1), NodeId(2)], vec![NodeId(3)], vec![])
    );
    let all: Vec<Command> = (1..=90).map(|s| cmd(1, s)).collect();
    c.assert_applied(&[1, 2], &all);
}

#[cfg(feature = "planted-bugs")]
#[test]
fn planted_readmit_without_catch_up_is_caught() {
    let (readmitted_lagging, _) = returns_lagging(crate::bugs::PlantedBugs::only(
        crate::bugs::Bug::CheapReadmitWithoutCatchUp,
    ));
    assert!(readmitted_lagging, "the planted bug went unnoticed");
}

/// A main that flaps (dropped after two timeouts of silence, back for one, gone again)
/// faster than the bound is re-admitted no more often than once per
/// `READMIT_EVERY_TIMEOUTS` election timeouts: unbounded, it would be every `3T + 4` ticks.
#[test]
fn a_flapping_main_is_readmitted_at_most_once_per_bound() {
    let mut c = dropped_main(crate::bugs::PlantedBugs::none());
    let timeout = options().election_timeout_ticks;
    let bound = READMIT_EVERY_TIMEOUTS * u64::from(timeout);
    assert!(
        u64::from(3 * timeout + 4) < bound,
        "the flapping is not faster than the bound"
    );
    let mut readmitted_at = Vec::new();
    let mut tick = 0u64;
    let mut last = 0;
    for cycle in 0..10 {
        c.restart(2);
        for phase in 0..2 {
            let ticks = if phase == 0 { timeout } else { 2 * timeout + 4 };
            for _ in 0..ticks {
                c.tick_all(1);
                tick += 1;
                let n = c.r(1).counters().mains_readmitted;
                if n > last {
                    readmitted_at.push(tick);
                    last = n;
                }
            }
            if phase == 0 {
                c.crash(2);
            }
        }
        c.commit_one_by_one(1, 10 + cycle..=10 + cycle);
    }
    assert!(readmitted_at.len() >= 2, "re-admitted at {readmitted_at:?}");
    for w in readmitted_at.windows(2) {
        assert!(w[1] - w[0] >= bound, "re-admitted at {readmitted_at:?}");
    }
}
