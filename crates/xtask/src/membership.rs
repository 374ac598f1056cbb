//! `cargo xtask bench-membership`: what a change of members costs a cluster's clients, etcd
//! 3.4 and Synod one after the other in one run, under the same write load:
//!
//! - **replace a member**, etcd's procedure: SIGKILL a follower, remove it, add a learner
//!   on a fresh data directory, start it, promote it as soon as the leader says it is in
//!   sync. Measured: the time from `member add` to voting, the catch-up rate into the
//!   preloaded store (its bytes over the time from the learner's start to its promotion),
//!   and the longest gap in acknowledged writes from the kill to the promotion;
//! - **remove the leader**: the longest gap in acknowledged writes from the removal until
//!   `--settle` after it.
//!
//! Gaps are what clients feel: `--writers` closed-loop writers, each with one put in
//! flight, go to the next member on an error, and a gap is a time in which no member
//! acknowledged any write. Nothing here is asserted: the figures are for the note.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use etcd_proto::etcdserverpb::cluster_client::ClusterClient;
use etcd_proto::etcdserverpb::kv_client::KvClient;
use etcd_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use etcd_proto::etcdserverpb::{
    Member, MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest,
    PutRequest, StatusRequest,
};
use serde::Serialize;
use tonic::transport::Channel;

use crate::cluster::{free_ports, initial_cluster, member_specs, Cluster, MemberSpec, System};

const MEMBERS: usize = 3;
const READY_WITHIN: Duration = Duration::from_secs(60);
/// Bound on one client request; a member that does not answer in time counts as an error
/// and the writer moves on to the next member.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Preloaded puts in flight at once.
const PRELOAD_IN_FLIGHT: usize = 16;
/// Attempts of one preload put (a leader change may refuse a few).
const PRELOAD_ATTEMPTS: usize = 20;
/// Bound on retrying a membership call that the cluster refuses for now (no leader yet,
/// etcd's "unhealthy cluster" right after a change).
const CHANGE_WITHIN: Duration = Duration::from_secs(60);
/// Where preloaded keys live (`bench-snapshot-stall` ranges over them).
pub(crate) const PRELOAD_PREFIX: &str = "bench-membership/preload/";
/// The load's values: small, as a service's writes are.
const LOAD_VALUE_SIZE: usize = 256;

#[derive(clap::Args, Debug)]
pub struct BenchMembershipArgs {
    /// Bytes preloaded into the store before the changes, in MiB: the new member catches up
    /// into them.
    #[arg(long, default_value_t = 1024)]
    pub store_mib: u64,

    /// Size of each preloaded value, in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    pub value_size: usize,

    /// Writers during the changes, each with one put in flight.
    #[arg(long, default_value_t = 8)]
    pub writers: usize,

    /// Time under load before and after each change (part of each measured window).
    #[arg(long, value_parser = bench::parse_duration, default_value = "2s")]
    pub settle: Duration,

    /// Give up on a learner that is not in sync within this time.
    #[arg(long, value_parser = bench::parse_duration, default_value = "600s")]
    pub promote_within: Duration,

    #[command(flatten)]
    pub systems: crate::compare::SystemsArgs,

    /// Keep the members' data directories and logs after the run.
    #[arg(long)]
    pub keep_data: bool,

    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

impl BenchMembershipArgs {
    fn systems(&self) -> anyhow::Result<Vec<System>> {
        self.systems
            .member_systems("bench-membership changes members")
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.store_mib == 0 {
            bail!("--store-mib must be at least 1");
        }
        // etcd refuses requests over 1.5 MiB by default; stay well under.
        if self.value_size == 0 || self.value_size > 1024 * 1024 {
            bail!("--value-size must be between 1 and 1048576 bytes");
        }
        if self.writers == 0 || self.writers > 1024 {
            bail!("--writers must be between 1 and 1024");
        }
        Ok(())
    }

    fn preload_keys(&self) -> u64 {
        (self.store_mib * 1024 * 1024).div_ceil(self.value_size as u64)
    }
}

/// What one system measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Figures {
    pub preload_mib_per_s: f64,
    pub replace_add_to_voting_s: f64,
    pub replace_catch_up_mb_per_s: f64,
    pub replace_longest_gap_ms: f64,
    pub replace_failed_writes: u64,
    pub replace_acked_writes: u64,
    pub remove_leader_longest_gap_ms: f64,
    pub remove_leader_failed_writes: u64,
    pub remove_leader_acked_writes: u64,
}

pub fn run(args: BenchMembershipArgs) -> anyhow::Result<bool> {
    args.validate()?;
    let systems = args.systems()?;
    let (binaries, etcd_version) = args.systems.binaries(&systems)?;

    let parent = crate::target_dir().join("bench-membership");
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a temporary directory in {}", parent.display()))?;
    tmp.disable_cleanup(args.keep_data);

    // Three members and the joiner, per system, all allocated at once so none overlap.
    let per_system = 2 * (MEMBERS + 1);
    let ports = free_ports(per_system * systems.len())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;

    println!(
        "bench-membership: {} MiB preloaded in {} B values, {} writers of {LOAD_VALUE_SIZE} B, {} members{}",
        args.store_mib,
        args.value_size,
        args.writers,
        MEMBERS,
        etcd_version
            .as_deref()
            .map(|v| format!(", etcd: {v}"))
            .unwrap_or_default()
    );
    let mut results = BTreeMap::new();
    for (i, &system) in systems.iter().enumerate() {
        let bin = &binaries[&system];
        let dir = tmp.path().join(system.name());
        let ports = &ports[i * per_system..(i + 1) * per_system];
        eprintln!("== {system}");
        let figures = runtime
            .block_on(run_system(system, bin, &dir, ports, &args))
            .with_context(|| format!("measuring {system} (logs under {})", dir.display()))?;
        results.insert(system, figures);
    }
    println!("{}", table(&results));
    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "store_mib": args.store_mib,
            "value_size": args.value_size,
            "writers": args.writers,
            "etcd_version": etcd_version,
            "results": results.iter().map(|(s, f)| (s.name(), f)).collect::<BTreeMap<_, _>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(true)
}

async fn run_system(
    system: System,
    bin: &Path,
    dir: &Path,
    ports: &[u16],
    args: &BenchMembershipArgs,
) -> anyhow::Result<Figures> {
    let pairs: Vec<(u16, u16)> = ports.chunks(2).map(|p| (p[0], p[1])).collect();
    let all = member_specs(&pairs);
    let (first, joiner) = all.split_at(MEMBERS);
    let joiner = MemberSpec {
        name: "joiner".into(),
        ..joiner[0].clone()
    };
    let mut cluster = Cluster::start(system, bin, dir, first)?;
    cluster.wait_ready(READY_WITHIN).await?;
    let mut figures = Figures::default();

    let endpoints: Vec<String> = first.iter().map(MemberSpec::client_url).collect();
    let keys = args.preload_keys();
    eprintln!("preloading {keys} keys of {} B", args.value_size);
    let started = Instant::now();
    preload(&endpoints, keys, args.value_size).await?;
    let store_bytes = keys * args.value_size as u64;
    figures.preload_mib_per_s = mib(store_bytes) / started.elapsed().as_secs_f64();

    let load = Load::start(&endpoints, args.writers)?;
    tokio::time::sleep(args.settle).await;

    // Replace a follower, as etcd's documentation says to replace a failed member.
    let members = member_list(&endpoints).await?;
    let leader = leader_id(&endpoints).await?;
    let victim = members
        .iter()
        .find(|m| m.id != leader)
        .context("the cluster has no follower")?
        .clone();
    let victim_url = client_url_of(&victim)?;
    eprintln!("replacing {} ({:x})", victim.name, victim.id);
    load.mark();
    cluster.kill(&victim.name)?;
    load.remove_endpoint(&victim_url);
    let survivors: Vec<String> = endpoints
        .iter()
        .filter(|e| **e != victim_url)
        .cloned()
        .collect();
    retry("member remove", &survivors, |channel| {
        let id = victim.id;
        async move {
            ClusterClient::new(channel)
                .member_remove(MemberRemoveRequest { id })
                .await
                .map(drop)
        }
    })
    .await?;
    let added_at = Instant::now();
    let added = retry("member add --learner", &survivors, |channel| {
        let peer = joiner.peer_url();
        async move {
            ClusterClient::new(channel)
                .member_add(MemberAddRequest {
                    peer_ur_ls: vec![peer],
                    is_learner: true,
                })
                .await
                .map(|r| r.into_inner())
        }
    })
    .await?;
    let learner_id = added
        .member
        .as_ref()
        .map(|m| m.id)
        .context("member add answered without the added member")?;
    // The new member's --initial-cluster: the members in force, itself included.
    let mut in_force: Vec<MemberSpec> = first
        .iter()
        .filter(|s| s.name != victim.name)
        .cloned()
        .collect();
    in_force.push(joiner.clone());
    cluster.join(
        bin,
        &dir.join(&joiner.name),
        &joiner,
        &initial_cluster(&in_force),
    )?;
    let learner_started = Instant::now();
    let promoted = promote_when_in_sync(&survivors, learner_id, args.promote_within).await?;
    figures.replace_add_to_voting_s = promoted.duration_since(added_at).as_secs_f64();
    figures.replace_catch_up_mb_per_s =
        store_bytes as f64 / 1e6 / promoted.duration_since(learner_started).as_secs_f64();
    let endpoints: Vec<String> = survivors
        .iter()
        .cloned()
        .chain(std::iter::once(joiner.client_url()))
        .collect();
    load.add_endpoint(&joiner.client_url());
    tokio::time::sleep(args.settle).await;
    let window = load.window();
    figures.replace_longest_gap_ms = window.longest_gap.as_secs_f64() * 1e3;
    figures.replace_failed_writes = window.errors;
    figures.replace_acked_writes = window.acks;

    // Remove the leader through a follower.
    let members = member_list(&endpoints).await?;
    let leader = leader_id(&endpoints).await?;
    let leader_member = members
        .iter()
        .find(|m| m.id == leader)
        .context("the leader is not in the member list")?
        .clone();
    let leader_url = client_url_of(&leader_member)?;
    let followers: Vec<String> = endpoints
        .iter()
        .filter(|e| **e != leader_url)
        .cloned()
        .collect();
    eprintln!("removing the leader {} ({leader:x})", leader_member.name);
    load.mark();
    retry(
        "member remove (the leader)",
        &followers,
        |channel| async move {
            ClusterClient::new(channel)
                .member_remove(MemberRemoveRequest { id: leader })
                .await
                .map(drop)
        },
    )
    .await?;
    load.remove_endpoint(&leader_url);
    tokio::time::sleep(args.settle).await;
    let window = load.window();
    figures.remove_leader_longest_gap_ms = window.longest_gap.as_secs_f64() * 1e3;
    figures.remove_leader_failed_writes = window.errors;
    figures.remove_leader_acked_writes = window.acks;

    load.stop().await;
    cluster.stop()?;
    Ok(figures)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

pub(crate) fn channel(endpoint: &str) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(endpoint.to_string())
        .with_context(|| format!("bad endpoint {endpoint}"))?
        .connect_timeout(REQUEST_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .connect_lazy())
}

/// Puts `keys` values of `value_size` bytes, `PRELOAD_IN_FLIGHT` at a time, spread over the
/// members.
pub(crate) async fn preload(
    endpoints: &[String],
    keys: u64,
    value_size: usize,
) -> anyhow::Result<()> {
    let channels = endpoints
        .iter()
        .map(|e| channel(e))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let value = vec![b'v'; value_size];
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..PRELOAD_IN_FLIGHT as u64 {
        let channels = channels.clone();
        let value = value.clone();
        tasks.spawn(async move {
            let mut key = task;
            while key < keys {
                let mut attempt = 0;
                loop {
                    let channel = channels[(key as usize + attempt) % channels.len()].clone();
                    let put = KvClient::new(channel)
                        .put(PutRequest {
                            key: format!("{PRELOAD_PREFIX}{key:08}").into_bytes(),
                            value: value.clone(),
                            ..Default::default()
                        })
                        .await;
                    match put {
                        Ok(_) => break,
                        Err(status) if attempt + 1 < PRELOAD_ATTEMPTS => {
                            eprintln!("preload put {key}: {status}; again");
                            attempt += 1;
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        Err(status) => {
                            bail!("preload put {key} failed {PRELOAD_ATTEMPTS} times: {status}")
                        }
                    }
                }
                key += PRELOAD_IN_FLIGHT as u64;
            }
            Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.context("a preload task panicked")??;
    }
    Ok(())
}

async fn member_list(endpoints: &[String]) -> anyhow::Result<Vec<Member>> {
    retry("member list", endpoints, |channel| async move {
        ClusterClient::new(channel)
            .member_list(MemberListRequest { linearizable: true })
            .await
            .map(|r| r.into_inner().members)
    })
    .await
}

/// The leader's id as a member that knows one reports it.
async fn leader_id(endpoints: &[String]) -> anyhow::Result<u64> {
    retry("status (leader)", endpoints, |channel| async move {
        let status = MaintenanceClient::new(channel)
            .status(StatusRequest {})
            .await?
            .into_inner();
        if status.leader == 0 {
            return Err(tonic::Status::unavailable("no leader yet"));
        }
        Ok(status.leader)
    })
    .await
}

fn client_url_of(member: &Member) -> anyhow::Result<String> {
    member
        .client_ur_ls
        .first()
        .cloned()
        .with_context(|| format!("member {} lists no client URL", member.name))
}

/// Calls `call` on each endpoint in turn until one succeeds, for at most `CHANGE_WITHIN`.
async fn retry<T, F, Fut>(what: &str, endpoints: &[String], mut call: F) -> anyhow::Result<T>
where
    F: FnMut(Channel) -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let deadline = Instant::now() + CHANGE_WITHIN;
    let mut last = None;
    for attempt in 0.. {
        let endpoint = &endpoints[attempt % endpoints.len()];
        match call(channel(endpoint)?).await {
            Ok(v) => return Ok(v),
            Err(status) => last = Some(format!("{endpoint}: {status}")),
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "{what} did not succeed within {CHANGE_WITHIN:?}; last answer {}",
        last.unwrap_or_default()
    )
}

/// Asks to promote `id` every 100 ms until the leader takes it (it refuses a learner that
/// is not in sync yet); returns when it did.
async fn promote_when_in_sync(
    endpoints: &[String],
    id: u64,
    within: Duration,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    loop {
        for endpoint in endpoints {
            let answer = ClusterClient::new(channel(endpoint)?)
                .member_promote(MemberPromoteRequest { id })
                .await;
            match answer {
                Ok(_) => return Ok(Instant::now()),
                Err(status) => last = format!("{endpoint}: {status}"),
            }
        }
        if Instant::now() >= deadline {
            bail!("the learner {id:x} was not promoted within {within:?}; last answer {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The writes measured while members change: acknowledgements and errors since the last
/// [`Load::mark`], and the longest time without an acknowledgement in that window.
#[derive(Clone, Copy, Debug)]
struct Window {
    /// The last acknowledgement, or the mark if none came since.
    last_ack: Instant,
    longest_gap: Duration,
    acks: u64,
    errors: u64,
}

impl Window {
    fn new(now: Instant) -> Self {
        Window {
            last_ack: now,
            longest_gap: Duration::ZERO,
            acks: 0,
            errors: 0,
        }
    }

    fn ack(&mut self, now: Instant) {
        self.longest_gap = self.longest_gap.max(now.duration_since(self.last_ack));
        self.last_ack = now;
        self.acks += 1;
    }

    /// The window as of `now`: a gap still open counts too.
    fn at(mut self, now: Instant) -> Self {
        self.longest_gap = self.longest_gap.max(now.duration_since(self.last_ack));
        self
    }
}

struct LoadShared {
    /// Where writers send puts; they move to the next one on an error.
    endpoints: Mutex<Vec<(String, Channel)>>,
    window: Mutex<Window>,
    stop: AtomicBool,
}

/// `writers` closed-loop writers of small values.
struct Load {
    shared: Arc<LoadShared>,
    tasks: tokio::task::JoinSet<()>,
}

impl Load {
    fn start(endpoints: &[String], writers: usize) -> anyhow::Result<Load> {
        let endpoints = endpoints
            .iter()
            .map(|e| Ok((e.clone(), channel(e)?)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let shared = Arc::new(LoadShared {
            endpoints: Mutex::new(endpoints),
            window: Mutex::new(Window::new(Instant::now())),
            stop: AtomicBool::new(false),
        });
        let mut tasks = tokio::task::JoinSet::new();
        for writer in 0..writers {
            let shared = shared.clone();
            tasks.spawn(write_loop(shared, writer));
        }
        Ok(Load { shared, tasks })
    }

    fn mark(&self) {
        *lock(&self.shared.window) = Window::new(Instant::now());
    }

    fn window(&self) -> Window {
        lock(&self.shared.window).at(Instant::now())
    }

    fn remove_endpoint(&self, url: &str) {
        lock(&self.shared.endpoints).retain(|(e, _)| e != url);
    }

    fn add_endpoint(&self, url: &str) {
        if let Ok(channel) = channel(url) {
            lock(&self.shared.endpoints).push((url.to_string(), channel));
        }
    }

    async fn stop(mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        while self.tasks.join_next().await.is_some() {}
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A writer that panicked cannot leave the figures half-updated: each update is one
    // assignment under the lock.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn write_loop(shared: Arc<LoadShared>, writer: usize) {
    let value = vec![b'w'; LOAD_VALUE_SIZE];
    let key = format!("bench-membership/load/{writer}").into_bytes();
    let mut next = writer;
    while !shared.stop.load(Ordering::Relaxed) {
        let target = {
            let endpoints = lock(&shared.endpoints);
            if endpoints.is_empty() {
                None
            } else {
                Some(endpoints[next % endpoints.len()].1.clone())
            }
        };
        let Some(channel) = target else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let put = KvClient::new(channel)
            .put(PutRequest {
                key: key.clone(),
                value: value.clone(),
                ..Default::default()
            })
            .await;
        let now = Instant::now();
        let mut window = lock(&shared.window);
        match put {
            Ok(_) => window.ack(now),
            Err(_) => {
                window.errors += 1;
                next += 1;
            }
        }
    }
}

fn table(results: &BTreeMap<System, Figures>) -> String {
    let systems: Vec<System> = results.keys().copied().collect();
    let ratios = results.len() == 2;
    let mut out = format!("{:<44}", "");
    for s in &systems {
        out += &format!("{:>12}", s.name());
    }
    if ratios {
        out += &format!("{:>12}", "synod/etcd");
    }
    out.push('\n');
    type Get = fn(&Figures) -> f64;
    let rows: [(&str, Get); 9] = [
        ("preload (MiB/s)", |f| f.preload_mib_per_s),
        ("replace: member add -> voting (s)", |f| {
            f.replace_add_to_voting_s
        }),
        ("replace: catch-up into the store (MB/s)", |f| {
            f.replace_catch_up_mb_per_s
        }),
        ("replace: longest write gap (ms)", |f| {
            f.replace_longest_gap_ms
        }),
        ("replace: writes acknowledged", |f| {
            f.replace_acked_writes as f64
        }),
        ("replace: writes failed", |f| f.replace_failed_writes as f64),
        ("remove leader: longest write gap (ms)", |f| {
            f.remove_leader_longest_gap_ms
        }),
        ("remove leader: writes acknowledged", |f| {
            f.remove_leader_acked_writes as f64
        }),
        ("remove leader: writes failed", |f| {
            f.remove_leader_failed_writes as f64
        }),
    ];
    for (name, get) in rows {
        out += &format!("{name:<44}");
        for s in &systems {
            out += &format!("{:>12.1}", get(&results[s]));
        }
        if ratios {
            let (e, s) = (get(&results[&System::Etcd]), get(&results[&System::Synod]));
            if e > 0.0 {
                out += &format!("{:>11.2}x", s / e);
            } else {
                out += &format!("{:>12}", "-");
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchMembershipArgs,
    }

    fn parse(argv: &[&str]) -> Result<BenchMembershipArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("x").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn defaults_preload_a_gibibyte_and_compare_both_systems() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.store_mib, 1024);
        assert_eq!(a.preload_keys() * a.value_size as u64, 1 << 30);
        assert_eq!(a.systems().unwrap(), vec![System::Etcd, System::Synod]);
        a.validate().unwrap();
    }

    #[test]
    fn bad_flags_are_refused_with_what_to_change() {
        let err = parse(&["--only", "reference"])
            .unwrap()
            .systems()
            .unwrap_err();
        assert!(err.to_string().contains("no members"), "{err}");
        let err = parse(&["--value-size", "2000000"])
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("--value-size"), "{err}");
        let err = parse(&["--writers", "0"]).unwrap().validate().unwrap_err();
        assert!(err.to_string().contains("--writers"), "{err}");
    }

    #[test]
    fn a_partial_value_still_counts_as_a_key() {
        let a = parse(&["--store-mib", "1", "--value-size", "1000"]).unwrap();
        assert_eq!(a.preload_keys(), 1049);
    }

    #[test]
    fn the_window_counts_the_longest_time_without_an_acknowledgement() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut w = Window::new(t0);
        w.ack(t0 + ms(10));
        w.ack(t0 + ms(500));
        w.ack(t0 + ms(520));
        assert_eq!(w.longest_gap, ms(490));
        assert_eq!(w.acks, 3);
        // A gap still open at the end of the window counts as well.
        assert_eq!(w.at(t0 + ms(1520)).longest_gap, ms(1000));
        assert_eq!(w.at(t0 + ms(600)).longest_gap, ms(490));
    }

    #[test]
    fn the_table_shows_synod_over_etcd() {
        let mut results = BTreeMap::new();
        results.insert(
            System::Etcd,
            Figures {
                remove_leader_longest_gap_ms: 400.0,
                ..Figures::default()
            },
        );
        results.insert(
            System::Synod,
            Figures {
                remove_leader_longest_gap_ms: 100.0,
                ..Figures::default()
            },
        );
        let t = table(&results);
        let row = t
            .lines()
            .find(|l| l.starts_with("remove leader: longest write gap"))
            .unwrap();
        assert!(row.contains("400.0") && row.contains("100.0"), "{row}");
        assert!(row.trim_end().ends_with("0.25x"), "{row}");
    }
}
