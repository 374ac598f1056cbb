//! The real `etcdctl` (API v3, Debian's etcd-client) against a real 3-member cluster: what a
//! user types, and exactly what they see. Outputs are those of etcdctl 3.4 (Debian bookworm);
//! every expectation was checked against real etcd (`SYNOD_INTEROP_TARGET=etcd`).
//!
//! Each test writes through one member and reads through others: a write reaches the leader
//! from any member, and a default (linearizable) read anywhere sees it.

use crate::common;
use crate::common::{etcdctl, etcdctl_with_stdin, parse_json, parse_range, parse_status, Cluster};
use std::collections::BTreeSet;

#[test]
fn put_and_get_with_prefix_rev_keys_only_limit_and_value_only() {
    let c = Cluster::start(3);
    let (a, b, d) = (c.endpoint(0), c.endpoint(1), c.endpoint(2));

    // A fresh cluster is at revision 1; every put is one more.
    assert_eq!(etcdctl(a, &["put", "foo", "bar"]).ok(), "OK\n"); // rev 2
    assert_eq!(etcdctl(b, &["get", "foo"]).ok(), "foo\nbar\n");
    assert_eq!(etcdctl(d, &["get", "foo"]).ok(), "foo\nbar\n");
    assert_eq!(etcdctl(b, &["put", "foo2", "bar2"]).ok(), "OK\n"); // rev 3
    assert_eq!(etcdctl(d, &["put", "fop", "x"]).ok(), "OK\n"); // rev 4
    assert_eq!(etcdctl(a, &["put", "foo", "bar-v2"]).ok(), "OK\n"); // rev 5
    assert_eq!(etcdctl(b, &["put", "other", "y"]).ok(), "OK\n"); // rev 6

    assert_eq!(
        etcdctl(d, &["get", "--prefix", "fo"]).ok(),
        "foo\nbar-v2\nfoo2\nbar2\nfop\nx\n"
    );
    // etcdctl 3.4 prints an empty line where the value would be.
    assert_eq!(
        etcdctl(a, &["get", "--prefix", "--keys-only", "fo"]).ok(),
        "foo\n\nfoo2\n\nfop\n\n"
    );
    assert_eq!(
        etcdctl(b, &["get", "--prefix", "--print-value-only", "fo"]).ok(),
        "bar-v2\nbar2\nx\n"
    );
    assert_eq!(
        etcdctl(d, &["get", "--prefix", "--limit=2", "fo"]).ok(),
        "foo\nbar-v2\nfoo2\nbar2\n"
    );
    // A range [key, range_end).
    assert_eq!(
        etcdctl(a, &["get", "foo", "fop"]).ok(),
        "foo\nbar-v2\nfoo2\nbar2\n"
    );
    assert_eq!(etcdctl(b, &["get", "missing"]).ok(), "");

    // The limit cuts the answer, not the count, and says there is more.
    let limited = parse_range(
        &etcdctl(
            d,
            &["get", "--prefix", "--limit=2", "fo", "--write-out=json"],
        )
        .ok(),
    );
    assert_eq!(limited.revision, 6);
    assert_eq!(limited.count, 3);
    assert!(limited.more);
    let keys: Vec<&str> = limited.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["foo", "foo2"]);

    // Historical reads.
    assert_eq!(etcdctl(a, &["get", "foo", "--rev=2"]).ok(), "foo\nbar\n");
    assert_eq!(etcdctl(b, &["get", "foo", "--rev=4"]).ok(), "foo\nbar\n");
    assert_eq!(etcdctl(d, &["get", "foo", "--rev=5"]).ok(), "foo\nbar-v2\n");
    assert_eq!(etcdctl(a, &["get", "fop", "--rev=3"]).ok(), "");
    assert_eq!(
        etcdctl(b, &["get", "--prefix", "fo", "--rev=3"]).ok(),
        "foo\nbar\nfoo2\nbar2\n"
    );

    // Per-key revisions and versions.
    let foo = parse_range(&etcdctl(d, &["get", "foo", "-w", "json"]).ok());
    assert_eq!(foo.revision, 6);
    assert_eq!(foo.count, 1);
    assert!(!foo.more);
    assert_eq!(foo.kvs.len(), 1);
    let kv = &foo.kvs[0];
    assert_eq!(
        (
            kv.key.as_str(),
            kv.value.as_str(),
            kv.create_revision,
            kv.mod_revision,
            kv.version
        ),
        ("foo", "bar-v2", 2, 5, 2)
    );
    let old = parse_range(&etcdctl(a, &["get", "foo", "--rev=3", "-w", "json"]).ok());
    assert_eq!(
        (
            old.kvs[0].value.as_str(),
            old.kvs[0].mod_revision,
            old.kvs[0].version
        ),
        ("bar", 2, 1)
    );
    // A read at an old revision still reports the current revision in its header.
    assert_eq!(old.revision, 6);
}

#[test]
fn del_with_prev_kv_and_prefix() {
    let c = Cluster::start(3);
    let (a, b, d) = (c.endpoint(0), c.endpoint(1), c.endpoint(2));
    for (k, v) in [("a/1", "x"), ("a/2", "y"), ("a/3", "z"), ("b", "w")] {
        assert_eq!(etcdctl(a, &["put", k, v]).ok(), "OK\n");
    } // revs 2..=5

    // The count of deleted keys, then each deleted key and its value.
    assert_eq!(etcdctl(b, &["del", "--prev-kv", "a/1"]).ok(), "1\na/1\nx\n"); // rev 6
    assert_eq!(etcdctl(d, &["del", "a/1"]).ok(), "0\n"); // no change, no revision
    assert_eq!(etcdctl(d, &["del", "nothing"]).ok(), "0\n");
    assert_eq!(etcdctl(a, &["del", "--prefix", "a/"]).ok(), "2\n"); // rev 7
    assert_eq!(etcdctl(b, &["get", "--prefix", "a/"]).ok(), "");
    assert_eq!(etcdctl(d, &["get", "b"]).ok(), "b\nw\n");
    assert_eq!(
        etcdctl(b, &["del", "--prefix", "--prev-kv", "b"]).ok(),
        "1\nb\nw\n"
    ); // rev 8
    assert_eq!(etcdctl(a, &["get", "--prefix", ""]).ok(), "");

    // One revision per deleting request, none for a delete that found nothing; history keeps
    // the deleted keys.
    let now = parse_range(&etcdctl(d, &["get", "b", "-w", "json"]).ok());
    assert_eq!(now.revision, 8);
    assert!(now.kvs.is_empty());
    assert_eq!(
        etcdctl(a, &["get", "--prefix", "a/", "--rev=6"]).ok(),
        "a/2\ny\na/3\nz\n"
    );

    // A key put again after its deletion starts a new life: version 1, new create revision.
    assert_eq!(etcdctl(b, &["put", "a/1", "again"]).ok(), "OK\n"); // rev 9
    let again = parse_range(&etcdctl(d, &["get", "a/1", "-w", "json"]).ok());
    let kv = &again.kvs[0];
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (9, 9, 1));
}

/// The prompts etcdctl 3.4 prints in interactive mode, before the result.
const TXN_PROMPTS: &str =
    "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\n";

#[test]
fn txn_interactive_success_and_failure_branches() {
    let c = Cluster::start(3);
    let (a, b, d) = (c.endpoint(0), c.endpoint(1), c.endpoint(2));
    assert_eq!(etcdctl(a, &["put", "k1", "v1"]).ok(), "OK\n"); // rev 2

    // Every kind of compare holds: the success branch runs.
    let success = etcdctl_with_stdin(
        b,
        &["txn", "--interactive"],
        Some(concat!(
            "value(\"k1\") = \"v1\"\n",
            "version(\"k1\") = \"1\"\n",
            "create(\"k1\") = \"2\"\n",
            "mod(\"k1\") < \"3\"\n",
            "\n",
            "put k2 from-success\n",
            "get k1\n",
            "\n",
            "put k2 from-failure\n",
            "\n",
        )),
    )
    .ok();
    assert_eq!(success, format!("{TXN_PROMPTS}SUCCESS\n\nOK\n\nk1\nv1\n")); // rev 3
    assert_eq!(etcdctl(d, &["get", "k2"]).ok(), "k2\nfrom-success\n");

    // One compare fails: the failure branch runs, and none of the success branch.
    let failure = etcdctl_with_stdin(
        d,
        &["txn", "-i"],
        Some(concat!(
            "value(\"k1\") = \"v1\"\n",
            "value(\"k2\") = \"nope\"\n",
            "\n",
            "put k3 from-success\n",
            "\n",
            "put k2 from-failure\n",
            "del k1\n",
            "get k2\n",
            "\n",
        )),
    )
    .ok();
    assert_eq!(
        failure,
        format!("{TXN_PROMPTS}FAILURE\n\nOK\n\n1\n\nk2\nfrom-failure\n")
    ); // rev 4
    assert_eq!(etcdctl(a, &["get", "k3"]).ok(), "");
    assert_eq!(etcdctl(b, &["get", "k1"]).ok(), "");
    assert_eq!(etcdctl(a, &["get", "k2"]).ok(), "k2\nfrom-failure\n");

    // One revision per writing transaction, however many writes it holds; a read-only
    // transaction adds none.
    let ro = etcdctl_with_stdin(
        a,
        &["txn", "-i"],
        Some("version(\"k1\") = \"0\"\n\nget k2\n\n\n"),
    )
    .ok();
    assert_eq!(ro, format!("{TXN_PROMPTS}SUCCESS\n\nk2\nfrom-failure\n"));
    let k2 = parse_range(&etcdctl(b, &["get", "k2", "-w", "json"]).ok());
    assert_eq!(k2.revision, 4);
    let kv = &k2.kvs[0];
    assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (3, 4, 2));

    // The JSON form of a transaction's answer carries the new revision.
    let json = parse_json(
        &etcdctl_with_stdin(
            d,
            &["txn", "-w", "json"],
            Some("mod(\"k2\") = \"4\"\n\nput k4 x\n\n\n"),
        )
        .ok(),
    );
    assert_eq!(json["succeeded"], true);
    assert_eq!(json["header"]["revision"], 5);
    assert_eq!(
        json["responses"][0]["Response"]["ResponsePut"]["header"]["revision"],
        5
    );
}

#[test]
fn compaction_and_revision_errors() {
    let c = Cluster::start(3);
    let (a, b, d) = (c.endpoint(0), c.endpoint(1), c.endpoint(2));
    for v in ["v1", "v2", "v3", "v4", "v5"] {
        assert_eq!(etcdctl(a, &["put", "c", v]).ok(), "OK\n");
    } // revs 2..=6

    // A store never compacted takes `compaction 0` (etcd's first compaction revision is -1),
    // once: its compaction revision is 0 after it, so a second is refused as compacted, as
    // is one below 0; nothing changes either way. `endpoint hashkv` says 0 now, not -1.
    let hashkv_compact_revision = || {
        let out = etcdctl(b, &["endpoint", "hashkv", "-w", "json"]).ok();
        common::parse_json(&out)[0]["HashKV"]["compact_revision"].as_i64()
    };
    assert_eq!(hashkv_compact_revision(), Some(-1));
    assert_eq!(
        etcdctl(a, &["compaction", "0"]).ok(),
        "compacted revision 0\n"
    );
    let second = etcdctl(d, &["compaction", "0"]).err();
    assert!(
        second.contains("Error: etcdserver: mvcc: required revision has been compacted\n"),
        "{second}"
    );
    // 0 is protobuf's default, which etcdctl's JSON leaves out.
    assert_eq!(hashkv_compact_revision(), None);
    let negative = etcdctl(a, &["compaction", "--", "-1"]).err();
    assert!(
        negative.contains("Error: etcdserver: mvcc: required revision has been compacted\n"),
        "{negative}"
    );
    assert_eq!(etcdctl(b, &["get", "c", "--rev=2"]).ok(), "c\nv1\n");

    let future = etcdctl(b, &["get", "c", "--rev=100"]).err();
    assert!(
        future.contains("Error: etcdserver: mvcc: required revision is a future revision\n"),
        "{future}"
    );

    assert_eq!(
        etcdctl(d, &["compaction", "4"]).ok(),
        "compacted revision 4\n"
    );
    // Below the compaction point history is gone, on every member.
    for ep in [a, b, d] {
        let gone = etcdctl(ep, &["get", "c", "--rev=3"]).err();
        assert!(
            gone.contains("Error: etcdserver: mvcc: required revision has been compacted\n"),
            "{gone}"
        );
    }
    // At and above it, it is still there.
    assert_eq!(etcdctl(a, &["get", "c", "--rev=4"]).ok(), "c\nv3\n");
    assert_eq!(etcdctl(b, &["get", "c", "--rev=5"]).ok(), "c\nv4\n");
    assert_eq!(etcdctl(d, &["get", "c"]).ok(), "c\nv5\n");
    // Compacting again at or below the point, or beyond the present, is refused.
    let again = etcdctl(a, &["compaction", "3"]).err();
    assert!(
        again.contains("Error: etcdserver: mvcc: required revision has been compacted\n"),
        "{again}"
    );
    let ahead = etcdctl(b, &["compaction", "100"]).err();
    assert!(
        ahead.contains("Error: etcdserver: mvcc: required revision is a future revision\n"),
        "{ahead}"
    );
    // Compaction is not a write: the revision did not move, and the key keeps its history
    // counters.
    let now = parse_range(&etcdctl(d, &["get", "c", "-w", "json"]).ok());
    assert_eq!(now.revision, 6);
    assert_eq!(
        (
            now.kvs[0].create_revision,
            now.kvs[0].mod_revision,
            now.kvs[0].version
        ),
        (2, 6, 5)
    );
}

#[test]
fn empty_key_is_refused() {
    let c = Cluster::start(3);
    let (a, b) = (c.endpoint(0), c.endpoint(1));
    let put = etcdctl(a, &["put", "", "v"]).err();
    assert!(
        put.contains("Error: etcdserver: key is not provided\n"),
        "{put}"
    );
    let get = etcdctl(b, &["get", ""]).err();
    assert!(
        get.contains("Error: etcdserver: key is not provided\n"),
        "{get}"
    );
    // Nothing was written.
    let range = parse_range(&etcdctl(a, &["get", "--prefix", "", "-w", "json"]).ok());
    assert_eq!(range.revision, 1);
    assert_eq!(range.count, 0);
}

#[test]
fn endpoint_status_health_and_member_list() {
    let c = Cluster::start(3);
    // Endpoints as users write them, `http://host:port`: etcdctl 3.4 then sends the whole URL
    // as the HTTP/2 `:authority` of `endpoint status` (an RFC 7540 violation); etcd accepts it,
    // and so does Synod, through crates/node/src/authority.rs.
    let all = c.endpoints();

    // JSON: ids in decimal.
    let statuses = parse_status(&etcdctl(&all, &["endpoint", "status", "-w", "json"]).ok());
    assert_eq!(statuses.len(), 3);
    let leader = statuses[0].leader;
    let ids: BTreeSet<u64> = statuses.iter().map(|s| s.member_id).collect();
    assert_eq!(ids.len(), 3, "member ids must differ: {statuses:?}");
    assert!(
        ids.contains(&leader),
        "leader {leader} is not a member: {statuses:?}"
    );
    for (i, s) in statuses.iter().enumerate() {
        assert_eq!(s.endpoint, c.endpoint(i));
        assert_eq!(s.cluster_id, statuses[0].cluster_id);
        assert_ne!(s.cluster_id, 0);
        assert_eq!(s.leader, leader, "{statuses:?}");
        assert_eq!(s.revision, 1);
        assert!(s.raft_term >= 1, "{s:?}");
        assert!(!s.version.is_empty(), "{s:?}");
    }

    // Simple output: one line per endpoint, ids in hex: endpoint, ID, version, db size,
    // is leader, is learner, raft term, raft index, raft applied index, errors.
    let simple = etcdctl(&all, &["endpoint", "status"]).ok();
    let lines: Vec<&str> = simple.lines().collect();
    assert_eq!(lines.len(), 3, "{simple}");
    for (line, s) in lines.iter().zip(&statuses) {
        let cols: Vec<&str> = line.split(", ").collect();
        assert_eq!(cols.len(), 10, "{line}");
        assert_eq!(cols[0], s.endpoint);
        assert_eq!(cols[1], format!("{:x}", s.member_id));
        assert_eq!(cols[2], s.version);
        assert_eq!(cols[4], (s.member_id == leader).to_string(), "{line}");
        assert_eq!(cols[5], "false", "no learners: {line}");
        assert_eq!(cols[6], s.raft_term.to_string(), "{line}");
        assert!(
            cols[7].parse::<u64>().is_ok() && cols[8].parse::<u64>().is_ok(),
            "{line}"
        );
        assert_eq!(cols[9], "", "no errors: {line}");
    }

    // The raft index moves with writes: the member that served a put has committed it.
    assert_eq!(etcdctl(c.endpoint(1), &["put", "k", "v"]).ok(), "OK\n");
    let after = c.status(1).expect("status");
    assert!(
        after.raft_index > statuses[1].raft_index,
        "before {:?}, after {after:?}",
        statuses[1]
    );
    assert_eq!(after.revision, 2);

    // Health: etcdctl 3.4 prints the verdicts on stderr, in completion order.
    let health = etcdctl(&all, &["endpoint", "health"]);
    assert!(health.success(), "{health}");
    let verdicts: BTreeSet<String> = health
        .stderr
        .lines()
        .filter(|l| l.contains(" is "))
        .map(|l| {
            let (ep, rest) = l.split_once(" is ").expect("verdict line");
            assert!(
                rest.starts_with("healthy: successfully committed proposal: took = "),
                "{l}"
            );
            ep.to_string()
        })
        .collect();
    let expected: BTreeSet<String> = (0..3).map(|i| c.endpoint(i).to_string()).collect();
    assert_eq!(verdicts, expected, "{health}");
    let health_json = parse_json(&etcdctl(&all, &["endpoint", "health", "-w", "json"]).ok());
    let healthy: BTreeSet<String> = health_json
        .as_array()
        .expect("array")
        .iter()
        .map(|h| {
            assert_eq!(h["health"], true, "{h}");
            h["endpoint"].as_str().expect("endpoint").to_string()
        })
        .collect();
    assert_eq!(healthy, expected);

    // Member list through a follower and through the leader: the same three members, named
    // and addressed as they were started, ids as in the status.
    let expected_rows: BTreeSet<String> = (0..3)
        .map(|i| {
            let m = c.member(i);
            format!(
                "{:x}, started, {}, {}, {}, false",
                statuses[i].member_id, m.name, m.peer_url, m.client_url
            )
        })
        .collect();
    for ep in [c.endpoint(0), c.endpoint(2)] {
        let list = etcdctl(ep, &["member", "list"]).ok();
        let rows: BTreeSet<String> = list.lines().map(str::to_string).collect();
        assert_eq!(list.lines().count(), 3, "{list}");
        assert_eq!(rows, expected_rows, "{list}");
    }
    let json = parse_json(&etcdctl(c.endpoint(1), &["member", "list", "-w", "json"]).ok());
    assert_eq!(json["header"]["cluster_id"], statuses[0].cluster_id);
    let members = json["members"].as_array().expect("members");
    assert_eq!(members.len(), 3);
    for m in members {
        let id = m["ID"].as_u64().expect("decimal ID");
        let i = statuses
            .iter()
            .position(|s| s.member_id == id)
            .unwrap_or_else(|| panic!("unknown member {m}"));
        assert_eq!(m["name"], c.member(i).name.as_str());
        assert_eq!(m["peerURLs"], serde_json::json!([c.member(i).peer_url]));
        assert_eq!(m["clientURLs"], serde_json::json!([c.member(i).client_url]));
    }
}

/// A machine without etcdctl must fail these tests with the way out, not skip them.
#[test]
fn a_missing_etcdctl_is_a_failure_that_says_what_to_run() {
    let empty = tempfile::tempdir().expect("temp dir");
    let err = common::find_etcdctl(Some(empty.path().as_os_str()))
        .expect_err("no etcdctl in an empty directory");
    assert!(err.contains("scripts/test.sh"), "{err}");
    assert!(common::find_etcdctl(None).is_err());
    // And where it is installed, it is found.
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("etcdctl"), "").expect("fake file");
    assert_eq!(
        common::find_etcdctl(Some(dir.path().as_os_str())).expect("found"),
        dir.path().join("etcdctl")
    );
}

/// `etcdctl watch`, which runs until killed: its output is read as it comes.
struct Watching {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: String,
}

impl Watching {
    fn start(endpoint: &str, args: &[&str]) -> Watching {
        let mut cmd = common::etcdctl_command(endpoint, args);
        let mut child = cmd
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("etcdctl runs");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Watching {
            child,
            lines,
            seen: String::new(),
        }
    }

    /// Waits until everything printed since the last call is exactly `want`.
    fn expect(&mut self, want: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        while self.seen.len() < want.len() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                }
                Err(_) => break,
            }
        }
        // Anything more that is already on its way is also output the test did not expect.
        std::thread::sleep(std::time::Duration::from_millis(200));
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push_str(&line);
            self.seen.push('\n');
        }
        assert_eq!(std::mem::take(&mut self.seen), want);
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn watch_prints_history_and_then_each_change_as_it_happens() {
    let c = Cluster::start(3);
    let (a, b, d) = (c.endpoint(0), c.endpoint(1), c.endpoint(2));
    assert_eq!(etcdctl(a, &["put", "w", "1"]).ok(), "OK\n"); // rev 2
    assert_eq!(etcdctl(a, &["put", "w", "2"]).ok(), "OK\n"); // rev 3
    assert_eq!(etcdctl(a, &["put", "p/x", "1"]).ok(), "OK\n"); // rev 4

    // From a past revision: history first, then what comes, through another member.
    let mut key = Watching::start(b, &["watch", "--rev=2", "w"]);
    key.expect("PUT\nw\n1\nPUT\nw\n2\n");
    // A prefix with previous versions, from the next revision (so no put can slip in before
    // the watch exists).
    let mut prefix = Watching::start(d, &["watch", "--prefix", "p/", "--prev-kv", "--rev=5"]);
    assert_eq!(etcdctl(a, &["put", "w", "3"]).ok(), "OK\n"); // rev 5
    assert_eq!(etcdctl(d, &["del", "w"]).ok(), "1\n"); // rev 6
    assert_eq!(etcdctl(b, &["put", "p/x", "2"]).ok(), "OK\n"); // rev 7
    assert_eq!(etcdctl(a, &["del", "p/x"]).ok(), "1\n"); // rev 8
    key.expect("PUT\nw\n3\nDELETE\nw\n\n");
    prefix.expect("PUT\np/x\n1\np/x\n2\nDELETE\np/x\n2\np/x\n\n");

    // Behind a compaction: etcdctl says so and ends with its error code. (Asked of the member
    // that took the compaction: a watch is served from what its member has applied, and
    // another member may apply the compaction a moment later.)
    assert_eq!(
        etcdctl(a, &["compaction", "6"]).ok(),
        "compacted revision 6\n"
    );
    let out = etcdctl(a, &["watch", "--rev=2", "w"]);
    assert_eq!(out.code, Some(5), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    assert!(
        out.stderr.contains("required revision has been compacted"),
        "{out}"
    );
}

/// The lease id in etcdctl's "lease <id> granted with TTL(<n>s)" line.
fn granted_id(line: &str, ttl: u32) -> String {
    let id = line
        .strip_prefix("lease ")
        .and_then(|rest| rest.strip_suffix(&format!(" granted with TTL({ttl}s)\n")))
        .unwrap_or_else(|| panic!("not a grant of {ttl}s: {line:?}"));
    assert_eq!(id.len(), 16, "etcdctl prints ids as 16 hex digits: {id}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    id.to_string()
}

#[test]
fn lease_grant_attach_time_to_live_keep_alive_revoke_and_expiry() {
    let c = Cluster::start(3);
    let (a, b, d) = (c.endpoint(0), c.endpoint(1), c.endpoint(2));
    let id = granted_id(&etcdctl(a, &["lease", "grant", "60"]).ok(), 60);
    let lease_flag = format!("--lease={id}");
    assert_eq!(etcdctl(b, &["put", &lease_flag, "lk", "v"]).ok(), "OK\n");
    let ttl = etcdctl(d, &["lease", "timetolive", &id, "--keys"]).ok();
    let remaining_ok = [59, 60].iter().any(|left| {
        ttl == format!(
            "lease {id} granted with TTL(60s), remaining({left}s), attached keys([lk])\n"
        )
    });
    assert!(remaining_ok, "{ttl}");
    assert_eq!(
        etcdctl(a, &["lease", "list"]).ok(),
        format!("found 1 leases\n{id}\n")
    );
    assert_eq!(
        etcdctl(b, &["lease", "keep-alive", "--once", &id]).ok(),
        format!("lease {id} keepalived with TTL(60)\n")
    );
    assert_eq!(
        etcdctl(d, &["lease", "revoke", &id]).ok(),
        format!("lease {id} revoked\n")
    );
    assert_eq!(
        etcdctl(a, &["get", "lk"]).ok(),
        "",
        "the lease's key went with it"
    );
    assert_eq!(
        etcdctl(b, &["lease", "timetolive", &id]).ok(),
        format!("lease {id} already expired\n")
    );
    let again = etcdctl(d, &["lease", "revoke", &id]).err();
    assert!(
        again.contains("Error: failed to revoke lease (etcdserver: requested lease not found)"),
        "{again}"
    );
    let renew = etcdctl(a, &["lease", "keep-alive", "--once", &id]).err();
    assert!(
        renew.contains("Error: etcdserver: requested lease not found"),
        "{renew}"
    );

    // Nobody renews a 2 s lease: its key is gone a few seconds later, on every member.
    let short = granted_id(&etcdctl(b, &["lease", "grant", "2"]).ok(), 2);
    let short_flag = format!("--lease={short}");
    assert_eq!(etcdctl(a, &["put", &short_flag, "brief", "v"]).ok(), "OK\n");
    assert_eq!(etcdctl(d, &["get", "brief"]).ok(), "brief\nv\n");
    let start = std::time::Instant::now();
    while !etcdctl(d, &["get", "brief"]).ok().is_empty() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "an unrenewed 2 s lease must expire"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    for ep in [a, b] {
        assert_eq!(etcdctl(ep, &["get", "brief"]).ok(), "");
    }
    assert_eq!(
        etcdctl(a, &["lease", "timetolive", &short]).ok(),
        format!("lease {short} already expired\n")
    );
}

/// `etcdctl lock` and `etcdctl elect` are client-side recipes over leases, transactions and
/// watches: they work exactly when those three do together.
#[test]
fn lock_is_mutually_exclusive_and_elect_names_the_leader() {
    let c = Cluster::start(3);
    let (a, b, d) = (c.endpoint(0), c.endpoint(1), c.endpoint(2));
    let marks = tempfile::tempdir().unwrap();
    let mark = |name: &str| marks.path().join(name);
    let holder_script = format!(
        "touch {}; sleep 2; touch {}",
        mark("a-held").display(),
        mark("a-done").display()
    );
    let mut holder = common::etcdctl_command(a, &["lock", "job", "--", "sh", "-c", &holder_script])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("etcdctl runs");
    let start = std::time::Instant::now();
    while !mark("a-held").exists() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(15),
            "the first locker never got the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The second locker, through another member, runs its command only once the first has
    // finished: it finds the first one's end mark.
    let waiter_script = format!(
        "test -e {} && touch {}",
        mark("a-done").display(),
        mark("b-after-a").display()
    );
    let waiter = etcdctl(b, &["lock", "job", "--", "sh", "-c", &waiter_script]);
    assert!(waiter.success(), "{waiter}");
    assert!(
        mark("b-after-a").exists(),
        "the second locker ran while the first held the lock"
    );
    assert!(holder.wait().unwrap().success());

    // A campaign through one member; an observer through another names its proposal.
    let candidate = Watching::start(d, &["elect", "ballot", "alice"]);
    let observer = Watching::start(a, &["elect", "-l", "ballot"]);
    let deadline = std::time::Duration::from_secs(15);
    let key = observer
        .lines
        .recv_timeout(deadline)
        .expect("the leader's key");
    assert!(key.starts_with("ballot/"), "{key}");
    let value = observer
        .lines
        .recv_timeout(deadline)
        .expect("the leader's proposal");
    assert_eq!(value, "alice");
    let elected = candidate
        .lines
        .recv_timeout(deadline)
        .expect("the candidate's key");
    assert_eq!(elected, key, "the candidate prints the key it won with");
}

#[test]
fn move_leader_hands_the_lead_to_the_named_member_and_nothing_is_lost() {
    let c = Cluster::start(3);
    let all = c.endpoints();
    let old = c.leader();
    let new = (old + 1) % 3;
    let id = |i: usize| c.status(i).expect("status").member_id;
    let (old_id, new_id) = (id(old), id(new));
    etcdctl(c.endpoint(new), &["put", "moved/1", "before"]).ok();

    // etcdctl finds the leader among the endpoints and asks it; ids are hex, as etcdctl prints.
    let out = etcdctl(&all, &["move-leader", &format!("{new_id:x}")]).ok();
    assert_eq!(
        out.trim(),
        format!("Leadership transferred from {old_id:x} to {new_id:x}")
    );
    assert_eq!(c.leader(), new, "every member agrees on the new leader");
    etcdctl(c.endpoint(old), &["put", "moved/2", "after"]).ok();
    let range = parse_range(
        &etcdctl(
            c.endpoint(old),
            &["get", "--prefix", "moved/", "-w", "json"],
        )
        .ok(),
    );
    let values: Vec<&str> = range.kvs.iter().map(|kv| kv.value.as_str()).collect();
    assert_eq!(values, ["before", "after"]);

    // Back again, through a list that names only the new leader; then an id no member has.
    let back = etcdctl(c.endpoint(new), &["move-leader", &format!("{old_id:x}")]).ok();
    assert!(back.contains(&format!("to {old_id:x}")), "{back}");
    assert_eq!(c.leader(), old);
    let unknown = etcdctl(&all, &["move-leader", "1234"]);
    assert!(!unknown.success(), "{unknown}");
    assert!(
        unknown.stderr.contains("etcdserver: bad leader transferee"),
        "{unknown}"
    );
}

#[test]
fn defrag_and_alarms_as_an_operator_runs_them() {
    let c = Cluster::start(3);
    for i in 0..20 {
        etcdctl(c.endpoint(i % 3), &["put", &format!("d/{i}"), "v"]).ok();
    }
    etcdctl(c.endpoint(0), &["del", "--prefix", "d/"]).ok();
    let status = parse_status(&etcdctl(c.endpoint(0), &["endpoint", "status", "-w", "json"]).ok());
    etcdctl(c.endpoint(0), &["compact", &status[0].revision.to_string()]).ok();
    // One line per endpoint, in order.
    let out = etcdctl(&c.endpoints(), &["defrag"]).ok();
    let expected: Vec<String> = (0..3)
        .map(|i| format!("Finished defragmenting etcd member[{}]", c.endpoint(i)))
        .collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);
    // Nothing raised: the list is empty and a disarm has nothing to do.
    assert_eq!(etcdctl(&c.endpoints(), &["alarm", "list"]).ok(), "");
    assert_eq!(etcdctl(&c.endpoints(), &["alarm", "disarm"]).ok(), "");
    // The data is all there after the defragment: the deletes and nothing else.
    let range = parse_range(&etcdctl(c.endpoint(2), &["get", "--prefix", "d/", "-w", "json"]).ok());
    assert_eq!(range.count, 0);
    etcdctl(c.endpoint(1), &["put", "d/after", "v"]).ok();
}

#[test]
fn periodic_auto_compaction_compacts_history_older_than_the_retention() {
    let c = Cluster::start_with_flags(
        3,
        &[
            "--auto-compaction-mode=periodic",
            "--auto-compaction-retention=2s",
        ],
    );
    let first = parse_range(&etcdctl(c.endpoint(0), &["put", "ac", "v1", "-w", "json"]).ok());
    let first = first.revision;
    etcdctl(c.endpoint(1), &["put", "ac", "v2"]).ok();
    assert_eq!(
        etcdctl(
            c.endpoint(2),
            &["get", "ac", &format!("--rev={first}"), "--print-value-only"]
        )
        .ok(),
        "v1\n",
        "history is there at first"
    );
    // Within a few retentions the leader compacts through a revision at least 2 s old.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let old = etcdctl(c.endpoint(2), &["get", "ac", &format!("--rev={first}")]);
        if !old.success() {
            assert!(
                old.stderr.contains("required revision has been compacted"),
                "{old}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "revision {first} still readable after 20 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // The present is untouched.
    assert_eq!(
        etcdctl(c.endpoint(0), &["get", "ac", "--print-value-only"]).ok(),
        "v2\n"
    );
}

/// `endpoint hashkv` names the compaction revision, and -1 before any compaction, as etcd
/// 3.4's does.
#[test]
fn hashkv_reports_the_compaction_revision_and_minus_one_before_any() {
    let cluster = Cluster::start(1);
    let ep = cluster.endpoint(0);
    let compact_revision = || {
        let v = parse_json(&etcdctl(ep, &["endpoint", "hashkv", "-w", "json"]).ok());
        v[0]["HashKV"]["compact_revision"].as_i64()
    };
    etcdctl(ep, &["put", "hk", "1"]).ok();
    etcdctl(ep, &["put", "hk", "2"]).ok();
    assert_eq!(compact_revision(), Some(-1));
    let revision =
        parse_status(&etcdctl(ep, &["endpoint", "status", "-w", "json"]).ok())[0].revision;
    etcdctl(ep, &["compaction", &revision.to_string()]).ok();
    assert_eq!(compact_revision(), Some(revision));
}
