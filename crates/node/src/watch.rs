//! etcd's Watch service: one bidirectional stream per client carries many watchers.
//!
//! A watcher holds no buffer of its own. It remembers the last revision it was sent. Each time
//! this member applies a batch, the core reads what the batch changed once and shares it
//! ([`AppliedChanges`]); every watcher whose last revision is exactly the batch's start takes
//! its part from that. A watcher out of step (created at an older revision, or whose stream
//! fell behind the shared queue) reads the changes after its revision from the store instead
//! ([`kv::KvRead::Watch`]), which keeps every version until compaction, until it is in step
//! again. So a slow client costs no memory here beyond the bounded shared queue: its watchers
//! fall behind, and if a compaction passes them they are cancelled with the compaction
//! revision, as etcd does. Events come from what this member has applied, as etcd's watch
//! serves from the member's own store.

use crate::convert;
use crate::core::{AppliedChanges, Request};
use crate::error::NodeError;
use crate::service::Services;
use etcd_proto::etcdserverpb as pb;
use etcd_proto::mvccpb;
use kv::{EventKind, KvRead, KvReadResponse, WatchRead, WatchReadResponse};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::TryRecvError};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request as GrpcRequest, Response, Status, Streaming};

/// Most watchers one stream may hold; a client that needs more opens another stream.
pub const WATCHERS_PER_STREAM_MAX: usize = 1024;
/// Responses queued for one stream's client before the watchers wait for it to read.
const RESPONSE_QUEUE: usize = 16;
/// Most events in one response (it never splits a revision, so it may hold more).
const EVENTS_PER_RESPONSE_MAX: usize = 1000;
/// Most bytes of keys and values in one response (same caveat), well under the 4 MiB most
/// gRPC clients accept by default.
const RESPONSE_BYTES_MAX: usize = 1 << 20;
/// etcd's watch id for a response that belongs to no watcher (a progress report).
const NO_WATCHER: i64 = -1;
/// The gRPC metadata key and value of clientv3's `WithRequireLeader`
/// (`rpctypes.MetadataRequireLeaderKey`, `MetadataHasLeader`): kube-apiserver's watches carry
/// it, and such a stream is refused by a member that knows no leader ("etcdserver: no
/// leader"), and ended with the same status once its member has known none for
/// [`NO_LEADER_CHECKS_MAX`] election timeouts in a row.
const REQUIRE_LEADER_KEY: &str = "hasleader";
const REQUIRE_LEADER_VALUE: &str = "true";
/// Checks in a row, one per election timeout, that find no leader before a require-leader
/// stream is ended with "etcdserver: no leader" (etcd's `maxNoLeaderCnt`: reconnecting a
/// stream costs more than refusing a new one, so an open stream gets more patience than a new
/// one, which is refused at once).
const NO_LEADER_CHECKS_MAX: u32 = 3;

/// What the Watch service needs besides the other services' shared parts.
#[derive(Clone)]
pub struct WatchParts {
    /// The store revision this member has applied through; changes when it applies more.
    pub applied_revision: watch::Receiver<i64>,
    /// What each applied batch changed, for watchers in step (each stream subscribes).
    pub applied_changes: broadcast::Sender<Arc<AppliedChanges>>,
    /// Becomes true when the member stops: streams end so the gRPC server can close.
    pub stopping: watch::Receiver<bool>,
    /// How often a watcher created with `progress_notify` that has had nothing to send is
    /// told the current revision (etcd's `--experimental-watch-progress-notify-interval`).
    pub progress_every: Duration,
    /// The member's election timeout: how often a require-leader stream checks that its
    /// member knows a leader (etcd's `monitorLeader`).
    pub election_timeout: Duration,
    /// The planted bug [`crate::NodeBug::ProgressAheadOfWatchers`] is on (test only).
    pub progress_ahead: bool,
}

/// One watcher of a stream.
struct Watcher {
    read: WatchRead,
    progress_notify: bool,
    /// Whether a response larger than the request limit is sent in fragments.
    fragment: bool,
    /// Whether it was sent anything since the last progress report.
    sent_since_progress: bool,
}

/// Why a stream ends.
enum End {
    /// The client went away or stopped sending.
    Client,
    /// The member stops or failed; the client is told with this status.
    Member(Status),
}

#[tonic::async_trait]
impl pb::watch_server::Watch for Services {
    async fn watch(
        &self,
        request: GrpcRequest<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<tonic::codegen::BoxStream<pb::WatchResponse>>, Status> {
        // The stream's sender, named once (etcd too checks a watch against its creator).
        // Every read of its watchers is checked against the sender's permissions as they are
        // then; the member shares no unfiltered batches while auth is on.
        let caller = self.caller(&request, false).await?;
        let require_leader = request
            .metadata()
            .get(REQUIRE_LEADER_KEY)
            .is_some_and(|v| v.as_bytes() == REQUIRE_LEADER_VALUE.as_bytes());
        if require_leader && self.leader().await? == 0 {
            // etcd's stream interceptor: `rpctypes.ErrGRPCNoLeader`.
            return Err(NodeError::NoLeader.status());
        }
        let parts = self.watch_parts();
        let inbound = request.into_inner();
        let (out, rx) = mpsc::channel(RESPONSE_QUEUE);
        let changes = parts.applied_changes.subscribe();
        let stream = WatchStream {
            changes,
            services: self.clone(),
            parts,
            out,
            watchers: BTreeMap::new(),
            next_id: 0,
            term: 0,
            caller,
            progress_requested: false,
            require_leader,
        };
        tokio::spawn(stream.run(inbound));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

struct WatchStream {
    /// The core's shared changes, taken at the top of each turn.
    changes: broadcast::Receiver<Arc<AppliedChanges>>,
    services: Services,
    parts: WatchParts,
    out: mpsc::Sender<Result<pb::WatchResponse, Status>>,
    watchers: BTreeMap<i64, Watcher>,
    /// The next id a watcher created without one gets (etcd starts at 0).
    next_id: i64,
    /// The ballot round the last read reported (the header's raft term).
    term: u64,
    /// Who opened the stream: every read is checked as theirs.
    caller: kv::Caller,
    /// A `RequestProgress` waits for an answer: it is sent once every watcher of the stream
    /// has been sent everything through the revision it reports (etcd's fix for issue 15220),
    /// so a client that hears "revision R" has every event up to R.
    progress_requested: bool,
    /// Opened with the require-leader metadata: ended when the member loses its leader.
    require_leader: bool,
}

impl WatchStream {
    async fn run(mut self, mut inbound: Streaming<pb::WatchRequest>) {
        let end = self.serve(&mut inbound).await;
        if let End::Member(status) = end {
            let _ = self.out.send(Err(status)).await;
        }
    }

    async fn serve(&mut self, inbound: &mut Streaming<pb::WatchRequest>) -> End {
        let mut progress = tokio::time::interval(self.parts.progress_every);
        progress.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        progress.tick().await;
        let mut applied = self.parts.applied_revision.clone();
        let mut stopping = self.parts.stopping.clone();
        // etcd's monitorLeader, for this stream alone: one check per election timeout.
        let mut leader_check = tokio::time::interval(self.parts.election_timeout);
        leader_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        leader_check.tick().await;
        let mut no_leader_checks = 0u32;
        loop {
            if *stopping.borrow() {
                return End::Member(NodeError::Stopped.status());
            }
            let revision = *applied.borrow_and_update();
            if let Err(end) = self.take_shared().await {
                return end;
            }
            // One bounded read per lagging watcher per turn, so a watcher far behind cannot
            // keep this stream from hearing its client's cancel.
            let behind: Vec<i64> = self
                .watchers
                .iter()
                .filter(|(_, w)| w.read.after < revision)
                .map(|(id, _)| *id)
                .collect();
            for id in &behind {
                if let Err(end) = self.catch_up(*id).await {
                    return end;
                }
            }
            let still_behind = self.watchers.values().any(|w| w.read.after < revision);
            if self.progress_requested && !still_behind {
                self.progress_requested = false;
                if let Err(end) = self.send_requested_progress(revision).await {
                    return end;
                }
            }
            tokio::select! {
                biased;
                changed = stopping.changed() => {
                    // A member dropped without a clean stop: end as for a stop, rather than
                    // wake on the closed channel forever.
                    if changed.is_err() {
                        return End::Member(NodeError::Stopped.status());
                    }
                }
                message = inbound.message() => match message {
                    Ok(Some(request)) => {
                        if let Err(end) = self.on_request(request, revision).await {
                            return end;
                        }
                    }
                    Ok(None) | Err(_) => return End::Client,
                },
                _ = self.out.closed() => return End::Client,
                changed = applied.changed() => {
                    if changed.is_err() {
                        return End::Member(NodeError::Stopped.status());
                    }
                }
                _ = progress.tick() => {
                    if let Err(end) = self.report_progress(revision).await {
                        return end;
                    }
                }
                _ = leader_check.tick(), if self.require_leader => {
                    match self.services.leader().await {
                        Ok(0) => no_leader_checks += 1,
                        Ok(_) => no_leader_checks = 0,
                        Err(status) => return End::Member(status),
                    }
                    if no_leader_checks >= NO_LEADER_CHECKS_MAX {
                        // What a client of etcd 3.4.23 sees when monitorLeader cancels the
                        // stream (measured: `tests/kubernetes.rs` against it).
                        return End::Member(NodeError::NoLeader.status());
                    }
                }
                _ = std::future::ready(()), if still_behind => {}
            }
        }
    }

    fn header(&self, revision: i64) -> pb::ResponseHeader {
        self.services.header(revision, self.term)
    }

    async fn send(&self, response: pb::WatchResponse) -> Result<(), End> {
        self.out.send(Ok(response)).await.map_err(|_| End::Client)
    }

    async fn on_request(&mut self, request: pb::WatchRequest, revision: i64) -> Result<(), End> {
        use pb::watch_request::RequestUnion;
        match request.request_union {
            Some(RequestUnion::CreateRequest(c)) => self.create(c, revision).await,
            Some(RequestUnion::CancelRequest(c)) => {
                // etcd ignores a cancel of a watcher the stream does not hold.
                if self.watchers.remove(&c.watch_id).is_some() {
                    self.send(pb::WatchResponse {
                        header: Some(self.header(revision)),
                        watch_id: c.watch_id,
                        canceled: true,
                        ..pb::WatchResponse::default()
                    })
                    .await?;
                }
                Ok(())
            }
            Some(RequestUnion::ProgressRequest(_)) if self.parts.progress_ahead => {
                // The planted bug: answered now, whoever is still catching up.
                self.send(pb::WatchResponse {
                    header: Some(self.header(revision)),
                    watch_id: NO_WATCHER,
                    ..pb::WatchResponse::default()
                })
                .await
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                // Answered at the top of a turn in which every watcher is caught up; several
                // requests before then get one answer, as etcd's deferred progress does.
                self.progress_requested = true;
                Ok(())
            }
            None => Ok(()),
        }
    }

    async fn create(&mut self, c: pb::WatchCreateRequest, revision: i64) -> Result<(), End> {
        let id = if c.watch_id != 0 {
            c.watch_id
        } else {
            while self.watchers.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            self.next_id
        };
        let header = self.header(revision);
        let refuse = |reason: String| pb::WatchResponse {
            header: Some(header),
            watch_id: id,
            created: true,
            canceled: true,
            cancel_reason: reason,
            ..pb::WatchResponse::default()
        };
        if self.watchers.contains_key(&id) {
            return self
                .send(refuse(format!(
                    "mvcc: duplicate watch ID provided on the WatchStream ({id})"
                )))
                .await;
        }
        if self.watchers.len() >= WATCHERS_PER_STREAM_MAX {
            return self
                .send(refuse(format!(
                    "synod: a stream holds at most {WATCHERS_PER_STREAM_MAX} watchers; open \
                     another stream for more"
                )))
                .await;
        }
        if c.key.is_empty() {
            return self
                .send(refuse("etcdserver: key is not provided".into()))
                .await;
        }
        let filters = |f: pb::watch_create_request::FilterType| c.filters.contains(&(f as i32));
        let read = WatchRead {
            after: if c.start_revision > 0 {
                c.start_revision - 1
            } else {
                revision
            },
            prev_kv: c.prev_kv,
            no_put: filters(pb::watch_create_request::FilterType::Noput),
            no_delete: filters(pb::watch_create_request::FilterType::Nodelete),
            events_max: EVENTS_PER_RESPONSE_MAX,
            bytes_max: RESPONSE_BYTES_MAX,
            key: c.key,
            range_end: c.range_end,
        };
        // etcd refuses a watch on keys its user may not read when it is created.
        let probe = WatchRead {
            after: revision,
            ..read.clone()
        };
        if let Err(e) = self.read(probe).await? {
            // etcd puts the whole gRPC error's text, as Go prints it, in the reason.
            let status = convert::status_from_kv_error(&e);
            let reason = format!(
                "rpc error: code = {:?} desc = {}",
                status.code(),
                status.message()
            );
            return self.send(refuse(reason)).await;
        }
        if c.watch_id == 0 {
            self.next_id += 1;
        }
        self.watchers.insert(
            id,
            Watcher {
                read,
                progress_notify: c.progress_notify,
                fragment: c.fragment,
                sent_since_progress: false,
            },
        );
        self.send(pb::WatchResponse {
            header: Some(self.header(revision)),
            watch_id: id,
            created: true,
            ..pb::WatchResponse::default()
        })
        .await
    }

    /// Serves every watcher in step from what the core shared since the last turn. A watcher
    /// takes a batch only if its last revision is the batch's start, so none skips or repeats
    /// a change; the others read for themselves.
    async fn take_shared(&mut self) -> Result<(), End> {
        loop {
            let changes = match self.changes.try_recv() {
                Ok(changes) => changes,
                // Batches this stream was too slow to take: its watchers are now out of step
                // with the ones that follow, and read.
                Err(TryRecvError::Lagged(_)) => continue,
                Err(TryRecvError::Empty | TryRecvError::Closed) => return Ok(()),
            };
            let in_step: Vec<i64> = self
                .watchers
                .iter()
                .filter(|(_, w)| w.read.after == changes.after)
                .map(|(id, _)| *id)
                .collect();
            for id in in_step {
                self.send_shared(id, &changes).await?;
            }
        }
    }

    /// Watcher `id`'s part of `changes`, in responses that never split a revision.
    async fn send_shared(&mut self, id: i64, changes: &AppliedChanges) -> Result<(), End> {
        let Some(w) = self.watchers.get_mut(&id) else {
            return Ok(());
        };
        debug_assert_eq!(
            w.read.after, changes.after,
            "only a watcher in step takes a batch"
        );
        let events = w.read.select(&changes.events);
        w.read.after = changes.through;
        if events.is_empty() {
            return Ok(());
        }
        w.sent_since_progress = true;
        let fragment = w.fragment;
        self.term = changes.term;
        for part in split_at_revisions(events, EVENTS_PER_RESPONSE_MAX, RESPONSE_BYTES_MAX) {
            self.send_events(
                fragment,
                pb::WatchResponse {
                    header: Some(self.header(changes.through)),
                    watch_id: id,
                    events: part.into_iter().map(event).collect(),
                    ..pb::WatchResponse::default()
                },
            )
            .await?;
        }
        Ok(())
    }

    /// One read of the changes watcher `id` has not seen, and the response that carries them.
    async fn catch_up(&mut self, id: i64) -> Result<(), End> {
        let Some(w) = self.watchers.get(&id) else {
            return Ok(());
        };
        let answer = match self.read(w.read.clone()).await? {
            Ok(answer) => answer,
            // The store refused this watcher's read (its key, say): it ends, the stream
            // and its other watchers go on.
            Err(e) => {
                self.watchers.remove(&id);
                let revision = *self.parts.applied_revision.borrow();
                return self
                    .send(pb::WatchResponse {
                        header: Some(self.header(revision)),
                        watch_id: id,
                        canceled: true,
                        cancel_reason: convert::status_from_kv_error(&e).message().to_string(),
                        ..pb::WatchResponse::default()
                    })
                    .await;
            }
        };
        if answer.compacted {
            self.watchers.remove(&id);
            return self
                .send(pb::WatchResponse {
                    header: Some(self.header(answer.revision)),
                    watch_id: id,
                    canceled: true,
                    compact_revision: answer.compact_revision,
                    cancel_reason: "etcdserver: mvcc: required revision has been compacted".into(),
                    ..pb::WatchResponse::default()
                })
                .await;
        }
        let Some(w) = self.watchers.get_mut(&id) else {
            return Ok(());
        };
        debug_assert!(answer.through >= w.read.after, "a watcher never goes back");
        w.read.after = answer.through;
        if answer.events.is_empty() {
            return Ok(());
        }
        w.sent_since_progress = true;
        let fragment = w.fragment;
        let events = answer.events.into_iter().map(event).collect();
        self.send_events(
            fragment,
            pb::WatchResponse {
                header: Some(self.header(answer.revision)),
                watch_id: id,
                events,
                ..pb::WatchResponse::default()
            },
        )
        .await
    }

    /// Sends a response of events, in fragments when its watcher asked for them and it is
    /// over the limit (etcd's `sendFragments`).
    async fn send_events(&self, fragment: bool, response: pb::WatchResponse) -> Result<(), End> {
        if !fragment {
            return self.send(response).await;
        }
        for part in fragments(response, self.services.fragment_bytes_max()) {
            self.send(part).await?;
        }
        Ok(())
    }

    /// The answer to `RequestProgress`: the revision every watcher of the stream has been
    /// sent everything through, for no watcher in particular.
    async fn send_requested_progress(&self, revision: i64) -> Result<(), End> {
        debug_assert!(
            self.watchers.values().all(|w| w.read.after >= revision),
            "a requested progress report never runs ahead of a watcher"
        );
        self.send(pb::WatchResponse {
            header: Some(self.header(revision)),
            watch_id: NO_WATCHER,
            ..pb::WatchResponse::default()
        })
        .await
    }

    /// Tells each idle `progress_notify` watcher that is caught up the current revision.
    async fn report_progress(&mut self, revision: i64) -> Result<(), End> {
        let mut due = Vec::new();
        for (id, w) in self.watchers.iter_mut() {
            if w.progress_notify && !w.sent_since_progress && w.read.after >= revision {
                due.push(*id);
            }
            w.sent_since_progress = false;
        }
        for id in due {
            self.send(pb::WatchResponse {
                header: Some(self.header(revision)),
                watch_id: id,
                ..pb::WatchResponse::default()
            })
            .await?;
        }
        Ok(())
    }

    /// Reads from the store through the core, waiting for room in its queue rather than
    /// failing: a watcher that waits costs nothing.
    async fn read(
        &mut self,
        read: WatchRead,
    ) -> Result<Result<WatchReadResponse, kv::KvError>, End> {
        let (reply, rx) = oneshot::channel();
        let read = KvRead::As {
            caller: self.caller.clone(),
            read: Box::new(KvRead::Watch(read)),
        };
        let request = Request::Read {
            read,
            linearizable: false,
            reply,
        };
        let stopped = || End::Member(NodeError::Stopped.status());
        self.services
            .core()
            .send(request)
            .await
            .map_err(|_| stopped())?;
        let (answer, term) = rx
            .await
            .map_err(|_| stopped())?
            .map_err(|e| End::Member(e.status()))?
            .serve()
            .await
            .map_err(|e| End::Member(e.status()))?;
        self.term = term;
        match answer {
            Ok(KvReadResponse::Watch(w)) => Ok(Ok(w)),
            Ok(_) => Err(End::Member(Status::internal(
                "synod: the store answered a watch read with another kind of response",
            ))),
            Err(e) => Ok(Err(e)),
        }
    }
}

/// `events` (oldest first) in parts of at most `events_max` events or `bytes_max` bytes of keys
/// and values, except that a revision is never split (a part ends only where the revision
/// changes), the rule the store's watch reads follow.
fn split_at_revisions(
    events: Vec<kv::Event>,
    events_max: usize,
    bytes_max: usize,
) -> Vec<Vec<kv::Event>> {
    let mut parts = Vec::new();
    let mut part: Vec<kv::Event> = Vec::new();
    let mut bytes = 0usize;
    for e in events {
        let full = part.len() >= events_max.max(1) || bytes >= bytes_max;
        if full
            && part
                .last()
                .is_some_and(|l| l.kv.mod_revision != e.kv.mod_revision)
        {
            parts.push(std::mem::take(&mut part));
            bytes = 0;
        }
        bytes +=
            e.kv.key.len() + e.kv.value.len() + e.prev_kv.as_ref().map_or(0, |p| p.value.len());
        part.push(e);
    }
    if !part.is_empty() {
        parts.push(part);
    }
    parts
}

/// `response` in pieces of at most `bytes_max` encoded bytes each (but at least one event),
/// every piece but the last marked `fragment`, as etcd's `sendFragments` cuts a response for a
/// watcher created with `fragment`. A response under the limit, or of one event, goes whole.
fn fragments(response: pb::WatchResponse, bytes_max: usize) -> Vec<pb::WatchResponse> {
    use prost::Message;
    if response.encoded_len() < bytes_max || response.events.len() < 2 {
        return vec![response];
    }
    /// `WatchResponse.events`' field number, for the exact size an event adds.
    const EVENTS_FIELD: u32 = 11;
    let mut rest = response.events.into_iter().peekable();
    let empty = pb::WatchResponse {
        events: Vec::new(),
        fragment: true,
        ..response
    };
    let mut parts = Vec::new();
    while rest.peek().is_some() {
        let mut part = empty.clone();
        let mut size = part.encoded_len();
        while let Some(next) = rest.peek() {
            // etcd adds the event, then takes it back out if the piece reached the limit
            // (a piece always has one).
            let grown = size + prost::encoding::message::encoded_len(EVENTS_FIELD, next);
            if !part.events.is_empty() && grown >= bytes_max {
                break;
            }
            size = grown;
            part.events.extend(rest.next());
        }
        part.fragment = rest.peek().is_some();
        parts.push(part);
    }
    parts
}

/// A store event as etcd's protobuf has it.
fn event(e: kv::Event) -> mvccpb::Event {
    let kind = match e.kind {
        EventKind::Put => mvccpb::event::EventType::Put,
        EventKind::Delete => mvccpb::event::EventType::Delete,
    };
    mvccpb::Event {
        r#type: kind as i32,
        kv: Some(convert::key_value(e.kv)),
        prev_kv: e.prev_kv.map(convert::key_value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_at(revision: i64, key: &str, value_len: usize) -> kv::Event {
        kv::Event {
            kind: EventKind::Put,
            kv: kv::KeyValue {
                key: key.as_bytes().to_vec(),
                value: vec![b'v'; value_len],
                mod_revision: revision,
                ..kv::KeyValue::default()
            },
            prev_kv: None,
        }
    }

    fn revisions(parts: &[Vec<kv::Event>]) -> Vec<Vec<i64>> {
        parts
            .iter()
            .map(|p| p.iter().map(|e| e.kv.mod_revision).collect())
            .collect()
    }

    #[test]
    fn a_fragmented_response_is_cut_under_the_limit_and_only_its_last_piece_is_whole() {
        use prost::Message;
        let response = pb::WatchResponse {
            watch_id: 3,
            events: (1..=10).map(|r| event(put_at(r, "k", 100))).collect(),
            ..pb::WatchResponse::default()
        };
        // Under the limit, or a single event: whole.
        let whole = fragments(response.clone(), response.encoded_len() + 1);
        assert_eq!(whole, vec![response.clone()]);
        let one = pb::WatchResponse {
            events: response.events[..1].to_vec(),
            ..response.clone()
        };
        assert_eq!(fragments(one.clone(), 10), vec![one]);
        // Over it: pieces under the limit, every event once and in order, `fragment` on all
        // but the last.
        let limit = 400;
        let parts = fragments(response.clone(), limit);
        assert!(parts.len() > 1, "{}", parts.len());
        for (i, p) in parts.iter().enumerate() {
            assert!(p.encoded_len() < limit || p.events.len() == 1, "piece {i}");
            assert_eq!(p.fragment, i + 1 < parts.len(), "piece {i}");
            assert_eq!(p.watch_id, 3);
        }
        let joined: Vec<mvccpb::Event> = parts.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(joined, response.events);
    }

    #[test]
    fn parts_are_bounded_and_never_split_a_revision() {
        // Revision 3 has three events (one transaction), the others one each.
        let events: Vec<kv::Event> = [1, 2, 3, 3, 3, 4, 5]
            .iter()
            .enumerate()
            .map(|(i, r)| put_at(*r, &format!("k{i}"), 1))
            .collect();
        let parts = split_at_revisions(events.clone(), 2, usize::MAX);
        assert_eq!(
            revisions(&parts),
            vec![vec![1, 2], vec![3, 3, 3], vec![4, 5]]
        );
        let one = split_at_revisions(events.clone(), 1, usize::MAX);
        assert_eq!(
            revisions(&one),
            vec![vec![1], vec![2], vec![3, 3, 3], vec![4], vec![5]]
        );
        let all = split_at_revisions(events.clone(), 100, usize::MAX);
        assert_eq!(all.concat(), events, "nothing lost, reordered or repeated");
        // Bytes bound too: each event carries 2 bytes of key and 10 of value.
        let big: Vec<kv::Event> = (1..=4).map(|r| put_at(r, "kk", 10)).collect();
        assert_eq!(
            revisions(&split_at_revisions(big, 100, 24)),
            vec![vec![1, 2], vec![3, 4]]
        );
        assert!(split_at_revisions(Vec::new(), 1, 1).is_empty());
    }
}
