//! HTTP on the client port, beside gRPC, as etcd serves it: one listener (and one TLS setting)
//! for both, told apart per request by content type (`application/grpc...` goes to tonic,
//! anything else to an axum [`Router`]). The same router also serves `--listen-metrics-urls`.
//!
//! Served: `/metrics` (Prometheus text), `/health` (etcd 3.4's JSON and codes, with 3.4's
//! `?exclude=NOSPACE` and later etcd's `?serializable=true`), `/livez` and `/readyz` (which
//! etcd 3.4 does not have; served as etcd 3.6 does), `/version`, and etcd's JSON gateway
//! (`/v3/kv/range`...: [`crate::gateway`]).
//!
//! The gRPC side is wrapped too, to count calls by method and code as etcd's
//! `grpc_server_started_total` / `grpc_server_handled_total` do (go-grpc-prometheus's labels):
//! a call's code is the `grpc-status` of its headers (an error answered at once) or of its
//! trailers (everything else); a stream the client dropped counts as `Canceled`.

use crate::auxiliary::Gate;
use crate::metrics::Metrics;
use crate::service::Services;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response as AxumResponse};
use axum::routing::any;
use axum::Router;
use bytes::Bytes;
use http::{Request, Response};
use http_body::Frame;
use kv::{KvRead, KvReadResponse};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::body::Body;

/// etcd 3.4 gives its health read (`QGET`) one second.
const HEALTH_READ_TIMEOUT: Duration = Duration::from_secs(1);
/// The etcd version `/version` reports, as `Maintenance.Status` does.
const ETCD_CLUSTER_VERSION: &str = "3.4.0";

/// What the HTTP handlers need.
#[derive(Clone)]
pub struct HttpParts {
    /// The member's services (to ask the core for its status and reads).
    pub services: Services,
    /// The registry `/metrics` renders.
    pub metrics: Arc<Metrics>,
}

/// The HTTP routes (no gRPC): the client port's non-gRPC requests and `--listen-metrics-urls`.
pub fn router(parts: HttpParts) -> Router {
    crate::gateway::routes(Router::new())
        .route("/metrics", any(metrics))
        .route("/health", any(health))
        .route("/livez", any(livez))
        .route("/livez/{check}", any(livez_one))
        .route("/readyz", any(readyz))
        .route("/readyz/{check}", any(readyz_one))
        .route("/version", any(version))
        .fallback(not_found)
        .with_state(parts)
}

/// Go's `http.Error`: the text and a newline, as text/plain with nosniff.
fn go_error(code: StatusCode, text: &str) -> AxumResponse {
    (
        code,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        format!("{text}\n"),
    )
        .into_response()
}

/// Go's 405 for a handler that takes only GET.
fn only_get(method: &Method) -> Option<AxumResponse> {
    if method == Method::GET {
        return None;
    }
    let mut r = go_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET"));
    Some(r)
}

async fn not_found() -> AxumResponse {
    go_error(StatusCode::NOT_FOUND, "404 page not found")
}

async fn metrics(State(parts): State<HttpParts>) -> AxumResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        parts.metrics.render(),
    )
        .into_response()
}

async fn version(method: Method) -> AxumResponse {
    if let Some(r) = only_get(&method) {
        return r;
    }
    // etcd's field order (a Go struct's), which a JSON map would sort away.
    let body = format!(
        r#"{{"etcdserver":"{}","etcdcluster":"{ETCD_CLUSTER_VERSION}"}}"#,
        crate::service::ETCD_VERSION
    );
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A query's values for `name` (`a=1&a=2` gives both), as Go's `r.URL.Query()[name]`.
fn query_values(query: Option<&str>, name: &str) -> Vec<String> {
    let Some(query) = query else {
        return Vec::new();
    };
    query_pairs(query)
        .into_iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v)
        .collect()
}

/// `k=v&k2=v2` pairs, percent-decoded (axum's `Query` keeps only the last of repeated keys).
fn query_pairs(query: &str) -> Vec<(String, String)> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{query}").parse().unwrap_or_default(),
    )
    .map(|q| q.0)
    .unwrap_or_default()
}

/// What the health checks ask of the member.
struct Probe {
    leader: u64,
    alarms: Vec<kv::AlarmMember>,
    is_learner: bool,
    /// Cheap Paxos: whether this member is an auxiliary, and the leader it heard from lately
    /// (0: none).
    is_auxiliary: bool,
    auxiliary_leader: u64,
    storage_error: Option<String>,
}

impl HttpParts {
    async fn probe(&self) -> Result<Probe, String> {
        let s = self
            .services
            .core_status()
            .await
            .map_err(|e| e.message().to_string())?;
        Ok(Probe {
            leader: s.leader,
            alarms: crate::service::raised_alarms(&s, self.services.member_id()),
            is_learner: s.is_learner,
            is_auxiliary: s.is_auxiliary,
            auxiliary_leader: s.auxiliary_leader,
            storage_error: s.storage_error,
        })
    }

    /// One key, keys only, as etcd's health range; bounded by etcd's one second.
    async fn read(&self, linearizable: bool) -> Result<(), String> {
        let range = crate::convert::range_request(etcd_proto::etcdserverpb::RangeRequest {
            key: b"health".to_vec(),
            keys_only: true,
            limit: 1,
            serializable: !linearizable,
            ..Default::default()
        })
        .map_err(|e| e.message().to_string())?;
        let read = self.services.read(KvRead::Range(range), linearizable);
        match tokio::time::timeout(HEALTH_READ_TIMEOUT, read).await {
            Ok(Ok((KvReadResponse::Range(_), _))) => Ok(()),
            Ok(Ok(_)) => Err("the store answered another kind of read".to_string()),
            Ok(Err(e)) => Err(e.message().to_string()),
            Err(_) => Err("context deadline exceeded".to_string()),
        }
    }
}

/// etcd 3.4's `/health`: `{"health":"true"}` (200) or `{"health":"false"}` (503). Unhealthy
/// with an alarm (unless `?exclude=NOSPACE`), without a leader, or when a linearizable read
/// fails within a second. `?serializable=true` (etcd 3.5+; 3.4 ignores it) skips the leader
/// check and reads serializably: "this member serves", not "the cluster has a quorum".
async fn health(
    State(parts): State<HttpParts>,
    method: Method,
    RawQuery(query): RawQuery,
) -> AxumResponse {
    if let Some(r) = only_get(&method) {
        return r;
    }
    let excluded = query_values(query.as_deref(), "exclude");
    let serializable = query_values(query.as_deref(), "serializable")
        .iter()
        .any(|v| v == "true");
    let probe = parts.probe().await;
    if let Ok(p) = &probe {
        if p.is_auxiliary {
            return auxiliary_health(&parts, p);
        }
    }
    let healthy = match probe {
        Err(e) => {
            tracing::warn!(error = %e, "/health error: no status from the member");
            false
        }
        Ok(p)
            if p.alarms
                .iter()
                .any(|a| !excluded.iter().any(|e| e == a.alarm.name())) =>
        {
            // etcd 3.4's checkHealth: any alarm not excluded makes the member unhealthy.
            for a in &p.alarms {
                tracing::warn!(
                    alarm = a.alarm.name(),
                    member = a.member_id,
                    "/health error due to an alarm"
                );
            }
            false
        }
        Ok(p) if p.leader == 0 && !serializable => {
            tracing::warn!("/health error; no leader (status code 503)");
            false
        }
        Ok(_) => match parts.read(!serializable).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "/health error; QGET failed (status code 503)");
                false
            }
        },
    };
    if healthy {
        parts.metrics.health_success.inc();
        // Go sniffs `{"health":"true"}` as text/plain.
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            r#"{"health":"true"}"#,
        )
            .into_response()
    } else {
        parts.metrics.health_failures.inc();
        go_error(StatusCode::SERVICE_UNAVAILABLE, r#"{"health":"false"}"#)
    }
}

/// `/health` on a Cheap Paxos auxiliary, in etcd 3.5's shape (`{"health":"true","reason":""}`,
/// 200; `{"health":"false","reason":"..."}`, 503). It holds no store, so there is no read to
/// try: healthy when it heard from a leader lately (the leader answers each of its hellos,
/// `member/auxiliary.rs`), no alarm is raised and its log writes work.
fn auxiliary_health(parts: &HttpParts, p: &Probe) -> AxumResponse {
    let reason = if let Some(e) = &p.storage_error {
        format!("auxiliary member: its log failed: {e}")
    } else if let Some(a) = p.alarms.first() {
        format!("auxiliary member: alarm {} raised", a.alarm.name())
    } else if p.auxiliary_leader == 0 {
        "auxiliary member: no leader heard from lately (it is told at each of its hellos, every 5 s)"
            .to_string()
    } else {
        String::new()
    };
    let body = serde_json::json!({
        "health": if reason.is_empty() { "true" } else { "false" },
        "reason": reason,
    })
    .to_string();
    if reason.is_empty() {
        parts.metrics.health_success.inc();
        (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            body,
        )
            .into_response()
    } else {
        tracing::warn!(%reason, "/health error on an auxiliary (status code 503)");
        parts.metrics.health_failures.inc();
        go_error(StatusCode::SERVICE_UNAVAILABLE, &body)
    }
}

/// The checks of `/livez` and `/readyz` (etcd 3.6), in the order they are reported.
const LIVEZ: &[&str] = &["serializable_read"];
const READYZ: &[&str] = &[
    "data_corruption",
    "linearizable_read",
    "non_learner",
    "serializable_read",
];

impl HttpParts {
    async fn check(&self, name: &str) -> Result<(), String> {
        match name {
            "serializable_read" => self.read(false).await,
            "linearizable_read" => self.read(true).await,
            "non_learner" => match self.probe().await? {
                p if p.is_learner => Err("not supported for learner".to_string()),
                _ => Ok(()),
            },
            // Synod has no CORRUPT alarm: damage stops a member at startup instead.
            "data_corruption" => self.probe().await.map(|_| ()),
            other => Err(format!("unknown check {other}")),
        }
    }
}

/// etcd 3.6's check registry: `[+]name ok` / `[-]name failed: reason` lines; 200 with `ok`
/// (the lines first with `?verbose`) or 503 with the lines.
async fn run_checks(
    parts: &HttpParts,
    method: &Method,
    checks: &[&str],
    query: Option<&str>,
) -> AxumResponse {
    if let Some(r) = only_get(method) {
        return r;
    }
    let excluded = query_values(query, "exclude");
    let mut lines = String::new();
    let mut failed = false;
    for name in checks.iter().filter(|c| !excluded.iter().any(|e| e == *c)) {
        match parts.check(name).await {
            Ok(()) => lines.push_str(&format!("[+]{name} ok\n")),
            Err(e) => {
                failed = true;
                lines.push_str(&format!("[-]{name} failed: {e}\n"));
            }
        }
    }
    if failed {
        return go_error(StatusCode::SERVICE_UNAVAILABLE, &lines);
    }
    let verbose = query.is_some_and(|q| query_pairs(q).iter().any(|(k, _)| k == "verbose"));
    let body = if verbose {
        format!("{lines}ok\n")
    } else {
        "ok\n".to_string()
    };
    (
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn livez(
    State(parts): State<HttpParts>,
    method: Method,
    RawQuery(q): RawQuery,
) -> AxumResponse {
    run_checks(&parts, &method, LIVEZ, q.as_deref()).await
}

async fn readyz(
    State(parts): State<HttpParts>,
    method: Method,
    RawQuery(q): RawQuery,
) -> AxumResponse {
    run_checks(&parts, &method, READYZ, q.as_deref()).await
}

async fn livez_one(
    State(parts): State<HttpParts>,
    method: Method,
    Path(check): Path<String>,
) -> AxumResponse {
    match LIVEZ.iter().find(|c| **c == check) {
        Some(c) => run_checks(&parts, &method, &[c], None).await,
        None => not_found().await,
    }
}

async fn readyz_one(
    State(parts): State<HttpParts>,
    method: Method,
    Path(check): Path<String>,
) -> AxumResponse {
    match READYZ.iter().find(|c| **c == check) {
        Some(c) => run_checks(&parts, &method, &[c], None).await,
        None => not_found().await,
    }
}

/// Serves `router` on each `--listen-metrics-urls` address (`https://` ones with the client
/// port's TLS settings) until `stop`; returns once every listener is bound.
pub async fn serve_metrics_urls(
    config: &crate::config::NodeConfig,
    router: Router,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    for (addr, https) in &config.listen_metrics {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen for metrics on {addr}"))?;
        let mut stop = stop.clone();
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let server = tonic::transport::Server::builder().accept_http1(true);
        let router = router.clone();
        let tls = match (https, &config.client_tls) {
            (true, Some(tls)) => Some(crate::tls::client_acceptor(tls)?),
            (true, None) => {
                anyhow::bail!("{addr}: an https:// metrics URL needs the client TLS flags")
            }
            (false, _) => None,
        };
        let addr = *addr;
        tokio::spawn(async move {
            let served = match tls {
                Some(acceptor) => {
                    server
                        .serve_with_incoming_shutdown(
                            router,
                            crate::tls::incoming(listener, acceptor),
                            stopped,
                        )
                        .await
                }
                None => {
                    server
                        .serve_with_incoming_shutdown(
                            router,
                            tonic::transport::server::TcpIncoming::from(listener),
                            stopped,
                        )
                        .await
                }
            };
            if let Err(e) = served {
                tracing::warn!(%addr, error = %e, "the metrics listener stopped with an error");
            }
        });
        tracing::info!(%addr, https, "serving /metrics and /health");
    }
    Ok(())
}

// ---- one port for both ----------------------------------------------------------------------

/// Wraps the gRPC routes: gRPC requests go to them (counted), others to the HTTP router.
#[derive(Clone)]
pub struct ClientPortLayer {
    http: Router,
    metrics: Arc<Metrics>,
    auxiliary: Option<Gate>,
}

impl ClientPortLayer {
    /// `http` serves what is not gRPC; `metrics` counts the gRPC calls; `auxiliary`, on an
    /// auxiliary acceptor, refuses what it cannot serve (`crate::auxiliary`).
    pub fn new(http: Router, metrics: Arc<Metrics>, auxiliary: Option<Gate>) -> ClientPortLayer {
        ClientPortLayer {
            http,
            metrics,
            auxiliary,
        }
    }
}

impl<S> tower_layer::Layer<S> for ClientPortLayer {
    type Service = ClientPort<S>;

    fn layer(&self, grpc: S) -> ClientPort<S> {
        ClientPort {
            grpc,
            http: self.http.clone(),
            metrics: self.metrics.clone(),
            auxiliary: self.auxiliary.clone(),
        }
    }
}

/// The client port's service (see [`ClientPortLayer`]).
#[derive(Clone)]
pub struct ClientPort<S> {
    grpc: S,
    http: Router,
    metrics: Arc<Metrics>,
    auxiliary: Option<Gate>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

impl<S> tower_service::Service<Request<Body>> for ClientPort<S>
where
    S: tower_service::Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.grpc.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let path = req.uri().path();
        let grpc_call = is_grpc(&req);
        if let Some(gate) = self.auxiliary.clone() {
            if !grpc_call && Gate::refuses_http(path) {
                return Box::pin(async move {
                    let status = gate.refusal().await;
                    Ok(crate::gateway::error_response(&status).map(Body::new))
                });
            }
            if grpc_call && Gate::refuses_grpc(path) {
                let method = GrpcMethod::of(path);
                let metrics = self.metrics.clone();
                metrics
                    .grpc_started
                    .with_label_values(&method.labels())
                    .inc();
                return Box::pin(async move {
                    let response: Response<Body> = gate.refusal().await.into_http();
                    Call { metrics, method }.handled("Unavailable");
                    Ok(response)
                });
            }
        }
        if !grpc_call {
            let mut http = self.http.clone();
            return Box::pin(async move {
                // A router is always ready; its error type is Infallible.
                let response = match tower_service::Service::call(&mut http, req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
                Ok(response.map(Body::new))
            });
        }
        // The ready service answers this call; a fresh clone waits for the next poll_ready.
        let clone = self.grpc.clone();
        let mut grpc = std::mem::replace(&mut self.grpc, clone);
        let method = GrpcMethod::of(req.uri().path());
        let metrics = self.metrics.clone();
        metrics
            .grpc_started
            .with_label_values(&method.labels())
            .inc();
        Box::pin(async move {
            let response = grpc.call(req).await.map_err(Into::into)?;
            let mut call = Some(Call { metrics, method });
            // Trailers-only: an error answered at once carries its code in the headers.
            if let Some(code) = grpc_code(response.headers()) {
                if let Some(c) = call.take() {
                    c.handled(code);
                }
            }
            Ok(response.map(|inner| Body::new(Counted { inner, call })))
        })
    }
}

/// A gRPC method's labels, from a fixed table so a client cannot grow the label set.
#[derive(Clone, Copy, Debug)]
struct GrpcMethod {
    kind: &'static str,
    service: &'static str,
    method: &'static str,
}

/// (service, method, type) of every method the client port serves.
const METHODS: &[(&str, &str, &str)] = &[
    ("etcdserverpb.KV", "Range", "unary"),
    ("etcdserverpb.KV", "Put", "unary"),
    ("etcdserverpb.KV", "DeleteRange", "unary"),
    ("etcdserverpb.KV", "Txn", "unary"),
    ("etcdserverpb.KV", "Compact", "unary"),
    ("etcdserverpb.Watch", "Watch", "bidi_stream"),
    ("etcdserverpb.Lease", "LeaseGrant", "unary"),
    ("etcdserverpb.Lease", "LeaseRevoke", "unary"),
    ("etcdserverpb.Lease", "LeaseKeepAlive", "bidi_stream"),
    ("etcdserverpb.Lease", "LeaseTimeToLive", "unary"),
    ("etcdserverpb.Lease", "LeaseLeases", "unary"),
    ("etcdserverpb.Cluster", "MemberAdd", "unary"),
    ("etcdserverpb.Cluster", "MemberRemove", "unary"),
    ("etcdserverpb.Cluster", "MemberUpdate", "unary"),
    ("etcdserverpb.Cluster", "MemberList", "unary"),
    ("etcdserverpb.Cluster", "MemberPromote", "unary"),
    ("etcdserverpb.Maintenance", "Alarm", "unary"),
    ("etcdserverpb.Maintenance", "Status", "unary"),
    ("etcdserverpb.Maintenance", "Defragment", "unary"),
    ("etcdserverpb.Maintenance", "Hash", "unary"),
    ("etcdserverpb.Maintenance", "HashKV", "unary"),
    ("etcdserverpb.Maintenance", "Snapshot", "server_stream"),
    ("etcdserverpb.Maintenance", "MoveLeader", "unary"),
    ("etcdserverpb.Maintenance", "Downgrade", "unary"),
    ("etcdserverpb.Auth", "AuthEnable", "unary"),
    ("etcdserverpb.Auth", "AuthDisable", "unary"),
    ("etcdserverpb.Auth", "AuthStatus", "unary"),
    ("etcdserverpb.Auth", "Authenticate", "unary"),
    ("etcdserverpb.Auth", "UserAdd", "unary"),
    ("etcdserverpb.Auth", "UserGet", "unary"),
    ("etcdserverpb.Auth", "UserList", "unary"),
    ("etcdserverpb.Auth", "UserDelete", "unary"),
    ("etcdserverpb.Auth", "UserChangePassword", "unary"),
    ("etcdserverpb.Auth", "UserGrantRole", "unary"),
    ("etcdserverpb.Auth", "UserRevokeRole", "unary"),
    ("etcdserverpb.Auth", "RoleAdd", "unary"),
    ("etcdserverpb.Auth", "RoleGet", "unary"),
    ("etcdserverpb.Auth", "RoleList", "unary"),
    ("etcdserverpb.Auth", "RoleDelete", "unary"),
    ("etcdserverpb.Auth", "RoleGrantPermission", "unary"),
    ("etcdserverpb.Auth", "RoleRevokePermission", "unary"),
    ("v3lockpb.Lock", "Lock", "unary"),
    ("v3lockpb.Lock", "Unlock", "unary"),
    ("v3electionpb.Election", "Campaign", "unary"),
    ("v3electionpb.Election", "Proclaim", "unary"),
    ("v3electionpb.Election", "Leader", "unary"),
    ("v3electionpb.Election", "Observe", "server_stream"),
    ("v3electionpb.Election", "Resign", "unary"),
    ("grpc.health.v1.Health", "Check", "unary"),
    ("grpc.health.v1.Health", "Watch", "server_stream"),
];

impl GrpcMethod {
    fn of(path: &str) -> GrpcMethod {
        let mut parts = path.trim_start_matches('/').splitn(2, '/');
        let (service, method) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        METHODS
            .iter()
            .find(|(s, m, _)| *s == service && *m == method)
            .map_or(
                GrpcMethod {
                    kind: "unknown",
                    service: "unknown",
                    method: "unknown",
                },
                |(s, m, k)| GrpcMethod {
                    kind: k,
                    service: s,
                    method: m,
                },
            )
    }

    fn labels(&self) -> [&'static str; 3] {
        [self.kind, self.service, self.method]
    }
}

/// One gRPC call not yet counted as handled.
struct Call {
    metrics: Arc<Metrics>,
    method: GrpcMethod,
}

impl Call {
    fn handled(self, code: &'static str) {
        let [kind, service, method] = self.method.labels();
        self.metrics
            .grpc_handled
            .with_label_values(&[kind, service, method, code])
            .inc();
    }
}

/// grpc-go's names of the status codes (`codes.Code.String()`), as etcd's labels spell them.
fn code_name(code: i32) -> &'static str {
    match code {
        0 => "OK",
        1 => "Canceled",
        2 => "Unknown",
        3 => "InvalidArgument",
        4 => "DeadlineExceeded",
        5 => "NotFound",
        6 => "AlreadyExists",
        7 => "PermissionDenied",
        8 => "ResourceExhausted",
        9 => "FailedPrecondition",
        10 => "Aborted",
        11 => "OutOfRange",
        12 => "Unimplemented",
        13 => "Internal",
        14 => "Unavailable",
        15 => "DataLoss",
        16 => "Unauthenticated",
        _ => "Unknown",
    }
}

fn grpc_code(headers: &http::HeaderMap) -> Option<&'static str> {
    let v = headers.get("grpc-status")?.to_str().ok()?;
    Some(code_name(v.parse().unwrap_or(2)))
}

/// A gRPC response body that counts its call as handled when its trailers pass, or as
/// `Canceled` if it is dropped first (the client went away).
struct Counted {
    inner: Body,
    call: Option<Call>,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let code = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame
                .trailers_ref()
                .map(|t| grpc_code(t).unwrap_or("Unknown")),
            Poll::Ready(Some(Err(status))) => Some(code_name(status.code() as i32)),
            Poll::Ready(None) => Some("Unknown"),
            Poll::Pending => None,
        };
        if let Some(code) = code {
            if let Some(call) = self.call.take() {
                call.handled(code);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            call.handled("Canceled");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_methods_come_from_the_table_only() {
        let m = GrpcMethod::of("/etcdserverpb.KV/Range");
        assert_eq!(m.labels(), ["unary", "etcdserverpb.KV", "Range"]);
        let w = GrpcMethod::of("/etcdserverpb.Watch/Watch");
        assert_eq!(w.labels(), ["bidi_stream", "etcdserverpb.Watch", "Watch"]);
        let junk = GrpcMethod::of("/etcdserverpb.KV/Range/../../x");
        assert_eq!(junk.labels(), ["unknown", "unknown", "unknown"]);
    }

    #[test]
    fn repeated_query_values_are_all_kept() {
        assert_eq!(
            query_values(Some("exclude=NOSPACE&exclude=CORRUPT&x=1"), "exclude"),
            vec!["NOSPACE".to_string(), "CORRUPT".to_string()]
        );
        assert!(query_values(None, "exclude").is_empty());
    }
}
