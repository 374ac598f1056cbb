//! EPaxos against Multi-Paxos under the same conditions: the real cores of both
//! ([`paxos::epaxos::Replica`], [`paxos::multi::Replica`]) on one simulated network with a
//! fixed one-way latency, instant disks and no faults, so that time divided by the latency
//! counts message delays.
//!
//! One client per replica, on the same machine as it (no client hop), issuing writes one after
//! another; a write goes to a hot key shared by everyone with the conflict probability, else to
//! the client's own key. Under Multi-Paxos a replica that is not the leader forwards the
//! command to the leader (one delay) and hears the result back (one delay). Figures per
//! command: latency in message delays (mean and p99), and messages sent or received by the
//! busiest replica, the throughput proxy (a replica handling fewer messages per command can
//! carry proportionally more commands before it saturates). "Slowed" adds four delays to
//! every message the leader's node (node 1, Multi-Paxos's leader) sends.

use crate::rng::chance_permille;
use paxos::epaxos::{self, EpaxosOptions};
use paxos::multi::{self, ClientId, ReplicaOptions, Role};
use paxos::{Configuration, NodeId};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// One-way latency, µs.
const LATENCY_US: u64 = 1_000;
/// Extra delay on every message the slowed node sends, µs.
const SLOW_EXTRA_US: u64 = 4 * LATENCY_US;

/// One row of the table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchRow {
    /// "epaxos" or "multi-paxos".
    pub protocol: String,
    /// Per cent of commands on the shared hot key.
    pub conflict_percent: u32,
    /// Whether node 1 was slowed.
    pub slowed: bool,
    /// Mean latency, message delays.
    pub mean_delays: f64,
    /// 99th percentile, message delays.
    pub p99_delays: f64,
    /// Messages sent or received by the busiest replica, per command.
    pub busiest_msgs_per_cmd: f64,
    /// EPaxos: share of commands chosen on the fast path.
    pub fast_share: Option<f64>,
}

/// The whole table.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BenchTable {
    /// Replicas.
    pub replicas: usize,
    /// Commands per client.
    pub commands_per_client: usize,
    /// Rows.
    pub rows: Vec<BenchRow>,
}

impl fmt::Display for BenchTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "EPaxos vs Multi-Paxos: {} replicas, one closed-loop client per replica, {} writes each, one-way latency 1 delay, slowed = +4 delays on node 1's messages",
            self.replicas, self.commands_per_client
        )?;
        writeln!(
            f,
            "| protocol    | conflicts | node 1 | mean delays | p99 delays | msgs/cmd at busiest replica | fast path |"
        )?;
        writeln!(
            f,
            "|-------------|-----------|--------|-------------|------------|-----------------------------|-----------|"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "| {:<11} | {:>8}% | {:<6} | {:>11.2} | {:>10.2} | {:>27.2} | {:>9} |",
                r.protocol,
                r.conflict_percent,
                if r.slowed { "slowed" } else { "normal" },
                r.mean_delays,
                r.p99_delays,
                r.busiest_msgs_per_cmd,
                r.fast_share
                    .map(|s| format!("{:.0}%", s * 100.0))
                    .unwrap_or_else(|| "-".into())
            )?;
        }
        Ok(())
    }
}

/// Runs every configuration: conflicts 0, 2, 25, 100 %, node 1 normal and slowed, both
/// protocols.
pub fn bench_epaxos_vs_multi(replicas: usize, commands_per_client: usize) -> BenchTable {
    let mut table = BenchTable {
        replicas,
        commands_per_client,
        rows: Vec::new(),
    };
    for slowed in [false, true] {
        for conflict in [0, 2, 25, 100] {
            table
                .rows
                .push(run_epaxos(replicas, commands_per_client, conflict, slowed));
            table
                .rows
                .push(run_multi(replicas, commands_per_client, conflict, slowed));
        }
    }
    table
}

/// The hot key with probability `conflict` %, else the client's own.
fn key_for(rng: &mut ChaCha8Rng, client: usize, conflict: u32) -> String {
    if chance_permille(rng, conflict * 10) {
        "hot".into()
    } else {
        format!("own{client}")
    }
}

fn delay(from: usize, slowed: bool) -> u64 {
    LATENCY_US
        + if slowed && from == 0 {
            SLOW_EXTRA_US
        } else {
            0
        }
}

fn summarize(latencies: &mut [u64]) -> (f64, f64) {
    latencies.sort_unstable();
    let mean = latencies.iter().sum::<u64>() as f64 / latencies.len().max(1) as f64;
    let p99 = latencies
        .get(((latencies.len() as f64 - 1.0) * 0.99).round() as usize)
        .copied()
        .unwrap_or(0);
    (mean / LATENCY_US as f64, p99 as f64 / LATENCY_US as f64)
}

enum EpEvent {
    Deliver(usize, usize, Box<epaxos::EpaxosMessage>),
    Tick(usize),
}

fn run_epaxos(n: usize, per_client: usize, conflict: u32, slowed: bool) -> BenchRow {
    let ids: Vec<NodeId> = (1..=n as u64).map(NodeId).collect();
    let mut rs: Vec<epaxos::Replica> = ids
        .iter()
        .map(|id| epaxos::Replica::new(*id, ids.clone(), EpaxosOptions::default()).expect("ids"))
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(u64::from(conflict) + 100);
    let mut events: BTreeMap<(u64, u64), EpEvent> = BTreeMap::new();
    let mut seq = 0u64;
    let mut handled = vec![0u64; n];
    let mut started: Vec<Option<(epaxos::CommandId, u64)>> = vec![None; n];
    let mut issued = vec![0usize; n];
    let mut latencies = Vec::new();
    for k in 0..n {
        seq += 1;
        events.insert((k as u64, seq), EpEvent::Tick(k));
    }
    let mut now: u64;
    let total = n * per_client;
    let propose = |k: usize,
                   now: u64,
                   rs: &mut Vec<epaxos::Replica>,
                   rng: &mut ChaCha8Rng,
                   issued: &mut Vec<usize>,
                   started: &mut Vec<Option<(epaxos::CommandId, u64)>>| {
        if issued[k] >= per_client {
            return;
        }
        issued[k] += 1;
        let id = epaxos::CommandId {
            client: k as u64,
            seq: issued[k] as u64,
        };
        let op = epaxos::KvOp::Put {
            key: key_for(rng, k, conflict),
            value: format!("{k}-{}", issued[k]),
        };
        rs[k]
            .propose(epaxos::Command::Kv { id, op })
            .expect("bounded load");
        started[k] = Some((id, now));
    };
    for k in 0..n {
        propose(k, 0, &mut rs, &mut rng, &mut issued, &mut started);
    }
    while latencies.len() < total {
        let Some(((at, _), ev)) = events.pop_first() else {
            break;
        };
        now = at;
        let k = match ev {
            EpEvent::Deliver(from, to, msg) => {
                handled[to] += 1;
                rs[to].step(NodeId(from as u64 + 1), *msg);
                to
            }
            EpEvent::Tick(k) => {
                rs[k].tick(&mut rng);
                seq += 1;
                events.insert((now + LATENCY_US, seq), EpEvent::Tick(k));
                k
            }
        };
        let ready = rs[k].ready();
        for o in ready.send {
            handled[k] += 1;
            seq += 1;
            let to = (o.to.0 - 1) as usize;
            events.insert(
                (now + delay(k, slowed), seq),
                EpEvent::Deliver(k, to, Box::new(o.msg)),
            );
        }
        for (_, command) in ready.executed {
            if let epaxos::Command::Kv { id, .. } = command {
                if started[k].is_some_and(|(s, _)| s == id) {
                    let (_, t0) = started[k].take().expect("started");
                    latencies.push(now - t0);
                    propose(k, now, &mut rs, &mut rng, &mut issued, &mut started);
                }
            }
        }
    }
    let fast: u64 = rs.iter().map(|r| r.counters().fast_commits).sum();
    let slow: u64 = rs.iter().map(|r| r.counters().slow_commits).sum();
    let (mean, p99) = summarize(&mut latencies);
    BenchRow {
        protocol: "epaxos".into(),
        conflict_percent: conflict,
        slowed,
        mean_delays: mean,
        p99_delays: p99,
        busiest_msgs_per_cmd: *handled.iter().max().unwrap_or(&0) as f64 / total.max(1) as f64,
        fast_share: Some(fast as f64 / (fast + slow).max(1) as f64),
    }
}

enum MpEvent {
    Deliver(usize, usize, multi::Message),
    Tick(usize),
    /// A command forwarded to the leader.
    Forward(usize, multi::Command),
    /// The leader's answer back to the command's replica.
    Done(usize, multi::CommandId),
}

fn run_multi(n: usize, per_client: usize, conflict: u32, slowed: bool) -> BenchRow {
    let config = Configuration::majority_of(n as u64).expect("a majority configuration");
    let mut rs: Vec<multi::Replica> = (1..=n as u64)
        .map(|i| {
            multi::Replica::new(NodeId(i), config.clone(), ReplicaOptions::default())
                .expect("a voter")
        })
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(u64::from(conflict) + 100);
    let mut events: BTreeMap<(u64, u64), MpEvent> = BTreeMap::new();
    let mut seq = 0u64;
    let mut handled = vec![0u64; n];
    let mut started: Vec<Option<(multi::CommandId, u64)>> = vec![None; n];
    let mut issued = vec![0usize; n];
    let mut latencies = Vec::new();
    let total = n * per_client;
    rs[0].campaign();
    for k in 0..n {
        seq += 1;
        events.insert((k as u64, seq), MpEvent::Tick(k));
    }
    let mut now = 0u64;
    let mut clients_started = false;
    while latencies.len() < total && now < 60_000_000 {
        let Some(((at, _), ev)) = events.pop_first() else {
            break;
        };
        now = at;
        let mut touched = Vec::new();
        match ev {
            MpEvent::Deliver(from, to, msg) => {
                handled[to] += 1;
                let _ = rs[to].step(NodeId(from as u64 + 1), msg);
                touched.push(to);
            }
            MpEvent::Tick(k) => {
                rs[k].tick(&mut rng);
                seq += 1;
                events.insert((now + LATENCY_US, seq), MpEvent::Tick(k));
                touched.push(k);
            }
            MpEvent::Forward(to, command) => {
                handled[to] += 1;
                // The benchmark has no faults: the leader stays, so a refusal is a bug here.
                rs[to]
                    .propose(command)
                    .expect("the leader takes the command");
                touched.push(to);
            }
            MpEvent::Done(k, id) => {
                handled[k] += 1;
                if started[k].is_some_and(|(s, _)| s == id) {
                    let (_, t0) = started[k].take().expect("started");
                    latencies.push(now - t0);
                }
            }
        }
        let leader = rs.iter().position(|r| r.role() == Role::Leader);
        if !clients_started {
            if let Some(l) = leader {
                if l == 0 && rs.iter().all(|r| r.leader() == Some(NodeId(1))) {
                    clients_started = true;
                }
            }
        }
        // Closed loop: every idle client issues its next command.
        if clients_started {
            for k in 0..n {
                if started[k].is_none() && issued[k] < per_client {
                    issued[k] += 1;
                    let id = multi::CommandId {
                        client: ClientId(k as u64 + 1),
                        seq: issued[k] as u64,
                    };
                    let key = key_for(&mut rng, k, conflict);
                    let command = multi::Command {
                        id,
                        payload: format!("put {key} {k}-{}", issued[k]).into_bytes().into(),
                    };
                    started[k] = Some((id, now));
                    if k == 0 {
                        rs[0]
                            .propose(command)
                            .expect("the leader takes the command");
                        touched.push(0);
                    } else {
                        handled[k] += 1;
                        seq += 1;
                        events.insert((now + delay(k, slowed), seq), MpEvent::Forward(0, command));
                    }
                }
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for k in touched {
            loop {
                let ready = rs[k].ready();
                if ready.is_empty() {
                    break;
                }
                if let Some(batch) = &ready.persist {
                    rs[k].persisted(batch.seq);
                }
                for o in ready.send {
                    handled[k] += 1;
                    seq += 1;
                    let to = (o.to.0 - 1) as usize;
                    events.insert(
                        (now + delay(k, slowed), seq),
                        MpEvent::Deliver(k, to, o.msg),
                    );
                }
                if k != 0 {
                    continue;
                }
                for entry in ready.chosen {
                    if let multi::Value::Batch(commands) = entry.value {
                        for c in commands {
                            let origin = (c.id.client.0 - 1) as usize;
                            if origin == 0 {
                                if started[0].is_some_and(|(s, _)| s == c.id) {
                                    let (_, t0) = started[0].take().expect("started");
                                    latencies.push(now - t0);
                                }
                            } else {
                                handled[0] += 1;
                                seq += 1;
                                events.insert(
                                    (now + delay(0, slowed), seq),
                                    MpEvent::Done(origin, c.id),
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    let (mean, p99) = summarize(&mut latencies);
    BenchRow {
        protocol: "multi-paxos".into(),
        conflict_percent: conflict,
        slowed,
        mean_delays: mean,
        p99_delays: p99,
        busiest_msgs_per_cmd: *handled.iter().max().unwrap_or(&0) as f64 / total.max(1) as f64,
        fast_share: None,
    }
}
