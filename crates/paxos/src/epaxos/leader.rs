//! The command leader's side (EPaxos §4.3.1): phase 1, the fast-path decision, phase 2, commit,
//! resending, and stepping down on a higher ballot. A replica that took an instance over by
//! explicit prepare leads it through the same phases at its own ballot (never the fast path).

use super::{Attrs, Command, EBallot, EpaxosMessage, InstanceId, InstanceRecord, Lead, LeadPhase};
use super::{Replica, Status};
use crate::ids::NodeId;

impl Replica {
    /// Sends phase 1 for `instance` at `ballot`; the caller has stored its own record.
    pub(super) fn start_pre_accept(
        &mut self,
        instance: InstanceId,
        ballot: EBallot,
        command: Command,
        attrs: Attrs,
    ) {
        self.leads.insert(
            instance,
            Lead {
                ballot,
                command: command.clone(),
                attrs: attrs.clone(),
                phase: LeadPhase::PreAccept {
                    proposed: attrs.clone(),
                    replies: Default::default(),
                },
                sent_at: self.now_ticks,
            },
        );
        self.broadcast(EpaxosMessage::PreAccept {
            instance,
            ballot,
            command,
            attrs,
        });
    }

    pub(super) fn on_pre_accept_ok(
        &mut self,
        from: NodeId,
        instance: InstanceId,
        ballot: EBallot,
        attrs: Attrs,
        unchanged: bool,
    ) {
        let Some(lead) = self.leads.get_mut(&instance) else {
            return;
        };
        if lead.ballot != ballot {
            return;
        }
        let LeadPhase::PreAccept { replies, .. } = &mut lead.phase else {
            return;
        };
        replies.insert(from, (attrs, unchanged));
        self.progress(instance);
        self.decide_pre_accept(instance, false);
    }

    /// The fast-path rule: at the default ballot, 2F-1 replies (2F with the leader) that took
    /// the leader's attributes unchanged choose them. Otherwise, once a majority answered and
    /// one of them changed the attributes (or the resend timer fired), phase 2 with the union.
    fn decide_pre_accept(&mut self, instance: InstanceId, timed_out: bool) {
        let Some(lead) = self.leads.get(&instance) else {
            return;
        };
        let LeadPhase::PreAccept { proposed, replies } = &lead.phase else {
            return;
        };
        let unchanged = replies.values().filter(|(_, u)| *u).count();
        let changed = replies.len() - unchanged;
        let fast_others = self.fast_quorum() - 1;
        let default = lead.ballot.is_default_of(instance);
        if default && unchanged >= fast_others {
            let (command, attrs) = (lead.command.clone(), proposed.clone());
            self.counters.fast_commits += 1;
            self.commit_as_leader(instance, command, attrs);
            return;
        }
        let majority_others = self.f;
        if replies.len() >= majority_others && (changed > 0 || !default || timed_out) {
            let mut attrs = proposed.clone();
            for (a, _) in replies.values() {
                attrs.seq = attrs.seq.max(a.seq);
                attrs.deps.extend(a.deps.iter().copied());
            }
            attrs.deps.remove(&instance);
            let (ballot, command) = (lead.ballot, lead.command.clone());
            self.start_accept(instance, ballot, command, attrs);
        }
    }

    /// Phase 2 at `ballot`: accepts locally, then asks the others.
    pub(super) fn start_accept(
        &mut self,
        instance: InstanceId,
        ballot: EBallot,
        command: Command,
        attrs: Attrs,
    ) {
        let promised = self.instances.get(&instance).map(|r| r.ballot);
        assert!(
            promised.is_none_or(|p| p <= ballot),
            "instance {instance}: leading at {ballot} below own promise"
        );
        self.store(InstanceRecord {
            instance,
            ballot,
            vballot: Some(ballot),
            status: Status::Accepted,
            command: command.clone(),
            attrs: attrs.clone(),
            unchanged: false,
        });
        self.leads.insert(
            instance,
            Lead {
                ballot,
                command: command.clone(),
                attrs: attrs.clone(),
                phase: LeadPhase::Accept {
                    acks: Default::default(),
                },
                sent_at: self.now_ticks,
            },
        );
        self.broadcast(EpaxosMessage::Accept {
            instance,
            ballot,
            command,
            attrs,
        });
    }

    pub(super) fn on_accept_ok(&mut self, from: NodeId, instance: InstanceId, ballot: EBallot) {
        let Some(lead) = self.leads.get_mut(&instance) else {
            return;
        };
        if lead.ballot != ballot {
            return;
        }
        let LeadPhase::Accept { acks } = &mut lead.phase else {
            return;
        };
        acks.insert(from);
        // F others and the leader itself: a majority of 2F+1.
        if acks.len() >= self.f {
            let (command, attrs) = (lead.command.clone(), lead.attrs.clone());
            self.counters.slow_commits += 1;
            if command == Command::Noop {
                self.counters.noops += 1;
            }
            self.commit_as_leader(instance, command, attrs);
        }
    }

    /// Chosen: record it, tell everyone, execute what became executable.
    pub(super) fn commit_as_leader(
        &mut self,
        instance: InstanceId,
        command: Command,
        attrs: Attrs,
    ) {
        self.leads.remove(&instance);
        self.commit_locally(instance, command.clone(), attrs.clone());
        self.broadcast(EpaxosMessage::Commit {
            instance,
            command,
            attrs,
        });
    }

    /// Resends the current phase's message to those that have not answered.
    pub(super) fn retry_leads(&mut self) {
        let due: Vec<InstanceId> = self
            .leads
            .iter()
            .filter(|(_, l)| self.now_ticks >= l.sent_at + self.options.retry_ticks)
            .map(|(i, _)| *i)
            .collect();
        for instance in due {
            self.decide_pre_accept(instance, true);
            let Some(lead) = self.leads.get_mut(&instance) else {
                continue;
            };
            lead.sent_at = self.now_ticks;
            let lead = lead.clone();
            let answered: Vec<NodeId> = match &lead.phase {
                LeadPhase::PreAccept { replies, .. } => replies.keys().copied().collect(),
                LeadPhase::Accept { acks } => acks.iter().copied().collect(),
                LeadPhase::Prepare { replies } => replies.keys().copied().collect(),
            };
            let msg = match &lead.phase {
                LeadPhase::PreAccept { proposed, .. } => EpaxosMessage::PreAccept {
                    instance,
                    ballot: lead.ballot,
                    command: lead.command.clone(),
                    attrs: proposed.clone(),
                },
                LeadPhase::Accept { .. } => EpaxosMessage::Accept {
                    instance,
                    ballot: lead.ballot,
                    command: lead.command.clone(),
                    attrs: lead.attrs.clone(),
                },
                LeadPhase::Prepare { .. } => EpaxosMessage::Prepare {
                    instance,
                    ballot: lead.ballot,
                },
            };
            let to: Vec<NodeId> = self.others().filter(|r| !answered.contains(r)).collect();
            for r in to {
                self.send(r, msg.clone());
            }
        }
    }

    /// A replica promised a higher ballot: stop leading at ours, remember the promise so the
    /// next takeover goes above it. (Remembering a promise we did not give only makes this
    /// replica refuse more, which is always safe.)
    pub(super) fn on_nack(&mut self, instance: InstanceId, promised: EBallot) {
        if let Some(lead) = self.leads.get(&instance) {
            if lead.ballot < promised {
                self.leads.remove(&instance);
            }
        }
        if let Some(rec) = self.instances.get(&instance) {
            if rec.ballot < promised && rec.status != Status::Committed {
                let mut rec = rec.clone();
                rec.ballot = promised;
                self.store(rec);
            }
        }
    }
}
