//! HTTP beside gRPC: one member's client port and its `--listen-metrics-urls` port serve
//! `/metrics` and etcd 3.4's `/health` (an alarm makes it unhealthy unless excluded), and the
//! gRPC health service answers SERVING, on the same port as etcd's services.

use crate::common;
use crate::common::free_port;
use etcd_proto::etcdserverpb as pb;
use etcd_proto::etcdserverpb::kv_client::KvClient;
use node::NodeConfig;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// (status, body) of `GET path` over HTTP/1.1, as curl sends it.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole answer");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    assert!(
        !head.to_ascii_lowercase().contains("chunked"),
        "small bodies come whole: {head}"
    );
    (status, body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_makes_health_false_on_both_ports_unless_excluded() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::single("solo", dir.path().join("data"), free_port(), free_port());
    config.quota_bytes = 4096;
    let metrics_addr = free_port();
    config.listen_metrics = vec![(metrics_addr, false)];
    let node = node::start(config).await.unwrap();
    let client = node.client_addr();

    // A single member leads at once; a healthy member says so on both ports.
    let mut healthy = false;
    for _ in 0..600 {
        if get(client, "/health").await == (200, r#"{"health":"true"}"#.to_string()) {
            healthy = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(healthy, "the member never became healthy");
    assert_eq!(
        get(metrics_addr, "/health").await,
        (200, r#"{"health":"true"}"#.to_string())
    );

    // gRPC health, on the client port beside etcd's services.
    let channel = common::connect(client).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let serving = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serving.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // Fill the quota: the NOSPACE alarm is raised.
    let mut kv = KvClient::new(channel);
    let mut accepted = 0;
    while kv
        .put(pb::PutRequest {
            key: format!("k{accepted}").into_bytes(),
            value: vec![b'x'; 1000],
            ..Default::default()
        })
        .await
        .is_ok()
    {
        accepted += 1;
        assert!(accepted < 100, "the quota never stopped writes");
    }
    let unhealthy = (503, "{\"health\":\"false\"}\n".to_string());
    assert_eq!(get(client, "/health").await, unhealthy);
    assert_eq!(get(metrics_addr, "/health").await, unhealthy);
    // etcd 3.4's ?exclude= lets a probe ignore an alarm it does not care about.
    assert_eq!(
        get(client, "/health?exclude=NOSPACE").await,
        (200, r#"{"health":"true"}"#.to_string())
    );

    // The metrics port serves the same registry; the alarm and the failures are counted.
    let (status, metrics) = get(metrics_addr, "/metrics").await;
    assert_eq!(status, 200);
    let line = |name: &str| {
        metrics
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .map(|l| l.rsplit(' ').next().unwrap_or_default().to_string())
    };
    assert_eq!(line("etcd_server_has_leader").as_deref(), Some("1"));
    // Served; its value follows the measured size, which a snapshot may measure again
    // lower (member.rs), so it is not pinned here.
    assert!(line("synod_member_nospace_alarm").is_some(), "{metrics}");
    assert!(
        line("etcd_server_health_failures")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n >= 2),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            r#"grpc_server_handled_total{grpc_code="ResourceExhausted",grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"} 1"#
        ),
        "the refused put is counted with its code:\n{metrics}"
    );
    // Only the HTTP routes there: gRPC is the client port's.
    assert_eq!(get(metrics_addr, "/nothing").await.0, 404);
    node.shutdown().await.unwrap();
}
