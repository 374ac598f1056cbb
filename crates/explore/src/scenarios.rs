//! Guided scenarios. Each is built by driving a real world (the same code the page drives)
//! and recording what was done: a spec and a list of narrated actions. Conditions like "step
//! until a leader exists" are resolved here, against the real core, into plain step counts,
//! so the page replays exactly what was narrated.

use crate::model::{Action, MessageView, Protocol, Spec, View};
use crate::session::{fresh, World};
use serde::Serialize;

/// A guided scenario: a session to replay one narrated action at a time.
#[derive(Clone, Debug, Serialize)]
pub struct Scenario {
    /// Stable id.
    pub id: String,
    /// Title in the menu.
    pub title: String,
    /// What the learner is about to see.
    pub intro: String,
    /// The session's spec.
    pub spec: Spec,
    /// The narrated actions.
    pub steps: Vec<ScenarioStep>,
}

/// One narrated action.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioStep {
    /// The action.
    pub action: Action,
    /// What to notice.
    pub say: String,
}

struct Script {
    spec: Spec,
    world: World,
    units: usize,
    steps: Vec<ScenarioStep>,
}

/// Most single steps one "step until" may take while building a scenario.
const UNTIL_MAX: usize = 2_000;

impl Script {
    fn new(protocol: Protocol, nodes: usize, seed: u64) -> Script {
        Script::with_spares(protocol, nodes, 0, seed)
    }

    fn with_spares(protocol: Protocol, nodes: usize, spares: usize, seed: u64) -> Script {
        let spec = Spec {
            protocol,
            nodes,
            seed,
            bug: None,
            faults: None,
            spares,
            quorums: None,
        };
        let world = fresh(&spec).expect("scenario specs are valid");
        Script {
            spec,
            world,
            units: 0,
            steps: Vec::new(),
        }
    }

    /// A Multi-Paxos session whose first configuration uses quorum rule `rule`.
    fn with_quorums(nodes: usize, rule: &str, seed: u64) -> Script {
        let mut s = Script::new(Protocol::Multi, nodes, seed);
        s.spec.quorums = Some(rule.to_string());
        s.world = fresh(&s.spec).expect("scenario specs are valid");
        s
    }

    /// Exactly `n` single steps, narrated once: for "nothing happens for a while".
    fn steps(&mut self, n: u32, say: &str) -> &mut Script {
        for _ in 0..n {
            self.units += 1;
            self.world.apply(&Action::Step { n: 1 }, self.units);
        }
        self.steps.push(ScenarioStep {
            action: Action::Step { n },
            say: say.to_string(),
        });
        self
    }

    fn view(&self) -> View {
        self.world.view(&self.spec, self.units, self.units)
    }

    fn act(&mut self, action: Action, say: &str) -> &mut Script {
        self.units += 1;
        self.world.apply(&action, self.units);
        if let Some(note) = self.view().note {
            panic!("scenario: {action:?} did nothing ({note}) for {say:?}");
        }
        self.steps.push(ScenarioStep {
            action,
            say: say.to_string(),
        });
        self
    }

    /// Steps until `done` holds (at least one step).
    fn until(&mut self, say: &str, done: impl Fn(&View) -> bool) -> &mut Script {
        let mut n = 0;
        while n < UNTIL_MAX {
            n += 1;
            self.units += 1;
            self.world.apply(&Action::Step { n: 1 }, self.units);
            if done(&self.view()) {
                break;
            }
        }
        self.steps.push(ScenarioStep {
            action: Action::Step { n: n as u32 },
            say: say.to_string(),
        });
        self
    }

    /// Acts on the first in-flight message `pick` chooses (deliver, drop): the scenario is
    /// built against the real run, so a message it names must exist.
    fn on_message(
        &mut self,
        make: fn(u64) -> Action,
        say: &str,
        pick: impl Fn(&MessageView) -> bool,
    ) -> &mut Script {
        let v = self.view();
        let id = v
            .in_flight
            .iter()
            .find(|m| pick(m))
            .map(|m| m.id)
            .unwrap_or_else(|| panic!("scenario: no such message in flight for {say:?}"));
        self.act(make(id), say)
    }

    fn deliver(&mut self, say: &str, pick: impl Fn(&MessageView) -> bool) -> &mut Script {
        self.on_message(|id| Action::Deliver { id }, say, pick)
    }

    /// Finishes every disk write node `node` has in progress, by hand, one action each.
    fn persist_all(&mut self, node: usize, say: &str) -> &mut Script {
        let mut first = true;
        while self.view().nodes[node - 1]
            .notes
            .iter()
            .any(|n| n.contains("disk write"))
        {
            let text = if first {
                say.to_string()
            } else {
                format!("n{node}'s next disk write completes too.")
            };
            self.act(Action::Persist { node }, &text);
            first = false;
        }
        self
    }

    fn drop_msg(&mut self, say: &str, pick: impl Fn(&MessageView) -> bool) -> &mut Script {
        self.on_message(|id| Action::Drop { id }, say, pick)
    }

    /// Drops every in-flight message `pick` chooses, if any: for copies a timer may or may not
    /// have sent by this point of the run. `say` narrates the first drop.
    fn drop_every(&mut self, say: &str, pick: impl Fn(&MessageView) -> bool) -> &mut Script {
        let ids: Vec<u64> = self
            .view()
            .in_flight
            .iter()
            .filter(|m| pick(m))
            .map(|m| m.id)
            .collect();
        for (i, id) in ids.into_iter().enumerate() {
            let text = if i == 0 {
                say.to_string()
            } else {
                "That copy is lost too.".to_string()
            };
            self.act(Action::Drop { id }, &text);
        }
        self
    }

    fn finish(&mut self, id: &str, title: &str, intro: &str) -> Scenario {
        Scenario {
            id: id.to_string(),
            title: title.to_string(),
            intro: intro.to_string(),
            spec: self.spec.clone(),
            steps: std::mem::take(&mut self.steps),
        }
    }
}

fn propose_at(node: usize, value: &str) -> Action {
    Action::Propose {
        value: value.to_string(),
        node: Some(node),
        client: None,
        key: None,
    }
}

fn fast_propose(client: usize, value: &str) -> Action {
    Action::Propose {
        value: value.to_string(),
        node: None,
        client: Some(client),
        key: None,
    }
}

fn put(client: usize, key: &str, value: &str) -> Action {
    Action::Propose {
        value: value.to_string(),
        node: None,
        client: Some(client),
        key: Some(key.to_string()),
    }
}

fn chosen(v: &View) -> bool {
    !v.chosen.is_empty()
}

fn known_by_all_up(v: &View) -> bool {
    v.chosen
        .first()
        .is_some_and(|c| c.known_by.len() == v.nodes.iter().filter(|n| n.up).count())
}

fn leader(v: &View) -> Option<usize> {
    v.nodes
        .iter()
        .position(|n| n.role == "leader")
        .map(|i| i + 1)
}

fn ops_done(v: &View, n: usize) -> bool {
    v.ops.len() >= n && v.ops.iter().all(|o| o.output.is_some())
}

fn happy_path() -> Scenario {
    let mut s = Script::new(Protocol::Synod, 3, 1);
    s.act(propose_at(1, "x"), "n1 wants 'x' chosen. It cannot just send it: another proposer may be at work. Phase 1 first: it picks a ballot and writes it to disk.")
        .until("The ballot is durable, so n1's Prepares leave. Each asks an acceptor: promise to ignore every ballot below mine, and tell me what you accepted.", |v| v.in_flight.len() >= 2)
        .until("A quorum of acceptors promises. No one had accepted anything, so n1 is free to propose its own value.", |v| v.nodes.iter().filter(|n| n.promised == "1.1").count() >= 2 && v.in_flight.iter().any(|m| m.kind == "accept"))
        .until("Phase 2: acceptors accept 'x' at ballot 1.1. Look at 'Chosen values': 'x' is chosen the moment a quorum has it on disk, and no node knows yet.", chosen)
        .until("n1 counts the Accepted answers, learns 'x' is chosen, and tells the others.", known_by_all_up);
    s.finish(
        "happy-path",
        "The happy path (single-decree)",
        "One proposer, three acceptors, no faults: the two phases of Paxos in about twenty events.",
    )
}

fn dueling() -> Scenario {
    let mut s = Script::new(Protocol::Synod, 3, 4);
    duel(&mut s, 1);
    s.act(Action::HealAll, "Now the network behaves again: every link works, messages arrive in their own time, and nobody fires timers by hand. The ballots have risen past each other twice (1.1, 1.3, 2.1), and nothing is chosen.")
        .until("From here the timers run by themselves. A preempted proposer waits a random extra time before retrying, so one proposer's round gets through undisturbed, and a value is chosen. Whichever it is, it is the only one ever chosen.", chosen)
        .until("Everyone learns the one value chosen.", known_by_all_up);
    s.finish(
        "dueling",
        "Dueling proposers and randomized backoff",
        "Two proposers at once, each preempting the other with a higher ballot. Paxos stays safe whatever happens; randomized retry timers make it finish.",
    )
}

fn hidden_choice() -> Scenario {
    let mut s = Script::new(Protocol::Synod, 3, 1);
    s.act(propose_at(1, "x"), "n1 proposes 'x'.")
        .until("A quorum (n2, n3) has accepted 'x': it is chosen. Nobody knows yet: n1 has not counted the answers.", chosen)
        .act(Action::Crash { node: 1 }, "The proposer crashes before learning. No living node knows 'x' was chosen. Is it lost?")
        .act(propose_at(2, "y"), "n2 proposes its own value 'y' with a higher ballot.")
        .until("n2's phase 1 hears from a quorum. Every quorum overlaps the one that accepted 'x', so some promise reports 'x': n2 must propose 'x', not 'y'. A chosen value stays chosen.", |v| v.nodes.get(1).is_some_and(|n| n.slots.iter().any(|s| s.known_chosen)));
    s.finish(
        "hidden-choice",
        "A value chosen that no node knows yet",
        "A value can be chosen while nobody knows it. Paxos must still never choose another.",
    )
}

fn acceptor_crash() -> Scenario {
    let mut s = Script::new(Protocol::Synod, 3, 2);
    s.act(propose_at(1, "x"), "n1 proposes 'x'.")
        .until("n3 has promised ballot 1.1 and written it to disk.", |v| {
            v.nodes.get(2).is_some_and(|n| n.promised == "1.1" && n.notes.is_empty())
        })
        .act(Action::Crash { node: 3 }, "n3 crashes. Its memory is gone; its disk keeps the promise.")
        .until("n1 and n2 are still a majority of three, so 'x' is chosen without n3.", chosen)
        .act(Action::Restart { node: 3 }, "n3 restarts from its disk with its promise of 1.1: it will refuse any smaller ballot, as it promised. An acceptor that forgot its promises could help choose a second value.");
    s.finish(
        "acceptor-crash",
        "An acceptor crashes and restarts",
        "Paxos tolerates a minority of crashed acceptors, and a restarted acceptor keeps its word because promises are written to disk first.",
    )
}

fn accept_for(slot: u64, from: usize, to: Option<usize>) -> impl Fn(&MessageView) -> bool {
    move |m| {
        m.kind == "accept"
            && m.from == format!("n{from}")
            && to.is_none_or(|t| m.to == format!("n{t}"))
            && m.label.contains(&format!(" slot {slot} "))
    }
}

fn failover() -> Scenario {
    let mut s = Script::new(Protocol::Multi, 3, 2);
    s.until("The nodes start without a leader. One times out first, wins pre-votes and phase 1, and leads.", |v| leader(v).is_some());
    let old = leader(&s.view()).unwrap_or(1);
    let others: Vec<usize> = (1..=3).filter(|n| *n != old).collect();
    let (a, b) = (others[0], others[1]);
    s.act(put(1, "x", "1"), "Client c1 writes x=1.").until(
        "The leader puts it in slot 1; a quorum accepts; c1 gets its answer.",
        |v| ops_done(v, 1),
    );
    s.act(put(1, "x", "2"), "c1 writes x=2.")
        .until(&format!("n{old} proposes it in slot 2: its Accepts are on their way."), move |v| v.in_flight.iter().any(accept_for(2, old, None)))
        .drop_msg(&format!("The network loses the Accept for slot 2 to n{a}..."), accept_for(2, old, Some(a)))
        .drop_msg(&format!("...and the one to n{b}: slot 2 reached no acceptor but the leader."), accept_for(2, old, Some(b)))
        .act(put(2, "y", "3"), "c2 writes y=3.")
        .until(&format!("n{old} proposes it in slot 3."), move |v| v.in_flight.iter().any(accept_for(3, old, None)))
        .drop_every(&format!("Meanwhile n{old}'s heartbeat timer re-sent the Accept for slot 2, still short of a quorum; the network loses that copy as well."), accept_for(2, old, None))
        .deliver(&format!("n{a} gets the Accept for slot 3 and votes for 'put y=3'."), accept_for(3, old, Some(a)))
        .drop_msg(&format!("The Accept for slot 3 to n{b} is lost: slot 3 is half-accepted, by n{a} only (and the leader)."), accept_for(3, old, Some(b)))
        .act(Action::Crash { node: old }, &format!("The leader n{old} crashes before anything more of slots 2 and 3 gets through. Neither is chosen: slot 2 is a hole, slot 3 is held by n{a} alone among the living."))
        .act(Action::Timer { node: b }, &format!("n{b}'s election timer fires. Its phase 1 covers every slot from the first it does not know chosen."))
        .until(&format!("n{b} leads. n{a}'s promise reported 'put y=3' in slot 3, so n{b} re-proposes it there at its own ballot, as Paxos requires (it may have been chosen). Nobody reported anything for slot 2: n{b} fills the hole with a no-op, so that slot 3 and later can be applied in order."), move |v| leader(v) == Some(b))
        .until("The no-op and the re-proposed 'put y=3' are chosen at the new ballot.", |v| v.chosen.iter().filter(|c| c.slot == 2 || c.slot == 3).count() == 2)
        .until("The clients time out and ask the new leader. c1's x=2 was lost with the hole, so it is proposed anew. c2's y=3 may be proposed again too: the session table applies each command once, whatever slots it lands in.", |v| ops_done(v, 3));
    s.finish(
        "failover",
        "Leader failover in Multi-Paxos",
        "Multi-Paxos runs phase 1 once per leader, not per value. When the leader dies with slots half-done, the new leader's phase 1 finds what may have been chosen and re-proposes it, and fills holes with no-ops.",
    )
}

fn partition() -> Scenario {
    let mut s = Script::new(Protocol::Multi, 5, 3);
    s.until("Five nodes elect a leader.", |v| leader(v).is_some());
    let old = leader(&s.view()).unwrap_or(1);
    let buddy = if old == 1 { 2 } else { 1 };
    let majority: Vec<usize> = (1..=5).filter(|n| *n != old && *n != buddy).collect();
    s.act(
        Action::Partition {
            groups: vec![vec![old, buddy], majority.clone()],
        },
        "The network splits: the leader and one follower on one side, three nodes on the other.",
    )
    .until("The majority side misses its leader, elects a new one with a higher ballot. The old leader cannot reach a quorum: check-quorum makes it step down rather than answer as leader.", move |v| {
        leader(v).is_some_and(|l| majority.contains(&l))
    })
    .act(Action::HealAll, "The partition heals.")
    .until("The old leader hears the higher ballot and follows; nothing chosen is lost.", move |v| {
        v.nodes.get(old - 1).is_some_and(|n| n.role == "follower" && n.leader.is_some())
    });
    s.finish(
        "partition",
        "A partition that heals",
        "Only a side with a majority can make progress; the minority waits, and catches up once the network heals.",
    )
}

fn read_index() -> Scenario {
    let mut s = Script::new(Protocol::Multi, 3, 5);
    s.until("A leader is elected.", |v| leader(v).is_some())
        .act(put(1, "x", "7"), "c1 writes x=7.")
        .until("The write is chosen and applied; c1 is answered.", |v| ops_done(v, 1))
        .act(Action::Read { client: 2, key: "x".to_string() }, "c2 reads x. Answering from the leader's memory at once would be wrong if another leader had taken over unseen.")
        .until("The leader notes the read index (the last slot that may hold a write), sends a heartbeat round, and waits for a quorum to echo it: then no one else can have chosen anything newer. c2 reads 7, without writing to the log.", |v| ops_done(v, 2));
    s.finish(
        "read-index",
        "A linearizable read, confirmed by read-index",
        "Reads do not go through the log, yet never return stale data: the leader confirms it still leads first.",
    )
}

/// A message of `kind` from `n{from}` to `n{to}`.
fn msg(kind: &'static str, from: usize, to: usize) -> impl Fn(&MessageView) -> bool {
    move |m| m.kind == kind && m.from == format!("n{from}") && m.to == format!("n{to}")
}

/// Rounds of the FLP scenario after the first collision.
pub const FLP_ROUNDS: usize = 4;

/// Two proposers, n1 and n3, preempting each other: the opening collision, then `rounds`
/// rounds in which each Prepare overtakes the other's Accept at n2. Built by hand from
/// deliveries and disk writes on the real cores.
fn duel(s: &mut Script, rounds: usize) {
    s.act(
        Action::Cut { from: 1, to: 3 },
        "You are the network now, and you are an adversary: you may delay any message as long as you like, which an asynchronous network may do. First, n1 and n3 will never hear each other (their messages are lost): n2 decides every quorum.",
    )
    .act(Action::Cut { from: 3, to: 1 }, "The link back from n3 to n1 is cut too.")
    .act(propose_at(1, "x"), "n1 proposes 'x' with ballot 1.1.")
    .persist_all(1, "Its ballot is durable; its Prepare leaves for n2.")
    .deliver("n2 gets the Prepare 1.1 first.", msg("prepare", 1, 2))
    .persist_all(2, "n2's promise of 1.1 is durable; its Promise leaves.")
    .deliver("n1 has promises from itself and n2, a quorum: phase 2. Its Accept 1.1 'x' is on its way to n2. You hold it back.", msg("promise", 2, 1))
    .persist_all(1, "n1's own vote is durable.")
    .act(propose_at(3, "y"), "Now n3 proposes 'y' with ballot 1.3.")
    .persist_all(3, "n3's ballot is durable; its Prepare leaves for n2.")
    .deliver("You deliver n3's Prepare 1.3 to n2 before n1's Accept.", msg("prepare", 3, 2))
    .persist_all(2, "n2 has promised 1.3 on disk: it will refuse anything below 1.3.")
    .deliver("n3 has its quorum (itself and n2) and sends Accept 1.3.", msg("promise", 2, 3))
    .persist_all(3, "n3's own vote is durable.")
    .deliver("Only now you let n1's Accept 1.1 reach n2: refused, since n2 promised 1.3.", msg("accept", 1, 2))
    .deliver("n1 learns it was preempted.", msg("nack", 2, 1));
    for round in 0..rounds {
        let (p, q) = if round % 2 == 0 { (1, 3) } else { (3, 1) };
        s.act(Action::Timer { node: p }, &format!("Round {}: n{p}'s retry timer fires just as n{q}'s Accept is on its way, and n{p} starts phase 1 with a higher ballot.", round + 2))
            .persist_all(p, &format!("n{p}'s new ballot is durable; its Prepare leaves."))
            .deliver(&format!("You deliver n{p}'s Prepare to n2 ahead of n{q}'s Accept."), msg("prepare", p, 2))
            .persist_all(2, &format!("n2 promises n{p}'s higher ballot, on disk."))
            .deliver(&format!("n{p} has its quorum and sends its Accept, carrying the value accepted at the highest ballot it heard of."), msg("promise", 2, p))
            .persist_all(p, &format!("n{p}'s own vote is durable."))
            .deliver(&format!("n{q}'s Accept reaches n2 at last, and is refused: preempted, like the round before. Still nothing is chosen."), msg("accept", q, 2))
            .deliver(&format!("n{q} learns it lost this round. It will retry higher, and you will preempt it again."), msg("nack", 2, q));
    }
}

fn flp() -> Scenario {
    let mut s = Script::new(Protocol::Synod, 3, 1);
    duel(&mut s, FLP_ROUNDS);
    s.finish(
        "flp",
        "FLP: an adversary keeps dueling proposers from ever deciding",
        "Fischer, Lynch and Paterson proved that no deterministic protocol can be sure to decide in an asynchronous network with one possible crash. Paxos keeps safety always and gives up guaranteed progress: here you play the network and order messages so that every round's Prepare preempts the other proposer's Accept. Ballots rise forever; nothing is chosen. Randomized timers are what make such a schedule unlikely in practice.",
    )
}

/// Whether node `n`'s notes say it is a voter of configuration `epoch`.
fn voter_in(v: &View, n: usize, epoch: u64) -> bool {
    let note = format!("voter in configuration {epoch}");
    v.nodes
        .get(n - 1)
        .is_some_and(|x| x.up && x.notes.contains(&note))
}

fn replace_acceptor() -> Scenario {
    let mut s = Script::with_spares(Protocol::Multi, 3, 1, 2);
    s.until("Three voters, n1 to n3, elect a leader. n4 runs too, but outside the configuration: a spare machine, waiting to be added.", |v| leader(v).is_some());
    let l = leader(&s.view()).unwrap_or(1);
    let others: Vec<usize> = (1..=3).filter(|n| *n != l).collect();
    let (dead, kept) = (others[0], others[1]);
    s.act(put(1, "x", "1"), "Client c1 writes x=1.")
        .until("It is chosen and applied.", |v| ops_done(v, 1))
        .act(Action::Crash { node: dead }, &format!("n{dead} dies for good. The cluster still runs on n{l} and n{kept}, a majority of three, but one more crash would stop it: n{dead} must be replaced."))
        .act(Action::Reconfigure { voters: vec![1, 2, 3], learners: vec![4] }, "First, n4 joins as a learner. A learner receives the chosen log but never votes: adding an empty machine straight as a voter would make it part of every quorum before it holds anything.")
        .until("The stop-sign is chosen; from the next slot on, the configuration with learner n4 decides. The leader runs phase 1 again in it, and sends n4 the chosen log.", move |v| v.nodes.get(3).is_some_and(|n| n.role == "learner" && n.chosen_through >= v.nodes[l - 1].chosen_through));
    let heard = move |v: &View| {
        v.lines
            .iter()
            .filter(|x| x.from == "n4" && x.to == format!("n{l}") && x.fate == "delivered")
            .count()
    };
    let before = heard(&s.view());
    s.until(&format!("n4 answers the leader's next heartbeat: n{l} now knows that n4 holds the whole chosen log."), move |v| heard(v) > before)
        .act(Action::Reconfigure { voters: vec![l, kept, 4], learners: vec![] }, &format!("n4 is caught up, so it may become a voter. One change promotes n4 and removes n{dead}: voters n{l}, n{kept}, n4. The core would refuse to promote a learner that lags, or a node that was never a learner."))
        .until(&format!("The second stop-sign is chosen by the old voters (n{l} and n{kept} are a quorum of them). The slots after it belong to the new configuration alone, whose quorums are any two of n{l}, n{kept} and n4."), move |v| voter_in(v, 4, 2) && voter_in(v, l, 2))
        .act(put(2, "x", "2"), "c2 writes x=2.")
        .until(&format!("It is chosen by a quorum of the new voters. n{dead} has no say any more: were it to come back, its messages would be refused, and it would learn that it was removed."), |v| ops_done(v, 2));
    s.finish(
        "replace-acceptor",
        "Replacing a dead acceptor (reconfiguration)",
        "Membership changes through the log: a stop-sign chosen in a slot ends one configuration, and the next decides every later slot with its own phase 1. Try it in \"break it\" mode with reconfig-without-stop: a leader that keeps proposing after its stop-sign lets two configurations choose different values in one slot.",
    )
}

/// Steps the flexible-quorums scenario lets pass without a leader.
pub const FLEXIBLE_LEADERLESS_STEPS: u32 = 150;

fn flexible_quorums() -> Scenario {
    let mut s = Script::with_quorums(5, "flexible:4,2", 1);
    s.until("Five nodes, with Flexible Paxos quorums: phase 1 (electing a leader) needs 4 of the 5, phase 2 (choosing a value) only 2. Any 4 and any 2 of 5 share a node, which is all Paxos needs. A leader is elected with four promises.", |v| leader(v).is_some());
    let l = leader(&s.view()).unwrap_or(1);
    let others: Vec<usize> = (1..=5).filter(|n| *n != l).collect();
    let (buddy, gone) = (others[0], others[1..].to_vec());
    for (i, n) in gone.iter().enumerate() {
        let say = if i == 0 {
            format!("n{n} crashes. With majorities, the cluster could lose two nodes; here it keeps choosing after losing three, because phase 2 needs only two.")
        } else {
            format!("n{n} crashes too.")
        };
        s.act(Action::Crash { node: *n }, &say);
    }
    s.act(put(1, "x", "1"), &format!("Client c1 writes x=1. Only n{l} (the leader) and n{buddy} are up."))
        .until(&format!("The write is chosen by two of five: n{l} and n{buddy} accepted it, a phase-2 quorum. c1 gets its answer. (With majorities it would wait for a third vote.)"), |v| ops_done(v, 1));
    let back = gone[..2].to_vec();
    for n in &back {
        s.act(
            Action::Restart { node: *n },
            &format!("n{n} restarts from its disk."),
        );
    }
    s.act(Action::Crash { node: l }, &format!("Now the price. The leader n{l} crashes. n{buddy}, n{} and n{} are up: a majority of five, but not a phase-1 quorum.", back[0], back[1]))
        .steps(FLEXIBLE_LEADERLESS_STEPS, "Time passes and timers fire, yet nobody gets elected: each candidate collects at most three promises, and phase 1 needs four. Small phase-2 quorums are paid for with large phase-1 quorums.")
        .act(Action::Restart { node: gone[2] }, &format!("n{} restarts: four nodes are up.", gone[2]))
        .until(&format!("A leader is elected with four promises. Its phase-1 quorum includes n{buddy}, which reported 'put x=1': every phase-1 quorum meets every phase-2 quorum, so the value chosen by two nodes cannot be lost."), |v| leader(v).is_some())
        .act(put(2, "x", "2"), "c2 writes x=2.")
        .until("It is chosen; x=1 stays chosen in its slot.", |v| ops_done(v, 2));
    s.finish(
        "flexible-quorums",
        "Flexible quorums: a write chosen by two of five",
        "Howard, Malkhi and Spiegelman's Flexible Paxos: Paxos needs only that every phase-1 quorum meets every phase-2 quorum, not that all quorums are majorities. With phase-1 quorums of 4 and phase-2 quorums of 2 out of 5, writes need two votes; elections need four. Try it in \"break it\" mode with quorums-do-not-intersect and quorums flexible:3,2: two leaders choose different values for one slot.",
    )
}

/// A message of `kind` from `from` (a node or proposer name) to `n{to}`.
fn sent(kind: &'static str, from: &'static str, to: usize) -> impl Fn(&MessageView) -> bool {
    move |m| m.kind == kind && m.from == from && m.to == format!("n{to}")
}

fn quiet(v: &View) -> bool {
    v.in_flight.is_empty()
        && v.nodes
            .iter()
            .all(|n| n.notes.iter().all(|x| !x.contains("disk write")))
}

fn fast_collision() -> Scenario {
    let mut s = Script::new(Protocol::Fast, 3, 1);
    s.until("n1 coordinates round 0.1, a fast round. Its Any leaves once its own promise is on disk, and tells every acceptor: vote for the first value a proposer sends you. Fast quorums here are all 3 acceptors; classic quorums are 2.", quiet)
        .act(fast_propose(1, "x"), "Proposer c1 sends 'x' straight to the three acceptors. No leader stands between it and them: if they all vote 'x', it is chosen two message delays after the proposal, one less than classic Paxos.")
        .act(fast_propose(2, "y"), "At the same moment, c2 sends 'y'. Now the network decides who votes for what.")
        .deliver("'x' reaches n1 first: n1 votes for 'x'.", sent("propose", "c1", 1))
        .deliver("'x' reaches n2 first too.", sent("propose", "c1", 2))
        .deliver("But 'y' reaches n3 first: n3 votes for 'y'. The acceptors have split: a collision.", sent("propose", "c2", 3))
        .until("The votes go to disk and the 2b messages to every node. n1, the coordinator, sees that neither value can reach a fast quorum of 3 any more: nothing is chosen in the fast round.", |v| v.nodes[0].notes.iter().any(|n| n.starts_with("collisions")))
        .until("Coordinated recovery (section 3.2): the coordinator treats the fast round's 2b votes as the phase-1 answers of the next round, so it skips phase 1 and sends its 2a at once, with a value the picking rule allows. A classic quorum of 2 accepts it: chosen, after one extra round trip and no timeout.", chosen)
        .until("Every node learns the one value chosen. The value that lost is never chosen: the rule picks a value that may have been chosen in the fast round whenever there is one.", known_by_all_up);
    s.finish(
        "fast-collision",
        "Fast Paxos: a collision and its coordinated recovery",
        "Lamport's Fast Paxos lets proposers send straight to acceptors, saving a message delay, at the price of larger fast quorums. Two proposals at once can split the acceptors; the coordinator recovers in the next round without phase 1. Try it in \"break it\" mode with fast-quorum-too-small: with fast quorums of a bare majority, a recovery round can choose a second value.",
    )
}

fn put_at(node: usize, client: usize, key: &str, value: &str) -> Action {
    Action::Propose {
        value: value.to_string(),
        node: Some(node),
        client: Some(client),
        key: Some(key.to_string()),
    }
}

/// Whether every replica executed `count` commands.
fn all_executed(v: &View, count: usize) -> bool {
    v.nodes.iter().all(|n| {
        n.notes
            .iter()
            .find_map(|t| t.strip_prefix("executed: "))
            .is_some_and(|t| t.split(", ").count() == count)
    })
}

fn epaxos_conflict() -> Scenario {
    let mut s = Script::new(Protocol::Epaxos, 3, 1);
    s.act(put_at(1, 1, "x", "1"), "c1 sends put x=1 to n1. In EPaxos there is no leader to ask: n1 leads this command itself, as instance 1.1. It knows no other command on x, so it proposes seq 1 and no dependencies, and sends PreAccept to n2 and n3.")
        .act(put_at(3, 2, "x", "2"), "At the same moment c2 sends put x=2 to n3, which leads it as instance 3.1, also with seq 1 and no dependencies. Both commands write x: they interfere, and every replica must apply them in the same order.")
        .deliver("n1's PreAccept reaches n3 first. n3 knows its own 3.1 on x, which n1 did not: it adds 3.1 to 1.1's dependencies and raises its seq.", sent("pre-accept", "n1", 3))
        .deliver("n3's PreAccept reaches n1, which likewise adds its own 1.1 to 3.1's dependencies.", sent("pre-accept", "n3", 1))
        .deliver("n3's answer reaches n1: changed attributes. With three replicas the fast quorum is two (the leader and one more) agreeing unchanged; this one disagrees, so 1.1 takes the slow path: an Accept round with the union of the dependencies.", sent("pre-accept-ok", "n3", 1))
        .deliver("The same happens to n3's 3.1: slow path, its dependencies now include 1.1. Each command depends on the other: a cycle.", sent("pre-accept-ok", "n1", 3))
        .until("Accept rounds on a majority commit both instances, and Commits reach every replica. Executing a cycle: the strongly connected component {1.1, 3.1} runs in seq order (instance id breaking a tie), so every replica applies the two writes in the same order. Compare the 'executed' lines of the three nodes.", |v| all_executed(v, 2));
    s.finish(
        "epaxos-conflict",
        "EPaxos: two replicas propose conflicting commands at once",
        "Moraru, Andersen and Kaminsky's EPaxos: every replica leads the commands it receives. Commands that do not interfere commit in one round trip (the fast path); two that interfere and cross each other pick up dependencies on each other, take a second round (the slow path), and are executed in an order every replica computes alike from the dependency graph. Try it in \"break it\" mode with drop-dependency-in-pre-accept: both commands then take the fast path without the dependency, and replicas apply them in different orders.",
    )
}

fn begin_at(node: usize, value: &str) -> Action {
    Action::Propose {
        value: value.to_string(),
        node: Some(node),
        client: None,
        key: None,
    }
}

/// Whether node `node` (from 1) knows transaction `txn`'s outcome.
fn knows_outcome(v: &View, node: usize, txn: &str) -> bool {
    v.nodes[node - 1]
        .notes
        .iter()
        .any(|n| n.starts_with(&format!("{txn}: ")))
}

fn commit_tm_crash() -> Scenario {
    let mut s = Script::new(Protocol::Commit, 5, 1);
    s.act(begin_at(3, "pay"), "n3 begins transaction t1 over the three resource managers n3, n4 and n5, and asks the transaction manager n1 to commit it. Every node is also an acceptor: five acceptors, so F = 2 of them may fail. n3 votes Prepared at once; its vote goes to its disk, then to every acceptor.")
        .until("n1 asks every RM to prepare. Each RM's vote is the value of its own Paxos instance: the RM proposes it at ballot 0, which is its own, so no phase 1 is needed.", |v| v.in_flight.iter().any(|m| m.kind == "prepare"))
        .until("The Prepared votes travel to the acceptors. An acceptor accepts a vote, writes it to disk, and only then reports it (2b) to the transaction manager.", |v| v.nodes.iter().filter(|n| n.slots.iter().any(|x| x.value.contains("n4's vote"))).count() >= 2)
        .act(Action::Crash { node: 1 }, "Now the transaction manager crashes, with votes still on their way. In two-phase commit this is where everyone blocks: the coordinator alone knew the votes, and the RMs that voted Prepared may neither commit nor abort until it comes back.")
        .until("Here the votes are not lost with n1: a majority of acceptors holds them. The RMs, hearing nothing, ask the leaders how t1 ended.", |v| v.in_flight.iter().any(|m| m.kind == "query" && m.to == "n2"))
        .until("n2, the second leader, takes t1 over: phase 1 at a higher ballot for every instance at once. The promises carry what each acceptor accepted; for an instance whose RM never voted, n2 proposes Aborted, which is safe because such an RM cannot have been chosen Prepared.", |v| v.in_flight.iter().any(|m| m.kind == "1a"))
        .until("n2 decides from what a majority of acceptors accepted: Committed only if every instance chose Prepared, Aborted otherwise. Every RM learns the same outcome, and nobody waited for n1.", |v| (3..=5).all(|k| knows_outcome(v, k, "t1")));
    s.finish(
        "commit-tm-crash",
        "Paxos Commit: the transaction manager crashes and the outcome is still decided",
        "Gray and Lamport's Paxos Commit runs one Paxos instance per resource manager to decide its vote, on 2F+1 acceptors, so a crashed transaction manager blocks nobody: another leader reads the votes back from a majority of acceptors. Two-phase commit is the case F = 0, and blocks. Try it in \"break it\" mode with commit-with-missing-vote: a leader that commits with one vote still missing can commit a transaction an RM aborted.",
    )
}

fn cheap_auxiliary() -> Scenario {
    let mut s = Script::with_quorums(5, "cheap:3", 1);
    s.until("Five nodes under Cheap Paxos: n1, n2 and n3 are the main acceptors, n4 and n5 auxiliaries. All the mains together are a quorum, so while they answer the leader sends to them alone: the auxiliaries get nothing and store nothing.", |v| leader(v).is_some());
    let l = leader(&s.view()).unwrap_or(1);
    let dead = (1..=3).find(|n| *n != l).unwrap_or(1);
    s.act(Action::Crash { node: dead }, &format!("The main acceptor n{dead} crashes. The mains alone are no longer a quorum."))
        .act(put(1, "x", "1"), "Client c1 writes x=1.")
        .until(&format!("n{l} has not heard from n{dead} for half an election timeout: it engages the auxiliaries and sends to them too. A majority of all five (the live mains and the auxiliaries) accepts, and the write is chosen."), |v| ops_done(v, 1))
        .until(&format!("n{dead} stays silent for two election timeouts, so n{l} drops it: a configuration change chosen as a stop-sign in the old configuration, which is what keeps it safe (the paper, section 3). The next voters omit n{dead}."), |v| v.chosen.iter().any(|c| c.value.starts_with("stop-sign")))
        .until("The new configuration is in force: its mains are the remaining ones, a quorum by themselves again, and the auxiliaries go back to idle once they have learned the stop-sign.", |v| v.nodes[l - 1].notes.iter().any(|n| n.starts_with("voter in configuration 1")))
        .act(put(2, "x", "2"), "c2 writes x=2.")
        .until("It is chosen by the mains of the new configuration; the auxiliaries are idle again, ready for the next failure.", |v| ops_done(v, 2));
    s.finish(
        "cheap-auxiliary",
        "Cheap Paxos: an auxiliary steps in for a dead main acceptor",
        "Lamport and Massa's Cheap Paxos runs f+1 main acceptors and f auxiliaries that take part only while a main is down, so the auxiliaries can be cheap machines that store almost nothing. When a main dies the leader engages the auxiliaries, then drops the dead main through a stop-sign and lets the auxiliaries go idle. Try it in \"break it\" mode with cheap-drop-without-stop-sign in the simulator (synod sim --protocol cheap).",
    )
}

/// Whether processor `node` (from 1) of a Disk Paxos view has decided.
fn decided(v: &View, node: usize) -> bool {
    v.nodes[node - 1]
        .notes
        .iter()
        .any(|n| n.starts_with("decided"))
}

fn disk_mid_write() -> Scenario {
    let mut s = Script::new(Protocol::Disk, 3, 1);
    // Disk d3 is node 6: disks are numbered after the three processors.
    let d3 = 6;
    let vote_to_d3 = |v: &View| {
        v.in_flight
            .iter()
            .any(|m| m.kind == "write" && m.to == "d3" && m.label.contains("vote"))
    };
    s.until("Three processors n1, n2 and n3 share three disks d1, d2 and d3, and send each other nothing. Each starts by reading its own block back from the disks (phase 0), since it keeps nothing in memory across a crash.", |v| v.nodes[..3].iter().all(|n| n.role == "idle"))
        .act(propose_at(1, "a"), "n1 gets the input 'a'.")
        .act(Action::Timer { node: 1 }, "n1 starts a ballot. Phase 1 writes its block, with the new ballot as its mbal, to every disk. On each disk, once that write is done, it reads n2's and n3's blocks there; a phase needs a majority of disks, two of three.")
        .until("Phase 1 is done on a majority of disks, and n1 read no vote: it takes its own input, and phase 2 writes its vote 'a' to every disk.", vote_to_d3)
        .act(Action::Crash { node: d3 }, "Disk d3 fails in the middle of writing n1's vote: n1's block there is torn, half old and half new. The write never completes.")
        .until("d1 and d2 are a majority of disks: n1's vote is on both, so 'a' is chosen and n1 decides, without d3.", |v| decided(v, 1))
        .act(propose_at(2, "b"), "n2 gets the input 'b'.")
        .act(Action::Timer { node: 2 }, "n2 starts a higher ballot. Whichever majority of disks its phase 1 reaches, it has at least one in common with the disks holding n1's vote.")
        .until("n2 reads n1's vote 'a' on a working disk, so its phase 2 writes 'a', not 'b', and it decides 'a': agreement, with a disk down.", |v| decided(v, 2))
        .act(Action::Restart { node: d3 }, "d3 comes back with n1's torn block. Reading it fails its checksum: damage costs a read, never a vote.")
        .act(propose_at(3, "c"), "n3 gets the input 'c'.")
        .act(Action::Timer { node: 3 }, "n3 runs a ballot too. Its reads on d3 fail (n1's block is torn), so it needs d1 and d2.")
        .until("n3 decides 'a' as well: its phase 1 read n1's or n2's vote on the disks that work.", |v| decided(v, 3));
    s.finish(
        "disk-mid-write",
        "Disk Paxos: a disk fails mid-write and a majority of disks still decides",
        "Gafni and Lamport's Disk Paxos: processors that share no memory and send no messages, only disks. Each processor writes its own block on every disk and reads the others' blocks; a majority of disks stands in for a quorum of acceptors. Try it in \"break it\" mode with decide-without-disk-majority: a processor that decides after one disk lets two processors decide two values.",
    )
}

/// Every scenario, built now on the real cores.
pub fn all() -> Vec<Scenario> {
    vec![
        happy_path(),
        dueling(),
        flp(),
        hidden_choice(),
        acceptor_crash(),
        failover(),
        partition(),
        read_index(),
        replace_acceptor(),
        flexible_quorums(),
        fast_collision(),
        epaxos_conflict(),
        commit_tm_crash(),
        cheap_auxiliary(),
        disk_mid_write(),
    ]
}
