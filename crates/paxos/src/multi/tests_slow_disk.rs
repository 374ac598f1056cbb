//! Disks whose syncs outlast the election timeout. A promise counts only once durable
//! (Paxos Made Simple, 2.3: an acceptor must remember its promise through a failure), so an
//! election needs the candidate's own sync and then the voters'. A candidate that starts
//! over with a new ballot at each timer expiry, or a follower that seeks election while its
//! promise is still on its way to disk, would never let a phase 1 finish: found as a
//! 1-member `synod` on a 700 ms disk that never elected itself.

use super::*;

/// Every replica's disk completes a batch `sync_ticks` after it is handed out (in order);
/// messages arrive at once. Runs `ticks` ticks; returns the leader, if one is followed by
/// every replica at the end.
fn run_on_slow_disks(n: u64, sync_ticks: u64, ticks: u64) -> Option<NodeId> {
    let config = Configuration::majority_of(n).unwrap();
    let mut replicas: Vec<Replica> = (1..=n)
        .map(|i| Replica::new(NodeId(i), config.clone(), ReplicaOptions::default()).unwrap())
        .collect();
    let mut disks: Vec<VecDeque<(u64, PersistSeq)>> = vec![VecDeque::new(); n as usize];
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for now in 0..ticks {
        for (replica, disk) in replicas.iter_mut().zip(disks.iter_mut()) {
            replica.tick(&mut rng);
            while disk.front().is_some_and(|(due, _)| *due <= now) {
                let Some((_, seq)) = disk.pop_front() else {
                    break;
                };
                replica.persisted(seq);
            }
        }
        // Deliver until quiet: every message of this tick arrives within it.
        let mut queue: VecDeque<(NodeId, NodeId, Message)> = VecDeque::new();
        loop {
            for (replica, disk) in replicas.iter_mut().zip(disks.iter_mut()) {
                let ready = replica.ready();
                if let Some(batch) = ready.persist {
                    disk.push_back((now + sync_ticks, batch.seq));
                }
                for o in ready.send {
                    queue.push_back((replica.id(), o.to, o.msg));
                }
            }
            if queue.is_empty() {
                break;
            }
            while let Some((from, to, msg)) = queue.pop_front() {
                let _ = replicas[(to.0 - 1) as usize].step(from, msg);
            }
        }
    }
    let leader = replicas.iter().find(|r| r.role() == Role::Leader)?.id();
    replicas
        .iter()
        .all(|r| r.leader() == Some(leader))
        .then_some(leader)
}

/// Longer than the longest election timeout of the default options (10 ticks, plus up to 10
/// of jitter).
const SYNC_TICKS: u64 = 30;

#[test]
fn a_lone_replica_whose_promise_outlasts_the_election_timeout_still_leads() {
    assert!(
        run_on_slow_disks(1, SYNC_TICKS, 20 * SYNC_TICKS).is_some(),
        "no leader on a disk slower than the election timeout"
    );
}

#[test]
fn three_replicas_whose_promises_outlast_the_election_timeout_elect_a_leader() {
    assert!(
        run_on_slow_disks(3, SYNC_TICKS, 20 * SYNC_TICKS).is_some(),
        "no leader on disks slower than the election timeout"
    );
}

#[test]
fn fast_disks_still_elect_at_once() {
    // The control: the same harness with syncs within a tick elects a leader.
    assert!(run_on_slow_disks(3, 0, 40).is_some());
}

/// Node 2 of three promises node 1's ballot; its promise is durable after `durable_after`
/// ticks (0: before the first). Returns the tick at which its election timer fires (it asks
/// for pre-votes), nothing else reaching it.
fn ticks_until_it_seeks_election(durable_after: u64) -> u64 {
    let config = Configuration::majority_of(3).unwrap();
    let mut r = Replica::new(NodeId(2), config, ReplicaOptions::default()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let prepare = Message::Prepare {
        ballot: Ballot::new(1, NodeId(1)),
        from_slot: Slot(1),
        epoch: 0,
    };
    r.step(NodeId(1), prepare).unwrap();
    let promise = r.ready().persist.expect("the promise is written").seq;
    if durable_after == 0 {
        r.persisted(promise);
    }
    for now in 1..=1_000 {
        if now == durable_after {
            r.persisted(promise);
        }
        r.tick(&mut rng);
        let _ = r.ready();
        if r.role() == Role::PreCandidate {
            return now;
        }
    }
    panic!("the election timer never fired");
}

#[test]
fn a_promise_on_a_fast_disk_does_not_move_the_election_timer() {
    // A promise durable within a tick or two (any disk faster than the timer) leaves the
    // timer as it was: an earlier rule kept the timer at zero whenever a promise was in
    // flight, which shifted elections on fast disks too and left member_membership seeds 29
    // and 39 (wiped members with membership changes) without a leader.
    let at_once = ticks_until_it_seeks_election(0);
    assert_eq!(ticks_until_it_seeks_election(1), at_once);
    assert_eq!(ticks_until_it_seeks_election(2), at_once);
    // A promise slower than the timer holds it: the election comes a full timeout after the
    // promise is durable, not while it is still on its way.
    let slow = ticks_until_it_seeks_election(SYNC_TICKS);
    assert!(
        slow > SYNC_TICKS,
        "fired at {slow}, before its promise was durable"
    );
    assert!(
        slow >= SYNC_TICKS + u64::from(ReplicaOptions::default().election_timeout_ticks),
        "fired at {slow}, less than a timeout after its promise was durable at {SYNC_TICKS}"
    );
}

#[test]
fn a_candidate_whose_voters_never_answer_gives_up_its_ballot_after_bounded_resends() {
    // Node 1 of three runs; nothing it sends arrives (its voters are rebuilding, gone, or cut
    // off). It asks again at the same ballot a bounded number of times, then seeks a new one.
    let config = Configuration::majority_of(3).unwrap();
    let mut r = Replica::new(NodeId(1), config, ReplicaOptions::default()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    r.campaign();
    let ballot = r.ballot();
    assert_eq!(r.role(), Role::Candidate);
    let resends_max = u64::from(crate::multi::leader::PREPARE_RESENDS_MAX);
    for _ in 0..2_000 {
        if let Some(batch) = r.ready().persist {
            r.persisted(batch.seq);
        }
        r.tick(&mut rng);
        if r.role() != Role::Candidate {
            break;
        }
        assert_eq!(
            r.ballot(),
            ballot,
            "a candidate keeps its ballot while it re-sends"
        );
    }
    // Each re-send asks both voters again.
    assert_eq!(r.counters().prepares_resent, 2 * resends_max);
    assert_eq!(r.role(), Role::PreCandidate, "it gave the ballot up");
}
