//! etcd's alarms as replicated state: which member raised which alarm, changed only by
//! [`crate::KvCommand::Alarm`] through the log, so every member lists the same alarms and
//! refuses the same writes at the same slot.
//!
//! etcd 3.4 (`etcdserver/apply.go`) swaps its applier when an alarm is raised: with NOSPACE
//! (`applierV3Capped`) puts, transactions that put and lease grants answer "etcdserver: mvcc:
//! database space exceeded", while reads, deletes, revokes and compactions still work; with
//! CORRUPT (`applierV3Corrupt`) every write (put, delete, transaction that writes, compaction,
//! lease grant and revoke) answers "etcdserver: corrupt cluster". Reads, served outside the
//! applier in etcd, still work. [`refusal`] is that rule, checked at apply.

use crate::error::KvError;
use crate::types::{KvCommand, RequestOp, TxnRequest};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The most alarms the store holds. etcd keys them by (member, type) with no bound, and a
/// client may name any member id; a bound keeps a misbehaving client from growing the state.
pub const ALARMS_MAX: usize = 256;

/// etcd's `AlarmType`, with its numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum AlarmType {
    /// `NONE` (0): in a GET or DEACTIVATE, "any type"; etcd stores it if a client raises it.
    None,
    /// `NOSPACE` (1): the store passed its quota; writes that grow it are refused.
    NoSpace,
    /// `CORRUPT` (2): members disagree on the store; every write is refused.
    Corrupt,
}

impl AlarmType {
    /// etcd's number for it (the protobuf enum value).
    pub fn number(self) -> u8 {
        match self {
            AlarmType::None => 0,
            AlarmType::NoSpace => 1,
            AlarmType::Corrupt => 2,
        }
    }

    /// The type with etcd's number `n`, if there is one.
    pub fn from_number(n: i64) -> Option<AlarmType> {
        match n {
            0 => Some(AlarmType::None),
            1 => Some(AlarmType::NoSpace),
            2 => Some(AlarmType::Corrupt),
            _ => None,
        }
    }

    /// etcd's name for it, as `etcdctl alarm list` and `/health` print it.
    pub fn name(self) -> &'static str {
        match self {
            AlarmType::None => "NONE",
            AlarmType::NoSpace => "NOSPACE",
            AlarmType::Corrupt => "CORRUPT",
        }
    }
}

/// etcd's `AlarmRequest.action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AlarmAction {
    /// List the alarms of `alarm`'s type (every type for [`AlarmType::None`]).
    Get,
    /// Raise `alarm` for `member_id`.
    Activate,
    /// Clear `alarm` for `member_id`.
    Deactivate,
}

/// A client's alarm request (etcd's `AlarmRequest`), applied through the log as etcd does
/// (etcd 3.4 sends even a GET through raft).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AlarmRequest {
    /// What to do.
    pub action: AlarmAction,
    /// The member the alarm is for (any id: etcd does not check it).
    pub member_id: u64,
    /// Which alarm.
    pub alarm: AlarmType,
}

/// One raised alarm (etcd's `AlarmMember`). Ordered by type, then member, which is the order
/// the store lists them in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AlarmMember {
    /// The alarm.
    pub alarm: AlarmType,
    /// The member it was raised for.
    pub member_id: u64,
}

/// What an alarm request answers, as etcd's applier does: a GET lists the alarms of its type;
/// an ACTIVATE lists the alarm (new or already raised); a DEACTIVATE lists the alarm it
/// cleared, or nothing when there was none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AlarmResponse {
    /// The store's revision (an alarm does not change it).
    pub revision: i64,
    /// The alarms, ordered by type then member.
    pub alarms: Vec<AlarmMember>,
}

/// The raised alarms, in order.
pub(crate) type Alarms = BTreeSet<AlarmMember>;

/// Applies `r` to `alarms` (see [`AlarmResponse`] for what it answers).
pub(crate) fn apply(alarms: &mut Alarms, r: &AlarmRequest) -> Result<Vec<AlarmMember>, KvError> {
    let m = AlarmMember {
        alarm: r.alarm,
        member_id: r.member_id,
    };
    Ok(match r.action {
        AlarmAction::Get => alarms
            .iter()
            .filter(|a| r.alarm == AlarmType::None || a.alarm == r.alarm)
            .copied()
            .collect(),
        AlarmAction::Activate => {
            if !alarms.contains(&m) && alarms.len() >= ALARMS_MAX {
                return Err(KvError::TooManyAlarms {
                    alarms_max: ALARMS_MAX,
                });
            }
            alarms.insert(m);
            vec![m]
        }
        AlarmAction::Deactivate => {
            if alarms.remove(&m) {
                vec![m]
            } else {
                Vec::new()
            }
        }
    })
}

/// Whether the raised `alarms` refuse `cmd`, as etcd 3.4's capped and corrupt appliers do
/// (module docs). Internal commands (lease expiry, the compactor) are refused alike, as in
/// etcd, where they go through the same applier.
pub(crate) fn refusal(alarms: &Alarms, cmd: &KvCommand) -> Option<KvError> {
    let raised = |t: AlarmType| alarms.iter().any(|a| a.alarm == t);
    if raised(AlarmType::Corrupt) {
        let writes = match cmd {
            KvCommand::Put(_)
            | KvCommand::DeleteRange(_)
            | KvCommand::Compact(_)
            | KvCommand::LeaseGrant(_)
            | KvCommand::LeaseRevoke(_) => true,
            // etcd serves a read-only transaction outside the applier.
            KvCommand::Txn(t) => !t.is_read_only(),
            // Its expiries are etcd's LeaseRevoke; its checkpoints are etcd's LeaseCheckpoint,
            // which the corrupt applier does not refuse.
            KvCommand::LeaseCheckpoint(c) => !c.expired.is_empty(),
            KvCommand::LeaseKeepAlive(_) | KvCommand::Auth(_) | KvCommand::Alarm(_) => false,
        };
        if writes {
            return Some(KvError::Corrupt);
        }
    }
    if raised(AlarmType::NoSpace) {
        let grows = match cmd {
            KvCommand::Put(_) | KvCommand::LeaseGrant(_) => true,
            KvCommand::Txn(t) => puts_at_top(t),
            _ => false,
        };
        if grows {
            return Some(KvError::NoSpace);
        }
    }
    None
}

/// etcd's `costTxn` is above 0: a put among either branch's own operations (nested
/// transactions are not counted, as in etcd 3.4).
fn puts_at_top(t: &TxnRequest) -> bool {
    let put = |ops: &[RequestOp]| ops.iter().any(|op| matches!(op, RequestOp::Put(_)));
    put(&t.success) || put(&t.failure)
}
