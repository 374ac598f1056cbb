//! Random command sequences against a reference model that keeps a full copy of the store at
//! every revision: every answer, refusals included, and every revision must match, and at the
//! end every revision still readable must read the same in both.
//!
//! The model is written for obviousness, not speed: it shares no code with the store.

mod common;

use common::{step, Step};
use kv::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

type Snapshot = BTreeMap<Vec<u8>, KeyValue>;

struct Model {
    /// `at[r]`: the live keys at revision `r` (index 0 unused).
    at: Vec<Snapshot>,
    /// etcd's compaction revision: -1 before any compaction (so one at 0 is taken once).
    compacted: i64,
    /// Lease id to granted TTL.
    leases: BTreeMap<i64, i64>,
    /// Raised alarms: (etcd's type number, member).
    alarms: BTreeSet<(u8, u64)>,
}

fn in_span(k: &[u8], key: &[u8], end: &[u8]) -> bool {
    match end {
        [] => k == key,
        [0] => k >= key,
        _ => k >= key && k < end,
    }
}

impl Model {
    fn new() -> Model {
        Model {
            at: vec![Snapshot::new(), Snapshot::new()],
            compacted: -1,
            leases: BTreeMap::new(),
            alarms: BTreeSet::new(),
        }
    }

    fn revision(&self) -> i64 {
        self.at.len() as i64 - 1
    }

    fn current(&self) -> &Snapshot {
        &self.at[self.at.len() - 1]
    }

    fn check_revision(&self, revision: i64) -> Result<(), KvError> {
        if revision > self.revision() {
            Err(KvError::FutureRevision)
        } else if revision > 0 && revision < self.compacted {
            Err(KvError::Compacted)
        } else {
            Ok(())
        }
    }

    fn range_in(snapshot: &Snapshot, r: &RangeRequest, header: i64) -> RangeResponse {
        let all: Vec<&KeyValue> = snapshot
            .values()
            .filter(|kv| in_span(&kv.key, &r.key, &r.range_end))
            .collect();
        let count = all.len() as i64;
        if r.count_only {
            return RangeResponse {
                revision: header,
                kvs: vec![],
                more: false,
                count,
            };
        }
        let mut kvs: Vec<KeyValue> = all
            .into_iter()
            .filter(|kv| r.min_mod_revision == 0 || kv.mod_revision >= r.min_mod_revision)
            .cloned()
            .collect();
        let field = |kv: &KeyValue| -> (Vec<u8>, i64) {
            match r.sort_target {
                SortTarget::Key => (kv.key.clone(), 0),
                SortTarget::Value => (kv.value.clone(), 0),
                SortTarget::Version => (vec![], kv.version),
                SortTarget::Create => (vec![], kv.create_revision),
                SortTarget::Mod => (vec![], kv.mod_revision),
            }
        };
        let descend = r.sort_order == SortOrder::Descend;
        // Stable, ties in key order, which is how the store breaks them.
        kvs.sort_by(|a, b| {
            let o = field(a).cmp(&field(b));
            if descend {
                o.reverse()
            } else {
                o
            }
        });
        let more = r.limit > 0 && kvs.len() as i64 > r.limit;
        if r.limit > 0 {
            kvs.truncate(r.limit as usize);
        }
        if r.keys_only {
            kvs.iter_mut().for_each(|kv| kv.value.clear());
        }
        RangeResponse {
            revision: header,
            kvs,
            more,
            count,
        }
    }

    fn range(&self, r: &RangeRequest) -> Result<RangeResponse, KvError> {
        if r.key.is_empty() {
            return Err(KvError::EmptyKey);
        }
        self.check_revision(r.revision)?;
        let at = if r.revision <= 0 {
            self.revision()
        } else {
            r.revision
        };
        Ok(Model::range_in(&self.at[at as usize], r, self.revision()))
    }

    fn put_into(next: &mut Snapshot, rev: i64, p: &PutRequest) -> PutResponse {
        let prev = next.get(&p.key).cloned();
        let kv = KeyValue {
            key: p.key.clone(),
            create_revision: prev.as_ref().map_or(rev, |kv| kv.create_revision),
            mod_revision: rev,
            version: prev.as_ref().map_or(1, |kv| kv.version + 1),
            value: p.value.clone(),
            lease: p.lease,
        };
        next.insert(p.key.clone(), kv);
        PutResponse {
            revision: rev,
            prev_kv: if p.prev_kv { prev } else { None },
        }
    }

    fn delete_from(next: &mut Snapshot, d: &DeleteRangeRequest) -> Vec<KeyValue> {
        let gone: Vec<KeyValue> = next
            .values()
            .filter(|kv| in_span(&kv.key, &d.key, &d.range_end))
            .cloned()
            .collect();
        for kv in &gone {
            next.remove(&kv.key);
        }
        gone
    }

    fn compare(&self, c: &Compare) -> bool {
        let hits: Vec<&KeyValue> = self
            .current()
            .values()
            .filter(|kv| in_span(&kv.key, &c.key, &c.range_end))
            .collect();
        let zero = KeyValue::default();
        let one = |kv: &KeyValue| {
            let o = match &c.target {
                CompareTarget::Value(v) => kv.value.cmp(v),
                CompareTarget::Version(n) => kv.version.cmp(n),
                CompareTarget::Create(n) => kv.create_revision.cmp(n),
                CompareTarget::Mod(n) => kv.mod_revision.cmp(n),
                CompareTarget::Lease(n) => kv.lease.cmp(n),
            };
            match c.result {
                CompareResult::Equal => o.is_eq(),
                CompareResult::Greater => o.is_gt(),
                CompareResult::Less => o.is_lt(),
                CompareResult::NotEqual => o.is_ne(),
            }
        };
        if hits.is_empty() {
            !matches!(c.target, CompareTarget::Value(_)) && one(&zero)
        } else {
            hits.into_iter().all(one)
        }
    }

    fn commit(&mut self, next: Snapshot, changed: bool) {
        if changed {
            self.at.push(next);
        }
    }

    /// etcd 3.4's capped (NOSPACE) and corrupt (CORRUPT) appliers, written out per command.
    fn alarm_refusal(&self, cmd: &KvCommand) -> Option<KvError> {
        let raised = |n: u8| self.alarms.iter().any(|(t, _)| *t == n);
        let flat_read_only = |t: &TxnRequest| {
            t.success
                .iter()
                .chain(&t.failure)
                .all(|op| matches!(op, RequestOp::Range(_)))
        };
        let puts = |t: &TxnRequest| {
            t.success
                .iter()
                .chain(&t.failure)
                .any(|op| matches!(op, RequestOp::Put(_)))
        };
        if raised(2) {
            match cmd {
                KvCommand::Txn(t) if flat_read_only(t) => {}
                KvCommand::Put(_)
                | KvCommand::DeleteRange(_)
                | KvCommand::Txn(_)
                | KvCommand::Compact(_)
                | KvCommand::LeaseGrant(_)
                | KvCommand::LeaseRevoke(_) => return Some(KvError::Corrupt),
                _ => {}
            }
        }
        if raised(1) {
            match cmd {
                KvCommand::Put(_) | KvCommand::LeaseGrant(_) => return Some(KvError::NoSpace),
                KvCommand::Txn(t) if puts(t) => return Some(KvError::NoSpace),
                _ => {}
            }
        }
        None
    }

    fn apply(&mut self, cmd: &KvCommand) -> KvOutput {
        if let Some(refused) = self.alarm_refusal(cmd) {
            return Err(refused);
        }
        let rev = self.revision() + 1;
        let mut next = self.current().clone();
        match cmd {
            KvCommand::Put(p) => {
                if p.key.is_empty() {
                    return Err(KvError::EmptyKey);
                }
                if p.lease != 0 && !self.leases.contains_key(&p.lease) {
                    return Err(KvError::LeaseNotFound);
                }
                let out = Model::put_into(&mut next, rev, p);
                self.commit(next, true);
                Ok(KvResponse::Put(out))
            }
            KvCommand::DeleteRange(d) => {
                if d.key.is_empty() {
                    return Err(KvError::EmptyKey);
                }
                let gone = Model::delete_from(&mut next, d);
                self.commit(next, !gone.is_empty());
                Ok(KvResponse::DeleteRange(DeleteRangeResponse {
                    revision: self.revision(),
                    deleted: gone.len() as i64,
                    prev_kvs: if d.prev_kv { gone } else { vec![] },
                }))
            }
            KvCommand::Txn(t) => self.txn(t),
            KvCommand::Compact(c) => {
                // etcd's rule as its store has it, from compaction revision -1.
                if c.revision <= self.compacted {
                    return Err(KvError::Compacted);
                }
                if c.revision > self.revision() {
                    return Err(KvError::FutureRevision);
                }
                self.compacted = c.revision;
                Ok(KvResponse::Compact(CompactResponse {
                    revision: self.revision(),
                }))
            }
            KvCommand::LeaseGrant(g) => {
                if self.leases.contains_key(&g.id) {
                    return Err(KvError::LeaseExists);
                }
                self.leases.insert(g.id, g.ttl);
                Ok(KvResponse::LeaseGrant(LeaseGrantResponse {
                    revision: self.revision(),
                    id: g.id,
                    ttl: g.ttl,
                }))
            }
            KvCommand::LeaseRevoke(r) => {
                if self.leases.remove(&r.id).is_none() {
                    return Err(KvError::LeaseNotFound);
                }
                let before = next.len();
                next.retain(|_, kv| kv.lease != r.id);
                let changed = next.len() != before;
                self.commit(next, changed);
                Ok(KvResponse::LeaseRevoke(LeaseRevokeResponse {
                    revision: self.revision(),
                }))
            }
            KvCommand::LeaseKeepAlive(k) => {
                let ttl = *self.leases.get(&k.id).ok_or(KvError::LeaseNotFound)?;
                Ok(KvResponse::LeaseKeepAlive(LeaseKeepAliveResponse {
                    revision: self.revision(),
                    id: k.id,
                    ttl,
                }))
            }
            // The auth tables have their own reference (src/auth/tests.rs); the generators here
            // make no auth commands.
            KvCommand::Auth(_) => unreachable!("the model's generators make no auth commands"),
            // Checkpoints have their own unit tests (src/tests.rs); none are generated here.
            KvCommand::LeaseCheckpoint(_) => {
                unreachable!("the model's generators make no lease checkpoints")
            }
            KvCommand::Alarm(a) => {
                let key = (a.alarm.number(), a.member_id);
                let alarms = match a.action {
                    AlarmAction::Get => self
                        .alarms
                        .iter()
                        .filter(|(t, _)| a.alarm == AlarmType::None || *t == key.0)
                        .map(|&(t, member_id)| AlarmMember {
                            alarm: AlarmType::from_number(i64::from(t)).expect("stored"),
                            member_id,
                        })
                        .collect(),
                    AlarmAction::Activate => {
                        self.alarms.insert(key);
                        vec![AlarmMember {
                            alarm: a.alarm,
                            member_id: a.member_id,
                        }]
                    }
                    AlarmAction::Deactivate => {
                        if self.alarms.remove(&key) {
                            vec![AlarmMember {
                                alarm: a.alarm,
                                member_id: a.member_id,
                            }]
                        } else {
                            vec![]
                        }
                    }
                };
                Ok(KvResponse::Alarm(AlarmResponse {
                    revision: self.revision(),
                    alarms,
                }))
            }
        }
    }

    /// Flat transactions only (nesting is covered by the unit tests).
    fn txn(&mut self, t: &TxnRequest) -> KvOutput {
        for op in t.success.iter().chain(&t.failure) {
            let key = match op {
                RequestOp::Range(r) => &r.key,
                RequestOp::Put(p) => &p.key,
                RequestOp::DeleteRange(d) => &d.key,
                RequestOp::Txn(_) => unreachable!("the generator makes flat txns"),
            };
            if key.is_empty() {
                return Err(KvError::EmptyKey);
            }
        }
        for branch in [&t.success, &t.failure] {
            let mut puts = BTreeSet::new();
            for op in branch.iter() {
                if let RequestOp::Put(p) = op {
                    let under_delete = branch.iter().any(|o| match o {
                        RequestOp::DeleteRange(d) => in_span(&p.key, &d.key, &d.range_end),
                        _ => false,
                    });
                    if !puts.insert(p.key.clone()) || under_delete {
                        return Err(KvError::DuplicateKey);
                    }
                }
            }
        }
        let succeeded = t.compare.iter().all(|c| self.compare(c));
        let branch = if succeeded { &t.success } else { &t.failure };
        for op in branch {
            if let RequestOp::Put(p) = op {
                if p.lease != 0 && !self.leases.contains_key(&p.lease) {
                    return Err(KvError::LeaseNotFound);
                }
            }
        }
        for op in branch {
            if let RequestOp::Range(r) = op {
                self.check_revision(r.revision)?;
            }
        }
        let rev = self.revision() + 1;
        let mut next = self.current().clone();
        let mut changed = false;
        let mut responses = Vec::new();
        for op in branch {
            let view = if changed { rev } else { rev - 1 };
            responses.push(match op {
                RequestOp::Range(r) => {
                    let out = if r.revision <= 0 {
                        Model::range_in(&next, r, view)
                    } else {
                        Model::range_in(&self.at[r.revision as usize], r, view)
                    };
                    ResponseOp::Range(out)
                }
                RequestOp::Put(p) => {
                    changed = true;
                    ResponseOp::Put(Model::put_into(&mut next, rev, p))
                }
                RequestOp::DeleteRange(d) => {
                    let gone = Model::delete_from(&mut next, d);
                    changed |= !gone.is_empty();
                    ResponseOp::DeleteRange(DeleteRangeResponse {
                        revision: if changed { rev } else { rev - 1 },
                        deleted: gone.len() as i64,
                        prev_kvs: if d.prev_kv { gone } else { vec![] },
                    })
                }
                RequestOp::Txn(_) => unreachable!("flat"),
            });
        }
        self.commit(next, changed);
        Ok(KvResponse::Txn(TxnResponse {
            revision: self.revision(),
            succeeded,
            responses,
        }))
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn the_store_answers_as_the_model_does(steps in prop::collection::vec(step(), 1..80)) {
        let mut store = KvStore::new();
        let mut model = Model::new();
        for (i, s) in steps.iter().enumerate() {
            match s {
                Step::Command(cmd) => {
                    let want = model.apply(cmd);
                    let got = store.apply(cmd);
                    prop_assert_eq!(got, want, "step {}: {:?}", i, cmd);
                }
                Step::Read(r) => {
                    prop_assert_eq!(store.range(r), model.range(r), "step {}: {:?}", i, r);
                }
            }
            prop_assert_eq!(store.revision(), model.revision(), "step {}", i);
            prop_assert_eq!(store.etcd_compact_revision(), model.compacted);
            prop_assert_eq!(store.compact_revision(), model.compacted.max(0));
        }
        // Every revision still readable reads the same everywhere.
        for rev in model.compacted.max(1)..=model.revision() {
            let all = RangeRequest { revision: rev, ..RangeRequest::range("\0", "\0") };
            prop_assert_eq!(store.range(&all), model.range(&all), "revision {}", rev);
        }
        if model.compacted > 1 {
            let below = RangeRequest { revision: model.compacted - 1, ..RangeRequest::single("a") };
            prop_assert_eq!(store.range(&below), Err(KvError::Compacted));
        }
    }
}
