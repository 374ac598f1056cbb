//! Conversions between etcd's protobuf messages ([`etcd_proto`]) and the key-value store's own
//! types ([`kv`]), and the mapping of the store's refusals to the gRPC statuses etcd sends.
//!
//! The store never sees a wire type (see ARCHITECTURE.md), so every request crosses this
//! module on the way in and every answer on the way out. Requests are refused here only for
//! what the store's types cannot represent (an enum number etcd does not define, an empty
//! `RequestOp`, nesting deeper than the store accepts); every other check (empty keys, sizes,
//! operation counts, duplicate keys) is the store's, so that it holds for proposals from any
//! source.

use etcd_proto::etcdserverpb::{
    self as pb, compare::CompareResult as PbCompareResult,
    compare::CompareTarget as PbCompareTarget, compare::TargetUnion,
    range_request::SortOrder as PbSortOrder, range_request::SortTarget as PbSortTarget,
    request_op::Request, response_op::Response, ResponseHeader,
};
use etcd_proto::mvccpb;
use kv::KvError;
use tonic::{Code, Status};

/// etcd's exact text for an unknown sort order or target (`ErrGRPCInvalidSortOption`); Go
/// clients map the status back to `rpctypes.ErrInvalidSortOption` by this string, so it is
/// kept verbatim instead of naming the field.
const INVALID_SORT_OPTION: &str = "etcdserver: invalid sort option";

/// A range request. `serializable` has no counterpart in [`kv::RangeRequest`]: it decides
/// how the node serves the read (local applied state or read-index), not what the store
/// reads, so the caller must look at `pb.serializable` before handing `pb` over.
pub fn range_request(pb: pb::RangeRequest) -> Result<kv::RangeRequest, Status> {
    Ok(kv::RangeRequest {
        sort_order: sort_order(pb.sort_order)?,
        sort_target: sort_target(pb.sort_target)?,
        key: pb.key,
        range_end: pb.range_end,
        limit: pb.limit,
        revision: pb.revision,
        keys_only: pb.keys_only,
        count_only: pb.count_only,
        min_mod_revision: pb.min_mod_revision,
        max_mod_revision: pb.max_mod_revision,
        min_create_revision: pb.min_create_revision,
        max_create_revision: pb.max_create_revision,
    })
}

/// A put request. Infallible today, but returns a `Result` like its siblings so that a check
/// added later does not change every caller.
pub fn put_request(pb: pb::PutRequest) -> Result<kv::PutRequest, Status> {
    Ok(kv::PutRequest {
        key: pb.key,
        value: pb.value,
        lease: pb.lease,
        prev_kv: pb.prev_kv,
        ignore_value: pb.ignore_value,
        ignore_lease: pb.ignore_lease,
    })
}

/// A delete request. A `Result` for the same reason as [`put_request`].
pub fn delete_request(pb: pb::DeleteRangeRequest) -> Result<kv::DeleteRangeRequest, Status> {
    Ok(kv::DeleteRangeRequest {
        key: pb.key,
        range_end: pb.range_end,
        prev_kv: pb.prev_kv,
    })
}

/// A transaction, nested ones included. Nesting deeper than [`kv::TXN_DEPTH_MAX`] is refused
/// with the store's own [`KvError::TxnTooDeep`] before recursing further, so that a hostile
/// request cannot drive the recursion (and the stack) without bound.
pub fn txn_request(pb: pb::TxnRequest) -> Result<kv::TxnRequest, Status> {
    txn_request_at(pb, 1)
}

/// A compaction. `physical` has no counterpart in [`kv::CompactRequest`]: whether the answer
/// waits for the compaction to reach storage is the node's decision, so the caller must look
/// at `pb.physical` itself.
pub fn compact_request(pb: pb::CompactionRequest) -> Result<kv::CompactRequest, Status> {
    Ok(kv::CompactRequest {
        revision: pb.revision,
    })
}

/// `depth` is this transaction's nesting level, 1 for the outermost, counted as the store
/// counts it so that whatever converts is also within the store's bound.
fn txn_request_at(pb: pb::TxnRequest, depth: usize) -> Result<kv::TxnRequest, Status> {
    if depth > kv::TXN_DEPTH_MAX {
        return Err(status_from_kv_error(&KvError::TxnTooDeep {
            depth_max: kv::TXN_DEPTH_MAX,
        }));
    }
    let compare = pb
        .compare
        .into_iter()
        .map(compare)
        .collect::<Result<Vec<_>, _>>()?;
    let success = request_ops(pb.success, depth)?;
    let failure = request_ops(pb.failure, depth)?;
    Ok(kv::TxnRequest {
        compare,
        success,
        failure,
    })
}

fn request_ops(ops: Vec<pb::RequestOp>, depth: usize) -> Result<Vec<kv::RequestOp>, Status> {
    ops.into_iter().map(|op| request_op(op, depth)).collect()
}

/// `depth` is the level of the transaction holding `op`.
fn request_op(op: pb::RequestOp, depth: usize) -> Result<kv::RequestOp, Status> {
    match op.request {
        Some(Request::RequestRange(r)) => range_request(r).map(kv::RequestOp::Range),
        Some(Request::RequestPut(p)) => put_request(p).map(kv::RequestOp::Put),
        Some(Request::RequestDeleteRange(d)) => delete_request(d).map(kv::RequestOp::DeleteRange),
        Some(Request::RequestTxn(t)) => txn_request_at(t, depth + 1).map(kv::RequestOp::Txn),
        // etcd's checkRequestOp answers an empty operation with ErrGRPCKeyNotFound; clients
        // may match on it, so the same status is sent here.
        None => Err(status_from_kv_error(&KvError::KeyNotFound)),
    }
}

fn compare(pb: pb::Compare) -> Result<kv::Compare, Status> {
    let target = PbCompareTarget::try_from(pb.target).map_err(|_| {
        Status::invalid_argument(format!("synod: unknown Compare.target value {}", pb.target))
    })?;
    let result = match PbCompareResult::try_from(pb.result) {
        Ok(PbCompareResult::Equal) => kv::CompareResult::Equal,
        Ok(PbCompareResult::Greater) => kv::CompareResult::Greater,
        Ok(PbCompareResult::Less) => kv::CompareResult::Less,
        Ok(PbCompareResult::NotEqual) => kv::CompareResult::NotEqual,
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "synod: unknown Compare.result value {}",
                pb.result
            )))
        }
    };
    // `target` decides what is compared; the operand comes from `target_union` only when
    // the union holds that same member. Otherwise the operand is the zero value, which is
    // what etcd's compareKV does (absent or mismatched union compares against 0 or empty),
    // so a client relying on proto3 defaults behaves here as it does against etcd.
    let u = pb.target_union;
    let target = match target {
        PbCompareTarget::Value => kv::CompareTarget::Value(match u {
            Some(TargetUnion::Value(v)) => v,
            _ => Vec::new(),
        }),
        PbCompareTarget::Version => kv::CompareTarget::Version(match u {
            Some(TargetUnion::Version(v)) => v,
            _ => 0,
        }),
        PbCompareTarget::Create => kv::CompareTarget::Create(match u {
            Some(TargetUnion::CreateRevision(v)) => v,
            _ => 0,
        }),
        PbCompareTarget::Mod => kv::CompareTarget::Mod(match u {
            Some(TargetUnion::ModRevision(v)) => v,
            _ => 0,
        }),
        PbCompareTarget::Lease => kv::CompareTarget::Lease(match u {
            Some(TargetUnion::Lease(v)) => v,
            _ => 0,
        }),
    };
    Ok(kv::Compare {
        key: pb.key,
        range_end: pb.range_end,
        target,
        result,
    })
}

fn sort_order(v: i32) -> Result<kv::SortOrder, Status> {
    match PbSortOrder::try_from(v) {
        Ok(PbSortOrder::None) => Ok(kv::SortOrder::None),
        Ok(PbSortOrder::Ascend) => Ok(kv::SortOrder::Ascend),
        Ok(PbSortOrder::Descend) => Ok(kv::SortOrder::Descend),
        Err(_) => Err(Status::invalid_argument(INVALID_SORT_OPTION)),
    }
}

fn sort_target(v: i32) -> Result<kv::SortTarget, Status> {
    match PbSortTarget::try_from(v) {
        Ok(PbSortTarget::Key) => Ok(kv::SortTarget::Key),
        Ok(PbSortTarget::Version) => Ok(kv::SortTarget::Version),
        Ok(PbSortTarget::Create) => Ok(kv::SortTarget::Create),
        Ok(PbSortTarget::Mod) => Ok(kv::SortTarget::Mod),
        Ok(PbSortTarget::Value) => Ok(kv::SortTarget::Value),
        Err(_) => Err(Status::invalid_argument(INVALID_SORT_OPTION)),
    }
}

/// One version of a key.
pub fn key_value(kv: kv::KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

fn key_values(kvs: Vec<kv::KeyValue>) -> Vec<mvccpb::KeyValue> {
    kvs.into_iter().map(key_value).collect()
}

/// A range's answer, with `header` as the caller filled it.
pub fn range_response(r: kv::RangeResponse, header: ResponseHeader) -> pb::RangeResponse {
    pb::RangeResponse {
        header: Some(header),
        kvs: key_values(r.kvs),
        more: r.more,
        count: r.count,
    }
}

/// A put's answer, with `header` as the caller filled it.
pub fn put_response(r: kv::PutResponse, header: ResponseHeader) -> pb::PutResponse {
    pb::PutResponse {
        header: Some(header),
        prev_kv: r.prev_kv.map(key_value),
    }
}

/// A delete's answer, with `header` as the caller filled it.
pub fn delete_response(
    r: kv::DeleteRangeResponse,
    header: ResponseHeader,
) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse {
        header: Some(header),
        deleted: r.deleted,
        prev_kvs: key_values(r.prev_kvs),
    }
}

/// A transaction's answer, with `header` as the caller filled it. Each nested answer carries,
/// as in etcd 3.4, a header holding only its own revision (etcd's server fills the outer
/// header alone; cluster id, member id and term stay zero inside, which etcd's JSON gateway
/// shows as an object with `revision` only). The recursion is bounded: the store only answers
/// transactions it accepted, and it refuses nesting deeper than [`kv::TXN_DEPTH_MAX`].
pub fn txn_response(r: kv::TxnResponse, header: ResponseHeader) -> pb::TxnResponse {
    pb::TxnResponse {
        header: Some(header),
        succeeded: r.succeeded,
        responses: r.responses.into_iter().map(response_op).collect(),
    }
}

/// A compaction's answer, with `header` as the caller filled it.
pub fn compact_response(_r: kv::CompactResponse, header: ResponseHeader) -> pb::CompactionResponse {
    // etcd's CompactionResponse is a header only; the store's revision is the caller's to put
    // in it, like every other header field.
    pb::CompactionResponse {
        header: Some(header),
    }
}

/// A nested answer, with a header holding its own revision only.
fn response_op(op: kv::ResponseOp) -> pb::ResponseOp {
    let at = |revision| ResponseHeader {
        revision,
        ..ResponseHeader::default()
    };
    let response = match op {
        kv::ResponseOp::Range(r) => {
            let h = at(r.revision);
            Response::ResponseRange(range_response(r, h))
        }
        kv::ResponseOp::Put(r) => {
            let h = at(r.revision);
            Response::ResponsePut(put_response(r, h))
        }
        kv::ResponseOp::DeleteRange(r) => {
            let h = at(r.revision);
            Response::ResponseDeleteRange(delete_response(r, h))
        }
        kv::ResponseOp::Txn(r) => {
            let h = at(r.revision);
            Response::ResponseTxn(txn_response(r, h))
        }
    };
    pb::ResponseOp {
        response: Some(response),
    }
}

/// The gRPC status etcd's server sends for the refusal `e` (the codes of etcd's
/// `api/v3rpc/rpctypes`). The message is the error's text, which is etcd's own, except that
/// the two `mvcc:` errors get the `etcdserver: ` prefix etcd's gRPC layer puts on them
/// (`ErrGRPCCompacted`, `ErrGRPCFutureRev`): Go clients map a status back to an error by its
/// exact text, and would not recognise the bare `mvcc:` one.
pub fn status_from_kv_error(e: &KvError) -> Status {
    let code = match e {
        KvError::Auth(a) => return status_from_auth_error(a),
        KvError::EmptyKey
        | KvError::KeyNotFound
        | KvError::ValueProvided
        | KvError::LeaseProvided
        | KvError::TooManyOps
        | KvError::DuplicateKey
        | KvError::RequestTooLarge
        // Synod's own bound on a client's request: the request is at fault, as for too many
        // operations.
        | KvError::TxnTooDeep { .. } => Code::InvalidArgument,
        KvError::Compacted | KvError::FutureRevision | KvError::LeaseTtlTooLarge => {
            Code::OutOfRange
        }
        KvError::LeaseNotFound => Code::NotFound,
        KvError::LeaseExists => Code::FailedPrecondition,
        // etcd's ErrGRPCNoSpace and ErrGRPCCorrupt.
        KvError::NoSpace | KvError::TooManyAlarms { .. } => Code::ResourceExhausted,
        KvError::Corrupt => Code::DataLoss,
        // Only a broken or foreign proposer makes an undecodable payload, and a snapshot is
        // never a client's: the fault is the cluster's, not the request's.
        KvError::Decode(_) | KvError::Snapshot(_) => Code::Internal,
    };
    let message = match e {
        KvError::Compacted | KvError::FutureRevision => format!("etcdserver: {e}"),
        _ => e.to_string(),
    };
    Status::new(code, message)
}

/// The gRPC status etcd 3.4's server sends for the auth refusal `e` (`api/v3rpc/rpctypes`:
/// each error's code; the two etcd does not map go out as `Unknown`, as there).
pub fn status_from_auth_error(e: &kv::AuthError) -> Status {
    use kv::AuthError as A;
    let code = match e {
        A::RootUserNotExist
        | A::RootRoleNotExist
        | A::UserAlreadyExist
        | A::UserNotFound
        | A::RoleAlreadyExist
        | A::RoleNotFound
        | A::RoleNotGranted
        | A::PermissionNotGranted
        | A::AuthNotEnabled => Code::FailedPrecondition,
        A::UserEmpty
        | A::RoleEmpty
        | A::AuthFailed
        | A::PermissionNotGiven
        | A::InvalidAuthMgmt
        | A::AuthOldRevision
        | A::BcryptCost { .. } => Code::InvalidArgument,
        A::PermissionDenied => Code::PermissionDenied,
        A::InvalidAuthToken => Code::Unauthenticated,
        A::NoPasswordUser | A::PasswordTooLong => Code::Unknown,
        A::Hashing(_) => Code::Internal,
    };
    Status::new(code, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kv::{DecodeError, SnapshotError};
    use std::borrow::Cow;

    fn header() -> ResponseHeader {
        ResponseHeader {
            cluster_id: 11,
            member_id: 22,
            revision: 33,
            raft_term: 44,
        }
    }

    fn kv_at(key: &str, rev: i64) -> kv::KeyValue {
        kv::KeyValue {
            key: key.into(),
            create_revision: rev,
            mod_revision: rev + 1,
            version: rev + 2,
            value: format!("v{rev}").into_bytes(),
            lease: rev + 3,
        }
    }

    fn pb_op(r: Request) -> pb::RequestOp {
        pb::RequestOp { request: Some(r) }
    }

    /// The inverse of `txn_request`, for round trips: a field the forward conversion dropped
    /// or misplaced would not come back. Test-only, as the node never sends requests.
    fn txn_to_pb(t: &kv::TxnRequest) -> pb::TxnRequest {
        fn op_to_pb(op: &kv::RequestOp) -> pb::RequestOp {
            pb_op(match op {
                kv::RequestOp::Range(r) => Request::RequestRange(pb::RangeRequest {
                    key: r.key.clone(),
                    range_end: r.range_end.clone(),
                    limit: r.limit,
                    revision: r.revision,
                    sort_order: match r.sort_order {
                        kv::SortOrder::None => PbSortOrder::None,
                        kv::SortOrder::Ascend => PbSortOrder::Ascend,
                        kv::SortOrder::Descend => PbSortOrder::Descend,
                    } as i32,
                    sort_target: match r.sort_target {
                        kv::SortTarget::Key => PbSortTarget::Key,
                        kv::SortTarget::Version => PbSortTarget::Version,
                        kv::SortTarget::Create => PbSortTarget::Create,
                        kv::SortTarget::Mod => PbSortTarget::Mod,
                        kv::SortTarget::Value => PbSortTarget::Value,
                    } as i32,
                    serializable: false,
                    keys_only: r.keys_only,
                    count_only: r.count_only,
                    min_mod_revision: r.min_mod_revision,
                    max_mod_revision: r.max_mod_revision,
                    min_create_revision: r.min_create_revision,
                    max_create_revision: r.max_create_revision,
                }),
                kv::RequestOp::Put(p) => Request::RequestPut(pb::PutRequest {
                    key: p.key.clone(),
                    value: p.value.clone(),
                    lease: p.lease,
                    prev_kv: p.prev_kv,
                    ignore_value: p.ignore_value,
                    ignore_lease: p.ignore_lease,
                }),
                kv::RequestOp::DeleteRange(d) => {
                    Request::RequestDeleteRange(pb::DeleteRangeRequest {
                        key: d.key.clone(),
                        range_end: d.range_end.clone(),
                        prev_kv: d.prev_kv,
                    })
                }
                kv::RequestOp::Txn(t) => Request::RequestTxn(txn_to_pb(t)),
            })
        }
        pb::TxnRequest {
            compare: t.compare.iter().map(compare_to_pb).collect(),
            success: t.success.iter().map(op_to_pb).collect(),
            failure: t.failure.iter().map(op_to_pb).collect(),
        }
    }

    fn compare_to_pb(c: &kv::Compare) -> pb::Compare {
        let (target, union) = match &c.target {
            kv::CompareTarget::Value(v) => (PbCompareTarget::Value, TargetUnion::Value(v.clone())),
            kv::CompareTarget::Version(v) => (PbCompareTarget::Version, TargetUnion::Version(*v)),
            kv::CompareTarget::Create(v) => {
                (PbCompareTarget::Create, TargetUnion::CreateRevision(*v))
            }
            kv::CompareTarget::Mod(v) => (PbCompareTarget::Mod, TargetUnion::ModRevision(*v)),
            kv::CompareTarget::Lease(v) => (PbCompareTarget::Lease, TargetUnion::Lease(*v)),
        };
        pb::Compare {
            result: match c.result {
                kv::CompareResult::Equal => PbCompareResult::Equal,
                kv::CompareResult::Greater => PbCompareResult::Greater,
                kv::CompareResult::Less => PbCompareResult::Less,
                kv::CompareResult::NotEqual => PbCompareResult::NotEqual,
            } as i32,
            target: target as i32,
            key: c.key.clone(),
            range_end: c.range_end.clone(),
            target_union: Some(union),
        }
    }

    /// A transaction two levels deep using every operation kind and every field.
    fn nested_kv_txn() -> kv::TxnRequest {
        let inner = kv::TxnRequest {
            compare: vec![kv::Compare {
                key: b"i".to_vec(),
                range_end: b"j".to_vec(),
                target: kv::CompareTarget::Lease(7),
                result: kv::CompareResult::NotEqual,
            }],
            success: vec![kv::RequestOp::DeleteRange(kv::DeleteRangeRequest {
                key: b"d".to_vec(),
                range_end: b"e".to_vec(),
                prev_kv: true,
            })],
            failure: vec![kv::RequestOp::Range(kv::RangeRequest {
                key: b"r".to_vec(),
                range_end: b"s".to_vec(),
                limit: 3,
                revision: 4,
                sort_order: kv::SortOrder::Descend,
                sort_target: kv::SortTarget::Mod,
                keys_only: true,
                count_only: true,
                min_mod_revision: 5,
                max_mod_revision: 6,
                min_create_revision: 7,
                max_create_revision: 8,
            })],
        };
        kv::TxnRequest {
            compare: vec![
                kv::Compare {
                    key: b"a".to_vec(),
                    range_end: Vec::new(),
                    target: kv::CompareTarget::Value(b"x".to_vec()),
                    result: kv::CompareResult::Equal,
                },
                kv::Compare {
                    key: b"b".to_vec(),
                    range_end: vec![0],
                    target: kv::CompareTarget::Mod(9),
                    result: kv::CompareResult::Less,
                },
            ],
            success: vec![
                kv::RequestOp::Put(kv::PutRequest {
                    key: b"p".to_vec(),
                    value: b"q".to_vec(),
                    lease: 12,
                    prev_kv: true,
                    ignore_value: false,
                    ignore_lease: false,
                }),
                kv::RequestOp::Txn(inner),
            ],
            failure: vec![kv::RequestOp::Put(kv::PutRequest {
                key: b"f".to_vec(),
                value: Vec::new(),
                lease: 0,
                prev_kv: false,
                ignore_value: true,
                ignore_lease: true,
            })],
        }
    }

    #[test]
    fn range_request_maps_every_field() {
        let pb = pb::RangeRequest {
            key: b"k".to_vec(),
            range_end: b"z".to_vec(),
            limit: 10,
            revision: 20,
            sort_order: PbSortOrder::Ascend as i32,
            sort_target: PbSortTarget::Create as i32,
            serializable: true,
            keys_only: true,
            count_only: true,
            min_mod_revision: 1,
            max_mod_revision: 2,
            min_create_revision: 3,
            max_create_revision: 4,
        };
        let want = kv::RangeRequest {
            key: b"k".to_vec(),
            range_end: b"z".to_vec(),
            limit: 10,
            revision: 20,
            sort_order: kv::SortOrder::Ascend,
            sort_target: kv::SortTarget::Create,
            keys_only: true,
            count_only: true,
            min_mod_revision: 1,
            max_mod_revision: 2,
            min_create_revision: 3,
            max_create_revision: 4,
        };
        assert_eq!(range_request(pb).ok(), Some(want));
    }

    #[test]
    fn every_sort_order_and_target_maps_to_its_namesake() {
        let orders = [
            (PbSortOrder::None, kv::SortOrder::None),
            (PbSortOrder::Ascend, kv::SortOrder::Ascend),
            (PbSortOrder::Descend, kv::SortOrder::Descend),
        ];
        let targets = [
            (PbSortTarget::Key, kv::SortTarget::Key),
            (PbSortTarget::Version, kv::SortTarget::Version),
            (PbSortTarget::Create, kv::SortTarget::Create),
            (PbSortTarget::Mod, kv::SortTarget::Mod),
            (PbSortTarget::Value, kv::SortTarget::Value),
        ];
        for (pb_order, order) in orders {
            for (pb_target, target) in targets {
                let got = range_request(pb::RangeRequest {
                    key: b"k".to_vec(),
                    sort_order: pb_order as i32,
                    sort_target: pb_target as i32,
                    ..Default::default()
                })
                .map(|r| (r.sort_order, r.sort_target));
                assert_eq!(
                    got.ok(),
                    Some((order, target)),
                    "{pb_order:?} {pb_target:?}"
                );
            }
        }
    }

    #[test]
    fn unknown_sort_options_are_refused_with_etcds_status() {
        for (order, target) in [(3, 0), (-1, 0), (0, 5), (0, i32::MAX)] {
            let err = range_request(pb::RangeRequest {
                key: b"k".to_vec(),
                sort_order: order,
                sort_target: target,
                ..Default::default()
            })
            .err();
            let err = err.map(|s| (s.code(), s.message().to_owned()));
            assert_eq!(
                err,
                Some((Code::InvalidArgument, INVALID_SORT_OPTION.to_owned())),
                "order {order} target {target}"
            );
        }
    }

    #[test]
    fn put_delete_and_compact_requests_map_every_field() {
        let put = put_request(pb::PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            lease: 5,
            prev_kv: true,
            ignore_value: true,
            ignore_lease: true,
        });
        let want = kv::PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            lease: 5,
            prev_kv: true,
            ignore_value: true,
            ignore_lease: true,
        };
        assert_eq!(put.ok(), Some(want));
        // Each flag on its own, so that two swapped flags cannot pass.
        let only_ignore_value = put_request(pb::PutRequest {
            ignore_value: true,
            ..Default::default()
        })
        .map(|p| (p.prev_kv, p.ignore_value, p.ignore_lease));
        assert_eq!(only_ignore_value.ok(), Some((false, true, false)));
        let only_ignore_lease = put_request(pb::PutRequest {
            ignore_lease: true,
            ..Default::default()
        })
        .map(|p| (p.prev_kv, p.ignore_value, p.ignore_lease));
        assert_eq!(only_ignore_lease.ok(), Some((false, false, true)));

        let delete = delete_request(pb::DeleteRangeRequest {
            key: b"a".to_vec(),
            range_end: b"b".to_vec(),
            prev_kv: true,
        });
        assert_eq!(
            delete.ok(),
            Some(kv::DeleteRangeRequest {
                key: b"a".to_vec(),
                range_end: b"b".to_vec(),
                prev_kv: true,
            })
        );

        let compact = compact_request(pb::CompactionRequest {
            revision: 42,
            physical: true,
        });
        assert_eq!(compact.ok(), Some(kv::CompactRequest { revision: 42 }));
    }

    #[test]
    fn every_compare_target_and_result_maps_to_its_namesake() {
        let targets = [
            (
                PbCompareTarget::Value,
                TargetUnion::Value(b"x".to_vec()),
                kv::CompareTarget::Value(b"x".to_vec()),
            ),
            (
                PbCompareTarget::Version,
                TargetUnion::Version(1),
                kv::CompareTarget::Version(1),
            ),
            (
                PbCompareTarget::Create,
                TargetUnion::CreateRevision(2),
                kv::CompareTarget::Create(2),
            ),
            (
                PbCompareTarget::Mod,
                TargetUnion::ModRevision(3),
                kv::CompareTarget::Mod(3),
            ),
            (
                PbCompareTarget::Lease,
                TargetUnion::Lease(4),
                kv::CompareTarget::Lease(4),
            ),
        ];
        let results = [
            (PbCompareResult::Equal, kv::CompareResult::Equal),
            (PbCompareResult::Greater, kv::CompareResult::Greater),
            (PbCompareResult::Less, kv::CompareResult::Less),
            (PbCompareResult::NotEqual, kv::CompareResult::NotEqual),
        ];
        for (pb_target, union, target) in &targets {
            for (pb_result, result) in results {
                let got = compare(pb::Compare {
                    result: pb_result as i32,
                    target: *pb_target as i32,
                    key: b"k".to_vec(),
                    range_end: b"m".to_vec(),
                    target_union: Some(union.clone()),
                });
                let want = kv::Compare {
                    key: b"k".to_vec(),
                    range_end: b"m".to_vec(),
                    target: target.clone(),
                    result,
                };
                assert_eq!(got.ok(), Some(want), "{pb_target:?} {pb_result:?}");
            }
        }
    }

    #[test]
    fn a_compare_without_its_operand_compares_against_zero_as_etcd_does() {
        let cases = [
            (
                PbCompareTarget::Value,
                None,
                kv::CompareTarget::Value(Vec::new()),
            ),
            (
                PbCompareTarget::Version,
                None,
                kv::CompareTarget::Version(0),
            ),
            // A union holding another member than `target` names is ignored, not read.
            (
                PbCompareTarget::Create,
                Some(TargetUnion::ModRevision(9)),
                kv::CompareTarget::Create(0),
            ),
            (
                PbCompareTarget::Mod,
                Some(TargetUnion::Lease(9)),
                kv::CompareTarget::Mod(0),
            ),
            (
                PbCompareTarget::Lease,
                Some(TargetUnion::Value(b"9".to_vec())),
                kv::CompareTarget::Lease(0),
            ),
            (
                PbCompareTarget::Value,
                Some(TargetUnion::Version(9)),
                kv::CompareTarget::Value(Vec::new()),
            ),
        ];
        for (pb_target, union, want) in cases {
            let got = compare(pb::Compare {
                target: pb_target as i32,
                key: b"k".to_vec(),
                target_union: union.clone(),
                ..Default::default()
            })
            .map(|c| c.target);
            assert_eq!(got.ok(), Some(want), "{pb_target:?} {union:?}");
        }
    }

    #[test]
    fn unknown_compare_enums_are_refused_naming_field_and_value() {
        let bad_target = compare(pb::Compare {
            target: 5,
            key: b"k".to_vec(),
            ..Default::default()
        })
        .err()
        .map(|s| (s.code(), s.message().to_owned()));
        assert_eq!(
            bad_target,
            Some((
                Code::InvalidArgument,
                "synod: unknown Compare.target value 5".to_owned()
            ))
        );
        let bad_result = compare(pb::Compare {
            result: -4,
            key: b"k".to_vec(),
            ..Default::default()
        })
        .err()
        .map(|s| (s.code(), s.message().to_owned()));
        assert_eq!(
            bad_result,
            Some((
                Code::InvalidArgument,
                "synod: unknown Compare.result value -4".to_owned()
            ))
        );
    }

    #[test]
    fn a_nested_txn_converts_and_round_trips() {
        let want = nested_kv_txn();
        let pb = txn_to_pb(&want);
        // Check the protobuf really is two levels deep, so the test exercises the recursion.
        let nested = pb
            .success
            .iter()
            .any(|op| matches!(&op.request, Some(Request::RequestTxn(t)) if !t.success.is_empty()));
        assert!(nested);
        let got = txn_request(pb.clone());
        assert_eq!(got.as_ref().ok(), Some(&want));
        assert_eq!(got.ok().map(|t| txn_to_pb(&t)), Some(pb));
    }

    #[test]
    fn errors_deep_inside_a_txn_are_reported() {
        let bad_range = pb_op(Request::RequestRange(pb::RangeRequest {
            key: b"k".to_vec(),
            sort_order: 9,
            ..Default::default()
        }));
        let inner = pb::TxnRequest {
            failure: vec![bad_range],
            ..Default::default()
        };
        let outer = pb::TxnRequest {
            success: vec![pb_op(Request::RequestTxn(inner))],
            ..Default::default()
        };
        let err = txn_request(outer).err().map(|s| s.message().to_owned());
        assert_eq!(err.as_deref(), Some(INVALID_SORT_OPTION));

        let bad_compare = pb::TxnRequest {
            compare: vec![pb::Compare {
                result: 4,
                key: b"k".to_vec(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let outer = pb::TxnRequest {
            failure: vec![pb_op(Request::RequestTxn(bad_compare))],
            ..Default::default()
        };
        let err = txn_request(outer).err().map(|s| s.message().to_owned());
        assert_eq!(
            err.as_deref(),
            Some("synod: unknown Compare.result value 4")
        );
    }

    #[test]
    fn an_empty_request_op_is_refused_as_etcd_refuses_it() {
        let t = pb::TxnRequest {
            success: vec![pb::RequestOp { request: None }],
            ..Default::default()
        };
        let err = txn_request(t)
            .err()
            .map(|s| (s.code(), s.message().to_owned()));
        assert_eq!(
            err,
            Some((
                Code::InvalidArgument,
                "etcdserver: key not found".to_owned()
            ))
        );
    }

    /// A transaction `depth` levels deep (1: no nesting), nested through `failure` so that
    /// both branches are known to recurse (the round-trip test nests through `success`).
    fn txn_of_depth(depth: usize) -> pb::TxnRequest {
        let mut t = pb::TxnRequest::default();
        for _ in 1..depth {
            t = pb::TxnRequest {
                failure: vec![pb_op(Request::RequestTxn(t))],
                ..Default::default()
            };
        }
        t
    }

    fn depth_of(t: &kv::TxnRequest) -> usize {
        let inner = t
            .success
            .iter()
            .chain(&t.failure)
            .filter_map(|op| match op {
                kv::RequestOp::Txn(t) => Some(depth_of(t)),
                _ => None,
            })
            .max();
        1 + inner.unwrap_or(0)
    }

    #[test]
    fn nesting_is_accepted_up_to_the_stores_bound_and_refused_beyond() {
        let deepest = txn_request(txn_of_depth(kv::TXN_DEPTH_MAX));
        assert_eq!(deepest.as_ref().ok().map(depth_of), Some(kv::TXN_DEPTH_MAX));
        // The store must accept what converts: same bound, counted the same way.
        let mut store = kv::KvStore::new();
        let applied = deepest.map(|t| store.apply(&kv::KvCommand::Txn(t)).is_ok());
        assert_eq!(applied.ok(), Some(true));

        let err = txn_request(txn_of_depth(kv::TXN_DEPTH_MAX + 1))
            .err()
            .map(|s| (s.code(), s.message().to_owned()));
        let too_deep = KvError::TxnTooDeep {
            depth_max: kv::TXN_DEPTH_MAX,
        };
        assert_eq!(err, Some((Code::InvalidArgument, too_deep.to_string())));
    }

    #[test]
    fn key_value_maps_every_field() {
        let got = key_value(kv::KeyValue {
            key: b"k".to_vec(),
            create_revision: 1,
            mod_revision: 2,
            version: 3,
            value: b"v".to_vec(),
            lease: 4,
        });
        let want = mvccpb::KeyValue {
            key: b"k".to_vec(),
            create_revision: 1,
            mod_revision: 2,
            version: 3,
            value: b"v".to_vec(),
            lease: 4,
        };
        assert_eq!(got, want);
    }

    #[test]
    fn flat_responses_map_every_field_and_carry_the_callers_header() {
        let range = range_response(
            kv::RangeResponse {
                revision: 5,
                kvs: vec![kv_at("a", 1), kv_at("b", 2)],
                more: true,
                count: 7,
            },
            header(),
        );
        let want = pb::RangeResponse {
            header: Some(header()),
            kvs: vec![key_value(kv_at("a", 1)), key_value(kv_at("b", 2))],
            more: true,
            count: 7,
        };
        assert_eq!(range, want);

        let put = put_response(
            kv::PutResponse {
                revision: 5,
                prev_kv: Some(kv_at("a", 1)),
            },
            header(),
        );
        assert_eq!(put.header, Some(header()));
        assert_eq!(put.prev_kv, Some(key_value(kv_at("a", 1))));
        let fresh = put_response(kv::PutResponse::default(), header());
        assert_eq!(fresh.prev_kv, None);

        let delete = delete_response(
            kv::DeleteRangeResponse {
                revision: 5,
                deleted: 2,
                prev_kvs: vec![kv_at("c", 3)],
            },
            header(),
        );
        let want = pb::DeleteRangeResponse {
            header: Some(header()),
            deleted: 2,
            prev_kvs: vec![key_value(kv_at("c", 3))],
        };
        assert_eq!(delete, want);

        let compact = compact_response(kv::CompactResponse { revision: 5 }, header());
        assert_eq!(compact.header, Some(header()));
    }

    #[test]
    fn a_nested_txn_response_gives_each_answer_its_own_revision() {
        let inner = kv::TxnResponse {
            revision: 8,
            succeeded: false,
            responses: vec![kv::ResponseOp::DeleteRange(kv::DeleteRangeResponse {
                revision: 7,
                deleted: 1,
                prev_kvs: vec![kv_at("d", 4)],
            })],
        };
        let outer = kv::TxnResponse {
            revision: 9,
            succeeded: true,
            responses: vec![
                kv::ResponseOp::Range(kv::RangeResponse {
                    revision: 4,
                    kvs: vec![kv_at("r", 1)],
                    more: false,
                    count: 1,
                }),
                kv::ResponseOp::Put(kv::PutResponse {
                    revision: 6,
                    prev_kv: Some(kv_at("p", 2)),
                }),
                kv::ResponseOp::Txn(inner),
            ],
        };
        // etcd 3.4 fills only the outer header; a nested one holds its revision alone.
        let at = |revision| ResponseHeader {
            revision,
            ..ResponseHeader::default()
        };
        let want = pb::TxnResponse {
            header: Some(header()),
            succeeded: true,
            responses: vec![
                pb::ResponseOp {
                    response: Some(Response::ResponseRange(pb::RangeResponse {
                        header: Some(at(4)),
                        kvs: vec![key_value(kv_at("r", 1))],
                        more: false,
                        count: 1,
                    })),
                },
                pb::ResponseOp {
                    response: Some(Response::ResponsePut(pb::PutResponse {
                        header: Some(at(6)),
                        prev_kv: Some(key_value(kv_at("p", 2))),
                    })),
                },
                pb::ResponseOp {
                    response: Some(Response::ResponseTxn(pb::TxnResponse {
                        header: Some(at(8)),
                        succeeded: false,
                        responses: vec![pb::ResponseOp {
                            response: Some(Response::ResponseDeleteRange(
                                pb::DeleteRangeResponse {
                                    header: Some(at(7)),
                                    deleted: 1,
                                    prev_kvs: vec![key_value(kv_at("d", 4))],
                                },
                            )),
                        }],
                    })),
                },
            ],
        };
        assert_eq!(txn_response(outer, header()), want);
    }

    #[test]
    fn every_kv_error_gets_etcds_code_and_text() {
        let etcd = [
            (
                KvError::EmptyKey,
                Code::InvalidArgument,
                "etcdserver: key is not provided",
            ),
            (
                KvError::KeyNotFound,
                Code::InvalidArgument,
                "etcdserver: key not found",
            ),
            (
                KvError::ValueProvided,
                Code::InvalidArgument,
                "etcdserver: value is provided",
            ),
            (
                KvError::LeaseProvided,
                Code::InvalidArgument,
                "etcdserver: lease is provided",
            ),
            (
                KvError::LeaseNotFound,
                Code::NotFound,
                "etcdserver: requested lease not found",
            ),
            (
                KvError::LeaseExists,
                Code::FailedPrecondition,
                "etcdserver: lease already exists",
            ),
            (
                KvError::LeaseTtlTooLarge,
                Code::OutOfRange,
                "etcdserver: too large lease TTL",
            ),
            (
                KvError::TooManyOps,
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request",
            ),
            (
                KvError::DuplicateKey,
                Code::InvalidArgument,
                "etcdserver: duplicate key given in txn request",
            ),
            (
                KvError::RequestTooLarge,
                Code::InvalidArgument,
                "etcdserver: request is too large",
            ),
            // etcd's gRPC layer prefixes the mvcc errors; clients match the prefixed text.
            (
                KvError::Compacted,
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            (
                KvError::FutureRevision,
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
            ),
        ];
        for (e, code, message) in etcd {
            let s = status_from_kv_error(&e);
            assert_eq!((s.code(), s.message()), (code, message), "{e:?}");
        }

        // Synod's own errors: the text is the error's Display, the code by whose fault it is.
        let ours = [
            (KvError::TxnTooDeep { depth_max: 64 }, Code::InvalidArgument),
            (KvError::Decode(DecodeError::Truncated), Code::Internal),
            (
                KvError::Decode(DecodeError::UnknownTag {
                    what: Cow::Borrowed("op"),
                    tag: 9,
                }),
                Code::Internal,
            ),
            (KvError::Snapshot(SnapshotError::BadMagic), Code::Internal),
            (
                KvError::Snapshot(SnapshotError::Inconsistent(Cow::Borrowed("x"))),
                Code::Internal,
            ),
        ];
        for (e, code) in ours {
            let s = status_from_kv_error(&e);
            assert_eq!(
                (s.code(), s.message()),
                (code, e.to_string().as_str()),
                "{e:?}"
            );
        }
    }

    /// Requests converted here, applied by the real store, answers converted back: the
    /// conversions agree with the store's semantics, not only with each other.
    #[test]
    fn converted_requests_run_on_the_store_as_etcd_would_run_them() {
        let mut store = kv::KvStore::new();
        let put = put_request(pb::PutRequest {
            key: b"k".to_vec(),
            value: b"v1".to_vec(),
            ..Default::default()
        });
        let applied = put.map(|p| store.apply(&kv::KvCommand::Put(p)));
        assert!(matches!(applied, Ok(Ok(kv::KvResponse::Put(_)))));

        // Version is 1 now: `version > 0` holds, so success runs and puts with prev_kv.
        let txn = pb::TxnRequest {
            compare: vec![pb::Compare {
                result: PbCompareResult::Greater as i32,
                target: PbCompareTarget::Version as i32,
                key: b"k".to_vec(),
                range_end: Vec::new(),
                target_union: Some(TargetUnion::Version(0)),
            }],
            success: vec![pb_op(Request::RequestPut(pb::PutRequest {
                key: b"k".to_vec(),
                value: b"v2".to_vec(),
                prev_kv: true,
                ..Default::default()
            }))],
            failure: Vec::new(),
        };
        let answer = match txn_request(txn).map(|t| store.apply(&kv::KvCommand::Txn(t))) {
            Ok(Ok(kv::KvResponse::Txn(r))) => Some(txn_response(r, header())),
            _ => None,
        };
        let prev = answer.as_ref().and_then(|a| match a.responses.first() {
            Some(pb::ResponseOp {
                response: Some(Response::ResponsePut(p)),
            }) => p.prev_kv.clone(),
            _ => None,
        });
        assert_eq!(answer.as_ref().map(|a| a.succeeded), Some(true));
        assert_eq!(
            prev.map(|kv| (kv.value, kv.version)),
            Some((b"v1".to_vec(), 1))
        );

        let read = range_request(pb::RangeRequest {
            key: b"k".to_vec(),
            ..Default::default()
        })
        .ok()
        .and_then(|r| store.range(&r).ok())
        .map(|r| range_response(r, header()));
        let got = read.map(|r| r.kvs.into_iter().map(|kv| (kv.value, kv.version)).collect());
        assert_eq!(got, Some(vec![(b"v2".to_vec(), 2)]));
    }
}
