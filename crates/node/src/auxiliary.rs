//! An auxiliary acceptor's client port (`synod node --auxiliary`, Cheap Paxos).
//!
//! An auxiliary keeps no store it could serve from: in the normal case it hears nothing from
//! the leader, and while a main acceptor is down it only accepts (see ARCHITECTURE.md, Cheap
//! Paxos). So it refuses clients, the way etcd 3.4 refuses a learner (`v3rpc`'s interceptors:
//! `isRPCSupportedForLearner`), with the same code, Unavailable, which clients take as "try
//! another endpoint", and a message that names the member as an auxiliary and lists the main
//! acceptors' client URLs. It serves what etcd's learner serves that needs no store:
//! `Maintenance.Status` (`etcdctl endpoint status`, `synod top`), and the plain HTTP
//! endpoints (`/metrics`, `/health`, `/version`...). etcd's learner also serves serializable
//! ranges and snapshots; an auxiliary has no store to read them from.

use crate::service::Services;
use tonic::Status;

/// The gRPC methods an auxiliary answers (full paths, as HTTP/2 carries them).
const SERVED: &[&str] = &[
    "/etcdserverpb.Maintenance/Status",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
];

/// The refusal's opening words: etcd's learner error ("etcdserver: rpc not supported for
/// learner"), with this member's role in place of "learner".
pub const REFUSAL: &str = "etcdserver: rpc not supported for auxiliary member";

/// Refuses what an auxiliary cannot serve. Cheap to clone.
#[derive(Clone)]
pub struct Gate {
    name: String,
    services: Services,
}

impl Gate {
    /// The gate of member `name`, which asks `services` where the mains are.
    pub fn new(name: String, services: Services) -> Gate {
        Gate { name, services }
    }

    /// Whether a gRPC call to `path` is refused here.
    pub fn refuses_grpc(path: &str) -> bool {
        !SERVED.contains(&path)
    }

    /// Whether an HTTP request to `path` is refused here: the JSON gateway's API
    /// (`/v3/...`, `/v3beta/...`, `/v3alpha/...`) except the status call.
    pub fn refuses_http(path: &str) -> bool {
        path.starts_with("/v3") && !path.ends_with("/maintenance/status")
    }

    /// The refusal, naming the main acceptors' client URLs as this member knows them (what
    /// each announced; a main not heard from yet is named by id).
    pub async fn refusal(&self) -> Status {
        let mains = match Services::status(&self.services).await {
            Ok(s) => s
                .mains
                .iter()
                .map(|id| match s.client_urls.get(id) {
                    Some(urls) if !urls.is_empty() => urls.join(","),
                    _ => format!("member {id:x}"),
                })
                .collect::<Vec<_>>()
                .join(", "),
            Err(e) => format!("unknown ({})", e.message()),
        };
        Status::unavailable(format!(
            "{REFUSAL} {}: it holds no store and serves no client; send requests to a main member: {mains}",
            self.name
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_auxiliary_answers_status_and_health_and_refuses_the_rest() {
        assert!(!Gate::refuses_grpc("/etcdserverpb.Maintenance/Status"));
        assert!(!Gate::refuses_grpc("/grpc.health.v1.Health/Check"));
        for path in [
            "/etcdserverpb.KV/Range",
            "/etcdserverpb.KV/Put",
            "/etcdserverpb.Watch/Watch",
            "/etcdserverpb.Lease/LeaseGrant",
            "/etcdserverpb.Cluster/MemberList",
            "/etcdserverpb.Maintenance/Snapshot",
            "/v3lockpb.Lock/Lock",
        ] {
            assert!(Gate::refuses_grpc(path), "{path}");
        }
        assert!(Gate::refuses_http("/v3/kv/put"));
        assert!(Gate::refuses_http("/v3beta/kv/range"));
        assert!(!Gate::refuses_http("/v3/maintenance/status"));
        assert!(!Gate::refuses_http("/metrics"));
        assert!(!Gate::refuses_http("/health"));
    }
}
