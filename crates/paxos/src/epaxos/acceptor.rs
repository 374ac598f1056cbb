//! Every replica's side of another's instance: answering PreAccept with its own view of the
//! interfering instances, Accept and Prepare under the usual Paxos promise, and learning
//! commits.

use super::{Attrs, Command, EBallot, EpaxosMessage, InstanceId, InstanceRecord, Replica, Status};
use crate::ids::NodeId;

impl Replica {
    /// The committed record, if `instance` is committed here.
    fn committed(&self, instance: InstanceId) -> Option<&InstanceRecord> {
        self.instances
            .get(&instance)
            .filter(|r| r.vballot.is_some() && r.status == Status::Committed)
    }

    /// Tells `to` that `instance` is chosen, if it is here; true if it was.
    fn answer_committed(&mut self, to: NodeId, instance: InstanceId) -> bool {
        let Some(rec) = self.committed(instance) else {
            return false;
        };
        let msg = EpaxosMessage::Commit {
            instance,
            command: rec.command.clone(),
            attrs: rec.attrs.clone(),
        };
        self.send(to, msg);
        true
    }

    /// Refuses `ballot` if below the promise, telling the sender; true if refused.
    fn refuse_below_promise(&mut self, to: NodeId, instance: InstanceId, ballot: EBallot) -> bool {
        let promised = self.instances.get(&instance).map(|r| r.ballot);
        match promised {
            Some(p) if ballot < p => {
                self.send(
                    to,
                    EpaxosMessage::Nack {
                        instance,
                        promised: p,
                    },
                );
                true
            }
            _ => {
                // A takeover at a higher ballot ends our own leadership at a lower one.
                if self.leads.get(&instance).is_some_and(|l| l.ballot < ballot) {
                    self.leads.remove(&instance);
                }
                false
            }
        }
    }

    /// Whether a PreAccept or Accept at `ballot` may change `instance` here: it comes from the
    /// ballot's owner, the instance is not chosen here (else the sender is told the choice),
    /// and `ballot` is not below the promise (else the sender is told the promise). An
    /// admitted message counts as progress on the instance.
    fn admit_phase2(&mut self, from: NodeId, instance: InstanceId, ballot: EBallot) -> bool {
        if ballot.node != from || self.answer_committed(from, instance) {
            return false;
        }
        if self.refuse_below_promise(from, instance, ballot) {
            return false;
        }
        self.progress(instance);
        true
    }

    /// Promises `ballot` for `instance` (phase 1b, explicit prepare): raises the stored
    /// ballot, keeps whatever was accepted, and returns the record to report if something was
    /// (`vballot` set), so the recovering leader can pick it. A replica that never heard of
    /// the instance stores an empty no-op record, so the promise itself is durable. The same
    /// rule serves a peer's Prepare and the recovering leader's own promise.
    pub(super) fn promise(
        &mut self,
        instance: InstanceId,
        ballot: EBallot,
    ) -> Option<InstanceRecord> {
        let rec = match self.instances.get(&instance) {
            Some(r) => InstanceRecord {
                ballot,
                ..r.clone()
            },
            None => InstanceRecord {
                instance,
                ballot,
                vballot: None,
                status: Status::PreAccepted,
                command: Command::Noop,
                attrs: Attrs::default(),
                unchanged: false,
            },
        };
        let held = rec.vballot.map(|_| rec.clone());
        self.store(rec);
        held
    }

    pub(super) fn on_pre_accept(
        &mut self,
        from: NodeId,
        instance: InstanceId,
        ballot: EBallot,
        command: Command,
        attrs: Attrs,
    ) {
        if !self.admit_phase2(from, instance, ballot) {
            return;
        }
        if let Some(rec) = self.instances.get(&instance) {
            if rec.vballot == Some(ballot) {
                // A resend: answer what was answered. Recomputing could now find more
                // interfering instances and contradict the reply the leader may already have
                // counted toward the fast path; recovery reads the stored record.
                if rec.status == Status::PreAccepted {
                    let msg = EpaxosMessage::PreAcceptOk {
                        instance,
                        ballot,
                        attrs: rec.attrs.clone(),
                        unchanged: rec.unchanged,
                    };
                    self.send(from, msg);
                }
                return;
            }
        }
        let mine = self.local_attrs(instance, &command, attrs.clone());
        let unchanged = mine == attrs && ballot.is_default_of(instance);
        self.store(InstanceRecord {
            instance,
            ballot,
            vballot: Some(ballot),
            status: Status::PreAccepted,
            command,
            attrs: mine.clone(),
            unchanged,
        });
        self.send(
            from,
            EpaxosMessage::PreAcceptOk {
                instance,
                ballot,
                attrs: mine,
                unchanged,
            },
        );
    }

    pub(super) fn on_accept(
        &mut self,
        from: NodeId,
        instance: InstanceId,
        ballot: EBallot,
        command: Command,
        attrs: Attrs,
    ) {
        if !self.admit_phase2(from, instance, ballot) {
            return;
        }
        self.store(InstanceRecord {
            instance,
            ballot,
            vballot: Some(ballot),
            status: Status::Accepted,
            command,
            attrs,
            unchanged: false,
        });
        self.send(from, EpaxosMessage::AcceptOk { instance, ballot });
    }

    pub(super) fn on_commit(&mut self, instance: InstanceId, command: Command, attrs: Attrs) {
        if let Some(rec) = self.committed(instance) {
            if rec.command != command || rec.attrs != attrs {
                // Two different choices for one instance: a peer is broken (or a bug is
                // planted). Refuse it and keep ours; the simulator's oracle reports it.
                self.counters.refused += 1;
            }
            return;
        }
        self.leads.remove(&instance);
        self.commit_locally(instance, command, attrs);
    }

    /// Records `instance` as chosen and runs execution.
    pub(super) fn commit_locally(&mut self, instance: InstanceId, command: Command, attrs: Attrs) {
        let ballot = self
            .instances
            .get(&instance)
            .map_or(EBallot::default_of(instance), |r| r.ballot);
        let vballot = self
            .instances
            .get(&instance)
            .and_then(|r| r.vballot)
            .unwrap_or(ballot);
        self.store(InstanceRecord {
            instance,
            ballot,
            vballot: Some(vballot),
            status: Status::Committed,
            command,
            attrs,
            unchanged: false,
        });
        self.committed_unexecuted.insert(instance);
        let n = self.commit_arrival.len() as u64;
        self.commit_arrival.entry(instance).or_insert(n);
        self.try_execute();
    }

    pub(super) fn on_prepare(&mut self, from: NodeId, instance: InstanceId, ballot: EBallot) {
        if ballot.node != from {
            self.counters.refused += 1;
            return;
        }
        if let Some(rec) = self.committed(instance) {
            let msg = EpaxosMessage::PrepareOk {
                instance,
                ballot,
                held: Some(rec.clone()),
            };
            self.send(from, msg);
            return;
        }
        if self.refuse_below_promise(from, instance, ballot) {
            return;
        }
        self.progress(instance);
        let held = self.promise(instance, ballot);
        self.send(
            from,
            EpaxosMessage::PrepareOk {
                instance,
                ballot,
                held,
            },
        );
    }
}
