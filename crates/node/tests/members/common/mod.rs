//! What the node's integration tests share: ports, connections, and clusters of real members.
#![allow(dead_code)] // each test module uses a different part

use etcd_proto::etcdserverpb as pb;
use etcd_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use node::config::parse_initial_cluster;
use node::NodeConfig;
use std::net::SocketAddr;

pub type Channel = tonic::transport::Channel;

/// A loopback address whose port was free a moment ago. Each call takes a loopback IP of its
/// own (127.77.x.y; Linux routes all of 127/8 to lo): the port is bound again only when a
/// member starts, and in between another test's outgoing connection from 127.0.0.1 could take
/// the same port on 127.0.0.1 ("address already in use", seen on a loaded CI machine), never on
/// an IP no client connects from.
pub fn free_port() -> SocketAddr {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let process = (std::process::id() % 200) as u8;
    let ip = std::net::Ipv4Addr::new(127, 77, process + 1, (n % 250) as u8 + 1);
    let l = std::net::TcpListener::bind((ip, 0)).unwrap();
    l.local_addr().unwrap()
}

/// A gRPC channel to a member's client address.
pub async fn connect(addr: SocketAddr) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// The value of `key` now (a linearizable read), or `None` if it does not exist.
pub async fn value_of(
    kv: &mut etcd_proto::etcdserverpb::kv_client::KvClient<Channel>,
    key: &str,
) -> Option<Vec<u8>> {
    let r = kv
        .range(pb::RangeRequest {
            key: key.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    r.kvs.into_iter().next().map(|kv| kv.value)
}

/// Configurations of a new three-member cluster with data under `dir`.
pub fn three_configs(dir: &std::path::Path) -> Vec<NodeConfig> {
    let ports: Vec<(SocketAddr, SocketAddr)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let cluster: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, (_, p))| format!("m{i}=http://{p}"))
        .collect();
    let peers = parse_initial_cluster(&cluster.join(","), "test").unwrap();
    ports
        .iter()
        .enumerate()
        .map(|(i, (c, p))| {
            let mut config =
                NodeConfig::defaults(&format!("m{i}"), dir.join(format!("m{i}")), *c, *p, "test");
            config.initial_cluster = peers.clone();
            // The smallest segments: each member preallocates an active and a spare segment
            // whole, and these tests run several members at once on a shared disk.
            config.wal_segment_bytes = node::config::WAL_SEGMENT_BYTES_MIN;
            config
        })
        .collect()
}

/// Starts every member at once: a new cluster's members wait for each other's answers.
pub async fn start_all(configs: &[NodeConfig]) -> Vec<node::Node> {
    let starting: Vec<_> = configs
        .iter()
        .cloned()
        .map(|c| tokio::spawn(node::start(c)))
        .collect();
    let mut nodes = Vec::new();
    for s in starting {
        nodes.push(s.await.unwrap().unwrap());
    }
    nodes
}

/// Who the member at `addr` believes leads (0: nobody yet).
pub async fn leader_of(addr: SocketAddr) -> u64 {
    MaintenanceClient::new(connect(addr).await)
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .leader
}
