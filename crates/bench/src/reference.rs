//! The reference point for the write path: etcd's KV API served from memory by one
//! process, with no replication, no log and no fsync.
//!
//! `cargo xtask bench-vs-etcd` runs the same load generator against it in the same run as
//! etcd and Synod, so "how far is a replicated put from the cost of gRPC alone" is a figure
//! measured on this machine, not a guess. It is a yardstick, not a product: one mutex over a
//! `BTreeMap` of the newest version of each key (no history, no compaction, no leases), with
//! etcd's answer shapes for what the load generator sends (Put, Range, DeleteRange, and Txn
//! with compares on value, version, create and mod revisions). It must never be mistaken
//! for a store: nothing survives the process.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use etcd_proto::etcdserverpb::kv_server::{Kv, KvServer};
use etcd_proto::etcdserverpb::{
    compare, request_op, response_op, CompactionRequest, CompactionResponse, Compare,
    DeleteRangeRequest, DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse,
    RequestOp, ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use etcd_proto::mvccpb::KeyValue;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// Operations in one transaction, as etcd's default `--max-txn-ops`.
const TXN_OPS_MAX: usize = 128;
/// Keys one range answers at most, so a careless client cannot make one answer huge.
const RANGE_KEYS_MAX: usize = 10_000;

/// The newest version of every key, and the store's revision.
#[derive(Default)]
struct Store {
    revision: i64,
    keys: BTreeMap<Vec<u8>, KeyValue>,
}

/// The in-memory KV service.
#[derive(Default, Clone)]
pub struct ReferenceKv {
    store: Arc<Mutex<Store>>,
}

impl ReferenceKv {
    fn lock(&self) -> Result<MutexGuard<'_, Store>, Status> {
        self.store
            .lock()
            .map_err(|_| Status::internal("reference store poisoned"))
    }
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        cluster_id: 1,
        member_id: 1,
        revision,
        raft_term: 1,
    })
}

/// The keys `[key, range_end)` as etcd reads them: an empty end is the key alone, `\0` is
/// every key from `key` on.
fn in_range<'a>(
    keys: &'a BTreeMap<Vec<u8>, KeyValue>,
    key: &[u8],
    range_end: &[u8],
) -> Box<dyn Iterator<Item = &'a KeyValue> + 'a> {
    if range_end.is_empty() {
        return Box::new(keys.get(key).into_iter());
    }
    let end = if range_end == [0] {
        Bound::Unbounded
    } else if range_end <= key {
        return Box::new(std::iter::empty());
    } else {
        Bound::Excluded(range_end.to_vec())
    };
    Box::new(
        keys.range((Bound::Included(key.to_vec()), end))
            .map(|(_, v)| v),
    )
}

impl Store {
    fn put(&mut self, req: PutRequest, revision: i64) -> PutResponse {
        let prev = self.keys.get(&req.key);
        let kv = KeyValue {
            key: req.key.clone(),
            create_revision: prev.map_or(revision, |p| p.create_revision),
            mod_revision: revision,
            version: prev.map_or(1, |p| p.version + 1),
            value: req.value,
            lease: req.lease,
        };
        let prev_kv = self.keys.insert(req.key, kv);
        PutResponse {
            header: header(revision),
            prev_kv: if req.prev_kv { prev_kv } else { None },
        }
    }

    fn range(&self, req: &RangeRequest) -> RangeResponse {
        let all = in_range(&self.keys, &req.key, &req.range_end);
        let limit = match usize::try_from(req.limit) {
            Ok(0) | Err(_) => RANGE_KEYS_MAX,
            Ok(n) => n.min(RANGE_KEYS_MAX),
        };
        let mut count = 0i64;
        let mut kvs = Vec::new();
        for kv in all {
            count += 1;
            if !req.count_only && kvs.len() < limit {
                let mut kv = kv.clone();
                if req.keys_only {
                    kv.value.clear();
                }
                kvs.push(kv);
            }
        }
        RangeResponse {
            header: header(self.revision),
            more: count > kvs.len() as i64 && !req.count_only,
            count,
            kvs,
        }
    }

    fn delete(&mut self, req: &DeleteRangeRequest, revision: i64) -> DeleteRangeResponse {
        let doomed: Vec<Vec<u8>> = in_range(&self.keys, &req.key, &req.range_end)
            .map(|kv| kv.key.clone())
            .collect();
        let mut prev_kvs = Vec::new();
        for key in &doomed {
            if let Some(kv) = self.keys.remove(key) {
                if req.prev_kv {
                    prev_kvs.push(kv);
                }
            }
        }
        DeleteRangeResponse {
            header: header(revision),
            deleted: doomed.len() as i64,
            prev_kvs,
        }
    }

    fn holds(&self, cmp: &Compare) -> bool {
        use compare::{CompareResult as R, TargetUnion as T};
        let kv = self.keys.get(&cmp.key);
        let ord = match &cmp.target_union {
            Some(T::Version(v)) => kv.map_or(0, |k| k.version).cmp(v),
            Some(T::CreateRevision(v)) => kv.map_or(0, |k| k.create_revision).cmp(v),
            Some(T::ModRevision(v)) => kv.map_or(0, |k| k.mod_revision).cmp(v),
            // etcd: a value compare on a missing key is false.
            Some(T::Value(v)) => match kv {
                Some(k) => k.value.as_slice().cmp(v.as_slice()),
                None => return false,
            },
            Some(T::Lease(v)) => kv.map_or(0, |k| k.lease).cmp(v),
            None => return false,
        };
        match R::try_from(cmp.result) {
            Ok(R::Equal) => ord.is_eq(),
            Ok(R::Greater) => ord.is_gt(),
            Ok(R::Less) => ord.is_lt(),
            Ok(R::NotEqual) => ord.is_ne(),
            Err(_) => false,
        }
    }

    /// Runs one transaction's operations under the lock already held; writes share one
    /// revision, as in etcd.
    fn txn(&mut self, req: TxnRequest) -> Result<TxnResponse, Status> {
        let succeeded = req.compare.iter().all(|c| self.holds(c));
        let ops = if succeeded { req.success } else { req.failure };
        let writes = ops.iter().any(|op| {
            matches!(
                op.request,
                Some(request_op::Request::RequestPut(_))
                    | Some(request_op::Request::RequestDeleteRange(_))
            )
        });
        let revision = if writes {
            self.revision + 1
        } else {
            self.revision
        };
        let mut responses = Vec::with_capacity(ops.len());
        for RequestOp { request } in ops {
            let response = match request {
                Some(request_op::Request::RequestPut(put)) => {
                    response_op::Response::ResponsePut(self.put(put, revision))
                }
                Some(request_op::Request::RequestRange(range)) => {
                    response_op::Response::ResponseRange(self.range(&range))
                }
                Some(request_op::Request::RequestDeleteRange(del)) => {
                    response_op::Response::ResponseDeleteRange(self.delete(&del, revision))
                }
                Some(request_op::Request::RequestTxn(_)) | None => {
                    return Err(Status::unimplemented(
                        "the reference server runs flat transactions only",
                    ))
                }
            };
            responses.push(ResponseOp {
                response: Some(response),
            });
        }
        self.revision = revision;
        Ok(TxnResponse {
            header: header(revision),
            succeeded,
            responses,
        })
    }
}

#[tonic::async_trait]
impl Kv for ReferenceKv {
    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let req = req.into_inner();
        if req.key.is_empty() {
            return Err(Status::invalid_argument("etcdserver: key is not provided"));
        }
        let mut store = self.lock()?;
        store.revision += 1;
        let revision = store.revision;
        Ok(Response::new(store.put(req, revision)))
    }

    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        let req = req.into_inner();
        Ok(Response::new(self.lock()?.range(&req)))
    }

    async fn delete_range(
        &self,
        req: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        let req = req.into_inner();
        let mut store = self.lock()?;
        let revision = store.revision + 1;
        let mut answer = store.delete(&req, revision);
        if answer.deleted > 0 {
            store.revision = revision;
        } else {
            // Nothing deleted: etcd does not advance the revision.
            answer.header = header(store.revision);
        }
        Ok(Response::new(answer))
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        let req = req.into_inner();
        if req.success.len().max(req.failure.len()) > TXN_OPS_MAX {
            return Err(Status::invalid_argument(
                "etcdserver: too many operations in txn request",
            ));
        }
        Ok(Response::new(self.lock()?.txn(req)?))
    }

    async fn compact(
        &self,
        _req: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        // Only the newest version is kept: there is nothing to compact.
        Ok(Response::new(CompactionResponse {
            header: header(self.lock()?.revision),
        }))
    }
}

/// Serves the reference KV API on `listener` until the process ends or the server fails.
pub async fn serve(listener: tokio::net::TcpListener) -> Result<(), tonic::transport::Error> {
    tonic::transport::Server::builder()
        .add_service(KvServer::new(ReferenceKv::default()))
        // No Nagle delay, as tonic's own `serve` and etcd set: without it a range's answer
        // waited out the client's delayed ACK (44 ms per get at 1 client).
        .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
        .await
}
