//! Guided scenarios. Each is built by driving a real world (the same code the page drives)
//! and recording what was done: a spec and a list of narrated actions. Conditions like "step
//! until a leader exists" are resolved here, against the real core, into plain step counts,
//! so the page replays exactly what was narrated.

use crate::model::{Action, Protocol, Spec, View};
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
        let spec = Spec {
            protocol,
            nodes,
            seed,
            bug: None,
            faults: None,
        };
        let world = fresh(&spec).expect("scenario specs are valid");
        Script {
            spec,
            world,
            units: 0,
            steps: Vec::new(),
        }
    }

    fn view(&self) -> View {
        self.world.view(&self.spec, self.units, self.units)
    }

    fn act(&mut self, action: Action, say: &str) -> &mut Script {
        self.units += 1;
        self.world.apply(&action, self.units);
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
    s.act(propose_at(1, "x"), "n1 proposes 'x'.")
        .act(propose_at(3, "y"), "At the same moment n3 proposes 'y'. Each will raise the ballot above the other's.")
        .until("Watch the ballots rise: each Prepare at a higher ballot makes acceptors refuse the other's Accepts (Nack). Without care this could go on forever. Each proposer waits a random extra time before retrying, so soon one gets through undisturbed, and a value is chosen.", chosen)
        .until("Everyone learns the one value chosen. Only one value can ever be chosen, whoever 'wins'.", known_by_all_up);
    s.finish(
        "dueling",
        "Dueling proposers and randomized backoff",
        "Two proposers at once. Paxos stays safe whatever happens; randomized retry timers make it finish.",
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

fn failover() -> Scenario {
    let mut s = Script::new(Protocol::Multi, 3, 2);
    s.until("The nodes start without a leader. One times out first, wins pre-votes and phase 1, and leads.", |v| leader(v).is_some());
    let first = leader(&s.view()).unwrap_or(1);
    s.act(put(1, "x", "1"), "Client c1 writes x=1.").until(
        "The leader puts it in slot 1; a quorum accepts; c1 gets its answer.",
        |v| ops_done(v, 1),
    );
    s.act(
        Action::Crash { node: first },
        "The leader crashes. Followers stop hearing heartbeats.",
    )
    .until("A follower's election timer fires. Its phase 1 covers every slot from the first it does not know chosen: promises report what was accepted, and the new leader re-proposes those values at its ballot, and fills any gap with a no-op so later slots can be applied.", |v| leader(v).is_some_and(|l| l != first))
    .act(put(2, "x", "2"), "Client c2 writes x=2 to the new leader (a client that asks a follower is told who leads).")
    .until("Chosen in the next slot, after everything the old leader had chosen.", |v| ops_done(v, 2));
    s.finish(
        "failover",
        "Leader failover in Multi-Paxos",
        "Multi-Paxos runs phase 1 once per leader, not per value. When the leader dies, a new one runs phase 1 for all open slots at once.",
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

/// Every scenario, built now on the real cores.
pub fn all() -> Vec<Scenario> {
    vec![
        happy_path(),
        dueling(),
        hidden_choice(),
        acceptor_crash(),
        failover(),
        partition(),
        read_index(),
    ]
}
