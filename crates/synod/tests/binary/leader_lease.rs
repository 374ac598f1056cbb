//! `synod node --experimental-leader-lease` in real processes: three members whose leader
//! answers linearizable gets under its lease, with no read-index round (the figures in
//! `/metrics` say which way each read went), and a leader stopped with SIGSTOP while the others
//! elect a new one and overwrite a key, which on SIGCONT must not answer the old value: its
//! clock is caught up from `Instant` (monotonic) before it serves, so it sees its lease ran
//! out while it slept. Synod only (etcd 3.4 has no such flag).
//!
//! Timings are generous for a loaded 2-core machine: an election timeout of 2 s gives a lease
//! of about 1.96 s renewed every 100 ms heartbeat, so a lease lapses only on a stall of
//! more than 1.8 s. Every wait polls an event with a deadline.

use crate::common::{
    etcdctl, etcdctl_command, http, parse_range, run_bounded, sample, wait_for, Cluster, Target,
};
use std::time::Duration;

const FLAGS: &[&str] = &[
    "--experimental-leader-lease",
    "--heartbeat-interval=100",
    "--election-timeout=2000",
];
/// Gets served at the leader in the leased-read test.
const GETS: u64 = 20;

/// A counter of member `i`'s `/metrics` (0 while it has not moved).
fn counter(cluster: &Cluster, i: usize, name: &str) -> f64 {
    let answer = http("GET", cluster.endpoint(i), "/metrics")
        .unwrap_or_else(|e| panic!("scrape of member {i}: {e}"));
    assert_eq!(answer.status, 200, "/metrics of member {i}: {answer:?}");
    sample(&answer.body, name, &[]).unwrap_or(0.0)
}

const LEASED: &str = "synod_paxos_leased_reads_total";
const ROUNDS: &str = "synod_paxos_read_index_rounds_total";

fn put_within(endpoints: &str, key: &str, value: &str) {
    wait_for(&format!("put {key}={value} at {endpoints}"), || {
        etcdctl(endpoints, &["put", key, value])
            .success()
            .then_some(())
    });
}

/// A linearizable get of `key` at `endpoint`: its value, or the error etcdctl printed.
fn get(endpoint: &str, key: &str) -> Result<Option<String>, String> {
    let out = etcdctl(endpoint, &["get", key, "-w", "json"]);
    if !out.success() {
        return Err(out.to_string());
    }
    Ok(parse_range(&out.stdout)
        .kvs
        .first()
        .map(|kv| kv.value.clone()))
}

fn skip_for_etcd() -> bool {
    if Target::from_env() == Target::Etcd {
        eprintln!(
            "--experimental-leader-lease is Synod's own flag; nothing to compare against etcd"
        );
        return true;
    }
    false
}

#[test]
fn the_leader_serves_linearizable_gets_under_its_lease_with_no_read_index_round() {
    if skip_for_etcd() {
        return;
    }
    let cluster = Cluster::start_with_flags(3, FLAGS);
    put_within(&cluster.endpoints(), "k", "v1");
    let leader = cluster.leader();
    let endpoint = cluster.endpoint(leader).to_string();
    // The first get may come before the lease's first quorum of echoes; after it the lease is
    // renewed every heartbeat.
    wait_for("a leased read at the leader", || {
        let before = counter(&cluster, leader, LEASED);
        assert_eq!(get(&endpoint, "k"), Ok(Some("v1".into())));
        (counter(&cluster, leader, LEASED) > before).then_some(())
    });
    let leased = counter(&cluster, leader, LEASED);
    let rounds = counter(&cluster, leader, ROUNDS);
    for _ in 0..GETS {
        assert_eq!(get(&endpoint, "k"), Ok(Some("v1".into())));
    }
    // The figures follow the member's counters a moment later (at its next input or tick).
    wait_for("every get at the leader counted as a leased read", || {
        (counter(&cluster, leader, LEASED) >= leased + GETS as f64).then_some(())
    });
    assert_eq!(
        counter(&cluster, leader, ROUNDS),
        rounds,
        "no read-index round ran for gets under a lease"
    );
    // A follower's get still goes through the leader's read index (leases are the leader's).
    let follower = (0..3).find(|&i| i != leader).expect("a follower");
    assert_eq!(get(cluster.endpoint(follower), "k"), Ok(Some("v1".into())));
}

#[test]
fn a_leader_woken_from_sigstop_after_a_new_election_does_not_serve_a_stale_read() {
    if skip_for_etcd() {
        return;
    }
    let cluster = Cluster::start_with_flags(3, FLAGS);
    put_within(&cluster.endpoints(), "k", "old");
    let old = cluster.leader();
    let old_endpoint = cluster.endpoint(old).to_string();
    wait_for("a leased read at the leader", || {
        let before = counter(&cluster, old, LEASED);
        assert_eq!(get(&old_endpoint, "k"), Ok(Some("old".into())));
        (counter(&cluster, old, LEASED) > before).then_some(())
    });

    cluster.signal(old, libc::SIGSTOP);
    let others: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let old_id = cluster.status(others[0]).expect("a status").leader;
    wait_for("the others elect a new leader", || {
        let leaders: Vec<u64> = others
            .iter()
            .filter_map(|&i| cluster.status(i).ok())
            .map(|s| s.leader)
            .collect();
        (leaders.len() == 2 && leaders[0] == leaders[1] && leaders[0] != old_id && leaders[0] != 0)
            .then_some(())
    });
    let endpoints: Vec<&str> = others.iter().map(|&i| cluster.endpoint(i)).collect();
    put_within(&endpoints.join(","), "k", "new");

    // A get sent to the sleeping leader; it wakes while the get waits. Whatever it handles
    // first on waking (the get or its tick), its lease is over by its monotonic clock.
    let cmd = etcdctl_command(&old_endpoint, &["get", "k", "-w", "json"]);
    let reader = std::thread::spawn(move || run_bounded(cmd, None, Duration::from_secs(30)));
    // Not an assertion: only the likelier order (the get queued before the wake-up).
    std::thread::sleep(Duration::from_millis(300));
    cluster.signal(old, libc::SIGCONT);
    let out = reader.join().expect("the reader thread");
    if out.success() {
        let value = parse_range(&out.stdout)
            .kvs
            .first()
            .map(|kv| kv.value.clone());
        assert_eq!(value.as_deref(), Some("new"), "a stale read after SIGCONT");
    } else {
        // Refusing is safe too (the woken member found it lost its lead mid-read).
        eprintln!("the get at the woken leader failed: {out}");
    }
    // And it rejoins: its linearizable gets answer the new value.
    wait_for("the woken member serves the new value", || {
        match get(&old_endpoint, "k") {
            Ok(v) => {
                assert_eq!(
                    v.as_deref(),
                    Some("new"),
                    "a stale read at the woken member"
                );
                Some(())
            }
            Err(_) => None,
        }
    });
}
