//! etcd's Lease service.
//!
//! Grants and revokes go through the log, so every member applies them in the same order; the
//! store keeps each lease's granted TTL, its keys and its last checkpoint. Time is the
//! member's: the leader keeps a clock per lease, renews it without a log write (a follower's
//! keep-alive is asked of the leader, as etcd's leasehttp does), checkpoints the remaining
//! time of leases that go unrenewed, and proposes the revoke of a lease whose clock ran out
//! (see `member/src/member/lease_renewal.rs`).

use crate::core::Request;
use crate::error::NodeError;
use crate::service::{unexpected, Services};
use etcd_proto::etcdserverpb as pb;
use kv::{KvCommand, KvRead, KvReadResponse, KvResponse, LeaseGrantRequest, LeaseRevokeRequest};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request as GrpcRequest, Response, Status, Streaming};

/// Renewal answers queued for one stream's client before the stream waits for it to read.
const KEEP_ALIVE_QUEUE: usize = 16;

#[tonic::async_trait]
impl pb::lease_server::Lease for Services {
    async fn lease_grant(
        &self,
        request: GrpcRequest<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let r = request.into_inner();
        let grant = LeaseGrantRequest {
            id: r.id,
            ttl: r.ttl.max(self.lease_ttl_min()),
        };
        let (answer, term) = self.write(&KvCommand::LeaseGrant(grant)).await?;
        let KvResponse::LeaseGrant(g) = answer else {
            return Err(unexpected("lease grant"));
        };
        Ok(Response::new(pb::LeaseGrantResponse {
            header: Some(self.header(g.revision, term)),
            id: g.id,
            ttl: g.ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        request: GrpcRequest<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let caller = self.caller(&request, false).await?;
        let id = request.into_inner().id;
        let (answer, term) = self
            .write_as(&caller, &KvCommand::LeaseRevoke(LeaseRevokeRequest { id }))
            .await?;
        let KvResponse::LeaseRevoke(r) = answer else {
            return Err(unexpected("lease revoke"));
        };
        Ok(Response::new(pb::LeaseRevokeResponse {
            header: Some(self.header(r.revision, term)),
        }))
    }

    async fn lease_keep_alive(
        &self,
        request: GrpcRequest<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::LeaseKeepAliveResponse>>, Status> {
        let mut inbound = request.into_inner();
        let (out, rx) = mpsc::channel(KEEP_ALIVE_QUEUE);
        let services = self.clone();
        let mut stopping = self.watch_parts().stopping;
        tokio::spawn(async move {
            // One renewal at a time per stream: clients renew each lease every third of its
            // TTL, so a stream's renewals are far apart.
            loop {
                // The stream ends when the member stops, or the gRPC server's graceful stop
                // would wait for the client to hang up.
                let r = tokio::select! {
                    _ = async { drop(stopping.wait_for(|s| *s).await) } => {
                        let _ = out.send(Err(NodeError::Stopped.status())).await;
                        return;
                    }
                    message = inbound.message() => match message {
                        Ok(Some(r)) => r,
                        Ok(None) | Err(_) => return,
                    },
                };
                let answer = match services.renew_lease(r.id).await {
                    Ok(answer) => answer,
                    Err(e) => {
                        let _ = out.send(Err(e)).await;
                        return;
                    }
                };
                if out.send(Ok(answer)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        request: GrpcRequest<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let r = request.into_inner();
        let read = KvRead::LeaseTimeToLive {
            id: r.id,
            keys: r.keys,
        };
        let (answer, term) = match self.read(read, true).await {
            Ok(answer) => answer,
            // etcd answers an unknown lease with TTL -1, not an error.
            Err(e) if e.code() == Code::NotFound => {
                return Ok(Response::new(pb::LeaseTimeToLiveResponse {
                    header: Some(self.header(0, 0)),
                    id: r.id,
                    ttl: -1,
                    ..pb::LeaseTimeToLiveResponse::default()
                }));
            }
            Err(e) => return Err(e),
        };
        let KvReadResponse::LeaseTimeToLive(t) = answer else {
            return Err(unexpected("lease time-to-live"));
        };
        let left = self
            .ask(|reply| Request::LeaseRemaining { id: r.id, reply })
            .await?
            // Revoked between the read and this question: gone, as etcd says it.
            .unwrap_or(-1);
        Ok(Response::new(pb::LeaseTimeToLiveResponse {
            header: Some(self.header(t.revision, term)),
            id: t.id,
            ttl: left,
            granted_ttl: t.granted_ttl,
            keys: t.keys,
        }))
    }

    async fn lease_leases(
        &self,
        _request: GrpcRequest<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        let (answer, term) = self.read(KvRead::LeaseLeases, true).await?;
        let KvReadResponse::LeaseLeases(l) = answer else {
            return Err(unexpected("lease listing"));
        };
        Ok(Response::new(pb::LeaseLeasesResponse {
            header: Some(self.header(l.revision, term)),
            leases: l
                .leases
                .into_iter()
                .map(|id| pb::LeaseStatus { id })
                .collect(),
        }))
    }
}

impl Services {
    /// One renewal of lease `id`, as a keep-alive stream answers it (for gRPC and the JSON
    /// gateway); an error ends the stream. The leader renews without a log write (a follower
    /// asks it), as etcd's `LeaseRenew` does.
    pub(crate) async fn renew_lease(&self, id: i64) -> Result<pb::LeaseKeepAliveResponse, Status> {
        let renewed = self
            .ask(|reply| Request::LeaseKeepAlive { id, reply })
            .await?
            .map_err(|e| e.status())?;
        // etcd answers a renewal of an unknown or expired lease with TTL 0, not an error: the
        // client then knows its lease is gone.
        Ok(pb::LeaseKeepAliveResponse {
            header: Some(self.header(renewed.revision, renewed.term)),
            id,
            ttl: renewed.ttl.unwrap_or(0),
        })
    }
}
