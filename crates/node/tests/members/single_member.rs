//! One real member on loopback, driven through etcd's gRPC API with the generated client:
//! what each service answers, and the errors etcd clients expect.

use etcd_proto::etcdserverpb as pb;
use etcd_proto::etcdserverpb::{
    cluster_client::ClusterClient, kv_client::KvClient, maintenance_client::MaintenanceClient,
};
use node::NodeConfig;
use std::net::SocketAddr;
use tonic::Code;

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

async fn single() -> (node::Node, tonic::transport::Channel, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = NodeConfig::single("solo", dir.path().join("data"), free_port(), free_port());
    let node = node::start(config).await.unwrap();
    let url = format!("http://{}", node.client_addr());
    let channel = tonic::transport::Endpoint::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    (node, channel, dir)
}

fn put(key: &str, value: &str) -> pb::PutRequest {
    pb::PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_member_serves_kv_status_and_member_list() {
    let (node, channel, _dir) = single().await;
    let mut kv = KvClient::new(channel.clone());
    let r = kv.put(put("a", "1")).await.unwrap().into_inner();
    let header = r.header.unwrap();
    assert_eq!(header.revision, 2);
    assert_eq!(header.member_id, node.member_id());
    assert!(header.raft_term > 0, "the ballot round is the term");
    kv.put(put("a", "2")).await.unwrap();
    let got = kv
        .range(pb::RangeRequest {
            key: "a".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.kvs.len(), 1);
    assert_eq!(
        (got.kvs[0].value.as_slice(), got.kvs[0].version),
        (&b"2"[..], 2)
    );
    let old = kv
        .range(pb::RangeRequest {
            key: "a".into(),
            revision: 2,
            serializable: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(old.kvs[0].value, b"1");

    let status = MaintenanceClient::new(channel.clone())
        .status(pb::StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.leader, node.member_id());
    assert!(status.raft_index >= 2 && status.raft_applied_index >= 2);
    assert!(status.version.starts_with("3."));

    let members = ClusterClient::new(channel.clone())
        .member_list(pb::MemberListRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(members.members.len(), 1);
    assert_eq!(members.members[0].name, "solo");
    assert_eq!(members.members[0].id, node.member_id());
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_etcds_errors_and_the_member_keeps_serving() {
    let (node, channel, _dir) = single().await;
    let mut kv = KvClient::new(channel.clone());
    let e = kv.put(put("", "x")).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "etcdserver: key is not provided")
    );
    let big = "v".repeat(1600 * 1024);
    let e = kv.put(put("k", &big)).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (Code::InvalidArgument, "etcdserver: request is too large")
    );
    let e = kv
        .range(pb::RangeRequest {
            key: "k".into(),
            revision: 99,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::OutOfRange);
    assert!(e.message().contains("future revision"), "{}", e.message());
    // Still serving.
    kv.put(put("k", "ok")).await.unwrap();
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_member_recovers_its_data_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (free_port(), free_port());
    let config = NodeConfig::single("solo", dir.path().join("data"), client, peer);
    let node = node::start(config.clone()).await.unwrap();
    let url = format!("http://{}", node.client_addr());
    let mut kv = KvClient::connect(url.clone()).await.unwrap();
    for i in 0..50 {
        kv.put(put(&format!("k{i:02}"), &i.to_string()))
            .await
            .unwrap();
    }
    drop(kv);
    node.shutdown().await.unwrap();
    let node = node::start(config).await.unwrap();
    let mut kv = KvClient::connect(url).await.unwrap();
    let all = kv
        .range(pb::RangeRequest {
            key: "k".into(),
            range_end: "l".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.count, 50);
    assert_eq!(all.header.unwrap().revision, 51);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_quota_raises_nospace_refuses_puts_serves_deletes_and_clears_by_etcds_runbook() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::single("solo", dir.path().join("data"), free_port(), free_port());
    config.quota_bytes = 4096;
    let node = node::start(config).await.unwrap();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", node.client_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut kv = KvClient::new(channel.clone());
    let mut accepted = 0;
    let refusal = loop {
        match kv
            .put(put(&format!("k{accepted}"), &"x".repeat(1000)))
            .await
        {
            Ok(_) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 100, "the quota never stopped writes");
    };
    assert!(
        accepted >= 3,
        "the quota stopped writes too early ({accepted})"
    );
    assert_eq!(refusal.code(), Code::ResourceExhausted);
    assert_eq!(
        refusal.message(),
        "etcdserver: mvcc: database space exceeded"
    );
    let alarms = MaintenanceClient::new(channel.clone())
        .alarm(pb::AlarmRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(alarms.alarms.len(), 1);
    assert_eq!(alarms.alarms[0].alarm, pb::AlarmType::Nospace as i32);
    // What is stored stays readable, and a delete (which frees space) is accepted.
    let got = kv
        .range(pb::RangeRequest {
            key: "k0".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.kvs.len(), 1);
    let deleted = kv
        .delete_range(pb::DeleteRangeRequest {
            key: "k".into(),
            range_end: "l".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut maintenance = MaintenanceClient::new(channel.clone());
    // As `etcdctl alarm disarm` does it: a DEACTIVATE for each listed alarm, naming its member
    // and type (one naming neither deactivates nothing, in etcd as here).
    let disarm = pb::AlarmRequest {
        action: pb::alarm_request::AlarmAction::Deactivate as i32,
        member_id: alarms.alarms[0].member_id,
        alarm: alarms.alarms[0].alarm,
    };
    // Deleted but not compacted away, nor measured again: the alarm stays, and says how to go.
    let early = maintenance.alarm(disarm).await.unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition);
    assert!(early.message().contains("etcdctl defrag"), "{early:?}");

    // etcd's runbook: compact, defragment, disarm; then writes are accepted again.
    kv.compact(pb::CompactionRequest {
        revision: deleted.header.unwrap().revision,
        ..Default::default()
    })
    .await
    .unwrap();
    maintenance
        .defragment(pb::DefragmentRequest::default())
        .await
        .unwrap();
    let disarmed = maintenance.alarm(disarm).await.unwrap().into_inner();
    assert!(disarmed.alarms.is_empty(), "{disarmed:?}");
    let alarms = maintenance
        .alarm(pb::AlarmRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(alarms.alarms.is_empty(), "{alarms:?}");
    kv.put(put("after", "the runbook")).await.unwrap();
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_txn_limit_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::single("solo", dir.path().join("data"), free_port(), free_port());
    config.txn_ops_max = 2;
    let node = node::start(config).await.unwrap();
    let mut kv = KvClient::connect(format!("http://{}", node.client_addr()))
        .await
        .unwrap();
    let op = |k: &str| pb::RequestOp {
        request: Some(pb::request_op::Request::RequestPut(put(k, "v"))),
    };
    let txn = |n: usize| pb::TxnRequest {
        success: (0..n).map(|i| op(&format!("t{i}"))).collect(),
        ..Default::default()
    };
    kv.txn(txn(2)).await.unwrap();
    let e = kv.txn(txn(3)).await.unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request"
        )
    );
    node.shutdown().await.unwrap();
}

/// Each log segment in `dir` and whether it was written over a compacted one. The member
/// renames and removes segments as it runs: one that vanishes between the listing and the
/// read is skipped.
fn segment_flags(dir: &std::path::Path) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        if name.starts_with("wal-") && name.ends_with(".log") {
            match storage::wal::segment_is_recycled(&storage::StdFs::new(), &entry.path()) {
                Ok(recycled) => out.push((name, recycled)),
                Err(_) if !entry.path().exists() => {}
                Err(e) => panic!("cannot read {name}: {e}"),
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_member_reuses_compacted_log_segments_and_recovers_from_them() {
    // 16 MiB segments, a snapshot every 16 slots and about 75 MiB of puts: the log rotates,
    // compacts and writes new segments over compacted ones, several times.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut config = NodeConfig::single("solo", data.clone(), free_port(), free_port());
    config.wal_segment_bytes = 16 << 20;
    config.snapshot_every_slots = 16;
    let node = node::start(config.clone()).await.unwrap();
    let url = format!("http://{}", node.client_addr());
    let mut kv = KvClient::connect(url.clone()).await.unwrap();
    let value = |i: usize| vec![i as u8; (768 << 10) + i];
    let mut expected = std::collections::BTreeMap::new();
    let mut recycled_seen = false;
    // At least 100 puts, and on until a segment was written over a compacted one: snapshots
    // are encoded and written off the core while puts go on, so on a loaded machine the
    // compaction that frees a segment can come late; a bound keeps a broken recycling from
    // looping for ever.
    for i in 0..400usize {
        if i >= 100 && recycled_seen {
            break;
        }
        let key = format!("big/{}", i % 10);
        let r = kv
            .put(pb::PutRequest {
                key: key.clone().into_bytes(),
                value: value(i),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        expected.insert(key, value(i));
        if i % 10 == 9 {
            // Keep the store's history short, so snapshots stay small.
            kv.compact(pb::CompactionRequest {
                revision: r.header.unwrap().revision,
                physical: false,
            })
            .await
            .unwrap();
        }
        recycled_seen |= segment_flags(&data).iter().any(|(_, recycled)| *recycled);
    }
    assert!(
        recycled_seen,
        "some segment was written over a compacted one"
    );
    // About 75 MiB went through the log: without compaction it would hold 5 segments. The
    // compaction after the last snapshot runs on the commit thread, so give it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let flags = segment_flags(&data);
        if flags.len() <= 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the log stays a few segments: {flags:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(kv);
    node.shutdown().await.unwrap();

    let node = node::start(config).await.unwrap();
    // The answer holds every value, about 7.5 MiB: more than tonic's default 4 MiB.
    let mut kv = KvClient::connect(url)
        .await
        .unwrap()
        .max_decoding_message_size(64 << 20);
    let all = kv
        .range(pb::RangeRequest {
            key: "big/".into(),
            range_end: "big0".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let got: std::collections::BTreeMap<String, Vec<u8>> = all
        .kvs
        .into_iter()
        .map(|kv| (String::from_utf8(kv.key).unwrap(), kv.value))
        .collect();
    assert!(
        got == expected,
        "every key holds its last value after the restart"
    );
    node.shutdown().await.unwrap();
}
