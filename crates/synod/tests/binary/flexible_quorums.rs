//! `synod node --quorums`: Flexible Paxos in real processes. Five members with phase-2
//! quorums of two serve puts and gets, through a leader kill (the four left are a phase-1
//! quorum) and with only the leader and one follower left (a phase-2 quorum: writes go on where
//! majorities would stop). A rule whose quorums need not meet is refused at start, and the rule
//! is recorded in the data directory: a restart without the flag keeps it, one with another
//! rule is refused. Synod only (etcd has no such flag).

use crate::common::{etcdctl, get, put_within, synod_node, Cluster, Target};
use std::process::Command;
use std::time::{Duration, Instant};

const RULE: &str = "flexible:4,2";

#[test]
fn five_members_with_phase2_quorums_of_two_serve_through_a_leader_kill() {
    if Target::from_env() == Target::Etcd {
        eprintln!("--quorums is Synod's own flag; nothing to compare against etcd");
        return;
    }
    let mut cluster = Cluster::start_with_flags(5, &["--quorums", RULE]);
    let all = cluster.endpoints();
    for i in 0..20 {
        put_within(
            &all,
            &format!("k{i:02}"),
            &format!("v{i}"),
            Duration::from_secs(20),
        );
    }
    let old = cluster.leader();
    cluster.kill(old);
    // Four members left: a phase-1 quorum, so one of them is elected and writes resume.
    let new = cluster.leader();
    assert_ne!(new, old);
    let live = cluster.endpoints();
    for i in 20..30 {
        put_within(
            &live,
            &format!("k{i:02}"),
            &format!("v{i}"),
            Duration::from_secs(20),
        );
    }
    cluster.restart(old);
    // Only the leader and one follower left: a phase-2 quorum keeps choosing values (three of
    // five, a majority, would be needed without flexible quorums).
    let leader = cluster.leader();
    let followers: Vec<usize> = (0..5).filter(|&i| i != leader).collect();
    for &f in &followers[1..] {
        cluster.kill(f);
    }
    let pair = cluster.endpoints();
    for i in 30..40 {
        put_within(
            &pair,
            &format!("k{i:02}"),
            &format!("v{i}"),
            Duration::from_secs(20),
        );
    }
    for i in 0..40 {
        assert_eq!(
            get(cluster.endpoint(leader), &format!("k{i:02}")),
            Some(format!("v{i}")),
            "k{i:02} at the leader"
        );
    }
    // Everyone back (each keeps the rule: restarts use the same flags), and every member
    // serves every key.
    for &f in &followers[1..] {
        cluster.restart(f);
    }
    let everyone = cluster.endpoints();
    put_within(&everyone, "last", "1", Duration::from_secs(20));
    for i in 0..5 {
        assert_eq!(
            get(cluster.endpoint(i), "k39"),
            Some("v39".into()),
            "n{}",
            i + 1
        );
    }
}

#[test]
fn a_rule_whose_quorums_need_not_meet_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let args: Vec<String> = [
        "--name=n1",
        "--initial-cluster=n1=http://127.0.0.1:1,n2=http://127.0.0.1:2,n3=http://127.0.0.1:3",
        "--listen-peer-urls=http://127.0.0.1:1",
        "--quorums=flexible:2,1",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--data-dir={}", dir.path().join("n1").display())])
    .collect();
    let (code, out) = synod_node(&args, Duration::from_secs(30));
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains("--quorums flexible:2,1") && out.contains("must exceed 3 members"),
        "{out}"
    );
    assert!(
        !dir.path().join("n1").join("meta").exists(),
        "nothing initialized"
    );
}

#[test]
fn a_restart_keeps_the_recorded_rule_and_refuses_another() {
    if Target::from_env() == Target::Etcd {
        return;
    }
    let mut cluster = Cluster::start_with_flags(1, &["--quorums", "flexible:1,1"]);
    put_within(cluster.endpoint(0), "a", "1", Duration::from_secs(20));
    let data_dir = cluster.member(0).data_dir.clone();
    cluster.stop(0);
    assert!(data_dir.join("quorum").exists(), "the rule is recorded");
    let member = cluster.member(0);
    let base: Vec<String> = vec![
        format!("--name={}", member.name),
        format!("--data-dir={}", data_dir.display()),
        format!("--listen-client-urls={}", member.client_url),
        format!("--listen-peer-urls={}", member.peer_url),
        format!("--initial-cluster={}={}", member.name, member.peer_url),
    ];
    // Another rule: refused, naming the recorded one.
    let mut other = base.clone();
    other.push("--quorums=grid:1x1".into());
    other.push("--initial-cluster-token=x".into());
    let (code, out) = synod_node(&other, Duration::from_secs(30));
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains("was created with --quorums flexible:1,1"),
        "{out}"
    );
    // No flag: it runs under the recorded rule. Were it to run under majority, its cluster id
    // (which holds a rule other than majority) would not be the one in its meta file, and it
    // would refuse its own data directory.
    let token = format!(
        "synod-interop-{}",
        data_dir
            .parent()
            .and_then(|d| d.file_name())
            .expect("the harness keeps data directories in its temp dir")
            .to_string_lossy()
    );
    let mut same = base;
    same.push(format!("--initial-cluster-token={token}"));
    let log = std::fs::File::create(data_dir.with_extension("restart.log")).expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_synod"))
        .arg("node")
        .args(&same)
        .env("SYNOD_WAL_SEGMENT_BYTES", (16u64 << 20).to_string())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("synod node starts");
    let start = Instant::now();
    let served = loop {
        let out = etcdctl(&member.client_url, &["get", "a", "--print-value-only"]);
        if out.success() && out.stdout.trim() == "1" {
            break true;
        }
        if start.elapsed() > Duration::from_secs(30) || child.try_wait().ok().flatten().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // Our own child, by its handle.
    child.kill().ok();
    child.wait().ok();
    let log = std::fs::read_to_string(data_dir.with_extension("restart.log")).unwrap_or_default();
    assert!(
        served,
        "restarted without --quorums, it did not serve: {log}"
    );
    assert!(log.contains("recorded in the data directory"), "{log}");
}
