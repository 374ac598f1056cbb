//! A load generator for any etcd v3 gRPC endpoints (Synod or etcd): `synod bench`.
//!
//! - [`BenchArgs`]: the command-line flags; [`run_cli`] runs them and prints the report.
//! - [`run`]: the same from a program, on a [`BenchConfig`], returning a [`BenchReport`].
//! - [`probe`]: one linearizable Range against an endpoint, to tell when a cluster serves;
//!   [`status`]: one `Maintenance.Status`.
//! - [`http`]: a plain HTTP/1.1 `GET` of a member's `/metrics` or `/health`, for the tools
//!   that watch a cluster.
//! - [`reference`]: etcd's KV API from memory, no replication and no fsync: the yardstick
//!   `cargo xtask bench-vs-etcd` measures beside etcd and Synod.
//!
//! `clients` tasks each keep one request in flight over `conns` HTTP/2 connections spread
//! over the endpoints. Every RPC is bounded by the request timeout; a run is bounded by a
//! duration or a number of operations. Latencies go into HDR histograms (3 significant
//! digits) per client, merged at the end, so recording never contends.

mod config;
pub mod http;
pub mod reference;
mod report;
mod watch;

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use etcd_proto::etcdserverpb::kv_client::KvClient;
use etcd_proto::etcdserverpb::{
    compare, request_op, Compare, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinSet;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Response, Status};

pub use config::{
    parse_duration, BenchArgs, BenchConfig, BenchTls, Consistency, Limit, Workload,
    DEFAULT_CLIENTS, DEFAULT_CONNECT_TIMEOUT, DEFAULT_DURATION, DEFAULT_KEY_SIZE,
    DEFAULT_KEY_SPACE, DEFAULT_MIXED_READ_PERCENT, DEFAULT_REQUEST_TIMEOUT, DEFAULT_VALUE_SIZE,
};
pub use report::{throughput, BenchReport, LatencySummary, OpReport, PreloadReport, WATCH_EVENT};

/// Why a run could not produce a report. Failed requests during a run are not errors:
/// they are counted in the report.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("{endpoint} did not answer: {status}")]
    Probe { endpoint: String, status: Status },
    #[error("preloading key {key:?} failed after {attempts} attempts: {status}")]
    Preload {
        key: String,
        attempts: u32,
        status: Status,
    },
    #[error("{flag} {}: {reason}", path.display())]
    TlsFile {
        flag: &'static str,
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("a load task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("the watch workload could not start its watchers: {reason}")]
    Watch { reason: String },
}

/// Runs `synod bench` with its flags: builds a runtime, runs, prints the table (and JSON
/// when asked). Ok(false) means the run completed but some requests failed, which makes
/// its figures suspect; the report says which and why.
pub fn run_cli(args: BenchArgs) -> anyhow::Result<bool> {
    let config = args.to_config()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let report = runtime
        .block_on(run(config))
        .context("running the benchmark")?;
    let json_to_stdout = args.json.as_deref() == Some(std::path::Path::new("-"));
    if json_to_stdout {
        // Keep stdout pure JSON for pipes; the table is still shown.
        eprint!("{report}");
        println!("{}", report.to_json());
    } else {
        print!("{report}");
        if let Some(path) = &args.json {
            std::fs::write(path, report.to_json() + "\n")
                .with_context(|| format!("writing the JSON report to {}", path.display()))?;
        }
    }
    std::io::stdout().flush().context("flushing stdout")?;
    Ok(report.errors == 0)
}

/// Runs one benchmark: connect, preload when the workload reads, then issue requests
/// until the limit. Nothing is printed except the progress bar (when `config.progress`).
pub async fn run(config: BenchConfig) -> Result<BenchReport, BenchError> {
    run_observed(config, || {}).await
}

/// [`run`], calling `timed_start` once the untimed preparation (connections, preload,
/// watchers) is done and just before the first timed request: a caller that samples the
/// servers' CPU there counts only the measured work.
pub async fn run_observed(
    config: BenchConfig,
    timed_start: impl FnOnce(),
) -> Result<BenchReport, BenchError> {
    config.validate()?;
    let channels = connect_all(&config).await?;
    let config = Arc::new(config);

    let preload = if config.workload.preloads() {
        Some(preload(&config, &channels).await?)
    } else {
        None
    };

    // The watch workload's values carry their send time from this origin.
    let origin = Instant::now();
    let watchers = if config.workload == Workload::Watch {
        Some(
            watch::Watchers::start(config.watchers, &channels, origin, config.request_timeout)
                .await?,
        )
    } else {
        None
    };

    timed_start();
    let start = Instant::now();
    let limit = match config.limit {
        Limit::Duration(d) => RunLimit::Deadline(start + d),
        Limit::Total(total) => RunLimit::Total {
            issued: AtomicU64::new(0),
            total,
        },
    };
    let shared = Arc::new(Shared {
        limit,
        completed: AtomicU64::new(0),
    });
    let progress = Progress::start(&config, Arc::clone(&shared), start);

    let mut workers = JoinSet::new();
    for id in 0..config.clients {
        let kv = KvClient::new(channels[id % channels.len()].clone());
        workers.spawn(worker(
            id as u64,
            kv,
            Arc::clone(&config),
            Arc::clone(&shared),
            origin,
        ));
    }
    let mut tallies: BTreeMap<&'static str, report::OpTally> = BTreeMap::new();
    while let Some(done) = workers.join_next().await {
        for (name, tally) in done? {
            tallies.entry(name).or_default().merge(&tally);
        }
    }
    let elapsed = start.elapsed();
    progress.finish();
    if let Some(watchers) = watchers {
        let puts = tallies.get("put").map_or(0, |t| t.ok);
        let events = watchers.finish(puts, WATCH_GRACE).await;
        tallies.insert(WATCH_EVENT, events);
    }

    let config = Arc::unwrap_or_clone(config);
    Ok(BenchReport::from_tallies(
        config, &tallies, elapsed, preload,
    ))
}

/// One linearizable single-key Range against `endpoint`, connection included, within
/// `timeout`. On etcd (and Synod) it succeeds only once the cluster has a leader and
/// this member is in touch with it: the readiness test of a freshly started cluster.
pub async fn probe(endpoint: &str, timeout: Duration) -> Result<(), BenchError> {
    ask_once(endpoint, timeout, |channel| async move {
        KvClient::new(channel)
            .range(RangeRequest {
                key: b"synod-bench-probe".to_vec(),
                ..Default::default()
            })
            .await
            .map(|_| ())
    })
    .await
}

/// `Maintenance.Status` of `endpoint` (version, db size, leader, index and term, errors,
/// learner), connection included, within `timeout`: what `synod top` shows beside metrics.
pub async fn status(
    endpoint: &str,
    timeout: Duration,
) -> Result<etcd_proto::etcdserverpb::StatusResponse, BenchError> {
    use etcd_proto::etcdserverpb::maintenance_client::MaintenanceClient;
    ask_once(endpoint, timeout, |channel| async move {
        MaintenanceClient::new(channel)
            .status(etcd_proto::etcdserverpb::StatusRequest {})
            .await
            .map(tonic::Response::into_inner)
    })
    .await
}

/// Connects to `endpoint` and makes one call, both within `timeout`.
async fn ask_once<T, F>(
    endpoint: &str,
    timeout: Duration,
    call: impl FnOnce(Channel) -> F,
) -> Result<T, BenchError>
where
    F: Future<Output = Result<T, Status>>,
{
    let attempt = async {
        let channel = Channel::from_shared(endpoint.to_string())
            .map_err(|e| BenchError::InvalidEndpoint {
                endpoint: endpoint.to_string(),
                reason: e.to_string(),
            })?
            .connect_timeout(timeout)
            .connect()
            .await
            .map_err(|source| BenchError::Connect {
                endpoint: endpoint.to_string(),
                source,
            })?;
        call(channel).await.map_err(|status| BenchError::Probe {
            endpoint: endpoint.to_string(),
            status,
        })
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(BenchError::Probe {
            endpoint: endpoint.to_string(),
            status: Status::deadline_exceeded(format!("no answer within {timeout:?}")),
        }),
    }
}

/// Opens `conns` connections, round-robin over the endpoints, failing fast if one does
/// not connect (a typo in an endpoint should not become a run full of errors).
async fn connect_all(config: &BenchConfig) -> Result<Vec<Channel>, BenchError> {
    let tls = config.tls.as_ref().map(client_tls).transpose()?;
    let mut channels = Vec::with_capacity(config.conns);
    for i in 0..config.conns {
        let endpoint = &config.endpoints[i % config.endpoints.len()];
        let mut settings =
            Channel::from_shared(endpoint.clone()).map_err(|e| BenchError::InvalidEndpoint {
                endpoint: endpoint.clone(),
                reason: e.to_string(),
            })?;
        if let Some(tls) = &tls {
            settings = settings
                .tls_config(tls.clone())
                .map_err(|source| BenchError::Connect {
                    endpoint: endpoint.clone(),
                    source,
                })?;
        }
        let channel = settings
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|source| BenchError::Connect {
                endpoint: endpoint.clone(),
                source,
            })?;
        channels.push(channel);
    }
    Ok(channels)
}

/// The client TLS settings of `tls`'s files (read once per run).
fn client_tls(tls: &BenchTls) -> Result<ClientTlsConfig, BenchError> {
    let read = |flag: &'static str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| BenchError::TlsFile {
            flag,
            path: path.to_path_buf(),
            reason: format!("cannot read it: {e}"),
        })
    };
    let mut settings =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read("--cacert", &tls.ca)?));
    if let Some((cert, key)) = &tls.identity {
        settings = settings.identity(Identity::from_pem(
            read("--cert", cert)?,
            read("--key", key)?,
        ));
    }
    Ok(settings)
}

/// Awaits one RPC within the request timeout. The timer is ours, not a grpc-timeout
/// header: servers differ in the code they answer an expired deadline with (tonic says
/// CANCELLED, etcd DEADLINE_EXCEEDED), and dropping the call resets its HTTP/2 stream, which
/// tells the server to stop anyway.
async fn call<T, F>(timeout: Duration, rpc: F) -> Result<T, Status>
where
    F: Future<Output = Result<Response<T>, Status>>,
{
    match tokio::time::timeout(timeout, rpc).await {
        Ok(answer) => answer.map(Response::into_inner),
        Err(_) => Err(Status::deadline_exceeded(format!(
            "no answer within the request timeout ({timeout:?})"
        ))),
    }
}

/// Writes every key of the key space once, `clients` at a time. Transient failures (an
/// election right after a cluster starts) are retried a few times before giving up.
async fn preload(
    config: &Arc<BenchConfig>,
    channels: &[Channel],
) -> Result<PreloadReport, BenchError> {
    const ATTEMPTS: u32 = 5;
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    let tasks_wanted = (config.clients as u64).min(config.key_space) as usize;
    for id in 0..tasks_wanted {
        let mut kv = KvClient::new(channels[id % channels.len()].clone());
        let config = Arc::clone(config);
        let next = Arc::clone(&next);
        tasks.spawn(async move {
            let value = config.value();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= config.key_space {
                    return Ok(());
                }
                let key = config.key(i);
                let mut attempt = 1;
                loop {
                    let put = PutRequest {
                        key: key.clone(),
                        value: value.clone(),
                        ..Default::default()
                    };
                    let timeout = config.request_timeout;
                    match call(timeout, kv.put(put)).await {
                        Ok(_) => break,
                        Err(status) if attempt >= ATTEMPTS => {
                            return Err(BenchError::Preload {
                                key: String::from_utf8_lossy(&key).into_owned(),
                                attempts: attempt,
                                status,
                            })
                        }
                        Err(_) => {
                            attempt += 1;
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
            }
        });
    }
    // Dropping the set on the first error aborts the other tasks.
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(PreloadReport {
        keys: config.key_space,
        duration_secs: start.elapsed().as_secs_f64(),
    })
}

enum RunLimit {
    Deadline(Instant),
    Total { issued: AtomicU64, total: u64 },
}

struct Shared {
    limit: RunLimit,
    /// Operations finished (answered or failed), for the progress bar.
    completed: AtomicU64,
}

impl Shared {
    /// Claims the right to issue one more operation.
    fn take_one(&self) -> bool {
        match &self.limit {
            RunLimit::Deadline(deadline) => Instant::now() < *deadline,
            RunLimit::Total { issued, total } => issued.fetch_add(1, Ordering::Relaxed) < *total,
        }
    }
}

/// SplitMix64: a tiny, fast, seedable generator. Key choice needs uniformity, not
/// cryptographic quality, and fixed seeds per client make runs repeatable in their key
/// sequences.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n >= 1). Modulo bias is below n / 2^64: irrelevant for key spaces.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy)]
enum Op {
    Put,
    Get,
    Cas,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Get => "get",
            Op::Cas => "cas",
        }
    }
}

/// What an answered operation was: done, or a compare-and-swap whose compare failed.
enum Answer {
    Done,
    Conflict,
}

/// How long after the last put the watchers get to see every event.
const WATCH_GRACE: Duration = Duration::from_secs(10);

/// One requester: issues operations one after another until the limit says stop.
async fn worker(
    id: u64,
    mut kv: KvClient<Channel>,
    config: Arc<BenchConfig>,
    shared: Arc<Shared>,
    origin: Instant,
) -> BTreeMap<&'static str, report::OpTally> {
    let mut rng = SplitMix64(id.wrapping_mul(0x1000_0000_01B3) ^ 0x5EED);
    let mut tallies: BTreeMap<&'static str, report::OpTally> = BTreeMap::new();
    let value = config.value();
    let serializable = config.consistency == Consistency::Serializable;
    let timeout = config.request_timeout;
    while shared.take_one() {
        let op = match config.workload {
            Workload::Put | Workload::Watch => Op::Put,
            Workload::Get => Op::Get,
            Workload::TxnCas => Op::Cas,
            Workload::Mixed => {
                if rng.below(100) < u64::from(config.mixed_read_percent) {
                    Op::Get
                } else {
                    Op::Put
                }
            }
        };
        let key = config.key(rng.below(config.key_space));
        let started = Instant::now();
        let outcome = match op {
            Op::Put => {
                let value = if config.workload == Workload::Watch {
                    watch::stamped_value(origin, config.value_size)
                } else {
                    value.clone()
                };
                let put = PutRequest {
                    key,
                    value,
                    ..Default::default()
                };
                call(timeout, kv.put(put)).await.map(|_| Answer::Done)
            }
            Op::Get => {
                let get = RangeRequest {
                    key,
                    serializable,
                    ..Default::default()
                };
                call(timeout, kv.range(get)).await.map(|_| Answer::Done)
            }
            Op::Cas => cas(&mut kv, key, value.clone(), serializable, timeout).await,
        };
        let latency = started.elapsed();
        let tally = tallies.entry(op.name()).or_default();
        match outcome {
            Ok(Answer::Done) => tally.record_answer(latency, false),
            Ok(Answer::Conflict) => tally.record_answer(latency, true),
            Err(status) => tally.record_error(&status),
        }
        shared.completed.fetch_add(1, Ordering::Relaxed);
    }
    tallies
}

/// Read the key's mod_revision, then put only if it is unchanged. A missing key has
/// mod_revision 0 in etcd's compares, so the first CAS on a key creates it.
async fn cas(
    kv: &mut KvClient<Channel>,
    key: Vec<u8>,
    value: Vec<u8>,
    serializable: bool,
    timeout: Duration,
) -> Result<Answer, Status> {
    let read = RangeRequest {
        key: key.clone(),
        serializable,
        ..Default::default()
    };
    let seen = call(timeout, kv.range(read)).await?;
    let mod_revision = seen.kvs.first().map_or(0, |kv| kv.mod_revision);
    let txn = TxnRequest {
        compare: vec![Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Mod as i32,
            key: key.clone(),
            target_union: Some(compare::TargetUnion::ModRevision(mod_revision)),
            range_end: Vec::new(),
        }],
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key,
                value,
                ..Default::default()
            })),
        }],
        failure: Vec::new(),
    };
    let answer = call(timeout, kv.txn(txn)).await?;
    Ok(if answer.succeeded {
        Answer::Done
    } else {
        Answer::Conflict
    })
}

/// The progress bar, redrawn by a ticker task from the shared completion counter.
struct Progress {
    bar: ProgressBar,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    fn start(config: &BenchConfig, shared: Arc<Shared>, start: Instant) -> Self {
        if !config.progress {
            return Progress {
                bar: ProgressBar::hidden(),
                ticker: None,
            };
        }
        // Duration runs show time; total runs show operations.
        let (len, template) = match config.limit {
            Limit::Duration(d) => (
                u64::try_from(d.as_millis()).unwrap_or(u64::MAX),
                "{spinner} [{bar:40}] {elapsed}/{duration} {msg}",
            ),
            Limit::Total(total) => (total, "{spinner} [{bar:40}] {pos}/{len} ops {msg}"),
        };
        let bar = ProgressBar::new(len);
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        let by_time = matches!(config.limit, Limit::Duration(_));
        let ticker_bar = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                let done = shared.completed.load(Ordering::Relaxed);
                let elapsed = start.elapsed();
                let rate = throughput(done, elapsed);
                if by_time {
                    ticker_bar.set_position(u64::try_from(elapsed.as_millis()).unwrap_or(len));
                    ticker_bar.set_message(format!("{done} ops, {rate:.0} ops/s"));
                } else {
                    ticker_bar.set_position(done);
                    ticker_bar.set_message(format!("{rate:.0} ops/s"));
                }
            }
        });
        Progress {
            bar,
            ticker: Some(ticker),
        }
    }

    fn finish(self) {
        if let Some(t) = self.ticker {
            t.abort();
        }
        self.bar.finish_and_clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_covers_the_key_space_uniformly() {
        let mut rng = SplitMix64(1);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[rng.below(10) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn total_limit_hands_out_exactly_total() {
        let shared = Shared {
            limit: RunLimit::Total {
                issued: AtomicU64::new(0),
                total: 3,
            },
            completed: AtomicU64::new(0),
        };
        let granted = (0..10).filter(|_| shared.take_one()).count();
        assert_eq!(granted, 3);
    }
}
