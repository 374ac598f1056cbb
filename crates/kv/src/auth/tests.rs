//! etcd 3.4's auth rules, one table row per rule; expected texts are etcd's. Every command goes
//! through the log encoding and [`KvStore::apply`], as a replica applies it.

use crate::*;
use std::sync::OnceLock;
use PermissionType::{Read, ReadWrite, Write};

// ---- helpers: commands as etcdctl spells them ----

/// A real bcrypt hash of "pw" at the lowest cost, computed once.
fn pw_hash() -> PasswordHash {
    static HASH: OnceLock<PasswordHash> = OnceLock::new();
    HASH.get_or_init(|| hash_password_with_salt("pw", BCRYPT_COST_MIN, [7; 16]).unwrap())
        .clone()
}

fn user_add(name: &str) -> AuthCommand {
    AuthCommand::UserAdd {
        name: name.into(),
        password: UserPassword::Hash(pw_hash()),
    }
}

fn user_add_no_password(name: &str) -> AuthCommand {
    AuthCommand::UserAdd {
        name: name.into(),
        password: UserPassword::NoPassword,
    }
}

fn user_delete(name: &str) -> AuthCommand {
    AuthCommand::UserDelete { name: name.into() }
}

fn passwd(name: &str) -> AuthCommand {
    AuthCommand::UserChangePassword {
        name: name.into(),
        hash: hash_password_with_salt("new", BCRYPT_COST_MIN, [9; 16]).unwrap(),
    }
}

fn grant_role(user: &str, role: &str) -> AuthCommand {
    AuthCommand::UserGrantRole {
        user: user.into(),
        role: role.into(),
    }
}

fn revoke_role(user: &str, role: &str) -> AuthCommand {
    AuthCommand::UserRevokeRole {
        user: user.into(),
        role: role.into(),
    }
}

fn role_add(name: &str) -> AuthCommand {
    AuthCommand::RoleAdd { name: name.into() }
}

fn role_delete(name: &str) -> AuthCommand {
    AuthCommand::RoleDelete { name: name.into() }
}

fn grant(role: &str, key: &str, range_end: &str, perm_type: PermissionType) -> AuthCommand {
    AuthCommand::RoleGrantPermission {
        role: role.into(),
        perm: Permission::range(key, range_end, perm_type),
    }
}

fn revoke(role: &str, key: &str, range_end: &str) -> AuthCommand {
    AuthCommand::RoleRevokePermission {
        role: role.into(),
        key: key.into(),
        range_end: range_end.into(),
    }
}

const ENABLE: AuthCommand = AuthCommand::AuthEnable;
const DISABLE: AuthCommand = AuthCommand::AuthDisable;

/// The root user with the root role, ready for AuthEnable.
fn root() -> Vec<AuthCommand> {
    vec![user_add("root"), grant_role("root", "root")]
}

fn with(mut setup: Vec<AuthCommand>, more: &[AuthCommand]) -> Vec<AuthCommand> {
    setup.extend_from_slice(more);
    setup
}

/// Applies one auth command as a replica does: encoded, decoded, applied.
fn apply(s: &mut KvStore, cmd: &AuthCommand) -> Result<AuthResponse, AuthError> {
    let payload = encode(&KvCommand::Auth(cmd.clone()));
    match paxos::multi::StateMachine::apply(s, paxos::Slot(1), &payload) {
        Ok(KvResponse::Auth(out)) => out,
        other => panic!("not an auth response: {other:?}"),
    }
}

fn store(setup: &[AuthCommand]) -> KvStore {
    let mut s = KvStore::new();
    for (i, cmd) in setup.iter().enumerate() {
        if let Err(e) = apply(&mut s, cmd) {
            panic!("setup step {i} ({cmd:?}) refused: {e}");
        }
    }
    s
}

fn query(s: &KvStore, q: AuthRead) -> Result<AuthAnswer, AuthError> {
    match s.read(&KvRead::Auth(q)) {
        Ok(KvReadResponse::Auth(out)) => out.map(|r| r.answer),
        other => panic!("not an auth answer: {other:?}"),
    }
}

fn roles_of(s: &KvStore, user: &str) -> Vec<String> {
    match query(s, AuthRead::UserGet { name: user.into() }) {
        Ok(AuthAnswer::UserGet { roles }) => roles,
        other => panic!("{other:?}"),
    }
}

fn perms_of(s: &KvStore, role: &str) -> Vec<Permission> {
    match query(s, AuthRead::RoleGet { name: role.into() }) {
        Ok(AuthAnswer::RoleGet { perms }) => perms,
        other => panic!("{other:?}"),
    }
}

/// Whether the auth revision moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rev {
    Moves,
    Stays,
}

/// One rule: after `setup`, `cmd` answers `want`; a refusal changes nothing, and an
/// acceptance moves the auth revision or not as etcd's does.
struct Rule {
    name: &'static str,
    setup: Vec<AuthCommand>,
    cmd: AuthCommand,
    want: Result<Rev, AuthError>,
}

fn rule(
    name: &'static str,
    setup: Vec<AuthCommand>,
    cmd: AuthCommand,
    want: Result<Rev, AuthError>,
) -> Rule {
    Rule {
        name,
        setup,
        cmd,
        want,
    }
}

fn check_rules(rules: Vec<Rule>) {
    for r in rules {
        let mut s = store(&r.setup);
        let before = s.clone();
        let got = apply(&mut s, &r.cmd);
        match (&r.want, got) {
            (Err(want), Err(got)) => {
                assert_eq!(&got, want, "{}", r.name);
                assert_eq!(s, before, "{}: a refusal changed the store", r.name);
            }
            (Ok(rev), Ok(resp)) => {
                assert_eq!(resp.revision, s.revision(), "{}: header revision", r.name);
                assert_eq!(s.revision(), before.revision(), "{}: kv revision", r.name);
                let moved = s.auth().revision() - before.auth().revision();
                let expected = match rev {
                    Rev::Moves => 1,
                    Rev::Stays => 0,
                };
                assert_eq!(moved, expected, "{}: auth revision", r.name);
            }
            (want, got) => panic!("{}: want {want:?}, got {got:?}", r.name),
        }
    }
}

use AuthError as E;

#[test]
fn enable_and_disable_follow_etcd() {
    check_rules(vec![
        rule(
            "enable needs the root user",
            vec![],
            ENABLE,
            Err(E::RootUserNotExist),
        ),
        rule(
            "enable needs the root user to have the root role",
            vec![user_add("root"), role_add("root")],
            ENABLE,
            Err(E::RootRoleNotExist),
        ),
        rule(
            "another user with the root role is not enough",
            vec![user_add("admin"), grant_role("admin", "root")],
            ENABLE,
            Err(E::RootUserNotExist),
        ),
        rule(
            "enable does not move the auth revision (etcd 3.4)",
            root(),
            ENABLE,
            Ok(Rev::Stays),
        ),
        rule(
            "enable twice is a no-op",
            with(root(), &[ENABLE]),
            ENABLE,
            Ok(Rev::Stays),
        ),
        rule(
            "disable while off is a no-op",
            vec![],
            DISABLE,
            Ok(Rev::Stays),
        ),
        rule(
            "disable while on moves the revision",
            with(root(), &[ENABLE]),
            DISABLE,
            Ok(Rev::Moves),
        ),
    ]);
}

#[test]
fn user_commands_follow_etcd() {
    let on = || with(root(), &[ENABLE]);
    check_rules(vec![
        rule("add: empty name", vec![], user_add(""), Err(E::UserEmpty)),
        rule(
            "add: no-password, empty name",
            vec![],
            user_add_no_password(""),
            Err(E::UserEmpty),
        ),
        rule(
            "add: name taken",
            vec![user_add("a")],
            user_add("a"),
            Err(E::UserAlreadyExist),
        ),
        rule(
            "add: name taken by a no-password user",
            vec![user_add_no_password("a")],
            user_add("a"),
            Err(E::UserAlreadyExist),
        ),
        rule("add", vec![], user_add("a"), Ok(Rev::Moves)),
        rule(
            "add with no password",
            vec![],
            user_add_no_password("a"),
            Ok(Rev::Moves),
        ),
        rule(
            "delete: unknown",
            vec![],
            user_delete("a"),
            Err(E::UserNotFound),
        ),
        rule(
            "delete: empty name",
            vec![],
            user_delete(""),
            Err(E::UserNotFound),
        ),
        rule(
            "delete",
            vec![user_add("a")],
            user_delete("a"),
            Ok(Rev::Moves),
        ),
        rule(
            "delete root while on",
            on(),
            user_delete("root"),
            Err(E::InvalidAuthMgmt),
        ),
        rule(
            "delete root while off",
            root(),
            user_delete("root"),
            Ok(Rev::Moves),
        ),
        rule(
            "change password: unknown",
            vec![],
            passwd("a"),
            Err(E::UserNotFound),
        ),
        rule(
            "change password",
            vec![user_add("a")],
            passwd("a"),
            Ok(Rev::Moves),
        ),
        rule(
            "grant role: unknown user (checked before the role)",
            vec![],
            grant_role("a", "r"),
            Err(E::UserNotFound),
        ),
        rule(
            "grant role: unknown role",
            vec![user_add("a")],
            grant_role("a", "r"),
            Err(E::RoleNotFound),
        ),
        rule(
            "grant role: empty role",
            vec![user_add("a")],
            grant_role("a", ""),
            Err(E::RoleNotFound),
        ),
        rule(
            "grant role: root needs no role named root",
            vec![user_add("a")],
            grant_role("a", "root"),
            Ok(Rev::Moves),
        ),
        rule(
            "grant role",
            vec![user_add("a"), role_add("r")],
            grant_role("a", "r"),
            Ok(Rev::Moves),
        ),
        rule(
            "grant role again is a no-op",
            vec![user_add("a"), role_add("r"), grant_role("a", "r")],
            grant_role("a", "r"),
            Ok(Rev::Stays),
        ),
        rule(
            "revoke root from root while on (checked before anything else)",
            on(),
            revoke_role("root", "root"),
            Err(E::InvalidAuthMgmt),
        ),
        rule(
            "revoke root from root while off",
            root(),
            revoke_role("root", "root"),
            Ok(Rev::Moves),
        ),
        rule(
            "revoke root from another user while on",
            with(on(), &[user_add("a"), grant_role("a", "root")]),
            revoke_role("a", "root"),
            Ok(Rev::Moves),
        ),
        rule(
            "revoke: unknown user",
            vec![role_add("r")],
            revoke_role("a", "r"),
            Err(E::UserNotFound),
        ),
        rule(
            "revoke: role not granted",
            vec![user_add("a"), role_add("r")],
            revoke_role("a", "r"),
            Err(E::RoleNotGranted),
        ),
        rule(
            "revoke: unknown role",
            vec![user_add("a")],
            revoke_role("a", "r"),
            Err(E::RoleNotGranted),
        ),
        rule(
            "revoke",
            vec![user_add("a"), role_add("r"), grant_role("a", "r")],
            revoke_role("a", "r"),
            Ok(Rev::Moves),
        ),
    ]);
}

#[test]
fn role_commands_follow_etcd() {
    let on = || with(root(), &[role_add("root"), ENABLE]);
    check_rules(vec![
        rule("add: empty name", vec![], role_add(""), Err(E::RoleEmpty)),
        rule(
            "add: name taken",
            vec![role_add("r")],
            role_add("r"),
            Err(E::RoleAlreadyExist),
        ),
        rule("add", vec![], role_add("r"), Ok(Rev::Moves)),
        rule("add root", vec![], role_add("root"), Ok(Rev::Moves)),
        rule(
            "delete: unknown",
            vec![],
            role_delete("r"),
            Err(E::RoleNotFound),
        ),
        rule(
            "delete",
            vec![role_add("r")],
            role_delete("r"),
            Ok(Rev::Moves),
        ),
        rule(
            "delete root while on",
            on(),
            role_delete("root"),
            Err(E::InvalidAuthMgmt),
        ),
        rule(
            "delete root while off",
            vec![role_add("root")],
            role_delete("root"),
            Ok(Rev::Moves),
        ),
        rule(
            "grant: empty key",
            vec![role_add("r")],
            grant("r", "", "", Read),
            Err(E::InvalidAuthMgmt),
        ),
        rule(
            "grant: inverted range",
            vec![role_add("r")],
            grant("r", "b", "a", Read),
            Err(E::InvalidAuthMgmt),
        ),
        rule(
            "grant: empty range",
            vec![role_add("r")],
            grant("r", "a", "a", Read),
            Err(E::InvalidAuthMgmt),
        ),
        rule(
            "grant: the range is checked before the role",
            vec![],
            grant("r", "b", "a", Read),
            Err(E::InvalidAuthMgmt),
        ),
        rule(
            "grant: unknown role",
            vec![],
            grant("r", "a", "", Read),
            Err(E::RoleNotFound),
        ),
        rule(
            "grant: one key",
            vec![role_add("r")],
            grant("r", "a", "", Read),
            Ok(Rev::Moves),
        ),
        rule(
            "grant: a range",
            vec![role_add("r")],
            grant("r", "a", "b", Write),
            Ok(Rev::Moves),
        ),
        rule(
            "grant: from a key on",
            vec![role_add("r")],
            grant("r", "a", "\0", ReadWrite),
            Ok(Rev::Moves),
        ),
        rule(
            "grant: every key",
            vec![role_add("r")],
            grant("r", "\0", "\0", ReadWrite),
            Ok(Rev::Moves),
        ),
        rule(
            "grant: the root role may be given permissions (etcd 3.4)",
            on(),
            grant("root", "a", "", Read),
            Ok(Rev::Moves),
        ),
        rule(
            "grant: restating a permission still moves the revision",
            vec![role_add("r"), grant("r", "a", "b", Read)],
            grant("r", "a", "b", Read),
            Ok(Rev::Moves),
        ),
        rule(
            "revoke permission: unknown role",
            vec![],
            revoke("r", "a", ""),
            Err(E::RoleNotFound),
        ),
        rule(
            "revoke permission: not granted",
            vec![role_add("r")],
            revoke("r", "a", ""),
            Err(E::PermissionNotGranted),
        ),
        rule(
            "revoke permission: the range end must match too",
            vec![role_add("r"), grant("r", "a", "b", Read)],
            revoke("r", "a", "c"),
            Err(E::PermissionNotGranted),
        ),
        rule(
            "revoke permission: a single key is not a range",
            vec![role_add("r"), grant("r", "a", "b", Read)],
            revoke("r", "a", ""),
            Err(E::PermissionNotGranted),
        ),
        rule(
            "revoke permission",
            vec![role_add("r"), grant("r", "a", "b", Read)],
            revoke("r", "a", "b"),
            Ok(Rev::Moves),
        ),
    ]);
}

#[test]
fn a_grant_on_the_same_range_replaces_the_type() {
    let s = store(&[
        role_add("r"),
        grant("r", "b", "", Read),
        grant("r", "a", "c", Read),
        grant("r", "a", "", Write),
        grant("r", "a", "c", Write),
    ]);
    assert_eq!(
        perms_of(&s, "r"),
        vec![
            Permission::range("a", "", Write),
            Permission::range("a", "c", Write),
            Permission::range("b", "", Read),
        ],
        "one permission per (key, range_end), ascending"
    );
}

#[test]
fn deleting_a_role_takes_it_from_every_user() {
    let s = store(&[
        role_add("r"),
        role_add("s"),
        user_add("a"),
        user_add("b"),
        grant_role("a", "r"),
        grant_role("a", "s"),
        grant_role("b", "r"),
        role_delete("r"),
    ]);
    assert_eq!(roles_of(&s, "a"), vec!["s".to_string()]);
    assert!(roles_of(&s, "b").is_empty());
    // Added again, the role is empty and nobody has it.
    let mut s = s;
    apply(&mut s, &role_add("r")).unwrap();
    assert!(perms_of(&s, "r").is_empty());
    assert!(!s.auth().has_role("b", "r"));
}

#[test]
fn queries_answer_sorted_lists_and_etcds_refusals() {
    let s = store(&[
        user_add("zed"),
        user_add("amy"),
        role_add("w"),
        role_add("q"),
        grant_role("zed", "w"),
        grant_role("zed", "root"),
        grant_role("zed", "q"),
        grant("q", "k", "", Read),
    ]);
    assert_eq!(
        query(&s, AuthRead::UserList),
        Ok(AuthAnswer::UserList {
            users: vec!["amy".into(), "zed".into()]
        })
    );
    assert_eq!(
        query(&s, AuthRead::RoleList),
        Ok(AuthAnswer::RoleList {
            roles: vec!["q".into(), "w".into()]
        })
    );
    assert_eq!(roles_of(&s, "zed"), vec!["q", "root", "w"]);
    assert_eq!(perms_of(&s, "q"), vec![Permission::key("k", Read)]);
    assert_eq!(
        query(&s, AuthRead::UserGet { name: "bob".into() }),
        Err(E::UserNotFound)
    );
    assert_eq!(
        query(
            &s,
            AuthRead::RoleGet {
                name: "root".into()
            }
        ),
        Err(E::RoleNotFound),
        "granted, but no role named root exists"
    );
    assert_eq!(
        query(&s, AuthRead::Status),
        Ok(AuthAnswer::Status {
            enabled: false,
            auth_revision: 9
        }),
        "starts at 1, and eight changes"
    );
    // The header carries the kv revision.
    match s.read(&KvRead::Auth(AuthRead::Status)) {
        Ok(KvReadResponse::Auth(Ok(r))) => assert_eq!(r.revision, 1),
        other => panic!("{other:?}"),
    }
}

#[test]
fn auth_commands_leave_the_kv_revision_alone() {
    let mut s = store(&[]);
    s.apply(&KvCommand::Put(PutRequest::new("k", "v"))).unwrap();
    let resp = apply(&mut s, &role_add("r")).unwrap();
    assert_eq!((resp.revision, s.revision()), (2, 2));
}

// ---- checks ----

/// alice: r1 and r2; bob: r2; carol: no roles; dan: root; eve: no-password, r1.
fn checked_store() -> KvStore {
    store(&[
        user_add("root"),
        grant_role("root", "root"),
        role_add("r1"),
        role_add("r2"),
        grant("r1", "a", "", Read),
        grant("r1", "b", "d", ReadWrite),
        grant("r1", "p/", "p0", ReadWrite),
        grant("r2", "d", "f", Read),
        grant("r2", "x", "\0", Read),
        grant("r2", "m", "n", Write),
        user_add("alice"),
        grant_role("alice", "r1"),
        grant_role("alice", "r2"),
        user_add("bob"),
        grant_role("bob", "r2"),
        user_add("carol"),
        user_add("dan"),
        grant_role("dan", "root"),
        user_add_no_password("eve"),
        grant_role("eve", "r1"),
        ENABLE,
    ])
}

#[test]
fn checks_follow_etcds_range_semantics() {
    let s = checked_store();
    let a = s.auth();
    // (user, key, range_end, type, allowed)
    let table: &[(&str, &str, &str, PermissionType, bool)] = &[
        // One key: exactly that key.
        ("alice", "a", "", Read, true),
        ("alice", "a", "", Write, false),
        ("alice", "a\0", "", Read, false),
        ("alice", "", "", Read, false),
        // A range: its end is not in it.
        ("alice", "b", "d", Write, true),
        ("alice", "c", "", Write, true),
        ("alice", "d", "", Write, false),
        ("alice", "b", "d\0", Write, false),
        ("alice", "b", "d", ReadWrite, true),
        // Merged across roles: [b, d) from r1 and [d, f) from r2 read as one.
        ("alice", "b", "f", Read, true),
        ("bob", "b", "f", Read, false),
        ("alice", "b", "f", Write, false),
        ("alice", "b", "f\0", Read, false),
        ("alice", "a", "f", Read, false), // the gap between a\0 and b
        // A prefix, as etcd's clients send it.
        ("alice", "p/", "p0", ReadWrite, true),
        ("alice", "p/x", "", Write, true),
        ("alice", "p/", "", Read, true),
        ("alice", "p", "", Read, false),
        ("alice", "p/", "\0", Read, false),
        // From a key on.
        ("alice", "x", "\0", Read, true),
        ("alice", "y", "\0", Read, true),
        ("alice", "w", "\0", Read, false),
        ("alice", "\u{7f}\u{7f}", "", Read, true),
        ("alice", "x", "\0", Write, false),
        // Every key.
        ("alice", "\0", "\0", Read, false),
        ("dan", "\0", "\0", ReadWrite, true),
        // Write-only.
        ("bob", "m", "n", Write, true),
        ("bob", "m", "", Read, false),
        ("bob", "m", "n", ReadWrite, false),
        // An empty or inverted request stands for its first key.
        ("alice", "c", "b", Write, true),
        ("alice", "e", "a", Write, false),
        ("alice", "c", "c", Write, true),
        // No roles, root, no password (permissions do not care how one signed in).
        ("carol", "a", "", Read, false),
        ("dan", "anything", "", ReadWrite, true),
        ("root", "a", "z", Write, true),
        ("eve", "a", "", Read, true),
    ];
    for &(user, key, end, t, allowed) in table {
        let got = a.check(user, key.as_bytes(), end.as_bytes(), t);
        let want = if allowed {
            Ok(())
        } else {
            Err(E::PermissionDenied)
        };
        assert_eq!(got, want, "{user} {t:?} {key:?}..{end:?}");
        let perms = a.permissions(user).unwrap();
        assert_eq!(perms.allows(key.as_bytes(), end.as_bytes(), t), allowed);
        if end.is_empty() && t == Read {
            assert_eq!(perms.may_read(key.as_bytes()), allowed, "{user} {key:?}");
            assert_eq!(a.may_read(user, key.as_bytes()), allowed, "{user} {key:?}");
        }
    }
}

#[test]
fn checks_refuse_unknown_and_empty_users_and_pass_everything_while_off() {
    let s = checked_store();
    let a = s.auth();
    assert_eq!(a.check("", b"a", b"", Read), Err(E::UserEmpty));
    assert_eq!(a.check("zoe", b"a", b"", Read), Err(E::PermissionDenied));
    assert!(!a.may_read("zoe", b"a"));
    assert_eq!(a.permissions("zoe"), Err(E::PermissionDenied));

    let mut off = s.clone();
    apply(&mut off, &DISABLE).unwrap();
    let a = off.auth();
    assert_eq!(a.check("", b"\0", b"\0", ReadWrite), Ok(()));
    assert_eq!(a.check("zoe", b"a", b"", Write), Ok(()));
    assert!(a.may_read("carol", b"a"));
}

#[test]
fn admin_checks_follow_etcd() {
    let s = checked_store();
    let a = s.auth();
    assert!(a.is_admin("dan") && a.is_admin("root"));
    assert!(!a.is_admin("alice") && !a.is_admin("zoe"));
    assert_eq!(a.check_admin("root"), Ok(()));
    assert_eq!(a.check_admin("dan"), Ok(()));
    assert_eq!(a.check_admin("alice"), Err(E::PermissionDenied));
    assert_eq!(a.check_admin("zoe"), Err(E::UserNotFound));
    assert_eq!(a.check_admin(""), Err(E::UserEmpty));
    assert!(a.has_role("alice", "r2") && !a.has_role("bob", "r1"));
    let off = store(&[]);
    assert_eq!(
        off.auth().check_admin(""),
        Ok(()),
        "anyone is admin while auth is off"
    );
}

#[test]
fn stale_tokens_are_refused_by_revision() {
    let mut s = checked_store();
    let issued = s.auth().revision();
    assert_eq!(s.auth().check_revision(issued), Ok(()));
    apply(&mut s, &grant("r2", "q", "", Read)).unwrap();
    assert_eq!(s.auth().check_revision(issued), Err(E::AuthOldRevision));
    assert_eq!(s.auth().check_revision(issued + 1), Ok(()));
}

#[test]
fn permissions_are_read_at_a_revision_and_revoking_takes_effect() {
    let mut s = checked_store();
    let before = s.auth().permissions("bob").unwrap();
    assert!(before.may_read(b"e"));
    apply(&mut s, &revoke("r2", "d", "f")).unwrap();
    let after = s.auth().permissions("bob").unwrap();
    assert!(!after.may_read(b"e"));
    assert!(after.auth_revision() > before.auth_revision());
    apply(&mut s, &revoke_role("alice", "r1")).unwrap();
    assert_eq!(
        s.auth().check("alice", b"a", b"", Read),
        Err(E::PermissionDenied)
    );
}

// ---- passwords ----

#[test]
fn password_checks_follow_etcd() {
    let mut s = checked_store();
    let rev = s.auth().revision();
    assert_eq!(s.auth().check_password("alice", "pw"), Ok(rev));
    assert_eq!(s.auth().check_password("alice", "pW"), Err(E::AuthFailed));
    assert_eq!(s.auth().check_password("alice", ""), Err(E::AuthFailed));
    assert_eq!(s.auth().check_password("zoe", "pw"), Err(E::AuthFailed));
    assert_eq!(s.auth().check_password("eve", "pw"), Err(E::NoPasswordUser));
    apply(&mut s, &passwd("alice")).unwrap();
    assert_eq!(s.auth().check_password("alice", "pw"), Err(E::AuthFailed));
    assert_eq!(s.auth().check_password("alice", "new"), Ok(rev + 1));
    // A no-password user stays one after a password change, as in etcd.
    apply(&mut s, &passwd("eve")).unwrap();
    assert_eq!(
        s.auth().check_password("eve", "new"),
        Err(E::NoPasswordUser)
    );
    apply(&mut s, &DISABLE).unwrap();
    assert_eq!(
        s.auth().check_password("alice", "new"),
        Err(E::AuthNotEnabled)
    );
}

#[test]
fn hashing_follows_gos_bcrypt() {
    let h = hash_password("secret", BCRYPT_COST_MIN).unwrap();
    assert!(h.as_str().starts_with("$2a$04$"), "Go's version and cost");
    assert_eq!(h.as_str().len(), 60);
    assert!(verify_password(&h, "secret"));
    assert!(!verify_password(&h, "secreT"));
    let again = hash_password("secret", BCRYPT_COST_MIN).unwrap();
    assert_ne!(h, again, "a fresh salt each time");
    // The same salt gives the same hash.
    assert_eq!(
        hash_password_with_salt("pw", BCRYPT_COST_MIN, [7; 16]),
        Ok(pw_hash())
    );
    // Go's bcrypt refuses more than 72 bytes instead of truncating; 72 is fine.
    let long = "x".repeat(PASSWORD_BYTES_MAX);
    assert!(verify_password(
        &hash_password(&long, BCRYPT_COST_MIN).unwrap(),
        &long
    ));
    assert_eq!(
        hash_password(&"x".repeat(PASSWORD_BYTES_MAX + 1), BCRYPT_COST_MIN),
        Err(E::PasswordTooLong)
    );
    assert_eq!(
        E::PasswordTooLong.to_string(),
        "bcrypt: password length exceeds 72 bytes"
    );
    assert_eq!(hash_password("pw", 3), Err(E::BcryptCost { cost: 3 }));
    assert_eq!(hash_password("pw", 32), Err(E::BcryptCost { cost: 32 }));
    // Verifiers accept the other versions' prefixes too (etcd's older users, other tools).
    let b = PasswordHash::parse(&h.as_str().replacen("$2a$", "$2b$", 1)).unwrap();
    assert!(verify_password(&b, "secret"));
    assert!(PasswordHash::parse("$2a$10$short").is_none());
    assert!(PasswordHash::parse(&"x".repeat(60)).is_none());
}

#[test]
fn hashes_never_reach_debug_output() {
    let s = checked_store();
    let cmd = KvCommand::Auth(user_add("zoe"));
    for text in [
        format!("{s:?}"),
        format!("{cmd:?}"),
        format!("{:?}", pw_hash()),
    ] {
        assert!(!text.contains(pw_hash().as_str()), "{text}");
        assert!(!text.contains("$2a$"), "{text}");
    }
    assert!(format!("{cmd:?}").contains("<redacted>"));
}

#[test]
fn errors_carry_etcds_texts() {
    let table = [
        (E::RootUserNotExist, "etcdserver: root user does not exist"),
        (
            E::RootRoleNotExist,
            "etcdserver: root user does not have root role",
        ),
        (E::UserAlreadyExist, "etcdserver: user name already exists"),
        (E::UserEmpty, "etcdserver: user name is empty"),
        (E::UserNotFound, "etcdserver: user name not found"),
        (E::RoleAlreadyExist, "etcdserver: role name already exists"),
        (E::RoleNotFound, "etcdserver: role name not found"),
        (E::RoleEmpty, "etcdserver: role name is empty"),
        (
            E::AuthFailed,
            "etcdserver: authentication failed, invalid user ID or password",
        ),
        (E::PermissionNotGiven, "etcdserver: permission not given"),
        (E::PermissionDenied, "etcdserver: permission denied"),
        (
            E::RoleNotGranted,
            "etcdserver: role is not granted to the user",
        ),
        (
            E::PermissionNotGranted,
            "etcdserver: permission is not granted to the role",
        ),
        (
            E::AuthNotEnabled,
            "etcdserver: authentication is not enabled",
        ),
        (E::InvalidAuthToken, "etcdserver: invalid auth token"),
        (E::InvalidAuthMgmt, "etcdserver: invalid auth management"),
        (
            E::AuthOldRevision,
            "etcdserver: revision of auth store is old",
        ),
        (
            E::NoPasswordUser,
            "auth: authentication failed, password was given for no password user",
        ),
    ];
    for (e, text) in table {
        assert_eq!(e.to_string(), text);
    }
}

// ---- snapshots ----

#[test]
fn auth_tables_survive_a_snapshot() {
    let mut s = checked_store();
    s.apply(&KvCommand::Put(PutRequest::new("k", "v"))).unwrap();
    apply(&mut s, &passwd("eve")).unwrap();
    let bytes = s.snapshot();
    assert_eq!(bytes[4], 2, "version 2: with auth");
    let back = KvStore::restore(&bytes).unwrap();
    assert_eq!(back, s);
    assert_eq!(back.digest(), s.digest());
    assert_eq!(back.snapshot(), bytes);
    assert!(back.auth().is_enabled());
    assert_eq!(
        back.auth().check_password("alice", "pw"),
        Ok(s.auth().revision())
    );
    assert_eq!(
        back.auth().check_password("eve", "new"),
        Err(E::NoPasswordUser)
    );
}

#[test]
fn the_digest_covers_the_auth_tables() {
    let a = store(&[role_add("r"), grant("r", "a", "", Read)]);
    let b = store(&[role_add("r"), grant("r", "a", "", Write)]);
    let mut c = a.clone();
    assert_eq!(apply(&mut c, &ENABLE), Err(E::RootUserNotExist));
    assert_ne!(a.digest(), b.digest());
    assert_eq!(a.digest(), c.digest(), "the failed enable changed nothing");
    let on = store(&with(root(), &[ENABLE]));
    let off = store(&root());
    assert_ne!(on.digest(), off.digest());
    assert_ne!(a.digest(), KvStore::new().digest());
}

#[test]
fn a_store_that_never_used_auth_keeps_its_version_1_snapshot() {
    let mut s = KvStore::new();
    s.apply(&KvCommand::Put(PutRequest::new("k", "v"))).unwrap();
    let bytes = s.snapshot();
    assert_eq!(bytes[4], 1);
    // A refused auth command changes nothing, so the snapshot stays version 1.
    assert!(apply(&mut s, &ENABLE).is_err());
    assert_eq!(s.snapshot(), bytes);
    // Any change makes it version 2, even one undone later (the auth revision moved).
    apply(&mut s, &role_add("r")).unwrap();
    apply(&mut s, &role_delete("r")).unwrap();
    assert_eq!(s.snapshot()[4], 2);
}

/// A version 1 snapshot (a put of "k" = "v" on a fresh store), pinned: the bytes every build
/// before auth wrote for it. `digests_are_stable_across_builds` pins the same walk.
const V1_SNAPSHOT: &[u8] = &[
    0x53, 0x4b, 0x56, 0x53, 0x01, 0x80, 0x01, 0x80, 0x80, 0x60, 0x80, 0x80, 0x60, 0x04, 0x00, 0x02,
    0x00, 0x01, 0x01, 0x6b, 0x01, 0x04, 0x01, 0x04, 0x02, 0x00, 0x01, 0x76,
];

#[test]
fn an_old_snapshot_without_auth_restores_with_auth_off_and_empty() {
    let mut framed = V1_SNAPSHOT.to_vec();
    framed.extend_from_slice(&crc32c::crc32c(V1_SNAPSHOT).to_le_bytes());
    let s = KvStore::restore(&framed).unwrap();
    assert_eq!(s.revision(), 2);
    assert_eq!(
        s.range(&RangeRequest::single("k")).unwrap().kvs[0].value,
        b"v"
    );
    assert_eq!(s.auth(), &AuthStore::new());
    assert!(!s.auth().is_enabled());
    assert_eq!(s.auth().revision(), 1);
    assert_eq!(
        query(&s, AuthRead::UserList),
        Ok(AuthAnswer::UserList { users: vec![] })
    );
    // And this build writes that store exactly as before.
    assert_eq!(s.snapshot(), framed);
}

/// Frames a body as a snapshot of `version`, with the right checksum.
fn framed(version: u8, body: &[u8]) -> Vec<u8> {
    let mut out = b"SKVS".to_vec();
    out.push(version);
    out.extend_from_slice(body);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

#[test]
fn broken_auth_sections_are_refused() {
    let v1_body = &V1_SNAPSHOT[5..];
    let refused = |body: Vec<u8>, why: &str| {
        let bytes = framed(2, &body);
        assert!(KvStore::restore(&bytes).is_err(), "{why}");
    };
    let with_auth = |auth: &[u8]| {
        let mut b = v1_body.to_vec();
        b.extend_from_slice(auth);
        b
    };
    // enabled 0, revision 1, no users, no roles: untouched tables in a version 2 snapshot.
    refused(with_auth(&[0, 1, 0, 0]), "pristine tables in version 2");
    refused(v1_body.to_vec(), "version 2 without its auth section");
    // Enabled with no users at all.
    refused(with_auth(&[1, 2, 0, 0]), "enabled without root");
    // Revision 0.
    refused(with_auth(&[0, 0, 0, 1, 1, b'r', 0]), "auth revision 0");
    // A role with an inverted permission: role "r", one permission b..a, read.
    refused(
        with_auth(&[0, 2, 0, 1, 1, b'r', 1, 1, b'b', 1, b'a', 0]),
        "inverted permission",
    );
    // A user whose role does not exist: user "u" (no password) with role "r".
    refused(
        with_auth(&[0, 2, 1, 1, b'u', 1, 1, 1, b'r', 0]),
        "dangling role",
    );
    // A password user without a hash.
    refused(with_auth(&[0, 2, 1, 1, b'u', 0, 0, 0]), "no hash");
    // A name that is not UTF-8.
    refused(with_auth(&[0, 2, 0, 1, 1, 0xff, 0]), "not UTF-8");
    // The same, well formed, restores: role "r" with one permission a..b, read.
    let ok = framed(
        2,
        &with_auth(&[0, 2, 0, 1, 1, b'r', 1, 1, b'a', 1, b'b', 0]),
    );
    let s = KvStore::restore(&ok).unwrap();
    assert_eq!(perms_of(&s, "r"), vec![Permission::range("a", "b", Read)]);
    assert_eq!(s.snapshot(), ok);
    assert!(KvStore::restore(&framed(3, v1_body)).is_err(), "version 3");
}
