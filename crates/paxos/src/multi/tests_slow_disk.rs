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
