//! Bad input at every door of a real member: each gets a clear error or a logged refusal, the
//! member keeps serving, and nothing stored is lost.

use crate::common;
use crate::common::free_port;
use etcd_proto::etcdserverpb as pb;
use etcd_proto::etcdserverpb::kv_client::KvClient;
use node::NodeConfig;
use tokio::io::AsyncWriteExt;
use tonic::Code;

fn put(key: &str, value: &str) -> pb::PutRequest {
    pb::PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

async fn get(kv: &mut KvClient<tonic::transport::Channel>, key: &str) -> Vec<u8> {
    common::value_of(kv, key).await.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_and_garbage_bytes_leave_the_member_serving_and_data_intact() {
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig::single("solo", dir.path().join("data"), free_port(), free_port());
    let node = node::start(config).await.unwrap();
    let url = format!("http://{}", node.client_addr());
    let mut kv = KvClient::connect(url.clone()).await.unwrap();
    kv.put(put("kept", "safe")).await.unwrap();

    // An unknown lease.
    let e = kv
        .put(pb::PutRequest {
            lease: 12345,
            ..put("k", "v")
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::NotFound, "etcdserver: requested lease not found")
    );
    // An oversized key.
    let e = kv
        .put(put(&"k".repeat(1600 * 1024), "v"))
        .await
        .unwrap_err();
    assert_eq!(e.message(), "etcdserver: request is too large");
    // A duplicate key in one transaction.
    let op = |k: &str| pb::RequestOp {
        request: Some(pb::request_op::Request::RequestPut(put(k, "v"))),
    };
    let e = kv
        .txn(pb::TxnRequest {
            success: vec![op("d"), op("d")],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::InvalidArgument,
            "etcdserver: duplicate key given in txn request"
        )
    );
    // An unknown sort order.
    let e = kv
        .range(pb::RangeRequest {
            key: "a".into(),
            sort_order: 9,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    // A range whose end is below its start holds nothing (as in etcd), and is no error.
    let r = kv
        .range(pb::RangeRequest {
            key: "z".into(),
            range_end: "a".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.count, 0);

    // Garbage on the client port: the connection is dropped, nothing else happens.
    let mut raw = tokio::net::TcpStream::connect(node.client_addr())
        .await
        .unwrap();
    raw.write_all(&[0xde; 4096]).await.unwrap();
    drop(raw);
    // Garbage on the peer port: refused by the handshake.
    let mut raw = tokio::net::TcpStream::connect(node.peer_addr())
        .await
        .unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    raw.write_all(&[0xff; 1 << 16]).await.unwrap_or(());
    drop(raw);

    // Still serving, nothing lost, nothing half-applied.
    let mut kv = KvClient::connect(url).await.unwrap();
    assert_eq!(get(&mut kv, "kept").await, b"safe");
    assert_eq!(get(&mut kv, "k").await, b"");
    assert_eq!(get(&mut kv, "d").await, b"");
    let r = kv.put(put("after", "ok")).await.unwrap().into_inner();
    assert_eq!(
        r.header.unwrap().revision,
        3,
        "exactly one write before this one"
    );
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_started_on_another_members_data_directory_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let a = NodeConfig::single("a", data.clone(), free_port(), free_port());
    let node = node::start(a).await.unwrap();
    node.shutdown().await.unwrap();
    let b = NodeConfig::single("b", data, free_port(), free_port());
    let Err(e) = node::start(b).await else {
        panic!("a member started on another member's data directory")
    };
    let text = format!("{e:#}");
    assert!(text.contains("data directory"), "{text}");
    assert!(text.contains("member"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_from_another_cluster_is_refused_and_cannot_disturb_the_member() {
    let dir = tempfile::tempdir().unwrap();
    let a = NodeConfig::single("solo", dir.path().join("a"), free_port(), free_port());
    let node_a = node::start(a).await.unwrap();
    let mut kv = KvClient::connect(format!("http://{}", node_a.client_addr()))
        .await
        .unwrap();
    kv.put(put("x", "1")).await.unwrap();
    // A stranger: a new two-member cluster with another token whose second member is "at" a's
    // peer port. Starting empty, it must hear from every member before it runs; a's transport
    // refuses its handshake (another cluster id), so it never hears and never starts.
    let (b_client, b_peer) = (free_port(), free_port());
    let cluster = format!("b=http://{b_peer},solo=http://{}", node_a.peer_addr());
    let mut b = NodeConfig::defaults("b", dir.path().join("b"), b_client, b_peer, "another");
    b.initial_cluster = node::config::parse_initial_cluster(&cluster, "another").unwrap();
    let started = tokio::time::timeout(std::time::Duration::from_secs(3), node::start(b)).await;
    assert!(
        started.is_err(),
        "a member of another cluster got answers from a"
    );
    // a never noticed, beyond refusing: it serves, with its data.
    assert_eq!(get(&mut kv, "x").await, b"1");
    kv.put(put("x", "2")).await.unwrap();
    assert_eq!(get(&mut kv, "x").await, b"2");
    node_a.shutdown().await.unwrap();
}
