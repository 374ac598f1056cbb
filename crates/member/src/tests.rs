//! Members stepped by hand: a tiny deterministic driver (virtual time, messages delivered in
//! order, every persist record durable at once unless a test holds it) around real
//! [`Member`]s. These are the seed of the simulator's member driver.

use crate::cluster::{ClusterChange, MemberEntry, MemberInfo, MemberTable};
use crate::peer::PeerMessage;
use crate::snapshot::{BodyJob, ChunkStored, DecodedSnapshot};
use crate::MemberError;
use crate::{
    Answer, CrashPoint, Member, MemberOptions, MemberParts, Micros, Output, Request, RequestId,
};
use bytes::Bytes;
use kv::{
    KvCommand, KvRead, KvReadResponse, KvResponse, KvStore, LeaseGrantRequest, PutRequest,
    RangeRequest,
};
use paxos::multi::{Applier, Replica, ReplicaOptions};
use paxos::{Configuration, NodeId, QuorumSpec, Slot};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use storage::SnapshotChunk;

const TICK: Duration = Duration::from_millis(10);
/// Snapshot chunks are this small here, so a transfer takes many.
const CHUNK_BYTES: usize = 512;
const SEC: Duration = Duration::from_secs(1);

/// A message in flight between two members.
struct Envelope {
    from: u64,
    to: u64,
    message: PeerMessage,
}

/// A snapshot transfer a member's "disk" is receiving.
struct Receiving {
    transfer: u64,
    through: Slot,
    total_len: u64,
    body: Vec<u8>,
}

/// Members, a network that delivers in order, and a clock that moves only when told.
struct Cluster {
    members: BTreeMap<u64, Member>,
    /// Each member's newest snapshot "file": its slot and body.
    files: BTreeMap<u64, (Slot, Vec<u8>)>,
    receiving: BTreeMap<u64, Receiving>,
    /// Members cut off from everyone: every message to or from them is dropped.
    cut: Vec<u64>,
    /// Members that reached their armed crash point, and where.
    crashed: Vec<(u64, CrashPoint)>,
    now: Micros,
    network: VecDeque<Envelope>,
    /// Paxos messages on these (from, to) links are held, not delivered, until released.
    held_links: Vec<(u64, u64)>,
    held: VecDeque<Envelope>,
    answers: Vec<(u64, RequestId, Answer)>,
    next_request: u64,
    /// Every output of every member, in the order they came, for the determinism test.
    trace: Vec<String>,
    /// Members that said they were removed.
    removed: Vec<u64>,
    /// The peers each member last asked its transport to reach.
    peers: BTreeMap<u64, BTreeMap<u64, Vec<String>>>,
    /// Whether snapshot jobs are held (not encoded nor written) until `finish_snapshots`, as a
    /// driver's worker thread may take its time.
    hold_snapshots: bool,
    /// The held jobs: member, slot, job, and the body the member's store gave when the job came
    /// out, if it was then still applied through the job's slot.
    held_snapshots: Vec<HeldSnapshot>,
    /// Whether received snapshots are held (not decoded) until `finish_decodes`, as a driver's
    /// worker thread may take its time.
    hold_decodes: bool,
    /// The held decodes: member and slot.
    held_decodes: Vec<(u64, Slot)>,
    /// Whether received chunks are held (not stored) until `finish_stores`, as a driver's
    /// intake thread may take its time.
    hold_stores: bool,
    /// The held chunks, in the order they came: member, transfer, chunk.
    held_stores: Vec<(u64, u64, SnapshotChunk)>,
}

/// A snapshot job a test holds.
struct HeldSnapshot {
    member: u64,
    through: Slot,
    job: BodyJob,
    at_the_time: Option<Vec<u8>>,
}

impl Cluster {
    fn new(n: u64, seed: u64) -> Cluster {
        Cluster::with_snapshots_every(n, seed, 10_000)
    }

    fn with_snapshots_every(n: u64, seed: u64, snapshot_every_slots: u64) -> Cluster {
        Cluster::with_options(n, seed, snapshot_every_slots, None)
    }

    fn with_options(
        n: u64,
        seed: u64,
        snapshot_every_slots: u64,
        crash_at: Option<(CrashPoint, u32)>,
    ) -> Cluster {
        let replica = ReplicaOptions::default();
        Cluster::with_replica_options(n, seed, snapshot_every_slots, crash_at, replica)
    }

    fn with_replica_options(
        n: u64,
        seed: u64,
        snapshot_every_slots: u64,
        crash_at: Option<(CrashPoint, u32)>,
        replica_options: ReplicaOptions,
    ) -> Cluster {
        let ids: Vec<u64> = (1..=n).collect();
        let mut seeder = ChaCha8Rng::seed_from_u64(seed);
        let mut members = BTreeMap::new();
        for &id in &ids {
            let config = majority_of(&ids);
            let replica =
                Replica::new(NodeId(id), config, replica_options.clone()).expect("a replica");
            let mut rng = ChaCha8Rng::seed_from_u64(seeder.next_u64());
            let incarnation = rng.next_u64();
            let parts = MemberParts {
                replica,
                applier: Applier::new(KvStore::new()),
                rng: Box::new(rng),
                incarnation,
                newest_snapshot: None,
                restored_bytes: 0,
                options: member_options(&ids, id, snapshot_every_slots, crash_at),
            };
            members.insert(id, Member::new(parts, Micros::ZERO));
        }
        let mut cluster = Cluster {
            members,
            files: BTreeMap::new(),
            receiving: BTreeMap::new(),
            cut: Vec::new(),
            crashed: Vec::new(),
            now: Micros::ZERO,
            network: VecDeque::new(),
            held_links: Vec::new(),
            held: VecDeque::new(),
            answers: Vec::new(),
            next_request: 1,
            trace: Vec::new(),
            removed: Vec::new(),
            peers: BTreeMap::new(),
            hold_snapshots: false,
            held_snapshots: Vec::new(),
            hold_decodes: false,
            held_decodes: Vec::new(),
            hold_stores: false,
            held_stores: Vec::new(),
        };
        cluster.settle();
        cluster
    }

    fn member(&self, id: u64) -> &Member {
        &self.members[&id]
    }

    /// Does every member's outputs and delivers every message, until all is quiet.
    fn settle(&mut self) {
        for _ in 0..100_000 {
            let mut busy = false;
            let ids: Vec<u64> = self.members.keys().copied().collect();
            for id in ids {
                busy |= self.drain(id);
            }
            if let Some(e) = self.network.pop_front() {
                busy = true;
                let now = self.now;
                if let Some(m) = self.members.get_mut(&e.to) {
                    m.on_peer(now, e.from, e.message);
                }
            }
            if !busy {
                return;
            }
        }
        panic!("the cluster never went quiet");
    }

    /// Carries out member `id`'s outputs; whether there were any.
    fn drain(&mut self, id: u64) -> bool {
        let now = self.now;
        let mut any = false;
        loop {
            let Some(output) = self.members.get_mut(&id).and_then(Member::poll_output) else {
                return any;
            };
            any = true;
            self.trace.push(format!("{} {id} {output:?}", self.now.0));
            match output {
                // The disk is instant: durable as soon as written.
                Output::Persist { tag, .. } => self.member_mut(id).on_durable(now, tag),
                Output::Send { to, message } => self.send(id, to, message),
                Output::WriteSnapshot { through, body, .. } if self.hold_snapshots => {
                    let m = self.member(id);
                    let at_the_time = (m.applier().applied_through() == through).then(|| {
                        let encoded = BodyJob::new(m.applier(), true, Some(m.table())).encode();
                        encoded.expect("the body encodes").bytes
                    });
                    self.held_snapshots.push(HeldSnapshot {
                        member: id,
                        through,
                        job: body,
                        at_the_time,
                    });
                }
                Output::WriteSnapshot { through, body, .. } => {
                    self.write_snapshot(id, through, body)
                }
                Output::ServeSnapshotChunk {
                    to,
                    through,
                    offset,
                } => {
                    if let Some(chunk) = self.serve_chunk(id, through, offset) {
                        self.send(id, to, PeerMessage::SnapshotChunk(chunk));
                    }
                }
                Output::StoreSnapshotChunk { transfer, chunk } if self.hold_stores => {
                    self.held_stores.push((id, transfer, chunk));
                }
                Output::StoreSnapshotChunk { transfer, chunk } => {
                    let stored = self.store_chunk(id, transfer, chunk);
                    self.member_mut(id)
                        .on_snapshot_chunk_stored(now, transfer, stored);
                }
                Output::DecodeSnapshot { through } if self.hold_decodes => {
                    self.held_decodes.push((id, through));
                }
                Output::DecodeSnapshot { through } => self.decode_snapshot(id, through),
                Output::Answer {
                    id: request,
                    answer,
                } => self.answers.push((id, request, answer)),
                Output::CompactLog { .. }
                | Output::AppliedChanges(_)
                | Output::AppliedRevision(_) => {}
                Output::Peers(peers) => {
                    self.peers.insert(id, peers);
                }
                Output::Removed => self.removed.push(id),
                // The member dies here: none of its later outputs happen, it hears nothing more.
                Output::Crash(point) => {
                    self.members.remove(&id);
                    self.crashed.push((id, point));
                    return true;
                }
            }
        }
    }

    /// Encodes a snapshot job and "writes" it: durable at once.
    fn write_snapshot(&mut self, id: u64, through: Slot, job: BodyJob) {
        let encoded = job.encode().expect("the body encodes");
        self.files.insert(id, (through, encoded.bytes));
        let now = self.now;
        self.member_mut(id)
            .on_snapshot_written(now, through, Ok(encoded.kv_bytes));
    }

    /// Encodes and writes every held snapshot job, and holds no more; returns each member's
    /// held snapshot with the body as encoded now.
    fn finish_snapshots(&mut self) -> Vec<(HeldSnapshot, Vec<u8>)> {
        self.hold_snapshots = false;
        let mut done = Vec::new();
        for held in std::mem::take(&mut self.held_snapshots) {
            self.write_snapshot(held.member, held.through, held.job.clone());
            let body = self.files[&held.member].1.clone();
            done.push((held, body));
        }
        self.settle();
        done
    }

    /// Decodes member `id`'s newest snapshot "file", which covers `through`, and hands it over.
    fn decode_snapshot(&mut self, id: u64, through: Slot) {
        let decoded = match self.files.get(&id) {
            Some((slot, body)) if *slot == through => {
                DecodedSnapshot::decode(through, body).map_err(|e| e.to_string())
            }
            other => Err(format!(
                "no file through {through}: {:?}",
                other.map(|f| f.0)
            )),
        };
        let now = self.now;
        self.member_mut(id)
            .on_snapshot_decoded(now, through, decoded);
    }

    /// Stores every held chunk in the order it came, telling its member each time, and holds
    /// no more.
    fn finish_stores(&mut self) {
        self.hold_stores = false;
        for (id, transfer, chunk) in std::mem::take(&mut self.held_stores) {
            let stored = self.store_chunk(id, transfer, chunk);
            let now = self.now;
            self.member_mut(id)
                .on_snapshot_chunk_stored(now, transfer, stored);
            self.settle();
        }
    }

    /// Decodes every held snapshot, and holds no more.
    fn finish_decodes(&mut self) {
        self.hold_decodes = false;
        for (id, through) in std::mem::take(&mut self.held_decodes) {
            self.decode_snapshot(id, through);
        }
        self.settle();
    }

    fn member_mut(&mut self, id: u64) -> &mut Member {
        self.members.get_mut(&id).expect("the member")
    }

    fn send(&mut self, from: u64, to: u64, message: PeerMessage) {
        if self.cut.contains(&from) || self.cut.contains(&to) {
            return;
        }
        let hold =
            matches!(message, PeerMessage::Paxos(_)) && self.held_links.contains(&(from, to));
        let envelope = Envelope { from, to, message };
        if hold {
            self.held.push_back(envelope);
        } else {
            self.network.push_back(envelope);
        }
    }

    /// The chunk at `offset` of member `id`'s newest snapshot, if that covers `through`.
    fn serve_chunk(&self, id: u64, through: Slot, offset: u64) -> Option<Bytes> {
        let (slot, body) = self.files.get(&id).filter(|(s, _)| *s >= through)?;
        let start = usize::try_from(offset).ok().filter(|&o| o < body.len())?;
        let end = (start + CHUNK_BYTES).min(body.len());
        let data = body[start..end].to_vec();
        let chunk = SnapshotChunk::new(*slot, offset, body.len() as u64, 0, data);
        Some(Bytes::from(chunk.encode()))
    }

    /// Member `id`'s "disk" takes a chunk, as the node's receiver does: in order, from the
    /// start of a snapshot, complete when every byte is there.
    fn store_chunk(&mut self, id: u64, transfer: u64, chunk: SnapshotChunk) -> ChunkStored {
        let same = self.receiving.get(&id).is_some_and(|r| {
            r.transfer == transfer && r.through == chunk.through && r.total_len == chunk.total_len
        });
        if !same {
            if chunk.offset != 0 {
                return ChunkStored::Ignored { next_offset: 0 };
            }
            self.receiving.insert(
                id,
                Receiving {
                    transfer,
                    through: chunk.through,
                    total_len: chunk.total_len,
                    body: Vec::new(),
                },
            );
        }
        let Some(r) = self.receiving.get_mut(&id) else {
            return ChunkStored::Failed("no receiver".into());
        };
        if chunk.offset != r.body.len() as u64 {
            return ChunkStored::Ignored {
                next_offset: r.body.len() as u64,
            };
        }
        r.body.extend_from_slice(&chunk.data);
        if (r.body.len() as u64) < r.total_len {
            return ChunkStored::Progress {
                next_offset: r.body.len() as u64,
            };
        }
        let Some(r) = self.receiving.remove(&id) else {
            return ChunkStored::Failed("no receiver".into());
        };
        self.files.insert(id, (r.through, r.body));
        ChunkStored::Complete { through: r.through }
    }

    /// Moves the clock one tick, ticks every member, and settles.
    fn tick(&mut self) {
        self.now = self.now + TICK;
        let now = self.now;
        for m in self.members.values_mut() {
            m.tick(now);
        }
        self.settle();
    }

    /// Ticks until `done` holds, at most `limit` of virtual time.
    fn tick_until(&mut self, limit: Duration, mut done: impl FnMut(&Cluster) -> bool) -> bool {
        let end = self.now + limit;
        while self.now < end {
            if done(self) {
                return true;
            }
            self.tick();
        }
        done(self)
    }

    fn leader(&self) -> Option<u64> {
        self.members
            .values()
            .find(|m| m.status().leader == m.id())
            .map(Member::id)
    }

    fn elect(&mut self) -> u64 {
        assert!(
            self.tick_until(10 * SEC, |c| c.leader().is_some()),
            "no leader within 10 s"
        );
        self.leader().expect("a leader")
    }

    /// Hands `request` to member `at`; returns its id.
    fn request(&mut self, at: u64, request: Request) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        let now = self.now;
        self.members
            .get_mut(&at)
            .expect("the member")
            .on_request(now, id, request);
        self.settle();
        id
    }

    /// The answer to `id`, a read on a view served now (as the node's handler serves it).
    fn answer(&mut self, id: RequestId) -> Option<Answer> {
        self.answer_unserved(id).map(Answer::served)
    }

    /// The answer to `id` as the member gave it.
    fn answer_unserved(&mut self, id: RequestId) -> Option<Answer> {
        let at = self.answers.iter().position(|(_, r, _)| *r == id)?;
        Some(self.answers.remove(at).2)
    }

    fn answered(&self, id: RequestId) -> bool {
        self.answers.iter().any(|(_, r, _)| *r == id)
    }

    /// Delivers the held messages and holds no more.
    fn release(&mut self) {
        self.held_links.clear();
        self.network.extend(self.held.drain(..));
        self.settle();
    }
}

/// The member table of members `ids` as their initial cluster describes them.
/// The configuration whose voters are `ids`, with majority quorums.
fn majority_of(ids: &[u64]) -> Configuration {
    Configuration::new(
        ids.iter().map(|&i| NodeId(i)).collect(),
        QuorumSpec::Majority,
    )
    .expect("a configuration")
}

/// The options the test cluster's members start with.
fn member_options(
    ids: &[u64],
    id: u64,
    snapshot_every_slots: u64,
    crash_at: Option<(CrashPoint, u32)>,
) -> MemberOptions {
    MemberOptions {
        members: ids.to_vec(),
        tick: TICK,
        request_timeout: 5 * SEC,
        quota_bytes: 1 << 30,
        client_urls: vec![format!("http://member-{id}")],
        snapshot_every_slots,
        crash_at,
        table: table_of(ids),
        name: format!("m{id}"),
        lease_checkpoint_interval: 2 * SEC,
        election_timeout: SEC,
    }
}

fn table_of(ids: &[u64]) -> MemberTable {
    ids.iter()
        .map(|&i| {
            let info = MemberInfo {
                name: format!("m{i}"),
                peer_urls: vec![format!("http://peer-{i}")],
            };
            (i, info)
        })
        .collect()
}

fn put(key: &str, value: &str) -> Request {
    put_with_lease(key, value, 0)
}

fn put_with_lease(key: &str, value: &str, lease: i64) -> Request {
    Request::Write {
        payload: kv::encode(&KvCommand::Put(PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            lease,
            ..PutRequest::default()
        })),
        grows: true,
    }
}

fn get(key: &str, linearizable: bool) -> Request {
    Request::Read {
        read: KvRead::Range(RangeRequest::single(key.as_bytes().to_vec())),
        linearizable,
    }
}

/// The value a read answered (`None`: no such key).
fn value_of(answer: Option<Answer>) -> Option<String> {
    match answer {
        Some(Answer::Read(Ok((Ok(KvReadResponse::Range(r)), _)))) => r
            .kvs
            .first()
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
        other => panic!("not a read's answer: {other:?}"),
    }
}

fn assert_put_ok(answer: Option<Answer>) {
    match answer {
        Some(Answer::Write(Ok((Ok(KvResponse::Put(_)), _)))) => {}
        other => panic!("not a successful put: {other:?}"),
    }
}

#[test]
fn a_single_member_elects_itself_and_answers_a_put_and_a_read() {
    let mut c = Cluster::new(1, 7);
    assert_eq!(c.elect(), 1);
    let w = c.request(1, put("k", "v"));
    assert!(c.tick_until(SEC, |c| c.answered(w)), "the put is answered");
    assert_put_ok(c.answer(w));
    let r = c.request(1, get("k", true));
    assert!(c.tick_until(SEC, |c| c.answered(r)));
    assert_eq!(value_of(c.answer(r)).as_deref(), Some("v"));
}

#[test]
fn three_members_answer_puts_at_the_leader_and_at_a_follower() {
    let mut c = Cluster::new(3, 11);
    let leader = c.elect();
    let follower = (1..=3).find(|&i| i != leader).expect("a follower");
    let w1 = c.request(leader, put("a", "1"));
    let w2 = c.request(follower, put("b", "2"));
    assert!(c.tick_until(2 * SEC, |c| c.answered(w1) && c.answered(w2)));
    assert_put_ok(c.answer(w1));
    assert_put_ok(c.answer(w2));
    // Every member applied both.
    assert!(c.tick_until(SEC, |c| c.members.values().all(|m| m
        .applier()
        .machine()
        .revision()
        == 3)));
}

/// A write slowed down by a quorum that does not answer keeps where its time went: taken,
/// forwarded at once by a follower, applied only after the links came back. A fast write
/// keeps nothing.
#[test]
fn a_slow_write_keeps_its_trace_and_a_fast_one_does_not() {
    let mut c = Cluster::new(3, 11);
    let leader = c.elect();
    let follower = (1..=3).find(|&i| i != leader).expect("a follower");
    let fast = c.request(follower, put("a", "1"));
    assert!(c.tick_until(SEC, |c| c.answered(fast)));
    assert_eq!(c.member(follower).slow_write_trace(fast), None);
    // The leader's accepts are held: nothing is chosen for a while.
    c.held_links = (1..=3)
        .filter(|&f| f != leader)
        .map(|f| (leader, f))
        .collect();
    let taken = c.now;
    let slow = c.request(follower, put("b", "2"));
    // Held, it waits at least until a new leader (elected without the old one's heartbeats)
    // or the release chooses it.
    assert!(c.tick_until(2 * SEC, |c| c.answered(slow)));
    c.release();
    assert_put_ok(c.answer(slow));
    let trace = c
        .member(follower)
        .slow_write_trace(slow)
        .expect("the slow write's trace");
    assert_eq!(trace.taken, taken);
    assert_eq!(trace.routed, Some(taken), "forwarded at once");
    assert!(trace.forwarded);
    assert!(
        trace.applied.saturating_since(taken) >= crate::SLOW_TRACE_AFTER,
        "{trace:?}"
    );
}

/// Read-index at a follower: the leader confirms its leadership and names a slot; the
/// follower answers only once it has applied through that slot, so it never serves a value
/// older than a write acknowledged before the read began.
#[test]
fn a_linearizable_read_at_a_follower_waits_until_it_applied_through_the_read_index() {
    let mut c = Cluster::new(3, 3);
    let leader = c.elect();
    let mut others = (1..=3).filter(|&i| i != leader);
    let (behind, other) = (others.next().unwrap(), others.next().unwrap());
    let w = c.request(leader, put("k", "old"));
    assert!(c.tick_until(SEC, |c| c.answered(w)));
    assert!(
        c.tick_until(SEC, |c| c.member(behind).applier().machine().revision()
            == 2)
    );

    // The leader's Paxos messages to `behind` are held: it learns nothing new, while the
    // leader and `other` (a quorum) choose the next write.
    c.held_links.push((leader, behind));
    let w = c.request(other, put("k", "new"));
    assert!(c.tick_until(SEC, |c| c.answered(w)));
    assert_put_ok(c.answer(w));
    assert_eq!(c.member(behind).applier().machine().revision(), 2);

    // A serializable read at `behind` answers its stale state at once...
    let r = c.request(behind, get("k", false));
    assert_eq!(value_of(c.answer(r)).as_deref(), Some("old"));
    // ...a linearizable one waits for the read index, however long `behind` is behind.
    let r = c.request(behind, get("k", true));
    for _ in 0..50 {
        c.tick();
    }
    assert!(
        !c.answered(r),
        "answered before applying through the read index"
    );
    c.release();
    assert!(c.tick_until(SEC, |c| c.answered(r)));
    assert_eq!(value_of(c.answer(r)).as_deref(), Some("new"));
}

/// A lease runs out by the caller's clock: not a tick before its TTL, and soon after it the
/// leader revokes it (and its key goes).
#[test]
fn a_lease_expires_only_after_its_ttl_by_the_callers_clock() {
    let mut c = Cluster::new(3, 5);
    let leader = c.elect();
    let grant = Request::Write {
        payload: kv::encode(&KvCommand::LeaseGrant(LeaseGrantRequest { id: 77, ttl: 3 })),
        grows: true,
    };
    let g = c.request(leader, grant);
    assert!(c.tick_until(SEC, |c| c.answered(g)));
    let granted_at = c.now;
    match c.answer(g) {
        Some(Answer::Write(Ok((Ok(KvResponse::LeaseGrant(r)), _)))) => assert_eq!(r.id, 77),
        other => panic!("not a grant: {other:?}"),
    }
    let p = c.request(leader, put_with_lease("leased", "x", 77));
    assert!(c.tick_until(SEC, |c| c.answered(p)));
    assert_put_ok(c.answer(p));

    let alive = |c: &mut Cluster| {
        let q = c.request(leader, Request::LeaseRemaining { id: 77 });
        match c.answer(q) {
            Some(Answer::LeaseRemaining(left)) => left.is_some(),
            other => panic!("not a lease's time: {other:?}"),
        }
    };
    // Just short of the TTL (granted when the grant applied, at `granted_at` or a tick
    // before): still there.
    while c.now + TICK < granted_at + 3 * SEC {
        c.tick();
        assert!(alive(&mut c), "expired at {:?}, before its TTL", c.now);
    }
    let mut expired_at = None;
    for _ in 0..200 {
        c.tick();
        if !alive(&mut c) {
            expired_at = Some(c.now);
            break;
        }
    }
    let expired_at = expired_at.expect("the lease expires within 2 s after its TTL");
    assert!(
        expired_at >= granted_at + 3 * SEC,
        "expired at {expired_at:?}"
    );
    let r = c.request(leader, get("leased", true));
    assert!(c.tick_until(SEC, |c| c.answered(r)));
    assert_eq!(value_of(c.answer(r)), None, "the key went with its lease");
}

/// The same inputs and seed give the same outputs, byte for byte: the member reads no clock,
/// draws no randomness of its own and never iterates a hash order into what it does.
#[test]
fn two_runs_with_the_same_inputs_and_seed_produce_identical_outputs() {
    let run = |seed: u64| {
        let mut c = Cluster::new(3, seed);
        let leader = c.elect();
        let follower = (1..=3).find(|&i| i != leader).expect("a follower");
        let mut ids = Vec::new();
        for i in 0..20 {
            let at = if i % 2 == 0 { leader } else { follower };
            ids.push(c.request(at, put(&format!("k{}", i % 5), &i.to_string())));
            ids.push(c.request(follower, get(&format!("k{}", i % 5), true)));
            c.tick();
        }
        assert!(c.tick_until(5 * SEC, |c| ids.iter().all(|id| c.answered(*id))));
        let status: Vec<_> = c.members.values().map(Member::status).collect();
        (c.trace, status)
    };
    let (a, status_a) = run(42);
    let (b, status_b) = run(42);
    assert!(a.len() > 100, "the run did something ({} outputs)", a.len());
    assert_eq!(status_a, status_b);
    assert_eq!(a.len(), b.len());
    if let Some(i) = (0..a.len()).find(|&i| a[i] != b[i]) {
        panic!("runs differ at output {i}:\n{}\n{}", a[i], b[i]);
    }
}

/// A member cut off while the others choose and compact past what it has: back, it is told
/// the slots it misses are in a snapshot, fetches that snapshot chunk by chunk, installs it,
/// and ends with the same store as the others.
#[test]
fn a_member_that_missed_compacted_slots_catches_up_from_a_snapshot_in_chunks() {
    let mut c = Cluster::with_snapshots_every(3, 9, 5);
    let leader = c.elect();
    let behind = c.leave_a_follower_behind(leader);
    let compacted = c.member(leader).replica().compacted_through();
    assert!(compacted > c.member(behind).applier().applied_through());
    c.cut.clear();
    c.catch_up(behind, leader);
    let stored = format!(" {behind} StoreSnapshotChunk");
    let chunks = c.trace.iter().filter(|t| t.contains(&stored)).count();
    assert!(chunks > 1, "the snapshot came in {chunks} chunks");
    // Pipelined: several chunks asked for before the first of them is stored, never more than
    // the window.
    let asked = format!(" {behind} Send");
    let (mut in_flight, mut most) = (0i64, 0i64);
    for t in &c.trace {
        if t.contains(&asked) && t.contains("SnapshotAsk") {
            in_flight += 1;
        } else if t.contains(&stored) {
            in_flight -= 1;
        }
        most = most.max(in_flight);
    }
    assert!(
        most > 1 && most <= crate::snapshot::WINDOW_CHUNKS as i64,
        "at most {most} chunks in flight"
    );
}

/// The member hands a snapshot out as a job (a view of the store) and goes on while the driver
/// encodes and writes it elsewhere: with the leader's job held, puts are answered, heartbeats
/// keep the same leader at the same ballot over many election timeouts, and no log is
/// compacted. The body encoded afterwards, once the store has moved on, is byte for byte the
/// one the store gave at the snapshot's slot, and its store part is a store fed exactly the
/// puts applied by then. Only then is the log compacted.
#[test]
fn a_snapshot_being_encoded_holds_up_neither_writes_nor_heartbeats() {
    let mut c = Cluster::with_snapshots_every(3, 5, 10);
    let leader = c.elect();
    c.hold_snapshots = true;
    let mut puts = 0;
    while !c.held_snapshots.iter().any(|h| h.member == leader) {
        let w = c.request(leader, put(&format!("k{puts}"), &format!("v{puts}")));
        assert!(c.tick_until(SEC, |c| c.answered(w)), "put {puts} answered");
        assert_put_ok(c.answer(w));
        puts += 1;
        assert!(puts < 100, "no snapshot after {puts} puts");
    }
    let term = c.member(leader).status().term;
    let compacted = c.member(leader).replica().compacted_through();
    let trace_from = c.puts_and_heartbeats_keep_the_lead(leader, term);
    assert_eq!(c.member(leader).replica().compacted_through(), compacted);
    assert!(
        !c.trace[trace_from..]
            .iter()
            .any(|t| t.contains("CompactLog")),
        "compacted while the snapshot was not durable"
    );

    let done = c.finish_snapshots();
    let (held, body) = done
        .into_iter()
        .find(|(h, _)| h.member == leader)
        .expect("the leader's snapshot");
    let through = held.through;
    let at_the_time = held
        .at_the_time
        .expect("the store was at the job's slot when it came out");
    assert_eq!(
        body, at_the_time,
        "the body is the store's at the job's slot"
    );
    let restored = crate::snapshot::AppliedSnapshot::decode(through, &body)
        .and_then(crate::snapshot::AppliedSnapshot::into_applier)
        .expect("restores");
    let mut reference = KvStore::new();
    let applied_puts = restored.machine().revision() - 1;
    assert!(applied_puts > 0 && applied_puts <= puts);
    for i in 0..applied_puts {
        let cmd = KvCommand::Put(PutRequest::new(format!("k{i}"), format!("v{i}")));
        reference.apply(&cmd).expect("put");
    }
    assert_eq!(restored.machine().snapshot(), reference.snapshot());
    assert_eq!(c.member(leader).replica().compacted_through(), through);
    assert!(c.member(leader).applier().machine().revision() > applied_puts + 20);
}

/// A received snapshot is decoded by the driver, not on the member: with the lagging member's
/// decode held after its last chunk is stored, the cluster keeps the same leader at the same
/// ballot over many election timeouts and answers puts, and the lagging member neither
/// installs, compacts nor starts another transfer. Once the decode is handed over it installs
/// the snapshot, compacts through it and catches up with the store the others have.
#[test]
fn a_snapshot_being_received_and_decoded_holds_up_neither_writes_nor_heartbeats() {
    let mut c = Cluster::with_snapshots_every(3, 9, 5);
    let leader = c.elect();
    let behind = c.leave_a_follower_behind(leader);
    assert!(
        c.member(leader).replica().compacted_through()
            > c.member(behind).applier().applied_through()
    );
    c.hold_decodes = true;
    c.cut.clear();
    assert!(
        c.tick_until(10 * SEC, |c| !c.held_decodes.is_empty()),
        "the whole snapshot stored, and its decode asked for"
    );
    let (id, through) = c.held_decodes[0];
    assert_eq!(id, behind);
    let term = c.member(leader).status().term;
    let applied_before = c.member(behind).applier().applied_through();
    assert!(applied_before < through, "nothing installed yet");
    let trace_from = c.puts_and_heartbeats_keep_the_lead(leader, term);
    assert_eq!(c.member(behind).applier().applied_through(), applied_before);
    let behind_outputs = format!(" {behind} ");
    assert!(
        !c.trace[trace_from..]
            .iter()
            .any(|t| t.contains(&behind_outputs)
                && (t.contains("CompactLog") || t.contains("StoreSnapshotChunk"))),
        "the lagging member compacted or fetched again while its snapshot was being decoded"
    );
    assert_eq!(c.held_decodes.len(), 1, "one decode at a time");

    c.finish_decodes();
    assert!(c.member(behind).replica().compacted_through() >= through);
    c.catch_up(behind, leader);
}

/// Received chunks are stored by the driver, off the member, whenever it is done: with the
/// lagging member's chunks held unstored, the cluster keeps the same leader at the same ballot
/// and answers puts, and the lagging member installs nothing and asks no chunk past its
/// window (chunks waiting to be stored count as in flight). Once the chunks are stored, in
/// order, it installs the snapshot and catches up.
#[test]
fn chunks_stored_off_the_member_hold_up_neither_writes_nor_heartbeats() {
    let mut c = Cluster::with_snapshots_every(3, 9, 5);
    let leader = c.elect();
    let behind = c.leave_a_follower_behind(leader);
    c.hold_stores = true;
    c.cut.clear();
    assert!(
        c.tick_until(10 * SEC, |c| !c.held_stores.is_empty()),
        "a chunk arrived to be stored"
    );
    let term = c.member(leader).status().term;
    let applied_before = c.member(behind).applier().applied_through();
    c.puts_and_heartbeats_keep_the_lead(leader, term);
    assert_eq!(c.member(behind).applier().applied_through(), applied_before);
    // Nothing stored, so the window never moved: no chunk asked past it.
    let window = crate::snapshot::WINDOW_CHUNKS * CHUNK_BYTES as u64;
    assert!(
        c.held_stores
            .iter()
            .all(|(id, _, chunk)| *id == behind && chunk.offset < window),
        "a chunk past the window was asked before any was stored"
    );
    c.finish_stores();
    c.catch_up(behind, leader);
}

impl Cluster {
    /// Cuts a follower off while `leader` answers 40 puts (with snapshots every few slots, it
    /// compacts past the follower); returns the follower, still cut off.
    fn leave_a_follower_behind(&mut self, leader: u64) -> u64 {
        let behind = (1..=3).find(|&i| i != leader).expect("a follower");
        self.cut.push(behind);
        for i in 0..40 {
            let w = self.request(leader, put(&format!("key-{i}"), &"v".repeat(100)));
            assert!(self.tick_until(SEC, |c| c.answered(w)), "put {i} answered");
            assert_put_ok(self.answer(w));
        }
        behind
    }

    /// Ticks until member `behind` has the revision `leader` has and applied as far (lease
    /// records change no revision), then checks their stores are the same.
    fn catch_up(&mut self, behind: u64, leader: u64) {
        let revision = self.member(leader).applier().machine().revision();
        let caught_up = self.tick_until(10 * SEC, |c| {
            let (b, l) = (c.member(behind).applier(), c.member(leader).applier());
            b.machine().revision() == revision && b.applied_through() == l.applied_through()
        });
        assert!(caught_up, "m{behind} caught up with m{leader}");
        assert_eq!(
            self.member(behind).applier().machine().digest(),
            self.member(leader).applier().machine().digest()
        );
    }

    /// 20 puts at `leader`, each answered, then many election timeouts: the same leader at
    /// ballot `term` throughout (heartbeats kept the lead). Returns where the trace stood
    /// before.
    fn puts_and_heartbeats_keep_the_lead(&mut self, leader: u64, term: u64) -> usize {
        let trace_from = self.trace.len();
        for i in 0..20 {
            let w = self.request(leader, put(&format!("more{i}"), "x"));
            assert!(self.tick_until(SEC, |c| c.answered(w)), "put {i} answered");
            assert_put_ok(self.answer(w));
        }
        self.tick_until(5 * SEC, |_| false);
        assert_eq!(self.leader(), Some(leader));
        assert_eq!(self.member(leader).status().term, term);
        trace_from
    }
}

/// A crash point is an output in the member's order: everything decided before it (here the
/// persist record of the put's slot) comes out before it, and nothing after it (the answer).
#[test]
fn an_armed_crash_point_comes_out_before_everything_decided_after_it() {
    // A fresh member's election chooses nothing, so the put's slot is the first applied.
    let mut c = Cluster::with_options(1, 1, 10_000, Some((CrashPoint::BeforeApply, 1)));
    c.elect();
    let w = c.request(1, put("k", "v"));
    c.tick_until(SEC, |c| !c.crashed.is_empty());
    assert_eq!(c.crashed, vec![(1, CrashPoint::BeforeApply)]);
    assert!(!c.answered(w), "answered although it died before applying");
    let crash = c
        .trace
        .iter()
        .position(|t| t.contains("Crash(BeforeApply)"))
        .expect("the crash in the trace");
    let persisted = c
        .trace
        .iter()
        .rposition(|t| t.contains("Persist") && t.contains("Accept"))
        .expect("the put's accept persisted");
    assert!(persisted < crash);
    assert_eq!(crash, c.trace.len() - 1, "nothing after the crash");
}

impl Cluster {
    /// Starts member `id` outside the configuration, as `--initial-cluster-state existing`
    /// does: it knows the members `known` and learns the rest from them.
    fn start_joiner(&mut self, id: u64, known: &[u64]) {
        let config = majority_of(known);
        let replica =
            Replica::join(NodeId(id), config, ReplicaOptions::default()).expect("a replica");
        let mut rng = ChaCha8Rng::seed_from_u64(id);
        let incarnation = rng.next_u64();
        let mut ids = known.to_vec();
        ids.push(id);
        self.start_empty(replica, rng, incarnation, &ids);
    }

    /// Starts `replica`'s member with an empty store and no snapshot (a joiner or a wiped
    /// member), knowing the members `ids`.
    fn start_empty(&mut self, replica: Replica, rng: ChaCha8Rng, incarnation: u64, ids: &[u64]) {
        let id = replica.id().0;
        let parts = MemberParts {
            replica,
            applier: Applier::new(KvStore::new()),
            rng: Box::new(rng),
            incarnation,
            newest_snapshot: None,
            restored_bytes: 0,
            options: member_options(ids, id, 10_000, None),
        };
        self.members.insert(id, Member::new(parts, self.now));
        self.settle();
    }

    /// Asks `change` of member `at` and waits for the answer.
    fn change(&mut self, at: u64, change: ClusterChange) -> Result<Vec<MemberEntry>, MemberError> {
        let r = self.request(at, Request::Cluster(change));
        assert!(
            self.tick_until(10 * SEC, |c| c.answered(r)),
            "answered in time"
        );
        match self.answer(r) {
            Some(Answer::Members(result)) => result,
            other => panic!("not a member list: {other:?}"),
        }
    }

    fn list(&mut self, at: u64) -> Vec<MemberEntry> {
        let r = self.request(at, Request::MemberList);
        assert!(
            self.tick_until(5 * SEC, |c| c.answered(r)),
            "answered in time"
        );
        match self.answer(r) {
            Some(Answer::Members(Ok(list))) => list,
            other => panic!("not a member list: {other:?}"),
        }
    }
}

fn add_learner(id: u64) -> ClusterChange {
    ClusterChange::Add {
        id,
        peer_urls: vec![format!("http://peer-{id}")],
        learner: true,
    }
}

/// etcd's replacement procedure, stepped by hand: a learner is added (the stop-sign adds it to
/// the configuration, the table write gives it a name-less entry with its URLs), refused
/// promotion while it lags, caught up once it runs, promoted; every refusal is etcd's.
#[test]
fn a_learner_is_added_refused_promotion_while_it_lags_then_promoted_once_caught_up() {
    let mut c = Cluster::new(3, 21);
    let leader = c.elect();
    let follower = (1..=3).find(|&i| i != leader).expect("a follower");
    // More chosen slots than the core's promotion bound (64), before the learner exists.
    for i in 0..80 {
        let w = c.request(leader, put(&format!("k{i}"), "v"));
        assert!(c.tick_until(2 * SEC, |c| c.answered(w)));
        assert_put_ok(c.answer(w));
    }
    let dup = ClusterChange::Add {
        id: 4,
        peer_urls: vec!["http://peer-2".into()],
        learner: true,
    };
    assert_eq!(c.change(leader, dup), Err(MemberError::PeerUrlExists));
    let voter = ClusterChange::Add {
        id: 4,
        peer_urls: vec!["http://peer-4".into()],
        learner: false,
    };
    assert_eq!(c.change(leader, voter), Err(MemberError::VoterAddRefused));
    // Asked at a follower: forwarded to the leader, and answered by the follower with its own
    // list once it applied the change (so the list it answers already holds the new member).
    let list = c.change(follower, add_learner(4)).expect("added");
    let four = list.iter().find(|m| m.id == 4).expect("listed");
    assert!(four.is_learner);
    assert_eq!(four.peer_urls, vec!["http://peer-4".to_string()]);
    assert_eq!(four.name, "");
    assert!(c.member(follower).replica().config().is_learner(NodeId(4)));
    // Its URLs again: refused for the URLs first, as etcd does; at a follower too (the
    // leader's refusal comes back through it).
    assert_eq!(
        c.change(leader, add_learner(4)),
        Err(MemberError::PeerUrlExists)
    );
    assert_eq!(
        c.change(follower, add_learner(4)),
        Err(MemberError::PeerUrlExists)
    );
    let same_id = ClusterChange::Add {
        id: 4,
        peer_urls: vec!["http://elsewhere".into()],
        learner: true,
    };
    assert_eq!(c.change(leader, same_id), Err(MemberError::MemberExists));
    // Every member's transport now reaches 4.
    assert!(c.peers[&follower].contains_key(&4));
    // It has not started: it holds nothing, so promotion is refused.
    assert_eq!(
        c.change(leader, ClusterChange::Promote { id: 4 }),
        Err(MemberError::LearnerNotReady)
    );
    assert_eq!(
        c.change(leader, ClusterChange::Promote { id: follower }),
        Err(MemberError::NotALearner)
    );
    assert_eq!(
        c.change(leader, ClusterChange::Promote { id: 99 }),
        Err(MemberError::MemberNotFound)
    );
    c.start_joiner(4, &[1, 2, 3]);
    assert!(
        c.tick_until(10 * SEC, |c| c.member(4).applier().machine().revision()
            == 81),
        "the learner catches up"
    );
    assert!(c.member(4).status().is_learner);
    // Once running, it publishes its name (`--name`) into the replicated table, as etcd's
    // members do: listed with it everywhere from then on.
    assert!(
        c.tick_until(10 * SEC, |c| c
            .members
            .values()
            .all(|m| m.table().get(&4).is_some_and(|i| i.name == "m4"))),
        "the new member's name is published"
    );
    // The leader hears the learner's progress with its next acknowledgements: an operator
    // retries until the promotion is accepted.
    let mut promoted = None;
    for _ in 0..50 {
        match c.change(leader, ClusterChange::Promote { id: 4 }) {
            Err(MemberError::LearnerNotReady) => c.tick_until(SEC, |_| false),
            other => {
                promoted = Some(other);
                break;
            }
        };
    }
    let list = promoted.expect("an answer").expect("promoted once in sync");
    assert!(list.iter().all(|m| !m.is_learner));
    assert!(!c.member(4).status().is_learner);
    // A linearizable member list at the new voter, and a write it takes part in.
    let list = c.list(4);
    assert_eq!(
        list.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(list[0].name, "m1");
    let w = c.request(4, put("after", "promote"));
    assert!(c.tick_until(2 * SEC, |c| c.answered(w)));
    assert_put_ok(c.answer(w));
    // Same state everywhere.
    assert!(c.tick_until(2 * SEC, |c| {
        let d: Vec<u64> = c
            .members
            .values()
            .map(|m| m.applier().machine().digest())
            .collect();
        d.windows(2).all(|w| w[0] == w[1])
    }));
}

/// The leader removes itself: the core hands the lead over, the others keep serving, and the
/// removed member says it was removed.
#[test]
fn the_leader_removes_itself_and_the_others_keep_serving() {
    let mut c = Cluster::new(3, 5);
    let leader = c.elect();
    let list = c
        .change(leader, ClusterChange::Remove { id: leader })
        .expect("removed");
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|m| m.id != leader));
    assert!(
        c.tick_until(10 * SEC, |c| c.removed.contains(&leader)),
        "the removed leader says so"
    );
    assert!(
        c.tick_until(10 * SEC, |c| c.leader().is_some_and(|l| l != leader)),
        "another member leads"
    );
    let next = c.leader().expect("a leader");
    let w = c.request(next, put("k", "v"));
    assert!(c.tick_until(5 * SEC, |c| c.answered(w)));
    assert_put_ok(c.answer(w));
    assert_eq!(
        c.change(next, ClusterChange::Remove { id: leader }),
        Err(MemberError::MemberNotFound)
    );
    // The table no longer describes it; the others stop reaching it after the grace period.
    assert!(!c.member(next).table().contains_key(&leader));
    assert!(c.tick_until(60 * SEC, |c| !c.peers[&next].contains_key(&leader)));
}

/// A member's own snapshot carries the configuration and the member table, so a member that
/// catches up from one after a change knows the members.
#[test]
fn a_snapshot_after_a_change_carries_the_configuration_and_the_table() {
    let mut c = Cluster::with_snapshots_every(3, 9, 20);
    let leader = c.elect();
    c.change(leader, add_learner(4)).expect("added");
    for i in 0..60 {
        let w = c.request(leader, put(&format!("k{i}"), "v"));
        assert!(c.tick_until(2 * SEC, |c| c.answered(w)));
    }
    let (through, body) = c.files[&leader].clone();
    let snap = crate::snapshot::AppliedSnapshot::decode(through, &body).expect("decodes");
    let m = snap
        .membership()
        .expect("the configuration is in it")
        .clone();
    assert_eq!(m.epoch, 1);
    assert!(m.config.is_learner(NodeId(4)));
    assert_eq!(
        snap.table().expect("the table")[&4].peer_urls,
        vec!["http://peer-4".to_string()]
    );
}

/// A change asked at a follower while another is under way is refused with the leader's
/// error; one asked by a node outside the configuration is dropped: it changes nothing and
/// gets no answer.
#[test]
fn forwarded_changes_get_the_leaders_refusals_and_strangers_are_not_heard() {
    let mut c = Cluster::new(3, 33);
    let leader = c.elect();
    let followers: Vec<u64> = (1..=3).filter(|&i| i != leader).collect();
    // The leader's accepts are held, so its own change stays under way; a change asked at a
    // follower meanwhile gets the leader's refusal.
    c.held_links = followers.iter().map(|&f| (leader, f)).collect();
    let a = c.request(leader, Request::Cluster(add_learner(4)));
    let b = c.request(followers[1], Request::Cluster(add_learner(5)));
    assert!(!c.answered(a));
    let refused = c.answer(b);
    assert!(
        matches!(
            refused,
            Some(Answer::Members(Err(MemberError::ChangeInProgress)))
        ),
        "{refused:?}"
    );
    c.release();
    assert!(c.tick_until(10 * SEC, |c| c.answered(a)));
    assert!(matches!(c.answer(a), Some(Answer::Members(Ok(_)))));
    // Once in force, the follower's retry goes through.
    c.change(followers[1], add_learner(5)).expect("added");
    let epoch = c.member(leader).replica().epoch();
    // A stranger (id 99) asks the leader to remove a member: nothing happens.
    c.send(
        99,
        leader,
        PeerMessage::ChangeAsk {
            ask: 1,
            change: ClusterChange::Remove { id: followers[0] },
        },
    );
    c.tick_until(2 * SEC, |_| false);
    assert_eq!(c.member(leader).replica().epoch(), epoch);
    assert!(c
        .member(leader)
        .replica()
        .config()
        .contains(NodeId(followers[0])));
    // The follower removes the leader: forwarded, in force, and answered by the follower.
    let list = c
        .change(followers[0], ClusterChange::Remove { id: leader })
        .expect("removed");
    assert!(list.iter().all(|m| m.id != leader));
    assert!(
        c.tick_until(10 * SEC, |c| c.leader().is_some_and(|l| l != leader)),
        "another member leads"
    );
}

/// A member removed and added back under the same id (a machine replaced at the same peer URL)
/// catches up from the start of the log, replaying its previous incarnation's membership and
/// removal: that removal is not its own, so it does not say it was removed, and it is promoted
/// once in sync. (Here the whole catch-up lands between two ticks, so this pins the scenario,
/// not the race: in `synod chaos --faults replace` a tick fell between the old epochs and
/// the new incarnation exited; `epoch_seen` in member.rs is the guard.)
#[test]
fn a_member_re_added_under_its_old_id_does_not_take_its_old_removal_for_its_own() {
    let mut c = Cluster::new(3, 41);
    let leader = c.elect();
    c.change(leader, add_learner(4)).expect("added");
    c.start_joiner(4, &[1, 2, 3]);
    assert!(
        c.tick_until(10 * SEC, |c| c.member(4).status().applied_through
            >= c.member(leader).status().applied_through)
    );
    c.change(leader, ClusterChange::Remove { id: 4 })
        .expect("removed");
    assert!(
        c.tick_until(10 * SEC, |c| c.removed.contains(&4)),
        "the first incarnation says it was removed"
    );
    // The machine is wiped and added back at the same URL: the same id.
    c.members.remove(&4);
    c.removed.clear();
    for i in 0..10 {
        let w = c.request(leader, put(&format!("k{i}"), "v"));
        assert!(c.tick_until(2 * SEC, |c| c.answered(w)));
    }
    c.change(leader, add_learner(4)).expect("added back");
    c.start_joiner(4, &[1, 2, 3]);
    assert!(
        c.tick_until(10 * SEC, |c| c.member(4).status().is_learner
            && c.member(4).status().applied_through
                >= c.member(leader).status().applied_through),
        "the new incarnation catches up"
    );
    assert!(
        !c.removed.contains(&4),
        "the new incarnation took its old removal for its own"
    );
    let mut promoted = false;
    for _ in 0..50 {
        if c.change(leader, ClusterChange::Promote { id: 4 }).is_ok() {
            promoted = true;
            break;
        }
        c.tick_until(SEC, |_| false);
    }
    assert!(promoted, "promoted once in sync");
}

/// etcd's strict reconfiguration check: with one voter of three down, removing a live one
/// would leave one active voter of two, short of a quorum, and is refused as etcd refuses it
/// ("unhealthy cluster"). The down voter itself may go: that is how a dead member is replaced.
#[test]
fn removing_a_live_voter_while_another_is_down_is_refused_as_unhealthy() {
    let mut c = Cluster::new(3, 11);
    let leader = c.elect();
    let others: Vec<u64> = (1..=3).filter(|n| *n != leader).collect();
    let (down, live) = (others[0], others[1]);
    c.cut.push(down);
    // Long enough for the cut voter to stop counting as active (etcd's 5 s).
    assert!(!c.tick_until(7 * SEC, |_| false));
    assert_eq!(c.leader(), Some(leader), "two of three keep the lead");
    assert_eq!(
        c.change(leader, ClusterChange::Remove { id: live }),
        Err(MemberError::Unhealthy)
    );
    let list = c
        .change(leader, ClusterChange::Remove { id: down })
        .expect("the down voter may be removed");
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|m| m.id != down));
}

/// A voter that lost its disk asks every voter for its round while it rebuilds, and counts in
/// no phase-1 quorum until it is done. Removing a live voter (here the leader itself) must then
/// wait: until the others learn the stop-sign chosen, the old configuration may have to find
/// it by a phase 1 of its own, and without the removed member and the rebuilding one it has no
/// quorum (seed 13 of `member_membership` ended with no leader that way). Once the rebuilding
/// voter has not asked for a few election timeouts, the removal goes through.
#[test]
fn removing_a_live_voter_while_another_rebuilds_waits_for_the_rebuild() {
    let mut c = Cluster::new(3, 12);
    let leader = c.elect();
    let rebuilding = (1..=3).find(|n| *n != leader).expect("three members");
    c.send(
        rebuilding,
        leader,
        PeerMessage::Paxos(paxos::multi::Message::RoundQuery),
    );
    c.settle();
    assert_eq!(
        c.member(leader).replica().voters_rebuilding(),
        vec![NodeId(rebuilding)]
    );
    assert_eq!(
        c.change(leader, ClusterChange::Remove { id: leader }),
        Err(MemberError::Unhealthy),
        "the old configuration would be left with one voting voter of three"
    );
    // The rebuild is over (no more asks): after a few election timeouts the mark is gone.
    assert!(c.tick_until(10 * SEC, |c| c
        .member(leader)
        .replica()
        .voters_rebuilding()
        .is_empty()));
    assert_eq!(c.leader(), Some(leader));
    let list = c
        .change(leader, ClusterChange::Remove { id: leader })
        .expect("with every other voter voting, the leader may leave");
    assert!(list.iter().all(|m| m.id != leader));
}

impl Cluster {
    /// Hands every request in `requests` to member `at` in one input
    /// ([`Member::on_requests`]); returns their ids.
    fn requests_together(&mut self, at: u64, requests: Vec<Request>) -> Vec<RequestId> {
        let now = self.now;
        let batch: Vec<(RequestId, Request)> = requests
            .into_iter()
            .map(|r| {
                let id = RequestId(self.next_request);
                self.next_request += 1;
                (id, r)
            })
            .collect();
        let ids = batch.iter().map(|(id, _)| *id).collect();
        self.member_mut(at).on_requests(now, batch);
        self.settle();
        ids
    }
}

/// Writes that reach the leader in one input are proposed in one slot; the same writes
/// given one input each take a slot each (the pipeline has room for all). Either way every
/// write is applied once, in order, and answered.
#[test]
fn writes_that_arrive_together_share_a_slot() {
    let mut c = Cluster::new(3, 17);
    let leader = c.elect();
    let follower = (1..=3).find(|&i| i != leader).expect("a follower");
    let slots_used = |c: &Cluster| c.member(leader).applier().applied_through().0;
    // A member's first write waits for its incarnation's registration (a slot of its own).
    for at in [leader, follower] {
        let first = c.request(at, put("warm", "up"));
        assert!(c.tick_until(SEC, |c| c.answered(first)));
        assert_put_ok(c.answer(first));
    }

    let before = slots_used(&c);
    let together = c.requests_together(
        leader,
        (0..20).map(|i| put(&format!("t{i}"), "v")).collect(),
    );
    assert!(c.tick_until(SEC, |c| together.iter().all(|&id| c.answered(id))));
    let batched = slots_used(&c) - before;
    assert_eq!(batched, 1, "twenty writes in one input: one slot");
    for id in together {
        assert_put_ok(c.answer(id));
    }

    // The same writes, one input each and no settling between: a slot each.
    let before = slots_used(&c);
    let now = c.now;
    let mut one_by_one = Vec::new();
    for i in 0..20 {
        let id = RequestId(c.next_request);
        c.next_request += 1;
        c.member_mut(leader)
            .on_request(now, id, put(&format!("s{i}"), "v"));
        one_by_one.push(id);
    }
    c.settle();
    assert!(c.tick_until(SEC, |c| one_by_one.iter().all(|&id| c.answered(id))));
    assert_eq!(slots_used(&c) - before, 20, "one input each: a slot each");

    // Forwarded from a follower together: one message carries them all, the leader proposes
    // them in one slot, and each is still applied exactly once.
    let before = slots_used(&c);
    let traced = c.trace.len();
    let forwarded = c.requests_together(
        follower,
        (0..10).map(|i| put(&format!("f{i}"), "v")).collect(),
    );
    let sent = |kind: &str| {
        c.trace[traced..]
            .iter()
            .filter(|line| {
                line.split(' ').nth(1) == Some(follower.to_string().as_str())
                    && line.contains(&format!("message: {kind}("))
            })
            .count()
    };
    assert_eq!(sent("Forwards"), 1, "ten writes in one input: one message");
    assert_eq!(sent("Forward"), 0, "and no message of one write");
    assert!(c.tick_until(2 * SEC, |c| forwarded.iter().all(|&id| c.answered(id))));
    assert_eq!(slots_used(&c) - before, 1, "forwarded together: one slot");
    for id in forwarded {
        assert_put_ok(c.answer(id));
    }
    // 1 (the first revision) + 2 + 20 + 20 + 10 puts, each its own revision, on every member.
    assert!(c.tick_until(SEC, |c| c.members.values().all(|m| m
        .applier()
        .machine()
        .revision()
        == 53)));
}

mod lease;
mod reads;
mod renewal;

impl Cluster {
    /// Starts member `id` again with an empty disk (a wiped member: it rebuilds its promises
    /// from the others) and a new incarnation number.
    fn restart_wiped(&mut self, id: u64, incarnation: u64) {
        let ids: Vec<u64> = self.members.keys().copied().collect();
        let config = majority_of(&ids);
        let replica =
            Replica::rebuild(NodeId(id), config, ReplicaOptions::default()).expect("a replica");
        self.start_empty(
            replica,
            ChaCha8Rng::seed_from_u64(incarnation),
            incarnation,
            &ids,
        );
    }
}

/// Every start of a member registers a new incarnation, which retires the previous one's
/// session entries: however often a member restarts, the replicated session table holds
/// entries of one incarnation per member (without retirement it would hold one more
/// incarnation's per restart), on every member alike.
#[test]
fn a_member_restarted_many_times_leaves_a_bounded_session_table() {
    let mut c = Cluster::new(3, 23);
    let leader = c.elect();
    let f = (1..=3).find(|&i| i != leader).expect("a follower");
    let mut keys = Vec::new();
    for restart in 0..20u64 {
        c.restart_wiped(f, (restart + 1) << 20);
        for i in 0..3 {
            let w = c.request(f, put(&format!("k{restart}-{i}"), "v"));
            assert!(
                c.tick_until(10 * SEC, |c| c.answered(w)),
                "restart {restart}: the write is answered"
            );
            assert_put_ok(c.answer(w));
        }
        let regs = c.member(leader).applier().registrations().clone();
        let key = regs.live.get(&f).expect("the follower is registered").0;
        assert!(!keys.contains(&key), "a new key each start");
        keys.push(key);
        // Other members' live incarnations write too (the leader's lease checkpoints), so
        // the table holds their entries; none of a retired incarnation's.
        let live: Vec<u64> = regs.live.values().map(|(k, _)| *k).collect();
        let sessions = c.member(leader).applier().sessions();
        assert!(
            sessions
                .keys()
                .all(|client| live.contains(&paxos::multi::incarnation_key(*client))),
            "restart {restart}: only live incarnations' entries are left: {:?}",
            sessions.keys().collect::<Vec<_>>()
        );
        let own = sessions
            .keys()
            .filter(|client| paxos::multi::incarnation_key(**client) == key)
            .count();
        assert_eq!(own, 1, "its one session (one write at a time)");
        assert!(
            sessions.len() <= 3,
            "restart {restart}: at most one session per member here, not one per restart"
        );
    }
    // Every member applied the same table.
    assert!(c.tick_until(SEC, |c| {
        let a = c.member(leader).applier();
        c.members.values().all(|m| {
            m.applier().sessions() == a.sessions()
                && m.applier().registrations() == a.registrations()
        })
    }));
}
