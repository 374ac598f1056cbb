//! A member's configuration, in etcd's vocabulary (name, data dir, client and peer URLs,
//! initial cluster, cluster state and token), and the ids derived from it.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

/// Whether the initial cluster is being created or the member joins one that exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterState {
    /// Every member of `--initial-cluster` starts together, empty.
    New,
    /// The cluster exists: a member with an empty data directory lost its data and must
    /// rejoin as a rebuilding learner (it may have voted before).
    Existing,
}

/// One member of the initial cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its name (`--name` on that member).
    pub name: String,
    /// Its advertised peer URL.
    pub peer_url: String,
    /// Where to reach it.
    pub peer_addr: SocketAddr,
    /// Its member id (derived; see [`member_id`]).
    pub id: u64,
}

/// Everything a member needs to run.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// This member's name; must appear in `initial_cluster`.
    pub name: String,
    /// Meta, log and snapshots live here.
    pub data_dir: PathBuf,
    /// Where clients connect.
    pub listen_client: SocketAddr,
    /// TLS on the client port (`https://` client URLs), or none (`http://`).
    pub client_tls: Option<ClientTls>,
    /// `--listen-metrics-urls`: more listeners serving `/metrics` and the health endpoints
    /// only (address, and whether `https://`: then with the client port's TLS settings).
    pub listen_metrics: Vec<(SocketAddr, bool)>,
    /// TLS between members (`https://` peer URLs), or none (`http://`).
    pub peer_tls: Option<PeerTls>,
    /// Client URLs told to clients (member list, status).
    pub advertise_client_urls: Vec<String>,
    /// Where peers connect.
    pub listen_peer: SocketAddr,
    /// Every member of the initial cluster, sorted by name.
    pub initial_cluster: Vec<Peer>,
    /// New cluster or existing.
    pub cluster_state: ClusterState,
    /// Separates clusters built from the same URLs.
    pub cluster_token: String,
    /// One protocol tick.
    pub tick: Duration,
    /// A follower seeks election after this many ticks without a leader (plus up to as many
    /// again of jitter).
    pub election_ticks: u32,
    /// A leader heartbeats every this many ticks.
    pub heartbeat_ticks: u32,
    /// The election timeout the shortest lease TTL is computed from (1.5 of it, in whole
    /// seconds, as etcd computes it from its own), if longer than this member's: `synod node`
    /// without `--election-timeout` sets etcd's default (1 s) here, so `lease grant 0` gets the
    /// 2 s etcd gives with its defaults, while Synod's own default timeout stays shorter. A
    /// longer minimum is only safer: a lease still outlives an election.
    pub lease_election_timeout: Option<Duration>,
    /// A client request (write or linearizable read) fails with "request timed out" after this.
    pub request_timeout: Duration,
    /// How often an idle watcher created with `progress_notify` is told the current revision
    /// (etcd's `--experimental-watch-progress-notify-interval`, 10 minutes by default).
    pub watch_progress_every: Duration,
    /// Largest client request accepted, in bytes (etcd's `--max-request-bytes`).
    pub request_bytes_max: usize,
    /// Most operations in one transaction level (etcd's `--max-txn-ops`).
    pub txn_ops_max: usize,
    /// Above this much live key-value data, writes are refused with etcd's NOSPACE alarm
    /// (etcd's `--quota-backend-bytes`).
    pub quota_bytes: u64,
    /// Client requests waiting in the node at most; beyond, "too many requests".
    pub pending_requests_max: usize,
    /// Take a snapshot and compact the log every this many applied slots.
    pub snapshot_every_slots: u64,
    /// Size of each write-ahead log segment file, preallocated when it is created. Compacted
    /// segments are reused, so a busy member's log settles at a few segments.
    pub wal_segment_bytes: u64,
    /// The leader compacts the store's history on its own (etcd's `--auto-compaction-mode`
    /// and `--auto-compaction-retention`); `None`: only clients compact (etcd's default).
    pub auto_compaction: Option<AutoCompaction>,
    /// bcrypt's cost for passwords hashed by this member (etcd's `--bcrypt-cost`, 4 to 31).
    pub bcrypt_cost: u32,
    /// etcd's `--auth-token`: `simple` (the default) or
    /// `jwt,pub-key=FILE,priv-key=FILE,sign-method=RS256,ttl=5m` ([`crate::tokens`]).
    pub auth_token: String,
    /// etcd's `--auth-token-ttl`: a simple token dies this long after its last use here.
    pub auth_token_ttl: Duration,
    /// Test-only faults (chaos runs); none in production.
    pub test_faults: TestFaults,
    /// The first configuration's quorum rule (`--quorums`; majority by default). Recorded in
    /// the data directory at initialization: a restart keeps the recorded rule, and the rule
    /// is part of the cluster's id, so members started with different rules refuse each other.
    pub quorum: paxos::QuorumSpec,
    /// Leader leases (`--experimental-leader-lease`, `--max-clock-drift-ppm`): the leader
    /// serves linearizable reads with no read-index round while its lease holds. Off
    /// (`None`) by default. Every member must run the same setting, so it is part of the
    /// cluster's id (a voter that grants no lease would let a leader read under none).
    pub leader_lease: Option<paxos::multi::LeaderLease>,
    /// `--auxiliary`: this member is an auxiliary acceptor of a Cheap Paxos cluster
    /// (`--quorums cheap:MAIN`; the members after the first MAIN by name). It takes part only
    /// while a main acceptor is down, holds no store it serves, and refuses clients
    /// (`crate::auxiliary`). Checked against the rule by [`NodeConfig::check_auxiliary`].
    pub auxiliary: bool,
}

/// The least drift bound leader leases accept, in parts per million: the member's ticks
/// follow `Instant` (CLOCK_MONOTONIC), which NTP may slew by up to 500 ppm on its own.
pub const LEASE_DRIFT_PPM_MIN: u32 = 500;
/// The drift bound leader leases use when none is given: twice the most NTP slews.
pub const LEASE_DRIFT_PPM_DEFAULT: u32 = 1_000;

/// What the leader's auto-compaction keeps of the store's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Keep the revisions written in the last this long: every tenth of it, compact through
    /// the newest revision seen at least this long ago.
    Periodic(Duration),
    /// Keep the last this many revisions: every `every`, compact through the store's revision
    /// minus this.
    Revision {
        /// Revisions kept.
        keep: u64,
        /// How often to look (etcd: 5 minutes).
        every: Duration,
    },
}

/// How often revision-mode auto-compaction looks, as etcd's does.
pub const AUTO_COMPACTION_REVISION_EVERY: Duration = Duration::from_secs(300);

/// Default of [`NodeConfig::wal_segment_bytes`], etcd's segment size.
pub const WAL_SEGMENT_BYTES_DEFAULT: u64 = 64 << 20;
/// Smallest [`NodeConfig::wal_segment_bytes`]: twice the log's largest record.
pub const WAL_SEGMENT_BYTES_MIN: u64 = 16 << 20;
/// Largest [`NodeConfig::wal_segment_bytes`].
pub const WAL_SEGMENT_BYTES_MAX: u64 = 4 << 30;

/// A named place in the member's work where a test can make the process die.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CrashPoint {
    /// A persist batch is about to go to the log (not yet written or synced).
    BeforeWalSync,
    /// The log reported a batch durable; the core has not been told yet.
    AfterWalSync,
    /// A chosen slot is about to be applied.
    BeforeApply,
    /// A chosen slot was applied; its clients are not answered yet.
    AfterApply,
    /// A snapshot's body is written but the file is not finished (synced and renamed).
    DuringSnapshot,
    /// A snapshot is durable and the log is about to be compacted.
    DuringCompaction,
}

impl CrashPoint {
    /// Every point, with its command-line name.
    pub const ALL: [(CrashPoint, &'static str); 6] = [
        (CrashPoint::BeforeWalSync, "before-wal-sync"),
        (CrashPoint::AfterWalSync, "after-wal-sync"),
        (CrashPoint::BeforeApply, "before-apply"),
        (CrashPoint::AfterApply, "after-apply"),
        (CrashPoint::DuringSnapshot, "during-snapshot"),
        (CrashPoint::DuringCompaction, "during-compaction"),
    ];

    /// Parses `name` or `name:N` (die the Nth time the point is reached; default the first).
    pub fn parse(spec: &str) -> Result<(CrashPoint, u32), ConfigError> {
        let (name, nth) = match spec.split_once(':') {
            Some((name, n)) => {
                let n = n.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    ConfigError::OutOfRange(format!(
                        "--test-crash-at {spec:?}: the count after ':' must be a number >= 1"
                    ))
                })?;
                (name, n)
            }
            None => (spec, 1),
        };
        let point = CrashPoint::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(p, _)| *p)
            .ok_or_else(|| {
                let names: Vec<&str> = CrashPoint::ALL.iter().map(|(_, n)| *n).collect();
                ConfigError::OutOfRange(format!(
                    "--test-crash-at {spec:?}: unknown point; one of {}",
                    names.join(", ")
                ))
            })?;
        Ok((point, nth))
    }
}

impl From<CrashPoint> for member::CrashPoint {
    fn from(p: CrashPoint) -> member::CrashPoint {
        match p {
            CrashPoint::BeforeWalSync => member::CrashPoint::BeforeWalSync,
            CrashPoint::AfterWalSync => member::CrashPoint::AfterWalSync,
            CrashPoint::BeforeApply => member::CrashPoint::BeforeApply,
            CrashPoint::AfterApply => member::CrashPoint::AfterApply,
            CrashPoint::DuringSnapshot => member::CrashPoint::DuringSnapshot,
            CrashPoint::DuringCompaction => member::CrashPoint::DuringCompaction,
        }
    }
}

/// Faults a chaos test asks a real member to inject into itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestFaults {
    /// Abort the process the Nth time this point is reached.
    pub crash_at: Option<(CrashPoint, u32)>,
    /// Delay every log sync's completion by this much (a slow disk).
    pub slow_fsync: Option<Duration>,
    /// Bugs planted on purpose, for a test to show it catches them. Honoured only when the
    /// crate is built with the `planted-bugs` feature ([`NodeBug::is_on`]).
    pub planted: Vec<NodeBug>,
}

/// A bug planted in the node on purpose (test only; see [`TestFaults::planted`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeBug {
    /// A `RequestProgress` is answered at once, not once every watcher on the stream has
    /// caught up, so the report can overtake events at or below its revision (etcd's issue
    /// 15220, which kube-apiserver relies on being fixed).
    ProgressAheadOfWatchers,
}

impl NodeBug {
    /// Every planted node bug.
    pub const ALL: [NodeBug; 1] = [NodeBug::ProgressAheadOfWatchers];

    /// Its kebab-case name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            NodeBug::ProgressAheadOfWatchers => "progress-ahead-of-watchers",
        }
    }

    /// The bug named `name`.
    pub fn from_name(name: &str) -> Option<NodeBug> {
        NodeBug::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Whether it is on in `faults` (never without the `planted-bugs` feature).
    pub fn is_on(self, faults: &TestFaults) -> bool {
        cfg!(feature = "planted-bugs") && faults.planted.contains(&self)
    }
}

/// Why a configuration is refused. Each says what to change.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A URL that is not `http://host:port`.
    #[error("{flag}: {url:?} is not a usable URL ({why})")]
    BadUrl {
        /// The flag it came from.
        flag: &'static str,
        /// The URL.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// More than one URL where one is supported.
    #[error("{flag}: only one URL is supported, got {count}")]
    OneUrlOnly {
        /// The flag.
        flag: &'static str,
        /// How many were given.
        count: usize,
    },
    /// An `--initial-cluster` entry that is not `name=url`.
    #[error("--initial-cluster: entry {entry:?} is not name=http://host:port")]
    BadClusterEntry {
        /// The entry.
        entry: String,
    },
    /// A name listed twice in `--initial-cluster`.
    #[error("--initial-cluster: {name:?} is listed twice")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// A quorum rule that does not fit the initial cluster (or whose quorums need not meet).
    #[error("--quorums {rule}: {why}")]
    Quorums {
        /// The rule given.
        rule: String,
        /// The core's reason.
        why: String,
    },
    /// `--auxiliary` that contradicts the quorum rule or this member's place in it.
    #[error("--auxiliary: {0}")]
    Auxiliary(String),
    /// This member's name is not in `--initial-cluster`.
    #[error("--name {name:?} is not in --initial-cluster ({listed}); add it or fix --name")]
    NotInCluster {
        /// This member's name.
        name: String,
        /// The names listed.
        listed: String,
    },
    /// This member's advertised peer URL differs from its `--initial-cluster` entry.
    #[error(
        "--initial-advertise-peer-urls {advertised:?} does not match {name}={listed:?} in --initial-cluster"
    )]
    PeerUrlMismatch {
        /// This member's name.
        name: String,
        /// Advertised.
        advertised: String,
        /// Listed.
        listed: String,
    },
    /// `--initial-cluster-state` other than new or existing.
    #[error("--initial-cluster-state must be new or existing, not {0:?}")]
    BadClusterState(String),
    /// A numeric setting out of range.
    #[error("{0}")]
    OutOfRange(String),
}

impl ClusterState {
    /// Parses `new` or `existing`.
    pub fn parse(s: &str) -> Result<ClusterState, ConfigError> {
        match s {
            "new" => Ok(ClusterState::New),
            "existing" => Ok(ClusterState::Existing),
            other => Err(ConfigError::BadClusterState(other.to_string())),
        }
    }
}

/// Splits a comma-separated URL list, dropping empty entries.
pub fn split_urls(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// TLS on the client port, in etcd's flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTls {
    /// `--cert-file`: this member's certificate chain, PEM.
    pub cert_file: PathBuf,
    /// `--key-file`: its private key, PEM.
    pub key_file: PathBuf,
    /// `--trusted-ca-file`: the CAs client certificates must chain to, PEM. As in etcd,
    /// giving it requires every client to present such a certificate.
    pub trusted_ca_file: Option<PathBuf>,
    /// `--client-cert-auth`: refuse clients without a certificate from a trusted CA (needs
    /// `trusted_ca_file`).
    pub client_cert_auth: bool,
}

/// TLS between members, in etcd's flags. Each member presents its certificate both when it
/// dials and when it accepts, and checks the other side's against the trusted CAs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerTls {
    /// `--peer-cert-file`: this member's certificate chain, PEM; it must name the member's
    /// peer address as an IP SAN, since members dial each other by address.
    pub cert_file: PathBuf,
    /// `--peer-key-file`: its private key, PEM.
    pub key_file: PathBuf,
    /// `--peer-trusted-ca-file`: the CAs every member's certificate must chain to, PEM.
    pub trusted_ca_file: PathBuf,
}

/// Resolves a URL, `http://host:port` or `https://host:port`, to one socket address. Whether
/// `https` is allowed where it appears is the caller's to check (see [`is_https`]).
pub fn url_addr(flag: &'static str, url: &str) -> Result<SocketAddr, ConfigError> {
    parse_url(flag, url).map(|(addr, _)| addr)
}

/// Whether `url` asks for TLS.
pub fn is_https(url: &str) -> bool {
    url.starts_with("https://")
}

fn parse_url(flag: &'static str, url: &str) -> Result<(SocketAddr, bool), ConfigError> {
    let bad = |why: &str| ConfigError::BadUrl {
        flag,
        url: url.to_string(),
        why: why.to_string(),
    };
    let (rest, https) = if let Some(rest) = url.strip_prefix("http://") {
        (rest, false)
    } else if let Some(rest) = url.strip_prefix("https://") {
        (rest, true)
    } else {
        return Err(bad("it must start with http:// or https://"));
    };
    let hostport = rest.trim_end_matches('/');
    if hostport.contains('/') {
        return Err(bad("a path is not allowed"));
    }
    let mut addrs = hostport
        .to_socket_addrs()
        .map_err(|e| bad(&format!("cannot resolve: {e}")))?;
    let addr = addrs.next().ok_or_else(|| bad("resolves to no address"))?;
    Ok((addr, https))
}

/// One URL from a list that must hold exactly one.
pub fn single_url(flag: &'static str, list: &str) -> Result<(String, SocketAddr), ConfigError> {
    let urls = split_urls(list);
    if urls.len() != 1 {
        return Err(ConfigError::OneUrlOnly {
            flag,
            count: urls.len(),
        });
    }
    let addr = url_addr(flag, &urls[0])?;
    Ok((urls[0].clone(), addr))
}

/// Parses `--initial-cluster` (`n1=http://a:1,n2=http://b:2`), sorted by name, with ids.
pub fn parse_initial_cluster(list: &str, token: &str) -> Result<Vec<Peer>, ConfigError> {
    let mut peers: Vec<Peer> = Vec::new();
    for entry in split_urls(list) {
        let Some((name, url)) = entry.split_once('=') else {
            return Err(ConfigError::BadClusterEntry { entry });
        };
        let (name, url) = (name.trim(), url.trim());
        if name.is_empty() {
            return Err(ConfigError::BadClusterEntry { entry });
        }
        if peers.iter().any(|p| p.name == name) {
            return Err(ConfigError::DuplicateName {
                name: name.to_string(),
            });
        }
        let peer_addr = url_addr("--initial-cluster", url)?;
        peers.push(Peer {
            name: name.to_string(),
            peer_url: url.to_string(),
            peer_addr,
            id: member_id(name, url, token),
        });
    }
    if peers.is_empty() {
        return Err(ConfigError::BadClusterEntry {
            entry: list.to_string(),
        });
    }
    peers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(peers)
}

/// FNV-1a, 64 bits: a stable hash (std's hasher may change between Rust releases, and ids
/// are stored on disk and shown to operators).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.iter().chain(std::iter::once(&0xffu8)) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// A member's id: a hash of its name, peer URL and the cluster token, never 0 (0 is no node
/// in the core).
pub fn member_id(name: &str, peer_url: &str, token: &str) -> u64 {
    fnv1a(&[name.as_bytes(), peer_url.as_bytes(), token.as_bytes()]).max(1)
}

/// The id of a member added at run time (`MemberAdd`): a hash of the cluster's id and its
/// first peer URL, never 0. The new member computes the same from its own peer URL once it
/// has learned the cluster's id from a peer (server.rs), so it needs no name to know itself.
pub fn added_member_id(cluster_id: u64, peer_url: &str) -> u64 {
    fnv1a(&[
        b"synod-added-member",
        &cluster_id.to_le_bytes(),
        peer_url.as_bytes(),
    ])
    .max(1)
}

/// The cluster's id: a hash of the token and every member id, so two clusters started with
/// other members or another token refuse each other's peers.
pub fn cluster_id(token: &str, members: &[Peer]) -> u64 {
    let ids: Vec<[u8; 8]> = members.iter().map(|p| p.id.to_le_bytes()).collect();
    let mut parts: Vec<&[u8]> = vec![token.as_bytes()];
    parts.extend(ids.iter().map(|b| &b[..]));
    fnv1a(&parts).max(1)
}

impl NodeConfig {
    /// The limits a new store gets (`--max-txn-ops`; etcd's defaults otherwise): a fresh
    /// member's, and an etcd backup's when it is restored. A store restored from a snapshot
    /// keeps the limits it carries.
    pub fn store_limits(&self) -> kv::Limits {
        kv::Limits {
            txn_ops_max: self.txn_ops_max,
            ..kv::Limits::default()
        }
    }

    /// This member's entry in the initial cluster.
    pub fn me(&self) -> &Peer {
        self.initial_cluster
            .iter()
            .find(|p| p.name == self.name)
            .expect("checked by validate: the name is in the initial cluster")
    }

    /// The cluster's id; a rule other than majority is part of it, so that members started
    /// with different rules refuse each other (two rules could let two values be chosen).
    pub fn cluster_id(&self) -> u64 {
        let id = self.with_lease(cluster_id(&self.cluster_token, &self.initial_cluster));
        if self.quorum == paxos::QuorumSpec::Majority {
            return id;
        }
        let rule = self.quorum.to_string();
        fnv1a(&[&id.to_le_bytes(), rule.as_bytes()]).max(1)
    }

    /// The cluster's id as [`NodeConfig::cluster_id`] gives it, with leader leases in it when
    /// they are on: the grant a voter gives is its election timeout, and the leader's lease is
    /// sized from its own, so members must agree on both, and on the drift bound.
    fn with_lease(&self, id: u64) -> u64 {
        let Some(lease) = self.leader_lease else {
            return id;
        };
        let election = self.tick.saturating_mul(self.election_ticks);
        let setting = format!(
            "leader-lease:{}ppm:{}us",
            lease.max_drift_ppm,
            election.as_micros()
        );
        fnv1a(&[&id.to_le_bytes(), setting.as_bytes()]).max(1)
    }

    /// The first configuration: the initial cluster's members under the quorum rule.
    pub fn first_configuration(&self) -> Result<paxos::Configuration, ConfigError> {
        let members = self
            .initial_cluster
            .iter()
            .map(|p| paxos::NodeId(p.id))
            .collect();
        paxos::Configuration::new(members, self.quorum.clone()).map_err(|e| ConfigError::Quorums {
            rule: self.quorum.to_string(),
            why: e.to_string(),
        })
    }

    /// Whether this member's place in the initial cluster is an auxiliary one under the
    /// quorum rule in force (`cheap:MAIN`: after the first MAIN members by name).
    pub fn has_auxiliary_place(&self) -> bool {
        let paxos::QuorumSpec::Cheap { main } = self.quorum else {
            return false;
        };
        self.initial_cluster
            .iter()
            .position(|p| p.name == self.name)
            .is_some_and(|place| place >= main)
    }

    /// Checks `--auxiliary` against the quorum rule in force (run once the rule recorded in
    /// the data directory is adopted): under `cheap:MAIN` the members after the first MAIN by
    /// name are auxiliaries and must say so, the others must not; under any other rule there
    /// are no auxiliaries. A member that guessed its role wrong would either serve clients
    /// from a store it never keeps, or refuse them while the cluster counts on it to.
    pub fn check_auxiliary(&self) -> Result<(), ConfigError> {
        let paxos::QuorumSpec::Cheap { main } = self.quorum else {
            if self.auxiliary {
                return Err(ConfigError::Auxiliary(format!(
                    "an auxiliary acceptor needs Cheap Paxos (--quorums cheap:MAIN), not --quorums {}",
                    self.quorum
                )));
            }
            return Ok(());
        };
        let names = |range: std::ops::Range<usize>| {
            self.initial_cluster[range]
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        let n = self.initial_cluster.len();
        let mains = names(0..main.min(n));
        let auxiliaries = names(main.min(n)..n);
        match (!self.has_auxiliary_place(), self.auxiliary) {
            (true, true) => Err(ConfigError::Auxiliary(format!(
                "{:?} is a main acceptor under --quorums cheap:{main} (mains, the first {main} by name: {mains}; auxiliaries: {auxiliaries}); drop --auxiliary or rename the members",
                self.name
            ))),
            (false, false) => Err(ConfigError::Auxiliary(format!(
                "{:?} is an auxiliary acceptor under --quorums cheap:{main} (mains, the first {main} by name: {mains}; auxiliaries: {auxiliaries}); start it with --auxiliary",
                self.name
            ))),
            _ => Ok(()),
        }
    }

    /// Checks what parsing alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.initial_cluster.iter().any(|p| p.name == self.name) {
            return Err(ConfigError::NotInCluster {
                name: self.name.clone(),
                listed: self
                    .initial_cluster
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            });
        }
        self.first_configuration()?;
        if self.tick.is_zero() || self.election_ticks < 2 || self.heartbeat_ticks == 0 {
            return Err(ConfigError::OutOfRange(
                "tick must be positive, election ticks at least 2 and heartbeat ticks at least 1"
                    .into(),
            ));
        }
        if self.listen_metrics.iter().any(|(_, https)| *https) && self.client_tls.is_none() {
            return Err(ConfigError::OutOfRange(
                "an https:// --listen-metrics-urls is served with the client port's TLS settings: \
                 give --cert-file and --key-file with an https:// --listen-client-urls"
                    .into(),
            ));
        }
        if self.heartbeat_ticks >= self.election_ticks {
            return Err(ConfigError::OutOfRange(format!(
                "heartbeat ticks ({}) must be below election ticks ({})",
                self.heartbeat_ticks, self.election_ticks
            )));
        }
        if self.request_bytes_max < 1024 || self.request_bytes_max > 64 << 20 {
            return Err(ConfigError::OutOfRange(format!(
                "max request bytes {} must be between 1 KiB and 64 MiB",
                self.request_bytes_max
            )));
        }
        if self.txn_ops_max == 0 {
            return Err(ConfigError::OutOfRange(
                "max txn ops must be at least 1".into(),
            ));
        }
        if !(WAL_SEGMENT_BYTES_MIN..=WAL_SEGMENT_BYTES_MAX).contains(&self.wal_segment_bytes) {
            return Err(ConfigError::OutOfRange(format!(
                "wal segment bytes {} must be between 16 MiB and 4 GiB (a segment must hold \
                 the largest log record, 8 MiB, with room to spare)",
                self.wal_segment_bytes
            )));
        }
        if !(kv::BCRYPT_COST_MIN..=kv::BCRYPT_COST_MAX).contains(&self.bcrypt_cost) {
            return Err(ConfigError::OutOfRange(format!(
                "bcrypt cost {} must be between {} and {}",
                self.bcrypt_cost,
                kv::BCRYPT_COST_MIN,
                kv::BCRYPT_COST_MAX
            )));
        }
        self.validate_lease()?;
        if self.pending_requests_max == 0 || self.snapshot_every_slots == 0 {
            return Err(ConfigError::OutOfRange(
                "pending requests and snapshot interval must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Leader leases: a drift bound a monotonic clock can keep, and a lease that outlasts a
    /// heartbeat interval (else it runs out before the next round renews it, and every read
    /// falls back to read-index while paying for grants).
    fn validate_lease(&self) -> Result<(), ConfigError> {
        let Some(lease) = self.leader_lease else {
            return Ok(());
        };
        if !(LEASE_DRIFT_PPM_MIN..1_000_000).contains(&lease.max_drift_ppm) {
            return Err(ConfigError::OutOfRange(format!(
                "--max-clock-drift-ppm {} must be at least {LEASE_DRIFT_PPM_MIN} (NTP alone \
                 slews a monotonic clock by up to 500 ppm) and below 1000000 (a clock that \
                 may run at twice or none of the true rate holds no lease)",
                lease.max_drift_ppm
            )));
        }
        let lease_ticks = lease.leader_ticks(self.election_ticks);
        if lease_ticks <= u64::from(self.heartbeat_ticks) {
            let tick_ms = self.tick.as_secs_f64() * 1e3;
            return Err(ConfigError::OutOfRange(format!(
                "--experimental-leader-lease: the lease ({:.0} ms: the election timeout, {:.0} \
                 ms, less one tick and the margin for {} ppm of drift) would run out before \
                 the next heartbeat renews it ({:.0} ms): raise --election-timeout or lower \
                 --max-clock-drift-ppm",
                lease_ticks as f64 * tick_ms,
                f64::from(self.election_ticks) * tick_ms,
                lease.max_drift_ppm,
                f64::from(self.heartbeat_ticks) * tick_ms
            )));
        }
        Ok(())
    }

    /// A single-member configuration on the given ports, for tests and examples.
    pub fn single(name: &str, data_dir: PathBuf, client: SocketAddr, peer: SocketAddr) -> Self {
        let url = format!("http://{peer}");
        let token = "synod-cluster";
        NodeConfig {
            initial_cluster: vec![Peer {
                name: name.to_string(),
                peer_url: url.clone(),
                peer_addr: peer,
                id: member_id(name, &url, token),
            }],
            ..NodeConfig::defaults(name, data_dir, client, peer, token)
        }
    }

    /// Defaults for everything but identity and addresses (initial cluster left empty).
    pub fn defaults(
        name: &str,
        data_dir: PathBuf,
        client: SocketAddr,
        peer: SocketAddr,
        token: &str,
    ) -> Self {
        NodeConfig {
            name: name.to_string(),
            data_dir,
            listen_client: client,
            advertise_client_urls: vec![format!("http://{client}")],
            listen_peer: peer,
            initial_cluster: Vec::new(),
            cluster_state: ClusterState::New,
            cluster_token: token.to_string(),
            tick: Duration::from_millis(10),
            election_ticks: 30,
            heartbeat_ticks: 5,
            lease_election_timeout: None,
            request_timeout: Duration::from_secs(5),
            watch_progress_every: Duration::from_secs(600),
            request_bytes_max: 1536 * 1024,
            txn_ops_max: 128,
            quota_bytes: 2 << 30,
            pending_requests_max: 16_384,
            snapshot_every_slots: 10_000,
            wal_segment_bytes: WAL_SEGMENT_BYTES_DEFAULT,
            auto_compaction: None,
            bcrypt_cost: kv::BCRYPT_COST_DEFAULT,
            auth_token: "simple".to_string(),
            auth_token_ttl: crate::tokens::SIMPLE_TOKEN_TTL_DEFAULT,
            test_faults: TestFaults::default(),
            quorum: paxos::QuorumSpec::Majority,
            leader_lease: None,
            auxiliary: false,
            client_tls: None,
            listen_metrics: Vec::new(),
            peer_tls: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_cluster_parses_sorted_with_distinct_stable_ids() {
        let peers =
            parse_initial_cluster("b=http://127.0.0.1:2380, a=http://127.0.0.1:2381", "t").unwrap();
        assert_eq!(peers[0].name, "a");
        assert_eq!(peers[1].peer_addr.port(), 2380);
        assert_ne!(peers[0].id, peers[1].id);
        // Stable across runs and Rust versions: pinned.
        assert_eq!(peers[0].id, member_id("a", "http://127.0.0.1:2381", "t"));
        let other_token = parse_initial_cluster("a=http://127.0.0.1:2381", "u").unwrap();
        assert_ne!(other_token[0].id, peers[0].id);
        assert_ne!(cluster_id("t", &peers), cluster_id("u", &peers));
    }

    #[test]
    fn bad_entries_are_refused_with_what_to_fix() {
        assert!(matches!(
            parse_initial_cluster("a=http://127.0.0.1:1,a=http://127.0.0.1:2", "t"),
            Err(ConfigError::DuplicateName { .. })
        ));
        assert!(matches!(
            parse_initial_cluster("a:http://127.0.0.1:1", "t"),
            Err(ConfigError::BadClusterEntry { .. })
        ));
        let e = url_addr("--listen-client-urls", "127.0.0.1:1").unwrap_err();
        assert!(e.to_string().contains("http://"), "{e}");
        assert!(matches!(
            single_url(
                "--listen-peer-urls",
                "http://127.0.0.1:1,http://127.0.0.1:2"
            ),
            Err(ConfigError::OneUrlOnly { count: 2, .. })
        ));
        assert_eq!(
            ClusterState::parse("old"),
            Err(ConfigError::BadClusterState("old".into()))
        );
    }

    #[test]
    fn crash_points_parse_with_an_optional_count() {
        assert_eq!(
            CrashPoint::parse("after-apply"),
            Ok((CrashPoint::AfterApply, 1))
        );
        assert_eq!(
            CrashPoint::parse("during-snapshot:3"),
            Ok((CrashPoint::DuringSnapshot, 3))
        );
        assert!(CrashPoint::parse("after-apply:0").is_err());
        let e = CrashPoint::parse("sometime").unwrap_err().to_string();
        assert!(e.contains("before-wal-sync"), "{e}");
    }

    #[test]
    fn a_name_missing_from_the_cluster_is_refused() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut c = NodeConfig::single("a", "/tmp/x".into(), addr, addr);
        c.name = "z".into();
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("not in --initial-cluster"), "{e}");
    }
}
