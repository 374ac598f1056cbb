//! `cargo xtask bench-snapshot-stall`: what whole-store work costs a 3-member Synod's writes
//! (issue 18): a store of `--store-mib` MiB in 1 KiB values, then put latency from
//! `--writers` closed-loop writers, first on the idle store and then while, all at once, a
//! follower is wiped and catches up by snapshot, a client ranges over every key (in pages),
//! asks every member for HashKV and takes a backup. Printed: put p50/p99/max in both phases
//! and their ratio, how long each whole-store task took, and whether the leader changed
//! (its id and raft term before and after). Nothing is asserted: figures for the note, with
//! the machine's load average beside them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use etcd_proto::etcdserverpb::kv_client::KvClient;
use etcd_proto::etcdserverpb::maintenance_client::MaintenanceClient;
use etcd_proto::etcdserverpb::{
    HashKvRequest, PutRequest, RangeRequest, SnapshotRequest, StatusRequest,
};
use tonic::transport::Channel;

use crate::cluster::{initial_cluster, member_specs, Cluster, MemberSpec, System};
use crate::compare::{member_binaries, DEFAULT_ETCD_BIN};
use crate::membership::{channel, preload, PRELOAD_PREFIX};

const MEMBERS: usize = 3;
const READY_WITHIN: Duration = Duration::from_secs(60);
const VALUE_SIZE: usize = 1024;
const LOAD_VALUE_SIZE: usize = 256;
/// Keys per page of the range over every key.
const PAGE_KEYS: i64 = 10_000;
/// Latencies kept per phase at most (a bound on memory; a phase past it keeps the first).
const SAMPLES_MAX: usize = 10_000_000;

#[derive(clap::Args, Debug)]
pub struct BenchSnapshotStallArgs {
    /// Store size in MiB of 1 KiB values (issue 18 asks 1024: 1 M keys).
    #[arg(long, default_value_t = 1024)]
    pub store_mib: u64,

    /// Writers, each with one put in flight, in both phases.
    #[arg(long, default_value_t = 8)]
    pub writers: usize,

    /// How long the idle phase measures.
    #[arg(long, value_parser = bench::parse_duration, default_value = "10s")]
    pub idle: Duration,

    /// Give up on the wiped member's catch-up after this long.
    #[arg(long, value_parser = bench::parse_duration, default_value = "900s")]
    pub catch_up_within: Duration,

    /// Loopback ports from here on (6 of them).
    #[arg(long, default_value_t = 30000)]
    pub port_base: u16,

    /// The synod binary [default: build it with `cargo build --release -p synod`].
    #[arg(long)]
    pub synod_bin: Option<PathBuf>,

    /// Keep the members' data directories and logs after the run.
    #[arg(long)]
    pub keep_data: bool,
}

/// Put latencies of one phase.
#[derive(Default)]
struct Samples {
    micros: Vec<u64>,
    errors: u64,
}

impl Samples {
    fn quantile(&self, q: f64) -> f64 {
        let mut v = self.micros.clone();
        v.sort_unstable();
        match v.len() {
            0 => f64::NAN,
            n => v[((n - 1) as f64 * q).round() as usize] as f64 / 1000.0,
        }
    }

    fn line(&self, name: &str) -> String {
        format!(
            "{name:<10} puts {:>8}  errors {:>4}  p50 {:>8.2} ms  p99 {:>8.2} ms  p99.9 {:>8.2} ms  max {:>8.2} ms",
            self.micros.len(),
            self.errors,
            self.quantile(0.5),
            self.quantile(0.99),
            self.quantile(0.999),
            self.quantile(1.0)
        )
    }
}

/// Closed-loop writers of small values; latencies go to the current phase's samples.
struct Writers {
    samples: Arc<Mutex<Samples>>,
    stop: Arc<AtomicBool>,
    tasks: tokio::task::JoinSet<()>,
}

impl Writers {
    fn start(channels: &[Channel], writers: usize) -> Writers {
        let samples = Arc::new(Mutex::new(Samples::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..writers {
            let (samples, stop, channels) = (samples.clone(), stop.clone(), channels.to_vec());
            tasks.spawn(async move {
                let value = vec![b'w'; LOAD_VALUE_SIZE];
                let key = format!("bench-snapshot-stall/load/{w}").into_bytes();
                let mut next = w;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let put = KvClient::new(channels[next % channels.len()].clone())
                        .put(PutRequest {
                            key: key.clone(),
                            value: value.clone(),
                            ..Default::default()
                        })
                        .await;
                    let took = started.elapsed().as_micros() as u64;
                    let mut s = samples.lock().unwrap_or_else(|e| e.into_inner());
                    match put {
                        Ok(_) if s.micros.len() < SAMPLES_MAX => s.micros.push(took),
                        Ok(_) => {}
                        Err(_) => {
                            s.errors += 1;
                            next += 1;
                        }
                    }
                }
            });
        }
        Writers {
            samples,
            stop,
            tasks,
        }
    }

    /// The samples so far; a new phase starts.
    fn take(&self) -> Samples {
        std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()))
    }

    async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        while self.tasks.join_next().await.is_some() {}
    }
}

pub fn run(args: BenchSnapshotStallArgs) -> anyhow::Result<bool> {
    if args.store_mib == 0 || args.writers == 0 || args.writers > 1024 {
        bail!("--store-mib must be at least 1 and --writers between 1 and 1024");
    }
    let (binaries, _) = member_binaries(
        &[System::Synod],
        args.synod_bin.as_deref(),
        std::path::Path::new(DEFAULT_ETCD_BIN),
    )?;
    let bin = binaries[&System::Synod].clone();
    let parent = crate::target_dir().join("bench-snapshot-stall");
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&parent)
        .context("creating a temporary directory")?;
    tmp.disable_cleanup(args.keep_data);
    let pairs: Vec<(u16, u16)> = (0..MEMBERS as u16)
        .map(|i| (args.port_base + 2 * i, args.port_base + 2 * i + 1))
        .collect();
    let specs = member_specs(&pairs);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let dir = tmp.path().to_path_buf();
    let report = runtime.block_on(run_cluster(&bin, &dir, &specs, &args));
    match report {
        Ok(text) => {
            println!("{text}");
            Ok(true)
        }
        Err(e) => Err(e.context(format!("logs under {}", dir.display()))),
    }
}

async fn status(channel: &Channel) -> anyhow::Result<(u64, u64, i64)> {
    let s = MaintenanceClient::new(channel.clone())
        .status(StatusRequest {})
        .await?
        .into_inner();
    let revision = s.header.map_or(0, |h| h.revision);
    Ok((s.leader, s.raft_term, revision))
}

async fn run_cluster(
    bin: &std::path::Path,
    dir: &std::path::Path,
    specs: &[MemberSpec],
    args: &BenchSnapshotStallArgs,
) -> anyhow::Result<String> {
    let mut cluster = Cluster::start(System::Synod, bin, dir, specs)?;
    cluster.wait_ready(READY_WITHIN).await?;
    let endpoints: Vec<String> = specs.iter().map(MemberSpec::client_url).collect();
    let channels = endpoints
        .iter()
        .map(|e| channel(e))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let keys = args.store_mib * 1024 * 1024 / VALUE_SIZE as u64;
    eprintln!("preloading {keys} keys of {VALUE_SIZE} B");
    let started = Instant::now();
    preload(&endpoints, keys, VALUE_SIZE).await?;
    let preload_s = started.elapsed().as_secs_f64();

    let writers = Writers::start(&channels, args.writers);
    tokio::time::sleep(args.idle).await;
    let idle = writers.take();

    // The leader, and a follower to wipe.
    let (leader, term, revision) = status(&channels[0]).await?;
    let mut victim = None;
    for (i, c) in channels.iter().enumerate() {
        let id = MaintenanceClient::new(c.clone())
            .status(StatusRequest {})
            .await?
            .into_inner()
            .header
            .map_or(0, |h| h.member_id);
        if id != leader {
            victim = Some(i);
            break;
        }
    }
    let victim = victim.context("no follower to wipe")?;
    let survivors: Vec<Channel> = (0..MEMBERS)
        .filter(|i| *i != victim)
        .map(|i| channels[i].clone())
        .collect();
    let spec = specs[victim].clone();
    eprintln!(
        "wiping {} and starting it again, with a range, HashKV and a backup",
        spec.name
    );
    let phase = Instant::now();
    cluster.kill(&spec.name)?;
    let member_dir = dir.join(&spec.name);
    std::fs::remove_dir_all(member_dir.join("data")).context("wiping the member's data")?;
    cluster.join(bin, &member_dir, &spec, &initial_cluster(specs))?;

    let range = tokio::spawn(range_all(survivors[0].clone()));
    let hashes = tokio::spawn(hash_all(survivors.clone()));
    let backup = tokio::spawn(take_backup(survivors[1].clone()));
    let catch_up = catch_up(channels[victim].clone(), revision, args.catch_up_within).await;
    let range = range.await.context("the range task")??;
    let hashes = hashes.await.context("the HashKV task")??;
    let backup = backup.await.context("the backup task")??;
    let during = writers.take();
    writers.stop().await;
    let catch_up = catch_up?;
    let (leader_after, term_after, _) = status(&survivors[0]).await?;
    cluster.stop()?;

    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut out = format!(
        "bench-snapshot-stall: 3 Synod members, {} MiB in {keys} keys of {VALUE_SIZE} B \
         (preloaded in {preload_s:.1} s), {} writers of {LOAD_VALUE_SIZE} B\n",
        args.store_mib, args.writers
    );
    out += &idle.line("idle");
    out.push('\n');
    out += &during.line("during");
    out.push('\n');
    out += &format!(
        "p99 during / idle: {:.2}x   (the phase lasted {:.1} s)\n",
        during.quantile(0.99) / idle.quantile(0.99),
        phase.elapsed().as_secs_f64()
    );
    out += &format!(
        "wiped member caught up in {catch_up:.1} s; range over {} keys in {range:.1} s; \
         HashKV of {} members in {hashes:.1} s; backup of {:.1} MiB in {:.1} s\n",
        keys,
        survivors.len(),
        backup.1 as f64 / (1024.0 * 1024.0),
        backup.0
    );
    out += &format!(
        "leader {leader:x} term {term} before, {leader_after:x} term {term_after} after: {}\n",
        if leader == leader_after && term == term_after {
            "no leader change"
        } else {
            "THE LEADER CHANGED"
        }
    );
    out += &format!("load average at the end: {}", loadavg.trim());
    Ok(out)
}

/// Ranges over every preloaded key in pages; seconds taken.
async fn range_all(channel: Channel) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut kv = KvClient::new(channel);
    let mut from = PRELOAD_PREFIX.as_bytes().to_vec();
    let end = {
        let mut e = PRELOAD_PREFIX.as_bytes().to_vec();
        if let Some(last) = e.last_mut() {
            *last += 1;
        }
        e
    };
    loop {
        let page = kv
            .range(RangeRequest {
                key: from.clone(),
                range_end: end.clone(),
                limit: PAGE_KEYS,
                ..Default::default()
            })
            .await?
            .into_inner();
        let Some(last) = page.kvs.last() else { break };
        from = last.key.clone();
        from.push(0);
        if !page.more {
            break;
        }
    }
    Ok(started.elapsed().as_secs_f64())
}

/// HashKV at every member given; seconds taken.
async fn hash_all(channels: Vec<Channel>) -> anyhow::Result<f64> {
    let started = Instant::now();
    for c in channels {
        MaintenanceClient::new(c)
            .hash_kv(HashKvRequest { revision: 0 })
            .await?;
    }
    Ok(started.elapsed().as_secs_f64())
}

/// A backup (Maintenance.Snapshot), drained; seconds taken and bytes.
async fn take_backup(channel: Channel) -> anyhow::Result<(f64, u64)> {
    let started = Instant::now();
    let mut stream = MaintenanceClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .snapshot(SnapshotRequest {})
        .await?
        .into_inner();
    let mut bytes = 0u64;
    while let Some(part) = stream.message().await? {
        bytes += part.blob.len() as u64;
    }
    Ok((started.elapsed().as_secs_f64(), bytes))
}

/// Waits until the wiped member's store reaches `revision`; seconds taken.
async fn catch_up(channel: Channel, revision: i64, within: Duration) -> anyhow::Result<f64> {
    let started = Instant::now();
    loop {
        if let Ok((_, _, r)) = status(&channel).await {
            if r >= revision {
                return Ok(started.elapsed().as_secs_f64());
            }
        }
        if started.elapsed() > within {
            bail!("the wiped member did not reach revision {revision} within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
