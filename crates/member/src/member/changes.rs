//! Membership changes (etcd's Cluster API) as a member carries them out: started by the
//! leader, which proposes the stop-sign and the member-table write, and answered once the
//! change is in force; asked at a follower, forwarded to the leader and answered by the
//! follower once it has applied as far as the leader had when the change was in force there.
//!
//! A forwarded change is sent once per leader and never re-sent to the same one: a change is
//! not idempotent (an `Add` asked twice would answer "member ID already exist" to a client
//! whose first try worked). The leader answers every ask it takes ([`PeerMessage::ChangeDone`]);
//! an ask it refused before proposing anything (not leader any more) is asked again of the
//! next leader; one whose answer never comes times out as any request does.

use super::{Answer, Member, RequestId, WriteFor, CHANGES_MAX};
use crate::cluster::{
    urls_overlap, ClusterChange, MemberInfo, TableCommand, PEER_URLS_MAX, URL_BYTES_MAX,
};
use crate::error::MemberError;
use crate::peer::PeerMessage;
use crate::time::Micros;
use kv::KvOutput;
use paxos::multi::{Applied, ChosenEntry, ReconfigError, Role, SessionOutcome, Value};
use paxos::{ConfigError, Configuration, NodeId, NodeSet, Slot};
use std::collections::BTreeMap;
use std::time::Duration;

/// Who waits for a change the leader carries out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asker {
    /// A client of this member.
    Client(RequestId),
    /// A follower that forwarded its client's change, under its `ask` number.
    Peer { member: u64, ask: u64 },
}

/// A membership change this member (as leader when it began) waits on.
struct PendingChange {
    /// Names the change here (its member-table write reports under it).
    key: u64,
    asker: Asker,
    /// The change is in force once the replica's epoch reaches this (`None`: no stop-sign).
    epoch_after: Option<u64>,
    /// The member-table write still to be applied, if any.
    table_pending: bool,
    deadline: Micros,
}

/// A client's change this member forwarded to the leader.
struct ForwardedChange {
    ask: u64,
    request: RequestId,
    /// The change while not yet taken by a leader (`None` once sent).
    change: Option<ClusterChange>,
    /// The leader it was sent to.
    sent_to: Option<u64>,
    /// In force at the leader: answer once applied through this slot.
    through: Option<Slot>,
    deadline: Micros,
}

/// The changes a member waits on, as leader or as forwarder; at most [`CHANGES_MAX`] of both.
pub(super) struct Changes {
    pending: Vec<PendingChange>,
    forwarded: Vec<ForwardedChange>,
    next_key: u64,
    /// This member's name as its start described it (`--name`), to publish.
    own_name: String,
    /// Publish again no sooner than this.
    publish_at: Micros,
    /// When each member of the configuration was last heard from (any peer message), for
    /// etcd's strict reconfiguration check; at most [`HEARD_MAX`] entries.
    heard: BTreeMap<u64, Micros>,
}

/// How recently a voter must have been heard from to count as active in etcd's strict
/// reconfiguration check (etcd's `HealthInterval`).
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// Members whose last message time is kept (the transport's own bound on peers).
const HEARD_MAX: usize = 64;

impl Changes {
    /// No change waits yet; `own_name` is the member's `--name`.
    pub(super) fn new(own_name: String) -> Changes {
        Changes {
            pending: Vec::new(),
            forwarded: Vec::new(),
            next_key: 0,
            own_name,
            publish_at: Micros::ZERO,
            heard: BTreeMap::new(),
        }
    }

    /// Member `from` of the configuration in force sent a message at `now`.
    pub(super) fn heard_from(&mut self, from: u64, now: Micros) {
        if self.heard.len() >= HEARD_MAX && !self.heard.contains_key(&from) {
            // Forget the one heard from longest ago (a member removed long since).
            if let Some(oldest) = self
                .heard
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(id, _)| *id)
            {
                self.heard.remove(&oldest);
            }
        }
        self.heard.insert(from, now);
    }

    /// Whether `id` was heard from within [`HEALTH_INTERVAL`] of `now`.
    fn active(&self, id: u64, now: Micros) -> bool {
        self.heard
            .get(&id)
            .is_some_and(|t| now.saturating_since(*t) <= HEALTH_INTERVAL)
    }

    /// Changes waiting, both kinds.
    pub(super) fn len(&self) -> usize {
        self.pending.len() + self.forwarded.len()
    }

    fn next_key(&mut self) -> u64 {
        self.next_key += 1;
        self.next_key
    }
}

impl Member {
    /// A Cluster API change asked of this member by a client: carried out here if this member
    /// leads, otherwise forwarded to the leader.
    pub(super) fn cluster_change(
        &mut self,
        now: Micros,
        request: RequestId,
        change: ClusterChange,
    ) {
        if self.replica.role() != Role::Leader {
            self.forward_change(now, request, change);
        } else if let Err(e) = self.start_change(now, Asker::Client(request), change) {
            self.answer(request, Answer::Members(Err(e)));
        }
    }

    /// Checks a change against the configuration in force and the table, then proposes it (a
    /// stop-sign, a table write, or both). Nothing is proposed when it answers an error, so a
    /// refused change can be asked again.
    fn start_change(
        &mut self,
        now: Micros,
        asker: Asker,
        change: ClusterChange,
    ) -> Result<(), MemberError> {
        if self.replica.role() != Role::Leader {
            return Err(MemberError::NotLeader);
        }
        if self.changes.len() >= CHANGES_MAX {
            return Err(MemberError::TooManyRequests);
        }
        let config = self.replica.config().clone();
        let voters: Vec<NodeId> = config.members().to_vec();
        let learners: Vec<NodeId> = config.learners().to_vec();
        let (next, table) = match change {
            ClusterChange::Add {
                id,
                peer_urls,
                learner,
            } => {
                check_urls(&peer_urls)?;
                if !learner {
                    return Err(MemberError::VoterAddRefused);
                }
                // URLs first, as etcd: the node derives the id from them, so the same URLs
                // also mean the same id.
                self.check_urls_free(None, &peer_urls)?;
                if id == 0 || config.contains(NodeId(id)) {
                    return Err(MemberError::MemberExists);
                }
                let mut learners = learners;
                learners.push(NodeId(id));
                let info = MemberInfo {
                    name: String::new(),
                    peer_urls,
                };
                (
                    Some((voters, learners)),
                    Some(TableCommand::Set { id, info }),
                )
            }
            ClusterChange::Promote { id } => {
                if !config.contains(NodeId(id)) {
                    return Err(MemberError::MemberNotFound);
                }
                if !config.is_learner(NodeId(id)) {
                    return Err(MemberError::NotALearner);
                }
                let mut voters = voters;
                voters.push(NodeId(id));
                let learners = learners.into_iter().filter(|n| n.0 != id).collect();
                (Some((voters, learners)), None)
            }
            ClusterChange::Remove { id } => {
                if !config.contains(NodeId(id)) {
                    return Err(MemberError::MemberNotFound);
                }
                if config.is_voter(NodeId(id)) {
                    self.check_quorum_survives_removal(now, id, &voters)?;
                }
                let voters: Vec<NodeId> = voters.into_iter().filter(|n| n.0 != id).collect();
                let learners = learners.into_iter().filter(|n| n.0 != id).collect();
                if voters.is_empty() {
                    return Err(MemberError::NotEnoughStarted);
                }
                // Every member drops the entry when it applies the stop-sign (see drive).
                (Some((voters, learners)), None)
            }
            ClusterChange::Update { id, peer_urls } => {
                check_urls(&peer_urls)?;
                if !config.contains(NodeId(id)) {
                    return Err(MemberError::MemberNotFound);
                }
                self.check_urls_free(Some(id), &peer_urls)?;
                let name = self
                    .table
                    .get(&id)
                    .map(|i| i.name.clone())
                    .unwrap_or_default();
                let info = MemberInfo { name, peer_urls };
                (None, Some(TableCommand::Set { id, info }))
            }
        };
        let epoch_after = match next {
            None => None,
            Some((voters, learners)) => {
                let next = Configuration::with_learners(voters, learners, config.quorum())
                    .map_err(config_error)?;
                self.replica
                    .propose_reconfiguration(next)
                    .map_err(reconfig_error)?;
                Some(self.replica.epoch() + 1)
            }
        };
        let key = self.changes.next_key();
        self.changes.pending.push(PendingChange {
            key,
            asker,
            epoch_after,
            table_pending: table.is_some(),
            deadline: now + self.options.request_timeout,
        });
        if let Some(table) = table {
            self.submit_write(now, table.encode(), WriteFor::Table(key));
        }
        Ok(())
    }

    /// etcd's strict reconfiguration check for removing voter `id`: a voter not heard from
    /// lately is down and may go (that is how a dead member is replaced); removing an active
    /// one must leave a quorum of the remaining voters active, else the cluster could stop
    /// as soon as the change is in force (`etcdserver: unhealthy cluster`).
    fn check_quorum_survives_removal(
        &self,
        now: Micros,
        id: u64,
        voters: &[NodeId],
    ) -> Result<(), MemberError> {
        let own = self.replica.id().0;
        let active = |n: u64| n == own || self.changes.active(n, now);
        if !active(id) {
            return Ok(());
        }
        let active_after = voters.iter().filter(|n| n.0 != id && active(n.0)).count();
        let quorum_after = 1 + (voters.len() - 1) / 2;
        if active_after < quorum_after {
            return Err(MemberError::Unhealthy);
        }
        // Until every remaining voter knows the stop-sign chosen, the old configuration may
        // have to find it again by a phase 1 of its own, without the removed member (the
        // operator may take it away as soon as this answers). So the other voters of the old
        // configuration that vote (active, not rebuilding after a lost disk: a rebuilding
        // voter counts in no phase-1 quorum, and fences only once every voter reported) must
        // still make a phase-1 quorum of it; else the removal waits for the rebuild.
        let config = self.replica.config();
        let rebuilding = self.replica.voters_rebuilding();
        let mut voting_after = NodeSet::EMPTY;
        for n in voters {
            if n.0 != id && active(n.0) && !rebuilding.contains(n) {
                if let Some(i) = config.index_of(*n) {
                    voting_after.insert(i);
                }
            }
        }
        if !config.is_phase1_quorum(voting_after) {
            return Err(MemberError::Unhealthy);
        }
        Ok(())
    }

    /// Refuses peer URLs a member of the configuration (other than `except`) already has.
    fn check_urls_free(
        &self,
        except: Option<u64>,
        peer_urls: &[String],
    ) -> Result<(), MemberError> {
        let config = self.replica.config();
        let taken = self.table.iter().any(|(other, info)| {
            Some(*other) != except
                && config.contains(NodeId(*other))
                && urls_overlap(&info.peer_urls, peer_urls)
        });
        if taken {
            Err(MemberError::PeerUrlExists)
        } else {
            Ok(())
        }
    }

    pub(super) fn on_table_written(&mut self, key: u64, result: Result<(), MemberError>) {
        let Some(i) = self.changes.pending.iter().position(|c| c.key == key) else {
            return;
        };
        match result {
            Ok(()) => self.changes.pending[i].table_pending = false,
            Err(e) => {
                let c = self.changes.pending.remove(i);
                self.finish_change(c.asker, Err(e));
            }
        }
    }

    /// A member-table command was applied at this slot: apply it to the table (once: only a
    /// command the session table applied, not a duplicate).
    pub(super) fn on_table_applied(&mut self, applied: &Applied<KvOutput>, entry: &ChosenEntry) {
        if !matches!(applied.outcome, SessionOutcome::Applied(_)) {
            return;
        }
        let Value::Batch(commands) = &entry.value else {
            return;
        };
        let Some(command) = commands.iter().find(|c| c.id == applied.id) else {
            return;
        };
        if let Some(table) = TableCommand::decode(&command.payload) {
            table.apply(&mut self.table);
        }
    }

    /// Publishes this member's name into the replicated table once it is a member whose entry
    /// does not carry it yet, as etcd's members publish theirs when they start: `MemberAdd`
    /// knows only the new member's URLs, so it is listed without a name until it runs (as in
    /// etcd), and `member add` prints an initial cluster with every started member's name.
    /// The write is an ordinary one (forwarded, re-sent, exactly once); it is asked again after
    /// a request timeout while the table still lacks the name.
    pub(super) fn publish_own_name(&mut self, now: Micros) {
        let me = self.me();
        if self.changes.own_name.is_empty()
            || now < self.changes.publish_at
            || !self.replica.config().contains(NodeId(me))
        {
            return;
        }
        let Some(entry) = self.table.get(&me) else {
            return;
        };
        if entry.name == self.changes.own_name {
            return;
        }
        self.changes.publish_at = now + self.options.request_timeout;
        let info = MemberInfo {
            name: self.changes.own_name.clone(),
            peer_urls: entry.peer_urls.clone(),
        };
        let payload = TableCommand::Set { id: me, info }.encode();
        self.submit_write(now, payload, WriteFor::Publish);
    }

    /// Forwards a client's change to the leader (or keeps it until one is known).
    fn forward_change(&mut self, now: Micros, request: RequestId, change: ClusterChange) {
        if self.changes.len() >= CHANGES_MAX {
            self.answer(request, Answer::Members(Err(MemberError::TooManyRequests)));
            return;
        }
        let ask = self.changes.next_key();
        self.changes.forwarded.push(ForwardedChange {
            ask,
            request,
            change: Some(change),
            sent_to: None,
            through: None,
            deadline: now + self.options.request_timeout,
        });
        self.send_forwarded_changes(now);
    }

    /// Hands every change not yet taken to the leader; called when one is asked and whenever
    /// the leader changes. A member that now leads itself starts them here.
    pub(super) fn send_forwarded_changes(&mut self, now: Micros) {
        let Some(leader) = self.replica.leader().map(|n| n.0) else {
            return;
        };
        let me = self.me();
        let mut start_here = Vec::new();
        for f in &mut self.changes.forwarded {
            if f.change.is_none() {
                continue;
            }
            if leader == me {
                if let Some(change) = f.change.take() {
                    start_here.push((f.ask, f.request, change));
                }
            } else if f.sent_to != Some(leader) {
                if let Some(change) = f.change.take() {
                    f.sent_to = Some(leader);
                    let ask = PeerMessage::ChangeAsk { ask: f.ask, change };
                    self.outputs.push_back(super::Output::Send {
                        to: leader,
                        message: ask,
                    });
                }
            }
        }
        for (ask, request, change) in start_here {
            self.changes.forwarded.retain(|f| f.ask != ask);
            if let Err(e) = self.start_change(now, Asker::Client(request), change) {
                self.answer(request, Answer::Members(Err(e)));
            }
        }
    }

    /// A follower's forwarded change: carried out as a client's would be, answered to it.
    pub(super) fn on_change_ask(
        &mut self,
        now: Micros,
        from: u64,
        ask: u64,
        change: ClusterChange,
    ) {
        // Only members forward changes: a stranger's ask is dropped (the transport delivers
        // only from known peers; this also covers a member removed meanwhile).
        if !self.replica.config().contains(NodeId(from)) {
            tracing::warn!(
                from = format!("{from:x}"),
                "membership change asked by a non-member: dropped"
            );
            return;
        }
        let asker = Asker::Peer { member: from, ask };
        if let Err(e) = self.start_change(now, asker, change.clone()) {
            let result = match e {
                // Refused before anything was proposed: the forwarder asks the next leader.
                MemberError::NotLeader => Err(ChangeRefusal::NotLeader(change)),
                e => Err(ChangeRefusal::Refused(e)),
            };
            self.send_change_done(from, ask, result);
        }
    }

    /// The leader's answer to a change this member forwarded.
    pub(super) fn on_change_done(
        &mut self,
        now: Micros,
        from: u64,
        ask: u64,
        result: Result<Slot, MemberError>,
        change_back: Option<ClusterChange>,
    ) {
        let Some(i) = self
            .changes
            .forwarded
            .iter()
            .position(|f| f.ask == ask && f.sent_to == Some(from) && f.change.is_none())
        else {
            return;
        };
        match (result, change_back) {
            (Ok(slot), _) => {
                self.changes.forwarded[i].through = Some(slot);
                self.progress_changes();
            }
            (Err(MemberError::NotLeader), Some(change)) => {
                // Nothing was proposed: ask whoever leads next (not the same member again
                // unless the lead left it and came back).
                self.changes.forwarded[i].change = Some(change);
                self.send_forwarded_changes(now);
            }
            (Err(e), _) => {
                let f = self.changes.forwarded.remove(i);
                self.answer(f.request, Answer::Members(Err(e)));
            }
        }
    }

    fn send_change_done(&mut self, to: u64, ask: u64, result: Result<Slot, ChangeRefusal>) {
        let (result, change) = match result {
            Ok(slot) => (Ok(slot), None),
            Err(ChangeRefusal::NotLeader(change)) => (Err(MemberError::NotLeader), Some(change)),
            Err(ChangeRefusal::Refused(e)) => (Err(e), None),
        };
        self.send(
            to,
            PeerMessage::ChangeDone {
                ask,
                result,
                change,
            },
        );
    }

    fn finish_change(&mut self, asker: Asker, result: Result<(), MemberError>) {
        match asker {
            Asker::Client(request) => {
                let answer = result.map(|()| self.members());
                self.answer(request, Answer::Members(answer));
            }
            Asker::Peer { member, ask } => {
                let result = result
                    .map(|()| self.applier.applied_through())
                    .map_err(ChangeRefusal::Refused);
                self.send_change_done(member, ask, result);
            }
        }
    }

    /// Answers every change now in force here: as leader, those whose configuration is in
    /// force and whose table write is applied; as forwarder, those the leader reported done
    /// once this member applied as far.
    pub(super) fn progress_changes(&mut self) {
        let epoch = self.replica.epoch();
        let (done, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.changes.pending)
            .into_iter()
            .partition(|c| !c.table_pending && c.epoch_after.is_none_or(|e| epoch >= e));
        self.changes.pending = kept;
        for c in done {
            self.finish_change(c.asker, Ok(()));
        }
        let applied = self.applier.applied_through();
        let (done, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.changes.forwarded)
            .into_iter()
            .partition(|f| f.through.is_some_and(|s| s <= applied));
        self.changes.forwarded = kept;
        if !done.is_empty() {
            let members = self.members();
            for f in done {
                self.answer(f.request, Answer::Members(Ok(members.clone())));
            }
        }
    }

    pub(super) fn expire_changes(&mut self, now: Micros, timeout: &MemberError) {
        let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.changes.pending)
            .into_iter()
            .partition(|c| c.deadline <= now);
        self.changes.pending = kept;
        for c in expired {
            self.finish_change(c.asker, Err(timeout.clone()));
        }
        let (expired, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.changes.forwarded)
            .into_iter()
            .partition(|f| f.deadline <= now);
        self.changes.forwarded = kept;
        for f in expired {
            self.answer(f.request, Answer::Members(Err(timeout.clone())));
        }
    }

    /// Answers every change waiting here with `error` (the driver is stopping).
    pub(super) fn fail_changes(&mut self, error: &MemberError) {
        for c in std::mem::take(&mut self.changes.pending) {
            if let Asker::Client(request) = c.asker {
                self.answer(request, Answer::Members(Err(error.clone())));
            }
        }
        for f in std::mem::take(&mut self.changes.forwarded) {
            self.answer(f.request, Answer::Members(Err(error.clone())));
        }
    }
}

/// Why a leader did not carry out a forwarded change.
enum ChangeRefusal {
    /// It does not lead: nothing proposed; the change goes back to be asked again.
    NotLeader(ClusterChange),
    /// Refused for good.
    Refused(MemberError),
}

fn check_urls(urls: &[String]) -> Result<(), MemberError> {
    if urls.is_empty()
        || urls.len() > PEER_URLS_MAX
        || urls.iter().any(|u| u.is_empty() || u.len() > URL_BYTES_MAX)
    {
        return Err(MemberError::BadUrls);
    }
    Ok(())
}

fn config_error(e: ConfigError) -> MemberError {
    match e {
        ConfigError::Empty
        | ConfigError::QuorumTooLarge { .. }
        | ConfigError::QuorumsDoNotIntersect { .. } => MemberError::NotEnoughStarted,
        ConfigError::DuplicateMember(_) | ConfigError::VoterAndLearner(_) => {
            MemberError::MemberExists
        }
        _ => MemberError::NotEnoughStarted,
    }
}

fn reconfig_error(e: ReconfigError) -> MemberError {
    match e {
        ReconfigError::NotLeader { .. } => MemberError::NotLeader,
        ReconfigError::InProgress { .. } => MemberError::ChangeInProgress,
        ReconfigError::NotALearner { .. } => MemberError::NotALearner,
        ReconfigError::LearnerBehind { .. } | ReconfigError::LearnerNotReported { .. } => {
            MemberError::LearnerNotReady
        }
        ReconfigError::Invalid(e) => config_error(e),
    }
}
