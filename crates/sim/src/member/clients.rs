//! Simulated etcd clients: what each asks, as the gRPC services would ask the member, and
//! what each answer means for the checkers.
//!
//! Requests are built from `kv` types directly (the etcd-proto → `kv` conversion lives in
//! `crates/node/src/convert.rs`; the services hand the member exactly these types).

use crate::rng::{below, chance_permille};
use kv::{
    CompactRequest, Compare, CompareResult, CompareTarget, DeleteRangeRequest, KvCommand, KvOutput,
    KvRead, KvReadResponse, KvResponse, LeaseGrantRequest, LeaseRevokeRequest, PutRequest,
    RangeRequest, RequestOp, TxnRequest,
};
use lincheck::etcd::{EtcdInput, EtcdOutput, TxnWrite, LEASE_GROUP_STRIDE};
use member::{Answer, Request};
use rand_chacha::ChaCha8Rng;

/// Keys per group.
const KEYS_PER_GROUP: u64 = 4;
/// Lease ids each client uses per group (re-granted after a revoke, so grants can collide).
const LEASES_PER_CLIENT: u64 = 2;
/// A lease TTL no run outlives: a key may only go with its lease's revoke, never expiry.
pub(crate) const LEASE_TTL_SECS: i64 = 3600;

/// One client operation.
#[derive(Clone, Debug)]
pub(crate) enum ClientOp {
    /// Checked for linearizability (`linearizable` reads and every write of the model).
    Checked(EtcdInput),
    /// A serializable single-key read: served from what the member applied.
    Serializable { key: String },
    /// A read of `key` at an old revision (serializable: the revision fixes the answer).
    Historical { key: String, revision: i64 },
    /// Compact the history through `revision`.
    Compact { revision: i64 },
}

impl ClientOp {
    pub fn kind(&self) -> &'static str {
        match self {
            ClientOp::Checked(i) => match i {
                EtcdInput::Range { prefix: false, .. } => "get",
                EtcdInput::Range { prefix: true, .. } => "range-prefix",
                EtcdInput::Put { lease: 0, .. } => "put",
                EtcdInput::Put { .. } => "put-with-lease",
                EtcdInput::Delete { prefix: false, .. } => "delete",
                EtcdInput::Delete { prefix: true, .. } => "delete-prefix",
                EtcdInput::Txn { .. } => "txn",
                EtcdInput::LeaseGrant { .. } => "lease-grant",
                EtcdInput::LeaseRevoke { .. } => "lease-revoke",
            },
            ClientOp::Serializable { .. } => "get-serializable",
            ClientOp::Historical { .. } => "get-historical",
            ClientOp::Compact { .. } => "compact",
        }
    }

    /// Whether the operation can change the store (its unknown outcome matters).
    pub fn writes(&self) -> bool {
        match self {
            ClientOp::Checked(EtcdInput::Range { .. }) => false,
            ClientOp::Checked(_) | ClientOp::Compact { .. } => true,
            ClientOp::Serializable { .. } | ClientOp::Historical { .. } => false,
        }
    }
}

fn key(rng: &mut ChaCha8Rng, group: u64) -> String {
    format!("g{group}/k{}", below(rng, KEYS_PER_GROUP))
}

fn lease_id(rng: &mut ChaCha8Rng, group: u64, client: u64) -> i64 {
    let n = client * LEASES_PER_CLIENT + below(rng, LEASES_PER_CLIENT);
    (group as i64 + 1) * LEASE_GROUP_STRIDE + n as i64
}

fn txn_write(rng: &mut ChaCha8Rng, group: u64, value: &str) -> TxnWrite {
    if chance_permille(rng, 750) {
        TxnWrite::Put {
            key: key(rng, group),
            value: value.to_owned(),
        }
    } else {
        TxnWrite::Delete {
            key: key(rng, group),
        }
    }
}

/// Up to `n` writes on distinct keys (etcd refuses a branch that writes one key twice).
fn txn_writes(rng: &mut ChaCha8Rng, group: u64, value: &str, n: u64) -> Vec<TxnWrite> {
    let mut writes: Vec<TxnWrite> = Vec::new();
    for _ in 0..n {
        let w = txn_write(rng, group, value);
        let key = |w: &TxnWrite| match w {
            TxnWrite::Put { key, .. } | TxnWrite::Delete { key } => key.clone(),
        };
        if writes.iter().all(|x| key(x) != key(&w)) {
            writes.push(w);
        }
    }
    writes
}

/// Draws client `client`'s next operation; `value` is unique to it in the run, and
/// `seen_revision` the highest revision the client has seen.
pub(crate) fn draw(
    rng: &mut ChaCha8Rng,
    groups: u64,
    client: u64,
    value: String,
    seen_revision: i64,
) -> ClientOp {
    let g = below(rng, groups);
    let roll = below(rng, 100);
    let checked = match roll {
        0..=21 => EtcdInput::Put {
            key: key(rng, g),
            value,
            lease: 0,
        },
        22..=36 => EtcdInput::Range {
            key: key(rng, g),
            prefix: false,
            limit: 0,
        },
        37..=44 => EtcdInput::Range {
            key: format!("g{g}/"),
            prefix: true,
            limit: below(rng, 3),
        },
        45..=50 => EtcdInput::Delete {
            key: key(rng, g),
            prefix: false,
        },
        51..=52 => EtcdInput::Delete {
            key: format!("g{g}/"),
            prefix: true,
        },
        53..=64 => {
            let compares = (0..=below(rng, 1))
                .map(|_| {
                    let k = key(rng, g);
                    let want = chance_permille(rng, 600).then(|| format!("c{client}"));
                    (k, want)
                })
                .collect();
            let (n_success, n_failure) = (1 + below(rng, 2), below(rng, 2));
            let success = txn_writes(rng, g, &value, n_success);
            let failure = txn_writes(rng, g, &value, n_failure);
            EtcdInput::Txn {
                group: format!("g{g}"),
                compares,
                success,
                failure,
            }
        }
        65..=72 => return ClientOp::Serializable { key: key(rng, g) },
        73..=77 => {
            let back = below(rng, 20) as i64;
            return ClientOp::Historical {
                key: key(rng, g),
                revision: (seen_revision - back).max(1),
            };
        }
        78..=79 => {
            let back = 5 + below(rng, 30) as i64;
            return ClientOp::Compact {
                revision: (seen_revision - back).max(1),
            };
        }
        80..=84 => EtcdInput::LeaseGrant {
            id: lease_id(rng, g, client),
        },
        85..=93 => EtcdInput::Put {
            key: key(rng, g),
            value,
            lease: lease_id(rng, g, client),
        },
        _ => EtcdInput::LeaseRevoke {
            id: lease_id(rng, g, client),
        },
    };
    ClientOp::Checked(checked)
}

/// The end of a key range holding every key that starts with `prefix` (etcd's `--prefix`).
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn range_request(key: &str, prefix: bool, limit: u64, revision: i64) -> RangeRequest {
    RangeRequest {
        key: key.as_bytes().to_vec(),
        range_end: if prefix {
            prefix_end(key.as_bytes())
        } else {
            Vec::new()
        },
        limit: limit as i64,
        revision,
        ..RangeRequest::default()
    }
}

fn op_of(w: &TxnWrite) -> RequestOp {
    match w {
        TxnWrite::Put { key, value } => RequestOp::Put(PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            ..PutRequest::default()
        }),
        TxnWrite::Delete { key } => RequestOp::DeleteRange(DeleteRangeRequest {
            key: key.as_bytes().to_vec(),
            ..DeleteRangeRequest::default()
        }),
    }
}

fn write(command: KvCommand, grows: bool) -> Request {
    Request::Write {
        payload: kv::encode(&command),
        grows,
    }
}

/// The member request a gRPC service would make for `op`.
pub(crate) fn request(op: &ClientOp) -> Request {
    match op {
        ClientOp::Checked(input) => match input {
            EtcdInput::Range { key, prefix, limit } => Request::Read {
                read: KvRead::Range(range_request(key, *prefix, *limit, 0)),
                linearizable: true,
            },
            EtcdInput::Put { key, value, lease } => write(
                KvCommand::Put(PutRequest {
                    key: key.as_bytes().to_vec(),
                    value: value.as_bytes().to_vec(),
                    lease: *lease,
                    ..PutRequest::default()
                }),
                true,
            ),
            EtcdInput::Delete { key, prefix } => write(
                KvCommand::DeleteRange(DeleteRangeRequest {
                    key: key.as_bytes().to_vec(),
                    range_end: if *prefix {
                        prefix_end(key.as_bytes())
                    } else {
                        Vec::new()
                    },
                    ..DeleteRangeRequest::default()
                }),
                false,
            ),
            EtcdInput::Txn {
                compares,
                success,
                failure,
                ..
            } => {
                let compare = compares
                    .iter()
                    .map(|(k, want)| Compare {
                        key: k.as_bytes().to_vec(),
                        range_end: Vec::new(),
                        // An absent key is one whose version is 0 (etcd's idiom).
                        target: match want {
                            Some(v) => CompareTarget::Value(v.as_bytes().to_vec()),
                            None => CompareTarget::Version(0),
                        },
                        result: CompareResult::Equal,
                    })
                    .collect();
                write(
                    KvCommand::Txn(TxnRequest {
                        compare,
                        success: success.iter().map(op_of).collect(),
                        failure: failure.iter().map(op_of).collect(),
                    }),
                    true,
                )
            }
            EtcdInput::LeaseGrant { id } => write(
                KvCommand::LeaseGrant(LeaseGrantRequest {
                    id: *id,
                    ttl: LEASE_TTL_SECS,
                }),
                true,
            ),
            EtcdInput::LeaseRevoke { id } => write(
                KvCommand::LeaseRevoke(LeaseRevokeRequest { id: *id }),
                false,
            ),
        },
        ClientOp::Serializable { key } => Request::Read {
            read: KvRead::Range(range_request(key, false, 0, 0)),
            linearizable: false,
        },
        ClientOp::Historical { key, revision } => Request::Read {
            read: KvRead::Range(range_request(key, false, 0, *revision)),
            linearizable: false,
        },
        ClientOp::Compact { revision } => write(
            KvCommand::Compact(CompactRequest {
                revision: *revision,
            }),
            false,
        ),
    }
}

/// What an answer means.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Outcome {
    /// It happened; the model's view and the revision in the answer's header.
    Done {
        output: Option<EtcdOutput>,
        revision: i64,
        /// The historical read's value: `(value, mod_revision)` or absent.
        historical: Option<Option<(String, i64)>>,
    },
    /// The store refused it without effect (a historical read of a compacted or future
    /// revision, a compaction of one): nothing to check.
    Refused,
    /// The member gave up (timeout, no leader, ...): a write may or may not have happened.
    Unknown,
}

fn string(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn range_output(r: &kv::RangeResponse) -> EtcdOutput {
    EtcdOutput::Range {
        kvs: r
            .kvs
            .iter()
            .map(|kv| (string(&kv.key), string(&kv.value)))
            .collect(),
        count: r.count.max(0) as u64,
    }
}

fn write_outcome(output: KvOutput) -> Outcome {
    match output {
        Ok(response) => {
            let (out, revision) = match response {
                KvResponse::Put(p) => (Some(EtcdOutput::Put), p.revision),
                KvResponse::DeleteRange(d) => (
                    Some(EtcdOutput::Delete {
                        deleted: d.deleted.max(0) as u64,
                    }),
                    d.revision,
                ),
                KvResponse::Txn(t) => (
                    Some(EtcdOutput::Txn {
                        succeeded: t.succeeded,
                    }),
                    t.revision,
                ),
                KvResponse::LeaseGrant(g) => (Some(EtcdOutput::Lease), g.revision),
                KvResponse::LeaseRevoke(r) => (Some(EtcdOutput::Lease), r.revision),
                KvResponse::Compact(c) => (None, c.revision),
                _ => (None, 0),
            };
            Outcome::Done {
                output: out,
                revision,
                historical: None,
            }
        }
        Err(e @ (kv::KvError::Compacted | kv::KvError::FutureRevision)) => {
            let _ = e;
            Outcome::Refused
        }
        Err(e) => Outcome::Done {
            output: Some(EtcdOutput::Error {
                message: e.to_string(),
            }),
            revision: 0,
            historical: None,
        },
    }
}

/// What `answer` to `op` means.
pub(crate) fn outcome(op: &ClientOp, answer: Answer) -> Outcome {
    match answer {
        Answer::Write(Ok((output, _term))) => write_outcome(output),
        Answer::Write(Err(_)) | Answer::Read(Err(_)) => Outcome::Unknown,
        Answer::Read(Ok((Ok(KvReadResponse::Range(r)), _term))) => match op {
            ClientOp::Historical { .. } => Outcome::Done {
                output: None,
                revision: r.revision,
                historical: Some(r.kvs.first().map(|kv| (string(&kv.value), kv.mod_revision))),
            },
            ClientOp::Checked(_) => Outcome::Done {
                output: Some(range_output(&r)),
                revision: r.revision,
                historical: None,
            },
            _ => Outcome::Done {
                output: None,
                revision: r.revision,
                historical: None,
            },
        },
        Answer::Read(Ok((Ok(_), _))) => Outcome::Unknown,
        Answer::Read(Ok((Err(_), _))) => Outcome::Refused,
        _ => Outcome::Unknown,
    }
}
