//! Alarms a client raises, as etcd 3.4 lets it (`Maintenance.Alarm` with ACTIVATE; etcdctl has
//! no command for it, so the `etcd-client` crate's `alarm` call raises them here): the alarm
//! is replicated state, so every member lists it and turns unhealthy; NOSPACE refuses puts,
//! transactions that put and lease grants with "etcdserver: mvcc: database space exceeded"
//! while reads and deletes work; CORRUPT refuses every write with "etcdserver: corrupt
//! cluster" while reads work; `etcdctl alarm disarm` clears them.
//!
//! Runs against etcd 3.4 too (`SYNOD_INTEROP_TARGET=etcd`), with the same expectations.

use crate::common;
use crate::common::{etcdctl, etcdctl_with_stdin, http, parse_json, runtime, Cluster};
use etcd_client::{AlarmAction, AlarmOptions, AlarmType, Client, ConnectOptions};
use std::time::{Duration, Instant};

/// Every request is bounded: a hung server fails the test instead of hanging it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Generous: a loaded 2-core machine may take seconds to apply on a follower.
const EVENT_DEADLINE: Duration = Duration::from_secs(60);

/// Sends one alarm request to `endpoint` and answers the alarms listed, as (member, type).
fn alarm(endpoint: &str, action: AlarmAction, kind: AlarmType, member: u64) -> Vec<(u64, i32)> {
    runtime().block_on(async {
        let mut client = Client::connect(
            [endpoint],
            Some(ConnectOptions::new().with_timeout(REQUEST_TIMEOUT)),
        )
        .await
        .unwrap_or_else(|e| panic!("connect to {endpoint}: {e}"));
        let mut options = AlarmOptions::new();
        options.with_member(member);
        let answer = client
            .alarm(action, kind, Some(options))
            .await
            .unwrap_or_else(|e| panic!("alarm {action:?} {kind:?}: {e}"));
        answer
            .alarms()
            .iter()
            .map(|m| (m.member_id(), m.alarm() as i32))
            .collect()
    })
}

/// Waits (bounded) until member `i`'s `/health` answers `status`, then checks etcd's body.
#[track_caller]
fn wait_health(cluster: &Cluster, i: usize, status: u16) {
    let deadline = Instant::now() + EVENT_DEADLINE;
    loop {
        let answer = http("GET", cluster.endpoint(i), "/health").expect("/health");
        if answer.status == status {
            let want = if status == 200 { "true" } else { "false" };
            assert_eq!(
                parse_json(&answer.body)["health"].as_str(),
                Some(want),
                "{answer:?}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "member {i}'s /health is not {status} within {EVENT_DEADLINE:?}: {answer:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// etcdctl's error line for a refused command.
#[track_caller]
fn refused(out: common::Output, message: &str) {
    let err = out.err();
    assert!(err.contains(message), "want {message:?}: {err}");
}

#[test]
fn an_alarm_a_client_raises_is_replicated_refuses_writes_as_etcd_and_is_disarmed() {
    let mut c = Cluster::start(3);
    let member = c.status(1).expect("status").member_id;
    etcdctl(c.endpoint(0), &["put", "k", "v"]).ok();
    etcdctl(c.endpoint(0), &["put", "gone", "v"]).ok();
    assert_eq!(
        alarm(
            c.endpoint(0),
            AlarmAction::Activate,
            AlarmType::Nospace,
            member
        ),
        [(member, AlarmType::Nospace as i32)]
    );
    // Stored, not remembered: it outlives a restart of every member.
    for i in 0..3 {
        c.stop(i);
    }
    c.restart_all();
    let (a, b, d) = (c.endpoint(0), c.endpoint(1), c.endpoint(2));

    // NOSPACE, raised through one member for another: every member lists it (a list goes
    // through the log, as in etcd) and turns unhealthy once it applied it.
    let nospace = (member, AlarmType::Nospace as i32);
    let listed = format!("memberID:{member} alarm:NOSPACE \n");
    for ep in [a, b, d] {
        assert_eq!(etcdctl(ep, &["alarm", "list"]).ok(), listed);
    }
    for i in 0..3 {
        wait_health(&c, i, 503);
    }
    let status = parse_json(&etcdctl(b, &["endpoint", "status", "-w", "json"]).ok());
    assert_eq!(
        status[0]["Status"]["errors"],
        serde_json::json!([listed.trim_end_matches('\n')])
    );
    // Raising it again changes nothing and lists it.
    assert_eq!(
        alarm(b, AlarmAction::Activate, AlarmType::Nospace, member),
        [nospace]
    );

    // Writes that grow the store are refused; reads and deletes work.
    let no_space = "Error: etcdserver: mvcc: database space exceeded";
    refused(etcdctl(b, &["put", "k", "w"]), no_space);
    refused(
        etcdctl_with_stdin(d, &["txn"], Some("\nput k w\n\n\n")),
        no_space,
    );
    refused(
        etcdctl(a, &["lease", "grant", "60"]),
        "Error: failed to grant lease (etcdserver: mvcc: database space exceeded)",
    );
    assert_eq!(etcdctl(d, &["get", "k"]).ok(), "k\nv\n");
    assert_eq!(etcdctl(b, &["del", "gone"]).ok(), "1\n");

    // `etcdctl alarm disarm` lists what it cleared; then writes work and members are healthy.
    assert_eq!(etcdctl(d, &["alarm", "disarm"]).ok(), listed);
    assert_eq!(etcdctl(a, &["alarm", "list"]).ok(), "");
    assert_eq!(etcdctl(b, &["put", "k", "w"]).ok(), "OK\n");
    for i in 0..3 {
        wait_health(&c, i, 200);
    }

    // CORRUPT refuses every write, deletes and compactions included; reads (a read-only
    // transaction too) work. A type-filtered list shows only its type.
    let corrupt = (member, AlarmType::Corrupt as i32);
    assert_eq!(
        alarm(b, AlarmAction::Activate, AlarmType::Corrupt, member),
        [corrupt]
    );
    assert_eq!(
        alarm(d, AlarmAction::Get, AlarmType::Nospace, 0),
        Vec::<(u64, i32)>::new()
    );
    let corrupt_cluster = "Error: etcdserver: corrupt cluster";
    refused(etcdctl(a, &["put", "k", "x"]), corrupt_cluster);
    refused(etcdctl(d, &["del", "k"]), corrupt_cluster);
    refused(etcdctl(b, &["compaction", "2"]), corrupt_cluster);
    assert_eq!(etcdctl(d, &["get", "k"]).ok(), "k\nw\n");
    assert_eq!(
        etcdctl_with_stdin(a, &["txn"], Some("\nget k\n\n\n")).ok(),
        "SUCCESS\n\nk\nw\n"
    );
    wait_health(&c, 2, 503);
    // Cleared by member and type: listed once, then there is nothing to clear.
    assert_eq!(
        alarm(a, AlarmAction::Deactivate, AlarmType::Corrupt, member),
        [corrupt]
    );
    assert_eq!(
        alarm(a, AlarmAction::Deactivate, AlarmType::Corrupt, member),
        Vec::<(u64, i32)>::new()
    );
    assert_eq!(etcdctl(d, &["put", "k", "x"]).ok(), "OK\n");
    for i in 0..3 {
        wait_health(&c, i, 200);
    }
}
