//! A store built from another system's state (an etcd backup, read by the node's
//! `etcd_backup` module): every version of every key with its revisions, the leases and the
//! auth tables, taken as they are, so the store continues from the other system's revision.
//!
//! Nothing here is trusted: the parts come from a file, and the store they make is checked
//! against every invariant a snapshot's store is (`KvStore::validate`) before it is returned.

use crate::auth::{AuthStore, Permission, PermissionType, Role, User};
use crate::error::SnapshotError;
use crate::store::{drop_history_below, Keys, KvStore, Lease, Limits, Live, Version};
use crate::watch::ChangeIndex;
use crate::PasswordHash;
use imbl::{OrdMap, OrdSet};
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

/// The parts of a store, as another system held them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Import {
    /// The revision the store continues from.
    pub revision: i64,
    /// Reads below this revision are refused (0: never compacted).
    pub compact_revision: i64,
    /// Every version of every key, in any order. Versions below `compact_revision` that a
    /// read at it would not see are dropped, as a compaction drops them (a backup taken while
    /// its compaction was still deleting may hold some).
    pub versions: Vec<ImportedVersion>,
    /// Leases: `(id, granted TTL in seconds)`.
    pub leases: Vec<(i64, i64)>,
    /// The auth tables.
    pub auth: ImportedAuth,
    /// The raised alarms (etcd's `alarm` bucket), at most [`crate::ALARMS_MAX`].
    pub alarms: Vec<crate::AlarmMember>,
}

/// One version of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedVersion {
    /// The key.
    pub key: Vec<u8>,
    /// The revision that wrote it.
    pub mod_revision: i64,
    /// Its sub-revision: its place among the changes of `mod_revision` (etcd's HashKV covers
    /// it).
    pub sub: u32,
    /// `None`: the key was deleted at `mod_revision`.
    pub live: Option<ImportedLive>,
}

/// The fields of a live version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedLive {
    /// The revision of the key's creation.
    pub create_revision: i64,
    /// Writes since the creation, this one included.
    pub version: i64,
    /// The lease it is attached to, 0 for none.
    pub lease: i64,
    /// The value.
    pub value: Vec<u8>,
}

/// The auth tables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedAuth {
    /// Whether auth is on.
    pub enabled: bool,
    /// The auth revision (tokens are issued at it).
    pub revision: u64,
    /// Users.
    pub users: Vec<ImportedUser>,
    /// Roles and their permissions. A role may list one `(key, range_end)` twice (etcd can
    /// hold two copies): they become one permission allowing what both did.
    pub roles: Vec<(String, Vec<Permission>)>,
}

impl Default for ImportedAuth {
    /// Auth off, no users or roles, auth revision 1: a store that never used auth.
    fn default() -> ImportedAuth {
        ImportedAuth {
            enabled: false,
            revision: 1,
            users: Vec::new(),
            roles: Vec::new(),
        }
    }
}

/// One user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedUser {
    /// The name.
    pub name: String,
    /// The bcrypt hash; `None` for a user added with no password.
    pub hash: Option<PasswordHash>,
    /// Added with `--no-password`.
    pub no_password: bool,
    /// Its roles.
    pub roles: Vec<String>,
}

fn inconsistent(what: String) -> SnapshotError {
    SnapshotError::Inconsistent(what.into())
}

impl KvStore {
    /// The store `parts` describe, with `limits`; refused with what is wrong when the parts
    /// contradict themselves (two versions of a key at one revision, a version above the
    /// revision, a key on a lease that does not exist, a user with a missing role, ...).
    pub fn import(parts: Import, limits: Limits) -> Result<KvStore, SnapshotError> {
        let Import {
            revision,
            compact_revision,
            versions,
            leases,
            auth,
            alarms,
        } = parts;
        if alarms.len() > crate::ALARMS_MAX {
            return Err(inconsistent(format!(
                "{} alarms, more than the {} a store holds",
                alarms.len(),
                crate::ALARMS_MAX
            )));
        }
        let mut keys: BTreeMap<Vec<u8>, Vec<Version>> = BTreeMap::new();
        for v in versions {
            let live = v.live.map(|l| Live {
                create_revision: l.create_revision,
                version: l.version,
                lease: l.lease,
                value: l.value,
            });
            keys.entry(v.key).or_default().push(Version {
                mod_revision: v.mod_revision,
                sub: v.sub,
                live,
            });
        }
        for (key, history) in &mut keys {
            history.sort_by_key(|v| v.mod_revision);
            if history
                .windows(2)
                .any(|w| w[0].mod_revision == w[1].mod_revision)
            {
                return Err(inconsistent(format!(
                    "two versions of key {:?} at one revision",
                    String::from_utf8_lossy(key)
                )));
            }
        }
        let mut keys: Keys = keys.into_iter().collect();
        drop_history_below(&mut keys, compact_revision);
        let mut lease_table = OrdMap::new();
        for (id, ttl) in leases {
            let lease = Lease {
                ttl,
                remaining_ms: None,
                keys: OrdSet::new(),
            };
            if lease_table.insert(id, lease).is_some() {
                return Err(inconsistent(format!("lease {id:x} twice")));
            }
        }
        let changes = ChangeIndex::rebuild(&keys, compact_revision);
        let mut store = KvStore {
            keys,
            revision,
            compact_revision,
            // etcd's backup does not say whether a compaction at 0 was taken (its scheduled
            // compaction key holds the last one); one above 0 says it was.
            compacted: compact_revision > 0,
            // A set: an alarm listed twice is raised once, as etcd's own alarm store keeps it.
            alarms: alarms.into_iter().collect(),
            leases: lease_table,
            lease_id_next: 1,
            lease_leader: (0, 0),
            limits,
            changes,
            auth: import_auth(auth)?,
            tokens: Default::default(),
        };
        store.reattach_leases();
        store.validate()?;
        Ok(store)
    }
}

fn import_auth(parts: ImportedAuth) -> Result<AuthStore, SnapshotError> {
    let mut auth = AuthStore::new();
    auth.enabled = parts.enabled;
    auth.revision = parts.revision;
    for u in parts.users {
        let user = User {
            hash: u.hash,
            no_password: u.no_password,
            roles: u.roles.into_iter().collect(),
        };
        if auth.users.insert(u.name.clone(), user).is_some() {
            return Err(inconsistent(format!("user {:?} twice", u.name)));
        }
    }
    for (name, perms) in parts.roles {
        let mut merged: BTreeMap<(Vec<u8>, Vec<u8>), PermissionType> = BTreeMap::new();
        for p in perms {
            match merged.entry((p.key, p.range_end)) {
                Entry::Vacant(e) => {
                    e.insert(p.perm_type);
                }
                Entry::Occupied(mut e) => {
                    if *e.get() != p.perm_type {
                        e.insert(PermissionType::ReadWrite);
                    }
                }
            }
        }
        let perms = merged
            .into_iter()
            .map(|((key, range_end), perm_type)| Permission {
                key,
                range_end,
                perm_type,
            })
            .collect();
        if auth.roles.insert(name.clone(), Role { perms }).is_some() {
            return Err(inconsistent(format!("role {name:?} twice")));
        }
    }
    Ok(auth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{RangeRequest, ROOT_ROLE, ROOT_USER};

    fn live(key: &str, rev: i64, create: i64, version: i64, value: &str) -> ImportedVersion {
        ImportedVersion {
            key: key.into(),
            mod_revision: rev,
            sub: 0,
            live: Some(ImportedLive {
                create_revision: create,
                version,
                lease: 0,
                value: value.into(),
            }),
        }
    }

    fn tombstone(key: &str, rev: i64) -> ImportedVersion {
        ImportedVersion {
            key: key.into(),
            mod_revision: rev,
            sub: 0,
            live: None,
        }
    }

    #[test]
    fn an_import_keeps_revisions_and_history_and_cuts_below_its_compaction() {
        let parts = Import {
            revision: 6,
            compact_revision: 3,
            // Out of order, and with versions a finished compaction at 3 would have deleted.
            versions: vec![
                live("a", 5, 2, 3, "a3"),
                live("a", 2, 2, 1, "a1"),
                live("a", 3, 2, 2, "a2"),
                live("b", 4, 4, 1, "b1"),
                tombstone("b", 6),
            ],
            ..Import::default()
        };
        let store = KvStore::import(parts, Limits::default()).expect("imports");
        assert_eq!((store.revision(), store.compact_revision()), (6, 3));
        let at = |rev: i64, key: &str| {
            store
                .range(&RangeRequest {
                    revision: rev,
                    ..RangeRequest::single(key)
                })
                .map(|r| r.kvs.first().map(|kv| (kv.value.clone(), kv.mod_revision)))
        };
        assert_eq!(at(3, "a"), Ok(Some((b"a2".to_vec(), 3))));
        assert_eq!(at(0, "a"), Ok(Some((b"a3".to_vec(), 5))));
        assert_eq!(at(5, "b"), Ok(Some((b"b1".to_vec(), 4))));
        assert_eq!(at(0, "b"), Ok(None));
        assert!(at(2, "a").is_err(), "below the compaction");
        assert_eq!(
            store.keys[b"a".as_slice()].len(),
            2,
            "the version at 2 was cut"
        );
    }

    #[test]
    fn contradictory_parts_are_refused_with_what_is_wrong() {
        let cases: Vec<(&str, Import, &str)> = vec![
            (
                "two versions at one revision",
                Import {
                    revision: 3,
                    versions: vec![live("a", 2, 2, 1, "x"), live("a", 2, 2, 1, "y")],
                    ..Import::default()
                },
                "two versions",
            ),
            (
                "a version above the revision",
                Import {
                    revision: 3,
                    versions: vec![live("a", 4, 4, 1, "x")],
                    ..Import::default()
                },
                "mod revision outside",
            ),
            (
                "a key on a missing lease",
                Import {
                    revision: 3,
                    versions: vec![ImportedVersion {
                        live: Some(ImportedLive {
                            lease: 9,
                            ..live("a", 2, 2, 1, "x").live.expect("live")
                        }),
                        ..live("a", 2, 2, 1, "x")
                    }],
                    ..Import::default()
                },
                "lease that does not exist",
            ),
            (
                "auth on without root",
                Import {
                    revision: 1,
                    auth: ImportedAuth {
                        enabled: true,
                        ..ImportedAuth::default()
                    },
                    ..Import::default()
                },
                "root",
            ),
            (
                "a user with a missing role",
                Import {
                    revision: 1,
                    auth: ImportedAuth {
                        users: vec![ImportedUser {
                            name: "u".into(),
                            hash: None,
                            no_password: true,
                            roles: vec!["gone".into()],
                        }],
                        ..ImportedAuth::default()
                    },
                    ..Import::default()
                },
                "role that does not exist",
            ),
        ];
        for (what, parts, expected) in cases {
            let err = KvStore::import(parts, Limits::default())
                .expect_err(what)
                .to_string();
            assert!(err.contains(expected), "{what}: {err}");
        }
    }

    #[test]
    fn imported_auth_merges_duplicate_permissions_and_checks_as_granted() {
        let hash =
            crate::hash_password_with_salt("pw", crate::BCRYPT_COST_MIN, [7; 16]).expect("hash");
        let parts = Import {
            revision: 1,
            auth: ImportedAuth {
                enabled: true,
                revision: 9,
                users: vec![
                    ImportedUser {
                        name: ROOT_USER.into(),
                        hash: Some(hash.clone()),
                        no_password: false,
                        roles: vec![ROOT_ROLE.into()],
                    },
                    ImportedUser {
                        name: "alice".into(),
                        hash: Some(hash),
                        no_password: false,
                        roles: vec!["app".into()],
                    },
                ],
                roles: vec![
                    (ROOT_ROLE.into(), Vec::new()),
                    (
                        "app".into(),
                        vec![
                            Permission::prefix("app/", PermissionType::Read),
                            Permission::prefix("app/", PermissionType::Write),
                        ],
                    ),
                ],
            },
            ..Import::default()
        };
        let store = KvStore::import(parts, Limits::default()).expect("imports");
        let auth = store.auth();
        assert!(auth.is_enabled());
        assert_eq!(auth.revision(), 9);
        assert_eq!(auth.roles["app"].perms.len(), 1);
        assert!(auth
            .check("alice", b"app/x", b"", PermissionType::ReadWrite)
            .is_ok());
        assert!(auth
            .check("alice", b"other", b"", PermissionType::Read)
            .is_err());
        assert!(auth.check_password("alice", "pw").is_ok());
    }
}
