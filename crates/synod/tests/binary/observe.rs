//! Looking inside a running 3-member cluster: `/metrics`, `/health` and `etcdctl endpoint
//! health`, scraped from real member processes with a plain HTTP/1.1 client (what `curl` sends),
//! as the figures move: puts raise the committed count, a leadership hand-over is seen by every
//! member, and a member cut off from its quorum says it has no leader and is unhealthy with
//! etcd's body. Every wait polls an event with a generous deadline; no sleep is an assertion.
//!
//! Runs against etcd 3.4 too (`SYNOD_INTEROP_TARGET=etcd`): the same names and values, the
//! same status codes and bodies. Where etcd 3.4 has nothing (`/livez`, `/readyz`,
//! `?serializable=true`), the test says what each serves.

use crate::common;
use crate::common::{etcdctl, http, sample, wait_for, Cluster, Target, EVENT_DEADLINE};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// Puts of the bounded load.
const PUTS: u64 = 60;
/// Linearizable gets of the bounded load.
const READS: u64 = 20;
/// Puts while one follower is stopped.
const LAG_PUTS: u64 = 20;

fn scrape(cluster: &Cluster, i: usize) -> String {
    let answer = http("GET", cluster.endpoint(i), "/metrics")
        .unwrap_or_else(|e| panic!("scrape of member {i}: {e}"));
    assert_eq!(answer.status, 200, "/metrics of member {i}: {answer:?}");
    answer.body
}

fn value(cluster: &Cluster, i: usize, name: &str) -> f64 {
    let metrics = scrape(cluster, i);
    sample(&metrics, name, &[]).unwrap_or_else(|| panic!("member {i} serves no {name}"))
}

#[test]
fn metrics_and_health_follow_the_cluster() {
    let mut cluster = Cluster::start(3);
    let target = cluster.target;

    // Every member names a leader, and exactly one is it.
    wait_for("every member has a leader and one leads", || {
        let has: Vec<f64> = (0..3)
            .map(|i| value(&cluster, i, "etcd_server_has_leader"))
            .collect();
        let is: f64 = (0..3)
            .map(|i| value(&cluster, i, "etcd_server_is_leader"))
            .sum();
        (has.iter().all(|h| *h == 1.0) && is == 1.0).then_some(())
    });
    let healthy = http("GET", cluster.endpoint(0), "/health").expect("/health");
    assert_eq!(healthy.status, 200, "{healthy:?}");
    assert_eq!(healthy.body, r#"{"health":"true"}"#);
    let refused = http("POST", cluster.endpoint(0), "/health").expect("POST /health");
    assert_eq!(refused.status, 405, "{refused:?}");
    assert_eq!(
        refused.headers.get("allow").map(String::as_str),
        Some("GET")
    );
    etcdctl(cluster.endpoint(0), &["endpoint", "health"]).ok();

    // Committed grows with puts, on every member; the gRPC counters count them by method.
    let committed_before: Vec<f64> = (0..3)
        .map(|i| value(&cluster, i, "etcd_server_proposals_committed_total"))
        .collect();
    let puts_before = sample(
        &scrape(&cluster, 1),
        "grpc_server_handled_total",
        &[r#"grpc_method="Put""#, r#"grpc_code="OK""#],
    )
    .unwrap_or(0.0);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let paxos_before = (target == Target::Synod).then(|| PaxosFigures::scrape(&cluster));
    rt.block_on(async {
        let mut client = etcd_client::Client::connect([cluster.endpoint(1)], None)
            .await
            .expect("connect");
        for k in 0..PUTS {
            client
                .put(format!("observe/{k}"), "v", None)
                .await
                .expect("put");
        }
        // Linearizable reads: each is confirmed by a read-index round at the leader.
        for k in 0..READS {
            client.get(format!("observe/{k}"), None).await.expect("get");
        }
    });
    if let Some(before) = paxos_before {
        paxos_figures_move_with_the_load(&cluster, &before);
    }
    for (i, before) in committed_before.iter().enumerate() {
        wait_for(&format!("member {i} counts {PUTS} more committed"), || {
            let now = value(&cluster, i, "etcd_server_proposals_committed_total");
            (now >= before + PUTS as f64).then_some(())
        });
        let applied = value(&cluster, i, "etcd_server_proposals_applied_total");
        assert!(applied >= before + 1.0, "member {i} applied {applied}");
    }
    let puts_after = sample(
        &scrape(&cluster, 1),
        "grpc_server_handled_total",
        &[r#"grpc_method="Put""#, r#"grpc_code="OK""#],
    )
    .unwrap_or(0.0);
    assert!(
        puts_after >= puts_before + PUTS as f64,
        "Put OK went from {puts_before} to {puts_after}"
    );
    let fsyncs = value(&cluster, 1, "etcd_disk_wal_fsync_duration_seconds_count");
    assert!(fsyncs >= 1.0, "no fsync counted");

    // A leadership hand-over: every member sees one more leader change.
    let leader = cluster.leader();
    let next = (leader + 1) % 3;
    let changes_before: Vec<f64> = (0..3)
        .map(|i| value(&cluster, i, "etcd_server_leader_changes_seen_total"))
        .collect();
    let ids: Vec<u64> = (0..3)
        .map(|i| cluster.status(i).expect("status").member_id)
        .collect();
    let next_id = ids[next];
    etcdctl(
        cluster.endpoint(leader),
        &["move-leader", &format!("{next_id:x}")],
    )
    .ok();
    if target == Target::Synod {
        // Every member times its round trips to each peer (a probe a second). etcd 3.4 serves
        // the same histogram, but observes it every 30 s only.
        for i in 0..3 {
            for peer in (0..3).filter(|p| *p != i) {
                let to = format!("To=\"{:x}\"", ids[peer]);
                wait_for(
                    &format!("member {i} times its round trip to {peer}"),
                    || {
                        let n = sample(
                            &scrape(&cluster, i),
                            "etcd_network_peer_round_trip_time_seconds_count",
                            &[&to],
                        )?;
                        (n >= 1.0).then_some(())
                    },
                );
            }
        }
    }
    for (i, before) in changes_before.iter().enumerate() {
        wait_for(&format!("member {i} counts the leader change"), || {
            let now = value(&cluster, i, "etcd_server_leader_changes_seen_total");
            (now > *before).then_some(())
        });
    }
    wait_for("the new leader says it leads", || {
        (value(&cluster, next, "etcd_server_is_leader") == 1.0).then_some(())
    });

    // Cut one member off from its quorum: stop the two others, one at a time. While only
    // the first is down, the leader's lag figure for it grows with every write chosen without it.
    let alone = next;
    let others: Vec<usize> = (0..3).filter(|i| *i != alone).collect();
    cluster.stop(others[0]);
    if target == Target::Synod {
        let stopped = format!("To=\"{:x}\"", ids[others[0]]);
        let running = format!("To=\"{:x}\"", ids[others[1]]);
        let lag_before = sample(
            &scrape(&cluster, alone),
            "synod_paxos_peer_lag_slots",
            &[&stopped],
        )
        .unwrap_or(0.0);
        rt.block_on(async {
            let mut client = etcd_client::Client::connect([cluster.endpoint(alone)], None)
                .await
                .expect("connect");
            for k in 0..LAG_PUTS {
                client
                    .put(format!("lag/{k}"), "v", None)
                    .await
                    .expect("put");
            }
        });
        wait_for(
            "the leader's lag figure for the stopped member grows",
            || {
                let metrics = scrape(&cluster, alone);
                let lag = sample(&metrics, "synod_paxos_peer_lag_slots", &[&stopped])?;
                let live = sample(&metrics, "synod_paxos_peer_lag_slots", &[&running])?;
                // The running follower echoes each heartbeat: it is behind by what is in flight.
                (lag >= lag_before + LAG_PUTS as f64 && live < LAG_PUTS as f64).then_some(())
            },
        );
    }
    cluster.stop(others[1]);
    wait_for("the member alone has no leader", || {
        (value(&cluster, alone, "etcd_server_has_leader") == 0.0).then_some(())
    });
    let unhealthy = wait_for("/health turns unhealthy", || {
        let a = http("GET", cluster.endpoint(alone), "/health").ok()?;
        (a.status == 503).then_some(a)
    });
    // etcd's http.Error: the JSON, a newline, text/plain.
    assert_eq!(unhealthy.body, "{\"health\":\"false\"}\n", "{unhealthy:?}");
    assert_eq!(
        unhealthy.headers.get("content-type").map(String::as_str),
        Some("text/plain; charset=utf-8")
    );
    let failures = value(&cluster, alone, "etcd_server_health_failures");
    assert!(failures >= 1.0, "health failures: {failures}");
    let said = etcdctl(cluster.endpoint(alone), &["endpoint", "health"]).err();
    assert!(
        said.contains("is unhealthy"),
        "etcdctl endpoint health said: {said}"
    );

    // What etcd 3.4 lacks, Synod serves as later etcd does.
    let serializable =
        http("GET", cluster.endpoint(alone), "/health?serializable=true").expect("/health");
    let livez = http("GET", cluster.endpoint(alone), "/livez").expect("/livez");
    let readyz = http("GET", cluster.endpoint(alone), "/readyz").expect("/readyz");
    match target {
        Target::Synod => {
            // This member still serves what it has: alive, and healthy when asked only that.
            assert_eq!(serializable.status, 200, "{serializable:?}");
            assert_eq!((livez.status, livez.body.as_str()), (200, "ok\n"));
            assert_eq!(readyz.status, 503, "{readyz:?}");
            assert!(
                readyz.body.contains("[-]linearizable_read failed")
                    && readyz.body.contains("[+]serializable_read ok"),
                "{readyz:?}"
            );
        }
        Target::Etcd => {
            // 3.4 ignores the parameter and has neither endpoint.
            assert_eq!(serializable.status, 503, "{serializable:?}");
            assert_eq!(livez.status, 404, "{livez:?}");
            assert_eq!(readyz.status, 404, "{readyz:?}");
        }
    }
}

/// Synod's own Paxos figures that a load must move, taken before it.
struct PaxosFigures {
    leader: usize,
    /// The leader's slots timed from proposal to chosen, and commands it packed in slots.
    proposed_slots: f64,
    proposed_commands: f64,
    /// Each member's slots timed from chosen to applied.
    applied_slots: Vec<f64>,
    read_rounds: f64,
    read_reads: f64,
}

impl PaxosFigures {
    fn scrape(cluster: &Cluster) -> PaxosFigures {
        let leader = cluster.leader();
        let m = scrape(cluster, leader);
        let get = |name: &str| sample(&m, name, &[]).unwrap_or_else(|| panic!("no {name}"));
        PaxosFigures {
            leader,
            proposed_slots: get("synod_paxos_propose_to_chosen_seconds_count"),
            proposed_commands: get("synod_paxos_commands_per_slot_sum"),
            applied_slots: (0..3)
                .map(|i| value(cluster, i, "synod_paxos_chosen_to_applied_seconds_count"))
                .collect(),
            read_rounds: get("synod_paxos_read_index_rounds_total"),
            read_reads: get("synod_paxos_read_index_reads_total"),
        }
    }
}

/// After `PUTS` puts and `READS` linearizable gets: the leader timed at least a slot per put
/// from proposal to chosen and packed every put into some slot; every member timed each slot
/// from chosen to applied; the reads went through read-index rounds at the leader, at least
/// one read per round. The figures of the core's counters arrive on the next tick, hence the
/// waits.
fn paxos_figures_move_with_the_load(cluster: &Cluster, before: &PaxosFigures) {
    let puts = PUTS as f64;
    assert_eq!(
        cluster.leader(),
        before.leader,
        "the leader changed under load"
    );
    wait_for("the leader's slot figures move with the puts", || {
        let m = scrape(cluster, before.leader);
        let get = |name: &str| sample(&m, name, &[]).unwrap_or(0.0);
        let timed = get("synod_paxos_propose_to_chosen_seconds_count") - before.proposed_slots;
        let packed = get("synod_paxos_commands_per_slot_sum") - before.proposed_commands;
        let rounds = get("synod_paxos_read_index_rounds_total") - before.read_rounds;
        let reads = get("synod_paxos_read_index_reads_total") - before.read_reads;
        // Sequential puts from one client: at most one per slot, so a slot per put.
        (timed >= puts
            && packed >= puts
            && get("synod_paxos_propose_to_chosen_seconds_sum") > 0.0
            && rounds >= 1.0
            && reads >= READS as f64
            && reads >= rounds)
            .then_some(())
    });
    for (i, applied_before) in before.applied_slots.iter().enumerate() {
        wait_for(
            &format!("member {i} times each slot from chosen to applied"),
            || {
                let n = value(cluster, i, "synod_paxos_chosen_to_applied_seconds_count");
                (n >= applied_before + puts).then_some(())
            },
        );
    }
    // Only a leader knows how far the others are.
    let follower = (before.leader + 1) % 3;
    wait_for(&format!("follower {follower} serves no lag figure"), || {
        sample(
            &scrape(cluster, follower),
            "synod_paxos_peer_lag_slots",
            &[],
        )
        .is_none()
        .then_some(())
    });
}

#[test]
fn version_and_unknown_paths_answer_as_etcd() {
    let cluster = Cluster::start(1);
    let version = http("GET", cluster.endpoint(0), "/version").expect("/version");
    assert_eq!(version.status, 200);
    assert_eq!(
        version.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    let v: serde_json::Value = serde_json::from_str(&version.body).expect("JSON");
    assert!(
        v["etcdserver"]
            .as_str()
            .is_some_and(|s| s.starts_with("3.4.")),
        "{version:?}"
    );
    assert_eq!(v["etcdcluster"], "3.4.0");
    // The field order is a Go struct's.
    assert!(version.body.starts_with(r#"{"etcdserver":"#), "{version:?}");
    let missing = http("GET", cluster.endpoint(0), "/no-such-page").expect("GET");
    assert_eq!(
        (missing.status, missing.body.as_str()),
        (404, "404 page not found\n")
    );
    let metrics = http("GET", cluster.endpoint(0), "/metrics").expect("/metrics");
    assert!(
        metrics
            .headers
            .get("content-type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{:?}",
        metrics.headers
    );
    for name in [
        "etcd_server_has_leader",
        "etcd_server_is_leader",
        "etcd_server_leader_changes_seen_total",
        "etcd_server_proposals_committed_total",
        "etcd_server_proposals_applied_total",
        "etcd_server_proposals_pending",
        "etcd_server_proposals_failed_total",
        "etcd_mvcc_db_total_size_in_bytes",
        "etcd_debugging_mvcc_keys_total",
        "etcd_disk_wal_fsync_duration_seconds_count",
    ] {
        assert!(
            sample(&metrics.body, name, &[]).is_some(),
            "no {name} in:\n{}",
            metrics.body
        );
    }
}

#[test]
fn top_once_shows_the_new_leader_after_a_hand_over() {
    let cluster = Cluster::start(3);
    let leader = cluster.leader();
    let next = (leader + 1) % 3;
    let next_id = cluster.status(next).expect("status").member_id;
    etcdctl(
        cluster.endpoint(leader),
        &["move-leader", &format!("{next_id:x}")],
    )
    .ok();
    // Every member has seen the new leader (its metrics say whom it follows).
    wait_for("every member follows the new leader", || {
        let leads: Vec<f64> = (0..3)
            .map(|i| value(&cluster, i, "etcd_server_is_leader"))
            .collect();
        let has: f64 = (0..3)
            .map(|i| value(&cluster, i, "etcd_server_has_leader"))
            .sum();
        (leads[next] == 1.0 && leads.iter().sum::<f64>() == 1.0 && has == 3.0).then_some(())
    });
    let mut top = std::process::Command::new(env!("CARGO_BIN_EXE_synod"));
    top.args(["top", "--once", "--endpoints", &cluster.endpoints()]);
    let shown = common::run_bounded(top, None, Duration::from_secs(30)).ok();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(
        lines.len(),
        5,
        "a header, three members, a summary:\n{shown}"
    );
    let rows: Vec<Vec<&str>> = lines[1..4]
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.len(), 17, "{shown}");
        assert_eq!(row[0], cluster.endpoint(i), "{shown}");
        let role = if i == next { "leader" } else { "follower" };
        assert_eq!(row[2], role, "member {i}:\n{shown}");
        // The first election and the hand-over, at least.
        let changes: f64 = row[8].parse().unwrap_or_else(|_| panic!("{shown}"));
        assert!(changes >= 2.0, "member {i} saw {changes} leaders:\n{shown}");
        // The call rate over the interval is a number (the scrapes themselves are not gRPC).
        let rate: f64 = row[10].parse().unwrap_or_else(|_| panic!("{shown}"));
        assert!(rate >= 0.0, "{shown}");
        // From `Status`: both answer as etcd 3.4, with a db size, and none is a learner.
        assert!(
            row[14].starts_with("3.4."),
            "version of member {i}:\n{shown}"
        );
        let db: f64 = row[15].parse().unwrap_or_else(|_| panic!("{shown}"));
        assert!(db >= 0.0, "{shown}");
        assert_eq!(row[16], "no", "{shown}");
        // The ballot column is a number on both: Synod's ballot round (0 on a member that
        // never ran), etcd's raft term from `Status` (etcd has no such metric).
        let ballot: f64 = row[3].parse().unwrap_or_else(|_| panic!("{shown}"));
        assert!(ballot >= 0.0, "{shown}");
    }
    assert!(
        lines[4].starts_with(&format!("leader: {} |", cluster.endpoint(next))),
        "the summary names the new leader:\n{shown}"
    );
    if cluster.target == Target::Synod {
        // Synod's members time their peers' round trips; etcd 3.4 does every 30 s only.
        wait_for("top shows the leader's peer round trip", || {
            let mut top = std::process::Command::new(env!("CARGO_BIN_EXE_synod"));
            top.args(["top", "--once", "--endpoints", cluster.endpoint(next)]);
            let shown = common::run_bounded(top, None, Duration::from_secs(30)).ok();
            let row: Vec<String> = shown
                .lines()
                .nth(1)?
                .split_whitespace()
                .map(String::from)
                .collect();
            row.get(13)?.parse::<f64>().ok()
        });
    }
    if cluster.target == Target::Synod {
        dashboard_names_are_served(&scrape(&cluster, next));
    }
}

/// The terminal UI in a pseudo-terminal: it draws the cluster (the summary names the leader
/// and every endpoint appears) and quits on `q`, restoring the terminal.
#[test]
fn top_draws_in_a_terminal_and_quits_on_q() {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    let cluster = Cluster::start(3);
    let leader = cluster.leader();
    let (mut master, slave) = {
        let (mut m, mut s) = (0, 0);
        let size = libc::winsize {
            ws_row: 30,
            ws_col: 200,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: openpty writes two descriptors it opened into m and s, which we then own.
        let rc = unsafe {
            libc::openpty(
                &mut m,
                &mut s,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both are open descriptors nobody else owns.
        unsafe {
            (
                std::fs::File::from(OwnedFd::from_raw_fd(m)),
                OwnedFd::from_raw_fd(s),
            )
        }
    };
    let mut top = std::process::Command::new(env!("CARGO_BIN_EXE_synod"));
    top.args([
        "top",
        "--interval-ms",
        "300",
        "--endpoints",
        &cluster.endpoints(),
    ])
    .stdin(slave.try_clone().expect("dup"))
    .stdout(slave.try_clone().expect("dup"))
    .stderr(slave);
    // SAFETY: only async-signal-safe calls between fork and exec: the child gets its own
    // session whose controlling terminal is the pseudo-terminal, as in a real terminal.
    unsafe {
        top.pre_exec(|| {
            if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = top.spawn().expect("spawn synod top");
    drop(top);
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let mut reader = master.try_clone().expect("dup master");
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    let mut screen = Vec::new();
    let want_leader = format!("leader: {}", cluster.endpoint(leader));
    let deadline = Instant::now() + EVENT_DEADLINE;
    let drawn = |screen: &[u8]| {
        let text = String::from_utf8_lossy(screen);
        text.contains(&want_leader) && (0..3).all(|i| text.contains(cluster.endpoint(i)))
    };
    while !drawn(&screen) {
        assert!(
            Instant::now() < deadline,
            "top never drew the cluster: {}",
            String::from_utf8_lossy(&screen)
        );
        if let Ok(bytes) = rx.recv_timeout(Duration::from_millis(200)) {
            screen.extend(bytes);
        }
    }
    master.write_all(b"q").expect("type q");
    let status = wait_for("top quits on q", || child.try_wait().expect("try_wait"));
    assert!(status.success(), "top exited with {status}");
    // It left the alternate screen it drew on (crossterm's LeaveAlternateScreen).
    while let Ok(bytes) = rx.recv_timeout(Duration::from_millis(500)) {
        screen.extend(bytes);
    }
    assert!(
        String::from_utf8_lossy(&screen).contains("\x1b[?1049l"),
        "the terminal was not restored"
    );
}

/// Every metric the Grafana dashboard in docs/ queries is one a member serves.
fn dashboard_names_are_served(metrics: &str) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/grafana-synod.json");
    let dashboard = std::fs::read_to_string(path).expect("the dashboard");
    // Labelled series that exist only once something happened (a refused message, a
    // probe answered, a heartbeat echoed to this leader); the scrape test checks the last two.
    let may_be_absent = [
        "synod_paxos_messages_refused_total",
        "etcd_network_peer_round_trip_time_seconds",
        "synod_paxos_peer_lag_slots",
    ];
    let mut checked = 0;
    for word in dashboard.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if !(word.starts_with("etcd_") || word.starts_with("synod_") || word.starts_with("grpc_"))
            || word == "grpc_code"
            || may_be_absent.contains(&word)
        {
            continue;
        }
        let name = word.strip_suffix("_bucket").unwrap_or(word);
        assert!(
            metrics.lines().any(|l| l.starts_with(name)),
            "the dashboard queries {word}, which is not served"
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} names found in the dashboard");
}

#[test]
fn log_format_json_writes_one_object_per_line_and_a_bad_format_is_refused() {
    let bad = common::run_bounded(
        {
            let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_synod"));
            c.args(["node", "--log-format", "xml"]);
            c
        },
        None,
        Duration::from_secs(30),
    );
    assert_eq!(bad.code, Some(2), "{bad}");
    assert!(bad.stderr.contains("--log-format"), "{bad}");

    let dir = tempfile::tempdir().expect("temp dir");
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .expect("bind")
                .local_addr()
                .expect("addr")
                .port()
        })
        .collect();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_synod"))
        .args([
            "node",
            "--name",
            "solo",
            "--log-format",
            "json",
            "--log-level",
            "info",
        ])
        .arg(format!("--data-dir={}", dir.path().join("d").display()))
        .arg(format!(
            "--listen-client-urls=http://127.0.0.1:{}",
            ports[0]
        ))
        .arg(format!("--listen-peer-urls=http://127.0.0.1:{}", ports[1]))
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn synod node");
    let stderr = child.stderr.take().expect("stderr");
    // Read lines on a thread until the member says it started (bounded by the deadline).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut started = None;
    let deadline = Instant::now() + EVENT_DEADLINE;
    while started.is_none() && Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        if v["message"] == "member started" {
            started = Some(v);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let started = started.expect("the member logged its start");
    assert_eq!(started["name"], "solo");
}
