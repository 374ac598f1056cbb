//! Client requests on their way into the key-value store: the log payload codec
//! (`kv::decode`), etcd's protobuf requests through `node::convert`, and the store's snapshot
//! decoder (`KvStore::restore`, fed by peers' snapshot transfers).
//!
//! Input: a mode byte (modulo 5), then:
//! - 0: a log payload. `kv::decode`, and the same bytes through the `StateMachine` entry a
//!   replica applies chosen payloads with. Properties: a decoded command re-encodes to bytes
//!   that decode to the same command; applied to an empty store and to one with keys, leases
//!   and a compaction, it never panics, both entries give the same output, and applying is
//!   deterministic (two copies give equal outputs and equal stores).
//! - 1, 2, 3: a protobuf `TxnRequest`, `RangeRequest` or `PutRequest` through
//!   `node::convert`. Properties: a request the node accepts survives the log encoding
//!   (`decode(encode(cmd)) == cmd`, else it would be chosen and never applied), applies as in
//!   mode 0, and a range's answer is consistent with its limit and count.
//! - 4: snapshot bytes for `KvStore::restore` (a flags byte first: bit 0 recomputes the
//!   trailing CRC so that the body parser is reached). Properties: a restored store snapshots
//!   to bytes that restore to an equal store, and it takes further writes without panicking.

use crate::{Cursor, Seed, Writer};
use etcd_proto::etcdserverpb as pb;
use kv::{
    CompactRequest, DeleteRangeRequest, KvCommand, KvResponse, KvStore, LeaseGrantRequest,
    LeaseRevokeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use paxos::multi::StateMachine;
use paxos::Slot;
use prost::Message as _;

/// Mode bytes.
pub const MODE_PAYLOAD: u8 = 0;
/// See [`MODE_PAYLOAD`].
pub const MODE_PB_TXN: u8 = 1;
/// See [`MODE_PAYLOAD`].
pub const MODE_PB_RANGE: u8 = 2;
/// See [`MODE_PAYLOAD`].
pub const MODE_PB_PUT: u8 = 3;
/// See [`MODE_PAYLOAD`].
pub const MODE_RESTORE: u8 = 4;
/// Restore flag: recompute the trailing CRC.
pub const RESTORE_FIX_CRC: u8 = 1;

/// Runs one input.
pub fn run(data: &[u8]) {
    let mut c = Cursor::new(data);
    match c.u8() % 5 {
        MODE_PAYLOAD => payload(c.rest()),
        MODE_PB_TXN => {
            if let Ok(req) = pb::TxnRequest::decode(c.rest()) {
                if let Ok(txn) = node::convert::txn_request(req) {
                    command(&KvCommand::Txn(txn));
                }
            }
        }
        MODE_PB_RANGE => {
            if let Ok(req) = pb::RangeRequest::decode(c.rest()) {
                if let Ok(range) = node::convert::range_request(req) {
                    read(&range);
                }
            }
        }
        MODE_PB_PUT => {
            if let Ok(req) = pb::PutRequest::decode(c.rest()) {
                if let Ok(put) = node::convert::put_request(req) {
                    command(&KvCommand::Put(put));
                }
            }
        }
        _ => {
            let flags = c.u8();
            restore(c.rest(), flags & RESTORE_FIX_CRC != 0);
        }
    }
}

/// Stores every command is applied to: empty, and one with history, a lease and a compaction,
/// so that compares, ranges at old revisions and lease checks have something to find.
fn stores() -> [KvStore; 2] {
    let mut s = KvStore::new();
    for cmd in populated_history() {
        // Each of these is valid against the store built so far.
        assert!(s.apply(&cmd).is_ok(), "the fixture applies: {cmd:?}");
    }
    [KvStore::new(), s]
}

fn populated_history() -> Vec<KvCommand> {
    vec![
        KvCommand::Put(PutRequest::new("a", "1")),
        KvCommand::Put(PutRequest::new("b", "2")),
        KvCommand::Put(PutRequest::new("a", "3")),
        KvCommand::LeaseGrant(LeaseGrantRequest { id: 7, ttl: 60 }),
        KvCommand::Put(PutRequest {
            lease: 7,
            ..PutRequest::new("leased", "x")
        }),
        KvCommand::DeleteRange(DeleteRangeRequest::new("b", "")),
        KvCommand::Put(PutRequest::new("c/1", "4")),
        KvCommand::Put(PutRequest::new("c/2", "5")),
        KvCommand::Compact(CompactRequest { revision: 3 }),
    ]
}

fn payload(bytes: &[u8]) {
    // A client's payload names its sender (an envelope); the member's own names none.
    let decoded = kv::decode_as(bytes);
    if let Ok((caller, cmd)) = &decoded {
        let again = match caller {
            Some(c) => kv::encode_as(c, cmd),
            None => kv::encode(cmd),
        };
        assert_eq!(
            kv::decode_as(&again).as_ref(),
            Ok(&(caller.clone(), cmd.clone())),
            "a decoded command re-encodes differently"
        );
    }
    for store in stores() {
        // The replica's entry point for a chosen payload, on one copy...
        let mut via_log = store.clone();
        let out = StateMachine::apply(&mut via_log, Slot(1), bytes);
        // ...and decode-then-apply on another: one answer, one resulting state.
        match &decoded {
            Ok((caller, cmd)) => {
                let mut direct = store.clone();
                let direct_out = match caller {
                    Some(c) => direct.apply_as(c, cmd),
                    None => direct.apply(cmd),
                };
                assert_eq!(direct_out, out, "the two apply paths disagree");
                assert_eq!(
                    direct, via_log,
                    "the two apply paths leave different stores"
                );
            }
            Err(e) => {
                assert_eq!(out, Err(kv::KvError::Decode(e.clone())));
                assert_eq!(via_log, store, "an undecodable payload changed the store");
            }
        }
    }
    if let Ok((_, cmd)) = decoded {
        command(&cmd);
    }
}

/// Applies `cmd` to every fixture store, checking the log encoding and determinism.
fn command(cmd: &KvCommand) {
    assert_eq!(
        kv::decode(&kv::encode(cmd)).as_ref(),
        Ok(cmd),
        "an accepted request does not survive the log encoding"
    );
    for store in stores() {
        let mut a = store.clone();
        let mut b = store.clone();
        let out = a.apply(cmd);
        assert_eq!(out, b.apply(cmd), "apply is not deterministic");
        assert_eq!(a, b, "apply is not deterministic");
        if out.is_err() {
            assert_eq!(a, store, "a refused command changed the store");
        }
        if let Ok(KvResponse::Txn(t)) = &out {
            for r in t.responses.iter() {
                if let kv::ResponseOp::Range(r) = r {
                    check_range_answer(r, None);
                }
            }
        }
        // Applied again, as a retried proposal would be before the session table dedups it.
        let _ = a.apply(cmd);
        check_snapshot_round_trip(&a);
    }
}

fn read(range: &RangeRequest) {
    // A range in a transaction is how a linearized read travels through the log.
    command(&KvCommand::Txn(TxnRequest {
        compare: Vec::new(),
        success: vec![RequestOp::Range(range.clone())],
        failure: Vec::new(),
    }));
    for store in stores() {
        if let Ok(r) = store.range(range) {
            check_range_answer(&r, Some(range));
        }
    }
}

fn check_range_answer(r: &kv::RangeResponse, req: Option<&RangeRequest>) {
    assert!(
        r.kvs.len() as i64 <= r.count,
        "more keys returned ({}) than the range holds ({})",
        r.kvs.len(),
        r.count
    );
    if let Some(req) = req {
        if req.limit > 0 {
            assert!(r.kvs.len() as i64 <= req.limit, "the limit was exceeded");
        }
        if req.count_only {
            assert!(r.kvs.is_empty(), "count_only returned keys");
        }
        if req.keys_only {
            assert!(
                r.kvs.iter().all(|kv| kv.value.is_empty()),
                "keys_only returned values"
            );
        }
    }
}

fn check_snapshot_round_trip(store: &KvStore) {
    let bytes = store.snapshot();
    let back = KvStore::restore(&bytes).expect("a store's own snapshot restores");
    assert_eq!(back.digest(), store.digest(), "restore changed the digest");
    assert_eq!(back.snapshot(), bytes, "restore changed the snapshot bytes");
}

fn restore(bytes: &[u8], fix_crc: bool) {
    let mut bytes = bytes.to_vec();
    if fix_crc && bytes.len() >= 4 {
        let end = bytes.len() - 4;
        let crc = crc32c::crc32c(&bytes[..end]);
        bytes[end..].copy_from_slice(&crc.to_le_bytes());
    }
    let Ok(mut store) = KvStore::restore(&bytes) else {
        return;
    };
    check_snapshot_round_trip(&store);
    // A restored store must hold the invariants the writes rely on: exercise each kind.
    let revision = store.revision();
    for cmd in [
        KvCommand::Put(PutRequest::new("a", "after restore")),
        KvCommand::Put(PutRequest {
            ignore_value: true,
            ..PutRequest::new("leased", "")
        }),
        KvCommand::LeaseRevoke(LeaseRevokeRequest { id: 7 }),
        KvCommand::DeleteRange(DeleteRangeRequest::new(vec![0], vec![0])),
        KvCommand::Compact(CompactRequest { revision }),
        KvCommand::LeaseGrant(LeaseGrantRequest { id: 0, ttl: 5 }),
    ] {
        let _ = store.apply(&cmd);
    }
    let _ = store.range(&RangeRequest::range(vec![0], vec![0]));
    check_snapshot_round_trip(&store);
}

/// Seeds: every command kind as a payload, protobuf requests, and a snapshot.
pub fn seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    let nested = TxnRequest {
        compare: vec![kv::Compare {
            key: b"a".to_vec(),
            range_end: Vec::new(),
            target: kv::CompareTarget::Value(b"3".to_vec()),
            result: kv::CompareResult::Equal,
        }],
        success: vec![
            RequestOp::Put(PutRequest::new("a", "4")),
            RequestOp::Range(RangeRequest::prefix("c/")),
        ],
        failure: vec![RequestOp::Txn(TxnRequest {
            compare: vec![kv::Compare {
                key: b"c/".to_vec(),
                range_end: b"c0".to_vec(),
                target: kv::CompareTarget::Mod(4),
                result: kv::CompareResult::Greater,
            }],
            success: vec![RequestOp::DeleteRange(DeleteRangeRequest::new("c/", "c0"))],
            failure: Vec::new(),
        })],
    };
    let commands = [
        KvCommand::Put(PutRequest::new("a", "v")),
        KvCommand::Put(PutRequest {
            prev_kv: true,
            ignore_lease: true,
            ..PutRequest::new("leased", "y")
        }),
        KvCommand::DeleteRange(DeleteRangeRequest {
            prev_kv: true,
            ..DeleteRangeRequest::new("a", "z")
        }),
        KvCommand::Txn(nested.clone()),
        KvCommand::Compact(CompactRequest { revision: 5 }),
        KvCommand::LeaseGrant(LeaseGrantRequest { id: 0, ttl: 30 }),
        KvCommand::LeaseRevoke(LeaseRevokeRequest { id: 7 }),
    ];
    for (i, cmd) in commands.iter().enumerate() {
        let mut w = Writer::default();
        w.u8(MODE_PAYLOAD).bytes(&kv::encode(cmd));
        out.push((format!("payload-{i}"), w.0));
    }
    let pb_txn = pb::TxnRequest {
        compare: vec![pb::Compare {
            result: pb::compare::CompareResult::Equal as i32,
            target: pb::compare::CompareTarget::Value as i32,
            key: b"a".to_vec(),
            range_end: Vec::new(),
            target_union: Some(pb::compare::TargetUnion::Value(b"3".to_vec())),
        }],
        success: vec![pb::RequestOp {
            request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                key: b"a".to_vec(),
                value: b"4".to_vec(),
                ..Default::default()
            })),
        }],
        failure: vec![pb::RequestOp {
            request: Some(pb::request_op::Request::RequestRange(pb::RangeRequest {
                key: b"c/".to_vec(),
                range_end: b"c0".to_vec(),
                limit: 1,
                sort_order: pb::range_request::SortOrder::Descend as i32,
                sort_target: pb::range_request::SortTarget::Mod as i32,
                ..Default::default()
            })),
        }],
    };
    let mut w = Writer::default();
    w.u8(MODE_PB_TXN).bytes(&pb_txn.encode_to_vec());
    out.push(("pb-txn".into(), w.0));
    let pb_range = pb::RangeRequest {
        key: b"a".to_vec(),
        range_end: vec![0],
        revision: 4,
        keys_only: true,
        min_mod_revision: 2,
        ..Default::default()
    };
    let mut w = Writer::default();
    w.u8(MODE_PB_RANGE).bytes(&pb_range.encode_to_vec());
    out.push(("pb-range".into(), w.0));
    let pb_put = pb::PutRequest {
        key: b"leased".to_vec(),
        value: b"v".to_vec(),
        lease: 7,
        prev_kv: true,
        ..Default::default()
    };
    let mut w = Writer::default();
    w.u8(MODE_PB_PUT).bytes(&pb_put.encode_to_vec());
    out.push(("pb-put".into(), w.0));
    let [_, populated] = stores();
    let mut w = Writer::default();
    w.u8(MODE_RESTORE).u8(0).bytes(&populated.snapshot());
    out.push(("snapshot".into(), w.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_valid_requests() {
        for (name, data) in seeds() {
            let body = &data[1..];
            let ok = match data[0] {
                MODE_PAYLOAD => kv::decode(body).is_ok(),
                MODE_PB_TXN => pb::TxnRequest::decode(body)
                    .is_ok_and(|r| node::convert::txn_request(r).is_ok()),
                MODE_PB_RANGE => pb::RangeRequest::decode(body)
                    .is_ok_and(|r| node::convert::range_request(r).is_ok()),
                MODE_PB_PUT => pb::PutRequest::decode(body)
                    .is_ok_and(|r| node::convert::put_request(r).is_ok()),
                _ => KvStore::restore(&body[1..]).is_ok(),
            };
            assert!(ok, "seed {name} is not a valid request");
        }
    }
}
