//! The in-memory reference server answers what the load generator sends as etcd would:
//! puts land, revisions grow by one per write, compares decide transactions.

use std::time::Duration;

use bench::{BenchConfig, Limit, Workload};
use etcd_proto::etcdserverpb::kv_client::KvClient;
use etcd_proto::etcdserverpb::{
    compare, request_op, Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp,
    TxnRequest,
};

async fn start() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(bench::reference::serve(listener));
    format!("http://{addr}")
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test finished within 60 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bench_runs_every_kv_workload_against_the_reference() {
    within(async {
        let url = start().await;
        for workload in [
            Workload::Put,
            Workload::Get,
            Workload::TxnCas,
            Workload::Mixed,
        ] {
            let mut c = BenchConfig::new(vec![url.clone(); 3], workload);
            c.limit = Limit::Total(400);
            c.clients = 8;
            c.key_space = 50;
            c.progress = false;
            let report = bench::run(c).await.unwrap();
            assert_eq!(report.errors, 0, "{workload:?}: {:?}", report.error_samples);
            assert_eq!(report.ops_ok + report.conflicts, 400, "{workload:?}");
            if workload == Workload::TxnCas {
                assert!(report.ops_ok > 0, "some compare-and-swaps held");
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_deletes_and_compares_follow_etcd() {
    within(async {
        let mut kv = KvClient::connect(start().await).await.unwrap();
        let put = |key: &[u8], value: &[u8]| PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            prev_kv: true,
            ..Default::default()
        };
        let a = kv.put(put(b"a", b"1")).await.unwrap().into_inner();
        assert_eq!(a.header.unwrap().revision, 1);
        assert!(a.prev_kv.is_none());
        let a = kv.put(put(b"a", b"2")).await.unwrap().into_inner();
        assert_eq!(a.header.unwrap().revision, 2);
        assert_eq!(a.prev_kv.unwrap().value, b"1");
        kv.put(put(b"b", b"3")).await.unwrap();

        let got = kv
            .range(RangeRequest {
                key: b"a".to_vec(),
                range_end: vec![0],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.count, 2);
        let a = &got.kvs[0];
        assert_eq!(
            (a.create_revision, a.mod_revision, a.version, &a.value[..]),
            (1, 2, 2, &b"2"[..])
        );

        // A compare that fails runs the failure branch and writes nothing.
        let cas = |expected: i64| TxnRequest {
            compare: vec![Compare {
                key: b"a".to_vec(),
                result: compare::CompareResult::Equal as i32,
                target: compare::CompareTarget::Mod as i32,
                target_union: Some(compare::TargetUnion::ModRevision(expected)),
                ..Default::default()
            }],
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestPut(put(b"a", b"cas"))),
            }],
            failure: vec![],
        };
        let no = kv.txn(cas(1)).await.unwrap().into_inner();
        assert!(!no.succeeded);
        assert_eq!(no.header.unwrap().revision, 3);
        let yes = kv.txn(cas(2)).await.unwrap().into_inner();
        assert!(yes.succeeded);
        assert_eq!(yes.header.unwrap().revision, 4);

        let gone = kv
            .delete_range(DeleteRangeRequest {
                key: b"a".to_vec(),
                range_end: b"c".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((gone.deleted, gone.header.unwrap().revision), (2, 5));
        let none = kv
            .delete_range(DeleteRangeRequest {
                key: b"a".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((none.deleted, none.header.unwrap().revision), (0, 5));
    })
    .await;
}
