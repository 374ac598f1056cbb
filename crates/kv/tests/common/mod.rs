//! Generators shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different part

use kv::*;
use proptest::prelude::*;

// ---- generators: few keys, so that ops collide ----

pub fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec![&b"a"[..], b"ab", b"b", b"c", b"d"]).prop_map(<[u8]>::to_vec)
}

pub fn range_end() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(vec![]), Just(vec![0]), key(), Just(b"b\0".to_vec())]
}

pub fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec![&b""[..], b"x", b"y", b"zz"]).prop_map(<[u8]>::to_vec)
}

pub fn revision() -> impl Strategy<Value = i64> {
    prop_oneof![2 => Just(0i64), 3 => -1i64..16]
}

pub fn range_req() -> impl Strategy<Value = RangeRequest> {
    (
        (key(), range_end(), -1i64..4, revision()),
        (
            prop::sample::select(vec![SortOrder::None, SortOrder::Ascend, SortOrder::Descend]),
            prop::sample::select(vec![
                SortTarget::Key,
                SortTarget::Version,
                SortTarget::Create,
                SortTarget::Mod,
                SortTarget::Value,
            ]),
            any::<bool>(),
            prop::bool::weighted(0.1),
            prop_oneof![3 => Just(0i64), 1 => 0i64..20],
        ),
    )
        .prop_map(
            |(
                (key, range_end, limit, revision),
                (order, target, keys_only, count_only, min_mod),
            )| {
                RangeRequest {
                    key,
                    range_end,
                    limit,
                    revision,
                    sort_order: order,
                    sort_target: target,
                    keys_only,
                    count_only,
                    min_mod_revision: min_mod,
                    ..RangeRequest::default()
                }
            },
        )
}

pub fn put_req() -> impl Strategy<Value = PutRequest> {
    (
        key(),
        value(),
        prop_oneof![3 => Just(0i64), 1 => 1i64..3],
        any::<bool>(),
    )
        .prop_map(|(key, value, lease, prev_kv)| PutRequest {
            key,
            value,
            lease,
            prev_kv,
            ..PutRequest::default()
        })
}

pub fn delete_req() -> impl Strategy<Value = DeleteRangeRequest> {
    (key(), range_end(), any::<bool>()).prop_map(|(key, range_end, prev_kv)| DeleteRangeRequest {
        key,
        range_end,
        prev_kv,
    })
}

pub fn compare() -> impl Strategy<Value = Compare> {
    let target = prop_oneof![
        value().prop_map(CompareTarget::Value),
        (0i64..4).prop_map(CompareTarget::Version),
        (0i64..20).prop_map(CompareTarget::Create),
        (0i64..20).prop_map(CompareTarget::Mod),
        (0i64..3).prop_map(CompareTarget::Lease),
    ];
    let result = prop::sample::select(vec![
        CompareResult::Equal,
        CompareResult::Greater,
        CompareResult::Less,
        CompareResult::NotEqual,
    ]);
    (
        key(),
        prop_oneof![3 => Just(vec![]), 1 => range_end()],
        target,
        result,
    )
        .prop_map(|(key, range_end, target, result)| Compare {
            key,
            range_end,
            target,
            result,
        })
}

pub fn op() -> impl Strategy<Value = RequestOp> {
    prop_oneof![
        range_req().prop_map(RequestOp::Range),
        put_req().prop_map(RequestOp::Put),
        delete_req().prop_map(RequestOp::DeleteRange),
    ]
}

#[derive(Clone, Debug)]
pub enum Step {
    Command(KvCommand),
    Read(RangeRequest),
}

pub fn step() -> impl Strategy<Value = Step> {
    let txn = (
        prop::collection::vec(compare(), 0..3),
        prop::collection::vec(op(), 0..4),
        prop::collection::vec(op(), 0..3),
    )
        .prop_map(|(compare, success, failure)| TxnRequest {
            compare,
            success,
            failure,
        });
    prop_oneof![
        6 => put_req().prop_map(|p| Step::Command(KvCommand::Put(p))),
        2 => delete_req().prop_map(|d| Step::Command(KvCommand::DeleteRange(d))),
        3 => txn.prop_map(|t| Step::Command(KvCommand::Txn(t))),
        1 => revision().prop_map(|revision| Step::Command(KvCommand::Compact(CompactRequest { revision }))),
        1 => (1i64..3).prop_map(|id| Step::Command(KvCommand::LeaseGrant(LeaseGrantRequest { id, ttl: 5 }))),
        1 => (1i64..3).prop_map(|id| Step::Command(KvCommand::LeaseRevoke(LeaseRevokeRequest { id }))),
        1 => (1i64..3).prop_map(|id| Step::Command(KvCommand::LeaseKeepAlive(LeaseKeepAliveRequest { id }))),
        4 => range_req().prop_map(Step::Read),
        1 => (0u8..3, 0u8..3, 1u64..3).prop_map(|(action, alarm, member_id)| {
            Step::Command(KvCommand::Alarm(AlarmRequest {
                action: [AlarmAction::Get, AlarmAction::Activate, AlarmAction::Deactivate]
                    [usize::from(action)],
                member_id,
                alarm: AlarmType::from_number(i64::from(alarm)).expect("0..3"),
            }))
        }),
    ]
}

/// Auth commands over a few users, roles and keys, so that they collide (and often get
/// refused by etcd's rules).
pub fn auth_command() -> impl Strategy<Value = AuthCommand> {
    let user = || prop::sample::select(vec!["root", "u1", "u2", ""]).prop_map(String::from);
    let role = || prop::sample::select(vec!["root", "r1", "r2", ""]).prop_map(String::from);
    let hash = PasswordHash::parse(&format!("$2a$04${}", "x".repeat(53))).expect("hash shape");
    let perm_type = prop::sample::select(vec![
        PermissionType::Read,
        PermissionType::Write,
        PermissionType::ReadWrite,
    ]);
    prop_oneof![
        1 => Just(AuthCommand::AuthEnable),
        1 => Just(AuthCommand::AuthDisable),
        2 => (user(), any::<bool>()).prop_map(move |(name, no_password)| AuthCommand::UserAdd {
            name,
            password: if no_password {
                UserPassword::NoPassword
            } else {
                UserPassword::Hash(hash.clone())
            },
        }),
        1 => user().prop_map(|name| AuthCommand::UserDelete { name }),
        2 => (user(), role()).prop_map(|(user, role)| AuthCommand::UserGrantRole { user, role }),
        1 => (user(), role()).prop_map(|(user, role)| AuthCommand::UserRevokeRole { user, role }),
        2 => role().prop_map(|name| AuthCommand::RoleAdd { name }),
        1 => role().prop_map(|name| AuthCommand::RoleDelete { name }),
        2 => (role(), key(), range_end(), perm_type).prop_map(|(role, key, range_end, perm_type)| {
            AuthCommand::RoleGrantPermission {
                role,
                perm: Permission {
                    key,
                    range_end,
                    perm_type,
                },
            }
        }),
        1 => (role(), key(), range_end()).prop_map(|(role, key, range_end)| {
            AuthCommand::RoleRevokePermission {
                role,
                key,
                range_end,
            }
        }),
    ]
}

/// Commands only (no reads), with nested transactions and auth commands mixed in, over the
/// same few keys.
pub fn command() -> impl Strategy<Value = KvCommand> {
    let flat = step().prop_filter_map("reads are not commands", |s| match s {
        Step::Command(c) => Some(c),
        Step::Read(_) => None,
    });
    prop_oneof![
        8 => flat,
        1 => txn_tree(op()).prop_map(KvCommand::Txn),
        2 => auth_command().prop_map(KvCommand::Auth),
    ]
}

/// Transactions nested up to three levels, with leaves drawn from `leaf`.
pub fn txn_tree(
    leaf: impl Strategy<Value = RequestOp> + 'static,
) -> impl Strategy<Value = TxnRequest> {
    let ops = leaf.prop_recursive(3, 24, 4, |inner| {
        (
            prop::collection::vec(compare(), 0..2),
            prop::collection::vec(inner.clone(), 0..3),
            prop::collection::vec(inner, 0..3),
        )
            .prop_map(|(compare, success, failure)| {
                RequestOp::Txn(TxnRequest {
                    compare,
                    success,
                    failure,
                })
            })
    });
    (
        prop::collection::vec(compare(), 0..3),
        prop::collection::vec(ops.clone(), 0..4),
        prop::collection::vec(ops, 0..3),
    )
        .prop_map(|(compare, success, failure)| TxnRequest {
            compare,
            success,
            failure,
        })
}

fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..12)
}

/// A name: any UTF-8, short, sometimes empty.
fn any_name() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), Just("root".to_string()), ".{0,6}"]
}

/// Something shaped as a bcrypt hash (the codec checks the shape, not the hash).
fn any_hash() -> impl Strategy<Value = PasswordHash> {
    "\\$2[abxy]\\$[0-3][0-9]\\$[./A-Za-z0-9]{53}"
        .prop_map(|s| PasswordHash::parse(&s).expect("generated a bcrypt-shaped hash"))
}

/// Any auth command, with arbitrary names, keys and hashes: for the encoding.
pub fn arb_auth_command() -> impl Strategy<Value = AuthCommand> {
    let perm_type = prop::sample::select(vec![
        PermissionType::Read,
        PermissionType::Write,
        PermissionType::ReadWrite,
    ]);
    prop_oneof![
        Just(AuthCommand::AuthEnable),
        Just(AuthCommand::AuthDisable),
        (
            any_name(),
            prop_oneof![
                Just(UserPassword::NoPassword),
                any_hash().prop_map(UserPassword::Hash)
            ]
        )
            .prop_map(|(name, password)| AuthCommand::UserAdd { name, password }),
        any_name().prop_map(|name| AuthCommand::UserDelete { name }),
        (any_name(), any_hash())
            .prop_map(|(name, hash)| AuthCommand::UserChangePassword { name, hash }),
        (any_name(), any_name()).prop_map(|(user, role)| AuthCommand::UserGrantRole { user, role }),
        (any_name(), any_name())
            .prop_map(|(user, role)| AuthCommand::UserRevokeRole { user, role }),
        any_name().prop_map(|name| AuthCommand::RoleAdd { name }),
        any_name().prop_map(|name| AuthCommand::RoleDelete { name }),
        (any_name(), any_bytes(), any_bytes(), perm_type).prop_map(
            |(role, key, range_end, perm_type)| AuthCommand::RoleGrantPermission {
                role,
                perm: Permission {
                    key,
                    range_end,
                    perm_type,
                },
            }
        ),
        (any_name(), any_bytes(), any_bytes()).prop_map(|(role, key, range_end)| {
            AuthCommand::RoleRevokePermission {
                role,
                key,
                range_end,
            }
        }),
    ]
}

/// Any command at all, with arbitrary bytes and integers: for the encoding.
pub fn arb_command() -> impl Strategy<Value = KvCommand> {
    let range = (
        (any_bytes(), any_bytes(), any::<i64>(), any::<i64>()),
        (0u8..3, 0u8..5, any::<bool>(), any::<bool>()),
        (any::<i64>(), any::<i64>(), any::<i64>(), any::<i64>()),
    )
        .prop_map(
            |((key, range_end, limit, revision), (o, t, keys_only, count_only), (a, b, c, d))| {
                RangeRequest {
                    key,
                    range_end,
                    limit,
                    revision,
                    sort_order: [SortOrder::None, SortOrder::Ascend, SortOrder::Descend]
                        [o as usize],
                    sort_target: [
                        SortTarget::Key,
                        SortTarget::Version,
                        SortTarget::Create,
                        SortTarget::Mod,
                        SortTarget::Value,
                    ][t as usize],
                    keys_only,
                    count_only,
                    min_mod_revision: a,
                    max_mod_revision: b,
                    min_create_revision: c,
                    max_create_revision: d,
                }
            },
        );
    let put = || {
        (any_bytes(), any_bytes(), any::<i64>(), any::<[bool; 3]>()).prop_map(
            |(key, value, lease, [prev_kv, ignore_value, ignore_lease])| PutRequest {
                key,
                value,
                lease,
                prev_kv,
                ignore_value,
                ignore_lease,
            },
        )
    };
    let delete = || {
        (any_bytes(), any_bytes(), any::<bool>()).prop_map(|(key, range_end, prev_kv)| {
            DeleteRangeRequest {
                key,
                range_end,
                prev_kv,
            }
        })
    };
    let leaf = prop_oneof![
        range.prop_map(RequestOp::Range),
        put().prop_map(RequestOp::Put),
        delete().prop_map(RequestOp::DeleteRange),
    ];
    let compare_any = (
        any_bytes(),
        any_bytes(),
        prop_oneof![
            any_bytes().prop_map(CompareTarget::Value),
            any::<i64>().prop_map(CompareTarget::Version),
            any::<i64>().prop_map(CompareTarget::Create),
            any::<i64>().prop_map(CompareTarget::Mod),
            any::<i64>().prop_map(CompareTarget::Lease),
        ],
        0usize..4,
    )
        .prop_map(|(key, range_end, target, r)| Compare {
            key,
            range_end,
            target,
            result: [
                CompareResult::Equal,
                CompareResult::Greater,
                CompareResult::Less,
                CompareResult::NotEqual,
            ][r],
        });
    let txn =
        (prop::collection::vec(compare_any, 0..3), txn_tree(leaf)).prop_map(|(extra, mut t)| {
            t.compare.extend(extra);
            t
        });
    prop_oneof![
        put().prop_map(KvCommand::Put),
        delete().prop_map(KvCommand::DeleteRange),
        txn.prop_map(KvCommand::Txn),
        any::<i64>().prop_map(|revision| KvCommand::Compact(CompactRequest { revision })),
        (any::<i64>(), any::<i64>())
            .prop_map(|(id, ttl)| KvCommand::LeaseGrant(LeaseGrantRequest { id, ttl })),
        any::<i64>().prop_map(|id| KvCommand::LeaseRevoke(LeaseRevokeRequest { id })),
        any::<i64>().prop_map(|id| KvCommand::LeaseKeepAlive(LeaseKeepAliveRequest { id })),
        arb_auth_command().prop_map(KvCommand::Auth),
    ]
}
