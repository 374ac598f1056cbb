//! Three real members in one process on loopback: writes through any member reach the leader,
//! linearizable reads at followers see them, and the cluster survives losing its leader.

use etcd_proto::etcdserverpb as pb;
use etcd_proto::etcdserverpb::{kv_client::KvClient, maintenance_client::MaintenanceClient};

use crate::common::{leader_of, start_all, three_configs as configs};
use std::net::SocketAddr;
use std::time::Duration;

async fn client(addr: SocketAddr) -> KvClient<tonic::transport::Channel> {
    KvClient::connect(format!("http://{addr}")).await.unwrap()
}

async fn put_retrying(addrs: &[SocketAddr], key: &str, value: &str) -> i64 {
    for attempt in 0..100 {
        let addr = addrs[attempt % addrs.len()];
        let Ok(mut kv) = KvClient::connect(format!("http://{addr}")).await else {
            continue;
        };
        let req = pb::PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        };
        match kv.put(req).await {
            Ok(r) => return r.into_inner().header.unwrap().revision,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("put {key} never succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_reach_the_leader_from_any_member_and_survive_its_loss() {
    let dir = tempfile::tempdir().unwrap();
    let configs = configs(dir.path());
    let mut nodes = start_all(&configs).await;
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.client_addr()).collect();
    // A write through every member, each read back linearizably through every other.
    for (i, _) in addrs.iter().enumerate() {
        let rev = put_retrying(&addrs[i..=i], &format!("k{i}"), &format!("v{i}")).await;
        assert!(rev >= 2);
        for addr in &addrs {
            let got = client(*addr)
                .await
                .range(pb::RangeRequest {
                    key: format!("k{i}").into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(
                got.kvs[0].value,
                format!("v{i}").into_bytes(),
                "read at {addr}"
            );
        }
    }
    // Every member converges on the same state: equal HashKV at the same revision.
    let mut hashes = Vec::new();
    for _ in 0..50 {
        hashes.clear();
        for addr in &addrs {
            let mut m = MaintenanceClient::connect(format!("http://{addr}"))
                .await
                .unwrap();
            let h = m
                .hash_kv(pb::HashKvRequest::default())
                .await
                .unwrap()
                .into_inner();
            hashes.push((h.header.unwrap().revision, h.hash));
        }
        if hashes.iter().all(|h| *h == hashes[0]) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(hashes.iter().all(|h| *h == hashes[0]), "{hashes:?}");
    assert_eq!(hashes[0].0, 4, "three puts after revision 1");

    // Every member names the same leader.
    let leader = leader_of(addrs[0]).await;
    assert_ne!(leader, 0);
    for a in &addrs {
        assert_eq!(leader_of(*a).await, leader);
    }
    // Stop the leader: the two others elect a new one and keep every acknowledged write.
    let at = nodes.iter().position(|n| n.member_id() == leader).unwrap();
    let old = nodes.remove(at);
    old.shutdown().await.unwrap();
    let rest: Vec<SocketAddr> = nodes.iter().map(|n| n.client_addr()).collect();
    put_retrying(&rest, "after", "failover").await;
    let all = client(rest[0])
        .await
        .range(pb::RangeRequest {
            key: "a".into(),
            range_end: "l".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let keys: Vec<String> = all
        .kvs
        .iter()
        .map(|kv| String::from_utf8(kv.key.clone()).unwrap())
        .collect();
    assert_eq!(keys, ["after", "k0", "k1", "k2"]);
    let new_leader = leader_of(rest[0]).await;
    assert!(new_leader != 0 && new_leader != leader);
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}

async fn count_at(addr: SocketAddr, serializable: bool) -> Option<i64> {
    let mut kv = KvClient::connect(format!("http://{addr}")).await.ok()?;
    let r = kv
        .range(pb::RangeRequest {
            key: "a".into(),
            range_end: "z".into(),
            count_only: true,
            serializable,
            ..Default::default()
        })
        .await
        .ok()?;
    Some(r.into_inner().count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_behind_a_compacted_log_catches_up_from_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut configs = configs(dir.path());
    for c in &mut configs {
        c.snapshot_every_slots = 20;
    }
    let mut nodes = start_all(&configs).await;
    // Stop a member, then write well past a few snapshot intervals without it.
    let behind = nodes.pop().unwrap();
    let behind_addr = behind.client_addr();
    behind.shutdown().await.unwrap();
    let up: Vec<SocketAddr> = nodes.iter().map(|n| n.client_addr()).collect();
    for i in 0..120 {
        put_retrying(&up, &format!("key{i:03}"), "v").await;
    }
    let snapshots = std::fs::read_dir(dir.path().join("m0"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".snap")
        })
        .count();
    assert!(snapshots >= 1, "the leader took no snapshot");
    // Back up: the others compacted the slots it misses, so it needs a snapshot.
    let back = node::start(configs[2].clone()).await.unwrap();
    assert_eq!(back.client_addr(), behind_addr);
    let mut caught_up = false;
    for _ in 0..100 {
        if count_at(behind_addr, true).await == Some(120) {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(caught_up, "the restarted member never caught up");
    back.shutdown().await.unwrap();
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}
