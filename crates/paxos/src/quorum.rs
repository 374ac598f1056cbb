//! Quorums as a type: which sets of members may decide phase 1 and phase 2.
//!
//! Majority quorums are one configuration of many. Flexible Paxos (Howard, Malkhi, Spiegelman,
//! "Flexible Paxos: Quorum intersection revisited", 2016) only needs every phase-1 quorum to
//! intersect every phase-2 quorum, so each rule is a value of [`QuorumSpec`], not a fork of the
//! protocol: majorities, sizes with `|Q1| + |Q2| > n`, a grid (a full column against a full
//! row) and weighted voting (thresholds whose sum exceeds the total weight).
//!
//! The core asks only two questions, [`Configuration::is_phase1_quorum`] and
//! [`Configuration::is_phase2_quorum`], of a set of voters; it never compares a count with a
//! size, since under a grid or weights a count says nothing (ARCHITECTURE.md, "Flexible
//! quorums", says which phase each of the core's counts uses and why).

use crate::bugs::{Bug, PlantedBugs};
use crate::ids::NodeId;
use serde::{Deserialize, Serialize};

/// Largest cluster a [`NodeSet`] can describe. A bound, not a wish: Paxos clusters are small.
pub const MEMBERS_MAX: usize = 64;

/// A set of members by their index in a [`Configuration`], as a bitset (no allocation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeSet(u64);

impl NodeSet {
    /// The empty set.
    pub const EMPTY: NodeSet = NodeSet(0);

    /// Adds the member at `index`; returns whether it was new.
    pub fn insert(&mut self, index: usize) -> bool {
        debug_assert!(index < MEMBERS_MAX);
        let bit = 1u64 << index;
        let new = self.0 & bit == 0;
        self.0 |= bit;
        new
    }

    /// Whether the member at `index` is in the set.
    pub fn contains(self, index: usize) -> bool {
        index < MEMBERS_MAX && self.0 & (1u64 << index) != 0
    }

    /// Number of members in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Every index below `n`.
    pub fn below(n: usize) -> NodeSet {
        if n >= MEMBERS_MAX {
            NodeSet(u64::MAX)
        } else {
            NodeSet((1u64 << n) - 1)
        }
    }

    /// The members of `self` that are not in `other`.
    pub fn minus(self, other: NodeSet) -> NodeSet {
        NodeSet(self.0 & !other.0)
    }

    /// The indices in the set, lowest first.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..MEMBERS_MAX).filter(move |i| self.contains(*i))
    }

    /// Number of members of the set among the indices below `n`.
    pub fn len_below(self, n: usize) -> usize {
        let mask = if n >= MEMBERS_MAX {
            u64::MAX
        } else {
            (1u64 << n) - 1
        };
        (self.0 & mask).count_ones() as usize
    }
}

/// Which sets of voters make phase-1 and phase-2 quorums.
///
/// Safety needs one thing only: every phase-1 quorum intersects every phase-2 quorum
/// (Flexible Paxos, section 3); [`Configuration::new`] refuses a rule that does not promise it.
/// Two phase-1 quorums need not intersect, nor two phase-2 quorums.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum QuorumSpec {
    /// Any majority, for both phases.
    Majority,
    /// Flexible Paxos: `phase1 + phase2 > n`. A small phase-2 quorum makes the steady state
    /// cheaper at the price of a larger phase-1 quorum at leader changes.
    Flexible {
        /// Members needed to promise a ballot.
        phase1: usize,
        /// Members needed to accept a value.
        phase2: usize,
    },
    /// Grid quorums (the grid example of Flexible Paxos): the voters, in configuration order,
    /// fill `rows` rows of `columns` cells row by row (voter `k` in row `k / columns`, column
    /// `k % columns`). A phase-1 quorum is every voter of some column (`rows` voters); a
    /// phase-2 quorum is every voter of some row (`columns` voters). A row and a column always
    /// share their crossing cell, whatever the shape, so any `rows × columns = n` is safe;
    /// short rows make phase 2 cheap.
    Grid {
        /// Rows of the grid (the size of a phase-1 quorum).
        rows: usize,
        /// Columns of the grid (the size of a phase-2 quorum).
        columns: usize,
    },
    /// Weighted voting (Gifford, 1979, applied to each phase as Flexible Paxos allows): voter
    /// `k` carries `weights[k]` votes; a set is a phase-`i` quorum once its weight reaches
    /// `phase_i`. Two disjoint sets weigh at most the total together, so `phase1 + phase2 >
    /// total` makes every phase-1 quorum meet every phase-2 quorum.
    Weighted {
        /// One weight per voter, in configuration order.
        weights: Vec<u32>,
        /// Weight needed to promise a ballot.
        phase1: u64,
        /// Weight needed to accept a value.
        phase2: u64,
    },
    /// Cheap Paxos (Lamport and Massa, "Cheap Paxos", 2004, section 3): the first `main`
    /// voters, in configuration order, are main acceptors, the rest auxiliaries. A set is a
    /// quorum (for both phases) if it holds every main voter, or a majority of all voters.
    /// Two majorities meet; all mains and a majority meet because there are fewer auxiliaries
    /// than a majority ([`Configuration::new`] refuses more), so every majority holds a main.
    /// The leader asks only the mains while they all answer (`multi/cheap.rs`): auxiliaries
    /// are sent to only while a main is down, until a stop-sign drops that main.
    Cheap {
        /// How many voters, from the first, are main acceptors.
        main: usize,
    },
}

impl std::fmt::Display for QuorumSpec {
    /// The form [`QuorumSpec::from_str`](std::str::FromStr) reads: `majority`,
    /// `flexible:P1,P2`, `grid:RxC`, `weighted:W1,W2,...,Wn/P1,P2`, `cheap:MAIN`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuorumSpec::Majority => write!(f, "majority"),
            QuorumSpec::Flexible { phase1, phase2 } => write!(f, "flexible:{phase1},{phase2}"),
            QuorumSpec::Grid { rows, columns } => write!(f, "grid:{rows}x{columns}"),
            QuorumSpec::Weighted {
                weights,
                phase1,
                phase2,
            } => {
                let weights: Vec<String> = weights.iter().map(u32::to_string).collect();
                write!(f, "weighted:{}/{phase1},{phase2}", weights.join(","))
            }
            QuorumSpec::Cheap { main } => write!(f, "cheap:{main}"),
        }
    }
}

/// A quorum rule that does not parse; the text says what form was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quorum rule {text:?}: {why} (expected majority, flexible:P1,P2, grid:RxC, weighted:W1,...,Wn/P1,P2 or cheap:MAIN)")]
pub struct QuorumParseError {
    /// What was given.
    pub text: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl std::str::FromStr for QuorumSpec {
    type Err = QuorumParseError;

    /// Parses the form [`QuorumSpec`]'s `Display` writes. Only the form is checked here;
    /// whether the rule fits the voters (and intersects) is [`Configuration::new`]'s job.
    fn from_str(text: &str) -> Result<QuorumSpec, QuorumParseError> {
        let err = |why| QuorumParseError {
            text: text.to_string(),
            why,
        };
        let pair = |s: &str| -> Option<(u64, u64)> {
            let (a, b) = s.split_once(',')?;
            Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
        };
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        let (kind, rest) = text.split_once(':').unwrap_or((text, ""));
        match kind.trim() {
            "majority" if rest.is_empty() => Ok(QuorumSpec::Majority),
            "flexible" => {
                let (phase1, phase2) = pair(rest).ok_or_else(|| err("flexible takes two sizes"))?;
                Ok(QuorumSpec::Flexible {
                    phase1: size(phase1),
                    phase2: size(phase2),
                })
            }
            "grid" => {
                let (rows, columns) = rest
                    .split_once(['x', 'X'])
                    .and_then(|(r, c)| Some((r.trim().parse().ok()?, c.trim().parse().ok()?)))
                    .ok_or_else(|| err("grid takes ROWSxCOLUMNS"))?;
                Ok(QuorumSpec::Grid { rows, columns })
            }
            "weighted" => {
                let (weights, thresholds) = rest
                    .split_once('/')
                    .ok_or_else(|| err("weighted takes weights, '/', then two thresholds"))?;
                let weights: Vec<u32> = weights
                    .split(',')
                    .map(|w| w.trim().parse())
                    .collect::<Result<_, _>>()
                    .map_err(|_| err("a weight is not a number"))?;
                if weights.len() > MEMBERS_MAX {
                    return Err(err("more weights than members a configuration may hold"));
                }
                let (phase1, phase2) =
                    pair(thresholds).ok_or_else(|| err("weighted takes two thresholds"))?;
                Ok(QuorumSpec::Weighted {
                    weights,
                    phase1,
                    phase2,
                })
            }
            "cheap" => {
                let main = rest
                    .trim()
                    .parse()
                    .map_err(|_| err("cheap takes the number of main acceptors"))?;
                Ok(QuorumSpec::Cheap { main })
            }
            _ => Err(err("unknown kind")),
        }
    }
}

impl QuorumSpec {
    /// The largest weight one voter may carry: a bound, so that sums stay small and a rule
    /// stays readable.
    pub const WEIGHT_MAX: u32 = 1_000;
}

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No members at all.
    #[error("a configuration needs at least one member")]
    Empty,
    /// More members than a [`NodeSet`] can hold.
    #[error("a configuration holds at most {MEMBERS_MAX} members, got {0}")]
    TooManyMembers(usize),
    /// The same node listed twice.
    #[error("member {0} is listed twice")]
    DuplicateMember(NodeId),
    /// Node id 0 is reserved for [`crate::Ballot::ZERO`].
    #[error("node id 0 is reserved; number members from 1")]
    ReservedNodeId,
    /// Phase-1 and phase-2 quorums would not intersect, so two values could be chosen.
    #[error("flexible quorums must intersect: phase1 {phase1} + phase2 {phase2} must exceed {members} members")]
    QuorumsDoNotIntersect {
        /// Phase-1 quorum size.
        phase1: usize,
        /// Phase-2 quorum size.
        phase2: usize,
        /// Number of members.
        members: usize,
    },
    /// A quorum larger than the cluster can never be formed.
    #[error("a quorum of {size} cannot be formed from {members} members")]
    QuorumTooLarge {
        /// Quorum size.
        size: usize,
        /// Number of members.
        members: usize,
    },
    /// A grid whose cells are not exactly the voters.
    #[error("a grid of {rows} rows x {columns} columns holds {cells} members, but there are {members} voters")]
    GridShape {
        /// Rows asked for.
        rows: usize,
        /// Columns asked for.
        columns: usize,
        /// `rows * columns`.
        cells: usize,
        /// Number of voters.
        members: usize,
    },
    /// A weight list that does not give one weight per voter.
    #[error("weighted quorums need one weight per voter: {weights} weights for {members} voters")]
    WeightCount {
        /// Weights given.
        weights: usize,
        /// Number of voters.
        members: usize,
    },
    /// A weight above [`QuorumSpec::WEIGHT_MAX`].
    #[error("a voter's weight is at most {max}, got {weight}", max = QuorumSpec::WEIGHT_MAX)]
    WeightTooLarge {
        /// The weight given.
        weight: u32,
    },
    /// A weighted threshold of zero or above the total weight.
    #[error("a weighted quorum threshold must be between 1 and the total weight {total}, got {threshold}")]
    ThresholdOutOfRange {
        /// The threshold given.
        threshold: u64,
        /// Sum of the weights.
        total: u64,
    },
    /// Weighted thresholds that let a phase-1 and a phase-2 quorum be disjoint.
    #[error("weighted quorums must intersect: phase1 {phase1} + phase2 {phase2} must exceed the total weight {total}")]
    WeightedQuorumsDoNotIntersect {
        /// Phase-1 threshold.
        phase1: u64,
        /// Phase-2 threshold.
        phase2: u64,
        /// Sum of the weights.
        total: u64,
    },
    /// The local node is not a member of the configuration.
    #[error("node {0} is not a member of the configuration")]
    NotAMember(NodeId),
    /// Cheap Paxos with no main acceptor, or with so many auxiliaries that a majority could
    /// hold none of the mains (then it would not meet the set of all mains).
    #[error("cheap quorums need 1 to {members} main acceptors and fewer auxiliaries than a majority: {main} main of {members} voters")]
    CheapShape {
        /// Main acceptors asked for.
        main: usize,
        /// Number of voters.
        members: usize,
    },
    /// A node listed both as a voter and as a learner.
    #[error("node {0} is listed both as a voting member and as a learner")]
    VoterAndLearner(NodeId),
}

/// The members of the cluster and the rule for their quorums.
///
/// `members` vote: their promises and accepts make quorums. `learners` receive the chosen log
/// (accepts, heartbeats, catch-up) but never count in a quorum and never promise; a learner
/// becomes a voter only through a reconfiguration (see `multi/reconfig.rs`). Indices (for
/// [`NodeSet`]) run over the voters first, then the learners.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Configuration {
    members: Vec<NodeId>,
    learners: Vec<NodeId>,
    quorum: QuorumSpec,
}

impl Configuration {
    /// A checked configuration: members unique, non-zero, at most [`MEMBERS_MAX`], quorums intersecting.
    pub fn new(members: Vec<NodeId>, quorum: QuorumSpec) -> Result<Configuration, ConfigError> {
        Configuration::with_learners(members, Vec::new(), quorum)
    }

    /// A checked configuration with non-voting learners beside its voting members.
    pub fn with_learners(
        members: Vec<NodeId>,
        learners: Vec<NodeId>,
        quorum: QuorumSpec,
    ) -> Result<Configuration, ConfigError> {
        let n = members.len();
        if n == 0 {
            return Err(ConfigError::Empty);
        }
        if n + learners.len() > MEMBERS_MAX {
            return Err(ConfigError::TooManyMembers(n + learners.len()));
        }
        for (i, m) in members.iter().chain(learners.iter()).enumerate() {
            if m.0 == 0 {
                return Err(ConfigError::ReservedNodeId);
            }
            if i >= n && members.contains(m) {
                return Err(ConfigError::VoterAndLearner(*m));
            }
            let before = if i < n {
                &members[..i]
            } else {
                &learners[..i - n]
            };
            if before.contains(m) {
                return Err(ConfigError::DuplicateMember(*m));
            }
        }
        check_quorum_rule(&quorum, n, PlantedBugs::none())?;
        Ok(Configuration {
            members,
            learners,
            quorum,
        })
    }

    /// As [`Configuration::with_learners`], but with `bugs`: the planted
    /// [`Bug::QuorumsDoNotIntersect`] skips the intersection check, so that tests can show
    /// the checkers catch a rule under which two values may be chosen. Without that bug (or
    /// without the `planted-bugs` feature) it is `with_learners`.
    pub fn with_planted_bugs(
        members: Vec<NodeId>,
        learners: Vec<NodeId>,
        quorum: QuorumSpec,
        bugs: PlantedBugs,
    ) -> Result<Configuration, ConfigError> {
        if !bugs.has(Bug::QuorumsDoNotIntersect) {
            return Configuration::with_learners(members, learners, quorum);
        }
        let members_count = members.len();
        let checked = Configuration::with_learners(members, learners, QuorumSpec::Majority)?;
        check_quorum_rule(&quorum, members_count, bugs)?;
        Ok(Configuration { quorum, ..checked })
    }

    /// A majority-quorum configuration of nodes `1..=n`.
    pub fn majority_of(n: u64) -> Result<Configuration, ConfigError> {
        Configuration::new((1..=n).map(NodeId).collect(), QuorumSpec::Majority)
    }

    /// The voting members, in configuration order.
    pub fn members(&self) -> &[NodeId] {
        &self.members
    }

    /// The non-voting learners, in configuration order.
    pub fn learners(&self) -> &[NodeId] {
        &self.learners
    }

    /// Voters, then learners: everyone who receives the log. Position = index.
    pub fn everyone(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.iter().chain(self.learners.iter()).copied()
    }

    /// Voters plus learners.
    pub fn len_everyone(&self) -> usize {
        self.members.len() + self.learners.len()
    }

    /// Whether `node` votes in this configuration.
    pub fn is_voter(&self, node: NodeId) -> bool {
        self.members.contains(&node)
    }

    /// Whether `node` is a learner in this configuration.
    pub fn is_learner(&self, node: NodeId) -> bool {
        self.learners.contains(&node)
    }

    /// The quorum rule.
    pub fn quorum(&self) -> QuorumSpec {
        self.quorum.clone()
    }

    /// The index of `node` in this configuration (voters first, then learners), if it is a
    /// voter or a learner.
    pub fn index_of(&self, node: NodeId) -> Option<usize> {
        self.everyone().position(|m| m == node)
    }

    /// Whether `node` is a voter or a learner.
    pub fn contains(&self, node: NodeId) -> bool {
        self.index_of(node).is_some()
    }

    /// The fewest voters that can make a phase-1 (promise) quorum. For display and for
    /// counting-only tools; the core decides with [`Configuration::is_phase1_quorum`].
    pub fn phase1_size(&self) -> usize {
        match &self.quorum {
            QuorumSpec::Majority => self.members.len() / 2 + 1,
            QuorumSpec::Flexible { phase1, .. } => *phase1,
            QuorumSpec::Grid { rows, .. } => *rows,
            QuorumSpec::Weighted {
                weights, phase1, ..
            } => fewest_reaching(weights, *phase1),
            QuorumSpec::Cheap { main } => (*main).min(self.members.len() / 2 + 1),
        }
    }

    /// The fewest voters that can make a phase-2 (accept) quorum. For display and for
    /// counting-only tools; the core decides with [`Configuration::is_phase2_quorum`].
    pub fn phase2_size(&self) -> usize {
        match &self.quorum {
            QuorumSpec::Majority => self.members.len() / 2 + 1,
            QuorumSpec::Flexible { phase2, .. } => *phase2,
            QuorumSpec::Grid { columns, .. } => *columns,
            QuorumSpec::Weighted {
                weights, phase2, ..
            } => fewest_reaching(weights, *phase2),
            QuorumSpec::Cheap { main } => (*main).min(self.members.len() / 2 + 1),
        }
    }

    /// Whether `set` holds a phase-1 quorum (only voters count).
    pub fn is_phase1_quorum(&self, set: NodeSet) -> bool {
        let voters = NodeSet::below(self.members.len());
        let set = NodeSet(set.0 & voters.0);
        match &self.quorum {
            QuorumSpec::Majority | QuorumSpec::Flexible { .. } => set.len() >= self.phase1_size(),
            QuorumSpec::Grid { rows, columns } => {
                (0..*columns).any(|c| (0..*rows).all(|r| set.contains(r * columns + c)))
            }
            QuorumSpec::Weighted {
                weights, phase1, ..
            } => weight_of(weights, set) >= *phase1,
            QuorumSpec::Cheap { main } => cheap_quorum(set, *main, self.members.len()),
        }
    }

    /// Whether `set` holds a phase-2 quorum (only voters count).
    pub fn is_phase2_quorum(&self, set: NodeSet) -> bool {
        let voters = NodeSet::below(self.members.len());
        let set = NodeSet(set.0 & voters.0);
        match &self.quorum {
            QuorumSpec::Majority | QuorumSpec::Flexible { .. } => set.len() >= self.phase2_size(),
            QuorumSpec::Grid { rows, columns } => {
                (0..*rows).any(|r| (0..*columns).all(|c| set.contains(r * columns + c)))
            }
            QuorumSpec::Weighted {
                weights, phase2, ..
            } => weight_of(weights, set) >= *phase2,
            QuorumSpec::Cheap { main } => cheap_quorum(set, *main, self.members.len()),
        }
    }

    /// The main acceptors under a [`QuorumSpec::Cheap`] rule (every voter under any other
    /// rule: there, nobody is auxiliary).
    pub fn mains(&self) -> &[NodeId] {
        match self.quorum {
            QuorumSpec::Cheap { main } => &self.members[..main.min(self.members.len())],
            _ => &self.members,
        }
    }

    /// The auxiliary acceptors under a [`QuorumSpec::Cheap`] rule (none under any other).
    pub fn auxiliaries(&self) -> &[NodeId] {
        &self.members[self.mains().len()..]
    }

    /// Whether `node` is an auxiliary acceptor (Cheap Paxos).
    pub fn is_auxiliary(&self, node: NodeId) -> bool {
        self.auxiliaries().contains(&node)
    }

    /// Whether every phase-1 quorum meets `set`: no phase-1 quorum lies among the voters
    /// outside it (quorums are closed upwards, so the complement is the largest candidate).
    pub fn every_phase1_quorum_meets(&self, set: NodeSet) -> bool {
        let outside = NodeSet::below(self.members.len()).minus(set);
        !self.is_phase1_quorum(outside)
    }
}

/// Checks a rule against `n` voters: shapes, bounds, and that every phase-1 quorum meets every
/// phase-2 quorum (skipped only with the planted [`Bug::QuorumsDoNotIntersect`]).
fn check_quorum_rule(quorum: &QuorumSpec, n: usize, bugs: PlantedBugs) -> Result<(), ConfigError> {
    let skip_intersection = bugs.has(Bug::QuorumsDoNotIntersect);
    match quorum {
        QuorumSpec::Majority => {}
        QuorumSpec::Flexible { phase1, phase2 } => {
            for size in [*phase1, *phase2] {
                if size == 0 || size > n {
                    return Err(ConfigError::QuorumTooLarge { size, members: n });
                }
            }
            if phase1 + phase2 <= n && !skip_intersection {
                return Err(ConfigError::QuorumsDoNotIntersect {
                    phase1: *phase1,
                    phase2: *phase2,
                    members: n,
                });
            }
        }
        QuorumSpec::Grid { rows, columns } => {
            // A row and a column always cross, so the shape is all there is to check.
            let cells = rows.saturating_mul(*columns);
            if cells != n || *rows == 0 {
                return Err(ConfigError::GridShape {
                    rows: *rows,
                    columns: *columns,
                    cells,
                    members: n,
                });
            }
        }
        QuorumSpec::Weighted {
            weights,
            phase1,
            phase2,
        } => {
            if weights.len() != n {
                return Err(ConfigError::WeightCount {
                    weights: weights.len(),
                    members: n,
                });
            }
            if let Some(&weight) = weights.iter().find(|w| **w > QuorumSpec::WEIGHT_MAX) {
                return Err(ConfigError::WeightTooLarge { weight });
            }
            let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
            for threshold in [*phase1, *phase2] {
                if threshold == 0 || threshold > total {
                    return Err(ConfigError::ThresholdOutOfRange { threshold, total });
                }
            }
            if phase1 + phase2 <= total && !skip_intersection {
                return Err(ConfigError::WeightedQuorumsDoNotIntersect {
                    phase1: *phase1,
                    phase2: *phase2,
                    total,
                });
            }
        }
        QuorumSpec::Cheap { main } => {
            // Auxiliaries must be fewer than a majority, or a majority of auxiliaries alone
            // would miss the set of all mains.
            if *main == 0 || *main > n || n - main > n / 2 {
                return Err(ConfigError::CheapShape {
                    main: *main,
                    members: n,
                });
            }
        }
    }
    Ok(())
}

/// Cheap Paxos: every main voter (indices below `main`), or a majority of the `n` voters.
fn cheap_quorum(set: NodeSet, main: usize, n: usize) -> bool {
    NodeSet::below(main).minus(set).is_empty() || set.len() > n / 2
}

/// The weight of the voters in `set`.
fn weight_of(weights: &[u32], set: NodeSet) -> u64 {
    weights
        .iter()
        .enumerate()
        .filter(|(i, _)| set.contains(*i))
        .map(|(_, w)| u64::from(*w))
        .sum()
}

/// The fewest voters whose weights reach `threshold` (heaviest first).
fn fewest_reaching(weights: &[u32], threshold: u64) -> usize {
    let mut sorted: Vec<u32> = weights.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let mut sum = 0u64;
    for (k, w) in sorted.iter().enumerate() {
        if sum >= threshold {
            return k;
        }
        sum += u64::from(*w);
    }
    sorted.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majority_sizes() {
        for (n, q) in [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (7, 4)] {
            let c = Configuration::majority_of(n).unwrap();
            assert_eq!(c.phase1_size(), q, "n={n}");
            assert_eq!(c.phase2_size(), q, "n={n}");
        }
    }

    #[test]
    fn flexible_quorums_must_intersect() {
        let members: Vec<NodeId> = (1..=5).map(NodeId).collect();
        let ok = Configuration::new(
            members.clone(),
            QuorumSpec::Flexible {
                phase1: 4,
                phase2: 2,
            },
        );
        assert!(ok.is_ok());
        let bad = Configuration::new(
            members,
            QuorumSpec::Flexible {
                phase1: 3,
                phase2: 2,
            },
        );
        assert_eq!(
            bad,
            Err(ConfigError::QuorumsDoNotIntersect {
                phase1: 3,
                phase2: 2,
                members: 5
            })
        );
    }

    #[test]
    fn rejects_duplicates_and_zero() {
        assert_eq!(
            Configuration::new(vec![NodeId(1), NodeId(1)], QuorumSpec::Majority),
            Err(ConfigError::DuplicateMember(NodeId(1)))
        );
        assert_eq!(
            Configuration::new(vec![NodeId(0)], QuorumSpec::Majority),
            Err(ConfigError::ReservedNodeId)
        );
    }

    #[test]
    fn learners_never_count_in_a_quorum() {
        let c = Configuration::with_learners(
            vec![NodeId(1), NodeId(2), NodeId(3)],
            vec![NodeId(4), NodeId(5)],
            QuorumSpec::Majority,
        )
        .unwrap();
        assert_eq!(c.index_of(NodeId(4)), Some(3));
        assert!(c.contains(NodeId(5)) && !c.is_voter(NodeId(5)) && c.is_learner(NodeId(5)));
        let mut s = NodeSet::EMPTY;
        s.insert(0);
        s.insert(3);
        s.insert(4);
        assert!(!c.is_phase2_quorum(s), "one voter and two learners");
        s.insert(2);
        assert!(c.is_phase2_quorum(s) && c.is_phase1_quorum(s));
        assert_eq!(
            Configuration::with_learners(vec![NodeId(1)], vec![NodeId(1)], QuorumSpec::Majority),
            Err(ConfigError::VoterAndLearner(NodeId(1)))
        );
        assert_eq!(
            Configuration::with_learners(
                vec![NodeId(1)],
                vec![NodeId(2), NodeId(2)],
                QuorumSpec::Majority
            ),
            Err(ConfigError::DuplicateMember(NodeId(2)))
        );
    }

    /// Cheap Paxos, section 3: all mains are a quorum, and so is any majority; a majority of
    /// auxiliaries alone would miss the mains, so such a shape is refused.
    #[test]
    fn cheap_quorums_are_all_mains_or_a_majority() {
        let c = Configuration::new(voters(5), QuorumSpec::Cheap { main: 3 }).unwrap();
        assert_eq!(c.mains(), &voters(3)[..]);
        assert_eq!(c.auxiliaries(), &[NodeId(4), NodeId(5)]);
        assert!(c.is_phase2_quorum(set(&[0, 1, 2])) && c.is_phase1_quorum(set(&[0, 1, 2])));
        assert!(
            c.is_phase2_quorum(set(&[0, 3, 4])),
            "a majority with one main"
        );
        assert!(!c.is_phase1_quorum(set(&[3, 4])));
        // After one main is dropped: 2 mains, 2 auxiliaries; the two mains are a quorum.
        let c = Configuration::new(voters(4), QuorumSpec::Cheap { main: 2 }).unwrap();
        assert!(c.is_phase2_quorum(set(&[0, 1])));
        assert!(!c.is_phase2_quorum(set(&[1, 2])) && !c.is_phase1_quorum(set(&[2, 3])));
        assert!(c.is_phase1_quorum(set(&[1, 2, 3])));
        for (main, n) in [(0, 3), (1, 3), (4, 3), (1, 4)] {
            assert_eq!(
                Configuration::new(voters(n), QuorumSpec::Cheap { main }),
                Err(ConfigError::CheapShape {
                    main,
                    members: n as usize
                }),
                "cheap:{main} of {n}"
            );
        }
        assert!(Configuration::new(voters(2), QuorumSpec::Cheap { main: 1 }).is_ok());
        assert_eq!("cheap:2".parse(), Ok(QuorumSpec::Cheap { main: 2 }));
        assert_eq!(QuorumSpec::Cheap { main: 2 }.to_string(), "cheap:2");
    }

    #[test]
    fn node_set_counts() {
        let mut s = NodeSet::EMPTY;
        assert!(s.insert(3));
        assert!(!s.insert(3));
        s.insert(0);
        assert_eq!(s.len(), 2);
        assert!(s.contains(3) && !s.contains(1) && !s.contains(64));
    }

    fn set(indices: &[usize]) -> NodeSet {
        let mut s = NodeSet::EMPTY;
        for i in indices {
            s.insert(*i);
        }
        s
    }

    fn voters(n: u64) -> Vec<NodeId> {
        (1..=n).map(NodeId).collect()
    }

    #[test]
    fn a_grid_phase1_is_a_full_column_and_phase2_a_full_row() {
        // 2 rows x 3 columns: row 0 = {0,1,2}, row 1 = {3,4,5}; column 0 = {0,3}.
        let c = Configuration::new(
            voters(6),
            QuorumSpec::Grid {
                rows: 2,
                columns: 3,
            },
        )
        .unwrap();
        assert!(c.is_phase1_quorum(set(&[0, 3])));
        assert!(
            !c.is_phase1_quorum(set(&[0, 1, 2])),
            "a row is not a column"
        );
        assert!(c.is_phase2_quorum(set(&[3, 4, 5])));
        assert!(
            !c.is_phase2_quorum(set(&[0, 1, 3, 4])),
            "four voters, no full row"
        );
        assert_eq!((c.phase1_size(), c.phase2_size()), (2, 3));
        // Every column meets every row.
        for col in 0..3 {
            for row in 0..2 {
                let column: Vec<usize> = (0..2).map(|r| r * 3 + col).collect();
                let cells: Vec<usize> = (0..3).map(|k| row * 3 + k).collect();
                assert!(column.iter().any(|i| cells.contains(i)));
            }
        }
        assert_eq!(
            Configuration::new(
                voters(5),
                QuorumSpec::Grid {
                    rows: 2,
                    columns: 3
                }
            ),
            Err(ConfigError::GridShape {
                rows: 2,
                columns: 3,
                cells: 6,
                members: 5
            })
        );
    }

    #[test]
    fn weighted_quorums_weigh_and_must_intersect() {
        let rule = |phase1, phase2| QuorumSpec::Weighted {
            weights: vec![3, 1, 1, 1, 1],
            phase1,
            phase2,
        };
        let c = Configuration::new(voters(5), rule(5, 3)).unwrap();
        assert!(c.is_phase2_quorum(set(&[0])), "weight 3 alone");
        assert!(!c.is_phase1_quorum(set(&[1, 2, 3, 4])), "weight 4 < 5");
        assert!(c.is_phase1_quorum(set(&[0, 1, 2])));
        assert_eq!((c.phase1_size(), c.phase2_size()), (3, 1));
        assert_eq!(
            Configuration::new(voters(5), rule(4, 3)),
            Err(ConfigError::WeightedQuorumsDoNotIntersect {
                phase1: 4,
                phase2: 3,
                total: 7
            })
        );
        assert_eq!(
            Configuration::new(voters(5), rule(8, 3)),
            Err(ConfigError::ThresholdOutOfRange {
                threshold: 8,
                total: 7
            })
        );
        assert_eq!(
            Configuration::new(voters(4), rule(5, 3)),
            Err(ConfigError::WeightCount {
                weights: 5,
                members: 4
            })
        );
    }

    #[test]
    fn every_phase1_quorum_meets_a_set_whose_complement_is_no_phase1_quorum() {
        let c = Configuration::new(
            voters(5),
            QuorumSpec::Flexible {
                phase1: 4,
                phase2: 2,
            },
        )
        .unwrap();
        // Holders {0, 1}: the other three are no phase-1 quorum of four.
        assert!(c.every_phase1_quorum_meets(set(&[0, 1])));
        assert!(!c.every_phase1_quorum_meets(set(&[0])));
        let grid = Configuration::new(
            voters(4),
            QuorumSpec::Grid {
                rows: 2,
                columns: 2,
            },
        )
        .unwrap();
        // A full row meets every column; one cell of each column does too.
        assert!(grid.every_phase1_quorum_meets(set(&[0, 1])));
        assert!(grid.every_phase1_quorum_meets(set(&[0, 3])));
        assert!(
            !grid.every_phase1_quorum_meets(set(&[0, 2])),
            "column 1 is free"
        );
    }

    #[test]
    fn rules_print_and_parse_back() {
        for text in [
            "majority",
            "flexible:4,2",
            "grid:3x2",
            "weighted:3,1,1,1,1/5,3",
        ] {
            let rule: QuorumSpec = text.parse().unwrap();
            assert_eq!(rule.to_string(), text);
        }
        for bad in [
            "flexible:4",
            "grid:3",
            "weighted:1,2",
            "majority:1",
            "fast:1,1",
            "",
        ] {
            assert!(bad.parse::<QuorumSpec>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn a_non_intersecting_rule_is_refused_unless_the_bug_is_planted() {
        let rule = QuorumSpec::Flexible {
            phase1: 3,
            phase2: 2,
        };
        let refused = Configuration::with_planted_bugs(
            voters(5),
            Vec::new(),
            rule.clone(),
            PlantedBugs::none(),
        );
        assert!(matches!(
            refused,
            Err(ConfigError::QuorumsDoNotIntersect { .. })
        ));
        let planted = Configuration::with_planted_bugs(
            voters(5),
            Vec::new(),
            rule,
            PlantedBugs::only(Bug::QuorumsDoNotIntersect),
        );
        assert_eq!(planted.is_ok(), cfg!(feature = "planted-bugs"));
    }
}
