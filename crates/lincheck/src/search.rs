//! Depth-first linearization search for one partition.
//!
//! The history is laid out as a doubly linked list of call and return
//! events in time order. An operation may be linearized next exactly when
//! its call precedes the first remaining return event; linearizing it
//! unlinks ("lifts") its events, backtracking relinks them in LIFO order.
//! Every `(linearized set, state)` configuration found to be a dead end is
//! memoized, so it is never explored twice. The DFS stack is an explicit
//! `Vec`, so partition size is limited by memory, not by the thread stack.
//!
//! Prunings beyond plain memoization keep histories with concurrency and
//! timeouts tractable; each skips a configuration only in favour of one
//! that can do everything it can:
//!
//! * A read-only operation that applies in the current state is placed
//!   without trying alternatives (see [`Phase::Reads`]).
//! * Unknown-outcome operations are optional, so a configuration is a dead
//!   end if one with the same placed known-outcome operations and the same
//!   state, but a subset of the placed unknown-outcome ones, already failed:
//!   any completion of the former is also a completion of the latter.
//! * For the same reason, an unknown-outcome operation is not placed where
//!   it changes nothing, nor directly before an operation that would reach
//!   the same state without it (see [`overshadowed`]).
//!
//! Why the last two stay sound together, although a failure may be recorded
//! while a configuration it skipped is still to be explored: by induction on
//! the length of a completion, no configuration the search considers (as a
//! candidate, pruned or not) that has a completion of length n is recorded
//! as failed once the search has run to the end. Each skip or prune trades
//! a configuration with a completion of length n − 1 for one that has a
//! completion of the same length and is considered too: the dominating
//! sibling, or the recorded failure, which by induction then cannot be
//! one. So a finished search that fails is a proof; an unfinished one
//! proves nothing, and its memo is never shared.
//!
//! The order in which candidates are tried decides how fast, never what;
//! two orders suit different histories, so a partition runs one search of
//! each, interleaved (see [`Strategy`]).

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::bitset::{Bitset, SetKey};
use crate::{Model, Operation, SearchOrder};

/// An operation of the partition, with its position in the full history.
pub(crate) type IndexedOp<'a, I, O> = (usize, &'a Operation<I, O>);

const NIL: usize = usize::MAX;
const HEAD: usize = 0;

/// How a partition's search ended.
pub(crate) enum Outcome<S> {
    Linearizable,
    NotLinearizable(Stuck<S>),
    BudgetExhausted,
}

pub(crate) struct SearchReport<S> {
    pub(crate) outcome: Outcome<S>,
    pub(crate) states_explored: u64,
}

/// The deepest dead end found; the explanation of an `Illegal` verdict.
/// Operation references are positions in the partition's op slice.
pub(crate) struct Stuck<S> {
    /// Linearization order of the longest prefix placed.
    prefix: Vec<usize>,
    /// Model state after `prefix`.
    state: S,
    /// The operation whose return was reached while unlinearized, i.e. the
    /// one that had to be placed next-or-earlier; `None` is unreachable in a
    /// consistent search but tolerated rather than asserted.
    blocking: Option<usize>,
    /// Operations that were eligible to go next, none of which led anywhere.
    candidates: Vec<usize>,
}

#[derive(Clone, Copy)]
struct Node {
    /// Position in the partition's op slice.
    op: usize,
    /// For a call: its return node, or `NIL` for unknown outcomes, which
    /// have no return and so never force a placement. Unused for returns.
    ret: usize,
    is_call: bool,
    prev: usize,
    next: usize,
}

struct EventList {
    nodes: Vec<Node>,
}

impl EventList {
    /// Builds the time-ordered list. At equal timestamps calls come first,
    /// making operations that touch at one instant concurrent: the
    /// permissive reading, so clock granularity cannot fabricate a
    /// violation. Remaining ties are broken by invocation order to keep the
    /// search deterministic.
    fn new<I, O>(ops: &[IndexedOp<'_, I, O>], order: &[usize]) -> Self {
        // (time, is_return, rank in invocation order, op)
        let mut events: Vec<(u64, bool, usize, usize)> = Vec::with_capacity(ops.len() * 2);
        for (rank, &op) in order.iter().enumerate() {
            let record = ops[op].1;
            events.push((record.invoke, false, rank, op));
            if let Some(complete) = record.complete {
                events.push((complete, true, rank, op));
            }
        }
        events.sort_unstable();

        let mut nodes = Vec::with_capacity(events.len() + 1);
        nodes.push(Node {
            op: NIL,
            ret: NIL,
            is_call: false,
            prev: NIL,
            next: NIL,
        });
        let mut call_node = vec![NIL; ops.len()];
        for &(_, is_return, _, op) in &events {
            let id = nodes.len();
            if let Some(last) = nodes.last_mut() {
                last.next = id;
            }
            nodes.push(Node {
                op,
                ret: NIL,
                is_call: !is_return,
                prev: id - 1,
                next: NIL,
            });
            if is_return {
                // Returns sort after their own call, so the call exists.
                if let Some(call) = nodes.get_mut(call_node[op]) {
                    call.ret = id;
                }
            } else {
                call_node[op] = id;
            }
        }
        Self { nodes }
    }

    fn unlink(&mut self, id: usize) {
        let Node { prev, next, .. } = self.nodes[id];
        self.nodes[prev].next = next;
        if next != NIL {
            self.nodes[next].prev = prev;
        }
    }

    /// Undoes `unlink(id)`; valid only in reverse order of unlinking, which
    /// the DFS stack guarantees.
    fn relink(&mut self, id: usize) {
        let Node { prev, next, .. } = self.nodes[id];
        self.nodes[prev].next = id;
        if next != NIL {
            self.nodes[next].prev = id;
        }
    }

    fn lift(&mut self, call: usize) {
        self.unlink(call);
        let ret = self.nodes[call].ret;
        if ret != NIL {
            self.unlink(ret);
        }
    }

    fn unlift(&mut self, call: usize) {
        let ret = self.nodes[call].ret;
        if ret != NIL {
            self.relink(ret);
        }
        self.relink(call);
    }

    fn first(&self) -> usize {
        self.nodes[HEAD].next
    }

    fn is_call(&self, id: usize) -> bool {
        id != NIL && self.nodes[id].is_call
    }

    /// The first return node at or after `from`, or `NIL`.
    fn first_return(&self, mut from: usize) -> usize {
        while self.is_call(from) {
            from = self.nodes[from].next;
        }
        from
    }

    /// Calls before `until`: the operations eligible to be linearized next.
    fn calls_before(&self, until: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut id = self.first();
        while id != until && self.is_call(id) {
            out.push(self.nodes[id].op);
            id = self.nodes[id].next;
        }
        out
    }
}

/// Tracks the longest prefix the search managed to linearize.
///
/// Copying the DFS stack at every new record would be quadratic on long
/// partitions that backtrack often; instead `agree` remembers how much of
/// `prefix` still matches the live stack, and only the part pushed since
/// then is copied.
struct Deepest<S> {
    prefix: Vec<usize>,
    agree: usize,
    found: Option<(S, Option<usize>, Vec<usize>)>,
}

impl<S: Clone> Deepest<S> {
    fn new() -> Self {
        Self {
            prefix: Vec::new(),
            agree: 0,
            found: None,
        }
    }

    fn observe(&mut self, stack: &[Frame<S>], list: &EventList, state: &S, blocking_node: usize) {
        if self.found.is_some() && stack.len() <= self.prefix.len() {
            return;
        }
        self.prefix.truncate(self.agree);
        self.prefix.extend(
            stack[self.agree..]
                .iter()
                .map(|frame| list.nodes[frame.call].op),
        );
        self.agree = stack.len();
        let blocking = (blocking_node != NIL).then(|| list.nodes[blocking_node].op);
        self.found = Some((state.clone(), blocking, list.calls_before(blocking_node)));
    }

    fn popped(&mut self, depth: usize) {
        self.agree = self.agree.min(depth);
    }

    fn finish(self, init: S) -> Stuck<S> {
        let (state, blocking, candidates) = self.found.unwrap_or((init, None, Vec::new()));
        Stuck {
            prefix: self.prefix,
            state,
            blocking,
            candidates,
        }
    }
}

/// Which candidates a scan of the eligible operations considers. Each
/// configuration is scanned phase by phase, reads first, in the order its
/// [`Strategy`] gives; the order only affects speed, never the verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Read-only operations with known outcome. One that applies can be
    /// placed without branching: a read that leaves the state unchanged
    /// can always be moved to the front of any valid continuation.
    Reads,
    /// Operations with unknown outcome.
    Unknown,
    /// Other operations with known outcome.
    Writes,
}

/// Per-operation facts the search consults on every scan.
#[derive(Clone, Copy)]
struct OpInfo {
    phase: Phase,
    /// Position within its own linearized-set bitset (see `Linearized`).
    rank: usize,
}

/// The set of placed operations, split by outcome.
///
/// Unknown-outcome operations that never landed stay unplaced forever; in a
/// single bitset they would pin the ragged window of `Bitset::key` open from
/// their invocation onwards. Known-outcome operations can only be left
/// behind while still in flight, so their window stays as wide as the
/// concurrency, and the unknown ones get a small bitset of their own.
struct Linearized {
    known: Bitset,
    unknown: Bitset,
}

impl Linearized {
    fn select(&mut self, info: OpInfo) -> &mut Bitset {
        if info.phase == Phase::Unknown {
            &mut self.unknown
        } else {
            &mut self.known
        }
    }

    fn insert(&mut self, info: OpInfo) {
        self.select(info).insert(info.rank);
    }

    fn remove(&mut self, info: OpInfo) {
        self.select(info).remove(info.rank);
    }
}

/// Configurations known to fail, as an antichain of placed unknown-outcome
/// sets per (placed known-outcome set, state).
///
/// Only finished configurations are recorded, never ones still on the DFS
/// path, so every entry is a proven failure and pruning by it is sound.
struct Failures<S> {
    by_known: HashMap<(SetKey, S), Vec<SetKey>>,
}

impl<S: Eq + std::hash::Hash> Failures<S> {
    fn new() -> Self {
        Self {
            by_known: HashMap::new(),
        }
    }

    fn dominated(&self, known_and_state: &(SetKey, S), unknown: &SetKey) -> bool {
        self.by_known
            .get(known_and_state)
            .is_some_and(|failed| failed.iter().any(|f| f.is_subset(unknown)))
    }

    fn record(&mut self, known_and_state: (SetKey, S), unknown: SetKey) {
        let failed = self.by_known.entry(known_and_state).or_default();
        // Supersets of the new entry are implied by it.
        failed.retain(|f| !unknown.is_subset(f));
        failed.push(unknown);
    }
}

/// One placement on the DFS path.
struct Frame<S> {
    /// Call node of the placed operation.
    call: usize,
    /// Scan phase it was found in, to resume from there on backtrack.
    phase: Phase,
    /// A read placed without branching; backtracking over it means the
    /// configuration below it has failed too.
    forced: bool,
    /// State before the placement.
    before: S,
}

/// The order in which a configuration's candidates are scanned. Both are
/// complete and sound; they differ only in which histories they decide
/// quickly, so [`search`] runs one of each side by side by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Strategy {
    /// Reads, then unknown-outcome operations, then known writes. Placing a
    /// timed-out write early usually lets the next write overwrite it
    /// harmlessly; left pending, it would be retried at every later dead
    /// end. Finds linearizations of correct timeout-heavy histories several
    /// times faster than [`Strategy::UnknownLate`], which on some of them
    /// does not finish at all.
    UnknownEarly,
    /// Reads, then known writes, then unknown-outcome operations. Dead ends
    /// are first reached with few unknown-outcome operations placed, so the
    /// failures recorded there prune every configuration that placed more
    /// (see [`Failures`]). Refuted a read of a value nobody wrote, behind 24
    /// timed-out operations, in 1,252 states where the early strategy
    /// needed 140,000 (and over 5 million before [`overshadowed`]).
    UnknownLate,
}

impl Strategy {
    /// The phase scanned after `phase`, or `None` when the configuration has
    /// no candidates left.
    fn following(self, phase: Phase) -> Option<Phase> {
        match (self, phase) {
            (Strategy::UnknownEarly, Phase::Reads) => Some(Phase::Unknown),
            (Strategy::UnknownEarly, Phase::Unknown) => Some(Phase::Writes),
            (Strategy::UnknownLate, Phase::Reads) => Some(Phase::Writes),
            (Strategy::UnknownLate, Phase::Writes) => Some(Phase::Unknown),
            (Strategy::UnknownEarly, Phase::Writes) | (Strategy::UnknownLate, Phase::Unknown) => {
                None
            }
        }
    }
}

/// States one strategy explores before [`search`] lets the other run; the
/// early strategy gets `EARLY_SHARE` slices for each of the late one's.
const SLICE_STATES: u64 = 1024;
const EARLY_SHARE: u64 = 3;

/// Searches for a linearization of `ops`, visiting at most `budget` distinct
/// configurations in all.
///
/// Interleaved, one search per [`Strategy`] runs in turn, each with its own
/// memo (a failure recorded by an unfinished search is only provisional:
/// see the module's soundness argument), and the first to finish decides.
/// Correct histories then cost at most 4/3 of the early strategy alone,
/// refutations at most 4 times the late one alone.
pub(crate) fn search<M: Model>(
    model: &M,
    ops: &[IndexedOp<'_, M::Input, M::Output>],
    budget: u64,
    order: SearchOrder,
) -> SearchReport<M::State> {
    let layout = Layout::new(model, ops);
    let strategies: &[(Strategy, u64)] = match order {
        SearchOrder::Interleaved => &[
            (Strategy::UnknownEarly, EARLY_SHARE),
            (Strategy::UnknownLate, 1),
        ],
        SearchOrder::UnknownEarly => &[(Strategy::UnknownEarly, 1)],
        SearchOrder::UnknownLate => &[(Strategy::UnknownLate, 1)],
    };
    let mut searches: Vec<(Search<'_, '_, M>, u64)> = strategies
        .iter()
        .map(|&(strategy, share)| (Search::new(model, ops, &layout, strategy), share))
        .collect();
    let mut explored = 0u64;
    loop {
        for (search, share) in &mut searches {
            let remaining = budget - explored;
            if remaining == 0 {
                return SearchReport {
                    outcome: Outcome::BudgetExhausted,
                    states_explored: explored,
                };
            }
            let before = search.explored;
            let outcome = search.run(before + remaining.min(SLICE_STATES * *share));
            explored += search.explored - before;
            if let Some(outcome) = outcome {
                return SearchReport {
                    outcome,
                    states_explored: explored,
                };
            }
        }
    }
}

/// Per-operation facts shared by both searches of a partition.
struct Layout {
    /// Operations numbered by invocation time, which makes each linearized
    /// set a near-prefix and keeps memo keys short (see `Bitset::key`).
    order: Vec<usize>,
    info: Vec<OpInfo>,
    known_count: usize,
    unknown_count: usize,
}

impl Layout {
    fn new<M: Model>(model: &M, ops: &[IndexedOp<'_, M::Input, M::Output>]) -> Self {
        let mut order: Vec<usize> = (0..ops.len()).collect();
        order.sort_by_key(|&op| (ops[op].1.invoke, ops[op].0));
        let mut info = vec![
            OpInfo {
                phase: Phase::Unknown,
                rank: 0,
            };
            ops.len()
        ];
        let (mut known_count, mut unknown_count) = (0, 0);
        for &op in &order {
            let (_, record) = ops[op];
            info[op] = if record.complete.is_none() {
                unknown_count += 1;
                OpInfo {
                    phase: Phase::Unknown,
                    rank: unknown_count - 1,
                }
            } else {
                known_count += 1;
                let phase = if model.is_read_only(&record.input) {
                    Phase::Reads
                } else {
                    Phase::Writes
                };
                OpInfo {
                    phase,
                    rank: known_count - 1,
                }
            };
        }
        Self {
            order,
            info,
            known_count,
            unknown_count,
        }
    }
}

/// One resumable depth-first search.
struct Search<'s, 'a, M: Model> {
    model: &'s M,
    ops: &'s [IndexedOp<'a, M::Input, M::Output>],
    info: &'s [OpInfo],
    strategy: Strategy,
    list: EventList,
    /// Known-outcome operations not yet placed.
    pending_returns: usize,
    linearized: Linearized,
    failures: Failures<M::State>,
    stack: Vec<Frame<M::State>>,
    deepest: Deepest<M::State>,
    explored: u64,
    state: M::State,
    phase: Phase,
    cursor: usize,
    /// Set when the current configuration is known to be a dead end.
    exhausted: bool,
}

impl<'s, 'a, M: Model> Search<'s, 'a, M> {
    fn new(
        model: &'s M,
        ops: &'s [IndexedOp<'a, M::Input, M::Output>],
        layout: &'s Layout,
        strategy: Strategy,
    ) -> Self {
        let list = EventList::new(ops, &layout.order);
        let cursor = list.first();
        Self {
            model,
            ops,
            info: &layout.info,
            strategy,
            list,
            pending_returns: layout.known_count,
            linearized: Linearized {
                known: Bitset::new(layout.known_count),
                unknown: Bitset::new(layout.unknown_count),
            },
            failures: Failures::new(),
            stack: Vec::new(),
            deepest: Deepest::new(),
            explored: 0,
            state: model.init(),
            phase: Phase::Reads,
            cursor,
            exhausted: false,
        }
    }

    /// Searches on until it decides, or returns `None` as it is about to
    /// explore a configuration beyond the `limit`-th; calling again resumes
    /// exactly there.
    fn run(&mut self, limit: u64) -> Option<Outcome<M::State>> {
        let (model, ops, info, list) = (self.model, self.ops, self.info, &mut self.list);
        loop {
            // Unknown-outcome operations still unplaced at this point are
            // the ones that never took effect.
            if self.pending_returns == 0 {
                return Some(Outcome::Linearizable);
            }

            if !self.exhausted && !list.is_call(self.cursor) {
                // The scan reached the first unplaced return: the eligible
                // operations are exactly those scanned, so move to the next
                // kind of candidate, or give up on this configuration.
                match self.strategy.following(self.phase) {
                    Some(following) => self.phase = following,
                    None => {
                        self.deepest
                            .observe(&self.stack, list, &self.state, self.cursor);
                        self.exhausted = true;
                    }
                }
                self.cursor = list.first();
                continue;
            }

            if self.exhausted {
                // Every order tried from this configuration failed: undo the
                // last placement and resume its scan after it.
                let Some(frame) = self.stack.pop() else {
                    let deepest = std::mem::replace(&mut self.deepest, Deepest::new());
                    return Some(Outcome::NotLinearizable(deepest.finish(model.init())));
                };
                let failed = std::mem::replace(&mut self.state, frame.before);
                self.failures.record(
                    (self.linearized.known.key(), failed),
                    self.linearized.unknown.key(),
                );
                self.deepest.popped(self.stack.len());
                let op = list.nodes[frame.call].op;
                self.linearized.remove(info[op]);
                if list.nodes[frame.call].ret != NIL {
                    self.pending_returns += 1;
                }
                list.unlift(frame.call);
                self.exhausted = frame.forced;
                self.phase = frame.phase;
                self.cursor = list.nodes[frame.call].next;
                continue;
            }

            let cursor = self.cursor;
            let op = list.nodes[cursor].op;
            if info[op].phase != self.phase {
                self.cursor = list.nodes[cursor].next;
                continue;
            }
            let record = ops[op].1;
            let Some(next) = model.step(&self.state, &record.input, record.output.as_ref()) else {
                self.cursor = list.nodes[cursor].next;
                continue;
            };
            if overshadowed(model, &self.stack, &self.state, &next, self.phase, record) {
                self.cursor = list.nodes[cursor].next;
                continue;
            }
            // Checked rather than trusted: a model whose "read-only"
            // operation changes the state would make skipping the
            // alternatives unsound.
            let forced = self.phase == Phase::Reads && next == self.state;
            self.linearized.insert(info[op]);
            let candidate = (self.linearized.known.key(), next);
            let dead = self
                .failures
                .dominated(&candidate, &self.linearized.unknown.key());
            let (_, next) = candidate;
            if dead {
                self.linearized.remove(info[op]);
                if forced {
                    let blocking = list.first_return(cursor);
                    self.deepest
                        .observe(&self.stack, list, &self.state, blocking);
                    self.exhausted = true;
                } else {
                    self.cursor = list.nodes[cursor].next;
                }
                continue;
            }
            if self.explored >= limit {
                // Resuming rescans this candidate from the same configuration.
                self.linearized.remove(info[op]);
                return None;
            }
            self.explored += 1;
            self.stack.push(Frame {
                call: cursor,
                phase: self.phase,
                forced,
                before: std::mem::replace(&mut self.state, next),
            });
            if list.nodes[cursor].ret != NIL {
                self.pending_returns -= 1;
            }
            list.lift(cursor);
            self.phase = Phase::Reads;
            self.cursor = list.first();
        }
    }
}

/// Whether placing the unknown-outcome operation `record` here, taking
/// `state` to `next`, is dominated by a configuration the search covers
/// anyway, so it need not be tried.
///
/// Unknown-outcome operations are optional, so a configuration that places
/// fewer of them in the same state, with the same known-outcome ones, can
/// do everything this one can. Two such cases are cheap to see:
///
/// * The operation leaves the state as it is: the current configuration,
///   which is being explored, dominates.
/// * It directly follows another unknown-outcome operation and, placed
///   instead of that one, would reach the same state (an overwrite): the
///   sibling that places it in the other one's stead dominates. That sibling
///   is a child of the same parent with the same eligible operations
///   (unknown-outcome operations have no return, so placing one does not
///   change what is eligible), and each step of this argument shortens the
///   run of consecutive unknown-outcome placements, so it ends at a
///   configuration the search does explore.
fn overshadowed<M: Model>(
    model: &M,
    stack: &[Frame<M::State>],
    state: &M::State,
    next: &M::State,
    phase: Phase,
    record: &Operation<M::Input, M::Output>,
) -> bool {
    if phase == Phase::Unknown && next == state {
        return true;
    }
    match stack.last() {
        Some(top) if top.phase == Phase::Unknown => {
            model
                .step(&top.before, &record.input, record.output.as_ref())
                .as_ref()
                == Some(next)
        }
        _ => false,
    }
}

/// How many prefix operations an explanation lists before eliding.
const PREFIX_SHOWN: usize = 12;

/// Renders a human-readable account of why `ops` has no linearization.
pub(crate) fn explain<M: Model>(
    model: &M,
    key: &str,
    ops: &[IndexedOp<'_, M::Input, M::Output>],
    stuck: &Stuck<M::State>,
) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored for brevity.
    let _ = writeln!(
        out,
        "partition {key:?}: no linearization of its {} operations exists.",
        ops.len()
    );
    let _ = writeln!(
        out,
        "Longest linearizable prefix: {} operations, leaving state {:?}:",
        stuck.prefix.len(),
        stuck.state
    );
    let skipped = stuck.prefix.len().saturating_sub(PREFIX_SHOWN);
    if skipped > 0 {
        let _ = writeln!(out, "  ... {skipped} earlier operations");
    }
    for &op in &stuck.prefix[skipped..] {
        let _ = writeln!(out, "  {}", describe(&ops[op]));
    }
    match stuck.blocking {
        Some(op) => {
            let _ = writeln!(
                out,
                "Then {} returned, so it (or another pending operation) had to take effect next, but:",
                describe(&ops[op])
            );
        }
        None => {
            let _ = writeln!(out, "Then no pending operation could take effect:");
        }
    }
    for &op in &stuck.candidates {
        let record = ops[op].1;
        let why = match model.step(&stuck.state, &record.input, record.output.as_ref()) {
            None => "the model cannot produce this output in that state",
            Some(_) => "applicable, but every continuation after it was explored and failed",
        };
        let _ = writeln!(out, "  {}: {why}", describe(&ops[op]));
    }
    out
}

fn describe<I: std::fmt::Debug, O: std::fmt::Debug>((index, op): &IndexedOp<'_, I, O>) -> String {
    match (&op.complete, &op.output) {
        (Some(complete), Some(output)) => format!(
            "#{index} client {} [{}, {complete}] {:?} -> {output:?}",
            op.client, op.invoke, op.input
        ),
        _ => format!(
            "#{index} client {} [{}, ?] {:?} -> outcome unknown",
            op.client, op.invoke, op.input
        ),
    }
}
