//! etcd's Lease service on a real member over loopback, through the generated gRPC client:
//! grant, attach, time-to-live, list, revoke, renewals, and expiry by the leader's clock.

use etcd_proto::etcdserverpb as pb;
use etcd_proto::etcdserverpb::{
    kv_client::KvClient, lease_client::LeaseClient, watch_client::WatchClient,
};
use node::NodeConfig;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

use crate::common;
use crate::common::{connect, free_port, leader_of, start_all, three_configs, Channel};

/// Every wait in these tests is bounded: a lost answer fails the test instead of hanging it.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .unwrap_or_else(|_| panic!("no {what} within 10 s"))
}

async fn single() -> (node::Node, Channel, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig::single("solo", dir.path().join("data"), free_port(), free_port());
    let node = node::start(config).await.unwrap();
    let channel = connect(node.client_addr()).await;
    (node, channel, dir)
}

async fn grant(lease: &mut LeaseClient<Channel>, id: i64, ttl: i64) -> pb::LeaseGrantResponse {
    lease
        .lease_grant(pb::LeaseGrantRequest { id, ttl })
        .await
        .unwrap()
        .into_inner()
}

async fn put_with(kv: &mut KvClient<Channel>, key: &str, lease: i64) {
    kv.put(pb::PutRequest {
        key: key.into(),
        value: "v".into(),
        lease,
        ..Default::default()
    })
    .await
    .unwrap();
}

async fn exists(kv: &mut KvClient<Channel>, key: &str) -> bool {
    common::value_of(kv, key).await.is_some()
}

async fn time_to_live(lease: &mut LeaseClient<Channel>, id: i64) -> pb::LeaseTimeToLiveResponse {
    lease
        .lease_time_to_live(pb::LeaseTimeToLiveRequest { id, keys: true })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_attach_list_time_to_live_and_revoke() {
    let (node, channel, _dir) = single().await;
    let mut lease = LeaseClient::new(channel.clone());
    let mut kv = KvClient::new(channel.clone());

    let g = grant(&mut lease, 0, 60).await;
    assert!(g.id > 0);
    assert_eq!(g.ttl, 60);
    let chosen = grant(&mut lease, 77, 30).await;
    assert_eq!((chosen.id, chosen.ttl), (77, 30));
    let again = lease
        .lease_grant(pb::LeaseGrantRequest { id: 77, ttl: 30 })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert_eq!(again.message(), "etcdserver: lease already exists");

    put_with(&mut kv, "held/a", g.id).await;
    put_with(&mut kv, "held/b", g.id).await;
    put_with(&mut kv, "other", 77).await;

    let t = time_to_live(&mut lease, g.id).await;
    assert_eq!(t.granted_ttl, 60);
    assert!((58..=60).contains(&t.ttl), "{t:?}");
    assert_eq!(t.keys, [b"held/a".to_vec(), b"held/b".to_vec()]);
    let unknown = time_to_live(&mut lease, 12345).await;
    assert_eq!(unknown.ttl, -1);

    let mut ids: Vec<i64> = lease
        .lease_leases(pb::LeaseLeasesRequest {})
        .await
        .unwrap()
        .into_inner()
        .leases
        .iter()
        .map(|l| l.id)
        .collect();
    ids.sort();
    assert_eq!(ids, [g.id, 77]);

    lease
        .lease_revoke(pb::LeaseRevokeRequest { id: g.id })
        .await
        .unwrap();
    assert!(!exists(&mut kv, "held/a").await && !exists(&mut kv, "held/b").await);
    assert!(exists(&mut kv, "other").await, "another lease's key stays");
    let gone = lease
        .lease_revoke(pb::LeaseRevokeRequest { id: g.id })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    assert_eq!(gone.message(), "etcdserver: requested lease not found");
    let unknown_put = kv
        .put(pb::PutRequest {
            key: "x".into(),
            lease: g.id,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        unknown_put.message(),
        "etcdserver: requested lease not found"
    );

    // A TTL shorter than an election is raised to the minimum (1 s with the default timing).
    assert_eq!(grant(&mut lease, 0, 0).await.ttl, 1);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_lease_lives_on_and_an_abandoned_one_expires_with_its_keys() {
    let (node, channel, _dir) = single().await;
    let mut lease = LeaseClient::new(channel.clone());
    let mut kv = KvClient::new(channel.clone());
    let kept = grant(&mut lease, 0, 1).await.id;
    let dropped = grant(&mut lease, 0, 1).await.id;
    put_with(&mut kv, "kept", kept).await;
    put_with(&mut kv, "dropped", dropped).await;

    // A watcher sees the expiry as a delete, like any other.
    let (watch_tx, watch_requests) = mpsc::channel(4);
    let mut watch = WatchClient::new(channel.clone())
        .watch(ReceiverStream::new(watch_requests))
        .await
        .unwrap()
        .into_inner();
    watch_tx
        .send(pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: "dropped".into(),
                    ..Default::default()
                },
            )),
        })
        .await
        .unwrap();
    let created = within("watch creation", watch.message()).await;
    assert!(created.unwrap().unwrap().created);

    // Renew `kept` every 300 ms for 3 s, three times its TTL.
    let (renew_tx, renewals) = mpsc::channel(4);
    let mut renewer = LeaseClient::new(channel.clone());
    let answers = renewer.lease_keep_alive(ReceiverStream::new(renewals));
    let mut answers = within("renewal stream", answers)
        .await
        .unwrap()
        .into_inner();
    let start = Instant::now();
    let mut last_renewal = start;
    while start.elapsed() < Duration::from_secs(3) {
        last_renewal = Instant::now();
        renew_tx
            .send(pb::LeaseKeepAliveRequest { id: kept })
            .await
            .unwrap();
        let a = within("renewal answer", answers.message()).await;
        let a = a.unwrap().unwrap();
        assert_eq!((a.id, a.ttl), (kept, 1));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(exists(&mut kv, "kept").await, "renewed for 3 s: alive");
    assert!(!exists(&mut kv, "dropped").await, "never renewed: expired");
    let deleted = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(deleted.events.len(), 1);
    assert_eq!(
        deleted.events[0].r#type,
        etcd_proto::mvccpb::event::EventType::Delete as i32
    );
    assert_eq!(time_to_live(&mut lease, dropped).await.ttl, -1);

    // A renewal of a lease that is gone answers TTL 0.
    renew_tx
        .send(pb::LeaseKeepAliveRequest { id: dropped })
        .await
        .unwrap();
    let a = within("renewal answer", answers.message()).await;
    let a = a.unwrap().unwrap();
    assert_eq!((a.id, a.ttl), (dropped, 0));

    // Stop renewing: `kept` expires too, within its TTL and a few ticks.
    let stopped = Instant::now();
    while exists(&mut kv, "kept").await {
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "an abandoned lease must expire"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        last_renewal.elapsed() >= Duration::from_secs(1),
        "not before a TTL has passed since the last renewal"
    );
    // The renewal stream is still open: the member stops anyway, and promptly.
    within("a stop with a renewal stream open", node.shutdown())
        .await
        .unwrap();
    drop(renew_tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_outlives_its_leaders_loss_while_renewed_and_the_new_leader_expires_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = start_all(&three_configs(dir.path())).await;
    let mut leader = 0;
    while leader == 0 {
        leader = leader_of(nodes[0].client_addr()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let at = nodes.iter().position(|n| n.member_id() == leader).unwrap();
    let old = nodes.remove(at);
    // Grant and attach through a member that will survive, then lose the leader.
    let survivor = connect(nodes[0].client_addr()).await;
    let mut lease = LeaseClient::new(survivor.clone());
    let mut kv = KvClient::new(survivor.clone());
    let id = grant(&mut lease, 0, 2).await.id;
    put_with(&mut kv, "session", id).await;
    old.shutdown().await.unwrap();

    // Renew through the survivors every 500 ms for 4 s, twice the TTL: the lease lives
    // through the election (renewals wait for the new leader) and after it.
    let start = Instant::now();
    let mut last_renewal = start;
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(4) {
        let mut renewer = LeaseClient::new(connect(nodes[i % 2].client_addr()).await);
        let (tx, rx) = mpsc::channel(1);
        tx.send(pb::LeaseKeepAliveRequest { id }).await.unwrap();
        last_renewal = Instant::now();
        let mut answers = within(
            "a renewal stream",
            renewer.lease_keep_alive(ReceiverStream::new(rx)),
        )
        .await
        .unwrap()
        .into_inner();
        let a = within("a renewal answer", answers.message()).await;
        assert_eq!(a.unwrap().unwrap().ttl, 2, "renewed, not gone");
        i += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let other = connect(nodes[1].client_addr()).await;
    assert!(exists(&mut KvClient::new(other.clone()), "session").await);

    // Stop renewing: the new leader's clock runs out and its revoke reaches both survivors.
    let stopped = Instant::now();
    while exists(&mut kv, "session").await {
        assert!(
            stopped.elapsed() < Duration::from_secs(10),
            "the new leader expires it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(last_renewal.elapsed() >= Duration::from_secs(2));
    assert!(!exists(&mut KvClient::new(other), "session").await);
    for n in nodes {
        within("a stop", n.shutdown()).await.unwrap();
    }
}
