//! Scenario tests of the EPaxos core, each named after the rule it exercises (EPaxos §4).

use super::*;
use rand_chacha::{rand_core::SeedableRng, ChaCha8Rng};

fn cluster(n: u64) -> Vec<Replica> {
    let ids: Vec<NodeId> = (1..=n).map(NodeId).collect();
    ids.iter()
        .map(|id| Replica::new(*id, ids.clone(), EpaxosOptions::default()).unwrap())
        .collect()
}

fn put(client: u64, key: &str) -> Command {
    Command::Kv {
        id: CommandId { client, seq: 1 },
        op: KvOp::Put {
            key: key.into(),
            value: format!("v{client}"),
        },
    }
}

/// Delivers every message until quiet; `drop_to` loses everything sent to those replicas.
fn run(rs: &mut [Replica], drop_to: &[u64], rounds: usize) -> Vec<Vec<(InstanceId, Command)>> {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut executed = vec![Vec::new(); rs.len()];
    for _ in 0..rounds {
        let mut mail = Vec::new();
        for (k, r) in rs.iter_mut().enumerate() {
            if drop_to.contains(&r.id().0) {
                continue;
            }
            r.tick(&mut rng);
            let ready = r.ready();
            mail.extend(ready.send.into_iter().map(|o| (r.id(), o)));
            executed[k].extend(ready.executed);
        }
        for (from, o) in mail {
            if !drop_to.contains(&o.to.0) {
                rs[(o.to.0 - 1) as usize].step(from, o.msg);
            }
        }
    }
    executed
}

#[test]
fn non_interfering_commands_take_the_fast_path_at_n5() {
    let mut rs = cluster(5);
    rs[0].propose(put(1, "a")).unwrap();
    rs[1].propose(put(2, "b")).unwrap();
    let ex = run(&mut rs, &[], 5);
    assert_eq!(
        rs[0].counters().fast_commits + rs[1].counters().fast_commits,
        2
    );
    assert!(ex.iter().all(|e| e.len() == 2));
}

#[test]
fn concurrent_interfering_commands_take_the_slow_path_and_execute_in_one_order() {
    let mut rs = cluster(3);
    rs[0].propose(put(1, "k")).unwrap();
    rs[1].propose(put(2, "k")).unwrap();
    let ex = run(&mut rs, &[], 10);
    let slow: u64 = rs.iter().map(|r| r.counters().slow_commits).sum();
    assert!(
        slow >= 1,
        "{:?}",
        rs.iter().map(|r| r.counters()).collect::<Vec<_>>()
    );
    assert!(ex.iter().all(|e| e.len() == 2));
    assert_eq!(ex[0], ex[1]);
    assert_eq!(ex[1], ex[2]);
}

#[test]
fn a_command_whose_leader_crashed_is_recovered_by_explicit_prepare() {
    let mut rs = cluster(3);
    rs[0].propose(put(1, "k")).unwrap();
    // The leader's PreAccepts reach the others, then the leader is gone.
    let ready = rs[0].ready();
    for o in ready.send {
        rs[(o.to.0 - 1) as usize].step(NodeId(1), o.msg);
    }
    let ex = run(&mut rs, &[1], 60);
    let recovered: u64 = rs.iter().map(|r| r.counters().recoveries).sum();
    assert!(recovered >= 1);
    assert_eq!(ex[1].len(), 1, "{ex:?}");
    assert_eq!(ex[1][0].1, put(1, "k"));
    assert_eq!(ex[1], ex[2]);
}

#[test]
fn an_instance_known_only_as_a_dependency_is_recovered_as_a_noop() {
    let mut rs = cluster(3);
    let ghost = InstanceId {
        replica: NodeId(1),
        slot: 1,
    };
    let mut attrs = Attrs::default();
    attrs.deps.insert(ghost);
    attrs.seq = 2;
    // Replica 2 learns a command that depends on an instance nobody else ever saw.
    let i = InstanceId {
        replica: NodeId(3),
        slot: 1,
    };
    rs[1].step(
        NodeId(3),
        EpaxosMessage::Commit {
            instance: i,
            command: put(3, "k"),
            attrs,
        },
    );
    let ex = run(&mut rs, &[1], 60);
    assert!(rs[1].counters().noops + rs[2].counters().noops >= 1);
    assert_eq!(ex[1].len(), 2, "{ex:?}");
    assert_eq!(ex[1][0].1, Command::Noop);
}

#[test]
fn a_restarted_replica_re_executes_from_its_records() {
    let mut rs = cluster(3);
    rs[0].propose(put(1, "k")).unwrap();
    let mut records = BTreeMap::new();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for _ in 0..5 {
        let mut mail = Vec::new();
        for r in rs.iter_mut() {
            r.tick(&mut rng);
            let ready = r.ready();
            if r.id() == NodeId(2) {
                for rec in ready.persist {
                    records.insert(rec.instance, rec);
                }
            }
            mail.extend(ready.send.into_iter().map(|o| (r.id(), o)));
        }
        for (from, o) in mail {
            rs[(o.to.0 - 1) as usize].step(from, o.msg);
        }
    }
    let ids: Vec<NodeId> = (1..=3).map(NodeId).collect();
    let mut back = Replica::recover(
        NodeId(2),
        ids,
        EpaxosOptions::default(),
        records.into_values().collect(),
        PlantedBugs::none(),
    )
    .unwrap();
    let ready = back.ready();
    assert_eq!(ready.executed.len(), 1);
}

#[test]
fn bad_replica_sets_are_refused() {
    assert!(Replica::new(NodeId(1), vec![NodeId(1), NodeId(2)], Default::default()).is_err());
    assert!(Replica::new(NodeId(4), (1..=3).map(NodeId).collect(), Default::default()).is_err());
}
