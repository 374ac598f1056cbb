//! etcd's v3 auth state as part of the replicated state machine: users, roles, permissions,
//! the enabled flag and the auth revision, with etcd 3.4's rules and errors.
//!
//! Every replica applies the same [`AuthCommand`]s in slot order, so every replica holds the
//! same tables; every answer here, including each permission check, is a pure function of them.
//! Two things keep apply deterministic and cheap:
//!
//! - **Passwords are hashed before they are proposed.** The member that takes a client's
//!   UserAdd or UserChangePassword calls [`hash_password`] (bcrypt, random salt, etcd's cost)
//!   and proposes the hash; apply only stores it. A password is never in the log, a snapshot,
//!   a `Debug` output or a log line: [`PasswordHash`] prints as `<redacted>`.
//! - **Checking a password is not apply.** [`AuthStore::check_password`] runs bcrypt on the
//!   caller's thread (etcd checks it outside the apply path too).
//!
//! The rules are etcd 3.4's (`auth/store.go`), with one deliberate difference: etcd keeps a
//! role's permissions in an unstable sort by key and so can hold two copies of one
//! `(key, range_end)` when several share a key; here they are kept sorted by `(key, range_end)`
//! and a grant of an existing pair always updates it. Deliberately the same as etcd, though
//! surprising: AuthEnable does not move the auth revision; granting the `root` role does not
//! need a role named `root` to exist; the `root` role can be given permissions (it allows
//! everything anyway).
//!
//! ```
//! use kv::{AuthCommand, KvCommand, KvResponse, KvStore, Permission, PermissionType, UserPassword};
//!
//! let mut store = KvStore::new();
//! let hash = kv::hash_password("secret", kv::BCRYPT_COST_MIN).unwrap();
//! for cmd in [
//!     AuthCommand::UserAdd { name: "root".into(), password: UserPassword::Hash(hash.clone()) },
//!     AuthCommand::UserGrantRole { user: "root".into(), role: "root".into() },
//!     AuthCommand::RoleAdd { name: "reader".into() },
//!     AuthCommand::RoleGrantPermission {
//!         role: "reader".into(),
//!         perm: Permission::prefix("app/", PermissionType::Read),
//!     },
//!     AuthCommand::UserAdd { name: "alice".into(), password: UserPassword::Hash(hash) },
//!     AuthCommand::UserGrantRole { user: "alice".into(), role: "reader".into() },
//!     AuthCommand::AuthEnable,
//! ] {
//!     // The log carries the encoded command, as for any other.
//!     let cmd = kv::decode(&kv::encode(&KvCommand::Auth(cmd))).unwrap();
//!     let Ok(KvResponse::Auth(Ok(_))) = store.apply(&cmd) else { panic!("refused") };
//! }
//! let auth = store.auth();
//! assert!(auth.check("alice", b"app/x", b"", PermissionType::Read).is_ok());
//! assert!(auth.check("alice", b"app/x", b"", PermissionType::Write).is_err());
//! assert!(auth.check("alice", b"app/", b"app0", PermissionType::Read).is_ok());
//! assert!(auth.check("alice", b"app/", b"\0", PermissionType::Read).is_err());
//! assert!(auth.check_password("alice", "secret").is_ok());
//! ```

mod access;
mod perm;
#[cfg(test)]
mod tests;

pub(crate) use access::check_command;
#[cfg(feature = "planted-bugs")]
pub use access::planted;
pub use access::{Caller, SimpleTokens, SIMPLE_TOKENS_MAX};
pub use perm::UserPermissions;

use crate::error::AuthError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The user whose existence (with [`ROOT_ROLE`]) AuthEnable requires, as in etcd.
pub const ROOT_USER: &str = "root";
/// The role that allows everything, including admin operations, as in etcd.
pub const ROOT_ROLE: &str = "root";
/// etcd's bcrypt cost (`--bcrypt-cost`, Go's `bcrypt.DefaultCost`).
pub const BCRYPT_COST_DEFAULT: u32 = 10;
/// bcrypt's lowest cost: for tests, where hashing must be fast.
pub const BCRYPT_COST_MIN: u32 = 4;
/// bcrypt's highest cost.
pub const BCRYPT_COST_MAX: u32 = 31;
/// bcrypt reads at most this many bytes of a password; longer ones are refused, as Go's bcrypt
/// (and so etcd) refuses them.
pub const PASSWORD_BYTES_MAX: usize = 72;

/// A bcrypt hash of a password, as etcd stores it (`$2a$<cost>$<salt and hash>`, 60 ASCII
/// bytes). Its `Debug` is redacted: a hash can be attacked offline, so it never goes to a log.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PasswordHash(String);

impl PasswordHash {
    /// The length of every bcrypt hash in its text form.
    const LEN: usize = 60;

    /// A stored hash (from a snapshot, a log entry or an etcd backup), if it has a bcrypt
    /// hash's shape: 60 ASCII bytes starting with `$2`. Whether it verifies is bcrypt's to say.
    pub fn parse(s: &str) -> Option<PasswordHash> {
        (s.len() == Self::LEN && s.is_ascii() && s.starts_with("$2"))
            .then(|| PasswordHash(s.to_owned()))
    }

    /// The hash's text, for storing it elsewhere (an etcd-format backup).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

impl TryFrom<String> for PasswordHash {
    type Error = &'static str;

    fn try_from(s: String) -> Result<PasswordHash, &'static str> {
        PasswordHash::parse(&s).ok_or("not a bcrypt hash")
    }
}

impl From<PasswordHash> for String {
    fn from(h: PasswordHash) -> String {
        h.0
    }
}

/// Hashes `password` with bcrypt at `cost` and a random salt, in etcd's format (`$2a$`). For
/// the member that proposes a UserAdd or UserChangePassword: hashing happens before the
/// command goes into the log, so that apply is deterministic and cheap.
///
/// This is the one function of this crate that draws randomness (the salt, from the operating
/// system); nothing on the apply path calls it. It costs about 2^cost bcrypt rounds (tens of
/// milliseconds at etcd's cost 10): call it off any latency-sensitive task.
pub fn hash_password(password: &str, cost: u32) -> Result<PasswordHash, AuthError> {
    check_hash_input(password, cost)?;
    let parts = bcrypt::hash_with_result(password, cost)
        .map_err(|e| AuthError::Hashing(e.to_string().into()))?;
    Ok(format_hash(&parts))
}

/// [`hash_password`] with the caller's salt: deterministic, for tests and for a caller that
/// draws its own randomness.
pub fn hash_password_with_salt(
    password: &str,
    cost: u32,
    salt: [u8; 16],
) -> Result<PasswordHash, AuthError> {
    check_hash_input(password, cost)?;
    let parts = bcrypt::hash_with_salt(password, cost, salt)
        .map_err(|e| AuthError::Hashing(e.to_string().into()))?;
    Ok(format_hash(&parts))
}

fn check_hash_input(password: &str, cost: u32) -> Result<(), AuthError> {
    if !(BCRYPT_COST_MIN..=BCRYPT_COST_MAX).contains(&cost) {
        return Err(AuthError::BcryptCost { cost });
    }
    if password.len() > PASSWORD_BYTES_MAX {
        return Err(AuthError::PasswordTooLong);
    }
    Ok(())
}

fn format_hash(parts: &bcrypt::HashParts) -> PasswordHash {
    // Go's bcrypt, and so etcd, writes the `2a` version; verifiers accept either.
    let text = parts.format_for_version(bcrypt::Version::TwoA);
    // Checked, not trusted: a hash this crate could not read back must never be stored.
    PasswordHash::parse(&text).expect("bcrypt produced a malformed hash")
}

/// Whether `password` matches `hash` (bcrypt, constant-time comparison). A hash bcrypt cannot
/// read matches nothing. Costs as much as hashing: see [`hash_password`].
pub fn verify_password(hash: &PasswordHash, password: &str) -> bool {
    bcrypt::verify(password, hash.as_str()).unwrap_or(false)
}

/// What a permission lets a role's users do (etcd's `authpb.Permission.Type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PermissionType {
    /// Range, and Watch.
    Read,
    /// Put and DeleteRange.
    Write,
    /// Both.
    ReadWrite,
}

impl PermissionType {
    fn allows_read(self) -> bool {
        matches!(self, PermissionType::Read | PermissionType::ReadWrite)
    }

    fn allows_write(self) -> bool {
        matches!(self, PermissionType::Write | PermissionType::ReadWrite)
    }
}

/// A role's right on a key range (etcd's `authpb.Permission`): `range_end` empty for the one
/// key `key`, `[0]` for every key from `key` on, otherwise `[key, range_end)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Permission {
    /// The first key (or the only one); must not be empty.
    pub key: Vec<u8>,
    /// The end of the range, as above.
    pub range_end: Vec<u8>,
    /// What the permission allows.
    pub perm_type: PermissionType,
}

impl Permission {
    /// A permission on the one key `key`.
    pub fn key(key: impl Into<Vec<u8>>, perm_type: PermissionType) -> Permission {
        Permission {
            key: key.into(),
            range_end: Vec::new(),
            perm_type,
        }
    }

    /// A permission on `[key, range_end)` (or the forms above).
    pub fn range(
        key: impl Into<Vec<u8>>,
        range_end: impl Into<Vec<u8>>,
        perm_type: PermissionType,
    ) -> Permission {
        Permission {
            key: key.into(),
            range_end: range_end.into(),
            perm_type,
        }
    }

    /// A permission on every key starting with `prefix` (`etcdctl role grant-permission
    /// --prefix`).
    pub fn prefix(prefix: impl Into<Vec<u8>>, perm_type: PermissionType) -> Permission {
        let key = prefix.into();
        let range_end = crate::types::prefix_end(&key);
        Permission {
            key,
            range_end,
            perm_type,
        }
    }
}

/// Whether a permission's range may be granted (etcd's `isValidPermissionRange`): a key, and
/// either no `range_end` (one key), `[0]` (open-ended), or a `range_end` above the key. Empty
/// and inverted ranges are refused.
pub fn is_valid_permission_range(key: &[u8], range_end: &[u8]) -> bool {
    !key.is_empty() && (range_end.is_empty() || range_end == [0] || key < range_end)
}

/// How a new user signs in.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UserPassword {
    /// With a password, hashed by [`hash_password`] before the command was proposed.
    Hash(PasswordHash),
    /// Never by password (etcd's `--no-password`: by client certificate only).
    NoPassword,
}

/// A change to the auth tables, carried in the log like any other write (etcd's `Auth*`
/// requests). The node checks that the proposer is an admin (etcd's `needAdminPermission`)
/// before proposing.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuthCommand {
    /// Turns auth on; needs the `root` user with the `root` role. A no-op when already on.
    AuthEnable,
    /// Turns auth off. A no-op when already off.
    AuthDisable,
    /// Adds a user with no roles.
    UserAdd {
        /// The user's name; must not be empty.
        name: String,
        /// Its password hash, or none.
        password: UserPassword,
    },
    /// Deletes a user.
    UserDelete {
        /// The user.
        name: String,
    },
    /// Replaces a user's password hash.
    UserChangePassword {
        /// The user.
        name: String,
        /// The new password's hash, from [`hash_password`].
        hash: PasswordHash,
    },
    /// Gives a user a role (a no-op if it has it).
    UserGrantRole {
        /// The user.
        user: String,
        /// The role; must exist, unless it is [`ROOT_ROLE`].
        role: String,
    },
    /// Takes a role from a user.
    UserRevokeRole {
        /// The user.
        user: String,
        /// The role.
        role: String,
    },
    /// Adds a role with no permissions.
    RoleAdd {
        /// The role's name; must not be empty.
        name: String,
    },
    /// Deletes a role, and takes it from every user.
    RoleDelete {
        /// The role.
        name: String,
    },
    /// Adds a permission to a role, or changes the type of the one on the same range.
    RoleGrantPermission {
        /// The role.
        role: String,
        /// The permission; its range must be valid ([`is_valid_permission_range`]).
        perm: Permission,
    },
    /// Takes from a role the permission on exactly `(key, range_end)`.
    RoleRevokePermission {
        /// The role.
        role: String,
        /// The permission's key.
        key: Vec<u8>,
        /// The permission's range end.
        range_end: Vec<u8>,
    },
    /// Hands out an etcd `simple` token: every replica records `token` for `name` (see
    /// [`SimpleTokens`]). The proposer checked the password at auth revision
    /// `checked_revision`; apply refuses if the tables moved since
    /// ([`AuthError::AuthOldRevision`], the proposer checks again), while auth is off, or if
    /// the user is gone. Changes no table and not the auth revision.
    Authenticate {
        /// The user.
        name: String,
        /// The token, drawn by the proposer (etcd's form: random letters, a dot, a number).
        token: String,
        /// The auth revision the password was checked at.
        checked_revision: u64,
    },
}

/// What an applied [`AuthCommand`] answers: only the header's revision, as etcd's auth
/// responses carry only a header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AuthResponse {
    /// The key-value store's revision (auth commands do not change it).
    pub revision: i64,
}

/// A query of the auth tables, served from the applied state like any read.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuthRead {
    /// Whether auth is on, and the auth revision.
    Status,
    /// One user's roles.
    UserGet {
        /// The user.
        name: String,
    },
    /// Every user's name.
    UserList,
    /// One role's permissions.
    RoleGet {
        /// The role.
        name: String,
    },
    /// Every role's name.
    RoleList,
    /// A user's password hash and the auth revision, for the member checking an Authenticate
    /// (never for a client: a read carrying a [`Caller`] is refused this).
    PasswordHash {
        /// The user.
        name: String,
    },
}

/// The answer to an [`AuthRead`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuthAnswer {
    /// AuthStatus's.
    Status {
        /// Whether auth is on.
        enabled: bool,
        /// The auth revision.
        auth_revision: u64,
    },
    /// UserGet's: the user's roles, ascending.
    UserGet {
        /// The roles.
        roles: Vec<String>,
    },
    /// UserList's: every user, ascending.
    UserList {
        /// The names.
        users: Vec<String>,
    },
    /// RoleGet's: the role's permissions, ascending by key then range end.
    RoleGet {
        /// The permissions.
        perms: Vec<Permission>,
    },
    /// RoleList's: every role, ascending.
    RoleList {
        /// The names.
        roles: Vec<String>,
    },
    /// PasswordHash's.
    PasswordHash {
        /// The hash, to check with [`verify_password`].
        hash: PasswordHash,
        /// The auth revision it was read at.
        auth_revision: u64,
    },
}

/// What an [`AuthRead`] answers, with the header's revision.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AuthReadResponse {
    /// The key-value store's revision.
    pub revision: i64,
    /// The answer.
    pub answer: AuthAnswer,
}

/// One user: its credential and roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct User {
    /// The bcrypt hash; `None` only for a user added with no password.
    pub(crate) hash: Option<PasswordHash>,
    /// Added with `--no-password`: never authenticates by password, even after a password
    /// change (as in etcd, which keeps the option and stores the hash).
    pub(crate) no_password: bool,
    /// Every role is an existing role or [`ROOT_ROLE`].
    pub(crate) roles: BTreeSet<String>,
}

/// One role: its permissions, sorted by `(key, range_end)`, one per pair.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Role {
    pub(crate) perms: Vec<Permission>,
}

impl Role {
    fn position(&self, key: &[u8], range_end: &[u8]) -> Result<usize, usize> {
        self.perms
            .binary_search_by(|p| (p.key.as_slice(), p.range_end.as_slice()).cmp(&(key, range_end)))
    }
}

/// The auth tables: part of [`crate::KvStore`]'s replicated state, in its snapshot and digest.
///
/// Changed only through [`AuthCommand`]s applied from the log; everything else here reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthStore {
    pub(crate) enabled: bool,
    /// etcd's auth revision: 1 at start, +1 per change (AuthEnable excepted, as in etcd).
    pub(crate) revision: u64,
    pub(crate) users: BTreeMap<String, User>,
    pub(crate) roles: BTreeMap<String, Role>,
}

impl Default for AuthStore {
    fn default() -> AuthStore {
        AuthStore::new()
    }
}

impl AuthStore {
    /// Disabled, no users, no roles, auth revision 1 (etcd's starting state).
    pub fn new() -> AuthStore {
        AuthStore {
            enabled: false,
            revision: 1,
            users: BTreeMap::new(),
            roles: BTreeMap::new(),
        }
    }

    /// Whether auth is on: when off, every check passes.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The auth revision: tokens issued at an older one are stale
    /// ([`AuthStore::check_revision`]).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Whether no auth command ever changed anything (so that a store that never used auth has
    /// the snapshot bytes and digest it had before auth existed).
    pub(crate) fn is_pristine(&self) -> bool {
        *self == AuthStore::new()
    }

    // ---- commands ----

    /// Applies one command; a refusal changed nothing. Every check runs before any change.
    pub(crate) fn apply(&mut self, cmd: &AuthCommand) -> Result<(), AuthError> {
        match cmd {
            AuthCommand::AuthEnable => self.enable(),
            AuthCommand::AuthDisable => {
                if self.enabled {
                    self.enabled = false;
                    self.bump();
                }
                Ok(())
            }
            AuthCommand::UserAdd { name, password } => self.user_add(name, password),
            AuthCommand::UserDelete { name } => self.user_delete(name),
            AuthCommand::UserChangePassword { name, hash } => {
                let user = self.users.get_mut(name).ok_or(AuthError::UserNotFound)?;
                user.hash = Some(hash.clone());
                self.bump();
                Ok(())
            }
            AuthCommand::UserGrantRole { user, role } => self.user_grant_role(user, role),
            AuthCommand::UserRevokeRole { user, role } => self.user_revoke_role(user, role),
            AuthCommand::RoleAdd { name } => self.role_add(name),
            AuthCommand::RoleDelete { name } => self.role_delete(name),
            AuthCommand::RoleGrantPermission { role, perm } => {
                self.role_grant_permission(role, perm)
            }
            AuthCommand::RoleRevokePermission {
                role,
                key,
                range_end,
            } => self.role_revoke_permission(role, key, range_end),
            AuthCommand::Authenticate {
                name,
                checked_revision,
                ..
            } => self.authenticate(name, *checked_revision),
        }
    }

    fn bump(&mut self) {
        // A u64 counted up by one per applied command cannot reach the top.
        self.revision += 1;
    }

    fn enable(&mut self) -> Result<(), AuthError> {
        if self.enabled {
            return Ok(());
        }
        let root = self
            .users
            .get(ROOT_USER)
            .ok_or(AuthError::RootUserNotExist)?;
        if !root.roles.contains(ROOT_ROLE) {
            return Err(AuthError::RootRoleNotExist);
        }
        // etcd 3.4 does not move the revision on enable (tokens cannot exist while disabled).
        self.enabled = true;
        Ok(())
    }

    fn user_add(&mut self, name: &str, password: &UserPassword) -> Result<(), AuthError> {
        if name.is_empty() {
            return Err(AuthError::UserEmpty);
        }
        if self.users.contains_key(name) {
            return Err(AuthError::UserAlreadyExist);
        }
        let (hash, no_password) = match password {
            UserPassword::Hash(h) => (Some(h.clone()), false),
            UserPassword::NoPassword => (None, true),
        };
        let user = User {
            hash,
            no_password,
            roles: BTreeSet::new(),
        };
        self.users.insert(name.to_owned(), user);
        self.bump();
        Ok(())
    }

    fn user_delete(&mut self, name: &str) -> Result<(), AuthError> {
        if self.enabled && name == ROOT_USER {
            return Err(AuthError::InvalidAuthMgmt);
        }
        self.users.remove(name).ok_or(AuthError::UserNotFound)?;
        self.bump();
        Ok(())
    }

    fn user_grant_role(&mut self, user: &str, role: &str) -> Result<(), AuthError> {
        if !self.users.contains_key(user) {
            return Err(AuthError::UserNotFound);
        }
        if role != ROOT_ROLE && !self.roles.contains_key(role) {
            return Err(AuthError::RoleNotFound);
        }
        let Some(u) = self.users.get_mut(user) else {
            return Err(AuthError::UserNotFound);
        };
        if u.roles.insert(role.to_owned()) {
            self.bump();
        }
        Ok(())
    }

    fn user_revoke_role(&mut self, user: &str, role: &str) -> Result<(), AuthError> {
        if self.enabled && user == ROOT_USER && role == ROOT_ROLE {
            return Err(AuthError::InvalidAuthMgmt);
        }
        let u = self.users.get_mut(user).ok_or(AuthError::UserNotFound)?;
        if !u.roles.remove(role) {
            return Err(AuthError::RoleNotGranted);
        }
        self.bump();
        Ok(())
    }

    fn role_add(&mut self, name: &str) -> Result<(), AuthError> {
        if name.is_empty() {
            return Err(AuthError::RoleEmpty);
        }
        if self.roles.contains_key(name) {
            return Err(AuthError::RoleAlreadyExist);
        }
        self.roles.insert(name.to_owned(), Role::default());
        self.bump();
        Ok(())
    }

    fn role_delete(&mut self, name: &str) -> Result<(), AuthError> {
        if self.enabled && name == ROOT_ROLE {
            return Err(AuthError::InvalidAuthMgmt);
        }
        self.roles.remove(name).ok_or(AuthError::RoleNotFound)?;
        for user in self.users.values_mut() {
            user.roles.remove(name);
        }
        self.bump();
        Ok(())
    }

    fn role_grant_permission(&mut self, role: &str, perm: &Permission) -> Result<(), AuthError> {
        if !is_valid_permission_range(&perm.key, &perm.range_end) {
            return Err(AuthError::InvalidAuthMgmt);
        }
        let r = self.roles.get_mut(role).ok_or(AuthError::RoleNotFound)?;
        match r.position(&perm.key, &perm.range_end) {
            Ok(i) => r.perms[i].perm_type = perm.perm_type,
            Err(i) => r.perms.insert(i, perm.clone()),
        }
        // etcd counts a grant that only restates a permission as a change too.
        self.bump();
        Ok(())
    }

    fn role_revoke_permission(
        &mut self,
        role: &str,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), AuthError> {
        let r = self.roles.get_mut(role).ok_or(AuthError::RoleNotFound)?;
        let i = r
            .position(key, range_end)
            .map_err(|_| AuthError::PermissionNotGranted)?;
        r.perms.remove(i);
        self.bump();
        Ok(())
    }

    fn authenticate(&self, name: &str, checked_revision: u64) -> Result<(), AuthError> {
        if !self.enabled {
            return Err(AuthError::AuthNotEnabled);
        }
        if !self.users.contains_key(name) {
            return Err(AuthError::AuthFailed);
        }
        if checked_revision != self.revision {
            return Err(AuthError::AuthOldRevision);
        }
        Ok(())
    }

    // ---- queries ----

    /// Answers a query of the tables (etcd's AuthStatus, UserGet/List, RoleGet/List). Who may
    /// ask is the node's to check first: etcd lets an admin ask anything, a user ask for
    /// itself ([`AuthRead::UserGet`]) and for its roles ([`AuthStore::has_role`]).
    pub fn read(&self, q: &AuthRead) -> Result<AuthAnswer, AuthError> {
        match q {
            AuthRead::Status => Ok(AuthAnswer::Status {
                enabled: self.enabled,
                auth_revision: self.revision,
            }),
            AuthRead::UserGet { name } => {
                let user = self.users.get(name).ok_or(AuthError::UserNotFound)?;
                Ok(AuthAnswer::UserGet {
                    roles: user.roles.iter().cloned().collect(),
                })
            }
            AuthRead::UserList => Ok(AuthAnswer::UserList {
                users: self.users.keys().cloned().collect(),
            }),
            AuthRead::RoleGet { name } => {
                let role = self.roles.get(name).ok_or(AuthError::RoleNotFound)?;
                Ok(AuthAnswer::RoleGet {
                    perms: role.perms.clone(),
                })
            }
            AuthRead::RoleList => Ok(AuthAnswer::RoleList {
                roles: self.roles.keys().cloned().collect(),
            }),
            AuthRead::PasswordHash { name } => {
                let (hash, auth_revision) = self.password_hash(name)?;
                Ok(AuthAnswer::PasswordHash {
                    hash,
                    auth_revision,
                })
            }
        }
    }

    /// Whether `user` exists and has `role` (etcd's `HasRole`: a user may read its own roles).
    pub fn has_role(&self, user: &str, role: &str) -> bool {
        self.users.get(user).is_some_and(|u| u.roles.contains(role))
    }

    /// Whether `user` exists and has the `root` role: it may do anything, including admin
    /// operations (member, alarm, defragment, snapshot, move-leader, and auth itself).
    pub fn is_admin(&self, user: &str) -> bool {
        self.has_role(user, ROOT_ROLE)
    }

    /// etcd's admin check (`IsAdminPermitted`): passes while auth is off; otherwise the user
    /// must be named, exist, and have the `root` role.
    pub fn check_admin(&self, user: &str) -> Result<(), AuthError> {
        if !self.enabled {
            return Ok(());
        }
        if user.is_empty() {
            return Err(AuthError::UserEmpty);
        }
        let u = self.users.get(user).ok_or(AuthError::UserNotFound)?;
        if !u.roles.contains(ROOT_ROLE) {
            return Err(AuthError::PermissionDenied);
        }
        Ok(())
    }

    /// Refuses a request authenticated at an auth revision older than this store's (etcd's
    /// `ErrAuthOldRevision`): the user's rights may have changed since its token was issued.
    pub fn check_revision(&self, token_revision: u64) -> Result<(), AuthError> {
        if token_revision < self.revision {
            return Err(AuthError::AuthOldRevision);
        }
        Ok(())
    }

    /// What `user` may touch, merged over its roles as etcd's range-permission cache merges
    /// them, for checking many keys against one state (a watch filtering its events). Passes
    /// everything while auth is off or for a `root` user; refuses an empty user name
    /// ([`AuthError::UserEmpty`]) and an unknown user ([`AuthError::PermissionDenied`]).
    ///
    /// The answer is as of this auth revision ([`UserPermissions::auth_revision`]): whoever
    /// keeps it must fetch it again once the revision moves.
    pub fn permissions(&self, user: &str) -> Result<UserPermissions, AuthError> {
        if !self.enabled {
            return Ok(UserPermissions::everything(self.revision));
        }
        if user.is_empty() {
            return Err(AuthError::UserEmpty);
        }
        let u = self.users.get(user).ok_or(AuthError::PermissionDenied)?;
        if u.roles.contains(ROOT_ROLE) {
            return Ok(UserPermissions::everything(self.revision));
        }
        let perms = u
            .roles
            .iter()
            .filter_map(|r| self.roles.get(r))
            .flat_map(|r| r.perms.iter());
        Ok(UserPermissions::merge(perms, self.revision))
    }

    /// etcd's permission check (`isOpPermitted`): may `user` do `perm_type` on every key of
    /// `key`..`range_end` (etcd's range forms: `range_end` empty for the one key, `[0]` for
    /// every key from `key` on, otherwise `[key, range_end)`; an empty or inverted range is
    /// checked as the one key `key`)? Passes while auth is off and for `root`; an unknown user
    /// is [`AuthError::PermissionDenied`]. `ReadWrite` asks for both.
    ///
    /// As in etcd, the caller first refuses a token from an older auth revision
    /// ([`AuthStore::check_revision`]). Each call merges the user's permissions afresh (linear
    /// in them, plus a sort); a request with many keys (a transaction) should take
    /// [`AuthStore::permissions`] once and ask [`UserPermissions::allows`] per operation.
    pub fn check(
        &self,
        user: &str,
        key: &[u8],
        range_end: &[u8],
        perm_type: PermissionType,
    ) -> Result<(), AuthError> {
        if self.permissions(user)?.allows(key, range_end, perm_type) {
            Ok(())
        } else {
            Err(AuthError::PermissionDenied)
        }
    }

    /// Whether `user` may read the one key `key` (for a watch, per event). False for an
    /// unknown or empty user while auth is on.
    pub fn may_read(&self, user: &str, key: &[u8]) -> bool {
        self.check(user, key, &[], PermissionType::Read).is_ok()
    }

    /// The first half of etcd's `CheckPassword`, cheap: refuses while auth is off
    /// ([`AuthError::AuthNotEnabled`]), for an unknown user ([`AuthError::AuthFailed`]) and
    /// for a no-password user ([`AuthError::NoPasswordUser`]); otherwise answers the hash to
    /// verify (with [`verify_password`], off the core's task) and the auth revision to check
    /// it against once verified.
    pub fn password_hash(&self, user: &str) -> Result<(PasswordHash, u64), AuthError> {
        if !self.enabled {
            return Err(AuthError::AuthNotEnabled);
        }
        let u = self.users.get(user).ok_or(AuthError::AuthFailed)?;
        if u.no_password {
            return Err(AuthError::NoPasswordUser);
        }
        let hash = u.hash.clone().ok_or(AuthError::AuthFailed)?;
        Ok((hash, self.revision))
    }

    /// etcd's `CheckPassword` (for Authenticate): [`AuthStore::password_hash`], then bcrypt;
    /// a wrong password is [`AuthError::AuthFailed`]. Answers the auth revision the check
    /// held at. Runs bcrypt on the caller's thread.
    pub fn check_password(&self, user: &str, password: &str) -> Result<u64, AuthError> {
        let (hash, revision) = self.password_hash(user)?;
        if !verify_password(&hash, password) {
            return Err(AuthError::AuthFailed);
        }
        Ok(revision)
    }

    /// The invariants the rest relies on, for restored state.
    pub(crate) fn validate(&self) -> Result<(), &'static str> {
        if self.revision < 1 || self.revision == u64::MAX {
            return Err("auth revision outside [1, u64::MAX)");
        }
        for (name, user) in &self.users {
            if name.is_empty() {
                return Err("a user with an empty name");
            }
            if !user.no_password && user.hash.is_none() {
                return Err("a password user without a password hash");
            }
            if user
                .roles
                .iter()
                .any(|r| r != ROOT_ROLE && !self.roles.contains_key(r))
            {
                return Err("a user with a role that does not exist");
            }
        }
        for (name, role) in &self.roles {
            if name.is_empty() {
                return Err("a role with an empty name");
            }
            if role
                .perms
                .windows(2)
                .any(|w| (&w[0].key, &w[0].range_end) >= (&w[1].key, &w[1].range_end))
            {
                return Err("permissions not ascending");
            }
            if role
                .perms
                .iter()
                .any(|p| !is_valid_permission_range(&p.key, &p.range_end))
            {
                return Err("a permission on an empty or inverted range");
            }
        }
        if self.enabled && !self.is_admin(ROOT_USER) {
            return Err("auth enabled without the root user having the root role");
        }
        Ok(())
    }
}
