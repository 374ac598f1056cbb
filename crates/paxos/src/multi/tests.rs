//! Scenario tests of the Multi-Paxos replica on an in-memory, instantly-persisting network.
//! Each test is named for the rule it defends; the simulator covers faults at scale.

use super::*;
use crate::quorum::QuorumSpec;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;

struct Cluster {
    replicas: Vec<Replica>,
    queue: VecDeque<(NodeId, NodeId, Message)>,
    chosen: Vec<Vec<ChosenEntry>>,
    reads: Vec<ReadOutcome>,
    cut: BTreeSet<(u64, u64)>,
    down: BTreeSet<u64>,
    /// Replicas whose catch-up answers (`Learn`) and snapshot transfers are lost.
    starved: BTreeSet<u64>,
    durable: Vec<DurableState>,
    /// Snapshot transfers asked for: (who, from whom, at least through).
    wanted: Vec<(usize, SnapshotWanted)>,
    rng: ChaCha8Rng,
}

fn options() -> ReplicaOptions {
    ReplicaOptions {
        page_records_max: 3,
        ..ReplicaOptions::default()
    }
}

fn cmd(client: u64, seq: u64) -> Command {
    Command {
        id: CommandId {
            client: ClientId(client),
            seq,
        },
        payload: vec![client as u8, seq as u8].into(),
    }
}

impl Cluster {
    fn new(n: u64) -> Cluster {
        let config = Configuration::majority_of(n).unwrap();
        let replicas = (1..=n)
            .map(|i| Replica::new(NodeId(i), config.clone(), options()).unwrap())
            .collect();
        Cluster {
            replicas,
            queue: VecDeque::new(),
            chosen: vec![Vec::new(); n as usize],
            reads: Vec::new(),
            cut: BTreeSet::new(),
            down: BTreeSet::new(),
            starved: BTreeSet::new(),
            durable: vec![DurableState::default(); n as usize],
            wanted: Vec::new(),
            rng: ChaCha8Rng::seed_from_u64(1),
        }
    }

    fn r(&mut self, id: u64) -> &mut Replica {
        &mut self.replicas[(id - 1) as usize]
    }

    fn drain(&mut self, i: usize) {
        loop {
            let ready = self.replicas[i].ready();
            if ready.is_empty() {
                return;
            }
            if let Some(batch) = &ready.persist {
                for op in &batch.ops {
                    self.durable[i].apply(op);
                }
                self.replicas[i].persisted(batch.seq);
            }
            let from = self.replicas[i].id();
            for o in ready.send {
                self.queue.push_back((from, o.to, o.msg));
            }
            self.chosen[i].extend(ready.chosen);
            self.reads.extend(ready.reads);
            if let Some(w) = ready.snapshot_wanted {
                self.wanted.push((i, w));
            }
        }
    }

    /// The state machine here is the list of chosen entries; a snapshot through `slot` is its
    /// prefix. Makes one durable and compacts.
    fn snapshot(&mut self, id: u64) {
        let i = (id - 1) as usize;
        let through = self.replicas[i].handed_out_through();
        self.durable[i].compacted_through = through;
        self.durable[i].entries = self.durable[i].entries.split_off(&through.next());
        self.replicas[i].compact(through);
    }

    /// Serves the snapshot transfers asked for: copies the peer's snapshot prefix.
    fn transfer_snapshots(&mut self) {
        for (i, w) in std::mem::take(&mut self.wanted) {
            if self.starved.contains(&(i as u64 + 1)) {
                continue;
            }
            let from = (w.from.0 - 1) as usize;
            let through = self.replicas[from].compacted_through();
            assert!(through >= w.through, "asked for more than the peer holds");
            let prefix: Vec<ChosenEntry> = self.chosen[from]
                .iter()
                .filter(|e| e.slot <= through)
                .cloned()
                .collect();
            assert_eq!(prefix.len() as u64, through.0, "snapshot source has a gap");
            self.chosen[i] = prefix;
            self.durable[i].compacted_through = through;
            self.durable[i].entries = self.durable[i].entries.split_off(&through.next());
            self.replicas[i].install_snapshot(through);
        }
    }

    /// The node's disk is replaced: it restarts with nothing and must rebuild.
    fn wipe_and_restart(&mut self, id: u64) {
        let i = (id - 1) as usize;
        let config = self.replicas[i].config().clone();
        self.durable[i] = DurableState::default();
        self.replicas[i] = Replica::rebuild(NodeId(id), config, options()).unwrap();
        self.chosen[i].clear();
        self.down.remove(&id);
    }

    /// Delivers messages until the network is quiet.
    fn settle(&mut self) {
        for _ in 0..100_000 {
            for i in 0..self.replicas.len() {
                if !self.down.contains(&(i as u64 + 1)) {
                    self.drain(i);
                }
            }
            let Some((from, to, msg)) = self.queue.pop_front() else {
                return;
            };
            let cut = self.cut.contains(&(from.0, to.0)) || self.cut.contains(&(to.0, from.0));
            let starved = self.starved.contains(&to.0) && matches!(msg, Message::Learn { .. });
            if !cut && !starved && !self.down.contains(&to.0) {
                let _ = self.r(to.0).step(from, msg);
            }
        }
        panic!("network never went quiet");
    }

    fn tick_all(&mut self, ticks: u32) {
        for _ in 0..ticks {
            for i in 0..self.replicas.len() {
                if !self.down.contains(&(i as u64 + 1)) {
                    self.replicas[i].tick(&mut self.rng);
                }
            }
            self.settle();
            self.transfer_snapshots();
            self.settle();
        }
    }

    fn leader(&self) -> Option<NodeId> {
        let leaders: Vec<NodeId> = self
            .replicas
            .iter()
            .filter(|r| r.role() == Role::Leader && !self.down.contains(&r.id().0))
            .map(|r| r.id())
            .collect();
        assert!(
            leaders.len() <= 1 || self.cut.is_empty(),
            "two leaders on a healthy network: {leaders:?}"
        );
        leaders
            .into_iter()
            .max_by_key(|id| self.replicas[(id.0 - 1) as usize].ballot())
    }

    fn elect(&mut self, id: u64) {
        self.r(id).campaign();
        self.settle();
        assert_eq!(self.r(id).role(), Role::Leader, "n{id} failed to win");
    }

    fn isolate(&mut self, id: u64) {
        for j in 1..=self.replicas.len() as u64 {
            if j != id {
                self.cut.insert((id, j));
            }
        }
    }

    fn crash(&mut self, id: u64) {
        self.down.insert(id);
        self.queue.retain(|(_, to, _)| to.0 != id);
    }

    fn restart(&mut self, id: u64) {
        let i = (id - 1) as usize;
        let config = self.replicas[i].config().clone();
        let readmit = self.replicas[i].readmit.enabled;
        self.replicas[i] =
            Replica::recover(NodeId(id), config, options(), self.durable[i].clone()).unwrap();
        self.replicas[i].enable_cheap_readmission(readmit);
        self.chosen[i].clear();
        self.down.remove(&id);
    }

    /// Proposes client 1's commands `seqs` at `leader`, each chosen before the next.
    fn commit_one_by_one(&mut self, leader: u64, seqs: std::ops::RangeInclusive<u64>) {
        for seq in seqs {
            self.r(leader).propose(cmd(1, seq)).unwrap();
            self.settle();
        }
    }

    /// Drains replica `id` without delivering anything: persists what it asks (into its
    /// durable model) and returns what it sent and the ops it persisted.
    fn drain_by_hand(&mut self, id: u64) -> (Vec<Outbound<Message>>, Vec<PersistOp>) {
        let i = (id - 1) as usize;
        let mut sent = Vec::new();
        let mut ops = Vec::new();
        for _ in 0..3 {
            let ready = self.replicas[i].ready();
            if let Some(b) = ready.persist {
                b.ops.iter().for_each(|op| self.durable[i].apply(op));
                ops.extend(b.ops);
                self.replicas[i].persisted(b.seq);
            }
            sent.extend(ready.send);
        }
        (sent, ops)
    }

    /// Every replica in `ids` applied exactly `want`, in order.
    fn assert_applied(&self, ids: &[u64], want: &[Command]) {
        for id in ids {
            let got = commands(&self.chosen[(id - 1) as usize]);
            assert_eq!(got, want, "n{id} applied another sequence");
        }
    }

    fn chosen_values(&self, i: usize) -> Vec<Value> {
        self.chosen[i].iter().map(|c| c.value.clone()).collect()
    }
}

#[test]
fn a_timed_out_follower_is_elected_and_chooses_commands_in_order() {
    let mut c = Cluster::new(3);
    c.tick_all(40);
    let leader = c.leader().expect("a leader within 40 ticks");
    for seq in 1..=5 {
        c.r(leader.0).propose(cmd(1, seq)).unwrap();
    }
    c.settle();
    c.tick_all(4);
    c.assert_applied(&[1, 2, 3], &(1..=5).map(|s| cmd(1, s)).collect::<Vec<_>>());
}

#[test]
fn followers_learn_a_chosen_slot_without_waiting_for_a_heartbeat() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.r(1).propose(cmd(1, 1)).unwrap();
    // No tick: a follower that answers a client once it applies must not wait for one.
    c.settle();
    c.assert_applied(&[1, 2, 3], &[cmd(1, 1)]);
}

#[test]
fn an_accept_that_carries_the_chosen_prefix_is_announcement_enough() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.r(1).propose(cmd(1, 1)).unwrap();
    c.drain(0);
    // Deliver the Accepts and their answers, but let the leader read them only after it has
    // the next command to propose.
    for _ in 0..10 {
        c.drain(1);
        c.drain(2);
        let queued: Vec<_> = c.queue.drain(..).collect();
        for (from, to, msg) in queued {
            if to.0 == 1 {
                c.queue.push_back((from, to, msg));
            } else {
                let _ = c.r(to.0).step(from, msg);
            }
        }
    }
    for (from, to, msg) in std::mem::take(&mut c.queue) {
        let _ = c.r(to.0).step(from, msg);
    }
    let first = c.r(1).chosen_through();
    assert!(first >= Slot(1), "the first command is chosen");
    c.r(1).propose(cmd(1, 2)).unwrap();
    let (sent, _) = c.drain_by_hand(1);
    let kinds: Vec<&str> = sent.iter().map(|o| o.msg.kind()).collect();
    assert!(
        !kinds.contains(&"heartbeat"),
        "the Accepts carry the new prefix; no heartbeat is needed: {kinds:?}"
    );
    for o in sent {
        if let Message::Accept { chosen_through, .. } = o.msg {
            assert_eq!(chosen_through, first);
        }
        c.queue.push_back((NodeId(1), o.to, o.msg));
    }
    // (The leader's own applied entries went out through `drain_by_hand`.)
    c.settle();
    c.assert_applied(&[2, 3], &[cmd(1, 1), cmd(1, 2)]);
}

#[test]
fn pending_commands_share_one_slot_up_to_the_batch_limit() {
    let mut c = Cluster::new(3);
    c.elect(1);
    for seq in 1..=300 {
        c.r(1).propose(cmd(1, seq)).unwrap();
    }
    c.settle();
    let sizes: Vec<usize> = c.chosen[0].iter().map(|e| e.value.len()).collect();
    assert_eq!(sizes, vec![256, 44], "one slot per batch of at most 256");
}

#[test]
fn a_slot_holds_at_most_the_batch_bytes_but_always_one_command() {
    let mut c = Cluster::new(3);
    for r in &mut c.replicas {
        r.options.batch_bytes_max = 5;
    }
    c.elect(1);
    let big = |seq: u64, len: usize| Command {
        payload: vec![7; len].into(),
        ..cmd(1, seq)
    };
    // 2 + 2 fit in 5 bytes; the third would not; a 9-byte command gets a slot to itself.
    for (seq, len) in [(1, 2), (2, 2), (3, 2), (4, 9), (5, 1)] {
        c.r(1).propose(big(seq, len)).unwrap();
    }
    c.settle();
    let sizes: Vec<usize> = c.chosen[0].iter().map(|e| e.value.len()).collect();
    assert_eq!(sizes, vec![2, 1, 1, 1]);
}

#[test]
fn takeover_reproposes_accepted_values_and_fills_holes_with_noops() {
    let mut c = Cluster::new(3);
    c.elect(1);
    // Slots 1 and 3 reach only n2; slot 2 reaches nobody. None of them is chosen.
    c.cut.insert((1, 3));
    c.r(1).propose(cmd(1, 1)).unwrap();
    c.drain(0);
    c.r(1).propose(cmd(1, 2)).unwrap();
    c.drain(0);
    c.queue
        .retain(|(_, _, m)| !matches!(m, Message::Accept { slot: Slot(2), .. }));
    c.r(1).propose(cmd(1, 3)).unwrap();
    c.drain(0);
    c.queue
        .retain(|(_, to, m)| *to == NodeId(2) && matches!(m, Message::Accept { .. }));
    while let Some((from, to, msg)) = c.queue.pop_front() {
        let _ = c.r(to.0).step(from, msg);
    }
    c.drain(1);
    c.queue.clear();
    c.crash(1);
    c.cut.clear();
    c.elect(3);
    c.tick_all(2);
    let values = c.chosen_values(2);
    assert_eq!(
        values,
        vec![
            Value::Batch(vec![cmd(1, 1)]),
            Value::Noop,
            Value::Batch(vec![cmd(1, 3)])
        ],
        "n3 must re-propose what n2 accepted and fill the hole"
    );
    assert_eq!(c.r(2).chosen_through(), Slot(3));
}

#[test]
fn a_chosen_value_survives_every_later_leader() {
    let mut c = Cluster::new(5);
    c.elect(1);
    c.r(1).propose(cmd(9, 1)).unwrap();
    c.settle();
    for next in [2, 3, 4, 5, 1] {
        c.elect(next);
        c.tick_all(1);
    }
    for i in 0..5 {
        assert_eq!(
            c.chosen[i][0].value,
            Value::Batch(vec![cmd(9, 1)]),
            "replica {}",
            i + 1
        );
    }
}

#[test]
fn a_promise_leaves_only_after_it_is_persisted() {
    let config = Configuration::majority_of(3).unwrap();
    let mut r = Replica::new(NodeId(2), config, options()).unwrap();
    let ballot = Ballot::new(1, NodeId(1));
    r.step(
        NodeId(1),
        Message::Prepare {
            ballot,
            from_slot: Slot(1),
            epoch: 0,
        },
    )
    .unwrap();
    let ready = r.ready();
    assert!(
        ready.send.is_empty(),
        "promise sent before durable: {:?}",
        ready.send
    );
    let batch = ready.persist.expect("a promise to persist");
    assert_eq!(batch.ops, vec![PersistOp::Promise { ballot }]);
    assert_eq!(r.held_messages(), 1);
    r.persisted(batch.seq);
    let ready = r.ready();
    assert!(matches!(
        ready.send.as_slice(),
        [Outbound {
            to: NodeId(1),
            msg: Message::Promise { .. }
        }]
    ));
}

#[test]
fn a_leader_counts_its_own_accept_only_once_durable() {
    let config = Configuration::majority_of(1).unwrap();
    let mut r = Replica::new(NodeId(1), config, options()).unwrap();
    r.campaign();
    loop {
        let ready = r.ready();
        match ready.persist {
            Some(b) => r.persisted(b.seq),
            None => break,
        }
    }
    assert_eq!(r.role(), Role::Leader);
    r.propose(cmd(1, 1)).unwrap();
    let ready = r.ready();
    assert!(
        ready.chosen.is_empty(),
        "chosen before the only acceptor's accept was durable"
    );
    r.persisted(ready.persist.expect("accept to persist").seq);
    let ready = r.ready();
    assert_eq!(ready.chosen.len(), 1);
}

#[test]
fn a_restarted_follower_catches_up_in_pages() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.crash(3);
    c.commit_one_by_one(1, 1..=10);
    c.restart(3);
    c.tick_all(30);
    assert_eq!(
        c.r(3).chosen_through(),
        Slot(10),
        "page size 3 needs several pages"
    );
    assert_eq!(c.chosen_values(2), c.chosen_values(0));
}

#[test]
fn a_restarted_acceptor_keeps_its_promise() {
    let mut c = Cluster::new(3);
    c.elect(3);
    c.crash(2);
    c.restart(2);
    assert_eq!(c.r(2).promised(), c.r(3).ballot());
    let stale = Ballot::new(c.r(3).ballot().round, NodeId(1));
    assert!(stale < c.r(2).promised());
    c.r(2)
        .step(
            NodeId(1),
            Message::Accept {
                ballot: stale,
                slot: Slot(1),
                value: Value::Noop,
                chosen_through: Slot::ZERO,
                epoch: 0,
            },
        )
        .unwrap();
    let ready = c.r(2).ready();
    assert!(ready.persist.is_none(), "accepted below its promise");
    assert!(matches!(ready.send[0].msg, Message::Nack { .. }));
}

#[test]
fn a_read_is_confirmed_by_a_quorum_round_and_fails_on_a_deposed_leader() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.r(1).propose(cmd(1, 1)).unwrap();
    c.settle();
    c.r(1).read(ReadId(1)).unwrap();
    c.r(1).read(ReadId(2)).unwrap();
    let ready = c.r(1).ready();
    assert!(
        ready.reads.is_empty(),
        "read answered before the quorum round"
    );
    let heartbeats = ready
        .send
        .iter()
        .filter(|o| matches!(o.msg, Message::Heartbeat { round: 1, .. }))
        .count();
    assert_eq!(heartbeats, 2, "one round for both reads");
    for o in ready.send {
        c.queue.push_back((NodeId(1), o.to, o.msg));
    }
    c.settle();
    assert_eq!(
        c.reads,
        vec![
            ReadOutcome::Ready {
                id: ReadId(1),
                slot: Slot(1)
            },
            ReadOutcome::Ready {
                id: ReadId(2),
                slot: Slot(1)
            }
        ]
    );
    // The counters the node serves as metrics: one round carried both reads.
    assert_eq!(
        (
            c.r(1).counters().read_rounds,
            c.r(1).counters().read_round_reads
        ),
        (1, 2)
    );
    c.reads.clear();
    // Cut the leader off; a read at it can never be confirmed, and fails once it steps down.
    c.isolate(1);
    c.r(1).read(ReadId(3)).unwrap();
    c.tick_all(25);
    assert_eq!(
        c.reads,
        vec![ReadOutcome::Failed {
            id: ReadId(3),
            leader: None
        }]
    );
}

#[test]
fn an_isolated_node_does_not_depose_a_leader_a_quorum_follows() {
    // The "chained" shape: n3 cannot hear n1, but n2 hears both. n2 refuses n3's pre-vote
    // while n1's heartbeats keep coming, so n1 keeps leading.
    let mut c = Cluster::new(3);
    c.elect(1);
    c.cut.insert((1, 3));
    let ballot = c.r(1).ballot();
    c.tick_all(200);
    assert_eq!(c.r(1).role(), Role::Leader);
    assert_eq!(c.r(1).ballot(), ballot, "n1 was deposed");
    assert_eq!(c.r(2).promised(), ballot);
    // n2's refusals are what kept n1 leading, and they are counted (a metric).
    assert!(c.r(2).counters().pre_votes_refused > 0);
}

/// A slot short of a quorum has its Accepts re-sent every heartbeat, each one counted (a
/// metric); once healed the leader sees every follower's chosen prefix (its lag view).
#[test]
fn stalled_accepts_are_resent_and_counted_and_peers_report_their_chosen_prefix() {
    let mut c = Cluster::new(3);
    c.elect(1);
    assert_eq!(c.r(1).counters().accepts_resent, 0);
    c.isolate(1);
    c.r(1).propose(cmd(1, 1)).unwrap();
    c.settle();
    let heartbeat = options().heartbeat_ticks;
    c.tick_all(heartbeat * 2);
    assert_eq!(c.r(1).role(), Role::Leader, "stepped down too early");
    assert!(
        c.r(1).counters().accepts_resent >= 2,
        "re-sent to both followers at least once: {:?}",
        c.r(1).counters()
    );
    assert_eq!(c.r(1).proposed_through(), Slot(1));
    c.cut.clear();
    c.tick_all(heartbeat * 2);
    assert_eq!(c.r(1).chosen_through(), Slot(1));
    assert_eq!(
        c.r(1).peers_chosen_through(),
        vec![(NodeId(2), Slot(1)), (NodeId(3), Slot(1))]
    );
    assert!(
        c.r(2).peers_chosen_through().is_empty(),
        "only a leader knows"
    );
}

#[test]
fn a_leader_without_a_quorum_steps_down_and_a_connected_node_takes_over() {
    // The "quorum-loss" shape on 5 nodes: only n3 still reaches everyone.
    let mut c = Cluster::new(5);
    c.elect(1);
    for a in 1..=5u64 {
        for b in (a + 1)..=5 {
            if a != 3 && b != 3 {
                c.cut.insert((a, b));
            }
        }
    }
    c.tick_all(4 * 20);
    assert_eq!(
        c.r(3).role(),
        Role::Leader,
        "n3 is the only node that can lead"
    );
    c.r(3).propose(cmd(1, 1)).unwrap();
    c.tick_all(2);
    assert_eq!(c.r(3).chosen_through(), Slot(1));
}

/// Messages no correct peer sends, and why each is refused.
#[test]
fn impossible_messages_are_refused_and_counted() {
    let config = Configuration::majority_of(3).unwrap();
    let mut r = Replica::new(NodeId(1), config, options()).unwrap();
    let b2 = Ballot::new(1, NodeId(2));
    let rec = |slot| SlotRecord {
        slot: Slot(slot),
        ballot: b2,
        value: Value::Noop,
        chosen: true,
    };
    let cases: Vec<(u64, Message, RejectReason)> = vec![
        (
            9,
            Message::CatchUp { from_slot: Slot(1) },
            RejectReason::UnknownSender,
        ),
        (
            1,
            Message::CatchUp { from_slot: Slot(1) },
            RejectReason::FromSelf,
        ),
        (
            2,
            Message::Prepare {
                ballot: Ballot::new(1, NodeId(3)),
                from_slot: Slot(1),
                epoch: 0,
            },
            RejectReason::ImpossibleBallot,
        ),
        (
            2,
            Message::Prepare {
                ballot: Ballot::ZERO,
                from_slot: Slot(1),
                epoch: 0,
            },
            RejectReason::ImpossibleBallot,
        ),
        (
            2,
            Message::Accept {
                ballot: b2,
                slot: Slot(0),
                value: Value::Noop,
                chosen_through: Slot(0),
                epoch: 0,
            },
            RejectReason::ImpossibleSlot,
        ),
        (
            2,
            Message::Accept {
                ballot: b2,
                slot: Slot(1 << 40),
                value: Value::Noop,
                chosen_through: Slot(0),
                epoch: 0,
            },
            RejectReason::ImpossibleSlot,
        ),
        (
            2,
            Message::Learn {
                records: vec![rec(2), rec(1)],
                chosen_through: Slot(2),
                compacted_through: Slot(0),
            },
            RejectReason::Malformed,
        ),
        (
            2,
            Message::Learn {
                records: (1..=4).map(rec).collect(),
                chosen_through: Slot(4),
                compacted_through: Slot(0),
            },
            RejectReason::Malformed,
        ),
    ];
    for (from, msg, want) in &cases {
        assert_eq!(r.step(NodeId(*from), msg.clone()), Err(*want), "{msg:?}");
    }
    assert_eq!(
        r.counters().rejected.values().sum::<u64>(),
        cases.len() as u64
    );
    let ready = r.ready();
    assert!(
        ready.is_empty(),
        "a refused message changed something: {ready:?}"
    );
}

#[test]
fn proposals_are_bounded_and_redirected() {
    let mut c = Cluster::new(3);
    c.elect(2);
    assert_eq!(
        c.r(1).propose(cmd(1, 1)),
        Err(ProposeError::NotLeader {
            leader: Some(NodeId(2))
        })
    );
    let big = Command {
        id: cmd(1, 1).id,
        payload: vec![0; (1 << 20) + 1].into(),
    };
    assert!(matches!(
        c.r(2).propose(big),
        Err(ProposeError::TooLarge { .. })
    ));
    for seq in 0..16_384 {
        c.r(2).propose(cmd(1, seq)).unwrap();
    }
    assert_eq!(
        c.r(2).propose(cmd(1, 99_999)),
        Err(ProposeError::Busy { pending: 16_384 })
    );
}

fn commands(entries: &[ChosenEntry]) -> Vec<Command> {
    entries
        .iter()
        .flat_map(|e| match &e.value {
            Value::StopSign(_) => Vec::new(),
            Value::Batch(b) => b.clone(),
            Value::Noop => Vec::new(),
        })
        .collect()
}

#[test]
fn compaction_drops_the_log_prefix_and_a_lagging_replica_installs_the_snapshot() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.crash(3);
    c.commit_one_by_one(1, 1..=6);
    c.tick_all(2);
    for id in [1, 2] {
        c.snapshot(id);
        assert_eq!(c.r(id).compacted_through(), Slot(6));
        assert_eq!(c.r(id).slots().count(), 0, "log kept below the snapshot");
    }
    c.restart(3);
    c.tick_all(30);
    assert_eq!(c.r(3).chosen_through(), Slot(6));
    assert_eq!(
        c.r(3).compacted_through(),
        Slot(6),
        "installed the snapshot"
    );
    c.r(1).propose(cmd(1, 7)).unwrap();
    c.settle();
    c.tick_all(4);
    assert_eq!(
        commands(&c.chosen[2]),
        (1..=7).map(|s| cmd(1, s)).collect::<Vec<_>>()
    );
    assert_eq!(c.chosen[2], c.chosen[0]);
}

#[test]
fn a_leader_behind_a_compacted_prefix_neither_refills_it_nor_forks_it() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.crash(3);
    c.commit_one_by_one(1, 1..=4);
    c.tick_all(2);
    c.snapshot(1);
    c.snapshot(2);
    c.crash(1);
    c.restart(3);
    // n3 knows nothing of slots 1..=4; n2 compacted them. n3 must not fill them with no-ops.
    c.elect(3);
    assert!(
        c.r(3).entry(Slot(1)).is_none(),
        "a compacted slot was re-proposed"
    );
    c.r(3).propose(cmd(2, 1)).unwrap();
    c.settle();
    c.tick_all(10);
    assert_eq!(c.r(3).chosen_through(), Slot(5));
    let mut want: Vec<Command> = (1..=4).map(|s| cmd(1, s)).collect();
    want.push(cmd(2, 1));
    c.assert_applied(&[2, 3], &want);
}

#[test]
fn an_acceptor_does_not_vouch_for_a_value_other_than_the_chosen_one() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.r(1).propose(cmd(1, 1)).unwrap();
    c.settle();
    c.tick_all(2);
    assert!(c.r(2).entry(Slot(1)).is_some_and(|(_, _, chosen)| chosen));
    let stale = Ballot::new(c.r(2).promised().round + 1, NodeId(3));
    c.r(2)
        .step(
            NodeId(3),
            Message::Accept {
                ballot: stale,
                slot: Slot(1),
                value: Value::Noop,
                chosen_through: Slot::ZERO,
                epoch: 0,
            },
        )
        .unwrap();
    let ready = c.r(2).ready();
    assert!(
        !ready
            .send
            .iter()
            .any(|o| matches!(o.msg, Message::Accepted { slot: Slot(1), .. })),
        "vouched for a value that is not the chosen one"
    );
}

#[test]
fn a_wiped_replica_neither_promises_nor_accepts_until_it_regains_its_vote() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.r(1).propose(cmd(1, 1)).unwrap();
    c.settle();
    // n3 promises a high ballot to n2's candidacy, then loses its disk.
    c.r(2).campaign();
    c.settle();
    let promised_before = c.r(3).promised();
    assert_eq!(promised_before, c.r(2).ballot());
    c.crash(3);
    c.wipe_and_restart(3);
    assert!(!c.r(3).is_voting());
    // While n1 is down, n3's answer to RoundQuery from n1 cannot come: no fence, no vote.
    c.crash(1);
    let stale = Ballot::new(promised_before.round - 1, NodeId(1));
    c.r(3)
        .step(
            NodeId(1),
            Message::Prepare {
                ballot: stale,
                from_slot: Slot(1),
                epoch: 0,
            },
        )
        .unwrap();
    c.r(3)
        .step(
            NodeId(1),
            Message::Accept {
                ballot: stale,
                slot: Slot(2),
                value: Value::Noop,
                chosen_through: Slot::ZERO,
                epoch: 0,
            },
        )
        .unwrap();
    let (sent, ops) = c.drain_by_hand(3);
    assert!(
        sent.iter()
            .all(|o| !matches!(o.msg, Message::Promise { .. } | Message::Accepted { .. })),
        "a rebuilding replica voted: {sent:?}"
    );
    assert_eq!(
        ops,
        vec![PersistOp::RebuildStarted],
        "the rebuild is recorded, nothing else"
    );
    c.settle();
    c.tick_all(60);
    assert!(!c.r(3).is_voting(), "regained its vote without n1's round");
    c.restart(1);
    c.tick_all(80);
    assert!(c.r(3).is_voting(), "never regained its vote");
    assert!(
        c.r(3).promised().round > promised_before.round,
        "regained at a ballot not above its forgotten promise"
    );
    assert!(c.durable[2].promised.is_some() && !c.durable[2].rebuilding);
    let leader = c.leader().expect("a leader");
    c.r(leader.0).propose(cmd(1, 2)).unwrap();
    c.settle();
    c.tick_all(4);
    c.assert_applied(&[1, 2, 3], &[cmd(1, 1), cmd(1, 2)]);
}

/// Wipes n3 after six chosen slots, loses its catch-up answers for 200 ticks while the others
/// elect a leader above its fence, then heals. Returns when n3 voted while holding less
/// than the chosen log, if it did.
fn rebuilt_replica_votes_behind(bugs: PlantedBugs) -> Option<String> {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.commit_one_by_one(1, 1..=6);
    c.tick_all(2);
    let chosen_before = c.r(1).chosen_through();
    let round_before = c.r(1).ballot().round;
    assert_eq!(chosen_before, Slot(6));
    c.crash(3);
    c.wipe_and_restart(3);
    c.r(3).bugs = bugs;
    // n3's catch-up answers are lost for a while: it cannot hold the log yet.
    c.starved.insert(3);
    for tick in 0..200 {
        c.tick_all(1);
        if c.r(3).is_voting() && c.r(3).chosen_through() < chosen_before {
            return Some(format!(
                "n3 votes again at tick {tick} holding the chosen log only through {}",
                c.r(3).chosen_through()
            ));
        }
    }
    let leader = c.leader().expect("a leader");
    let ballot = c.r(leader.0).ballot();
    assert!(
        ballot.round > round_before,
        "no leader above the fence came, so the test proves nothing: {ballot}"
    );
    c.starved.clear();
    c.tick_all(60);
    assert!(c.r(3).is_voting(), "never regained its vote once caught up");
    assert!(c.r(3).chosen_through() >= chosen_before);
    let leader = c.leader().expect("a leader");
    c.r(leader.0).propose(cmd(1, 7)).unwrap();
    c.settle();
    c.tick_all(4);
    let all: Vec<Command> = (1..=7).map(|s| cmd(1, s)).collect();
    c.assert_applied(&[1, 2, 3], &all);
    None
}

/// The amnesia rule's second half (rebuild.rs): a leader above the fence is not enough; the
/// wiped replica votes only once it holds the chosen log through that leader's log end, so
/// it never counts in a quorum while the values it may have voted for are on fewer disks.
#[test]
fn a_rebuilt_replica_votes_only_once_it_holds_the_chosen_log() {
    assert_eq!(rebuilt_replica_votes_behind(PlantedBugs::none()), None);
}

#[cfg(feature = "planted-bugs")]
#[test]
fn planted_rebuilt_votes_before_caught_up_is_caught() {
    let bugs = PlantedBugs::only(Bug::RebuiltVotesBeforeCaughtUp);
    assert!(
        rebuilt_replica_votes_behind(bugs).is_some(),
        "the planted bug went unnoticed"
    );
}

#[test]
fn an_accept_for_a_compacted_slot_points_the_leader_to_the_snapshot() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.commit_one_by_one(1, 1..=4);
    c.tick_all(2);
    c.snapshot(2);
    // A leader that promised before n2 compacted re-proposes slot 2 at its ballot.
    let ballot = Ballot::new(c.r(2).promised().round + 1, NodeId(3));
    c.r(2)
        .step(
            NodeId(3),
            Message::Accept {
                ballot,
                slot: Slot(2),
                value: Value::Noop,
                chosen_through: Slot::ZERO,
                epoch: 0,
            },
        )
        .unwrap();
    let (sent, _) = c.drain_by_hand(2);
    assert!(
        !sent
            .iter()
            .any(|o| matches!(o.msg, Message::Accepted { .. })),
        "voted for a value in a compacted slot"
    );
    let learn = sent
        .into_iter()
        .find(|o| matches!(o.msg, Message::Learn { .. }))
        .expect("the leader is told the slot is compacted");
    assert_eq!(learn.to, NodeId(3));
    // A replica behind that prefix asks for the snapshot.
    let config = Configuration::majority_of(3).unwrap();
    let mut behind = Replica::new(NodeId(3), config, options()).unwrap();
    behind.step(NodeId(2), learn.msg).unwrap();
    assert_eq!(
        behind.ready().snapshot_wanted,
        Some(SnapshotWanted {
            from: NodeId(2),
            through: Slot(4)
        })
    );
}

#[test]
fn a_snapshot_request_is_repeated_until_a_snapshot_is_installed() {
    let config = Configuration::majority_of(3).unwrap();
    let mut r = Replica::new(NodeId(3), config, options()).unwrap();
    let learn = Message::Learn {
        records: Vec::new(),
        chosen_through: Slot(9),
        compacted_through: Slot(8),
    };
    r.step(NodeId(2), learn).unwrap();
    let want = Some(SnapshotWanted {
        from: NodeId(2),
        through: Slot(8),
    });
    assert_eq!(r.ready().snapshot_wanted, want);
    assert_eq!(r.ready().snapshot_wanted, None, "asked again at once");
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut repeated = false;
    for _ in 0..options().election_timeout_ticks {
        r.tick(&mut rng);
        repeated |= r.ready().snapshot_wanted == want;
    }
    assert!(
        repeated,
        "a failed transfer would leave the replica behind for good"
    );
    r.install_snapshot(Slot(8));
    for _ in 0..2 * options().election_timeout_ticks {
        r.tick(&mut rng);
        assert_eq!(r.ready().snapshot_wanted, None, "asked after installing");
    }
}

// ---- Reconfiguration (reconfig.rs; Stoppable Paxos) ----

impl Cluster {
    /// `n` voters, and `spares` more nodes started outside the configuration (`Replica::join`).
    fn with_spares(n: u64, spares: u64) -> Cluster {
        let mut c = Cluster::new(n);
        let config = Configuration::majority_of(n).unwrap();
        for id in n + 1..=n + spares {
            c.replicas
                .push(Replica::join(NodeId(id), config.clone(), options()).unwrap());
            c.chosen.push(Vec::new());
            c.durable.push(DurableState::default());
        }
        c
    }

    fn reconfigure(
        &mut self,
        leader: u64,
        voters: &[u64],
        learners: &[u64],
    ) -> Result<Slot, ReconfigError> {
        let next = Configuration::with_learners(
            voters.iter().map(|&i| NodeId(i)).collect(),
            learners.iter().map(|&i| NodeId(i)).collect(),
            QuorumSpec::Majority,
        )
        .unwrap();
        self.r(leader).propose_reconfiguration(next)
    }
}

#[test]
fn learners_catch_up_are_promoted_and_then_carry_the_quorum() {
    let mut c = Cluster::with_spares(3, 2);
    c.elect(1);
    c.commit_one_by_one(1, 1..=5);
    // Add 4 and 5 as learners: they learn the whole log but do not vote.
    c.reconfigure(1, &[1, 2, 3], &[4, 5]).unwrap();
    c.settle();
    c.tick_all(4);
    for id in 1..=5 {
        assert_eq!(
            c.r(id).epoch(),
            1,
            "n{id} entered the configuration with learners"
        );
    }
    assert!(!c.r(4).is_voter() && c.r(4).is_member());
    assert_eq!(
        c.leader(),
        Some(NodeId(1)),
        "the leader leads on after its phase 1"
    );
    c.commit_one_by_one(1, 6..=6);
    c.tick_all(2);
    let all: Vec<Command> = (1..=6).map(|s| cmd(1, s)).collect();
    c.assert_applied(&[1, 2, 3, 4, 5], &all);
    // Promote both: 5 voters. Then two of the old voters fail; 1, 4, 5 carry on.
    c.reconfigure(1, &[1, 2, 3, 4, 5], &[]).unwrap();
    c.settle();
    c.tick_all(4);
    assert!(c.r(4).is_voter() && c.r(5).is_voter());
    c.crash(2);
    c.crash(3);
    c.commit_one_by_one(1, 7..=8);
    c.tick_all(2);
    let all: Vec<Command> = (1..=8).map(|s| cmd(1, s)).collect();
    c.assert_applied(&[1, 4, 5], &all);
    // The stop-signs were applied like any slot, and the applier knows the configuration.
    let stops = c.chosen[3]
        .iter()
        .filter(|e| e.value.is_stop_sign())
        .count();
    assert_eq!(stops, 2);
}

#[test]
fn a_learner_is_not_counted_in_a_quorum() {
    let mut c = Cluster::with_spares(3, 1);
    c.elect(1);
    c.reconfigure(1, &[1, 2, 3], &[4]).unwrap();
    c.settle();
    c.tick_all(2);
    assert_eq!(c.r(4).epoch(), 1);
    // Only the leader and the learner hear each other: no quorum of voters.
    c.isolate(2);
    c.isolate(3);
    c.r(1).propose(cmd(1, 1)).unwrap();
    c.settle();
    assert!(
        c.chosen[0].iter().all(|e| e.value.is_empty()),
        "a learner's accept made a quorum"
    );
    c.cut.clear();
    c.tick_all(4);
    c.assert_applied(&[1, 2, 3, 4], &[cmd(1, 1)]);
}

#[test]
fn promotion_is_refused_for_a_lagging_learner_and_for_a_stranger() {
    let mut c = Cluster::with_spares(3, 2);
    c.elect(1);
    c.reconfigure(1, &[1, 2, 3], &[4]).unwrap();
    c.settle();
    c.tick_all(2);
    assert!(matches!(
        c.reconfigure(1, &[1, 2, 3, 5], &[4]),
        Err(ReconfigError::NotALearner { node: NodeId(5) })
    ));
    c.crash(4);
    for seq in 1..=80 {
        c.r(1).propose(cmd(1, seq)).unwrap();
        c.settle();
    }
    match c.reconfigure(1, &[1, 2, 3, 4], &[]) {
        Err(ReconfigError::LearnerBehind {
            node, lag_slots, ..
        }) => {
            assert_eq!(node, NodeId(4));
            assert!(lag_slots >= 80, "lag {lag_slots}");
        }
        other => panic!("promotion of a lagging learner: {other:?}"),
    }
    // Once it has caught up, the same promotion goes through.
    c.restart(4);
    c.tick_all(6);
    c.reconfigure(1, &[1, 2, 3, 4], &[]).unwrap();
    c.settle();
    c.tick_all(2);
    assert!(c.r(4).is_voter());
}

/// A learner that never ran is refused promotion even while the whole log is shorter than the
/// lag bound: it has not reported the stop-sign that made it a learner.
#[test]
fn promotion_is_refused_for_a_learner_that_never_reported() {
    let mut c = Cluster::with_spares(3, 1);
    c.elect(1);
    c.crash(4);
    c.reconfigure(1, &[1, 2, 3], &[4]).unwrap();
    c.settle();
    c.tick_all(2);
    assert!(c.r(1).config().is_learner(NodeId(4)));
    match c.reconfigure(1, &[1, 2, 3, 4], &[]) {
        Err(ReconfigError::LearnerNotReported { node }) => assert_eq!(node, NodeId(4)),
        other => panic!("promotion of a learner that never ran: {other:?}"),
    }
    // It starts (nothing was ever delivered to it, so it had nothing to recover).
    c.down.remove(&4);
    c.tick_all(6);
    c.reconfigure(1, &[1, 2, 3, 4], &[]).unwrap();
    c.settle();
    c.tick_all(2);
    assert!(c.r(4).is_voter());
}

#[test]
fn a_second_change_waits_for_the_first() {
    let mut c = Cluster::with_spares(3, 1);
    c.elect(1);
    c.isolate(1);
    let slot = c.reconfigure(1, &[1, 2, 3], &[4]).unwrap();
    assert_eq!(
        c.reconfigure(1, &[1, 2], &[]),
        Err(ReconfigError::InProgress { slot })
    );
    // Commands proposed meanwhile wait for the next configuration, after the stop-sign.
    c.r(1).propose(cmd(1, 1)).unwrap();
    c.settle();
    assert!(
        c.r(1).entry(slot.next()).is_none(),
        "proposed after a stop-sign"
    );
    c.cut.clear();
    // A learner that missed an Accept while it still caught up into the epoch fetches the
    // slot at its next catch-up (every half election timeout).
    c.tick_all(12);
    assert_eq!(c.r(1).epoch(), 1);
    c.assert_applied(&[1, 2, 3, 4], &[cmd(1, 1)]);
    let applied = &c.chosen[0];
    let stop_at = applied.iter().position(|e| e.value.is_stop_sign()).unwrap();
    let cmd_at = applied.iter().position(|e| !e.value.is_empty()).unwrap();
    assert!(
        cmd_at > stop_at,
        "the waiting command was chosen in the new epoch"
    );
}

#[test]
fn a_removed_leader_hands_the_lead_over_and_its_messages_are_refused() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.commit_one_by_one(1, 1..=2);
    c.reconfigure(1, &[2, 3], &[]).unwrap();
    c.settle();
    assert!(!c.r(1).is_member(), "the old leader left");
    assert_ne!(c.r(1).role(), Role::Leader);
    // TakeLead: the successor ran phase 1 at once, no election timeout needed.
    let leader = c.leader().expect("a voter of the new configuration leads");
    assert!(leader == NodeId(2) || leader == NodeId(3));
    c.commit_one_by_one(leader.0, 3..=3);
    c.tick_all(2);
    c.assert_applied(&[2, 3], &(1..=3).map(|s| cmd(1, s)).collect::<Vec<_>>());
    // A removed member's vote or leadership is refused and counted.
    let before = c
        .r(2)
        .counters()
        .rejected
        .get(&RejectReason::RemovedMember)
        .copied();
    let stale = Message::Heartbeat {
        ballot: Ballot::new(99, NodeId(1)),
        chosen_through: Slot(1),
        round: 0,
        epoch: 0,
    };
    assert_eq!(
        c.r(2).step(NodeId(1), stale),
        Err(RejectReason::RemovedMember)
    );
    let after = c
        .r(2)
        .counters()
        .rejected
        .get(&RejectReason::RemovedMember)
        .copied();
    assert_eq!(after.unwrap_or(0), before.unwrap_or(0) + 1);
    // A node that never was a member cannot get a vote counted by sending one.
    let stranger = Message::Accepted {
        ballot: c.r(leader.0).ballot(),
        slot: Slot(9),
    };
    assert_eq!(
        c.r(leader.0).step(NodeId(7), stranger),
        Err(RejectReason::UnknownSender)
    );
    // The removed node ticks on without ever running for leader.
    c.tick_all(40);
    assert_eq!(c.r(1).counters().elections_started, 1);
}

#[test]
fn a_restart_keeps_the_configuration_in_force() {
    let mut c = Cluster::with_spares(3, 1);
    c.elect(1);
    c.reconfigure(1, &[1, 2, 3], &[4]).unwrap();
    c.settle();
    c.tick_all(2);
    c.reconfigure(1, &[1, 2, 4], &[]).unwrap();
    c.settle();
    c.tick_all(2);
    for id in [1, 2, 3, 4] {
        assert_eq!(c.r(id).epoch(), 2, "n{id}");
    }
    for id in [2, 4] {
        c.crash(id);
        c.restart(id);
        assert_eq!(
            c.r(id).epoch(),
            2,
            "n{id} came back in the old configuration"
        );
        assert!(c.r(id).is_voter());
    }
    c.crash(3);
    c.restart(3);
    assert!(!c.r(3).is_member(), "a removed member restarted as one");
    c.tick_all(20);
    let leader = c.leader().expect("leader");
    c.commit_one_by_one(leader.0, 1..=1);
    c.tick_all(2);
    c.assert_applied(&[1, 2, 4], &[cmd(1, 1)]);
}

#[test]
fn entering_a_configuration_voids_old_votes_after_its_stop_sign() {
    let config = Configuration::majority_of(3).unwrap();
    let mut d = DurableState::default();
    let b = Ballot::new(1, NodeId(1));
    d.apply(&PersistOp::Accept {
        slot: Slot(1),
        ballot: b,
        value: Value::StopSign(config.clone()),
    });
    d.apply(&PersistOp::Accept {
        slot: Slot(2),
        ballot: Ballot::new(2, NodeId(2)),
        value: Value::Batch(vec![cmd(1, 1)]),
    });
    d.apply(&PersistOp::EnterConfiguration {
        membership: Membership::initial(config.clone()).after_stop_sign(Slot(1), config),
    });
    assert!(
        d.entries[&Slot(1)].chosen,
        "every slot before the new epoch is chosen"
    );
    assert!(
        !d.entries.contains_key(&Slot(2)),
        "an old-epoch vote after the stop-sign survived"
    );
    assert_eq!(d.membership.as_ref().map(|m| m.epoch), Some(1));
}

/// The reconfiguration scenarios above must be able to fail: with a planted bug in every
/// replica, the rule each defends is broken where the test looks.
#[cfg(feature = "planted-bugs")]
mod planted_reconfiguration {
    use super::*;
    use crate::bugs::{Bug, PlantedBugs};

    fn plant(c: &mut Cluster, bug: Bug) {
        for r in &mut c.replicas {
            r.bugs = PlantedBugs::only(bug);
        }
    }

    #[test]
    fn planted_learner_in_quorum_lets_a_leader_and_a_learner_choose() {
        let mut c = Cluster::with_spares(3, 1);
        plant(&mut c, Bug::LearnerInQuorum);
        c.elect(1);
        c.reconfigure(1, &[1, 2, 3], &[4]).unwrap();
        c.settle();
        c.tick_all(2);
        c.isolate(2);
        c.isolate(3);
        c.r(1).propose(cmd(1, 1)).unwrap();
        c.settle();
        assert!(
            c.chosen[0].iter().any(|e| !e.value.is_empty()),
            "the planted bug went unnoticed: no value chosen by a leader and a learner"
        );
    }

    #[test]
    fn planted_reconfig_without_stop_proposes_after_the_stop_sign() {
        let mut c = Cluster::with_spares(3, 1);
        plant(&mut c, Bug::ReconfigWithoutStop);
        c.elect(1);
        c.isolate(1);
        let slot = c.reconfigure(1, &[1, 2, 3], &[4]).unwrap();
        c.r(1).propose(cmd(1, 1)).unwrap();
        c.settle();
        assert!(
            c.r(1).entry(slot.next()).is_some(),
            "the planted bug went unnoticed: nothing proposed after the stop-sign"
        );
    }
}

#[path = "tests_quorums.rs"]
mod quorums;

#[path = "tests_cheap.rs"]
mod cheap;

#[path = "tests_lease.rs"]
mod lease;

#[path = "tests_slow_disk.rs"]
mod slow_disk;
