//! What a member counts, for Prometheus: etcd's metric names where the meaning is the same (so
//! etcd's dashboards and alerts keep working), and Synod's own in Paxos's words.
//!
//! Where the figures come from: the sans-IO core and the member count nothing for us beyond what
//! they already keep (`Replica::counters`, `chosen_through`, the ballot, `Member::status`). The
//! driver's task ([`Observer`], owned by `core.rs`) reads them after each input it hands the
//! member and copies them into the registry; what only the driver sees (bytes on the peer
//! links, how long a request waited, how long an input took to apply) it counts itself; the
//! log's commit thread times each fsync ([`Metrics::wal_synced`]); the gRPC layer counts calls
//! by method and code (`http.rs`). Everything here is a relaxed atomic behind prometheus's
//! handles: a scrape never waits on the core, and the core never waits on a scrape.
//!
//! Label values are bounded: peers by member id (the members), refusal reasons and roles by
//! their enums, gRPC methods by a fixed table (an unknown path is `unknown`).

use member::{Member, Micros, WriteTrace};
use paxos::multi::{Role, Value};
use paxos::Slot;
use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// etcd's "slow apply": an input whose handling (apply included) took longer than this.
pub const SLOW_APPLY: Duration = Duration::from_millis(100);
/// A request answered later than this is logged ("request took too long"), as etcd logs
/// requests over its 100 ms `--warning-apply-duration`; a bit more here, since a write waits
/// for a sync.
pub const SLOW_REQUEST: Duration = Duration::from_millis(500);
/// At most one slow-request line per this long: an overloaded member must not drown its log.
const SLOW_LOG_EVERY: Duration = Duration::from_secs(1);
/// How often each peer's round-trip time is probed (etcd's prober runs every few seconds; a
/// live dashboard wants a fresher figure, and two small messages a second per peer cost
/// nothing next to heartbeats).
pub const RTT_PROBE_EVERY: Duration = Duration::from_secs(1);
/// A probe unanswered this long is given up, and the next one sent. Until then no second probe
/// goes to that peer, so a late reply is never taken for a newer probe's (the probe carries no
/// number: it is the peer envelope's `Probe`, which every member answers).
const RTT_PROBE_GIVE_UP: Duration = Duration::from_secs(10);
/// Ranges of slots whose times are still being followed (proposed, not yet chosen; chosen, not
/// yet applied). One range per input at most, so this bounds the memory, not the samples.
const TIMED_RANGES_MAX: usize = 4096;
/// A range of slots wider than this, chosen or applied at once, is a catch-up or a snapshot
/// install, not the path of a command: it is not timed slot by slot.
const TIMED_RANGE_SLOTS_MAX: u64 = 4096;

/// Every metric a member serves, registered in one registry.
pub struct Metrics {
    registry: Registry,
    // ---- etcd's names ----
    has_leader: IntGauge,
    is_leader: IntGauge,
    leader_changes: IntCounter,
    proposals_committed: IntGauge,
    proposals_applied: IntGauge,
    proposals_pending: IntGauge,
    proposals_failed: IntCounter,
    slow_apply: IntCounter,
    wal_fsync: Histogram,
    peer_sent_bytes: IntCounterVec,
    peer_sent_failures: IntCounterVec,
    peer_received_bytes: IntCounterVec,
    db_total_size: IntGauge,
    keys_total: IntGauge,
    pub(crate) grpc_started: IntCounterVec,
    pub(crate) grpc_handled: IntCounterVec,
    pub(crate) health_success: IntCounter,
    pub(crate) health_failures: IntCounter,
    server_id: IntGaugeVec,
    // ---- Synod's own ----
    ballot_round: IntGauge,
    promised_round: IntGauge,
    chosen_slot: IntGauge,
    first_unchosen_slot: IntGauge,
    compacted_slot: IntGauge,
    retained_entries: IntGauge,
    role: IntGaugeVec,
    phase1_started: IntCounter,
    phase1_won: IntCounter,
    leaderships_lost: IntCounter,
    configurations_entered: IntCounter,
    refused: IntCounterVec,
    persist_batch_bytes: Histogram,
    persist_batch_records: Histogram,
    snapshot_sent_bytes: IntCounter,
    snapshot_received_bytes: IntCounter,
    sessions: IntGauge,
    session_incarnations: IntGauge,
    peer_rtt: HistogramVec,
    peer_lag: IntGaugeVec,
    accepts_resent: IntCounter,
    read_rounds: IntCounter,
    read_round_reads: IntCounter,
    leased_reads: IntCounter,
    promises_held_by_lease: IntCounter,
    pre_votes_refused: IntCounter,
    auxiliaries_engaged: IntCounter,
    mains_dropped: IntCounter,
    mains_readmitted: IntCounter,
    commands_per_slot: Histogram,
    propose_to_chosen: Histogram,
    chosen_to_applied: Histogram,
    request_seconds: HistogramVec,
    waiting: IntGauge,
    voting: IntGauge,
    no_space: IntGauge,
}

/// A registration failed: only a programming error (two metrics of one name) does that.
#[derive(Debug, thiserror::Error)]
#[error("cannot register a metric: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

fn gauge(r: &Registry, name: &str, help: &str) -> Result<IntGauge, MetricsError> {
    let g = IntGauge::new(name, help)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

fn counter(r: &Registry, name: &str, help: &str) -> Result<IntCounter, MetricsError> {
    let c = IntCounter::new(name, help)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, MetricsError> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    buckets: Vec<f64>,
) -> Result<Histogram, MetricsError> {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?;
    r.register(Box::new(h.clone()))?;
    Ok(h)
}

impl Metrics {
    /// Registers every metric; `member_id` labels `etcd_server_id` as etcd does.
    pub fn new(member_id: u64) -> Result<Arc<Metrics>, MetricsError> {
        let r = Registry::new();
        // etcd's buckets, so its dashboards' quantiles read the same.
        let fsync_buckets = exponential_buckets(0.001, 2.0, 14)?;
        let request_buckets = exponential_buckets(0.0001, 2.0, 20)?;
        let bytes_buckets = exponential_buckets(64.0, 4.0, 12)?;
        let records_buckets = exponential_buckets(1.0, 2.0, 12)?;
        // etcd's buckets for the peer round trip (0.1 ms to ~3.3 s).
        let rtt_buckets = exponential_buckets(0.0001, 2.0, 16)?;
        let slot_seconds_buckets = exponential_buckets(0.0001, 2.0, 18)?;
        let commands_buckets = exponential_buckets(1.0, 2.0, 13)?;
        let m = Metrics {
            has_leader: gauge(&r, "etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, 0 is not.")?,
            is_leader: gauge(&r, "etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, 0 otherwise.")?,
            leader_changes: counter(&r, "etcd_server_leader_changes_seen_total", "The number of leader changes seen.")?,
            proposals_committed: gauge(&r, "etcd_server_proposals_committed_total", "The total number of consensus proposals committed (Synod: slots chosen here).")?,
            proposals_applied: gauge(&r, "etcd_server_proposals_applied_total", "The total number of consensus proposals applied (Synod: slots applied here).")?,
            proposals_pending: gauge(&r, "etcd_server_proposals_pending", "The current number of pending proposals to commit (Synod: writes taken here and not yet answered).")?,
            proposals_failed: counter(&r, "etcd_server_proposals_failed_total", "The total number of failed proposals seen.")?,
            slow_apply: counter(&r, "etcd_server_slow_apply_total", "The total number of slow apply requests (likely overloaded from slow disk).")?,
            wal_fsync: histogram(&r, "etcd_disk_wal_fsync_duration_seconds", "The latency distributions of fsync called by WAL.", fsync_buckets)?,
            peer_sent_bytes: counter_vec(&r, "etcd_network_peer_sent_bytes_total", "The total number of bytes sent to peers.", &["To"])?,
            peer_sent_failures: counter_vec(&r, "etcd_network_peer_sent_failures_total", "The total number of send failures from peers (Synod: messages dropped because the peer's queue was full).", &["To"])?,
            peer_received_bytes: counter_vec(&r, "etcd_network_peer_received_bytes_total", "The total number of bytes received from peers.", &["From"])?,
            db_total_size: gauge(&r, "etcd_mvcc_db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes (Synod: the store's size as the quota counts it).")?,
            keys_total: gauge(&r, "etcd_debugging_mvcc_keys_total", "Total number of keys (Synod: keys in the index, deleted ones until compaction).")?,
            grpc_started: counter_vec(&r, "grpc_server_started_total", "Total number of RPCs started on the server.", &["grpc_type", "grpc_service", "grpc_method"])?,
            grpc_handled: counter_vec(&r, "grpc_server_handled_total", "Total number of RPCs completed on the server, regardless of success or failure.", &["grpc_type", "grpc_service", "grpc_method", "grpc_code"])?,
            health_success: counter(&r, "etcd_server_health_success", "The total number of successful health checks")?,
            health_failures: counter(&r, "etcd_server_health_failures", "The total number of failed health checks")?,
            server_id: {
                let g = IntGaugeVec::new(Opts::new("etcd_server_id", "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID."), &["server_id"])?;
                r.register(Box::new(g.clone()))?;
                g
            },
            ballot_round: gauge(&r, "synod_paxos_ballot_round", "The round of the highest ballot this member has seen (etcd's raft term).")?,
            promised_round: gauge(&r, "synod_paxos_promised_round", "The round of the ballot this member's acceptor has promised.")?,
            chosen_slot: gauge(&r, "synod_paxos_chosen_slot", "Every slot up to this one is chosen and known here.")?,
            first_unchosen_slot: gauge(&r, "synod_paxos_first_unchosen_slot", "The first slot not known chosen here.")?,
            retained_entries: gauge(&r, "synod_paxos_retained_entries", "Log entries (accepted or chosen values) held in memory; on a Cheap Paxos auxiliary, the values not yet known held by every main.")?,
            compacted_slot: gauge(&r, "synod_paxos_compacted_slot", "Slots up to this one are covered by a durable snapshot and dropped from the log.")?,
            role: {
                let g = IntGaugeVec::new(Opts::new("synod_paxos_role", "1 for the role this member plays now."), &["role"])?;
                r.register(Box::new(g.clone()))?;
                g
            },
            phase1_started: counter(&r, "synod_paxos_phase1_started_total", "Phase-1 rounds (elections) this member started.")?,
            phase1_won: counter(&r, "synod_paxos_phase1_won_total", "Phase-1 rounds this member won (it became leader).")?,
            leaderships_lost: counter(&r, "synod_paxos_leaderships_lost_total", "Times this member stopped leading.")?,
            configurations_entered: counter(&r, "synod_paxos_configurations_entered_total", "Configurations this member entered since its start (stop-signs passed).")?,
            refused: counter_vec(&r, "synod_paxos_messages_refused_total", "Paxos messages this member refused, by reason.", &["reason"])?,
            persist_batch_bytes: histogram(&r, "synod_wal_batch_bytes", "Bytes appended to the log per fsync (one group of persist batches).", bytes_buckets)?,
            persist_batch_records: histogram(&r, "synod_wal_batch_records", "Persist records per fsync (group commit).", records_buckets)?,
            snapshot_sent_bytes: counter(&r, "synod_snapshot_sent_bytes_total", "Snapshot bytes served to catching-up peers.")?,
            snapshot_received_bytes: counter(&r, "synod_snapshot_received_bytes_total", "Snapshot bytes received from a peer while catching up.")?,
            sessions: gauge(&r, "synod_sessions", "Entries in the replicated session table as applied here (every snapshot carries it).")?,
            session_incarnations: gauge(&r, "synod_session_incarnations", "Member incarnations registered in the session table (at most one per member).")?,
            peer_rtt: {
                let h = HistogramVec::new(HistogramOpts::new("etcd_network_peer_round_trip_time_seconds", "Round-Trip-Time histogram between peers (Synod: a Probe and its answer through the peer's core, every second).").buckets(rtt_buckets), &["To"])?;
                r.register(Box::new(h.clone()))?;
                h
            },
            peer_lag: {
                let g = IntGaugeVec::new(Opts::new("synod_paxos_peer_lag_slots", "As leader: slots chosen here that the peer has not reported chosen (its last heartbeat echo). Absent on followers."), &["To"])?;
                r.register(Box::new(g.clone()))?;
                g
            },
            accepts_resent: counter(&r, "synod_paxos_accepts_resent_total", "Accepts (phase 2a) this leader sent again because a slot stayed short of a quorum.")?,
            read_rounds: counter(&r, "synod_paxos_read_index_rounds_total", "Read-index confirmation rounds this leader started.")?,
            read_round_reads: counter(&r, "synod_paxos_read_index_reads_total", "Reads carried by those rounds (reads per round = the ratio of the two rates).")?,
            leased_reads: counter(&r, "synod_paxos_leased_reads_total", "Leader leases: linearizable reads this leader served under its lease, with no read-index round.")?,
            promises_held_by_lease: counter(&r, "synod_paxos_promises_held_by_lease_total", "Leader leases: Prepares this member held unanswered while it granted another leader a lease.")?,
            pre_votes_refused: counter(&r, "synod_paxos_pre_votes_refused_total", "Pre-votes this member refused (it heard a live leader, or does not vote).")?,
            auxiliaries_engaged: counter(&r, "synod_paxos_auxiliaries_engaged_total", "Cheap Paxos: times this leader began sending to the auxiliaries because a main fell silent.")?,
            mains_dropped: counter(&r, "synod_paxos_mains_dropped_total", "Cheap Paxos: reconfigurations this leader proposed to drop a main silent for two election timeouts.")?,
            mains_readmitted: counter(&r, "synod_paxos_mains_readmitted_total", "Cheap Paxos: reconfigurations this leader proposed to re-admit a dropped main that came back and caught up.")?,
            commands_per_slot: histogram(&r, "synod_paxos_commands_per_slot", "As leader: commands packed into each slot it proposed.", commands_buckets)?,
            propose_to_chosen: histogram(&r, "synod_paxos_propose_to_chosen_seconds", "As leader: time from proposing a slot (phase 2a) to knowing it chosen, per slot.", slot_seconds_buckets.clone())?,
            chosen_to_applied: histogram(&r, "synod_paxos_chosen_to_applied_seconds", "Time from this member knowing a slot chosen to applying it, per slot (0 when both happen while handling one input).", slot_seconds_buckets)?,
            request_seconds: {
                let h = HistogramVec::new(HistogramOpts::new("synod_request_duration_seconds", "Time from a client request reaching the member's core to its answer, by kind (write: propose, chosen, applied; read: read-index and apply wait).").buckets(request_buckets), &["kind"])?;
                r.register(Box::new(h.clone()))?;
                h
            },
            waiting: gauge(&r, "synod_member_waiting_requests", "Requests waiting in the member for an answer (writes, reads, transfers).")?,
            voting: gauge(&r, "synod_member_voting", "1 while this member votes (0 while it rebuilds after losing its disk).")?,
            no_space: gauge(&r, "synod_member_nospace_alarm", "1 while the NOSPACE alarm is raised.")?,
            registry: r,
        };
        m.server_id
            .with_label_values(&[&format!("{member_id:x}")])
            .set(1);
        Ok(Arc::new(m))
    }

    /// The text exposition of every metric (`/metrics`).
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding our own registry into a Vec cannot fail but for a broken metric family;
        // a partial answer is then better than none.
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "could not encode every metric");
        }
        out
    }

    /// The log's commit thread finished one group: `records` persist records, `bytes`
    /// appended, synced in `sync`.
    pub fn wal_synced(&self, sync: Duration, bytes: u64, records: u64) {
        self.wal_fsync.observe(sync.as_secs_f64());
        self.persist_batch_bytes.observe(bytes as f64);
        self.persist_batch_records.observe(records as f64);
    }
}

/// What kind of request a latency belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// A proposal (put, delete, txn, compact, lease changes).
    Write,
    /// A read (linearizable or not).
    Read,
    /// Anything else (status, members, maintenance).
    Other,
}

impl RequestKind {
    fn label(self) -> &'static str {
        match self {
            RequestKind::Write => "write",
            RequestKind::Read => "read",
            RequestKind::Other => "other",
        }
    }
}

/// The last values copied from cumulative counters, so that the registry's counters move by
/// the difference (a Prometheus counter only goes up).
#[derive(Default)]
struct Last {
    leader: u64,
    elections_started: u64,
    elections_won: u64,
    leaderships_lost: u64,
    configurations_entered: u64,
    accepts_resent: u64,
    read_rounds: u64,
    read_round_reads: u64,
    leased_reads: u64,
    promises_held_by_lease: u64,
    pre_votes_refused: u64,
    auxiliaries_engaged: u64,
    mains_dropped: u64,
    mains_readmitted: u64,
    refused: BTreeMap<String, u64>,
}

/// Follows slots from one event to the next (proposed → chosen, chosen → applied) to time
/// them: each input that moves the first event's mark adds one range stamped with the time,
/// and each range is observed, slot by slot, once the second event's mark passes it.
#[derive(Default)]
struct SlotTimer {
    /// The first event's mark as last seen.
    mark: Slot,
    /// `(first, last, when)`: slots `first..=last` reached the first event at `when`.
    ranges: VecDeque<(u64, u64, Instant)>,
}

impl SlotTimer {
    /// Starts over from `mark`, forgetting what was followed (a new leadership).
    fn restart(&mut self, mark: Slot) {
        self.mark = mark;
        self.ranges.clear();
    }

    /// The first event reached `mark` by `now`.
    fn first_reached(&mut self, mark: Slot, now: Instant) {
        if mark <= self.mark {
            return;
        }
        let first = self.mark.0 + 1;
        self.mark = mark;
        if mark.0 - first >= TIMED_RANGE_SLOTS_MAX {
            return;
        }
        if self.ranges.len() >= TIMED_RANGES_MAX {
            self.ranges.pop_front();
        }
        self.ranges.push_back((first, mark.0, now));
    }

    /// The second event reached `mark` by `now`: each slot followed up to it is observed.
    fn second_reached(&mut self, mark: Slot, now: Instant, into: &Histogram) {
        while let Some((first, last, at)) = self.ranges.front_mut() {
            if *first > mark.0 {
                return;
            }
            let through = (*last).min(mark.0);
            let took = now.saturating_duration_since(*at).as_secs_f64();
            for _ in *first..=through {
                into.observe(took);
            }
            if through == *last {
                self.ranges.pop_front();
            } else {
                *first = through + 1;
            }
        }
    }
}

/// Round-trip probes: when each peer's outstanding probe left, if one is outstanding.
#[derive(Default)]
struct RttProbes {
    /// When the last round of probes left.
    last_round: Option<Instant>,
    outstanding: BTreeMap<u64, Instant>,
    /// Each peer's histogram handle, so a reply costs no label lookup.
    handles: BTreeMap<u64, Histogram>,
}

/// The core task's side: reads the member after its inputs and counts what only the driver
/// sees. Owned by the one task that owns the member, so it needs no lock.
pub struct Observer {
    metrics: Arc<Metrics>,
    /// When a slow request was last logged, and how many went unlogged since.
    slow_logged: Option<std::time::Instant>,
    slow_unlogged: u64,
    last: Last,
    sent: BTreeMap<u64, IntCounter>,
    send_failures: BTreeMap<u64, IntCounter>,
    received: BTreeMap<u64, IntCounter>,
    /// Slots this leader proposed and has not yet seen chosen, and the ballot it leads at.
    proposed: SlotTimer,
    leading_at: Option<paxos::Ballot>,
    /// Slots known chosen here and not yet applied.
    chosen: SlotTimer,
    rtt: RttProbes,
    /// The peers the lag gauge has a series for (cleared when this member stops leading).
    lagging: usize,
}

/// At most this many peers get a byte counter of their own; messages from further ids (only a
/// misconfigured cluster has that many) are not counted rather than growing the label set.
const PEER_LABELS_MAX: usize = 64;

fn peer_counter(
    cache: &mut BTreeMap<u64, IntCounter>,
    vec: &IntCounterVec,
    peer: u64,
) -> Option<IntCounter> {
    if let Some(c) = cache.get(&peer) {
        return Some(c.clone());
    }
    if cache.len() >= PEER_LABELS_MAX {
        return None;
    }
    let c = vec.with_label_values(&[&format!("{peer:x}")]);
    cache.insert(peer, c.clone());
    Some(c)
}

/// The role label of an auxiliary acceptor (Cheap Paxos).
const AUXILIARY: &str = "auxiliary";

fn role_label(role: Role) -> &'static str {
    match role {
        Role::Follower => "follower",
        Role::PreCandidate => "pre_candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

impl Observer {
    /// An observer writing into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Observer {
        Observer {
            metrics,
            slow_logged: None,
            slow_unlogged: 0,
            last: Last::default(),
            sent: BTreeMap::new(),
            send_failures: BTreeMap::new(),
            received: BTreeMap::new(),
            proposed: SlotTimer::default(),
            leading_at: None,
            chosen: SlotTimer::default(),
            rtt: RttProbes::default(),
            lagging: 0,
        }
    }

    /// The registry this observer writes to.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// After every input: who leads and how far the log is chosen and applied. Cheap (a few
    /// loads and stores), so a leader change is never missed between two ticks.
    pub fn after_input(&mut self, member: &Member) {
        let m = &self.metrics;
        let replica = member.replica();
        let leader = replica.leader().map_or(0, |n| n.0);
        // etcd counts a change each time a leader is seen that differs from the last one seen
        // (no leader in between counts the next one again).
        if leader != 0 && leader != self.last.leader {
            m.leader_changes.inc();
        }
        self.last.leader = leader;
        m.has_leader.set(i64::from(leader != 0));
        m.is_leader.set(i64::from(leader == member.id()));
        let chosen = replica.chosen_through().0;
        m.proposals_committed.set(clamp(chosen));
        m.chosen_slot.set(clamp(chosen));
        m.first_unchosen_slot.set(clamp(chosen.saturating_add(1)));
        let applied = member.applier().applied_through();
        m.proposals_applied.set(clamp(applied.0));
        self.time_slots(member, Instant::now());
    }

    /// Follows the slots through proposed (as leader), chosen and applied, at the granularity
    /// of the driver's inputs: what the core did within one input happened at its end.
    fn time_slots(&mut self, member: &Member, now: Instant) {
        let m = &self.metrics;
        let replica = member.replica();
        let chosen = replica.chosen_through();
        if replica.role() == Role::Leader {
            if self.leading_at != Some(replica.ballot()) {
                // A new leadership: whatever this member proposed before is not its to time.
                self.leading_at = Some(replica.ballot());
                self.proposed.restart(chosen);
            }
            let proposed = replica.proposed_through();
            for slot in (self.proposed.mark.0 + 1)..=proposed.0 {
                if let Some((_, Value::Batch(commands), _)) = replica.entry(Slot(slot)) {
                    m.commands_per_slot.observe(commands.len() as f64);
                }
            }
            self.proposed.first_reached(proposed, now);
            self.proposed
                .second_reached(chosen, now, &m.propose_to_chosen);
        } else if self.leading_at.take().is_some() {
            self.proposed.restart(chosen);
        }
        self.chosen.first_reached(chosen, now);
        self.chosen.second_reached(
            member.applier().applied_through(),
            now,
            &m.chosen_to_applied,
        );
    }

    /// The peers to probe for their round-trip time now: every other member whose last
    /// probe was answered (or given up), once per [`RTT_PROBE_EVERY`]. The caller sends each
    /// a `Probe` and reports the answer with [`Observer::probe_answered`].
    pub fn probes_due(&mut self, member: &Member) -> Vec<u64> {
        let now = Instant::now();
        if self
            .rtt
            .last_round
            .is_some_and(|at| now.duration_since(at) < RTT_PROBE_EVERY)
        {
            return Vec::new();
        }
        self.rtt.last_round = Some(now);
        let me = member.id();
        let mut due = Vec::new();
        for peer in member.replica().config().everyone().map(|n| n.0) {
            if peer == me {
                continue;
            }
            let waiting = self
                .rtt
                .outstanding
                .get(&peer)
                .is_some_and(|at| now.duration_since(*at) < RTT_PROBE_GIVE_UP);
            if !waiting && self.rtt.outstanding.len() < PEER_LABELS_MAX {
                self.rtt.outstanding.insert(peer, now);
                due.push(peer);
            }
        }
        due
    }

    /// Peer `from` answered a probe: its round trip, if one was outstanding.
    pub fn probe_answered(&mut self, from: u64) {
        let Some(at) = self.rtt.outstanding.remove(&from) else {
            return;
        };
        let h = self.rtt.handles.entry(from).or_insert_with(|| {
            self.metrics
                .peer_rtt
                .with_label_values(&[&format!("{from:x}")])
        });
        h.observe(at.elapsed().as_secs_f64());
    }

    /// Every tick: the rest, which costs more (the status, the counters' map).
    pub fn on_tick(&mut self, member: &Member) {
        let m = &self.metrics;
        let replica = member.replica();
        let status = member.status();
        m.db_total_size.set(clamp(status.db_bytes));
        m.no_space.set(i64::from(status.no_space));
        m.voting.set(i64::from(status.voting));
        m.keys_total
            .set(i64::try_from(member.applier().machine().keys_len()).unwrap_or(i64::MAX));
        m.sessions
            .set(i64::try_from(member.applier().sessions().len()).unwrap_or(i64::MAX));
        m.session_incarnations
            .set(i64::try_from(member.applier().registrations().live.len()).unwrap_or(i64::MAX));
        m.ballot_round.set(clamp(replica.ballot().round));
        m.promised_round.set(clamp(replica.promised().round));
        m.compacted_slot.set(clamp(replica.compacted_through().0));
        m.retained_entries
            .set(i64::try_from(member.retained_entries()).unwrap_or(i64::MAX));
        m.waiting
            .set(i64::try_from(member.waiting()).unwrap_or(i64::MAX));
        // An auxiliary (Cheap Paxos) never runs for leader: its role is that, whatever its
        // core's follower state says, so `synod top` shows it as such.
        let role = if replica.is_auxiliary() {
            AUXILIARY
        } else {
            role_label(replica.role())
        };
        for r in [
            role_label(Role::Follower),
            role_label(Role::PreCandidate),
            role_label(Role::Candidate),
            role_label(Role::Leader),
            AUXILIARY,
        ] {
            m.role.with_label_values(&[r]).set(i64::from(r == role));
        }
        let c = replica.counters();
        bump(
            &m.phase1_started,
            &mut self.last.elections_started,
            c.elections_started,
        );
        bump(&m.phase1_won, &mut self.last.elections_won, c.elections_won);
        bump(
            &m.leaderships_lost,
            &mut self.last.leaderships_lost,
            c.leaderships_lost,
        );
        bump(
            &m.configurations_entered,
            &mut self.last.configurations_entered,
            c.configurations_entered,
        );
        bump(
            &m.accepts_resent,
            &mut self.last.accepts_resent,
            c.accepts_resent,
        );
        bump(&m.read_rounds, &mut self.last.read_rounds, c.read_rounds);
        bump(
            &m.read_round_reads,
            &mut self.last.read_round_reads,
            c.read_round_reads,
        );
        bump(&m.leased_reads, &mut self.last.leased_reads, c.leased_reads);
        bump(
            &m.promises_held_by_lease,
            &mut self.last.promises_held_by_lease,
            c.promises_held_by_lease,
        );
        bump(
            &m.pre_votes_refused,
            &mut self.last.pre_votes_refused,
            c.pre_votes_refused,
        );
        bump(
            &m.auxiliaries_engaged,
            &mut self.last.auxiliaries_engaged,
            c.auxiliaries_engaged,
        );
        bump(
            &m.mains_dropped,
            &mut self.last.mains_dropped,
            c.mains_dropped,
        );
        bump(
            &m.mains_readmitted,
            &mut self.last.mains_readmitted,
            c.mains_readmitted,
        );
        let peers = replica.peers_chosen_through();
        if peers.is_empty() && self.lagging > 0 {
            // Only a leader knows how far the others are: a follower serves no lag series.
            m.peer_lag.reset();
        }
        self.lagging = peers.len();
        let chosen = replica.chosen_through();
        for (peer, theirs) in peers {
            m.peer_lag
                .with_label_values(&[&format!("{:x}", peer.0)])
                .set(clamp(chosen.0.saturating_sub(theirs.0)));
        }
        for (reason, n) in &c.rejected {
            let label = format!("{reason:?}");
            let last = self.last.refused.entry(label.clone()).or_default();
            bump(&m.refused.with_label_values(&[&label]), last, *n);
        }
    }

    /// `bytes` went to peer `to`.
    pub fn sent(&mut self, to: u64, bytes: usize) {
        if let Some(c) = peer_counter(&mut self.sent, &self.metrics.peer_sent_bytes, to) {
            c.inc_by(bytes as u64);
        }
    }

    /// A message to peer `to` was dropped: its queue was full (the peer or the link is behind).
    pub fn send_failed(&mut self, to: u64) {
        if let Some(c) = peer_counter(
            &mut self.send_failures,
            &self.metrics.peer_sent_failures,
            to,
        ) {
            c.inc();
        }
    }

    /// `bytes` came from peer `from`.
    pub fn received(&mut self, from: u64, bytes: usize) {
        if let Some(c) = peer_counter(&mut self.received, &self.metrics.peer_received_bytes, from) {
            c.inc_by(bytes as u64);
        }
    }

    /// A snapshot chunk of `bytes` was served to a peer.
    pub fn snapshot_sent(&self, bytes: usize) {
        self.metrics.snapshot_sent_bytes.inc_by(bytes as u64);
    }

    /// A snapshot chunk of `bytes` arrived from a peer.
    pub fn snapshot_received(&self, bytes: usize) {
        self.metrics.snapshot_received_bytes.inc_by(bytes as u64);
    }

    /// A write was taken: it is pending until [`Observer::answered`].
    pub fn write_taken(&self) {
        self.metrics.proposals_pending.inc();
    }

    /// A request of `kind` was answered after `waited`; `failed` for a write that was refused;
    /// `trace`, for a slow write, where the member saw its time go and the member's time of
    /// the answer.
    pub fn answered(
        &mut self,
        kind: RequestKind,
        waited: Duration,
        failed: bool,
        trace: Option<(WriteTrace, Micros)>,
    ) {
        if waited > SLOW_REQUEST {
            self.log_slow(kind, waited, failed, trace);
        }
        let m = &self.metrics;
        if kind == RequestKind::Write {
            m.proposals_pending.dec();
            if failed {
                m.proposals_failed.inc();
            }
        }
        m.request_seconds
            .with_label_values(&[kind.label()])
            .observe(waited.as_secs_f64());
    }

    fn log_slow(
        &mut self,
        kind: RequestKind,
        waited: Duration,
        failed: bool,
        trace: Option<(WriteTrace, Micros)>,
    ) {
        let now = std::time::Instant::now();
        if self
            .slow_logged
            .is_some_and(|at| now.duration_since(at) < SLOW_LOG_EVERY)
        {
            self.slow_unlogged += 1;
            return;
        }
        // Where the time went, as etcd's request trace says it, step by step (a write's
        // stages as the member stamped them: see `member::WriteTrace`): waiting for a leader,
        // then from proposing (or forwarding) to its slot being chosen and applied here (the
        // sync and the quorum's round: the fsync mean says how much of it was the disk), then
        // the answer. Reads and other requests have their total only.
        let stages = trace.map(|(t, answered)| Stages::of(&t, answered));
        let stage = |f: fn(&Stages) -> String| stages.as_ref().map_or("-".to_string(), f);
        tracing::warn!(
            kind = kind.label(),
            took = ?waited,
            expected = ?SLOW_REQUEST,
            step_wait_for_leader = %stage(|s| format!("{:?}", s.wait_for_leader)),
            routed = %stage(|s| (if s.forwarded { "forwarded" } else { "proposed" }).into()),
            step_propose_to_applied = %stage(|s| format!("{:?}", s.propose_to_applied)),
            step_answer = %stage(|s| format!("{:?}", s.answer)),
            rerouted = %stage(|s| s.rerouted.to_string()),
            failed,
            waiting_now = self.metrics.waiting.get(),
            pending_writes = self.metrics.proposals_pending.get(),
            fsync_mean_ms = self.fsync_mean_ms(),
            similar_since_last_line = self.slow_unlogged,
            "request took too long"
        );
        self.slow_logged = Some(now);
        self.slow_unlogged = 0;
    }

    /// The mean fsync time so far, in milliseconds (0 before the first).
    fn fsync_mean_ms(&self) -> f64 {
        let h = &self.metrics.wal_fsync;
        let n = h.get_sample_count();
        if n == 0 {
            0.0
        } else {
            h.get_sample_sum() * 1000.0 / n as f64
        }
    }

    /// One input took `took` to handle; `applied` whether it applied slots.
    pub fn input_handled(&self, took: Duration, applied: bool) {
        if applied && took > SLOW_APPLY {
            self.metrics.slow_apply.inc();
        }
    }
}

/// A slow write's stages, from its [`WriteTrace`] and the member's time of its answer.
struct Stages {
    wait_for_leader: Duration,
    forwarded: bool,
    propose_to_applied: Duration,
    answer: Duration,
    rerouted: u32,
}

impl Stages {
    fn of(t: &WriteTrace, answered: Micros) -> Stages {
        let routed = t.routed.unwrap_or(t.applied);
        Stages {
            wait_for_leader: routed.saturating_since(t.taken),
            forwarded: t.forwarded,
            propose_to_applied: t.applied.saturating_since(routed),
            answer: answered.saturating_since(t.applied),
            rerouted: t.rerouted,
        }
    }
}

/// Moves `counter` by what `now` gained over `last` (a counter that went back, which only a
/// restart of its source could do, moves nothing).
fn bump(counter: &IntCounter, last: &mut u64, now: u64) {
    if now > *last {
        counter.inc_by(now - *last);
    }
    *last = now;
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
