//! The fault kinds and the seeded choice of the next one.

use rand_chacha::rand_core::RngCore;
use rand_chacha::ChaCha8Rng;

/// The crash points of `synod node --test-crash-at`, from the node itself so they cannot drift.
pub fn crash_points() -> Vec<&'static str> {
    node::CrashPoint::ALL
        .iter()
        .map(|(_, name)| *name)
        .collect()
}

/// One kind of fault. Leader-aimed kinds are separate kinds, so each is seen to fire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// SIGKILL a random member, restart it after a while.
    Kill,
    KillLeader,
    /// SIGSTOP a random member for longer than the election timeout, then SIGCONT.
    Pause,
    PauseLeader,
    /// Cut one member off from every other, both ways.
    Isolate,
    IsolateLeader,
    /// Two members cut off from the other three.
    MajorityMinority,
    /// Two groups of two that only a fifth member connects.
    Bridge,
    /// One member's outbound (or inbound) links cut, the other direction intact.
    OneWay,
    /// Every peer link holds each message back.
    Delay,
    /// Every peer link drops a share of messages.
    Loss,
    /// A member restarted with `--test-slow-fsync-ms`, then restarted normally.
    SlowFsync,
    /// A member SIGKILLed, removed from the cluster, its data directory wiped, added back as
    /// a learner (etcd's replacement procedure) and promoted once in sync.
    Replace,
    /// A member restarted with `--test-crash-at` the point with this index in
    /// [`crash_points`]; fired once the member aborted there.
    CrashAt(usize),
}

impl Kind {
    pub fn all() -> Vec<Kind> {
        let mut v = vec![
            Kind::Kill,
            Kind::KillLeader,
            Kind::Pause,
            Kind::PauseLeader,
            Kind::Isolate,
            Kind::IsolateLeader,
            Kind::MajorityMinority,
            Kind::Bridge,
            Kind::OneWay,
            Kind::Delay,
            Kind::Loss,
            Kind::SlowFsync,
            Kind::Replace,
        ];
        v.extend((0..crash_points().len()).map(Kind::CrashAt));
        v
    }

    /// Every kind `--faults` accepts. (`replace` was opt-in until a member re-added at its
    /// old peer URL, which gets its old id back, stopped taking its previous incarnation's
    /// removal for its own; seeds 1 to 3 with every kind and `replace` then passed.)
    pub fn known() -> Vec<Kind> {
        Kind::all()
    }

    pub fn name(self) -> String {
        match self {
            Kind::Kill => "kill".into(),
            Kind::KillLeader => "kill-leader".into(),
            Kind::Pause => "pause".into(),
            Kind::PauseLeader => "pause-leader".into(),
            Kind::Isolate => "isolate".into(),
            Kind::IsolateLeader => "isolate-leader".into(),
            Kind::MajorityMinority => "majority-minority".into(),
            Kind::Bridge => "bridge".into(),
            Kind::OneWay => "one-way".into(),
            Kind::Delay => "delay".into(),
            Kind::Loss => "loss".into(),
            Kind::SlowFsync => "slow-fsync".into(),
            Kind::Replace => "replace".into(),
            Kind::CrashAt(i) => format!("crash-{}", crash_points()[i]),
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::known().into_iter().find(|k| k.name() == name)
    }
}

/// The next fault: a kind still short of `min_fires` if any (so every kind reaches its
/// quota early in the run), else any enabled kind.
pub fn next(
    rng: &mut ChaCha8Rng,
    enabled: &[Kind],
    fired: &dyn Fn(Kind) -> u32,
    min_fires: u32,
) -> Kind {
    let short: Vec<Kind> = enabled
        .iter()
        .copied()
        .filter(|k| fired(*k) < min_fires)
        .collect();
    let pool = if short.is_empty() { enabled } else { &short };
    pool[(rng.next_u64() % pool.len() as u64) as usize]
}

/// A uniformly drawn integer in `lo..=hi`.
pub fn between(rng: &mut ChaCha8Rng, lo: u64, hi: u64) -> u64 {
    lo + rng.next_u64() % (hi - lo + 1)
}

/// The members in a seeded random order.
pub fn shuffled(rng: &mut ChaCha8Rng, n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}
