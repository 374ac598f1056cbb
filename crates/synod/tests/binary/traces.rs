//! Where a write's time goes, as an operator sees it from outside: spans and log lines.
//!
//! - Distributed tracing across members: a 3-member cluster exports its spans over OTLP/gRPC
//!   to a tiny collector in this test (a real tonic server on loopback); a put sent to a
//!   follower is forwarded to the leader, and the leader's span of it must carry the
//!   follower's trace id and name the follower's span as its parent, so one put is one trace
//!   across two members.
//! - The slow-write log line: a member whose disk is slow (`--test-slow-fsync-ms`) still
//!   serves, and each write slower than the threshold is logged as one JSON object
//!   (`--log-format json`) saying where its time went.
//!
//! Synod only: etcd 3.4 has no distributed tracing (its flags came in 3.5) and no slow-disk
//! fault to inject.

use crate::common;
use crate::common::{etcdctl, http, sample, Cluster, Target};
use etcd_proto::etcdserverpb as pb;
use etcd_proto::etcdserverpb::kv_client::KvClient;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Generous: a loaded 2-core machine may take seconds to elect, put and export.
const EVENT_DEADLINE: Duration = Duration::from_secs(60);

/// One exported span as the collector received it.
#[derive(Clone, Debug)]
struct Received {
    service: String,
    span: Span,
}

impl Received {
    fn attribute(&self, key: &str) -> Option<String> {
        self.span
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                Value::StringValue(s) => Some(s.clone()),
                Value::IntValue(i) => Some(i.to_string()),
                other => Some(format!("{other:?}")),
            })
    }
}

/// The collector: keeps every span it is sent.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().expect("collector lock");
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for span in scope.spans {
                    spans.push(Received {
                        service: service.clone(),
                        span,
                    });
                }
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_put_through_a_follower_is_one_trace_on_two_members() {
    if Target::from_env() == Target::Etcd {
        eprintln!("skipped against etcd 3.4: it has no distributed tracing (etcd 3.5 has)");
        return;
    }
    let runtime = common::runtime();
    let collector = Collector::default();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind the collector");
    let address = listener.local_addr().expect("collector address");
    let service = TraceServiceServer::new(collector.clone());
    runtime.spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .expect("the collector serves");
    });
    // Spans go out every 200 ms instead of the SDK's 5 s, so the test waits less; members
    // inherit the environment. Set before any member starts, while this is the only thread
    // that reads the environment.
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "200");
    let address_flag = format!("--experimental-distributed-tracing-address={address}");
    let cluster = Cluster::start_with_flags(
        3,
        &[
            "--experimental-enable-distributed-tracing",
            &address_flag,
            "--experimental-distributed-tracing-service-name=synod-otel-test",
        ],
    );
    let leader = cluster.leader();
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    let follower_id = cluster.status(follower).expect("follower status").member_id;
    let out = etcdctl(cluster.endpoint(follower), &["put", "traced", "v"]);
    assert!(out.success(), "put through the follower: {out}");
    // A client that sends its own W3C trace context (`traceparent` metadata, as
    // OpenTelemetry's gRPC instrumentations do) puts through the follower too.
    let mut request = tonic::Request::new(pb::PutRequest {
        key: b"traced-by-client".to_vec(),
        value: b"v".to_vec(),
        ..Default::default()
    });
    let traceparent = format!("00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01");
    request.metadata_mut().insert(
        "traceparent",
        traceparent.parse().expect("an ASCII metadata value"),
    );
    let endpoint = cluster.endpoint(follower).to_string();
    let answer: Result<_, String> = runtime.block_on(async move {
        let mut kv = KvClient::connect(endpoint)
            .await
            .map_err(|e| e.to_string())?;
        kv.put(request).await.map_err(|e| e.to_string())
    });
    answer.expect("a put with the client's trace context");

    // The follower's span of the put, and the leader's span of the forwarded write with the
    // same trace id whose parent is the follower's span.
    let deadline = Instant::now() + EVENT_DEADLINE;
    let (put, forwarded) = loop {
        let spans = collector.spans.lock().expect("collector lock").clone();
        let found = spans
            .iter()
            .filter(|r| r.span.name == "etcdserverpb.KV/Put")
            .find_map(|put| {
                spans
                    .iter()
                    .find(|f| {
                        f.span.name == "synod.ForwardedWrite"
                            && f.span.trace_id == put.span.trace_id
                    })
                    .map(|f| (put.clone(), f.clone()))
            });
        if let Some(pair) = found {
            break pair;
        }
        assert!(
            Instant::now() < deadline,
            "no put span and forwarded-write span sharing a trace within {EVENT_DEADLINE:?}; \
             received: {:?}\n{}",
            spans
                .iter()
                .map(|r| (&r.span.name, hex(&r.span.trace_id)))
                .collect::<Vec<_>>(),
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(put.span.trace_id.len(), 16, "a W3C trace id");
    assert_ne!(put.span.trace_id, vec![0; 16], "a valid trace id");
    assert_eq!(
        forwarded.span.parent_span_id, put.span.span_id,
        "the leader's span is the child of the follower's"
    );
    assert_eq!(
        forwarded.attribute("from"),
        Some(format!("{follower_id:x}")),
        "the forwarded write came from the follower the put was sent to"
    );
    assert_eq!(put.service, "synod-otel-test", "the service-name flag");
    assert_eq!(forwarded.service, "synod-otel-test");

    // The client's put: the follower's span of it is the child of the client's span, and the
    // leader's span of the forwarded write is in the client's trace too.
    let client_trace = CLIENT_TRACE_ID.to_string();
    let (put, forwarded) = loop {
        let spans = collector.spans.lock().expect("collector lock").clone();
        let in_trace = |name: &str| {
            spans
                .iter()
                .find(|r| r.span.name == name && hex(&r.span.trace_id) == client_trace)
                .cloned()
        };
        if let (Some(put), Some(forwarded)) = (
            in_trace("etcdserverpb.KV/Put"),
            in_trace("synod.ForwardedWrite"),
        ) {
            break (put, forwarded);
        }
        assert!(
            Instant::now() < deadline,
            "no put span and forwarded-write span in the client's trace {CLIENT_TRACE_ID} \
             within {EVENT_DEADLINE:?}; received: {:?}",
            spans
                .iter()
                .map(|r| (
                    &r.span.name,
                    hex(&r.span.trace_id),
                    hex(&r.span.parent_span_id)
                ))
                .collect::<Vec<_>>(),
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        hex(&put.span.parent_span_id),
        CLIENT_SPAN_ID,
        "the member's span of the put is the child of the client's span"
    );
    assert_eq!(
        forwarded.span.parent_span_id, put.span.span_id,
        "the leader's span is the child of the follower's, in the client's trace"
    );
}

/// The client's trace and span in the `traceparent` it sends (W3C's example values).
const CLIENT_TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN_ID: &str = "b7ad6b7169203331";

/// The slow-fsync delay: above the slow-request threshold (500 ms) on its own.
const SLOW_FSYNC_MS: u64 = 700;

/// A 1-member cluster whose every log sync takes 700 ms longer than the disk's: longer than
/// the election timeout. It must still elect itself (it once never did: its candidate started
/// over with a new ballot each time its timer fired, before its promise of the last one was
/// durable; see `crates/sim/tests/member_slow_disk.rs`), serve, log the slow write as JSON
/// with its steps, and show the slow disk in `etcd_disk_wal_fsync_duration_seconds`.
#[test]
fn a_write_on_a_slow_disk_is_logged_as_json_with_its_steps() {
    if Target::from_env() == Target::Etcd {
        eprintln!("skipped against etcd 3.4: no slow-disk fault to inject");
        return;
    }
    let slow = format!("--test-slow-fsync-ms={SLOW_FSYNC_MS}");
    // The harness's readiness check is a linearizable read with a 2 s timeout: the member
    // must serve through its slow disk to start at all.
    let cluster = Cluster::start_with_flags(1, &["--log-format=json", &slow]);
    // Slow-request lines are rate-limited to one a second, and the readiness read's own slow
    // line may take the slot of the first put's: put again until a write's line appears (each
    // put waits out at least one slow sync, so the window passes within a few), bounded by a
    // generous deadline.
    let deadline = Instant::now() + EVENT_DEADLINE;
    let mut puts = 0;
    let line = loop {
        let key = format!("slow{puts}");
        let out = etcdctl(
            cluster.endpoint(0),
            &["--command-timeout=30s", "put", &key, "v"],
        );
        assert!(out.success(), "put {puts} on the slow member: {out}");
        puts += 1;
        let log = std::fs::read_to_string(cluster.dir().join("n1.log")).unwrap_or_default();
        let found = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["message"] == "request took too long" && v["kind"] == "write");
        if let Some(line) = found {
            break line;
        }
        assert!(
            Instant::now() < deadline,
            "no JSON slow-write line after {puts} puts within {EVENT_DEADLINE:?}:\n{}",
            cluster.logs()
        );
    };
    // The injected delay is part of each timed sync, as a slow disk's would be: every sync
    // took at least the delay (the mean is at least it; without the delay it is milliseconds).
    let metrics = http("GET", cluster.endpoint(0), "/metrics").expect("/metrics");
    let fsync = "etcd_disk_wal_fsync_duration_seconds";
    let count = sample(&metrics.body, &format!("{fsync}_count"), &[]).expect("fsync count");
    let sum = sample(&metrics.body, &format!("{fsync}_sum"), &[]).expect("fsync sum");
    assert!(count >= 1.0, "no fsync observed:\n{}", metrics.body);
    let slow_s = Duration::from_millis(SLOW_FSYNC_MS).as_secs_f64();
    assert!(
        sum >= count * slow_s,
        "{count} fsyncs took {sum} s in all: under {SLOW_FSYNC_MS} ms each"
    );
    assert_eq!(line["level"], "WARN", "{line}");
    assert_eq!(
        line["routed"], "proposed",
        "a 1-member cluster proposes itself: {line}"
    );
    for step in [
        "step_wait_for_leader",
        "step_propose_to_applied",
        "step_answer",
    ] {
        let value = line[step]
            .as_str()
            .unwrap_or_else(|| panic!("{step} in {line}"));
        assert_ne!(value, "-", "the write's stages are known: {line}");
    }
}
