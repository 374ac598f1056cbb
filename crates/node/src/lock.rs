//! etcd's Lock service: a mutex held by a key, served by running etcd's mutex recipe in the
//! member (see `recipe.rs`).

use crate::recipe::contenders;
use crate::service::Services;
use etcd_proto::etcdserverpb as pb;
use etcd_proto::v3lockpb as lockpb;
use pb::kv_server::Kv as _;
use tonic::{Request as GrpcRequest, Response, Status};

#[tonic::async_trait]
impl lockpb::lock_server::Lock for Services {
    async fn lock(
        &self,
        request: GrpcRequest<lockpb::LockRequest>,
    ) -> Result<Response<lockpb::LockResponse>, Status> {
        let metadata = request.metadata().clone();
        crate::auth::as_sender(&metadata, async move {
            let r = request.into_inner();
            let _waiting = self.waiter()?;
            let lease = self.session_lease(r.lease).await?;
            let (claim, abandon) = self.claim(&r.name, lease, b"").await?;
            let oldest = claim.first.as_ref().map(|oldest| oldest.create_revision);
            let holds_already = kv::recipe::holds_at_claim(claim.rev, oldest);
            let header = if holds_already {
                claim.header
            } else {
                let header = self
                    .wait_deletes(&contenders(&r.name), claim.rev - 1)
                    .await?;
                // The lease may have ended while the older holders went: then the key is gone
                // and so is the lock (etcd 3.5 checks this too).
                if !self.still_created_at(&claim.key, claim.rev).await? {
                    return Err(Status::unknown("mutex: session is expired"));
                }
                header
            };
            abandon.keep();
            Ok(Response::new(lockpb::LockResponse {
                header,
                key: claim.key,
            }))
        })
        .await
    }

    async fn unlock(
        &self,
        request: GrpcRequest<lockpb::UnlockRequest>,
    ) -> Result<Response<lockpb::UnlockResponse>, Status> {
        let metadata = request.metadata().clone();
        crate::auth::as_sender(&metadata, async move {
            let key = request.into_inner().key;
            let delete = pb::DeleteRangeRequest {
                key,
                ..pb::DeleteRangeRequest::default()
            };
            let answer = self
                .delete_range(GrpcRequest::new(delete))
                .await?
                .into_inner();
            Ok(Response::new(lockpb::UnlockResponse {
                header: answer.header,
            }))
        })
        .await
    }
}
