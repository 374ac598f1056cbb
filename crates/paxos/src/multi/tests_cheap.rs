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
