//! `synod node` (one member, etcd's flags) and `synod dev` (a local 3-member cluster).
//!
//! Each setting comes from, in order of precedence: the command line, a `SYNOD_*` environment
//! variable, the TOML file given by `--config-file` (keys are the flag names without the
//! dashes, e.g. `listen-client-urls = "http://127.0.0.1:2379"`), then the default.

use crate::logging::{init_logging, init_logging_with, DistributedTracing, LogFormat};
use anyhow::{bail, Context};
use clap::Args;
use node::config::{
    is_https, parse_initial_cluster, single_url, split_urls, url_addr, ClientTls, PeerTls,
};
use node::{ClusterState, NodeConfig};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The cluster token of a member started without `--initial-cluster-token`.
pub const DEFAULT_CLUSTER_TOKEN: &str = "synod-cluster";

/// etcd's default `--election-timeout`, in milliseconds: the shortest lease TTL follows it when
/// `--election-timeout` is not given.
const ETCD_ELECTION_TIMEOUT_MS: u64 = 1000;

/// Flags of `synod node`, named as etcd names them.
#[derive(Args, Debug, Default)]
pub struct NodeArgs {
    /// Human-readable name of this member; must appear in --initial-cluster.
    #[arg(long, env = "SYNOD_NAME")]
    name: Option<String>,
    /// Directory for this member's log, snapshots and meta file [default: <name>.synod].
    #[arg(long, env = "SYNOD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// URL to listen on for client (etcd v3 gRPC) traffic [default: http://127.0.0.1:2379].
    #[arg(long, env = "SYNOD_LISTEN_CLIENT_URLS")]
    listen_client_urls: Option<String>,
    /// Client URLs told to clients through the member list [default: the listen URL].
    #[arg(long, env = "SYNOD_ADVERTISE_CLIENT_URLS")]
    advertise_client_urls: Option<String>,
    /// URL to listen on for peer (Paxos) traffic [default: http://127.0.0.1:2380].
    #[arg(long, env = "SYNOD_LISTEN_PEER_URLS")]
    listen_peer_urls: Option<String>,
    /// This member's peer URL as the others reach it; must match its --initial-cluster entry
    /// [default: the listen peer URL].
    #[arg(long, env = "SYNOD_INITIAL_ADVERTISE_PEER_URLS")]
    initial_advertise_peer_urls: Option<String>,
    /// Every member of the cluster: name=peer-url,... [default: <name>=<advertise peer url>].
    #[arg(long, env = "SYNOD_INITIAL_CLUSTER")]
    initial_cluster: Option<String>,
    /// `new` when the members start together for the first time; `existing` to rejoin a
    /// cluster that runs (a member with an empty data directory then rebuilds as a non-voting
    /// learner, since it may have voted before losing its disk) [default: new].
    #[arg(long, env = "SYNOD_INITIAL_CLUSTER_STATE")]
    initial_cluster_state: Option<String>,
    /// A token unique to this cluster, so clusters built on the same URLs refuse each other
    /// [default: synod-cluster].
    #[arg(long, env = "SYNOD_INITIAL_CLUSTER_TOKEN")]
    initial_cluster_token: Option<String>,
    /// Milliseconds between heartbeats of the leader [default: 50].
    #[arg(long, env = "SYNOD_HEARTBEAT_INTERVAL")]
    heartbeat_interval: Option<u64>,
    /// Milliseconds without a leader before a member seeks election [default: 300].
    #[arg(long, env = "SYNOD_ELECTION_TIMEOUT")]
    election_timeout: Option<u64>,
    /// Largest client request in bytes [default: 1572864, etcd's 1.5 MiB].
    #[arg(long, env = "SYNOD_MAX_REQUEST_BYTES")]
    max_request_bytes: Option<usize>,
    /// Most operations in one transaction [default: 128].
    #[arg(long, env = "SYNOD_MAX_TXN_OPS")]
    max_txn_ops: Option<usize>,
    /// Store size in bytes above which writes are refused with the NOSPACE alarm until
    /// compaction frees space [default: 2147483648, etcd's 2 GiB].
    #[arg(long, env = "SYNOD_QUOTA_BACKEND_BYTES")]
    quota_backend_bytes: Option<u64>,
    /// Take a snapshot and compact the log every this many applied slots [default: 10000].
    #[arg(long, env = "SYNOD_SNAPSHOT_COUNT")]
    snapshot_count: Option<u64>,
    /// bcrypt's cost for the passwords this member hashes (etcd's flag) [default: 10; 4 to 31].
    #[arg(long, env = "SYNOD_BCRYPT_COST")]
    bcrypt_cost: Option<u32>,
    /// Kind of auth token (etcd's flag): `simple`, or
    /// `jwt,pub-key=FILE,priv-key=FILE,sign-method=RS256,ttl=5m` (RS/PS 256/384/512, ES256,
    /// ES384, HS256/384/512; an HMAC key is the priv-key file's bytes) [default: simple].
    #[arg(long, env = "SYNOD_AUTH_TOKEN")]
    auth_token: Option<String>,
    /// Seconds a simple token lives after its last use at a member (etcd's flag) [default: 300].
    #[arg(long, env = "SYNOD_AUTH_TOKEN_TTL")]
    auth_token_ttl: Option<u64>,
    /// Quorum rule of a new cluster (Flexible Paxos): majority, flexible:P1,P2 (phase-1 and
    /// phase-2 sizes, P1 + P2 > members: `flexible:4,2` on 5 lets two members choose a
    /// value and needs four to elect a leader), grid:RxC (R x C = members; phase 1 a full
    /// column, phase 2 a full row) or weighted:W1,...,Wn/P1,P2 (a weight per member in
    /// --initial-cluster order, thresholds whose sum exceeds the total). Refused when phase-1
    /// and phase-2 quorums need not meet. Every member must be given the same rule; it is
    /// recorded in the data directory, so a restart keeps it [default: majority].
    #[arg(long, env = "SYNOD_QUORUMS")]
    quorums: Option<String>,
    /// This member is an auxiliary acceptor of Cheap Paxos (`--quorums cheap:MAIN`: the
    /// members after the first MAIN by name): it votes only while a main acceptor is down,
    /// keeps no store and refuses clients (they are pointed at the mains). Refused without a
    /// cheap rule, on a main's place, and missing on an auxiliary's place.
    #[arg(long, env = "SYNOD_AUXILIARY")]
    auxiliary: bool,
    /// Leader leases (experimental): the leader answers linearizable reads from its own
    /// state while a quorum's grants hold, with no read-index round. The lease is the
    /// election timeout less a tick and the margin for --max-clock-drift-ppm; a new leader
    /// waits out the old lease, so a leadership transfer takes up to an election timeout.
    /// Every member must be given the same setting (it is part of the cluster's id).
    #[arg(long, env = "SYNOD_EXPERIMENTAL_LEADER_LEASE")]
    experimental_leader_lease: bool,
    /// With --experimental-leader-lease: the bound on how fast or slow any member's
    /// monotonic clock may run, in parts per million (at least 500, what NTP may slew)
    /// [default: 1000].
    #[arg(long, env = "SYNOD_MAX_CLOCK_DRIFT_PPM")]
    max_clock_drift_ppm: Option<u32>,
    /// Size in bytes of each write-ahead log segment, preallocated when created; compacted
    /// segments are reused [default: 67108864 (64 MiB); 16 MiB to 4 GiB].
    #[arg(long, env = "SYNOD_WAL_SEGMENT_BYTES")]
    wal_segment_bytes: Option<u64>,
    /// How --auto-compaction-retention is counted: `periodic` (a time span) or `revision`
    /// (a number of revisions) [default: periodic].
    #[arg(long, env = "SYNOD_AUTO_COMPACTION_MODE")]
    auto_compaction_mode: Option<String>,
    /// History the leader keeps when it compacts on its own: periodic mode, a span (`1h`,
    /// `30m`, `90s`, or a whole number of hours), compacted every tenth of it; revision mode,
    /// that many revisions, looked at every 5 minutes. `0` turns it off [default: 0].
    #[arg(long, env = "SYNOD_AUTO_COMPACTION_RETENTION")]
    auto_compaction_retention: Option<String>,
    /// How often an idle watcher created with `progress_notify` is told the current revision
    /// (etcd's flag; a Go duration, raised to 100ms; `0` keeps the default) [default: 10m].
    #[arg(long, env = "SYNOD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL")]
    experimental_watch_progress_notify_interval: Option<String>,
    /// TLS: this member's certificate chain (PEM) for clients; needs https:// client URLs.
    #[arg(long, env = "SYNOD_CERT_FILE")]
    cert_file: Option<PathBuf>,
    /// TLS: the private key (PEM) of --cert-file.
    #[arg(long, env = "SYNOD_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// TLS: the CAs (PEM) that client certificates must chain to; as in etcd, giving it
    /// requires every client to present one.
    #[arg(long, env = "SYNOD_TRUSTED_CA_FILE")]
    trusted_ca_file: Option<PathBuf>,
    /// TLS: refuse clients that do not present a certificate from --trusted-ca-file.
    #[arg(long, env = "SYNOD_CLIENT_CERT_AUTH")]
    client_cert_auth: bool,
    /// TLS between members: this member's certificate chain (PEM), presented both ways; it
    /// must hold the member's peer IP address as a SAN. Needs https:// peer URLs.
    #[arg(long, env = "SYNOD_PEER_CERT_FILE")]
    peer_cert_file: Option<PathBuf>,
    /// TLS between members: the private key (PEM) of --peer-cert-file.
    #[arg(long, env = "SYNOD_PEER_KEY_FILE")]
    peer_key_file: Option<PathBuf>,
    /// TLS between members: the CAs (PEM) every member's certificate must chain to.
    #[arg(long, env = "SYNOD_PEER_TRUSTED_CA_FILE")]
    peer_trusted_ca_file: Option<PathBuf>,
    /// TLS between members: require peers' certificates (always so with
    /// --peer-trusted-ca-file; accepted for etcd's command lines).
    #[arg(long, env = "SYNOD_PEER_CLIENT_CERT_AUTH")]
    peer_client_cert_auth: bool,
    /// Also serve /metrics and the health endpoints (/health, /livez, /readyz, /version) on
    /// these URLs (comma-separated; https:// ones with the client TLS flags), as etcd's flag.
    /// The client port serves them too.
    #[arg(long, env = "SYNOD_LISTEN_METRICS_URLS")]
    listen_metrics_urls: Option<String>,
    /// Log lines as `text` (human-readable) or `json` (one object per line) [default: text].
    #[arg(long, env = "SYNOD_LOG_FORMAT")]
    log_format: Option<String>,
    /// Least severe log level written: debug, info, warn or error (etcd's names; a
    /// tracing filter such as `info,node=debug` also works) [default: info, or $SYNOD_LOG].
    #[arg(long, env = "SYNOD_LOG_LEVEL")]
    log_level: Option<String>,
    /// Export spans of client writes to an OpenTelemetry collector (OTLP over gRPC), as
    /// etcd 3.5's flag; off by default.
    #[arg(long, env = "SYNOD_EXPERIMENTAL_ENABLE_DISTRIBUTED_TRACING")]
    experimental_enable_distributed_tracing: bool,
    /// The collector's address, host:port or a URL [default: localhost:4317].
    #[arg(long, env = "SYNOD_EXPERIMENTAL_DISTRIBUTED_TRACING_ADDRESS")]
    experimental_distributed_tracing_address: Option<String>,
    /// The service name of the exported spans [default: synod].
    #[arg(long, env = "SYNOD_EXPERIMENTAL_DISTRIBUTED_TRACING_SERVICE_NAME")]
    experimental_distributed_tracing_service_name: Option<String>,
    /// The instance id of the exported spans (`service.instance.id`), unique per member
    /// [default: none].
    #[arg(long, env = "SYNOD_EXPERIMENTAL_DISTRIBUTED_TRACING_INSTANCE_ID")]
    experimental_distributed_tracing_instance_id: Option<String>,
    /// A TOML file with any of these settings (keys are the flag names without dashes).
    #[arg(long, env = "SYNOD_CONFIG_FILE")]
    config_file: Option<PathBuf>,
    /// Test only (chaos runs): abort the process the Nth time it reaches POINT[:N], one of
    /// before-wal-sync, after-wal-sync, before-apply, after-apply, during-snapshot,
    /// during-compaction.
    #[arg(long, hide = true)]
    test_crash_at: Option<String>,
    /// Test only (chaos runs): delay every log sync's completion by this many milliseconds.
    #[arg(long, hide = true)]
    test_slow_fsync_ms: Option<u64>,
    /// Test only: run with a planted bug (progress-ahead-of-watchers); refused unless built
    /// with the planted-bugs feature.
    #[arg(long, hide = true)]
    test_plant_bug: Vec<String>,
}

/// The same settings, from a TOML file.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileSettings {
    name: Option<String>,
    data_dir: Option<PathBuf>,
    listen_client_urls: Option<String>,
    advertise_client_urls: Option<String>,
    listen_peer_urls: Option<String>,
    initial_advertise_peer_urls: Option<String>,
    initial_cluster: Option<String>,
    initial_cluster_state: Option<String>,
    initial_cluster_token: Option<String>,
    heartbeat_interval: Option<u64>,
    election_timeout: Option<u64>,
    max_request_bytes: Option<usize>,
    max_txn_ops: Option<usize>,
    quota_backend_bytes: Option<u64>,
    snapshot_count: Option<u64>,
    quorums: Option<String>,
    auxiliary: Option<bool>,
    experimental_leader_lease: Option<bool>,
    max_clock_drift_ppm: Option<u32>,
    wal_segment_bytes: Option<u64>,
    auto_compaction_mode: Option<String>,
    auto_compaction_retention: Option<String>,
    experimental_watch_progress_notify_interval: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    trusted_ca_file: Option<PathBuf>,
    client_cert_auth: Option<bool>,
    peer_cert_file: Option<PathBuf>,
    peer_key_file: Option<PathBuf>,
    peer_trusted_ca_file: Option<PathBuf>,
    peer_client_cert_auth: Option<bool>,
    listen_metrics_urls: Option<String>,
    log_format: Option<String>,
    log_level: Option<String>,
    experimental_enable_distributed_tracing: Option<bool>,
    experimental_distributed_tracing_address: Option<String>,
    experimental_distributed_tracing_service_name: Option<String>,
    experimental_distributed_tracing_instance_id: Option<String>,
}

fn read_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

/// One side's TLS flags (the client port's, or with `--peer-` in front, the members').
struct TlsFlags {
    /// `""` for the client port, `"peer-"` between members.
    prefix: &'static str,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    trusted_ca_file: Option<PathBuf>,
    client_cert_auth: bool,
}

impl TlsFlags {
    /// The first of these flags that is set, by its name.
    fn first_given(&self) -> Option<String> {
        let given = [
            self.cert_file.as_ref().map(|_| "cert-file"),
            self.key_file.as_ref().map(|_| "key-file"),
            self.trusted_ca_file.as_ref().map(|_| "trusted-ca-file"),
            self.client_cert_auth.then_some("client-cert-auth"),
        ];
        let name = given.into_iter().flatten().next()?;
        Some(format!("--{}{name}", self.prefix))
    }
}

/// TLS on the client port from its flags: on exactly when the client URL is `https://`, and
/// then with a certificate and key. A TLS flag beside an `http://` URL is refused rather than
/// ignored, so a member never serves in the clear by mistake.
fn client_tls(https: bool, url: &str, flags: TlsFlags) -> anyhow::Result<Option<ClientTls>> {
    if !https {
        if let Some(flag) = flags.first_given() {
            bail!("{flag} is set but --listen-client-urls is {url}: use https:// to serve TLS, or drop the TLS flags");
        }
        return Ok(None);
    }
    let (Some(cert_file), Some(key_file)) = (flags.cert_file, flags.key_file) else {
        bail!("--listen-client-urls is {url}: TLS needs --cert-file and --key-file (PEM files)");
    };
    if flags.client_cert_auth && flags.trusted_ca_file.is_none() {
        bail!("--client-cert-auth needs --trusted-ca-file, the CAs (PEM) client certificates must chain to");
    }
    Ok(Some(ClientTls {
        cert_file,
        key_file,
        trusted_ca_file: flags.trusted_ca_file,
        client_cert_auth: flags.client_cert_auth,
    }))
}

/// TLS between members from its flags: on exactly when the peer URLs are `https://`, and then
/// with a certificate, its key and the CAs to check the other members against (peers'
/// certificates are always required, so `--peer-client-cert-auth` changes nothing).
fn peer_tls(https: bool, url: &str, flags: TlsFlags) -> anyhow::Result<Option<PeerTls>> {
    if !https {
        if let Some(flag) = flags.first_given() {
            bail!("{flag} is set but this member's peer URL is {url}: use https:// peer URLs (in --initial-cluster too) to encrypt traffic between members, or drop the peer TLS flags");
        }
        return Ok(None);
    }
    let (Some(cert_file), Some(key_file), Some(trusted_ca_file)) =
        (flags.cert_file, flags.key_file, flags.trusted_ca_file)
    else {
        bail!("the peer URL is {url}: TLS between members needs --peer-cert-file, --peer-key-file and --peer-trusted-ca-file (PEM files)");
    };
    Ok(Some(PeerTls {
        cert_file,
        key_file,
        trusted_ca_file,
    }))
}

/// Resolves flags, environment, file and defaults into a member's configuration.
pub fn resolve(args: NodeArgs) -> anyhow::Result<NodeConfig> {
    let file = match &args.config_file {
        Some(p) => read_file(p)?,
        None => FileSettings::default(),
    };
    let name = args.name.or(file.name).unwrap_or_else(|| "default".into());
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from(format!("{name}.synod")));
    let listen_client = args
        .listen_client_urls
        .or(file.listen_client_urls)
        .unwrap_or_else(|| "http://127.0.0.1:2379".into());
    let (listen_client_url, listen_client) = single_url("--listen-client-urls", &listen_client)?;
    let client_tls = client_tls(
        is_https(&listen_client_url),
        &listen_client_url,
        TlsFlags {
            prefix: "",
            cert_file: args.cert_file.or(file.cert_file),
            key_file: args.key_file.or(file.key_file),
            trusted_ca_file: args.trusted_ca_file.or(file.trusted_ca_file),
            client_cert_auth: args.client_cert_auth || file.client_cert_auth.unwrap_or(false),
        },
    )?;
    let advertise_client = args
        .advertise_client_urls
        .or(file.advertise_client_urls)
        .map_or_else(|| vec![listen_client_url.clone()], |s| split_urls(&s));
    let listen_peer = args
        .listen_peer_urls
        .or(file.listen_peer_urls)
        .unwrap_or_else(|| "http://127.0.0.1:2380".into());
    let (listen_peer_url, listen_peer) = single_url("--listen-peer-urls", &listen_peer)?;
    let advertise_peer = args
        .initial_advertise_peer_urls
        .or(file.initial_advertise_peer_urls)
        .unwrap_or_else(|| listen_peer_url.clone());
    let (advertise_peer, _) = single_url("--initial-advertise-peer-urls", &advertise_peer)?;
    let token = args
        .initial_cluster_token
        .or(file.initial_cluster_token)
        .unwrap_or_else(|| DEFAULT_CLUSTER_TOKEN.into());
    let cluster = args
        .initial_cluster
        .or(file.initial_cluster)
        .unwrap_or_else(|| format!("{name}={advertise_peer}"));
    let initial_cluster = parse_initial_cluster(&cluster, &token)?;
    let peer_https = is_https(&advertise_peer);
    if let Some(odd) = std::iter::once(listen_peer_url.as_str())
        .chain(initial_cluster.iter().map(|p| p.peer_url.as_str()))
        .find(|url| is_https(url) != peer_https)
    {
        bail!("peer URLs mix http:// and https:// ({odd} against {advertise_peer}): every member must use TLS between members, or none");
    }
    let peer_tls = peer_tls(
        peer_https,
        &advertise_peer,
        TlsFlags {
            prefix: "peer-",
            cert_file: args.peer_cert_file.or(file.peer_cert_file),
            key_file: args.peer_key_file.or(file.peer_key_file),
            trusted_ca_file: args.peer_trusted_ca_file.or(file.peer_trusted_ca_file),
            client_cert_auth: args.peer_client_cert_auth
                || file.peer_client_cert_auth.unwrap_or(false),
        },
    )?;
    if let Some(listed) = initial_cluster.iter().find(|p| p.name == name) {
        if listed.peer_url.trim_end_matches('/') != advertise_peer.trim_end_matches('/') {
            bail!(node::config::ConfigError::PeerUrlMismatch {
                name,
                advertised: advertise_peer,
                listed: listed.peer_url.clone(),
            });
        }
    }
    let state = args
        .initial_cluster_state
        .or(file.initial_cluster_state)
        .unwrap_or_else(|| "new".into());
    let cluster_state = ClusterState::parse(&state)?;
    let mut config = NodeConfig::defaults(&name, data_dir, listen_client, listen_peer, &token);
    config.initial_cluster = initial_cluster;
    config.cluster_state = cluster_state;
    config.advertise_client_urls = advertise_client;
    config.client_tls = client_tls;
    if let Some(urls) = args.listen_metrics_urls.or(file.listen_metrics_urls) {
        for url in split_urls(&urls) {
            let addr = url_addr("--listen-metrics-urls", &url)?;
            config.listen_metrics.push((addr, is_https(&url)));
        }
    }
    config.peer_tls = peer_tls;
    for url in &config.advertise_client_urls {
        url_addr("--advertise-client-urls", url)?;
    }
    let heartbeat_ms = args
        .heartbeat_interval
        .or(file.heartbeat_interval)
        .unwrap_or(50);
    let election_flag = args.election_timeout.or(file.election_timeout);
    let election_ms = election_flag.unwrap_or(300);
    // Without the flag, the shortest lease is what etcd gives with its default election
    // timeout (1 s: `lease grant 0` is a 2 s lease), not what Synod's shorter default would.
    if election_flag.is_none() {
        config.lease_election_timeout = Some(Duration::from_millis(ETCD_ELECTION_TIMEOUT_MS));
    }
    if heartbeat_ms == 0 || election_ms < 2 * heartbeat_ms {
        bail!(
            "--election-timeout ({election_ms} ms) must be at least twice --heartbeat-interval ({heartbeat_ms} ms), which must be positive"
        );
    }
    // One tick is a tenth of the heartbeat interval, at least a millisecond.
    let tick_ms = (heartbeat_ms / 5).max(1);
    config.tick = Duration::from_millis(tick_ms);
    config.heartbeat_ticks = u32::try_from(heartbeat_ms / tick_ms).unwrap_or(u32::MAX);
    config.election_ticks = u32::try_from(election_ms / tick_ms).unwrap_or(u32::MAX);
    if let Some(v) = args.max_request_bytes.or(file.max_request_bytes) {
        config.request_bytes_max = v;
    }
    if let Some(v) = args.max_txn_ops.or(file.max_txn_ops) {
        config.txn_ops_max = v;
    }
    if let Some(v) = args.quota_backend_bytes.or(file.quota_backend_bytes) {
        config.quota_bytes = v;
    }
    if let Some(v) = args.snapshot_count.or(file.snapshot_count) {
        config.snapshot_every_slots = v;
    }
    if let Some(v) = args.bcrypt_cost {
        config.bcrypt_cost = v;
    }
    if let Some(spec) = &args.auth_token {
        // Checked (and its key files read) here, so that a bad flag stops the command at once.
        node::tokens::Tokens::from_flags(spec, config.auth_token_ttl)?;
        config.auth_token = spec.clone();
    }
    if let Some(seconds) = args.auth_token_ttl {
        if seconds == 0 {
            anyhow::bail!("--auth-token-ttl must be at least 1 second");
        }
        config.auth_token_ttl = std::time::Duration::from_secs(seconds);
    }
    if let Some(v) = args.wal_segment_bytes.or(file.wal_segment_bytes) {
        config.wal_segment_bytes = v;
    }
    config.leader_lease = match (
        args.experimental_leader_lease || file.experimental_leader_lease.unwrap_or(false),
        args.max_clock_drift_ppm.or(file.max_clock_drift_ppm),
    ) {
        (true, ppm) => Some(paxos::multi::LeaderLease {
            max_drift_ppm: ppm.unwrap_or(node::config::LEASE_DRIFT_PPM_DEFAULT),
        }),
        (false, None) => None,
        (false, Some(_)) => {
            bail!("--max-clock-drift-ppm is the bound of leader leases: give it with --experimental-leader-lease")
        }
    };
    if let Some(rule) = args.quorums.or(file.quorums) {
        config.quorum = rule
            .parse()
            .map_err(|e: paxos::QuorumParseError| anyhow::anyhow!("--quorums: {e}"))?;
    }
    config.auxiliary = args.auxiliary || file.auxiliary.unwrap_or(false);
    config.auto_compaction = auto_compaction(
        args.auto_compaction_mode
            .or(file.auto_compaction_mode)
            .as_deref()
            .unwrap_or("periodic"),
        args.auto_compaction_retention
            .or(file.auto_compaction_retention)
            .as_deref()
            .unwrap_or("0"),
    )?;
    if let Some(text) = args
        .experimental_watch_progress_notify_interval
        .or(file.experimental_watch_progress_notify_interval)
    {
        let every = node::tokens::parse_go_duration(&text)
            .map_err(|e| anyhow::anyhow!("--experimental-watch-progress-notify-interval: {e}"))?;
        // etcd: zero keeps the default, and anything shorter than 100ms is raised to it.
        if !every.is_zero() {
            config.watch_progress_every = every.max(WATCH_PROGRESS_EVERY_MIN);
        }
    }
    if let Some(spec) = &args.test_crash_at {
        config.test_faults.crash_at = Some(node::CrashPoint::parse(spec)?);
    }
    config.test_faults.slow_fsync = args.test_slow_fsync_ms.map(Duration::from_millis);
    for name in &args.test_plant_bug {
        if !cfg!(feature = "planted-bugs") {
            anyhow::bail!(
                "--test-plant-bug: this build has no planted bugs (feature planted-bugs)"
            );
        }
        let bug = node::NodeBug::from_name(name)
            .ok_or_else(|| anyhow::anyhow!("--test-plant-bug: no planted bug named {name:?}"))?;
        config.test_faults.planted.push(bug);
    }
    config.validate()?;
    Ok(config)
}

/// etcd's `minWatchProgressInterval`: a shorter progress interval is raised to it.
const WATCH_PROGRESS_EVERY_MIN: Duration = Duration::from_millis(100);

/// etcd's auto-compaction flags as a policy; `None` when the retention is zero.
fn auto_compaction(mode: &str, retention: &str) -> anyhow::Result<Option<node::AutoCompaction>> {
    let retention = retention.trim();
    match mode {
        "periodic" => {
            let span = match retention.parse::<u64>() {
                // etcd's rule: a bare number counts hours.
                Ok(hours) => Duration::from_secs(hours.saturating_mul(3600)),
                Err(_) => parse_span(retention).with_context(|| {
                    format!(
                        "--auto-compaction-retention={retention}: in periodic mode, a span such \
                         as 1h, 30m or 90s, or a whole number of hours"
                    )
                })?,
            };
            Ok((!span.is_zero()).then_some(node::AutoCompaction::Periodic(span)))
        }
        "revision" => {
            let keep: u64 = retention.parse().with_context(|| {
                format!(
                    "--auto-compaction-retention={retention}: in revision mode, a number of \
                     revisions to keep"
                )
            })?;
            Ok((keep > 0).then_some(node::AutoCompaction::Revision {
                keep,
                every: node::config::AUTO_COMPACTION_REVISION_EVERY,
            }))
        }
        other => bail!("--auto-compaction-mode={other}: expected periodic or revision"),
    }
}

/// A span written as a sum of whole numbers with units: `1h30m`, `90s`, `500ms`.
fn parse_span(text: &str) -> anyhow::Result<Duration> {
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        bail!("empty");
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let n: u64 = number
            .parse()
            .with_context(|| format!("no number at {rest:?}"))?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        let one = match unit {
            "h" => Duration::from_secs(3600),
            "m" => Duration::from_secs(60),
            "s" => Duration::from_secs(1),
            "ms" => Duration::from_millis(1),
            other => bail!("unknown unit {other:?} (h, m, s or ms)"),
        };
        total = total.saturating_add(one.saturating_mul(u32::try_from(n).unwrap_or(u32::MAX)));
        rest = next;
    }
    Ok(total)
}

/// Waits for Ctrl-C or SIGTERM.
async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// `synod node`.
pub fn run(args: NodeArgs) -> anyhow::Result<bool> {
    // The file's settings count too, so read it once here for the logging and tracing keys.
    let file = match &args.config_file {
        Some(p) => read_file(p)?,
        None => FileSettings::default(),
    };
    let format = args
        .log_format
        .clone()
        .or(file.log_format)
        .map(|f| LogFormat::parse(&f))
        .transpose()?
        .unwrap_or_default();
    let distributed = (args.experimental_enable_distributed_tracing
        || file.experimental_enable_distributed_tracing == Some(true))
    .then(|| DistributedTracing {
        address: args
            .experimental_distributed_tracing_address
            .clone()
            .or(file.experimental_distributed_tracing_address)
            .unwrap_or_else(|| "localhost:4317".into()),
        service_name: args
            .experimental_distributed_tracing_service_name
            .clone()
            .or(file.experimental_distributed_tracing_service_name)
            .unwrap_or_else(|| "synod".into()),
        instance_id: args
            .experimental_distributed_tracing_instance_id
            .clone()
            .or(file.experimental_distributed_tracing_instance_id),
    });
    let level = args.log_level.clone().or(file.log_level);
    let runtime = runtime()?;
    // The exporter's gRPC channel lives on the runtime, so it is built inside it.
    let exporter = runtime
        .block_on(async { init_logging_with(level.as_deref(), format, distributed.as_ref()) })?;
    let config = resolve(args)?;
    let served = runtime.block_on(async move {
        let node = node::start(config).await?;
        let removed = tokio::select! {
            _ = stop_signal() => false,
            _ = node.removed() => true,
        };
        tracing::info!("stopping: finishing in-flight requests and syncing the log");
        node.shutdown().await?;
        if removed {
            // etcd's removed member exits too, and does not come back with the same data.
            tracing::warn!("exiting: this member was removed from the cluster");
        }
        anyhow::Ok(true)
    });
    if let Some(exporter) = exporter {
        // The spans still batched go out before the process ends.
        runtime.block_on(async move { exporter.shutdown().await });
    }
    served
}

/// Flags of `synod dev`.
#[derive(Args, Debug)]
pub struct DevArgs {
    /// Where the members keep their data (one directory each); reused on the next run.
    #[arg(long, default_value = "./synod-data")]
    data_dir: PathBuf,
    /// Client port of the first member; the others add 20000, 30000... as etcd's Procfile
    /// does (2379, 22379, 32379), and each member's peer port is its client port + 1.
    #[arg(long, default_value_t = 2379)]
    client_port: u16,
    /// Members to run (3 tolerates one failure; 5 tolerates two).
    #[arg(long, default_value_t = 3)]
    members: u16,
    /// Size in bytes of each member's log segments. Smaller than a production member's
    /// 64 MiB because every member of a local cluster shares one disk, and each keeps an
    /// active segment and a prepared spare preallocated whole.
    #[arg(long, default_value_t = node::config::WAL_SEGMENT_BYTES_MIN)]
    wal_segment_bytes: u64,
    /// Quorum rule of the cluster, as `synod node --quorums` takes it (e.g. flexible:4,2
    /// with --members 5) [default: majority].
    #[arg(long)]
    quorums: Option<String>,
}

/// Prints a line, ignoring a closed stdout: whoever started us stopped listening, which must
/// not turn a clean shutdown into a panic.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// `synod dev`: a local cluster in this process.
pub fn dev(args: DevArgs) -> anyhow::Result<bool> {
    init_logging();
    if !(1..=5).contains(&args.members) {
        bail!("--members must be between 1 and 5");
    }
    let ports: Vec<(u16, u16)> = (0..args.members)
        .map(|i| {
            let base = if i == 0 {
                args.client_port
            } else {
                args.client_port.wrapping_add(10_000 * (i + 1))
            };
            (base, base.wrapping_add(1))
        })
        .collect();
    let cluster: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, (_, p))| format!("n{}=http://127.0.0.1:{p}", i + 1))
        .collect();
    let cluster = cluster.join(",");
    let mut configs = Vec::new();
    for (i, (c, p)) in ports.iter().enumerate() {
        let args = NodeArgs {
            name: Some(format!("n{}", i + 1)),
            data_dir: Some(args.data_dir.join(format!("n{}", i + 1))),
            listen_client_urls: Some(format!("http://127.0.0.1:{c}")),
            listen_peer_urls: Some(format!("http://127.0.0.1:{p}")),
            initial_cluster: Some(cluster.clone()),
            initial_cluster_token: Some("synod-dev".into()),
            wal_segment_bytes: Some(args.wal_segment_bytes),
            quorums: args.quorums.clone(),
            ..NodeArgs::default()
        };
        let mut config = resolve(args)?;
        // Under a Cheap rule the members after the mains are the auxiliaries.
        config.auxiliary = config.has_auxiliary_place();
        configs.push(config);
    }
    let endpoints: Vec<String> = ports
        .iter()
        .map(|(c, _)| format!("http://127.0.0.1:{c}"))
        .collect();
    let endpoints = endpoints.join(",");
    runtime()?.block_on(async move {
        // Started together: a new cluster's members wait for each other's answers. The first
        // member that cannot start (a port taken, a bad data directory) ends the whole run at
        // once with its error; the others would otherwise wait for it forever.
        let count = configs.len();
        let mut starting = tokio::task::JoinSet::new();
        for (i, c) in configs.into_iter().enumerate() {
            starting.spawn(async move { (i, node::start(c).await) });
        }
        let mut started: Vec<Option<node::Node>> = (0..count).map(|_| None).collect();
        while let Some(joined) = starting.join_next().await {
            let (i, result) = joined.context("a member's start panicked")?;
            match result {
                Ok(n) => started[i] = Some(n),
                Err(e) => {
                    starting.abort_all();
                    return Err(e.context(format!("member n{} cannot start", i + 1)));
                }
            }
        }
        let nodes: Vec<node::Node> = started.into_iter().flatten().collect();
        debug_assert_eq!(nodes.len(), count);
        say(&format!(
            "synod dev: {} members running, data under {}",
            nodes.len(),
            args.data_dir.display()
        ));
        say(&format!("  client endpoints: {endpoints}"));
        say(&format!(
            "  try: ETCDCTL_API=3 etcdctl --endpoints={endpoints} put greeting hello"
        ));
        say(&format!(
            "       ETCDCTL_API=3 etcdctl --endpoints={endpoints} get greeting"
        ));
        say(&format!(
            "       ETCDCTL_API=3 etcdctl --endpoints={endpoints} endpoint status -w table"
        ));
        let first = endpoints.split(',').next().unwrap_or_default();
        say(&format!(
            "  metrics: {first}/metrics (Prometheus; every client URL serves it), health: {first}/health"
        ));
        say("  Ctrl-C stops the cluster; run again to reuse its data.");
        stop_signal().await;
        say("stopping...");
        for n in nodes {
            n.shutdown().await?;
        }
        say("stopped cleanly");
        Ok(true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(name: &str) -> NodeArgs {
        NodeArgs {
            name: Some(name.into()),
            listen_client_urls: Some("http://127.0.0.1:3379".into()),
            listen_peer_urls: Some("http://127.0.0.1:3380".into()),
            ..NodeArgs::default()
        }
    }

    #[test]
    fn auto_compaction_flags_read_as_etcd_reads_them() {
        use node::AutoCompaction::{Periodic, Revision};
        let policy = |mode: &str, retention: &str| auto_compaction(mode, retention);
        assert_eq!(policy("periodic", "0").unwrap(), None, "off by default");
        assert_eq!(
            policy("periodic", "2").unwrap(),
            Some(Periodic(Duration::from_secs(7200))),
            "a bare number counts hours"
        );
        assert_eq!(
            policy("periodic", "1h30m").unwrap(),
            Some(Periodic(Duration::from_secs(5400)))
        );
        assert_eq!(
            policy("periodic", "1500ms").unwrap(),
            Some(Periodic(Duration::from_millis(1500)))
        );
        assert_eq!(
            policy("revision", "1000").unwrap(),
            Some(Revision {
                keep: 1000,
                every: node::config::AUTO_COMPACTION_REVISION_EVERY
            })
        );
        assert_eq!(policy("revision", "0").unwrap(), None);
        let refused = |mode: &str, retention: &str, says: &str| {
            let e = format!("{:#}", policy(mode, retention).unwrap_err());
            assert!(e.contains(says), "{mode} {retention}: {e}");
        };
        refused("periodic", "1d", "unknown unit");
        refused("periodic", "h", "periodic mode");
        refused("revision", "1h", "number of revisions");
        refused("daily", "1", "expected periodic or revision");
    }

    #[test]
    fn the_watch_progress_interval_reads_as_etcds_flag() {
        let every = |text: Option<&str>| {
            let mut a = args("x");
            a.experimental_watch_progress_notify_interval = text.map(str::to_string);
            resolve(a).map(|c| c.watch_progress_every)
        };
        assert_eq!(every(None).unwrap(), Duration::from_secs(600), "etcd's 10m");
        assert_eq!(every(Some("1s")).unwrap(), Duration::from_secs(1));
        assert_eq!(every(Some("1m30s")).unwrap(), Duration::from_secs(90));
        assert_eq!(
            every(Some("0")).unwrap(),
            Duration::from_secs(600),
            "0 keeps it"
        );
        assert_eq!(every(Some("5ms")).unwrap(), WATCH_PROGRESS_EVERY_MIN);
        let e = format!("{:#}", every(Some("10")).unwrap_err());
        assert!(
            e.contains("--experimental-watch-progress-notify-interval"),
            "{e}"
        );
    }

    #[test]
    fn flags_beat_the_file_which_beats_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("synod.toml");
        std::fs::write(
            &file,
            "name = \"from-file\"\ndata-dir = \"/from/file\"\nmax-txn-ops = 7\nelection-timeout = 1000\nwal-segment-bytes = 33554432\n",
        )
        .unwrap();
        let mut a = args("from-flag");
        a.config_file = Some(file.clone());
        let c = resolve(a).unwrap();
        assert_eq!(c.name, "from-flag");
        assert_eq!(c.data_dir, PathBuf::from("/from/file"));
        assert_eq!(c.txn_ops_max, 7);
        assert_eq!(c.tick * c.election_ticks, Duration::from_millis(1000));
        assert_eq!(c.lease_election_timeout, None, "the member's own, as given");
        assert_eq!(c.wal_segment_bytes, 32 << 20);
        // Defaults: a one-member cluster of itself, data under <name>.synod.
        let c = resolve(args("solo")).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("solo.synod"));
        assert_eq!(c.initial_cluster.len(), 1);
        assert_eq!(c.initial_cluster[0].peer_url, "http://127.0.0.1:3380");
        assert_eq!(c.request_bytes_max, 1536 * 1024);
        assert_eq!(c.wal_segment_bytes, 64 << 20);
        // The shortest lease follows etcd's default election timeout, not Synod's shorter one.
        assert_eq!(c.tick * c.election_ticks, Duration::from_millis(300));
        assert_eq!(c.lease_election_timeout, Some(Duration::from_secs(1)));
    }

    #[test]
    fn leader_leases_are_off_by_default_and_refused_with_nonsense_bounds() {
        assert_eq!(resolve(args("x")).unwrap().leader_lease, None);
        let mut a = args("x");
        a.experimental_leader_lease = true;
        let c = resolve(a).unwrap();
        let lease = c.leader_lease.expect("leases on");
        assert_eq!(lease.max_drift_ppm, node::config::LEASE_DRIFT_PPM_DEFAULT);
        // Part of the cluster's id: members with and without leases refuse each other.
        assert_ne!(c.cluster_id(), resolve(args("x")).unwrap().cluster_id());
        let refused = |f: &dyn Fn(&mut NodeArgs)| {
            let mut a = args("x");
            f(&mut a);
            format!("{:#}", resolve(a).unwrap_err())
        };
        let e = refused(&|a| a.max_clock_drift_ppm = Some(2_000));
        assert!(e.contains("with --experimental-leader-lease"), "{e}");
        for ppm in [0, 499, 1_000_000, u32::MAX] {
            let e = refused(&|a| {
                a.experimental_leader_lease = true;
                a.max_clock_drift_ppm = Some(ppm);
            });
            assert!(e.contains("--max-clock-drift-ppm"), "{ppm}: {e}");
        }
        // An 80 % bound leaves 3 ticks of the default 30-tick election timeout: less than
        // the 5-tick heartbeat interval.
        let e = refused(&|a| {
            a.experimental_leader_lease = true;
            a.max_clock_drift_ppm = Some(800_000);
        });
        assert!(e.contains("before the next heartbeat"), "{e}");
    }

    #[test]
    fn bad_settings_are_refused_with_what_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "nmae = \"typo\"\n").unwrap();
        let mut a = args("x");
        a.config_file = Some(file);
        let e = format!("{:#}", resolve(a).unwrap_err());
        assert!(e.contains("nmae"), "{e}");
        let mut a = args("x");
        a.initial_cluster = Some("y=http://127.0.0.1:1".into());
        let e = format!("{:#}", resolve(a).unwrap_err());
        assert!(e.contains("not in --initial-cluster"), "{e}");
        let mut a = args("x");
        a.initial_cluster = Some("x=http://127.0.0.1:9".into());
        let e = format!("{:#}", resolve(a).unwrap_err());
        assert!(e.contains("does not match"), "{e}");
        let mut a = args("x");
        a.wal_segment_bytes = Some(1 << 20);
        let e = format!("{:#}", resolve(a).unwrap_err());
        assert!(
            e.contains("wal segment bytes 1048576 must be between 16 MiB"),
            "{e}"
        );
        let mut a = args("x");
        a.initial_cluster_state = Some("old".into());
        assert!(format!("{:#}", resolve(a).unwrap_err()).contains("new or existing"));
    }

    fn refusal(a: NodeArgs) -> String {
        resolve(a).expect_err("refused").to_string()
    }

    /// `args("n1")` with `client_url` to listen on.
    fn listening_on(client_url: &str) -> NodeArgs {
        NodeArgs {
            listen_client_urls: Some(client_url.into()),
            ..args("n1")
        }
    }

    #[test]
    fn tls_is_on_exactly_with_an_https_client_url_and_its_files() {
        let mut a = listening_on("https://127.0.0.1:3379");
        a.cert_file = Some("server.pem".into());
        a.key_file = Some("server-key.pem".into());
        a.trusted_ca_file = Some("ca.pem".into());
        a.client_cert_auth = true;
        let tls = resolve(a).expect("valid").client_tls.expect("TLS on");
        assert_eq!(tls.cert_file, PathBuf::from("server.pem"));
        assert!(tls.client_cert_auth);
        assert!(resolve(listening_on("http://127.0.0.1:3379"))
            .expect("valid")
            .client_tls
            .is_none());
    }

    #[test]
    fn half_a_tls_setup_is_refused_with_what_to_fix() {
        let e = refusal(listening_on("https://127.0.0.1:3379"));
        assert!(e.contains("--cert-file and --key-file"), "{e}");

        let mut a = listening_on("http://127.0.0.1:3379");
        a.cert_file = Some("server.pem".into());
        let e = refusal(a);
        assert!(
            e.contains("--cert-file is set") && e.contains("https://"),
            "{e}"
        );

        let mut a = listening_on("https://127.0.0.1:3379");
        a.cert_file = Some("server.pem".into());
        a.key_file = Some("server-key.pem".into());
        a.client_cert_auth = true;
        let e = refusal(a);
        assert!(e.contains("--trusted-ca-file"), "{e}");

        let mut a = listening_on("http://127.0.0.1:3379");
        a.listen_peer_urls = Some("https://127.0.0.1:3380".into());
        let e = refusal(a);
        assert!(e.contains("--peer-trusted-ca-file"), "{e}");

        let mut a = listening_on("http://127.0.0.1:3379");
        a.peer_cert_file = Some("peer.pem".into());
        let e = refusal(a);
        assert!(
            e.contains("--peer-cert-file is set") && e.contains("https://"),
            "{e}"
        );

        let mut a = listening_on("http://127.0.0.1:3379");
        a.listen_peer_urls = Some("https://127.0.0.1:3380".into());
        a.initial_cluster = Some("n1=https://127.0.0.1:3380,n2=http://127.0.0.1:3381".into());
        let e = refusal(a);
        assert!(e.contains("mix http:// and https://"), "{e}");
    }
}
