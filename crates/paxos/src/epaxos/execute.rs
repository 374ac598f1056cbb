//! Execution (EPaxos §4.3.2): a committed command runs once every instance it reaches in the
//! dependency graph is committed. Tarjan's algorithm finds the strongly connected components;
//! they come out in reverse topological order (dependencies first), and inside one component
//! the commands run in sequence-number order, instance id breaking ties. Every replica has the
//! same committed graph, so every replica runs interfering commands in the same order.
//!
//! An instance reached but not committed blocks the walk; it is watched, so this replica takes
//! it over (explicit prepare) if it stays uncommitted.

use super::{Command, InstanceId, Replica, Status};
use crate::bugs::Bug;
use std::collections::{BTreeMap, BTreeSet};

/// Tarjan's bookkeeping for one node.
struct Visit {
    index: usize,
    low: usize,
}

impl Replica {
    /// Executes every committed instance whose dependency closure is committed.
    pub(super) fn try_execute(&mut self) {
        let roots: Vec<InstanceId> = self.committed_unexecuted.iter().copied().collect();
        // Instances a blocked walk left unexecuted all reach the uncommitted instance that
        // blocked it (each is on the walk's path or reaches a node on it: Tarjan's stack
        // invariant), so they stay blocked for the rest of this pass: not walking them again
        // keeps a pass linear in the graph instead of quadratic.
        let mut blocked = BTreeSet::new();
        for root in roots {
            if !self.executed.contains(&root) && !blocked.contains(&root) {
                self.execute_from(root, &mut blocked);
            }
        }
    }

    /// The unexecuted dependencies of `i` (all committed: the caller checked `i`).
    fn pending_deps(&self, i: InstanceId) -> Vec<InstanceId> {
        self.instances
            .get(&i)
            .map(|r| {
                r.attrs
                    .deps
                    .iter()
                    .copied()
                    .filter(|d| !self.executed.contains(d))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn is_committed(&self, i: InstanceId) -> bool {
        self.instances
            .get(&i)
            .is_some_and(|r| r.vballot.is_some() && r.status == Status::Committed)
    }

    /// Iterative Tarjan from `root`; stops at the first uncommitted instance (components found
    /// before it are complete, so they stay executed).
    fn execute_from(&mut self, root: InstanceId, blocked: &mut BTreeSet<InstanceId>) {
        let mut visits: BTreeMap<InstanceId, Visit> = BTreeMap::new();
        let mut stack: Vec<InstanceId> = Vec::new();
        let mut on_stack: BTreeSet<InstanceId> = BTreeSet::new();
        // The DFS: a node and the dependencies it has still to visit.
        let mut calls: Vec<(InstanceId, Vec<InstanceId>)> = Vec::new();
        let mut next_index = 0;
        let mut enter = |i: InstanceId,
                         this: &Replica,
                         visits: &mut BTreeMap<InstanceId, Visit>,
                         stack: &mut Vec<InstanceId>,
                         on_stack: &mut BTreeSet<InstanceId>,
                         calls: &mut Vec<(InstanceId, Vec<InstanceId>)>| {
            visits.insert(
                i,
                Visit {
                    index: next_index,
                    low: next_index,
                },
            );
            next_index += 1;
            stack.push(i);
            on_stack.insert(i);
            let mut deps = this.pending_deps(i);
            deps.reverse(); // popped from the back: visit in ascending order
            calls.push((i, deps));
        };
        if !self.is_committed(root) {
            return;
        }
        enter(
            root,
            self,
            &mut visits,
            &mut stack,
            &mut on_stack,
            &mut calls,
        );
        while let Some((node, deps)) = calls.last_mut() {
            let node = *node;
            if let Some(d) = deps.pop() {
                if self.executed.contains(&d) {
                    continue;
                }
                if !self.is_committed(d) || blocked.contains(&d) {
                    // Blocked: wait for it, and take it over if it stays so.
                    if !self.is_committed(d) {
                        self.watch.entry(d).or_insert(None);
                    }
                    blocked.extend(visits.keys().filter(|v| !self.executed.contains(v)));
                    return;
                }
                match visits.get(&d) {
                    None => enter(d, self, &mut visits, &mut stack, &mut on_stack, &mut calls),
                    Some(v) if on_stack.contains(&d) => {
                        let dl = v.index;
                        let nv = visits.get_mut(&node).expect("visited");
                        nv.low = nv.low.min(dl);
                    }
                    Some(_) => {}
                }
                continue;
            }
            calls.pop();
            let (index, low) = {
                let v = &visits[&node];
                (v.index, v.low)
            };
            if let Some((parent, _)) = calls.last() {
                let pv = visits.get_mut(parent).expect("visited");
                pv.low = pv.low.min(low);
            }
            if index == low {
                let mut component = Vec::new();
                while let Some(top) = stack.pop() {
                    on_stack.remove(&top);
                    component.push(top);
                    if top == node {
                        break;
                    }
                }
                self.execute_component(component);
            }
        }
    }

    /// Runs one strongly connected component, in sequence-number order.
    fn execute_component(&mut self, mut component: Vec<InstanceId>) {
        if self.bugs.has(Bug::ExecuteIgnoringSeq) {
            // Planted: the order this replica learned the commits in, which differs between
            // replicas.
            component.sort_by_key(|i| (self.commit_arrival.get(i).copied(), *i));
        } else {
            component.sort_by_key(|i| (self.instances[i].attrs.seq, *i));
        }
        if component.len() > 1 {
            self.counters.cycles_executed += 1;
        }
        for i in component {
            assert!(self.is_committed(i), "executing {i}, not committed");
            let inserted = self.executed.insert(i);
            assert!(inserted, "{i} executed twice");
            self.committed_unexecuted.remove(&i);
            let command: Command = self.instances[&i].command.clone();
            self.executed_out.push((i, command));
        }
    }
}
