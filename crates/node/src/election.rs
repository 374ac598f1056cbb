//! etcd's Election service: leadership held by a key, served by running etcd's election
//! recipe in the member (see `recipe.rs`). The leader is the candidate whose key is oldest;
//! its key's value is what it announces.

use crate::error::NodeError;
use crate::recipe::{contenders, created_at, Change};
use crate::service::Services;
use etcd_proto::etcdserverpb as pb;
use etcd_proto::v3electionpb as electionpb;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request as GrpcRequest, Response, Status};

/// Announcements queued for one observer before it waits for its client to read.
const OBSERVE_QUEUE: usize = 16;

/// etcd's answer to a Proclaim or Resign without a leader key.
fn missing_leader() -> Status {
    Status::unknown("\"leader\" field must be provided")
}

fn not_leader() -> Status {
    Status::unknown("election: not leader")
}

impl Services {
    /// Writes `value` at the leader's key if it is still the leadership `leader` names.
    async fn proclaim_as(
        &self,
        leader: &electionpb::LeaderKey,
        value: &[u8],
    ) -> Result<Option<pb::ResponseHeader>, Status> {
        let put = pb::PutRequest {
            key: leader.key.clone(),
            value: value.to_vec(),
            lease: leader.lease,
            ..pb::PutRequest::default()
        };
        let answer = self
            .kv_txn(pb::TxnRequest {
                compare: vec![created_at(&leader.key, leader.rev)],
                success: vec![pb::RequestOp {
                    request: Some(pb::request_op::Request::RequestPut(put)),
                }],
                failure: Vec::new(),
            })
            .await?;
        if !answer.succeeded {
            return Err(not_leader());
        }
        Ok(answer.header)
    }
}

#[tonic::async_trait]
impl electionpb::election_server::Election for Services {
    async fn campaign(
        &self,
        request: GrpcRequest<electionpb::CampaignRequest>,
    ) -> Result<Response<electionpb::CampaignResponse>, Status> {
        let metadata = request.metadata().clone();
        crate::auth::as_sender(&metadata, async move {
            let r = request.into_inner();
            let _waiting = self.waiter()?;
            let lease = self.session_lease(r.lease).await?;
            let (claim, abandon) = self.claim(&r.name, lease, &r.value).await?;
            let leader = electionpb::LeaderKey {
                name: r.name,
                key: claim.key.clone(),
                rev: claim.rev,
                lease,
            };
            // A candidate campaigning again with the same lease keeps its place in the queue but
            // announces its new value.
            if claim.value != r.value {
                self.proclaim_as(&leader, &r.value).await?;
            }
            self.wait_deletes(&contenders(&leader.name), claim.rev - 1)
                .await?;
            // The lease may have ended while the older candidates went: then there is no
            // leadership to hand out, and answering with one would make two leaders.
            if !self.still_created_at(&claim.key, claim.rev).await? {
                return Err(Status::unknown("election: session is expired"));
            }
            abandon.keep();
            Ok(Response::new(electionpb::CampaignResponse {
                header: claim.header,
                leader: Some(leader),
            }))
        })
        .await
    }

    async fn proclaim(
        &self,
        request: GrpcRequest<electionpb::ProclaimRequest>,
    ) -> Result<Response<electionpb::ProclaimResponse>, Status> {
        let metadata = request.metadata().clone();
        crate::auth::as_sender(&metadata, async move {
            let r = request.into_inner();
            let leader = r.leader.ok_or_else(missing_leader)?;
            let header = self.proclaim_as(&leader, &r.value).await?;
            Ok(Response::new(electionpb::ProclaimResponse { header }))
        })
        .await
    }

    async fn leader(
        &self,
        request: GrpcRequest<electionpb::LeaderRequest>,
    ) -> Result<Response<electionpb::LeaderResponse>, Status> {
        let metadata = request.metadata().clone();
        crate::auth::as_sender(&metadata, async move {
            let name = request.into_inner().name;
            let (header, oldest) = self.oldest_contender(&contenders(&name)).await?;
            let Some(kv) = oldest else {
                return Err(Status::unknown("election: no leader"));
            };
            Ok(Response::new(electionpb::LeaderResponse {
                header,
                kv: Some(kv),
            }))
        })
        .await
    }

    async fn observe(
        &self,
        request: GrpcRequest<electionpb::LeaderRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<electionpb::LeaderResponse>>, Status> {
        let metadata = request.metadata().clone();
        let prefix = contenders(&request.into_inner().name);
        let waiting = self.waiter()?;
        let (out, rx) = mpsc::channel(OBSERVE_QUEUE);
        let services = self.clone();
        tokio::spawn(async move {
            let _waiting = waiting;
            // The stream ends when the member stops, even while its client is not reading,
            // or the gRPC server's graceful stop would wait for it.
            let mut stopping = services.watch_parts().stopping;
            let observing = crate::auth::as_sender(&metadata, services.observe(&prefix, &out));
            let ended = tokio::select! {
                ended = observing => ended,
                () = out.closed() => return,
                _ = stopping.wait_for(|s| *s) => Err(NodeError::Stopped.status()),
            };
            if let Err(status) = ended {
                // Never wait on a client that does not read: the stop must not hang.
                let _ = out.try_send(Err(status));
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn resign(
        &self,
        request: GrpcRequest<electionpb::ResignRequest>,
    ) -> Result<Response<electionpb::ResignResponse>, Status> {
        let metadata = request.metadata().clone();
        crate::auth::as_sender(&metadata, async move {
            let leader = request.into_inner().leader.ok_or_else(missing_leader)?;
            // A leadership that already ended resigns as a no-op, as in etcd.
            let header = self.delete_if_created_at(&leader.key, leader.rev).await?;
            Ok(Response::new(electionpb::ResignResponse { header }))
        })
        .await
    }
}

type Observer = mpsc::Sender<Result<electionpb::LeaderResponse, Status>>;

impl Services {
    /// Sends every announcement of the election whose candidates live under `prefix`: the
    /// leader's value, each new value it proclaims, then the next leader's once its key goes.
    /// Ends only with an error (the member stops) or when the observer hangs up.
    async fn observe(&self, prefix: &[u8], out: &Observer) -> Result<(), Status> {
        loop {
            let (header, oldest) = self.oldest_contender(prefix).await?;
            let read_at = header.as_ref().map_or(0, |h| h.revision);
            let (mut kv, mut revision) = match oldest {
                Some(kv) => (kv, read_at),
                // No candidate: the first one to appear leads.
                None => {
                    let end = kv::prefix_end(prefix);
                    match self
                        .wait_for_change(prefix, &end, read_at, Change::Put)
                        .await?
                    {
                        Some((event, now)) => (crate::convert::key_value(event.kv), now),
                        // Compacted past: look again.
                        None => continue,
                    }
                }
            };
            loop {
                let header =
                    Some(self.header(revision, header.as_ref().map_or(0, |h| h.raft_term)));
                let announcement = electionpb::LeaderResponse {
                    header,
                    kv: Some(kv.clone()),
                };
                if out.send(Ok(announcement)).await.is_err() {
                    return Ok(());
                }
                match self
                    .wait_for_change(&kv.key, &[], revision, Change::Any)
                    .await?
                {
                    Some((event, now)) if event.kind == kv::EventKind::Put => {
                        kv = crate::convert::key_value(event.kv);
                        revision = now.max(kv.mod_revision);
                    }
                    // Deleted (resigned, or its lease ended), or compacted past: find the
                    // leader afresh.
                    _ => break,
                }
            }
        }
    }
}
