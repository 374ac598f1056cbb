//! A real gRPC round trip over loopback through the generated tonic server and
//! client, with a throwaway KV implementation (the real store lives in the kv
//! crate). It proves the generated service answers at etcd's method paths,
//! which are what etcdctl and every etcd client put on the wire.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use etcd_proto::etcdserverpb::kv_client::KvClient;
use etcd_proto::etcdserverpb::kv_server::{Kv, KvServer};
use etcd_proto::etcdserverpb::{
    CompactionRequest, PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader,
};
use etcd_proto::mvccpb::KeyValue;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

/// Test-only store: current value per key and a global revision counter.
#[derive(Default)]
struct TestKv {
    state: Mutex<(i64, BTreeMap<Vec<u8>, KeyValue>)>,
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        cluster_id: 1,
        member_id: 2,
        revision,
        raft_term: 3,
    })
}

#[tonic::async_trait]
impl Kv for TestKv {
    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let req = req.into_inner();
        let mut guard = self.state.lock().unwrap();
        let (revision, map) = &mut *guard;
        *revision += 1;
        let prev = map.get(&req.key).cloned();
        let kv = KeyValue {
            key: req.key.clone(),
            create_revision: prev.as_ref().map_or(*revision, |p| p.create_revision),
            mod_revision: *revision,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            value: req.value,
            lease: req.lease,
        };
        map.insert(req.key, kv);
        Ok(Response::new(PutResponse {
            header: header(*revision),
            prev_kv: if req.prev_kv { prev } else { None },
        }))
    }

    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let req = req.into_inner();
        let guard = self.state.lock().unwrap();
        let (revision, map) = &*guard;
        // Only the two shapes the test uses: one key, or [key, range_end).
        let kvs: Vec<KeyValue> = if req.range_end.is_empty() {
            map.get(&req.key).cloned().into_iter().collect()
        } else {
            map.range(req.key..req.range_end)
                .map(|(_, kv)| kv.clone())
                .collect()
        };
        Ok(Response::new(RangeResponse {
            header: header(*revision),
            count: kvs.len() as i64,
            kvs,
            more: false,
        }))
    }
}

/// Serves `TestKv` on 127.0.0.1 at a port the OS picks; returns the address and
/// a sender that stops the server.
async fn start_server() -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(KvServer::new(TestKv::default()))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
    });
    (addr, stop)
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("connect to the loopback server")
}

#[test]
fn service_name_is_etcds() {
    use tonic::server::NamedService;
    assert_eq!(<KvServer<TestKv> as NamedService>::NAME, "etcdserverpb.KV");
}

#[tokio::test]
async fn put_then_range_over_loopback() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let (addr, stop) = start_server().await;
        let mut client = KvClient::new(channel(addr).await);

        let put = client
            .put(PutRequest {
                key: b"greeting".to_vec(),
                value: b"hello".to_vec(),
                ..Default::default()
            })
            .await
            .expect("first put")
            .into_inner();
        assert_eq!(put.header.as_ref().unwrap().revision, 1);
        assert_eq!(put.prev_kv, None);

        let put = client
            .put(PutRequest {
                key: b"greeting".to_vec(),
                value: b"hi".to_vec(),
                prev_kv: true,
                ..Default::default()
            })
            .await
            .expect("second put")
            .into_inner();
        assert_eq!(put.header.unwrap().revision, 2);
        assert_eq!(put.prev_kv.unwrap().value, b"hello");

        client
            .put(PutRequest {
                key: b"other".to_vec(),
                value: b"x".to_vec(),
                ..Default::default()
            })
            .await
            .expect("third put");

        let range = client
            .range(RangeRequest {
                key: b"greeting".to_vec(),
                ..Default::default()
            })
            .await
            .expect("range")
            .into_inner();
        assert_eq!(range.header.unwrap().revision, 3);
        assert_eq!(range.count, 1);
        let kv = &range.kvs[0];
        assert_eq!(
            (kv.key.as_slice(), kv.value.as_slice()),
            (&b"greeting"[..], &b"hi"[..])
        );
        assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (1, 2, 2));

        // A range [key, range_end): "other" sorts after the end "o", so only
        // "greeting" is in it.
        let range = client
            .range(RangeRequest {
                key: b"a".to_vec(),
                range_end: b"o".to_vec(),
                ..Default::default()
            })
            .await
            .expect("range over [a, o)")
            .into_inner();
        let keys: Vec<&[u8]> = range.kvs.iter().map(|kv| kv.key.as_slice()).collect();
        assert_eq!(keys, [&b"greeting"[..]]);
        assert_eq!(range.count, 1);

        stop.send(()).unwrap();
    })
    .await
    .expect("test finished in time");
}

/// Calls the server the way a non-Rust etcd client does: by the literal method
/// path, with no generated client involved.
#[tokio::test]
async fn method_paths_are_etcds() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let (addr, stop) = start_server().await;
        let mut grpc = tonic::client::Grpc::new(channel(addr).await);

        grpc.ready().await.unwrap();
        let resp: Response<RangeResponse> = grpc
            .unary(
                Request::new(RangeRequest {
                    key: b"absent".to_vec(),
                    ..Default::default()
                }),
                PathAndQuery::from_static("/etcdserverpb.KV/Range"),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .expect("the server answers at /etcdserverpb.KV/Range");
        let resp = resp.into_inner();
        assert_eq!(resp.count, 0);
        // The header proves our TestKv answered, not some fallback.
        assert_eq!(resp.header.unwrap().member_id, 2);

        // A path the service does not have is refused, so the call above
        // succeeding means the path matched.
        grpc.ready().await.unwrap();
        let err = grpc
            .unary::<_, RangeResponse, _>(
                Request::new(RangeRequest::default()),
                PathAndQuery::from_static("/etcdserverpb.KV/NoSuchMethod"),
                tonic_prost::ProstCodec::default(),
            )
            .await
            .expect_err("unknown method");
        assert_eq!(err.code(), Code::Unimplemented);

        // A method the implementation leaves out gets the default stub.
        let mut client = KvClient::new(channel(addr).await);
        let err = client
            .compact(CompactionRequest::default())
            .await
            .expect_err("Compact is not implemented by TestKv");
        assert_eq!(err.code(), Code::Unimplemented);

        stop.send(()).unwrap();
    })
    .await
    .expect("test finished in time");
}
