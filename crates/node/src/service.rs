//! etcd's v3 gRPC services over the driver: each handler checks the request, converts it to
//! the key-value crate's types, hands it to the core task and converts the answer back.

use crate::config::Peer;
use crate::convert;
use crate::core::{ClusterChange, MemberEntry, Request, Status as CoreStatus};
use crate::error::NodeError;
use etcd_proto::etcdserverpb as pb;
use kv::{KvCommand, KvRead, KvReadResponse, KvResponse};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tonic::{Request as GrpcRequest, Response, Status};

/// The etcd version reported by `Maintenance.Status` and `/version`: clients gate features on
/// it, so it names the release whose client-visible behaviour Synod follows. 3.4.31 is the
/// first 3.4 release kube-apiserver trusts with `RequestProgress` (its answer synchronised
/// with the stream, etcd issue 15220); it also serves a watch from the compaction revision and
/// sends interval progress to watchers that never had an event, as Synod does. ARCHITECTURE.md
/// ("Which etcd") lists what that covers.
pub const ETCD_VERSION: &str = "3.4.31";

/// What every service handler shares.
pub struct Shared {
    /// To the core task (bounded: a full queue is "too many requests").
    pub tx: mpsc::Sender<Request>,
    /// This cluster.
    pub cluster_id: u64,
    /// This member.
    pub member_id: u64,
    /// Every member of the cluster.
    pub members: Vec<Peer>,
    /// `--max-request-bytes`.
    pub request_bytes_max: usize,
    /// The shortest lease TTL granted, in seconds: a lease must outlive an election (etcd
    /// raises shorter requests to 1.5 election timeouts, as here).
    pub lease_ttl_min: i64,
    /// What the Watch service needs.
    pub watch: crate::watch::WatchParts,
    /// bcrypt's cost for passwords hashed here (`--bcrypt-cost`).
    pub bcrypt_cost: u32,
    /// The tokens this member hands out and accepts (`--auth-token`, `--auth-token-ttl`).
    pub tokens: Arc<crate::tokens::Tokens>,
}

/// The KV, Maintenance and Cluster services, cheap to clone.
#[derive(Clone)]
pub struct Services {
    shared: Arc<Shared>,
    /// Lock, Campaign and Observe calls that may wait long, at most
    /// [`crate::recipe::WAITERS_MAX`] at a time: each one reads the store whenever this
    /// member applies a command.
    waiters: Arc<tokio::sync::Semaphore>,
}

impl Services {
    /// Services over `shared`.
    pub fn new(shared: Shared) -> Services {
        Services {
            shared: Arc::new(shared),
            waiters: Arc::new(tokio::sync::Semaphore::new(crate::recipe::WAITERS_MAX)),
        }
    }

    /// Room for one more waiting Lock, Campaign or Observe call, held until it ends.
    pub(crate) fn waiter(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        self.waiters.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "synod: {} lock, campaign and observe calls already wait on this member; \
                 retry later or through another member",
                crate::recipe::WAITERS_MAX
            ))
        })
    }

    /// The Watch service's parts.
    pub(crate) fn watch_parts(&self) -> crate::watch::WatchParts {
        self.shared.watch.clone()
    }

    /// The largest message a client is sent in one piece when it asked for fragments
    /// (etcd's `MaxRequestBytes + grpcOverheadBytes`).
    pub(crate) fn fragment_bytes_max(&self) -> usize {
        self.shared.request_bytes_max + crate::server::GRPC_OVERHEAD_BYTES
    }

    /// The shortest lease TTL granted, in seconds.
    pub(crate) fn lease_ttl_min(&self) -> i64 {
        self.shared.lease_ttl_min
    }

    /// bcrypt's cost for passwords hashed here.
    pub(crate) fn bcrypt_cost(&self) -> u32 {
        self.shared.bcrypt_cost
    }

    /// The tokens this member hands out and accepts.
    pub(crate) fn tokens(&self) -> &crate::tokens::Tokens {
        &self.shared.tokens
    }

    /// The queue to the core task.
    pub(crate) fn core(&self) -> &mpsc::Sender<Request> {
        &self.shared.tx
    }

    pub(crate) fn header(&self, revision: i64, term: u64) -> pb::ResponseHeader {
        pb::ResponseHeader {
            cluster_id: self.shared.cluster_id,
            member_id: self.shared.member_id,
            revision,
            raft_term: term,
        }
    }

    fn check_size(&self, m: &impl prost::Message) -> Result<(), Status> {
        if m.encoded_len() > self.shared.request_bytes_max {
            return Err(NodeError::RequestTooLarge.status());
        }
        Ok(())
    }

    pub(crate) async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Request,
    ) -> Result<T, Status> {
        let (reply, rx) = oneshot::channel();
        self.shared.tx.try_send(make(reply)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => NodeError::TooManyRequests.status(),
            mpsc::error::TrySendError::Closed(_) => NodeError::Stopped.status(),
        })?;
        rx.await.map_err(|_| NodeError::Stopped.status())
    }

    /// Proposes a command of the member's own (no sender: no permission check).
    pub(crate) async fn write(&self, cmd: &KvCommand) -> Result<(KvResponse, u64), Status> {
        self.propose(kv::encode(cmd), cmd, None).await
    }

    /// Proposes a client's command with its sender, for every replica to check at apply.
    pub(crate) async fn write_as(
        &self,
        caller: &kv::Caller,
        cmd: &KvCommand,
    ) -> Result<(KvResponse, u64), Status> {
        self.propose(kv::encode_as(caller, cmd), cmd, None).await
    }

    /// As [`Services::write_as`], with the client's span (`crate::otel::client_context` of
    /// its request's metadata) as the parent of the write's span.
    pub(crate) async fn write_as_traced(
        &self,
        caller: &kv::Caller,
        cmd: &KvCommand,
        parent: Option<opentelemetry::Context>,
    ) -> Result<(KvResponse, u64), Status> {
        self.propose(kv::encode_as(caller, cmd), cmd, parent).await
    }

    async fn propose(
        &self,
        payload: Vec<u8>,
        cmd: &KvCommand,
        parent: Option<opentelemetry::Context>,
    ) -> Result<(KvResponse, u64), Status> {
        let grows = matches!(cmd, KvCommand::Put(_) | KvCommand::Txn(_));
        let span = crate::otel::write_span(cmd, parent);
        let trace = crate::otel::context_of(&span);
        let (output, term) = tracing::Instrument::instrument(
            self.ask(|reply| Request::Write {
                payload,
                grows,
                trace,
                reply,
            }),
            span,
        )
        .await?
        .map_err(|e| e.status())?;
        let response = output.map_err(|e| convert::status_from_kv_error(&e))?;
        Ok((response, term))
    }

    /// Serves a client's read, checked against its sender's permissions when served.
    pub(crate) async fn read_as(
        &self,
        caller: &kv::Caller,
        read: KvRead,
        linearizable: bool,
    ) -> Result<(KvReadResponse, u64), Status> {
        let read = KvRead::As {
            caller: caller.clone(),
            read: Box::new(read),
        };
        self.read(read, linearizable).await
    }

    /// Serves a read of the member's own (no sender: no permission check).
    pub(crate) async fn read(
        &self,
        read: KvRead,
        linearizable: bool,
    ) -> Result<(KvReadResponse, u64), Status> {
        let (answer, term) = self
            .ask(|reply| Request::Read {
                read,
                linearizable,
                reply,
            })
            .await?
            .map_err(|e| e.status())?
            .serve()
            .await
            .map_err(|e| e.status())?;
        let response = answer.map_err(|e| convert::status_from_kv_error(&e))?;
        Ok((response, term))
    }

    pub(crate) async fn status(&self) -> Result<CoreStatus, Status> {
        self.ask(|reply| Request::Status { reply }).await
    }

    /// The leader this member knows of, 0 for none.
    pub(crate) async fn leader(&self) -> Result<u64, Status> {
        Ok(self.status().await?.leader)
    }

    /// Asks the core for something that answers only success or an error, and on success
    /// gives the header of the member's state then.
    async fn done(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), NodeError>>) -> Request,
    ) -> Result<pb::ResponseHeader, Status> {
        self.ask(make).await?.map_err(|e| e.status())?;
        let s = self.status().await?;
        Ok(self.header(s.revision, s.term))
    }

    /// The member's state as the core reports it (leader, revision...).
    /// This member's id.
    pub(crate) fn member_id(&self) -> u64 {
        self.shared.member_id
    }

    pub(crate) async fn core_status(&self) -> Result<CoreStatus, Status> {
        self.status().await
    }
}

/// Bytes of a backup per `Maintenance.Snapshot` message (etcd sends 32 KiB; any client's
/// message limit is far above this).
const BACKUP_CHUNK_BYTES: usize = 64 << 10;

pub(crate) fn unexpected(what: &str) -> Status {
    Status::internal(format!(
        "synod: the store answered a {what} with another kind of response"
    ))
}

#[tonic::async_trait]
impl pb::kv_server::Kv for Services {
    async fn range(
        &self,
        request: GrpcRequest<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let caller = self.caller(&request, false).await?;
        let r = request.into_inner();
        self.check_size(&r)?;
        let linearizable = !r.serializable;
        let range = convert::range_request(r)?;
        let (answer, term) = self
            .read_as(&caller, KvRead::Range(range), linearizable)
            .await?;
        let KvReadResponse::Range(r) = answer else {
            return Err(unexpected("range"));
        };
        let header = self.header(r.revision, term);
        Ok(Response::new(convert::range_response(r, header)))
    }

    async fn put(
        &self,
        request: GrpcRequest<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let caller = self.caller(&request, false).await?;
        let parent = crate::otel::client_context(request.metadata());
        let r = request.into_inner();
        self.check_size(&r)?;
        let cmd = KvCommand::Put(convert::put_request(r)?);
        let (answer, term) = self.write_as_traced(&caller, &cmd, parent).await?;
        let KvResponse::Put(p) = answer else {
            return Err(unexpected("put"));
        };
        let header = self.header(p.revision, term);
        Ok(Response::new(convert::put_response(p, header)))
    }

    async fn delete_range(
        &self,
        request: GrpcRequest<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let caller = self.caller(&request, false).await?;
        let parent = crate::otel::client_context(request.metadata());
        let r = request.into_inner();
        self.check_size(&r)?;
        let cmd = KvCommand::DeleteRange(convert::delete_request(r)?);
        let (answer, term) = self.write_as_traced(&caller, &cmd, parent).await?;
        let KvResponse::DeleteRange(d) = answer else {
            return Err(unexpected("delete"));
        };
        let header = self.header(d.revision, term);
        Ok(Response::new(convert::delete_response(d, header)))
    }

    async fn txn(
        &self,
        request: GrpcRequest<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        let caller = self.caller(&request, false).await?;
        let parent = crate::otel::client_context(request.metadata());
        let r = request.into_inner();
        self.check_size(&r)?;
        let cmd = KvCommand::Txn(convert::txn_request(r)?);
        let (answer, term) = self.write_as_traced(&caller, &cmd, parent).await?;
        let KvResponse::Txn(t) = answer else {
            return Err(unexpected("txn"));
        };
        let header = self.header(t.revision, term);
        Ok(Response::new(convert::txn_response(t, header)))
    }

    async fn compact(
        &self,
        request: GrpcRequest<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        let caller = self.caller(&request, false).await?;
        let parent = crate::otel::client_context(request.metadata());
        let r = request.into_inner();
        self.check_size(&r)?;
        let cmd = KvCommand::Compact(convert::compact_request(r)?);
        let (answer, term) = self.write_as_traced(&caller, &cmd, parent).await?;
        let KvResponse::Compact(c) = answer else {
            return Err(unexpected("compaction"));
        };
        let header = self.header(c.revision, term);
        Ok(Response::new(convert::compact_response(c, header)))
    }
}

#[tonic::async_trait]
impl pb::maintenance_server::Maintenance for Services {
    async fn status(
        &self,
        _request: GrpcRequest<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let s = Services::status(self).await?;
        let mut errors = Vec::new();
        if let Some(e) = &s.storage_error {
            errors.push(format!("synod: storage failed: {e}"));
        }
        errors.extend(
            raised_alarms(&s, self.shared.member_id)
                .iter()
                .map(alarm_text),
        );
        if !s.voting {
            errors.push("synod: rebuilding after a lost disk; not voting yet".to_string());
        }
        let db_size = i64::try_from(s.db_bytes).unwrap_or(i64::MAX);
        Ok(Response::new(pb::StatusResponse {
            header: Some(self.header(s.revision, s.term)),
            version: ETCD_VERSION.to_string(),
            db_size,
            leader: s.leader,
            raft_index: s.chosen_through,
            raft_term: s.term,
            raft_applied_index: s.applied_through,
            errors,
            db_size_in_use: db_size,
            is_learner: s.is_learner,
        }))
    }

    /// etcd 3.4 has no Downgrade RPC (it came with 3.5), so its gRPC server answers as for any
    /// method it does not know; Synod follows 3.4 and answers the same, whatever the action.
    async fn downgrade(
        &self,
        _request: GrpcRequest<pb::DowngradeRequest>,
    ) -> Result<Response<pb::DowngradeResponse>, Status> {
        Err(Status::unimplemented(
            "unknown method Downgrade for service etcdserverpb.Maintenance",
        ))
    }

    /// Snapshots this member's state now and frees the log segments the snapshot covers: what
    /// reclaims disk after a compaction, as etcd's defragment does for its database file.
    async fn defragment(
        &self,
        request: GrpcRequest<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        self.caller(&request, true).await?;
        let header = self.done(|reply| Request::Defragment { reply }).await?;
        Ok(Response::new(pb::DefragmentResponse {
            header: Some(header),
        }))
    }

    /// Hands the lead to another member; only the leader accepts (etcdctl sends it there). The
    /// answer comes once this member sees the new leader lead.
    async fn move_leader(
        &self,
        request: GrpcRequest<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        self.caller(&request, true).await?;
        let target = request.into_inner().target_id;
        let header = self
            .done(|reply| Request::MoveLeader { target, reply })
            .await?;
        Ok(Response::new(pb::MoveLeaderResponse {
            header: Some(header),
        }))
    }

    /// A backup of the state applied here ([`crate::backup`]), what `etcdctl snapshot save`
    /// writes to its file. It is taken once this member has applied everything acknowledged
    /// before the request (a linearizable read first), so it holds every write its caller saw
    /// succeed.
    async fn snapshot(
        &self,
        request: GrpcRequest<pb::SnapshotRequest>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::SnapshotResponse>>, Status> {
        self.caller(&request, true).await?;
        // Any linearizable read is the barrier; one key keeps it O(log n).
        let barrier = KvRead::Range(kv::RangeRequest::single(vec![0]));
        let (_, term) = self.read(barrier, true).await?;
        let backup = self
            .ask(|reply| Request::Backup { reply })
            .await?
            .map_err(|e| e.status())?;
        let header = self.header(backup.revision, term);
        let bytes = backup.bytes;
        let total = bytes.len();
        let chunks = (0..total).step_by(BACKUP_CHUNK_BYTES).map(move |at| {
            let end = (at + BACKUP_CHUNK_BYTES).min(total);
            Ok(pb::SnapshotResponse {
                // etcd's rule: the first message's header fixes the snapshot's point in time.
                header: (at == 0).then_some(header),
                remaining_bytes: (total - end) as u64,
                blob: bytes.slice(at..end).to_vec(),
            })
        });
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }

    /// etcd's `HashByRev`: the CRC-32C of the history through `revision`, entry for entry as
    /// etcd's database holds it (`kv::KvView::hash_by_revision`), so it equals etcd's for the
    /// same history and stays comparable across compactions.
    async fn hash_kv(
        &self,
        request: GrpcRequest<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        self.caller(&request, true).await?;
        let revision = request.get_ref().revision;
        let h = self
            .ask(|reply| Request::HashKv { revision, reply })
            .await?
            .map_err(|e| e.status())?
            .map_err(|e| crate::convert::status_from_kv_error(&e))?;
        let s = Services::status(self).await?;
        Ok(Response::new(pb::HashKvResponse {
            header: Some(self.header(h.revision, s.term)),
            hash: h.hash,
            // -1 before any compaction, as etcd's store says.
            compact_revision: h.compact_revision,
        }))
    }

    async fn alarm(
        &self,
        request: GrpcRequest<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        // etcd: listing alarms needs a user, changing them needs root.
        use pb::alarm_request::AlarmAction as PbAction;
        let listing = request.get_ref().action == PbAction::Get as i32;
        let caller = self.caller(&request, !listing).await?;
        let r = request.into_inner();
        let action = match PbAction::try_from(r.action) {
            Ok(PbAction::Get) => kv::AlarmAction::Get,
            Ok(PbAction::Activate) => kv::AlarmAction::Activate,
            Ok(PbAction::Deactivate) => kv::AlarmAction::Deactivate,
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "synod: unknown alarm action {}",
                    r.action
                )))
            }
        };
        let alarm = kv::AlarmType::from_number(i64::from(r.alarm)).ok_or_else(|| {
            Status::invalid_argument(format!("synod: unknown alarm type {}", r.alarm))
        })?;
        let s = Services::status(self).await?;
        // The measured NOSPACE (the store's size against the quota) is not a flag to clear: a
        // disarm of it succeeds once the size is under the quota, and otherwise says how to
        // get there. One raised by a client is cleared like any alarm, as in etcd.
        let measured = s.no_space.then_some(kv::AlarmMember {
            alarm: kv::AlarmType::NoSpace,
            member_id: self.shared.member_id,
        });
        if action == kv::AlarmAction::Deactivate
            && measured.is_some_and(|m| m.member_id == r.member_id)
            && alarm == kv::AlarmType::NoSpace
        {
            return Err(Status::failed_precondition(format!(
                "synod: the NOSPACE alarm stays raised while the store holds {} bytes, at or over \
                 --quota-backend-bytes: delete keys, compact (etcdctl compact), defragment \
                 (etcdctl defrag) to measure the store again, then disarm",
                s.db_bytes
            )));
        }
        // Through the log, as etcd 3.4 sends every alarm request through raft: a GET is then
        // linearizable, and a change is applied by every member at the same slot.
        let cmd = KvCommand::Alarm(kv::AlarmRequest {
            action,
            member_id: r.member_id,
            alarm,
        });
        let (answer, term) = self.write_as(&caller, &cmd).await?;
        let KvResponse::Alarm(mut a) = answer else {
            return Err(unexpected("alarm"));
        };
        if action == kv::AlarmAction::Get {
            if let Some(m) =
                measured.filter(|_| matches!(alarm, kv::AlarmType::None | kv::AlarmType::NoSpace))
            {
                a.alarms.push(m);
                a.alarms.sort();
                a.alarms.dedup();
            }
        }
        Ok(Response::new(pb::AlarmResponse {
            header: Some(self.header(a.revision, term)),
            alarms: a.alarms.iter().map(pb_alarm).collect(),
        }))
    }
}

fn pb_alarm(m: &kv::AlarmMember) -> pb::AlarmMember {
    pb::AlarmMember {
        member_id: m.member_id,
        alarm: i32::from(m.alarm.number()),
    }
}

/// An alarm as etcd 3.4's `Status` lists it among its errors: the protobuf text form, each
/// field followed by a space, and a field at its default (type NONE) left out.
fn alarm_text(m: &kv::AlarmMember) -> String {
    if m.alarm == kv::AlarmType::None {
        format!("memberID:{} ", m.member_id)
    } else {
        format!("memberID:{} alarm:{} ", m.member_id, m.alarm.name())
    }
}

/// Every alarm raised at this member: those raised through the log, and the measured NOSPACE
/// (under this member's id).
pub(crate) fn raised_alarms(s: &CoreStatus, member_id: u64) -> Vec<kv::AlarmMember> {
    let mut alarms = s.alarms.clone();
    if s.no_space {
        alarms.push(kv::AlarmMember {
            alarm: kv::AlarmType::NoSpace,
            member_id,
        });
        alarms.sort();
        alarms.dedup();
    }
    alarms
}

fn pb_member(m: &MemberEntry) -> pb::Member {
    pb::Member {
        id: m.id,
        name: m.name.clone(),
        peer_ur_ls: m.peer_urls.clone(),
        client_ur_ls: m.client_urls.clone(),
        is_learner: m.is_learner,
    }
}

impl Services {
    /// Asks the core for a change and answers the header and the members after it.
    async fn change(
        &self,
        change: ClusterChange,
    ) -> Result<(pb::ResponseHeader, Vec<MemberEntry>), Status> {
        let members = self
            .ask(|reply| Request::Cluster { change, reply })
            .await?
            .map_err(|e| e.status())?;
        // A leader that removed itself is stopping by now: the change is done, so answer it
        // with what header there is rather than fail it.
        let header = match self.status().await {
            Ok(s) => self.header(s.revision, s.term),
            Err(_) => self.header(0, 0),
        };
        Ok((header, members))
    }
}

/// etcd's Cluster service over the core's reconfiguration (see `member::cluster`). Changes
/// are the leader's: a member that does not lead answers "etcdserver: not leader" (etcdctl
/// does not retry that elsewhere; forwarding to the leader is not done yet).
#[tonic::async_trait]
impl pb::cluster_server::Cluster for Services {
    async fn member_add(
        &self,
        request: GrpcRequest<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        self.caller(&request, true).await?;
        let r = request.into_inner();
        let first = r.peer_ur_ls.first().cloned().unwrap_or_default();
        for url in &r.peer_ur_ls {
            if crate::config::url_addr("--peer-urls", url).is_err() {
                return Err(NodeError::Cluster(member::MemberError::BadUrls).status());
            }
        }
        let id = crate::config::added_member_id(self.shared.cluster_id, &first);
        let change = ClusterChange::Add {
            id,
            peer_urls: r.peer_ur_ls,
            learner: r.is_learner,
        };
        let (header, members) = self.change(change).await?;
        let member = members.iter().find(|m| m.id == id).map(pb_member);
        Ok(Response::new(pb::MemberAddResponse {
            header: Some(header),
            member,
            members: members.iter().map(pb_member).collect(),
        }))
    }

    async fn member_remove(
        &self,
        request: GrpcRequest<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        self.caller(&request, true).await?;
        let id = request.into_inner().id;
        let (header, members) = self.change(ClusterChange::Remove { id }).await?;
        Ok(Response::new(pb::MemberRemoveResponse {
            header: Some(header),
            members: members.iter().map(pb_member).collect(),
        }))
    }

    async fn member_update(
        &self,
        request: GrpcRequest<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        self.caller(&request, true).await?;
        let r = request.into_inner();
        for url in &r.peer_ur_ls {
            if crate::config::url_addr("--peer-urls", url).is_err() {
                return Err(NodeError::Cluster(member::MemberError::BadUrls).status());
            }
        }
        let change = ClusterChange::Update {
            id: r.id,
            peer_urls: r.peer_ur_ls,
        };
        let (header, members) = self.change(change).await?;
        Ok(Response::new(pb::MemberUpdateResponse {
            header: Some(header),
            members: members.iter().map(pb_member).collect(),
        }))
    }

    async fn member_promote(
        &self,
        request: GrpcRequest<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        self.caller(&request, true).await?;
        let id = request.into_inner().id;
        let (header, members) = self.change(ClusterChange::Promote { id }).await?;
        Ok(Response::new(pb::MemberPromoteResponse {
            header: Some(header),
            members: members.iter().map(pb_member).collect(),
        }))
    }

    /// Linearizable (through read-index), whatever the request asks: etcd 3.4 answers from
    /// the member's applied state, which is at most as fresh.
    async fn member_list(
        &self,
        _request: GrpcRequest<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        let members = self
            .ask(|reply| Request::MemberList { reply })
            .await?
            .map_err(|e| e.status())?;
        let s = Services::status(self).await?;
        Ok(Response::new(pb::MemberListResponse {
            header: Some(self.header(s.revision, s.term)),
            members: members.iter().map(pb_member).collect(),
        }))
    }
}
