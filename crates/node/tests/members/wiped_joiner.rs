//! A member added at run time (`MemberAdd`, then promoted) that loses its disk: it restarts on
//! an empty data directory with the flags `etcdctl member add` printed, and must go through
//! the amnesia rule (paxos rebuild.rs) as an original member does, not join as if it had never
//! voted: it may have promised a ballot and accepted values it no longer remembers.

use crate::common::{connect, free_port, leader_of, start_all, three_configs};
use etcd_proto::etcdserverpb as pb;
use etcd_proto::etcdserverpb::cluster_client::ClusterClient;
use etcd_proto::etcdserverpb::kv_client::KvClient;
use etcd_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use node::config::{parse_initial_cluster, ClusterState};
use node::NodeConfig;
use std::net::SocketAddr;
use std::time::Duration;

/// How long any one step may take on a loaded machine before the test gives up.
const STEP_DEADLINE: Duration = Duration::from_secs(60);
/// Pause between two tries of a step.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

async fn status(addr: SocketAddr) -> Option<pb::StatusResponse> {
    let mut m = MaintenanceClient::new(connect(addr).await);
    m.status(pb::StatusRequest {})
        .await
        .ok()
        .map(|r| r.into_inner())
}

/// Waits until `done` holds, trying again after each pause; panics after [`STEP_DEADLINE`].
async fn wait_until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + STEP_DEADLINE;
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// The leader's client address, once some member names one of `configs` as leader.
async fn leader_addr(configs: &[NodeConfig]) -> SocketAddr {
    let deadline = tokio::time::Instant::now() + STEP_DEADLINE;
    loop {
        for c in configs {
            let id = leader_of(c.listen_client).await;
            if let Some(l) = configs.iter().find(|c| c.me().id == id) {
                return l.listen_client;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no leader");
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Whether the member at `addr` votes: a voter of the configuration in force, not rebuilding
/// (its Status names no error).
async fn votes(addr: SocketAddr) -> bool {
    status(addr)
        .await
        .is_some_and(|s| s.errors.is_empty() && !s.is_learner)
}

/// The highest term (ballot round) any member at `addrs` reports.
async fn highest_term(addrs: &[SocketAddr]) -> u64 {
    let mut term = 0;
    for addr in addrs {
        if let Some(s) = status(*addr).await {
            term = term.max(s.raft_term);
        }
    }
    term
}

async fn put(addr: SocketAddr, key: &'static str) -> bool {
    let Ok(mut kv) = KvClient::connect(format!("http://{addr}")).await else {
        return false;
    };
    let req = pb::PutRequest {
        key: key.into(),
        value: b"v".to_vec(),
        ..Default::default()
    };
    kv.put(req).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_member_that_lost_its_disk_rebuilds_before_it_votes() {
    let dir = tempfile::tempdir().unwrap();
    let configs = three_configs(dir.path());
    let nodes = start_all(&configs).await;
    let leader = leader_addr(&configs).await;

    // Add m3 as a learner, start it with the lines `member add` prints, promote it.
    let (client3, peer3) = (free_port(), free_port());
    let mut cluster = ClusterClient::new(connect(leader).await);
    let added = cluster
        .member_add(pb::MemberAddRequest {
            peer_ur_ls: vec![format!("http://{peer3}")],
            is_learner: true,
        })
        .await
        .unwrap()
        .into_inner();
    let id = added.member.expect("the added member").id;
    let mut listed: Vec<String> = configs
        .iter()
        .map(|c| format!("{}=http://{}", c.name, c.listen_peer))
        .collect();
    listed.push(format!("m3=http://{peer3}"));
    let mut config3 = NodeConfig::defaults("m3", dir.path().join("m3"), client3, peer3, "test");
    config3.initial_cluster = parse_initial_cluster(&listed.join(","), "test").unwrap();
    config3.cluster_state = ClusterState::Existing;
    config3.wal_segment_bytes = node::config::WAL_SEGMENT_BYTES_MIN;
    let m3 = node::start(config3.clone()).await.unwrap();
    assert_eq!(m3.member_id(), id, "m3 found the id MemberAdd gave it");
    wait_until("m3 is promoted", || {
        let mut cluster = cluster.clone();
        async move {
            cluster
                .member_promote(pb::MemberPromoteRequest { id })
                .await
                .is_ok()
        }
    })
    .await;
    wait_until("a write with m3 voting", || put(leader, "before")).await;
    wait_until("m3 votes", || votes(client3)).await;

    // m3 loses its disk and comes back with the same flags.
    let mut addrs: Vec<SocketAddr> = configs.iter().map(|c| c.listen_client).collect();
    addrs.push(client3);
    let term_before = highest_term(&addrs).await;
    m3.shutdown().await.unwrap();
    std::fs::remove_dir_all(dir.path().join("m3")).unwrap();
    let m3 = node::start(config3).await.unwrap();
    assert_eq!(m3.member_id(), id, "m3 is still the member MemberAdd made");

    // It votes again only under a ballot above every round it may have promised before the
    // wipe: a leader elected after its restart. Joining as if new, it would have voted at once
    // under the old leader's ballot.
    wait_until("m3 votes again", || votes(client3)).await;
    wait_until("a write with m3 voting again", || put(client3, "after")).await;
    let term_after = highest_term(&addrs).await;
    assert!(
        term_after > term_before,
        "m3 voted again without a new ballot (term {term_before} before the wipe, {term_after} after)"
    );
    let mut kv = KvClient::new(connect(client3).await);
    let got = kv
        .range(pb::RangeRequest {
            key: b"before".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        got.kvs.len(),
        1,
        "m3 holds the write chosen before its wipe"
    );

    m3.shutdown().await.unwrap();
    for n in nodes {
        n.shutdown().await.unwrap();
    }
}
