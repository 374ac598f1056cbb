//! The concurrent etcd-API clients and the gRPC helpers the run uses.
//!
//! Each client has at most one request in flight and records every request as a
//! [`Record`]. Values are unique (`c{client}-{seq}`) so the checker can tell writes apart.
//! A client talks to one member and moves to the next after an error or timeout, as an etcd
//! client library would.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcd_proto::etcdserverpb::kv_client::KvClient;
use etcd_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use etcd_proto::etcdserverpb::{
    compare, request_op, response_op, Compare, DeleteRangeRequest, PutRequest, RangeRequest,
    RequestOp, StatusRequest, TxnRequest,
};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

use crate::check::{Dump, KeyState, LEDGER_PREFIX};
use crate::history::{Op, Outcome, Record};

/// A lazily connected channel to `url` (a member that is down must not block the run).
pub fn channel(url: &str, timeout: Duration) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(url.to_string())?
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect_lazy())
}

/// What the workload shares with the run.
pub struct Shared {
    pub start: Instant,
    pub stop: AtomicBool,
    /// Requests issued so far, against `max_ops`.
    pub issued: AtomicU64,
    pub max_ops: u64,
    pub incarnations: Arc<Vec<AtomicU64>>,
    pub op_timeout: Duration,
    /// Length of a key epoch: the workload moves to fresh keys every epoch so each key's
    /// history (one checker partition) stays small enough to check exhaustively.
    pub epoch: Duration,
    pub keys_per_epoch: u64,
    /// Planted bug (test-only): record serializable reads as linearizable ones, as if the
    /// cluster answered linearizable reads from a member's possibly stale state. A run with
    /// this set must report linearizability violations.
    pub plant_stale_reads: bool,
}

impl Shared {
    pub fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
}

/// One client: issues operations until told to stop or the request budget is spent.
pub async fn run_client(
    id: u64,
    channels: Vec<Channel>,
    shared: Arc<Shared>,
    seed: u64,
) -> Vec<Record> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ id.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut member = id as usize % channels.len();
    let mut seq = 0u64;
    let mut last_seen: HashMap<String, Option<String>> = HashMap::new();
    let mut records = Vec::new();
    while !shared.stop.load(Ordering::Relaxed)
        && shared.issued.fetch_add(1, Ordering::Relaxed) < shared.max_ops
    {
        seq += 1;
        let epoch = shared.start.elapsed().as_nanos() / shared.epoch.as_nanos().max(1);
        let key_at = |i: u64| format!("k{epoch}/{i}");
        let n = shared.keys_per_epoch.max(2);
        let k1 = rng.next_u64() % n;
        let k2 = (k1 + 1 + rng.next_u64() % (n - 1)) % n;
        let value = format!("c{id}-{seq}");
        let roll = rng.next_u64() % 100;
        let op = match roll {
            0..25 => Op::Put {
                key: key_at(k1),
                value,
            },
            25..45 => Op::Get {
                key: key_at(k1),
                serializable: false,
            },
            45..55 => Op::Get {
                key: key_at(k1),
                serializable: true,
            },
            55..75 => {
                let key = key_at(k1);
                let expected = last_seen.get(&key).cloned().flatten();
                Op::Cas {
                    key,
                    expected,
                    new: value,
                }
            }
            75..80 => Op::Delete { key: key_at(k1) },
            80..86 => Op::MultiPut {
                puts: vec![(key_at(k1), value.clone()), (key_at(k2), value)],
            },
            86..92 => Op::MultiGet {
                keys: vec![key_at(k1), key_at(k2)],
            },
            _ => Op::Put {
                key: format!("{LEDGER_PREFIX}c{id}-{seq}"),
                value,
            },
        };
        let inc_before = shared.incarnations[member].load(Ordering::SeqCst);
        let invoke = shared.now();
        let mut kv = KvClient::new(channels[member].clone()).max_decoding_message_size(64 << 20);
        let result = tokio::time::timeout(shared.op_timeout, execute(&mut kv, &op)).await;
        let complete = shared.now();
        let inc_after = shared.incarnations[member].load(Ordering::SeqCst);
        let op = match op {
            Op::Get { key, .. } if shared.plant_stale_reads => Op::Get {
                key,
                serializable: false,
            },
            op => op,
        };
        let mut record = Record {
            client: id,
            member,
            incarnation: (inc_before == inc_after).then_some(inc_before),
            op,
            invoke,
            complete: None,
            outcome: None,
            revision: None,
            error: None,
        };
        match result {
            Ok(Ok((outcome, revision))) => {
                remember(&mut last_seen, &record.op, &outcome);
                record.complete = Some(complete);
                record.outcome = Some(outcome);
                record.revision = Some(revision);
            }
            Ok(Err(status)) => {
                record.incarnation = None;
                record.error = Some(format!("{:?}: {}", status.code(), status.message()));
                member = (member + 1) % channels.len();
            }
            Err(_) => {
                record.incarnation = None;
                record.error = Some("timeout".into());
                member = (member + 1) % channels.len();
            }
        }
        if record.outcome.is_none() {
            // A write we know nothing about may have changed any key it names.
            forget(&mut last_seen, &record.op);
            // Do not spin against a member that refuses at once.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        records.push(record);
    }
    records
}

fn remember(seen: &mut HashMap<String, Option<String>>, op: &Op, outcome: &Outcome) {
    match (op, outcome) {
        (Op::Put { key, value }, _) => {
            seen.insert(key.clone(), Some(value.clone()));
        }
        (Op::Get { key, .. }, Outcome::Get { value, .. }) => {
            seen.insert(key.clone(), value.clone());
        }
        (Op::Cas { key, new, .. }, Outcome::Cas { succeeded: true }) => {
            seen.insert(key.clone(), Some(new.clone()));
        }
        (Op::Delete { key }, _) => {
            seen.insert(key.clone(), None);
        }
        (Op::MultiPut { puts }, _) => {
            for (k, v) in puts {
                seen.insert(k.clone(), Some(v.clone()));
            }
        }
        (Op::MultiGet { keys }, Outcome::MultiGet { values }) => {
            for (k, v) in keys.iter().zip(values) {
                seen.insert(k.clone(), v.clone());
            }
        }
        _ => {}
    }
}

fn forget(seen: &mut HashMap<String, Option<String>>, op: &Op) {
    match op {
        Op::Put { key, .. } | Op::Cas { key, .. } | Op::Delete { key } => {
            seen.remove(key);
        }
        Op::MultiPut { puts } => {
            for (k, _) in puts {
                seen.remove(k);
            }
        }
        _ => {}
    }
}

fn string(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).into_owned()
}

fn put_op(key: &str, value: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            ..Default::default()
        })),
    }
}

/// Sends `op`; the outcome and the response header's revision.
pub async fn execute(kv: &mut KvClient<Channel>, op: &Op) -> Result<(Outcome, i64), tonic::Status> {
    let rev = |h: Option<etcd_proto::etcdserverpb::ResponseHeader>| h.map_or(0, |h| h.revision);
    match op {
        Op::Put { key, value } => {
            let r = kv
                .put(PutRequest {
                    key: key.as_bytes().to_vec(),
                    value: value.as_bytes().to_vec(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok((Outcome::Put, rev(r.header)))
        }
        Op::Get { key, serializable } => {
            let r = kv
                .range(RangeRequest {
                    key: key.as_bytes().to_vec(),
                    serializable: *serializable,
                    ..Default::default()
                })
                .await?
                .into_inner();
            let kv0 = r.kvs.into_iter().next();
            let mod_revision = kv0.as_ref().map_or(0, |k| k.mod_revision);
            Ok((
                Outcome::Get {
                    value: kv0.map(|k| string(k.value)),
                    mod_revision,
                },
                rev(r.header),
            ))
        }
        Op::Delete { key } => {
            let r = kv
                .delete_range(DeleteRangeRequest {
                    key: key.as_bytes().to_vec(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok((Outcome::Delete { deleted: r.deleted }, rev(r.header)))
        }
        Op::Cas { key, expected, new } => {
            let compare = match expected {
                Some(v) => Compare {
                    result: compare::CompareResult::Equal as i32,
                    target: compare::CompareTarget::Value as i32,
                    key: key.as_bytes().to_vec(),
                    target_union: Some(compare::TargetUnion::Value(v.as_bytes().to_vec())),
                    range_end: Vec::new(),
                },
                // Absent: etcd's idiom is create_revision == 0.
                None => Compare {
                    result: compare::CompareResult::Equal as i32,
                    target: compare::CompareTarget::Create as i32,
                    key: key.as_bytes().to_vec(),
                    target_union: Some(compare::TargetUnion::CreateRevision(0)),
                    range_end: Vec::new(),
                },
            };
            let r = kv
                .txn(TxnRequest {
                    compare: vec![compare],
                    success: vec![put_op(key, new)],
                    failure: vec![],
                })
                .await?
                .into_inner();
            Ok((
                Outcome::Cas {
                    succeeded: r.succeeded,
                },
                rev(r.header),
            ))
        }
        Op::MultiPut { puts } => {
            let r = kv
                .txn(TxnRequest {
                    compare: vec![],
                    success: puts.iter().map(|(k, v)| put_op(k, v)).collect(),
                    failure: vec![],
                })
                .await?
                .into_inner();
            Ok((Outcome::MultiPut, rev(r.header)))
        }
        Op::MultiGet { keys } => {
            let r = kv
                .txn(TxnRequest {
                    compare: vec![],
                    success: keys
                        .iter()
                        .map(|k| RequestOp {
                            request: Some(request_op::Request::RequestRange(RangeRequest {
                                key: k.as_bytes().to_vec(),
                                ..Default::default()
                            })),
                        })
                        .collect(),
                    failure: vec![],
                })
                .await?
                .into_inner();
            let mut values = Vec::new();
            for resp in r.responses {
                match resp.response {
                    Some(response_op::Response::ResponseRange(range)) => {
                        values.push(range.kvs.into_iter().next().map(|k| string(k.value)))
                    }
                    other => {
                        return Err(tonic::Status::internal(format!(
                            "txn of ranges answered {other:?}"
                        )))
                    }
                }
            }
            if values.len() != keys.len() {
                return Err(tonic::Status::internal("txn answered too few ranges"));
            }
            Ok((Outcome::MultiGet { values }, rev(r.header)))
        }
    }
}

/// One member's view: leader id, chosen index, term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    pub leader: u64,
    pub raft_index: u64,
    pub term: u64,
}

pub async fn status(ch: &Channel, timeout: Duration) -> Option<MemberStatus> {
    let mut m = MaintenanceClient::new(ch.clone());
    let r = tokio::time::timeout(timeout, m.status(StatusRequest {}))
        .await
        .ok()?
        .ok()?
        .into_inner();
    Some(MemberStatus {
        leader: r.leader,
        raft_index: r.raft_index,
        term: r.raft_term,
    })
}

/// The whole key space of one member, read from its own state (serializable).
pub async fn dump(ch: &Channel, member: usize, timeout: Duration) -> Result<Dump, tonic::Status> {
    let mut kv = KvClient::new(ch.clone()).max_decoding_message_size(256 << 20);
    let r = tokio::time::timeout(
        timeout,
        kv.range(RangeRequest {
            key: vec![0],
            range_end: vec![0],
            serializable: true,
            ..Default::default()
        }),
    )
    .await
    .map_err(|_| tonic::Status::deadline_exceeded("dump timed out"))??
    .into_inner();
    let mut keys: Vec<KeyState> = r
        .kvs
        .into_iter()
        .map(|k| KeyState {
            key: string(k.key),
            value: string(k.value),
            create_revision: k.create_revision,
            mod_revision: k.mod_revision,
            version: k.version,
        })
        .collect();
    keys.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(Dump {
        member,
        revision: r.header.map_or(0, |h| h.revision),
        keys,
    })
}

/// One write through `ch`, for the recovery probe; true if acknowledged.
pub async fn probe_put(ch: &Channel, timeout: Duration) -> bool {
    let mut kv = KvClient::new(ch.clone());
    let req = PutRequest {
        key: b"chaos/probe".to_vec(),
        value: b"p".to_vec(),
        ..Default::default()
    };
    matches!(tokio::time::timeout(timeout, kv.put(req)).await, Ok(Ok(_)))
}

/// Keys the ballast writer uses: outside the checked workload (not in the history), but in
/// the state every member must agree on after the heal.
pub const BALLAST_PREFIX: &str = "chaos/ballast/";
/// Bytes of each ballast value.
const BALLAST_VALUE_BYTES: usize = 64 << 10;
/// Distinct ballast keys, so the store's live data stays small (512 KiB).
const BALLAST_KEYS: u64 = 8;
/// The ballast writer compacts the store's history every this many puts, so snapshots stay
/// small whatever the run's length.
const BALLAST_COMPACT_EVERY: u64 = 32;

/// What the ballast writer did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Ballast {
    pub puts_ok: u64,
    pub puts_failed: u64,
    pub compactions: u64,
}

/// Puts `BALLAST_VALUE_BYTES` values at `bytes_per_sec` until `stop`, moving to the next
/// member after an error, and compacts the store's history now and then: log volume, so
/// members' log segments fill, are compacted and are written over again under the faults.
/// Its requests are not recorded; the state-hash check after the heal covers its keys.
pub async fn run_ballast(
    channels: Vec<Channel>,
    stop: Arc<AtomicBool>,
    bytes_per_sec: u64,
    timeout: Duration,
) -> Ballast {
    let mut done = Ballast::default();
    if bytes_per_sec == 0 || channels.is_empty() {
        return done;
    }
    let every = Duration::from_secs_f64(BALLAST_VALUE_BYTES as f64 / bytes_per_sec as f64);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut member = 0usize;
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        seq += 1;
        let mut kv = KvClient::new(channels[member % channels.len()].clone());
        let req = PutRequest {
            key: format!("{BALLAST_PREFIX}{}", seq % BALLAST_KEYS).into_bytes(),
            value: vec![(seq % 251) as u8; BALLAST_VALUE_BYTES],
            ..Default::default()
        };
        let revision = match tokio::time::timeout(timeout, kv.put(req)).await {
            Ok(Ok(r)) => {
                done.puts_ok += 1;
                r.into_inner().header.map_or(0, |h| h.revision)
            }
            _ => {
                done.puts_failed += 1;
                member += 1;
                continue;
            }
        };
        if done.puts_ok % BALLAST_COMPACT_EVERY == 0 && revision > 0 {
            let req = etcd_proto::etcdserverpb::CompactionRequest {
                revision,
                physical: false,
            };
            if let Ok(Ok(_)) = tokio::time::timeout(timeout, kv.compact(req)).await {
                done.compactions += 1;
            }
        }
    }
    done
}
