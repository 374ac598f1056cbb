//! `cargo xtask bench-keepalive`: many leases kept alive, etcd 3.4 against Synod in one run.
//!
//! Each system runs as 3 members on loopback (both fsyncing). The bench grants `--leases`
//! leases round-robin over the members, then keeps every one alive the way etcd's clients
//! do: one `LeaseKeepAlive` stream per group of leases, each lease renewed every third of
//! its TTL. After one warm-up round it measures, over `--duration`: renewals answered per
//! second, the members' CPU time per second (all members), and fsyncs per second (the sum of
//! `etcd_disk_wal_fsync_duration_seconds_count` over the members' `/metrics`, which both
//! serve on the client port). A renewal is a leader's clock reset in both systems; what is
//! left of them in the log is etcd's nothing (checkpointing off by default in 3.4) and
//! Synod's checkpoints of leases not renewed within the checkpoint interval (none here).

use crate::cluster::{free_ports, member_specs, Cluster};
use crate::cpu::cpu_secs;
use anyhow::{bail, Context};
use etcd_proto::etcdserverpb as pb;
use pb::lease_client::LeaseClient;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MEMBERS: usize = 3;

#[derive(clap::Args, Debug)]
pub struct BenchKeepaliveArgs {
    /// Leases kept alive.
    #[arg(long, default_value_t = 10_000)]
    pub leases: usize,
    /// Their TTL in seconds (renewed every third of it, as etcd's clients do).
    #[arg(long, default_value_t = 6)]
    pub ttl: i64,
    /// Leases per keep-alive stream.
    #[arg(long, default_value_t = 100)]
    pub per_stream: usize,
    /// How long to measure, after one warm-up round.
    #[arg(long, value_parser = bench::parse_duration, default_value = "20s")]
    pub duration: Duration,
    #[command(flatten)]
    pub systems: crate::compare::SystemsArgs,
}

/// What one system did.
#[derive(Debug, Default)]
struct Figures {
    renewals_per_sec: f64,
    cpu_cores: f64,
    fsyncs_per_sec: f64,
    expired: u64,
}

pub fn run(args: BenchKeepaliveArgs) -> anyhow::Result<bool> {
    if args.leases == 0 || args.per_stream == 0 || args.ttl < 3 {
        bail!("--leases and --per-stream must be positive and --ttl at least 3");
    }
    let systems = args.systems.member_systems("bench-keepalive")?;
    let (binaries, etcd_version) = args.systems.binaries(&systems)?;
    let parent = crate::target_dir().join("bench-keepalive");
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&parent)
        .context("creating a temporary directory")?;
    let ports = free_ports(2 * MEMBERS * systems.len())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let mut rows = Vec::new();
    for (i, &system) in systems.iter().enumerate() {
        let pairs: Vec<(u16, u16)> = ports[2 * MEMBERS * i..2 * MEMBERS * (i + 1)]
            .chunks(2)
            .map(|p| (p[0], p[1]))
            .collect();
        let specs = member_specs(&pairs);
        let dir = tmp.path().join(system.name());
        let mut cluster = Cluster::start(system, &binaries[&system], &dir, &specs)?;
        let figures = runtime.block_on(async {
            cluster.wait_ready(Duration::from_secs(60)).await?;
            measure(&args, &cluster).await
        });
        cluster.stop()?;
        rows.push((system, figures?));
    }
    println!(
        "bench-keepalive: {} leases, TTL {} s (renewed every {:.1} s), {} per stream, {} s measured{}",
        args.leases,
        args.ttl,
        args.ttl as f64 / 3.0,
        args.per_stream,
        args.duration.as_secs(),
        etcd_version.map_or(String::new(), |v| format!("; {v}"))
    );
    println!("| system | renewals/s | CPU (cores, 3 members) | CPU-s per 1k renewals | fsyncs/s | leases expired |");
    println!("|---|---|---|---|---|---|");
    for (system, f) in &rows {
        println!(
            "| {system} | {:.0} | {:.3} | {:.4} | {:.2} | {} |",
            f.renewals_per_sec,
            f.cpu_cores,
            f.cpu_cores * 1000.0 / f.renewals_per_sec.max(1e-9),
            f.fsyncs_per_sec,
            f.expired
        );
    }
    Ok(rows.iter().all(|(_, f)| f.expired == 0))
}

async fn measure(args: &BenchKeepaliveArgs, cluster: &Cluster) -> anyhow::Result<Figures> {
    let urls = cluster.client_urls();
    let mut clients = Vec::new();
    for url in &urls {
        let channel = tonic::transport::Endpoint::from_shared(url.clone())?
            .connect()
            .await
            .with_context(|| format!("connecting to {url}"))?;
        clients.push(LeaseClient::new(channel));
    }
    // Grant every lease, a few hundred at a time.
    let mut ids = Vec::with_capacity(args.leases);
    for chunk in (0..args.leases).collect::<Vec<_>>().chunks(256) {
        let mut grants = Vec::new();
        for &n in chunk {
            let mut c = clients[n % clients.len()].clone();
            let ttl = args.ttl;
            grants.push(tokio::spawn(async move {
                c.lease_grant(pb::LeaseGrantRequest { ttl, id: 0 }).await
            }));
        }
        for g in grants {
            let r = g.await?.context("granting a lease")?.into_inner();
            ids.push(r.id);
        }
    }
    let renewed = Arc::new(AtomicU64::new(0));
    let expired = Arc::new(AtomicU64::new(0));
    let every = Duration::from_secs_f64(args.ttl as f64 / 3.0);
    let stop = Instant::now() + every + args.duration + Duration::from_secs(1);
    let mut streams = Vec::new();
    for (s, group) in ids.chunks(args.per_stream).enumerate() {
        let mut c = clients[s % clients.len()].clone();
        let group = group.to_vec();
        let renewed = renewed.clone();
        let expired = expired.clone();
        // Spread the streams' rounds over the interval, as independent clients would be.
        let offset = every.mul_f64(s as f64 / ids.len().div_ceil(args.per_stream) as f64);
        streams.push(tokio::spawn(async move {
            let (tx, rx) = tokio::sync::mpsc::channel(group.len());
            let outbound = tokio_stream::wrappers::ReceiverStream::new(rx);
            let mut inbound = c.lease_keep_alive(outbound).await?.into_inner();
            tokio::time::sleep(offset).await;
            while Instant::now() < stop {
                let round = Instant::now();
                for &id in &group {
                    tx.send(pb::LeaseKeepAliveRequest { id }).await?;
                }
                for _ in 0..group.len() {
                    let r = inbound
                        .message()
                        .await?
                        .context("the keep-alive stream ended")?;
                    if r.ttl <= 0 {
                        expired.fetch_add(1, Ordering::Relaxed);
                    }
                    renewed.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(every.saturating_sub(round.elapsed())).await;
            }
            anyhow::Ok(())
        }));
    }
    // One round to warm up, then the measured window.
    tokio::time::sleep(every).await;
    let pids = cluster.pids();
    let cpu0 = cpu_secs(&pids)?;
    let fsync0 = fsyncs(&urls)?;
    let renewed0 = renewed.load(Ordering::Relaxed);
    let t0 = Instant::now();
    tokio::time::sleep(args.duration).await;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_secs(&pids)? - cpu0;
    let fsync = fsyncs(&urls)? - fsync0;
    let renewals = renewed.load(Ordering::Relaxed) - renewed0;
    for s in streams {
        s.await??;
    }
    Ok(Figures {
        renewals_per_sec: renewals as f64 / secs,
        cpu_cores: cpu / secs,
        fsyncs_per_sec: fsync / secs,
        expired: expired.load(Ordering::Relaxed),
    })
}

/// Sum of every member's WAL fsync count, from `/metrics` on its client URL (plain HTTP).
fn fsyncs(urls: &[String]) -> anyhow::Result<f64> {
    let mut total = 0.0;
    for url in urls {
        let addr = url.trim_start_matches("http://");
        let mut conn = std::net::TcpStream::connect(addr)
            .with_context(|| format!("connecting to {addr} for /metrics"))?;
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            conn,
            "GET /metrics HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )?;
        let mut body = String::new();
        conn.read_to_string(&mut body)
            .with_context(|| format!("reading {url}/metrics"))?;
        let count = body
            .lines()
            .find_map(|l| l.strip_prefix("etcd_disk_wal_fsync_duration_seconds_count "))
            .with_context(|| format!("{url}/metrics has no WAL fsync count"))?;
        total += count.trim().parse::<f64>().context("a fsync count")?;
    }
    Ok(total)
}
