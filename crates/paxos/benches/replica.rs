//! The Multi-Paxos core alone, no faults: commands chosen and applied per second of one CPU.
//!
//! Every replica of the cluster runs on this one thread, messages are delivered in memory and
//! persistence is acknowledged at once, so the figure is the core's CPU cost per replicated
//! command for the whole cluster: the ceiling the core puts on the service.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use paxos::multi::{
    Applier, ClientId, Command, CommandId, Replica, ReplicaOptions, Role, StateMachine,
};
use paxos::{Configuration, NodeId, Slot};
use std::collections::VecDeque;
use std::hint::black_box;

/// A state machine that does almost nothing, so the core's cost is what is measured.
struct Sum(u64);
impl StateMachine for Sum {
    type Output = u64;
    fn apply(&mut self, _slot: Slot, payload: &[u8]) -> u64 {
        self.0 = self.0.wrapping_add(payload.len() as u64);
        self.0
    }
}

struct Cluster {
    replicas: Vec<Replica>,
    appliers: Vec<Applier<Sum>>,
    queue: VecDeque<(NodeId, NodeId, paxos::multi::Message)>,
    applied: Vec<paxos::multi::Applied<u64>>,
    next_seq: u64,
}

impl Cluster {
    fn new(n: u64, batch: usize) -> Cluster {
        let config = Configuration::majority_of(n).expect("config");
        let options = ReplicaOptions {
            batch_commands_max: batch,
            pipeline_window_slots: 64,
            pending_commands_max: 1 << 20,
            ..ReplicaOptions::default()
        };
        let replicas = (1..=n)
            .map(|i| Replica::new(NodeId(i), config.clone(), options.clone()).expect("replica"))
            .collect();
        let appliers = (0..n).map(|_| Applier::new(Sum(0))).collect();
        let mut c = Cluster {
            replicas,
            appliers,
            queue: VecDeque::new(),
            applied: Vec::new(),
            next_seq: 0,
        };
        c.replicas[0].campaign();
        c.settle();
        assert_eq!(c.replicas[0].role(), Role::Leader);
        c
    }

    fn settle(&mut self) {
        loop {
            for i in 0..self.replicas.len() {
                loop {
                    let ready = self.replicas[i].ready();
                    if ready.is_empty() {
                        break;
                    }
                    if let Some(batch) = &ready.persist {
                        self.replicas[i].persisted(batch.seq);
                    }
                    let from = self.replicas[i].id();
                    for o in ready.send {
                        self.queue.push_back((from, o.to, o.msg));
                    }
                    for entry in &ready.chosen {
                        self.appliers[i].apply(entry, &mut self.applied);
                    }
                    self.applied.clear();
                }
            }
            if self.queue.is_empty() {
                return;
            }
            while let Some((from, to, msg)) = self.queue.pop_front() {
                let _ = self.replicas[(to.0 - 1) as usize].step(from, msg);
            }
        }
    }

    /// Proposes `commands` commands at the leader and runs until every replica applied them.
    fn replicate(&mut self, commands: usize) {
        for _ in 0..commands {
            self.next_seq += 1;
            let id = CommandId {
                client: ClientId(1),
                seq: self.next_seq,
            };
            let command = Command {
                id,
                payload: vec![0u8; 16].into(),
            };
            self.replicas[0].propose(command).expect("leader accepts");
        }
        let before = self.replicas[0].chosen_through();
        self.settle();
        let target = self.replicas[0].chosen_through();
        assert_eq!(
            self.appliers[0].applied_through(),
            target,
            "the leader applies everything"
        );
        // Followers learn the chosen index from the next Accept or heartbeat (piggybacked), so
        // they apply the previous round's slots in this round.
        for a in &self.appliers[1..] {
            assert!(
                a.applied_through() >= before,
                "a follower fell more than a round behind"
            );
        }
    }
}

fn replicate(c: &mut Criterion) {
    let mut group = c.benchmark_group("chosen_and_applied");
    for nodes in [3u64, 5] {
        for batch in [1usize, 16, 256] {
            // Enough commands per iteration to fill the pipeline window.
            let commands = (batch * 64).min(16_384);
            group.throughput(Throughput::Elements(commands as u64));
            let id = BenchmarkId::new(format!("{nodes}_nodes"), format!("batch_{batch}"));
            group.bench_with_input(id, &commands, |b, &commands| {
                let mut cluster = Cluster::new(nodes, batch);
                b.iter(|| cluster.replicate(black_box(commands)));
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10).measurement_time(std::time::Duration::from_secs(3));
    targets = replicate
}
criterion_main!(benches);
