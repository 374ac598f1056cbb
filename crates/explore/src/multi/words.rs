//! What the learner reads in a Multi-Paxos session: a sentence for each event, read off the
//! real run (the event, the node it concerns before and after, and the trace records it
//! produced), and the labels of messages, values, disk writes and client operations. Nothing
//! here decides anything of the protocol; the world (`mod.rs`) drives the simulator and checks.

use super::{MultiWorld, Snap};
use crate::journal::{and_list, ballot_text};
use lincheck::kv::{KvInput, KvOutput};
use paxos::multi::{Message, Role, SlotRecord, Value};
use sim::trace::{TraceEvent, TraceRecord};
use sim::{Endpoint, InFlight, KvCommand, Payload, ReplyBody, RequestBody};
use std::collections::BTreeMap;

impl MultiWorld {
    pub(super) fn explain_persisted(
        &self,
        i: usize,
        ops: Vec<String>,
        records: &[TraceRecord],
    ) -> String {
        let what = if ops.is_empty() {
            "its write".to_string()
        } else {
            and_list(&ops)
        };
        let sends = sends_to(records);
        if sends.is_empty() {
            format!("n{}'s disk has made durable: {what}.", i + 1)
        } else {
            format!(
                "n{}'s disk has made durable: {what}. Only now may the messages that depend on it \
                 leave{sends}: a node never tells anyone about a promise or a vote it could \
                 forget in a crash.",
                i + 1
            )
        }
    }

    pub(super) fn explain_tick(&self, i: usize, before: &Snap, records: &[TraceRecord]) -> String {
        let after = self.snap(i);
        let name = format!("n{}", i + 1);
        if before.role != after.role {
            return match after.role {
                Role::PreCandidate => format!(
                    "{name} has heard from no leader for its election timeout (randomized, so \
                     nodes rarely time out together). Before raising any ballot it asks the \
                     others for pre-votes{}: only if a quorum also misses a leader will it \
                     start phase 1.",
                    sends_to(records)
                ),
                Role::Candidate => format!(
                    "{name}'s timer fires again: it starts phase 1 with ballot {}{}.",
                    ballot_text(after.ballot),
                    sends_to(records)
                ),
                Role::Follower if before.role == Role::Leader => format!(
                    "{name} has not heard from a quorum within an election timeout, so it steps \
                     down as leader (check-quorum): a node that may be cut off must not go on \
                     answering as leader."
                ),
                _ => format!(
                    "{name}'s timer fires: {} → {}.",
                    role_name(before.role),
                    role_name(after.role)
                ),
            };
        }
        if after.role == Role::Leader {
            return format!(
                "{name} leads (ballot {}) and sends heartbeats{}: they tell followers it is \
                 alive, so they do not start an election, and carry what is chosen (through \
                 slot {}).",
                ballot_text(after.ballot),
                sends_to(records),
                after.chosen_through.0
            );
        }
        format!("{name}'s timer fires. {}", generic(records))
    }

    pub(super) fn explain_delivery(
        &self,
        m: &InFlight,
        before: Option<&Snap>,
        records: &[TraceRecord],
    ) -> String {
        let dropped = records
            .iter()
            .any(|r| matches!(&r.event, TraceEvent::Drop { id, .. } if *id == m.id));
        let from = m.sender();
        let to = m.receiver();
        if dropped {
            return format!(
                "{} from {from} reaches {to}, but {to} is down or the link is cut: it is lost.",
                payload_label(&m.payload)
            );
        }
        let Endpoint::Node(i) = m.to else {
            return explain_reply(m, &to);
        };
        let after = self.snap(i);
        let sends = sends_to(records);
        let Some(b) = before else {
            return generic(records);
        };
        match &m.payload {
            Payload::Peer(msg) => explain_peer(msg, &from, &to, b, &after, &sends, records),
            Payload::Request(req) => match &req.body {
                RequestBody::Write(cmd) => {
                    let what = KvCommand::decode(&cmd.payload)
                        .map(|c| c.to_string())
                        .unwrap_or_default();
                    if after.role == Role::Leader {
                        format!(
                            "{to} leads, so it proposes c{}'s {what} in the next free slot: it \
                             records its own vote on disk and sends Accept to every other \
                             node{sends}.",
                            req.client + 1
                        )
                    } else {
                        let leader = after
                            .leader
                            .map(|l| format!("n{}", l.0))
                            .unwrap_or_else(|| "nobody yet".to_string());
                        format!(
                            "{to} does not lead, so it does not propose {what}; it tells c{} \
                             that the leader is {leader}, and the client will try there.",
                            req.client + 1
                        )
                    }
                }
                RequestBody::Read { key } => {
                    if after.leased_reads > b.leased_reads {
                        format!(
                            "{to} leads and holds its lease: a quorum echoed a heartbeat it sent \
                             recently enough that none of them may promise another leader yet, \
                             so it answers get {key} from its own state at once{sends}, with no \
                             heartbeat round and no log write."
                        )
                    } else if after.role == Role::Leader {
                        format!(
                            "{to} leads: it notes the last slot that may hold a write (read \
                             index) and confirms its leadership with a fresh heartbeat round{sends} \
                             before serving get {key}. No log write is needed."
                        )
                    } else {
                        format!(
                            "{to} does not lead: it sends c{} to the leader to read {key}.",
                            req.client + 1
                        )
                    }
                }
            },
            _ => generic(records),
        }
    }
}

pub(super) trait Names {
    fn sender(&self) -> String;
    fn receiver(&self) -> String;
}

impl Names for InFlight {
    fn sender(&self) -> String {
        endpoint_name(self.from)
    }
    fn receiver(&self) -> String {
        endpoint_name(self.to)
    }
}

pub(super) fn endpoint_name(e: Endpoint) -> String {
    match e {
        Endpoint::Node(i) => format!("n{}", i + 1),
        Endpoint::Client(i) => format!("c{}", i + 1),
    }
}

pub(super) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Follower => "follower",
        Role::PreCandidate => "pre-candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

/// A slot's value as a learner reads it: `'put x=1'`, `no-op`.
pub fn describe_value(v: &Value) -> String {
    match v {
        Value::Noop => "no-op".to_string(),
        Value::StopSign(next) => {
            let ids = |ns: &[paxos::NodeId]| {
                ns.iter()
                    .map(|n| format!("n{}", n.0))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!(
                "stop-sign: next voters {}; learners {}",
                ids(next.members()),
                ids(next.learners())
            )
        }
        Value::Batch(commands) => {
            let parts: Vec<String> = commands
                .iter()
                .map(|c| match KvCommand::decode(&c.payload) {
                    Some(k) => k.to_string(),
                    None => format!("<{} bytes>", c.payload.len()),
                })
                .collect();
            format!("'{}'", parts.join("; "))
        }
    }
}

pub(super) fn describe_op(op: &paxos::multi::PersistOp) -> String {
    use paxos::multi::PersistOp;
    match op {
        PersistOp::Promise { ballot } => format!("its promise of ballot {ballot}"),
        PersistOp::Accept {
            slot,
            ballot,
            value,
        } => {
            format!(
                "its vote for {} in slot {} at {ballot}",
                describe_value(value),
                slot.0
            )
        }
        PersistOp::Chosen { slot, .. } => format!("slot {} as chosen", slot.0),
        PersistOp::RebuildStarted => "that it is rebuilding".to_string(),
        PersistOp::VoteRegained { .. } => "that it votes again".to_string(),
        PersistOp::EnterConfiguration { membership } => format!(
            "that it entered configuration epoch {} (from slot {})",
            membership.epoch, membership.first_slot.0
        ),
    }
}

pub(super) fn describe_records(records: &[SlotRecord]) -> String {
    let parts: Vec<String> = records
        .iter()
        .take(4)
        .map(|r| {
            format!(
                "{} at {} in slot {}",
                describe_value(&r.value),
                r.ballot,
                r.slot.0
            )
        })
        .collect();
    let more = records.len().saturating_sub(4);
    if more > 0 {
        format!("{} and {more} more", parts.join(", "))
    } else {
        and_list(&parts)
    }
}

pub(super) fn kind_of(p: &Payload) -> &'static str {
    match p {
        Payload::Peer(m) => m.kind(),
        Payload::Request(_) => "request",
        Payload::Reply(_) => "reply",
        Payload::SnapshotFetch { .. } => "snapshot_fetch",
        Payload::SnapshotChunk(_) => "snapshot_chunk",
    }
}

/// A short label: kind and the fields that matter to a learner.
pub fn payload_label(p: &Payload) -> String {
    match p {
        Payload::Peer(m) => match m {
            Message::PreVote { round, .. } => format!("PreVote r{round}"),
            Message::PreVoteReply { round, granted } => {
                format!(
                    "PreVoteReply r{round} {}",
                    if *granted { "yes" } else { "no" }
                )
            }
            Message::Prepare {
                ballot, from_slot, ..
            } => {
                format!("Prepare {ballot} from slot {}", from_slot.0)
            }
            Message::Promise {
                ballot, records, ..
            } => {
                if records.is_empty() {
                    format!("Promise {ballot}, nothing accepted")
                } else {
                    format!("Promise {ballot}, accepted {}", describe_records(records))
                }
            }
            Message::Accept {
                ballot,
                slot,
                value,
                ..
            } => format!("Accept {ballot} slot {} {}", slot.0, describe_value(value)),
            Message::Accepted { ballot, slot } => format!("Accepted {ballot} slot {}", slot.0),
            Message::Nack { ballot, promised } => format!("Nack {ballot} (promised {promised})"),
            Message::Heartbeat {
                ballot,
                chosen_through,
                ..
            } => format!("Heartbeat {ballot} chosen≤{}", chosen_through.0),
            Message::HeartbeatAck { ballot, .. } => format!("HeartbeatAck {ballot}"),
            Message::CatchUp { from_slot } => format!("CatchUp from slot {}", from_slot.0),
            Message::Learn {
                records,
                chosen_through,
                ..
            } => format!("Learn {} slots, chosen≤{}", records.len(), chosen_through.0),
            Message::RoundQuery => "RoundQuery".to_string(),
            Message::RoundReport { round, log_end, .. } => {
                format!("RoundReport r{round} end {}", log_end.0)
            }
            Message::TakeLead { epoch } => format!("TakeLead epoch {epoch}"),
            Message::RaiseBallot { round, .. } => format!("RaiseBallot above r{round}"),
        },
        Payload::Request(r) => match &r.body {
            RequestBody::Write(c) => format!(
                "request {}",
                KvCommand::decode(&c.payload)
                    .map(|k| k.to_string())
                    .unwrap_or_default()
            ),
            RequestBody::Read { key } => format!("request get {key}"),
        },
        Payload::Reply(r) => match &r.body {
            ReplyBody::Done(out) => format!("reply {}", describe_output(out)),
            ReplyBody::NotLeader(Some(l)) => format!("reply: ask n{}", l.0),
            ReplyBody::NotLeader(None) => "reply: no leader known".to_string(),
            ReplyBody::Busy => "reply: busy".to_string(),
        },
        Payload::SnapshotFetch { .. } => "snapshot fetch".to_string(),
        Payload::SnapshotChunk(_) => "snapshot chunk".to_string(),
    }
}

pub(super) fn describe_input(i: &KvInput) -> String {
    match i {
        KvInput::Get { key } => format!("get {key}"),
        KvInput::Put { key, value } => format!("put {key}={value}"),
        other => format!("{other:?}"),
    }
}

pub(super) fn describe_output(o: &KvOutput) -> String {
    match o {
        KvOutput::Get { value: Some(v) } => format!("= {v}"),
        KvOutput::Get { value: None } => "= (absent)".to_string(),
        KvOutput::Put => "ok".to_string(),
        other => format!("{other:?}"),
    }
}

/// " (Prepare to n2 and n3)" from the records' sends, or "" if none.
pub(super) fn sends_to(records: &[TraceRecord]) -> String {
    let mut by_kind: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in records {
        if let TraceEvent::Send { kind, to, .. } = &r.event {
            by_kind
                .entry(kind_title(kind))
                .or_default()
                .push(to.clone());
        }
    }
    if by_kind.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = by_kind
        .into_iter()
        .map(|(k, to)| format!("{k} to {}", and_list(&to)))
        .collect();
    format!(" ({})", parts.join("; "))
}

pub(super) fn kind_title(kind: &str) -> String {
    kind.split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect(),
                None => String::new(),
            }
        })
        .collect()
}

pub(super) fn generic(records: &[TraceRecord]) -> String {
    let mut parts = Vec::new();
    for r in records {
        match &r.event {
            TraceEvent::Send { .. } | TraceEvent::Deliver { .. } | TraceEvent::Persist { .. } => {}
            TraceEvent::Role {
                node, to, ballot, ..
            } => parts.push(format!(
                "{node} becomes {} at ballot {ballot}",
                role_name(*to)
            )),
            TraceEvent::Chosen { node, slot, .. } => {
                parts.push(format!("{node} applies chosen slot {slot}"))
            }
            TraceEvent::Complete { client, output, .. } => {
                parts.push(format!("{client} gets {}", describe_output(output)))
            }
            TraceEvent::Crash { node, .. } => parts.push(format!("{node} crashes")),
            TraceEvent::Restart { node, .. } => parts.push(format!("{node} restarts")),
            TraceEvent::Partition { cut, .. } => {
                parts.push(format!("the network partitions ({} links cut)", cut.len()))
            }
            TraceEvent::HealAll => parts.push("every link heals".to_string()),
            TraceEvent::Drop { id, reason } => {
                parts.push(format!("message {id} is lost ({reason:?})"))
            }
            other => {
                if let Ok(serde_json::Value::Object(o)) = serde_json::to_value(other) {
                    if let Some(ev) = o.get("ev").and_then(|e| e.as_str()) {
                        parts.push(ev.replace('_', " "));
                    }
                }
            }
        }
    }
    let sends = sends_to(records);
    if parts.is_empty() && sends.is_empty() {
        "An internal event with nothing to show.".to_string()
    } else {
        let mut s = parts.join("; ");
        if !sends.is_empty() {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(&format!("Sends{sends}"));
        }
        format!("{s}.")
    }
}

pub(super) fn explain_reply(m: &InFlight, to: &str) -> String {
    match &m.payload {
        Payload::Reply(r) => match &r.body {
            ReplyBody::Done(out) => format!(
                "{to} receives its answer from {}: {}. The operation is complete.",
                m.sender(),
                describe_output(out)
            ),
            ReplyBody::NotLeader(Some(l)) => format!(
                "{to} learns from {} that n{} leads, and will send its request there.",
                m.sender(),
                l.0
            ),
            ReplyBody::NotLeader(None) => format!(
                "{to} learns that {} knows no leader; it will try again later.",
                m.sender()
            ),
            ReplyBody::Busy => format!("{to} is told {} is busy.", m.sender()),
        },
        p => format!("{to} receives {}.", payload_label(p)),
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn explain_peer(
    msg: &Message,
    from: &str,
    to: &str,
    b: &Snap,
    a: &Snap,
    sends: &str,
    records: &[TraceRecord],
) -> String {
    let became = |role: Role| b.role != role && a.role == role;
    match msg {
        Message::PreVote { round, .. } => {
            let granted = records.iter().any(|r| {
                matches!(&r.event, TraceEvent::Send { kind, msg, .. }
                    if kind == "pre_vote_reply" && msg.get("granted") == Some(&serde_json::json!(true)))
            });
            if granted {
                format!(
                    "{to} grants {from} a pre-vote for round {round}: it has not heard from a \
                     live leader lately either. A pre-vote promises nothing; it only lets \
                     {from} know an election could succeed."
                )
            } else {
                format!(
                    "{to} refuses {from} a pre-vote for round {round}: it heard from a leader \
                     recently (or its log is ahead), so an election now would only disrupt."
                )
            }
        }
        Message::PreVoteReply { granted, .. } => {
            if became(Role::Candidate) {
                format!(
                    "{to} now has pre-votes from a quorum, so it starts phase 1 with ballot {}: \
                     it writes its own promise to disk, and its Prepares leave once that is \
                     durable{sends}.",
                    ballot_text(a.ballot)
                )
            } else if *granted {
                format!("{to} counts {from}'s pre-vote; it needs a quorum before phase 1.")
            } else {
                format!("{to} notes {from} refused its pre-vote.")
            }
        }
        Message::Prepare {
            ballot, from_slot, ..
        } => {
            if a.promises_held > b.promises_held {
                format!(
                    "{to} holds {from}'s Prepare {ballot} unanswered: it echoed its leader's \
                     heartbeat recently and so granted that leader a lease, a promise to back no \
                     one else until the grant runs out on its own clock. It answers then. This is \
                     what makes a new leader wait out the old leader's lease."
                )
            } else if a.promised == *ballot && b.promised < *ballot {
                let accepted: Vec<String> = b
                    .entries
                    .iter()
                    .filter(|(s, _)| **s >= from_slot.0)
                    .take(4)
                    .map(|(s, (bb, v, _))| format!("{v} at {bb} in slot {s}"))
                    .collect();
                let report = if accepted.is_empty() {
                    "that it has accepted nothing from there".to_string()
                } else {
                    format!(
                        "that it already accepted {}, so {from} must propose that again rather \
                         than a value of its own",
                        and_list(&accepted)
                    )
                };
                format!(
                    "{to} promises ballot {ballot} to {from} (its promise was {}): it will never \
                     again accept anything below {ballot}. Its Promise will report {report}. \
                     The promise goes to disk first; the Promise leaves once it is durable.",
                    ballot_text(b.promised)
                )
            } else if b.promised > *ballot {
                format!(
                    "{to} refuses ballot {ballot}: it already promised {}, which is higher. \
                     It tells {from} so{sends}, so that {from} can retry above it.",
                    ballot_text(b.promised)
                )
            } else if !b.voting {
                format!("{to} is rebuilding after losing its disk and does not promise anything.")
            } else {
                format!(
                    "{to} receives {from}'s Prepare {ballot} again and repeats its answer{sends}."
                )
            }
        }
        Message::Promise {
            ballot, records: r, ..
        } => {
            let reported = if r.is_empty() {
                format!("{from} reports nothing accepted")
            } else {
                format!(
                    "{from} reports it accepted {}, which {to} must re-propose",
                    describe_records(r)
                )
            };
            if became(Role::Leader) {
                format!(
                    "{to} now holds promises for ballot {ballot} from a quorum ({reported}): it \
                     leads. No smaller ballot can get a new value chosen any more. For every \
                     open slot it proposes the value accepted at the highest ballot a promise \
                     reported, a no-op where none was, and then new commands{sends}."
                )
            } else if a.role == Role::Leader && a.ballot == *ballot {
                format!(
                    "{to} already leads with ballot {ballot}; {from}'s promise adds nothing new."
                )
            } else if a.role == Role::Candidate && a.ballot == *ballot {
                format!("{to} counts {from}'s promise for {ballot}; {reported}. It needs a quorum.")
            } else {
                format!("{to} ignores {from}'s promise for {ballot}: it is no longer running that ballot.")
            }
        }
        Message::Accept {
            ballot,
            slot,
            value,
            ..
        } => {
            let v = describe_value(value);
            let now = a.entries.get(&slot.0);
            if now.is_some_and(|(bb, vv, _)| bb == ballot && *vv == v)
                && b.entries.get(&slot.0) != now
            {
                format!(
                    "{to} accepts {v} in slot {} at ballot {ballot} (it promised nothing higher). \
                     The vote goes to disk first; {to} answers Accepted once it is durable.",
                    slot.0
                )
            } else if b.promised > *ballot {
                format!(
                    "{to} refuses the Accept for slot {} at {ballot}: it promised {}, which is \
                     higher{sends}.",
                    slot.0,
                    ballot_text(b.promised)
                )
            } else {
                format!(
                    "{to} already holds this vote for slot {} and answers again{sends}.",
                    slot.0
                )
            }
        }
        Message::Accepted { ballot, slot } => {
            if a.chosen_through > b.chosen_through {
                format!(
                    "{to} now counts Accepted for slot {} at {ballot} from a quorum: it knows the \
                     slot is chosen and applies it (through slot {}); its next Accept tells the \
                     others, or a heartbeat sent at once when it has nothing to propose.",
                    slot.0, a.chosen_through.0
                )
            } else {
                format!("{to} counts {from}'s vote for slot {} at {ballot}.", slot.0)
            }
        }
        Message::Nack { ballot, promised } => format!(
            "{to} learns {from} promised {promised}, above its ballot {ballot}: it gives up that \
             ballot{}.",
            if b.role != a.role {
                format!(" and becomes {}", role_name(a.role))
            } else {
                String::new()
            }
        ),
        Message::Heartbeat {
            ballot,
            chosen_through,
            ..
        } => {
            let learned = if a.chosen_through > b.chosen_through {
                format!(
                    " It learns slots through {} are chosen.",
                    a.chosen_through.0
                )
            } else {
                String::new()
            };
            let follow = if b.leader != a.leader {
                format!(" It now follows {from}.")
            } else {
                String::new()
            };
            format!(
                "{to} hears from leader {from} (ballot {ballot}, chosen through {}) and resets \
                 its election timer.{follow}{learned}",
                chosen_through.0
            )
        }
        Message::HeartbeatAck { ballot, .. } => format!(
            "{to} hears that {from} still follows ballot {ballot}: a quorum of these confirms \
             {to} still leads (for check-quorum and read-index)."
        ),
        Message::CatchUp { from_slot } => format!(
            "{to} is asked by {from}, who is behind, for chosen slots from {}{sends}.",
            from_slot.0
        ),
        Message::Learn { records: r, .. } => format!(
            "{to} learns {} chosen slot(s) from {from} and applies them in order.",
            r.len()
        ),
        Message::RoundQuery => {
            format!("{to} tells {from}, which lost its disk, the highest round it has seen{sends}.")
        }
        Message::RoundReport { round, log_end, .. } => format!(
            "{to} hears {from} has seen round {round} and holds slots through {}; it will not \
             vote at or below that round, nor before it holds the chosen log through the \
             leader's log end.",
            log_end.0
        ),
        Message::TakeLead { epoch } => format!(
            "{to} is asked by {from}, a leader leaving the configuration, to lead epoch {epoch}: \
             it runs phase 1 at once."
        ),
        Message::RaiseBallot { round, .. } => format!(
            "{to}, the leader, is asked by {from}, which lost its disk, to run phase 1 again above \
             round {round}: leases hold back every other candidate, not the leader itself."
        ),
    }
}
