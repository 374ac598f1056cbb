//! Model checking of the real Disk Paxos core, `paxos::disk::DiskProcessor`, with stateright:
//! two processors (inputs `[1]` and `[2]`) sharing three disks, each of which may fail once.
//!
//! Nothing here re-implements Disk Paxos. The model owns the cores and the disks' blocks; an
//! action serves one outstanding request atomically at its disk (a write replaces the
//! processor's block, a read returns the blocks as they are then) and feeds the completion to
//! the core, whose new requests join the outstanding ones. Requests are served in any order
//! across processors and disks, and in order within one processor's queue to one disk (the
//! driver's contract, see `DiskIo`); they may be served late: a write of an abandoned phase
//! can still land after its processor moved on, as a slow disk's would. (Torn and corrupt blocks are the driver's business: it turns them into
//! failed reads, which is what a failed disk gives here.)
//!
//! Actions: serve a request; fail a disk (once each, for good: every later request to it
//! fails); a processor starts a ballot (`campaign`, at most two per processor); a processor
//! crashes and restarts (once in all), losing its memory and its outstanding requests, and
//! recovering from its own blocks (phase 0). A read whose answer the core would ignore (of a
//! phase already over) is dropped at once: it changes nothing but the search's size.
//!
//! Properties: Always **agreement** (no two decisions, across restarts, differ) and
//! **validity** (every decision is an input); Sometimes **decided** and **decided after a disk
//! failed** (the checks are not vacuous). The state space is bounded by depth (`DEPTH_MAX`
//! steps, breadth first).
//!
//! With `--features planted-bugs` the checker must find an agreement counterexample with
//! `decide-without-disk-majority`:
//! `cargo test -p synod-paxos --features planted-bugs --test model_disk -- --nocapture`.

mod common;

use paxos::disk::{
    Completion, DiskBlock, DiskConfig, DiskIo, DiskPaxosOptions, DiskProcessor, Stage, Value,
};
use paxos::{NodeId, PlantedBugs};
use stateright::{Checker, Model, Property};

const PROCESSORS: usize = 2;
const DISKS: usize = 3;
const BALLOTS_MAX: u8 = 2;
const RESTARTS_MAX: u8 = 1;
/// Every execution of at most this many actions is explored. A decision takes 10 (a ballot,
/// then a write and a read on each of two disks, twice); a decision after a disk failed 11;
/// the planted bug's disagreement 10. Depth 15 took 70 s (6.5 million states) on two cores,
/// depth 14 3.5 million; depth 13 1.9 million states in 22 s.
const DEPTH_MAX: usize = 13;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct State {
    procs: Vec<DiskProcessor>,
    disks: Vec<Vec<DiskBlock>>,
    failed: Vec<bool>,
    /// Outstanding requests: (processor index, request).
    pending: Vec<(usize, DiskIo)>,
    ballots: Vec<u8>,
    restarts: u8,
    /// Ghosts: every decision so far, and whether one came after a disk failed.
    decisions: Vec<Value>,
    decided_after_failure: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Action {
    Serve(usize),
    FailDisk(usize),
    Campaign(usize),
    Restart(usize),
}

struct DiskModel {
    bugs: PlantedBugs,
}

fn input(p: usize) -> Value {
    vec![p as u8 + 1]
}

impl DiskModel {
    fn processor(&self, p: usize) -> DiskProcessor {
        let config = DiskConfig::new(PROCESSORS, DISKS).unwrap();
        let mut core = DiskProcessor::new(
            NodeId(p as u64 + 1),
            config,
            DiskPaxosOptions::default(),
            self.bugs,
        )
        .unwrap();
        core.propose(input(p)).unwrap();
        core
    }

    /// Serves one request at its disk, as a driver would.
    fn serve(s: &State, io: &DiskIo) -> Completion {
        let d = io.disk().0 as usize;
        match io.clone() {
            DiskIo::Write { disk, tag, .. } | DiskIo::Read { disk, tag, .. } if s.failed[d] => {
                Completion::Failed { disk, tag }
            }
            DiskIo::Write { disk, tag, .. } => Completion::Written { disk, tag },
            DiskIo::Read { disk, tag, of } => {
                let blocks = of
                    .iter()
                    .map(|q| (*q, s.disks[d][(q.0 - 1) as usize].clone()))
                    .collect();
                Completion::Read { disk, tag, blocks }
            }
        }
    }

    /// Drains processor `p`'s outputs into the state.
    fn pump(s: &mut State, p: usize) {
        let ready = s.procs[p].ready();
        for io in ready.io {
            s.pending.push((p, io));
        }
        if let Some(v) = ready.decided {
            if s.failed.iter().any(|f| *f) {
                s.decided_after_failure = true;
            }
            if !s.decisions.contains(&v) {
                s.decisions.push(v);
            }
        }
        // A read the core would ignore changes nothing: drop it. Writes stay: they land.
        let procs = &s.procs;
        s.pending.retain(|(q, io)| match io {
            DiskIo::Read { tag, .. } => procs[*q].current_tag() == *tag,
            DiskIo::Write { .. } => true,
        });
    }
}

impl Model for DiskModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let mut s = State {
            procs: (0..PROCESSORS).map(|p| self.processor(p)).collect(),
            disks: vec![vec![DiskBlock::INITIAL; PROCESSORS]; DISKS],
            failed: vec![false; DISKS],
            pending: Vec::new(),
            ballots: vec![0; PROCESSORS],
            restarts: 0,
            decisions: Vec::new(),
            decided_after_failure: false,
        };
        // Both processors start recovered from empty disks: phase 0 on fresh disks is
        // uninteresting and would cost four steps of depth. Restarts run it for real.
        for p in 0..PROCESSORS {
            for io in s.procs[p].ready().io {
                let c = Self::serve(&s, &io);
                s.procs[p].completed(c);
            }
            assert_eq!(s.procs[p].stage(), Stage::Idle);
            let _ = s.procs[p].ready();
        }
        vec![s]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        // One queue per processor and disk (see `DiskIo`): only the oldest request of each
        // is served next.
        for i in 0..s.pending.len() {
            let (p, io) = &s.pending[i];
            let first = s.pending[..i]
                .iter()
                .all(|(q, other)| q != p || other.disk() != io.disk());
            if first {
                actions.push(Action::Serve(i));
            }
        }
        for d in 0..DISKS {
            if !s.failed[d] {
                actions.push(Action::FailDisk(d));
            }
        }
        for p in 0..PROCESSORS {
            if s.procs[p].stage() == Stage::Idle && s.ballots[p] < BALLOTS_MAX {
                actions.push(Action::Campaign(p));
            }
            if s.restarts < RESTARTS_MAX {
                actions.push(Action::Restart(p));
            }
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Serve(i) => {
                let (p, io) = s.pending.remove(i);
                let c = Self::serve(&s, &io);
                if let (DiskIo::Write { disk, block, .. }, Completion::Written { .. }) = (&io, &c) {
                    s.disks[disk.0 as usize][p] = block.clone();
                }
                s.procs[p].completed(c);
                Self::pump(&mut s, p);
            }
            Action::FailDisk(d) => s.failed[d] = true,
            Action::Campaign(p) => {
                s.ballots[p] += 1;
                s.procs[p].campaign();
                Self::pump(&mut s, p);
            }
            Action::Restart(p) => {
                s.restarts += 1;
                // Its requests die with it: none reaches a disk any more.
                s.pending.retain(|(q, _)| *q != p);
                s.procs[p] = self.processor(p);
                Self::pump(&mut s, p);
            }
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("agreement", |_, s: &State| s.decisions.len() <= 1),
            Property::always("validity", |_, s: &State| {
                s.decisions
                    .iter()
                    .all(|v| (0..PROCESSORS).any(|p| input(p) == *v))
            }),
            Property::sometimes("decided", |_, s: &State| !s.decisions.is_empty()),
            Property::sometimes("decided after a disk failed", |_, s: &State| {
                s.decided_after_failure
            }),
        ]
    }
}

#[test]
fn disk_paxos_safety_every_execution_up_to_the_depth_bound() {
    let model = DiskModel {
        bugs: PlantedBugs::none(),
    };
    let builder = model
        .checker()
        .threads(common::threads())
        .target_max_depth(DEPTH_MAX);
    common::explore("model_disk", builder).assert_properties();
}

#[cfg(feature = "planted-bugs")]
mod planted {
    use super::*;
    use paxos::Bug;

    #[test]
    fn deciding_without_a_disk_majority_breaks_agreement() {
        let model = DiskModel {
            bugs: PlantedBugs::only(Bug::DecideWithoutDiskMajority),
        };
        let builder = model
            .checker()
            .threads(common::threads())
            .target_max_depth(DEPTH_MAX);
        common::expect_counterexample(
            "model_disk decide-without-disk-majority",
            "agreement",
            builder,
        );
    }
}
