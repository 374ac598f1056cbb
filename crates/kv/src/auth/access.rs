//! Who may do what: the checks a client's command (at apply) and read (when served) pass
//! before they touch the store, and the table of etcd's `simple` tokens.
//!
//! **Why the checks are safe where they run.** A command carries its sender ([`Caller`]: the
//! user name and the auth revision its token was issued at) inside its log payload, and every
//! replica checks it when it applies the command's slot, against the auth tables as of that
//! slot. So the answer is a function of the log alone: every replica accepts or refuses alike,
//! and a grant or revoke chosen before the command's slot is always in force for it. A token
//! issued before a change to the tables is refused ([`AuthError::AuthOldRevision`], as etcd
//! refuses it), so a client whose rights shrank learns so and authenticates again. Reads are
//! checked against the tables this member applied through the read's index, which holds
//! every change acknowledged before the read began.

use super::{AuthStore, PermissionType, UserPermissions};
use crate::error::AuthError;
use crate::types::{KvCommand, RequestOp, TxnRequest};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;

/// Who sent a command or read, as the member that took it from the client established
/// (etcd's `AuthInfo`): a user named by a token or a client certificate, or nobody.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Caller {
    /// The user; empty for a client that sent no credential (refused while auth is on, with
    /// etcd's "user name is empty").
    pub user: String,
    /// The auth revision the user's token was issued at: a request is refused once the tables
    /// moved past it. `None` for a user named by its client certificate, which is checked
    /// against the tables as they are.
    pub auth_revision: Option<u64>,
}

impl Caller {
    /// A client that sent no credential.
    pub fn anonymous() -> Caller {
        Caller::default()
    }

    /// A user named by a token issued at `auth_revision`.
    pub fn user(user: impl Into<String>, auth_revision: u64) -> Caller {
        Caller {
            user: user.into(),
            auth_revision: Some(auth_revision),
        }
    }
}

/// Most simple tokens a store remembers; the oldest is forgotten first (its client gets
/// "invalid auth token" and authenticates again, as etcd's clients do on their own).
pub const SIMPLE_TOKENS_MAX: usize = 16_384;

/// etcd's `simple` tokens: opaque strings handed out by Authenticate, each naming a user and
/// the auth revision it was issued at.
///
/// A token is chosen by the member that took the Authenticate (its random part drawn there)
/// and recorded by every replica when it applies the Authenticate command, so that a client
/// may use it on any member, as etcd's tokens go through raft. The table is *not* replicated
/// state: nothing that apply decides depends on it (a command carries the user name the
/// token resolved to, not the token), it is not in snapshots or the digest, and a replica
/// that restarts or installs a snapshot forgets the tokens issued before (the client
/// authenticates again, as after an etcd member's restart).
#[derive(Clone, Default)]
pub struct SimpleTokens {
    by_token: BTreeMap<String, (String, u64)>,
    order: VecDeque<String>,
}

impl SimpleTokens {
    /// Records `token` for `user` at `auth_revision`, forgetting the oldest beyond
    /// [`SIMPLE_TOKENS_MAX`].
    pub(crate) fn insert(&mut self, token: &str, user: &str, auth_revision: u64) {
        if self
            .by_token
            .insert(token.to_owned(), (user.to_owned(), auth_revision))
            .is_none()
        {
            self.order.push_back(token.to_owned());
        }
        while self.order.len() > SIMPLE_TOKENS_MAX {
            if let Some(old) = self.order.pop_front() {
                self.by_token.remove(&old);
            }
        }
        debug_assert_eq!(self.order.len(), self.by_token.len());
    }

    /// The user `token` names and the auth revision it was issued at.
    pub fn get(&self, token: &str) -> Option<(&str, u64)> {
        self.by_token.get(token).map(|(u, r)| (u.as_str(), *r))
    }

    /// How many tokens are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// Tokens are credentials: never printed.
impl fmt::Debug for SimpleTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimpleTokens({} <redacted>)", self.order.len())
    }
}

/// Not part of the replicated state (see the type's docs): two stores are equal whatever
/// tokens they remember, as their digests and snapshots are.
impl PartialEq for SimpleTokens {
    fn eq(&self, _: &SimpleTokens) -> bool {
        true
    }
}

impl Eq for SimpleTokens {}

impl AuthStore {
    /// The permissions of `caller`, after etcd's checks of who it is: passes everything while
    /// auth is off; otherwise refuses a token from an older auth revision
    /// ([`AuthError::AuthOldRevision`]), no user ([`AuthError::UserEmpty`]) and an unknown
    /// user ([`AuthError::PermissionDenied`]).
    pub fn caller_permissions(&self, caller: &Caller) -> Result<UserPermissions, AuthError> {
        if !self.enabled {
            return Ok(UserPermissions::everything(self.revision));
        }
        if let Some(revision) = caller.auth_revision {
            self.check_revision(revision)?;
        }
        self.permissions(&caller.user)
    }

    /// etcd's admin check for `caller` (auth itself, members, alarms, defragment, snapshot,
    /// move-leader): passes while auth is off; otherwise the token must be current and the
    /// user must have the `root` role.
    pub fn check_caller_admin(&self, caller: &Caller) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        if let Some(revision) = caller.auth_revision {
            self.check_revision(revision)?;
        }
        self.check_admin(&caller.user)
    }
}

fn need(
    perms: &UserPermissions,
    key: &[u8],
    range_end: &[u8],
    t: PermissionType,
) -> Result<(), AuthError> {
    if perms.allows(key, range_end, t) {
        Ok(())
    } else {
        Err(AuthError::PermissionDenied)
    }
}

/// etcd's `checkTxnAuth`: every compare reads its key range; every operation of both
/// branches, nested transactions included, needs what it would need alone.
fn check_txn(perms: &UserPermissions, t: &TxnRequest) -> Result<(), AuthError> {
    for c in &t.compare {
        need(perms, &c.key, &c.range_end, PermissionType::Read)?;
    }
    for op in t.success.iter().chain(&t.failure) {
        match op {
            RequestOp::Range(r) => need(perms, &r.key, &r.range_end, PermissionType::Read)?,
            RequestOp::Put(p) => {
                need(perms, &p.key, &[], PermissionType::Write)?;
                if p.prev_kv {
                    need(perms, &p.key, &[], PermissionType::Read)?;
                }
            }
            RequestOp::DeleteRange(d) => {
                need(perms, &d.key, &d.range_end, PermissionType::Write)?;
                if d.prev_kv {
                    need(perms, &d.key, &d.range_end, PermissionType::Read)?;
                }
            }
            RequestOp::Txn(inner) => check_txn(perms, inner)?,
        }
    }
    Ok(())
}

/// What a command needs besides the keys its leases hold (see
/// [`crate::KvStore::apply_as`]): etcd's `authApplierV3`.
pub(crate) fn check_command(
    auth: &AuthStore,
    caller: &Caller,
    cmd: &KvCommand,
    lease_keys: impl Fn(i64) -> Vec<Vec<u8>>,
) -> Result<(), AuthError> {
    if !auth.is_enabled() {
        // AuthEnable itself passes here: etcd lets anyone turn auth on (it needs root to exist).
        return Ok(());
    }
    let lease_puts = |perms: &UserPermissions, lease: i64| -> Result<(), AuthError> {
        // etcd's `checkLeasePuts`: attaching to, or revoking, a lease whose keys the user may
        // not write is refused, or revoking it would delete them.
        for key in lease_keys(lease) {
            need(perms, &key, &[], PermissionType::Write)?;
        }
        Ok(())
    };
    match cmd {
        KvCommand::Put(p) => {
            let perms = auth.caller_permissions(caller)?;
            need(&perms, &p.key, &[], PermissionType::Write)?;
            if p.prev_kv {
                need(&perms, &p.key, &[], PermissionType::Read)?;
            }
            lease_puts(&perms, p.lease)
        }
        KvCommand::DeleteRange(d) => {
            let perms = auth.caller_permissions(caller)?;
            need(&perms, &d.key, &d.range_end, PermissionType::Write)?;
            if d.prev_kv {
                need(&perms, &d.key, &d.range_end, PermissionType::Read)?;
            }
            Ok(())
        }
        KvCommand::Txn(t) => check_txn(&auth.caller_permissions(caller)?, t),
        KvCommand::LeaseRevoke(r) => lease_puts(&auth.caller_permissions(caller)?, r.id),
        // etcd's applier checks nothing for these (any client may compact, grant and renew).
        KvCommand::Compact(_) | KvCommand::LeaseGrant(_) | KvCommand::LeaseKeepAlive(_) => Ok(()),
        // Anyone may authenticate: the password was checked before proposing.
        KvCommand::Auth(super::AuthCommand::Authenticate { .. }) => Ok(()),
        KvCommand::Auth(_) => auth.check_caller_admin(caller),
        // The leader's own record, never a client's (internal commands carry no caller); one
        // that came in a client's envelope could only shorten or stretch leases: admin only.
        KvCommand::LeaseCheckpoint(_) => auth.check_caller_admin(caller),
        // etcd: any user may list alarms; raising or clearing one needs root.
        KvCommand::Alarm(a) if a.action == crate::AlarmAction::Get => Ok(()),
        KvCommand::Alarm(_) => auth.check_caller_admin(caller),
    }
}

/// Bugs planted on purpose (feature `planted-bugs`), each switched on for the calling thread
/// only, so that a test can show the checker that should catch it does.
#[cfg(feature = "planted-bugs")]
pub mod planted {
    use std::cell::Cell;

    thread_local! {
        static WATCH_CHECKS_FIRST_KEY_ONLY: Cell<bool> = const { Cell::new(false) };
    }

    /// A watch is checked on its first key alone and its events are not filtered: the leak
    /// etcd fixed in 2026 (a watch on a range reaching past the grant saw keys outside it).
    pub fn set_watch_checks_first_key_only(on: bool) {
        WATCH_CHECKS_FIRST_KEY_ONLY.with(|c| c.set(on));
    }

    pub(crate) fn watch_checks_first_key_only() -> bool {
        WATCH_CHECKS_FIRST_KEY_ONLY.with(Cell::get)
    }
}
