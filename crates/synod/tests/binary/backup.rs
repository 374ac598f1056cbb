//! Backups as an operator takes and uses them: `etcdctl snapshot save` from a running cluster,
//! the file checked, a new cluster restored from it, and a damaged file refused.
//!
//! Run against etcd too (`SYNOD_INTEROP_TARGET=etcd`), with `etcdctl snapshot status` and
//! `etcdctl snapshot restore` in place of `synod snapshot`'s.

use crate::common;
use crate::common::{etcdctl, parse_json, parse_range, Cluster, Range, Target};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every key under `k/`, read linearizably at `endpoint`.
fn read_keys(endpoint: &str) -> Range {
    parse_range(&etcdctl(endpoint, &["get", "--prefix", "k/", "-w", "json"]).ok())
}

/// `{synod,etcdctl} snapshot status FILE -w json`, as JSON.
fn status_of(target: Target, file: &Path) -> serde_json::Value {
    let out = match target {
        Target::Synod => Command::new(env!("CARGO_BIN_EXE_synod"))
            .args(["snapshot", "status", "-w", "json"])
            .arg(file)
            .output(),
        Target::Etcd => Command::new(common::etcdctl_path())
            .env("ETCDCTL_API", "3")
            .args(["snapshot", "status", "-w", "json"])
            .arg(file)
            .output(),
    }
    .expect("run snapshot status");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "snapshot status failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_json(stdout.trim())
}

/// `curl /v3/maintenance/snapshot`: one `{"result":{"remaining_bytes","blob"}}` line per
/// chunk, as etcd's gateway streams it; the blobs joined, checked against what each line says
/// remains.
fn gateway_snapshot(endpoint: &str) -> Vec<u8> {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "15", "-d", "{}"])
        .arg(format!("{endpoint}/v3/maintenance/snapshot"));
    let text = common::run_bounded(cmd, None, std::time::Duration::from_secs(20)).ok();
    let mut file = Vec::new();
    let mut remaining = None;
    for line in text.lines() {
        let line = parse_json(line);
        let result = &line["result"];
        let blob = result["blob"].as_str().unwrap_or_else(|| panic!("{line}"));
        file.extend(common::base64_decode(blob));
        // Zero is left out, as grpc-gateway leaves out every default.
        let left: u64 = result["remaining_bytes"]
            .as_str()
            .map_or(0, |n| n.parse().expect("a decimal string"));
        remaining = Some(left);
    }
    assert_eq!(
        remaining,
        Some(0),
        "the last chunk says nothing remains: {text}"
    );
    file
}

/// Saves a backup through member `i` into `dir`, and returns its path.
fn save(cluster: &Cluster, i: usize, dir: &Path) -> PathBuf {
    let file = dir.join("backup.db");
    let out = etcdctl(
        cluster.endpoint(i),
        &["snapshot", "save", &file.display().to_string()],
    );
    assert!(
        out.stdout.contains("Snapshot saved at"),
        "etcdctl snapshot save: {out}"
    );
    file
}

#[test]
fn a_cluster_restored_from_a_backup_holds_exactly_what_was_acknowledged_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(3);
    let leader = cluster.leader();
    let at_leader = cluster.endpoint(leader).to_string();
    // A history with every kind of change: puts, overwrites, a delete, a transaction.
    for i in 0..30 {
        etcdctl(&at_leader, &["put", &format!("k/{i:02}"), &format!("v{i}")]).ok();
    }
    etcdctl(&at_leader, &["put", "k/00", "again"]).ok();
    etcdctl(&at_leader, &["del", "k/01"]).ok();
    let txn = "value(\"k/02\") = \"v2\"\n\nput k/02 swapped\nput k/99 new\n\n\n";
    let out = common::etcdctl_with_stdin(&at_leader, &["txn"], Some(txn)).ok();
    assert!(out.starts_with("SUCCESS"), "{out}");
    let before = read_keys(&at_leader);
    assert_eq!(before.kvs.len(), 30, "30 puts, one deleted, one added");

    // Through a member that does not lead: it holds every write acknowledged before the
    // backup was asked for, or the backup would miss some.
    let file = save(&cluster, (leader + 1) % 3, dir.path());
    // The JSON gateway streams the same backup, a base64 chunk per line.
    let through_gateway = dir.path().join("gateway.db");
    std::fs::write(&through_gateway, gateway_snapshot(cluster.endpoint(leader))).expect("write");
    let (a, b) = (
        status_of(cluster.target, &file),
        status_of(cluster.target, &through_gateway),
    );
    assert_eq!(
        (&a["revision"], &a["totalKey"]),
        (&b["revision"], &b["totalKey"]),
        "etcdctl's backup {a} and the gateway's {b}"
    );
    // Writes after the backup are not in it.
    etcdctl(&at_leader, &["put", "k/later", "x"]).ok();

    let status = status_of(cluster.target, &file);
    assert_eq!(
        status["revision"].as_i64(),
        Some(before.revision),
        "{status}"
    );
    if cluster.target == Target::Synod {
        // etcd counts every stored version and its own keys, not the keys that exist.
        assert_eq!(status["totalKey"].as_u64(), Some(30), "{status}");
    }
    // Both count the bytes before the SHA-256 that ends the file.
    let size = std::fs::metadata(&file).expect("stat").len();
    assert_eq!(status["totalSize"].as_u64(), Some(size - 32), "{status}");

    let restored = Cluster::start_restored(3, &file);
    for i in 0..3 {
        let after = read_keys(restored.endpoint(i));
        assert_eq!(
            after.kvs, before.kvs,
            "member {i} of the restored cluster: the keys, values and revisions at the backup"
        );
        assert_eq!(after.revision, before.revision, "member {i}");
    }
    // The restored cluster is a cluster of its own: writable, its revision going on from the
    // backup's, and nothing of the old cluster's later writes in it.
    let put = etcdctl(restored.endpoint(0), &["put", "k/new", "y", "-w", "json"]).ok();
    let revision = parse_json(&put)["header"]["revision"].as_i64();
    assert_eq!(revision, Some(before.revision + 1));
    let later = read_keys(restored.endpoint(1));
    assert!(later.kvs.iter().all(|kv| kv.key != "k/later"), "{later:?}");
    assert!(read_keys(&at_leader).kvs.iter().all(|kv| kv.key != "k/new"));
    let (old_status, new_status) = (cluster.status(leader), restored.status(0));
    assert_ne!(
        old_status.map(|s| s.cluster_id),
        new_status.map(|s| s.cluster_id),
        "a restored cluster has an id of its own"
    );
}

#[test]
fn a_damaged_backup_restores_nothing_and_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(1);
    for i in 0..10 {
        etcdctl(cluster.endpoint(0), &["put", &format!("k/{i}"), "v"]).ok();
    }
    let file = save(&cluster, 0, dir.path());
    let mut bytes = std::fs::read(&file).expect("read the backup");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&file, &bytes).expect("damage the backup");

    let restored_dir = dir.path().join("restored.data");
    let out = restore_into(cluster.target, &file, &restored_dir);
    assert!(!out.status.success(), "a damaged backup was restored");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if cluster.target == Target::Synod {
        assert!(stderr.contains(&file.display().to_string()), "{stderr}");
        assert!(stderr.contains("SHA-256"), "{stderr}");
        assert!(stderr.contains("take a new backup"), "{stderr}");
    }
    match cluster.target {
        Target::Synod => assert!(
            !restored_dir.exists(),
            "nothing may be left in {}",
            restored_dir.display()
        ),
        // etcd 3.4 leaves the copied database behind (member/snap/db), though no log: no
        // member can start from it. Recorded, since Synod leaves nothing.
        Target::Etcd => {
            assert!(!restored_dir.join("member/wal").exists());
            eprintln!(
                "etcd left {} behind: {}",
                restored_dir.display(),
                restored_dir.join("member/snap/db").exists()
            );
        }
    }
}

/// Runs the target's restore of `file` into `data_dir` for a one-member cluster.
fn restore_into(target: Target, file: &Path, data_dir: &Path) -> std::process::Output {
    let peer = "http://127.0.0.1:1";
    let flags = [
        "--name=r1".to_string(),
        format!("--data-dir={}", data_dir.display()),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=r1={peer}"),
        "--initial-cluster-token=restored".to_string(),
    ];
    let mut cmd = match target {
        Target::Synod => {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_synod"));
            cmd.args(["snapshot", "restore", &format!("--listen-peer-urls={peer}")]);
            cmd
        }
        Target::Etcd => {
            let mut cmd = Command::new(common::etcdctl_path());
            cmd.env("ETCDCTL_API", "3").args(["snapshot", "restore"]);
            cmd
        }
    };
    cmd.arg(file).args(flags).output().expect("run restore")
}
