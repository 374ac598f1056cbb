//! Leader leases through the member: leased reads with no confirmation round, and the
//! replica's clock caught up from the caller's time before it serves one (`member/ticks.rs`).

use super::*;
use paxos::multi::LeaderLease;

/// Three members with leader leases on (a 1,000 ppm bound), a leader elected and its lease
/// confirmed by a few heartbeat rounds.
fn leased_cluster(seed: u64) -> (Cluster, u64) {
    let options = ReplicaOptions {
        leader_lease: Some(LeaderLease {
            max_drift_ppm: 1_000,
        }),
        ..ReplicaOptions::default()
    };
    let mut c = Cluster::with_replica_options(3, seed, 10_000, None, options);
    let leader = c.elect();
    let w = c.request(leader, put("k", "old"));
    assert!(c.tick_until(SEC, |c| c.answered(w)));
    assert_put_ok(c.answer(w));
    for _ in 0..5 {
        c.tick();
    }
    (c, leader)
}

#[test]
fn a_leader_with_a_lease_answers_linearizable_reads_with_no_confirmation_round() {
    let (mut c, leader) = leased_cluster(11);
    let counters = c.member(leader).replica().counters().clone();
    for _ in 0..10 {
        let r = c.request(leader, get("k", true));
        // Answered within the request's own input: no round trip to the others.
        assert_eq!(value_of(c.answer(r)).as_deref(), Some("old"));
    }
    let after = c.member(leader).replica().counters();
    assert_eq!(after.leased_reads, counters.leased_reads + 10);
    assert_eq!(
        after.read_rounds, counters.read_rounds,
        "a read-index round ran"
    );
}

/// The value of a read's answer, or `Err` with the error a failed read gave.
fn read_outcome(answer: Option<Answer>) -> Result<Option<String>, String> {
    match answer {
        Some(Answer::Read(Err(e))) => Err(e.to_string()),
        other => Ok(value_of(other)),
    }
}

/// The leader is "stopped" (no input at all, as a SIGSTOPped process) while the others elect
/// a new leader and overwrite the key; it then wakes to a linearizable read before its next
/// tick input. Returns what that read answered.
fn read_at_a_leader_woken_after_a_stop(
    seed: u64,
    bugs: crate::bugs::MemberBugs,
) -> Result<Option<String>, String> {
    let (mut c, old) = leased_cluster(seed);
    c.members
        .get_mut(&old)
        .expect("the leader")
        .plant_bugs(bugs);
    c.cut.push(old);
    let others: Vec<u64> = (1..=3).filter(|&i| i != old).collect();
    let mut new_leader = None;
    for _ in 0..1_000 {
        c.now = c.now + TICK;
        let now = c.now;
        for id in &others {
            c.members.get_mut(id).expect("a member").tick(now);
        }
        c.settle();
        new_leader = others
            .iter()
            .copied()
            .find(|&i| c.member(i).status().leader == i);
        if new_leader.is_some() {
            break;
        }
    }
    let new_leader = new_leader.expect("the others elect a leader while the old one sleeps");
    let w = c.request(new_leader, put("k", "new"));
    for _ in 0..100 {
        if c.answered(w) {
            break;
        }
        c.now = c.now + TICK;
        let now = c.now;
        for id in &others {
            c.members.get_mut(id).expect("a member").tick(now);
        }
        c.settle();
    }
    assert_put_ok(c.answer(w));
    // It wakes: the first input after the stop is a client's read.
    c.cut.clear();
    let r = c.request(old, get("k", true));
    assert!(
        c.tick_until(5 * SEC, |c| c.answered(r)),
        "the read is answered"
    );
    read_outcome(c.answer(r))
}

#[test]
fn a_leader_woken_after_a_stop_does_not_serve_a_stale_read() {
    for seed in 0..5 {
        let answer = read_at_a_leader_woken_after_a_stop(seed, crate::bugs::MemberBugs::none());
        assert_ne!(answer, Ok(Some("old".into())), "seed {seed}: a stale read");
    }
}

/// The check above catches the planted bug: with ticks counted per tick input, the woken
/// leader's lease still holds on its stale tick count and it answers the overwritten value.
#[cfg(feature = "planted-bugs")]
#[test]
fn planted_lease_ticks_not_caught_up_serves_a_stale_read() {
    let bug = crate::bugs::MemberBugs::only(crate::bugs::MemberBug::LeaseTicksNotCaughtUp);
    let answer = read_at_a_leader_woken_after_a_stop(0, bug);
    assert_eq!(answer, Ok(Some("old".into())));
}
