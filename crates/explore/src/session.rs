//! A session replayed: check its spec and actions, build the world, apply the actions up to
//! a step. A small cache keeps recent worlds so that stepping forward replays only the new
//! actions; going back replays from the seed.

use crate::commit::CommitWorld;
use crate::disk::DiskWorld;
use crate::epaxos::EpaxosWorld;
use crate::fast::FastWorld;
use crate::model::{
    Action, Protocol, SessionError, Spec, View, ViewRequest, ACTIONS_MAX, NODES_MAX, NODES_MIN,
    SPARES_MAX, TEXT_MAX, UNITS_MAX,
};
use crate::multi::MultiWorld;
use crate::synod::SynodWorld;
use paxos::{Bug, PlantedBugs};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Worlds kept for fast forward steps; each costs a cluster's memory.
pub const CACHE_WORLDS: usize = 16;

/// One of the two worlds.
pub enum World {
    /// Single-decree.
    Synod(Box<SynodWorld>),
    /// Multi-Paxos.
    Multi(Box<MultiWorld>),
    /// Fast Paxos.
    Fast(Box<FastWorld>),
    /// EPaxos.
    Epaxos(Box<EpaxosWorld>),
    /// Paxos Commit.
    Commit(Box<CommitWorld>),
    /// Disk Paxos.
    Disk(Box<DiskWorld>),
}

impl World {
    pub(crate) fn apply(&mut self, action: &Action, step: usize) {
        match self {
            World::Synod(w) => w.apply(action, step),
            World::Multi(w) => w.apply(action, step),
            World::Fast(w) => w.apply(action, step),
            World::Epaxos(w) => w.apply(action, step),
            World::Commit(w) => w.apply(action, step),
            World::Disk(w) => w.apply(action, step),
        }
    }

    pub(crate) fn view(&self, spec: &Spec, step: usize, total: usize) -> View {
        match self {
            World::Synod(w) => w.view(spec, step, total),
            World::Multi(w) => w.view(spec, step, total),
            World::Fast(w) => w.view(spec, step, total),
            World::Epaxos(w) => w.view(spec, step, total),
            World::Commit(w) => w.view(spec, step, total),
            World::Disk(w) => w.view(spec, step, total),
        }
    }
}

/// The planted bugs a spec asks for.
pub fn bugs_of(spec: &Spec) -> Result<PlantedBugs, SessionError> {
    let Some(name) = &spec.bug else {
        return Ok(PlantedBugs::none());
    };
    let bug = Bug::from_name(name).ok_or_else(|| SessionError::UnknownBug(name.clone()))?;
    if !sim::planted_bugs_available() {
        return Err(SessionError::NoPlantedBugs);
    }
    Ok(PlantedBugs::only(bug))
}

/// Checks everything a browser sent before any of it reaches a world: a world may assume
/// node and client numbers are in range and texts are short.
pub fn validate(spec: &Spec, actions: &[Action]) -> Result<(), SessionError> {
    if !(NODES_MIN..=NODES_MAX).contains(&spec.nodes) {
        return Err(SessionError::Nodes(spec.nodes));
    }
    bugs_of(spec)?;
    if spec.spares > 0
        && (spec.protocol != Protocol::Multi
            || spec.faults.is_some()
            || spec.spares > SPARES_MAX
            || spec.nodes + spec.spares > NODES_MAX)
    {
        return Err(SessionError::Spares);
    }
    if let Some(rule) = &spec.quorums {
        if spec.protocol != Protocol::Multi {
            return Err(SessionError::WrongProtocol(
                "quorum rules are for Multi-Paxos sessions".to_string(),
            ));
        }
        quorum_rule(spec, rule)?;
    }
    if let Some(f) = &spec.faults {
        if spec.protocol != Protocol::Multi {
            return Err(SessionError::WrongProtocol(
                "fault profiles replay Multi-Paxos simulator runs only".to_string(),
            ));
        }
        crate::multi::parse_faults(f)?;
    }
    if actions.len() > ACTIONS_MAX || units(actions) > UNITS_MAX {
        return Err(SessionError::TooLong);
    }
    let clients = match spec.protocol {
        Protocol::Synod => 0,
        Protocol::Multi if spec.faults.is_some() => 0,
        Protocol::Multi => crate::multi::CLIENTS,
        Protocol::Fast => crate::fast::PROPOSERS,
        Protocol::Epaxos => crate::epaxos::CLIENTS,
        Protocol::Commit | Protocol::Disk => 0,
    };
    if spec.protocol == Protocol::Epaxos && spec.nodes.is_multiple_of(2) {
        return Err(SessionError::OddReplicas(spec.nodes));
    }
    // Disk Paxos's disks are numbered after its processors.
    let disks = if spec.protocol == Protocol::Disk {
        crate::disk::DISKS
    } else {
        0
    };
    let node = |n: usize| {
        if (1..=spec.nodes + spec.spares + disks).contains(&n) {
            Ok(())
        } else {
            Err(SessionError::NoSuchNode(n))
        }
    };
    let client = |c: usize| {
        if (1..=clients).contains(&c) {
            Ok(())
        } else {
            Err(SessionError::NoSuchClient(c))
        }
    };
    let text = |s: &str| {
        if s.is_empty() || s.chars().count() > TEXT_MAX {
            Err(SessionError::Text)
        } else {
            Ok(())
        }
    };
    for a in actions {
        match a {
            Action::Step { .. }
            | Action::Deliver { .. }
            | Action::Drop { .. }
            | Action::Duplicate { .. }
            | Action::HealAll => {}
            Action::Crash { node: n } | Action::Restart { node: n } | Action::Timer { node: n } => {
                node(*n)?
            }
            Action::Persist { node: n } => node(*n)?,
            Action::Cut { from, to } | Action::Heal { from, to } => {
                node(*from)?;
                node(*to)?;
            }
            Action::Partition { groups } => {
                let mut seen = Vec::new();
                for g in groups {
                    if g.is_empty() {
                        return Err(SessionError::Partition);
                    }
                    for n in g {
                        node(*n)?;
                        if seen.contains(n) {
                            return Err(SessionError::Partition);
                        }
                        seen.push(*n);
                    }
                }
            }
            Action::Propose {
                value,
                node: n,
                client: c,
                key,
            } => {
                text(value)?;
                match spec.protocol {
                    Protocol::Synod | Protocol::Commit | Protocol::Disk => node(n.unwrap_or(1))?,
                    Protocol::Multi => {
                        client(c.unwrap_or(1))?;
                        if let Some(k) = key {
                            text(k)?;
                        }
                    }
                    Protocol::Fast => client(c.unwrap_or(1))?,
                    Protocol::Epaxos => {
                        node(n.unwrap_or(1))?;
                        client(c.unwrap_or(1))?;
                        if let Some(k) = key {
                            text(k)?;
                        }
                    }
                }
            }
            Action::Reconfigure { voters, learners } => {
                if spec.protocol != Protocol::Multi {
                    return Err(SessionError::WrongProtocol(
                        "a single-decree instance decides one value: it has no configuration to \
                         change"
                            .to_string(),
                    ));
                }
                let mut seen = Vec::new();
                for n in voters.iter().chain(learners) {
                    node(*n)?;
                    if seen.contains(n) {
                        return Err(SessionError::Configuration);
                    }
                    seen.push(*n);
                }
                if voters.is_empty() {
                    return Err(SessionError::Configuration);
                }
            }
            Action::Read { client: c, key } => {
                if spec.protocol != Protocol::Multi {
                    return Err(SessionError::WrongProtocol(
                        "a single-decree instance has no reads".to_string(),
                    ));
                }
                client(*c)?;
                text(key)?;
            }
        }
    }
    Ok(())
}

/// The quorum rule `rule` names, checked against the session's voters as the simulator will
/// build its first configuration (with the session's planted bugs), so that a rule the core
/// refuses is refused here with the core's reason rather than panicking the replay.
pub fn quorum_rule(spec: &Spec, rule: &str) -> Result<paxos::QuorumSpec, SessionError> {
    let parsed: paxos::QuorumSpec = rule
        .parse()
        .map_err(|e: paxos::QuorumParseError| SessionError::Quorums(e.to_string()))?;
    let voters = (1..=spec.nodes as u64).map(paxos::NodeId).collect();
    paxos::Configuration::with_planted_bugs(voters, Vec::new(), parsed.clone(), bugs_of(spec)?)
        .map_err(|e| SessionError::Quorums(e.to_string()))?;
    Ok(parsed)
}

/// Total units of an action list.
pub fn units(actions: &[Action]) -> usize {
    actions.iter().map(Action::units).sum()
}

/// A world at step 0.
pub fn fresh(spec: &Spec) -> Result<World, SessionError> {
    let bugs = bugs_of(spec)?;
    Ok(match spec.protocol {
        Protocol::Synod => World::Synod(Box::new(SynodWorld::new(spec, bugs))),
        Protocol::Multi => World::Multi(Box::new(MultiWorld::new(spec, bugs)?)),
        Protocol::Fast => World::Fast(Box::new(FastWorld::new(spec, bugs))),
        Protocol::Epaxos => World::Epaxos(Box::new(EpaxosWorld::new(spec, bugs))),
        Protocol::Commit => World::Commit(Box::new(CommitWorld::new(spec, bugs))),
        Protocol::Disk => World::Disk(Box::new(DiskWorld::new(spec, bugs))),
    })
}

/// A world together with how far into its action list it is.
pub struct Cached {
    spec: Spec,
    /// Actions applied, in units (a partly applied `step` counts its applied part).
    done: Vec<Action>,
    units: usize,
    world: World,
}

/// Recently used worlds, most recent last.
#[derive(Default)]
pub struct Cache {
    entries: Vec<Cached>,
}

/// The first `at` units of `actions`, with a `step` cut short if `at` falls inside it.
fn prefix(actions: &[Action], at: usize) -> Vec<Action> {
    let mut out = Vec::new();
    let mut left = at;
    for a in actions {
        if left == 0 {
            break;
        }
        let u = a.units();
        if u <= left {
            out.push(a.clone());
            left -= u;
        } else {
            out.push(Action::Step { n: left as u32 });
            left = 0;
        }
    }
    out
}

/// Whether `done` (applied) is a prefix of `want`, unit for unit; returns the units of
/// `want` still to apply, as actions.
fn remaining(done: &[Action], want: &[Action]) -> Option<Vec<Action>> {
    if done.len() > want.len() {
        return None;
    }
    let last = done.len().checked_sub(1);
    for (i, (d, w)) in done.iter().zip(want).enumerate() {
        let same = d == w
            || (Some(i) == last
                && matches!((d, w), (Action::Step { n: a }, Action::Step { n: b }) if a <= b));
        if !same {
            return None;
        }
    }
    let mut rest = Vec::new();
    if let Some(i) = last {
        if let (Action::Step { n: a }, Action::Step { n: b }) = (&done[i], &want[i]) {
            if b > a {
                rest.push(Action::Step { n: b - a });
            }
        }
    }
    rest.extend(want[done.len()..].iter().cloned());
    Some(rest)
}

impl Cache {
    /// The view `request` asks for, replaying what the cache does not already hold.
    pub fn view(&mut self, request: &ViewRequest) -> Result<View, SessionError> {
        validate(&request.spec, &request.actions)?;
        let total = units(&request.actions);
        let at = request.at.unwrap_or(total).min(total);
        let want = prefix(&request.actions, at);
        let reuse = self
            .entries
            .iter()
            .position(|c| c.spec == request.spec && remaining(&c.done, &want).is_some());
        let mut cached = match reuse {
            Some(i) => self.entries.remove(i),
            None => Cached {
                spec: request.spec.clone(),
                done: Vec::new(),
                units: 0,
                world: fresh(&request.spec)?,
            },
        };
        let rest = remaining(&cached.done, &want).unwrap_or_default();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            for a in &rest {
                for _ in 0..a.units() {
                    cached.units += 1;
                    cached.world.apply(a, cached.units);
                }
            }
        }));
        if let Err(payload) = outcome {
            // The world is in an unknown state: do not keep it.
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_else(|| "a panic".to_string());
            return Err(SessionError::Panicked(message));
        }
        cached.done = want;
        let view = cached.world.view(&request.spec, cached.units, total);
        self.entries.push(cached);
        if self.entries.len() > CACHE_WORLDS {
            self.entries.remove(0);
        }
        Ok(view)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_cuts_a_step_short() {
        let a = vec![
            Action::Step { n: 3 },
            Action::Crash { node: 1 },
            Action::Step { n: 2 },
        ];
        assert_eq!(prefix(&a, 2), vec![Action::Step { n: 2 }]);
        assert_eq!(
            prefix(&a, 5),
            vec![
                Action::Step { n: 3 },
                Action::Crash { node: 1 },
                Action::Step { n: 1 }
            ]
        );
        assert_eq!(prefix(&a, 99), a);
    }

    #[test]
    fn remaining_extends_a_step_and_refuses_a_fork() {
        let done = vec![Action::Crash { node: 1 }, Action::Step { n: 2 }];
        let want = vec![
            Action::Crash { node: 1 },
            Action::Step { n: 5 },
            Action::HealAll,
        ];
        assert_eq!(
            remaining(&done, &want),
            Some(vec![Action::Step { n: 3 }, Action::HealAll])
        );
        let fork = vec![Action::Crash { node: 2 }];
        assert_eq!(remaining(&done, &fork), None);
        let shorter = vec![Action::Crash { node: 1 }, Action::Step { n: 1 }];
        assert_eq!(remaining(&done, &shorter), None);
    }
}
