//! The real etcdctl 3.4 (Debian's etcd-client) against a small tonic server that answers
//! Maintenance.Status, served through [`node::authority`]: `endpoint status` with an `http://`
//! endpoint sends the whole URL as `:authority`, which h2 refuses unless the fix rewrites it.
//! A second server without the fix shows the same command failing, so the fix is what matters.

use etcd_proto::etcdserverpb as pb;
use etcd_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use etcd_proto::etcdserverpb::maintenance_server::{Maintenance, MaintenanceServer};
use node::authority::fix_incoming;
use std::net::SocketAddr;
use std::process::{Command, Output};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

const VERSION: &str = "3.4.99-authority-test";
const MEMBER: u64 = 0xabc;

/// Answers Status with fixed values the test then finds in etcdctl's JSON.
struct FixedStatus;

#[tonic::async_trait]
impl Maintenance for FixedStatus {
    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        // tonic fills this from the connection's `Connected` info: without it, the fix would
        // have lost what `TcpStream` tells about the peer.
        let peer = request
            .remote_addr()
            .ok_or_else(|| Status::internal("no peer address on the request"))?;
        if !peer.ip().is_loopback() {
            return Err(Status::internal(format!("unexpected peer {peer}")));
        }
        Ok(Response::new(pb::StatusResponse {
            header: Some(pb::ResponseHeader {
                cluster_id: 7,
                member_id: MEMBER,
                revision: 42,
                raft_term: 3,
            }),
            version: VERSION.to_string(),
            db_size: 4096,
            leader: MEMBER,
            raft_index: 11,
            raft_term: 3,
            raft_applied_index: 11,
            errors: Vec::new(),
            db_size_in_use: 2048,
            is_learner: false,
        }))
    }
}

/// A server on a free loopback port; stops when `stop` is dropped or sent.
struct Server {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl Server {
    async fn start(with_fix: bool) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let (stop, stopped) = oneshot::channel::<()>();
        let router =
            tonic::transport::Server::builder().add_service(MaintenanceServer::new(FixedStatus));
        let signal = async move {
            let _ = stopped.await;
        };
        let task = tokio::spawn(async move {
            if with_fix {
                router
                    .serve_with_incoming_shutdown(fix_incoming(incoming), signal)
                    .await
            } else {
                router.serve_with_incoming_shutdown(incoming, signal).await
            }
        });
        Server { addr, stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// Runs etcdctl (API v3) with `args`, off the async workers.
async fn etcdctl(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["--dial-timeout=3s", "--command-timeout=5s"])
            .args(&args)
            .output()
            .unwrap_or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    panic!("etcdctl is not installed: run scripts/test.sh, which installs it")
                }
                panic!("cannot run etcdctl: {e}")
            })
    })
    .await
    .unwrap()
}

async fn endpoint_status(endpoint: &str) -> Output {
    etcdctl(vec![
        format!("--endpoints={endpoint}"),
        "endpoint".into(),
        "status".into(),
        "-w".into(),
        "json".into(),
    ])
    .await
}

/// The one status entry of etcdctl's JSON, after checking it names `endpoint`.
fn status_of(out: &Output, endpoint: &str) -> serde_json::Value {
    assert!(
        out.status.success(),
        "etcdctl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "etcdctl printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let entries = json.as_array().expect("a JSON array");
    assert_eq!(entries.len(), 1, "{json}");
    assert_eq!(entries[0]["Endpoint"], endpoint);
    entries[0]["Status"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_endpoint_status_with_an_http_url_works_through_the_fix() {
    let server = Server::start(true).await;
    let endpoint = format!("http://{}", server.addr);
    let status = status_of(&endpoint_status(&endpoint).await, &endpoint);
    assert_eq!(status["version"], VERSION);
    assert_eq!(status["leader"], MEMBER);
    assert_eq!(status["dbSize"], 4096);
    assert_eq!(status["dbSizeInUse"], 2048);
    assert_eq!(status["raftIndex"], 11);
    assert_eq!(status["header"]["revision"], 42);
    assert_eq!(status["header"]["cluster_id"], 7);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_fix_the_same_command_fails() {
    let server = Server::start(false).await;
    let endpoint = format!("http://{}", server.addr);
    let out = endpoint_status(&endpoint).await;
    assert!(
        !out.status.success(),
        "etcdctl succeeded without the fix: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("PROTOCOL_ERROR"),
        "h2's stream reset is the reason: {stderr}"
    );
    // The same server answers the host:port form, so only the authority differs.
    let bare = server.addr.to_string();
    let status = status_of(&endpoint_status(&bare).await, &bare);
    assert_eq!(status["version"], VERSION);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn well_formed_clients_are_untouched_by_the_fix() {
    let server = Server::start(true).await;
    let bare = server.addr.to_string();
    let status = status_of(&endpoint_status(&bare).await, &bare);
    assert_eq!(status["leader"], MEMBER);

    // tonic's own client: many calls over one connection, then a second connection.
    for _ in 0..2 {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = MaintenanceClient::new(channel);
        for _ in 0..50 {
            let r = client
                .status(pb::StatusRequest {})
                .await
                .unwrap()
                .into_inner();
            assert_eq!((r.version.as_str(), r.leader), (VERSION, MEMBER));
        }
    }
    server.stop().await;
}
