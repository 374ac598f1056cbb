//! What the Lock and Election services share: etcd's client-side recipes for a mutex and a
//! leader election (clientv3's `concurrency` package), run inside the member.
//!
//! Both queue contenders by the creation revision of one key each, `<name>/<lease in hex>`,
//! attached to the contender's lease: the contender whose key is oldest holds the lock or
//! leads, and a contender waits until every older key is deleted (released, resigned, or its
//! lease ended). Everything goes through this member's own KV service, so the recipes are
//! exactly as safe as a client running them: ownership is a key in the replicated store,
//! never state held here.
//!
//! The recipes' decisions (the contender's key, whether it holds, what it waits for) are
//! `kv::recipe`'s, which the member simulator's lock clients take too; this module does the
//! IO: the reads and writes through the KV service, and the waits.

use crate::error::NodeError;
use crate::service::{unexpected, Services};
use etcd_proto::etcdserverpb as pb;
use etcd_proto::mvccpb;
use kv::{KvRead, KvReadResponse, WatchRead};
use pb::kv_server::Kv as _;
use pb::lease_server::Lease as _;
use tokio::sync::broadcast::error::TryRecvError;
use tonic::{Request as GrpcRequest, Status};

/// Most Lock, Campaign and Observe calls waiting on one member at once.
pub(crate) const WAITERS_MAX: usize = 4096;
/// The TTL, in seconds, of the lease granted for a lock or campaign asked for with lease 0.
/// Nothing renews it: etcd does the same (its recipe's default session TTL).
const SESSION_TTL_DEFAULT: i64 = 60;
/// Bytes of changes one wait-for-delete read may return; it asks for one event only.
const WAIT_READ_BYTES_MAX: usize = 64 * 1024;

/// Which changes a wait is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// A put or a delete.
    Any,
    /// A put.
    Put,
    /// A delete.
    Delete,
}

/// A contender's key after [`Services::claim`].
pub(crate) struct Claim {
    /// `<name>/<lease in hex>`.
    pub(crate) key: Vec<u8>,
    /// Its creation revision: its place in the queue.
    pub(crate) rev: i64,
    /// Its value now (another call with the same lease may have written it first).
    pub(crate) value: Vec<u8>,
    /// The oldest contender's key, if any (the claimant's own among them).
    pub(crate) first: Option<mvccpb::KeyValue>,
    /// The claim's header.
    pub(crate) header: Option<pb::ResponseHeader>,
}

pub(crate) use kv::recipe::contenders;
use kv::recipe::Turn;

/// A range over every key starting with `prefix`, oldest first (`first`) or newest first,
/// of at most one key.
fn top_by_creation(prefix: &[u8], first: bool, max_create_revision: i64) -> pb::RangeRequest {
    let order = if first {
        pb::range_request::SortOrder::Ascend
    } else {
        pb::range_request::SortOrder::Descend
    };
    pb::RangeRequest {
        key: prefix.to_vec(),
        range_end: kv::prefix_end(prefix),
        limit: 1,
        sort_order: order as i32,
        sort_target: pb::range_request::SortTarget::Create as i32,
        max_create_revision,
        ..pb::RangeRequest::default()
    }
}

fn request_op(request: pb::request_op::Request) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(request),
    }
}

fn range_op(range: pb::RangeRequest) -> pb::RequestOp {
    request_op(pb::request_op::Request::RequestRange(range))
}

fn get(key: &[u8]) -> pb::RangeRequest {
    pb::RangeRequest {
        key: key.to_vec(),
        ..pb::RangeRequest::default()
    }
}

/// The guard "`key` was created at revision `rev`" (0: "`key` does not exist").
pub(crate) fn created_at(key: &[u8], rev: i64) -> pb::Compare {
    pb::Compare {
        result: pb::compare::CompareResult::Equal as i32,
        target: pb::compare::CompareTarget::Create as i32,
        key: key.to_vec(),
        range_end: Vec::new(),
        target_union: Some(pb::compare::TargetUnion::CreateRevision(rev)),
    }
}

/// The keys of a range answer inside a transaction's answer, or none.
fn range_kvs(op: Option<&pb::ResponseOp>) -> &[mvccpb::KeyValue] {
    match op.and_then(|op| op.response.as_ref()) {
        Some(pb::response_op::Response::ResponseRange(r)) => &r.kvs,
        _ => &[],
    }
}

impl Services {
    pub(crate) async fn kv_txn(&self, txn: pb::TxnRequest) -> Result<pb::TxnResponse, Status> {
        Ok(self.txn(GrpcRequest::new(txn)).await?.into_inner())
    }

    pub(crate) async fn kv_range(
        &self,
        range: pb::RangeRequest,
    ) -> Result<pb::RangeResponse, Status> {
        Ok(self.range(GrpcRequest::new(range)).await?.into_inner())
    }

    /// The lease a contender's key is attached to: the caller's, or for lease 0 a new lease
    /// of [`SESSION_TTL_DEFAULT`] seconds that nothing renews, as etcd grants.
    pub(crate) async fn session_lease(&self, lease: i64) -> Result<i64, Status> {
        if lease != 0 {
            return Ok(lease);
        }
        let grant = pb::LeaseGrantRequest {
            ttl: SESSION_TTL_DEFAULT,
            id: 0,
        };
        Ok(self
            .lease_grant(GrpcRequest::new(grant))
            .await?
            .into_inner()
            .id)
    }

    /// Creates `<name>/<lease in hex>` with `value` under `lease` unless it exists, and reads
    /// the oldest contender in the same transaction; answers the claim with its [`Abandon`]
    /// guard, armed.
    ///
    /// The transaction runs on its own task and the guard is made there, as soon as the
    /// answer is in: a call dropped while its claim is in flight (the client gave up or timed
    /// out after the key was chosen but before this member answered) still deletes the key,
    /// instead of leaving it to hold the queue up until its lease ends.
    pub(crate) async fn claim(
        &self,
        name: &[u8],
        lease: i64,
        value: &[u8],
    ) -> Result<(Claim, Abandon), Status> {
        let (answer, asked) = tokio::sync::oneshot::channel();
        let (services, name, value) = (self.clone(), name.to_vec(), value.to_vec());
        let sender = crate::auth::recipe_sender();
        tokio::spawn(crate::auth::with_recipe_sender(sender, async move {
            let claimed = services.claim_txn(&name, lease, &value).await.map(|claim| {
                let abandon = Abandon::new(&services, &claim.key, claim.rev);
                (claim, abandon)
            });
            // A caller gone: dropping the answer drops its guard, which deletes the key.
            drop(answer.send(claimed));
        }));
        asked
            .await
            .map_err(|_| NodeError::Stopped.status())
            .and_then(|claimed| claimed)
    }

    async fn claim_txn(&self, name: &[u8], lease: i64, value: &[u8]) -> Result<Claim, Status> {
        let prefix = contenders(name);
        let key = kv::recipe::contender_key(name, lease);
        let put = pb::PutRequest {
            key: key.clone(),
            value: value.to_vec(),
            lease,
            ..pb::PutRequest::default()
        };
        let oldest = || range_op(top_by_creation(&prefix, true, 0));
        let answer = self
            .kv_txn(pb::TxnRequest {
                compare: vec![created_at(&key, 0)],
                success: vec![
                    request_op(pb::request_op::Request::RequestPut(put)),
                    oldest(),
                ],
                failure: vec![range_op(get(&key)), oldest()],
            })
            .await?;
        let first = range_kvs(answer.responses.get(1)).first().cloned();
        let (rev, value) = if answer.succeeded {
            let rev = answer.header.as_ref().map_or(0, |h| h.revision);
            (rev, value.to_vec())
        } else {
            let Some(mine) = range_kvs(answer.responses.first()).first() else {
                return Err(unexpected("contender's key"));
            };
            (mine.create_revision, mine.value.clone())
        };
        Ok(Claim {
            key,
            rev,
            value,
            first,
            header: answer.header,
        })
    }

    /// Waits until no key under `prefix` created at or before `max_create_revision` remains,
    /// and answers the header of the read that found none.
    pub(crate) async fn wait_deletes(
        &self,
        prefix: &[u8],
        max_create_revision: i64,
    ) -> Result<Option<pb::ResponseHeader>, Status> {
        loop {
            let newest = self
                .kv_range(top_by_creation(prefix, false, max_create_revision))
                .await?;
            let read_at = newest.header.as_ref().map_or(0, |h| h.revision);
            let newest_older = newest.kvs.first().map(|kv| kv.key.as_slice());
            match kv::recipe::turn(newest_older, read_at) {
                Turn::Holds => return Ok(newest.header),
                Turn::WaitForDelete { key, after } => {
                    self.wait_for_change(&key, &[], after, Change::Delete)
                        .await?;
                }
            }
        }
    }

    /// Waits for the first change of the kind `want` to a key in `key..range_end` (etcd's
    /// range forms) after revision `after`, and answers it with the store's revision then, or
    /// `None` when the changes after `after` are compacted away (the caller reads afresh).
    pub(crate) async fn wait_for_change(
        &self,
        key: &[u8],
        range_end: &[u8],
        mut after: i64,
        want: Change,
    ) -> Result<Option<(kv::Event, i64)>, Status> {
        let parts = self.watch_parts();
        let (mut applied, mut stopping) = (parts.applied_revision, parts.stopping);
        let mut shared = parts.applied_changes.subscribe();
        loop {
            if *stopping.borrow() {
                return Err(NodeError::Stopped.status());
            }
            let revision = *applied.borrow_and_update();
            let mut read = WatchRead {
                key: key.to_vec(),
                range_end: range_end.to_vec(),
                after,
                prev_kv: false,
                no_put: want == Change::Delete,
                no_delete: want == Change::Put,
                events_max: 1,
                bytes_max: WAIT_READ_BYTES_MAX,
            };
            // The batches the core shared, as a watcher in step takes them (watch.rs): only
            // one that starts where this wait stands, so no change is skipped. The rest, and
            // whatever this wait fell behind on, the read below covers.
            loop {
                let changes = match shared.try_recv() {
                    Ok(changes) => changes,
                    Err(TryRecvError::Lagged(_)) => continue,
                    Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                };
                if changes.after != read.after {
                    continue;
                }
                if let Some(event) = read.select(&changes.events).into_iter().next() {
                    return Ok(Some((event, changes.through)));
                }
                read.after = changes.through;
            }
            after = read.after;
            if revision > after {
                let (answer, _) = self.read(KvRead::Watch(read), false).await?;
                let KvReadResponse::Watch(changes) = answer else {
                    return Err(unexpected("watch read"));
                };
                if changes.compacted {
                    return Ok(None);
                }
                if let Some(event) = changes.events.into_iter().next() {
                    return Ok(Some((event, changes.revision)));
                }
                debug_assert!(changes.through > after, "a watch read must make progress");
                if changes.through > after {
                    after = changes.through;
                    continue;
                }
            }
            tokio::select! {
                changed = applied.changed() => if changed.is_err() {
                    return Err(NodeError::Stopped.status());
                },
                _ = stopping.changed() => {}
            }
        }
    }

    /// Deletes `key` if it is still the incarnation created at `rev`, and answers the header.
    pub(crate) async fn delete_if_created_at(
        &self,
        key: &[u8],
        rev: i64,
    ) -> Result<Option<pb::ResponseHeader>, Status> {
        let delete = pb::DeleteRangeRequest {
            key: key.to_vec(),
            ..pb::DeleteRangeRequest::default()
        };
        let answer = self
            .kv_txn(pb::TxnRequest {
                compare: vec![created_at(key, rev)],
                success: vec![request_op(pb::request_op::Request::RequestDeleteRange(
                    delete,
                ))],
                failure: Vec::new(),
            })
            .await?;
        Ok(answer.header)
    }

    /// Whether `key` still exists as the incarnation created at `rev`.
    pub(crate) async fn still_created_at(&self, key: &[u8], rev: i64) -> Result<bool, Status> {
        let now = self.kv_range(get(key)).await?;
        let found = now.kvs.first().map(|kv| kv.create_revision);
        Ok(kv::recipe::still_created_at(found, rev))
    }

    /// The oldest contender under `prefix`, with the read's header.
    pub(crate) async fn oldest_contender(
        &self,
        prefix: &[u8],
    ) -> Result<(Option<pb::ResponseHeader>, Option<mvccpb::KeyValue>), Status> {
        let answer = self.kv_range(top_by_creation(prefix, true, 0)).await?;
        Ok((answer.header, answer.kvs.into_iter().next()))
    }
}

/// Deletes a contender's key if the call that claimed it ends before it succeeds: the client
/// gave up (its call was dropped) or the wait failed. etcd's recipes do the same, so an
/// abandoned contender does not hold up the queue until its lease ends.
pub(crate) struct Abandon {
    services: Services,
    key: Vec<u8>,
    rev: i64,
    armed: bool,
    /// Whom the recipe acts for: the delete is theirs too.
    sender: crate::auth::Credential,
}

impl Abandon {
    pub(crate) fn new(services: &Services, key: &[u8], rev: i64) -> Abandon {
        Abandon {
            services: services.clone(),
            key: key.to_vec(),
            rev,
            armed: true,
            sender: crate::auth::recipe_sender(),
        }
    }

    /// The call succeeded: the key stays.
    pub(crate) fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for Abandon {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime: the member is shutting down, and the lease will end the key.
            return;
        };
        let (services, key, rev) = (
            self.services.clone(),
            std::mem::take(&mut self.key),
            self.rev,
        );
        let sender = std::mem::take(&mut self.sender);
        runtime.spawn(crate::auth::with_recipe_sender(sender, async move {
            if let Err(e) = services.delete_if_created_at(&key, rev).await {
                tracing::debug!(error = %e, "abandoned contender's key left to its lease");
            }
        }));
    }
}
