//! Migration from etcd, as an operator does it: `etcdctl snapshot save` against a real etcd
//! 3.4 holding data of every kind (overwrites, a delete, a compaction, a transaction, a lease
//! with a key, users, roles and auth on), `synod snapshot restore` of that file into every
//! member of a new cluster, and then the same etcdctl reads against both, compared.
//!
//! The source is always etcd. With `SYNOD_INTEROP_TARGET=etcd` the restored cluster is etcd
//! too (`etcdctl snapshot restore`), which checks the test's own expectations.

use crate::common::{etcdctl, etcdctl_with_stdin, parse_json, Cluster, Target};
use serde_json::Value;
use std::process::Command;

const ROOT: &str = "--user=root:rootpw";

/// `etcdctl --user=root ARGS -w json` at `endpoint`, as JSON with the header's
/// member-specific fields left out (the two clusters differ there, and only there).
fn json_of(endpoint: &str, args: &[&str]) -> Value {
    let mut all = vec![ROOT];
    all.extend_from_slice(args);
    all.extend(["-w", "json"]);
    let mut v = parse_json(etcdctl(endpoint, &all).ok().trim());
    if let Some(h) = v.get_mut("header").and_then(Value::as_object_mut) {
        h.retain(|k, _| k == "revision");
    }
    v
}

/// What the test compares between the source and the restored cluster.
fn everything(endpoint: &str, lease: &str) -> Vec<(String, Value)> {
    let reads: Vec<Vec<&str>> = vec![
        vec!["get", "", "--from-key"],
        vec!["get", "a", "--rev=4"],
        vec!["get", "b", "--rev=4"],
        vec!["get", "b", "--rev=5"],
        vec!["get", "a", "--rev=9"],
        vec!["get", "", "--from-key", "--rev=10", "--keys-only"],
        vec!["user", "get", "alice"],
        vec!["user", "get", "bob"],
        vec!["role", "get", "reader"],
        vec!["role", "list"],
        vec!["user", "list"],
    ];
    let mut out: Vec<(String, Value)> = reads
        .iter()
        .map(|args| (args.join(" "), json_of(endpoint, args)))
        .collect();
    // The granted TTL and the keys; the time left restarts with the new cluster, as it does
    // in an etcd restored from a backup.
    let mut ttl = json_of(endpoint, &["lease", "timetolive", lease, "--keys"]);
    if let Some(o) = ttl.as_object_mut() {
        o.remove("ttl");
        o.remove("cluster_id");
        o.remove("member_id");
        o.remove("raft_term");
    }
    out.push(("lease timetolive".into(), ttl));
    out
}

#[test]
fn an_etcd_backup_restores_with_every_key_revision_lease_and_user() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = Cluster::start_as(Target::Etcd, 1);
    let e = source.endpoint(0).to_string();
    let run = |args: &[&str]| etcdctl(&e, args).ok();
    // Revisions 2..=8: overwrites, a delete, a key on a lease.
    run(&["put", "a", "1"]);
    run(&["put", "a", "2"]);
    run(&["put", "b", "x"]);
    run(&["del", "b"]);
    run(&["put", "c", "hello world"]);
    let granted = run(&["lease", "grant", "600"]);
    let lease_id = granted
        .split_whitespace()
        .nth(1)
        .expect("lease <id> granted")
        .to_string();
    run(&["put", "leased", "v", &format!("--lease={lease_id}")]);
    run(&["put", "d", "1"]);
    // Below 4 is gone; the delete at 5 is kept.
    run(&["compact", "4"]);
    run(&["put", "a", "3"]);
    let txn = "mod(\"d\") > \"0\"\n\nput e 5\nput f 6\n\n\n";
    let out = etcdctl_with_stdin(&e, &["txn"], Some(txn)).ok();
    assert!(out.starts_with("SUCCESS"), "{out}");
    run(&["put", "app/x", "secret"]);
    // Auth: root, a reader of app/, a user without a password; then on.
    run(&["role", "add", "root"]);
    run(&["user", "add", "root:rootpw"]);
    run(&["user", "grant-role", "root", "root"]);
    run(&["role", "add", "reader"]);
    run(&[
        "role",
        "grant-permission",
        "reader",
        "--prefix=true",
        "read",
        "app/",
    ]);
    run(&["user", "add", "alice:alicepw"]);
    run(&["user", "grant-role", "alice", "reader"]);
    run(&["user", "add", "bob", "--no-password"]);
    run(&["auth", "enable"]);
    let file = dir.path().join("etcd.db");
    let saved = etcdctl(&e, &[ROOT, "snapshot", "save", &file.display().to_string()]);
    assert!(saved.stdout.contains("Snapshot saved at"), "{saved}");
    let before = everything(&e, &lease_id);
    assert_eq!(before[0].1["header"]["revision"], 11, "{:?}", before[0]);
    drop(source);

    let restored = Cluster::start_restored_with_user(3, &file, "root:rootpw");
    let r = restored.endpoint(1).to_string();
    let after = everything(&r, &lease_id);
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a, "the restored cluster differs from etcd");
    }
    // Below the compaction is refused as etcd refuses it.
    let compacted = etcdctl(&r, &[ROOT, "get", "a", "--rev=3"]).err();
    assert!(
        compacted.contains("required revision has been compacted"),
        "{compacted}"
    );
    // Passwords came across as their hashes: alice signs in, and sees only app/.
    let alice = "--user=alice:alicepw";
    let mine = etcdctl(&r, &[alice, "get", "app/x", "--print-value-only"]).ok();
    assert_eq!(mine.trim(), "secret");
    let denied = etcdctl(&r, &[alice, "get", "c"]).err();
    assert!(denied.contains("permission denied"), "{denied}");
    let wrong = etcdctl(&r, &["--user=alice:nope", "get", "app/x"]).err();
    assert!(wrong.contains("authentication failed"), "{wrong}");
    // The cluster continues from etcd's revision.
    let put = json_of(&r, &["put", "g", "7"]);
    assert_eq!(put["header"]["revision"], 12, "{put}");
}

/// `synod snapshot restore` of `file` into a fresh directory under `dir`: its output, and
/// whether the data directory exists afterwards.
fn synod_restore(dir: &std::path::Path, file: &std::path::Path) -> (bool, String, bool) {
    let data = dir.join("n1.data");
    let out = Command::new(env!("CARGO_BIN_EXE_synod"))
        .args(["snapshot", "restore"])
        .arg(file)
        .arg(format!("--data-dir={}", data.display()))
        .args([
            "--name=n1",
            "--initial-cluster=n1=http://127.0.0.1:2380",
            "--initial-advertise-peer-urls=http://127.0.0.1:2380",
            "--initial-cluster-token=migrated",
            "--listen-peer-urls=http://127.0.0.1:2380",
        ])
        .output()
        .expect("run synod snapshot restore");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text, data.exists())
}

/// A damaged etcd backup is refused with what is wrong, and no data directory is left.
#[test]
fn a_damaged_etcd_backup_is_refused_and_nothing_is_restored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let source = Cluster::start_as(Target::Etcd, 1);
    let e = source.endpoint(0).to_string();
    for i in 0..20 {
        etcdctl(&e, &["put", &format!("k{i}"), &"v".repeat(100)]).ok();
    }
    let file = dir.path().join("etcd.db");
    let saved = etcdctl(&e, &["snapshot", "save", &file.display().to_string()]);
    assert!(saved.stdout.contains("Snapshot saved at"), "{saved}");
    drop(source);
    let whole = std::fs::read(&file).expect("read the backup");

    let (ok, text, _) = synod_restore(&dir.path().join("whole"), &file);
    assert!(ok, "the undamaged backup restores: {text}");
    assert!(text.contains("revision 21, 20 keys"), "{text}");

    let db = whole.len() - 32;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            whole[..whole.len() / 2].to_vec(),
            "etcd's database",
        ),
        (
            "a flipped page byte",
            {
                let mut b = whole.clone();
                b[3 * 4096 + 40] ^= 0x10;
                b
            },
            "SHA-256",
        ),
        (
            "a flipped page byte without the hash",
            {
                let mut b = whole[..db].to_vec();
                b[0x18] ^= 0x01;
                b[4096 + 0x18] ^= 0x01;
                b
            },
            "no valid bbolt meta page",
        ),
    ];
    for (i, (what, bytes, expected)) in cases.into_iter().enumerate() {
        let case_dir = dir.path().join(format!("case{i}"));
        std::fs::create_dir(&case_dir).expect("mkdir");
        let damaged = case_dir.join("etcd.db");
        std::fs::write(&damaged, &bytes).expect("write");
        let (ok, text, exists) = synod_restore(&case_dir, &damaged);
        assert!(!ok, "{what}: restored anyway: {text}");
        assert!(text.contains(expected), "{what}: {text}");
        assert!(text.contains("Nothing was restored"), "{what}: {text}");
        assert!(!exists, "{what}: a data directory was left");
    }
}
