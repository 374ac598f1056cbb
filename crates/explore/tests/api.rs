//! The HTTP API, over a real loopback socket: sessions replay deterministically, the
//! learner's actions reach the real cores, and bad input is refused with a message.

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn start() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(explore::serve(listener, std::future::pending()));
    addr
}

/// One HTTP/1.1 exchange; returns the status and the body.
async fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.expect("read");
    let text = String::from_utf8(out).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("headers end");
    let status = head[9..12].parse().expect("status code");
    (status, body.to_string())
}

async fn view(addr: std::net::SocketAddr, request: Value) -> Value {
    let (status, body) = http(addr, "POST", "/api/view", &request.to_string()).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("json view")
}

async fn refused(addr: std::net::SocketAddr, path: &str, body: &str) -> String {
    let (status, text) = http(addr, "POST", path, body).await;
    assert_eq!(status, 400, "{text}");
    let v: Value = serde_json::from_str(&text).expect("json error");
    v["error"].as_str().expect("error message").to_string()
}

fn synod(seed: u64) -> Value {
    json!({ "protocol": "synod", "nodes": 3, "seed": seed })
}

fn propose(value: &str, node: u64) -> Value {
    json!({ "do": "propose", "value": value, "node": node })
}

#[tokio::test]
async fn page_and_assets_are_served_with_nothing_from_the_network() {
    let addr = start().await;
    for path in ["/", "/app.js", "/app.css"] {
        let (status, body) = http(addr, "GET", path, "").await;
        assert_eq!(status, 200, "{path}");
        // The SVG namespace is a name, not a fetch; any other URL would be.
        let body = body.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !body.contains("https://") && !body.contains("http://"),
            "{path} refers to the network"
        );
    }
    let (status, body) = http(addr, "GET", "/api/meta", "").await;
    assert_eq!(status, 200);
    let meta: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        meta["planted_bugs_available"].as_bool(),
        Some(sim::planted_bugs_available())
    );
}

#[tokio::test]
async fn a_value_is_marked_chosen_when_a_quorum_accepts_before_anyone_knows() {
    let addr = start().await;
    let actions = json!([propose("x", 1), { "do": "step", "n": 30 }]);
    let v = view(addr, json!({ "spec": synod(1), "actions": actions })).await;
    let chosen = &v["chosen"][0];
    assert_eq!(chosen["value"], "'x'");
    assert_eq!(chosen["known_by"].as_array().map(Vec::len), Some(3), "{v}");
    let at = chosen["at_step"].as_u64().expect("at_step");
    // At that very step no node knows it yet: the quorum's Accepted are still on their way.
    let then = view(
        addr,
        json!({ "spec": synod(1), "actions": actions, "at": at }),
    )
    .await;
    assert_eq!(then["chosen"][0]["known_by"], json!([]), "{then}");
    // One step before, nothing is chosen.
    let before = view(
        addr,
        json!({ "spec": synod(1), "actions": actions, "at": at - 1 }),
    )
    .await;
    assert_eq!(before["chosen"], json!([]));
    assert!(then["log"]
        .as_array()
        .expect("log")
        .iter()
        .any(|l| l["text"]
            .as_str()
            .is_some_and(|t| t.contains("No node knows it yet"))));
}

#[tokio::test]
async fn back_is_a_replay_identical_to_a_fresh_one() {
    let addr = start().await;
    let long = json!([propose("x", 1), { "do": "step", "n": 6 }, propose("y", 2), { "do": "step", "n": 20 }]);
    // Warm the cache with the whole session, then go back.
    view(addr, json!({ "spec": synod(7), "actions": long })).await;
    let back = view(addr, json!({ "spec": synod(7), "actions": long, "at": 9 })).await;
    // A server that never saw the session computes the same step.
    let other = start().await;
    let short = json!([propose("x", 1), { "do": "step", "n": 6 }, propose("y", 2), { "do": "step", "n": 1 }]);
    let mut fresh = view(other, json!({ "spec": synod(7), "actions": short })).await;
    fresh["total"] = back["total"].clone();
    assert_eq!(back, fresh);
    assert_eq!(back["step"], 9);
}

#[tokio::test]
async fn dropping_and_duplicating_and_delivering_by_hand() {
    let addr = start().await;
    let base = vec![propose("x", 1), json!({ "do": "step", "n": 1 })];
    let v = view(addr, json!({ "spec": synod(3), "actions": base })).await;
    let flying = v["in_flight"].as_array().expect("in flight").clone();
    assert_eq!(flying.len(), 2, "n1's Prepares to n2 and n3: {v}");
    let (a, b) = (
        flying[0]["id"].as_u64().unwrap_or(0),
        flying[1]["id"].as_u64().unwrap_or(0),
    );
    let mut actions = base.clone();
    actions.push(json!({ "do": "drop", "id": a }));
    let v = view(addr, json!({ "spec": synod(3), "actions": actions })).await;
    assert!(v["in_flight"]
        .as_array()
        .expect("list")
        .iter()
        .all(|m| m["id"] != a));
    let line = v["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|l| l["id"] == a)
        .cloned();
    assert_eq!(
        line.expect("line of the dropped message")["fate"],
        "dropped"
    );
    actions.push(json!({ "do": "duplicate", "id": b }));
    let v = view(addr, json!({ "spec": synod(3), "actions": actions })).await;
    assert_eq!(
        v["in_flight"].as_array().map(Vec::len),
        Some(2),
        "original and copy"
    );
    actions.push(json!({ "do": "deliver", "id": b }));
    let v = view(addr, json!({ "spec": synod(3), "actions": actions })).await;
    let receiver = v["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .find(|n| n["promised"] == "1.1");
    assert!(
        receiver.is_some(),
        "the Prepare delivered by hand was promised: {v}"
    );
    // A message already gone: nothing happens, and the page is told why.
    actions.push(json!({ "do": "deliver", "id": a }));
    let v = view(addr, json!({ "spec": synod(3), "actions": actions })).await;
    assert!(v["note"]
        .as_str()
        .is_some_and(|n| n.contains("no longer in flight")));
}

#[tokio::test]
async fn a_disk_write_finished_by_hand_lets_what_waited_for_it_leave() {
    let addr = start().await;
    let base = vec![propose("x", 1)];
    let v = view(addr, json!({ "spec": synod(5), "actions": base })).await;
    assert_eq!(
        v["in_flight"],
        json!([]),
        "the Prepares wait for the ballot on disk"
    );
    assert_eq!(v["nodes"][0]["notes"][0], "1 disk write(s) in progress");
    let mut actions = base.clone();
    actions.push(json!({ "do": "persist", "node": 1 }));
    let v = view(addr, json!({ "spec": synod(5), "actions": actions })).await;
    assert_eq!(
        v["time_us"], 0,
        "no time passed: the adversary chose the order"
    );
    let kinds: Vec<&str> = v["in_flight"]
        .as_array()
        .expect("in flight")
        .iter()
        .filter_map(|m| m["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["prepare", "prepare"], "{v}");
    assert!(v["log"][1]["text"].as_str().is_some_and(
        |t| t.starts_with("By hand, out of turn: n1's disk has made durable the ballot 1.1")
    ));
    // A node with nothing on its way to disk: nothing happens, and the page is told why.
    let mut idle = actions.clone();
    idle.push(json!({ "do": "persist", "node": 2 }));
    let v = view(addr, json!({ "spec": synod(5), "actions": idle })).await;
    assert!(v["note"]
        .as_str()
        .is_some_and(|n| n.contains("no disk write in progress")));
    // The write's own event is still scheduled and finds nothing to do; the run goes on and
    // chooses 'x'.
    actions.push(json!({ "do": "step", "n": 40 }));
    let v = view(addr, json!({ "spec": synod(5), "actions": actions })).await;
    assert_eq!(v["chosen"][0]["value"], "'x'");
    assert_eq!(v["chosen"][0]["known_by"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["violations"], json!([]));
}

#[tokio::test]
async fn a_multi_paxos_disk_write_finished_by_hand_lets_its_message_leave() {
    let addr = start().await;
    let spec = json!({ "protocol": "multi", "nodes": 3, "seed": 2 });
    let mut actions = vec![json!({ "do": "step", "n": 40 })];
    let v = view(addr, json!({ "spec": spec, "actions": actions })).await;
    let leader = leader_of(&v).expect("a leader within 40 steps") as usize;
    actions.push(json!({ "do": "propose", "value": "1", "client": 1, "key": "x" }));
    // Step until a follower votes: its vote waits on its disk, and its Accepted with it.
    let mut voter = None;
    for _ in 0..40 {
        actions.push(json!({ "do": "step", "n": 1 }));
        let v = view(addr, json!({ "spec": spec, "actions": actions })).await;
        voter = (1..=3).filter(|n| *n != leader).find(|n| {
            v["nodes"][n - 1]["notes"]
                .as_array()
                .is_some_and(|notes| notes.iter().any(|x| x == "1 disk write(s) in progress"))
        });
        if voter.is_some() {
            break;
        }
    }
    let voter = voter.expect("a follower with its vote on its way to disk");
    let waiting = |v: &Value| {
        v["in_flight"]
            .as_array()
            .expect("in flight")
            .iter()
            .filter(|m| m["kind"] == "accepted" && m["from"] == format!("n{voter}"))
            .count()
    };
    let v = view(addr, json!({ "spec": spec, "actions": actions })).await;
    assert_eq!(waiting(&v), 0, "the Accepted waits for the vote on disk");
    let t = v["time_us"].clone();
    actions.push(json!({ "do": "persist", "node": voter }));
    let v = view(addr, json!({ "spec": spec, "actions": actions })).await;
    assert_eq!(
        v["time_us"], t,
        "no time passed: the adversary chose the order"
    );
    assert_eq!(waiting(&v), 1, "{}", v["in_flight"]);
    let said =
        format!("By hand, out of turn: n{voter}'s disk has made durable: its vote for 'put x=1'");
    assert!(
        v["log"]
            .as_array()
            .expect("log")
            .iter()
            .any(|l| l["text"].as_str().is_some_and(|t| t.starts_with(&said))),
        "{}",
        v["log"]
    );
    // Nothing more on its way to that disk: nothing happens, and the page is told why.
    let mut idle = actions.clone();
    idle.push(json!({ "do": "persist", "node": voter }));
    let v = view(addr, json!({ "spec": spec, "actions": idle })).await;
    assert!(v["note"]
        .as_str()
        .is_some_and(|n| n.contains("no disk write in progress")));
    // The write's own event later finds nothing to finish; the run goes on and chooses.
    actions.push(json!({ "do": "step", "n": 60 }));
    let v = view(addr, json!({ "spec": spec, "actions": actions })).await;
    assert_eq!(v["chosen"][0]["value"], "'put x=1'", "{}", v["chosen"]);
    assert_eq!(v["ops"][0]["output"], "ok");
    assert_eq!(v["violations"], json!([]));
}

#[tokio::test]
async fn a_crashed_acceptor_keeps_its_promise_across_a_restart() {
    let addr = start().await;
    let actions = json!([propose("x", 1), { "do": "step", "n": 8 }, { "do": "crash", "node": 3 }]);
    let v = view(addr, json!({ "spec": synod(1), "actions": actions })).await;
    let n3 = &v["nodes"][2];
    assert_eq!(n3["up"], false);
    assert_eq!(n3["role"], "down");
    let promised = n3["promised"].clone();
    assert_eq!(promised, "1.1", "{v}");
    let actions = json!([propose("x", 1), { "do": "step", "n": 8 }, { "do": "crash", "node": 3 }, { "do": "restart", "node": 3 }]);
    let v = view(addr, json!({ "spec": synod(1), "actions": actions })).await;
    assert_eq!(v["nodes"][2]["up"], true);
    assert_eq!(v["nodes"][2]["promised"], promised);
}

#[tokio::test]
async fn multi_paxos_elects_chooses_and_reads() {
    let addr = start().await;
    let spec = json!({ "protocol": "multi", "nodes": 5, "seed": 2 });
    let actions = json!([
        { "do": "step", "n": 40 },
        { "do": "propose", "value": "1", "client": 1, "key": "x" },
        { "do": "step", "n": 60 },
        { "do": "read", "client": 2, "key": "x" },
        { "do": "step", "n": 60 },
    ]);
    let v = view(addr, json!({ "spec": spec, "actions": actions })).await;
    assert_eq!(leaders(&v), 1, "{v}");
    assert_eq!(v["chosen"][0]["value"], "'put x=1'", "{}", v["chosen"]);
    let ops = v["ops"].as_array().expect("ops");
    assert_eq!(ops[0]["output"], "ok", "{ops:?}");
    assert_eq!(ops[1]["input"], "get x");
    assert_eq!(ops[1]["output"], "= 1", "{ops:?}");
    assert_eq!(v["violations"], json!([]));
}

#[tokio::test]
async fn bad_input_is_refused_with_a_reason() {
    let addr = start().await;
    let cases = [
        (json!({ "spec": { "protocol": "synod", "nodes": 9, "seed": 1 } }).to_string(), "3 to 7 nodes"),
        (json!({ "spec": synod(1), "actions": [{ "do": "crash", "node": 12 }] }).to_string(), "no node n12"),
        (json!({ "spec": synod(1), "actions": [{ "do": "crash", "node": 0 }] }).to_string(), "no node n0"),
        (json!({ "spec": synod(1), "actions": [propose(&"v".repeat(40), 1)] }).to_string(), "1 to 32"),
        (json!({ "spec": synod(1), "actions": [{ "do": "read", "client": 1, "key": "x" }] }).to_string(), "no reads"),
        (json!({ "spec": { "protocol": "multi", "nodes": 3, "seed": 1 }, "actions": [{ "do": "read", "client": 3, "key": "x" }] }).to_string(), "no client c3"),
        (json!({ "spec": synod(1), "actions": [{ "do": "partition", "groups": [[1, 2], [2, 3]] }] }).to_string(), "at most once"),
        (json!({ "spec": synod(1), "actions": [{ "do": "step", "n": 30000 }] }).to_string(), "at most"),
        (json!({ "spec": { "protocol": "synod", "nodes": 3, "seed": 1, "bug": "no-such-bug" } }).to_string(), "unknown planted bug"),
        (json!({ "spec": { "protocol": "multi", "nodes": 3, "seed": 1, "faults": "lots" } }).to_string(), "unknown fault profile"),
        (json!({ "spec": synod(1), "actions": [{ "do": "explode" }] }).to_string(), "bad request"),
        (json!({ "spec": { "protocol": "multi", "nodes": 3, "seed": 1 }, "actions": [{ "do": "persist", "node": 4 }] }).to_string(), "no node n4"),
        (json!({ "spec": synod(1), "actions": [{ "do": "persist", "node": 4 }] }).to_string(), "no node n4"),
        ("{".to_string(), "bad request"),
        (json!({ "spec": { "protocol": "synod", "nodes": -1, "seed": 1 } }).to_string(), "bad request"),
    ];
    for (body, expected) in cases {
        let error = refused(addr, "/api/view", &body).await;
        assert!(error.contains(expected), "{body}: {error}");
    }
    if !sim::planted_bugs_available() {
        let body = json!({ "spec": { "protocol": "synod", "nodes": 3, "seed": 1, "bug": "accept-lower-ballot" } });
        let error = refused(addr, "/api/view", &body.to_string()).await;
        assert!(error.contains("no planted bugs"), "{error}");
    }
    let error = refused(addr, "/api/trace", "not a trace").await;
    assert!(error.contains("trace header"), "{error}");
}

#[tokio::test]
async fn a_trace_written_by_the_simulator_opens_and_replays_exactly() {
    let addr = start().await;
    let mut config = sim::SimConfig::new(11, 3, sim::FaultProfile::All);
    config.trace = true;
    let mut simulation = sim::Simulation::new(config);
    for _ in 0..3000 {
        simulation.step();
    }
    let mut out = Vec::new();
    sim::trace::write_jsonl(&mut out, &simulation.trace_header(), simulation.trace())
        .expect("write");
    let text = String::from_utf8(out).expect("utf-8");
    let (status, body) = http(addr, "POST", "/api/trace", &text).await;
    assert_eq!(status, 200, "{body}");
    let opened: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(opened["spec"]["seed"], 11);
    assert_eq!(opened["spec"]["faults"], "all");
    assert!(
        opened["checked"].as_u64().is_some_and(|n| n > 100),
        "{opened}"
    );
    // The session it names can be stepped.
    let v = view(
        addr,
        json!({ "spec": opened["spec"], "actions": [{ "do": "step", "n": 50 }] }),
    )
    .await;
    assert_eq!(v["step"], 50);
    // A trace that does not match this simulator is refused, not shown wrongly.
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[5] = lines[5].replacen("\"t\":", "\"t\":1", 1);
    let error = refused(addr, "/api/trace", &lines.join("\n")).await;
    assert!(error.contains("differs"), "{error}");
}

#[tokio::test]
async fn scenarios_replay_to_what_they_narrate() {
    let addr = start().await;
    let (status, body) = http(addr, "GET", "/api/scenarios", "").await;
    assert_eq!(status, 200);
    let list: Value = serde_json::from_str(&body).expect("json");
    let list = list.as_array().expect("list");
    assert!(list.len() >= 7);
    for s in list {
        let actions: Vec<Value> = s["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|st| st["action"].clone())
            .collect();
        let v = view(addr, json!({ "spec": s["spec"], "actions": actions })).await;
        assert_eq!(v["violations"], json!([]), "{}", s["id"]);
        match s["id"].as_str() {
            Some("dueling") => {
                // The proposers preempted each other at least twice before one value won.
                let at = v["chosen"][0]["at_step"].as_u64().expect("chosen") as usize;
                let before = |needle: &str| {
                    v["log"]
                        .as_array()
                        .expect("log")
                        .iter()
                        .filter(|l| {
                            l["step"].as_u64().is_some_and(|s| (s as usize) < at)
                                && l["text"].as_str().is_some_and(|t| t.contains(needle))
                        })
                        .count()
                };
                assert!(before("refuses to accept") >= 2, "{}", v["log"]);
                assert_eq!(
                    promised_rounds(&v).len(),
                    3,
                    "ballots 1.1, 1.3, 2.1 promised in turn"
                );
                assert_eq!(
                    v["chosen"][0]["known_by"].as_array().map(Vec::len),
                    Some(3),
                    "{}",
                    v["chosen"]
                );
            }
            Some("flp") => {
                // Round after round, ballots rise and each Accept is refused: nothing is chosen.
                assert_eq!(v["chosen"], json!([]), "{}", v["chosen"]);
                let rounds = promised_rounds(&v);
                let n = explore::scenarios::FLP_ROUNDS;
                assert_eq!(rounds.len(), n + 2, "{rounds:?}");
                assert!(rounds.windows(2).all(|w| w[0] < w[1]), "{rounds:?}");
                let refused = v["log"]
                    .as_array()
                    .expect("log")
                    .iter()
                    .filter(|l| {
                        l["text"]
                            .as_str()
                            .is_some_and(|t| t.contains("refuses to accept"))
                    })
                    .count();
                assert_eq!(refused, n + 1);
                assert!(v["nodes"]
                    .as_array()
                    .expect("nodes")
                    .iter()
                    .all(|x| x["slots"]
                        .as_array()
                        .is_none_or(|s| s.iter().all(|s| s["known_chosen"] == false))));
            }
            Some("happy-path") => {
                assert_eq!(
                    v["chosen"][0]["known_by"].as_array().map(Vec::len),
                    Some(3),
                    "{}: {}",
                    s["id"],
                    v["chosen"]
                )
            }
            Some("hidden-choice") => {
                // n2 proposed 'y' but learned the 'x' that was chosen while nobody knew.
                assert_eq!(v["chosen"][0]["value"], "'x'");
                assert_eq!(v["nodes"][1]["slots"][0]["value"], "'x'");
                assert_eq!(v["nodes"][1]["slots"][0]["known_chosen"], true);
            }
            Some("acceptor-crash") => assert_eq!(v["nodes"][2]["promised"], "1.1"),
            Some("failover") => {
                // The old leader's slot 2 reached nobody, slot 3 one follower: the new
                // leader filled slot 2 with a no-op and re-proposed slot 3's value.
                let chosen = v["chosen"].as_array().expect("chosen");
                let slot = |n: u64| {
                    chosen
                        .iter()
                        .find(|c| c["slot"] == n)
                        .cloned()
                        .expect("slot")
                };
                assert_eq!(slot(2)["value"], "no-op", "{chosen:?}");
                assert_eq!(slot(3)["value"], "'put y=3'", "{chosen:?}");
                assert_ne!(
                    slot(3)["ballot"],
                    slot(1)["ballot"],
                    "re-proposed at a new ballot"
                );
                let l = leader_of(&v).expect("a leader") as usize - 1;
                let slots = v["nodes"][l]["slots"].as_array().expect("slots");
                assert!(slots
                    .iter()
                    .any(|s| s["slot"] == 2 && s["value"] == "no-op"));
                assert!(slots
                    .iter()
                    .any(|s| s["slot"] == 3 && s["value"] == "'put y=3'"));
                let ops = v["ops"].as_array().expect("ops");
                assert_eq!(ops.len(), 3);
                assert!(ops.iter().all(|o| !o["output"].is_null()), "{ops:?}");
            }
            Some("read-index") => {
                let ops = v["ops"].as_array().expect("ops");
                assert_eq!(ops.len(), 2);
                assert!(
                    ops.iter().all(|o| !o["output"].is_null()),
                    "{}: {ops:?}",
                    s["id"]
                );
            }
            Some("partition") => {
                assert_eq!(leaders(&v), 1, "{v}");
            }
            Some("replace-acceptor") => {
                // Two stop-signs chosen (learner n4 added, then voters with n4 for the dead
                // one), and a write chosen after the second by the new voters.
                let chosen = v["chosen"].as_array().expect("chosen");
                let stops: Vec<u64> = chosen
                    .iter()
                    .filter(|c| {
                        c["value"]
                            .as_str()
                            .is_some_and(|t| t.starts_with("stop-sign"))
                    })
                    .map(|c| c["slot"].as_u64().expect("slot"))
                    .collect();
                assert_eq!(stops.len(), 2, "{chosen:?}");
                let last = chosen
                    .iter()
                    .find(|c| c["value"] == "'put x=2'")
                    .unwrap_or_else(|| panic!("x=2 chosen: {chosen:?}"));
                assert!(last["slot"].as_u64() > stops.last().copied(), "{chosen:?}");
                let nodes = v["nodes"].as_array().expect("nodes");
                assert_eq!(nodes.len(), 4);
                let voters: Vec<&str> = nodes
                    .iter()
                    .filter(|n| {
                        n["notes"]
                            .as_array()
                            .is_some_and(|t| t.iter().any(|t| t == "voter in configuration 2"))
                    })
                    .map(|n| n["name"].as_str().expect("name"))
                    .collect();
                assert_eq!(voters.len(), 3, "{nodes:?}");
                assert!(voters.contains(&"n4"), "{voters:?}");
                let down: Vec<&Value> = nodes.iter().filter(|n| n["up"] == false).collect();
                assert_eq!(down.len(), 1, "the replaced node stays down");
                assert!(!voters.contains(&down[0]["name"].as_str().expect("name")));
                let ops = v["ops"].as_array().expect("ops");
                assert_eq!(ops.len(), 2);
                assert!(ops.iter().all(|o| !o["output"].is_null()), "{ops:?}");
            }
            Some("flexible-quorums") => flexible_quorums_hold(addr, s, &actions, &v).await,
            Some("fast-collision") => {
                // The fast round split the votes; the coordinator's recovery round chose one
                // value, which every node learned.
                let chosen = v["chosen"].as_array().expect("chosen");
                assert_eq!(chosen.len(), 1, "{chosen:?}");
                assert_eq!(chosen[0]["ballot"], "0.1r", "chosen in the recovery round");
                assert_eq!(chosen[0]["known_by"].as_array().map(Vec::len), Some(3));
                let notes = &v["nodes"][0]["notes"];
                assert!(
                    notes
                        .as_array()
                        .is_some_and(|n| n.iter().any(|t| t == "collisions seen: 1")
                            && n.iter().any(|t| t == "recoveries: 1")),
                    "{notes}"
                );
                let said = v["log"].as_array().expect("log").iter().any(|l| {
                    l["text"]
                        .as_str()
                        .is_some_and(|t| t.contains("sees a collision"))
                });
                assert!(said, "{}", v["log"]);
            }
            Some("epaxos-conflict") => {
                // Both commands took the slow path, each depends on the other, and every
                // replica executed them in one order.
                let nodes = v["nodes"].as_array().expect("nodes");
                let executed: Vec<String> = nodes
                    .iter()
                    .map(|n| {
                        n["notes"]
                            .as_array()
                            .and_then(|t| {
                                t.iter()
                                    .find_map(|t| t.as_str()?.strip_prefix("executed: "))
                            })
                            .expect("executed")
                            .to_string()
                    })
                    .collect();
                assert!(executed.iter().all(|e| *e == executed[0]), "{executed:?}");
                assert_eq!(executed[0].split(", ").count(), 2, "{executed:?}");
                assert!(
                    nodes[0]["notes"][0] == "fast path: 0, slow path: 1"
                        && nodes[2]["notes"][0] == "fast path: 0, slow path: 1",
                    "{nodes:?}"
                );
                let chosen = v["chosen"].as_array().expect("chosen");
                assert_eq!(chosen.len(), 2, "{chosen:?}");
                for c in chosen {
                    let t = c["value"].as_str().expect("value");
                    assert!(
                        (t.starts_with("1.1") && t.contains("deps {3.1}"))
                            || (t.starts_with("3.1") && t.contains("deps {1.1}")),
                        "{t}"
                    );
                }
            }
            Some("commit-tm-crash") => {
                // The transaction manager is down, yet every RM learned the outcome, which
                // n2 decided: committed, since every instance chose Prepared.
                let nodes = v["nodes"].as_array().expect("nodes");
                assert_eq!(nodes[0]["up"], false, "{nodes:?}");
                for rm in &nodes[2..] {
                    assert!(
                        rm["notes"]
                            .as_array()
                            .is_some_and(|t| t.contains(&json!("t1: Committed"))),
                        "{rm}"
                    );
                }
                assert_eq!(v["ops"][0]["output"], "Committed", "{}", v["ops"]);
                let log = v["log"].as_array().expect("log");
                let said = |t: &str| {
                    log.iter()
                        .any(|e| e["text"].as_str().is_some_and(|x| x.contains(t)))
                };
                assert!(said("n2, a leader, has decided t1: Committed"), "{log:?}");
                assert!(said("n2's timer fires: a transaction"), "{log:?}");
                let chosen = v["chosen"].as_array().expect("chosen");
                assert_eq!(chosen.len(), 3, "one instance per RM: {chosen:?}");
            }
            Some("cheap-auxiliary") => {
                // x=1 was sent to the auxiliaries (a main was dead), the dead main was dropped
                // through a stop-sign, and x=2 went to the mains alone.
                let log = v["log"].as_array().expect("log");
                let proposed = |value: &str| {
                    log.iter()
                        .filter_map(|e| e["text"].as_str())
                        .find(|t| t.contains(&format!("proposes c{value}'s put x={value}")))
                        .unwrap_or_else(|| panic!("x={value} proposed: {log:?}"))
                        .to_string()
                };
                let first = proposed("1");
                assert!(first.contains("n4") && first.contains("n5"), "{first}");
                let second = proposed("2");
                assert!(!second.contains("n4") && !second.contains("n5"), "{second}");
                let chosen = v["chosen"].as_array().expect("chosen");
                assert_eq!(chosen[0]["value"], "'put x=1'", "{chosen:?}");
                let stop = chosen
                    .iter()
                    .filter_map(|c| c["value"].as_str())
                    .find(|t| t.starts_with("stop-sign"))
                    .expect("a stop-sign");
                let dead = v["nodes"]
                    .as_array()
                    .expect("nodes")
                    .iter()
                    .position(|n| n["up"] == false)
                    .expect("a dead main")
                    + 1;
                assert!(dead <= 3, "a main died: n{dead}");
                assert!(!stop.contains(&format!("n{dead},")), "{stop}");
                for aux in [3, 4] {
                    assert!(
                        v["nodes"][aux]["notes"].as_array().is_some_and(|t| t
                            .iter()
                            .any(|x| x.as_str().is_some_and(|x| x.starts_with("auxiliary")))),
                        "{}",
                        v["nodes"][aux]
                    );
                }
                assert_eq!(v["ops"][1]["output"], "ok", "{}", v["ops"]);
            }
            Some("disk-mid-write") => {
                // d3 failed mid-write and came back with n1's block torn; every processor
                // decided n1's 'a' from the majority d1, d2.
                let nodes = v["nodes"].as_array().expect("nodes");
                assert_eq!(nodes.len(), 6, "3 processors and 3 disks: {nodes:?}");
                for p in &nodes[..3] {
                    assert_eq!(p["role"], "decided", "{p}");
                    assert!(
                        p["notes"]
                            .as_array()
                            .is_some_and(|t| t.contains(&json!("decided 'a'"))),
                        "{p}"
                    );
                }
                assert_eq!(nodes[5]["name"], "d3");
                assert!(
                    nodes[5]["notes"].as_array().is_some_and(
                        |t| t.contains(&json!("n1's block: torn (its checksum fails)"))
                    ),
                    "{}",
                    nodes[5]
                );
                let chosen = v["chosen"].as_array().expect("chosen");
                assert_eq!(chosen.len(), 1, "{chosen:?}");
                assert_eq!(chosen[0]["value"], "'a'", "{chosen:?}");
                let log = v["log"].as_array().expect("log");
                let said = |t: &str| {
                    log.iter()
                        .any(|e| e["text"].as_str().is_some_and(|x| x.contains(t)))
                };
                assert!(
                    said("d3 fails in the middle of writing n1's block"),
                    "{log:?}"
                );
                assert!(said("d3 cannot return n1's block"), "{log:?}");
                assert_eq!(v["ops"][1]["output"], "decided 'a'", "{}", v["ops"]);
            }
            other => panic!("unknown scenario {other:?}"),
        }
    }
}

/// Units of a scenario's first `k` actions.
fn units_of(actions: &[Value]) -> u64 {
    actions
        .iter()
        .map(|a| {
            if a["do"] == "step" {
                a["n"].as_u64().unwrap_or(1)
            } else {
                1
            }
        })
        .sum()
}

/// The flexible-quorums scenario: 'put x=1' was chosen while only two of five were up, which
/// majorities cannot do (the same actions with majority quorums leave it unchosen); later,
/// three live nodes could elect no leader, and the chosen write survived the next election.
async fn flexible_quorums_hold(
    addr: std::net::SocketAddr,
    s: &Value,
    actions: &[Value],
    v: &Value,
) {
    let chosen = v["chosen"].as_array().expect("chosen");
    let first = chosen
        .iter()
        .find(|c| c["value"] == "'put x=1'")
        .unwrap_or_else(|| panic!("x=1 chosen: {chosen:?}"));
    assert!(
        chosen.iter().any(|c| c["value"] == "'put x=2'"),
        "{chosen:?}"
    );
    let at = first["at_step"].as_u64().expect("step");
    let then = view(
        addr,
        json!({ "spec": s["spec"], "actions": actions, "at": at }),
    )
    .await;
    let up: Vec<&Value> = then["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["up"] == true)
        .collect();
    assert_eq!(up.len(), 2, "{}", then["nodes"]);
    let mut majority = s["spec"].clone();
    majority.as_object_mut().expect("spec").remove("quorums");
    let with_majorities = view(
        addr,
        json!({ "spec": majority, "actions": actions, "at": at }),
    )
    .await;
    assert!(
        !with_majorities["chosen"]
            .as_array()
            .expect("chosen")
            .iter()
            .any(|c| c["value"] == "'put x=1'"),
        "majorities need three votes: {}",
        with_majorities["chosen"]
    );
    let wait = actions
        .iter()
        .position(|a| a["do"] == "step" && a["n"] == explore::scenarios::FLEXIBLE_LEADERLESS_STEPS)
        .expect("the leaderless wait");
    let waited = units_of(&actions[..=wait]);
    let stuck = view(
        addr,
        json!({ "spec": s["spec"], "actions": actions, "at": waited }),
    )
    .await;
    let live = stuck["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["up"] == true)
        .count();
    assert_eq!(live, 3, "{}", stuck["nodes"]);
    assert_eq!(
        leaders(&stuck),
        0,
        "three of five are no phase-1 quorum of four"
    );
    assert_eq!(leaders(v), 1);
}

/// The ballots `(round, node)` n2 promised, in order, from the log.
fn promised_rounds(v: &Value) -> Vec<(u64, u64)> {
    v["log"]
        .as_array()
        .expect("log")
        .iter()
        .filter_map(|l| {
            let t = l["text"].as_str()?;
            let rest = t.split("n2 promises ballot ").nth(1)?;
            let ballot = rest.split(' ').next()?;
            let (round, node) = ballot.split_once('.')?;
            Some((round.parse().ok()?, node.parse().ok()?))
        })
        .collect()
}

/// A session driven step by step against the server, the way the page does it.
#[cfg(feature = "planted-bugs")]
struct Drive {
    addr: std::net::SocketAddr,
    spec: Value,
    actions: Vec<Value>,
    last: Value,
}

#[cfg(feature = "planted-bugs")]
impl Drive {
    async fn new(addr: std::net::SocketAddr, spec: Value) -> Drive {
        let last = view(addr, json!({ "spec": spec, "actions": [] })).await;
        Drive {
            addr,
            spec,
            actions: Vec::new(),
            last,
        }
    }

    async fn act(&mut self, action: Value) -> &Value {
        self.actions.push(action);
        self.last = view(
            self.addr,
            json!({ "spec": self.spec, "actions": self.actions }),
        )
        .await;
        assert!(self.last["note"].is_null(), "{}", self.last["note"]);
        &self.last
    }

    /// Steps one event at a time until `done` holds; panics after `max` steps.
    async fn until(&mut self, max: usize, done: impl Fn(&Value) -> bool) {
        for _ in 0..max {
            if done(&self.last) {
                return;
            }
            self.act(json!({ "do": "step" })).await;
        }
        assert!(
            done(&self.last),
            "not reached in {max} steps: {}",
            self.last
        );
    }

    /// Steps until a violation that `pick` chooses shows, and returns it.
    async fn until_violation(&mut self, max: usize, pick: impl Fn(&Value) -> bool) -> Value {
        self.until(max, |v| violation(v, &pick).is_some()).await;
        violation(&self.last, &pick).expect("violation")
    }

    /// Delivers or drops the in-flight message `pick` chooses.
    async fn on_message(&mut self, what: &str, pick: impl Fn(&Value) -> bool) {
        let id = self.last["in_flight"]
            .as_array()
            .expect("in flight")
            .iter()
            .find(|m| pick(m))
            .map(|m| m["id"].clone())
            .unwrap_or_else(|| panic!("no such message: {}", self.last["in_flight"]));
        self.act(json!({ "do": what, "id": id })).await;
    }
}

fn leader_of(v: &Value) -> Option<u64> {
    v["nodes"]
        .as_array()?
        .iter()
        .position(|n| n["role"] == "leader")
        .map(|i| i as u64 + 1)
}

#[cfg(feature = "planted-bugs")]
fn accept(slot: u64, from: u64, to: u64) -> impl Fn(&Value) -> bool {
    move |m| {
        m["kind"] == "accept"
            && m["from"] == format!("n{from}")
            && m["to"] == format!("n{to}")
            && m["label"]
                .as_str()
                .is_some_and(|l| l.contains(&format!(" slot {slot} ")))
    }
}

/// "Break it": with a planted bug (a new leader ignores the values other acceptors report in
/// their promises), a crafted schedule makes the simulator's agreement check fail, and the
/// view shows the violation with the events that led to it.
#[cfg(feature = "planted-bugs")]
#[tokio::test]
async fn break_it_a_planted_bug_makes_the_simulator_report_a_violation() {
    let addr = start().await;
    let spec =
        json!({ "protocol": "multi", "nodes": 3, "seed": 2, "bug": "ignore-promised-values" });
    let mut d = Drive::new(addr, spec.clone()).await;
    d.until(200, |v| leader_of(v).is_some()).await;
    let old = leader_of(&d.last).expect("leader");
    let others: Vec<u64> = (1..=3).filter(|n| *n != old).collect();
    let (a, b) = (others[0], others[1]);
    d.act(json!({ "do": "propose", "value": "1", "client": 1, "key": "x" }))
        .await;
    d.until(200, |v| {
        v["in_flight"]
            .as_array()
            .is_some_and(|f| f.iter().any(accept(1, old, a)))
    })
    .await;
    // Slot 1 reaches one follower only; the leader counts that vote and its own, so 'put x=1'
    // is chosen, and the leader applies it.
    d.on_message("deliver", accept(1, old, a)).await;
    d.on_message("drop", accept(1, old, b)).await;
    let i = old as usize - 1;
    d.until(200, |v| v["nodes"][i]["chosen_through"] == 1).await;
    assert_eq!(d.last["chosen"][0]["value"], "'put x=1'");
    // The leader dies before telling anyone; the follower that never saw slot 1 takes over.
    d.act(json!({ "do": "crash", "node": old })).await;
    d.act(json!({ "do": "timer", "node": b })).await;
    d.until(200, |v| leader_of(v) == Some(b)).await;
    assert_eq!(d.last["violations"], json!([]), "not broken yet");
    // With the bug, it ignored the 'put x=1' its peer reported, so slot 1 looks free to it.
    d.act(json!({ "do": "propose", "value": "2", "client": 2, "key": "y" }))
        .await;
    // The simulator's own agreement check (values handed out to the state machine) fires,
    // as well as the explorer's (two quorums for one slot).
    let by_sim = |x: &Value| {
        x["check"] == "agreement"
            && x["detail"]
                .as_str()
                .is_some_and(|t| t.contains("handed out"))
    };
    let found = d.until_violation(300, by_sim).await;
    let v = &d.last;
    assert!(
        found["detail"]
            .as_str()
            .is_some_and(|t| t.contains("slot 1")),
        "{found}"
    );
    assert_eq!(
        v["chosen"][0]["value"], "'put x=1'",
        "the first value chosen stays shown"
    );
    // The events that led to it are in the log, before the violation's step.
    let at = found["step"].as_u64().expect("step") as usize;
    let log = v["log"].as_array().expect("log");
    let said = |needle: &str| {
        log.iter().any(|l| {
            l["step"].as_u64().is_some_and(|s| s as usize <= at)
                && l["text"].as_str().is_some_and(|t| t.contains(needle))
        })
    };
    assert!(said(&format!("n{old} loses power")), "{log:?}");
    assert!(said(&format!("n{b}'s election timer fires")), "{log:?}");
    assert!(said("The network loses Accept"), "{log:?}");
    // The same session without the bug never violates anything: the new leader re-proposes
    // 'put x=1' in slot 1.
    let clean = view(
        addr,
        json!({ "spec": without_bug(&spec), "actions": d.actions }),
    )
    .await;
    assert_eq!(clean["violations"], json!([]), "{}", clean["chosen"]);
}

/// How many nodes of a view play leader.
fn leaders(v: &serde_json::Value) -> usize {
    v["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter(|n| n["role"] == "leader")
        .count()
}

/// A message of `kind` from `from` to `to` whose label contains `text`.
#[cfg(feature = "planted-bugs")]
fn message(kind: &'static str, from: String, to: String, text: String) -> impl Fn(&Value) -> bool {
    move |m| {
        m["kind"] == kind
            && m["from"] == from.as_str()
            && m["to"] == to.as_str()
            && m["label"].as_str().is_some_and(|l| l.contains(&text))
    }
}

/// A message of `kind` on the link `from` → `to`.
#[cfg(feature = "planted-bugs")]
fn link(kind: &'static str, from: &'static str, to: &'static str) -> impl Fn(&Value) -> bool {
    move |m| m["kind"] == kind && m["from"] == from && m["to"] == to
}

/// The first violation of a view that `pick` chooses.
#[cfg(feature = "planted-bugs")]
fn violation(v: &Value, pick: impl Fn(&Value) -> bool) -> Option<Value> {
    v["violations"]
        .as_array()?
        .iter()
        .find(|x| pick(x))
        .cloned()
}

/// A violation of check `check`.
#[cfg(feature = "planted-bugs")]
fn check(check: &'static str) -> impl Fn(&Value) -> bool {
    move |x| x["check"] == check
}

/// `spec` without its planted bug.
#[cfg(feature = "planted-bugs")]
fn without_bug(spec: &Value) -> Value {
    let mut clean = spec.clone();
    clean.as_object_mut().expect("spec").remove("bug");
    clean
}

/// "Break it" on reconfiguration: with `reconfig-without-stop` a leader proposes a write
/// after its stop-sign in the old configuration, and the new configuration, which never saw
/// that write, chooses another value in the same slot: two values chosen in one slot.
/// Without the bug the same first actions leave nothing proposed after the stop-sign.
#[cfg(feature = "planted-bugs")]
#[tokio::test]
async fn break_it_a_change_without_the_stop_sign_rule_chooses_two_values_in_one_slot() {
    let addr = start().await;
    let spec = json!({ "protocol": "multi", "nodes": 3, "spares": 1, "seed": 2,
                       "bug": "reconfig-without-stop" });
    let mut d = Drive::new(addr, spec.clone()).await;
    d.until(300, |v| leader_of(v).is_some()).await;
    let l = leader_of(&d.last).expect("leader");
    let others: Vec<u64> = (1..=3).filter(|n| *n != l).collect();
    let (dead, kept) = (others[0], others[1]);
    let (nl, nk) = (format!("n{l}"), format!("n{kept}"));
    // Both clients write once, so both know who leads.
    d.act(json!({ "do": "propose", "value": "1", "client": 1, "key": "x" }))
        .await;
    d.act(json!({ "do": "propose", "value": "0", "client": 2, "key": "w" }))
        .await;
    d.until(300, |v| {
        v["ops"]
            .as_array()
            .is_some_and(|o| o.len() == 2 && o.iter().all(|o| !o["output"].is_null()))
    })
    .await;
    d.act(json!({ "do": "crash", "node": dead })).await;
    // n4 joins as a learner, catches up and reports to the leader.
    d.act(json!({ "do": "reconfigure", "voters": [1, 2, 3], "learners": [4] }))
        .await;
    d.until(400, |v| {
        v["nodes"][3]["role"] == "learner"
            && v["nodes"][3]["chosen_through"] == v["nodes"][l as usize - 1]["chosen_through"]
    })
    .await;
    let heard = |v: &Value| {
        v["lines"].as_array().map_or(0, |ls| {
            ls.iter()
                .filter(|x| {
                    x["from"] == "n4" && x["to"] == format!("n{l}") && x["fate"] == "delivered"
                })
                .count()
        })
    };
    let before = heard(&d.last);
    d.until(400, |v| heard(v) > before).await;
    // The change that replaces the dead voter with n4: a stop-sign at slot j.
    d.act(json!({ "do": "reconfigure", "voters": [l, kept, 4], "learners": [] }))
        .await;
    let j = d.last["nodes"][l as usize - 1]["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .filter(|s| {
            s["value"]
                .as_str()
                .is_some_and(|t| t.starts_with("stop-sign"))
        })
        .filter_map(|s| s["slot"].as_u64())
        .max()
        .expect("the stop-sign in the leader's log");
    let after = j + 1;
    // A write reaches the leader at once (c1 knows who leads: it wrote x=1 there); with the
    // bug it goes into slot j + 1, in the old configuration, after the stop-sign.
    d.act(json!({ "do": "propose", "value": "2", "client": 1, "key": "y" }))
        .await;
    d.on_message(
        "deliver",
        message("request", "c1".into(), nl.clone(), "put y=2".into()),
    )
    .await;
    let accept_after = format!("slot {after} ");
    let first_actions = d.actions.clone();
    d.on_message(
        "deliver",
        message("accept", nl.clone(), nk.clone(), format!("slot {j} ")),
    )
    .await;
    d.on_message(
        "deliver",
        message("accept", nl.clone(), nk.clone(), accept_after.clone()),
    )
    .await;
    // Both votes reach the kept voter's disk and the leader's: 'put y=2' is chosen in slot
    // j + 1 by a quorum of the old voters.
    d.until(200, |v| {
        v["chosen"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["slot"] == after && c["value"] == "'put y=2'")
        })
    })
    .await;
    // The leader hears only the vote for the stop-sign: the change is in force, and the
    // leader (a voter of the new configuration) runs phase 1 in it. The vote for slot j + 1
    // is lost.
    d.until(200, |v| {
        v["in_flight"].as_array().is_some_and(|f| {
            f.iter().any(message(
                "accepted",
                nk.clone(),
                nl.clone(),
                format!("slot {j}"),
            ))
        })
    })
    .await;
    if let Some(id) = d.last["in_flight"].as_array().and_then(|f| {
        f.iter()
            .find(|m| message("accepted", nk.clone(), nl.clone(), accept_after.clone())(m))
            .map(|m| m["id"].clone())
    }) {
        d.act(json!({ "do": "drop", "id": id })).await;
    }
    d.on_message(
        "deliver",
        message("accepted", nk.clone(), nl.clone(), format!("slot {j}")),
    )
    .await;
    if let Some(id) = d.last["in_flight"].as_array().and_then(|f| {
        f.iter()
            .find(|m| message("accepted", nk.clone(), nl.clone(), accept_after.clone())(m))
            .map(|m| m["id"].clone())
    }) {
        d.act(json!({ "do": "drop", "id": id })).await;
    }
    assert_eq!(d.last["violations"], json!([]), "not broken yet");
    // Another client writes; the new configuration's phase 1 finds nothing in slot j + 1
    // (old-epoch votes after the stop-sign are void) and chooses this write there.
    d.act(json!({ "do": "propose", "value": "3", "client": 2, "key": "z" }))
        .await;
    let found = d.until_violation(600, check("agreement")).await;
    let detail = found["detail"].as_str().expect("detail");
    assert!(detail.contains(&format!("slot {after}:")), "{found}");
    assert!(detail.contains("'put y=2'"), "{found}");
    // Without the bug, the same first actions leave nothing after the stop-sign: the write
    // waits for the new configuration.
    let clean = without_bug(&spec);
    let v = view(addr, json!({ "spec": clean, "actions": first_actions })).await;
    assert!(
        !v["in_flight"]
            .as_array()
            .expect("in flight")
            .iter()
            .any(|m| m["kind"] == "accept"
                && m["label"]
                    .as_str()
                    .is_some_and(|t| t.contains(&accept_after))),
        "{}",
        v["in_flight"]
    );
}

/// "Break it" for Flexible Paxos: without the planted bug, a rule whose phase-1 and phase-2
/// quorums need not meet (3 + 2 = 5 of 5) is refused; with `quorums-do-not-intersect`, a write
/// chosen by two nodes is missed by a phase-1 quorum of the three others, whose leader
/// chooses another value in the same slot, and the page shows the violation.
#[cfg(feature = "planted-bugs")]
#[tokio::test]
async fn break_it_flexible_quorums_that_do_not_intersect_choose_two_values_in_one_slot() {
    let addr = start().await;
    let clean = json!({ "spec": { "protocol": "multi", "nodes": 5, "seed": 1,
        "quorums": "flexible:3,2" }, "actions": [] });
    let error = refused(addr, "/api/view", &clean.to_string()).await;
    assert!(error.starts_with("quorums: "), "{error}");
    let spec = json!({ "protocol": "multi", "nodes": 5, "seed": 1,
        "quorums": "flexible:3,2", "bug": "quorums-do-not-intersect" });
    let mut d = Drive::new(addr, spec).await;
    d.until(300, |v| leader_of(v).is_some()).await;
    let l = leader_of(&d.last).expect("leader");
    let others: Vec<u64> = (1..=5).filter(|n| *n != l).collect();
    let buddy = others[0];
    d.act(json!({ "do": "propose", "value": "1", "client": 1, "key": "x" }))
        .await;
    let all_sent = {
        let others = others.clone();
        move |v: &Value| {
            others.iter().all(|o| {
                v["in_flight"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(accept(1, l, *o)))
            })
        }
    };
    d.until(300, all_sent).await;
    d.on_message("deliver", accept(1, l, buddy)).await;
    for o in &others[1..] {
        d.on_message("drop", accept(1, l, *o)).await;
    }
    let i = l as usize - 1;
    d.until(300, |v| v["nodes"][i]["chosen_through"] == 1).await;
    assert_eq!(d.last["chosen"][0]["value"], "'put x=1'");
    d.act(json!({ "do": "crash", "node": l })).await;
    d.act(json!({ "do": "crash", "node": buddy })).await;
    // Copies a heartbeat may have re-sent: the three others must never see slot 1.
    loop {
        let copy = d.last["in_flight"]
            .as_array()
            .expect("in flight")
            .iter()
            .find(|m| m["kind"] == "accept" && m["from"] == format!("n{l}"))
            .map(|m| m["id"].clone());
        let Some(id) = copy else { break };
        d.act(json!({ "do": "drop", "id": id })).await;
    }
    let a = others[1];
    d.act(json!({ "do": "timer", "node": a })).await;
    d.until(300, |v| leader_of(v) == Some(a)).await;
    assert_eq!(d.last["violations"], json!([]), "not broken yet");
    d.act(json!({ "do": "propose", "value": "2", "client": 2, "key": "y" }))
        .await;
    let found = d.until_violation(1_500, check("agreement")).await;
    assert!(
        found["detail"]
            .as_str()
            .is_some_and(|t| t.contains("slot 1") && t.contains("put y=2")),
        "{found}"
    );
}

/// "Break it" for Fast Paxos: with `fast-quorum-too-small` a fast quorum of 3 nodes is 2, so
/// 'b' is chosen in the fast round by n1 and n2; a classic round started by n3, hearing from
/// n3 ('a') and n1 ('b'), cannot tell which may have been chosen and picks 'a', a second
/// value. Without the bug the same actions choose one value only.
#[cfg(feature = "planted-bugs")]
#[tokio::test]
async fn break_it_a_fast_quorum_too_small_lets_recovery_choose_a_second_value() {
    let addr = start().await;
    let spec = json!({ "protocol": "fast", "nodes": 3, "seed": 1, "bug": "fast-quorum-too-small" });
    let mut d = Drive::new(addr, spec.clone()).await;
    d.until(50, |v| {
        v["in_flight"].as_array().is_some_and(Vec::is_empty) && v["step"].as_u64() > Some(0)
    })
    .await;
    let log0 = d.last["log"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(log0.contains("Fast quorums are 2 of 3"), "{log0}");
    // n3 hears nothing from n1 and n2: it must not learn 'b'.
    d.act(json!({ "do": "cut", "from": 1, "to": 3 })).await;
    d.act(json!({ "do": "cut", "from": 2, "to": 3 })).await;
    d.act(json!({ "do": "propose", "value": "b", "client": 1 }))
        .await;
    d.act(json!({ "do": "propose", "value": "a", "client": 2 }))
        .await;
    d.on_message("deliver", link("propose", "c1", "n1")).await;
    d.on_message("deliver", link("propose", "c1", "n2")).await;
    d.on_message("deliver", link("propose", "c2", "n3")).await;
    d.until(100, |v| {
        v["chosen"][0]["value"] == "'b'" && v["nodes"][0]["chosen_through"] == 1
    })
    .await;
    assert_eq!(
        d.last["chosen"][0]["ballot"], "0.1",
        "chosen in the fast round"
    );
    assert_eq!(d.last["nodes"][2]["chosen_through"], 0, "n3 does not know");
    d.act(json!({ "do": "heal_all" })).await;
    // n3 starts a classic round, and the learner carries its messages by hand.
    d.act(json!({ "do": "timer", "node": 3 })).await;
    d.act(json!({ "do": "persist", "node": 3 })).await;
    d.on_message("deliver", link("1a", "n3", "n1")).await;
    d.act(json!({ "do": "persist", "node": 1 })).await;
    d.on_message("deliver", link("1b", "n1", "n3")).await;
    d.act(json!({ "do": "persist", "node": 3 })).await;
    d.on_message("deliver", link("2a", "n3", "n1")).await;
    d.act(json!({ "do": "persist", "node": 1 })).await;
    let found = violation(&d.last, check("agreement"))
        .unwrap_or_else(|| panic!("no violation: {}", d.last["log"]));
    assert!(
        found["detail"]
            .as_str()
            .is_some_and(|t| t.contains("'a'") && t.contains("'b'")),
        "{found}"
    );
    // Without the bug, the same actions never choose two values.
    let clean = without_bug(&spec);
    let replay = view(addr, json!({ "spec": clean, "actions": d.actions })).await;
    assert_eq!(replay["violations"], json!([]), "{}", replay["chosen"]);
}

/// "Break it" for EPaxos: with `drop-dependency-in-pre-accept`, the schedule of the
/// epaxos-conflict scenario lets both conflicting commands take the fast path without
/// depending on each other, and replicas execute them in different orders: the explorer's
/// execution-order check fires. The scenario itself (no bug) has no violation.
#[cfg(feature = "planted-bugs")]
#[tokio::test]
async fn break_it_a_dropped_dependency_lets_replicas_execute_conflicting_commands_in_different_orders(
) {
    let addr = start().await;
    let scenario = explore::scenarios::all()
        .into_iter()
        .find(|s| s.id == "epaxos-conflict")
        .expect("scenario");
    let mut spec = serde_json::to_value(&scenario.spec).expect("spec");
    spec["bug"] = json!("drop-dependency-in-pre-accept");
    // The scenario's hand deliveries, by kind and link: ids differ once the bug changes the
    // run, so they are found again in this one.
    let mut d = Drive::new(addr, spec).await;
    d.act(json!({ "do": "propose", "value": "1", "node": 1, "client": 1, "key": "x" }))
        .await;
    d.act(json!({ "do": "propose", "value": "2", "node": 3, "client": 2, "key": "x" }))
        .await;
    d.on_message("deliver", link("pre-accept", "n1", "n3"))
        .await;
    d.on_message("deliver", link("pre-accept", "n3", "n1"))
        .await;
    d.on_message("deliver", link("pre-accept-ok", "n3", "n1"))
        .await;
    d.on_message("deliver", link("pre-accept-ok", "n1", "n3"))
        .await;
    d.until_violation(300, check("execution order")).await;
    let nodes = d.last["nodes"].as_array().expect("nodes");
    assert!(
        nodes[0]["notes"][0] == "fast path: 1, slow path: 0"
            && nodes[2]["notes"][0] == "fast path: 1, slow path: 0",
        "both took the fast path: {nodes:?}"
    );
}

/// "Break it" for Paxos Commit: n5 votes Aborted, and the learner holds its vote back (its
/// 2a messages dropped) while the other two Prepared votes reach the acceptors. With
/// `commit-with-missing-vote` the transaction manager commits with n5's vote missing, while n5
/// knows the transaction aborted: the explorer's atomic-commitment and commit-validity checks
/// fire. Without the bug, the same actions commit nothing.
#[cfg(feature = "planted-bugs")]
#[tokio::test]
async fn break_it_a_commit_with_one_vote_missing_commits_what_an_rm_aborted() {
    let addr = start().await;
    let spec = json!({ "protocol": "commit", "nodes": 5, "seed": 1,
        "bug": "commit-with-missing-vote" });
    let mut d = Drive::new(addr, spec.clone()).await;
    d.act(json!({ "do": "propose", "value": "abort", "node": 5 }))
        .await;
    d.act(json!({ "do": "propose", "value": "pay", "node": 3 }))
        .await;
    let n5_vote = |m: &Value| m["kind"] == "2a" && m["from"] == "n5";
    let decided = |v: &Value| {
        v["nodes"][0]["notes"].as_array().is_some_and(|t| {
            t.iter()
                .any(|x| x.as_str().is_some_and(|x| x.starts_with("t1: ")))
        })
    };
    for _ in 0..400 {
        if decided(&d.last) {
            break;
        }
        let held = d.last["in_flight"]
            .as_array()
            .and_then(|f| f.iter().find(|m| n5_vote(m)).map(|m| m["id"].clone()));
        match held {
            Some(id) => d.act(json!({ "do": "drop", "id": id })).await,
            None => d.act(json!({ "do": "step" })).await,
        };
    }
    assert!(decided(&d.last), "n1 never decided: {}", d.last["log"]);
    assert!(
        d.last["nodes"][0]["notes"]
            .as_array()
            .is_some_and(|t| t.contains(&json!("t1: Committed"))),
        "{}",
        d.last["nodes"][0]
    );
    let found = d.until_violation(400, check("atomic commitment")).await;
    assert!(
        found["detail"]
            .as_str()
            .is_some_and(|t| t.contains("Aborted")),
        "{found}"
    );
    assert!(
        violation(&d.last, check("commit validity")).is_some(),
        "{}",
        d.last["violations"]
    );
    // Without the bug, the same actions never commit t1.
    let clean = view(
        addr,
        json!({ "spec": without_bug(&spec), "actions": d.actions }),
    )
    .await;
    assert_eq!(clean["violations"], json!([]), "{}", clean["log"]);
    assert!(
        !clean["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .any(|n| n["notes"]
                .as_array()
                .is_some_and(|t| t.contains(&json!("t1: Committed")))),
        "{}",
        clean["nodes"]
    );
}

/// "Break it" for Disk Paxos: n1 is cut off from d2 and d3, n2 from d1. With
/// `decide-without-disk-majority` a processor ends a phase after one disk: n1 decides 'a'
/// with its vote on d1 alone, and n2, reading only d2 and d3, never sees it and decides 'b':
/// the explorer's agreement check fires. Without the bug, the same actions leave n1
/// undecided (it cannot reach a majority of disks) and nothing is violated.
#[cfg(feature = "planted-bugs")]
#[tokio::test]
async fn break_it_a_processor_deciding_on_one_disk_lets_two_values_be_decided() {
    let addr = start().await;
    let spec = json!({ "protocol": "disk", "nodes": 3, "seed": 1,
        "bug": "decide-without-disk-majority" });
    let mut d = Drive::new(addr, spec.clone()).await;
    let idle = |v: &Value| (0..3).all(|i| v["nodes"][i]["role"] == "idle");
    let decided = |i: usize, value: &'static str| {
        move |v: &Value| {
            v["nodes"][i]["notes"]
                .as_array()
                .is_some_and(|t| t.contains(&json!(format!("decided '{value}'"))))
        }
    };
    d.until(100, idle).await;
    // Disks are nodes 4, 5 and 6.
    d.act(json!({ "do": "cut", "from": 1, "to": 5 })).await;
    d.act(json!({ "do": "cut", "from": 1, "to": 6 })).await;
    d.act(json!({ "do": "propose", "value": "a", "node": 1 }))
        .await;
    d.act(json!({ "do": "timer", "node": 1 })).await;
    d.until(100, decided(0, "a")).await;
    // n1 decided with its vote on one disk: no majority holds it, and the check says so.
    assert!(
        violation(&d.last, |x| x["check"] == "agreement"
            && x["detail"].as_str().is_some_and(
                |t| t.contains("n1 learned 'a', which no quorum accepted")
            ))
        .is_some(),
        "{}",
        d.last["violations"]
    );
    d.act(json!({ "do": "cut", "from": 2, "to": 4 })).await;
    d.act(json!({ "do": "propose", "value": "b", "node": 2 }))
        .await;
    d.act(json!({ "do": "timer", "node": 2 })).await;
    d.until(200, decided(1, "b")).await;
    // Two values decided: n2's 'b' is on a majority (d2, d3), chosen, and n1 decided 'a'.
    assert_eq!(d.last["chosen"][0]["value"], "'b'", "{}", d.last["chosen"]);
    assert!(
        violation(&d.last, |x| x["check"] == "agreement"
            && x["detail"].as_str().is_some_and(
                |t| t.contains("n1 learned 'a', but 'b' was chosen")
            ))
        .is_some(),
        "{}",
        d.last["violations"]
    );
    // Without the bug, the same actions: n1 never gets a majority of disks, so it decides
    // nothing, and n2 alone decides.
    let clean = view(
        addr,
        json!({ "spec": without_bug(&spec), "actions": d.actions }),
    )
    .await;
    assert_eq!(clean["violations"], json!([]), "{}", clean["log"]);
    assert!(
        !clean["nodes"][0]["notes"].as_array().is_some_and(|t| t
            .iter()
            .any(|x| x.as_str().is_some_and(|x| x.starts_with("decided")))),
        "{}",
        clean["nodes"][0]
    );
}
