//! Pins the wire encoding of the messages etcd clients send and read, byte by
//! byte, against encodings worked out by hand from the protobuf rules:
//! each field starts with the tag varint `field_number << 3 | wire_type`
//! (wire type 0 = varint, 2 = length-delimited), then its varint value or its
//! length and bytes.
//!
//! Every field gets a distinct value so that two swapped field numbers, a wrong
//! number or a wrong type (e.g. sint64 instead of int64) change the bytes.
//! Each case checks both directions: our encoder produces exactly the
//! expected bytes, and the expected bytes decode to the same message (the
//! direction that matters when etcdctl is the encoder).

use etcd_proto::etcdserverpb::{
    alarm_request::AlarmAction, compare, range_request, request_op, watch_create_request,
    watch_request, AlarmMember, AlarmRequest, AlarmResponse, AlarmType, Compare,
    DeleteRangeRequest, LeaseGrantRequest, LeaseKeepAliveResponse, LeaseTimeToLiveResponse, Member,
    MemberListResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp,
    ResponseHeader, StatusResponse, TxnRequest, WatchCreateRequest, WatchRequest, WatchResponse,
};
use etcd_proto::mvccpb::{event::EventType, Event, KeyValue};
use prost::Message;

fn pin<M: Message + Default + PartialEq + std::fmt::Debug>(msg: &M, expected: &[u8]) {
    assert_eq!(
        msg.encode_to_vec(),
        expected,
        "encoding of {msg:?} differs from the hand-computed bytes"
    );
    let decoded = M::decode(expected).expect("hand-computed bytes decode");
    assert_eq!(
        &decoded, msg,
        "hand-computed bytes decode to another message"
    );
}

/// Concatenates byte pieces, so that expected encodings can be written field
/// by field with a comment each.
fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn header() -> ResponseHeader {
    ResponseHeader {
        cluster_id: 1000,
        member_id: 2,
        revision: 3,
        raft_term: 4,
    }
}

const HEADER_BYTES: &[u8] = &[
    0x08, 0xe8, 0x07, // cluster_id = 1: varint 1000 = 0b111_1101000 -> e8 07
    0x10, 0x02, // member_id = 2
    0x18, 0x03, // revision = 3
    0x20, 0x04, // raft_term = 4
];

#[test]
fn response_header() {
    pin(&header(), HEADER_BYTES);
}

#[test]
fn key_value() {
    let kv = KeyValue {
        key: b"k".to_vec(),
        create_revision: 2,
        mod_revision: 3,
        version: 4,
        value: b"v".to_vec(),
        lease: 6,
    };
    pin(
        &kv,
        &[
            0x0a, 0x01, b'k', // key = 1, length-delimited
            0x10, 0x02, // create_revision = 2
            0x18, 0x03, // mod_revision = 3
            0x20, 0x04, // version = 4
            0x2a, 0x01, b'v', // value = 5, length-delimited
            0x30, 0x06, // lease = 6
        ],
    );
}

#[test]
fn event() {
    let kv = |v: u8| KeyValue {
        key: vec![b'k'],
        mod_revision: i64::from(v),
        ..Default::default()
    };
    let ev = Event {
        r#type: EventType::Delete as i32,
        kv: Some(kv(7)),
        prev_kv: Some(kv(5)),
    };
    pin(
        &ev,
        &[
            0x08, 0x01, // type = 1: DELETE = 1
            0x12, 0x05, 0x0a, 0x01, b'k', 0x18, 0x07, // kv = 2
            0x1a, 0x05, 0x0a, 0x01, b'k', 0x18, 0x05, // prev_kv = 3
        ],
    );
}

#[test]
fn range_request_every_field() {
    let req = RangeRequest {
        key: b"a".to_vec(),
        range_end: b"z".to_vec(),
        limit: 10,
        revision: 300,
        sort_order: range_request::SortOrder::Descend as i32,
        sort_target: range_request::SortTarget::Mod as i32,
        serializable: true,
        keys_only: true,
        count_only: true,
        min_mod_revision: 30,
        max_mod_revision: 40,
        min_create_revision: 50,
        max_create_revision: 60,
    };
    pin(
        &req,
        &[
            0x0a, 0x01, b'a', // key = 1
            0x12, 0x01, b'z', // range_end = 2
            0x18, 0x0a, // limit = 3
            0x20, 0xac, 0x02, // revision = 4: 300 = 0b10_0101100 -> ac 02
            0x28, 0x02, // sort_order = 5: DESCEND = 2
            0x30, 0x03, // sort_target = 6: MOD = 3
            0x38, 0x01, // serializable = 7
            0x40, 0x01, // keys_only = 8
            0x48, 0x01, // count_only = 9
            0x50, 0x1e, // min_mod_revision = 10: tag 80
            0x58, 0x28, // max_mod_revision = 11: tag 88
            0x60, 0x32, // min_create_revision = 12: tag 96
            0x68, 0x3c, // max_create_revision = 13: tag 104
        ],
    );
}

#[test]
fn range_request_enum_values() {
    // The enum values themselves are part of the wire contract.
    use range_request::{SortOrder, SortTarget};
    assert_eq!(
        [SortOrder::None, SortOrder::Ascend, SortOrder::Descend].map(|o| o as i32),
        [0, 1, 2]
    );
    assert_eq!(
        [
            SortTarget::Key,
            SortTarget::Version,
            SortTarget::Create,
            SortTarget::Mod,
            SortTarget::Value
        ]
        .map(|t| t as i32),
        [0, 1, 2, 3, 4]
    );
}

#[test]
fn range_response() {
    let resp = RangeResponse {
        header: Some(header()),
        kvs: vec![KeyValue {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        }],
        more: true,
        count: 9,
    };
    pin(
        &resp,
        &cat(&[
            &[0x0a, 0x09], // header = 1, 9 bytes
            HEADER_BYTES,
            &[0x12, 0x06, 0x0a, 0x01, b'k', 0x2a, 0x01, b'v'], // kvs = 2
            &[0x18, 0x01],                                     // more = 3
            &[0x20, 0x09],                                     // count = 4
        ]),
    );
}

#[test]
fn put_request_and_response() {
    let req = PutRequest {
        key: b"foo".to_vec(),
        value: b"bar".to_vec(),
        lease: 7,
        prev_kv: true,
        ignore_value: true,
        ignore_lease: true,
    };
    pin(
        &req,
        &[
            0x0a, 0x03, b'f', b'o', b'o', // key = 1
            0x12, 0x03, b'b', b'a', b'r', // value = 2
            0x18, 0x07, // lease = 3
            0x20, 0x01, // prev_kv = 4
            0x28, 0x01, // ignore_value = 5
            0x30, 0x01, // ignore_lease = 6
        ],
    );

    let resp = PutResponse {
        header: Some(header()),
        prev_kv: Some(KeyValue {
            key: b"foo".to_vec(),
            ..Default::default()
        }),
    };
    pin(
        &resp,
        &cat(&[
            &[0x0a, 0x09],
            HEADER_BYTES,
            &[0x12, 0x05, 0x0a, 0x03, b'f', b'o', b'o'], // prev_kv = 2
        ]),
    );
}

#[test]
fn txn_request_with_compare_and_nested_ops() {
    let txn = TxnRequest {
        compare: vec![Compare {
            result: compare::CompareResult::NotEqual as i32,
            target: compare::CompareTarget::Mod as i32,
            key: b"a".to_vec(),
            target_union: Some(compare::TargetUnion::ModRevision(5)),
            range_end: b"b".to_vec(),
        }],
        success: vec![
            RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: b"a".to_vec(),
                    value: b"1".to_vec(),
                    ..Default::default()
                })),
            },
            RequestOp {
                request: Some(request_op::Request::RequestTxn(TxnRequest {
                    success: vec![RequestOp {
                        request: Some(request_op::Request::RequestRange(RangeRequest {
                            key: b"a".to_vec(),
                            ..Default::default()
                        })),
                    }],
                    ..Default::default()
                })),
            },
        ],
        failure: vec![RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(
                DeleteRangeRequest {
                    key: b"a".to_vec(),
                    range_end: b"b".to_vec(),
                    prev_kv: true,
                },
            )),
        }],
    };
    let expected = cat(&[
        // compare = 1, one Compare of 13 bytes.
        &[0x0a, 0x0d],
        &[0x08, 0x03],       // result = 1: NOT_EQUAL = 3
        &[0x10, 0x02],       // target = 2: MOD = 2
        &[0x1a, 0x01, b'a'], // key = 3
        &[0x30, 0x05],       // target_union.mod_revision = 6
        // range_end = 64: tag 64 << 3 | 2 = 514 -> varint 82 04. Fields go out
        // in field-number order; the order is not significant on the wire,
        // and the decode check in `pin` accepts any.
        &[0x82, 0x04, 0x01, b'b'],
        // success = 2: RequestOp { request_put = 2: Put { key = 1, value = 2 } }
        &[0x12, 0x08, 0x12, 0x06, 0x0a, 0x01, b'a', 0x12, 0x01, b'1'],
        // success = 2: RequestOp { request_txn = 4 (tag 0x22):
        //   Txn { success = 2: RequestOp { request_range = 1: Range { key = 1 } } } }
        &[
            0x12, 0x09, 0x22, 0x07, 0x12, 0x05, 0x0a, 0x03, 0x0a, 0x01, b'a',
        ],
        // failure = 3: RequestOp { request_delete_range = 3:
        //   DeleteRange { key = 1, range_end = 2, prev_kv = 3 } }
        &[
            0x1a, 0x0a, 0x1a, 0x08, 0x0a, 0x01, b'a', 0x12, 0x01, b'b', 0x18, 0x01,
        ],
    ]);
    pin(&txn, &expected);
}

#[test]
fn compare_target_union_members() {
    // Each oneof member has its own field number (4..=8); check all of them.
    let cases: [(compare::TargetUnion, &[u8]); 5] = [
        (compare::TargetUnion::Version(1), &[0x20, 0x01]),
        (compare::TargetUnion::CreateRevision(2), &[0x28, 0x02]),
        (compare::TargetUnion::ModRevision(3), &[0x30, 0x03]),
        (
            compare::TargetUnion::Value(b"x".to_vec()),
            &[0x3a, 0x01, b'x'],
        ),
        (compare::TargetUnion::Lease(4), &[0x40, 0x04]),
    ];
    for (member, bytes) in cases {
        let cmp = Compare {
            target_union: Some(member),
            ..Default::default()
        };
        pin(&cmp, bytes);
    }
    assert_eq!(
        [
            compare::CompareResult::Equal,
            compare::CompareResult::Greater,
            compare::CompareResult::Less,
            compare::CompareResult::NotEqual
        ]
        .map(|r| r as i32),
        [0, 1, 2, 3]
    );
    assert_eq!(
        [
            compare::CompareTarget::Version,
            compare::CompareTarget::Create,
            compare::CompareTarget::Mod,
            compare::CompareTarget::Value,
            compare::CompareTarget::Lease
        ]
        .map(|t| t as i32),
        [0, 1, 2, 3, 4]
    );
}

#[test]
fn status_response_every_field() {
    let status = StatusResponse {
        header: Some(header()),
        version: "3.5.0".to_string(),
        db_size: 11,
        leader: 12,
        raft_index: 13,
        raft_term: 14,
        raft_applied_index: 15,
        errors: vec!["e".to_string()],
        db_size_in_use: 16,
        is_learner: true,
    };
    pin(
        &status,
        &cat(&[
            &[0x0a, 0x09],
            HEADER_BYTES,
            &[0x12, 0x05, b'3', b'.', b'5', b'.', b'0'], // version = 2
            &[0x18, 0x0b],                               // dbSize = 3
            &[0x20, 0x0c],                               // leader = 4
            &[0x28, 0x0d],                               // raftIndex = 5
            &[0x30, 0x0e],                               // raftTerm = 6
            &[0x38, 0x0f],                               // raftAppliedIndex = 7
            &[0x42, 0x01, b'e'],                         // errors = 8, length-delimited
            &[0x48, 0x10],                               // dbSizeInUse = 9
            &[0x50, 0x01],                               // isLearner = 10
        ]),
    );
}

#[test]
fn alarm_messages() {
    let req = AlarmRequest {
        action: AlarmAction::Deactivate as i32,
        member_id: 9,
        alarm: AlarmType::Corrupt as i32,
    };
    pin(
        &req,
        &[
            0x08, 0x02, // action = 1: DEACTIVATE = 2
            0x10, 0x09, // memberID = 2
            0x18, 0x02, // alarm = 3: CORRUPT = 2
        ],
    );
    let resp = AlarmResponse {
        header: None,
        alarms: vec![AlarmMember {
            member_id: 9,
            alarm: AlarmType::Nospace as i32,
        }],
    };
    // alarms = 2: AlarmMember { memberID = 1, alarm = 2: NOSPACE = 1 }
    pin(&resp, &[0x12, 0x04, 0x08, 0x09, 0x10, 0x01]);
    assert_eq!(
        [AlarmType::None, AlarmType::Nospace, AlarmType::Corrupt].map(|a| a as i32),
        [0, 1, 2]
    );
}

#[test]
fn member_and_member_list() {
    let member = Member {
        id: 0x1234,
        name: "n1".to_string(),
        peer_ur_ls: vec!["p1".to_string(), "p2".to_string()],
        client_ur_ls: vec!["c".to_string()],
        is_learner: true,
    };
    let member_bytes: &[u8] = &[
        0x08, 0xb4, 0x24, // ID = 1: 0x1234 -> b4 24
        0x12, 0x02, b'n', b'1', // name = 2
        0x1a, 0x02, b'p', b'1', // peerURLs = 3, one record per element
        0x1a, 0x02, b'p', b'2', //
        0x22, 0x01, b'c', // clientURLs = 4
        0x28, 0x01, // isLearner = 5
    ];
    pin(&member, member_bytes);

    let list = MemberListResponse {
        header: None,
        members: vec![member],
    };
    pin(&list, &cat(&[&[0x12, 0x14], member_bytes]));
}

#[test]
fn lease_messages() {
    pin(
        &LeaseGrantRequest { ttl: 5, id: 6 },
        &[0x08, 0x05, 0x10, 0x06], // TTL = 1, ID = 2
    );
    pin(
        &LeaseKeepAliveResponse {
            header: None,
            id: 6,
            ttl: 5,
        },
        &[0x10, 0x06, 0x18, 0x05], // ID = 2, TTL = 3
    );
    // TTL -1 (expired lease) pins int64, not sint64: a negative int64 is the
    // ten-byte two's-complement varint; sint64 would encode it as 01.
    pin(
        &LeaseTimeToLiveResponse {
            header: None,
            id: 6,
            ttl: -1,
            granted_ttl: 7,
            keys: vec![b"k".to_vec()],
        },
        &[
            0x10, 0x06, // ID = 2
            0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, // TTL = 3
            0x20, 0x07, // grantedTTL = 4
            0x2a, 0x01, b'k', // keys = 5
        ],
    );
}

#[test]
fn watch_messages() {
    let create = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: b"a".to_vec(),
                range_end: b"b".to_vec(),
                start_revision: 3,
                progress_notify: true,
                filters: vec![
                    watch_create_request::FilterType::Noput as i32,
                    watch_create_request::FilterType::Nodelete as i32,
                ],
                prev_kv: true,
                watch_id: 7,
                fragment: true,
            },
        )),
    };
    pin(
        &create,
        &[
            0x0a, 0x14, // create_request = 1, 20 bytes
            0x0a, 0x01, b'a', // key = 1
            0x12, 0x01, b'b', // range_end = 2
            0x18, 0x03, // start_revision = 3
            0x20, 0x01, // progress_notify = 4
            0x2a, 0x02, 0x00, 0x01, // filters = 5, packed (proto3 default)
            0x30, 0x01, // prev_kv = 6
            0x38, 0x07, // watch_id = 7
            0x40, 0x01, // fragment = 8
        ],
    );

    let cancel = WatchRequest {
        request_union: Some(watch_request::RequestUnion::CancelRequest(
            etcd_proto::etcdserverpb::WatchCancelRequest { watch_id: 7 },
        )),
    };
    pin(&cancel, &[0x12, 0x02, 0x08, 0x07]);

    let progress = WatchRequest {
        request_union: Some(watch_request::RequestUnion::ProgressRequest(
            etcd_proto::etcdserverpb::WatchProgressRequest {},
        )),
    };
    pin(&progress, &[0x1a, 0x00]);

    let resp = WatchResponse {
        header: None,
        watch_id: 2,
        created: true,
        canceled: true,
        compact_revision: 5,
        cancel_reason: "r".to_string(),
        fragment: true,
        events: vec![Event::default()],
    };
    pin(
        &resp,
        &[
            0x10, 0x02, // watch_id = 2
            0x18, 0x01, // created = 3
            0x20, 0x01, // canceled = 4
            0x28, 0x05, // compact_revision = 5
            0x32, 0x01, b'r', // cancel_reason = 6
            0x38, 0x01, // fragment = 7
            0x5a, 0x00, // events = 11: tag 11 << 3 | 2 = 90
        ],
    );
}

#[test]
fn descriptor_set_is_exported() {
    // The descriptor set must decode and name both packages, so a reflection
    // service built on it would describe the same API.
    let fds = prost_types_free_decode(etcd_proto::FILE_DESCRIPTOR_SET);
    assert!(fds.contains(&"etcdserverpb".to_string()), "{fds:?}");
    assert!(fds.contains(&"mvccpb".to_string()), "{fds:?}");
}

/// Reads the `package` of each file in an encoded FileDescriptorSet with
/// hand-declared prost messages, so the test needs no prost-types dependency.
fn prost_types_free_decode(bytes: &[u8]) -> Vec<String> {
    #[derive(Clone, PartialEq, prost::Message)]
    struct FileDescriptorSet {
        #[prost(message, repeated, tag = "1")]
        file: Vec<FileDescriptorProto>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct FileDescriptorProto {
        #[prost(string, optional, tag = "2")]
        package: Option<String>,
    }
    FileDescriptorSet::decode(bytes)
        .expect("descriptor set decodes")
        .file
        .into_iter()
        .filter_map(|f| f.package)
        .collect()
}
