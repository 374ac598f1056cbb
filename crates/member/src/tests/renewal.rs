//! Lease renewals served by the leader without a log write (`member/lease_renewal.rs`): what
//! the member writes to the log about lease time, and when it answers a renewal.

use super::*;
use crate::bugs::MemberBugs;
use crate::LeaseRenewed;
use kv::LeaseCheckpointRequest;

const LEASE: i64 = 88;

/// Three members with `bugs`, a leader elected, and lease [`LEASE`] (TTL 10 s) granted and
/// renewed once at the leader; returns the cluster and the leader.
fn renewed_lease(seed: u64, bugs: MemberBugs) -> (Cluster, u64) {
    let mut c = Cluster::new(3, seed);
    for m in c.members.values_mut() {
        m.plant_bugs(bugs);
    }
    let leader = c.elect();
    let grant = Request::Write {
        payload: kv::encode(&KvCommand::LeaseGrant(LeaseGrantRequest {
            id: LEASE,
            ttl: 10,
        })),
        grows: true,
    };
    let g = c.request(leader, grant);
    assert!(c.tick_until(SEC, |c| c.answered(g)));
    let k = c.request(leader, Request::LeaseKeepAlive { id: LEASE });
    assert!(c.tick_until(SEC, |c| c.answered(k)));
    match c.answer(k) {
        Some(Answer::LeaseKeepAlive(Ok(LeaseRenewed { ttl: Some(10), .. }))) => {}
        other => panic!("not renewed: {other:?}"),
    }
    (c, leader)
}

/// A revoke decided by a leadership older than the current one reaches the log only now (a
/// deposed leader's, accepted by it alone and taken up by a later phase 1 in a slot the
/// current leader never filled): whether the lease the current leader renewed survives it.
fn renewed_lease_survives_an_older_leaderships_revoke(bugs: MemberBugs) -> bool {
    let (mut c, leader) = renewed_lease(21, bugs);
    let ballot = c.member(leader).replica().ballot();
    assert!(ballot.round >= 1);
    let stale = KvCommand::LeaseCheckpoint(LeaseCheckpointRequest {
        leader: (ballot.round - 1, ballot.node.0),
        checkpoints: Vec::new(),
        expired: vec![LEASE],
    });
    let w = c.request(
        leader,
        Request::Write {
            payload: kv::encode(&stale),
            grows: false,
        },
    );
    assert!(c.tick_until(SEC, |c| c.answered(w)));
    c.members
        .values()
        .all(|m| m.applier().machine().lease_checkpoint(LEASE).is_some())
}

#[test]
fn an_older_leaderships_lease_record_chosen_late_changes_nothing() {
    assert!(renewed_lease_survives_an_older_leaderships_revoke(
        MemberBugs::none()
    ));
}

/// The planted `lease-record-without-leader`: the member's records name no leadership, so
/// the store cannot tell the older record from the current leader's and revokes the lease.
#[test]
#[cfg(feature = "planted-bugs")]
fn planted_records_without_their_leadership_let_an_older_revoke_through() {
    let bug = MemberBugs::only(crate::bugs::MemberBug::LeaseRecordWithoutLeader);
    assert!(!renewed_lease_survives_an_older_leaderships_revoke(bug));
}
