//! `synod node --auxiliary`: Cheap Paxos in real processes. Two main acceptors and one
//! auxiliary (f = 1, `--quorums cheap:2`): the auxiliary refuses clients the way etcd refuses a
//! learner and is listed with no client URL; while both mains run it logs nothing (each
//! value is logged by the mains alone); once a main is killed it steps in and writes go on,
//! the dead main is dropped by a reconfiguration and the auxiliary goes back to idle, and it
//! stays idle when the dropped main comes back. Every acknowledged write is read back.
//! Contradictory flags are refused at start. Synod only (etcd has no such flag).

use crate::common::{
    etcdctl, get, http, parse_json, put, put_within, synod_node, wait_for, Cluster, Target,
};
use std::time::Duration;

/// n1 and n2 are the mains (the first two by name), n3 the auxiliary.
const RULE: &str = "cheap:2";
const AUX: usize = 2;
/// Larger than any record an auxiliary writes without a value (a promise is tens of bytes):
/// an auxiliary whose log grew by less than this logged no value of this test.
const VALUE_BYTES: usize = 1024;
const PUT_BOUND: Duration = Duration::from_secs(30);
/// Slow timers, so that a main stalled by a loaded machine (an fsync, a descheduled process)
/// is not taken for a dead one: the leader engages the auxiliary after half an election
/// timeout of silence, which with the default 300 ms a loaded 2-core CI machine can reach.
const TIMERS: [&str; 2] = ["--election-timeout=2000", "--heartbeat-interval=100"];

/// Bytes member `i` appended to its log since it started (every persist batch it synced).
fn logged_bytes(cluster: &Cluster, i: usize) -> f64 {
    cluster.metric(i, "synod_wal_batch_bytes_sum", &[])
}

/// Log entries member `i` holds in memory (on the auxiliary: values not yet known held by
/// every main).
fn retained(cluster: &Cluster, i: usize) -> f64 {
    cluster.metric(i, "synod_paxos_retained_entries", &[])
}

/// Member `i`'s `/health`: the status code and the body as JSON.
fn health(cluster: &Cluster, i: usize) -> (u16, serde_json::Value) {
    let answer = http("GET", cluster.endpoint(i), "/health").expect("/health");
    (answer.status, parse_json(&answer.body))
}

/// Puts keys `k<i>` for each `i` of `keys` (values of [`VALUE_BYTES`] and more) through
/// `endpoints`, each retried through elections; each acknowledged one joins `acked`.
fn put_keys(endpoints: &str, keys: std::ops::Range<usize>, acked: &mut Vec<(String, String)>) {
    for i in keys {
        let (k, v) = (
            format!("k{i:03}"),
            format!("{i:04}{}", "v".repeat(VALUE_BYTES)),
        );
        put_within(endpoints, &k, &v, PUT_BOUND);
        acked.push((k, v));
    }
}

#[test]
fn two_mains_and_an_auxiliary_write_through_a_main_kill_and_the_auxiliary_goes_back_to_idle() {
    if Target::from_env() == Target::Etcd {
        eprintln!("--auxiliary is Synod's own flag; nothing to compare against etcd");
        return;
    }
    let mut cluster = Cluster::start_with_member_flags(
        3,
        &["--quorums", RULE, TIMERS[0], TIMERS[1]],
        &[&[], &[], &["--auxiliary"]],
    );
    let mains = format!("{},{}", cluster.endpoint(0), cluster.endpoint(1));
    let mut acked: Vec<(String, String)> = Vec::new();

    // The role, for `synod top`.
    assert_eq!(
        cluster.metric(AUX, "synod_paxos_role", &["role=\"auxiliary\""]),
        1.0
    );
    // Healthy as an auxiliary once a leader answered its hello (etcd 3.5's shape), though it
    // holds no store to read from.
    let body = wait_for("the idle auxiliary's /health to say healthy", || {
        let (status, body) = health(&cluster, AUX);
        (status == 200).then_some(body)
    });
    assert_eq!(body, serde_json::json!({"health": "true", "reason": ""}));
    // A client is refused as etcd refuses a learner (Unavailable), told the member is an
    // auxiliary and where the mains are (once their announcements reached it).
    let refusal = wait_for("the auxiliary to name both mains in its refusal", || {
        let out = etcdctl(cluster.endpoint(AUX), &["put", "k", "v"]);
        assert!(!out.success(), "an auxiliary took a put: {out}");
        let text = out.stderr;
        assert!(
            text.contains("etcdserver: rpc not supported for auxiliary member n3:"),
            "{text}"
        );
        (text.contains(cluster.endpoint(0)) && text.contains(cluster.endpoint(1))).then_some(text)
    });
    assert!(refusal.contains("Unavailable"), "{refusal}");
    // Listed with no client URL: clients that sync endpoints from the list never pick it.
    let list = parse_json(&etcdctl(&mains, &["member", "list", "-w", "json"]).ok());
    let members = list["members"].as_array().expect("members");
    assert_eq!(members.len(), 3, "{list}");
    for m in members {
        let urls = m
            .get("clientURLs")
            .and_then(|u| u.as_array())
            .map_or(0, Vec::len);
        let aux = m["name"] == "n3";
        assert_eq!(urls, usize::from(!aux), "{m}");
    }

    // The normal case: the mains log every value, the auxiliary none.
    let aux_before = logged_bytes(&cluster, AUX);
    let main_before = logged_bytes(&cluster, 0);
    put_keys(&mains, 0..30, &mut acked);
    let main_grew = logged_bytes(&cluster, 0) - main_before;
    let aux_grew = logged_bytes(&cluster, AUX) - aux_before;
    assert!(
        main_grew >= (30 * VALUE_BYTES) as f64,
        "a main logged {main_grew} bytes for 30 values of {VALUE_BYTES}"
    );
    assert!(
        aux_grew < VALUE_BYTES as f64,
        "the auxiliary logged {aux_grew} bytes while both mains ran"
    );
    // It holds no value (any slot it accepted at the start, while a main was slow, is
    // forgotten once the mains hold it) and applies nothing: its store stays at an empty
    // store's revision though the mains applied 30 puts.
    wait_for("the auxiliary to hold no value", || {
        (retained(&cluster, AUX) == 0.0).then_some(())
    });
    let revision = |i: usize| {
        let status =
            parse_json(&etcdctl(cluster.endpoint(i), &["endpoint", "status", "-w", "json"]).ok());
        // Go's JSON omits zero values.
        status[0]["Status"]["header"]["revision"]
            .as_i64()
            .unwrap_or(0)
    };
    assert!(revision(0) >= 30, "a main applied the puts");
    // An empty store is at revision 1, as etcd's.
    assert_eq!(revision(AUX), 1, "the auxiliary applied nothing");

    // A main dies (the leader, so the survivor must win phase 1 with the auxiliary too).
    let dead = cluster.leader();
    assert!(dead < AUX, "an auxiliary never leads");
    let survivor = 1 - dead;
    cluster.kill(dead);
    let aux_before = logged_bytes(&cluster, AUX);
    put_keys(cluster.endpoint(survivor), 30..50, &mut acked);
    // Those values were chosen by the survivor and the auxiliary: it logged them.
    let aux_grew = logged_bytes(&cluster, AUX) - aux_before;
    assert!(
        aux_grew >= (20 * VALUE_BYTES) as f64,
        "the auxiliary logged only {aux_grew} bytes while a main was down"
    );
    assert!(cluster.metric(survivor, "synod_paxos_auxiliaries_engaged_total", &[]) >= 1.0);
    let retained_engaged = retained(&cluster, AUX);
    wait_for("the leader to drop the dead main", || {
        (cluster.metric(survivor, "synod_paxos_mains_dropped_total", &[]) >= 1.0).then_some(())
    });
    // Back to idle: once the smaller configuration is in force (and the auxiliary learned
    // it), writes no longer reach it.
    let mut next = 50;
    let mut idle = || {
        let before = logged_bytes(&cluster, AUX);
        put_keys(cluster.endpoint(survivor), next..next + 5, &mut acked);
        next += 5;
        logged_bytes(&cluster, AUX) - before < VALUE_BYTES as f64
    };
    wait_for("the auxiliary to go back to idle", || idle().then_some(()));
    // Once the mains (the survivor) hold what it accepted, the auxiliary forgets it: without
    // pruning it would keep every one of the 20 values it accepted.
    let left = wait_for("the auxiliary to forget the values the mains hold", || {
        let n = retained(&cluster, AUX);
        (n < 5.0).then_some(n)
    });
    eprintln!(
        "auxiliary's retained entries: {retained_engaged} after the engaged puts, {left} once idle"
    );
    // Still healthy as an auxiliary: it hears from the leader at each hello.
    wait_for("the auxiliary's /health after the drop", || {
        (health(&cluster, AUX).0 == 200).then_some(())
    });

    // The dropped main comes back with its old directory: it is no longer in the
    // configuration, and neither it nor its return engages the auxiliary again.
    let initial_cluster = (0..3)
        .map(|i| format!("{}={}", cluster.member(i).name, cluster.member(i).peer_url))
        .collect::<Vec<_>>()
        .join(",");
    cluster.start_added(dead, &initial_cluster);
    let before = logged_bytes(&cluster, AUX);
    put_keys(cluster.endpoint(survivor), next..next + 10, &mut acked);
    let aux_grew = logged_bytes(&cluster, AUX) - before;
    assert!(
        aux_grew < VALUE_BYTES as f64,
        "the auxiliary logged {aux_grew} bytes after the drop"
    );

    for (k, v) in &acked {
        assert_eq!(
            get(cluster.endpoint(survivor), k).as_deref(),
            Some(v.as_str()),
            "{k}"
        );
    }
    // The survivor and the auxiliary alone are the cluster now; the auxiliary still refuses.
    assert!(put(cluster.endpoint(AUX), "x", "y").is_err());
    assert!(
        retained(&cluster, AUX) < 5.0,
        "idle, it retains nothing new"
    );

    // With no leader left to hear from, its /health says so.
    cluster.kill(survivor);
    let (status, body) = wait_for("the auxiliary's /health to fail without a leader", || {
        let (status, body) = health(&cluster, AUX);
        (status != 200).then_some((status, body))
    });
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["health"], "false", "{body}");
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("no leader heard from"), "{body}");
}

#[test]
fn contradictory_auxiliary_flags_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = "n1=http://127.0.0.1:1,n2=http://127.0.0.1:2,n3=http://127.0.0.1:3";
    let run = |name: &str, flags: &[&str]| {
        let data = dir.path().join(name);
        let port = &name[1..];
        let mut args: Vec<String> = vec![
            format!("--name={name}"),
            format!("--listen-peer-urls=http://127.0.0.1:{port}"),
            format!("--initial-cluster={cluster}"),
            format!("--data-dir={}", data.display()),
        ];
        args.extend(flags.iter().map(|f| f.to_string()));
        let (code, out) = synod_node(&args, Duration::from_secs(30));
        assert_ne!(code, Some(0), "{out}");
        assert!(!data.join("meta").exists(), "nothing initialized: {out}");
        out
    };
    let out = run("n3", &["--auxiliary"]);
    assert!(
        out.contains("--auxiliary") && out.contains("needs Cheap Paxos"),
        "{out}"
    );
    let out = run("n1", &["--auxiliary", "--quorums=cheap:2"]);
    assert!(out.contains("\"n1\" is a main acceptor"), "{out}");
    let out = run("n3", &["--quorums=cheap:2"]);
    assert!(
        out.contains("\"n3\" is an auxiliary acceptor")
            && out.contains("start it with --auxiliary"),
        "{out}"
    );
}
