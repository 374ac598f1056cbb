//! Chaos runs of real `synod node` processes: `synod chaos`.
//!
//! Five members, each on its own loopback address (127.0.0.11..15 by default), with every
//! peer link through the fault-injecting [`proxy`]. Concurrent etcd-API [`client`]s record
//! a history ([`history`], format in `docs/chaos-history.md`) while the nemesis injects
//! faults of every [`faults::Kind`] on a seeded schedule, one at a time, healing each and
//! timing the recovery. After the last heal the run waits for the members to converge and
//! applies every [`check`]. The fault schedule is seeded; the run itself is not
//! deterministic (real processes and real time), so a failing seed is a lead, not a replay.
//!
//! Bounded: the run's duration (`--minutes`), the requests (`--max-ops`), every RPC (a
//! timeout), every wait for recovery or convergence (a bound that counts as a liveness
//! violation when exceeded), and the proxy's queues. Traffic goes only to 127.0.0.0/8.

pub mod check;
pub mod client;
pub mod cluster;
pub mod faults;
pub mod history;
pub mod member_change;
pub mod proxy;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::time::Instant;
use tonic::transport::Channel;

use check::{Dump, Violations};
use client::{MemberStatus, Shared};
use cluster::{Cluster, Layout, StartFlags};
use faults::{between, shuffled, Kind};
use history::{Op, Record};
use proxy::{LinkRule, Links};

/// `synod chaos` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ChaosArgs {
    /// Length of the fault phase, in minutes (fractions allowed).
    #[arg(long, default_value_t = 2.0)]
    pub minutes: f64,
    /// Seed of the fault schedule and of the clients' choices.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Concurrent clients, each with one request in flight.
    #[arg(long, default_value_t = 8)]
    pub clients: u64,
    /// Upper bound on client requests over the whole run.
    #[arg(long, default_value_t = 2_000_000)]
    pub max_ops: u64,
    /// The run fails if fewer answered operations per second than this were reached.
    #[arg(long, default_value_t = 50.0)]
    pub min_ops_per_sec: f64,
    /// The run fails unless every enabled fault kind fired at least this often.
    #[arg(long, default_value_t = 2)]
    pub min_fires: u32,
    /// Fault kinds to use, comma-separated (default: all of them). See the report for names.
    #[arg(long, value_delimiter = ',')]
    pub faults: Vec<String>,
    /// The `synod` binary to run members with [default: this executable].
    #[arg(long)]
    pub synod_bin: Option<PathBuf>,
    /// Directory for data, member logs and the history [default: a new one under the
    /// system temp directory].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the members' data directories after a passing run (always kept on failure).
    #[arg(long)]
    pub keep: bool,
    /// Member i listens on 127.0.0.(first-host + i).
    #[arg(long, default_value_t = 11)]
    pub first_host: u8,
    /// Client port on every member's address; the real peer listener is +1, its proxy +2.
    #[arg(long, default_value_t = 23790)]
    pub port: u16,
    #[arg(long, default_value_t = 50)]
    pub heartbeat_interval: u64,
    #[arg(long, default_value_t = 300)]
    pub election_timeout: u64,
    /// Small, so that snapshots and log compaction happen during the run.
    #[arg(long, default_value_t = 200)]
    pub snapshot_count: u64,
    /// Each member's log segment size: the smallest a member takes, so that a long run fills
    /// segments, compacts them and writes new ones over them (the report says how many of
    /// the segments left at the end were; at the end of a 10-minute run none was yet).
    #[arg(long, default_value_t = 16 << 20)]
    pub wal_segment_bytes: u64,
    /// Log volume on top of the checked load: 64 KiB puts to a few keys outside the checked
    /// history, at this many KiB per second (0: none), with the store's history compacted
    /// every 32 of them. With 16 MiB segments, a member rotates about every 16 s at the
    /// default, so compacted segments are written over during the run, under the faults.
    #[arg(long, default_value_t = 1024)]
    pub ballast_kib_per_sec: u64,
    /// Per-request timeout in milliseconds; a write past it is recorded as unknown.
    #[arg(long, default_value_t = 1000)]
    pub op_timeout_ms: u64,
    /// Test-only planted bug: serializable reads are recorded as linearizable ones, so stale
    /// answers from a partitioned or lagging member look like linearizable reads. The run then
    /// passes only if the linearizability check catches it.
    #[arg(long, hide = true)]
    pub plant_stale_reads: bool,
    /// Do not run a cluster: check a history file a run wrote (every check that needs only
    /// the history; the state after healing was checked by that run) and exit.
    #[arg(long, value_name = "PATH")]
    pub check_history: Option<PathBuf>,
    /// Search budget of the linearizability checker per key.
    #[arg(long, default_value_t = 5_000_000)]
    pub max_checker_states: u64,
}

const MEMBERS: usize = 5;
/// From a heal until the cluster has one leader every member agrees on and takes a write.
const RECOVERY_BOUND: Duration = Duration::from_secs(20);
/// From the end of the faults until every member holds the same revision.
const CONVERGE_BOUND: Duration = Duration::from_secs(60);
/// How long a crash-point restart may take to reach its point before it counts as not fired.
const CRASH_POINT_BOUND: Duration = Duration::from_secs(10);
/// Bound on one membership change of the `replace` fault, retries included (a promotion waits
/// for the new learner to catch up).
const CHANGE_BOUND: Duration = Duration::from_secs(30);
const STATUS_TIMEOUT: Duration = Duration::from_millis(300);

/// Runs `synod chaos`; Ok(false) when a check failed or the run was void.
pub fn run_cli(args: ChaosArgs) -> anyhow::Result<bool> {
    if let Some(path) = &args.check_history {
        let records = history::read(path).with_context(|| format!("reading {}", path.display()))?;
        let (lin, violations) = check_history(&records, args.max_checker_states);
        println!(
            "{}: {} records; linearizability {} ({} operations over {} keys)",
            path.display(),
            records.len(),
            lin.verdict.map_or("not run".into(), |v| v.to_string()),
            lin.checked_ops,
            lin.partitions
        );
        for c in check::CHECKS {
            println!("  {c}: {}", violations.count(c));
        }
        for (c, list) in &violations.by_check {
            for v in list.iter().take(5) {
                println!("  {c}: {}", v.chars().take(1500).collect::<String>());
            }
        }
        return Ok(violations.total() == 0);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let report = runtime.block_on(run(args))?;
    print!("{}", report.text);
    Ok(report.passed)
}

/// What a run printed and whether it passed.
pub struct RunReport {
    pub text: String,
    pub passed: bool,
    pub violations: Violations,
    pub fired: BTreeMap<String, u32>,
}

struct Nemesis {
    cluster: Cluster,
    links: Arc<Links>,
    channels: Vec<Channel>,
    /// Member ids by index (shared with the proxies; `replace` changes one).
    ids: proxy::Ids,
    rng: ChaCha8Rng,
    fired: BTreeMap<Kind, u32>,
    not_fired: BTreeMap<Kind, u32>,
    recoveries: Vec<Duration>,
    violations: Violations,
    log: Vec<String>,
    start: Instant,
    election_timeout_ms: u64,
}

impl Nemesis {
    async fn statuses(&self) -> Vec<Option<MemberStatus>> {
        let mut set = tokio::task::JoinSet::new();
        for (i, ch) in self.channels.iter().enumerate() {
            let ch = ch.clone();
            set.spawn(async move { (i, client::status(&ch, STATUS_TIMEOUT).await) });
        }
        let mut out = vec![None; self.channels.len()];
        while let Some(Ok((i, s))) = set.join_next().await {
            out[i] = s;
        }
        out
    }

    /// The leader as the member with the highest term reports it, by index.
    async fn leader(&self) -> Option<usize> {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let best = self
                .statuses()
                .await
                .into_iter()
                .flatten()
                .filter(|s| s.leader != 0)
                .max_by_key(|s| s.term);
            if let Some(i) = best.and_then(|s| self.index_of(s.leader)) {
                return Some(i);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The index of the member with id `id`.
    fn index_of(&self, id: u64) -> Option<usize> {
        self.ids
            .iter()
            .position(|m| m.load(Ordering::Relaxed) == id)
    }

    /// Asks `change` of the members other than `skip`, each in turn, until one answers or the
    /// bound passes (followers forward changes to the leader; a member may be cut off or
    /// mid-election). Returns the last error otherwise.
    async fn change_elsewhere(
        &self,
        skip: usize,
        change: &member_change::Change,
    ) -> Result<(), String> {
        let deadline = Instant::now() + CHANGE_BOUND;
        let mut last = String::from("no member asked");
        while Instant::now() < deadline {
            for (i, ch) in self.channels.iter().enumerate().filter(|(i, _)| *i != skip) {
                match member_change::ask(ch, change).await {
                    Ok(()) => return Ok(()),
                    Err(e) if change.done_by(&e) => return Ok(()),
                    Err(e) => last = format!("n{}: {e}", i + 1),
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(last)
    }

    /// etcd's replacement procedure on member `target`: SIGKILL, remove, wipe its data
    /// directory, add it back as a learner at the same peer URL, start it, promote it once in
    /// sync. A step that does not succeed within its bound is a violation: a cluster that
    /// serves must let an operator replace a dead member.
    async fn replace(&mut self, target: usize) -> anyhow::Result<()> {
        let name = self.cluster.layout.name(target);
        let url = self.cluster.layout.advertised_peer_url(target);
        let old = self.ids[target].load(Ordering::Relaxed);
        self.cluster.kill(target)?;
        let steps = async {
            self.change_elsewhere(target, &member_change::Change::Remove(old))
                .await
                .map_err(|e| format!("removing {name} ({old:x}): {e}"))?;
            let dir = self.cluster.data_dir(target);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| format!("wiping {}: {e}", dir.display()))?;
            }
            self.change_elsewhere(target, &member_change::Change::AddLearner(url.clone()))
                .await
                .map_err(|e| format!("adding {name} back as a learner: {e}"))?;
            let new = member_change::id_at(&self.channels, target, &url)
                .await
                .ok_or_else(|| format!("no member listed at {url} after adding it"))?;
            Ok::<u64, String>(new)
        };
        let new = match steps.await {
            Ok(new) => new,
            Err(what) => {
                self.note(format!("replace: {what}"));
                self.violations.add("replace", what);
                return Ok(());
            }
        };
        self.ids[target].store(new, Ordering::Relaxed);
        self.cluster.start(target, &StartFlags::default())?;
        self.note(format!(
            "replace: {name} killed, removed ({old:x}), wiped, added back as learner {new:x}"
        ));
        let promoted = self
            .change_elsewhere(target, &member_change::Change::Promote(new))
            .await;
        match promoted {
            Ok(()) => self.note(format!("replace: {name} ({new:x}) promoted")),
            Err(e) => {
                let what = format!("promoting {name} ({new:x}) within {CHANGE_BOUND:?}: {e}");
                self.note(format!("replace: {what}"));
                self.violations.add("replace", what);
            }
        }
        Ok(())
    }

    fn note(&mut self, what: String) {
        let t = self.start.elapsed().as_secs_f64();
        self.log.push(format!("{t:8.2}s {what}"));
    }

    fn cut(&self, a: usize, b: usize) {
        let blocked = LinkRule {
            blocked: true,
            ..LinkRule::default()
        };
        self.links.set(a, b, blocked);
        self.links.set(b, a, blocked);
    }

    /// Injects one fault of `kind`, holds it, heals it. Returns whether it fired.
    async fn inject(&mut self, kind: Kind) -> anyhow::Result<bool> {
        let n = self.ids.len();
        let target = match kind {
            Kind::KillLeader | Kind::PauseLeader | Kind::IsolateLeader => match self.leader().await
            {
                Some(l) => l,
                None => {
                    self.note(format!("{}: no leader known, not fired", kind.name()));
                    return Ok(false);
                }
            },
            _ => (between(&mut self.rng, 0, n as u64 - 1)) as usize,
        };
        let name = |i: usize| format!("n{}", i + 1);
        let names = |v: &[usize]| v.iter().map(|i| name(*i)).collect::<Vec<_>>().join(",");
        match kind {
            Kind::Kill | Kind::KillLeader => {
                self.cluster.kill(target)?;
                self.note(format!("{}: SIGKILL {}", kind.name(), name(target)));
                self.hold(300, 1000).await;
            }
            Kind::Pause | Kind::PauseLeader => {
                self.cluster.pause(target)?;
                self.note(format!("{}: SIGSTOP {}", kind.name(), name(target)));
                // Well past the election timeout, so the others elect a new leader.
                let e = self.election_timeout_ms;
                self.hold((3 * e).max(800), (5 * e).max(1600)).await;
            }
            Kind::Isolate | Kind::IsolateLeader => {
                for j in (0..n).filter(|j| *j != target) {
                    self.cut(target, j);
                }
                self.note(format!("{}: {} cut off", kind.name(), name(target)));
                self.hold(1000, 2000).await;
            }
            Kind::MajorityMinority => {
                let order = shuffled(&mut self.rng, n);
                let (minority, majority) = order.split_at(2);
                for a in minority {
                    for b in majority {
                        self.cut(*a, *b);
                    }
                }
                self.note(format!(
                    "majority-minority: {} | {}",
                    names(minority),
                    names(majority)
                ));
                self.hold(1000, 2000).await;
            }
            Kind::Bridge => {
                let o = shuffled(&mut self.rng, n);
                for a in &o[0..2] {
                    for b in &o[3..5] {
                        self.cut(*a, *b);
                    }
                }
                self.note(format!(
                    "bridge: {} - {} - {}",
                    names(&o[0..2]),
                    name(o[2]),
                    names(&o[3..5])
                ));
                self.hold(1000, 2000).await;
            }
            Kind::OneWay => {
                let outbound = between(&mut self.rng, 0, 1) == 0;
                let blocked = LinkRule {
                    blocked: true,
                    ..LinkRule::default()
                };
                for j in (0..n).filter(|j| *j != target) {
                    if outbound {
                        self.links.set(target, j, blocked);
                    } else {
                        self.links.set(j, target, blocked);
                    }
                }
                let dir = if outbound {
                    "sends nothing"
                } else {
                    "receives nothing"
                };
                self.note(format!("one-way: {} {dir}", name(target)));
                self.hold(1000, 2000).await;
            }
            Kind::Delay | Kind::Loss => {
                let rule = if kind == Kind::Delay {
                    LinkRule {
                        delay: Duration::from_millis(between(&mut self.rng, 30, 120)),
                        ..LinkRule::default()
                    }
                } else {
                    LinkRule {
                        loss: between(&mut self.rng, 10, 35) as f64 / 100.0,
                        ..LinkRule::default()
                    }
                };
                for a in 0..n {
                    for b in (0..n).filter(|b| *b != a) {
                        self.links.set(a, b, rule);
                    }
                }
                self.note(format!("{}: every link {rule:?}", kind.name()));
                self.hold(1500, 2500).await;
            }
            Kind::Replace => {
                self.replace(target).await?;
            }
            Kind::SlowFsync => {
                let ms = between(&mut self.rng, 50, 200);
                self.cluster.kill(target)?;
                self.cluster.start(
                    target,
                    &StartFlags {
                        slow_fsync_ms: Some(ms),
                        ..StartFlags::default()
                    },
                )?;
                self.note(format!(
                    "slow-fsync: {} restarted with {ms} ms fsyncs",
                    name(target)
                ));
                self.hold(1500, 2500).await;
                self.cluster.kill(target)?;
            }
            Kind::CrashAt(p) => {
                let point = faults::crash_points()[p];
                // Snapshots come every --snapshot-count slots, so only their first occurrence
                // is sure to come soon; the others are reached many times a second.
                let nth = if point.starts_with("during-") {
                    1
                } else {
                    between(&mut self.rng, 1, 5)
                };
                let spec = format!("{point}:{nth}");
                self.cluster.kill(target)?;
                self.cluster.start(
                    target,
                    &StartFlags {
                        crash_at: Some(spec.clone()),
                        ..StartFlags::default()
                    },
                )?;
                let exit = self.cluster.wait_exit(target, CRASH_POINT_BOUND).await;
                use std::os::unix::process::ExitStatusExt as _;
                let fired = exit.and_then(|s| s.signal()) == Some(libc::SIGABRT);
                self.note(format!(
                    "{}: {} restarted with --test-crash-at {spec}: {}",
                    kind.name(),
                    name(target),
                    match exit {
                        Some(s) => format!("exited ({s})"),
                        None => "did not reach it".into(),
                    }
                ));
                if exit.is_none() {
                    self.cluster.kill(target)?;
                }
                if !fired {
                    self.heal().await?;
                    return Ok(false);
                }
            }
        }
        self.heal().await?;
        Ok(true)
    }

    async fn hold(&mut self, lo: u64, hi: u64) {
        let ms = between(&mut self.rng, lo, hi);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    /// Heals everything and times the recovery.
    async fn heal(&mut self) -> anyhow::Result<()> {
        self.links.heal();
        self.cluster.heal_processes()?;
        let healed = Instant::now();
        match self.recovered(healed + RECOVERY_BOUND).await {
            Some(()) => {
                let took = healed.elapsed();
                self.recoveries.push(took);
                self.note(format!("healed; recovered in {:.3}s", took.as_secs_f64()));
            }
            None => {
                let what = format!(
                    "no agreed leader taking writes within {:?} of the heal at {:.2}s",
                    RECOVERY_BOUND,
                    (healed - self.start).as_secs_f64()
                );
                self.note(what.clone());
                self.violations.add("liveness", what);
            }
        }
        Ok(())
    }

    /// Every member answers and names the same leader, and that leader takes a write.
    async fn recovered(&self, deadline: Instant) -> Option<()> {
        while Instant::now() < deadline {
            let s = self.statuses().await;
            let leaders: BTreeSet<u64> = s.iter().map(|s| s.map_or(0, |s| s.leader)).collect();
            if leaders.len() == 1 && !leaders.contains(&0) {
                let leader = *leaders.iter().next().expect("one");
                if let Some(i) = self.index_of(leader) {
                    if client::probe_put(&self.channels[i], Duration::from_millis(500)).await {
                        return Some(());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }
}

/// Polls every member's Status and counts leader changes (by the highest term seen).
async fn monitor(channels: Vec<Channel>, stop: Arc<AtomicBool>, changes: Arc<AtomicU64>) {
    let mut last: Option<(u64, u64)> = None;
    while !stop.load(Ordering::Relaxed) {
        for ch in &channels {
            if let Some(s) = client::status(ch, Duration::from_millis(100)).await {
                if s.leader == 0 {
                    continue;
                }
                match last {
                    Some((term, leader))
                        if s.term < term || (s.term == term && s.leader == leader) => {}
                    Some((_, leader)) => {
                        if s.leader != leader {
                            changes.fetch_add(1, Ordering::Relaxed);
                        }
                        last = Some((s.term, s.leader));
                    }
                    None => last = Some((s.term, s.leader)),
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

/// Every check that needs only the history.
pub fn check_history(records: &[Record], max_states: u64) -> (check::LinReport, Violations) {
    let (lin, mut violations) = check::check_linearizable(records, max_states);
    violations.merge(check::check_revisions(records));
    violations.merge(check::check_txn_atomicity(records));
    violations.merge(check::check_serializable_reads(records));
    (lin, violations)
}

/// One whole run: start, load and faults, heal, converge, check, report.
pub async fn run(args: ChaosArgs) -> anyhow::Result<RunReport> {
    anyhow::ensure!(args.minutes > 0.0, "--minutes must be positive");
    anyhow::ensure!(
        (args.first_host as usize) + MEMBERS <= 255,
        "--first-host leaves no room for {MEMBERS} members"
    );
    let enabled: Vec<Kind> = if args.faults.is_empty() {
        Kind::all()
    } else {
        args.faults
            .iter()
            .map(|f| {
                Kind::parse(f).with_context(|| {
                    let names: Vec<String> = Kind::known().iter().map(|k| k.name()).collect();
                    format!("unknown fault kind {f:?}; known: {}", names.join(", "))
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    let bin = match &args.synod_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("finding this executable")?,
    };
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            std::env::temp_dir().join(format!("synod-chaos-{}-{}", args.seed, std::process::id()))
        }
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let layout = Layout {
        members: MEMBERS,
        first_host: args.first_host,
        client_port: args.port,
        peer_port: args.port + 1,
        proxy_port: args.port + 2,
        token: format!("chaos-{}", args.seed),
    };
    let ids: proxy::Ids = Arc::new(layout.ids().into_iter().map(AtomicU64::new).collect());
    let links = Arc::new(Links::default());
    let mut proxies = Vec::new();
    for i in 0..MEMBERS {
        proxies.push(
            proxy::serve(
                layout.proxy_addr(i),
                layout.peer_addr(i),
                i,
                ids.clone(),
                links.clone(),
                args.seed,
            )
            .await
            .with_context(|| format!("binding the peer proxy on {}", layout.proxy_addr(i)))?,
        );
    }
    let op_timeout = Duration::from_millis(args.op_timeout_ms);
    let channels: Vec<Channel> = (0..MEMBERS)
        .map(|i| client::channel(&layout.client_url(i), op_timeout))
        .collect::<anyhow::Result<_>>()?;

    let mut cluster = Cluster::new(
        layout.clone(),
        bin,
        dir.clone(),
        args.heartbeat_interval,
        args.election_timeout,
        args.snapshot_count,
        args.wal_segment_bytes,
    );
    for i in 0..MEMBERS {
        cluster.start(i, &StartFlags::default())?;
    }
    let start = Instant::now();
    let mut nemesis = Nemesis {
        cluster,
        links: links.clone(),
        channels: channels.clone(),
        ids: ids.clone(),
        rng: ChaCha8Rng::seed_from_u64(args.seed),
        fired: BTreeMap::new(),
        not_fired: BTreeMap::new(),
        recoveries: Vec::new(),
        violations: Violations::default(),
        log: Vec::new(),
        start,
        election_timeout_ms: args.election_timeout,
    };
    if nemesis
        .recovered(Instant::now() + RECOVERY_BOUND)
        .await
        .is_none()
    {
        anyhow::bail!(
            "the cluster did not elect a leader within {RECOVERY_BOUND:?} of starting; see the \
             member logs in {}",
            dir.display()
        );
    }
    nemesis.note("cluster up".into());

    // Load.
    let shared = Arc::new(Shared {
        start,
        stop: AtomicBool::new(false),
        issued: AtomicU64::new(0),
        max_ops: args.max_ops,
        incarnations: nemesis.cluster.incarnations.clone(),
        op_timeout,
        epoch: Duration::from_secs(20),
        keys_per_epoch: 5,
        plant_stale_reads: args.plant_stale_reads,
    });
    let load_started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..args.clients {
        clients.spawn(client::run_client(
            c,
            channels.clone(),
            shared.clone(),
            args.seed,
        ));
    }
    let ballast_stop = Arc::new(AtomicBool::new(false));
    let ballast = tokio::spawn(client::run_ballast(
        channels.clone(),
        ballast_stop.clone(),
        args.ballast_kib_per_sec * 1024,
        op_timeout,
    ));
    let monitor_stop = Arc::new(AtomicBool::new(false));
    let leader_changes = Arc::new(AtomicU64::new(0));
    let monitor = tokio::spawn(monitor(
        channels.clone(),
        monitor_stop.clone(),
        leader_changes.clone(),
    ));

    // Faults, one at a time, until the fault phase is over.
    let fault_phase = Duration::from_secs_f64(args.minutes * 60.0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    while load_started.elapsed() < fault_phase {
        let fired_map = nemesis.fired.clone();
        let kind = faults::next(
            &mut nemesis.rng,
            &enabled,
            &|k| fired_map.get(&k).copied().unwrap_or(0),
            args.min_fires,
        );
        if nemesis.inject(kind).await? {
            *nemesis.fired.entry(kind).or_default() += 1;
        } else {
            *nemesis.not_fired.entry(kind).or_default() += 1;
        }
        nemesis.hold(200, 600).await;
    }
    let fault_phase_took = load_started.elapsed();

    // Stop the load, then make sure everything is healed and converged.
    shared.stop.store(true, Ordering::Relaxed);
    ballast_stop.store(true, Ordering::Relaxed);
    let ballast = ballast.await.context("the ballast task failed")?;
    let mut records: Vec<Record> = Vec::new();
    while let Some(r) = clients.join_next().await {
        records.extend(r.context("a client task failed")?);
    }
    let load_took = load_started.elapsed();
    monitor_stop.store(true, Ordering::Relaxed);
    let _ = monitor.await;
    nemesis.heal().await?;

    let dumps = converge(&channels, &mut nemesis.violations).await;
    // Final linearizable reads of every workload key, so a lost acknowledged write to those
    // keys shows up as a linearizability violation.
    let keys: BTreeSet<String> = records
        .iter()
        .flat_map(|r| match &r.op {
            Op::Put { key, .. }
            | Op::Get { key, .. }
            | Op::Delete { key }
            | Op::Cas { key, .. }
                if !key.starts_with(check::LEDGER_PREFIX) =>
            {
                vec![key.clone()]
            }
            Op::MultiPut { puts } => puts.iter().map(|(k, _)| k.clone()).collect(),
            Op::MultiGet { keys } => keys.clone(),
            _ => vec![],
        })
        .collect();
    let final_reads = final_reads(&channels, &keys, &shared, &nemesis).await;
    let final_read_failures = keys.len() - final_reads.len();
    if final_read_failures > 0 {
        nemesis.violations.add(
            "liveness",
            format!("{final_read_failures} final linearizable reads failed after healing"),
        );
    }
    records.extend(final_reads);
    records.sort_by_key(|r| (r.invoke, r.client));

    let history_path = dir.join("history.jsonl");
    history::write(&history_path, &records)
        .with_context(|| format!("writing {}", history_path.display()))?;

    // Checks.
    let mut violations = std::mem::take(&mut nemesis.violations);
    let records_for_check = records.clone();
    let max_states = args.max_checker_states;
    let (lin, history_v) =
        tokio::task::spawn_blocking(move || check_history(&records_for_check, max_states))
            .await
            .context("the checker panicked")?;
    violations.merge(history_v);
    violations.merge(check::check_final_state(&records, &dumps));
    if let (Some(max_seen), Some(d)) = (
        records.iter().filter_map(|r| r.revision).max(),
        dumps.first(),
    ) {
        if d.revision < max_seen {
            violations.add(
                "revision-order",
                format!(
                    "after healing the revision is {} but {max_seen} was observed",
                    d.revision
                ),
            );
        }
    }

    nemesis.cluster.stop_all();
    for p in &proxies {
        p.abort();
    }

    // Report.
    let mut t = String::new();
    let ok = records.iter().filter(|r| r.outcome.is_some()).count();
    let failed = records
        .iter()
        .filter(|r| r.outcome.is_none() && !r.is_write())
        .count();
    let unknown = records
        .iter()
        .filter(|r| r.outcome.is_none() && r.is_write())
        .count();
    let ok_per_sec = ok as f64 / load_took.as_secs_f64();
    let mut void = Vec::new();
    let _ = writeln!(
        t,
        "chaos: seed {}, {MEMBERS} members on 127.0.0.{}..{}, {} clients, faults for {:.1} s, \
         load for {:.1} s",
        args.seed,
        args.first_host,
        args.first_host as usize + MEMBERS - 1,
        args.clients,
        fault_phase_took.as_secs_f64(),
        load_took.as_secs_f64()
    );
    let _ = writeln!(
        t,
        "history: {} ({} records)",
        history_path.display(),
        records.len()
    );
    let _ = writeln!(
        t,
        "operations: {ok} ok, {failed} failed (reads without an answer), {unknown} unknown \
         (writes without an answer); {ok_per_sec:.0} ok/s (target >= {})",
        args.min_ops_per_sec
    );
    let mut by_op: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for r in &records {
        let name = match &r.op {
            Op::Put { key, .. } if key.starts_with(check::LEDGER_PREFIX) => "ledger-put",
            Op::Put { .. } => "put",
            Op::Get {
                serializable: false,
                ..
            } => "get-linearizable",
            Op::Get { .. } => "get-serializable",
            Op::Delete { .. } => "delete",
            Op::Cas { .. } => "txn-cas",
            Op::MultiPut { .. } => "txn-multi-put",
            Op::MultiGet { .. } => "txn-multi-get",
        };
        let e = by_op.entry(name).or_default();
        if r.outcome.is_some() {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    let cas_ok = records
        .iter()
        .filter(|r| matches!(r.outcome, Some(history::Outcome::Cas { succeeded: true })))
        .count();
    let by_op_text: Vec<String> = by_op
        .iter()
        .map(|(k, (a, b))| format!("{k} {a}/{b}"))
        .collect();
    let _ = writeln!(
        t,
        "  by op (answered/unanswered): {}; cas succeeded {cas_ok}",
        by_op_text.join(", ")
    );
    if ok_per_sec < args.min_ops_per_sec {
        void.push(format!(
            "target load not reached: {ok_per_sec:.0} ok/s < {}",
            args.min_ops_per_sec
        ));
    }
    if shared.issued.load(Ordering::Relaxed) >= args.max_ops {
        void.push(format!(
            "the request budget (--max-ops {}) ran out before the end",
            args.max_ops
        ));
    }
    let fired_text: Vec<String> = enabled
        .iter()
        .map(|k| {
            let f = nemesis.fired.get(k).copied().unwrap_or(0);
            let nf = nemesis.not_fired.get(k).copied().unwrap_or(0);
            if nf > 0 {
                format!("{} {f} (+{nf} not fired)", k.name())
            } else {
                format!("{} {f}", k.name())
            }
        })
        .collect();
    let total_fired: u32 = nemesis.fired.values().sum();
    let _ = writeln!(t, "faults: {total_fired} fired: {}", fired_text.join(", "));
    let short: Vec<String> = enabled
        .iter()
        .filter(|k| nemesis.fired.get(k).copied().unwrap_or(0) < args.min_fires)
        .map(|k| k.name())
        .collect();
    if !short.is_empty() {
        void.push(format!(
            "fault kinds fired fewer than {} times: {}",
            args.min_fires,
            short.join(", ")
        ));
    }
    let _ = writeln!(
        t,
        "proxy: {} peer frames forwarded, {} dropped",
        links.frames_forwarded.load(Ordering::Relaxed),
        links.frames_dropped.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        t,
        "leader changes: {} (Status polled every 100 ms)",
        leader_changes.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        t,
        "ballast: {} puts of 64 KiB ok, {} failed, {} compactions of the store's history",
        ballast.puts_ok, ballast.puts_failed, ballast.compactions
    );
    let (segments, recycled) = (0..MEMBERS)
        .map(|i| cluster::log_segments(&nemesis.cluster.data_dir(i)))
        .fold((0, 0), |(a, b), (c, d)| (a + c, b + d));
    let _ = writeln!(
        t,
        "log segments at the end: {segments} on the {MEMBERS} members, {recycled} of them \
         written over compacted ones ({} MiB segments)",
        args.wal_segment_bytes >> 20
    );
    let mut rec = nemesis.recoveries.clone();
    rec.sort();
    let _ = writeln!(
        t,
        "recovery after heal: {} heals, p50 {:.3} s, p99 {:.3} s, max {:.3} s (until every member \
         names one leader and it takes a write)",
        rec.len(),
        percentile(&rec, 0.50).as_secs_f64(),
        percentile(&rec, 0.99).as_secs_f64(),
        rec.last().copied().unwrap_or_default().as_secs_f64()
    );
    let _ = writeln!(
        t,
        "linearizability: {} ({} operations over {} keys; multi-key txns checked per key, and \
         for atomicity where a two-key read can show it; {} serializable reads checked for validity and revision order only)",
        lin.verdict.map_or("not run".into(), |v| v.to_string()),
        lin.checked_ops,
        lin.partitions,
        lin.serializable_reads
    );
    if let Some(d) = dumps.first() {
        let _ = writeln!(
            t,
            "state after heal: {} members read at revision {}, {} keys, hash {:016x}",
            dumps.len(),
            d.revision,
            d.keys.len(),
            d.hash()
        );
    }
    let vtext: Vec<String> = check::CHECKS
        .iter()
        .map(|c| format!("{c} {}", violations.count(c)))
        .collect();
    let _ = writeln!(t, "violations: {}", vtext.join(", "));
    for (check, list) in &violations.by_check {
        for v in list.iter().take(5) {
            // A checker explanation can run to pages; the history file has the rest.
            let shown: String = v.chars().take(1500).collect();
            let more = if shown.len() < v.len() { " [...]" } else { "" };
            let _ = writeln!(t, "  {check}: {shown}{more}");
        }
        if list.len() > 5 {
            let _ = writeln!(t, "  {check}: ... and {} more", list.len() - 5);
        }
    }
    let passed = if args.plant_stale_reads {
        let caught = violations.count("linearizability");
        let _ = writeln!(
            t,
            "planted bug (serializable reads recorded as linearizable): {}",
            if caught > 0 {
                format!("caught in {caught} keys")
            } else {
                "NOT caught".into()
            }
        );
        caught > 0
    } else {
        violations.total() == 0 && void.is_empty()
    };
    for v in &void {
        let _ = writeln!(t, "VOID: {v}");
    }
    let log_path = dir.join("nemesis.log");
    let _ = std::fs::write(&log_path, nemesis.log.join("\n") + "\n");
    let _ = writeln!(t, "fault log: {}", log_path.display());
    let _ = writeln!(t, "result: {}", if passed { "PASS" } else { "FAIL" });
    if passed && !args.keep {
        for i in 0..MEMBERS {
            let _ = std::fs::remove_dir_all(nemesis.cluster.data_dir(i));
        }
    }
    let fired = nemesis.fired.iter().map(|(k, v)| (k.name(), *v)).collect();
    Ok(RunReport {
        text: t,
        passed,
        violations,
        fired,
    })
}

/// Waits until every member answers with the same revision twice in a row, then reads each
/// member's whole key space.
async fn converge(channels: &[Channel], violations: &mut Violations) -> Vec<Dump> {
    let deadline = Instant::now() + CONVERGE_BOUND;
    let mut previous: Option<Vec<i64>> = None;
    loop {
        let mut revs = Vec::new();
        for (i, ch) in channels.iter().enumerate() {
            match client::dump(ch, i, Duration::from_secs(5)).await {
                Ok(d) => revs.push(d.revision),
                Err(_) => revs.push(-1),
            }
        }
        let settled = revs.iter().all(|r| *r >= 0 && *r == revs[0]);
        if settled && previous.as_ref() == Some(&revs) {
            break;
        }
        if Instant::now() >= deadline {
            violations.add(
                "liveness",
                format!("members did not converge within {CONVERGE_BOUND:?}: revisions {revs:?}"),
            );
            break;
        }
        previous = Some(revs);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut dumps = Vec::new();
    for (i, ch) in channels.iter().enumerate() {
        match client::dump(ch, i, Duration::from_secs(10)).await {
            Ok(d) => dumps.push(d),
            Err(e) => violations.add("state-hash", format!("n{} could not be read: {e}", i + 1)),
        }
    }
    dumps
}

/// A linearizable read of every key through the leader, recorded like any other operation.
async fn final_reads(
    channels: &[Channel],
    keys: &BTreeSet<String>,
    shared: &Shared,
    nemesis: &Nemesis,
) -> Vec<Record> {
    let member = nemesis.leader().await.unwrap_or(0);
    let mut kv = etcd_proto::etcdserverpb::kv_client::KvClient::new(channels[member].clone());
    let mut out = Vec::new();
    for key in keys {
        let op = Op::Get {
            key: key.clone(),
            serializable: false,
        };
        let invoke = shared.now();
        if let Ok(Ok((outcome, revision))) =
            tokio::time::timeout(Duration::from_secs(2), client::execute(&mut kv, &op)).await
        {
            out.push(Record {
                client: u64::from(u32::MAX),
                member,
                incarnation: None,
                op,
                invoke,
                complete: Some(shared.now()),
                outcome: Some(outcome),
                revision: Some(revision),
                error: None,
            });
        }
    }
    out
}
