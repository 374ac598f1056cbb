//! The trace: one JSON object per line, a header first, then one line per event.
//!
//! The format is documented in `docs/trace-format.md`; bump [`TRACE_FORMAT_VERSION`] on any
//! change a reader could notice. Everything here is plain data so that an explorer can read a
//! trace back with `serde_json` into these same types.

use crate::check::CheckKind;
use crate::faults::{CrashPoint, FaultKind, FaultPlan, FaultProfile};
use crate::kv::KvCommand;
use crate::sim::Timing;
use lincheck::kv::{KvInput, KvOutput};
use paxos::multi::{Message, ReplicaOptions, Role, SlotRecord, Value};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as Json};
use std::io::{self, Write};

/// Version of the trace format; readers must refuse versions they do not know.
pub const TRACE_FORMAT_VERSION: u32 = 1;

/// The value of the header's `format` field.
pub const TRACE_FORMAT_NAME: &str = "synod-sim-trace";

/// The first line of a trace: everything needed to replay the run and read the rest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceHeader {
    /// Always [`TRACE_FORMAT_NAME`].
    pub format: String,
    /// [`TRACE_FORMAT_VERSION`] of the writer.
    pub version: u32,
    /// The seed.
    pub seed: u64,
    /// Cluster size; members are `n1..=nN`.
    pub nodes: usize,
    /// The fault profile.
    pub faults: FaultProfile,
    /// Planted bugs, by kebab-case name.
    pub bugs: Vec<String>,
    /// Number of clients; clients are `c1..=cN`.
    pub clients: usize,
    /// Unit of every time field: always `"us"` (microseconds of virtual time).
    pub time_unit: String,
    /// Timings of the run.
    pub timing: Timing,
    /// The replicas' options (heartbeat and election timeouts are in ticks of `timing.tick_us`).
    pub replica: ReplicaOptions,
    /// The faults this seed drew.
    pub plan: FaultPlan,
}

/// One trace line after the header: a time and an event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceRecord {
    /// Virtual time in microseconds.
    pub t: u64,
    /// What happened.
    #[serde(flatten)]
    pub event: TraceEvent,
}

/// Why a message was not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DropReason {
    /// Random loss.
    Loss,
    /// The link was cut when it was sent or when it arrived.
    Partition,
    /// The receiving node was down.
    NodeDown,
    /// Dropped by hand (an explorer's choice).
    Manual,
}

/// Every kind of trace event. Endpoints are written `"n3"` for a node and `"c2"` for a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum TraceEvent {
    /// A message entered the network.
    Send {
        /// Message id, unique in the run.
        id: u64,
        /// Sender.
        from: String,
        /// Receiver.
        to: String,
        /// Message kind (`accept`, `heartbeat`, `request`, `reply`...).
        kind: String,
        /// The message, described.
        msg: Json,
        /// When it is due to arrive.
        deliver_at: u64,
    },
    /// A message arrived and was handed to its receiver.
    Deliver {
        /// Message id.
        id: u64,
    },
    /// A message was lost.
    Drop {
        /// Message id.
        id: u64,
        /// Why.
        reason: DropReason,
    },
    /// A message was duplicated: `copy` is the id of the second copy.
    Duplicate {
        /// The original's id.
        id: u64,
        /// The copy's id.
        copy: u64,
        /// When the copy is due.
        deliver_at: u64,
    },
    /// A node handed a persist batch to its disk.
    Persist {
        /// Node.
        node: String,
        /// Batch sequence number.
        seq: u64,
        /// Ops in the batch.
        ops: usize,
        /// When the write completes.
        done_at: u64,
    },
    /// A persist batch became durable and was reported to the replica.
    Persisted {
        /// Node.
        node: String,
        /// Batch sequence number.
        seq: u64,
    },
    /// A node's election timer fired and changed its role.
    Timeout {
        /// Node.
        node: String,
        /// Role before.
        from: Role,
        /// Role after.
        to: Role,
    },
    /// A node's role changed because of a message or a client call.
    Role {
        /// Node.
        node: String,
        /// Role before.
        from: Role,
        /// Role after.
        to: Role,
        /// The node's ballot (as `round.node`).
        ballot: String,
    },
    /// A node crashed.
    Crash {
        /// Node.
        node: String,
        /// The crash point.
        point: CrashPoint,
        /// Persist batches appended to the log but not yet synced: the disk keeps, tears or
        /// loses them, as the restart's recovery finds.
        unsynced: usize,
    },
    /// A node restarted from its durable state.
    Restart {
        /// Node.
        node: String,
        /// Of the batches unsynced at the crash, how many recovery found whole.
        batches_kept: usize,
        /// And how many were lost (or torn, and truncated).
        batches_lost: usize,
        /// Torn tails recovery truncated.
        torn_tails: usize,
    },
    /// A node's storage refused to start: the error names the file and what is wrong. The
    /// node stays down until an operator rebuilds it.
    Refused {
        /// Node.
        node: String,
        /// The storage error.
        error: String,
    },
    /// Disk damage was injected into a node's files.
    DiskDamage {
        /// Node.
        node: String,
        /// What kind.
        kind: FaultKind,
        /// The file.
        file: String,
        /// Byte offset (or new length, for a truncation).
        offset: u64,
    },
    /// A node snapshotted its applied state through `through` and compacted its log.
    Snapshot {
        /// Node.
        node: String,
        /// Slot covered.
        through: u64,
    },
    /// A node restored its state from a peer's snapshot through `through`.
    SnapshotInstalled {
        /// Node.
        node: String,
        /// Slot covered.
        through: u64,
    },
    /// A crashed node's disk was wiped: it restarts as a non-voting learner and rebuilds.
    Wipe {
        /// Node.
        node: String,
    },
    /// A partition was applied: `cut` lists every blocked link as `[from, to]`.
    Partition {
        /// The fault kind (absent for shapes applied by hand).
        kind: Option<FaultKind>,
        /// The shape, described.
        shape: Json,
        /// Every blocked directed link.
        cut: Vec<[String; 2]>,
    },
    /// One directed link was cut.
    Cut {
        /// Sender side.
        from: String,
        /// Receiver side.
        to: String,
    },
    /// One directed link was restored.
    Heal {
        /// Sender side.
        from: String,
        /// Receiver side.
        to: String,
    },
    /// Every link was restored.
    HealAll,
    /// A client invoked an operation (the history's `invoke`).
    Invoke {
        /// Client.
        client: String,
        /// The client's operation number.
        op: u64,
        /// The operation.
        input: KvInput,
        /// Command id `client#seq` for writes.
        command: Option<String>,
    },
    /// A client sent (or re-sent) its operation to a node.
    Attempt {
        /// Client.
        client: String,
        /// Operation number.
        op: u64,
        /// Target node.
        node: String,
        /// 1 for the first send.
        attempt: u32,
    },
    /// A client learned its operation's outcome (the history's `complete`).
    Complete {
        /// Client.
        client: String,
        /// Operation number.
        op: u64,
        /// The outcome.
        output: KvOutput,
    },
    /// A client gave up; the operation's outcome is unknown.
    GiveUp {
        /// Client.
        client: String,
        /// Operation number.
        op: u64,
    },
    /// A node handed out a chosen slot.
    Chosen {
        /// Node.
        node: String,
        /// Slot.
        slot: u64,
        /// The value, described.
        value: Json,
    },
    /// A check failed.
    Violation {
        /// The check.
        check: CheckKind,
        /// Node involved.
        node: Option<String>,
        /// Slot involved.
        slot: Option<u64>,
        /// What was seen.
        detail: String,
    },
    /// The run entered a phase: `faults`, `quiet` (faults stopped, everything healed and
    /// restarted), `drain` (clients start nothing new), `end`.
    Phase {
        /// The phase's name.
        phase: String,
    },
    /// The stable leader changed: a leader a quorum follows (`node` null: none).
    Leader {
        /// The leader, if any.
        node: Option<String>,
        /// Its ballot.
        ballot: Option<String>,
    },
}

/// Writes a header and records as JSON lines.
pub fn write_jsonl(
    out: &mut impl Write,
    header: &TraceHeader,
    records: &[TraceRecord],
) -> io::Result<()> {
    serde_json::to_writer(&mut *out, header)?;
    out.write_all(b"\n")?;
    for r in records {
        serde_json::to_writer(&mut *out, r)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// `"n{id}"` for member index `index`.
pub fn node_name(index: usize) -> String {
    format!("n{}", index + 1)
}

/// `"c{id}"` for client index `index`.
pub fn client_name(index: usize) -> String {
    format!("c{}", index + 1)
}

/// A chosen value, described: `"noop"`, or a list of `{"id": "c1#3", "cmd": "put k0=v1.3"}`.
pub fn describe_value(value: &Value) -> Json {
    match value {
        Value::Noop => json!("noop"),
        Value::StopSign(next) => json!({
            "stop_sign": {
                "voters": next.members().iter().map(|n| n.0).collect::<Vec<_>>(),
                "learners": next.learners().iter().map(|n| n.0).collect::<Vec<_>>(),
            }
        }),
        Value::Batch(commands) => Json::Array(
            commands
                .iter()
                .map(|c| {
                    let cmd = match KvCommand::decode(&c.payload) {
                        Some(k) => k.to_string(),
                        None => format!("<{} undecodable bytes>", c.payload.len()),
                    };
                    json!({ "id": format!("c{}#{}", c.id.client.0, c.id.seq), "cmd": cmd })
                })
                .collect(),
        ),
    }
}

fn describe_records(records: &[SlotRecord]) -> Json {
    Json::Array(
        records
            .iter()
            .map(|r| {
                json!({
                    "slot": r.slot.0,
                    "ballot": r.ballot.to_string(),
                    "value": describe_value(&r.value),
                    "chosen": r.chosen,
                })
            })
            .collect(),
    )
}

/// A peer message, described with ballots as `round.node` and values decoded.
pub fn describe_message(msg: &Message) -> Json {
    let mut described = describe_fields(msg);
    // The configuration epoch is written only once there has been a change, so traces of runs
    // without one stay as they were.
    if let (Some(epoch), Json::Object(fields)) = (msg.epoch(), &mut described) {
        if epoch > 0 {
            fields.insert("epoch".into(), json!(epoch));
        }
    }
    described
}

fn describe_fields(msg: &Message) -> Json {
    match msg {
        Message::PreVote { round, .. } => json!({ "round": round }),
        Message::PreVoteReply { round, granted } => json!({ "round": round, "granted": granted }),
        Message::Prepare {
            ballot, from_slot, ..
        } => {
            json!({ "ballot": ballot.to_string(), "from_slot": from_slot.0 })
        }
        Message::Promise {
            ballot,
            from_slot,
            records,
            next_from,
            compacted_through,
        } => json!({
            "ballot": ballot.to_string(),
            "from_slot": from_slot.0,
            "records": describe_records(records),
            "next_from": next_from.map(|s| s.0),
            "compacted_through": compacted_through.0,
        }),
        Message::Accept {
            ballot,
            slot,
            value,
            chosen_through,
            ..
        } => json!({
            "ballot": ballot.to_string(),
            "slot": slot.0,
            "value": describe_value(value),
            "chosen_through": chosen_through.0,
        }),
        Message::Accepted { ballot, slot } => {
            json!({ "ballot": ballot.to_string(), "slot": slot.0 })
        }
        Message::Nack { ballot, promised } => {
            json!({ "ballot": ballot.to_string(), "promised": promised.to_string() })
        }
        Message::Heartbeat {
            ballot,
            chosen_through,
            round,
            ..
        } => {
            json!({ "ballot": ballot.to_string(), "chosen_through": chosen_through.0, "round": round })
        }
        Message::HeartbeatAck {
            ballot,
            round,
            chosen_through,
        } => {
            json!({ "ballot": ballot.to_string(), "round": round, "chosen_through": chosen_through.0 })
        }
        Message::CatchUp { from_slot } => json!({ "from_slot": from_slot.0 }),
        Message::Learn {
            records,
            chosen_through,
            compacted_through,
        } => json!({
            "records": describe_records(records),
            "chosen_through": chosen_through.0,
            "compacted_through": compacted_through.0,
        }),
        Message::RoundQuery => json!({}),
        Message::RoundReport {
            round,
            log_end,
            leading,
        } => json!({ "round": round, "log_end": log_end.0, "leading": leading.to_string() }),
        Message::TakeLead { .. } => json!({}),
        Message::RaiseBallot { epoch, round } => json!({ "epoch": epoch, "round": round }),
    }
}
