//! `etcdctl endpoint hashkv --rev R` with etcd's meaning: a real etcd 3.4 and the cluster
//! under test take the same requests (puts, transactions of several puts and deletes, a range
//! delete, keys on a lease, a lease revoked with its keys, a compaction), and print the same
//! hash at every revision, before and after the compaction; a Synod restored from the etcd's
//! backup prints them too.
//!
//! With `SYNOD_INTEROP_TARGET=etcd` both sides are etcd, which checks the test itself.

use crate::common::{etcdctl, etcdctl_with_stdin, parse_json, runtime, Cluster, Target};
use etcd_client::{Client, ConnectOptions, LeaseGrantOptions};
use std::time::Duration;

/// The lease the history's keys use, granted with this id on both sides (etcd picks a random
/// one otherwise, and a key's lease is part of what is hashed).
const LEASE_ID: i64 = 0x1234;
/// The revision of the history's last write.
const LAST: i64 = 12;
/// The compaction's revision.
const COMPACTED_AT: i64 = 8;

/// Grants lease [`LEASE_ID`] for 600 s at `endpoint`.
fn grant(endpoint: &str) {
    runtime().block_on(async {
        let mut client = Client::connect(
            [endpoint],
            Some(ConnectOptions::new().with_timeout(Duration::from_secs(5))),
        )
        .await
        .unwrap_or_else(|e| panic!("connect to {endpoint}: {e}"));
        let granted = client
            .lease_grant(600, Some(LeaseGrantOptions::new().with_id(LEASE_ID)))
            .await
            .unwrap_or_else(|e| panic!("lease grant: {e}"));
        assert_eq!(granted.id(), LEASE_ID);
    });
}

/// Revisions 2..=12: every kind of change etcd numbers with sub-revisions.
fn fill(endpoint: &str) {
    let run = |args: &[&str]| etcdctl(endpoint, args).ok();
    let txn = |text: &str| {
        let out = etcdctl_with_stdin(endpoint, &["txn"], Some(text)).ok();
        assert!(out.starts_with("SUCCESS"), "{out}");
    };
    let lease = format!("--lease={LEASE_ID:x}");
    run(&["put", "a", "1"]);
    run(&["put", "b", "2"]);
    // Revision 4: two puts and a delete, sub-revisions 0, 1, 2, not in key order.
    txn("\nput c 3\nput d 4\ndel a\n\n\n");
    // Revision 5: one delete of three keys.
    run(&["del", "b", "e"]);
    grant(endpoint);
    run(&["put", "e", "5", &lease]);
    run(&["put", "a", "6"]);
    run(&["put", "a", "7"]);
    txn("value(\"a\") = \"7\"\n\nput f 8\ndel e\n\n\n");
    run(&["put", "g", "9", &lease]);
    // Revision 11: the revoke deletes g.
    run(&["lease", "revoke", &format!("{LEASE_ID:x}")]);
    txn("\nput h 10\nput i 11\nput a 12\n\n\n");
}

/// `endpoint hashkv --rev R` at `endpoint`: (hash, compact revision, header revision), or the
/// error etcdctl printed.
fn hashkv(endpoint: &str, rev: i64) -> Result<(u64, i64, i64), String> {
    let out = etcdctl(
        endpoint,
        &["endpoint", "hashkv", &format!("--rev={rev}"), "-w", "json"],
    );
    if !out.success() {
        return Err(out.err());
    }
    let v = parse_json(out.ok().trim());
    let h = &v[0]["HashKV"];
    Ok((
        h["hash"].as_u64().expect("a hash"),
        h["compact_revision"].as_i64().expect("a compact revision"),
        h["header"]["revision"].as_i64().expect("a revision"),
    ))
}

/// The answers at `revs` on both, compared.
#[track_caller]
fn assert_same(etcd: &str, other: &str, revs: impl IntoIterator<Item = i64>) {
    for rev in revs {
        let want = hashkv(etcd, rev).expect("etcd answers");
        assert_eq!(hashkv(other, rev), Ok(want), "hashkv --rev={rev}");
    }
}

#[test]
fn the_same_history_hashes_as_in_etcd_at_every_revision_across_a_compaction_and_a_restore() {
    let dir = tempfile::tempdir().expect("tempdir");
    let etcd = Cluster::start_as(Target::Etcd, 1);
    let tested = Cluster::start(1);
    let (e, s) = (etcd.endpoint(0).to_string(), tested.endpoint(0).to_string());
    fill(&e);
    fill(&s);
    // 0 is the current revision.
    assert_same(&e, &s, (0..=LAST).filter(|r| *r != 1));
    let before = hashkv(&s, LAST).expect("a hash");
    assert_eq!(before.1, -1, "no compaction yet");
    // A revision past the current one is refused as etcd refuses it.
    let future = hashkv(&s, LAST + 1).expect_err("a future revision");
    assert!(
        future.contains("required revision is a future revision"),
        "{future}"
    );

    for endpoint in [&e, &s] {
        let out = etcdctl(
            endpoint,
            &["compaction", &COMPACTED_AT.to_string(), "--physical"],
        );
        assert!(out.ok().contains("compacted revision 8"));
    }
    // etcd 3.4.23 (the one installed) refuses a hash at the compaction revision itself; from
    // 3.4.27 on, as Synod, etcd answers it. Above it, every answer matches.
    assert_same(&e, &s, [0, 9, 10, 11, 12]);
    if tested.target == Target::Synod {
        let at = hashkv(&s, COMPACTED_AT);
        assert!(matches!(at, Ok((_, 8, LAST))), "{at:?}");
    }
    let below = hashkv(&s, COMPACTED_AT - 1).expect_err("below the compaction");
    assert!(
        below.contains("required revision has been compacted"),
        "{below}"
    );
    assert_ne!(
        hashkv(&s, LAST).expect("a hash").0,
        before.0,
        "the compaction removed history at or below {LAST}"
    );

    // etcd's backup, restored: the same history, the same hashes.
    let file = dir.path().join("etcd.db");
    let saved = etcdctl(&e, &["snapshot", "save", &file.display().to_string()]);
    assert!(saved.stdout.contains("Snapshot saved at"), "{saved}");
    let restored = Cluster::start_restored(1, &file);
    assert_same(&e, restored.endpoint(0), [0, 9, 10, 11, 12]);
}
