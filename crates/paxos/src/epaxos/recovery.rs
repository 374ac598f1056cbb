//! Explicit prepare (EPaxos §4.4, with Sutra's 2019 correction): a replica that waited too long
//! for an instance to be committed takes it over at a ballot above every promise it saw.
//!
//! Once F+1 replicas (itself included) promised, it decides from what they hold, in order:
//! 1. one holds it **Committed**: commit that;
//! 2. some hold it **Accepted**: phase 2 with the command and attributes of the *highest
//!    vballot* among them. This is Sutra's correction: the published specification kept one
//!    ballot per instance, overwritten by every promise, so a replica that had accepted at one
//!    ballot and then promised a later one could not say which accepted value was the newest,
//!    and recovery could pick a stale one and choose two values. Here a record keeps `ballot`
//!    (promised) and `vballot` (accepted at) apart, which is classic Paxos's phase-1 rule;
//! 3. at least F replicas other than the command leader hold it **PreAccepted at the default
//!    ballot with the leader's attributes unchanged**: phase 2 with those attributes;
//! 4. some hold it PreAccepted (any ballot): phase 1 again at the new ballot with that
//!    command, then always phase 2 (a takeover never takes the fast path);
//! 5. none holds anything: phase 2 with a no-op.
//!
//! Why rule 3 is safe with the fast quorum of 2F. A command chosen on the fast path was
//! pre-accepted unchanged by 2F replicas, so by all but one; any F+1 that promise include F of
//! them besides the leader, so recovery finds rule 3 (or 1 or 2, if a later ballot already
//! went further) and chooses the same attributes. When rule 3 applies and the command was not
//! chosen, choosing the leader's attributes is still consistent: an interfering command δ
//! chosen without our instance in its dependencies was agreed by a majority, which meets the F
//! unchanged replicas; such a replica that saw δ before our PreAccept would have added δ, so it
//! answered unchanged only because δ already was in the leader's dependencies; one that saw δ
//! after ours gave δ our instance as a dependency. Rules 1 and 2 are classic Paxos: anything
//! chosen at ballot b was accepted at b by a majority, which meets every recovery quorum. The
//! attributes of rules 4 and 5 are only proposed where rules 1 to 3 found nothing, so nothing
//! was or can be chosen at a lower ballot (those quorums promised ours).

use super::{
    Attrs, Command, EBallot, EpaxosMessage, InstanceId, InstanceRecord, Lead, LeadPhase, Replica,
    Status,
};
use crate::ids::NodeId;
use std::collections::BTreeMap;

impl Replica {
    /// Starts explicit prepare of `instance` at a ballot above our promise.
    pub(super) fn start_recovery(&mut self, instance: InstanceId) {
        let promised = self
            .instances
            .get(&instance)
            .map_or(EBallot::default_of(instance), |r| r.ballot);
        let ballot = promised.next_for(self.id);
        let held = self.promise(instance, ballot);
        self.counters.recoveries += 1;
        let mut replies = BTreeMap::new();
        replies.insert(self.id, held);
        self.leads.insert(
            instance,
            Lead {
                ballot,
                command: Command::Noop,
                attrs: Attrs::default(),
                phase: LeadPhase::Prepare { replies },
                sent_at: self.now_ticks,
            },
        );
        self.broadcast(EpaxosMessage::Prepare { instance, ballot });
    }

    pub(super) fn on_prepare_ok(
        &mut self,
        from: NodeId,
        instance: InstanceId,
        ballot: EBallot,
        held: Option<InstanceRecord>,
    ) {
        if let Some(h) = &held {
            if h.vballot.is_some() && h.status == Status::Committed {
                // Chosen already: no need to wait for a quorum.
                self.leads.remove(&instance);
                if self
                    .record(instance)
                    .is_none_or(|r| r.vballot.is_none() || r.status != Status::Committed)
                {
                    let (command, attrs) = (h.command.clone(), h.attrs.clone());
                    self.commit_locally(instance, command, attrs);
                }
                return;
            }
        }
        let Some(lead) = self.leads.get_mut(&instance) else {
            return;
        };
        if lead.ballot != ballot {
            return;
        }
        let LeadPhase::Prepare { replies } = &mut lead.phase else {
            return;
        };
        replies.insert(from, held.filter(|h| h.vballot.is_some()));
        if replies.len() < self.f + 1 {
            return;
        }
        let replies = replies.clone();
        self.progress(instance);
        self.decide_recovery(instance, ballot, &replies);
    }

    /// Rules 2 to 5 of the module docs, from F+1 promises.
    fn decide_recovery(
        &mut self,
        instance: InstanceId,
        ballot: EBallot,
        replies: &BTreeMap<NodeId, Option<InstanceRecord>>,
    ) {
        let held: Vec<&InstanceRecord> = replies.values().flatten().collect();
        // Rule 2: the Accepted value of the highest vballot.
        if let Some(best) = held
            .iter()
            .filter(|h| h.status == Status::Accepted)
            .max_by_key(|h| h.vballot)
        {
            let (command, attrs) = (best.command.clone(), best.attrs.clone());
            self.start_accept(instance, ballot, command, attrs);
            return;
        }
        // Rule 3: F unchanged default-ballot pre-accepts from replicas other than the leader.
        let default = EBallot::default_of(instance);
        let mut groups: BTreeMap<(String, u64), (usize, &InstanceRecord)> = BTreeMap::new();
        for (who, h) in replies {
            let Some(h) = h else { continue };
            if *who == instance.replica
                || h.status != Status::PreAccepted
                || h.vballot != Some(default)
                || !h.unchanged
            {
                continue;
            }
            let key = (format!("{:?}", (&h.command, &h.attrs.deps)), h.attrs.seq);
            groups.entry(key).or_insert((0, h)).0 += 1;
        }
        if let Some((_, h)) = groups.values().find(|(n, _)| *n >= self.f) {
            let (command, attrs) = (h.command.clone(), h.attrs.clone());
            self.start_accept(instance, ballot, command, attrs);
            return;
        }
        // Rule 4: phase 1 again with the command, at our ballot.
        if let Some(h) = held
            .iter()
            .filter(|h| h.status == Status::PreAccepted && h.command != Command::Noop)
            .max_by_key(|h| h.vballot)
        {
            let command = h.command.clone();
            let attrs = self.local_attrs(instance, &command, h.attrs.clone());
            self.store(InstanceRecord {
                instance,
                ballot,
                vballot: Some(ballot),
                status: Status::PreAccepted,
                command: command.clone(),
                attrs: attrs.clone(),
                unchanged: false,
            });
            self.start_pre_accept(instance, ballot, command, attrs);
            return;
        }
        // Rule 5: nothing anywhere in a majority: a no-op.
        self.start_accept(instance, ballot, Command::Noop, Attrs::default());
    }
}
