//! The bench against a tiny in-process etcd KV server (a `Mutex<BTreeMap>`, test only):
//! the server counts what it was asked, and the report must agree.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench::{BenchConfig, BenchError, Consistency, Limit, Workload};
use etcd_proto::etcdserverpb::kv_server::{Kv, KvServer};
use etcd_proto::etcdserverpb::{
    compare, request_op, PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader,
    TxnRequest, TxnResponse,
};
use etcd_proto::mvccpb::KeyValue;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// How the test server misbehaves, if at all.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Serve,
    /// Every put is refused with UNAVAILABLE.
    RefusePuts,
    /// Every put answers after this delay.
    SlowPuts(Duration),
}

struct TestKv {
    mode: Mode,
    state: Mutex<(i64, BTreeMap<Vec<u8>, KeyValue>)>,
    puts: AtomicU64,
    linearizable_ranges: AtomicU64,
    serializable_ranges: AtomicU64,
    txns_succeeded: AtomicU64,
    txns_failed: AtomicU64,
    /// Sizes of every key and value put, to check the bench sends what it was told.
    sizes: Mutex<BTreeMap<(usize, usize), u64>>,
}

impl TestKv {
    fn new(mode: Mode) -> Arc<Self> {
        Arc::new(TestKv {
            mode,
            state: Mutex::default(),
            puts: AtomicU64::new(0),
            linearizable_ranges: AtomicU64::new(0),
            serializable_ranges: AtomicU64::new(0),
            txns_succeeded: AtomicU64::new(0),
            txns_failed: AtomicU64::new(0),
            sizes: Mutex::default(),
        })
    }

    fn apply_put(&self, req: PutRequest) -> i64 {
        *self
            .sizes
            .lock()
            .unwrap()
            .entry((req.key.len(), req.value.len()))
            .or_insert(0) += 1;
        let mut guard = self.state.lock().unwrap();
        let (revision, map) = &mut *guard;
        *revision += 1;
        let prev = map.get(&req.key);
        let kv = KeyValue {
            key: req.key.clone(),
            create_revision: prev.map_or(*revision, |p| p.create_revision),
            mod_revision: *revision,
            version: prev.map_or(1, |p| p.version + 1),
            value: req.value,
            lease: 0,
        };
        map.insert(req.key, kv);
        *revision
    }

    fn version_of(&self, key: &[u8]) -> i64 {
        self.state
            .lock()
            .unwrap()
            .1
            .get(key)
            .map_or(0, |kv| kv.version)
    }
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        cluster_id: 1,
        member_id: 1,
        revision,
        raft_term: 1,
    })
}

#[tonic::async_trait]
impl Kv for TestKv {
    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        match self.mode {
            Mode::RefusePuts => return Err(Status::unavailable("no leader (test)")),
            Mode::SlowPuts(d) => tokio::time::sleep(d).await,
            Mode::Serve => {}
        }
        self.puts.fetch_add(1, Ordering::Relaxed);
        let revision = self.apply_put(req.into_inner());
        Ok(Response::new(PutResponse {
            header: header(revision),
            prev_kv: None,
        }))
    }

    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let req = req.into_inner();
        if req.serializable {
            self.serializable_ranges.fetch_add(1, Ordering::Relaxed);
        } else {
            self.linearizable_ranges.fetch_add(1, Ordering::Relaxed);
        }
        assert!(req.range_end.is_empty(), "the bench reads single keys");
        let guard = self.state.lock().unwrap();
        let kvs: Vec<KeyValue> = guard.1.get(&req.key).cloned().into_iter().collect();
        Ok(Response::new(RangeResponse {
            header: header(guard.0),
            count: kvs.len() as i64,
            kvs,
            more: false,
        }))
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let req = req.into_inner();
        // Only the shape the bench sends: one MOD == rev compare, one put on success.
        assert_eq!(req.compare.len(), 1);
        let cmp = &req.compare[0];
        assert_eq!(cmp.result, compare::CompareResult::Equal as i32);
        assert_eq!(cmp.target, compare::CompareTarget::Mod as i32);
        let Some(compare::TargetUnion::ModRevision(expected)) = cmp.target_union else {
            return Err(Status::invalid_argument("expected a mod_revision compare"));
        };
        let Some(request_op::Request::RequestPut(put)) =
            req.success.into_iter().next().and_then(|op| op.request)
        else {
            return Err(Status::invalid_argument("expected a put on success"));
        };
        // Compare and put under one lock, as a real store's transaction would.
        let mut guard = self.state.lock().unwrap();
        let (revision, map) = &mut *guard;
        let current = map.get(&cmp.key).map_or(0, |kv| kv.mod_revision);
        let succeeded = current == expected;
        if succeeded {
            *revision += 1;
            let prev = map.get(&put.key);
            let kv = KeyValue {
                key: put.key.clone(),
                create_revision: prev.map_or(*revision, |p| p.create_revision),
                mod_revision: *revision,
                version: prev.map_or(1, |p| p.version + 1),
                value: put.value,
                lease: 0,
            };
            map.insert(put.key, kv);
            self.txns_succeeded.fetch_add(1, Ordering::Relaxed);
        } else {
            self.txns_failed.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Response::new(TxnResponse {
            header: header(*revision),
            succeeded,
            responses: Vec::new(),
        }))
    }
}

/// Serves `kv` on 127.0.0.1 at a port the OS picks. The server lives until the test's
/// runtime ends.
async fn serve(kv: Arc<TestKv>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(KvServer::from_arc(kv))
            .serve_with_incoming(TcpIncoming::from(listener))
            .await
            .expect("test server runs");
    });
    addr
}

fn config(addrs: &[SocketAddr], workload: Workload, total: u64) -> BenchConfig {
    let mut c = BenchConfig::new(
        addrs.iter().map(|a| format!("http://{a}")).collect(),
        workload,
    );
    c.limit = Limit::Total(total);
    c.clients = 8;
    c.key_space = 100;
    c.key_size = 6;
    c.value_size = 32;
    c
}

async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test finished within 60 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_issues_exactly_total_puts_over_every_endpoint() {
    within(async {
        let a = TestKv::new(Mode::Serve);
        let b = TestKv::new(Mode::Serve);
        let addrs = [serve(Arc::clone(&a)).await, serve(Arc::clone(&b)).await];
        let mut c = config(&addrs, Workload::Put, 500);
        c.conns = 4;
        let report = bench::run(c).await.unwrap();

        let (pa, pb) = (
            a.puts.load(Ordering::Relaxed),
            b.puts.load(Ordering::Relaxed),
        );
        assert_eq!(pa + pb, 500, "the servers saw exactly --total puts");
        assert!(pa > 0 && pb > 0, "both endpoints got load: {pa} / {pb}");
        assert_eq!(report.ops_ok, 500);
        assert_eq!(report.errors, 0);
        assert_eq!(report.conflicts, 0);
        assert_eq!(report.latency.count, 500);
        assert_eq!(report.by_op["put"].ok, 500);
        assert!(report.preload.is_none(), "puts need no preload");
        assert!(report.throughput_ops_per_sec > 0.0);
        assert!(report.latency.p50_us <= report.latency.p99_us);
        assert!(report.latency.p99_us <= report.latency.max_us);
        // Every put had the requested key and value sizes...
        let mut sizes = a.sizes.lock().unwrap().clone();
        for (k, n) in b.sizes.lock().unwrap().iter() {
            *sizes.entry(*k).or_insert(0) += n;
        }
        assert_eq!(sizes, BTreeMap::from([((6, 32), 500)]));
        // ...and keys stayed inside the key space.
        for kv in [&a, &b] {
            for key in kv.state.lock().unwrap().1.keys() {
                let i: u64 = std::str::from_utf8(key).unwrap().parse().unwrap();
                assert!(i < 100, "key {i} outside the key space");
            }
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_preloads_then_reads_with_the_asked_consistency() {
    within(async {
        let kv = TestKv::new(Mode::Serve);
        let addr = serve(Arc::clone(&kv)).await;

        let report = bench::run(config(&[addr], Workload::Get, 300))
            .await
            .unwrap();
        assert_eq!(
            kv.puts.load(Ordering::Relaxed),
            100,
            "one preload put per key"
        );
        assert_eq!(kv.state.lock().unwrap().1.len(), 100);
        assert_eq!(kv.linearizable_ranges.load(Ordering::Relaxed), 300);
        assert_eq!(kv.serializable_ranges.load(Ordering::Relaxed), 0);
        assert_eq!(report.ops_ok, 300, "preload puts are not counted");
        assert_eq!(report.preload.as_ref().map(|p| p.keys), Some(100));

        let mut c = config(&[addr], Workload::Get, 200);
        c.consistency = Consistency::Serializable;
        bench::run(c).await.unwrap();
        assert_eq!(kv.serializable_ranges.load(Ordering::Relaxed), 200);
        assert_eq!(kv.linearizable_ranges.load(Ordering::Relaxed), 300);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_cas_counts_conflicts_apart_from_successes() {
    within(async {
        let kv = TestKv::new(Mode::Serve);
        let addr = serve(Arc::clone(&kv)).await;
        // One key and 8 clients: every success bumps the key's version by one.
        let mut c = config(&[addr], Workload::TxnCas, 400);
        c.key_space = 1;
        let report = bench::run(c).await.unwrap();

        let succeeded = kv.txns_succeeded.load(Ordering::Relaxed);
        let failed = kv.txns_failed.load(Ordering::Relaxed);
        assert_eq!(succeeded + failed, 400);
        assert_eq!(report.ops_ok, succeeded);
        assert_eq!(report.conflicts, failed);
        assert_eq!(report.errors, 0);
        assert_eq!(kv.version_of(b"000000") as u64, succeeded);
        assert_eq!(kv.linearizable_ranges.load(Ordering::Relaxed), 400);
        assert_eq!(report.by_op["cas"].conflicts, failed);
        assert_eq!(report.latency.count, 400, "conflicts are answered ops");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_splits_reads_and_writes() {
    within(async {
        let kv = TestKv::new(Mode::Serve);
        let addr = serve(Arc::clone(&kv)).await;
        let mut c = config(&[addr], Workload::Mixed, 1000);
        c.mixed_read_percent = 70;
        let report = bench::run(c).await.unwrap();

        let gets = kv.linearizable_ranges.load(Ordering::Relaxed);
        let puts = kv.puts.load(Ordering::Relaxed) - 100; // less the preload
        assert_eq!(gets + puts, 1000);
        assert_eq!(report.by_op["get"].ok, gets);
        assert_eq!(report.by_op["put"].ok, puts);
        // 70 % of 1000 draws: far outside 600..800 would mean a broken mix.
        assert!((600..800).contains(&gets), "{gets} gets of 1000");
        assert!(
            report.to_string().contains("get"),
            "the table lists each op"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_counted_by_code_not_fatal() {
    within(async {
        let refusing = TestKv::new(Mode::RefusePuts);
        let addr = serve(refusing).await;
        let report = bench::run(config(&[addr], Workload::Put, 50))
            .await
            .unwrap();
        assert_eq!(report.ops_ok, 0);
        assert_eq!(report.errors, 50);
        assert_eq!(report.errors_by_code.get("Unavailable"), Some(&50));
        assert_eq!(
            report.error_samples.get("Unavailable").map(String::as_str),
            Some("no leader (test)")
        );
        assert_eq!(report.latency.count, 0, "errors have no latency");

        // A server slower than the request timeout: each put is cut off at the timeout.
        let slow = TestKv::new(Mode::SlowPuts(Duration::from_secs(30)));
        let addr = serve(slow).await;
        let mut c = config(&[addr], Workload::Put, 16);
        c.request_timeout = Duration::from_millis(200);
        let started = Instant::now();
        let report = bench::run(c).await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "timeouts bound the run"
        );
        assert_eq!(report.errors_by_code.get("DeadlineExceeded"), Some(&16));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_bounds_the_run() {
    within(async {
        let kv = TestKv::new(Mode::Serve);
        let addr = serve(Arc::clone(&kv)).await;
        let mut c = config(&[addr], Workload::Put, 1);
        c.limit = Limit::Duration(Duration::from_millis(300));
        let report = bench::run(c).await.unwrap();
        assert!(report.ops_ok > 0);
        assert_eq!(report.ops_ok, kv.puts.load(Ordering::Relaxed));
        assert!(
            (0.3..5.0).contains(&report.duration_secs),
            "{}",
            report.duration_secs
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_fails_fast_and_probe_tells_ready() {
    within(async {
        // Bind then drop, so nothing listens on the port.
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = bench::run(config(&[dead], Workload::Put, 10))
            .await
            .unwrap_err();
        assert!(matches!(err, BenchError::Connect { .. }), "{err}");
        assert!(
            bench::probe(&format!("http://{dead}"), Duration::from_secs(2))
                .await
                .is_err()
        );

        let addr = serve(TestKv::new(Mode::Serve)).await;
        bench::probe(&format!("http://{addr}"), Duration::from_secs(5))
            .await
            .unwrap();
    })
    .await;
}

#[tokio::test]
async fn invalid_config_is_refused_before_connecting() {
    let mut c = BenchConfig::new(vec!["http://127.0.0.1:1".into()], Workload::Put);
    c.clients = 0;
    let err = bench::run(c).await.unwrap_err();
    assert!(matches!(err, BenchError::InvalidConfig(_)), "{err}");
}
