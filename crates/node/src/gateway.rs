//! etcd's JSON gateway (grpc-gateway, as etcd 3.4 serves it on the client port): `POST
//! /v3/kv/range` with `{"key":"Zm9v"}` and the like, under `/v3/` and `/v3beta/` alike.
//!
//! **How.** Each route names a gRPC method. The JSON body is read into the method's request
//! message through the protobuf descriptors the code is generated from
//! ([`etcd_proto::FILE_DESCRIPTOR_SET`], with `prost-reflect`), the same service method gRPC
//! calls runs it (so limits, auth and errors are gRPC's own), and the answer is written back as
//! JSON the way etcd's gateway writes it (grpc-gateway's `JSONPb{OrigName: true}`): the
//! `.proto` field names, 64-bit integers as strings, bytes as base64, enums by name, fields at
//! their default left out. The streaming methods (`/v3/watch`, `/v3/lease/keepalive`) take a
//! stream of JSON objects and answer one `{"result": ...}` line per message; a watch stays open
//! while its HTTP client listens. An `Authorization` header carries the token, as with etcd.
//!
//! **Errors** are grpc-gateway's: `{"error": msg, "code": grpc_code, "message": msg}` with the
//! HTTP status grpc-gateway maps the code to (401 for an invalid token, 403 for permission
//! denied, 400 for a body that is not the method's JSON...).
//!
//! What this must never do: serve a request differently from the gRPC method it names (it
//! calls that method), or read an unbounded body (axum's body limit, then
//! `--max-request-bytes` in the method).

use crate::http::HttpParts;
use crate::service::Services;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::Router;
use etcd_proto::etcdserverpb as pb;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, SerializeOptions};
use std::future::Future;
use std::sync::OnceLock;
use tonic::{Code, Status};

/// The prefixes etcd 3.4 serves its gateway under.
const PREFIXES: &[&str] = &["/v3", "/v3beta"];

/// The descriptors of etcd's messages, decoded once.
fn pool() -> Result<&'static DescriptorPool, Status> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(etcd_proto::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| Status::internal(format!("synod: gateway descriptors: {e}")))
}

/// The JSON body of a request for `M`, as grpc-gateway reads it (proto or JSON names, unknown
/// fields ignored; an empty body is an empty message).
fn from_json<M: prost::Message + Default>(name: &str, body: &[u8]) -> Result<M, Status> {
    let descriptor = pool()?
        .get_message_by_name(name)
        .ok_or_else(|| Status::internal(format!("synod: gateway: no message {name}")))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(M::default());
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let message = DynamicMessage::deserialize_with_options(
        descriptor,
        &mut de,
        &DeserializeOptions::new().deny_unknown_fields(false),
    )
    .and_then(|m| de.end().map(|()| m))
    .map_err(|e| Status::invalid_argument(e.to_string()))?;
    M::decode(prost::Message::encode_to_vec(&message).as_slice())
        .map_err(|e| Status::invalid_argument(e.to_string()))
}

/// `message` as etcd's gateway writes it.
fn to_json<M: prost::Message>(name: &str, message: &M) -> Result<Vec<u8>, Status> {
    let descriptor = pool()?
        .get_message_by_name(name)
        .ok_or_else(|| Status::internal(format!("synod: gateway: no message {name}")))?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .map_err(|e| Status::internal(format!("synod: gateway: {e}")))?;
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::new(&mut out);
    dynamic
        .serialize_with_options(
            &mut ser,
            &SerializeOptions::new()
                .use_proto_field_name(true)
                .skip_default_fields(true),
        )
        .map_err(|e| Status::internal(format!("synod: gateway: {e}")))?;
    Ok(out)
}

/// grpc-gateway's HTTP status for a gRPC code (`runtime.HTTPStatusFromCode`).
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// grpc-gateway's error body: `error`, `message`, `code`, in etcd 3.4's order.
pub(crate) fn error_response(status: &Status) -> Response {
    let body = format!(
        r#"{{"error":{},"message":{},"code":{}}}"#,
        serde_json::Value::from(status.message()),
        serde_json::Value::from(status.message()),
        status.code() as i32,
    );
    with_cors(
        (
            http_status(status.code()),
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
    )
}

/// The CORS headers etcd 3.4 puts on every gateway answer.
fn with_cors(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("accept, content-type, authorization"),
    );
    h.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
    );
    h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    response
}

/// Go's `http.Error` text answer with the CORS headers, as grpc-gateway answers a path or a
/// method it does not serve.
fn plain(code: StatusCode, text: &'static str) -> Response {
    with_cors(go_http_error(code, text))
}

/// What Go's `http.Error` writes: the text and a newline, as plain text.
fn go_http_error(code: StatusCode, text: &'static str) -> Response {
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

async fn not_found() -> Response {
    plain(StatusCode::NOT_FOUND, "Not Found")
}

async fn method_not_allowed() -> Response {
    plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

/// etcd 3.4's refusal of a gateway request whose TLS client certificate names a user while
/// `--client-cert-auth` and auth are on (its gateway calls gRPC as the member itself, so the
/// name could not be honoured): 400 with this text, before anything is done.
const CERTIFICATE_NAME_REFUSED: &str =
    "CommonName of client sending a request against gateway will be ignored and not used as expected";

/// The answer etcd gives before serving a gateway request sent with a named client
/// certificate while auth is on, if this request is one.
async fn refuse_certificate_name(services: &Services, extensions: &Extensions) -> Option<Response> {
    let named = extensions
        .get::<crate::tls::ClientConnectInfo>()
        .is_some_and(|info| info.common_name.as_deref().is_some_and(|cn| !cn.is_empty()));
    if !named || !services.tokens().client_cert_users() {
        return None;
    }
    match services.auth_enabled().await {
        Ok(false) => None,
        // etcd refuses in its access controller, before it writes any CORS header.
        Ok(_) => Some(go_http_error(
            StatusCode::BAD_REQUEST,
            CERTIFICATE_NAME_REFUSED,
        )),
        Err(status) => Some(error_response(&status)),
    }
}

/// A gRPC request carrying the token of the `Authorization` header, as grpc-gateway forwards it.
fn grpc_request<T>(headers: &HeaderMap, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
    {
        request.metadata_mut().insert("authorization", token);
    }
    request
}

/// Runs one unary method for a JSON request: `req`/`resp` are the messages' full names.
async fn unary<Req, Resp, F, Fut>(
    services: Services,
    headers: HeaderMap,
    extensions: Extensions,
    body: Bytes,
    req: &'static str,
    resp: &'static str,
    method: F,
) -> Response
where
    Req: prost::Message + Default,
    Resp: prost::Message,
    F: FnOnce(Services, tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    if let Some(refused) = refuse_certificate_name(&services, &extensions).await {
        return refused;
    }
    let answer = async {
        let message = from_json::<Req>(req, &body)?;
        let response = method(services, grpc_request(&headers, message)).await?;
        to_json(resp, response.get_ref())
    }
    .await;
    match answer {
        Ok(json) => with_cors(([(header::CONTENT_TYPE, "application/json")], json).into_response()),
        Err(status) => error_response(&status),
    }
}

/// Most renewals one keep-alive request body may ask for.
const KEEP_ALIVES_PER_BODY_MAX: usize = 1024;

/// `/v3/lease/keepalive`: a stream of `{"ID": ...}` objects in, one `{"result": ...}` line per
/// renewal out, as grpc-gateway streams a bidirectional method; the answer ends with the body.
async fn keep_alive(
    State(parts): State<HttpParts>,
    extensions: Extensions,
    body: Bytes,
) -> Response {
    if let Some(refused) = refuse_certificate_name(&parts.services, &extensions).await {
        return refused;
    }
    let mut out = Vec::new();
    let mut values = serde_json::Deserializer::from_slice(&body).into_iter::<serde_json::Value>();
    for _ in 0..KEEP_ALIVES_PER_BODY_MAX {
        let Some(value) = values.next() else {
            break;
        };
        let answer = async {
            let value = value.map_err(|e| Status::unknown(e.to_string()))?;
            let request: pb::LeaseKeepAliveRequest = from_json(
                "etcdserverpb.LeaseKeepAliveRequest",
                value.to_string().as_bytes(),
            )?;
            let renewed = parts.services.renew_lease(request.id).await?;
            to_json("etcdserverpb.LeaseKeepAliveResponse", &renewed)
        }
        .await;
        match answer {
            Ok(json) => {
                out.extend_from_slice(b"{\"result\":");
                out.extend_from_slice(&json);
                out.extend_from_slice(b"}\n");
            }
            Err(status) if out.is_empty() => return error_response(&status),
            Err(status) => {
                // grpc-gateway ends the stream with the error, in its error shape.
                out.extend_from_slice(stream_error_body(&status).as_bytes());
                break;
            }
        }
    }
    with_cors(([(header::CONTENT_TYPE, "application/json")], out).into_response())
}

/// Most watch requests one `/v3/watch` body may carry.
const WATCH_REQUESTS_PER_BODY_MAX: usize = 1024;

/// A gRPC request body made of the frames of `frames`, which then stays open (as a client
/// that keeps its watch stream open) until `hangup` fires or is dropped: when the HTTP client
/// goes away, its answer's stream is dropped, and with it the sender of `hangup`.
struct InboundFrames {
    frames: std::collections::VecDeque<Bytes>,
    hangup: tokio::sync::oneshot::Receiver<()>,
}

impl http_body::Body for InboundFrames {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Some(frame) = self.frames.pop_front() {
            return std::task::Poll::Ready(Some(Ok(http_body::Frame::data(frame))));
        }
        match std::pin::Pin::new(&mut self.hangup).poll(cx) {
            std::task::Poll::Pending => std::task::Poll::Pending,
            std::task::Poll::Ready(_) => std::task::Poll::Ready(None),
        }
    }
}

/// One gRPC length-prefixed frame (uncompressed) of `message`.
fn grpc_frame(message: &impl prost::Message) -> Bytes {
    let body = message.encode_to_vec();
    let mut frame = Vec::with_capacity(5 + body.len());
    frame.push(0);
    frame.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    frame.extend_from_slice(&body);
    Bytes::from(frame)
}

/// `/v3/watch`: the body's watch requests (JSON objects) open a watch stream on the Watch
/// service, which stays open while the HTTP client listens; each answer is a
/// `{"result": ...}` line, as etcd 3.4's gateway streams it.
async fn watch(
    State(parts): State<HttpParts>,
    headers: HeaderMap,
    extensions: Extensions,
    body: Bytes,
) -> Response {
    if let Some(refused) = refuse_certificate_name(&parts.services, &extensions).await {
        return refused;
    }
    use pb::watch_server::Watch;
    use tokio_stream::StreamExt;
    let mut frames = std::collections::VecDeque::new();
    let values = serde_json::Deserializer::from_slice(&body).into_iter::<serde_json::Value>();
    for value in values.take(WATCH_REQUESTS_PER_BODY_MAX) {
        let request = value
            .map_err(|e| Status::unknown(e.to_string()))
            .and_then(|v| {
                from_json::<pb::WatchRequest>("etcdserverpb.WatchRequest", v.to_string().as_bytes())
            });
        match request {
            Ok(r) => frames.push_back(grpc_frame(&r)),
            // etcd's gateway reads a stream's body as it goes and answers a bad one Unknown.
            Err(status) => return error_response(&Status::unknown(status.message())),
        }
    }
    let (hangup_tx, hangup) = tokio::sync::oneshot::channel::<()>();
    let inbound = tonic::Streaming::new_request(
        tonic_prost::ProstDecoder::<pb::WatchRequest>::default(),
        InboundFrames { frames, hangup },
        None,
        None,
    );
    let answers = match parts.services.watch(grpc_request(&headers, inbound)).await {
        Ok(r) => r.into_inner(),
        Err(status) => return error_response(&status),
    };
    // The hang-up sender is held by the answer stream: dropped with it when the client goes
    // away, which ends the watch.
    let answers = answers.map(move |answer| {
        let _hangup = &hangup_tx;
        answer
    });
    stream_response("etcdserverpb.WatchResponse", answers)
}

/// A streamed answer as grpc-gateway writes one: a `{"result": ...}` line per message, and
/// an error, if the stream ends with one, in its error shape.
fn stream_response<M: prost::Message + 'static>(
    name: &'static str,
    answers: impl tokio_stream::Stream<Item = Result<M, Status>> + Send + 'static,
) -> Response {
    use tokio_stream::StreamExt;
    let lines = answers.map(move |answer| {
        let line = match answer.and_then(|a| to_json(name, &a)) {
            Ok(json) => {
                let mut line = b"{\"result\":".to_vec();
                line.extend_from_slice(&json);
                line.extend_from_slice(b"}\n");
                line
            }
            Err(status) => stream_error_body(&status).into_bytes(),
        };
        Ok::<_, std::convert::Infallible>(Bytes::from(line))
    });
    with_cors(
        (
            [(header::CONTENT_TYPE, "application/json")],
            axum::body::Body::from_stream(lines),
        )
            .into_response(),
    )
}

/// Runs one server-streaming method for a JSON request (`req`/`resp`: the messages' full
/// names), its answers streamed as grpc-gateway streams them.
async fn server_stream<Req, Resp, S, F, Fut>(
    services: Services,
    headers: HeaderMap,
    extensions: Extensions,
    body: Bytes,
    (req, resp): (&'static str, &'static str),
    method: F,
) -> Response
where
    Req: prost::Message + Default,
    Resp: prost::Message + 'static,
    S: tokio_stream::Stream<Item = Result<Resp, Status>> + Send + 'static,
    F: FnOnce(Services, tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<S>, Status>>,
{
    if let Some(refused) = refuse_certificate_name(&services, &extensions).await {
        return refused;
    }
    let request = match from_json::<Req>(req, &body) {
        Ok(r) => r,
        Err(status) => return error_response(&status),
    };
    match method(services, grpc_request(&headers, request)).await {
        Ok(r) => stream_response(resp, r.into_inner()),
        Err(status) => error_response(&status),
    }
}

/// `/v3/election/observe`: one `{"result": ...}` line per leader the election announces,
/// while the HTTP client listens.
async fn observe(
    State(parts): State<HttpParts>,
    headers: HeaderMap,
    extensions: Extensions,
    body: Bytes,
) -> Response {
    use etcd_proto::v3electionpb::election_server::Election;
    let names = ("v3electionpb.LeaderRequest", "v3electionpb.LeaderResponse");
    server_stream(
        parts.services,
        headers,
        extensions,
        body,
        names,
        |s, r| async move { <Services as Election>::observe(&s, r).await },
    )
    .await
}

/// `/v3/maintenance/snapshot`: the backup `etcdctl snapshot save` would write, streamed in
/// the Snapshot method's chunks, one `{"result": {"remaining_bytes", "blob"}}` line each, as
/// etcd's gateway streams a server-streaming method.
async fn snapshot(
    State(parts): State<HttpParts>,
    headers: HeaderMap,
    extensions: Extensions,
    body: Bytes,
) -> Response {
    use pb::maintenance_server::Maintenance;
    let names = (
        "etcdserverpb.SnapshotRequest",
        "etcdserverpb.SnapshotResponse",
    );
    server_stream(
        parts.services,
        headers,
        extensions,
        body,
        names,
        |s, r| async move { <Services as Maintenance>::snapshot(&s, r).await },
    )
    .await
}

fn stream_error_body(status: &Status) -> String {
    format!(
        r#"{{"error":{},"message":{},"code":{}}}"#,
        serde_json::Value::from(status.message()),
        serde_json::Value::from(status.message()),
        status.code() as i32,
    )
}

/// One route per unary method of the messages in module `$module` (protobuf package
/// `$package`): `"/kv/range" => Kv, range, RangeRequest, RangeResponse;`, under every prefix.
macro_rules! routes {
    ($router:ident, $module:ident, $package:literal;
     $( $path:literal => $trait:path, $method:ident, $req:ident, $resp:ident; )*) => {{
        let mut router = $router;
        $(
            for prefix in PREFIXES {
                router = router.route(
                    &format!("{prefix}{}", $path),
                    post(|State(parts): State<HttpParts>, headers: HeaderMap, extensions: Extensions, body: Bytes| async move {
                        unary::<$module::$req, $module::$resp, _, _>(
                            parts.services,
                            headers,
                            extensions,
                            body,
                            concat!($package, ".", stringify!($req)),
                            concat!($package, ".", stringify!($resp)),
                            |s, r| async move { <Services as $trait>::$method(&s, r).await },
                        )
                        .await
                    })
                    .fallback(method_not_allowed),
                );
            }
        )*
        router
    }};
}

/// `router` with etcd's gateway routes added.
pub fn routes(router: Router<HttpParts>) -> Router<HttpParts> {
    use electionpb::election_server::Election;
    use etcd_proto::v3electionpb as electionpb;
    use etcd_proto::v3lockpb as lockpb;
    use lockpb::lock_server::Lock;
    use pb::auth_server::Auth;
    use pb::cluster_server::Cluster;
    use pb::kv_server::Kv;
    use pb::lease_server::Lease;
    use pb::maintenance_server::Maintenance;
    let mut router = routes!(router, pb, "etcdserverpb";
        "/kv/range" => Kv, range, RangeRequest, RangeResponse;
        "/kv/put" => Kv, put, PutRequest, PutResponse;
        "/kv/deleterange" => Kv, delete_range, DeleteRangeRequest, DeleteRangeResponse;
        "/kv/txn" => Kv, txn, TxnRequest, TxnResponse;
        "/kv/compaction" => Kv, compact, CompactionRequest, CompactionResponse;
        "/lease/grant" => Lease, lease_grant, LeaseGrantRequest, LeaseGrantResponse;
        "/lease/revoke" => Lease, lease_revoke, LeaseRevokeRequest, LeaseRevokeResponse;
        "/kv/lease/revoke" => Lease, lease_revoke, LeaseRevokeRequest, LeaseRevokeResponse;
        "/lease/timetolive" => Lease, lease_time_to_live, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse;
        "/kv/lease/timetolive" => Lease, lease_time_to_live, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse;
        "/lease/leases" => Lease, lease_leases, LeaseLeasesRequest, LeaseLeasesResponse;
        "/kv/lease/leases" => Lease, lease_leases, LeaseLeasesRequest, LeaseLeasesResponse;
        "/cluster/member/add" => Cluster, member_add, MemberAddRequest, MemberAddResponse;
        "/cluster/member/remove" => Cluster, member_remove, MemberRemoveRequest, MemberRemoveResponse;
        "/cluster/member/update" => Cluster, member_update, MemberUpdateRequest, MemberUpdateResponse;
        "/cluster/member/list" => Cluster, member_list, MemberListRequest, MemberListResponse;
        "/cluster/member/promote" => Cluster, member_promote, MemberPromoteRequest, MemberPromoteResponse;
        "/maintenance/alarm" => Maintenance, alarm, AlarmRequest, AlarmResponse;
        "/maintenance/status" => Maintenance, status, StatusRequest, StatusResponse;
        "/maintenance/defragment" => Maintenance, defragment, DefragmentRequest, DefragmentResponse;
        "/maintenance/hash" => Maintenance, hash, HashRequest, HashResponse;
        "/maintenance/transfer-leadership" => Maintenance, move_leader, MoveLeaderRequest, MoveLeaderResponse;
        "/auth/enable" => Auth, auth_enable, AuthEnableRequest, AuthEnableResponse;
        "/auth/disable" => Auth, auth_disable, AuthDisableRequest, AuthDisableResponse;
        "/auth/authenticate" => Auth, authenticate, AuthenticateRequest, AuthenticateResponse;
        "/auth/user/add" => Auth, user_add, AuthUserAddRequest, AuthUserAddResponse;
        "/auth/user/get" => Auth, user_get, AuthUserGetRequest, AuthUserGetResponse;
        "/auth/user/list" => Auth, user_list, AuthUserListRequest, AuthUserListResponse;
        "/auth/user/delete" => Auth, user_delete, AuthUserDeleteRequest, AuthUserDeleteResponse;
        "/auth/user/changepw" => Auth, user_change_password, AuthUserChangePasswordRequest, AuthUserChangePasswordResponse;
        "/auth/user/grant" => Auth, user_grant_role, AuthUserGrantRoleRequest, AuthUserGrantRoleResponse;
        "/auth/user/revoke" => Auth, user_revoke_role, AuthUserRevokeRoleRequest, AuthUserRevokeRoleResponse;
        "/auth/role/add" => Auth, role_add, AuthRoleAddRequest, AuthRoleAddResponse;
        "/auth/role/get" => Auth, role_get, AuthRoleGetRequest, AuthRoleGetResponse;
        "/auth/role/list" => Auth, role_list, AuthRoleListRequest, AuthRoleListResponse;
        "/auth/role/delete" => Auth, role_delete, AuthRoleDeleteRequest, AuthRoleDeleteResponse;
        "/auth/role/grant" => Auth, role_grant_permission, AuthRoleGrantPermissionRequest, AuthRoleGrantPermissionResponse;
        "/auth/role/revoke" => Auth, role_revoke_permission, AuthRoleRevokePermissionRequest, AuthRoleRevokePermissionResponse;
    );
    // etcd 3.4's gateway also serves the Lock and Election services.
    router = routes!(router, lockpb, "v3lockpb";
        "/lock/lock" => Lock, lock, LockRequest, LockResponse;
        "/lock/unlock" => Lock, unlock, UnlockRequest, UnlockResponse;
    );
    router = routes!(router, electionpb, "v3electionpb";
        "/election/campaign" => Election, campaign, CampaignRequest, CampaignResponse;
        "/election/proclaim" => Election, proclaim, ProclaimRequest, ProclaimResponse;
        "/election/leader" => Election, leader, LeaderRequest, LeaderResponse;
        "/election/resign" => Election, resign, ResignRequest, ResignResponse;
    );
    for prefix in PREFIXES {
        router = router.route(
            &format!("{prefix}/lease/keepalive"),
            post(keep_alive).fallback(method_not_allowed),
        );
        router = router.route(
            &format!("{prefix}/watch"),
            post(watch).fallback(method_not_allowed),
        );
        router = router.route(
            &format!("{prefix}/maintenance/snapshot"),
            post(snapshot).fallback(method_not_allowed),
        );
        router = router.route(
            &format!("{prefix}/election/observe"),
            post(observe).fallback(method_not_allowed),
        );
    }
    // Any other path under a gateway prefix is grpc-gateway's, not the HTTP mux's, 404.
    for prefix in PREFIXES {
        router = router.route(&format!("{prefix}/{{*rest}}"), any(not_found));
    }
    router
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_reads_and_writes_as_etcds_gateway_does() {
        let r: pb::RangeRequest = from_json(
            "etcdserverpb.RangeRequest",
            br#"{"key":"Zm9v","limit":"2","keys_only":true,"extra":1}"#,
        )
        .expect("a range request");
        assert_eq!(r.key, b"foo");
        assert_eq!(r.limit, 2);
        assert!(r.keys_only);
        let response = pb::RangeResponse {
            header: Some(pb::ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 3,
                raft_term: 4,
            }),
            kvs: vec![etcd_proto::mvccpb::KeyValue {
                key: b"foo".to_vec(),
                create_revision: 3,
                mod_revision: 3,
                version: 1,
                value: b"bar".to_vec(),
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        let json: serde_json::Value = serde_json::from_slice(
            &to_json("etcdserverpb.RangeResponse", &response).expect("json"),
        )
        .expect("valid JSON");
        assert_eq!(
            json,
            serde_json::json!({
                "header": {"cluster_id": "1", "member_id": "2", "revision": "3", "raft_term": "4"},
                "kvs": [{"key": "Zm9v", "create_revision": "3", "mod_revision": "3", "version": "1", "value": "YmFy"}],
                "count": "1"
            })
        );
    }

    #[test]
    fn a_body_that_is_not_the_methods_json_is_invalid_argument() {
        for body in [&b"{"[..], b"[1]", br#"{"key":5}"#, b"{} {}"] {
            let e = from_json::<pb::RangeRequest>("etcdserverpb.RangeRequest", body)
                .expect_err("refused");
            assert_eq!(e.code(), Code::InvalidArgument, "{body:?}");
        }
    }
}
